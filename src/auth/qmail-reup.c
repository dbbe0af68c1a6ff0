/*
 * qmail-reup: run a program again until it succeeds.
 *
 *   qmail-reup [-t tries] prog...
 *
 * Runs prog with REUP=<try number, from 1> and REUP_TRIES=<tries left,
 * this one included> in its environment, and runs it again while it
 * exits with anything but 0 or 12 and tries remain; then exits with
 * prog's last status. A prog killed by a signal is never run again
 * (reup exits 111): it may have left the connection in a state a new
 * run cannot know, such as TLS already started.
 *
 * qmail-authup reads REUP_TRIES and does all its retries itself, on the
 * one connection, and always exits 0 or 12 under reup, so reup never
 * starts a second authup on a connection: see qmail-reup(8).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/log.h"

#define REUP_DEFAULT_TRIES 5
#define REUP_TRIES_MAX 1000

static _Noreturn void usage(void)
{
	log_fatal(EXIT_PERM, "usage: qmail-reup [-t tries] prog...");
}

static unsigned long parse_tries(const char *s)
{
	char *end;
	unsigned long n;

	if (!s || *s < '0' || *s > '9')
		usage();
	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno || *end || n == 0 || n > REUP_TRIES_MAX)
		usage();
	return n;
}

static void export_num(const char *name, unsigned long n)
{
	char num[24];

	snprintf(num, sizeof num, "%lu", n);
	if (env_set(name, num) < 0)
		log_nomem();
}

/* One run; returns its wait status. */
static int run_once(char **prog, unsigned long try, unsigned long tries)
{
	pid_t pid;
	int status;

	export_num("REUP", try);
	export_num("REUP_TRIES", tries - try + 1);
	pid = fork();
	if (pid < 0)
		log_fatal_sys(EXIT_TEMP, "unable to fork");
	if (pid == 0) {
		execvp(prog[0], prog);
		log_fatal_sys(EXIT_TEMP, "unable to run %s", prog[0]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			log_fatal_sys(EXIT_TEMP, "unable to wait for %s",
				      prog[0]);
	return status;
}

int main(int argc, char **argv)
{
	unsigned long tries = REUP_DEFAULT_TRIES;
	char **prog = argv + 1;
	int code = EXIT_TEMP;

	log_init(argv[0]);
	if (*prog && strcmp(*prog, "-t") == 0) {
		tries = parse_tries(prog[1]);
		prog += 2;
	} else if (*prog && strncmp(*prog, "-t", 2) == 0) {
		tries = parse_tries(*prog + 2);
		prog++;
	}
	if (*prog && strcmp(*prog, "--") == 0)
		prog++;
	if (!*prog)
		usage();
	for (unsigned long try = 1; try <= tries; try++) {
		int status = run_once(prog, try, tries);
		if (WIFSIGNALED(status)) {
			log_warn("%s killed by signal %d: not run again",
				 prog[0], WTERMSIG(status));
			return EXIT_TEMP;
		}
		code = WEXITSTATUS(status);
		if (code == 0 || code == 12)
			break;
	}
	return code;
}
