/*
 * checkpassword: check a system account's password (djb's interface).
 *
 *   checkpassword prog...
 *
 * Reads "login\0password\0timestamp\0" from fd 3 (at most 512 bytes),
 * looks the login up with getpwnam and, where there is one, getspnam,
 * and checks the password with crypt(3). On success it becomes the user
 * and runs prog (pwlogin.h). Exit codes: 1 bad login (also locked,
 * expired or empty passwords and failed id changes), 2 misuse, 111
 * temporary failure. It never says why a login failed to the client,
 * and never runs prog for a login it did not verify.
 */
#include <errno.h>
#include <pwd.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<shadow.h>)
#include <shadow.h>
#define HAVE_SHADOW 1
#endif

#include "auth/cpwin.h"
#include "auth/pwhash.h"
#include "auth/pwlogin.h"
#include "lib/exitcode.h"
#include "lib/log.h"

/* getpwnam's "no such user": glibc's NSS modules give several errnos. */
static int not_found(int e)
{
	return e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM;
}

/* The stored hash for pw, or NULL when it cannot be read (111). Sets
 * *expired for a shadow entry past its expiry date. */
static const char *stored_hash(const struct passwd *pw, int *expired)
{
	*expired = 0;
#ifdef HAVE_SHADOW
	errno = 0;
	struct spwd *sp = getspnam(pw->pw_name);
	if (sp) {
		long today = (long)(time(NULL) / 86400);
		if (sp->sp_expire > 0 && today >= sp->sp_expire)
			*expired = 1;
		return sp->sp_pwdp ? sp->sp_pwdp : "";
	}
	if (errno == EACCES) {
		log_warn(
		    "unable to read the shadow file: not running as root?");
		return NULL;
	}
#endif
	return pw->pw_passwd ? pw->pw_passwd : "";
}

int main(int argc, char **argv)
{
	struct cpwin in;
	struct passwd *pw;
	const char *hash;
	int expired, ok;

	log_init(argv[0]);
	if (argc < 2) {
		log_warn("usage: checkpassword prog...");
		return 2;
	}
	/* Without root the hashes cannot be read (NSS may even invent a
	 * locked root entry), and no user's ids can be taken. */
	if (geteuid() != 0) {
		log_warn("not running as root: unable to check system "
			 "passwords");
		return EXIT_TEMP;
	}
	if (cpwin_read(3, &in) < 0) {
		if (errno == EPROTO)
			return 2;
		log_warn_sys("unable to read fd 3");
		return EXIT_TEMP;
	}
	close(3);
	errno = 0;
	pw = getpwnam(in.login);
	if (!pw) {
		int e = errno;
		pwhash_waste(in.pass);
		cpwin_wipe(&in);
		if (not_found(e))
			return 1;
		errno = e;
		log_warn_sys("unable to look up a user");
		return EXIT_TEMP;
	}
	hash = stored_hash(pw, &expired);
	if (!hash) {
		cpwin_wipe(&in);
		return EXIT_TEMP;
	}
	ok = pwhash_check(in.pass, hash) && !expired;
	cpwin_wipe(&in);
	if (!ok)
		return 1;
	struct pwlogin l = {pw->pw_name, pw->pw_uid, pw->pw_gid, pw->pw_dir,
			    pw->pw_shell};
	int code = pwlogin_exec(&l, PWLOGIN_SWITCH, argv + 1);
	if (code == EXIT_TEMP)
		log_warn_sys("unable to enter the home of %s or to run %s",
			     pw->pw_name, argv[1]);
	return code;
}
