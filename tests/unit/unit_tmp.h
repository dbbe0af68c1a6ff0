/*
 * unit_tmp.h: a scratch directory for one test, and files in it.
 *
 * unit_tmp_enter makes a fresh /tmp/<tag>.XXXXXX and makes it the
 * current directory; unit_tmp_leave goes back to / and removes the whole
 * tree. Use them in pairs inside a test (each test is its own child).
 * unit_write_file and unit_mkdir create, inside that directory, a file or
 * a directory with exactly the mode asked for, whatever the umask.
 * A failure to set things up ends the test: exit(2), with a message that
 * names the path and the reason.
 *
 * It must never touch anything outside the directory it made: leaving
 * removes only that tree and never follows a symbolic link (FTW_PHYS),
 * entering twice without leaving is fatal (no directory is lost track
 * of), and files are made only by relative paths while a directory is in
 * use. It must never let a failed setup pass for a test that ran.
 */
#ifndef QM_UNIT_TMP_H
#define QM_UNIT_TMP_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory in use; "" when there is none. */
static char unit_tmp_dir[256];

static inline void unit_tmp_die(const char *what, const char *path)
{
	fprintf(stderr, "unit_tmp: %s %s: %s\n", what, path, strerror(errno));
	exit(2);
}

/* Makes /tmp/<tag>.XXXXXX, enters it and returns its path. */
static inline const char *unit_tmp_enter(const char *tag)
{
	if (unit_tmp_dir[0]) {
		fprintf(stderr, "unit_tmp: %s is still in use\n", unit_tmp_dir);
		exit(2);
	}
	int n =
	    snprintf(unit_tmp_dir, sizeof unit_tmp_dir, "/tmp/%s.XXXXXX", tag);
	if (n < 0 || (size_t)n >= sizeof unit_tmp_dir) {
		errno = ENAMETOOLONG;
		unit_tmp_die("mkdtemp", tag);
	}
	if (!mkdtemp(unit_tmp_dir))
		unit_tmp_die("mkdtemp", unit_tmp_dir);
	if (chdir(unit_tmp_dir) < 0) {
		int e = errno;
		rmdir(unit_tmp_dir);
		errno = e;
		unit_tmp_die("chdir", unit_tmp_dir);
	}
	return unit_tmp_dir;
}

static inline int unit_tmp_remove(const char *path, const struct stat *st,
				  int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0) {
		fprintf(stderr, "unit_tmp: remove %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Back to / and the whole tree removed: 0, or -1 when something failed
 * (or no directory was in use). */
static inline int unit_tmp_leave(void)
{
	int r = 0;

	if (!unit_tmp_dir[0])
		return -1;
	if (chdir("/") < 0)
		r = -1;
	if (nftw(unit_tmp_dir, unit_tmp_remove, 16, FTW_DEPTH | FTW_PHYS) != 0)
		r = -1;
	unit_tmp_dir[0] = '\0';
	return r;
}

static inline void unit_tmp_check_path(const char *path)
{
	if (!unit_tmp_dir[0] || path[0] == '/') {
		fprintf(stderr,
			"unit_tmp: %s: not inside a unit_tmp directory\n",
			path);
		exit(2);
	}
}

/* Creates or truncates path with len bytes of data and exactly mode. */
static inline void unit_write_file(const char *path, const void *data,
				   size_t len, mode_t mode)
{
	const char *p = data;
	int fd;

	unit_tmp_check_path(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		unit_tmp_die("open", path);
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			unit_tmp_die("write", path);
		}
		p += w;
		len -= (size_t)w;
	}
	if (fchmod(fd, mode) < 0)
		unit_tmp_die("fchmod", path);
	if (close(fd) < 0)
		unit_tmp_die("close", path);
}

static inline void unit_write_str(const char *path, const char *text,
				  mode_t mode)
{
	unit_write_file(path, text, strlen(text), mode);
}

/* Makes the directory path with exactly mode. */
static inline void unit_mkdir(const char *path, mode_t mode)
{
	unit_tmp_check_path(path);
	if (mkdir(path, mode) < 0)
		unit_tmp_die("mkdir", path);
	if (chmod(path, mode) < 0)
		unit_tmp_die("chmod", path);
}

#endif
