/*
 * bgsync.h: fsyncs that run while the caller goes on.
 *
 * For a program that must make several independent things durable before
 * one final step (qmail-queue: the message, its directory entry and the
 * envelope, before the todo link). Each fsync is a cache flush the caller
 * would otherwise wait for in turn; one helper thread syncs what it is
 * given, in order, while the caller writes and syncs the next thing. It
 * never decides what may be ordered: bgsync_end waits for everything
 * given, and the dependent step comes after it.
 */
#ifndef QM_BGSYNC_H
#define QM_BGSYNC_H

#include <pthread.h>

#define BGSYNC_MAX 4

struct bgsync {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int threaded; /* the helper runs; otherwise bgsync_add syncs at once */
	int fd[BGSYNC_MAX];
	int is_dir[BGSYNC_MAX];
	int added, done, ending;
	int err; /* errno of the first failed fsync, or 0 */
};

/* Starts the helper. Without one (no thread could be made) every
 * bgsync_add syncs before it returns: the same result, only later. */
void bgsync_begin(struct bgsync *b);
/* fsync(fd) in the background; for a directory, EINVAL (the file system
 * cannot sync directories) counts as done. The caller keeps fd open until
 * bgsync_end returns. At most BGSYNC_MAX fds; more is a failure that
 * bgsync_end reports (EOVERFLOW). */
void bgsync_add(struct bgsync *b, int fd, int is_dir);
/* Waits for every fsync added; 0, or -1 with errno of the first that
 * failed. Call exactly once after bgsync_begin. */
int bgsync_end(struct bgsync *b);

#endif
