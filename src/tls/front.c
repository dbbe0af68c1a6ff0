/*
 * front.c: argv building for the sslserver and sslclient front ends.
 *
 * Sizes are fixed from the caller's argc before anything is appended,
 * so an append can never run past the array.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/checked.h"
#include "lib/exitcode.h"
#include "lib/log.h"
#include "tls/front.h"
#include "tls/tlsopt.h"

void av_init(struct argvbuf *a, size_t cap)
{
	size_t bytes;

	if (size_mul(cap, sizeof *a->v, &bytes) < 0 || !(a->v = malloc(bytes)))
		log_nomem();
	a->n = 0;
	a->cap = cap;
	a->v[0] = NULL;
}

void av_push(struct argvbuf *a, const char *s)
{
	if (a->n + 1 >= a->cap)
		log_fatal(EXIT_TEMP, "internal error: argument list full");
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

void av_push2(struct argvbuf *a, const char *opt, const char *arg)
{
	av_push(a, opt);
	av_push(a, arg);
}

void av_flag(struct argvbuf *a, int c)
{
	/* One static string per letter: the argv must outlive us (exec). */
	static char flags[128][3];
	unsigned char u = (unsigned char)c;

	if (u >= 128)
		log_fatal(EXIT_TEMP, "internal error: bad option");
	flags[u][0] = '-';
	flags[u][1] = (char)u;
	flags[u][2] = 0;
	av_push(a, flags[u]);
}

void av_append(struct argvbuf *a, const struct argvbuf *b)
{
	for (size_t i = 0; i < b->n; i++)
		av_push(a, b->v[i]);
}

const char *front_sibling(const char *argv0, const char *name)
{
	const char *slash = strrchr(argv0, '/');
	size_t dir, len, total;
	char *path;

	if (!slash)
		return name;
	dir = (size_t)(slash - argv0) + 1;
	len = strlen(name);
	if (size_add(dir, len, &total) < 0 || size_add(total, 1, &total) < 0 ||
	    !(path = malloc(total)))
		log_nomem();
	memcpy(path, argv0, dir);
	memcpy(path + dir, name, len + 1);
	if (access(path, X_OK) == 0)
		return path;
	free(path);
	return name;
}

unsigned front_number(int opt, const char *arg)
{
	unsigned n;

	if (tlsopt_uint(arg, &n) < 0)
		log_fatal(EXIT_PERM, "-%c wants a number, not %s", opt, arg);
	return n;
}

void front_refuse(int opt, const char *why)
{
	log_fatal(EXIT_PERM, "-%c is not supported: %s", opt, why);
}
