/*
 * users.c: local part to user, through users/cdb or the passwd rules
 * (see users.h), and the users/assign compiler behind qmail-newu.
 *
 * Lookups must never guess: anything that is not a clear "found" or a
 * clear "no such user" is a temporary error, so mail waits rather than
 * bounces or goes to the wrong account. Nothing here prints or exits.
 */
#include <errno.h>
#include <pwd.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/users.h"

#define USERS_FIELDS 7	   /* colon-terminated fields after '=' or '+' */
#define USERS_WILD_MAX 256 /* one byte per possible prefix ending */

static const char *last_error = "no error";

const char *users_error(void)
{
	return last_error;
}

/* Records why, keeps errno as the failing call left it. */
static int fail(const char *why)
{
	last_error = why;
	return -1;
}

void userinfo_free(struct userinfo *u)
{
	str_free(&u->user);
	str_free(&u->home);
	str_free(&u->dash);
	str_free(&u->ext);
}

void users_entry_free(struct users_entry *e)
{
	str_free(&e->local);
	str_free(&e->user);
	str_free(&e->home);
	str_free(&e->dash);
	str_free(&e->ext);
}

static char lower_byte(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Appends p lowercased (ASCII only: local parts are compared bytewise). */
static int append_lower(struct str *sa, const char *p, size_t n)
{
	if (str_reserve(sa, n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		sa->s[sa->len + i] = lower_byte(p[i]);
	sa->len += n;
	sa->s[sa->len] = 0;
	return 0;
}

/* Digits only, and the value must survive the trip through uid_t/gid_t
 * (whose all-ones value means "no change" to chown and setuid). */
static int parse_id(const char *s, size_t n, unsigned long long limit,
		    unsigned long long *out)
{
	unsigned long long v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (limit - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v == limit)
		return -1;
	*out = v;
	return 0;
}

/* The largest value of an unsigned type of size bytes. */
static unsigned long long id_limit(size_t size)
{
	return size >= sizeof(unsigned long long) ? ~0ULL
						  : (1ULL << (size * 8)) - 1;
}

static int parse_uid(const char *s, size_t n, uid_t *uid)
{
	unsigned long long v;
	if (parse_id(s, n, id_limit(sizeof(uid_t)), &v) < 0)
		return -1;
	*uid = (uid_t)v;
	return 0;
}

static int parse_gid(const char *s, size_t n, gid_t *gid)
{
	unsigned long long v;
	if (parse_id(s, n, id_limit(sizeof(gid_t)), &v) < 0)
		return -1;
	*gid = (gid_t)v;
	return 0;
}

/* ---- users/cdb ---- */

/* A cdb value: user\0uid\0gid\0home\0dash\0ext\0, nothing more. */
static int parse_value(const struct str *v, struct userinfo *u)
{
	const char *field[6];
	size_t len[6];
	size_t pos = 0;

	for (int i = 0; i < 6; i++) {
		const char *end;
		if (pos >= v->len ||
		    !(end = memchr(v->s + pos, 0, v->len - pos))) {
			errno = EINVAL;
			return -1;
		}
		field[i] = v->s + pos;
		len[i] = (size_t)(end - field[i]);
		pos += len[i] + 1;
	}
	if (pos != v->len || parse_uid(field[1], len[1], &u->uid) < 0 ||
	    parse_gid(field[2], len[2], &u->gid) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (str_copy(&u->user, field[0], len[0]) < 0 ||
	    str_copy(&u->home, field[3], len[3]) < 0 ||
	    str_copy(&u->dash, field[4], len[4]) < 0 ||
	    str_copy(&u->ext, field[5], len[5]) < 0)
		return -1;
	return 0;
}

/* Finds key; on a hit fills u. 1, 0 or -1 like cdbx_find. */
static int find_entry(struct cdbx_reader *r, const struct str *key,
		      struct userinfo *u)
{
	struct str val = STR_INIT;
	int found = cdbx_find(r, key->s, key->len, &val, USERS_LINE_MAX);

	if (found < 0)
		fail("unable to read users/cdb");
	else if (found > 0 && parse_value(&val, u) < 0) {
		found =
		    fail(errno == EINVAL ? "users/cdb holds a malformed entry"
					 : "out of memory");
	}
	int saved = errno;
	str_free(&val);
	errno = saved;
	return found;
}

/* The wildcards, longest prefix first. A prefix other than the empty one
 * is tried only when its last byte ends some wildcard prefix: the empty
 * key lists those bytes. key holds "!" + lowercased local. */
static int find_wildcard(struct cdbx_reader *r, struct str *key,
			 const char *local, struct userinfo *u)
{
	struct str wild = STR_INIT;
	int found = cdbx_find(r, "", 0, &wild, USERS_WILD_MAX);

	if (found <= 0) {
		if (found < 0)
			fail("unable to read users/cdb");
		str_free(&wild);
		return found;
	}
	for (size_t i = key->len - 1;; i--) {
		/* i: bytes of the local part in the prefix. */
		if (i == 0 ||
		    (wild.len > 0 && memchr(wild.s, key->s[i], wild.len))) {
			str_truncate(key, i + 1);
			found = find_entry(r, key, u);
			if (found != 0) {
				if (found > 0 &&
				    str_appends(&u->ext, local + i) < 0)
					found = fail("out of memory");
				break;
			}
		}
		if (i == 0)
			break;
	}
	int saved = errno;
	str_free(&wild);
	errno = saved;
	return found;
}

int users_cdb_lookup(const char *path, const char *local, struct userinfo *u)
{
	struct cdbx_reader r;
	struct str key = STR_INIT;
	size_t n = strlen(local);
	int found = cdbx_open(&r, path);

	if (found <= 0)
		return found < 0 ? fail("unable to open users/cdb") : 0;
	if (str_appendc(&key, '!') < 0 || append_lower(&key, local, n) < 0 ||
	    str_append0(&key) < 0) {
		found = fail("out of memory");
		goto done;
	}
	found = find_entry(&r, &key, u);
	if (found == 0) {
		str_truncate(&key, key.len - 1); /* drop the NUL */
		found = find_wildcard(&r, &key, local, u);
	}
done:;
	int saved = errno;
	cdbx_close(&r);
	str_free(&key);
	errno = saved;
	return found;
}

/* ---- the passwd rules ---- */

static const struct users_pwops system_pwops = {getpwnam, stat};

/* getpwnam with the "not found" errno values sorted out. 1, 0 or -1. */
static int get_account(const struct users_pwops *ops, const char *name,
		       struct passwd **pw)
{
	errno = 0;
	*pw = ops->getpwnam(name);
	if (*pw)
		return 1;
	if (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF ||
	    errno == EPERM)
		return 0;
	return fail("unable to read the password database");
}

static int fill_from_passwd(struct userinfo *u, const struct passwd *pw,
			    const char *dash, const char *ext)
{
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	if (str_copys(&u->user, pw->pw_name) < 0 ||
	    str_copys(&u->home, pw->pw_dir) < 0 ||
	    str_copys(&u->dash, dash) < 0 || str_copys(&u->ext, ext) < 0)
		return fail("out of memory");
	return 0;
}

/* A mailbox: uid not 0, and a home that exists and belongs to the user.
 * A home that cannot be seen is no mailbox; a failing disk is temporary.
 */
static int is_mailbox(const struct users_pwops *ops, const struct passwd *pw)
{
	struct stat st;

	if (pw->pw_uid == 0)
		return 0;
	if (ops->stat(pw->pw_dir, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == EACCES ||
		    errno == ELOOP || errno == ENAMETOOLONG)
			return 0;
		return fail("unable to stat a home directory");
	}
	return st.st_uid == pw->pw_uid;
}

/* Tries the first n bytes of local as an account name. 1, 0 or -1. */
static int try_account(const struct users_pwops *ops, const char *local,
		       size_t n, struct userinfo *u)
{
	char name[USERS_NAME_MAX + 1];
	struct passwd *pw;
	int r;

	if (n == 0 || n > USERS_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		name[i] = lower_byte(local[i]);
	name[n] = 0;
	if ((r = get_account(ops, name, &pw)) <= 0)
		return r;
	if ((r = is_mailbox(ops, pw)) <= 0)
		return r;
	const char *rest = local + n;
	if (fill_from_passwd(u, pw, *rest ? "-" : "", *rest ? rest + 1 : "") <
	    0)
		return -1;
	return 1;
}

int users_getpw_with(const char *local, struct userinfo *u,
		     const struct users_pwops *ops)
{
	size_t n = strlen(local);
	struct passwd *pw;
	int r;

	/* The whole local part, then each prefix ending before a '-'. */
	for (size_t end = n;; end--) {
		if (end == n || local[end] == '-') {
			r = try_account(ops, local, end, u);
			if (r != 0)
				return r;
		}
		if (end == 0)
			break;
	}
	if ((r = get_account(ops, USERS_ALIAS, &pw)) <= 0)
		return r;
	if (fill_from_passwd(u, pw, "-", local) < 0)
		return -1;
	return 1;
}

int users_getpw(const char *local, struct userinfo *u)
{
	return users_getpw_with(local, u, &system_pwops);
}

int users_lookup(const char *local, struct userinfo *u)
{
	int r = users_cdb_lookup(USERS_CDB, local, u);
	if (r != 0)
		return r;
	return users_getpw(local, u);
}

/* ---- users/assign ---- */

/* Splits p[0..n) into USERS_FIELDS colon-terminated fields. */
static int split_fields(const char *p, size_t n, const char *field[],
			size_t len[], const char **why)
{
	size_t pos = 0;

	for (int i = 0; i < USERS_FIELDS; i++) {
		const char *colon = memchr(p + pos, ':', n - pos);
		if (!colon) {
			*why = "too few fields (7 colon-terminated fields "
			       "expected after = or +)";
			return -1;
		}
		field[i] = p + pos;
		len[i] = (size_t)(colon - field[i]);
		pos += len[i] + 1;
	}
	if (pos != n) {
		*why = "text after the last field (7 colon-terminated "
		       "fields expected after = or +)";
		return -1;
	}
	return 0;
}

static int check_fields(const char *field[], const size_t len[],
			struct users_entry *e, const char **why)
{
	if (len[1] == 0) {
		*why = "empty user name";
		return -1;
	}
	if (parse_uid(field[2], len[2], &e->uid) < 0) {
		*why = "uid is not a decimal number in range";
		return -1;
	}
	if (parse_gid(field[3], len[3], &e->gid) < 0) {
		*why = "gid is not a decimal number in range";
		return -1;
	}
	if (len[4] == 0 || field[4][0] != '/') {
		*why = "home directory is not an absolute path";
		return -1;
	}
	return 0;
}

int users_parse_line(const char *line, size_t len, struct users_entry *e,
		     const char **why)
{
	const char *field[USERS_FIELDS];
	size_t flen[USERS_FIELDS];

	if (len == 1 && line[0] == '.')
		return 0;
	errno = EINVAL;
	if (len == 0) {
		*why = "empty line";
		return -1;
	}
	if (line[0] != '=' && line[0] != '+') {
		*why = "line does not start with = or +";
		return -1;
	}
	if (memchr(line, 0, len)) {
		*why = "NUL byte in line";
		return -1;
	}
	if (split_fields(line + 1, len - 1, field, flen, why) < 0 ||
	    check_fields(field, flen, e, why) < 0)
		return -1;
	e->wildcard = line[0] == '+';
	if (str_copy(&e->local, field[0], flen[0]) < 0 ||
	    str_copy(&e->user, field[1], flen[1]) < 0 ||
	    str_copy(&e->home, field[4], flen[4]) < 0 ||
	    str_copy(&e->dash, field[5], flen[5]) < 0 ||
	    str_copy(&e->ext, field[6], flen[6]) < 0) {
		*why = "out of memory";
		return -1;
	}
	return 1;
}

/* Key and value of one entry, as qmail-lspawn looks them up. */
static int entry_record(const struct users_entry *e, struct str *key,
			struct str *val)
{
	str_clear(key);
	str_clear(val);
	if (str_appendc(key, '!') < 0 ||
	    append_lower(key, e->local.s, e->local.len) < 0 ||
	    (!e->wildcard && str_append0(key) < 0))
		return -1;
	if (str_copystr(val, &e->user) < 0 || str_append0(val) < 0 ||
	    str_appendnum(val, e->uid) < 0 || str_append0(val) < 0 ||
	    str_appendnum(val, e->gid) < 0 || str_append0(val) < 0 ||
	    str_append(val, e->home.s, e->home.len) < 0 ||
	    str_append0(val) < 0 ||
	    str_append(val, e->dash.s, e->dash.len) < 0 ||
	    str_append0(val) < 0 || str_append(val, e->ext.s, e->ext.len) < 0 ||
	    str_append0(val) < 0)
		return -1;
	return 0;
}

struct compile_state {
	struct buf in;
	char space[BUF_SIZE];
	struct str line, key, val;
	struct users_entry entry;
	unsigned char ends[USERS_WILD_MAX]; /* bytes ending a prefix */
};

static int syntax(struct users_diag *d, unsigned long line, const char *why)
{
	d->fail = USERS_FAIL_SYNTAX;
	d->line = line;
	d->why = why;
	errno = EINVAL;
	return -1;
}

static int sys_fail(struct users_diag *d, enum users_fail f, const char *why)
{
	d->fail = f;
	d->line = 0;
	d->why = why;
	return -1;
}

/* Reads the next line without its newline. 1 line, 0 EOF, -1 error. */
static int next_line(struct compile_state *s, unsigned long lineno,
		     struct users_diag *d)
{
	str_clear(&s->line);
	int r = buf_getline(&s->in, &s->line, '\n', USERS_LINE_MAX + 1);
	if (r < 0 && errno == EMSGSIZE)
		return syntax(d, lineno, "line too long");
	if (r < 0)
		return sys_fail(d, USERS_FAIL_READ, "unable to read");
	if (r == 0 && s->line.len == 0)
		return 0;
	if (r == 1)
		str_truncate(&s->line, s->line.len - 1);
	return 1;
}

static int add_entry(struct compile_state *s, struct cdbx_writer *w,
		     struct users_diag *d)
{
	const struct users_entry *e = &s->entry;

	if (entry_record(e, &s->key, &s->val) < 0)
		return sys_fail(d, USERS_FAIL_WRITE, "out of memory");
	if (cdbx_add(w, s->key.s, s->key.len, s->val.s, s->val.len) < 0)
		return sys_fail(d, USERS_FAIL_WRITE, "unable to write");
	if (e->wildcard && e->local.len > 0) {
		unsigned char c =
		    (unsigned char)lower_byte(e->local.s[e->local.len - 1]);
		s->ends[c] = 1;
	}
	return 0;
}

static int add_prefix_ends(struct compile_state *s, struct cdbx_writer *w,
			   struct users_diag *d)
{
	char list[USERS_WILD_MAX];
	size_t n = 0;

	for (size_t c = 0; c < USERS_WILD_MAX; c++)
		if (s->ends[c])
			list[n++] = (char)c;
	if (cdbx_add(w, "", 0, list, n) < 0)
		return sys_fail(d, USERS_FAIL_WRITE, "unable to write");
	return 0;
}

static int compile_lines(struct compile_state *s, struct cdbx_writer *w,
			 struct users_diag *d)
{
	const char *why;

	for (unsigned long lineno = 1;; lineno++) {
		int r = next_line(s, lineno, d);
		if (r < 0)
			return -1;
		if (r == 0)
			return syntax(d, 0,
				      "the file does not end with a line "
				      "holding only \".\"");
		r = users_parse_line(s->line.s, s->line.len, &s->entry, &why);
		if (r < 0 && errno == ENOMEM)
			return sys_fail(d, USERS_FAIL_WRITE, why);
		if (r < 0)
			return syntax(d, lineno, why);
		if (r == 0)
			return add_prefix_ends(s, w, d);
		if (add_entry(s, w, d) < 0)
			return -1;
	}
}

int users_compile(int fd, struct cdbx_writer *w, struct users_diag *d)
{
	struct compile_state s;

	memset(&s, 0, sizeof s);
	buf_init(&s.in, fd, s.space, sizeof s.space, 0);
	int r = compile_lines(&s, w, d);
	int saved = errno;
	str_free(&s.line);
	str_free(&s.key);
	str_free(&s.val);
	users_entry_free(&s.entry);
	errno = saved;
	return r;
}
