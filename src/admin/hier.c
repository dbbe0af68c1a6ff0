/*
 * hier.c: the table of the installed tree (see hier.h).
 *
 * The owners and modes are qmail's: programs root:qmail 0755, except
 * qmail-queue, setuid qmailq (04711); the queue as qmail-send,
 * qmail-queue and qmail-clean expect it; the alias home setgid. It must
 * never accept a manifest path that could leave the prefix or name
 * something an administrator edits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin/hier.h"
#include "lib/checked.h"

static int grow(struct hier *h)
{
	size_t cap, bytes;

	if (h->n < h->cap)
		return 0;
	cap = h->cap ? h->cap : 64;
	if (h->cap && size_mul(h->cap, 2, &cap) < 0)
		return -1;
	if (size_mul(cap, sizeof *h->e, &bytes) < 0)
		return -1;
	struct hier_entry *e = realloc(h->e, bytes);
	if (!e)
		return -1;
	h->e = e;
	h->cap = cap;
	return 0;
}

static int add(struct hier *h, char when, char kind, const char *owner,
	       unsigned mode, unsigned long size, const char *path, size_t len)
{
	if (grow(h) < 0)
		return -1;
	struct hier_entry *e = &h->e[h->n];
	*e = (struct hier_entry){when, kind, owner,   "qmail",
				 mode, size, STR_INIT};
	if (str_copy(&e->path, path, len) < 0)
		return -1;
	h->n++;
	return 0;
}

static int adds(struct hier *h, char when, char kind, const char *owner,
		unsigned mode, unsigned long size, const char *path)
{
	return add(h, when, kind, owner, mode, size, path, strlen(path));
}

/* queue/<name>/0 ... queue/<name>/<split-1>. */
static int add_split(struct hier *h, const char *name, const char *owner,
		     unsigned mode, unsigned long split)
{
	struct str path = STR_INIT;
	int rc = 0;

	for (unsigned long i = 0; i < split && rc == 0; i++) {
		str_clear(&path);
		rc =
		    (str_appends(&path, "queue/") < 0 ||
		     str_appends(&path, name) < 0 ||
		     str_appendc(&path, '/') < 0 || str_appendnum(&path, i) < 0)
			? -1
			: add(h, HIER_MAKE, HIER_DIR, owner, mode, 0, path.s,
			      path.len);
	}
	str_free(&path);
	return rc;
}

static int add_queue(struct hier *h, unsigned long split)
{
	static const struct {
		const char *path, *owner;
		unsigned mode;
	} dirs[] = {
	    {"queue", "qmailq", 0750},	      {"queue/pid", "qmailq", 0700},
	    {"queue/intd", "qmailq", 0700},   {"queue/todo", "qmailq", 0750},
	    {"queue/bounce", "qmails", 0700}, {"queue/mess", "qmailq", 0750},
	    {"queue/info", "qmails", 0700},   {"queue/local", "qmails", 0700},
	    {"queue/remote", "qmails", 0700}, {"queue/lock", "qmailq", 0750},
	};

	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (adds(h, HIER_MAKE, HIER_DIR, dirs[i].owner, dirs[i].mode, 0,
			 dirs[i].path) < 0)
			return -1;
	if (add_split(h, "mess", "qmailq", 0750, split) < 0 ||
	    add_split(h, "info", "qmails", 0700, split) < 0 ||
	    add_split(h, "local", "qmails", 0700, split) < 0 ||
	    add_split(h, "remote", "qmails", 0700, split) < 0)
		return -1;
	/* tcpto and tcpto6 have their final size from the start: qmail-remote
	 * (qmailr) rewrites them in place and cannot create files in lock/. */
	if (adds(h, HIER_MAKE, HIER_FILE, "qmails", 0600, 0,
		 "queue/lock/sendmutex") < 0 ||
	    adds(h, HIER_MAKE, HIER_FILE, "qmailr", 0644, 1024,
		 "queue/lock/tcpto") < 0 ||
	    adds(h, HIER_MAKE, HIER_FILE, "qmailr", 0644, 2048,
		 "queue/lock/tcpto6") < 0 ||
	    adds(h, HIER_MAKE, HIER_FIFO, "qmails", 0622, 0,
		 "queue/lock/trigger") < 0)
		return -1;
	return 0;
}

int hier_fixed(struct hier *h, unsigned long split)
{
	if (adds(h, HIER_OWN, HIER_DIR, "root", 0755, 0, ".") < 0 ||
	    adds(h, HIER_OWN, HIER_DIR, "root", 0755, 0, "bin") < 0 ||
	    adds(h, HIER_OWN, HIER_DIR, "root", 0755, 0, "man") < 0 ||
	    adds(h, HIER_OWN, HIER_FILE, "root", 0644, 0, HIER_MANIFEST) < 0 ||
	    adds(h, HIER_MAKE, HIER_DIR, "root", 0755, 0, "control") < 0 ||
	    adds(h, HIER_MAKE, HIER_DIR, "root", 0755, 0, "users") < 0 ||
	    adds(h, HIER_MAKE, HIER_DIR, "alias", 02755, 0, "alias") < 0)
		return -1;
	return add_queue(h, split);
}

/* A path component we install: safe bytes, not empty, no leading dot. */
static int component_ok(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '+' || c == '-'))
			return 0;
	}
	return 1;
}

#define MAX_PARTS 4

/* Splits path at '/' into at most MAX_PARTS valid components. Returns
 * their number, or 0 when the path is not acceptable. */
static size_t split_path(const char *path, size_t len, const char **part,
			 size_t *plen)
{
	size_t n = 0, start = 0;

	if (len == 0 || len > HIER_PATH_MAX)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		if (n == MAX_PARTS || !component_ok(path + start, i - start))
			return 0;
		part[n] = path + start;
		plen[n] = i - start;
		n++;
		start = i + 1;
	}
	return n;
}

static int is(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(s, word, len) == 0;
}

/* The owner and mode of an installed file, or 0 when make install does
 * not write such a path. */
static int installed_rule(const char **part, const size_t *plen, size_t n,
			  const char **owner, unsigned *mode)
{
	*owner = "root";
	if (n == 2 && is(part[0], plen[0], "bin")) {
		*mode = 0755;
		if (is(part[1], plen[1], "qmail-queue")) {
			*owner = "qmailq";
			*mode = 04711;
		}
		return 1;
	}
	if (n == 3 && is(part[0], plen[0], "man") && plen[1] == 4 &&
	    memcmp(part[1], "man", 3) == 0 && part[1][3] >= '1' &&
	    part[1][3] <= '8') {
		*mode = 0644;
		return 1;
	}
	if (n < 2 || !is(part[0], plen[0], "service-templates"))
		return 0;
	if (n == 2) { /* the tcprules files */
		*mode = 0644;
		return 1;
	}
	if ((n == 3 && is(part[2], plen[2], "run")) ||
	    (n == 4 && is(part[2], plen[2], "log") &&
	     is(part[3], plen[3], "run"))) {
		*mode = 0755;
		return 1;
	}
	return 0;
}

static int has_path(const struct hier *h, const char *path, size_t len)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->e[i].path.len == len &&
		    memcmp(h->e[i].path.s, path, len) == 0)
			return 1;
	return 0;
}

int hier_installed(struct hier *h, const char *path, size_t len)
{
	const char *part[MAX_PARTS], *owner;
	size_t plen[MAX_PARTS];
	unsigned mode;

	size_t n = split_path(path, len, part, plen);
	if (n == 0 || !installed_rule(part, plen, n, &owner, &mode))
		return 0;
	if (has_path(h, path, len))
		return 1;
	/* The directories above it, outermost first. */
	for (size_t i = 1; i < n; i++) {
		size_t dirlen = (size_t)(part[i] - path) - 1;
		if (!has_path(h, path, dirlen) &&
		    add(h, HIER_OWN, HIER_DIR, "root", 0755, 0, path, dirlen) <
			0)
			return -1;
	}
	if (add(h, HIER_OWN, HIER_FILE, owner, mode, 0, path, len) < 0)
		return -1;
	return 1;
}

void hier_free(struct hier *h)
{
	for (size_t i = 0; i < h->n; i++)
		str_free(&h->e[i].path);
	free(h->e);
	*h = (struct hier)HIER_INIT;
}
