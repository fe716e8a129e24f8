/*
 * test_netaddr.c - restapi.allowlist's networks (daemon/netaddr.c), the SRV answer
 * parser of etcd3.srv fed with hand-built DNS answers (no DNS server needed), and
 * restapi.ciphers' translation to a GnuTLS priority (daemon/tlsciphers.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "netaddr.h"
#include "tlsciphers.h"

static struct sockaddr_storage v4(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	in->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, a, &in->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, a, &in6->sin6_addr), 1);
	return ss;
}

static bool in(const char *net, struct sockaddr_storage ss)
{
	struct pgw_cidr c;

	assert_true(pgw_cidr_parse(net, &c));
	return pgw_cidr_match(&c, (const struct sockaddr *)&ss);
}

static void test_cidr(void **state)
{
	static const char *const bad[] = {
	    "",      "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08",
	    "1.2.3", "::1/129",    "fe80::1/64",  "x/8",       "10.0.0.0/-1"};
	struct pgw_cidr c;

	(void)state;
	assert_true(in("127.0.0.1", v4("127.0.0.1")));
	assert_false(in("127.0.0.1", v4("127.0.0.2")));
	assert_true(in("10.0.0.0/8", v4("10.200.1.1")));
	assert_false(in("10.0.0.0/8", v4("11.0.0.1")));
	assert_true(in("192.168.4.0/22", v4("192.168.7.255")));
	assert_false(in("192.168.4.0/22", v4("192.168.8.0")));
	assert_true(in("0.0.0.0/0", v4("203.0.113.9")));
	assert_true(in("::1", v6("::1")));
	assert_true(in("fd00::/8", v6("fd12:3456::1")));
	assert_false(in("fd00::/8", v6("fe80::1")));
	/* an IPv4 client on a dual-stack socket comes as ::ffff:a.b.c.d */
	assert_true(in("127.0.0.0/8", v6("::ffff:127.0.0.2")));
	assert_false(in("::1", v4("127.0.0.1")));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (pgw_cidr_parse(bad[i], &c))
			fail_msg("\"%s\" parsed", bad[i]);
}

static void test_names(void **state)
{
	char why[200];

	(void)state;
	assert_true(pgw_allow_entry_ok("db1.example.org", why, sizeof(why)));
	assert_true(pgw_allow_entry_ok("localhost", why, sizeof(why)));
	assert_true(pgw_allow_entry_ok("10.1.0.0/16", why, sizeof(why)));
	assert_false(pgw_allow_entry_ok("1.2.3.4.5", why, sizeof(why))); /* not a name either */
	assert_false(pgw_allow_entry_ok("-a.example", why, sizeof(why)));
	assert_false(pgw_allow_entry_ok("a..example", why, sizeof(why)));
	assert_false(pgw_allow_entry_ok("a b", why, sizeof(why)));
	assert_true(pgw_dns_name_ok("example.org.", why, sizeof(why)));
	assert_false(pgw_dns_name_ok("exa\nmple.org", why, sizeof(why)));
	assert_true(pgw_srv_suffix_ok("prod-1", why, sizeof(why)));
	assert_false(pgw_srv_suffix_ok("a.b", why, sizeof(why)));
}

static void test_srv_name(void **state)
{
	char n[256];

	(void)state;
	pgw_srv_name(n, sizeof(n), true, NULL, "example.org");
	assert_string_equal(n, "_etcd-client-ssl._tcp.example.org");
	pgw_srv_name(n, sizeof(n), false, "prod", "example.org");
	assert_string_equal(n, "_etcd-client-prod._tcp.example.org");
	pgw_srv_name(n, sizeof(n), true, "prod", "example.org");
	assert_string_equal(n, "_etcd-client-ssl-prod._tcp.example.org");
}

/* A DNS name in wire format at *p. */
static size_t put_name(unsigned char *p, const char *name)
{
	size_t o = 0;

	while (*name) {
		size_t l = strcspn(name, ".");

		p[o++] = (unsigned char)l;
		memcpy(p + o, name, l);
		o += l;
		name += l;
		if (*name == '.')
			name++;
	}
	p[o++] = 0;
	return o;
}

static size_t put16(unsigned char *p, int v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	return 2;
}

/* An answer to _etcd-client._tcp.example.org with three SRV records; the first
 * target compressed (a pointer to the question name's "example.org"). */
static size_t build_answer(unsigned char *m, int rcode)
{
	size_t o = 0, qname;
	struct {
		int prio, weight, port;
		const char *target;
	} rr[] = {
	    {20, 0, 2379, "c.example.org"}, {10, 5, 2379, NULL}, {10, 50, 2381, "b.example.org"}};

	o += put16(m + o, 0x1234);
	o += put16(m + o, 0x8180 | rcode);
	o += put16(m + o, 1);
	o += put16(m + o, 3);
	o += put16(m + o, 0);
	o += put16(m + o, 0);
	qname = o;
	o += put_name(m + o, "_etcd-client._tcp.example.org");
	o += put16(m + o, 33);
	o += put16(m + o, 1);
	for (int i = 0; i < 3; i++) {
		size_t rdlen_at;

		o += put16(m + o, 0xc000 | (int)qname); /* the owner: the question's name */
		o += put16(m + o, 33);
		o += put16(m + o, 1);
		o += put16(m + o, 0);
		o += put16(m + o, 300);
		rdlen_at = o;
		o += 2;
		o += put16(m + o, rr[i].prio);
		o += put16(m + o, rr[i].weight);
		o += put16(m + o, rr[i].port);
		if (rr[i].target) {
			o += put_name(m + o, rr[i].target);
		} else { /* "a." + pointer to "example.org" inside the question */
			m[o++] = 1;
			m[o++] = 'a';
			o += put16(m + o, 0xc000 | (int)(qname + 1 + 12 + 1 + 4));
		}
		put16(m + rdlen_at, (int)(o - rdlen_at - 2));
	}
	return o;
}

static void test_srv_parse(void **state)
{
	unsigned char m[512];
	struct pgw_srv_target t[8];
	char err[128];
	size_t len = build_answer(m, 0);
	int n;

	(void)state;
	n = pgw_srv_parse(m, (int)len, t, 8, err, sizeof(err));
	assert_int_equal(n, 3);
	/* priority first, then the heavier weight */
	assert_string_equal(t[0].host, "b.example.org");
	assert_int_equal(t[0].port, 2381);
	assert_string_equal(t[1].host, "a.example.org");
	assert_string_equal(t[2].host, "c.example.org");
	assert_int_equal(pgw_srv_parse(m, (int)len, t, 2, err, sizeof(err)), 2);
	/* NXDOMAIN: no records; SERVFAIL: an error */
	len = build_answer(m, 3);
	assert_int_equal(pgw_srv_parse(m, (int)len, t, 8, err, sizeof(err)), 0);
	len = build_answer(m, 2);
	assert_int_equal(pgw_srv_parse(m, (int)len, t, 8, err, sizeof(err)), -1);
	/* every truncation of a good answer is refused or parsed, never read past */
	len = build_answer(m, 0);
	for (size_t cut = 0; cut < len; cut++)
		assert_true(pgw_srv_parse(m, (int)cut, t, 8, err, sizeof(err)) <= 3);
	/* a pointer loop */
	m[12] = 0xc0;
	m[13] = 12;
	assert_int_equal(pgw_srv_parse(m, (int)len, t, 8, err, sizeof(err)), -1);
}

static void test_ciphers(void **state)
{
	char prio[640], why[300];

	(void)state;
	assert_true(pgw_tls_priority("ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-GCM-SHA384:"
	                             "!SSLv1:!SSLv2:!SSLv3:!TLSv1:!TLSv1.1",
	                             prio, sizeof(prio), why, sizeof(why)));
	assert_string_equal(prio, "NONE:+VERS-TLS1.3:+VERS-TLS1.2:+CTYPE-X509:+COMP-NULL:+SIGN-ALL:"
	                          "+GROUP-ALL:+ECDHE-RSA:+AES-256-GCM:+AEAD:+DHE-RSA");
	assert_true(pgw_tls_ciphers_ok("ECDHE-RSA-AES128-GCM-SHA256:!TLSv1.3", why, sizeof(why)));
	assert_true(pgw_tls_ciphers_ok("TLS_AES_128_GCM_SHA256:!TLSv1.2", why, sizeof(why)));
	assert_true(pgw_tls_ciphers_ok("AES128-SHA ECDHE-ECDSA-AES256-SHA", why, sizeof(why)));
	assert_false(pgw_tls_ciphers_ok("HIGH:!aNULL:!MD5", why, sizeof(why)));
	assert_non_null(strstr(why, "\"HIGH\""));
	assert_false(pgw_tls_ciphers_ok("ECDHE-RSA-AES256-GCM-SHA384:@STRENGTH", why, sizeof(why)));
	assert_false(pgw_tls_ciphers_ok("!TLSv1.2:!TLSv1.3:AES128-SHA", why, sizeof(why)));
	assert_false(pgw_tls_ciphers_ok(":::", why, sizeof(why)));
	assert_false(pgw_tls_ciphers_ok("!", why, sizeof(why)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cidr),     cmocka_unit_test(test_names),
	    cmocka_unit_test(test_srv_name), cmocka_unit_test(test_srv_parse),
	    cmocka_unit_test(test_ciphers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
