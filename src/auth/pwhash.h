/*
 * pwhash.h: password hashes through crypt(3): checking a password
 * against a stored hash, and making a new hash.
 *
 * A check compares the whole crypt output in constant time and refuses
 * empty, locked ("!", "*") and unusable hashes. Work buffers that held a
 * password are wiped before returning. Nothing here prints or exits.
 */
#ifndef QM_AUTH_PWHASH_H
#define QM_AUTH_PWHASH_H

#include <stddef.h>

/* Room for any hash this module makes or accepts, NUL included. */
#define PWHASH_MAX 384

/* 1 when pass matches hash, 0 otherwise (also for a locked, empty or
 * malformed hash, and when crypt fails). */
int pwhash_check(const char *pass, const char *hash);
/* Spend about the time of a check, for a user that does not exist, so
 * that timing does not tell which logins exist. */
void pwhash_waste(const char *pass);
/* Hash pass with a fresh random salt: yescrypt, or sha512-crypt when
 * yescrypt is not available. Writes a NUL-terminated hash into out
 * (room PWHASH_MAX). Returns 0, or -1 (errno). */
int pwhash_make(const char *pass, char *out);
/* 1 when hash is "locked": empty, or starting with '!' or '*'. */
int pwhash_locked(const char *hash);

#endif
