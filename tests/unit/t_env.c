/* t_env.c: environment access and the setuid rule. */
#include <errno.h>
#include <stdlib.h>

#include "lib/env.h"
#include "unit.h"

extern char **environ;

TEST(set_get_unset)
{
	CHECK_INT(env_set("QM_T", "1"), 0);
	CHECK_STR(env_get("QM_T"), 1, "1");
	CHECK(env_trusted("QM_T") != NULL); /* tests are not setuid */
	CHECK(!env_is_setugid());
	CHECK_INT(env_unset("QM_T"), 0);
	CHECK(env_get("QM_T") == NULL);
}

TEST(keep_only)
{
	CHECK_INT(env_set("QM_A", "a"), 0);
	CHECK_INT(env_set("QM_B", "b"), 0);
	CHECK_INT(env_set("QM_AB", "ab"), 0);
	static const char *const keep[] = {"QM_A", NULL};
	CHECK_INT(env_keep_only(keep), 0);
	CHECK(env_get("QM_A") != NULL);
	CHECK(env_get("QM_B") == NULL);
	CHECK(env_get("QM_AB") == NULL); /* a prefix match is not a match */
	CHECK(environ[0] != NULL && environ[1] == NULL);
}

TEST(ulong_values)
{
	unsigned long n = 7;
	CHECK_INT(env_unset("QM_N"), 0);
	CHECK_INT(env_ulong("QM_N", &n), 0);
	CHECK_INT(n, 7);
	env_set("QM_N", "123");
	CHECK_INT(env_ulong("QM_N", &n), 1);
	CHECK_INT(n, 123);
	env_set("QM_N", "12a");
	CHECK_INT(env_ulong("QM_N", &n), -1);
	env_set("QM_N", "");
	CHECK_INT(env_ulong("QM_N", &n), -1);
	env_set("QM_N", "99999999999999999999999");
	errno = 0;
	CHECK_INT(env_ulong("QM_N", &n), -1);
	CHECK_INT(errno, ERANGE);
	CHECK_INT(n, 123);
}

UNIT_MAIN(set_get_unset, keep_only, ulong_values)
