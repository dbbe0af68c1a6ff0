/*
 * checked.h: size arithmetic that cannot overflow.
 *
 * Every size computed from untrusted input goes through these helpers.
 * They never wrap silently: on overflow they return -1 and set errno.
 */
#ifndef QM_CHECKED_H
#define QM_CHECKED_H

#include <errno.h>
#include <stddef.h>

/* *out = a + b; returns 0, or -1 with errno EOVERFLOW. */
static inline int size_add(size_t a, size_t b, size_t *out)
{
	if (__builtin_add_overflow(a, b, out)) {
		errno = EOVERFLOW;
		return -1;
	}
	return 0;
}

/* *out = a * b; returns 0, or -1 with errno EOVERFLOW. */
static inline int size_mul(size_t a, size_t b, size_t *out)
{
	if (__builtin_mul_overflow(a, b, out)) {
		errno = EOVERFLOW;
		return -1;
	}
	return 0;
}

#endif
