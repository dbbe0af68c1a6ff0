/*
 * qq.c: the client side of the qmail-queue interface.
 *
 * The envelope is written only after the whole message, as qmail-queue
 * reads fd 0 to its end before it reads fd 1. SIGPIPE must be ignored by
 * the program using this module; a broken pipe shows as a failure here
 * and as the child's exit code. Never passes anything through a shell.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/fd.h"
#include "lib/home.h"
#include "mail/qq.h"

extern char **environ;

#define QQ_CUSTOM_MAX 1000

/* Child-side pipe ends, in the order they are moved to fds 0, 1 and 6.
 * A source already on its target keeps it (it has no close-on-exec
 * flag); any other source is closed after the moves unless it is one of
 * the targets, which the moves have already replaced. */
static int qq_actions(posix_spawn_file_actions_t *fa, const int from[3])
{
	static const int to[3] = {0, 1, 6};

	for (int i = 0; i < 3; i++)
		if (from[i] != to[i] &&
		    posix_spawn_file_actions_adddup2(fa, from[i], to[i]) != 0)
			return -1;
	for (int i = 0; i < 3; i++)
		if (from[i] != 0 && from[i] != 1 && from[i] != 6 &&
		    posix_spawn_file_actions_addclose(fa, from[i]) != 0)
			return -1;
	return 0;
}

/* posix_spawn rather than fork: the queue is started once per message,
 * and a vfork-style start copies none of the caller's page tables. */
static int qq_spawn(pid_t *pid, const int from[3])
{
	struct str path = STR_INIT;
	const char *prog = env_trusted("QMAILQUEUE");
	posix_spawn_file_actions_t fa;
	int err;

	if (!prog || !*prog) {
		if (str_copys(&path, home_dir()) < 0 ||
		    str_appends(&path, "/bin/qmail-queue") < 0) {
			str_free(&path);
			return ENOMEM;
		}
		prog = path.s;
	}
	char *argv[] = {(char *)prog, NULL};
	err = posix_spawn_file_actions_init(&fa);
	if (err == 0) {
		err = qq_actions(&fa, from) < 0
			  ? ENOMEM
			  : posix_spawn(pid, prog, &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
	}
	str_free(&path);
	return err;
}

int qq_start(struct qq *q)
{
	int m[2], e[2], r[2];

	memset(q, 0, sizeof *q);
	q->pid = -1;
	if (pipe(m) < 0)
		return -1;
	if (pipe(e) < 0)
		goto fail_m;
	if (pipe(r) < 0)
		goto fail_e;
	if (fd_cloexec(m[1]) < 0 || fd_cloexec(e[1]) < 0 ||
	    fd_cloexec(r[0]) < 0)
		goto fail_r;
	const int from[3] = {m[0], e[0], r[1]};
	int err = qq_spawn(&q->pid, from);
	close(m[0]);
	close(e[0]);
	close(r[1]);
	if (err == EAGAIN || err == ENOMEM) {
		close(m[1]);
		close(e[1]);
		close(r[0]);
		q->pid = -1;
		errno = err;
		return -1;
	}
	if (err != 0) {
		/* It could not be executed: reported as fork and exec used
		 * to report it, by the exit code of a child that failed. */
		close(m[1]);
		close(e[1]);
		close(r[0]);
		q->pid = -1;
		q->failed = 1;
		q->spawn_code = QQ_BUG;
		m[1] = e[1] = r[0] = -1;
	}
	q->envfd = e[1];
	q->errfd = r[0];
	buf_init(&q->msg, m[1], q->space, sizeof q->space, 0);
	return 0;
fail_r:
	close(r[0]);
	close(r[1]);
fail_e:
	close(e[0]);
	close(e[1]);
fail_m:
	close(m[0]);
	close(m[1]);
	return -1;
}

void qq_put(struct qq *q, const void *p, size_t n)
{
	if (!q->failed && buf_put(&q->msg, p, n) < 0)
		q->failed = 1;
}

void qq_puts(struct qq *q, const char *s)
{
	qq_put(q, s, strlen(s));
}

static int qq_wait(struct qq *q)
{
	int status;

	if (q->pid < 0)
		return q->spawn_code;
	while (waitpid(q->pid, &status, 0) < 0)
		if (errno != EINTR)
			return QQ_BUG;
	q->pid = -1;
	if (!WIFEXITED(status))
		return QQ_BUG;
	return WEXITSTATUS(status);
}

/* Out of memory leaves the reply empty, never cut short: callers then
 * fall back on qq_reply(code). */
static void set_reply(struct str *reply, const char *text)
{
	if (str_copys(reply, text) < 0)
		str_clear(reply);
}

const char *qq_text(const struct str *reply, int code)
{
	return reply->len ? reply->s : qq_reply(code);
}

/* The child's own text for exit 82: "Dtext" is permanent, "Ztext" is
 * temporary. Anything unprintable is replaced, so it is safe to send. */
static void qq_custom_reply(struct qq *q, struct str *reply)
{
	char text[QQ_CUSTOM_MAX];
	size_t n = 0;
	ssize_t r;

	while (n < sizeof text &&
	       (r = read(q->errfd, text + n, sizeof text - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n += (size_t)r;
	}
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' ||
			 text[n - 1] == '\0'))
		n--;
	if (n < 2 || (text[0] != 'D' && text[0] != 'Z')) {
		set_reply(reply, "451 qq temporary problem (#4.3.0)");
		return;
	}
	/* "554 " or "451 " replaces the D or Z: one byte more. */
	char smtp[QQ_CUSTOM_MAX + 4];
	memcpy(smtp, text[0] == 'D' ? "554 " : "451 ", 4);
	size_t len = 4;
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)text[i];
		smtp[len++] = (c < 32 || c > 126) ? '?' : (char)c;
	}
	smtp[len] = 0;
	set_reply(reply, smtp);
}

static int qq_write_envelope(struct qq *q, const char *sender,
			     const struct str *rcpts)
{
	struct buf env;
	char space[BUF_SIZE];

	buf_init(&env, q->envfd, space, sizeof space, 0);
	if (buf_putc(&env, 'F') < 0 || buf_puts(&env, sender) < 0 ||
	    buf_putc(&env, 0) < 0)
		return -1;
	for (size_t pos = 0; pos < rcpts->len;) {
		const char *r = rcpts->s + pos;
		size_t len = strlen(r);
		if (buf_putc(&env, 'T') < 0 || buf_put(&env, r, len + 1) < 0)
			return -1;
		pos += len + 1;
	}
	if (buf_putc(&env, 0) < 0 || buf_flush(&env) < 0)
		return -1;
	return 0;
}

int qq_finish_list(struct qq *q, const char *sender, const struct str *rcpts,
		   struct str *reply)
{
	int code;

	if (!q->failed && buf_flush(&q->msg) < 0)
		q->failed = 1;
	close(q->msg.fd);
	if (!q->failed && qq_write_envelope(q, sender, rcpts) < 0)
		q->failed = 1;
	close(q->envfd);
	code = qq_wait(q);
	if (code == QQ_CUSTOM)
		qq_custom_reply(q, reply);
	else if (code == 0 && q->failed)
		code = QQ_BUG; /* it claims success on a message we broke */
	if (code != QQ_CUSTOM)
		set_reply(reply, qq_reply(code));
	close(q->errfd);
	return code;
}

int qq_finish(struct qq *q, const char *sender, const char *const *rcpts,
	      size_t nrcpts, struct str *reply)
{
	struct str list = STR_INIT;
	int code;

	for (size_t i = 0; i < nrcpts; i++)
		if (str_append(&list, rcpts[i], strlen(rcpts[i]) + 1) < 0) {
			qq_abort(q);
			set_reply(reply, qq_reply(QQ_NOMEM));
			return QQ_NOMEM;
		}
	code = qq_finish_list(q, sender, &list, reply);
	str_free(&list);
	return code;
}

void qq_abort(struct qq *q)
{
	if (q->pid > 0) {
		kill(q->pid, SIGTERM);
		close(q->msg.fd);
		close(q->envfd);
		close(q->errfd);
		qq_wait(q);
	}
}

void qq_cancel(struct qq *q)
{
	if (q->pid > 0) {
		close(q->msg.fd);
		close(q->envfd);
		qq_wait(q);
		close(q->errfd);
	}
}
