/* t_ctl.c: control files: first lines, numbers, lists, and every way a
 * control file can be missing, too big or not a file at all. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/ctl.h"
#include "unit.h"
#include "unit_tmp.h"

/* A file of the given size that takes no disk space. */
static void put_sparse(const char *path, off_t size, const char *head)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	if (head)
		CHECK_INT(write(fd, head, strlen(head)),
			  (long long)strlen(head));
	CHECK_INT(ftruncate(fd, size), 0);
	CHECK_INT(close(fd), 0);
}

TEST(line_plain)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_str("me", "mail.example.org\n", 0644);
	CHECK_INT(ctl_line("me", &s, "dflt"), 1);
	CHECK_STR(s.s, s.len, "mail.example.org");
	CHECK_INT(s.s[s.len], 0);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_crlf)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_str("me", "crlf.example\r\n", 0644);
	CHECK_INT(ctl_line("me", &s, NULL), 1);
	CHECK_STR(s.s, s.len, "crlf.example");
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_trailing_blanks_removed_leading_kept)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_str("me", "  a b \t \t\r\n", 0644);
	CHECK_INT(ctl_line("me", &s, NULL), 1);
	CHECK_STR(s.s, s.len, "  a b");
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_only_first_line)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_str("me", "first\nsecond\nthird\n", 0644);
	CHECK_INT(ctl_line("me", &s, NULL), 1);
	CHECK_STR(s.s, s.len, "first");
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_without_newline)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_str("me", "last \t", 0644);
	CHECK_INT(ctl_line("me", &s, NULL), 1);
	CHECK_STR(s.s, s.len, "last");
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* A first line longer than one read chunk still comes back whole. */
TEST(line_longer_than_a_chunk)
{
	struct str s = STR_INIT;
	static char big[20001];
	unit_tmp_enter("t_ctl");
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\n';
	unit_write_file("me", big, sizeof big, 0644);
	CHECK_INT(ctl_line("me", &s, NULL), 1);
	CHECK_INT(s.len, sizeof big - 1);
	CHECK(s.len == sizeof big - 1 && memcmp(s.s, big, s.len) == 0);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_missing_uses_default)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	CHECK_INT(str_copys(&s, "old contents"), 0);
	CHECK_INT(ctl_line("nosuch", &s, "fallback"), 0);
	CHECK_STR(s.s, s.len, "fallback");
	CHECK_INT(ctl_line("nosuch", &s, NULL), 0);
	CHECK_INT(s.len, 0);
	str_free(&s);
	/* Even a never-grown str comes back usable as a C string. */
	CHECK_INT(ctl_line("nosuch", &s, NULL), 0);
	CHECK(s.s != NULL && s.s[0] == '\0');
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_empty_file_counts_as_missing)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_file("me", "", 0, 0644);
	CHECK_INT(ctl_line("me", &s, "fallback"), 0);
	CHECK_STR(s.s, s.len, "fallback");
	/* /dev/null behaves like an empty file. */
	CHECK_INT(ctl_line("/dev/null", &s, "null"), 0);
	CHECK_STR(s.s, s.len, "null");
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_blank_first_line_is_empty_value)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_str("me", " \t\r\nsecond\n", 0644);
	CHECK_INT(ctl_line("me", &s, "fallback"), 1);
	CHECK_INT(s.len, 0);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_too_big)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	put_sparse("big", (off_t)CTL_MAX + 1, "ok\n");
	CHECK_INT(str_copys(&s, "old"), 0);
	errno = 0;
	CHECK_INT(ctl_line("big", &s, "fallback"), -1);
	CHECK_INT(errno, EFBIG);
	CHECK_INT(s.len, 0);
	/* Exactly CTL_MAX is still allowed. */
	put_sparse("max", (off_t)CTL_MAX, "ok\n");
	CHECK_INT(ctl_line("max", &s, NULL), 1);
	CHECK_STR(s.s, s.len, "ok");
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* fstat says 0 bytes, reads never end: only the read bound stops it. */
TEST(line_endless_device_is_bounded)
{
	struct str s = STR_INIT;
	errno = 0;
	CHECK_INT(ctl_line("/dev/zero", &s, NULL), -1);
	CHECK_INT(errno, EFBIG);
	CHECK_INT(s.len, 0);
	str_free(&s);
}

TEST(line_directory_is_error)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	CHECK_INT(mkdir("dir", 0755), 0);
	errno = 0;
	CHECK_INT(ctl_line("dir", &s, "fallback"), -1);
	CHECK_INT(errno, EISDIR);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_fifo_is_error_without_hanging)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	CHECK_INT(mkfifo("fifo", 0644), 0);
	alarm(10); /* a hang kills the test instead of the whole run */
	errno = 0;
	CHECK_INT(ctl_line("fifo", &s, NULL), -1);
	CHECK_INT(errno, EINVAL);
	alarm(0);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_path_through_file_is_error_not_missing)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_str("plain", "x\n", 0644);
	errno = 0;
	CHECK_INT(ctl_line("plain/sub", &s, "fallback"), -1);
	CHECK_INT(errno, ENOTDIR);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_unreadable_is_error)
{
	struct str s = STR_INIT;
	/* Root reads any file whatever its mode, so there is nothing to
	 * test when running as root. */
	if (geteuid() == 0)
		return;
	unit_tmp_enter("t_ctl");
	unit_write_str("secret", "x\n", 0644);
	CHECK_INT(chmod("secret", 0), 0);
	errno = 0;
	CHECK_INT(ctl_line("secret", &s, "fallback"), -1);
	CHECK_INT(errno, EACCES);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_with_nul_is_error)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_file("me", "a\0b\n", 4, 0644);
	errno = 0;
	CHECK_INT(ctl_line("me", &s, NULL), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(s.len, 0);
	/* A NUL after the first line does not matter. */
	unit_write_file("me", "ab\n\0\n", 5, 0644);
	CHECK_INT(ctl_line("me", &s, NULL), 1);
	CHECK_STR(s.s, s.len, "ab");
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_or_me)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	CHECK_INT(mkdir("control", 0755), 0);
	/* Neither file: 0 with out empty. */
	CHECK_INT(str_copys(&s, "old"), 0);
	CHECK_INT(ctl_line_or_me("control/defaulthost", &s), 0);
	CHECK_INT(s.len, 0);
	/* Only me. */
	unit_write_str("control/me", "me.example\r\n", 0644);
	CHECK_INT(ctl_line_or_me("control/defaulthost", &s), 0);
	CHECK_STR(s.s, s.len, "me.example");
	/* The file itself wins. */
	unit_write_str("control/defaulthost", "dh.example\n", 0644);
	CHECK_INT(ctl_line_or_me("control/defaulthost", &s), 1);
	CHECK_STR(s.s, s.len, "dh.example");
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(line_or_me_errors)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	CHECK_INT(mkdir("control", 0755), 0);
	CHECK_INT(mkdir("control/me", 0755), 0);
	errno = 0;
	CHECK_INT(ctl_line_or_me("control/defaulthost", &s), -1);
	CHECK_INT(errno, EISDIR);
	/* An error on the file itself does not fall back to me. */
	CHECK_INT(rmdir("control/me"), 0);
	unit_write_str("control/me", "me.example\n", 0644);
	CHECK_INT(mkdir("control/defaulthost", 0755), 0);
	errno = 0;
	CHECK_INT(ctl_line_or_me("control/defaulthost", &s), -1);
	CHECK_INT(errno, EISDIR);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(ulong_valid)
{
	unsigned long n = 7;
	char max[32];
	unit_tmp_enter("t_ctl");
	unit_write_str("n", "1200\n", 0644);
	CHECK_INT(ctl_ulong("n", &n, 5), 1);
	CHECK(n == 1200);
	unit_write_str("n", "0042 \t\r\nignored\n", 0644);
	CHECK_INT(ctl_ulong("n", &n, 5), 1);
	CHECK(n == 42);
	unit_write_str("n", "0", 0644);
	CHECK_INT(ctl_ulong("n", &n, 5), 1);
	CHECK(n == 0);
	snprintf(max, sizeof max, "%lu\n", ULONG_MAX);
	unit_write_str("n", max, 0644);
	CHECK_INT(ctl_ulong("n", &n, 5), 1);
	CHECK(n == ULONG_MAX);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(ulong_missing_or_blank_uses_default)
{
	unsigned long n = 7;
	unit_tmp_enter("t_ctl");
	CHECK_INT(ctl_ulong("nosuch", &n, 99), 0);
	CHECK(n == 99);
	unit_write_file("n", "", 0, 0644);
	n = 7;
	CHECK_INT(ctl_ulong("n", &n, 98), 0);
	CHECK(n == 98);
	unit_write_str("n", " \r\n12\n", 0644);
	n = 7;
	CHECK_INT(ctl_ulong("n", &n, 97), 0);
	CHECK(n == 97);
	CHECK_INT(unit_tmp_leave(), 0);
}

static void check_garbage(const char *text)
{
	unsigned long n = 7;
	unit_write_str("n", text, 0644);
	errno = 0;
	CHECK_INT(ctl_ulong("n", &n, 5), -1);
	CHECK_INT(errno, EINVAL);
	CHECK(n == 7);
}

TEST(ulong_garbage)
{
	unit_tmp_enter("t_ctl");
	check_garbage("12abc\n");
	check_garbage("abc\n");
	check_garbage("-1\n");
	check_garbage("+5\n");
	check_garbage(" 5\n");
	check_garbage("1 2\n");
	check_garbage("0x10\n");
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(ulong_overflow)
{
	unsigned long n = 7;
	char big[40];
	unit_tmp_enter("t_ctl");
	/* ULONG_MAX ends in 5 for 32 and 64 bits: make it ULONG_MAX + 1. */
	int len = snprintf(big, sizeof big, "%lu", ULONG_MAX);
	CHECK(len > 0 && big[len - 1] == '5');
	big[len - 1] = '6';
	unit_write_str("n", big, 0644);
	errno = 0;
	CHECK_INT(ctl_ulong("n", &n, 5), -1);
	CHECK_INT(errno, ERANGE);
	CHECK(n == 7);
	snprintf(big, sizeof big, "%lu0\n", ULONG_MAX);
	unit_write_str("n", big, 0644);
	errno = 0;
	CHECK_INT(ctl_ulong("n", &n, 5), -1);
	CHECK_INT(errno, ERANGE);
	CHECK(n == 7);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(ulong_errors)
{
	unsigned long n = 7;
	unit_tmp_enter("t_ctl");
	CHECK_INT(mkdir("dir", 0755), 0);
	errno = 0;
	CHECK_INT(ctl_ulong("dir", &n, 5), -1);
	CHECK_INT(errno, EISDIR);
	put_sparse("big", (off_t)CTL_MAX + 1, NULL);
	errno = 0;
	CHECK_INT(ctl_ulong("big", &n, 5), -1);
	CHECK_INT(errno, EFBIG);
	CHECK(n == 7);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(list_skips_comments_and_blanks)
{
	struct str s = STR_INIT;
	static const char want[] = "alpha\0 beta gamma\0de#lta\0last\0";
	unit_tmp_enter("t_ctl");
	unit_write_str("l",
		       "# comment\n"
		       "\n"
		       "alpha\n"
		       "  \t\n"
		       " beta gamma \t\r\n"
		       "#another\n"
		       "de#lta\n"
		       "\r\n"
		       "last",
		       0644);
	CHECK_INT(ctl_list("l", &s), 1);
	CHECK_MEM(s.s, s.len, want, sizeof want - 1);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(list_crlf)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_str("l", "a\r\nb\r\n", 0644);
	CHECK_INT(ctl_list("l", &s), 1);
	CHECK_MEM(s.s, s.len, "a\0b\0", 4);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(list_missing_and_empty)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	CHECK_INT(str_copys(&s, "old"), 0);
	CHECK_INT(ctl_list("nosuch", &s), 0);
	CHECK_INT(s.len, 0);
	unit_write_file("l", "", 0, 0644);
	CHECK_INT(str_copys(&s, "old"), 0);
	CHECK_INT(ctl_list("l", &s), 1);
	CHECK_INT(s.len, 0);
	unit_write_str("l", "# only\n\n#comments\n", 0644);
	CHECK_INT(ctl_list("l", &s), 1);
	CHECK_INT(s.len, 0);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(list_nul_in_entry_is_error)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	unit_write_file("l", "ok\nba\0d\n", 8, 0644);
	CHECK_INT(str_copys(&s, "old"), 0);
	errno = 0;
	CHECK_INT(ctl_list("l", &s), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(s.len, 0);
	/* In a comment it does no harm. */
	unit_write_file("l", "#c\0mment\nok\n", 12, 0644);
	CHECK_INT(ctl_list("l", &s), 1);
	CHECK_MEM(s.s, s.len, "ok\0", 3);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(list_errors)
{
	struct str s = STR_INIT;
	unit_tmp_enter("t_ctl");
	CHECK_INT(mkdir("dir", 0755), 0);
	CHECK_INT(str_copys(&s, "old"), 0);
	errno = 0;
	CHECK_INT(ctl_list("dir", &s), -1);
	CHECK_INT(errno, EISDIR);
	CHECK_INT(s.len, 0);
	put_sparse("big", (off_t)CTL_MAX + 1, "a\n");
	errno = 0;
	CHECK_INT(ctl_list("big", &s), -1);
	CHECK_INT(errno, EFBIG);
	errno = 0;
	CHECK_INT(ctl_list("/dev/zero", &s), -1);
	CHECK_INT(errno, EFBIG);
	CHECK_INT(s.len, 0);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(next_iterates)
{
	struct str s = STR_INIT;
	size_t pos = 0;
	const char *e;
	unit_tmp_enter("t_ctl");
	unit_write_str("l", "one\n#x\ntwo words\nthree\n", 0644);
	CHECK_INT(ctl_list("l", &s), 1);
	e = ctl_next(&s, &pos);
	CHECK(e && strcmp(e, "one") == 0);
	e = ctl_next(&s, &pos);
	CHECK(e && strcmp(e, "two words") == 0);
	e = ctl_next(&s, &pos);
	CHECK(e && strcmp(e, "three") == 0);
	CHECK(ctl_next(&s, &pos) == NULL);
	CHECK(ctl_next(&s, &pos) == NULL);
	str_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(next_edge_cases)
{
	struct str s = STR_INIT;
	size_t pos = 0;
	const char *e;
	/* Nothing at all, not even a buffer. */
	CHECK(ctl_next(&s, &pos) == NULL);
	/* A last entry without its NUL still ends at len. */
	CHECK_INT(str_copy(&s, "x\0yz", 4), 0);
	e = ctl_next(&s, &pos);
	CHECK(e && strcmp(e, "x") == 0);
	e = ctl_next(&s, &pos);
	CHECK(e && strcmp(e, "yz") == 0);
	CHECK_INT(pos, 4);
	CHECK(ctl_next(&s, &pos) == NULL);
	str_free(&s);
}

UNIT_MAIN(line_plain, line_crlf, line_trailing_blanks_removed_leading_kept,
	  line_only_first_line, line_without_newline, line_longer_than_a_chunk,
	  line_missing_uses_default, line_empty_file_counts_as_missing,
	  line_blank_first_line_is_empty_value, line_too_big,
	  line_endless_device_is_bounded, line_directory_is_error,
	  line_fifo_is_error_without_hanging,
	  line_path_through_file_is_error_not_missing, line_unreadable_is_error,
	  line_with_nul_is_error, line_or_me, line_or_me_errors, ulong_valid,
	  ulong_missing_or_blank_uses_default, ulong_garbage, ulong_overflow,
	  ulong_errors, list_skips_comments_and_blanks, list_crlf,
	  list_missing_and_empty, list_nul_in_entry_is_error, list_errors,
	  next_iterates, next_edge_cases)
