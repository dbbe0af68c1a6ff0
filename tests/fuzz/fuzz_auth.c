/*
 * fuzz_auth.c: libFuzzer harness for SMTP AUTH decoding: auth/base64.c
 * and the PLAIN and LOGIN parts of auth/sasl.c.
 *
 * What must hold whatever a client sends:
 * - b64_decode agrees with a reference decoder written here from RFC
 *   4648 (canonical spelling only); it never writes past the room it is
 *   given (an exact-size heap buffer, so ASan sees one byte too many)
 *   and says EMSGSIZE exactly when the output would not fit;
 * - decode(encode(x)) == x for any bytes, encode(decode(s)) == s for any
 *   s that decodes, and the encoded length is 4 * ceil(n / 3);
 * - sasl_parse_auth finds the mechanism and the initial response as a
 *   reference does, the response lying inside the argument;
 * - sasl_decode, sasl_plain and sasl_login_* agree with a reference
 *   (authzid NUL user NUL password; a user of 1 to 750 bytes without
 *   control bytes, a password of 1 to 750 bytes without NUL), and what
 *   they store is NUL-terminated and exactly that.
 * Nothing is written anywhere.
 *
 * Input: byte 0 is the room given to b64_decode (255: as much as the
 * input could need); the rest is a line from the client.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/base64.h"
#include "auth/sasl.h"
#include "lib/str.h"

/* --- base64 --- */

static int ref_value(unsigned char c)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(alphabet, c) : NULL;
	return p ? (int)(p - alphabet) : -1;
}

/* RFC 4648 section 4, canonical: groups of four, '=' only to pad the
 * last group, pad bits zero. Returns the decoded length or -1. */
static long ref_b64(const char *s, size_t n, unsigned char *out)
{
	size_t o = 0;

	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)s[i + (size_t)k];
			if (c == '=') {
				if (i + 4 != n || k < 2)
					return -1;
				pad++;
				v[k] = 0;
			} else {
				if (pad || (v[k] = ref_value(c)) < 0)
					return -1;
			}
		}
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad == 2) {
			if (v[1] & 15)
				return -1;
			break;
		}
		out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad == 1) {
			if (v[2] & 3)
				return -1;
			break;
		}
		out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	return (long)o;
}

static void check_decode(const char *s, size_t n, size_t room)
{
	unsigned char *want = malloc(n / 4 * 3 + 1);
	unsigned char *out = malloc(room ? room : 1);
	size_t len = 0;

	if (!want || !out)
		abort();
	long wlen = ref_b64(s, n, want);
	errno = 0;
	int r = b64_decode(s, n, out, room, &len);
	if (wlen < 0) {
		/* Both faults may apply; either may be named. */
		if (r != -1 || (errno != EINVAL && errno != EMSGSIZE))
			abort();
	} else if ((size_t)wlen > room) {
		if (r != -1 || errno != EMSGSIZE)
			abort();
	} else {
		if (r != 0 || len != (size_t)wlen || len > B64_DECODED_MAX(n) ||
		    (len && memcmp(out, want, len) != 0))
			abort();
		/* The canonical spelling is the only one. */
		struct str again = STR_INIT;
		if (b64_encode(&again, out, len) < 0 || again.len != n ||
		    (n && memcmp(again.s, s, n) != 0))
			abort();
		str_free(&again);
	}
	free(want);
	free(out);
}

static void check_roundtrip(const unsigned char *p, size_t n)
{
	struct str enc = STR_INIT;
	size_t len;

	if (b64_encode(&enc, p, n) < 0)
		abort();
	if (enc.len != (n + 2) / 3 * 4)
		abort();
	unsigned char *back = malloc(n ? n : 1);
	if (!back || b64_decode(enc.s ? enc.s : "", enc.len, back, n, &len) ||
	    len != n || (n && memcmp(back, p, n) != 0))
		abort();
	free(back);
	str_free(&enc);
}

/* --- SASL --- */

static enum sasl_mech ref_mech(const char *p, size_t n, size_t *ir,
			       size_t *irlen)
{
	size_t m = 0;

	while (n && p[n - 1] == ' ')
		n--;
	while (m < n && p[m] != ' ')
		m++;
	*ir = *irlen = 0;
	if (m == 0)
		return SASL_MECH_NONE;
	enum sasl_mech mech = SASL_MECH_UNKNOWN;
	if (m == 5 && strncasecmp(p, "PLAIN", 5) == 0)
		mech = SASL_MECH_PLAIN;
	if (m == 5 && strncasecmp(p, "LOGIN", 5) == 0)
		mech = SASL_MECH_LOGIN;
	if (mech == SASL_MECH_UNKNOWN)
		return mech;
	while (m < n && p[m] == ' ')
		m++;
	*ir = m;
	*irlen = n - m;
	if (memchr(p + m, ' ', n - m))
		return SASL_MECH_BAD;
	return mech;
}

static int ref_user_ok(const unsigned char *p, size_t n)
{
	if (n < 1 || n > SASL_DECODED_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	return 1;
}

static int ref_pass_ok(const unsigned char *p, size_t n)
{
	return n >= 1 && n <= SASL_DECODED_MAX && !memchr(p, 0, n);
}

static void expect_field(const char *have, size_t hlen, const unsigned char *p,
			 size_t n)
{
	if (hlen != n || memcmp(have, p, n) != 0 || have[n] != 0)
		abort();
}

static void check_plain(const unsigned char *p, size_t n)
{
	struct sasl_creds c;
	enum sasl_status want = SASL_MALFORMED;
	const unsigned char *nul1 = memchr(p, 0, n), *nul2 = NULL, *user = NULL;
	size_t zlen = 0, ulen = 0, plen = 0;

	if (nul1) {
		zlen = (size_t)(nul1 - p);
		user = nul1 + 1;
		nul2 = memchr(user, 0, n - zlen - 1);
	}
	if (nul2) {
		ulen = (size_t)(nul2 - user);
		plen = n - zlen - ulen - 2;
		if (ref_user_ok(user, ulen) && ref_pass_ok(nul2 + 1, plen))
			want = zlen && (zlen != ulen || memcmp(p, user, zlen))
				   ? SASL_AUTHZID
				   : SASL_OK;
	}
	memset(&c, 0xa5, sizeof c);
	if (sasl_plain(p, n, &c) != want)
		abort();
	if (want != SASL_MALFORMED) {
		expect_field(c.user, c.ulen, user, ulen);
		expect_field(c.pass, c.plen, nul2 + 1, plen);
	}
	sasl_wipe(&c, sizeof c);
}

static void check_login(const unsigned char *p, size_t n)
{
	struct sasl_creds c;
	int user_ok = ref_user_ok(p, n), pass_ok = ref_pass_ok(p, n);

	if ((sasl_login_user(p, n, &c) == SASL_OK) != user_ok ||
	    (sasl_login_pass(p, n, &c) == SASL_OK) != pass_ok)
		abort();
	if (user_ok)
		expect_field(c.user, c.ulen, p, n);
	if (pass_ok)
		expect_field(c.pass, c.plen, p, n);
	if (sasl_user_ok((const char *)p, n) != user_ok)
		abort();
	sasl_wipe(&c, sizeof c);
}

/* One response, as an initial response and as a later one. */
static void check_response(const char *s, size_t n)
{
	unsigned char out[SASL_DECODED_MAX], want[SASL_DECODED_MAX + 3];
	size_t len;

	for (int initial = 0; initial < 2; initial++) {
		enum sasl_status r = sasl_decode(s, n, initial, out, &len);
		if (!initial && n == 1 && s[0] == '*') {
			if (r != SASL_CANCELLED || len != 0)
				abort();
			continue;
		}
		if (initial && n == 1 && s[0] == '=') {
			if (r != SASL_OK || len != 0)
				abort();
			continue;
		}
		long wlen = n / 4 * 3 <= sizeof want ? ref_b64(s, n, want) : -2;
		if (wlen == -2)
			wlen = n % 4 ? -1 : SASL_DECODED_MAX + 1; /* too long */
		if (wlen < 0 || wlen > SASL_DECODED_MAX) {
			if (r != SASL_MALFORMED || len != 0)
				abort();
			continue;
		}
		if (r != SASL_OK || len != (size_t)wlen ||
		    (len && memcmp(out, want, len) != 0))
			abort();
		check_plain(out, len);
		check_login(out, len);
	}
}

static void check_auth(const char *s, size_t n)
{
	const char *ir;
	size_t irlen, want_ir, want_irlen;
	int has_ir;
	enum sasl_mech want = ref_mech(s, n, &want_ir, &want_irlen);
	enum sasl_mech mech = sasl_parse_auth(s, n, &ir, &irlen, &has_ir);

	if (mech != want)
		abort();
	if (mech == SASL_MECH_PLAIN || mech == SASL_MECH_LOGIN) {
		if (has_ir != (want_irlen > 0))
			abort();
		if (has_ir && (ir != s + want_ir || irlen != want_irlen))
			abort();
		if (has_ir)
			check_response(ir, irlen);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	size_t room = data[0] == 255 ? n / 4 * 3 : data[0];

	check_decode(s, n, room);
	check_roundtrip(data + 1, n);
	check_auth(s, n);
	check_response(s, n);
	check_plain(data + 1, n);
	check_login(data + 1, n);
	return 0;
}
