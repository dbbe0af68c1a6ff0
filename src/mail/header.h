/*
 * header.h: splitting a message header into fields (RFC 5322).
 *
 * A field is its first line plus the continuation lines that follow it
 * (lines starting with a space or a tab). The bytes are kept exactly as
 * they came, line ends (LF or CR LF) included, so a field that nobody
 * changes goes out unchanged. The header ends at the first empty line,
 * at the first line that is neither a field nor a continuation (that
 * line then starts the body), or at the end of the input.
 *
 * Bounds: no physical line may exceed HEADER_LINE_MAX bytes and the
 * whole header may not exceed HEADER_MAX bytes; past either the input
 * is refused (EMSGSIZE), never truncated. This module never reads the
 * body and never prints anything.
 */
#ifndef QM_HEADER_H
#define QM_HEADER_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/str.h"

#define HEADER_LINE_MAX ((size_t)64 * 1024)
#define HEADER_MAX ((size_t)1024 * 1024)

struct header_field {
	size_t off;	/* first byte of the field in header.text */
	size_t len;	/* bytes of the field, continuations included */
	size_t namelen; /* the name, without the blanks and the colon */
	size_t valoff;	/* the value starts this far from off (past ':') */
};

/* Why the header ended. */
enum header_end {
	HEADER_OPEN,	 /* not ended yet */
	HEADER_EOF,	 /* the input ended inside the header: no body */
	HEADER_BLANK,	 /* an empty line: it is in rest */
	HEADER_BODYLINE, /* a line that is not a field: it is in rest and
			    starts the body */
};

struct header {
	struct str text; /* every field, back to back */
	struct header_field *field;
	size_t nfields;
	size_t cap;
	int crlf; /* the first line ended in CR LF */
	enum header_end end;
	struct str rest; /* the line that ended the header, if any */
};

void header_init(struct header *h);
void header_free(struct header *h);

/* Feeds one physical line, line end included (the last line of the
 * input may lack one). Returns 1 when the line belongs to the header,
 * 0 when it ended the header (see h->end and h->rest; later calls keep
 * returning 0 and take nothing), -1 on error: EMSGSIZE when the line or
 * the header is too long, ENOMEM, EOVERFLOW. */
int header_line(struct header *h, const char *line, size_t len);
/* The input ended: an open header ends with HEADER_EOF. */
void header_eof(struct header *h);
/* Reads the header from in, leaving the body unread in the buffer.
 * Returns 0, or -1 with errno (EMSGSIZE for a header or header line
 * that is too long, or the read error). A line too long to be a header
 * line that is not a field (the body starts without an empty line)
 * is not an error: its first HEADER_LINE_MAX bytes go into rest and the
 * remainder stays in the buffer. */
int header_read(struct header *h, struct buf *in);

/* True when field i has this name (case-insensitive). */
int header_is(const struct header *h, size_t i, const char *name);
/* The name of field i, and its value (everything after the colon, line
 * ends included). */
const char *header_name(const struct header *h, size_t i, size_t *len);
const char *header_value(const struct header *h, size_t i, size_t *len);
/* True when p[0..n) starts like a header field: a name of printable
 * characters other than ':', optional blanks, then ':'. */
int header_is_field_start(const char *p, size_t n);

#endif
