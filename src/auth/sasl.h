/*
 * sasl.h: the PLAIN (RFC 4616) and LOGIN mechanisms of SMTP AUTH
 * (RFC 4954), as data: parsing the AUTH argument, decoding a client's
 * response and splitting it into a user and a password.
 *
 * Nothing here reads or writes a descriptor. Credentials live in fixed
 * buffers inside struct sasl_creds, so that the caller can wipe them
 * with sasl_wipe(); nothing here ever copies a password elsewhere.
 */
#ifndef QM_AUTH_SASL_H
#define QM_AUTH_SASL_H

#include <stddef.h>

/* One line from the client (an AUTH command or a response), CRLF
 * included: longer lines are malformed input. */
#define SASL_LINE_MAX 1000
/* A decoded response is never longer than this. */
#define SASL_DECODED_MAX 750

enum sasl_mech {
	SASL_MECH_NONE, /* AUTH with no mechanism */
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_UNKNOWN, /* any other name */
	SASL_MECH_BAD	   /* more than mechanism and one response */
};

enum sasl_status {
	SASL_OK,
	SASL_CANCELLED, /* the client answered "*" */
	SASL_MALFORMED, /* bad base64, an empty field, a NUL or control byte
			   where none may be, too long */
	SASL_AUTHZID	/* PLAIN with an authorization identity that is not
			   the user */
};

struct sasl_creds {
	char user[SASL_DECODED_MAX + 1]; /* NUL-terminated */
	size_t ulen;
	char pass[SASL_DECODED_MAX + 1]; /* NUL-terminated */
	size_t plen;
};

/* The AUTH argument: "MECH" or "MECH initial-response" (blanks between
 * are spaces; trailing ones are ignored). *ir and *irlen get the
 * initial response, *has_ir whether there was one. The mechanism name
 * is case-insensitive. */
enum sasl_mech sasl_parse_auth(const char *arg, size_t n, const char **ir,
			       size_t *irlen, int *has_ir);
/* Decode one response (line end already removed) into out, which must
 * have room for SASL_DECODED_MAX bytes. A challenge response "*" is a
 * cancellation; an initial response "=" is an empty one (RFC 4954). */
enum sasl_status sasl_decode(const char *line, size_t n, int initial,
			     unsigned char *out, size_t *outlen);
/* PLAIN: "authzid\0user\0pass". The user must be non-empty and free of
 * control bytes, the password non-empty; authzid empty or the user. */
enum sasl_status sasl_plain(const unsigned char *p, size_t n,
			    struct sasl_creds *c);
/* LOGIN: the decoded user name or password, as one field. */
enum sasl_status sasl_login_user(const unsigned char *p, size_t n,
				 struct sasl_creds *c);
enum sasl_status sasl_login_pass(const unsigned char *p, size_t n,
				 struct sasl_creds *c);
/* True when a user name is acceptable: 1 to SASL_DECODED_MAX bytes, no
 * NUL, no control byte (so that it cannot forge a log line or an
 * environment entry). */
int sasl_user_ok(const char *p, size_t n);

/* Zero memory in a way the compiler may not drop. */
void sasl_wipe(void *p, size_t n);

#endif
