/*
 * tlsio.c: handshake with a deadline, and the two-way relay.
 *
 * The relay tries every step that might move bytes, and only polls
 * when none did: OpenSSL may hold decrypted bytes that poll() cannot
 * see. Each buffer is refilled only once empty, so that a write OpenSSL
 * asked to retry is retried with the same bytes. After a fatal TLS
 * error no OpenSSL call is made on the connection again. Nothing here
 * writes to any descriptor but the three it is given.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/fd.h"
#include "tls/tlsctx.h"
#include "tls/tlsio.h"

#define CHUNK 16384 /* the largest TLS record */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds until deadline for poll(): -1 when there is none. */
static int ms_until(long long deadline)
{
	if (!deadline)
		return -1;
	long long left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > 1000000000 ? 1000000000 : (int)left;
}

static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = {fd, events, 0};

	for (;;) {
		int r = poll(&p, 1, ms_until(deadline));
		if (r > 0)
			return 0;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

/* The reason for an SSL call's failure, errno being that right after
 * the call. */
static void failure_text(int e, int saved_errno, char *err, size_t n)
{
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		snprintf(err, n, "%s",
			 saved_errno ? strerror(saved_errno)
				     : "connection closed by the peer");
		ERR_clear_error();
		return;
	}
	tls_errtext(err, n, "TLS protocol error");
}

static int attach(SSL *ssl, int rfd, int wfd)
{
	if (fd_nonblock(rfd) < 0 || fd_nonblock(wfd) < 0)
		return -1;
	if (rfd == wfd)
		return SSL_set_fd(ssl, rfd) == 1 ? 0 : -1;
	return SSL_set_rfd(ssl, rfd) == 1 && SSL_set_wfd(ssl, wfd) == 1 ? 0
									: -1;
}

int tlsio_handshake(SSL *ssl, int rfd, int wfd, unsigned timeout, char *err,
		    size_t n)
{
	long long deadline = timeout ? now_ms() + 1000LL * timeout : 0;

	if (attach(ssl, rfd, wfd) < 0) {
		snprintf(err, n, "unable to attach the connection: %s",
			 strerror(errno));
		return -1;
	}
	for (;;) {
		ERR_clear_error();
		errno = 0;
		int ret = SSL_do_handshake(ssl);
		int saved = errno;
		if (ret == 1)
			return 0;
		int e = SSL_get_error(ssl, ret);
		int w;
		if (e == SSL_ERROR_WANT_READ)
			w = wait_fd(rfd, POLLIN, deadline);
		else if (e == SSL_ERROR_WANT_WRITE)
			w = wait_fd(wfd, POLLOUT, deadline);
		else {
			failure_text(e, saved, err, n);
			errno = EPROTO;
			return -1;
		}
		if (w < 0) {
			int saved_wait = errno;
			snprintf(err, n, "%s",
				 saved_wait == ETIMEDOUT
				     ? "handshake timed out"
				     : strerror(saved_wait));
			errno = saved_wait;
			return -1;
		}
	}
}

struct relay {
	SSL *ssl;
	int rfd, wfd, data;
	char in[CHUNK]; /* from the peer, for the application */
	size_t in_pos, in_len;
	char out[CHUNK]; /* from the application, for the peer */
	size_t out_pos, out_len;
	int peer_open;	 /* the peer may still send */
	int app_open;	 /* the application may still send */
	int app_reading; /* the application still takes data */
	int app_gone;	 /* it closed its end entirely */
	int broken;	 /* the TLS connection is unusable */
	int notify_sent; /* our close_notify is out */
	int data_shut;	 /* the application was told the peer is done */
	int want_r, want_w, want_data;
	char *err;
	size_t errlen;
	int failed; /* errno of the first real error, or 0 */
};

static void fail(struct relay *r, int e, const char *text)
{
	if (r->failed)
		return;
	r->failed = e;
	snprintf(r->err, r->errlen, "%s", text);
}

/* SSL wants the socket readable or writable before a retry. */
static int ssl_wants(struct relay *r, int e)
{
	if (e == SSL_ERROR_WANT_READ)
		r->want_r = 1;
	else if (e == SSL_ERROR_WANT_WRITE)
		r->want_w = 1;
	else
		return 0;
	return 1;
}

/* A fatal error on the connection. A peer that simply goes away is no
 * error worth a log line: most SMTP clients close after QUIT. */
static void ssl_broken(struct relay *r, int e, int saved_errno)
{
	unsigned long q = ERR_peek_error();
	int quiet = (e == SSL_ERROR_SYSCALL && q == 0 &&
		     (saved_errno == 0 || saved_errno == ECONNRESET ||
		      saved_errno == EPIPE)) ||
		    (e == SSL_ERROR_SSL &&
		     ERR_GET_REASON(q) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
	char text[256];

	r->broken = 1;
	r->peer_open = 0;
	r->out_pos = r->out_len = 0;
	if (quiet) {
		ERR_clear_error();
		return;
	}
	failure_text(e, saved_errno, text, sizeof text);
	fail(r, EPROTO, text);
}

static int to_app(struct relay *r)
{
	if (r->in_pos == r->in_len)
		return 0;
	ssize_t w = write(r->data, r->in + r->in_pos, r->in_len - r->in_pos);
	if (w > 0) {
		r->in_pos += (size_t)w;
		if (r->in_pos == r->in_len)
			r->in_pos = r->in_len = 0;
		return 1;
	}
	if (w < 0 && errno == EAGAIN) {
		r->want_data |= POLLOUT;
		return 0;
	}
	if (w < 0 && errno == EINTR)
		return 1;
	/* It stopped reading: what the peer still sends is dropped. */
	r->app_reading = 0;
	r->in_pos = r->in_len = 0;
	return 1;
}

static int from_peer(struct relay *r)
{
	if (!r->peer_open || r->broken || r->in_len)
		return 0;
	ERR_clear_error();
	errno = 0;
	int n = SSL_read(r->ssl, r->in, sizeof r->in);
	int saved = errno;
	if (n > 0) {
		if (r->app_reading)
			r->in_len = (size_t)n;
		return 1;
	}
	int e = SSL_get_error(r->ssl, n);
	if (ssl_wants(r, e))
		return 0;
	if (e == SSL_ERROR_ZERO_RETURN)
		r->peer_open = 0;
	else
		ssl_broken(r, e, saved);
	return 1;
}

static int from_app(struct relay *r)
{
	if (!r->app_open || r->out_len)
		return 0;
	ssize_t n = read(r->data, r->out, sizeof r->out);
	if (n > 0) {
		/* Nowhere to send it once the connection broke. */
		if (!r->broken)
			r->out_len = (size_t)n;
		return 1;
	}
	if (n < 0 && errno == EAGAIN) {
		r->want_data |= POLLIN;
		return 0;
	}
	if (n < 0 && errno == EINTR)
		return 1;
	r->app_open = 0;
	return 1;
}

static int to_peer(struct relay *r)
{
	if (r->out_pos == r->out_len || r->broken)
		return 0;
	ERR_clear_error();
	errno = 0;
	int n = SSL_write(r->ssl, r->out + r->out_pos,
			  (int)(r->out_len - r->out_pos));
	int saved = errno;
	if (n > 0) {
		r->out_pos += (size_t)n;
		if (r->out_pos == r->out_len)
			r->out_pos = r->out_len = 0;
		return 1;
	}
	int e = SSL_get_error(r->ssl, n);
	if (ssl_wants(r, e))
		return 0;
	ssl_broken(r, e, saved);
	return 1;
}

static int send_notify(struct relay *r)
{
	if (r->app_open || r->out_len || r->notify_sent || r->broken)
		return 0;
	ERR_clear_error();
	errno = 0;
	int ret = SSL_shutdown(r->ssl);
	int saved = errno;
	if (ret >= 0) {
		r->notify_sent = 1;
		return 1;
	}
	int e = SSL_get_error(r->ssl, ret);
	if (ssl_wants(r, e))
		return 0;
	ssl_broken(r, e, saved);
	return 1;
}

/* The peer is done and everything it sent was delivered. */
static void tell_app(struct relay *r)
{
	if (r->peer_open || r->in_len || r->data_shut)
		return;
	shutdown(r->data, SHUT_WR);
	r->data_shut = 1;
}

static int finished(const struct relay *r)
{
	int peer_done = !r->peer_open && !r->in_len;
	int app_done =
	    r->broken || (!r->app_open && !r->out_len && r->notify_sent);
	return peer_done && app_done;
}

/* One poll over what the steps are waiting for. Returns 1 when
 * something may have changed, 0 on timeout, -1 on error. */
static int wait_events(struct relay *r, int timeout_ms)
{
	struct pollfd p[3];
	int np = 0, id = -1;

	if (r->rfd == r->wfd && (r->want_r || r->want_w))
		p[np++] = (struct pollfd){r->rfd,
					  (short)((r->want_r ? POLLIN : 0) |
						  (r->want_w ? POLLOUT : 0)),
					  0};
	else {
		if (r->want_r)
			p[np++] = (struct pollfd){r->rfd, POLLIN, 0};
		if (r->want_w)
			p[np++] = (struct pollfd){r->wfd, POLLOUT, 0};
	}
	/* Watched even when nothing is wanted, to see it hang up. */
	if (r->want_data || !r->app_gone) {
		id = np;
		p[np++] = (struct pollfd){r->data, (short)r->want_data, 0};
	}
	int n = poll(p, (nfds_t)np, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 1 : -1;
	if (n == 0)
		return 0;
	if (id >= 0 && (p[id].revents & (POLLHUP | POLLERR | POLLNVAL)))
		r->app_gone = 1;
	return 1;
}

static long long earliest(long long a, long long b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

int tlsio_relay(SSL *ssl, int rfd, int wfd, int data, unsigned idle,
		unsigned linger, char *err, size_t n)
{
	static struct relay r; /* 32 KiB of buffers; one relay a process */
	long long idle_deadline = 0, linger_deadline = 0;

	memset(&r, 0, sizeof r);
	r.ssl = ssl;
	r.rfd = rfd;
	r.wfd = wfd;
	r.data = data;
	r.peer_open = r.app_open = r.app_reading = 1;
	r.err = err;
	r.errlen = n;
	err[0] = 0;
	if (fd_nonblock(data) < 0) {
		snprintf(err, n, "unable to set up the relay: %s",
			 strerror(errno));
		return -1;
	}
	for (;;) {
		r.want_r = r.want_w = r.want_data = 0;
		int moved = to_app(&r);
		moved |= from_peer(&r);
		tell_app(&r);
		moved |= from_app(&r);
		moved |= to_peer(&r);
		moved |= send_notify(&r);
		if (finished(&r))
			break;
		if (moved || !idle_deadline)
			idle_deadline = idle ? now_ms() + 1000LL * idle : 0;
		if (moved)
			continue;
		if (r.app_gone && r.notify_sent && !linger_deadline)
			linger_deadline = now_ms() + 1000LL * linger;
		long long deadline = earliest(idle_deadline, linger_deadline);
		int w = wait_events(&r, ms_until(deadline));
		if (w < 0) {
			fail(&r, errno, strerror(errno));
			break;
		}
		if (w > 0)
			continue;
		if (linger_deadline && now_ms() >= linger_deadline)
			break; /* we said goodbye; the peer did not */
		fail(&r, ETIMEDOUT, "idle timeout");
		break;
	}
	if (!r.failed)
		return 0;
	errno = r.failed;
	return -1;
}
