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
#include <unistd.h>

#include "lib/exitcode.h"
#include "lib/log.h"
#include "mail/child.h"
#include "mail/forward.h"

int main(int argc, char **argv)
{
	log_init(argc > 0 ? argv[0] : "condredirect");
	if (argc < 3)
		log_fatal(EXIT_PERM,
			  "usage: condredirect newaddress program [arg ...]");
	const char *sender, *dtline;
	forward_env_or_die(&sender, &dtline);

	switch (child_run_or_defer(argv + 2)) {
	case 0:
		break;
	case EXIT_TEMP:
		log_fatal(EXIT_TEMP, "temporary failure in %s", argv[2]);
	default:
		return 0;
	}
	/* The program has read the message: read it again from the top. */
	if (lseek(0, 0, SEEK_SET) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to rewind message");
	pid_t qp =
	    forward_or_die(dtline, sender, (const char *const *)(argv + 1), 1);
	log_info("forwarded qp %ld", (long)qp);
	return EXIT_STOP;
}
