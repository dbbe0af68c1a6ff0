/*
 * qmail-qmqpc: hand a message to a central queue by QMQP.
 *
 * It offers the qmail-queue interface (message on fd 0, envelope on fd 1,
 * exit codes of qmail-queue(8), and exit 82 with the server's text on fd
 * 6), so it can stand in for qmail-queue on a host without a queue of its
 * own. It tries each server in control/qmqpservers in turn. It opens no
 * socket itself: each attempt runs tcpclient, which runs this program
 * again in its "-s" mode to speak on fds 6 and 7. The packet is built in
 * an unlinked temporary file so that every attempt sends the same bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/ctl.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/fd.h"
#include "lib/home.h"
#include "lib/log.h"
#include "qmqp/netstring.h"

#define ADDR_MAX 1002
#define REPLY_MAX 1000
#define ENVELOPE_MAX (16 << 20)

/* --- "-s": under tcpclient, send the packet on fd 0, relay the reply --- */

static int speak(unsigned timeout)
{
	static char a[BUF_SIZE], b[BUF_SIZE], c[BUF_SIZE];
	struct buf packet, net, reply;
	struct str text = STR_INIT;
	ssize_t n;

	buf_init(&packet, 0, a, sizeof a, 0);
	buf_init(&net, 7, b, sizeof b, timeout);
	/* A server may answer before it has read everything (a refusal):
	 * after a write error, its reply may still be there to read. */
	int sent = 1;
	while (sent && (n = buf_fill(&packet)) > 0) {
		if (buf_put(&net, buf_peek(&packet), (size_t)n) < 0)
			sent = 0;
		buf_skip(&packet, (size_t)n);
	}
	if (sent && (n < 0 || buf_flush(&net) < 0))
		sent = 0;
	buf_init(&reply, 6, c, sizeof c, timeout);
	if (netstring_read(&reply, REPLY_MAX, &text) < 0)
		return EXIT_TEMP;
	return fd_write_all(1, text.s, text.len, 0) < 0 ? EXIT_TEMP : 0;
}

/* --- the qmail-queue side --- */

static int tempfile(void)
{
	const char *dir = env_trusted("TMPDIR");
	struct str tmpl = STR_INIT;

	if (str_copys(&tmpl, dir && *dir ? dir : "/tmp") < 0 ||
	    str_appends(&tmpl, "/qmail-qmqpc.XXXXXX") < 0)
		_exit(QQ_NOMEM);
	int fd = mkstemp(tmpl.s);
	if (fd < 0)
		_exit(QQ_WRITE);
	unlink(tmpl.s);
	fd_cloexec(fd);
	str_free(&tmpl);
	return fd;
}

/* Copy fd 0 to a temporary file; returns it, with its length. */
static int save_message(unsigned long long *len)
{
	static char a[BUF_SIZE * 4];
	struct buf in;
	ssize_t n;
	int fd = tempfile();

	buf_init(&in, 0, a, sizeof a, 0);
	*len = 0;
	while ((n = buf_fill(&in)) > 0) {
		if (fd_write_all(fd, buf_peek(&in), (size_t)n, 0) < 0)
			_exit(QQ_WRITE);
		*len += (unsigned long long)n;
		buf_skip(&in, (size_t)n);
	}
	if (n < 0)
		_exit(QQ_READ);
	return fd;
}

/* The envelope from fd 1, as netstrings: sender, then recipients. */
static void read_envelope(struct str *addrs)
{
	static char a[BUF_SIZE];
	struct buf in;
	struct str addr = STR_INIT;
	char type;
	int rcpts = 0;

	buf_init(&in, 1, a, sizeof a, 0);
	for (;;) {
		ssize_t r = buf_read(&in, &type, 1);
		if (r < 0)
			_exit(QQ_READ);
		if (r == 0)
			_exit(QQ_ENVELOPE);
		if (type == 0)
			break;
		/* F first and only first, then T records. */
		int first = addrs->len == 0;
		if (first ? type != 'F' : type != 'T')
			_exit(QQ_ENVELOPE);
		str_clear(&addr);
		int g = buf_getline(&in, &addr, 0, ADDR_MAX + 1);
		if (g < 0)
			_exit(errno == EMSGSIZE ? QQ_ADDR_TOO_LONG : QQ_READ);
		if (g == 0)
			_exit(QQ_ENVELOPE);
		if (netstring_append(addrs, addr.s, addr.len - 1) < 0)
			_exit(QQ_NOMEM);
		if (addrs->len > ENVELOPE_MAX)
			_exit(QQ_ENVELOPE);
		rcpts += type == 'T';
	}
	if (rcpts == 0)
		_exit(QQ_ENVELOPE);
	str_free(&addr);
}

static int build_packet(int msgfd, unsigned long long msglen,
			const struct str *addrs)
{
	char head[48], mhead[24], tmp[BUF_SIZE];
	int mlen = snprintf(mhead, sizeof mhead, "%llu:", msglen);
	unsigned long long total = (unsigned long long)mlen + msglen + 1 +
				   addrs->len;
	int hlen = snprintf(head, sizeof head, "%llu:%s", total, mhead);
	int fd = tempfile();
	ssize_t n;

	if (fd_write_all(fd, head, (size_t)hlen, 0) < 0 ||
	    lseek(msgfd, 0, SEEK_SET) < 0)
		_exit(QQ_WRITE);
	while ((n = read(msgfd, tmp, sizeof tmp)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(QQ_READ);
		}
		if (fd_write_all(fd, tmp, (size_t)n, 0) < 0)
			_exit(QQ_WRITE);
	}
	if (fd_write_all(fd, ",", 1, 0) < 0 ||
	    fd_write_all(fd, addrs->s, addrs->len, 0) < 0 ||
	    fd_write_all(fd, ",", 1, 0) < 0)
		_exit(QQ_WRITE);
	return fd;
}

/* "1.2.3.4", "1.2.3.4:port", "::1" or "[::1]:port". Returns 0, or -1
 * when memory runs out. */
static int split_server(const char *entry, struct str *ip, struct str *port)
{
	const char *colon = strrchr(entry, ':');

	if (str_copys(port, "628") < 0)
		return -1;
	if (entry[0] == '[') {
		const char *end = strchr(entry, ']');
		if (end) {
			if (str_copy(ip, entry + 1,
				     (size_t)(end - entry - 1)) < 0)
				return -1;
			if (end[1] == ':' && end[2])
				return str_copys(port, end + 2);
			return 0;
		}
	}
	if (colon && strchr(entry, ':') == colon) {
		if (str_copy(ip, entry, (size_t)(colon - entry)) < 0)
			return -1;
		return str_copys(port, colon + 1);
	}
	return str_copys(ip, entry);
}

/* One attempt. Returns the reply text (K/Z/D...) in reply, or an empty
 * reply when the server could not be reached or spoke nonsense. */
static void attempt(int packet, const char *entry, unsigned long tconnect,
		    struct str *reply)
{
	struct str ip = STR_INIT, port = STR_INIT, self = STR_INIT;
	char tc[24];
	int p[2];

	str_clear(reply);
	if (split_server(entry, &ip, &port) < 0 ||
	    str_copys(&self, home_dir()) < 0 ||
	    str_appends(&self, "/bin/qmail-qmqpc") < 0 || pipe(p) < 0)
		_exit(QQ_NOMEM);
	snprintf(tc, sizeof tc, "%lu", tconnect);
	pid_t pid = fork();
	if (pid < 0)
		_exit(QQ_NOMEM);
	if (pid == 0) {
		close(p[0]);
		if (lseek(packet, 0, SEEK_SET) < 0 || fd_move(0, packet) < 0 ||
		    fd_move(1, p[1]) < 0)
			_exit(EXIT_TEMP);
		execlp("tcpclient", "tcpclient", "-RHl0", "-T", tc, "--", ip.s,
		       port.s, self.s, "-s", (char *)NULL);
		_exit(EXIT_TEMP);
	}
	close(p[1]);
	char buf[REPLY_MAX];
	size_t got = 0;
	ssize_t r;
	while (got < sizeof buf &&
	       (r = read(p[0], buf + got, sizeof buf - got)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t)r;
	}
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got > 0 && (buf[0] == 'K' || buf[0] == 'Z' || buf[0] == 'D')) {
		for (size_t i = 0; i < got; i++) {
			unsigned char c = (unsigned char)buf[i];
			if (str_appendc(reply, (c < 32 || c > 126) ? '?'
								  : (char)c) < 0)
				_exit(QQ_NOMEM);
		}
	}
	str_free(&ip);
	str_free(&port);
	str_free(&self);
}

static _Noreturn void custom(const char *text)
{
	/* Exit 82 carries the text; without fd 6 fall back to the code. */
	if (fd_write_all(6, text, strlen(text), 0) == 0)
		_exit(QQ_CUSTOM);
	_exit(text[0] == 'D' ? QQ_PERM_REFUSED : QQ_TEMP_REFUSED);
}

int main(int argc, char **argv)
{
	struct str servers = STR_INIT, addrs = STR_INIT, reply = STR_INIT;
	struct str last = STR_INIT;
	unsigned long tconnect, tremote;
	unsigned long long msglen;
	const char *e;
	size_t pos = 0;

	log_init(argv[0]);
	signal(SIGPIPE, SIG_IGN);
	if (chdir(home_dir()) < 0)
		_exit(QQ_HOME);
	if (ctl_ulong("control/timeoutconnect", &tconnect, 60) < 0 ||
	    ctl_ulong("control/timeoutremote", &tremote, 1200) < 0)
		_exit(QQ_CONFIG);
	if (argc > 1 && strcmp(argv[1], "-s") == 0)
		return speak((unsigned)tremote);
	if (ctl_list("control/qmqpservers", &servers) < 0)
		_exit(QQ_CONFIG);

	int msgfd = save_message(&msglen);
	read_envelope(&addrs);
	int packet = build_packet(msgfd, msglen, &addrs);
	close(msgfd);

	while ((e = ctl_next(&servers, &pos))) {
		attempt(packet, e, tconnect, &reply);
		if (reply.len == 0)
			continue; /* unreachable: try the next one */
		if (reply.s[0] == 'K')
			return 0;
		if (reply.s[0] == 'D')
			custom(reply.s);
		str_copystr(&last, &reply); /* Z: another may take it */
	}
	if (last.len)
		custom(last.s);
	custom("Zno QMQP server accepted the message (#4.4.1)");
}
