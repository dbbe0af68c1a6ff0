/*
 * dotqmail.c: .qmail lookup and parsing (see dotqmail.h, dot-qmail(5)).
 *
 * Everything here treats the ext and the file content as hostile: the
 * ext comes from a remote sender, and a .qmail may be damaged. It must
 * never build a file name that leaves the current directory, never
 * accept a line it does not fully understand, and never deliver.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/checked.h"
#include "mail/dotqmail.h"

/* --- parsing --- */

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* Control characters other than tab: a CR from a foreign editor would
 * otherwise become part of a file name or an address. */
static int has_control(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 32 && c != '\t') || c == 127)
			return 1;
	}
	return 0;
}

static int list_push(struct dq_list *l, enum dq_kind kind, size_t line,
		     const char *arg, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap : 8, bytes;
		if (l->cap && size_mul(l->cap, 2, &cap) < 0)
			return -1;
		if (size_mul(cap, sizeof *l->v, &bytes) < 0)
			return -1;
		struct dq_instr *v = realloc(l->v, bytes);
		if (!v) {
			errno = ENOMEM;
			return -1;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct dq_instr){kind, line, arg, len};
	return 0;
}

/* Why a forwarding address cannot be used, or NULL when it can. */
static const char *bad_address(const char *p, size_t n)
{
	if (n == 0)
		return "empty forwarding address";
	for (size_t i = 0; i < n; i++) {
		if (is_blank(p[i]))
			return "white space in forwarding address";
		if (p[i] == '<' || p[i] == '>')
			return "angle bracket in forwarding address";
	}
	return NULL;
}

/* Classify one line p[0..n), already stripped of trailing blanks and
 * NUL-terminated. Returns NULL (maybe with an instruction added) or the
 * reason the line is refused; errno is set only for a failed push. */
static const char *parse_line(char *p, size_t n, size_t line, int forward_only,
			      struct dq_list *out, int *failed)
{
	enum dq_kind kind = DQ_FORWARD;
	const char *why;

	*failed = 0;
	if (n == 0)
		return line == 1 ? "first line is blank" : NULL;
	if (p[0] == '#')
		return NULL;
	if (has_control(p, n))
		return "control character in line";
	if (p[0] == '|') {
		if (n == 1)
			return "empty program command";
		if (forward_only)
			return "program delivery, but the file has its "
			       "execute bit set";
		kind = DQ_PROGRAM;
		p++;
		n--;
	} else if (p[0] == '.' || p[0] == '/') {
		if (forward_only)
			return "file delivery, but the file has its "
			       "execute bit set";
		kind = p[n - 1] == '/' ? DQ_MAILDIR : DQ_MBOX;
	} else {
		if (p[0] == '&') {
			p++;
			n--;
		} else if (!is_alnum(p[0])) {
			return "unrecognised delivery instruction";
		}
		why = bad_address(p, n);
		if (why)
			return why;
	}
	if (list_push(out, kind, line, p, n) < 0)
		*failed = 1;
	return NULL;
}

int dotqmail_parse(struct str *text, int forward_only, struct dq_list *out,
		   struct dq_error *err)
{
	size_t pos = 0, line = 0;

	out->n = 0;
	while (pos < text->len) {
		char *p = text->s + pos;
		char *nl = memchr(p, '\n', text->len - pos);
		size_t n = nl ? (size_t)(nl - p) : text->len - pos;
		const char *why = NULL;
		int failed;

		line++;
		if (n > DOTQMAIL_LINE_MAX)
			why = "line too long";
		else if (memchr(p, '\0', n))
			why = "NUL byte in line";
		if (!why) {
			while (n > 0 && is_blank(p[n - 1]))
				n--;
			/* Either the newline, a stripped blank or the NUL
			 * that str keeps past len. */
			p[n] = '\0';
			why =
			    parse_line(p, n, line, forward_only, out, &failed);
			if (failed) {
				out->n = 0;
				return -1;
			}
		}
		if (why) {
			out->n = 0;
			err->line = line;
			err->why = why;
			errno = EINVAL;
			return -1;
		}
		pos = nl ? (size_t)(nl - text->s) + 1 : text->len;
	}
	return 0;
}

void dq_list_free(struct dq_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
	l->cap = 0;
}

/* --- lookup --- */

int dotqmail_safeext(struct str *out, const char *ext)
{
	if (str_copys(out, ext) < 0)
		return -1;
	for (size_t i = 0; i < out->len; i++) {
		char c = out->s[i];
		if (c >= 'A' && c <= 'Z')
			out->s[i] = (char)(c - 'A' + 'a');
		else if (c == '.')
			out->s[i] = ':';
	}
	return 0;
}

int dq_search_start(struct dq_search *s, const char *dash, const char *ext)
{
	s->dash = dash;
	s->safe = (struct str)STR_INIT;
	s->state = 0;
	if (dotqmail_safeext(&s->safe, ext) < 0)
		return -1;
	s->cut = s->safe.len;
	return 0;
}

static int build_name(struct str *name, const char *dash, const char *ext,
		      size_t extlen, const char *suffix)
{
	if (str_copys(name, ".qmail") < 0 || str_appends(name, dash) < 0 ||
	    str_append(name, ext, extlen) < 0 || str_appends(name, suffix) < 0)
		return -1;
	return 0;
}

/* The exact file: when its own name ends in "default", DEFAULT is that
 * word, as when the same file is reached as a -default candidate. */
static int exact_candidate(struct dq_search *s, struct str *name, size_t *deflt)
{
	static const char word[] = "default";
	const size_t wlen = sizeof word - 1;

	*deflt = DOTQMAIL_NOT_DEFAULT;
	if (s->safe.len >= wlen &&
	    memcmp(s->safe.s + s->safe.len - wlen, word, wlen) == 0)
		*deflt = s->safe.len - wlen;
	return build_name(name, s->dash, s->safe.s ? s->safe.s : "",
			  s->safe.len, "");
}

int dq_search_next(struct dq_search *s, struct str *name, size_t *deflt)
{
	if (s->state == 0) {
		s->state = 1;
		if (exact_candidate(s, name, deflt) < 0)
			return -1;
		return 1;
	}
	if (s->state != 1)
		return 0;
	/* Cut points: the whole ext when it ends in '-', after each '-'
	 * from the right, and finally the empty prefix. */
	while (s->cut > 0 && s->safe.s[s->cut - 1] != '-')
		s->cut--;
	size_t cut = s->cut;
	if (cut == 0)
		s->state = 2;
	else
		s->cut--;
	*deflt = cut;
	if (build_name(name, s->dash, s->safe.s ? s->safe.s : "", cut,
		       "default") < 0)
		return -1;
	return 1;
}

void dq_search_free(struct dq_search *s)
{
	str_free(&s->safe);
	s->state = 2;
}

static int means_missing(int e)
{
	return e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG;
}

int dotqmail_open(const char *name, int *fd, mode_t *mode)
{
	struct stat st;

	/* O_NONBLOCK: a FIFO planted under the name must not hang us. */
	int f = open(name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (f < 0)
		return means_missing(errno) ? 0 : -1;
	if (fstat(f, &st) < 0) {
		int e = errno;
		close(f);
		errno = e;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(f);
		return 0;
	}
	int flags = fcntl(f, F_GETFL);
	if (flags < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		int e = errno;
		close(f);
		errno = e;
		return -1;
	}
	*fd = f;
	*mode = st.st_mode;
	return 1;
}

int dotqmail_exists(const char *name)
{
	struct stat st;

	if (stat(name, &st) == 0)
		return 1;
	return means_missing(errno) ? 0 : -1;
}

int dotqmail_find(const char *dash, const char *ext, struct dq_found *f)
{
	struct dq_search s;
	int r;

	f->fd = -1;
	f->deflt = DOTQMAIL_NOT_DEFAULT;
	if (dq_search_start(&s, dash, ext) < 0)
		return -1;
	while ((r = dq_search_next(&s, &f->name, &f->deflt)) == 1) {
		r = dotqmail_open(f->name.s, &f->fd, &f->mode);
		if (r != 0)
			break;
	}
	dq_search_free(&s);
	if (r <= 0) {
		f->fd = -1;
		if (r == 0)
			f->deflt = DOTQMAIL_NOT_DEFAULT;
	}
	return r;
}

int dotqmail_read(int fd, struct str *out)
{
	char chunk[4096];

	str_clear(out);
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			return 0;
		if ((size_t)r > DOTQMAIL_FILE_MAX - out->len) {
			errno = EFBIG;
			return -1;
		}
		if (str_append(out, chunk, (size_t)r) < 0)
			return -1;
	}
}
