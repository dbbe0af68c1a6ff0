/*
 * tcpto.c: the connection timeout table (layout and rules in tcpto.h).
 *
 * The table never stops a delivery by being broken: a file that cannot
 * be read is reported to the caller, which then simply tries the
 * address. It must never write outside the one record that changed, so
 * that a qmail-remote of the original qmail sharing the IPv4 file keeps
 * its records.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "remote/tcpto.h"

void tcpto_table_init(struct tcpto_table *t, int af)
{
	memset(t, 0, sizeof *t);
	t->af = af;
}

size_t tcpto_record_size(int af)
{
	return af == AF_INET6 ? TCPTO_REC6 : TCPTO_REC4;
}

static size_t addr_size(int af)
{
	return af == AF_INET6 ? 16 : 4;
}

static size_t count_offset(int af)
{
	return af == AF_INET6 ? 16 : 4;
}

static size_t when_offset(int af)
{
	return af == AF_INET6 ? 24 : 8;
}

static size_t when_size(int af)
{
	return af == AF_INET6 ? 8 : 4;
}

size_t tcpto_slots(const struct tcpto_table *t)
{
	size_t n = t->len / tcpto_record_size(t->af);
	return n > TCPTO_SLOTS ? TCPTO_SLOTS : n;
}

static unsigned char *record(const struct tcpto_table *t, size_t i)
{
	return (unsigned char *)t->buf + i * tcpto_record_size(t->af);
}

int tcpto_entry(const struct tcpto_table *t, size_t i, struct tcpto_entry *e)
{
	const unsigned char *r = record(t, i);
	size_t w = when_offset(t->af);

	memset(e, 0, sizeof *e);
	e->ip.af = t->af;
	memcpy(e->ip.a, r, addr_size(t->af));
	e->count = r[count_offset(t->af)];
	for (size_t k = when_size(t->af); k > 0; k--)
		e->when = e->when << 8 | r[w + k - 1];
	return e->count > 0;
}

static void set_when(const struct tcpto_table *t, unsigned char *r,
		     uint64_t when)
{
	size_t w = when_offset(t->af);
	for (size_t k = 0; k < when_size(t->af); k++, when >>= 8)
		r[w + k] = (unsigned char)(when & 0xff);
}

uint64_t tcpto_age(const struct tcpto_table *t, const struct tcpto_entry *e,
		   uint64_t now)
{
	/* qmail's 32-bit stamp wraps; the difference modulo 2^32 does not
	 * care until an entry is 136 years old. */
	if (t->af == AF_INET)
		return (uint32_t)((uint32_t)now - (uint32_t)e->when);
	return now >= e->when ? now - e->when : UINT64_MAX;
}

/* The slot holding ip (whatever its count), or -1. */
static long find(const struct tcpto_table *t, const struct dns_ip *ip)
{
	size_t n = tcpto_slots(t);

	if (ip->af != t->af)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (memcmp(record(t, i), ip->a, addr_size(t->af)) == 0)
			return (long)i;
	return -1;
}

int tcpto_table_blocked(const struct tcpto_table *t, const struct dns_ip *ip,
			uint64_t now, uint64_t window)
{
	struct tcpto_entry e;
	long i = find(t, ip);

	if (i < 0)
		return 0;
	tcpto_entry(t, (size_t)i, &e);
	return e.count >= 2 && tcpto_age(t, &e, now) < window;
}

/* The slot for a new address: a free one, a new one while the table is
 * short, else the one that matters least. */
static size_t new_slot(struct tcpto_table *t)
{
	size_t n = tcpto_slots(t), best = 0;
	uint64_t best_score = UINT64_MAX;
	struct tcpto_entry e;

	for (size_t i = 0; i < n; i++)
		if (!tcpto_entry(t, i, &e))
			return i;
	if (n < TCPTO_SLOTS)
		return n;
	for (size_t i = 0; i < n; i++) {
		tcpto_entry(t, i, &e);
		uint64_t score = e.when + ((uint64_t)e.count << 10);
		if (score < best_score) {
			best_score = score;
			best = i;
		}
	}
	return best;
}

long tcpto_table_note(struct tcpto_table *t, const struct dns_ip *ip,
		      int timed_out, uint64_t now)
{
	struct tcpto_entry e;
	long i = find(t, ip);
	size_t slot, size = tcpto_record_size(t->af);
	unsigned char *r;

	if (ip->af != t->af)
		return -1;
	if (i >= 0) {
		r = record(t, (size_t)i);
		tcpto_entry(t, (size_t)i, &e);
		if (!timed_out) {
			if (e.count == 0)
				return -1;
			r[count_offset(t->af)] = 0;
			return i;
		}
		if (e.count > 0 && tcpto_age(t, &e, now) < TCPTO_RECOUNT)
			return -1;
		r[count_offset(t->af)] =
		    (unsigned char)(e.count >= TCPTO_MAX_COUNT ? TCPTO_MAX_COUNT
							       : e.count + 1);
		set_when(t, r, now);
		return i;
	}
	if (!timed_out)
		return -1;
	slot = new_slot(t);
	r = record(t, slot);
	memset(r, 0, size);
	memcpy(r, ip->a, addr_size(t->af));
	r[count_offset(t->af)] = 1;
	set_when(t, r, now);
	if ((slot + 1) * size > t->len)
		t->len = (slot + 1) * size;
	return (long)slot;
}

uint64_t tcpto_window(void)
{
	return (uint64_t)(60 + (getpid() & 31)) << 6;
}

/* --- the files --- */

static const char *path_for(int af)
{
	return af == AF_INET6 ? TCPTO6_FILE : TCPTO_FILE;
}

static int lock(int fd, int how)
{
	while (flock(fd, how) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* Read the records of an open, locked file into t. */
static int load(int fd, struct tcpto_table *t)
{
	size_t size = tcpto_record_size(t->af) * TCPTO_SLOTS, got = 0;

	while (got < size) {
		ssize_t r = pread(fd, t->buf + got, size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	t->len = got - got % tcpto_record_size(t->af);
	return 0;
}

static int close_keep_errno(int fd, int res)
{
	int saved = errno;
	close(fd);
	errno = saved;
	return res;
}

int tcpto_read(int af, struct tcpto_table *t)
{
	int fd;

	tcpto_table_init(t, af);
	fd = open(path_for(af), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (lock(fd, LOCK_SH) < 0 || load(fd, t) < 0)
		return close_keep_errno(fd, -1);
	close(fd);
	return 0;
}

int tcpto_blocked(const struct dns_ip *ip, uint64_t now, uint64_t window)
{
	struct tcpto_table t;
	struct dns_ip norm = *ip;

	dns_ip_normalize(&norm);
	if (tcpto_read(norm.af, &t) < 0)
		return -1;
	return tcpto_table_blocked(&t, &norm, now, window);
}

static int write_all_at(int fd, const unsigned char *p, size_t n, off_t at)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		at += w;
	}
	return 0;
}

int tcpto_note(const struct dns_ip *ip, int timed_out, uint64_t now)
{
	struct tcpto_table t;
	struct dns_ip norm = *ip;
	int flags = O_RDWR | O_CLOEXEC | (timed_out ? O_CREAT : 0);
	size_t size;
	long i;
	int fd;

	dns_ip_normalize(&norm);
	tcpto_table_init(&t, norm.af);
	fd = open(path_for(norm.af), flags, 0644);
	if (fd < 0)
		return !timed_out && errno == ENOENT ? 0 : -1;
	if (lock(fd, LOCK_EX) < 0 || load(fd, &t) < 0)
		return close_keep_errno(fd, -1);
	i = tcpto_table_note(&t, &norm, timed_out, now);
	size = tcpto_record_size(norm.af);
	if (i >= 0 && write_all_at(fd, record(&t, (size_t)i), size,
				   (off_t)((size_t)i * size)) < 0)
		return close_keep_errno(fd, -1);
	if (close(fd) < 0)
		return -1;
	return 0;
}

int tcpto_clear(int af)
{
	static const unsigned char zeros[TCPTO_SLOTS * TCPTO_REC6];
	size_t size = tcpto_record_size(af) * TCPTO_SLOTS;
	int fd = open(path_for(af), O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (lock(fd, LOCK_EX) < 0 || write_all_at(fd, zeros, size, 0) < 0)
		return close_keep_errno(fd, -1);
	if (close(fd) < 0)
		return -1;
	return 0;
}
