/*
 * qmail-rspawn: run remote deliveries through qmail-remote.
 *
 * One qmail-remote per recipient, with the interface of qmail-remote(8):
 * argv host sender recipient, message on fd 0, reports on fd 1. This
 * program turns those reports into one per delivery. A crash, an exit
 * 111 or a report that does not parse is a temporary failure.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "queue/spawn.h"

static _Noreturn void deliver(const char *sender, const char *rcpt)
{
	struct str local = STR_INIT, host = STR_INIT, prog = STR_INIT;

	spawn_split(rcpt, &local, &host);
	if (str_copys(&prog, home_dir()) < 0 ||
	    str_appends(&prog, "/bin/qmail-remote") < 0)
		_exit(EXIT_TEMP);
	char *argv[] = {prog.s, host.s, (char *)sender, (char *)rcpt, NULL};
	execv(prog.s, argv);
	_exit(EXIT_TEMP);
}

/* The n-th NUL-terminated record in output, or NULL. */
static const char *record(const struct str *output, int n, size_t *len)
{
	size_t pos = 0;
	for (int i = 0; pos < output->len; i++) {
		const char *end = memchr(output->s + pos, 0, output->len - pos);
		if (!end)
			return NULL; /* an unterminated record does not count */
		if (i == n) {
			*len = (size_t)(end - (output->s + pos));
			return output->s + pos;
		}
		pos = (size_t)(end - output->s) + 1;
	}
	return NULL;
}

static void set(struct str *r, char kind, const char *text, size_t len)
{
	if (str_appendc(r, kind) < 0 || str_append(r, text, len) < 0)
		log_nomem();
}

static void sets(struct str *r, char kind, const char *text)
{
	set(r, kind, text, strlen(text));
}

static void report(int status, const struct str *output, struct str *r)
{
	size_t rlen = 0, mlen = 0;
	const char *rcpt, *msg;

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		sets(r, 'Z',
		     "Unable to run qmail-remote, or it crashed. (#4.3.0)");
		return;
	}
	rcpt = record(output, 0, &rlen);
	msg = record(output, 1, &mlen);
	if (rcpt && rlen > 0 && msg && mlen > 0) {
		/* Recipient report, then the message report. */
		/* The recipient's own answer, unless it was accepted: then
		 * the message report says what became of it. */
		if (rcpt[0] == 'r' && (msg[0] == 'K' || msg[0] == 'Z' ||
				       msg[0] == 'D'))
			set(r, msg[0], msg + 1, mlen - 1);
		else if (rcpt[0] == 'h' || rcpt[0] == 's') {
			/* What the server said of the recipient, then what
			 * became of the message ("Giving up on ..."). */
			set(r, rcpt[0] == 'h' ? 'D' : 'Z', rcpt + 1, rlen - 1);
			if (str_append(r, msg + 1, mlen - 1) < 0)
				log_nomem();
		}
		else
			sets(r, 'Z', "qmail-remote report unreadable. (#4.3.0)");
		return;
	}
	/* No recipient report: the message report says it all. */
	if (rcpt && rlen > 0 && (rcpt[0] == 'Z' || rcpt[0] == 'D')) {
		set(r, rcpt[0], rcpt + 1, rlen - 1);
		return;
	}
	sets(r, 'Z', "qmail-remote report unreadable. (#4.3.0)");
}

int main(int argc, char **argv)
{
	static const struct spawn_ops ops = {deliver, report};

	log_init(argv[0]);
	home_chdir();
	return spawn_main(&ops);
}
