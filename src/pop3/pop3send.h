/*
 * pop3send.h: sending a message as a POP3 multi-line response body
 * (RFC 1939 section 3): CR LF line ends, a '.' doubled at the start of
 * a line, and the terminating ".\r\n".
 *
 * The message streams from one buffer to the other: memory use does not
 * depend on the message size or on its line lengths. This never writes
 * the status line and never reads past what it sends, except the one
 * buffer of input it already holds.
 */
#ifndef QM_POP3SEND_H
#define QM_POP3SEND_H

#include "lib/buf.h"

/* body_lines value for the whole message (RETR). */
#define POP3_ALL_LINES (~0ULL)

enum pop3_send {
	POP3_SEND_OK = 0,
	POP3_SEND_READ = -1,  /* reading in failed (errno) */
	POP3_SEND_WRITE = -2, /* writing out failed (errno) */
};

/*
 * Copy the message from in to out, then ".\r\n". With body_lines below
 * POP3_ALL_LINES (TOP), only the header, the empty line that ends it and
 * at most body_lines lines of the body are sent; a message without an
 * empty line is all header. LF becomes CR LF, unless a CR already
 * precedes it (CR LF is sent unchanged). A last line without a newline
 * gets one the same way. On failure the output is cut short
 * without the final line, so a client can never take it for complete;
 * the caller must then end the session.
 */
enum pop3_send pop3_send_message(struct buf *in, struct buf *out,
				 unsigned long long body_lines);

#endif
