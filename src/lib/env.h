/*
 * env.h: reading and changing the environment.
 *
 * A setuid or setgid program must not let its caller steer it: for such a
 * program env_trusted() returns NULL for every name. Everything that
 * changes where a program reads or writes goes through env_trusted().
 */
#ifndef QM_ENV_H
#define QM_ENV_H

/* The value, or NULL. */
const char *env_get(const char *name);
/* The value, or NULL when unset or when this process is setuid/setgid. */
const char *env_trusted(const char *name);
/* True when the process runs with privileges its caller does not have. */
int env_is_setugid(void);
/* 0 or -1 (errno). */
int env_set(const char *name, const char *value);
int env_unset(const char *name);
/* Remove every variable whose name is not listed (NULL-terminated). */
int env_keep_only(const char *const *names);
/* Parse an unsigned decimal value; returns 1 and sets *out when the
 * variable is set to a valid number, 0 when unset, -1 when malformed. */
int env_ulong(const char *name, unsigned long *out);

#endif
