/*
 * checkpassword-cdb: check a virtual user's password (djb's interface)
 * against a cdb made by qmail-passwd.
 *
 *   checkpassword-cdb [-f file.cdb] prog...
 *
 * The cdb defaults to users/passwd.cdb in the qmail home. Its value for
 * a login is "hash:uid:gid:home" (userdb.h). On success it runs prog as
 * that uid and gid, in that home: it switches ids when it runs as root,
 * and otherwise requires them to be its own, so that an instance needs
 * no root at all. Exit codes: 1 bad login, 2 misuse, 111 temporary
 * failure (also a missing or unreadable cdb and a malformed entry, which
 * are the administrator's to fix). It never runs prog as root.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "auth/cpwin.h"
#include "auth/pwhash.h"
#include "auth/pwlogin.h"
#include "auth/userdb.h"
#include "lib/cdbx.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"

static _Noreturn void usage(void)
{
	log_warn("usage: checkpassword-cdb [-f file.cdb] prog...");
	_exit(2);
}

/* The entry for login: 1 found, 0 not, -1 temporary failure (logged). */
static int find_user(const char *path, const char *login,
		     struct userdb_entry *e)
{
	struct cdbx_reader r;
	struct str val = STR_INIT;
	int found;

	int opened = cdbx_open(&r, path);
	if (opened <= 0) {
		if (opened == 0)
			errno = ENOENT;
		log_warn_sys("unable to open %s", path);
		return -1;
	}
	found = cdbx_find(&r, login, strlen(login), &val, USERDB_LINE_MAX);
	cdbx_close(&r);
	if (found < 0) {
		log_warn_sys("unable to read %s", path);
	} else if (found == 1 && userdb_value(val.s, val.len, e) < 0) {
		log_warn("%s: malformed entry for a user", path);
		found = -1;
	}
	str_free(&val);
	return found;
}

int main(int argc, char **argv)
{
	static struct userdb_entry e;
	struct cpwin in;
	struct str dflt = STR_INIT;
	const char *path = NULL;
	char **prog = argv + 1;

	log_init(argv[0]);
	if (argc > 1 && strcmp(argv[1], "-f") == 0) {
		if (argc < 3)
			usage();
		path = argv[2];
		prog = argv + 3;
	}
	if (!*prog)
		usage();
	if (!path) {
		if (str_copys(&dflt, home_dir()) < 0 ||
		    str_appends(&dflt, "/users/passwd.cdb") < 0)
			log_nomem();
		path = dflt.s;
	}
	if (cpwin_read(3, &in) < 0) {
		if (errno == EPROTO)
			return 2;
		log_warn_sys("unable to read fd 3");
		return EXIT_TEMP;
	}
	close(3);
	size_t llen = strlen(in.login);
	int found = 0;
	if (userdb_login_ok(in.login, llen)) {
		memcpy(e.login, in.login, llen + 1);
		found = find_user(path, e.login, &e);
	}
	if (found <= 0) {
		if (found == 0)
			pwhash_waste(in.pass);
		cpwin_wipe(&in);
		return found == 0 ? 1 : EXIT_TEMP;
	}
	int ok = pwhash_check(in.pass, e.hash);
	cpwin_wipe(&in);
	if (!ok)
		return 1;
	struct pwlogin l = {e.login, (uid_t)e.uid, (gid_t)e.gid, e.home,
			    "/bin/sh"};
	int code = pwlogin_exec(&l, PWLOGIN_SWITCH_ROOT, prog);
	if (code == EXIT_TEMP)
		log_warn_sys("unable to enter %s or to run %s", e.home,
			     prog[0]);
	else
		log_warn("%s: uid %lu gid %lu are not mine to take", e.login,
			 e.uid, e.gid);
	return code;
}
