/*
 * fsync_dir.c: fsync the directory holding an entry (see fsync_dir.h).
 *
 * Must never report success when the directory could not be synced, and
 * never leaks a descriptor or memory on any path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checked.h"
#include "fsync_dir.h"

int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	while (fsync(fd) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EINVAL)
			break; /* the file system cannot sync directories */
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	/* Read-only descriptor: close has nothing left to flush. */
	close(fd);
	return 0;
}

/* Length of the directory part of path[0..len), which holds a '/' at
 * slash; redundant slashes before the last name are dropped. */
static size_t dir_len(const char *path, size_t slash)
{
	while (slash > 0 && path[slash - 1] == '/')
		slash--;
	return slash;
}

int fsync_dir_of(const char *path)
{
	size_t len = strlen(path);
	size_t name;

	if (len == 0) {
		errno = ENOENT;
		return -1;
	}
	while (len > 1 && path[len - 1] == '/')
		len--;
	for (name = len; name > 0 && path[name - 1] != '/'; name--)
		;
	if (name == 0)
		return fsync_dir(".");

	size_t dlen = dir_len(path, name - 1);
	if (dlen == 0)
		return fsync_dir("/");

	size_t size;
	if (size_add(dlen, 1, &size) < 0)
		return -1;
	char *dir = malloc(size);
	if (!dir) {
		errno = ENOMEM;
		return -1;
	}
	memcpy(dir, path, dlen);
	dir[dlen] = '\0';
	int r = fsync_dir(dir);
	int saved = errno;
	free(dir);
	errno = saved;
	return r;
}
