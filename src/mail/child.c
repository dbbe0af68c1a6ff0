/*
 * child.c: fork, exec without a shell, and wait.
 *
 * The child touches nothing but fd 0 before exec, and on failure leaves
 * with _exit (through log_fatal_sys), so it never runs the parent's exit
 * handlers or flushes the parent's buffers twice. Waiting retries EINTR
 * and never reports a signal as an exit code.
 */
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/exitcode.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "mail/child.h"

pid_t child_start(char *const *argv, int in)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	if (in != -1 && fd_move(0, in) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to set up fd 0");
	execvp(argv[0], argv);
	log_fatal_sys(EXIT_TEMP, "unable to run %s", argv[0]);
}

int child_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return CHILD_SIGNALED + WTERMSIG(status);
}

pid_t child_start_or_defer(char *const *argv, int in)
{
	pid_t pid = child_start(argv, in);

	if (pid < 0)
		log_fatal_sys(EXIT_TEMP, "unable to fork");
	return pid;
}

int child_wait_or_defer(pid_t pid, const char *name)
{
	int code = child_wait(pid);

	if (code < 0)
		log_fatal_sys(EXIT_TEMP, "unable to wait for %s", name);
	if (code >= CHILD_SIGNALED)
		log_fatal(EXIT_TEMP, "%s crashed", name);
	return code;
}

int child_run_or_defer(char *const *argv)
{
	return child_wait_or_defer(child_start_or_defer(argv, -1), argv[0]);
}
