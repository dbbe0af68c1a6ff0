/*
 * pwlogin.c: dropping to the user's ids and running prog.
 *
 * Each id change is checked, and checked again afterwards: a process
 * that kept any trace of root must never reach exec.
 */
#include <grp.h>
#include <unistd.h>

#include "auth/pwlogin.h"
#include "lib/env.h"
#include "lib/exitcode.h"

static int take_ids(const struct pwlogin *l, enum pwlogin_ids mode)
{
	if (mode == PWLOGIN_SWITCH_ROOT && geteuid() != 0)
		return getuid() == l->uid && geteuid() == l->uid &&
			       getgid() == l->gid && getegid() == l->gid
			   ? 0
			   : -1;
	if (setgroups(1, &l->gid) < 0 || setgid(l->gid) < 0 ||
	    setuid(l->uid) < 0)
		return -1;
	if (getuid() != l->uid || geteuid() != l->uid || getgid() != l->gid ||
	    getegid() != l->gid)
		return -1;
	return 0;
}

int pwlogin_exec(const struct pwlogin *l, enum pwlogin_ids mode,
		 char *const *prog)
{
	const char *shell = l->shell && *l->shell ? l->shell : "/bin/sh";

	if (take_ids(l, mode) < 0)
		return 1;
	if (chdir(l->home) < 0)
		return EXIT_TEMP;
	if (env_set("USER", l->user) < 0 || env_set("HOME", l->home) < 0 ||
	    env_set("SHELL", shell) < 0)
		return EXIT_TEMP;
	execvp(prog[0], prog);
	return EXIT_TEMP;
}
