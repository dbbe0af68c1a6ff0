/*
 * t_smtpdata.c: unit tests for the DATA reader (smtp/data.c).
 *
 * Drives smtp_data_read over real descriptors (a file in a private
 * mkdtemp directory, a pipe, a pipe fed by a child) and checks, byte for
 * byte, what reaches the sink, the result flags and what stays unread for
 * the next command, and that the pace of smtp_data_read_paced cuts a
 * trickle but never a steady sender. Every case runs with buffers from 1
 * byte up, so no state may be lost across refills. It must never hang:
 * tests that wait on a pipe set an alarm.
 */
#include "smtp/data.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "unit.h"

/* --- inputs --- */

/* A descriptor reading exactly data[0..n): a file that no longer has a
 * name, in a directory that is already gone. */
static int input_fd(const void *data, size_t n)
{
	char dir[] = "/tmp/t_smtpdata.XXXXXX";
	char path[sizeof dir + 8];
	const char *p = data;
	int fd;

	if (!mkdtemp(dir))
		exit(2);
	snprintf(path, sizeof path, "%s/in", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		exit(2);
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			exit(2);
		p += w;
		n -= (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0 || unlink(path) < 0 || rmdir(dir) < 0)
		exit(2);
	return fd;
}

static void hang_guard(unsigned seconds)
{
	signal(SIGALRM, SIG_DFL);
	alarm(seconds);
}

/* --- the sink --- */

struct collected {
	char *p;
	size_t len, cap;
	size_t calls, empty_calls;
};

static void collect(void *ctx, const char *p, size_t n)
{
	struct collected *c = ctx;

	c->calls++;
	if (n == 0) {
		c->empty_calls++;
		return;
	}
	if (n > c->cap - c->len) {
		size_t cap = c->cap ? c->cap : 256;
		while (cap - c->len < n) {
			if (cap > ((size_t)-1) / 2)
				exit(2);
			cap *= 2;
		}
		char *q = realloc(c->p, cap);
		if (!q)
			exit(2);
		c->p = q;
		c->cap = cap;
	}
	memcpy(c->p + c->len, p, n);
	c->len += n;
}

/* --- one run of the reader --- */

struct run {
	struct buf in;
	char *space;
	struct collected out;
	struct smtp_sink sink;
	struct data_result res;
};

static void run_open(struct run *r, int fd, size_t bufsize, unsigned timeout)
{
	memset(r, 0, sizeof *r);
	r->space = malloc(bufsize); /* exact size: ASan sees any overrun */
	if (!r->space)
		exit(2);
	buf_init(&r->in, fd, r->space, bufsize, timeout);
	r->sink.put = collect;
	r->sink.ctx = &r->out;
}

/* Read one message; the sink output of a previous call is dropped. */
static void run_read(struct run *r, unsigned long long max)
{
	r->out.len = 0;
	r->out.calls = 0;
	/* Garbage in the result proves the reader sets every field. */
	memset(&r->res, 0x5a, sizeof r->res);
	smtp_data_read(&r->in, max, &r->sink, &r->res);
}

static void run_data(struct run *r, const void *in, size_t n, size_t bufsize,
		     unsigned long long max)
{
	run_open(r, input_fd(in, n), bufsize, 0);
	run_read(r, max);
}

/* Everything still unread after the message: buffered or in the fd. */
static char *run_rest(struct run *r, size_t *n)
{
	size_t cap = 1024, len = 0;
	char *all = malloc(cap);

	for (;;) {
		if (!all)
			exit(2);
		if (len == cap) {
			cap *= 2;
			all = realloc(all, cap);
			continue;
		}
		ssize_t got = buf_read(&r->in, all + len, cap - len);
		if (got < 0)
			exit(2);
		if (got == 0)
			break;
		len += (size_t)got;
	}
	*n = len;
	return all;
}

static void run_close(struct run *r)
{
	close(r->in.fd);
	free(r->space);
	free(r->out.p);
}

#define LIT(s) s, sizeof(s) - 1

static const size_t bufsizes[] = {1, 2, 3, 4, 7, 16, 8192};
#define NBUFSIZES (sizeof bufsizes / sizeof bufsizes[0])

/* --- table of byte-level cases --- */

#define SMUGGLED                                                               \
	"MAIL FROM:<evil@x>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n"        \
	"smuggled\r\n.\r\n"
#define SMUGGLED_DECODED                                                       \
	"MAIL FROM:<evil@x>\nRCPT TO:<demo@example.test>\nDATA\nsmuggled\n"

struct data_case {
	const char *name;
	const char *in;
	size_t inlen;
	const char *out; /* NULL: not checked (the message is dropped) */
	size_t outlen;
	enum data_status status;
	const char *rest;
	size_t restlen;
};

#define CASE(name, in, out, status, rest)                                      \
	{                                                                      \
		name, in, sizeof(in) - 1, out, sizeof(out) - 1, status, rest,  \
		    sizeof(rest) - 1                                           \
	}
#define CASE_NOOUT(name, in, status, rest)                                     \
	{                                                                      \
		name, in, sizeof(in) - 1, NULL, 0, status, rest,               \
		    sizeof(rest) - 1                                           \
	}

static const struct data_case cases[] = {
    CASE("simple", "Subject: x\r\n\r\nhello\r\n.\r\n", "Subject: x\n\nhello\n",
	 DATA_OK, ""),
    CASE("empty message", ".\r\n", "", DATA_OK, ""),
    CASE("one empty line", "\r\n.\r\n", "\n", DATA_OK, ""),
    CASE("stuffed lone dot", "..\r\n.\r\n", ".\n", DATA_OK, ""),
    CASE("stuffed two dots", "...\r\n.\r\n", "..\n", DATA_OK, ""),
    CASE("stuffing and inner dots", "..x\r\n.y\r\na.b\r\na.\r\n.\r\n",
	 ".x\ny\na.b\na.\n", DATA_OK, ""),
    CASE("bare CR inside a line", "a\rb\r\n.\r\n", "a\rb\n", DATA_OK, ""),
    CASE("bare CR before CRLF", "a\r\r\n.\r\n", "a\r\n", DATA_OK, ""),
    CASE("bare CR at line start", "\r\r\n\rx\r\n.\r\n", "\r\n\rx\n", DATA_OK,
	 ""),
    CASE("two CRs then LF", "a\r\r\r\n.\r\n", "a\r\r\n", DATA_OK, ""),
    CASE("NUL passes through", "a\0b\r\n\0\r\n.\r\n", "a\0b\n\0\n", DATA_OK,
	 ""),
    CASE("pipelined command stays", "a\r\n.\r\nMAIL FROM:<x@y>\r\n", "a\n",
	 DATA_OK, "MAIL FROM:<x@y>\r\n"),
    CASE("second terminator stays", "a\r\n.\r\n.\r\n", "a\n", DATA_OK, ".\r\n"),
    CASE("dot CR dot", "x\r\n.\r.\r\n.\r\n", "x\n\r.\n", DATA_OK, ""),
    CASE("dot CR CR LF", ".\r\r\n.\r\n", "\r\n", DATA_OK, ""),
    CASE("dot then text", ".a\r\n.\r\n", "a\n", DATA_OK, ""),
    /* A bare LF stops at once; what follows it is left unread. */
    CASE("bare LF", "a\nb\r\n.\r\n", "a", DATA_BARE_LF, "b\r\n.\r\n"),
    CASE("bare LF alone", "\n", "", DATA_BARE_LF, ""),
    CASE("bare LF after CRLF", "a\r\n\n.\r\n", "a\n", DATA_BARE_LF, ".\r\n"),
    CASE("bare LF after a dot", ".\nx", "", DATA_BARE_LF, "x"),
    /* The smuggling variants: none may end the message. */
    CASE("LF . LF", "hello\n.\n" SMUGGLED, "hello", DATA_BARE_LF,
	 ".\n" SMUGGLED),
    CASE("CRLF . LF", "hello\r\n.\n" SMUGGLED, "hello\n", DATA_BARE_LF,
	 SMUGGLED),
    CASE("LF . CRLF", "hello\n.\r\n" SMUGGLED, "hello", DATA_BARE_LF,
	 ".\r\n" SMUGGLED),
    CASE("CR . CR", "hello\r.\r" SMUGGLED, "hello\r.\r" SMUGGLED_DECODED,
	 DATA_OK, ""),
    CASE("CRLF . CR", "hello\r\n.\r" SMUGGLED, "hello\n\r" SMUGGLED_DECODED,
	 DATA_OK, ""),
    CASE("CR . CRLF", "hello\r.\r\n" SMUGGLED, "hello\r.\n" SMUGGLED_DECODED,
	 DATA_OK, ""),
    CASE("CR CR LF . CR", "hello\r\r\n.\r" SMUGGLED,
	 "hello\r\n\r" SMUGGLED_DECODED, DATA_OK, ""),
    /* The client went away. */
    CASE_NOOUT("EOF at once", "", DATA_EOF, ""),
    CASE_NOOUT("EOF in a line", "abc", DATA_EOF, ""),
    CASE_NOOUT("EOF after CRLF", "abc\r\n", DATA_EOF, ""),
    CASE_NOOUT("EOF after the dot", "abc\r\n.", DATA_EOF, ""),
    CASE_NOOUT("EOF after dot CR", "abc\r\n.\r", DATA_EOF, ""),
    CASE_NOOUT("EOF after CR", "abc\r", DATA_EOF, ""),
};
#define NCASES (sizeof cases / sizeof cases[0])

static void check_case(const struct data_case *c, size_t bufsize)
{
	struct run r;
	size_t restlen;
	int bad = 0;

	run_data(&r, c->in, c->inlen, bufsize, 0);
	char *rest = run_rest(&r, &restlen);
	if (r.res.status != c->status)
		bad = 1;
	if (c->out && (r.out.len != c->outlen ||
		       memcmp(r.out.p ? r.out.p : "", c->out, c->outlen) != 0))
		bad = 1;
	if (restlen != c->restlen || memcmp(rest, c->rest, restlen) != 0)
		bad = 1;
	if (c->out && c->status == DATA_OK && r.res.bytes != c->outlen)
		bad = 1;
	if (r.out.empty_calls)
		bad = 1;
	if (bad) {
		fprintf(stderr,
			"case \"%s\" (buffer %zu): status %d (want %d), "
			"out \"%.*s\" (%zu), rest \"%.*s\", bytes %llu, "
			"empty sink calls %zu\n",
			c->name, bufsize, (int)r.res.status, (int)c->status,
			(int)r.out.len, r.out.p ? r.out.p : "", r.out.len,
			(int)restlen, rest, r.res.bytes, r.out.empty_calls);
		unit_failures++;
	}
	free(rest);
	run_close(&r);
}

TEST(byte_level_cases_at_every_buffer_size)
{
	for (size_t i = 0; i < NCASES; i++)
		for (size_t b = 0; b < NBUFSIZES; b++)
			check_case(&cases[i], bufsizes[b]);
}

/* Two messages and a command on one connection: each call takes exactly
 * its own message. */
TEST(consecutive_messages_on_one_buffer)
{
	static const char in[] = "one\r\n.\r\ntwo\r\n..\r\n.\r\nQUIT\r\n";

	for (size_t b = 0; b < NBUFSIZES; b++) {
		struct run r;
		size_t n;

		run_data(&r, LIT(in), bufsizes[b], 0);
		CHECK_INT(r.res.status, DATA_OK);
		CHECK_STR(r.out.p, r.out.len, "one\n");
		run_read(&r, 0);
		CHECK_INT(r.res.status, DATA_OK);
		CHECK_STR(r.out.p, r.out.len, "two\n.\n");
		CHECK_INT(r.res.bytes, 6);
		char *rest = run_rest(&r, &n);
		CHECK_STR(rest, n, "QUIT\r\n");
		free(rest);
		run_close(&r);
	}
}

/* The pipelined bytes are still in the buffer itself, not lost in it. */
TEST(pipelined_bytes_stay_buffered)
{
	static const char in[] = "a\r\n.\r\nRSET\r\nQUIT\r\n";
	struct run r;

	run_data(&r, LIT(in), 8192, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_STR(buf_peek(&r.in), buf_avail(&r.in), "RSET\r\nQUIT\r\n");
	run_close(&r);
}

TEST(bare_lf_leaves_the_rest_buffered)
{
	static const char in[] = "x\r\n.\nMAIL FROM:<e@x>\r\n";
	struct run r;

	run_data(&r, LIT(in), 8192, 0);
	CHECK_INT(r.res.status, DATA_BARE_LF);
	CHECK_STR(buf_peek(&r.in), buf_avail(&r.in), "MAIL FROM:<e@x>\r\n");
	run_close(&r);
}

/* --- hop counting --- */

static const char hop_input[] =
    "Received: a\r\n"
    "RECEIVED: b\r\n"
    "received:c\r\n"
    "Delivered-To: x@y\r\n"
    "DELIVERED-TO: z@y\r\n"
    ".Received: stuffed, decoded as a Received field\r\n"
    "X-Received: no\r\n"
    "Received : no\r\n"
    " Received: continuation, no\r\n"
    "\tDelivered-To: continuation, no\r\n"
    "Subject: Received: no\r\n"
    "Receive: no\r\n"
    "Delivered-T: no\r\n"
    "\r\n"
    "Received: in the body, no\r\n"
    "Delivered-To: in the body, no\r\n"
    ".\r\n";

TEST(hops_count_header_fields_only)
{
	for (size_t b = 0; b < NBUFSIZES; b++) {
		struct run r;

		run_data(&r, LIT(hop_input), bufsizes[b], 0);
		CHECK_INT(r.res.status, DATA_OK);
		CHECK_INT(r.res.hops, 6);
		CHECK_INT(r.res.header_too_long, 0);
		run_close(&r);
	}
}

TEST(hops_without_a_body)
{
	static const char in[] = "Received: a\r\nDelivered-To: b\r\n.\r\n";
	struct run r;

	run_data(&r, LIT(in), 3, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.hops, 2);
	run_close(&r);
}

/* A message with n Received fields and a body. */
static char *hops_message(int n, size_t *len)
{
	static const char field[] = "Received: from a by b; hop\r\n";
	static const char tail[] = "Subject: loop\r\n\r\nbody\r\n.\r\n";
	size_t fl = sizeof field - 1, tl = sizeof tail - 1;
	char *m = malloc(fl * (size_t)n + tl);

	if (!m)
		exit(2);
	for (int i = 0; i < n; i++)
		memcpy(m + fl * (size_t)i, field, fl);
	memcpy(m + fl * (size_t)n, tail, tl);
	*len = fl * (size_t)n + tl;
	return m;
}

TEST(hops_above_the_limit_are_counted)
{
	int counts[] = {0, DATA_HOPS_MAX, DATA_HOPS_MAX + 1, 250};

	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		struct run r;
		size_t n;
		char *m = hops_message(counts[i], &n);

		run_data(&r, m, n, 8192, 0);
		CHECK_INT(r.res.status, DATA_OK);
		CHECK_INT(r.res.hops, counts[i]);
		/* Counting never blocks the message: the server decides. */
		CHECK_INT(r.out.len, r.res.bytes);
		free(m);
		run_close(&r);
	}
}

/* --- header bounds --- */

/* "X: aaaa...\r\n" with a line of exactly len bytes (CRLF not counted),
 * then an empty line, a body, the end and a pipelined command. */
static char *long_header(size_t len, const char *body, size_t *total)
{
	static const char end[] = ".\r\nNOOP\r\n";
	size_t blen = strlen(body);
	size_t n = len + 2 + 2 + blen + sizeof end - 1;
	char *m = malloc(n);

	if (!m || len < 3)
		exit(2);
	memcpy(m, "X: ", 3);
	memset(m + 3, 'a', len - 3);
	memcpy(m + len, "\r\n\r\n", 4);
	memcpy(m + len + 4, body, blen);
	memcpy(m + len + 4 + blen, end, sizeof end - 1);
	*total = n;
	return m;
}

static void check_rest(struct run *r, const char *want)
{
	size_t n;
	char *rest = run_rest(r, &n);

	CHECK_STR(rest, n, want);
	free(rest);
}

TEST(header_line_at_the_bound_passes)
{
	size_t n;
	char *m = long_header(DATA_HEADER_LINE_MAX, "body\r\n", &n);
	struct run r;

	run_data(&r, m, n, 8192, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.header_too_long, 0);
	CHECK_INT(r.res.too_big, 0);
	CHECK_INT(r.res.bytes, DATA_HEADER_LINE_MAX + 2 + 5);
	CHECK_INT(r.out.len, r.res.bytes);
	check_rest(&r, "NOOP\r\n");
	free(m);
	run_close(&r);
}

TEST(header_line_over_the_bound_is_flagged)
{
	size_t n;
	char *m = long_header(DATA_HEADER_LINE_MAX + 1, "body\r\n", &n);
	struct run r;

	run_data(&r, m, n, 8192, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.header_too_long, 1);
	CHECK_INT(r.res.bytes, DATA_HEADER_LINE_MAX + 1 + 2 + 5);
	/* The sink stopped at the bound, with a prefix of the message. */
	CHECK(r.out.len <= DATA_HEADER_LINE_MAX);
	CHECK(r.out.len == 0 || memcmp(r.out.p, m, r.out.len) == 0);
	/* The reader still went to the end: the session stays in step. */
	check_rest(&r, "NOOP\r\n");
	free(m);
	run_close(&r);
}

TEST(two_megabyte_header_line_is_bounded)
{
	size_t len = 2 * 1024 * 1024, n;
	char *m = long_header(len, "body\r\n", &n);
	struct run r;

	run_data(&r, m, n, 8192, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.header_too_long, 1);
	CHECK_INT(r.res.bytes, len + 2 + 5);
	CHECK(r.out.len <= DATA_HEADER_LINE_MAX);
	check_rest(&r, "NOOP\r\n");
	free(m);
	run_close(&r);
}

TEST(long_body_line_is_not_a_header_problem)
{
	static const char head[] = "Subject: x\r\n\r\n";
	size_t len = 3 * DATA_HEADER_LINE_MAX, n = sizeof head - 1 + len + 5;
	char *m = malloc(n);
	struct run r;

	if (!m)
		exit(2);
	memcpy(m, head, sizeof head - 1);
	memset(m + sizeof head - 1, 'b', len);
	memcpy(m + sizeof head - 1 + len, "\r\n.\r\n", 5);
	run_data(&r, m, n, 8192, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.header_too_long, 0);
	CHECK_INT(r.out.len, sizeof head - 3 + len + 1);
	free(m);
	run_close(&r);
}

/* A header of many short lines whose decoded size, counting the empty
 * line, is total bytes; its lines are 100 bytes with LF. */
static char *many_header_lines(size_t total, size_t *n)
{
	size_t lines = (total - 1) / 100, last = (total - 1) % 100;
	size_t wire = lines * 101 + (last ? last + 1 : 0) + 2 + 5 + 5;
	char *m = malloc(wire), *p = m;

	if (!m)
		exit(2);
	for (size_t i = 0; i < lines; i++) {
		memcpy(p, "X: ", 3);
		memset(p + 3, 'h', 96);
		memcpy(p + 99, "\r\n", 2);
		p += 101;
	}
	if (last) {
		/* One more, shorter field; "X:" alone needs 2 bytes. */
		if (last < 3)
			exit(2);
		memcpy(p, "X:", 2);
		memset(p + 2, 'h', last - 3);
		memcpy(p + last - 1, "\r\n", 2);
		p += last + 1;
	}
	memcpy(p, "\r\nbody\r\n.\r\n", 11);
	p += 11;
	*n = (size_t)(p - m);
	return m;
}

TEST(header_size_bound)
{
	struct run r;
	size_t n;
	/* Under either reading of the bound (with or without the empty
	 * line), MAX bytes in all pass and MAX + 2 bytes do not. */
	char *m = many_header_lines(DATA_HEADER_MAX, &n);

	run_data(&r, m, n, 8192, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.header_too_long, 0);
	CHECK_INT(r.res.bytes, DATA_HEADER_MAX + 5);
	CHECK_INT(r.out.len, r.res.bytes);
	free(m);
	run_close(&r);

	m = many_header_lines(DATA_HEADER_MAX + 2, &n);
	run_data(&r, m, n, 8192, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.header_too_long, 1);
	CHECK_INT(r.res.bytes, DATA_HEADER_MAX + 2 + 5);
	CHECK(r.out.len <= DATA_HEADER_MAX);
	free(m);
	run_close(&r);
}

/* --- databytes --- */

TEST(databytes_exact_limit_passes)
{
	struct run r;

	run_data(&r, LIT("123456789\r\n.\r\n"), 8192, 10);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.bytes, 10);
	CHECK_INT(r.res.too_big, 0);
	CHECK_STR(r.out.p, r.out.len, "123456789\n");
	run_close(&r);
}

TEST(databytes_one_over_is_too_big)
{
	struct run r;

	run_data(&r, LIT("1234567890\r\n.\r\nQUIT\r\n"), 8192, 10);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.bytes, 11);
	CHECK_INT(r.res.too_big, 1);
	CHECK_INT(r.res.header_too_long, 0);
	CHECK(r.out.len <= 10);
	CHECK(r.out.len == 0 || memcmp(r.out.p, "1234567890", r.out.len) == 0);
	check_rest(&r, "QUIT\r\n");
	run_close(&r);
}

/* The limit is on decoded bytes: CRLF is one byte, a stuffed dot none. */
TEST(databytes_counts_decoded_bytes)
{
	struct run r;

	run_data(&r, LIT("..2\r\n..5\r\n\r\n.\r\n"), 1, 7);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.bytes, 7);
	CHECK_INT(r.res.too_big, 0);
	CHECK_STR(r.out.p, r.out.len, ".2\n.5\n\n");
	run_close(&r);

	run_data(&r, LIT("..2\r\n..5\r\n\r\n.\r\n"), 1, 6);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.bytes, 7);
	CHECK_INT(r.res.too_big, 1);
	run_close(&r);
}

TEST(databytes_zero_means_no_limit)
{
	size_t len = 3 * 1024 * 1024, n = len + 7;
	char *m = malloc(n);
	struct run r;

	if (!m)
		exit(2);
	memcpy(m, "\r\n", 2);
	memset(m + 2, 'z', len);
	memcpy(m + 2 + len, "\r\n.\r\n", 5);
	run_data(&r, m, n, 8192, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.too_big, 0);
	CHECK_INT(r.res.bytes, len + 2);
	CHECK_INT(r.out.len, len + 2);
	free(m);
	run_close(&r);
}

TEST(databytes_counting_goes_on_past_the_limit)
{
	size_t len = 1024 * 1024, n = 2 + len + 11;
	char *m = malloc(n);
	struct run r;

	if (!m)
		exit(2);
	memcpy(m, "\r\n", 2);
	memset(m + 2, 'q', len);
	memcpy(m + 2 + len, "\r\n.\r\nNOOP\r\n", 11);
	run_data(&r, m, n, 8192, 1000);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.too_big, 1);
	CHECK_INT(r.res.bytes, len + 2);
	CHECK(r.out.len <= 1000);
	check_rest(&r, "NOOP\r\n");
	free(m);
	run_close(&r);
}

/* --- 8-bit detection --- */

TEST(eightbit_detection)
{
	static const struct {
		const char *in;
		size_t n;
		int eightbit;
	} t[] = {
	    {LIT("plain\r\n\r\ntext\r\n.\r\n"), 0},
	    {LIT("Subject: caf\xc3\xa9\r\n\r\nx\r\n.\r\n"), 1},
	    {LIT("Subject: x\r\n\r\nbody \x80\r\n.\r\n"), 1},
	    {LIT(".\xff\r\n.\r\n"), 1},
	    {LIT("\x7f\x01\r\n.\r\n"), 0},
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct run r;

		run_data(&r, t[i].in, t[i].n, 2, 0);
		CHECK_INT(r.res.status, DATA_OK);
		if (r.res.eightbit != t[i].eightbit) {
			fprintf(stderr, "eightbit case %zu: %d\n", i,
				r.res.eightbit);
			unit_failures++;
		}
		run_close(&r);
	}
}

/* --- streaming --- */

/* The decoded form of the stream made by stream_line(). */
static size_t stream_line(char *p, size_t i, int wire)
{
	/* Every 7th line starts with a dot, every 5th holds a bare CR. */
	size_t n = 0;
	if (i % 7 == 0) {
		p[n++] = '.';
		if (wire)
			p[n++] = '.';
	}
	for (size_t k = 0; k < 40 + i % 30; k++)
		p[n++] = (char)('a' + (i + k) % 26);
	if (i % 5 == 0)
		p[n++] = '\r';
	p[n++] = 'x';
	if (wire)
		p[n++] = '\r';
	p[n++] = '\n';
	return n;
}

TEST(large_message_through_a_pipe_in_odd_chunks)
{
	size_t lines = 60000, cap = lines * 80 + 16, wlen = 0, dlen = 0;
	char *wire = malloc(cap), *decoded = malloc(cap);
	int p[2];
	pid_t pid;
	struct run r;

	hang_guard(60);
	if (!wire || !decoded || pipe(p) < 0)
		exit(2);
	/* A header first: without its end, all of it would be header. */
	memcpy(wire, "Subject: stream\r\n\r\n", 19);
	memcpy(decoded, "Subject: stream\n\n", 17);
	wlen = 19;
	dlen = 17;
	for (size_t i = 0; i < lines; i++) {
		wlen += stream_line(wire + wlen, i, 1);
		dlen += stream_line(decoded + dlen, i, 0);
	}
	memcpy(wire + wlen, ".\r\nQUIT\r\n", 9);
	wlen += 9;
	pid = fork();
	if (pid < 0)
		exit(2);
	if (pid == 0) {
		/* Odd write sizes make reads end anywhere in a line. */
		static const size_t sizes[] = {1, 3, 1000, 5000, 2, 7919};
		size_t off = 0;
		close(p[0]);
		for (size_t k = 0; off < wlen; k++) {
			size_t n = sizes[k % 6];
			if (n > wlen - off)
				n = wlen - off;
			if (write(p[1], wire + off, n) != (ssize_t)n)
				_exit(1);
			off += n;
		}
		_exit(0);
	}
	close(p[1]);
	run_open(&r, p[0], 8192, 5);
	run_read(&r, 0);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.bytes, dlen);
	CHECK_INT(r.res.too_big, 0);
	CHECK_INT(r.res.header_too_long, 0);
	CHECK(r.out.len == dlen && memcmp(r.out.p, decoded, dlen) == 0);
	/* Handed over in chunks, not byte by byte. */
	CHECK(r.out.calls <= dlen / 1024 + 1);
	check_rest(&r, "QUIT\r\n");
	int status;
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(wire);
	free(decoded);
	run_close(&r);
}

/* --- read errors --- */

TEST(read_error_is_reported)
{
	struct run r;

	run_open(&r, -1, 64, 0);
	run_read(&r, 0);
	CHECK_INT(r.res.status, DATA_READ_ERROR);
	CHECK_INT(errno, EBADF);
	free(r.space);
}

TEST(silent_client_times_out)
{
	int p[2];
	struct run r;
	time_t start;

	hang_guard(10);
	if (pipe(p) < 0)
		exit(2);
	if (write(p[1], "half a line", 11) != 11)
		exit(2);
	run_open(&r, p[0], 64, 1);
	start = time(NULL);
	run_read(&r, 0);
	CHECK_INT(r.res.status, DATA_READ_ERROR);
	CHECK_INT(errno, ETIMEDOUT);
	CHECK(time(NULL) - start <= 3);
	close(p[1]);
	run_close(&r);
}

/* --- the pace (smtp_data_read_paced) --- */

static double now_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A child that writes `chunk` every `ms` milliseconds, `count` times
 * (0: until the reader goes away), then `tail`, then exits. */
static pid_t paced_writer(int fd, const char *chunk, unsigned ms,
			  unsigned count, const char *tail)
{
	pid_t pid = fork();

	if (pid < 0)
		exit(2);
	if (pid > 0)
		return pid;
	signal(SIGPIPE, SIG_DFL);
	struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000};
	for (unsigned i = 0; count == 0 || i < count; i++) {
		if (write(fd, chunk, strlen(chunk)) < 0)
			_exit(1);
		nanosleep(&pause, NULL);
	}
	if (write(fd, tail, strlen(tail)) < 0)
		_exit(1);
	_exit(0);
}

static void run_read_paced(struct run *r, unsigned window,
			   unsigned long long min_bytes)
{
	const struct data_pace pace = {window, min_bytes};

	r->out.len = 0;
	r->out.calls = 0;
	memset(&r->res, 0x5a, sizeof r->res);
	smtp_data_read_paced(&r->in, 0, &pace, &r->sink, &r->res);
}

TEST(pace_cuts_a_trickle)
{
	int p[2];
	struct run r;

	hang_guard(20);
	if (pipe(p) < 0)
		exit(2);
	/* A byte every 100 ms: each read comes well within its 5 seconds,
	 * but a window of 1 second wants 1000 bytes. */
	pid_t pid = paced_writer(p[1], "x", 100, 0, "");
	close(p[1]);
	run_open(&r, p[0], 64, 5);
	double start = now_seconds();
	run_read_paced(&r, 1, 1000);
	double took = now_seconds() - start;
	CHECK_INT(r.res.status, DATA_READ_ERROR);
	CHECK_INT(errno, ETIMEDOUT);
	CHECK(took >= 0.9);
	CHECK(took < 4.5);
	CHECK(r.res.bytes >= 2);
	/* The deadline is gone with the message. */
	CHECK_INT(r.in.has_deadline, 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	run_close(&r);
}

TEST(pace_lets_a_steady_sender_finish)
{
	int p[2];
	struct run r;
	char chunk[601];

	hang_guard(30);
	if (pipe(p) < 0)
		exit(2);
	memset(chunk, 'a', 598);
	memcpy(chunk + 598, "\r\n", 3);
	/* 600 bytes every 100 ms for 4 seconds: longer than the 3-second
	 * window, and always far above its 500 bytes. */
	pid_t pid = paced_writer(p[1], chunk, 100, 40, ".\r\nQUIT\r\n");
	close(p[1]);
	run_open(&r, p[0], 8192, 5);
	run_read_paced(&r, 3, 500);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_INT(r.res.bytes, 40 * 599);
	CHECK_INT(r.out.len, 40 * 599);
	CHECK_INT(r.in.has_deadline, 0);
	check_rest(&r, "QUIT\r\n");
	int status;
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	run_close(&r);
}

TEST(pace_with_window_zero_is_no_rule)
{
	struct run r;
	static const char in[] = "Subject: x\r\n\r\nhi\r\n.\r\n";

	run_open(&r, input_fd(in, sizeof in - 1), 4, 0);
	run_read_paced(&r, 0, 1000);
	CHECK_INT(r.res.status, DATA_OK);
	CHECK_STR(r.out.p, r.out.len, "Subject: x\n\nhi\n");
	CHECK_INT(r.in.has_deadline, 0);
	run_close(&r);
}

UNIT_MAIN(byte_level_cases_at_every_buffer_size,
	  consecutive_messages_on_one_buffer, pipelined_bytes_stay_buffered,
	  bare_lf_leaves_the_rest_buffered, hops_count_header_fields_only,
	  hops_without_a_body, hops_above_the_limit_are_counted,
	  header_line_at_the_bound_passes,
	  header_line_over_the_bound_is_flagged,
	  two_megabyte_header_line_is_bounded,
	  long_body_line_is_not_a_header_problem, header_size_bound,
	  databytes_exact_limit_passes, databytes_one_over_is_too_big,
	  databytes_counts_decoded_bytes, databytes_zero_means_no_limit,
	  databytes_counting_goes_on_past_the_limit, eightbit_detection,
	  large_message_through_a_pipe_in_odd_chunks, read_error_is_reported,
	  silent_client_times_out, pace_cuts_a_trickle,
	  pace_lets_a_steady_sender_finish, pace_with_window_zero_is_no_rule)
