/*
 * users.h: who receives the mail for a local address (qmail-users(5)).
 *
 * Two sources, in this order, as qmail-lspawn has them:
 *
 * 1. users/cdb, built by qmail-newu from users/assign: first the exact
 *    entry for the lowercased local part, then the wildcard with the
 *    longest matching prefix. A wildcard's ext is its "pre" field followed
 *    by the rest of the local part in its original case.
 * 2. When users/cdb does not exist or has no matching entry, the passwd
 *    rules of qmail-getpw(8), through getpwnam(3): the whole local part,
 *    then each prefix ending just before a '-', longest first, lowercased;
 *    a user counts only with a uid other than 0 and a home directory that
 *    exists and that the user owns. When none counts, the user "alias"
 *    takes the mail, with dash "-" and ext the whole local part.
 *
 * Paths are relative: callers run in the qmail home. Nothing here prints
 * or exits. A uid of 0 is refused on the passwd path only; an entry of
 * users/cdb is returned as written, so the caller must refuse root
 * itself. Temporary failures return -1 with errno set, and users_error()
 * then gives a fixed text for the log naming what failed.
 */
#ifndef QM_USERS_H
#define QM_USERS_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "lib/cdbx.h"
#include "lib/str.h"

#define USERS_ASSIGN "users/assign"
#define USERS_CDB "users/cdb"
/* The catch-all account of the passwd rules. */
#define USERS_ALIAS "alias"
/* Longest account name the passwd rules try. */
#define USERS_NAME_MAX 32
/* Longest line of users/assign and largest value in users/cdb. */
#define USERS_LINE_MAX 65536

struct userinfo {
	struct str user, home, dash, ext;
	uid_t uid;
	gid_t gid;
};

#define USERINFO_INIT                                                          \
	{                                                                      \
		STR_INIT, STR_INIT, STR_INIT, STR_INIT, 0, 0                   \
	}

void userinfo_free(struct userinfo *u);

/* The whole lookup. Returns 1 found (u filled), 0 no such user (the
 * caller bounces "Sorry, no mailbox here by that name. (#5.1.1)"), -1 on
 * a temporary error (errno; see users_error). Calls getpwnam(3) when
 * users/cdb does not decide. */
int users_lookup(const char *local, struct userinfo *u);
/* Step 1 alone, on the cdb at path: 1 found, 0 when the file does not
 * exist or holds no matching entry, -1 on error (EINVAL for a malformed
 * entry). */
int users_cdb_lookup(const char *path, const char *local, struct userinfo *u);
/* Step 2 alone: the rules of qmail-getpw(8), "alias" included. */
int users_getpw(const char *local, struct userinfo *u);

/* Where step 2 gets its facts; the system's getpwnam and stat by
 * default. Tests substitute their own. A getpwnam that finds nothing
 * returns NULL with errno 0 (or ENOENT, ESRCH, EBADF, EPERM); any other
 * errno is a temporary failure. */
struct users_pwops {
	struct passwd *(*getpwnam)(const char *name);
	int (*stat)(const char *path, struct stat *st);
};
int users_getpw_with(const char *local, struct userinfo *u,
		     const struct users_pwops *ops);

/* What the last -1 of a lookup was about, for the log. Never NULL. */
const char *users_error(void);

/* --- users/assign --- */

/* One line of users/assign:
 *   =local:user:uid:gid:home:dash:ext:   exact address
 *   +prefix:user:uid:gid:home:dash:pre:  wildcard
 * Fields hold any byte but ':', newline and NUL (NUL separates the
 * fields of a cdb value). uid and gid are decimal; user must not be
 * empty and home must be an absolute path. */
struct users_entry {
	int wildcard;
	struct str local; /* address or prefix, as written */
	struct str user, home, dash, ext;
	uid_t uid;
	gid_t gid;
};

#define USERS_ENTRY_INIT                                                       \
	{                                                                      \
		0, STR_INIT, STR_INIT, STR_INIT, STR_INIT, STR_INIT, 0, 0      \
	}

void users_entry_free(struct users_entry *e);

/* Parse one line, without its newline. Returns 1 for an entry, 0 for the
 * final line ".", -1 when malformed (errno EINVAL, *why a fixed text) or
 * out of memory (errno ENOMEM, *why "out of memory"). */
int users_parse_line(const char *line, size_t len, struct users_entry *e,
		     const char **why);

enum users_fail {
	USERS_FAIL_SYNTAX = 1, /* the file is wrong: line and why say how */
	USERS_FAIL_READ,       /* reading the file failed: errno */
	USERS_FAIL_WRITE,      /* adding to the cdb failed: errno */
};

struct users_diag {
	enum users_fail fail;
	unsigned long line; /* 0 when not about one line */
	const char *why;
};

/* Read a whole assign file from fd and add its entries to w, in file
 * order (so the first of two equal keys wins), plus the empty key listing
 * the bytes that end a wildcard prefix. Lines after the final "." are
 * ignored. Returns 0, or -1 with d filled in; the caller then abandons w
 * (cdbx_abort) so that nothing is written. */
int users_compile(int fd, struct cdbx_writer *w, struct users_diag *d);

#endif
