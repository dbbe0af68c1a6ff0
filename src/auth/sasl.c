/*
 * sasl.c: parsing and decoding of SMTP AUTH PLAIN and LOGIN.
 *
 * Every length is checked before a byte is copied; a field that does
 * not fit is malformed input, never truncated. A password is allowed
 * every byte but NUL, since checkpassword(8) separates fields with NUL.
 */
#include <string.h>
#include <strings.h>

#include "auth/base64.h"
#include "auth/sasl.h"

void sasl_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n--)
		*v++ = 0;
}

static int name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

enum sasl_mech sasl_parse_auth(const char *arg, size_t n, const char **ir,
			       size_t *irlen, int *has_ir)
{
	size_t m = 0, rest;
	enum sasl_mech mech;

	*ir = NULL;
	*irlen = 0;
	*has_ir = 0;
	while (n && arg[n - 1] == ' ') /* sloppy clients end with blanks */
		n--;
	while (m < n && arg[m] != ' ')
		m++;
	if (m == 0)
		return SASL_MECH_NONE;
	if (name_is(arg, m, "PLAIN"))
		mech = SASL_MECH_PLAIN;
	else if (name_is(arg, m, "LOGIN"))
		mech = SASL_MECH_LOGIN;
	else
		return SASL_MECH_UNKNOWN;
	rest = m;
	while (rest < n && arg[rest] == ' ')
		rest++;
	if (rest == n)
		return mech;
	*ir = arg + rest;
	*irlen = n - rest;
	if (memchr(*ir, ' ', *irlen))
		return SASL_MECH_BAD;
	*has_ir = 1;
	return mech;
}

enum sasl_status sasl_decode(const char *line, size_t n, int initial,
			     unsigned char *out, size_t *outlen)
{
	*outlen = 0;
	if (!initial && n == 1 && line[0] == '*')
		return SASL_CANCELLED;
	if (initial && n == 1 && line[0] == '=')
		return SASL_OK;
	if (b64_decode(line, n, out, SASL_DECODED_MAX, outlen) < 0) {
		*outlen = 0;
		return SASL_MALFORMED;
	}
	return SASL_OK;
}

int sasl_user_ok(const char *p, size_t n)
{
	if (n == 0 || n > SASL_DECODED_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static enum sasl_status set_user(struct sasl_creds *c, const void *p, size_t n)
{
	if (!sasl_user_ok(p, n))
		return SASL_MALFORMED;
	memcpy(c->user, p, n);
	c->user[n] = 0;
	c->ulen = n;
	return SASL_OK;
}

static enum sasl_status set_pass(struct sasl_creds *c, const void *p, size_t n)
{
	if (n == 0 || n > SASL_DECODED_MAX || memchr(p, 0, n))
		return SASL_MALFORMED;
	memcpy(c->pass, p, n);
	c->pass[n] = 0;
	c->plen = n;
	return SASL_OK;
}

enum sasl_status sasl_plain(const unsigned char *p, size_t n,
			    struct sasl_creds *c)
{
	const unsigned char *nul1, *nul2, *user, *pass;
	size_t zlen, ulen;

	nul1 = memchr(p, 0, n);
	if (!nul1)
		return SASL_MALFORMED;
	zlen = (size_t)(nul1 - p);
	user = nul1 + 1;
	nul2 = memchr(user, 0, n - zlen - 1);
	if (!nul2)
		return SASL_MALFORMED;
	ulen = (size_t)(nul2 - user);
	pass = nul2 + 1;
	if (set_user(c, user, ulen) != SASL_OK ||
	    set_pass(c, pass, n - zlen - ulen - 2) != SASL_OK)
		return SASL_MALFORMED;
	if (zlen && (zlen != ulen || memcmp(p, user, ulen) != 0))
		return SASL_AUTHZID;
	return SASL_OK;
}

enum sasl_status sasl_login_user(const unsigned char *p, size_t n,
				 struct sasl_creds *c)
{
	return set_user(c, p, n);
}

enum sasl_status sasl_login_pass(const unsigned char *p, size_t n,
				 struct sasl_creds *c)
{
	return set_pass(c, p, n);
}
