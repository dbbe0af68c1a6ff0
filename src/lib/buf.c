/*
 * buf.c: buffered descriptor I/O where every read and write has a deadline.
 *
 * Each single read() or write() may wait at most b->timeout seconds for the
 * descriptor to become ready, and never past the buffer's deadline when it
 * has one (a bound on a whole exchange, however slowly it trickles in).
 * This module must never change the file status flags of a descriptor (a
 * socket may be shared with other processes), never touch signal
 * dispositions, never grow a buffer and never print anything.
 */
#include "buf.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The limits of one timed operation: start + timeout, and the absolute
 * end set by buf_setdeadline, whichever comes first. */
struct deadline {
	struct timespec start;
	unsigned timeout;
	const struct timespec *end; /* NULL: none */
};

static void deadline_start(struct deadline *d, unsigned timeout,
			   const struct timespec *end)
{
	d->timeout = timeout;
	d->end = end;
	d->start.tv_sec = 0;
	d->start.tv_nsec = 0;
	if (timeout && clock_gettime(CLOCK_MONOTONIC, &d->start) < 0) {
		/* Without a clock, every wait gets the full timeout. */
		d->start.tv_sec = 0;
		d->start.tv_nsec = -1;
	}
}

static int deadline_limited(const struct deadline *d)
{
	return d->timeout || d->end;
}

/* Milliseconds from a to b (negative when b is earlier). */
static long long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (long long)(b->tv_sec - a->tv_sec) * 1000 +
	       (b->tv_nsec - a->tv_nsec) / 1000000;
}

/* Milliseconds left before the nearer limit, recomputed after each EINTR.
 * Only called when deadline_limited(d). */
static long long deadline_left_ms(const struct deadline *d)
{
	struct timespec now;
	int have_now = clock_gettime(CLOCK_MONOTONIC, &now) == 0;
	long long left = LLONG_MAX;

	if (d->timeout) {
		left = (long long)d->timeout * 1000;
		if (d->start.tv_nsec >= 0 && have_now) {
			long long elapsed = ms_between(&d->start, &now);
			if (elapsed > 0)
				left -= elapsed;
		}
	}
	if (d->end) {
		/* Without a clock now, an end that was set is taken as
		 * reached: a limit must never become none. */
		long long until = have_now ? ms_between(&now, d->end) : 0;
		if (until < left)
			left = until;
	}
	return left;
}

/*
 * Wait until fd is ready for `events`, an error or a hangup is reported, or
 * the deadline passes (ETIMEDOUT). A timeout of 0 waits without limit. Any
 * revents lets the caller go on: read() or write() then reports the EOF or
 * the error itself. Once the deadline has passed, a descriptor that is
 * ready at once still counts: a peer whose bytes have been waiting while
 * we were busy elsewhere is not to blame for our delay.
 */
static int wait_ready(int fd, short events, const struct deadline *d)
{
	if (fd < 0) {
		/* poll() would silently ignore it and wait out the timeout. */
		errno = EBADF;
		return -1;
	}
	for (;;) {
		long long left = -1;
		if (deadline_limited(d)) {
			left = deadline_left_ms(d);
			if (left < 0)
				left = 0; /* one look, without waiting */
		}
		int ms = left > INT_MAX ? INT_MAX : (int)left;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		/* Trust poll's own clock for the last stretch: no extra round
		 * for a millisecond lost to rounding. */
		if (r == 0 && ms == left)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
	}
	errno = ETIMEDOUT;
	return -1;
}

static int is_again(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK;
}

/* The buffer's absolute end, for deadline_start. */
static const struct timespec *end_of(const struct buf *b)
{
	return b->has_deadline ? &b->deadline : NULL;
}

/* One read() of at most n bytes, waiting as the limits allow. */
static ssize_t timed_read(int fd, void *p, size_t n, unsigned timeout,
			  const struct timespec *end)
{
	struct deadline d;

	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	deadline_start(&d, timeout, end);
	if (deadline_limited(&d) && wait_ready(fd, POLLIN, &d) < 0)
		return -1;
	for (;;) {
		ssize_t r = read(fd, p, n);
		if (r >= 0)
			return r;
		if (errno != EINTR && !is_again(errno))
			return -1;
		/* A non-blocking descriptor set up by someone else must be
		 * waited for, or the loop would spin. */
		if ((deadline_limited(&d) || is_again(errno)) &&
		    wait_ready(fd, POLLIN, &d) < 0)
			return -1;
	}
}

/*
 * One write() of some of p. With a limit, at most PIPE_BUF bytes go in
 * one call: POLLOUT promises room for that much on a pipe, so a blocking
 * descriptor cannot hold the write past the deadline.
 */
static ssize_t timed_write(int fd, const void *p, size_t n, unsigned timeout,
			   const struct timespec *end)
{
	struct deadline d;

	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	deadline_start(&d, timeout, end);
	if (deadline_limited(&d)) {
		if (wait_ready(fd, POLLOUT, &d) < 0)
			return -1;
		if (n > PIPE_BUF)
			n = PIPE_BUF;
	}
	for (;;) {
		ssize_t r = write(fd, p, n);
		if (r > 0)
			return r;
		if (r == 0) {
			/* No progress and no reason: do not spin on it. */
			errno = EIO;
			return -1;
		}
		if (errno != EINTR && !is_again(errno))
			return -1;
		if ((deadline_limited(&d) || is_again(errno)) &&
		    wait_ready(fd, POLLOUT, &d) < 0)
			return -1;
	}
}

/* Write all of p; *done tells how much went out, also on failure. */
static int write_all(int fd, const char *p, size_t n, unsigned timeout,
		     const struct timespec *end, size_t *done)
{
	*done = 0;
	while (*done < n) {
		ssize_t w = timed_write(fd, p + *done, n - *done, timeout, end);
		if (w < 0)
			return -1;
		*done += (size_t)w;
	}
	return 0;
}

int fd_write_all(int fd, const void *p, size_t n, unsigned timeout)
{
	size_t done;

	return write_all(fd, p, n, timeout, NULL, &done);
}

void buf_init(struct buf *b, int fd, char *space, size_t size, unsigned timeout)
{
	b->fd = fd;
	b->x = space;
	b->size = space ? size : 0;
	b->pos = 0;
	b->len = 0;
	b->timeout = timeout;
	b->has_deadline = 0;
	b->deadline.tv_sec = 0;
	b->deadline.tv_nsec = 0;
}

void buf_setfd(struct buf *b, int fd)
{
	b->fd = fd;
}

void buf_settimeout(struct buf *b, unsigned timeout)
{
	b->timeout = timeout;
}

int buf_setdeadline(struct buf *b, unsigned seconds)
{
	struct timespec now;
	time_t end;

	b->has_deadline = 0;
	if (seconds == 0)
		return 0;
	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return -1;
	if (seconds > INT_MAX ||
	    __builtin_add_overflow(now.tv_sec, (time_t)seconds, &end))
		return 0; /* beyond what the clock can say: no limit */
	b->deadline.tv_sec = end;
	b->deadline.tv_nsec = now.tv_nsec;
	b->has_deadline = 1;
	return 0;
}

/* --- input --- */

size_t buf_avail(const struct buf *b)
{
	return b->len - b->pos;
}

int buf_hasline(const struct buf *b, int delim)
{
	return b->len > b->pos &&
	       memchr(b->x + b->pos, delim, b->len - b->pos) != NULL;
}

const char *buf_peek(const struct buf *b)
{
	return b->x + b->pos;
}

void buf_skip(struct buf *b, size_t n)
{
	size_t avail = buf_avail(b);

	b->pos += n < avail ? n : avail;
	if (b->pos == b->len)
		buf_discard(b);
}

void buf_discard(struct buf *b)
{
	b->pos = 0;
	b->len = 0;
}

ssize_t buf_fill(struct buf *b)
{
	size_t avail = buf_avail(b);

	if (avail)
		return (ssize_t)avail;
	if (b->size == 0) {
		errno = EINVAL;
		return -1;
	}
	/* Empty, so the whole storage is free and no byte needs moving. */
	b->pos = 0;
	b->len = 0;
	ssize_t r = timed_read(b->fd, b->x, b->size, b->timeout, end_of(b));
	if (r > 0)
		b->len = (size_t)r;
	return r;
}

ssize_t buf_read(struct buf *b, void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_avail(b) == 0 && n >= b->size) {
		/* Copying through the buffer would only cost a memcpy. */
		return timed_read(b->fd, p, n, b->timeout, end_of(b));
	}
	ssize_t r = buf_fill(b);
	if (r <= 0)
		return r;
	if (n > (size_t)r)
		n = (size_t)r;
	memcpy(p, buf_peek(b), n);
	buf_skip(b, n);
	return (ssize_t)n;
}

int buf_readall(struct buf *b, void *p, size_t n)
{
	char *to = p;

	while (n) {
		ssize_t r = buf_read(b, to, n);
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EPIPE;
			return -1;
		}
		to += r;
		n -= (size_t)r;
	}
	return 0;
}

int buf_getline(struct buf *b, struct str *out, int delim, size_t max)
{
	size_t taken = 0;

	for (;;) {
		ssize_t r = buf_fill(b);
		if (r <= 0)
			return (int)r;
		size_t look = (size_t)r;
		if (look > max - taken)
			look = max - taken;
		const char *p = buf_peek(b);
		const char *end = memchr(p, delim, look);
		size_t n = end ? (size_t)(end - p) + 1 : look;
		if (str_append(out, p, n) < 0)
			return -1;
		buf_skip(b, n);
		taken += n;
		if (end)
			return 1;
		if (taken == max) {
			errno = EMSGSIZE;
			return -1;
		}
	}
}

int buf_skipline(struct buf *b, int delim)
{
	for (;;) {
		ssize_t r = buf_fill(b);
		if (r <= 0)
			return (int)r;
		const char *p = buf_peek(b);
		const char *end = memchr(p, delim, (size_t)r);
		if (end) {
			buf_skip(b, (size_t)(end - p) + 1);
			return 1;
		}
		buf_skip(b, (size_t)r);
	}
}

/* --- output --- */

size_t buf_pending(const struct buf *b)
{
	return b->len;
}

int buf_flush(struct buf *b)
{
	size_t done;
	int r = write_all(b->fd, b->x, b->len, b->timeout, end_of(b), &done);

	/* Keep what did not go out, so buf_pending stays truthful. */
	if (done && done < b->len)
		memmove(b->x, b->x + done, b->len - done);
	b->len -= done;
	return r;
}

int buf_put(struct buf *b, const void *p, size_t n)
{
	const char *from = p;
	size_t room = b->size - b->len;

	if (n <= room) {
		if (n)
			memcpy(b->x + b->len, from, n);
		b->len += n;
		return 0;
	}
	if (b->len) {
		/* Top up the buffer so the flush writes a full one. */
		memcpy(b->x + b->len, from, room);
		b->len += room;
		from += room;
		n -= room;
		if (buf_flush(b) < 0)
			return -1;
	}
	if (n >= b->size) {
		size_t done;
		return write_all(b->fd, from, n, b->timeout, end_of(b), &done);
	}
	memcpy(b->x, from, n);
	b->len = n;
	return 0;
}

int buf_puts(struct buf *b, const char *s)
{
	return buf_put(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
	if (b->len < b->size) {
		b->x[b->len++] = c;
		return 0;
	}
	return buf_put(b, &c, 1);
}

int buf_putnum(struct buf *b, unsigned long long n)
{
	char digits[3 * sizeof n];
	size_t i = sizeof digits;

	do {
		digits[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	return buf_put(b, digits + i, sizeof digits - i);
}

int buf_putvisible(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int r;
		if (c == '\\') {
			r = buf_put(b, "\\\\", 2);
		} else if (c >= 0x20 && c < 0x7f) {
			r = buf_put(b, &s[i], 1);
		} else {
			char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
			r = buf_put(b, e, sizeof e);
		}
		if (r < 0)
			return -1;
	}
	return 0;
}
