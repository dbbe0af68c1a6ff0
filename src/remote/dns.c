/*
 * dns.c: MX, AAAA and A lookups through the libc resolver.
 *
 * The resolver sends the queries (and retries a truncated UDP answer
 * over TCP); ns_initparse/ns_parserr/ns_name_uncompress take the packets
 * apart. Everything here treats the answer as hostile: names are bounded
 * by the library, record lengths are checked before use, and every list
 * grows with checked arithmetic. It must never print, and never let a
 * record it cannot read pass as a record.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/checked.h"
#include "remote/dns.h"

/* --- addresses --- */

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};

/* An IPv4-mapped IPv6 address is the IPv4 address: compare it as one. */
void dns_ip_normalize(struct dns_ip *ip)
{
	if (ip->af == AF_INET6 && memcmp(ip->a, v4mapped, 12) == 0) {
		memmove(ip->a, ip->a + 12, 4);
		memset(ip->a + 4, 0, 12);
		ip->af = AF_INET;
	}
}

int dns_ip_parse(const char *s, struct dns_ip *out)
{
	struct dns_ip ip;

	memset(&ip, 0, sizeof ip);
	if (inet_pton(AF_INET, s, ip.a) == 1) {
		ip.af = AF_INET;
	} else if (inet_pton(AF_INET6, s, ip.a) == 1) {
		ip.af = AF_INET6;
		dns_ip_normalize(&ip);
	} else {
		errno = EINVAL;
		return -1;
	}
	*out = ip;
	return 0;
}

const char *dns_ip_format(const struct dns_ip *ip, char *buf, size_t size)
{
	if (!inet_ntop(ip->af, ip->a, buf, (socklen_t)size) && size > 0)
		buf[0] = '\0';
	return buf;
}

int dns_ip_equal(const struct dns_ip *a, const struct dns_ip *b)
{
	size_t n = a->af == AF_INET ? 4 : 16;
	return a->af == b->af && memcmp(a->a, b->a, n) == 0;
}

static int ascii_casecmp_n(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return 1;
	}
	return 0;
}

int dns_literal(const char *host, struct dns_ip *out)
{
	char inner[64];
	size_t len = strlen(host);
	const char *p = host + 1;
	struct dns_ip ip;

	if (len == 0 || host[0] != '[')
		return 0;
	if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof inner)
		goto bad;
	len -= 2;
	if (len > 5 && ascii_casecmp_n(p, "IPv6:", 5) == 0) {
		memcpy(inner, p + 5, len - 5);
		inner[len - 5] = '\0';
		memset(&ip, 0, sizeof ip);
		if (inet_pton(AF_INET6, inner, ip.a) != 1)
			goto bad;
		ip.af = AF_INET6;
		dns_ip_normalize(&ip);
	} else {
		memcpy(inner, p, len);
		inner[len] = '\0';
		if (dns_ip_parse(inner, &ip) < 0)
			goto bad;
	}
	*out = ip;
	return 1;
bad:
	errno = EINVAL;
	return -1;
}

/* Make room for one more element of size bytes. */
static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t want, bytes;
	void *p;

	if (n < *cap)
		return 0;
	if (size_mul(*cap ? *cap : 4, 2, &want) < 0 ||
	    size_mul(want, size, &bytes) < 0)
		return -1;
	p = realloc(*v, bytes);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	*v = p;
	*cap = want;
	return 0;
}

int dns_iplist_add(struct dns_iplist *l, const struct dns_ip *ip)
{
	void *v = l->v;

	if (grow(&v, &l->cap, l->n, sizeof *l->v) < 0)
		return -1;
	l->v = v;
	l->v[l->n++] = *ip;
	return 0;
}

void dns_iplist_free(struct dns_iplist *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int mxlist_add(struct dns_mxlist *l, unsigned pref, const char *name)
{
	void *v = l->v;
	char *copy;

	if (grow(&v, &l->cap, l->n, sizeof *l->v) < 0)
		return -1;
	l->v = v;
	copy = strdup(name);
	if (!copy)
		return -1;
	l->v[l->n].pref = pref;
	l->v[l->n].name = copy;
	l->n++;
	return 0;
}

void dns_mxlist_free(struct dns_mxlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* --- the resolver --- */

int dns_parse_server(const char *spec, struct sockaddr_in *out)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strchr(spec, ':');
	size_t hostlen = colon ? (size_t)(colon - spec) : strlen(spec);
	unsigned long port = 53;
	struct sockaddr_in sa;

	if (hostlen == 0 || hostlen >= sizeof host)
		goto bad;
	memcpy(host, spec, hostlen);
	host[hostlen] = '\0';
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		goto bad;
	if (colon) {
		const char *p = colon + 1;
		if (!*p)
			goto bad;
		port = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				goto bad;
			port = port * 10 + (unsigned long)(*p - '0');
			if (port > 65535)
				goto bad;
		}
		if (port == 0)
			goto bad;
	}
	sa.sin_port = htons((uint16_t)port);
	*out = sa;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

int dns_open(struct dns_resolver *r, const char *server)
{
	struct sockaddr_in sa;

	memset(r, 0, sizeof *r);
	if (server && dns_parse_server(server, &sa) < 0)
		return -1;
	r->answer = malloc(NS_MAXMSG);
	if (!r->answer) {
		errno = ENOMEM;
		return -1;
	}
	if (res_ninit(&r->res) != 0) {
		free(r->answer);
		r->answer = NULL;
		if (!errno)
			errno = EIO;
		return -1;
	}
	/* A truncated answer must be asked again over TCP, never used. */
	r->res.options &= ~(unsigned long)(RES_IGNTC | RES_USEVC);
	if (server) {
		r->res.nsaddr_list[0] = sa;
		r->res.nscount = 1;
	}
	r->open = 1;
	return 0;
}

void dns_close(struct dns_resolver *r)
{
	if (r->open)
		res_nclose(&r->res);
	free(r->answer);
	r->answer = NULL;
	r->open = 0;
}

/* --- answers --- */

/* Length of name without one trailing dot. */
static size_t name_len(const char *name)
{
	size_t n = strlen(name);
	if (n > 0 && name[n - 1] == '.')
		n--;
	return n;
}

static int same_name(const char *a, const char *b)
{
	size_t la = name_len(a), lb = name_len(b);
	return la == lb && ascii_casecmp_n(a, b, la) == 0;
}

/* Copy name without its trailing dot into out (DNS_NAME_SIZE bytes);
 * the root becomes "". Returns 0, or -1 when it does not fit. */
static int set_name(char *out, const char *name)
{
	size_t n = name_len(name);
	if (n >= DNS_NAME_SIZE)
		return -1;
	memmove(out, name, n);
	out[n] = '\0';
	return 0;
}

/* Expand the domain name at p, which must lie within the rdata of
 * rdlen bytes starting at rdata. Returns 0, or -1. */
static int expand(const ns_msg *h, const unsigned char *rdata, size_t rdlen,
		  const unsigned char *p, char *out)
{
	char tmp[DNS_NAME_SIZE];
	int used = ns_name_uncompress(ns_msg_base(*h), ns_msg_end(*h), p, tmp,
				      sizeof tmp);
	if (used < 0 || (size_t)used > rdlen - (size_t)(p - rdata))
		return -1;
	return set_name(out, tmp);
}

/* A collector takes one record of the wanted type: 1 taken, 0 ignored
 * (malformed), -1 out of memory. */
typedef int collect_fn(void *ctx, const ns_msg *h, const ns_rr *rr);

static int collect_mx(void *ctx, const ns_msg *h, const ns_rr *rr)
{
	const unsigned char *rdata = ns_rr_rdata(*rr);
	size_t rdlen = ns_rr_rdlen(*rr);
	char name[DNS_NAME_SIZE];

	if (rdlen < 3 || expand(h, rdata, rdlen, rdata + 2, name) < 0)
		return 0;
	unsigned pref = (unsigned)rdata[0] << 8 | rdata[1];
	return mxlist_add(ctx, pref, name) < 0 ? -1 : 1;
}

static int collect_ip(void *ctx, const ns_msg *h, const ns_rr *rr)
{
	struct dns_ip ip;
	size_t rdlen = ns_rr_rdlen(*rr);

	(void)h;
	memset(&ip, 0, sizeof ip);
	if (ns_rr_type(*rr) == ns_t_a && rdlen == 4)
		ip.af = AF_INET;
	else if (ns_rr_type(*rr) == ns_t_aaaa && rdlen == 16)
		ip.af = AF_INET6;
	else
		return 0;
	memcpy(ip.a, ns_rr_rdata(*rr), rdlen);
	dns_ip_normalize(&ip);
	return dns_iplist_add(ctx, &ip) < 0 ? -1 : 1;
}

/* Follow the CNAME chain for name through the answer section, at most
 * DNS_CNAME_HOPS links. Returns DNS_OK or DNS_TEMP. */
static enum dns_result follow_cnames(ns_msg *h, int count, char *name)
{
	ns_rr rr;

	for (int hops = 0;; hops++) {
		int moved = 0;
		for (int i = 0; i < count && !moved; i++) {
			if (ns_parserr(h, ns_s_an, i, &rr) < 0)
				return DNS_TEMP;
			if (ns_rr_class(rr) != ns_c_in ||
			    ns_rr_type(rr) != ns_t_cname ||
			    !same_name(ns_rr_name(rr), name))
				continue;
			if (hops >= DNS_CNAME_HOPS)
				return DNS_TEMP; /* a loop, or absurdly long */
			if (expand(h, ns_rr_rdata(rr), ns_rr_rdlen(rr),
				   ns_rr_rdata(rr), name) < 0)
				return DNS_TEMP;
			moved = 1;
		}
		if (!moved)
			return DNS_OK;
	}
}

static enum dns_result walk_answer(const unsigned char *msg, size_t len,
				   int type, char *name, collect_fn *take,
				   void *ctx, size_t *taken)
{
	ns_msg h;
	ns_rr rr;
	enum dns_result res;

	*taken = 0;
	if (len > NS_MAXMSG || ns_initparse(msg, (int)len, &h) < 0)
		return DNS_TEMP;
	int count = ns_msg_count(h, ns_s_an);
	if (set_name(name, name) < 0)
		return DNS_TEMP;
	res = follow_cnames(&h, count, name);
	if (res != DNS_OK)
		return res;
	for (int i = 0; i < count; i++) {
		if (ns_parserr(&h, ns_s_an, i, &rr) < 0)
			return DNS_TEMP;
		if (ns_rr_class(rr) != ns_c_in || (int)ns_rr_type(rr) != type ||
		    !same_name(ns_rr_name(rr), name))
			continue;
		int r = take(ctx, &h, &rr);
		if (r < 0)
			return DNS_NOMEM;
		*taken += (size_t)r;
	}
	return DNS_OK;
}

enum dns_result dns_answer_mx(const unsigned char *msg, size_t len, char *name,
			      struct dns_mxlist *out)
{
	size_t taken;
	return walk_answer(msg, len, ns_t_mx, name, collect_mx, out, &taken);
}

enum dns_result dns_answer_ip(const unsigned char *msg, size_t len, int type,
			      char *name, struct dns_iplist *out)
{
	size_t taken;
	if (type != ns_t_a && type != ns_t_aaaa)
		return DNS_TEMP;
	return walk_answer(msg, len, type, name, collect_ip, out, &taken);
}

/* --- lookups --- */

/* A name we are willing to ask about: 1 to 253 bytes (plus a trailing
 * dot), no blanks or control characters. */
static int usable_name(const char *name)
{
	size_t n = name_len(name);

	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == 127)
			return 0;
	}
	return 1;
}

static enum dns_result query(struct dns_resolver *r, const char *name, int type,
			     size_t *len)
{
	int n = res_nquery(&r->res, name, ns_c_in, type, r->answer, NS_MAXMSG);

	*len = 0;
	if (n < 0) {
		switch (r->res.res_h_errno) {
		case HOST_NOT_FOUND:
			return DNS_NXDOMAIN;
		case NO_DATA:
			return DNS_OK;
		default:
			return DNS_TEMP;
		}
	}
	*len = n > NS_MAXMSG ? NS_MAXMSG : (size_t)n;
	return DNS_OK;
}

/* Ask for type at name. When the answer holds only a CNAME chain (the
 * server did not chase it), ask again for the name it ends at. */
static enum dns_result lookup(struct dns_resolver *r, const char *qname,
			      int type, collect_fn *take, void *ctx)
{
	char name[DNS_NAME_SIZE], asked[DNS_NAME_SIZE];
	size_t len, taken;
	enum dns_result res;

	if (!r->open)
		return DNS_TEMP;
	if (!usable_name(qname) || set_name(name, qname) < 0)
		return DNS_NXDOMAIN; /* no such name can exist */
	for (int round = 0; round <= DNS_CNAME_HOPS; round++) {
		memcpy(asked, name, sizeof asked);
		res = query(r, name, type, &len);
		if (res != DNS_OK || len == 0)
			return res;
		res =
		    walk_answer(r->answer, len, type, name, take, ctx, &taken);
		if (res != DNS_OK || taken > 0 || same_name(name, asked))
			return res;
	}
	return DNS_TEMP;
}

enum dns_result dns_mx(struct dns_resolver *r, const char *name,
		       struct dns_mxlist *out)
{
	return lookup(r, name, ns_t_mx, collect_mx, out);
}

enum dns_result dns_ip(struct dns_resolver *r, const char *name,
		       struct dns_iplist *out)
{
	size_t before = out->n;
	enum dns_result r6, r4;

	r6 = lookup(r, name, ns_t_aaaa, collect_ip, out);
	if (r6 == DNS_NOMEM)
		return DNS_NOMEM;
	r4 = lookup(r, name, ns_t_a, collect_ip, out);
	if (r4 == DNS_NOMEM)
		return DNS_NOMEM;
	if (r6 == DNS_NXDOMAIN && r4 == DNS_NXDOMAIN)
		return DNS_NXDOMAIN;
	if (out->n > before)
		return DNS_OK;
	if (r6 == DNS_TEMP || r4 == DNS_TEMP)
		return DNS_TEMP;
	return DNS_OK;
}

/* --- MX order --- */

int dns_mx_null(struct dns_mxlist *l)
{
	size_t kept = 0;

	if (l->n == 0)
		return 0;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].name[0] != '\0')
			kept++;
	if (kept == 0)
		return 1;
	kept = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].name[0] == '\0')
			free(l->v[i].name);
		else
			l->v[kept++] = l->v[i];
	}
	l->n = kept;
	return 0;
}

uint64_t dns_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t dns_random_seed(void)
{
	uint64_t seed;
	struct timespec ts;

	if (getentropy(&seed, sizeof seed) == 0)
		return seed;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
	       (uint64_t)getpid() << 32;
}

void dns_mx_sort(struct dns_mxlist *l, uint64_t *rng)
{
	struct dns_mx t;

	/* Shuffle, then sort stably: equal preferences stay shuffled. */
	for (size_t i = l->n; i > 1; i--) {
		size_t j = (size_t)(dns_random(rng) % i);
		t = l->v[i - 1];
		l->v[i - 1] = l->v[j];
		l->v[j] = t;
	}
	for (size_t i = 1; i < l->n; i++) {
		t = l->v[i];
		size_t j = i;
		for (; j > 0 && l->v[j - 1].pref > t.pref; j--)
			l->v[j] = l->v[j - 1];
		l->v[j] = t;
	}
}
