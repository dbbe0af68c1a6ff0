/*
 * t_forward.c: forwarding fd 0 through qmail-queue (mail/forward.h).
 *
 * $QMAILQUEUE is a script in a temporary directory that saves the
 * message (its fd 0), the envelope (its fd 1) and its pid, then exits
 * with a chosen code. Failures are forced with a directory as fd 0 (read
 * error), RLIMIT_NOFILE (qmail-queue cannot start) and a queue that
 * exits without reading (broken pipe). Calls that end the process run
 * in a child of the test whose fd 2 is a file, read back afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "mail/forward.h"
#include "unit.h"
#include "unit_tmp.h"

#define LINE "Delivered-To: box@example.test\n"
#define MESSAGE "Subject: hi\n\nbody\n"
#define ENVELOPE "Fsender@example.org\0Ta@example.net\0Tb@example.com\0\0"

static const char *tmpdir;
static char errtext[1024];
static size_t errlen;

static int open_file(const char *name, int flags)
{
	int fd = open(name, flags, 0700);
	if (fd < 0) {
		perror(name);
		exit(2);
	}
	return fd;
}

/* Reads a file of the temporary directory; -1 when it does not exist. */
static ssize_t read_file(const char *name, char *buf, size_t size)
{
	int fd = open(name, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size);
	close(fd);
	return n;
}

/* The queue saves what it gets and exits with code; with code < 0 it
 * exits 71 at once, reading nothing. */
static void set_queue(int code)
{
	char script[512];
	int n;

	if (code < 0)
		n = snprintf(script, sizeof script, "#!/bin/sh\nexit 71\n");
	else
		n = snprintf(script, sizeof script,
			     "#!/bin/sh\necho $$ > '%s/pid'\n"
			     "cat > '%s/msg' || exit 54\n"
			     "cat <&1 > '%s/env' || exit 54\nexit %d\n",
			     tmpdir, tmpdir, tmpdir, code);
	if (n < 0 || (size_t)n >= sizeof script)
		exit(2);
	unit_write_file("queue", script, (size_t)n, 0700);
}

/* A temporary directory with the queue set to exit 0 and MESSAGE on
 * fd 0; SIGPIPE ignored, as forward_message wants. */
static void setup(void)
{
	char path[128];

	tmpdir = unit_tmp_enter("t_forward");
	log_init("t_forward");
	signal(SIGPIPE, SIG_IGN);
	set_queue(0);
	snprintf(path, sizeof path, "%s/queue", tmpdir);
	if (setenv("QMAILQUEUE", path, 1) < 0)
		exit(2);
	unit_write_file("in", MESSAGE, strlen(MESSAGE), 0700);
	if (dup2(open_file("in", O_RDONLY), 0) != 0)
		exit(2);
}

static void make_recipients(struct str *rcpts)
{
	static const char both[] = "a@example.net\0b@example.com";

	if (str_copy(rcpts, both, sizeof both) < 0)
		exit(2);
}

static void message_is(const char *want)
{
	char buf[256];
	ssize_t n = read_file("msg", buf, sizeof buf);
	CHECK_STR(buf, n < 0 ? 0 : (size_t)n, want);
}

static void envelope_is(const char *want, size_t wantlen)
{
	char buf[256];
	ssize_t n = read_file("env", buf, sizeof buf);
	CHECK_MEM(buf, n < 0 ? 0 : (size_t)n, want, wantlen);
}

static pid_t queue_pid(void)
{
	char buf[32];
	ssize_t n = read_file("pid", buf, sizeof buf - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return (pid_t)atol(buf);
}

/* fd 0 becomes a directory: reading it fails with EISDIR. */
static void unreadable_message(void)
{
	if (dup2(open_file(".", O_RDONLY), 0) != 0)
		exit(2);
}

/* No descriptor can be opened: qmail-queue's pipes cannot be made.
 * Returns the old limit, for restore_descriptors. */
static struct rlimit no_more_descriptors(void)
{
	int lowest = dup(0);
	struct rlimit old, rl;

	if (lowest < 0 || getrlimit(RLIMIT_NOFILE, &old) < 0)
		exit(2);
	close(lowest);
	rl = old;
	rl.rlim_cur = (rlim_t)lowest;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		exit(2);
	return old;
}

static void restore_descriptors(const struct rlimit *old)
{
	if (setrlimit(RLIMIT_NOFILE, old) < 0)
		exit(2);
}

/* Runs fn in a child whose fd 2 is a fresh file; returns its exit code
 * (1000 + signal when killed), with what it wrote in errtext/errlen. */
static int outcome_of(void (*fn)(void))
{
	int fd = open_file("err", O_WRONLY | O_CREAT | O_TRUNC);
	int status;
	pid_t pid = fork();

	if (pid < 0)
		exit(2);
	if (pid == 0) {
		if (dup2(fd, 2) < 0)
			_exit(2);
		close(fd);
		fn();
		_exit(0);
	}
	close(fd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			exit(2);
	ssize_t n = read_file("err", errtext, sizeof errtext);
	errlen = n < 0 ? 0 : (size_t)n;
	return WIFEXITED(status) ? WEXITSTATUS(status)
				 : 1000 + WTERMSIG(status);
}

/* --- forward_message --- */

TEST(queues_the_line_and_the_message)
{
	struct str rcpts = STR_INIT;
	struct forward_result res = FORWARD_RESULT_INIT;

	setup();
	make_recipients(&rcpts);
	CHECK_INT(forward_message(LINE, "sender@example.org", &rcpts, &res), 0);
	message_is(LINE MESSAGE);
	envelope_is(ENVELOPE, sizeof ENVELOPE - 1);
	CHECK(res.qp > 0);
	CHECK_INT(res.qp, queue_pid());
	CHECK(str_starts(&res.reply, "250 "));
	str_free(&res.reply);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(reads_from_the_current_offset)
{
	struct str rcpts = STR_INIT;
	struct forward_result res = FORWARD_RESULT_INIT;

	setup();
	make_recipients(&rcpts);
	CHECK_INT(lseek(0, 13, SEEK_SET), 13);
	CHECK_INT(forward_message(LINE, "sender@example.org", &rcpts, &res), 0);
	message_is(LINE "body\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(empty_sender_and_message)
{
	struct str rcpts = STR_INIT;
	struct forward_result res = FORWARD_RESULT_INIT;
	static const char env[] = "F\0Ta@example.net\0\0";

	setup();
	CHECK_INT(dup2(open_file("/dev/null", O_RDONLY), 0), 0);
	CHECK_INT(str_copy(&rcpts, "a@example.net", 14), 0);
	CHECK_INT(forward_message(LINE, "", &rcpts, &res), 0);
	message_is(LINE);
	envelope_is(env, sizeof env - 1);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(refusals_keep_the_reply)
{
	struct str rcpts = STR_INIT;
	struct forward_result res = FORWARD_RESULT_INIT;

	setup();
	make_recipients(&rcpts);
	set_queue(31);
	CHECK_INT(forward_message(LINE, "s@x", &rcpts, &res), -1);
	CHECK_INT(res.stage, FORWARD_QUEUE);
	CHECK(str_starts(&res.reply, "554 "));
	/* It got the whole message, but the refusal stands. */
	message_is(LINE MESSAGE);
	set_queue(71);
	CHECK_INT(lseek(0, 0, SEEK_SET), 0);
	CHECK_INT(forward_message(LINE, "s@x", &rcpts, &res), -1);
	CHECK_INT(res.stage, FORWARD_QUEUE);
	CHECK(str_starts(&res.reply, "451 "));
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(queue_that_cannot_run)
{
	struct str rcpts = STR_INIT;
	struct forward_result res = FORWARD_RESULT_INIT;

	setup();
	make_recipients(&rcpts);
	CHECK_INT(setenv("QMAILQUEUE", "/nonexistent/qmail-queue", 1), 0);
	CHECK_INT(forward_message(LINE, "s@x", &rcpts, &res), -1);
	CHECK_INT(res.stage, FORWARD_QUEUE);
	CHECK(str_starts(&res.reply, "451 "));
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(read_error_queues_nothing)
{
	struct str rcpts = STR_INIT;
	struct forward_result res = FORWARD_RESULT_INIT;

	setup();
	make_recipients(&rcpts);
	unreadable_message();
	errno = 0;
	CHECK_INT(forward_message(LINE, "s@x", &rcpts, &res), -1);
	CHECK_INT(res.stage, FORWARD_READ);
	CHECK_INT(errno, EISDIR);
	/* qmail-queue was stopped before it had an envelope. */
	CHECK_INT(read_file("env", errtext, sizeof errtext), -1);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(start_error)
{
	struct str rcpts = STR_INIT;
	struct forward_result res = FORWARD_RESULT_INIT;

	setup();
	make_recipients(&rcpts);
	struct rlimit old = no_more_descriptors();
	errno = 0;
	CHECK_INT(forward_message(LINE, "s@x", &rcpts, &res), -1);
	int saved = errno;
	restore_descriptors(&old);
	CHECK_INT(res.stage, FORWARD_START);
	CHECK_INT(saved, EMFILE);
	CHECK_INT(res.qp, -1);
	CHECK_INT(read_file("pid", errtext, sizeof errtext), -1);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* --- the helpers' versions --- */

static void read_env(void)
{
	const char *sender, *dtline;
	forward_env_or_die(&sender, &dtline);
	_exit(0);
}

TEST(env_or_die)
{
	const char *sender = NULL, *dtline = NULL;

	setup();
	CHECK_INT(setenv("NEWSENDER", "", 1), 0);
	CHECK_INT(setenv("DTLINE", LINE, 1), 0);
	forward_env_or_die(&sender, &dtline);
	CHECK_STR(sender, strlen(sender), "");
	CHECK_STR(dtline, strlen(dtline), LINE);
	CHECK_INT(unsetenv("DTLINE"), 0);
	CHECK_INT(outcome_of(read_env), 100);
	CHECK_STR(errtext, errlen, "t_forward: fatal: DTLINE not set\n");
	CHECK_INT(unsetenv("NEWSENDER"), 0);
	CHECK_INT(outcome_of(read_env), 100);
	CHECK_STR(errtext, errlen, "t_forward: fatal: NEWSENDER not set\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

static const char *const addrs[] = {"a@example.net", "b@example.com"};

static void forward_two(void)
{
	forward_or_die(LINE, "sender@example.org", addrs, 2);
}

TEST(or_die_returns_the_queue_pid)
{
	struct sigaction old;

	setup();
	signal(SIGPIPE, SIG_DFL);
	pid_t qp = forward_or_die(LINE, "sender@example.org", addrs, 2);
	CHECK_INT(qp, queue_pid());
	message_is(LINE MESSAGE);
	envelope_is(ENVELOPE, sizeof ENVELOPE - 1);
	/* It has set SIGPIPE aside for good. */
	CHECK_INT(sigaction(SIGPIPE, NULL, &old), 0);
	CHECK(old.sa_handler == SIG_IGN);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(or_die_exit_codes)
{
	setup();
	set_queue(31);
	CHECK_INT(outcome_of(forward_two), 100);
	CHECK_STR(errtext, errlen,
		  "t_forward: fatal: 554 mail server permanently rejected "
		  "message (#5.3.0)\n");
	CHECK_INT(lseek(0, 0, SEEK_SET), 0);
	set_queue(53);
	CHECK_INT(outcome_of(forward_two), 111);
	CHECK_STR(errtext, errlen,
		  "t_forward: fatal: 451 qq write error or disk full "
		  "(#4.3.0)\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

static void forward_unreadable(void)
{
	unreadable_message();
	forward_two();
}

static void forward_without_descriptors(void)
{
	no_more_descriptors();
	forward_two();
}

TEST(or_die_system_errors)
{
	char want[256];

	setup();
	CHECK_INT(outcome_of(forward_unreadable), 111);
	snprintf(want, sizeof want,
		 "t_forward: fatal: unable to read message: %s\n",
		 strerror(EISDIR));
	CHECK_STR(errtext, errlen, want);
	CHECK_INT(read_file("env", want, sizeof want), -1);
	CHECK_INT(outcome_of(forward_without_descriptors), 111);
	snprintf(want, sizeof want,
		 "t_forward: fatal: unable to run qmail-queue: %s\n",
		 strerror(EMFILE));
	CHECK_STR(errtext, errlen, want);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(or_die_survives_a_queue_that_stops_reading)
{
	static char big[1 << 20];

	setup();
	memset(big, 'x', sizeof big);
	unit_write_file("in", big, sizeof big, 0700);
	CHECK_INT(dup2(open_file("in", O_RDONLY), 0), 0);
	set_queue(-1);
	signal(SIGPIPE, SIG_DFL);
	/* Without SIGPIPE ignored this would be 1000 + SIGPIPE. */
	CHECK_INT(outcome_of(forward_two), 111);
	CHECK_STR(errtext, errlen,
		  "t_forward: fatal: 451 mail server temporarily rejected "
		  "message (#4.3.0)\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(queues_the_line_and_the_message, reads_from_the_current_offset,
	  empty_sender_and_message, refusals_keep_the_reply,
	  queue_that_cannot_run, read_error_queues_nothing, start_error,
	  env_or_die, or_die_returns_the_queue_pid, or_die_exit_codes,
	  or_die_system_errors, or_die_survives_a_queue_that_stops_reading)
