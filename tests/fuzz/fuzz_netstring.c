/*
 * fuzz_netstring.c: libFuzzer harness for qmqp/netstring.c.
 *
 * Every result of netstring_read and netstring_read_len is compared with
 * a reference parser written here from the format ("len:data,", decimal
 * length without leading zeros), read through buffers of many sizes.
 * A good netstring must also re-encode, by netstring_append, to exactly
 * the bytes it was read from, since the format has one spelling per
 * string. It must never touch a named file (fuzz_input.h).
 *
 * Input: byte 0 picks the mode and the maximum, byte 1 the buffer size;
 * in mode "len" 8 more bytes give a 64-bit maximum. The rest is the wire.
 */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "qmqp/netstring.h"

struct ref {
	const uint8_t *p;
	size_t n, pos;
};

/* Reference for "len:": 1 with *len, or 0 at the first byte that makes
 * it bad (or at EOF). */
static int ref_len(struct ref *r, unsigned long long max,
		   unsigned long long *len)
{
	unsigned long long v = 0;
	size_t digits = 0;

	while (r->pos < r->n) {
		uint8_t c = r->p[r->pos++];
		if (c == ':') {
			*len = v;
			return digits > 0;
		}
		if (c < '0' || c > '9' || (digits == 1 && v == 0))
			return 0;
		if (__builtin_mul_overflow(v, 10ULL, &v) ||
		    __builtin_add_overflow(v, (unsigned long long)(c - '0'),
					   &v) ||
		    v > max)
			return 0;
		digits++;
	}
	return 0;
}

/* Reference for a whole netstring: 1 with its data at p[*start..+len). */
static int ref_netstring(struct ref *r, size_t max, size_t *start, size_t *len)
{
	unsigned long long l;

	if (!ref_len(r, max, &l) || l > r->n - r->pos)
		return 0;
	*start = r->pos;
	*len = (size_t)l;
	r->pos += (size_t)l;
	if (r->pos >= r->n || r->p[r->pos] != ',')
		return 0;
	r->pos++;
	return 1;
}

static void check_reencoding(const struct str *got, const uint8_t *raw,
			     size_t rawlen)
{
	struct str enc = STR_INIT;

	if (netstring_append(&enc, got->s, got->len) < 0)
		abort();
	if (enc.len != rawlen || memcmp(enc.s, raw, rawlen) != 0)
		abort();
	str_free(&enc);
}

static void fuzz_read(struct buf *b, struct ref *r, size_t max)
{
	struct str got = STR_INIT;

	for (;;) {
		size_t begin = r->pos, start = 0, len = 0;
		int want = ref_netstring(r, max, &start, &len);
		errno = 0;
		int have = netstring_read(b, max, &got) == 0;
		if (want != have)
			abort();
		if (!have) {
			if (errno != EPROTO)
				abort();
			break;
		}
		if (got.len != len || got.len > max ||
		    memcmp(got.s, r->p + start, len) != 0 || got.s[len] != 0)
			abort();
		check_reencoding(&got, r->p + begin, r->pos - begin);
	}
	str_free(&got);
}

/* One length with any 64-bit maximum; on success the buffer must stand
 * just after the ':'. */
static void fuzz_len(struct buf *b, struct ref *r, unsigned long long max)
{
	unsigned long long want_len = 0, have_len = 0;
	int want = ref_len(r, max, &want_len);

	errno = 0;
	int have = netstring_read_len(b, max, &have_len) == 0;
	if (want != have)
		abort();
	if (!have) {
		if (errno != EPROTO)
			abort();
		return;
	}
	if (have_len != want_len || have_len > max)
		abort();
	struct str rest = STR_INIT;
	if (fuzz_read_rest(b, &rest) < 0 || rest.len != r->n - r->pos ||
	    (rest.len && memcmp(rest.s, r->p + r->pos, rest.len) != 0))
		abort();
	str_free(&rest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[] = {0, 1, 9, 10, 99, 100, 1002, 65535};
	static char space[BUF_SIZE];
	struct buf b;

	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	size_t bufsize = fuzz_buf_size(data[1]);
	data += 2;
	size -= 2;
	if (mode & 0x80) {
		unsigned long long max = 0;
		if (size < 8)
			return 0;
		for (int i = 0; i < 8; i++)
			max = max << 8 | data[i];
		data += 8;
		size -= 8;
		struct ref r = {data, size, 0};
		buf_init(&b, fuzz_input_fd(data, size), space, bufsize, 0);
		fuzz_len(&b, &r, max);
		return 0;
	}
	struct ref r = {data, size, 0};
	buf_init(&b, fuzz_input_fd(data, size), space, bufsize, 0);
	fuzz_read(&b, &r, maxes[mode % (sizeof maxes / sizeof maxes[0])]);
	return 0;
}
