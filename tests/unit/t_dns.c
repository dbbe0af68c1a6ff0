/* t_dns.c: what the DNS module does without a server: addresses and
 * literals, DNSCACHEIP, answers built here byte by byte (MX, A, AAAA,
 * CNAME chains, compression, garbage), the null MX rule and the MX order
 * with a seeded generator. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>

#include "remote/dns.h"
#include "unit.h"

/* --- a packet builder --- */

struct pkt {
	unsigned char b[4096];
	size_t n;
};

static void put8(struct pkt *p, unsigned v)
{
	p->b[p->n++] = (unsigned char)v;
}

static void put16(struct pkt *p, unsigned v)
{
	put8(p, v >> 8 & 0xff);
	put8(p, v & 0xff);
}

static void put32(struct pkt *p, unsigned long v)
{
	put16(p, (unsigned)(v >> 16 & 0xffff));
	put16(p, (unsigned)(v & 0xffff));
}

static void put_bytes(struct pkt *p, const void *s, size_t n)
{
	memcpy(p->b + p->n, s, n);
	p->n += n;
}

/* Labels of a dotted name, then the root; "" is the root alone. */
static void put_name(struct pkt *p, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t len = dot ? (size_t)(dot - name) : strlen(name);
		put8(p, (unsigned)len);
		put_bytes(p, name, len);
		name += len + (dot ? 1 : 0);
	}
	put8(p, 0);
}

static void put_pointer(struct pkt *p, size_t offset)
{
	put16(p, 0xc000 | (unsigned)offset);
}

/* Header and question; the question name starts at offset 12. */
static void start(struct pkt *p, const char *qname, unsigned qtype,
		  unsigned ancount)
{
	p->n = 0;
	put16(p, 0x1234);
	put16(p, 0x8180); /* response, RD, RA, NOERROR */
	put16(p, 1);
	put16(p, ancount);
	put16(p, 0);
	put16(p, 0);
	put_name(p, qname);
	put16(p, qtype);
	put16(p, ns_c_in);
}

/* Owner, type, class, TTL; returns where RDLENGTH goes. */
static size_t rr(struct pkt *p, const char *owner, unsigned type,
		 unsigned klass)
{
	put_name(p, owner);
	put16(p, type);
	put16(p, klass);
	put32(p, 300);
	put16(p, 0);
	return p->n - 2;
}

static void rr_end(struct pkt *p, size_t at)
{
	size_t len = p->n - at - 2;
	p->b[at] = (unsigned char)(len >> 8);
	p->b[at + 1] = (unsigned char)len;
}

static void add_mx(struct pkt *p, const char *owner, unsigned pref,
		   const char *exchange)
{
	size_t at = rr(p, owner, ns_t_mx, ns_c_in);
	put16(p, pref);
	put_name(p, exchange);
	rr_end(p, at);
}

static void add_cname(struct pkt *p, const char *owner, const char *target)
{
	size_t at = rr(p, owner, ns_t_cname, ns_c_in);
	put_name(p, target);
	rr_end(p, at);
}

static void add_a(struct pkt *p, const char *owner, const char *ip)
{
	unsigned char a[4];
	size_t at = rr(p, owner, ns_t_a, ns_c_in);
	inet_pton(AF_INET, ip, a);
	put_bytes(p, a, 4);
	rr_end(p, at);
}

static void add_aaaa(struct pkt *p, const char *owner, const char *ip)
{
	unsigned char a[16];
	size_t at = rr(p, owner, ns_t_aaaa, ns_c_in);
	inet_pton(AF_INET6, ip, a);
	put_bytes(p, a, 16);
	rr_end(p, at);
}

static const char *fmt(const struct dns_ip *ip)
{
	static char buf[INET6_ADDRSTRLEN];
	return dns_ip_format(ip, buf, sizeof buf);
}

/* --- addresses and literals --- */

TEST(ip_parse_v4_v6_and_mapped)
{
	struct dns_ip ip;

	CHECK_INT(dns_ip_parse("192.0.2.1", &ip), 0);
	CHECK_INT(ip.af, AF_INET);
	CHECK_MEM(ip.a, 4, "\xc0\x00\x02\x01", 4);
	CHECK_INT(dns_ip_parse("2001:db8::1", &ip), 0);
	CHECK_INT(ip.af, AF_INET6);
	CHECK_STR(fmt(&ip), strlen(fmt(&ip)), "2001:db8::1");
	CHECK_INT(dns_ip_parse("::ffff:192.0.2.7", &ip), 0);
	CHECK_INT(ip.af, AF_INET);
	CHECK_STR(fmt(&ip), strlen(fmt(&ip)), "192.0.2.7");
	errno = 0;
	CHECK_INT(dns_ip_parse("192.0.2", &ip), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(dns_ip_parse("", &ip), -1);
	CHECK_INT(dns_ip_parse("example.com", &ip), -1);
	CHECK_INT(dns_ip_parse(" 192.0.2.1", &ip), -1);
}

TEST(ip_equal_compares_family_and_bytes)
{
	struct dns_ip a, b;

	dns_ip_parse("192.0.2.1", &a);
	dns_ip_parse("::ffff:192.0.2.1", &b);
	CHECK(dns_ip_equal(&a, &b));
	dns_ip_parse("192.0.2.2", &b);
	CHECK(!dns_ip_equal(&a, &b));
	dns_ip_parse("::c000:201", &b); /* same bytes at the end, not v4 */
	CHECK(!dns_ip_equal(&a, &b));
}

TEST(literals)
{
	struct dns_ip ip;

	CHECK_INT(dns_literal("[192.0.2.1]", &ip), 1);
	CHECK_INT(ip.af, AF_INET);
	CHECK_STR(fmt(&ip), strlen(fmt(&ip)), "192.0.2.1");
	CHECK_INT(dns_literal("[IPv6:2001:db8::1]", &ip), 1);
	CHECK_INT(ip.af, AF_INET6);
	CHECK_STR(fmt(&ip), strlen(fmt(&ip)), "2001:db8::1");
	CHECK_INT(dns_literal("[ipv6:::1]", &ip), 1);
	CHECK_STR(fmt(&ip), strlen(fmt(&ip)), "::1");
	CHECK_INT(dns_literal("[::1]", &ip), 1);
	CHECK_INT(ip.af, AF_INET6);
	CHECK_INT(dns_literal("example.com", &ip), 0);
	CHECK_INT(dns_literal("", &ip), 0);
	errno = 0;
	CHECK_INT(dns_literal("[192.0.2]", &ip), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(dns_literal("[IPv6:192.0.2.1]", &ip), -1);
	CHECK_INT(dns_literal("[192.0.2.1", &ip), -1);
	CHECK_INT(dns_literal("[", &ip), -1);
	CHECK_INT(dns_literal("[]", &ip), -1);
	CHECK_INT(dns_literal("[IPv6:]", &ip), -1);
	CHECK_INT(dns_literal("[192.0.2.1]x", &ip), -1);
	CHECK_INT(dns_literal("[example.com]", &ip), -1);
	CHECK_INT(dns_literal("[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:"
			      "0000:0000:0000]",
			      &ip),
		  -1);
}

TEST(iplist_grows)
{
	struct dns_iplist l = {NULL, 0, 0};
	struct dns_ip ip;

	for (unsigned i = 0; i < 1000; i++) {
		memset(&ip, 0, sizeof ip);
		ip.af = AF_INET;
		ip.a[2] = (unsigned char)(i >> 8);
		ip.a[3] = (unsigned char)i;
		CHECK_INT(dns_iplist_add(&l, &ip), 0);
	}
	CHECK_INT(l.n, 1000);
	CHECK_INT(l.v[999].a[2], 3);
	CHECK_INT(l.v[999].a[3], 231);
	dns_iplist_free(&l);
	CHECK(l.v == NULL);
	CHECK_INT(l.n, 0);
}

/* --- DNSCACHEIP --- */

TEST(server_spec)
{
	struct sockaddr_in sa;
	char buf[INET_ADDRSTRLEN];

	CHECK_INT(dns_parse_server("127.0.0.1", &sa), 0);
	CHECK_INT(ntohs(sa.sin_port), 53);
	CHECK_INT(sa.sin_family, AF_INET);
	inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf);
	CHECK_STR(buf, strlen(buf), "127.0.0.1");
	CHECK_INT(dns_parse_server("10.1.2.3:5353", &sa), 0);
	CHECK_INT(ntohs(sa.sin_port), 5353);
	CHECK_INT(dns_parse_server("10.1.2.3:65535", &sa), 0);
	CHECK_INT(ntohs(sa.sin_port), 65535);
	const char *bad[] = {"",
			     ":53",
			     "127.0.0.1:",
			     "127.0.0.1:0",
			     "127.0.0.1:65536",
			     "127.0.0.1:5x",
			     "127.0.0.1:-1",
			     "::1",
			     "localhost",
			     "127.0.0.1 ",
			     "127.0.0.1:53:53",
			     "1.2.3"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		if (dns_parse_server(bad[i], &sa) != -1 || errno != EINVAL) {
			fprintf(stderr, "accepted bad server \"%s\"\n", bad[i]);
			unit_failures++;
		}
	}
}

TEST(open_with_server_uses_only_it_and_allows_tcp_retry)
{
	struct dns_resolver r;
	char buf[INET_ADDRSTRLEN];

	CHECK_INT(dns_open(&r, "127.0.0.9:5300"), 0);
	CHECK_INT(r.res.nscount, 1);
	CHECK_INT(r.res.nsaddr_list[0].sin_family, AF_INET);
	CHECK_INT(ntohs(r.res.nsaddr_list[0].sin_port), 5300);
	inet_ntop(AF_INET, &r.res.nsaddr_list[0].sin_addr, buf, sizeof buf);
	CHECK_STR(buf, strlen(buf), "127.0.0.9");
	CHECK((r.res.options & RES_IGNTC) == 0);
	CHECK((r.res.options & RES_USEVC) == 0);
	CHECK(r.answer != NULL);
	dns_close(&r);
	CHECK(r.answer == NULL);
	CHECK_INT(r.open, 0);
	dns_close(&r); /* twice is harmless */
}

TEST(open_refuses_a_bad_server)
{
	struct dns_resolver r;

	errno = 0;
	CHECK_INT(dns_open(&r, "127.0.0.1:x"), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(r.open, 0);
	CHECK(r.answer == NULL);
}

TEST(lookups_on_a_closed_resolver_are_temporary)
{
	struct dns_resolver r;
	struct dns_mxlist mx = {NULL, 0, 0};
	struct dns_iplist ips = {NULL, 0, 0};

	memset(&r, 0, sizeof r);
	CHECK_INT(dns_mx(&r, "example.com", &mx), DNS_TEMP);
	CHECK_INT(dns_ip(&r, "example.com", &ips), DNS_TEMP);
}

TEST(unusable_names_do_not_exist)
{
	struct dns_resolver r;
	struct dns_mxlist mx = {NULL, 0, 0};
	struct dns_iplist ips = {NULL, 0, 0};
	char longname[300];

	/* Nothing is sent for these: port 9 on loopback would fail. */
	CHECK_INT(dns_open(&r, "127.0.0.1:9"), 0);
	CHECK_INT(dns_mx(&r, "", &mx), DNS_NXDOMAIN);
	CHECK_INT(dns_mx(&r, ".", &mx), DNS_NXDOMAIN);
	CHECK_INT(dns_mx(&r, "a b.example", &mx), DNS_NXDOMAIN);
	CHECK_INT(dns_mx(&r, "a\nb.example", &mx), DNS_NXDOMAIN);
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK_INT(dns_mx(&r, longname, &mx), DNS_NXDOMAIN);
	CHECK_INT(dns_ip(&r, longname, &ips), DNS_NXDOMAIN);
	CHECK_INT(mx.n, 0);
	CHECK_INT(ips.n, 0);
	dns_close(&r);
}

/* --- answers --- */

TEST(mx_answer)
{
	struct pkt p;
	struct dns_mxlist mx = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "example.com";

	start(&p, "example.com", ns_t_mx, 2);
	add_mx(&p, "example.com", 20, "mx2.example.com");
	add_mx(&p, "EXAMPLE.com", 10, "mx1.example.net");
	CHECK_INT(dns_answer_mx(p.b, p.n, name, &mx), DNS_OK);
	CHECK_STR(name, strlen(name), "example.com");
	CHECK_INT(mx.n, 2);
	CHECK_INT(mx.v[0].pref, 20);
	CHECK_STR(mx.v[0].name, strlen(mx.v[0].name), "mx2.example.com");
	CHECK_INT(mx.v[1].pref, 10);
	CHECK_STR(mx.v[1].name, strlen(mx.v[1].name), "mx1.example.net");
	dns_mxlist_free(&mx);
}

TEST(mx_answer_with_compression)
{
	struct pkt p;
	struct dns_mxlist mx = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "example.com.";
	size_t at;

	start(&p, "example.com", ns_t_mx, 1);
	/* Owner: a pointer to the question; exchange "mx" + pointer. */
	put_pointer(&p, 12);
	put16(&p, ns_t_mx);
	put16(&p, ns_c_in);
	put32(&p, 60);
	at = p.n;
	put16(&p, 0);
	put16(&p, 5);
	put8(&p, 2);
	put_bytes(&p, "mx", 2);
	put_pointer(&p, 12);
	rr_end(&p, at);
	CHECK_INT(dns_answer_mx(p.b, p.n, name, &mx), DNS_OK);
	CHECK_STR(name, strlen(name), "example.com");
	CHECK_INT(mx.n, 1);
	CHECK_INT(mx.v[0].pref, 5);
	CHECK_STR(mx.v[0].name, strlen(mx.v[0].name), "mx.example.com");
	dns_mxlist_free(&mx);
}

TEST(mx_answer_follows_cname_chain)
{
	struct pkt p;
	struct dns_mxlist mx = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "alias.test";

	start(&p, "alias.test", ns_t_mx, 5);
	/* Records of the final name first, a stray MX for the alias that
	 * a CNAME makes meaningless, and an unrelated name. */
	add_mx(&p, "real.test", 10, "mx.real.test");
	add_cname(&p, "middle.test", "Real.Test");
	add_cname(&p, "alias.test", "middle.test");
	add_mx(&p, "other.test", 5, "mx.other.test");
	add_mx(&p, "real.test", 20, "mx2.real.test");
	CHECK_INT(dns_answer_mx(p.b, p.n, name, &mx), DNS_OK);
	CHECK_STR(name, strlen(name), "Real.Test");
	CHECK_INT(mx.n, 2);
	CHECK_STR(mx.v[0].name, strlen(mx.v[0].name), "mx.real.test");
	CHECK_STR(mx.v[1].name, strlen(mx.v[1].name), "mx2.real.test");
	dns_mxlist_free(&mx);
}

TEST(cname_only_answer_gives_final_name_and_nothing)
{
	struct pkt p;
	struct dns_iplist ips = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "alias.test";

	start(&p, "alias.test", ns_t_a, 1);
	add_cname(&p, "alias.test", "target.test.");
	CHECK_INT(dns_answer_ip(p.b, p.n, ns_t_a, name, &ips), DNS_OK);
	CHECK_STR(name, strlen(name), "target.test");
	CHECK_INT(ips.n, 0);
}

TEST(cname_loop_is_temporary)
{
	struct pkt p;
	struct dns_iplist ips = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "a.test";

	start(&p, "a.test", ns_t_a, 3);
	add_cname(&p, "a.test", "b.test");
	add_cname(&p, "b.test", "a.test");
	add_a(&p, "a.test", "192.0.2.1");
	CHECK_INT(dns_answer_ip(p.b, p.n, ns_t_a, name, &ips), DNS_TEMP);
	CHECK_INT(ips.n, 0);
}

TEST(cname_chain_at_the_limit_is_followed)
{
	struct pkt p;
	struct dns_iplist ips = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "c0.test", owner[32], target[32];

	start(&p, "c0.test", ns_t_a, DNS_CNAME_HOPS + 1);
	for (int i = 0; i < DNS_CNAME_HOPS; i++) {
		snprintf(owner, sizeof owner, "c%d.test", i);
		snprintf(target, sizeof target, "c%d.test", i + 1);
		add_cname(&p, owner, target);
	}
	add_a(&p, target, "192.0.2.9");
	CHECK_INT(dns_answer_ip(p.b, p.n, ns_t_a, name, &ips), DNS_OK);
	CHECK_INT(ips.n, 1);
	dns_iplist_free(&ips);

	/* One more link is too many. */
	char name2[DNS_NAME_SIZE] = "c0.test";
	start(&p, "c0.test", ns_t_a, DNS_CNAME_HOPS + 2);
	for (int i = 0; i <= DNS_CNAME_HOPS; i++) {
		snprintf(owner, sizeof owner, "c%d.test", i);
		snprintf(target, sizeof target, "c%d.test", i + 1);
		add_cname(&p, owner, target);
	}
	add_a(&p, target, "192.0.2.9");
	CHECK_INT(dns_answer_ip(p.b, p.n, ns_t_a, name2, &ips), DNS_TEMP);
}

TEST(address_answers_take_only_their_type_and_class)
{
	struct pkt p;
	struct dns_iplist ips = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "host.test";
	size_t at;

	start(&p, "host.test", ns_t_aaaa, 5);
	add_aaaa(&p, "host.test", "2001:db8::25");
	add_a(&p, "host.test", "192.0.2.25");
	add_aaaa(&p, "HOST.TEST", "::ffff:192.0.2.26");
	at = rr(&p, "host.test", ns_t_aaaa, ns_c_chaos);
	put_bytes(&p, "0123456789abcdef", 16);
	rr_end(&p, at);
	at = rr(&p, "host.test", ns_t_aaaa, ns_c_in); /* wrong length */
	put_bytes(&p, "0123", 4);
	rr_end(&p, at);
	CHECK_INT(dns_answer_ip(p.b, p.n, ns_t_aaaa, name, &ips), DNS_OK);
	CHECK_INT(ips.n, 2);
	CHECK_INT(ips.v[0].af, AF_INET6);
	CHECK_STR(fmt(&ips.v[0]), strlen(fmt(&ips.v[0])), "2001:db8::25");
	CHECK_INT(ips.v[1].af, AF_INET); /* mapped: it is IPv4 */
	CHECK_STR(fmt(&ips.v[1]), strlen(fmt(&ips.v[1])), "192.0.2.26");
	dns_iplist_free(&ips);

	CHECK_INT(dns_answer_ip(p.b, p.n, ns_t_a, name, &ips), DNS_OK);
	CHECK_INT(ips.n, 1);
	CHECK_STR(fmt(&ips.v[0]), strlen(fmt(&ips.v[0])), "192.0.2.25");
	dns_iplist_free(&ips);

	CHECK_INT(dns_answer_ip(p.b, p.n, ns_t_mx, name, &ips), DNS_TEMP);
}

TEST(garbled_packets_are_temporary)
{
	struct pkt p;
	struct dns_mxlist mx = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "example.com";

	start(&p, "example.com", ns_t_mx, 1);
	add_mx(&p, "example.com", 10, "mx.example.com");
	/* Cut off inside the record. */
	CHECK_INT(dns_answer_mx(p.b, p.n - 3, name, &mx), DNS_TEMP);
	CHECK_INT(mx.n, 0);
	/* Too short for a header. */
	CHECK_INT(dns_answer_mx(p.b, 5, name, &mx), DNS_TEMP);
	CHECK_INT(dns_answer_mx(p.b, 0, name, &mx), DNS_TEMP);
	/* More answers announced than present. */
	p.b[7] = 3;
	CHECK_INT(dns_answer_mx(p.b, p.n, name, &mx), DNS_TEMP);
	/* Larger than any DNS message. */
	CHECK_INT(dns_answer_mx(p.b, (size_t)NS_MAXMSG + 1, name, &mx),
		  DNS_TEMP);
	CHECK_INT(mx.n, 0);
}

TEST(malformed_records_are_ignored)
{
	struct pkt p;
	struct dns_mxlist mx = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "example.com";
	size_t at;

	start(&p, "example.com", ns_t_mx, 3);
	at = rr(&p, "example.com", ns_t_mx, ns_c_in);
	put16(&p, 10);
	rr_end(&p, at);
	at = rr(&p, "example.com", ns_t_mx, ns_c_in);
	put16(&p, 20);
	put_pointer(&p, 0x3fff); /* points outside the message */
	rr_end(&p, at);
	add_mx(&p, "example.com", 30, "good.example.com");
	CHECK_INT(dns_answer_mx(p.b, p.n, name, &mx), DNS_OK);
	CHECK_INT(mx.n, 1);
	CHECK_INT(mx.v[0].pref, 30);
	CHECK_STR(mx.v[0].name, strlen(mx.v[0].name), "good.example.com");
	dns_mxlist_free(&mx);
}

TEST(mx_exchange_must_end_inside_its_rdata)
{
	struct pkt p;
	struct dns_mxlist mx = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "example.com";
	size_t at;

	/* RDLENGTH 5 covers the preference and "\x02mx", but the name's
	 * root label is the first byte of the next record (a root-owned A
	 * record), so the name runs past the rdata. */
	start(&p, "example.com", ns_t_mx, 2);
	at = rr(&p, "example.com", ns_t_mx, ns_c_in);
	put16(&p, 10);
	put8(&p, 2);
	put_bytes(&p, "mx", 2);
	rr_end(&p, at);
	add_a(&p, "", "192.0.2.1");
	CHECK_INT(dns_answer_mx(p.b, p.n, name, &mx), DNS_OK);
	CHECK_INT(mx.n, 0);
}

TEST(root_exchange_is_empty_name)
{
	struct pkt p;
	struct dns_mxlist mx = {NULL, 0, 0};
	char name[DNS_NAME_SIZE] = "nomail.test";

	start(&p, "nomail.test", ns_t_mx, 1);
	add_mx(&p, "nomail.test", 0, "");
	CHECK_INT(dns_answer_mx(p.b, p.n, name, &mx), DNS_OK);
	CHECK_INT(mx.n, 1);
	CHECK_STR(mx.v[0].name, strlen(mx.v[0].name), "");
	CHECK_INT(dns_mx_null(&mx), 1);
	dns_mxlist_free(&mx);
}

/* --- null MX and order --- */

static void fill(struct dns_mxlist *l, const unsigned *prefs,
		 const char *const *names, size_t n)
{
	struct pkt p;
	char name[DNS_NAME_SIZE] = "d.test";

	start(&p, "d.test", ns_t_mx, (unsigned)n);
	for (size_t i = 0; i < n; i++)
		add_mx(&p, "d.test", prefs[i], names[i]);
	CHECK_INT(dns_answer_mx(p.b, p.n, name, l), DNS_OK);
	CHECK_INT(l->n, n);
}

TEST(null_mx_rules)
{
	struct dns_mxlist l = {NULL, 0, 0};
	const unsigned p1[] = {0};
	const char *n1[] = {"mx.d.test"};
	const unsigned p2[] = {0, 10};
	const char *n2[] = {"", ""};
	const char *n3[] = {"", "mx.d.test"};

	CHECK_INT(dns_mx_null(&l), 0); /* no MX at all is not null MX */
	fill(&l, p1, n1, 1);
	CHECK_INT(dns_mx_null(&l), 0);
	CHECK_INT(l.n, 1);
	dns_mxlist_free(&l);
	fill(&l, p2, n2, 2);
	CHECK_INT(dns_mx_null(&l), 1);
	dns_mxlist_free(&l);
	/* Root among real exchanges: the root names no host, drop it. */
	fill(&l, p2, n3, 2);
	CHECK_INT(dns_mx_null(&l), 0);
	CHECK_INT(l.n, 1);
	CHECK_STR(l.v[0].name, strlen(l.v[0].name), "mx.d.test");
	CHECK_INT(l.v[0].pref, 10);
	dns_mxlist_free(&l);
	/* A null MX with a preference other than 0 is still one. */
	const unsigned p3[] = {10};
	const char *n4[] = {""};
	fill(&l, p3, n4, 1);
	CHECK_INT(dns_mx_null(&l), 1);
	dns_mxlist_free(&l);
}

TEST(random_is_splitmix64)
{
	uint64_t s = 0;
	CHECK(dns_random(&s) == 0xe220a8397b1dcdafULL);
	CHECK(dns_random(&s) == 0x6e789e6aa1b965f4ULL);
	/* Seeds differ from call to call (64 random bits). */
	CHECK(dns_random_seed() != dns_random_seed());
}

static const unsigned sort_prefs[] = {20, 10, 10, 30, 10, 0};
static const char *sort_names[] = {"b", "a1", "a2", "c", "a3", "z"};

static void sorted_with(uint64_t seed, struct dns_mxlist *l)
{
	uint64_t rng = seed;
	fill(l, sort_prefs, sort_names, 6);
	dns_mx_sort(l, &rng);
}

TEST(sort_orders_by_preference)
{
	struct dns_mxlist l = {NULL, 0, 0};

	for (uint64_t seed = 0; seed < 50; seed++) {
		sorted_with(seed, &l);
		CHECK_INT(l.n, 6);
		CHECK_STR(l.v[0].name, 1, "z");
		CHECK_INT(l.v[0].pref, 0);
		for (size_t i = 1; i < 4; i++) {
			CHECK_INT(l.v[i].pref, 10);
			CHECK(l.v[i].name[0] == 'a');
		}
		CHECK_STR(l.v[4].name, 1, "b");
		CHECK_STR(l.v[5].name, 1, "c");
		dns_mxlist_free(&l);
	}
}

TEST(sort_is_random_among_equals_and_fixed_by_the_seed)
{
	struct dns_mxlist l = {NULL, 0, 0}, again = {NULL, 0, 0};
	int seen[3][3] = {{0}};

	for (uint64_t seed = 1; seed <= 300; seed++) {
		sorted_with(seed, &l);
		sorted_with(seed, &again);
		for (size_t i = 0; i < 6; i++)
			CHECK_STR(l.v[i].name, strlen(l.v[i].name),
				  again.v[i].name);
		/* Which of a1..a3 came at each of the three places. */
		for (int k = 0; k < 3; k++)
			seen[k][l.v[1 + k].name[1] - '1']++;
		dns_mxlist_free(&l);
		dns_mxlist_free(&again);
	}
	/* Each name reaches each place, about a third of the time. */
	for (int k = 0; k < 3; k++)
		for (int j = 0; j < 3; j++)
			CHECK(seen[k][j] > 60 && seen[k][j] < 140);
}

TEST(sort_of_empty_and_single)
{
	struct dns_mxlist l = {NULL, 0, 0};
	uint64_t rng = 7;
	const unsigned p[] = {5};
	const char *n[] = {"only"};

	dns_mx_sort(&l, &rng);
	CHECK_INT(l.n, 0);
	fill(&l, p, n, 1);
	dns_mx_sort(&l, &rng);
	CHECK_STR(l.v[0].name, 4, "only");
	dns_mxlist_free(&l);
}

UNIT_MAIN(ip_parse_v4_v6_and_mapped, ip_equal_compares_family_and_bytes,
	  literals, iplist_grows, server_spec,
	  open_with_server_uses_only_it_and_allows_tcp_retry,
	  open_refuses_a_bad_server, lookups_on_a_closed_resolver_are_temporary,
	  unusable_names_do_not_exist, mx_answer, mx_answer_with_compression,
	  mx_answer_follows_cname_chain,
	  cname_only_answer_gives_final_name_and_nothing,
	  cname_loop_is_temporary, cname_chain_at_the_limit_is_followed,
	  address_answers_take_only_their_type_and_class,
	  garbled_packets_are_temporary, malformed_records_are_ignored,
	  mx_exchange_must_end_inside_its_rdata, root_exchange_is_empty_name,
	  null_mx_rules, random_is_splitmix64, sort_orders_by_preference,
	  sort_is_random_among_equals_and_fixed_by_the_seed,
	  sort_of_empty_and_single)
