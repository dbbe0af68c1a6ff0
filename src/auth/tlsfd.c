/*
 * tlsfd.c: moving UCSPI-TLS descriptors out of the way.
 *
 * The numbers come from the environment; F_DUPFD keeps the new one
 * inheritable, since every program of the chain must still see it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "auth/tlsfd.h"
#include "lib/env.h"

static int set_fd_env(const char *name, int fd)
{
	char num[16];

	snprintf(num, sizeof num, "%d", fd);
	return env_set(name, num);
}

/* A slot that held `from` now holds `to`, in t and in the environment. */
static int retarget(int *slot, const char *name, int from, int to)
{
	if (*slot != from)
		return 0;
	*slot = to;
	return set_fd_env(name, to);
}

int tlsfd_avoid(struct ucspitls *t, int fd)
{
	int moved;

	if (t->ctl != fd && t->rfd != fd && t->wfd != fd)
		return 0;
	moved = fcntl(fd, F_DUPFD, fd + 1);
	if (moved < 0)
		return -1;
	close(fd);
	if (retarget(&t->ctl, "SSLCTLFD", fd, moved) < 0 ||
	    retarget(&t->rfd, "SSLREADFD", fd, moved) < 0 ||
	    retarget(&t->wfd, "SSLWRITEFD", fd, moved) < 0)
		return -1;
	return 0;
}

int tlsfd_started(struct ucspitls *t, int rfd, int wfd)
{
	t->rfd = rfd;
	t->wfd = wfd;
	if (set_fd_env("SSLREADFD", rfd) < 0 ||
	    set_fd_env("SSLWRITEFD", wfd) < 0)
		return -1;
	return 0;
}
