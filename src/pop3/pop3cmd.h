/*
 * pop3cmd.h: parsing one POP3 command line of the TRANSACTION state
 * (RFC 1939, plus LAST from RFC 1460 and CAPA from RFC 2449).
 *
 * The parser only looks at the bytes it is given: it never reads input,
 * never allocates and never decides whether a message number exists.
 */
#ifndef QM_POP3CMD_H
#define QM_POP3CMD_H

#include <stddef.h>

enum pop3_verb {
	POP3_STAT,
	POP3_LIST,
	POP3_UIDL,
	POP3_RETR,
	POP3_TOP,
	POP3_DELE,
	POP3_RSET,
	POP3_NOOP,
	POP3_LAST,
	POP3_QUIT,
	POP3_CAPA,
};

enum pop3_parse {
	POP3_PARSE_OK = 0,
	POP3_PARSE_EMPTY,   /* nothing but white space */
	POP3_PARSE_UNKNOWN, /* a keyword we do not implement */
	POP3_PARSE_SYNTAX,  /* a known keyword with bad arguments */
};

struct pop3_cmd {
	enum pop3_verb verb;
	unsigned nargs;	      /* 0, 1 or 2 */
	unsigned long arg[2]; /* ULONG_MAX stands for any larger number */
};

/*
 * Parse line (len bytes, a trailing LF or CR LF allowed). The keyword is
 * case-insensitive; arguments are unsigned decimal numbers separated by
 * spaces or tabs, and white space at the end is ignored. LIST and UIDL
 * take zero or one argument, RETR and DELE one, TOP two, the others
 * none. A number too large for unsigned long becomes ULONG_MAX: it is
 * still a number, only one that names no message. A first word that is
 * no keyword we know (a NUL byte included) is POP3_PARSE_UNKNOWN; any
 * other stray byte, a missing or an extra argument is POP3_PARSE_SYNTAX.
 * On POP3_PARSE_OK *cmd is filled; otherwise it is left alone.
 */
enum pop3_parse pop3_parse(const char *line, size_t len, struct pop3_cmd *cmd);

#endif
