/*
 * forward: send the message on fd 0 on to the given addresses, through
 * qmail-queue, with envelope sender $NEWSENDER and $DTLINE prepended.
 *
 * Meant for .qmail files. It must never report success for a message
 * that is not queued: any doubt is a temporary failure (111), and only a
 * permanent refusal by qmail-queue, or a usage error, is 100.
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/log.h"
#include "mail/qq.h"

static const char *need_env(const char *name)
{
	const char *value = env_get(name);
	if (!value)
		log_fatal(EXIT_PERM, "%s not set", name);
	return value;
}

/* Copies fd 0 to qmail-queue; -1 on a read error. */
static int copy_message(struct qq *q)
{
	char chunk[BUF_SIZE];

	for (;;) {
		ssize_t n = read(0, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		qq_put(q, chunk, (size_t)n);
	}
}

int main(int argc, char **argv)
{
	struct qq q;
	struct str reply = STR_INIT;

	log_init(argc > 0 ? argv[0] : "forward");
	if (argc < 2)
		log_fatal(EXIT_PERM, "usage: forward address [address ...]");
	const char *sender = need_env("NEWSENDER");
	const char *dtline = need_env("DTLINE");

	signal(SIGPIPE, SIG_IGN);
	if (qq_start(&q) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to run qmail-queue");
	long qp = (long)q.pid;
	qq_puts(&q, dtline);
	if (copy_message(&q) < 0) {
		int saved = errno;
		qq_abort(&q);
		errno = saved;
		log_fatal_sys(EXIT_TEMP, "unable to read message");
	}
	int code = qq_finish(&q, sender, (const char *const *)(argv + 1),
			     (size_t)(argc - 1), &reply);
	if (code != 0)
		log_fatal(reply.s && reply.s[0] == '5' ? EXIT_PERM : EXIT_TEMP,
			  "%s", reply.s ? reply.s : "qmail-queue failed");
	log_info("qp %ld", qp);
	return 0;
}
