/*
 * queuefile.c: read-only access to queue files and directories, shared
 * by the admin tools.
 *
 * Files are opened O_NONBLOCK and checked to be regular before a byte is
 * read, so a FIFO or device put in the queue can never hang a tool. It
 * must never open anything for writing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auto.h"
#include "lib/buf.h"
#include "mail/queuefile.h"

void queuefile_split(char *fn, const char *dir, unsigned long id)
{
	snprintf(fn, QUEUEFILE_NAME, "%s/%lu/%lu", dir, id % AUTO_SPLIT, id);
}

int queuefile_parse_id(const char *s, unsigned long *id)
{
	unsigned long n = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned long digit = (unsigned long)(*s - '0');
		if (n > (~0UL - digit) / 10)
			return -1;
		n = n * 10 + digit;
	}
	*id = n;
	return 0;
}

static int read_fd(int fd, struct str *data)
{
	char chunk[BUF_SIZE];

	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		if ((size_t)r > QUEUEFILE_MAX - data->len) {
			errno = EFBIG;
			return -1;
		}
		if (str_append(data, chunk, (size_t)r) < 0)
			return -1;
	}
}

int queuefile_read(const char *fn, struct str *data, struct stat *st)
{
	int fd = open(fn, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int r = -1;

	str_clear(data);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0)
		goto out;
	if (!S_ISREG(st->st_mode)) {
		errno = EINVAL;
		goto out;
	}
	r = read_fd(fd, data);
out:;
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

const char *queuefile_record(const struct str *data, size_t *pos, size_t *len)
{
	if (*pos >= data->len)
		return NULL;
	const char *rec = data->s + *pos;
	const char *end = memchr(rec, 0, data->len - *pos);
	if (!end)
		return NULL;
	*len = (size_t)(end - rec);
	*pos += *len + 1;
	return rec;
}

/* qmail counts regular files only; d_type may be unknown on some file
 * systems, and then lstat decides. A file removed meanwhile is simply
 * no longer in the queue. */
int queuefile_is_regular(const char *dir, const struct dirent *de)
{
	char path[512];
	struct stat st;

#ifdef DT_REG
	if (de->d_type == DT_REG)
		return 1;
	if (de->d_type != DT_UNKNOWN && de->d_type != DT_LNK)
		return 0;
#endif
	int n = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
	if (n < 0 || (size_t)n >= sizeof path)
		return 0; /* longer than any queue name: not a queue file */
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int queuefile_each(const char *dir,
		   void (*fn)(void *arg, const char *dir,
			      const struct dirent *de),
		   void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return -1;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		fn(arg, dir, de);
	}
	int saved = errno;
	closedir(d);
	errno = saved;
	return saved ? -1 : 0;
}
