/*
 * qq.h: handing a message to qmail-queue (or to $QMAILQUEUE).
 *
 * The one client of the qmail-queue interface: the message goes down a
 * pipe on the child's fd 0, the envelope down a pipe on its fd 1, and a
 * custom error text, for exit code 82, comes back on its fd 6. Every
 * injecting program (qmail-inject, qmail-smtpd, qmail-qmqpd, qmail-local
 * forwarding, qmail-send bounces) uses this module, so the exit-code
 * mapping exists once. It never interprets the message.
 */
#ifndef QM_QQ_H
#define QM_QQ_H

#include <sys/types.h>

#include "lib/buf.h"
#include "lib/str.h"

struct qq {
	pid_t pid;
	int envfd;	/* our end of the child's fd 1 */
	int errfd;	/* our end of the child's fd 6 */
	int failed;	/* a write failed: the child is gone or broken */
	int spawn_code; /* the exit code to report when no child ran */
	struct buf msg;
	char space[BUF_SIZE];
};

/* Start qmail-queue: $QMAILQUEUE when set (and not setuid), otherwise
 * <home>/bin/qmail-queue. Returns 0, or -1 (errno) when no process
 * could be started (EAGAIN, ENOMEM). A program that cannot be executed
 * still returns 0: the finish then reports QQ_BUG, as the exit code of a
 * child whose exec failed used to. */
int qq_start(struct qq *q);
/* Message bytes, in order. Failures are remembered, not returned: the
 * exit code of the child tells what went wrong. */
void qq_put(struct qq *q, const void *p, size_t n);
void qq_puts(struct qq *q, const char *s);
/* Ends the message, writes the envelope (sender, then each recipient)
 * and waits for the child. Returns its exit code (0 means queued; 82
 * means the text came from the child), and sets reply to an SMTP-style
 * reply: "250 ok ...", "451 ..." or "554 ...". A crash gives 81.
 * Out of memory leaves reply empty: qq_text() covers that case. */
int qq_finish(struct qq *q, const char *sender, const char *const *rcpts,
	      size_t nrcpts, struct str *reply);
/* The reply qq_finish set, or the standard one for code when it could
 * not set any. */
const char *qq_text(const struct str *reply, int code);
/* Same, with the recipients as NUL-terminated records in one string
 * (each "addr\0"), as a parser naturally collects them. */
int qq_finish_list(struct qq *q, const char *sender, const struct str *rcpts,
		   struct str *reply);
/* Give up: kill the child, reap it. */
void qq_abort(struct qq *q);
/* Give up cleanly: end the message and send no envelope, so that
 * qmail-queue refuses the message and removes what it wrote; reap it. */
void qq_cancel(struct qq *q);

#endif
