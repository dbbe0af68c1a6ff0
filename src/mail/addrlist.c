/*
 * addrlist.c: parsing address lists (RFC 5322 with the obsolete forms).
 *
 * Two steps: a lexer turns the text into tokens (atoms, quoted strings,
 * domain literals, specials), dropping blanks, folding and comments;
 * a recursive-descent parser then finds the addresses. Every position
 * it records points into the caller's text. It must never read past the
 * given length, never accept a NUL byte, and never leave a partial
 * result behind after a syntax error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/checked.h"
#include "mail/addrlist.h"

enum tok_kind { TK_ATOM, TK_QUOTED, TK_LITERAL, TK_SPECIAL };

struct tok {
	enum tok_kind kind;
	char c; /* for TK_SPECIAL */
	size_t start, end;
};

struct parser {
	const char *p;
	size_t n;
	struct tok *t;
	size_t nt, cap;
	size_t i; /* next token */
	struct addrlist *al;
	int in_group;
};

static int syntax_error(void)
{
	errno = EINVAL;
	return -1;
}

static int is_atext(unsigned char c)
{
	static const char extra[] = "!#$%&'*+-/=?^_`{|}~";

	if (c >= 128)
		return 1; /* UTF-8 (RFC 6532) */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != 0 && memchr(extra, c, sizeof extra - 1) != NULL;
}

static int is_special(unsigned char c)
{
	static const char specials[] = "<>:;@,.";
	return c != 0 && memchr(specials, c, sizeof specials - 1) != NULL;
}

/* --- lexer --- */

static int push_token(struct parser *ps, enum tok_kind kind, size_t start,
		      size_t end)
{
	if (ps->nt == ps->cap) {
		size_t cap = ps->cap ? ps->cap : 32, bytes;
		struct tok *t;
		if (ps->cap && size_mul(ps->cap, 2, &cap) < 0)
			return -1;
		if (size_mul(cap, sizeof *t, &bytes) < 0)
			return -1;
		t = realloc(ps->t, bytes);
		if (!t) {
			errno = ENOMEM;
			return -1;
		}
		ps->t = t;
		ps->cap = cap;
	}
	ps->t[ps->nt].kind = kind;
	ps->t[ps->nt].c = ps->p[start];
	ps->t[ps->nt].start = start;
	ps->t[ps->nt].end = end;
	ps->nt++;
	return 0;
}

/* Skips a comment starting at *i (which holds '('); comments nest. */
static int skip_comment(const char *p, size_t n, size_t *i)
{
	size_t depth = 0, k = *i;

	while (k < n) {
		char c = p[k];
		if (c == '\0')
			return syntax_error();
		if (c == '\\') {
			if (k + 1 >= n || p[k + 1] == '\0')
				return syntax_error();
			k += 2;
			continue;
		}
		k++;
		if (c == '(') {
			depth++;
		} else if (c == ')' && --depth == 0) {
			*i = k;
			return 0;
		}
	}
	return syntax_error();
}

/* A byte a backslash may not quote: a quoted NUL would cut the address,
 * a quoted CR or LF would survive into the envelope form (only bare
 * ones are folding, and dropped) and from there into a header line. */
static int unquotable(char c)
{
	return c == '\0' || c == '\r' || c == '\n';
}

/* Skips a quoted string or domain literal starting at *i, which holds
 * the opening character. */
static int skip_delimited(const char *p, size_t n, size_t *i, char close)
{
	size_t k = *i + 1;

	while (k < n) {
		char c = p[k];
		if (c == '\0' || (close == ']' && c == '['))
			return syntax_error();
		if (c == '\\') {
			if (k + 1 >= n || unquotable(p[k + 1]))
				return syntax_error();
			k += 2;
			continue;
		}
		k++;
		if (c == close) {
			*i = k;
			return 0;
		}
	}
	return syntax_error();
}

static int lex(struct parser *ps)
{
	size_t i = 0, start;

	while (i < ps->n) {
		unsigned char c = (unsigned char)ps->p[i];
		start = i;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++;
			continue;
		}
		if (c == '(') {
			if (skip_comment(ps->p, ps->n, &i) < 0)
				return -1;
			continue;
		}
		if (c == '"' || c == '[') {
			if (skip_delimited(ps->p, ps->n, &i,
					   c == '"' ? '"' : ']') < 0)
				return -1;
			if (push_token(ps, c == '"' ? TK_QUOTED : TK_LITERAL,
				       start, i) < 0)
				return -1;
			continue;
		}
		if (is_special(c)) {
			i++;
			if (push_token(ps, TK_SPECIAL, start, i) < 0)
				return -1;
			continue;
		}
		if (!is_atext(c))
			return syntax_error();
		while (i < ps->n && is_atext((unsigned char)ps->p[i]))
			i++;
		if (push_token(ps, TK_ATOM, start, i) < 0)
			return -1;
	}
	return 0;
}

/* --- parser --- */

static int at_special(const struct parser *ps, char c)
{
	return ps->i < ps->nt && ps->t[ps->i].kind == TK_SPECIAL &&
	       ps->t[ps->i].c == c;
}

static int at_word(const struct parser *ps, size_t i)
{
	return i < ps->nt &&
	       (ps->t[i].kind == TK_ATOM || ps->t[i].kind == TK_QUOTED);
}

/* Appends a token's text to canon: quoted strings lose their quotes and
 * escapes; line ends (folding) are dropped everywhere. */
static int append_canon(struct parser *ps, const struct tok *t)
{
	struct str *c = &ps->al->canon;
	size_t k = t->start, end = t->end;

	if (t->kind == TK_QUOTED) {
		k++;
		end--;
	}
	for (; k < end; k++) {
		char ch = ps->p[k];
		if (ch == '\r' || ch == '\n')
			continue;
		if (t->kind == TK_QUOTED && ch == '\\')
			ch = ps->p[++k];
		if (str_appendc(c, ch) < 0)
			return -1;
	}
	return 0;
}

static int parse_local(struct parser *ps, struct addr *a)
{
	size_t first = ps->i;
	int last_was_word = 0, words = 0;

	a->local = ps->al->canon.len;
	while (ps->i < ps->nt) {
		const struct tok *t = &ps->t[ps->i];
		if (at_word(ps, ps->i)) {
			if (last_was_word)
				return syntax_error(); /* "joe smith" */
			last_was_word = 1;
			words++;
		} else if (at_special(ps, '.')) {
			last_was_word = 0;
		} else {
			break;
		}
		if (append_canon(ps, t) < 0)
			return -1;
		ps->i++;
	}
	if (words == 0)
		return syntax_error();
	a->locallen = ps->al->canon.len - a->local;
	a->local_start = ps->t[first].start;
	a->local_end = ps->t[ps->i - 1].end;
	return str_append0(&ps->al->canon);
}

/* A domain: a literal, or atoms separated by dots (a trailing dot is
 * allowed, for the rewriting rule that removes it), or nothing. */
static int parse_domain(struct parser *ps, size_t *start, size_t *end,
			int record)
{
	size_t first = ps->i;
	int want_atom = 1;

	if (ps->i < ps->nt && ps->t[ps->i].kind == TK_LITERAL) {
		want_atom = 0;
		if (record && append_canon(ps, &ps->t[ps->i]) < 0)
			return -1;
		ps->i++;
	} else {
		while (ps->i < ps->nt) {
			const struct tok *t = &ps->t[ps->i];
			if (t->kind == TK_ATOM && want_atom)
				want_atom = 0;
			else if (at_special(ps, '.') && !want_atom)
				want_atom = 1;
			else
				break;
			if (record && append_canon(ps, t) < 0)
				return -1;
			ps->i++;
		}
	}
	if (ps->i == first) {
		*start = *end = ps->t[first - 1].end; /* just past the '@' */
	} else {
		*start = ps->t[first].start;
		*end = ps->t[ps->i - 1].end;
	}
	return 0;
}

static int parse_addr_spec(struct parser *ps, struct addr *a)
{
	if (parse_local(ps, a) < 0)
		return -1;
	a->host = ps->al->canon.len;
	if (at_special(ps, '@')) {
		ps->i++;
		a->has_at = 1;
		if (parse_domain(ps, &a->host_start, &a->host_end, 1) < 0)
			return -1;
	} else {
		a->host_start = a->host_end = a->local_end;
	}
	a->hostlen = ps->al->canon.len - a->host;
	return str_append0(&ps->al->canon);
}

/* An obsolete source route, "@a,@b:", which the envelope drops. */
static int skip_route(struct parser *ps)
{
	size_t start, end;

	while (at_special(ps, '@') || at_special(ps, ',')) {
		if (at_special(ps, ',')) {
			ps->i++;
			continue;
		}
		ps->i++;
		if (parse_domain(ps, &start, &end, 0) < 0)
			return -1;
		if (start == end)
			return syntax_error();
	}
	if (!at_special(ps, ':'))
		return syntax_error();
	ps->i++;
	return 0;
}

static int parse_angle(struct parser *ps, struct addr *a)
{
	ps->i++; /* '<' */
	a->angle = 1;
	if (at_special(ps, '>')) {
		ps->i++;
		a->null = 1;
		return 0;
	}
	if (at_special(ps, '@') && skip_route(ps) < 0)
		return -1;
	if (parse_addr_spec(ps, a) < 0)
		return -1;
	if (!at_special(ps, '>'))
		return syntax_error();
	ps->i++;
	return 0;
}

static int push_addr(struct addrlist *al, const struct addr *a)
{
	if (al->n == al->cap) {
		size_t cap = al->cap ? al->cap : 8, bytes;
		struct addr *na;
		if (al->cap && size_mul(al->cap, 2, &cap) < 0)
			return -1;
		if (size_mul(cap, sizeof *na, &bytes) < 0)
			return -1;
		na = realloc(al->a, bytes);
		if (!na) {
			errno = ENOMEM;
			return -1;
		}
		al->a = na;
		al->cap = cap;
	}
	al->a[al->n++] = *a;
	return 0;
}

static int parse_group(struct parser *ps);

/* One mailbox, or (when allowed) a group. */
static int parse_address(struct parser *ps, int group_allowed)
{
	struct addr a;
	size_t j = ps->i;

	memset(&a, 0, sizeof a);
	a.in_group = ps->in_group;
	while (at_word(ps, j) ||
	       (j < ps->nt && ps->t[j].kind == TK_SPECIAL && ps->t[j].c == '.'))
		j++;
	if (j < ps->nt && ps->t[j].kind == TK_SPECIAL && ps->t[j].c == ':' &&
	    j > ps->i) {
		if (!group_allowed)
			return syntax_error();
		ps->i = j + 1;
		return parse_group(ps);
	}
	if (j < ps->nt && ps->t[j].kind == TK_SPECIAL && ps->t[j].c == '<') {
		ps->i = j;
		if (parse_angle(ps, &a) < 0)
			return -1;
	} else if (parse_addr_spec(ps, &a) < 0) {
		return -1;
	}
	return push_addr(ps->al, &a);
}

/* After "name:", members up to ';'. A missing ';' at the very end is
 * forgiven: it is a common slip and loses nothing. */
static int parse_group(struct parser *ps)
{
	ps->in_group = 1;
	while (ps->i < ps->nt && !at_special(ps, ';')) {
		if (at_special(ps, ',')) {
			ps->i++;
			continue;
		}
		if (parse_address(ps, 0) < 0)
			return -1;
		if (ps->i < ps->nt && !at_special(ps, ',') &&
		    !at_special(ps, ';'))
			return syntax_error();
	}
	if (at_special(ps, ';'))
		ps->i++;
	ps->in_group = 0;
	return 0;
}

static int parse_list(struct parser *ps)
{
	while (ps->i < ps->nt) {
		if (at_special(ps, ',')) {
			ps->i++;
			continue;
		}
		if (parse_address(ps, 1) < 0)
			return -1;
		if (ps->i < ps->nt && !at_special(ps, ','))
			return syntax_error();
	}
	return 0;
}

void addrlist_init(struct addrlist *al)
{
	memset(al, 0, sizeof *al);
}

void addrlist_free(struct addrlist *al)
{
	free(al->a);
	str_free(&al->canon);
	addrlist_init(al);
}

int addrlist_parse(struct addrlist *al, const char *p, size_t n)
{
	struct parser ps;
	int r, saved;

	memset(&ps, 0, sizeof ps);
	ps.p = p;
	ps.n = n;
	ps.al = al;
	al->n = 0;
	str_clear(&al->canon);
	r = lex(&ps);
	if (r == 0)
		r = parse_list(&ps);
	saved = errno;
	free(ps.t);
	if (r < 0) {
		al->n = 0;
		str_clear(&al->canon);
		errno = saved;
	}
	return r;
}

const char *addr_local(const struct addrlist *al, size_t i, size_t *len)
{
	*len = al->a[i].locallen;
	return al->a[i].null ? "" : al->canon.s + al->a[i].local;
}

const char *addr_host(const struct addrlist *al, size_t i, size_t *len)
{
	*len = al->a[i].hostlen;
	return al->a[i].null ? "" : al->canon.s + al->a[i].host;
}

/* --- formatting --- */

int addr_is_dot_atom(const char *s, size_t n)
{
	int after_dot = 1;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (after_dot)
				return 0;
			after_dot = 1;
		} else if (is_atext((unsigned char)s[i])) {
			after_dot = 0;
		} else {
			return 0;
		}
	}
	return !after_dot;
}

/* Header text cannot carry a CR, a LF or a NUL inside a quoted string
 * or a comment: they become spaces. */
static int append_escaped(struct str *out, char open, const char *s, size_t n,
			  const char *escape, char close)
{
	if (str_appendc(out, open) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i] == '\r' || s[i] == '\n' || s[i] == 0 ? ' ' : s[i];
		if (strchr(escape, c) && str_appendc(out, '\\') < 0)
			return -1;
		if (str_appendc(out, c) < 0)
			return -1;
	}
	return str_appendc(out, close);
}

int addr_append(struct str *out, const char *local, size_t llen,
		const char *host, size_t hlen)
{
	int r;

	if (addr_is_dot_atom(local, llen))
		r = str_append(out, local, llen);
	else
		r = append_escaped(out, '"', local, llen, "\"\\", '"');
	if (r < 0)
		return -1;
	if (hlen == 0)
		return 0;
	if (str_appendc(out, '@') < 0)
		return -1;
	return str_append(out, host, hlen);
}

/* Atoms separated by single spaces need no quotes. */
static int is_plain_phrase(const char *s, size_t n)
{
	int after_space = 1;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			if (after_space)
				return 0;
			after_space = 1;
		} else if (is_atext((unsigned char)s[i])) {
			after_space = 0;
		} else {
			return 0;
		}
	}
	return !after_space;
}

int addr_append_phrase(struct str *out, const char *name, size_t n)
{
	if (is_plain_phrase(name, n))
		return str_append(out, name, n);
	return append_escaped(out, '"', name, n, "\"\\", '"');
}

int addr_append_comment(struct str *out, const char *text, size_t n)
{
	return append_escaped(out, '(', text, n, "()\\", ')');
}
