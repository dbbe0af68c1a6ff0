/*
 * inject.c: the header-fixing engine of qmail-inject and qmail-ofmipd.
 *
 * One pass over the fields decides, for each, whether it is kept as it
 * came, rewritten (qualified addresses, a normalised date) or deleted,
 * and collects what the envelope needs; the missing fields are then
 * added at the end of the header. Fields nobody changes keep every
 * byte, folding and line ends included. It must never print, never
 * read the body, and never let a header recipient that it could not
 * parse disappear silently.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "lib/ctl.h"
#include "lib/date822.h"
#include "lib/env.h"
#include "mail/addrlist.h"
#include "mail/inject.h"

/* --- settings --- */

static int setting(struct str *out, const char *var, const char *path,
		   const struct str *me, const char *literal,
		   struct str *failed)
{
	const char *v = env_get(var);
	int r;

	if (v && *v)
		return str_copys(out, v);
	r = ctl_line(path, out, NULL);
	if (r < 0) {
		str_copys(failed, path);
		return -1;
	}
	if (r > 0 && out->len > 0)
		return 0;
	return str_copys(out, me->len ? me->s : literal);
}

int inject_settings_load(struct inject_settings *s)
{
	struct str me = STR_INIT, bad = STR_INIT;
	int r = -1, saved;

	memset(s, 0, sizeof *s);
	if (ctl_line("control/me", &me, NULL) < 0) {
		str_copys(&s->failed, "control/me");
		goto done;
	}
	if (setting(&s->defaultdomain, "QMAILDEFAULTDOMAIN",
		    "control/defaultdomain", &me, "defaultdomain",
		    &s->failed) < 0 ||
	    setting(&s->defaulthost, "QMAILDEFAULTHOST", "control/defaulthost",
		    &me, "defaulthost", &s->failed) < 0 ||
	    setting(&s->plusdomain, "QMAILPLUSDOMAIN", "control/plusdomain",
		    &me, "plusdomain", &s->failed) < 0 ||
	    setting(&s->idhost, "QMAILIDHOST", "control/idhost", &me, "idhost",
		    &s->failed) < 0)
		goto done;
	r = rewrite_load(&s->rw, "control/rewrite", &bad);
	if (r < 0) {
		saved = errno;
		str_copys(&s->failed, "control/rewrite");
		if (saved == EINVAL && bad.len) {
			str_appends(&s->failed, ": ");
			str_append(&s->failed, bad.s, bad.len);
		}
		errno = saved;
		goto done;
	}
	s->rewrite_file = r;
	if (r == 0)
		r = rewrite_defaults(&s->rw, s->defaulthost.s, s->plusdomain.s,
				     s->defaultdomain.s);
	else
		r = 0;
done:
	saved = errno;
	str_free(&me);
	str_free(&bad);
	errno = saved;
	return r < 0 ? -1 : 0;
}

void inject_settings_free(struct inject_settings *s)
{
	str_free(&s->defaultdomain);
	str_free(&s->defaulthost);
	str_free(&s->plusdomain);
	str_free(&s->idhost);
	str_free(&s->failed);
	rewrite_free(&s->rw);
}

/* --- what each field is --- */

enum role {
	ROLE_TO = 1,
	ROLE_CC = 2,
	ROLE_BCC = 4,
	ROLE_APPARENTLY = 8,
	ROLE_FROM = 16,
	ROLE_DATE = 32,
	ROLE_MSGID = 64,
	ROLE_RETURN_PATH = 128,
	ROLE_MFT = 256,
};

enum { FK_ADDR = 1, FK_DROP = 2, FK_RESENT = 4 };

struct field_kind {
	const char *name;
	unsigned flags;
	unsigned role;
};

static const struct field_kind kinds[] = {
    {"To", FK_ADDR, ROLE_TO},
    {"Cc", FK_ADDR, ROLE_CC},
    {"Bcc", FK_ADDR | FK_DROP, ROLE_BCC},
    {"Apparently-To", FK_ADDR | FK_DROP, ROLE_APPARENTLY},
    {"From", FK_ADDR, ROLE_FROM},
    {"Sender", FK_ADDR, 0},
    {"Reply-To", FK_ADDR, 0},
    {"Mail-Reply-To", FK_ADDR, 0},
    {"Mail-Followup-To", FK_ADDR, ROLE_MFT},
    {"Errors-To", FK_ADDR, 0},
    {"Return-Receipt-To", FK_ADDR, 0},
    {"Resent-To", FK_ADDR | FK_RESENT, ROLE_TO},
    {"Resent-Cc", FK_ADDR | FK_RESENT, ROLE_CC},
    {"Resent-Bcc", FK_ADDR | FK_DROP | FK_RESENT, ROLE_BCC},
    {"Resent-From", FK_ADDR | FK_RESENT, ROLE_FROM},
    {"Resent-Sender", FK_ADDR | FK_RESENT, 0},
    {"Resent-Reply-To", FK_ADDR | FK_RESENT, 0},
    {"Date", 0, ROLE_DATE},
    {"Resent-Date", FK_RESENT, ROLE_DATE},
    {"Message-ID", 0, ROLE_MSGID},
    {"Resent-Message-ID", FK_RESENT, ROLE_MSGID},
    {"Return-Path", FK_DROP, ROLE_RETURN_PATH},
    {"Content-Length", FK_DROP, 0},
};

static const struct field_kind *kind_of(const struct header *h, size_t i)
{
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
		if (header_is(h, i, kinds[k].name))
			return &kinds[k];
	return NULL;
}

static int is_resent_message(const struct header *h)
{
	size_t len;

	for (size_t i = 0; i < h->nfields; i++) {
		const char *name = header_name(h, i, &len);
		if (len >= 7 && strncasecmp(name, "Resent-", 7) == 0)
			return 1;
	}
	return 0;
}

/* --- the fixer --- */

struct fixer {
	const struct header *h;
	const struct inject_opts *o;
	struct inject_out *out;
	const char *eol;
	int resent;
	int want_header_rcpts;
	unsigned seen[2]; /* roles seen, [1] for Resent- fields */
	struct addrlist al;
	struct str host;	 /* scratch: a rewritten host */
	struct str addr;	 /* scratch: an envelope address */
	struct str header_rcpts; /* recipients found in the header */
	size_t n_header_rcpts;
	struct str mft_value; /* To and Cc addresses, ", " between */
	int mft_match;	      /* one of them is a listed mailing list */
	struct str return_path;
	int have_return_path;
};

static int fail_with(struct fixer *f, int err, const char *what, const char *p,
		     size_t n)
{
	str_copys(&f->out->error, what);
	if (p) {
		/* Enough to recognise it, not a megabyte of it. */
		str_append(&f->out->error, p, n > 80 ? 80 : n);
		if (n > 80)
			str_appends(&f->out->error, "...");
	}
	errno = err;
	return -1;
}

static int put_eol_if_missing(struct fixer *f)
{
	struct str *o = &f->out->header;

	if (o->len && o->s[o->len - 1] == '\n')
		return 0;
	return str_appends(o, f->eol);
}

static int put_raw(struct fixer *f, size_t i)
{
	const struct header_field *fld = &f->h->field[i];

	if (str_append(&f->out->header, f->h->text.s + fld->off, fld->len) < 0)
		return -1;
	return put_eol_if_missing(f);
}

/* local@host, the way an envelope holds it. */
static int envelope_form(struct str *out, const char *local, size_t llen,
			 const char *host, size_t hlen)
{
	if (str_copy(out, local, llen) < 0)
		return -1;
	if (hlen == 0)
		return 0;
	if (str_appendc(out, '@') < 0)
		return -1;
	return str_append(out, host, hlen);
}

static int note_mft(struct fixer *f, const char *local, size_t llen)
{
	const char *entry;
	size_t pos = 0;

	if (f->mft_value.len && str_appends(&f->mft_value, ", ") < 0)
		return -1;
	if (addr_append(&f->mft_value, local, llen, f->host.s, f->host.len) < 0)
		return -1;
	while ((entry = ctl_next(f->o->mft, &pos)) != NULL)
		if (strlen(entry) == f->addr.len &&
		    strncasecmp(entry, f->addr.s, f->addr.len) == 0)
			f->mft_match = 1;
	return 0;
}

/* Copies value from *done up to address a, then the new host (in
 * f->host) where a's host was written. */
static int emit_new_host(struct fixer *f, const char *value,
			 const struct addr *a, size_t *done)
{
	struct str *o = &f->out->header;
	size_t cut = a->has_at ? a->host_start : a->local_end;

	if (str_append(o, value + *done, cut - *done) < 0)
		return -1;
	if (!a->has_at && f->host.len && str_appendc(o, '@') < 0)
		return -1;
	if (str_append(o, f->host.s, f->host.len) < 0)
		return -1;
	*done = a->host_end;
	return 0;
}

/* Notes the qualified address (host in f->host) as a recipient and/or
 * for Mail-Followup-To. */
static int note_address(struct fixer *f, const char *local, size_t llen,
			int collect, int mft)
{
	if (envelope_form(&f->addr, local, llen, f->host.s, f->host.len) < 0)
		return -1;
	if (collect) {
		if (str_append(&f->header_rcpts, f->addr.s, f->addr.len) < 0 ||
		    str_append0(&f->header_rcpts) < 0)
			return -1;
		f->n_header_rcpts++;
	}
	return mft ? note_mft(f, local, llen) : 0;
}

/* Qualifies every address of field i. With emit, the field goes into
 * the header with each changed host replaced in place; with collect,
 * the addresses are header recipients; with mft, they are noted for
 * Mail-Followup-To. */
static int qualify_field(struct fixer *f, size_t i, int emit, int collect,
			 int mft)
{
	const struct header_field *fld = &f->h->field[i];
	size_t vlen, done = 0, llen, hlen, nlen;
	const char *value = header_value(f->h, i, &vlen);
	struct str *o = &f->out->header;

	if (addrlist_parse(&f->al, value, vlen) < 0) {
		if (errno != EINVAL)
			return -1;
		if (collect)
			return fail_with(f, EINVAL,
					 "unable to parse the addresses in "
					 "the header field ",
					 header_name(f->h, i, &nlen),
					 fld->namelen);
		return emit ? put_raw(f, i) : 0;
	}
	if (emit && str_append(o, f->h->text.s + fld->off, fld->valoff) < 0)
		return -1;
	for (size_t k = 0; k < f->al.n; k++) {
		const char *local = addr_local(&f->al, k, &llen);
		const char *host = addr_host(&f->al, k, &hlen);
		if (f->al.a[k].null)
			continue;
		if (rewrite_host(f->o->rw, host, hlen, &f->host) < 0)
			return -1;
		if (emit &&
		    (f->host.len != hlen || memcmp(f->host.s, host, hlen)) &&
		    emit_new_host(f, value, &f->al.a[k], &done) < 0)
			return -1;
		if ((collect || mft) &&
		    note_address(f, local, llen, collect, mft) < 0)
			return -1;
	}
	if (!emit)
		return 0;
	if (str_append(o, value + done, vlen - done) < 0)
		return -1;
	return put_eol_if_missing(f);
}

static int put_date(struct fixer *f, size_t i)
{
	size_t vlen, nlen;
	const char *value = header_value(f->h, i, &vlen);
	const char *name = header_name(f->h, i, &nlen);
	char date[DATE822_LEN];
	time_t t;
	struct str *o = &f->out->header;

	if (date822_parse(value, vlen, &t) < 0)
		return put_raw(f, i);
	date822_fmt(date, t);
	if (str_append(o, name, nlen) < 0 || str_appends(o, ": ") < 0 ||
	    str_appends(o, date) < 0 || str_appends(o, f->eol) < 0)
		return -1;
	return 0;
}

static int note_return_path(struct fixer *f, size_t i)
{
	size_t vlen, llen, hlen;
	const char *value = header_value(f->h, i, &vlen);

	if (f->have_return_path || (f->o->flags & INJECT_NO_RETURN_PATH))
		return 0;
	if (addrlist_parse(&f->al, value, vlen) < 0)
		return errno == EINVAL ? 0 : -1; /* unusable: ignored */
	if (f->al.n == 0)
		return 0;
	f->have_return_path = 1;
	str_clear(&f->return_path);
	if (f->al.a[0].null)
		return 0;
	const char *local = addr_local(&f->al, 0, &llen);
	const char *host = addr_host(&f->al, 0, &hlen);
	if (rewrite_host(f->o->rw, host, hlen, &f->host) < 0)
		return -1;
	return envelope_form(&f->return_path, local, llen, f->host.s,
			     f->host.len);
}

static int is_rcpt_source(const struct fixer *f, const struct field_kind *k)
{
	if (!f->want_header_rcpts)
		return 0;
	if (f->resent)
		return (k->flags & FK_RESENT) &&
		       (k->role & (ROLE_TO | ROLE_CC | ROLE_BCC));
	return !(k->flags & FK_RESENT) &&
	       (k->role & (ROLE_TO | ROLE_CC | ROLE_BCC | ROLE_APPARENTLY));
}

static int fix_field(struct fixer *f, size_t i)
{
	const struct field_kind *k = kind_of(f->h, i);
	int resent_field, collect, mft;

	if (!k)
		return put_raw(f, i);
	resent_field = (k->flags & FK_RESENT) != 0;
	collect = is_rcpt_source(f, k);
	mft = f->o->mft && !resent_field && (k->role & (ROLE_TO | ROLE_CC));
	if (resent_field == f->resent &&
	    (((k->role & ROLE_FROM) && (f->o->flags & INJECT_DELETE_FROM)) ||
	     ((k->role & ROLE_MSGID) && (f->o->flags & INJECT_DELETE_MSGID))))
		return 0; /* replaced by ours, as if never seen */
	f->seen[resent_field] |= k->role;
	if (k->role & ROLE_RETURN_PATH)
		return note_return_path(f, i);
	if (k->flags & FK_DROP)
		return collect ? qualify_field(f, i, 0, 1, 0) : 0;
	if (k->role & ROLE_DATE)
		return put_date(f, i);
	if (k->flags & FK_ADDR)
		return qualify_field(f, i, 1, collect, mft);
	return put_raw(f, i);
}

/* --- the fields we add --- */

static int put_field(struct fixer *f, const char *name, const char *value,
		     size_t len)
{
	struct str *o = &f->out->header;

	if ((f->resent && str_appends(o, "Resent-") < 0) ||
	    str_appends(o, name) < 0 || str_appends(o, ": ") < 0 ||
	    str_append(o, value, len) < 0 || str_appends(o, f->eol) < 0)
		return -1;
	return 0;
}

static int make_message_id(struct fixer *f, struct str *v)
{
	const struct inject_opts *o = f->o;

	if (str_copys(v, "<") < 0 ||
	    str_appendnum(v, (unsigned long long)o->now) < 0 ||
	    str_appendc(v, '.') < 0 || str_appendnum(v, o->pid) < 0 ||
	    str_appendc(v, '.') < 0 || str_appendnum(v, o->seq) < 0 ||
	    str_appendc(v, '@') < 0 || str_appends(v, o->idhost) < 0 ||
	    str_appendc(v, '>') < 0)
		return -1;
	return 0;
}

/* The From value: "name <addr>", "addr (name)" or just "addr". */
static int from_value(const struct inject_opts *o, const struct str *addr,
		      struct str *v)
{
	const char *name = o->name ? o->name : "";
	size_t n = strlen(name);

	if (n == 0)
		return str_copystr(v, addr);
	if (o->flags & INJECT_FROM_COMMENT) {
		if (str_copystr(v, addr) < 0 || str_appendc(v, ' ') < 0)
			return -1;
		return addr_append_comment(v, name, n);
	}
	str_clear(v);
	if (addr_append_phrase(v, name, n) < 0 || str_appends(v, " <") < 0 ||
	    str_append(v, addr->s, addr->len) < 0)
		return -1;
	return str_appendc(v, '>');
}

static int make_from(struct fixer *f, struct str *v)
{
	const struct inject_opts *o = f->o;

	str_clear(&f->addr);
	if (rewrite_host(o->rw, o->host, strlen(o->host), &f->host) < 0 ||
	    addr_append(&f->addr, o->user, strlen(o->user), f->host.s,
			f->host.len) < 0)
		return -1;
	return from_value(o, &f->addr, v);
}

/* Mail-Followup-To is never a Resent- field. */
static int put_mft(struct fixer *f)
{
	struct str *o = &f->out->header;

	if (str_appends(o, "Mail-Followup-To: ") < 0 ||
	    str_append(o, f->mft_value.s, f->mft_value.len) < 0)
		return -1;
	return str_appends(o, f->eol);
}

static int add_missing(struct fixer *f)
{
	unsigned seen = f->seen[f->resent];
	struct str v = STR_INIT;
	char date[DATE822_LEN];
	int r = -1;

	if (!(seen & ROLE_DATE) &&
	    put_field(f, "Date", date, date822_fmt(date, f->o->now)) < 0)
		goto done;
	if (!(seen & ROLE_MSGID) &&
	    (make_message_id(f, &v) < 0 ||
	     put_field(f, "Message-ID", v.s, v.len) < 0))
		goto done;
	if (!(seen & ROLE_FROM) &&
	    (make_from(f, &v) < 0 || put_field(f, "From", v.s, v.len) < 0))
		goto done;
	if (!(seen & (ROLE_TO | ROLE_CC)) &&
	    put_field(f, "Cc", "recipient list not shown: ;", 27) < 0)
		goto done;
	if (f->mft_match && !(f->seen[0] & ROLE_MFT) && put_mft(f) < 0)
		goto done;
	r = 0;
done:
	str_free(&v);
	return r;
}

/* --- the envelope --- */

int inject_envelope_address(const struct rewrite *rw, const char *s,
			    struct str *out)
{
	struct addrlist al;
	struct str host = STR_INIT;
	size_t n = strlen(s), llen, hlen;
	int r;

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	addrlist_init(&al);
	r = addrlist_parse(&al, s, n);
	if (r < 0 && errno != EINVAL)
		goto done;
	if (r < 0 || al.n != 1 || al.a[0].null) {
		r = str_copy(out, s, n); /* "" (null) or not one address */
		goto done;
	}
	const char *local = addr_local(&al, 0, &llen);
	const char *h = addr_host(&al, 0, &hlen);
	r = rewrite_host(rw, h, hlen, &host);
	if (r == 0)
		r = envelope_form(out, local, llen, host.s, host.len);
done:
	addrlist_free(&al);
	str_free(&host);
	return r;
}

/* Qualifies address k of f->al and appends it to the recipients. */
static int add_given(struct fixer *f, size_t k)
{
	struct inject_out *out = f->out;
	size_t llen, hlen;
	const char *local = addr_local(&f->al, k, &llen);
	const char *host = addr_host(&f->al, k, &hlen);

	if (rewrite_host(f->o->rw, host, hlen, &f->host) < 0 ||
	    envelope_form(&f->addr, local, llen, f->host.s, f->host.len) < 0 ||
	    str_append(&out->rcpts, f->addr.s, f->addr.len) < 0 ||
	    str_append0(&out->rcpts) < 0)
		return -1;
	out->nrcpts++;
	return 0;
}

static int given_rcpts(struct fixer *f)
{
	const struct inject_opts *o = f->o;

	for (size_t i = 0; i < o->nrcpts; i++) {
		const char *r = o->rcpts[i];
		if (addrlist_parse(&f->al, r, strlen(r)) < 0) {
			if (errno != EINVAL)
				return -1;
			return fail_with(
			    f, EINVAL, "unable to parse recipient address: ", r,
			    strlen(r));
		}
		for (size_t k = 0; k < f->al.n; k++)
			if (!f->al.a[k].null && add_given(f, k) < 0)
				return -1;
	}
	return 0;
}

/* The local part of a per-message VERP sender gets "-time.pid". */
static int verp_message(struct fixer *f)
{
	struct str *s = &f->out->sender;
	struct str tail = STR_INIT;
	size_t at = s->len;
	int r = -1;

	for (size_t i = s->len; i > 0; i--)
		if (s->s[i - 1] == '@') {
			at = i - 1;
			break;
		}
	if (str_copy(&tail, s->s + at, s->len - at) < 0)
		goto done;
	str_truncate(s, at);
	if (str_appendc(s, '-') < 0 ||
	    str_appendnum(s, (unsigned long long)f->o->now) < 0 ||
	    str_appendc(s, '.') < 0 || str_appendnum(s, f->o->pid) < 0 ||
	    str_append(s, tail.s, tail.len) < 0)
		goto done;
	r = 0;
done:
	str_free(&tail);
	return r;
}

static int choose_sender(struct fixer *f)
{
	const struct inject_opts *o = f->o;
	struct str *s = &f->out->sender;

	if (o->sender) {
		if (inject_envelope_address(o->rw, o->sender, s) < 0)
			return -1;
	} else if (f->have_return_path) {
		if (str_copystr(s, &f->return_path) < 0)
			return -1;
	} else if (rewrite_host(o->rw, o->shost, strlen(o->shost), &f->host) <
		       0 ||
		   envelope_form(s, o->suser, strlen(o->suser), f->host.s,
				 f->host.len) < 0) {
		return -1;
	}
	if (s->len == 0)
		return 0; /* the null sender gets no VERP */
	if ((o->flags & INJECT_VERP_MESSAGE) && verp_message(f) < 0)
		return -1;
	if ((o->flags & INJECT_VERP_RCPT) && str_appends(s, "-@[]") < 0)
		return -1;
	return 0;
}

static int has_line_end(const char *s, size_t n)
{
	return memchr(s, '\r', n) || memchr(s, '\n', n);
}

/* Downstream each envelope address becomes a line of its own
 * (Return-Path, Delivered-To, the log): a line end in one would let it
 * write more lines, so it is refused, and not quoted in the error. */
static int check_envelope(struct fixer *f)
{
	const struct inject_out *out = f->out;
	const char *r;
	size_t pos = 0;

	if (has_line_end(out->sender.s, out->sender.len))
		return fail_with(
		    f, EINVAL, "the sender address holds a line end", NULL, 0);
	while ((r = ctl_next(&out->rcpts, &pos)) != NULL)
		if (has_line_end(r, strlen(r)))
			return fail_with(f, EINVAL,
					 "a recipient address holds a line end",
					 NULL, 0);
	if (out->sender.len > INJECT_ADDR_MAX)
		return fail_with(f, ENAMETOOLONG,
				 "sender address too long: ", out->sender.s,
				 out->sender.len);
	pos = 0;
	while ((r = ctl_next(&out->rcpts, &pos)) != NULL)
		if (strlen(r) > INJECT_ADDR_MAX)
			return fail_with(f, ENAMETOOLONG,
					 "recipient address too long: ", r,
					 strlen(r));
	return 0;
}

static int envelope(struct fixer *f)
{
	const struct inject_opts *o = f->o;
	struct inject_out *out = f->out;

	if (o->mode != INJECT_RCPT_HEADER && given_rcpts(f) < 0)
		return -1;
	if (f->want_header_rcpts) {
		if (str_append(&out->rcpts, f->header_rcpts.s,
			       f->header_rcpts.len) < 0)
			return -1;
		out->nrcpts += f->n_header_rcpts;
	}
	if (choose_sender(f) < 0)
		return -1;
	return check_envelope(f);
}

void inject_out_init(struct inject_out *out)
{
	memset(out, 0, sizeof *out);
}

void inject_out_free(struct inject_out *out)
{
	str_free(&out->header);
	str_free(&out->sender);
	str_free(&out->rcpts);
	str_free(&out->error);
	inject_out_init(out);
}

static void fixer_free(struct fixer *f)
{
	addrlist_free(&f->al);
	str_free(&f->host);
	str_free(&f->addr);
	str_free(&f->header_rcpts);
	str_free(&f->mft_value);
	str_free(&f->return_path);
}

int inject_fix(const struct header *h, const struct inject_opts *o,
	       struct inject_out *out)
{
	struct fixer f;
	int r = 0, saved;

	memset(&f, 0, sizeof f);
	f.h = h;
	f.o = o;
	f.out = out;
	f.eol = h->crlf ? "\r\n" : "\n";
	f.resent = is_resent_message(h);
	f.want_header_rcpts =
	    o->mode == INJECT_RCPT_HEADER || o->mode == INJECT_RCPT_BOTH ||
	    (o->mode == INJECT_RCPT_DEFAULT && o->nrcpts == 0);
	addrlist_init(&f.al);
	str_clear(&out->header);
	str_clear(&out->sender);
	str_clear(&out->rcpts);
	str_clear(&out->error);
	out->nrcpts = 0;
	/* Every str handed back must be a valid C string, even if empty. */
	if (str_append(&out->header, "", 0) < 0 ||
	    str_append(&out->sender, "", 0) < 0 ||
	    str_append(&out->rcpts, "", 0) < 0)
		r = -1;
	for (size_t i = 0; r == 0 && i < h->nfields; i++)
		r = fix_field(&f, i);
	if (r == 0)
		r = add_missing(&f);
	if (r == 0)
		r = envelope(&f);
	saved = errno;
	fixer_free(&f);
	errno = saved;
	return r;
}
