/*
 * qmail-overview: is the mail system healthy, and how has delivery gone?
 *
 * First one screen of health lines, each marked OK, WARN or FAIL: every
 * service under a daemontools service directory (through svstat), the
 * queue, its disk and its lock files, and qmail-send's log. Then, from
 * that log, messages, recipients, results, delays and the most common
 * failure and deferral texts per recipient domain.
 *
 * It only looks: it never changes or creates a queue file, never writes
 * to the trigger, never takes qmail-send's lock and never controls a
 * service. svstat runs with an argv, never through a shell. Every byte
 * that comes from a log, a directory or a queue file is printed through
 * buf_putvisible.
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
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auto.h"
#include "lib/buf.h"
#include "lib/checked.h"
#include "lib/errstr.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"
#include "mail/queuefile.h"
#include "mail/sendlog.h"

#define USAGE                                                                  \
	"usage: qmail-overview [-d home] [-s servicedir] [-t seconds] "        \
	"[-m domains] [logfile|logdir|-]..."

#define DAY 86400
#define LINE_MAX_LOG 65536 /* longer is not a qmail-send line */
#define SVSTAT_TIMEOUT 10  /* seconds */
#define SVSTAT_OUTPUT 4096 /* bytes of svstat output kept */
#define JUST_STARTED 5	   /* seconds up that look like a restart loop */
#define TODO_LATE 300	   /* seconds in todo/ before it is a problem */
#define DISK_WARN 15	   /* percent free */
#define DISK_FAIL 5
#define TEXT_MAX 512

enum level { OK, WARN, FAIL };
static const char *const level_name[] = {"OK", "WARN", "FAIL"};
static enum level worst = OK;

/* --- output --- */

static struct buf out;
static char outspace[BUF_SIZE];

static void out_put(const char *s, size_t n)
{
	if (buf_put(&out, s, n) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

static void out_str(const char *s)
{
	out_put(s, strlen(s));
}

static void out_num(unsigned long long n)
{
	if (buf_putnum(&out, n) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

static void out_visible(const char *s, size_t n)
{
	if (buf_putvisible(&out, s, n) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

/* How wide buf_putvisible prints s. */
static size_t visible_width(const char *s, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		w += c == '\\' ? 2 : (c >= 0x20 && c < 0x7f) ? 1 : 4;
	}
	return w;
}

static void out_pad(size_t used, size_t width)
{
	do
		out_put(" ", 1);
	while (++used < width);
}

/* Right-aligned in width columns, and never run into the column before:
 * a number too wide for its column pushes the rest of the row right. */
static void out_right(const char *s, size_t width)
{
	size_t n = strlen(s);

	out_put(" ", 1);
	for (; n + 1 < width; n++)
		out_put(" ", 1);
	out_str(s);
}

static void out_right_num(unsigned long n, size_t width)
{
	char tmp[32];
	snprintf(tmp, sizeof tmp, "%lu", n);
	out_right(tmp, width);
}

/* --- durations, sizes, dates --- */

/* "45s", "12m05s", "3h04m", "5d03h". */
static void fmt_age(char *to, size_t n, unsigned long long s)
{
	if (s < 60)
		snprintf(to, n, "%llus", s);
	else if (s < 3600)
		snprintf(to, n, "%llum%02llus", s / 60, s % 60);
	else if (s < DAY)
		snprintf(to, n, "%lluh%02llum", s / 3600, s % 3600 / 60);
	else
		snprintf(to, n, "%llud%02lluh", s / DAY, s % DAY / 3600);
}

/* Delays in milliseconds: "60ms", "12.3s", then as ages. */
static void fmt_delay(char *to, size_t n, uint64_t ms)
{
	if (ms < 1000)
		snprintf(to, n, "%llums", (unsigned long long)ms);
	else if (ms < 60000)
		snprintf(to, n, "%llu.%llus", (unsigned long long)(ms / 1000),
			 (unsigned long long)(ms % 1000 / 100));
	else
		fmt_age(to, n, ms / 1000);
}

static void fmt_size(char *to, size_t n, unsigned long long bytes)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	unsigned long long scale = 1024;
	size_t u = 0;

	while (u + 1 < sizeof unit / sizeof *unit && bytes / scale >= 1024) {
		scale *= 1024;
		u++;
	}
	unsigned long long tenths = bytes / (scale / 10) % 10;
	snprintf(to, n, "%llu.%llu %s", bytes / scale, tenths, unit[u]);
}

static void fmt_date(char *to, size_t n, time_t t)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    strftime(to, n, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(to, n, "(time %lld)", (long long)t);
}

/* --- health lines --- */

static void health(enum level lv, const char *subject, const char *detail)
{
	size_t n = strlen(subject);

	if (lv > worst)
		worst = lv;
	out_str(level_name[lv]);
	out_pad(strlen(level_name[lv]), 6);
	out_visible(subject, n);
	out_pad(visible_width(subject, n), 22);
	out_visible(detail, strlen(detail));
	out_str("\n");
}

/* --- services, through svstat --- */

struct svc_state {
	enum level lv;
	char text[TEXT_MAX];
};

/* Runs argv with its output (fds 1 and 2) into *text; at most
 * SVSTAT_OUTPUT bytes and SVSTAT_TIMEOUT seconds. Returns 0, or -1 with
 * errno when it could not be run at all. */
static int run_capture(char *const *argv, struct str *text)
{
	int p[2];

	str_clear(text);
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0 ||
		    dup2(p[1], 2) < 0)
			_exit(EXIT_TEMP);
		close(p[0]);
		if (p[1] > 2)
			close(p[1]);
		execvp(argv[0], argv);
		/* Read by the parent as the status it could not get. */
		char why[TEXT_MAX];
		int n = snprintf(why, sizeof why, "unable to run %s: %s\n",
				 argv[0], errstr(errno));
		if (n > 0 && write(2, why, (size_t)n) < 0)
			_exit(EXIT_TEMP);
		_exit(EXIT_TEMP);
	}
	close(p[1]);
	time_t deadline = time(NULL) + SVSTAT_TIMEOUT;
	for (;;) {
		char chunk[512];
		struct pollfd pfd = {p[0], POLLIN, 0};
		time_t left = deadline - time(NULL);
		int ready = left > 0 ? poll(&pfd, 1, (int)left * 1000) : 0;
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready == 0) {
			kill(pid, SIGKILL);
			if (str_copys(text, "svstat did not answer in time") <
			    0)
				log_nomem();
			break;
		}
		ssize_t r = read(p[0], chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t room = SVSTAT_OUTPUT - text->len;
		if (str_append(text, chunk,
			       (size_t)r < room ? (size_t)r : room) < 0)
			log_nomem();
	}
	close(p[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static int eat(const char **s, const char *lit)
{
	size_t n = strlen(lit);
	if (strncmp(*s, lit, n) != 0)
		return 0;
	*s += n;
	return 1;
}

static int eat_num(const char **s, unsigned long long *v)
{
	char *end;
	if (**s < '0' || **s > '9')
		return 0;
	errno = 0;
	*v = strtoull(*s, &end, 10);
	if (errno)
		return 0;
	*s = end;
	return 1;
}

/* svstat's "up (pid 12) 345 seconds, normally down", "down 3 seconds,
 * normally up" or its complaint, as a level and a shorter text. */
static void parse_status(const char *s, struct svc_state *st)
{
	unsigned long long pid, secs;
	char age[32];
	const char *p = s;

	if (eat(&p, "up (pid ") && eat_num(&p, &pid) && eat(&p, ") ") &&
	    eat_num(&p, &secs) && eat(&p, " seconds")) {
		fmt_age(age, sizeof age, secs);
		st->lv = OK;
		if (strstr(p, "paused") || strstr(p, "want down"))
			st->lv = WARN;
		snprintf(st->text, sizeof st->text, "up %s%s", age, p);
		if (secs < JUST_STARTED) {
			st->lv = WARN;
			snprintf(st->text, sizeof st->text,
				 "up %s%s (just started: restarting?)", age, p);
		}
		return;
	}
	p = s;
	if (eat(&p, "down ") && eat_num(&p, &secs) && eat(&p, " seconds")) {
		fmt_age(age, sizeof age, secs);
		st->lv = strstr(p, "normally up") ? FAIL
			 : strstr(p, "want up")	  ? WARN
						  : OK;
		snprintf(st->text, sizeof st->text, "down %s%s", age, p);
		return;
	}
	/* "supervise not running", "unable to open supervise/ok: ..." */
	st->lv = strstr(s, "access denied") ? WARN : FAIL;
	snprintf(st->text, sizeof st->text, "%s", s);
}

/* The line svstat printed for dir, without "dir: ". Returns 0 when
 * there is none: then st holds the first line of what it said. */
static int find_status(const struct str *text, const char *dir,
		       struct svc_state *st)
{
	size_t dl = strlen(dir);
	const char *p = text->s ? text->s : "";

	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n > dl + 1 && memcmp(p, dir, dl) == 0 && p[dl] == ':' &&
		    p[dl + 1] == ' ') {
			char line[TEXT_MAX];
			snprintf(line, sizeof line, "%.*s", (int)(n - dl - 2),
				 p + dl + 2);
			parse_status(line, st);
			return 1;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	/* No line for dir: the output says why (svstat missing...). */
	st->lv = WARN;
	const char *why = text->len ? text->s : "svstat printed nothing";
	snprintf(st->text, sizeof st->text, "%.*s", (int)strcspn(why, "\n"),
		 why);
	return 0;
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void show_service(const char *servicedir, const char *name)
{
	struct str text = STR_INIT, dir = STR_INIT, logdir = STR_INIT;
	struct svc_state main = {OK, ""}, log = {OK, ""};
	char detail[2 * TEXT_MAX + 16], subject[300];

	if (str_copys(&dir, servicedir) < 0 || str_appendc(&dir, '/') < 0 ||
	    str_appends(&dir, name) < 0 || str_copystr(&logdir, &dir) < 0 ||
	    str_appends(&logdir, "/log") < 0)
		log_nomem();
	int has_log = is_dir(logdir.s);
	static char svstat[] = "svstat";
	char *argv[] = {svstat, dir.s, has_log ? logdir.s : NULL, NULL};
	if (run_capture(argv, &text) < 0) {
		main.lv = WARN;
		snprintf(main.text, sizeof main.text,
			 "unable to run svstat: %s", errstr(errno));
		has_log = 0;
	} else if (!find_status(&text, dir.s, &main)) {
		has_log = 0; /* the same complaint would follow */
	} else if (has_log) {
		find_status(&text, logdir.s, &log);
	}
	snprintf(detail, sizeof detail, "%s%s%s", main.text,
		 has_log ? "; log " : "", has_log ? log.text : "");
	snprintf(subject, sizeof subject, "service %s", name);
	health(main.lv > log.lv ? main.lv : log.lv, subject, detail);
	str_free(&text);
	str_free(&dir);
	str_free(&logdir);
}

struct names {
	char **v;
	size_t n, cap;
};

static void names_add(struct names *ns, const char *name)
{
	if (ns->n == ns->cap) {
		size_t cap, bytes;
		if (size_mul(ns->cap ? ns->cap : 16, 2, &cap) < 0 ||
		    size_mul(cap, sizeof *ns->v, &bytes) < 0)
			log_nomem();
		char **v = realloc(ns->v, bytes);
		if (!v)
			log_nomem();
		ns->v = v;
		ns->cap = cap;
	}
	if (!(ns->v[ns->n] = strdup(name)))
		log_nomem();
	ns->n++;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

static void show_services(const char *servicedir)
{
	struct names ns = {NULL, 0, 0};
	DIR *d;

	if (!servicedir) {
		health(WARN, "services",
		       "no service directory (give one "
		       "with -s)");
		return;
	}
	if (!(d = opendir(servicedir))) {
		char why[TEXT_MAX];
		snprintf(why, sizeof why, "unable to read %s: %s", servicedir,
			 errstr(errno));
		health(FAIL, "services", why);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		struct str path = STR_INIT;
		if (de->d_name[0] == '.')
			continue;
		if (str_copys(&path, servicedir) < 0 ||
		    str_appendc(&path, '/') < 0 ||
		    str_appends(&path, de->d_name) < 0)
			log_nomem();
		if (is_dir(path.s))
			names_add(&ns, de->d_name);
		str_free(&path);
	}
	closedir(d);
	if (ns.n == 0) {
		char why[TEXT_MAX];
		snprintf(why, sizeof why, "none in %s", servicedir);
		health(WARN, "services", why);
	}
	if (ns.n)
		qsort(ns.v, ns.n, sizeof *ns.v, by_name);
	for (size_t i = 0; i < ns.n; i++)
		show_service(servicedir, ns.v[i]);
	names_free(&ns);
}

/* --- the queue (the current directory is queue/) --- */

struct queue_view {
	unsigned long messages, todo, pending[2];
	time_t oldest, oldest_todo; /* 0: none */
	char trouble[TEXT_MAX];	    /* the first thing that went wrong */
};

static void queue_trouble(struct queue_view *q, const char *name)
{
	if (q->trouble[0])
		return;
	snprintf(q->trouble, sizeof q->trouble, "unable to read queue/%s: %s",
		 name, errstr(errno));
}

struct count_ctx {
	struct queue_view *q;
	unsigned long *count;
	time_t *oldest;
};

static void count_file(void *arg, const char *dir, const struct dirent *de)
{
	struct count_ctx *c = arg;
	char path[QUEUEFILE_NAME + 256];
	struct stat st;

	if (!queuefile_is_regular(dir, de))
		return;
	snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT)
			queue_trouble(c->q, path);
		return; /* gone meanwhile: no longer in the queue */
	}
	++*c->count;
	if (*c->oldest == 0 || st.st_mtime < *c->oldest)
		*c->oldest = st.st_mtime;
}

struct pending_ctx {
	struct queue_view *q;
	unsigned long *count;
	struct str data;
};

static void count_recipients(void *arg, const char *dir,
			     const struct dirent *de)
{
	struct pending_ctx *c = arg;
	char path[QUEUEFILE_NAME + 256];
	struct stat st;
	unsigned long id;
	size_t pos = 0, len;
	const char *rec;

	if (queuefile_parse_id(de->d_name, &id) < 0)
		return;
	snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
	if (queuefile_read(path, &c->data, &st) < 0) {
		if (errno != ENOENT)
			queue_trouble(c->q, path);
		return;
	}
	while ((rec = queuefile_record(&c->data, &pos, &len)))
		if (len > 0 && rec[0] == 'T')
			++*c->count;
}

static void scan_dirs(struct queue_view *q, const char *base,
		      void (*fn)(void *, const char *, const struct dirent *),
		      void *ctx)
{
	char dir[64];

	for (unsigned long i = 0; i < AUTO_SPLIT; i++) {
		snprintf(dir, sizeof dir, "%s/%lu", base, i);
		if (queuefile_each(dir, fn, ctx) < 0)
			queue_trouble(q, dir);
	}
}

static void scan_queue(struct queue_view *q)
{
	struct count_ctx mess = {q, &q->messages, &q->oldest};
	struct count_ctx todo = {q, &q->todo, &q->oldest_todo};
	static const char *const chan[2] = {"local", "remote"};

	scan_dirs(q, "mess", count_file, &mess);
	if (queuefile_each("todo", count_file, &todo) < 0)
		queue_trouble(q, "todo");
	for (int c = 0; c < 2; c++) {
		struct pending_ctx p = {q, &q->pending[c], STR_INIT};
		scan_dirs(q, chan[c], count_recipients, &p);
		str_free(&p.data);
	}
}

static void show_queue(const struct queue_view *q, time_t now)
{
	char detail[TEXT_MAX + 200], age[32], todo_age[48] = "";
	enum level lv = OK;

	if (q->oldest)
		fmt_age(age, sizeof age,
			now > q->oldest ? (unsigned long long)(now - q->oldest)
					: 0);
	else
		snprintf(age, sizeof age, "-");
	if (q->oldest_todo && now - q->oldest_todo > TODO_LATE) {
		lv = WARN;
		char t[32];
		fmt_age(t, sizeof t,
			(unsigned long long)(now - q->oldest_todo));
		snprintf(todo_age, sizeof todo_age, " for %s", t);
	}
	snprintf(detail, sizeof detail,
		 "messages %lu, not yet processed %lu%s, oldest %s",
		 q->messages, q->todo, todo_age, age);
	health(lv, "queue", detail);
	snprintf(detail, sizeof detail, "local %lu, remote %lu", q->pending[0],
		 q->pending[1]);
	health(OK, "recipients pending", detail);
	if (q->trouble[0])
		health(FAIL, "queue files", q->trouble);
}

static enum level percent_level(unsigned long long pct)
{
	return pct < DISK_FAIL ? FAIL : pct < DISK_WARN ? WARN : OK;
}

static unsigned long long percent(unsigned long long part,
				  unsigned long long whole)
{
	if (whole == 0)
		return 100;
	/* part * 100 could overflow only on absurd sizes: scale down. */
	while (part > UINT64_MAX / 100) {
		part /= 2;
		whole /= 2;
	}
	return whole ? part * 100 / whole : 100;
}

static void show_disk(void)
{
	struct statvfs vfs;
	char detail[TEXT_MAX], freebuf[32], totalbuf[32];

	if (statvfs(".", &vfs) < 0) {
		snprintf(detail, sizeof detail,
			 "unable to check the queue's file system: %s",
			 errstr(errno));
		health(WARN, "disk", detail);
		return;
	}
	unsigned long long frsize = vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize;
	unsigned long long avail, total;
	if (__builtin_mul_overflow((unsigned long long)vfs.f_bavail, frsize,
				   &avail))
		avail = UINT64_MAX;
	if (__builtin_mul_overflow((unsigned long long)vfs.f_blocks, frsize,
				   &total))
		total = UINT64_MAX;
	unsigned long long pct = percent(vfs.f_bavail, vfs.f_blocks);
	enum level lv = percent_level(pct);
	fmt_size(freebuf, sizeof freebuf, avail);
	fmt_size(totalbuf, sizeof totalbuf, total);
	int n = snprintf(detail, sizeof detail, "free %s of %s (%llu%%)",
			 freebuf, totalbuf, pct);
	if (vfs.f_files > 0 && n > 0 && (size_t)n < sizeof detail) {
		unsigned long long ipct = percent(vfs.f_favail, vfs.f_files);
		enum level il = percent_level(ipct);
		lv = il > lv ? il : lv;
		snprintf(detail + n, sizeof detail - (size_t)n,
			 ", inodes free %llu (%llu%%)",
			 (unsigned long long)vfs.f_favail, ipct);
	}
	health(lv, "disk", detail);
}

/* Whether lock/NAME exists with the type qmail-send needs. */
static const char *lock_problem(const char *fn, mode_t type, char *why,
				size_t n)
{
	struct stat st;

	if (lstat(fn, &st) < 0) {
		snprintf(why, n, "%s: %s", fn,
			 errno == ENOENT ? "missing" : errstr(errno));
		return why;
	}
	if ((st.st_mode & S_IFMT) != type) {
		snprintf(why, n, "%s is not a %s", fn,
			 type == S_IFIFO ? "FIFO" : "file");
		return why;
	}
	return NULL;
}

static void show_locks(void)
{
	char why[TEXT_MAX];

	if (lock_problem("lock/trigger", S_IFIFO, why, sizeof why) ||
	    lock_problem("lock/sendmutex", S_IFREG, why, sizeof why))
		health(FAIL, "queue lock", why);
	else
		health(OK, "queue lock",
		       "lock/trigger and lock/sendmutex "
		       "present");
}

/* --- the log --- */

struct logs {
	struct sendlog *sl;
	unsigned long files;	/* read */
	char trouble[TEXT_MAX]; /* the first file that could not be read */
};

static void log_feed(struct logs *lg, const char *line, size_t n)
{
	if (sendlog_line(lg->sl, line, n) < 0)
		log_nomem();
}

static void read_log_fd(struct logs *lg, int fd, const char *name)
{
	static char space[BUF_SIZE];
	struct buf in;
	struct str line = STR_INIT;

	buf_init(&in, fd, space, sizeof space, 0);
	for (;;) {
		str_clear(&line);
		int r = buf_getline(&in, &line, '\n', LINE_MAX_LOG);
		if (r == 1) {
			log_feed(lg, line.s, line.len - 1);
			continue;
		}
		if (r < 0 && errno == EMSGSIZE) {
			/* Not a line qmail-send writes: count it, skip it. */
			log_feed(lg, "", 0);
			if (buf_skipline(&in, '\n') > 0)
				continue;
			break;
		}
		if (r < 0 && !lg->trouble[0])
			snprintf(lg->trouble, sizeof lg->trouble,
				 "unable to read %s: %s", name,
				 errstr(errno));
		/* A last line without its newline is still being written,
		 * or was cut off: it is not used. */
		break;
	}
	lg->files++;
	str_free(&line);
}

static void read_log_file(struct logs *lg, const char *fn)
{
	int fd = open(fn, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		if (!lg->trouble[0])
			snprintf(lg->trouble, sizeof lg->trouble,
				 "unable to read %s: %s", fn, errstr(errno));
		log_warn_sys("unable to read %s", fn);
		return;
	}
	read_log_fd(lg, fd, fn);
	close(fd);
}

/* multilog's directory: the rotated @*.s and @*.u files (their names
 * sort by time), then current. */
static void read_log_dir(struct logs *lg, const char *dir)
{
	struct names ns = {NULL, 0, 0};
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d) {
		read_log_file(lg, dir); /* says why */
		return;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (de->d_name[0] == '@' && n > 2 &&
		    (strcmp(de->d_name + n - 2, ".s") == 0 ||
		     strcmp(de->d_name + n - 2, ".u") == 0))
			names_add(&ns, de->d_name);
	}
	closedir(d);
	if (ns.n)
		qsort(ns.v, ns.n, sizeof *ns.v, by_name);
	names_add(&ns, "current");
	for (size_t i = 0; i < ns.n; i++) {
		struct str fn = STR_INIT;
		if (str_copys(&fn, dir) < 0 || str_appendc(&fn, '/') < 0 ||
		    str_appends(&fn, ns.v[i]) < 0)
			log_nomem();
		if (i + 1 < ns.n || access(fn.s, F_OK) == 0)
			read_log_file(lg, fn.s);
		str_free(&fn);
	}
	names_free(&ns);
}

static void read_log_arg(struct logs *lg, const char *arg)
{
	if (strcmp(arg, "-") == 0)
		read_log_fd(lg, 0, "standard input");
	else if (is_dir(arg))
		read_log_dir(lg, arg);
	else
		read_log_file(lg, arg);
}

static void show_log(const struct logs *lg, int asked)
{
	char detail[TEXT_MAX + 200];
	const struct sendlog_totals *t = sendlog_totals(lg->sl);

	if (lg->trouble[0]) {
		health(WARN, "qmail-send log", lg->trouble);
		return;
	}
	if (lg->files == 0) {
		health(WARN, "qmail-send log",
		       asked ? "nothing read"
			     : "not found (name a log file or directory)");
		return;
	}
	unsigned long alerts = t->warnings + t->fatals;
	snprintf(
	    detail, sizeof detail,
	    "lines %lu (not qmail-send's %lu), warnings %lu, fatal %lu%s%s",
	    t->lines, t->unparsed, t->warnings, t->fatals,
	    alerts ? "; last: " : "", alerts ? t->last_warning : "");
	health(alerts ? WARN : OK, "qmail-send log", detail);
}

/* --- the activity table --- */

static void put_row(const char *name, const struct sendlog_stats *s)
{
	char avg[32] = "-", max[32] = "-";
	size_t n = strlen(name);

	if (s->delays) {
		fmt_delay(avg, sizeof avg, s->delay_sum / s->delays);
		fmt_delay(max, sizeof max, s->delay_max);
	}
	out_visible(name, n);
	out_pad(visible_width(name, n), 24);
	out_right_num(s->msgs, 5);
	out_right_num(s->rcpts, 6);
	out_right_num(s->delivered, 6);
	out_right_num(s->deferrals, 6);
	out_right_num(s->failures, 6);
	out_right(avg, 10);
	out_right(max, 10);
	out_str("\n");
}

static void put_reason(const char *kind, const struct sendlog_reasons *r)
{
	const struct sendlog_reason *top = sendlog_top(r);

	if (!top)
		return;
	out_str("  ");
	out_str(kind);
	out_str(" (");
	out_num(top->count);
	out_str("): ");
	out_visible(top->text, strlen(top->text));
	out_str("\n");
}

static void put_window(const struct sendlog_totals *t, unsigned long window,
		       time_t now)
{
	char date[64], age[32];

	if (window == 0 || !t->stamped) {
		out_str(window ? "activity in the whole log (it has no time "
				 "stamps)\n"
			       : "activity in the whole log\n");
	} else {
		fmt_age(age, sizeof age, window);
		fmt_date(date, sizeof date, now - (time_t)window);
		out_str("activity in the last ");
		out_str(age);
		out_str(", since ");
		out_str(date);
		out_str("\n");
	}
	if (t->first == 0 && t->last == 0)
		return;
	/* What the log covers may be less than the window. */
	fmt_date(date, sizeof date, (time_t)(t->first / 1000));
	out_str("log lines from ");
	out_str(date);
	fmt_date(date, sizeof date, (time_t)(t->last / 1000));
	out_str(" to ");
	out_str(date);
	out_str("\n");
}

static void show_activity(struct logs *lg, unsigned long window,
			  unsigned long max_domains, time_t now)
{
	const struct sendlog_totals *t = sendlog_totals(lg->sl);
	const struct sendlog_stats **doms;
	size_t n;

	if (sendlog_domains(lg->sl, &doms, &n) < 0)
		log_nomem();
	out_str("\n");
	put_window(t, window, now);
	out_str("new messages ");
	out_num(t->messages);
	out_str(" (");
	out_num(t->bytes);
	out_str(" bytes), bounces ");
	out_num(t->bounces);
	out_str(" (discarded ");
	out_num(t->discarded);
	out_str(")\nqmail-send restarts ");
	out_num(t->restarts);
	out_str(", deliveries in progress ");
	out_num(sendlog_in_progress(lg->sl));
	out_str(", results without a start ");
	out_num(t->unmatched);
	out_str("\n\n");
	out_str("domain                   msgs rcpts  dlvd defer  fail "
		" avg-delay max-delay\n");
	for (size_t i = 0; i < n; i++) {
		if (max_domains && i == max_domains) {
			out_str("(");
			out_num(n - i);
			out_str(" more domains)\n");
			break;
		}
		put_row(doms[i]->name[0] ? doms[i]->name : "(no domain)",
			doms[i]);
		put_reason("failure", &doms[i]->failed);
		put_reason("deferral", &doms[i]->deferred);
	}
	put_row("total", &t->all);
}

/* --- main --- */

static unsigned long parse_ulong(const char *s, const char *what,
				 unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || *s == '-' || v > max)
		log_fatal(EXIT_PERM, "%s must be a number up to %lu: %s", what,
			  max, s);
	return v;
}

static const char *join(const char *a, const char *b)
{
	struct str s = STR_INIT;
	if (str_copys(&s, a) < 0 || str_appends(&s, b) < 0)
		log_nomem();
	return s.s; /* kept until exit */
}

static const char *default_service_dir(const char *home)
{
	const char *own = join(home, "/service");
	if (is_dir(own))
		return own;
	if (is_dir("/etc/service"))
		return "/etc/service";
	if (is_dir("/service"))
		return "/service";
	return NULL;
}

static const char *default_log_dir(const char *home)
{
	const char *own = join(home, "/log/qmail");
	if (is_dir(own))
		return own;
	if (is_dir("/var/log/qmail"))
		return "/var/log/qmail";
	return NULL;
}

int main(int argc, char **argv)
{
	const char *home = home_dir(), *servicedir = NULL;
	unsigned long window = DAY, max_domains = 0;
	char date[64];
	int opt;

	log_init(argv[0]);
	signal(SIGPIPE, SIG_IGN);
	buf_init(&out, 1, outspace, sizeof outspace, 0);
	opterr = 0; /* our usage line says it */
	while ((opt = getopt(argc, argv, "d:s:t:m:")) != -1) {
		switch (opt) {
		case 'd':
			home = optarg;
			break;
		case 's':
			servicedir = optarg;
			break;
		case 't':
			window = parse_ulong(optarg, "-t", 100UL * 365 * DAY);
			break;
		case 'm':
			max_domains = parse_ulong(optarg, "-m", 1000000);
			break;
		default:
			log_fatal(EXIT_PERM, "%s", USAGE);
		}
	}
	argv += optind;
	if (!servicedir)
		servicedir = default_service_dir(home);

	time_t now = time(NULL);
	struct logs lg = {NULL, 0, ""};
	lg.sl = sendlog_new(window ? ((int64_t)now - (int64_t)window) * 1000
				   : SENDLOG_ALL);
	if (!lg.sl)
		log_nomem();
	/* Logs are named relative to where we were started: read them
	 * before moving into the queue. */
	if (*argv) {
		for (; *argv; argv++)
			read_log_arg(&lg, *argv);
	} else {
		const char *dir = default_log_dir(home);
		if (dir)
			read_log_dir(&lg, dir);
	}

	fmt_date(date, sizeof date, now);
	out_str("qmail-overview: ");
	out_visible(home, strlen(home));
	out_str(", ");
	out_str(date);
	out_str("\n");
	show_services(servicedir);

	struct queue_view q;
	memset(&q, 0, sizeof q);
	const char *queue = join(home, "/queue");
	if (chdir(queue) < 0) {
		char why[TEXT_MAX];
		snprintf(why, sizeof why, "unable to switch to %s: %s", queue,
			 errstr(errno));
		health(FAIL, "queue", why);
	} else {
		scan_queue(&q);
		show_queue(&q, now);
		show_disk();
		show_locks();
	}
	show_log(&lg, lg.files > 0 || optind < argc);
	show_activity(&lg, window, max_domains, now);
	if (buf_flush(&out) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
	sendlog_free(lg.sl);
	return worst == OK ? 0 : worst == WARN ? 1 : 2;
}
