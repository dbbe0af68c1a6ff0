/* t_exitcode.c: temporary versus permanent qmail-queue codes. */
#include "lib/exitcode.h"
#include "unit.h"

TEST(permanence)
{
	CHECK(!qq_permanent(0));
	CHECK(!qq_permanent(10));
	CHECK(qq_permanent(11));
	CHECK(qq_permanent(31));
	CHECK(qq_permanent(40));
	CHECK(!qq_permanent(41));
	CHECK(!qq_permanent(53));
	CHECK(!qq_permanent(82));
	CHECK(!qq_permanent(91));
	CHECK(!qq_permanent(-1));
}

TEST(replies)
{
	CHECK_STR(qq_reply(53), strlen(qq_reply(53)),
		  "451 qq write error or disk full (#4.3.0)");
	CHECK_STR(qq_reply(31), strlen(qq_reply(31)),
		  "554 mail server permanently rejected message (#5.3.0)");
	CHECK_STR(qq_reply(11), strlen(qq_reply(11)),
		  "554 address too long (#5.1.3)");
	/* Unknown codes: permanent range stays permanent, others 451. */
	CHECK(qq_reply(20)[0] == '5');
	CHECK(qq_reply(77)[0] == '4');
	CHECK(qq_reply(255)[0] == '4');
	for (int c = 1; c < 256; c++)
		CHECK((qq_reply(c)[0] == '5') == qq_permanent(c));
}

UNIT_MAIN(permanence, replies)
