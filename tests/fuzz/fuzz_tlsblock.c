/*
 * fuzz_tlsblock.c: libFuzzer harness for the UCSPI-TLS control block:
 * tls/tlsblock.c (what the TLS programs build and read) and
 * smtp/ucspitls.c (what a mail program reads after STARTTLS).
 *
 * The environment is a model kept here (env_get, env_set and env_unset
 * are defined in this file, so lib/env.c is not linked): every change
 * the code makes is seen, and nothing leaks into the real environment
 * from one input to the next. What must hold:
 * - tlsblock_complete and tlsblock_apply accept exactly the well-formed
 *   blocks (entries NAME=value or NAME, names of 1 to 64 letters, digits
 *   and '_', ended by one more NUL, nothing after); applying one sets
 *   and unsets exactly its entries under the prefix, in order, and a
 *   malformed one changes nothing;
 * - tlsblock_read returns a block exactly when the input holds one and
 *   nothing more in the same read, EOF before one is complete, and never
 *   takes more than TLSBLOCK_MAX bytes;
 * - a block built with tlsblock_put* from any names and values applies
 *   cleanly: each valid value set, each too long or unsafe one unset,
 *   each bad name refused without changing the block;
 * - ucspitls_start writes 'Y' on the control descriptor, moves the TLS
 *   descriptors onto the targets whatever their numbers (checked by
 *   which device each ends up on), drops what was buffered, and sets or
 *   unsets only SSL_ variables as the block says; a block that does not
 *   end is a failure that changes no variable.
 * Only anonymous files and /dev/null, /dev/zero and /dev/full are used.
 *
 * Input: byte 0, bit 0: the prefix for tlsblock_apply ("" or "SSL_");
 * bits 1-7 choose the descriptors ucspitls_start gets. The rest is the
 * block, and also names and values for tlsblock_put (NUL-separated
 * pairs).
 */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "lib/env.h"
#include "lib/str.h"
#include "smtp/ucspitls.h"
#include "tls/tlsblock.h"

/* --- an environment model --- */

struct var {
	char *name, *value;
};

struct model {
	struct var *v;
	size_t n, cap;
};

static struct model env; /* what the code under test sees */

static struct var *model_find(struct model *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].name, name) == 0)
			return &m->v[i];
	return NULL;
}

static char *copy(const char *s)
{
	char *c = strdup(s);
	if (!c)
		abort();
	return c;
}

static void model_set(struct model *m, const char *name, const char *value)
{
	struct var *v = model_find(m, name);

	if (v) {
		free(v->value);
		v->value = copy(value);
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->v = realloc(m->v, m->cap * sizeof *m->v);
		if (!m->v)
			abort();
	}
	m->v[m->n++] = (struct var){copy(name), copy(value)};
}

static void model_unset(struct model *m, const char *name)
{
	struct var *v = model_find(m, name);

	if (!v)
		return;
	free(v->name);
	free(v->value);
	*v = m->v[--m->n];
}

static void model_clear(struct model *m)
{
	while (m->n)
		model_unset(m, m->v[0].name);
}

static void model_free(struct model *m)
{
	model_clear(m);
	free(m->v);
	*m = (struct model){NULL, 0, 0};
}

static int same_model(struct model *a, struct model *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		struct var *v = model_find(b, a->v[i].name);
		if (!v || strcmp(v->value, a->v[i].value) != 0)
			return 0;
	}
	return 1;
}

/* setenv(3)'s rule for names. */
static int bad_name(const char *name)
{
	if (!name || !*name || strchr(name, '=')) {
		errno = EINVAL;
		return 1;
	}
	return 0;
}

const char *env_get(const char *name)
{
	struct var *v = model_find(&env, name);
	return v ? v->value : NULL;
}

int env_set(const char *name, const char *value)
{
	if (bad_name(name))
		return -1;
	model_set(&env, name, value);
	return 0;
}

int env_unset(const char *name)
{
	if (bad_name(name))
		return -1;
	model_unset(&env, name);
	return 0;
}

/* --- tlsblock_apply --- */

static int name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

/* The reference: 1 and the entries applied to m when p[0..n) is one
 * well-formed block, else 0. */
static int ref_apply(const char *p, size_t n, const char *prefix,
		     struct model *m)
{
	size_t pos = 0, plen = strlen(prefix);

	if (n == 0)
		return 0;
	for (;;) {
		if (pos == n)
			return 0; /* no final NUL */
		if (p[pos] == 0)
			break;
		const char *e = p + pos, *end = memchr(e, 0, n - pos);
		if (!end)
			return 0;
		size_t len = (size_t)(end - e), k = 0;
		while (k < len && e[k] != '=') {
			if (!name_char(e[k]))
				return 0;
			k++;
		}
		if (k == 0 || k > TLSBLOCK_NAME_MAX)
			return 0;
		pos += len + 1;
	}
	if (pos + 1 != n)
		return 0; /* bytes after the end */
	for (pos = 0; p[pos]; pos += strlen(p + pos) + 1) {
		const char *e = p + pos, *eq = strchr(e, '=');
		size_t k = eq ? (size_t)(eq - e) : strlen(e);
		char name[TLSBLOCK_NAME_MAX + 1];
		if (k < plen || memcmp(e, prefix, plen) != 0)
			continue;
		memcpy(name, e, k);
		name[k] = 0;
		if (eq)
			model_set(m, name, eq + 1);
		else
			model_unset(m, name);
	}
	return 1;
}

static size_t block_end(const char *p, size_t n);

static void check_apply(const char *p, size_t n, const char *prefix)
{
	struct model want = {NULL, 0, 0};

	model_clear(&env);
	int ok = ref_apply(p, n, prefix, &want);
	if (tlsblock_complete(p, n) != (n > 0 && block_end(p, n) == n) ||
	    (ok && !tlsblock_complete(p, n)))
		abort();
	int r = tlsblock_apply(p, n, prefix);
	if (ok ? r != 0 : r != -1 || errno != EINVAL)
		abort();
	if (!same_model(&env, &want))
		abort();
	model_free(&want);
}

/* --- tlsblock_read --- */

static size_t block_end(const char *p, size_t n)
{
	if (n && p[0] == 0)
		return 1;
	for (size_t i = 1; i + 1 < n; i++)
		if (p[i] == 0 && p[i + 1] == 0)
			return i + 2;
	return 0;
}

static void check_read(const uint8_t *data, size_t n)
{
	struct str out = STR_INIT;
	const char *p = (const char *)data;
	size_t look = n < TLSBLOCK_MAX ? n : TLSBLOCK_MAX;
	size_t end = block_end(p, look);
	int r = tlsblock_read(fuzz_input_fd(data, n), &out);

	if (end) {
		/* Read in chunks of 1024: the one holding the end. */
		size_t chunk_end = ((end - 1) / 1024 + 1) * 1024;
		int whole = (chunk_end < n ? chunk_end : n) == end;
		if (whole ? r != 1 : r != -1 || errno != EINVAL)
			abort();
		if (r == 1 && (out.len != end || memcmp(out.s, p, end) != 0))
			abort();
	} else if (n >= TLSBLOCK_MAX) {
		if (r != -1 || errno != EMSGSIZE)
			abort();
	} else if (r != 0) {
		abort();
	}
	if (out.len > TLSBLOCK_MAX)
		abort();
	str_free(&out);
}

/* --- tlsblock_put --- */

static int value_ok(const char *v, size_t n)
{
	if (n > TLSBLOCK_VALUE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return 0;
	return 1;
}

static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TLSBLOCK_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i]))
			return 0;
	return 1;
}

/* Pairs "name\0value\0" from the input, then the number form. */
static void check_put(const char *p, size_t n)
{
	struct str b = STR_INIT;
	struct model want = {NULL, 0, 0};
	size_t pos = 0;

	while (pos < n) {
		const char *name = p + pos, *nul = memchr(name, 0, n - pos);
		if (!nul)
			break;
		const char *value = nul + 1;
		const char *vend = memchr(value, 0, n - (size_t)(value - p));
		size_t vlen =
		    vend ? (size_t)(vend - value) : n - (size_t)(value - p);
		size_t old = b.len;
		int r = tlsblock_putn(&b, name, value, vlen);
		size_t entry =
		    strlen(name) + 1 + (value_ok(value, vlen) ? vlen + 1 : 0);
		if (!name_ok(name)) {
			if (r != -1 || errno != EINVAL || b.len != old)
				abort();
		} else if (old + entry >= TLSBLOCK_MAX) {
			if (r != -1 || errno != EMSGSIZE || b.len != old)
				abort();
		} else {
			if (r != 0 || b.len != old + entry)
				abort();
			char v[TLSBLOCK_VALUE_MAX + 1];
			if (value_ok(value, vlen)) {
				memcpy(v, value, vlen);
				v[vlen] = 0;
				model_set(&want, name, v);
			} else {
				model_unset(&want, name);
			}
		}
		pos = vend ? (size_t)(vend - p) + 1 : n;
	}
	if (tlsblock_putnum(&b, "N", n) == 0) {
		char num[32];
		snprintf(num, sizeof num, "%zu", n);
		model_set(&want, "N", num);
	}
	if (tlsblock_end(&b) != 0 || !tlsblock_complete(b.s, b.len))
		abort();
	model_clear(&env);
	if (tlsblock_apply(b.s, b.len, "") != 0 || !same_model(&env, &want))
		abort();
	model_free(&want);
	str_free(&b);
}

/* --- ucspitls_start --- */

/* The reference of read_block: 512-byte reads until what was read ends
 * in "\0\0" (or is "\0"), at most 16384 bytes; then the SSL_ entries up
 * to the first empty one, names unchecked. */
static int ref_ucspi(const char *p, size_t n, struct model *m)
{
	size_t len = 0;

	for (;;) {
		size_t r = n - len < 512 ? n - len : 512;
		if (r == 0 || len + r > 16384)
			return 0;
		len += r;
		if ((len == 1 && p[0] == 0) ||
		    (len >= 2 && p[len - 1] == 0 && p[len - 2] == 0))
			break;
	}
	for (size_t pos = 0; pos < len && p[pos];) {
		const char *e = p + pos;
		pos += strlen(e) + 1;
		if (strncmp(e, "SSL_", 4) != 0)
			continue;
		const char *eq = strchr(e, '=');
		if (!eq) {
			model_unset(m, e);
			continue;
		}
		char *name = strndup(e, (size_t)(eq - e));
		if (!name)
			abort();
		model_set(m, name, eq + 1);
		free(name);
	}
	return 1;
}

static dev_t device(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		abort();
	return st.st_rdev;
}

static void check_ucspi(const uint8_t *data, size_t n, unsigned choice)
{
	static const char *const devs[3] = {"/dev/null", "/dev/zero",
					    "/dev/full"};
	static char inspace[16], outspace[16];
	static int ctl = -1;
	struct model want = {NULL, 0, 0};
	struct ucspitls t = {TLS_OFFERED, -1, -1, -1, 0};
	struct buf in, out;
	int pool[3];
	dev_t dev[3];

	if (ctl < 0)
		ctl = fuzz_input_file();
	/* The control file: one byte for the 'Y', then the block. */
	if (ftruncate(ctl, 0) < 0 || lseek(ctl, 0, SEEK_SET) < 0 ||
	    fd_write_all(ctl, "?", 1, 0) < 0 ||
	    (n && fd_write_all(ctl, data, n, 0) < 0) ||
	    lseek(ctl, 0, SEEK_SET) < 0)
		abort();
	for (int i = 0; i < 3; i++) {
		pool[i] = open(devs[i], O_RDWR | O_CLOEXEC);
		if (pool[i] < 0)
			abort();
		dev[i] = device(pool[i]);
	}
	unsigned r = choice % 3, w = choice / 3 % 3, rt = choice / 9 % 3;
	unsigned wt = (rt + 1 + choice / 27 % 2) % 3;
	t.ctl = ctl;
	t.rfd = pool[r];
	t.wfd = pool[w];
	buf_init(&in, pool[0], inspace, sizeof inspace, 0);
	buf_init(&out, pool[0], outspace, sizeof outspace, 0);
	in.len = sizeof inspace; /* something buffered, to be dropped */

	model_clear(&env);
	int ok = ref_ucspi((const char *)data, n, &want);
	int res = ucspitls_start(&t, &in, &out, pool[rt], pool[wt]);
	if (ok ? res != 0 || !t.active : res != -1 || t.active)
		abort();
	char y;
	if (pread(ctl, &y, 1, 0) != 1 || y != 'Y')
		abort();
	if (buf_avail(&in) != 0 || in.fd != pool[rt] || out.fd != pool[wt] ||
	    device(pool[rt]) != dev[r] || device(pool[wt]) != dev[w])
		abort();
	if (!same_model(&env, &want))
		abort();
	for (int i = 0; i < 3; i++)
		close(pool[i]); /* some are closed already: EBADF */
	model_free(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;

	check_apply(p, n, data[0] & 1 ? "SSL_" : "");
	check_read(data + 1, n);
	check_put(p, n);
	check_ucspi(data + 1, n, data[0] >> 1);
	model_free(&env);
	return 0;
}
