/*
 * maildir.h: delivering one message into a Maildir (maildir(5)).
 *
 * The message is written under tmp/, fsynced, linked into new/ under the
 * same name, and new/ is fsynced before success is reported. A reader
 * of new/ therefore only ever sees complete messages, and a message
 * reported delivered survives a crash. Nothing is ever left in new/ on
 * failure; a leftover in tmp/ only after a crash, for the usual 36-hour
 * tmp/ cleanup.
 */
#ifndef QM_MAILDIR_H
#define QM_MAILDIR_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/str.h"

/* Where a failed delivery stopped. */
enum maildir_stage {
	MAILDIR_OK = 0,
	MAILDIR_CREATE, /* creating the file in tmp/ (a missing Maildir) */
	MAILDIR_READ,	/* reading the message */
	MAILDIR_WRITE,	/* writing, fsync or close of the tmp/ file */
	MAILDIR_LINK,	/* linking into new/ */
	MAILDIR_SYNC,	/* fsync of new/ */
};

/* The unique file name "<sec>.M<usec>P<pid>Q<seq>.<host>" (replacing
 * out). In host, '/' becomes "\057", ':' becomes "\072" and any byte
 * that is not printable ASCII becomes '_', as maildir(5) asks; an empty
 * host becomes "localhost". 0 or -1 (errno). */
int maildir_name(struct str *out, time_t sec, long usec, pid_t pid,
		 unsigned long seq, const char *host);

/* Deliver: head (for example Return-Path and Delivered-To lines) and
 * then the rest of msg, into the Maildir dir (with or without a trailing
 * '/'). The message is streamed, never held in memory. On success
 * returns 0 and, when newpath is not NULL, sets it to the path under
 * new/. On failure returns -1 with errno, *stage telling where, and
 * newpath (when given) set to the file involved; the tmp/ file is gone.
 */
int maildir_deliver(const char *dir, const void *head, size_t headlen,
		    struct buf *msg, struct str *newpath,
		    enum maildir_stage *stage);

#endif
