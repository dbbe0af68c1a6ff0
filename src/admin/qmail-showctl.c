/*
 * qmail-showctl: show the configuration the mail system would use.
 *
 * First what is compiled in (prefix, split) and found at run time (home,
 * instance, role accounts), then one section per control file with its
 * meaning and its effective value, or "(Default.)" and what applies when
 * it is missing; files in control/ it does not know come last, marked
 * "unrecognised". Adding a control file is one entry in `controls`.
 * It only reads. It must never print a byte of a value raw (values may
 * hold anything), nor the contents of a file that holds secrets: keys
 * and credentials are shown as a count or a presence, never as text.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auto.h"
#include "lib/buf.h"
#include "lib/checked.h"
#include "lib/ctl.h"
#include "lib/errstr.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"
#include "mail/roles.h"

/* --- the control files --- */

enum kind {
	KIND_LINE,   /* one value: the first line */
	KIND_NUMBER, /* one unsigned decimal number */
	KIND_LIST,   /* one entry per line */
	KIND_FILE,   /* binary or key material: only whether it exists */
	KIND_DIR,    /* a directory: the names in it */
};

enum {
	/* When missing, the value of control/me applies. */
	FLAG_ME = 1,
	/* The file holds secrets: print only how many entries it has. */
	FLAG_SECRET = 2,
	/* Entries may carry credentials after a blank (the smtproutes
	 * syntax of the AUTH patches) or a '|' (the authsenders syntax):
	 * print each entry only up to the first of them. */
	FLAG_HIDE_AFTER_BLANK = 4,
};

struct control {
	const char *name;
	enum kind kind;
	unsigned flags;
	const char *dflt;    /* what applies when the file is missing */
	const char *meaning; /* one sentence */
};

static const struct control controls[] = {
    {"authroutes", KIND_LIST, FLAG_HIDE_AFTER_BLANK,
     "none: qmail-remote never uses SMTP AUTH",
     "Credentials qmail-remote gives relays (qmail-authroutes(5)): "
     "domain:relay[:port] user password by recipient domain, "
     "sender[:relay[:port]]|user|password by sender; mode 600, owned by "
     "the remote account."},
    {"authsenders", KIND_LIST, FLAG_SECRET,
     "absent, as it must be",
     "Not read: while it exists qmail-remote defers all mail; move its "
     "lines to authroutes, where they keep their meaning."},
    {"badmailfrom", KIND_LIST, 0, "none: any envelope sender is accepted",
     "Envelope senders qmail-smtpd rejects; @domain rejects a whole "
     "domain."},
    {"bouncefrom", KIND_LINE, 0, "MAILER-DAEMON",
     "User name in the From: line of bounces."},
    {"bouncehost", KIND_LINE, FLAG_ME, NULL,
     "Host name in the From: line of bounces."},
    {"clientca.pem", KIND_FILE, 0,
     "absent: client certificates are not verified",
     "Certificate authorities for verifying client certificates."},
    {"clientcert.pem", KIND_FILE, 0,
     "absent: qmail-remote presents no certificate",
     "Certificate that qmail-remote presents to servers."},
    {"clientcrl.pem", KIND_FILE, 0, "absent: no revocation lists",
     "Revocation lists for client certificates."},
    {"concurrencylocal", KIND_NUMBER, 0, "10",
     "Most simultaneous local deliveries; 0 puts the channel on hold."},
    {"concurrencyremote", KIND_NUMBER, 0, "20",
     "Most simultaneous remote deliveries; 0 puts the channel on hold."},
    {"databytes", KIND_NUMBER, 0, "0 (no limit)",
     "Largest message qmail-smtpd accepts, in bytes; 0 means no limit; "
     "the DATABYTES environment variable overrides it."},
    {"defaultdelivery", KIND_LINE, 0, "none",
     "Delivery instruction for users without a .qmail file, given to "
     "qmail-start by its run script."},
    {"defaultdomain", KIND_LINE, FLAG_ME, NULL,
     "Domain added to host names without a dot by qmail-inject; "
     "QMAILDEFAULTDOMAIN overrides it."},
    {"defaulthost", KIND_LINE, FLAG_ME, NULL,
     "Host added to addresses without one by qmail-inject; "
     "QMAILDEFAULTHOST overrides it."},
    {"dh2048.pem", KIND_FILE, 0, "absent: automatic Diffie-Hellman parameters",
     "Diffie-Hellman parameters for TLS, made by update_tmprsadh."},
    {"doublebouncehost", KIND_LINE, FLAG_ME, NULL,
     "Host part of the address that double bounces go to."},
    {"doublebounceto", KIND_LINE, 0, "postmaster",
     "User that double bounces go to; an empty value discards them."},
    {"envnoathost", KIND_LINE, FLAG_ME, NULL,
     "Domain added to recipients that have no @."},
    {"helohost", KIND_LINE, FLAG_ME, NULL,
     "Name qmail-remote sends in EHLO and HELO."},
    {"idhost", KIND_LINE, FLAG_ME, NULL,
     "Host name in Message-IDs made by qmail-inject; QMAILIDHOST "
     "overrides it."},
    {"localiphost", KIND_LINE, FLAG_ME, NULL,
     "Name that replaces [our.ip] in recipient addresses in qmail-smtpd."},
    {"locals", KIND_LIST, FLAG_ME, NULL,
     "Domains whose mail is delivered locally."},
    {"me", KIND_LINE, 0, "none: this file must be set",
     "This host's fully qualified domain name; most other files default "
     "to it."},
    {"morercpthosts", KIND_LIST, 0, "none",
     "More domains to accept mail for, compiled into morercpthosts.cdb."},
    {"morercpthosts.cdb", KIND_FILE, 0, "absent: only rcpthosts counts",
     "Compiled morercpthosts, read by qmail-smtpd."},
    {"notlshosts", KIND_DIR, 0, "none",
     "Hosts qmail-remote never tries TLS with, one file per host; "
     "tlshosts wins."},
    {"percenthack", KIND_LIST, 0, "none",
     "Domains where u%h@domain is rewritten to u@h."},
    {"plusdomain", KIND_LINE, FLAG_ME, NULL,
     "Domain that replaces a trailing + in host names in qmail-inject; "
     "QMAILPLUSDOMAIN overrides it."},
    {"pop3capabilities", KIND_LIST, 0, "the built-in set",
     "Extra capabilities qmail-authup advertises for pop3."},
    {"pop3greeting", KIND_LINE, FLAG_ME, NULL,
     "Greeting qmail-authup sends for pop3."},
    {"qmqpservers", KIND_LIST, 0, "none",
     "IP addresses of the QMQP servers qmail-qmqpc tries, in order."},
    {"queuelifetime", KIND_NUMBER, 0, "604800",
     "Seconds in the queue after which a temporary failure becomes "
     "permanent."},
    {"rcpthosts", KIND_LIST, 0, "none: mail for any domain is accepted",
     "Domains qmail-smtpd accepts mail for; .domain matches its "
     "subdomains; RELAYCLIENT bypasses the check."},
    {"rewrite", KIND_LIST, 0,
     "*.:, =:defaulthost, *+:.plusdomain, "
     "?:.defaultdomain",
     "Host-rewriting rules of qmail-inject and qmail-ofmipd "
     "(rewriting(5))."},
    {"rsa2048.pem", KIND_FILE, 0, "absent",
     "Temporary RSA key for TLS, made by update_tmprsadh."},
    {"servercert.pem", KIND_FILE, 0,
     "absent: qmail-smtpd does not offer STARTTLS",
     "Certificate and private key for STARTTLS in qmail-smtpd."},
    {"smtpcapabilities", KIND_LIST, 0, "the built-in set",
     "Extra capabilities qmail-authup advertises for smtp."},
    {"smtpgreeting", KIND_LINE, FLAG_ME, NULL,
     "Text after 220 in the SMTP greeting."},
    {"smtproutes", KIND_LIST, FLAG_HIDE_AFTER_BLANK,
     "none: mail goes to the MX hosts",
     "Routes for qmail-remote: domain:relay[:port]; .domain matches "
     "subdomains; :relay is the default route; an empty relay means the "
     "MX hosts; \"user password\" after a route gives AUTH credentials "
     "(the file must then be private, as authroutes)."},
    {"timeoutconnect", KIND_NUMBER, 0, "60",
     "Seconds qmail-remote waits for a connection."},
    {"timeoutpop3d", KIND_NUMBER, 0, "1200",
     "Seconds qmail-authup waits for each pop3 read or write."},
    {"timeoutremote", KIND_NUMBER, 0, "1200",
     "Seconds qmail-remote waits for each read or write."},
    {"timeoutsmtpd", KIND_NUMBER, 0, "1200",
     "Seconds qmail-smtpd waits for each read or write."},
    {"tlsclientciphers", KIND_LIST, 0, "the OpenSSL default",
     "Cipher strings for TLS in qmail-remote, joined with :."},
    {"tlsclients", KIND_LIST, 0, "none",
     "Addresses whose verified client certificate lets a client relay."},
    {"tlshosts", KIND_DIR, 0, "none: TLS is opportunistic everywhere",
     "Hosts that need verified TLS, one FQDN.pem CA bundle each; with "
     "exhaustivelist, TLS is tried with no other host."},
    {"tlsserverciphers", KIND_LIST, 0, "the OpenSSL default",
     "Cipher strings for TLS in qmail-smtpd, joined with :; TLSCIPHERS "
     "overrides them."},
    {"virtualdomains", KIND_LIST, 0, "none",
     "user@domain:prepend, domain:prepend or .domain:prepend; their mail "
     "is delivered locally to prepend-user."},
};

#define NCONTROLS (sizeof controls / sizeof controls[0])

/* --- output --- */

static struct buf out;
static char outspace[BUF_SIZE];
static int trouble; /* something could not be read: exit 111 at the end */

static void out_put(const void *p, size_t n)
{
	if (buf_put(&out, p, n) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

static void out_str(const char *s)
{
	out_put(s, strlen(s));
}

static void out_num(unsigned long long n)
{
	if (buf_putnum(&out, n) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

static void out_visible(const char *s, size_t n)
{
	if (buf_putvisible(&out, s, n) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

static void out_visibles(const char *s)
{
	out_visible(s, strlen(s));
}

/* One indented line of a section. */
static void out_item(const char *s, size_t n)
{
	out_str("  ");
	out_visible(s, n);
	out_str("\n");
}

/* Trouble is shown in the section and reported on stderr, and makes the
 * exit code 111. */
static void out_trouble(const char *path, const char *why)
{
	out_str("  Trouble: ");
	out_str(why);
	out_str("\n");
	log_warn("trouble with %s/%s: %s", home_dir(), path, why);
	trouble = 1;
}

static void out_problem(const char *path)
{
	out_trouble(path, errstr(errno));
}

/* --- names in a directory, sorted --- */

struct names {
	struct str all; /* NUL-separated */
	const char **sorted;
	size_t n;
};

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int sort_names(struct names *nm)
{
	size_t pos = 0, bytes;
	const char *name;

	if (nm->n == 0)
		return 0;
	if (size_mul(nm->n, sizeof *nm->sorted, &bytes) < 0)
		return -1;
	nm->sorted = malloc(bytes);
	if (!nm->sorted)
		return -1;
	for (size_t i = 0; (name = ctl_next(&nm->all, &pos)); i++)
		nm->sorted[i] = name;
	qsort(nm->sorted, nm->n, sizeof *nm->sorted, by_name);
	return 0;
}

/* Every name but . and .. Returns 0, or -1 with errno. */
static int read_names(const char *dir, struct names *nm)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int saved;

	*nm = (struct names){STR_INIT, NULL, 0};
	if (!d)
		return -1;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (str_appends(&nm->all, de->d_name) < 0 ||
		    str_append0(&nm->all) < 0)
			log_nomem();
		nm->n++;
	}
	saved = errno;
	closedir(d);
	if (saved) {
		errno = saved;
		return -1;
	}
	if (sort_names(nm) < 0)
		log_nomem();
	return 0;
}

static void free_names(struct names *nm)
{
	str_free(&nm->all);
	free(nm->sorted);
}

/* --- one section per control file --- */

static void out_default(const struct control *c, const struct str *me,
			int have_me)
{
	out_str("  (Default.) ");
	if (c->flags & FLAG_ME) {
		if (have_me) {
			out_str("same as me: ");
			out_visible(me->s, me->len);
		} else {
			out_str("same as me, which is not set");
		}
	} else {
		out_visibles(c->dflt);
	}
	out_str("\n");
}

static void show_line(const struct control *c, const char *path,
		      const struct str *me, int have_me)
{
	struct str v = STR_INIT;
	int r = ctl_line(path, &v, NULL);

	if (r < 0)
		out_problem(path);
	else if (r == 0)
		out_default(c, me, have_me);
	else if (v.len == 0)
		out_str("  (Empty.)\n");
	else
		out_item(v.s, v.len);
	str_free(&v);
}

static void show_number(const struct control *c, const char *path,
			const struct str *me, int have_me)
{
	unsigned long n;
	struct str raw = STR_INIT;
	int r = ctl_ulong(path, &n, 0);

	if (r > 0) {
		out_str("  ");
		out_num(n);
		out_str("\n");
	} else if (r == 0) {
		out_default(c, me, have_me);
	} else if ((errno == EINVAL || errno == ERANGE) &&
		   ctl_line(path, &raw, NULL) > 0) {
		out_str("  ");
		out_visible(raw.s, raw.len);
		out_str("\n");
		out_trouble(path, "not a usable number");
	} else {
		out_problem(path);
	}
	str_free(&raw);
}

/* An entry up to its first blank, for files that may hold credentials
 * after it. */
static size_t public_len(const char *entry)
{
	return strcspn(entry, " \t|");
}

static void show_list(const struct control *c, const char *path,
		      const struct str *me, int have_me)
{
	struct str v = STR_INIT;
	size_t pos = 0, count = 0;
	const char *e;
	int r = ctl_list(path, &v);

	if (r < 0) {
		out_problem(path);
	} else if (r == 0) {
		out_default(c, me, have_me);
	} else if (c->flags & FLAG_SECRET) {
		while (ctl_next(&v, &pos))
			count++;
		out_str("  ");
		out_num(count);
		out_str(count == 1 ? " entry" : " entries");
		out_str(" (contents not shown: secret)\n");
	} else if (v.len == 0) {
		out_str("  (No entries.)\n");
	} else {
		while ((e = ctl_next(&v, &pos))) {
			size_t n = strlen(e);
			if ((c->flags & FLAG_HIDE_AFTER_BLANK) &&
			    public_len(e) < n) {
				out_str("  ");
				out_visible(e, public_len(e));
				out_str(" (the rest is not shown)\n");
			} else {
				out_item(e, n);
			}
		}
	}
	/* The file may hold secrets: leave none of it in memory. */
	str_wipe(&v);
}

static void show_file(const struct control *c, const char *path,
		      const struct str *me, int have_me)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			out_trouble(path, "not a regular file");
			return;
		}
		out_str("  Present: ");
		out_num((unsigned long long)st.st_size);
		out_str(" bytes\n");
	} else if (errno != ENOENT) {
		out_problem(path);
	} else if (lstat(path, &st) == 0) {
		out_trouble(path, "a symbolic link to nothing");
	} else {
		out_default(c, me, have_me);
	}
}

static void show_dir(const struct control *c, const char *path,
		     const struct str *me, int have_me)
{
	struct names nm;

	if (read_names(path, &nm) < 0) {
		if (errno == ENOENT)
			out_default(c, me, have_me);
		else
			out_problem(path);
		return;
	}
	if (nm.n == 0)
		out_str("  (No entries.)\n");
	for (size_t i = 0; i < nm.n; i++)
		out_item(nm.sorted[i], strlen(nm.sorted[i]));
	free_names(&nm);
}

static void show_control(const struct control *c, const struct str *me,
			 int have_me)
{
	static void (*const show[])(const struct control *, const char *,
				    const struct str *, int) = {
	    [KIND_LINE] = show_line, [KIND_NUMBER] = show_number,
	    [KIND_LIST] = show_list, [KIND_FILE] = show_file,
	    [KIND_DIR] = show_dir,
	};
	struct str path = STR_INIT;

	if (str_copys(&path, "control/") < 0 || str_appends(&path, c->name) < 0)
		log_nomem();
	out_str("\n");
	out_str(c->name);
	out_str(": ");
	out_str(c->meaning);
	out_str("\n");
	/* A secret file is read only as a list, whatever its kind, so that
	 * no code path can print its contents. */
	if (c->flags & FLAG_SECRET)
		show_list(c, path.s, me, have_me);
	else
		show[c->kind](c, path.s, me, have_me);
	str_free(&path);
}

/* --- files nobody reads --- */

static int is_known(const char *name)
{
	for (size_t i = 0; i < NCONTROLS; i++)
		if (!strcmp(controls[i].name, name))
			return 1;
	return 0;
}

static void show_unrecognised(void)
{
	struct names nm;
	int first = 1;

	if (read_names("control", &nm) < 0) {
		out_str("\ncontrol:\n");
		out_problem("control");
		return;
	}
	for (size_t i = 0; i < nm.n; i++) {
		if (is_known(nm.sorted[i]))
			continue;
		if (first)
			out_str("\n");
		first = 0;
		out_visibles(nm.sorted[i]);
		out_str(": unrecognised.\n");
	}
	free_names(&nm);
}

/* --- what is compiled in and found at run time --- */

static void show_account(const char *label, enum role r)
{
	struct roleid id;

	out_str("  ");
	out_str(label);
	out_str(": ");
	if (roles_lookup(r, &id) < 0) {
		if (errno == ENOENT) {
			out_str("no such account\n");
			return;
		}
		int e = errno;
		out_str("unable to look it up\n");
		errno = e;
		log_warn_sys("unable to look up the account for %s", label);
		trouble = 1;
		return;
	}
	struct passwd *pw = getpwuid(id.uid);
	out_str("user ");
	out_visibles(pw ? pw->pw_name : "?");
	out_str(" (uid ");
	out_num(id.uid);
	out_str("), ");
	struct group *gr = getgrgid(id.gid);
	out_str("group ");
	out_visibles(gr ? gr->gr_name : "?");
	out_str(" (gid ");
	out_num(id.gid);
	out_str(")\n");
}

static void show_compiled(void)
{
	int instance = home_is_instance();

	out_str("qmail home directory: ");
	out_visibles(home_dir());
	out_str("\ncompiled-in prefix: ");
	out_visibles(AUTO_PREFIX);
	out_str("\nsubdirectory split: ");
	out_num(AUTO_SPLIT);
	out_str(instance ? "\ninstance: yes (every role is the owner of "
			   "INSTANCE)\n"
			 : "\ninstance: no\n");
	out_str("role accounts:\n");
	show_account("send", ROLE_SEND);
	show_account("remote", ROLE_REMOTE);
	show_account("queue", ROLE_QUEUE);
	show_account("log", ROLE_LOG);
	show_account("daemon", ROLE_DAEMON);
	show_account("alias", ROLE_ALIAS);
}

int main(int argc, char **argv)
{
	struct str me = STR_INIT;
	int have_me;

	(void)argc;
	log_init(argv[0]);
	buf_init(&out, 1, outspace, sizeof outspace, 0);
	home_chdir();
	show_compiled();
	/* A broken control/me is reported in its own section. */
	have_me = ctl_line("control/me", &me, NULL) > 0 && me.len > 0;
	for (size_t i = 0; i < NCONTROLS; i++)
		show_control(&controls[i], &me, have_me);
	show_unrecognised();
	if (buf_flush(&out) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
	str_free(&me);
	return trouble ? EXIT_TEMP : 0;
}
