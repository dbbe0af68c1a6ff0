/*
 * rewrite.h: host-name qualification by rewriting instructions.
 *
 * The instructions of mess822's rewriting(5), applied in order, each at
 * most once, each to the result of the ones before:
 *   =post:new   a host that is exactly post becomes new;
 *   *post:new   a host prepost becomes prenew;
 *   ?post:new   the same, only when pre holds no dot and no bracket;
 *   -post:new   a host prepost becomes new.
 * post is everything between the first character and the first colon;
 * new is the rest of the line. Host names compare without regard to
 * case. Without control/rewrite the instructions are
 *   *.:  =:defaulthost  *+:.plusdomain  ?:.defaultdomain
 *
 * This module never prints and never touches anything but its own
 * memory (and control/rewrite, read through ctl.h).
 */
#ifndef QM_REWRITE_H
#define QM_REWRITE_H

#include <stddef.h>

#include "lib/str.h"

struct rewrite {
	struct str rules; /* instructions, each followed by NUL */
};

#define REWRITE_INIT                                                           \
	{                                                                      \
		STR_INIT                                                       \
	}

void rewrite_free(struct rewrite *rw);
/* Appends one instruction. Returns 0, or -1 with errno: EINVAL when it
 * does not start with one of = * ? - or has no colon, or holds a NUL;
 * ENOMEM. */
int rewrite_add(struct rewrite *rw, const char *rule, size_t len);
/* The four default instructions. 0 or -1 (errno). */
int rewrite_defaults(struct rewrite *rw, const char *defaulthost,
		     const char *plusdomain, const char *defaultdomain);
/* Reads the instructions of a list file (blank lines and lines starting
 * with '#' skipped). Returns 1 when loaded, 0 when the file does not
 * exist (nothing added), -1 on error (errno; EINVAL for a malformed
 * instruction, whose line is then in *bad when bad is not NULL). */
int rewrite_load(struct rewrite *rw, const char *path, struct str *bad);
/* Rewrites host[0..len) into out (replacing its contents). 0 or -1
 * (ENOMEM, EOVERFLOW). */
int rewrite_host(const struct rewrite *rw, const char *host, size_t len,
		 struct str *out);

#endif
