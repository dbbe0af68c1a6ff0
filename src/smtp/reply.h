/*
 * reply.h: reading SMTP replies as a client (RFC 5321 4.2).
 *
 * A reply is one or more lines "CODE-text" ... "CODE text", all with the
 * same three-digit code. Lines and line counts are bounded; anything that
 * breaks the syntax is a protocol error, never a guess. The text of all
 * lines is kept, joined with '/', for reports in qmail-remote's format.
 * The keywords of an EHLO reply are read here too, from the lines kept.
 */
#ifndef QM_SMTP_REPLY_H
#define QM_SMTP_REPLY_H

#include "lib/buf.h"
#include "lib/str.h"

#define REPLY_LINE_MAX 2048
#define REPLY_LINES_MAX 100

enum reply_status {
	REPLY_OK = 0,
	REPLY_EOF,	/* the server closed the connection */
	REPLY_TIMEOUT,	/* no answer in time */
	REPLY_IOERROR,	/* read error (errno) */
	REPLY_PROTOCOL, /* garbage, a line too long, mixed codes... */
};

struct smtp_reply {
	int code;	  /* 200..599 when REPLY_OK (1xx is refused) */
	struct str text;  /* "250-a/250 b" style, unsafe bytes replaced */
	struct str lines; /* each line without CRLF, NUL-separated */
};

/* Read one reply. */
enum reply_status reply_read(struct buf *in, struct smtp_reply *r);
void reply_free(struct smtp_reply *r);

/* What a server offers in its EHLO reply. */
struct smtp_caps {
	int esmtp; /* it answered EHLO at all */
	int pipelining, eightbitmime, smtputf8, starttls;
	int auth_plain, auth_login;
	int has_size;
	unsigned long long size; /* 0: no limit announced */
};

/*
 * The keywords of a 2xx EHLO reply read by reply_read: every line but
 * the first (the greeting) is "CODE-keyword params" or "CODE keyword
 * params", params separated by spaces; keywords and mechanism names are
 * case-insensitive. AUTH lists mechanisms after a space or, from old
 * servers, after '=' ("AUTH=PLAIN LOGIN"). SIZE's one parameter is the
 * limit when it is all digits (saturating at ULLONG_MAX); without it, or
 * with anything else, SIZE is offered with no limit known. Unknown
 * keywords are ignored.
 */
void reply_caps(const struct smtp_reply *r, struct smtp_caps *c);

#endif
