/*
 * tlsciphers.c - OpenSSL cipher list -> GnuTLS priority string; see tlsciphers.h.
 */
#include "tlsciphers.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct suite {
	const char *name;
	const char *kx, *cipher, *mac; /* GnuTLS names; kx NULL: a TLS 1.3 suite */
};

static const struct suite suites[] = {
    {"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA", "AES-256-GCM", "AEAD"},
    {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA", "AES-128-GCM", "AEAD"},
    {"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA", "CHACHA20-POLY1305", "AEAD"},
    {"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA", "AES-256-GCM", "AEAD"},
    {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA", "AES-128-GCM", "AEAD"},
    {"ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA", "CHACHA20-POLY1305", "AEAD"},
    {"DHE-RSA-AES256-GCM-SHA384", "DHE-RSA", "AES-256-GCM", "AEAD"},
    {"DHE-RSA-AES128-GCM-SHA256", "DHE-RSA", "AES-128-GCM", "AEAD"},
    {"DHE-RSA-CHACHA20-POLY1305", "DHE-RSA", "CHACHA20-POLY1305", "AEAD"},
    {"AES256-GCM-SHA384", "RSA", "AES-256-GCM", "AEAD"},
    {"AES128-GCM-SHA256", "RSA", "AES-128-GCM", "AEAD"},
    {"ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA", "AES-256-CBC", "SHA384"},
    {"ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA", "AES-128-CBC", "SHA256"},
    {"ECDHE-RSA-AES256-SHA384", "ECDHE-RSA", "AES-256-CBC", "SHA384"},
    {"ECDHE-RSA-AES128-SHA256", "ECDHE-RSA", "AES-128-CBC", "SHA256"},
    {"DHE-RSA-AES256-SHA256", "DHE-RSA", "AES-256-CBC", "SHA256"},
    {"DHE-RSA-AES128-SHA256", "DHE-RSA", "AES-128-CBC", "SHA256"},
    {"AES256-SHA256", "RSA", "AES-256-CBC", "SHA256"},
    {"AES128-SHA256", "RSA", "AES-128-CBC", "SHA256"},
    {"ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA", "AES-256-CBC", "SHA1"},
    {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA", "AES-128-CBC", "SHA1"},
    {"ECDHE-RSA-AES256-SHA", "ECDHE-RSA", "AES-256-CBC", "SHA1"},
    {"ECDHE-RSA-AES128-SHA", "ECDHE-RSA", "AES-128-CBC", "SHA1"},
    {"DHE-RSA-AES256-SHA", "DHE-RSA", "AES-256-CBC", "SHA1"},
    {"DHE-RSA-AES128-SHA", "DHE-RSA", "AES-128-CBC", "SHA1"},
    {"AES256-SHA", "RSA", "AES-256-CBC", "SHA1"},
    {"AES128-SHA", "RSA", "AES-128-CBC", "SHA1"},
    {"TLS_AES_256_GCM_SHA384", NULL, "AES-256-GCM", "AEAD"},
    {"TLS_AES_128_GCM_SHA256", NULL, "AES-128-GCM", "AEAD"},
    {"TLS_CHACHA20_POLY1305_SHA256", NULL, "CHACHA20-POLY1305", "AEAD"},
};

/* Classes OpenSSL lists exclude that GnuTLS never enables in the priority built here. */
static const char *const never[] = {
    "SSLv2",  "SSLv3", "SSLv1", "TLSv1", "TLSv1.0", "TLSv1.1", "aNULL", "eNULL",  "NULL",
    "EXPORT", "EXP",   "DES",   "3DES",  "RC4",     "MD5",     "PSK",   "SRP",    "CAMELLIA",
    "SEED",   "IDEA",  "DSS",   "ADH",   "AECDH",   "LOW",     "aDSS",  "kECDHe", "kECDHr"};

/* Append "+item" to list (":"-separated) unless it is there already. */
static bool add(char *list, size_t size, const char *item)
{
	char tok[64];
	size_t n = strlen(list);

	snprintf(tok, sizeof(tok), ":+%s", item);
	if (strstr(list, tok)) {
		const char *hit = strstr(list, tok) + strlen(tok);

		if (*hit == '\0' || *hit == ':')
			return true;
	}
	return (size_t)snprintf(list + n, size - n, "%s", tok) < size - n;
}

bool pgw_tls_priority(const char *ciphers, char *out, size_t outlen, char *why, size_t whylen)
{
	char parts[512] = "", tok[96];
	bool tls12 = true, tls13 = true, any = false;
	const char *p = ciphers;

	while (*p) {
		size_t len = strcspn(p, ": ,");
		bool neg = *p == '!' || *p == '-';
		const char *name = neg ? p + 1 : p;
		size_t nlen = neg ? len - 1 : len;
		bool known = false;

		if (len == 0) {
			p++;
			continue;
		}
		if (nlen == 0 || nlen >= sizeof(tok))
			goto bad_token;
		memcpy(tok, name, nlen);
		tok[nlen] = '\0';
		if (neg) {
			if (!strcmp(tok, "TLSv1.2"))
				tls12 = false, known = true;
			else if (!strcmp(tok, "TLSv1.3"))
				tls13 = false, known = true;
			for (size_t i = 0; !known && i < sizeof(never) / sizeof(never[0]); i++)
				known = strcasecmp(tok, never[i]) == 0;
		} else {
			for (size_t i = 0; !known && i < sizeof(suites) / sizeof(suites[0]); i++) {
				const struct suite *s = &suites[i];

				if (strcasecmp(tok, s->name) != 0)
					continue;
				known = true;
				any = true;
				if ((s->kx && !add(parts, sizeof(parts), s->kx)) ||
				    !add(parts, sizeof(parts), s->cipher) ||
				    !add(parts, sizeof(parts), s->mac))
					goto too_long;
			}
		}
		if (!known)
			goto bad_token;
		p += len;
	}
	if (!any) {
		snprintf(why, whylen, "names no cipher suite (e.g. ECDHE-RSA-AES256-GCM-SHA384)");
		return false;
	}
	if (!tls12 && !tls13) {
		snprintf(why, whylen, "excludes both TLSv1.2 and TLSv1.3");
		return false;
	}
	if ((size_t)snprintf(out, outlen, "NONE%s%s:+CTYPE-X509:+COMP-NULL:+SIGN-ALL:+GROUP-ALL%s",
	                     tls13 ? ":+VERS-TLS1.3" : "", tls12 ? ":+VERS-TLS1.2" : "",
	                     parts) >= outlen)
		goto too_long;
	return true;
bad_token:
	snprintf(why, whylen,
	         "\"%.*s\" is not a cipher suite pgwarden knows (OpenSSL names of TLS 1.2 suites, "
	         "TLS_* names of TLS 1.3 suites, and exclusions such as !SSLv3 !TLSv1 !TLSv1.1 "
	         "!aNULL; see pgwarden.yml(5))",
	         (int)(strcspn(p, ": ,") > 64 ? 64 : strcspn(p, ": ,")), p);
	return false;
too_long:
	snprintf(why, whylen, "too long");
	return false;
}

bool pgw_tls_ciphers_ok(const char *ciphers, char *why, size_t whylen)
{
	char prio[640];
	gnutls_priority_t pc;
	const char *where = NULL;
	int rc;

	if (!pgw_tls_priority(ciphers, prio, sizeof(prio), why, whylen))
		return false;
	rc = gnutls_priority_init(&pc, prio, &where);
	if (rc != GNUTLS_E_SUCCESS) {
		snprintf(why, whylen, "GnuTLS refuses the translated priority \"%s\": %s", prio,
		         gnutls_strerror(rc));
		return false;
	}
	gnutls_priority_deinit(pc);
	return true;
}
