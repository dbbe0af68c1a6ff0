/*
 * roles.c: role accounts, by name in production, by owner in an instance.
 *
 * Dropping privileges is done in the one order that cannot leave a
 * process with root's groups: setgroups, setgid, setuid.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/home.h"
#include "mail/roles.h"

static const char *const user_names[] = {
    [ROLE_SEND] = "qmails", [ROLE_REMOTE] = "qmailr", [ROLE_QUEUE] = "qmailq",
    [ROLE_LOG] = "qmaill",  [ROLE_DAEMON] = "qmaild", [ROLE_ALIAS] = "alias",
};
static const char *const group_names[] = {
    [ROLE_SEND] = "qmail",  [ROLE_REMOTE] = "qmail",   [ROLE_QUEUE] = "qmail",
    [ROLE_LOG] = "nofiles", [ROLE_DAEMON] = "nofiles", [ROLE_ALIAS] = "nofiles",
};

int roles_lookup(enum role r, struct roleid *id)
{
	struct stat st;

	if (home_is_instance()) {
		if (stat("INSTANCE", &st) < 0)
			return -1;
		id->uid = st.st_uid;
		id->gid = st.st_gid;
		return 0;
	}
	errno = 0;
	struct passwd *pw = getpwnam(user_names[r]);
	if (!pw) {
		if (!errno)
			errno = ENOENT;
		return -1;
	}
	id->uid = pw->pw_uid;
	errno = 0;
	struct group *gr = getgrnam(group_names[r]);
	if (!gr) {
		if (!errno)
			errno = ENOENT;
		return -1;
	}
	id->gid = gr->gr_gid;
	return 0;
}

int roles_become(enum role r)
{
	struct roleid id;

	if (getuid() != 0 && geteuid() != 0)
		return 0;
	if (roles_lookup(r, &id) < 0)
		return -1;
	if (setgroups(1, &id.gid) < 0 || setgid(id.gid) < 0 ||
	    setuid(id.uid) < 0)
		return -1;
	return 0;
}
