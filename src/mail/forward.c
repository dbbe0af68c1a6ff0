/*
 * forward.c: a new message, the caller's line followed by fd 0, handed
 * to qmail-queue through mail/qq.h.
 *
 * qq.h owns the qmail-queue protocol and its exit codes; this module
 * only feeds it. When fd 0 cannot be read in full, qmail-queue is killed
 * before it sees an envelope, so a partial message is never queued.
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/log.h"
#include "mail/forward.h"
#include "mail/qq.h"

/* Copies fd 0 to its end. Returns 0, or -1 (errno) on a read error. */
static int copy_fd0(struct qq *q)
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

int forward_message(const char *line, const char *sender,
		    const struct str *rcpts, struct forward_result *res)
{
	struct qq q;

	res->qp = -1;
	res->stage = FORWARD_START;
	if (qq_start(&q) < 0)
		return -1;
	res->qp = q.pid;
	qq_puts(&q, line);
	if (copy_fd0(&q) < 0) {
		int saved = errno;
		qq_abort(&q);
		errno = saved;
		res->stage = FORWARD_READ;
		return -1;
	}
	res->stage = FORWARD_QUEUE;
	res->code = qq_finish_list(&q, sender, rcpts, &res->reply);
	return res->code == 0 ? 0 : -1;
}

static const char *need_env(const char *name)
{
	const char *value = env_get(name);
	if (!value)
		log_fatal(EXIT_PERM, "%s not set", name);
	return value;
}

void forward_env_or_die(const char **sender, const char **dtline)
{
	*sender = need_env("NEWSENDER");
	*dtline = need_env("DTLINE");
}

pid_t forward_or_die(const char *line, const char *sender,
		     const char *const *addrs, size_t n)
{
	struct str rcpts = STR_INIT;
	struct forward_result res = FORWARD_RESULT_INIT;

	for (size_t i = 0; i < n; i++)
		if (str_appends(&rcpts, addrs[i]) < 0 ||
		    str_append0(&rcpts) < 0)
			log_nomem();
	signal(SIGPIPE, SIG_IGN);
	if (forward_message(line, sender, &rcpts, &res) == 0) {
		str_free(&rcpts);
		str_free(&res.reply);
		return res.qp;
	}
	if (res.stage == FORWARD_START)
		log_fatal_sys(EXIT_TEMP, "unable to run qmail-queue");
	if (res.stage == FORWARD_READ)
		log_fatal_sys(EXIT_TEMP, "unable to read message");
	const char *text = qq_text(&res.reply, res.code);
	log_fatal(text[0] == '5' ? EXIT_PERM : EXIT_TEMP, "%s", text);
}
