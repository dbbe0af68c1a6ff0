/*
 * str.h: growable byte strings.
 *
 * A str holds arbitrary bytes (NUL included) and its length. Growth is
 * checked: it never overflows size_t and never exceeds STR_MAX, and on
 * failure the string is left exactly as it was. The buffer is always
 * NUL-terminated past len, so s->s can be used as a C string when the
 * content has no NUL of its own.
 */
#ifndef QM_STR_H
#define QM_STR_H

#include <stddef.h>

/* No string may grow past this: 1 GiB is far above any legitimate need. */
#define STR_MAX ((size_t)1 << 30)

struct str {
	char *s;    /* NULL until first growth */
	size_t len; /* bytes in use, not counting the trailing NUL */
	size_t cap; /* bytes allocated, including room for the NUL */
};

#define STR_INIT                                                               \
	{                                                                      \
		NULL, 0, 0                                                     \
	}

/* All functions returning int give 0 on success, -1 with errno set
 * (ENOMEM, or EOVERFLOW when the size would pass STR_MAX). */
int str_reserve(struct str *sa, size_t extra); /* room for len+extra */
int str_append(struct str *sa, const void *p, size_t n);
int str_appends(struct str *sa, const char *s);
int str_appendc(struct str *sa, char c);
int str_appendnum(struct str *sa, unsigned long long n);
int str_copy(struct str *sa, const void *p, size_t n);
int str_copys(struct str *sa, const char *s);
int str_copystr(struct str *to, const struct str *from);
/* Appends a NUL that counts in len (for NUL-separated records). */
int str_append0(struct str *sa);
void str_truncate(struct str *sa, size_t len); /* len <= sa->len */
void str_clear(struct str *sa);		       /* len = 0, keeps memory */
void str_free(struct str *sa);		       /* wipes nothing; see str_wipe */
void str_wipe(struct str *sa); /* zero the bytes, then free (secrets) */

/* True when the string starts with the given bytes. */
int str_starts(const struct str *sa, const char *prefix);

#endif
