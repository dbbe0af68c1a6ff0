/*
 * ctl.c: reading files under control/ (rules in ctl.h).
 *
 * A control file is never trusted to be small or to stay the same size
 * while it is read: every read is bounded by CTL_MAX. This code never
 * prints, exits or blocks on a FIFO; errors go back with errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

#define CTL_CHUNK 8192

static void close_keep_errno(int fd)
{
	int saved = errno;
	close(fd);
	errno = saved;
}

static int is_trailing_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t trimmed_len(const char *p, size_t len)
{
	while (len > 0 && is_trailing_blank(p[len - 1]))
		len--;
	return len;
}

/* Character devices are allowed so that a link to /dev/null reads as an
 * empty file; the bounded read loop copes with endless ones. */
static int check_kind(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	if (S_ISREG(st.st_mode) && st.st_size > (off_t)CTL_MAX) {
		errno = EFBIG;
		return -1;
	}
	return 0;
}

/* Returns 1 with *fd open, 0 when path does not exist, -1 on error.
 * O_NONBLOCK keeps open() from hanging on a FIFO left in control/. */
static int open_control(const char *path, int *fd)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (*fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (check_kind(*fd) < 0) {
		close_keep_errno(*fd);
		return -1;
	}
	return 1;
}

/* Reads at most CTL_MAX bytes of fd into `into`; more is EFBIG. With
 * first_line, stops once a newline has been read. */
static int read_bounded(int fd, struct str *into, int first_line)
{
	char chunk[CTL_CHUNK];

	for (;;) {
		/* into->len <= CTL_MAX here, so room is at least 1. */
		size_t room = CTL_MAX + 1 - into->len;
		size_t want = room < sizeof chunk ? room : sizeof chunk;
		ssize_t n = read(fd, chunk, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		if (str_append(into, chunk, (size_t)n) < 0)
			return -1;
		if (into->len > CTL_MAX) {
			errno = EFBIG;
			return -1;
		}
		if (first_line && memchr(chunk, '\n', (size_t)n))
			return 0;
	}
}

/* Returns 1 (file read into `into`), 0 (missing), -1 (error). Except
 * after 1, `into` is left empty. */
static int read_control(const char *path, struct str *into, int first_line)
{
	int fd, r;

	str_clear(into);
	r = open_control(path, &fd);
	if (r <= 0)
		return r;
	if (read_bounded(fd, into, first_line) < 0) {
		close_keep_errno(fd);
		str_clear(into);
		return -1;
	}
	/* Nothing was written, so a failing close loses nothing. */
	close(fd);
	return 1;
}

static int set_default(struct str *out, const char *dflt)
{
	/* str_copy even for "" so that out->s is a valid C string. */
	if (str_copys(out, dflt ? dflt : "") < 0)
		return -1;
	return 0;
}

int ctl_line(const char *path, struct str *out, const char *dflt)
{
	int r = read_control(path, out, 1);
	if (r < 0)
		return -1;
	/* An empty file is treated like a missing one, as qmail does. */
	if (r == 0 || out->len == 0)
		return set_default(out, dflt);

	const char *nl = memchr(out->s, '\n', out->len);
	size_t len = nl ? (size_t)(nl - out->s) : out->len;
	len = trimmed_len(out->s, len);
	if (memchr(out->s, '\0', len)) {
		/* Callers use out->s as a C string: a NUL would cut it. */
		str_clear(out);
		errno = EINVAL;
		return -1;
	}
	str_truncate(out, len);
	return 1;
}

int ctl_line_or_me(const char *path, struct str *out)
{
	int r = ctl_line(path, out, NULL);
	if (r != 0)
		return r;
	if (ctl_line("control/me", out, NULL) < 0)
		return -1;
	return 0;
}

/* Digits only: no sign, no blanks, no trailing words. */
static int parse_ulong(const char *s, size_t len, unsigned long *out)
{
	unsigned long value = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			errno = EINVAL;
			return -1;
		}
		unsigned long digit = (unsigned long)(s[i] - '0');
		if (value > (ULONG_MAX - digit) / 10) {
			errno = ERANGE;
			return -1;
		}
		value = value * 10 + digit;
	}
	*out = value;
	return 0;
}

int ctl_ulong(const char *path, unsigned long *out, unsigned long dflt)
{
	struct str line = STR_INIT;
	unsigned long value = dflt;
	int r = ctl_line(path, &line, NULL);
	int saved;

	if (r > 0 && line.len > 0) {
		r = parse_ulong(line.s, line.len, &value) < 0 ? -1 : 1;
	} else if (r >= 0) {
		/* A blank value has no numeric meaning: use the default. */
		r = 0;
	}
	saved = errno;
	str_free(&line);
	errno = saved;
	if (r >= 0)
		*out = value;
	return r;
}

/* Appends one list line to out unless it is blank or a comment. */
static int keep_line(struct str *out, const char *line, size_t len)
{
	len = trimmed_len(line, len);
	if (len == 0 || line[0] == '#')
		return 0;
	if (memchr(line, '\0', len)) {
		/* NUL separates entries in out: it cannot be part of one. */
		errno = EINVAL;
		return -1;
	}
	if (str_append(out, line, len) < 0 || str_append0(out) < 0)
		return -1;
	return 0;
}

static int split_lines(const struct str *raw, struct str *out)
{
	size_t pos = 0;

	while (pos < raw->len) {
		const char *line = raw->s + pos;
		const char *nl = memchr(line, '\n', raw->len - pos);
		size_t len = nl ? (size_t)(nl - line) : raw->len - pos;
		if (keep_line(out, line, len) < 0)
			return -1;
		/* raw->len <= CTL_MAX, so this cannot wrap. */
		pos += len + 1;
	}
	return 0;
}

int ctl_list(const char *path, struct str *out)
{
	struct str raw = STR_INIT;
	int r = read_control(path, &raw, 0);
	int saved;

	str_clear(out);
	if (r > 0 && split_lines(&raw, out) < 0) {
		str_clear(out);
		r = -1;
	}
	saved = errno;
	str_free(&raw);
	errno = saved;
	return r;
}

const char *ctl_next(const struct str *list, size_t *pos)
{
	if (*pos >= list->len)
		return NULL;
	const char *entry = list->s + *pos;
	const char *end = memchr(entry, '\0', list->len - *pos);
	/* Without a final NUL the entry ends at len, where str keeps one. */
	*pos = end ? (size_t)(end - list->s) + 1 : list->len;
	return entry;
}
