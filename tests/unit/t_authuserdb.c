/* t_authuserdb.c: the virtual-user file and cdb entries (userdb) that
 * qmail-passwd writes and checkpassword-cdb reads. */
#include <errno.h>

#include "auth/userdb.h"
#include "unit.h"

#define HASH "$y$j9T$KQ8eR5yXHk0S9vJr3.pY41$gjDVLOKKqz"

static int value(const char *s, struct userdb_entry *e)
{
	return userdb_value(s, strlen(s), e);
}

static int line(const char *s, struct userdb_entry *e)
{
	return userdb_line(s, strlen(s), e);
}

TEST(userdb_login_rules)
{
	CHECK(userdb_login_ok("bob", 3));
	CHECK(userdb_login_ok("bob@example.com", 15));
	CHECK(userdb_login_ok("a.b-c_d+e=f", 11));
	CHECK(!userdb_login_ok("", 0));
	CHECK(!userdb_login_ok("b:b", 3));
	CHECK(!userdb_login_ok("b b", 3));
	CHECK(!userdb_login_ok("b\tb", 3));
	CHECK(!userdb_login_ok("#bob", 4));
	CHECK(userdb_login_ok("b#b", 3));
	CHECK(!userdb_login_ok("b\0b", 3));
	CHECK(!userdb_login_ok("b\xc3\xa9", 3));
	CHECK(!userdb_login_ok("b\x7f", 2));
	char big[USERDB_LOGIN_MAX + 1];
	memset(big, 'x', sizeof big);
	CHECK(userdb_login_ok(big, USERDB_LOGIN_MAX));
	CHECK(!userdb_login_ok(big, USERDB_LOGIN_MAX + 1));
}

TEST(userdb_value_parses)
{
	struct userdb_entry e;

	CHECK_INT(value(HASH ":1001:1002:/var/qmail/mail/bob", &e), 0);
	CHECK_STR(e.hash, strlen(e.hash), HASH);
	CHECK_INT(e.uid, 1001);
	CHECK_INT(e.gid, 1002);
	CHECK_STR(e.home, strlen(e.home), "/var/qmail/mail/bob");
	/* The home is last and may hold ':'. */
	CHECK_INT(value("!" HASH ":5:0:/a:b:c", &e), 0);
	CHECK_STR(e.home, strlen(e.home), "/a:b:c");
	CHECK_INT(e.gid, 0);
	CHECK_INT(value("x:4294967294:1:/", &e), 0);
	CHECK_INT(e.uid, 4294967294UL);
}

TEST(userdb_value_refuses)
{
	static const char *bad[] = {
	    "",
	    HASH,
	    HASH ":1",
	    HASH ":1:1",
	    HASH ":1:1:",	  /* empty home */
	    HASH ":1:1:relative", /* home not absolute */
	    HASH ":1:1:/h\nx",	  /* control byte in the home */
	    HASH ":1:1:/h\r",	  /* CR from a DOS editor */
	    ":1:1:/h",		  /* empty hash */
	    "a b:1:1:/h",	  /* blank in the hash */
	    HASH ":0:1:/h",	  /* root */
	    HASH ":00:1:/h",	  /* root, spelled otherwise */
	    HASH ":01:1:/h",	  /* leading zero */
	    HASH ":-1:1:/h",	  /* sign */
	    HASH ":+1:1:/h",
	    HASH ": 1:1:/h",
	    HASH ":1:x:/h",
	    HASH "::1:/h",
	    HASH ":4294967295:1:/h", /* (uid_t)-1 */
	    HASH ":99999999999:1:/h",
	    HASH ":1:4294967295:/h",
	};
	struct userdb_entry e;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		if (value(bad[i], &e) != -1)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK_INT(value(bad[i], &e), -1);
		CHECK_INT(errno, EINVAL);
	}
	/* A NUL inside the counted value. */
	CHECK_INT(userdb_value("h:1:1:/a\0b", 10, &e), -1);
	/* Fields longer than their buffers. */
	static char big[USERDB_HOME_MAX + 64];
	snprintf(big, sizeof big, "h:1:1:/");
	memset(big + 7, 'h', USERDB_HOME_MAX);
	big[7 + USERDB_HOME_MAX] = 0;
	CHECK_INT(value(big, &e), -1);
	big[6 + USERDB_HOME_MAX] = 0; /* exactly USERDB_HOME_MAX */
	CHECK_INT(value(big, &e), 0);
	CHECK_INT(strlen(e.home), USERDB_HOME_MAX);
	static char hash[PWHASH_MAX + 16];
	memset(hash, 'a', PWHASH_MAX);
	memcpy(hash + PWHASH_MAX, ":1:1:/", 7);
	CHECK_INT(value(hash, &e), -1);
	CHECK_INT(value(hash + 1, &e), 0); /* PWHASH_MAX - 1 fits */
}

TEST(userdb_line_parses)
{
	struct userdb_entry e;

	CHECK_INT(line("bob:" HASH ":7:8:/m/bob", &e), 0);
	CHECK_STR(e.login, strlen(e.login), "bob");
	CHECK_INT(e.uid, 7);
	CHECK_INT(line("bob", &e), -1);
	CHECK_INT(line(":" HASH ":7:8:/m", &e), -1);
	CHECK_INT(line("#bob:" HASH ":7:8:/m", &e), -1);
	CHECK_INT(line("b b:" HASH ":7:8:/m", &e), -1);
	CHECK_INT(line("bob:" HASH ":7:8", &e), -1);
	CHECK_INT(errno, EINVAL);
	CHECK(userdb_is_comment("", 0));
	CHECK(userdb_is_comment("# x", 3));
	CHECK(userdb_is_comment(" \t\r", 3));
	CHECK(!userdb_is_comment(" x", 2));
}

TEST(userdb_formats_round_trip)
{
	struct userdb_entry e, back;
	struct str s = STR_INIT;

	CHECK_INT(line("bob@x:" HASH ":7:8:/m/b:c", &e), 0);
	CHECK_INT(userdb_format_line(&s, &e), 0);
	CHECK_STR(s.s, s.len, "bob@x:" HASH ":7:8:/m/b:c\n");
	str_clear(&s);
	CHECK_INT(userdb_format_value(&s, &e), 0);
	CHECK_STR(s.s, s.len, HASH ":7:8:/m/b:c");
	CHECK_INT(userdb_value(s.s, s.len, &back), 0);
	CHECK_INT(back.uid, 7);
	CHECK_STR(back.home, strlen(back.home), "/m/b:c");
	str_free(&s);
}

static struct userdb_entry entry(const char *login, const char *hash,
				 unsigned long uid, const char *home)
{
	struct userdb_entry e;
	memset(&e, 0, sizeof e);
	snprintf(e.login, sizeof e.login, "%s", login);
	snprintf(e.hash, sizeof e.hash, "%s", hash);
	e.uid = uid;
	e.gid = 50;
	snprintf(e.home, sizeof e.home, "%s", home);
	return e;
}

static int edit(const char *text, enum userdb_op op,
		const struct userdb_entry *e, unsigned fields, struct str *out,
		unsigned long *ln)
{
	str_clear(out);
	return userdb_edit(text, strlen(text), op, e, fields, out, ln);
}

static const char file[] = "# virtual users\n"
			   "alice:$6$a$x:10:50:/m/alice\n"
			   "\n"
			   "bob:$6$b$y:11:50:/m/bob\n";

TEST(userdb_edit_add)
{
	struct str out = STR_INIT;
	unsigned long ln;
	struct userdb_entry e = entry("carol", "$y$c$z", 12, "/m/carol");

	CHECK_INT(edit(file, USERDB_ADD, &e, 0, &out, &ln), 0);
	CHECK_STR(out.s, out.len,
		  "# virtual users\n"
		  "alice:$6$a$x:10:50:/m/alice\n"
		  "\n"
		  "bob:$6$b$y:11:50:/m/bob\n"
		  "carol:$y$c$z:12:50:/m/carol\n");
	/* Into an empty file, and after a last line with no newline. */
	CHECK_INT(edit("", USERDB_ADD, &e, 0, &out, &ln), 0);
	CHECK_STR(out.s, out.len, "carol:$y$c$z:12:50:/m/carol\n");
	CHECK_INT(edit("bob:h:1:1:/b", USERDB_ADD, &e, 0, &out, &ln), 0);
	CHECK_STR(out.s, out.len,
		  "bob:h:1:1:/b\ncarol:$y$c$z:12:50:/m/carol\n");
	/* Twice, or differing in case only. */
	e = entry("bob", "h", 3, "/b");
	errno = 0;
	CHECK_INT(edit(file, USERDB_ADD, &e, 0, &out, &ln), -1);
	CHECK_INT(errno, EEXIST);
	e = entry("BOB", "h", 3, "/b");
	CHECK_INT(edit(file, USERDB_ADD, &e, 0, &out, &ln), -1);
	CHECK_INT(errno, EEXIST);
	/* An entry that would not read back is never written. */
	e = entry("dave", "h", 0, "/d");
	CHECK_INT(edit(file, USERDB_ADD, &e, 0, &out, &ln), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(ln, 0);
	e = entry("dave", "h:x", 4, "/d");
	CHECK_INT(edit(file, USERDB_ADD, &e, 0, &out, &ln), -1);
	CHECK_INT(errno, EINVAL);
	str_free(&out);
}

TEST(userdb_edit_change)
{
	struct str out = STR_INIT;
	unsigned long ln;
	struct userdb_entry e = entry("bob", "$y$new", 99, "/other");

	CHECK_INT(edit(file, USERDB_CHANGE, &e, USERDB_HASH, &out, &ln), 0);
	CHECK_STR(out.s, out.len,
		  "# virtual users\n"
		  "alice:$6$a$x:10:50:/m/alice\n"
		  "\n"
		  "bob:$y$new:11:50:/m/bob\n");
	CHECK_INT(edit(file, USERDB_CHANGE, &e,
		       USERDB_UID | USERDB_GID | USERDB_HOME, &out, &ln),
		  0);
	CHECK(strstr(out.s, "bob:$6$b$y:99:50:/other\n") != NULL);
	e = entry("Bob", "h", 1, "/b"); /* logins are case-sensitive */
	errno = 0;
	CHECK_INT(edit(file, USERDB_CHANGE, &e, USERDB_HASH, &out, &ln), -1);
	CHECK_INT(errno, ENOENT);
	e = entry("carol", "h", 1, "/b");
	CHECK_INT(edit(file, USERDB_CHANGE, &e, USERDB_HASH, &out, &ln), -1);
	CHECK_INT(errno, ENOENT);
	str_free(&out);
}

TEST(userdb_edit_remove_and_check)
{
	struct str out = STR_INIT;
	unsigned long ln;
	struct userdb_entry e = entry("alice", "", 0, "");

	CHECK_INT(edit(file, USERDB_REMOVE, &e, 0, &out, &ln), 0);
	CHECK_STR(out.s, out.len,
		  "# virtual users\n\nbob:$6$b$y:11:50:/m/bob\n");
	e = entry("zed", "", 0, "");
	errno = 0;
	CHECK_INT(edit(file, USERDB_REMOVE, &e, 0, &out, &ln), -1);
	CHECK_INT(errno, ENOENT);
	CHECK_INT(edit(file, USERDB_CHECK, &e, 0, &out, &ln), 0);
	CHECK_STR(out.s, out.len, file);
	str_free(&out);
}

TEST(userdb_edit_names_the_bad_line)
{
	struct str out = STR_INIT;
	unsigned long ln = 0;
	struct userdb_entry e = entry("x", "h", 1, "/x");

	errno = 0;
	CHECK_INT(edit("a:h:1:1:/a\n# c\nb:h:0:1:/b\n", USERDB_CHECK, &e, 0,
		       &out, &ln),
		  -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(ln, 3);
	CHECK_INT(edit("a:h:1:1:/a\r\n", USERDB_ADD, &e, 0, &out, &ln), -1);
	CHECK_INT(ln, 1);
	/* Two logins that differ only in case. */
	CHECK_INT(
	    edit("a:h:1:1:/a\nA:h:2:1:/a\n", USERDB_CHECK, &e, 0, &out, &ln),
	    -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(ln, 2);
	CHECK_INT(edit("  a:h:1:1:/a\n", USERDB_CHECK, &e, 0, &out, &ln), -1);
	CHECK_INT(ln, 1);
	str_free(&out);
}

struct seen {
	int n;
	char logins[64];
};

static int collect(void *ctx, const struct userdb_entry *e)
{
	struct seen *s = ctx;
	s->n++;
	size_t used = strlen(s->logins);
	snprintf(s->logins + used, sizeof s->logins - used, "%.20s,", e->login);
	return strcmp(e->login, "stop") == 0 ? 7 : 0;
}

TEST(userdb_each_entry)
{
	struct seen s = {0, ""};

	CHECK_INT(userdb_each(file, strlen(file), collect, &s), 0);
	CHECK_INT(s.n, 2);
	CHECK_STR(s.logins, strlen(s.logins), "alice,bob,");
	memset(&s, 0, sizeof s);
	const char *t = "a:h:1:1:/a\nstop:h:1:1:/s\nz:h:1:1:/z\n";
	CHECK_INT(userdb_each(t, strlen(t), collect, &s), 7);
	CHECK_INT(s.n, 2);
	memset(&s, 0, sizeof s);
	t = "a:h:1:1:/a\nbad\n";
	CHECK_INT(userdb_each(t, strlen(t), collect, &s), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(userdb_each("", 0, collect, &s), 0);
}

UNIT_MAIN(userdb_login_rules, userdb_value_parses, userdb_value_refuses,
	  userdb_line_parses, userdb_formats_round_trip, userdb_edit_add,
	  userdb_edit_change, userdb_edit_remove_and_check,
	  userdb_edit_names_the_bad_line, userdb_each_entry)
