/*
 * queuefile.h: reading the queue's directories and files, for the admin
 * tools (qmail-qread, qmail-qstat, qmail-overview).
 *
 * qmail-send may be working while these run, so every function copes
 * with files that vanish under it. Nothing here may ever create, change
 * or remove a file in the queue: it only opens for reading and lists.
 */
#ifndef QM_QUEUEFILE_H
#define QM_QUEUEFILE_H

#include <dirent.h>
#include <stddef.h>
#include <sys/stat.h>

#include "lib/str.h"

/* qmail-send refuses envelope files larger than this; so do the tools. */
#define QUEUEFILE_MAX ((size_t)64 << 20)
/* Room for any name queuefile_split makes. */
#define QUEUEFILE_NAME 64

/* "dir/(id % split)/id" into fn, which has QUEUEFILE_NAME bytes. */
void queuefile_split(char *fn, const char *dir, unsigned long id);
/* A message id: decimal digits only, no overflow. Returns 0 or -1. */
int queuefile_parse_id(const char *s, unsigned long *id);
/* The whole regular file fn into data (at most QUEUEFILE_MAX bytes), its
 * status into st. Returns 0, or -1 with errno (ENOENT when it is gone,
 * EINVAL when it is not a regular file, EFBIG when too large). */
int queuefile_read(const char *fn, struct str *data, struct stat *st);
/* The next NUL-ended record of data at *pos, or NULL at the end; *len
 * excludes the NUL. A torn last record (no NUL yet) is not a record. */
const char *queuefile_record(const struct str *data, size_t *pos, size_t *len);
/* True when the entry de of dir is a regular file (lstat decides when
 * the file system does not say). */
int queuefile_is_regular(const char *dir, const struct dirent *de);
/* Calls fn(arg, dir, de) for every entry of dir but "." and "..".
 * Returns 0, or -1 with errno when dir cannot be opened or read. */
int queuefile_each(const char *dir,
		   void (*fn)(void *arg, const char *dir,
			      const struct dirent *de),
		   void *arg);

#endif
