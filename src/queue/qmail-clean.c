/*
 * qmail-clean: remove queue files that qmail-send may not remove itself.
 *
 * mess/, intd/ and todo/ belong to qmailq; qmail-send runs as qmails. It
 * reads commands on fd 0 and answers each with one byte on fd 1: '+'
 * done, '!' failed. It only ever unlinks files named by a queue id, so a
 * confused caller cannot make it remove anything else. Commands:
 *   T<id>\0  the todo entry was processed: remove intd/<id>, todo/<id>
 *   D<id>\0  the message is finished: remove intd/<id>, todo/<id>,
 *            then mess/<n>/<id> (last: its inode may be reused at once)
 * When idle it removes pid/ files older than 36 hours, which a killed
 * qmail-queue leaves behind.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auto.h"
#include "lib/buf.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"

#define OLD (36 * 3600)

static int unlink_missing_ok(const char *fn)
{
	return (unlink(fn) == 0 || errno == ENOENT) ? 0 : -1;
}

static int parse_id(const struct str *cmd, unsigned long *id)
{
	unsigned long n = 0;
	if (cmd->len < 3) /* type, at least one digit, NUL */
		return -1;
	for (size_t i = 1; i + 1 < cmd->len; i++) {
		char c = cmd->s[i];
		if (c < '0' || c > '9' || n > (~0UL - 9) / 10)
			return -1;
		n = n * 10 + (unsigned long)(c - '0');
	}
	*id = n;
	return 0;
}

static int clean(const struct str *cmd)
{
	char fn[64];
	unsigned long id;

	if (parse_id(cmd, &id) < 0)
		return -1;
	if (cmd->s[0] != 'D' && cmd->s[0] != 'T')
		return -1;
	snprintf(fn, sizeof fn, "intd/%lu", id);
	if (unlink_missing_ok(fn) < 0)
		return -1;
	snprintf(fn, sizeof fn, "todo/%lu", id);
	if (unlink_missing_ok(fn) < 0)
		return -1;
	if (cmd->s[0] != 'D')
		return 0;
	/* The message file goes last: removing it frees its inode, and a
	 * new message may take that number at once. Nothing named by the
	 * id may be touched after that, or it would be the new message's. */
	snprintf(fn, sizeof fn, "mess/%lu/%lu", id % AUTO_SPLIT, id);
	return unlink_missing_ok(fn);
}

static void clean_pid_dir(void)
{
	DIR *d = opendir("pid");
	struct dirent *de;
	char fn[300];
	struct stat st;
	time_t now = time(NULL);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(fn, sizeof fn, "pid/%s", de->d_name);
		if (stat(fn, &st) == 0 && now - st.st_atime > OLD &&
		    now - st.st_mtime > OLD)
			unlink(fn);
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	static char inspace[1024];
	struct buf in;
	struct str cmd = STR_INIT;
	struct pollfd p = {.fd = 0, .events = POLLIN};

	log_init(argv[0]);
	home_chdir();
	if (chdir("queue") < 0)
		log_fatal_sys(EXIT_TEMP, "unable to switch to queue");
	buf_init(&in, 0, inspace, sizeof inspace, 0);
	clean_pid_dir();
	time_t last_tidy = time(NULL);
	for (;;) {
		/* Wait up to an hour for work; tidy pid/ when idle. */
		if (buf_avail(&in) == 0) {
			int r = poll(&p, 1, 3600 * 1000);
			if (r == 0) {
				clean_pid_dir();
				last_tidy = time(NULL);
				continue;
			}
		}
		str_clear(&cmd);
		int r = buf_getline(&in, &cmd, 0, 64);
		if (r == 0)
			return 0; /* qmail-send went away */
		if (r < 0) {
			if (errno == EMSGSIZE && buf_skipline(&in, 0) >= 0) {
				if (fd_write_all(1, "!", 1, 0) < 0)
					return EXIT_TEMP;
				continue;
			}
			log_fatal_sys(EXIT_TEMP, "unable to read commands");
		}
		/* A busy queue is never idle for an hour: tidy anyway. */
		if (time(NULL) - last_tidy > 3600) {
			clean_pid_dir();
			last_tidy = time(NULL);
		}
		const char *reply = clean(&cmd) == 0 ? "+" : "!";
		if (fd_write_all(1, reply, 1, 0) < 0)
			return EXIT_TEMP;
	}
}
