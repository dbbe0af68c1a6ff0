/*
 * pop3cmd.c: the POP3 command parser (see pop3cmd.h).
 *
 * Pure functions over a byte range: this must never read past len, never
 * write anywhere but *cmd, and never trust the line to be NUL-terminated.
 */
#include "pop3cmd.h"

#include <limits.h>

struct verb_spec {
	char name[5];
	enum pop3_verb verb;
	unsigned min_args, max_args;
};

static const struct verb_spec verbs[] = {
    {"STAT", POP3_STAT, 0, 0}, {"LIST", POP3_LIST, 0, 1},
    {"UIDL", POP3_UIDL, 0, 1}, {"RETR", POP3_RETR, 1, 1},
    {"TOP", POP3_TOP, 2, 2},   {"DELE", POP3_DELE, 1, 1},
    {"RSET", POP3_RSET, 0, 0}, {"NOOP", POP3_NOOP, 0, 0},
    {"LAST", POP3_LAST, 0, 0}, {"QUIT", POP3_QUIT, 0, 0},
    {"CAPA", POP3_CAPA, 0, 0},
};

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static size_t skip_blanks(const char *p, size_t i, size_t len)
{
	while (i < len && is_blank(p[i]))
		i++;
	return i;
}

static char upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* The keyword p[0..n) case-insensitively, or NULL. */
static const struct verb_spec *find_verb(const char *p, size_t n)
{
	for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++) {
		const char *name = verbs[v].name;
		size_t i = 0;
		while (i < n && name[i] && upper(p[i]) == name[i])
			i++;
		if (i == n && name[i] == '\0')
			return &verbs[v];
	}
	return NULL;
}

/* A decimal number p[0..n), saturating at ULONG_MAX; 0 when p holds
 * anything but digits. */
static int parse_number(const char *p, size_t n, unsigned long *out)
{
	unsigned long v = 0;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (ULONG_MAX - d) / 10)
			v = ULONG_MAX;
		else
			v = v * 10 + d;
	}
	*out = v;
	return 1;
}

/* len without a trailing LF or CR LF. */
static size_t strip_newline(const char *line, size_t len)
{
	if (len && line[len - 1] == '\n') {
		len--;
		if (len && line[len - 1] == '\r')
			len--;
	}
	return len;
}

enum pop3_parse pop3_parse(const char *line, size_t len, struct pop3_cmd *cmd)
{
	struct pop3_cmd parsed = {0};
	size_t i, start;

	len = strip_newline(line, len);
	i = skip_blanks(line, 0, len);
	if (i == len)
		return POP3_PARSE_EMPTY;
	start = i;
	while (i < len && !is_blank(line[i]))
		i++;
	const struct verb_spec *spec = find_verb(line + start, i - start);
	if (!spec)
		return POP3_PARSE_UNKNOWN;
	parsed.verb = spec->verb;
	for (;;) {
		i = skip_blanks(line, i, len);
		if (i == len)
			break;
		start = i;
		while (i < len && !is_blank(line[i]))
			i++;
		if (parsed.nargs == spec->max_args ||
		    !parse_number(line + start, i - start,
				  &parsed.arg[parsed.nargs]))
			return POP3_PARSE_SYNTAX;
		parsed.nargs++;
	}
	if (parsed.nargs < spec->min_args)
		return POP3_PARSE_SYNTAX;
	*cmd = parsed;
	return POP3_PARSE_OK;
}
