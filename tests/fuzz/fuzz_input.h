/*
 * fuzz_input.h: hand one fuzz input to code that reads a descriptor.
 *
 * The input is written to one anonymous file (memfd on Linux, an
 * unlinked temporary file elsewhere), made once per process and rewritten
 * for every input, then rewound. This must never write to a named file
 * that outlives the process, and never keep state from one input to the
 * next other than that one descriptor.
 */
#ifndef QM_FUZZ_INPUT_H
#define QM_FUZZ_INPUT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/buf.h"

static inline int fuzz_input_file(void)
{
#ifdef __linux__
	int fd = memfd_create("qm-fuzz", MFD_CLOEXEC);
#else
	char name[] = "/tmp/qm-fuzz.XXXXXX";
	int fd = mkstemp(name);
	if (fd >= 0)
		unlink(name);
#endif
	if (fd < 0) {
		perror("fuzz: anonymous file");
		abort();
	}
	return fd;
}

/* The descriptor, rewound, holding exactly data[0..size). A failure here
 * is the harness's, not the code's: abort so that it is seen. */
static inline int fuzz_input_fd(const uint8_t *data, size_t size)
{
	static int fd = -1;

	if (fd < 0)
		fd = fuzz_input_file();
	if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		abort();
	if (size && fd_write_all(fd, data, size, 0) < 0)
		abort();
	if (lseek(fd, 0, SEEK_SET) < 0)
		abort();
	return fd;
}

/* Buffer sizes to read with: tiny ones put every state of a parser on a
 * buffer boundary, the real one is what the programs use. */
static inline size_t fuzz_buf_size(uint8_t selector)
{
	static const size_t sizes[] = {1, 2, 3, 5, 7, 16, 512, BUF_SIZE};
	return sizes[selector % (sizeof sizes / sizeof sizes[0])];
}

/* Everything left to read: what is buffered, then the descriptor until
 * EOF, appended to out. Returns 0, or -1 on a read error. */
static inline int fuzz_read_rest(struct buf *b, struct str *out)
{
	char chunk[256];
	ssize_t r;

	while ((r = buf_read(b, chunk, sizeof chunk)) > 0)
		if (str_append(out, chunk, (size_t)r) < 0)
			return -1;
	return r < 0 ? -1 : 0;
}

#endif
