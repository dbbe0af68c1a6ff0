/*
 * unit.h: the smallest test framework that does the job.
 *
 * Each t_*.c file is one test program: it defines test functions with
 * TEST(name) and ends with UNIT_MAIN(name, ...). Each test runs in its own
 * forked child, so a crash or an exit() in one test fails that test only.
 * The program prints "N passed, N failed" and exits non-zero on failure.
 */
#ifndef QM_UNIT_H
#define QM_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int unit_failures;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n",        \
				__FILE__, __LINE__, #cond);                 \
			unit_failures++;                                    \
		}                                                           \
	} while (0)

#define CHECK_INT(a, b)                                                     \
	do {                                                                \
		long long unit_a = (long long)(a), unit_b = (long long)(b); \
		if (unit_a != unit_b) {                                     \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", \
				__FILE__, __LINE__, #a, unit_a, unit_b);    \
			unit_failures++;                                    \
		}                                                           \
	} while (0)

/* Compare n bytes at p with the C string lit (which may hold \0 escapes
 * when given with an explicit length via CHECK_MEM). */
#define CHECK_MEM(p, n, lit, litn)                                          \
	do {                                                                \
		size_t unit_n = (size_t)(n);                                \
		if (unit_n != (size_t)(litn) ||                             \
		    memcmp((p), (lit), unit_n) != 0) {                      \
			fprintf(stderr, "%s:%d: %s is \"%.*s\" (%zu), "     \
					"expected \"%.*s\" (%zu)\n",        \
				__FILE__, __LINE__, #p, (int)unit_n,        \
				(const char *)(p), unit_n, (int)(litn),     \
				(const char *)(lit), (size_t)(litn));       \
			unit_failures++;                                    \
		}                                                           \
	} while (0)

#define CHECK_STR(p, n, lit) CHECK_MEM(p, n, lit, strlen(lit))

struct unit_test {
	const char *name;
	void (*fn)(void);
};

static int unit_run(const struct unit_test *t, size_t count)
{
	int passed = 0, failed = 0;
	for (size_t i = 0; i < count; i++) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			exit(2);
		}
		if (pid == 0) {
			unit_failures = 0;
			t[i].fn();
			fflush(NULL);
			_exit(unit_failures ? 1 : 0);
		}
		int status;
		while (waitpid(pid, &status, 0) < 0)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			passed++;
		} else {
			failed++;
			if (WIFSIGNALED(status))
				fprintf(stderr, "%s: killed by signal %d\n",
					t[i].name, WTERMSIG(status));
			fprintf(stderr, "FAIL %s\n", t[i].name);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#define UNIT_ENTRY(fn) {#fn, fn},
#define UNIT_MAIN(...)                                                      \
	int main(void)                                                      \
	{                                                                   \
		static const struct unit_test unit_tests[] = {              \
			UNIT_FOREACH(UNIT_ENTRY, __VA_ARGS__)};             \
		return unit_run(unit_tests,                                 \
				sizeof unit_tests / sizeof unit_tests[0]);  \
	}

/* A for-each over up to 64 arguments. */
#define UNIT_FOREACH(m, ...)                                                \
	UNIT_FE_(__VA_ARGS__, UNIT_FE64, UNIT_FE63, UNIT_FE62, UNIT_FE61,  \
		 UNIT_FE60, UNIT_FE59, UNIT_FE58, UNIT_FE57, UNIT_FE56,     \
		 UNIT_FE55, UNIT_FE54, UNIT_FE53, UNIT_FE52, UNIT_FE51,     \
		 UNIT_FE50, UNIT_FE49, UNIT_FE48, UNIT_FE47, UNIT_FE46,     \
		 UNIT_FE45, UNIT_FE44, UNIT_FE43, UNIT_FE42, UNIT_FE41,     \
		 UNIT_FE40, UNIT_FE39, UNIT_FE38, UNIT_FE37, UNIT_FE36,     \
		 UNIT_FE35, UNIT_FE34, UNIT_FE33, UNIT_FE32, UNIT_FE31,     \
		 UNIT_FE30, UNIT_FE29, UNIT_FE28, UNIT_FE27, UNIT_FE26,     \
		 UNIT_FE25, UNIT_FE24, UNIT_FE23, UNIT_FE22, UNIT_FE21,     \
		 UNIT_FE20, UNIT_FE19, UNIT_FE18, UNIT_FE17, UNIT_FE16,     \
		 UNIT_FE15, UNIT_FE14, UNIT_FE13, UNIT_FE12, UNIT_FE11,     \
		 UNIT_FE10, UNIT_FE9, UNIT_FE8, UNIT_FE7, UNIT_FE6,         \
		 UNIT_FE5, UNIT_FE4, UNIT_FE3, UNIT_FE2, UNIT_FE1)(m, __VA_ARGS__)
#define UNIT_FE_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, _33, _34, _35, _36, _37, _38, _39, _40, _41, _42, _43, _44, _45, _46, _47, _48, _49, _50, _51, _52, _53, _54, _55, _56, _57, _58, _59, _60, _61, _62, _63, _64, N, ...) N
#define UNIT_FE1(m, a) m(a)
#define UNIT_FE2(m, a, ...) m(a) UNIT_FE1(m, __VA_ARGS__)
#define UNIT_FE3(m, a, ...) m(a) UNIT_FE2(m, __VA_ARGS__)
#define UNIT_FE4(m, a, ...) m(a) UNIT_FE3(m, __VA_ARGS__)
#define UNIT_FE5(m, a, ...) m(a) UNIT_FE4(m, __VA_ARGS__)
#define UNIT_FE6(m, a, ...) m(a) UNIT_FE5(m, __VA_ARGS__)
#define UNIT_FE7(m, a, ...) m(a) UNIT_FE6(m, __VA_ARGS__)
#define UNIT_FE8(m, a, ...) m(a) UNIT_FE7(m, __VA_ARGS__)
#define UNIT_FE9(m, a, ...) m(a) UNIT_FE8(m, __VA_ARGS__)
#define UNIT_FE10(m, a, ...) m(a) UNIT_FE9(m, __VA_ARGS__)
#define UNIT_FE11(m, a, ...) m(a) UNIT_FE10(m, __VA_ARGS__)
#define UNIT_FE12(m, a, ...) m(a) UNIT_FE11(m, __VA_ARGS__)
#define UNIT_FE13(m, a, ...) m(a) UNIT_FE12(m, __VA_ARGS__)
#define UNIT_FE14(m, a, ...) m(a) UNIT_FE13(m, __VA_ARGS__)
#define UNIT_FE15(m, a, ...) m(a) UNIT_FE14(m, __VA_ARGS__)
#define UNIT_FE16(m, a, ...) m(a) UNIT_FE15(m, __VA_ARGS__)
#define UNIT_FE17(m, a, ...) m(a) UNIT_FE16(m, __VA_ARGS__)
#define UNIT_FE18(m, a, ...) m(a) UNIT_FE17(m, __VA_ARGS__)
#define UNIT_FE19(m, a, ...) m(a) UNIT_FE18(m, __VA_ARGS__)
#define UNIT_FE20(m, a, ...) m(a) UNIT_FE19(m, __VA_ARGS__)
#define UNIT_FE21(m, a, ...) m(a) UNIT_FE20(m, __VA_ARGS__)
#define UNIT_FE22(m, a, ...) m(a) UNIT_FE21(m, __VA_ARGS__)
#define UNIT_FE23(m, a, ...) m(a) UNIT_FE22(m, __VA_ARGS__)
#define UNIT_FE24(m, a, ...) m(a) UNIT_FE23(m, __VA_ARGS__)
#define UNIT_FE25(m, a, ...) m(a) UNIT_FE24(m, __VA_ARGS__)
#define UNIT_FE26(m, a, ...) m(a) UNIT_FE25(m, __VA_ARGS__)
#define UNIT_FE27(m, a, ...) m(a) UNIT_FE26(m, __VA_ARGS__)
#define UNIT_FE28(m, a, ...) m(a) UNIT_FE27(m, __VA_ARGS__)
#define UNIT_FE29(m, a, ...) m(a) UNIT_FE28(m, __VA_ARGS__)
#define UNIT_FE30(m, a, ...) m(a) UNIT_FE29(m, __VA_ARGS__)
#define UNIT_FE31(m, a, ...) m(a) UNIT_FE30(m, __VA_ARGS__)
#define UNIT_FE32(m, a, ...) m(a) UNIT_FE31(m, __VA_ARGS__)
#define UNIT_FE33(m, a, ...) m(a) UNIT_FE32(m, __VA_ARGS__)
#define UNIT_FE34(m, a, ...) m(a) UNIT_FE33(m, __VA_ARGS__)
#define UNIT_FE35(m, a, ...) m(a) UNIT_FE34(m, __VA_ARGS__)
#define UNIT_FE36(m, a, ...) m(a) UNIT_FE35(m, __VA_ARGS__)
#define UNIT_FE37(m, a, ...) m(a) UNIT_FE36(m, __VA_ARGS__)
#define UNIT_FE38(m, a, ...) m(a) UNIT_FE37(m, __VA_ARGS__)
#define UNIT_FE39(m, a, ...) m(a) UNIT_FE38(m, __VA_ARGS__)
#define UNIT_FE40(m, a, ...) m(a) UNIT_FE39(m, __VA_ARGS__)
#define UNIT_FE41(m, a, ...) m(a) UNIT_FE40(m, __VA_ARGS__)
#define UNIT_FE42(m, a, ...) m(a) UNIT_FE41(m, __VA_ARGS__)
#define UNIT_FE43(m, a, ...) m(a) UNIT_FE42(m, __VA_ARGS__)
#define UNIT_FE44(m, a, ...) m(a) UNIT_FE43(m, __VA_ARGS__)
#define UNIT_FE45(m, a, ...) m(a) UNIT_FE44(m, __VA_ARGS__)
#define UNIT_FE46(m, a, ...) m(a) UNIT_FE45(m, __VA_ARGS__)
#define UNIT_FE47(m, a, ...) m(a) UNIT_FE46(m, __VA_ARGS__)
#define UNIT_FE48(m, a, ...) m(a) UNIT_FE47(m, __VA_ARGS__)
#define UNIT_FE49(m, a, ...) m(a) UNIT_FE48(m, __VA_ARGS__)
#define UNIT_FE50(m, a, ...) m(a) UNIT_FE49(m, __VA_ARGS__)
#define UNIT_FE51(m, a, ...) m(a) UNIT_FE50(m, __VA_ARGS__)
#define UNIT_FE52(m, a, ...) m(a) UNIT_FE51(m, __VA_ARGS__)
#define UNIT_FE53(m, a, ...) m(a) UNIT_FE52(m, __VA_ARGS__)
#define UNIT_FE54(m, a, ...) m(a) UNIT_FE53(m, __VA_ARGS__)
#define UNIT_FE55(m, a, ...) m(a) UNIT_FE54(m, __VA_ARGS__)
#define UNIT_FE56(m, a, ...) m(a) UNIT_FE55(m, __VA_ARGS__)
#define UNIT_FE57(m, a, ...) m(a) UNIT_FE56(m, __VA_ARGS__)
#define UNIT_FE58(m, a, ...) m(a) UNIT_FE57(m, __VA_ARGS__)
#define UNIT_FE59(m, a, ...) m(a) UNIT_FE58(m, __VA_ARGS__)
#define UNIT_FE60(m, a, ...) m(a) UNIT_FE59(m, __VA_ARGS__)
#define UNIT_FE61(m, a, ...) m(a) UNIT_FE60(m, __VA_ARGS__)
#define UNIT_FE62(m, a, ...) m(a) UNIT_FE61(m, __VA_ARGS__)
#define UNIT_FE63(m, a, ...) m(a) UNIT_FE62(m, __VA_ARGS__)
#define UNIT_FE64(m, a, ...) m(a) UNIT_FE63(m, __VA_ARGS__)

#endif
