/* t_authroute.c: control/authroutes and credentials in smtproutes: both
 * line syntaxes of the qmail AUTH patches, the '-' for cleartext, sender
 * and recipient lookups with their order, the shadowing of a default
 * route's credentials, every malformed line, and loading the files with
 * the owner and mode checks. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remote/authroute.h"
#include "unit.h"
#include "unit_tmp.h"

/* A fresh directory each time: one test may load several setups. */
static void enter_tmpdir(void)
{
	unit_tmp_enter("t_authroute");
	unit_mkdir("control", 0755);
}

struct tables {
	struct authroutes a;
	struct smtproutes r;
};

#define TABLES_INIT                                                            \
	{                                                                      \
		AUTHROUTES_INIT, SMTPROUTES_INIT                               \
	}

static void tables_free(struct tables *t)
{
	authroutes_free(&t->a);
	smtproutes_free(&t->r);
}

static void add(struct tables *t, const char *line)
{
	if (authroutes_add(&t->a, &t->r, line, strlen(line)) != 0) {
		fprintf(stderr, "refused good line \"%s\"\n", line);
		unit_failures++;
	}
}

static int add_route(struct tables *t, const char *line)
{
	return authroutes_add_smtproute(&t->a, &t->r, line, strlen(line));
}

/* The credentials for host as "user/pass", "-user/pass" for cleartext,
 * "-" for none. */
static const char *host_cred(const struct tables *t, const char *host)
{
	static char out[1200];
	const struct authcred *c = authroutes_for_host(&t->a, host);

	if (!c)
		return "-";
	snprintf(out, sizeof out, "%s%s/%s", c->cleartext ? "-" : "", c->user,
		 c->pass);
	return out;
}

/* The sender entry as "relay:port user/pass", "relay:port" without
 * credentials, "-" for none. */
static const char *sender_entry(const struct tables *t, const char *sender)
{
	static char out[1300];
	const struct authroute *e = authroutes_for_sender(&t->a, sender);
	int n;

	if (!e)
		return "-";
	n = snprintf(out, sizeof out, "%s:%u", e->relay, e->port);
	if (e->cred.user)
		snprintf(out + n, sizeof out - (size_t)n, " %s%s/%s",
			 e->cred.cleartext ? "-" : "", e->cred.user,
			 e->cred.pass);
	return out;
}

/* The smtproutes answer as "relay:port", "-" for no route. */
static const char *route(const struct tables *t, const char *host)
{
	static char out[300];
	struct str relay = STR_INIT;
	unsigned port = 0;
	int res = smtproutes_find(&t->r, host, &relay, &port);

	if (res <= 0)
		snprintf(out, sizeof out, res < 0 ? "error" : "-");
	else
		snprintf(out, sizeof out, "%.*s:%u", (int)relay.len,
			 relay.s ? relay.s : "", port);
	str_free(&relay);
	return out;
}

#define CHECK_TEXT(got, want)                                                  \
	do {                                                                   \
		const char *got_ = (got);                                      \
		CHECK_STR(got_, strlen(got_), want);                           \
	} while (0)

/* --- recipient routes, the smtproutes syntax of the AUTH patches --- */

TEST(recipient_route_with_credentials)
{
	struct tables t = TABLES_INIT;

	add(&t, "example.net:relay.example:587 alice pass word");
	CHECK_TEXT(route(&t, "example.net"), "relay.example:587");
	CHECK_TEXT(host_cred(&t, "example.net"), "alice/pass word");
	CHECK_TEXT(host_cred(&t, "EXAMPLE.NET"), "alice/pass word");
	CHECK_TEXT(host_cred(&t, "a.example.net"), "-");
	CHECK_TEXT(host_cred(&t, "example.org"), "-");
	CHECK_TEXT(route(&t, "example.org"), "-");
	CHECK_TEXT(sender_entry(&t, "alice@example.net"), "-");
	tables_free(&t);
}

TEST(blanks_dash_and_bars_in_recipient_routes)
{
	struct tables t = TABLES_INIT;

	add(&t, "a.test:[192.0.2.1] \t -bob  pa|ss  word");
	add(&t, "b.test:relay.b user p");
	CHECK_TEXT(route(&t, "a.test"), "[192.0.2.1]:25");
	CHECK_TEXT(host_cred(&t, "a.test"), "-bob/pa|ss  word");
	CHECK_TEXT(host_cred(&t, "b.test"), "user/p");
	tables_free(&t);
}

TEST(wildcard_default_and_first_line_wins)
{
	struct tables t = TABLES_INIT;

	add(&t, ".example.net:r1 u1 p1");
	add(&t, ":r2:2525 u2 p2");
	add(&t, ".example.net:r3 u3 p3");
	CHECK_TEXT(host_cred(&t, "mx.example.net"), "u1/p1");
	CHECK_TEXT(route(&t, "mx.example.net"), "r1:25");
	CHECK_TEXT(host_cred(&t, "example.net"), "u2/p2");
	CHECK_TEXT(route(&t, "example.net"), "r2:2525");
	CHECK_TEXT(host_cred(&t, "x.org"), "u2/p2");
	tables_free(&t);
}

TEST(route_without_credentials_shadows_a_default_with_them)
{
	struct tables t = TABLES_INIT;

	CHECK_INT(add_route(&t, ":smart.example u p"), 1);
	CHECK_INT(add_route(&t, "internal.test:[10.0.0.1]"), 0);
	CHECK_INT(add_route(&t, ".mx.test::2525"), 0);
	CHECK_TEXT(host_cred(&t, "internal.test"), "-");
	CHECK_TEXT(route(&t, "internal.test"), "[10.0.0.1]:25");
	CHECK_TEXT(host_cred(&t, "a.mx.test"), "-");
	CHECK_TEXT(route(&t, "a.mx.test"), ":2525");
	CHECK_TEXT(host_cred(&t, "elsewhere.test"), "u/p");
	CHECK_TEXT(route(&t, "elsewhere.test"), "smart.example:25");
	tables_free(&t);
}

TEST(authroutes_line_wins_over_the_same_smtproutes_key)
{
	struct tables t = TABLES_INIT;

	add(&t, "example.net:first u1 p1");
	CHECK_INT(add_route(&t, "example.net:second u2 p2"), 1);
	CHECK_INT(add_route(&t, "example.org:third"), 0);
	add(&t, "example.org:fourth u4 p4");
	CHECK_TEXT(route(&t, "example.net"), "first:25");
	CHECK_TEXT(host_cred(&t, "example.net"), "u1/p1");
	/* smtproutes came first for example.org: its route and no
	 * credentials, never the fourth relay's. */
	CHECK_TEXT(route(&t, "example.org"), "third:25");
	CHECK_TEXT(host_cred(&t, "example.org"), "-");
	tables_free(&t);
}

/* --- sender entries, the authsenders syntax --- */

TEST(documented_authsenders_lines)
{
	struct tables t = TABLES_INIT;

	add(&t, "@example.com|generic|passwd");
	add(&t, ".subdomain.example.com|other|otherpw");
	add(&t, "mail@example.com|test|testpass");
	add(&t, "info@example.com:smtp.example.com:26|other|otherpw");
	add(&t, ":mailrelay.example.com:587|e=mc2|testpass");
	CHECK_TEXT(sender_entry(&t, "x@example.com"), ":25 generic/passwd");
	CHECK_TEXT(sender_entry(&t, "x@EXAMPLE.com"), ":25 generic/passwd");
	CHECK_TEXT(sender_entry(&t, "mail@example.com"), ":25 test/testpass");
	CHECK_TEXT(sender_entry(&t, "info@example.com"),
		   "smtp.example.com:26 other/otherpw");
	CHECK_TEXT(sender_entry(&t, "a@b.subdomain.example.com"),
		   ":25 other/otherpw");
	CHECK_TEXT(sender_entry(&t, "a@x.b.subdomain.example.com"),
		   ":25 other/otherpw");
	/* ".dom" is for the domains below dom, as in smtproutes. */
	CHECK_TEXT(sender_entry(&t, "a@subdomain.example.com"),
		   "mailrelay.example.com:587 e=mc2/testpass");
	CHECK_TEXT(sender_entry(&t, "someone@else.test"),
		   "mailrelay.example.com:587 e=mc2/testpass");
	CHECK_TEXT(sender_entry(&t, ""),
		   "mailrelay.example.com:587 e=mc2/testpass");
	CHECK_TEXT(sender_entry(&t, "user@"),
		   "mailrelay.example.com:587 e=mc2/testpass");
	/* Sender entries are no recipient routes. */
	CHECK_TEXT(route(&t, "example.com"), "-");
	CHECK_TEXT(host_cred(&t, "example.com"), "-");
	tables_free(&t);
}

TEST(sender_without_default_and_odd_passwords)
{
	struct tables t = TABLES_INIT;

	add(&t, "a@b.test|u|p|q r");
	add(&t, "c@b.test:[IPv6:2001:db8::1]:2525|-clear|pw");
	add(&t, "d@b.test:relay.test");
	add(&t, "a@b.test|second|ignored");
	CHECK_TEXT(sender_entry(&t, "a@b.test"), ":25 u/p|q r");
	CHECK_TEXT(sender_entry(&t, "c@b.test"),
		   "[IPv6:2001:db8::1]:2525 -clear/pw");
	CHECK_TEXT(sender_entry(&t, "d@b.test"), "relay.test:25");
	CHECK_TEXT(sender_entry(&t, "e@b.test"), "-");
	CHECK_TEXT(sender_entry(&t, ""), "-");
	tables_free(&t);
}

/* --- what is refused --- */

static void check_refused(const char *line, int err)
{
	struct tables t = TABLES_INIT;

	errno = 0;
	if (authroutes_add(&t.a, &t.r, line, strlen(line)) != -1 ||
	    errno != err) {
		fprintf(stderr, "line \"%s\" not refused with errno %d\n", line,
			err);
		unit_failures++;
	}
	tables_free(&t);
}

TEST(malformed_lines)
{
	static const char *const bad[] = {
	    "example.net:relay user",	   /* no password */
	    "example.net:relay user  ",	   /* still none */
	    "example.net: user pass",	   /* no relay: never to MX */
	    "example.net::587 user pass",  /* the same with a port */
	    "example.net user pass",	   /* no colon */
	    "example.net:relay:x user pw", /* bad port */
	    "example.net:[1.2.3] user pw", /* bad literal */
	    "example.net:relay - pw",	   /* '-' and no name */
	    "example.com",		   /* a sender needs @ or . */
	    "example.com|u|p",		   /* the same */
	    "@|u|p",			   /* no domain */
	    "a@|u|p",			   /* no domain */
	    "..x|u|p",			   /* empty label */
	    "a@b.c|user",		   /* no second bar */
	    "a@b.c||p",			   /* no user */
	    "a@b.c|-|p",		   /* no user after the dash */
	    "a@b.c|u\001|p",		   /* a control byte */
	    "a@b.c::25|u|p",		   /* a port with no relay */
	    "a@b.c:[1.2.3]|u|p",	   /* bad literal */
	    "a@b.c:relay:0|u|p",	   /* bad port */
	    "a@b.c:relay:99999|u|p",	   /* bad port */
	    ".x",			   /* neither relay nor creds */
	    "a@b.c:",			   /* the same */
	    "dom:re|lay u p",		   /* a bar in a route */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check_refused(bad[i], EINVAL);
}

TEST(nul_in_a_line)
{
	struct tables t = TABLES_INIT;

	errno = 0;
	CHECK_INT(authroutes_add(&t.a, &t.r, "a@b.c|u|p\0q", 11), -1);
	CHECK_INT(errno, EINVAL);
	errno = 0;
	CHECK_INT(authroutes_add_smtproute(&t.a, &t.r, "a:b u p\0", 8), -1);
	CHECK_INT(errno, EINVAL);
	tables_free(&t);
}

TEST(smtproutes_lines)
{
	struct tables t = TABLES_INIT;

	errno = 0;
	CHECK_INT(add_route(&t, "a.test:relay|u|p"), -1);
	CHECK_INT(errno, EINVAL);
	errno = 0;
	CHECK_INT(add_route(&t, "a.test: u p"), -1);
	CHECK_INT(errno, EINVAL);
	errno = 0;
	CHECK_INT(add_route(&t, "a.test:relay u"), -1);
	CHECK_INT(errno, EINVAL);
	errno = 0;
	CHECK_INT(add_route(&t, "no colon"), -1);
	CHECK_INT(errno, EINVAL);
	errno = 0;
	CHECK_INT(add_route(&t, "a.test:relay:bad"), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(add_route(&t, "a.test:relay.a:2525 -u p"), 1);
	CHECK_INT(add_route(&t, "b.test:"), 0);
	CHECK_TEXT(host_cred(&t, "a.test"), "-u/p");
	CHECK_TEXT(route(&t, "a.test"), "relay.a:2525");
	CHECK_TEXT(route(&t, "b.test"), ":25");
	tables_free(&t);
}

TEST(credential_lengths)
{
	struct tables t = TABLES_INIT;
	char line[2 * AUTHCRED_MAX + 40];
	char big[AUTHCRED_MAX + 2];

	memset(big, 'x', sizeof big - 1);
	big[AUTHCRED_MAX] = '\0';
	snprintf(line, sizeof line, "a@b.c|%s|%s", big, big);
	add(&t, line);
	snprintf(line, sizeof line, "d.test:r %s %s", big, big);
	add(&t, line);
	CHECK_INT(strlen(authroutes_for_sender(&t.a, "a@b.c")->cred.pass),
		  AUTHCRED_MAX);
	CHECK_INT(strlen(authroutes_for_host(&t.a, "d.test")->user),
		  AUTHCRED_MAX);
	tables_free(&t);
	big[AUTHCRED_MAX] = 'x';
	big[AUTHCRED_MAX + 1] = '\0';
	snprintf(line, sizeof line, "a@b.c|%s|p", big);
	check_refused(line, ENAMETOOLONG);
	snprintf(line, sizeof line, "a@b.c|u|%s", big);
	check_refused(line, ENAMETOOLONG);
	snprintf(line, sizeof line, "d.test:r u %s", big);
	check_refused(line, ENAMETOOLONG);
}

TEST(private_files)
{
	struct stat st;

	memset(&st, 0, sizeof st);
	st.st_uid = geteuid();
	st.st_mode = S_IFREG | 0600;
	CHECK(authroutes_private(&st));
	st.st_mode = S_IFREG | 0400;
	CHECK(authroutes_private(&st));
	st.st_mode = S_IFREG | 0640;
	CHECK(!authroutes_private(&st));
	st.st_mode = S_IFREG | 0604;
	CHECK(!authroutes_private(&st));
	st.st_mode = S_IFREG | 0620;
	CHECK(!authroutes_private(&st));
	st.st_mode = S_IFREG | 0601;
	CHECK(!authroutes_private(&st));
	st.st_mode = S_IFREG | 0600;
	st.st_uid = geteuid() + 1;
	CHECK(!authroutes_private(&st));
}

/* --- loading --- */

struct load {
	int res, err;
	enum authload_error why;
	const char *file;
	struct str bad;
};

static void load(struct tables *t, struct load *l)
{
	l->bad = (struct str)STR_INIT;
	l->file = NULL;
	errno = 0;
	l->res = authroutes_load(&t->a, &t->r, &l->why, &l->file, &l->bad);
	l->err = errno;
}

TEST(load_both_files)
{
	struct tables t = TABLES_INIT;
	struct load l;

	enter_tmpdir();
	unit_write_str("control/authroutes",
		       "# credentials\n\n"
		       "example.net:relay.example:587 alice s3cret \t\r\n"
		       "@example.org|bob|hunter2\n",
		       0600);
	unit_write_str("control/smtproutes",
		       "example.net:ignored carol x\n"
		       "plain.test:[192.0.2.9]\n"
		       ":smart.example dave pw\n",
		       0600);
	load(&t, &l);
	CHECK_INT(l.res, 0);
	CHECK_TEXT(host_cred(&t, "example.net"), "alice/s3cret");
	CHECK_TEXT(route(&t, "example.net"), "relay.example:587");
	CHECK_TEXT(host_cred(&t, "plain.test"), "-");
	CHECK_TEXT(route(&t, "plain.test"), "[192.0.2.9]:25");
	CHECK_TEXT(host_cred(&t, "other.test"), "dave/pw");
	CHECK_TEXT(sender_entry(&t, "x@example.org"), ":25 bob/hunter2");
	tables_free(&t);
	str_free(&l.bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(missing_files_mean_no_entries)
{
	struct tables t = TABLES_INIT;
	struct load l;

	enter_tmpdir();
	add(&t, "a@b.c|u|p");
	load(&t, &l);
	CHECK_INT(l.res, 0);
	CHECK_TEXT(sender_entry(&t, "a@b.c"), "-");
	CHECK_TEXT(route(&t, "b.c"), "-");
	tables_free(&t);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(public_smtproutes_without_credentials_is_fine)
{
	struct tables t = TABLES_INIT;
	struct load l;

	enter_tmpdir();
	unit_write_str("control/smtproutes", "a.test:relay.a\n", 0644);
	unit_write_str("control/authroutes", "# nothing yet\n", 0644);
	load(&t, &l);
	CHECK_INT(l.res, 0);
	CHECK_TEXT(route(&t, "a.test"), "relay.a:25");
	tables_free(&t);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* Loading fails as expected, and what was loaded before stays. */
static void check_load_fails(const char *authroutes, mode_t amode,
			     const char *smtproutes, mode_t smode,
			     enum authload_error why, int err, const char *file,
			     const char *bad)
{
	struct tables t = TABLES_INIT;
	struct load l;

	enter_tmpdir();
	if (authroutes)
		unit_write_str("control/authroutes", authroutes, amode);
	if (smtproutes)
		unit_write_str("control/smtproutes", smtproutes, smode);
	add(&t, "old@b.c|u|p");
	load(&t, &l);
	CHECK_INT(l.res, -1);
	CHECK_INT(l.why, why);
	CHECK_INT(l.err, err);
	CHECK(l.file != NULL);
	if (l.file)
		CHECK_TEXT(l.file, file);
	if (bad)
		CHECK_STR(l.bad.s ? l.bad.s : "", l.bad.len, bad);
	CHECK_TEXT(sender_entry(&t, "old@b.c"), ":25 u/p");
	tables_free(&t);
	str_free(&l.bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(open_files_are_refused)
{
	check_load_fails("a@b.c|u|p\n", 0644, NULL, 0, AUTHLOAD_OPEN, EPERM,
			 AUTHROUTES_FILE, NULL);
	check_load_fails("a@b.c|u|p\n", 0640, NULL, 0, AUTHLOAD_OPEN, EPERM,
			 AUTHROUTES_FILE, NULL);
	/* Even a line without credentials: the file is for secrets. */
	check_load_fails("a@b.c:relay\n", 0604, NULL, 0, AUTHLOAD_OPEN, EPERM,
			 AUTHROUTES_FILE, NULL);
	check_load_fails(NULL, 0, "a:relay\nb:relay u p\n", 0644, AUTHLOAD_OPEN,
			 EPERM, SMTPROUTES_FILE, NULL);
	check_load_fails(NULL, 0, "b:relay u p\n", 0660, AUTHLOAD_OPEN, EPERM,
			 SMTPROUTES_FILE, NULL);
}

TEST(files_of_another_owner_are_refused)
{
	if (geteuid() != 0) {
		fprintf(stderr, "(not root: owner check not exercised)\n");
		return;
	}
	enter_tmpdir();
	unit_write_str("control/authroutes", "a@b.c|u|p\n", 0600);
	CHECK_INT(chown("control/authroutes", 1, 1), 0);
	struct tables t = TABLES_INIT;
	struct load l;
	load(&t, &l);
	CHECK_INT(l.res, -1);
	CHECK_INT(l.why, AUTHLOAD_OPEN);
	CHECK_INT(l.err, EPERM);
	tables_free(&t);
	str_free(&l.bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(bad_lines_are_named_without_secrets)
{
	check_load_fails("a@b.c|u|p\nx@y.z:relay:bad|user|hunter2\n", 0600,
			 NULL, 0, AUTHLOAD_LINE, EINVAL, AUTHROUTES_FILE,
			 "x@y.z:relay:bad");
	check_load_fails("d.test:relay user\n", 0600, NULL, 0, AUTHLOAD_LINE,
			 EINVAL, AUTHROUTES_FILE, "d.test:relay");
	check_load_fails(NULL, 0, "d.test:relay|user|hunter2\n", 0600,
			 AUTHLOAD_LINE, EINVAL, SMTPROUTES_FILE,
			 "d.test:relay");
	check_load_fails(NULL, 0, "no colon here\n", 0644, AUTHLOAD_LINE,
			 EINVAL, SMTPROUTES_FILE, "no");
}

TEST(authsenders_is_not_read_but_stops_the_load)
{
	struct tables t = TABLES_INIT;
	struct load l;

	enter_tmpdir();
	unit_write_str("control/authroutes", "a@b.c|u|p\n", 0600);
	unit_write_str("control/authsenders", "x@y.z|u|p\n", 0600);
	load(&t, &l);
	CHECK_INT(l.res, -1);
	CHECK_INT(l.why, AUTHLOAD_OBSOLETE);
	CHECK_INT(l.err, EEXIST);
	CHECK_TEXT(l.file, AUTHSENDERS_FILE);
	CHECK_TEXT(sender_entry(&t, "a@b.c"), "-");
	/* Even a dangling link: it shows that something was meant. */
	CHECK_INT(unlink("control/authsenders"), 0);
	CHECK_INT(symlink("nowhere", "control/authsenders"), 0);
	load(&t, &l);
	CHECK_INT(l.why, AUTHLOAD_OBSOLETE);
	CHECK_INT(unlink("control/authsenders"), 0);
	load(&t, &l);
	CHECK_INT(l.res, 0);
	CHECK_TEXT(sender_entry(&t, "a@b.c"), ":25 u/p");
	tables_free(&t);
	str_free(&l.bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(unreadable_kinds)
{
	struct tables t = TABLES_INIT;
	struct load l;

	enter_tmpdir();
	CHECK_INT(mkdir("control/authroutes", 0700), 0);
	load(&t, &l);
	CHECK_INT(l.res, -1);
	CHECK_INT(l.why, AUTHLOAD_SYSTEM);
	CHECK_INT(l.err, EISDIR);
	CHECK_INT(rmdir("control/authroutes"), 0);
	CHECK_INT(mkfifo("control/smtproutes", 0600), 0);
	load(&t, &l);
	CHECK_INT(l.res, -1);
	CHECK_INT(l.why, AUTHLOAD_SYSTEM);
	CHECK_INT(l.err, EINVAL);
	CHECK_TEXT(l.file, SMTPROUTES_FILE);
	tables_free(&t);
	str_free(&l.bad);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(recipient_route_with_credentials,
	  blanks_dash_and_bars_in_recipient_routes,
	  wildcard_default_and_first_line_wins,
	  route_without_credentials_shadows_a_default_with_them,
	  authroutes_line_wins_over_the_same_smtproutes_key,
	  documented_authsenders_lines,
	  sender_without_default_and_odd_passwords, malformed_lines,
	  nul_in_a_line, smtproutes_lines, credential_lengths, private_files,
	  load_both_files, missing_files_mean_no_entries,
	  public_smtproutes_without_credentials_is_fine, open_files_are_refused,
	  files_of_another_owner_are_refused,
	  bad_lines_are_named_without_secrets,
	  authsenders_is_not_read_but_stops_the_load, unreadable_kinds)
