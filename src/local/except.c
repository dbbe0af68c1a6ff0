/*
 * except: run a program and turn its success into a permanent failure
 * and its permanent failure into success.
 *
 * Exit codes: the program's 0 becomes 100, its 100 becomes 0, any other
 * code is passed on. It never turns a crash or a program that cannot be
 * run into anything but 111, so a broken filter defers mail rather than
 * delivering or bouncing it. No shell is involved.
 */
#include "lib/exitcode.h"
#include "lib/log.h"
#include "mail/child.h"

int main(int argc, char **argv)
{
	log_init(argc > 0 ? argv[0] : "except");
	if (argc < 2)
		log_fatal(EXIT_PERM, "usage: except program [arg ...]");
	int code = child_run_or_defer(argv + 1);
	switch (code) {
	case 0:
		return EXIT_PERM;
	case EXIT_PERM:
		return 0;
	default:
		return code;
	}
}
