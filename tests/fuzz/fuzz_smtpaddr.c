/*
 * fuzz_smtpaddr.c: libFuzzer harness for mail/smtpaddr.c.
 *
 * What must hold whatever the client sends after "MAIL FROM:":
 * - a parsed address is a clean C string: no NUL, CR or LF in it;
 * - it is valid UTF-8, and 7-bit unless SMTPUTF8 was given;
 * - params points into the input, and the parameter iterator moves
 *   forward, never past the end, and yields keys and values without
 *   blanks (keys without '=');
 * - utf8_valid agrees with a reference decoder written here from the
 *   table of well-formed sequences in RFC 3629 section 4;
 * - smtpaddr_literal agrees with a reference built on inet_pton.
 * The input is never written anywhere.
 *
 * Input: byte 0 holds flags (bit 0: SMTPUTF8 given); the rest is text.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/str.h"
#include "mail/smtpaddr.h"

/* RFC 3629, section 4: the well-formed byte sequences, as ranges. */
static size_t ref_utf8_char(const uint8_t *p, size_t n)
{
	static const struct {
		uint8_t lo[4], hi[4];
		size_t len;
	} forms[] = {
	    {{0x00}, {0x7f}, 1},
	    {{0xc2, 0x80}, {0xdf, 0xbf}, 2},
	    {{0xe0, 0xa0, 0x80}, {0xe0, 0xbf, 0xbf}, 3},
	    {{0xe1, 0x80, 0x80}, {0xec, 0xbf, 0xbf}, 3},
	    {{0xed, 0x80, 0x80}, {0xed, 0x9f, 0xbf}, 3},
	    {{0xee, 0x80, 0x80}, {0xef, 0xbf, 0xbf}, 3},
	    {{0xf0, 0x90, 0x80, 0x80}, {0xf0, 0xbf, 0xbf, 0xbf}, 4},
	    {{0xf1, 0x80, 0x80, 0x80}, {0xf3, 0xbf, 0xbf, 0xbf}, 4},
	    {{0xf4, 0x80, 0x80, 0x80}, {0xf4, 0x8f, 0xbf, 0xbf}, 4},
	};

	for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
		if (forms[f].len > n)
			continue;
		size_t k = 0;
		while (k < forms[f].len && p[k] >= forms[f].lo[k] &&
		       p[k] <= forms[f].hi[k])
			k++;
		if (k == forms[f].len)
			return k;
	}
	return 0;
}

static int ref_utf8_valid(const uint8_t *p, size_t n)
{
	while (n) {
		size_t k = ref_utf8_char(p, n);
		if (!k)
			return 0;
		p += k;
		n -= k;
	}
	return 1;
}

static int has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* Reference for smtpaddr_literal: "[IPv4]" or "[IPv6:addr]". */
static int ref_literal(const char *d, char *ip, size_t ipsize)
{
	size_t n = strlen(d);

	if (n == 0 || d[0] != '[')
		return 0;
	if (n < 2 || d[n - 1] != ']' || n - 2 >= ipsize)
		return -1;
	memcpy(ip, d + 1, n - 2);
	ip[n - 2] = 0;
	unsigned char bin[16];
	if (inet_pton(AF_INET, ip, bin) == 1)
		return 1;
	if (strncasecmp(ip, "IPv6:", 5) == 0 &&
	    inet_pton(AF_INET6, ip + 5, bin) == 1) {
		memmove(ip, ip + 5, strlen(ip + 5) + 1);
		return 1;
	}
	return -1;
}

static void check_literal(const char *domain)
{
	struct str ip = STR_INIT;
	char want_ip[1024];
	int want = ref_literal(domain, want_ip, sizeof want_ip);
	int have = smtpaddr_literal(domain, &ip);

	if (want != have)
		abort();
	if (have == 1 && strcmp(ip.s, want_ip) != 0)
		abort();
	str_free(&ip);
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void check_params(const char *params, size_t n)
{
	struct str key = STR_INIT, value = STR_INIT;
	size_t pos = 0, rounds = 0;
	int has_value = 0, r;

	while ((r = smtpaddr_next_param(params, n, &pos, &key, &value,
					&has_value)) == 1) {
		if (pos > n || ++rounds > n)
			abort();
		if (memchr(key.s, '=', key.len) || (!has_value && value.len))
			abort();
		for (size_t i = 0; i < key.len; i++)
			if (is_blank(key.s[i]))
				abort();
		for (size_t i = 0; i < value.len; i++)
			if (is_blank(value.s[i]))
				abort();
		if (key.len && !memchr(key.s, 0, key.len) &&
		    !smtpaddr_has_param(params, n, key.s))
			abort();
	}
	if (r != 0)
		abort();
	str_free(&key);
	str_free(&value);
}

static void check_parse(const char *s, size_t n, int utf8_ok)
{
	struct str addr = STR_INIT;
	const char *params = NULL;
	enum smtpaddr_result res =
	    smtpaddr_parse(s, n, utf8_ok, &addr, &params);

	if (res != SMTPADDR_OK) {
		str_free(&addr);
		return;
	}
	if (!params || params < s || params > s + n || addr.len > n)
		abort();
	if (addr.len &&
	    (memchr(addr.s, 0, addr.len) || memchr(addr.s, '\r', addr.len) ||
	     memchr(addr.s, '\n', addr.len)))
		abort();
	if (addr.s && addr.s[addr.len] != 0)
		abort();
	if (!ref_utf8_valid((const uint8_t *)addr.s, addr.len) ||
	    (!utf8_ok && has_8bit(addr.s, addr.len)))
		abort();
	const char *at = addr.len ? strrchr(addr.s, '@') : NULL;
	if (at)
		check_literal(at + 1);
	check_params(params, (size_t)(s + n - params));
	str_free(&addr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int utf8_ok = data[0] & 1;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;

	if (utf8_valid(s, n) != ref_utf8_valid(data + 1, n))
		abort();
	check_parse(s, n, utf8_ok);
	check_params(s, n);

	/* smtpaddr_literal takes a C string: up to the first NUL. */
	char *domain = malloc(n + 1);
	if (!domain)
		return 0;
	memcpy(domain, s, n);
	domain[n] = 0;
	check_literal(domain);
	free(domain);
	return 0;
}
