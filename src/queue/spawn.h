/*
 * spawn.h: the part of qmail-lspawn and qmail-rspawn that is the same.
 *
 * The spawner reads delivery commands from qmail-send on fd 0, runs one
 * child per delivery with the message on its fd 0 and a pipe on its fd
 * 1, and answers on fd 1 with the slot and a report (K, Z or D, then
 * text, then NUL). A child that dies without a word is a temporary
 * failure, never a success. The spawner's cwd is the qmail home.
 */
#ifndef QM_SPAWN_H
#define QM_SPAWN_H

#include "lib/str.h"

struct spawn_ops {
	/* Runs in the child, message on fd 0, report pipe on fd 1.
	 * Never returns: execs or exits. */
	void (*deliver)(const char *sender, const char *rcpt);
	/* Turns the child's wait status and output into the report. */
	void (*report)(int status, const struct str *output,
		       struct str *report);
};

/* The spawner's main loop; returns the exit code. */
int spawn_main(const struct spawn_ops *ops);

/* Split "local@domain" at the last '@' (domain empty when none). */
void spawn_split(const char *rcpt, struct str *local, struct str *domain);

#endif
