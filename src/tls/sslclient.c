/*
 * sslclient: ucspi-ssl's sslclient command line, done by tcpclient and
 * ucspi-tlsc.
 *
 * It translates the options and execs
 *   tcpclient [tcp options] host port ucspi-tlsc [tls options] prog...
 * with TLS_SERVERNAME set to host (unless -N), so that the certificate
 * is checked against the name the user asked for. As in ucspi-ssl, the
 * server certificate must verify unless -X is given. Certificate and CA
 * options become the variables ucspi-tlsc reads. What cannot be
 * honoured is refused with a reason.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/env.h"
#include "lib/exitcode.h"
#include "lib/log.h"
#include "tls/front.h"
#include "tls/tlsopt.h"

#define USAGE                                                                  \
	"usage: sslclient [-46yxXnNeEsSvqQdDhHrR] [-i localip] "               \
	"[-p localport] [-T timeoutconn] [-l localname] [-t timeoutinfo] "     \
	"[-w timeout] [-a cafile] [-A cadir] [-c certfile] [-k keyfile] "      \
	"[-z ciphers] [-I interface] host port prog..."

#define SPEC "46yxXnNeEsSvqQdDhHrR3i:p:T:l:t:w:a:A:c:k:z:I:C:V:"

/* Flags tcpclient takes with the meaning ucspi-ssl gives them. */
static const char tcp_flags[] = "46vqQdDhHrR";

struct choice {
	int require, check_name;
};

static void set(const char *name, const char *value)
{
	if (env_set(name, value) < 0)
		log_nomem();
}

/* "x+y" or "x": the handshake gets x+y seconds, as ucspi-ssl gives. */
static void connect_timeout(const char *arg, struct argvbuf *tcp,
			    struct argvbuf *tls)
{
	static char total[16];
	char first[16];
	const char *plus = strchr(arg, '+');
	size_t len = plus ? (size_t)(plus - arg) : strlen(arg);
	unsigned x, y = 0;

	if (len == 0 || len >= sizeof first)
		log_fatal(EXIT_PERM, "-T wants x+y seconds, not %s", arg);
	memcpy(first, arg, len);
	first[len] = 0;
	if (tlsopt_uint(first, &x) < 0 ||
	    (plus && tlsopt_uint(plus + 1, &y) < 0))
		log_fatal(EXIT_PERM, "-T wants x+y seconds, not %s", arg);
	av_push2(tcp, "-T", arg);
	unsigned long sum = (unsigned long)x + y;
	size_t i = sizeof total - 1;
	total[i] = 0;
	do {
		total[--i] = (char)('0' + sum % 10);
		sum /= 10;
	} while (sum && i > 0);
	av_push2(tls, "-t", total + i);
}

static void translate(int c, const char *arg, struct argvbuf *tcp,
		      struct argvbuf *tls, struct choice *ch)
{
	if (strchr(tcp_flags, c)) {
		av_flag(tcp, c);
		if (c == 'q')
			av_flag(tls, 'q');
		return;
	}
	switch (c) {
	case 't':
		front_number(c, arg);
		/* fall through */
	case 'i':
	case 'p':
	case 'l':
	case 'I':
		av_flag(tcp, c);
		av_push(tcp, arg);
		return;
	case 'T':
		connect_timeout(arg, tcp, tls);
		return;
	case 'w':
		front_number(c, arg);
		av_push2(tls, "-i", arg);
		return;
	case 'y':
		av_flag(tls, 'y');
		return;
	case 'x':
	case 'X':
		ch->require = c == 'x';
		return;
	case 'n':
	case 'N':
		ch->check_name = c == 'n';
		return;
	case 'a':
		set("CAFILE", arg);
		return;
	case 'A':
		set("CADIR", arg);
		return;
	case 'c':
		set("CERTFILE", arg);
		return;
	case 'k':
		set("KEYFILE", arg);
		return;
	case 'z':
		set("CIPHERS", arg);
		return;
	case 'e': /* tcpclient always sets the TCP variables */
	case 'E':
	case 's': /* the SSL_* variables are always set */
	case 'S':
		return;
	case 'C':
		front_refuse(c, "ucspi-ssl versions disagree on its meaning; "
				"use -z for ciphers");
	case 'V':
		front_refuse(c, "the verification depth is OpenSSL's default");
	case '3':
		front_refuse(c, "keys protected by a password");
	default:
		log_fatal(EXIT_PERM, USAGE);
	}
}

int main(int argc, char **argv)
{
	struct tlsopt g = TLSOPT_INIT;
	struct argvbuf tcp, tls, all;
	struct choice ch = {1, 1};
	size_t room = 2 * (size_t)argc + 8;
	int c;

	log_init(argv[0]);
	av_init(&tcp, room);
	av_init(&tls, room);
	av_push(&tcp, "tcpclient");
	while ((c = tlsopt_next(&g, argc, argv, SPEC)) != -1) {
		if (c == '?')
			log_fatal(EXIT_PERM, "unknown option -%c; %s", g.bad,
				  USAGE);
		translate(c, g.arg, &tcp, &tls, &ch);
	}
	if (argc - g.ind < 3)
		log_fatal(EXIT_PERM, USAGE);
	if (ch.require)
		av_flag(&tls, 'V');
	if (ch.check_name)
		set("TLS_SERVERNAME", argv[g.ind]);
	else if (env_unset("TLS_SERVERNAME") < 0)
		log_nomem();
	av_init(&all, tcp.n + tls.n + (size_t)(argc - g.ind) + 4);
	av_append(&all, &tcp);
	av_push2(&all, argv[g.ind], argv[g.ind + 1]);
	av_push(&all, front_sibling(argv[0], "ucspi-tlsc"));
	av_append(&all, &tls);
	av_push(&all, "--");
	for (int i = g.ind + 2; i < argc; i++)
		av_push(&all, argv[i]);
	execvp(all.v[0], (char *const *)all.v);
	log_fatal_sys(EXIT_TEMP, "unable to run tcpclient");
}
