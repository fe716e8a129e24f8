/*
 * tlsciphers.h - restapi.ciphers: Patroni takes an OpenSSL cipher list (Python's
 * ssl module); the REST server here is libmicrohttpd over GnuTLS, which takes a
 * priority string.  This translates the part of OpenSSL's syntax that names suites:
 *   - TLS 1.2 suites by their OpenSSL names (ECDHE-RSA-AES256-GCM-SHA384, ...,
 *     AES128-SHA), each enabling its key exchange, cipher and MAC;
 *   - TLS 1.3 suites by their IANA names (TLS_AES_256_GCM_SHA384, ...);
 *   - "!" or "-" before SSLv2, SSLv3, TLSv1, TLSv1.1 (never enabled here anyway),
 *     TLSv1.2 or TLSv1.3 (that version is off), and before the classes GnuTLS never
 *     enables here (aNULL, eNULL, NULL, EXPORT, DES, 3DES, RC4, MD5, PSK, SRP, ...).
 * Anything else (HIGH, DEFAULT, @STRENGTH, "+", kRSA, ...) is refused, naming it.
 * GnuTLS enables the union of the named parts, so a key exchange of one listed suite
 * may pair with a cipher of another listed suite.
 */
#ifndef PGW_TLSCIPHERS_H
#define PGW_TLSCIPHERS_H

#include <stdbool.h>
#include <stddef.h>

/* The GnuTLS priority string for an OpenSSL-style list; false with why. */
bool pgw_tls_priority(const char *ciphers, char *out, size_t outlen, char *why, size_t whylen);
/* restapi.ciphers: translatable, and GnuTLS accepts the result. */
bool pgw_tls_ciphers_ok(const char *ciphers, char *why, size_t whylen);

#endif
