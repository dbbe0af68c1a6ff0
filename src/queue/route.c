/*
 * route.c: recipient rewriting for qmail-send (qmail-send(8)).
 *
 * Lookups are case-insensitive and never modify the address except as
 * the rules say. virtualdomains is tried most specific first: the whole
 * address, the domain, then each wildcard ".suffix", then the catch-all
 * (an empty domain). An empty prepend is an exception: the address is
 * not virtual.
 */
#include <errno.h>
#include <string.h>

#include "lib/ctl.h"
#include "queue/route.h"

static int load_set(const char *fn, struct strmap *m)
{
	struct str list = STR_INIT;
	size_t pos = 0;
	const char *e;

	if (ctl_list(fn, &list) < 0)
		return -1;
	while ((e = ctl_next(&list, &pos)))
		if (strmap_put(m, e, strlen(e), "") < 0) {
			str_free(&list);
			return -1;
		}
	str_free(&list);
	return 0;
}

static int load_virtual(const char *fn, struct strmap *m)
{
	struct str list = STR_INIT;
	size_t pos = 0;
	const char *e;

	if (ctl_list(fn, &list) < 0)
		return -1;
	while ((e = ctl_next(&list, &pos))) {
		const char *colon = strchr(e, ':');
		if (!colon)
			continue; /* qmail ignores such lines too */
		if (strmap_put(m, e, (size_t)(colon - e), colon + 1) < 0) {
			str_free(&list);
			return -1;
		}
	}
	str_free(&list);
	return 0;
}

int route_load(struct routes *r, const char **file)
{
	struct routes n = {STR_INIT, STRMAP_INIT, STRMAP_INIT, STRMAP_INIT};

	*file = "control/envnoathost";
	if (ctl_line_or_me(*file, &n.envnoathost) < 0)
		goto fail;
	if (n.envnoathost.len == 0 &&
	    str_copys(&n.envnoathost, "envnoathost") < 0)
		goto fail;
	*file = "control/locals";
	if (load_set(*file, &n.locals) < 0)
		goto fail;
	if (n.locals.count == 0) {
		/* locals defaults to me. */
		struct str me = STR_INIT;
		*file = "control/me";
		if (ctl_line(*file, &me, NULL) < 0)
			goto fail;
		if (me.len && strmap_put(&n.locals, me.s, me.len, "") < 0) {
			str_free(&me);
			goto fail;
		}
		str_free(&me);
	}
	*file = "control/percenthack";
	if (load_set(*file, &n.percenthack) < 0)
		goto fail;
	*file = "control/virtualdomains";
	if (load_virtual(*file, &n.virtualdomains) < 0)
		goto fail;
	route_free(r);
	*r = n;
	return 0;
fail:
	route_free(&n);
	return -1;
}

void route_free(struct routes *r)
{
	str_free(&r->envnoathost);
	strmap_free(&r->locals);
	strmap_free(&r->percenthack);
	strmap_free(&r->virtualdomains);
}

/* The prepend for a virtual address, or NULL. */
static const char *virtual_prepend(const struct routes *r, const char *addr,
				   const char *domain)
{
	const char *v;

	if ((v = strmap_get(&r->virtualdomains, addr, strlen(addr))))
		return v;
	if ((v = strmap_get(&r->virtualdomains, domain, strlen(domain))))
		return v;
	for (const char *d = domain; (d = strchr(d, '.')); d++)
		if ((v = strmap_get(&r->virtualdomains, d, strlen(d))))
			return v;
	return strmap_get(&r->virtualdomains, "", 0);
}

int route_rewrite(const struct routes *r, const char *addr, struct str *out)
{
	if (str_copys(out, addr) < 0)
		return -1;
	if (!memchr(out->s, '@', out->len) &&
	    (str_appendc(out, '@') < 0 ||
	     str_append(out, r->envnoathost.s, r->envnoathost.len) < 0))
		return -1;

	/* percenthack: u%h@dom becomes u@h, repeatedly. */
	for (;;) {
		char *at = strrchr(out->s, '@');
		if (!strmap_get(&r->percenthack, at + 1, strlen(at + 1)))
			break;
		*at = 0;
		char *pct = strrchr(out->s, '%');
		if (!pct) {
			*at = '@';
			break;
		}
		*pct = '@';
		str_truncate(out, (size_t)(at - out->s));
	}

	char *at = strrchr(out->s, '@');
	const char *domain = at + 1;
	if (strmap_get(&r->locals, domain, strlen(domain)))
		return CHAN_LOCAL;
	const char *prepend = virtual_prepend(r, out->s, domain);
	if (!prepend || !*prepend)
		return CHAN_REMOTE;
	/* prepend-user@domain */
	struct str v = STR_INIT;
	if (str_copys(&v, prepend) < 0 || str_appendc(&v, '-') < 0 ||
	    str_appends(&v, out->s) < 0 || str_copystr(out, &v) < 0) {
		str_free(&v);
		return -1;
	}
	str_free(&v);
	return CHAN_LOCAL;
}
