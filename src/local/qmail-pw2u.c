/*
 * qmail-pw2u: turn a passwd file (stdin) into a users/assign file
 * (stdout), following qmail-pw2u(8) and the files users/include,
 * users/exclude, users/mailnames, users/subusers and users/append.
 *
 * It only reads and prints: it never writes users/assign or users/cdb
 * itself, and a run that fails must not look like a complete file, so
 * the final "." is printed only after everything else went well.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/checked.h"
#include "lib/ctl.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "mail/users.h"

#define PASSWD_LINE_MAX 65536

struct options {
	int check_home;	 /* -h (default) / -H */
	int check_owner; /* -o (default) / -O */
	int allow_upper; /* -u / -U (default) */
	char brk;	 /* -c char; 0 after -C: no user-ext addresses */
};

/* One passwd entry; the strings live in accounts.text. */
struct account {
	size_t name, home; /* offsets of NUL-terminated strings */
	unsigned long long uid, gid;
};

struct accounts {
	struct account *v;
	size_t len, cap;
	struct str text;
};

/* A sorted list of names, for include and exclude. */
struct names {
	const char **v;
	size_t len;
	int exists;
	struct str raw;
};

static struct buf out;
static char out_space[BUF_SIZE];

static _Noreturn void die_write(void)
{
	log_fatal_sys(EXIT_TEMP, "unable to write output");
}

static void put(const char *p, size_t n)
{
	if (buf_put(&out, p, n) < 0)
		die_write();
}

static void puts_out(const char *s)
{
	put(s, strlen(s));
}

static void putnum(unsigned long long n)
{
	if (buf_putnum(&out, n) < 0)
		die_write();
}

static const char *acct_name(const struct accounts *a, const struct account *e)
{
	return a->text.s + e->name;
}

static const char *acct_home(const struct accounts *a, const struct account *e)
{
	return a->text.s + e->home;
}

/* ---- reading the passwd file ---- */

static int parse_num(const char *s, size_t n, unsigned long long *out)
{
	unsigned long long v = 0;

	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static void grow_accounts(struct accounts *a)
{
	size_t cap, bytes;

	if (a->len < a->cap)
		return;
	if (size_add(a->cap, a->cap / 2 + 16, &cap) < 0 ||
	    size_mul(cap, sizeof *a->v, &bytes) < 0)
		log_nomem();
	struct account *v = realloc(a->v, bytes);
	if (!v)
		log_nomem();
	a->v = v;
	a->cap = cap;
}

static size_t add_text(struct accounts *a, const char *p, size_t n)
{
	size_t at = a->text.len;
	if (str_append(&a->text, p, n) < 0 || str_append0(&a->text) < 0)
		log_nomem();
	return at;
}

/* user:password:uid:gid:gecos:home[:shell] */
static void parse_passwd_line(struct accounts *a, const char *line, size_t n,
			      unsigned long lineno)
{
	const char *f[6];
	size_t len[6], pos = 0;

	if (memchr(line, 0, n))
		log_fatal(EXIT_PERM, "passwd line %lu: NUL byte", lineno);
	for (int i = 0; i < 6; i++) {
		const char *colon = memchr(line + pos, ':', n - pos);
		f[i] = line + pos;
		len[i] = colon ? (size_t)(colon - f[i]) : n - pos;
		if (!colon && i < 5)
			log_fatal(EXIT_PERM, "passwd line %lu: too few fields",
				  lineno);
		pos += len[i] + (colon ? 1 : 0);
	}
	grow_accounts(a);
	struct account *e = &a->v[a->len];
	if (len[0] == 0 || parse_num(f[2], len[2], &e->uid) < 0 ||
	    parse_num(f[3], len[3], &e->gid) < 0)
		log_fatal(EXIT_PERM,
			  "passwd line %lu: empty user name or bad uid/gid",
			  lineno);
	e->name = add_text(a, f[0], len[0]);
	e->home = add_text(a, f[5], len[5]);
	a->len++;
}

static void read_passwd(struct accounts *a)
{
	char space[BUF_SIZE];
	struct buf in;
	struct str line = STR_INIT;

	buf_init(&in, 0, space, sizeof space, 0);
	for (unsigned long lineno = 1;; lineno++) {
		str_clear(&line);
		int r = buf_getline(&in, &line, '\n', PASSWD_LINE_MAX);
		if (r < 0 && errno == EMSGSIZE)
			log_fatal(EXIT_PERM, "passwd line %lu: too long",
				  lineno);
		if (r < 0)
			log_fatal_sys(EXIT_TEMP, "unable to read input");
		if (r == 0 && line.len == 0)
			break;
		if (r == 1)
			str_truncate(&line, line.len - 1);
		/* Blank lines and NIS "+" and "-" entries name nobody. */
		if (line.len == 0 || line.s[0] == '+' || line.s[0] == '-')
			continue;
		parse_passwd_line(a, line.s, line.len, lineno);
	}
	str_free(&line);
}

static const struct account *find_account(const struct accounts *a,
					  const char *name, size_t n)
{
	for (size_t i = 0; i < a->len; i++) {
		const char *x = acct_name(a, &a->v[i]);
		if (strlen(x) == n && memcmp(x, name, n) == 0)
			return &a->v[i];
	}
	return NULL;
}

/* ---- users/ files ---- */

static void read_list(const char *path, struct str *list, int *exists)
{
	int r = ctl_list(path, list);
	if (r < 0)
		log_fatal_sys(EXIT_TEMP, "unable to read %s", path);
	if (exists)
		*exists = r > 0;
}

static int compare_names(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static void read_names(const char *path, struct names *n)
{
	size_t pos = 0, count = 0, bytes;
	const char *entry;

	read_list(path, &n->raw, &n->exists);
	while (ctl_next(&n->raw, &pos))
		count++;
	if (size_mul(count + 1, sizeof *n->v, &bytes) < 0 ||
	    !(n->v = malloc(bytes)))
		log_nomem();
	pos = 0;
	while ((entry = ctl_next(&n->raw, &pos)))
		n->v[n->len++] = entry;
	qsort(n->v, n->len, sizeof *n->v, compare_names);
}

static int listed(const struct names *n, const char *name)
{
	return n->len > 0 && bsearch(&name, n->v, n->len, sizeof *n->v,
				     compare_names) != NULL;
}

/* ---- the rules ---- */

static int has_upper(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return 1;
	return 0;
}

/* Whether the account gets addresses at all (qmail-getpw's rules plus
 * include and exclude). A home that cannot be examined is fatal: a
 * guess would silently drop or add a mailbox. */
static int eligible(const struct accounts *a, const struct account *e,
		    const struct options *o, const struct names *inc,
		    const struct names *exc)
{
	const char *name = acct_name(a, e);
	const char *home = acct_home(a, e);
	struct stat st;

	if (e->uid == 0 || (!o->allow_upper && has_upper(name)))
		return 0;
	if ((inc->exists && !listed(inc, name)) || listed(exc, name))
		return 0;
	if (home[0] != '/') {
		log_warn("skipping %s: home directory %s is not an absolute "
			 "path",
			 name, home);
		return 0;
	}
	if (!o->check_home)
		return 1;
	if (stat(home, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		log_fatal_sys(EXIT_TEMP, "unable to stat %s", home);
	}
	return !o->check_owner || st.st_uid == e->uid;
}

static void put_lower(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		c = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		put(&c, 1);
	}
}

/* :user:uid:gid:home:dash:ext: */
static void put_target(const struct accounts *a, const struct account *e,
		       const char *dash, const char *ext, size_t extlen,
		       const char *ext_suffix)
{
	put(":", 1);
	puts_out(acct_name(a, e));
	put(":", 1);
	putnum(e->uid);
	put(":", 1);
	putnum(e->gid);
	put(":", 1);
	puts_out(acct_home(a, e));
	put(":", 1);
	puts_out(dash);
	put(":", 1);
	put(ext, extlen);
	puts_out(ext_suffix);
	put(":\n", 2);
}

/* The address and, unless -C, every address+break+anything. */
static void put_address(const struct accounts *a, const struct account *e,
			const struct options *o, const char *addr, size_t n,
			const char *pre, size_t prelen)
{
	put("=", 1);
	put_lower(addr, n);
	put_target(a, e, prelen ? "-" : "", pre, prelen, "");
	if (!o->brk)
		return;
	put("+", 1);
	put_lower(addr, n);
	put(&o->brk, 1);
	put_target(a, e, "-", pre, prelen, prelen ? "-" : "");
}

/* Each line of mailnames naming this user replaces its own address. */
static int put_mailnames(const struct accounts *a, const struct account *e,
			 const struct options *o, const struct str *mailnames)
{
	const char *name = acct_name(a, e);
	size_t nlen = strlen(name), pos = 0;
	const char *line;
	int found = 0;

	while ((line = ctl_next(mailnames, &pos))) {
		const char *colon = strchr(line, ':');
		if (!colon || (size_t)(colon - line) != nlen ||
		    memcmp(line, name, nlen) != 0)
			continue;
		found = 1;
		for (const char *p = colon + 1; *p;) {
			size_t len = strcspn(p, ":");
			if (len > 0)
				put_address(a, e, o, p, len, "", 0);
			p += len;
			if (*p == ':')
				p++;
		}
	}
	return found;
}

/* sub:user:pre: gives sub to user's home/.qmail-pre. */
static void put_subusers(const struct accounts *a, const struct options *o,
			 const struct str *subusers)
{
	size_t pos = 0;
	const char *line;

	while ((line = ctl_next(subusers, &pos))) {
		const char *c1 = strchr(line, ':');
		const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			log_fatal(EXIT_PERM,
				  "malformed line in users/subusers: "
				  "%s",
				  line);
		const char *pre = c2 + 1;
		size_t prelen = strcspn(pre, ":");
		const struct account *e =
		    find_account(a, c1 + 1, (size_t)(c2 - c1 - 1));
		if (!e || e->uid == 0) {
			log_warn("skipping users/subusers line %s: no such "
				 "user, or root",
				 line);
			continue;
		}
		put_address(a, e, o, line, (size_t)(c1 - line), pre, prelen);
	}
}

static void put_catchall(const struct accounts *a)
{
	const struct account *e =
	    find_account(a, USERS_ALIAS, strlen(USERS_ALIAS));
	if (!e)
		log_fatal(EXIT_PERM, "no account %s in the passwd input",
			  USERS_ALIAS);
	put("+", 1);
	put_target(a, e, "-", "", 0, "");
}

static void put_append(void)
{
	struct str append = STR_INIT;
	size_t pos = 0;
	const char *line;

	read_list("users/append", &append, NULL);
	while ((line = ctl_next(&append, &pos))) {
		puts_out(line);
		put("\n", 1);
	}
	str_free(&append);
}

/* ---- options ---- */

static _Noreturn void usage(void)
{
	log_fatal(EXIT_PERM, "usage: qmail-pw2u [-oOhHuUC] [-c char]");
}

static void parse_options(int argc, char **argv, struct options *o)
{
	int opt;

	*o = (struct options){1, 1, 0, '-'};
	while ((opt = getopt(argc, argv, "oOhHuUc:C")) != -1) {
		switch (opt) {
		case 'o':
			o->check_owner = 1;
			break;
		case 'O':
			o->check_owner = 0;
			break;
		case 'h':
			o->check_home = 1;
			break;
		case 'H':
			o->check_home = 0;
			break;
		case 'u':
			o->allow_upper = 1;
			break;
		case 'U':
			o->allow_upper = 0;
			break;
		case 'c':
			if (strlen(optarg) != 1 || optarg[0] == ':' ||
			    optarg[0] == '\n')
				usage();
			o->brk = optarg[0];
			break;
		case 'C':
			o->brk = 0;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
}

int main(int argc, char **argv)
{
	struct options o;
	struct accounts a = {0};
	struct names include = {0}, exclude = {0};
	struct str mailnames = STR_INIT, subusers = STR_INIT;

	log_init(argc > 0 ? argv[0] : "qmail-pw2u");
	parse_options(argc, argv, &o);
	home_chdir();
	buf_init(&out, 1, out_space, sizeof out_space, 0);
	read_names("users/include", &include);
	read_names("users/exclude", &exclude);
	read_list("users/mailnames", &mailnames, NULL);
	read_list("users/subusers", &subusers, NULL);
	read_passwd(&a);

	for (size_t i = 0; i < a.len; i++) {
		const struct account *e = &a.v[i];
		if (!eligible(&a, e, &o, &include, &exclude))
			continue;
		if (!put_mailnames(&a, e, &o, &mailnames)) {
			const char *name = acct_name(&a, e);
			put_address(&a, e, &o, name, strlen(name), "", 0);
		}
	}
	put_subusers(&a, &o, &subusers);
	put_catchall(&a);
	put_append();
	put(".\n", 2);
	if (buf_flush(&out) < 0)
		die_write();
	return 0;
}
