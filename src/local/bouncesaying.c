/*
 * bouncesaying: bounce the message with a given text, unconditionally or
 * when a program (run on the message, without a shell) exits 0.
 *
 * The text goes to fd 2 as it is, since it becomes the bounce message.
 * It never bounces on a crash or a temporary failure of the program:
 * those are 111. Any other answer of the program lets delivery go on (0).
 */
#include <unistd.h>

#include "lib/buf.h"
#include "lib/exitcode.h"
#include "lib/log.h"
#include "mail/child.h"

static _Noreturn void bounce(const char *text)
{
	struct str line = STR_INIT;

	/* One write, so the text is never interleaved with other output;
	 * the bounce stands even if the text cannot be written. */
	if (str_copys(&line, text) == 0 && str_appendc(&line, '\n') == 0)
		(void)fd_write_all(2, line.s, line.len, 0);
	_exit(EXIT_PERM);
}

int main(int argc, char **argv)
{
	log_init(argc > 0 ? argv[0] : "bouncesaying");
	if (argc < 2)
		log_fatal(EXIT_PERM,
			  "usage: bouncesaying error [program [arg ...]]");
	if (argc == 2)
		bounce(argv[1]);
	switch (child_run_or_defer(argv + 2)) {
	case 0:
		bounce(argv[1]);
	case EXIT_TEMP:
		log_fatal(EXIT_TEMP, "temporary failure in %s", argv[2]);
	default:
		return 0;
	}
}
