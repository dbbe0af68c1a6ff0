/*
 * tlsio.h: the handshake and the relay between a TLS connection and
 * the application's plaintext descriptor.
 *
 * Both run on non-blocking descriptors with poll(), so that neither
 * direction can stall the other and every wait has a deadline. Only
 * src/tls may include this header.
 */
#ifndef QM_TLSIO_H
#define QM_TLSIO_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Attach ssl to rfd/wfd (made non-blocking) and complete the
 * handshake within timeout seconds. The role (accept or connect) must
 * already be set. Returns 0, or -1 with errno (ETIMEDOUT, EPROTO, or a
 * system error) and a reason in err. */
int tlsio_handshake(SSL *ssl, int rfd, int wfd, unsigned timeout, char *err,
		    size_t n);

/* Relay until both directions have ended:
 * - peer to application: decrypted data goes to data; at the peer's
 *   close_notify (or its EOF) data gets shutdown(SHUT_WR);
 * - application to peer: data is encrypted and sent; at EOF on data,
 *   close_notify is sent, and the peer may still send until it closes.
 * Nothing moving for idle seconds ends the relay (0: no limit). Once the
 * application has closed its end entirely and close_notify is out, the
 * peer has linger seconds to finish. Returns 0 when both directions
 * ended (a peer that closes without close_notify included), or -1 with
 * errno (ETIMEDOUT, EPROTO, or a system error) and a reason in err. */
int tlsio_relay(SSL *ssl, int rfd, int wfd, int data, unsigned idle,
		unsigned linger, char *err, size_t n);

#endif
