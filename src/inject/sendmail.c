/*
 * sendmail: the /usr/sbin/sendmail interface, for programs that expect it.
 *
 * It only translates: the options become qmail-inject options and it
 * execs <home>/bin/qmail-inject (or qmail-qread for -bp and mailq,
 * qmail-smtpd for -bs). It never reads the message itself, never runs a
 * shell, and refuses an option it does not know rather than guess.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/checked.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "lib/str.h"

struct args {
	int header;	    /* -t */
	const char *sender; /* -f, -r */
	const char *name;   /* -F */
	char mode;	    /* -b: 'm' (deliver), 'p' (queue), 's' (SMTP) */
	char **rcpts;
	int nrcpts;
};

static _Noreturn void run(const char *prog, char **argv)
{
	struct str path = STR_INIT;

	if (str_copys(&path, home_dir()) < 0 ||
	    str_appends(&path, "/bin/") < 0 || str_appends(&path, prog) < 0)
		log_nomem();
	argv[0] = path.s;
	execv(path.s, argv);
	log_fatal_sys(EXIT_TEMP, "unable to run %s", path.s);
}

static _Noreturn void run_alone(const char *prog)
{
	char *argv[2] = {NULL, NULL};
	run(prog, argv);
}

static _Noreturn void unsupported(const char *what, char c)
{
	log_fatal(EXIT_PERM, "unsupported option %s%c", what, c);
}

/* Options that take a value and mean nothing to qmail. */
static int ignored_with_value(char c)
{
	return c && strchr("BNRVLpeohO", c) != NULL;
}

/* Options without a value that mean nothing to qmail. */
static int ignored_alone(char c)
{
	return c && strchr("imvxUGn", c) != NULL;
}

static void set_mode(struct args *a, const char *value)
{
	if (strcmp(value, "m") == 0 || strcmp(value, "p") == 0 ||
	    strcmp(value, "s") == 0)
		a->mode = value[0];
	else
		log_fatal(EXIT_PERM, "unsupported option -b%s", value);
}

/* Handles option c of arg (at index k); returns 1 when it took a value
 * (the rest of arg or the next argument, *i then moves on). */
static int option(struct args *a, char c, const char *rest, int *i, int argc,
		  char **argv)
{
	const char *value;

	if (c == 't')
		a->header = 1;
	if (c == 't' || ignored_alone(c))
		return 0;
	if (c != 'f' && c != 'r' && c != 'F' && c != 'b' &&
	    !ignored_with_value(c))
		unsupported("-", c);
	if (*rest)
		value = rest;
	else if (*i + 1 < argc)
		value = argv[++*i];
	else
		log_fatal(EXIT_PERM, "option -%c needs a value", c);
	if (c == 'f' || c == 'r')
		a->sender = value;
	else if (c == 'F')
		a->name = value;
	else if (c == 'b')
		set_mode(a, value);
	return 1;
}

static void parse_args(int argc, char **argv, struct args *a)
{
	int i;

	memset(a, 0, sizeof *a);
	a->mode = 'm';
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (arg[0] != '-' || arg[1] == '\0')
			break;
		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		for (size_t k = 1; arg[k]; k++)
			if (option(a, arg[k], arg + k + 1, &i, argc, argv))
				break;
	}
	a->rcpts = argv + i;
	a->nrcpts = argc - i;
}

static _Noreturn void inject(const struct args *a)
{
	size_t n, bytes;
	char **argv;
	size_t j = 1;

	/* Program, mode, -f x, -F x, --, recipients, NULL. */
	if (size_add((size_t)a->nrcpts, 8, &n) < 0 ||
	    size_mul(n, sizeof *argv, &bytes) < 0 || !(argv = malloc(bytes)))
		log_nomem();
	argv[j++] = a->header ? "-H" : "-a";
	if (a->sender) {
		argv[j++] = "-f";
		argv[j++] = (char *)a->sender;
	}
	if (a->name) {
		argv[j++] = "-F";
		argv[j++] = (char *)a->name;
	}
	argv[j++] = "--";
	for (int k = 0; k < a->nrcpts; k++)
		argv[j++] = a->rcpts[k];
	argv[j] = NULL;
	run("qmail-inject", argv);
}

int main(int argc, char **argv)
{
	struct args a;
	const char *base;

	log_init(argv[0]);
	base = log_prog();
	if (strcmp(base, "mailq") == 0)
		run_alone("qmail-qread");
	if (strcmp(base, "newaliases") == 0)
		log_fatal(EXIT_PERM,
			  "newaliases is not supported: qmail "
			  "reads aliases from ~alias/.qmail-* files");
	parse_args(argc, argv, &a);
	if (a.mode == 'p')
		run_alone("qmail-qread");
	if (a.mode == 's')
		run_alone("qmail-smtpd");
	inject(&a);
}
