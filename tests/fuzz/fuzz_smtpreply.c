/*
 * fuzz_smtpreply.c: libFuzzer harness for the replies qmail-rsmtp reads
 * from a remote server: reply_read and reply_caps (smtp/reply.c).
 *
 * The input is what a server sends; replies are read one after another,
 * through buffers of 1 byte to 8 KB, until one is not REPLY_OK. A
 * reference reader written here from RFC 5321 4.2 and reply.h, working
 * on the whole input at once, says for each:
 * - the status (a line past REPLY_LINE_MAX, more than REPLY_LINES_MAX
 *   lines, a code outside 200-599, mixed codes and a bad fourth byte are
 *   protocol errors; input ending before a last line is EOF);
 * - the code, the text (lines joined by '/', bytes outside printable
 *   ASCII as '?') and the lines (NUL-separated, a NUL inside one as '?');
 * - that exactly the reply's bytes were taken: the next byte unread is
 *   the one after its last LF;
 * - the EHLO keywords reply_caps reads from it (whole words, any case;
 *   AUTH after ' ' or '='; SIZE's single all-digit parameter).
 * Nothing is written anywhere but one anonymous file (fuzz_input.h).
 *
 * Input: byte 0 selects the buffer size; the rest is the server's text.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "smtp/reply.h"

struct ref {
	enum reply_status st;
	int code;
	struct str text, lines;
};

static void add(struct str *s, const void *p, size_t n)
{
	if (str_append(s, p, n) < 0)
		abort();
}

static int is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* One reply from p[*pos..n); *pos moves past it when it is whole. */
static void ref_read(const uint8_t *p, size_t n, size_t *pos, struct ref *r)
{
	r->code = 0;
	str_clear(&r->text);
	str_clear(&r->lines);
	for (int k = 0;; k++) {
		if (k == REPLY_LINES_MAX) {
			r->st = REPLY_PROTOCOL;
			return;
		}
		size_t avail = n - *pos;
		size_t look = avail < REPLY_LINE_MAX ? avail : REPLY_LINE_MAX;
		const uint8_t *s = p + *pos;
		const uint8_t *nl = memchr(s, '\n', look);
		if (!nl) {
			r->st = avail >= REPLY_LINE_MAX ? REPLY_PROTOCOL
							: REPLY_EOF;
			return;
		}
		size_t len = (size_t)(nl - s);
		*pos += len + 1;
		if (len && s[len - 1] == '\r')
			len--;
		if (len < 3 || !is_digit(s[0]) || !is_digit(s[1]) ||
		    !is_digit(s[2]) || s[0] < '2' || s[0] > '5' ||
		    (len > 3 && s[3] != ' ' && s[3] != '-')) {
			r->st = REPLY_PROTOCOL;
			return;
		}
		int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + s[2] - '0';
		if (k && code != r->code) {
			r->st = REPLY_PROTOCOL;
			return;
		}
		r->code = code;
		if (k)
			add(&r->text, "/", 1);
		for (size_t i = 0; i < len; i++) {
			char c = s[i] < 32 || s[i] > 126 ? '?' : (char)s[i];
			char l = s[i] == 0 ? '?' : (char)s[i];
			add(&r->text, &c, 1);
			add(&r->lines, &l, 1);
		}
		add(&r->lines, "", 1);
		if (len == 3 || s[3] == ' ') {
			r->st = REPLY_OK;
			return;
		}
	}
}

/* --- EHLO keywords --- */

static int blank_end(const char *s, size_t i)
{
	return s[i] == ' ' || s[i] == 0;
}

/* The word of s starting at i equals w (case-insensitively). */
static int word_at(const char *s, size_t i, const char *w)
{
	size_t n = strlen(w);
	return strncasecmp(s + i, w, n) == 0 && blank_end(s, i + n);
}

static void ref_auth(const char *s, size_t i, struct smtp_caps *c)
{
	while (s[i]) {
		while (s[i] == ' ')
			i++;
		if (word_at(s, i, "PLAIN"))
			c->auth_plain = 1;
		if (word_at(s, i, "LOGIN"))
			c->auth_login = 1;
		while (s[i] && s[i] != ' ')
			i++;
	}
}

static unsigned long long ref_size(const char *s, size_t i)
{
	unsigned long long v = 0;
	int digits = 0;

	while (s[i] == ' ')
		i++;
	for (; is_digit((uint8_t)s[i]); i++, digits++) {
		unsigned d = (unsigned)(s[i] - '0');
		v = v > (~0ULL - d) / 10 ? ~0ULL : v * 10 + d;
	}
	while (s[i] == ' ')
		i++;
	return digits && s[i] == 0 ? v : 0;
}

static void ref_keyword(const char *kw, struct smtp_caps *c)
{
	if (word_at(kw, 0, "PIPELINING"))
		c->pipelining = 1;
	else if (word_at(kw, 0, "8BITMIME"))
		c->eightbitmime = 1;
	else if (word_at(kw, 0, "SMTPUTF8"))
		c->smtputf8 = 1;
	else if (word_at(kw, 0, "STARTTLS"))
		c->starttls = 1;
	else if (strncasecmp(kw, "AUTH", 4) == 0 &&
		 (kw[4] == ' ' || kw[4] == '='))
		ref_auth(kw, 5, c);
	else if (word_at(kw, 0, "SIZE")) {
		c->has_size = 1;
		c->size = ref_size(kw, 4);
	}
}

static void check_caps(const struct smtp_reply *r)
{
	struct smtp_caps want, have;
	size_t pos = 0;

	memset(&want, 0, sizeof want);
	want.esmtp = 1;
	for (int k = 0; pos < r->lines.len; k++) {
		const char *line = r->lines.s + pos;
		pos += strlen(line) + 1;
		if (k && strlen(line) > 4)
			ref_keyword(line + 4, &want);
	}
	memset(&have, 0xa5, sizeof have);
	reply_caps(r, &have);
	if (have.esmtp != want.esmtp || have.pipelining != want.pipelining ||
	    have.eightbitmime != want.eightbitmime ||
	    have.smtputf8 != want.smtputf8 || have.starttls != want.starttls ||
	    have.auth_plain != want.auth_plain ||
	    have.auth_login != want.auth_login ||
	    have.has_size != want.has_size || have.size != want.size)
		abort();
}

static int same(const struct str *a, const struct str *b)
{
	return a->len == b->len && (!a->len || !memcmp(a->s, b->s, a->len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char space[BUF_SIZE];
	struct buf in;
	struct smtp_reply r = {0, STR_INIT, STR_INIT};
	struct ref want = {REPLY_OK, 0, STR_INIT, STR_INIT};
	size_t pos = 0;

	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	int fd = fuzz_input_fd(p, n);
	buf_init(&in, fd, space, fuzz_buf_size(data[0]), 0);
	do {
		ref_read(p, n, &pos, &want);
		enum reply_status st = reply_read(&in, &r);
		if (st != want.st)
			abort();
		if (st != REPLY_OK)
			break;
		if (r.code != want.code || !same(&r.text, &want.text) ||
		    !same(&r.lines, &want.lines))
			abort();
		/* Exactly this reply was taken: the rest is still unread. */
		off_t at = lseek(fd, 0, SEEK_CUR);
		if (at < 0 || (size_t)at - buf_avail(&in) != pos)
			abort();
		check_caps(&r);
	} while (pos < n);
	reply_free(&r);
	str_free(&want.text);
	str_free(&want.lines);
	return 0;
}
