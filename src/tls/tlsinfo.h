/*
 * tlsinfo.h: the SSL_* variables of a finished handshake, in the names
 * Apache mod_ssl uses.
 *
 * Everything taken from a certificate is the peer's choice; it goes
 * through tlsblock, which drops any value it cannot carry whole. Only
 * src/tls may include this header.
 */
#ifndef QM_TLSINFO_H
#define QM_TLSINFO_H

#include <openssl/ssl.h>

#include "lib/str.h"

/* SSL_PROTOCOL, SSL_CIPHER, SSL_CIPHER_USEKEYSIZE,
 * SSL_CIPHER_ALGKEYSIZE, then the client certificate: SSL_CLIENT_VERIFY
 * (SUCCESS, FAILED:reason or NONE), SSL_CLIENT_S_DN, SSL_CLIENT_S_DN_CN,
 * SSL_CLIENT_S_DN_Email, SSL_CLIENT_I_DN, SSL_CLIENT_M_SERIAL (unset
 * entries when there is no certificate). Appends to b; 0 or -1. */
int tlsinfo_server(SSL *ssl, struct str *b);

/* The server's certificate as seen by a client that expects the name
 * `name` (NULL: no name check; an IP address is checked against the
 * certificate's IP addresses). have_ca: trust anchors were loaded,
 * otherwise nothing can be verified and the result is NONE.
 * Appends the common variables and SSL_SERVER_VERIFY (SUCCESS, NONE
 * or FAILED:reason), SSL_SERVER_S_DN, SSL_SERVER_S_DN_CN,
 * SSL_SERVER_I_DN, SSL_SERVER_M_SERIAL. *verified is set to 1 only for
 * SUCCESS. The reason goes to why (for the log) as well. 0 or -1. */
int tlsinfo_client(SSL *ssl, const char *name, int have_ca, struct str *b,
		   int *verified, char *why, size_t whylen);

/* The name is usable for SNI and certificate checks: a DNS name of
 * letters, digits, '-', '_' and '.' (at most 253 bytes, no empty
 * label), or an IPv4/IPv6 address (then *is_ip is set). */
int tlsinfo_name_ok(const char *name, int *is_ip);

#endif
