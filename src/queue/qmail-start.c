/*
 * qmail-start: set up the pipes and start the queue's processes.
 *
 * It runs qmail-send, qmail-lspawn, qmail-rspawn and qmail-clean, each
 * as its role (when started as root), joined by the pipes in
 * spec/queue.md. qmail-send's fd 0 is our fd 1, the log. The remaining
 * arguments (the default delivery) go to qmail-lspawn. It must never
 * keep running itself: it execs qmail-send, so that the supervisor's
 * signals reach qmail-send directly.
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

static void make_pipe(int p[2])
{
	if (pipe(p) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to create a pipe");
}

/* In the child: put the two pipe ends at fd 0 and 1, close everything
 * else we made, take the role, exec. */
static void start(const char *prog, char **argv, enum role role, int in,
		  int out, int *all, int nall)
{
	pid_t pid = fork();
	if (pid < 0)
		log_fatal_sys(EXIT_TEMP, "unable to fork");
	if (pid > 0)
		return;
	/* Move the pair out of the way first: they may be 0 or 1. */
	int tin = dup(in), tout = dup(out);
	if (tin < 0 || tout < 0)
		log_fatal_sys(EXIT_TEMP, "unable to dup for %s", prog);
	for (int i = 0; i < nall; i++)
		close(all[i]);
	if (fd_move(0, tin) < 0 || fd_move(1, tout) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to set up fds for %s", prog);
	if (roles_become(role) < 0)
		log_fatal_sys(EXIT_TEMP,
			      "unable to switch to the account for %s", prog);
	execv(argv[0], argv);
	log_fatal_sys(EXIT_TEMP, "unable to run %s", argv[0]);
}

int main(int argc, char **argv)
{
	int tolspawn[2], fromlspawn[2], torspawn[2], fromrspawn[2];
	int toclean[2], fromclean[2];
	static char lspawn[] = "bin/qmail-lspawn",
		    rspawn[] = "bin/qmail-rspawn", clean[] = "bin/qmail-clean",
		    send[] = "bin/qmail-send";

	log_init(argv[0]);
	home_chdir();
	make_pipe(tolspawn);
	make_pipe(fromlspawn);
	make_pipe(torspawn);
	make_pipe(fromrspawn);
	make_pipe(toclean);
	make_pipe(fromclean);
	int all[] = {tolspawn[0], tolspawn[1], fromlspawn[0], fromlspawn[1],
		     torspawn[0], torspawn[1], fromrspawn[0], fromrspawn[1],
		     toclean[0],  toclean[1],  fromclean[0],  fromclean[1]};
	int nall = (int)(sizeof all / sizeof all[0]);

	/* qmail-lspawn gets our arguments: the default delivery. */
	char **largv = calloc((size_t)argc + 1, sizeof *largv);
	if (!largv)
		log_nomem();
	largv[0] = lspawn;
	for (int i = 1; i < argc; i++)
		largv[i] = argv[i];
	char *rargv[] = {rspawn, NULL}, *cargv[] = {clean, NULL};

	/* qmail-lspawn keeps root: it becomes each user per delivery. */
	start(lspawn, largv, ROLE_SEND, tolspawn[0], fromlspawn[1], all, nall);
	start(rspawn, rargv, ROLE_REMOTE, torspawn[0], fromrspawn[1], all,
	      nall);
	start(clean, cargv, ROLE_QUEUE, toclean[0], fromclean[1], all, nall);

	/* qmail-send: fd 0 log, 1/2 lspawn, 3/4 rspawn, 5/6 clean. */
	int want[7] = {1,	    tolspawn[1],   fromlspawn[0],
		       torspawn[1], fromrspawn[0], toclean[1],
		       fromclean[0]};
	int moved[7];
	for (int i = 0; i < 7; i++)
		if ((moved[i] = dup(want[i])) < 0)
			log_fatal_sys(EXIT_TEMP, "unable to dup");
	for (int i = 0; i < nall; i++)
		close(all[i]);
	for (int i = 0; i < 7; i++)
		if (fd_move(i, moved[i]) < 0)
			log_fatal_sys(EXIT_TEMP, "unable to set up fds");
	if (roles_become(ROLE_SEND) < 0)
		log_fatal_sys(EXIT_TEMP,
			      "unable to switch to the qmails account");
	char *sargv[] = {send, NULL};
	execv(send, sargv);
	log_fatal_sys(EXIT_TEMP, "unable to run %s", send);
}
