/* t_authsasl.c: base64, the AUTH PLAIN and LOGIN decoding, and the
 * SMTP and POP3 command splitting of qmail-authup. */
#include <errno.h>

#include "auth/authcmd.h"
#include "auth/base64.h"
#include "auth/sasl.h"
#include "unit.h"

/* --- base64 --- */

static int dec(const char *in, unsigned char *out, size_t max, size_t *n)
{
	return b64_decode(in, strlen(in), out, max, n);
}

TEST(b64_rfc4648_vectors)
{
	static const char *plain[] = {"",     "f",     "fo",	"foo",
				      "foob", "fooba", "foobar"};
	static const char *enc[] = {"",		"Zg==",	    "Zm8=",    "Zm9v",
				    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		unsigned char out[16];
		size_t n = 99;
		struct str s = STR_INIT;
		CHECK_INT(dec(enc[i], out, sizeof out, &n), 0);
		CHECK_MEM(out, n, plain[i], strlen(plain[i]));
		CHECK_INT(b64_encode(&s, plain[i], strlen(plain[i])), 0);
		CHECK_MEM(s.s ? s.s : "", s.len, enc[i], strlen(enc[i]));
		str_free(&s);
	}
}

TEST(b64_binary_round_trip)
{
	unsigned char all[256], out[256];
	struct str s = STR_INIT;
	size_t n;

	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	for (size_t len = 0; len <= 256; len += 37) {
		str_clear(&s);
		CHECK_INT(b64_encode(&s, all, len), 0);
		CHECK_INT(s.len % 4, 0);
		CHECK_INT(
		    b64_decode(s.s ? s.s : "", s.len, out, sizeof out, &n), 0);
		CHECK_MEM(out, n, all, len);
	}
	str_free(&s);
}

TEST(b64_refuses_malformed)
{
	static const char *bad[] = {
	    "Zg=",				      /* not a multiple of 4 */
	    "Zg",    "Z",	 "Zm9vY",    "Zg===", /* three pad */
	    "Z===",  "====",	 "Zg==Zg==",	      /* padding inside */
	    "Zm=v",  "Zm9v\r\n",		      /* line end */
	    "Zm 9v",				      /* blank */
	    "Zm9-",				      /* URL alphabet */
	    "Zm9_",  "Zh==",			      /* unused bits not zero */
	    "Zm9=", /* unused bits of "fo" (Zm8=) */
	    "Zm\0v",
	};
	unsigned char out[16];
	size_t n;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		CHECK_INT(dec(bad[i], out, sizeof out, &n), -1);
		CHECK_INT(errno, EINVAL);
	}
	/* A NUL byte inside the counted input. */
	CHECK_INT(b64_decode("Zm\0v", 4, out, sizeof out, &n), -1);
	CHECK_INT(errno, EINVAL);
}

TEST(b64_checks_room_first)
{
	unsigned char out[8];
	size_t n = 77;

	memset(out, 'x', sizeof out);
	errno = 0;
	CHECK_INT(dec("Zm9vYmFy", out, 5, &n), -1);
	CHECK_INT(errno, EMSGSIZE);
	CHECK_INT(n, 77);
	CHECK_INT(out[0], 'x'); /* nothing written */
	CHECK_INT(dec("Zm9vYmFy", out, 6, &n), 0);
	CHECK_MEM(out, n, "foobar", 6);
	CHECK_INT(dec("Zm9vYg==", out, 4, &n), 0);
	CHECK_MEM(out, n, "foob", 4);
	CHECK_INT(dec("Zm9vYg==", out, 3, &n), -1);
	CHECK_INT(errno, EMSGSIZE);
}

/* --- AUTH argument --- */

static enum sasl_mech mech(const char *arg, const char **ir, size_t *irlen,
			   int *has)
{
	return sasl_parse_auth(arg, strlen(arg), ir, irlen, has);
}

TEST(sasl_parse_auth_mechanisms)
{
	const char *ir;
	size_t n;
	int has;

	CHECK_INT(mech("PLAIN", &ir, &n, &has), SASL_MECH_PLAIN);
	CHECK_INT(has, 0);
	CHECK_INT(mech("plain", &ir, &n, &has), SASL_MECH_PLAIN);
	CHECK_INT(mech("Login", &ir, &n, &has), SASL_MECH_LOGIN);
	CHECK_INT(mech("LOGIN  ", &ir, &n, &has), SASL_MECH_LOGIN);
	CHECK_INT(has, 0);
	CHECK_INT(mech("PLAIN AGJvYgBzZWNyZXQ=", &ir, &n, &has),
		  SASL_MECH_PLAIN);
	CHECK_INT(has, 1);
	CHECK_STR(ir, n, "AGJvYgBzZWNyZXQ=");
	CHECK_INT(mech("LOGIN   Ym9i", &ir, &n, &has), SASL_MECH_LOGIN);
	CHECK_STR(ir, n, "Ym9i");
	CHECK_INT(mech("PLAIN =", &ir, &n, &has), SASL_MECH_PLAIN);
	CHECK_STR(ir, n, "=");
	CHECK_INT(mech("", &ir, &n, &has), SASL_MECH_NONE);
	CHECK_INT(mech(" PLAIN", &ir, &n, &has), SASL_MECH_NONE);
	CHECK_INT(mech("CRAM-MD5", &ir, &n, &has), SASL_MECH_UNKNOWN);
	CHECK_INT(mech("PLAINX", &ir, &n, &has), SASL_MECH_UNKNOWN);
	CHECK_INT(mech("PLAI", &ir, &n, &has), SASL_MECH_UNKNOWN);
	CHECK_INT(mech("PLAIN a b", &ir, &n, &has), SASL_MECH_BAD);
	CHECK_INT(mech("LOGIN a  b", &ir, &n, &has), SASL_MECH_BAD);
	/* Trailing blanks are forgiven. */
	CHECK_INT(mech("LOGIN Ym9i  ", &ir, &n, &has), SASL_MECH_LOGIN);
	CHECK_STR(ir, n, "Ym9i");
	CHECK_INT(has, 1);
	CHECK_INT(mech("PLAIN ", &ir, &n, &has), SASL_MECH_PLAIN);
	CHECK_INT(has, 0);
	CHECK_INT(mech("   ", &ir, &n, &has), SASL_MECH_NONE);
}

/* --- responses --- */

TEST(sasl_decode_responses)
{
	unsigned char out[SASL_DECODED_MAX];
	size_t n = 5;

	CHECK_INT(sasl_decode("*", 1, 0, out, &n), SASL_CANCELLED);
	/* "*" is not base64, and cancels only a challenge's answer. */
	CHECK_INT(sasl_decode("*", 1, 1, out, &n), SASL_MALFORMED);
	CHECK_INT(sasl_decode("=", 1, 1, out, &n), SASL_OK);
	CHECK_INT(n, 0);
	CHECK_INT(sasl_decode("=", 1, 0, out, &n), SASL_MALFORMED);
	CHECK_INT(sasl_decode("", 0, 0, out, &n), SASL_OK);
	CHECK_INT(n, 0);
	CHECK_INT(sasl_decode("Ym9i", 4, 0, out, &n), SASL_OK);
	CHECK_MEM(out, n, "bob", 3);
	CHECK_INT(sasl_decode("Ym9i!", 5, 0, out, &n), SASL_MALFORMED);
	CHECK_INT(n, 0);
	CHECK_INT(sasl_decode("**", 2, 0, out, &n), SASL_MALFORMED);
}

TEST(sasl_decode_bounds)
{
	unsigned char out[SASL_DECODED_MAX];
	char big[1100];
	size_t n;

	/* 1000 base64 bytes decode to exactly SASL_DECODED_MAX. */
	memset(big, 'A', 1000);
	CHECK_INT(sasl_decode(big, 1000, 0, out, &n), SASL_OK);
	CHECK_INT(n, SASL_DECODED_MAX);
	memset(big, 'A', 1004);
	CHECK_INT(sasl_decode(big, 1004, 0, out, &n), SASL_MALFORMED);
	CHECK_INT(n, 0);
}

static enum sasl_status plain(const char *p, size_t n, struct sasl_creds *c)
{
	return sasl_plain((const unsigned char *)p, n, c);
}

TEST(sasl_plain_splits)
{
	struct sasl_creds c;

	memset(&c, 'x', sizeof c);
	CHECK_INT(plain("\0bob\0secret", 11, &c), SASL_OK);
	CHECK_STR(c.user, c.ulen, "bob");
	CHECK_INT(c.user[3], 0);
	CHECK_STR(c.pass, c.plen, "secret");
	CHECK_INT(c.pass[6], 0);
	CHECK_INT(plain("bob\0bob\0pw with space ", 22, &c), SASL_OK);
	CHECK_STR(c.pass, c.plen, "pw with space ");
	/* UTF-8 user names are fine. */
	CHECK_INT(plain("\0j\xc3\xb6rg\0x", 8, &c), SASL_OK);
	CHECK_STR(c.user, c.ulen, "j\xc3\xb6rg");
}

TEST(sasl_plain_refuses)
{
	struct sasl_creds c;

	CHECK_INT(plain("", 0, &c), SASL_MALFORMED);
	CHECK_INT(plain("bob", 3, &c), SASL_MALFORMED);
	CHECK_INT(plain("\0bob", 4, &c), SASL_MALFORMED);
	CHECK_INT(plain("\0bob\0", 5, &c), SASL_MALFORMED);    /* no pass */
	CHECK_INT(plain("\0\0secret", 8, &c), SASL_MALFORMED); /* no user */
	CHECK_INT(plain("\0bob\0pa\0ss", 10, &c), SASL_MALFORMED);
	CHECK_INT(plain("\0bob\0secret\0", 12, &c), SASL_MALFORMED);
	CHECK_INT(plain("\0b\rob\0secret", 12, &c), SASL_MALFORMED);
	CHECK_INT(plain("\0b\nob\0secret", 12, &c), SASL_MALFORMED);
	CHECK_INT(plain("\0b\x7fob\0secret", 12, &c), SASL_MALFORMED);
	CHECK_INT(plain("alice\0bob\0secret", 16, &c), SASL_AUTHZID);
	CHECK_INT(plain("Bob\0bob\0secret", 14, &c), SASL_AUTHZID);
	CHECK_INT(plain("bo\0bob\0secret", 13, &c), SASL_AUTHZID);
}

TEST(sasl_login_fields)
{
	struct sasl_creds c;
	const unsigned char *u = (const unsigned char *)"bob";

	CHECK_INT(sasl_login_user(u, 3, &c), SASL_OK);
	CHECK_STR(c.user, c.ulen, "bob");
	CHECK_INT(sasl_login_user(u, 0, &c), SASL_MALFORMED);
	CHECK_INT(sasl_login_user((const unsigned char *)"b\0b", 3, &c),
		  SASL_MALFORMED);
	CHECK_INT(sasl_login_user((const unsigned char *)"b\tb", 3, &c),
		  SASL_MALFORMED);
	CHECK_INT(sasl_login_pass((const unsigned char *)"p w", 3, &c),
		  SASL_OK);
	CHECK_STR(c.pass, c.plen, "p w");
	CHECK_INT(sasl_login_pass((const unsigned char *)"p\0w", 3, &c),
		  SASL_MALFORMED);
	CHECK_INT(sasl_login_pass(u, 0, &c), SASL_MALFORMED);
	CHECK_INT(sasl_login_pass(u, SASL_DECODED_MAX + 1, &c), SASL_MALFORMED);
}

TEST(sasl_user_limits)
{
	char big[SASL_DECODED_MAX + 2];

	memset(big, 'u', sizeof big);
	CHECK(sasl_user_ok(big, SASL_DECODED_MAX));
	CHECK(!sasl_user_ok(big, SASL_DECODED_MAX + 1));
	CHECK(!sasl_user_ok(big, 0));
	CHECK(sasl_user_ok("a b", 3));
	CHECK(!sasl_user_ok("a\x1f", 2));
}

TEST(sasl_wipe_zeroes)
{
	char secret[8] = "hunter2";

	sasl_wipe(secret, sizeof secret);
	for (size_t i = 0; i < sizeof secret; i++)
		CHECK_INT(secret[i], 0);
}

/* --- command lines --- */

TEST(authcmd_chomp_ends)
{
	CHECK_INT(authcmd_chomp("QUIT\r\n", 6), 4);
	CHECK_INT(authcmd_chomp("QUIT\n", 5), 4);
	CHECK_INT(authcmd_chomp("QUIT\r", 5), 5); /* a bare CR is data */
	CHECK_INT(authcmd_chomp("QUIT", 4), 4);
	CHECK_INT(authcmd_chomp("\r\n", 2), 0);
	CHECK_INT(authcmd_chomp("\n", 1), 0);
	CHECK_INT(authcmd_chomp("", 0), 0);
}

static struct authcmd smtp(const char *line)
{
	struct authcmd c;
	authcmd_smtp(line, strlen(line), &c);
	return c;
}

static struct authcmd pop3(const char *line)
{
	struct authcmd c;
	authcmd_pop3(line, strlen(line), &c);
	return c;
}

TEST(authcmd_smtp_verbs)
{
	struct authcmd c;

	CHECK_INT(smtp("EHLO client.example").verb, AUTHCMD_EHLO);
	c = smtp("ehlo   client.example");
	CHECK_INT(c.verb, AUTHCMD_EHLO);
	CHECK_STR(c.arg, c.alen, "client.example");
	CHECK_INT(smtp("HELO x").verb, AUTHCMD_HELO);
	c = smtp("AUTH PLAIN abc=");
	CHECK_INT(c.verb, AUTHCMD_AUTH);
	CHECK_STR(c.arg, c.alen, "PLAIN abc=");
	c = smtp("StartTLS");
	CHECK_INT(c.verb, AUTHCMD_STARTTLS);
	CHECK_INT(c.alen, 0);
	CHECK_INT(smtp("STARTTLS x").verb, AUTHCMD_STARTTLS);
	CHECK_INT(smtp("NOOP").verb, AUTHCMD_NOOP);
	CHECK_INT(smtp("RSET").verb, AUTHCMD_RSET);
	CHECK_INT(smtp("QUIT").verb, AUTHCMD_QUIT);
	CHECK_INT(smtp("MAIL FROM:<a@b>").verb, AUTHCMD_OTHER);
	CHECK_INT(smtp("RCPT TO:<a@b>").verb, AUTHCMD_OTHER);
	CHECK_INT(smtp("DATA").verb, AUTHCMD_OTHER);
	CHECK_INT(smtp("AUTHX PLAIN").verb, AUTHCMD_OTHER);
	CHECK_INT(smtp("AUT").verb, AUTHCMD_OTHER);
	/* POP3 verbs mean nothing in SMTP. */
	CHECK_INT(smtp("USER bob").verb, AUTHCMD_OTHER);
	CHECK_INT(smtp("CAPA").verb, AUTHCMD_OTHER);
	CHECK_INT(smtp("").verb, AUTHCMD_EMPTY);
	CHECK_INT(smtp(" QUIT").verb, AUTHCMD_EMPTY);
	c = smtp("AUTH");
	CHECK_INT(c.verb, AUTHCMD_AUTH);
	CHECK_INT(c.alen, 0);
}

TEST(authcmd_pop3_verbs)
{
	struct authcmd c;

	CHECK_INT(pop3("CAPA").verb, AUTHCMD_CAPA);
	CHECK_INT(pop3("stls").verb, AUTHCMD_STLS);
	c = pop3("USER bob");
	CHECK_INT(c.verb, AUTHCMD_USER);
	CHECK_STR(c.arg, c.alen, "bob");
	/* A password keeps its blanks. */
	c = pop3("PASS  two words ");
	CHECK_INT(c.verb, AUTHCMD_PASS);
	CHECK_STR(c.arg, c.alen, " two words ");
	c = pop3("PASS");
	CHECK_INT(c.verb, AUTHCMD_PASS);
	CHECK_INT(c.alen, 0);
	c = pop3("USER ");
	CHECK_INT(c.verb, AUTHCMD_USER);
	CHECK_INT(c.alen, 0);
	CHECK_INT(pop3("APOP bob 0123").verb, AUTHCMD_APOP);
	CHECK_INT(pop3("QUIT").verb, AUTHCMD_QUIT);
	CHECK_INT(pop3("STAT").verb, AUTHCMD_OTHER);
	CHECK_INT(pop3("AUTH PLAIN").verb, AUTHCMD_OTHER);
	CHECK_INT(pop3("EHLO x").verb, AUTHCMD_OTHER);
	CHECK_INT(pop3("").verb, AUTHCMD_EMPTY);
}

UNIT_MAIN(b64_rfc4648_vectors, b64_binary_round_trip, b64_refuses_malformed,
	  b64_checks_room_first, sasl_parse_auth_mechanisms,
	  sasl_decode_responses, sasl_decode_bounds, sasl_plain_splits,
	  sasl_plain_refuses, sasl_login_fields, sasl_user_limits,
	  sasl_wipe_zeroes, authcmd_chomp_ends, authcmd_smtp_verbs,
	  authcmd_pop3_verbs)
