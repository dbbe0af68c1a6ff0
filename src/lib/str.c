/*
 * str.c: growable byte strings.
 *
 * Growth is the only place where sizes are computed, so it is the only
 * place that has to be right: every sum is checked, the capacity never
 * passes STR_MAX, and a failed growth leaves the string untouched.
 */
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "str.h"

int str_reserve(struct str *sa, size_t extra)
{
	size_t need, cap;

	/* +1 keeps room for the trailing NUL. */
	if (size_add(sa->len, extra, &need) < 0 || size_add(need, 1, &need) < 0)
		return -1;
	if (need > STR_MAX + 1) {
		errno = EOVERFLOW;
		return -1;
	}
	if (need <= sa->cap)
		return 0;
	/* Grow by half again, so appends are amortised O(1). */
	cap = sa->cap + sa->cap / 2;
	if (cap < need)
		cap = need;
	if (cap < 32)
		cap = 32;
	if (cap > STR_MAX + 1)
		cap = STR_MAX + 1;
	char *s = realloc(sa->s, cap);
	if (!s) {
		errno = ENOMEM;
		return -1;
	}
	sa->s = s;
	sa->cap = cap;
	return 0;
}

int str_append(struct str *sa, const void *p, size_t n)
{
	if (str_reserve(sa, n) < 0)
		return -1;
	if (n)
		memcpy(sa->s + sa->len, p, n);
	sa->len += n;
	sa->s[sa->len] = 0;
	return 0;
}

int str_appends(struct str *sa, const char *s)
{
	return str_append(sa, s, strlen(s));
}

int str_appendc(struct str *sa, char c)
{
	return str_append(sa, &c, 1);
}

int str_appendnum(struct str *sa, unsigned long long n)
{
	char digits[24];
	size_t i = sizeof digits;

	do {
		digits[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	return str_append(sa, digits + i, sizeof digits - i);
}

int str_append0(struct str *sa)
{
	return str_append(sa, "", 1);
}

int str_copy(struct str *sa, const void *p, size_t n)
{
	/* Reserve first so that a failure leaves the old contents. */
	if (n > sa->len && str_reserve(sa, n - sa->len) < 0)
		return -1;
	sa->len = 0;
	return str_append(sa, p, n);
}

int str_copys(struct str *sa, const char *s)
{
	return str_copy(sa, s, strlen(s));
}

int str_copystr(struct str *to, const struct str *from)
{
	return str_copy(to, from->s, from->len);
}

void str_truncate(struct str *sa, size_t len)
{
	if (len < sa->len) {
		sa->len = len;
		sa->s[len] = 0;
	}
}

void str_clear(struct str *sa)
{
	str_truncate(sa, 0);
}

void str_free(struct str *sa)
{
	free(sa->s);
	sa->s = NULL;
	sa->len = sa->cap = 0;
}

void str_wipe(struct str *sa)
{
	if (sa->s) {
		/* volatile keeps the compiler from dropping the stores. */
		volatile char *p = sa->s;
		for (size_t i = 0; i < sa->cap; i++)
			p[i] = 0;
	}
	str_free(sa);
}

int str_starts(const struct str *sa, const char *prefix)
{
	size_t n = strlen(prefix);
	return sa->len >= n && memcmp(sa->s, prefix, n) == 0;
}
