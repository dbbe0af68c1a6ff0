/*
 * qmail-rsmtp: the SMTP client, and nothing else.
 *
 *   qmail-rsmtp -- sender recipient...
 *
 * It speaks SMTP on fds 6 (from the server) and 7 (to the server), as a
 * program run by tcpclient; it has no sockets, no DNS and no TLS library.
 * The message is on fd 0 (seekable). RSMTP_HOST names the host we meant
 * to reach, RSMTP_HELO our name, RSMTP_TIMEOUT the seconds for each read
 * and write; tcpclient's TCPREMOTEIP names the address. It writes
 * qmail-remote's reports on fd 1 and exits 0; it exits 75, writing
 * nothing, when the caller should try the next address (no greeting, or
 * one that is not 2xx), and 76 when an opportunistic TLS handshake failed
 * (the caller may try the same address again without TLS).
 *
 * TLS comes through UCSPI-TLS (ucspi-tlsc -y): RSMTP_TLS says the policy:
 * "off", "try" (STARTTLS when offered; the default when the TLS fds are
 * there) or "require" (STARTTLS and a verified certificate, else Z).
 * With implicit TLS (port 465) the connection is TLS from the start and
 * SSL_PROTOCOL is already in the environment.
 *
 * Never sends a bare CR or a bare LF: every line ends in CRLF, so a
 * message can never end early at a careless receiver (SMTP smuggling).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/log.h"
#include "lib/str.h"
#include "smtp/reply.h"
#include "smtp/ucspitls.h"

#define EXIT_NEXT 75
#define EXIT_TLS_FAILED 76

struct caps {
	int esmtp, pipelining, eightbitmime, smtputf8, starttls;
	int has_size;
	unsigned long long size; /* 0: no limit announced */
};

struct message {
	unsigned long long wire_size; /* bytes on the wire before "." */
	int eightbit, header_8bit, partial;
};

static struct buf in, out;
static char inspace[BUF_SIZE], outspace[BUF_SIZE];
static const char *host, *ip, *helo;
static const char *sender;
static char **rcpts;
static int nrcpts;
static struct str report; /* recipient reports, then the final one */

/* --- reports --- */

static void add_report(char kind, const char *a, const char *b,
		       const struct smtp_reply *r)
{
	if (str_appendc(&report, kind) < 0 || str_appends(&report, a) < 0 ||
	    (b && str_appends(&report, b) < 0))
		log_nomem();
	if (r && (str_appends(&report, "\nRemote host said: ") < 0 ||
		  str_append(&report, r->text.s, r->text.len) < 0))
		log_nomem();
	if (str_append0(&report) < 0)
		log_nomem();
}

static _Noreturn void finish(void)
{
	if (fd_write_all(1, report.s, report.len, 0) < 0)
		_exit(EXIT_TEMP);
	_exit(0);
}

/* The final report, after the recipient reports written so far. */
static _Noreturn void final(char kind, const char *text,
			    const struct smtp_reply *r)
{
	struct str t = STR_INIT;
	if (str_copys(&t, "Connected to ") < 0 || str_appends(&t, ip) < 0 ||
	    str_appends(&t, " but ") < 0 || str_appends(&t, text) < 0)
		log_nomem();
	add_report(kind, t.s, NULL, r);
	finish();
}

/* The connection broke: temporary, whatever step it was. */
static _Noreturn void broken(enum reply_status st)
{
	switch (st) {
	case REPLY_TIMEOUT:
		final('Z', "the connection timed out. (#4.4.2)", NULL);
	case REPLY_PROTOCOL:
		final('Z', "the server broke the SMTP protocol. (#4.4.2)",
		      NULL);
	default:
		final('Z', "the connection died. (#4.4.2)", NULL);
	}
}

/* --- the wire --- */

static void put(const char *s, size_t n)
{
	if (buf_put(&out, s, n) < 0)
		broken(errno == ETIMEDOUT ? REPLY_TIMEOUT : REPLY_IOERROR);
}

static void puts_(const char *s)
{
	put(s, strlen(s));
}

static void flush(void)
{
	if (buf_flush(&out) < 0)
		broken(errno == ETIMEDOUT ? REPLY_TIMEOUT : REPLY_IOERROR);
}

static void get_reply(struct smtp_reply *r)
{
	enum reply_status st = reply_read(&in, r);
	if (st != REPLY_OK)
		broken(st);
}

static void quit(void)
{
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	/* Say goodbye, but a server that does not answer changes nothing. */
	if (buf_puts(&out, "QUIT\r\n") == 0 && buf_flush(&out) == 0) {
		buf_settimeout(&in, 5);
		reply_read(&in, &r);
	}
	reply_free(&r);
}

/* --- the message --- */

/*
 * The one line-ending rule, used both to count and to send: CRLF, a bare
 * LF and a bare CR each end a line and go out as CRLF; a dot at the start
 * of a line is doubled. With send == 0 it only counts.
 */
struct blaster {
	int send, line_start, pending_cr;
	unsigned long long count; /* RFC 1870 size: no stuffing dots */
};

static void blast_out(struct blaster *b, const char *s, size_t n)
{
	b->count += n;
	if (b->send)
		put(s, n);
}

/* A quoting dot goes on the wire but does not count in SIZE. */
static void blast_stuff(struct blaster *b)
{
	if (b->send)
		put(".", 1);
}

static void blast_eol(struct blaster *b)
{
	blast_out(b, "\r\n", 2);
	b->line_start = 1;
}

static void blast_bytes(struct blaster *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\r') {
			if (b->pending_cr)
				blast_eol(b);
			b->pending_cr = 1;
			continue;
		}
		if (c == '\n') {
			blast_eol(b);
			b->pending_cr = 0;
			continue;
		}
		if (b->pending_cr) {
			blast_eol(b);
			b->pending_cr = 0;
		}
		if (b->line_start && c == '.')
			blast_stuff(b);
		/* Runs of ordinary bytes go out together. */
		size_t j = i + 1;
		while (j < n && p[j] != '\r' && p[j] != '\n')
			j++;
		blast_out(b, p + i, j - i);
		b->line_start = 0;
		i = j - 1;
	}
}

static void blast_end(struct blaster *b)
{
	if (b->pending_cr)
		blast_eol(b);
	b->pending_cr = 0;
}

/* An address with a control byte would end the SMTP command early: it
 * never goes on the wire. */
static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return 1;
	return 0;
}

static int has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* Read the message once: its size on the wire, 8-bit bytes, 8-bit
 * header bytes, and whether the last line is complete. */
static void scan_message(struct message *m)
{
	static char space[BUF_SIZE * 4];
	struct buf msg;
	struct blaster b = {0, 1, 0, 0};
	int in_header = 1, at_line_start = 1;
	char last = '\n';
	ssize_t n;

	memset(m, 0, sizeof *m);
	buf_init(&msg, 0, space, sizeof space, 0);
	while ((n = buf_fill(&msg)) > 0) {
		const char *p = buf_peek(&msg);
		for (ssize_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c >= 0x80) {
				m->eightbit = 1;
				if (in_header)
					m->header_8bit = 1;
			}
			if (c == '\n') {
				if (at_line_start)
					in_header = 0;
				at_line_start = 1;
			} else if (c != '\r') {
				/* A CR before the LF keeps "\r\n\r\n" an
				 * empty line. */
				at_line_start = 0;
			}
		}
		blast_bytes(&b, p, (size_t)n);
		last = p[n - 1];
		buf_skip(&msg, (size_t)n);
	}
	if (n < 0)
		final('Z', "I was unable to read the message. (#4.3.0)", NULL);
	blast_end(&b);
	m->wire_size = b.count;
	m->partial = last != '\n';
	if (lseek(0, 0, SEEK_SET) < 0)
		final('Z', "I was unable to rewind the message. (#4.3.0)", NULL);
}

static void send_message(void)
{
	static char space[BUF_SIZE * 4];
	struct buf msg;
	struct blaster b = {1, 1, 0, 0};
	ssize_t n;

	buf_init(&msg, 0, space, sizeof space, 0);
	while ((n = buf_fill(&msg)) > 0) {
		blast_bytes(&b, buf_peek(&msg), (size_t)n);
		buf_skip(&msg, (size_t)n);
	}
	if (n < 0)
		final('Z', "I was unable to read the message. (#4.3.0)", NULL);
	blast_end(&b);
	puts_(".\r\n");
	flush();
}

/* --- the dialogue --- */

static void parse_caps(const struct smtp_reply *r, struct caps *c)
{
	size_t pos = 0;
	int first = 1;

	memset(c, 0, sizeof *c);
	c->esmtp = 1;
	while (pos < r->lines.len) {
		const char *line = r->lines.s + pos;
		pos += strlen(line) + 1;
		if (first) {
			first = 0; /* the greeting line */
			continue;
		}
		const char *kw = line + 4; /* after "250-" or "250 " */
		if (strlen(line) < 4)
			continue;
		size_t klen = strcspn(kw, " ");
		if (klen == 10 && strncasecmp(kw, "PIPELINING", 10) == 0)
			c->pipelining = 1;
		else if (klen == 8 && strncasecmp(kw, "8BITMIME", 8) == 0)
			c->eightbitmime = 1;
		else if (klen == 8 && strncasecmp(kw, "SMTPUTF8", 8) == 0)
			c->smtputf8 = 1;
		else if (klen == 8 && strncasecmp(kw, "STARTTLS", 8) == 0)
			c->starttls = 1;
		else if (klen == 4 && strncasecmp(kw, "SIZE", 4) == 0) {
			c->has_size = 1;
			unsigned long long v = 0;
			for (const char *p = kw + 4; *p == ' ';)
				for (p++; *p >= '0' && *p <= '9'; p++)
					if (v <= (~0ULL - 9) / 10)
						v = v * 10 + (unsigned)(*p - '0');
			c->size = v;
		}
	}
}

static void hello(struct caps *c)
{
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	puts_("EHLO ");
	puts_(helo);
	puts_("\r\n");
	flush();
	get_reply(&r);
	if (r.code / 100 == 2) {
		parse_caps(&r, c);
		reply_free(&r);
		return;
	}
	if (r.code / 100 == 4) {
		quit();
		final('Z', "my name was rejected.", &r);
	}
	/* 5xx: an old server; try HELO. */
	puts_("HELO ");
	puts_(helo);
	puts_("\r\n");
	flush();
	get_reply(&r);
	if (r.code / 100 != 2) {
		quit();
		final(r.code / 100 == 5 ? 'D' : 'Z', "my name was rejected.", &r);
	}
	memset(c, 0, sizeof *c);
	reply_free(&r);
}

/* STARTTLS, then EHLO again with only the new capabilities. */
static void starttls(struct ucspitls *t, struct caps *c, int required)
{
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	const char *verify;

	if (!c->starttls || !ucspitls_available(t)) {
		if (!required)
			return;
		quit();
		if (c->starttls)
			final('Z', "I require TLS for it and no TLS program is "
				   "running. (#4.7.0)",
			      NULL);
		final('Z', "it does not offer STARTTLS, which I require for it. "
			   "(#4.7.0)",
		      NULL);
	}
	puts_("STARTTLS\r\n");
	flush();
	get_reply(&r);
	if (r.code != 220) {
		if (!required) {
			reply_free(&r);
			return; /* refused: carry on in cleartext */
		}
		quit();
		final('Z', "STARTTLS was refused, and I require TLS for it.", &r);
	}
	if (ucspitls_start(t, &in, &out, 6, 7) < 0) {
		if (!required)
			_exit(EXIT_TLS_FAILED);
		final('Z', "the TLS handshake failed. (#4.7.0)", NULL);
	}
	verify = env_get("SSL_SERVER_VERIFY");
	if (required && (!verify || strcmp(verify, "SUCCESS") != 0)) {
		struct str why = STR_INIT;
		if (str_copys(&why, "its certificate did not verify: ") < 0 ||
		    str_appends(&why, verify ? verify : "no result") < 0 ||
		    str_appends(&why, ". (#4.7.5)") < 0)
			log_nomem();
		quit();
		final('Z', why.s, NULL);
	}
	reply_free(&r);
	hello(c);
}

static void mail_command(const struct caps *c, const struct message *m,
			 int utf8)
{
	char num[24];

	puts_("MAIL FROM:<");
	puts_(sender);
	puts_(">");
	if (c->has_size) {
		snprintf(num, sizeof num, " SIZE=%llu", m->wire_size);
		puts_(num);
	}
	if (m->eightbit && c->eightbitmime)
		puts_(" BODY=8BITMIME");
	if (utf8)
		puts_(" SMTPUTF8");
	puts_("\r\n");
}

static void rcpt_command(const char *r)
{
	puts_("RCPT TO:<");
	puts_(r);
	puts_(">\r\n");
}

int main(int argc, char **argv)
{
	struct caps caps;
	struct message m;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	unsigned long timeout = 1200;
	int first = 1;

	log_init(argv[0]);
	signal(SIGPIPE, SIG_IGN);
	while (first < argc && strcmp(argv[first], "--") != 0)
		first++;
	if (argc - first < 3)
		log_fatal(EXIT_PERM, "usage: qmail-rsmtp -- sender recipient...");
	sender = argv[first + 1];
	rcpts = argv + first + 2;
	nrcpts = argc - first - 2;
	host = env_get("RSMTP_HOST");
	ip = env_get("TCPREMOTEIP");
	helo = env_get("RSMTP_HELO");
	if (!ip)
		ip = host ? host : "the server";
	if (!helo || !*helo || strpbrk(helo, " \r\n"))
		helo = "localhost";
	if (env_ulong("RSMTP_TIMEOUT", &timeout) < 0 || timeout == 0 ||
	    timeout > 86400)
		timeout = 1200; /* never "wait forever" */
	buf_init(&in, 6, inspace, sizeof inspace, (unsigned)timeout);
	buf_init(&out, 7, outspace, sizeof outspace, (unsigned)timeout);

	/* The greeting decides whether this address is worth it at all. */
	if (reply_read(&in, &r) != REPLY_OK)
		_exit(EXIT_NEXT);
	if (r.code / 100 != 2) {
		quit();
		_exit(EXIT_NEXT);
	}

	scan_message(&m);
	if (m.partial) {
		quit();
		add_report('D', "The message has a partial last line; I will not "
				"send it. (#5.6.2)",
			   NULL, NULL);
		finish();
	}
	hello(&caps);

	struct ucspitls tls;
	const char *policy = env_get("RSMTP_TLS");
	int required = policy && strcmp(policy, "require") == 0;
	int implicit = env_get("SSL_PROTOCOL") != NULL;
	ucspitls_init(&tls);
	tls.policy = TLS_OFFERED; /* what to do is decided here, not there */
	if (implicit) {
		const char *verify = env_get("SSL_SERVER_VERIFY");
		if (required && (!verify || strcmp(verify, "SUCCESS") != 0)) {
			quit();
			final('Z', "its certificate did not verify. (#4.7.5)",
			      NULL);
		}
	} else if (!policy || strcmp(policy, "off") != 0) {
		starttls(&tls, &caps, required);
	}

	int utf8 = m.header_8bit || has_8bit(sender);
	for (int i = 0; i < nrcpts; i++)
		utf8 |= has_8bit(rcpts[i]);
	if (utf8 && !caps.smtputf8) {
		quit();
		final('D', "it does not support SMTPUTF8, which this message "
			   "needs for its non-ASCII addresses or header. (#5.6.7)",
		      NULL);
	}
	if (caps.has_size && caps.size && m.wire_size > caps.size) {
		quit();
		final('D', "the message is larger than the server accepts. "
			   "(#5.3.4)",
		      NULL);
	}

	if (has_control(sender)) {
		quit();
		add_report('D', "The sender address holds a control character; "
				"I will not send it. (#5.1.7)",
			   NULL, NULL);
		finish();
	}
	/* MAIL, RCPT, DATA: in one go with PIPELINING, else in turn. */
	mail_command(&caps, &m, utf8);
	if (caps.pipelining) {
		for (int i = 0; i < nrcpts; i++)
			if (!has_control(rcpts[i]))
				rcpt_command(rcpts[i]);
		puts_("DATA\r\n");
	}
	flush();
	get_reply(&r);
	if (r.code / 100 != 2) {
		if (caps.pipelining) {
			/* Read the RCPT and DATA answers to stay in step. */
			struct smtp_reply skip = {0, STR_INIT, STR_INIT};
			for (int i = 0; i <= nrcpts; i++)
				if ((i == nrcpts || !has_control(rcpts[i])) &&
				    reply_read(&in, &skip) != REPLY_OK)
					break;
			reply_free(&skip);
		}
		quit();
		final(r.code / 100 == 5 ? 'D' : 'Z', "sender was rejected.", &r);
	}
	int accepted = 0, temporary = 0;
	for (int i = 0; i < nrcpts; i++) {
		if (has_control(rcpts[i])) {
			add_report('h', "The recipient address holds a control "
					"character; I did not send it. (#5.1.3)",
				   NULL, NULL);
			continue;
		}
		if (!caps.pipelining) {
			rcpt_command(rcpts[i]);
			flush();
		}
		get_reply(&r);
		struct str t = STR_INIT;
		if (str_copys(&t, ip) < 0)
			log_nomem();
		if (r.code / 100 == 2) {
			accepted++;
			add_report('r', "", NULL, NULL);
		} else {
			if (r.code / 100 != 5)
				temporary++;
			add_report(r.code / 100 == 5 ? 'h' : 's', t.s,
				   " does not like recipient.", &r);
		}
		str_free(&t);
	}
	if (!caps.pipelining) {
		if (!accepted) {
			quit();
			final(temporary ? 'Z' : 'D', "no recipient was accepted.",
			      NULL);
		}
		puts_("DATA\r\n");
		flush();
	}
	get_reply(&r);
	if (r.code != 354) {
		quit();
		if (!accepted)
			final(temporary ? 'Z' : 'D', "no recipient was accepted.",
			      NULL);
		final(r.code / 100 == 5 ? 'D' : 'Z', "failed on DATA command.",
		      &r);
	}
	if (!accepted) {
		/* A server that says 354 with no recipients gets nothing. */
		puts_(".\r\n");
		flush();
		get_reply(&r);
		quit();
		final(temporary ? 'Z' : 'D', "no recipient was accepted.", NULL);
	}
	send_message();
	get_reply(&r);
	quit();
	if (r.code / 100 == 2) {
		struct str t = STR_INIT;
		if (str_copys(&t, ip) < 0 || str_appends(&t, " accepted message.") < 0)
			log_nomem();
		add_report('K', t.s, NULL, &r);
		finish();
	}
	final(r.code / 100 == 5 ? 'D' : 'Z', "failed after I sent the message.",
	      &r);
}
