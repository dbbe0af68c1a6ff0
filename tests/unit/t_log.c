/* t_log.c: the diagnostic format, on fd 2, one line per write. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "lib/log.h"
#include "unit.h"

/* Run fn in a child with fd 2 on a pipe; return its status and output. */
static int capture(void (*fn)(void), char *out, size_t size, size_t *n)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 2);
		fn();
		_exit(0);
	}
	close(p[1]);
	*n = 0;
	ssize_t r;
	while ((r = read(p[0], out + *n, size - *n)) > 0)
		*n += (size_t)r;
	close(p[0]);
	int status;
	waitpid(pid, &status, 0);
	return WEXITSTATUS(status);
}

static void do_warn(void)
{
	log_init("/var/qmail/bin/qmail-test");
	log_warn("unable to open %s", "control/me");
}

static void do_fatal_sys(void)
{
	log_init("qmail-test");
	errno = ENOENT;
	log_fatal_sys(111, "unable to read %s", "control/rcpthosts");
}

static void do_long(void)
{
	char big[5000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	log_init("p");
	log_info("%s", big);
}

TEST(format_warn)
{
	char out[4096];
	size_t n;
	CHECK_INT(capture(do_warn, out, sizeof out, &n), 0);
	CHECK_STR(out, n, "qmail-test: warning: unable to open control/me\n");
}

TEST(format_fatal_sys)
{
	char out[4096];
	size_t n;
	CHECK_INT(capture(do_fatal_sys, out, sizeof out, &n), 111);
	CHECK_STR(out, n,
		  "qmail-test: fatal: unable to read control/rcpthosts: "
		  "No such file or directory\n");
}

TEST(long_text_is_cut_not_overflowed)
{
	char out[8192];
	size_t n;
	CHECK_INT(capture(do_long, out, sizeof out, &n), 0);
	CHECK_INT(n, 2048);
	CHECK(memcmp(out, "p: info: xxx", 12) == 0);
	CHECK_INT(out[n - 1], '\n');
}

UNIT_MAIN(format_warn, format_fatal_sys, long_text_is_cut_not_overflowed)
