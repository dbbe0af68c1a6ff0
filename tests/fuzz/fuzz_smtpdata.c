/*
 * fuzz_smtpdata.c: libFuzzer harness for smtp/data.c (the DATA reader).
 *
 * A reference decoder written here, working on the whole input at once,
 * says what smtp_data_read must do when it reads the same bytes through
 * buffers of many sizes (one byte at a time included): only CRLF "."
 * CRLF ends the message, a LF without CR before it stops at once, a
 * leading dot is dropped, CRLF becomes LF, a bare CR is data. Then:
 * - status, decoded byte count, too_big, hops, eightbit and
 *   header_too_long all agree with the reference;
 * - when nothing was blocked, the sink got exactly the decoded bytes;
 *   otherwise a prefix of them, never more than max when too_big;
 * - what follows the end of the message (pipelined commands) is still
 *   there to read, byte for byte, and nothing after it was eaten.
 * It must never touch a named file (fuzz_input.h).
 *
 * Input: bytes 0-1 the databytes limit (little-endian, 0: none), byte 2
 * the buffer size; the rest is what the client sends after DATA.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_input.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "smtp/data.h"

struct expect {
	enum data_status status;
	size_t consumed; /* wire bytes that belong to the message */
	struct str out;	 /* every decoded byte, those past max included */
	int hops, header_too_long, eightbit;
};

static void add(struct str *s, const void *p, size_t n)
{
	if (str_append(s, p, n) < 0)
		abort();
}

/* The wire, line by line. */
static void ref_decode(const uint8_t *p, size_t n, struct expect *e)
{
	size_t pos = 0;

	for (;;) {
		if (n - pos >= 3 && memcmp(p + pos, ".\r\n", 3) == 0) {
			e->status = DATA_OK;
			e->consumed = pos + 3;
			return;
		}
		if (pos < n && p[pos] == '.')
			pos++; /* dot stuffing */
		const uint8_t *nl = memchr(p + pos, '\n', n - pos);
		if (!nl) {
			/* A CR last is still waiting for its LF: not data. */
			size_t len = n - pos;
			if (len && p[n - 1] == '\r')
				len--;
			add(&e->out, p + pos, len);
			e->status = DATA_EOF;
			e->consumed = n;
			return;
		}
		size_t end = (size_t)(nl - p);
		if (end == pos || p[end - 1] != '\r') {
			add(&e->out, p + pos, end - pos);
			e->status = DATA_BARE_LF;
			e->consumed = end + 1;
			return;
		}
		add(&e->out, p + pos, end - 1 - pos);
		add(&e->out, "\n", 1);
		pos = end + 1;
	}
}

static int starts_with_field(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	return len >= n && strncasecmp(line, name, n) == 0;
}

/* The header of the decoded text: its bounds, and the hop fields. */
static void ref_header(struct expect *e)
{
	const char *s = e->out.s;
	size_t line_start = 0, header_len = 0;

	for (size_t i = 0; i < e->out.len; i++) {
		header_len++;
		if (s[i] != '\n') {
			if (i - line_start + 1 > DATA_HEADER_LINE_MAX)
				e->header_too_long = 1;
		} else if (i == line_start) {
			if (header_len > DATA_HEADER_MAX)
				e->header_too_long = 1;
			return; /* the empty line */
		} else if (!memchr(s + line_start, ':', i - line_start) &&
			   s[line_start] != ' ' && s[line_start] != '\t') {
			/* Neither a field nor a continuation: the body. */
			if (header_len > DATA_HEADER_MAX)
				e->header_too_long = 1;
			return;
		} else {
			size_t len = i - line_start;
			e->hops += starts_with_field(s + line_start, len,
						     "received:") ||
				   starts_with_field(s + line_start, len,
						     "delivered-to:");
			line_start = i + 1;
		}
		if (header_len > DATA_HEADER_MAX)
			e->header_too_long = 1;
	}
}

static void sink_put(void *ctx, const char *p, size_t n)
{
	if (n == 0)
		abort(); /* the reader promises chunks, not empty calls */
	add(ctx, p, n);
}

static void compare(const struct data_result *res, const struct expect *e,
		    const struct str *sunk, unsigned long long max)
{
	int too_big = max && e->out.len > max;

	if (res->status != e->status || res->bytes != e->out.len ||
	    res->too_big != too_big || res->hops != e->hops ||
	    res->eightbit != e->eightbit ||
	    res->header_too_long != e->header_too_long)
		abort();
	if (sunk->len > e->out.len ||
	    (sunk->len && memcmp(sunk->s, e->out.s, sunk->len) != 0))
		abort();
	if (too_big && sunk->len > max)
		abort();
	int whole = e->status == DATA_OK || e->status == DATA_BARE_LF;
	if (whole && !too_big && !e->header_too_long && sunk->len != e->out.len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char space[BUF_SIZE];
	struct expect e = {.out = STR_INIT};
	struct str sunk = STR_INIT, rest = STR_INIT;
	struct smtp_sink sink = {sink_put, &sunk};
	struct data_result res;
	struct buf b;

	if (size < 3)
		return 0;
	unsigned long long max = (unsigned long long)data[0] | data[1] << 8;
	size_t bufsize = fuzz_buf_size(data[2]);
	data += 3;
	size -= 3;

	ref_decode(data, size, &e);
	ref_header(&e);
	for (size_t i = 0; i < e.out.len; i++)
		if ((unsigned char)e.out.s[i] >= 0x80)
			e.eightbit = 1;

	buf_init(&b, fuzz_input_fd(data, size), space, bufsize, 0);
	smtp_data_read(&b, max, &sink, &res);
	compare(&res, &e, &sunk, max);

	/* Pipelined input after the message must be left untouched. */
	if (fuzz_read_rest(&b, &rest) < 0 || rest.len != size - e.consumed ||
	    (rest.len && memcmp(rest.s, data + e.consumed, rest.len) != 0))
		abort();

	str_free(&e.out);
	str_free(&sunk);
	str_free(&rest);
	return 0;
}
