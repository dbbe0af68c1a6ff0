/*
 * home.c: finding the mail system's home directory.
 *
 * The one rule: QMAILHOME from the environment, unless this process is
 * setuid or setgid, in which case only the compiled-in prefix counts. A
 * caller of a setuid qmail-queue must never be able to point it at a
 * queue of its choosing.
 */
#include <unistd.h>

#include "auto.h"
#include "env.h"
#include "exitcode.h"
#include "home.h"
#include "log.h"

const char *home_dir(void)
{
	const char *h = env_trusted("QMAILHOME");
	return (h && *h) ? h : AUTO_PREFIX;
}

void home_chdir(void)
{
	const char *h = home_dir();
	if (chdir(h) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to switch to %s", h);
}

int home_is_instance(void)
{
	return access("INSTANCE", F_OK) == 0;
}
