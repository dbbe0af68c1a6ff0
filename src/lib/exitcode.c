/*
 * exitcode.c: what a qmail-queue exit code means to the one who ran it.
 *
 * The texts are the replies an SMTP server gives; QMQP and injection
 * programs reuse them. Codes 11 to 40 are permanent, by qmail-queue(8).
 */
#include "exitcode.h"

int qq_permanent(int code)
{
	return code >= 11 && code <= 40;
}

const char *qq_reply(int code)
{
	switch (code) {
	case QQ_OK:
		return "250 ok";
	case QQ_ADDR_TOO_LONG:
		return "554 address too long (#5.1.3)";
	case QQ_PERM_REFUSED:
		return "554 mail server permanently rejected message (#5.3.0)";
	case QQ_NOMEM:
		return "451 qq out of memory (#4.3.0)";
	case QQ_TIMEOUT:
		return "451 qq timeout (#4.3.0)";
	case QQ_WRITE:
		return "451 qq write error or disk full (#4.3.0)";
	case QQ_READ:
		return "451 qq read error (#4.3.0)";
	case QQ_CONFIG:
		return "451 qq unable to read configuration (#4.3.0)";
	case QQ_NETWORK:
		return "451 qq trouble making network connection (#4.3.0)";
	case QQ_HOME:
		return "451 qq trouble in home directory (#4.3.0)";
	case QQ_QUEUE_DIR:
	case QQ_QUEUE_PID:
	case QQ_QUEUE_MESS:
	case QQ_QUEUE_INTD:
	case QQ_QUEUE_TODO:
		return "451 qq trouble creating files in queue (#4.3.0)";
	case QQ_TEMP_REFUSED:
		return "451 mail server temporarily rejected message (#4.3.0)";
	case QQ_CONNECT_TIMEOUT:
		return "451 connection to mail server timed out (#4.4.1)";
	case QQ_CONNECT_REFUSED:
		return "451 connection to mail server rejected (#4.4.1)";
	case QQ_COMMUNICATION:
		return "451 communication with mail server failed (#4.4.2)";
	case QQ_ENVELOPE:
		return "451 qq envelope format error (#4.3.0)";
	case QQ_BUG:
	default:
		if (qq_permanent(code))
			return "554 mail server permanently rejected message "
			       "(#5.3.0)";
		return "451 qq internal bug (#4.3.0)";
	}
}
