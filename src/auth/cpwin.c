/*
 * cpwin.c: reading checkpassword input.
 *
 * The buffer has one spare byte that is always NUL, so a field that
 * runs to the end of the input is still a C string; fields without
 * their NUL are malformed, except the timestamp.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "auth/cpwin.h"
#include "auth/sasl.h"

int cpwin_read(int fd, struct cpwin *in)
{
	const char *end, *nul;

	memset(in, 0, sizeof *in);
	while (in->len < CPWIN_MAX) {
		ssize_t r = read(fd, in->buf + in->len, CPWIN_MAX - in->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		in->len += (size_t)r;
	}
	end = in->buf + in->len;
	in->login = in->buf;
	nul = memchr(in->login, 0, in->len);
	if (!nul || nul == in->login)
		goto malformed;
	in->pass = nul + 1;
	nul = memchr(in->pass, 0, (size_t)(end - in->pass));
	if (!nul)
		goto malformed;
	in->stamp = nul + 1; /* up to its NUL, or to the spare NUL */
	return 0;
malformed:
	cpwin_wipe(in);
	errno = EPROTO;
	return -1;
}

void cpwin_wipe(struct cpwin *in)
{
	sasl_wipe(in->buf, sizeof in->buf);
	in->len = 0;
	in->login = in->pass = in->stamp = in->buf;
}
