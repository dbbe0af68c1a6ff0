/*
 * tlsinfo.c: protocol, cipher and certificate fields as SSL_* entries.
 *
 * Names are printed in RFC 2253 form with UTF-8 kept, as mod_ssl does;
 * OpenSSL escapes control bytes, and tlsblock refuses what is left.
 * Host names are matched per RFC 6125 by X509_check_host: DNS SANs, or
 * the CN only when there is no DNS SAN, and a wildcard only as a whole
 * leftmost label matching exactly one label. A certificate field must
 * never reach the block except through tlsblock's checks.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/tlsblock.h"
#include "tls/tlsctx.h"
#include "tls/tlsinfo.h"

static int put_common(SSL *ssl, struct str *b)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
	int alg = 0;
	int use = cipher ? SSL_CIPHER_get_bits(cipher, &alg) : 0;

	if (tlsblock_put(b, "SSL_PROTOCOL", SSL_get_version(ssl)) < 0 ||
	    tlsblock_put(b, "SSL_CIPHER",
			 cipher ? SSL_CIPHER_get_name(cipher) : NULL) < 0 ||
	    tlsblock_putnum(b, "SSL_CIPHER_USEKEYSIZE",
			    (unsigned long)(use > 0 ? use : 0)) < 0 ||
	    tlsblock_putnum(b, "SSL_CIPHER_ALGKEYSIZE",
			    (unsigned long)(alg > 0 ? alg : 0)) < 0)
		return -1;
	return 0;
}

static int put_dn(struct str *b, const char *var, const X509_NAME *dn)
{
	BIO *mem = BIO_new(BIO_s_mem());
	char *text = NULL;
	int r = -1;

	if (!mem)
		return -1;
	if (X509_NAME_print_ex(mem, dn, 0,
			       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		long len = BIO_get_mem_data(mem, &text);
		r = tlsblock_putn(b, var, text, len > 0 ? (size_t)len : 0);
	}
	BIO_free(mem);
	return r;
}

/* A string of a certificate as UTF-8 (embedded NULs stay in and make
 * tlsblock drop the value). */
static int put_asn1(struct str *b, const char *var, const ASN1_STRING *s)
{
	unsigned char *utf8 = NULL;
	int len = s ? ASN1_STRING_to_UTF8(&utf8, s) : -1;
	int r;

	if (len < 0)
		return tlsblock_put(b, var, NULL);
	r = tlsblock_putn(b, var, (const char *)utf8, (size_t)len);
	OPENSSL_free(utf8);
	return r;
}

static int put_field(struct str *b, const char *var, const X509_NAME *dn,
		     int nid)
{
	int i = X509_NAME_get_index_by_NID(dn, nid, -1);
	const X509_NAME_ENTRY *e = i >= 0 ? X509_NAME_get_entry(dn, i) : NULL;

	return put_asn1(b, var, e ? X509_NAME_ENTRY_get_data(e) : NULL);
}

/* The subject's emailAddress, else the first rfc822Name SAN. */
static int put_email(struct str *b, const char *var, X509 *cert)
{
	const X509_NAME *dn = X509_get_subject_name(cert);

	if (X509_NAME_get_index_by_NID(dn, NID_pkcs9_emailAddress, -1) >= 0)
		return put_field(b, var, dn, NID_pkcs9_emailAddress);
	GENERAL_NAMES *sans =
	    X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	const ASN1_STRING *found = NULL;
	for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		if (g->type == GEN_EMAIL) {
			found = g->d.rfc822Name;
			break;
		}
	}
	int r = found
		    ? tlsblock_putn(b, var,
				    (const char *)ASN1_STRING_get0_data(found),
				    (size_t)ASN1_STRING_length(found))
		    : tlsblock_put(b, var, NULL);
	GENERAL_NAMES_free(sans);
	return r;
}

static int put_serial(struct str *b, const char *var, X509 *cert)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	int r = tlsblock_put(b, var, hex);

	OPENSSL_free(hex);
	BN_free(bn);
	return r;
}

enum { S_DN, S_CN, S_EMAIL, I_DN, SERIAL, FIELDS };

/* The certificate fields under prefix ("SSL_CLIENT" or "SSL_SERVER");
 * cert NULL unsets them. */
static int put_cert(struct str *b, const char *prefix, X509 *cert,
		    int with_email)
{
	static const char *const suffix[FIELDS] = {
	    "_S_DN", "_S_DN_CN", "_S_DN_Email", "_I_DN", "_M_SERIAL"};
	char var[FIELDS][40];

	for (int i = 0; i < FIELDS; i++)
		snprintf(var[i], sizeof var[i], "%s%s", prefix, suffix[i]);
	if (!cert) {
		for (int i = 0; i < FIELDS; i++)
			if ((i != S_EMAIL || with_email) &&
			    tlsblock_put(b, var[i], NULL) < 0)
				return -1;
		return 0;
	}
	const X509_NAME *subject = X509_get_subject_name(cert);
	if (put_dn(b, var[S_DN], subject) < 0 ||
	    put_field(b, var[S_CN], subject, NID_commonName) < 0 ||
	    (with_email && put_email(b, var[S_EMAIL], cert) < 0) ||
	    put_dn(b, var[I_DN], X509_get_issuer_name(cert)) < 0 ||
	    put_serial(b, var[SERIAL], cert) < 0)
		return -1;
	return 0;
}

static int put_verify(struct str *b, const char *var, const char *reason)
{
	char text[300];

	if (!reason)
		return tlsblock_put(b, var, "SUCCESS");
	snprintf(text, sizeof text, "FAILED:%.280s", reason);
	return tlsblock_put(b, var, text);
}

int tlsinfo_server(SSL *ssl, struct str *b)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	int r = put_common(ssl, b);

	if (r == 0 && !cert)
		r = tlsblock_put(b, "SSL_CLIENT_VERIFY", "NONE");
	else if (r == 0) {
		long v = tls_verify_result(ssl);
		r = put_verify(
		    b, "SSL_CLIENT_VERIFY",
		    v == X509_V_OK ? NULL : X509_verify_cert_error_string(v));
	}
	if (r == 0)
		r = put_cert(b, "SSL_CLIENT", cert, 1);
	X509_free(cert);
	return r;
}

int tlsinfo_name_ok(const char *name, int *is_ip)
{
	unsigned char addr[16];
	size_t len = name ? strlen(name) : 0;

	*is_ip = 0;
	if (len == 0 || len > 253)
		return 0;
	if (inet_pton(AF_INET, name, addr) == 1 ||
	    inet_pton(AF_INET6, name, addr) == 1) {
		*is_ip = 1;
		return 1;
	}
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

/* NULL when the certificate is valid for name, else why not. */
static const char *name_problem(X509 *cert, const char *name, char *buf,
				size_t n)
{
	int is_ip;
	int match;

	if (!tlsinfo_name_ok(name, &is_ip)) {
		snprintf(buf, n,
			 "certificate name does not match (the name "
			 "to check is not a host name)");
		return buf;
	}
	if (is_ip)
		match = X509_check_ip_asc(cert, name, 0);
	else
		match =
		    X509_check_host(cert, name, strlen(name),
				    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
	if (match == 1)
		return NULL;
	snprintf(buf, n, "certificate name does not match %s", name);
	return buf;
}

int tlsinfo_client(SSL *ssl, const char *name, int have_ca, struct str *b,
		   int *verified, char *why, size_t whylen)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	const char *reason = NULL;
	char buf[300];
	int r;

	*verified = 0;
	if (!cert)
		reason = "no certificate";
	else if (have_ca) {
		long v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			reason = X509_verify_cert_error_string(v);
		else if (name)
			reason = name_problem(cert, name, buf, sizeof buf);
	}
	if (put_common(ssl, b) < 0)
		r = -1;
	else if (!have_ca && cert) {
		snprintf(why, whylen, "no CA to verify the certificate with");
		r = tlsblock_put(b, "SSL_SERVER_VERIFY", "NONE");
	} else {
		snprintf(why, whylen, "%s", reason ? reason : "verified");
		*verified = !reason;
		r = put_verify(b, "SSL_SERVER_VERIFY", reason);
	}
	if (r == 0)
		r = put_cert(b, "SSL_SERVER", cert, 0);
	X509_free(cert);
	return r;
}
