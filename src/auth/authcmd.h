/*
 * authcmd.h: splitting the command lines qmail-authup reads, before
 * login, into a verb and its argument (SMTP, RFC 5321; POP3, RFC 1939).
 *
 * Pure functions over a byte range: nothing here reads the network or
 * keeps a pointer past the call, and the argument always points inside
 * the given line.
 */
#ifndef QM_AUTH_AUTHCMD_H
#define QM_AUTH_AUTHCMD_H

#include <stddef.h>

/* A command line, CRLF included. */
#define AUTHCMD_LINE_MAX 1000

enum authcmd_verb {
	AUTHCMD_OTHER, /* a verb authup does not serve before login */
	AUTHCMD_EMPTY, /* an empty line */
	/* SMTP */
	AUTHCMD_HELO,
	AUTHCMD_EHLO,
	AUTHCMD_AUTH,
	AUTHCMD_STARTTLS,
	AUTHCMD_NOOP,
	AUTHCMD_RSET,
	/* POP3 */
	AUTHCMD_CAPA,
	AUTHCMD_STLS,
	AUTHCMD_USER,
	AUTHCMD_PASS,
	AUTHCMD_APOP,
	/* both */
	AUTHCMD_QUIT
};

struct authcmd {
	enum authcmd_verb verb;
	const char *arg; /* inside the line; length alen */
	size_t alen;
};

/* The length of line without its end: "\r\n", or a bare "\n". */
size_t authcmd_chomp(const char *line, size_t n);
/* SMTP: the verb ends at the first space; the argument starts after
 * every space that follows it. Verbs are case-insensitive. */
void authcmd_smtp(const char *line, size_t n, struct authcmd *c);
/* POP3: the argument is everything after the single space that ends
 * the verb, kept as sent (a password may begin with a space). */
void authcmd_pop3(const char *line, size_t n, struct authcmd *c);

#endif
