/* t_sendlog.c: qmail-send log lines into per-domain statistics, including
 * restarts, reused ids, windows, damage and truncation. */
#include <stdio.h>

#include "mail/sendlog.h"
#include "unit.h"

#define T0 1700000000LL /* some second in 2023 */

/* Feeds each line of text (separated by '\n'). */
static void feed(struct sendlog *sl, const char *text)
{
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);
		CHECK_INT(sendlog_line(sl, text, n), 0);
		text += n + (nl ? 1 : 0);
	}
}

/* One line with multilog's stamp for second s, millisecond ms. */
static void feed_at(struct sendlog *sl, long long s, long ms, const char *line)
{
	char buf[1024];
	int n = snprintf(buf, sizeof buf, "@%016llx%08lx %s",
			 0x400000000000000aULL + (unsigned long long)s,
			 (unsigned long)ms * 1000000UL, line);
	CHECK(n > 0 && (size_t)n < sizeof buf);
	CHECK_INT(sendlog_line(sl, buf, (size_t)n), 0);
}

static const struct sendlog_stats *domain(struct sendlog *sl, const char *name)
{
	const struct sendlog_stats **v;
	size_t n;
	CHECK_INT(sendlog_domains(sl, &v, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i]->name, name) == 0)
			return v[i];
	return NULL;
}

static void check_counts(const struct sendlog_stats *s, unsigned long msgs,
			 unsigned long rcpts, unsigned long delivered,
			 unsigned long deferrals, unsigned long failures)
{
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(s->msgs, msgs);
	CHECK_INT(s->rcpts, rcpts);
	CHECK_INT(s->delivered, delivered);
	CHECK_INT(s->deferrals, deferrals);
	CHECK_INT(s->failures, failures);
}

TEST(stamp_parsing)
{
	int64_t ms = 0;
	/* 2^62 + 10 + 1700000000 = 0x400000006553f10a; 5 ms. */
	CHECK_INT(sendlog_stamp("@400000006553f10a004c4b40 x", 27, &ms), 26);
	CHECK_INT(ms, T0 * 1000 + 5);
	CHECK_INT(sendlog_stamp("@400000006553F10A004C4B40 x", 27, &ms), 26);
	/* Not hex, no space after it, too short, nanoseconds too big, a
	 * label before 1970 or after 2242: no stamp. */
	CHECK_INT(sendlog_stamp("@400000006553f10g004c4b40 x", 27, &ms), 0);
	CHECK_INT(sendlog_stamp("@400000006553f10a004c4b40x", 26, &ms), 0);
	CHECK_INT(sendlog_stamp("@400000006553f10a004c4b4 ", 25, &ms), 0);
	CHECK_INT(sendlog_stamp("@400000006553f10a3b9aca00 x", 27, &ms), 0);
	CHECK_INT(sendlog_stamp("@4000000000000009004c4b40 x", 27, &ms), 0);
	CHECK_INT(sendlog_stamp("@ffffffffffffffff004c4b40 x", 27, &ms), 0);
	CHECK_INT(sendlog_stamp("new msg 1", 9, &ms), 0);
}

TEST(simple_local_delivery_with_delay)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed_at(sl, T0, 0, "new msg 42");
	feed_at(sl, T0, 0,
		"info msg 42: bytes 241 from <demo@example.test> qp 9 uid 99");
	feed_at(sl, T0, 1,
		"starting delivery 1: msg 42 to local alice@Example.TEST");
	feed_at(sl, T0, 1, "status: local 1/10 remote 0/20");
	feed_at(sl, T0, 2,
		"starting delivery 2: msg 42 to local bob@example.test");
	feed_at(sl, T0, 60, "delivery 1: success: did_1+0+0/");
	feed_at(sl, T0 + 2, 500, "delivery 2: success: did_1+0+0/");
	feed_at(sl, T0 + 2, 500, "end msg 42");

	const struct sendlog_stats *s = domain(sl, "example.test");
	check_counts(s, 1, 2, 2, 0, 0);
	CHECK_INT(s->delays, 2);
	CHECK_INT(s->delay_sum, 60 + 2500);
	CHECK_INT(s->delay_max, 2500);
	const struct sendlog_totals *t = sendlog_totals(sl);
	check_counts(&t->all, 1, 2, 2, 0, 0);
	CHECK_INT(t->messages, 1);
	CHECK_INT(t->bytes, 241);
	CHECK_INT(t->lines, 8);
	CHECK_INT(t->unparsed, 0);
	CHECK_INT(t->stamped, 1);
	CHECK_INT(t->first, T0 * 1000);
	CHECK_INT(t->last, (T0 + 2) * 1000 + 500);
	CHECK_INT(sendlog_in_progress(sl), 0);
	sendlog_free(sl);
}

TEST(unstamped_log_counts_without_delays)
{
	struct sendlog *sl = sendlog_new((T0 + 100) * 1000);
	feed(sl, "new msg 7\n"
		 "starting delivery 1: msg 7 to remote x@remote.test\n"
		 "delivery 1: success: 192.0.2.1_accepted_message./\n"
		 "end msg 7\n");
	const struct sendlog_stats *s = domain(sl, "remote.test");
	check_counts(s, 1, 1, 1, 0, 0);
	CHECK_INT(s->delays, 0);
	CHECK_INT(sendlog_totals(sl)->stamped, 0);
	sendlog_free(sl);
}

TEST(deferrals_count_attempts_but_one_recipient)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	const char *defer = "Sorry,_I_wasn't_able_to_establish_an_SMTP_"
			    "connection._(#4.4.1)/";
	char line[256];
	feed_at(sl, T0, 0, "new msg 5");
	for (int i = 1; i <= 3; i++) {
		snprintf(line, sizeof line,
			 "starting delivery %d: msg 5 to remote r@far.test", i);
		feed_at(sl, T0 + i * 100, 0, line);
		snprintf(line, sizeof line, "delivery %d: deferral: %s", i,
			 defer);
		feed_at(sl, T0 + i * 100, 5, line);
	}
	feed_at(sl, T0 + 400, 0,
		"starting delivery 4: msg 5 to remote r@far.test");
	feed_at(sl, T0 + 400, 250, "delivery 4: success: ok/");
	feed_at(sl, T0 + 400, 250, "end msg 5");
	const struct sendlog_stats *s = domain(sl, "far.test");
	check_counts(s, 1, 1, 1, 3, 0);
	CHECK_INT(s->delay_max, 400250);
	const struct sendlog_reason *r = sendlog_top(&s->deferred);
	CHECK(r != NULL);
	if (r) {
		CHECK_INT(r->count, 3);
		CHECK(strcmp(r->text, "Sorry, I wasn't able to establish an "
				      "SMTP connection. (#4.4.1)") == 0);
	}
	CHECK(sendlog_top(&s->failed) == NULL);
	sendlog_free(sl);
}

TEST(failures_and_the_most_common_reason)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "new msg 1\n"
		 "starting delivery 1: msg 1 to local a@x.test\n"
		 "starting delivery 2: msg 1 to local b@x.test\n"
		 "starting delivery 3: msg 1 to local c@x.test\n"
		 "starting delivery 4: msg 1 to local d@x.test\n"
		 "delivery 1: failure: Sorry,_no_mailbox_here_by_that_name._"
		 "(#5.1.1)/\n"
		 "delivery 2: failure: zzz/\n"
		 "delivery 3: failure: Sorry,_no_mailbox_here_by_that_name._"
		 "(#5.1.1)/\n"
		 "delivery 4: failure:\n"
		 "bounce msg 1 qp 77\n"
		 "end msg 1\n");
	const struct sendlog_stats *s = domain(sl, "x.test");
	check_counts(s, 1, 4, 0, 0, 4);
	CHECK_INT(s->failed.n, 3);
	const struct sendlog_reason *r = sendlog_top(&s->failed);
	CHECK(r && r->count == 2 &&
	      strcmp(r->text,
		     "Sorry, no mailbox here by that name. (#5.1.1)") == 0);
	int empty = 0;
	for (size_t i = 0; i < s->failed.n; i++)
		empty += strcmp(s->failed.v[i].text, "(no text)") == 0;
	CHECK_INT(empty, 1);
	CHECK_INT(sendlog_totals(sl)->bounces, 1);
	sendlog_free(sl);
}

TEST(reason_ties_go_to_the_smallest_text)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "new msg 1\n"
		 "starting delivery 1: msg 1 to remote a@x.test\n"
		 "delivery 1: deferral: b_later/\n"
		 "starting delivery 2: msg 1 to remote a@x.test\n"
		 "delivery 2: deferral: a_sooner/\n");
	const struct sendlog_reason *r =
	    sendlog_top(&domain(sl, "x.test")->deferred);
	CHECK(r && strcmp(r->text, "a sooner") == 0 && r->count == 1);
	sendlog_free(sl);
}

TEST(reasons_are_bounded)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	char line[128];
	feed(sl, "new msg 1");
	for (int i = 1; i <= SENDLOG_REASONS + 3; i++) {
		snprintf(line, sizeof line,
			 "starting delivery %d: msg 1 to remote a@x.test", i);
		feed(sl, line);
		snprintf(line, sizeof line, "delivery %d: deferral: text_%d/",
			 i, i);
		feed(sl, line);
	}
	const struct sendlog_stats *s = domain(sl, "x.test");
	CHECK_INT(s->deferred.n, SENDLOG_REASONS);
	CHECK_INT(s->deferred.other, 3);
	CHECK_INT(s->deferrals, SENDLOG_REASONS + 3);
	/* A long text is cut, never overflows. */
	char longline[1200];
	int n = snprintf(longline, sizeof longline,
			 "starting delivery %d: msg 1 to remote b@y.test",
			 SENDLOG_REASONS + 10);
	feed(sl, longline);
	n = snprintf(longline, sizeof longline,
		     "delivery %d: failure: ", SENDLOG_REASONS + 10);
	memset(longline + n, 'x', 1000);
	CHECK_INT(sendlog_line(sl, longline, (size_t)n + 1000), 0);
	const struct sendlog_reason *r =
	    sendlog_top(&domain(sl, "y.test")->failed);
	CHECK(r && strlen(r->text) == SENDLOG_REASON_LEN);
	sendlog_free(sl);
}

/* qmail-send restarted after a crash: delivery 1 of the old run never
 * reported, and the new run's delivery 1 is another recipient. */
TEST(restart_reuses_delivery_numbers)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "new msg 10\n"
		 "starting delivery 1: msg 10 to local a@one.test\n"
		 "starting delivery 2: msg 10 to local b@one.test\n"
		 "delivery 2: success: did_1+0+0/\n"
		 /* crash: no result for 1; the new run starts over */
		 "status: local 0/10 remote 0/20\n"
		 "starting delivery 1: msg 10 to local a@one.test\n"
		 "new msg 11\n"
		 "starting delivery 2: msg 11 to remote z@two.test\n"
		 "delivery 2: failure: no/\n"
		 "delivery 1: success: did_1+0+0/\n"
		 "end msg 10\n"
		 "end msg 11\n");
	check_counts(domain(sl, "one.test"), 1, 2, 2, 0, 0);
	check_counts(domain(sl, "two.test"), 1, 1, 0, 0, 1);
	const struct sendlog_totals *t = sendlog_totals(sl);
	CHECK_INT(t->restarts, 1);
	CHECK_INT(t->unmatched, 0);
	CHECK_INT(sendlog_in_progress(sl), 0);
	sendlog_free(sl);
}

/* A clean stop logs "status: exiting": that is the one restart, and the
 * next run's delivery 1 is not counted again. */
TEST(clean_stop_counts_once)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "new msg 3\n"
		 "starting delivery 1: msg 3 to remote a@r.test\n"
		 "delivery 1: deferral: later/\n"
		 "status: exiting\n"
		 "status: local 0/10 remote 0/20\n"
		 "starting delivery 1: msg 3 to remote a@r.test\n"
		 "delivery 1: deferral: later/\n"
		 "starting delivery 2: msg 3 to remote a@r.test\n");
	check_counts(domain(sl, "r.test"), 1, 1, 0, 2, 0);
	CHECK_INT(sendlog_totals(sl)->restarts, 1);
	CHECK_INT(sendlog_in_progress(sl), 1);
	sendlog_free(sl);
}

/* Ids are inode numbers: after "end msg 9", "new msg 9" is another
 * message, with its own recipients and its own birth. */
TEST(ids_reused_after_end)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed_at(sl, T0, 0, "new msg 9");
	feed_at(sl, T0, 0, "starting delivery 1: msg 9 to local a@x.test");
	feed_at(sl, T0, 100, "delivery 1: success: ok/");
	feed_at(sl, T0, 100, "end msg 9");
	feed_at(sl, T0 + 50, 0, "new msg 9");
	feed_at(sl, T0 + 50, 0, "starting delivery 2: msg 9 to local a@x.test");
	feed_at(sl, T0 + 50, 300, "delivery 2: success: ok/");
	feed_at(sl, T0 + 50, 300, "end msg 9");
	const struct sendlog_stats *s = domain(sl, "x.test");
	check_counts(s, 2, 2, 2, 0, 0);
	CHECK_INT(s->delay_max, 300); /* not 50.3 s from the first birth */
	CHECK_INT(s->delay_sum, 400);
	CHECK_INT(sendlog_totals(sl)->messages, 2);
	sendlog_free(sl);
}

/* "new msg" for an id still open (its end was lost in a crash) starts a
 * new message all the same. */
TEST(new_msg_without_end_starts_over)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed_at(sl, T0, 0, "new msg 9");
	feed_at(sl, T0, 0, "starting delivery 1: msg 9 to local a@x.test");
	feed_at(sl, T0, 10, "delivery 1: success: ok/");
	feed_at(sl, T0 + 10, 0, "new msg 9");
	feed_at(sl, T0 + 10, 0, "starting delivery 2: msg 9 to local a@x.test");
	feed_at(sl, T0 + 10, 20, "delivery 2: success: ok/");
	const struct sendlog_stats *s = domain(sl, "x.test");
	check_counts(s, 2, 2, 2, 0, 0);
	CHECK_INT(s->delay_max, 20);
	sendlog_free(sl);
}

/* A success repeated for a recipient already done (qmail-send may
 * deliver twice after a crash) is not a second recipient delivered. */
TEST(repeat_success_counts_once)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "new msg 4\n"
		 "starting delivery 1: msg 4 to local a@x.test\n"
		 "delivery 1: success: ok/\n"
		 "starting delivery 1: msg 4 to local a@x.test\n"
		 "delivery 1: success: ok/\n");
	check_counts(domain(sl, "x.test"), 1, 1, 1, 0, 0);
	sendlog_free(sl);
}

/* Only results in the window count; a message born before it still
 * gives its delay, and what happened before it still shapes the state. */
TEST(window_counts_recent_results_only)
{
	struct sendlog *sl = sendlog_new((T0 + 1000) * 1000);
	feed_at(sl, T0, 0, "new msg 1");
	feed_at(sl, T0, 0, "info msg 1: bytes 100 from <a@b> qp 1 uid 1");
	feed_at(sl, T0, 0, "starting delivery 1: msg 1 to remote a@r.test");
	feed_at(sl, T0, 1, "delivery 1: deferral: old/");
	feed_at(sl, T0, 2, "starting delivery 2: msg 1 to remote b@r.test");
	feed_at(sl, T0, 3, "delivery 2: success: ok/");
	feed_at(sl, T0, 4, "warning: old trouble");
	feed_at(sl, T0 + 1500, 0,
		"starting delivery 3: msg 1 to remote a@r.test");
	feed_at(sl, T0 + 1500, 0, "delivery 3: success: ok/");
	feed_at(sl, T0 + 1500, 0, "end msg 1");
	const struct sendlog_stats *s = domain(sl, "r.test");
	check_counts(s, 1, 1, 1, 0, 0);
	CHECK_INT(s->delay_max, 1500000);
	CHECK(sendlog_top(&s->deferred) == NULL);
	const struct sendlog_totals *t = sendlog_totals(sl);
	CHECK_INT(t->messages, 0);
	CHECK_INT(t->bytes, 0);
	CHECK_INT(t->warnings, 0);
	CHECK_INT(t->first, (T0 + 1500) * 1000);
	CHECK_INT(t->lines, 10);
	sendlog_free(sl);

	/* Stamped, but all of it before the window. */
	sl = sendlog_new((T0 + 1000) * 1000);
	feed_at(sl, T0, 0, "new msg 1");
	CHECK_INT(sendlog_totals(sl)->stamped, 1);
	CHECK_INT(sendlog_totals(sl)->first, 0);
	CHECK_INT(sendlog_totals(sl)->last, 0);
	CHECK_INT(sendlog_totals(sl)->messages, 0);
	sendlog_free(sl);
}

/* The log began while a message was under way. */
TEST(message_from_before_the_log)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed_at(sl, T0, 0, "starting delivery 8: msg 77 to local a@x.test");
	feed_at(sl, T0, 5, "delivery 8: success: ok/");
	feed_at(sl, T0, 6, "delivery 7: success: ok/");
	feed_at(sl, T0, 6, "end msg 77");
	const struct sendlog_stats *s = domain(sl, "x.test");
	check_counts(s, 1, 1, 1, 0, 0);
	CHECK_INT(s->delays, 0);
	CHECK_INT(sendlog_totals(sl)->unmatched, 1);
	sendlog_free(sl);
}

TEST(garbage_and_truncated_lines_change_nothing)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "new msg 1\n"
		 "starting delivery 1: msg 1 to local a@x.test\n"
		 "\n"
		 "random text\n"
		 "new msg\n"
		 "new msg 1x\n"
		 "new msg 99999999999999999999999999\n"
		 "end msg 1 2\n"
		 "starting delivery 2: msg 1 to\n"
		 "starting delivery 2: msg 1 to elsewhere a@x.test\n"
		 "starting delivery : msg 1 to local a@x.test\n"
		 "delivery 1: succ\n"
		 "delivery 1 success: ok\n"
		 "@4000000zzzzzzzzzzzzzzzzz new msg 1\n"
		 "delivery 1: success: ok/\n"
		 "end msg 1\n");
	const struct sendlog_totals *t = sendlog_totals(sl);
	CHECK_INT(t->lines, 16);
	CHECK_INT(t->unparsed, 12);
	CHECK_INT(t->messages, 1);
	CHECK_INT(t->restarts, 0);
	check_counts(domain(sl, "x.test"), 1, 1, 1, 0, 0);
	/* Bytes that are not text are kept as they are, and a NUL does not
	 * end the line early. */
	CHECK_INT(sendlog_line(sl, "new msg 5\0junk", 14), 0);
	CHECK_INT(t->unparsed, 13);
	CHECK_INT(t->messages, 1);
	sendlog_free(sl);
}

/* A message's end logged while a delivery is still in flight (only a
 * damaged log does this): the result still counts, and nothing dangles. */
TEST(end_before_result)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "new msg 1\n"
		 "starting delivery 1: msg 1 to local a@x.test\n"
		 "end msg 1\n"
		 "new msg 1\n"
		 "starting delivery 2: msg 1 to local a@x.test\n"
		 "delivery 1: success: ok/\n"
		 "delivery 2: failure: no/\n");
	check_counts(domain(sl, "x.test"), 2, 2, 1, 0, 1);
	sendlog_free(sl);
}

TEST(domains_fold_case_and_sort)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "new msg 1\n"
		 "starting delivery 1: msg 1 to remote a@B.test\n"
		 "starting delivery 2: msg 1 to remote b@b.TEST\n"
		 "starting delivery 3: msg 1 to remote c@a.test\n"
		 "starting delivery 4: msg 1 to remote d@c.test\n"
		 "starting delivery 5: msg 1 to local postmaster\n"
		 "starting delivery 6: msg 1 to remote x@q@c.test\n"
		 "starting delivery 7: msg 1 to remote never@reported.test\n"
		 "delivery 1: success: ok/\n"
		 "delivery 2: success: ok/\n"
		 "delivery 3: success: ok/\n"
		 "delivery 4: success: ok/\n"
		 "delivery 5: success: ok/\n"
		 "delivery 6: success: ok/\n");
	const struct sendlog_stats **v;
	size_t n;
	CHECK_INT(sendlog_domains(sl, &v, &n), 0);
	CHECK_INT(n, 4);
	if (n == 4) {
		CHECK(strcmp(v[0]->name, "b.test") == 0 && v[0]->rcpts == 2);
		CHECK(strcmp(v[1]->name, "c.test") == 0 && v[1]->rcpts == 2);
		CHECK(strcmp(v[2]->name, "") == 0 && v[2]->rcpts == 1);
		CHECK(strcmp(v[3]->name, "a.test") == 0 && v[3]->rcpts == 1);
	}
	/* One message, counted once per domain and once in the totals. */
	CHECK_INT(v[0]->msgs, 1);
	CHECK_INT(sendlog_totals(sl)->all.msgs, 1);
	CHECK_INT(sendlog_totals(sl)->all.rcpts, 6);
	CHECK_INT(sendlog_in_progress(sl), 1);
	sendlog_free(sl);
}

TEST(local_and_remote_recipients_are_distinct)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "new msg 1\n"
		 "starting delivery 1: msg 1 to local a@x.test\n"
		 "starting delivery 2: msg 1 to remote a@x.test\n"
		 "delivery 1: success: ok/\n"
		 "delivery 2: success: ok/\n");
	check_counts(domain(sl, "x.test"), 1, 2, 2, 0, 0);
	sendlog_free(sl);
}

TEST(warnings_bounces_and_status)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	feed(sl, "warning: unable to read todo: Permission denied\n"
		 "alert: oh dear\n"
		 "qmail-send: fatal: unable to lock lock/sendmutex\n"
		 "qmail-lspawn: warning: something\n"
		 "no colon here: warning: x\n"
		 "status: local 0/10 remote 0/20\n"
		 "status: configuration reread\n"
		 "bounce msg 4 qp 1234\n"
		 "triple bounce: discarding bounce/4\n"
		 "double bounce: discarding bounce/5\n"
		 "info msg 4: bytes 18446744073709551615 from <> qp 1 uid 2\n"
		 "info msg 5: bytes 10 from <> qp 1 uid 2\n");
	const struct sendlog_totals *t = sendlog_totals(sl);
	CHECK_INT(t->warnings, 3);
	CHECK_INT(t->fatals, 1);
	CHECK(strcmp(t->last_warning, "qmail-lspawn: warning: something") == 0);
	CHECK_INT(t->unparsed, 1);
	CHECK_INT(t->bounces, 1);
	CHECK_INT(t->discarded, 2);
	CHECK(t->bytes == UINT64_MAX); /* saturates, never wraps */
	CHECK_INT(t->restarts, 0);
	sendlog_free(sl);
}

TEST(many_messages_and_deliveries)
{
	struct sendlog *sl = sendlog_new(SENDLOG_ALL);
	char line[128];
	unsigned long num = 0;
	for (int m = 0; m < 3000; m++) {
		snprintf(line, sizeof line, "new msg %d", m % 700);
		feed(sl, line);
		for (int r = 0; r < 3; r++) {
			snprintf(line, sizeof line,
				 "starting delivery %lu: msg %d to remote "
				 "u%d@d%d.test",
				 ++num, m % 700, r, m % 50);
			feed(sl, line);
		}
		for (int r = 0; r < 3; r++) {
			snprintf(line, sizeof line,
				 "delivery %lu: success: ok/",
				 num - 2 + (unsigned long)r);
			feed(sl, line);
		}
		snprintf(line, sizeof line, "end msg %d", m % 700);
		feed(sl, line);
	}
	const struct sendlog_totals *t = sendlog_totals(sl);
	check_counts(&t->all, 3000, 9000, 9000, 0, 0);
	const struct sendlog_stats **v;
	size_t n;
	CHECK_INT(sendlog_domains(sl, &v, &n), 0);
	CHECK_INT(n, 50);
	check_counts(domain(sl, "d7.test"), 60, 180, 180, 0, 0);
	CHECK_INT(sendlog_in_progress(sl), 0);
	sendlog_free(sl);
}

UNIT_MAIN(stamp_parsing, simple_local_delivery_with_delay,
	  unstamped_log_counts_without_delays,
	  deferrals_count_attempts_but_one_recipient,
	  failures_and_the_most_common_reason,
	  reason_ties_go_to_the_smallest_text, reasons_are_bounded,
	  restart_reuses_delivery_numbers, clean_stop_counts_once,
	  ids_reused_after_end, new_msg_without_end_starts_over,
	  repeat_success_counts_once, window_counts_recent_results_only,
	  message_from_before_the_log,
	  garbage_and_truncated_lines_change_nothing, end_before_result,
	  domains_fold_case_and_sort, local_and_remote_recipients_are_distinct,
	  warnings_bounces_and_status, many_messages_and_deliveries)
