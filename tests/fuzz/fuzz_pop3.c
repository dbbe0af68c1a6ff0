/*
 * fuzz_pop3.c: libFuzzer harness for the POP3 command loop
 * (pop3/pop3sess.c, with pop3cmd.c, pop3box.c and pop3send.c under it).
 *
 * Each input is a Maildir and what a client sends after its login. The
 * messages are written into a Maildir in the harness's temporary
 * directory, one session runs over it exactly as in qmail-pop3d, and
 * then:
 * - the replies are "+OK" or "-ERR" status lines ending in CR LF, one
 *   per complete command line (one for each too long line too), and
 *   nothing else is written;
 * - STAT and "LIST n" give the count and the sizes of the messages
 *   written, less those deleted (DELE, undone by RSET);
 * - the body of RETR and TOP is the message itself with LF as CR LF and
 *   dots doubled, cut after the header and n lines for TOP, ended by a
 *   line holding one dot;
 * - after QUIT exactly the deleted messages are gone, and without QUIT
 *   (the input ended first, or too many errors) every message is still
 *   there: nothing is ever deleted otherwise.
 * The Maildir is removed after every input; nothing else is written.
 *
 * Input: byte 0, bits 0-2: the number of messages (0 to 7), bits 3-7:
 * messages 1 to 5 are delivered to new/ rather than cur/; byte 1, bits
 * 0-2: the input buffer size, bits 3-7: messages 1 to 5 in cur/ carry
 * the S flag. Then the messages, each ended by a NUL byte, and what
 * follows the last NUL is the client's text.
 */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "fuzz_tmpdir.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/str.h"
#include "pop3/pop3sess.h"

#define MSGS_MAX 7

struct box {
	const uint8_t *msg[MSGS_MAX];
	size_t len[MSGS_MAX];
	size_t count;
	int deleted[MSGS_MAX];
	int quit; /* QUIT was answered +OK */
};

/* --- setting up --- */

static void make_dir(const char *base, const char *name, char *path)
{
	fuzz_path(path, base, name);
	if (mkdir(path, 0700) < 0)
		abort();
}

static void write_message(const char *dir, size_t i, int seen, const uint8_t *p,
			  size_t n, int in_new)
{
	char name[64], path[PATH_MAX];

	snprintf(name, sizeof name, "%zu.M%zuP1.fuzz%s", 1000000000 + i, i,
		 in_new ? ""
		 : seen ? ":2,S"
			: ":2,");
	fuzz_path(path, dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || (n && fd_write_all(fd, p, n, 0) < 0) || close(fd) < 0)
		abort();
}

/* Splits the input and writes the Maildir; returns the client's text. */
static const uint8_t *make_maildir(const uint8_t *data, size_t size,
				   const char *md, struct box *b, size_t *rest)
{
	char newdir[PATH_MAX], curdir[PATH_MAX], tmpdir[PATH_MAX];
	const uint8_t *p = data + 2, *end = data + size;

	make_dir(md, "new", newdir);
	make_dir(md, "cur", curdir);
	make_dir(md, "tmp", tmpdir);
	memset(b, 0, sizeof *b);
	for (size_t i = 0; i < (size_t)(data[0] & 7); i++) {
		const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
		size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
		int in_new = i < 5 && (data[0] >> (3 + i) & 1);
		int seen = i < 5 && (data[1] >> (3 + i) & 1);
		write_message(in_new ? newdir : curdir, i, seen, p, n, in_new);
		b->msg[i] = p;
		b->len[i] = n;
		b->count++;
		p = nul ? nul + 1 : end;
	}
	*rest = (size_t)(end - p);
	return p;
}

/* --- reading the replies --- */

struct reader {
	const char *p;
	size_t n, pos;
};

/* The next line, CR LF included; aborts when there is none. */
static const char *next_line(struct reader *r, size_t *len)
{
	const char *s = r->p + r->pos;
	const char *nl = memchr(s, '\n', r->n - r->pos);

	if (!nl || nl == s || nl[-1] != '\r')
		abort();
	*len = (size_t)(nl - s) + 1;
	r->pos += *len;
	return s;
}

static int line_is(const char *s, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(s, want, n) == 0;
}

static int starts(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && memcmp(s, prefix, k) == 0;
}

/* A multi-line body up to ".\r\n", unstuffed into out. */
static void read_body(struct reader *r, struct str *out)
{
	size_t n;

	str_clear(out);
	for (;;) {
		const char *s = next_line(r, &n);
		if (line_is(s, n, ".\r\n"))
			return;
		if (s[0] == '.') {
			s++;
			n--;
		}
		if (str_append(out, s, n) < 0)
			abort();
	}
}

/* What pop3send must send for a message: LF as CR LF unless a CR is
 * there already, a last line ended, and with TOP only the header, its
 * empty line and body_lines lines. */
static void ref_send(const uint8_t *p, size_t n, unsigned long long body_lines,
		     int top, struct str *out)
{
	size_t pos = 0;
	int in_body = 0;
	unsigned long long left = body_lines;

	str_clear(out);
	if (str_append(out, "", 0) < 0)
		abort();
	while (pos < n) {
		if (top && in_body && left == 0)
			break;
		const uint8_t *nl = memchr(p + pos, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - (p + pos)) : n - pos;
		const char *line = (const char *)p + pos;
		int cr = len && line[len - 1] == '\r';
		if (str_append(out, line, len) < 0 ||
		    str_append(out, cr ? "\n" : "\r\n", cr ? 1 : 2) < 0)
			abort();
		if (!in_body) {
			if (len == 0 || (len == 1 && cr))
				in_body = 1;
		} else if (left) {
			left--;
		}
		pos += len + 1;
	}
}

/* --- the client's commands, as far as the checks need them --- */

struct cmd {
	char verb[5];		 /* uppercased keyword, "" if none */
	unsigned nargs;		 /* numbers after it, up to 3 */
	unsigned long long a[3]; /* saturating */
};

static int blank(char c)
{
	return c == ' ' || c == '\t';
}

static void parse_cmd(const char *s, size_t n, struct cmd *c)
{
	size_t i = 0;

	memset(c, 0, sizeof *c);
	if (n && s[n - 1] == '\n')
		n--;
	if (n && s[n - 1] == '\r')
		n--;
	while (i < n && blank(s[i]))
		i++;
	for (size_t k = 0; i < n && !blank(s[i]); i++, k++)
		if (k < 4)
			c->verb[k] =
			    (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32
							      : s[i]);
	while (i < n) {
		while (i < n && blank(s[i]))
			i++;
		if (i == n)
			break;
		unsigned long long v = 0;
		for (; i < n && !blank(s[i]); i++) {
			unsigned d = (unsigned)(s[i] - '0');
			v = v > (~0ULL - d) / 10 ? ~0ULL : v * 10 + d;
		}
		if (c->nargs < 3)
			c->a[c->nargs] = v;
		c->nargs++;
	}
}

static int verb_is(const struct cmd *c, const char *v)
{
	return strcmp(c->verb, v) == 0;
}

static unsigned long long live_count(const struct box *b,
				     unsigned long long *octets)
{
	unsigned long long count = 0;

	*octets = 0;
	for (size_t i = 0; i < b->count; i++)
		if (!b->deleted[i]) {
			count++;
			*octets += b->len[i];
		}
	return count;
}

static void expect_number_line(const char *s, size_t n, const char *fmt,
			       unsigned long long x, unsigned long long y)
{
	char want[128];
	snprintf(want, sizeof want, fmt, x, y);
	if (!line_is(s, n, want))
		abort();
}

/* Check the reply to one command line; false when the session ended
 * without one. */
static int check_reply(struct reader *r, const char *line, size_t len,
		       struct box *b, struct str *body, struct str *want)
{
	struct cmd c;
	size_t n;

	if (r->pos == r->n)
		return 0;
	const char *s = next_line(r, &n);
	if (starts(s, n, "-ERR"))
		return 1;
	if (!starts(s, n, "+OK") || len > POP3_LINE_MAX)
		abort();
	parse_cmd(line, len, &c);
	unsigned long long octets, count = live_count(b, &octets);
	unsigned long long m = c.nargs ? c.a[0] : 0;
	if (c.nargs && (m == 0 || m > b->count || b->deleted[m - 1]))
		abort(); /* +OK for a message that is not there */
	if (verb_is(&c, "STAT")) {
		expect_number_line(s, n, "+OK %llu %llu\r\n", count, octets);
	} else if ((verb_is(&c, "LIST") || verb_is(&c, "UIDL")) && c.nargs) {
		if (verb_is(&c, "LIST"))
			expect_number_line(s, n, "+OK %llu %llu\r\n", m,
					   b->len[m - 1]);
	} else if (verb_is(&c, "LIST") || verb_is(&c, "UIDL") ||
		   verb_is(&c, "CAPA")) {
		read_body(r, body);
	} else if (verb_is(&c, "RETR") || verb_is(&c, "TOP")) {
		int top = verb_is(&c, "TOP");
		read_body(r, body);
		ref_send(b->msg[m - 1], b->len[m - 1], top ? c.a[1] : 0, top,
			 want);
		if (body->len != want->len ||
		    (body->len && memcmp(body->s, want->s, body->len) != 0))
			abort();
	} else if (verb_is(&c, "DELE")) {
		b->deleted[m - 1] = 1;
	} else if (verb_is(&c, "RSET")) {
		memset(b->deleted, 0, sizeof b->deleted);
	} else if (verb_is(&c, "QUIT")) {
		b->quit = 1;
	}
	return 1;
}

/* Every reply, in order, for the command lines of the client's text. */
static void check_replies(const struct str *out, const uint8_t *in,
			  size_t inlen, struct box *b)
{
	struct reader r = {out->s, out->len, 0};
	struct str body = STR_INIT, want = STR_INIT;
	size_t pos = 0, n;

	const char *s = next_line(&r, &n);
	if (!line_is(s, n, "+OK\r\n"))
		abort();
	while (pos < inlen && !b->quit) {
		const uint8_t *nl = memchr(in + pos, '\n', inlen - pos);
		if (!nl)
			break; /* a last line without LF is never run */
		size_t len = (size_t)(nl - (in + pos)) + 1;
		if (!check_reply(&r, (const char *)in + pos, len, b, &body,
				 &want))
			break;
		pos += len;
	}
	if (r.pos != r.n)
		abort(); /* more than one reply per command */
	str_free(&body);
	str_free(&want);
}

/* --- the Maildir afterwards --- */

static size_t count_entries(const char *md, const char *sub)
{
	char path[PATH_MAX];
	size_t n = 0;
	struct dirent *e;

	fuzz_path(path, md, sub);
	DIR *d = opendir(path);
	if (!d)
		abort();
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void check_maildir(const char *md, const struct box *b, int code)
{
	size_t left = b->count;

	if (b->quit) {
		if (code != POP3_EXIT_QUIT)
			abort();
		for (size_t i = 0; i < b->count; i++)
			left -= b->deleted[i] != 0;
	} else if (code != POP3_EXIT_DROPPED) {
		abort();
	}
	if (count_entries(md, "new") != 0 || count_entries(md, "cur") != left)
		abort();
}

/* --- the session --- */

static void read_all(int fd, struct str *out)
{
	char chunk[4096];
	ssize_t r;

	str_clear(out);
	if (lseek(fd, 0, SEEK_SET) < 0)
		abort();
	while ((r = read(fd, chunk, sizeof chunk)) > 0)
		if (str_append(out, chunk, (size_t)r) < 0)
			abort();
	if (r < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int outfd = -1, nullfd = -1;
	static char inspace[BUF_SIZE], outspace[BUF_SIZE];
	char md[PATH_MAX];
	struct buf in, out;
	struct box b;
	struct pop3_session s;
	struct str replies = STR_INIT;
	size_t inlen;

	if (size < 2)
		return 0;
	if (outfd < 0) {
		outfd = fuzz_input_file();
		nullfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		log_set_fd(nullfd); /* the session's warnings are expected */
	}
	make_dir(fuzz_tmpdir(), "Maildir", md);
	const uint8_t *text = make_maildir(data, size, md, &b, &inlen);
	if (ftruncate(outfd, 0) < 0 || lseek(outfd, 0, SEEK_SET) < 0)
		abort();
	buf_init(&in, fuzz_input_fd(text, inlen), inspace,
		 fuzz_buf_size(data[1]), 0);
	buf_init(&out, outfd, outspace, sizeof outspace, 0);

	pop3_session_init(&s, &in, &out);
	int code = pop3_session_open(&s, md);
	if (code != 0)
		abort(); /* the Maildir is there and readable */
	code = pop3_session_serve(&s);
	pop3_session_free(&s);

	read_all(outfd, &replies);
	check_replies(&replies, text, inlen, &b);
	check_maildir(md, &b, code);
	str_free(&replies);
	fuzz_tmpdir_clean();
	return 0;
}
