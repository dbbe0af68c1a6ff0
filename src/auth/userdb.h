/*
 * userdb.h: the virtual-user password file and its cdb
 * (checkpassword-cdb(8), qmail-passwd(8)).
 *
 * The source file has one user per line, "login:hash:uid:gid:home";
 * blank lines and lines starting with '#' are comments. The cdb maps
 * login to "hash:uid:gid:home". The home comes last and may hold ':'.
 * Parsing never trusts a length: every field is checked against its
 * buffer before it is copied, and a bad field is an error, never cut.
 */
#ifndef QM_AUTH_USERDB_H
#define QM_AUTH_USERDB_H

#include <stddef.h>

#include "auth/pwhash.h"
#include "lib/str.h"

#define USERDB_LOGIN_MAX 255
#define USERDB_HOME_MAX 1023
/* The longest cdb value or source line (without the newline). */
#define USERDB_LINE_MAX                                                        \
	(USERDB_LOGIN_MAX + PWHASH_MAX + USERDB_HOME_MAX + 2 * 20 + 4)

struct userdb_entry {
	char login[USERDB_LOGIN_MAX + 1];
	char hash[PWHASH_MAX];
	unsigned long uid, gid;
	char home[USERDB_HOME_MAX + 1];
};

/* A login: 1 to USERDB_LOGIN_MAX bytes of printable ASCII other than
 * ':', not starting with '#'. */
int userdb_login_ok(const char *p, size_t n);
/* Parse a cdb value into e (e->login untouched). 0, or -1 with errno
 * EINVAL (any field bad; uid 0 is refused: a virtual user is never
 * root). */
int userdb_value(const char *p, size_t n, struct userdb_entry *e);
/* Parse a source line (no newline) into e. 0 or -1 (EINVAL). */
int userdb_line(const char *p, size_t n, struct userdb_entry *e);
/* A source line is a comment or blank. */
int userdb_is_comment(const char *p, size_t n);
/* Append e as a cdb value, or as a source line with its newline. 0 or
 * -1 (errno from str). */
int userdb_format_value(struct str *out, const struct userdb_entry *e);
int userdb_format_line(struct str *out, const struct userdb_entry *e);

enum userdb_op {
	USERDB_CHECK,  /* copy, checking every line */
	USERDB_ADD,    /* append e; EEXIST when the login is there */
	USERDB_CHANGE, /* replace the fields `fields` names; ENOENT */
	USERDB_REMOVE  /* drop the login's line; ENOENT */
};

/* Fields of USERDB_CHANGE. */
#define USERDB_HASH 1u
#define USERDB_UID 2u
#define USERDB_GID 4u
#define USERDB_HOME 8u

/* Rewrite a source file text[0..n) into out with op applied to the
 * login e->login. Comments and blank lines are kept as they are, and a
 * last line without its newline gets one. Every entry must parse, and
 * no two logins may differ only in case. Returns 0, or -1 with errno:
 * EINVAL (*line is the number of the first bad line), EEXIST, ENOENT,
 * or ENOMEM/EOVERFLOW. */
int userdb_edit(const char *text, size_t n, enum userdb_op op,
		const struct userdb_entry *e, unsigned fields, struct str *out,
		unsigned long *line);
/* Call fn for each entry of a source text (already checked by
 * userdb_edit). Stops at the first nonzero return and gives it back;
 * -1 with EINVAL for a bad line. */
int userdb_each(const char *text, size_t n,
		int (*fn)(void *ctx, const struct userdb_entry *e), void *ctx);

#endif
