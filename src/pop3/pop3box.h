/*
 * pop3box.h: the Maildir as qmail-pop3d sees it (maildir(5)).
 *
 * A session first moves new/ into cur/, then lists cur/ once: that list
 * is the session's maildrop, numbered from 1 in delivery order. Files
 * that vanish are skipped or reported, never fatal; the list is bounded;
 * and message files are only ever opened, renamed or unlinked relative
 * to directory descriptors, never read whole into memory. This module
 * never prints and never decides what the client is told.
 */
#ifndef QM_POP3BOX_H
#define QM_POP3BOX_H

#include <stddef.h>

#include "lib/str.h"

/* At most this many messages are listed in one session: the oldest ones.
 * The others stay in cur/ for a later session. */
#define POP3_MAX_MESSAGES 50000

/* The longest unique name used as it is for UIDL (RFC 1939: 70). */
#define POP3_UIDL_MAX 70

struct pop3_msg {
	char *name;		 /* file name in cur/, owned */
	unsigned long long when; /* delivery time: the name's leading number */
	unsigned long long size; /* octets in the file when listed */
	unsigned char deleted;	 /* marked by DELE */
	unsigned char retrieved; /* sent whole by RETR */
	unsigned char was_seen;	 /* carried the S flag when listed */
};

struct pop3_box {
	struct pop3_msg *msg; /* by delivery time, then name */
	size_t count;
	size_t cap;
	size_t left_out; /* regular files not listed because of the limit */
};

#define POP3_BOX_INIT                                                          \
	{                                                                      \
		NULL, 0, 0, 0                                                  \
	}

/* --- names --- */

/* The decimal number a name starts with (the delivery time), 0 when it
 * starts with no digit; saturates at ULLONG_MAX. */
unsigned long long pop3_name_time(const char *name);
/* <0, 0, >0: by delivery time, then by name (bytewise). */
int pop3_msg_order(const struct pop3_msg *a, const struct pop3_msg *b);
/* Bytes of the unique part of a name: everything before the first ':'. */
size_t pop3_uniq_len(const char *name);
/* The UIDL of a name (replacing out): its unique part when that is 1 to
 * POP3_UIDL_MAX bytes from '!' to '~'; otherwise '~' and 16 hex digits
 * of a 64-bit FNV-1a hash of the unique part, which is stable across
 * sessions. 0 or -1 (errno). */
int pop3_uidl(const char *name, struct str *out);
/* True when the name carries flag in ":2,<flags>" info. */
int pop3_has_flag(const char *name, char flag);
/* The name with flag added to its ":2," info, flags kept in ASCII order
 * (replacing out); a name without info gets ":2,<flag>". Returns 1 when
 * out holds a new name, 0 when the flag is already there or the info is
 * of another version (left alone), -1 on error (errno). */
int pop3_add_flag(const char *name, char flag, struct str *out);
/* The cur/ name of a file found in new/ (replacing out): ":2," appended
 * unless the name already has info. 0 or -1 (errno). */
int pop3_cur_name(const char *newname, struct str *out);

/* --- directories --- */

/* Rename every entry of newfd not starting with '.' into curfd under its
 * cur/ name. An entry that vanishes meanwhile (another reader took it) is
 * not an error. Counts the renamed entries in *moved. Returns 0, or -1
 * with errno when the directory could not be read or some rename failed
 * (the others are still done; errno is the last failure's). */
int pop3_move_new(int newfd, int curfd, size_t *moved);
/* List the regular files of curfd not starting with '.' into box (which
 * must be empty), keeping the `limit` oldest and counting the rest in
 * box->left_out. Files that vanish while listed are skipped. 0, or -1
 * with errno (box is then empty again). */
int pop3_scan(int curfd, size_t limit, struct pop3_box *box);
void pop3_box_free(struct pop3_box *box);

/* Find m's message again after someone renamed it (new flags): the entry
 * of curfd with the same unique part. Returns 1 and updates m->name, 0
 * when there is none (the message is gone), -1 on error (errno). */
int pop3_relocate(int curfd, struct pop3_msg *m);
/* Open m's file for reading, following a rename (pop3_relocate). Returns
 * the descriptor, or -1 with errno: ENOENT when the message is gone,
 * EINVAL when it is no longer a regular file. */
int pop3_open_msg(int curfd, struct pop3_msg *m);

#endif
