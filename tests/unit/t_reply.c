/*
 * t_reply.c: unit tests for reply_read, the SMTP client's reply parser.
 *
 * Feeds replies through pipes and proves what comes back: the code, the
 * text joined with '/', the NUL-separated lines, and the status for each
 * way a server can break the protocol (garbage, mixed codes, a bad
 * continuation, over-long lines, too many lines, EOF mid-reply, silence),
 * and the EHLO keywords read from a reply (reply_caps).
 * A test must never hang: those that could wait set an alarm first.
 */
#include "smtp/reply.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#include "unit.h"

static char space[BUF_SIZE];

/* Kill the test rather than let a broken timeout hang the suite. */
static void hang_guard(unsigned seconds)
{
	signal(SIGALRM, SIG_DFL);
	alarm(seconds);
}

/* A pipe already holding data, closed for writing: a finite server.
 * The data must fit in the pipe (64 KiB on Linux, 16 KiB at least). */
static int input_of(const char *data, size_t n)
{
	int p[2];

	hang_guard(20);
	if (pipe(p) < 0)
		exit(2);
	if (n && write(p[1], data, n) != (ssize_t)n)
		exit(2);
	close(p[1]);
	return p[0];
}

/* A buffer reading the given bytes; the whole of space unless small. */
static void serve(struct buf *b, const char *data, size_t n, size_t bufsize)
{
	buf_init(b, input_of(data, n), space, bufsize, 5);
}

static void serve_str(struct buf *b, const char *data)
{
	serve(b, data, strlen(data), sizeof space);
}

/* The status of reading one reply from data. */
static enum reply_status status_of(const char *data, size_t n)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	serve(&b, data, n, sizeof space);
	enum reply_status st = reply_read(&b, &r);
	reply_free(&r);
	close(b.fd);
	return st;
}

static enum reply_status status_str(const char *data)
{
	return status_of(data, strlen(data));
}

static double now_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* n reply lines with code 250: n-1 continuations, then a last line. */
static char *many_lines(int n, size_t *len)
{
	char *s = malloc((size_t)n * 16 + 1);
	size_t pos = 0;

	if (!s)
		exit(2);
	for (int i = 0; i < n; i++)
		pos += (size_t)sprintf(s + pos, "250%cline%d\r\n",
				       i + 1 < n ? '-' : ' ', i);
	*len = pos;
	return s;
}

/* "250 " then fill bytes of 'x', then the given ending. */
static char *long_line(size_t fill, const char *ending, size_t *len)
{
	size_t elen = strlen(ending);
	char *s = malloc(4 + fill + elen + 1);

	if (!s)
		exit(2);
	memcpy(s, "250 ", 4);
	memset(s + 4, 'x', fill);
	memcpy(s + 4 + fill, ending, elen + 1);
	*len = 4 + fill + elen;
	return s;
}

TEST(single_line)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	serve_str(&b, "220 mx.example ESMTP ready\r\n");
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 220);
	CHECK_STR(r.text.s, r.text.len, "220 mx.example ESMTP ready");
	CHECK_MEM(r.lines.s, r.lines.len, "220 mx.example ESMTP ready\0", 27);
	/* Nothing past the reply: the next read sees the EOF. */
	CHECK_INT(reply_read(&b, &r), REPLY_EOF);
	reply_free(&r);
}

TEST(code_only)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	serve_str(&b, "250\r\n");
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 250);
	CHECK_STR(r.text.s, r.text.len, "250");
	CHECK_MEM(r.lines.s, r.lines.len, "250\0", 4);
	reply_free(&r);
}

TEST(multi_line)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	serve_str(&b, "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
		      "250 8BITMIME\r\n");
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 250);
	CHECK_STR(r.text.s, r.text.len,
		  "250-mx.example/250-PIPELINING/250-SIZE 1000/250 8BITMIME");
	CHECK_MEM(r.lines.s, r.lines.len,
		  "250-mx.example\0"
		  "250-PIPELINING\0"
		  "250-SIZE 1000\0"
		  "250 8BITMIME\0",
		  15 + 15 + 14 + 13);
	reply_free(&r);
}

/* A code-only last line ends a multi-line reply too. */
TEST(multi_line_bare_last)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	serve_str(&b, "550-no such user\r\n550\r\n");
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 550);
	CHECK_STR(r.text.s, r.text.len, "550-no such user/550");
	reply_free(&r);
}

/* Pipelined replies arrive together: each read takes exactly one. */
TEST(consecutive_replies)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	serve_str(&b, "250 sender ok\r\n550-no\r\n550 really\r\n354 go\r\n");
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 250);
	CHECK_STR(r.text.s, r.text.len, "250 sender ok");
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 550);
	CHECK_STR(r.text.s, r.text.len, "550-no/550 really");
	CHECK_MEM(r.lines.s, r.lines.len,
		  "550-no\0"
		  "550 really\0",
		  18);
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 354);
	CHECK_STR(r.text.s, r.text.len, "354 go");
	CHECK_MEM(r.lines.s, r.lines.len, "354 go\0", 7);
	CHECK_INT(reply_read(&b, &r), REPLY_EOF);
	reply_free(&r);
}

TEST(every_class_accepted)
{
	CHECK_INT(status_str("221 bye\r\n"), REPLY_OK);
	CHECK_INT(status_str("354 go on\r\n"), REPLY_OK);
	CHECK_INT(status_str("421 busy\r\n"), REPLY_OK);
	CHECK_INT(status_str("599 no\r\n"), REPLY_OK);
	CHECK_INT(status_str("200\r\n"), REPLY_OK);
}

TEST(bare_lf_tolerated)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	serve_str(&b, "250-first\n250-second\r\n250 third\n");
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 250);
	CHECK_STR(r.text.s, r.text.len, "250-first/250-second/250 third");
	CHECK_MEM(r.lines.s, r.lines.len,
		  "250-first\0"
		  "250-second\0"
		  "250 third\0",
		  10 + 11 + 10);
	reply_free(&r);
}

/* Only one CR before the LF is part of the line end; controls, DEL and
 * 8-bit bytes in the text become '?', so a report can hold no NUL or
 * newline of the server's choosing. */
TEST(unsafe_bytes_in_text)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	static const char in[] = "550 a\tb\x7f"
				 "c\xff\xe9\0d\r\r\n";

	serve(&b, in, sizeof in - 1, sizeof space);
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 550);
	CHECK_STR(r.text.s, r.text.len, "550 a?b?c???d?");
	reply_free(&r);
}

/* A second read starts afresh: nothing of the first reply remains. */
TEST(reply_reused)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	serve_str(&b, "250-long first\r\n250 reply here\r\n451 x\r\n");
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 451);
	CHECK_STR(r.text.s, r.text.len, "451 x");
	CHECK_MEM(r.lines.s, r.lines.len, "451 x\0", 6);
	reply_free(&r);
}

/* Lines that span many refills of a tiny buffer come out whole. */
TEST(small_buffer)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	const char *in = "250-a line longer than the buffer\r\n"
			 "250 and another one, also long\r\n";

	serve(&b, in, strlen(in), 7);
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 250);
	CHECK_STR(r.text.s, r.text.len,
		  "250-a line longer than the buffer/"
		  "250 and another one, also long");
	reply_free(&r);
}

TEST(mixed_codes)
{
	CHECK_INT(status_str("250-a\r\n251 b\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("250-a\r\n550 b\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("550-a\r\n550-b\r\n450 c\r\n"), REPLY_PROTOCOL);
}

TEST(wrong_continuation)
{
	/* Neither '-' nor ' ' after the code, first or later line. */
	CHECK_INT(status_str("250_ok\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("250-a\r\n250+b\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("250-a\r\n250b\r\n"), REPLY_PROTOCOL);
	/* A continuation that is not a reply line at all. */
	CHECK_INT(status_str("250-a\r\nPIPELINING\r\n250 b\r\n"),
		  REPLY_PROTOCOL);
}

TEST(garbage)
{
	CHECK_INT(status_str("hello there\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("25\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("25 ok\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("2x0 ok\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str(" 250 ok\r\n"), REPLY_PROTOCOL);
	/* Codes outside 2xx..5xx. */
	CHECK_INT(status_str("199 ok\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("000 ok\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("600 ok\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_str("999 ok\r\n"), REPLY_PROTOCOL);
	CHECK_INT(status_of("2\0"
			    "50 ok\r\n",
			    9),
		  REPLY_PROTOCOL);
}

/* REPLY_LINE_MAX bytes, CRLF included, is the longest line taken. */
TEST(line_length_limit)
{
	size_t n;
	char *s;

	s = long_line(REPLY_LINE_MAX - 6, "\r\n", &n);
	CHECK_INT(n, REPLY_LINE_MAX);
	CHECK_INT(status_of(s, n), REPLY_OK);
	free(s);

	s = long_line(REPLY_LINE_MAX - 5, "\n", &n);
	CHECK_INT(n, REPLY_LINE_MAX);
	CHECK_INT(status_of(s, n), REPLY_OK);
	free(s);

	s = long_line(REPLY_LINE_MAX - 5, "\r\n", &n);
	CHECK_INT(n, REPLY_LINE_MAX + 1);
	CHECK_INT(status_of(s, n), REPLY_PROTOCOL);
	free(s);

	s = long_line(10000, "\r\n", &n);
	CHECK_INT(status_of(s, n), REPLY_PROTOCOL);
	free(s);
}

/* An over-long continuation line fails the reply too, even when the
 * buffer is small and the line arrives in pieces. */
TEST(long_continuation_line)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	size_t n;
	char *tail = long_line(REPLY_LINE_MAX, "\r\n", &n);
	char *in = malloc(n + 8);

	if (!in)
		exit(2);
	memcpy(in, "250-ok\r\n", 8);
	memcpy(in + 8, tail, n);
	serve(&b, in, n + 8, 64);
	CHECK_INT(reply_read(&b, &r), REPLY_PROTOCOL);
	reply_free(&r);
	free(tail);
	free(in);
}

/* REPLY_LINES_MAX lines are a reply; one more is a protocol error. */
TEST(line_count_limit)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	size_t n;
	char *s = many_lines(REPLY_LINES_MAX, &n);

	serve(&b, s, n, sizeof space);
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	CHECK_INT(r.code, 250);
	CHECK(r.text.len > 0 && strstr(r.text.s, "250 line99") != NULL);
	CHECK_INT(reply_read(&b, &r), REPLY_EOF);
	reply_free(&r);
	close(b.fd);
	free(s);

	s = many_lines(REPLY_LINES_MAX + 1, &n);
	CHECK_INT(status_of(s, n), REPLY_PROTOCOL);
	free(s);

	s = many_lines(1000, &n);
	CHECK_INT(status_of(s, n), REPLY_PROTOCOL);
	free(s);
}

TEST(eof)
{
	CHECK_INT(status_of("", 0), REPLY_EOF);
	/* A partial line is no reply. */
	CHECK_INT(status_str("220 ready"), REPLY_EOF);
	/* A multi-line reply cut short. */
	CHECK_INT(status_str("250-a\r\n"), REPLY_EOF);
	CHECK_INT(status_str("250-a\r\n250-b\r\n250 c"), REPLY_EOF);
}

/* A server that says nothing: REPLY_TIMEOUT after the buffer's timeout,
 * at the first line and in the middle of a reply. */
TEST(timeout)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	int p[2];

	hang_guard(10);
	if (pipe(p) < 0)
		exit(2);
	buf_init(&b, p[0], space, sizeof space, 1);
	double start = now_seconds();
	CHECK_INT(reply_read(&b, &r), REPLY_TIMEOUT);
	double took = now_seconds() - start;
	CHECK(took >= 0.9 && took < 3);

	if (write(p[1], "250-more\r\n", 10) != 10)
		exit(2);
	start = now_seconds();
	CHECK_INT(reply_read(&b, &r), REPLY_TIMEOUT);
	took = now_seconds() - start;
	CHECK(took >= 0.9 && took < 3);
	reply_free(&r);
	close(p[0]);
	close(p[1]);
}

TEST(read_error)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	buf_init(&b, -1, space, sizeof space, 1);
	CHECK_INT(reply_read(&b, &r), REPLY_IOERROR);
	buf_init(&b, -1, space, sizeof space, 0);
	CHECK_INT(reply_read(&b, &r), REPLY_IOERROR);
	CHECK_INT(errno, EBADF);
	reply_free(&r);
}

/* The caps of one EHLO reply given as its wire text. */
static void caps_of(const char *wire, struct smtp_caps *c)
{
	struct buf b;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	serve_str(&b, wire);
	CHECK_INT(reply_read(&b, &r), REPLY_OK);
	memset(c, 0x5a, sizeof *c);
	reply_caps(&r, c);
	reply_free(&r);
	close(b.fd);
}

TEST(caps_keywords)
{
	struct smtp_caps c;

	caps_of("250-mx.example hello PIPELINING SIZE 5\r\n"
		"250-pipelining\r\n250-8BITMIME\r\n250-SmtpUtf8\r\n"
		"250-STARTTLS\r\n250-AUTH LOGIN CRAM-MD5\r\n"
		"250 SIZE 10240000\r\n",
		&c);
	CHECK_INT(c.esmtp, 1);
	CHECK_INT(c.pipelining, 1);
	CHECK_INT(c.eightbitmime, 1);
	CHECK_INT(c.smtputf8, 1);
	CHECK_INT(c.starttls, 1);
	CHECK_INT(c.auth_login, 1);
	CHECK_INT(c.auth_plain, 0);
	CHECK_INT(c.has_size, 1);
	CHECK(c.size == 10240000);
	/* The greeting line is no keyword line, whatever it says. */
	caps_of("250 mx.example PIPELINING\r\n", &c);
	CHECK_INT(c.esmtp, 1);
	CHECK_INT(c.pipelining, 0);
	CHECK_INT(c.has_size, 0);
	/* Keywords are whole words. */
	caps_of("250-mx\r\n250-PIPELININGX\r\n250-STARTTLS2\r\n"
		"250 SIZEX 5\r\n",
		&c);
	CHECK_INT(c.pipelining, 0);
	CHECK_INT(c.starttls, 0);
	CHECK_INT(c.has_size, 0);
}

TEST(caps_auth_forms)
{
	struct smtp_caps c;

	caps_of("250-mx\r\n250 AUTH=PLAIN  login\r\n", &c);
	CHECK_INT(c.auth_plain, 1);
	CHECK_INT(c.auth_login, 1);
	caps_of("250-mx\r\n250-AUTH\r\n250 AUTHPLAIN\r\n", &c);
	CHECK_INT(c.auth_plain, 0);
	CHECK_INT(c.auth_login, 0);
	caps_of("250-mx\r\n250 AUTH PLAINX XLOGIN\r\n", &c);
	CHECK_INT(c.auth_plain, 0);
	CHECK_INT(c.auth_login, 0);
}

/* SIZE: one all-digit parameter is the limit; anything else is SIZE
 * with no known limit, never a number read from part of a word. */
TEST(caps_size_forms)
{
	struct smtp_caps c;

	caps_of("250-mx\r\n250 SIZE\r\n", &c);
	CHECK_INT(c.has_size, 1);
	CHECK(c.size == 0);
	caps_of("250-mx\r\n250 size  1000 \r\n", &c);
	CHECK(c.size == 1000);
	caps_of("250-mx\r\n250 SIZE 10 00\r\n", &c);
	CHECK_INT(c.has_size, 1);
	CHECK(c.size == 0);
	caps_of("250-mx\r\n250 SIZE 12abc\r\n", &c);
	CHECK(c.size == 0);
	caps_of("250-mx\r\n250 SIZE 99999999999999999999999\r\n", &c);
	CHECK(c.size == ~0ULL);
	caps_of("250-mx\r\n250 SIZE 18446744073709551615\r\n", &c);
	CHECK(c.size == ~0ULL);
	caps_of("250-mx\r\n250 SIZE 18446744073709551614\r\n", &c);
	CHECK(c.size == ~0ULL - 1);
}

UNIT_MAIN(single_line, code_only, multi_line, multi_line_bare_last,
	  consecutive_replies, every_class_accepted, bare_lf_tolerated,
	  unsafe_bytes_in_text, reply_reused, small_buffer, mixed_codes,
	  wrong_continuation, garbage, line_length_limit,
	  long_continuation_line, line_count_limit, eof, timeout, read_error,
	  caps_keywords, caps_auth_forms, caps_size_forms)
