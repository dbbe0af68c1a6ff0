/*
 * t_tlsblock.c: the UCSPI-TLS block, the option scanner and the
 * application process of the TLS programs (src/tls).
 *
 * src/tls is built into its own library, which unit tests do not link,
 * so the modules without OpenSSL are compiled in here directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls/tlsblock.c"
#include "tls/tlsopt.c"
#include "tls/tlsproc.c"
#include "unit.h"

#define MEM(lit) lit, sizeof lit - 1
#define CHECK_BLK(p, n, lit) CHECK_MEM(p, n, lit, sizeof lit - 1)

TEST(block_entries_and_end)
{
	struct str b = STR_INIT;
	CHECK_INT(tlsblock_put(&b, "SSL_PROTOCOL", "TLSv1.3"), 0);
	CHECK_INT(tlsblock_putnum(&b, "SSL_CIPHER_USEKEYSIZE", 256), 0);
	CHECK_INT(tlsblock_putnum(&b, "ZERO", 0), 0);
	CHECK_INT(tlsblock_put(&b, "SSL_CLIENT_S_DN", NULL), 0);
	CHECK_INT(tlsblock_put(&b, "EMPTY", ""), 0);
	CHECK_INT(tlsblock_end(&b), 0);
	CHECK_BLK(b.s, b.len,
		  "SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER_USEKEYSIZE=256\0"
		  "ZERO=0\0SSL_CLIENT_S_DN\0EMPTY=\0\0");
	CHECK(tlsblock_complete(b.s, b.len));
	str_free(&b);
}

TEST(block_empty_is_one_nul)
{
	struct str b = STR_INIT;
	CHECK_INT(tlsblock_end(&b), 0);
	CHECK_BLK(b.s, b.len, "\0");
	CHECK(tlsblock_complete(b.s, b.len));
	str_free(&b);
}

TEST(block_refuses_bad_names)
{
	struct str b = STR_INIT;
	errno = 0;
	CHECK_INT(tlsblock_put(&b, "", "x"), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(tlsblock_put(&b, "A=B", "x"), -1);
	CHECK_INT(tlsblock_put(&b, "LD PRELOAD", "x"), -1);
	CHECK_INT(tlsblock_put(&b, NULL, "x"), -1);
	char longname[TLSBLOCK_NAME_MAX + 2];
	memset(longname, 'A', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	CHECK_INT(tlsblock_put(&b, longname, "x"), -1);
	longname[TLSBLOCK_NAME_MAX] = 0;
	CHECK_INT(tlsblock_put(&b, longname, "x"), 0);
	str_free(&b);
}

/* A value the peer chose that cannot be carried whole is unset, never
 * cut: a truncated DN could name someone else. */
TEST(block_unsets_values_it_cannot_carry)
{
	struct str b = STR_INIT;
	CHECK_INT(tlsblock_putn(&b, "NUL", "a\0b", 3), 0);
	CHECK_INT(tlsblock_put(&b, "NL", "a\nb"), 0);
	CHECK_INT(tlsblock_put(&b, "DEL", "a\x7f"), 0);
	char big[TLSBLOCK_VALUE_MAX + 2];
	memset(big, 'v', sizeof big - 1);
	big[sizeof big - 1] = 0;
	CHECK_INT(tlsblock_put(&b, "BIG", big), 0);
	big[TLSBLOCK_VALUE_MAX] = 0;
	CHECK_INT(tlsblock_put(&b, "MAX", big), 0);
	CHECK_INT(tlsblock_put(&b, "UTF8", "J\xc3\xb6rg"), 0);
	CHECK_BLK(b.s, 23, "NUL\0NL\0DEL\0BIG\0MAX=vvvv");
	CHECK_INT(b.len, 15 + 4 + TLSBLOCK_VALUE_MAX + 1 + 11);
	CHECK_BLK(b.s + b.len - 11, 11, "UTF8=J\xc3\xb6rg\0");
	str_free(&b);
}

TEST(block_stops_at_its_maximum)
{
	struct str b = STR_INIT;
	char value[1000];
	memset(value, 'x', sizeof value - 1);
	value[sizeof value - 1] = 0;
	int r;
	do
		r = tlsblock_put(&b, "V", value);
	while (r == 0);
	CHECK_INT(errno, EMSGSIZE);
	size_t len = b.len;
	CHECK(len < TLSBLOCK_MAX);
	CHECK_INT(len % (2 + 999 + 1), 0);
	/* The failed entry left nothing behind, and the end still fits. */
	CHECK_INT(tlsblock_end(&b), 0);
	CHECK_INT(b.len, len + 1);
	CHECK(b.len <= TLSBLOCK_MAX);
	str_free(&b);
}

TEST(block_complete_only_at_the_end)
{
	CHECK(tlsblock_complete(MEM("\0")));
	CHECK(tlsblock_complete(MEM("A=1\0\0")));
	CHECK(tlsblock_complete(MEM("A\0B=\0\0")));
	CHECK(!tlsblock_complete("", 0));
	CHECK(!tlsblock_complete(MEM("A=1\0")));
	CHECK(!tlsblock_complete(MEM("A=1")));
	CHECK(!tlsblock_complete(MEM("\0\0")));
	CHECK(!tlsblock_complete(MEM("A=1\0\0B=2\0\0")));
}

TEST(apply_sets_unsets_and_filters)
{
	setenv("SSL_OLD", "stale", 1);
	setenv("PATHX", "keep", 1);
	unsetenv("SSL_NEW");
	static const char blk[] = "SSL_NEW=a=b\0SSL_OLD\0PATHX=evil\0\0";
	CHECK_INT(tlsblock_apply(blk, sizeof blk - 1, "SSL_"), 0);
	CHECK(getenv("SSL_NEW") && strcmp(getenv("SSL_NEW"), "a=b") == 0);
	CHECK(getenv("SSL_OLD") == NULL);
	CHECK(strcmp(getenv("PATHX"), "keep") == 0);
	CHECK_INT(tlsblock_apply(blk, sizeof blk - 1, ""), 0);
	CHECK(strcmp(getenv("PATHX"), "evil") == 0);
}

TEST(apply_refuses_malformed_blocks_whole)
{
	setenv("SSL_A", "before", 1);
	static const char badname[] = "SSL_A=1\0SSL B=2\0\0";
	static const char noend[] = "SSL_A=1\0";
	static const char extra[] = "SSL_A=1\0\0SSL_B=2\0\0";
	errno = 0;
	CHECK_INT(tlsblock_apply(badname, sizeof badname - 1, "SSL_"), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(tlsblock_apply(noend, sizeof noend - 1, "SSL_"), -1);
	CHECK_INT(tlsblock_apply(extra, sizeof extra - 1, "SSL_"), -1);
	CHECK(strcmp(getenv("SSL_A"), "before") == 0);
}

TEST(read_assembles_a_block_in_pieces)
{
	int p[2];
	struct str b = STR_INIT;
	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
	CHECK_INT(write(p[1], "SSL_A=", 6), 6);
	pid_t pid = fork();
	if (pid == 0) {
		usleep(100000);
		ssize_t w = write(p[1], "1\0\0", 3);
		_exit(w == 3 ? 0 : 1);
	}
	CHECK_INT(tlsblock_read(p[0], &b), 1);
	CHECK_BLK(b.s, b.len, "SSL_A=1\0\0");
	str_free(&b);
}

TEST(read_reports_eof_extra_bytes_and_size)
{
	int p[2];
	struct str b = STR_INIT;
	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
	CHECK_INT(write(p[1], "SSL_A=1\0", 8), 8);
	close(p[1]);
	CHECK_INT(tlsblock_read(p[0], &b), 0);

	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
	CHECK_INT(write(p[1], "A=1\0\0B", 6), 6);
	errno = 0;
	CHECK_INT(tlsblock_read(p[0], &b), -1);
	CHECK_INT(errno, EINVAL);

	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		char x[TLSBLOCK_MAX + 10];
		memset(x, 'x', sizeof x);
		ssize_t w = write(p[1], x, sizeof x);
		_exit(w > 0 ? 0 : 1);
	}
	errno = 0;
	CHECK_INT(tlsblock_read(p[0], &b), -1);
	CHECK_INT(errno, EMSGSIZE);
	CHECK_INT(b.len, TLSBLOCK_MAX);
	str_free(&b);
}

TEST(tcp_variables_become_ssl_variables)
{
	setenv("TCPREMOTEIP", "192.0.2.7", 1);
	setenv("TCPLOCALPORT", "25", 1);
	unsetenv("TCPREMOTEINFO");
	setenv("SSLREMOTEINFO", "stale", 1);
	CHECK_INT(tlsenv_from_tcp(), 0);
	CHECK(strcmp(getenv("SSLREMOTEIP"), "192.0.2.7") == 0);
	CHECK(strcmp(getenv("SSLLOCALPORT"), "25") == 0);
	CHECK(getenv("SSLREMOTEINFO") == NULL);
}

TEST(options_bundled_attached_and_separate)
{
	char *argv[] = {"p", "-vRl0", "-c",   "5",  "-x", "r.cdb",
			"0", "25",    "prog", "-v", NULL};
	struct tlsopt g = TLSOPT_INIT;
	int argc = 10;
	CHECK_INT(tlsopt_next(&g, argc, argv, "vRl:c:x:"), 'v');
	CHECK_INT(tlsopt_next(&g, argc, argv, "vRl:c:x:"), 'R');
	CHECK_INT(tlsopt_next(&g, argc, argv, "vRl:c:x:"), 'l');
	CHECK(g.arg && strcmp(g.arg, "0") == 0);
	CHECK_INT(tlsopt_next(&g, argc, argv, "vRl:c:x:"), 'c');
	CHECK(g.arg && strcmp(g.arg, "5") == 0);
	CHECK_INT(tlsopt_next(&g, argc, argv, "vRl:c:x:"), 'x');
	CHECK(g.arg && strcmp(g.arg, "r.cdb") == 0);
	/* The program's own options are never ours. */
	CHECK_INT(tlsopt_next(&g, argc, argv, "vRl:c:x:"), -1);
	CHECK_INT(g.ind, 6);
}

TEST(options_end_unknown_and_missing)
{
	char *a1[] = {"p", "-n", "--", "-n", NULL};
	struct tlsopt g = TLSOPT_INIT;
	CHECK_INT(tlsopt_next(&g, 4, a1, "n"), 'n');
	CHECK_INT(tlsopt_next(&g, 4, a1, "n"), -1);
	CHECK_INT(g.ind, 3);

	char *a2[] = {"p", "-nk", "-", NULL};
	struct tlsopt h = TLSOPT_INIT;
	CHECK_INT(tlsopt_next(&h, 3, a2, "n"), 'n');
	CHECK_INT(tlsopt_next(&h, 3, a2, "n"), '?');
	CHECK_INT(h.bad, 'k');
	CHECK_INT(tlsopt_next(&h, 3, a2, "n"), -1);
	CHECK_INT(h.ind, 2); /* "-" alone is an operand */

	char *a3[] = {"p", "-t", NULL};
	struct tlsopt k = TLSOPT_INIT;
	CHECK_INT(tlsopt_next(&k, 2, a3, "t:"), '?');
	CHECK_INT(k.bad, 't');

	char *a4[] = {"p", "-:", NULL};
	struct tlsopt m = TLSOPT_INIT;
	CHECK_INT(tlsopt_next(&m, 2, a4, "t:"), '?');
}

TEST(option_numbers)
{
	unsigned n = 7;
	CHECK_INT(tlsopt_uint("26", &n), 0);
	CHECK_INT(n, 26);
	CHECK_INT(tlsopt_uint("0", &n), 0);
	CHECK_INT(n, 0);
	CHECK_INT(tlsopt_uint("999999999", &n), 0);
	CHECK_INT(tlsopt_uint("1000000000", &n), -1);
	CHECK_INT(tlsopt_uint("", &n), -1);
	CHECK_INT(tlsopt_uint("-1", &n), -1);
	CHECK_INT(tlsopt_uint("1x", &n), -1);
	CHECK_INT(tlsopt_uint(NULL, &n), -1);
}

TEST(ids_parse)
{
	unsigned long id = 5;
	CHECK_INT(tlsids_parse("0", &id), 0);
	CHECK_INT(id, 0);
	CHECK_INT(tlsids_parse("4294967294", &id), 0);
	CHECK_INT(id, 4294967294UL);
	errno = 0;
	CHECK_INT(tlsids_parse("4294967295", &id), -1); /* (uid_t)-1 */
	CHECK_INT(errno, EINVAL);
	CHECK_INT(tlsids_parse("99999999999999999999", &id), -1);
	CHECK_INT(tlsids_parse("", &id), -1);
	CHECK_INT(tlsids_parse("-1", &id), -1);
	CHECK_INT(tlsids_parse("qmaild", &id), -1);
}

TEST(ids_from_env)
{
	struct tlsids ids;
	unsetenv("T_UID");
	unsetenv("T_GID");
	CHECK_INT(tlsids_from_env(&ids, "T_UID", "T_GID"), 0);
	CHECK(!ids.has_uid && !ids.has_gid);
	setenv("T_UID", "123", 1);
	CHECK_INT(tlsids_from_env(&ids, "T_UID", "T_GID"), 0);
	CHECK(ids.has_uid && ids.uid == 123 && !ids.has_gid);
	setenv("T_GID", "12x", 1);
	CHECK_INT(tlsids_from_env(&ids, "T_UID", "T_GID"), -1);
	/* Our own ids are always possible. */
	struct tlsids own = {1, 1, getuid(), getgid()};
	CHECK(tlsids_possible(&own));
	if (geteuid() != 0) {
		struct tlsids other = {1, 0, getuid() + 1, 0};
		CHECK(!tlsids_possible(&other));
		CHECK_INT(tlsids_take(&other), -1);
	}
}

/* Reads fd until EOF into buf (NUL-terminated); returns the length. */
static size_t slurp(int fd, char *buf, size_t size)
{
	size_t n = 0;
	ssize_t r;
	while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	return n;
}

static struct tlsids no_ids;

TEST(immediate_app_gets_plaintext_and_only_ssl_variables)
{
	char *argv[] = {"/bin/sh", "-c",
			"printf '%s|%s|%s|' \"$SSL_X\" \"${EVIL-unset}\" "
			"\"${SSLCTLFD-none}\" >&9; exec cat <&8 >&9",
			NULL};
	struct tlsapp app;
	char out[256];
	setenv("SSLCTLFD", "9", 1);
	unsetenv("EVIL");
	CHECK_INT(tlsapp_start(&app, argv, &no_ids, TLSMODE_IMMEDIATE, 8, 9,
			       NULL, NULL),
		  0);
	CHECK(app.ctl >= 3 && app.data >= 3);
	static const char blk[] = "SSL_X=on\0EVIL=1\0\0";
	CHECK_INT(write(app.ctl, blk, sizeof blk - 1), sizeof blk - 1);
	close(app.ctl);
	CHECK_INT(write(app.data, "ping", 4), 4);
	shutdown(app.data, SHUT_WR);
	slurp(app.data, out, sizeof out);
	CHECK_STR(out, strlen(out), "on|unset|none|ping");
	CHECK_INT(tlsapp_reap(&app), 0);
}

TEST(immediate_app_never_runs_without_a_block)
{
	char *argv[] = {"/bin/sh", "-c", "echo ran >&9", NULL};
	struct tlsapp app;
	char out[64];
	CHECK_INT(tlsapp_start(&app, argv, &no_ids, TLSMODE_IMMEDIATE, 8, 9,
			       NULL, NULL),
		  0);
	close(app.ctl);
	CHECK_INT(slurp(app.data, out, sizeof out), 0);
	CHECK_INT(tlsapp_reap(&app), 111);
}

static int hook_ran;
static void hook(void *arg)
{
	(void)arg;
	hook_ran = 1;
	if (write(9, "hook|", 5) != 5)
		_exit(9);
}

TEST(delayed_app_keeps_its_fds_and_gets_three_variables)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(fd_move(9, p[1]), 0);
	char *argv[] = {"/bin/sh", "-c",
			"test \"$SSLREADFD\" = \"$SSLWRITEFD\" || exit 3; "
			"test \"$SSLCTLFD\" -ge 3 || exit 4; "
			"echo clear >&9; printf Y >&\"$SSLCTLFD\"; "
			"printf tls >&\"$SSLWRITEFD\"; exit 7",
			NULL};
	struct tlsapp app;
	char out[64];
	CHECK_INT(tlsapp_start(&app, argv, &no_ids, TLSMODE_DELAYED, 8, 9, hook,
			       NULL),
		  0);
	close(9);
	CHECK_INT(hook_ran, 0); /* it ran in the child only */
	CHECK_INT(tlsapp_wait_request(&app), 'Y');
	slurp(app.data, out, sizeof out);
	CHECK_STR(out, strlen(out), "tls");
	slurp(p[0], out, sizeof out);
	CHECK_STR(out, strlen(out), "hook|clear\n");
	CHECK_INT(tlsapp_wait_request(&app), 0);
	CHECK_INT(tlsapp_reap(&app), 7);
}

TEST(reap_reports_a_killed_app_as_temporary)
{
	char *argv[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
	struct tlsapp app;
	CHECK_INT(tlsapp_start(&app, argv, &no_ids, TLSMODE_DELAYED, 0, 1, NULL,
			       NULL),
		  0);
	CHECK_INT(tlsapp_reap(&app), 111);
	CHECK_INT(tlsapp_reap(&app), 111); /* nothing left to wait for */
}

TEST(app_that_cannot_run_exits_111)
{
	char *argv[] = {"/nonexistent/prog", NULL};
	struct tlsapp app;
	CHECK_INT(tlsapp_start(&app, argv, &no_ids, TLSMODE_DELAYED, 0, 1, NULL,
			       NULL),
		  0);
	CHECK_INT(tlsapp_wait_request(&app), 0);
	CHECK_INT(tlsapp_reap(&app), 111);
}

TEST(devnull_replaces_a_descriptor)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(fd_move(22, p[1]), 0);
	CHECK_INT(tlsproc_devnull(22), 0);
	char c;
	/* The pipe's last writer is gone: its reader sees EOF. */
	CHECK_INT(read(p[0], &c, 1), 0);
	CHECK_INT(write(22, "x", 1), 1);
}

UNIT_MAIN(block_entries_and_end, block_empty_is_one_nul,
	  block_refuses_bad_names, block_unsets_values_it_cannot_carry,
	  block_stops_at_its_maximum, block_complete_only_at_the_end,
	  apply_sets_unsets_and_filters, apply_refuses_malformed_blocks_whole,
	  read_assembles_a_block_in_pieces,
	  read_reports_eof_extra_bytes_and_size,
	  tcp_variables_become_ssl_variables,
	  options_bundled_attached_and_separate,
	  options_end_unknown_and_missing, option_numbers, ids_parse,
	  ids_from_env, immediate_app_gets_plaintext_and_only_ssl_variables,
	  immediate_app_never_runs_without_a_block,
	  delayed_app_keeps_its_fds_and_gets_three_variables,
	  reap_reports_a_killed_app_as_temporary, app_that_cannot_run_exits_111,
	  devnull_replaces_a_descriptor)
