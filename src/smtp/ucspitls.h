/*
 * ucspitls.h: the application side of UCSPI-TLS (spec/ucspi-tls.md).
 *
 * A mail program asks the TLS program for TLS by writing one byte on
 * SSLCTLFD, then reads and writes plaintext on SSLREADFD/SSLWRITEFD,
 * which this module moves onto the program's own descriptors. It never
 * links a TLS library. Everything already buffered from the cleartext
 * side is dropped at the switch (CVE-2011-0411): a command pipelined
 * after STARTTLS must never run inside the TLS session.
 */
#ifndef QM_UCSPITLS_H
#define QM_UCSPITLS_H

#include "lib/buf.h"

enum tls_policy {
	TLS_OFF,     /* UCSPITLS unset or "-", or DISABLETLS set */
	TLS_OFFERED, /* UCSPITLS "" or any other value */
	TLS_REQUIRED /* UCSPITLS "!" */
};

struct ucspitls {
	enum tls_policy policy;
	int ctl, rfd, wfd; /* -1 when the fds are missing */
	int active;
};

/* Read UCSPITLS, DISABLETLS and the three fd variables, then remove
 * UCSPITLS and DISABLETLS from the environment. */
void ucspitls_init(struct ucspitls *t);
/* TLS can be started now: the fds are there, policy allows, not active. */
int ucspitls_available(const struct ucspitls *t);
/* Switch: write 'Y', drop what in holds, move the TLS fds onto rfd_to
 * (for in) and wfd_to (for out), and read the SSL_* block into the
 * environment. The positive reply must already be flushed. Returns 0,
 * or -1 when the handshake failed (the control fd ended without a
 * block): the session must end then. */
int ucspitls_start(struct ucspitls *t, struct buf *in, struct buf *out,
		   int rfd_to, int wfd_to);
/* "TLSv1.3" etc. and the cipher, from the environment, or NULL. */
const char *ucspitls_protocol(void);
const char *ucspitls_cipher(void);

#endif
