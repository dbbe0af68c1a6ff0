/*
 * qmail-start: set up the pipes and start the queue's processes.
 *
 *   qmail-start defaultdelivery [logger arg...]
 *
 * It runs qmail-lspawn (keeping root: it becomes each user per
 * delivery), qmail-rspawn, qmail-clean and, when given, the logger, each
 * as its role when started as root, joined by the pipes of
 * spec/queue.md. qmail-send's fd 0 is the logger's input, or our own
 * fd 1 without a logger. It never keeps running itself: it execs
 * qmail-send, so that the supervisor's signals reach qmail-send directly.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/exitcode.h"
#include "lib/fd.h"
#include "lib/home.h"
#include "lib/log.h"
#include "mail/roles.h"

#define KEEP_ROOT (-1)
#define NPIPES 7

/* pipes[i][0] is the read end, [1] the write end. */
static int pipes[NPIPES][2];
enum { TOLSPAWN, FROMLSPAWN, TORSPAWN, FROMRSPAWN, TOCLEAN, FROMCLEAN, TOLOG };

static void close_pipes(void)
{
	for (int i = 0; i < NPIPES; i++)
		for (int e = 0; e < 2; e++)
			if (pipes[i][e] >= 0)
				close(pipes[i][e]);
}

/* In the child: the two given descriptors become fd 0 and fd 1, every
 * other pipe end we made is closed, the role is taken, then exec. */
static void start(char **argv, int role, int in, int out)
{
	pid_t pid = fork();
	if (pid < 0)
		log_fatal_sys(EXIT_TEMP, "unable to fork");
	if (pid > 0)
		return;
	/* Copy the pair out of the way first: they may be 0 or 1. */
	int tin = dup(in), tout = out >= 0 ? dup(out) : -1;
	if (tin < 0 || (out >= 0 && tout < 0))
		log_fatal_sys(EXIT_TEMP, "unable to dup for %s", argv[0]);
	close_pipes();
	if (fd_move(0, tin) < 0 || (tout >= 0 && fd_move(1, tout) < 0))
		log_fatal_sys(EXIT_TEMP, "unable to set up fds for %s",
			      argv[0]);
	if (role != KEEP_ROOT && roles_become((enum role)role) < 0)
		log_fatal_sys(EXIT_TEMP,
			      "unable to switch to the account for %s",
			      argv[0]);
	execvp(argv[0], argv);
	log_fatal_sys(EXIT_TEMP, "unable to run %s", argv[0]);
}

int main(int argc, char **argv)
{
	static char lspawn[] = "bin/qmail-lspawn", rspawn[] = "bin/qmail-rspawn",
		    clean[] = "bin/qmail-clean", send[] = "bin/qmail-send";
	char *largv[] = {lspawn, argc > 1 ? argv[1] : NULL, NULL};
	char *rargv[] = {rspawn, NULL}, *cargv[] = {clean, NULL};
	int logger = argc > 2;

	log_init(argv[0]);
	home_chdir();
	for (int i = 0; i < NPIPES; i++) {
		pipes[i][0] = pipes[i][1] = -1;
		if ((i != TOLOG || logger) && pipe(pipes[i]) < 0)
			log_fatal_sys(EXIT_TEMP, "unable to create a pipe");
	}

	if (logger)
		start(argv + 2, ROLE_LOG, pipes[TOLOG][0], -1);
	start(largv, KEEP_ROOT, pipes[TOLSPAWN][0], pipes[FROMLSPAWN][1]);
	start(rargv, ROLE_REMOTE, pipes[TORSPAWN][0], pipes[FROMRSPAWN][1]);
	start(cargv, ROLE_QUEUE, pipes[TOCLEAN][0], pipes[FROMCLEAN][1]);

	/* qmail-send: fd 0 log, 1/2 lspawn, 3/4 rspawn, 5/6 clean. */
	int want[7] = {logger ? pipes[TOLOG][1] : 1,
		       pipes[TOLSPAWN][1],
		       pipes[FROMLSPAWN][0],
		       pipes[TORSPAWN][1],
		       pipes[FROMRSPAWN][0],
		       pipes[TOCLEAN][1],
		       pipes[FROMCLEAN][0]};
	int moved[7];
	for (int i = 0; i < 7; i++)
		if ((moved[i] = dup(want[i])) < 0)
			log_fatal_sys(EXIT_TEMP, "unable to dup");
	close_pipes();
	for (int i = 0; i < 7; i++)
		if (fd_move(i, moved[i]) < 0)
			log_fatal_sys(EXIT_TEMP, "unable to set up fds");
	if (roles_become(ROLE_SEND) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to switch to the qmails account");
	char *sargv[] = {send, NULL};
	execv(send, sargv);
	log_fatal_sys(EXIT_TEMP, "unable to run %s", send);
}
