/*
 * tlsctx.h: OpenSSL contexts for the UCSPI-TLS programs, from the
 * environment (CERTFILE, KEYFILE, DHFILE, CIPHERS, CAFILE, CADIR,
 * CCAFILE, CRLFILE).
 *
 * Everything is loaded before the first byte from the network is read,
 * while the process still has the rights to read the files. TLS 1.2 is
 * the minimum; renegotiation, compression and session resumption are
 * off (every connection is a new process, so a cache would never hit).
 * Only src/tls may include this header.
 */
#ifndef QM_TLSCTX_H
#define QM_TLSCTX_H

#include <stddef.h>

#include <openssl/ssl.h>

struct tlsconf {
	SSL_CTX *ctx;
	int have_ca;	   /* client: trust anchors are loaded */
	char warning[512]; /* a problem that was worked around, or "" */
};

/* Server context. Returns 0, or -1 with a reason in err. */
int tlsconf_server(struct tlsconf *c, char *err, size_t errlen);
/* Client context. With require set and no CAFILE/CADIR, the system's
 * default trust store is used. Returns 0, or -1 with a reason. */
int tlsconf_client(struct tlsconf *c, int require, char *err, size_t errlen);
void tlsconf_free(struct tlsconf *c);

/* The result of verifying the peer's certificate: the first error
 * found (a server with CCAFILE goes on past errors), or X509_V_OK. */
long tls_verify_result(const SSL *ssl);

/* The reason of the first queued OpenSSL error, or fallback when none
 * is queued; the queue is cleared. */
void tls_errtext(char *buf, size_t n, const char *fallback);

#endif
