/*
 * strmap.c: open addressing with linear probing, load kept under 1/2.
 *
 * Keys come from control files and from the network; hashing is FNV-1a
 * over lowercased bytes. An attacker cannot add keys (only the
 * administrator writes control files), so no keyed hash is needed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "strmap.h"

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static size_t hash(const char *k, size_t n)
{
	size_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ lower((unsigned char)k[i])) * 16777619u;
	return h;
}

static int key_equal(const char *stored, const char *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (stored[i] == 0 ||
		    (unsigned char)stored[i] != lower((unsigned char)k[i]))
			return 0;
	return stored[n] == 0;
}

static struct strmap_entry *find_slot(const struct strmap *m, const char *k,
				      size_t n)
{
	size_t mask = m->size - 1;
	for (size_t i = hash(k, n) & mask;; i = (i + 1) & mask) {
		struct strmap_entry *e = &m->slots[i];
		if (!e->key || key_equal(e->key, k, n))
			return e;
	}
}

static int grow(struct strmap *m)
{
	size_t size = m->size ? m->size : 16, bytes;
	struct strmap old = *m;

	if (m->size && size_mul(m->size, 2, &size) < 0)
		return -1;
	if (size_mul(size, sizeof *m->slots, &bytes) < 0)
		return -1;
	m->slots = calloc(size, sizeof *m->slots);
	if (!m->slots) {
		*m = old;
		errno = ENOMEM;
		return -1;
	}
	m->size = size;
	for (size_t i = 0; i < old.size; i++)
		if (old.slots[i].key)
			*find_slot(m, old.slots[i].key,
				   strlen(old.slots[i].key)) = old.slots[i];
	free(old.slots);
	return 0;
}

int strmap_put(struct strmap *m, const char *key, size_t klen,
	       const char *value)
{
	if (m->count + 1 > m->size / 2 && grow(m) < 0)
		return -1;
	struct strmap_entry *e = find_slot(m, key, klen);
	char *v = strdup(value);
	if (!v)
		return -1;
	if (e->key) {
		free(e->value);
		e->value = v;
		return 0;
	}
	size_t n;
	if (size_add(klen, 1, &n) < 0) {
		free(v);
		return -1;
	}
	e->key = malloc(n);
	if (!e->key) {
		free(v);
		return -1;
	}
	for (size_t i = 0; i < klen; i++)
		e->key[i] = (char)lower((unsigned char)key[i]);
	e->key[klen] = 0;
	e->value = v;
	m->count++;
	return 0;
}

const char *strmap_get(const struct strmap *m, const char *key, size_t klen)
{
	if (!m->size)
		return NULL;
	struct strmap_entry *e = find_slot(m, key, klen);
	return e->key ? e->value : NULL;
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->size; i++) {
		free(m->slots[i].key);
		free(m->slots[i].value);
	}
	free(m->slots);
	m->slots = NULL;
	m->size = m->count = 0;
}
