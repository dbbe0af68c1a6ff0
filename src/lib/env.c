/*
 * env.c: environment access, with the setuid rule in one place.
 *
 * A program that runs with more privilege than its caller (setuid or
 * setgid) must never take a path, a program name or a limit from the
 * environment; env_trusted() is how every such lookup is made.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"

extern char **environ;

const char *env_get(const char *name)
{
	return getenv(name);
}

int env_is_setugid(void)
{
	return getuid() != geteuid() || getgid() != getegid();
}

const char *env_trusted(const char *name)
{
	return env_is_setugid() ? NULL : getenv(name);
}

int env_set(const char *name, const char *value)
{
	return setenv(name, value, 1);
}

int env_unset(const char *name)
{
	return unsetenv(name);
}

static int env_listed(const char *entry, const char *const *names)
{
	const char *eq = strchr(entry, '=');
	size_t len = eq ? (size_t)(eq - entry) : strlen(entry);

	for (; *names; names++)
		if (strlen(*names) == len && memcmp(*names, entry, len) == 0)
			return 1;
	return 0;
}

int env_keep_only(const char *const *names)
{
	size_t kept = 0;

	/* Compact in place: the kept entries are still owned by environ. */
	for (size_t i = 0; environ && environ[i]; i++)
		if (env_listed(environ[i], names))
			environ[kept++] = environ[i];
	if (environ)
		environ[kept] = NULL;
	return 0;
}

int env_ulong(const char *name, unsigned long *out)
{
	const char *s = getenv(name);
	unsigned long n = 0;

	if (!s)
		return 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (n > (ULONG_MAX - d) / 10) {
			errno = ERANGE;
			return -1;
		}
		n = n * 10 + d;
	}
	*out = n;
	return 1;
}
