/*
 * fuzz_assign.c: libFuzzer harness for the users/assign compiler and the
 * users/cdb lookup of mail/users.c (qmail-newu, qmail-lspawn).
 *
 * The input is a users/assign file. A reference parser written here
 * from qmail-users(5) and users.h says what must happen:
 * - users_compile fails exactly when the reference finds a malformed
 *   line (too few or too many fields, an empty user, a uid or gid that
 *   is not a number below the type's all-ones value, a home that is not
 *   absolute, a NUL, a line not starting with = or +, an over-long line)
 *   or no final "." line, and names the same line (0: the missing ".");
 * - users_parse_line agrees with the reference on each line, fields and
 *   all;
 * - after a successful compile, the cdb is written and every entry can
 *   be looked up: an exact address gives its first entry (addresses
 *   compared lowercased), an address under a wildcard gives the entry
 *   with the longest matching prefix, its ext the wildcard's pre plus
 *   the rest of the address as written, and anything else nothing.
 * The cdb lives in the harness's temporary directory, emptied after
 * every input.
 */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "fuzz_tmpdir.h"
#include "lib/cdbx.h"
#include "lib/str.h"
#include "mail/users.h"

#define ENTRIES_CHECKED 64

struct ref_entry {
	int wildcard;
	const char *f[7]; /* local, user, uid, gid, home, dash, ext */
	size_t len[7];
	unsigned long long uid, gid;
};

static int ref_id(const char *p, size_t n, unsigned long long *out)
{
	const unsigned long long limit = 0xffffffffULL; /* uid_t, gid_t */
	unsigned long long v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
		if (v >= limit)
			return -1;
	}
	*out = v;
	return 0;
}

/* 1 entry, 0 the final ".", -1 malformed. */
static int ref_parse(const char *p, size_t n, struct ref_entry *e)
{
	size_t pos = 1;

	if (n == 1 && p[0] == '.')
		return 0;
	if (n == 0 || (p[0] != '=' && p[0] != '+') || memchr(p, 0, n))
		return -1;
	for (int i = 0; i < 7; i++) {
		const char *colon = memchr(p + pos, ':', n - pos);
		if (!colon)
			return -1;
		e->f[i] = p + pos;
		e->len[i] = (size_t)(colon - (p + pos));
		pos += e->len[i] + 1;
	}
	if (pos != n || e->len[1] == 0 || ref_id(e->f[2], e->len[2], &e->uid) ||
	    ref_id(e->f[3], e->len[3], &e->gid) || e->len[4] == 0 ||
	    e->f[4][0] != '/')
		return -1;
	e->wildcard = p[0] == '+';
	return 1;
}

static int same(const struct str *s, const char *p, size_t n)
{
	return s->len == n && (n == 0 || memcmp(s->s, p, n) == 0);
}

static void check_parse_line(const char *p, size_t n, int want,
			     const struct ref_entry *e)
{
	struct users_entry have = USERS_ENTRY_INIT;
	const char *why = NULL;
	int r = users_parse_line(p, n, &have, &why);

	if (r != want || (r < 0 && (!why || errno != EINVAL)))
		abort();
	if (r == 1 &&
	    (have.wildcard != e->wildcard ||
	     !same(&have.local, e->f[0], e->len[0]) ||
	     !same(&have.user, e->f[1], e->len[1]) || have.uid != e->uid ||
	     have.gid != e->gid || !same(&have.home, e->f[4], e->len[4]) ||
	     !same(&have.dash, e->f[5], e->len[5]) ||
	     !same(&have.ext, e->f[6], e->len[6])))
		abort();
	users_entry_free(&have);
}

/* The whole file: its entries, counted in *count, the first
 * ENTRIES_CHECKED of them into v; returns the line of the first error
 * (0: no final "."), or -1 when it is well formed. */
static long ref_compile(const char *p, size_t n, struct ref_entry *v,
			size_t *count)
{
	size_t pos = 0;
	const size_t max = USERS_LINE_MAX + 1; /* newline included */

	*count = 0;
	for (unsigned long line = 1;; line++) {
		size_t avail = n - pos;
		const char *nl =
		    memchr(p + pos, '\n', avail < max ? avail : max);
		size_t len = nl ? (size_t)(nl - (p + pos)) : avail;
		if (!nl && avail >= max)
			return (long)line; /* too long */
		if (!nl && avail == 0)
			return 0; /* no "." */
		struct ref_entry e;
		int r = ref_parse(p + pos, len, &e);
		check_parse_line(p + pos, len, r, &e);
		if (r < 0)
			return (long)line;
		if (r == 0)
			return -1;
		if (*count < ENTRIES_CHECKED)
			v[*count] = e;
		(*count)++;
		pos += len + (nl != NULL);
	}
}

/* --- lookups --- */

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* a[0..an) lowercased equals b[0..bn) lowercased. */
static int same_lower(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return 0;
	for (size_t i = 0; i < an; i++)
		if (lower(a[i]) != lower(b[i]))
			return 0;
	return 1;
}

/* The entry that must answer for local (n bytes), or NULL. *cut gets
 * the length of a wildcard's prefix. */
static const struct ref_entry *ref_lookup(const struct ref_entry *v,
					  size_t count, const char *local,
					  size_t n, size_t *cut)
{
	const struct ref_entry *best = NULL;

	for (size_t i = 0; i < count; i++)
		if (!v[i].wildcard &&
		    same_lower(v[i].f[0], v[i].len[0], local, n))
			return &v[i];
	for (size_t i = 0; i < count; i++) {
		size_t k = v[i].len[0];
		if (v[i].wildcard && k <= n &&
		    same_lower(v[i].f[0], k, local, k) &&
		    (!best || k > best->len[0]))
			best = &v[i];
	}
	if (best)
		*cut = best->len[0];
	return best;
}

static void check_lookup(const char *cdb, const struct ref_entry *v,
			 size_t count, const char *local)
{
	struct userinfo u = USERINFO_INIT;
	size_t n = strlen(local), cut = 0;
	const struct ref_entry *e = ref_lookup(v, count, local, n, &cut);
	int r = users_cdb_lookup(cdb, local, &u);

	if (r != (e != NULL))
		abort();
	if (e) {
		struct str ext = STR_INIT;
		if (str_append(&ext, e->f[6], e->len[6]) < 0 ||
		    (e->wildcard && str_append(&ext, local + cut, n - cut) < 0))
			abort();
		if (!same(&u.user, e->f[1], e->len[1]) || u.uid != e->uid ||
		    u.gid != e->gid || !same(&u.home, e->f[4], e->len[4]) ||
		    !same(&u.dash, e->f[5], e->len[5]) ||
		    !same(&u.ext, ext.s, ext.len))
			abort();
		str_free(&ext);
	}
	userinfo_free(&u);
}

/* Every entry's own address, and one under each wildcard. */
static void check_lookups(const char *cdb, const struct ref_entry *v,
			  size_t count)
{
	char local[256];

	for (size_t i = 0; i < count; i++) {
		size_t k = v[i].len[0];
		if (k > 200 || memchr(v[i].f[0], 0, k))
			continue;
		memcpy(local, v[i].f[0], k);
		local[k] = 0;
		check_lookup(cdb, v, count, local);
		if (v[i].wildcard) {
			memcpy(local + k, "Ext-Ra", 7);
			check_lookup(cdb, v, count, local);
		}
	}
	check_lookup(cdb, v, count, "nobody-in-particular");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ref_entry v[ENTRIES_CHECKED];
	char cdb[PATH_MAX];
	struct cdbx_writer w;
	struct users_diag d;
	size_t count;

	fuzz_path(cdb, fuzz_tmpdir(), "cdb");
	long bad = ref_compile((const char *)data, size, v, &count);
	if (cdbx_create(&w, cdb, 0600) < 0)
		abort();
	memset(&d, 0, sizeof d);
	int r = users_compile(fuzz_input_fd(data, size), &w, &d);
	if (bad >= 0) {
		if (r != -1 || d.fail != USERS_FAIL_SYNTAX ||
		    d.line != (unsigned long)bad || !d.why)
			abort();
		cdbx_abort(&w);
	} else {
		if (r != 0 || cdbx_commit(&w) < 0)
			abort();
		if (count <=
		    ENTRIES_CHECKED) /* else the reference is partial */
			check_lookups(cdb, v, count);
	}
	fuzz_tmpdir_clean();
	return 0;
}
