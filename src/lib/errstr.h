/*
 * errstr.h: the text for an errno value, the same with every C library.
 *
 * Logs, deferral reports and bounces quote these texts, and tests and
 * administrators' log filters match them; they must not change with the
 * libc a program happens to be linked with (glibc, musl, a BSD libc).
 * Never returns NULL.
 */
#ifndef QM_ERRSTR_H
#define QM_ERRSTR_H

const char *errstr(int e);

#endif
