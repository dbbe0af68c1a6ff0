/*
 * tlsopt.c: POSIX-style option scanning that never reorders argv.
 *
 * It only reads argv; it never prints (the caller words the usage).
 */
#include <string.h>

#include "tls/tlsopt.h"

int tlsopt_next(struct tlsopt *o, int argc, char *const *argv, const char *spec)
{
	o->arg = 0;
	if (o->pos == 0) {
		if (o->ind >= argc)
			return -1;
		const char *a = argv[o->ind];
		if (a[0] != '-' || a[1] == 0)
			return -1;
		if (strcmp(a, "--") == 0) {
			o->ind++;
			return -1;
		}
		o->pos = 1;
	}
	const char *word = argv[o->ind];
	int c = (unsigned char)word[o->pos++];
	const char *s = c != ':' ? strchr(spec, c) : NULL;
	const char *rest = word + o->pos;

	if (!s || s[1] != ':') {
		if (*rest == 0) {
			o->ind++;
			o->pos = 0;
		}
		if (!s) {
			o->bad = c;
			return '?';
		}
		return c;
	}
	/* The argument is the rest of this word, or the next word. */
	o->ind++;
	o->pos = 0;
	if (*rest) {
		o->arg = rest;
		return c;
	}
	if (o->ind >= argc) {
		o->bad = c;
		return '?';
	}
	o->arg = argv[o->ind++];
	return c;
}

int tlsopt_uint(const char *s, unsigned *out)
{
	unsigned n = 0;
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (unsigned)(s[i] - '0');
	}
	*out = n;
	return 0;
}
