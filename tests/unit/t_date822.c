/*
 * t_date822.c: tests for RFC 5322 date formatting and parsing.
 *
 * gmtime_r serves only as an independent oracle here; the module under
 * test must never depend on it. Parse inputs are copied into buffers of
 * exactly the given length so that ASan catches any read past n.
 */
#include "lib/date822.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>

#define FIRST_SECOND (-62167219200LL) /* 0000-01-01 00:00:00 */
#define LAST_SECOND 253402300799LL    /* 9999-12-31 23:59:59 */

/* Formats t and checks the text, its length and the NUL. */
static int fmt_is(time_t t, const char *want)
{
	char out[DATE822_LEN];
	memset(out, 'x', sizeof out);
	size_t len = date822_fmt(out, t);
	if (len != strlen(want) || out[len] != '\0' ||
	    memcmp(out, want, len) != 0) {
		fprintf(stderr, "fmt(%lld) = \"%.*s\" (%zu), want \"%s\"\n",
			(long long)t, (int)sizeof out, out, len, want);
		return 0;
	}
	return 1;
}

/* Parses exactly strlen(text) bytes from a heap copy of that size. */
static int parse_len(const char *text, size_t n, time_t *t)
{
	char *copy = malloc(n ? n : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, text, n);
	errno = 0;
	int rc = date822_parse(copy, n, t);
	int saved = errno;
	free(copy);
	errno = saved;
	return rc;
}

static int parse(const char *text, time_t *t)
{
	return parse_len(text, strlen(text), t);
}

/* Parses text and checks the result is want. */
static int parses_to(const char *text, long long want)
{
	time_t t = 12345;
	if (parse(text, &t) != 0) {
		fprintf(stderr, "parse(\"%s\") failed\n", text);
		return 0;
	}
	if ((long long)t != want) {
		fprintf(stderr, "parse(\"%s\") = %lld, want %lld\n", text,
			(long long)t, want);
		return 0;
	}
	return 1;
}

/* Checks text is rejected with EINVAL and *t is left alone. */
static int rejects(const char *text)
{
	time_t t = 12345;
	int rc = parse(text, &t);
	if (rc != -1 || errno != EINVAL || t != 12345) {
		fprintf(stderr, "parse(\"%s\") = %d errno %d, want rejection\n",
			text, rc, errno);
		return 0;
	}
	return 1;
}

TEST(fmt_epoch)
{
	CHECK(fmt_is(0, "Thu, 01 Jan 1970 00:00:00 +0000"));
	char out[DATE822_LEN];
	CHECK_INT(date822_fmt(out, 0), DATE822_LEN - 1);
}

TEST(fmt_known_dates)
{
	CHECK(fmt_is(1700000000, "Tue, 14 Nov 2023 22:13:20 +0000"));
	CHECK(fmt_is(1709208000, "Thu, 29 Feb 2024 12:00:00 +0000"));
	CHECK(fmt_is(951868799, "Tue, 29 Feb 2000 23:59:59 +0000"));
	CHECK(fmt_is(951868800, "Wed, 01 Mar 2000 00:00:00 +0000"));
	/* 1900 and 2100 are not leap years. */
	CHECK(fmt_is(-2203891200LL, "Thu, 01 Mar 1900 00:00:00 +0000"));
	CHECK(fmt_is(-2203891201LL, "Wed, 28 Feb 1900 23:59:59 +0000"));
	CHECK(fmt_is(4102444800LL, "Fri, 01 Jan 2100 00:00:00 +0000"));
}

TEST(fmt_before_1970)
{
	CHECK(fmt_is(-1, "Wed, 31 Dec 1969 23:59:59 +0000"));
	CHECK(fmt_is(-86400, "Wed, 31 Dec 1969 00:00:00 +0000"));
	CHECK(fmt_is(-86401, "Tue, 30 Dec 1969 23:59:59 +0000"));
	CHECK(fmt_is(-62135596800LL, "Mon, 01 Jan 0001 00:00:00 +0000"));
}

TEST(fmt_after_2038)
{
	if (sizeof(time_t) < 8)
		return;
	CHECK(fmt_is((time_t)2147483647LL, "Tue, 19 Jan 2038 03:14:07 +0000"));
	CHECK(fmt_is((time_t)2147483648LL, "Tue, 19 Jan 2038 03:14:08 +0000"));
	CHECK(fmt_is((time_t)4294967296LL, "Sun, 07 Feb 2106 06:28:16 +0000"));
}

TEST(fmt_clamps_to_four_digit_years)
{
	if (sizeof(time_t) < 8)
		return;
	const char *first = "Sat, 01 Jan 0000 00:00:00 +0000";
	const char *last = "Fri, 31 Dec 9999 23:59:59 +0000";
	CHECK(fmt_is((time_t)FIRST_SECOND, first));
	CHECK(fmt_is((time_t)(FIRST_SECOND + 1),
		     "Sat, 01 Jan 0000 00:00:01 +0000"));
	CHECK(fmt_is((time_t)(FIRST_SECOND - 1), first));
	CHECK(fmt_is((time_t)INT64_MIN, first));
	CHECK(fmt_is((time_t)LAST_SECOND, last));
	CHECK(fmt_is((time_t)(LAST_SECOND - 1),
		     "Fri, 31 Dec 9999 23:59:58 +0000"));
	CHECK(fmt_is((time_t)(LAST_SECOND + 1), last));
	CHECK(fmt_is((time_t)INT64_MAX, last));
}

/* What the text should be, built from gmtime_r without strftime. */
static int oracle(time_t t, char *buf, size_t size)
{
	static const char *days[] = {"Sun", "Mon", "Tue", "Wed",
				     "Thu", "Fri", "Sat"};
	static const char *months[] = {"Jan", "Feb", "Mar", "Apr",
				       "May", "Jun", "Jul", "Aug",
				       "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
		 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* An odd step visits every time of day and weekday over the run. */
#define SWEEP_STEP 9876543LL

TEST(fmt_agrees_with_gmtime)
{
	long long first = sizeof(time_t) < 8 ? INT32_MIN : FIRST_SECOND;
	long long last = sizeof(time_t) < 8 ? INT32_MAX : LAST_SECOND;
	long long compared = 0;
	for (long long v = first; v <= last; v += SWEEP_STEP) {
		char want[64];
		if (oracle((time_t)v, want, sizeof want) < 0)
			continue;
		compared++;
		if (!fmt_is((time_t)v, want)) {
			CHECK(0);
			break;
		}
	}
	CHECK(compared > 1000);
}

TEST(round_trip_across_centuries)
{
	long long first = sizeof(time_t) < 8 ? INT32_MIN : FIRST_SECOND;
	long long last = sizeof(time_t) < 8 ? INT32_MAX : LAST_SECOND;
	long long count = 0;
	for (long long v = first; v <= last; v += SWEEP_STEP) {
		char out[DATE822_LEN];
		size_t len = date822_fmt(out, (time_t)v);
		time_t back = 0;
		if (parse_len(out, len, &back) != 0 || (long long)back != v) {
			fprintf(stderr, "round trip of %lld: \"%s\" -> %lld\n",
				v, out, (long long)back);
			CHECK(0);
			break;
		}
		count++;
	}
	CHECK(count > 1000);
	/* The ends of the range and both sides of some day boundaries. */
	long long edges[] = {first, last, 0, -1, 951868799, 951868800};
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
		char out[DATE822_LEN];
		size_t len = date822_fmt(out, (time_t)edges[i]);
		time_t back = 0;
		CHECK(parse_len(out, len, &back) == 0);
		CHECK_INT(back, edges[i]);
	}
}

TEST(parse_basic_forms)
{
	CHECK(parses_to("Tue, 14 Nov 2023 22:13:20 +0000", 1700000000));
	CHECK(parses_to("14 Nov 2023 22:13:20 +0000", 1700000000));
	CHECK(parses_to("Thu, 1 Jan 1970 00:00:00 +0000", 0));
	CHECK(parses_to("Wed, 31 Dec 1969 23:59:59 +0000", -1));
	CHECK(parses_to("29 Feb 2024 12:00:00 +0000", 1709208000));
	CHECK(parses_to("29 Feb 2000 23:59:59 +0000", 951868799));
	/* The weekday is checked for spelling, not against the date. */
	CHECK(parses_to("Mon, 14 Nov 2023 22:13:20 +0000", 1700000000));
}

TEST(parse_missing_seconds)
{
	CHECK(parses_to("Tue, 14 Nov 2023 22:13 +0000", 1700000000 - 20));
	CHECK(parses_to("14 Nov 2023 22:13 GMT", 1700000000 - 20));
}

TEST(parse_case_insensitive_names)
{
	CHECK(parses_to("tue, 14 nov 2023 22:13:20 +0000", 1700000000));
	CHECK(parses_to("TUE, 14 NOV 2023 22:13:20 gmt", 1700000000));
	CHECK(parses_to("tUe, 14 nOv 2023 22:13:20 z", 1700000000));
}

TEST(parse_numeric_offsets)
{
	CHECK(parses_to("Tue, 14 Nov 2023 14:13:20 -0800", 1700000000));
	CHECK(parses_to("Wed, 15 Nov 2023 03:43:20 +0530", 1700000000));
	CHECK(parses_to("Tue, 14 Nov 2023 22:13:20 -0000", 1700000000));
	/* An offset that moves the date back across a year. */
	CHECK(parses_to("Thu, 1 Jan 1970 01:00:00 +0100", 0));
	CHECK(parses_to("Wed, 31 Dec 1969 19:00:00 -0500", 0));
}

TEST(parse_named_zones)
{
	static const struct {
		const char *name;
		int hours;
	} zones[] = {{"UT", 0},	  {"GMT", 0},  {"UTC", 0},  {"EST", -5},
		     {"EDT", -4}, {"CST", -6}, {"CDT", -5}, {"MST", -7},
		     {"MDT", -6}, {"PST", -8}, {"PDT", -7}, {"est", -5}};
	for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
		char text[64];
		snprintf(text, sizeof text, "1 Jan 2000 12:00:00 %s",
			 zones[i].name);
		CHECK(parses_to(text, 946728000LL - zones[i].hours * 3600LL));
	}
	/* Military letters count as UTC; J is not a zone. */
	for (char ch = 'A'; ch <= 'Z'; ch++) {
		char text[64];
		snprintf(text, sizeof text, "1 Jan 2000 12:00:00 %c", ch);
		if (ch == 'J') {
			CHECK(rejects(text));
		} else {
			CHECK(parses_to(text, 946728000LL));
		}
		text[strlen(text) - 1] = (char)(ch - 'A' + 'a');
		if (ch == 'J') {
			CHECK(rejects(text));
		} else {
			CHECK(parses_to(text, 946728000LL));
		}
	}
}

TEST(parse_comments_and_folding)
{
	long long want = 1700000000;
	CHECK(parses_to("Tue, 14 Nov 2023 23:13:20 +0100 (CET)", want));
	CHECK(parses_to("(lead) Tue , 14 Nov 2023 22:13:20 +0000", want));
	CHECK(parses_to("Tue,(a)14(b)Nov(c)2023(d)22(e):(f)13(g):(h)20"
			"(i)+0000(j)",
			want));
	CHECK(parses_to("Tue, 14 Nov 2023 22:13:20 +0000 (a (nested (x)) "
			"comment)",
			want));
	CHECK(parses_to("Tue, 14 Nov 2023 22:13:20 +0000 (q \\) \\( \\\\)",
			want));
	CHECK(parses_to("Tue, 14 Nov\r\n 2023 22:13:20\r\n\t+0000", want));
	CHECK(parses_to("Tue, 14 Nov\n 2023 22:13:20 +0000 (a\n b)", want));
	CHECK(parses_to("Tue, 14 Nov 2023 22:13:20 +0000\r\n", want));
	CHECK(parses_to("Tue, 14 Nov 2023 22:13:20 +0000 \n", want));
	/* Obsolete syntax lets tokens touch where nothing is ambiguous. */
	CHECK(parses_to("14Nov2023 22:13:20GMT", want));
}

TEST(parse_comment_depth_limit)
{
	char text[256] = "1 Jan 1970 00:00:00 +0000 ";
	size_t base = strlen(text);
	for (int i = 0; i < 32; i++)
		text[base + (size_t)i] = '(';
	for (int i = 0; i < 32; i++)
		text[base + 32 + (size_t)i] = ')';
	text[base + 64] = '\0';
	CHECK(parses_to(text, 0));

	for (int i = 0; i < 33; i++)
		text[base + (size_t)i] = '(';
	for (int i = 0; i < 33; i++)
		text[base + 33 + (size_t)i] = ')';
	text[base + 66] = '\0';
	CHECK(rejects(text));
}

TEST(parse_obsolete_years)
{
	CHECK(parses_to("1 Jan 00 00:00:00 +0000", 946684800));
	CHECK(parses_to("1 Jan 49 00:00:00 +0000", 2493072000LL));
	CHECK(parses_to("1 Jan 50 00:00:00 +0000", -631152000));
	CHECK(parses_to("1 Jan 99 00:00:00 +0000", 915148800));
	CHECK(parses_to("1 Jan 070 00:00:00 +0000", 0));
	CHECK(parses_to("1 Jan 124 00:00:00 +0000", 1704067200));
	CHECK(parses_to("1 Jan 0070 00:00:00 +0000", -59958144000LL));
	CHECK(rejects("1 Jan 7 00:00:00 +0000"));
	CHECK(rejects("1 Jan 10000 00:00:00 +0000"));
	CHECK(rejects("1 Jan 99999999999 00:00:00 +0000"));
}

TEST(parse_leap_second)
{
	/* 23:59:60 is accepted and lands on the next day's first second. */
	CHECK(parses_to("31 Dec 2016 23:59:60 +0000", 1483228800));
	CHECK(rejects("31 Dec 2016 23:59:61 +0000"));
}

TEST(parse_field_ranges)
{
	CHECK(parses_to("31 Jan 2023 00:00:00 +0000", 1675123200));
	CHECK(parses_to("30 Apr 2023 00:00:00 +0000", 1682812800));
	CHECK(parses_to("14 Nov 2023 23:59:59 +0000", 1700006399));
	CHECK(rejects("0 Jan 2023 00:00:00 +0000"));
	CHECK(rejects("32 Jan 2023 00:00:00 +0000"));
	CHECK(rejects("30 Feb 2024 00:00:00 +0000"));
	CHECK(rejects("29 Feb 2023 00:00:00 +0000"));
	CHECK(rejects("29 Feb 1900 00:00:00 +0000"));
	CHECK(rejects("31 Apr 2023 00:00:00 +0000"));
	CHECK(rejects("31 Jun 2023 00:00:00 +0000"));
	CHECK(rejects("001 Jan 2023 00:00:00 +0000"));
	CHECK(rejects("1 Jan 2023 24:00:00 +0000"));
	CHECK(rejects("1 Jan 2023 00:60:00 +0000"));
	CHECK(rejects("1 Jan 2023 00:00:99 +0000"));
	CHECK(rejects("1 Jan 2023 0:00:00 +0000"));
	CHECK(rejects("1 Jan 2023 000:00:00 +0000"));
	CHECK(rejects("1 Jan 2023 00:0:00 +0000"));
	CHECK(rejects("1 Jan 2023 00:00:0 +0000"));
	CHECK(rejects("1 Jan 2023 00:00: +0000"));
	CHECK(rejects("1 Jan 2023 00:00:00 +0060"));
	CHECK(rejects("1 Jan 2023 00:00:00 +000"));
	CHECK(rejects("1 Jan 2023 00:00:00 +00000"));
	CHECK(rejects("1 Jan 2023 00:00:00 +"));
}

TEST(parse_rejects_malformed)
{
	time_t t = 12345;
	CHECK(rejects(""));
	CHECK(rejects("   "));
	CHECK(rejects("(only a comment)"));
	CHECK(rejects("garbage"));
	CHECK(rejects("\x01\xff\x80"));
	CHECK(rejects("Tue 14 Nov 2023 22:13:20 +0000"));
	CHECK(rejects("Tuesday, 14 Nov 2023 22:13:20 +0000"));
	CHECK(rejects("Tux, 14 Nov 2023 22:13:20 +0000"));
	CHECK(rejects(", 14 Nov 2023 22:13:20 +0000"));
	CHECK(rejects("14 November 2023 22:13:20 +0000"));
	CHECK(rejects("14 Nox 2023 22:13:20 +0000"));
	CHECK(rejects("14 Nov 2023 22:13:20"));
	CHECK(rejects("14 Nov 2023 22:13:20 CET"));
	CHECK(rejects("14 Nov 2023 22:13:20 GMTX"));
	CHECK(rejects("14 Nov 2023 22:13:20 +0000 junk"));
	CHECK(rejects("14 Nov 2023 22:13:20 +0000 (unterminated"));
	CHECK(rejects("14 Nov 2023 22:13:20 +0000 (a (b)"));
	CHECK(rejects("14 Nov 2023 22:13:20 +0000 )"));
	CHECK(rejects("14 Nov 2023 22:13:20 +0000 (ends in \\"));
	CHECK(rejects("14 Nov 2023 22:13:20 +0000 (bare\rcr)"));
	CHECK(rejects("14 Nov 2023 22:13:20 +0000 (bare\nlf)"));
	CHECK(rejects("14 Nov\r\n2023 22:13:20 +0000"));
	CHECK(rejects("14 Nov 2023 22.13.20 +0000"));
	CHECK(rejects("2023-11-14T22:13:20Z"));

	/* A NUL inside a comment is not text. */
	static const char nul[] = "14 Nov 2023 22:13:20 +0000 (a\0b)";
	CHECK_INT(parse_len(nul, sizeof nul - 1, &t), -1);
	CHECK_INT(errno, EINVAL);

	errno = 0;
	CHECK_INT(date822_parse(NULL, 5, &t), -1);
	CHECK_INT(errno, EINVAL);
	errno = 0;
	CHECK_INT(date822_parse("1 Jan 2000 00:00 Z", 18, NULL), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(t, 12345);
}

/*
 * Every prefix of a date is parsed from a buffer of exactly that size;
 * only the prefixes that are themselves complete dates may succeed.
 */
TEST(parse_every_prefix)
{
	const char *full = "Tue, 14 Nov 2023 22:13:20 +0000 (CET)";
	size_t len = strlen(full);
	size_t zone_end = strlen("Tue, 14 Nov 2023 22:13:20 +0000");
	for (size_t k = 0; k <= len; k++) {
		time_t t = 12345;
		int rc = parse_len(full, k, &t);
		int complete = k == zone_end || k == zone_end + 1 || k == len;
		if (complete) {
			CHECK_INT(rc, 0);
			CHECK_INT(t, 1700000000);
		} else {
			CHECK_INT(rc, -1);
			CHECK_INT(errno, EINVAL);
			CHECK_INT(t, 12345);
		}
	}
}

/* Bytes after n must make no difference, whatever they are. */
TEST(parse_ignores_bytes_after_n)
{
	time_t t = 0;
	const char *zone = "1 Jan 2000 12:00:00 +01005";
	CHECK_INT(date822_parse(zone, strlen(zone) - 1, &t), 0);
	CHECK_INT(t, 946728000 - 3600);
	CHECK_INT(date822_parse(zone, strlen(zone), &t), -1);

	const char *mins = "1 Jan 2000 12:00:00 +0000";
	CHECK_INT(date822_parse(mins, strlen("1 Jan 2000 12:00"), &t), -1);
	const char *year = "1 Jan 2000 12:00:00 +0000";
	CHECK_INT(date822_parse(year, strlen("1 Jan 20"), &t), -1);

	const char *comment = "1 Jan 2000 12:00:00 +0000 (x)";
	CHECK_INT(date822_parse(comment, strlen(comment) - 1, &t), -1);

	const char *letter = "1 Jan 2000 12:00:00 GMTX";
	CHECK_INT(date822_parse(letter, strlen(letter) - 1, &t), 0);
	CHECK_INT(t, 946728000);
	CHECK_INT(date822_parse(letter, strlen(letter) - 2, &t), -1);
	CHECK_INT(date822_parse(letter, strlen(letter) - 3, &t), 0);
	CHECK_INT(t, 946728000);

	const char *fold = "1 Jan 2000 12:00:00\r\n +0000";
	CHECK_INT(date822_parse(fold, strlen("1 Jan 2000 12:00:00\r\n"), &t),
		  -1);
}

TEST(parse_beyond_time_t)
{
	time_t t = 0;
	int rc = parse("1 Jan 2100 00:00:00 +0000", &t);
	if (sizeof(time_t) < 8) {
		CHECK_INT(rc, -1);
		CHECK_INT(errno, EOVERFLOW);
	} else {
		CHECK_INT(rc, 0);
		CHECK_INT(t, 4102444800LL);
	}
	if (sizeof(time_t) < 8)
		return;
	CHECK(parses_to("31 Dec 9999 23:59:59 +0000", LAST_SECOND));
	CHECK(parses_to("1 Jan 0000 00:00:00 +0000", FIRST_SECOND));
	CHECK(parses_to("1 Jan 0000 00:00:00 +9959", FIRST_SECOND - 359940));
}

UNIT_MAIN(fmt_epoch, fmt_known_dates, fmt_before_1970, fmt_after_2038,
	  fmt_clamps_to_four_digit_years, fmt_agrees_with_gmtime,
	  round_trip_across_centuries, parse_basic_forms, parse_missing_seconds,
	  parse_case_insensitive_names, parse_numeric_offsets,
	  parse_named_zones, parse_comments_and_folding,
	  parse_comment_depth_limit, parse_obsolete_years, parse_leap_second,
	  parse_field_ranges, parse_rejects_malformed, parse_every_prefix,
	  parse_ignores_bytes_after_n, parse_beyond_time_t)
