/*
 * t_maildir.c: local mailbox formats, Maildir (mail/maildir.h) and mbox
 * (mail/mbox.h): file contents, >From quoting, locking, and that every
 * failure leaves no partial message behind.
 *
 * Failures are forced with a directory as the message (read error),
 * missing directories, and RLIMIT_FSIZE (write error); each test runs in
 * its own process, so the limit does not leak.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/maildir.h"
#include "mail/mbox.h"
#include "unit.h"
#include "unit_tmp.h"

/* --- helpers --- */

static void read_file(const char *name, struct str *out)
{
	char chunk[4096];
	ssize_t r;
	int fd = open(name, O_RDONLY);

	str_clear(out);
	if (fd < 0)
		return;
	while ((r = read(fd, chunk, sizeof chunk)) > 0)
		str_append(out, chunk, (size_t)r);
	close(fd);
}

static void make_maildir(const char *dir)
{
	char sub[256];

	mkdir(dir, 0700);
	snprintf(sub, sizeof sub, "%s/tmp", dir);
	mkdir(sub, 0700);
	snprintf(sub, sizeof sub, "%s/new", dir);
	mkdir(sub, 0700);
	snprintf(sub, sizeof sub, "%s/cur", dir);
	mkdir(sub, 0700);
}

/* Number of entries (not . or ..) in dir; the last name into last. */
static int count_entries(const char *dir, struct str *last)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		if (last)
			str_copys(last, e->d_name);
	}
	closedir(d);
	return n;
}

static char msg_space[BUF_SIZE];
static struct buf msg;
static int msg_fd = -1;

/* A message in a file, as qmail-local has it on fd 0. */
static struct buf *message(const char *text)
{
	unit_write_file("message", text, strlen(text), 0600);
	if (msg_fd >= 0)
		close(msg_fd);
	msg_fd = open("message", O_RDONLY);
	buf_init(&msg, msg_fd, msg_space, sizeof msg_space, 0);
	return &msg;
}

/* A "message" whose read fails (EISDIR). */
static struct buf *unreadable_message(void)
{
	if (msg_fd >= 0)
		close(msg_fd);
	msg_fd = open(".", O_RDONLY);
	buf_init(&msg, msg_fd, msg_space, sizeof msg_space, 0);
	return &msg;
}

/* Make writes beyond `bytes` fail with EFBIG instead of killing us. */
static void limit_file_size(rlim_t bytes)
{
	struct rlimit rl = {bytes, bytes};
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0) {
		perror("setrlimit");
		exit(2);
	}
}

static const char head[] = "Return-Path: <a@b>\nDelivered-To: joe@x\n";

/* --- Maildir --- */

TEST(maildir_name_format)
{
	struct str s = STR_INIT;

	CHECK_INT(maildir_name(&s, 1700000000, 42, 1234, 7, "mx.example"), 0);
	CHECK_STR(s.s, s.len, "1700000000.M42P1234Q7.mx.example");
	CHECK_INT(maildir_name(&s, 1, 0, 2, 0, "a/b:c d\x7f\xc3"), 0);
	CHECK_STR(s.s, s.len, "1.M0P2Q0.a\\057b\\072c_d__");
	CHECK_INT(maildir_name(&s, 1, 0, 2, 0, ""), 0);
	CHECK_STR(s.s, s.len, "1.M0P2Q0.localhost");
	str_free(&s);
}

TEST(maildir_delivers)
{
	struct str path = STR_INIT, name = STR_INIT, body = STR_INIT;
	enum maildir_stage stage = MAILDIR_READ;

	unit_tmp_enter("t_maildir");
	make_maildir("Maildir");
	CHECK_INT(maildir_deliver("./Maildir/", head, sizeof head - 1,
				  message("Subject: x\n\nhello\n"), &path,
				  &stage),
		  0);
	CHECK_INT(stage, MAILDIR_OK);
	CHECK_INT(count_entries("Maildir/new", &name), 1);
	CHECK_INT(count_entries("Maildir/tmp", NULL), 0);
	CHECK_INT(count_entries("Maildir/cur", NULL), 0);
	/* The reported path is the file in new/. */
	CHECK(strncmp(path.s, "./Maildir/new/", 14) == 0);
	CHECK_STR(path.s + 14, path.len - 14, name.s);
	read_file(path.s, &body);
	CHECK_STR(body.s, body.len,
		  "Return-Path: <a@b>\nDelivered-To: joe@x\n"
		  "Subject: x\n\nhello\n");
	struct stat st;
	CHECK_INT(stat(path.s, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);

	/* A second delivery gets a different name; no trailing slash. */
	CHECK_INT(
	    maildir_deliver("Maildir", head, 0, message("x"), NULL, &stage), 0);
	CHECK_INT(count_entries("Maildir/new", NULL), 2);
	CHECK_INT(count_entries("Maildir/tmp", NULL), 0);
	str_free(&path);
	str_free(&name);
	str_free(&body);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(maildir_large_message_streams)
{
	struct str path = STR_INIT, body = STR_INIT;
	enum maildir_stage stage;
	size_t n = 3 * BUF_SIZE + 17;
	char *big = malloc(n + 1);

	if (!big)
		return;
	unit_tmp_enter("t_maildir");
	make_maildir("M");
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = 0;
	CHECK_INT(maildir_deliver("M", "", 0, message(big), &path, &stage), 0);
	read_file(path.s, &body);
	CHECK_MEM(body.s, body.len, big, n);
	free(big);
	str_free(&path);
	str_free(&body);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(maildir_missing)
{
	struct str path = STR_INIT;
	enum maildir_stage stage = MAILDIR_OK;

	unit_tmp_enter("t_maildir");
	errno = 0;
	CHECK_INT(maildir_deliver("./Maildir/", head, sizeof head - 1,
				  message("x\n"), &path, &stage),
		  -1);
	CHECK_INT(stage, MAILDIR_CREATE);
	CHECK_INT(errno, ENOENT);
	CHECK(strncmp(path.s, "./Maildir/tmp/", 14) == 0);
	str_free(&path);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(maildir_read_error_leaves_nothing)
{
	enum maildir_stage stage = MAILDIR_OK;

	unit_tmp_enter("t_maildir");
	make_maildir("Maildir");
	errno = 0;
	CHECK_INT(maildir_deliver("Maildir", head, sizeof head - 1,
				  unreadable_message(), NULL, &stage),
		  -1);
	CHECK_INT(stage, MAILDIR_READ);
	CHECK_INT(errno, EISDIR);
	CHECK_INT(count_entries("Maildir/tmp", NULL), 0);
	CHECK_INT(count_entries("Maildir/new", NULL), 0);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(maildir_write_error_leaves_nothing)
{
	enum maildir_stage stage = MAILDIR_OK;
	char big[20000];

	unit_tmp_enter("t_maildir");
	make_maildir("Maildir");
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	struct buf *m = message(big);
	limit_file_size(1000);
	errno = 0;
	CHECK_INT(
	    maildir_deliver("Maildir", head, sizeof head - 1, m, NULL, &stage),
	    -1);
	CHECK_INT(stage, MAILDIR_WRITE);
	CHECK_INT(errno, EFBIG);
	CHECK_INT(count_entries("Maildir/tmp", NULL), 0);
	CHECK_INT(count_entries("Maildir/new", NULL), 0);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(maildir_without_new_leaves_nothing)
{
	struct str path = STR_INIT;
	enum maildir_stage stage = MAILDIR_OK;

	unit_tmp_enter("t_maildir");
	mkdir("Maildir", 0700);
	mkdir("Maildir/tmp", 0700);
	CHECK_INT(maildir_deliver("Maildir/", head, sizeof head - 1,
				  message("x\n"), &path, &stage),
		  -1);
	CHECK_INT(stage, MAILDIR_LINK);
	CHECK_INT(errno, ENOENT);
	CHECK(strncmp(path.s, "Maildir/new/", 12) == 0);
	CHECK_INT(count_entries("Maildir/tmp", NULL), 0);
	str_free(&path);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* --- mbox: From line and quoting --- */

TEST(mbox_from_line)
{
	struct str s = STR_INIT;

	CHECK_INT(mbox_fromline(&s, "joe@example.com", 0), 0);
	CHECK_STR(s.s, s.len,
		  "From joe@example.com Thu Jan  1 00:00:00 1970\n");
	CHECK_INT(mbox_fromline(&s, "", 1700000000), 0);
	CHECK_STR(s.s, s.len, "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n");
	CHECK_INT(mbox_fromline(&s, "a b\tc\nd\re", 951782400), 0);
	CHECK_STR(s.s, s.len, "From a-b-c-d-e Tue Feb 29 00:00:00 2000\n");
	str_free(&s);
}

/* Quote text, fed in pieces of `step` bytes, into a string. */
static void quote(const char *text, size_t step, struct str *out)
{
	struct mbox_quote q;
	struct buf b;
	char space[64];
	size_t n = strlen(text);

	unit_write_file("quoted", "", 0, 0600);
	int fd = open("quoted", O_WRONLY | O_TRUNC);
	buf_init(&b, fd, space, sizeof space, 0);
	mbox_quote_init(&q);
	for (size_t i = 0; i < n; i += step)
		mbox_quote_put(&q, &b, text + i, n - i < step ? n - i : step);
	mbox_quote_end(&q, &b);
	buf_flush(&b);
	close(fd);
	read_file("quoted", out);
}

static int quotes_to(const char *in, const char *expect)
{
	struct str out = STR_INIT;
	int ok = 1;
	size_t steps[] = {1, 2, 3, 5, 7, 1000};

	/* The result must not depend on how the input is cut. */
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		quote(in, steps[i], &out);
		if (out.len != strlen(expect) ||
		    memcmp(out.s, expect, out.len) != 0) {
			fprintf(stderr, "step %zu: got \"%.*s\"\n", steps[i],
				(int)out.len, out.s);
			ok = 0;
		}
	}
	str_free(&out);
	return ok;
}

TEST(mbox_quoting)
{
	unit_tmp_enter("t_maildir");
	CHECK(quotes_to("From me\n", ">From me\n\n"));
	CHECK(quotes_to("a\nFrom me\n>From x\n>>From y\n", "a\n>From me\n"
							   ">>From x\n"
							   ">>>From y\n\n"));
	/* Not From lines: no space, other case, not at the start. */
	CHECK(quotes_to("From\nfrom x\nFromage\n xFrom y\n>F\n",
			"From\nfrom x\nFromage\n xFrom y\n>F\n\n"));
	CHECK(quotes_to("FFrom x\n>Fr>From y\n", "FFrom x\n>Fr>From y\n\n"));
	/* Empty lines and '>' lines keep the line start. */
	CHECK(quotes_to("\n\n>\nFrom x\n", "\n\n>\n>From x\n\n"));
	/* A missing final newline is added before the empty line. */
	CHECK(quotes_to("body", "body\n\n"));
	CHECK(quotes_to("x\nFro", "x\nFro\n\n"));
	CHECK(quotes_to("x\nFrom ", "x\n>From \n\n"));
	CHECK(quotes_to(">>", ">>\n\n"));
	/* An empty message is only the separating empty line. */
	CHECK(quotes_to("", "\n"));
	CHECK_INT(unit_tmp_leave(), 0);
}

/* --- mbox: delivery --- */

TEST(mbox_delivers_and_appends)
{
	struct str body = STR_INIT;
	enum mbox_stage stage = MBOX_READ;
	static const char h[] = "From a@b Thu Jan  1 00:00:00 1970\n"
				"Return-Path: <a@b>\n";

	unit_tmp_enter("t_maildir");
	CHECK_INT(mbox_deliver("mbox", h, sizeof h - 1,
			       message("S: 1\n\nFrom x\nend"), 1, &stage),
		  0);
	CHECK_INT(stage, MBOX_OK);
	CHECK_INT(mbox_deliver("./mbox", h, sizeof h - 1,
			       message("S: 2\n\nbody\n"), 1, &stage),
		  0);
	read_file("mbox", &body);
	CHECK_STR(body.s, body.len,
		  "From a@b Thu Jan  1 00:00:00 1970\nReturn-Path: <a@b>\n"
		  "S: 1\n\n>From x\nend\n\n"
		  "From a@b Thu Jan  1 00:00:00 1970\nReturn-Path: <a@b>\n"
		  "S: 2\n\nbody\n\n");
	struct stat st;
	CHECK_INT(stat("mbox", &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	str_free(&body);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(mbox_open_error)
{
	enum mbox_stage stage = MBOX_OK;

	unit_tmp_enter("t_maildir");
	CHECK_INT(mbox_deliver("nodir/mbox", head, sizeof head - 1,
			       message("x\n"), 1, &stage),
		  -1);
	CHECK_INT(stage, MBOX_OPEN);
	CHECK_INT(errno, ENOENT);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(mbox_lock_timeout)
{
	enum mbox_stage stage = MBOX_OK;
	struct str body = STR_INIT;
	struct timespec t0, t1;

	unit_tmp_enter("t_maildir");
	unit_write_file("mbox", "old\n", 4, 0600);
	/* flock locks belong to the open file: a second open conflicts
	 * even in the same process. */
	int holder = open("mbox", O_RDONLY);
	CHECK_INT(flock(holder, LOCK_EX), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	errno = 0;
	CHECK_INT(mbox_deliver("mbox", head, sizeof head - 1, message("x\n"), 1,
			       &stage),
		  -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_INT(stage, MBOX_LOCK);
	CHECK_INT(errno, ETIMEDOUT);
	long long ms = (long long)(t1.tv_sec - t0.tv_sec) * 1000 +
		       (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK(ms >= 1000);
	CHECK(ms < 5000);
	read_file("mbox", &body);
	CHECK_STR(body.s, body.len, "old\n");

	int fd = open("mbox", O_RDONLY);
	CHECK_INT(mbox_lock(fd, 0), -1); /* a single try */
	CHECK_INT(errno, ETIMEDOUT);
	CHECK_INT(flock(holder, LOCK_UN), 0);
	CHECK_INT(mbox_lock(fd, 0), 1);
	close(fd);
	close(holder);
	str_free(&body);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(mbox_read_error_truncates)
{
	enum mbox_stage stage = MBOX_OK;
	struct str body = STR_INIT;

	unit_tmp_enter("t_maildir");
	unit_write_file("mbox", "From old\n\nold\n\n", 15, 0600);
	errno = 0;
	CHECK_INT(mbox_deliver("mbox", head, sizeof head - 1,
			       unreadable_message(), 1, &stage),
		  -1);
	CHECK_INT(stage, MBOX_READ);
	CHECK_INT(errno, EISDIR);
	read_file("mbox", &body);
	CHECK_STR(body.s, body.len, "From old\n\nold\n\n");
	str_free(&body);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(mbox_write_error_truncates)
{
	enum mbox_stage stage = MBOX_OK;
	struct str body = STR_INIT;
	char big[20000];

	unit_tmp_enter("t_maildir");
	unit_write_file("mbox", "From old\n\nold\n\n", 15, 0600);
	memset(big, 'y', sizeof big - 1);
	big[sizeof big - 1] = 0;
	struct buf *m = message(big);
	limit_file_size(5000);
	errno = 0;
	CHECK_INT(mbox_deliver("mbox", head, sizeof head - 1, m, 1, &stage),
		  -1);
	CHECK_INT(stage, MBOX_WRITE);
	CHECK_INT(errno, EFBIG);
	read_file("mbox", &body);
	CHECK_STR(body.s, body.len, "From old\n\nold\n\n");
	str_free(&body);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(mbox_copy_reports_stage)
{
	enum mbox_stage stage = MBOX_OK;
	struct buf out;
	char space[16];

	unit_tmp_enter("t_maildir");
	int fd = open("out", O_WRONLY | O_CREAT, 0600);
	buf_init(&out, fd, space, sizeof space, 0);
	CHECK_INT(mbox_copy(&out, unreadable_message(), &stage), -1);
	CHECK_INT(stage, MBOX_READ);
	/* A write to a read-only descriptor fails at the first flush. */
	close(fd);
	fd = open("out", O_RDONLY);
	buf_init(&out, fd, space, sizeof space, 0);
	stage = MBOX_OK;
	CHECK_INT(
	    mbox_copy(&out, message("a long line, longer than 16\n"), &stage),
	    -1);
	CHECK_INT(stage, MBOX_WRITE);
	close(fd);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(maildir_name_format, maildir_delivers, maildir_large_message_streams,
	  maildir_missing, maildir_read_error_leaves_nothing,
	  maildir_write_error_leaves_nothing,
	  maildir_without_new_leaves_nothing, mbox_from_line, mbox_quoting,
	  mbox_delivers_and_appends, mbox_open_error, mbox_lock_timeout,
	  mbox_read_error_truncates, mbox_write_error_truncates,
	  mbox_copy_reports_stage)
