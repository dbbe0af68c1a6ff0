/*
 * qmail-pop3d: the TRANSACTION and UPDATE states of POP3 (RFC 1939) over
 * one Maildir, after qmail-authup and checkpassword have logged the user
 * in (qmail-pop3d(8)).
 *
 * Its first line answers the client's PASS. It must never run as root,
 * never delete anything unless the client sends QUIT, never load a
 * message into memory, and never exit 1, 2 or 111 once it has answered
 * PASS: qmail-authup would take those for a failed login. The session
 * itself is pop3sess.c; this file only checks who runs it and for how
 * long a client may be silent.
 */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/ctl.h"
#include "lib/env.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"
#include "pop3/pop3sess.h"

#define TIMEOUT_DEFAULT 1200

static char inspace[BUF_SIZE], outspace[BUF_SIZE];
static struct buf in, out;
static struct pop3_session session;

/* --- start --- */

static unsigned clamp_timeout(unsigned long t)
{
	return t > UINT_MAX ? UINT_MAX : (unsigned)t;
}

/* Seconds per read and write: $TIMEOUT when it is a positive number,
 * else control/timeoutpop3d of the qmail home (qmail-authup's setting),
 * else TIMEOUT_DEFAULT. The current directory is $HOME, so the control
 * file is named by its full path. */
static unsigned session_timeout(void)
{
	struct str path = STR_INIT;
	unsigned long t;
	int r = env_ulong("TIMEOUT", &t);

	if (r > 0 && t > 0)
		return clamp_timeout(t);
	if (r != 0)
		log_warn("ignoring TIMEOUT=%s: not a positive number",
			 env_get("TIMEOUT"));
	if (str_copys(&path, home_dir()) < 0 ||
	    str_appends(&path, "/control/timeoutpop3d") < 0)
		return TIMEOUT_DEFAULT;
	r = ctl_ulong(path.s, &t, TIMEOUT_DEFAULT);
	if (r < 0)
		log_warn_sys("ignoring %s", path.s);
	str_free(&path);
	return r < 0 || t == 0 ? TIMEOUT_DEFAULT : clamp_timeout(t);
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	if (getuid() == 0 || geteuid() == 0)
		log_fatal(POP3_EXIT_ROOT, "refusing to run as root");
	if (argc < 2 || !argv[1][0])
		log_fatal(POP3_EXIT_USAGE, "usage: qmail-pop3d maildirname");
	/* Past the login now: running out of memory must not read as a
	 * failed password to qmail-authup. */
	log_set_fatal_code(POP3_EXIT_DROPPED);
	signal(SIGPIPE, SIG_IGN);
	unsigned timeout = session_timeout();
	buf_init(&in, 0, inspace, sizeof inspace, timeout);
	buf_init(&out, 1, outspace, sizeof outspace, timeout);
	pop3_session_init(&session, &in, &out);
	int code = pop3_session_open(&session, argv[1]);
	if (code == 0)
		code = pop3_session_serve(&session);
	/* The status is all that is left to say: skip the cleanup. */
	_exit(code);
}
