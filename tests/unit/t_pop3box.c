/*
 * t_pop3box.c: the Maildir side of qmail-pop3d (pop3/pop3box.h): names
 * (delivery time, order, unique part, UIDL, flags), moving new/ into
 * cur/, listing cur/ in delivery order under a limit, and finding or
 * opening a message that another process renamed, deleted or replaced.
 *
 * Each test works in its own mkdtemp() directory, removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pop3/pop3box.h"
#include "unit.h"
#include "unit_tmp.h"

/* --- helpers --- */

static const char *tmpdir;

/* A fresh Maildir as the current directory; unit_tmp_leave removes it. */
static void enter_maildir(void)
{
	tmpdir = unit_tmp_enter("t_pop3box");
	unit_mkdir("new", 0700);
	unit_mkdir("cur", 0700);
	unit_mkdir("tmp", 0700);
}

static int open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);

	if (fd < 0) {
		perror(path);
		exit(2);
	}
	return fd;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static struct pop3_msg msg_named(const char *name)
{
	struct pop3_msg m = {0};

	m.name = (char *)name;
	m.when = pop3_name_time(name);
	return m;
}

/* --- names --- */

TEST(name_time)
{
	CHECK(pop3_name_time("1700000000.M1P2Q3.host:2,S") == 1700000000ULL);
	CHECK(pop3_name_time("42") == 42);
	CHECK(pop3_name_time("007.x") == 7);
	CHECK(pop3_name_time("abc.123") == 0);
	CHECK(pop3_name_time("") == 0);
	CHECK(pop3_name_time(".5") == 0);
	CHECK(pop3_name_time("99999999999999999999999.x") == ULLONG_MAX);
	CHECK(pop3_name_time("18446744073709551615.x") == ULLONG_MAX);
	CHECK(pop3_name_time("18446744073709551614.x") == ULLONG_MAX - 1);
}

TEST(order_is_time_then_name)
{
	struct pop3_msg a = msg_named("999.z.host");
	struct pop3_msg b = msg_named("1000.a.host");
	struct pop3_msg c = msg_named("1000.b.host");
	struct pop3_msg d = msg_named("nodigits");

	/* Numerically, not bytewise: "999" sorts before "1000". */
	CHECK(pop3_msg_order(&a, &b) < 0);
	CHECK(pop3_msg_order(&b, &a) > 0);
	CHECK(pop3_msg_order(&b, &c) < 0);
	CHECK(pop3_msg_order(&c, &b) > 0);
	CHECK(pop3_msg_order(&c, &c) == 0);
	/* A name without a time counts as time 0. */
	CHECK(pop3_msg_order(&d, &a) < 0);
}

TEST(unique_part)
{
	CHECK_INT(pop3_uniq_len("123.abc.host:2,S"), 12);
	CHECK_INT(pop3_uniq_len("123.abc.host"), 12);
	CHECK_INT(pop3_uniq_len(":2,"), 0);
	CHECK_INT(pop3_uniq_len("a:b:c"), 1);
}

TEST(uidl_of_ordinary_names)
{
	struct str u = STR_INIT;

	CHECK_INT(pop3_uidl("1700000000.M5P77Q1.example.test:2,S", &u), 0);
	CHECK_STR(u.s, u.len, "1700000000.M5P77Q1.example.test");
	CHECK_INT(pop3_uidl("1.x", &u), 0);
	CHECK_STR(u.s, u.len, "1.x");
	/* Exactly 70 characters is still used as it is. */
	char name[80];
	memset(name, 'a', 70);
	strcpy(name + 70, ":2,");
	CHECK_INT(pop3_uidl(name, &u), 0);
	CHECK_MEM(u.s, u.len, name, 70);
	str_free(&u);
}

TEST(uidl_falls_back_to_a_hash)
{
	struct str u = STR_INIT, v = STR_INIT;

	/* FNV-1a 64 test vectors: "" and "a". */
	CHECK_INT(pop3_uidl(":2,S", &u), 0);
	CHECK_STR(u.s, u.len, "~cbf29ce484222325");
	char name[80];
	memset(name, 'a', 71);
	name[71] = '\0';
	CHECK_INT(pop3_uidl(name, &u), 0);
	CHECK_INT(u.len, 17);
	CHECK(u.s[0] == '~');
	/* Stable: the flags do not change it; another name does. */
	strcpy(name + 71, ":2,RS");
	CHECK_INT(pop3_uidl(name, &v), 0);
	CHECK_MEM(v.s, v.len, u.s, u.len);
	name[0] = 'b';
	CHECK_INT(pop3_uidl(name, &v), 0);
	CHECK(v.len == 17 && memcmp(v.s, u.s, 17) != 0);
	/* Bytes outside '!'..'~' force the hash too. */
	CHECK_INT(pop3_uidl("1.a b.host", &u), 0);
	CHECK(u.len == 17 && u.s[0] == '~');
	CHECK_INT(pop3_uidl("1.a\tb", &u), 0);
	CHECK(u.len == 17 && u.s[0] == '~');
	CHECK_INT(pop3_uidl("1.\xe9t\xe9", &u), 0);
	CHECK(u.len == 17 && u.s[0] == '~');
	for (size_t i = 1; i < u.len; i++)
		CHECK((u.s[i] >= '0' && u.s[i] <= '9') ||
		      (u.s[i] >= 'a' && u.s[i] <= 'f'));
	str_free(&u);
	str_free(&v);
}

TEST(flags)
{
	CHECK(pop3_has_flag("1.x:2,S", 'S'));
	CHECK(pop3_has_flag("1.x:2,FRS", 'S'));
	CHECK(!pop3_has_flag("1.x:2,FR", 'S'));
	CHECK(!pop3_has_flag("1.x:2,", 'S'));
	CHECK(!pop3_has_flag("1.x", 'S'));
	CHECK(!pop3_has_flag("1.x:1,S", 'S'));
	CHECK(!pop3_has_flag("1.xS", 'S'));
}

TEST(add_flag)
{
	struct str n = STR_INIT;

	CHECK_INT(pop3_add_flag("1.x", 'S', &n), 1);
	CHECK_STR(n.s, n.len, "1.x:2,S");
	CHECK_INT(pop3_add_flag("1.x:2,", 'S', &n), 1);
	CHECK_STR(n.s, n.len, "1.x:2,S");
	CHECK_INT(pop3_add_flag("1.x:2,FR", 'S', &n), 1);
	CHECK_STR(n.s, n.len, "1.x:2,FRS");
	CHECK_INT(pop3_add_flag("1.x:2,RT", 'S', &n), 1);
	CHECK_STR(n.s, n.len, "1.x:2,RST");
	CHECK_INT(pop3_add_flag("1.x:2,T", 'S', &n), 1);
	CHECK_STR(n.s, n.len, "1.x:2,ST");
	CHECK_INT(pop3_add_flag("1.x:2,a", 'S', &n), 1);
	CHECK_STR(n.s, n.len, "1.x:2,Sa");
	/* Nothing to do, or not ours to change: out is left alone. */
	str_copys(&n, "unchanged");
	CHECK_INT(pop3_add_flag("1.x:2,S", 'S', &n), 0);
	CHECK_INT(pop3_add_flag("1.x:2,FST", 'S', &n), 0);
	CHECK_INT(pop3_add_flag("1.x:1,foo", 'S', &n), 0);
	CHECK_INT(pop3_add_flag("1.x:", 'S', &n), 0);
	CHECK_STR(n.s, n.len, "unchanged");
	str_free(&n);
}

TEST(cur_name)
{
	struct str n = STR_INIT;

	CHECK_INT(pop3_cur_name("1.x.host", &n), 0);
	CHECK_STR(n.s, n.len, "1.x.host:2,");
	CHECK_INT(pop3_cur_name("1.x.host:2,S", &n), 0);
	CHECK_STR(n.s, n.len, "1.x.host:2,S");
	str_free(&n);
}

/* --- moving new/ into cur/ --- */

TEST(move_new_into_cur)
{
	size_t moved = 99;

	enter_maildir();
	unit_write_str("new/100.a.host", "one\n", 0600);
	unit_write_str("new/200.b.host", "two\n", 0600);
	unit_write_str("new/300.c.host:2,F", "three\n", 0600);
	unit_write_str("new/.hidden", "x\n", 0600);
	int newfd = open_dir("new"), curfd = open_dir("cur");
	CHECK_INT(pop3_move_new(newfd, curfd, &moved), 0);
	CHECK_INT(moved, 3);
	CHECK(exists("cur/100.a.host:2,"));
	CHECK(exists("cur/200.b.host:2,"));
	CHECK(exists("cur/300.c.host:2,F"));
	CHECK(!exists("new/100.a.host"));
	CHECK(exists("new/.hidden"));
	CHECK(!exists("cur/.hidden:2,"));
	/* Again: nothing left to move. */
	CHECK_INT(pop3_move_new(newfd, curfd, &moved), 0);
	CHECK_INT(moved, 0);
	close(newfd);
	close(curfd);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(move_new_failures)
{
	size_t moved = 99;

	enter_maildir();
	unit_write_str("new/1.a", "x\n", 0600);
	unit_write_str("new/2.b", "y\n", 0600);
	unit_write_str("plain", "not a directory\n", 0600);
	int newfd = open_dir("new"), notdir = open("plain", O_RDONLY);
	/* Every rename fails; each is still tried, and the error kept. */
	errno = 0;
	CHECK_INT(pop3_move_new(newfd, notdir, &moved), -1);
	CHECK_INT(errno, ENOTDIR);
	CHECK_INT(moved, 0);
	CHECK(exists("new/1.a") && exists("new/2.b"));
	/* An unreadable new/ directory. */
	errno = 0;
	CHECK_INT(pop3_move_new(notdir, newfd, &moved), -1);
	CHECK_INT(errno, ENOTDIR);
	errno = 0;
	CHECK_INT(pop3_move_new(-1, newfd, &moved), -1);
	CHECK_INT(errno, EBADF);
	close(newfd);
	close(notdir);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* --- listing cur/ --- */

TEST(scan_sorts_and_describes)
{
	struct pop3_box box = POP3_BOX_INIT;

	enter_maildir();
	unit_write_str("cur/1000.b.host:2,", "bb\n", 0600);
	unit_write_str("cur/999.z.host:2,S", "z\n", 0600);
	unit_write_str("cur/1000.a.host:2,RS", "aaaa\n", 0600);
	unit_write_str("cur/nodigits", "", 0600);
	unit_write_str("cur/.dotfile", "x\n", 0600);
	CHECK(mkdir("cur/2000.subdir", 0700) == 0);
	CHECK(symlink("1000.b.host:2,", "cur/3000.link") == 0);
	CHECK(mkfifo("cur/4000.fifo", 0600) == 0);
	int curfd = open_dir("cur");
	CHECK_INT(pop3_scan(curfd, POP3_MAX_MESSAGES, &box), 0);
	CHECK_INT(box.count, 4);
	CHECK_INT(box.left_out, 0);
	if (box.count == 4) {
		CHECK_STR(box.msg[0].name, strlen(box.msg[0].name), "nodigits");
		CHECK_INT(box.msg[0].size, 0);
		CHECK_STR(box.msg[1].name, strlen(box.msg[1].name),
			  "999.z.host:2,S");
		CHECK_INT(box.msg[1].when, 999);
		CHECK_INT(box.msg[1].size, 2);
		CHECK_INT(box.msg[1].was_seen, 1);
		CHECK_STR(box.msg[2].name, strlen(box.msg[2].name),
			  "1000.a.host:2,RS");
		CHECK_INT(box.msg[2].size, 5);
		CHECK_INT(box.msg[2].was_seen, 1);
		CHECK_STR(box.msg[3].name, strlen(box.msg[3].name),
			  "1000.b.host:2,");
		CHECK_INT(box.msg[3].was_seen, 0);
		CHECK_INT(box.msg[3].deleted, 0);
		CHECK_INT(box.msg[3].retrieved, 0);
	}
	pop3_box_free(&box);
	CHECK_INT(box.count, 0);
	CHECK(box.msg == NULL);
	close(curfd);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(scan_empty_and_failures)
{
	struct pop3_box box = POP3_BOX_INIT;

	enter_maildir();
	int curfd = open_dir("cur");
	CHECK_INT(pop3_scan(curfd, 10, &box), 0);
	CHECK_INT(box.count, 0);
	close(curfd);
	errno = 0;
	CHECK_INT(pop3_scan(-1, 10, &box), -1);
	CHECK_INT(errno, EBADF);
	unit_write_str("plain", "x", 0600);
	int fd = open("plain", O_RDONLY);
	errno = 0;
	CHECK_INT(pop3_scan(fd, 10, &box), -1);
	CHECK_INT(errno, ENOTDIR);
	CHECK_INT(box.count, 0);
	close(fd);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* Scan cur/ of the current directory in a child that cannot search it
 * (as nobody when we are root); returns the errno pop3_scan gave, 0 when
 * it succeeded, or -1 when the child could not be set up. */
static int scan_without_search_permission(void)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct pop3_box box = POP3_BOX_INIT;
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(255);
		int curfd = open("cur", O_RDONLY | O_DIRECTORY);
		if (curfd < 0)
			_exit(254);
		errno = 0;
		int r = pop3_scan(curfd, 10, &box);
		_exit(r == 0 ? (box.count == 0 ? 253 : 0) : errno);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status) >= 253 ? -1 : WEXITSTATUS(status);
}

TEST(scan_fails_without_search_permission)
{
	enter_maildir();
	CHECK(chmod(tmpdir, 0755) == 0);
	unit_write_str("cur/1.a:2,", "x\n", 0600);
	/* Readable but not searchable: no entry can be examined. */
	CHECK(chmod("cur", 0444) == 0);
	CHECK_INT(scan_without_search_permission(), EACCES);
	CHECK(chmod("cur", 0755) == 0);
	CHECK_INT(scan_without_search_permission(), 0);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(scan_keeps_the_oldest_under_the_limit)
{
	struct pop3_box box = POP3_BOX_INIT;
	char name[64];

	enter_maildir();
	/* 200 files with times in a scrambled order: 7 is prime to 200. */
	for (unsigned i = 0; i < 200; i++) {
		snprintf(name, sizeof name, "cur/%u.m%u.host:2,",
			 1000 + (i * 7) % 200, i);
		unit_write_str(name, "x\n", 0600);
	}
	int curfd = open_dir("cur");
	CHECK_INT(pop3_scan(curfd, 50, &box), 0);
	CHECK_INT(box.count, 50);
	CHECK_INT(box.left_out, 150);
	for (size_t i = 0; i < box.count; i++)
		CHECK(box.msg[i].when == 1000 + i);
	pop3_box_free(&box);
	/* A limit of one, and of zero. */
	CHECK_INT(pop3_scan(curfd, 1, &box), 0);
	CHECK_INT(box.count, 1);
	CHECK_INT(box.left_out, 199);
	CHECK(box.count == 1 && box.msg[0].when == 1000);
	pop3_box_free(&box);
	CHECK_INT(pop3_scan(curfd, 0, &box), 0);
	CHECK_INT(box.count, 0);
	CHECK_INT(box.left_out, 200);
	pop3_box_free(&box);
	/* Exactly at the limit: nothing left out. */
	CHECK_INT(pop3_scan(curfd, 200, &box), 0);
	CHECK_INT(box.count, 200);
	CHECK_INT(box.left_out, 0);
	for (size_t i = 1; i < box.count; i++)
		CHECK(pop3_msg_order(&box.msg[i - 1], &box.msg[i]) < 0);
	pop3_box_free(&box);
	close(curfd);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(scan_same_time_by_name_under_the_limit)
{
	struct pop3_box box = POP3_BOX_INIT;

	enter_maildir();
	unit_write_str("cur/5.e:2,", "", 0600);
	unit_write_str("cur/5.b:2,", "", 0600);
	unit_write_str("cur/5.d:2,", "", 0600);
	unit_write_str("cur/5.a:2,", "", 0600);
	unit_write_str("cur/5.c:2,", "", 0600);
	int curfd = open_dir("cur");
	CHECK_INT(pop3_scan(curfd, 3, &box), 0);
	CHECK_INT(box.count, 3);
	if (box.count == 3) {
		CHECK_STR(box.msg[0].name, strlen(box.msg[0].name), "5.a:2,");
		CHECK_STR(box.msg[1].name, strlen(box.msg[1].name), "5.b:2,");
		CHECK_STR(box.msg[2].name, strlen(box.msg[2].name), "5.c:2,");
	}
	pop3_box_free(&box);
	close(curfd);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* --- finding and opening --- */

TEST(relocate_follows_a_rename)
{
	struct pop3_msg m = {0};

	enter_maildir();
	unit_write_str("cur/5.abc.host2:2,", "decoy\n", 0600);
	unit_write_str("cur/5.abc.host:2,RS", "real\n", 0600);
	int curfd = open_dir("cur");
	m.name = strdup("5.abc.host:2,");
	CHECK_INT(pop3_relocate(curfd, &m), 1);
	CHECK_STR(m.name, strlen(m.name), "5.abc.host:2,RS");
	CHECK(unlink("cur/5.abc.host:2,RS") == 0);
	/* The decoy shares a prefix but not the unique part. */
	CHECK_INT(pop3_relocate(curfd, &m), 0);
	CHECK_STR(m.name, strlen(m.name), "5.abc.host:2,RS");
	errno = 0;
	CHECK_INT(pop3_relocate(-1, &m), -1);
	CHECK_INT(errno, EBADF);
	free(m.name);
	close(curfd);
	CHECK_INT(unit_tmp_leave(), 0);
}

static void check_reads(int fd, const char *text)
{
	char got[64];
	ssize_t r = fd >= 0 ? read(fd, got, sizeof got) : -1;

	CHECK(r >= 0);
	if (r >= 0)
		CHECK_STR(got, (size_t)r, text);
	if (fd >= 0)
		close(fd);
}

TEST(open_msg)
{
	struct pop3_msg m = {0};

	enter_maildir();
	unit_write_str("cur/7.x.host:2,", "seven\n", 0600);
	int curfd = open_dir("cur");
	m.name = strdup("7.x.host:2,");
	check_reads(pop3_open_msg(curfd, &m), "seven\n");
	/* Renamed by another reader: found under the new name. */
	CHECK(rename("cur/7.x.host:2,", "cur/7.x.host:2,S") == 0);
	check_reads(pop3_open_msg(curfd, &m), "seven\n");
	CHECK_STR(m.name, strlen(m.name), "7.x.host:2,S");
	/* Deleted. */
	CHECK(unlink("cur/7.x.host:2,S") == 0);
	errno = 0;
	CHECK_INT(pop3_open_msg(curfd, &m), -1);
	CHECK_INT(errno, ENOENT);
	/* Replaced by something that is not a regular file. */
	CHECK(mkdir("cur/7.x.host:2,S", 0700) == 0);
	errno = 0;
	CHECK_INT(pop3_open_msg(curfd, &m), -1);
	CHECK_INT(errno, EINVAL);
	CHECK(rmdir("cur/7.x.host:2,S") == 0);
	unit_write_str("cur/elsewhere", "secret\n", 0600);
	CHECK(symlink("elsewhere", "cur/7.x.host:2,S") == 0);
	errno = 0;
	CHECK_INT(pop3_open_msg(curfd, &m), -1);
	CHECK_INT(errno, ELOOP);
	free(m.name);
	close(curfd);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(name_time, order_is_time_then_name, unique_part,
	  uidl_of_ordinary_names, uidl_falls_back_to_a_hash, flags, add_flag,
	  cur_name, move_new_into_cur, move_new_failures,
	  scan_sorts_and_describes, scan_empty_and_failures,
	  scan_fails_without_search_permission,
	  scan_keeps_the_oldest_under_the_limit,
	  scan_same_time_by_name_under_the_limit, relocate_follows_a_rename,
	  open_msg)
