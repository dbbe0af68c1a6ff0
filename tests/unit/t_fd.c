/* t_fd.c: descriptor moves, including onto themselves. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "lib/fd.h"
#include "unit.h"

TEST(move_closes_source)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(fd_move(20, p[1]), 0);
	CHECK_INT(fcntl(p[1], F_GETFD), -1);
	CHECK_INT(write(20, "x", 1), 1);
	char c = 0;
	CHECK_INT(read(p[0], &c, 1), 1);
	CHECK_INT(c, 'x');
}

TEST(move_onto_itself_keeps_it_open)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(fd_cloexec(p[1]), 0);
	CHECK_INT(fcntl(p[1], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	CHECK_INT(fd_move(p[1], p[1]), 0);
	CHECK_INT(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
	CHECK_INT(write(p[1], "y", 1), 1);
}

TEST(copy_keeps_source)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(fd_copy(21, p[1]), 0);
	CHECK(fcntl(p[1], F_GETFD) >= 0);
	CHECK(fcntl(21, F_GETFD) >= 0);
}

TEST(bad_descriptor)
{
	errno = 0;
	CHECK_INT(fd_move(22, 999), -1);
	CHECK_INT(errno, EBADF);
	CHECK_INT(fd_cloexec(999), -1);
	CHECK_INT(fd_nonblock(999), -1);
}

TEST(nonblock_flags)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(fd_nonblock(p[0]), 0);
	char c;
	errno = 0;
	CHECK_INT(read(p[0], &c, 1), -1);
	CHECK_INT(errno, EAGAIN);
	CHECK_INT(fd_block(p[0]), 0);
	CHECK_INT(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
}

TEST(parse)
{
	CHECK_INT(fd_parse("0"), 0);
	CHECK_INT(fd_parse("17"), 17);
	CHECK_INT(fd_parse(""), -1);
	CHECK_INT(fd_parse(NULL), -1);
	CHECK_INT(fd_parse("-1"), -1);
	CHECK_INT(fd_parse("3x"), -1);
	CHECK_INT(fd_parse("99999999999"), -1);
}

UNIT_MAIN(move_closes_source, move_onto_itself_keeps_it_open, copy_keeps_source,
	  bad_descriptor, nonblock_flags, parse)
