/*
 * authroute.c: control/authroutes and the credentials in smtproutes
 * (rules in authroute.h and qmail-authroutes(5)).
 *
 * Files that may hold secrets are read once through one descriptor,
 * which is also the one whose owner and mode are checked. Nothing here
 * prints, and no secret is ever copied into an error: a bad line is
 * reported by its part before the first blank or '|'. Every buffer
 * that held a secret is wiped before it is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/sasl.h"
#include "lib/checked.h"
#include "lib/ctl.h"
#include "remote/authroute.h"

/* --- small pieces --- */

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static size_t find_char(const char *p, size_t n, char c)
{
	const char *hit = memchr(p, c, n);
	return hit ? (size_t)(hit - p) : n;
}

static size_t find_blank(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && !is_blank(p[i]))
		i++;
	return i;
}

static size_t skip_blanks(const char *p, size_t n, size_t i)
{
	while (i < n && is_blank(p[i]))
		i++;
	return i;
}

static char *copy_text(const char *p, size_t n)
{
	size_t size;
	char *s;

	if (size_add(n, 1, &size) < 0)
		return NULL;
	s = malloc(size);
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void free_secret(char **s)
{
	if (*s) {
		sasl_wipe(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

static void cred_free(struct authcred *c)
{
	free_secret(&c->user);
	free_secret(&c->pass);
	c->cleartext = 0;
}

static int invalid(void)
{
	errno = EINVAL;
	return -1;
}

/* --- credentials --- */

/* A user name must not be able to forge a line anywhere it goes. */
static int user_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 32 || p[i] == 127)
			return 0;
	return n > 0;
}

/* A leading '-' on the user allows AUTH without TLS (the convention of
 * the qmail-remote AUTH patch). */
static int make_cred(struct authcred *c, const char *user, size_t ulen,
		     const char *pass, size_t plen)
{
	c->user = c->pass = NULL;
	c->cleartext = ulen > 0 && user[0] == '-';
	if (c->cleartext) {
		user++;
		ulen--;
	}
	if (!user_ok(user, ulen) || memchr(pass, '\0', plen))
		return invalid();
	if (ulen > AUTHCRED_MAX || plen > AUTHCRED_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	c->user = copy_text(user, ulen);
	c->pass = c->user ? copy_text(pass, plen) : NULL;
	if (!c->pass) {
		cred_free(c);
		return -1;
	}
	return 0;
}

/* --- the table --- */

/* Takes over c (and wipes it on failure). */
static int push(struct authroutes *a, const char *relay, size_t rlen,
		unsigned port, struct authcred *c, size_t *index)
{
	if (a->n == a->cap) {
		size_t want, bytes;
		if (size_mul(a->cap ? a->cap : 4, 2, &want) < 0 ||
		    size_mul(want, sizeof *a->v, &bytes) < 0)
			goto fail;
		void *v = realloc(a->v, bytes);
		if (!v) {
			errno = ENOMEM;
			goto fail;
		}
		a->v = v;
		a->cap = want;
	}
	a->v[a->n].relay = copy_text(relay, rlen);
	if (!a->v[a->n].relay)
		goto fail;
	a->v[a->n].port = port;
	a->v[a->n].cred = *c;
	*index = a->n++;
	return 0;
fail:
	cred_free(c);
	return -1;
}

static int put_index(struct strmap *m, const char *key, size_t klen,
		     size_t index)
{
	char num[32];

	snprintf(num, sizeof num, "%zu", index);
	return strmap_put(m, key, klen, num);
}

static const struct authroute *entry_at(const struct authroutes *a,
					const char *value)
{
	char *end;
	unsigned long long i;

	if (!value || !*value)
		return NULL;
	i = strtoull(value, &end, 10);
	return *end == '\0' && i < a->n ? &a->v[i] : NULL;
}

/* --- sender entries: sender[:relay[:port]][|user|password] --- */

/* "", "@domain", ".domain" or "local@domain". */
static int sender_key_ok(const char *k, size_t n)
{
	size_t at = n;

	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)k[i] <= ' ' || k[i] == 127)
			return 0;
		if (k[i] == '@')
			at = i;
	}
	if (n == 0)
		return 1;
	if (k[0] == '.')
		return at == n && n > 1 && k[1] != '.';
	return at < n && at + 1 < n;
}

/* The relay and port of "relay[:port]", checked by the smtproutes
 * rules themselves. An empty text means no relay. */
static int parse_relay(const char *v, size_t n, struct str *relay,
		       unsigned *port)
{
	struct smtproutes scratch = SMTPROUTES_INIT;
	struct str line = STR_INIT;
	int res = -1, saved;

	*port = SMTP_PORT;
	str_clear(relay);
	if (n == 0)
		return str_copys(relay, "");
	if (str_copys(&line, "x:") < 0 || str_append(&line, v, n) < 0)
		goto out;
	if (smtproutes_add(&scratch, line.s, line.len) < 0)
		goto out;
	res = smtproutes_find(&scratch, "x", relay, port) == 1 ? 0 : -1;
	if (res == 0 && relay->len == 0) {
		/* A port with no relay would mean the MX hosts. */
		errno = EINVAL;
		res = -1;
	}
out:
	saved = errno;
	smtproutes_free(&scratch);
	str_free(&line);
	errno = saved;
	return res;
}

static int add_sender(struct authroutes *a, const char *line, size_t len,
		      size_t bar)
{
	size_t colon = find_char(line, bar, ':');
	struct authcred c = {NULL, NULL, 0};
	struct str relay = STR_INIT;
	unsigned port;
	size_t index;
	int res = -1;

	if (!sender_key_ok(line, colon))
		return invalid();
	if (parse_relay(line + colon + (colon < bar),
			bar - colon - (colon < bar), &relay, &port) < 0) {
		str_free(&relay);
		return -1;
	}
	if (bar < len) {
		const char *creds = line + bar + 1;
		size_t n = len - bar - 1, ubar = find_char(creds, n, '|');
		if (ubar == n) {
			errno = EINVAL;
			goto out;
		}
		if (make_cred(&c, creds, ubar, creds + ubar + 1, n - ubar - 1) <
		    0)
			goto out;
	} else if (relay.len == 0) {
		errno = EINVAL; /* neither a relay nor credentials */
		goto out;
	}
	if (strmap_get(&a->senders, line, colon)) {
		cred_free(&c); /* the first line for a sender wins */
		res = 0;
		goto out;
	}
	if (push(a, relay.s, relay.len, port, &c, &index) < 0 ||
	    put_index(&a->senders, line, colon, index) < 0)
		goto out;
	res = 0;
out:
	str_free(&relay);
	return res;
}

/* --- recipient routes: domain:relay[:port] user password --- */

/* Records the route's key (first line wins, as in smtproutes), with
 * its credentials when it has any. Takes over c. */
static int note_route(struct authroutes *a, const char *key, size_t klen,
		      const struct str *relay, unsigned port,
		      struct authcred *c)
{
	size_t index;

	if (strmap_get(&a->routes, key, klen)) {
		cred_free(c);
		return 0;
	}
	if (!c->user)
		return strmap_put(&a->routes, key, klen, "");
	if (push(a, relay->s, relay->len, port, c, &index) < 0)
		return -1;
	return put_index(&a->routes, key, klen, index);
}

/* A route that carries credentials must name a relay: they are never
 * given to the MX hosts of a domain. */
static int add_route_with_cred(struct authroutes *a, struct smtproutes *r,
			       const char *line, size_t len, size_t blank)
{
	size_t colon = find_char(line, blank, ':');
	size_t u = skip_blanks(line, len, blank);
	size_t uend = u + find_blank(line + u, len - u);
	size_t p = skip_blanks(line, len, uend);
	struct authcred c = {NULL, NULL, 0};
	struct str relay = STR_INIT;
	unsigned port;
	int res = -1;

	if (colon == blank || memchr(line, '|', blank) || p == len)
		return invalid();
	if (parse_relay(line + colon + 1, blank - colon - 1, &relay, &port) < 0)
		goto out;
	if (relay.len == 0) {
		errno = EINVAL;
		goto out;
	}
	if (make_cred(&c, line + u, uend - u, line + p, len - p) < 0)
		goto out;
	if (smtproutes_add(r, line, blank) < 0) {
		cred_free(&c);
		goto out;
	}
	res = note_route(a, line, colon, &relay, port, &c);
out:
	str_free(&relay);
	return res;
}

int authroutes_add(struct authroutes *a, struct smtproutes *r, const char *line,
		   size_t len)
{
	size_t blank = find_blank(line, len), bar = find_char(line, len, '|');

	if (memchr(line, '\0', len))
		return invalid();
	if (bar < blank || blank == len)
		return add_sender(a, line, len, bar);
	return add_route_with_cred(a, r, line, len, blank);
}

int authroutes_add_smtproute(struct authroutes *a, struct smtproutes *r,
			     const char *line, size_t len)
{
	size_t blank = find_blank(line, len);
	struct authcred none = {NULL, NULL, 0};

	if (memchr(line, '\0', len))
		return invalid();
	if (blank < len)
		return add_route_with_cred(a, r, line, len, blank) < 0 ? -1 : 1;
	/* A '|' here would be taken for part of a relay name, and a bounce
	 * would then show the credentials after it. */
	if (memchr(line, '|', len))
		return invalid();
	if (smtproutes_add(r, line, len) < 0)
		return -1;
	return note_route(a, line, find_char(line, len, ':'), NULL, 0, &none);
}

/* --- reading the files --- */

int authroutes_private(const struct stat *st)
{
	return st->st_uid == geteuid() && (st->st_mode & 077) == 0;
}

static int check_kind(const struct stat *st)
{
	if (S_ISDIR(st->st_mode)) {
		errno = EISDIR;
		return -1;
	}
	if (!S_ISREG(st->st_mode) && !S_ISCHR(st->st_mode))
		return invalid();
	if (S_ISREG(st->st_mode) && st->st_size > (off_t)CTL_MAX) {
		errno = EFBIG;
		return -1;
	}
	return 0;
}

static int read_all(int fd, struct str *raw)
{
	char chunk[4096];
	int res = 0;

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			res = n < 0 ? -1 : 0;
			break;
		}
		if (str_append(raw, chunk, (size_t)n) < 0) {
			res = -1;
			break;
		}
		if (raw->len > CTL_MAX) {
			errno = EFBIG;
			res = -1;
			break;
		}
	}
	sasl_wipe(chunk, sizeof chunk);
	return res;
}

/* The whole file, and the status of the very descriptor it was read
 * from. Returns 1, 0 when it does not exist, -1 on error. */
static int read_file(const char *path, struct str *raw, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int saved;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	/* Room for all of it at once: growing would leave copies of the
	 * secrets behind in freed memory. */
	if (fstat(fd, st) < 0 || check_kind(st) < 0 ||
	    (S_ISREG(st->st_mode) &&
	     str_reserve(raw, (size_t)st->st_size + 1) < 0) ||
	    read_all(fd, raw) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 1;
}

/* The next kept line of raw (ctl_list's rules): trailing blanks and CR
 * removed, blank lines and '#' comments skipped. */
static const char *next_line(const struct str *raw, size_t *pos, size_t *len)
{
	while (*pos < raw->len) {
		const char *line = raw->s + *pos;
		size_t n = find_char(line, raw->len - *pos, '\n');
		*pos += n + 1;
		while (n > 0 && (is_blank(line[n - 1]) || line[n - 1] == '\r'))
			n--;
		if (n == 0 || line[0] == '#')
			continue;
		*len = n;
		return line;
	}
	return NULL;
}

struct loader {
	struct authroutes a;
	struct smtproutes r;
	struct str raw;
	enum authload_error *why;
	const char **file;
	struct str *bad;
};

static int fail_line(struct loader *l, const char *line, size_t len)
{
	size_t pub = find_blank(line, len);
	size_t bar = find_char(line, pub, '|');
	int saved = errno;

	*l->why = AUTHLOAD_LINE;
	if (str_copy(l->bad, line, bar) < 0) {
		*l->why = AUTHLOAD_SYSTEM;
		return -1;
	}
	errno = saved;
	return -1;
}

/* One file, each line through add; secrets (1 from add) make it
 * subject to the private check, and so does any line of authroutes. */
static int load_file(struct loader *l, const char *path, int all_secret,
		     int (*add)(struct authroutes *, struct smtproutes *,
				const char *, size_t))
{
	struct stat st;
	const char *line;
	size_t pos = 0, len = 0;
	int secret = 0, r;

	*l->file = path;
	sasl_wipe(l->raw.s, l->raw.cap);
	str_clear(&l->raw);
	r = read_file(path, &l->raw, &st);
	if (r <= 0) {
		*l->why = AUTHLOAD_SYSTEM;
		return r;
	}
	*l->why = AUTHLOAD_SYSTEM;
	while ((line = next_line(&l->raw, &pos, &len))) {
		r = add(&l->a, &l->r, line, len);
		if (r < 0 && (errno == EINVAL || errno == ENAMETOOLONG))
			return fail_line(l, line, len);
		if (r < 0)
			return -1;
		secret |= all_secret || r > 0;
	}
	if (secret && !authroutes_private(&st)) {
		*l->why = AUTHLOAD_OPEN;
		errno = EPERM;
		return -1;
	}
	return 0;
}

static int add_authroute(struct authroutes *a, struct smtproutes *r,
			 const char *line, size_t len)
{
	return authroutes_add(a, r, line, len);
}

int authroutes_load(struct authroutes *a, struct smtproutes *r,
		    enum authload_error *why, const char **file,
		    struct str *bad)
{
	struct loader l = {
	    AUTHROUTES_INIT, SMTPROUTES_INIT, STR_INIT, why, file, bad};
	struct stat st;
	int saved;

	str_clear(bad);
	*file = AUTHSENDERS_FILE;
	if (lstat(AUTHSENDERS_FILE, &st) == 0) {
		*why = AUTHLOAD_OBSOLETE;
		errno = EEXIST;
		return -1;
	}
	if (errno != ENOENT) {
		*why = AUTHLOAD_SYSTEM;
		return -1;
	}
	if (load_file(&l, AUTHROUTES_FILE, 1, add_authroute) < 0 ||
	    load_file(&l, SMTPROUTES_FILE, 0, authroutes_add_smtproute) < 0)
		goto fail;
	str_wipe(&l.raw);
	authroutes_free(a);
	smtproutes_free(r);
	*a = l.a;
	*r = l.r;
	return 0;
fail:
	saved = errno;
	str_wipe(&l.raw);
	authroutes_free(&l.a);
	smtproutes_free(&l.r);
	errno = saved;
	return -1;
}

void authroutes_free(struct authroutes *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].relay);
		cred_free(&a->v[i].cred);
	}
	free(a->v);
	strmap_free(&a->senders);
	strmap_free(&a->routes);
	*a = (struct authroutes)AUTHROUTES_INIT;
}

/* --- lookups --- */

const struct authroute *authroutes_for_sender(const struct authroutes *a,
					      const char *sender)
{
	const char *at = strrchr(sender, '@');
	const char *value;

	if (at && at[1]) {
		value = strmap_get(&a->senders, sender, strlen(sender));
		if (!value)
			value = strmap_get(&a->senders, at, strlen(at));
		for (const char *p = at + 1; !value && *p; p++)
			if (*p == '.')
				value = strmap_get(&a->senders, p, strlen(p));
		if (value)
			return entry_at(a, value);
	}
	return entry_at(a, strmap_get(&a->senders, "", 0));
}

const struct authcred *authroutes_for_host(const struct authroutes *a,
					   const char *host)
{
	size_t len = strlen(host);

	/* The same keys in the same order as smtproutes_find. */
	for (size_t i = 0; i <= len; i++) {
		if (i != 0 && i != len && host[i] != '.')
			continue;
		const char *value = strmap_get(&a->routes, host + i, len - i);
		if (value) {
			const struct authroute *e = entry_at(a, value);
			return e ? &e->cred : NULL;
		}
	}
	return NULL;
}
