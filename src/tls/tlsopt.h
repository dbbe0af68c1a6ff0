/*
 * tlsopt.h: command-line options for the TLS programs and front ends.
 *
 * Like getopt(3) with POSIX rules everywhere: options end at the first
 * argument that is not one (or after "--"), because what follows is
 * another program's command line and must reach it untouched (glibc's
 * getopt would reorder it). Flags may be bundled (-vRl0) and an
 * argument may be attached (-l0) or separate (-l 0).
 */
#ifndef QM_TLSOPT_H
#define QM_TLSOPT_H

struct tlsopt {
	int ind; /* next argv index; the operands start here at the end */
	int pos; /* position inside a bundle */
	const char *arg; /* argument of the option just returned */
	int bad; /* the unknown option, or the one missing its argument */
};

#define TLSOPT_INIT                                                            \
	{                                                                      \
		1, 0, 0, 0                                                     \
	}

/* spec lists option letters, each followed by ':' when it takes an
 * argument. Returns the option, '?' for an unknown option or a missing
 * argument (bad says which), or -1 when the options are over. */
int tlsopt_next(struct tlsopt *o, int argc, char *const *argv,
		const char *spec);

/* Parse a number of seconds or a count: decimal, at most 9 digits.
 * 0 or -1. */
int tlsopt_uint(const char *s, unsigned *out);

#endif
