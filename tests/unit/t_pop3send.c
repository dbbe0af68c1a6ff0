/*
 * t_pop3send.c: sending a message as a POP3 response (pop3/pop3send.h):
 * CR LF conversion, dot-stuffing, a last line without a newline, TOP's
 * header and body-line counting, and read and write failures. Every case
 * is run with buffers of many sizes, so that lines, CR LF pairs and dots
 * are split at every possible point; random messages are compared with
 * a byte-at-a-time model.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pop3/pop3send.h"
#include "unit.h"
#include "unit_tmp.h"

/* --- helpers --- */

static int file_with(const void *p, size_t n)
{
	int fd = open("in", O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, p, n) != (ssize_t)n ||
	    lseek(fd, 0, SEEK_SET) != 0) {
		perror("in");
		exit(2);
	}
	return fd;
}

static void read_back(int fd, struct str *out)
{
	char chunk[4096];
	ssize_t r;

	str_clear(out);
	if (lseek(fd, 0, SEEK_SET) != 0)
		return;
	while ((r = read(fd, chunk, sizeof chunk)) > 0)
		str_append(out, chunk, (size_t)r);
}

/* Send msg with in and out buffers of the given sizes; the result goes
 * into got. Returns what pop3_send_message returned. */
static enum pop3_send run(const void *msg, size_t n, unsigned long long lines,
			  size_t insize, size_t outsize, struct str *got)
{
	char *inspace = malloc(insize), *outspace = malloc(outsize);
	struct buf in, out;

	if (!inspace || !outspace)
		exit(2);
	int ifd = file_with(msg, n);
	int ofd = open("out", O_RDWR | O_CREAT | O_TRUNC, 0600);
	buf_init(&in, ifd, inspace, insize, 0);
	buf_init(&out, ofd, outspace, outsize, 0);
	enum pop3_send r = pop3_send_message(&in, &out, lines);
	if (r == POP3_SEND_OK && buf_flush(&out) < 0)
		r = POP3_SEND_WRITE;
	read_back(ofd, got);
	close(ifd);
	close(ofd);
	free(inspace);
	free(outspace);
	return r;
}

static const size_t sizes[] = {1, 2, 3, 5, 7, 64, BUF_SIZE};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* The message must come out as want with every pair of buffer sizes. */
static void expect(const char *msg, size_t n, unsigned long long lines,
		   const char *want)
{
	struct str got = STR_INIT;

	for (size_t i = 0; i < NSIZES; i++) {
		for (size_t o = 0; o < NSIZES; o++) {
			CHECK_INT(run(msg, n, lines, sizes[i], sizes[o], &got),
				  POP3_SEND_OK);
			CHECK_STR(got.s, got.len, want);
			if (got.len != strlen(want) ||
			    memcmp(got.s, want, got.len) != 0)
				fprintf(stderr, "  (buffers %zu and %zu)\n",
					sizes[i], sizes[o]);
		}
	}
	str_free(&got);
}

#define EXPECT(msg, lines, want) expect(msg, sizeof msg - 1, lines, want)

/* --- RETR --- */

TEST(line_ends_become_crlf)
{
	unit_tmp_enter("t_pop3send");
	EXPECT("", POP3_ALL_LINES, ".\r\n");
	EXPECT("a\n", POP3_ALL_LINES, "a\r\n.\r\n");
	EXPECT("a\nb\n", POP3_ALL_LINES, "a\r\nb\r\n.\r\n");
	EXPECT("\n\n", POP3_ALL_LINES, "\r\n\r\n.\r\n");
	/* CR LF already there is kept as it is, never doubled. */
	EXPECT("a\r\nb\r\n", POP3_ALL_LINES, "a\r\nb\r\n.\r\n");
	EXPECT("a\r\nb\n", POP3_ALL_LINES, "a\r\nb\r\n.\r\n");
	/* A CR elsewhere is data. */
	EXPECT("a\rb\n", POP3_ALL_LINES, "a\rb\r\n.\r\n");
	EXPECT("\r\r\n", POP3_ALL_LINES, "\r\r\n.\r\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(last_line_without_newline)
{
	unit_tmp_enter("t_pop3send");
	EXPECT("a", POP3_ALL_LINES, "a\r\n.\r\n");
	EXPECT("a\nlast", POP3_ALL_LINES, "a\r\nlast\r\n.\r\n");
	EXPECT("a\nlast\r", POP3_ALL_LINES, "a\r\nlast\r\n.\r\n");
	EXPECT(".", POP3_ALL_LINES, "..\r\n.\r\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(dot_stuffing)
{
	unit_tmp_enter("t_pop3send");
	EXPECT(".\n", POP3_ALL_LINES, "..\r\n.\r\n");
	EXPECT("..\n", POP3_ALL_LINES, "...\r\n.\r\n");
	EXPECT(".x\n.\r\n", POP3_ALL_LINES, "..x\r\n..\r\n.\r\n");
	EXPECT("a\n.\nb\n", POP3_ALL_LINES, "a\r\n..\r\nb\r\n.\r\n");
	/* Only at the start of a line. */
	EXPECT("a.b.\n .\n", POP3_ALL_LINES, "a.b.\r\n .\r\n.\r\n");
	EXPECT("a\r.\n", POP3_ALL_LINES, "a\r.\r\n.\r\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(nul_bytes_pass_through)
{
	unit_tmp_enter("t_pop3send");
	struct str got = STR_INIT;
	CHECK_INT(run("a\0b\n\0\n", 6, POP3_ALL_LINES, 3, 3, &got),
		  POP3_SEND_OK);
	CHECK_MEM(got.s, got.len, "a\0b\r\n\0\r\n.\r\n", 11);
	str_free(&got);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* --- TOP --- */

TEST(top_header_and_lines)
{
	static const char msg[] = "H1: x\nH2: y\n\nb1\n.b2\nb3\n";

	unit_tmp_enter("t_pop3send");
	EXPECT(msg, 0, "H1: x\r\nH2: y\r\n\r\n.\r\n");
	EXPECT(msg, 1, "H1: x\r\nH2: y\r\n\r\nb1\r\n.\r\n");
	EXPECT(msg, 2, "H1: x\r\nH2: y\r\n\r\nb1\r\n..b2\r\n.\r\n");
	EXPECT(msg, 3, "H1: x\r\nH2: y\r\n\r\nb1\r\n..b2\r\nb3\r\n.\r\n");
	EXPECT(msg, 100, "H1: x\r\nH2: y\r\n\r\nb1\r\n..b2\r\nb3\r\n.\r\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(top_counts_empty_body_lines)
{
	unit_tmp_enter("t_pop3send");
	EXPECT("H: x\n\n\n\nb\n", 2, "H: x\r\n\r\n\r\n\r\n.\r\n");
	EXPECT("H: x\r\n\r\n\r\nb\r\n", 1, "H: x\r\n\r\n\r\n.\r\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(top_edge_cases)
{
	unit_tmp_enter("t_pop3send");
	/* No empty line: all of it is header. */
	EXPECT("H: x\nH: y\n", 0, "H: x\r\nH: y\r\n.\r\n");
	EXPECT("H: x\nH: y", 0, "H: x\r\nH: y\r\n.\r\n");
	/* An empty message, and one that is only the empty line. */
	EXPECT("", 0, ".\r\n");
	EXPECT("\n", 0, "\r\n.\r\n");
	EXPECT("\nbody\n", 0, "\r\n.\r\n");
	EXPECT("\nbody\n", 1, "\r\nbody\r\n.\r\n");
	/* A last body line without a newline still counts as a line. */
	EXPECT("H: x\n\nb1", 1, "H: x\r\n\r\nb1\r\n.\r\n");
	EXPECT("H: x\n\nb1\nb2", 1, "H: x\r\n\r\nb1\r\n.\r\n");
	/* A header line that is only white space does not end it. */
	EXPECT("H: x\n \nb\n\nc\n", 0, "H: x\r\n \r\nb\r\n\r\n.\r\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

/* --- against a model --- */

/* The response body built one byte at a time, straight from the rules. */
static void model(const char *m, size_t n, unsigned long long lines,
		  struct str *out)
{
	int at_start = 1, in_body = 0;
	size_t line_len = 0;

	str_clear(out);
	for (size_t i = 0; i < n; i++) {
		if (at_start) {
			if (in_body && lines == 0)
				break;
			if (m[i] == '.')
				str_appendc(out, '.');
			at_start = 0;
			line_len = 0;
		}
		if (m[i] != '\n') {
			str_appendc(out, m[i]);
			line_len++;
			continue;
		}
		int cr = line_len && m[i - 1] == '\r';
		str_appends(out, cr ? "\n" : "\r\n");
		if (!in_body && (line_len == 0 || (line_len == 1 && cr)))
			in_body = 1;
		else if (in_body && lines != POP3_ALL_LINES)
			lines--;
		at_start = 1;
	}
	if (!at_start)
		str_appends(out, m[n - 1] == '\r' ? "\n" : "\r\n");
	str_appends(out, ".\r\n");
}

TEST(random_messages_match_the_model)
{
	static const char alphabet[] = "..\n\n\r ab";
	struct str got = STR_INIT, want = STR_INIT;
	char msg[300];

	unit_tmp_enter("t_pop3send");
	srand(1939);
	for (int round = 0; round < 300; round++) {
		size_t n = (size_t)rand() % sizeof msg;
		for (size_t i = 0; i < n; i++)
			msg[i] = alphabet[rand() % (sizeof alphabet - 1)];
		unsigned long long lines =
		    round % 3 ? (unsigned long long)(rand() % 6)
			      : POP3_ALL_LINES;
		size_t insize = sizes[rand() % NSIZES];
		size_t outsize = sizes[rand() % NSIZES];
		model(msg, n, lines, &want);
		CHECK_INT(run(msg, n, lines, insize, outsize, &got),
			  POP3_SEND_OK);
		CHECK_MEM(got.s, got.len, want.s, want.len);
	}
	str_free(&got);
	str_free(&want);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* --- failures --- */

TEST(read_failure_sends_no_end)
{
	char inspace[16], outspace[64];
	struct buf in, out;
	int p[2], o[2];

	/* Some lines, then the input stalls past its timeout. */
	CHECK(pipe(p) == 0 && pipe(o) == 0);
	CHECK(write(p[1], "a\nb\n", 4) == 4);
	buf_init(&in, p[0], inspace, sizeof inspace, 1);
	buf_init(&out, o[1], outspace, sizeof outspace, 0);
	errno = 0;
	CHECK_INT(pop3_send_message(&in, &out, POP3_ALL_LINES), POP3_SEND_READ);
	CHECK_INT(errno, ETIMEDOUT);
	CHECK_INT(buf_flush(&out), 0);
	close(o[1]);
	char got[64];
	ssize_t r = read(o[0], got, sizeof got);
	CHECK(r >= 0);
	CHECK_STR(got, r < 0 ? 0 : (size_t)r, "a\r\nb\r\n");
	/* A descriptor that cannot be read at all. */
	buf_init(&in, -1, inspace, sizeof inspace, 0);
	errno = 0;
	CHECK_INT(pop3_send_message(&in, &out, POP3_ALL_LINES), POP3_SEND_READ);
	CHECK_INT(errno, EBADF);
}

TEST(write_failure)
{
	char inspace[16], outspace[4];
	struct buf in, out;

	unit_tmp_enter("t_pop3send");
	int ifd = file_with("one\ntwo\nthree\n", 14);
	int bad = open("in", O_RDONLY);
	buf_init(&in, ifd, inspace, sizeof inspace, 0);
	buf_init(&out, bad, outspace, sizeof outspace, 0);
	errno = 0;
	CHECK_INT(pop3_send_message(&in, &out, POP3_ALL_LINES),
		  POP3_SEND_WRITE);
	CHECK_INT(errno, EBADF);
	close(ifd);
	close(bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(top_stops_reading)
{
	char inspace[4], outspace[64];
	struct buf in, out;
	int p[2];

	/* TOP must not wait for input it does not need: the writer stays
	 * open, so a further read would time out. */
	unit_tmp_enter("t_pop3send");
	CHECK(pipe(p) == 0);
	CHECK(write(p[1], "H: x\n\nb1\n", 9) == 9);
	int ofd = open("out", O_RDWR | O_CREAT | O_TRUNC, 0600);
	buf_init(&in, p[0], inspace, sizeof inspace, 2);
	buf_init(&out, ofd, outspace, sizeof outspace, 0);
	CHECK_INT(pop3_send_message(&in, &out, 1), POP3_SEND_OK);
	CHECK_INT(buf_flush(&out), 0);
	struct str got = STR_INIT;
	read_back(ofd, &got);
	CHECK_STR(got.s, got.len, "H: x\r\n\r\nb1\r\n.\r\n");
	str_free(&got);
	close(ofd);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(line_ends_become_crlf, last_line_without_newline, dot_stuffing,
	  nul_bytes_pass_through, top_header_and_lines,
	  top_counts_empty_body_lines, top_edge_cases,
	  random_messages_match_the_model, read_failure_sends_no_end,
	  write_failure, top_stops_reading)
