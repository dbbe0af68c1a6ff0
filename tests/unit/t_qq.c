/* t_qq.c: the reply a qmail-queue client falls back on. */
#include <string.h>

#include "lib/exitcode.h"
#include "lib/str.h"
#include "mail/qq.h"
#include "unit.h"

TEST(text_set_by_finish_wins)
{
	struct str reply = STR_INIT;
	CHECK_INT(str_copys(&reply, "554 go away"), 0);
	CHECK_STR(qq_text(&reply, QQ_CUSTOM), strlen("554 go away"),
		  "554 go away");
	str_free(&reply);
}

TEST(empty_reply_gives_the_standard_text)
{
	struct str reply = STR_INIT; /* as out of memory leaves it */
	const char *t = qq_text(&reply, QQ_WRITE);
	CHECK(t == qq_reply(QQ_WRITE));
	CHECK_STR(t, strlen(t), "451 qq write error or disk full (#4.3.0)");
	CHECK(qq_text(&reply, 31)[0] == '5');
}

UNIT_MAIN(text_set_by_finish_wins, empty_reply_gives_the_standard_text)
