/*
 * fuzz_dotqmail.c: libFuzzer harness for .qmail files (mail/dotqmail.c):
 * dotqmail_parse on the file's content, and the candidate file names
 * dq_search_start/dq_search_next make from an extension.
 *
 * What must hold:
 * - dotqmail_parse agrees with a reference written here from
 *   dot-qmail(5) and dotqmail.h: all or nothing; comments and blank
 *   lines skipped but a blank first line refused; |program, ./mbox,
 *   /mbox, ./maildir/, &address and alphanumeric addresses; a line too
 *   long, a NUL, a control byte, an empty program, an address with a
 *   blank or an angle bracket refused with its line number; with the
 *   execute bit, forwards only. Every instruction's argument is a C
 *   string equal to the line's, its length right;
 * - the candidates are the exact name, then a -default name for every
 *   '-' of the ext from the right, then .qmail<dash>default; their ext
 *   part is lowercased with every '.' as ':', so no name can leave the
 *   directory, and DEFAULT's offset points into the ext.
 * Nothing is read or written but memory.
 *
 * Input: byte 0, bit 0: the file has its execute bit; bit 1: the dash
 * is "-" (else ""). Then the ext, ended by NUL; the rest is the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/str.h"
#include "mail/dotqmail.h"

struct ref_instr {
	enum dq_kind kind;
	size_t line;
	const char *arg;
	size_t len;
};

static int blank(char c)
{
	return c == ' ' || c == '\t';
}

static int alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* The instruction on one stripped line: 1 (in *in), 0 (nothing), -1. */
static int ref_line(const char *p, size_t n, size_t line, int fwd_only,
		    struct ref_instr *in)
{
	if (n == 0)
		return line == 1 ? -1 : 0;
	if (p[0] == '#')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)p[i] < 32 && p[i] != '\t') || p[i] == 127)
			return -1;
	in->line = line;
	if (p[0] == '|') {
		if (n == 1 || fwd_only)
			return -1;
		*in = (struct ref_instr){DQ_PROGRAM, line, p + 1, n - 1};
		return 1;
	}
	if (p[0] == '.' || p[0] == '/') {
		if (fwd_only)
			return -1;
		*in = (struct ref_instr){p[n - 1] == '/' ? DQ_MAILDIR : DQ_MBOX,
					 line, p, n};
		return 1;
	}
	if (p[0] == '&') {
		p++;
		n--;
	} else if (!alnum(p[0])) {
		return -1;
	}
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (blank(p[i]) || p[i] == '<' || p[i] == '>')
			return -1;
	*in = (struct ref_instr){DQ_FORWARD, line, p, n};
	return 1;
}

/* Instructions into v (room for as many as lines); returns how many, or
 * -1 with *bad the line refused. */
static long ref_parse(const char *p, size_t n, int fwd_only,
		      struct ref_instr *v, size_t *bad)
{
	size_t pos = 0, line = 0, count = 0;

	while (pos < n) {
		const char *s = p + pos;
		const char *nl = memchr(s, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - s) : n - pos;
		line++;
		pos += len + 1;
		*bad = line;
		if (len > DOTQMAIL_LINE_MAX || memchr(s, 0, len))
			return -1;
		while (len && blank(s[len - 1]))
			len--;
		int r = ref_line(s, len, line, fwd_only, &v[count]);
		if (r < 0)
			return -1;
		count += (size_t)r;
	}
	return (long)count;
}

static void check_parse(const char *p, size_t n, int fwd_only)
{
	struct str text = STR_INIT;
	struct dq_list l = DQ_LIST_INIT;
	struct dq_error err = {0, NULL};
	size_t bad = 0, lines = 1;

	for (size_t i = 0; i < n; i++)
		lines += p[i] == '\n';
	struct ref_instr *v = malloc(lines * sizeof *v);
	if (!v || str_copy(&text, p, n) < 0)
		abort();
	long want = ref_parse(p, n, fwd_only, v, &bad);
	int r = dotqmail_parse(&text, fwd_only, &l, &err);
	if (want < 0) {
		if (r != -1 || l.n != 0 || err.line != bad || !err.why)
			abort();
	} else {
		if (r != 0 || l.n != (size_t)want)
			abort();
		for (size_t i = 0; i < l.n; i++) {
			const struct dq_instr *in = &l.v[i];
			if (in->kind != v[i].kind || in->line != v[i].line ||
			    in->len != v[i].len || strlen(in->arg) != in->len ||
			    memcmp(in->arg, v[i].arg, in->len) != 0 ||
			    in->arg < text.s || in->arg + in->len > text.s + n)
				abort();
		}
	}
	dq_list_free(&l);
	str_free(&text);
	free(v);
}

/* --- candidate names --- */

static void check_name(const struct str *name, const char *dash,
		       const char *safe, size_t cut, const char *suffix)
{
	struct str want = STR_INIT;

	if (str_copys(&want, ".qmail") < 0 || str_appends(&want, dash) < 0 ||
	    str_append(&want, safe, cut) < 0 || str_appends(&want, suffix) < 0)
		abort();
	if (name->len != want.len || memcmp(name->s, want.s, want.len) != 0 ||
	    name->s[name->len] != 0)
		abort();
	str_free(&want);
}

static void check_search(const char *ext, const char *dash)
{
	struct dq_search s;
	struct str name = STR_INIT;
	size_t n = strlen(ext), deflt;
	char *safe = malloc(n + 1);

	if (!safe)
		abort();
	for (size_t i = 0; i <= n; i++) {
		char c = ext[i];
		safe[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32)
			  : c == '.'	       ? ':'
					       : c;
	}
	if (dq_search_start(&s, dash, ext) < 0)
		abort();
	/* The exact name. */
	if (dq_search_next(&s, &name, &deflt) != 1)
		abort();
	check_name(&name, dash, safe, n, "");
	if (n >= 7 && memcmp(safe + n - 7, "default", 7) == 0
		? deflt != n - 7
		: deflt != DOTQMAIL_NOT_DEFAULT)
		abort();
	/* The -default names, longest first, then the bare default. */
	for (size_t cut = n;; cut--) {
		if (cut == 0 || safe[cut - 1] == '-') {
			if (dq_search_next(&s, &name, &deflt) != 1 ||
			    deflt != cut)
				abort();
			check_name(&name, dash, safe, cut, "default");
		}
		if (cut == 0)
			break;
	}
	if (dq_search_next(&s, &name, &deflt) != 0)
		abort();
	dq_search_free(&s);
	str_free(&name);
	free(safe);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *ext = (const char *)data + 1;
	const char *nul = memchr(ext, 0, size - 1);
	if (!nul)
		return 0;
	const char *file = nul + 1;
	size_t n = (size_t)((const char *)data + size - file);

	check_parse(file, n, data[0] & 1);
	check_search(ext, data[0] & 2 ? "-" : "");
	return 0;
}
