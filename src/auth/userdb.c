/*
 * userdb.c: parsing and writing virtual-user entries.
 *
 * The same field rules apply to what qmail-passwd writes and to what
 * checkpassword-cdb reads, so a file edited by hand is held to them too.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "auth/userdb.h"
#include "lib/strmap.h"

int userdb_login_ok(const char *p, size_t n)
{
	if (n == 0 || n > USERDB_LOGIN_MAX || p[0] == '#')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f || p[i] == ':')
			return 0;
	return 1;
}

/* A hash: crypt's alphabet is printable and never holds ':'. */
static int hash_ok(const char *p, size_t n)
{
	if (n == 0 || n >= PWHASH_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f || p[i] == ':')
			return 0;
	return 1;
}

static int home_ok(const char *p, size_t n)
{
	if (n == 0 || n > USERDB_HOME_MAX || p[0] != '/')
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	return 1;
}

/* A decimal id without sign or leading zeros, below UINT_MAX. */
static int id_parse(const char *p, size_t n, unsigned long *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 10 || (n > 1 && p[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v >= UINT_MAX)
		return -1;
	*out = v;
	return 0;
}

/* The next ':'-ended field of p[*pos..n); 0, or -1 when there is no
 * ':' left. */
static int next_field(const char *p, size_t n, size_t *pos, const char **f,
		      size_t *flen)
{
	const char *colon = memchr(p + *pos, ':', n - *pos);

	if (!colon)
		return -1;
	*f = p + *pos;
	*flen = (size_t)(colon - *f);
	*pos += *flen + 1;
	return 0;
}

int userdb_value(const char *p, size_t n, struct userdb_entry *e)
{
	const char *hash, *uid, *gid, *home;
	size_t hlen, ulen, glen, homelen, pos = 0;

	if (next_field(p, n, &pos, &hash, &hlen) < 0 ||
	    next_field(p, n, &pos, &uid, &ulen) < 0 ||
	    next_field(p, n, &pos, &gid, &glen) < 0)
		goto bad;
	home = p + pos;
	homelen = n - pos;
	if (!hash_ok(hash, hlen) || !home_ok(home, homelen) ||
	    id_parse(uid, ulen, &e->uid) < 0 ||
	    id_parse(gid, glen, &e->gid) < 0 || e->uid == 0)
		goto bad;
	memcpy(e->hash, hash, hlen);
	e->hash[hlen] = 0;
	memcpy(e->home, home, homelen);
	e->home[homelen] = 0;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

int userdb_line(const char *p, size_t n, struct userdb_entry *e)
{
	const char *colon = memchr(p, ':', n);
	size_t llen;

	if (!colon)
		goto bad;
	llen = (size_t)(colon - p);
	if (!userdb_login_ok(p, llen) ||
	    userdb_value(colon + 1, n - llen - 1, e) < 0)
		goto bad;
	memcpy(e->login, p, llen);
	e->login[llen] = 0;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

int userdb_is_comment(const char *p, size_t n)
{
	if (n && p[0] == '#')
		return 1;
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return 0;
	return 1;
}

int userdb_format_value(struct str *out, const struct userdb_entry *e)
{
	if (str_appends(out, e->hash) < 0 || str_appendc(out, ':') < 0 ||
	    str_appendnum(out, e->uid) < 0 || str_appendc(out, ':') < 0 ||
	    str_appendnum(out, e->gid) < 0 || str_appendc(out, ':') < 0 ||
	    str_appends(out, e->home) < 0)
		return -1;
	return 0;
}

int userdb_format_line(struct str *out, const struct userdb_entry *e)
{
	if (str_appends(out, e->login) < 0 || str_appendc(out, ':') < 0 ||
	    userdb_format_value(out, e) < 0 || str_appendc(out, '\n') < 0)
		return -1;
	return 0;
}

/* The next line of text[*pos..n): its start and length without the
 * newline. 0 at the end. */
static int next_line(const char *text, size_t n, size_t *pos, const char **l,
		     size_t *len)
{
	const char *nl;

	if (*pos >= n)
		return 0;
	*l = text + *pos;
	nl = memchr(*l, '\n', n - *pos);
	*len = nl ? (size_t)(nl - *l) : n - *pos;
	*pos += *len + (nl != NULL);
	return 1;
}

static void apply_change(struct userdb_entry *old, const struct userdb_entry *e,
			 unsigned fields)
{
	if (fields & USERDB_HASH)
		memcpy(old->hash, e->hash, sizeof old->hash);
	if (fields & USERDB_UID)
		old->uid = e->uid;
	if (fields & USERDB_GID)
		old->gid = e->gid;
	if (fields & USERDB_HOME)
		memcpy(old->home, e->home, sizeof old->home);
}

/* Append e as a line, checking that it reads back as written: an entry
 * that userdb_line would refuse is never written. 0 or -1. */
static int put_entry(struct str *out, const struct userdb_entry *e)
{
	static struct userdb_entry back;
	size_t start = out->len;

	if (userdb_format_line(out, e) < 0)
		return -1;
	if (userdb_line(out->s + start, out->len - start - 1, &back) < 0 ||
	    strcmp(back.login, e->login) != 0) {
		str_truncate(out, start);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* One line of userdb_edit: kept, changed or dropped. 0 or -1. */
static int edit_line(const char *l, size_t len, enum userdb_op op,
		     const struct userdb_entry *e, unsigned fields,
		     struct strmap *seen, struct str *out, int *found)
{
	static struct userdb_entry cur;

	if (userdb_is_comment(l, len))
		return str_append(out, l, len) < 0 || str_appendc(out, '\n') < 0
			   ? -1
			   : 0;
	if (userdb_line(l, len, &cur) < 0)
		return -1;
	size_t klen = strlen(cur.login);
	if (strmap_get(seen, cur.login, klen)) {
		errno = EINVAL;
		return -1;
	}
	if (strmap_put(seen, cur.login, klen, "") < 0)
		return -1;
	if (op != USERDB_CHECK && strcasecmp(cur.login, e->login) == 0) {
		if (op == USERDB_ADD) {
			errno = EEXIST;
			return -1;
		}
		if (strcmp(cur.login, e->login) == 0) {
			*found = 1;
			if (op == USERDB_REMOVE)
				return 0;
			apply_change(&cur, e, fields);
		}
	}
	return put_entry(out, &cur);
}

int userdb_edit(const char *text, size_t n, enum userdb_op op,
		const struct userdb_entry *e, unsigned fields, struct str *out,
		unsigned long *line)
{
	struct strmap seen = STRMAP_INIT;
	const char *l;
	size_t len, pos = 0;
	int found = 0, r = 0;

	*line = 0;
	while (r == 0 && next_line(text, n, &pos, &l, &len)) {
		++*line;
		r = edit_line(l, len, op, e, fields, &seen, out, &found);
	}
	strmap_free(&seen);
	if (r < 0)
		return -1;
	*line = 0;
	if (op == USERDB_ADD)
		return put_entry(out, e);
	if ((op == USERDB_CHANGE || op == USERDB_REMOVE) && !found) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

int userdb_each(const char *text, size_t n,
		int (*fn)(void *ctx, const struct userdb_entry *e), void *ctx)
{
	static struct userdb_entry cur;
	const char *l;
	size_t len, pos = 0;

	while (next_line(text, n, &pos, &l, &len)) {
		if (userdb_is_comment(l, len))
			continue;
		if (userdb_line(l, len, &cur) < 0)
			return -1;
		int r = fn(ctx, &cur);
		if (r)
			return r;
	}
	return 0;
}
