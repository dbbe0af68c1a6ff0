/*
 * ucspi-tlsc: the client side of UCSPI-TLS, run by tcpclient with the
 * connection on descriptors 6 and 7.
 *
 * The server's name comes from TLS_SERVERNAME, never from the command
 * line: it may come from DNS. It is sent as SNI and checked against the
 * certificate. The handshake completes whatever the check says, and
 * the result goes to the application in SSL_SERVER_VERIFY; only -V
 * makes a failed check end the connection. The TLS process lets go of
 * descriptors 0 and 1 (the application's message and report), so that
 * whoever reads the report sees its end when the application exits.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "lib/buf.h"
#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/log.h"
#include "lib/str.h"
#include "tls/tlsblock.h"
#include "tls/tlsctx.h"
#include "tls/tlsinfo.h"
#include "tls/tlsio.h"
#include "tls/tlsopt.h"
#include "tls/tlsproc.h"

#define USAGE                                                                  \
	"usage: ucspi-tlsc [-yVqv] [-t handshake_timeout] [-i idle_timeout] "  \
	"prog..."

struct options {
	int delayed, require, quiet, verbose;
	unsigned handshake, idle;
	char *const *prog;
};

static void parse(struct options *o, int argc, char **argv)
{
	struct tlsopt g = TLSOPT_INIT;
	int c;

	memset(o, 0, sizeof *o);
	o->handshake = 26;
	o->idle = 3600;
	while ((c = tlsopt_next(&g, argc, argv, "yVqvt:i:")) != -1) {
		switch (c) {
		case 'y':
			o->delayed = 1;
			break;
		case 'V':
			o->require = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 't':
			if (tlsopt_uint(g.arg, &o->handshake) < 0)
				log_fatal(EXIT_PERM, USAGE);
			break;
		case 'i':
			if (tlsopt_uint(g.arg, &o->idle) < 0)
				log_fatal(EXIT_PERM, USAGE);
			break;
		default:
			log_fatal(EXIT_PERM, USAGE);
		}
	}
	if (g.ind >= argc)
		log_fatal(EXIT_PERM, USAGE);
	o->prog = argv + g.ind;
}

/* TLS_SERVERNAME without one trailing dot, or NULL when unset. */
static const char *server_name(char *buf, size_t n)
{
	const char *name = env_get("TLS_SERVERNAME");
	size_t len = name ? strlen(name) : 0;

	if (len == 0)
		return NULL;
	if (name[len - 1] == '.' && len > 1)
		len--;
	if (len >= n)
		return "?"; /* never a host name, so the check fails */
	memcpy(buf, name, len);
	buf[len] = 0;
	return buf;
}

static void forget_keys(void *conf)
{
	tlsconf_free(conf);
}

/* Close everything the TLS process holds and exit with the
 * application's status: whatever went wrong, the application learnt it
 * from its descriptors closing. */
static _Noreturn void finish(struct tlsapp *app, SSL *ssl)
{
	SSL_free(ssl);
	if (app->ctl >= 0)
		close(app->ctl);
	close(app->data);
	close(6);
	close(7);
	_exit(tlsapp_reap(app));
}

static SSL *start_ssl(struct tlsapp *app, SSL_CTX *ctx, const char *name)
{
	SSL *ssl = SSL_new(ctx);
	int is_ip;

	if (!ssl) {
		log_warn("unable to make a TLS connection");
		finish(app, NULL);
	}
	SSL_set_connect_state(ssl);
	/* RFC 6066: SNI carries host names, never addresses. */
	if (name && tlsinfo_name_ok(name, &is_ip) && !is_ip &&
	    SSL_set_tlsext_host_name(ssl, name) != 1) {
		log_warn("unable to set the server name");
		finish(app, ssl);
	}
	return ssl;
}

int main(int argc, char **argv)
{
	struct options o;
	struct tlsconf conf;
	struct tlsapp app;
	struct tlsids none = {0, 0, 0, 0};
	char err[512], namebuf[256];

	log_init(argv[0]);
	parse(&o, argc, argv);
	if (tlsenv_from_tcp() < 0)
		log_nomem();
	const char *name = server_name(namebuf, sizeof namebuf);
	if (tlsconf_client(&conf, o.require, err, sizeof err) < 0) {
		if (!o.delayed)
			log_fatal(EXIT_TEMP, "%s", err);
		/* Delayed mode leaves the choice to the application: with
		 * no TLS descriptors it sees TLS as unavailable, and goes on
		 * in cleartext or gives up, as its policy says. */
		log_warn("%s: running %s without TLS", err, o.prog[0]);
		env_unset("SSLCTLFD");
		env_unset("SSLREADFD");
		env_unset("SSLWRITEFD");
		execvp(o.prog[0], o.prog);
		log_fatal_sys(EXIT_TEMP, "unable to run %s", o.prog[0]);
	}
	signal(SIGPIPE, SIG_IGN);
	if (tlsapp_start(&app, o.prog, &none,
			 o.delayed ? TLSMODE_DELAYED : TLSMODE_IMMEDIATE, 6, 7,
			 forget_keys, &conf) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to start %s", o.prog[0]);
	if (tlsproc_devnull(0) < 0 || tlsproc_devnull(1) < 0) {
		log_warn_sys("unable to open /dev/null");
		finish(&app, NULL);
	}

	int request = 'Y';
	if (o.delayed) {
		request = tlsapp_wait_request(&app);
		if (request < 0)
			log_warn_sys("unable to read the control descriptor");
		else if (request > 0 && request != 'y' && request != 'Y')
			log_warn("unknown control byte %d", request);
		if (request != 'y' && request != 'Y')
			finish(&app, NULL);
	}
	SSL *ssl = start_ssl(&app, conf.ctx, name);
	if (tlsio_handshake(ssl, 6, 7, o.handshake, err, sizeof err) < 0) {
		if (!o.quiet)
			log_warn("TLS handshake failed: %s", err);
		finish(&app, ssl);
	}
	struct str b = STR_INIT;
	int verified;
	char why[300];
	if (tlsinfo_client(ssl, name, conf.have_ca, &b, &verified, why,
			   sizeof why) < 0 ||
	    tlsblock_end(&b) < 0) {
		log_warn_sys("unable to make the TLS variables");
		finish(&app, ssl);
	}
	if (o.require && !verified) {
		if (!o.quiet)
			log_warn("server certificate not accepted: %s", why);
		finish(&app, ssl);
	}
	if (request == 'Y' &&
	    fd_write_all(app.ctl, b.s, b.len, o.handshake) < 0) {
		log_warn_sys("unable to pass the TLS variables");
		finish(&app, ssl);
	}
	str_free(&b);
	close(app.ctl);
	app.ctl = -1;
	if (o.verbose)
		log_info("%s %s, %s", SSL_get_version(ssl),
			 SSL_get_cipher_name(ssl), why);
	if (tlsio_relay(ssl, 6, 7, app.data, o.idle, o.handshake, err,
			sizeof err) < 0 &&
	    !o.quiet)
		log_warn("%s", err);
	finish(&app, ssl);
}
