/*
 * front.h: what sslserver and sslclient share: building the command
 * line of tcpserver/tcpclient with our TLS program inside it.
 *
 * Arguments are copied as they are into an argv for execvp; nothing is
 * ever given to a shell. No TLS library is used here.
 */
#ifndef QM_FRONT_H
#define QM_FRONT_H

#include <stddef.h>

struct argvbuf {
	const char **v;
	size_t n, cap; /* cap includes the final NULL */
};

/* Room for cap - 1 arguments. Exits 111 when out of memory. */
void av_init(struct argvbuf *a, size_t cap);
/* Append; a full buffer is a bug and exits 111. */
void av_push(struct argvbuf *a, const char *s);
void av_push2(struct argvbuf *a, const char *opt, const char *arg);
/* Append "-c" for option letter c. */
void av_flag(struct argvbuf *a, int c);
void av_append(struct argvbuf *a, const struct argvbuf *b);

/* The program `name` next to argv0 when argv0 names a directory and the
 * program is there, else `name` (found through PATH). */
const char *front_sibling(const char *argv0, const char *name);

/* An unsigned decimal option argument, or exit 100 naming the option. */
unsigned front_number(int opt, const char *arg);
/* Exit 100: the option is not supported, and why. */
_Noreturn void front_refuse(int opt, const char *why);

#endif
