/*
 * mbox.h: appending messages to an mbox file (mbox(5)).
 *
 * Each message starts with a "From sender date" line; message lines
 * matching ^>*From  get one more '>' (so that they can be unquoted), a
 * missing final newline is added, and an empty line ends the message.
 * The file is locked with flock(2). A failed append is cut back to the
 * old size, so the mailbox never keeps half a message (except after a
 * crash, which no append-only format can prevent).
 */
#ifndef QM_MBOX_H
#define QM_MBOX_H

#include <stddef.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/str.h"

/* Where a failed delivery stopped. */
enum mbox_stage {
	MBOX_OK = 0,
	MBOX_OPEN,  /* opening (or creating) the file */
	MBOX_LOCK,  /* locking; errno ETIMEDOUT when held too long */
	MBOX_READ,  /* reading the message */
	MBOX_WRITE, /* writing or fsync */
};

/* The "From " line ending in '\n' (replacing out): the sender, or
 * MAILER-DAEMON when it is empty, with spaces, tabs, CR and LF turned
 * into '-', then an asctime(3)-style date in UTC, for example
 * "From joe@example.com Thu Jan  1 00:00:00 1970\n". 0 or -1 (errno). */
int mbox_fromline(struct str *out, const char *sender, time_t t);

/* flock(LOCK_EX) on fd, trying again until timeout seconds have passed
 * (0: a single try). Returns 1 when locked, 0 when the file system
 * cannot lock at all (ENOLCK, EOPNOTSUPP, EINVAL: the caller goes on
 * unlocked, as qmail does), -1 on error (errno, ETIMEDOUT). */
int mbox_lock(int fd, unsigned timeout);

/* Streaming >From quoting: feed any pieces of a message in order. */
struct mbox_quote {
	int state;	/* at a line start, matching "From ", mid-line */
	size_t matched; /* bytes of "From " held back */
	int any;	/* some byte was written */
	char last;	/* the last byte written */
};

void mbox_quote_init(struct mbox_quote *q);
/* 0 or -1 (errno from buf_put). */
int mbox_quote_put(struct mbox_quote *q, struct buf *out, const char *p,
		   size_t n);
/* Ends the message: held bytes, a missing newline, the empty line. */
int mbox_quote_end(struct mbox_quote *q, struct buf *out);

/* Quote all of in into out and end the message. 0, or -1 with errno
 * and *stage MBOX_READ or MBOX_WRITE. Does not flush out. */
int mbox_copy(struct buf *out, struct buf *in, enum mbox_stage *stage);

/* Append to the mbox at path (created with mode 0600 when missing):
 * head, which must start with the From line and end in '\n', then the
 * quoted message read from msg, then the empty line; fsync. The lock
 * is awaited for lock_timeout seconds. Returns 0, or -1 with errno and
 * *stage; after a failure while locked the file is back at its old
 * size. */
int mbox_deliver(const char *path, const void *head, size_t headlen,
		 struct buf *msg, unsigned lock_timeout,
		 enum mbox_stage *stage);

#endif
