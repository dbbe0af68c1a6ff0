/*
 * log.h: the one diagnostic format.
 *
 * Every line is "program: level: text", written to fd 2 with a single
 * write so that lines from concurrent processes never interleave. When the
 * text describes a failed system call, "_sys" variants append
 * ": " and strerror(errno). Errors must name the file and the reason.
 */
#ifndef QM_LOG_H
#define QM_LOG_H

/* Sets the program name used as the prefix (basename of argv0). */
void log_init(const char *argv0);
const char *log_prog(void);
/* Send diagnostics to another fd: qmail-send logs on fd 0, because its
 * fd 2 is a pipe from qmail-lspawn. */
void log_set_fd(int fd);
/* From now on every fatal exit, out of memory included, uses this code:
 * a program running after a successful login (qmail-ofmipd, qmail-pop3d)
 * must never exit with a status its caller takes for a bad password. */
void log_set_fatal_code(int code);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log "fatal" and exit with the given code. */
_Noreturn void log_fatal(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
_Noreturn void log_fatal_sys(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Out of memory is always temporary. */
_Noreturn void log_nomem(void);

#endif
