/*
 * pop3sess.h: one POP3 session after the login: the TRANSACTION and
 * UPDATE states (RFC 1939) over one Maildir, as qmail-pop3d runs it.
 *
 * The session reads commands from one buffer and writes replies to
 * another; the caller chooses the descriptors and the timeouts. It never
 * deletes anything unless the client sends QUIT, never loads a message
 * into memory, and never exits: it returns the status the program is to
 * exit with.
 */
#ifndef QM_POP3SESS_H
#define QM_POP3SESS_H

#include <setjmp.h>

#include "lib/buf.h"
#include "lib/str.h"
#include "pop3/pop3box.h"

/* How a session ended: qmail-pop3d's exit status. */
enum pop3_exit {
	POP3_EXIT_QUIT = 0,    /* QUIT, every deletion done */
	POP3_EXIT_ROOT = 1,    /* refused to run as root, nothing sent */
	POP3_EXIT_USAGE = 2,   /* no maildir argument, nothing sent */
	POP3_EXIT_MAILDIR = 3, /* the maildir could not be read: -ERR sent */
	POP3_EXIT_DROPPED = 4, /* ended without QUIT: nothing deleted */
	POP3_EXIT_UPDATE = 5,  /* QUIT, but some deletions failed */
};

/* A command line, CR LF included (RFC 2449 allows 255). */
#define POP3_LINE_MAX 512
/* Protocol errors (unknown command, bad syntax, long line) before the
 * session is dropped. */
#define POP3_ERRORS_MAX 20

struct pop3_session {
	struct buf *in, *out;
	struct pop3_box box;
	int curfd;	    /* the maildir's cur/, -1 until opened */
	struct str curpath; /* its name, for the log */
	int msgfd;	    /* the message being sent, or -1 */
	char msgspace[BUF_SIZE];
	/* LAST (RFC 1460): the highest message number accessed, and its
	 * value at the start of the session, which RSET restores. */
	unsigned long last, last_at_start;
	unsigned errors;
	struct str line, uid, seen; /* scratch */
	jmp_buf end;		    /* where an ending session returns */
};

/* Start a session reading commands from in and replying on out. */
void pop3_session_init(struct pop3_session *s, struct buf *in, struct buf *out);
/* Move maildir/new into maildir/cur and list cur. Returns 0, or
 * POP3_EXIT_MAILDIR after logging why and telling the client. */
int pop3_session_open(struct pop3_session *s, const char *maildir);
/* Answer the login with +OK, then serve commands until QUIT, the end of
 * the input, an error or too many protocol errors. Returns the exit
 * status. Replies go out before every read that finds nothing
 * buffered, and with the last reply. */
int pop3_session_serve(struct pop3_session *s);
/* Close and free everything the session holds (not the buffers). */
void pop3_session_free(struct pop3_session *s);

#endif
