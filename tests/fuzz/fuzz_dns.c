/*
 * fuzz_dns.c: libFuzzer harness for DNS answer handling in
 * remote/dns.c: dns_answer_mx and dns_answer_ip fed raw packets, then
 * the null MX rule and the MX order; and the address parsers on the
 * name (dns_ip_parse, dns_literal, dns_parse_server).
 *
 * What must hold for any packet:
 * - the result is DNS_OK or DNS_TEMP (never NXDOMAIN: that comes from
 *   the server's rcode, not from the answer section), and the name
 *   comes back NUL-terminated within DNS_NAME_SIZE;
 * - with DNS_OK the CNAME chain was followed to its end (no CNAME is
 *   owned by the final name), and the records taken are exactly the
 *   answer records of the type asked for, class IN, owned by that name
 *   (compared here without regard to ASCII case), whose data is well
 *   formed: an MX exchange that ends inside its rdata, an A of 4 bytes,
 *   an AAAA of 16 (counted with the resolver's own record parser);
 * - an IPv4-mapped AAAA comes back as AF_INET, and every address has its
 *   unused bytes zero;
 * - the same packet gives the same answer twice (nothing is kept);
 * - dns_mx_null and dns_mx_sort keep every exchange but the root, and
 *   the order is by preference;
 * - dns_ip_parse and dns_literal agree with inet_pton, dns_parse_server
 *   with a reference parser of "ip[:port]".
 * Nothing is written anywhere.
 *
 * Input: byte 0, bits 0-1: the type asked for (0 and 3: MX, 1: A, 2:
 * AAAA), bits 2-7 seed the MX shuffle; then a name ended by NUL (empty:
 * the packet's own question name); then the packet.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "remote/dns.h"

/* --- what the answer section holds --- */

static int same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	if (la != lb)
		return 0;
	for (size_t i = 0; i < la; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		x = x >= 'A' && x <= 'Z' ? x + 32 : x;
		y = y >= 'A' && y <= 'Z' ? y + 32 : y;
		if (x != y)
			return 0;
	}
	return 1;
}

/* An MX exchange that can be read and ends inside the rdata. */
static int mx_well_formed(ns_msg *h, const ns_rr *rr)
{
	char tmp[NS_MAXDNAME];
	const unsigned char *rd = ns_rr_rdata(*rr);
	size_t rdlen = ns_rr_rdlen(*rr);

	if (rdlen < 3)
		return 0;
	int used = ns_name_uncompress(ns_msg_base(*h), ns_msg_end(*h), rd + 2,
				      tmp, sizeof tmp);
	if (used < 0 || (size_t)used > rdlen - 2)
		return 0;
	size_t n = strlen(tmp);
	return (n && tmp[n - 1] == '.' ? n - 1 : n) < DNS_NAME_SIZE;
}

/* How many records of type, class IN, owned by name, well formed (any
 * CNAME counts). */
static size_t expected_records(const unsigned char *msg, size_t len, int type,
			       const char *name)
{
	ns_msg h;
	ns_rr rr;
	size_t n = 0;

	if (ns_initparse(msg, (int)len, &h) < 0)
		abort(); /* dns.c said DNS_OK */
	for (int i = 0; i < ns_msg_count(h, ns_s_an); i++) {
		if (ns_parserr(&h, ns_s_an, i, &rr) < 0)
			abort();
		if (ns_rr_class(rr) != ns_c_in || (int)ns_rr_type(rr) != type ||
		    !same_name(ns_rr_name(rr), name))
			continue;
		if (type == ns_t_mx)
			n += mx_well_formed(&h, &rr);
		else if (type == ns_t_cname)
			n++;
		else
			n += ns_rr_rdlen(rr) == (type == ns_t_a ? 4 : 16);
	}
	return n;
}

/* --- checks --- */

static void check_name(const char *name)
{
	if (!memchr(name, 0, DNS_NAME_SIZE))
		abort();
}

static void check_ip(const struct dns_ip *ip)
{
	static const unsigned char zero[16],
	    mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (ip->af == AF_INET) {
		if (memcmp(ip->a + 4, zero, 12) != 0)
			abort();
	} else if (ip->af != AF_INET6 || memcmp(ip->a, mapped, 12) == 0) {
		abort();
	}
}

static void check_order(struct dns_mxlist *l, uint64_t seed)
{
	size_t n = l->n, roots = 0;

	for (size_t i = 0; i < n; i++)
		roots += l->v[i].name[0] == 0;
	int null = dns_mx_null(l);
	if (null != (n > 0 && roots == n))
		abort();
	if (!null && l->n != n - roots)
		abort();
	if (null)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].name[0] == 0)
			abort();
	unsigned long long sum = 0, after = 0;
	for (size_t i = 0; i < l->n; i++)
		sum += l->v[i].pref * 31ULL + strlen(l->v[i].name);
	dns_mx_sort(l, &seed);
	for (size_t i = 0; i < l->n; i++) {
		after += l->v[i].pref * 31ULL + strlen(l->v[i].name);
		if (i && l->v[i - 1].pref > l->v[i].pref)
			abort();
	}
	if (sum != after)
		abort();
}

static void answer_mx(const unsigned char *msg, size_t len, const char *q,
		      uint64_t seed)
{
	char name[DNS_NAME_SIZE], again[DNS_NAME_SIZE];
	struct dns_mxlist l = {0}, l2 = {0};

	snprintf(name, sizeof name, "%s", q);
	snprintf(again, sizeof again, "%s", q);
	enum dns_result r = dns_answer_mx(msg, len, name, &l);
	if (dns_answer_mx(msg, len, again, &l2) != r ||
	    strcmp(name, again) != 0 || l.n != l2.n)
		abort();
	check_name(name);
	if (r != DNS_OK && r != DNS_TEMP)
		abort();
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].pref > 65535 ||
		    strlen(l.v[i].name) >= DNS_NAME_SIZE ||
		    l.v[i].pref != l2.v[i].pref ||
		    strcmp(l.v[i].name, l2.v[i].name) != 0)
			abort();
	}
	if (r == DNS_OK && (l.n != expected_records(msg, len, ns_t_mx, name) ||
			    expected_records(msg, len, ns_t_cname, name) != 0))
		abort();
	check_order(&l, seed);
	dns_mxlist_free(&l);
	dns_mxlist_free(&l2);
}

static void answer_ip(const unsigned char *msg, size_t len, const char *q,
		      int type)
{
	char name[DNS_NAME_SIZE];
	struct dns_iplist l = {0};

	snprintf(name, sizeof name, "%s", q);
	enum dns_result r = dns_answer_ip(msg, len, type, name, &l);
	check_name(name);
	if (r != DNS_OK && r != DNS_TEMP)
		abort();
	for (size_t i = 0; i < l.n; i++)
		check_ip(&l.v[i]);
	if (r == DNS_OK && (l.n != expected_records(msg, len, type, name) ||
			    expected_records(msg, len, ns_t_cname, name) != 0))
		abort();
	dns_iplist_free(&l);
}

/* --- addresses --- */

static void check_parse(const char *s)
{
	struct dns_ip ip, want;
	int ok4 = inet_pton(AF_INET, s, want.a) == 1;
	int ok6 = !ok4 && inet_pton(AF_INET6, s, want.a) == 1;

	if ((dns_ip_parse(s, &ip) == 0) != (ok4 || ok6))
		abort();
	if (ok4 || ok6)
		check_ip(&ip);
}

static void check_literal(const char *s)
{
	struct dns_ip ip;
	char inner[DNS_NAME_SIZE];
	size_t n = strlen(s);
	int r = dns_literal(s, &ip);

	if (n == 0 || s[0] != '[') {
		if (r != 0)
			abort();
		return;
	}
	int want = -1;
	if (n >= 3 && s[n - 1] == ']' && n - 2 < 64) {
		memcpy(inner, s + 1, n - 2);
		inner[n - 2] = 0;
		unsigned char b[16];
		const char *v6 = inner;
		if (strncasecmp(inner, "IPv6:", 5) == 0 && n - 2 > 5)
			v6 = inner + 5;
		if (v6 != inner)
			want = inet_pton(AF_INET6, v6, b) == 1 ? 1 : -1;
		else
			want = inet_pton(AF_INET, inner, b) == 1 ||
				       inet_pton(AF_INET6, inner, b) == 1
				   ? 1
				   : -1;
	}
	if (r != want)
		abort();
	if (r == 1)
		check_ip(&ip);
}

static void check_server(const char *s)
{
	struct sockaddr_in sa;
	char host[64];
	const char *colon = strchr(s, ':');
	size_t hlen = colon ? (size_t)(colon - s) : strlen(s);
	int want = hlen > 0 && hlen < 16;
	unsigned long port = 53;
	struct in_addr a;

	if (want) {
		memcpy(host, s, hlen);
		host[hlen] = 0;
		want = inet_pton(AF_INET, host, &a) == 1;
	}
	if (want && colon) {
		const char *p = colon + 1;
		port = 0;
		want = *p != 0;
		for (; want && *p; p++) {
			want = *p >= '0' && *p <= '9';
			port = port * 10 + (unsigned long)(*p - '0');
			want = want && port <= 65535;
		}
		want = want && port > 0;
	}
	int r = dns_parse_server(s, &sa);
	if ((r == 0) != want)
		abort();
	if (want && (sa.sin_port != htons((uint16_t)port) ||
		     sa.sin_addr.s_addr != a.s_addr))
		abort();
}

/* The packet's first question name, or "" when it has none. */
static void question_name(const unsigned char *msg, size_t len, char *out)
{
	ns_msg h;
	ns_rr rr;

	out[0] = 0;
	if (ns_initparse(msg, (int)len, &h) == 0 &&
	    ns_msg_count(h, ns_s_qd) > 0 &&
	    ns_parserr(&h, ns_s_qd, 0, &rr) == 0)
		snprintf(out, DNS_NAME_SIZE, "%s", ns_rr_name(rr));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char q[DNS_NAME_SIZE];

	if (size < 1 || size > NS_MAXMSG)
		return 0;
	const uint8_t *end = data + size;
	const uint8_t *nul = memchr(data + 1, 0, size - 1);
	if (!nul || (size_t)(nul - data) > DNS_NAME_SIZE)
		return 0;
	const char *given = (const char *)data + 1;
	const unsigned char *msg = nul + 1;
	size_t len = (size_t)(end - msg);

	check_parse(given);
	check_literal(given);
	check_server(given);
	if (*given)
		snprintf(q, sizeof q, "%s", given);
	else
		question_name(msg, len, q);
	switch (data[0] & 3) {
	case 1:
		answer_ip(msg, len, q, ns_t_a);
		break;
	case 2:
		answer_ip(msg, len, q, ns_t_aaaa);
		break;
	default:
		answer_mx(msg, len, q, data[0] >> 2);
		break;
	}
	return 0;
}
