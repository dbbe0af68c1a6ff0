/*
 * qmail-ofmipname: build the display-name cdb that qmail-ofmipd reads.
 *
 *   qmail-ofmipname names.cdb < names
 *
 * Each input line is "sender:Display Name:address:" (mess822's format):
 * a message from sender (compared without regard to case) goes out from
 * address, with "From: Display Name <address>". Blank lines and lines
 * starting with '#' are skipped. A malformed line stops everything and
 * names its number; the old cdb stays until the new one is complete.
 */
#include <errno.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/cdbx.h"
#include "lib/exitcode.h"
#include "lib/log.h"

#define LINE_MAX_ 4096

int main(int argc, char **argv)
{
	static char space[BUF_SIZE];
	struct buf in;
	struct str line = STR_INIT, val = STR_INIT;
	struct cdbx_writer w;
	unsigned long lineno = 0;
	int r;

	log_init(argv[0]);
	if (argc != 2)
		log_fatal(EXIT_PERM, "usage: qmail-ofmipname names.cdb < names");
	if (cdbx_create(&w, argv[1], 0644) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to create %s.tmp", argv[1]);
	buf_init(&in, 0, space, sizeof space, 0);
	for (;;) {
		str_clear(&line);
		r = buf_getline(&in, &line, '\n', LINE_MAX_);
		if (r < 0) {
			cdbx_abort(&w);
			if (errno == EMSGSIZE)
				log_fatal(EXIT_PERM, "line %lu is too long",
					  lineno + 1);
			log_fatal_sys(EXIT_TEMP, "unable to read input");
		}
		if (r == 0 && line.len == 0)
			break;
		lineno++;
		if (line.len && line.s[line.len - 1] == '\n')
			str_truncate(&line, line.len - 1);
		if (line.len == 0 || line.s[0] == '#')
			continue;
		/* key:name:address: */
		char *c1 = memchr(line.s, ':', line.len);
		char *c2 = c1 ? memchr(c1 + 1, ':', line.len - (size_t)(c1 + 1 - line.s)) : NULL;
		char *c3 = c2 ? memchr(c2 + 1, ':', line.len - (size_t)(c2 + 1 - line.s)) : NULL;
		if (!c3 || c1 == line.s || c3 == c2 + 1 ||
		    memchr(line.s, 0, line.len)) {
			cdbx_abort(&w);
			log_fatal(EXIT_PERM,
				  "line %lu is not sender:name:address:", lineno);
		}
		for (char *p = line.s; p < c1; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p + 32);
		str_clear(&val);
		if (str_append(&val, c1 + 1, (size_t)(c2 - c1 - 1)) < 0 ||
		    str_append0(&val) < 0 ||
		    str_append(&val, c2 + 1, (size_t)(c3 - c2 - 1)) < 0 ||
		    str_append0(&val) < 0)
			log_nomem();
		if (cdbx_add(&w, line.s, (size_t)(c1 - line.s), val.s, val.len) < 0)
			log_fatal_sys(EXIT_TEMP, "unable to write %s.tmp", argv[1]);
		if (r == 0)
			break;
	}
	if (cdbx_commit(&w) < 0)
		log_fatal_sys(EXIT_TEMP, "unable to move %s.tmp into place",
			      argv[1]);
	return 0;
}
