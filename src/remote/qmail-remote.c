/*
 * qmail-remote: work out where a message goes, then run the SMTP client.
 *
 * Interface of qmail-remote(8): argv host sender recip..., the message
 * on fd 0 (a queue file, so it can be rewound), reports on fd 1, exit 0
 * always. This program reads smtproutes, looks up MX, AAAA and A, drops
 * its own addresses and those that keep timing out, and then, for each
 * address in order, runs
 *   tcpclient -RHl0 -T timeoutconnect -- IP PORT <home>/bin/qmail-rsmtp
 *             -- sender recip...
 * until qmail-rsmtp says it wrote the reports (exit 0). It writes the
 * message report itself only when no attempt got that far.
 *
 * It never opens a socket to a mail server and never builds a command
 * line from DNS data: the IP is formatted here with inet_ntop, the port
 * is a number, and host names reach qmail-rsmtp only in RSMTP_HOST.
 *
 * AUTH credentials (control/authroutes, or smtproutes) go only to a relay
 * named there, never to a host from DNS. They reach qmail-rsmtp through
 * a pipe whose read end it inherits (RSMTP_AUTHFD names it): never on a
 * command line, never in the environment, never in a report or a log.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/checked.h"
#include "lib/ctl.h"
#include "lib/env.h"
#include "lib/errstr.h"
#include "lib/fd.h"
#include "lib/home.h"
#include "lib/log.h"
#include "auth/sasl.h"
#include "remote/authroute.h"
#include "remote/dns.h"
#include "remote/ipme.h"
#include "remote/route.h"
#include "remote/tcpto.h"

/* qmail-rsmtp's exit codes (the interface with it). */
enum {
	RSMTP_REPORTED = 0, /* it wrote every report */
	RSMTP_NEXT = 75,    /* greeting not 2xx or lost before it */
	RSMTP_TLS_FAILED = 76, /* an opportunistic handshake failed */
};

#define TCPCLIENT_PREFIX "tcpclient: "
#define CONNECT_PREFIX "tcpclient: unable to connect to "
#define EXEC_PREFIX "qmail-remote: fatal: unable to run tcpclient"
#define STDERR_HEAD 512

struct target {
	struct dns_ip ip;
	unsigned pref;
	const char *host; /* what we meant to reach: MX, relay or literal */
};

struct targets {
	struct target *v;
	size_t n, cap;
};

struct config {
	unsigned long timeoutconnect, timeoutremote;
	struct str helohost;
	struct smtproutes routes;
	struct authroutes auth;
	struct str tlsc;    /* <home>/bin/ucspi-tlsc, empty without one */
	struct str ciphers; /* control/tlsclientciphers joined with ':' */
};

/* --- reports: each ends the program --- */

static _Noreturn void report_exit(const char *text, size_t len)
{
	/* One message report; qmail-rspawn reads it up to the NUL. */
	fd_write_all(1, text, len + 1, 0);
	_exit(0);
}

static _Noreturn void fail(const char *text)
{
	report_exit(text, strlen(text));
}

static _Noreturn void temp_nomem(void)
{
	fail("ZOut of memory. (#4.3.0)\n");
}

static _Noreturn void temp_control(void)
{
	fail("ZUnable to read control files. (#4.3.0)\n");
}

static _Noreturn void temp_dns(void)
{
	fail("ZSorry, I couldn't find any host by that name. (#4.1.2)\n");
}

static _Noreturn void temp_read(void)
{
	fail("ZUnable to read message. (#4.3.0)\n");
}

/* Host names in reports: printable ASCII only, as qmail does. */
static void append_safe(struct str *s, const char *text)
{
	for (; *text; text++) {
		char c = *text;
		if ((unsigned char)c < 33 || (unsigned char)c > 126)
			c = '?';
		if (str_appendc(s, c) < 0)
			temp_nomem();
	}
}

static void append(struct str *s, const char *text)
{
	if (str_appends(s, text) < 0)
		temp_nomem();
}

static _Noreturn void finish(struct str *s)
{
	if (str_append0(s) < 0)
		temp_nomem();
	report_exit(s->s, s->len - 1);
}

static _Noreturn void perm_dns(const char *host)
{
	struct str s = STR_INIT;
	append(&s, "DSorry, I couldn't find any host named ");
	append_safe(&s, host);
	append(&s, ". (#5.1.2)\n");
	finish(&s);
}

static _Noreturn void perm_nullmx(const char *host)
{
	struct str s = STR_INIT;
	append(&s, "DSorry, ");
	append_safe(&s, host);
	append(&s, " does not accept mail: it publishes a null MX "
		   "(RFC 7505). (#5.1.10)\n");
	finish(&s);
}

static _Noreturn void perm_ambigmx(void)
{
	fail("DSorry. Although I'm listed as a best-preference MX or A for "
	     "that host,\nit isn't in my control/locals file, so I don't "
	     "treat it as local. (#5.4.6)\n");
}

/* --- configuration --- */

static void read_ulong(const char *path, unsigned long *out, unsigned long dflt)
{
	if (ctl_ulong(path, out, dflt) < 0) {
		log_warn_sys("unable to read %s", path);
		temp_control();
	}
}

/*
 * The outbound TLS policy of the qmail TLS patch, from control/:
 * tlshosts/<host>.pem makes TLS and its verification against that CA
 * mandatory; tlshosts/exhaustivelist limits TLS to such hosts;
 * notlshosts/<host> turns TLS off; otherwise TLS is opportunistic.
 * clientcert.pem is presented when it exists. The host name comes from
 * DNS: it reaches the TLS program only through the environment, and a
 * file name is made from it only when it is a plain host name.
 */
static void load_tls_config(struct config *c)
{
	struct str list = STR_INIT, self = STR_INIT;
	const char *e;
	size_t pos = 0;

	str_clear(&c->tlsc);
	if (str_copys(&self, home_dir()) < 0 ||
	    str_appends(&self, "/bin/ucspi-tlsc") < 0)
		temp_nomem();
	if (access(self.s, X_OK) == 0 && str_copystr(&c->tlsc, &self) < 0)
		temp_nomem();
	str_free(&self);
	if (ctl_list("control/tlsclientciphers", &list) < 0) {
		log_warn_sys("unable to read control/tlsclientciphers");
		temp_control();
	}
	str_clear(&c->ciphers);
	while ((e = ctl_next(&list, &pos)))
		if ((c->ciphers.len && str_appendc(&c->ciphers, ':') < 0) ||
		    str_appends(&c->ciphers, e) < 0)
			temp_nomem();
	str_free(&list);
}

static void set_env(const char *name, const char *value)
{
	if (env_set(name, value) < 0)
		temp_nomem();
}

/* A plain host name: letters, digits, '-' and '.', no empty label. */
static int plain_hostname(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n > 253 || h[0] == '.' || strstr(h, ".."))
		return 0;
	for (; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		      (*h >= '0' && *h <= '9') || *h == '-' || *h == '.'))
			return 0;
	return 1;
}

enum tls_mode { TLS_NONE, TLS_TRY, TLS_REQUIRE };

/* Decide for one host, and set the environment the TLS program and
 * qmail-rsmtp read. */
static enum tls_mode tls_policy(const struct config *c, const char *host)
{
	struct str fn = STR_INIT, lower = STR_INIT;
	enum tls_mode mode = TLS_TRY;

	env_unset("CAFILE");
	env_unset("TLS_SERVERNAME");
	if (!plain_hostname(host)) {
		/* A literal, or a name we will not put in a path. */
		if (access("control/tlshosts/exhaustivelist", F_OK) == 0)
			mode = TLS_NONE;
		goto out;
	}
	if (str_copys(&lower, host) < 0)
		temp_nomem();
	for (size_t i = 0; i < lower.len; i++)
		if (lower.s[i] >= 'A' && lower.s[i] <= 'Z')
			lower.s[i] = (char)(lower.s[i] + 32);
	if (lower.len && lower.s[lower.len - 1] == '.')
		str_truncate(&lower, lower.len - 1);
	set_env("TLS_SERVERNAME", lower.s);
	if (str_copys(&fn, "control/tlshosts/") < 0 ||
	    str_append(&fn, lower.s, lower.len) < 0 || str_appends(&fn, ".pem") < 0)
		temp_nomem();
	if (access(fn.s, F_OK) == 0) {
		set_env("CAFILE", fn.s);
		mode = TLS_REQUIRE;
		goto out;
	}
	if (access("control/tlshosts/exhaustivelist", F_OK) == 0) {
		mode = TLS_NONE;
		goto out;
	}
	if (str_copys(&fn, "control/notlshosts/") < 0 ||
	    str_append(&fn, lower.s, lower.len) < 0)
		temp_nomem();
	if (access(fn.s, F_OK) == 0)
		mode = TLS_NONE;
out:
	if (c->tlsc.len == 0 && mode == TLS_TRY)
		mode = TLS_NONE; /* no TLS program installed */
	set_env("RSMTP_TLS", mode == TLS_REQUIRE ? "require"
			     : mode == TLS_TRY   ? "try"
						 : "off");
	str_free(&fn);
	str_free(&lower);
	return mode;
}

/* smtproutes and control/authroutes; the words for what is wrong never
 * hold a secret. */
static void load_routes(struct config *c)
{
	struct str bad = STR_INIT;
	enum authload_error why;
	const char *file;

	if (authroutes_load(&c->auth, &c->routes, &why, &file, &bad) == 0) {
		str_free(&bad);
		return;
	}
	switch (why) {
	case AUTHLOAD_LINE:
		if (errno == ENAMETOOLONG)
			log_warn("%s: user name or password too long: %s", file,
				 bad.s);
		else if (strcmp(file, SMTPROUTES_FILE) == 0)
			log_warn("%s: not a route: %s", file, bad.s);
		else
			log_warn("%s: not a valid line: %s", file, bad.s);
		break;
	case AUTHLOAD_OPEN:
		log_warn("%s holds credentials, so it must belong to uid %lu "
			 "and be closed to group and others (chmod 600)",
			 file, (unsigned long)geteuid());
		break;
	case AUTHLOAD_OBSOLETE:
		log_warn("%s is not read: move its lines to %s (see "
			 "qmail-authroutes(5))",
			 file, AUTHROUTES_FILE);
		break;
	default:
		log_warn_sys("unable to read %s", file);
		break;
	}
	temp_control();
}

static void load_config(struct config *c)
{

	read_ulong("control/timeoutconnect", &c->timeoutconnect, 60);
	read_ulong("control/timeoutremote", &c->timeoutremote, 1200);
	if (c->timeoutconnect == 0)
		c->timeoutconnect = 1;
	if (ctl_line_or_me("control/helohost", &c->helohost) < 0) {
		log_warn_sys("unable to read control/helohost");
		temp_control();
	}
	if (c->helohost.len == 0) {
		log_warn("control/helohost and control/me are both missing");
		temp_control();
	}
	load_tls_config(c);
	load_routes(c);
}

/* --- where the message goes --- */

static void add_target(struct targets *t, const struct dns_ip *ip,
		       unsigned pref, const char *host)
{
	void *v = t->v;
	size_t want, bytes;

	if (t->n == t->cap) {
		if (size_mul(t->cap ? t->cap : 4, 2, &want) < 0 ||
		    size_mul(want, sizeof *t->v, &bytes) < 0)
			temp_nomem();
		v = realloc(t->v, bytes);
		if (!v)
			temp_nomem();
		t->v = v;
		t->cap = want;
	}
	t->v[t->n].ip = *ip;
	t->v[t->n].pref = pref;
	t->v[t->n].host = host;
	t->n++;
}

/* Opened on first use: a literal or a relay given as one needs no DNS. */
static struct dns_resolver dns;

static struct dns_resolver *resolver(void)
{
	const char *server = env_trusted("DNSCACHEIP");

	if (dns.open)
		return &dns;
	if (server && !*server)
		server = NULL;
	if (dns_open(&dns, server) < 0) {
		if (errno == EINVAL)
			fail("ZDNSCACHEIP is not an IPv4 address with an "
			     "optional :port. (#4.3.0)\n");
		if (errno == ENOMEM)
			temp_nomem();
		fail("ZUnable to start the DNS resolver. (#4.3.0)\n");
	}
	return &dns;
}

/* Every address of name (AAAA first), each with preference pref. A
 * name that does not exist is a permanent failure, unless soft is given:
 * then it is skipped, and a temporary failure is counted there. Names
 * from DNS come here too, so a bracketed one is only ever a name. */
static void add_addresses(struct targets *t, const char *name, unsigned pref,
			  int *soft)
{
	struct dns_iplist ips = {NULL, 0, 0};

	switch (dns_ip(resolver(), name, &ips)) {
	case DNS_OK:
		break;
	case DNS_NOMEM:
		temp_nomem();
	case DNS_NXDOMAIN:
		if (!soft)
			perm_dns(name);
		break;
	case DNS_TEMP:
		if (!soft)
			temp_dns();
		*soft = 1;
		break;
	}
	for (size_t i = 0; i < ips.n; i++)
		add_target(t, &ips.v[i], pref, name);
	dns_iplist_free(&ips);
}

/* A relay from smtproutes, or the host itself: a literal, or a name. */
static void add_literal_or_addresses(struct targets *t, const char *name)
{
	struct dns_ip ip;

	/* A relay written as a bare address, as qmail takes it: common in
	 * smtproutes, and no name can look like one. */
	if (dns_ip_parse(name, &ip) == 0) {
		add_target(t, &ip, 0, name);
		return;
	}
	switch (dns_literal(name, &ip)) {
	case 1:
		add_target(t, &ip, 0, name);
		break;
	case 0:
		add_addresses(t, name, 0, NULL);
		break;
	default:
		perm_dns(name);
	}
}

/* The MX hosts of host in order, or its own addresses without MX. The
 * list stays allocated: the targets point at its names. */
static void add_mx_targets(struct targets *t, const char *host)
{
	static struct dns_mxlist mx;
	uint64_t rng = dns_random_seed();
	int soft = 0;

	switch (dns_mx(resolver(), host, &mx)) {
	case DNS_OK:
		break;
	case DNS_NOMEM:
		temp_nomem();
	case DNS_NXDOMAIN:
		perm_dns(host);
	case DNS_TEMP:
		temp_dns();
	}
	if (mx.n == 0) {
		add_addresses(t, host, 0, NULL);
		return;
	}
	if (dns_mx_null(&mx))
		perm_nullmx(host);
	dns_mx_sort(&mx, &rng);
	for (size_t i = 0; i < mx.n; i++)
		add_addresses(t, mx.v[i].name, mx.v[i].pref, &soft);
}

/* Drop every target at or after the best preference that is ours: the
 * hosts there would hand the message back to us. */
static void drop_ipme(struct targets *t)
{
	struct dns_iplist mine = {NULL, 0, 0};
	struct str bad = STR_INIT;
	const char *file;
	unsigned long prefme = (unsigned long)-1;
	size_t kept = 0;

	if (ipme_load(&mine, &file, &bad) < 0) {
		if (errno == ENOMEM)
			temp_nomem();
		if (!file)
			log_warn_sys("unable to list the local addresses");
		else if (errno == EINVAL && bad.len)
			log_warn("%s: not an address: %s", file, bad.s);
		else
			log_warn_sys("unable to read %s", file);
		temp_control();
	}
	for (size_t i = 0; i < t->n; i++)
		if (ipme_is(&mine, &t->v[i].ip) && t->v[i].pref < prefme)
			prefme = t->v[i].pref;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].pref < prefme)
			t->v[kept++] = t->v[i];
	t->n = kept;
	dns_iplist_free(&mine);
	str_free(&bad);
	if (t->n == 0)
		perm_ambigmx();
}

/* Fill t, *port and *cred for a message from sender to host. A sender
 * entry that names a relay comes first; credentials of a sender entry
 * without one go to the relay of the recipient route. No credentials
 * ever go to a host found through MX. */
static void plan(const struct config *c, const char *host, const char *sender,
		 struct targets *t, unsigned *port,
		 const struct authcred **cred)
{
	static struct str relay;
	const struct authroute *by_sender;
	int routed;

	*port = SMTP_PORT;
	*cred = NULL;
	by_sender = authroutes_for_sender(&c->auth, sender);
	if (by_sender && by_sender->relay[0]) {
		/* A copy: the targets outlive the table. */
		static struct str sender_relay;
		if (str_copys(&sender_relay, by_sender->relay) < 0)
			temp_nomem();
		*port = by_sender->port;
		*cred = by_sender->cred.user ? &by_sender->cred : NULL;
		add_literal_or_addresses(t, sender_relay.s);
		if (t->n == 0)
			temp_dns();
		return;
	}
	routed = smtproutes_find(&c->routes, host, &relay, port);
	if (routed < 0)
		temp_nomem();
	if (routed > 0 && relay.len > 0) {
		*cred = by_sender && by_sender->cred.user
			    ? &by_sender->cred
			    : authroutes_for_host(&c->auth, host);
		/* A relay is used as given: no MX, no ipme (as qmail). */
		add_literal_or_addresses(t, relay.s);
		if (t->n == 0)
			temp_dns();
		return;
	}
	if (host[0] == '[')
		add_literal_or_addresses(t, host);
	else
		add_mx_targets(t, host);
	if (t->n == 0)
		temp_dns();
	drop_ipme(t);
}

/* --- running the client --- */

enum outcome {
	DELIVERED,
	CONNECT_FAILED, /* tcpclient could not connect */
	GREETING_FAILED,
	CLIENT_FAILED,	  /* connected, then qmail-rsmtp broke */
	TCPCLIENT_FAILED, /* e.g. it could not run qmail-rsmtp */
	NO_TCPCLIENT,
};

struct attempt {
	enum outcome outcome;
	int status;	  /* wait status */
	char reason[128]; /* tcpclient's words for a failed connect */
};

/* What came on the client's stderr: the first line is held back until
 * we know whether it is tcpclient's: a connect failure goes into the
 * report instead; everything else is passed on to our stderr. */
struct errpipe {
	char head[STDERR_HEAD];
	size_t len;
	int decided;
	char first[STDERR_HEAD];
};

static void pass_on(const char *p, size_t n)
{
	if (n > 0)
		fd_write_all(2, p, n, 10);
}

static int starts(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && memcmp(s, prefix, k) == 0;
}

static void decide(struct errpipe *e, int at_eof)
{
	const char *nl = memchr(e->head, '\n', e->len);
	size_t line, skip;
	int swallow;

	if (!nl && e->len < sizeof e->head && !at_eof)
		return;
	line = nl ? (size_t)(nl - e->head) + 1 : e->len;
	e->decided = 1;
	swallow = starts(e->head, line, CONNECT_PREFIX) ||
		  starts(e->head, line, EXEC_PREFIX);
	if (swallow || starts(e->head, line, TCPCLIENT_PREFIX)) {
		size_t keep = line - (nl ? 1 : 0);
		if (keep >= sizeof e->first)
			keep = sizeof e->first - 1;
		memcpy(e->first, e->head, keep);
		e->first[keep] = '\0';
	}
	skip = swallow ? line : 0;
	pass_on(e->head + skip, e->len - skip);
}

static void drain(int fd, struct errpipe *e)
{
	char chunk[4096];

	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t n = (size_t)r, took = 0;
		if (!e->decided) {
			took = sizeof e->head - e->len;
			if (took > n)
				took = n;
			memcpy(e->head + e->len, chunk, took);
			e->len += took;
			decide(e, 0);
			if (!e->decided)
				continue;
		}
		pass_on(chunk + took, n - took);
	}
	if (!e->decided)
		decide(e, 1);
}

/* The reason after "...port N: " in tcpclient's line, made printable. */
static void connect_reason(const char *line, char *out, size_t size)
{
	const char *p = strrchr(line, ':');
	size_t n = 0;

	p = p ? p + 1 : line;
	while (*p == ' ')
		p++;
	for (; *p && n + 1 < size; p++) {
		unsigned char c = (unsigned char)*p;
		out[n++] = (c < 32 || c > 126) ? '?' : (char)c;
	}
	out[n] = '\0';
}

static _Noreturn void run_client(int errfd, char **argv)
{
	char msg[256];

	if (fd_move(2, errfd) < 0)
		_exit(111);
	signal(SIGPIPE, SIG_DFL);
	execvp(argv[0], argv);
	snprintf(msg, sizeof msg, "%s: %s\n", EXEC_PREFIX, errstr(errno));
	fd_write_all(2, msg, strlen(msg), 10);
	_exit(111);
}

/* The outcome, from the exit status and the first line of stderr. */
static void classify(struct attempt *a, const char *first)
{
	size_t n = strlen(first);
	int exited = WIFEXITED(a->status);
	int code = exited ? WEXITSTATUS(a->status) : -1;

	if (exited && code == RSMTP_REPORTED) {
		a->outcome = DELIVERED;
	} else if (starts(first, n, EXEC_PREFIX)) {
		a->outcome = NO_TCPCLIENT;
	} else if (starts(first, n, CONNECT_PREFIX)) {
		a->outcome = CONNECT_FAILED;
		connect_reason(first, a->reason, sizeof a->reason);
	} else if (starts(first, n, TCPCLIENT_PREFIX)) {
		a->outcome = TCPCLIENT_FAILED;
	} else if (exited && code == RSMTP_NEXT) {
		a->outcome = GREETING_FAILED;
	} else {
		a->outcome = CLIENT_FAILED;
	}
}

static void attempt(char **argv, struct attempt *a)
{
	struct errpipe e;
	int pipefd[2];
	pid_t pid;

	memset(a, 0, sizeof *a);
	memset(&e, 0, sizeof e);
	if (pipe(pipefd) < 0)
		fail("ZSystem resources temporarily unavailable. (#4.3.0)\n");
	fd_cloexec(pipefd[0]);
	pid = fork();
	if (pid < 0)
		fail("ZSystem resources temporarily unavailable. (#4.3.0)\n");
	if (pid == 0) {
		close(pipefd[0]);
		run_client(pipefd[1], argv);
	}
	close(pipefd[1]);
	drain(pipefd[0], &e);
	close(pipefd[0]);
	while (waitpid(pid, &a->status, 0) < 0)
		if (errno != EINTR)
			fail("ZSystem resources temporarily unavailable. "
			     "(#4.3.0)\n");
	classify(a, e.first);
}

/* The credentials of this delivery, as qmail-rsmtp reads them. */
struct secret {
	char data[2 * AUTHCRED_MAX + 2]; /* "user\0password\0" */
	size_t len;			 /* 0: no AUTH */
	int cleartext;
};

static void make_secret(struct secret *s, const struct authcred *c)
{
	size_t u, p;

	s->len = 0;
	s->cleartext = 0;
	if (!c)
		return;
	u = strlen(c->user);
	p = strlen(c->pass);
	if (u > AUTHCRED_MAX || p > AUTHCRED_MAX)
		temp_control(); /* authroutes refuses them: cannot happen */
	memcpy(s->data, c->user, u + 1);
	memcpy(s->data + u + 1, c->pass, p + 1);
	s->len = u + p + 2;
	s->cleartext = c->cleartext;
}

/* A pipe that holds the secret, its read end at 8 or above, clear of
 * the descriptors tcpclient and the TLS program use, and named in
 * RSMTP_AUTHFD. All of it is written before the fork: it fits in the
 * pipe, so this never blocks. Returns the read end, or -1 when there
 * is no secret (then a stray RSMTP_AUTHFD is removed). */
static int pass_secret(const struct secret *s)
{
	char num[16];
	int p[2], fd;

	env_unset("RSMTP_AUTHFD");
	env_unset("RSMTP_AUTHCLEARTEXT");
	if (s->len == 0)
		return -1;
	if (pipe(p) < 0)
		fail("ZSystem resources temporarily unavailable. (#4.3.0)\n");
	if (fd_write_all(p[1], s->data, s->len, 10) < 0)
		fail("ZUnable to pass the AUTH credentials on. (#4.3.0)\n");
	close(p[1]);
	fd = fcntl(p[0], F_DUPFD, 8);
	close(p[0]);
	if (fd < 0)
		fail("ZSystem resources temporarily unavailable. (#4.3.0)\n");
	snprintf(num, sizeof num, "%d", fd);
	set_env("RSMTP_AUTHFD", num);
	if (s->cleartext)
		set_env("RSMTP_AUTHCLEARTEXT", "1");
	return fd;
}

/* One attempt with a fresh copy of the secret: qmail-rsmtp consumes it. */
static void attempt_with(char **argv, struct attempt *a, const struct secret *s)
{
	int fd = pass_secret(s);

	attempt(argv, a);
	if (fd >= 0)
		close(fd);
}

/* Keep tcpto up to date; a broken table must not stop the delivery. */
static void note_tcpto(const struct dns_ip *ip, const struct attempt *a)
{
	int timed_out;

	/* Only outcomes that show whether the host answered count. */
	if (a->outcome == NO_TCPCLIENT || a->outcome == TCPCLIENT_FAILED ||
	    (a->outcome == CLIENT_FAILED && !WIFEXITED(a->status)))
		return;
	timed_out =
	    a->outcome == CONNECT_FAILED && strcmp(a->reason, "timed out") == 0;
	if (tcpto_note(ip, timed_out, (uint64_t)time(NULL)) < 0)
		log_warn_sys("unable to update the tcpto table");
}

static _Noreturn void temp_noconn(const struct target *t, unsigned port,
				  const struct attempt *a)
{
	struct str s = STR_INIT;
	char ip[INET6_ADDRSTRLEN], num[64];

	append(&s, "ZSorry, I wasn't able to establish an SMTP connection. "
		   "(#4.4.1)\nLast attempt: ");
	if (t->host[0] != '[') {
		append_safe(&s, t->host);
		append(&s, " ");
	}
	append(&s, "[");
	append(&s, dns_ip_format(&t->ip, ip, sizeof ip));
	snprintf(num, sizeof num, "] port %u: ", port);
	append(&s, num);
	switch (a->outcome) {
	case CONNECT_FAILED:
		append(&s, a->reason[0] ? a->reason : "unable to connect");
		break;
	case GREETING_FAILED:
		append(&s, "connected, but greeting failed");
		break;
	case NO_TCPCLIENT:
		append(&s, "unable to run tcpclient");
		break;
	case TCPCLIENT_FAILED:
		append(&s, "tcpclient failed");
		break;
	default:
		if (WIFEXITED(a->status))
			snprintf(num, sizeof num,
				 "connected, but qmail-rsmtp failed (exit %d)",
				 WEXITSTATUS(a->status));
		else
			snprintf(num, sizeof num,
				 "connected, but qmail-rsmtp failed "
				 "(signal %d)",
				 WIFSIGNALED(a->status) ? WTERMSIG(a->status)
							: 0);
		append(&s, num);
		break;
	}
	append(&s, ".\n");
	finish(&s);
}

/* tcpclient's argv: the fixed words, the TLS program when there is one
 * (with -y for STARTTLS; without it for implicit TLS), qmail-rsmtp, then
 * sender and recipients. */
static char **client_argv(const char *const *mail, size_t nmail, char *timeout,
			  char *ip, char *port, char *tlsc, int implicit,
			  char *rsmtp)
{
	size_t count, bytes, k = 0;
	char **argv;

	if (size_add(nmail, 12, &count) < 0 ||
	    size_mul(count, sizeof *argv, &bytes) < 0)
		temp_nomem();
	argv = malloc(bytes);
	if (!argv)
		temp_nomem();
	argv[k++] = "tcpclient";
	argv[k++] = "-RHl0";
	argv[k++] = "-T";
	argv[k++] = timeout;
	argv[k++] = "--";
	argv[k++] = ip;
	argv[k++] = port;
	if (tlsc) {
		argv[k++] = tlsc;
		if (!implicit)
			argv[k++] = "-y";
	}
	argv[k++] = rsmtp;
	argv[k++] = "--";
	for (size_t i = 0; i < nmail; i++)
		argv[k++] = (char *)mail[i];
	argv[k] = NULL;
	return argv;
}

/* <home>/bin/qmail-rsmtp as an absolute path: the home may have been
 * given relative to a directory we have left. */
static void client_path(struct str *path)
{
	char cwd[4096];
	const char *home = home_dir();

	if (home[0] != '/') {
		if (!getcwd(cwd, sizeof cwd))
			fail("ZUnable to switch to home directory. (#4.3.0)\n");
		home = cwd;
	}
	if (str_copys(path, home) < 0 ||
	    str_appends(path, "/bin/qmail-rsmtp") < 0)
		temp_nomem();
}


static void deliver(const struct config *c, const struct targets *t,
		    unsigned port, struct secret *secret,
		    const char *const *mail, size_t nmail)
{
	char timeout[32], ip[INET6_ADDRSTRLEN], portnum[16], num[32];
	struct str rsmtp = STR_INIT;
	struct attempt a;
	uint64_t window = tcpto_window();
	size_t last = (size_t)-1;

	client_path(&rsmtp);
	snprintf(timeout, sizeof timeout, "%lu", c->timeoutconnect);
	snprintf(portnum, sizeof portnum, "%u", port);
	snprintf(num, sizeof num, "%lu", c->timeoutremote);
	set_env("RSMTP_HELO", c->helohost.s);
	set_env("RSMTP_TIMEOUT", num);
	/* A certificate we cannot read would stop every TLS attempt. */
	if (access("control/clientcert.pem", R_OK) == 0)
		set_env("CERTFILE", "control/clientcert.pem");
	else
		env_unset("CERTFILE");
	if (access("control/clientcert.pem", F_OK) == 0 &&
	    access("control/clientcert.pem", R_OK) < 0)
		log_warn_sys("unable to read control/clientcert.pem");
	if (c->ciphers.len)
		set_env("CIPHERS", c->ciphers.s);
	else
		env_unset("CIPHERS");
	/* Port 465 is TLS from the first byte (RFC 8314). */
	int implicit = port == 465;
	for (size_t i = 0; i < t->n; i++) {
		const struct target *x = &t->v[i];
		/* The last address is always tried. */
		if (i + 1 < t->n &&
		    tcpto_blocked(&x->ip, (uint64_t)time(NULL), window) > 0)
			continue;
		/* A pipe cannot be rewound: then there is one attempt. */
		if (lseek(0, 0, SEEK_SET) < 0 &&
		    (errno != ESPIPE || last != (size_t)-1))
			temp_read();
		dns_ip_format(&x->ip, ip, sizeof ip);
		set_env("RSMTP_HOST", x->host);
		enum tls_mode mode = tls_policy(c, x->host);
		char *tlsc = mode != TLS_NONE || (implicit && c->tlsc.len)
				     ? c->tlsc.s
				     : NULL;
		char **argv = client_argv(mail, nmail, timeout, ip, portnum,
					  tlsc, implicit, rsmtp.s);
		attempt_with(argv, &a, secret);
		if (a.outcome == CLIENT_FAILED && WIFEXITED(a.status) &&
		    WEXITSTATUS(a.status) == RSMTP_TLS_FAILED &&
		    mode == TLS_TRY && !implicit) {
			/* An opportunistic handshake failed: this host gets
			 * the mail in cleartext now, as OpenSMTPD does,
			 * rather than never (the TLS patch defers forever). */
			free(argv);
			set_env("RSMTP_TLS", "off");
			argv = client_argv(mail, nmail, timeout, ip, portnum,
					   NULL, 0, rsmtp.s);
			if (lseek(0, 0, SEEK_SET) < 0)
				temp_read();
			attempt_with(argv, &a, secret);
		}
		free(argv);
		note_tcpto(&x->ip, &a);
		if (a.outcome == DELIVERED) {
			sasl_wipe(secret, sizeof *secret);
			_exit(0); /* qmail-rsmtp wrote the reports */
		}
		last = i;
	}
	sasl_wipe(secret, sizeof *secret);
	temp_noconn(&t->v[last], port, &a);
}

/* A descriptor closed at start would be taken by the first pipe: give
 * it /dev/null instead. */
static void keep_fd_open(int fd)
{
	if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0 && null != fd) {
			dup2(null, fd);
			close(null);
		}
	}
}

int main(int argc, char **argv)
{
	struct config c = {60, 1200, STR_INIT, SMTPROUTES_INIT,
			   AUTHROUTES_INIT, STR_INIT, STR_INIT};
	struct targets t = {NULL, 0, 0};
	const struct authcred *cred;
	static struct secret secret;
	unsigned port;

	log_init(argv[0]);
	/* Our stderr may go away; the reports on fd 1 must still be
	 * written, and a lost diagnostic must not kill a delivery. */
	signal(SIGPIPE, SIG_IGN);
	keep_fd_open(2);
	if (argc < 4)
		fail("DI (qmail-remote) was invoked improperly. (#5.3.5)\n");
	if (chdir(home_dir()) < 0)
		fail("ZUnable to switch to home directory. (#4.3.0)\n");
	load_config(&c);
	plan(&c, argv[1], argv[2], &t, &port, &cred);
	make_secret(&secret, cred);
	authroutes_free(&c.auth); /* wipes every secret but this one */
	dns_close(&dns); /* no resolver socket may leak into the client */
	deliver(&c, &t, port, &secret, (const char *const *)argv + 2,
		(size_t)argc - 2);
	return 0;
}
