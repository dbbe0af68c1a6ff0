/*
 * reply.c: the client's reply parser.
 */
#include <errno.h>
#include <string.h>

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
			st = errno == ETIMEDOUT  ? REPLY_TIMEOUT
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
					(c < 32 || c > 126) ? '?' : (char)c) < 0)
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
