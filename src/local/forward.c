/*
 * forward: send the message on fd 0 on to the given addresses, through
 * qmail-queue, with envelope sender $NEWSENDER and $DTLINE prepended.
 *
 * Meant for .qmail files. It must never report success for a message
 * that is not queued: any doubt is a temporary failure (111), and only a
 * permanent refusal by qmail-queue, or a usage error, is 100.
 */
#include <stddef.h>

#include "lib/exitcode.h"
#include "lib/log.h"
#include "mail/forward.h"

int main(int argc, char **argv)
{
	log_init(argc > 0 ? argv[0] : "forward");
	if (argc < 2)
		log_fatal(EXIT_PERM, "usage: forward address [address ...]");
	const char *sender, *dtline;
	forward_env_or_die(&sender, &dtline);

	pid_t qp =
	    forward_or_die(dtline, sender, (const char *const *)(argv + 1),
			   (size_t)(argc - 1));
	log_info("qp %ld", (long)qp);
	return 0;
}
