/* t_home.c: every program finds its home the same way. */
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

#include "auto.h"
#include "lib/home.h"
#include "unit.h"

TEST(env_overrides_prefix)
{
	setenv("QMAILHOME", "/tmp", 1);
	CHECK_STR(home_dir(), strlen(home_dir()), "/tmp");
	unsetenv("QMAILHOME");
	CHECK_STR(home_dir(), strlen(home_dir()), AUTO_PREFIX);
	setenv("QMAILHOME", "", 1);
	CHECK_STR(home_dir(), strlen(home_dir()), AUTO_PREFIX);
}

TEST(instance_marker)
{
	char dir[] = "/tmp/t_home.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	setenv("QMAILHOME", dir, 1);
	home_chdir();
	CHECK(!home_is_instance());
	int fd = open("INSTANCE", O_WRONLY | O_CREAT, 0644);
	CHECK(fd >= 0);
	close(fd);
	CHECK(home_is_instance());
	unlink("INSTANCE");
	CHECK_INT(chdir("/"), 0);
	rmdir(dir);
}

TEST(missing_home_is_fatal_and_temporary)
{
	setenv("QMAILHOME", "/nonexistent/qmail-home", 1);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 2);
		home_chdir();
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 111);
}

UNIT_MAIN(env_overrides_prefix, instance_marker,
	  missing_home_is_fatal_and_temporary)
