/*
 * fd.h: small descriptor helpers for exec chains and UCSPI.
 *
 * These never close a descriptor the caller did not name.
 */
#ifndef QM_FD_H
#define QM_FD_H

/* Make descriptor `to` refer to what `from` refers to, then close `from`.
 * When to == from, only clears close-on-exec. Returns 0 or -1 (errno). */
int fd_move(int to, int from);
/* Like fd_move but leaves `from` open. */
int fd_copy(int to, int from);
/* Set or clear close-on-exec. */
int fd_cloexec(int fd);
int fd_keep(int fd);
/* Set or clear O_NONBLOCK. */
int fd_nonblock(int fd);
int fd_block(int fd);
/* Parse a decimal fd number; returns the fd or -1 when s is not a
 * plain non-negative decimal number that fits an int. */
int fd_parse(const char *s);

#endif
