/*
 * hier.h: the installed tree under the prefix, with qmail's owners and
 * modes.
 *
 * This is the one table of the production layout: `make install` applies
 * it (through `qmail-instcheck -p`) and qmail-instcheck verifies it.
 * Owners and groups are account names (root, alias, qmailq, qmails,
 * qmailr; group qmail), resolved by the caller. Paths are relative to the
 * prefix and hold only [A-Za-z0-9._+/-], so they are safe to print and to
 * hand to a shell loop. The table never names a file an administrator
 * edits (control files, .qmail files, service directories).
 */
#ifndef QM_HIER_H
#define QM_HIER_H

#include <stddef.h>

#include "lib/str.h"

enum hier_when {
	HIER_OWN = 'o',	 /* make install sets it every time ("own") */
	HIER_MAKE = 'm', /* made when missing, then left alone ("make") */
};

enum hier_kind {
	HIER_DIR = 'd',
	HIER_FILE = 'f',
	HIER_FIFO = 'p',
};

struct hier_entry {
	char when;	    /* enum hier_when */
	char kind;	    /* enum hier_kind */
	const char *owner;  /* account name */
	const char *group;  /* group name */
	unsigned mode;	    /* permission bits, setuid/setgid included */
	unsigned long size; /* bytes of zeros a new file gets */
	struct str path;    /* relative to the prefix; "." is the prefix */
};

struct hier {
	struct hier_entry *e;
	size_t n, cap;
};

#define HIER_INIT                                                              \
	{                                                                      \
		NULL, 0, 0                                                     \
	}

/* The name of the list of installed files, relative to the prefix. */
#define HIER_MANIFEST "manifest"
/* The longest path the table accepts from the manifest. */
#define HIER_PATH_MAX 1024

/* Adds the fixed part: the prefix, bin, man, the manifest, control,
 * users, the alias home and the queue with `split` subdirectories.
 * Returns 0, or -1 with errno. */
int hier_fixed(struct hier *h, unsigned long split);

/* Adds one installed file named by a manifest line, and the directories
 * above it that are not in the table yet. Returns 1, 0 when the path is
 * not one make install writes (not added), or -1 with errno. */
int hier_installed(struct hier *h, const char *path, size_t len);

void hier_free(struct hier *h);

#endif
