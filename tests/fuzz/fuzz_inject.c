/*
 * fuzz_inject.c: libFuzzer harness for header parsing and rewriting, the
 * code qmail-inject and qmail-ofmipd share: mail/header.c (splitting the
 * header), mail/rewrite.c (host qualification) and mail/inject.c (the
 * fixed header and the envelope).
 *
 * What must hold for any message, settings and envelope choices:
 * - header_read keeps every byte: the fields, then the line that ended
 *   the header, then what is still unread, are the input exactly; each
 *   field starts with a name of printable bytes other than ':', blanks
 *   and a colon, its other lines with a blank; every line but the last
 *   of the input ends in LF. Read again through a buffer of another
 *   size (1 byte to 8 KB), the result is the same;
 * - rewrite_host agrees with a reference of rewriting(5) written here;
 * - inject_fix gives the same result twice; its header is a header (fed
 *   back line by line, every line is taken as a field or a continuation,
 *   and it ends in LF); the envelope sender and every recipient are at
 *   most INJECT_ADDR_MAX bytes and hold no CR, LF or NUL, since each
 *   becomes a header line (Delivered-To, Return-Path) downstream.
 * Nothing is written anywhere but one anonymous file (fuzz_input.h).
 *
 * Input: byte 0, bits 0-1: the recipient mode, bits 2-7: the
 * QMAILINJECT letters; byte 1, bits 0-2: the buffer size, bit 3: the
 * rewriting rules come from the input (else the defaults), bit 4: a
 * recipient is given, bit 5: a sender is given, bit 6: a mailing list
 * for Mail-Followup-To. Then four NUL-ended parts: the rules (one per
 * line), the sender, the recipient and the From name, and the message.
 */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_input.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "mail/header.h"
#include "mail/inject.h"
#include "mail/rewrite.h"

/* --- the header --- */

static int ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static void check_field(const struct header *h, size_t i)
{
	const struct header_field *f = &h->field[i];
	const char *s = h->text.s + f->off;
	size_t k = 0;

	if (f->namelen == 0 || f->valoff > f->len)
		abort();
	for (; k < f->namelen; k++)
		if (!ftext((unsigned char)s[k]))
			abort();
	while (s[k] == ' ' || s[k] == '\t')
		k++;
	if (s[k] != ':' || k + 1 != f->valoff)
		abort();
	/* Continuation lines start with a blank. */
	for (k = 0; k + 1 < f->len; k++)
		if (s[k] == '\n' && s[k + 1] != ' ' && s[k + 1] != '\t')
			abort();
}

static void check_header(const struct header *h, const uint8_t *p, size_t n,
			 struct buf *in, int fd)
{
	size_t off = 0;

	for (size_t i = 0; i < h->nfields; i++) {
		if (h->field[i].off != off)
			abort();
		check_field(h, i);
		off += h->field[i].len;
	}
	if (off != h->text.len || h->text.len > n ||
	    (h->text.len && memcmp(h->text.s, p, h->text.len) != 0))
		abort();
	/* Every line ends in LF, but the input's last. */
	if (h->text.len && h->text.s[h->text.len - 1] != '\n' &&
	    (h->end != HEADER_EOF || h->text.len != n))
		abort();
	if (h->rest.len > n - h->text.len ||
	    (h->rest.len &&
	     memcmp(h->rest.s, p + h->text.len, h->rest.len) != 0))
		abort();
	switch (h->end) {
	case HEADER_BLANK:
		if (!(h->rest.len == 1 && h->rest.s[0] == '\n') &&
		    !(h->rest.len == 2 && memcmp(h->rest.s, "\r\n", 2) == 0))
			abort();
		break;
	case HEADER_BODYLINE:
		/* Neither a field nor, after one, a continuation. */
		if (!h->rest.len ||
		    header_is_field_start(h->rest.s, h->rest.len) ||
		    ((h->rest.s[0] == ' ' || h->rest.s[0] == '\t') &&
		     h->nfields > 0))
			abort();
		break;
	case HEADER_EOF:
		if (h->rest.len)
			abort();
		break;
	case HEADER_OPEN:
		abort();
	}
	/* What is left unread is the rest of the input. */
	off_t at = lseek(fd, 0, SEEK_CUR);
	if (at < 0 || (size_t)at - buf_avail(in) != h->text.len + h->rest.len)
		abort();
}

static int same_str(const struct str *a, const struct str *b)
{
	return a->len == b->len && (!a->len || !memcmp(a->s, b->s, a->len));
}

static int same_header(const struct header *a, const struct header *b)
{
	if (a->nfields != b->nfields || a->end != b->end ||
	    a->crlf != b->crlf || !same_str(&a->text, &b->text) ||
	    !same_str(&a->rest, &b->rest))
		return 0;
	for (size_t i = 0; i < a->nfields; i++)
		if (memcmp(&a->field[i], &b->field[i], sizeof a->field[i]))
			return 0;
	return 1;
}

/* Read the header of p[0..n) with the given buffer size; 0 or -1. */
static int read_header(const uint8_t *p, size_t n, size_t bufsize,
		       struct header *h, int check)
{
	static char space[BUF_SIZE];
	struct buf in;
	int fd = fuzz_input_fd(p, n);

	header_init(h);
	buf_init(&in, fd, space, bufsize, 0);
	int r = header_read(h, &in);
	if (r == 0 && check)
		check_header(h, p, n, &in, fd);
	if (r < 0 && errno != EMSGSIZE)
		abort();
	return r;
}

/* --- rewriting --- */

static int ends_ci(const struct str *h, const char *post, size_t plen)
{
	return plen <= h->len && (plen == 0 || strncasecmp(h->s + h->len - plen,
							   post, plen) == 0);
}

static void ref_rewrite(const struct str *rules, const char *host, size_t n,
			struct str *out)
{
	struct str tmp = STR_INIT;
	size_t pos = 0;

	if (str_copy(out, host, n) < 0)
		abort();
	while (pos < rules->len) {
		const char *r = rules->s + pos;
		pos += strlen(r) + 1;
		const char *colon = strchr(r, ':');
		const char *post = r + 1, *repl = colon + 1;
		size_t plen = (size_t)(colon - post), pre = out->len - plen;
		int hit;
		switch (r[0]) {
		case '=':
			hit = out->len == plen &&
			      (!plen || !strncasecmp(out->s, post, plen));
			pre = 0;
			break;
		case '?':
			hit = ends_ci(out, post, plen) &&
			      !memchr(out->s, '.', pre) &&
			      !memchr(out->s, '[', pre) &&
			      !memchr(out->s, ']', pre);
			break;
		default:
			hit = ends_ci(out, post, plen);
			if (r[0] == '-')
				pre = 0;
			break;
		}
		if (!hit)
			continue;
		if (str_copy(&tmp, out->s ? out->s : "", pre) < 0 ||
		    str_appends(&tmp, repl) < 0 || str_copystr(out, &tmp) < 0)
			abort();
	}
	str_free(&tmp);
}

static void check_rewrite(const struct rewrite *rw, const char *host, size_t n)
{
	struct str have = STR_INIT, want = STR_INIT;

	if (rewrite_host(rw, host, n, &have) < 0)
		abort();
	ref_rewrite(&rw->rules, host, n, &want);
	if (!same_str(&have, &want))
		abort();
	str_free(&have);
	str_free(&want);
}

/* The rules: one per line of text, the bad ones skipped (EINVAL). */
static void load_rules(struct rewrite *rw, const char *p, size_t n)
{
	size_t pos = 0;

	while (pos < n) {
		const char *nl = memchr(p + pos, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - (p + pos)) : n - pos;
		if (rewrite_add(rw, p + pos, len) < 0 && errno != EINVAL)
			abort();
		pos += len + 1;
	}
}

/* --- the fixed header and the envelope --- */

static int clean_addr(const char *s, size_t n)
{
	return n <= INJECT_ADDR_MAX && !memchr(s, 0, n) &&
	       !memchr(s, '\r', n) && !memchr(s, '\n', n);
}

static int same_out(const struct inject_out *a, const struct inject_out *b)
{
	return same_str(&a->header, &b->header) &&
	       same_str(&a->sender, &b->sender) &&
	       same_str(&a->rcpts, &b->rcpts) && a->nrcpts == b->nrcpts;
}

static void check_out(const struct inject_out *out)
{
	const struct str *hd = &out->header;
	struct header again;
	size_t pos = 0, count = 0;

	if (!clean_addr(out->sender.s, out->sender.len))
		abort();
	while (pos < out->rcpts.len) {
		const char *r = out->rcpts.s + pos;
		size_t len = strlen(r);
		if (!clean_addr(r, len))
			abort();
		pos += len + 1;
		count++;
	}
	if (count != out->nrcpts || pos != out->rcpts.len)
		abort();
	if (hd->len && hd->s[hd->len - 1] != '\n')
		abort();
	header_init(&again);
	for (pos = 0; pos < hd->len;) {
		const char *nl = memchr(hd->s + pos, '\n', hd->len - pos);
		size_t len = (size_t)(nl - (hd->s + pos)) + 1;
		if (header_line(&again, hd->s + pos, len) != 1)
			abort();
		pos += len;
	}
	header_free(&again);
}

static void check_inject(const struct header *h, const struct inject_opts *o)
{
	struct inject_out out, out2;

	inject_out_init(&out);
	inject_out_init(&out2);
	int r = inject_fix(h, o, &out);
	int e = errno;
	if (inject_fix(h, o, &out2) != r)
		abort();
	if (r == 0) {
		if (!same_out(&out, &out2))
			abort();
		check_out(&out);
	} else if (e != EINVAL && e != ENAMETOOLONG) {
		abort();
	}
	inject_out_free(&out);
	inject_out_free(&out2);
}

/* The next NUL-ended part of the input; NULL when there is none. */
static const char *part(const uint8_t **p, const uint8_t *end, size_t *n)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));

	if (!nul)
		return NULL;
	const char *s = (const char *)*p;
	*n = (size_t)(nul - *p);
	*p = nul + 1;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum inject_rcpt_mode modes[4] = {
	    INJECT_RCPT_DEFAULT, INJECT_RCPT_GIVEN, INJECT_RCPT_HEADER,
	    INJECT_RCPT_BOTH};
	struct rewrite rw = REWRITE_INIT;
	struct str mft = STR_INIT;
	struct header h, h1;
	struct inject_opts o;
	const uint8_t *p = data + 2, *end = data + size;
	size_t rlen, slen, tlen, nlen;

	if (size < 2)
		return 0;
	const char *rules = part(&p, end, &rlen);
	const char *sender = rules ? part(&p, end, &slen) : NULL;
	const char *rcpt = sender ? part(&p, end, &tlen) : NULL;
	const char *name = rcpt ? part(&p, end, &nlen) : NULL;
	if (!name)
		return 0;
	size_t msglen = (size_t)(end - p);

	if (data[1] & 8)
		load_rules(&rw, rules, rlen);
	else if (rewrite_defaults(&rw, "host", "plus.example", "example.com"))
		abort();
	check_rewrite(&rw, rules, rlen);
	check_rewrite(&rw, name, nlen);

	int r = read_header(p, msglen, fuzz_buf_size(data[1]), &h, 1);
	if (read_header(p, msglen, fuzz_buf_size(data[1] + 1), &h1, 0) != r ||
	    (r == 0 && !same_header(&h, &h1)))
		abort();
	header_free(&h1);
	if (r == 0) {
		memset(&o, 0, sizeof o);
		o.rw = &rw;
		o.idhost = "id.example";
		o.user = "joe";
		o.host = "host";
		o.name = name;
		o.suser = "joe";
		o.shost = "host";
		o.sender = data[1] & 32 ? sender : NULL;
		o.rcpts = &rcpt;
		o.nrcpts = data[1] & 16 ? 1 : 0;
		o.mode = modes[data[0] & 3];
		o.flags = data[0] >> 2;
		if (data[1] & 64) {
			if (str_appends(&mft, "list@example.com") < 0 ||
			    str_append0(&mft) < 0)
				abort();
			o.mft = &mft;
		}
		o.now = 1000000000;
		o.pid = 42;
		o.seq = 7;
		check_inject(&h, &o);
	}
	header_free(&h);
	rewrite_free(&rw);
	str_free(&mft);
	return 0;
}
