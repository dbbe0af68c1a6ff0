/*
 * qmail-send: schedule deliveries from the queue, and bounce failures.
 *
 * Fds (set up by qmail-start): 0 log, 1/2 to/from qmail-lspawn, 3/4
 * to/from qmail-rspawn, 5/6 to/from qmail-clean. The queue on disk is the
 * only state that matters: everything in memory can be rebuilt from
 * info/ and todo/ at start; a message keeps its todo entry until its own
 * files are on disk (see TODO_BATCH). A recipient is marked done (its T
 * becomes D) only after its delivery succeeded, or after its failure is
 * safely in bounce/; so a crash can repeat a delivery, never lose one.
 * Bounces go out in qmail's format (QSBMF). It never runs a shell and
 * never delivers by itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>
#endif

#include "auto.h"
#include "lib/buf.h"
#include "lib/ctl.h"
#include "lib/date822.h"
#include "lib/errstr.h"
#include "lib/exitcode.h"
#include "lib/fd.h"
#include "lib/fsync_dir.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"
#include "mail/qq.h"
#include "queue/route.h"

#define SLOTS_MAX 256
#define TODO_SCAN 60		/* seconds between todo scans anyway */
#define HOUSEKEEPING 3600	/* seconds between orphan scans */
#define ORPHAN_AGE (36 * 3600)	/* mess files nobody owns, removed after */
#define ENVELOPE_MAX (64 << 20) /* a todo or channel file larger is broken */

static const char *const chan_name[2] = {"local", "remote"};
static const int chan_out[2] = {1, 3}, chan_in[2] = {2, 4};
static const unsigned retry_c[2] = {10, 20};

/* --- configuration --- */

struct strings {
	struct str me, bouncefrom, bouncehost, dbto, dbhost;
};

static struct {
	struct strings s;
	unsigned long conc[2], lifetime;
	struct routes routes;
} cfg;

/* --- messages --- */

/* What a message keeps until it is committed (see TODO_BATCH), apart
 * from struct msg, which every queued message has: the queue's memory
 * grows by struct msg per message. */
struct uncommitted {
	int failed;		 /* an attempt may have left files */
	long long at;		 /* when it is due, on the monotonic clock */
	struct str data[3];	 /* its info, local, remote files to be */
	size_t held;		 /* their bytes, as counted in uc_bytes */
	struct msg *prev, *next; /* the uncommitted list */
};

struct msg {
	unsigned long id;
	time_t birth;
	time_t next[2]; /* when the channel is due */
	struct msg *hnext;
	struct uncommitted *uc; /* while its todo entry is its record */
	unsigned char pending[2]; /* the channel file exists */
	unsigned char injob[2];	  /* a job for the channel is running */
	unsigned char inheap[2];
	unsigned char bounce_wait; /* a bounce could not be injected yet */
};

#define BUCKETS 65536
static struct msg *table[BUCKETS];
static size_t nmsgs;

struct heapent {
	time_t t;
	struct msg *m;
};
static struct heapent *heap[2];
static size_t heaplen[2], heapcap[2];

struct job {
	struct msg *m;
	int chan;
	int fd;		   /* the channel file, O_RDWR */
	struct str data;   /* its contents */
	struct str sender; /* from info/ */
	size_t scan;	   /* where to look for the next T */
	int inflight, deferred;
	struct job *next;
};
static struct job *jobs[2];

struct delivery {
	struct job *job; /* NULL when the slot is free */
	size_t offset;	 /* of the T byte in the channel file */
	unsigned long num;
};
static struct delivery slots[2][SLOTS_MAX];
static unsigned long maxslots[2], busy[2], delnum;

static struct str inbuf[2]; /* partial reports from the spawners */

static volatile sig_atomic_t flag_alarm, flag_hup, flag_term;
static int selfpipe[2], trigger = -1, flag_todo = 1;
static time_t last_todo, last_housekeeping;

/* --- the log, on fd 0 --- */

static struct buf logbuf;
static char logspace[BUF_SIZE];

static void logs(const char *s)
{
	buf_puts(&logbuf, s);
}

static void lognum(unsigned long n)
{
	buf_putnum(&logbuf, n);
}

/* Text from deliveries: one line, no unsafe bytes, as qmail logs it. */
static void logsafe(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			c = '/';
		else if (c == ' ')
			c = '_';
		else if (c < 32 || c > 126)
			c = '?';
		buf_putc(&logbuf, (char)c);
	}
}

static void logend(void)
{
	buf_putc(&logbuf, '\n');
}

static void logflush(void)
{
	buf_flush(&logbuf);
}

static unsigned long limit(int c)
{
	return cfg.conc[c] < maxslots[c] ? cfg.conc[c] : maxslots[c];
}

static void log_status(void)
{
	logs("status: local ");
	lognum(busy[0]);
	logs("/");
	lognum(limit(0));
	logs(" remote ");
	lognum(busy[1]);
	logs("/");
	lognum(limit(1));
	logend();
}

static void alert_sys(const char *what, const char *fn)
{
	logs("warning: ");
	logs(what);
	logs(fn);
	logs(": ");
	logs(errstr(errno));
	logend();
}

/* --- file names --- */

static void fn_split(char *out, size_t n, const char *dir, unsigned long id)
{
	snprintf(out, n, "%s/%lu/%lu", dir, id % AUTO_SPLIT, id);
}

static void fn_flat(char *out, size_t n, const char *dir, unsigned long id)
{
	snprintf(out, n, "%s/%lu", dir, id);
}

/* --- configuration --- */

/* One-line settings, all read before any is used, so that a failure
 * keeps the old configuration whole. */
static void strings_free(struct strings *t)
{
	str_free(&t->me);
	str_free(&t->bouncefrom);
	str_free(&t->bouncehost);
	str_free(&t->dbto);
	str_free(&t->dbhost);
}

static int read_strings(struct strings *t, const char **file)
{
	*file = "control/me";
	if (ctl_line(*file, &t->me, "me") < 0)
		return -1;
	*file = "control/bouncefrom";
	if (ctl_line(*file, &t->bouncefrom, "MAILER-DAEMON") < 0)
		return -1;
	*file = "control/bouncehost";
	if (ctl_line(*file, &t->bouncehost, t->me.s) < 0)
		return -1;
	*file = "control/doublebounceto";
	if (ctl_line(*file, &t->dbto, "postmaster") < 0)
		return -1;
	*file = "control/doublebouncehost";
	if (ctl_line(*file, &t->dbhost, t->me.s) < 0)
		return -1;
	return 0;
}

static void read_config(int fatal)
{
	const char *file = NULL;
	struct routes r = {STR_INIT, STRMAP_INIT, STRMAP_INIT, STRMAP_INIT};
	struct strings t = {STR_INIT, STR_INIT, STR_INIT, STR_INIT, STR_INIT};
	unsigned long conc[2], lifetime;

	/* Reading happens with cwd = home; queue work with cwd = queue. */
	if (chdir("..") < 0)
		goto fail_home;
	if (read_strings(&t, &file) < 0)
		goto fail;
	file = "control/concurrencylocal";
	if (ctl_ulong(file, &conc[0], 10) < 0)
		goto fail;
	file = "control/concurrencyremote";
	if (ctl_ulong(file, &conc[1], 20) < 0)
		goto fail;
	file = "control/queuelifetime";
	if (ctl_ulong(file, &lifetime, 604800) < 0)
		goto fail;
	if (route_load(&r, &file) < 0)
		goto fail;
	route_free(&cfg.routes);
	cfg.routes = r;
	strings_free(&cfg.s);
	cfg.s = t;
	cfg.conc[0] = conc[0];
	cfg.conc[1] = conc[1];
	cfg.lifetime = lifetime;
	if (chdir("queue") < 0)
		goto fail_home;
	return;
fail:
	if (fatal)
		log_fatal_sys(EXIT_TEMP, "unable to read %s", file);
	alert_sys("unable to read ", file);
	logs("warning: keeping the old configuration");
	logend();
	strings_free(&t);
	if (chdir("queue") < 0)
		goto fail_home;
	return;
fail_home:
	log_fatal_sys(EXIT_TEMP, "unable to switch to the queue directory");
}

/* --- the message table and the schedule --- */

static struct msg *msg_find(unsigned long id)
{
	for (struct msg *m = table[id % BUCKETS]; m; m = m->hnext)
		if (m->id == id)
			return m;
	return NULL;
}

static struct msg *msg_add(unsigned long id, time_t birth)
{
	struct msg *m = msg_find(id);
	if (m)
		return m;
	m = calloc(1, sizeof *m);
	if (!m)
		log_nomem();
	m->id = id;
	m->birth = birth;
	m->hnext = table[id % BUCKETS];
	table[id % BUCKETS] = m;
	nmsgs++;
	return m;
}

static void uncommitted_drop(struct msg *m);

static void msg_remove(struct msg *m)
{
	struct msg **p = &table[m->id % BUCKETS];
	while (*p != m)
		p = &(*p)->hnext;
	*p = m->hnext;
	nmsgs--;
	uncommitted_drop(m);
	free(m);
}

static void heap_swap(int c, size_t a, size_t b)
{
	struct heapent t = heap[c][a];
	heap[c][a] = heap[c][b];
	heap[c][b] = t;
}

static void heap_push(int c, struct msg *m, time_t t)
{
	if (m->inheap[c])
		return;
	if (heaplen[c] == heapcap[c]) {
		size_t cap = heapcap[c] ? heapcap[c] * 2 : 1024;
		if (cap > SIZE_MAX / sizeof **heap)
			log_nomem();
		struct heapent *h = realloc(heap[c], cap * sizeof **heap);
		if (!h)
			log_nomem();
		heap[c] = h;
		heapcap[c] = cap;
	}
	m->inheap[c] = 1;
	m->next[c] = t;
	size_t i = heaplen[c]++;
	heap[c][i] = (struct heapent){t, m};
	while (i > 0 && heap[c][(i - 1) / 2].t > heap[c][i].t) {
		heap_swap(c, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static struct msg *heap_pop(int c)
{
	struct msg *m = heap[c][0].m;
	heap[c][0] = heap[c][--heaplen[c]];
	for (size_t i = 0;;) {
		size_t l = 2 * i + 1, r = l + 1, s = i;
		if (l < heaplen[c] && heap[c][l].t < heap[c][s].t)
			s = l;
		if (r < heaplen[c] && heap[c][r].t < heap[c][s].t)
			s = r;
		if (s == i)
			break;
		heap_swap(c, i, s);
		i = s;
	}
	m->inheap[c] = 0;
	return m;
}

/* ALRM: everything is due now. */
static void reschedule_all(time_t now)
{
	for (int c = 0; c < 2; c++)
		for (size_t i = 0; i < heaplen[c]; i++)
			heap[c][i].t = now;
}

static unsigned long isqrt(unsigned long n)
{
	unsigned long r = 0;
	while ((r + 1) * (r + 1) <= n)
		r++;
	return r;
}

static time_t next_retry(const struct msg *m, int c, time_t now)
{
	unsigned long age =
	    now > m->birth ? (unsigned long)(now - m->birth) : 0;
	unsigned long n = isqrt(age) + retry_c[c];
	return m->birth + (time_t)(n * n);
}

/*
 * A deferred channel's next retry is kept in its file's modification
 * (and access) time, as qmail does and reads back at start, so that a
 * restart does not retry the whole queue at once. It is a hint, never
 * synced: lost, or overtaken by the D marks of an attempt cut short,
 * the retry only comes early.
 */
static void retry_mark(int fd, const struct msg *m, int c, time_t when)
{
	struct timespec times[2] = {{when, 0}, {when, 0}};
	char fn[64];

	if (futimens(fd, times) < 0) {
		fn_split(fn, sizeof fn, chan_name[c], m->id);
		alert_sys("unable to set the retry time of ", fn);
	}
}

/* When a channel file found at start is due: its mtime, unless that is
 * past (due now) or later than the schedule allows from now (a clock
 * that went back, or a stray touch). */
static time_t retry_from_file(const struct msg *m, int c, time_t mtime,
			      time_t now)
{
	time_t latest = next_retry(m, c, now);

	if (mtime <= now)
		return now;
	return mtime < latest ? mtime : latest;
}

/* --- qmail-clean --- */

static void clean_send(char type, unsigned long id);
static void clean_wait(unsigned long id);

static void clean(char type, unsigned long id)
{
	clean_send(type, id);
	clean_wait(id);
}

/* --- reading queue files --- */

/* The whole of fd, from where it stands, into out; fd stays open. */
static int read_fd(int fd, struct str *out)
{
	char tmp[BUF_SIZE];
	ssize_t r;

	str_clear(out);
	while ((r = read(fd, tmp, sizeof tmp)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (out->len + (size_t)r > ENVELOPE_MAX) {
			errno = EFBIG;
			return -1;
		}
		if (str_append(out, tmp, (size_t)r) < 0)
			log_nomem();
	}
	return 0;
}

static int read_file(const char *fn, struct str *out)
{
	int fd = open(fn, O_RDONLY | O_CLOEXEC);

	str_clear(out);
	if (fd < 0)
		return -1;
	int r = read_fd(fd, out);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

static int read_sender(unsigned long id, struct str *sender)
{
	char fn[64];
	fn_split(fn, sizeof fn, "info", id);
	if (read_file(fn, sender) < 0)
		return -1;
	if (sender->len < 2 || sender->s[0] != 'F' ||
	    sender->s[sender->len - 1] != 0) {
		errno = EINVAL;
		return -1;
	}
	/* Keep only the address, NUL-terminated. */
	memmove(sender->s, sender->s + 1, sender->len - 1);
	str_truncate(sender, strlen(sender->s));
	return 0;
}

/* From memory until m is committed, then from its info file. */
static int msg_sender(const struct msg *m, struct str *sender)
{
	if (!m->uc)
		return read_sender(m->id, sender);
	if (str_copys(sender, m->uc->data[0].s + 1) < 0)
		log_nomem();
	return 0;
}

/* --- todo: new messages --- */

static int parse_id(const char *s, unsigned long *id)
{
	unsigned long n = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > (~0UL - 9) / 10)
			return -1;
		n = n * 10 + (unsigned long)(*s - '0');
	}
	*id = n;
	return 0;
}

static void log_msginfo(unsigned long id, const char *sender, const char *qp,
			const char *uid)
{
	char fn[64];
	struct stat st;

	fn_split(fn, sizeof fn, "mess", id);
	logs("info msg ");
	lognum(id);
	logs(": bytes ");
	lognum(stat(fn, &st) == 0 ? (unsigned long)st.st_size : 0);
	logs(" from <");
	logsafe(sender, strlen(sender));
	logs("> qp ");
	logs(qp);
	logs(" uid ");
	logs(uid);
	logend();
}

/*
 * New mail: each todo/<id> is read and routed into a message in memory,
 * in batches of up to TODO_BATCH, so that deliveries start while mail
 * keeps arriving.
 *
 * Its info/, local/ and remote/ files are written when it is committed:
 * the files written and fsynced, their directories fsynced, and only
 * then qmail-clean removes todo/<id>. Until that moment the todo entry,
 * which qmail-queue made durable, is the message's record: after a
 * crash, scan_info skips every message that still has one and scan_todo
 * takes it again from its envelope. So waiting loses nothing. A message
 * finished before its commit (one local recipient, usually) leaves
 * through qmail-clean's D, which removes its todo entry too; it costs
 * qmail-send no file, no fsync and no T. The others are committed
 * COMMIT_DELAY_MS after they arrived, in batches that share each
 * directory's fsync; or right after their first delivery result that
 * does not finish them, because from then on the queue holds progress
 * that a redo would throw away. What a crash before the commit repeats
 * is thus what qmail repeats anyway: the deliveries under way (and the
 * one that has just finished a message, until its D is done).
 *
 * A message is committed before its first delivery, with the others of
 * its batch, when waiting is unlikely to spare the commit or could cost
 * something: when it has remote recipients (an SMTP delivery takes
 * longer than the wait); when a channel it needs is on hold; when
 * qmail-send finds it at start-up (a backlog, which waits for slots
 * anyway); and when the queue's file system is nearly full, where a
 * commit failing after the deliveries started would leave them
 * unrecorded. If that commit fails, the message stays in todo/ until its
 * files fit, as in qmail.
 */
#define TODO_BATCH 32
#define COMMIT_DELAY_MS 2000
#define COMMIT_BATCH 64		      /* messages per commit pass */
#define COMMIT_MAX 1024		      /* uncommitted messages, and ... */
#define COMMIT_BYTES (16 << 20)	      /* ... their files' bytes, at most */
#define COMMIT_RETRY_MS 60000	      /* after a failed commit */
#define QUEUE_LOW_BYTES (16ULL << 20) /* nearly full: less free space, */
#define QUEUE_LOW_FILES 1000ULL	      /* or fewer free inodes */

static const char *const kind_name[3] = {"info", "local", "remote"};

struct todo_item {
	unsigned long id;
	struct str data[3]; /* info, local, remote; empty when none */
	struct str sender, qp, uid;
};

static unsigned long *todo_ids;
static size_t todo_n, todo_pos, todo_cap;

static struct msg *uc_head, *uc_tail; /* uncommitted, oldest first */
static size_t uc_count, uc_bytes;
static int commit_flagged; /* a message is due at once */
static size_t backlog_end; /* todo_ids[0..backlog_end) are a backlog */
static int started;	   /* todo/ was read once */

static long long mono_ms(void)
{
	struct timespec t;
	if (clock_gettime(CLOCK_MONOTONIC, &t) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to read the clock");
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void todo_item_free(struct todo_item *it)
{
	for (int k = 0; k < 3; k++)
		str_free(&it->data[k]);
	str_free(&it->sender);
	str_free(&it->qp);
	str_free(&it->uid);
}

static void todo_bad(const char *fn)
{
	logs("warning: trouble with the envelope of ");
	logs(fn);
	logs(": leaving it in the queue");
	logend();
}

/* Remove info/, local/ and remote/ files of id by name, whatever is
 * there: left over from before a crash, or from a failed commit. */
static void unlink_files(unsigned long id)
{
	char fn[64];

	for (int k = 0; k < 3; k++) {
		fn_split(fn, sizeof fn, kind_name[k], id);
		if (unlink(fn) < 0 && errno != ENOENT)
			alert_sys("unable to remove ", fn);
	}
}

/* Read and route one envelope into it. Returns 0, or -1 when the item
 * must be skipped (it then holds nothing). */
static int todo_prepare(unsigned long id, struct todo_item *it)
{
	char fn[64];
	struct str env = STR_INIT, rcpt = STR_INIT;
	struct str *data = it->data;

	for (int k = 0; k < 3; k++)
		data[k] = (struct str)STR_INIT;
	it->id = id;
	it->sender = it->qp = it->uid = (struct str)STR_INIT;
	fn_flat(fn, sizeof fn, "todo", id);
	if (msg_find(id))
		goto fail; /* already known: a stale entry */
	if (read_file(fn, &env) < 0) {
		if (errno != ENOENT)
			alert_sys("unable to read ", fn);
		goto fail;
	}
	/* Records: u<uid> p<pid> F<sender> T<rcpt>..., each NUL-ended. */
	int have_sender = 0;
	if (env.len == 0 || env.s[env.len - 1] != 0) {
		todo_bad(fn);
		goto fail;
	}
	for (size_t pos = 0; pos < env.len; pos += strlen(env.s + pos) + 1) {
		const char *rec = env.s + pos;
		struct str *field = rec[0] == 'u'   ? &it->uid
				    : rec[0] == 'p' ? &it->qp
				    : rec[0] == 'F' ? &it->sender
						    : NULL;
		if (field) {
			if (str_copys(field, rec + 1) < 0)
				log_nomem();
			have_sender |= rec[0] == 'F';
			continue;
		}
		/* Unknown records are skipped, as qmail does. */
		if (rec[0] != 'T')
			continue;
		if (!have_sender) {
			todo_bad(fn);
			goto fail;
		}
		int c = route_rewrite(&cfg.routes, rec + 1, &rcpt);
		if (c < 0)
			log_nomem();
		if (str_appendc(&data[1 + c], 'T') < 0 ||
		    str_append(&data[1 + c], rcpt.s, rcpt.len + 1) < 0)
			log_nomem();
	}
	if (!have_sender || (data[1].len == 0 && data[2].len == 0)) {
		todo_bad(fn);
		goto fail;
	}
	if (str_appendc(&data[0], 'F') < 0 ||
	    str_append(&data[0], it->sender.s, it->sender.len + 1) < 0)
		log_nomem();
	/* Files of an attempt cut short by a crash must not outlive it. */
	unlink_files(id);
	str_free(&env);
	str_free(&rcpt);
	return 0;
fail:
	todo_item_free(it);
	str_free(&env);
	str_free(&rcpt);
	return -1;
}

static void clean_send(char type, unsigned long id)
{
	char cmd[32];
	int n = snprintf(cmd, sizeof cmd, "%c%lu", type, id);

	if (fd_write_all(5, cmd, (size_t)n + 1, 0) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to talk to qmail-clean");
}

static void clean_wait(unsigned long id)
{
	char reply;

	for (;;) {
		ssize_t r = read(6, &reply, 1);
		if (r == 1)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		log_fatal(EXIT_TEMP, "qmail-clean went away");
	}
	if (reply != '+') {
		logs("warning: qmail-clean unable to clean up ");
		lognum(id);
		logend();
	}
}

/* --- committing new messages (see TODO_BATCH) --- */

static void uc_unlink(struct msg *m)
{
	struct uncommitted *u = m->uc;

	if (u->prev)
		u->prev->uc->next = u->next;
	else
		uc_head = u->next;
	if (u->next)
		u->next->uc->prev = u->prev;
	else
		uc_tail = u->prev;
	u->prev = u->next = NULL;
}

static void uc_append(struct msg *m, long long when)
{
	struct uncommitted *u = m->uc;

	u->at = when;
	u->next = NULL;
	u->prev = uc_tail;
	if (uc_tail)
		uc_tail->uc->next = m;
	else
		uc_head = m;
	uc_tail = m;
}

/* m becomes uncommitted, with data (info, local, remote) taken over. */
static void uncommitted_add(struct msg *m, struct str data[3], long long when)
{
	struct uncommitted *u = calloc(1, sizeof *u);

	if (!u)
		log_nomem();
	for (int k = 0; k < 3; k++) {
		u->data[k] = data[k];
		data[k] = (struct str)STR_INIT;
		u->held += u->data[k].len;
	}
	m->uc = u;
	uc_count++;
	uc_bytes += u->held;
	uc_append(m, when);
}

/* m is committed or gone: forget what was kept for its files. */
static void uncommitted_drop(struct msg *m)
{
	if (!m->uc)
		return;
	uc_unlink(m);
	uc_count--;
	uc_bytes -= m->uc->held;
	for (int k = 0; k < 3; k++)
		str_free(&m->uc->data[k]);
	free(m->uc);
	m->uc = NULL;
}

/* A delivery result for m: a redo from todo would lose it, so commit m
 * in this pass, unless it ends before (then nothing is left to lose). */
static void commit_soon(struct msg *m)
{
	if (m->uc) {
		m->uc->at = 0;
		commit_flagged = 1;
	}
}

static int commit_over(size_t count, size_t bytes)
{
	return count > COMMIT_MAX || bytes > COMMIT_BYTES;
}

static int commit_due(long long now)
{
	return commit_flagged || (uc_head && (uc_head->uc->at <= now ||
					      commit_over(uc_count, uc_bytes)));
}

/* Milliseconds until a commit is due; -1 when none is waiting. */
static long long commit_wait(long long now)
{
	if (commit_due(now))
		return 0;
	return uc_head ? uc_head->uc->at - now : -1;
}

static struct job *job_of(const struct msg *m, int c)
{
	for (struct job *j = jobs[c]; j; j = j->next)
		if (j->m == m)
			return j;
	return NULL;
}

/* Which files m has: info, and each channel file until its channel is
 * done (a channel done before the commit never needs its file). */
static int commit_has(const struct msg *m, int k)
{
	return k == 0 || m->pending[k - 1];
}

/* One of m's files, written from data and fsynced; info gets m's birth
 * as its mtime, a channel waiting for a retry that time as its mtime
 * (see retry_mark): what a restart reads back. Returns the open
 * descriptor, or -1 (said in the log). */
static int write_synced(const struct msg *m, int k, const struct str *data,
			int waiting)
{
	char fn[64];
	struct timespec times[2] = {{0, UTIME_OMIT}, {m->birth, 0}};

	fn_split(fn, sizeof fn, kind_name[k], m->id);
	int fd = open(fn, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 && fd_write_all(fd, data->s, data->len, 0) == 0 &&
	    (k != 0 || futimens(fd, times) == 0) && fsync(fd) == 0) {
		if (k != 0 && waiting && m->next[k - 1] > time(NULL))
			retry_mark(fd, m, k - 1, m->next[k - 1]);
		return fd;
	}
	alert_sys("unable to write ", fn);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The file of a channel with a running job comes from the job's copy,
 * which holds its results so far; the job marks the next ones in it. */
static int commit_files(struct msg *m)
{
	for (int k = 0; k < 3; k++) {
		if (!commit_has(m, k))
			continue;
		struct job *j = k ? job_of(m, k - 1) : NULL;
		int fd = write_synced(m, k, j ? &j->data : &m->uc->data[k],
				      k && !j && m->inheap[k - 1]);
		if (fd < 0) {
			m->uc->failed = 1;
			return 0;
		}
		if (!j) {
			close(fd);
			continue;
		}
		if (j->fd >= 0)
			close(j->fd);
		j->fd = fd;
	}
	return 1;
}

/* Each directory once per pass: 0 not yet, 1 synced, 2 failed. */
static int commit_dirs(const struct msg *m, char done[3][AUTO_SPLIT])
{
	unsigned long part = m->id % AUTO_SPLIT;
	char dir[32];
	int ok = 1;

	for (int k = 0; k < 3; k++) {
		if (!commit_has(m, k))
			continue;
		if (done[k][part] == 0) {
			snprintf(dir, sizeof dir, "%s/%lu", kind_name[k], part);
			done[k][part] = fsync_dir(dir) == 0 ? 1 : 2;
			if (done[k][part] == 2)
				alert_sys("unable to sync the directory ", dir);
		}
		ok &= done[k][part] == 1;
	}
	return ok;
}

/* Commit the n messages of batch: their files, their directories (each
 * once), then qmail-clean's T for those that made it; ok[i] says which.
 * The others are left as they were. Returns how many were committed. */
static size_t commit_batch(struct msg **batch, size_t n, int *ok)
{
	char done[3][AUTO_SPLIT];
	size_t committed = 0;

	memset(done, 0, sizeof done);
	for (size_t i = 0; i < n; i++)
		ok[i] = commit_files(batch[i]) && commit_dirs(batch[i], done);
	/* qmail-clean's answers are read after all requests are sent. */
	for (size_t i = 0; i < n; i++)
		if (ok[i])
			clean_send('T', batch[i]->id);
	for (size_t i = 0; i < n; i++)
		if (ok[i]) {
			clean_wait(batch[i]->id);
			uncommitted_drop(batch[i]);
			committed++;
		}
	return committed;
}

/* Commit the messages that are due (all of them with all set), at most
 * COMMIT_BATCH. Returns how many were committed. */
static size_t commit_pass(int all)
{
	struct msg *batch[COMMIT_BATCH];
	int ok[COMMIT_BATCH];
	size_t n = 0, count = uc_count, bytes = uc_bytes;
	long long now = mono_ms();

	commit_flagged = 0;
	for (struct msg *m = uc_head; m; m = m->uc->next) {
		if (n == COMMIT_BATCH) {
			commit_flagged = 1; /* look again next time */
			break;
		}
		/* Over the limits, the oldest go first. */
		if (all || commit_over(count, bytes) || m->uc->at <= now) {
			batch[n++] = m;
			count--;
			bytes -= m->uc->held;
		}
	}
	size_t committed = commit_batch(batch, n, ok);
	for (size_t i = 0; i < n; i++)
		if (!ok[i]) {
			/* todo stays; try again later, after the others. */
			uc_unlink(batch[i]);
			uc_append(batch[i], now + COMMIT_RETRY_MS);
		}
	return committed;
}

static int queue_nearly_full(void)
{
	struct statvfs v;

	if (statvfs(".", &v) < 0)
		return 1; /* cannot tell: the careful way */
	return (unsigned long long)v.f_bavail * v.f_frsize < QUEUE_LOW_BYTES ||
	       (v.f_files != 0 && v.f_favail < QUEUE_LOW_FILES);
}

/* See TODO_BATCH, apart from the backlog and a full file system. */
static int commit_before_delivery(const struct msg *m)
{
	return m->pending[CHAN_REMOTE] ||
	       (m->pending[CHAN_LOCAL] && limit(CHAN_LOCAL) == 0);
}

/* The message of it, in memory and uncommitted. */
static struct msg *todo_take(struct todo_item *it, time_t now, long long due)
{
	struct msg *m = msg_add(it->id, now);

	for (int c = 0; c < 2; c++)
		m->pending[c] = it->data[1 + c].len > 0;
	uncommitted_add(m, it->data, due);
	return m;
}

static void todo_batch(void)
{
	struct todo_item items[TODO_BATCH];
	struct msg *m[TODO_BATCH], *first[TODO_BATCH];
	int ok[TODO_BATCH];
	size_t n = 0, nfirst = 0;
	time_t now = time(NULL);
	long long due = mono_ms() + COMMIT_DELAY_MS;
	int low = -1;

	while (n < TODO_BATCH && todo_pos < todo_n) {
		int backlog = todo_pos < backlog_end;
		if (todo_prepare(todo_ids[todo_pos++], &items[n]) < 0)
			continue;
		m[n] = todo_take(&items[n], now, due);
		if (low < 0)
			low = queue_nearly_full();
		if (low || backlog || commit_before_delivery(m[n]))
			first[nfirst++] = m[n];
		n++;
	}
	commit_batch(first, nfirst, ok);
	for (size_t i = 0, f = 0; i < n; i++) {
		struct todo_item *it = &items[i];
		if (f < nfirst && first[f] == m[i] && !ok[f++]) {
			/* It waits in todo/ for the next scan, as in qmail. */
			unlink_files(it->id);
			uncommitted_drop(m[i]);
			msg_remove(m[i]);
			todo_item_free(it);
			continue;
		}
		logs("new msg ");
		lognum(it->id);
		logend();
		log_msginfo(it->id, it->sender.s, it->qp.len ? it->qp.s : "?",
			    it->uid.len ? it->uid.s : "?");
		for (int c = 0; c < 2; c++)
			if (m[i]->pending[c])
				heap_push(c, m[i], now);
		todo_item_free(it);
	}
}

static void read_todo_dir(void)
{
	DIR *d = opendir("todo");
	struct dirent *de;
	unsigned long id;

	todo_n = todo_pos = 0;
	if (!d) {
		alert_sys("unable to read ", "todo");
		return;
	}
	while ((de = readdir(d))) {
		if (parse_id(de->d_name, &id) < 0)
			continue;
		if (todo_n == todo_cap) {
			size_t cap = todo_cap ? todo_cap * 2 : 1024;
			unsigned long *t =
			    cap <= SIZE_MAX / sizeof *t
				? realloc(todo_ids, cap * sizeof *t)
				: NULL;
			if (!t)
				break; /* the rest waits for the next scan */
			todo_ids = t;
			todo_cap = cap;
		}
		todo_ids[todo_n++] = id;
	}
	closedir(d);
}

/* One batch of new messages; more on the next pass when there are. */
static void scan_todo(void)
{
	if (todo_pos == todo_n) {
		/* A trigger pulled from now on asks for another read. */
		flag_todo = 0;
		read_todo_dir();
		last_todo = time(NULL);
		/* What the first read finds waited for this qmail-send: a
		 * backlog, for which waiting to commit gains nothing. */
		backlog_end = started ? 0 : todo_n;
		started = 1;
	}
	todo_batch();
}

/* --- bounces --- */

static void copy_file_to_qq(struct qq *q, const char *fn)
{
	int fd = open(fn, O_RDONLY | O_CLOEXEC);
	char tmp[BUF_SIZE];
	ssize_t r;

	if (fd < 0) {
		q->failed = 1;
		return;
	}
	while ((r = read(fd, tmp, sizeof tmp)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			q->failed = 1;
			break;
		}
		qq_put(q, tmp, (size_t)r);
	}
	close(fd);
}

/* "pre-@dom-@[]" with recipient "box@host" gives "pre-box=host@dom". */
static int verp(const char *sender, const char *rcpt, struct str *out)
{
	size_t n = strlen(sender);
	if (n < 4 || strcmp(sender + n - 4, "-@[]") != 0)
		return str_copys(out, sender);
	const char *at = NULL;
	for (size_t i = 0; i < n - 4; i++)
		if (sender[i] == '@')
			at = sender + i;
	if (!at)
		return str_copys(out, sender);
	const char *ra = strrchr(rcpt, '@');
	if (str_copy(out, sender, (size_t)(at - sender)) < 0)
		return -1;
	if (ra) {
		if (str_append(out, rcpt, (size_t)(ra - rcpt)) < 0 ||
		    str_appendc(out, '=') < 0 || str_appends(out, ra + 1) < 0)
			return -1;
	} else if (str_appends(out, rcpt) < 0) {
		return -1;
	}
	return str_append(out, at, (size_t)(sender + n - 4 - at));
}

/* Inject the bounce for m, if any. Returns 0 when there is nothing left
 * to bounce, -1 to try again later. */
static int send_bounce(struct msg *m)
{
	char bfn[64], mfn[64], date[DATE822_LEN];
	struct str sender = STR_INIT, report = STR_INIT, to = STR_INIT;
	struct str reply = STR_INIT;
	struct qq q;
	int ret = -1;

	fn_flat(bfn, sizeof bfn, "bounce", m->id);
	fn_split(mfn, sizeof mfn, "mess", m->id);
	if (read_file(bfn, &report) < 0) {
		if (errno == ENOENT)
			ret = 0;
		else
			alert_sys("unable to read ", bfn);
		goto out;
	}
	if (msg_sender(m, &sender) < 0) {
		alert_sys("unable to read the sender of ", bfn);
		goto out;
	}
	if (strcmp(sender.s, "#@[]") == 0) {
		logs("triple bounce: discarding ");
		logs(bfn);
		logend();
		goto drop;
	}
	int dbl = sender.len == 0;
	const char *bsender = dbl ? "#@[]" : "";
	if (dbl) {
		if (cfg.s.dbto.len == 0) {
			logs("double bounce: discarding ");
			logs(bfn);
			logend();
			goto drop;
		}
		if (str_copystr(&to, &cfg.s.dbto) < 0 ||
		    str_appendc(&to, '@') < 0 ||
		    str_appends(&to, cfg.s.dbhost.s) < 0)
			log_nomem();
	} else {
		/* A VERP sender gets the bounce for its first recipient,
		 * which the bounce file holds as "<rcpt>:\n". */
		struct str r1 = STR_INIT;
		const char *end =
		    report.len > 1 ? strstr(report.s, ">:\n") : NULL;
		if (str_copys(&r1, "") < 0 ||
		    (end && str_copy(&r1, report.s + 1,
				     (size_t)(end - report.s - 1)) < 0) ||
		    verp(sender.s, r1.s, &to) < 0)
			log_nomem();
		str_free(&r1);
	}

	if (qq_start(&q) < 0) {
		alert_sys("unable to run ", "qmail-queue");
		goto out;
	}
	date822_fmt(date, time(NULL));
	qq_puts(&q, "Date: ");
	qq_puts(&q, date);
	qq_puts(&q, "\nFrom: ");
	qq_puts(&q, cfg.s.bouncefrom.s);
	qq_puts(&q, "@");
	qq_puts(&q, cfg.s.bouncehost.s);
	qq_puts(&q, "\nTo: ");
	qq_puts(&q, to.s);
	qq_puts(&q, "\nSubject: failure notice\n\nHi. This is the qmail-send "
		    "program at ");
	qq_puts(&q, cfg.s.me.s);
	qq_puts(&q, ".\n");
	if (dbl)
		qq_puts(&q, "I tried to deliver a bounce message to this "
			    "address, but the bounce bounced!\n\n");
	else
		qq_puts(&q, "I'm afraid I wasn't able to deliver your message "
			    "to the following addresses.\nThis is a permanent "
			    "error; I've given up. Sorry it didn't work "
			    "out.\n\n");
	qq_put(&q, report.s, report.len);
	qq_puts(&q, "--- Below this line is a copy of the message.\n\n");
	copy_file_to_qq(&q, mfn);
	pid_t qp = q.pid;
	const char *rcpts[1] = {to.s};
	int code = qq_finish(&q, bsender, rcpts, 1, &reply);
	if (code != 0) {
		logs("warning: unable to inject the bounce for ");
		lognum(m->id);
		logs(": ");
		logsafe(reply.s, reply.len);
		logend();
		goto out;
	}
	logs("bounce msg ");
	lognum(m->id);
	logs(" qp ");
	lognum((unsigned long)qp);
	logend();
drop:
	if (unlink(bfn) < 0 && errno != ENOENT)
		alert_sys("unable to remove ", bfn);
	ret = 0;
out:
	str_free(&sender);
	str_free(&report);
	str_free(&to);
	str_free(&reply);
	return ret;
}

/* Record a permanent failure durably before its T becomes D. */
static int add_bounce(unsigned long id, const char *rcpt, const char *text,
		      size_t len)
{
	char fn[64];
	struct str rec = STR_INIT;
	struct stat st;
	int ok = -1;

	fn_flat(fn, sizeof fn, "bounce", id);
	int fd = open(fn, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0)
		goto out;
	if (str_copys(&rec, "<") < 0 || str_appends(&rec, rcpt) < 0 ||
	    str_appends(&rec, ">:\n") < 0)
		log_nomem();
	/* The text keeps its own newlines: they become the bounce's lines. */
	for (size_t i = 0; i < len; i++)
		if (str_appendc(&rec, text[i]) < 0)
			log_nomem();
	while (rec.len && rec.s[rec.len - 1] == '\n')
		str_truncate(&rec, rec.len - 1);
	if (str_appends(&rec, "\n\n") < 0)
		log_nomem();
	if (fd_write_all(fd, rec.s, rec.len, 0) < 0 || fsync(fd) < 0)
		goto out;
	if (st.st_size == 0 && fsync_dir("bounce") < 0)
		goto out;
	ok = 0;
out:
	if (ok < 0)
		alert_sys("unable to write ", fn);
	if (fd >= 0)
		close(fd);
	str_free(&rec);
	return ok;
}

/* Everything is done for m: bounce, then remove it from the queue. */
static void msg_check_done(struct msg *m)
{
	char fn[64];

	if (m->injob[0] || m->injob[1])
		return;
	if (send_bounce(m) < 0) {
		m->bounce_wait = 1;
		return;
	}
	m->bounce_wait = 0;
	if (m->pending[0] || m->pending[1])
		return;
	/* info goes first, then the message file. A crash in between leaves
	 * a mess file nobody owns, removed after 36 hours. The other order
	 * would free the inode while info still names it: a new message
	 * could take that id and be removed as the old one's leftover. */
	fn_split(fn, sizeof fn, "info", m->id);
	if (!m->uc && unlink(fn) < 0 && errno != ENOENT) {
		alert_sys("unable to remove ", fn);
		return;
	}
	if (m->uc && m->uc->failed)
		unlink_files(m->id);
	/* D removes the todo entry of an uncommitted message too; it must
	 * never get a T later, which could hit a new message with its id. */
	uncommitted_drop(m);
	/* Logged first: whoever sees the queue empty finds the line. */
	logs("end msg ");
	lognum(m->id);
	logend();
	logflush();
	clean('D', m->id);
	msg_remove(m);
}

/* --- jobs and deliveries --- */

/* The channel's records and the sender: taken from m until it is
 * committed (the job then keeps the records until it ends or m is
 * committed), from m's files after. On failure fn names the file. */
static int job_load(struct job *j, char fn[64])
{
	struct msg *m = j->m;
	int c = j->chan;

	if (m->uc) {
		j->data = m->uc->data[1 + c];
		m->uc->data[1 + c] = (struct str)STR_INIT;
		return msg_sender(m, &j->sender);
	}
	fn_split(fn, 64, chan_name[c], m->id);
	j->fd = open(fn, O_RDWR | O_CLOEXEC);
	if (j->fd < 0 || read_fd(j->fd, &j->data) < 0)
		return -1;
	return read_sender(m->id, &j->sender);
}

static struct job *job_start(struct msg *m, int c)
{
	char fn[64];
	struct job *j = calloc(1, sizeof *j);

	if (!j)
		log_nomem();
	j->m = m;
	j->chan = c;
	j->fd = -1;
	if (job_load(j, fn) < 0) {
		if (errno == ENOENT) {
			m->pending[c] = 0; /* nothing left to do here */
		} else {
			alert_sys("unable to read ", fn);
			heap_push(c, m, time(NULL) + 60);
		}
		if (j->fd >= 0)
			close(j->fd);
		str_free(&j->data);
		str_free(&j->sender);
		free(j);
		return NULL;
	}
	m->injob[c] = 1;
	j->next = jobs[c];
	jobs[c] = j;
	return j;
}

/* The next undone recipient of j at or after j->scan, or -1. */
static long job_next_rcpt(struct job *j)
{
	while (j->scan < j->data.len) {
		size_t pos = j->scan;
		const char *end = memchr(j->data.s + pos, 0, j->data.len - pos);
		if (!end)
			break; /* a torn last record: ignore it */
		j->scan = (size_t)(end - j->data.s) + 1;
		if (j->data.s[pos] == 'T')
			return (long)pos;
	}
	return -1;
}

/* Whether j has an undone recipient not yet started; moves nothing. */
static int job_has_more(struct job *j)
{
	size_t scan = j->scan;
	long pos = job_next_rcpt(j);
	j->scan = scan;
	return pos >= 0;
}

static void job_finish(struct job *j)
{
	struct msg *m = j->m;
	int c = j->chan;
	int remaining = 0;
	time_t now = time(NULL);

	for (size_t pos = 0; pos < j->data.len;) {
		const char *end = memchr(j->data.s + pos, 0, j->data.len - pos);
		if (!end)
			break;
		if (j->data.s[pos] == 'T')
			remaining = 1;
		pos = (size_t)(end - j->data.s) + 1;
	}
	time_t retry = remaining ? next_retry(m, c, now) : 0;
	if (j->fd >= 0) {
		if (remaining)
			retry_mark(j->fd, m, c, retry);
		close(j->fd);
	}
	struct job **p = &jobs[c];
	while (*p != j)
		p = &(*p)->next;
	*p = j->next;
	m->injob[c] = 0;
	if (remaining) {
		heap_push(c, m, retry);
		if (m->uc) { /* the records go back to m */
			m->uc->data[1 + c] = j->data;
			j->data = (struct str)STR_INIT;
		}
	} else {
		char fn[64];
		fn_split(fn, sizeof fn, chan_name[c], m->id);
		if ((!m->uc || m->uc->failed) && unlink(fn) < 0 &&
		    errno != ENOENT)
			alert_sys("unable to remove ", fn);
		m->pending[c] = 0;
	}
	str_free(&j->data);
	str_free(&j->sender);
	free(j);
	msg_check_done(m);
}

static void start_delivery(int c, struct job *j, long pos)
{
	unsigned long slot;
	struct str cmd = STR_INIT, sender = STR_INIT;
	const char *rcpt = j->data.s + pos + 1;

	for (slot = 0; slot < maxslots[c] && slots[c][slot].job; slot++)
		;
	if (verp(j->sender.s, rcpt, &sender) < 0 ||
	    str_appendc(&cmd, (char)slot) < 0 ||
	    str_appendnum(&cmd, j->m->id % AUTO_SPLIT) < 0 ||
	    str_appendc(&cmd, '/') < 0 || str_appendnum(&cmd, j->m->id) < 0 ||
	    str_append0(&cmd) < 0 ||
	    str_append(&cmd, sender.s, sender.len + 1) < 0 ||
	    str_append(&cmd, rcpt, strlen(rcpt) + 1) < 0)
		log_nomem();
	if (fd_write_all(chan_out[c], cmd.s, cmd.len, 0) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to talk to qmail-%cspawn",
			      c ? 'r' : 'l');
	slots[c][slot] = (struct delivery){j, (size_t)pos, ++delnum};
	busy[c]++;
	j->inflight++;
	logs("starting delivery ");
	lognum(delnum);
	logs(": msg ");
	lognum(j->m->id);
	logs(" to ");
	logs(chan_name[c]);
	logs(" ");
	logsafe(rcpt, strlen(rcpt));
	logend();
	log_status();
	str_free(&cmd);
	str_free(&sender);
}

/* Fill free slots: running jobs first, then messages that are due. */
static void dispatch(int c, time_t now)
{
	while (!flag_term && busy[c] < limit(c)) {
		struct job *j;
		long pos = -1;
		for (j = jobs[c]; j; j = j->next)
			if ((pos = job_next_rcpt(j)) >= 0)
				break;
		if (!j) {
			if (heaplen[c] == 0 || heap[c][0].t > now)
				return;
			struct msg *m = heap_pop(c);
			if (!m->pending[c] || m->injob[c])
				continue;
			j = job_start(m, c);
			if (!j) {
				msg_check_done(m);
				continue;
			}
			if ((pos = job_next_rcpt(j)) < 0) {
				job_finish(j);
				continue;
			}
		}
		start_delivery(c, j, pos);
	}
}

static void mark_done(struct job *j, size_t offset)
{
	if (j->fd >= 0 && pwrite(j->fd, "D", 1, (off_t)offset) != 1)
		alert_sys("unable to mark a recipient done in ",
			  chan_name[j->chan]);
	j->data.s[offset] = 'D';
}

static void delivery_result(int c, unsigned slot, const char *text, size_t len)
{
	struct delivery *d = NULL;
	struct job *j = NULL;
	char kind = len ? text[0] : 'Z';
	if (kind != 'K' && kind != 'D')
		kind = 'Z'; /* anything unclear is a deferral */
	const char *rcpt;
	time_t now = time(NULL);

	if (slot < maxslots[c]) {
		d = &slots[c][slot];
		j = d->job;
	}
	if (!j) {
		logs("warning: report for an unused slot");
		logend();
		return;
	}
	rcpt = j->data.s + d->offset + 1;
	text = len ? text + 1 : "";
	len = len ? len - 1 : 0;
	if (kind == 'Z' && cfg.lifetime &&
	    (unsigned long)(now - j->m->birth) > cfg.lifetime)
		kind = 'L';
	logs("delivery ");
	lognum(d->num);
	logs(kind == 'K'   ? ": success: "
	     : kind == 'Z' ? ": deferral: "
			   : ": failure: ");
	logsafe(text, len);
	logend();
	switch (kind) {
	case 'K':
		mark_done(j, d->offset);
		break;
	case 'D':
		if (add_bounce(j->m->id, rcpt, text, len) == 0)
			mark_done(j, d->offset);
		break;
	case 'L': {
		struct str t = STR_INIT;
		if (str_append(&t, text, len) < 0 ||
		    str_appends(&t,
				"\nI'm not going to try again; this "
				"message has been in the queue too long.") < 0)
			log_nomem();
		if (add_bounce(j->m->id, rcpt, t.s, t.len) == 0)
			mark_done(j, d->offset);
		str_free(&t);
		break;
	}
	default:
		j->deferred++;
		break;
	}
	commit_soon(j->m);
	d->job = NULL;
	busy[c]--;
	j->inflight--;
	log_status();
	if (j->inflight == 0 && !job_has_more(j))
		job_finish(j);
	else if (j->inflight == 0 && flag_term)
		job_finish(j);
}

/* Reports: slot byte, text, NUL. */
static void read_reports(int c)
{
	char tmp[BUF_SIZE];
	ssize_t r = read(chan_in[c], tmp, sizeof tmp);

	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0)
		log_fatal(EXIT_TEMP, "qmail-%cspawn went away", c ? 'r' : 'l');
	if (str_append(&inbuf[c], tmp, (size_t)r) < 0)
		log_nomem();
	size_t pos = 0;
	while (inbuf[c].len - pos >= 2) {
		const char *end =
		    memchr(inbuf[c].s + pos + 1, 0, inbuf[c].len - pos - 1);
		if (!end)
			break;
		unsigned slot = (unsigned char)inbuf[c].s[pos];
		const char *text = inbuf[c].s + pos + 1;
		delivery_result(c, slot, text, (size_t)(end - text));
		pos = (size_t)(end - inbuf[c].s) + 1;
	}
	memmove(inbuf[c].s, inbuf[c].s + pos, inbuf[c].len - pos);
	str_truncate(&inbuf[c], inbuf[c].len - pos);
}

/* --- start-up and housekeeping --- */

static void scan_info(void)
{
	char dir[32], fn[300];
	struct stat st;
	time_t now = time(NULL);

	for (unsigned long i = 0; i < AUTO_SPLIT; i++) {
		snprintf(dir, sizeof dir, "info/%lu", i);
		DIR *d = opendir(dir);
		struct dirent *de;
		unsigned long id;
		if (!d) {
			alert_sys("unable to read ", dir);
			continue;
		}
		while ((de = readdir(d))) {
			if (parse_id(de->d_name, &id) < 0)
				continue;
			/* With its todo entry still there, the info and
			 * channel files may be incomplete: scan_todo redoes
			 * them from the envelope. */
			fn_flat(fn, sizeof fn, "todo", id);
			if (access(fn, F_OK) == 0)
				continue;
			snprintf(fn, sizeof fn, "%s/%s", dir, de->d_name);
			if (stat(fn, &st) < 0)
				continue;
			struct msg *m = msg_add(id, st.st_mtime);
			for (int c = 0; c < 2; c++) {
				fn_split(fn, sizeof fn, chan_name[c], id);
				if (stat(fn, &st) == 0) {
					m->pending[c] = 1;
					heap_push(c, m,
						  retry_from_file(
						      m, c, st.st_mtime, now));
				}
			}
			if (!m->pending[0] && !m->pending[1])
				m->bounce_wait = 1; /* finish it off */
		}
		closedir(d);
	}
}

/* Messages whose injection died half-way: a mess file with no todo and
 * no info, old enough that no qmail-queue can still be writing it. */
static void scan_orphans(time_t now)
{
	char dir[32], fn[300];
	struct stat st;

	last_housekeeping = now;
	for (unsigned long i = 0; i < AUTO_SPLIT; i++) {
		snprintf(dir, sizeof dir, "mess/%lu", i);
		DIR *d = opendir(dir);
		struct dirent *de;
		unsigned long id;
		if (!d)
			continue;
		while ((de = readdir(d))) {
			if (parse_id(de->d_name, &id) < 0 || msg_find(id))
				continue;
			snprintf(fn, sizeof fn, "%s/%s", dir, de->d_name);
			if (stat(fn, &st) < 0 || now - st.st_mtime < ORPHAN_AGE)
				continue;
			fn_flat(fn, sizeof fn, "todo", id);
			if (access(fn, F_OK) == 0)
				continue;
			fn_split(fn, sizeof fn, "info", id);
			if (access(fn, F_OK) == 0)
				continue;
			logs("warning: removing the leftover message ");
			lognum(id);
			logend();
			clean('D', id);
		}
		closedir(d);
	}
}

static void retry_bounces(void)
{
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct msg *m = table[b], *next; m; m = next) {
			next = m->hnext;
			if (m->bounce_wait)
				msg_check_done(m);
		}
}

static void open_trigger(void)
{
	if (trigger >= 0)
		close(trigger);
	trigger = open("lock/trigger", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (trigger < 0)
		alert_sys("unable to open ", "lock/trigger");
}

static void on_signal(int sig)
{
	int e = errno;
	if (sig == SIGALRM)
		flag_alarm = 1;
	else if (sig == SIGHUP)
		flag_hup = 1;
	else
		flag_term = 1;
	ssize_t w = write(selfpipe[1], "", 1);
	(void)w;
	errno = e;
}

static void read_spawner_max(int c)
{
	unsigned char n;
	for (;;) {
		ssize_t r = read(chan_in[c], &n, 1);
		if (r == 1)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		log_fatal(EXIT_TEMP, "qmail-%cspawn did not start",
			  c ? 'r' : 'l');
	}
	maxslots[c] = n; /* a byte: never more than SLOTS_MAX */
}

static int poll_timeout(time_t now)
{
	if (flag_todo || todo_pos < todo_n)
		return 0; /* more new messages are waiting */
	time_t next = last_todo + TODO_SCAN;
	for (int c = 0; c < 2; c++)
		if (heaplen[c] && heap[c][0].t < next &&
		    busy[c] < cfg.conc[c] && busy[c] < maxslots[c])
			next = heap[c][0].t;
	if (next <= now)
		return 0;
	long long ms = next - now > 3600 ? 3600 * 1000 : (next - now) * 1000;
	long long commit = commit_wait(mono_ms());
	return (int)(commit >= 0 && commit < ms ? commit : ms);
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	log_init(argv[0]);
	log_set_fd(0);
	buf_init(&logbuf, 0, logspace, sizeof logspace, 0);
#ifdef __SANITIZE_ADDRESS__
	/* Built with SAN=1: fd 2 is the pipe from qmail-lspawn here, so an
	 * AddressSanitizer report goes to the log, where the tests look for
	 * it. (GCC's UBSan runtime keeps its own report file: its reports
	 * are lost, and only the exit shows.) */
	__sanitizer_set_report_fd((void *)(intptr_t)0);
#endif
	signal(SIGPIPE, SIG_IGN);
	if (pipe(selfpipe) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to create a pipe");
	fd_nonblock(selfpipe[0]);
	fd_nonblock(selfpipe[1]);
	fd_cloexec(selfpipe[0]);
	fd_cloexec(selfpipe[1]);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (int fd = 1; fd <= 6; fd++)
		fd_cloexec(fd);

	home_chdir();
	if (chdir("queue") < 0)
		log_fatal_sys(EXIT_TEMP, "unable to switch to queue");
	/* One qmail-send per queue: two would deliver everything twice. */
	int mutex = open("lock/sendmutex", O_RDWR | O_CLOEXEC);
	if (mutex < 0 || flock(mutex, LOCK_EX | LOCK_NB) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to lock lock/sendmutex; is "
					 "another qmail-send running?");
	read_config(1);
	read_spawner_max(0);
	read_spawner_max(1);
	open_trigger();
	scan_info();
	log_status();
	last_housekeeping = time(NULL) - HOUSEKEEPING + 60;

	for (;;) {
		time_t now = time(NULL);
		if (flag_hup) {
			flag_hup = 0;
			read_config(0);
			logs("status: configuration reread");
			logend();
		}
		if (flag_alarm) {
			flag_alarm = 0;
			reschedule_all(now);
			flag_todo = 1;
		}
		if (flag_term && busy[0] == 0 && busy[1] == 0) {
			/* Else the next start redoes them from todo/. */
			while (uc_head && commit_pass(1) > 0)
				;
			logs("status: exiting");
			logend();
			logflush();
			return 0;
		}
		if (!flag_term) {
			if (flag_todo || todo_pos < todo_n ||
			    now >= last_todo + TODO_SCAN) {
				int fresh = todo_pos == todo_n;
				scan_todo();
				if (fresh)
					retry_bounces();
			}
			if (now >= last_housekeeping + HOUSEKEEPING)
				scan_orphans(now);
			dispatch(CHAN_LOCAL, now);
			dispatch(CHAN_REMOTE, now);
		}
		if (commit_due(mono_ms()))
			commit_pass(0);
		logflush();

		struct pollfd p[4] = {{selfpipe[0], POLLIN, 0},
				      {chan_in[0], POLLIN, 0},
				      {chan_in[1], POLLIN, 0},
				      {trigger, POLLIN, 0}};
		int r = poll(p, trigger >= 0 ? 4 : 3,
			     flag_term ? -1 : poll_timeout(now));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_fatal_sys(EXIT_TEMP, "poll failed");
		}
		if (p[0].revents) {
			char tmp[64];
			while (read(selfpipe[0], tmp, sizeof tmp) > 0)
				;
		}
		for (int c = 0; c < 2; c++)
			if (p[1 + c].revents)
				read_reports(c);
		if (trigger >= 0 && p[3].revents) {
			/* The writer is gone: reopen, or poll never waits. */
			char tmp[64];
			while (read(trigger, tmp, sizeof tmp) > 0)
				;
			open_trigger();
			flag_todo = 1;
		}
	}
}
