/*
 * predate: run a program with a Date field for now put before its input.
 *
 * "predate prog arg..." gives prog a pipe on its standard input that
 * carries "Date: <now>" and then everything predate reads, and exits
 * with prog's exit code. If the input cannot be read the program is
 * killed first, so that it never mistakes a cut message for a whole
 * one. No shell is involved: prog is found through PATH by execvp.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/date822.h"
#include "lib/exitcode.h"
#include "lib/fd.h"
#include "lib/log.h"

static pid_t start(char **argv, int *to_child)
{
	int p[2];
	pid_t pid;

	if (pipe(p) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to create a pipe");
	pid = fork();
	if (pid < 0)
		log_fatal_sys(EXIT_TEMP, "unable to fork");
	if (pid == 0) {
		close(p[1]);
		if (fd_move(0, p[0]) < 0)
			log_fatal_sys(EXIT_TEMP, "unable to set up input");
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		log_fatal_sys(EXIT_TEMP, "unable to run %s", argv[0]);
	}
	close(p[0]);
	*to_child = p[1];
	return pid;
}

/* Returns 0 when the input was copied (or the program stopped reading
 * it), -1 when the input could not be read. */
static int feed(int fd)
{
	char ispace[BUF_SIZE], ospace[BUF_SIZE], date[DATE822_LEN];
	struct buf in, out;
	ssize_t r;

	buf_init(&in, 0, ispace, sizeof ispace, 0);
	buf_init(&out, fd, ospace, sizeof ospace, 0);
	date822_fmt(date, time(NULL));
	if (buf_puts(&out, "Date: ") < 0 || buf_puts(&out, date) < 0 ||
	    buf_putc(&out, '\n') < 0)
		return 0; /* the program is gone; its status tells */
	while ((r = buf_fill(&in)) > 0) {
		if (buf_put(&out, buf_peek(&in), (size_t)r) < 0)
			return 0;
		buf_skip(&in, (size_t)r);
	}
	if (r < 0)
		return -1;
	buf_flush(&out);
	return 0;
}

int main(int argc, char **argv)
{
	int fd, status, saved;
	pid_t pid;

	log_init(argv[0]);
	if (argc < 2)
		log_fatal(EXIT_PERM, "usage: predate program [arg ...]");
	signal(SIGPIPE, SIG_IGN);
	pid = start(argv + 1, &fd);
	if (feed(fd) < 0) {
		saved = errno;
		kill(pid, SIGTERM);
		close(fd);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		errno = saved;
		log_fatal_sys(EXIT_TEMP, "unable to read input");
	}
	close(fd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			log_fatal_sys(EXIT_TEMP, "unable to wait for %s",
				      argv[1]);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	log_fatal(EXIT_TEMP, "%s was killed by signal %d", argv[1],
		  WTERMSIG(status));
}
