/*
 * date822.c: RFC 5322 date-time formatting and parsing.
 *
 * Everything is integer arithmetic on the proleptic Gregorian calendar,
 * so the results never depend on the locale, TZ or the time-zone
 * database. It must never call gmtime, mktime, timegm, strftime or
 * the ctype functions, and the parser must never look at s[n] or beyond.
 *
 * Range: dates are handled for years 0000 through 9999, the years a
 * four-digit field can hold. date822_fmt clamps earlier or later times
 * to the first or last second of that range; date822_parse rejects
 * years above 9999 (two- and three-digit years map into 1900..2899).
 */
#include "lib/date822.h"

#include <errno.h>
#include <stdbool.h>

#define SECS_PER_DAY 86400LL
/* 0000-01-01 00:00:00 and 9999-12-31 23:59:59 as seconds since 1970. */
#define FIRST_SECOND (-62167219200LL)
#define LAST_SECOND 253402300799LL
#define MAX_YEAR 9999
/* How deeply comments may nest before we give up on the text. */
#define MAX_COMMENT_DEPTH 32

static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed",
				     "Thu", "Fri", "Sat"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr",
					"May", "Jun", "Jul", "Aug",
					"Sep", "Oct", "Nov", "Dec"};

/*
 * Days from 1 March to the first of each month, in a year that starts
 * on 1 March; putting February last makes the leap day the year's end.
 */
static const int march_month_start[12] = {0,   31,  61,	 92,  122, 153,
					  184, 214, 245, 275, 306, 337};

/*
 * Calendar arithmetic uses "serial days": day 0 is 1 March of year
 * -400, so every date in years 0..9999 has a positive serial and plain
 * division works. 400 years is a whole Gregorian cycle, so shifting by
 * it changes no leap year.
 */
#define YEAR_SHIFT 400
#define DAYS_PER_400Y 146097
#define DAYS_PER_100Y 36524
#define DAYS_PER_4Y 1461
#define DAYS_PER_Y 365

static bool is_leap(long long year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(long long year, int month)
{
	static const int len[12] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	if (month == 2 && is_leap(year))
		return 29;
	return len[month - 1];
}

/* Serial day of a valid date with year 0..9999 and month 1..12. */
static long long serial_from_civil(long long year, int month, int day)
{
	/* January and February belong to the March-year before. */
	long long y = (month <= 2 ? year - 1 : year) + YEAR_SHIFT;
	int m = month <= 2 ? month + 9 : month - 3;
	/* Each March-year y' < y ends with a leap day iff y' + 1 is leap. */
	long long leap_days = y / 4 - y / 100 + y / 400;
	return DAYS_PER_Y * y + leap_days + march_month_start[m] + day - 1;
}

struct civil {
	long long year;
	int month; /* 1..12 */
	int day;   /* 1..31 */
};

/* Inverse of serial_from_civil, for serial >= 0. */
static struct civil civil_from_serial(long long serial)
{
	long long cycles = serial / DAYS_PER_400Y;
	long long rest = serial % DAYS_PER_400Y;
	/* The last century of a cycle is one day longer: cap at 3. */
	long long centuries = rest / DAYS_PER_100Y;
	if (centuries > 3)
		centuries = 3;
	rest -= centuries * DAYS_PER_100Y;
	long long quads = rest / DAYS_PER_4Y;
	rest %= DAYS_PER_4Y;
	/* Likewise the last year of a four-year block. */
	long long years = rest / DAYS_PER_Y;
	if (years > 3)
		years = 3;
	rest -= years * DAYS_PER_Y;

	int m = 11;
	while (march_month_start[m] > rest)
		m--;
	struct civil c;
	c.year = cycles * 400 + centuries * 100 + quads * 4 + years -
		 YEAR_SHIFT + (m >= 10);
	c.month = m < 10 ? m + 3 : m - 9;
	c.day = (int)(rest - march_month_start[m]) + 1;
	return c;
}

static long long days_since_epoch(long long year, int month, int day)
{
	return serial_from_civil(year, month, day) -
	       serial_from_civil(1970, 1, 1);
}

/* Division rounding down, so that times before 1970 fall on the right day. */
static long long floor_div(long long a, long long b)
{
	long long q = a / b;
	if (a % b != 0 && a < 0)
		q--;
	return q;
}

static char *put_digits(char *p, long long value, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + value % 10);
		value /= 10;
	}
	return p + width;
}

static char *put_text(char *p, const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		*p++ = text[i];
	return p;
}

size_t date822_fmt(char out[DATE822_LEN], time_t t)
{
	long long secs = (long long)t;
	if (secs < FIRST_SECOND)
		secs = FIRST_SECOND;
	if (secs > LAST_SECOND)
		secs = LAST_SECOND;

	long long days = floor_div(secs, SECS_PER_DAY);
	long long of_day = secs - days * SECS_PER_DAY;
	struct civil c =
	    civil_from_serial(days + serial_from_civil(1970, 1, 1));
	/* 1970-01-01 was a Thursday (day 4 counting from Sunday). */
	long long weekday = days % 7 + 4;
	weekday = (weekday % 7 + 7) % 7;

	char *p = out;
	p = put_text(p, day_names[weekday], 3);
	p = put_text(p, ", ", 2);
	p = put_digits(p, c.day, 2);
	*p++ = ' ';
	p = put_text(p, month_names[c.month - 1], 3);
	*p++ = ' ';
	p = put_digits(p, c.year, 4);
	*p++ = ' ';
	p = put_digits(p, of_day / 3600, 2);
	*p++ = ':';
	p = put_digits(p, of_day / 60 % 60, 2);
	*p++ = ':';
	p = put_digits(p, of_day % 60, 2);
	p = put_text(p, " +0000", 6);
	*p = '\0';
	return (size_t)(p - out);
}

/* Parsing. */

struct cursor {
	const unsigned char *s;
	size_t n;
	size_t pos;
};

/* The next byte, or -1 at the end; the only place s is read. */
static int peek_at(const struct cursor *c, size_t ahead)
{
	if (ahead >= c->n - c->pos)
		return -1;
	return c->s[c->pos + ahead];
}

static int peek(const struct cursor *c)
{
	return peek_at(c, 0);
}

static bool is_wsp(int ch)
{
	return ch == ' ' || ch == '\t';
}

static bool is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_alpha(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int ascii_lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/*
 * Folding white space: blanks, and line breaks only when a blank
 * follows (a fold). LF alone is accepted as well as CRLF because
 * messages are stored with bare LF line ends. Returns whether it
 * consumed anything.
 */
static bool skip_fws(struct cursor *c)
{
	size_t start = c->pos;
	for (;;) {
		int ch = peek(c);
		if (is_wsp(ch)) {
			c->pos++;
		} else if (ch == '\r' && peek_at(c, 1) == '\n' &&
			   is_wsp(peek_at(c, 2))) {
			c->pos += 3;
		} else if (ch == '\n' && is_wsp(peek_at(c, 1))) {
			c->pos += 2;
		} else {
			return c->pos != start;
		}
	}
}

/* A comment starting at '(' with nesting and quoted pairs; 0 or -1. */
static int skip_comment(struct cursor *c)
{
	int depth = 0;
	do {
		int ch = peek(c);
		if (ch < 0 || ch == '\0')
			return -1;
		if (ch == '\r' || ch == '\n') {
			if (!skip_fws(c))
				return -1;
			continue;
		}
		c->pos++;
		if (ch == '(') {
			if (++depth > MAX_COMMENT_DEPTH)
				return -1;
		} else if (ch == ')') {
			depth--;
		} else if (ch == '\\') {
			int quoted = peek(c);
			if (quoted < 0 || quoted == '\r' || quoted == '\n')
				return -1;
			c->pos++;
		}
	} while (depth > 0);
	return 0;
}

/* Any mix of folding white space and comments; 0, or -1 on a bad one. */
static int skip_cfws(struct cursor *c)
{
	for (;;) {
		skip_fws(c);
		if (peek(c) != '(')
			return 0;
		if (skip_comment(c) < 0)
			return -1;
	}
}

/*
 * A run of digits: returns how many there were and their value, which
 * saturates above 99999 so that long runs cannot overflow; callers
 * reject runs of the wrong length anyway.
 */
static size_t read_number(struct cursor *c, int *value)
{
	size_t count = 0;
	int v = 0;
	while (is_digit(peek(c))) {
		if (v <= 99999)
			v = v * 10 + (peek(c) - '0');
		c->pos++;
		count++;
	}
	*value = v;
	return count;
}

/* Exactly two digits, as in the time fields and zone; -1 otherwise. */
static int read_two_digits(struct cursor *c)
{
	int value;
	if (read_number(c, &value) != 2)
		return -1;
	return value;
}

/*
 * A run of letters matched case-insensitively against a table of names
 * of width 4 (NUL padded); returns the index, or -1.
 */
static int read_name(struct cursor *c, const char (*names)[4], int count)
{
	size_t len = 0;
	while (is_alpha(peek_at(c, len)))
		len++;
	for (int i = 0; i < count; i++) {
		size_t k = 0;
		while (k < len && names[i][k] != '\0' &&
		       ascii_lower(peek_at(c, k)) == ascii_lower(names[i][k]))
			k++;
		if (k == len && names[i][k] == '\0') {
			c->pos += len;
			return i;
		}
	}
	return -1;
}

static bool expect(struct cursor *c, int ch)
{
	if (peek(c) != ch)
		return false;
	c->pos++;
	return true;
}

struct parsed {
	long long year;
	int month, day, hour, minute, second;
	int zone_minutes; /* east of UTC */
};

static int parse_day_of_week(struct cursor *c)
{
	if (!is_alpha(peek(c)))
		return 0; /* it is optional */
	/* The weekday is not checked against the date: the date rules. */
	if (read_name(c, day_names, 7) < 0 || skip_cfws(c) < 0 ||
	    !expect(c, ',') || skip_cfws(c) < 0)
		return -1;
	return 0;
}

/* Two-digit years are 1950..2049; three-digit ones count from 1900. */
static long long expand_year(int value, size_t digits)
{
	if (digits == 2)
		return value < 50 ? 2000 + value : 1900 + value;
	if (digits == 3)
		return 1900 + value;
	return value;
}

static int parse_date(struct cursor *c, struct parsed *p)
{
	int value;
	size_t digits = read_number(c, &value);
	if (digits < 1 || digits > 2 || skip_cfws(c) < 0)
		return -1;
	p->day = value;

	int month = read_name(c, month_names, 12);
	if (month < 0 || skip_cfws(c) < 0)
		return -1;
	p->month = month + 1;

	digits = read_number(c, &value);
	if (digits < 2 || skip_cfws(c) < 0)
		return -1;
	p->year = expand_year(value, digits);
	if (p->year > MAX_YEAR)
		return -1;
	if (p->day < 1 || p->day > days_in_month(p->year, p->month))
		return -1;
	return 0;
}

static int parse_time_of_day(struct cursor *c, struct parsed *p)
{
	p->hour = read_two_digits(c);
	if (p->hour < 0 || p->hour > 23 || skip_cfws(c) < 0 ||
	    !expect(c, ':') || skip_cfws(c) < 0)
		return -1;
	p->minute = read_two_digits(c);
	if (p->minute < 0 || p->minute > 59 || skip_cfws(c) < 0)
		return -1;
	p->second = 0;
	if (!expect(c, ':'))
		return 0;
	if (skip_cfws(c) < 0)
		return -1;
	p->second = read_two_digits(c);
	/* 60 is a leap second; it simply becomes the next minute's :00. */
	if (p->second < 0 || p->second > 60 || skip_cfws(c) < 0)
		return -1;
	return 0;
}

static int parse_numeric_zone(struct cursor *c, struct parsed *p)
{
	int sign = peek(c) == '-' ? -1 : 1;
	c->pos++;
	int value;
	if (read_number(c, &value) != 4 || value % 100 > 59)
		return -1;
	p->zone_minutes = sign * (value / 100 * 60 + value % 100);
	return 0;
}

/*
 * RFC 5322 4.3 gives the US zones their offsets; military letters are
 * too often wrong to trust and count as -0000, which is UTC. UTC is
 * not in the RFC's list but is common and unambiguous.
 */
static const char zone_names[][4] = {"UT",  "GMT", "UTC", "EST", "EDT", "CST",
				     "CDT", "MST", "MDT", "PST", "PDT"};
static const int zone_hours[] = {0, 0, 0, -5, -4, -6, -5, -7, -6, -8, -7};

static int parse_named_zone(struct cursor *c, struct parsed *p)
{
	int count = (int)(sizeof zone_hours / sizeof zone_hours[0]);
	int i = read_name(c, zone_names, count);
	if (i >= 0) {
		p->zone_minutes = zone_hours[i] * 60;
		return 0;
	}
	int letter = ascii_lower(peek(c));
	if (is_alpha(letter) && letter != 'j' && !is_alpha(peek_at(c, 1))) {
		c->pos++;
		p->zone_minutes = 0;
		return 0;
	}
	return -1;
}

static int parse_zone(struct cursor *c, struct parsed *p)
{
	int ch = peek(c);
	if (ch == '+' || ch == '-')
		return parse_numeric_zone(c, p);
	return parse_named_zone(c, p);
}

/* Trailing comments, blanks and a final line end may follow the zone. */
static int parse_end(struct cursor *c)
{
	if (skip_cfws(c) < 0)
		return -1;
	for (;;) {
		int ch = peek(c);
		if (ch < 0)
			return 0;
		if (!is_wsp(ch) && ch != '\r' && ch != '\n')
			return -1;
		c->pos++;
	}
}

/* UTC seconds; overflow-checked because time_t may have 32 bits. */
static int to_time(const struct parsed *p, time_t *t)
{
	long long days = days_since_epoch(p->year, p->month, p->day);
	long long secs;
	long long of_day = p->hour * 3600LL + p->minute * 60LL + p->second -
			   p->zone_minutes * 60LL;
	if (__builtin_mul_overflow(days, SECS_PER_DAY, &secs) ||
	    __builtin_add_overflow(secs, of_day, &secs) ||
	    __builtin_add_overflow(secs, 0, t)) {
		errno = EOVERFLOW;
		return -1;
	}
	return 0;
}

int date822_parse(const char *s, size_t n, time_t *t)
{
	struct cursor c = {(const unsigned char *)s, n, 0};
	struct parsed p;
	if (s == NULL || t == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (skip_cfws(&c) < 0 || parse_day_of_week(&c) < 0 ||
	    parse_date(&c, &p) < 0 || parse_time_of_day(&c, &p) < 0 ||
	    parse_zone(&c, &p) < 0 || parse_end(&c) < 0) {
		errno = EINVAL;
		return -1;
	}
	return to_time(&p, t);
}
