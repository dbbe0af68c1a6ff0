/*
 * sendlog.c: qmail-send's log lines into per-domain delivery statistics.
 *
 * The lines parsed are exactly those qmail-send writes (new msg, info
 * msg, starting delivery, delivery, end msg, bounce msg, double and
 * triple bounce, status, warning). Anything else is counted as unparsed
 * and otherwise ignored: a damaged or foreign line must never create a
 * delivery or end a message. Every allocation is checked, and every key
 * is copied, so nothing here points into the caller's line.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/checked.h"
#include "lib/str.h"
#include "mail/sendlog.h"

/* daemontools labels second 0 of 1970 as 2^62 + 10 (TAI64, without the
 * leap seconds since); multilog and tai64nlocal agree on it. */
#define TAI64_UNIX 4611686018427387914ULL
#define UNIX_MAX ((uint64_t)1 << 33) /* the year 2242: later is damage */
#define NO_TIME INT64_MIN

/* --- a hash table of byte-string keys --- */

struct node {
	struct node *next;  /* in its bucket */
	struct node *owned; /* the next mark of the same message */
	uint64_t hash;
	void *val;
	unsigned flags;
	size_t klen;
	unsigned char key[];
};

struct table {
	struct node **b;
	size_t nb, count; /* nb is 0 or a power of two */
};

static uint64_t hash_key(const void *k, size_t n)
{
	const unsigned char *p = k;
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static struct node *table_find(const struct table *t, const void *k, size_t n)
{
	if (t->nb == 0)
		return NULL;
	uint64_t h = hash_key(k, n);
	for (struct node *x = t->b[h & (t->nb - 1)]; x; x = x->next)
		if (x->hash == h && x->klen == n && memcmp(x->key, k, n) == 0)
			return x;
	return NULL;
}

static int table_grow(struct table *t)
{
	size_t nb;

	if (size_mul(t->nb ? t->nb : 32, 2, &nb) < 0)
		return -1;
	struct node **b = calloc(nb, sizeof *b);
	if (!b)
		return -1;
	for (size_t i = 0; i < t->nb; i++)
		for (struct node *x = t->b[i], *next; x; x = next) {
			next = x->next;
			x->next = b[x->hash & (nb - 1)];
			b[x->hash & (nb - 1)] = x;
		}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

/* A new node for k, which must not be in t yet; NULL when out of memory. */
static struct node *table_add(struct table *t, const void *k, size_t n)
{
	size_t bytes;

	if (t->count >= t->nb && table_grow(t) < 0)
		return NULL;
	if (size_add(sizeof(struct node), n, &bytes) < 0)
		return NULL;
	struct node *x = calloc(1, bytes);
	if (!x)
		return NULL;
	x->hash = hash_key(k, n);
	x->klen = n;
	memcpy(x->key, k, n);
	size_t i = x->hash & (t->nb - 1);
	x->next = t->b[i];
	t->b[i] = x;
	t->count++;
	return x;
}

static void table_unlink(struct table *t, struct node *x)
{
	struct node **p = &t->b[x->hash & (t->nb - 1)];

	while (*p != x)
		p = &(*p)->next;
	*p = x->next;
	t->count--;
}

/* --- the reader's state --- */

enum { COUNTED = 1, DONE = 2 }; /* flags of a recipient's mark */

struct msg {
	unsigned long id;
	uint64_t serial;    /* unique per message, unlike the id */
	int64_t born;	    /* when "new msg" was logged, or NO_TIME */
	int live;	    /* between "new msg" and "end msg" */
	int counted;	    /* in the totals' message count */
	unsigned long refs; /* deliveries in flight */
	struct node *node;  /* in the message table, while live */
	struct node *marks; /* its recipients and domains */
};

struct delivery {
	struct msg *m;
	struct node *rcpt; /* a mark of m */
	struct sendlog_stats *dom;
};

struct sendlog {
	int64_t since;
	struct table msgs, dels, doms, marks;
	uint64_t serial;
	unsigned long last_start; /* in this run of qmail-send */
	int ranged;		  /* t.first and t.last are set */
	struct sendlog_totals t;
	struct str key; /* scratch for building keys */
	const struct sendlog_stats **sorted;
	size_t sorted_cap;
};

/* The line being handled. */
struct line {
	const char *p;
	size_t n;
	int64_t when; /* NO_TIME without a stamp */
	int counts;   /* in the window */
};

/* --- small parsers --- */

static int eat(struct line *l, const char *lit)
{
	size_t k = strlen(lit);

	if (l->n < k || memcmp(l->p, lit, k) != 0)
		return 0;
	l->p += k;
	l->n -= k;
	return 1;
}

static int eat_num(struct line *l, unsigned long *out)
{
	unsigned long v = 0;
	size_t i = 0;

	for (; i < l->n && l->p[i] >= '0' && l->p[i] <= '9'; i++) {
		unsigned long digit = (unsigned long)(l->p[i] - '0');
		if (v > (~0UL - digit) / 10)
			return 0;
		v = v * 10 + digit;
	}
	if (i == 0)
		return 0;
	l->p += i;
	l->n -= i;
	*out = v;
	return 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex_field(const char *s, size_t digits, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < digits; i++) {
		int d = hexval(s[i]);
		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;
}

size_t sendlog_stamp(const char *line, size_t len, int64_t *ms)
{
	uint64_t label, nano;

	if (len < 26 || line[0] != '@' || line[25] != ' ')
		return 0;
	if (hex_field(line + 1, 16, &label) < 0 ||
	    hex_field(line + 17, 8, &nano) < 0)
		return 0;
	if (label < TAI64_UNIX || label - TAI64_UNIX >= UNIX_MAX ||
	    nano >= 1000000000)
		return 0;
	*ms = (int64_t)(label - TAI64_UNIX) * 1000 + (int64_t)(nano / 1000000);
	return 26;
}

/* --- messages --- */

static void msg_free(struct sendlog *sl, struct msg *m)
{
	for (struct node *x = m->marks, *next; x; x = next) {
		next = x->owned;
		table_unlink(&sl->marks, x);
		free(x);
	}
	free(m);
}

/* Frees m once it has ended and no delivery refers to it. */
static void msg_release(struct sendlog *sl, struct msg *m)
{
	if (!m->live && m->refs == 0)
		msg_free(sl, m);
}

static void msg_end(struct sendlog *sl, struct msg *m)
{
	table_unlink(&sl->msgs, m->node);
	free(m->node);
	m->node = NULL;
	m->live = 0;
	msg_release(sl, m);
}

static struct msg *msg_find(struct sendlog *sl, unsigned long id)
{
	struct node *x = table_find(&sl->msgs, &id, sizeof id);
	return x ? x->val : NULL;
}

static struct msg *msg_new(struct sendlog *sl, unsigned long id, int64_t born)
{
	struct msg *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	m->node = table_add(&sl->msgs, &id, sizeof id);
	if (!m->node) {
		free(m);
		return NULL;
	}
	m->node->val = m;
	m->id = id;
	m->serial = ++sl->serial;
	m->born = born;
	m->live = 1;
	return m;
}

/* The mark of m for tag+text, made when missing; *fresh says which.
 * NULL when out of memory. */
static struct node *msg_mark(struct sendlog *sl, struct msg *m, char tag,
			     const char *text, size_t n, int *fresh)
{
	str_clear(&sl->key);
	if (str_append(&sl->key, &m->serial, sizeof m->serial) < 0 ||
	    str_appendc(&sl->key, tag) < 0 || str_append(&sl->key, text, n) < 0)
		return NULL;
	struct node *x = table_find(&sl->marks, sl->key.s, sl->key.len);
	*fresh = x == NULL;
	if (x)
		return x;
	x = table_add(&sl->marks, sl->key.s, sl->key.len);
	if (!x)
		return NULL;
	x->owned = m->marks;
	m->marks = x;
	return x;
}

/* --- domains and reasons --- */

static struct sendlog_stats *domain_get(struct sendlog *sl, const char *rcpt,
					size_t n)
{
	const char *at = NULL;

	for (size_t i = 0; i < n; i++)
		if (rcpt[i] == '@')
			at = rcpt + i;
	const char *name = at ? at + 1 : rcpt + n;
	size_t len = (size_t)(rcpt + n - name);

	str_clear(&sl->key);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (str_appendc(&sl->key, c) < 0)
			return NULL;
	}
	struct node *x = table_find(&sl->doms, sl->key.s, sl->key.len);
	if (x)
		return x->val;
	struct sendlog_stats *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->name = malloc(sl->key.len + 1);
	x = d->name ? table_add(&sl->doms, sl->key.s, sl->key.len) : NULL;
	if (!x) {
		free(d->name);
		free(d);
		return NULL;
	}
	memcpy(d->name, sl->key.s, sl->key.len);
	d->name[sl->key.len] = 0;
	x->val = d;
	return d;
}

/* qmail-send logs a text with its spaces as "_" and its line breaks as
 * "/"; spaces come back, a trailing break goes. */
static size_t reason_text(const char *s, size_t n, char *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k < SENDLOG_REASON_LEN; i++)
		out[k++] = s[i] == '_' ? ' ' : s[i];
	while (k && (out[k - 1] == '/' || out[k - 1] == ' '))
		k--;
	out[k] = 0;
	return k;
}

static int reason_add(struct sendlog_reasons *r, const char *text)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].text, text) == 0) {
			r->v[i].count++;
			return 0;
		}
	if (r->n == SENDLOG_REASONS) {
		r->other++;
		return 0;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 4, bytes;
		if (size_mul(cap, sizeof *r->v, &bytes) < 0)
			return -1;
		struct sendlog_reason *v = realloc(r->v, bytes);
		if (!v)
			return -1;
		r->v = v;
		r->cap = cap;
	}
	char *copy = strdup(text);
	if (!copy)
		return -1;
	r->v[r->n++] = (struct sendlog_reason){copy, 1};
	return 0;
}

const struct sendlog_reason *sendlog_top(const struct sendlog_reasons *r)
{
	const struct sendlog_reason *best = NULL;

	for (size_t i = 0; i < r->n; i++)
		if (!best || r->v[i].count > best->count ||
		    (r->v[i].count == best->count &&
		     strcmp(r->v[i].text, best->text) < 0))
			best = &r->v[i];
	return best;
}

/* --- deliveries --- */

static void delivery_drop(struct sendlog *sl, struct node *x)
{
	struct delivery *d = x->val;

	table_unlink(&sl->dels, x);
	free(x);
	d->m->refs--;
	msg_release(sl, d->m);
	free(d);
}

/* qmail-send stopped: whatever it had in flight will never report. */
static void run_ended(struct sendlog *sl, const struct line *l)
{
	for (size_t i = 0; i < sl->dels.nb; i++)
		while (sl->dels.b[i])
			delivery_drop(sl, sl->dels.b[i]);
	sl->last_start = 0;
	if (l->counts)
		sl->t.restarts++;
}

static int on_start(struct sendlog *sl, struct line *l)
{
	unsigned long num, id;
	char chan;

	if (!eat_num(l, &num) || !eat(l, ": msg ") || !eat_num(l, &id) ||
	    !eat(l, " to "))
		return 1;
	if (eat(l, "local "))
		chan = 'l';
	else if (eat(l, "remote "))
		chan = 'r';
	else
		return 1;
	/* Numbers only grow within a run: a smaller one is a new run. */
	if (num <= sl->last_start)
		run_ended(sl, l);
	sl->last_start = num;
	struct node *old = table_find(&sl->dels, &num, sizeof num);
	if (old)
		delivery_drop(sl, old);

	struct msg *m = msg_find(sl, id);
	if (!m)
		m = msg_new(sl, id, NO_TIME); /* born before the log began */
	if (!m)
		return -1;
	int fresh;
	struct node *rcpt = msg_mark(sl, m, chan, l->p, l->n, &fresh);
	struct sendlog_stats *dom = rcpt ? domain_get(sl, l->p, l->n) : NULL;
	struct delivery *d = dom ? calloc(1, sizeof *d) : NULL;
	struct node *x = d ? table_add(&sl->dels, &num, sizeof num) : NULL;
	if (!x) {
		free(d);
		msg_release(sl, m);
		return -1;
	}
	*d = (struct delivery){m, rcpt, dom};
	x->val = d;
	m->refs++;
	return 0;
}

/* The recipient enters the statistics with its first result in the
 * window, and its message with its first recipient there. */
static int count_rcpt(struct sendlog *sl, struct delivery *d)
{
	int fresh;

	if (d->rcpt->flags & COUNTED)
		return 0;
	struct node *x =
	    msg_mark(sl, d->m, 'd', d->dom->name, strlen(d->dom->name), &fresh);
	if (!x)
		return -1;
	d->rcpt->flags |= COUNTED;
	d->dom->rcpts++;
	sl->t.all.rcpts++;
	if (fresh)
		d->dom->msgs++;
	if (!d->m->counted) {
		d->m->counted = 1;
		sl->t.all.msgs++;
	}
	return 0;
}

static void add_delay(struct sendlog_stats *s, uint64_t ms)
{
	s->delays++;
	s->delay_sum =
	    s->delay_sum > UINT64_MAX - ms ? UINT64_MAX : s->delay_sum + ms;
	if (ms > s->delay_max)
		s->delay_max = ms;
}

static int record(struct sendlog *sl, struct delivery *d, char kind,
		  const struct line *l)
{
	char text[SENDLOG_REASON_LEN + 1];
	struct sendlog_stats *s[2] = {d->dom, &sl->t.all};

	if (kind != 'Z' && (d->rcpt->flags & DONE))
		return 0; /* done before: a repeat after a crash */
	if (kind != 'Z')
		d->rcpt->flags |= DONE;
	if (!l->counts)
		return 0;
	if (count_rcpt(sl, d) < 0)
		return -1;
	if (kind != 'K' && reason_text(l->p, l->n, text) == 0)
		strcpy(text, "(no text)");
	for (int i = 0; i < 2; i++) {
		if (kind == 'K') {
			s[i]->delivered++;
			if (l->when != NO_TIME && d->m->born != NO_TIME &&
			    l->when >= d->m->born)
				add_delay(s[i],
					  (uint64_t)(l->when - d->m->born));
		} else if (kind == 'D') {
			s[i]->failures++;
			if (reason_add(&s[i]->failed, text) < 0)
				return -1;
		} else {
			s[i]->deferrals++;
			if (reason_add(&s[i]->deferred, text) < 0)
				return -1;
		}
	}
	return 0;
}

static int on_result(struct sendlog *sl, struct line *l)
{
	unsigned long num;
	char kind;

	if (!eat_num(l, &num) || !eat(l, ": "))
		return 1;
	if (eat(l, "success:"))
		kind = 'K';
	else if (eat(l, "failure:"))
		kind = 'D';
	else if (eat(l, "deferral:"))
		kind = 'Z';
	else
		return 1;
	eat(l, " ");
	struct node *x = table_find(&sl->dels, &num, sizeof num);
	if (!x) {
		if (l->counts)
			sl->t.unmatched++;
		return 0;
	}
	int r = record(sl, x->val, kind, l);
	delivery_drop(sl, x);
	return r;
}

/* --- messages --- */

static int on_new(struct sendlog *sl, struct line *l)
{
	unsigned long id;

	if (!eat_num(l, &id) || l->n)
		return 1;
	struct msg *old = msg_find(sl, id);
	if (old)
		msg_end(sl, old); /* its "end msg" is missing: a crash */
	if (!msg_new(sl, id, l->when))
		return -1;
	if (l->counts)
		sl->t.messages++;
	return 0;
}

static int on_info(struct sendlog *sl, struct line *l)
{
	unsigned long id, bytes;

	if (!eat_num(l, &id) || !eat(l, ": bytes ") || !eat_num(l, &bytes) ||
	    !eat(l, " from <"))
		return 1;
	if (l->counts)
		sl->t.bytes = sl->t.bytes > UINT64_MAX - bytes
				  ? UINT64_MAX
				  : sl->t.bytes + bytes;
	return 0;
}

static int on_end(struct sendlog *sl, struct line *l)
{
	unsigned long id;

	if (!eat_num(l, &id) || l->n)
		return 1;
	struct msg *m = msg_find(sl, id);
	if (m)
		msg_end(sl, m);
	return 0;
}

/* --- warnings --- */

/* "warning: text", "alert: text", or a program's own diagnostic
 * "prog: warning: text" / "prog: fatal: text". */
static int on_alert(struct sendlog *sl, const struct line *l)
{
	struct line c = *l;
	int fatal = 0;

	if (!eat(&c, "warning: ") && !eat(&c, "alert: ")) {
		size_t i = 0;
		while (i < c.n && i < 64 && c.p[i] != ':' && c.p[i] != ' ')
			i++;
		if (i == 0 || i >= c.n || c.p[i] != ':')
			return 1;
		c.p += i;
		c.n -= i;
		if (eat(&c, ": fatal: "))
			fatal = 1;
		else if (!eat(&c, ": warning: "))
			return 1;
	}
	if (!l->counts)
		return 0;
	if (fatal)
		sl->t.fatals++;
	else
		sl->t.warnings++;
	size_t n = l->n < SENDLOG_REASON_LEN ? l->n : SENDLOG_REASON_LEN;
	memcpy(sl->t.last_warning, l->p, n);
	sl->t.last_warning[n] = 0;
	return 0;
}

/* --- lines --- */

/* 0 handled, 1 not a qmail-send line, -1 out of memory. */
static int dispatch(struct sendlog *sl, struct line *l)
{
	if (eat(l, "new msg "))
		return on_new(sl, l);
	if (eat(l, "info msg "))
		return on_info(sl, l);
	if (eat(l, "starting delivery "))
		return on_start(sl, l);
	if (eat(l, "delivery "))
		return on_result(sl, l);
	if (eat(l, "end msg "))
		return on_end(sl, l);
	if (eat(l, "bounce msg ")) {
		unsigned long id;
		if (!eat_num(l, &id))
			return 1;
		sl->t.bounces += l->counts;
		return 0;
	}
	if (eat(l, "triple bounce: discarding ") ||
	    eat(l, "double bounce: discarding ")) {
		sl->t.discarded += l->counts;
		return 0;
	}
	if (eat(l, "status: exiting") && l->n == 0) {
		run_ended(sl, l);
		return 0;
	}
	if (eat(l, "status: "))
		return 0;
	return on_alert(sl, l);
}

int sendlog_line(struct sendlog *sl, const char *text, size_t len)
{
	struct line l = {text, len, NO_TIME, 1};
	int64_t ms;
	size_t skip = sendlog_stamp(text, len, &ms);

	sl->t.lines++;
	if (skip) {
		l.p += skip;
		l.n -= skip;
		l.when = ms;
		l.counts = sl->since == SENDLOG_ALL || ms >= sl->since;
		sl->t.stamped = 1;
		if (l.counts) {
			if (!sl->ranged || ms < sl->t.first)
				sl->t.first = ms;
			if (!sl->ranged || ms > sl->t.last)
				sl->t.last = ms;
			sl->ranged = 1;
		}
	}
	int r = dispatch(sl, &l);
	if (r > 0)
		sl->t.unparsed++;
	return r < 0 ? -1 : 0;
}

/* --- results --- */

struct sendlog *sendlog_new(int64_t since)
{
	struct sendlog *sl = calloc(1, sizeof *sl);

	if (!sl)
		return NULL;
	sl->since = since;
	sl->t.all.name = strdup("");
	if (!sl->t.all.name) {
		free(sl);
		return NULL;
	}
	return sl;
}

const struct sendlog_totals *sendlog_totals(const struct sendlog *sl)
{
	return &sl->t;
}

size_t sendlog_in_progress(const struct sendlog *sl)
{
	return sl->dels.count;
}

static int by_rcpts(const void *a, const void *b)
{
	const struct sendlog_stats *x = *(const struct sendlog_stats *const *)a;
	const struct sendlog_stats *y = *(const struct sendlog_stats *const *)b;

	if (x->rcpts != y->rcpts)
		return x->rcpts > y->rcpts ? -1 : 1;
	return strcmp(x->name, y->name);
}

int sendlog_domains(struct sendlog *sl, const struct sendlog_stats ***out,
		    size_t *n)
{
	size_t k = 0;

	if (sl->sorted_cap < sl->doms.count) {
		size_t bytes;
		if (size_mul(sl->doms.count, sizeof *sl->sorted, &bytes) < 0)
			return -1;
		const struct sendlog_stats **v = realloc(sl->sorted, bytes);
		if (!v)
			return -1;
		sl->sorted = v;
		sl->sorted_cap = sl->doms.count;
	}
	for (size_t i = 0; i < sl->doms.nb; i++)
		for (struct node *x = sl->doms.b[i]; x; x = x->next) {
			const struct sendlog_stats *d = x->val;
			if (d->rcpts)
				sl->sorted[k++] = d;
		}
	if (k)
		qsort(sl->sorted, k, sizeof *sl->sorted, by_rcpts);
	*out = sl->sorted;
	*n = k;
	return 0;
}

static void reasons_free(struct sendlog_reasons *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].text);
	free(r->v);
}

static void stats_free(struct sendlog_stats *s)
{
	reasons_free(&s->failed);
	reasons_free(&s->deferred);
	free(s->name);
}

void sendlog_free(struct sendlog *sl)
{
	if (!sl)
		return;
	struct line none = {"", 0, NO_TIME, 0};
	run_ended(sl, &none);
	for (size_t i = 0; i < sl->msgs.nb; i++)
		while (sl->msgs.b[i])
			msg_end(sl, ((struct node *)sl->msgs.b[i])->val);
	for (size_t i = 0; i < sl->doms.nb; i++)
		for (struct node *x = sl->doms.b[i], *next; x; x = next) {
			next = x->next;
			stats_free(x->val);
			free(x->val);
			free(x);
		}
	stats_free(&sl->t.all);
	free(sl->msgs.b);
	free(sl->dels.b);
	free(sl->doms.b);
	free(sl->marks.b);
	free(sl->sorted);
	str_free(&sl->key);
	free(sl);
}
