/*
 * maildir.c: reliable delivery of one message into a Maildir.
 *
 * The order tmp/ write, fsync, close, link into new/, unlink, fsync new/
 * is what makes a delivery safe; it must never be shortened. This module
 * must never leave a partial file under new/, never overwrite an
 * existing file (O_EXCL), and never print.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/fsync_dir.h"
#include "mail/maildir.h"

/* Deliveries made by this process: part of the unique name. */
static unsigned long delivery_seq;

/* Enough for any host name (POSIX allows 255 bytes). */
#define HOST_MAX 256

static int append_host(struct str *out, const char *host)
{
	if (!*host)
		return str_appends(out, "localhost");
	for (; *host; host++) {
		unsigned char c = (unsigned char)*host;
		int r;
		if (c == '/')
			r = str_appends(out, "\\057");
		else if (c == ':')
			r = str_appends(out, "\\072");
		else if (c <= 32 || c >= 127)
			r = str_appendc(out, '_');
		else
			r = str_appendc(out, (char)c);
		if (r < 0)
			return -1;
	}
	return 0;
}

int maildir_name(struct str *out, time_t sec, long usec, pid_t pid,
		 unsigned long seq, const char *host)
{
	str_clear(out);
	if (str_appendnum(out, (unsigned long long)sec) < 0 ||
	    str_appends(out, ".M") < 0 ||
	    str_appendnum(out, (unsigned long long)usec) < 0 ||
	    str_appendc(out, 'P') < 0 ||
	    str_appendnum(out, (unsigned long long)pid) < 0 ||
	    str_appendc(out, 'Q') < 0 || str_appendnum(out, seq) < 0 ||
	    str_appendc(out, '.') < 0 || append_host(out, host) < 0)
		return -1;
	return 0;
}

/* dir + "/" + sub + "/" + name, with dir's own trailing slashes dropped
 * ("/" stays "/"). */
static int join(struct str *out, const char *dir, const char *sub,
		const struct str *name)
{
	size_t dlen = strlen(dir);

	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	if (str_copy(out, dir, dlen) < 0)
		return -1;
	if ((dlen == 0 || dir[dlen - 1] != '/') && str_appendc(out, '/') < 0)
		return -1;
	if (str_appends(out, sub) < 0 || str_appendc(out, '/') < 0 ||
	    str_append(out, name->s, name->len) < 0)
		return -1;
	return 0;
}

static void host_name(char host[HOST_MAX])
{
	if (gethostname(host, HOST_MAX) < 0)
		host[0] = '\0';
	host[HOST_MAX - 1] = '\0'; /* truncation need not terminate it */
}

/* Create tmp/<unique> exclusively. A clash can only come from a clock
 * step back with a recycled pid; the sequence number then moves on. */
static int create_tmp(const char *dir, struct str *name, struct str *tmp)
{
	char host[HOST_MAX];

	host_name(host);
	for (int attempt = 0;; attempt++) {
		struct timespec now;
		if (clock_gettime(CLOCK_REALTIME, &now) < 0)
			return -1;
		if (maildir_name(name, now.tv_sec, now.tv_nsec / 1000, getpid(),
				 delivery_seq++, host) < 0 ||
		    join(tmp, dir, "tmp", name) < 0)
			return -1;
		int fd = open(
		    tmp->s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
		    0600);
		if (fd >= 0 || errno != EEXIST || attempt == 2)
			return fd;
	}
}

/* head, then msg to its end, into fd; then fsync and close. The caller
 * closes nothing: fd is always closed here. */
static int write_file(int fd, const void *head, size_t headlen, struct buf *msg,
		      enum maildir_stage *stage)
{
	char space[BUF_SIZE];
	struct buf out;
	ssize_t r;

	buf_init(&out, fd, space, sizeof space, 0);
	*stage = MAILDIR_WRITE;
	if (buf_put(&out, head, headlen) < 0)
		goto fail;
	while ((r = buf_fill(msg)) != 0) {
		if (r < 0) {
			*stage = MAILDIR_READ;
			goto fail;
		}
		if (buf_put(&out, buf_peek(msg), (size_t)r) < 0)
			goto fail;
		buf_skip(msg, (size_t)r);
	}
	if (buf_flush(&out) < 0 || fsync(fd) < 0)
		goto fail;
	/* close can report a late write error (NFS). */
	return close(fd);
fail:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* Returns 0, or -1 with errno and *stage; never leaves tmp behind. */
static int deliver(const char *dir, const void *head, size_t headlen,
		   struct buf *msg, struct str *tmp, struct str *new,
		   enum maildir_stage *stage)
{
	struct str name = STR_INIT;
	int e;

	*stage = MAILDIR_CREATE;
	int fd = create_tmp(dir, &name, tmp);
	if (fd < 0)
		goto fail_name;
	if (write_file(fd, head, headlen, msg, stage) < 0)
		goto fail_tmp;
	*stage = MAILDIR_LINK;
	if (join(new, dir, "new", &name) < 0 || link(tmp->s, new->s) < 0)
		goto fail_tmp;
	/* Delivered once the link exists; a failed unlink only leaves a
	 * copy in tmp/ for the periodic cleanup. */
	unlink(tmp->s);
	*stage = MAILDIR_SYNC;
	if (fsync_dir_of(new->s) < 0)
		goto fail_new;
	str_free(&name);
	*stage = MAILDIR_OK;
	return 0;
fail_new:
	/* Not durable: take it back so that the retry does not duplicate
	 * it. */
	e = errno;
	unlink(new->s);
	errno = e;
	goto fail_name;
fail_tmp:
	e = errno;
	unlink(tmp->s);
	errno = e;
fail_name:
	e = errno;
	str_free(&name);
	errno = e;
	return -1;
}

int maildir_deliver(const char *dir, const void *head, size_t headlen,
		    struct buf *msg, struct str *newpath,
		    enum maildir_stage *stage)
{
	struct str tmp = STR_INIT, new = STR_INIT;
	int r = deliver(dir, head, headlen, msg, &tmp, &new, stage);
	int e = errno;

	if (newpath) {
		const struct str *which =
		    (r == 0 || *stage >= MAILDIR_LINK) ? &new : &tmp;
		if (str_copystr(newpath, which) < 0)
			str_clear(newpath);
	}
	str_free(&tmp);
	str_free(&new);
	errno = e;
	return r;
}
