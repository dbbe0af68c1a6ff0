/* t_header.c: splitting a header into fields: folding, CR LF, the three
 * ways a header ends, and the bounds on lines and on the whole. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/header.h"
#include "unit.h"

static char tmpdir[] = "/tmp/t_header.XXXXXX";
static char path[64];

/* An fd reading data from a file in a fresh directory, which is removed
 * at once (the open fd keeps the file alive). */
static int input(const char *data, size_t len)
{
	int fd;

	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		_exit(2);
	}
	snprintf(path, sizeof path, "%s/in", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, data, len), (long long)len);
	CHECK_INT(lseek(fd, 0, SEEK_SET), 0);
	CHECK_INT(unlink(path), 0);
	CHECK_INT(rmdir(tmpdir), 0);
	return fd;
}

struct reader {
	struct buf b;
	char space[BUF_SIZE];
};

static void reader_open(struct reader *r, const char *data, size_t len)
{
	buf_init(&r->b, input(data, len), r->space, sizeof r->space, 0);
}

/* Everything still unread. */
static void rest_of(struct reader *r, struct str *out)
{
	ssize_t n;
	while ((n = buf_fill(&r->b)) > 0) {
		CHECK_INT(str_append(out, buf_peek(&r->b), (size_t)n), 0);
		buf_skip(&r->b, (size_t)n);
	}
	CHECK_INT(n, 0);
}

static void check_field(const struct header *h, size_t i, const char *name,
			const char *value)
{
	size_t n;
	const char *p = header_name(h, i, &n);
	CHECK_STR(p, n, name);
	p = header_value(h, i, &n);
	CHECK_STR(p, n, value);
}

/* A string of n copies of c after prefix; caller frees. */
static char *filled(const char *prefix, char c, size_t n, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	char *s = malloc(pl + n + sl + 1);
	CHECK(s != NULL);
	memcpy(s, prefix, pl);
	memset(s + pl, c, n);
	memcpy(s + pl + n, suffix, sl + 1);
	return s;
}

TEST(fields_with_folding)
{
	static const char msg[] = "Subject: hello\n"
				  "To: a@b,\n"
				  "  c@d\n"
				  "\tmore\n"
				  "X-Empty:\n"
				  "\n"
				  "body line\n";
	struct reader r;
	struct header h;
	struct str body = STR_INIT;

	reader_open(&r, msg, sizeof msg - 1);
	header_init(&h);
	CHECK_INT(header_read(&h, &r.b), 0);
	CHECK_INT(h.nfields, 3);
	check_field(&h, 0, "Subject", " hello\n");
	check_field(&h, 1, "To", " a@b,\n  c@d\n\tmore\n");
	check_field(&h, 2, "X-Empty", "\n");
	CHECK_INT(h.end, HEADER_BLANK);
	CHECK_STR(h.rest.s, h.rest.len, "\n");
	CHECK_INT(h.crlf, 0);
	/* Every byte is kept, in order. */
	CHECK_STR(h.text.s, h.text.len,
		  "Subject: hello\nTo: a@b,\n  c@d\n\tmore\nX-Empty:\n");
	rest_of(&r, &body);
	CHECK_STR(body.s, body.len, "body line\n");
	CHECK(header_is(&h, 1, "to"));
	CHECK(header_is(&h, 1, "TO"));
	CHECK(!header_is(&h, 1, "T"));
	CHECK(!header_is(&h, 0, "Subjects"));
	header_free(&h);
	str_free(&body);
}

TEST(crlf_kept)
{
	static const char msg[] = "A: 1\r\nB: 2\r\n 3\r\n\r\nbody\r\n";
	struct reader r;
	struct header h;
	struct str body = STR_INIT;

	reader_open(&r, msg, sizeof msg - 1);
	header_init(&h);
	CHECK_INT(header_read(&h, &r.b), 0);
	CHECK_INT(h.crlf, 1);
	CHECK_INT(h.nfields, 2);
	check_field(&h, 1, "B", " 2\r\n 3\r\n");
	CHECK_INT(h.end, HEADER_BLANK);
	CHECK_STR(h.rest.s, h.rest.len, "\r\n");
	rest_of(&r, &body);
	CHECK_STR(body.s, body.len, "body\r\n");
	header_free(&h);
	str_free(&body);
}

TEST(no_separator_all_header)
{
	static const char msg[] = "A: 1\nB: 2";
	struct reader r;
	struct header h;

	reader_open(&r, msg, sizeof msg - 1);
	header_init(&h);
	CHECK_INT(header_read(&h, &r.b), 0);
	CHECK_INT(h.end, HEADER_EOF);
	CHECK_INT(h.nfields, 2);
	check_field(&h, 1, "B", " 2");
	CHECK_INT(h.rest.len, 0);
	header_free(&h);
}

TEST(empty_input)
{
	struct reader r;
	struct header h;

	reader_open(&r, "", 0);
	header_init(&h);
	CHECK_INT(header_read(&h, &r.b), 0);
	CHECK_INT(h.end, HEADER_EOF);
	CHECK_INT(h.nfields, 0);
	header_free(&h);
}

TEST(body_line_ends_header)
{
	static const char msg[] = "Subject: x\nFrom joe Mon Jan 1\nmore\n";
	struct reader r;
	struct header h;
	struct str body = STR_INIT;

	reader_open(&r, msg, sizeof msg - 1);
	header_init(&h);
	CHECK_INT(header_read(&h, &r.b), 0);
	CHECK_INT(h.nfields, 1);
	CHECK_INT(h.end, HEADER_BODYLINE);
	CHECK_STR(h.rest.s, h.rest.len, "From joe Mon Jan 1\n");
	rest_of(&r, &body);
	CHECK_STR(body.s, body.len, "more\n");
	header_free(&h);
	str_free(&body);
}

TEST(leading_continuation_is_body)
{
	struct header h;

	header_init(&h);
	CHECK_INT(header_line(&h, " indented\n", 10), 0);
	CHECK_INT(h.end, HEADER_BODYLINE);
	CHECK_INT(h.nfields, 0);
	/* Once ended, nothing more is taken. */
	CHECK_INT(header_line(&h, "A: b\n", 5), 0);
	CHECK_INT(h.nfields, 0);
	header_free(&h);
}

TEST(field_name_rules)
{
	struct header h;

	CHECK(header_is_field_start("Subject: x", 10));
	CHECK(header_is_field_start("Subject :x", 10));
	CHECK(header_is_field_start("X-A.b_c:", 8));
	CHECK(!header_is_field_start(": x", 3));
	CHECK(!header_is_field_start("Sub ject: x", 11));
	CHECK(!header_is_field_start("Subject", 7));
	CHECK(!header_is_field_start("Sub\0ject: x", 11));
	header_init(&h);
	CHECK_INT(header_line(&h, "Subject\t : x\n", 13), 1);
	check_field(&h, 0, "Subject", " x\n");
	header_free(&h);
}

TEST(line_at_limit_accepted)
{
	char *line = filled("X: ", 'a', HEADER_LINE_MAX - 4, "\n");
	struct reader r;
	struct header h;

	CHECK_INT(strlen(line), HEADER_LINE_MAX);
	reader_open(&r, line, strlen(line));
	header_init(&h);
	CHECK_INT(header_read(&h, &r.b), 0);
	CHECK_INT(h.nfields, 1);
	CHECK_INT(h.field[0].len, HEADER_LINE_MAX);
	header_free(&h);
	free(line);
}

TEST(long_field_line_refused)
{
	char *line = filled("X: ", 'a', HEADER_LINE_MAX, "\n\nbody\n");
	struct reader r;
	struct header h;

	reader_open(&r, line, strlen(line));
	header_init(&h);
	errno = 0;
	CHECK_INT(header_read(&h, &r.b), -1);
	CHECK_INT(errno, EMSGSIZE);
	header_free(&h);
	free(line);
}

TEST(long_continuation_refused)
{
	char *line = filled("X: a\n ", 'a', HEADER_LINE_MAX, "\n\n");
	struct reader r;
	struct header h;

	reader_open(&r, line, strlen(line));
	header_init(&h);
	errno = 0;
	CHECK_INT(header_read(&h, &r.b), -1);
	CHECK_INT(errno, EMSGSIZE);
	header_free(&h);
	free(line);
}

TEST(long_line_given_directly_refused)
{
	char *line = filled("X: ", 'a', HEADER_LINE_MAX, "\n");
	struct header h;

	header_init(&h);
	errno = 0;
	CHECK_INT(header_line(&h, line, strlen(line)), -1);
	CHECK_INT(errno, EMSGSIZE);
	CHECK_INT(h.nfields, 0);
	header_free(&h);
	free(line);
}

TEST(long_body_line_without_header_is_body)
{
	char *msg = filled("", 'b', HEADER_LINE_MAX + 100, "\nend\n");
	struct reader r;
	struct header h;
	struct str body = STR_INIT;

	reader_open(&r, msg, strlen(msg));
	header_init(&h);
	CHECK_INT(header_read(&h, &r.b), 0);
	CHECK_INT(h.end, HEADER_BODYLINE);
	CHECK_INT(h.nfields, 0);
	CHECK_INT(h.rest.len, HEADER_LINE_MAX);
	rest_of(&r, &body);
	CHECK_INT(h.rest.len + body.len, strlen(msg));
	CHECK_STR(body.s + body.len - 5, 5, "\nend\n");
	header_free(&h);
	str_free(&body);
	free(msg);
}

TEST(total_size_refused)
{
	/* 17 fields of 64000 bytes pass 1 MB. */
	char *line = filled("X: ", 'a', 64000 - 4, "\n");
	struct header h;
	size_t len = strlen(line);
	int r = 1, i;

	header_init(&h);
	for (i = 0; i < 17 && r == 1; i++)
		r = header_line(&h, line, len);
	CHECK_INT(r, -1);
	CHECK_INT(errno, EMSGSIZE);
	CHECK_INT(i, HEADER_MAX / len + 1);
	CHECK(h.text.len <= HEADER_MAX);
	header_free(&h);
	free(line);
}

TEST(total_size_refused_through_continuations)
{
	char *line = filled(" ", 'a', 64000 - 2, "\n");
	struct header h;
	size_t len = strlen(line);
	int r = 1, i;

	header_init(&h);
	CHECK_INT(header_line(&h, "X: a\n", 5), 1);
	for (i = 0; i < 17 && r == 1; i++)
		r = header_line(&h, line, len);
	CHECK_INT(r, -1);
	CHECK_INT(errno, EMSGSIZE);
	CHECK(h.text.len <= HEADER_MAX);
	header_free(&h);
	free(line);
}

TEST(many_fields)
{
	struct header h;
	char line[32];

	header_init(&h);
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(line, sizeof line, "X-%d: v\n", i);
		CHECK_INT(header_line(&h, line, (size_t)n), 1);
	}
	CHECK_INT(h.nfields, 1000);
	check_field(&h, 999, "X-999", " v\n");
	header_eof(&h);
	CHECK_INT(h.end, HEADER_EOF);
	header_free(&h);
}

TEST(read_error_reported)
{
	struct buf b;
	char space[64];
	struct header h;

	buf_init(&b, -1, space, sizeof space, 0);
	header_init(&h);
	errno = 0;
	CHECK_INT(header_read(&h, &b), -1);
	CHECK_INT(errno, EBADF);
	header_free(&h);
}

UNIT_MAIN(fields_with_folding, crlf_kept, no_separator_all_header, empty_input,
	  body_line_ends_header, leading_continuation_is_body, field_name_rules,
	  line_at_limit_accepted, long_field_line_refused,
	  long_continuation_refused, long_line_given_directly_refused,
	  long_body_line_without_header_is_body, total_size_refused,
	  total_size_refused_through_continuations, many_fields,
	  read_error_reported)
