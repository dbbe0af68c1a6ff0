/*
 * ucspi-tlsd: the server side of UCSPI-TLS, run by tcpserver with the
 * connection on descriptors 0 and 1.
 *
 * It loads the certificate and key first (as root when started as
 * root), forks the application, which takes the uid and gid of -u and
 * -g, and becomes the TLS process, which takes SSL_UID and SSL_GID (and
 * SSL_CHROOT) before it reads a byte from the network. With -n the
 * application speaks cleartext until it writes 'y' or 'Y' on SSLCTLFD;
 * without -n the handshake comes first. It must never run the
 * application with more privilege than -u/-g give, nor hand it anything
 * from the peer but SSL_* variables.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>
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
	"usage: ucspi-tlsd [-nqv] [-u uid] [-g gid] [-t handshake_timeout] "   \
	"[-i idle_timeout] prog..."

struct options {
	int delayed, quiet, verbose;
	struct tlsids app;
	unsigned handshake, idle;
	char *const *prog;
};

static void parse(struct options *o, int argc, char **argv)
{
	struct tlsopt g = TLSOPT_INIT;
	unsigned long id;
	int c;

	memset(o, 0, sizeof *o);
	o->handshake = 26;
	o->idle = 3600;
	while ((c = tlsopt_next(&g, argc, argv, "nqvu:g:t:i:")) != -1) {
		switch (c) {
		case 'n':
			o->delayed = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'u':
			if (tlsids_parse(g.arg, &id) < 0)
				log_fatal(EXIT_PERM, "-u wants a number: %s",
					  g.arg);
			o->app.has_uid = 1;
			o->app.uid = (uid_t)id;
			break;
		case 'g':
			if (tlsids_parse(g.arg, &id) < 0)
				log_fatal(EXIT_PERM, "-g wants a number: %s",
					  g.arg);
			o->app.has_gid = 1;
			o->app.gid = (gid_t)id;
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

static const char *remote(void)
{
	const char *ip = env_get("TCPREMOTEIP");
	return ip && *ip ? ip : "unknown";
}

/* The application must not inherit the key in its memory. */
static void forget_keys(void *conf)
{
	tlsconf_free(conf);
}

/* Close everything the TLS process holds and exit with the
 * application's status: whatever went wrong, the application learnt it
 * from its descriptors closing, and its status is what it made of it
 * (qmail-remote reads qmail-rsmtp's through tcpclient). */
static _Noreturn void finish(struct tlsapp *app, SSL *ssl)
{
	SSL_free(ssl);
	if (app->ctl >= 0)
		close(app->ctl);
	close(app->data);
	close(0);
	close(1);
	_exit(tlsapp_reap(app));
}

static void become_tls_process(struct tlsapp *app, const struct tlsids *ids,
			       const char *jail)
{
	if (jail && tlsproc_chroot(jail) < 0) {
		log_warn_sys("unable to chroot to %s", jail);
		finish(app, NULL);
	}
	if (tlsids_take(ids) < 0) {
		log_warn_sys("unable to take SSL_UID/SSL_GID");
		finish(app, NULL);
	}
}

static void send_block(struct tlsapp *app, SSL *ssl, unsigned timeout)
{
	struct str b = STR_INIT;

	if (tlsinfo_server(ssl, &b) < 0 || tlsblock_end(&b) < 0) {
		log_warn_sys("unable to make the TLS variables");
		finish(app, ssl);
	}
	if (fd_write_all(app->ctl, b.s, b.len, timeout) < 0) {
		log_warn_sys("unable to pass the TLS variables");
		finish(app, ssl);
	}
	str_free(&b);
}

int main(int argc, char **argv)
{
	struct options o;
	struct tlsids tls_ids;
	struct tlsconf conf;
	struct tlsapp app;
	char err[512];

	log_init(argv[0]);
	parse(&o, argc, argv);
	if (tlsenv_from_tcp() < 0)
		log_nomem();
	if (tlsids_from_env(&tls_ids, "SSL_UID", "SSL_GID") < 0)
		log_fatal(EXIT_TEMP, "SSL_UID and SSL_GID must be numbers");
	const char *jail = env_get("SSL_CHROOT");
	if (jail && !*jail)
		jail = NULL;
	if (!tlsids_possible(&tls_ids) || !tlsids_possible(&o.app) ||
	    (jail && geteuid() != 0))
		log_fatal(EXIT_TEMP, "only root may switch to other ids or "
				     "chroot (SSL_UID, SSL_GID, SSL_CHROOT, "
				     "-u, -g)");
	if (tlsconf_server(&conf, err, sizeof err) < 0)
		log_fatal(EXIT_TEMP, "%s", err);
	if (conf.warning[0])
		log_warn("%s", conf.warning);
	RAND_status(); /* seed now: a chroot may hide the sources */
	signal(SIGPIPE, SIG_IGN);
	if (tlsapp_start(&app, o.prog, &o.app,
			 o.delayed ? TLSMODE_DELAYED : TLSMODE_IMMEDIATE, 0, 1,
			 forget_keys, &conf) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to start %s", o.prog[0]);
	become_tls_process(&app, &tls_ids, jail);

	int request = 'Y';
	if (o.delayed) {
		request = tlsapp_wait_request(&app);
		if (request < 0)
			log_warn_sys("unable to read the control descriptor");
		else if (request > 0 && request != 'y' && request != 'Y')
			log_warn("unknown control byte %d", request);
		if (request != 'y' && request != 'Y')
			finish(&app, NULL); /* declined: its status */
	}
	SSL *ssl = SSL_new(conf.ctx);
	if (!ssl) {
		log_warn("unable to make a TLS connection");
		finish(&app, NULL);
	}
	SSL_set_accept_state(ssl);
	if (tlsio_handshake(ssl, 0, 1, o.handshake, err, sizeof err) < 0) {
		if (!o.quiet)
			log_warn("%s: TLS handshake failed: %s", remote(), err);
		finish(&app, ssl);
	}
	if (request == 'Y')
		send_block(&app, ssl, o.handshake);
	close(app.ctl);
	app.ctl = -1;
	if (o.verbose)
		log_info("%s: %s %s", remote(), SSL_get_version(ssl),
			 SSL_get_cipher_name(ssl));
	if (tlsio_relay(ssl, 0, 1, app.data, o.idle, o.handshake, err,
			sizeof err) < 0 &&
	    !o.quiet)
		log_warn("%s: %s", remote(), err);
	finish(&app, ssl);
}
