/*
 * vip.c - the virtual IP's I/O; see vip.h.  rtnetlink by hand with the kernel headers:
 * one request, one acknowledgement (or one dump) per call, on a socket opened for it.
 */
#include "vip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/if_ether.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NL_TIMEOUT_S 2 /* the kernel answers at once; this only bounds a surprise */

bool pgw_vip_parse_address(const char *s, struct pgw_vip_addr *out, char *why, size_t len)
{
	const char *slash = strchr(s, '/');
	char host[INET_ADDRSTRLEN];
	size_t n;
	long prefix = 0;

	memset(out, 0, sizeof(*out));
	if (strchr(s, ':')) {
		snprintf(why, len, "IPv6 is not supported (IPv4 only)");
		return false;
	}
	if (!slash) {
		snprintf(why, len, "a prefix length is required (e.g. 10.0.0.100/24)");
		return false;
	}
	n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(host)) {
		snprintf(why, len, "expected an IPv4 address before '/'");
		return false;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, out->addr) != 1) {
		snprintf(why, len, "\"%s\" is not an IPv4 address", host);
		return false;
	}
	if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 2) {
		snprintf(why, len, "expected a prefix length 1..32 after '/'");
		return false;
	}
	for (const char *p = slash + 1; *p; p++) {
		if (*p < '0' || *p > '9') {
			snprintf(why, len, "expected a prefix length 1..32 after '/'");
			return false;
		}
		prefix = prefix * 10 + (*p - '0');
	}
	if (prefix < 1 || prefix > 32) {
		snprintf(why, len, "prefix length %ld is not in 1..32", prefix);
		return false;
	}
	if (out->addr[0] == 0 || out->addr[0] == 127 || out->addr[0] >= 224) {
		snprintf(why, len, "%s is not a unicast address a client can reach", host);
		return false;
	}
	out->family = AF_INET;
	out->prefix = (int)prefix;
	return true;
}

bool pgw_vip_ifname_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= ' ' || ch == '/' || ch == ':' || ch >= 0x7f)
			return false;
	}
	return true;
}

void pgw_vip_format(const struct pgw_vip_addr *a, char *buf, size_t len)
{
	char host[INET_ADDRSTRLEN] = "?";

	inet_ntop(AF_INET, a->addr, host, sizeof(host));
	snprintf(buf, len, "%s/%d", host, a->prefix);
}

/* --- rtnetlink --- */

struct nl_req {
	struct nlmsghdr nh;
	struct ifaddrmsg ifa;
	char attrs[64];
};

static void nl_attr(struct nlmsghdr *n, unsigned short type, const void *data, size_t len)
{
	struct rtattr *rta = (struct rtattr *)((char *)n + NLMSG_ALIGN(n->nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

static int nl_open(void)
{
	struct timeval tv = {.tv_sec = NL_TIMEOUT_S};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The interface's index, 0 with errno ENODEV when there is none. */
static int ifindex_of(const char *ifname)
{
	unsigned idx = if_nametoindex(ifname);

	if (idx == 0)
		errno = ENODEV;
	return (int)idx;
}

static void nl_prepare(struct nl_req *r, unsigned short type, unsigned short flags, int idx,
                       const struct pgw_vip_addr *a)
{
	memset(r, 0, sizeof(*r));
	r->nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	r->nh.nlmsg_type = type;
	r->nh.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | flags);
	r->nh.nlmsg_seq = (unsigned)time(NULL);
	r->ifa.ifa_family = AF_INET;
	r->ifa.ifa_prefixlen = (unsigned char)a->prefix;
	r->ifa.ifa_index = (unsigned)idx;
	r->ifa.ifa_scope = RT_SCOPE_UNIVERSE;
}

/*
 * Send r and read the answers until the acknowledgement (or the dump's end); each
 * RTM_NEWADDR of a dump goes to match().  0, or -1 with errno.
 */
static int nl_talk(struct nl_req *r, int (*match)(const struct nlmsghdr *h, void *arg), void *arg)
{
	char buf[16384] __attribute__((aligned(4)));
	int fd = nl_open(), rc = -1, err = 0;
	bool done = false;

	if (fd < 0)
		return -1;
	if (send(fd, r, r->nh.nlmsg_len, 0) < 0)
		goto out;
	while (!done) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		int left;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		left = (int)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)left);
		     h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_seq != r->nh.nlmsg_seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
			} else if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				err = -e->error;
				done = true;
			} else if (match && h->nlmsg_type == RTM_NEWADDR && !err) {
				err = match(h, arg);
			}
		}
	}
	if (err) {
		errno = err;
		goto out;
	}
	rc = 0;
out:
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

struct present_ctx {
	int idx;
	const struct pgw_vip_addr *a;
	bool found;
};

static int match_addr(const struct nlmsghdr *h, void *arg)
{
	struct present_ctx *p = arg;
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	int len = (int)IFA_PAYLOAD(h);

	if (ifa->ifa_family != AF_INET || (int)ifa->ifa_index != p->idx)
		return 0;
	for (const struct rtattr *rta = IFA_RTA(ifa); RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
		if (rta->rta_type == IFA_LOCAL && RTA_PAYLOAD(rta) == 4 &&
		    memcmp(RTA_DATA(rta), p->a->addr, 4) == 0)
			p->found = true;
	return 0;
}

int pgw_vip_present(const char *ifname, const struct pgw_vip_addr *a)
{
	struct present_ctx p = {ifindex_of(ifname), a, false};
	struct nl_req r;

	if (p.idx == 0)
		return -1;
	nl_prepare(&r, RTM_GETADDR, NLM_F_DUMP, 0, a);
	r.ifa.ifa_prefixlen = 0;
	return nl_talk(&r, match_addr, &p) != 0 ? -1 : p.found;
}

static int nl_change(unsigned short type, const char *ifname, const struct pgw_vip_addr *a)
{
	int idx = ifindex_of(ifname);
	struct nl_req r;

	if (idx == 0)
		return -1;
	nl_prepare(
	    &r, type,
	    (unsigned short)(NLM_F_ACK | (type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0)),
	    idx, a);
	nl_attr(&r.nh, IFA_LOCAL, a->addr, 4);
	nl_attr(&r.nh, IFA_ADDRESS, a->addr, 4);
	return nl_talk(&r, NULL, NULL);
}

int pgw_vip_add(const char *ifname, const struct pgw_vip_addr *a)
{
	if (nl_change(RTM_NEWADDR, ifname, a) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

int pgw_vip_del(const char *ifname, const struct pgw_vip_addr *a)
{
	if (nl_change(RTM_DELADDR, ifname, a) != 0 && errno != EADDRNOTAVAIL)
		return -1;
	return 0;
}

/* --- gratuitous ARP --- */

struct garp {
	struct arphdr h;
	unsigned char sha[ETH_ALEN], sip[4], tha[ETH_ALEN], tip[4];
} __attribute__((packed));

int pgw_vip_garp(const char *ifname, const struct pgw_vip_addr *a, int count, int interval_ms)
{
	struct sockaddr_ll to = {
	    .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP), .sll_halen = ETH_ALEN};
	struct garp p = {.h = {.ar_hrd = htons(ARPHRD_ETHER),
	                       .ar_pro = htons(ETH_P_IP),
	                       .ar_hln = ETH_ALEN,
	                       .ar_pln = 4,
	                       .ar_op = htons(ARPOP_REQUEST)}};
	struct ifreq ifr;
	int fd, sent = 0, err = 0;

	if (count <= 0)
		return 0;
	to.sll_ifindex = ifindex_of(ifname);
	if (to.sll_ifindex == 0)
		return 0;
	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
	if (fd < 0)
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0 || ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
		err = errno ? errno : EAFNOSUPPORT;
		close(fd);
		errno = err;
		return 0;
	}
	/* RFC 5227 announcement: sender = target = the address, target hardware zero */
	memcpy(p.sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	memcpy(p.sip, a->addr, 4);
	memcpy(p.tip, a->addr, 4);
	memset(to.sll_addr, 0xff, ETH_ALEN);
	for (int i = 0; i < count; i++) {
		if (i > 0 && interval_ms > 0) {
			struct timespec ts = {interval_ms / 1000,
			                      (long)(interval_ms % 1000) * 1000000};

			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
		}
		if (sendto(fd, &p, sizeof(p), 0, (const struct sockaddr *)&to, sizeof(to)) ==
		    (ssize_t)sizeof(p))
			sent++;
		else
			err = errno;
	}
	close(fd);
	errno = err;
	return sent;
}

/* --- capabilities --- */

#define NET_CAPS ((1u << CAP_NET_ADMIN) | (1u << CAP_NET_RAW))

int pgw_vip_caps_prepare(bool need, char *why, size_t len)
{
	if (need && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
		snprintf(why, len, "prctl(PR_SET_KEEPCAPS): %s", strerror(errno));
		return -1;
	}
	return 0;
}

int pgw_vip_caps_limit(bool need, char *why, size_t len)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	unsigned want = need ? NET_CAPS : 0;

	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	/* ambient capabilities (systemd's AmbientCapabilities=) would pass to PostgreSQL */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL &&
	    (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_ADMIN, 0, 0) != 0 ||
	     prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_RAW, 0, 0) != 0)) {
		snprintf(why, len, "prctl(PR_CAP_AMBIENT_CLEAR_ALL): %s", strerror(errno));
		return -1;
	}
	memset(d, 0, sizeof(d));
	d[0].permitted = d[0].effective = want;
	if (syscall(SYS_capset, &h, d) == 0)
		return 0;
	/* capset may be filtered (systemd's SystemCallFilter=~@privileged): then what the
	 * process has must already be what it needs, or less than it needs */
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) != 0) {
		snprintf(why, len, "capget: %s", strerror(errno));
		return -1;
	}
	if ((d[0].permitted & ~want) != 0 || d[1].permitted != 0) {
		snprintf(why, len, "cannot drop capabilities beyond CAP_NET_ADMIN/CAP_NET_RAW: %s",
		         strerror(errno));
		return -1;
	}
	if ((d[0].effective & want) != want) {
		snprintf(
		    why, len,
		    "vip needs CAP_NET_ADMIN and CAP_NET_RAW: start pgwarden as root (it keeps "
		    "only these two) or grant them (systemd: AmbientCapabilities=)");
		return -1;
	}
	return 0;
}
