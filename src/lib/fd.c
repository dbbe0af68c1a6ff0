/*
 * fd.c: descriptor moves for exec chains.
 *
 * Moving a descriptor onto itself must not close it: UCSPI programs hand
 * out fd numbers that may already be the target.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "fd.h"

int fd_copy(int to, int from)
{
	if (to == from)
		return fd_keep(to);
	while (dup2(from, to) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

int fd_move(int to, int from)
{
	if (to == from)
		return fd_keep(to);
	if (fd_copy(to, from) < 0)
		return -1;
	close(from);
	return 0;
}

static int fd_setflag(int fd, int get, int set, int flag, int on)
{
	int flags = fcntl(fd, get);
	if (flags < 0)
		return -1;
	flags = on ? (flags | flag) : (flags & ~flag);
	return fcntl(fd, set, flags) < 0 ? -1 : 0;
}

int fd_cloexec(int fd)
{
	return fd_setflag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, 1);
}

int fd_keep(int fd)
{
	return fd_setflag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, 0);
}

int fd_nonblock(int fd)
{
	return fd_setflag(fd, F_GETFL, F_SETFL, O_NONBLOCK, 1);
}

int fd_block(int fd)
{
	return fd_setflag(fd, F_GETFL, F_SETFL, O_NONBLOCK, 0);
}

int fd_parse(const char *s)
{
	long n = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (*s - '0');
		if (n > INT_MAX)
			return -1;
	}
	return (int)n;
}
