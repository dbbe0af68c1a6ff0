/*
 * pwlogin.h: the last step of a checkpassword program, after the
 * password was accepted: become the user and run prog.
 *
 * In this order: setgroups to the user's gid only, setgid, setuid; chdir
 * to the home; USER, HOME and SHELL; exec prog with fds 0, 1 and 2 as
 * they are. It returns only on failure, with the exit code djb's
 * interface gives for it. It never runs prog under ids it did not mean.
 */
#ifndef QM_AUTH_PWLOGIN_H
#define QM_AUTH_PWLOGIN_H

#include <sys/types.h>

struct pwlogin {
	const char *user;
	uid_t uid;
	gid_t gid;
	const char *home;
	const char *shell; /* NULL or empty: /bin/sh */
};

enum pwlogin_ids {
	PWLOGIN_SWITCH,	    /* always switch ids (system accounts) */
	PWLOGIN_SWITCH_ROOT /* switch when root; otherwise the user's uid
			       and gid must already be ours */
};

/* Returns 1 when the ids could not be taken (or, without root, are not
 * ours), 111 when chdir, the environment or exec failed. */
int pwlogin_exec(const struct pwlogin *l, enum pwlogin_ids mode,
		 char *const *prog);

#endif
