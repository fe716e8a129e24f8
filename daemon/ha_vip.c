/*
 * ha_vip.c - the virtual IP in the HA loop (vip: in the configuration).  When the
 * address is added or removed is the core's choice (core/step.c, pgw_step_vip_*); this
 * file carries it out through vip.c and logs why.
 */
#include "ha_int.h"
#include "vip.h"

#define GARP_INTERVAL_MS 100

static bool vip_on(const struct ha *h)
{
	return h->cfg->vip.address.family != 0;
}

void ha_vip_observe(struct ha *h)
{
	char addr[64];
	int p;

	if (!vip_on(h))
		return;
	p = pgw_vip_present(h->cfg->vip.interface, &h->cfg->vip.address);
	if (p < 0) { /* in doubt the remembered state stays: a drop is still tried */
		pgw_vip_format(&h->cfg->vip.address, addr, sizeof(addr));
		pgw_warn("vip: cannot tell whether %s is on %s: %s", addr, h->cfg->vip.interface,
		         strerror(errno));
		return;
	}
	pgw_step_vip_observed(&h->st, p == 1);
}

static void vip_remove(struct ha *h, const char *why)
{
	char addr[64];

	pgw_vip_format(&h->cfg->vip.address, addr, sizeof(addr));
	if (pgw_vip_del(h->cfg->vip.interface, &h->cfg->vip.address) != 0) {
		/* still held: tried again at the next check */
		pgw_error("vip: cannot remove %s from %s (%s): %s", addr, h->cfg->vip.interface,
		          why, strerror(errno));
		return;
	}
	pgw_step_vip_dropped(&h->st);
	pgw_warn("vip: removed %s from %s: %s", addr, h->cfg->vip.interface, why);
}

void ha_vip_guard(struct ha *h, const struct pgw_obs *o, const struct pgw_action *a)
{
	const char *why;

	if (!vip_on(h))
		return;
	why = pgw_step_vip_drop(&h->st, &h->lease, ha_mono_ms(), SAFETY_MARGIN_MS, o, a);
	if (why)
		vip_remove(h, why);
}

void ha_vip_after(struct ha *h, const struct pgw_action *a, bool holds)
{
	const struct pgw_vip_addr *va = &h->cfg->vip.address;
	const char *ifname = h->cfg->vip.interface;
	int64_t budget;
	int n, want;
	char addr[64];

	if (!vip_on(h) || !pgw_step_vip_add(&h->st, a->kind, holds || h->won_key, &h->lease,
	                                    ha_mono_ms(), SAFETY_MARGIN_MS))
		return;
	pgw_vip_format(va, addr, sizeof(addr));
	if (pgw_vip_add(ifname, va) != 0) {
		pgw_error("vip: cannot add %s on %s: %s", addr, ifname, strerror(errno));
		return;
	}
	pgw_step_vip_added(&h->st, h->lease.id);
	pgw_info("vip: added %s on %s (leader key and primary)", addr, ifname);
	/* the announcements block the loop: they end a second before D - S at the latest */
	budget = pgw_lease_write_budget_ms(&h->lease, ha_mono_ms(), SAFETY_MARGIN_MS) - 1000;
	want = h->cfg->vip.arp_notify;
	if (want > 1 && (int64_t)(want - 1) * GARP_INTERVAL_MS > budget)
		want = budget > 0 ? (int)(budget / GARP_INTERVAL_MS) + 1 : 1;
	n = pgw_vip_garp(ifname, va, want, GARP_INTERVAL_MS);
	if (n < want)
		pgw_warn("vip: sent %d of %d gratuitous ARPs for %s on %s: %s", n, want, addr,
		         ifname, strerror(errno));
}

void ha_vip_release(struct ha *h)
{
	if (vip_on(h) && h->st.vip_held)
		vip_remove(h, "pgwarden is stopping");
}
