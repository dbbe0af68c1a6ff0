/*
 * mbox.c: locked, all-or-nothing appends to mbox files (see mbox.h).
 *
 * The message is streamed: >From quoting needs to look ahead only five
 * bytes, because a '>' added before a run of '>' is the same as one added
 * after it. This module must never leave a partial message in a mailbox
 * it holds locked, never truncate one it does not hold locked (another
 * writer may have appended), and never print.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/mbox.h"

static const char from_word[] = "From ";
#define FROM_LEN (sizeof from_word - 1)

/* --- the From line --- */

static int append_date(struct str *out, time_t t)
{
	static const char days[] = "SunMonTueWedThuFriSat";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char date[64];
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		errno = EOVERFLOW;
		return -1;
	}
	int n = snprintf(date, sizeof date, "%.3s %.3s %2d %02d:%02d:%02d %lld",
			 days + 3 * (tm.tm_wday % 7),
			 months + 3 * (tm.tm_mon % 12), tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, (long long)tm.tm_year + 1900);
	if (n < 0 || (size_t)n >= sizeof date) {
		errno = EOVERFLOW;
		return -1;
	}
	return str_append(out, date, (size_t)n);
}

int mbox_fromline(struct str *out, const char *sender, time_t t)
{
	str_clear(out);
	if (str_appends(out, "From ") < 0)
		return -1;
	if (!*sender)
		sender = "MAILER-DAEMON";
	for (; *sender; sender++) {
		char c = *sender;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			c = '-';
		if (str_appendc(out, c) < 0)
			return -1;
	}
	if (str_appendc(out, ' ') < 0 || append_date(out, t) < 0 ||
	    str_appendc(out, '\n') < 0)
		return -1;
	return 0;
}

/* --- locking --- */

static long long elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return -1;
	return (long long)(now.tv_sec - start->tv_sec) * 1000 +
	       (now.tv_nsec - start->tv_nsec) / 1000000;
}

int mbox_lock(int fd, unsigned timeout)
{
	struct timespec start;
	long delay_ms = 10;

	if (clock_gettime(CLOCK_MONOTONIC, &start) < 0)
		return -1;
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 1;
		if (errno == EINTR)
			continue;
		if (errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL)
			return 0;
		if (errno != EWOULDBLOCK)
			return -1;
		long long spent = elapsed_ms(&start);
		if (spent < 0)
			return -1;
		if (spent >= (long long)timeout * 1000) {
			errno = ETIMEDOUT;
			return -1;
		}
		/* Polling, not alarm(): a library must not own signals. */
		struct timespec pause = {0, delay_ms * 1000000L};
		nanosleep(&pause, NULL);
		if (delay_ms < 200)
			delay_ms *= 2;
	}
}

/* --- >From quoting --- */

enum { AT_START, MATCHING, MID_LINE };

void mbox_quote_init(struct mbox_quote *q)
{
	q->state = AT_START;
	q->matched = 0;
	q->any = 0;
	q->last = 0;
}

static int emit(struct mbox_quote *q, struct buf *out, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	q->any = 1;
	q->last = p[n - 1];
	return buf_put(out, p, n);
}

/* Copy the rest of a line, up to and including its newline if present.
 * Returns the bytes consumed, or -1. */
static ssize_t mid_line(struct mbox_quote *q, struct buf *out, const char *p,
			size_t n)
{
	const char *nl = memchr(p, '\n', n);
	size_t take = nl ? (size_t)(nl - p) + 1 : n;

	if (emit(q, out, p, take) < 0)
		return -1;
	if (nl)
		q->state = AT_START;
	return (ssize_t)take;
}

/* One byte at a line start or within the "From " match. Returns 0 or
 * -1. */
static int line_start_byte(struct mbox_quote *q, struct buf *out, char c)
{
	if (q->state == MATCHING) {
		if (c == from_word[q->matched]) {
			if (++q->matched < FROM_LEN)
				return 0;
			q->state = MID_LINE;
			if (emit(q, out, ">", 1) < 0)
				return -1;
			return emit(q, out, from_word, FROM_LEN);
		}
		q->state = MID_LINE;
		if (emit(q, out, from_word, q->matched) < 0)
			return -1;
		return mid_line(q, out, &c, 1) < 0 ? -1 : 0;
	}
	if (c == 'F') {
		q->state = MATCHING;
		q->matched = 1;
		return 0;
	}
	if (c != '>' && c != '\n')
		q->state = MID_LINE;
	return emit(q, out, &c, 1);
}

int mbox_quote_put(struct mbox_quote *q, struct buf *out, const char *p,
		   size_t n)
{
	while (n > 0) {
		if (q->state == MID_LINE) {
			ssize_t used = mid_line(q, out, p, n);
			if (used < 0)
				return -1;
			p += used;
			n -= (size_t)used;
			continue;
		}
		if (line_start_byte(q, out, *p) < 0)
			return -1;
		p++;
		n--;
	}
	return 0;
}

int mbox_quote_end(struct mbox_quote *q, struct buf *out)
{
	if (q->state == MATCHING && emit(q, out, from_word, q->matched) < 0)
		return -1;
	q->state = AT_START;
	q->matched = 0;
	if (q->any && q->last != '\n' && buf_putc(out, '\n') < 0)
		return -1;
	return buf_putc(out, '\n');
}

int mbox_copy(struct buf *out, struct buf *in, enum mbox_stage *stage)
{
	struct mbox_quote q;
	ssize_t r;

	mbox_quote_init(&q);
	while ((r = buf_fill(in)) != 0) {
		if (r < 0) {
			*stage = MBOX_READ;
			return -1;
		}
		if (mbox_quote_put(&q, out, buf_peek(in), (size_t)r) < 0) {
			*stage = MBOX_WRITE;
			return -1;
		}
		buf_skip(in, (size_t)r);
	}
	if (mbox_quote_end(&q, out) < 0) {
		*stage = MBOX_WRITE;
		return -1;
	}
	return 0;
}

/* --- delivery --- */

static int append(int fd, const void *head, size_t headlen, struct buf *msg,
		  enum mbox_stage *stage)
{
	char space[BUF_SIZE];
	struct buf out;

	buf_init(&out, fd, space, sizeof space, 0);
	*stage = MBOX_WRITE;
	if (buf_put(&out, head, headlen) < 0)
		return -1;
	if (mbox_copy(&out, msg, stage) < 0)
		return -1;
	*stage = MBOX_WRITE;
	if (buf_flush(&out) < 0 || fsync(fd) < 0)
		return -1;
	return 0;
}

int mbox_deliver(const char *path, const void *head, size_t headlen,
		 struct buf *msg, unsigned lock_timeout, enum mbox_stage *stage)
{
	*stage = MBOX_OPEN;
	int fd = open(
	    path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -1;
	*stage = MBOX_LOCK;
	int locked = mbox_lock(fd, lock_timeout);
	if (locked < 0)
		goto fail;
	*stage = MBOX_WRITE;
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		goto fail;
	if (append(fd, head, headlen, msg, stage) < 0) {
		int e = errno;
		/* Only the lock holder knows nobody appended after us. */
		if (locked && ftruncate(fd, size) == 0)
			fsync(fd);
		errno = e;
		goto fail;
	}
	/* After a successful fsync the data is safe; close cannot lose it,
	 * and cutting it back now could no longer be done by fd. */
	close(fd);
	*stage = MBOX_OK;
	return 0;
fail:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}
