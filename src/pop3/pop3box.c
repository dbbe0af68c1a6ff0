/*
 * pop3box.c: moving, listing and finding Maildir messages for
 * qmail-pop3d (see pop3box.h).
 *
 * Another process may deliver, rename or delete at any moment, so every
 * missing file is an expected event and every operation goes through
 * directory descriptors. This must never hold a message in memory, never
 * keep more than the limit of names, and never print.
 */
#include "pop3box.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/checked.h"

/* --- names --- */

unsigned long long pop3_name_time(const char *name)
{
	unsigned long long t = 0;

	for (; *name >= '0' && *name <= '9'; name++) {
		unsigned d = (unsigned)(*name - '0');
		if (t > (ULLONG_MAX - d) / 10)
			return ULLONG_MAX;
		t = t * 10 + d;
	}
	return t;
}

int pop3_msg_order(const struct pop3_msg *a, const struct pop3_msg *b)
{
	if (a->when != b->when)
		return a->when < b->when ? -1 : 1;
	return strcmp(a->name, b->name);
}

size_t pop3_uniq_len(const char *name)
{
	const char *colon = strchr(name, ':');

	return colon ? (size_t)(colon - name) : strlen(name);
}

static int uidl_usable(const char *p, size_t n)
{
	if (n == 0 || n > POP3_UIDL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < '!' || p[i] > '~')
			return 0;
	return 1;
}

static uint64_t fnv1a64(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3u;
	}
	return h;
}

int pop3_uidl(const char *name, struct str *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = pop3_uniq_len(name);
	char digest[17];

	if (uidl_usable(name, n))
		return str_copy(out, name, n);
	uint64_t h = fnv1a64(name, n);
	digest[0] = '~';
	for (int i = 16; i >= 1; i--) {
		digest[i] = hex[h & 15];
		h >>= 4;
	}
	return str_copy(out, digest, sizeof digest);
}

/* The flags of ":2,<flags>" info, or NULL for a name without such info. */
static const char *flags_of(const char *name)
{
	const char *colon = strchr(name, ':');

	if (!colon || colon[1] != '2' || colon[2] != ',')
		return NULL;
	return colon + 3;
}

int pop3_has_flag(const char *name, char flag)
{
	const char *flags = flags_of(name);

	return flags && strchr(flags, flag) != NULL;
}

int pop3_add_flag(const char *name, char flag, struct str *out)
{
	const char *flags = flags_of(name);

	if (!flags) {
		if (strchr(name, ':'))
			return 0;
		if (str_copys(out, name) < 0 || str_appends(out, ":2,") < 0 ||
		    str_appendc(out, flag) < 0)
			return -1;
		return 1;
	}
	if (strchr(flags, flag))
		return 0;
	const char *at = flags;
	while (*at && (unsigned char)*at < (unsigned char)flag)
		at++;
	if (str_copy(out, name, (size_t)(at - name)) < 0 ||
	    str_appendc(out, flag) < 0 || str_appends(out, at) < 0)
		return -1;
	return 1;
}

int pop3_cur_name(const char *newname, struct str *out)
{
	if (str_copys(out, newname) < 0)
		return -1;
	if (!strchr(newname, ':') && str_appends(out, ":2,") < 0)
		return -1;
	return 0;
}

/* --- directories --- */

/* A fresh stream over dirfd's directory, with its own read position. */
static DIR *open_dir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

/* The next entry not starting with '.', or NULL at the end (errno 0) or
 * on error (errno set). */
static struct dirent *next_entry(DIR *d)
{
	struct dirent *e;

	do {
		errno = 0;
		e = readdir(d);
	} while (e && e->d_name[0] == '.');
	return e;
}

int pop3_move_new(int newfd, int curfd, size_t *moved)
{
	struct str target = STR_INIT;
	struct dirent *e;
	int failed = 0;

	*moved = 0;
	DIR *d = open_dir(newfd);
	if (!d)
		return -1;
	while ((e = next_entry(d)) != NULL) {
		if (pop3_cur_name(e->d_name, &target) < 0) {
			failed = errno;
			continue;
		}
		if (renameat(newfd, e->d_name, curfd, target.s) == 0)
			(*moved)++;
		else if (errno != ENOENT)
			failed = errno;
	}
	if (errno)
		failed = errno;
	closedir(d);
	str_free(&target);
	if (failed) {
		errno = failed;
		return -1;
	}
	return 0;
}

void pop3_box_free(struct pop3_box *box)
{
	for (size_t i = 0; i < box->count; i++)
		free(box->msg[i].name);
	free(box->msg);
	box->msg = NULL;
	box->count = box->cap = box->left_out = 0;
}

static int box_grow(struct pop3_box *box, size_t limit)
{
	size_t cap, bytes;

	if (box->count < box->cap)
		return 0;
	if (size_mul(box->cap ? box->cap : 64, 2, &cap) < 0)
		return -1;
	if (cap > limit)
		cap = limit;
	if (size_mul(cap, sizeof *box->msg, &bytes) < 0)
		return -1;
	struct pop3_msg *v = realloc(box->msg, bytes);
	if (!v)
		return -1;
	box->msg = v;
	box->cap = cap;
	return 0;
}

/* While the box is full, it is a max-heap on pop3_msg_order: the root is
 * the newest message kept, the first to give way to an older one. */
static void sift_down(struct pop3_msg *v, size_t n, size_t i)
{
	for (;;) {
		size_t big = i, l = 2 * i + 1, r = 2 * i + 2;
		if (l < n && pop3_msg_order(&v[l], &v[big]) > 0)
			big = l;
		if (r < n && pop3_msg_order(&v[r], &v[big]) > 0)
			big = r;
		if (big == i)
			return;
		struct pop3_msg t = v[i];
		v[i] = v[big];
		v[big] = t;
		i = big;
	}
}

static void make_heap(struct pop3_msg *v, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(v, n, i);
}

/* Keep m (whose name the box then owns) or drop it, by the limit. */
static int box_offer(struct pop3_box *box, size_t limit, struct pop3_msg *m)
{
	if (limit == 0) {
		box->left_out++;
		free(m->name);
		return 0;
	}
	if (box->count < limit) {
		if (box_grow(box, limit) < 0)
			return -1;
		box->msg[box->count++] = *m;
		if (box->count == limit)
			make_heap(box->msg, box->count);
		return 0;
	}
	box->left_out++;
	if (pop3_msg_order(m, &box->msg[0]) >= 0) {
		free(m->name);
		return 0;
	}
	free(box->msg[0].name);
	box->msg[0] = *m;
	sift_down(box->msg, box->count, 0);
	return 0;
}

/* Fill m from cur/ entry name. Returns 1, 0 when the entry is to be
 * skipped (gone, or not a regular file), -1 on error. */
static int describe(int curfd, const char *name, struct pop3_msg *m)
{
	struct stat st;

	if (fstatat(curfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISREG(st.st_mode))
		return 0;
	memset(m, 0, sizeof *m);
	m->name = strdup(name);
	if (!m->name)
		return -1;
	m->when = pop3_name_time(name);
	m->size = (unsigned long long)st.st_size;
	m->was_seen = (unsigned char)pop3_has_flag(name, 'S');
	return 1;
}

static int by_order(const void *a, const void *b)
{
	return pop3_msg_order(a, b);
}

int pop3_scan(int curfd, size_t limit, struct pop3_box *box)
{
	struct dirent *e;
	struct pop3_msg m;
	int err = 0;

	DIR *d = open_dir(curfd);
	if (!d)
		return -1;
	while ((e = next_entry(d)) != NULL) {
		int r = describe(curfd, e->d_name, &m);
		if (r > 0 && box_offer(box, limit, &m) < 0) {
			err = errno;
			free(m.name);
			break;
		}
		if (r < 0) {
			err = errno;
			break;
		}
	}
	if (!e)
		err = errno;
	closedir(d);
	if (err) {
		pop3_box_free(box);
		errno = err;
		return -1;
	}
	if (box->count)
		qsort(box->msg, box->count, sizeof *box->msg, by_order);
	return 0;
}

int pop3_relocate(int curfd, struct pop3_msg *m)
{
	size_t n = pop3_uniq_len(m->name);
	struct dirent *e;
	int found = 0;

	DIR *d = open_dir(curfd);
	if (!d)
		return -1;
	while ((e = next_entry(d)) != NULL) {
		if (pop3_uniq_len(e->d_name) != n ||
		    memcmp(e->d_name, m->name, n) != 0)
			continue;
		char *name = strdup(e->d_name);
		if (!name)
			break;
		free(m->name);
		m->name = name;
		found = 1;
		break;
	}
	int err = found ? 0 : errno;
	closedir(d);
	if (err) {
		errno = err;
		return -1;
	}
	return found;
}

static int open_regular(int curfd, const char *name)
{
	struct stat st;
	int fd =
	    openat(curfd, name,
		   O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -1;
	int e = fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL;
	if (e) {
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int pop3_open_msg(int curfd, struct pop3_msg *m)
{
	int fd = open_regular(curfd, m->name);

	if (fd >= 0 || errno != ENOENT)
		return fd;
	int r = pop3_relocate(curfd, m);
	if (r <= 0) {
		if (r == 0)
			errno = ENOENT;
		return -1;
	}
	return open_regular(curfd, m->name);
}
