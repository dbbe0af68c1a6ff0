/*
 * exitcode.h: what temporary and permanent failure mean, in one place.
 *
 * Programs that deliver (qmail-local, helpers, checkpassword wrappers)
 * exit 0, EXIT_PERM or EXIT_TEMP. qmail-queue and programs offering its
 * interface exit with the QQ_* codes below; 11 through 40 are permanent,
 * anything else that is not 0 is temporary.
 */
#ifndef QM_EXITCODE_H
#define QM_EXITCODE_H

enum {
	EXIT_OK = 0,
	EXIT_PERM = 100, /* permanent failure: bounce, do not retry */
	EXIT_TEMP = 111, /* temporary failure: try again later */
	EXIT_STOP = 99,	 /* .qmail program: success, stop processing */
};

/* qmail-queue(8) exit codes. */
enum {
	QQ_OK = 0,
	QQ_ADDR_TOO_LONG = 11,
	QQ_PERM_REFUSED = 31,
	QQ_NOMEM = 51,
	QQ_TIMEOUT = 52,
	QQ_WRITE = 53,
	QQ_READ = 54,
	QQ_CONFIG = 55,
	QQ_NETWORK = 56,
	QQ_HOME = 61,
	QQ_QUEUE_DIR = 62,
	QQ_QUEUE_PID = 63,
	QQ_QUEUE_MESS = 64,
	QQ_QUEUE_INTD = 65,
	QQ_QUEUE_TODO = 66,
	QQ_TEMP_REFUSED = 71,
	QQ_CONNECT_TIMEOUT = 72,
	QQ_CONNECT_REFUSED = 73,
	QQ_COMMUNICATION = 74,
	QQ_BUG = 81,
	QQ_CUSTOM = 82, /* the reason is on fd 6: Dtext permanent, Ztext temp */
	QQ_ENVELOPE = 91,
};

/* True for the codes a caller must treat as permanent. */
int qq_permanent(int code);
/* The reply text qmail gives for a qmail-queue exit code, for example
 * "451 qq write error or disk full (#4.3.0)". Never NULL. */
const char *qq_reply(int code);

#endif
