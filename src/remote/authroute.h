/*
 * authroute.h: credentials for SMTP AUTH to relays, and the routes that
 * carry them (qmail-authroutes(5)).
 *
 * control/authroutes holds two kinds of line, each in the syntax of the
 * qmail AUTH patch it comes from, so that lines can be moved over as
 * they are:
 *   domain:relay[:port] user password      by recipient domain, as the
 *                                          smtproutes of the qmail-remote
 *                                          AUTH patches;
 *   sender[:relay[:port]][|user|password]  by envelope sender, as the
 *                                          authsenders of the
 *                                          qmail-authentication patch.
 * A user name that starts with '-' allows AUTH without TLS for that
 * line; the '-' is not part of the name. control/smtproutes may carry
 * "user password" after a route too. A file that holds credentials must
 * be owned by the user qmail-remote runs as and be closed to everyone
 * else, or it is refused.
 *
 * Credentials are only ever given to a relay named in these files,
 * never to a host found in DNS. This module never prints or logs; every
 * copy of a secret it makes is wiped when it is freed.
 */
#ifndef QM_REMOTE_AUTHROUTE_H
#define QM_REMOTE_AUTHROUTE_H

#include <stddef.h>
#include <sys/stat.h>

#include "lib/str.h"
#include "lib/strmap.h"
#include "remote/route.h"

#define AUTHROUTES_FILE "control/authroutes"
/* The qmail-authentication patch's file: not read, see authroutes_load. */
#define AUTHSENDERS_FILE "control/authsenders"
/* Longest user name, and longest password, in bytes. */
#define AUTHCRED_MAX 512

struct authcred {
	char *user, *pass; /* NUL-terminated; NULL when the entry has none */
	int cleartext;	   /* AUTH is allowed without TLS */
};

/* A sender entry, or a recipient route that carries credentials. */
struct authroute {
	char *relay;   /* "" when a sender entry names no relay */
	unsigned port; /* SMTP_PORT when none is given */
	struct authcred cred;
};

struct authroutes {
	struct authroute *v;
	size_t n, cap;
	struct strmap senders; /* sender key -> index in v */
	/* Every recipient route key, from both files: "" when that route
	 * has no credentials, else the index in v. */
	struct strmap routes;
};

#define AUTHROUTES_INIT                                                        \
	{                                                                      \
		NULL, 0, 0, STRMAP_INIT, STRMAP_INIT                           \
	}

/* Add one line of control/authroutes; recipient routes also go into r.
 * Returns 0, or -1 with errno EINVAL (not a valid line), ENAMETOOLONG (a
 * user name or password over AUTHCRED_MAX) or ENOMEM. The first line
 * for a key wins, as in smtproutes. */
int authroutes_add(struct authroutes *a, struct smtproutes *r, const char *line,
		   size_t len);
/* Add one line of control/smtproutes, with or without "user password"
 * after the route. Returns 1 when it carried credentials, 0 when not,
 * -1 as authroutes_add. */
int authroutes_add_smtproute(struct authroutes *a, struct smtproutes *r,
			     const char *line, size_t len);

/* True when a file holding secrets may be used: owned by the effective
 * user and with no permission for group or others. */
int authroutes_private(const struct stat *st);

enum authload_error {
	AUTHLOAD_SYSTEM,   /* errno tells */
	AUTHLOAD_LINE,	   /* bad holds the line, without its secrets */
	AUTHLOAD_OPEN,	   /* the file holds secrets but is not private */
	AUTHLOAD_OBSOLETE, /* control/authsenders exists */
};

/* Read control/authroutes, then control/smtproutes (cwd = home), into a
 * and r, replacing what they held. A missing file means no entries.
 * Returns 0, or -1 with *why, *file (the path concerned) and errno; a
 * and r are then unchanged. control/authsenders is never read: when it
 * exists, loading fails, so that mail it was meant to route can never
 * go out some other way. */
int authroutes_load(struct authroutes *a, struct smtproutes *r,
		    enum authload_error *why, const char **file,
		    struct str *bad);
/* Wipe every secret, then free. */
void authroutes_free(struct authroutes *a);

/* The sender entry for sender: the address, then "@domain", then each
 * ".domain" above it, most specific first, then the empty key. NULL
 * when none applies. */
const struct authroute *authroutes_for_sender(const struct authroutes *a,
					      const char *sender);
/* The credentials of the recipient route that smtproutes_find picks for
 * host, or NULL when that route has none (or there is no route). */
const struct authcred *authroutes_for_host(const struct authroutes *a,
					   const char *host);

#endif
