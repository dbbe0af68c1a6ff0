/* t_remoteroute.c: control/smtproutes: exact and ".dom" matches, the
 * most specific first, the default route, empty relays, ports, address
 * literals, every malformed line, and loading the file. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remote/route.h"
#include "unit.h"
#include "unit_tmp.h"

static void enter_tmpdir(void)
{
	unit_tmp_enter("t_remoteroute");
	unit_mkdir("control", 0755);
}

static void add(struct smtproutes *r, const char *line)
{
	if (smtproutes_add(r, line, strlen(line)) != 0) {
		fprintf(stderr, "refused good line \"%s\"\n", line);
		unit_failures++;
	}
}

/* The route for host as "relay:port", "-" for none. */
static const char *route(const struct smtproutes *r, const char *host)
{
	static char out[300];
	struct str relay = STR_INIT;
	unsigned port = 0;
	int res = smtproutes_find(r, host, &relay, &port);

	if (res < 0)
		snprintf(out, sizeof out, "error");
	else if (res == 0)
		snprintf(out, sizeof out, "-");
	else
		snprintf(out, sizeof out, "%.*s:%u", (int)relay.len,
			 relay.s ? relay.s : "", port);
	str_free(&relay);
	return out;
}

#define CHECK_ROUTE(r, host, want)                                             \
	do {                                                                   \
		const char *got_ = route(r, host);                             \
		CHECK_STR(got_, strlen(got_), want);                           \
	} while (0)

TEST(no_routes)
{
	struct smtproutes r = SMTPROUTES_INIT;
	CHECK_ROUTE(&r, "example.com", "-");
	CHECK_ROUTE(&r, "", "-");
}

TEST(exact_and_subdomain_matches)
{
	struct smtproutes r = SMTPROUTES_INIT;

	add(&r, "example.com:relay.example.net");
	add(&r, ".example.com:sub-relay.example.net:2525");
	CHECK_ROUTE(&r, "example.com", "relay.example.net:25");
	CHECK_ROUTE(&r, "EXAMPLE.Com", "relay.example.net:25");
	CHECK_ROUTE(&r, "a.example.com", "sub-relay.example.net:2525");
	CHECK_ROUTE(&r, "b.a.example.com", "sub-relay.example.net:2525");
	CHECK_ROUTE(&r, "xexample.com", "-");
	CHECK_ROUTE(&r, "example.org", "-");
	smtproutes_free(&r);
}

TEST(dot_domain_does_not_match_the_domain_itself)
{
	struct smtproutes r = SMTPROUTES_INIT;

	add(&r, ".example.com:relay");
	CHECK_ROUTE(&r, "example.com", "-");
	CHECK_ROUTE(&r, "www.example.com", "relay:25");
	smtproutes_free(&r);
}

TEST(most_specific_first_then_default)
{
	struct smtproutes r = SMTPROUTES_INIT;

	add(&r, ":default.relay");
	add(&r, ".com:com.relay");
	add(&r, ".example.com:example.relay");
	add(&r, "host.example.com:host.relay");
	CHECK_ROUTE(&r, "host.example.com", "host.relay:25");
	CHECK_ROUTE(&r, "other.example.com", "example.relay:25");
	CHECK_ROUTE(&r, "a.b.example.com", "example.relay:25");
	CHECK_ROUTE(&r, "example.com", "com.relay:25");
	CHECK_ROUTE(&r, "example.org", "default.relay:25");
	CHECK_ROUTE(&r, "localhost", "default.relay:25");
	smtproutes_free(&r);
}

TEST(empty_relay_means_mx_with_optional_port)
{
	struct smtproutes r = SMTPROUTES_INIT;

	add(&r, "direct.example:");
	add(&r, "port.example::2525");
	add(&r, ":smarthost");
	CHECK_ROUTE(&r, "direct.example", ":25");
	CHECK_ROUTE(&r, "port.example", ":2525");
	CHECK_ROUTE(&r, "else.example", "smarthost:25");
	smtproutes_free(&r);
}

TEST(literal_relays)
{
	struct smtproutes r = SMTPROUTES_INIT;

	add(&r, "a.test:[192.0.2.1]");
	add(&r, "b.test:[192.0.2.2]:26");
	add(&r, "c.test:[IPv6:2001:db8::1]:27");
	add(&r, "d.test:[IPv6:2001:db8::2]");
	add(&r, "e.test:[::1]:28");
	CHECK_ROUTE(&r, "a.test", "[192.0.2.1]:25");
	CHECK_ROUTE(&r, "b.test", "[192.0.2.2]:26");
	CHECK_ROUTE(&r, "c.test", "[IPv6:2001:db8::1]:27");
	CHECK_ROUTE(&r, "d.test", "[IPv6:2001:db8::2]:25");
	CHECK_ROUTE(&r, "e.test", "[::1]:28");
	smtproutes_free(&r);
}

TEST(ports_at_the_edges)
{
	struct smtproutes r = SMTPROUTES_INIT;

	add(&r, "a.test:relay:1");
	add(&r, "b.test:relay:65535");
	add(&r, "c.test:relay:");
	CHECK_ROUTE(&r, "a.test", "relay:1");
	CHECK_ROUTE(&r, "b.test", "relay:65535");
	CHECK_ROUTE(&r, "c.test", "relay:25");
	smtproutes_free(&r);
}

TEST(bad_lines_are_refused)
{
	struct smtproutes r = SMTPROUTES_INIT;
	const char *bad[] = {
	    "no-colon-here",	       "a.test:relay:0",
	    "a.test:relay:65536",      "a.test:relay:99999999999999999999",
	    "a.test:relay:2x",	       "a.test:relay:-1",
	    "a.test:relay:25:26",      "a.test:relay: 25",
	    "a.test:re lay",	       "a.test:relay\t",
	    "a.test:[192.0.2]",	       "a.test:[192.0.2.1",
	    "a.test:[192.0.2.1]x",     "a.test:[192.0.2.1]:x",
	    "a.test:[IPv6:192.0.2.1]", "a.test:[]",
	    "a.test:[bad.example]",    "",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		if (smtproutes_add(&r, bad[i], strlen(bad[i])) != -1 ||
		    errno != EINVAL) {
			fprintf(stderr, "accepted bad line \"%s\"\n", bad[i]);
			unit_failures++;
		}
	}
	CHECK_ROUTE(&r, "a.test", "-");
	/* A NUL inside the line is refused too. */
	errno = 0;
	CHECK_INT(smtproutes_add(&r, "a.test:re\0lay", 13), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_ROUTE(&r, "a.test", "-");
	smtproutes_free(&r);
}

TEST(first_line_for_a_domain_wins)
{
	struct smtproutes r = SMTPROUTES_INIT;

	add(&r, "a.test:first");
	add(&r, "A.TEST:second");
	CHECK_ROUTE(&r, "a.test", "first:25");
	smtproutes_free(&r);
}

TEST(line_length_is_respected)
{
	struct smtproutes r = SMTPROUTES_INIT;
	const char *line = "a.test:relay:2525 and more";

	CHECK_INT(smtproutes_add(&r, line, 17), 0);
	CHECK_ROUTE(&r, "a.test", "relay:2525");
	smtproutes_free(&r);
}

TEST(load_reads_the_file)
{
	struct smtproutes r = SMTPROUTES_INIT;
	struct str bad = STR_INIT;

	enter_tmpdir();
	CHECK_INT(smtproutes_load(&r, &bad), 0); /* missing: no routes */
	CHECK_ROUTE(&r, "a.test", "-");
	unit_write_str("control/smtproutes",
		       "# comment\n"
		       "a.test:relay-a:2526\n"
		       "\n"
		       ".b.test:[192.0.2.5]  \n"
		       ":smart\r\n",
		       0644);
	CHECK_INT(smtproutes_load(&r, &bad), 0);
	CHECK_INT(bad.len, 0);
	CHECK_ROUTE(&r, "a.test", "relay-a:2526");
	CHECK_ROUTE(&r, "x.b.test", "[192.0.2.5]:25");
	CHECK_ROUTE(&r, "c.test", "smart:25");
	smtproutes_free(&r);
	str_free(&bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(load_refuses_a_bad_line_and_keeps_the_old_routes)
{
	struct smtproutes r = SMTPROUTES_INIT;
	struct str bad = STR_INIT;

	enter_tmpdir();
	unit_write_str("control/smtproutes", "a.test:old\n", 0644);
	CHECK_INT(smtproutes_load(&r, &bad), 0);
	unit_write_str("control/smtproutes", "a.test:new\nb.test:relay:port\n",
		       0644);
	errno = 0;
	CHECK_INT(smtproutes_load(&r, &bad), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_STR(bad.s, bad.len, "b.test:relay:port");
	CHECK_ROUTE(&r, "a.test", "old:25");
	CHECK_ROUTE(&r, "b.test", "-");
	smtproutes_free(&r);
	str_free(&bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(load_reports_an_unreadable_file)
{
	struct smtproutes r = SMTPROUTES_INIT;
	struct str bad = STR_INIT;

	enter_tmpdir();
	CHECK_INT(mkdir("control/smtproutes", 0755), 0);
	errno = 0;
	CHECK_INT(smtproutes_load(&r, &bad), -1);
	CHECK(errno != 0 && errno != EINVAL);
	CHECK_INT(bad.len, 0);
	str_free(&bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(no_routes, exact_and_subdomain_matches,
	  dot_domain_does_not_match_the_domain_itself,
	  most_specific_first_then_default,
	  empty_relay_means_mx_with_optional_port, literal_relays,
	  ports_at_the_edges, bad_lines_are_refused,
	  first_line_for_a_domain_wins, line_length_is_respected,
	  load_reads_the_file, load_refuses_a_bad_line_and_keeps_the_old_routes,
	  load_reports_an_unreadable_file)
