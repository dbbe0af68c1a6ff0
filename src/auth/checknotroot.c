/*
 * checknotroot: refuse to run a program as root.
 *
 *   checknotroot prog...
 *
 * It sits between checkpassword and the mail program: when a login
 * turned out to be root's, it exits 1, which qmail-authup reports as a
 * failed login, so that a person who guessed root's password learns
 * nothing. It must never exec prog with a real uid of 0.
 */
#include <string.h>
#include <unistd.h>

#include "lib/log.h"

static void say(const char *s)
{
	ssize_t w = write(2, s, strlen(s));
	(void)w;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		say("checknotroot: usage: checknotroot prog...\n");
		return 1;
	}
	if (getuid() == 0) {
		say("checknotroot: WAS RUNNING AS ROOT, TERMINATING\n");
		return 1;
	}
	execvp(argv[1], argv + 1);
	log_init("checknotroot");
	log_fatal_sys(1, "unable to run %s", argv[1]);
}
