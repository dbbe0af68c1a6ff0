/*
 * cdbx.h: constant databases, read and written through tinycdb.
 *
 * tinycdb maps the file read-only. A cdb is never rewritten in place,
 * only replaced by rename, so readers holding the old one keep seeing it
 * whole. Writing goes to path.tmp, which is fsynced and renamed into
 * place with the directory fsynced too: readers see the old file or the
 * new one, never a partial one.
 */
#ifndef QM_CDBX_H
#define QM_CDBX_H

#include <cdb.h>

#include "str.h"

struct cdbx_reader {
	int fd;
	struct cdb cdb;
};

/* Returns 1 opened, 0 when the file does not exist, -1 on error
 * (EPROTO from tinycdb for a file too short to be a cdb). After 0 or -1,
 * cdbx_find finds nothing and cdbx_close does nothing. */
int cdbx_open(struct cdbx_reader *r, const char *path);
void cdbx_close(struct cdbx_reader *r);
/* Find key; on a hit the value is copied into val (replacing it).
 * Returns 1 found, 0 not found, -1 on error (errno; EFBIG when the value
 * is larger than max). val is not changed unless 1 is returned. */
int cdbx_find(struct cdbx_reader *r, const void *key, size_t klen,
	      struct str *val, size_t max);
/* Open, find, close: for the one-lookup case. 0 also when no file. */
int cdbx_lookup(const char *path, const void *key, size_t klen, struct str *val,
		size_t max);

struct cdbx_writer {
	int fd;
	struct cdb_make cm;
	struct str tmp;	  /* path.tmp */
	struct str final; /* path */
};

/* Start writing path (through path.tmp, created with the given mode as
 * filtered by the umask; a symlink at path.tmp is refused). Returns 0 or
 * -1; after -1 the writer holds nothing and cdbx_abort is harmless. */
int cdbx_create(struct cdbx_writer *w, const char *path, int mode);
/* 0 or -1 (EFBIG for a key or value the format cannot hold). A failed
 * add abandons the writer at once (path.tmp removed, as by cdbx_abort):
 * further adds and commit fail with EBADF. */
int cdbx_add(struct cdbx_writer *w, const void *key, size_t klen,
	     const void *val, size_t vlen);
/* Finish, fsync, rename into place, fsync the directory. 0 or -1. On
 * failure path.tmp is removed and path is untouched, except when only
 * the final directory fsync fails: path then already holds the new data,
 * which may not survive a crash. Either way the writer is finished. */
int cdbx_commit(struct cdbx_writer *w);
/* Give up: remove path.tmp. Safe after any cdbx_create, even a failed
 * one, and after commit; calling it twice is harmless. */
void cdbx_abort(struct cdbx_writer *w);

#endif
