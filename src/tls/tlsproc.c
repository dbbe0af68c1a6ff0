/*
 * tlsproc.c: forking the application, ids, and control descriptors.
 *
 * The child changes its ids before it does anything else, and the TLS
 * side never passes it anything but SSL_* variables: a TLS process
 * taken over by its peer must not be able to steer the application.
 * Descriptors handed to the application are numbered 3 or above, so
 * they never land on 0, 1 or 2. Errors in the child are logged and end
 * it with _exit(111), so that nothing the parent set up (atexit
 * handlers, buffers) runs twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/env.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "lib/str.h"
#include "tls/tlsblock.h"
#include "tls/tlsproc.h"

int tlsids_parse(const char *s, unsigned long *out)
{
	unsigned long n = 0;

	if (!s || !*s)
		goto bad;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			goto bad;
		unsigned d = (unsigned)(*s - '0');
		/* uid_t and gid_t are 32 bits on every system we run on;
		 * (uid_t)-1 means "no change" to setuid, so refuse it. */
		if (n > (0xfffffffeUL - d) / 10)
			goto bad;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

int tlsids_from_env(struct tlsids *ids, const char *uidvar, const char *gidvar)
{
	const char *u = env_get(uidvar), *g = env_get(gidvar);
	unsigned long n;

	memset(ids, 0, sizeof *ids);
	if (u) {
		if (tlsids_parse(u, &n) < 0)
			return -1;
		ids->has_uid = 1;
		ids->uid = (uid_t)n;
	}
	if (g) {
		if (tlsids_parse(g, &n) < 0)
			return -1;
		ids->has_gid = 1;
		ids->gid = (gid_t)n;
	}
	return 0;
}

int tlsids_possible(const struct tlsids *ids)
{
	if (geteuid() == 0)
		return 1;
	if (ids->has_uid && (ids->uid != getuid() || ids->uid != geteuid()))
		return 0;
	if (ids->has_gid && (ids->gid != getgid() || ids->gid != getegid()))
		return 0;
	return 1;
}

int tlsids_take(const struct tlsids *ids)
{
	if (geteuid() == 0 && (ids->has_gid || ids->has_uid)) {
		/* Root's supplementary groups must not follow us. */
		gid_t g = ids->has_gid ? ids->gid : getegid();
		if (setgroups(1, &g) < 0)
			return -1;
	}
	if (ids->has_gid && setgid(ids->gid) < 0)
		return -1;
	if (ids->has_uid && setuid(ids->uid) < 0)
		return -1;
	return 0;
}

/* A socketpair whose ends are close-on-exec and numbered >= 3. */
static int pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 3)
			continue;
		int moved = fcntl(sv[i], F_DUPFD_CLOEXEC, 3);
		if (moved < 0) {
			close(sv[0]);
			close(sv[1]);
			return -1;
		}
		close(sv[i]);
		sv[i] = moved;
	}
	return 0;
}

static int setenv_fd(const char *name, int fd)
{
	char num[16];
	size_t i = sizeof num;

	num[--i] = 0;
	do {
		num[--i] = (char)('0' + fd % 10);
		fd /= 10;
	} while (fd);
	return env_set(name, num + i);
}

static _Noreturn void child_fail(const char *what)
{
	log_warn_sys("%s", what);
	_exit(111);
}

static _Noreturn void run(char *const *argv)
{
	signal(SIGPIPE, SIG_DFL);
	execvp(argv[0], argv);
	log_warn_sys("unable to run %s", argv[0]);
	_exit(111);
}

static _Noreturn void child_delayed(char *const *argv, int ctl, int data)
{
	if (fd_keep(ctl) < 0 || fd_keep(data) < 0)
		child_fail("unable to pass descriptors");
	if (setenv_fd("SSLCTLFD", ctl) < 0 ||
	    setenv_fd("SSLREADFD", data) < 0 ||
	    setenv_fd("SSLWRITEFD", data) < 0)
		child_fail("unable to set SSLCTLFD");
	run(argv);
}

static _Noreturn void child_immediate(char *const *argv, int ctl, int data,
				      int fd_in, int fd_out)
{
	struct str block = STR_INIT;

	if (fd_copy(fd_in, data) < 0 || fd_copy(fd_out, data) < 0)
		child_fail("unable to move the plaintext descriptor");
	if (data != fd_in && data != fd_out)
		close(data);
	env_unset("SSLCTLFD");
	env_unset("SSLREADFD");
	env_unset("SSLWRITEFD");
	int r = tlsblock_read(ctl, &block);
	if (r < 0)
		child_fail("unable to read the TLS variables");
	if (r == 0)
		_exit(111); /* no handshake, nothing to run */
	if (tlsblock_apply(block.s, block.len, "SSL_") < 0)
		child_fail("unable to set the TLS variables");
	str_free(&block);
	close(ctl);
	run(argv);
}

int tlsapp_start(struct tlsapp *app, char *const *argv,
		 const struct tlsids *ids, enum tlsmode mode, int fd_in,
		 int fd_out, void (*in_child)(void *), void *arg)
{
	int ctl[2], data[2];

	if (pair(ctl) < 0)
		return -1;
	if (pair(data) < 0) {
		close(ctl[0]);
		close(ctl[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(ctl[0]);
		close(ctl[1]);
		close(data[0]);
		close(data[1]);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		/* Without this the child would hold the TLS ends itself and
		 * never see them close. */
		close(ctl[0]);
		close(data[0]);
		if (in_child)
			in_child(arg);
		if (tlsids_take(ids) < 0)
			child_fail("unable to set the application's ids");
		if (mode == TLSMODE_DELAYED)
			child_delayed(argv, ctl[1], data[1]);
		child_immediate(argv, ctl[1], data[1], fd_in, fd_out);
	}
	close(ctl[1]);
	close(data[1]);
	app->pid = pid;
	app->ctl = ctl[0];
	app->data = data[0];
	return 0;
}

int tlsapp_wait_request(const struct tlsapp *app)
{
	unsigned char c;

	for (;;) {
		ssize_t r = read(app->ctl, &c, 1);
		if (r == 1)
			return c;
		if (r == 0)
			return 0;
		if (errno == ECONNRESET)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

int tlsapp_reap(struct tlsapp *app)
{
	int status;

	if (app->pid <= 0)
		return 111;
	for (;;) {
		pid_t r = waitpid(app->pid, &status, 0);
		if (r == app->pid)
			break;
		if (r < 0 && errno != EINTR)
			return 111;
	}
	app->pid = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 111;
}

int tlsproc_devnull(int fd)
{
	int n = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (n < 0)
		return -1;
	if (n == fd)
		return fd_keep(fd);
	if (fd_copy(fd, n) < 0) {
		close(n);
		return -1;
	}
	close(n);
	return 0;
}

int tlsproc_chroot(const char *dir)
{
	if (chdir(dir) < 0 || chroot(".") < 0 || chdir("/") < 0)
		return -1;
	return 0;
}
