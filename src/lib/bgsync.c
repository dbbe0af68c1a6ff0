/*
 * bgsync.c: one helper thread that fsyncs descriptors in order (see
 * bgsync.h).
 *
 * The helper only ever touches its struct bgsync, under the lock. Must
 * never report success for an fsync that failed or did not run.
 */
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include "bgsync.h"

/* fsync needs little stack; a default one (8 MB with glibc) would only
 * cost page-table work. Sanitizer builds need some room. */
#define BGSYNC_STACK (256 * 1024)

static int sync_one(int fd, int is_dir)
{
	while (fsync(fd) < 0) {
		if (errno == EINTR)
			continue;
		if (is_dir && errno == EINVAL)
			return 0;
		return errno;
	}
	return 0;
}

static void *helper(void *arg)
{
	struct bgsync *b = arg;

	pthread_mutex_lock(&b->lock);
	for (;;) {
		while (b->done == b->added && !b->ending)
			pthread_cond_wait(&b->cond, &b->lock);
		if (b->done == b->added)
			break; /* ending, and nothing left */
		int fd = b->fd[b->done], is_dir = b->is_dir[b->done];
		pthread_mutex_unlock(&b->lock);
		int err = sync_one(fd, is_dir);
		pthread_mutex_lock(&b->lock);
		if (err && !b->err)
			b->err = err;
		b->done++;
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

void bgsync_begin(struct bgsync *b)
{
	pthread_attr_t attr;

	b->added = b->done = b->ending = b->err = 0;
	b->threaded = 0;
	if (pthread_mutex_init(&b->lock, NULL) != 0)
		return;
	if (pthread_cond_init(&b->cond, NULL) != 0) {
		pthread_mutex_destroy(&b->lock);
		return;
	}
	if (pthread_attr_init(&attr) == 0) {
		size_t stack = BGSYNC_STACK;
#ifdef PTHREAD_STACK_MIN
		if (stack < (size_t)PTHREAD_STACK_MIN)
			stack = (size_t)PTHREAD_STACK_MIN;
#endif
		(void)pthread_attr_setstacksize(&attr, stack);
		b->threaded = pthread_create(&b->thread, &attr, helper, b) == 0;
		pthread_attr_destroy(&attr);
	}
	if (!b->threaded) {
		pthread_cond_destroy(&b->cond);
		pthread_mutex_destroy(&b->lock);
	}
}

void bgsync_add(struct bgsync *b, int fd, int is_dir)
{
	if (!b->threaded) {
		int err =
		    b->added < BGSYNC_MAX ? sync_one(fd, is_dir) : EOVERFLOW;
		if (err && !b->err)
			b->err = err;
		b->added++;
		b->done++;
		return;
	}
	pthread_mutex_lock(&b->lock);
	if (b->added < BGSYNC_MAX) {
		b->fd[b->added] = fd;
		b->is_dir[b->added] = is_dir;
		b->added++;
		pthread_cond_signal(&b->cond);
	} else if (!b->err) {
		b->err = EOVERFLOW;
	}
	pthread_mutex_unlock(&b->lock);
}

int bgsync_end(struct bgsync *b)
{
	if (b->threaded) {
		pthread_mutex_lock(&b->lock);
		b->ending = 1;
		pthread_cond_signal(&b->cond);
		pthread_mutex_unlock(&b->lock);
		int r = pthread_join(b->thread, NULL);
		pthread_cond_destroy(&b->cond);
		pthread_mutex_destroy(&b->lock);
		b->threaded = 0;
		if (r != 0 && !b->err)
			b->err = r; /* outcome unknown: never call it done */
	}
	if (b->err) {
		errno = b->err;
		return -1;
	}
	return 0;
}
