/*
 * netaddr.c - addresses, networks, host names and etcd's DNS SRV discovery; see
 * netaddr.h.
 */
#include "netaddr.h"
#include "config.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRV_MAX 16 /* endpoints taken from one SRV answer */

bool pgw_cidr_parse(const char *s, struct pgw_cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	int max;

	if (alen == 0 || alen >= INET6_ADDRSTRLEN)
		return false;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return false;
	}
	out->bits = max;
	if (slash) {
		const char *p = slash + 1;
		int bits = 0;

		if (!*p || strlen(p) > 3 || (p[0] == '0' && p[1]))
			return false;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return false;
			bits = bits * 10 + (*p - '0');
		}
		if (bits > max)
			return false;
		out->bits = bits;
		/* host bits set ("10.0.0.1/8") are a typo more often than not */
		for (int i = bits; i < max; i++)
			if (out->addr[i / 8] & (0x80 >> (i % 8)))
				return false;
	}
	return true;
}

bool pgw_cidr_from_sockaddr(const struct sockaddr *sa, struct pgw_cidr *out)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		memcpy(out->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		out->family = AF_INET;
		out->bits = 32;
		return true;
	}
	if (sa->sa_family != AF_INET6)
		return false;
	memcpy(out->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	out->family = AF_INET6;
	out->bits = 128;
	if (memcmp(out->addr, mapped, 12) == 0) { /* ::ffff:a.b.c.d is a.b.c.d */
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->bits = 32;
	}
	return true;
}

bool pgw_cidr_match(const struct pgw_cidr *net, const struct sockaddr *sa)
{
	struct pgw_cidr a;
	int full, rest;

	if (!pgw_cidr_from_sockaddr(sa, &a) || a.family != net->family)
		return false;
	full = net->bits / 8;
	rest = net->bits % 8;
	if (memcmp(a.addr, net->addr, (size_t)full) != 0)
		return false;
	return rest == 0 ||
	       ((a.addr[full] ^ net->addr[full]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

bool pgw_dns_name_ok(const char *s, char *why, size_t whylen)
{
	size_t len = strlen(s), label = 0;

	if (len > 0 && s[len - 1] == '.')
		len--; /* a fully qualified "example.org." */
	if (len == 0 || len > 253)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.') {
			if (label == 0 || s[i - 1] == '-')
				goto bad;
			label = 0;
			continue;
		}
		if (!isalnum(ch) && !(ch == '-' && label > 0) && !(ch == '_' && label == 0))
			goto bad;
		if (++label > 63)
			goto bad;
	}
	if (s[len - 1] == '-')
		goto bad;
	return true;
bad:
	snprintf(why, whylen,
	         "expected a DNS name (labels of letters, digits and '-'), got \"%.64s\"", s);
	return false;
}

bool pgw_srv_suffix_ok(const char *s, char *why, size_t whylen)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			len = 0;
	if (len > 0 && len <= 63)
		return true;
	snprintf(why, whylen,
	         "expected letters, digits and '-' (part of _etcd-client-<suffix>), got \"%.64s\"",
	         s);
	return false;
}

bool pgw_allow_entry_ok(const char *s, char *why, size_t whylen)
{
	struct pgw_cidr net;

	if (pgw_cidr_parse(s, &net))
		return true;
	if (!strchr(s, '/') && !strchr(s, ':') && pgw_dns_name_ok(s, why, whylen) &&
	    strspn(s, "0123456789.") != strlen(s))
		return true;
	snprintf(why, whylen,
	         "expected an IP address, a network such as 10.0.0.0/8 (no host bits set) or a "
	         "host name, got \"%.64s\"",
	         s);
	return false;
}

void pgw_srv_name(char *out, size_t outlen, bool ssl, const char *suffix, const char *domain)
{
	snprintf(out, outlen, "_etcd-client%s%s%s._tcp.%s", ssl ? "-ssl" : "",
	         suffix && *suffix ? "-" : "", suffix && *suffix ? suffix : "", domain);
}

static int u16(const unsigned char *p)
{
	return (p[0] << 8) | p[1];
}

static int srv_cmp(const void *a, const void *b)
{
	const struct pgw_srv_target *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return x->weight > y->weight ? -1 : x->weight < y->weight;
}

int pgw_srv_parse(const unsigned char *answer, int len, struct pgw_srv_target *out, int max,
                  char *err, size_t errlen)
{
	const unsigned char *end = answer + len, *p;
	char name[NS_MAXDNAME];
	int qd, an, n = 0, k;

	if (len < 12)
		goto bad;
	if ((answer[3] & 0x0f) == 3) /* NXDOMAIN */
		return 0;
	if ((answer[3] & 0x0f) != 0) {
		snprintf(err, errlen, "DNS error (rcode %d)", answer[3] & 0x0f);
		return -1;
	}
	qd = u16(answer + 4);
	an = u16(answer + 6);
	p = answer + 12;
	for (int i = 0; i < qd; i++) {
		k = dn_expand(answer, end, p, name, sizeof(name));
		if (k < 0 || end - p < k + 4)
			goto bad;
		p += k + 4;
	}
	for (int i = 0; i < an; i++) {
		int type, rdlen;

		k = dn_expand(answer, end, p, name, sizeof(name));
		if (k < 0 || end - p < k + 10)
			goto bad;
		p += k;
		type = u16(p);
		rdlen = u16(p + 8);
		p += 10;
		if (end - p < rdlen)
			goto bad;
		if (type == ns_t_srv && u16(p - 8) == ns_c_in) {
			struct pgw_srv_target t;

			if (rdlen < 7)
				goto bad;
			t.priority = u16(p);
			t.weight = u16(p + 2);
			t.port = u16(p + 4);
			k = dn_expand(answer, end, p + 6, t.host, sizeof(t.host));
			if (k < 0 || k > rdlen - 6)
				goto bad;
			if (t.host[0] && strcmp(t.host, ".") != 0 && t.port > 0 && n < max)
				out[n++] = t;
		}
		p += rdlen;
	}
	qsort(out, (size_t)n, sizeof(*out), srv_cmp);
	return n;
bad:
	snprintf(err, errlen, "malformed DNS answer");
	return -1;
}

/* One SRV name: how many endpoints it gave, -1 on a resolver error (err). */
static int srv_query(const char *name, struct pgw_srv_target *t, int max, char *err, size_t errlen)
{
	unsigned char answer[8192];
	int len = res_query(name, ns_c_in, ns_t_srv, answer, sizeof(answer));

	if (len < 0) {
		/* h_errno: HOST_NOT_FOUND / NO_DATA mean "no such records" */
		if (h_errno == HOST_NOT_FOUND || h_errno == NO_DATA)
			return 0;
		snprintf(err, errlen, "%.180s: %s", name, hstrerror(h_errno));
		return -1;
	}
	return pgw_srv_parse(answer, len, t, max, err, errlen);
}

int pgw_config_resolve_etcd_srv(struct pgw_config *cfg, char *err, size_t errlen)
{
	struct pgw_srv_target t[SRV_MAX];
	char name[NS_MAXDNAME + 64], qerr[256] = "";
	int n = 0;
	bool ssl = true;

	if (!cfg->etcd3.srv)
		return 0;
	/* etcd's order: the TLS endpoints first (Patroni asks the same names) */
	for (int i = 0; i < 2 && n <= 0; i++) {
		ssl = i == 0;
		pgw_srv_name(name, sizeof(name), ssl, cfg->etcd3.srv_suffix, cfg->etcd3.srv);
		n = srv_query(name, t, SRV_MAX, qerr, sizeof(qerr));
	}
	if (n <= 0) {
		snprintf(err, errlen, "%s: etcd3.srv %s: no etcd endpoints in DNS (%s%s)",
		         cfg->path, cfg->etcd3.srv, qerr[0] ? qerr : "no SRV records for ",
		         qerr[0] ? "" : name);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char hp[300], **items;
		size_t hl = strlen(t[i].host);

		if (hl > 0 && t[i].host[hl - 1] == '.')
			t[i].host[hl - 1] = '\0';
		snprintf(hp, sizeof(hp), strchr(t[i].host, ':') ? "[%s]:%d" : "%s:%d", t[i].host,
		         t[i].port);
		items = realloc(cfg->etcd3.hosts.items, (cfg->etcd3.hosts.n + 1) * sizeof(*items));
		if (!items || !(items[cfg->etcd3.hosts.n] = strdup(hp))) {
			if (items)
				cfg->etcd3.hosts.items = items;
			snprintf(err, errlen, "etcd3.srv: out of memory");
			return -1;
		}
		cfg->etcd3.hosts.items = items;
		cfg->etcd3.hosts.n++;
	}
	free(cfg->etcd3.protocol);
	cfg->etcd3.protocol = strdup(ssl ? "https" : "http");
	if (!cfg->etcd3.protocol) {
		snprintf(err, errlen, "etcd3.srv: out of memory");
		return -1;
	}
	return 0;
}
