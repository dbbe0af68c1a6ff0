/*
 * fuzz_main.c: a main() for the harnesses without libFuzzer, for AFL++
 * and for replaying inputs where libFuzzer is missing.
 *
 *   harness FILE|DIR...   run every file given (a directory: every
 *                         regular file in it, in name order); exit 0
 *                         when every input passed
 *   harness               run one input read from stdin; under
 *                         afl-clang-fast, AFL++'s persistent mode
 *
 * Each input is copied into a buffer of exactly its size, so that the
 * sanitizers see a read past its end, as under libFuzzer. A failing
 * input aborts the process, with the file name printed first. This
 * never writes a file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a harness, as with libFuzzer. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Largest input read, as libFuzzer's -max_len is for the seeds. */
#define INPUT_MAX ((size_t)1 << 20)

static void run(const uint8_t *p, size_t n)
{
	/* A copy of exactly n bytes: malloc(0) may give NULL. */
	uint8_t *copy = malloc(n ? n : 1);

	if (!copy) {
		perror("fuzz_main: malloc");
		exit(2);
	}
	if (n)
		memcpy(copy, p, n);
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
}

/* Read all of fd (at most INPUT_MAX bytes) into buf. */
static size_t read_input(int fd, uint8_t *buf, const char *name)
{
	size_t n = 0;

	for (;;) {
		ssize_t r = read(fd, buf + n, INPUT_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "fuzz_main: unable to read %s: %s\n",
				name, strerror(errno));
			exit(2);
		}
		if (r == 0 || (n += (size_t)r) == INPUT_MAX)
			return n;
	}
}

static void run_file(const char *path, uint8_t *buf)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "fuzz_main: unable to open %s: %s\n", path,
			strerror(errno));
		exit(2);
	}
	size_t n = read_input(fd, buf, path);
	close(fd);
	fprintf(stderr, "fuzz_main: running %s (%zu bytes)\n", path, n);
	run(buf, n);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order; returns how many ran. */
static size_t run_dir(const char *dir, uint8_t *buf)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (!d) {
		fprintf(stderr, "fuzz_main: unable to open %s: %s\n", dir,
			strerror(errno));
		exit(2);
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **v = realloc(names, cap * sizeof *names);
			if (!v)
				exit(2);
			names = v;
		}
		size_t len = strlen(dir) + strlen(e->d_name) + 2;
		if (!(names[n] = malloc(len)))
			exit(2);
		snprintf(names[n++], len, "%s/%s", dir, e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, by_name);
	size_t ran = 0;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
			run_file(names[i], buf);
			ran++;
		}
		free(names[i]);
	}
	free(names);
	return ran;
}

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();

/* AFL++ persistent mode: many inputs per process, from shared memory. */
static void run_afl(void)
{
	__AFL_INIT();
	const uint8_t *p = __AFL_FUZZ_TESTCASE_BUF;
	while (__AFL_LOOP(10000))
		run(p, (size_t)__AFL_FUZZ_TESTCASE_LEN);
}
#endif

int main(int argc, char **argv)
{
	uint8_t *buf = malloc(INPUT_MAX);
	size_t ran = 0;

	if (!buf)
		return 2;
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2) {
#ifdef __AFL_FUZZ_TESTCASE_LEN
		run_afl();
#else
		run(buf, read_input(0, buf, "stdin"));
#endif
		free(buf);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			ran += run_dir(argv[i], buf);
		} else {
			run_file(argv[i], buf);
			ran++;
		}
	}
	fprintf(stderr, "fuzz_main: %zu inputs ran clean\n", ran);
	free(buf);
	return 0;
}
