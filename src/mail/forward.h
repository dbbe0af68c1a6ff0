/*
 * forward.h: forwarding the message on fd 0 through qmail-queue.
 *
 * For qmail-local (the "&address" lines of .qmail) and the forward and
 * condredirect helpers: a line such as $DTLINE, then fd 0 from its
 * current offset to its end, queued as a new message from a given
 * sender to given recipients. It never reports success for a message
 * that qmail-queue did not accept, and never changes the message.
 *
 * The *_or_die functions are for the helpers alone: instead of returning
 * an error they end the process with their exit codes and a log line.
 */
#ifndef QM_FORWARD_H
#define QM_FORWARD_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/str.h"

enum forward_stage {
	FORWARD_START, /* qmail-queue could not be started (errno) */
	FORWARD_READ,  /* fd 0 could not be read (errno) */
	FORWARD_QUEUE, /* qmail-queue did not accept it: see reply */
};

struct forward_result {
	pid_t qp;		  /* qmail-queue's pid, for "qp" lines */
	enum forward_stage stage; /* where it failed */
	int code;		  /* qmail-queue's exit code, for qq_text */
	struct str reply;	  /* qmail-queue's SMTP-style reply */
};

#define FORWARD_RESULT_INIT                                                    \
	{                                                                      \
		-1, FORWARD_START, 0, STR_INIT                                 \
	}

/* Queues `line` and then fd 0, with envelope sender `sender` and the
 * recipients in rcpts (each "addr\0"). SIGPIPE must be ignored. Returns
 * 0 when queued; otherwise -1 and res->stage says why: errno for
 * FORWARD_START and FORWARD_READ, res->code and res->reply ("451 ..."
 * or "554 ...", or empty when out of memory: use qq_text) for
 * FORWARD_QUEUE. The caller frees res->reply. */
int forward_message(const char *line, const char *sender,
		    const struct str *rcpts, struct forward_result *res);

/* $NEWSENDER and $DTLINE, the sender and line a helper forwards with.
 * Exits 100 with "NAME not set" when one of them is missing. */
void forward_env_or_die(const char **sender, const char **dtline);
/* forward_message to the n addresses, with SIGPIPE ignored from now on.
 * Returns qmail-queue's pid. When the message is not queued, exits 100
 * after a permanent refusal (a 5xx reply), else 111, with a log line. */
pid_t forward_or_die(const char *line, const char *sender,
		     const char *const *addrs, size_t n);

#endif
