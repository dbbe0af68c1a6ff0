/* t_addrlist.c: address lists: every form of mailbox and group, where
 * each address sits in the text, its envelope form, what is refused,
 * and the formatting helpers. */
#include <errno.h>

#include "mail/addrlist.h"
#include "unit.h"

static struct addrlist al;

static int parse(const char *s)
{
	return addrlist_parse(&al, s, strlen(s));
}

/* Address i has this envelope form. */
static void check_addr(size_t i, const char *local, const char *host)
{
	size_t n;
	const char *p;

	CHECK(i < al.n);
	if (i >= al.n)
		return;
	p = addr_local(&al, i, &n);
	CHECK_STR(p, n, local);
	p = addr_host(&al, i, &n);
	CHECK_STR(p, n, host);
}

/* The text of address i's local part and host, as written. */
static void check_spans(const char *s, size_t i, const char *local,
			const char *host)
{
	const struct addr *a = &al.a[i];
	CHECK_STR(s + a->local_start, a->local_end - a->local_start, local);
	CHECK_STR(s + a->host_start, a->host_end - a->host_start, host);
}

static void refused(const char *s)
{
	errno = 0;
	if (parse(s) != -1 || errno != EINVAL) {
		fprintf(stderr, "not refused: [%s]\n", s);
		CHECK(0);
	}
	CHECK_INT(al.n, 0);
}

TEST(plain_addr_spec)
{
	const char *s = "joe@example.com";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 1);
	check_addr(0, "joe", "example.com");
	check_spans(s, 0, "joe", "example.com");
	CHECK(al.a[0].has_at);
	CHECK(!al.a[0].angle);
	CHECK(!al.a[0].null);
	addrlist_free(&al);
}

TEST(bare_local_part)
{
	const char *s = " joe ";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 1);
	check_addr(0, "joe", "");
	CHECK(!al.a[0].has_at);
	/* The host would go right after the local part. */
	CHECK_INT(al.a[0].host_start, 4);
	CHECK_INT(al.a[0].host_end, 4);
	addrlist_free(&al);
}

TEST(empty_and_trailing_dot_hosts)
{
	const char *s = "a@, b@host.";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 2);
	check_addr(0, "a", "");
	CHECK(al.a[0].has_at);
	CHECK_INT(al.a[0].host_start, 2);
	CHECK_INT(al.a[0].host_end, 2);
	check_addr(1, "b", "host.");
	check_spans(s, 1, "b", "host.");
	addrlist_free(&al);
}

TEST(display_name_and_angle)
{
	const char *s = "John Q. Public <john@x.y>, \"Doe, Jane\" <jane@z>";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 2);
	check_addr(0, "john", "x.y");
	check_spans(s, 0, "john", "x.y");
	CHECK(al.a[0].angle);
	check_addr(1, "jane", "z");
	CHECK(al.a[1].angle);
	addrlist_free(&al);
}

TEST(angle_without_name_and_utf8_name)
{
	CHECK_INT(parse("<a@b>,J\xc3\xa9r\xc3\xb4me <j@k>"), 0);
	CHECK_INT(al.n, 2);
	check_addr(0, "a", "b");
	check_addr(1, "j", "k");
	addrlist_free(&al);
}

TEST(quoted_local_parts)
{
	const char *s = "\"joe smith\"@x, \"a\\\"b\"@y, \"q\".dot@z";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 3);
	check_addr(0, "joe smith", "x");
	check_spans(s, 0, "\"joe smith\"", "x");
	check_addr(1, "a\"b", "y");
	check_addr(2, "q.dot", "z");
	addrlist_free(&al);
}

TEST(comments_everywhere)
{
	const char *s = "(a) joe (b (nested) \\) ) @ (c) host . example (d)";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 1);
	check_addr(0, "joe", "host.example");
	check_spans(s, 0, "joe", "host . example");
	addrlist_free(&al);
}

TEST(folded_text)
{
	const char *s = " Joe\n <joe@x>,\r\n\tann@y\n";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 2);
	check_addr(0, "joe", "x");
	check_addr(1, "ann", "y");
	addrlist_free(&al);
}

TEST(groups)
{
	const char *s = "friends: a@b, Cee <c>;, d@e, empty:;, x: y@z";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 4);
	check_addr(0, "a", "b");
	check_addr(1, "c", "");
	check_addr(2, "d", "e");
	check_addr(3, "y", "z");
	CHECK(al.a[0].in_group);
	CHECK(al.a[1].in_group);
	CHECK(!al.a[2].in_group);
	CHECK(al.a[3].in_group); /* the missing final ';' is forgiven */
	addrlist_free(&al);
}

TEST(recipient_list_not_shown)
{
	CHECK_INT(parse(" recipient list not shown: ;"), 0);
	CHECK_INT(al.n, 0);
	addrlist_free(&al);
}

TEST(null_and_route)
{
	const char *s = "<>, <@r1.x,@r2.y:joe@z>";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 2);
	CHECK(al.a[0].null);
	check_addr(0, "", "");
	CHECK(!al.a[1].null);
	check_addr(1, "joe", "z");
	check_spans(s, 1, "joe", "z");
	addrlist_free(&al);
}

TEST(domain_literal)
{
	const char *s = "joe@[1.2.3.4], x@[IPv6:::1]";
	CHECK_INT(parse(s), 0);
	CHECK_INT(al.n, 2);
	check_addr(0, "joe", "[1.2.3.4]");
	check_addr(1, "x", "[IPv6:::1]");
	addrlist_free(&al);
}

TEST(empty_elements)
{
	CHECK_INT(parse(" , ,a@b,, "), 0);
	CHECK_INT(al.n, 1);
	check_addr(0, "a", "b");
	CHECK_INT(parse(""), 0);
	CHECK_INT(al.n, 0);
	addrlist_free(&al);
}

TEST(reparse_replaces)
{
	CHECK_INT(parse("a@b, c@d"), 0);
	CHECK_INT(al.n, 2);
	CHECK_INT(parse("e@f"), 0);
	CHECK_INT(al.n, 1);
	check_addr(0, "e", "f");
	addrlist_free(&al);
}

TEST(syntax_errors)
{
	refused("joe smith@x");
	refused("a@b <c@d>");
	refused("a@b c@d");
	refused("a@b@c");
	refused("\"unterminated@x");
	refused("(unterminated comment");
	refused("a@b)");
	refused("a@[1.2.3.4");
	refused("a@[1.[2]");
	refused("<a@b");
	refused("<a@b>>");
	refused("Name <>x");
	refused("g: h: a;;");
	refused("a@b;");
	refused("@host");
	refused("a@.b");
	refused("a@b..c");
	refused("<@r:>");
	refused("<@:a@b>");
	refused("x\\y@z");
	refused("a\001b@c");
	refused("\"a\\");
	/* A NUL anywhere, even in a quoted string or comment. */
	CHECK_INT(addrlist_parse(&al, "a\0b@c", 5), -1);
	CHECK_INT(addrlist_parse(&al, "\"a\0b\"@c", 7), -1);
	CHECK_INT(addrlist_parse(&al, "a@c (x\0)", 8), -1);
	CHECK_INT(al.n, 0);
	addrlist_free(&al);
}

TEST(error_clears_previous_result)
{
	CHECK_INT(parse("a@b"), 0);
	CHECK_INT(al.n, 1);
	refused("a b");
	CHECK_INT(al.canon.len, 0);
	addrlist_free(&al);
}

TEST(many_addresses)
{
	struct str s = STR_INIT;
	for (int i = 0; i < 2000; i++) {
		CHECK_INT(str_appends(&s, "u"), 0);
		CHECK_INT(str_appendnum(&s, (unsigned)i), 0);
		CHECK_INT(str_appends(&s, "@h, "), 0);
	}
	CHECK_INT(addrlist_parse(&al, s.s, s.len), 0);
	CHECK_INT(al.n, 2000);
	check_addr(1999, "u1999", "h");
	addrlist_free(&al);
	str_free(&s);
}

TEST(dot_atom)
{
	CHECK(addr_is_dot_atom("joe", 3));
	CHECK(addr_is_dot_atom("j.o.e", 5));
	CHECK(addr_is_dot_atom("a+b=c", 5));
	CHECK(!addr_is_dot_atom("", 0));
	CHECK(!addr_is_dot_atom(".joe", 4));
	CHECK(!addr_is_dot_atom("joe.", 4));
	CHECK(!addr_is_dot_atom("j..oe", 5));
	CHECK(!addr_is_dot_atom("j oe", 4));
	CHECK(!addr_is_dot_atom("j\"oe", 4));
}

TEST(formatting)
{
	struct str s = STR_INIT;

	CHECK_INT(addr_append(&s, "joe", 3, "x.y", 3), 0);
	CHECK_STR(s.s, s.len, "joe@x.y");
	str_clear(&s);
	CHECK_INT(addr_append(&s, "joe smith", 9, "x", 1), 0);
	CHECK_STR(s.s, s.len, "\"joe smith\"@x");
	str_clear(&s);
	CHECK_INT(addr_append(&s, "a\"b\\c", 5, "", 0), 0);
	CHECK_STR(s.s, s.len, "\"a\\\"b\\\\c\"");
	str_clear(&s);
	CHECK_INT(addr_append_phrase(&s, "Joe Smith", 9), 0);
	CHECK_STR(s.s, s.len, "Joe Smith");
	str_clear(&s);
	CHECK_INT(addr_append_phrase(&s, "Smith, Joe", 10), 0);
	CHECK_STR(s.s, s.len, "\"Smith, Joe\"");
	str_clear(&s);
	CHECK_INT(addr_append_phrase(&s, "Joe  \"X\"", 8), 0);
	CHECK_STR(s.s, s.len, "\"Joe  \\\"X\\\"\"");
	str_clear(&s);
	CHECK_INT(addr_append_comment(&s, "a (b) \\c", 8), 0);
	CHECK_STR(s.s, s.len, "(a \\(b\\) \\\\c)");
	str_free(&s);
}

TEST(formatted_text_parses_back)
{
	struct str s = STR_INIT;

	CHECK_INT(addr_append_phrase(&s, "Smith, \"J\"", 10), 0);
	CHECK_INT(str_appends(&s, " <"), 0);
	CHECK_INT(addr_append(&s, "a b\"c", 5, "h", 1), 0);
	CHECK_INT(str_appends(&s, "> "), 0);
	CHECK_INT(addr_append_comment(&s, "x)(", 3), 0);
	CHECK_INT(addrlist_parse(&al, s.s, s.len), 0);
	CHECK_INT(al.n, 1);
	check_addr(0, "a b\"c", "h");
	addrlist_free(&al);
	str_free(&s);
}

/* Found by fuzz_addrlist: a backslash quoting a CR or LF put that byte
 * into the envelope form, from where it reaches Delivered-To. Bare CR
 * and LF inside quotes are folding and are dropped. */
TEST(quoted_line_ends_refused)
{
	size_t n;

	refused("\"a\\\rb\"@example.org");
	refused("\"a\\\nb\"@example.org");
	refused("\"a\\\r\nX-Injected: y\"@example.org");
	refused("a@[1.2\\\r.3.4]");
	CHECK_INT(parse("\"a\r\n b\"@example.org"), 0);
	const char *local = addr_local(&al, 0, &n);
	CHECK_STR(local, n, "a b");
	addrlist_free(&al);
}

UNIT_MAIN(plain_addr_spec, bare_local_part, empty_and_trailing_dot_hosts,
	  display_name_and_angle, angle_without_name_and_utf8_name,
	  quoted_local_parts, comments_everywhere, folded_text, groups,
	  recipient_list_not_shown, null_and_route, domain_literal,
	  empty_elements, reparse_replaces, syntax_errors,
	  error_clears_previous_result, many_addresses, dot_atom, formatting,
	  formatted_text_parses_back, quoted_line_ends_refused)
