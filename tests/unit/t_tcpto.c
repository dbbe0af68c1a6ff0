/* t_tcpto.c: the timeout table: qmail's exact IPv4 record layout, our
 * IPv6 layout, the counting and skipping rules, slot reuse and eviction,
 * and the files (old qmail files written here byte by byte, creation,
 * clearing, errors). */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "remote/tcpto.h"
#include "unit.h"
#include "unit_tmp.h"

static void enter_tmpdir(void)
{
	unit_tmp_enter("t_tcpto");
	unit_mkdir("queue", 0755);
	unit_mkdir("queue/lock", 0755);
}

static size_t read_file(const char *path, unsigned char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;
	CHECK(fd >= 0);
	n = read(fd, buf, size);
	CHECK(n >= 0);
	close(fd);
	return n < 0 ? 0 : (size_t)n;
}

static struct dns_ip ip(const char *text)
{
	struct dns_ip a;
	if (dns_ip_parse(text, &a) < 0) {
		fprintf(stderr, "bad test address %s\n", text);
		_exit(2);
	}
	return a;
}

/* A qmail record, written the way qmail lays it out. */
static void qmail_record(unsigned char *r, const char *addr, unsigned count,
			 uint32_t when)
{
	struct dns_ip a = ip(addr);
	memset(r, 0, 16);
	memcpy(r, a.a, 4);
	r[4] = (unsigned char)count;
	r[8] = (unsigned char)(when & 0xff);
	r[9] = (unsigned char)(when >> 8 & 0xff);
	r[10] = (unsigned char)(when >> 16 & 0xff);
	r[11] = (unsigned char)(when >> 24 & 0xff);
}

#define T0 1700000000u

/* --- a table in memory --- */

TEST(ipv4_record_is_qmails_layout)
{
	struct tcpto_table t;
	struct dns_ip a = ip("192.0.2.1");
	unsigned char want[16];

	tcpto_table_init(&t, AF_INET);
	CHECK_INT(tcpto_record_size(AF_INET), 16);
	CHECK_INT(tcpto_table_note(&t, &a, 1, T0), 0);
	CHECK_INT(t.len, 16);
	qmail_record(want, "192.0.2.1", 1, T0);
	CHECK_MEM(t.buf, 16, want, 16);
	/* 0x6553f100 least significant byte first */
	CHECK_MEM(t.buf + 8, 4, "\x00\xf1\x53\x65", 4);
}

TEST(ipv6_record_layout)
{
	struct tcpto_table t;
	struct dns_ip a = ip("2001:db8::7");
	unsigned char want[32];

	tcpto_table_init(&t, AF_INET6);
	CHECK_INT(tcpto_record_size(AF_INET6), 32);
	CHECK_INT(tcpto_table_note(&t, &a, 1, 0x0102030405060708ULL), 0);
	CHECK_INT(t.len, 32);
	memset(want, 0, sizeof want);
	memcpy(want, a.a, 16);
	want[16] = 1;
	memcpy(want + 24, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	CHECK_MEM(t.buf, 32, want, 32);
}

TEST(timeouts_count_at_most_every_two_minutes)
{
	struct tcpto_table t;
	struct dns_ip a = ip("192.0.2.1");
	struct tcpto_entry e;

	tcpto_table_init(&t, AF_INET);
	CHECK_INT(tcpto_table_note(&t, &a, 1, T0), 0);
	CHECK_INT(tcpto_table_note(&t, &a, 1, T0 + 119), -1);
	CHECK_INT(tcpto_entry(&t, 0, &e), 1);
	CHECK_INT(e.count, 1);
	CHECK(e.when == T0);
	CHECK_INT(tcpto_table_note(&t, &a, 1, T0 + 120), 0);
	tcpto_entry(&t, 0, &e);
	CHECK_INT(e.count, 2);
	CHECK(e.when == T0 + 120);
	CHECK(dns_ip_equal(&e.ip, &a));
}

TEST(count_stops_at_ten)
{
	struct tcpto_table t;
	struct dns_ip a = ip("192.0.2.1");
	struct tcpto_entry e;

	tcpto_table_init(&t, AF_INET);
	for (unsigned i = 0; i < 15; i++)
		CHECK_INT(tcpto_table_note(&t, &a, 1, T0 + i * 200), 0);
	tcpto_entry(&t, 0, &e);
	CHECK_INT(e.count, TCPTO_MAX_COUNT);
	CHECK_INT(tcpto_slots(&t), 1);
}

TEST(blocked_after_two_timeouts_within_the_window)
{
	struct tcpto_table t;
	struct dns_ip a = ip("192.0.2.1"), b = ip("192.0.2.2");
	uint64_t window = 3840;

	tcpto_table_init(&t, AF_INET);
	tcpto_table_note(&t, &a, 1, T0);
	CHECK_INT(tcpto_table_blocked(&t, &a, T0 + 1, window), 0);
	tcpto_table_note(&t, &a, 1, T0 + 200);
	CHECK_INT(tcpto_table_blocked(&t, &a, T0 + 200, window), 1);
	CHECK_INT(tcpto_table_blocked(&t, &a, T0 + 200 + 3839, window), 1);
	CHECK_INT(tcpto_table_blocked(&t, &a, T0 + 200 + 3840, window), 0);
	CHECK_INT(tcpto_table_blocked(&t, &b, T0 + 200, window), 0);
	/* A v6 address is never found in the v4 table. */
	struct dns_ip v6 = ip("2001:db8::1");
	CHECK_INT(tcpto_table_blocked(&t, &v6, T0 + 200, window), 0);
}

TEST(success_clears_the_count_and_keeps_the_slot)
{
	struct tcpto_table t;
	struct dns_ip a = ip("192.0.2.1"), b = ip("192.0.2.2");
	struct tcpto_entry e;

	tcpto_table_init(&t, AF_INET);
	tcpto_table_note(&t, &a, 1, T0);
	tcpto_table_note(&t, &a, 1, T0 + 200);
	CHECK_INT(tcpto_table_note(&t, &a, 0, T0 + 300), 0);
	CHECK_INT(tcpto_entry(&t, 0, &e), 0);
	CHECK(dns_ip_equal(&e.ip, &a));
	CHECK_INT(tcpto_table_blocked(&t, &a, T0 + 300, 3840), 0);
	/* Nothing to clear: nothing changes. */
	CHECK_INT(tcpto_table_note(&t, &a, 0, T0 + 400), -1);
	CHECK_INT(tcpto_table_note(&t, &b, 0, T0 + 400), -1);
	CHECK_INT(tcpto_slots(&t), 1);
	/* A new timeout for a cleared address starts again at 1. */
	CHECK_INT(tcpto_table_note(&t, &a, 1, T0 + 301), 0);
	tcpto_entry(&t, 0, &e);
	CHECK_INT(e.count, 1);
}

TEST(new_address_takes_a_free_slot)
{
	struct tcpto_table t;
	struct dns_ip a = ip("192.0.2.1"), b = ip("192.0.2.2"),
		      c = ip("192.0.2.3");
	struct tcpto_entry e;

	tcpto_table_init(&t, AF_INET);
	tcpto_table_note(&t, &a, 1, T0);
	tcpto_table_note(&t, &b, 1, T0);
	tcpto_table_note(&t, &a, 0, T0); /* slot 0 is free again */
	CHECK_INT(tcpto_table_note(&t, &c, 1, T0 + 5), 0);
	tcpto_entry(&t, 0, &e);
	CHECK(dns_ip_equal(&e.ip, &c));
	CHECK_INT(tcpto_slots(&t), 2);
}

TEST(full_table_evicts_the_least_useful_record)
{
	struct tcpto_table t;
	struct dns_ip a;
	struct tcpto_entry e;
	char text[32];

	tcpto_table_init(&t, AF_INET);
	for (unsigned i = 0; i < TCPTO_SLOTS; i++) {
		snprintf(text, sizeof text, "10.0.0.%u", i);
		a = ip(text);
		CHECK_INT(tcpto_table_note(&t, &a, 1, T0 + 10000 + i), (long)i);
	}
	CHECK_INT(t.len, 1024);
	/* Slot 3 timed out twice: it is worth 1024 s more than slot 4. */
	a = ip("10.0.0.3");
	tcpto_table_note(&t, &a, 1, T0 + 10000 + 200);
	/* Slot 5 is older than all the others. */
	memcpy(t.buf + 5 * 16 + 8, "\x00\x00\x00\x00", 4);
	a = ip("10.0.1.1");
	CHECK_INT(tcpto_table_note(&t, &a, 1, T0 + 20000), 5);
	tcpto_entry(&t, 5, &e);
	CHECK(dns_ip_equal(&e.ip, &a));
	CHECK_INT(e.count, 1);
	/* Next: slot 0 (oldest now), not slot 3 with its two timeouts. */
	a = ip("10.0.1.2");
	CHECK_INT(tcpto_table_note(&t, &a, 1, T0 + 20000), 0);
	CHECK_INT(tcpto_slots(&t), TCPTO_SLOTS);
}

TEST(short_table_grows_before_evicting)
{
	struct tcpto_table t;
	struct dns_ip a = ip("192.0.2.1"), b = ip("192.0.2.2");

	tcpto_table_init(&t, AF_INET);
	tcpto_table_note(&t, &a, 1, T0);
	CHECK_INT(tcpto_table_note(&t, &b, 1, T0), 1);
	CHECK_INT(t.len, 32);
}

TEST(age_wraps_for_ipv4_and_not_for_ipv6)
{
	struct tcpto_table t4, t6;
	struct tcpto_entry e;

	tcpto_table_init(&t4, AF_INET);
	tcpto_table_init(&t6, AF_INET6);
	memset(&e, 0, sizeof e);
	e.when = 0xfffffff0u; /* stored just before the 32-bit wrap */
	CHECK(tcpto_age(&t4, &e, 0x100000010ULL) == 0x20);
	e.when = 100;
	CHECK(tcpto_age(&t6, &e, 150) == 50);
	CHECK(tcpto_age(&t6, &e, 50) == UINT64_MAX);
}

TEST(window_is_qmails)
{
	uint64_t w = tcpto_window();
	CHECK(w >= 60 * 64 && w <= 91 * 64);
	CHECK_INT(w % 64, 0);
}

TEST(mapped_address_is_ipv4)
{
	struct tcpto_table t;
	struct dns_ip a = ip("::ffff:192.0.2.1");

	tcpto_table_init(&t, AF_INET);
	CHECK_INT(a.af, AF_INET);
	CHECK_INT(tcpto_table_note(&t, &a, 1, T0), 0);
	CHECK_MEM(t.buf, 4, "\xc0\x00\x02\x01", 4);
}

TEST(wrong_family_is_left_alone)
{
	struct tcpto_table t;
	struct dns_ip a = ip("2001:db8::1");

	tcpto_table_init(&t, AF_INET);
	CHECK_INT(tcpto_table_note(&t, &a, 1, T0), -1);
	CHECK_INT(t.len, 0);
}

/* --- the files --- */

TEST(reads_an_old_qmail_file)
{
	unsigned char file[1024];
	struct dns_ip a = ip("192.0.2.1"), b = ip("192.0.2.2"),
		      c = ip("192.0.2.3");
	uint64_t now = (uint64_t)time(NULL);

	enter_tmpdir();
	memset(file, 0, sizeof file);
	qmail_record(file + 0 * 16, "192.0.2.1", 2, (uint32_t)(now - 10));
	qmail_record(file + 7 * 16, "192.0.2.2", 1, (uint32_t)(now - 10));
	qmail_record(file + 63 * 16, "192.0.2.3", 5, (uint32_t)(now - 7200));
	unit_write_file(TCPTO_FILE, file, sizeof file, 0644);
	CHECK_INT(tcpto_blocked(&a, now, 3840), 1);
	CHECK_INT(tcpto_blocked(&b, now, 3840), 0);
	CHECK_INT(tcpto_blocked(&c, now, 3840), 0);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(note_rewrites_only_its_record)
{
	unsigned char file[1024], after[1100];
	struct dns_ip a = ip("192.0.2.1");

	enter_tmpdir();
	/* Junk in the spare bytes of other records must survive. */
	memset(file, 0, sizeof file);
	qmail_record(file + 16, "192.0.2.9", 3, T0);
	file[16 + 5] = 0x55;
	file[16 + 14] = 0x66;
	unit_write_file(TCPTO_FILE, file, sizeof file, 0644);
	CHECK_INT(tcpto_note(&a, 1, T0 + 50), 0);
	CHECK_INT(read_file(TCPTO_FILE, after, sizeof after), 1024);
	qmail_record(file, "192.0.2.1", 1, T0 + 50);
	CHECK_MEM(after, 1024, file, 1024);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(note_creates_files_only_for_a_timeout)
{
	struct dns_ip a = ip("192.0.2.1"), b = ip("2001:db8::1");
	unsigned char got[64];
	struct stat st;

	enter_tmpdir();
	CHECK_INT(tcpto_note(&a, 0, T0), 0);
	CHECK_INT(tcpto_note(&b, 0, T0), 0);
	CHECK(stat(TCPTO_FILE, &st) < 0 && errno == ENOENT);
	CHECK(stat(TCPTO6_FILE, &st) < 0 && errno == ENOENT);
	CHECK_INT(tcpto_note(&b, 1, T0), 0);
	CHECK_INT(read_file(TCPTO6_FILE, got, sizeof got), 32);
	CHECK_MEM(got, 16, b.a, 16);
	CHECK_INT(got[16], 1);
	CHECK(stat(TCPTO_FILE, &st) < 0 && errno == ENOENT);
	CHECK_INT(tcpto_note(&b, 1, T0 + 121), 0);
	CHECK_INT(tcpto_blocked(&b, T0 + 200, 3840), 1);
	CHECK_INT(tcpto_blocked(&a, T0 + 200, 3840), 0);
	/* Mapped addresses go to qmail's file. */
	struct dns_ip m = ip("::ffff:192.0.2.1");
	CHECK_INT(tcpto_note(&m, 1, T0), 0);
	CHECK_INT(read_file(TCPTO_FILE, got, sizeof got), 16);
	CHECK_MEM(got, 4, "\xc0\x00\x02\x01", 4);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(read_of_missing_files_is_empty)
{
	struct tcpto_table t;
	struct dns_ip a = ip("192.0.2.1");

	enter_tmpdir();
	CHECK_INT(tcpto_read(AF_INET, &t), 0);
	CHECK_INT(t.len, 0);
	CHECK_INT(tcpto_read(AF_INET6, &t), 0);
	CHECK_INT(t.af, AF_INET6);
	CHECK_INT(tcpto_blocked(&a, T0, 3840), 0);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(partial_records_and_long_files)
{
	unsigned char file[1500];
	struct tcpto_table t;

	enter_tmpdir();
	memset(file, 0, sizeof file);
	/* two records and a half */
	unit_write_file(TCPTO_FILE, file, 40, 0644);
	CHECK_INT(tcpto_read(AF_INET, &t), 0);
	CHECK_INT(t.len, 32);
	CHECK_INT(tcpto_slots(&t), 2);
	/* beyond 64 records */
	unit_write_file(TCPTO_FILE, file, sizeof file, 0644);
	CHECK_INT(tcpto_read(AF_INET, &t), 0);
	CHECK_INT(t.len, 1024);
	CHECK_INT(tcpto_slots(&t), 64);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(clear_zeroes_both_files_and_creates_none)
{
	unsigned char file[2048], got[2100];
	struct stat st;

	enter_tmpdir();
	CHECK_INT(tcpto_clear(AF_INET), 0);
	CHECK_INT(tcpto_clear(AF_INET6), 0);
	CHECK(stat(TCPTO_FILE, &st) < 0 && errno == ENOENT);
	CHECK(stat(TCPTO6_FILE, &st) < 0 && errno == ENOENT);
	memset(file, 0xab, sizeof file);
	unit_write_file(TCPTO_FILE, file, 1024, 0644);
	unit_write_file(TCPTO6_FILE, file, 64, 0644);
	CHECK_INT(tcpto_clear(AF_INET), 0);
	CHECK_INT(tcpto_clear(AF_INET6), 0);
	memset(file, 0, sizeof file);
	CHECK_INT(read_file(TCPTO_FILE, got, sizeof got), 1024);
	CHECK_MEM(got, 1024, file, 1024);
	CHECK_INT(read_file(TCPTO6_FILE, got, sizeof got), 2048);
	CHECK_MEM(got, 2048, file, 2048);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(errors_are_reported)
{
	struct dns_ip a = ip("192.0.2.1");
	struct tcpto_table t;

	enter_tmpdir();
	CHECK_INT(mkdir(TCPTO_FILE, 0755), 0);
	errno = 0;
	CHECK_INT(tcpto_read(AF_INET, &t), -1);
	CHECK(errno != 0);
	CHECK_INT(tcpto_blocked(&a, T0, 3840), -1);
	CHECK_INT(tcpto_note(&a, 1, T0), -1);
	CHECK_INT(tcpto_clear(AF_INET), -1);
	CHECK_INT(rmdir(TCPTO_FILE), 0);
	/* queue/lock missing altogether */
	CHECK_INT(rmdir("queue/lock"), 0);
	CHECK_INT(tcpto_note(&a, 1, T0), -1);
	CHECK_INT(errno, ENOENT);
	CHECK_INT(unit_tmp_leave(), 0);
}

TEST(writer_waits_for_the_lock)
{
	struct dns_ip a = ip("192.0.2.1");
	unsigned char got[16];
	int fd, pipefd[2];
	char c;

	enter_tmpdir();
	unit_write_file(TCPTO_FILE, "", 0, 0644);
	fd = open(TCPTO_FILE, O_RDWR);
	CHECK(fd >= 0);
	CHECK_INT(flock(fd, LOCK_EX), 0);
	CHECK_INT(pipe(pipefd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		int r = tcpto_note(&a, 1, T0);
		ssize_t w = write(pipefd[1], r == 0 ? "y" : "n", 1);
		_exit(w == 1 ? 0 : 1);
	}
	close(pipefd[1]);
	usleep(200000);
	/* Still locked out: nothing written yet. */
	CHECK_INT(read_file(TCPTO_FILE, got, sizeof got), 0);
	CHECK_INT(flock(fd, LOCK_UN), 0);
	CHECK_INT(read(pipefd[0], &c, 1), 1);
	CHECK_INT(c, 'y');
	waitpid(pid, NULL, 0);
	CHECK_INT(read_file(TCPTO_FILE, got, sizeof got), 16);
	close(fd);
	CHECK_INT(unit_tmp_leave(), 0);
}

UNIT_MAIN(ipv4_record_is_qmails_layout, ipv6_record_layout,
	  timeouts_count_at_most_every_two_minutes, count_stops_at_ten,
	  blocked_after_two_timeouts_within_the_window,
	  success_clears_the_count_and_keeps_the_slot,
	  new_address_takes_a_free_slot,
	  full_table_evicts_the_least_useful_record,
	  short_table_grows_before_evicting,
	  age_wraps_for_ipv4_and_not_for_ipv6, window_is_qmails,
	  mapped_address_is_ipv4, wrong_family_is_left_alone,
	  reads_an_old_qmail_file, note_rewrites_only_its_record,
	  note_creates_files_only_for_a_timeout, read_of_missing_files_is_empty,
	  partial_records_and_long_files,
	  clear_zeroes_both_files_and_creates_none, errors_are_reported,
	  writer_waits_for_the_lock)
