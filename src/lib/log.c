/*
 * log.c: the one diagnostic format, "program: level: text".
 *
 * Each line is formatted into a bounded buffer and written with one
 * write(2), so lines from concurrent processes never mix. Long texts are
 * cut, never overflowed. This module must never allocate: it is what
 * reports running out of memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exitcode.h"
#include "errstr.h"
#include "log.h"

#define LOG_LINE 2048

static const char *prog = "qmail";
static int log_fd = 2;
static int fatal_override = -1;

void log_set_fatal_code(int code)
{
	fatal_override = code;
}

void log_set_fd(int fd)
{
	log_fd = fd;
}

void log_init(const char *argv0)
{
	if (argv0 && *argv0) {
		const char *slash = strrchr(argv0, '/');
		prog = slash ? slash + 1 : argv0;
	}
}

const char *log_prog(void)
{
	return prog;
}

static void log_emit(const char *level, int with_errno, int saved_errno,
		     const char *fmt, va_list ap)
{
	char line[LOG_LINE];
	size_t n = 0;
	int r;

	r = snprintf(line, sizeof line, "%s: %s: ", prog, level);
	n = r < 0 ? 0 : (size_t)r;
	if (n < sizeof line) {
		r = vsnprintf(line + n, sizeof line - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (with_errno && n < sizeof line) {
		r = snprintf(line + n, sizeof line - n, ": %s",
			     errstr(saved_errno));
		if (r > 0)
			n += (size_t)r;
	}
	/* Keep room for the newline even when the text was cut. */
	if (n > sizeof line - 1)
		n = sizeof line - 1;
	line[n++] = '\n';
	ssize_t w = write(log_fd, line, n);
	(void)w;
}

void log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit("info", 0, 0, fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit("warning", 0, 0, fmt, ap);
	va_end(ap);
}

void log_warn_sys(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit("warning", 1, e, fmt, ap);
	va_end(ap);
	errno = e;
}

void log_fatal(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit("fatal", 0, 0, fmt, ap);
	va_end(ap);
	_exit(fatal_override >= 0 ? fatal_override : code);
}

void log_fatal_sys(int code, const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit("fatal", 1, e, fmt, ap);
	va_end(ap);
	_exit(fatal_override >= 0 ? fatal_override : code);
}

void log_nomem(void)
{
	log_fatal(EXIT_TEMP, "out of memory");
}
