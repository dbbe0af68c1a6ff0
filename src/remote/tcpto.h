/*
 * tcpto.h: the table of addresses whose SMTP connections time out.
 *
 * qmail-remote skips an address that timed out twice recently, so that
 * one dead host does not cost every message the whole connect timeout.
 *
 * IPv4: queue/lock/tcpto, qmail's own file, read and written compatibly:
 * 64 records of 16 bytes (1024 bytes; a shorter file holds fewer):
 *   0..3   the address, network byte order
 *   4      timeouts counted (0: free slot; at most 10)
 *   5..7   zero
 *   8..11  time of the last counted timeout, seconds since the epoch,
 *          low 32 bits, least significant byte first
 *   12..15 zero
 * IPv6: queue/lock/tcpto6, our own, 64 records of 32 bytes:
 *   0..15  the address, network byte order
 *   16     timeouts counted, as above
 *   17..23 zero
 *   24..31 time of the last counted timeout, 64 bits, least
 *          significant byte first
 * An IPv4-mapped IPv6 address is kept in the IPv4 file.
 *
 * The rules (qmail's): a timeout adds one to the count, unless the last
 * one counted is less than 2 minutes old; a successful connection (or a
 * refused one: the host is alive) sets the count to 0. An address with
 * a count of 2 or more is skipped until its last timeout is older than
 * tcpto_window() seconds. A new address takes a free slot or, when none
 * is left, the one whose time plus 1024 seconds per timeout is oldest.
 * Writers hold an exclusive flock on the file; readers a shared one.
 */
#ifndef QM_REMOTE_TCPTO_H
#define QM_REMOTE_TCPTO_H

#include <stddef.h>
#include <stdint.h>

#include "remote/dns.h"

#define TCPTO_FILE "queue/lock/tcpto"
#define TCPTO6_FILE "queue/lock/tcpto6"
#define TCPTO_SLOTS 64
#define TCPTO_REC4 16
#define TCPTO_REC6 32
#define TCPTO_MAX_COUNT 10
#define TCPTO_RECOUNT 120 /* seconds before another timeout counts */

struct tcpto_table {
	int af;	    /* AF_INET or AF_INET6 */
	size_t len; /* bytes in use, whole records */
	unsigned char buf[TCPTO_SLOTS * TCPTO_REC6];
};

struct tcpto_entry {
	struct dns_ip ip;
	unsigned count;
	uint64_t when;
};

/* --- a table in memory --- */

void tcpto_table_init(struct tcpto_table *t, int af);
size_t tcpto_record_size(int af);
/* Records in the table (at most TCPTO_SLOTS). */
size_t tcpto_slots(const struct tcpto_table *t);
/* Decode slot i. Returns 1 when it counts a timeout, 0 when free. */
int tcpto_entry(const struct tcpto_table *t, size_t i, struct tcpto_entry *e);
/* Seconds from e->when to now; a time in the future is UINT64_MAX. */
uint64_t tcpto_age(const struct tcpto_table *t, const struct tcpto_entry *e,
		   uint64_t now);
/* True when ip must be skipped now. */
int tcpto_table_blocked(const struct tcpto_table *t, const struct dns_ip *ip,
			uint64_t now, uint64_t window);
/* Count a timeout (timed_out) or clear the count (!timed_out). Returns
 * the slot that changed, or -1 when nothing did. */
long tcpto_table_note(struct tcpto_table *t, const struct dns_ip *ip,
		      int timed_out, uint64_t now);

/* qmail's window: between 64 and 95 minutes, varying with the pid so
 * that the processes that skip an address do not all retry at once. */
uint64_t tcpto_window(void);

/* --- the files (cwd = home) --- */

/* Read the table for af under a shared lock; a missing file is an
 * empty table. Returns 0, or -1 with errno. */
int tcpto_read(int af, struct tcpto_table *t);
/* 1 when ip must be skipped, 0 when not, -1 with errno. */
int tcpto_blocked(const struct dns_ip *ip, uint64_t now, uint64_t window);
/* Record the outcome of a connection to ip. Returns 0, or -1. */
int tcpto_note(const struct dns_ip *ip, int timed_out, uint64_t now);
/* Zero the file for af (a missing file is already clear). 0, or -1. */
int tcpto_clear(int af);

#endif
