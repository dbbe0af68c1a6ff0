/*
 * smtpaddr.c: reading SMTP paths without trusting them.
 *
 * Every index is checked against n; the input need not be NUL-terminated
 * and may hold any byte. A NUL inside an address is a syntax error, so
 * the result is always a clean C string.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "mail/smtpaddr.h"

int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned c = p[i];
		size_t len;
		unsigned min, cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, min = 0x80, cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, min = 0x800, cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, min = 0x10000, cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

int smtpaddr_literal(const char *domain, struct str *ip)
{
	size_t n = strlen(domain);
	unsigned char bin[16];

	if (n == 0 || domain[0] != '[')
		return 0;
	if (n < 3 || domain[n - 1] != ']')
		return -1;
	const char *body = domain + 1;
	size_t blen = n - 2;
	int family = AF_INET;
	if (blen > 5 && strncasecmp(body, "IPv6:", 5) == 0) {
		body += 5;
		blen -= 5;
		family = AF_INET6;
	}
	if (blen >= 64)
		return -1;
	char tmp[64];
	memcpy(tmp, body, blen);
	tmp[blen] = 0;
	if (inet_pton(family, tmp, bin) != 1)
		return -1;
	if (str_copys(ip, tmp) < 0)
		return -1;
	return 1;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

enum smtpaddr_result smtpaddr_parse(const char *s, size_t n, int utf8_ok,
				    struct str *addr, const char **params)
{
	size_t i = 0, start, end;
	int bracket = 0, eightbit = 0;

	while (i < n && is_space(s[i]))
		i++;
	if (i < n && s[i] == '<') {
		bracket = 1;
		i++;
		/* A source route "@a,@b:" is allowed and ignored. */
		if (i < n && s[i] == '@') {
			const char *colon = memchr(s + i, ':', n - i);
			const char *gt = memchr(s + i, '>', n - i);
			if (!colon || (gt && gt < colon))
				return SMTPADDR_SYNTAX;
			i = (size_t)(colon - s) + 1;
		}
	}
	start = i;
	/* The address ends at '>' (bracketed) or at white space; a quoted
	 * local part may hold either. */
	int quoted = 0;
	for (; i < n; i++) {
		char c = s[i];
		if (c == 0 || c == '\r' || c == '\n')
			return SMTPADDR_SYNTAX;
		if ((unsigned char)c >= 0x80)
			eightbit = 1;
		if (quoted) {
			if (c == '\\' && i + 1 < n) {
				/* A quoted pair may not hide a control byte. */
				char e = s[++i];
				if (e == 0 || e == '\r' || e == '\n')
					return SMTPADDR_SYNTAX;
				if ((unsigned char)e >= 0x80)
					eightbit = 1;
			} else if (c == '"') {
				quoted = 0;
			}
			continue;
		}
		if (c == '"')
			quoted = 1;
		else if (bracket && c == '>')
			break;
		else if (!bracket && is_space(c))
			break;
		else if (c == '<' || (bracket && is_space(c)))
			return SMTPADDR_SYNTAX;
	}
	if (quoted)
		return SMTPADDR_SYNTAX;
	end = i;
	if (bracket) {
		if (i >= n)
			return SMTPADDR_SYNTAX; /* no closing '>' */
		i++;
	}
	if (i < n && !is_space(s[i]))
		return SMTPADDR_SYNTAX; /* junk right after the address */
	while (i < n && is_space(s[i]))
		i++;
	if (eightbit) {
		if (!utf8_valid(s + start, end - start))
			return SMTPADDR_UTF8;
		if (!utf8_ok)
			return SMTPADDR_8BIT;
	}
	/* Quotes and quoted pairs are removed, as qmail-smtpd does, so that
	 * "joe"@dom reaches the same mailbox as joe@dom. */
	str_clear(addr);
	if (str_reserve(addr, end - start) < 0)
		return SMTPADDR_NOMEM;
	for (size_t k = start, inq = 0; k < end; k++) {
		if (s[k] == '"') {
			inq = !inq;
			continue;
		}
		if (inq && s[k] == '\\' && k + 1 < end)
			k++;
		addr->s[addr->len++] = s[k];
	}
	addr->s[addr->len] = 0;
	const char *at = strrchr(addr->s, '@');
	struct str ip = STR_INIT;
	int lit = smtpaddr_literal(at ? at + 1 : "", &ip);
	str_free(&ip);
	if (lit < 0)
		return SMTPADDR_LITERAL;
	*params = s + i;
	return SMTPADDR_OK;
}

int smtpaddr_next_param(const char *params, size_t n, size_t *pos,
			struct str *key, struct str *value, int *has_value)
{
	size_t i = *pos;

	while (i < n && is_space(params[i]))
		i++;
	if (i >= n)
		return 0;
	size_t k = i;
	while (i < n && !is_space(params[i]) && params[i] != '=')
		i++;
	if (str_copy(key, params + k, i - k) < 0)
		return -1;
	*has_value = i < n && params[i] == '=';
	size_t v = *has_value ? ++i : i;
	while (i < n && !is_space(params[i]))
		i++;
	if (str_copy(value, params + v, i - v) < 0)
		return -1;
	*pos = i;
	return 1;
}

int smtpaddr_has_param(const char *params, size_t n, const char *keyword)
{
	struct str k = STR_INIT, v = STR_INIT;
	size_t pos = 0;
	int found = 0, has_value;

	while (!found &&
	       smtpaddr_next_param(params, n, &pos, &k, &v, &has_value) == 1)
		found = strcasecmp(k.s, keyword) == 0;
	str_free(&k);
	str_free(&v);
	return found;
}
