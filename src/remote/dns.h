/*
 * dns.h: the DNS lookups qmail-remote needs (MX, AAAA, A), through the
 * libc resolver.
 *
 * Packets are parsed only with the resolver library's own functions
 * (ns_initparse, ns_parserr, ns_name_uncompress); this module adds the
 * CNAME walk, the MX order and the null MX rule on top. It never builds a
 * command line or a shell string from DNS data, and never prints.
 *
 * Every lookup can be sent to one test server with DNSCACHEIP="ip" or
 * "ip:port" (IPv4; port 53 by default). The caller decides whether the
 * variable may be trusted (it must not be for a setuid program).
 */
#ifndef QM_REMOTE_DNS_H
#define QM_REMOTE_DNS_H

#include <netinet/in.h>
#include <resolv.h>
#include <stddef.h>
#include <stdint.h>

/* Results of a lookup. NODATA (the name exists, without records of the
 * type asked for) is DNS_OK with an empty list. */
enum dns_result {
	DNS_OK = 0,
	DNS_NXDOMAIN = 1, /* the name does not exist: permanent */
	DNS_TEMP = 2,	  /* SERVFAIL, timeout, garbled answer: try later */
	DNS_NOMEM = 3,
};

/* An address; a[0..3] for AF_INET, a[0..15] for AF_INET6, network order. */
struct dns_ip {
	int af;
	unsigned char a[16];
};

struct dns_iplist {
	struct dns_ip *v;
	size_t n, cap;
};

struct dns_mx {
	unsigned pref;
	char *name; /* presentation form, no trailing dot; "" is the root */
};

struct dns_mxlist {
	struct dns_mx *v;
	size_t n, cap;
};

struct dns_resolver {
	struct __res_state res;
	unsigned char *answer; /* NS_MAXMSG bytes */
	int open;
};

/* Longest name, presentation form, with its NUL. */
#define DNS_NAME_SIZE NS_MAXDNAME
/* CNAMEs followed for one lookup before giving up (a loop is DNS_TEMP). */
#define DNS_CNAME_HOPS 8

/* --- addresses --- */

/* Parse a dotted-quad or IPv6 address. An IPv4-mapped IPv6 address
 * becomes AF_INET. Returns 0, or -1 with errno EINVAL. */
int dns_ip_parse(const char *s, struct dns_ip *out);
/* Format with inet_ntop into buf (INET6_ADDRSTRLEN bytes). Returns buf. */
/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes AF_INET. */
void dns_ip_normalize(struct dns_ip *ip);
const char *dns_ip_format(const struct dns_ip *ip, char *buf, size_t size);
int dns_ip_equal(const struct dns_ip *a, const struct dns_ip *b);
/* An address literal: "[1.2.3.4]", "[IPv6:2001:db8::1]" (RFC 5321
 * 4.1.3; the tag is matched without regard to case) or "[2001:db8::1]".
 * Returns 1 and fills out, 0 when host is not bracketed, -1 (EINVAL) for
 * a bracketed host that is not a valid literal. */
int dns_literal(const char *host, struct dns_ip *out);

int dns_iplist_add(struct dns_iplist *l, const struct dns_ip *ip);
void dns_iplist_free(struct dns_iplist *l);
void dns_mxlist_free(struct dns_mxlist *l);

/* --- the resolver --- */

/* Parse a DNSCACHEIP value "ip" or "ip:port" (IPv4). 0, or -1 EINVAL. */
int dns_parse_server(const char *spec, struct sockaddr_in *out);
/* Start the resolver; with server non-NULL (a DNSCACHEIP value), use
 * that one server only. Truncated UDP answers are retried over TCP.
 * Returns 0, or -1 with errno (EINVAL: bad server, ENOMEM). */
int dns_open(struct dns_resolver *r, const char *server);
void dns_close(struct dns_resolver *r);

/* MX records of name, in answer order (see dns_mx_sort), following
 * CNAMEs. An empty list means the name has no MX. */
enum dns_result dns_mx(struct dns_resolver *r, const char *name,
		       struct dns_mxlist *out);
/* AAAA then A records of name, appended to out (IPv6 first). NXDOMAIN
 * only when both lookups say so; DNS_TEMP when one failed temporarily
 * and the other found nothing. */
enum dns_result dns_ip(struct dns_resolver *r, const char *name,
		       struct dns_iplist *out);

/* --- answers (exposed for tests) --- */

/* Walk the answer section of msg: follow CNAMEs from name (updated in
 * place to the final name, DNS_NAME_SIZE bytes) and append the MX records
 * owned by that final name. Returns DNS_OK, DNS_TEMP for a malformed
 * packet or a CNAME chain longer than DNS_CNAME_HOPS, or DNS_NOMEM. */
enum dns_result dns_answer_mx(const unsigned char *msg, size_t len, char *name,
			      struct dns_mxlist *out);
/* The same for A (ns_t_a) or AAAA (ns_t_aaaa) records. */
enum dns_result dns_answer_ip(const unsigned char *msg, size_t len, int type,
			      char *name, struct dns_iplist *out);

/* --- MX order --- */

/* RFC 7505: a single MX whose exchange is the root means "no mail here".
 * Returns 1 for a null MX. Otherwise removes any root exchange from a
 * longer list (it names no host) and returns 0. */
int dns_mx_null(struct dns_mxlist *l);
/* Sort by preference, in random order among equal preferences, drawing
 * from the generator state *rng (see dns_random). */
void dns_mx_sort(struct dns_mxlist *l, uint64_t *rng);
/* A small generator (splitmix64): deterministic for a given seed, which
 * is what the tests need; dns_random_seed gives an unpredictable seed. */
uint64_t dns_random(uint64_t *state);
uint64_t dns_random_seed(void);

#endif
