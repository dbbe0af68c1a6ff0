/*
 * qmail-qmqpd: receive one message by QMQP on fds 0 and 1.
 *
 * The packet is a netstring holding a netstring for the message, one for
 * the sender and one for each recipient (cr.yp.to/proto/qmqp.html). The
 * message streams to qmail-queue as it arrives; nothing is queued unless
 * the whole packet parses, and the reply netstring (K, Z or D) is sent
 * only after qmail-queue has finished. Access control is tcpserver's
 * job: any client that reaches this program may inject mail.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/ctl.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "mail/qq.h"
#include "qmqp/netstring.h"
#include "smtp/received.h"

#define ADDR_MAX 1002
#define PACKET_MAX ((unsigned long long)1 << 40)
#define PACE_BYTES 512 /* the slowest pace a packet may come at, as DATA */

static struct buf in, out;
static char inspace[BUF_SIZE], outspace[256];

static _Noreturn void reply(const char *text)
{
	struct str ns = STR_INIT;
	if (netstring_append(&ns, text, strlen(text)) < 0)
		_exit(EXIT_TEMP);
	buf_put(&out, ns.s, ns.len);
	buf_flush(&out);
	_exit(0);
}

static _Noreturn void refuse(struct qq *q, const char *text)
{
	if (q)
		qq_cancel(q);
	reply(text);
}

/* After a failed read: a timeout is not a malformed packet. */
static _Noreturn void refuse_read(struct qq *q)
{
	refuse(q, errno == ETIMEDOUT ? "Ztimeout (#4.4.2)"
				     : "Dmalformed QMQP packet (#5.5.4)");
}

#define DRAIN_MAX ((unsigned long long)128 << 20)

/* Read and drop up to n bytes (at most DRAIN_MAX). */
static void drain(unsigned long long n)
{
	if (n > DRAIN_MAX)
		n = DRAIN_MAX;
	while (n > 0) {
		ssize_t got = buf_fill(&in);
		if (got <= 0)
			return;
		size_t take = (unsigned long long)got < n ? (size_t)got
							  : (size_t)n;
		buf_skip(&in, take);
		n -= take;
	}
}

/* Read the message netstring and pass it to qmail-queue. Returns the
 * bytes of the packet it used. */
static unsigned long long copy_message(struct qq *q, unsigned long long room,
				       unsigned long long limit)
{
	unsigned long long len, left;
	size_t before = 0;
	char digits[24];

	/* The length prefix counts toward the packet: count it by hand. */
	if (netstring_read_len(&in, room, &len) < 0)
		refuse_read(q);
	before = (size_t)snprintf(digits, sizeof digits, "%llu:", len);
	if (limit && len > limit) {
		/* Read what the client is still sending, within reason, so
		 * that it is listening when the refusal comes. */
		drain(room > before ? room - before + 1 : 1);
		refuse(q, "Dsorry, that message size exceeds my databytes "
			  "limit (#5.3.4)");
	}
	for (left = len; left > 0;) {
		ssize_t n = buf_fill(&in);
		if (n < 0)
			refuse_read(q);
		if (n == 0)
			refuse(q, "Dmalformed QMQP packet (#5.5.4)");
		size_t take = (unsigned long long)n < left ? (size_t)n
							   : (size_t)left;
		qq_put(q, buf_peek(&in), take);
		buf_skip(&in, take);
		left -= take;
	}
	if (netstring_read_end(&in) < 0)
		refuse_read(q);
	return before + len + 1;
}

/* Read one address netstring; it must fit in what is left. */
static unsigned long long read_addr(struct qq *q, struct str *a,
				    unsigned long long room)
{
	size_t max = room < ADDR_MAX ? (size_t)room : ADDR_MAX;
	if (netstring_read(&in, max, a) < 0)
		refuse_read(q);
	if (memchr(a->s, 0, a->len))
		refuse(q, "Dmalformed QMQP packet (#5.5.4)");
	char digits[24];
	return (unsigned long long)snprintf(digits, sizeof digits, "%zu:",
					    a->len) +
	       a->len + 1;
}

int main(int argc, char **argv)
{
	struct qq q;
	struct str hdr = STR_INIT, sender = STR_INIT, rcpt = STR_INIT;
	struct str rcpts = STR_INIT, text = STR_INIT;
	unsigned long long total, used;
	unsigned long limit, timeout;

	log_init(argv[0]);
	signal(SIGPIPE, SIG_IGN);
	home_chdir();
	if (ctl_ulong("control/timeoutsmtpd", &timeout, 1200) < 0 ||
	    ctl_ulong("control/databytes", &limit, 0) < 0) {
		log_warn_sys("unable to read controls");
		buf_init(&out, 1, outspace, sizeof outspace, 60);
		reply("Zunable to read controls (#4.3.0)");
	}
	unsigned long envlimit;
	if (env_ulong("DATABYTES", &envlimit) > 0)
		limit = envlimit; /* a malformed value keeps the control file's */
	if (timeout > UINT_MAX)
		timeout = UINT_MAX;
	buf_init(&in, 0, inspace, sizeof inspace, (unsigned)timeout);
	buf_init(&out, 1, outspace, sizeof outspace, (unsigned)timeout);

	/* A client trickling bytes just inside each timeout must not hold
	 * a slot for ever: the length must come within the timeout, and the
	 * packet at no less than PACE_BYTES a second after that. */
	if (buf_setdeadline(&in, (unsigned)timeout) < 0 ||
	    netstring_read_len(&in, PACKET_MAX, &total) < 0)
		refuse_read(NULL);
	if (timeout > 0) {
		unsigned long long secs = timeout + total / PACE_BYTES;
		if (buf_setdeadline(&in, secs > UINT_MAX ? UINT_MAX
							 : (unsigned)secs) < 0)
			refuse_read(NULL);
	}
	if (qq_start(&q) < 0)
		reply("Zqq temporary problem (#4.3.0)");
	const char *local = env_get("TCPLOCALHOST");
	if (!local)
		local = env_get("TCPLOCALIP");
	received_smtp(&hdr, "QMQP", local,
		      env_get("TCPREMOTEIP"), env_get("TCPREMOTEHOST"),
		      env_get("TCPREMOTEINFO"), NULL);
	qq_put(&q, hdr.s, hdr.len);
	used = copy_message(&q, total, limit);
	if (used >= total)
		refuse(&q, "Dmalformed QMQP packet (#5.5.4)");
	used += read_addr(&q, &sender, total - used);
	while (used < total) {
		used += read_addr(&q, &rcpt, total - used);
		if (str_append(&rcpts, rcpt.s, rcpt.len + 1) < 0)
			log_nomem();
	}
	if (used != total || rcpts.len == 0 || netstring_read_end(&in) < 0)
		refuse(&q, "Dmalformed QMQP packet (#5.5.4)");

	int code = qq_finish_list(&q, sender.s, &rcpts, &text);
	if (code == 0)
		reply("Kok");
	/* qq replies look like "451 text": the kind, then the text. */
	const char *smtp = qq_text(&text, code);
	struct str r = STR_INIT;
	if (str_appendc(&r, smtp[0] == '5' ? 'D' : 'Z') < 0 ||
	    str_appends(&r, strlen(smtp) > 4 ? smtp + 4 : smtp) < 0)
		log_nomem();
	reply(r.s);
}
