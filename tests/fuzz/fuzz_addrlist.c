/*
 * fuzz_addrlist.c: libFuzzer harness for address lists in header fields
 * (mail/addrlist.c), UTF-8 included: what qmail-inject and qmail-ofmipd
 * read from To, Cc, From and the like.
 *
 * What must hold for any field value:
 * - a parse either fails with EINVAL and leaves nothing, or gives
 *   addresses whose recorded positions lie inside the text, in order,
 *   each local part before its host;
 * - the envelope form of every address (local part and host) holds no
 *   NUL, CR or LF: it becomes an envelope address, and from there a
 *   header line (Delivered-To) and a log line;
 * - writing the addresses back with addr_append, and parsing that, gives
 *   the same envelope forms: quoting loses and adds nothing;
 * - an address with a display name made by addr_append_phrase, or a
 *   comment made by addr_append_comment, still parses to that address;
 * - addr_is_dot_atom agrees with RFC 5322's dot-atom (any byte from
 *   0x80 up counts as atext, for RFC 6532).
 * Nothing is written anywhere.
 *
 * Input: the field value (for the phrase and comment checks, the same
 * bytes as a display name).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/str.h"
#include "mail/addrlist.h"

static int atext(unsigned char c)
{
	return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static int ref_dot_atom(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return 0;
	for (;;) {
		size_t start = i;
		while (i < n && atext((unsigned char)s[i]))
			i++;
		if (i == start)
			return 0; /* an empty atom */
		if (i == n)
			return 1;
		if (s[i] != '.')
			return 0;
		i++;
	}
}

static void add(struct str *s, const void *p, size_t n)
{
	if (str_append(s, p, n) < 0)
		abort();
}

static int clean(const char *s, size_t n)
{
	return !memchr(s, 0, n) && !memchr(s, '\r', n) && !memchr(s, '\n', n);
}

static void check_positions(const struct addrlist *al, size_t n)
{
	size_t done = 0;

	for (size_t k = 0; k < al->n; k++) {
		const struct addr *a = &al->a[k];
		if (a->null)
			continue;
		if (a->local_start < done || a->local_start > a->local_end ||
		    a->local_end > a->host_start ||
		    a->host_start > a->host_end || a->host_end > n ||
		    (!a->has_at && (a->host_start != a->local_end ||
				    a->host_end != a->local_end)))
			abort();
		done = a->host_end;
	}
}

/* The envelope forms of al, each "local\0host\0", for comparing. */
static void envelope_forms(const struct addrlist *al, struct str *out)
{
	size_t llen, hlen;

	for (size_t k = 0; k < al->n; k++) {
		if (al->a[k].null)
			continue;
		const char *l = addr_local(al, k, &llen);
		const char *h = addr_host(al, k, &hlen);
		if (!clean(l, llen) || !clean(h, hlen))
			abort();
		add(out, l, llen);
		add(out, "", 1);
		add(out, h, hlen);
		add(out, "", 1);
	}
}

static void check_rewritten(const struct addrlist *al, const struct str *want)
{
	struct str text = STR_INIT, again = STR_INIT;
	struct addrlist al2;
	size_t llen, hlen;

	for (size_t k = 0; k < al->n; k++) {
		if (al->a[k].null)
			continue;
		const char *l = addr_local(al, k, &llen);
		const char *h = addr_host(al, k, &hlen);
		if (text.len)
			add(&text, ", ", 2);
		if (addr_append(&text, l, llen, h, hlen) < 0)
			abort();
	}
	addrlist_init(&al2);
	if (addrlist_parse(&al2, text.s ? text.s : "", text.len) < 0)
		abort();
	envelope_forms(&al2, &again);
	if (again.len != want->len ||
	    (want->len && memcmp(again.s, want->s, want->len) != 0))
		abort();
	addrlist_free(&al2);
	str_free(&text);
	str_free(&again);
}

/* name <joe@example.org>, and joe@example.org (name): one address. */
static void check_display(const char *name, size_t n)
{
	struct str text = STR_INIT;
	struct addrlist al;
	size_t llen, hlen;

	if (memchr(name, 0, n))
		return; /* a NUL is refused anywhere */
	addrlist_init(&al);
	for (int form = 0; form < 2; form++) {
		str_clear(&text);
		if (form == 0 && (addr_append_phrase(&text, name, n) < 0 ||
				  str_appends(&text, " <joe@example.org>") < 0))
			abort();
		if (form == 1 && (str_appends(&text, "joe@example.org ") < 0 ||
				  addr_append_comment(&text, name, n) < 0))
			abort();
		if (addrlist_parse(&al, text.s, text.len) < 0 || al.n != 1)
			abort();
		const char *l = addr_local(&al, 0, &llen);
		const char *h = addr_host(&al, 0, &hlen);
		if (llen != 3 || memcmp(l, "joe", 3) || hlen != 11 ||
		    memcmp(h, "example.org", 11))
			abort();
	}
	addrlist_free(&al);
	str_free(&text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct addrlist al;
	struct str forms = STR_INIT;

	addrlist_init(&al);
	if (addrlist_parse(&al, p, size) < 0) {
		if ((errno != EINVAL) || al.n != 0 || al.canon.len != 0)
			abort();
	} else {
		check_positions(&al, size);
		envelope_forms(&al, &forms);
		check_rewritten(&al, &forms);
	}
	addrlist_free(&al);
	str_free(&forms);
	if (addr_is_dot_atom(p, size) != ref_dot_atom(p, size))
		abort();
	check_display(p, size);
	return 0;
}
