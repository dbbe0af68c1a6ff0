/*
 * cpwrun.c: one checkpassword run.
 *
 * The input (at most 2 KB) fits in a pipe's buffer, so the write does
 * not wait for checkpassword to read; one that exits without reading
 * only costs an EPIPE (SIGPIPE must be ignored by the caller), and its
 * exit status tells what happened. The parent keeps no copy of the
 * password after the write.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/cpwrun.h"
#include "auth/sasl.h"
#include "lib/buf.h"
#include "lib/checked.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/fd.h"

/* "user\0pass\0stamp\0" into msg; returns its length, or 0 when it does
 * not fit or the user is not a C string. */
static size_t cpwrun_format(const struct cpwrun_input *in, char *msg)
{
	size_t total;

	if (memchr(in->user, 0, in->ulen)) {
		errno = EINVAL;
		return 0;
	}
	if (size_add(in->ulen, in->plen, &total) < 0 ||
	    size_add(total, in->slen, &total) < 0 ||
	    size_add(total, 3, &total) < 0 || total > CPWRUN_INPUT_MAX) {
		errno = EMSGSIZE;
		return 0;
	}
	memcpy(msg, in->user, in->ulen);
	msg[in->ulen] = 0;
	memcpy(msg + in->ulen + 1, in->pass, in->plen);
	msg[in->ulen + 1 + in->plen] = 0;
	memcpy(msg + in->ulen + in->plen + 2, in->stamp, in->slen);
	msg[total - 1] = 0;
	return total;
}

static _Noreturn void cpwrun_child(char *const *argv, int rd, const char *user)
{
	signal(SIGPIPE, SIG_DFL);
	if (env_set("AUTHUP_USER", user) < 0 || fd_move(3, rd) < 0)
		_exit(EXIT_TEMP);
	execvp(argv[0], argv);
	_exit(EXIT_TEMP);
}

int cpwrun(char *const *argv, const struct cpwrun_input *in, int *status)
{
	char msg[CPWRUN_INPUT_MAX];
	int p[2];
	size_t n;
	pid_t pid;

	n = cpwrun_format(in, msg);
	if (n == 0)
		return -1;
	if (pipe(p) < 0) {
		sasl_wipe(msg, n);
		return -1;
	}
	if (fd_cloexec(p[0]) < 0 || fd_cloexec(p[1]) < 0 ||
	    (pid = fork()) < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		sasl_wipe(msg, n);
		errno = e;
		return -1;
	}
	if (pid == 0)
		cpwrun_child(argv, p[0], msg); /* msg starts "user\0" */
	close(p[0]);
	/* A checkpassword that exits without reading gives EPIPE: its exit
	 * status says what happened, so the write error is not ours. */
	(void)fd_write_all(p[1], msg, n, 0);
	sasl_wipe(msg, n);
	close(p[1]);
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

enum cpwrun_outcome cpwrun_outcome(int status, int *code)
{
	if (WIFSIGNALED(status)) {
		*code = WTERMSIG(status);
		return CPWRUN_CRASHED;
	}
	*code = WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_TEMP;
	if (*code == 1 || *code == 2 || *code == EXIT_TEMP)
		return CPWRUN_FAILED;
	return CPWRUN_SESSION;
}
