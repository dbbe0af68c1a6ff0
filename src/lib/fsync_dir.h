/*
 * fsync_dir.h: make a rename, link or unlink durable.
 *
 * After a directory entry changes, the entry itself only survives a crash
 * once the directory holding it is fsynced. Every rename or link on the
 * mail path goes through here; never skip it to save time.
 */
#ifndef QM_FSYNC_DIR_H
#define QM_FSYNC_DIR_H

/* fsync the directory dir. Returns 0, or -1 with errno (open or fsync
 * failure; ENOTDIR when dir is not a directory). A file system that
 * cannot sync directories at all (fsync gives EINVAL) counts as success:
 * there is nothing more that could be done. */
int fsync_dir(const char *dir);
/* fsync the directory that holds the entry path: "." for a bare name,
 * "/" for "/name"; trailing slashes on path are ignored. 0 or -1. */
int fsync_dir_of(const char *path);

#endif
