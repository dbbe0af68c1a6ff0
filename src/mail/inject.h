/*
 * inject.h: fixing the header of a message being injected.
 *
 * Shared by qmail-inject and qmail-ofmipd. Given the parsed header, the
 * settings and the envelope choices, inject_fix produces the header to
 * send and the envelope (sender and recipients), following
 * qmail-header(5) and mess822:
 *   - addresses in To, Cc, Bcc, Apparently-To, From, Sender, Reply-To,
 *     Mail-Reply-To, Mail-Followup-To, Errors-To, Return-Receipt-To and
 *     the Resent- variants have their hosts qualified (rewrite.h); a
 *     field that does not parse is kept as it was;
 *   - Bcc, Resent-Bcc, Apparently-To, Content-Length and Return-Path
 *     are deleted;
 *   - a Date that parses is rewritten in the normal form; one that does
 *     not is kept; Date, Message-ID and From are added when missing;
 *   - without To and Cc, "Cc: recipient list not shown: ;" is added.
 * A message with any Resent- field is a resent message: then the
 * Resent- fields are the ones added, and the recipients in the header
 * are those of Resent-To, Resent-Cc and Resent-Bcc.
 *
 * The engine never prints, never reads the body and never touches a
 * file; inject_settings_load reads the control files relative to the
 * current directory (the qmail home).
 */
#ifndef QM_INJECT_H
#define QM_INJECT_H

#include <stddef.h>
#include <time.h>

#include "lib/str.h"
#include "mail/header.h"
#include "mail/rewrite.h"

/* The longest envelope address qmail-queue takes: it refuses 1003
 * bytes or more (exit 11). */
#define INJECT_ADDR_MAX 1002

struct inject_settings {
	struct str defaultdomain, defaulthost, plusdomain, idhost;
	struct rewrite rw;
	int rewrite_file;  /* control/rewrite was used, not the defaults */
	struct str failed; /* after an error: the file or instruction */
};

/* Reads control/me, control/defaultdomain, control/defaulthost,
 * control/plusdomain, control/idhost and control/rewrite, with the
 * environment variables QMAILDEFAULTDOMAIN, QMAILDEFAULTHOST,
 * QMAILPLUSDOMAIN and QMAILIDHOST taking precedence over the files.
 * Each defaults to control/me, and without that to its own name, as
 * qmail-inject(8) says. Returns 0, or -1 with errno and s->failed
 * naming the file (or, with EINVAL, the bad instruction). */
int inject_settings_load(struct inject_settings *s);
void inject_settings_free(struct inject_settings *s);

/* Where the recipients come from (qmail-inject -a, -h, -H, -A). */
enum inject_rcpt_mode {
	INJECT_RCPT_DEFAULT, /* the given ones, or the header's if none */
	INJECT_RCPT_GIVEN,   /* the given ones only */
	INJECT_RCPT_HEADER,  /* the header's only */
	INJECT_RCPT_BOTH,    /* both */
};

/* The QMAILINJECT letters. */
enum {
	INJECT_FROM_COMMENT = 1,   /* c: From: addr (name) */
	INJECT_NO_RETURN_PATH = 2, /* s: ignore an incoming Return-Path */
	INJECT_DELETE_FROM = 4,	   /* f: replace any incoming From */
	INJECT_DELETE_MSGID = 8,   /* i: replace any incoming Message-ID */
	INJECT_VERP_RCPT = 16,	   /* r: sender gets "-@[]" */
	INJECT_VERP_MESSAGE = 32,  /* m: sender's local part gets -time.pid */
};

struct inject_opts {
	const struct rewrite *rw;
	const char *idhost;
	/* The From address made when there is none: user@host (host is
	 * qualified) with an optional personal name (NULL or ""). */
	const char *user, *host, *name;
	/* The default envelope sender, suser@shost (shost is qualified). */
	const char *suser, *shost;
	/* An explicit envelope sender, or NULL: then Return-Path, or the
	 * default. "" and "<>" mean the null sender. */
	const char *sender;
	/* Recipients given outside the header, each an address list. */
	const char *const *rcpts;
	size_t nrcpts;
	enum inject_rcpt_mode mode;
	unsigned flags;
	/* Mailing-list addresses for Mail-Followup-To (QMAILMFTFILE), each
	 * followed by NUL; NULL for none. */
	const struct str *mft;
	/* What Date and Message-ID are made of. */
	time_t now;
	unsigned long pid;
	unsigned long seq;
};

struct inject_out {
	struct str header; /* the fixed fields, each with its line end */
	struct str sender; /* empty for the null sender */
	struct str rcpts;  /* each recipient followed by NUL */
	size_t nrcpts;
	struct str error; /* after EINVAL or ENAMETOOLONG: what and where */
};

void inject_out_init(struct inject_out *out);
void inject_out_free(struct inject_out *out);

/* Fixes the header and computes the envelope. Returns 0, or -1 with
 * errno: EINVAL when a given recipient, or a header field the
 * recipients must come from, does not parse, or when an envelope
 * address would hold a CR or LF (a sender given as it is);
 * ENAMETOOLONG when an envelope address is longer than
 * INJECT_ADDR_MAX; ENOMEM, EOVERFLOW. After EINVAL and ENAMETOOLONG
 * out->error says what was wrong. */
int inject_fix(const struct header *h, const struct inject_opts *o,
	       struct inject_out *out);

/* The envelope form of a single address given outside a header (an
 * SMTP MAIL or RCPT argument, -f): surrounding <> removed, "" stays
 * empty, a parsable address is qualified; text that does not parse as
 * one address is kept as given. 0 or -1 (errno). */
int inject_envelope_address(const struct rewrite *rw, const char *s,
			    struct str *out);

#endif
