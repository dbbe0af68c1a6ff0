/*
 * server.c: the SMTP dialogue (RFC 5321), shared by the SMTP servers.
 *
 * Command lines are bounded (SMTP_LINE_MAX), must end in CRLF and may
 * not hold NUL. Replies are buffered and flushed only when the client has
 * nothing more pipelined, so PIPELINING costs no extra writes. Every
 * reply text follows qmail's style: "CODE text (#X.Y.Z)". Nothing the
 * client sends is ever used as a format string or passed to a shell.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/exitcode.h"
#include "lib/log.h"
#include "mail/qq.h"
#include "mail/smtpaddr.h"
#include "smtp/server.h"

void smtp_init(struct smtp_server *s, const struct smtp_policy *p,
	       unsigned timeout)
{
	memset(s, 0, sizeof *s);
	s->policy = p;
	s->maxerrors = 10;
	s->greeting = "localhost";
	s->proto_suffix = "";
	s->fail_code = EXIT_TEMP;
	buf_init(&s->in, 0, s->inspace, sizeof s->inspace, timeout);
	buf_init(&s->out, 1, s->outspace, sizeof s->outspace, timeout);
	ucspitls_init(&s->tls);
	/* SMTPS: the TLS program did the handshake before we started. */
	const char *smtps = getenv("SMTPS");
	if (smtps && *smtps) {
		s->tls_active = 1;
		s->tls.policy = TLS_OFF; /* nothing more to start */
	}
}

void smtp_protocol(const struct smtp_server *s, struct str *out)
{
	const char *cipher = ucspitls_cipher();

	if (str_copys(out, s->esmtp ? "ESMTP" : "SMTP") < 0 ||
	    (s->tls_active && str_appendc(out, 'S') < 0) ||
	    str_appends(out, s->proto_suffix) < 0)
		log_nomem();
	if (s->tls_active && cipher && *cipher) {
		if (str_appends(out, " (") < 0)
			log_nomem();
		for (const char *c = cipher; *c; c++) {
			char ch = *c;
			/* The cipher name comes from the peer's choice. */
			if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
				ch = '?';
			if (str_appendc(out, ch) < 0)
				log_nomem();
		}
		if (str_appends(out, " encrypted)") < 0)
			log_nomem();
	}
}

void smtp_flush(struct smtp_server *s)
{
	if (buf_flush(&s->out) < 0)
		_exit(s->fail_code); /* the client is gone */
}

void smtp_reply(struct smtp_server *s, const char *line)
{
	if (buf_puts(&s->out, line) < 0 || buf_put(&s->out, "\r\n", 2) < 0)
		_exit(s->fail_code);
}

static _Noreturn void smtp_close(struct smtp_server *s, const char *line,
				 int code)
{
	smtp_reply(s, line);
	smtp_flush(s);
	_exit(code);
}

void smtp_reset(struct smtp_server *s)
{
	s->has_mail = 0;
	s->smtputf8 = 0;
	s->nrcpts = 0;
	str_clear(&s->sender);
	str_clear(&s->rcpts);
}

/* A client error that counts toward the limit. */
static void smtp_error(struct smtp_server *s, const char *line)
{
	smtp_reply(s, line);
	if (++s->errors >= s->maxerrors)
		smtp_close(s, "421 too many errors; closing connection (#4.7.0)",
			   0);
}

/* --- commands --- */

static void do_helo(struct smtp_server *s, const char *arg, size_t n, int ehlo)
{
	struct str line = STR_INIT;

	smtp_reset(s);
	s->seen_helo = 1;
	s->esmtp = ehlo;
	if (str_copy(&s->helo, arg, n) < 0)
		log_nomem();
	if (!ehlo) {
		if (str_copys(&line, "250 ") < 0 ||
		    str_appends(&line, s->greeting) < 0)
			log_nomem();
		smtp_reply(s, line.s);
		str_free(&line);
		return;
	}
	if (str_copys(&line, "250-") < 0 || str_appends(&line, s->greeting) < 0 ||
	    str_appends(&line, "\r\n250-PIPELINING\r\n250-8BITMIME\r\n") < 0)
		log_nomem();
	if (ucspitls_available(&s->tls) &&
	    str_appends(&line, "250-STARTTLS\r\n") < 0)
		log_nomem();
	if (s->policy->extra_ehlo && str_appends(&line, s->policy->extra_ehlo) < 0)
		log_nomem();
	if (str_appends(&line, "250-SMTPUTF8\r\n250 SIZE") < 0)
		log_nomem();
	if (s->databytes &&
	    (str_appendc(&line, ' ') < 0 || str_appendnum(&line, s->databytes) < 0))
		log_nomem();
	smtp_reply(s, line.s);
	str_free(&line);
}

/* "FROM:" or "TO:" then the path. Returns the text after the colon. */
static const char *after_keyword(const char *arg, size_t n, const char *kw,
				 size_t *rest)
{
	size_t k = strlen(kw);
	if (n < k || strncasecmp(arg, kw, k) != 0)
		return NULL;
	*rest = n - k;
	return arg + k;
}

static int has_8bit(const struct str *a)
{
	for (size_t i = 0; i < a->len; i++)
		if ((unsigned char)a->s[i] >= 0x80)
			return 1;
	return 0;
}

static const char *addr_error(enum smtpaddr_result r)
{
	switch (r) {
	case SMTPADDR_UTF8:
		return "553 sorry, that address is not valid UTF-8 (#5.6.7)";
	case SMTPADDR_8BIT:
		return "553 sorry, 8-bit addresses need SMTPUTF8 (#5.6.7)";
	case SMTPADDR_LITERAL:
		return "553 sorry, that address literal is not valid (#5.1.3)";
	case SMTPADDR_NOMEM:
		log_nomem();
	default:
		return "555 syntax error in address (#5.5.4)";
	}
}

/* MAIL parameters: SIZE, BODY, SMTPUTF8. Returns NULL or a reply. */
static const char *mail_params(struct smtp_server *s, const char *p, size_t n)
{
	struct str key = STR_INIT, value = STR_INIT;
	size_t pos = 0;
	int has_value, r;
	const char *err = NULL;

	while (!err &&
	       (r = smtpaddr_next_param(p, n, &pos, &key, &value, &has_value)) ==
		       1) {
		if (strcasecmp(key.s, "SIZE") == 0 && has_value) {
			unsigned long long size = 0;
			int big = value.len == 0 ? -1 : 0; /* "SIZE=" is no size */
			for (size_t i = 0; i < value.len && !big; i++) {
				if (value.s[i] < '0' || value.s[i] > '9')
					big = -1;
				else if (size > (~0ULL - 9) / 10)
					big = 1;
				else
					size = size * 10 + (unsigned)(value.s[i] - '0');
			}
			if (big < 0)
				err = "501 bad SIZE parameter (#5.5.4)";
			else if (s->databytes && (big || size > s->databytes))
				err = "552 sorry, that message size exceeds my "
				      "databytes limit (#5.3.4)";
		} else if (strcasecmp(key.s, "BODY") == 0 && has_value) {
			if (strcasecmp(value.s, "7BIT") != 0 &&
			    strcasecmp(value.s, "8BITMIME") != 0)
				err = "501 unknown BODY type (#5.5.4)";
		} else if (strcasecmp(key.s, "SMTPUTF8") == 0 && !has_value) {
			s->smtputf8 = 1;
		} else {
			err = "555 unsupported parameter (#5.5.4)";
		}
	}
	if (r < 0)
		log_nomem();
	str_free(&key);
	str_free(&value);
	return err;
}

static void do_mail(struct smtp_server *s, const char *arg, size_t n)
{
	const char *path, *params, *err;
	size_t rest;
	struct str addr = STR_INIT;

	if (s->tls.policy == TLS_REQUIRED && !s->tls_active) {
		smtp_reply(s, "530 Must issue a STARTTLS command first (#5.7.0)");
		return;
	}
	if (s->has_mail) {
		smtp_error(s, "503 nested MAIL command (#5.5.1)");
		return;
	}
	path = after_keyword(arg, n, "FROM:", &rest);
	if (!path) {
		smtp_error(s, "501 syntax: MAIL FROM:<address> (#5.5.4)");
		return;
	}
	enum smtpaddr_result r = smtpaddr_parse(path, rest, 1, &addr, &params);
	if (r != SMTPADDR_OK) {
		smtp_error(s, addr_error(r));
		goto out;
	}
	s->smtputf8 = 0;
	err = mail_params(s, params, (size_t)(path + rest - params));
	if (!err && has_8bit(&addr) && !s->smtputf8)
		err = addr_error(SMTPADDR_8BIT);
	if (!err && s->policy->mail)
		err = s->policy->mail(s->policy->ctx, s, &addr);
	if (err) {
		s->smtputf8 = 0;
		smtp_reply(s, err);
		goto out;
	}
	if (str_copystr(&s->sender, &addr) < 0)
		log_nomem();
	s->has_mail = 1;
	s->nrcpts = 0;
	str_clear(&s->rcpts);
	smtp_reply(s, "250 ok");
out:
	str_free(&addr);
}

static void do_rcpt(struct smtp_server *s, const char *arg, size_t n)
{
	const char *path, *params, *err;
	size_t rest;
	struct str addr = STR_INIT;

	if (!s->has_mail) {
		smtp_error(s, "503 MAIL first (#5.5.1)");
		return;
	}
	path = after_keyword(arg, n, "TO:", &rest);
	if (!path) {
		smtp_error(s, "501 syntax: RCPT TO:<address> (#5.5.4)");
		return;
	}
	enum smtpaddr_result r =
		smtpaddr_parse(path, rest, s->smtputf8, &addr, &params);
	if (r != SMTPADDR_OK) {
		smtp_error(s, addr_error(r));
		goto out;
	}
	if (params != path + rest) {
		smtp_reply(s, "555 unsupported parameter (#5.5.4)");
		goto out;
	}
	if (addr.len == 0) {
		smtp_reply(s, "553 sorry, an empty recipient is not allowed "
			      "(#5.1.3)");
		goto out;
	}
	if (s->maxrcpt && s->nrcpts >= s->maxrcpt) {
		smtp_reply(s, "452 too many recipients (#4.5.3)");
		goto out;
	}
	err = s->policy->rcpt ? s->policy->rcpt(s->policy->ctx, s, &addr) : NULL;
	if (err) {
		smtp_reply(s, err);
		goto out;
	}
	if (str_append(&s->rcpts, addr.s, addr.len + 1) < 0)
		log_nomem();
	s->nrcpts++;
	smtp_reply(s, "250 ok");
out:
	str_free(&addr);
}

static void to_qq(void *ctx, const char *p, size_t n)
{
	qq_put(ctx, p, n);
}

static void do_data(struct smtp_server *s)
{
	struct qq q;
	struct str hdr = STR_INIT, reply = STR_INIT;
	struct data_result res;
	const char *err = NULL;
	struct smtp_sink queue_sink = {to_qq, &q}, filter, *sink = &queue_sink;
	const struct data_pace pace = {
		.window = s->in.timeout,
		.min_bytes = (unsigned long long)SMTP_DATA_PACE * s->in.timeout,
	};

	if (!s->has_mail) {
		smtp_error(s, "503 MAIL first (#5.5.1)");
		return;
	}
	if (s->nrcpts == 0) {
		smtp_error(s, "503 RCPT first (#5.5.1)");
		return;
	}
	if (qq_start(&q) < 0) {
		smtp_reply(s, "451 qq temporary problem (#4.3.0)");
		return;
	}
	smtp_reply(s, "354 go ahead");
	smtp_flush(s);

	s->policy->received(s->policy->ctx, s, &hdr);
	qq_put(&q, hdr.s, hdr.len);
	if (s->policy->filter_begin) {
		s->policy->filter_begin(s->policy->ctx, s, &queue_sink, &filter);
		sink = &filter;
	}
	smtp_data_read_paced(&s->in, s->databytes, &pace, sink, &res);
	if (res.status != DATA_OK) {
		qq_cancel(&q);
		if (res.status == DATA_BARE_LF)
			smtp_close(s, "451 See https://cr.yp.to/docs/smtplf.html.",
				   0);
		if (res.status == DATA_READ_ERROR && errno == ETIMEDOUT)
			smtp_close(s, "451 timeout (#4.4.2)", 0);
		_exit(0); /* the client went away: nothing was queued */
	}
	if (s->policy->filter_end)
		err = s->policy->filter_end(s->policy->ctx, s);
	if (res.too_big)
		err = "552 sorry, that message size exceeds my databytes limit "
		      "(#5.3.4)";
	else if (res.header_too_long)
		err = "552 sorry, the message header is too long (#5.6.0)";
	else if (res.hops > DATA_HOPS_MAX)
		err = "554 too many hops, this message is looping (#5.4.6)";
	if (err) {
		qq_cancel(&q);
		smtp_reply(s, err);
	} else {
		int code = qq_finish_list(&q, s->sender.s, &s->rcpts, &reply);
		if (code == 0) {
			/* Only now is the message safe on disk. */
			smtp_reply(s, "250 ok");
		} else {
			smtp_reply(s, qq_text(&reply, code));
		}
	}
	smtp_reset(s);
	str_free(&hdr);
	str_free(&reply);
}

static void do_starttls(struct smtp_server *s, size_t alen)
{
	if (alen) {
		smtp_error(s, "501 STARTTLS takes no arguments (#5.5.4)");
		return;
	}
	if (!ucspitls_available(&s->tls)) {
		smtp_error(s, "502 TLS not available (#5.5.1)");
		return;
	}
	smtp_reply(s, "220 ready for tls");
	smtp_flush(s);
	/* Whatever the client pipelined after STARTTLS is dropped here. */
	if (ucspitls_start(&s->tls, &s->in, &s->out, 0, 1) < 0)
		smtp_close(s, "454 TLS not available due to temporary reason",
			   0);
	s->tls_active = 1;
	/* RFC 3207: start again, as if the client had just connected. */
	smtp_reset(s);
	s->seen_helo = 0;
	s->esmtp = 0;
	str_clear(&s->helo);
}

/* --- the loop --- */

static int verb_is(const char *verb, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(verb, name, n) == 0;
}

/* The rest of an over-long line, read in bounded pieces. Returns 1 when
 * it ended in CRLF, 0 when it ended in a bare LF, -1 at EOF (errno 0) or
 * on an error. */
static int skip_long_line(struct smtp_server *s, struct str *piece)
{
	char last = piece->len ? piece->s[piece->len - 1] : 0;

	for (;;) {
		str_clear(piece);
		int r = buf_getline(&s->in, piece, '\n', SMTP_LINE_MAX);
		if (r == 0)
			errno = 0; /* EOF, not a failed read */
		if (r == 0 || (r < 0 && errno != EMSGSIZE))
			return -1;
		if (r > 0) {
			char before = piece->len >= 2 ? piece->s[piece->len - 2]
						      : last;
			return before == '\r';
		}
		last = piece->s[piece->len - 1];
	}
}

/* A read for a command failed (errno): a timeout is said, then the
 * session ends. Returns 0 for read_command. */
static int read_failed(struct smtp_server *s)
{
	if (errno == ETIMEDOUT)
		smtp_close(s, "451 timeout (#4.4.2)", 0);
	return 0;
}

/* Read one command line into line (without CRLF). Returns 1, or 0 when
 * the session is over. The whole line, an over-long one included, must
 * arrive within the timeout of when we start waiting for it: a per-read
 * timeout alone lets a client keep its slot by sending a byte now and
 * then (SMTP_DATA_PACE). */
static int read_command(struct smtp_server *s, struct str *line)
{
	for (;;) {
		if (!buf_hasline(&s->in, '\n'))
			smtp_flush(s); /* the client waits for our replies */
		/* Without a clock the per-read timeout still holds. */
		(void)buf_setdeadline(&s->in, s->in.timeout);
		str_clear(line);
		int r = buf_getline(&s->in, line, '\n', SMTP_LINE_MAX);
		if (r < 0 && errno == EMSGSIZE) {
			int end = skip_long_line(s, line);
			if (end < 0)
				return read_failed(s);
			if (end == 0)
				smtp_close(s, "451 See "
					      "https://cr.yp.to/docs/"
					      "smtplf.html.",
					   0);
			buf_setdeadline(&s->in, 0);
			smtp_error(s, "500 line too long (#5.5.2)");
			continue;
		}
		buf_setdeadline(&s->in, 0); /* leaves errno alone */
		if (r == 0)
			return 0;
		if (r < 0)
			return read_failed(s);
		if (line->len < 2 || line->s[line->len - 2] != '\r')
			smtp_close(s, "451 See https://cr.yp.to/docs/smtplf.html.",
				   0);
		str_truncate(line, line->len - 2);
		if (memchr(line->s, 0, line->len)) {
			smtp_error(s, "501 NUL in command (#5.5.2)");
			continue;
		}
		return 1;
	}
}

int smtp_serve(struct smtp_server *s)
{
	struct str line = STR_INIT, greeting = STR_INIT;

	signal(SIGPIPE, SIG_IGN);
	if (!s->skip_greeting) {
		if (str_copys(&greeting, "220 ") < 0 ||
		    str_appends(&greeting, s->greeting) < 0 ||
		    str_appends(&greeting, " ESMTP") < 0)
			log_nomem();
		smtp_reply(s, greeting.s);
	}
	while (read_command(s, &line)) {
		size_t vlen = 0;
		while (vlen < line.len && line.s[vlen] != ' ')
			vlen++;
		const char *verb = line.s, *arg = line.s + vlen;
		size_t alen = line.len - vlen;
		while (alen && *arg == ' ')
			arg++, alen--;

		if (s->policy->command &&
		    s->policy->command(s->policy->ctx, s, verb, vlen, arg, alen))
			continue;
		if (verb_is(verb, vlen, "HELO"))
			do_helo(s, arg, alen, 0);
		else if (verb_is(verb, vlen, "EHLO"))
			do_helo(s, arg, alen, 1);
		else if (verb_is(verb, vlen, "MAIL"))
			do_mail(s, arg, alen);
		else if (verb_is(verb, vlen, "RCPT"))
			do_rcpt(s, arg, alen);
		else if (verb_is(verb, vlen, "DATA"))
			do_data(s);
		else if (verb_is(verb, vlen, "STARTTLS"))
			do_starttls(s, alen);
		else if (verb_is(verb, vlen, "RSET")) {
			smtp_reset(s);
			smtp_reply(s, "250 flushed");
		} else if (verb_is(verb, vlen, "NOOP"))
			smtp_reply(s, "250 ok");
		else if (verb_is(verb, vlen, "VRFY"))
			smtp_reply(s, "252 send some mail, i'll try my best");
		else if (verb_is(verb, vlen, "HELP"))
			smtp_reply(s, "214 qmail home page: https://cr.yp.to/qmail.html");
		else if (verb_is(verb, vlen, "QUIT")) {
			struct str bye = STR_INIT;
			if (str_copys(&bye, "221 ") < 0 ||
			    str_appends(&bye, s->greeting) < 0)
				log_nomem();
			smtp_close(s, bye.s, 0);
		} else
			smtp_error(s, "502 unimplemented (#5.5.1)");
	}
	smtp_flush(s);
	str_free(&line);
	str_free(&greeting);
	return 0;
}
