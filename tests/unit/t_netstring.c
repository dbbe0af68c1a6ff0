/*
 * t_netstring.c: unit tests for qmqp/netstring.c.
 *
 * Input comes from a pipe holding fixed bytes, read through a normal and
 * a one-byte buffer, so that every check also holds when each byte needs
 * its own read. Nothing here touches the file system.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "qmqp/netstring.h"
#include "unit.h"

struct feed {
	struct buf b;
	char space[BUF_SIZE];
	int fd;
};

/* A buf reading data[0..n) from a pipe, then EOF. */
static void feed_open(struct feed *f, const char *data, size_t n,
		      size_t bufsize)
{
	int p[2];

	if (pipe(p) < 0 || (n && write(p[1], data, n) != (ssize_t)n)) {
		perror("pipe");
		_exit(2);
	}
	close(p[1]);
	f->fd = p[0];
	buf_init(&f->b, f->fd, f->space, bufsize, 0);
}

#define FEED(f, lit, size) feed_open((f), (lit), sizeof(lit) - 1, (size))

static const size_t sizes[] = {BUF_SIZE, 1};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* read_len on lit with max: -1 or the length. */
static long long len_of(const char *lit, size_t n, unsigned long long max,
			size_t bufsize, int *err)
{
	struct feed f;
	unsigned long long len = 12345;

	feed_open(&f, lit, n, bufsize);
	errno = 0;
	int r = netstring_read_len(&f.b, max, &len);
	*err = errno;
	close(f.fd);
	if (r < 0) {
		CHECK_INT(len, 12345); /* untouched on failure */
		return -1;
	}
	CHECK_INT(r, 0);
	return (long long)len;
}

#define LEN(lit, max, size, err)                                               \
	len_of((lit), sizeof(lit) - 1, (max), (size), (err))

TEST(read_len_values)
{
	int err;

	for (size_t i = 0; i < NSIZES; i++) {
		CHECK_INT(LEN("0:", 10, sizes[i], &err), 0);
		CHECK_INT(LEN("5:", 10, sizes[i], &err), 5);
		CHECK_INT(LEN("10:", 10, sizes[i], &err), 10);
		CHECK_INT(LEN("1234567:", 1u << 30, sizes[i], &err), 1234567);
		CHECK_INT(LEN("0:", 0, sizes[i], &err), 0);
	}
}

TEST(read_len_stops_after_colon)
{
	for (size_t i = 0; i < NSIZES; i++) {
		struct feed f;
		unsigned long long len;
		char rest[8];
		FEED(&f, "3:abc,", sizes[i]);
		CHECK_INT(netstring_read_len(&f.b, 100, &len), 0);
		CHECK_INT(len, 3);
		CHECK_INT(buf_readall(&f.b, rest, 4), 0);
		CHECK_MEM(rest, 4, "abc,", 4);
		close(f.fd);
	}
}

TEST(read_len_refuses_leading_zeros)
{
	int err;

	for (size_t i = 0; i < NSIZES; i++) {
		CHECK_INT(LEN("05:", 100, sizes[i], &err), -1);
		CHECK_INT(err, EPROTO);
		CHECK_INT(LEN("00:", 100, sizes[i], &err), -1);
		CHECK_INT(err, EPROTO);
		CHECK_INT(LEN("007:", 100, sizes[i], &err), -1);
		CHECK_INT(err, EPROTO);
	}
}

TEST(read_len_max_bound)
{
	int err;

	for (size_t i = 0; i < NSIZES; i++) {
		CHECK_INT(LEN("1002:", 1002, sizes[i], &err), 1002);
		CHECK_INT(LEN("1003:", 1002, sizes[i], &err), -1);
		CHECK_INT(err, EPROTO);
		CHECK_INT(LEN("1:", 0, sizes[i], &err), -1);
		CHECK_INT(err, EPROTO);
		CHECK_INT(LEN("10000:", 1002, sizes[i], &err), -1);
		CHECK_INT(err, EPROTO);
	}
}

TEST(read_len_overflow)
{
	int err;

	for (size_t i = 0; i < NSIZES; i++) {
		/* 30 digits: far past 64 bits, even with no maximum. */
		CHECK_INT(LEN("123456789012345678901234567890:", ULLONG_MAX,
			      sizes[i], &err),
			  -1);
		CHECK_INT(err, EPROTO);
		CHECK_INT(
		    LEN("18446744073709551616:", ULLONG_MAX, sizes[i], &err),
		    -1);
		CHECK_INT(err, EPROTO);
		CHECK_INT(
		    LEN("99999999999999999999:", ULLONG_MAX, sizes[i], &err),
		    -1);
		CHECK_INT(err, EPROTO);
	}
	/* The largest value that fits is still read exactly. */
	struct feed f;
	unsigned long long len = 0;
	FEED(&f, "18446744073709551615:", BUF_SIZE);
	CHECK_INT(netstring_read_len(&f.b, ULLONG_MAX, &len), 0);
	CHECK(len == ULLONG_MAX);
	close(f.fd);
}

TEST(read_len_malformed)
{
	static const char *const bad[] = {
	    "",	   ":",	  "5",	"5,",	"-1:", "+1:",
	    " 5:", "5 :", "x:", "1x2:", "5;",  "12",
	};
	int err;

	for (size_t i = 0; i < NSIZES; i++)
		for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
			CHECK_INT(
			    len_of(bad[k], strlen(bad[k]), 100, sizes[i], &err),
			    -1);
			CHECK_INT(err, EPROTO);
		}
}

TEST(read_len_passes_read_errors)
{
	struct buf b;
	char space[16];
	unsigned long long len;

	buf_init(&b, -1, space, sizeof space, 0);
	errno = 0;
	CHECK_INT(netstring_read_len(&b, 100, &len), -1);
	CHECK_INT(errno, EBADF);
}

TEST(read_end)
{
	for (size_t i = 0; i < NSIZES; i++) {
		struct feed f;
		FEED(&f, ",;", sizes[i]);
		CHECK_INT(netstring_read_end(&f.b), 0);
		errno = 0;
		CHECK_INT(netstring_read_end(&f.b), -1);
		CHECK_INT(errno, EPROTO);
		errno = 0;
		CHECK_INT(netstring_read_end(&f.b), -1); /* EOF */
		CHECK_INT(errno, EPROTO);
		close(f.fd);
	}
	struct buf b;
	char space[16];
	buf_init(&b, -1, space, sizeof space, 0);
	errno = 0;
	CHECK_INT(netstring_read_end(&b), -1);
	CHECK_INT(errno, EBADF);
}

TEST(read_whole)
{
	for (size_t i = 0; i < NSIZES; i++) {
		struct feed f;
		struct str s = STR_INIT;
		FEED(&f, "5:hello,0:,3:a\0b,12:hello, world,", sizes[i]);
		CHECK_INT(netstring_read(&f.b, 100, &s), 0);
		CHECK_STR(s.s, s.len, "hello");
		CHECK_INT(s.s[s.len], 0);
		CHECK_INT(netstring_read(&f.b, 100, &s), 0);
		CHECK_INT(s.len, 0);
		CHECK(s.s != NULL && s.s[0] == 0);
		CHECK_INT(netstring_read(&f.b, 100, &s), 0);
		CHECK_MEM(s.s, s.len, "a\0b", 3);
		CHECK_INT(netstring_read(&f.b, 100, &s), 0);
		CHECK_STR(s.s, s.len, "hello, world");
		/* Then EOF: no netstring at all is an error too. */
		errno = 0;
		CHECK_INT(netstring_read(&f.b, 100, &s), -1);
		CHECK_INT(errno, EPROTO);
		str_free(&s);
		close(f.fd);
	}
}

/* netstring_read on lit: returns its result, with errno in *err. */
static int read_one(const char *lit, size_t n, size_t max, size_t bufsize,
		    int *err)
{
	struct feed f;
	struct str s = STR_INIT;

	feed_open(&f, lit, n, bufsize);
	errno = 0;
	int r = netstring_read(&f.b, max, &s);
	*err = errno;
	str_free(&s);
	close(f.fd);
	return r;
}

#define READ(lit, max, size, err)                                              \
	read_one((lit), sizeof(lit) - 1, (max), (size), (err))

TEST(read_refusals)
{
	int err;

	for (size_t i = 0; i < NSIZES; i++) {
		size_t z = sizes[i];
		CHECK_INT(READ("5:hello;", 100, z, &err), -1); /* no comma */
		CHECK_INT(err, EPROTO);
		CHECK_INT(READ("5:hello", 100, z, &err), -1); /* EOF at end */
		CHECK_INT(err, EPROTO);
		CHECK_INT(READ("10:abc", 100, z, &err), -1); /* EOF inside */
		CHECK_INT(err, EPROTO);
		CHECK_INT(READ("1000000:abc", 1u << 20, z, &err), -1);
		CHECK_INT(err, EPROTO);
		CHECK_INT(READ("3:abcd,", 100, z, &err), -1); /* too short */
		CHECK_INT(err, EPROTO);
		CHECK_INT(READ("6:hello!,", 5, z, &err), -1); /* over max */
		CHECK_INT(err, EPROTO);
		CHECK_INT(READ("5:hello,", 5, z, &err), 0); /* at max */
		CHECK_INT(READ("05:hello,", 100, z, &err), -1);
		CHECK_INT(err, EPROTO);
		CHECK_INT(READ("123456789012345678901234567890:x,", SIZE_MAX, z,
			       &err),
			  -1);
		CHECK_INT(err, EPROTO);
	}
}

TEST(read_keeps_out_on_bad_length)
{
	struct feed f;
	struct str s = STR_INIT;

	CHECK_INT(str_copys(&s, "before"), 0);
	FEED(&f, "x:", BUF_SIZE);
	CHECK_INT(netstring_read(&f.b, 100, &s), -1);
	CHECK_STR(s.s, s.len, "before");
	str_free(&s);
	close(f.fd);
}

TEST(append)
{
	struct str s = STR_INIT;

	CHECK_INT(netstring_append(&s, "hello", 5), 0);
	CHECK_STR(s.s, s.len, "5:hello,");
	CHECK_INT(netstring_append(&s, "", 0), 0);
	CHECK_STR(s.s, s.len, "5:hello,0:,");
	CHECK_INT(netstring_append(&s, "a\0b", 3), 0);
	CHECK_MEM(s.s, s.len, "5:hello,0:,3:a\0b,", 17);
	str_free(&s);

	char big[1000];
	memset(big, 'x', sizeof big);
	CHECK_INT(netstring_append(&s, big, sizeof big), 0);
	CHECK_INT(s.len, 5 + 1000 + 1);
	CHECK_MEM(s.s, 5, "1000:", 5);
	CHECK_INT(s.s[s.len - 1], ',');
	str_free(&s);
}

TEST(append_then_read_round_trip)
{
	struct str enc = STR_INIT, got = STR_INIT;
	char data[300];

	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (char)i;
	for (size_t n = 0; n <= sizeof data; n += 37)
		CHECK_INT(netstring_append(&enc, data, n), 0);
	for (size_t i = 0; i < NSIZES; i++) {
		struct feed f;
		feed_open(&f, enc.s, enc.len, sizes[i]);
		for (size_t n = 0; n <= sizeof data; n += 37) {
			CHECK_INT(netstring_read(&f.b, sizeof data, &got), 0);
			CHECK_MEM(got.s, got.len, data, n);
		}
		CHECK_INT(netstring_read(&f.b, sizeof data, &got), -1);
		close(f.fd);
	}
	str_free(&enc);
	str_free(&got);
}

TEST(append_too_large)
{
	struct str s = STR_INIT;
	static const char one = 'x';

	/* The str refuses to grow past STR_MAX before reading the data, so
	 * a tiny buffer with a huge claimed length is safe to pass. */
	errno = 0;
	CHECK_INT(netstring_append(&s, &one, STR_MAX), -1);
	CHECK(errno == EOVERFLOW || errno == ENOMEM);
	str_free(&s);
}

UNIT_MAIN(read_len_values, read_len_stops_after_colon,
	  read_len_refuses_leading_zeros, read_len_max_bound, read_len_overflow,
	  read_len_malformed, read_len_passes_read_errors, read_end, read_whole,
	  read_refusals, read_keeps_out_on_bad_length, append,
	  append_then_read_round_trip, append_too_large)
