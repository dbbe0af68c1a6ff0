/*
 * qmail-inject: preprocess a mail message and hand it to qmail-queue.
 *
 * It reads the header into memory (bounded by header.h), fixes it with
 * the shared engine (mail/inject.h), checks the whole envelope, and only
 * then starts qmail-queue and streams the body through: the body is
 * never held in memory, and nothing is queued when the envelope is bad.
 * It must never pass anything through a shell and never exit 0 unless
 * qmail-queue said the message is queued (or -n printed it).
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/ctl.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"
#include "mail/header.h"
#include "mail/inject.h"
#include "mail/qq.h"

struct args {
	enum inject_rcpt_mode mode;
	int print;	    /* -n */
	const char *sender; /* -f */
	const char *name;   /* -F */
	const char *const *rcpts;
	size_t nrcpts;
};

static _Noreturn void usage(void)
{
	log_fatal(EXIT_PERM, "usage: qmail-inject [-nNaAhH] [-f sender] "
			     "[-F name] [recipient ...]");
}

/* The letters that take no value; 0 for any other letter. */
static int flag_option(struct args *a, char c)
{
	switch (c) {
	case 'a':
		a->mode = INJECT_RCPT_GIVEN;
		return 1;
	case 'A':
		a->mode = INJECT_RCPT_DEFAULT;
		return 1;
	case 'h':
		a->mode = INJECT_RCPT_HEADER;
		return 1;
	case 'H':
		a->mode = INJECT_RCPT_BOTH;
		return 1;
	case 'n':
		a->print = 1;
		return 1;
	case 'N':
		a->print = 0;
		return 1;
	default:
		return 0;
	}
}

/* Options come first; "--" or the first non-option ends them. A value
 * is the rest of its argument or, when that is empty, the next one. */
static void parse_args(int argc, char **argv, struct args *a)
{
	int i;

	memset(a, 0, sizeof *a);
	a->mode = INJECT_RCPT_DEFAULT;
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *value;
		if (arg[0] != '-' || arg[1] == '\0')
			break;
		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		for (size_t k = 1; arg[k]; k++) {
			if (flag_option(a, arg[k]))
				continue;
			if (arg[k] != 'f' && arg[k] != 'F')
				usage();
			if (arg[k + 1])
				value = arg + k + 1;
			else if (i + 1 < argc)
				value = argv[++i];
			else
				usage();
			if (arg[k] == 'f')
				a->sender = value;
			else
				a->name = value;
			break;
		}
	}
	a->rcpts = (const char *const *)(argv + i);
	a->nrcpts = (size_t)(argc - i);
}

static const char *first_env(const char *const *names)
{
	for (; *names; names++) {
		const char *v = env_get(*names);
		if (v && *v)
			return v;
	}
	return NULL;
}

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return 1;
	return 0;
}

static const char *checked_env(const char *value, const char *what)
{
	if (has_control(value))
		log_fatal(EXIT_PERM, "the %s contains a control character",
			  what);
	return value;
}

static const char *login_name(void)
{
	static const char *const names[] = {"QMAILUSER", "MAILUSER", "USER",
					    "LOGNAME", NULL};
	const char *v = first_env(names);
	struct passwd *pw;

	if (v)
		return checked_env(v, "user name (QMAILUSER etc.)");
	pw = getpwuid(getuid());
	if (pw && pw->pw_name && *pw->pw_name && !has_control(pw->pw_name))
		return pw->pw_name;
	return "anonymous";
}

/* The personal name goes into a header: line ends would break it. */
static const char *personal_name(const char *given, struct str *keep)
{
	static const char *const names[] = {"QMAILNAME", "MAILNAME", "NAME",
					    NULL};
	const char *v = given ? given : first_env(names);

	if (!v)
		return NULL;
	if (str_copys(keep, v) < 0)
		log_nomem();
	for (size_t i = 0; i < keep->len; i++)
		if ((unsigned char)keep->s[i] < 32 || keep->s[i] == 127)
			keep->s[i] = ' ';
	return keep->s;
}

static unsigned inject_flags(void)
{
	const char *v = env_get("QMAILINJECT");
	unsigned flags = 0;

	for (; v && *v; v++) {
		switch (*v) {
		case 'c':
			flags |= INJECT_FROM_COMMENT;
			break;
		case 's':
			flags |= INJECT_NO_RETURN_PATH;
			break;
		case 'f':
			flags |= INJECT_DELETE_FROM;
			break;
		case 'i':
			flags |= INJECT_DELETE_MSGID;
			break;
		case 'r':
			flags |= INJECT_VERP_RCPT;
			break;
		case 'm':
			flags |= INJECT_VERP_MESSAGE;
			break;
		default:
			break; /* unknown letters are ignored */
		}
	}
	return flags;
}

/* QMAILMFTFILE is read before the switch to the home, so a relative
 * name means what the user meant. */
static int read_mft(struct str *list)
{
	const char *path = env_get("QMAILMFTFILE");
	int r;

	if (!path || !*path)
		return 0;
	r = ctl_list(path, list);
	if (r < 0)
		log_fatal_sys(EXIT_TEMP, "unable to read %s", path);
	return 1;
}

static void load_settings(struct inject_settings *s)
{
	if (inject_settings_load(s) == 0)
		return;
	if (errno == EINVAL)
		log_fatal(EXIT_TEMP, "invalid instruction in %s", s->failed.s);
	if (errno == ENOMEM)
		log_nomem();
	log_fatal_sys(EXIT_TEMP, "unable to read %s", s->failed.s);
}

static void read_header(struct header *h, struct buf *in)
{
	if (header_read(h, in) == 0)
		return;
	if (errno == EMSGSIZE)
		log_fatal(EXIT_PERM,
			  "header too long (the limits are %zu "
			  "bytes a line and %zu bytes in all)",
			  HEADER_LINE_MAX, HEADER_MAX);
	if (errno == ENOMEM || errno == EOVERFLOW)
		log_nomem();
	log_fatal_sys(EXIT_TEMP, "unable to read the message");
}

static void fix(const struct header *h, const struct inject_opts *o,
		struct inject_out *out)
{
	if (inject_fix(h, o, out) == 0)
		return;
	if (errno == EINVAL || errno == ENAMETOOLONG)
		log_fatal(EXIT_PERM, "%s",
			  out->error.s ? out->error.s : "invalid address");
	log_nomem();
}

/* What sits between the fixed header and the rest of the body. */
static void separator(const struct header *h, const char **p, size_t *n)
{
	static const char lf[] = "\n", crlf[] = "\r\n";

	*p = "";
	*n = 0;
	if (h->end == HEADER_BODYLINE) {
		*p = h->crlf ? crlf : lf;
		*n = h->crlf ? 2 : 1;
	}
}

/* Sink for the message: qmail-queue or, with -n, standard output. */
struct sink {
	struct qq *q;
	struct buf *out;
	int failed; /* errno of the first failed write, or 0 */
};

static void put(struct sink *s, const char *p, size_t n)
{
	if (s->q)
		qq_put(s->q, p, n);
	else if (!s->failed && buf_put(s->out, p, n) < 0)
		s->failed = errno ? errno : EIO;
}

static void write_message(struct sink *s, const struct header *h,
			  const struct inject_out *out, struct buf *in)
{
	const char *sep;
	size_t seplen;
	ssize_t r;

	put(s, out->header.s, out->header.len);
	separator(h, &sep, &seplen);
	put(s, sep, seplen);
	put(s, h->rest.s ? h->rest.s : "", h->rest.len);
	if (h->end == HEADER_EOF)
		return;
	while ((r = buf_fill(in)) > 0) {
		put(s, buf_peek(in), (size_t)r);
		buf_skip(in, (size_t)r);
	}
	if (r < 0) {
		if (s->q)
			qq_abort(s->q);
		log_fatal_sys(EXIT_TEMP, "unable to read the message");
	}
}

static _Noreturn void print_message(const struct header *h,
				    const struct inject_out *out,
				    struct buf *in)
{
	char space[BUF_SIZE];
	struct buf o;
	struct sink s = {NULL, &o, 0};

	buf_init(&o, 1, space, sizeof space, 0);
	write_message(&s, h, out, in);
	if (!s.failed && buf_flush(&o) < 0)
		s.failed = errno ? errno : EIO;
	if (s.failed) {
		errno = s.failed;
		log_fatal_sys(EXIT_TEMP, "unable to write the message");
	}
	_exit(EXIT_OK);
}

static _Noreturn void queue_message(const struct header *h,
				    const struct inject_out *out,
				    struct buf *in)
{
	static struct qq q;
	struct sink s = {&q, NULL, 0};
	struct str reply = STR_INIT;
	const char *text;
	int code;

	if (out->nrcpts == 0)
		log_fatal(EXIT_PERM, "no recipients");
	if (qq_start(&q) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to run qmail-queue");
	write_message(&s, h, out, in);
	code = qq_finish_list(&q, out->sender.s, &out->rcpts, &reply);
	if (code == 0)
		_exit(EXIT_OK);
	text = qq_text(&reply, code);
	/* The reply is SMTP-style; the code adds nothing here. */
	if (strlen(text) > 4 && text[3] == ' ')
		text += 4;
	log_fatal(qq_text(&reply, code)[0] == '5' ? EXIT_PERM : EXIT_TEMP,
		  "%s", text);
}

/* Who the message is from, by default: From and the envelope sender. */
static void identity(struct inject_opts *o, const struct inject_settings *set)
{
	static const char *const hosts[] = {"QMAILHOST", "MAILHOST", NULL};
	const char *v;

	o->user = login_name();
	v = first_env(hosts);
	o->host = v ? checked_env(v, "host name (QMAILHOST or MAILHOST)")
		    : set->defaulthost.s;
	v = env_get("QMAILSUSER");
	o->suser = v && *v ? checked_env(v, "QMAILSUSER") : o->user;
	v = env_get("QMAILSHOST");
	o->shost = v && *v ? checked_env(v, "QMAILSHOST") : o->host;
}

/* Date and Message-ID: the microseconds keep Message-IDs apart when a
 * process ID comes back within the same second. */
static void timestamp(struct inject_opts *o)
{
	struct timespec now;

	if (clock_gettime(CLOCK_REALTIME, &now) < 0) {
		now.tv_sec = time(NULL);
		now.tv_nsec = 0;
	}
	o->now = now.tv_sec;
	o->pid = (unsigned long)getpid();
	o->seq = (unsigned long)(now.tv_nsec / 1000);
}

int main(int argc, char **argv)
{
	struct args a;
	struct inject_settings set;
	struct inject_opts o;
	struct inject_out out;
	struct header h;
	struct str mft = STR_INIT, name = STR_INIT;
	char space[BUF_SIZE];
	struct buf in;

	log_init(argv[0]);
	signal(SIGPIPE, SIG_IGN);
	parse_args(argc, argv, &a);

	memset(&o, 0, sizeof o);
	if (read_mft(&mft))
		o.mft = &mft;
	home_chdir();
	load_settings(&set);
	o.rw = &set.rw;
	o.idhost = set.idhost.s;
	identity(&o, &set);
	o.name = personal_name(a.name, &name);
	o.sender = a.sender;
	o.rcpts = a.rcpts;
	o.nrcpts = a.nrcpts;
	o.mode = a.mode;
	o.flags = inject_flags();
	timestamp(&o);

	buf_init(&in, 0, space, sizeof space, 0);
	header_init(&h);
	read_header(&h, &in);
	inject_out_init(&out);
	fix(&h, &o, &out);
	if (a.print)
		print_message(&h, &out, &in);
	queue_message(&h, &out, &in);
}
