/*
 * rewrite.c: applying rewriting(5) instructions to host names.
 *
 * Each instruction is tried once, in order, on the current host. The
 * result of one instruction is what the next one sees, so the defaults
 * qualify an empty host with defaulthost and then, when defaulthost has
 * no dot, add defaultdomain. It must never read past a host's length:
 * hosts come from message headers and may hold any byte.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "lib/ctl.h"
#include "mail/rewrite.h"

void rewrite_free(struct rewrite *rw)
{
	str_free(&rw->rules);
}

static int valid_rule(const char *rule, size_t len)
{
	if (len < 2 || !strchr("=*?-", rule[0]) || rule[0] == '\0')
		return 0;
	if (memchr(rule, '\0', len))
		return 0;
	return memchr(rule + 1, ':', len - 1) != NULL;
}

int rewrite_add(struct rewrite *rw, const char *rule, size_t len)
{
	size_t old = rw->rules.len;

	if (!valid_rule(rule, len)) {
		errno = EINVAL;
		return -1;
	}
	if (str_append(&rw->rules, rule, len) < 0)
		return -1;
	if (str_append0(&rw->rules) < 0) {
		str_truncate(&rw->rules, old);
		return -1;
	}
	return 0;
}

static int add_joined(struct rewrite *rw, const char *head, const char *tail)
{
	struct str rule = STR_INIT;
	int r = -1;

	if (str_copys(&rule, head) == 0 && str_appends(&rule, tail) == 0)
		r = rewrite_add(rw, rule.s, rule.len);
	str_free(&rule);
	return r;
}

int rewrite_defaults(struct rewrite *rw, const char *defaulthost,
		     const char *plusdomain, const char *defaultdomain)
{
	if (add_joined(rw, "*.:", "") < 0 ||
	    add_joined(rw, "=:", defaulthost) < 0 ||
	    add_joined(rw, "*+:.", plusdomain) < 0 ||
	    add_joined(rw, "?:.", defaultdomain) < 0)
		return -1;
	return 0;
}

int rewrite_load(struct rewrite *rw, const char *path, struct str *bad)
{
	struct str list = STR_INIT;
	const char *rule;
	size_t pos = 0;
	int r = ctl_list(path, &list);

	if (r <= 0) {
		str_free(&list);
		return r;
	}
	while ((rule = ctl_next(&list, &pos)) != NULL) {
		if (rewrite_add(rw, rule, strlen(rule)) < 0) {
			int saved = errno;
			if (bad && saved == EINVAL)
				str_copys(bad, rule);
			str_free(&list);
			errno = saved;
			return -1;
		}
	}
	str_free(&list);
	return 1;
}

/* Does host end in post? Sets *prelen to the length before it. */
static int ends_with(const struct str *host, const char *post, size_t plen,
		     size_t *prelen)
{
	if (plen > host->len)
		return 0;
	*prelen = host->len - plen;
	return plen == 0 || strncasecmp(host->s + *prelen, post, plen) == 0;
}

static int has_dot_or_bracket(const char *s, size_t n)
{
	return memchr(s, '.', n) || memchr(s, '[', n) || memchr(s, ']', n);
}

/* Applies one instruction to host in place (through tmp). */
static int apply(const char *rule, struct str *host, struct str *tmp)
{
	const char *colon = strchr(rule, ':');
	const char *post = rule + 1, *repl = colon + 1;
	size_t plen = (size_t)(colon - post), pre = 0;

	switch (rule[0]) {
	case '=':
		if (host->len != plen ||
		    (plen && strncasecmp(host->s, post, plen) != 0))
			return 0;
		return str_copys(host, repl);
	case '*':
		if (!ends_with(host, post, plen, &pre))
			return 0;
		break;
	case '?':
		if (!ends_with(host, post, plen, &pre) ||
		    has_dot_or_bracket(host->s ? host->s : "", pre))
			return 0;
		break;
	case '-':
		if (!ends_with(host, post, plen, &pre))
			return 0;
		return str_copys(host, repl);
	default:
		return 0;
	}
	if (str_copy(tmp, host->s ? host->s : "", pre) < 0 ||
	    str_appends(tmp, repl) < 0)
		return -1;
	return str_copystr(host, tmp);
}

int rewrite_host(const struct rewrite *rw, const char *host, size_t len,
		 struct str *out)
{
	struct str tmp = STR_INIT;
	size_t pos = 0;
	const char *rule;
	int r = 0;

	if (str_copy(out, host, len) < 0)
		return -1;
	while (r == 0 && (rule = ctl_next(&rw->rules, &pos)) != NULL)
		r = apply(rule, out, &tmp);
	str_free(&tmp);
	return r;
}
