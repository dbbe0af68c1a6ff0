/*
 * maildir2mbox: move the messages of the Maildir $MAILDIR into the mbox
 * $MAIL, through the temporary copy $MAILTMP (maildir2mbox(1)).
 *
 * The mbox is replaced by rename only after the copy holding the old
 * mbox and every new message is on disk, and messages are removed from
 * the Maildir only after that. It must never delete a message that is
 * not safely in $MAIL, and never leave $MAIL half written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/checked.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/fsync_dir.h"
#include "lib/log.h"
#include "lib/str.h"
#include "mail/mbox.h"

#define LOCK_WAIT 30
/* A Return-Path line longer than this gives MAILER-DAEMON. */
#define FIRST_LINE_MAX 1024

struct message {
	char *path;
	time_t when; /* from the file name: the delivery time */
};

struct inbox {
	struct message *v;
	size_t n, cap;
};

static const char *maildir, *mail, *mailtmp;
static int tmp_created;

static _Noreturn void fail_sys(const char *what, const char *path)
{
	int e = errno;
	if (tmp_created)
		unlink(mailtmp);
	errno = e;
	log_fatal_sys(EXIT_TEMP, "%s %s", what, path);
}

static const char *need_env(const char *name)
{
	const char *v = env_get(name);

	if (!v || !*v)
		log_fatal(EXIT_TEMP, "%s not set", name);
	return v;
}

/* The seconds at the start of a Maildir file name, or -1. */
static time_t name_time(const char *name)
{
	long long t = 0;

	if (*name < '0' || *name > '9')
		return -1;
	for (; *name >= '0' && *name <= '9'; name++) {
		if (t > (LLONG_MAX - 9) / 10)
			return -1;
		t = t * 10 + (*name - '0');
	}
	return (time_t)t;
}

static void add_message(struct inbox *box, const char *sub, const char *name)
{
	struct str path = STR_INIT;

	if (box->n == box->cap) {
		size_t cap, bytes;
		if (size_mul(box->cap ? box->cap : 16, 2, &cap) < 0 ||
		    size_mul(cap, sizeof *box->v, &bytes) < 0)
			log_nomem();
		struct message *v = realloc(box->v, bytes);
		if (!v)
			log_nomem();
		box->v = v;
		box->cap = cap;
	}
	if (str_copys(&path, maildir) < 0 || str_appendc(&path, '/') < 0 ||
	    str_appends(&path, sub) < 0 || str_appendc(&path, '/') < 0 ||
	    str_appends(&path, name) < 0)
		log_nomem();
	box->v[box->n].path = path.s;
	box->v[box->n].when = name_time(name);
	box->n++;
}

static void scan(struct inbox *box, const char *sub)
{
	struct str dir = STR_INIT;
	struct dirent *e;

	if (str_copys(&dir, maildir) < 0 || str_appendc(&dir, '/') < 0 ||
	    str_appends(&dir, sub) < 0)
		log_nomem();
	DIR *d = opendir(dir.s);
	if (!d)
		fail_sys("unable to scan", dir.s);
	while ((errno = 0, e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			add_message(box, sub, e->d_name);
	if (errno)
		fail_sys("unable to scan", dir.s);
	closedir(d);
	str_free(&dir);
}

static int by_time(const void *a, const void *b)
{
	const struct message *x = a, *y = b;

	if (x->when != y->when)
		return x->when < y->when ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* The sender from a leading "Return-Path: <addr>" line, if any. */
static void sender_of(const struct str *line, struct str *sender)
{
	static const char rp[] = "Return-Path: <";
	const size_t rplen = sizeof rp - 1;

	str_clear(sender);
	if (line->len < rplen || memcmp(line->s, rp, rplen) != 0)
		return;
	const char *end = memchr(line->s + rplen, '>', line->len - rplen);
	if (end && str_append(sender, line->s + rplen,
			      (size_t)(end - line->s) - rplen) < 0)
		log_nomem();
	if (memchr(sender->s ? sender->s : "", '\0', sender->len))
		str_clear(sender); /* cannot go into a From line */
}

static void copy_fd(int from, struct buf *out)
{
	char space[BUF_SIZE];
	struct buf in;
	ssize_t r;

	buf_init(&in, from, space, sizeof space, 0);
	while ((r = buf_fill(&in)) != 0) {
		if (r < 0)
			fail_sys("unable to read", mail);
		if (buf_put(out, buf_peek(&in), (size_t)r) < 0)
			fail_sys("unable to write", mailtmp);
		buf_skip(&in, (size_t)r);
	}
}

static void append_message(const struct message *m, struct buf *out)
{
	char space[BUF_SIZE];
	struct buf in;
	struct str first = STR_INIT, sender = STR_INIT, from = STR_INIT;
	struct mbox_quote q;
	struct stat st;
	ssize_t r;

	int fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0)
		fail_sys("unable to read", m->path);
	buf_init(&in, fd, space, sizeof space, 0);
	if (buf_getline(&in, &first, '\n', FIRST_LINE_MAX) < 0 &&
	    errno != EMSGSIZE)
		fail_sys("unable to read", m->path);
	sender_of(&first, &sender);
	if (mbox_fromline(&from, sender.s ? sender.s : "",
			  m->when >= 0 ? m->when : st.st_mtime) < 0)
		log_nomem();
	mbox_quote_init(&q);
	if (buf_put(out, from.s, from.len) < 0 ||
	    mbox_quote_put(&q, out, first.s, first.len) < 0)
		fail_sys("unable to write", mailtmp);
	while ((r = buf_fill(&in)) != 0) {
		if (r < 0)
			fail_sys("unable to read", m->path);
		if (mbox_quote_put(&q, out, buf_peek(&in), (size_t)r) < 0)
			fail_sys("unable to write", mailtmp);
		buf_skip(&in, (size_t)r);
	}
	if (mbox_quote_end(&q, out) < 0)
		fail_sys("unable to write", mailtmp);
	close(fd);
	str_free(&first);
	str_free(&sender);
	str_free(&from);
}

/* Old mbox plus new messages into $MAILTMP, on disk, with the mode of
 * $MAIL. */
static void write_tmp(int mailfd, const struct inbox *box)
{
	char space[BUF_SIZE];
	struct buf out;
	struct stat st;

	if (fstat(mailfd, &st) < 0)
		fail_sys("unable to stat", mail);
	int fd = open(mailtmp,
		      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW |
			  O_NOCTTY,
		      0600);
	if (fd < 0)
		fail_sys("unable to create", mailtmp);
	tmp_created = 1;
	if (fchmod(fd, st.st_mode & 0777) < 0)
		fail_sys("unable to chmod", mailtmp);
	buf_init(&out, fd, space, sizeof space, 0);
	copy_fd(mailfd, &out);
	for (size_t i = 0; i < box->n; i++)
		append_message(&box->v[i], &out);
	if (buf_flush(&out) < 0 || fsync(fd) < 0 || close(fd) < 0)
		fail_sys("unable to write", mailtmp);
}

int main(int argc, char **argv)
{
	struct inbox box = {NULL, 0, 0};

	log_init(argc > 0 ? argv[0] : "maildir2mbox");
	umask(077);
	maildir = need_env("MAILDIR");
	mail = need_env("MAIL");
	mailtmp = need_env("MAILTMP");
	scan(&box, "new");
	scan(&box, "cur");
	if (box.n == 0)
		return 0;
	qsort(box.v, box.n, sizeof *box.v, by_time);

	int mailfd = open(mail, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (mailfd < 0)
		fail_sys("unable to open", mail);
	if (mbox_lock(mailfd, LOCK_WAIT) < 0)
		fail_sys("unable to lock", mail);
	write_tmp(mailfd, &box);
	if (rename(mailtmp, mail) < 0)
		fail_sys("unable to move the new mailbox into place at", mail);
	tmp_created = 0;
	if (fsync_dir_of(mail) < 0)
		fail_sys("unable to sync the directory of", mail);
	for (size_t i = 0; i < box.n; i++)
		if (unlink(box.v[i].path) < 0)
			fail_sys("unable to remove", box.v[i].path);
	close(mailfd); /* releases the lock */
	return 0;
}
