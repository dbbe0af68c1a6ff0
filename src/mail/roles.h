/*
 * roles.h: which account each part of the mail system runs as.
 *
 * In production the classic accounts (qmails, qmailr, qmailq, qmaill,
 * qmaild, alias) and groups (qmail, nofiles) are looked up by name. In an
 * instance (lib/home.h) every role is the account that owns the instance,
 * read from the owner of its INSTANCE file, never from the environment.
 */
#ifndef QM_ROLES_H
#define QM_ROLES_H

#include <sys/types.h>

enum role {
	ROLE_SEND,   /* qmail-send: qmails, group qmail */
	ROLE_REMOTE, /* qmail-rspawn, qmail-remote: qmailr, group qmail */
	ROLE_QUEUE,  /* qmail-queue, qmail-clean: qmailq, group qmail */
	ROLE_LOG,    /* loggers: qmaill, group nofiles */
	ROLE_DAEMON, /* qmail-smtpd and friends: qmaild, group nofiles */
	ROLE_ALIAS,  /* the alias user: alias, group nofiles */
};

struct roleid {
	uid_t uid;
	gid_t gid;
};

/* Must be called with the current directory at the home. Returns 0, or
 * -1 with errno (ENOENT when the account does not exist). */
int roles_lookup(enum role r, struct roleid *id);
/* Become the role: setgroups to its one group, setgid, setuid. Only
 * when running as root; otherwise a no-op. Returns 0 or -1. */
int roles_become(enum role r);

#endif
