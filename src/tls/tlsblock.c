/*
 * tlsblock.c: building, reading and applying the UCSPI-TLS block.
 *
 * Values come from certificates the peer chose; they are checked byte
 * by byte and never truncated, so that an application can trust that a
 * variable it sees holds the whole field or is absent. Reading is
 * bounded by TLSBLOCK_MAX. It must never write to a descriptor other
 * than the one it is given, nor link a TLS library.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lib/env.h"
#include "lib/str.h"
#include "tls/tlsblock.h"

static int name_ok(const char *name, size_t len)
{
	if (len == 0 || len > TLSBLOCK_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

static int value_ok(const char *value, size_t len)
{
	if (len > TLSBLOCK_VALUE_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* Room for the entry plus the block's final NUL, within TLSBLOCK_MAX. */
static int fits(const struct str *b, size_t entry)
{
	return b->len <= TLSBLOCK_MAX && entry < TLSBLOCK_MAX - b->len;
}

int tlsblock_putn(struct str *b, const char *name, const char *value,
		  size_t len)
{
	size_t nlen = name ? strlen(name) : 0;
	size_t old = b->len;

	if (!name_ok(name ? name : "", nlen)) {
		errno = EINVAL;
		return -1;
	}
	if (value && !value_ok(value, len))
		value = NULL;
	/* name, '=', value, NUL: each at most a few KiB, no overflow. */
	size_t entry = nlen + 1 + (value ? 1 + len : 0);
	if (!fits(b, entry)) {
		errno = EMSGSIZE;
		return -1;
	}
	if (str_append(b, name, nlen) < 0 ||
	    (value &&
	     (str_appendc(b, '=') < 0 || str_append(b, value, len) < 0)) ||
	    str_append0(b) < 0) {
		str_truncate(b, old);
		return -1;
	}
	return 0;
}

int tlsblock_put(struct str *b, const char *name, const char *value)
{
	return tlsblock_putn(b, name, value, value ? strlen(value) : 0);
}

int tlsblock_putnum(struct str *b, const char *name, unsigned long n)
{
	char digits[3 * sizeof n + 1];
	size_t i = sizeof digits;

	do {
		digits[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	return tlsblock_putn(b, name, digits + i, sizeof digits - i);
}

int tlsblock_end(struct str *b)
{
	if (b->len >= TLSBLOCK_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	return str_append0(b);
}

/* Where the block in p[0..n) ends (bytes), or 0 when it has not ended. */
static size_t block_end(const char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (p[0] == 0)
		return 1; /* the empty block */
	/* Entries are never empty, so the first "\0\0" is the end. */
	for (size_t i = 1; i + 1 < n; i++)
		if (p[i] == 0 && p[i + 1] == 0)
			return i + 2;
	return 0;
}

int tlsblock_complete(const char *p, size_t n)
{
	return n > 0 && block_end(p, n) == n;
}

int tlsblock_read(int fd, struct str *out)
{
	char tmp[1024];

	str_clear(out);
	for (;;) {
		size_t room = TLSBLOCK_MAX - out->len;
		if (room == 0) {
			errno = EMSGSIZE;
			return -1;
		}
		/* The writer sends the block alone; more is an error. */
		ssize_t r =
		    read(fd, tmp, room < sizeof tmp ? room : sizeof tmp);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		if (str_append(out, tmp, (size_t)r) < 0)
			return -1;
		size_t end = block_end(out->s, out->len);
		if (end == out->len)
			return 1;
		if (end) { /* bytes after the block: not a UCSPI-TLS peer */
			errno = EINVAL;
			return -1;
		}
	}
}

/* Checks every entry; with apply set, also changes the environment. */
static int walk(const char *p, size_t n, const char *prefix, int apply)
{
	size_t plen = strlen(prefix);
	size_t pos = 0;

	while (pos < n && p[pos]) {
		const char *entry = p + pos;
		const char *end = memchr(entry, 0, n - pos);
		if (!end)
			return -1;
		size_t len = (size_t)(end - entry);
		const char *eq = memchr(entry, '=', len);
		size_t nlen = eq ? (size_t)(eq - entry) : len;
		if (!name_ok(entry, nlen))
			return -1;
		if (apply && nlen >= plen && memcmp(entry, prefix, plen) == 0) {
			char name[TLSBLOCK_NAME_MAX + 1];
			memcpy(name, entry, nlen);
			name[nlen] = 0;
			if (eq ? env_set(name, eq + 1) : env_unset(name))
				return -1;
		}
		pos += len + 1;
	}
	return 0;
}

int tlsblock_apply(const char *p, size_t n, const char *prefix)
{
	if (!tlsblock_complete(p, n) || walk(p, n, prefix, 0) < 0) {
		errno = EINVAL;
		return -1;
	}
	return walk(p, n, prefix, 1);
}

int tlsenv_from_tcp(void)
{
	static const char *const parts[] = {
	    "LOCALIP",	  "LOCALPORT",	"LOCALHOST",  "REMOTEIP",
	    "REMOTEPORT", "REMOTEHOST", "REMOTEINFO",
	};

	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		char tcp[32] = "TCP", ssl[32] = "SSL";
		strcat(tcp, parts[i]);
		strcat(ssl, parts[i]);
		const char *v = env_get(tcp);
		if (v ? env_set(ssl, v) : env_unset(ssl))
			return -1;
	}
	return 0;
}
