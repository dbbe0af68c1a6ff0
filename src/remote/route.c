/*
 * route.c: control/smtproutes.
 *
 * Lines are checked when they are read, so that a lookup cannot fail on
 * a bad line; a bad line stops the load. The relay is only ever used as
 * a DNS name or a literal, never placed on a command line.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/checked.h"
#include "lib/ctl.h"
#include "remote/dns.h"
#include "remote/route.h"

/* Split "relay[:port]": the relay's length and the port (SMTP_PORT when
 * absent or empty). Returns 0, or -1 when the value is malformed. */
static int parse_value(const char *v, size_t len, size_t *relay_len,
		       unsigned *port)
{
	size_t rl;

	if (len > 0 && v[0] == '[') {
		const char *end = memchr(v, ']', len);
		char literal[80];
		struct dns_ip ip;
		if (!end)
			return -1;
		rl = (size_t)(end - v) + 1;
		if (rl >= sizeof literal)
			return -1;
		memcpy(literal, v, rl);
		literal[rl] = '\0';
		if (dns_literal(literal, &ip) != 1)
			return -1;
	} else {
		const char *colon = memchr(v, ':', len);
		rl = colon ? (size_t)(colon - v) : len;
		for (size_t i = 0; i < rl; i++)
			if ((unsigned char)v[i] <= ' ' || v[i] == 127)
				return -1;
	}
	*relay_len = rl;
	*port = SMTP_PORT;
	if (rl == len)
		return 0;
	if (v[rl] != ':')
		return -1;
	if (rl + 1 == len)
		return 0;
	unsigned long n = 0;
	for (size_t i = rl + 1; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (unsigned long)(v[i] - '0');
		if (n > 65535)
			return -1;
	}
	if (n == 0)
		return -1;
	*port = (unsigned)n;
	return 0;
}

int smtproutes_add(struct smtproutes *r, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	size_t klen, vlen, relay_len, size;
	unsigned port;
	char *value;
	int res;

	if (!colon || memchr(line, '\0', len)) {
		errno = EINVAL;
		return -1;
	}
	klen = (size_t)(colon - line);
	vlen = len - klen - 1;
	if (parse_value(colon + 1, vlen, &relay_len, &port) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (strmap_get(&r->map, line, klen))
		return 0; /* the first line for a domain wins */
	if (size_add(vlen, 1, &size) < 0)
		return -1;
	value = malloc(size);
	if (!value) {
		errno = ENOMEM;
		return -1;
	}
	memcpy(value, colon + 1, vlen);
	value[vlen] = '\0';
	res = strmap_put(&r->map, line, klen, value);
	free(value);
	return res;
}

int smtproutes_load(struct smtproutes *r, struct str *bad)
{
	struct str list = STR_INIT;
	struct smtproutes fresh = SMTPROUTES_INIT;
	const char *line;
	size_t pos = 0;
	int saved = 0;

	str_clear(bad);
	if (ctl_list(SMTPROUTES_FILE, &list) < 0) {
		saved = errno;
		goto fail;
	}
	while ((line = ctl_next(&list, &pos))) {
		if (smtproutes_add(&fresh, line, strlen(line)) < 0) {
			saved = errno;
			if (saved == EINVAL && str_copys(bad, line) < 0)
				saved = errno;
			goto fail;
		}
	}
	str_free(&list);
	smtproutes_free(r);
	*r = fresh;
	return 0;
fail:
	str_free(&list);
	smtproutes_free(&fresh);
	errno = saved;
	return -1;
}

void smtproutes_free(struct smtproutes *r)
{
	strmap_free(&r->map);
}

static int found(const char *value, struct str *relay, unsigned *port)
{
	size_t relay_len = 0;

	/* Checked when added; a failure here would be a bug, not input. */
	if (parse_value(value, strlen(value), &relay_len, port) < 0)
		relay_len = 0;
	return str_copy(relay, value, relay_len) < 0 ? -1 : 1;
}

int smtproutes_find(const struct smtproutes *r, const char *host,
		    struct str *relay, unsigned *port)
{
	size_t len = strlen(host);
	const char *value;

	for (size_t i = 0; i <= len; i++) {
		if (i != 0 && i != len && host[i] != '.')
			continue;
		value = strmap_get(&r->map, host + i, len - i);
		if (value)
			return found(value, relay, port);
	}
	return 0;
}
