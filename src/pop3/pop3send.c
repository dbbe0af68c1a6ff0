/*
 * pop3send.c: streaming a message with POP3 byte-stuffing (see
 * pop3send.h).
 *
 * Works on whatever span of input the buffer holds, so a line may be
 * split anywhere, even between CR and LF; all line state lives in
 * struct stuffing. This must never allocate and never hold more than
 * the two fixed buffers.
 */
#include "pop3send.h"

#include <string.h>

struct stuffing {
	unsigned long long left; /* body lines still to send */
	int in_body;		 /* the empty line after the header passed */
	int at_start;		 /* the next byte begins a line */
	int last_cr;		 /* the last byte sent was CR */
	unsigned line_len;	 /* bytes on this line so far, at most 2 */
	int done;		 /* TOP sent all it should */
};

/* The line just ended: is it the header's closing empty line? */
static int line_was_empty(const struct stuffing *s)
{
	return s->line_len == 0 || (s->line_len == 1 && s->last_cr);
}

static void end_line(struct stuffing *s)
{
	if (!s->in_body) {
		if (line_was_empty(s))
			s->in_body = 1;
	} else if (s->left != POP3_ALL_LINES) {
		s->left--;
	}
	s->at_start = 1;
	s->last_cr = 0;
	s->line_len = 0;
}

/* The line end for the current line: LF alone after a CR. */
static int put_newline(struct stuffing *s, struct buf *out)
{
	return s->last_cr ? buf_putc(out, '\n') : buf_put(out, "\r\n", 2);
}

/* Send from p[0..n); *used tells how much was taken (less than n only
 * when s->done). 0, or -1 when writing failed. */
static int send_span(struct stuffing *s, const char *p, size_t n,
		     struct buf *out, size_t *used)
{
	size_t i = 0;

	while (i < n) {
		if (s->at_start) {
			if (p[i] == '.' && buf_putc(out, '.') < 0)
				return -1;
			s->at_start = 0;
		}
		const char *nl = memchr(p + i, '\n', n - i);
		size_t seg = nl ? (size_t)(nl - (p + i)) : n - i;
		if (seg) {
			if (buf_put(out, p + i, seg) < 0)
				return -1;
			s->last_cr = p[i + seg - 1] == '\r';
			s->line_len = seg >= 2 || s->line_len ? 2 : 1;
			i += seg;
		}
		if (!nl)
			break;
		if (put_newline(s, out) < 0)
			return -1;
		i++;
		end_line(s);
		/* Stop at once: waiting for more input could block. */
		if (s->in_body && s->left == 0) {
			s->done = 1;
			break;
		}
	}
	*used = i;
	return 0;
}

enum pop3_send pop3_send_message(struct buf *in, struct buf *out,
				 unsigned long long body_lines)
{
	struct stuffing s = {.left = body_lines, .at_start = 1};

	while (!s.done) {
		ssize_t r = buf_fill(in);
		if (r < 0)
			return POP3_SEND_READ;
		if (r == 0)
			break;
		size_t used;
		if (send_span(&s, buf_peek(in), (size_t)r, out, &used) < 0)
			return POP3_SEND_WRITE;
		buf_skip(in, used);
	}
	if (!s.at_start && put_newline(&s, out) < 0)
		return POP3_SEND_WRITE;
	if (buf_put(out, ".\r\n", 3) < 0)
		return POP3_SEND_WRITE;
	return POP3_SEND_OK;
}
