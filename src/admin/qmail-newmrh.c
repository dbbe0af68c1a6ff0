/*
 * qmail-newmrh: compile control/morercpthosts into morercpthosts.cdb.
 *
 * Each entry becomes a lowercased key with an empty value; qmail-smtpd
 * looks domains up there when they are not in rcpthosts. The cdb is
 * replaced atomically (lib/cdbx.h): qmail-smtpd sees the old one or the
 * new one, never half of either.
 */
#include <string.h>

#include "lib/cdbx.h"
#include "lib/ctl.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"

int main(int argc, char **argv)
{
	struct str list = STR_INIT, key = STR_INIT;
	struct cdbx_writer w;
	const char *e;
	size_t pos = 0;

	log_init(argv[0]);
	home_chdir();
	if (ctl_list("control/morercpthosts", &list) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to read control/morercpthosts");
	if (cdbx_create(&w, "control/morercpthosts.cdb", 0644) < 0)
		log_fatal_sys(EXIT_TEMP,
			      "unable to create control/morercpthosts.cdb.tmp");
	while ((e = ctl_next(&list, &pos))) {
		if (str_copys(&key, e) < 0)
			log_nomem();
		for (size_t i = 0; i < key.len; i++)
			if (key.s[i] >= 'A' && key.s[i] <= 'Z')
				key.s[i] = (char)(key.s[i] + 32);
		if (cdbx_add(&w, key.s, key.len, "", 0) < 0)
			log_fatal_sys(EXIT_TEMP, "unable to write "
						 "control/morercpthosts.cdb.tmp");
	}
	if (cdbx_commit(&w) < 0)
		log_fatal_sys(EXIT_TEMP,
			      "unable to move control/morercpthosts.cdb.tmp "
			      "into place");
	return 0;
}
