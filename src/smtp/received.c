/*
 * received.c: building Received lines (qmail's layout).
 */
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/date822.h"
#include "lib/log.h"
#include "smtp/received.h"

static int safe(unsigned char c)
{
	return c > 32 && c < 127 && c != '(' && c != ')' && c != '\\';
}

void received_safe(struct str *out, const char *s)
{
	for (; *s; s++)
		if (str_appendc(out, safe((unsigned char)*s) ? *s : '?') < 0)
			log_nomem();
}

static void add(struct str *out, const char *s)
{
	if (str_appends(out, s) < 0)
		log_nomem();
}

void received_smtp(struct str *out, const char *proto, const char *local,
		   const char *ip, const char *host, const char *info,
		   const char *helo)
{
	char date[DATE822_LEN];

	if (!host || !*host)
		host = "unknown";
	add(out, "Received: from ");
	received_safe(out, host);
	if (helo && *helo && strcasecmp(helo, host) != 0) {
		add(out, " (HELO ");
		received_safe(out, helo);
		add(out, ")");
	}
	add(out, " (");
	if (info && *info) {
		received_safe(out, info);
		add(out, "@");
	}
	received_safe(out, ip && *ip ? ip : "unknown");
	add(out, ")\n  by ");
	received_safe(out, local && *local ? local : "unknown");
	add(out, " with ");
	add(out, proto);
	add(out, "; ");
	date822_fmt(date, time(NULL));
	add(out, date);
	add(out, "\n");
}
