/*
 * pwhash.c: crypt(3) with the checks around it.
 *
 * With libxcrypt (CRYPT_OUTPUT_SIZE defined), crypt_r works in a static
 * area that is wiped after each use; elsewhere plain crypt() is used.
 * New salts come from crypt_gensalt_rn, or else from getentropy(). The
 * comparison never stops at the first differing byte.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#if __has_include(<crypt.h>)
#include <crypt.h>
#endif

#include "auth/pwhash.h"
#include "auth/sasl.h"

#ifdef CRYPT_OUTPUT_SIZE
static struct crypt_data crypt_area;
#endif

/* crypt into out (room PWHASH_MAX); 0 or -1. Failure outputs start with
 * '*' in libxcrypt, or are NULL. */
static int pwhash_crypt(const char *pass, const char *setting, char *out)
{
	const char *r;
	size_t n;

#ifdef CRYPT_OUTPUT_SIZE
	memset(&crypt_area, 0, sizeof crypt_area);
	r = crypt_r(pass, setting, &crypt_area);
#else
	r = crypt(pass, setting);
#endif
	if (!r || r[0] == '*' || (n = strlen(r)) == 0 || n >= PWHASH_MAX) {
#ifdef CRYPT_OUTPUT_SIZE
		sasl_wipe(&crypt_area, sizeof crypt_area);
#endif
		errno = EINVAL;
		return -1;
	}
	memcpy(out, r, n + 1);
#ifdef CRYPT_OUTPUT_SIZE
	sasl_wipe(&crypt_area, sizeof crypt_area);
#endif
	return 0;
}

int pwhash_locked(const char *hash)
{
	return hash[0] == 0 || hash[0] == '!' || hash[0] == '*';
}

/* Equal lengths are compared byte by byte without an early exit. */
static int same_hash(const char *a, const char *b)
{
	size_t n = strlen(a);
	unsigned char diff = 0;

	if (n != strlen(b))
		return 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

int pwhash_check(const char *pass, const char *hash)
{
	char out[PWHASH_MAX];
	int ok;

	if (pwhash_locked(hash) || strlen(hash) >= PWHASH_MAX) {
		pwhash_waste(pass); /* a locked account looks like any other */
		return 0;
	}
	if (pwhash_crypt(pass, hash, out) < 0)
		return 0;
	ok = same_hash(out, hash);
	sasl_wipe(out, sizeof out);
	return ok;
}

/* A setting for a new hash: yescrypt first, then sha512-crypt. */
static int new_setting(char *setting, size_t room)
{
#ifdef CRYPT_GENSALT_IMPLEMENTS_AUTO_ENTROPY
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, (int)room))
		return 0;
	if (crypt_gensalt_rn("$6$", 0, NULL, 0, setting, (int)room))
		return 0;
	return -1;
#else
	static const char salt_chars[] =
	    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz";
	unsigned char rnd[16];

	if (room < 3 + sizeof rnd + 2 || getentropy(rnd, sizeof rnd) < 0)
		return -1;
	memcpy(setting, "$6$", 3);
	for (size_t i = 0; i < sizeof rnd; i++)
		setting[3 + i] = salt_chars[rnd[i] % 64];
	setting[3 + sizeof rnd] = '$';
	setting[4 + sizeof rnd] = 0;
	return 0;
#endif
}

void pwhash_waste(const char *pass)
{
	char setting[PWHASH_MAX], out[PWHASH_MAX];

	/* The same kind of hash pwhash_make makes, so the same cost. */
	if (new_setting(setting, sizeof setting) == 0)
		(void)pwhash_crypt(pass, setting, out);
	sasl_wipe(out, sizeof out);
}

int pwhash_make(const char *pass, char *out)
{
	char setting[PWHASH_MAX];

	if (new_setting(setting, sizeof setting) < 0)
		return -1;
	return pwhash_crypt(pass, setting, out);
}
