/*
 * addrlist.h: address lists as found in To, Cc, From and the like.
 *
 * The parser knows RFC 5322's address-list with the obsolete forms
 * seen in practice: groups, display names (with dots), quoted strings,
 * comments, angle addresses with source routes, empty list elements,
 * and addresses without a host ("joe"), which are what host
 * qualification is for. It records where each address sits in the
 * text, so a caller can change the host and leave every other byte
 * alone, and it gives each address in the form an envelope uses (quotes
 * and comments removed). Text it cannot parse is refused as a whole
 * (EINVAL): a caller then leaves the field as it was.
 *
 * It never changes its input and never prints.
 */
#ifndef QM_ADDRLIST_H
#define QM_ADDRLIST_H

#include <stddef.h>

#include "lib/str.h"

struct addr {
	/* Where the address is written, as offsets into the parsed text. */
	size_t local_start, local_end; /* the local part */
	size_t host_start, host_end;   /* the domain; both are local_end
					  when there is no '@' */
	int has_at;		       /* an '@' was written */
	int null;		       /* "<>": no address at all */
	int angle;		       /* written inside < > */
	int in_group;		       /* a member of a group */
	/* The envelope form, as offsets into addrlist.canon. */
	size_t local, locallen;
	size_t host, hostlen;
};

struct addrlist {
	struct addr *a;
	size_t n;
	size_t cap;
	struct str canon; /* local parts and hosts, each followed by NUL */
};

void addrlist_init(struct addrlist *al);
void addrlist_free(struct addrlist *al);
/* Parses p[0..n) as an address list, replacing what al held. Returns
 * 0, or -1 with errno: EINVAL for a syntax error (al is then empty),
 * ENOMEM or EOVERFLOW. A NUL byte anywhere is a syntax error, and so
 * is a backslash quoting a CR or a LF: an envelope form never holds a
 * NUL, CR or LF. */
int addrlist_parse(struct addrlist *al, const char *p, size_t n);

/* The envelope form of address i: the unquoted local part and the host
 * without comments or blanks ("" when none was written). */
const char *addr_local(const struct addrlist *al, size_t i, size_t *len);
const char *addr_host(const struct addrlist *al, size_t i, size_t *len);

/* Formatting for header text. Each appends to out and returns 0 or -1
 * (errno). What they write is always header text: a CR, LF or NUL that
 * would have to be quoted is written as a space. */
/* local@host, quoting the local part unless it is a dot-atom; just the
 * local part when host is empty. */
int addr_append(struct str *out, const char *local, size_t llen,
		const char *host, size_t hlen);
/* A display name: as is when it is atoms separated by single spaces,
 * otherwise as a quoted string. */
int addr_append_phrase(struct str *out, const char *name, size_t n);
/* A comment: "(" text ")" with parentheses and backslashes escaped. */
int addr_append_comment(struct str *out, const char *text, size_t n);
/* True when s[0..n) is a dot-atom (RFC 5322). */
int addr_is_dot_atom(const char *s, size_t n);

#endif
