/*
 * t_pop3cmd.c: the POP3 command parser (pop3/pop3cmd.h): keywords in any
 * case, argument counts, numbers (zero, leading zeros, overflow), white
 * space, line ends, and every kind of bad line.
 */
#include <limits.h>
#include <string.h>

#include "pop3/pop3cmd.h"
#include "unit.h"

static enum pop3_parse parse(const char *line, struct pop3_cmd *c)
{
	return pop3_parse(line, strlen(line), c);
}

TEST(every_verb_without_arguments)
{
	static const struct {
		const char *line;
		enum pop3_verb verb;
	} cases[] = {
	    {"STAT", POP3_STAT}, {"LIST", POP3_LIST}, {"UIDL", POP3_UIDL},
	    {"RSET", POP3_RSET}, {"NOOP", POP3_NOOP}, {"LAST", POP3_LAST},
	    {"QUIT", POP3_QUIT}, {"CAPA", POP3_CAPA},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct pop3_cmd c;
		memset(&c, 0xff, sizeof c);
		CHECK_INT(parse(cases[i].line, &c), POP3_PARSE_OK);
		CHECK_INT(c.verb, cases[i].verb);
		CHECK_INT(c.nargs, 0);
	}
}

TEST(keywords_are_case_insensitive)
{
	struct pop3_cmd c;

	CHECK_INT(parse("stat\r\n", &c), POP3_PARSE_OK);
	CHECK_INT(c.verb, POP3_STAT);
	CHECK_INT(parse("rEtR 3\r\n", &c), POP3_PARSE_OK);
	CHECK_INT(c.verb, POP3_RETR);
	CHECK_INT(c.arg[0], 3);
	CHECK_INT(parse("top 1 0", &c), POP3_PARSE_OK);
	CHECK_INT(c.verb, POP3_TOP);
}

TEST(arguments)
{
	struct pop3_cmd c;

	CHECK_INT(parse("LIST 7\r\n", &c), POP3_PARSE_OK);
	CHECK_INT(c.verb, POP3_LIST);
	CHECK_INT(c.nargs, 1);
	CHECK_INT(c.arg[0], 7);
	CHECK_INT(parse("UIDL 12\n", &c), POP3_PARSE_OK);
	CHECK_INT(c.verb, POP3_UIDL);
	CHECK_INT(c.arg[0], 12);
	CHECK_INT(parse("DELE 0042\r\n", &c), POP3_PARSE_OK);
	CHECK_INT(c.verb, POP3_DELE);
	CHECK_INT(c.arg[0], 42);
	CHECK_INT(parse("TOP 2 10\r\n", &c), POP3_PARSE_OK);
	CHECK_INT(c.nargs, 2);
	CHECK_INT(c.arg[0], 2);
	CHECK_INT(c.arg[1], 10);
	/* Zero is a number; whether it names a message is not our job. */
	CHECK_INT(parse("RETR 0", &c), POP3_PARSE_OK);
	CHECK_INT(c.arg[0], 0);
}

TEST(huge_numbers_saturate)
{
	struct pop3_cmd c;

	CHECK_INT(parse("RETR 99999999999999999999999999\r\n", &c),
		  POP3_PARSE_OK);
	CHECK(c.arg[0] == ULONG_MAX);
	CHECK_INT(parse("TOP 1 18446744073709551616", &c), POP3_PARSE_OK);
	CHECK(c.arg[1] == ULONG_MAX);
	CHECK_INT(parse("TOP 1 4294967295", &c), POP3_PARSE_OK);
	CHECK(c.arg[1] == 4294967295UL);
}

TEST(white_space_is_tolerated)
{
	struct pop3_cmd c;

	CHECK_INT(parse("  LIST\t 3  \r\n", &c), POP3_PARSE_OK);
	CHECK_INT(c.verb, POP3_LIST);
	CHECK_INT(c.arg[0], 3);
	CHECK_INT(parse("QUIT \r\n", &c), POP3_PARSE_OK);
	CHECK_INT(c.verb, POP3_QUIT);
	CHECK_INT(parse("TOP  1\t\t2", &c), POP3_PARSE_OK);
	CHECK_INT(c.arg[1], 2);
}

TEST(empty_lines)
{
	struct pop3_cmd c;

	CHECK_INT(parse("", &c), POP3_PARSE_EMPTY);
	CHECK_INT(parse("\r\n", &c), POP3_PARSE_EMPTY);
	CHECK_INT(parse("\n", &c), POP3_PARSE_EMPTY);
	CHECK_INT(parse(" \t \r\n", &c), POP3_PARSE_EMPTY);
}

TEST(unknown_keywords)
{
	struct pop3_cmd c = {.verb = POP3_NOOP, .nargs = 9};

	CHECK_INT(parse("HELO x\r\n", &c), POP3_PARSE_UNKNOWN);
	CHECK_INT(parse("USER bob\r\n", &c), POP3_PARSE_UNKNOWN);
	CHECK_INT(parse("PASS x\r\n", &c), POP3_PARSE_UNKNOWN);
	CHECK_INT(parse("APOP a b\r\n", &c), POP3_PARSE_UNKNOWN);
	CHECK_INT(parse("STATS\r\n", &c), POP3_PARSE_UNKNOWN);
	CHECK_INT(parse("STA\r\n", &c), POP3_PARSE_UNKNOWN);
	CHECK_INT(parse("TO 1 2\r\n", &c), POP3_PARSE_UNKNOWN);
	CHECK_INT(parse("LIST3\r\n", &c), POP3_PARSE_UNKNOWN);
	CHECK_INT(pop3_parse("ST\0T", 4, &c), POP3_PARSE_UNKNOWN);
	CHECK_INT(pop3_parse("STAT\0", 5, &c), POP3_PARSE_UNKNOWN);
	/* A failed parse leaves the command alone. */
	CHECK_INT(c.verb, POP3_NOOP);
	CHECK_INT(c.nargs, 9);
}

TEST(bad_arguments)
{
	struct pop3_cmd c = {.verb = POP3_NOOP, .nargs = 9};

	CHECK_INT(parse("RETR\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("DELE\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("TOP 1\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("TOP\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("TOP 1 2 3\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("STAT 1\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("QUIT now\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("LIST 1 2\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("RETR -1\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("RETR +1\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("RETR 1x\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("RETR one\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("TOP 1 -5\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(pop3_parse("RETR 1\0", 7, &c), POP3_PARSE_SYNTAX);
	CHECK_INT(parse("RETR 1\r\r\n", &c), POP3_PARSE_SYNTAX);
	CHECK_INT(c.verb, POP3_NOOP);
	CHECK_INT(c.nargs, 9);
}

TEST(only_len_bytes_are_read)
{
	struct pop3_cmd c;

	/* The bytes after len would make this a different command. */
	CHECK_INT(pop3_parse("LIST 12", 6, &c), POP3_PARSE_OK);
	CHECK_INT(c.nargs, 1);
	CHECK_INT(c.arg[0], 1);
	CHECK_INT(pop3_parse("STAT", 3, &c), POP3_PARSE_UNKNOWN);
}

UNIT_MAIN(every_verb_without_arguments, keywords_are_case_insensitive,
	  arguments, huge_numbers_saturate, white_space_is_tolerated,
	  empty_lines, unknown_keywords, bad_arguments, only_len_bytes_are_read)
