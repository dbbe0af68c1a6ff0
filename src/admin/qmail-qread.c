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
#include "mail/queuefile.h"

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
	char fn[QUEUEFILE_NAME];
	struct stat st;

	queuefile_split(fn, "mess", m->id);
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
	char fn[QUEUEFILE_NAME];
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
	char fn[QUEUEFILE_NAME];
	struct stat st;

	queuefile_split(fn, chan, id);
	if (queuefile_read(fn, data, &st) == 0)
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

	while ((rec = queuefile_record(data, &pos, &len))) {
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
	while ((rec = queuefile_record(data, &pos, &len)))
		if (len > 0 && rec[0] == 'F') {
			m->sender = rec + 1;
			m->senderlen = len - 1;
			return 0;
		}
	return -1;
}

static enum shown show_info(unsigned long id)
{
	char fn[QUEUEFILE_NAME];
	struct str info = STR_INIT, chan[2] = {STR_INIT, STR_INIT};
	struct message m = {.id = id};
	enum shown result = SKIPPED;

	queuefile_split(fn, "info", id);
	if (queuefile_read(fn, &info, &m.st) < 0) {
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

	while ((rec = queuefile_record(todo, &pos, &len)))
		if (len > 0 && rec[0] == 'T') {
			out_str("  rcpt\t");
			out_visible(rec + 1, len - 1);
			out_str("\n");
		}
}

static enum shown show_todo(unsigned long id)
{
	char fn[QUEUEFILE_NAME];
	struct str todo = STR_INIT;
	struct message m = {.id = id, .unprocessed = 1};
	enum shown result = SKIPPED;

	snprintf(fn, sizeof fn, "todo/%lu", id);
	if (queuefile_read(fn, &todo, &m.st) < 0) {
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

static void add_if_id(void *arg, const char *dir, const struct dirent *de)
{
	unsigned long id;

	(void)arg;
	(void)dir;
	if (queuefile_parse_id(de->d_name, &id) == 0)
		add_entry(id);
}

static void scan_dir(const char *dir)
{
	if (queuefile_each(dir, add_if_id, NULL) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to read %s/queue/%s",
			      home_dir(), dir);
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
