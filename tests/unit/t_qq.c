/*
 * t_qq.c: the reply a qmail-queue client falls back on, and how the
 * child is started: the message on its fd 0, the envelope on fd 1, its
 * own text on fd 6 and nothing else open, even when the caller's low
 * descriptors are closed and the pipes land on 0, 1 or 6.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/exitcode.h"
#include "lib/str.h"
#include "mail/qq.h"
#include "unit.h"
#include "unit_tmp.h"

/* Saves fd 0 and fd 1, lists which of fds 3..9 other than 6 are open,
 * then answers on fd 6. */
static const char fake_qq[] =
    "#!/bin/sh\n"
    "cat > message || exit 53\n"
    "cat <&1 > envelope || exit 53\n"
    "for n in 3 4 5 7 8 9; do\n"
    "  if (: <&$n) 2>/dev/null || (: >&$n) 2>/dev/null; then\n"
    "    echo $n >> open; fi\n"
    "done\n"
    "printf 'Dfake says no' >&6\n"
    "exit 82\n";

TEST(text_set_by_finish_wins)
{
	struct str reply = STR_INIT;
	CHECK_INT(str_copys(&reply, "554 go away"), 0);
	CHECK_STR(qq_text(&reply, QQ_CUSTOM), strlen("554 go away"),
		  "554 go away");
	str_free(&reply);
}

TEST(empty_reply_gives_the_standard_text)
{
	struct str reply = STR_INIT; /* as out of memory leaves it */
	const char *t = qq_text(&reply, QQ_WRITE);
	CHECK(t == qq_reply(QQ_WRITE));
	CHECK_STR(t, strlen(t), "451 qq write error or disk full (#4.3.0)");
	CHECK(qq_text(&reply, 31)[0] == '5');
}

static void read_all(const char *path, struct str *out)
{
	char chunk[512];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	str_clear(out);
	if (fd < 0)
		return;
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		CHECK_INT(str_append(out, chunk, (size_t)n), 0);
	close(fd);
}

/* Runs one injection through the fake with fds [0, closed) closed. */
static void inject_with_closed(int closed)
{
	static const char env_expect[] = "Ffrom@x\0Tto@y\0\0";
	int saved[3];
	struct qq q;
	struct str reply = STR_INIT, got = STR_INIT;
	const char *rcpts[] = {"to@y"};

	for (int fd = 0; fd < 3; fd++)
		saved[fd] = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	for (int fd = 0; fd < closed; fd++)
		close(fd);
	int started = qq_start(&q);
	if (started == 0) {
		qq_puts(&q, "Subject: hi\n\nbody\n");
		CHECK_INT(qq_finish(&q, "from@x", rcpts, 1, &reply), QQ_CUSTOM);
	}
	for (int fd = 0; fd < 3; fd++)
		if (saved[fd] >= 0) {
			dup2(saved[fd], fd);
			close(saved[fd]);
		}
	CHECK_INT(started, 0);
	CHECK_STR(reply.s, reply.len, "554 fake says no");
	read_all("message", &got);
	CHECK_STR(got.s, got.len, "Subject: hi\n\nbody\n");
	read_all("envelope", &got);
	CHECK_MEM(got.s, got.len, env_expect, sizeof env_expect - 1);
	read_all("open", &got);
	CHECK_STR(got.s, got.len, "");
	unlink("message");
	unlink("envelope");
	unlink("open");
	str_free(&reply);
	str_free(&got);
}

TEST(child_gets_exactly_fds_0_1_6)
{
	unit_tmp_enter("t_qq");
	unit_write_str("fake-qq", fake_qq, 0755);
	CHECK_INT(setenv("QMAILQUEUE", "./fake-qq", 1), 0);
	signal(SIGPIPE, SIG_IGN);
	for (int closed = 0; closed <= 3; closed++)
		inject_with_closed(closed);
	CHECK_INT(unsetenv("QMAILQUEUE"), 0);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(a_queue_that_cannot_run_is_an_internal_bug)
{
	struct qq q;
	struct str reply = STR_INIT;
	const char *rcpts[] = {"to@y"};

	CHECK_INT(setenv("QMAILQUEUE", "/nonexistent/qmail-queue", 1), 0);
	CHECK_INT(qq_start(&q), 0);
	qq_puts(&q, "Subject: hi\n\nbody\n");
	CHECK_INT(qq_finish(&q, "from@x", rcpts, 1, &reply), QQ_BUG);
	CHECK_STR(reply.s, reply.len, "451 qq internal bug (#4.3.0)");
	CHECK_INT(unsetenv("QMAILQUEUE"), 0);
	str_free(&reply);
}

UNIT_MAIN(text_set_by_finish_wins, empty_reply_gives_the_standard_text,
	  child_gets_exactly_fds_0_1_6,
	  a_queue_that_cannot_run_is_an_internal_bug)
