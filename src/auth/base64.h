/*
 * base64.h: RFC 4648 base64 for SASL exchanges (RFC 4954).
 *
 * Decoding is strict, because what it reads comes from the network: one
 * spelling per byte string (length a multiple of 4, only the standard
 * alphabet, '=' padding only at the end, unused bits zero). It writes
 * into a caller's fixed buffer, so decoded secrets never pass through
 * memory the caller cannot wipe. It never allocates while decoding.
 */
#ifndef QM_AUTH_BASE64_H
#define QM_AUTH_BASE64_H

#include <stddef.h>

#include "lib/str.h"

/* Room b64_decode needs for n input bytes. */
#define B64_DECODED_MAX(n) ((n) / 4 * 3)

/* Decode in[0..n) into out (room for outmax bytes). Returns 0 and sets
 * *outlen, or -1 with errno EINVAL (not canonical base64) or EMSGSIZE
 * (out too small; nothing useful is left in out). Empty input decodes
 * to nothing. */
int b64_decode(const char *in, size_t n, unsigned char *out, size_t outmax,
	       size_t *outlen);
/* Append the base64 of p[0..n) to out. 0, or -1 (errno from str). */
int b64_encode(struct str *out, const void *p, size_t n);

#endif
