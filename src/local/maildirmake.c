/*
 * maildirmake: create an empty Maildir: dir and its tmp, new and cur,
 * each with mode 700.
 *
 * It never touches an existing directory: when dir is already there it
 * fails (111) and changes nothing.
 */
#include <sys/stat.h>

#include "lib/exitcode.h"
#include "lib/log.h"
#include "lib/str.h"

static void make_dir(const char *path)
{
	if (mkdir(path, 0700) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to create %s", path);
}

int main(int argc, char **argv)
{
	static const char *const subdirs[] = {"/tmp", "/new", "/cur"};
	struct str path = STR_INIT;

	log_init(argc > 0 ? argv[0] : "maildirmake");
	if (argc != 2)
		log_fatal(EXIT_PERM, "usage: maildirmake dir");
	/* Mode 700 exactly, whatever umask the caller had. */
	umask(077);
	make_dir(argv[1]);
	for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
		if (str_copys(&path, argv[1]) < 0 ||
		    str_appends(&path, subdirs[i]) < 0)
			log_nomem();
		make_dir(path.s);
	}
	str_free(&path);
	return 0;
}
