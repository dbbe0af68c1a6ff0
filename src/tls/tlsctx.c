/*
 * tlsctx.c: building the server and client contexts from the
 * environment.
 *
 * Each failure names the variable and the file, so that an
 * administrator can fix it from one log line. Optional parameters (a
 * DHFILE that is missing or unusable) fall back to OpenSSL's automatic
 * choice with a warning rather than refusing every connection, as the
 * TLS patch does. This module never reads from the network.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/env.h"
#include "tls/tlsctx.h"

void tls_errtext(char *buf, size_t n, const char *fallback)
{
	unsigned long e = ERR_get_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	if (e && ERR_SYSTEM_ERROR(e))
		snprintf(buf, n, "%s", strerror(ERR_GET_REASON(e)));
	else if (reason)
		snprintf(buf, n, "%s", reason);
	else if (e)
		ERR_error_string_n(e, buf, n);
	else
		snprintf(buf, n, "%s", fallback);
	ERR_clear_error();
}

/* "VAR file: what: OpenSSL's reason" into err. */
static int fail(char *err, size_t n, const char *var, const char *file,
		const char *what)
{
	char reason[256];

	tls_errtext(reason, sizeof reason, "");
	snprintf(err, n, "%s%s%s: %s%s%s", var, file ? " " : "",
		 file ? file : "", what, reason[0] ? ": " : "", reason);
	return -1;
}

/* A variable that is set and not empty, or NULL. */
static const char *setting(const char *name)
{
	const char *v = env_get(name);
	return v && *v ? v : NULL;
}

static SSL_CTX *new_ctx(const SSL_METHOD *method)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (!ctx)
		return NULL;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* The relay retries a write with what is left of its buffer. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

static int load_cert(SSL_CTX *ctx, const char *cert, const char *key, char *err,
		     size_t n)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		return fail(err, n, "CERTFILE", cert,
			    "unable to load the certificate");
	const char *var = key ? "KEYFILE" : "CERTFILE";
	if (!key)
		key = cert;
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		return fail(err, n, var, key, "unable to load the key");
	if (SSL_CTX_check_private_key(ctx) != 1)
		return fail(err, n, var, key,
			    "the key does not match the certificate");
	return 0;
}

static void load_dh(struct tlsconf *c, const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *dh = NULL;
	char reason[256];

	if (!f) {
		/* Not made yet (update_tmprsadh runs from cron). */
		if (errno != ENOENT)
			snprintf(c->warning, sizeof c->warning,
				 "DHFILE %s: %s; using automatic DH parameters",
				 path, strerror(errno));
		goto automatic;
	}
	BIO *bio = BIO_new_fp(f, BIO_CLOSE);
	if (!bio) {
		fclose(f);
		goto broken;
	}
	dh = PEM_read_bio_Parameters(bio, NULL);
	BIO_free(bio);
	/* PKCS#3 (openssl dhparam) or X9.42 (openssl dhparam -dsaparam). */
	if (!dh || !(EVP_PKEY_is_a(dh, "DH") || EVP_PKEY_is_a(dh, "DHX")))
		goto broken;
	if (SSL_CTX_set0_tmp_dh_pkey(c->ctx, dh) == 1)
		return;
broken:
	EVP_PKEY_free(dh);
	tls_errtext(reason, sizeof reason, "no DH parameters in the file");
	snprintf(c->warning, sizeof c->warning,
		 "DHFILE %s: %s; using automatic DH parameters", path, reason);
automatic:
	ERR_clear_error();
	SSL_CTX_set_dh_auto(c->ctx, 1);
}

static int first_error_index = -1;

/* The application decides what a failed client certificate means, so
 * verification goes on past errors; the first one is kept, as it names
 * the cause (later ones follow from it). */
static int keep_first_error(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
	    store, SSL_get_ex_data_X509_STORE_CTX_idx());
	int e = X509_STORE_CTX_get_error(store);

	if (!ok && ssl && e != X509_V_OK && first_error_index >= 0 &&
	    !SSL_get_ex_data(ssl, first_error_index))
		SSL_set_ex_data(ssl, first_error_index, (void *)(intptr_t)e);
	return 1;
}

long tls_verify_result(const SSL *ssl)
{
	void *first = first_error_index >= 0
			  ? SSL_get_ex_data(ssl, first_error_index)
			  : NULL;
	return first ? (long)(intptr_t)first : SSL_get_verify_result(ssl);
}

static int load_client_checks(SSL_CTX *ctx, const char *cca, char *err,
			      size_t n)
{
	const char *cafile = setting("CAFILE"), *cadir = setting("CADIR");
	const char *crl = setting("CRLFILE");

	if (SSL_CTX_load_verify_locations(ctx, cca, NULL) != 1)
		return fail(err, n, "CCAFILE", cca, "unable to load the CAs");
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cca);
	if (!names)
		return fail(err, n, "CCAFILE", cca, "no CA certificate found");
	SSL_CTX_set_client_CA_list(ctx, names);
	if ((cafile || cadir) &&
	    SSL_CTX_load_verify_locations(ctx, cafile, cadir) != 1)
		return fail(err, n, cafile ? "CAFILE" : "CADIR",
			    cafile ? cafile : cadir, "unable to load the CAs");
	if (crl) {
		X509_STORE *store = SSL_CTX_get_cert_store(ctx);
		X509_LOOKUP *lookup =
		    X509_STORE_add_lookup(store, X509_LOOKUP_file());
		if (!lookup ||
		    X509_load_crl_file(lookup, crl, X509_FILETYPE_PEM) <= 0)
			return fail(err, n, "CRLFILE", crl,
				    "unable to load the CRLs");
		/* The client's own certificate; CAs may have no CRL here. */
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	if (first_error_index < 0)
		first_error_index =
		    SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (first_error_index < 0)
		return fail(err, n, "OpenSSL", NULL, "no index");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, keep_first_error);
	return 0;
}

/* TLSCIPHERS, which tcprules can set for one client (the TLS patch's
 * per-connection override), wins over CIPHERS. */
static int set_ciphers(SSL_CTX *ctx, char *err, size_t n)
{
	const char *name = setting("TLSCIPHERS") ? "TLSCIPHERS" : "CIPHERS";
	const char *ciphers = setting(name);

	if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1)
		return fail(err, n, name, ciphers, "no usable cipher");
	return 0;
}

int tlsconf_server(struct tlsconf *c, char *err, size_t n)
{
	const char *cert = setting("CERTFILE"), *key = setting("KEYFILE");
	const char *dh = setting("DHFILE"), *cca = setting("CCAFILE");

	memset(c, 0, sizeof *c);
	if (!cert) {
		snprintf(err, n, "CERTFILE is not set");
		return -1;
	}
	c->ctx = new_ctx(TLS_server_method());
	if (!c->ctx)
		return fail(err, n, "OpenSSL", NULL, "no context");
	SSL_CTX_set_options(c->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_num_tickets(c->ctx, 0);
	if (load_cert(c->ctx, cert, key, err, n) < 0 ||
	    set_ciphers(c->ctx, err, n) < 0 ||
	    (cca && load_client_checks(c->ctx, cca, err, n) < 0)) {
		tlsconf_free(c);
		return -1;
	}
	if (dh)
		load_dh(c, dh);
	else
		SSL_CTX_set_dh_auto(c->ctx, 1);
	return 0;
}

int tlsconf_client(struct tlsconf *c, int require, char *err, size_t n)
{
	const char *cafile = setting("CAFILE"), *cadir = setting("CADIR");
	const char *cert = setting("CERTFILE"), *key = setting("KEYFILE");

	memset(c, 0, sizeof *c);
	c->ctx = new_ctx(TLS_client_method());
	if (!c->ctx)
		return fail(err, n, "OpenSSL", NULL, "no context");
	/* The handshake goes on whatever the result; see tlsinfo.c. */
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	if (cafile || cadir) {
		if (SSL_CTX_load_verify_locations(c->ctx, cafile, cadir) != 1) {
			fail(err, n, cafile ? "CAFILE" : "CADIR",
			     cafile ? cafile : cadir, "unable to load the CAs");
			goto bad;
		}
		c->have_ca = 1;
	} else if (require) {
		if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
			fail(err, n, "default CA store", NULL,
			     "unable to load the CAs");
			goto bad;
		}
		c->have_ca = 1;
	}
	if ((cert && load_cert(c->ctx, cert, key, err, n) < 0) ||
	    set_ciphers(c->ctx, err, n) < 0)
		goto bad;
	return 0;
bad:
	tlsconf_free(c);
	return -1;
}

void tlsconf_free(struct tlsconf *c)
{
	SSL_CTX_free(c->ctx);
	c->ctx = NULL;
}
