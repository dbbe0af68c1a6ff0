/*
 * qmail-local: deliver one message as the user's .qmail file says
 * (qmail-local(8), dot-qmail(5)).
 *
 * Run by qmail-lspawn as the mailbox owner:
 *   qmail-local [-nN] -- user homedir local dash ext domain sender dflt
 * The message is on fd 0 (a seekable queue file), the report goes to fd 1
 * and the exit code says 0 delivered, 100 bounce, 111 try again.
 *
 * It must never hand envelope data to a shell other than through the
 * environment, never deliver anything from a .qmail it could not parse
 * in full, and never report success before the data is on disk.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/checked.h"
#include "lib/env.h"
#include "lib/errstr.h"
#include "lib/exitcode.h"
#include "lib/str.h"
#include "mail/child.h"
#include "mail/dotqmail.h"
#include "mail/forward.h"
#include "mail/maildir.h"
#include "mail/mbox.h"
#include "mail/qq.h"

/* Seconds to wait for an mbox lock, as qmail does. */
#define MBOX_LOCK_WAIT 30
/* Home directory bits that stop delivery: world-writable. */
#define HOME_BAD_MODE 002
/* .qmail bits that stop delivery: group- or world-writable. */
#define DOTQMAIL_BAD_MODE 022

struct delivery {
	const char *user, *home, *local, *dash, *ext, *host, *sender, *dflt;
	int doit;	   /* 0 with -n: describe instead of delivering */
	struct str recip;  /* local@host as written in Delivered-To */
	struct str dtline; /* "Delivered-To: local@host\n" */
	struct str rpline; /* "Return-Path: <sender>\n" */
	struct str ufline; /* "From sender date\n" */
	struct str newsender;
	struct str qmail;    /* the .qmail file used, for messages */
	struct str forwards; /* NUL-terminated forward addresses */
	unsigned long nfile, nforward, nprogram;
	pid_t qp;
};

static char report_space[1024];
static struct buf report;

/* --- the report on fd 1 --- */

static void say(const char *s)
{
	buf_puts(&report, s);
}

/* Print the NULL-terminated strings as one line and exit. */
static _Noreturn void die(int code, ...)
{
	va_list ap;
	const char *s;

	va_start(ap, code);
	while ((s = va_arg(ap, const char *)) != NULL)
		say(s);
	va_end(ap);
	say("\n");
	buf_flush(&report);
	_exit(code);
}

/* Exit without a text of our own: the program's output explains. */
static _Noreturn void finish(int code)
{
	buf_flush(&report);
	_exit(code);
}

static _Noreturn void die_nomem(void)
{
	die(EXIT_TEMP, "Out of memory. (#4.3.0)", (char *)NULL);
}

static _Noreturn void usage(void)
{
	die(EXIT_PERM,
	    "qmail-local: usage: qmail-local [ -nN ] user homedir local dash "
	    "ext domain sender defaultdelivery",
	    (char *)NULL);
}

static _Noreturn void die_read(void)
{
	die(EXIT_TEMP, "Unable to read message: ", errstr(errno),
	    ". (#4.3.0)", (char *)NULL);
}

/* --- setting up --- */

static void parse_args(struct delivery *d, int argc, char **argv)
{
	int i = 1;

	d->doit = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		for (const char *o = argv[i] + 1; *o; o++) {
			if (*o == 'n')
				d->doit = 0;
			else if (*o == 'N')
				d->doit = 1;
			else
				usage();
		}
	}
	if (argc - i != 8)
		usage();
	d->user = argv[i];
	d->home = argv[i + 1];
	d->local = argv[i + 2];
	d->dash = argv[i + 3];
	d->ext = argv[i + 4];
	d->host = argv[i + 5];
	d->sender = argv[i + 6];
	d->dflt = argv[i + 7];
	if (d->home[0] != '/')
		usage();
}

static void enter_home(const struct delivery *d)
{
	struct stat st;

	if (chdir(d->home) < 0)
		die(EXIT_TEMP, "Unable to switch to ", d->home, ": ",
		    errstr(errno), ". (#4.3.0)", (char *)NULL);
	if (stat(".", &st) < 0)
		die(EXIT_TEMP,
		    "Unable to stat home directory: ", errstr(errno),
		    ". (#4.3.0)", (char *)NULL);
	if (st.st_mode & HOME_BAD_MODE)
		die(EXIT_TEMP, "Uh-oh: home directory is writable. (#4.7.0)",
		    (char *)NULL);
	if (st.st_mode & S_ISVTX) {
		/* The user is editing .qmail: wait for the finished file. */
		if (d->doit)
			die(EXIT_TEMP,
			    "Home directory is sticky: user is editing his "
			    ".qmail file. (#4.2.1)",
			    (char *)NULL);
		say("Warning: home directory is sticky.\n");
	}
}

static void set_env(const char *name, const char *value)
{
	if (env_set(name, value) < 0)
		die_nomem();
}

static int atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 128)
		return 1;
	return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 5322: a local part that is not a dot-atom must be quoted. */
static int needs_quotes(const char *p, size_t n)
{
	if (n == 0 || p[0] == '.' || p[n - 1] == '.')
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '.' ? p[i + 1] == '.' : !atext((unsigned char)p[i]))
			return 1;
	}
	return 0;
}

/* The address as it belongs between angle brackets. */
static int quote_address(struct str *out, const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t n = at ? (size_t)(at - addr) : strlen(addr);

	if (!*addr || !needs_quotes(addr, n))
		return str_appends(out, addr);
	if (str_appendc(out, '"') < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if ((addr[i] == '"' || addr[i] == '\\') &&
		    str_appendc(out, '\\') < 0)
			return -1;
		if (str_appendc(out, addr[i]) < 0)
			return -1;
	}
	if (str_appendc(out, '"') < 0)
		return -1;
	return at ? str_appends(out, at) : 0;
}

/* A header line must stay one line whatever the envelope holds. */
static void unfold(struct str *s, size_t from)
{
	for (size_t i = from; i < s->len; i++)
		if (s->s[i] == '\n')
			s->s[i] = '_';
}

static void build_lines(struct delivery *d)
{
	if (str_copys(&d->recip, d->local) < 0 ||
	    str_appendc(&d->recip, '@') < 0 ||
	    str_appends(&d->recip, d->host) < 0)
		die_nomem();
	unfold(&d->recip, 0);
	if (str_copys(&d->dtline, "Delivered-To: ") < 0 ||
	    str_appends(&d->dtline, d->recip.s) < 0 ||
	    str_appendc(&d->dtline, '\n') < 0)
		die_nomem();
	if (str_copys(&d->rpline, "Return-Path: <") < 0 ||
	    quote_address(&d->rpline, d->sender) < 0)
		die_nomem();
	unfold(&d->rpline, 0);
	if (str_appends(&d->rpline, ">\n") < 0 ||
	    mbox_fromline(&d->ufline, d->sender, time(NULL)) < 0)
		die_nomem();
}

/* EXT2..4: EXT after its first, second, third dash ("" when none). */
static void set_ext_env(const char *ext)
{
	static const char *const names[] = {"EXT2", "EXT3", "EXT4"};

	set_env("EXT", ext);
	for (size_t k = 0; k < 3; k++) {
		ext += strcspn(ext, "-");
		if (*ext)
			ext++;
		set_env(names[k], ext);
	}
}

/* HOST2..4: HOST before its last, second-to-last, third-to-last dot
 * (unchanged when there are not that many dots). */
static void set_host_env(const char *host)
{
	static const char *const names[] = {"HOST2", "HOST3", "HOST4"};
	struct str part = STR_INIT;
	size_t end = strlen(host);

	set_env("HOST", host);
	for (size_t k = 0; k < 3; k++) {
		size_t i = end;
		while (i > 0 && host[i - 1] != '.')
			i--;
		if (i > 0)
			end = i - 1;
		if (str_copy(&part, host, end) < 0)
			die_nomem();
		set_env(names[k], part.s);
	}
	str_free(&part);
}

static void set_envelope_env(const struct delivery *d)
{
	set_env("SENDER", d->sender);
	set_env("RECIPIENT", d->recip.s);
	set_env("USER", d->user);
	set_env("HOME", d->home);
	set_env("LOCAL", d->local);
	set_env("DTLINE", d->dtline.s);
	set_env("RPLINE", d->rpline.s);
	set_env("UFLINE", d->ufline.s);
	set_ext_env(d->ext);
	set_host_env(d->host);
}

/* --- the message --- */

static char msg_space[BUF_SIZE];

/* Every delivery reads the message from its start. */
static struct buf *rewind_message(void)
{
	static struct buf in;

	if (lseek(0, 0, SEEK_SET) < 0)
		die(EXIT_TEMP, "Unable to rewind message. (#4.3.0)",
		    (char *)NULL);
	buf_init(&in, 0, msg_space, sizeof msg_space, 0);
	return &in;
}

static int same_ascii_nocase(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return 0;
	}
	return 1;
}

/* Is line "Delivered-To: <recip>", ignoring case and blanks around? */
static int is_my_dtline(const struct str *line, const struct str *recip)
{
	static const char name[] = "Delivered-To";
	const size_t nlen = sizeof name - 1;
	const char *p = line->s, *end = line->s + line->len;

	if (line->len < nlen || !same_ascii_nocase(p, name, nlen))
		return 0;
	p += nlen;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p++ != ':')
		return 0;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && strchr(" \t\r\n", end[-1]))
		end--;
	return (size_t)(end - p) == recip->len &&
	       same_ascii_nocase(p, recip->s, recip->len);
}

static int is_header_end(const struct str *line)
{
	return line->len == 0 || (line->len == 1 && line->s[0] == '\n') ||
	       (line->len == 2 && line->s[0] == '\r' && line->s[1] == '\n');
}

static void check_loop(const struct delivery *d)
{
	struct buf *in = rewind_message();
	struct str line = STR_INIT;
	size_t max;

	if (size_add(d->recip.len, 1024, &max) < 0)
		die_nomem();
	for (;;) {
		str_clear(&line);
		int r = buf_getline(in, &line, '\n', max);
		if (r < 0 && errno == EMSGSIZE) {
			/* Far longer than our own line: cannot be it. */
			if (buf_skipline(in, '\n') < 0)
				die_read();
			continue;
		}
		if (r < 0)
			die_read();
		if (is_header_end(&line))
			break;
		if (is_my_dtline(&line, &d->recip))
			die(EXIT_PERM,
			    "This message is looping: it already has my "
			    "Delivered-To line. (#5.4.6)",
			    (char *)NULL);
		if (r == 0)
			break;
	}
	str_free(&line);
}

/* --- finding the instructions --- */

static _Noreturn void die_open(const char *name)
{
	die(EXIT_TEMP, "Unable to open ", name, ": ", errstr(errno),
	    ". (#4.3.0)", (char *)NULL);
}

/* Reads the .qmail file into text. Returns 1 when the file has its
 * execute bit set (forwards only), 0 otherwise; leaves text empty when
 * there is no file or an empty one. */
static int find_instructions(struct delivery *d, struct str *text)
{
	struct dq_found f = DQ_FOUND_INIT;
	int r = dotqmail_find(d->dash, d->ext, &f);
	int forward_only;

	if (r < 0)
		die_open(f.name.s ? f.name.s : ".qmail");
	if (r == 0) {
		if (*d->dash)
			die(EXIT_PERM,
			    "Sorry, no mailbox here by that name. (#5.1.1)",
			    (char *)NULL);
		str_free(&f.name);
		return 0;
	}
	if (f.mode & DOTQMAIL_BAD_MODE)
		die(EXIT_TEMP, "Uh-oh: .qmail file is writable. (#4.7.0)",
		    (char *)NULL);
	if (f.deflt != DOTQMAIL_NOT_DEFAULT)
		set_env("DEFAULT", d->ext + f.deflt);
	forward_only = (f.mode & S_IXUSR) != 0;
	if (dotqmail_read(f.fd, text) < 0)
		die(EXIT_TEMP, "Unable to read ", f.name.s, ": ",
		    errstr(errno), ". (#4.3.0)", (char *)NULL);
	close(f.fd);
	if (str_copystr(&d->qmail, &f.name) < 0)
		die_nomem();
	str_free(&f.name);
	return forward_only;
}

/* dot-qmail(5): forwards go out from local-owner@domain when
 * .qmail-ext-owner exists (a VERP one with -owner-default too); bounces
 * keep their empty or #@[] sender. */
static int owner_file(const struct delivery *d, const char *suffix)
{
	struct str name = STR_INIT;

	if (str_copys(&name, ".qmail") < 0 || str_appends(&name, d->dash) < 0)
		die_nomem();
	struct str safe = STR_INIT;
	if (dotqmail_safeext(&safe, d->ext) < 0 ||
	    str_append(&name, safe.s, safe.len) < 0 ||
	    str_appends(&name, suffix) < 0)
		die_nomem();
	str_free(&safe);
	int r = dotqmail_exists(name.s);
	if (r < 0)
		die_open(name.s);
	str_free(&name);
	return r;
}

static void set_newsender(struct delivery *d)
{
	if (str_copys(&d->newsender, d->sender) < 0)
		die_nomem();
	if (*d->sender && strcmp(d->sender, "#@[]") != 0 &&
	    owner_file(d, "-owner")) {
		int verp = owner_file(d, "-owner-default");
		if (str_copys(&d->newsender, d->local) < 0 ||
		    str_appends(&d->newsender, verp ? "-owner-@" : "-owner@") <
			0 ||
		    str_appends(&d->newsender, d->host) < 0 ||
		    (verp && str_appends(&d->newsender, "-@[]") < 0))
			die_nomem();
	}
	set_env("NEWSENDER", d->newsender.s);
}

static void parse_instructions(struct delivery *d, struct str *text,
			       int forward_only, struct dq_list *list)
{
	struct dq_error err;
	char num[24];

	if (text->len == 0) {
		/* No .qmail, or an empty one: the default delivery. */
		if (str_copys(text, d->dflt) < 0 ||
		    str_copys(&d->qmail, "the default delivery") < 0)
			die_nomem();
		forward_only = 0;
	}
	if (dotqmail_parse(text, forward_only, list, &err) == 0)
		return;
	if (errno != EINVAL)
		die_nomem();
	snprintf(num, sizeof num, "%zu", err.line);
	die(EXIT_TEMP, "Uh-oh: ", d->qmail.s, " line ", num, ": ", err.why,
	    ". (#4.2.1)", (char *)NULL);
}

/* --- deliveries --- */

static void deliver_maildir(const struct delivery *d, const char *dir)
{
	struct str head = STR_INIT, path = STR_INIT;
	enum maildir_stage stage;

	if (str_copystr(&head, &d->rpline) < 0 ||
	    str_append(&head, d->dtline.s, d->dtline.len) < 0)
		die_nomem();
	if (maildir_deliver(dir, head.s, head.len, rewind_message(), &path,
			    &stage) == 0) {
		str_free(&head);
		str_free(&path);
		return;
	}
	if (stage == MAILDIR_READ)
		die_read();
	die(EXIT_TEMP, "Unable to write Maildir file ", path.len ? path.s : dir,
	    ": ", errstr(errno),
	    stage == MAILDIR_CREATE ? ". (#4.2.1)" : ". (#4.3.0)",
	    (char *)NULL);
}

static void deliver_mbox(const struct delivery *d, const char *file)
{
	struct str head = STR_INIT;
	enum mbox_stage stage;

	if (str_copystr(&head, &d->ufline) < 0 ||
	    str_append(&head, d->rpline.s, d->rpline.len) < 0 ||
	    str_append(&head, d->dtline.s, d->dtline.len) < 0)
		die_nomem();
	if (mbox_deliver(file, head.s, head.len, rewind_message(),
			 MBOX_LOCK_WAIT, &stage) == 0) {
		str_free(&head);
		return;
	}
	switch (stage) {
	case MBOX_OPEN:
		die(EXIT_TEMP, "Unable to open ", file, ": ", errstr(errno),
		    ". (#4.2.1)", (char *)NULL);
	case MBOX_LOCK:
		if (errno == ETIMEDOUT)
			die(EXIT_TEMP,
			    "File has been locked for 30 seconds straight. "
			    "(#4.3.0)",
			    (char *)NULL);
		die(EXIT_TEMP, "Unable to lock ", file, ": ", errstr(errno),
		    ". (#4.3.0)", (char *)NULL);
	case MBOX_READ:
		die_read();
	default:
		die(EXIT_TEMP, "Unable to write ", file, ": ", errstr(errno),
		    ". (#4.3.0)", (char *)NULL);
	}
}

static _Noreturn void exec_shell(const char *command)
{
	signal(SIGPIPE, SIG_DFL);
	/* Its complaints belong in the report, which is fd 1. */
	if (dup2(1, 2) < 0)
		_exit(EXIT_TEMP);
	execl("/bin/sh", "/bin/sh", "-c", command, (char *)NULL);
	die(EXIT_TEMP, "Unable to run /bin/sh: ", errstr(errno), ". (#4.3.0)",
	    (char *)NULL);
}

/* qmail-command(8) exit codes. Returns 1 when the program asked to stop
 * (99). */
static int run_program(const char *command)
{
	rewind_message();
	buf_flush(&report);
	pid_t pid = fork();
	if (pid < 0)
		die(EXIT_TEMP, "Unable to fork: ", errstr(errno),
		    ". (#4.3.0)", (char *)NULL);
	if (pid == 0)
		exec_shell(command);
	int code = child_wait(pid);
	if (code < 0)
		die(EXIT_TEMP, "Unable to wait for child: ", errstr(errno),
		    ". (#4.3.0)", (char *)NULL);
	if (code >= CHILD_SIGNALED)
		die(EXIT_TEMP, "Aack, child crashed. (#4.3.0)", (char *)NULL);
	switch (code) {
	case 0:
		return 0;
	case EXIT_STOP:
		return 1;
	case 100:
	case 64:
	case 65:
	case 70:
	case 76:
	case 77:
	case 78:
	case 112:
		finish(EXIT_PERM);
	default:
		finish(EXIT_TEMP);
	}
}

/* One qmail-queue run for every forward, after all other deliveries. */
static void forward(struct delivery *d)
{
	struct forward_result res = FORWARD_RESULT_INIT;

	rewind_message();
	int r =
	    forward_message(d->dtline.s, d->newsender.s, &d->forwards, &res);
	if (r == 0) {
		d->qp = res.qp;
		str_free(&res.reply);
		return;
	}
	if (res.stage == FORWARD_START)
		die(EXIT_TEMP, "Unable to fork: ", errstr(errno),
		    ". (#4.3.0)", (char *)NULL);
	if (res.stage == FORWARD_READ)
		die_read();
	const char *text = qq_text(&res.reply, res.code);
	int code = text[0] == '5' ? EXIT_PERM : EXIT_TEMP;
	/* "554 text" from qq: the text alone, as qmail reports it. */
	if (strlen(text) > 4 && text[3] == ' ')
		text += 4;
	die(code, "Unable to forward message: ", text, ".", (char *)NULL);
}

static void describe(const char *what, const char *arg)
{
	say(what);
	say(arg);
	say("\n");
}

/* Returns 1 when a program asked to stop. */
static int follow(struct delivery *d, const struct dq_instr *i)
{
	switch (i->kind) {
	case DQ_MAILDIR:
		d->nfile++;
		if (!d->doit)
			describe("maildir ", i->arg);
		else
			deliver_maildir(d, i->arg);
		return 0;
	case DQ_MBOX:
		d->nfile++;
		if (!d->doit)
			describe("mbox ", i->arg);
		else
			deliver_mbox(d, i->arg);
		return 0;
	case DQ_PROGRAM:
		d->nprogram++;
		if (!d->doit) {
			describe("program ", i->arg);
			return 0;
		}
		return run_program(i->arg);
	case DQ_FORWARD:
		d->nforward++;
		if (!d->doit)
			describe("forward ", i->arg);
		else if (str_append(&d->forwards, i->arg, i->len + 1) < 0)
			die_nomem();
		return 0;
	}
	return 0;
}

static void say_num(unsigned long long n)
{
	buf_putnum(&report, n);
}

static void summary(const struct delivery *d)
{
	say("did ");
	say_num(d->nfile);
	say("+");
	say_num(d->nforward);
	say("+");
	say_num(d->nprogram);
	say("\n");
	if (d->qp > 0) {
		say("qp ");
		say_num((unsigned long long)d->qp);
		say("\n");
	}
}

int main(int argc, char **argv)
{
	struct delivery d = {0};
	struct str text = STR_INIT;
	struct dq_list list = DQ_LIST_INIT;

	buf_init(&report, 1, report_space, sizeof report_space, 0);
	umask(077);
	signal(SIGPIPE, SIG_IGN); /* a dead qmail-queue shows in its status */
	parse_args(&d, argc, argv);
	enter_home(&d);
	build_lines(&d);
	set_envelope_env(&d);
	if (env_unset("DEFAULT") < 0)
		die_nomem();
	if (d.doit)
		check_loop(&d);
	int forward_only = find_instructions(&d, &text);
	set_newsender(&d);
	parse_instructions(&d, &text, forward_only, &list);
	for (size_t i = 0; i < list.n; i++)
		if (follow(&d, &list.v[i]))
			break;
	if (d.doit && d.forwards.len)
		forward(&d);
	summary(&d);
	buf_flush(&report);
	return 0;
}
