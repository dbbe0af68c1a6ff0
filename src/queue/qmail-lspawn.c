/*
 * qmail-lspawn: run local deliveries, each as the mailbox's owner.
 *
 * In production it runs as root and becomes the user of each delivery
 * (found through users/cdb or the passwd rules, mail/users.h); it never
 * delivers as uid 0. Not running as root (an instance), it delivers only
 * to users with its own uid. The user lookup happens in the child, so a
 * slow passwd lookup never stalls other deliveries. Argument: the
 * default delivery instruction given to qmail-local.
 */
#include <grp.h>
#include <string.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "mail/users.h"
#include "queue/spawn.h"

static const char *defaultdelivery = "./Maildir/";

static _Noreturn void say(const char *text, int code)
{
	ssize_t w = write(1, text, strlen(text));
	(void)w;
	_exit(code);
}

static _Noreturn void deliver(const char *sender, const char *rcpt)
{
	struct str local = STR_INIT, domain = STR_INIT;
	struct userinfo u = {STR_INIT, STR_INIT, STR_INIT, STR_INIT, 0, 0};

	spawn_split(rcpt, &local, &domain);
	switch (users_lookup(local.s, &u)) {
	case 1:
		break;
	case 0:
		say("Sorry, no mailbox here by that name. (#5.1.1)\n",
		    EXIT_PERM);
	default:
		say("Unable to look up the mailbox owner. (#4.3.0)\n",
		    EXIT_TEMP);
	}
	if (getuid() == 0) {
		if (u.uid == 0)
			say("Refusing to deliver as uid 0. (#4.3.0)\n",
			    EXIT_TEMP);
		if (setgroups(1, &u.gid) < 0 || setgid(u.gid) < 0 ||
		    setuid(u.uid) < 0)
			say("Unable to switch to the mailbox owner. (#4.3.0)\n",
			    EXIT_TEMP);
	} else if (u.uid != getuid()) {
		say("Not running as root: cannot deliver as another user. "
		    "(#4.3.0)\n",
		    EXIT_TEMP);
	}
	struct str prog = STR_INIT;
	if (str_copys(&prog, home_dir()) < 0 ||
	    str_appends(&prog, "/bin/qmail-local") < 0)
		say("Out of memory. (#4.3.0)\n", EXIT_TEMP);
	char *argv[] = {prog.s,
			"--",
			u.user.s,
			u.home.s,
			local.s,
			u.dash.s,
			u.ext.s,
			domain.s,
			(char *)sender,
			(char *)defaultdelivery,
			NULL};
	execv(prog.s, argv);
	say("Unable to run qmail-local. (#4.3.0)\n", EXIT_TEMP);
}

static void report(int status, const struct str *output, struct str *r)
{
	char kind = 'Z';

	if (WIFEXITED(status)) {
		switch (WEXITSTATUS(status)) {
		case 0:
			kind = 'K';
			break;
		case EXIT_PERM:
			kind = 'D';
			break;
		}
	}
	if (str_appendc(r, kind) < 0 ||
	    str_append(r, output->s ? output->s : "", output->len) < 0)
		log_nomem();
	if (kind == 'Z' && !WIFEXITED(status) &&
	    str_appends(r, "qmail-local crashed. (#4.3.0)") < 0)
		log_nomem();
}

int main(int argc, char **argv)
{
	static const struct spawn_ops ops = {deliver, report};

	log_init(argv[0]);
	if (argc > 1)
		defaultdelivery = argv[1];
	home_chdir();
	return spawn_main(&ops);
}
