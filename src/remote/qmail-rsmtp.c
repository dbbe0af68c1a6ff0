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
 * AUTH: when RSMTP_AUTHFD names a descriptor, it holds "user\0password\0"
 * from qmail-remote; it is read at start and closed. AUTH PLAIN is used
 * when offered, else AUTH LOGIN, and only over TLS unless
 * RSMTP_AUTHCLEARTEXT is "1". The credentials never reach a report: a
 * reply that quotes them has them replaced, and every buffer that held
 * them is wiped after the exchange.
 *
 * Never sends a bare CR or a bare LF: every line ends in CRLF, so a
 * message can never end early at a careless receiver (SMTP smuggling).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/base64.h"
#include "auth/sasl.h"
#include "lib/buf.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "lib/str.h"
#include "remote/authroute.h"
#include "smtp/reply.h"
#include "smtp/ucspitls.h"

#define EXIT_NEXT 75
#define EXIT_TLS_FAILED 76

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

/* The credentials from qmail-remote: "user\0password\0". */
static struct {
	char data[2 * AUTHCRED_MAX + 3];
	size_t ulen, plen;
	int present, cleartext;
} cred;
/* Set when there were credentials but no AUTH: said in rejections. */
static struct str auth_note;

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

static void hello(struct smtp_caps *c)
{
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

	puts_("EHLO ");
	puts_(helo);
	puts_("\r\n");
	flush();
	get_reply(&r);
	if (r.code / 100 == 2) {
		reply_caps(&r, c);
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

/* With TLS required, a certificate that did not verify ends the attempt,
 * saying why (the chain error, or the name that did not match). */
static void check_verified(int required)
{
	const char *verify = env_get("SSL_SERVER_VERIFY");
	struct str why = STR_INIT;

	if (!required || (verify && strcmp(verify, "SUCCESS") == 0))
		return;
	if (str_copys(&why, "its certificate did not verify: ") < 0 ||
	    str_appends(&why, verify ? verify : "no result") < 0 ||
	    str_appends(&why, ". (#4.7.5)") < 0)
		log_nomem();
	quit();
	final('Z', why.s, NULL);
}

/* STARTTLS, then EHLO again with only the new capabilities. */
static void starttls(struct ucspitls *t, struct smtp_caps *c,
		     int required)
{
	struct smtp_reply r = {0, STR_INIT, STR_INIT};

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
	check_verified(required);
	reply_free(&r);
	hello(c);
}

/* --- AUTH (RFC 4954) --- */

static void wipe_credentials(void)
{
	sasl_wipe(&cred, sizeof cred);
}

static _Noreturn void bad_credentials(void)
{
	wipe_credentials();
	add_report('Z',
		   "Unable to read the AUTH credentials from "
		   "qmail-remote. (#4.3.0)",
		   NULL, NULL);
	finish();
}

/* "user\0password\0" from the descriptor RSMTP_AUTHFD names, which is
 * closed afterwards. qmail-remote wrote it all before we started, so
 * the wait is only for a descriptor that is not what it should be. */
static void read_credentials(void)
{
	const char *v = env_get("RSMTP_AUTHFD");
	const char *clear = env_get("RSMTP_AUTHCLEARTEXT");
	size_t len = 0;
	int fd;

	if (!v)
		return;
	fd = fd_parse(v);
	if (fd < 3 || fd == 6 || fd == 7)
		bad_credentials();
	while (len < sizeof cred.data) {
		struct pollfd p = {fd, POLLIN, 0};
		int ready = poll(&p, 1, 10000);
		ssize_t n = 0;
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready > 0)
			n = read(fd, cred.data + len, sizeof cred.data - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (ready <= 0 || n < 0) {
			close(fd);
			bad_credentials();
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	cred.ulen = strnlen(cred.data, len);
	if (cred.ulen == 0 || cred.ulen >= len || len == sizeof cred.data)
		bad_credentials();
	cred.plen = strnlen(cred.data + cred.ulen + 1, len - cred.ulen - 1);
	if (cred.ulen + cred.plen + 2 != len)
		bad_credentials();
	cred.present = 1;
	cred.cleartext = clear && strcmp(clear, "1") == 0;
}

/* The relay as named in reports: printable ASCII only. */
static const char *relay_name(void)
{
	static char name[256];
	const char *h = host && *host ? host : ip;
	size_t i = 0;

	for (; h[i] && i + 1 < sizeof name; i++)
		name[i] = (unsigned char)h[i] < 33 || (unsigned char)h[i] > 126
			      ? '?'
			      : h[i];
	name[i] = '\0';
	return name;
}

/* Does the reply text at p hold secret, as the reply reader shows it
 * (each byte outside printable ASCII as '?')? */
static int quoted_at(const char *p, const char *secret, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)secret[i];
		if (p[i] != ((c < 32 || c > 126) ? '?' : (char)c))
			return 0;
	}
	return 1;
}

/* A server may quote what it was sent: no copy of a secret may reach a
 * report through its reply. */
static void scrub(struct str *text, const char *secret, size_t n)
{
	struct str out = STR_INIT;
	size_t i = 0;

	if (n == 0)
		return;
	while (i < text->len) {
		if (text->len - i >= n && quoted_at(text->s + i, secret, n)) {
			if (str_appends(&out, "[hidden]") < 0)
				log_nomem();
			i += n;
		} else if (str_appendc(&out, text->s[i++]) < 0) {
			log_nomem();
		}
	}
	if (str_copystr(text, &out) < 0)
		log_nomem();
	str_free(&out);
}

/* One line that holds a secret: sent, then gone from our buffer. */
static void send_secret(const char *prefix, const struct str *b64)
{
	puts_(prefix);
	put(b64->s, b64->len);
	puts_("\r\n");
	flush();
	sasl_wipe(outspace, sizeof outspace);
}

static void encode_secret(struct str *b64, const void *p, size_t n)
{
	if (b64_encode(b64, p, n) < 0) {
		wipe_credentials();
		log_nomem();
	}
}

struct sent {
	struct str first, second; /* the base64 lines we sent */
};

static void forget_sent(struct sent *s)
{
	str_wipe(&s->first);
	str_wipe(&s->second);
}

/* What the server said to the last AUTH line; returns only on 235. */
static void auth_outcome(struct smtp_reply *r, struct sent *s)
{
	struct str why = STR_INIT;

	scrub(&r->text, cred.data + cred.ulen + 1, cred.plen);
	scrub(&r->text, s->first.s, s->first.len);
	scrub(&r->text, s->second.s, s->second.len);
	forget_sent(s);
	wipe_credentials();
	if (r->code == 235)
		return;
	if (r->code == 334) {
		/* It wants more than PLAIN or LOGIN take: give up on it. */
		struct smtp_reply end = {0, STR_INIT, STR_INIT};
		puts_("*\r\n");
		flush();
		get_reply(&end);
		reply_free(&end);
	}
	quit();
	if (str_copys(&why, "the relay ") < 0 ||
	    str_appends(&why, relay_name()) < 0 ||
	    str_appends(&why, r->code == 535 ? " rejected my user name or "
					       "password. (#5.7.8)"
			      : r->code / 100 == 5 ? " refused AUTH. (#5.7.0)"
			      : r->code / 100 == 4
				  ? " failed AUTH temporarily. (#4.7.0)"
				  : " broke off the AUTH exchange. (#4.7.0)") <
		0)
		log_nomem();
	final(r->code / 100 == 5 ? 'D' : 'Z', why.s, r);
}

static void auth_plain(void)
{
	char blob[sizeof cred.data + 1];
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	struct sent s = {STR_INIT, STR_INIT};
	size_t n = cred.ulen + cred.plen + 2;

	/* RFC 4616: authzid (empty), user, password, NUL-separated. */
	blob[0] = '\0';
	memcpy(blob + 1, cred.data, n - 1);
	encode_secret(&s.first, blob, n);
	sasl_wipe(blob, sizeof blob);
	send_secret("AUTH PLAIN ", &s.first);
	get_reply(&r);
	auth_outcome(&r, &s);
	reply_free(&r);
}

static void auth_login(void)
{
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	struct sent s = {STR_INIT, STR_INIT};

	puts_("AUTH LOGIN\r\n");
	flush();
	get_reply(&r);
	if (r.code == 334) {
		encode_secret(&s.first, cred.data, cred.ulen);
		send_secret("", &s.first);
		get_reply(&r);
	}
	if (r.code == 334) {
		encode_secret(&s.second, cred.data + cred.ulen + 1, cred.plen);
		send_secret("", &s.second);
		get_reply(&r);
	}
	auth_outcome(&r, &s);
	reply_free(&r);
}

/* AUTH when we have credentials and may use them here; when we do not
 * use them, the reason goes into a rejection of the sender or a
 * recipient, which is where a relay that wanted them says so. */
static void authenticate(const struct smtp_caps *c, int encrypted)
{
	const char *why = NULL;

	if (!cred.present)
		return;
	if (!encrypted && !cred.cleartext)
		why = "the connection is not encrypted, and the route does "
		      "not allow AUTH in cleartext";
	else if (c->auth_plain)
		auth_plain();
	else if (c->auth_login)
		auth_login();
	else
		why = "the server offers neither AUTH PLAIN nor AUTH LOGIN";
	wipe_credentials();
	if (why && (str_copys(&auth_note, " (I did not authenticate: ") < 0 ||
		    str_appends(&auth_note, why) < 0 ||
		    str_appends(&auth_note, ".)") < 0))
		log_nomem();
}

static void mail_command(const struct smtp_caps *c, const struct message *m,
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
	struct smtp_caps caps;
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
	read_credentials();

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
		check_verified(required);
	} else if (!policy || strcmp(policy, "off") != 0) {
		starttls(&tls, &caps, required);
	}
	authenticate(&caps, implicit || tls.active);

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
		struct str why = STR_INIT;
		if (str_copys(&why, "sender was rejected.") < 0 ||
		    str_append(&why, auth_note.s, auth_note.len) < 0)
			log_nomem();
		final(r.code / 100 == 5 ? 'D' : 'Z', why.s, &r);
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
			if (str_appends(&t, " does not like recipient.") < 0 ||
			    str_append(&t, auth_note.s, auth_note.len) < 0)
				log_nomem();
			add_report(r.code / 100 == 5 ? 'h' : 's', t.s, NULL,
				   &r);
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
