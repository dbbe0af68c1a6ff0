/*
 * preline: feed a program the message on fd 0 preceded by $UFLINE (the
 * "From " line), $RPLINE (Return-Path) and $DTLINE (Delivered-To), for
 * mailbox programs that expect them. -f, -r and -d leave out the
 * respective line.
 *
 * It passes the program's exit code on, and never a success it did not
 * see: a crash, or a message that could not be read or handed over in
 * full while the program still wanted it, is 111. No shell is involved.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "mail/child.h"

struct lines {
	const char *text[3]; /* NULL: left out */
};

static _Noreturn void usage(void)
{
	log_fatal(EXIT_PERM, "usage: preline [-d] [-f] [-r] cmd [arg ...]");
}

/* Options come first, each flag alone or grouped ("-dr"); "--" ends
 * them. Returns the index of cmd. */
static int parse_options(int argc, char **argv, int *no_dt, int *no_uf,
			 int *no_rp)
{
	int i = 1;

	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (strcmp(argv[i], "--") == 0)
			return i + 1;
		for (const char *p = argv[i] + 1; *p; p++) {
			if (*p == 'd')
				*no_dt = 1;
			else if (*p == 'f')
				*no_uf = 1;
			else if (*p == 'r')
				*no_rp = 1;
			else
				usage();
		}
	}
	return i;
}

static const char *need_env(const char *name)
{
	const char *value = env_get(name);
	if (!value)
		log_fatal(EXIT_PERM, "%s not set", name);
	return value;
}

/* The program reads the message from a pipe, whose other end is ours. */
static pid_t start_program(char *const *argv, int *to_program)
{
	int p[2];

	/* Our end must not stay open in the program, or it never sees EOF. */
	if (pipe(p) < 0 || fd_cloexec(p[1]) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to create pipe");
	pid_t pid = child_start_or_defer(argv, p[0]);
	close(p[0]);
	*to_program = p[1];
	return pid;
}

/* Writes the lines, then the message. Returns 0, or -1 with errno: EPIPE
 * when the program stopped reading, or the failing read or write. */
static int feed(int to, const struct lines *l, int *read_failed)
{
	struct buf out;
	char space[BUF_SIZE];
	char chunk[BUF_SIZE];

	buf_init(&out, to, space, sizeof space, 0);
	for (int i = 0; i < 3; i++)
		if (l->text[i] && buf_puts(&out, l->text[i]) < 0)
			return -1;
	for (;;) {
		ssize_t n = read(0, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*read_failed = 1;
			return -1;
		}
		if (n == 0)
			return buf_flush(&out);
		if (buf_put(&out, chunk, (size_t)n) < 0)
			return -1;
	}
}

int main(int argc, char **argv)
{
	int no_dt = 0, no_uf = 0, no_rp = 0, read_failed = 0, to;
	struct lines l = {{NULL, NULL, NULL}};

	log_init(argc > 0 ? argv[0] : "preline");
	int cmd = parse_options(argc, argv, &no_dt, &no_uf, &no_rp);
	if (cmd >= argc)
		usage();
	if (!no_uf)
		l.text[0] = need_env("UFLINE");
	if (!no_rp)
		l.text[1] = need_env("RPLINE");
	if (!no_dt)
		l.text[2] = need_env("DTLINE");

	pid_t pid = start_program(argv + cmd, &to);
	/* Set after the fork: the program gets the default disposition. */
	signal(SIGPIPE, SIG_IGN);
	int fed = feed(to, &l, &read_failed);
	int fed_errno = errno;
	close(to);
	int code = child_wait_or_defer(pid, argv[cmd]);
	errno = fed_errno;
	if (read_failed)
		log_fatal_sys(EXIT_TEMP, "unable to read message");
	/* A program that stops reading has decided: its code stands. */
	if (fed < 0 && fed_errno != EPIPE)
		log_fatal_sys(EXIT_TEMP, "unable to write to %s", argv[cmd]);
	return code;
}
