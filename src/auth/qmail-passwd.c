/*
 * qmail-passwd: add, change and remove virtual users for
 * checkpassword-cdb.
 *
 *   qmail-passwd [-f file] [-u uid] [-g gid] [-d home] add login
 *   qmail-passwd [-f file] [-u uid] [-g gid] [-d home] change login
 *   qmail-passwd [-f file] remove login
 *   qmail-passwd [-f file] build
 *
 * The file (default users/passwd in the qmail home) holds one user per
 * line, "login:hash:uid:gid:home"; file.cdb is what checkpassword-cdb
 * reads. Under an exclusive lock on file.lock it rewrites the file
 * (file.tmp, fsync, rename, directory fsync), then rebuilds the cdb the
 * same way, both mode 600 and, when run as root, owned by the owner of
 * the directory that holds them. The password comes from the terminal
 * (asked twice, not echoed) or one line of standard input; it is never
 * taken from argv, which anyone can read in ps. A password is hashed
 * with yescrypt (sha512-crypt where yescrypt is missing) and wiped.
 *
 * Exit codes: 0 done, 100 refused (usage, a bad login, a user that
 * already exists or does not, passwords that differ), 111 temporary
 * failure (nothing changed, or the file changed and the cdb not: run
 * "build").
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth/cpwin.h"
#include "auth/pwhash.h"
#include "auth/sasl.h"
#include "auth/userdb.h"
#include "lib/buf.h"
#include "lib/cdbx.h"
#include "lib/ctl.h"
#include "lib/exitcode.h"
#include "lib/fsync_dir.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"

/* The file is read whole; this is far above any real user list. */
#define PASSWD_FILE_MAX ((size_t)64 << 20)

static struct {
	const char *file;
	struct str cdb, lock, tmp;
	enum userdb_op op;
	unsigned fields; /* what -u, -g and -d gave */
	struct userdb_entry e;
	uid_t owner;
	gid_t group;
	int chown_files;
} p;

static _Noreturn void usage(void)
{
	log_fatal(EXIT_PERM,
		  "usage: qmail-passwd [-f file] [-u uid] [-g gid] [-d home] "
		  "add|change login; qmail-passwd [-f file] remove login; "
		  "qmail-passwd [-f file] build");
}

/* --- the password --- */

static struct termios saved_tty;
static int tty_changed;

static void restore_tty(void)
{
	if (tty_changed)
		tcsetattr(0, TCSANOW, &saved_tty);
	tty_changed = 0;
}

static void on_signal(int sig)
{
	restore_tty();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line from fd 0 into buf (room max+1), without its end. Returns
 * its length, or -1: too long (EMSGSIZE), EOF before anything (EPIPE),
 * or the read error. */
static ssize_t read_line(char *buf, size_t max)
{
	size_t n = 0;
	char c;

	for (;;) {
		ssize_t r = read(0, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			if (n == 0) {
				errno = EPIPE;
				return -1;
			}
			break;
		}
		if (c == '\n')
			break;
		if (n == max) {
			errno = EMSGSIZE;
			return -1;
		}
		buf[n++] = c;
	}
	if (n && buf[n - 1] == '\r')
		n--;
	buf[n] = 0;
	return (ssize_t)n;
}

/* Ask on the terminal with echo off. */
static ssize_t ask(const char *prompt, char *buf, size_t max)
{
	struct termios quiet = saved_tty;
	ssize_t n;

	if (write(2, prompt, strlen(prompt)) < 0)
		return -1;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(0, TCSAFLUSH, &quiet) < 0)
		return -1;
	tty_changed = 1;
	n = read_line(buf, max);
	restore_tty();
	return n;
}

/* The new password into pass (room CPWIN_MAX). */
static void get_password(char *pass)
{
	/* checkpassword reads at most CPWIN_MAX bytes: "login\0pass\0\0". */
	size_t max = CPWIN_MAX - strlen(p.e.login) - 3;
	char again[CPWIN_MAX];
	ssize_t n;

	if (isatty(0) && tcgetattr(0, &saved_tty) == 0) {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
		n = ask("New password: ", pass, max);
		if (n > 0) {
			ssize_t m = ask("Retype new password: ", again, max);
			int same =
			    m == n && memcmp(pass, again, (size_t)n) == 0;
			sasl_wipe(again, sizeof again);
			if (m < 0)
				n = -1;
			else if (!same) {
				sasl_wipe(pass, CPWIN_MAX);
				log_fatal(EXIT_PERM, "the passwords differ");
			}
		}
	} else {
		n = read_line(pass, max);
	}
	if (n < 0 && errno == EMSGSIZE)
		log_fatal(EXIT_PERM, "the password is longer than %zu bytes",
			  max);
	if (n < 0)
		log_fatal_sys(EXIT_PERM, "unable to read the password");
	if (n == 0 || memchr(pass, 0, (size_t)n))
		log_fatal(EXIT_PERM, "the password must not be empty or hold "
				     "NUL");
}

static void hash_password(void)
{
	char pass[CPWIN_MAX];

	get_password(pass);
	int r = pwhash_make(pass, p.e.hash);
	sasl_wipe(pass, sizeof pass);
	if (r < 0)
		log_fatal_sys(EXIT_TEMP, "unable to hash the password");
	p.fields |= USERDB_HASH;
}

/* --- the defaults of a new user --- */

static unsigned long parse_id(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *s < '0' || *s > '9' || *end || errno || v >= 0xffffffffUL)
		log_fatal(EXIT_PERM, "not a %s: %s", what, s);
	return v;
}

/* In an instance every user runs as the instance's account; elsewhere
 * a non-root caller can only give its own ids. */
static void default_ids(void)
{
	if (p.fields & USERDB_UID && p.fields & USERDB_GID)
		return;
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (geteuid() == 0) {
		struct str account = STR_INIT, path = STR_INIT;
		if (str_copys(&path, home_dir()) < 0 ||
		    str_appends(&path, "/INSTANCE") < 0)
			log_nomem();
		int r = ctl_line(path.s, &account, NULL);
		str_free(&path);
		struct passwd *pw = r == 1 ? getpwnam(account.s) : NULL;
		if (!pw)
			log_fatal(EXIT_PERM, "not in an instance: give -u and "
					     "-g");
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		str_free(&account);
	}
	if (!(p.fields & USERDB_UID))
		p.e.uid = uid;
	if (!(p.fields & USERDB_GID))
		p.e.gid = gid;
}

static void default_home(void)
{
	struct str home = STR_INIT;

	if (p.fields & USERDB_HOME)
		return;
	if (home_dir()[0] != '/')
		log_fatal(EXIT_PERM, "the qmail home is not absolute: give -d");
	if (str_copys(&home, home_dir()) < 0 ||
	    str_appends(&home, "/mail/") < 0 ||
	    str_appends(&home, p.e.login) < 0)
		log_nomem();
	if (home.len >= sizeof p.e.home)
		log_fatal(EXIT_PERM, "the home would be too long: give -d");
	memcpy(p.e.home, home.s, home.len + 1);
	if (access(p.e.home, F_OK) < 0)
		log_warn("%s does not exist yet", p.e.home);
	str_free(&home);
}

/* --- files --- */

static void set_paths(void)
{
	if (str_copys(&p.cdb, p.file) < 0 || str_appends(&p.cdb, ".cdb") < 0 ||
	    str_copys(&p.lock, p.file) < 0 ||
	    str_appends(&p.lock, ".lock") < 0 ||
	    str_copys(&p.tmp, p.file) < 0 || str_appends(&p.tmp, ".tmp") < 0)
		log_nomem();
}

/* Files we write belong to whoever owns their directory. */
static void find_owner(void)
{
	struct str dir = STR_INIT;
	struct stat st;
	const char *slash = strrchr(p.file, '/');

	if (geteuid() != 0)
		return;
	if (str_copy(&dir, p.file, slash ? (size_t)(slash - p.file) : 0) < 0 ||
	    (dir.len == 0 && str_copys(&dir, slash ? "/" : ".") < 0))
		log_nomem();
	if (stat(dir.s, &st) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to stat %s", dir.s);
	p.owner = st.st_uid;
	p.group = st.st_gid;
	p.chown_files = 1;
	str_free(&dir);
}

static void own(int fd, const char *path)
{
	if (p.chown_files && fchown(fd, p.owner, p.group) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to chown %s", path);
}

/* Held until exit: two runs never interleave. */
static void take_lock(void)
{
	int fd =
	    open(p.lock.s,
		 O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		log_fatal_sys(EXIT_TEMP, "unable to open %s", p.lock.s);
	own(fd, p.lock.s);
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR)
			log_fatal_sys(EXIT_TEMP, "unable to lock %s", p.lock.s);
}

/* The whole source file; a missing one is empty. */
static void read_source(struct str *text)
{
	char chunk[4096];
	int fd = open(p.file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		if (errno == ENOENT)
			return;
		log_fatal_sys(EXIT_TEMP, "unable to open %s", p.file);
	}
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			log_fatal_sys(EXIT_TEMP, "unable to read %s", p.file);
		if (r == 0)
			break;
		if (text->len + (size_t)r > PASSWD_FILE_MAX)
			log_fatal(EXIT_TEMP, "%s is too large", p.file);
		if (str_append(text, chunk, (size_t)r) < 0)
			log_nomem();
	}
	close(fd);
}

static void write_source(const struct str *text)
{
	int fd;

	unlink(p.tmp.s); /* left by a run that died; we hold the lock */
	fd = open(p.tmp.s,
		  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
		      O_NOCTTY,
		  0600);
	if (fd < 0)
		log_fatal_sys(EXIT_TEMP, "unable to create %s", p.tmp.s);
	own(fd, p.tmp.s);
	if (fd_write_all(fd, text->s, text->len, 0) < 0 || fsync(fd) < 0 ||
	    close(fd) < 0) {
		int e = errno;
		unlink(p.tmp.s);
		errno = e;
		log_fatal_sys(EXIT_TEMP, "unable to write %s", p.tmp.s);
	}
	if (rename(p.tmp.s, p.file) < 0) {
		int e = errno;
		unlink(p.tmp.s);
		errno = e;
		log_fatal_sys(EXIT_TEMP, "unable to rename %s", p.tmp.s);
	}
	if (fsync_dir_of(p.file) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to sync the directory of %s",
			      p.file);
}

static int add_to_cdb(void *ctx, const struct userdb_entry *e)
{
	struct cdbx_writer *w = ctx;
	struct str val = STR_INIT;
	int r = 0;

	if (userdb_format_value(&val, e) < 0)
		log_nomem();
	if (cdbx_add(w, e->login, strlen(e->login), val.s, val.len) < 0)
		r = -1;
	str_free(&val);
	return r;
}

static void write_cdb(const struct str *text)
{
	struct cdbx_writer w;

	if (cdbx_create(&w, p.cdb.s, 0600) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to create %s.tmp", p.cdb.s);
	if (p.chown_files && fchown(w.fd, p.owner, p.group) < 0) {
		int e = errno;
		cdbx_abort(&w);
		errno = e;
		log_fatal_sys(EXIT_TEMP, "unable to chown %s.tmp", p.cdb.s);
	}
	if (userdb_each(text->s, text->len, add_to_cdb, &w) != 0) {
		int e = errno;
		cdbx_abort(&w);
		errno = e;
		log_fatal_sys(EXIT_TEMP, "unable to write %s.tmp", p.cdb.s);
	}
	if (cdbx_commit(&w) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write %s", p.cdb.s);
}

/* --- the edit --- */

static void edit(void)
{
	struct str text = STR_INIT, out = STR_INIT;
	unsigned long line;

	take_lock();
	read_source(&text);
	if (userdb_edit(text.s ? text.s : "", text.len, p.op, &p.e, p.fields,
			&out, &line) < 0) {
		if (errno == EEXIST)
			log_fatal(EXIT_PERM, "%s already exists", p.e.login);
		if (errno == ENOENT)
			log_fatal(EXIT_PERM, "%s does not exist", p.e.login);
		if (errno == EINVAL && line)
			log_fatal(EXIT_TEMP, "%s: line %lu is malformed",
				  p.file, line);
		if (errno == EINVAL)
			log_fatal(EXIT_PERM, "the new entry is not valid");
		log_nomem();
	}
	if (p.op != USERDB_CHECK)
		write_source(&out);
	write_cdb(&out);
	str_wipe(&text);
	str_wipe(&out);
}

static void parse_command(char **argv)
{
	const char *cmd = argv[0];

	if (!cmd)
		usage();
	if (strcmp(cmd, "build") == 0) {
		if (argv[1])
			usage();
		p.op = USERDB_CHECK;
		return;
	}
	if (strcmp(cmd, "add") == 0)
		p.op = USERDB_ADD;
	else if (strcmp(cmd, "change") == 0)
		p.op = USERDB_CHANGE;
	else if (strcmp(cmd, "remove") == 0)
		p.op = USERDB_REMOVE;
	else
		usage();
	if (!argv[1] || argv[2])
		usage();
	if (!userdb_login_ok(argv[1], strlen(argv[1])))
		log_fatal(EXIT_PERM,
			  "not a valid login: printable ASCII "
			  "without ':' or blanks, not starting "
			  "with '#', at most %d bytes",
			  USERDB_LOGIN_MAX);
	memcpy(p.e.login, argv[1], strlen(argv[1]) + 1);
}

static void parse_options(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "f:u:g:d:")) != -1) {
		switch (opt) {
		case 'f':
			p.file = optarg;
			break;
		case 'u':
			p.e.uid = parse_id(optarg, "uid");
			if (p.e.uid == 0)
				log_fatal(EXIT_PERM, "a virtual user is never "
						     "root (uid 0)");
			p.fields |= USERDB_UID;
			break;
		case 'g':
			p.e.gid = parse_id(optarg, "gid");
			p.fields |= USERDB_GID;
			break;
		case 'd':
			if (optarg[0] != '/' ||
			    strlen(optarg) >= sizeof p.e.home)
				log_fatal(EXIT_PERM, "the home must be an "
						     "absolute path");
			memcpy(p.e.home, optarg, strlen(optarg) + 1);
			p.fields |= USERDB_HOME;
			break;
		default:
			usage();
		}
	}
}

int main(int argc, char **argv)
{
	struct str dflt = STR_INIT;

	log_init(argv[0]);
	umask(077);
	parse_options(argc, argv);
	parse_command(argv + optind);
	if ((p.op == USERDB_REMOVE || p.op == USERDB_CHECK) && p.fields)
		usage();
	if (!p.file) {
		if (str_copys(&dflt, home_dir()) < 0 ||
		    str_appends(&dflt, "/users/passwd") < 0)
			log_nomem();
		p.file = dflt.s;
	}
	set_paths();
	find_owner();
	if (p.op == USERDB_ADD) {
		default_ids();
		default_home();
	}
	/* The password is read before the lock: a person may be slow. */
	if (p.op == USERDB_ADD || p.op == USERDB_CHANGE)
		hash_password();
	edit();
	return 0;
}
