/*
 * sendlog.h: reading qmail-send's log into delivery statistics per
 * recipient domain, for qmail-overview.
 *
 * Lines are fed one at a time, oldest first, each with or without the
 * TAI64N stamp multilog's "t" puts in front. The log is untrusted text:
 * a line that does not parse is counted and skipped, never guessed at,
 * and memory grows only with messages still open in the log, domains and
 * (bounded) failure texts. It never reads the queue and never prints.
 *
 * What counts: a recipient belongs to the statistics when one of its
 * delivery results falls in the window; it is counted once however
 * often it was tried. Delivery numbers start again at 1 when qmail-send
 * restarts, and message ids (inode numbers) come back once a message has
 * ended, so deliveries are matched by number within one run of
 * qmail-send, and messages by id from "new msg" to "end msg".
 */
#ifndef QM_SENDLOG_H
#define QM_SENDLOG_H

#include <stddef.h>
#include <stdint.h>

/* No window: every line counts. */
#define SENDLOG_ALL INT64_MIN
/* Distinct failure texts kept per domain and kind; later ones are
 * counted together as "other". */
#define SENDLOG_REASONS 256
/* Longest failure text kept, in bytes. */
#define SENDLOG_REASON_LEN 200

struct sendlog_reason {
	char *text; /* spaces and line breaks restored, NUL-ended */
	unsigned long count;
};

struct sendlog_reasons {
	struct sendlog_reason *v;
	size_t n, cap;
	unsigned long other; /* results whose text did not fit */
};

struct sendlog_stats {
	char *name; /* the domain, lowercased; "" when there is none */
	unsigned long msgs, rcpts;
	unsigned long delivered, deferrals, failures;
	unsigned long delays;	       /* successes with a known delay */
	uint64_t delay_sum, delay_max; /* milliseconds */
	struct sendlog_reasons failed, deferred;
};

struct sendlog_totals {
	struct sendlog_stats all; /* every domain together */
	unsigned long lines;	  /* lines read, in or out of the window */
	unsigned long unparsed;	  /* lines that were not qmail-send's */
	unsigned long messages;	  /* "new msg" */
	uint64_t bytes;		  /* their sizes, from "info msg" */
	unsigned long bounces;	  /* "bounce msg" */
	unsigned long discarded;  /* double and triple bounces dropped */
	unsigned long warnings, fatals;
	unsigned long restarts;	 /* qmail-send stopped or started over */
	unsigned long unmatched; /* results for no known delivery */
	int stamped;		 /* a line had a stamp */
	int64_t first, last;	 /* stamps in the window, ms since the epoch;
				     both 0 when there is none */
	char last_warning[SENDLOG_REASON_LEN + 1];
};

struct sendlog;

/* A reader counting lines stamped at or after `since` (milliseconds
 * since the epoch), or everything with SENDLOG_ALL. Lines without a
 * stamp always count. NULL when out of memory. */
struct sendlog *sendlog_new(int64_t since);
/* One line, without its newline. Returns 0, or -1 when out of memory
 * (the reader stays usable but may miss this line). */
int sendlog_line(struct sendlog *sl, const char *line, size_t len);
const struct sendlog_totals *sendlog_totals(const struct sendlog *sl);
/* Deliveries started and not finished at the end of what was read. */
size_t sendlog_in_progress(const struct sendlog *sl);
/* The domains with a recipient in the window: most recipients first,
 * then by name. *out is valid until the next call on sl. Returns 0, or
 * -1 when out of memory. */
int sendlog_domains(struct sendlog *sl, const struct sendlog_stats ***out,
		    size_t *n);
/* The most frequent text (ties: the smallest), or NULL when none. */
const struct sendlog_reason *sendlog_top(const struct sendlog_reasons *r);
void sendlog_free(struct sendlog *sl);

/* The multilog stamp "@" + 24 hex digits + " " at the start of line:
 * returns its length (26) and sets *ms, or 0 when there is none or its
 * time is outside 1970..2242. */
size_t sendlog_stamp(const char *line, size_t len, int64_t *ms);

#endif
