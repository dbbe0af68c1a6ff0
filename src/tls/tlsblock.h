/*
 * tlsblock.h: the UCSPI-TLS variable block and the SSL* environment.
 *
 * A block is "NAME=value\0" entries ended by one more "\0"; an entry
 * without '=' means "unset NAME". The TLS programs build one from what
 * the handshake produced (peer certificate fields, which an attacker
 * chooses), so a value that cannot be carried safely (too long, or
 * holding control bytes) becomes an "unset" entry: it is never cut or
 * passed on half-escaped. This module links no TLS library.
 */
#ifndef QM_TLSBLOCK_H
#define QM_TLSBLOCK_H

#include <stddef.h>

#include "lib/str.h"

/* The application side reads at most this many bytes (ucspitls.c). */
#define TLSBLOCK_MAX 16384
/* Longest value carried; a longer one is sent as "unset". */
#define TLSBLOCK_VALUE_MAX 1024
/* Longest name: letters, digits and '_' only. */
#define TLSBLOCK_NAME_MAX 64

/* Append NAME=value (value: len bytes, may hold anything). A value
 * that is too long or holds a byte below 0x20 or 0x7f is appended as
 * the entry "NAME" (unset). value NULL appends "NAME" too.
 * Returns 0, or -1 with errno: EINVAL for a bad name, EMSGSIZE when
 * the block would pass TLSBLOCK_MAX, ENOMEM. */
int tlsblock_putn(struct str *b, const char *name, const char *value,
		  size_t len);
int tlsblock_put(struct str *b, const char *name, const char *value);
/* Append a decimal number. */
int tlsblock_putnum(struct str *b, const char *name, unsigned long n);
/* End the block with its final NUL. 0, or -1 (EMSGSIZE, ENOMEM). */
int tlsblock_end(struct str *b);

/* True when p[0..n) is exactly one complete block. */
int tlsblock_complete(const char *p, size_t n);
/* Read a block from fd, blocking, at most TLSBLOCK_MAX bytes.
 * Returns 1 (out holds the block), 0 at EOF before the block was
 * complete, -1 on error (errno; EMSGSIZE when too long). */
int tlsblock_read(int fd, struct str *out);
/* Put a complete block into the environment: set or unset every entry
 * whose name starts with prefix (every entry when prefix is ""), and
 * skip the others. Returns 0, or -1 (EINVAL: not a well-formed block;
 * ENOMEM). Nothing is changed when the block is malformed. */
int tlsblock_apply(const char *p, size_t n, const char *prefix);

/* SSLLOCALIP ... SSLREMOTEINFO from TCPLOCALIP ... TCPREMOTEINFO, as
 * sslserver sets them: each SSL variable is set to its TCP twin, or
 * unset when the TCP one is. 0, or -1 (ENOMEM). */
int tlsenv_from_tcp(void);

#endif
