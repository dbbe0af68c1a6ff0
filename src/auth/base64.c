/*
 * base64.c: strict base64 decoding and plain encoding.
 *
 * The decoder refuses anything but the canonical spelling, and checks
 * the output room before writing a byte: it must never read or write
 * outside the buffers it is given, whatever the input.
 */
#include <errno.h>

#include "auth/base64.h"
#include "lib/checked.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of c, or -1. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* How many '=' end the input (0, 1 or 2), or -1 when padding is
 * misplaced. */
static int b64_padding(const char *in, size_t n)
{
	int pad = 0;

	while (pad < (int)n && in[n - 1 - (size_t)pad] == '=')
		pad++;
	if (pad > 2)
		return -1;
	for (size_t i = 0; i < n - (size_t)pad; i++)
		if (in[i] == '=')
			return -1;
	return pad;
}

int b64_decode(const char *in, size_t n, unsigned char *out, size_t outmax,
	       size_t *outlen)
{
	int pad;
	size_t need, o = 0;

	if (n % 4 != 0 || (pad = b64_padding(in, n)) < 0) {
		errno = EINVAL;
		return -1;
	}
	need = n / 4 * 3 - (size_t)pad;
	if (need > outmax) {
		errno = EMSGSIZE;
		return -1;
	}
	for (size_t i = 0; i < n; i += 4) {
		unsigned long group = 0;
		int chars = 4;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + (size_t)k];
			int v = c == '=' ? 0 : b64_value(c);
			if (c == '=')
				chars--;
			else if (v < 0) {
				errno = EINVAL;
				return -1;
			}
			group = group << 6 | (unsigned long)v;
		}
		/* Canonical: the bits no output byte uses must be zero. */
		if ((chars == 3 && (group & 0xff)) ||
		    (chars == 2 && (group & 0xffff))) {
			errno = EINVAL;
			return -1;
		}
		out[o++] = (unsigned char)(group >> 16);
		if (chars > 2)
			out[o++] = (unsigned char)(group >> 8);
		if (chars > 3)
			out[o++] = (unsigned char)group;
	}
	*outlen = o;
	return 0;
}

int b64_encode(struct str *out, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t groups, room;

	groups = n / 3 + (n % 3 != 0);
	if (size_mul(groups, 4, &room) < 0 || str_reserve(out, room) < 0)
		return -1;
	for (size_t i = 0; i < n; i += 3) {
		size_t left = n - i;
		unsigned long g = (unsigned long)s[i] << 16;
		if (left > 1)
			g |= (unsigned long)s[i + 1] << 8;
		if (left > 2)
			g |= s[i + 2];
		char quad[4] = {alphabet[g >> 18 & 63], alphabet[g >> 12 & 63],
				left > 1 ? alphabet[g >> 6 & 63] : '=',
				left > 2 ? alphabet[g & 63] : '='};
		if (str_append(out, quad, 4) < 0)
			return -1;
	}
	return 0;
}
