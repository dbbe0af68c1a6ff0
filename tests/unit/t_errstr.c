/*
 * t_errstr.c: tests for the fixed errno texts.
 *
 * The texts are quoted in logs and deferral reports that tests and log
 * filters match, so they are checked word for word, including the ones
 * where C libraries disagree (musl says "No file descriptors available"
 * for EMFILE).
 */
#include "lib/errstr.h"
#include "unit.h"

#include <errno.h>

TEST(fixed_texts)
{
	CHECK(strcmp(errstr(ENOENT), "No such file or directory") == 0);
	CHECK(strcmp(errstr(EMFILE), "Too many open files") == 0);
	CHECK(strcmp(errstr(ENOMEM), "Cannot allocate memory") == 0);
	CHECK(strcmp(errstr(EDQUOT), "Disk quota exceeded") == 0);
	CHECK(strcmp(errstr(ETIMEDOUT), "Connection timed out") == 0);
	CHECK(strcmp(errstr(ENOSPC), "No space left on device") == 0);
	CHECK(strcmp(errstr(EACCES), "Permission denied") == 0);
}

TEST(other_values_fall_back)
{
	/* Never NULL, even for a value no libc knows. */
	CHECK(errstr(0) != NULL);
	CHECK(errstr(-1) != NULL);
	CHECK(errstr(123456) != NULL);
	CHECK(strcmp(errstr(EOPNOTSUPP), strerror(EOPNOTSUPP)) == 0);
}

UNIT_MAIN(fixed_texts, other_values_fall_back)
