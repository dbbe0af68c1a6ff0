/*
 * tlsproc.h: the processes of a UCSPI-TLS program.
 *
 * The TLS process forks the application before it touches the network,
 * so that the application can take its own uid while the TLS process
 * takes another (SSL_UID), and so that neither ever runs with more
 * privilege than it needs. The application gets its descriptors and
 * environment here; the TLS process keeps the other ends. This module
 * links no TLS library and never execs anything but the argv it is
 * given.
 */
#ifndef QM_TLSPROC_H
#define QM_TLSPROC_H

#include <sys/types.h>

/* Ids to take. has_uid/has_gid say which were given. */
struct tlsids {
	int has_uid, has_gid;
	uid_t uid;
	gid_t gid;
};

enum tlsmode {
	TLSMODE_DELAYED,  /* the application keeps the cleartext fds */
	TLSMODE_IMMEDIATE /* the application gets plaintext on them */
};

struct tlsapp {
	pid_t pid;
	int ctl;  /* TLS side of the control channel */
	int data; /* TLS side of the plaintext channel */
};

/* Parse a uid or gid given as a decimal number. 0 or -1 (EINVAL). */
int tlsids_parse(const char *s, unsigned long *out);
/* Fill ids from the variables uidvar and gidvar (SSL_UID, SSL_GID).
 * Returns 0, or -1 (EINVAL: a variable is set but not a number). */
int tlsids_from_env(struct tlsids *ids, const char *uidvar, const char *gidvar);
/* True when this process is able to take the ids (root, or they are
 * already ours). */
int tlsids_possible(const struct tlsids *ids);
/* Take the ids: setgroups (as root), setgid, setuid. 0 or -1 (errno). */
int tlsids_take(const struct tlsids *ids);

/* Start the application argv[0] with the given ids.
 * fd_in and fd_out are the application's cleartext descriptors (0 and
 * 1 on the server side, 6 and 7 on the client side).
 * - DELAYED: the application keeps fd_in/fd_out and gets SSLCTLFD,
 *   SSLREADFD and SSLWRITEFD (the last two one descriptor). It runs at
 *   once.
 * - IMMEDIATE: fd_in/fd_out become the plaintext channel; the
 *   application waits for the SSL_* block on the control channel and
 *   runs with those variables once it arrives, or exits 111 when the
 *   channel closes first (the handshake failed). SSLCTLFD and the rest
 *   are removed from its environment.
 * in_child, when not NULL, runs first in the child (to free secrets).
 * Returns 0 (app filled in), or -1 (errno). */
int tlsapp_start(struct tlsapp *app, char *const *argv,
		 const struct tlsids *ids, enum tlsmode mode, int fd_in,
		 int fd_out, void (*in_child)(void *), void *arg);

/* Wait for the control byte. Returns the byte, 0 when the channel
 * ended without one, -1 on error. */
int tlsapp_wait_request(const struct tlsapp *app);
/* Wait for the application to end. Returns its exit code, or 111 when
 * it was killed by a signal or could not be waited for. */
int tlsapp_reap(struct tlsapp *app);

/* Put /dev/null on fd (used to drop descriptors the TLS process must
 * not hold, keeping the number taken). 0 or -1. */
int tlsproc_devnull(int fd);
/* chroot to dir and chdir to "/". 0 or -1 (errno). */
int tlsproc_chroot(const char *dir);

#endif
