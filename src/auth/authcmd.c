/*
 * authcmd.c: verb and argument of a command line.
 *
 * The verb table is the only knowledge here; unknown verbs are
 * AUTHCMD_OTHER, so that a new command can never slip through as a
 * known one. Lines may hold any byte; the caller refuses NUL.
 */
#include <string.h>
#include <strings.h>

#include "auth/authcmd.h"

struct verb_name {
	const char *name;
	enum authcmd_verb verb;
};

static const struct verb_name smtp_verbs[] = {
    {"HELO", AUTHCMD_HELO}, {"EHLO", AUTHCMD_EHLO},
    {"AUTH", AUTHCMD_AUTH}, {"STARTTLS", AUTHCMD_STARTTLS},
    {"NOOP", AUTHCMD_NOOP}, {"RSET", AUTHCMD_RSET},
    {"QUIT", AUTHCMD_QUIT}, {NULL, AUTHCMD_OTHER},
};

static const struct verb_name pop3_verbs[] = {
    {"CAPA", AUTHCMD_CAPA}, {"STLS", AUTHCMD_STLS}, {"USER", AUTHCMD_USER},
    {"PASS", AUTHCMD_PASS}, {"APOP", AUTHCMD_APOP}, {"QUIT", AUTHCMD_QUIT},
    {NULL, AUTHCMD_OTHER},
};

size_t authcmd_chomp(const char *line, size_t n)
{
	if (n && line[n - 1] == '\n') {
		n--;
		if (n && line[n - 1] == '\r')
			n--;
	}
	return n;
}

static enum authcmd_verb lookup(const struct verb_name *t, const char *p,
				size_t n)
{
	if (n == 0)
		return AUTHCMD_EMPTY;
	for (; t->name; t++)
		if (strlen(t->name) == n && strncasecmp(t->name, p, n) == 0)
			return t->verb;
	return AUTHCMD_OTHER;
}

/* The verb's length: up to the first space. */
static size_t verb_len(const char *line, size_t n)
{
	const char *sp = memchr(line, ' ', n);
	return sp ? (size_t)(sp - line) : n;
}

void authcmd_smtp(const char *line, size_t n, struct authcmd *c)
{
	size_t v = verb_len(line, n), a = v;

	c->verb = lookup(smtp_verbs, line, v);
	while (a < n && line[a] == ' ')
		a++;
	c->arg = line + a;
	c->alen = n - a;
}

void authcmd_pop3(const char *line, size_t n, struct authcmd *c)
{
	size_t v = verb_len(line, n), a = v < n ? v + 1 : v;

	c->verb = lookup(pop3_verbs, line, v);
	c->arg = line + a;
	c->alen = n - a;
}
