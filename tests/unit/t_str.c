/* t_str.c: growable strings, including growth that would overflow. */
#include <errno.h>
#include <stdint.h>

#include "lib/str.h"
#include "unit.h"

TEST(append_and_copy)
{
	struct str s = STR_INIT;
	CHECK_INT(str_appends(&s, "hello"), 0);
	CHECK_INT(str_appendc(&s, ' '), 0);
	CHECK_INT(str_append(&s, "world!", 5), 0);
	CHECK_STR(s.s, s.len, "hello world");
	CHECK_INT(s.s[s.len], 0);
	CHECK_INT(str_copys(&s, "x"), 0);
	CHECK_STR(s.s, s.len, "x");
	CHECK(str_starts(&s, "x"));
	CHECK(!str_starts(&s, "xy"));
	str_free(&s);
	CHECK(s.s == NULL);
}

TEST(binary_and_nul_records)
{
	struct str s = STR_INIT;
	CHECK_INT(str_appends(&s, "Ffrom"), 0);
	CHECK_INT(str_append0(&s), 0);
	CHECK_INT(str_appends(&s, "Tto"), 0);
	CHECK_INT(str_append0(&s), 0);
	CHECK_MEM(s.s, s.len, "Ffrom\0Tto\0", 10);
	str_free(&s);
}

TEST(numbers)
{
	struct str s = STR_INIT;
	CHECK_INT(str_appendnum(&s, 0), 0);
	CHECK_INT(str_appendc(&s, ' '), 0);
	CHECK_INT(str_appendnum(&s, 18446744073709551615ULL), 0);
	CHECK_STR(s.s, s.len, "0 18446744073709551615");
	str_free(&s);
}

TEST(truncate_clear)
{
	struct str s = STR_INIT;
	CHECK_INT(str_appends(&s, "abcdef"), 0);
	str_truncate(&s, 3);
	CHECK_STR(s.s, s.len, "abc");
	str_truncate(&s, 10); /* longer than len: no change */
	CHECK_STR(s.s, s.len, "abc");
	str_clear(&s);
	CHECK_INT(s.len, 0);
	CHECK_INT(s.s[0], 0);
	str_wipe(&s);
	CHECK(s.s == NULL);
}

TEST(growth_overflow_refused)
{
	struct str s = STR_INIT;
	CHECK_INT(str_appends(&s, "keep"), 0);
	errno = 0;
	CHECK_INT(str_reserve(&s, SIZE_MAX), -1);
	CHECK_INT(errno, EOVERFLOW);
	errno = 0;
	CHECK_INT(str_reserve(&s, SIZE_MAX - 2), -1);
	CHECK_INT(errno, EOVERFLOW);
	errno = 0;
	CHECK_INT(str_reserve(&s, STR_MAX), -1); /* 4 + STR_MAX > STR_MAX */
	CHECK_INT(errno, EOVERFLOW);
	/* A failed growth leaves the string as it was. */
	CHECK_STR(s.s, s.len, "keep");
	CHECK_INT(str_append(&s, "x", SIZE_MAX), -1);
	CHECK_STR(s.s, s.len, "keep");
	CHECK_INT(str_copy(&s, "x", SIZE_MAX), -1);
	CHECK_STR(s.s, s.len, "keep");
	str_free(&s);
}

TEST(many_appends)
{
	struct str s = STR_INIT;
	for (int i = 0; i < 100000; i++)
		CHECK_INT(str_appendc(&s, (char)('a' + i % 26)), 0);
	CHECK_INT(s.len, 100000);
	CHECK(s.cap > s.len);
	CHECK_INT(s.s[99999], 'a' + 99999 % 26);
	str_free(&s);
}

UNIT_MAIN(append_and_copy, binary_and_nul_records, numbers, truncate_clear,
	  growth_overflow_refused, many_appends)
