/*
 * reply.c: the client's reply parser, and the EHLO keywords.
 *
 * Everything here reads bytes a remote server chose: every line is
 * bounded before it is kept, and the keyword reader only looks inside
 * the NUL-terminated lines reply_read stored. It never writes anywhere
 * but the reply and the caps it is given.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "smtp/reply.h"

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

enum reply_status reply_read(struct buf *in, struct smtp_reply *r)
{
	struct str line = STR_INIT;
	enum reply_status st = REPLY_OK;

	r->code = 0;
	str_clear(&r->text);
	str_clear(&r->lines);
	for (int n = 0;; n++) {
		if (n == REPLY_LINES_MAX) {
			st = REPLY_PROTOCOL;
			break;
		}
		str_clear(&line);
		int g = buf_getline(in, &line, '\n', REPLY_LINE_MAX);
		if (g == 0) {
			st = REPLY_EOF;
			break;
		}
		if (g < 0) {
			st = errno == ETIMEDOUT	 ? REPLY_TIMEOUT
			     : errno == EMSGSIZE ? REPLY_PROTOCOL
						 : REPLY_IOERROR;
			break;
		}
		/* Strip CRLF; a bare LF is tolerated from servers. */
		line.len--;
		if (line.len && line.s[line.len - 1] == '\r')
			line.len--;
		line.s[line.len] = 0;
		if (line.len < 3 || !digit(line.s[0]) || !digit(line.s[1]) ||
		    !digit(line.s[2]) || line.s[0] < '2' || line.s[0] > '5' ||
		    (line.len > 3 && line.s[3] != ' ' && line.s[3] != '-')) {
			st = REPLY_PROTOCOL;
			break;
		}
		int code = (line.s[0] - '0') * 100 + (line.s[1] - '0') * 10 +
			   (line.s[2] - '0');
		if (n > 0 && code != r->code) {
			st = REPLY_PROTOCOL;
			break;
		}
		r->code = code;
		if (n > 0 && str_appendc(&r->text, '/') < 0)
			goto nomem;
		for (size_t i = 0; i < line.len; i++) {
			unsigned char c = (unsigned char)line.s[i];
			if (str_appendc(&r->text,
					(c < 32 || c > 126) ? '?' : (char)c) <
			    0)
				goto nomem;
		}
		/* A NUL inside a line would split it in two. */
		for (size_t i = 0; i < line.len; i++)
			if (line.s[i] == 0)
				line.s[i] = '?';
		if (str_append(&r->lines, line.s, line.len + 1) < 0)
			goto nomem;
		if (line.len == 3 || line.s[3] == ' ')
			break;
	}
	str_free(&line);
	return st;
nomem:
	str_free(&line);
	errno = ENOMEM;
	return REPLY_IOERROR;
}

void reply_free(struct smtp_reply *r)
{
	str_free(&r->text);
	str_free(&r->lines);
}

/* The word at p (up to a space or the end) is name, ignoring case. */
static int word_is(const char *p, size_t n, const char *name)
{
	return n == strlen(name) && strncasecmp(p, name, n) == 0;
}

static void auth_mechanisms(const char *p, struct smtp_caps *c)
{
	while (*p) {
		size_t n = strcspn(p, " ");
		if (word_is(p, n, "PLAIN"))
			c->auth_plain = 1;
		else if (word_is(p, n, "LOGIN"))
			c->auth_login = 1;
		p += n;
		while (*p == ' ')
			p++;
	}
}

/* SIZE's parameter: the limit, or 0 when there is none to read. */
static unsigned long long size_limit(const char *p)
{
	unsigned long long v = 0;

	while (*p == ' ')
		p++;
	size_t n = strcspn(p, " ");
	if (n == 0 || p[n + strspn(p + n, " ")] != 0)
		return 0; /* none, or more than one */
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		unsigned d = (unsigned)(p[i] - '0');
		v = v > (ULLONG_MAX - d) / 10 ? ULLONG_MAX : v * 10 + d;
	}
	return v;
}

static void keyword(const char *kw, struct smtp_caps *c)
{
	size_t n = strcspn(kw, " ");

	if (word_is(kw, n, "PIPELINING"))
		c->pipelining = 1;
	else if (word_is(kw, n, "8BITMIME"))
		c->eightbitmime = 1;
	else if (word_is(kw, n, "SMTPUTF8"))
		c->smtputf8 = 1;
	else if (word_is(kw, n, "STARTTLS"))
		c->starttls = 1;
	else if (strncasecmp(kw, "AUTH", 4) == 0 &&
		 (kw[4] == ' ' || kw[4] == '='))
		auth_mechanisms(kw + 5, c);
	else if (word_is(kw, n, "SIZE")) {
		c->has_size = 1;
		c->size = size_limit(kw + n);
	}
}

void reply_caps(const struct smtp_reply *r, struct smtp_caps *c)
{
	size_t pos = 0;

	memset(c, 0, sizeof *c);
	c->esmtp = 1;
	for (int first = 1; pos < r->lines.len; first = 0) {
		const char *line = r->lines.s + pos;
		size_t len = strlen(line);
		pos += len + 1;
		/* The first line greets; the others are "250-" keywords. */
		if (!first && len > 4)
			keyword(line + 4, c);
	}
}
