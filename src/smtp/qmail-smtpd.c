/*
 * qmail-smtpd: receive mail by SMTP on fds 0 and 1 (under tcpserver).
 *
 * The policy of qmail-smtpd(8): rcpthosts and morercpthosts.cdb decide
 * which recipients we accept unless RELAYCLIENT is set, badmailfrom
 * refuses senders, databytes (or DATABYTES) limits the size, and an
 * address literal naming our own address becomes localiphost. The
 * dialogue itself is the shared engine (smtp/server.h). It never opens a
 * socket and never links a TLS library.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/cdbx.h"
#include "lib/ctl.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/strmap.h"
#include "mail/smtpaddr.h"
#include "smtp/received.h"
#include "smtp/server.h"

#define RCPT_MAX_DEFAULT 1000

static struct {
	struct str greeting, localiphost;
	struct strmap rcpthosts, badmailfrom, tlsclients;
	int have_rcpthosts;
	struct cdbx_reader morercpthosts;
	int have_more;
	const char *relayclient;
	const char *remoteip, *remotehost, *remoteinfo, *localip, *localhost;
} cfg;

static _Noreturn void die_control(const char *fn)
{
	/* Tell the client to come back later, and the log why. */
	log_warn_sys("unable to read %s", fn);
	const char *msg = "421 unable to read controls (#4.3.0)\r\n";
	ssize_t w = write(1, msg, strlen(msg));
	(void)w;
	_exit(EXIT_TEMP);
}

static void load_set(const char *fn, struct strmap *m, int *present)
{
	struct str list = STR_INIT;
	size_t pos = 0;
	const char *e;
	int r = ctl_list(fn, &list);

	if (r < 0)
		die_control(fn);
	if (present)
		*present = r;
	while ((e = ctl_next(&list, &pos)))
		if (strmap_put(m, e, strlen(e), "") < 0)
			log_nomem();
	str_free(&list);
}

static void read_controls(struct smtp_server *s)
{
	unsigned long n;

	if (ctl_line_or_me("control/smtpgreeting", &cfg.greeting) < 0)
		die_control("control/smtpgreeting");
	if (cfg.greeting.len == 0 && str_copys(&cfg.greeting, "unknown") < 0)
		log_nomem();
	s->greeting = cfg.greeting.s;
	if (ctl_line_or_me("control/localiphost", &cfg.localiphost) < 0)
		die_control("control/localiphost");
	load_set("control/rcpthosts", &cfg.rcpthosts, &cfg.have_rcpthosts);
	int r = cdbx_open(&cfg.morercpthosts, "control/morercpthosts.cdb");
	if (r < 0)
		die_control("control/morercpthosts.cdb");
	cfg.have_more = r;
	load_set("control/badmailfrom", &cfg.badmailfrom, NULL);
	load_set("control/tlsclients", &cfg.tlsclients, NULL);
	if (ctl_ulong("control/databytes", &n, 0) < 0)
		die_control("control/databytes");
	s->databytes = n;
	int e = env_ulong("DATABYTES", &n);
	if (e > 0)
		s->databytes = n;
	if (ctl_ulong("control/maxrcpt", &n, RCPT_MAX_DEFAULT) < 0)
		die_control("control/maxrcpt");
	s->maxrcpt = n;
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = env_get(name);
	return v ? v : dflt;
}

/* --- policy --- */

static const char *check_mail(void *ctx, struct smtp_server *s,
			      struct str *sender)
{
	const char *at = strrchr(sender->s, '@');

	if (strmap_get(&cfg.badmailfrom, sender->s, sender->len) ||
	    (at && strmap_get(&cfg.badmailfrom, at, strlen(at))))
		return "553 sorry, your envelope sender is in my badmailfrom "
		       "list (#5.7.1)";
	return NULL;
}

/* 1 found, 0 not found, -1 the cdb could not be read. */
static int in_more(const char *key, size_t n)
{
	struct str val = STR_INIT;
	int r = cdbx_find(&cfg.morercpthosts, key, n, &val, 1024);
	str_free(&val);
	return r;
}

/* rcpthosts: the domain, or a ".suffix" entry, in either list. Returns
 * 1 allowed, 0 not, -1 when morercpthosts.cdb could not be read. */
static int rcpthost_allowed(const char *domain)
{
	char lower[256];
	size_t n = strlen(domain);

	if (!cfg.have_rcpthosts)
		return 1; /* no rcpthosts: qmail accepts everything */
	if (n >= sizeof lower)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		char c = domain[i];
		lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	for (const char *d = lower; d; d = strchr(d + 1, '.')) {
		if (strmap_get(&cfg.rcpthosts, d, strlen(d)))
			return 1;
		if (cfg.have_more) {
			int r = in_more(d, strlen(d));
			if (r != 0)
				return r;
		}
	}
	return 0;
}

/* "[our IP]" becomes localiphost. */
static void fix_literal(struct str *rcpt)
{
	char *at = strrchr(rcpt->s, '@');
	struct str ip = STR_INIT;
	unsigned char a[16], b[16];

	if (!at || smtpaddr_literal(at + 1, &ip) != 1 || !cfg.localip) {
		str_free(&ip);
		return;
	}
	int fam = strchr(ip.s, ':') ? AF_INET6 : AF_INET;
	int fam2 = strchr(cfg.localip, ':') ? AF_INET6 : AF_INET;
	size_t len = fam == AF_INET6 ? 16 : 4;
	if (fam == fam2 && inet_pton(fam, ip.s, a) == 1 &&
	    inet_pton(fam2, cfg.localip, b) == 1 && memcmp(a, b, len) == 0) {
		str_truncate(rcpt, (size_t)(at - rcpt->s) + 1);
		if (str_append(rcpt, cfg.localiphost.s, cfg.localiphost.len) < 0)
			log_nomem();
	}
	str_free(&ip);
}

/* A verified client certificate whose address is in control/tlsclients
 * may relay, as RELAYCLIENT="" would allow (the TLS patch's rule). */
static int tls_client_may_relay(const struct smtp_server *s)
{
	const char *verify = env_get("SSL_CLIENT_VERIFY");
	const char *email = env_get("SSL_CLIENT_S_DN_Email");

	return s->tls_active && verify && strcmp(verify, "SUCCESS") == 0 &&
	       email && *email &&
	       strmap_get(&cfg.tlsclients, email, strlen(email)) != NULL;
}

static const char *check_rcpt(void *ctx, struct smtp_server *s,
			      struct str *rcpt)
{
	fix_literal(rcpt);
	if (!cfg.relayclient && tls_client_may_relay(s))
		return NULL;
	if (cfg.relayclient) {
		if (str_appends(rcpt, cfg.relayclient) < 0)
			log_nomem();
		return NULL;
	}
	const char *at = strrchr(rcpt->s, '@');
	int allowed = at ? rcpthost_allowed(at + 1) : 1;
	if (allowed < 0) {
		log_warn_sys("unable to read control/morercpthosts.cdb");
		return "451 unable to read controls (#4.3.0)";
	}
	if (!allowed)
		return "553 sorry, that domain isn't in my list of allowed "
		       "rcpthosts (#5.7.1)";
	return NULL;
}

static void received(void *ctx, struct smtp_server *s, struct str *out)
{
	struct str proto = STR_INIT;
	smtp_protocol(s, &proto);
	received_smtp(out, proto.s, cfg.localhost, cfg.remoteip, cfg.remotehost,
		      cfg.remoteinfo, s->helo.s);
	str_free(&proto);
}

int main(int argc, char **argv)
{
	static struct smtp_server s;
	static const struct smtp_policy policy = {
		.mail = check_mail,
		.rcpt = check_rcpt,
		.received = received,
	};
	unsigned long timeout;

	log_init(argv[0]);
	home_chdir();
	if (ctl_ulong("control/timeoutsmtpd", &timeout, 1200) < 0)
		die_control("control/timeoutsmtpd");
	/* A larger number must not wrap to a short timeout. */
	smtp_init(&s, &policy,
		  timeout > UINT_MAX ? UINT_MAX : (unsigned)timeout);
	read_controls(&s);
	cfg.relayclient = env_get("RELAYCLIENT");
	cfg.remoteip = env_or("TCPREMOTEIP", "unknown");
	cfg.remotehost = env_get("TCPREMOTEHOST");
	cfg.remoteinfo = env_get("TCPREMOTEINFO");
	cfg.localip = env_get("TCPLOCALIP");
	cfg.localhost = env_get("TCPLOCALHOST");
	if (!cfg.localhost)
		cfg.localhost = cfg.localip ? cfg.localip : "unknown";
	return smtp_serve(&s);
}
