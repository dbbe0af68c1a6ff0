/*
 * t_dotqmail.c: the .qmail parser and the .qmail-ext lookup order.
 *
 * Every line kind, every refused line, and the file lookup in a real
 * temporary directory (removed at the end of each test).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/dotqmail.h"
#include "unit.h"
#include "unit_tmp.h"

/* --- helpers --- */

static struct dq_list list;
static struct dq_error err;
static struct str text;

/* Parse the literal (which may hold NULs, hence the length). */
static int parse_n(const char *s, size_t n, int forward_only)
{
	dq_list_free(&list);
	err.line = 0;
	err.why = NULL;
	if (str_copy(&text, s, n) < 0)
		return -2;
	return dotqmail_parse(&text, forward_only, &list, &err);
}

static int parse(const char *s)
{
	return parse_n(s, strlen(s), 0);
}

/* Expect a refusal on line `line`; the reason must contain `why`. */
static int refused(const char *s, size_t n, int forward_only, size_t line,
		   const char *why)
{
	errno = 0;
	int r = parse_n(s, n, forward_only);
	return r == -1 && errno == EINVAL && list.n == 0 && err.line == line &&
	       err.why && strstr(err.why, why) != NULL;
}

/* --- parsing: line kinds --- */

TEST(every_kind)
{
	CHECK_INT(parse("|preline procmail\n"
			"&joe@example.com\n"
			"joe@example.net\n"
			"7joe@example.org\n"
			"./Mailbox\n"
			"/var/mail/joe\n"
			"./Maildir/\n"
			"/home/joe/Maildir/\n"),
		  0);
	CHECK_INT(list.n, 8);
	if (list.n != 8)
		return;
	CHECK_INT(list.v[0].kind, DQ_PROGRAM);
	CHECK_STR(list.v[0].arg, list.v[0].len, "preline procmail");
	CHECK_INT(list.v[1].kind, DQ_FORWARD);
	CHECK_STR(list.v[1].arg, list.v[1].len, "joe@example.com");
	CHECK_INT(list.v[2].kind, DQ_FORWARD);
	CHECK_STR(list.v[2].arg, list.v[2].len, "joe@example.net");
	CHECK_INT(list.v[3].kind, DQ_FORWARD);
	CHECK_STR(list.v[3].arg, list.v[3].len, "7joe@example.org");
	CHECK_INT(list.v[4].kind, DQ_MBOX);
	CHECK_STR(list.v[4].arg, list.v[4].len, "./Mailbox");
	CHECK_INT(list.v[5].kind, DQ_MBOX);
	CHECK_STR(list.v[5].arg, list.v[5].len, "/var/mail/joe");
	CHECK_INT(list.v[6].kind, DQ_MAILDIR);
	CHECK_STR(list.v[6].arg, list.v[6].len, "./Maildir/");
	CHECK_INT(list.v[7].kind, DQ_MAILDIR);
	CHECK_STR(list.v[7].arg, list.v[7].len, "/home/joe/Maildir/");
	for (size_t i = 0; i < list.n; i++) {
		CHECK_INT(list.v[i].line, i + 1);
		CHECK_INT(strlen(list.v[i].arg), list.v[i].len);
	}
}

TEST(comments_and_blank_lines)
{
	CHECK_INT(parse("# first a comment\n"
			"\n"
			"#|not a program\n"
			"   \t\n"
			"./Maildir/\n"
			"\n"),
		  0);
	CHECK_INT(list.n, 1);
	if (list.n == 1) {
		CHECK_INT(list.v[0].line, 5);
		CHECK_INT(list.v[0].kind, DQ_MAILDIR);
	}
	/* Only comments: nothing to do, and that is not an error. */
	CHECK_INT(parse("# nothing\n#at all\n"), 0);
	CHECK_INT(list.n, 0);
	/* A comment may hold control characters; it is never used. */
	CHECK_INT(parse("#\r\x01 odd\n&a@b\n"), 0);
	CHECK_INT(list.n, 1);
}

TEST(empty_text)
{
	CHECK_INT(parse(""), 0);
	CHECK_INT(list.n, 0);
}

TEST(trailing_blanks_stripped)
{
	CHECK_INT(parse("./Maildir/ \t \n&a@b.c\t\n|cmd arg  "), 0);
	CHECK_INT(list.n, 3);
	if (list.n != 3)
		return;
	CHECK_INT(list.v[0].kind, DQ_MAILDIR);
	CHECK_STR(list.v[0].arg, list.v[0].len, "./Maildir/");
	CHECK_STR(list.v[1].arg, list.v[1].len, "a@b.c");
	/* Last line without a newline. */
	CHECK_INT(list.v[2].kind, DQ_PROGRAM);
	CHECK_STR(list.v[2].arg, list.v[2].len, "cmd arg");
}

TEST(inner_blanks_kept_in_programs_and_files)
{
	CHECK_INT(parse("|a  b\tc\n./My Mail/\n"), 0);
	CHECK_INT(list.n, 2);
	if (list.n == 2) {
		CHECK_STR(list.v[0].arg, list.v[0].len, "a  b\tc");
		CHECK_STR(list.v[1].arg, list.v[1].len, "./My Mail/");
		CHECK_INT(list.v[1].kind, DQ_MAILDIR);
	}
}

TEST(text_is_nul_terminated_in_place)
{
	CHECK_INT(parse("&x@y\n&z@w\n"), 0);
	CHECK_INT(list.n, 2);
	if (list.n == 2) {
		CHECK(list.v[0].arg >= text.s &&
		      list.v[0].arg < text.s + text.len);
		CHECK_INT(list.v[0].arg[list.v[0].len], 0);
		CHECK_INT(list.v[1].arg[list.v[1].len], 0);
	}
}

/* --- parsing: refused lines --- */

TEST(first_line_blank_refused)
{
	CHECK(refused("\n./Maildir/\n", 12, 0, 1, "blank"));
	CHECK(refused("  \n./Maildir/\n", 14, 0, 1, "blank"));
}

TEST(nul_byte_refused)
{
	static const char t[] = "./Maildir/\n&joe\0@x\n";
	CHECK(refused(t, sizeof t - 1, 0, 2, "NUL"));
	static const char c[] = "#comment\0with nul\n";
	CHECK(refused(c, sizeof c - 1, 0, 1, "NUL"));
}

TEST(line_length_limit)
{
	size_t n = DOTQMAIL_LINE_MAX;
	char *s = malloc(n + 3);
	if (!s)
		return;
	memset(s, 'a', n + 2);
	s[0] = '|';
	s[n] = '\n'; /* a line of exactly the maximum */
	CHECK_INT(parse_n(s, n + 1, 0), 0);
	CHECK_INT(list.n, 1);
	if (list.n == 1)
		CHECK_INT(list.v[0].len, n - 1);
	s[n] = 'a';
	s[n + 1] = '\n'; /* one byte more */
	CHECK(refused(s, n + 2, 0, 1, "too long"));
	/* With no newline at all, too. */
	CHECK(refused(s, n + 1, 0, 1, "too long"));
	free(s);
}

TEST(bad_forwards_refused)
{
	CHECK(refused("&\n", 2, 0, 1, "empty forwarding address"));
	CHECK(refused("& \n", 3, 0, 1, "empty forwarding address"));
	CHECK(refused("./Mailbox\n& me@x.y\n", 19, 0, 2, "white space"));
	CHECK(refused("&me@x.y (Me)\n", 13, 0, 1, "white space"));
	CHECK(refused("&<me@x.y>\n", 10, 0, 1, "angle"));
	CHECK(refused("me@x.y>\n", 8, 0, 1, "angle"));
	CHECK(refused("me@x.y (Me)\n", 12, 0, 1, "white space"));
}

TEST(unknown_instructions_refused)
{
	CHECK(refused(" ./Maildir/\n", 12, 0, 1, "unrecognised"));
	CHECK(refused("-joe@x\n", 7, 0, 1, "unrecognised"));
	CHECK(refused("+list\n", 6, 0, 1, "unrecognised"));
	CHECK(refused("<joe@x>\n", 8, 0, 1, "unrecognised"));
	CHECK(refused("\"joe\"@x\n", 8, 0, 1, "unrecognised"));
}

TEST(empty_program_refused)
{
	CHECK(refused("|\n", 2, 0, 1, "empty program"));
	CHECK(refused("| \t\n", 4, 0, 1, "empty program"));
}

TEST(control_characters_refused)
{
	CHECK(refused("./Maildir/\r\n", 12, 0, 1, "control"));
	CHECK(refused("#ok\n|echo \x1b\n", 11, 0, 2, "control"));
	CHECK(refused("&a@b\x7f\n", 6, 0, 1, "control"));
}

TEST(error_after_good_lines_yields_nothing)
{
	/* All or nothing: the good first lines must not survive. */
	CHECK(refused("./Maildir/\n|prog\n&ok@x\n&\n", 25, 0, 4,
		      "empty forwarding"));
	CHECK_INT(list.n, 0);
}

TEST(forward_only_files)
{
	CHECK_INT(parse_n("# list\n&a@x\nb@y\n", 16, 1), 0);
	CHECK_INT(list.n, 2);
	CHECK(refused("&a@x\n|prog\n", 11, 1, 2, "execute bit"));
	CHECK(refused("./Mailbox\n", 10, 1, 1, "execute bit"));
	CHECK(refused("./Maildir/\n", 11, 1, 1, "execute bit"));
}

/* --- lookup: names --- */

TEST(safeext_lowercases_and_hides_dots)
{
	struct str s = STR_INIT;
	CHECK_INT(dotqmail_safeext(&s, "Foo.Bar-BAZ_9"), 0);
	CHECK_STR(s.s, s.len, "foo:bar-baz_9");
	/* ".." can never appear, so no name can climb out of the home. */
	CHECK_INT(dotqmail_safeext(&s, "../../etc/passwd"), 0);
	CHECK_STR(s.s, s.len, "::/::/etc/passwd");
	CHECK_INT(dotqmail_safeext(&s, ""), 0);
	CHECK_INT(s.len, 0);
	/* Bytes above ASCII are left alone, not case-folded. */
	CHECK_INT(dotqmail_safeext(&s, "\xc3\x84X"), 0);
	CHECK_STR(s.s, s.len, "\xc3\x84x");
	str_free(&s);
}

/* Collect the candidates as "name=deflt;" with deflt "-" for none. */
static void candidates(const char *dash, const char *ext, struct str *out)
{
	struct dq_search s;
	struct str name = STR_INIT;
	size_t deflt;
	int r;

	str_clear(out);
	if (dq_search_start(&s, dash, ext) < 0) {
		str_copys(out, "start failed");
		return;
	}
	while ((r = dq_search_next(&s, &name, &deflt)) == 1) {
		str_append(out, name.s, name.len);
		str_appendc(out, '=');
		if (deflt == DOTQMAIL_NOT_DEFAULT)
			str_appendc(out, '-');
		else
			str_appendnum(out, deflt);
		str_appendc(out, ';');
	}
	if (r < 0)
		str_appends(out, "error");
	/* Exhausted stays exhausted. */
	if (dq_search_next(&s, &name, &deflt) != 0)
		str_appends(out, "again");
	dq_search_free(&s);
	str_free(&name);
}

TEST(search_order)
{
	struct str c = STR_INIT;

	candidates("-", "a-b-c", &c);
	CHECK_STR(c.s, c.len,
		  ".qmail-a-b-c=-;.qmail-a-b-default=4;.qmail-a-default=2;"
		  ".qmail-default=0;");
	candidates("-", "a", &c);
	CHECK_STR(c.s, c.len, ".qmail-a=-;.qmail-default=0;");
	candidates("-", "a-", &c);
	CHECK_STR(c.s, c.len,
		  ".qmail-a-=-;.qmail-a-default=2;.qmail-default=0;");
	candidates("-", "a-b-", &c);
	CHECK_STR(c.s, c.len,
		  ".qmail-a-b-=-;.qmail-a-b-default=4;.qmail-a-default=2;"
		  ".qmail-default=0;");
	candidates("-", "", &c);
	CHECK_STR(c.s, c.len, ".qmail-=-;.qmail-default=0;");
	candidates("", "", &c);
	CHECK_STR(c.s, c.len, ".qmail=-;.qmaildefault=0;");
	candidates("-", "Lists.Foo-Bar", &c);
	CHECK_STR(c.s, c.len,
		  ".qmail-lists:foo-bar=-;.qmail-lists:foo-default=10;"
		  ".qmail-default=0;");
	/* An ext naming a -default file itself: DEFAULT is "default". */
	candidates("-", "foo-default", &c);
	CHECK_STR(c.s, c.len,
		  ".qmail-foo-default=4;.qmail-foo-default=4;"
		  ".qmail-default=0;");
	str_free(&c);
}

/* --- lookup: files --- */

TEST(find_exact_then_defaults)
{
	struct dq_found f = DQ_FOUND_INIT;

	unit_tmp_enter("t_dotqmail");
	unit_write_str(".qmail-default", "&catchall@x\n", 0644);
	unit_write_str(".qmail-foo-default", "&foo@x\n", 0644);
	unit_write_str(".qmail-foo-bar", "&exact@x\n", 0644);

	CHECK_INT(dotqmail_find("-", "foo-bar", &f), 1);
	CHECK_STR(f.name.s, f.name.len, ".qmail-foo-bar");
	CHECK_INT(f.deflt, DOTQMAIL_NOT_DEFAULT);
	CHECK(f.fd >= 0);
	close(f.fd);

	CHECK_INT(dotqmail_find("-", "Foo-Baz-Qux", &f), 1);
	CHECK_STR(f.name.s, f.name.len, ".qmail-foo-default");
	CHECK_INT(f.deflt, 4); /* DEFAULT = "Baz-Qux" */
	close(f.fd);

	CHECK_INT(dotqmail_find("-", "other", &f), 1);
	CHECK_STR(f.name.s, f.name.len, ".qmail-default");
	CHECK_INT(f.deflt, 0);
	close(f.fd);

	/* Content check: the fd really is the file found. */
	struct str t = STR_INIT;
	CHECK_INT(dotqmail_find("-", "FOO-BAR", &f), 1);
	CHECK_INT(dotqmail_read(f.fd, &t), 0);
	CHECK_STR(t.s, t.len, "&exact@x\n");
	close(f.fd);
	str_free(&t);
	str_free(&f.name);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(find_nothing)
{
	struct dq_found f = DQ_FOUND_INIT;

	unit_tmp_enter("t_dotqmail");
	unit_write_str(".qmail", "./Maildir/\n", 0644);
	CHECK_INT(dotqmail_find("-", "foo", &f), 0);
	CHECK_INT(f.fd, -1);
	CHECK_INT(f.deflt, DOTQMAIL_NOT_DEFAULT);
	/* dash "" finds the plain .qmail */
	CHECK_INT(dotqmail_find("", "", &f), 1);
	CHECK_STR(f.name.s, f.name.len, ".qmail");
	close(f.fd);
	str_free(&f.name);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(find_dots_become_colons)
{
	struct dq_found f = DQ_FOUND_INIT;

	unit_tmp_enter("t_dotqmail");
	unit_write_str(".qmail-www:example:com", "&w@x\n", 0644);
	CHECK_INT(dotqmail_find("-", "WWW.Example.com", &f), 1);
	CHECK_STR(f.name.s, f.name.len, ".qmail-www:example:com");
	close(f.fd);
	/* A dotted name is never looked up. */
	unit_write_str(".qmail-a.b", "&w@x\n", 0644);
	CHECK_INT(dotqmail_find("-", "a.b", &f), 0);
	str_free(&f.name);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(find_skips_non_files)
{
	struct dq_found f = DQ_FOUND_INIT;

	unit_tmp_enter("t_dotqmail");
	CHECK_INT(mkdir(".qmail-foo", 0755), 0);
	CHECK_INT(mkfifo(".qmail-default", 0644), 0);
	/* A directory and a FIFO are not .qmail files (and the FIFO must
	 * not hang the lookup). */
	CHECK_INT(dotqmail_find("-", "foo", &f), 0);
	unit_write_str(".qmail-foo-default", "&d@x\n", 0644);
	CHECK_INT(dotqmail_find("-", "foo-x", &f), 1);
	CHECK_STR(f.name.s, f.name.len, ".qmail-foo-default");
	close(f.fd);
	str_free(&f.name);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(find_error_is_not_missing)
{
	struct dq_found f = DQ_FOUND_INIT;

	unit_tmp_enter("t_dotqmail");
	unit_write_str(".qmail-default", "&d@x\n", 0644);
	/* A symlink loop hides whether the file exists: an error, not a
	 * fall-through to .qmail-default. */
	CHECK_INT(symlink(".qmail-foo", ".qmail-foo"), 0);
	errno = 0;
	CHECK_INT(dotqmail_find("-", "foo", &f), -1);
	CHECK_INT(errno, ELOOP);
	CHECK_STR(f.name.s, f.name.len, ".qmail-foo");
	CHECK_INT(f.fd, -1);
	str_free(&f.name);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(open_and_exists)
{
	int fd = -1;
	mode_t mode = 0;

	unit_tmp_enter("t_dotqmail");
	unit_write_str("f", "x", 0644);
	CHECK_INT(chmod("f", 0744), 0);
	CHECK_INT(dotqmail_open("f", &fd, &mode), 1);
	CHECK_INT(mode & 07777, 0744);
	/* Opened blocking, for the read that follows. */
	CHECK_INT(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	CHECK_INT(dotqmail_open("missing", &fd, &mode), 0);
	CHECK_INT(dotqmail_open("f/sub", &fd, &mode), 0); /* ENOTDIR */
	CHECK_INT(dotqmail_exists("f"), 1);
	CHECK_INT(dotqmail_exists("."), 1);
	CHECK_INT(dotqmail_exists("missing"), 0);
	CHECK_INT(symlink("loop", "loop"), 0);
	CHECK_INT(dotqmail_exists("loop"), -1);
	CHECK_INT(dotqmail_open("loop", &fd, &mode), -1);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(read_limits)
{
	struct str t = STR_INIT;

	unit_tmp_enter("t_dotqmail");
	int fd = open("big", O_RDWR | O_CREAT, 0644);
	CHECK(fd >= 0);
	CHECK_INT(ftruncate(fd, (off_t)DOTQMAIL_FILE_MAX), 0);
	CHECK_INT(dotqmail_read(fd, &t), 0);
	CHECK_INT(t.len, DOTQMAIL_FILE_MAX);
	CHECK_INT(ftruncate(fd, (off_t)DOTQMAIL_FILE_MAX + 1), 0);
	CHECK_INT(lseek(fd, 0, SEEK_SET), 0);
	errno = 0;
	CHECK_INT(dotqmail_read(fd, &t), -1);
	CHECK_INT(errno, EFBIG);
	close(fd);
	/* A read error is reported, not taken as the end. */
	int dir = open(".", O_RDONLY);
	CHECK_INT(dotqmail_read(dir, &t), -1);
	CHECK_INT(errno, EISDIR);
	close(dir);
	str_free(&t);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(every_kind, comments_and_blank_lines, empty_text,
	  trailing_blanks_stripped, inner_blanks_kept_in_programs_and_files,
	  text_is_nul_terminated_in_place, first_line_blank_refused,
	  nul_byte_refused, line_length_limit, bad_forwards_refused,
	  unknown_instructions_refused, empty_program_refused,
	  control_characters_refused, error_after_good_lines_yields_nothing,
	  forward_only_files, safeext_lowercases_and_hides_dots, search_order,
	  find_exact_then_defaults, find_nothing, find_dots_become_colons,
	  find_skips_non_files, find_error_is_not_missing, open_and_exists,
	  read_limits)
