/* t_cdbx.c: cdb write/read round trips, atomic replacement, every
 * failure path of the writer, and the directory fsync helpers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cdbx.h"
#include "lib/fsync_dir.h"
#include "unit.h"
#include "unit_tmp.h"

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Writes a one-record cdb at path. */
static void make_one(const char *path, const char *key, const char *val)
{
	struct cdbx_writer w;
	CHECK_INT(cdbx_create(&w, path, 0644), 0);
	CHECK_INT(cdbx_add(&w, key, strlen(key), val, strlen(val)), 0);
	CHECK_INT(cdbx_commit(&w), 0);
}

static void check_value(struct cdbx_reader *r, const void *key, size_t klen,
			const void *want, size_t wantlen)
{
	struct str v = STR_INIT;
	CHECK_INT(cdbx_find(r, key, klen, &v, 1000), 1);
	CHECK_MEM(v.s, v.len, want, wantlen);
	str_free(&v);
}

TEST(write_then_read)
{
	struct cdbx_writer w;
	struct cdbx_reader r;
	struct str v = STR_INIT;
	unit_tmp_enter("t_cdbx");
	CHECK_INT(cdbx_create(&w, "db.cdb", 0644), 0);
	CHECK(exists("db.cdb.tmp"));
	CHECK_INT(cdbx_add(&w, "one", 3, "1", 1), 0);
	CHECK_INT(cdbx_add(&w, "\0\377\n", 3, "bin\0val", 7), 0);
	CHECK_INT(cdbx_add(&w, "", 0, "empty key", 9), 0);
	CHECK_INT(cdbx_add(&w, "nothing", 7, "", 0), 0);
	CHECK_INT(cdbx_commit(&w), 0);
	CHECK(!exists("db.cdb.tmp"));

	CHECK_INT(cdbx_open(&r, "db.cdb"), 1);
	check_value(&r, "one", 3, "1", 1);
	check_value(&r, "\0\377\n", 3, "bin\0val", 7);
	check_value(&r, "", 0, "empty key", 9);
	CHECK_INT(str_copys(&v, "old"), 0);
	CHECK_INT(cdbx_find(&r, "nothing", 7, &v, 10), 1);
	CHECK_INT(v.len, 0);
	/* Misses leave val alone. */
	CHECK_INT(str_copys(&v, "kept"), 0);
	CHECK_INT(cdbx_find(&r, "two", 3, &v, 10), 0);
	CHECK_INT(cdbx_find(&r, "\0\377", 2, &v, 10), 0);
	CHECK_INT(cdbx_find(&r, "one\0", 4, &v, 10), 0);
	CHECK_STR(v.s, v.len, "kept");
	cdbx_close(&r);
	cdbx_close(&r); /* twice is harmless */
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* Enough records to fill several write buffers and every hash table. */
TEST(many_records)
{
	struct cdbx_writer w;
	struct cdbx_reader r;
	char key[32], val[64];
	unit_tmp_enter("t_cdbx");
	CHECK_INT(cdbx_create(&w, "db.cdb", 0644), 0);
	for (int i = 0; i < 5000; i++) {
		int kl = snprintf(key, sizeof key, "key%d", i);
		int vl = snprintf(val, sizeof val, "value number %d", i * 7);
		CHECK_INT(cdbx_add(&w, key, (size_t)kl, val, (size_t)vl), 0);
	}
	CHECK_INT(cdbx_commit(&w), 0);
	CHECK_INT(cdbx_open(&r, "db.cdb"), 1);
	for (int i = 0; i < 5000; i += 37) {
		int kl = snprintf(key, sizeof key, "key%d", i);
		int vl = snprintf(val, sizeof val, "value number %d", i * 7);
		check_value(&r, key, (size_t)kl, val, (size_t)vl);
	}
	struct str v = STR_INIT;
	CHECK_INT(cdbx_find(&r, "key5000", 7, &v, 100), 0);
	cdbx_close(&r);
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(missing_file)
{
	struct cdbx_reader r;
	struct str v = STR_INIT;
	unit_tmp_enter("t_cdbx");
	CHECK_INT(cdbx_open(&r, "nosuch.cdb"), 0);
	CHECK_INT(cdbx_find(&r, "k", 1, &v, 10), 0);
	cdbx_close(&r);
	CHECK_INT(cdbx_lookup("nosuch.cdb", "k", 1, &v, 10), 0);
	CHECK_INT(v.len, 0);
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(value_larger_than_max)
{
	struct cdbx_reader r;
	struct str v = STR_INIT;
	unit_tmp_enter("t_cdbx");
	make_one("db.cdb", "k", "0123456789");
	CHECK_INT(cdbx_open(&r, "db.cdb"), 1);
	CHECK_INT(str_copys(&v, "kept"), 0);
	errno = 0;
	CHECK_INT(cdbx_find(&r, "k", 1, &v, 9), -1);
	CHECK_INT(errno, EFBIG);
	CHECK_STR(v.s, v.len, "kept");
	/* Exactly max fits. */
	CHECK_INT(cdbx_find(&r, "k", 1, &v, 10), 1);
	CHECK_STR(v.s, v.len, "0123456789");
	cdbx_close(&r);
	errno = 0;
	CHECK_INT(cdbx_lookup("db.cdb", "k", 1, &v, 0), -1);
	CHECK_INT(errno, EFBIG);
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(lookup_one_shot)
{
	struct str v = STR_INIT;
	unit_tmp_enter("t_cdbx");
	make_one("db.cdb", "user", "uid 1000");
	CHECK_INT(cdbx_lookup("db.cdb", "user", 4, &v, 100), 1);
	CHECK_STR(v.s, v.len, "uid 1000");
	CHECK_INT(cdbx_lookup("db.cdb", "nobody", 6, &v, 100), 0);
	CHECK_STR(v.s, v.len, "uid 1000");
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* No cdb can hold a key this long, so it is simply not there. */
TEST(key_too_long_is_not_found)
{
#if SIZE_MAX > UINT_MAX
	struct cdbx_reader r;
	struct str v = STR_INIT;
	unit_tmp_enter("t_cdbx");
	make_one("db.cdb", "k", "v");
	CHECK_INT(cdbx_open(&r, "db.cdb"), 1);
	CHECK_INT(cdbx_find(&r, "k", (size_t)UINT_MAX + 1, &v, 10), 0);
	cdbx_close(&r);
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
#endif
}

TEST(not_a_cdb)
{
	struct cdbx_reader r;
	struct str v = STR_INIT;
	unit_tmp_enter("t_cdbx");
	unit_write_str("short.cdb", "this is far shorter than a cdb header",
		       0644);
	errno = 0;
	CHECK_INT(cdbx_open(&r, "short.cdb"), -1);
	CHECK_INT(errno, EPROTO);
	CHECK_INT(r.fd, -1);
	CHECK_INT(cdbx_find(&r, "k", 1, &v, 10), 0);
	cdbx_close(&r);
	errno = 0;
	CHECK_INT(cdbx_lookup("short.cdb", "k", 1, &v, 10), -1);
	CHECK_INT(errno, EPROTO);
	CHECK_INT(mkdir("dir.cdb", 0755), 0);
	CHECK_INT(cdbx_open(&r, "dir.cdb"), -1);
	CHECK_INT(r.fd, -1);
	CHECK_INT(mkfifo("fifo.cdb", 0644), 0);
	alarm(10); /* a hang kills the test instead of the whole run */
	CHECK_INT(cdbx_open(&r, "fifo.cdb"), -1);
	alarm(0);
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(abort_leaves_nothing)
{
	struct cdbx_writer w;
	unit_tmp_enter("t_cdbx");
	CHECK_INT(cdbx_create(&w, "db.cdb", 0644), 0);
	for (int i = 0; i < 2000; i++)
		CHECK_INT(cdbx_add(&w, &i, sizeof i, "value", 5), 0);
	cdbx_abort(&w);
	CHECK(!exists("db.cdb.tmp"));
	CHECK(!exists("db.cdb"));
	cdbx_abort(&w); /* twice is harmless */
	errno = 0;
	CHECK_INT(cdbx_commit(&w), -1);
	CHECK_INT(errno, EBADF);
	CHECK(!exists("db.cdb"));
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(abort_keeps_old_file)
{
	struct cdbx_writer w;
	struct str v = STR_INIT;
	unit_tmp_enter("t_cdbx");
	make_one("db.cdb", "k", "old");
	CHECK_INT(cdbx_create(&w, "db.cdb", 0644), 0);
	CHECK_INT(cdbx_add(&w, "k", 1, "new", 3), 0);
	cdbx_abort(&w);
	CHECK(!exists("db.cdb.tmp"));
	CHECK_INT(cdbx_lookup("db.cdb", "k", 1, &v, 10), 1);
	CHECK_STR(v.s, v.len, "old");
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(commit_replaces_atomically)
{
	struct cdbx_reader old, cur;
	unit_tmp_enter("t_cdbx");
	make_one("db.cdb", "k", "old value");
	CHECK_INT(cdbx_open(&old, "db.cdb"), 1);
	make_one("db.cdb", "k", "new value");
	/* The reader opened before the commit still sees the old file. */
	check_value(&old, "k", 1, "old value", 9);
	CHECK_INT(cdbx_open(&cur, "db.cdb"), 1);
	check_value(&cur, "k", 1, "new value", 9);
	cdbx_close(&old);
	cdbx_close(&cur);
	CHECK(!exists("db.cdb.tmp"));
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(commit_uses_mode)
{
	struct stat st;
	unit_tmp_enter("t_cdbx");
	umask(022);
	make_one("db.cdb", "k", "v");
	CHECK_INT(stat("db.cdb", &st), 0);
	CHECK_INT(st.st_mode & 07777, 0644);
	CHECK_INT(unlink("db.cdb"), 0);
	struct cdbx_writer w;
	CHECK_INT(cdbx_create(&w, "db.cdb", 0600), 0);
	CHECK_INT(cdbx_commit(&w), 0);
	CHECK_INT(stat("db.cdb", &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	/* An empty database is a valid one. */
	struct str v = STR_INIT;
	CHECK_INT(cdbx_lookup("db.cdb", "k", 1, &v, 10), 0);
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(create_in_missing_directory)
{
	struct cdbx_writer w;
	unit_tmp_enter("t_cdbx");
	errno = 0;
	CHECK_INT(cdbx_create(&w, "nodir/db.cdb", 0644), -1);
	CHECK_INT(errno, ENOENT);
	CHECK_INT(w.fd, -1);
	cdbx_abort(&w); /* harmless after a failed create */
	errno = 0;
	CHECK_INT(cdbx_add(&w, "k", 1, "v", 1), -1);
	CHECK_INT(errno, EBADF);
	errno = 0;
	CHECK_INT(cdbx_create(&w, "", 0644), -1);
	CHECK_INT(errno, ENOENT);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(create_in_unwritable_directory)
{
	struct cdbx_writer w;
	/* Root may write into any directory whatever its mode, so there is
	 * nothing to test when running as root. */
	if (geteuid() == 0)
		return;
	unit_tmp_enter("t_cdbx");
	CHECK_INT(mkdir("ro", 0555), 0);
	errno = 0;
	CHECK_INT(cdbx_create(&w, "ro/db.cdb", 0644), -1);
	CHECK_INT(errno, EACCES);
	CHECK(!exists("ro/db.cdb.tmp"));
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(create_refuses_symlinked_tmp)
{
	struct cdbx_writer w;
	unit_tmp_enter("t_cdbx");
	unit_write_str("victim", "precious\n", 0644);
	CHECK_INT(symlink("victim", "db.cdb.tmp"), 0);
	errno = 0;
	CHECK_INT(cdbx_create(&w, "db.cdb", 0644), -1);
	CHECK_INT(errno, ELOOP);
	int fd = open("victim", O_RDONLY);
	char buf[16];
	CHECK_INT(read(fd, buf, sizeof buf), 9);
	CHECK_MEM(buf, 9, "precious\n", 9);
	close(fd);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* rename onto a non-empty directory fails: the target must survive and
 * the temporary file must go. */
TEST(commit_failure_cleans_up)
{
	struct cdbx_writer w;
	struct stat st;
	unit_tmp_enter("t_cdbx");
	CHECK_INT(mkdir("db.cdb", 0755), 0);
	unit_write_str("db.cdb/inside", "x", 0644);
	CHECK_INT(cdbx_create(&w, "db.cdb", 0644), 0);
	CHECK_INT(cdbx_add(&w, "k", 1, "v", 1), 0);
	errno = 0;
	CHECK_INT(cdbx_commit(&w), -1);
	CHECK(errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST);
	CHECK(!exists("db.cdb.tmp"));
	CHECK_INT(stat("db.cdb", &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK(exists("db.cdb/inside"));
	errno = 0;
	CHECK_INT(cdbx_commit(&w), -1);
	CHECK_INT(errno, EBADF);
	cdbx_abort(&w);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* A key or value the format cannot hold abandons the whole writer. */
TEST(add_failure_abandons_writer)
{
#if SIZE_MAX > UINT_MAX
	struct cdbx_writer w;
	struct str v = STR_INIT;
	unit_tmp_enter("t_cdbx");
	make_one("db.cdb", "k", "old");
	CHECK_INT(cdbx_create(&w, "db.cdb", 0644), 0);
	CHECK_INT(cdbx_add(&w, "k", 1, "new", 3), 0);
	errno = 0;
	CHECK_INT(cdbx_add(&w, "k", (size_t)UINT_MAX + 1, "v", 1), -1);
	CHECK_INT(errno, EFBIG);
	CHECK(!exists("db.cdb.tmp"));
	errno = 0;
	CHECK_INT(cdbx_add(&w, "k", 1, "v", 1), -1);
	CHECK_INT(errno, EBADF);
	errno = 0;
	CHECK_INT(cdbx_commit(&w), -1);
	CHECK_INT(errno, EBADF);
	cdbx_abort(&w);
	CHECK_INT(cdbx_lookup("db.cdb", "k", 1, &v, 10), 1);
	CHECK_STR(v.s, v.len, "old");

	CHECK_INT(cdbx_create(&w, "db.cdb", 0644), 0);
	errno = 0;
	CHECK_INT(cdbx_add(&w, "k", 1, "v", (size_t)UINT_MAX + 1), -1);
	CHECK_INT(errno, EFBIG);
	CHECK(!exists("db.cdb.tmp"));
	str_free(&v);
	CHECK_INT(unit_tmp_leave(), 0);
#endif
}

TEST(fsync_dir_cases)
{
	const char *tmpdir = unit_tmp_enter("t_cdbx");
	CHECK_INT(fsync_dir(tmpdir), 0);
	CHECK_INT(fsync_dir("."), 0);
	CHECK_INT(fsync_dir("/"), 0);
	errno = 0;
	CHECK_INT(fsync_dir("nosuch"), -1);
	CHECK_INT(errno, ENOENT);
	unit_write_str("file", "x", 0644);
	errno = 0;
	CHECK_INT(fsync_dir("file"), -1);
	CHECK_INT(errno, ENOTDIR);
	CHECK_INT(unit_tmp_leave(), 0);
}

/* The failures prove which directory was chosen. */
TEST(fsync_dir_of_cases)
{
	char path[PATH_MAX];
	const char *tmpdir = unit_tmp_enter("t_cdbx");
	unit_write_str("file", "x", 0644);
	CHECK_INT(mkdir("sub", 0755), 0);
	CHECK_INT(fsync_dir_of("file"), 0);	/* "." */
	CHECK_INT(fsync_dir_of("sub/new"), 0);	/* "sub" */
	CHECK_INT(fsync_dir_of("sub//new"), 0); /* "sub" */
	CHECK_INT(fsync_dir_of("sub/new/"), 0); /* "sub" */
	CHECK_INT(fsync_dir_of("nosuch/"), 0);	/* "." */
	CHECK_INT(fsync_dir_of("/etc"), 0);	/* "/" */
	CHECK_INT(fsync_dir_of("/"), 0);	/* "/" */
	snprintf(path, sizeof path, "%s/file", tmpdir);
	CHECK_INT(fsync_dir_of(path), 0);
	errno = 0;
	CHECK_INT(fsync_dir_of("nosuch/x"), -1);
	CHECK_INT(errno, ENOENT);
	errno = 0;
	CHECK_INT(fsync_dir_of("file/x"), -1);
	CHECK_INT(errno, ENOTDIR);
	errno = 0;
	CHECK_INT(fsync_dir_of("sub/file/x"), -1);
	CHECK_INT(errno, ENOENT);
	errno = 0;
	CHECK_INT(fsync_dir_of(""), -1);
	CHECK_INT(errno, ENOENT);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(write_then_read, many_records, missing_file, value_larger_than_max,
	  lookup_one_shot, key_too_long_is_not_found, not_a_cdb,
	  abort_leaves_nothing, abort_keeps_old_file,
	  commit_replaces_atomically, commit_uses_mode,
	  create_in_missing_directory, create_in_unwritable_directory,
	  create_refuses_symlinked_tmp, commit_failure_cleans_up,
	  add_failure_abandons_writer, fsync_dir_cases, fsync_dir_of_cases)
