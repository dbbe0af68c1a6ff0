/*
 * smtpaddr.h: the paths and parameters of MAIL FROM and RCPT TO.
 *
 * Parses what follows "MAIL FROM:" or "RCPT TO:" (RFC 5321 4.1.2): an
 * optional source route (dropped, as RFC 5321 allows), the address in
 * angle brackets (qmail also takes it without), and ESMTP parameters. It
 * checks address literals and UTF-8, and never modifies the input.
 * Nothing here decides policy: callers do (rcpthosts, badmailfrom...).
 */
#ifndef QM_SMTPADDR_H
#define QM_SMTPADDR_H

#include <stddef.h>

#include "lib/str.h"

enum smtpaddr_result {
	SMTPADDR_OK = 0,
	SMTPADDR_SYNTAX,  /* not a path we can read */
	SMTPADDR_UTF8,    /* bytes that are not valid UTF-8 */
	SMTPADDR_8BIT,    /* valid UTF-8, but SMTPUTF8 was not given */
	SMTPADDR_LITERAL, /* a [...] domain that is not an address */
	SMTPADDR_NOMEM,
};

/* Parse s[0..n) (the text after the colon). The address goes to addr
 * (NUL-terminated; empty for "<>"), and *params points into s at the
 * first parameter (or at the end). utf8_ok says whether 8-bit bytes are
 * allowed; when it is 0 they give SMTPADDR_8BIT (after the UTF-8 check,
 * so invalid bytes always give SMTPADDR_UTF8). */
enum smtpaddr_result smtpaddr_parse(const char *s, size_t n, int utf8_ok,
				    struct str *addr, const char **params);

/* True when the parameter list (space-separated keyword[=value] items)
 * contains the keyword, case-insensitively, before params+n. */
int smtpaddr_has_param(const char *params, size_t n, const char *keyword);

/* Iterate over parameters: returns 1 and sets key, value and *has_value
 * (0 when there is no '='), advancing *pos; 0 at the end; -1 when out of
 * memory. key and value are NUL-terminated. */
int smtpaddr_next_param(const char *params, size_t n, size_t *pos,
			struct str *key, struct str *value, int *has_value);

/* Valid UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
 * U+10FFFF)? */
int utf8_valid(const char *s, size_t n);

/* If domain is an address literal, check it: "[1.2.3.4]" or
 * "[IPv6:...]". Returns 1 valid literal (and writes the bare address,
 * without brackets or tag, to ip), 0 not a literal, -1 malformed. */
int smtpaddr_literal(const char *domain, struct str *ip);

#endif
