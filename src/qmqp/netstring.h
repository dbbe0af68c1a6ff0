/*
 * netstring.h: reading and writing netstrings ("len:data,") on a buf.
 *
 * Lengths are read digit by digit with an explicit maximum, so a hostile
 * peer cannot announce a length that overflows or that we would try to
 * allocate. Leading zeros are refused, as the netstring format says.
 */
#ifndef QM_NETSTRING_H
#define QM_NETSTRING_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/str.h"

/* Read "len:" with len <= max. Returns 0 and sets *len, or -1: errno
 * EPROTO for a malformed or too large length, or the read error. */
int netstring_read_len(struct buf *in, unsigned long long max,
		       unsigned long long *len);
/* Read the ',' that ends a netstring. 0 or -1 (EPROTO). */
int netstring_read_end(struct buf *in);
/* Read a whole small netstring (len <= max) into out. 0 or -1. */
int netstring_read(struct buf *in, size_t max, struct str *out);
/* Append a netstring holding p[0..n) to out. 0 or -1 (ENOMEM). */
int netstring_append(struct str *out, const void *p, size_t n);

#endif
