/* t_inject.c: the header-fixing engine: fields added, deleted and
 * qualified, the envelope in each recipient mode, the QMAILINJECT
 * letters, resent messages, bounds, and the settings loader. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/inject.h"
#include "unit.h"
#include "unit_tmp.h"

#define DATE_NOW "Sun, 09 Sep 2001 01:46:40 +0000"
#define ADDED                                                                  \
	"Date: " DATE_NOW "\n"                                                 \
	"Message-ID: <1000000000.42.7@id.example>\n"                           \
	"From: joe@host.example.com\n"

static struct rewrite rw = REWRITE_INIT;
static struct header h;
static struct inject_opts o;
static struct inject_out out;

static void setup(void)
{
	CHECK_INT(rewrite_defaults(&rw, "host", "plus.example", "example.com"),
		  0);
	memset(&o, 0, sizeof o);
	o.rw = &rw;
	o.idhost = "id.example";
	o.user = "joe";
	o.host = "host";
	o.suser = "joe";
	o.shost = "host";
	o.mode = INJECT_RCPT_DEFAULT;
	o.now = 1000000000;
	o.pid = 42;
	o.seq = 7;
	inject_out_init(&out);
	header_init(&h);
}

/* Feeds text to the header line by line, as a reader would. */
static void header_from(const char *text)
{
	size_t len = strlen(text), pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - text - pos) + 1 : len - pos;
		if (header_line(&h, text + pos, n) != 1)
			break;
		pos += n;
	}
	header_eof(&h);
}

static int fix(const char *text)
{
	header_from(text);
	return inject_fix(&h, &o, &out);
}

static void check_header(const char *want)
{
	CHECK_STR(out.header.s, out.header.len, want);
}

#define CHECK_RCPTS(lit)                                                       \
	CHECK_MEM(out.rcpts.s, out.rcpts.len, lit, sizeof lit - 1)

static void teardown(void)
{
	inject_out_free(&out);
	header_free(&h);
	rewrite_free(&rw);
}

TEST(adds_date_message_id_from)
{
	setup();
	CHECK_INT(fix("Subject: x\nTo: a@b.c\n\n"), 0);
	check_header("Subject: x\nTo: a@b.c\n" ADDED);
	CHECK_RCPTS("a@b.c\0");
	CHECK_INT(out.nrcpts, 1);
	CHECK_STR(out.sender.s, out.sender.len, "joe@host.example.com");
	teardown();
}

TEST(existing_fields_kept)
{
	setup();
	CHECK_INT(fix("Message-ID: <x@y>\nFrom: Ann <ann@a.example>\n"
		      "Date: bogus date\nTo: b@c.d\n"),
		  0);
	check_header("Message-ID: <x@y>\nFrom: Ann <ann@a.example>\n"
		     "Date: bogus date\nTo: b@c.d\n");
	teardown();
}

TEST(date_normalised_when_it_parses)
{
	setup();
	CHECK_INT(fix("date: Tue, 1 Jul 2003 10:52:37 +0200 (CEST)\n"
		      "Resent-Xyz: 1\nTo: a@b.c\n"),
		  0);
	/* Resent-Xyz makes it resent, so the Resent- fields are added. */
	check_header("date: Tue, 01 Jul 2003 08:52:37 +0000\nResent-Xyz: 1\n"
		     "To: a@b.c\n"
		     "Resent-Date: " DATE_NOW "\n"
		     "Resent-Message-ID: <1000000000.42.7@id.example>\n"
		     "Resent-From: joe@host.example.com\n"
		     "Resent-Cc: recipient list not shown: ;\n");
	teardown();
}

TEST(from_with_name)
{
	setup();
	o.name = "Joe Smith";
	CHECK_INT(fix("To: a@b.c\n"), 0);
	check_header("To: a@b.c\nDate: " DATE_NOW "\n"
		     "Message-ID: <1000000000.42.7@id.example>\n"
		     "From: Joe Smith <joe@host.example.com>\n");
	teardown();
}

TEST(from_with_name_needing_quotes)
{
	setup();
	o.name = "Joe Q. \"Pub\"";
	o.user = "joe smith";
	CHECK_INT(fix("To: a@b.c\n"), 0);
	CHECK(strstr(out.header.s,
		     "\nFrom: \"Joe Q. \\\"Pub\\\"\" "
		     "<\"joe smith\"@host.example.com>\n") != NULL);
	teardown();
}

TEST(from_comment_style)
{
	setup();
	o.name = "Joe (the) Smith";
	o.flags = INJECT_FROM_COMMENT;
	CHECK_INT(fix("To: a@b.c\n"), 0);
	CHECK(strstr(out.header.s, "\nFrom: joe@host.example.com "
				   "(Joe \\(the\\) Smith)\n") != NULL);
	teardown();
}

TEST(bcc_removed_recipients_from_header)
{
	setup();
	CHECK_INT(fix("To: a\nCc: b@x.y, Group: c@d.e;\nBcc: secret\n"
		      "Apparently-To: app\nContent-Length: 5\n"
		      "Subject: s\n"),
		  0);
	check_header("To: a@host.example.com\nCc: b@x.y, Group: c@d.e;\n"
		     "Subject: s\n" ADDED);
	CHECK_RCPTS("a@host.example.com\0b@x.y\0c@d.e\0"
		    "secret@host.example.com\0app@host.example.com\0");
	CHECK_INT(out.nrcpts, 5);
	teardown();
}

TEST(recipient_list_not_shown)
{
	setup();
	CHECK_INT(fix("Subject: x\nBcc: a@b.c\n"), 0);
	check_header("Subject: x\n" ADDED "Cc: recipient list not shown: ;\n");
	CHECK_RCPTS("a@b.c\0");
	teardown();
}

TEST(cc_alone_is_enough)
{
	setup();
	CHECK_INT(fix("Cc: a@b.c\n"), 0);
	check_header("Cc: a@b.c\n" ADDED);
	teardown();
}

TEST(qualification_in_place)
{
	setup();
	CHECK_INT(fix("From: (c) Joe <joe> (x)\nReply-To: a@b+, c@d.\n"
		      "Sender: s@[1.2.3.4]\nTo: \"q r\"@box,\n z (zed)\n"
		      "Mail-Followup-To: m\nErrors-To: e\n"
		      "Return-Receipt-To: r\nX-Other: o\n"),
		  0);
	check_header("From: (c) Joe <joe@host.example.com> (x)\n"
		     "Reply-To: a@b.plus.example, c@d.example.com\n"
		     "Sender: s@[1.2.3.4]\n"
		     "To: \"q r\"@box.example.com,\n"
		     " z@host.example.com (zed)\n"
		     "Mail-Followup-To: m@host.example.com\n"
		     "Errors-To: e@host.example.com\n"
		     "Return-Receipt-To: r@host.example.com\n"
		     "X-Other: o\n"
		     "Date: " DATE_NOW "\n"
		     "Message-ID: <1000000000.42.7@id.example>\n");
	CHECK_RCPTS("q r@box.example.com\0z@host.example.com\0");
	teardown();
}

TEST(unparsable_field_left_alone)
{
	setup();
	o.mode = INJECT_RCPT_GIVEN;
	static const char *const r[] = {"x@y.z"};
	o.rcpts = r;
	o.nrcpts = 1;
	CHECK_INT(fix("To: joe smith, <broken\nFrom: also broken <\n"), 0);
	check_header("To: joe smith, <broken\nFrom: also broken <\n"
		     "Date: " DATE_NOW "\n"
		     "Message-ID: <1000000000.42.7@id.example>\n");
	CHECK_RCPTS("x@y.z\0");
	teardown();
}

TEST(unparsable_recipient_field_refused)
{
	setup();
	errno = 0;
	CHECK_INT(fix("Subject: x\nCc: a b c\n"), -1);
	CHECK_INT(errno, EINVAL);
	CHECK(strstr(out.error.s, "Cc") != NULL);
	teardown();
}

TEST(delete_from_and_message_id)
{
	setup();
	o.flags = INJECT_DELETE_FROM | INJECT_DELETE_MSGID;
	CHECK_INT(fix("From: other@x.y\nMessage-ID: <old@x>\nTo: a@b.c\n"), 0);
	check_header("To: a@b.c\n" ADDED);
	teardown();
}

TEST(return_path_sets_sender)
{
	setup();
	CHECK_INT(fix("Return-Path: <bounce@lists>\nTo: a@b.c\n"), 0);
	CHECK_STR(out.sender.s, out.sender.len, "bounce@lists.example.com");
	check_header("To: a@b.c\n" ADDED);
	inject_out_free(&out);
	header_free(&h);

	header_init(&h);
	CHECK_INT(fix("Return-Path: <>\nTo: a@b.c\n"), 0);
	CHECK_STR(out.sender.s, out.sender.len, "");
	CHECK(out.sender.s != NULL);
	teardown();
}

TEST(return_path_ignored_with_s)
{
	setup();
	o.flags = INJECT_NO_RETURN_PATH;
	CHECK_INT(fix("Return-Path: <bounce@lists>\nTo: a@b.c\n"), 0);
	CHECK_STR(out.sender.s, out.sender.len, "joe@host.example.com");
	check_header("To: a@b.c\n" ADDED);
	teardown();
}

TEST(explicit_sender)
{
	setup();
	o.sender = "<>";
	o.shost = "other.example";
	CHECK_INT(fix("Return-Path: <rp@x.y>\nTo: a@b.c\n"), 0);
	CHECK_STR(out.sender.s, out.sender.len, "");
	inject_out_free(&out);
	o.sender = "bob";
	CHECK_INT(inject_fix(&h, &o, &out), 0);
	CHECK_STR(out.sender.s, out.sender.len, "bob@host.example.com");
	o.sender = "<bob@x.y>";
	CHECK_INT(inject_fix(&h, &o, &out), 0);
	CHECK_STR(out.sender.s, out.sender.len, "bob@x.y");
	o.sender = "not one address";
	CHECK_INT(inject_fix(&h, &o, &out), 0);
	CHECK_STR(out.sender.s, out.sender.len, "not one address");
	o.sender = NULL;
	o.flags = INJECT_NO_RETURN_PATH;
	CHECK_INT(inject_fix(&h, &o, &out), 0);
	CHECK_STR(out.sender.s, out.sender.len, "joe@other.example");
	teardown();
}

TEST(verp_letters)
{
	setup();
	o.flags = INJECT_VERP_RCPT;
	CHECK_INT(fix("To: a@b.c\n"), 0);
	CHECK_STR(out.sender.s, out.sender.len, "joe@host.example.com-@[]");
	o.flags = INJECT_VERP_MESSAGE;
	CHECK_INT(inject_fix(&h, &o, &out), 0);
	CHECK_STR(out.sender.s, out.sender.len,
		  "joe-1000000000.42@host.example.com");
	o.flags = INJECT_VERP_MESSAGE | INJECT_VERP_RCPT;
	CHECK_INT(inject_fix(&h, &o, &out), 0);
	CHECK_STR(out.sender.s, out.sender.len,
		  "joe-1000000000.42@host.example.com-@[]");
	o.sender = "";
	CHECK_INT(inject_fix(&h, &o, &out), 0);
	CHECK_STR(out.sender.s, out.sender.len, "");
	teardown();
}

TEST(resent_message)
{
	setup();
	CHECK_INT(fix("From: a@b.c\nTo: x@y.z\nDate: bad\n"
		      "Resent-To: r@s.t\nResent-Bcc: h@i.j\nBcc: old@x.y\n"),
		  0);
	check_header("From: a@b.c\nTo: x@y.z\nDate: bad\nResent-To: r@s.t\n"
		     "Resent-Date: " DATE_NOW "\n"
		     "Resent-Message-ID: <1000000000.42.7@id.example>\n"
		     "Resent-From: joe@host.example.com\n");
	CHECK_RCPTS("r@s.t\0h@i.j\0");
	teardown();
}

TEST(resent_delete_from_replaces_resent_from)
{
	setup();
	o.flags = INJECT_DELETE_FROM;
	CHECK_INT(fix("From: a@b.c\nResent-From: old@x.y\nResent-Cc: r@s.t\n"),
		  0);
	CHECK(strstr(out.header.s, "From: a@b.c\n") == out.header.s);
	CHECK(strstr(out.header.s, "old@x.y") == NULL);
	CHECK(strstr(out.header.s, "\nResent-From: joe@host.example.com\n") !=
	      NULL);
	teardown();
}

TEST(mode_given_only)
{
	static const char *const r[] = {"x", "A <y@z.w>, q@r.s"};
	setup();
	o.mode = INJECT_RCPT_GIVEN;
	o.rcpts = r;
	o.nrcpts = 2;
	CHECK_INT(fix("To: t@u.v\n"), 0);
	CHECK_RCPTS("x@host.example.com\0y@z.w\0q@r.s\0");
	CHECK_INT(out.nrcpts, 3);
	teardown();
}

TEST(mode_given_without_any)
{
	setup();
	o.mode = INJECT_RCPT_GIVEN;
	CHECK_INT(fix("To: t@u.v\n"), 0);
	CHECK_INT(out.nrcpts, 0);
	CHECK_INT(out.rcpts.len, 0);
	teardown();
}

TEST(mode_header_only)
{
	static const char *const r[] = {"x@y.z"};
	setup();
	o.mode = INJECT_RCPT_HEADER;
	o.rcpts = r;
	o.nrcpts = 1;
	CHECK_INT(fix("To: t@u.v\n"), 0);
	CHECK_RCPTS("t@u.v\0");
	teardown();
}

TEST(mode_both)
{
	static const char *const r[] = {"x@y.z"};
	setup();
	o.mode = INJECT_RCPT_BOTH;
	o.rcpts = r;
	o.nrcpts = 1;
	CHECK_INT(fix("To: t@u.v\nBcc: b\n"), 0);
	CHECK_RCPTS("x@y.z\0t@u.v\0b@host.example.com\0");
	CHECK_INT(out.nrcpts, 3);
	teardown();
}

TEST(mode_default_prefers_given)
{
	static const char *const r[] = {"x@y.z"};
	setup();
	o.rcpts = r;
	o.nrcpts = 1;
	/* The header is not used, so an unparsable To is no error. */
	CHECK_INT(fix("To: t u v\n"), 0);
	CHECK_RCPTS("x@y.z\0");
	teardown();
}

TEST(bad_given_recipient)
{
	static const char *const r[] = {"ok@x.y", "not an address"};
	setup();
	o.rcpts = r;
	o.nrcpts = 2;
	errno = 0;
	CHECK_INT(fix("To: t@u.v\n"), -1);
	CHECK_INT(errno, EINVAL);
	CHECK(strstr(out.error.s, "not an address") != NULL);
	teardown();
}

static char *long_address(size_t len, const char *host)
{
	size_t hl = strlen(host);
	char *s = malloc(len + 1);
	CHECK(s != NULL && len > hl + 1);
	memset(s, 'a', len - hl - 1);
	s[len - hl - 1] = '@';
	memcpy(s + len - hl, host, hl + 1);
	return s;
}

TEST(address_length_limit)
{
	char *ok = long_address(INJECT_ADDR_MAX, "x.example");
	char *bad = long_address(INJECT_ADDR_MAX + 1, "x.example");
	const char *r[1];

	setup();
	o.mode = INJECT_RCPT_GIVEN;
	o.nrcpts = 1;
	o.rcpts = r;
	r[0] = ok;
	CHECK_INT(fix("Subject: x\n"), 0);
	CHECK_INT(out.rcpts.len, INJECT_ADDR_MAX + 1);
	r[0] = bad;
	errno = 0;
	CHECK_INT(inject_fix(&h, &o, &out), -1);
	CHECK_INT(errno, ENAMETOOLONG);
	CHECK(strstr(out.error.s, "recipient address too long") != NULL);
	r[0] = ok;
	o.sender = bad;
	errno = 0;
	CHECK_INT(inject_fix(&h, &o, &out), -1);
	CHECK_INT(errno, ENAMETOOLONG);
	CHECK(strstr(out.error.s, "sender address too long") != NULL);
	teardown();
	free(ok);
	free(bad);
}

TEST(header_recipient_too_long)
{
	char *bad = long_address(1003, "x.example");
	struct str text = STR_INIT;

	setup();
	CHECK_INT(str_copys(&text, "To: "), 0);
	CHECK_INT(str_appends(&text, bad), 0);
	CHECK_INT(str_appends(&text, "\n"), 0);
	errno = 0;
	CHECK_INT(fix(text.s), -1);
	CHECK_INT(errno, ENAMETOOLONG);
	teardown();
	str_free(&text);
	free(bad);
}

TEST(crlf_header)
{
	setup();
	CHECK_INT(fix("Subject: x\r\nTo: a,\r\n b@c.d\r\n\r\n"), 0);
	check_header("Subject: x\r\nTo: a@host.example.com,\r\n b@c.d\r\n"
		     "Date: " DATE_NOW "\r\n"
		     "Message-ID: <1000000000.42.7@id.example>\r\n"
		     "From: joe@host.example.com\r\n");
	teardown();
}

TEST(last_line_without_newline)
{
	setup();
	CHECK_INT(fix("Subject: x\nTo: a@b.c"), 0);
	check_header("Subject: x\nTo: a@b.c\n" ADDED);
	teardown();
}

TEST(empty_header)
{
	setup();
	CHECK_INT(fix(""), 0);
	check_header(ADDED "Cc: recipient list not shown: ;\n");
	CHECK_INT(out.nrcpts, 0);
	teardown();
}

TEST(mail_followup_to_added)
{
	struct str mft = STR_INIT;
	setup();
	CHECK_INT(str_append(&mft, "other@x.y\0List@Lists.Example\0", 29), 0);
	o.mft = &mft;
	CHECK_INT(fix("To: list@lists.example\nCc: \"b c\"@d\n"), 0);
	check_header("To: list@lists.example\nCc: \"b c\"@d.example.com\n" ADDED
		     "Mail-Followup-To: list@lists.example, "
		     "\"b c\"@d.example.com\n");
	teardown();
	str_free(&mft);
}

TEST(mail_followup_to_not_added)
{
	struct str mft = STR_INIT;
	setup();
	CHECK_INT(str_append(&mft, "list@lists.example\0", 19), 0);
	o.mft = &mft;
	CHECK_INT(fix("To: a@b.c\nBcc: list@lists.example\n"), 0);
	CHECK(strstr(out.header.s, "Mail-Followup-To") == NULL);
	inject_out_free(&out);
	header_free(&h);
	header_init(&h);
	CHECK_INT(fix("To: list@lists.example\nMail-Followup-To: me@x.y\n"), 0);
	CHECK(strstr(out.header.s, "Mail-Followup-To: me@x.y\n") != NULL);
	CHECK(strstr(out.header.s, "Mail-Followup-To: list") == NULL);
	teardown();
	str_free(&mft);
}

TEST(envelope_address_helper)
{
	struct str s = STR_INIT;
	setup();
	CHECK_INT(inject_envelope_address(&rw, "<>", &s), 0);
	CHECK_INT(s.len, 0);
	CHECK(s.s != NULL);
	CHECK_INT(inject_envelope_address(&rw, "", &s), 0);
	CHECK_INT(s.len, 0);
	CHECK_INT(inject_envelope_address(&rw, "<joe>", &s), 0);
	CHECK_STR(s.s, s.len, "joe@host.example.com");
	CHECK_INT(inject_envelope_address(&rw, "\"a b\"@c", &s), 0);
	CHECK_STR(s.s, s.len, "a b@c.example.com");
	CHECK_INT(inject_envelope_address(&rw, "a@b, c@d", &s), 0);
	CHECK_STR(s.s, s.len, "a@b, c@d");
	str_free(&s);
	teardown();
}

/* --- the settings loader --- */

static void enter_home(void)
{
	static const char *const vars[] = {"QMAILDEFAULTDOMAIN",
					   "QMAILDEFAULTHOST",
					   "QMAILPLUSDOMAIN", "QMAILIDHOST"};
	for (size_t i = 0; i < 4; i++)
		unsetenv(vars[i]);
	unit_tmp_enter("t_inject");
	unit_mkdir("control", 0755);
}

static void control(const char *name, const char *text)
{
	char path[128];

	snprintf(path, sizeof path, "control/%s", name);
	unit_write_str(path, text, 0644);
}

static void check_qualified(const struct inject_settings *s, const char *in,
			    const char *want)
{
	struct str q = STR_INIT;
	CHECK_INT(rewrite_host(&s->rw, in, strlen(in), &q), 0);
	CHECK_STR(q.s, q.len, want);
	str_free(&q);
}

TEST(settings_default_to_me)
{
	struct inject_settings s;
	enter_home();
	control("me", "me.example\n");
	CHECK_INT(inject_settings_load(&s), 0);
	CHECK_STR(s.defaultdomain.s, s.defaultdomain.len, "me.example");
	CHECK_STR(s.defaulthost.s, s.defaulthost.len, "me.example");
	CHECK_STR(s.plusdomain.s, s.plusdomain.len, "me.example");
	CHECK_STR(s.idhost.s, s.idhost.len, "me.example");
	CHECK_INT(s.rewrite_file, 0);
	check_qualified(&s, "", "me.example");
	check_qualified(&s, "box", "box.me.example");
	inject_settings_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(settings_from_files_and_environment)
{
	struct inject_settings s;
	enter_home();
	control("me", "me.example\n");
	control("defaulthost", "dh\n");
	control("defaultdomain", "dd.example\n");
	control("plusdomain", "pd.example\n");
	control("idhost", "ids.example\n");
	CHECK_INT(setenv("QMAILPLUSDOMAIN", "envplus.example", 1), 0);
	CHECK_INT(setenv("QMAILIDHOST", "", 1), 0); /* empty: not set */
	CHECK_INT(inject_settings_load(&s), 0);
	CHECK_STR(s.idhost.s, s.idhost.len, "ids.example");
	check_qualified(&s, "", "dh.dd.example");
	check_qualified(&s, "x+", "x.envplus.example");
	inject_settings_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(settings_literal_defaults)
{
	struct inject_settings s;
	enter_home();
	CHECK_INT(inject_settings_load(&s), 0);
	CHECK_STR(s.idhost.s, s.idhost.len, "idhost");
	check_qualified(&s, "", "defaulthost.defaultdomain");
	check_qualified(&s, "a+", "a.plusdomain");
	inject_settings_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(settings_rewrite_file)
{
	struct inject_settings s;
	enter_home();
	control("me", "me.example\n");
	control("rewrite", "=:hub.example\n");
	CHECK_INT(setenv("QMAILDEFAULTHOST", "ignored.example", 1), 0);
	CHECK_INT(inject_settings_load(&s), 0);
	CHECK_INT(s.rewrite_file, 1);
	check_qualified(&s, "", "hub.example");
	check_qualified(&s, "box", "box");
	inject_settings_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(settings_errors)
{
	struct inject_settings s;
	enter_home();
	control("rewrite", "bogus\n");
	errno = 0;
	CHECK_INT(inject_settings_load(&s), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_STR(s.failed.s, s.failed.len, "control/rewrite: bogus");
	inject_settings_free(&s);
	CHECK_INT(mkdir("control/defaulthost", 0755), 0);
	CHECK_INT(inject_settings_load(&s), -1);
	CHECK_STR(s.failed.s, s.failed.len, "control/defaulthost");
	inject_settings_free(&s);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* Found by fuzz_inject: a name with a line end wrote a second line into
 * From, a sender given as it was kept its line end, and a quoted CR in
 * a To address reached the envelope. Each would let the text write
 * header lines of its own (here, or as Return-Path or Delivered-To). */
TEST(line_ends_never_escape)
{
	setup();
	o.name = "Joe\nX-Injected: yes";
	CHECK_INT(fix("To: a@b.c\n"), 0);
	CHECK(strstr(out.header.s, "\nFrom: \"Joe X-Injected: yes\" "
				   "<joe@host.example.com>\n") != NULL);
	CHECK(strstr(out.header.s, "\nX-Injected") == NULL);
	inject_out_free(&out);
	o.name = NULL;
	o.sender = "not one\naddress"; /* kept as it is */
	errno = 0;
	CHECK_INT(inject_fix(&h, &o, &out), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_STR(out.error.s, out.error.len,
		  "the sender address holds a line end");
	teardown();

	setup();
	CHECK_INT(fix("To: \"a\\\rX-Injected: y\"@b.c\n"), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(out.nrcpts, 0);
	teardown();
}

UNIT_MAIN(adds_date_message_id_from, existing_fields_kept,
	  date_normalised_when_it_parses, from_with_name,
	  from_with_name_needing_quotes, from_comment_style,
	  bcc_removed_recipients_from_header, recipient_list_not_shown,
	  cc_alone_is_enough, qualification_in_place,
	  unparsable_field_left_alone, unparsable_recipient_field_refused,
	  delete_from_and_message_id, return_path_sets_sender,
	  return_path_ignored_with_s, explicit_sender, verp_letters,
	  resent_message, resent_delete_from_replaces_resent_from,
	  mode_given_only, mode_given_without_any, mode_header_only, mode_both,
	  mode_default_prefers_given, bad_given_recipient, address_length_limit,
	  header_recipient_too_long, crlf_header, last_line_without_newline,
	  empty_header, mail_followup_to_added, mail_followup_to_not_added,
	  envelope_address_helper, settings_default_to_me,
	  settings_from_files_and_environment, settings_literal_defaults,
	  settings_rewrite_file, settings_errors, line_ends_never_escape)
