/*
 * qmail-tcpok: forget every recorded SMTP connection timeout.
 *
 * Zeroes queue/lock/tcpto (qmail's IPv4 file, 1024 bytes, as qmail's
 * qmail-tcpok does) and queue/lock/tcpto6 under the home, each under an
 * exclusive lock. It never creates either file: a file made by root here
 * could not be written by qmail-remote afterwards.
 */
#include <sys/socket.h>

#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "remote/tcpto.h"

int main(int argc, char **argv)
{
	(void)argc;
	log_init(argv[0]);
	home_chdir();
	if (tcpto_clear(AF_INET) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to clear %s", TCPTO_FILE);
	if (tcpto_clear(AF_INET6) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to clear %s", TCPTO6_FILE);
	return 0;
}
