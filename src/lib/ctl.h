/*
 * ctl.h: reading files under control/.
 *
 * The rules (qmail-control(5)): a one-value file counts only its first
 * line, with trailing spaces, tabs, CR and LF removed. A list file has
 * one entry per line, trailing white space removed, blank lines and lines
 * starting with '#' skipped. A missing file is not an error: the caller's
 * default applies, and many files default to control/me.
 *
 * Paths are relative to the current directory, which every program sets
 * to its home (see home.h). Files larger than CTL_MAX bytes are refused
 * with EFBIG, so a stray huge file cannot exhaust memory.
 *
 * Choices where qmail-control(5) is silent:
 * - Only ENOENT means missing; any other failure to open (EACCES,
 *   ENOTDIR...) is an error, so a broken setup is not mistaken for
 *   defaults.
 * - A directory is an error (EISDIR); so is anything that is neither a
 *   regular file nor a character device (EINVAL), e.g. a FIFO. A link to
 *   /dev/null reads as an empty file.
 * - A NUL byte inside a value or a kept list entry is an error (EINVAL):
 *   values are used as C strings and NUL separates list entries.
 * - On error (-1) the output string is left empty.
 */
#ifndef QM_CTL_H
#define QM_CTL_H

#include "str.h"

#define CTL_MAX ((size_t)64 << 20)

/* Read the first line of path into out (no NUL counted in len, but
 * out->s is NUL-terminated).
 * Returns 1 when the file exists, 0 when it does not (out is then set to
 * dflt, or left empty when dflt is NULL), -1 on error (errno). A file of
 * zero bytes counts as missing; a blank first line in a non-empty file
 * gives 1 with out empty. */
int ctl_line(const char *path, struct str *out, const char *dflt);
/* Like ctl_line, falling back to control/me when path is missing. When me
 * is missing too, returns 0 with out empty. */
int ctl_line_or_me(const char *path, struct str *out);
/* Read an unsigned decimal number from the first line. A missing file
 * gives dflt. Returns 1, 0 (missing), -1 on error; a value that is not a
 * number is an error with errno EINVAL. The value must be digits only
 * (no sign, no inner or leading blanks); one that overflows unsigned
 * long is ERANGE. An empty file or a blank first line counts as missing
 * (dflt, 0). On error *out is not changed. */
int ctl_ulong(const char *path, unsigned long *out, unsigned long dflt);
/* Read a list file: each kept line is appended to out followed by a NUL.
 * Returns 1, 0 when the file does not exist (out empty), -1 on error.
 * Leading blanks are kept; trailing spaces, tabs and CR are removed. A
 * line is a comment only when '#' is its first byte. */
int ctl_list(const char *path, struct str *out);

/* Iterate over NUL-separated entries: start with *pos = 0. Returns the
 * next entry or NULL at the end. */
const char *ctl_next(const struct str *list, size_t *pos);

#endif
