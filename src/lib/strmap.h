/*
 * strmap.h: a map from case-insensitive ASCII keys to values.
 *
 * For control-file lists that are searched on every message (locals,
 * virtualdomains, percenthack, rcpthosts): lookups are O(1) and the
 * table grows with checked arithmetic. Keys are stored lowercased.
 * Values are copied. Never holds pointers into caller memory.
 */
#ifndef QM_STRMAP_H
#define QM_STRMAP_H

#include <stddef.h>

struct strmap_entry {
	char *key;   /* lowercased, NUL-terminated */
	char *value; /* NUL-terminated, never NULL */
};

struct strmap {
	struct strmap_entry *slots;
	size_t size; /* power of two, or 0 */
	size_t count;
};

#define STRMAP_INIT                                                            \
	{                                                                      \
		NULL, 0, 0                                                     \
	}

/* Insert or replace. Returns 0, or -1 (ENOMEM/EOVERFLOW). */
int strmap_put(struct strmap *m, const char *key, size_t klen,
	       const char *value);
/* The value for key (compared case-insensitively), or NULL. */
const char *strmap_get(const struct strmap *m, const char *key, size_t klen);
void strmap_free(struct strmap *m);

#endif
