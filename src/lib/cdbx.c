/*
 * cdbx.c: constant databases over tinycdb (see cdbx.h).
 *
 * A cdb in place is never written: a new one is built in path.tmp and
 * renamed over it only once it is complete and on disk. On any failure
 * path.tmp is removed and path is left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include "cdbx.h"
#include "fsync_dir.h"

static void close_keep_errno(int fd)
{
	int saved = errno;
	close(fd);
	errno = saved;
}

int cdbx_open(struct cdbx_reader *r, const char *path)
{
	/* O_NONBLOCK: a FIFO in place of the cdb must not hang the open;
	 * cdb_init then refuses it as too short. */
	r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (r->fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (cdb_init(&r->cdb, r->fd) < 0) {
		close_keep_errno(r->fd);
		r->fd = -1;
		return -1;
	}
	return 1;
}

void cdbx_close(struct cdbx_reader *r)
{
	if (r->fd < 0)
		return;
	cdb_free(&r->cdb);
	close(r->fd);
	r->fd = -1;
}

int cdbx_find(struct cdbx_reader *r, const void *key, size_t klen,
	      struct str *val, size_t max)
{
	/* No file means no keys; and the format cannot hold such a key. */
	if (r->fd < 0 || klen > UINT_MAX)
		return 0;
	int found = cdb_find(&r->cdb, key, (unsigned)klen);
	if (found <= 0)
		return found;

	unsigned vlen = cdb_datalen(&r->cdb);
	if (vlen > max) {
		errno = EFBIG;
		return -1;
	}
	const void *data = cdb_getdata(&r->cdb);
	if (!data)
		return -1; /* tinycdb set errno: the file is corrupt */
	if (str_copy(val, data, vlen) < 0)
		return -1;
	return 1;
}

int cdbx_lookup(const char *path, const void *key, size_t klen, struct str *val,
		size_t max)
{
	struct cdbx_reader r;
	int found = cdbx_open(&r, path);
	if (found <= 0)
		return found;
	found = cdbx_find(&r, key, klen, val, max);
	int saved = errno;
	cdbx_close(&r);
	errno = saved;
	return found;
}

static void writer_reset(struct cdbx_writer *w)
{
	int saved = errno;
	w->fd = -1;
	str_free(&w->tmp);
	str_free(&w->final);
	errno = saved;
}

int cdbx_create(struct cdbx_writer *w, const char *path, int mode)
{
	w->fd = -1;
	w->tmp = (struct str)STR_INIT;
	w->final = (struct str)STR_INIT;
	if (!*path) {
		errno = ENOENT;
		return -1;
	}
	if (str_copys(&w->final, path) < 0 || str_copys(&w->tmp, path) < 0 ||
	    str_appends(&w->tmp, ".tmp") < 0)
		goto fail;
	/* O_NOFOLLOW: a symlink planted at path.tmp must not redirect the
	 * write to some other file. */
	w->fd = open(w->tmp.s,
		     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY |
			 O_NOFOLLOW,
		     (mode_t)mode);
	if (w->fd < 0)
		goto fail;
	if (cdb_make_start(&w->cm, w->fd) < 0) {
		close_keep_errno(w->fd);
		unlink(w->tmp.s);
		goto fail;
	}
	return 0;
fail:
	writer_reset(w);
	return -1;
}

/* tinycdb frees its record lists only in cdb_make_finish. With its
 * descriptor set to -1 every write there fails, so the memory is
 * released without touching the file. */
static void release_make(struct cdbx_writer *w)
{
	int saved = errno;
	w->cm.cdb_fd = -1;
	(void)cdb_make_finish(&w->cm);
	errno = saved;
}

/* Drops an unfinished writer: memory, descriptor and path.tmp. */
static void abandon(struct cdbx_writer *w)
{
	int saved = errno;
	if (w->fd >= 0) {
		release_make(w);
		close(w->fd);
		unlink(w->tmp.s);
	}
	writer_reset(w);
	errno = saved;
}

int cdbx_add(struct cdbx_writer *w, const void *key, size_t klen,
	     const void *val, size_t vlen)
{
	if (w->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (klen > UINT_MAX || vlen > UINT_MAX) {
		errno = EFBIG;
		goto fail;
	}
	if (cdb_make_add(&w->cm, key, (unsigned)klen, val, (unsigned)vlen) < 0)
		goto fail;
	return 0;
fail:
	/* A failed write may have left a partial record in the file. */
	abandon(w);
	return -1;
}

int cdbx_commit(struct cdbx_writer *w)
{
	int fd = w->fd;

	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	w->fd = -1;
	/* cdb_make_finish frees tinycdb's memory whatever it returns. */
	if (cdb_make_finish(&w->cm) < 0 || fsync(fd) < 0) {
		close_keep_errno(fd);
		goto fail;
	}
	if (close(fd) < 0)
		goto fail;
	if (rename(w->tmp.s, w->final.s) < 0)
		goto fail;
	/* Past the rename path holds the new data; a failure here only
	 * means the rename may not survive a crash. */
	int r = fsync_dir_of(w->final.s);
	writer_reset(w);
	return r;
fail:;
	int saved = errno;
	unlink(w->tmp.s);
	writer_reset(w);
	errno = saved;
	return -1;
}

void cdbx_abort(struct cdbx_writer *w)
{
	abandon(w);
}
