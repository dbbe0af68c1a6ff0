/*
 * data.c: the DATA state machine.
 *
 * States track where we are in "CRLF . CRLF". The previous bytes that
 * matter are: at the start of a line (after CRLF, or at the start), a dot
 * at the start of a line, and a pending CR whose meaning depends on the
 * next byte. A pending CR is written out only when the next byte shows
 * it was data. Decoded bytes are collected in a small local buffer and
 * handed to the sink in chunks, never one by one. Under a pace, a window
 * that brought enough wire bytes opens the next one at once, so a steady
 * sender never meets the deadline, however long the message.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "smtp/data.h"

enum state {
	S_LINE_START, /* after CRLF (or at the beginning) */
	S_DOT,        /* a '.' at the start of a line */
	S_DOT_CR,     /* ".\r" at the start of a line */
	S_TEXT,       /* inside a line */
	S_CR,         /* a CR inside a line: CRLF or bare CR? */
};

struct reader {
	const struct smtp_sink *sink;
	struct data_result *res;
	unsigned long long max;
	int in_header;
	size_t line_len;      /* bytes of the current line so far */
	size_t header_len;    /* bytes of the header so far */
	char prefix[16];      /* start of the current header line */
	size_t prefix_len;
	int colon;            /* the current header line has its ':' */
	int continuation;     /* it starts with a blank */
	char out[4096];
	size_t out_len;
	int blocked;          /* a bound was passed: sink gets nothing */
};

static void flush_out(struct reader *r)
{
	if (r->out_len && !r->blocked)
		r->sink->put(r->sink->ctx, r->out, r->out_len);
	r->out_len = 0;
}

static void header_line_done(struct reader *r)
{
	if (r->line_len == 0) {
		r->in_header = 0; /* the empty line ends the header */
		return;
	}
	if (!r->colon && !r->continuation) {
		/* Not a field: the body started without an empty line. */
		r->in_header = 0;
		return;
	}
	if ((r->prefix_len >= 9 && strncasecmp(r->prefix, "received:", 9) == 0) ||
	    (r->prefix_len >= 13 &&
	     strncasecmp(r->prefix, "delivered-to:", 13) == 0))
		r->res->hops++;
}

/* One decoded byte of message text. */
static void emit(struct reader *r, char c)
{
	struct data_result *res = r->res;

	res->bytes++;
	if ((unsigned char)c >= 0x80)
		res->eightbit = 1;
	if (r->max && res->bytes > r->max && !res->too_big) {
		res->too_big = 1;
		r->blocked = 1;
	}
	if (r->in_header) {
		if (c == '\n') {
			header_line_done(r);
			r->line_len = 0;
			r->prefix_len = 0;
			r->colon = r->continuation = 0;
		} else {
			if (r->line_len == 0 && (c == ' ' || c == '\t'))
				r->continuation = 1;
			if (c == ':')
				r->colon = 1;
			if (r->prefix_len < sizeof r->prefix)
				r->prefix[r->prefix_len++] = c;
			r->line_len++;
		}
		if (++r->header_len > DATA_HEADER_MAX ||
		    r->line_len > DATA_HEADER_LINE_MAX) {
			res->header_too_long = 1;
			r->blocked = 1;
		}
	}
	if (r->blocked)
		return;
	r->out[r->out_len++] = c;
	if (r->out_len == sizeof r->out)
		flush_out(r);
}

/* Feed one wire byte. Returns 1 at the end of the message, -1 on a bare
 * LF, 0 otherwise. */
static int step(struct reader *r, enum state *st, char c)
{
	switch (*st) {
	case S_LINE_START:
		if (c == '.') {
			*st = S_DOT;
			return 0;
		}
		break;
	case S_DOT:
		if (c == '\r') {
			*st = S_DOT_CR;
			return 0;
		}
		/* A stuffed dot: drop it, the rest of the line is text. */
		break;
	case S_DOT_CR:
		if (c == '\n')
			return 1; /* CRLF . CRLF */
		/* ".\r" then something else: the dot was stuffing, the CR
		 * was data. */
		emit(r, '\r');
		*st = S_TEXT;
		break;
	case S_CR:
		if (c == '\n') {
			emit(r, '\n');
			*st = S_LINE_START;
			return 0;
		}
		emit(r, '\r'); /* a bare CR is data */
		*st = S_TEXT;
		break;
	case S_TEXT:
		break;
	}
	if (c == '\n')
		return -1;
	if (c == '\r') {
		*st = S_CR;
		return 0;
	}
	emit(r, c);
	*st = S_TEXT;
	return 0;
}

/* Start a new window of the pace: a fresh deadline, nothing counted. */
static int pace_restart(struct buf *in, const struct data_pace *pace,
			unsigned long long *counted)
{
	*counted = 0;
	return pace ? buf_setdeadline(in, pace->window) : 0;
}

static void read_message(struct buf *in, const struct data_pace *pace,
			 struct reader *r)
{
	struct data_result *res = r->res;
	enum state st = S_LINE_START;
	unsigned long long counted;

	if (pace_restart(in, pace, &counted) < 0) {
		res->status = DATA_READ_ERROR;
		return;
	}
	for (;;) {
		ssize_t n = buf_fill(in);
		if (n <= 0) {
			res->status = n == 0 ? DATA_EOF : DATA_READ_ERROR;
			return;
		}
		const char *p = buf_peek(in);
		for (ssize_t i = 0; i < n; i++) {
			int s = step(r, &st, p[i]);
			if (s != 0) {
				/* Consume exactly what was ours: what the
				 * client pipelined after stays buffered. */
				buf_skip(in, (size_t)i + 1);
				flush_out(r);
				res->status = s > 0 ? DATA_OK : DATA_BARE_LF;
				return;
			}
		}
		buf_skip(in, (size_t)n);
		if (!pace)
			continue;
		counted += (size_t)n;
		if (counted >= pace->min_bytes &&
		    pace_restart(in, pace, &counted) < 0) {
			res->status = DATA_READ_ERROR;
			return;
		}
	}
}

void smtp_data_read_paced(struct buf *in, unsigned long long max,
			  const struct data_pace *pace,
			  const struct smtp_sink *sink, struct data_result *res)
{
	struct reader r;

	memset(res, 0, sizeof *res);
	memset(&r, 0, sizeof r);
	r.sink = sink;
	r.res = res;
	r.max = max;
	r.in_header = 1;
	if (pace && pace->window == 0)
		pace = NULL;
	read_message(in, pace, &r);
	if (pace)
		buf_setdeadline(in, 0); /* what follows has its own rules */
}

void smtp_data_read(struct buf *in, unsigned long long max,
		    const struct smtp_sink *sink, struct data_result *res)
{
	smtp_data_read_paced(in, max, NULL, sink, res);
}
