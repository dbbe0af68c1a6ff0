/*
 * fuzz_ctl.c: libFuzzer harness for the control-file readers: lib/ctl.c
 * (ctl_line, ctl_ulong, ctl_list, ctl_next) and the control/rewrite
 * loader in mail/rewrite.c (rewrite_load).
 *
 * The file's content is the input. A reference written here from
 * qmail-control(5) and ctl.h, working on the whole content at once,
 * says what each reader must give:
 * - ctl_line: the first line without trailing blanks, CR and LF; an
 *   empty file counts as missing (the default); a NUL in the value is
 *   EINVAL with the output empty;
 * - ctl_ulong: digits only, ERANGE past ULONG_MAX, EINVAL for anything
 *   else, the default for a blank value, and *out untouched on error;
 * - ctl_list: every line but blank ones and those starting with '#',
 *   trailing blanks removed, a NUL in a kept line EINVAL; ctl_next gives
 *   them back one by one;
 * - rewrite_load: every entry of the list is an instruction (= * ? -,
 *   then a colon somewhere), or the first bad one is named.
 * The file is an anonymous one (fuzz_input.h), opened by its /dev/fd
 * name; nothing else is read or written.
 *
 * Input: byte 0, bit 0: ctl_line gets a default; bits 1-7: the default
 * number for ctl_ulong. The rest is the file.
 */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "lib/ctl.h"
#include "lib/str.h"
#include "mail/rewrite.h"

static int trailing(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t trim(const char *p, size_t n)
{
	while (n && trailing(p[n - 1]))
		n--;
	return n;
}

static int same(const struct str *s, const char *p, size_t n)
{
	return s->len == n && (n == 0 || memcmp(s->s, p, n) == 0) && s->s &&
	       s->s[n] == 0;
}

static void check_line(const char *p, size_t n, const char *path,
		       const char *dflt)
{
	struct str out = STR_INIT;
	int r = ctl_line(path, &out, dflt);

	if (n == 0) {
		if (r != 0 || !same(&out, dflt ? dflt : "", dflt ? 4 : 0))
			abort();
	} else {
		const char *nl = memchr(p, '\n', n);
		size_t len = trim(p, nl ? (size_t)(nl - p) : n);
		if (memchr(p, 0, len)) {
			if (r != -1 || errno != EINVAL || out.len != 0)
				abort();
		} else if (r != 1 || !same(&out, p, len)) {
			abort();
		}
	}
	str_free(&out);
}

static void check_ulong(const char *p, size_t n, const char *path,
			unsigned long dflt)
{
	const char *nl = memchr(p, '\n', n);
	size_t len = n ? trim(p, nl ? (size_t)(nl - p) : n) : 0;
	unsigned long want = dflt, out = 12345;
	int want_r = 0, want_errno = 0;

	if (memchr(p, 0, len)) {
		want_r = -1;
		want_errno = EINVAL;
	} else if (len) {
		want_r = 1;
		want = 0;
		for (size_t i = 0; i < len && want_r == 1; i++) {
			unsigned d = (unsigned)(p[i] - '0');
			if (p[i] < '0' || p[i] > '9') {
				want_r = -1;
				want_errno = EINVAL;
			} else if (want > (ULONG_MAX - d) / 10) {
				want_r = -1;
				want_errno = ERANGE;
			} else {
				want = want * 10 + d;
			}
		}
	}
	int r = ctl_ulong(path, &out, dflt);
	if (r != want_r || (r < 0 && errno != want_errno))
		abort();
	if (r < 0 ? out != 12345 : out != want)
		abort();
}

/* The kept lines of the reference, each followed by NUL; -1 for a NUL
 * inside a kept line. */
static int ref_list(const char *p, size_t n, struct str *out)
{
	size_t pos = 0;

	while (pos < n) {
		const char *line = p + pos;
		const char *nl = memchr(line, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - line) : n - pos;
		pos += len + 1;
		size_t kept = trim(line, len);
		if (kept == 0 || line[0] == '#')
			continue;
		if (memchr(line, 0, kept))
			return -1;
		if (str_append(out, line, kept) < 0 || str_append0(out) < 0)
			abort();
	}
	return 0;
}

static int valid_rule(const char *e)
{
	return strchr("=*?-", e[0]) && e[0] && strchr(e + 1, ':');
}

static void check_rewrite(const struct str *want, const char *path)
{
	struct rewrite rw = REWRITE_INIT;
	struct str bad = STR_INIT;
	const char *e, *first_bad = NULL;
	size_t pos = 0;

	while (!first_bad && (e = ctl_next(want, &pos)) != NULL)
		if (!valid_rule(e))
			first_bad = e;
	int r = rewrite_load(&rw, path, &bad);
	if (first_bad) {
		if (r != -1 || errno != EINVAL || strcmp(bad.s, first_bad))
			abort();
	} else if (r != 1 || rw.rules.len != want->len ||
		   (want->len && memcmp(rw.rules.s, want->s, want->len))) {
		abort();
	}
	rewrite_free(&rw);
	str_free(&bad);
}

static void check_list(const char *p, size_t n, const char *path)
{
	struct str want = STR_INIT, out = STR_INIT;
	int want_r = ref_list(p, n, &want);
	int r = ctl_list(path, &out);

	if (want_r < 0) {
		if (r != -1 || errno != EINVAL || out.len != 0)
			abort();
	} else {
		if (r != 1 || out.len != want.len ||
		    (want.len && memcmp(out.s, want.s, want.len) != 0))
			abort();
		size_t pos = 0, wpos = 0, count = 0;
		const char *e;
		while ((e = ctl_next(&out, &pos)) != NULL) {
			if (strcmp(e, want.s + wpos) != 0 || !*e)
				abort();
			wpos += strlen(e) + 1;
			count++;
		}
		if (wpos != want.len || count > n)
			abort();
		check_rewrite(&want, path);
	}
	str_free(&want);
	str_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];

	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	snprintf(path, sizeof path, "/dev/fd/%d", fuzz_input_fd(data + 1, n));
	check_line(p, n, path, data[0] & 1 ? "dflt" : NULL);
	check_ulong(p, n, path, data[0] >> 1);
	check_list(p, n, path);
	return 0;
}
