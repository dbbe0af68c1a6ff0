/*
 * date822.h: RFC 5322 dates.
 *
 * Formatting always uses UTC with a "+0000" zone, which is exact and
 * needs no time-zone database. Parsing accepts the RFC 5322 syntax and
 * its obsolete forms (two-digit years, named zones, missing seconds,
 * comments), and never reads past the given length.
 */
#ifndef QM_DATE822_H
#define QM_DATE822_H

#include <stddef.h>
#include <time.h>

/* "Sun, 29 Nov 2026 14:09:20 +0000" plus NUL. */
#define DATE822_LEN 32

/* Writes the date and a NUL into out; returns the length (no NUL). */
size_t date822_fmt(char out[DATE822_LEN], time_t t);
/* Parses a date-time; on success sets *t (UTC seconds) and returns 0.
 * Returns -1 (errno EINVAL) when the text is not a date. */
int date822_parse(const char *s, size_t n, time_t *t);

#endif
