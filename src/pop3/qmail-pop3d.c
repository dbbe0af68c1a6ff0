/*
 * qmail-pop3d: the TRANSACTION and UPDATE states of POP3 (RFC 1939) over
 * one Maildir, after qmail-authup and checkpassword have logged the user
 * in (qmail-pop3d(8)).
 *
 * Its first line answers the client's PASS. It must never run as root,
 * never delete anything unless the client sends QUIT, never load a
 * message into memory, and never exit 1, 2 or 111 once it has answered
 * PASS: qmail-authup would take those for a failed login.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/ctl.h"
#include "lib/env.h"
#include "lib/fsync_dir.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"
#include "pop3/pop3box.h"
#include "pop3/pop3cmd.h"
#include "pop3/pop3send.h"

/* A command line, CR LF included (RFC 2449 allows 255). */
#define LINE_MAX_POP3 512
/* Protocol errors (unknown command, bad syntax, long line) before the
 * session is dropped. */
#define ERRORS_MAX 20
#define TIMEOUT_DEFAULT 1200

enum pop3d_exit {
	EXIT_QUIT = 0,	  /* QUIT, every deletion done */
	EXIT_ROOT = 1,	  /* refused to run as root, nothing sent */
	EXIT_USAGE = 2,	  /* no maildir argument, nothing sent */
	EXIT_MAILDIR = 3, /* the maildir could not be read: -ERR sent */
	EXIT_DROPPED = 4, /* the session ended without QUIT: nothing deleted */
	EXIT_UPDATE = 5,  /* QUIT, but some deletions failed */
};

static char inspace[BUF_SIZE], outspace[BUF_SIZE], msgspace[BUF_SIZE];
static struct buf in, out;
static struct pop3_box box = POP3_BOX_INIT;
static int curfd = -1;
static struct str curpath = STR_INIT;
/* LAST (RFC 1460): the highest message number accessed, and its value at
 * the start of the session, which RSET restores. */
static unsigned long last, last_at_start;
static unsigned errors;

/* --- output --- */

static _Noreturn void drop(const char *why)
{
	if (why)
		log_warn_sys("%s", why);
	_exit(EXIT_DROPPED);
}

static _Noreturn void nomem(void)
{
	errno = ENOMEM;
	drop("out of memory");
}

static void put(const char *s)
{
	if (buf_puts(&out, s) < 0)
		drop("unable to write to the client");
}

static void putnum(unsigned long long n)
{
	if (buf_putnum(&out, n) < 0)
		drop("unable to write to the client");
}

static void flush(void)
{
	if (buf_flush(&out) < 0)
		drop("unable to write to the client");
}

static void reply_num(const char *status, unsigned long long n,
		      const char *text)
{
	put(status);
	putnum(n);
	put(text);
}

/* --- the maildrop --- */

/* Message n, or NULL after the -ERR reply. */
static struct pop3_msg *lookup(unsigned long n)
{
	if (n == 0 || n > box.count) {
		put("-ERR no such message\r\n");
		return NULL;
	}
	struct pop3_msg *m = &box.msg[n - 1];
	if (m->deleted) {
		reply_num("-ERR message ", n, " already deleted\r\n");
		return NULL;
	}
	return m;
}

static void cmd_stat(void)
{
	unsigned long long count = 0, octets = 0;

	for (size_t i = 0; i < box.count; i++) {
		if (box.msg[i].deleted)
			continue;
		count++;
		octets += box.msg[i].size;
	}
	reply_num("+OK ", count, " ");
	putnum(octets);
	put("\r\n");
}

static void put_uidl(const struct pop3_msg *m)
{
	static struct str uid = STR_INIT;

	if (pop3_uidl(m->name, &uid) < 0)
		nomem();
	if (buf_put(&out, uid.s, uid.len) < 0)
		drop("unable to write to the client");
}

/* One scan-listing or unique-id line: "n size" or "n uid". */
static void put_entry(size_t n, int uidl)
{
	putnum(n);
	put(" ");
	if (uidl)
		put_uidl(&box.msg[n - 1]);
	else
		putnum(box.msg[n - 1].size);
	put("\r\n");
}

static void cmd_list(const struct pop3_cmd *c, int uidl)
{
	if (c->nargs == 1) {
		if (!lookup(c->arg[0]))
			return;
		put("+OK ");
		put_entry(c->arg[0], uidl);
		return;
	}
	put("+OK\r\n");
	for (size_t i = 0; i < box.count; i++)
		if (!box.msg[i].deleted)
			put_entry(i + 1, uidl);
	put(".\r\n");
}

/* Send message n (RETR, or TOP with body_lines); 1 when it was sent. */
static int send_message(unsigned long n, unsigned long long body_lines)
{
	struct buf msg;
	struct pop3_msg *m = lookup(n);

	if (!m)
		return 0;
	int fd = pop3_open_msg(curfd, m);
	if (fd < 0) {
		if (errno == ENOENT) {
			reply_num("-ERR message ", n, " is gone\r\n");
			return 0;
		}
		log_warn_sys("unable to open %s/%s", curpath.s, m->name);
		reply_num("-ERR unable to read message ", n, "\r\n");
		return 0;
	}
	put("+OK\r\n");
	buf_init(&msg, fd, msgspace, sizeof msgspace, 0);
	switch (pop3_send_message(&msg, &out, body_lines)) {
	case POP3_SEND_OK:
		break;
	case POP3_SEND_READ:
		/* Half a message is out: only a broken session says so. */
		log_warn_sys("unable to read %s/%s", curpath.s, m->name);
		drop(NULL);
	case POP3_SEND_WRITE:
		drop("unable to write to the client");
	}
	close(fd);
	return 1;
}

static void touch_last(unsigned long n)
{
	if (n > last)
		last = n;
}

static void cmd_retr(const struct pop3_cmd *c)
{
	if (!send_message(c->arg[0], POP3_ALL_LINES))
		return;
	box.msg[c->arg[0] - 1].retrieved = 1;
	touch_last(c->arg[0]);
}

static void cmd_top(const struct pop3_cmd *c)
{
	send_message(c->arg[0], c->arg[1]);
}

static void cmd_dele(const struct pop3_cmd *c)
{
	struct pop3_msg *m = lookup(c->arg[0]);

	if (!m)
		return;
	m->deleted = 1;
	touch_last(c->arg[0]);
	reply_num("+OK message ", c->arg[0], " deleted\r\n");
}

static void cmd_rset(void)
{
	for (size_t i = 0; i < box.count; i++)
		box.msg[i].deleted = 0;
	last = last_at_start;
	put("+OK\r\n");
}

static void cmd_capa(void)
{
	put("+OK capability list follows\r\n"
	    "TOP\r\n"
	    "UIDL\r\n"
	    "PIPELINING\r\n"
	    ".\r\n");
}

/* --- UPDATE --- */

/* Unlink m's file, wherever a rename took it. 0 also when it is already
 * gone; -1 (logged) when it is still there. */
static int remove_message(struct pop3_msg *m)
{
	if (unlinkat(curfd, m->name, 0) == 0)
		return 0;
	if (errno == ENOENT) {
		int found = pop3_relocate(curfd, m);
		if (found == 0)
			return 0;
		if (found > 0 &&
		    (unlinkat(curfd, m->name, 0) == 0 || errno == ENOENT))
			return 0;
	}
	log_warn_sys("unable to delete %s/%s", curpath.s, m->name);
	return -1;
}

/* Rename m's file to carry the S flag: 0 (also when it already has it),
 * or -1 (errno). */
static int rename_seen(const struct pop3_msg *m)
{
	static struct str seen = STR_INIT;
	int r = pop3_add_flag(m->name, 'S', &seen);

	if (r <= 0)
		return r;
	return renameat(curfd, m->name, curfd, seen.s);
}

/* Give a retrieved message the S flag; a failure only costs the flag. */
static void mark_seen(struct pop3_msg *m)
{
	if (rename_seen(m) == 0)
		return;
	if (errno == ENOENT) {
		int found = pop3_relocate(curfd, m);
		if (found == 0)
			return;
		if (found > 0 && (rename_seen(m) == 0 || errno == ENOENT))
			return;
	}
	log_warn_sys("unable to mark %s/%s as seen", curpath.s, m->name);
}

static _Noreturn void cmd_quit(void)
{
	int failed = 0, changed = 0;

	for (size_t i = 0; i < box.count; i++) {
		struct pop3_msg *m = &box.msg[i];
		if (m->deleted) {
			failed |= remove_message(m) < 0;
			changed = 1;
		} else if (m->retrieved && !pop3_has_flag(m->name, 'S')) {
			mark_seen(m);
			changed = 1;
		}
	}
	if (changed && fsync_dir(curpath.s) < 0)
		log_warn_sys("unable to sync %s", curpath.s);
	put(failed ? "-ERR some deleted messages not removed\r\n" : "+OK\r\n");
	flush();
	_exit(failed ? EXIT_UPDATE : EXIT_QUIT);
}

/* --- the command loop --- */

static void protocol_error(const char *reply)
{
	if (++errors >= ERRORS_MAX) {
		put("-ERR too many errors\r\n");
		flush();
		log_warn("too many errors, session dropped");
		_exit(EXIT_DROPPED);
	}
	put(reply);
}

static void dispatch(const struct pop3_cmd *c)
{
	switch (c->verb) {
	case POP3_STAT:
		cmd_stat();
		break;
	case POP3_LIST:
		cmd_list(c, 0);
		break;
	case POP3_UIDL:
		cmd_list(c, 1);
		break;
	case POP3_RETR:
		cmd_retr(c);
		break;
	case POP3_TOP:
		cmd_top(c);
		break;
	case POP3_DELE:
		cmd_dele(c);
		break;
	case POP3_RSET:
		cmd_rset();
		break;
	case POP3_NOOP:
		put("+OK\r\n");
		break;
	case POP3_LAST:
		reply_num("+OK ", last, "\r\n");
		break;
	case POP3_QUIT:
		cmd_quit();
	case POP3_CAPA:
		cmd_capa();
		break;
	}
}

/* Read one command line into line; 0 when it was too long (and has been
 * skipped). Ends the session at EOF, on a timeout or an error. */
static int read_command(struct str *line)
{
	/* Replies to pipelined commands go out together (RFC 2449). */
	if (buf_avail(&in) == 0)
		flush();
	str_clear(line);
	int r = buf_getline(&in, line, '\n', LINE_MAX_POP3);
	if (r > 0)
		return 1;
	if (r < 0 && errno == EMSGSIZE) {
		r = buf_skipline(&in, '\n');
		if (r > 0)
			return 0;
	}
	if (r == 0)
		drop(NULL); /* the client went away: RFC 1939 deletes nothing */
	if (errno == ETIMEDOUT) {
		log_warn("timeout, session dropped");
		drop(NULL);
	}
	drop("unable to read from the client");
}

static _Noreturn void serve(void)
{
	struct str line = STR_INIT;
	struct pop3_cmd c;

	for (;;) {
		if (!read_command(&line)) {
			protocol_error("-ERR line too long\r\n");
			continue;
		}
		switch (pop3_parse(line.s, line.len, &c)) {
		case POP3_PARSE_OK:
			dispatch(&c);
			break;
		case POP3_PARSE_EMPTY:
		case POP3_PARSE_UNKNOWN:
			protocol_error("-ERR unknown command\r\n");
			break;
		case POP3_PARSE_SYNTAX:
			protocol_error("-ERR syntax error\r\n");
			break;
		}
	}
}

/* --- start --- */

static unsigned clamp_timeout(unsigned long t)
{
	return t > UINT_MAX ? UINT_MAX : (unsigned)t;
}

/* Seconds per read and write: $TIMEOUT when it is a positive number,
 * else control/timeoutpop3d of the qmail home (qmail-authup's setting),
 * else TIMEOUT_DEFAULT. The current directory is $HOME, so the control
 * file is named by its full path. */
static unsigned session_timeout(void)
{
	struct str path = STR_INIT;
	unsigned long t;
	int r = env_ulong("TIMEOUT", &t);

	if (r > 0 && t > 0)
		return clamp_timeout(t);
	if (r != 0)
		log_warn("ignoring TIMEOUT=%s: not a positive number",
			 env_get("TIMEOUT"));
	if (str_copys(&path, home_dir()) < 0 ||
	    str_appends(&path, "/control/timeoutpop3d") < 0)
		return TIMEOUT_DEFAULT;
	r = ctl_ulong(path.s, &t, TIMEOUT_DEFAULT);
	if (r < 0)
		log_warn_sys("ignoring %s", path.s);
	str_free(&path);
	return r < 0 || t == 0 ? TIMEOUT_DEFAULT : clamp_timeout(t);
}

/* Before the client has been answered, a failure can still say so. */
static _Noreturn void maildir_failed(const char *what, const char *path)
{
	log_warn_sys("%s %s", what, path);
	put("-ERR unable to open the maildir\r\n");
	flush();
	_exit(EXIT_MAILDIR);
}

static int open_subdir(int dirfd, const char *maildir, const char *name)
{
	struct str path = STR_INIT;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	int e = errno;
	if (str_copys(&path, maildir) < 0 || str_appendc(&path, '/') < 0 ||
	    str_appends(&path, name) < 0)
		nomem();
	errno = e;
	maildir_failed("unable to open", path.s);
}

static void open_maildrop(const char *maildir)
{
	size_t moved;

	int dirfd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		maildir_failed("unable to open", maildir);
	int newfd = open_subdir(dirfd, maildir, "new");
	curfd = open_subdir(dirfd, maildir, "cur");
	close(dirfd);
	if (str_copys(&curpath, maildir) < 0 ||
	    str_appends(&curpath, "/cur") < 0)
		nomem();
	if (pop3_move_new(newfd, curfd, &moved) < 0)
		log_warn_sys("unable to move every message from %s/new",
			     maildir);
	close(newfd);
	if (pop3_scan(curfd, POP3_MAX_MESSAGES, &box) < 0)
		maildir_failed("unable to list", curpath.s);
	if (box.left_out)
		log_info("%zu messages beyond the first %d left for later",
			 box.left_out, POP3_MAX_MESSAGES);
	for (size_t i = 0; i < box.count; i++)
		if (box.msg[i].was_seen)
			last_at_start = i + 1;
	last = last_at_start;
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	if (getuid() == 0 || geteuid() == 0)
		log_fatal(EXIT_ROOT, "refusing to run as root");
	if (argc < 2 || !argv[1][0])
		log_fatal(EXIT_USAGE, "usage: qmail-pop3d maildirname");
	/* Past the login now: running out of memory must not read as a
	 * failed password to qmail-authup. */
	log_set_fatal_code(EXIT_DROPPED);
	signal(SIGPIPE, SIG_IGN);
	unsigned timeout = session_timeout();
	buf_init(&in, 0, inspace, sizeof inspace, timeout);
	buf_init(&out, 1, outspace, sizeof outspace, timeout);
	open_maildrop(argv[1]);
	put("+OK\r\n");
	serve();
}
