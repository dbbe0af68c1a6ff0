/*
 * dotqmail.h: finding and parsing .qmail files (dot-qmail(5)).
 *
 * The lookup follows qmail-local's order: .qmail<dash><ext>, then the
 * -default files from the longest ext prefix to the shortest. The file
 * name uses a "safe" ext: ASCII letters lowercased, '.' turned into ':',
 * so an ext can never name a file outside the home directory.
 *
 * Parsing is all or nothing: one line that cannot be understood rejects
 * the whole file, so a delivery never runs half of a broken .qmail. This
 * module only reads files and builds lists; it never delivers anything
 * and never prints.
 */
#ifndef QM_DOTQMAIL_H
#define QM_DOTQMAIL_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/str.h"

/* Longest instruction line, trailing blanks included. */
#define DOTQMAIL_LINE_MAX 2048
/* Largest .qmail file read (a long list of forwards fits easily). */
#define DOTQMAIL_FILE_MAX ((size_t)16 << 20)
/* dq_search_next's *deflt when the candidate is not a -default file. */
#define DOTQMAIL_NOT_DEFAULT ((size_t)-1)

enum dq_kind {
	DQ_PROGRAM = 1, /* |command */
	DQ_FORWARD,	/* &address, or an address starting alphanumeric */
	DQ_MBOX,	/* ./file or /file */
	DQ_MAILDIR,	/* ./dir/ or /dir/ */
};

struct dq_instr {
	enum dq_kind kind;
	size_t line;	 /* 1-based line number in the file */
	const char *arg; /* NUL-terminated: command, address or path */
	size_t len;	 /* strlen(arg) */
};

struct dq_list {
	struct dq_instr *v;
	size_t n;
	size_t cap;
};

#define DQ_LIST_INIT                                                           \
	{                                                                      \
		NULL, 0, 0                                                     \
	}

struct dq_error {
	size_t line;	 /* the offending line, 1-based */
	const char *why; /* static text, e.g. "line too long" */
};

/* Parse text, the content of a .qmail file (or the default delivery).
 * The text is changed in place: each argument is NUL-terminated and the
 * list points into text, which must outlive it. forward_only is set for
 * a file with its owner-execute bit on: then only forwards and comments
 * are allowed. Comments and blank lines (except a blank first line,
 * which dot-qmail(5) forbids) produce nothing.
 * Returns 0, or -1 with errno: EINVAL for a line that cannot be
 * understood (err says which and why; out is then emptied), ENOMEM or
 * EOVERFLOW when the list cannot grow. */
int dotqmail_parse(struct str *text, int forward_only, struct dq_list *out,
		   struct dq_error *err);
void dq_list_free(struct dq_list *l);

/* The ext as it appears in file names: A-Z lowercased, '.' as ':'.
 * Replaces out. 0 or -1 (errno). */
int dotqmail_safeext(struct str *out, const char *ext);

/* The candidate file names for one delivery, in lookup order. */
struct dq_search {
	const char *dash;
	struct str safe; /* dotqmail_safeext(ext) */
	size_t cut;	 /* next prefix length to try for -default */
	int state;	 /* 0: exact name next, 1: defaults, 2: done */
};

/* 0 or -1 (errno). dash must outlive the search. */
int dq_search_start(struct dq_search *s, const char *dash, const char *ext);
/* Puts the next candidate name into name (replacing it) and sets *deflt
 * to the offset in ext where the part matched by "default" starts (the
 * value of $DEFAULT), or DOTQMAIL_NOT_DEFAULT. Returns 1, 0 when there
 * is no candidate left, -1 on error (errno). */
int dq_search_next(struct dq_search *s, struct str *name, size_t *deflt);
void dq_search_free(struct dq_search *s);

/* Open name for reading, if it exists as a regular file.
 * Returns 1 (*fd open, *mode its st_mode), 0 when there is no such
 * regular file (missing, a missing directory on the way, a name too
 * long, or not a regular file), -1 on any other error (errno), which
 * the caller must treat as temporary: it may hide a file that exists. */
int dotqmail_open(const char *name, int *fd, mode_t *mode);
/* Like dotqmail_open without opening: 1 exists (any type), 0, -1. */
int dotqmail_exists(const char *name);

struct dq_found {
	int fd; /* -1 when nothing was found */
	mode_t mode;
	struct str name; /* the file found, or the one that gave an error */
	size_t deflt;	 /* as for dq_search_next */
};

#define DQ_FOUND_INIT                                                          \
	{                                                                      \
		-1, 0, STR_INIT, DOTQMAIL_NOT_DEFAULT                          \
	}

/* Try every candidate in order and open the first that exists.
 * Returns 1 found, 0 none, -1 error (errno; f->name names the file). */
int dotqmail_find(const char *dash, const char *ext, struct dq_found *f);

/* Read all of fd into out (replacing it); at most DOTQMAIL_FILE_MAX
 * bytes, EFBIG beyond. 0 or -1 (errno). Does not close fd. */
int dotqmail_read(int fd, struct str *out);

#endif
