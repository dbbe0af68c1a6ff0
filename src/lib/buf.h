/*
 * buf.h: buffered descriptor I/O with a timeout on every read and write.
 *
 * One module for all buffered I/O in the tree. Reads and writes wait with
 * poll() for at most `timeout` seconds (0: no limit), and never past an
 * optional deadline for the whole exchange, then fail with ETIMEDOUT.
 * EINTR is retried. A buffer never grows: its memory is fixed at init,
 * and line reading is bounded by the caller's maximum.
 */
#ifndef QM_BUF_H
#define QM_BUF_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "str.h"

#define BUF_SIZE 8192

struct buf {
	int fd;
	char *x;	  /* storage, owned by the caller */
	size_t size;	  /* bytes of storage */
	size_t pos;	  /* input: next unread byte; output: unused */
	size_t len;	  /* input: end of valid data; output: bytes pending */
	unsigned timeout; /* seconds per read or write, 0 = wait forever */
	/* An absolute end for every wait (buf_setdeadline); a zeroed
	 * struct buf has none. */
	int has_deadline;
	struct timespec deadline; /* CLOCK_MONOTONIC */
};

void buf_init(struct buf *b, int fd, char *space, size_t size,
	      unsigned timeout);
void buf_setfd(struct buf *b, int fd); /* keeps buffered data */
void buf_settimeout(struct buf *b, unsigned timeout);
/* Bound the total time: from now on no read or write of b waits past
 * `seconds` from now, however the per-operation timeout would allow;
 * once that moment has passed, an operation that would have to wait
 * fails at once with ETIMEDOUT (buffered input, and a descriptor ready
 * at that very moment, are still served). This is how a peer that
 * trickles one byte just inside each timeout is stopped. 0 removes
 * the limit; that always succeeds and leaves errno alone. Returns 0, or
 * -1 (errno) when the clock cannot be read. */
int buf_setdeadline(struct buf *b, unsigned seconds);

/* --- input --- */

/* Make at least one byte available. Returns bytes available, 0 at EOF,
 * -1 on error (errno, ETIMEDOUT on timeout). */
ssize_t buf_fill(struct buf *b);
/* Bytes already buffered (no read). */
size_t buf_avail(const struct buf *b);
/* Whether a whole line ending in delim is buffered: reading it will not
 * wait. A reader that answers pipelined commands together flushes its
 * replies when this is false, so a client whose last line is still on
 * its way (or never ends) is not kept waiting for the earlier answers. */
int buf_hasline(const struct buf *b, int delim);
/* Pointer to the buffered bytes; use with buf_avail and buf_skip. */
const char *buf_peek(const struct buf *b);
/* Consume n buffered bytes (n <= buf_avail). */
void buf_skip(struct buf *b, size_t n);
/* Drop everything buffered. Used when the byte stream changes meaning,
 * as at STARTTLS: nothing read before the switch may be used after it. */
void buf_discard(struct buf *b);
/* Read up to n bytes. Returns bytes read, 0 at EOF, -1 on error. */
ssize_t buf_read(struct buf *b, void *p, size_t n);
/* Read exactly n bytes. Returns 0, or -1 (errno; EPIPE on early EOF). */
int buf_readall(struct buf *b, void *p, size_t n);

/* Read one line ending in `delim`, appending it (delimiter included) to
 * out. At most `max` bytes are taken for one line.
 * Returns  1: a whole line was read;
 *          0: EOF; out holds any partial last line;
 *         -1: error (errno), or the line is longer than max: then errno
 *             is EMSGSIZE, out holds the first max bytes and the rest of
 *             the line is still unread (see buf_skipline). */
int buf_getline(struct buf *b, struct str *out, int delim, size_t max);
/* Discard input up to and including the next delim.
 * Returns 1, 0 at EOF, -1 on error. */
int buf_skipline(struct buf *b, int delim);

/* --- output --- */

/* Queue bytes; writes to the descriptor when the buffer fills.
 * Returns 0, or -1 (errno, ETIMEDOUT on timeout). */
int buf_put(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_putnum(struct buf *b, unsigned long long n);
/* Queue bytes so that they can never drive a terminal: printable ASCII
 * as is, a backslash as "\\", every other byte as "\xHH". For showing
 * addresses and file contents that come from outside. */
int buf_putvisible(struct buf *b, const char *s, size_t n);
/* Write everything pending. */
int buf_flush(struct buf *b);
/* Bytes waiting to be written. */
size_t buf_pending(const struct buf *b);

/* Write all of p to fd, with the same timeout rules, no buffering. */
int fd_write_all(int fd, const void *p, size_t n, unsigned timeout);

#endif
