/*
 * fuzz_tmpdir.h: one private directory for a harness whose code under
 * test needs real files (a Maildir, a cdb).
 *
 * The directory is made on first use with mkdtemp under $FUZZ_TMPDIR,
 * else /dev/shm (no disk I/O, so fsync costs nothing), else $TMPDIR or
 * /tmp. The harness empties it after every input, and it is removed at
 * exit. A harness must never write anywhere else, and must leave nothing
 * in it from one input to the next, so that runs are deterministic.
 */
#ifndef QM_FUZZ_TMPDIR_H
#define QM_FUZZ_TMPDIR_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_tmp[PATH_MAX];

/* Remove everything below the directory fd (which is closed). A failure
 * is the harness's: abort so that it is seen. */
static inline void fuzz_empty_dir(int fd)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;

	if (!d)
		abort();
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, e->d_name, 0) == 0)
			continue;
		int sub =
		    openat(fd, e->d_name,
			   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			abort();
		fuzz_empty_dir(sub);
		if (unlinkat(fd, e->d_name, AT_REMOVEDIR) < 0)
			abort();
		rewinddir(d); /* the listing changed under us */
	}
	closedir(d);
}

static inline void fuzz_tmpdir_clean(void)
{
	if (!fuzz_tmp[0])
		return;
	int fd = open(fuzz_tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		abort();
	fuzz_empty_dir(fd);
}

static inline void fuzz_tmpdir_remove(void)
{
	if (!fuzz_tmp[0])
		return;
	fuzz_tmpdir_clean();
	rmdir(fuzz_tmp);
	fuzz_tmp[0] = 0;
}

static inline int fuzz_usable_dir(const char *d)
{
	struct stat st;
	return d && *d && stat(d, &st) == 0 && S_ISDIR(st.st_mode) &&
	       access(d, W_OK | X_OK) == 0;
}

/* The directory, made on the first call. */
static inline const char *fuzz_tmpdir(void)
{
	if (fuzz_tmp[0])
		return fuzz_tmp;
	const char *base = getenv("FUZZ_TMPDIR");
	if (!fuzz_usable_dir(base))
		base = fuzz_usable_dir("/dev/shm") ? "/dev/shm" : NULL;
	if (!base)
		base = fuzz_usable_dir(getenv("TMPDIR")) ? getenv("TMPDIR")
							 : "/tmp";
	int n = snprintf(fuzz_tmp, sizeof fuzz_tmp, "%s/qm-fuzz.XXXXXX", base);
	if (n < 0 || (size_t)n >= sizeof fuzz_tmp || !mkdtemp(fuzz_tmp)) {
		perror("fuzz: temporary directory");
		abort();
	}
	atexit(fuzz_tmpdir_remove);
	return fuzz_tmp;
}

/* base/name into out (PATH_MAX bytes); aborts when it does not fit. */
static inline void fuzz_path(char *out, const char *base, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", base, name);
	if (n < 0 || n >= PATH_MAX)
		abort();
}

#endif
