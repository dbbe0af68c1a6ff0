/*
 * route.h: control/smtproutes, the static routes of qmail-remote.
 *
 * Each line is "domain:relay" or "domain:relay:port" (qmail-control(5)).
 * A domain ".dom" matches every host below dom; an empty domain is the
 * default route. An empty relay means "look up the MX as usual" (with a
 * port, the MX hosts are reached on that port). A relay may be a name,
 * looked up for AAAA and A only, or an address literal "[1.2.3.4]",
 * "[IPv6:2001:db8::1]". Lookups try the host itself, then each ".dom"
 * suffix from the most specific, then the default. A line that does not
 * parse is an error, never skipped: a broken route must not silently
 * send mail elsewhere. The first line for a domain wins.
 */
#ifndef QM_REMOTE_ROUTE_H
#define QM_REMOTE_ROUTE_H

#include "lib/str.h"
#include "lib/strmap.h"

#define SMTPROUTES_FILE "control/smtproutes"
#define SMTP_PORT 25

struct smtproutes {
	struct strmap map; /* domain -> "relay[:port]" as written */
};

#define SMTPROUTES_INIT                                                        \
	{                                                                      \
		STRMAP_INIT                                                    \
	}

/* Add one line. Returns 0, or -1 with errno EINVAL (no colon, a bad
 * port, a malformed literal) or ENOMEM. */
int smtproutes_add(struct smtproutes *r, const char *line, size_t len);
/* Read control/smtproutes (cwd = home) into r, replacing what it held;
 * a missing file means no routes. Returns 0, or -1 with errno (r is then
 * unchanged); on EINVAL, bad holds the offending line. */
int smtproutes_load(struct smtproutes *r, struct str *bad);
void smtproutes_free(struct smtproutes *r);

/* The route for host: returns 1 and sets relay (empty: use the MX) and
 * port, 0 when no route applies, -1 when out of memory. */
int smtproutes_find(const struct smtproutes *r, const char *host,
		    struct str *relay, unsigned *port);

#endif
