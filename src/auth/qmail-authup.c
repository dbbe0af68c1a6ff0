/*
 * qmail-authup: the login dialogue in front of qmail-ofmipd (SMTP
 * submission) and qmail-pop3d.
 *
 *   qmail-authup [-t tries] smtp|pop3 checkpassword prog...
 *
 * It greets the client, offers STARTTLS/STLS through UCSPI-TLS, takes
 * AUTH PLAIN or LOGIN (SMTP) or USER and PASS (POP3), and runs
 * checkpassword with the credentials on fd 3 (cpwrun.h). When the login
 * works, checkpassword runs prog, which owns the rest of the session on
 * the same descriptors, and authup exits with prog's status.
 *
 * It reads its input one byte at a time, so that nothing the client
 * sends after its last command to authup is taken from prog. It never
 * lets a password reach a log, the environment or memory it has not
 * wiped, never runs prog itself, and never reads the cleartext side
 * again once TLS has started. Under qmail-reup (REUP_TRIES set) it does
 * every retry on its one connection and exits only 0 or 12, so that
 * reup never runs a second authup on it (qmail-reup(8)).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "auth/authcmd.h"
#include "auth/cpwrun.h"
#include "auth/sasl.h"
#include "auth/tlsfd.h"
#include "lib/buf.h"
#include "lib/ctl.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"
#include "smtp/ucspitls.h"

/* Exit code: the login failed and no tries remain. qmail-reup stops on
 * it, and authup under reup reports every other failure with it too. */
#define AUTHUP_GIVEUP 12
#define AUTHUP_TRIES_MAX 1000
#define AUTHUP_ERRORS_MAX 10

static struct {
	int pop3;
	unsigned long tries, failures;
	int under_reup;
	unsigned errors;
	struct buf in, out;
	char inspace[1]; /* one byte: never read past a command */
	char outspace[BUF_SIZE];
	struct ucspitls tls;
	int implicit_tls; /* SMTPS or POP3S: TLS done before we started */
	struct str greeting;
	struct str caps;  /* capability lines, NUL-separated */
	struct str stamp; /* POP3: "<pid.time@greeting>" */
	int broken_clients;
	char **cpw; /* checkpassword prog... */
	struct sasl_creds cred;
	int have_user; /* POP3: USER given */
} a;

/* --- leaving --- */

static _Noreturn void finish(int code)
{
	if (a.under_reup && code != 0 && code != AUTHUP_GIVEUP) {
		log_info("exit %d reported as %d to qmail-reup", code,
			 AUTHUP_GIVEUP);
		code = AUTHUP_GIVEUP;
	}
	sasl_wipe(&a.cred, sizeof a.cred);
	_exit(code);
}

static _Noreturn void nomem(void)
{
	log_warn("out of memory");
	finish(EXIT_TEMP);
}

/* --- replies --- */

static void flush(void)
{
	if (buf_flush(&a.out) < 0)
		finish(0); /* the client is gone */
}

static void reply(const char *line)
{
	if (buf_puts(&a.out, line) < 0 || buf_put(&a.out, "\r\n", 2) < 0)
		finish(0);
}

/* A reply made of pieces (a code and a configured text). */
static void reply3(const char *first, const char *second, const char *third)
{
	if (buf_puts(&a.out, first) < 0 || buf_puts(&a.out, second) < 0 ||
	    buf_puts(&a.out, third) < 0 || buf_put(&a.out, "\r\n", 2) < 0)
		finish(0);
}

static _Noreturn void close_with(const char *line, int code)
{
	reply(line);
	flush();
	finish(code);
}

/* A client mistake: too many of them end the session. */
static void error(const char *line)
{
	reply(line);
	if (++a.errors >= AUTHUP_ERRORS_MAX)
		close_with(a.pop3 ? "-ERR too many errors"
				  : "421 too many errors; closing connection "
				    "(#4.7.0)",
			   0);
}

/* --- input --- */

/* A read failed (errno): a timeout is said, then the session ends. */
static _Noreturn void input_failed(void)
{
	if (errno == ETIMEDOUT)
		close_with(a.pop3 ? "-ERR timeout" : "451 timeout (#4.4.2)", 0);
	finish(0);
}

/* One line into line, without its end. Returns 1, or 0 when it was too
 * long (line then holds its first bytes and the rest was skipped). The
 * whole line must arrive within the timeout: a per-read timeout alone
 * lets a client keep its slot by sending a byte now and then. */
static int get_line(struct str *line)
{
	flush();
	str_clear(line);
	/* Without a clock the per-read timeout still holds. */
	(void)buf_setdeadline(&a.in, a.in.timeout);
	int r = buf_getline(&a.in, line, '\n', AUTHCMD_LINE_MAX);
	if (r == 1) {
		buf_setdeadline(&a.in, 0);
		str_truncate(line, authcmd_chomp(line->s, line->len));
		return 1;
	}
	if (r == 0)
		finish(0); /* EOF: nobody to answer */
	if (errno != EMSGSIZE)
		input_failed();
	r = buf_skipline(&a.in, '\n');
	if (r == 0)
		finish(0);
	if (r < 0)
		input_failed();
	buf_setdeadline(&a.in, 0);
	return 0;
}

/* --- TLS --- */

static int tls_active(void)
{
	return a.tls.active || a.implicit_tls;
}

/* TLS is required and not there yet: no login may be attempted. */
static int tls_missing(void)
{
	return a.tls.policy == TLS_REQUIRED && !tls_active();
}

/* Start TLS after the positive reply; whatever the client pipelined
 * behind its command is dropped with the cleartext side. */
static void start_tls(const char *ok, const char *failed)
{
	reply(ok);
	flush();
	if (ucspitls_start(&a.tls, &a.in, &a.out, 0, 1) < 0)
		close_with(failed, 0);
	if (tlsfd_started(&a.tls, 0, 1) < 0)
		nomem();
	a.have_user = 0;
}

/* --- checkpassword --- */

/* A failed login. While tries remain the reply is `smtp` or `pop3`;
 * the last one gets `smtp_last` (the same reply, with a line saying the
 * session ends) or `pop3`, and ends the session. */
static void login_failed(const char *smtp, const char *smtp_last,
			 const char *pop3)
{
	if (++a.failures < a.tries)
		reply(a.pop3 ? pop3 : smtp);
	else
		close_with(a.pop3 ? pop3 : smtp_last, AUTHUP_GIVEUP);
}

/* Run checkpassword with a.cred; wipes the password. */
static void try_login(void)
{
	struct cpwrun_input in = {a.cred.user,
				  a.cred.ulen,
				  a.cred.pass,
				  a.cred.plen,
				  a.stamp.s ? a.stamp.s : "",
				  a.stamp.len};
	int status, code;

	flush();
	int r = cpwrun(a.cpw, &in, &status);
	sasl_wipe(a.cred.pass, sizeof a.cred.pass);
	a.cred.plen = 0;
	if (r < 0) {
		log_warn_sys("unable to run %s", a.cpw[0]);
		reply(a.pop3 ? "-ERR temporary failure"
			     : "454 temporary authentication failure "
			       "(#4.3.0)");
		return;
	}
	switch (cpwrun_outcome(status, &code)) {
	case CPWRUN_SESSION:
		finish(code);
	case CPWRUN_CRASHED:
		log_warn("%s killed by signal %d for %s", a.cpw[0], code,
			 a.cred.user);
		login_failed("454 temporary authentication failure (#4.3.0)",
			     "454-temporary authentication failure (#4.3.0)\r\n"
			     "454 too many failed logins; closing connection "
			     "(#4.3.0)",
			     "-ERR temporary authorization failure");
		break;
	case CPWRUN_FAILED:
		log_info("login failed for %s (try %lu of %lu)", a.cred.user,
			 a.failures + 1, a.tries);
		login_failed("535 authentication failed (#5.7.8)",
			     "535-authentication failed (#5.7.8)\r\n"
			     "535 too many failed logins; closing connection "
			     "(#5.7.8)",
			     "-ERR authorization failed");
		break;
	}
}

/* --- SMTP --- */

/* EHLO lines go out one behind: only at the end is it known which one
 * is the last, and gets "250 " in place of "250-". */
static void ehlo_line(const char **pending, const char *next)
{
	reply3("250-", *pending, "");
	*pending = next;
}

static void smtp_ehlo(void)
{
	const char *pending = a.greeting.s, *cap;
	size_t pos = 0;

	if (ucspitls_available(&a.tls))
		ehlo_line(&pending, "STARTTLS");
	if (!tls_missing()) {
		ehlo_line(&pending, "AUTH LOGIN PLAIN");
		if (a.broken_clients)
			ehlo_line(&pending, "AUTH=LOGIN PLAIN");
	}
	while ((cap = ctl_next(&a.caps, &pos)))
		ehlo_line(&pending, cap);
	reply3("250 ", pending, "");
}

/* One response to a challenge, decoded into out. */
static enum sasl_status smtp_response(const char *challenge, unsigned char *out,
				      size_t *outlen)
{
	struct str line = STR_INIT;
	enum sasl_status st = SASL_MALFORMED;

	if (str_reserve(&line, AUTHCMD_LINE_MAX + 1) < 0)
		nomem();
	reply(challenge);
	if (get_line(&line))
		st = sasl_decode(line.s, line.len, 0, out, outlen);
	sasl_wipe(line.s, line.cap);
	str_free(&line);
	return st;
}

/* The first response: the initial one when given, else a challenge. */
static enum sasl_status smtp_first(const char *challenge, const char *ir,
				   size_t irlen, int has_ir, unsigned char *out,
				   size_t *outlen)
{
	if (has_ir)
		return sasl_decode(ir, irlen, 1, out, outlen);
	return smtp_response(challenge, out, outlen);
}

static enum sasl_status smtp_plain(const char *ir, size_t irlen, int has_ir)
{
	unsigned char dec[SASL_DECODED_MAX];
	size_t n = 0;
	enum sasl_status st = smtp_first("334 ", ir, irlen, has_ir, dec, &n);

	if (st == SASL_OK)
		st = sasl_plain(dec, n, &a.cred);
	sasl_wipe(dec, sizeof dec);
	return st;
}

static enum sasl_status smtp_login(const char *ir, size_t irlen, int has_ir)
{
	unsigned char dec[SASL_DECODED_MAX];
	size_t n = 0;
	enum sasl_status st =
	    smtp_first("334 VXNlcm5hbWU6", ir, irlen, has_ir, dec, &n);

	if (st == SASL_OK)
		st = sasl_login_user(dec, n, &a.cred);
	if (st == SASL_OK)
		st = smtp_response("334 UGFzc3dvcmQ6", dec, &n);
	if (st == SASL_OK)
		st = sasl_login_pass(dec, n, &a.cred);
	sasl_wipe(dec, sizeof dec);
	return st;
}

static void smtp_auth(const char *arg, size_t alen)
{
	const char *ir;
	size_t irlen;
	int has_ir;
	enum sasl_status st;

	if (tls_missing()) {
		error("530 Must issue a STARTTLS command first (#5.7.0)");
		return;
	}
	switch (sasl_parse_auth(arg, alen, &ir, &irlen, &has_ir)) {
	case SASL_MECH_PLAIN:
		st = smtp_plain(ir, irlen, has_ir);
		break;
	case SASL_MECH_LOGIN:
		st = smtp_login(ir, irlen, has_ir);
		break;
	case SASL_MECH_UNKNOWN:
		error("504 auth type unimplemented (#5.5.4)");
		return;
	default:
		st = SASL_MALFORMED;
		break;
	}
	if (st == SASL_OK)
		try_login();
	else if (st == SASL_CANCELLED)
		error("501 auth exchange cancelled (#5.0.0)");
	else if (st == SASL_AUTHZID)
		error("535 authorization identity must be the user (#5.7.8)");
	else
		error("501 malformed auth input (#5.5.4)");
	sasl_wipe(&a.cred, sizeof a.cred);
}

static void smtp_starttls(size_t alen)
{
	if (alen)
		error("501 STARTTLS takes no arguments (#5.5.4)");
	else if (!ucspitls_available(&a.tls))
		error("502 TLS not available (#5.5.1)");
	else
		start_tls("220 ready for tls",
			  "454 TLS not available due to temporary reason");
}

static void smtp_command(const char *line, size_t n)
{
	struct authcmd c;

	authcmd_smtp(line, n, &c);
	switch (c.verb) {
	case AUTHCMD_HELO:
		reply3("250 ", a.greeting.s, "");
		break;
	case AUTHCMD_EHLO:
		smtp_ehlo();
		break;
	case AUTHCMD_AUTH:
		smtp_auth(c.arg, c.alen);
		break;
	case AUTHCMD_STARTTLS:
		smtp_starttls(c.alen);
		break;
	case AUTHCMD_NOOP:
		reply("250 ok");
		break;
	case AUTHCMD_RSET:
		reply("250 flushed");
		break;
	case AUTHCMD_QUIT:
		reply3("221 ", a.greeting.s, "");
		flush();
		finish(0);
	default:
		error("530 authentication required (#5.7.1)");
		break;
	}
}

static _Noreturn void smtp_session(void)
{
	struct str line = STR_INIT;
	struct authcmd c;

	if (str_reserve(&line, AUTHCMD_LINE_MAX + 1) < 0)
		nomem();
	reply3("220 ", a.greeting.s, " ESMTP");
	for (;;) {
		int whole = get_line(&line);
		authcmd_smtp(line.s, line.len, &c);
		if (!whole)
			error(c.verb == AUTHCMD_AUTH
				  ? "501 malformed auth input (#5.5.4)"
				  : "500 line too long (#5.5.2)");
		else if (memchr(line.s, 0, line.len))
			error(c.verb == AUTHCMD_AUTH
				  ? "501 malformed auth input (#5.5.4)"
				  : "501 NUL in command (#5.5.2)");
		else
			smtp_command(line.s, line.len);
		/* An AUTH line may have held a password. */
		sasl_wipe(line.s, line.cap);
	}
}

/* --- POP3 --- */

static void pop3_capa(void)
{
	size_t pos = 0;
	const char *cap;

	reply("+OK capability list follows");
	if (ucspitls_available(&a.tls))
		reply("STLS");
	if (!tls_missing())
		reply("USER");
	while ((cap = ctl_next(&a.caps, &pos)))
		reply(cap);
	reply(".");
}

static void pop3_user(const char *arg, size_t alen)
{
	a.have_user = 0;
	if (tls_missing()) {
		error("-ERR Must issue an STLS command first");
		return;
	}
	if (!sasl_user_ok(arg, alen)) {
		error("-ERR malformed user name");
		return;
	}
	memcpy(a.cred.user, arg, alen);
	a.cred.user[alen] = 0;
	a.cred.ulen = alen;
	a.have_user = 1;
	reply("+OK");
}

static void pop3_pass(const char *arg, size_t alen)
{
	if (tls_missing()) {
		error("-ERR Must issue an STLS command first");
		return;
	}
	if (!a.have_user) {
		error("-ERR USER first");
		return;
	}
	a.have_user = 0;
	if (alen == 0 || alen > SASL_DECODED_MAX) {
		error("-ERR malformed password");
		return;
	}
	memcpy(a.cred.pass, arg, alen);
	a.cred.pass[alen] = 0;
	a.cred.plen = alen;
	try_login();
}

static void pop3_command(const char *line, size_t n)
{
	struct authcmd c;

	authcmd_pop3(line, n, &c);
	switch (c.verb) {
	case AUTHCMD_CAPA:
		pop3_capa();
		break;
	case AUTHCMD_STLS:
		if (c.alen)
			error("-ERR STLS takes no arguments");
		else if (!ucspitls_available(&a.tls))
			error("-ERR TLS not available");
		else
			start_tls("+OK begin TLS negotiation",
				  "-ERR TLS not available due to temporary "
				  "reason");
		break;
	case AUTHCMD_USER:
		pop3_user(c.arg, c.alen);
		break;
	case AUTHCMD_PASS:
		pop3_pass(c.arg, c.alen);
		break;
	case AUTHCMD_APOP:
		error("-ERR APOP not supported");
		break;
	case AUTHCMD_QUIT:
		close_with("+OK", 0);
	default:
		error("-ERR authorization first");
		break;
	}
}

static _Noreturn void pop3_session(void)
{
	struct str line = STR_INIT;

	if (str_reserve(&line, AUTHCMD_LINE_MAX + 1) < 0)
		nomem();
	reply3("+OK ", a.stamp.s, "");
	for (;;) {
		if (!get_line(&line))
			error("-ERR line too long");
		else if (memchr(line.s, 0, line.len))
			error("-ERR NUL in command");
		else
			pop3_command(line.s, line.len);
		sasl_wipe(line.s, line.cap); /* PASS held a password */
	}
}

/* --- setup --- */

static _Noreturn void usage(void)
{
	log_warn("usage: qmail-authup [-t tries] smtp|pop3 checkpassword "
		 "prog...");
	finish(EXIT_PERM);
}

/* A control file failed: tell the client, then stop. */
static _Noreturn void die_control(const char *path)
{
	log_warn_sys("unable to read %s", path);
	close_with(a.pop3 ? "-ERR unable to read controls"
			  : "421 unable to read controls (#4.3.0)",
		   EXIT_TEMP);
}

static unsigned long parse_tries(const char *s)
{
	char *end;
	unsigned long n;

	if (!s || *s < '0' || *s > '9')
		usage();
	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno || *end || n == 0 || n > AUTHUP_TRIES_MAX)
		usage();
	return n;
}

/* Options and arguments; returns whether -t was given. */
static int parse_args(char **argv)
{
	int explicit_tries = 0;

	argv++;
	if (*argv && strncmp(*argv, "-t", 2) == 0) {
		a.tries = parse_tries((*argv)[2] ? *argv + 2 : *++argv);
		explicit_tries = 1;
		argv++;
	}
	if (!*argv)
		usage();
	if (strcmp(*argv, "pop3") == 0)
		a.pop3 = 1;
	else if (strcmp(*argv, "smtp") != 0)
		usage();
	a.cpw = argv + 1;
	if (!a.cpw[0] || !a.cpw[1])
		usage();
	return explicit_tries;
}

/* qmail-reup exports REUP_TRIES: the tries left, which we then spend on
 * this one connection unless -t said otherwise. */
static void take_reup(int explicit_tries)
{
	unsigned long n;

	if (env_ulong("REUP_TRIES", &n) == 1 && n > 0) {
		a.under_reup = 1;
		if (!explicit_tries)
			a.tries = n > AUTHUP_TRIES_MAX ? AUTHUP_TRIES_MAX : n;
	}
	env_unset("REUP_TRIES");
	env_unset("REUP");
	env_unset("AUTHUP_USER");
}

/* Keep entries fit to be sent: no control bytes. */
static void clean_caps(void)
{
	struct str kept = STR_INIT;
	size_t pos = 0;
	const char *cap;

	while ((cap = ctl_next(&a.caps, &pos))) {
		int ok = *cap != 0;
		for (const char *p = cap; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				ok = 0;
		if (ok && str_append(&kept, cap, strlen(cap) + 1) < 0)
			nomem();
	}
	str_free(&a.caps);
	a.caps = kept;
}

static void add_cap(const char *cap)
{
	if (str_append(&a.caps, cap, strlen(cap) + 1) < 0)
		nomem();
}

/* What qmail-ofmipd (or qmail-pop3d) supports, for a missing file. */
static void default_caps(void)
{
	unsigned long databytes, n;
	char size[32];

	if (a.pop3) {
		add_cap("TOP");
		add_cap("UIDL");
		return;
	}
	if (ctl_ulong("control/databytes", &databytes, 0) < 0)
		die_control("control/databytes");
	if (env_ulong("DATABYTES", &n) > 0)
		databytes = n;
	if (databytes)
		snprintf(size, sizeof size, "SIZE %lu", databytes);
	else
		snprintf(size, sizeof size, "SIZE");
	add_cap("PIPELINING");
	add_cap("8BITMIME");
	add_cap(size);
	add_cap("SMTPUTF8");
}

static void read_controls(void)
{
	const char *greeting =
	    a.pop3 ? "control/pop3greeting" : "control/smtpgreeting";
	const char *timeout =
	    a.pop3 ? "control/timeoutpop3d" : "control/timeoutsmtpd";
	const char *caps =
	    a.pop3 ? "control/pop3capabilities" : "control/smtpcapabilities";
	unsigned long secs;
	int r;

	if (ctl_line_or_me(greeting, &a.greeting) < 0)
		die_control(greeting);
	if (a.greeting.len == 0) {
		log_warn("neither %s nor control/me: refusing to run",
			 greeting);
		finish(EXIT_TEMP);
	}
	if (ctl_ulong(timeout, &secs, 1200) < 0)
		die_control(timeout);
	buf_settimeout(&a.in, secs > 86400 ? 86400 : (unsigned)secs);
	buf_settimeout(&a.out, secs > 86400 ? 86400 : (unsigned)secs);
	r = ctl_list(caps, &a.caps);
	if (r < 0)
		die_control(caps);
	if (r == 0)
		default_caps();
	clean_caps();
}

static void make_stamp(void)
{
	if (str_copys(&a.stamp, "<") < 0 ||
	    str_appendnum(&a.stamp, (unsigned long long)getpid()) < 0 ||
	    str_appendc(&a.stamp, '.') < 0 ||
	    str_appendnum(&a.stamp, (unsigned long long)time(NULL)) < 0 ||
	    str_appendc(&a.stamp, '@') < 0 ||
	    str_append(&a.stamp, a.greeting.s, a.greeting.len) < 0 ||
	    str_appendc(&a.stamp, '>') < 0)
		nomem();
}

static void setup_tls(void)
{
	const char *implicit = env_get(a.pop3 ? "POP3S" : "SMTPS");

	ucspitls_init(&a.tls);
	if (implicit && *implicit) {
		a.implicit_tls = 1;
		a.tls.policy = TLS_OFF; /* nothing more to start */
	}
	/* checkpassword's input will be fd 3. */
	if (tlsfd_avoid(&a.tls, 3) < 0) {
		log_warn_sys("unable to move the TLS descriptors off fd 3");
		finish(EXIT_TEMP);
	}
	if (tls_missing() && !ucspitls_available(&a.tls))
		log_warn("TLS is required but the UCSPI-TLS descriptors are "
			 "missing: no login can succeed");
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	signal(SIGPIPE, SIG_IGN);
	buf_init(&a.in, 0, a.inspace, sizeof a.inspace, 1200);
	buf_init(&a.out, 1, a.outspace, sizeof a.outspace, 1200);
	int explicit_tries = parse_args(argv);
	if (!explicit_tries)
		a.tries = a.pop3 ? 1 : 5;
	take_reup(explicit_tries);
	a.broken_clients = env_get("AUTHUP_SASL_BROKEN_CLIENTS") != NULL;
	if (chdir(home_dir()) < 0) {
		log_warn_sys("unable to switch to %s", home_dir());
		finish(EXIT_TEMP);
	}
	read_controls();
	setup_tls();
	if (a.pop3) {
		make_stamp();
		pop3_session();
	}
	smtp_session();
}
