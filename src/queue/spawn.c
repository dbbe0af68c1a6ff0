/*
 * spawn.c: the delivery loop shared by qmail-lspawn and qmail-rspawn.
 *
 * It never blocks on one delivery: children's output is collected with
 * poll(). Output beyond OUTPUT_MAX is read and dropped, so a chatty
 * program cannot grow our memory. Only the command parser touches data
 * from qmail-send, and every field it takes has a length bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/exitcode.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "queue/spawn.h"

#define SLOTS 120	 /* concurrency we offer; fits one byte */
#define OUTPUT_MAX 10000 /* report text we keep from a delivery */
#define FIELD_MAX 2048	 /* message name, sender, recipient */

struct slot {
	pid_t pid;
	int fd; /* child's output, -1 when the slot is free */
	struct str output;
};

static struct slot slots[SLOTS];
static struct buf out;
static char outspace[BUF_SIZE];

void spawn_split(const char *rcpt, struct str *local, struct str *domain)
{
	const char *at = strrchr(rcpt, '@');
	size_t n = at ? (size_t)(at - rcpt) : strlen(rcpt);

	if (str_copy(local, rcpt, n) < 0 ||
	    str_copys(domain, at ? at + 1 : "") < 0)
		log_nomem();
}

static void send_report(int slot, const struct str *report)
{
	if (buf_putc(&out, (char)slot) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write to qmail-send");
	for (size_t i = 0; i < report->len; i++) {
		/* NUL ends a report: never let one through. */
		char c = report->s[i] ? report->s[i] : '_';
		if (buf_putc(&out, c) < 0)
			log_fatal_sys(EXIT_TEMP,
				      "unable to write to qmail-send");
	}
	if (buf_putc(&out, 0) < 0 || buf_flush(&out) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write to qmail-send");
}

static void fail_now(int slot, const char *text)
{
	struct str r = STR_INIT;
	if (str_copys(&r, text) < 0)
		log_nomem();
	send_report(slot, &r);
	str_free(&r);
}

static void start(const struct spawn_ops *ops, int slot, const char *mess,
		  const char *sender, const char *rcpt)
{
	int p[2];
	struct str fn = STR_INIT;

	if (str_copys(&fn, "queue/mess/") < 0 || str_appends(&fn, mess) < 0)
		log_nomem();
	int fd = open(fn.s, O_RDONLY | O_CLOEXEC);
	str_free(&fn);
	if (fd < 0) {
		fail_now(slot, "ZUnable to open message file. (#4.3.0)");
		return;
	}
	if (pipe(p) < 0) {
		close(fd);
		fail_now(slot, "ZUnable to create a pipe. (#4.3.0)");
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(fd);
		close(p[0]);
		close(p[1]);
		fail_now(slot, "ZUnable to fork. (#4.3.0)");
		return;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		close(p[0]);
		if (fd_move(0, fd) < 0 || fd_move(1, p[1]) < 0)
			_exit(EXIT_TEMP);
		ops->deliver(sender, rcpt);
		_exit(EXIT_TEMP);
	}
	close(fd);
	close(p[1]);
	fd_cloexec(p[0]);
	slots[slot].pid = pid;
	slots[slot].fd = p[0];
	str_clear(&slots[slot].output);
}

static void finish(const struct spawn_ops *ops, int slot)
{
	struct slot *s = &slots[slot];
	struct str report = STR_INIT;
	int status;

	close(s->fd);
	s->fd = -1;
	while (waitpid(s->pid, &status, 0) < 0)
		if (errno != EINTR) {
			status = 111 << 8;
			break;
		}
	ops->report(status, &s->output, &report);
	send_report(slot, &report);
	str_free(&report);
}

static void collect(const struct spawn_ops *ops, int slot)
{
	char tmp[4096];
	struct slot *s = &slots[slot];
	ssize_t r = read(s->fd, tmp, sizeof tmp);

	if (r < 0 && errno == EINTR)
		return;
	if (r <= 0) {
		finish(ops, slot);
		return;
	}
	size_t keep =
	    s->output.len < OUTPUT_MAX ? OUTPUT_MAX - s->output.len : 0;
	if (keep > (size_t)r)
		keep = (size_t)r;
	if (keep && str_append(&s->output, tmp, keep) < 0)
		log_nomem();
}

/* One command: slot byte, message name, sender, recipient (NUL-ended). */
static int read_command(struct buf *in, const struct spawn_ops *ops)
{
	struct str field[3] = {STR_INIT, STR_INIT, STR_INIT};
	unsigned char slot;
	ssize_t r = buf_read(in, &slot, 1);

	if (r == 0)
		return 0;
	if (r < 0)
		log_fatal_sys(EXIT_TEMP, "unable to read from qmail-send");
	for (int i = 0; i < 3; i++) {
		int g = buf_getline(in, &field[i], 0, FIELD_MAX);
		if (g <= 0)
			log_fatal(EXIT_TEMP, "bad command from qmail-send");
	}
	if (slot >= SLOTS || slots[slot].fd >= 0)
		log_fatal(EXIT_TEMP, "qmail-send used slot %u twice", slot);
	start(ops, slot, field[0].s, field[1].s, field[2].s);
	for (int i = 0; i < 3; i++)
		str_free(&field[i]);
	return 1;
}

int spawn_main(const struct spawn_ops *ops)
{
	static char inspace[BUF_SIZE];
	struct buf in;
	struct pollfd p[SLOTS + 1];
	int map[SLOTS + 1];
	int input_open = 1;

	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < SLOTS; i++)
		slots[i].fd = -1;
	buf_init(&in, 0, inspace, sizeof inspace, 0);
	buf_init(&out, 1, outspace, sizeof outspace, 0);
	if (buf_putc(&out, (char)SLOTS) < 0 || buf_flush(&out) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write to qmail-send");

	for (;;) {
		int n = 0, busy = 0;
		if (input_open) {
			p[n].fd = 0;
			p[n].events = POLLIN;
			map[n++] = -1;
		}
		for (int i = 0; i < SLOTS; i++)
			if (slots[i].fd >= 0) {
				p[n].fd = slots[i].fd;
				p[n].events = POLLIN;
				map[n++] = i;
				busy++;
			}
		if (!input_open && !busy)
			return 0; /* qmail-send is gone and all are done */
		/* Commands already buffered need no poll. */
		int ready = (input_open && buf_avail(&in) > 0)
				? 0
				: poll(p, (nfds_t)n, -1);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			log_fatal_sys(EXIT_TEMP, "poll failed");
		}
		if (input_open &&
		    (buf_avail(&in) > 0 || (p[0].revents & (POLLIN | POLLHUP))))
			input_open = read_command(&in, ops);
		for (int i = 0; i < n; i++)
			if (map[i] >= 0 && ready > 0 &&
			    (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				collect(ops, map[i]);
	}
}
