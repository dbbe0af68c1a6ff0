/*
 * data.h: reading the text that follows DATA (RFC 5321 4.5.2).
 *
 * Only CRLF ends a line and only CRLF "." CRLF ends the message. A bare
 * LF anywhere is refused (it is what SMTP smuggling needs); a bare CR is
 * data. Leading dots are unstuffed and CRLF becomes LF, which is how the
 * queue stores messages. The decoded bytes go to a sink as they arrive:
 * nothing is held in memory but a few bytes of state, whatever the size.
 */
#ifndef QM_SMTP_DATA_H
#define QM_SMTP_DATA_H

#include <stddef.h>

#include "lib/buf.h"

#define DATA_HEADER_LINE_MAX (64 * 1024)
#define DATA_HEADER_MAX (1024 * 1024)
#define DATA_HOPS_MAX 100

struct smtp_sink {
	void (*put)(void *ctx, const char *p, size_t n);
	void *ctx;
};

enum data_status {
	DATA_OK,         /* read up to and including CRLF.CRLF */
	DATA_BARE_LF,    /* a LF without CR: stop at once */
	DATA_EOF,        /* the client went away */
	DATA_READ_ERROR, /* errno says why; ETIMEDOUT on a timeout */
};

struct data_result {
	enum data_status status;
	unsigned long long bytes; /* decoded bytes, counted even past max */
	int too_big;              /* more than max bytes (max > 0) */
	int header_too_long;      /* a header line or the header is too long */
	int hops;                 /* Received: and Delivered-To: fields */
	int eightbit;             /* some byte >= 0x80 */
};

/* Read one message. max is the databytes limit (0: none); once it, or a
 * header bound, is passed, nothing more goes to the sink, but reading
 * goes on to the end so that the session stays in step. */
void smtp_data_read(struct buf *in, unsigned long long max,
		    const struct smtp_sink *sink, struct data_result *res);

/* The pace a sender must keep: every `window` seconds at least min_bytes
 * more, until the end of the message. Without it a client that sends one
 * byte just inside each read timeout keeps its connection forever. */
struct data_pace {
	unsigned window; /* seconds; 0: no rule */
	unsigned long long min_bytes;
};

/* smtp_data_read under a pace: when a window ends short of min_bytes,
 * the read fails as DATA_READ_ERROR with errno ETIMEDOUT. Uses, and then
 * removes, the deadline of in (buf_setdeadline). */
void smtp_data_read_paced(struct buf *in, unsigned long long max,
			  const struct data_pace *pace,
			  const struct smtp_sink *sink,
			  struct data_result *res);

#endif
