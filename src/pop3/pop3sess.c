/*
 * pop3sess.c: the POP3 command loop of qmail-pop3d (see pop3sess.h).
 *
 * A session can end deep inside a command: a write that fails, QUIT,
 * too many errors. Each of those places jumps back to the entry point,
 * which returns the exit status, so that a harness or a test can run
 * many sessions in one process. Nothing may be deleted on any path but
 * QUIT's, and nothing here may exit the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* renameat */
#include <unistd.h>

#include "lib/fsync_dir.h"
#include "lib/log.h"
#include "pop3/pop3cmd.h"
#include "pop3/pop3send.h"
#include "pop3/pop3sess.h"

/* --- ending --- */

static _Noreturn void finish(struct pop3_session *s, int code)
{
	longjmp(s->end, code + 1);
}

static _Noreturn void drop(struct pop3_session *s, const char *why)
{
	if (why)
		log_warn_sys("%s", why);
	finish(s, POP3_EXIT_DROPPED);
}

static _Noreturn void nomem(struct pop3_session *s)
{
	errno = ENOMEM;
	drop(s, "out of memory");
}

/* --- output --- */

static void put(struct pop3_session *s, const char *text)
{
	if (buf_puts(s->out, text) < 0)
		drop(s, "unable to write to the client");
}

static void putnum(struct pop3_session *s, unsigned long long n)
{
	if (buf_putnum(s->out, n) < 0)
		drop(s, "unable to write to the client");
}

static void flush(struct pop3_session *s)
{
	if (buf_flush(s->out) < 0)
		drop(s, "unable to write to the client");
}

static void reply_num(struct pop3_session *s, const char *status,
		      unsigned long long n, const char *text)
{
	put(s, status);
	putnum(s, n);
	put(s, text);
}

/* --- the maildrop --- */

/* Message n, or NULL after the -ERR reply. */
static struct pop3_msg *lookup(struct pop3_session *s, unsigned long n)
{
	if (n == 0 || n > s->box.count) {
		put(s, "-ERR no such message\r\n");
		return NULL;
	}
	struct pop3_msg *m = &s->box.msg[n - 1];
	if (m->deleted) {
		reply_num(s, "-ERR message ", n, " already deleted\r\n");
		return NULL;
	}
	return m;
}

static void cmd_stat(struct pop3_session *s)
{
	unsigned long long count = 0, octets = 0;

	for (size_t i = 0; i < s->box.count; i++) {
		if (s->box.msg[i].deleted)
			continue;
		count++;
		octets += s->box.msg[i].size;
	}
	reply_num(s, "+OK ", count, " ");
	putnum(s, octets);
	put(s, "\r\n");
}

static void put_uidl(struct pop3_session *s, const struct pop3_msg *m)
{
	if (pop3_uidl(m->name, &s->uid) < 0)
		nomem(s);
	if (buf_put(s->out, s->uid.s, s->uid.len) < 0)
		drop(s, "unable to write to the client");
}

/* One scan-listing or unique-id line: "n size" or "n uid". */
static void put_entry(struct pop3_session *s, size_t n, int uidl)
{
	putnum(s, n);
	put(s, " ");
	if (uidl)
		put_uidl(s, &s->box.msg[n - 1]);
	else
		putnum(s, s->box.msg[n - 1].size);
	put(s, "\r\n");
}

static void cmd_list(struct pop3_session *s, const struct pop3_cmd *c, int uidl)
{
	if (c->nargs == 1) {
		if (!lookup(s, c->arg[0]))
			return;
		put(s, "+OK ");
		put_entry(s, c->arg[0], uidl);
		return;
	}
	put(s, "+OK\r\n");
	for (size_t i = 0; i < s->box.count; i++)
		if (!s->box.msg[i].deleted)
			put_entry(s, i + 1, uidl);
	put(s, ".\r\n");
}

/* Send message n (RETR, or TOP with body_lines); 1 when it was sent. */
static int send_message(struct pop3_session *s, unsigned long n,
			unsigned long long body_lines)
{
	struct buf msg;
	struct pop3_msg *m = lookup(s, n);

	if (!m)
		return 0;
	s->msgfd = pop3_open_msg(s->curfd, m);
	if (s->msgfd < 0) {
		if (errno == ENOENT) {
			reply_num(s, "-ERR message ", n, " is gone\r\n");
			return 0;
		}
		log_warn_sys("unable to open %s/%s", s->curpath.s, m->name);
		reply_num(s, "-ERR unable to read message ", n, "\r\n");
		return 0;
	}
	put(s, "+OK\r\n");
	buf_init(&msg, s->msgfd, s->msgspace, sizeof s->msgspace, 0);
	switch (pop3_send_message(&msg, s->out, body_lines)) {
	case POP3_SEND_OK:
		break;
	case POP3_SEND_READ:
		/* Half a message is out: only a broken session says so. */
		log_warn_sys("unable to read %s/%s", s->curpath.s, m->name);
		drop(s, NULL);
	case POP3_SEND_WRITE:
		drop(s, "unable to write to the client");
	}
	close(s->msgfd);
	s->msgfd = -1;
	return 1;
}

static void touch_last(struct pop3_session *s, unsigned long n)
{
	if (n > s->last)
		s->last = n;
}

static void cmd_retr(struct pop3_session *s, const struct pop3_cmd *c)
{
	if (!send_message(s, c->arg[0], POP3_ALL_LINES))
		return;
	s->box.msg[c->arg[0] - 1].retrieved = 1;
	touch_last(s, c->arg[0]);
}

static void cmd_top(struct pop3_session *s, const struct pop3_cmd *c)
{
	send_message(s, c->arg[0], c->arg[1]);
}

static void cmd_dele(struct pop3_session *s, const struct pop3_cmd *c)
{
	struct pop3_msg *m = lookup(s, c->arg[0]);

	if (!m)
		return;
	m->deleted = 1;
	touch_last(s, c->arg[0]);
	reply_num(s, "+OK message ", c->arg[0], " deleted\r\n");
}

static void cmd_rset(struct pop3_session *s)
{
	for (size_t i = 0; i < s->box.count; i++)
		s->box.msg[i].deleted = 0;
	s->last = s->last_at_start;
	put(s, "+OK\r\n");
}

static void cmd_capa(struct pop3_session *s)
{
	put(s, "+OK capability list follows\r\n"
	       "TOP\r\n"
	       "UIDL\r\n"
	       "PIPELINING\r\n"
	       ".\r\n");
}

/* --- UPDATE --- */

/* Unlink m's file, wherever a rename took it. 0 also when it is already
 * gone; -1 (logged) when it is still there. */
static int remove_message(struct pop3_session *s, struct pop3_msg *m)
{
	if (unlinkat(s->curfd, m->name, 0) == 0)
		return 0;
	if (errno == ENOENT) {
		int found = pop3_relocate(s->curfd, m);
		if (found == 0)
			return 0;
		if (found > 0 &&
		    (unlinkat(s->curfd, m->name, 0) == 0 || errno == ENOENT))
			return 0;
	}
	log_warn_sys("unable to delete %s/%s", s->curpath.s, m->name);
	return -1;
}

/* Rename m's file to carry the S flag: 0 (also when it already has it),
 * or -1 (errno). */
static int rename_seen(struct pop3_session *s, const struct pop3_msg *m)
{
	int r = pop3_add_flag(m->name, 'S', &s->seen);

	if (r <= 0)
		return r;
	return renameat(s->curfd, m->name, s->curfd, s->seen.s);
}

/* Give a retrieved message the S flag; a failure only costs the flag. */
static void mark_seen(struct pop3_session *s, struct pop3_msg *m)
{
	if (rename_seen(s, m) == 0)
		return;
	if (errno == ENOENT) {
		int found = pop3_relocate(s->curfd, m);
		if (found == 0)
			return;
		if (found > 0 && (rename_seen(s, m) == 0 || errno == ENOENT))
			return;
	}
	log_warn_sys("unable to mark %s/%s as seen", s->curpath.s, m->name);
}

static _Noreturn void cmd_quit(struct pop3_session *s)
{
	int failed = 0, changed = 0;

	for (size_t i = 0; i < s->box.count; i++) {
		struct pop3_msg *m = &s->box.msg[i];
		if (m->deleted) {
			failed |= remove_message(s, m) < 0;
			changed = 1;
		} else if (m->retrieved && !pop3_has_flag(m->name, 'S')) {
			mark_seen(s, m);
			changed = 1;
		}
	}
	if (changed && fsync_dir(s->curpath.s) < 0)
		log_warn_sys("unable to sync %s", s->curpath.s);
	put(s,
	    failed ? "-ERR some deleted messages not removed\r\n" : "+OK\r\n");
	flush(s);
	finish(s, failed ? POP3_EXIT_UPDATE : POP3_EXIT_QUIT);
}

/* --- the command loop --- */

static void protocol_error(struct pop3_session *s, const char *reply)
{
	if (++s->errors >= POP3_ERRORS_MAX) {
		put(s, "-ERR too many errors\r\n");
		flush(s);
		log_warn("too many errors, session dropped");
		finish(s, POP3_EXIT_DROPPED);
	}
	put(s, reply);
}

static void dispatch(struct pop3_session *s, const struct pop3_cmd *c)
{
	switch (c->verb) {
	case POP3_STAT:
		cmd_stat(s);
		break;
	case POP3_LIST:
		cmd_list(s, c, 0);
		break;
	case POP3_UIDL:
		cmd_list(s, c, 1);
		break;
	case POP3_RETR:
		cmd_retr(s, c);
		break;
	case POP3_TOP:
		cmd_top(s, c);
		break;
	case POP3_DELE:
		cmd_dele(s, c);
		break;
	case POP3_RSET:
		cmd_rset(s);
		break;
	case POP3_NOOP:
		put(s, "+OK\r\n");
		break;
	case POP3_LAST:
		reply_num(s, "+OK ", s->last, "\r\n");
		break;
	case POP3_QUIT:
		cmd_quit(s);
	case POP3_CAPA:
		cmd_capa(s);
		break;
	}
}

/* Read one command line into s->line; 0 when it was too long (and has
 * been skipped). Ends the session at EOF, on a timeout or an error. */
static int read_command(struct pop3_session *s)
{
	/* Replies to pipelined commands go out together (RFC 2449), but
	 * never wait for a line that has not arrived whole. */
	if (!buf_hasline(s->in, '\n'))
		flush(s);
	str_clear(&s->line);
	/* The timeout bounds the whole line, not each read: a client that
	 * trickles a byte just inside every timeout is cut off too. */
	if (buf_setdeadline(s->in, s->in->timeout) < 0)
		drop(s, "unable to read the clock");
	int too_long = 0;
	int r = buf_getline(s->in, &s->line, '\n', POP3_LINE_MAX);
	if (r < 0 && errno == EMSGSIZE) {
		too_long = 1;
		r = buf_skipline(s->in, '\n');
	}
	buf_setdeadline(s->in, 0); /* keeps errno */
	if (r > 0)
		return !too_long;
	if (r == 0)
		drop(s, NULL); /* the client went away: RFC 1939 deletes
				  nothing */
	if (errno == ETIMEDOUT) {
		log_warn("timeout, session dropped");
		drop(s, NULL);
	}
	drop(s, "unable to read from the client");
}

static _Noreturn void serve(struct pop3_session *s)
{
	struct pop3_cmd c;

	put(s, "+OK\r\n");
	for (;;) {
		if (!read_command(s)) {
			protocol_error(s, "-ERR line too long\r\n");
			continue;
		}
		switch (pop3_parse(s->line.s, s->line.len, &c)) {
		case POP3_PARSE_OK:
			dispatch(s, &c);
			break;
		case POP3_PARSE_EMPTY:
		case POP3_PARSE_UNKNOWN:
			protocol_error(s, "-ERR unknown command\r\n");
			break;
		case POP3_PARSE_SYNTAX:
			protocol_error(s, "-ERR syntax error\r\n");
			break;
		}
	}
}

int pop3_session_serve(struct pop3_session *s)
{
	int code = setjmp(s->end);

	if (code)
		return code - 1;
	serve(s);
}

/* --- start --- */

/* Before the client has been answered, a failure can still say so. */
static _Noreturn void maildir_failed(struct pop3_session *s, const char *what,
				     const char *path)
{
	log_warn_sys("%s %s", what, path);
	put(s, "-ERR unable to open the maildir\r\n");
	flush(s);
	finish(s, POP3_EXIT_MAILDIR);
}

static int open_subdir(struct pop3_session *s, int dirfd, const char *maildir,
		       const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	int e = errno;
	close(dirfd);
	if (str_copys(&s->line, maildir) < 0 ||
	    str_appendc(&s->line, '/') < 0 || str_appends(&s->line, name) < 0)
		nomem(s);
	errno = e;
	maildir_failed(s, "unable to open", s->line.s);
}

static void open_maildrop(struct pop3_session *s, const char *maildir)
{
	size_t moved;

	int dirfd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		maildir_failed(s, "unable to open", maildir);
	int newfd = open_subdir(s, dirfd, maildir, "new");
	s->msgfd = newfd; /* closed by pop3_session_free if cur/ fails */
	s->curfd = open_subdir(s, dirfd, maildir, "cur");
	close(dirfd);
	if (str_copys(&s->curpath, maildir) < 0 ||
	    str_appends(&s->curpath, "/cur") < 0)
		nomem(s);
	if (pop3_move_new(newfd, s->curfd, &moved) < 0)
		log_warn_sys("unable to move every message from %s/new",
			     maildir);
	close(newfd);
	s->msgfd = -1;
	if (pop3_scan(s->curfd, POP3_MAX_MESSAGES, &s->box) < 0)
		maildir_failed(s, "unable to list", s->curpath.s);
	if (s->box.left_out)
		log_info("%zu messages beyond the first %d left for later",
			 s->box.left_out, POP3_MAX_MESSAGES);
	for (size_t i = 0; i < s->box.count; i++)
		if (s->box.msg[i].was_seen)
			s->last_at_start = i + 1;
	s->last = s->last_at_start;
}

int pop3_session_open(struct pop3_session *s, const char *maildir)
{
	int code = setjmp(s->end);

	if (code)
		return code - 1;
	open_maildrop(s, maildir);
	return 0;
}

void pop3_session_init(struct pop3_session *s, struct buf *in, struct buf *out)
{
	s->in = in;
	s->out = out;
	s->box = (struct pop3_box)POP3_BOX_INIT;
	s->curfd = -1;
	s->msgfd = -1;
	s->curpath = (struct str)STR_INIT;
	s->last = s->last_at_start = 0;
	s->errors = 0;
	s->line = (struct str)STR_INIT;
	s->uid = (struct str)STR_INIT;
	s->seen = (struct str)STR_INIT;
}

void pop3_session_free(struct pop3_session *s)
{
	if (s->msgfd >= 0)
		close(s->msgfd);
	if (s->curfd >= 0)
		close(s->curfd);
	s->msgfd = s->curfd = -1;
	pop3_box_free(&s->box);
	str_free(&s->curpath);
	str_free(&s->line);
	str_free(&s->uid);
	str_free(&s->seen);
}
