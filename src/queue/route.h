/*
 * route.h: where qmail-send sends each recipient.
 *
 * Applies, in qmail's order, envnoathost (no '@'), percenthack, locals
 * and virtualdomains, and says whether the result is local or remote.
 * The lists come from control files; route_load rereads them (on HUP).
 */
#ifndef QM_ROUTE_H
#define QM_ROUTE_H

#include "lib/str.h"
#include "lib/strmap.h"

struct routes {
	struct str envnoathost;
	struct strmap locals;
	struct strmap percenthack;
	struct strmap virtualdomains; /* "user@dom", "dom", ".dom", "" */
};

enum { CHAN_LOCAL = 0, CHAN_REMOTE = 1 };

/* Read the control files (cwd = home). Returns 0, or -1 with errno and
 * the failing file name in *file. On failure r is unchanged. */
int route_load(struct routes *r, const char **file);
void route_free(struct routes *r);
/* Rewrite addr into out and return CHAN_LOCAL or CHAN_REMOTE, or -1
 * when out of memory. */
int route_rewrite(const struct routes *r, const char *addr, struct str *out);

#endif
