/*
 * t_child.c: running a program and learning how it ended (mail/child.h):
 * exit codes, signals, PATH search, fd 0 handed over, the child's own
 * message when exec fails, and the helpers' exits with 111.
 *
 * Fork failure is forced with RLIMIT_NPROC 0 (as nobody when we are
 * root, since root is exempt). Calls that end the process run in a
 * child of the test whose fd 2 is a file, read back afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/log.h"
#include "mail/child.h"
#include "unit.h"
#include "unit_tmp.h"

static char errtext[1024];
static size_t errlen;

static void enter_tmpdir(void)
{
	unit_tmp_enter("t_child");
	log_init("t_child");
}

static int open_file(const char *name, int flags)
{
	int fd = open(name, flags, 0600);
	if (fd < 0) {
		perror(name);
		exit(2);
	}
	return fd;
}

/* Reads a file of the temporary directory into buf; returns its size. */
static size_t read_file(const char *name, char *buf, size_t size)
{
	int fd = open_file(name, O_RDONLY);
	ssize_t n = read(fd, buf, size);
	close(fd);
	return n < 0 ? 0 : (size_t)n;
}

/* Runs fn in a child whose fd 2 is a fresh file; returns how it ended
 * as child_wait does, with what it wrote in errtext/errlen. */
static int outcome_of(void (*fn)(void))
{
	int fd = open_file("err", O_WRONLY | O_CREAT | O_TRUNC);
	pid_t pid = fork();

	if (pid < 0)
		exit(2);
	if (pid == 0) {
		if (dup2(fd, 2) < 0)
			_exit(2);
		fn();
		_exit(0);
	}
	close(fd);
	int code = child_wait(pid);
	errlen = read_file("err", errtext, sizeof errtext);
	return code;
}

/* The log line a fatal error with errno e gives. */
static void expect_sys_line(char *buf, size_t size, const char *text, int e)
{
	snprintf(buf, size, "t_child: fatal: %s: %s\n", text, strerror(e));
}

static void no_more_processes(void)
{
	struct rlimit none = {0, 0};

	if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
		exit(2);
	if (setrlimit(RLIMIT_NPROC, &none) < 0)
		exit(2);
}

static int run_sh(const char *script, int in)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	pid_t pid = child_start(argv, in);

	CHECK(pid > 0);
	return child_wait(pid);
}

/* --- child_start and child_wait --- */

TEST(exit_codes)
{
	CHECK_INT(run_sh("exit 0", -1), 0);
	CHECK_INT(run_sh("exit 7", -1), 7);
	CHECK_INT(run_sh("exit 255", -1), 255);
}

TEST(signals_are_not_exit_codes)
{
	CHECK_INT(run_sh("kill -TERM $$", -1), CHILD_SIGNALED + SIGTERM);
	CHECK_INT(run_sh("kill -KILL $$", -1), CHILD_SIGNALED + SIGKILL);
	CHECK(CHILD_SIGNALED > 255);
}

TEST(program_found_through_path)
{
	char *argv[] = {"sh", "-c", "exit 3", NULL};

	CHECK_INT(setenv("PATH", "/nonexistent:/bin:/usr/bin", 1), 0);
	CHECK_INT(child_wait(child_start(argv, -1)), 3);
}

TEST(child_gets_our_descriptors)
{
	enter_tmpdir();
	unit_write_str("in", "the message\n", 0600);
	int in = open_file("in", O_RDONLY);
	int out = open_file("out", O_WRONLY | O_CREAT | O_TRUNC);
	CHECK(dup2(in, 0) == 0 && dup2(out, 1) == 1);
	CHECK_INT(run_sh("cat; echo done", -1), 0);
	char buf[64];
	size_t n = read_file("out", buf, sizeof buf);
	CHECK_STR(buf, n, "the message\ndone\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(in_becomes_fd_0_and_is_closed_in_the_child)
{
	char script[128];

	enter_tmpdir();
	unit_write_str("in", "for the child\n", 0600);
	unit_write_str("ours", "still ours\n", 0600);
	CHECK_INT(dup2(open_file("ours", O_RDONLY), 0), 0);
	int in = open_file("in", O_RDONLY);
	/* 9: `in` was still open in the program. */
	snprintf(script, sizeof script,
		 "cat > out; if { true <&%d; } 2>/dev/null; then exit 9; fi",
		 in);
	CHECK_INT(run_sh(script, in), 0);
	char buf[64];
	size_t n = read_file("out", buf, sizeof buf);
	CHECK_STR(buf, n, "for the child\n");
	/* Our own fd 0 and `in` are untouched. */
	CHECK(fcntl(in, F_GETFD) >= 0);
	ssize_t r = read(0, buf, sizeof buf);
	CHECK_STR(buf, r < 0 ? 0 : (size_t)r, "still ours\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

static void start_missing(void)
{
	char *argv[] = {"/nonexistent/prog", "arg", NULL};
	pid_t pid = child_start(argv, -1);
	_exit(pid > 0 ? child_wait(pid) : 2);
}

TEST(exec_failure_is_told_by_the_child)
{
	char want[256];

	enter_tmpdir();
	CHECK_INT(outcome_of(start_missing), 111);
	expect_sys_line(want, sizeof want, "unable to run /nonexistent/prog",
			ENOENT);
	CHECK_STR(errtext, errlen, want);
	CHECK_INT(unit_tmp_leave(), 0);
}

static void start_bad_in(void)
{
	char *argv[] = {"/bin/sh", "-c", "exit 0", NULL};
	pid_t pid = child_start(argv, 999);
	_exit(pid > 0 ? child_wait(pid) : 2);
}

TEST(bad_in_is_told_by_the_child)
{
	char want[256];

	enter_tmpdir();
	CHECK_INT(outcome_of(start_bad_in), 111);
	expect_sys_line(want, sizeof want, "unable to set up fd 0", EBADF);
	CHECK_STR(errtext, errlen, want);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(fork_failure)
{
	char *argv[] = {"/bin/sh", "-c", "exit 0", NULL};

	no_more_processes();
	errno = 0;
	CHECK_INT(child_start(argv, -1), -1);
	CHECK_INT(errno, EAGAIN);
}

TEST(wait_for_a_stranger)
{
	errno = 0;
	CHECK_INT(child_wait(getppid()), -1);
	CHECK_INT(errno, ECHILD);
	/* One that has been reaped already is no child either. */
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	CHECK_INT(child_wait(pid), 0);
	CHECK_INT(child_wait(pid), -1);
	CHECK_INT(errno, ECHILD);
}

/* --- the helpers' versions --- */

static void start_or_defer_without_fork(void)
{
	char *argv[] = {"/bin/sh", "-c", "exit 0", NULL};
	no_more_processes();
	child_start_or_defer(argv, -1);
	_exit(0);
}

TEST(start_or_defer_fork_failure)
{
	char want[256];

	enter_tmpdir();
	CHECK_INT(outcome_of(start_or_defer_without_fork), 111);
	expect_sys_line(want, sizeof want, "unable to fork", EAGAIN);
	CHECK_STR(errtext, errlen, want);
	CHECK_INT(unit_tmp_leave(), 0);
}

static void wait_or_defer_crash(void)
{
	char *argv[] = {"/bin/sh", "-c", "kill -SEGV $$", NULL};
	child_wait_or_defer(child_start(argv, -1), "prog");
	_exit(0);
}

static void wait_or_defer_stranger(void)
{
	child_wait_or_defer(getppid(), "prog");
	_exit(0);
}

static void wait_or_defer_code(void)
{
	char *argv[] = {"/bin/sh", "-c", "exit 42", NULL};
	_exit(child_wait_or_defer(child_start(argv, -1), "prog"));
}

TEST(wait_or_defer)
{
	char want[256];

	enter_tmpdir();
	CHECK_INT(outcome_of(wait_or_defer_code), 42);
	CHECK_INT(errlen, 0);
	CHECK_INT(outcome_of(wait_or_defer_crash), 111);
	CHECK_STR(errtext, errlen, "t_child: fatal: prog crashed\n");
	CHECK_INT(outcome_of(wait_or_defer_stranger), 111);
	expect_sys_line(want, sizeof want, "unable to wait for prog", ECHILD);
	CHECK_STR(errtext, errlen, want);
	CHECK_INT(unit_tmp_leave(), 0);
}

static void run_or_defer_codes(void)
{
	char *says_5[] = {"/bin/sh", "-c", "echo to fd 2 >&2; exit 5", NULL};
	char *missing[] = {"/nonexistent/prog", NULL};
	char *crashes[] = {"/bin/sh", "-c", "kill -TERM $$", NULL};

	if (child_run_or_defer(says_5) != 5)
		_exit(1);
	/* The program could not run: that is its child's 111. */
	if (child_run_or_defer(missing) != 111)
		_exit(1);
	child_run_or_defer(crashes);
	_exit(0);
}

TEST(run_or_defer)
{
	char want[512];

	enter_tmpdir();
	CHECK_INT(outcome_of(run_or_defer_codes), 111);
	snprintf(want, sizeof want,
		 "to fd 2\nt_child: fatal: unable to run /nonexistent/prog: "
		 "%s\nt_child: fatal: /bin/sh crashed\n",
		 strerror(ENOENT));
	CHECK_STR(errtext, errlen, want);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(exit_codes, signals_are_not_exit_codes, program_found_through_path,
	  child_gets_our_descriptors,
	  in_becomes_fd_0_and_is_closed_in_the_child,
	  exec_failure_is_told_by_the_child, bad_in_is_told_by_the_child,
	  fork_failure, wait_for_a_stranger, start_or_defer_fork_failure,
	  wait_or_defer, run_or_defer)
