/*
 * qmail-getpw: print who receives the mail for a local address.
 *
 * Output is user\0uid\0gid\0home\0dash\0ext\0 on fd 1, the answer of the
 * same lookup qmail-lspawn makes (users/cdb first, then the passwd rules;
 * see users.h). It must never print a partial answer: a temporary error
 * exits 111 and a missing user 100, with nothing on fd 1.
 */
#include "lib/buf.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "mail/users.h"

static int put_field(struct buf *out, const void *p, size_t n)
{
	if (buf_put(out, p, n) < 0 || buf_putc(out, 0) < 0)
		return -1;
	return 0;
}

static int put_id(struct buf *out, unsigned long long id)
{
	if (buf_putnum(out, id) < 0 || buf_putc(out, 0) < 0)
		return -1;
	return 0;
}

static int print_user(const struct userinfo *u)
{
	char space[BUF_SIZE];
	struct buf out;

	buf_init(&out, 1, space, sizeof space, 0);
	if (put_field(&out, u->user.s, u->user.len) < 0 ||
	    put_id(&out, u->uid) < 0 || put_id(&out, u->gid) < 0 ||
	    put_field(&out, u->home.s, u->home.len) < 0 ||
	    put_field(&out, u->dash.s, u->dash.len) < 0 ||
	    put_field(&out, u->ext.s, u->ext.len) < 0 || buf_flush(&out) < 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct userinfo u = USERINFO_INIT;

	log_init(argc > 0 ? argv[0] : "qmail-getpw");
	if (argc != 2)
		log_fatal(EXIT_PERM, "usage: qmail-getpw local");
	home_chdir();
	switch (users_lookup(argv[1], &u)) {
	case 0:
		log_fatal(EXIT_PERM,
			  "Sorry, no mailbox here by that name. (#5.1.1)");
	case -1:
		log_fatal_sys(EXIT_TEMP, "%s", users_error());
	default:
		break;
	}
	if (print_user(&u) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write output");
	userinfo_free(&u);
	return 0;
}
