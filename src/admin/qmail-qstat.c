/*
 * qmail-qstat: count the messages in the queue.
 *
 * It prints the number of message files under queue/mess/ and the number
 * of entries in queue/todo/ that qmail-send has not processed yet, as
 * qmail-qstat(8) does. It only reads directories: it must never open,
 * change or remove a queue file.
 */
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "auto.h"
#include "lib/buf.h"
#include "lib/exitcode.h"
#include "lib/home.h"
#include "lib/log.h"
#include "mail/queuefile.h"

static void count_regular(void *arg, const char *dir, const struct dirent *de)
{
	if (queuefile_is_regular(dir, de))
		++*(unsigned long *)arg;
}

static unsigned long count_files(const char *dir)
{
	unsigned long n = 0;

	if (queuefile_each(dir, count_regular, &n) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to read queue/%s", dir);
	return n;
}

static unsigned long count_messages(void)
{
	char dir[32];
	unsigned long total = 0;

	for (unsigned long i = 0; i < AUTO_SPLIT; i++) {
		snprintf(dir, sizeof dir, "mess/%lu", i);
		total += count_files(dir);
	}
	return total;
}

static void print_counts(unsigned long messages, unsigned long todo)
{
	static char space[BUF_SIZE];
	struct buf out;

	buf_init(&out, 1, space, sizeof space, 0);
	if (buf_puts(&out, "messages in queue: ") < 0 ||
	    buf_putnum(&out, messages) < 0 || buf_putc(&out, '\n') < 0 ||
	    buf_puts(&out, "messages in queue but not yet preprocessed: ") <
		0 ||
	    buf_putnum(&out, todo) < 0 || buf_putc(&out, '\n') < 0 ||
	    buf_flush(&out) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to write the output");
}

int main(int argc, char **argv)
{
	(void)argc;
	log_init(argv[0]);
	home_chdir();
	if (chdir("queue") < 0)
		log_fatal_sys(EXIT_TEMP, "unable to switch to %s/queue",
			      home_dir());
	unsigned long messages = count_messages();
	unsigned long todo = count_files("todo");
	print_counts(messages, todo);
	return 0;
}
