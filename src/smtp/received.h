/*
 * received.h: Received header fields, with every outside value made safe.
 *
 * Host names, HELO arguments and ident replies come from the network and
 * may hold any byte; here anything but a printable, harmless character
 * becomes '?', so a header can never be broken or forged by them.
 */
#ifndef QM_SMTP_RECEIVED_H
#define QM_SMTP_RECEIVED_H

#include "lib/str.h"

/* Append a value with unsafe bytes replaced. */
void received_safe(struct str *out, const char *s);
/* "Received: from HOST (HELO h) (INFO@IP)\n  by LOCAL with PROTO; DATE\n".
 * helo is shown only when it differs from host; info only when set. */
void received_smtp(struct str *out, const char *proto, const char *local,
		   const char *ip, const char *host, const char *info,
		   const char *helo);

#endif
