/*
 * cpwin.h: the checkpassword side of djb's interface: reading
 * "login\0password\0timestamp\0" from fd 3.
 *
 * At most CPWIN_MAX bytes are read, up to EOF; anything after the
 * three fields is ignored. The password stays in the struct's own
 * buffer until cpwin_wipe() clears it.
 */
#ifndef QM_AUTH_CPWIN_H
#define QM_AUTH_CPWIN_H

#include <stddef.h>

#define CPWIN_MAX 512

struct cpwin {
	char buf[CPWIN_MAX + 1];
	size_t len;
	const char *login; /* inside buf, NUL-terminated */
	const char *pass;
	const char *stamp; /* empty when the input had no timestamp */
};

/* Read and split. Returns 0; or -1 with errno EPROTO when the input is
 * malformed (no login or password field, or an empty login), or the
 * read error. */
int cpwin_read(int fd, struct cpwin *in);
void cpwin_wipe(struct cpwin *in);

#endif
