/*
 * qmail-newu: compile users/assign into users/cdb for qmail-lspawn.
 *
 * It must never leave a partial or half-checked users/cdb: the new
 * database is written to users/cdb.tmp and renamed into place only after
 * the whole of users/assign has been read and found well formed, so any
 * error leaves the old users/cdb exactly as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "lib/cdbx.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "mail/users.h"

static _Noreturn void compile_failed(const struct users_diag *d)
{
	switch (d->fail) {
	case USERS_FAIL_SYNTAX:
		if (d->line)
			log_fatal(EXIT_TEMP, "%s line %lu: %s; %s unchanged",
				  USERS_ASSIGN, d->line, d->why, USERS_CDB);
		log_fatal(EXIT_TEMP, "%s: %s; %s unchanged", USERS_ASSIGN,
			  d->why, USERS_CDB);
	case USERS_FAIL_READ:
		log_fatal_sys(EXIT_TEMP, "%s %s", d->why, USERS_ASSIGN);
	case USERS_FAIL_WRITE:
	default:
		if (errno == ENOMEM)
			log_nomem();
		log_fatal_sys(EXIT_TEMP, "%s %s.tmp", d->why, USERS_CDB);
	}
}

int main(int argc, char **argv)
{
	struct cdbx_writer w;
	struct users_diag d;

	log_init(argc > 0 ? argv[0] : "qmail-newu");
	home_chdir();
	int fd = open(USERS_ASSIGN, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		log_fatal_sys(EXIT_TEMP, "unable to open %s", USERS_ASSIGN);
	if (cdbx_create(&w, USERS_CDB, 0644) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to create %s.tmp", USERS_CDB);
	if (users_compile(fd, &w, &d) < 0) {
		int saved = errno;
		cdbx_abort(&w);
		errno = saved;
		compile_failed(&d);
	}
	close(fd);
	if (cdbx_commit(&w) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write %s", USERS_CDB);
	return 0;
}
