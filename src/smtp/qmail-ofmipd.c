/*
 * qmail-ofmipd: accept outgoing mail from a mail client (port 587).
 *
 *   qmail-ofmipd [names.cdb]
 *
 * mess822's ofmipd on the shared SMTP engine: envelope addresses are
 * qualified by control/rewrite, the header is fixed as qmail-inject
 * fixes it (mail/inject.h), and the message is queued. It relays for
 * anyone who reaches it: access is decided in front of it, by tcprules
 * or by qmail-authup. After qmail-authup (AUTHUP_USER set) it answers
 * 235 in place of a greeting, the session is already past EHLO, and it
 * never exits 1, 2 or 111 (authup would take those for a bad password).
 *
 * An optional cdb (made by qmail-ofmipname) maps a sender to a display
 * name and address. An optional control/ofmipsenders limits which
 * senders and From addresses each authenticated user may use.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/cdbx.h"
#include "lib/ctl.h"
#include "lib/date822.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "mail/addrlist.h"
#include "mail/header.h"
#include "mail/inject.h"
#include "smtp/received.h"
#include "smtp/server.h"

static struct {
	struct inject_settings set;
	const char *names; /* the cdb of display names, or NULL */
	const char *user;  /* AUTHUP_USER, or NULL */
	struct str senders; /* control/ofmipsenders entries, NUL-separated */
	int have_senders;
	const char *remoteip, *remoteinfo, *remotehost, *localhost;
	unsigned long seq;
} cfg;

/* The message being received: the header is collected, then fixed. */
static struct {
	struct header h;
	struct str line;
	int in_header;
	const struct smtp_sink *queue;
	struct smtp_server *s;
	const char *refusal;
	struct str name_from; /* a From: line from the names cdb */
} msg;

static _Noreturn void die_control(const char *what)
{
	log_warn_sys("unable to read %s", what);
	const char *t = "421 unable to read controls (#4.3.0)\r\n";
	ssize_t w = write(1, t, strlen(t));
	(void)w;
	_exit(cfg.user ? 0 : EXIT_TEMP);
}

/* --- the sender policy --- */

/* Does the authenticated user own this address? "user:addr" entries,
 * where addr is an address or "@domain". Off without the file. */
static int sender_allowed(const char *addr)
{
	size_t ulen, pos = 0;
	const char *e, *at = strrchr(addr, '@');

	if (!cfg.have_senders || !cfg.user)
		return 1;
	ulen = strlen(cfg.user);
	while ((e = ctl_next(&cfg.senders, &pos))) {
		if (strncmp(e, cfg.user, ulen) != 0 || e[ulen] != ':')
			continue;
		const char *a = e + ulen + 1;
		if (strcasecmp(a, addr) == 0 ||
		    (a[0] == '@' && at && strcasecmp(a, at) == 0))
			return 1;
	}
	return 0;
}

/* --- the envelope --- */

/* The names cdb: key the sender, value "name\0address\0". */
static void apply_name(struct str *sender)
{
	struct str val = STR_INIT, key = STR_INIT;

	str_clear(&msg.name_from);
	if (!cfg.names || str_copystr(&key, sender) < 0)
		return;
	for (size_t i = 0; i < key.len; i++)
		if (key.s[i] >= 'A' && key.s[i] <= 'Z')
			key.s[i] = (char)(key.s[i] + 32);
	if (cdbx_lookup(cfg.names, key.s, key.len, &val, 4096) == 1) {
		const char *name = val.s;
		const char *addr = memchr(val.s, 0, val.len);
		if (addr && (size_t)(++addr - val.s) < val.len && *addr) {
			if (str_copys(sender, addr) < 0 ||
			    str_copys(&msg.name_from, "From: ") < 0 ||
			    str_appends(&msg.name_from, name) < 0 ||
			    str_appends(&msg.name_from, " <") < 0 ||
			    str_appends(&msg.name_from, addr) < 0 ||
			    str_appends(&msg.name_from, ">\n") < 0)
				log_nomem();
		}
	}
	str_free(&val);
	str_free(&key);
}

static const char *qualify(struct str *addr)
{
	struct str out = STR_INIT;
	if (inject_envelope_address(&cfg.set.rw, addr->s, &out) < 0)
		log_nomem();
	if (out.len > INJECT_ADDR_MAX) {
		str_free(&out);
		return "553 sorry, that address is too long (#5.1.3)";
	}
	if (str_copystr(addr, &out) < 0)
		log_nomem();
	str_free(&out);
	return NULL;
}

static const char *on_mail(void *ctx, struct smtp_server *s,
			   struct str *sender)
{
	const char *err = qualify(sender);
	if (err)
		return err;
	if (sender->len && !sender_allowed(sender->s))
		return "553 sorry, you are not allowed to use that sender "
		       "address (#5.7.1)";
	apply_name(sender);
	return NULL;
}

static const char *on_rcpt(void *ctx, struct smtp_server *s,
			   struct str *rcpt)
{
	return qualify(rcpt);
}

/* --- Received --- */

static void on_received(void *ctx, struct smtp_server *s, struct str *out)
{
	char date[DATE822_LEN];

	if (cfg.user) {
		/* As the qmail AUTH patches write it: the user in place of
		 * the ident answer, and ESMTPA, or ESMTPSA with the cipher. */
		struct str proto = STR_INIT;
		smtp_protocol(s, &proto);
		received_smtp(out, proto.s, cfg.localhost, cfg.remoteip,
			      cfg.remotehost, cfg.user, s->helo.s);
		str_free(&proto);
		return;
	}
	date822_fmt(date, time(NULL));
	if (str_appends(out, "Received: (qmail-ofmipd ") < 0)
		log_nomem();
	if (cfg.remoteinfo && *cfg.remoteinfo) {
		received_safe(out, cfg.remoteinfo);
		if (str_appendc(out, '@') < 0)
			log_nomem();
	}
	received_safe(out, cfg.remoteip);
	if (str_appends(out, "); ") < 0 || str_appends(out, date) < 0 ||
	    str_appendc(out, '\n') < 0)
		log_nomem();
}

/* --- the header fixer, between the DATA reader and qmail-queue --- */

static void queue_put(const char *p, size_t n)
{
	msg.queue->put(msg.queue->ctx, p, n);
}

/* From addresses the user may not use refuse the message. */
static void check_from(const struct header *h)
{
	struct addrlist al;
	size_t vlen;

	if (!cfg.have_senders || !cfg.user)
		return;
	for (size_t i = 0; i < h->nfields; i++) {
		if (!header_is(h, i, "From") && !header_is(h, i, "Sender"))
			continue;
		const char *v = header_value(h, i, &vlen);
		addrlist_init(&al);
		if (addrlist_parse(&al, v, vlen) < 0) {
			msg.refusal = "553 sorry, I cannot read your From "
				      "field (#5.6.0)";
			addrlist_free(&al);
			return;
		}
		for (size_t k = 0; k < al.n; k++) {
			struct str a = STR_INIT;
			size_t ll, hl;
			const char *l = addr_local(&al, k, &ll);
			const char *hst = addr_host(&al, k, &hl);
			if (al.a[k].null)
				continue;
			if (str_copy(&a, l, ll) < 0 ||
			    (hl && (str_appendc(&a, '@') < 0 ||
				    str_append(&a, hst, hl) < 0)))
				log_nomem();
			if (!sender_allowed(a.s))
				msg.refusal = "553 sorry, you are not allowed "
					      "to use that From address "
					      "(#5.7.1)";
			str_free(&a);
		}
		addrlist_free(&al);
	}
}

static void header_done(void)
{
	struct inject_opts o;
	struct inject_out out;
	struct smtp_server *s = msg.s;
	const char *at = strrchr(s->sender.s, '@');
	struct str user = STR_INIT, host = STR_INIT;

	header_eof(&msg.h);
	if (str_copy(&user, s->sender.s,
		     at ? (size_t)(at - s->sender.s) : s->sender.len) < 0 ||
	    str_copys(&host, at ? at + 1 : cfg.set.defaulthost.s) < 0)
		log_nomem();
	memset(&o, 0, sizeof o);
	o.rw = &cfg.set.rw;
	o.idhost = cfg.set.idhost.s;
	o.user = user.len ? user.s : "anonymous";
	o.host = host.s;
	o.suser = o.user;
	o.shost = o.host;
	o.sender = s->sender.s;
	o.mode = INJECT_RCPT_GIVEN;
	o.now = time(NULL);
	o.pid = (unsigned long)getpid();
	o.seq = ++cfg.seq;
	if (msg.name_from.len)
		o.flags |= INJECT_DELETE_FROM;
	inject_out_init(&out);
	if (inject_fix(&msg.h, &o, &out) < 0) {
		msg.refusal = "554 sorry, I cannot fix the header of this "
			      "message (#5.6.0)";
	} else {
		/* The policy looks at the From the recipients will see. */
		struct header fixed;
		header_init(&fixed);
		for (size_t pos = 0; pos < out.header.len;) {
			const char *line = out.header.s + pos;
			const char *nl =
				memchr(line, '\n', out.header.len - pos);
			size_t n = nl ? (size_t)(nl - line) + 1
				      : out.header.len - pos;
			if (header_line(&fixed, line, n) < 0)
				log_nomem();
			pos += n;
		}
		header_eof(&fixed);
		check_from(&fixed);
		header_free(&fixed);
		if (msg.name_from.len) {
			/* Our From replaces the one inject_fix made. */
			struct str fixed = STR_INIT;
			size_t pos = 0;
			while (pos < out.header.len) {
				const char *line = out.header.s + pos;
				const char *nl = memchr(line, '\n',
							out.header.len - pos);
				size_t n = nl ? (size_t)(nl - line) + 1
					      : out.header.len - pos;
				/* inject_fix wrote From on one line. */
				if (!(n >= 5 &&
				      strncasecmp(line, "From:", 5) == 0) &&
				    str_append(&fixed, line, n) < 0)
					log_nomem();
				pos += n;
			}
			queue_put(msg.name_from.s, msg.name_from.len);
			queue_put(fixed.s, fixed.len);
			str_free(&fixed);
		} else {
			queue_put(out.header.s, out.header.len);
		}
		queue_put(msg.h.rest.s, msg.h.rest.len);
	}
	inject_out_free(&out);
	str_free(&user);
	str_free(&host);
}

static void filter_put(void *ctx, const char *p, size_t n)
{
	size_t i = 0;

	while (msg.in_header && i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t take = nl ? (size_t)(nl - (p + i)) + 1 : n - i;
		if (str_append(&msg.line, p + i, take) < 0)
			log_nomem();
		i += take;
		if (!nl)
			return;
		int r = header_line(&msg.h, msg.line.s, msg.line.len);
		str_clear(&msg.line);
		if (r < 0) {
			msg.refusal = "552 sorry, the message header is too "
				      "long (#5.6.0)";
			msg.in_header = 0;
			return;
		}
		if (r == 0) {
			msg.in_header = 0;
			header_done();
		}
	}
	if (i < n && !msg.refusal)
		queue_put(p + i, n - i);
}

static void on_filter_begin(void *ctx, struct smtp_server *s,
			    const struct smtp_sink *to_queue,
			    struct smtp_sink *filter)
{
	header_free(&msg.h);
	header_init(&msg.h);
	str_clear(&msg.line);
	msg.in_header = 1;
	msg.queue = to_queue;
	msg.s = s;
	msg.refusal = NULL;
	filter->put = filter_put;
	filter->ctx = NULL;
}

static const char *on_filter_end(void *ctx, struct smtp_server *s)
{
	if (msg.in_header) {
		/* A message that is all header (or empty). */
		if (msg.line.len &&
		    header_line(&msg.h, msg.line.s, msg.line.len) < 0)
			msg.refusal = "552 sorry, the message header is too "
				      "long (#5.6.0)";
		msg.in_header = 0;
		if (!msg.refusal)
			header_done();
	}
	return msg.refusal;
}

static int on_command(void *ctx, struct smtp_server *s, const char *verb,
		      size_t vlen, const char *arg, size_t alen)
{
	if (vlen != 4 || strncasecmp(verb, "AUTH", 4) != 0)
		return 0;
	smtp_reply(s, cfg.user ? "503 you are already authenticated (#5.5.1)"
			       : "502 unimplemented (#5.5.1)");
	return 1;
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = env_get(name);
	return v && *v ? v : dflt;
}

int main(int argc, char **argv)
{
	static struct smtp_server s;
	static const struct smtp_policy policy = {
		.mail = on_mail,
		.rcpt = on_rcpt,
		.received = on_received,
		.filter_begin = on_filter_begin,
		.filter_end = on_filter_end,
		.command = on_command,
	};
	unsigned long timeout, n;
	struct str greeting = STR_INIT;

	log_init(argv[0]);
	cfg.user = env_get("AUTHUP_USER");
	if (cfg.user && !*cfg.user)
		cfg.user = NULL;
	if (cfg.user)
		log_set_fatal_code(0); /* 1, 2 and 111 mean "bad password" */
	cfg.names = argc > 1 ? argv[1] : NULL;
	home_chdir();
	if (ctl_ulong("control/timeoutsmtpd", &timeout, 1200) < 0)
		die_control("control/timeoutsmtpd");
	/* A larger number must not wrap to a short timeout. */
	smtp_init(&s, &policy,
		  timeout > UINT_MAX ? UINT_MAX : (unsigned)timeout);
	s.fail_code = cfg.user ? 0 : EXIT_TEMP;
	if (inject_settings_load(&cfg.set) < 0)
		die_control(cfg.set.failed.len ? cfg.set.failed.s : "controls");
	if (ctl_line_or_me("control/smtpgreeting", &greeting) < 0)
		die_control("control/smtpgreeting");
	s.greeting = greeting.len ? greeting.s : "unknown";
	if (ctl_ulong("control/databytes", &n, 0) < 0)
		die_control("control/databytes");
	s.databytes = n;
	if (env_ulong("DATABYTES", &n) > 0)
		s.databytes = n;
	if (ctl_ulong("control/maxrcpt", &n, 1000) < 0)
		die_control("control/maxrcpt");
	s.maxrcpt = n;
	int r = ctl_list("control/ofmipsenders", &cfg.senders);
	if (r < 0)
		die_control("control/ofmipsenders");
	cfg.have_senders = r;
	cfg.remoteip = env_or("TCPREMOTEIP", "unknown");
	cfg.remoteinfo = env_get("TCPREMOTEINFO");
	cfg.remotehost = env_get("TCPREMOTEHOST");
	cfg.localhost = env_or("TCPLOCALHOST", env_or("TCPLOCALIP", "unknown"));
	if (cfg.user) {
		/* authup already had the greeting, EHLO and AUTH: this line
		 * completes the client's AUTH exchange. */
		s.skip_greeting = 1;
		s.seen_helo = 1;
		s.esmtp = 1;
		s.proto_suffix = "A";
		s.tls.policy = TLS_OFF;
		const char *proto = env_get("SSL_PROTOCOL");
		if (proto && *proto)
			s.tls_active = 1;
		smtp_reply(&s, "235 ok, go ahead (#2.0.0)");
	}
	int code = smtp_serve(&s);
	return cfg.user ? 0 : code;
}
