/*
 * except: run a program and turn its success into a permanent failure
 * and its permanent failure into success.
 *
 * Exit codes: the program's 0 becomes 100, its 100 becomes 0, any other
 * code is passed on. It never turns a crash or a program that cannot be
 * run into anything but 111, so a broken filter defers mail rather than
 * delivering or bouncing it. No shell is involved.
 */
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/exitcode.h"
#include "lib/log.h"

static int run_program(char *const *argv)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		log_fatal_sys(EXIT_TEMP, "unable to fork");
	if (pid == 0) {
		execvp(argv[0], argv);
		log_fatal_sys(EXIT_TEMP, "unable to run %s", argv[0]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			log_fatal_sys(EXIT_TEMP, "unable to wait for %s",
				      argv[0]);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv)
{
	log_init(argc > 0 ? argv[0] : "except");
	if (argc < 2)
		log_fatal(EXIT_PERM, "usage: except program [arg ...]");
	int code = run_program(argv + 1);
	switch (code) {
	case 0:
		return EXIT_PERM;
	case EXIT_PERM:
		return 0;
	case -1:
		log_fatal(EXIT_TEMP, "%s crashed", argv[1]);
	default:
		return code;
	}
}
