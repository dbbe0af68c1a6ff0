/* t_users.c: users/assign parsing and compiling, lookups in users/cdb, and
 * the passwd rules of qmail-getpw (through a fake password database). */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cdbx.h"
#include "mail/users.h"
#include "unit.h"
#include "unit_tmp.h"

static void enter_tmpdir(void)
{
	unit_tmp_enter("t_users");
	unit_mkdir("users", 0755);
}

static int contains(const char *haystack, const char *needle)
{
	return haystack && strstr(haystack, needle) != NULL;
}

#define CHECK_S(sa, lit) CHECK_STR((sa).s, (sa).len, lit)

/* ---- users_parse_line ---- */

static int parse(const char *line, struct users_entry *e, const char **why)
{
	*why = NULL;
	return users_parse_line(line, strlen(line), e, why);
}

TEST(parse_exact)
{
	struct users_entry e = USERS_ENTRY_INIT;
	const char *why;

	CHECK_INT(parse("=Joe:joe:1000:100:/home/joe:::", &e, &why), 1);
	CHECK_INT(e.wildcard, 0);
	CHECK_S(e.local, "Joe");
	CHECK_S(e.user, "joe");
	CHECK_INT(e.uid, 1000);
	CHECK_INT(e.gid, 100);
	CHECK_S(e.home, "/home/joe");
	CHECK_S(e.dash, "");
	CHECK_S(e.ext, "");
	users_entry_free(&e);
}

TEST(parse_wildcard)
{
	struct users_entry e = USERS_ENTRY_INIT;
	const char *why;

	CHECK_INT(parse("+list-:ml:1001:101:/home/ml:-:pre-:", &e, &why), 1);
	CHECK_INT(e.wildcard, 1);
	CHECK_S(e.local, "list-");
	CHECK_S(e.dash, "-");
	CHECK_S(e.ext, "pre-");
	/* The empty prefix is the catch-all. */
	CHECK_INT(parse("+:alias:7790:2108:/var/qmail/alias:-::", &e, &why), 1);
	CHECK_INT(e.wildcard, 1);
	CHECK_INT(e.local.len, 0);
	users_entry_free(&e);
}

TEST(parse_any_bytes_in_fields)
{
	struct users_entry e = USERS_ENTRY_INIT;
	const char *why;

	CHECK_INT(parse("=a b=+\xe9:u s:0:0:/h o/m\te:--:x.y:", &e, &why), 1);
	CHECK_S(e.local, "a b=+\xe9");
	CHECK_S(e.user, "u s");
	CHECK_S(e.home, "/h o/m\te");
	CHECK_S(e.dash, "--");
	CHECK_S(e.ext, "x.y");
	users_entry_free(&e);
}

TEST(parse_dot)
{
	struct users_entry e = USERS_ENTRY_INIT;
	const char *why;

	CHECK_INT(parse(".", &e, &why), 0);
	CHECK_INT(parse(". ", &e, &why), -1);
	CHECK_INT(parse("..", &e, &why), -1);
}

TEST(parse_bad_uid_gid)
{
	struct users_entry e = USERS_ENTRY_INIT;
	const char *why;
	static const char *const bad_uid[] = {
	    "=a:u:1x:2:/h:::",	       "=a:u::2:/h:::",
	    "=a:u:-1:2:/h:::",	       "=a:u: 1:2:/h:::",
	    "=a:u:4294967295:2:/h:::", "=a:u:99999999999999999999:2:/h:::",
	    "=a:u:+1:2:/h:::",
	};

	for (size_t i = 0; i < sizeof bad_uid / sizeof *bad_uid; i++) {
		errno = 0;
		CHECK_INT(parse(bad_uid[i], &e, &why), -1);
		CHECK_INT(errno, EINVAL);
		CHECK(contains(why, "uid"));
	}
	CHECK_INT(parse("=a:u:1:2x:/h:::", &e, &why), -1);
	CHECK(contains(why, "gid"));
	CHECK_INT(parse("=a:u:1:4294967295:/h:::", &e, &why), -1);
	CHECK(contains(why, "gid"));
	/* The largest ids that are not (uid_t)-1 are fine. */
	CHECK_INT(parse("=a:u:4294967294:4294967294:/h:::", &e, &why), 1);
	CHECK_INT(e.uid, 4294967294u);
	CHECK_INT(e.gid, 4294967294u);
	CHECK_INT(parse("=a:u:007:0:/h:::", &e, &why), 1);
	CHECK_INT(e.uid, 7);
	users_entry_free(&e);
}

TEST(parse_field_count)
{
	struct users_entry e = USERS_ENTRY_INIT;
	const char *why;

	CHECK_INT(parse("=a:u:1:2:/h::", &e, &why), -1);
	CHECK(contains(why, "too few fields"));
	CHECK_INT(parse("=a:u:1:2:/h", &e, &why), -1);
	CHECK(contains(why, "too few fields"));
	CHECK_INT(parse("=", &e, &why), -1);
	CHECK(contains(why, "too few fields"));
	CHECK_INT(parse("=a:u:1:2:/h::::", &e, &why), -1);
	CHECK(contains(why, "after the last field"));
	CHECK_INT(parse("=a:u:1:2:/h:::x", &e, &why), -1);
	CHECK(contains(why, "after the last field"));
	/* A CR from a DOS editor is text after the last field. */
	CHECK_INT(parse("=a:u:1:2:/h:::\r", &e, &why), -1);
}

TEST(parse_bad_lines)
{
	struct users_entry e = USERS_ENTRY_INIT;
	const char *why;

	CHECK_INT(parse("", &e, &why), -1);
	CHECK(contains(why, "empty line"));
	CHECK_INT(parse("#=a:u:1:2:/h:::", &e, &why), -1);
	CHECK(contains(why, "= or +"));
	CHECK_INT(parse(" =a:u:1:2:/h:::", &e, &why), -1);
	CHECK_INT(parse("=a::1:2:/h:::", &e, &why), -1);
	CHECK(contains(why, "user"));
	CHECK_INT(parse("=a:u:1:2:h:::", &e, &why), -1);
	CHECK(contains(why, "absolute"));
	CHECK_INT(parse("=a:u:1:2::::", &e, &why), -1);
	CHECK(contains(why, "absolute"));
	CHECK_INT(users_parse_line("=a:u:1:2:/h\0:::", 15, &e, &why), -1);
	CHECK(contains(why, "NUL"));
}

/* ---- users_compile ---- */

/* Compiles text as users/assign into users/cdb. Returns what
 * users_compile returned; commits only on success. */
static int compile_text(const char *text, struct users_diag *d)
{
	struct cdbx_writer w;
	int fd;

	unit_write_str("users/assign", text, 0644);
	fd = open("users/assign", O_RDONLY);
	CHECK(fd >= 0);
	CHECK_INT(cdbx_create(&w, "users/cdb", 0644), 0);
	memset(d, 0, sizeof *d);
	int r = users_compile(fd, &w, d);
	if (r == 0)
		CHECK_INT(cdbx_commit(&w), 0);
	else
		cdbx_abort(&w);
	close(fd);
	return r;
}

/* Test data writes NUL as '|', which no test value holds otherwise. */
static struct str nul(const char *pattern)
{
	struct str s = STR_INIT;
	CHECK_INT(str_copys(&s, pattern), 0);
	for (size_t i = 0; i < s.len; i++)
		if (s.s[i] == '|')
			s.s[i] = 0;
	return s;
}

/* The value of key (in '|' notation) in users/cdb must be val. */
static void check_value(const char *key, const char *val)
{
	struct str k = nul(key), want = nul(val), v = STR_INIT;
	CHECK_INT(cdbx_lookup("users/cdb", k.s, k.len, &v, 1000), 1);
	CHECK_MEM(v.s, v.len, want.s, want.len);
	str_free(&k);
	str_free(&want);
	str_free(&v);
}

TEST(compile_keys_and_values)
{
	struct users_diag d;
	struct str v = STR_INIT;

	enter_tmpdir();
	CHECK_INT(compile_text("=Joe:joe:1000:100:/home/joe:::\n"
			       "+Joe.:joe:1000:100:/home/joe:-:dot-:\n"
			       "+list-:ml:01001:101:/home/ml:-::\n"
			       "+:alias:7790:2108:/q/alias:-::\n"
			       ".\n",
			       &d),
		  0);
	check_value("!joe|", "joe|1000|100|/home/joe|||");
	check_value("!joe.", "joe|1000|100|/home/joe|-|dot-|");
	check_value("!list-", "ml|1001|101|/home/ml|-||");
	check_value("!", "alias|7790|2108|/q/alias|-||");
	/* The bytes that end a wildcard prefix, each once, in order. */
	check_value("", "-.");
	/* An exact key ends in NUL, so it never answers a prefix. */
	CHECK_INT(cdbx_lookup("users/cdb", "!joe", 4, &v, 1000), 0);
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(compile_empty_file_list)
{
	struct users_diag d;

	enter_tmpdir();
	/* No entries at all: still a valid cdb with the empty key. */
	CHECK_INT(compile_text(".\n", &d), 0);
	check_value("", "");
	/* A last line "." without its newline is fine too. */
	CHECK_INT(compile_text("=a:u:1:2:/h:::\n.", &d), 0);
	check_value("!a|", "u|1|2|/h|||");
	/* Whatever follows the final "." is not read. */
	CHECK_INT(compile_text("=a:u:1:2:/h:::\n.\nnot an entry\n", &d), 0);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(compile_missing_dot)
{
	struct users_diag d;
	struct stat st;

	enter_tmpdir();
	CHECK_INT(compile_text("=a:u:1:2:/h:::\n", &d), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(d.fail, USERS_FAIL_SYNTAX);
	CHECK_INT(d.line, 0);
	CHECK(contains(d.why, "\".\""));
	/* Nothing was written. */
	CHECK_INT(stat("users/cdb", &st), -1);
	CHECK_INT(stat("users/cdb.tmp", &st), -1);

	CHECK_INT(compile_text("", &d), -1);
	CHECK_INT(d.fail, USERS_FAIL_SYNTAX);
	CHECK_INT(compile_text("=a:u:1:2:/h:::", &d), -1);
	CHECK_INT(d.fail, USERS_FAIL_SYNTAX);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(compile_bad_line_number)
{
	struct users_diag d;

	enter_tmpdir();
	CHECK_INT(compile_text("=a:u:1:2:/h:::\n"
			       "+b:u:1:2:/h:::\n"
			       "=c:u:1:x:/h:::\n"
			       ".\n",
			       &d),
		  -1);
	CHECK_INT(d.fail, USERS_FAIL_SYNTAX);
	CHECK_INT(d.line, 3);
	CHECK(contains(d.why, "gid"));
	CHECK_INT(compile_text("=a:u:1:2:/h:::\n\n.\n", &d), -1);
	CHECK_INT(d.line, 2);
	CHECK(contains(d.why, "empty line"));
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(compile_line_too_long)
{
	struct users_diag d;
	size_t n = USERS_LINE_MAX + 10;
	char *text = malloc(n + 8);

	CHECK(text != NULL);
	enter_tmpdir();
	memcpy(text, "=a:u:1:2:/", 10);
	memset(text + 10, 'x', n - 10);
	memcpy(text + n, ":::\n.\n", 7);
	CHECK_INT(compile_text(text, &d), -1);
	CHECK_INT(d.fail, USERS_FAIL_SYNTAX);
	CHECK_INT(d.line, 1);
	CHECK(contains(d.why, "too long"));
	free(text);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(compile_read_error)
{
	struct cdbx_writer w;
	struct users_diag d;
	int fd;

	enter_tmpdir();
	fd = open(".", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	CHECK_INT(cdbx_create(&w, "users/cdb", 0644), 0);
	CHECK_INT(users_compile(fd, &w, &d), -1);
	CHECK_INT(errno, EISDIR);
	CHECK_INT(d.fail, USERS_FAIL_READ);
	cdbx_abort(&w);
	close(fd);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(compile_write_error)
{
	struct cdbx_writer w;
	struct users_diag d;
	int fd;

	enter_tmpdir();
	unit_write_str("users/assign", "=a:u:1:2:/h:::\n.\n", 0644);
	fd = open("users/assign", O_RDONLY);
	CHECK_INT(cdbx_create(&w, "users/cdb", 0644), 0);
	cdbx_abort(&w); /* a finished writer refuses every add */
	CHECK_INT(users_compile(fd, &w, &d), -1);
	CHECK_INT(d.fail, USERS_FAIL_WRITE);
	close(fd);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* ---- users_cdb_lookup ---- */

static const char lookup_assign[] =
    "=joe-x:exact:1:1:/e:::\n"
    "+joe-:joe:1000:100:/home/joe:-::\n"
    "+joe-list-:list:1001:100:/home/list:-:ml-:\n"
    "=Mixed:mixed:1002:100:/home/mixed:::\n"
    "=dup:first:1:1:/first:::\n"
    "=dup:second:2:2:/second:::\n"
    ".\n";

TEST(lookup_exact_beats_wildcard)
{
	struct userinfo u = USERINFO_INIT;
	struct users_diag d;

	enter_tmpdir();
	CHECK_INT(compile_text(lookup_assign, &d), 0);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "joe-x", &u), 1);
	CHECK_S(u.user, "exact");
	CHECK_S(u.home, "/e");
	CHECK_S(u.ext, "");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "joe-y", &u), 1);
	CHECK_S(u.user, "joe");
	CHECK_INT(u.uid, 1000);
	CHECK_INT(u.gid, 100);
	CHECK_S(u.home, "/home/joe");
	CHECK_S(u.dash, "-");
	CHECK_S(u.ext, "y");
	/* The first of two equal entries wins. */
	CHECK_INT(users_cdb_lookup(USERS_CDB, "dup", &u), 1);
	CHECK_S(u.user, "first");
	userinfo_free(&u);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(lookup_longest_prefix)
{
	struct userinfo u = USERINFO_INIT;
	struct users_diag d;

	enter_tmpdir();
	CHECK_INT(compile_text(lookup_assign, &d), 0);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "joe-list-help", &u), 1);
	CHECK_S(u.user, "list");
	CHECK_S(u.ext, "ml-help");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "joe-list-", &u), 1);
	CHECK_S(u.user, "list");
	CHECK_S(u.ext, "ml-");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "joe-lists", &u), 1);
	CHECK_S(u.user, "joe");
	CHECK_S(u.ext, "lists");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "joe-", &u), 1);
	CHECK_S(u.user, "joe");
	CHECK_S(u.ext, "");
	userinfo_free(&u);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(lookup_case_insensitive)
{
	struct userinfo u = USERINFO_INIT;
	struct users_diag d;

	enter_tmpdir();
	CHECK_INT(compile_text(lookup_assign, &d), 0);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "JOE-X", &u), 1);
	CHECK_S(u.user, "exact");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "mixed", &u), 1);
	CHECK_S(u.user, "mixed");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "MIXED", &u), 1);
	CHECK_S(u.user, "mixed");
	/* The extension keeps the case it was written in. */
	CHECK_INT(users_cdb_lookup(USERS_CDB, "Joe-List-Help", &u), 1);
	CHECK_S(u.user, "list");
	CHECK_S(u.ext, "ml-Help");
	userinfo_free(&u);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(lookup_no_match)
{
	struct userinfo u = USERINFO_INIT;
	struct users_diag d;

	enter_tmpdir();
	CHECK_INT(users_cdb_lookup(USERS_CDB, "joe", &u), 0); /* no file */
	CHECK_INT(compile_text(lookup_assign, &d), 0);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "joe", &u), 0);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "jo", &u), 0);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "", &u), 0);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "mixed-x", &u), 0);
	userinfo_free(&u);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(lookup_catchall)
{
	struct userinfo u = USERINFO_INIT;
	struct users_diag d;

	enter_tmpdir();
	CHECK_INT(compile_text("+:alias:7:8:/a:-::\n.\n", &d), 0);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "Anybody-At-All", &u), 1);
	CHECK_S(u.user, "alias");
	CHECK_S(u.dash, "-");
	CHECK_S(u.ext, "Anybody-At-All");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "", &u), 1);
	CHECK_S(u.ext, "");
	userinfo_free(&u);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* Writes users/cdb by hand ('|' notation), for databases qmail-newu
 * would not make. wild NULL: no empty key at all. */
static void write_cdb(const char *key, const char *val, const char *wild)
{
	struct cdbx_writer w;
	struct str k = nul(key), v = nul(val);

	CHECK_INT(cdbx_create(&w, USERS_CDB, 0644), 0);
	CHECK_INT(cdbx_add(&w, k.s, k.len, v.s, v.len), 0);
	if (wild)
		CHECK_INT(cdbx_add(&w, "", 0, wild, strlen(wild)), 0);
	CHECK_INT(cdbx_commit(&w), 0);
	str_free(&k);
	str_free(&v);
}

TEST(lookup_prefix_ends_limit_wildcards)
{
	struct userinfo u = USERINFO_INIT;
	static const char val[] = "u|1|2|/h|-||";

	enter_tmpdir();
	/* "!ab" is a wildcard, but 'b' is not listed as a prefix end. */
	write_cdb("!ab", val, "-");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "abc", &u), 0);
	write_cdb("!ab", val, "-b");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "abc", &u), 1);
	CHECK_S(u.ext, "c");
	/* Without the empty key there are no wildcards at all. */
	write_cdb("!", val, NULL);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "abc", &u), 0);
	write_cdb("!", val, "");
	CHECK_INT(users_cdb_lookup(USERS_CDB, "abc", &u), 1);
	CHECK_S(u.ext, "abc");
	userinfo_free(&u);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(lookup_malformed_entries)
{
	struct userinfo u = USERINFO_INIT;
	static const char *const bad[] = {
	    "u|1|2|/h|-|",     /* five fields */
	    "u|1|2|/h|-|x",    /* sixth not ended */
	    "u|1|2|/h|-|x|y|", /* seven fields */
	    "u|x|2|/h|-||",    /* uid not a number */
	    "u|1||/h|-||",     /* empty gid */
	};

	enter_tmpdir();
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		write_cdb("!a|", bad[i], NULL);
		errno = 0;
		CHECK_INT(users_cdb_lookup(USERS_CDB, "a", &u), -1);
		CHECK_INT(errno, EINVAL);
		CHECK(contains(users_error(), "malformed"));
	}
	/* The same file with a well-formed value is fine. */
	write_cdb("!a|", "u|1|2|/h|-||", NULL);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "a", &u), 1);
	/* A file too short to be a cdb. */
	unit_write_str(USERS_CDB, "junk", 0644);
	CHECK_INT(users_cdb_lookup(USERS_CDB, "a", &u), -1);
	CHECK(contains(users_error(), "users/cdb"));
	userinfo_free(&u);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(lookup_whole_uses_cdb_first)
{
	struct userinfo u = USERINFO_INIT;
	struct users_diag d;

	enter_tmpdir();
	/* "root" would be refused by the passwd rules; users/cdb decides
	 * first, and the cdb entry is returned as written. */
	CHECK_INT(compile_text("=root:mailroot:42:43:/m:::\n.\n", &d), 0);
	CHECK_INT(users_lookup("Root", &u), 1);
	CHECK_S(u.user, "mailroot");
	CHECK_INT(u.uid, 42);
	userinfo_free(&u);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(lookup_whole_falls_back_to_passwd)
{
	struct userinfo u = USERINFO_INIT;

	enter_tmpdir();
	/* No users/cdb: the passwd rules, which never give root. */
	int r = users_lookup("root", &u);
	CHECK(r == 0 || (r == 1 && u.uid != 0));
	CHECK(r == 0 || strcmp(u.user.s, USERS_ALIAS) == 0);
	userinfo_free(&u);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* ---- the passwd rules, with a fake database ---- */

struct fake_user {
	const char *name;
	uid_t uid;
	const char *home;
	int pw_errno; /* getpwnam fails with this */
};

struct fake_home {
	const char *path;
	uid_t owner;
	int stat_errno;
};

static const struct fake_user fake_users[] = {
    {"joe", 1000, "/h/joe", 0},
    {"joe-list", 1001, "/h/list", 0},
    {"root", 0, "/root", 0},
    {"nohome", 1002, "/h/missing", 0},
    {"notown", 1003, "/h/other", 0},
    {"diskfail", 1004, "/h/eio", 0},
    {"broken", 0, NULL, EIO},
    {"a23456789012345678901234567890ab", 1005, "/h/long", 0},
    {"a23456789012345678901234567890abc", 1006, "/h/long", 0},
    {"alias", 7790, "/h/alias", 0},
};

static const struct fake_home fake_homes[] = {
    {"/h/joe", 1000, 0},       {"/h/list", 1001, 0}, {"/root", 0, 0},
    {"/h/missing", 0, ENOENT}, {"/h/other", 0, 0},   {"/h/eio", 0, EIO},
    {"/h/long", 1005, 0},      {"/h/alias", 1, 0},
};

static int have_alias = 1;
static char asked[64][40];
static size_t nasked;

static struct passwd *fake_getpwnam(const char *name)
{
	static struct passwd pw;

	if (nasked < 64) {
		snprintf(asked[nasked], sizeof asked[nasked], "%s", name);
		nasked++;
	}
	for (size_t i = 0; i < sizeof fake_users / sizeof *fake_users; i++) {
		const struct fake_user *f = &fake_users[i];
		if (strcmp(f->name, name) != 0)
			continue;
		if (f->pw_errno) {
			errno = f->pw_errno;
			return NULL;
		}
		if (!have_alias && strcmp(name, "alias") == 0)
			break;
		pw.pw_name = (char *)f->name;
		pw.pw_uid = f->uid;
		pw.pw_gid = f->uid + 1;
		pw.pw_dir = (char *)f->home;
		return &pw;
	}
	return NULL;
}

static int fake_stat(const char *path, struct stat *st)
{
	for (size_t i = 0; i < sizeof fake_homes / sizeof *fake_homes; i++) {
		const struct fake_home *h = &fake_homes[i];
		if (strcmp(h->path, path) != 0)
			continue;
		if (h->stat_errno) {
			errno = h->stat_errno;
			return -1;
		}
		memset(st, 0, sizeof *st);
		st->st_uid = h->owner;
		return 0;
	}
	errno = ENOENT;
	return -1;
}

static const struct users_pwops fake_ops = {fake_getpwnam, fake_stat};

static int was_asked(const char *name)
{
	for (size_t i = 0; i < nasked; i++)
		if (strcmp(asked[i], name) == 0)
			return 1;
	return 0;
}

TEST(getpw_whole_name)
{
	struct userinfo u = USERINFO_INIT;

	CHECK_INT(users_getpw_with("joe", &u, &fake_ops), 1);
	CHECK_S(u.user, "joe");
	CHECK_INT(u.uid, 1000);
	CHECK_INT(u.gid, 1001);
	CHECK_S(u.home, "/h/joe");
	CHECK_S(u.dash, "");
	CHECK_S(u.ext, "");
	userinfo_free(&u);
}

TEST(getpw_extension_longest_user_first)
{
	struct userinfo u = USERINFO_INIT;

	CHECK_INT(users_getpw_with("Joe-Foo-Bar", &u, &fake_ops), 1);
	CHECK_S(u.user, "joe");
	CHECK_S(u.dash, "-");
	CHECK_S(u.ext, "Foo-Bar");
	/* Asked longest first, lowercased. */
	CHECK_INT(nasked, 3);
	CHECK_STR(asked[0], strlen(asked[0]), "joe-foo-bar");
	CHECK_STR(asked[1], strlen(asked[1]), "joe-foo");
	CHECK_STR(asked[2], strlen(asked[2]), "joe");
	nasked = 0;
	CHECK_INT(users_getpw_with("joe-list-x", &u, &fake_ops), 1);
	CHECK_S(u.user, "joe-list");
	CHECK_S(u.ext, "x");
	CHECK_INT(users_getpw_with("joe-", &u, &fake_ops), 1);
	CHECK_S(u.user, "joe");
	CHECK_S(u.dash, "-");
	CHECK_S(u.ext, "");
	userinfo_free(&u);
}

TEST(getpw_refusals_go_to_alias)
{
	struct userinfo u = USERINFO_INIT;
	static const char *const refused[] = {"root",	  "root-x", "nohome",
					      "notown-a", "nobody", ""};

	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
		CHECK_INT(users_getpw_with(refused[i], &u, &fake_ops), 1);
		CHECK_S(u.user, "alias");
		CHECK_INT(u.uid, 7790);
		CHECK_S(u.home, "/h/alias");
		CHECK_S(u.dash, "-");
		CHECK_STR(u.ext.s, u.ext.len, refused[i]);
	}
	userinfo_free(&u);
}

TEST(getpw_name_length_limit)
{
	struct userinfo u = USERINFO_INIT;

	/* 32 bytes is the longest name tried; 33 is never looked up. */
	CHECK_INT(users_getpw_with("a23456789012345678901234567890ab-x", &u,
				   &fake_ops),
		  1);
	CHECK_S(u.user, "a23456789012345678901234567890ab");
	CHECK_S(u.ext, "x");
	nasked = 0;
	CHECK_INT(users_getpw_with("a23456789012345678901234567890abc", &u,
				   &fake_ops),
		  1);
	CHECK_S(u.user, "alias");
	CHECK(!was_asked("a23456789012345678901234567890abc"));
	userinfo_free(&u);
}

TEST(getpw_temporary_errors)
{
	struct userinfo u = USERINFO_INIT;

	errno = 0;
	CHECK_INT(users_getpw_with("diskfail", &u, &fake_ops), -1);
	CHECK_INT(errno, EIO);
	CHECK(contains(users_error(), "home directory"));
	errno = 0;
	CHECK_INT(users_getpw_with("broken-x", &u, &fake_ops), -1);
	CHECK_INT(errno, EIO);
	CHECK(contains(users_error(), "password database"));
	/* A failure on a shorter candidate is not skipped over. */
	CHECK_INT(users_getpw_with("diskfail-x", &u, &fake_ops), -1);
	/* A longer candidate that is not an account does not fail. */
	CHECK_INT(users_getpw_with("joe-diskfail", &u, &fake_ops), 1);
	CHECK_S(u.user, "joe");
	userinfo_free(&u);
}

TEST(getpw_no_alias)
{
	struct userinfo u = USERINFO_INIT;

	have_alias = 0;
	CHECK_INT(users_getpw_with("nobody", &u, &fake_ops), 0);
	CHECK_INT(users_getpw_with("root", &u, &fake_ops), 0);
	CHECK_INT(users_getpw_with("joe-x", &u, &fake_ops), 1);
	userinfo_free(&u);
}

TEST(getpw_system_refuses_root)
{
	struct userinfo u = USERINFO_INIT;

	/* Root owns its home, but uid 0 never counts: only the alias
	 * account, if this system has one, may take the mail. */
	int r = users_getpw("root", &u);
	CHECK(r == 0 || r == 1);
	if (r == 1) {
		CHECK_S(u.user, USERS_ALIAS);
		CHECK_S(u.ext, "root");
	}
	userinfo_free(&u);
}

UNIT_MAIN(parse_exact, parse_wildcard, parse_any_bytes_in_fields, parse_dot,
	  parse_bad_uid_gid, parse_field_count, parse_bad_lines,
	  compile_keys_and_values, compile_empty_file_list, compile_missing_dot,
	  compile_bad_line_number, compile_line_too_long, compile_read_error,
	  compile_write_error, lookup_exact_beats_wildcard,
	  lookup_longest_prefix, lookup_case_insensitive, lookup_no_match,
	  lookup_catchall, lookup_prefix_ends_limit_wildcards,
	  lookup_malformed_entries, lookup_whole_uses_cdb_first,
	  lookup_whole_falls_back_to_passwd, getpw_whole_name,
	  getpw_extension_longest_user_first, getpw_refusals_go_to_alias,
	  getpw_name_length_limit, getpw_temporary_errors, getpw_no_alias,
	  getpw_system_refuses_root)
