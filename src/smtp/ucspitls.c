/*
 * ucspitls.c: starting TLS through a UCSPI-TLS program.
 *
 * The fd numbers come from the environment and may collide with each
 * other or with the targets (ucspi-ssl often hands out fd 3); moves are
 * done through fresh duplicates so that no order of numbers can close
 * the wrong descriptor. The control block is bounded in size.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/env.h"
#include "lib/fd.h"
#include "lib/str.h"
#include "smtp/ucspitls.h"

#define BLOCK_MAX 16384

void ucspitls_init(struct ucspitls *t)
{
	const char *p = env_get("UCSPITLS");

	t->active = 0;
	if (!p || strcmp(p, "-") == 0)
		t->policy = TLS_OFF;
	else if (strcmp(p, "!") == 0)
		t->policy = TLS_REQUIRED;
	else
		t->policy = TLS_OFFERED;
	if (env_get("DISABLETLS"))
		t->policy = TLS_OFF;
	env_unset("UCSPITLS");
	env_unset("DISABLETLS");
	t->ctl = fd_parse(env_get("SSLCTLFD"));
	t->rfd = fd_parse(env_get("SSLREADFD"));
	t->wfd = fd_parse(env_get("SSLWRITEFD"));
}

int ucspitls_available(const struct ucspitls *t)
{
	return t->policy != TLS_OFF && !t->active && t->ctl >= 0 &&
	       t->rfd >= 0 && t->wfd >= 0;
}

/* The block: NAME=value\0 ... \0. An entry without '=' unsets NAME. */
static int read_block(int fd)
{
	struct str block = STR_INIT;
	char tmp[512];
	int ok = -1;

	for (;;) {
		ssize_t r = read(fd, tmp, sizeof tmp);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto out; /* EOF without a block: the handshake failed */
		if (block.len + (size_t)r > BLOCK_MAX ||
		    str_append(&block, tmp, (size_t)r) < 0)
			goto out;
		/* Complete when it ends in "\0\0", or is just "\0". */
		if ((block.len == 1 && block.s[0] == 0) ||
		    (block.len >= 2 && block.s[block.len - 1] == 0 &&
		     block.s[block.len - 2] == 0))
			break;
	}
	for (size_t pos = 0; pos < block.len && block.s[pos];) {
		char *entry = block.s + pos;
		pos += strlen(entry) + 1;
		/* Only SSL_* names: nothing the TLS process says may set,
		 * say, LD_PRELOAD for the mail program and its children. */
		if (strncmp(entry, "SSL_", 4) != 0)
			continue;
		char *eq = strchr(entry, '=');
		if (eq)
			*eq = 0;
		/* A variable we could not set would be read as its old
		 * value: fail rather than go on with it. */
		if ((eq ? env_set(entry, eq + 1) : env_unset(entry)) < 0)
			goto out;
	}
	ok = 0;
out:
	str_free(&block);
	return ok;
}

int ucspitls_start(struct ucspitls *t, struct buf *in, struct buf *out,
		   int rfd_to, int wfd_to)
{
	if (fd_write_all(t->ctl, "Y", 1, 0) < 0)
		return -1;
	buf_discard(in);
	/* Through duplicates: rfd, wfd and the targets may overlap. */
	int r = dup(t->rfd), w = dup(t->wfd);
	if (r < 0 || w < 0)
		return -1;
	if (t->rfd != t->ctl && t->rfd != rfd_to && t->rfd != wfd_to)
		close(t->rfd);
	if (t->wfd != t->ctl && t->wfd != t->rfd && t->wfd != rfd_to &&
	    t->wfd != wfd_to)
		close(t->wfd);
	if (fd_move(rfd_to, r) < 0 || fd_move(wfd_to, w) < 0)
		return -1;
	buf_setfd(in, rfd_to);
	buf_setfd(out, wfd_to);
	if (read_block(t->ctl) < 0)
		return -1;
	t->active = 1;
	return 0;
}

const char *ucspitls_protocol(void)
{
	return env_get("SSL_PROTOCOL");
}

const char *ucspitls_cipher(void)
{
	return env_get("SSL_CIPHER");
}
