/*
 * server.h: the SMTP server engine shared by qmail-smtpd and qmail-ofmipd.
 *
 * The engine owns the dialogue: reading bounded command lines, replies
 * (buffered, and flushed only when no pipelined input is waiting), the
 * transaction state, SIZE/BODY/SMTPUTF8 parameters, recipient limits,
 * DATA with its smuggling rules, and handing the message to qmail-queue
 * only after everything passed; the client sees 250 only after
 * qmail-queue exits 0. A program supplies its policy through callbacks
 * and never touches the wire itself. It never links a TLS library: TLS
 * arrives through UCSPI-TLS descriptors.
 */
#ifndef QM_SMTP_SERVER_H
#define QM_SMTP_SERVER_H

#include "lib/buf.h"
#include "lib/str.h"
#include "smtp/data.h"
#include "smtp/ucspitls.h"

#define SMTP_LINE_MAX 1000 /* a command line, CRLF included */
/* Against slow senders, with T the timeout given to smtp_init: a whole
 * command line must arrive within T seconds of when the server starts
 * waiting for it, and DATA must bring SMTP_DATA_PACE * T bytes in every
 * T seconds until its end (smtp/data.h). */
#define SMTP_DATA_PACE 512 /* bytes per second, on average */

struct smtp_server;

struct smtp_policy {
	void *ctx;
	/* Extra EHLO keywords, each ending in "\r\n" after "250-", or
	 * NULL. */
	const char *extra_ehlo;
	/* MAIL: decide on the sender (it may be rewritten). NULL accepts;
	 * otherwise the reply, e.g. "553 sorry, ... (#5.7.1)". */
	const char *(*mail)(void *ctx, struct smtp_server *s,
			    struct str *sender);
	/* RCPT: decide on a recipient, which may be rewritten. */
	const char *(*rcpt)(void *ctx, struct smtp_server *s, struct str *rcpt);
	/* The Received line(s) and anything else to put before the data. */
	void (*received)(void *ctx, struct smtp_server *s, struct str *out);
	/* Optional: a filter between the DATA reader and qmail-queue (the
	 * header fixer of qmail-ofmipd). When set, the engine gives it the
	 * decoded message and a sink that reaches qmail-queue. */
	void (*filter_begin)(void *ctx, struct smtp_server *s,
			     const struct smtp_sink *to_queue,
			     struct smtp_sink *filter);
	/* Called after the message has been read, before queueing; returns
	 * NULL or a reply that refuses the message. */
	const char *(*filter_end)(void *ctx, struct smtp_server *s);
	/* Commands the program handles itself ("AUTH"), or NULL. Returns 1
	 * when it handled the verb. */
	int (*command)(void *ctx, struct smtp_server *s, const char *verb,
		       size_t verblen, const char *arg, size_t arglen);
};

struct smtp_server {
	struct buf in, out;
	char inspace[BUF_SIZE], outspace[BUF_SIZE];
	const struct smtp_policy *policy;

	/* Settings, filled by the program before smtp_serve. */
	const char *greeting;          /* after "220 " and "250 " */
	unsigned long long databytes;  /* 0: no limit */
	unsigned long maxrcpt;         /* 0: no limit */
	unsigned maxerrors;
	const char *proto_suffix;      /* "S" with TLS, "A" with AUTH... */
	int skip_greeting;             /* ofmipd after AUTH: no 220 */
	int fail_code;                 /* exit code when the client is gone */
	struct ucspitls tls;           /* STARTTLS through UCSPI-TLS */
	int tls_active;                /* STARTTLS done, or SMTPS */

	/* The transaction. */
	int seen_helo, esmtp;
	struct str helo;
	int has_mail, smtputf8;
	struct str sender;
	struct str rcpts; /* NUL-separated */
	unsigned long nrcpts;
	unsigned errors;
};

/* Set up on fds 0 and 1 with the given per-read/write timeout; reads the
 * UCSPI-TLS policy and fds from the environment (smtp/ucspitls.h). */
void smtp_init(struct smtp_server *s, const struct smtp_policy *p,
	       unsigned timeout);
/* Run the dialogue until QUIT, EOF, a timeout or too many errors.
 * Returns the exit code for the program (0 after QUIT). */
int smtp_serve(struct smtp_server *s);
/* Queue a reply line (CRLF added). Lines of a multi-line reply use
 * "250-" prefixes written by the caller. */
void smtp_reply(struct smtp_server *s, const char *line);
/* Write queued replies now. Exits the process on a write error. */
void smtp_flush(struct smtp_server *s);
/* "ESMTP", "ESMTPS (cipher encrypted)", "ESMTPA"... for Received lines:
 * SMTP or ESMTP, then S with TLS and the suffix the program set. */
void smtp_protocol(const struct smtp_server *s, struct str *out);
/* Forget the transaction (RSET, HELO, after DATA). */
void smtp_reset(struct smtp_server *s);

#endif
