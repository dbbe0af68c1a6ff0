/*
 * sslserver: ucspi-ssl's sslserver command line, done by tcpserver and
 * ucspi-tlsd.
 *
 * It translates the options and execs
 *   tcpserver [tcp options] host port ucspi-tlsd [tls options] prog...
 * Options tcpserver has with the same meaning pass through; -n, -T,
 * -w, -V go to ucspi-tlsd; -u, -g (and -U) go to ucspi-tlsd too, and
 * never to tcpserver: the application must not run under a uid that
 * cannot read the certificate before ucspi-tlsd has loaded it. What
 * cannot be honoured is refused with a reason.
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
	"usage: sslserver [-146neEsSvqQVdDoOpPhHrRXZ] [-c limit] [-x cdb] "    \
	"[-b backlog] [-l localname] [-t timeout] [-T timeout] [-w timeout] "  \
	"[-u uid] [-g gid] [-U] [-I interface] host port prog..."

#define SPEC "146neEsSvqQVdDoOpPhHrRXZUmzi3c:x:b:l:t:T:w:u:g:I:B:"

/* Flags tcpserver takes with the meaning ucspi-ssl gives them. */
static const char tcp_flags[] = "146vqQdDoOpPhHrRX";

static void tlsd_ids(struct argvbuf *tls, const char *uid, const char *gid)
{
	if (!uid || !gid)
		log_fatal(EXIT_PERM, "-U needs $UID and $GID (see envuidgid)");
	av_push2(tls, "-u", uid);
	av_push2(tls, "-g", gid);
}

static void translate(int c, const char *arg, struct argvbuf *tcp,
		      struct argvbuf *tls)
{
	if (c != '?' && strchr(tcp_flags, c)) {
		av_flag(tcp, c);
		if (c == 'q')
			av_flag(tls, 'q');
		return;
	}
	switch (c) {
	case 'c':
	case 'b':
	case 't':
		front_number(c, arg);
		av_flag(tcp, c);
		av_push(tcp, arg);
		return;
	case 'x':
	case 'l':
	case 'I':
		av_flag(tcp, c);
		av_push(tcp, arg);
		return;
	case 'n':
		av_flag(tls, 'n');
		return;
	case 'V':
		av_flag(tls, 'v');
		return;
	case 'T':
		front_number(c, arg);
		av_push2(tls, "-t", arg);
		return;
	case 'w':
		front_number(c, arg);
		av_push2(tls, "-i", arg);
		return;
	case 'u':
	case 'g':
		front_number(c, arg);
		av_flag(tls, c);
		av_push(tls, arg);
		return;
	case 'U':
		tlsd_ids(tls, env_get("UID"), env_get("GID"));
		return;
	case 'e': /* tcpserver always sets the TCP variables */
	case 'E': /* and they are harmless: accepted, no effect */
	case 's': /* the SSL_* variables are always set */
	case 'S':
	case 'Z': /* no client certificate required: the default */
		return;
	case 'B':
		front_refuse(c, "the banner would go out before TLS starts");
	case 'm':
	case 'z':
	case 'i':
		front_refuse(c, "set CCAFILE to ask for client certificates; "
				"the application decides what a missing or "
				"failed one means");
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
	size_t room = 2 * (size_t)argc + 8;
	int c;

	log_init(argv[0]);
	av_init(&tcp, room);
	av_init(&tls, room + 4);
	av_push(&tcp, "tcpserver");
	/* ucspi-ssl does not ask the client's identd unless told to. */
	av_push(&tcp, "-R");
	while ((c = tlsopt_next(&g, argc, argv, SPEC)) != -1) {
		if (c == '?')
			log_fatal(EXIT_PERM, "unknown option -%c; %s", g.bad,
				  USAGE);
		translate(c, g.arg, &tcp, &tls);
	}
	if (argc - g.ind < 3)
		log_fatal(EXIT_PERM, USAGE);
	av_init(&all, tcp.n + tls.n + (size_t)(argc - g.ind) + 4);
	av_append(&all, &tcp);
	av_push2(&all, argv[g.ind], argv[g.ind + 1]);
	av_push(&all, front_sibling(argv[0], "ucspi-tlsd"));
	av_append(&all, &tls);
	av_push(&all, "--");
	for (int i = g.ind + 2; i < argc; i++)
		av_push(&all, argv[i]);
	execvp(all.v[0], (char *const *)all.v);
	log_fatal_sys(EXIT_TEMP, "unable to run tcpserver");
}
