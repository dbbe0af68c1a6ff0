/*
 * condredirect: run a program on the message; when it exits 0, forward
 * the message to a new address (as forward does) and exit 99 so that
 * qmail-local stops reading the .qmail file.
 *
 * It never forwards unless the program said 0, never runs anything
 * through a shell, and never claims a forward that was not queued.
 * Exit codes: 99 forwarded; 111 the program said 111, crashed or could
 * not run, or forwarding failed temporarily; 100 usage or a permanent
 * refusal by qmail-queue; 0 any other answer of the program.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
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

/* Runs argv with our descriptors (the message on fd 0). Returns its exit
 * code, or -1 when it was killed by a signal. */
static int run_program(char *const *argv)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		log_fatal_sys(EXIT_TEMP, "unable to fork");
	if (pid == 0) {
		execvp(argv[0], argv);
		log_fatal_sys(EXIT_TEMP, "unable to run %s", argv[0]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			log_fatal_sys(EXIT_TEMP, "unable to wait for %s",
				      argv[0]);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

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

static void forward_to(const char *address, const char *sender,
		       const char *dtline)
{
	struct qq q;
	struct str reply = STR_INIT;

	/* The program has read the message: read it again from the top. */
	if (lseek(0, 0, SEEK_SET) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to rewind message");
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
	int code = qq_finish(&q, sender, &address, 1, &reply);
	if (code != 0)
		log_fatal(reply.s && reply.s[0] == '5' ? EXIT_PERM : EXIT_TEMP,
			  "%s", reply.s ? reply.s : "qmail-queue failed");
	log_info("forwarded qp %ld", qp);
}

int main(int argc, char **argv)
{
	log_init(argc > 0 ? argv[0] : "condredirect");
	if (argc < 3)
		log_fatal(EXIT_PERM,
			  "usage: condredirect newaddress program [arg ...]");
	const char *sender = need_env("NEWSENDER");
	const char *dtline = need_env("DTLINE");

	switch (run_program(argv + 2)) {
	case 0:
		break;
	case EXIT_TEMP:
		log_fatal(EXIT_TEMP, "temporary failure in %s", argv[2]);
	case -1:
		log_fatal(EXIT_TEMP, "%s crashed", argv[2]);
	default:
		return 0;
	}
	forward_to(argv[1], sender, dtline);
	return EXIT_STOP;
}
