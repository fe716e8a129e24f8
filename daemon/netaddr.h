/*
 * netaddr.h - IP addresses and networks (restapi.allowlist), DNS names, and the DNS
 * SRV discovery of etcd endpoints (etcd3.srv), with libc's resolver.
 */
#ifndef PGW_NETADDR_H
#define PGW_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* An address with a prefix length: "10.0.0.0/8", "::1" (= /128), "192.0.2.7" (= /32). */
struct pgw_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};

/* Parse a literal address or a CIDR (host bits must be zero); false when it is neither. */
bool pgw_cidr_parse(const char *s, struct pgw_cidr *out);
/* Is the socket address (IPv4, IPv6, or IPv4-mapped IPv6) inside the network? */
bool pgw_cidr_match(const struct pgw_cidr *net, const struct sockaddr *sa);
/* The address of sa as a /32 or /128 network; false for other families. */
bool pgw_cidr_from_sockaddr(const struct sockaddr *sa, struct pgw_cidr *out);

/* A host name by RFC 1123 (labels of letters, digits, '-', at most 253 bytes). */
bool pgw_dns_name_ok(const char *s, char *why, size_t whylen);
/* etcd3.srv_suffix: letters, digits and '-', as in etcd's --discovery-srv-name. */
bool pgw_srv_suffix_ok(const char *s, char *why, size_t whylen);
/* restapi.allowlist: an address, a CIDR or a host name. */
bool pgw_allow_entry_ok(const char *s, char *why, size_t whylen);

struct pgw_srv_target {
	int priority, weight, port;
	char host[256];
};

/*
 * The SRV records of a DNS answer (the bytes res_query returned), sorted by priority,
 * then weight (highest first); a target "." (no service) is left out.  Returns how
 * many were stored (at most max), or -1 with err when the answer is malformed.
 */
int pgw_srv_parse(const unsigned char *answer, int len, struct pgw_srv_target *out, int max,
                  char *err, size_t errlen);

/* The SRV service name etcd uses: "_etcd-client-ssl-<suffix>._tcp.<domain>" etc. */
void pgw_srv_name(char *out, size_t outlen, bool ssl, const char *suffix, const char *domain);

#endif
