/*
 * t_pop3sess.c: the POP3 command loop (pop3/pop3sess.h) run in-process,
 * as fuzz_pop3 runs it: exact replies, the exit status of each way a
 * session ends, and what is left in the Maildir. Several sessions run
 * in one process, which is what the module is for.
 *
 * Each test works in its own mkdtemp() directory, removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "pop3/pop3sess.h"
#include "unit.h"
#include "unit_tmp.h"

static char inspace[BUF_SIZE], outspace[BUF_SIZE];
static char replies[65536];

/* A Maildir as the current directory with two messages in cur/ and
 * one in new/. */
static void enter_maildir(void)
{
	int null = open("/dev/null", O_WRONLY);

	if (null >= 0)
		log_set_fd(null); /* the session's warnings are expected */
	unit_tmp_enter("t_pop3sess");
	unit_mkdir("new", 0700);
	unit_mkdir("cur", 0700);
	unit_mkdir("tmp", 0700);
	unit_write_str("cur/1000000001.a.host:2,S", "Subject: one\n\nbody\n",
		       0600);
	unit_write_str("cur/1000000002.b.host:2,", "Subject: two\n\n.dot\n",
		       0600);
	unit_write_str("new/1000000003.c.host", "x\n", 0600);
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* A file holding text, rewound. */
static int file_of(const char *text)
{
	FILE *f = tmpfile();

	if (!f || fputs(text, f) == EOF || fflush(f) == EOF)
		exit(2);
	int fd = dup(fileno(f));
	fclose(f);
	if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0)
		exit(2);
	return fd;
}

/* One session over "." with the client's text; returns the exit status
 * and leaves the replies in `replies`. */
static int session(const char *client)
{
	struct buf in, out;
	struct pop3_session s;
	int infd = file_of(client), outfd = file_of("");

	buf_init(&in, infd, inspace, sizeof inspace, 0);
	buf_init(&out, outfd, outspace, sizeof outspace, 0);
	pop3_session_init(&s, &in, &out);
	int code = pop3_session_open(&s, ".");
	if (code == 0)
		code = pop3_session_serve(&s);
	pop3_session_free(&s);
	ssize_t n = pread(outfd, replies, sizeof replies - 1, 0);
	replies[n < 0 ? 0 : n] = 0;
	close(infd);
	close(outfd);
	return code;
}

TEST(replies_and_quit)
{
	enter_maildir();
	CHECK_INT(session("STAT\r\nLIST\r\nTOP 2 0\r\nRETR 2\r\nDELE 1\r\n"
			  "STAT\r\nLAST\r\nQUIT\r\n"),
		  POP3_EXIT_QUIT);
	CHECK_STR(replies, strlen(replies),
		  "+OK\r\n"
		  "+OK 3 40\r\n"
		  "+OK\r\n1 19\r\n2 19\r\n3 2\r\n.\r\n"
		  "+OK\r\nSubject: two\r\n\r\n.\r\n"
		  "+OK\r\nSubject: two\r\n\r\n..dot\r\n.\r\n"
		  "+OK message 1 deleted\r\n"
		  "+OK 2 21\r\n"
		  "+OK 2\r\n"
		  "+OK\r\n");
	CHECK(!exists("cur/1000000001.a.host:2,S"));
	CHECK(exists("cur/1000000002.b.host:2,S")); /* retrieved: seen */
	CHECK(exists("cur/1000000003.c.host:2,"));
	CHECK_INT(unit_tmp_leave(), 0);
}

/* The client goes away without QUIT: nothing is deleted, and the next
 * session in the same process starts afresh. A last line without LF is
 * never run. */
TEST(no_quit_deletes_nothing)
{
	enter_maildir();
	CHECK_INT(session("DELE 1\r\nDELE 2\r\nRETR 3\r\n"), POP3_EXIT_DROPPED);
	CHECK(exists("cur/1000000001.a.host:2,S"));
	CHECK(exists("cur/1000000002.b.host:2,"));
	CHECK(exists("cur/1000000003.c.host:2,"));
	CHECK_INT(session("STAT\r\nQUIT"), POP3_EXIT_DROPPED);
	CHECK_INT(session("STAT\r\n"), POP3_EXIT_DROPPED);
	CHECK_STR(replies, strlen(replies), "+OK\r\n+OK 3 40\r\n");
	CHECK(exists("cur/1000000001.a.host:2,S"));
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(too_many_errors)
{
	char text[20 * 6 + 1] = "";

	enter_maildir();
	for (int i = 0; i < 20; i++)
		strcat(text, "BOGUS\n");
	CHECK_INT(session(text), POP3_EXIT_DROPPED);
	CHECK(strstr(replies, "-ERR unknown command\r\n-ERR too many errors"
			      "\r\n") != NULL);
	CHECK_INT((int)(strstr(replies, "too many") - replies),
		  5 + 19 * 22 + 5);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(missing_maildir)
{
	enter_maildir();
	CHECK(rename("cur", "gone") == 0);
	CHECK_INT(session("STAT\r\n"), POP3_EXIT_MAILDIR);
	CHECK_STR(replies, strlen(replies),
		  "-ERR unable to open the maildir\r\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(replies_and_quit, no_quit_deletes_nothing, too_many_errors,
	  missing_maildir)
