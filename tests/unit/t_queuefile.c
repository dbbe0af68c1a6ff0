/* t_queuefile.c: the admin tools' read-only access to queue files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "auto.h"
#include "mail/queuefile.h"
#include "unit.h"

static char dir[] = "/tmp/t_queuefile.XXXXXX";

static void make_dir(void)
{
	CHECK(mkdtemp(dir) != NULL);
}

static void put(const char *name, const void *data, size_t n)
{
	char fn[256];
	snprintf(fn, sizeof fn, "%s/%s", dir, name);
	int fd = open(fn, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK((size_t)write(fd, data, n) == n);
	close(fd);
}

TEST(split_names)
{
	char fn[QUEUEFILE_NAME];
	queuefile_split(fn, "info", 4711);
	char want[64];
	snprintf(want, sizeof want, "info/%lu/4711", 4711UL % AUTO_SPLIT);
	CHECK(strcmp(fn, want) == 0);
	queuefile_split(fn, "remote", ~0UL);
	CHECK(strlen(fn) < QUEUEFILE_NAME);
}

TEST(ids)
{
	unsigned long id = 0;
	CHECK_INT(queuefile_parse_id("12345", &id), 0);
	CHECK_INT(id, 12345);
	CHECK_INT(queuefile_parse_id("18446744073709551615", &id), 0);
	CHECK(id == 18446744073709551615UL);
	CHECK_INT(queuefile_parse_id("18446744073709551616", &id), -1);
	CHECK_INT(queuefile_parse_id("", &id), -1);
	CHECK_INT(queuefile_parse_id("12a", &id), -1);
	CHECK_INT(queuefile_parse_id("-1", &id), -1);
	CHECK_INT(queuefile_parse_id(".", &id), -1);
}

TEST(records)
{
	struct str s = STR_INIT;
	size_t pos = 0, len = 0;
	CHECK_INT(str_copy(&s, "Ta@b\0Dc@d\0\0Tnot-ended", 21), 0);
	const char *r = queuefile_record(&s, &pos, &len);
	CHECK_STR(r, len, "Ta@b");
	r = queuefile_record(&s, &pos, &len);
	CHECK_STR(r, len, "Dc@d");
	r = queuefile_record(&s, &pos, &len);
	CHECK(r != NULL && len == 0);
	CHECK(queuefile_record(&s, &pos, &len) == NULL); /* torn */
	str_free(&s);
}

TEST(read_files)
{
	struct str data = STR_INIT;
	struct stat st;
	char fn[256];

	make_dir();
	put("f", "Fs@x\0", 5);
	snprintf(fn, sizeof fn, "%s/f", dir);
	CHECK_INT(queuefile_read(fn, &data, &st), 0);
	CHECK_MEM(data.s, data.len, "Fs@x\0", 5);
	CHECK_INT(st.st_size, 5);
	snprintf(fn, sizeof fn, "%s/missing", dir);
	CHECK_INT(queuefile_read(fn, &data, &st), -1);
	CHECK_INT(errno, ENOENT);
	CHECK_INT(data.len, 0);
	/* A FIFO would hang a reader that opened it blindly. */
	snprintf(fn, sizeof fn, "%s/fifo", dir);
	CHECK_INT(mkfifo(fn, 0600), 0);
	CHECK_INT(queuefile_read(fn, &data, &st), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(queuefile_read(dir, &data, &st), -1);
	CHECK_INT(errno, EINVAL);
	unlink(fn);
	snprintf(fn, sizeof fn, "%s/f", dir);
	unlink(fn);
	rmdir(dir);
	str_free(&data);
}

struct seen {
	int regular, other;
	unsigned long ids;
};

static void look(void *arg, const char *d, const struct dirent *de)
{
	struct seen *s = arg;
	unsigned long id;
	if (queuefile_is_regular(d, de))
		s->regular++;
	else
		s->other++;
	if (queuefile_parse_id(de->d_name, &id) == 0)
		s->ids += id;
}

TEST(listing)
{
	struct seen s = {0, 0, 0};
	char fn[256];

	make_dir();
	put("12", "", 0);
	put("30", "x", 1);
	put("junk", "x", 1);
	snprintf(fn, sizeof fn, "%s/5", dir);
	CHECK_INT(mkdir(fn, 0700), 0);
	CHECK_INT(queuefile_each(dir, look, &s), 0);
	CHECK_INT(s.regular, 3);
	CHECK_INT(s.other, 1); /* the directory; never "." or ".." */
	CHECK_INT(s.ids, 12 + 30 + 5);
	rmdir(fn);
	const char *names[] = {"12", "30", "junk"};
	for (int i = 0; i < 3; i++) {
		snprintf(fn, sizeof fn, "%s/%s", dir, names[i]);
		unlink(fn);
	}
	snprintf(fn, sizeof fn, "%s/none", dir);
	CHECK_INT(queuefile_each(fn, look, &s), -1);
	CHECK_INT(errno, ENOENT);
	rmdir(dir);
}

UNIT_MAIN(split_names, ids, records, read_files, listing)
