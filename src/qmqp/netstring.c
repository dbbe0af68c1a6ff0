/*
 * netstring.c: netstrings (cr.yp.to/proto/netstrings.txt).
 */
#include <errno.h>

#include "qmqp/netstring.h"

int netstring_read_len(struct buf *in, unsigned long long max,
		       unsigned long long *len)
{
	unsigned long long n = 0;
	int digits = 0;
	char c;

	for (;;) {
		ssize_t r = buf_read(in, &c, 1);
		if (r <= 0) {
			if (r == 0)
				errno = EPROTO;
			return -1;
		}
		if (c == ':')
			break;
		unsigned d = (unsigned)(c - '0');
		/* No leading zeros, and n * 10 + d must stay <= max. */
		if (c < '0' || c > '9' || (digits == 1 && n == 0) || d > max ||
		    n > (max - d) / 10) {
			errno = EPROTO;
			return -1;
		}
		n = n * 10 + d;
		digits++;
	}
	if (digits == 0 || n > max) {
		errno = EPROTO;
		return -1;
	}
	*len = n;
	return 0;
}

int netstring_read_end(struct buf *in)
{
	char c;
	ssize_t r = buf_read(in, &c, 1);
	if (r == 1 && c == ',')
		return 0;
	if (r >= 0)
		errno = EPROTO;
	return -1;
}

int netstring_read(struct buf *in, size_t max, struct str *out)
{
	unsigned long long len;

	if (netstring_read_len(in, max, &len) < 0)
		return -1;
	str_clear(out);
	if (str_reserve(out, (size_t)len) < 0)
		return -1;
	if (len && buf_readall(in, out->s, (size_t)len) < 0) {
		if (errno == EPIPE)
			errno = EPROTO;
		return -1;
	}
	out->len = (size_t)len;
	out->s[out->len] = 0;
	return netstring_read_end(in);
}

int netstring_append(struct str *out, const void *p, size_t n)
{
	if (str_appendnum(out, n) < 0 || str_appendc(out, ':') < 0 ||
	    str_append(out, p, n) < 0 || str_appendc(out, ',') < 0)
		return -1;
	return 0;
}
