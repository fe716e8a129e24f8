/*
 * vip.h - the virtual IP's I/O: the address on an interface through rtnetlink
 * (RTM_GETADDR, RTM_NEWADDR, RTM_DELADDR), gratuitous ARP through an AF_PACKET socket,
 * and the capabilities that takes (CAP_NET_ADMIN, CAP_NET_RAW).  When the address is
 * added or removed is the core's choice (core/step.h, pgw_step_vip_*); this file only
 * carries it out.  IPv4 only.
 */
#ifndef PGW_VIP_H
#define PGW_VIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGW_VIP_ARP_DEFAULT 3  /* vip.arp_notify: true */
#define PGW_VIP_ARP_MAX     20 /* vip.arp_notify: at most */

struct pgw_vip_addr {
	int family;            /* AF_INET; 0 = not set */
	unsigned char addr[4]; /* network order */
	int prefix;            /* 0..32 */
};

/* "a.b.c.d/len" (len 1..32); false with why filled in. */
bool pgw_vip_parse_address(const char *s, struct pgw_vip_addr *out, char *why, size_t len);
/* A Linux interface name: 1..15 bytes, no '/', ':', whitespace, not "." or "..". */
bool pgw_vip_ifname_valid(const char *s);
/* "a.b.c.d/len" */
void pgw_vip_format(const struct pgw_vip_addr *a, char *buf, size_t len);

/* Is the address on the interface?  1 yes, 0 no, -1 error (errno; ENODEV: no interface). */
int pgw_vip_present(const char *ifname, const struct pgw_vip_addr *a);
/* Add / remove it: 0 (already there / already gone counts), -1 error (errno). */
int pgw_vip_add(const char *ifname, const struct pgw_vip_addr *a);
int pgw_vip_del(const char *ifname, const struct pgw_vip_addr *a);
/* count gratuitous ARP announcements (RFC 5227) for it, interval_ms apart: how many were
 * sent (errno set when fewer than count). */
int pgw_vip_garp(const char *ifname, const struct pgw_vip_addr *a, int count, int interval_ms);

/*
 * Capabilities after the privilege drop: keep CAP_NET_ADMIN and CAP_NET_RAW (permitted
 * and effective, never inheritable or ambient: PostgreSQL and commands started by the
 * daemon get none) when need is true, none otherwise.  pgw_vip_caps_prepare() goes
 * before setuid() (keep the permitted set across it), pgw_vip_caps_limit() after it (or
 * at start when not started as root, e.g. systemd's AmbientCapabilities=).  0 or -1
 * with why filled in.
 */
int pgw_vip_caps_prepare(bool need, char *why, size_t len);
int pgw_vip_caps_limit(bool need, char *why, size_t len);

#endif
