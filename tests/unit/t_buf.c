/*
 * t_buf.c: unit tests for buf.c, the buffered I/O with timeouts.
 *
 * Proves line reading across refills and its bounds, EOF and error paths,
 * read and write timeouts (each within about its one second, never
 * forever), deadlines that bound a whole exchange however it trickles,
 * EPIPE, large output arriving intact, and buf_discard. A test
 * must never hang: each one that could sets an alarm that kills it.
 */
#include "lib/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "unit.h"

/* A pipe already holding data and closed for writing: a finite input. */
static int input_of(const char *data, size_t n)
{
	int p[2];

	if (pipe(p) < 0)
		exit(2);
	if (write(p[1], data, n) != (ssize_t)n)
		exit(2);
	close(p[1]);
	return p[0];
}

static int input_str(const char *data)
{
	return input_of(data, strlen(data));
}

static double now_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Kill the test rather than let a broken timeout hang the suite. */
static void hang_guard(unsigned seconds)
{
	signal(SIGALRM, SIG_DFL);
	alarm(seconds);
}

/* Read everything from fd until EOF into a malloc'd buffer. */
static char *slurp(int fd, size_t *n)
{
	size_t cap = 1 << 16, len = 0;
	char *all = malloc(cap);

	for (;;) {
		if (!all)
			exit(2);
		if (len == cap) {
			cap *= 2;
			all = realloc(all, cap);
			continue;
		}
		ssize_t r = read(fd, all + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	*n = len;
	return all;
}

/* Deterministic bytes that make a reordering or a loss visible. */
static void pattern(char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + (i * 7 + i / 251) % 26);
}

TEST(getline_tiny_buffer)
{
	char space[4];
	struct buf b;
	struct str line = STR_INIT;

	hang_guard(10);
	buf_init(&b, input_str("hello world\nab\n\nxyz\n"), space, sizeof space,
		 0);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "hello world\n");
	str_clear(&line);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "ab\n");
	str_clear(&line);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "\n");
	str_clear(&line);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "xyz\n");
	str_clear(&line);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 0);
	CHECK_INT(line.len, 0);
	str_free(&line);
	close(b.fd);
}

TEST(getline_appends_and_other_delimiter)
{
	char space[3];
	struct buf b;
	struct str out = STR_INIT;

	buf_init(&b, input_of("ab\0cdef\0", 8), space, sizeof space, 1);
	CHECK_INT(str_appends(&out, ">"), 0);
	CHECK_INT(buf_getline(&b, &out, '\0', 10), 1);
	CHECK_MEM(out.s, out.len, ">ab\0", 4);
	CHECK_INT(buf_getline(&b, &out, '\0', 10), 1);
	CHECK_MEM(out.s, out.len, ">ab\0cdef\0", 9);
	str_free(&out);
	close(b.fd);
}

TEST(getline_too_long_then_skipline)
{
	char space[4];
	struct buf b;
	struct str line = STR_INIT;

	hang_guard(10);
	buf_init(&b, input_str("abcdefghij\nabcd\nok\n"), space, sizeof space,
		 0);
	errno = 0;
	CHECK_INT(buf_getline(&b, &line, '\n', 5), -1);
	CHECK_INT(errno, EMSGSIZE);
	CHECK_STR(line.s, line.len, "abcde");
	/* The rest of the long line is still there, unread. */
	CHECK_INT(buf_skipline(&b, '\n'), 1);
	str_clear(&line);
	/* Exactly max bytes, delimiter included, is still a line. */
	CHECK_INT(buf_getline(&b, &line, '\n', 5), 1);
	CHECK_STR(line.s, line.len, "abcd\n");
	str_clear(&line);
	CHECK_INT(buf_getline(&b, &line, '\n', 5), 1);
	CHECK_STR(line.s, line.len, "ok\n");
	str_free(&line);
	close(b.fd);
}

TEST(getline_too_long_leaves_rest_unread)
{
	char space[64];
	struct buf b;
	struct str line = STR_INIT;
	char rest[6];

	hang_guard(10);
	buf_init(&b, input_str("0123456789\n"), space, sizeof space, 0);
	CHECK_INT(buf_getline(&b, &line, '\n', 6), -1);
	CHECK_INT(errno, EMSGSIZE);
	CHECK_STR(line.s, line.len, "012345");
	CHECK_INT(buf_readall(&b, rest, sizeof rest - 1), 0);
	CHECK_MEM(rest, 5, "6789\n", 5);
	str_free(&line);
	close(b.fd);
}

TEST(getline_partial_last_line)
{
	char space[4];
	struct buf b;
	struct str line = STR_INIT;

	hang_guard(10);
	buf_init(&b, input_str("one\ntwo"), space, sizeof space, 1);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "one\n");
	str_clear(&line);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 0);
	CHECK_STR(line.s, line.len, "two");
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 0);
	CHECK_STR(line.s, line.len, "two");
	str_free(&line);
	close(b.fd);
}

/* hasline sees only what is buffered, and never reads. */
TEST(hasline_only_whole_buffered_lines)
{
	char space[64];
	struct buf b;
	struct str line = STR_INIT;

	hang_guard(10);
	buf_init(&b, input_str("NOOP\r\nST"), space, sizeof space, 1);
	CHECK_INT(buf_hasline(&b, '\n'), 0); /* nothing read yet */
	CHECK_INT(buf_fill(&b), 8);
	CHECK_INT(buf_hasline(&b, '\n'), 1);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "NOOP\r\n");
	CHECK_INT(buf_avail(&b), 2);
	CHECK_INT(buf_hasline(&b, '\n'), 0); /* "ST": unfinished */
	CHECK_INT(buf_hasline(&b, 'T'), 1);
	str_free(&line);
	close(b.fd);
}

TEST(skipline_at_eof)
{
	char space[4];
	struct buf b;
	struct str line = STR_INIT;

	hang_guard(10);
	buf_init(&b, input_str("skipped line\nkept\nno end"), space,
		 sizeof space, 0);
	CHECK_INT(buf_skipline(&b, '\n'), 1);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "kept\n");
	CHECK_INT(buf_skipline(&b, '\n'), 0);
	CHECK_INT(buf_avail(&b), 0);
	str_free(&line);
	close(b.fd);
}

TEST(read_across_refills)
{
	char space[4];
	struct buf b;
	char got[16];

	buf_init(&b, input_str("abcdefghijklmnopqrstuvwxyz"), space,
		 sizeof space, 0);
	CHECK_INT(buf_fill(&b), 4);
	CHECK_MEM(buf_peek(&b), buf_avail(&b), "abcd", 4);
	buf_skip(&b, 1);
	CHECK_INT(buf_fill(&b), 3);
	CHECK_INT(buf_read(&b, got, 2), 2);
	CHECK_MEM(got, 2, "bc", 2);
	CHECK_INT(buf_readall(&b, got, 10), 0);
	CHECK_MEM(got, 10, "defghijklm", 10);
	CHECK_INT(buf_avail(&b), 0);
	CHECK_INT(buf_read(&b, got, 2), 2);
	CHECK_MEM(got, 2, "no", 2);
	CHECK_INT(buf_avail(&b), 2);
	CHECK_INT(buf_read(&b, got, 8), 2);
	CHECK_MEM(got, 2, "pq", 2);
	/* Empty, and asked for at least a buffer's worth: read directly. */
	CHECK_INT(buf_read(&b, got, 8), 8);
	CHECK_MEM(got, 8, "rstuvwxy", 8);
	CHECK_INT(buf_avail(&b), 0);
	CHECK_INT(buf_read(&b, got, 0), 0);
	CHECK_INT(buf_read(&b, got, 8), 1);
	CHECK_MEM(got, 1, "z", 1);
	CHECK_INT(buf_read(&b, got, 8), 0);
	CHECK_INT(buf_fill(&b), 0);
	close(b.fd);
}

TEST(readall_truncated)
{
	char space[4];
	struct buf b;
	char got[8];

	buf_init(&b, input_str("abcde"), space, sizeof space, 1);
	errno = 0;
	CHECK_INT(buf_readall(&b, got, 8), -1);
	CHECK_INT(errno, EPIPE);
	CHECK_MEM(got, 5, "abcde", 5);
	close(b.fd);
}

TEST(eof_with_timeout_is_immediate)
{
	char space[16];
	struct buf b;
	struct str line = STR_INIT;

	hang_guard(10);
	buf_init(&b, input_str(""), space, sizeof space, 5);
	double start = now_seconds();
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 0);
	CHECK(now_seconds() - start < 1.0);
	close(b.fd);
}

TEST(read_timeout)
{
	char space[16];
	struct buf b;
	struct str line = STR_INIT;
	int p[2];

	hang_guard(10);
	CHECK_INT(pipe(p), 0);
	CHECK_INT(write(p[1], "partial", 7), 7);
	buf_init(&b, p[0], space, sizeof space, 1);
	double start = now_seconds();
	errno = 0;
	CHECK_INT(buf_getline(&b, &line, '\n', 100), -1);
	CHECK_INT(errno, ETIMEDOUT);
	double took = now_seconds() - start;
	CHECK(took >= 0.9);
	CHECK(took < 2.5);
	CHECK_STR(line.s, line.len, "partial");
	/* The descriptor is still usable after a timeout. */
	CHECK_INT(write(p[1], "!\n", 2), 2);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "partial!\n");
	str_free(&line);
	close(p[0]);
	close(p[1]);
}

static volatile sig_atomic_t interrupts;

static void count_interrupt(int sig)
{
	(void)sig;
	if (++interrupts > 50)
		_exit(3); /* ten seconds: the timeout never fired */
}

TEST(read_timeout_survives_signals)
{
	char space[16];
	struct buf b;
	int p[2];
	struct sigaction sa;
	struct itimerval every = {{0, 200000}, {0, 200000}};

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = count_interrupt;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: poll() must see EINTR */
	CHECK_INT(sigaction(SIGALRM, &sa, NULL), 0);
	CHECK_INT(pipe(p), 0);
	buf_init(&b, p[0], space, sizeof space, 1);
	CHECK_INT(setitimer(ITIMER_REAL, &every, NULL), 0);
	double start = now_seconds();
	errno = 0;
	CHECK_INT(buf_fill(&b), -1);
	CHECK_INT(errno, ETIMEDOUT);
	double took = now_seconds() - start;
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	/* Interrupted several times, yet one second in all, not more. */
	CHECK(interrupts >= 3);
	CHECK(took >= 0.9);
	CHECK(took < 1.6);
	close(p[0]);
	close(p[1]);
}

static char big[1 << 20];

TEST(write_timeout)
{
	char space[BUF_SIZE];
	struct buf b;
	int p[2];

	hang_guard(10);
	CHECK_INT(pipe(p), 0);
	int flags = fcntl(p[1], F_GETFL);
	buf_init(&b, p[1], space, sizeof space, 1);
	double start = now_seconds();
	errno = 0;
	/* Far more than a pipe holds, and the reader never reads. */
	CHECK_INT(buf_put(&b, big, sizeof big), -1);
	CHECK_INT(errno, ETIMEDOUT);
	double took = now_seconds() - start;
	CHECK(took >= 0.9);
	CHECK(took < 2.5);
	/* The shared descriptor's flags were never touched. */
	CHECK_INT(fcntl(p[1], F_GETFL), flags);

	/* A flush that times out keeps what it could not write. */
	buf_init(&b, p[1], space, sizeof space, 1);
	CHECK_INT(buf_puts(&b, "pending"), 0);
	CHECK_INT(buf_pending(&b), 7);
	errno = 0;
	CHECK_INT(buf_flush(&b), -1);
	CHECK_INT(errno, ETIMEDOUT);
	CHECK_INT(buf_pending(&b), 7);
	CHECK_MEM(b.x, b.len, "pending", 7);
	close(p[0]);
	close(p[1]);
}

/* Append the bytes of fd that are not filler ('#') until it would block. */
static void drain_data(int fd, char *to, size_t cap, size_t *len)
{
	char chunk[4096];
	ssize_t r;

	while ((r = read(fd, chunk, sizeof chunk)) > 0)
		for (ssize_t i = 0; i < r; i++)
			if (chunk[i] != '#' && *len < cap)
				to[(*len)++] = chunk[i];
}

TEST(flush_failure_keeps_unwritten_tail)
{
	char space[3 * PIPE_BUF], data[3 * PIPE_BUF], got[3 * PIPE_BUF];
	char filler[PIPE_BUF];
	struct buf b;
	int p[2];
	size_t len = 0;

	hang_guard(10);
	pattern(data, sizeof data);
	memset(filler, '#', sizeof filler);
	CHECK_INT(pipe(p), 0);
	/* Fill the pipe, then make room for a single piece of PIPE_BUF. */
	CHECK_INT(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
	while (write(p[1], filler, sizeof filler) > 0)
		;
	CHECK_INT(fcntl(p[1], F_SETFL, 0), 0);
	CHECK_INT(read(p[0], got, PIPE_BUF), PIPE_BUF);

	buf_init(&b, p[1], space, sizeof space, 1);
	CHECK_INT(buf_put(&b, data, sizeof data), 0);
	CHECK_INT(buf_pending(&b), sizeof data);
	errno = 0;
	CHECK_INT(buf_flush(&b), -1);
	CHECK_INT(errno, ETIMEDOUT);
	size_t left = buf_pending(&b);
	CHECK(left > 0 && left < sizeof data);

	/* What went out plus what is still pending is the data, once. */
	CHECK_INT(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	drain_data(p[0], got, sizeof got, &len);
	CHECK_INT(len + left, sizeof data);
	CHECK_INT(buf_flush(&b), 0);
	CHECK_INT(buf_pending(&b), 0);
	close(p[1]);
	drain_data(p[0], got, sizeof got, &len);
	CHECK_MEM(got, len, data, sizeof data);
	close(p[0]);
}

TEST(fd_write_all_timeout)
{
	int p[2];

	hang_guard(10);
	CHECK_INT(pipe(p), 0);
	double start = now_seconds();
	errno = 0;
	CHECK_INT(fd_write_all(p[1], big, sizeof big, 1), -1);
	CHECK_INT(errno, ETIMEDOUT);
	double took = now_seconds() - start;
	CHECK(took >= 0.9);
	CHECK(took < 2.5);
	close(p[0]);
	close(p[1]);
}

TEST(write_to_closed_reader)
{
	char space[16];
	struct buf b;
	int p[2];

	hang_guard(10);
	signal(SIGPIPE, SIG_IGN);
	for (unsigned timeout = 0; timeout < 2; timeout++) {
		CHECK_INT(pipe(p), 0);
		close(p[0]);
		buf_init(&b, p[1], space, sizeof space, timeout);
		CHECK_INT(buf_puts(&b, "hello"), 0);
		errno = 0;
		CHECK_INT(buf_flush(&b), -1);
		CHECK_INT(errno, EPIPE);
		CHECK_INT(buf_pending(&b), 5);
		errno = 0;
		CHECK_INT(fd_write_all(p[1], "x", 1, timeout), -1);
		CHECK_INT(errno, EPIPE);
		close(p[1]);
	}
}

/* The writer side of the large-output test: mixes every output call. */
static int write_mixed(int fd, unsigned timeout, const char *data, size_t n)
{
	char space[100];
	struct buf b;
	size_t at = 0;

	buf_init(&b, fd, space, sizeof space, timeout);
	/* Small, then larger than the buffer while bytes are pending. */
	if (buf_put(&b, data, 10) < 0 || buf_put(&b, data + 10, 100000) < 0)
		return -1;
	at = 100010;
	if (buf_pending(&b) >= sizeof space)
		return -1;
	if (buf_flush(&b) < 0 || buf_pending(&b) != 0)
		return -1;
	/* Larger than the buffer while it is empty: straight through. */
	if (buf_put(&b, data + at, 50000) < 0 || buf_pending(&b) != 0)
		return -1;
	at += 50000;
	for (size_t chunk = 1; at + chunk < n - 10; chunk = chunk % 777 + 1) {
		if (buf_put(&b, data + at, chunk) < 0)
			return -1;
		at += chunk;
	}
	while (at < n)
		if (buf_putc(&b, data[at++]) < 0)
			return -1;
	return buf_flush(&b);
}

static void check_large_output(unsigned timeout)
{
	static char data[300000];
	int p[2];

	hang_guard(20);
	pattern(data, sizeof data);
	CHECK_INT(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		_exit(write_mixed(p[1], timeout, data, sizeof data) < 0);
	}
	CHECK(pid > 0);
	close(p[1]);
	size_t n;
	char *got = slurp(p[0], &n);
	CHECK_MEM(got, n, data, sizeof data);
	int status;
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(got);
	close(p[0]);
}

TEST(large_output_intact_without_timeout)
{
	check_large_output(0);
}

TEST(large_output_intact_with_timeout)
{
	check_large_output(5);
}

TEST(write_regular_file)
{
	char dir[] = "/tmp/t_buf.XXXXXX";
	char path[sizeof dir + 8];
	char space[64];
	struct buf b;

	pattern(big, sizeof big);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/out", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	/* Timed writes go in PIPE_BUF pieces; all must arrive in order. */
	CHECK_INT(fd_write_all(fd, big, 100001, 1), 0);
	buf_init(&b, fd, space, sizeof space, 0);
	CHECK_INT(buf_put(&b, big + 100001, sizeof big - 100001), 0);
	CHECK_INT(buf_puts(&b, "end"), 0);
	CHECK_INT(buf_flush(&b), 0);
	close(fd);

	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	size_t n;
	char *got = slurp(fd, &n);
	CHECK_INT(n, sizeof big + 3);
	CHECK(n == sizeof big + 3 && memcmp(got, big, sizeof big) == 0);
	CHECK(n == sizeof big + 3 && memcmp(got + sizeof big, "end", 3) == 0);
	free(got);
	close(fd);
	CHECK_INT(unlink(path), 0);
	CHECK_INT(rmdir(dir), 0);
}

TEST(discard_drops_buffered_input)
{
	char space[64];
	struct buf b;
	struct str line = STR_INIT;
	int p[2];

	hang_guard(10);
	CHECK_INT(pipe(p), 0);
	CHECK_INT(write(p[1], "STARTTLS\nINJECTED\n", 18), 18);
	buf_init(&b, p[0], space, sizeof space, 1);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "STARTTLS\n");
	CHECK_INT(buf_avail(&b), 9);
	buf_discard(&b);
	CHECK_INT(buf_avail(&b), 0);
	CHECK_INT(write(p[1], "EHLO\n", 5), 5);
	str_clear(&line);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "EHLO\n");
	str_free(&line);
	close(p[0]);
	close(p[1]);
}

TEST(setfd_keeps_buffered_data)
{
	char space[64];
	struct buf b;
	struct str line = STR_INIT;

	buf_init(&b, input_str("first\nsecond\n"), space, sizeof space, 0);
	int old = b.fd;
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	buf_setfd(&b, input_str("third\n"));
	buf_settimeout(&b, 1);
	CHECK_INT(b.timeout, 1);
	str_clear(&line);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "second\n");
	str_clear(&line);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "third\n");
	str_free(&line);
	close(old);
	close(b.fd);
}

TEST(putnum_extremes)
{
	char space[64];
	struct buf b;

	buf_init(&b, -1, space, sizeof space, 0);
	CHECK_INT(buf_putnum(&b, 0), 0);
	CHECK_INT(buf_putc(&b, ' '), 0);
	CHECK_INT(buf_putnum(&b, ULLONG_MAX), 0);
	CHECK_INT(buf_putc(&b, ' '), 0);
	CHECK_INT(buf_putnum(&b, 1000), 0);
	CHECK_STR(b.x, b.len, "0 18446744073709551615 1000");
}

TEST(putnum_through_tiny_buffer)
{
	char space[4];
	struct buf b;
	int p[2];

	CHECK_INT(pipe(p), 0);
	buf_init(&b, p[1], space, sizeof space, 1);
	CHECK_INT(buf_putc(&b, '['), 0);
	CHECK_INT(buf_putnum(&b, ULLONG_MAX), 0);
	CHECK_INT(buf_puts(&b, "]"), 0);
	CHECK_INT(buf_flush(&b), 0);
	close(p[1]);
	size_t n;
	char *got = slurp(p[0], &n);
	CHECK_STR(got, n, "[18446744073709551615]");
	free(got);
	close(p[0]);
}

TEST(read_error_ebadf)
{
	char space[16];
	struct buf b;
	struct str line = STR_INIT;
	char c;
	int p[2];

	hang_guard(10);
	CHECK_INT(pipe(p), 0);
	close(p[0]);
	close(p[1]);
	for (unsigned timeout = 0; timeout < 2; timeout++) {
		buf_init(&b, p[0], space, sizeof space, timeout);
		errno = 0;
		CHECK_INT(buf_fill(&b), -1);
		CHECK_INT(errno, EBADF);
		errno = 0;
		CHECK_INT(buf_getline(&b, &line, '\n', 100), -1);
		CHECK_INT(errno, EBADF);
		errno = 0;
		CHECK_INT(buf_skipline(&b, '\n'), -1);
		CHECK_INT(errno, EBADF);
		errno = 0;
		CHECK_INT(buf_readall(&b, &c, 1), -1);
		CHECK_INT(errno, EBADF);
	}
	/* A negative descriptor fails at once, not after the timeout. */
	buf_init(&b, -1, space, sizeof space, 5);
	double start = now_seconds();
	errno = 0;
	CHECK_INT(buf_fill(&b), -1);
	CHECK_INT(errno, EBADF);
	CHECK(now_seconds() - start < 1.0);
	CHECK_INT(line.len, 0);
}

TEST(write_error_ebadf)
{
	char space[16];
	struct buf b;

	hang_guard(10);
	for (unsigned timeout = 0; timeout < 2; timeout++) {
		buf_init(&b, -1, space, sizeof space, timeout);
		CHECK_INT(buf_puts(&b, "abc"), 0);
		errno = 0;
		CHECK_INT(buf_flush(&b), -1);
		CHECK_INT(errno, EBADF);
		CHECK_INT(buf_pending(&b), 3);
		errno = 0;
		CHECK_INT(fd_write_all(-1, "x", 1, timeout), -1);
		CHECK_INT(errno, EBADF);
	}
}

TEST(zero_size_buffer)
{
	struct buf b;
	int p[2];

	CHECK_INT(pipe(p), 0);
	buf_init(&b, p[1], NULL, 0, 0);
	/* Output still works, unbuffered. */
	CHECK_INT(buf_puts(&b, "ab"), 0);
	CHECK_INT(buf_putc(&b, 'c'), 0);
	CHECK_INT(buf_pending(&b), 0);
	CHECK_INT(buf_flush(&b), 0);
	close(p[1]);
	buf_init(&b, p[0], NULL, 0, 0);
	errno = 0;
	CHECK_INT(buf_fill(&b), -1);
	CHECK_INT(errno, EINVAL);
	char got[4];
	CHECK_INT(buf_readall(&b, got, 3), 0);
	CHECK_MEM(got, 3, "abc", 3);
	close(p[0]);
}

TEST(putvisible_escapes_unsafe_bytes)
{
	char space[8], got[64];
	int p[2];
	struct buf b;

	CHECK_INT(pipe(p), 0);
	buf_init(&b, p[1], space, sizeof space, 0);
	CHECK_INT(buf_putvisible(&b, "a\\b\x1b[1m\n\xff\0z", 11), 0);
	CHECK_INT(buf_flush(&b), 0);
	close(p[1]);
	ssize_t n = read(p[0], got, sizeof got);
	CHECK_STR(got, (size_t)n, "a\\\\b\\x1b[1m\\x0a\\xff\\x00z");
	close(p[0]);
}

/* --- deadlines: a bound on a whole exchange --- */

/* A child that writes `chunk` to fd every `ms` milliseconds, `count`
 * times (0: until the reader goes away), then exits. */
static pid_t trickle(int fd, const char *chunk, unsigned ms, unsigned count)
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
	_exit(0);
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

TEST(deadline_stops_a_trickle)
{
	char space[16];
	struct buf b;
	struct str line = STR_INIT;
	int p[2];

	hang_guard(20);
	CHECK_INT(pipe(p), 0);
	/* A byte every 100 ms: the 5-second per-read timeout never fires. */
	pid_t pid = trickle(p[1], "x", 100, 0);
	close(p[1]);
	buf_init(&b, p[0], space, sizeof space, 5);
	CHECK_INT(buf_setdeadline(&b, 1), 0);
	double start = now_seconds();
	errno = 0;
	CHECK_INT(buf_getline(&b, &line, '\n', 100000), -1);
	CHECK_INT(errno, ETIMEDOUT);
	double took = now_seconds() - start;
	CHECK(took >= 0.9);
	CHECK(took < 4.5);
	/* It was reading all along: the line grew until the deadline. */
	CHECK(line.len >= 2);
	CHECK(memchr(line.s, '\n', line.len) == NULL);
	reap(pid);
	str_free(&line);
	close(p[0]);
}

TEST(deadline_without_timeout)
{
	char space[16];
	struct buf b;
	int p[2];

	hang_guard(10);
	CHECK_INT(pipe(p), 0);
	buf_init(&b, p[0], space, sizeof space, 0);
	CHECK_INT(buf_setdeadline(&b, 1), 0);
	double start = now_seconds();
	errno = 0;
	CHECK_INT(buf_fill(&b), -1);
	CHECK_INT(errno, ETIMEDOUT);
	double took = now_seconds() - start;
	CHECK(took >= 0.9);
	CHECK(took < 2.5);
	close(p[0]);
	close(p[1]);
}

TEST(deadline_passed_serves_what_is_ready)
{
	char space[16];
	struct buf b;
	struct str line = STR_INIT;
	int p[2];

	hang_guard(10);
	CHECK_INT(pipe(p), 0);
	CHECK_INT(write(p[1], "ab\ncd", 5), 5);
	buf_init(&b, p[0], space, sizeof space, 5);
	CHECK_INT(buf_setdeadline(&b, 1), 0);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "ab\n");
	struct timespec past = {1, 200000000};
	nanosleep(&past, NULL);
	/* Past the deadline: "cd" is buffered and the next bytes are
	 * already in the pipe, so they are read without waiting. */
	CHECK_INT(write(p[1], "ef", 2), 2);
	str_clear(&line);
	double start = now_seconds();
	errno = 0;
	CHECK_INT(buf_getline(&b, &line, '\n', 100), -1);
	/* Then nothing is ready: no wait at all, however long the
	 * per-read timeout. */
	CHECK_INT(errno, ETIMEDOUT);
	CHECK(now_seconds() - start < 0.5);
	CHECK_STR(line.s, line.len, "cdef");
	/* 0 removes the limit, and leaves errno alone. */
	errno = EMSGSIZE;
	CHECK_INT(buf_setdeadline(&b, 0), 0);
	CHECK_INT(errno, EMSGSIZE);
	CHECK_INT(write(p[1], "\n", 1), 1);
	CHECK_INT(buf_getline(&b, &line, '\n', 100), 1);
	CHECK_STR(line.s, line.len, "cdef\n");
	str_free(&line);
	close(p[0]);
	close(p[1]);
}

TEST(deadline_cleared_allows_long_waits)
{
	char space[16];
	struct buf b;
	int p[2];

	hang_guard(10);
	CHECK_INT(pipe(p), 0);
	buf_init(&b, p[0], space, sizeof space, 0);
	CHECK_INT(buf_setdeadline(&b, 1), 0);
	CHECK_INT(buf_setdeadline(&b, 0), 0);
	/* The one byte comes after the old deadline. */
	pid_t pid = fork();
	if (pid == 0) {
		struct timespec later = {1, 500000000};
		nanosleep(&later, NULL);
		_exit(write(p[1], "z", 1) == 1 ? 0 : 1);
	}
	CHECK(pid > 0);
	CHECK_INT(buf_fill(&b), 1);
	CHECK_MEM(buf_peek(&b), 1, "z", 1);
	reap(pid);
	close(p[0]);
	close(p[1]);
}

TEST(deadline_bounds_writes)
{
	char space[BUF_SIZE];
	struct buf b;
	int p[2];

	hang_guard(10);
	CHECK_INT(pipe(p), 0);
	/* No per-write timeout: only the deadline can end the wait. */
	buf_init(&b, p[1], space, sizeof space, 0);
	CHECK_INT(buf_setdeadline(&b, 1), 0);
	double start = now_seconds();
	errno = 0;
	CHECK_INT(buf_put(&b, big, sizeof big), -1);
	CHECK_INT(errno, ETIMEDOUT);
	double took = now_seconds() - start;
	CHECK(took >= 0.9);
	CHECK(took < 2.5);
	close(p[0]);
	close(p[1]);
}

UNIT_MAIN(putvisible_escapes_unsafe_bytes, getline_tiny_buffer,
	  hasline_only_whole_buffered_lines,
	  getline_appends_and_other_delimiter, getline_too_long_then_skipline,
	  getline_too_long_leaves_rest_unread, getline_partial_last_line,
	  skipline_at_eof, read_across_refills, readall_truncated,
	  eof_with_timeout_is_immediate, read_timeout,
	  read_timeout_survives_signals, write_timeout,
	  flush_failure_keeps_unwritten_tail, fd_write_all_timeout,
	  write_to_closed_reader, large_output_intact_without_timeout,
	  large_output_intact_with_timeout, write_regular_file,
	  discard_drops_buffered_input, setfd_keeps_buffered_data,
	  putnum_extremes, putnum_through_tiny_buffer, read_error_ebadf,
	  write_error_ebadf, zero_size_buffer, deadline_stops_a_trickle,
	  deadline_without_timeout, deadline_passed_serves_what_is_ready,
	  deadline_cleared_allows_long_waits, deadline_bounds_writes)
