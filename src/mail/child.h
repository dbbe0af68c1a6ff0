/*
 * child.h: running a program as a child and learning how it ended.
 *
 * For qmail-local and the .qmail helpers (condredirect, bouncesaying,
 * except, preline), which hand the message to a program and act on its
 * exit code. It never hands a command line to a shell to parse: argv
 * goes to execvp as it is, argv[0] found through PATH. It never turns a
 * crash or a lost child into an exit code the program could have chosen.
 *
 * The only text written by child_start is the child's own, when exec
 * fails: the child has no caller to return an error to. The *_or_defer
 * functions are for the helpers alone: instead of returning an error
 * they end the process with 111 and a log line, as a helper must defer
 * the message when it cannot tell what its program said.
 */
#ifndef QM_CHILD_H
#define QM_CHILD_H

#include <sys/types.h>

/* Exit codes are 0-255; a child ended by signal n gives CHILD_SIGNALED +
 * n, which no exit code can equal. */
#define CHILD_SIGNALED 256

/* Starts argv with our descriptors, except that `in`, unless it is -1,
 * becomes the child's fd 0 (and is closed in the child). Returns the
 * pid, or -1 (errno) when it cannot fork. When the child cannot set up
 * fd 0 or run argv[0], it says so on fd 2 in the log format ("unable to
 * run prog: reason") and exits 111. */
pid_t child_start(char *const *argv, int in);
/* Waits for pid. Returns its exit code or CHILD_SIGNALED + signal, or
 * -1 (errno) when it cannot wait. */
int child_wait(pid_t pid);

/* --- for the .qmail helpers: failures end the process with 111 --- */

/* child_start; "unable to fork" when it fails. */
pid_t child_start_or_defer(char *const *argv, int in);
/* child_wait; "unable to wait for name" or "name crashed" when the exit
 * code is not known. Returns the exit code. */
int child_wait_or_defer(pid_t pid, const char *name);
/* Runs argv with our descriptors and returns its exit code. */
int child_run_or_defer(char *const *argv);

#endif
