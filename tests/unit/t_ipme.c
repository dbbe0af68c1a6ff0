/* t_ipme.c: our own addresses: the interfaces, the unspecified
 * addresses, moreipme and notipme (IPv4, IPv6, mapped), and every bad
 * entry and unreadable file. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/ctl.h"
#include "remote/ipme.h"
#include "unit.h"
#include "unit_tmp.h"

static void enter_tmpdir(void)
{
	unit_tmp_enter("t_ipme");
	unit_mkdir("control", 0755);
}

static int is_me(const struct dns_iplist *mine, const char *text)
{
	struct dns_ip a;
	if (dns_ip_parse(text, &a) < 0) {
		fprintf(stderr, "bad test address %s\n", text);
		_exit(2);
	}
	return ipme_is(mine, &a);
}

/* A list as ctl_list makes it: entries separated by NUL. */
static void list(struct str *l, const char *const *entries, size_t n)
{
	str_clear(l);
	for (size_t i = 0; i < n; i++)
		CHECK(str_appends(l, entries[i]) == 0 && str_append0(l) == 0);
}

TEST(interfaces_include_loopback_and_unspecified)
{
	struct dns_iplist mine = {NULL, 0, 0};

	CHECK_INT(ipme_interfaces(&mine), 0);
	CHECK(is_me(&mine, "127.0.0.1"));
	CHECK(is_me(&mine, "0.0.0.0"));
	CHECK(is_me(&mine, "::"));
	CHECK(is_me(&mine, "::ffff:127.0.0.1"));
	CHECK(!is_me(&mine, "192.0.2.1"));
	CHECK(!is_me(&mine, "2001:db8::1"));
	/* Only the interface addresses: other loopback addresses are not
	 * ours (the tests deliver to 127.0.0.2). */
	CHECK(!is_me(&mine, "127.0.0.2"));
	/* No duplicates, even when called twice. */
	size_t n = mine.n;
	CHECK_INT(ipme_interfaces(&mine), 0);
	CHECK_INT(mine.n, n);
	dns_iplist_free(&mine);
}

TEST(more_adds_and_not_removes)
{
	struct dns_iplist mine = {NULL, 0, 0};
	struct str more = STR_INIT, not = STR_INIT, bad = STR_INIT;
	const char *m[] = {"192.0.2.10", "2001:db8::10", "::ffff:192.0.2.11"};
	const char *n[] = {"127.0.0.1", "::1", "192.0.2.10"};

	CHECK_INT(ipme_interfaces(&mine), 0);
	list(&more, m, 3);
	list(&not, n, 3);
	CHECK_INT(ipme_adjust(&mine, &more, &not, &bad), 0);
	CHECK_INT(bad.len, 0);
	CHECK(is_me(&mine, "2001:db8::10"));
	CHECK(is_me(&mine, "192.0.2.11"));
	CHECK(!is_me(&mine, "192.0.2.10")); /* notipme wins */
	CHECK(!is_me(&mine, "127.0.0.1"));
	CHECK(!is_me(&mine, "::1"));
	CHECK(is_me(&mine, "0.0.0.0"));
	dns_iplist_free(&mine);
	str_free(&more);
	str_free(&not );
}

TEST(bad_entries_are_errors)
{
	struct dns_iplist mine = {NULL, 0, 0};
	struct str more = STR_INIT, not = STR_INIT, bad = STR_INIT;
	const char *m[] = {"192.0.2.10", "192.0.2"};
	const char *n[] = {"[::1]"};
	const char *ok[] = {"192.0.2.10"};

	list(&more, m, 2);
	errno = 0;
	CHECK_INT(ipme_adjust(&mine, &more, &not, &bad), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_STR(bad.s, bad.len, "192.0.2");
	list(&more, ok, 1);
	list(&not, n, 1);
	errno = 0;
	CHECK_INT(ipme_adjust(&mine, &more, &not, &bad), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_STR(bad.s, bad.len, "[::1]");
	dns_iplist_free(&mine);
	str_free(&more);
	str_free(&not );
	str_free(&bad);
}

TEST(load_reads_the_control_files)
{
	struct dns_iplist mine = {NULL, 0, 0};
	struct str bad = STR_INIT;
	const char *file = "unset";

	enter_tmpdir();
	CHECK_INT(ipme_load(&mine, &file, &bad), 0);
	CHECK(file == NULL);
	CHECK(is_me(&mine, "127.0.0.1"));
	dns_iplist_free(&mine);

	unit_write_str("control/moreipme", "# ours too\n192.0.2.20\n\n", 0644);
	unit_write_str("control/notipme", "127.0.0.1\n::1\n", 0644);
	CHECK_INT(ipme_load(&mine, &file, &bad), 0);
	CHECK(is_me(&mine, "192.0.2.20"));
	CHECK(!is_me(&mine, "127.0.0.1"));
	CHECK(!is_me(&mine, "::1"));
	dns_iplist_free(&mine);
	str_free(&bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(load_names_the_file_at_fault)
{
	struct dns_iplist mine = {NULL, 0, 0};
	struct str bad = STR_INIT;
	const char *file = NULL;

	enter_tmpdir();
	unit_write_str("control/moreipme", "not-an-address\n", 0644);
	errno = 0;
	CHECK_INT(ipme_load(&mine, &file, &bad), -1);
	CHECK_INT(errno, EINVAL);
	CHECK(file && strcmp(file, MOREIPME_FILE) == 0);
	CHECK_STR(bad.s, bad.len, "not-an-address");
	dns_iplist_free(&mine);

	unit_write_str("control/moreipme", "192.0.2.1\n", 0644);
	unit_write_str("control/notipme", "127.0.0.1 # with a comment\n", 0644);
	CHECK_INT(ipme_load(&mine, &file, &bad), -1);
	CHECK(file && strcmp(file, NOTIPME_FILE) == 0);
	CHECK_STR(bad.s, bad.len, "127.0.0.1 # with a comment");
	dns_iplist_free(&mine);

	/* Unreadable (a directory): an error, not "missing". */
	CHECK_INT(unlink("control/notipme"), 0);
	CHECK_INT(mkdir("control/notipme", 0755), 0);
	str_clear(&bad);
	CHECK_INT(ipme_load(&mine, &file, &bad), -1);
	CHECK(file && strcmp(file, NOTIPME_FILE) == 0);
	CHECK_INT(bad.len, 0);
	dns_iplist_free(&mine);
	str_free(&bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(interfaces_include_loopback_and_unspecified,
	  more_adds_and_not_removes, bad_entries_are_errors,
	  load_reads_the_control_files, load_names_the_file_at_fault)
