/*
 * qmail-tcpto: print the table of SMTP connection timeouts.
 *
 * Reads queue/lock/tcpto (qmail's IPv4 file) and queue/lock/tcpto6 under
 * the home, with a shared lock, and prints one line per address that
 * has timed out, in qmail-tcpto's format. It only reads: it must never
 * change either file.
 */
#include <inttypes.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "remote/tcpto.h"

static void print_table(struct buf *out, int af, const char *path, uint64_t now)
{
	struct tcpto_table t;
	struct tcpto_entry e;
	char ip[INET6_ADDRSTRLEN], line[256];

	if (tcpto_read(af, &t) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to read %s", path);
	for (size_t i = 0; i < tcpto_slots(&t); i++) {
		if (!tcpto_entry(&t, i, &e))
			continue;
		uint64_t age = tcpto_age(&t, &e, now);
		int n = snprintf(line, sizeof line,
				 "%s timed out %" PRIu64
				 " seconds ago; # recent timeouts: %u\n",
				 dns_ip_format(&e.ip, ip, sizeof ip),
				 age == UINT64_MAX ? 0 : age, e.count);
		if (n < 0 || (size_t)n >= sizeof line ||
		    buf_put(out, line, (size_t)n) < 0)
			log_fatal_sys(EXIT_TEMP, "unable to write output");
	}
}

int main(int argc, char **argv)
{
	char space[BUF_SIZE];
	struct buf out;
	uint64_t now;

	(void)argc;
	log_init(argv[0]);
	home_chdir();
	buf_init(&out, 1, space, sizeof space, 0);
	now = (uint64_t)time(NULL);
	print_table(&out, AF_INET, TCPTO_FILE, now);
	print_table(&out, AF_INET6, TCPTO6_FILE, now);
	if (buf_flush(&out) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write output");
	return 0;
}
