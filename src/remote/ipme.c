/*
 * ipme.c: this host's own addresses.
 *
 * Interface addresses come from getifaddrs; the control files only add
 * or remove. An entry that is not an address is an error, never
 * skipped: a typo in notipme must not make us deliver to ourselves.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/ctl.h"
#include "remote/ipme.h"

static int add_unique(struct dns_iplist *mine, const struct dns_ip *ip)
{
	if (ipme_is(mine, ip))
		return 0;
	return dns_iplist_add(mine, ip);
}

static int add_sockaddr(struct dns_iplist *mine, const struct sockaddr *sa)
{
	struct dns_ip ip;

	memset(&ip, 0, sizeof ip);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		ip.af = AF_INET;
		memcpy(ip.a, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		ip.af = AF_INET6;
		memcpy(ip.a, &in6->sin6_addr, 16);
		dns_ip_normalize(&ip);
	} else {
		return 0;
	}
	return add_unique(mine, &ip);
}

int ipme_interfaces(struct dns_iplist *mine)
{
	struct ifaddrs *list, *ifa;
	struct dns_ip any;
	int res = 0;

	if (getifaddrs(&list) < 0)
		return -1;
	for (ifa = list; ifa && res == 0; ifa = ifa->ifa_next)
		if (ifa->ifa_addr)
			res = add_sockaddr(mine, ifa->ifa_addr);
	freeifaddrs(list);
	if (res < 0)
		return -1;
	memset(&any, 0, sizeof any);
	any.af = AF_INET;
	if (add_unique(mine, &any) < 0)
		return -1;
	any.af = AF_INET6;
	return add_unique(mine, &any);
}

static void remove_ip(struct dns_iplist *mine, const struct dns_ip *ip)
{
	size_t kept = 0;

	for (size_t i = 0; i < mine->n; i++)
		if (!dns_ip_equal(&mine->v[i], ip))
			mine->v[kept++] = mine->v[i];
	mine->n = kept;
}

/* Parse every entry of list; apply add or remove to each. */
static int apply(struct dns_iplist *mine, const struct str *list, int add,
		 struct str *bad)
{
	const char *entry;
	size_t pos = 0;
	struct dns_ip ip;

	while ((entry = ctl_next(list, &pos))) {
		if (dns_ip_parse(entry, &ip) < 0) {
			if (str_copys(bad, entry) < 0)
				return -1;
			errno = EINVAL;
			return -1;
		}
		if (!add)
			remove_ip(mine, &ip);
		else if (add_unique(mine, &ip) < 0)
			return -1;
	}
	return 0;
}

int ipme_adjust(struct dns_iplist *mine, const struct str *more,
		const struct str * not, struct str *bad)
{
	str_clear(bad);
	if (apply(mine, more, 1, bad) < 0)
		return -1;
	return apply(mine, not, 0, bad);
}

int ipme_load(struct dns_iplist *mine, const char **file, struct str *bad)
{
	struct str more = STR_INIT, not = STR_INIT;
	int res = -1, saved;

	*file = NULL;
	str_clear(bad);
	if (ipme_interfaces(mine) < 0)
		return -1;
	if (ctl_list(MOREIPME_FILE, &more) < 0 ||
	    apply(mine, &more, 1, bad) < 0)
		*file = MOREIPME_FILE;
	else if (ctl_list(NOTIPME_FILE, &not ) < 0 ||
		 apply(mine, &not, 0, bad) < 0)
		*file = NOTIPME_FILE;
	else
		res = 0;
	saved = errno;
	str_free(&more);
	str_free(&not );
	errno = saved;
	return res;
}

int ipme_is(const struct dns_iplist *mine, const struct dns_ip *ip)
{
	for (size_t i = 0; i < mine->n; i++)
		if (dns_ip_equal(&mine->v[i], ip))
			return 1;
	return 0;
}
