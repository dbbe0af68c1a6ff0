/*
 * ipme.h: which addresses are this host's own, IPv4 and IPv6.
 *
 * The set is every address of every interface (getifaddrs), plus the
 * unspecified addresses 0.0.0.0 and :: (connecting there reaches this
 * host), plus control/moreipme, minus control/notipme. Both files list
 * one address per line. qmail-remote must never send a message to
 * itself through an MX it is listed as; this is how it knows.
 */
#ifndef QM_REMOTE_IPME_H
#define QM_REMOTE_IPME_H

#include "lib/str.h"
#include "remote/dns.h"

#define MOREIPME_FILE "control/moreipme"
#define NOTIPME_FILE "control/notipme"

/* Append the interface addresses and the unspecified ones.
 * Returns 0, or -1 with errno. */
int ipme_interfaces(struct dns_iplist *mine);
/* Add the entries of more, then remove those of not (NUL-separated
 * lists as ctl_list makes them). Returns 0, or -1 with errno EINVAL
 * (bad then names the entry that is not an address) or ENOMEM. */
int ipme_adjust(struct dns_iplist *mine, const struct str *more,
		const struct str * not, struct str *bad);
/* All of it, from the interfaces and the control files (cwd = home).
 * Returns 0, or -1 with errno; *file names the control file at fault,
 * or is NULL when getifaddrs failed or memory ran out. */
int ipme_load(struct dns_iplist *mine, const char **file, struct str *bad);
/* True when ip is in the set. */
int ipme_is(const struct dns_iplist *mine, const struct dns_ip *ip);

#endif
