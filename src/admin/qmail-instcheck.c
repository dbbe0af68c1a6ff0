/*
 * qmail-instcheck: check the owners and modes of an installation.
 *
 * It compares every path of the table (admin/hier.h) under the prefix,
 * and every file that the manifest says make install wrote, with what
 * lstat finds, and prints one line for each path that differs: the path,
 * what the table expects and what is there. With -p it prints the table
 * instead, which scripts/install.sh applies. It only reads: it must never
 * change a file, and never follow a symbolic link.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/hier.h"
#include "auto.h"
#include "lib/buf.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"

#define USAGE "usage: qmail-instcheck [-p] [-a account] [dir]"

/* -a: every account of the table is this one, every group its group. */
struct mapping {
	const char *account;
	uid_t uid;
	gid_t gid;
	char group[64];
};

static char outspace[BUF_SIZE];
static struct buf out;

static void put(const char *s)
{
	if (buf_puts(&out, s) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

static void put_num(unsigned long n)
{
	if (buf_putnum(&out, n) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

static void put_mode(unsigned mode)
{
	char s[16];
	snprintf(s, sizeof s, "%04o", mode & 07777);
	put(s);
}

static void put_path(const char *dir, const struct str *rel)
{
	if (buf_putvisible(&out, dir, strlen(dir)) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
	if (rel->len == 1 && rel->s[0] == '.')
		return;
	put("/");
	if (buf_putvisible(&out, rel->s, rel->len) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

static void mapping_init(struct mapping *m, const char *account)
{
	errno = 0;
	struct passwd *pw = getpwnam(account);
	if (!pw)
		log_fatal(errno ? EXIT_TEMP : EXIT_PERM,
			  "unable to find the account %s", account);
	if (pw->pw_uid == 0)
		log_fatal(EXIT_PERM, "-a %s: the account must not be root",
			  account);
	m->account = account;
	m->uid = pw->pw_uid;
	m->gid = pw->pw_gid;
	struct group *gr = getgrgid(m->gid);
	if (gr && strlen(gr->gr_name) < sizeof m->group)
		snprintf(m->group, sizeof m->group, "%s", gr->gr_name);
	else
		snprintf(m->group, sizeof m->group, "%lu",
			 (unsigned long)m->gid);
}

static const char *owner_name(const struct mapping *m, const char *owner)
{
	return m->account ? m->account : owner;
}

static const char *group_name(const struct mapping *m, const char *group)
{
	return m->account ? m->group : group;
}

/* 1 with *uid set, 0 when the account does not exist. */
static int owner_uid(const struct mapping *m, const char *owner, uid_t *uid)
{
	if (m->account) {
		*uid = m->uid;
		return 1;
	}
	errno = 0;
	struct passwd *pw = getpwnam(owner);
	if (!pw && errno)
		log_fatal_sys(EXIT_TEMP, "unable to look up the account %s",
			      owner);
	if (pw)
		*uid = pw->pw_uid;
	return pw != NULL;
}

static int group_gid(const struct mapping *m, const char *group, gid_t *gid)
{
	if (m->account) {
		*gid = m->gid;
		return 1;
	}
	errno = 0;
	struct group *gr = getgrnam(group);
	if (!gr && errno)
		log_fatal_sys(EXIT_TEMP, "unable to look up the group %s",
			      group);
	if (gr)
		*gid = gr->gr_gid;
	return gr != NULL;
}

/* ---- the manifest ---- */

struct manifest_state {
	const char *dir;
	int checking;		/* report bad lines instead of failing */
	unsigned long problems; /* bad lines reported */
};

static void bad_line(struct manifest_state *st, unsigned long lineno,
		     const struct str *line)
{
	if (!st->checking)
		log_fatal(EXIT_PERM,
			  "%s/%s: line %lu is not a file make install writes",
			  st->dir, HIER_MANIFEST, lineno);
	if (buf_putvisible(&out, st->dir, strlen(st->dir)) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
	put("/" HIER_MANIFEST ": line ");
	put_num(lineno);
	put(" is not a file make install writes: ");
	if (buf_putvisible(&out, line->s, line->len) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
	put("\n");
	st->problems++;
}

static void read_lines(struct hier *h, struct buf *in,
		       struct manifest_state *st)
{
	struct str line = STR_INIT;
	unsigned long lineno = 0;

	for (;;) {
		str_clear(&line);
		int rc = buf_getline(in, &line, '\n', HIER_PATH_MAX + 1);
		if (rc < 0 && errno != EMSGSIZE)
			log_fatal_sys(EXIT_TEMP, "unable to read %s/%s",
				      st->dir, HIER_MANIFEST);
		if (rc == 0 && line.len == 0)
			break;
		lineno++;
		if (rc < 0 && buf_skipline(in, '\n') < 0)
			log_fatal_sys(EXIT_TEMP, "unable to read %s/%s",
				      st->dir, HIER_MANIFEST);
		if (rc > 0)
			str_truncate(&line, line.len - 1);
		int added = hier_installed(h, line.s, line.len);
		if (added < 0)
			log_nomem();
		if (added == 0)
			bad_line(st, lineno, &line);
	}
	str_free(&line);
}

/* A manifest that is missing or a symbolic link adds nothing: the check
 * of its own entry reports it. */
static void read_manifest(struct hier *h, struct manifest_state *st)
{
	static char space[BUF_SIZE];
	struct buf in;

	int fd = open(HIER_MANIFEST, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP)
			return;
		log_fatal_sys(EXIT_TEMP, "unable to open %s/%s", st->dir,
			      HIER_MANIFEST);
	}
	buf_init(&in, fd, space, sizeof space, 0);
	read_lines(h, &in, st);
	close(fd);
}

/* ---- -p: the table, one line per path ---- */

static void print_table(const struct hier *h, const struct mapping *m)
{
	for (size_t i = 0; i < h->n; i++) {
		const struct hier_entry *e = &h->e[i];
		put(e->when == HIER_OWN ? "own " : "make ");
		char kind[3] = {e->kind, ' ', '\0'};
		put(kind);
		put(owner_name(m, e->owner));
		put(" ");
		put(group_name(m, e->group));
		put(" ");
		put_mode(e->mode);
		put(" ");
		put_num(e->size);
		put(" ");
		put(e->path.s);
		put("\n");
	}
}

/* ---- the check ---- */

static const char *kind_word(char kind)
{
	return kind == HIER_DIR ? "dir" : kind == HIER_FILE ? "file" : "fifo";
}

static const char *found_word(mode_t mode)
{
	if (S_ISDIR(mode))
		return "dir";
	if (S_ISREG(mode))
		return "file";
	if (S_ISFIFO(mode))
		return "fifo";
	if (S_ISLNK(mode))
		return "symlink";
	return "other";
}

static int kind_matches(char kind, mode_t mode)
{
	return (kind == HIER_DIR && S_ISDIR(mode)) ||
	       (kind == HIER_FILE && S_ISREG(mode)) ||
	       (kind == HIER_FIFO && S_ISFIFO(mode));
}

static void put_found_owner(uid_t uid, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	if (pw)
		put(pw->pw_name);
	else
		put_num(uid);
	put(":");
	struct group *gr = getgrgid(gid);
	if (gr)
		put(gr->gr_name);
	else
		put_num(gid);
}

static void report(const char *dir, const struct hier_entry *e,
		   const struct mapping *m, const struct stat *st)
{
	put_path(dir, &e->path);
	put(": expected ");
	put(kind_word(e->kind));
	put(" ");
	put(owner_name(m, e->owner));
	put(":");
	put(group_name(m, e->group));
	put(" ");
	put_mode(e->mode);
	put(", found ");
	if (!st) {
		put("nothing\n");
		return;
	}
	put(found_word(st->st_mode));
	put(" ");
	put_found_owner(st->st_uid, st->st_gid);
	put(" ");
	put_mode(st->st_mode);
	put("\n");
}

/* Returns 1 when the path is as the table says, 0 when it was reported. */
static int check_entry(const char *dir, const struct hier_entry *e,
		       const struct mapping *m)
{
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (lstat(e->path.s, &st) < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			log_fatal_sys(EXIT_TEMP, "unable to stat %s/%s", dir,
				      e->path.s);
		report(dir, e, m, NULL);
		return 0;
	}
	/* An account that does not exist was reported once already. */
	int ok = kind_matches(e->kind, st.st_mode) &&
		 (st.st_mode & 07777) == e->mode &&
		 (!owner_uid(m, e->owner, &uid) || st.st_uid == uid) &&
		 (!group_gid(m, e->group, &gid) || st.st_gid == gid);
	if (!ok)
		report(dir, e, m, &st);
	return ok;
}

static int seen_before(const struct hier *h, size_t i, const char *owner)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(h->e[j].owner, owner) == 0)
			return 1;
	return 0;
}

/* The accounts the table names: each must exist, and only root may have
 * uid 0. Returns the number of problems reported. */
static unsigned long check_accounts(const struct hier *h,
				    const struct mapping *m)
{
	unsigned long problems = 0;
	uid_t uid;
	gid_t gid;

	if (m->account)
		return 0;
	for (size_t i = 0; i < h->n; i++) {
		const char *owner = h->e[i].owner;
		if (seen_before(h, i, owner))
			continue;
		int found = owner_uid(m, owner, &uid);
		if (found && (uid != 0 || strcmp(owner, "root") == 0))
			continue;
		put("account ");
		put(owner);
		put(found ? ": has uid 0\n"
			  : ": missing (qmail-mkaccounts creates it)\n");
		problems++;
	}
	if (!group_gid(m, "qmail", &gid)) {
		put("group qmail: missing (qmail-mkaccounts creates it)\n");
		problems++;
	}
	return problems;
}

/* Below a directory that is missing, everything is missing too: one
 * line says so. */
static int under(const struct str *path, const struct str *dir)
{
	return dir->len > 0 && path->len > dir->len &&
	       memcmp(path->s, dir->s, dir->len) == 0 &&
	       path->s[dir->len] == '/';
}

static int check(const char *dir, const struct hier *h, const struct mapping *m,
		 unsigned long problems)
{
	struct str gone = STR_INIT;

	problems += check_accounts(h, m);
	for (size_t i = 0; i < h->n; i++) {
		const struct hier_entry *e = &h->e[i];
		if (under(&e->path, &gone))
			continue;
		if (check_entry(dir, e, m))
			continue;
		problems++;
		if (e->kind == HIER_DIR && access(e->path.s, F_OK) < 0 &&
		    str_copystr(&gone, &e->path) < 0)
			log_nomem();
	}
	str_free(&gone);
	put("qmail-instcheck: ");
	if (problems) {
		put_num(problems);
		put(problems == 1 ? " problem in " : " problems in ");
	} else {
		put("ok: ");
	}
	put_num(h->n);
	put(" paths under ");
	if (buf_putvisible(&out, dir, strlen(dir)) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
	put(problems ? "\n" : ", each with the owner and mode of the table\n");
	return problems ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct mapping map = {0};
	struct hier h = HIER_INIT;
	int print = 0, opt;

	log_init(argv[0]);
	while ((opt = getopt(argc, argv, "pa:")) != -1) {
		switch (opt) {
		case 'p':
			print = 1;
			break;
		case 'a':
			mapping_init(&map, optarg);
			break;
		default:
			log_fatal(EXIT_PERM, USAGE);
		}
	}
	if (argc - optind > 1)
		log_fatal(EXIT_PERM, USAGE);
	const char *dir = optind < argc ? argv[optind] : home_dir();
	if (chdir(dir) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to switch to %s", dir);
	buf_init(&out, 1, outspace, sizeof outspace, 0);

	struct manifest_state st = {dir, !print, 0};
	if (hier_fixed(&h, AUTO_SPLIT) < 0)
		log_nomem();
	read_manifest(&h, &st);
	int rc = 0;
	if (print)
		print_table(&h, &map);
	else
		rc = check(dir, &h, &map, st.problems);
	if (buf_flush(&out) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
	hier_free(&h);
	return rc;
}
