/*
 * t_smtpaddr.c: unit tests for the SMTP path parser (mail/smtpaddr.c).
 *
 * Every input is copied into a heap block of exactly its length, without
 * a NUL, so that ASan catches any read past n. Covers paths with and
 * without brackets, source routes, quoted local parts, parameters,
 * address literals good and bad, and the UTF-8 rules byte by byte. A
 * test must never rely on a NUL after the input it hands the parser.
 */
#include "mail/smtpaddr.h"

#include "unit.h"

#define LIT(s) s, sizeof(s) - 1

/* Parse s[0..n) from an exact-size copy. On success *param_off is the
 * offset of the parameters in the input. */
static enum smtpaddr_result parse(const char *s, size_t n, int utf8_ok,
				  struct str *addr, size_t *param_off)
{
	char *copy = malloc(n ? n : 1);
	const char *params = NULL;

	if (!copy)
		exit(2);
	memcpy(copy, s, n);
	enum smtpaddr_result r =
	    smtpaddr_parse(copy, n, utf8_ok, addr, &params);
	if (r == SMTPADDR_OK) {
		CHECK(params >= copy && params <= copy + n);
		*param_off = params ? (size_t)(params - copy) : (size_t)-1;
	}
	free(copy);
	return r;
}

struct ok_case {
	const char *in;
	size_t n;
	const char *addr;
	size_t addrlen;
	const char *params; /* what *params points at */
};

#define OK(in, addr, params)                                                   \
	{                                                                      \
		LIT(in), LIT(addr), params                                     \
	}

static const struct ok_case good[] = {
    OK("<user@example.test>", "user@example.test", ""),
    OK("user@example.test", "user@example.test", ""),
    OK("<>", "", ""),
    OK("", "", ""),
    OK(" <user@example.test>", "user@example.test", ""),
    OK("<user@example.test> ", "user@example.test", ""),
    OK("<User@Example.TEST>", "User@Example.TEST", ""),
    OK("<postmaster>", "postmaster", ""),
    OK("<user@example.test> SIZE=100 BODY=8BITMIME", "user@example.test",
       "SIZE=100 BODY=8BITMIME"),
    OK("<user@example.test>\tSMTPUTF8", "user@example.test", "SMTPUTF8"),
    OK("user@example.test SIZE=5", "user@example.test", "SIZE=5"),
    OK("<> BODY=7BIT", "", "BODY=7BIT"),
    /* A source route is dropped, as RFC 5321 allows. */
    OK("<@relay.test:user@example.test>", "user@example.test", ""),
    OK("<@a.test,@b.test:user@example.test>", "user@example.test", ""),
    /* Quoted local parts may hold spaces, '>' and '<'; the quotes and
     * quoted pairs are removed, as qmail-smtpd does. */
    OK("<\"john doe\"@example.test>", "john doe@example.test", ""),
    OK("<\"a>b\"@example.test> SIZE=1", "a>b@example.test", "SIZE=1"),
    OK("<\"a<b\"@example.test>", "a<b@example.test", ""),
    OK("<\"a\\\"b\"@example.test>", "a\"b@example.test", ""),
    OK("<\"a\\\\\"@example.test>", "a\\@example.test", ""),
    OK("<\"joe\"@example.test>", "joe@example.test", ""),
    OK("\"john doe\"@example.test SIZE=2", "john doe@example.test",
       "SIZE=2"),
    /* Address literals. */
    OK("<user@[127.0.0.1]>", "user@[127.0.0.1]", ""),
    OK("<user@[IPv6:::1]>", "user@[IPv6:::1]", ""),
    OK("<user@[ipv6:2001:db8::1]>", "user@[ipv6:2001:db8::1]", ""),
    OK("<user@[IPv6:::ffff:192.0.2.1]>", "user@[IPv6:::ffff:192.0.2.1]", ""),
    /* Only the domain after the last '@' is a literal. */
    OK("<\"[x\"@example.test>", "[x@example.test", ""),
    OK("<[not-a-literal>", "[not-a-literal", ""),
};

TEST(good_paths)
{
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct str addr = STR_INIT;
		size_t off = (size_t)-1;
		enum smtpaddr_result r =
		    parse(good[i].in, good[i].n, 0, &addr, &off);
		size_t plen = strlen(good[i].params);
		if (r != SMTPADDR_OK || addr.len != good[i].addrlen ||
		    memcmp(addr.s, good[i].addr, addr.len) != 0 ||
		    strlen(addr.s) != addr.len || off + plen != good[i].n ||
		    memcmp(good[i].in + off, good[i].params, plen) != 0) {
			fprintf(stderr,
				"good case %zu \"%s\": result %d, addr \"%s\", "
				"params at %zu\n",
				i, good[i].in, (int)r, addr.s ? addr.s : "",
				off);
			unit_failures++;
		}
		str_free(&addr);
	}
}

struct bad_case {
	const char *in;
	size_t n;
	enum smtpaddr_result want;
};

#define BAD(in, want)                                                          \
	{                                                                      \
		LIT(in), want                                                  \
	}

static const struct bad_case bad[] = {
    BAD("<user@example.test", SMTPADDR_SYNTAX),
    BAD("<user@example.test>junk", SMTPADDR_SYNTAX),
    BAD("<user@example.test>>", SMTPADDR_SYNTAX),
    BAD("<user name@example.test>", SMTPADDR_SYNTAX),
    BAD("<user\t@example.test>", SMTPADDR_SYNTAX),
    BAD("<a<b@example.test>", SMTPADDR_SYNTAX),
    BAD("a<b@example.test", SMTPADDR_SYNTAX),
    BAD("<\"unterminated@example.test>", SMTPADDR_SYNTAX),
    BAD("\"unterminated@example.test", SMTPADDR_SYNTAX),
    BAD("<@relay.test>", SMTPADDR_SYNTAX),
    BAD("<@relay.test>:user@example.test", SMTPADDR_SYNTAX),
    BAD("<@relay.test,user@example.test>", SMTPADDR_SYNTAX),
    BAD("<", SMTPADDR_SYNTAX),
    BAD("<a\0b@example.test>", SMTPADDR_SYNTAX),
    BAD("a\0b@example.test", SMTPADDR_SYNTAX),
    BAD("<a\rb@example.test>", SMTPADDR_SYNTAX),
    BAD("<a\nb@example.test>", SMTPADDR_SYNTAX),
    BAD("<\"a\0b\"@example.test>", SMTPADDR_SYNTAX),
    BAD("<\"a\rb\"@example.test>", SMTPADDR_SYNTAX),
    /* The parser must stop at n: the '>' is outside. */
    BAD("<user@example.test", SMTPADDR_SYNTAX),
    /* Malformed literals. */
    BAD("<user@[127.0.0.1>", SMTPADDR_LITERAL),
    BAD("<user@[127.0.0]>", SMTPADDR_LITERAL),
    BAD("<user@[256.0.0.1]>", SMTPADDR_LITERAL),
    BAD("<user@[1.2.3.4.5]>", SMTPADDR_LITERAL),
    BAD("<user@[]>", SMTPADDR_LITERAL),
    BAD("<user@[x]>", SMTPADDR_LITERAL),
    BAD("<user@[::1]>", SMTPADDR_LITERAL),
    BAD("<user@[IPv6:]>", SMTPADDR_LITERAL),
    BAD("<user@[IPv6:1.2.3.4]>", SMTPADDR_LITERAL),
    BAD("<user@[IPv6:::1::2]>", SMTPADDR_LITERAL),
    BAD("<user@[IPv6:12345::1]>", SMTPADDR_LITERAL),
    BAD("<user@[127.0.0.1]x>", SMTPADDR_LITERAL),
    BAD("<user@[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:"
	"0001]>",
	SMTPADDR_LITERAL),
    BAD("user@[127.0.0.1", SMTPADDR_LITERAL),
};

TEST(bad_paths)
{
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct str addr = STR_INIT;
		size_t off;
		enum smtpaddr_result r =
		    parse(bad[i].in, bad[i].n, 1, &addr, &off);
		if (r != bad[i].want) {
			fprintf(stderr,
				"bad case %zu \"%.*s\": result %d, "
				"want %d\n",
				i, (int)bad[i].n, bad[i].in, (int)r,
				(int)bad[i].want);
			unit_failures++;
		}
		str_free(&addr);
	}
}

/* The input need not end where the text does: n is the only bound. */
TEST(length_is_the_bound)
{
	static const char in[] = "<a@b.test>SIZE=9";
	struct str addr = STR_INIT;
	size_t off;

	CHECK_INT(parse(in, 10, 0, &addr, &off), SMTPADDR_OK);
	CHECK_STR(addr.s, addr.len, "a@b.test");
	CHECK_INT(off, 10);
	CHECK_INT(parse(in, 9, 0, &addr, &off), SMTPADDR_SYNTAX);
	CHECK_INT(parse("a@b.test trailing", 8, 0, &addr, &off), SMTPADDR_OK);
	CHECK_STR(addr.s, addr.len, "a@b.test");
	CHECK_INT(off, 8);
	str_free(&addr);
}

/* --- 8-bit addresses --- */

TEST(utf8_address_needs_smtputf8)
{
	static const char in[] = "<\xce\xb4\xce\xbf\xce\xba@example.test>";
	struct str addr = STR_INIT;
	size_t off;

	CHECK_INT(parse(LIT(in), 0, &addr, &off), SMTPADDR_8BIT);
	CHECK_INT(parse(LIT(in), 1, &addr, &off), SMTPADDR_OK);
	CHECK_STR(addr.s, addr.len, "\xce\xb4\xce\xbf\xce\xba@example.test");
	CHECK_INT(parse(LIT("<user@b\xc3\xbc"
			    "cher.test>"),
			0, &addr, &off),
		  SMTPADDR_8BIT);
	str_free(&addr);
}

TEST(invalid_utf8_address_is_refused_either_way)
{
	static const char *const ins[] = {
	    "<\xc0\xafuser@example.test>",     /* overlong '/' */
	    "<\xe0\x80\xafuser@example.test>", /* overlong, 3 bytes */
	    "<\xed\xa0\x80@example.test>",     /* surrogate */
	    "<\xf4\x90\x80\x80@example.test>", /* above U+10FFFF */
	    "<\xff@example.test>",
	    "<\x80@example.test>",
	    "<user@example.\xc3>",	   /* truncated */
	    "<user@example.test\xe2\x82>", /* truncated */
	};
	for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
		struct str addr = STR_INIT;
		size_t off;
		for (int ok = 0; ok <= 1; ok++) {
			enum smtpaddr_result r =
			    parse(ins[i], strlen(ins[i]), ok, &addr, &off);
			if (r != SMTPADDR_UTF8) {
				fprintf(stderr,
					"utf8 case %zu (utf8_ok %d): "
					"result %d\n",
					i, ok, (int)r);
				unit_failures++;
			}
		}
		str_free(&addr);
	}
}

/* Quoting must not hide 8-bit bytes from the UTF-8 rules. */
TEST(quoted_local_part_follows_the_utf8_rules)
{
	struct str addr = STR_INIT;
	size_t off;

	CHECK_INT(parse(LIT("<\"caf\xc3\xa9\"@example.test>"), 0, &addr, &off),
		  SMTPADDR_8BIT);
	CHECK_INT(parse(LIT("<\"caf\xc3\xa9\"@example.test>"), 1, &addr, &off),
		  SMTPADDR_OK);
	CHECK_INT(parse(LIT("<\"\xff\"@example.test>"), 1, &addr, &off),
		  SMTPADDR_UTF8);
	CHECK_INT(parse(LIT("<\"\xc0\xaf\"@example.test>"), 0, &addr, &off),
		  SMTPADDR_UTF8);
	CHECK_INT(parse(LIT("<\"a\\\xff\"@example.test>"), 1, &addr, &off),
		  SMTPADDR_UTF8);
	str_free(&addr);
}

/* A backslash inside quotes must not let NUL, CR or LF through: the
 * address is documented to be a clean C string. */
TEST(quoted_pair_cannot_smuggle_control_bytes)
{
	struct str addr = STR_INIT;
	size_t off;

	CHECK_INT(parse(LIT("<\"a\\\0b\"@example.test>"), 1, &addr, &off),
		  SMTPADDR_SYNTAX);
	CHECK_INT(parse(LIT("<\"a\\\rb\"@example.test>"), 1, &addr, &off),
		  SMTPADDR_SYNTAX);
	CHECK_INT(parse(LIT("<\"a\\\nb\"@example.test>"), 1, &addr, &off),
		  SMTPADDR_SYNTAX);
	str_free(&addr);
}

/* --- parameters --- */

TEST(next_param_iterates)
{
	static const char p[] = "  SIZE=100\tBODY=8BITMIME  SMTPUTF8 X= =v";
	struct str key = STR_INIT, value = STR_INIT;
	size_t pos = 0;
	int has = -1;

	CHECK_INT(
	    smtpaddr_next_param(p, sizeof p - 1, &pos, &key, &value, &has), 1);
	CHECK_STR(key.s, key.len, "SIZE");
	CHECK_STR(value.s, value.len, "100");
	CHECK_INT(has, 1);
	CHECK_INT(
	    smtpaddr_next_param(p, sizeof p - 1, &pos, &key, &value, &has), 1);
	CHECK_STR(key.s, key.len, "BODY");
	CHECK_STR(value.s, value.len, "8BITMIME");
	CHECK_INT(
	    smtpaddr_next_param(p, sizeof p - 1, &pos, &key, &value, &has), 1);
	CHECK_STR(key.s, key.len, "SMTPUTF8");
	CHECK_INT(value.len, 0);
	CHECK_INT(has, 0);
	CHECK_INT(
	    smtpaddr_next_param(p, sizeof p - 1, &pos, &key, &value, &has), 1);
	CHECK_STR(key.s, key.len, "X");
	CHECK_INT(value.len, 0);
	CHECK_INT(has, 1);
	CHECK_INT(
	    smtpaddr_next_param(p, sizeof p - 1, &pos, &key, &value, &has), 1);
	CHECK_INT(key.len, 0);
	CHECK_STR(value.s, value.len, "v");
	CHECK_INT(has, 1);
	CHECK_INT(
	    smtpaddr_next_param(p, sizeof p - 1, &pos, &key, &value, &has), 0);
	CHECK_INT(pos, sizeof p - 1);
	/* At the end it stays at the end. */
	CHECK_INT(
	    smtpaddr_next_param(p, sizeof p - 1, &pos, &key, &value, &has), 0);
	str_free(&key);
	str_free(&value);
}

TEST(next_param_stops_at_n)
{
	static const char p[] = "A=1 B=2";
	struct str key = STR_INIT, value = STR_INIT;
	size_t pos = 0;
	int has;

	CHECK_INT(smtpaddr_next_param(p, 6, &pos, &key, &value, &has), 1);
	CHECK_STR(key.s, key.len, "A");
	CHECK_INT(smtpaddr_next_param(p, 6, &pos, &key, &value, &has), 1);
	CHECK_STR(key.s, key.len, "B");
	CHECK_INT(value.len, 0);
	CHECK_INT(has, 1);
	CHECK_INT(smtpaddr_next_param(p, 6, &pos, &key, &value, &has), 0);
	pos = 0;
	CHECK_INT(smtpaddr_next_param(p, 5, &pos, &key, &value, &has), 1);
	CHECK_INT(smtpaddr_next_param(p, 5, &pos, &key, &value, &has), 1);
	CHECK_STR(key.s, key.len, "B");
	CHECK_INT(has, 0);
	CHECK_INT(smtpaddr_next_param("", 0, &pos, &key, &value, &has), 0);
	str_free(&key);
	str_free(&value);
}

TEST(has_param)
{
	static const char p[] = "SIZE=10 smtputf8 BODY=7BIT";

	CHECK(smtpaddr_has_param(p, sizeof p - 1, "SMTPUTF8"));
	CHECK(smtpaddr_has_param(p, sizeof p - 1, "size"));
	CHECK(smtpaddr_has_param(p, sizeof p - 1, "BODY"));
	CHECK(!smtpaddr_has_param(p, sizeof p - 1, "SMTPUTF"));
	CHECK(!smtpaddr_has_param(p, sizeof p - 1, "10"));
	CHECK(!smtpaddr_has_param(p, 7, "SMTPUTF8"));
	CHECK(!smtpaddr_has_param("", 0, "SIZE"));
	CHECK(!smtpaddr_has_param("SMTPUTF8X", 9, "SMTPUTF8"));
}

/* --- literals --- */

TEST(literal_good)
{
	static const struct {
		const char *domain, *ip;
	} t[] = {
	    {"[127.0.0.1]", "127.0.0.1"},
	    {"[0.0.0.0]", "0.0.0.0"},
	    {"[IPv6:::1]", "::1"},
	    {"[ipv6:::1]", "::1"},
	    {"[IPv6:2001:db8:0:0:0:0:0:1]", "2001:db8:0:0:0:0:0:1"},
	    {"[IPv6:::ffff:192.0.2.1]", "::ffff:192.0.2.1"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct str ip = STR_INIT;
		CHECK_INT(smtpaddr_literal(t[i].domain, &ip), 1);
		CHECK_STR(ip.s, ip.len, t[i].ip);
		str_free(&ip);
	}
}

TEST(literal_not_a_literal)
{
	struct str ip = STR_INIT;

	CHECK_INT(smtpaddr_literal("example.test", &ip), 0);
	CHECK_INT(smtpaddr_literal("", &ip), 0);
	CHECK_INT(smtpaddr_literal("x[1.2.3.4]", &ip), 0);
	CHECK_INT(ip.len, 0);
	str_free(&ip);
}

TEST(literal_bad)
{
	static const char *const t[] = {
	    "[",
	    "[]",
	    "[1.2.3.4",
	    "[1.2.3.4]]",
	    "[1.2.3.4] ",
	    "[1.2.3]",
	    "[01.2.3.4x]",
	    "[999.1.1.1]",
	    "[ 1.2.3.4]",
	    "[::1]",
	    "[IPv6:]",
	    "[IPv6:1.2.3.4]",
	    "[IPv6:g::1]",
	    "[IPv4:1.2.3.4]",
	    "[IPv6:1:2:3:4:5:6:7:8:9]",
	    "[IPv6:1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa]",
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct str ip = STR_INIT;
		int r = smtpaddr_literal(t[i], &ip);
		if (r != -1) {
			fprintf(stderr, "literal \"%s\": %d\n", t[i], r);
			unit_failures++;
		}
		str_free(&ip);
	}
}

/* A literal far longer than any address must not overrun anything. */
TEST(literal_very_long)
{
	size_t n = 100000;
	char *d = malloc(n + 1);
	struct str ip = STR_INIT;

	if (!d)
		exit(2);
	d[0] = '[';
	memset(d + 1, '1', n - 2);
	d[n - 1] = ']';
	d[n] = 0;
	CHECK_INT(smtpaddr_literal(d, &ip), -1);
	memcpy(d + 1, "IPv6:", 5);
	CHECK_INT(smtpaddr_literal(d, &ip), -1);
	free(d);
	str_free(&ip);
}

/* --- UTF-8 --- */

TEST(utf8_valid_sequences)
{
	static const char *const t[] = {
	    "",
	    "plain ascii",
	    "\xc2\x80",		/* U+0080, smallest 2-byte */
	    "\xc3\xa9",		/* é */
	    "\xdf\xbf",		/* U+07FF */
	    "\xe0\xa0\x80",	/* U+0800, smallest 3-byte */
	    "\xe2\x82\xac",	/* € */
	    "\xed\x9f\xbf",	/* U+D7FF, below the surrogates */
	    "\xee\x80\x80",	/* U+E000, above them */
	    "\xef\xbf\xbf",	/* U+FFFF */
	    "\xf0\x90\x80\x80", /* U+10000, smallest 4-byte */
	    "\xf0\x9f\x98\x80", /* U+1F600 */
	    "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last */
	    "a\xc3\xa9z\xe2\x82\xac!",
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (!utf8_valid(t[i], strlen(t[i]))) {
			fprintf(stderr, "valid utf8 case %zu refused\n", i);
			unit_failures++;
		}
	/* NUL is a 7-bit byte as far as UTF-8 goes. */
	CHECK(utf8_valid("a\0b", 3));
}

TEST(utf8_invalid_sequences)
{
	static const char *const t[] = {
	    /* overlong */
	    "\xc0\x80",
	    "\xc0\xaf",
	    "\xc1\xbf",
	    "\xe0\x80\x80",
	    "\xe0\x9f\xbf",
	    "\xf0\x80\x80\x80",
	    "\xf0\x8f\xbf\xbf",
	    /* surrogates */
	    "\xed\xa0\x80",
	    "\xed\xbf\xbf",
	    "\xed\xb0\x80",
	    /* too high */
	    "\xf4\x90\x80\x80",
	    "\xf5\x80\x80\x80",
	    "\xf7\xbf\xbf\xbf",
	    "\xf8\x88\x80\x80\x80",
	    "\xfc\x84\x80\x80\x80\x80",
	    "\xfe",
	    "\xff",
	    /* truncated */
	    "\xc3",
	    "\xe2\x82",
	    "\xf0\x9f\x98",
	    "abc\xe2",
	    /* a continuation byte where a lead is due */
	    "\x80",
	    "\xbf",
	    "a\x80z",
	    "\xc3\xa9\xa9",
	    /* a lead where a continuation is due */
	    "\xc3\x41",
	    "\xc3\xc3\xa9",
	    "\xe2\x28\xa1",
	    "\xe2\x82\x28",
	    "\xf0\x9f\x98\x28",
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (utf8_valid(t[i], strlen(t[i]))) {
			fprintf(stderr, "invalid utf8 case %zu accepted\n", i);
			unit_failures++;
		}
}

/* The length is the bound: a sequence cut by n is truncated. */
TEST(utf8_respects_n)
{
	CHECK(!utf8_valid("\xc3\xa9", 1));
	CHECK(!utf8_valid("\xf0\x9f\x98\x80", 3));
	CHECK(utf8_valid("a\xc3", 1));
	CHECK(utf8_valid("\xc3\xa9\xff", 2));
}

UNIT_MAIN(good_paths, bad_paths, length_is_the_bound,
	  utf8_address_needs_smtputf8,
	  invalid_utf8_address_is_refused_either_way,
	  quoted_local_part_follows_the_utf8_rules,
	  quoted_pair_cannot_smuggle_control_bytes, next_param_iterates,
	  next_param_stops_at_n, has_param, literal_good, literal_not_a_literal,
	  literal_bad, literal_very_long, utf8_valid_sequences,
	  utf8_invalid_sequences, utf8_respects_n)
