/*
 * qmail-qread: list the messages in the queue and their recipients.
 *
 * For each message: its date (the mtime of its info file), id, size and
 * sender, then one line per recipient, local or remote, "done" for those
 * already delivered. Messages still in todo/ are listed from their
 * envelope and marked as not yet processed. qmail-send may be working
 * while this runs, so a file that vanishes means its work is finished,
 * never an error. It only reads: it must never change a queue file, and
 * never print a byte of an address raw (addresses are untrusted input).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auto.h"
#include "lib/buf.h"
#include "lib/checked.h"
#include "lib/date822.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"

/* qmail-send refuses envelope files larger than this; so do we. */
#define ENVELOPE_MAX ((size_t)64 << 20)
#define FN_MAX 64

static struct buf out;
static char outspace[BUF_SIZE];
static int trouble; /* something could not be read: exit 111 at the end */

/* --- output --- */

static void out_put(const void *p, size_t n)
{
	if (buf_put(&out, p, n) < 0)
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

/* --- reading queue files --- */

static void warn_file(const char *fn)
{
	log_warn_sys("unable to read %s/queue/%s", home_dir(), fn);
	trouble = 1;
}

static void warn_format(const char *fn, const char *why)
{
	log_warn("trouble with %s/queue/%s: %s", home_dir(), fn, why);
	trouble = 1;
}

static int read_fd(int fd, struct str *data)
{
	char chunk[BUF_SIZE];

	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		if (data->len + (size_t)r > ENVELOPE_MAX) {
			errno = EFBIG;
			return -1;
		}
		if (str_append(data, chunk, (size_t)r) < 0)
			return -1;
	}
}

/* The whole file into data, its status into st. Returns 0, or -1 with
 * errno (ENOENT when the file is gone). */
static int read_file(const char *fn, struct str *data, struct stat *st)
{
	int fd = open(fn, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int r = -1;

	str_clear(data);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0)
		goto out;
	if (!S_ISREG(st->st_mode)) {
		errno = EINVAL;
		goto out;
	}
	r = read_fd(fd, data);
out:;
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

static void fn_split(char *fn, const char *dir, unsigned long id)
{
	snprintf(fn, FN_MAX, "%s/%lu/%lu", dir, id % AUTO_SPLIT, id);
}

/* The next NUL-ended record at *pos, or NULL at the end. A torn last
 * record (no NUL yet) is not a record. */
static const char *next_record(const struct str *data, size_t *pos, size_t *len)
{
	if (*pos >= data->len)
		return NULL;
	const char *rec = data->s + *pos;
	const char *end = memchr(rec, 0, data->len - *pos);
	if (!end)
		return NULL;
	*len = (size_t)(end - rec);
	*pos += *len + 1;
	return rec;
}

/* --- one message --- */

enum shown { SHOWN = 0, GONE = 1, SKIPPED = -1 };

struct message {
	unsigned long id;
	struct stat st; /* of the info or todo file: the date */
	unsigned long long size;
	const char *sender;
	size_t senderlen;
	int bouncing, unprocessed;
};

static void put_header(const struct message *m)
{
	char date[DATE822_LEN];

	date822_fmt(date, m->st.st_mtime);
	out_str(date);
	out_str("  #");
	out_num(m->id);
	out_str("  ");
	out_num(m->size);
	out_str("  <");
	out_visible(m->sender, m->senderlen);
	out_str(">");
	if (m->bouncing)
		out_str("  bouncing");
	if (m->unprocessed)
		out_str("  not yet processed");
	out_str("\n");
}

/* The size of the message file. qmail-send removes info/ (or todo/)
 * before the message file, so a message file missing while `owner` is
 * still there is damage, and missing after it is a finished message.
 * Returns 0, GONE, or -1 after a warning. */
static int message_size(struct message *m, const char *owner)
{
	char fn[FN_MAX];
	struct stat st;

	fn_split(fn, "mess", m->id);
	if (stat(fn, &st) == 0) {
		m->size = (unsigned long long)st.st_size;
		return 0;
	}
	int saved = errno;
	if (saved == ENOENT && access(owner, F_OK) < 0 && errno == ENOENT)
		return GONE;
	errno = saved;
	warn_file(fn);
	return -1;
}

static void check_bounce(struct message *m)
{
	char fn[FN_MAX];
	struct stat st;

	snprintf(fn, sizeof fn, "bounce/%lu", m->id);
	if (stat(fn, &st) == 0)
		m->bouncing = 1;
	else if (errno != ENOENT)
		warn_file(fn);
}

/* Reads local/ or remote/ for the message. A missing file means every
 * recipient of that channel is done. Returns 0, or -1 after a warning. */
static int read_channel(const char *chan, unsigned long id, struct str *data)
{
	char fn[FN_MAX];
	struct stat st;

	fn_split(fn, chan, id);
	if (read_file(fn, data, &st) == 0)
		return 0;
	str_clear(data);
	if (errno == ENOENT)
		return 0;
	warn_file(fn);
	return -1;
}

static void put_channel(const char *chan, const struct str *data)
{
	size_t pos = 0, len;
	const char *rec;

	while ((rec = next_record(data, &pos, &len))) {
		if (len == 0 || (rec[0] != 'T' && rec[0] != 'D'))
			continue; /* not a recipient: qmail-send skips it too */
		out_str(rec[0] == 'D' ? "  done\t" : "  ");
		out_str(chan);
		out_str("\t");
		out_visible(rec + 1, len - 1);
		out_str("\n");
	}
}

/* The sender: the first F record. info/ holds "F<sender>\0"; todo/ holds
 * u<uid>\0 p<pid>\0 F<sender>\0 T<rcpt>\0... Both are written whole before
 * qmail-send or qmail-qread may rely on them (todo/ is a link made once
 * the envelope is complete), so anything else is damage. */
static int parse_sender(const struct str *data, struct message *m)
{
	size_t pos = 0, len;
	const char *rec;

	if (data->len == 0 || data->s[data->len - 1] != 0)
		return -1;
	while ((rec = next_record(data, &pos, &len)))
		if (len > 0 && rec[0] == 'F') {
			m->sender = rec + 1;
			m->senderlen = len - 1;
			return 0;
		}
	return -1;
}

static enum shown show_info(unsigned long id)
{
	char fn[FN_MAX];
	struct str info = STR_INIT, chan[2] = {STR_INIT, STR_INIT};
	struct message m = {.id = id};
	enum shown result = SKIPPED;

	fn_split(fn, "info", id);
	if (read_file(fn, &info, &m.st) < 0) {
		if (errno == ENOENT) {
			result = GONE; /* delivered meanwhile */
			goto out;
		}
		warn_file(fn);
		goto out;
	}
	if (parse_sender(&info, &m) < 0) {
		warn_format(fn, "not an info file");
		goto out;
	}
	int r = message_size(&m, fn);
	if (r != 0) {
		result = r == GONE ? GONE : SKIPPED;
		goto out;
	}
	if (read_channel("local", id, &chan[0]) < 0 ||
	    read_channel("remote", id, &chan[1]) < 0)
		goto out;
	check_bounce(&m);
	put_header(&m);
	put_channel("local", &chan[0]);
	put_channel("remote", &chan[1]);
	result = SHOWN;
out:
	str_free(&info);
	str_free(&chan[0]);
	str_free(&chan[1]);
	return result;
}

static void put_todo_recipients(const struct str *todo)
{
	size_t pos = 0, len;
	const char *rec;

	while ((rec = next_record(todo, &pos, &len)))
		if (len > 0 && rec[0] == 'T') {
			out_str("  rcpt\t");
			out_visible(rec + 1, len - 1);
			out_str("\n");
		}
}

static enum shown show_todo(unsigned long id)
{
	char fn[FN_MAX];
	struct str todo = STR_INIT;
	struct message m = {.id = id, .unprocessed = 1};
	enum shown result = SKIPPED;

	snprintf(fn, sizeof fn, "todo/%lu", id);
	if (read_file(fn, &todo, &m.st) < 0) {
		if (errno == ENOENT)
			result = GONE; /* processed meanwhile */
		else
			warn_file(fn);
		goto out;
	}
	if (parse_sender(&todo, &m) < 0) {
		warn_format(fn, "not an envelope");
		goto out;
	}
	int r = message_size(&m, fn);
	if (r != 0) {
		result = r == GONE ? GONE : SKIPPED;
		goto out;
	}
	put_header(&m);
	put_todo_recipients(&todo);
	result = SHOWN;
out:
	str_free(&todo);
	return result;
}

/* qmail-send removes todo/<id> only once info/ and the channel files are
 * complete, so while todo exists the envelope there is the one to show,
 * even when the id was found in info/ (which may be half-written). Once
 * todo has gone, info/ has taken over, or the message is done. */
static void show(unsigned long id)
{
	if (show_todo(id) != GONE)
		return;
	show_info(id);
}

/* --- finding the messages --- */

static unsigned long *entries;
static size_t nentries, capentries;

static void add_entry(unsigned long id)
{
	if (nentries == capentries) {
		size_t cap, bytes;
		if (size_mul(capentries ? capentries : 512, 2, &cap) < 0 ||
		    size_mul(cap, sizeof *entries, &bytes) < 0)
			log_nomem();
		unsigned long *e = realloc(entries, bytes);
		if (!e)
			log_nomem();
		entries = e;
		capentries = cap;
	}
	entries[nentries++] = id;
}

static int parse_id(const char *s, unsigned long *id)
{
	unsigned long n = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned long digit = (unsigned long)(*s - '0');
		if (n > (~0UL - digit) / 10)
			return -1;
		n = n * 10 + digit;
	}
	*id = n;
	return 0;
}

static void scan_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned long id;

	if (!d)
		log_fatal_sys(EXIT_TEMP, "unable to open %s/queue/%s",
			      home_dir(), dir);
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (parse_id(de->d_name, &id) == 0)
			add_entry(id);
	}
	if (errno)
		log_fatal_sys(EXIT_TEMP, "unable to read %s/queue/%s",
			      home_dir(), dir);
	closedir(d);
}

static int by_id(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a,
		      y = *(const unsigned long *)b;
	return x < y ? -1 : x > y;
}

/* todo/ is read before info/: a message moving from one to the other
 * meanwhile is then seen in todo/, in info/, or both, never in neither. */
static void scan_queue(void)
{
	char dir[32];

	scan_dir("todo");
	for (unsigned long i = 0; i < AUTO_SPLIT; i++) {
		snprintf(dir, sizeof dir, "info/%lu", i);
		scan_dir(dir);
	}
	if (nentries)
		qsort(entries, nentries, sizeof *entries, by_id);
}

int main(int argc, char **argv)
{
	(void)argc;
	log_init(argv[0]);
	buf_init(&out, 1, outspace, sizeof outspace, 0);
	home_chdir();
	if (chdir("queue") < 0)
		log_fatal_sys(EXIT_TEMP, "unable to switch to %s/queue",
			      home_dir());
	scan_queue();
	for (size_t i = 0; i < nentries; i++) {
		/* A message in both todo/ and info/ is listed twice. */
		if (i > 0 && entries[i] == entries[i - 1])
			continue;
		show(entries[i]);
	}
	if (buf_flush(&out) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
	free(entries);
	return trouble ? EXIT_TEMP : 0;
}
