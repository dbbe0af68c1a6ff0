/*
 * header.c: splitting a message header into fields.
 *
 * Everything is bounded: a line longer than HEADER_LINE_MAX or a header
 * longer than HEADER_MAX is refused, never cut, so that what is passed
 * on is always what was given. It must never read past the header and
 * never change a byte of the fields it keeps.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/checked.h"
#include "mail/header.h"

enum line_kind { LINE_BLANK, LINE_CONT, LINE_FIELD, LINE_BODY };

void header_init(struct header *h)
{
	memset(h, 0, sizeof *h);
	h->end = HEADER_OPEN;
}

void header_free(struct header *h)
{
	str_free(&h->text);
	str_free(&h->rest);
	free(h->field);
	header_init(h);
}

static int is_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Length of the name, or 0 when p does not start a field; *colon gets
 * the index of the colon. */
static size_t field_name(const char *p, size_t n, size_t *colon)
{
	size_t name = 0, i;

	while (name < n && is_ftext((unsigned char)p[name]))
		name++;
	if (name == 0)
		return 0;
	i = name;
	while (i < n && is_blank(p[i]))
		i++;
	if (i >= n || p[i] != ':')
		return 0;
	*colon = i;
	return name;
}

int header_is_field_start(const char *p, size_t n)
{
	size_t colon;
	return field_name(p, n, &colon) > 0;
}

static enum line_kind classify(const struct header *h, const char *line,
			       size_t len)
{
	if ((len == 1 && line[0] == '\n') ||
	    (len == 2 && line[0] == '\r' && line[1] == '\n'))
		return LINE_BLANK;
	if (is_blank(line[0]))
		return h->nfields > 0 ? LINE_CONT : LINE_BODY;
	if (header_is_field_start(line, len))
		return LINE_FIELD;
	return LINE_BODY;
}

static int grow_fields(struct header *h)
{
	size_t cap, bytes;
	struct header_field *f;

	if (h->nfields < h->cap)
		return 0;
	cap = h->cap ? h->cap : 16;
	if (h->cap && size_mul(h->cap, 2, &cap) < 0)
		return -1;
	if (size_mul(cap, sizeof *f, &bytes) < 0)
		return -1;
	f = realloc(h->field, bytes);
	if (!f) {
		errno = ENOMEM;
		return -1;
	}
	h->field = f;
	h->cap = cap;
	return 0;
}

static int add_field(struct header *h, const char *line, size_t len)
{
	struct header_field *f;
	size_t colon = 0;

	if (grow_fields(h) < 0)
		return -1;
	f = &h->field[h->nfields];
	f->off = h->text.len;
	f->len = len;
	f->namelen = field_name(line, len, &colon);
	f->valoff = colon + 1;
	if (str_append(&h->text, line, len) < 0)
		return -1;
	h->nfields++;
	return 0;
}

static int end_header(struct header *h, enum header_end why, const char *line,
		      size_t len)
{
	if (str_copy(&h->rest, line, len) < 0)
		return -1;
	h->end = why;
	return 0;
}

int header_line(struct header *h, const char *line, size_t len)
{
	size_t total;

	if (h->end != HEADER_OPEN)
		return 0;
	if (len == 0)
		return 1;
	if (len > HEADER_LINE_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	if (h->text.len == 0 && h->nfields == 0)
		h->crlf =
		    len >= 2 && line[len - 1] == '\n' && line[len - 2] == '\r';
	switch (classify(h, line, len)) {
	case LINE_BLANK:
		return end_header(h, HEADER_BLANK, line, len) < 0 ? -1 : 0;
	case LINE_BODY:
		return end_header(h, HEADER_BODYLINE, line, len) < 0 ? -1 : 0;
	case LINE_CONT:
	case LINE_FIELD:
		break;
	}
	if (size_add(h->text.len, len, &total) < 0 || total > HEADER_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	if (is_blank(line[0])) {
		if (str_append(&h->text, line, len) < 0)
			return -1;
		h->field[h->nfields - 1].len += len;
		return 1;
	}
	return add_field(h, line, len) < 0 ? -1 : 1;
}

void header_eof(struct header *h)
{
	if (h->end == HEADER_OPEN)
		h->end = HEADER_EOF;
}

/* A line cut at HEADER_LINE_MAX is an error inside the header, but a
 * body that starts without an empty line may have long lines. */
static int long_line_starts_body(struct header *h, const struct str *line)
{
	if (line->len == 0)
		return 0;
	if (is_blank(line->s[0]))
		return h->nfields == 0;
	return !header_is_field_start(line->s, line->len);
}

int header_read(struct header *h, struct buf *in)
{
	struct str line = STR_INIT;
	int r, taken, saved;

	while (h->end == HEADER_OPEN) {
		str_clear(&line);
		r = buf_getline(in, &line, '\n', HEADER_LINE_MAX);
		if (r < 0) {
			if (errno == EMSGSIZE &&
			    long_line_starts_body(h, &line)) {
				if (end_header(h, HEADER_BODYLINE, line.s,
					       line.len) < 0)
					goto fail;
				break;
			}
			goto fail;
		}
		taken = header_line(h, line.s, line.len);
		if (taken < 0)
			goto fail;
		if (r == 0)
			header_eof(h);
	}
	str_free(&line);
	return 0;
fail:
	saved = errno;
	str_free(&line);
	errno = saved;
	return -1;
}

int header_is(const struct header *h, size_t i, const char *name)
{
	const struct header_field *f = &h->field[i];
	size_t n = strlen(name);

	if (f->namelen != n)
		return 0;
	return strncasecmp(h->text.s + f->off, name, n) == 0;
}

const char *header_name(const struct header *h, size_t i, size_t *len)
{
	*len = h->field[i].namelen;
	return h->text.s + h->field[i].off;
}

const char *header_value(const struct header *h, size_t i, size_t *len)
{
	const struct header_field *f = &h->field[i];

	*len = f->len - f->valoff;
	return h->text.s + f->off + f->valoff;
}
