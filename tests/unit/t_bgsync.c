/*
 * t_bgsync.c: background fsyncs report exactly what failed.
 *
 * A pipe cannot be fsynced (EINVAL on Linux and the BSDs), which stands
 * in for a file system that cannot sync: as a file that is an error, as
 * a directory it counts as done.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "lib/bgsync.h"
#include "unit.h"
#include "unit_tmp.h"

TEST(files_and_directories_sync)
{
	struct bgsync b;

	unit_tmp_enter("t_bgsync");
	unit_write_str("f", "data", 0644);
	int f = open("f", O_RDONLY);
	int d = open(".", O_RDONLY | O_DIRECTORY);
	CHECK(f >= 0 && d >= 0);
	bgsync_begin(&b);
	bgsync_add(&b, d, 1);
	bgsync_add(&b, f, 0);
	CHECK_INT(bgsync_end(&b), 0);
	close(f);
	close(d);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(nothing_added_is_success)
{
	struct bgsync b;
	bgsync_begin(&b);
	CHECK_INT(bgsync_end(&b), 0);
}

TEST(a_failed_sync_is_reported_with_its_errno)
{
	struct bgsync b;
	int p[2];

	CHECK_INT(pipe(p), 0);
	bgsync_begin(&b);
	bgsync_add(&b, p[0], 0);
	errno = 0;
	CHECK_INT(bgsync_end(&b), -1);
	CHECK_INT(errno, EINVAL);

	/* The first failure is the one reported. */
	bgsync_begin(&b);
	bgsync_add(&b, 1000, 0); /* not open: EBADF */
	bgsync_add(&b, p[0], 0);
	CHECK_INT(bgsync_end(&b), -1);
	CHECK_INT(errno, EBADF);
	close(p[0]);
	close(p[1]);
}

TEST(einval_on_a_directory_counts_as_done)
{
	struct bgsync b;
	int p[2];

	CHECK_INT(pipe(p), 0);
	bgsync_begin(&b);
	bgsync_add(&b, p[0], 1);
	CHECK_INT(bgsync_end(&b), 0);
	close(p[0]);
	close(p[1]);
}

TEST(more_than_the_limit_is_a_failure)
{
	struct bgsync b;

	unit_tmp_enter("t_bgsync");
	unit_write_str("f", "data", 0644);
	int f = open("f", O_RDONLY);
	CHECK(f >= 0);
	bgsync_begin(&b);
	for (int i = 0; i <= BGSYNC_MAX; i++)
		bgsync_add(&b, f, 0);
	CHECK_INT(bgsync_end(&b), -1);
	CHECK_INT(errno, EOVERFLOW);
	close(f);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(files_and_directories_sync, nothing_added_is_success,
	  a_failed_sync_is_reported_with_its_errno,
	  einval_on_a_directory_counts_as_done,
	  more_than_the_limit_is_a_failure)
