/* t_rewrite.c: host rewriting: each instruction kind, the default
 * instructions, order and "at most once", and control/rewrite. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/rewrite.h"
#include "unit.h"
#include "unit_tmp.h"

static const char *tmpdir;

/* Not unit_tmp_leave: this also checks that nothing but "rewrite" was
 * left behind. */
static void leave_tmpdir(void)
{
	unlink("rewrite");
	CHECK_INT(chdir("/"), 0);
	CHECK_INT(rmdir(tmpdir), 0);
}

static void rules(struct rewrite *rw, const char *const *list)
{
	for (; *list; list++)
		CHECK_INT(rewrite_add(rw, *list, strlen(*list)), 0);
}

static void check_host(const struct rewrite *rw, const char *in,
		       const char *want)
{
	struct str out = STR_INIT;
	CHECK_INT(rewrite_host(rw, in, strlen(in), &out), 0);
	if (out.len != strlen(want) || memcmp(out.s, want, out.len) != 0) {
		fprintf(stderr, "rewrite [%s]: got [%.*s], want [%s]\n", in,
			(int)out.len, out.s ? out.s : "", want);
		CHECK(0);
	}
	str_free(&out);
}

TEST(exact)
{
	struct rewrite rw = REWRITE_INIT;
	static const char *const r[] = {"=old.example:new.example", NULL};
	rules(&rw, r);
	check_host(&rw, "old.example", "new.example");
	check_host(&rw, "OLD.Example", "new.example");
	check_host(&rw, "x.old.example", "x.old.example");
	check_host(&rw, "old.example.com", "old.example.com");
	rewrite_free(&rw);
}

TEST(exact_empty)
{
	struct rewrite rw = REWRITE_INIT;
	static const char *const r[] = {"=:vangogh", NULL};
	rules(&rw, r);
	check_host(&rw, "", "vangogh");
	check_host(&rw, "x", "x");
	rewrite_free(&rw);
}

TEST(suffix)
{
	struct rewrite rw = REWRITE_INIT;
	static const char *const r[] = {"*.b:.berkeley.edu", NULL};
	rules(&rw, r);
	check_host(&rw, "vangogh.cs.b", "vangogh.cs.berkeley.edu");
	check_host(&rw, "x.B", "x.berkeley.edu");
	check_host(&rw, "b", "b");
	check_host(&rw, "x.bb", "x.bb");
	rewrite_free(&rw);
}

TEST(suffix_without_dots_or_brackets)
{
	struct rewrite rw = REWRITE_INIT;
	static const char *const r[] = {"?:.cs.b", NULL};
	rules(&rw, r);
	check_host(&rw, "vangogh", "vangogh.cs.b");
	check_host(&rw, "", ".cs.b");
	check_host(&rw, "a.b", "a.b");
	check_host(&rw, "[1]", "[1]");
	check_host(&rw, "x]", "x]");
	rewrite_free(&rw);
}

TEST(suffix_without_dots_nonempty_post)
{
	struct rewrite rw = REWRITE_INIT;
	static const char *const r[] = {"?.lan:.example.com", NULL};
	rules(&rw, r);
	check_host(&rw, "box.lan", "box.example.com");
	check_host(&rw, "a.box.lan", "a.box.lan");
	rewrite_free(&rw);
}

TEST(whole_replacement)
{
	struct rewrite rw = REWRITE_INIT;
	static const char *const r[] = {"-.local:cs.berkeley.edu", NULL};
	rules(&rw, r);
	check_host(&rw, "me.local", "cs.berkeley.edu");
	check_host(&rw, "a.b.LOCAL", "cs.berkeley.edu");
	check_host(&rw, "me.locals", "me.locals");
	rewrite_free(&rw);
}

TEST(in_order_each_once)
{
	struct rewrite rw = REWRITE_INIT;
	static const char *const r[] = {"*a:b", "*b:c", "=x:y", "=y:x", NULL};
	rules(&rw, r);
	check_host(&rw, "qa", "qc"); /* a -> b, then b -> c */
	check_host(&rw, "qb", "qc");
	check_host(&rw, "x", "x"); /* x -> y -> x, never looping */
	check_host(&rw, "y", "x");
	rewrite_free(&rw);
}

TEST(defaults)
{
	struct rewrite rw = REWRITE_INIT;
	CHECK_INT(rewrite_defaults(&rw, "host", "plus.example", "dom.example"),
		  0);
	check_host(&rw, "", "host.dom.example");
	check_host(&rw, "a.b.", "a.b");
	check_host(&rw, "box", "box.dom.example");
	check_host(&rw, "box.", "box.dom.example");
	check_host(&rw, "box+", "box.plus.example");
	check_host(&rw, "a.b", "a.b");
	check_host(&rw, "[10.0.0.1]", "[10.0.0.1]");
	rewrite_free(&rw);
}

TEST(defaults_qualified_defaulthost)
{
	struct rewrite rw = REWRITE_INIT;
	CHECK_INT(rewrite_defaults(&rw, "mail.example", "p", "d"), 0);
	check_host(&rw, "", "mail.example");
	rewrite_free(&rw);
}

TEST(no_rules_no_change)
{
	struct rewrite rw = REWRITE_INIT;
	check_host(&rw, "", "");
	check_host(&rw, "box", "box");
}

TEST(bad_instructions)
{
	struct rewrite rw = REWRITE_INIT;
	static const char *const bad[] = {"",	      "=", "x:y", "!a:b",
					  "=nocolon", "*", NULL};
	for (const char *const *b = bad; *b; b++) {
		errno = 0;
		CHECK_INT(rewrite_add(&rw, *b, strlen(*b)), -1);
		CHECK_INT(errno, EINVAL);
	}
	errno = 0;
	CHECK_INT(rewrite_add(&rw, "=a\0:b", 5), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(rw.rules.len, 0);
	CHECK_INT(rewrite_add(&rw, "=:", 2), 0);
	check_host(&rw, "", "");
	rewrite_free(&rw);
}

TEST(load_file)
{
	struct rewrite rw = REWRITE_INIT;
	struct str bad = STR_INIT;

	tmpdir = unit_tmp_enter("t_rewrite");
	CHECK_INT(rewrite_load(&rw, "rewrite", &bad), 0);
	CHECK_INT(rw.rules.len, 0);
	unit_write_str("rewrite",
		       "# site rules\n"
		       "\n"
		       "*.:\n"
		       "=:hub.example   \n"
		       "-.internal:gw.example\n",
		       0644);
	CHECK_INT(rewrite_load(&rw, "rewrite", &bad), 1);
	check_host(&rw, "", "hub.example");
	check_host(&rw, "x.internal.", "gw.example");
	check_host(&rw, "box", "box");
	rewrite_free(&rw);
	leave_tmpdir();
}

TEST(load_file_bad_line)
{
	struct rewrite rw = REWRITE_INIT;
	struct str bad = STR_INIT;

	tmpdir = unit_tmp_enter("t_rewrite");
	unit_write_str("rewrite", "=:ok\nnot a rule\n", 0644);
	errno = 0;
	CHECK_INT(rewrite_load(&rw, "rewrite", &bad), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_STR(bad.s, bad.len, "not a rule");
	rewrite_free(&rw);
	str_free(&bad);
	leave_tmpdir();
}

TEST(load_directory_fails)
{
	struct rewrite rw = REWRITE_INIT;

	tmpdir = unit_tmp_enter("t_rewrite");
	CHECK_INT(mkdir("rewrite", 0755), 0);
	CHECK_INT(rewrite_load(&rw, "rewrite", NULL), -1);
	CHECK_INT(rmdir("rewrite"), 0);
	rewrite_free(&rw);
	leave_tmpdir();
}

UNIT_MAIN(exact, exact_empty, suffix, suffix_without_dots_or_brackets,
	  suffix_without_dots_nonempty_post, whole_replacement,
	  in_order_each_once, defaults, defaults_qualified_defaulthost,
	  no_rules_no_change, bad_instructions, load_file, load_file_bad_line,
	  load_directory_fails)
