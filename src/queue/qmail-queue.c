/*
 * qmail-queue: put one message into the queue.
 *
 * The message comes on fd 0, the envelope on fd 1 (qmail-queue(8)). The
 * message counts as queued at exactly one moment: when intd/<id> is
 * linked to todo/<id>. Everything it points to is fsynced before that
 * link, and the link's directory after it, so a crash at any instant
 * leaves the message either fully queued or absent. It must never exit 0
 * before that, and never leave a todo entry for a half-written message.
 * In production it is setuid qmailq, so it trusts nothing from its
 * caller's environment (see lib/home.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auto.h"
#include "lib/buf.h"
#include "lib/date822.h"
#include "lib/exitcode.h"
#include "lib/fsync_dir.h"
#include "lib/home.h"
#include "lib/str.h"

#define ADDR_MAX 1003  /* an address this long or longer is refused */
#define LIFETIME 86400 /* seconds before a stuck injection gives up */

static char pidfn[64], messfn[64], intdfn[64], todofn[64], messdir[32];
static int made_mess, made_intd;

static void cleanup(void)
{
	if (made_intd)
		unlink(intdfn);
	if (made_mess)
		unlink(messfn);
}

static _Noreturn void die(int code)
{
	cleanup();
	_exit(code);
}

static void on_alarm(int sig)
{
	(void)sig;
	die(QQ_TIMEOUT);
}

static void names(unsigned long id)
{
	unsigned long part = id % AUTO_SPLIT;
	snprintf(messdir, sizeof messdir, "mess/%lu", part);
	snprintf(messfn, sizeof messfn, "mess/%lu/%lu", part, id);
	snprintf(intdfn, sizeof intdfn, "intd/%lu", id);
	snprintf(todofn, sizeof todofn, "todo/%lu", id);
}

/* pid/PID.TIME.SEQ, made exclusively; its inode becomes the id. */
static int open_pidfile(void)
{
	for (unsigned seq = 0; seq < 5; seq++) {
		snprintf(pidfn, sizeof pidfn, "pid/%ld.%ld.%u", (long)getpid(),
			 (long)time(NULL), seq);
		int fd =
		    open(pidfn, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			break;
	}
	die(QQ_QUEUE_PID);
}

static void put_received(struct buf *out)
{
	char date[DATE822_LEN];
	date822_fmt(date, time(NULL));
	if (buf_puts(out, "Received: (qmail ") < 0 ||
	    buf_putnum(out, (unsigned long long)getpid()) < 0 ||
	    buf_puts(out, " invoked by uid ") < 0 ||
	    buf_putnum(out, (unsigned long long)getuid()) < 0 ||
	    buf_puts(out, "); ") < 0 || buf_puts(out, date) < 0 ||
	    buf_putc(out, '\n') < 0)
		die(QQ_WRITE);
}

static void copy_message(int messfd)
{
	static char inspace[BUF_SIZE * 8], outspace[BUF_SIZE * 8];
	struct buf in, out;
	ssize_t n;

	buf_init(&in, 0, inspace, sizeof inspace, 0);
	buf_init(&out, messfd, outspace, sizeof outspace, 0);
	put_received(&out);
	while ((n = buf_fill(&in)) > 0) {
		if (buf_put(&out, buf_peek(&in), (size_t)n) < 0)
			die(QQ_WRITE);
		buf_skip(&in, (size_t)n);
	}
	if (n < 0)
		die(QQ_READ);
	if (buf_flush(&out) < 0 || fsync(messfd) < 0)
		die(QQ_WRITE);
}

/* One envelope record: a type byte (or NUL for the end), an address, a
 * NUL. Returns the type, or 0 at the terminating NUL. */
static int read_record(struct buf *in, struct str *addr)
{
	char type;
	ssize_t r = buf_read(in, &type, 1);

	if (r < 0)
		die(QQ_READ);
	if (r == 0)
		die(QQ_ENVELOPE); /* the envelope stops without its end */
	if (type == 0)
		return 0;
	str_clear(addr);
	switch (buf_getline(in, addr, 0, ADDR_MAX)) {
	case 1:
		return type;
	case 0:
		die(QQ_ENVELOPE);
	default:
		die(errno == EMSGSIZE ? QQ_ADDR_TOO_LONG : QQ_READ);
	}
}

static void copy_envelope(int intdfd)
{
	static char inspace[BUF_SIZE], outspace[BUF_SIZE];
	struct buf in, out;
	struct str addr = STR_INIT;
	int type, rcpts = 0;

	buf_init(&in, 1, inspace, sizeof inspace, 0);
	buf_init(&out, intdfd, outspace, sizeof outspace, 0);
	if (buf_putc(&out, 'u') < 0 ||
	    buf_putnum(&out, (unsigned long long)getuid()) < 0 ||
	    buf_put(&out, "\0p", 2) < 0 ||
	    buf_putnum(&out, (unsigned long long)getpid()) < 0 ||
	    buf_putc(&out, 0) < 0)
		die(QQ_WRITE);
	if (read_record(&in, &addr) != 'F')
		die(QQ_ENVELOPE);
	if (buf_putc(&out, 'F') < 0 || buf_put(&out, addr.s, addr.len) < 0)
		die(QQ_WRITE);
	while ((type = read_record(&in, &addr)) != 0) {
		if (type != 'T')
			die(QQ_ENVELOPE);
		if (buf_putc(&out, 'T') < 0 ||
		    buf_put(&out, addr.s, addr.len) < 0)
			die(QQ_WRITE);
		rcpts++;
	}
	if (rcpts == 0)
		die(QQ_ENVELOPE);
	if (buf_flush(&out) < 0 || fsync(intdfd) < 0)
		die(QQ_WRITE);
	str_free(&addr);
}

static void pull_trigger(void)
{
	int fd = open("lock/trigger", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t w = write(fd, "", 1);
		(void)w;
		close(fd);
	}
}

int main(void)
{
	struct stat st;
	int messfd, intdfd;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm(LIFETIME);
	umask(033);
	if (chdir(home_dir()) < 0)
		die(QQ_HOME);
	if (chdir("queue") < 0)
		die(QQ_QUEUE_DIR);

	messfd = open_pidfile();
	if (fstat(messfd, &st) < 0)
		die(QQ_QUEUE_PID);
	names((unsigned long)st.st_ino);
	if (link(pidfn, messfn) < 0)
		die(QQ_QUEUE_MESS);
	made_mess = 1;
	if (unlink(pidfn) < 0)
		die(QQ_QUEUE_PID);

	copy_message(messfd);
	if (close(messfd) < 0)
		die(QQ_WRITE);

	intdfd = open(intdfn, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (intdfd < 0)
		die(QQ_QUEUE_INTD);
	made_intd = 1;
	copy_envelope(intdfd);
	if (close(intdfd) < 0)
		die(QQ_WRITE);

	/* The mess entry must be on disk before todo can point at it. */
	if (fsync_dir(messdir) < 0)
		die(QQ_WRITE);
	if (link(intdfn, todofn) < 0)
		die(QQ_QUEUE_TODO);
	/* From here on the message is queued; failing now would make the
	 * caller retry a message that may already be delivered. */
	made_intd = made_mess = 0;
	if (fsync_dir("todo") < 0)
		die(QQ_WRITE); /* not sure it is on disk: say so */
	pull_trigger();
	return 0;
}
