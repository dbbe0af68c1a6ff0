/*
 * cpwrun.h: running a checkpassword program (djb's interface) the way
 * qmail-authup does: "login\0password\0timestamp\0" on fd 3 through a
 * pipe, AUTHUP_USER=<login> in its environment, fds 0, 1 and 2
 * inherited as they are.
 *
 * The caller must have moved any descriptor it still needs away from
 * fd 3 first (tlsfd.h): the child's fd 3 is replaced by the pipe.
 */
#ifndef QM_AUTH_CPWRUN_H
#define QM_AUTH_CPWRUN_H

#include <stddef.h>

/* At most this much is written to fd 3 (three fields and their NULs). */
#define CPWRUN_INPUT_MAX 2048

enum cpwrun_outcome {
	CPWRUN_FAILED,	/* exit 1, 2 or 111: the login failed */
	CPWRUN_CRASHED, /* killed by a signal */
	CPWRUN_SESSION	/* any other exit: the login worked and prog ran */
};

struct cpwrun_input {
	const char *user;
	size_t ulen;
	const char *pass;
	size_t plen;
	const char *stamp; /* the POP3 timestamp, or empty */
	size_t slen;
};

/* Fork, exec argv[0] (searched in PATH) with argv, hand it the input,
 * wipe the copy made for the pipe, and wait. Returns 0 with *status
 * (as from waitpid), or -1 with errno when the child could not be
 * started (EMSGSIZE: the input does not fit CPWRUN_INPUT_MAX; a user
 * holding NUL is EINVAL). The child exits 111 when exec fails. */
int cpwrun(char *const *argv, const struct cpwrun_input *in, int *status);
/* What a status means; *code gets the exit code or the signal. */
enum cpwrun_outcome cpwrun_outcome(int status, int *code);

#endif
