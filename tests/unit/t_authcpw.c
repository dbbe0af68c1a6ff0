/* t_authcpw.c: running checkpassword (cpwrun), reading its input
 * (cpwin), moving the TLS descriptors off fd 3 (tlsfd), password hashes
 * (pwhash) and becoming the user (pwlogin). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/cpwin.h"
#include "auth/cpwrun.h"
#include "auth/pwhash.h"
#include "auth/pwlogin.h"
#include "auth/tlsfd.h"
#include "lib/env.h"
#include "unit.h"
#include "unit_tmp.h"

static const char *tmpdir;

/* Open to all: the login tests write there as another user. */
static void enter_tmpdir(void)
{
	tmpdir = unit_tmp_enter("t_authcpw");
	if (chmod(tmpdir, 0777) < 0) {
		perror("t_authcpw: chmod tmpdir");
		exit(2);
	}
}

/* The whole content of path into buf; returns its length or -1. */
static ssize_t slurp(const char *path, char *buf, size_t max)
{
	int fd = open(path, O_RDONLY);
	ssize_t n, total = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + total, max - (size_t)total)) > 0)
		total += n;
	close(fd);
	return total;
}

/* --- cpwrun --- */

static int run_sh(const char *script, const char *user, const char *pass,
		  const char *stamp, int *status)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	struct cpwrun_input in = {user,		strlen(user), pass,
				  strlen(pass), stamp,	      strlen(stamp)};
	return cpwrun(argv, &in, status);
}

TEST(cpwrun_hands_input_on_fd3)
{
	int status, code;
	char got[256];

	enter_tmpdir();
	signal(SIGPIPE, SIG_IGN);
	alarm(20); /* a leaked write end would keep cat waiting */
	CHECK_INT(run_sh("cat <&3 > in; printf %s \"$AUTHUP_USER\" > user; "
			 "exit 0",
			 "bob", "se cret", "<1.2@host>", &status),
		  0);
	CHECK_INT(cpwrun_outcome(status, &code), CPWRUN_SESSION);
	CHECK_INT(code, 0);
	ssize_t n = slurp("in", got, sizeof got);
	CHECK_MEM(got, n, "bob\0se cret\0<1.2@host>\0", 23);
	n = slurp("user", got, sizeof got);
	CHECK_STR(got, n, "bob");
	/* The empty SMTP timestamp. */
	CHECK_INT(run_sh("cat <&3 > in", "u", "p", "", &status), 0);
	n = slurp("in", got, sizeof got);
	CHECK_MEM(got, n, "u\0p\0\0", 5);
	/* AUTHUP_USER is the child's alone. */
	CHECK(getenv("AUTHUP_USER") == NULL);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(cpwrun_replaces_whatever_is_on_fd3)
{
	int status, code;
	char got[64];

	enter_tmpdir();
	signal(SIGPIPE, SIG_IGN);
	alarm(20);
	int null = open("/dev/null", O_RDONLY);
	CHECK(null >= 0);
	if (null != 3) {
		CHECK_INT(dup2(null, 3), 3);
		close(null);
	}
	CHECK_INT(run_sh("cat <&3 > in", "bob", "pw", "", &status), 0);
	CHECK_INT(cpwrun_outcome(status, &code), CPWRUN_SESSION);
	ssize_t n = slurp("in", got, sizeof got);
	CHECK_MEM(got, n, "bob\0pw\0\0", 8);
	/* Our own fd 3 is still what it was. */
	struct stat a, b;
	CHECK_INT(fstat(3, &a), 0);
	CHECK_INT(stat("/dev/null", &b), 0);
	CHECK(a.st_rdev == b.st_rdev);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(cpwrun_outcomes)
{
	int status, code;

	signal(SIGPIPE, SIG_IGN);
	static const struct {
		const char *script;
		enum cpwrun_outcome want;
		int code;
	} cases[] = {
	    {"exit 1", CPWRUN_FAILED, 1},
	    {"exit 2", CPWRUN_FAILED, 2},
	    {"exit 111", CPWRUN_FAILED, 111},
	    {"exit 0", CPWRUN_SESSION, 0},
	    {"exit 3", CPWRUN_SESSION, 3},
	    {"exit 100", CPWRUN_SESSION, 100},
	    {"exit 12", CPWRUN_SESSION, 12},
	    {"kill -SEGV $$", CPWRUN_CRASHED, SIGSEGV},
	    {"kill -KILL $$", CPWRUN_CRASHED, SIGKILL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_INT(run_sh(cases[i].script, "u", "p", "", &status), 0);
		CHECK_INT(cpwrun_outcome(status, &code), cases[i].want);
		CHECK_INT(code, cases[i].code);
	}
}

TEST(cpwrun_missing_program_is_a_failed_login)
{
	char *argv[] = {"/nonexistent/checkpassword", "true", NULL};
	struct cpwrun_input in = {"u", 1, "p", 1, "", 0};
	int status, code;

	signal(SIGPIPE, SIG_IGN);
	CHECK_INT(cpwrun(argv, &in, &status), 0);
	CHECK_INT(cpwrun_outcome(status, &code), CPWRUN_FAILED);
	CHECK_INT(code, 111);
}

TEST(cpwrun_refuses_bad_input)
{
	static char big[CPWRUN_INPUT_MAX];
	char *argv[] = {"/bin/sh", "-c", "touch ran", NULL};
	int status = 1234;

	enter_tmpdir();
	signal(SIGPIPE, SIG_IGN);
	memset(big, 'p', sizeof big);
	struct cpwrun_input in = {"u", 1, big, CPWRUN_INPUT_MAX - 4, "", 0};
	/* "u\0" + pass + "\0\0" is exactly the limit. */
	CHECK_INT(cpwrun(argv, &in, &status), 0);
	CHECK_INT(access("ran", F_OK), 0);
	unlink("ran");
	in.plen++;
	errno = 0;
	CHECK_INT(cpwrun(argv, &in, &status), -1);
	CHECK_INT(errno, EMSGSIZE);
	struct cpwrun_input nul = {"u\0v", 3, "p", 1, "", 0};
	errno = 0;
	CHECK_INT(cpwrun(argv, &nul, &status), -1);
	CHECK_INT(errno, EINVAL);
	CHECK(access("ran", F_OK) < 0); /* no child was started */
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(cpwrun_survives_a_child_that_never_reads)
{
	int status, code;

	signal(SIGPIPE, SIG_IGN);
	CHECK_INT(run_sh("exec 3<&-; exit 1", "u", "p", "", &status), 0);
	CHECK_INT(cpwrun_outcome(status, &code), CPWRUN_FAILED);
}

/* --- cpwin --- */

/* A pipe holding data; returns the read end. */
static int feed(const void *data, size_t n)
{
	int p[2];

	if (pipe(p) < 0)
		_exit(2);
	if (n && write(p[1], data, n) != (ssize_t)n)
		_exit(2);
	close(p[1]);
	return p[0];
}

TEST(cpwin_reads_fields)
{
	struct cpwin in;

	CHECK_INT(cpwin_read(feed("bob\0secret\0<ts>\0", 16), &in), 0);
	CHECK_STR(in.login, strlen(in.login), "bob");
	CHECK_STR(in.pass, strlen(in.pass), "secret");
	CHECK_STR(in.stamp, strlen(in.stamp), "<ts>");
	/* No timestamp at all, or one without its NUL. */
	CHECK_INT(cpwin_read(feed("bob\0secret\0", 11), &in), 0);
	CHECK_STR(in.stamp, strlen(in.stamp), "");
	CHECK_INT(cpwin_read(feed("bob\0secret\0<ts", 14), &in), 0);
	CHECK_STR(in.stamp, strlen(in.stamp), "<ts");
	/* Anything after the fields is ignored. */
	CHECK_INT(cpwin_read(feed("a\0b\0c\0junk\0more", 15), &in), 0);
	CHECK_STR(in.pass, strlen(in.pass), "b");
	/* An empty password is the checker's business, not malformed. */
	CHECK_INT(cpwin_read(feed("a\0\0\0", 4), &in), 0);
	CHECK_STR(in.pass, strlen(in.pass), "");
}

TEST(cpwin_refuses_malformed)
{
	struct cpwin in;

	errno = 0;
	CHECK_INT(cpwin_read(feed("", 0), &in), -1);
	CHECK_INT(errno, EPROTO);
	CHECK_INT(cpwin_read(feed("bob", 3), &in), -1);
	CHECK_INT(errno, EPROTO);
	CHECK_INT(cpwin_read(feed("bob\0secret", 10), &in), -1);
	CHECK_INT(errno, EPROTO);
	CHECK_INT(cpwin_read(feed("\0secret\0\0", 9), &in), -1);
	CHECK_INT(errno, EPROTO);
	/* The failed read left nothing of the password behind. */
	for (size_t i = 0; i < sizeof in.buf; i++)
		CHECK_INT(in.buf[i], 0);
	CHECK_INT(cpwin_read(-1, &in), -1);
	CHECK_INT(errno, EBADF);
}

TEST(cpwin_reads_at_most_512)
{
	static char data[700];
	struct cpwin in;

	/* A login that fills the 512 bytes has no room for its NUL. */
	memset(data, 'a', sizeof data);
	CHECK_INT(cpwin_read(feed(data, sizeof data), &in), -1);
	CHECK_INT(errno, EPROTO);
	/* Fields that end within 512 bytes are read, the rest ignored. */
	memset(data, 0, sizeof data);
	memset(data, 'l', 200);
	memset(data + 201, 'p', 309);
	CHECK_INT(cpwin_read(feed(data, sizeof data), &in), 0);
	CHECK_INT(in.len, CPWIN_MAX);
	CHECK_INT(strlen(in.pass), 309);
	/* One more byte of password and its NUL is past 512. */
	memset(data + 201, 'p', 311);
	CHECK_INT(cpwin_read(feed(data, sizeof data), &in), -1);
	CHECK_INT(errno, EPROTO);
}

TEST(cpwin_wipe_clears)
{
	struct cpwin in;

	CHECK_INT(cpwin_read(feed("bob\0secret\0", 11), &in), 0);
	cpwin_wipe(&in);
	for (size_t i = 0; i < sizeof in.buf; i++)
		CHECK_INT(in.buf[i], 0);
	CHECK_STR(in.pass, strlen(in.pass), "");
}

/* --- tlsfd --- */

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void put_on(int fd)
{
	int n = open("/dev/null", O_RDONLY);
	if (n < 0 || (n != fd && (dup2(n, fd) != fd || close(n) < 0)))
		_exit(2);
}

TEST(tlsfd_moves_all_three_together)
{
	struct ucspitls t = {TLS_REQUIRED, 3, 3, 3, 0};

	put_on(3);
	CHECK_INT(tlsfd_avoid(&t, 3), 0);
	CHECK(t.ctl > 3);
	CHECK_INT(t.rfd, t.ctl);
	CHECK_INT(t.wfd, t.ctl);
	CHECK(!fd_open(3));
	CHECK(fd_open(t.ctl));
	CHECK_INT(fcntl(t.ctl, F_GETFD) & FD_CLOEXEC, 0);
	char num[16];
	snprintf(num, sizeof num, "%d", t.ctl);
	CHECK_STR(getenv("SSLCTLFD"), strlen(getenv("SSLCTLFD")), num);
	CHECK_STR(getenv("SSLREADFD"), strlen(getenv("SSLREADFD")), num);
	CHECK_STR(getenv("SSLWRITEFD"), strlen(getenv("SSLWRITEFD")), num);
}

TEST(tlsfd_moves_only_fd3)
{
	struct ucspitls t = {TLS_OFFERED, 5, 3, 4, 0};

	put_on(3);
	put_on(4);
	put_on(5);
	env_set("SSLCTLFD", "5");
	env_set("SSLWRITEFD", "4");
	CHECK_INT(tlsfd_avoid(&t, 3), 0);
	CHECK_INT(t.ctl, 5);
	CHECK_INT(t.wfd, 4);
	CHECK(t.rfd > 5); /* the lowest free number above 3 */
	CHECK(!fd_open(3));
	CHECK(fd_open(4) && fd_open(5) && fd_open(t.rfd));
	CHECK_STR(getenv("SSLCTLFD"), 1, "5");
	CHECK_STR(getenv("SSLWRITEFD"), 1, "4");
	CHECK_INT(atoi(getenv("SSLREADFD")), t.rfd);
}

TEST(tlsfd_leaves_others_alone)
{
	struct ucspitls t = {TLS_OFFERED, 6, 7, 8, 0};

	put_on(3);
	unsetenv("SSLREADFD");
	CHECK_INT(tlsfd_avoid(&t, 3), 0);
	CHECK_INT(t.ctl, 6);
	CHECK_INT(t.rfd, 7);
	CHECK_INT(t.wfd, 8);
	CHECK(fd_open(3)); /* not ours to close */
	CHECK(getenv("SSLREADFD") == NULL);
	/* Missing descriptors (-1) are never taken for fd 3. */
	struct ucspitls none = {TLS_OFF, -1, -1, -1, 0};
	CHECK_INT(tlsfd_avoid(&none, 3), 0);
	CHECK(fd_open(3));
}

TEST(tlsfd_reports_a_closed_fd3)
{
	struct ucspitls t = {TLS_OFFERED, 3, 3, 3, 0};

	close(3);
	errno = 0;
	CHECK_INT(tlsfd_avoid(&t, 3), -1);
	CHECK_INT(errno, EBADF);
}

TEST(tlsfd_started_records)
{
	struct ucspitls t = {TLS_OFFERED, 9, 10, 11, 1};

	CHECK_INT(tlsfd_started(&t, 0, 1), 0);
	CHECK_INT(t.rfd, 0);
	CHECK_INT(t.wfd, 1);
	CHECK_INT(t.ctl, 9);
	CHECK_STR(getenv("SSLREADFD"), 1, "0");
	CHECK_STR(getenv("SSLWRITEFD"), 1, "1");
}

/* --- pwhash --- */

/* Ulrich Drepper's sha512-crypt test vector. */
static const char sha512_vector[] =
    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJ"
    "uesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
/* Made by libxcrypt's crypt() for "correct horse". */
static const char yescrypt_hash[] =
    "$y$j9T$KQ8eR5yXHk0S9vJr3.pY41$gjDVLOKKqz.lx/5rkp23J8a5yF4axIM."
    "FoOzVYfzKb2";

TEST(pwhash_checks_known_hashes)
{
	CHECK_INT(pwhash_check("Hello world!", sha512_vector), 1);
	CHECK_INT(pwhash_check("Hello world", sha512_vector), 0);
	CHECK_INT(pwhash_check("hello world!", sha512_vector), 0);
	CHECK_INT(pwhash_check("", sha512_vector), 0);
	CHECK_INT(pwhash_check("correct horse", yescrypt_hash), 1);
	CHECK_INT(pwhash_check("correct horsE", yescrypt_hash), 0);
	CHECK_INT(pwhash_check("correct horse ", yescrypt_hash), 0);
}

TEST(pwhash_refuses_unusable_hashes)
{
	char hash[sizeof sha512_vector + 1];

	CHECK_INT(pwhash_check("", ""), 0);
	CHECK_INT(pwhash_check("x", ""), 0);
	CHECK_INT(pwhash_check("x", "x"), 0);
	CHECK_INT(pwhash_check("x", "*"), 0);
	CHECK_INT(pwhash_check("x", "!"), 0);
	/* Locked accounts keep their hash behind '!' or '*'. */
	snprintf(hash, sizeof hash, "!%s", sha512_vector);
	CHECK_INT(pwhash_check("Hello world!", hash), 0);
	hash[0] = '*';
	CHECK_INT(pwhash_check("Hello world!", hash), 0);
	/* A hash cut short, or with a byte changed, never matches. */
	memcpy(hash, sha512_vector, sizeof sha512_vector);
	hash[sizeof sha512_vector - 2] = 0;
	CHECK_INT(pwhash_check("Hello world!", hash), 0);
	memcpy(hash, sha512_vector, sizeof sha512_vector);
	hash[20] = hash[20] == 'A' ? 'B' : 'A';
	CHECK_INT(pwhash_check("Hello world!", hash), 0);
	/* Too long for any crypt output. */
	static char huge[PWHASH_MAX + 10];
	memset(huge, 'a', sizeof huge - 1);
	memcpy(huge, "$6$salt$", 8);
	CHECK_INT(pwhash_check("x", huge), 0);
	CHECK(pwhash_locked(""));
	CHECK(pwhash_locked("!x"));
	CHECK(pwhash_locked("*"));
	CHECK(!pwhash_locked("$6$x"));
}

TEST(pwhash_makes_salted_yescrypt)
{
	char a[PWHASH_MAX], b[PWHASH_MAX];

	CHECK_INT(pwhash_make("pa:ss word", a), 0);
	CHECK_INT(pwhash_make("pa:ss word", b), 0);
	CHECK(strncmp(a, "$y$", 3) == 0);
	CHECK(strcmp(a, b) != 0); /* a fresh salt each time */
	CHECK(strchr(a, ':') == NULL);
	CHECK_INT(pwhash_check("pa:ss word", a), 1);
	CHECK_INT(pwhash_check("pa:ss word", b), 1);
	CHECK_INT(pwhash_check("pa:ss wor", a), 0);
	pwhash_waste("anything"); /* must simply return */
}

/* --- pwlogin --- */

/* Run pwlogin_exec in a child; returns its exit status. The prog
 * records its ids, directory and environment in "out". */
static int login_child(uid_t uid, gid_t gid, const char *home,
		       enum pwlogin_ids mode, uid_t become_first)
{
	static char *prog[] = {
	    "/bin/sh", "-c",
	    "{ id -u; id -g; id -G; pwd; echo \"$USER|$HOME|$SHELL\"; } "
	    "> \"$T/out\"",
	    NULL};
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (become_first &&
		    (setgroups(0, NULL) < 0 || setgid(become_first) < 0 ||
		     setuid(become_first) < 0))
			_exit(99);
		struct pwlogin l = {"virt", uid, gid, home, NULL};
		_exit(pwlogin_exec(&l, mode, prog));
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(pwlogin_switches_as_root)
{
	char out[256];

	if (geteuid() != 0) {
		/* Without root no id switch is possible. */
		CHECK_INT(
		    login_child(getuid() + 1, getgid(), "/", PWLOGIN_SWITCH, 0),
		    1);
		return;
	}
	enter_tmpdir();
	setenv("T", tmpdir, 1);
	CHECK_INT(login_child(65534, 65534, tmpdir, PWLOGIN_SWITCH, 0), 0);
	ssize_t n = slurp("out", out, sizeof out - 1);
	CHECK(n > 0);
	out[n > 0 ? n : 0] = 0;
	char want[256];
	snprintf(want, sizeof want,
		 "65534\n65534\n65534\n%s\nvirt|%s|/bin/sh\n", tmpdir, tmpdir);
	CHECK_STR(out, (size_t)n, want);
	unlink("out");
	/* SWITCH_ROOT switches too, when it is root. */
	CHECK_INT(login_child(65534, 65534, tmpdir, PWLOGIN_SWITCH_ROOT, 0), 0);
	CHECK(access("out", F_OK) == 0);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(pwlogin_without_root_keeps_its_own_ids_only)
{
	uid_t me = geteuid() == 0 ? 65534 : geteuid();
	uid_t first = geteuid() == 0 ? 65534 : 0;
	gid_t mygid = geteuid() == 0 ? 65534 : getgid();

	enter_tmpdir();
	setenv("T", tmpdir, 1);
	CHECK_INT(login_child(me, mygid, tmpdir, PWLOGIN_SWITCH_ROOT, first),
		  0);
	CHECK(access("out", F_OK) == 0);
	unlink("out");
	CHECK_INT(
	    login_child(me + 1, mygid, tmpdir, PWLOGIN_SWITCH_ROOT, first), 1);
	CHECK_INT(
	    login_child(me, mygid + 1, tmpdir, PWLOGIN_SWITCH_ROOT, first), 1);
	CHECK_INT(login_child(me + 1, mygid, tmpdir, PWLOGIN_SWITCH, first), 1);
	CHECK(access("out", F_OK) < 0);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(pwlogin_temporary_failures)
{
	uid_t me = geteuid() == 0 ? 65534 : geteuid();
	uid_t first = geteuid() == 0 ? 65534 : 0;
	gid_t mygid = geteuid() == 0 ? 65534 : getgid();
	char *missing[] = {"/nonexistent/prog", NULL};

	CHECK_INT(login_child(me, mygid, "/nonexistent/home",
			      PWLOGIN_SWITCH_ROOT, first),
		  111);
	pid_t pid = fork();
	if (pid == 0) {
		struct pwlogin l = {"virt", me, mygid, "/", NULL};
		if (first && (setgid(mygid) < 0 || setuid(first) < 0))
			_exit(99);
		_exit(pwlogin_exec(&l, PWLOGIN_SWITCH_ROOT, missing));
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 111);
}

UNIT_MAIN(cpwrun_hands_input_on_fd3, cpwrun_replaces_whatever_is_on_fd3,
	  cpwrun_outcomes, cpwrun_missing_program_is_a_failed_login,
	  cpwrun_refuses_bad_input, cpwrun_survives_a_child_that_never_reads,
	  cpwin_reads_fields, cpwin_refuses_malformed, cpwin_reads_at_most_512,
	  cpwin_wipe_clears, tlsfd_moves_all_three_together,
	  tlsfd_moves_only_fd3, tlsfd_leaves_others_alone,
	  tlsfd_reports_a_closed_fd3, tlsfd_started_records,
	  pwhash_checks_known_hashes, pwhash_refuses_unusable_hashes,
	  pwhash_makes_salted_yescrypt, pwlogin_switches_as_root,
	  pwlogin_without_root_keeps_its_own_ids_only,
	  pwlogin_temporary_failures)
