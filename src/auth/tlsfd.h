/*
 * tlsfd.h: keeping the UCSPI-TLS descriptors clear of fd 3.
 *
 * ucspi-ssl often hands out SSLREADFD or SSLCTLFD as fd 3, the number
 * checkpassword(8) reads its input from. qmail-authup moves such a
 * descriptor elsewhere, before it ever builds the fd-3 pipe, and tells
 * its children the new numbers through the environment. It never closes
 * a descriptor that is not one of the three.
 */
#ifndef QM_AUTH_TLSFD_H
#define QM_AUTH_TLSFD_H

#include "smtp/ucspitls.h"

/* If any of t's descriptors is fd, duplicate it to a number above fd,
 * close fd, and update t and SSLCTLFD/SSLREADFD/SSLWRITEFD. Descriptors
 * that were one and the same stay one. Returns 0, or -1 (errno). */
int tlsfd_avoid(struct ucspitls *t, int fd);
/* After ucspitls_start moved the TLS pipes onto rfd and wfd: record
 * those numbers in t and in the environment, for the children. */
int tlsfd_started(struct ucspitls *t, int rfd, int wfd);

#endif
