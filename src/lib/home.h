/*
 * home.h: where the mail system lives.
 *
 * Every program finds its home the same way: the QMAILHOME environment
 * variable when it is set and the program is not setuid or setgid,
 * otherwise the prefix compiled in (/var/qmail by default). An instance
 * is a home that holds the file "INSTANCE"; there every qmail role runs
 * as the one user who owns the instance.
 */
#ifndef QM_HOME_H
#define QM_HOME_H

/* The home directory. Never NULL. */
const char *home_dir(void);
/* chdir to the home, or exit 111 with a diagnostic naming it. */
void home_chdir(void);
/* True when the home (current directory after home_chdir) is an
 * instance. */
int home_is_instance(void);

#endif
