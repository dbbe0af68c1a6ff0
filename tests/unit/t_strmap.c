/* t_strmap.c: case-insensitive control-list lookups. */
#include <strings.h>

#include "lib/strmap.h"
#include "unit.h"

TEST(put_get)
{
	struct strmap m = STRMAP_INIT;
	CHECK(strmap_get(&m, "x", 1) == NULL);
	CHECK_INT(strmap_put(&m, "Example.COM", 11, "a"), 0);
	CHECK_STR(strmap_get(&m, "example.com", 11), 1, "a");
	CHECK_STR(strmap_get(&m, "EXAMPLE.com", 11), 1, "a");
	CHECK(strmap_get(&m, "example.co", 10) == NULL);
	CHECK(strmap_get(&m, "example.comm", 12) == NULL);
	CHECK_INT(strmap_put(&m, "example.com", 11, "bb"), 0);
	CHECK_STR(strmap_get(&m, "example.com", 11), 2, "bb");
	CHECK_INT(m.count, 1);
	strmap_free(&m);
}

TEST(many_keys_and_growth)
{
	struct strmap m = STRMAP_INIT;
	char key[32];
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof key, "host%d.example", i);
		CHECK_INT(strmap_put(&m, key, (size_t)n, key), 0);
	}
	CHECK_INT(m.count, 5000);
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof key, "HOST%d.EXAMPLE", i);
		const char *v = strmap_get(&m, key, (size_t)n);
		CHECK(v != NULL);
		if (v)
			CHECK(strcasecmp(v, key) == 0);
	}
	CHECK(strmap_get(&m, "host5000.example", 16) == NULL);
	strmap_free(&m);
}

TEST(empty_key)
{
	struct strmap m = STRMAP_INIT;
	CHECK_INT(strmap_put(&m, "", 0, "catchall"), 0);
	CHECK_STR(strmap_get(&m, "", 0), 8, "catchall");
	strmap_free(&m);
}

UNIT_MAIN(put_get, many_keys_and_growth, empty_key)
