/*
 * lease.h - the deadline arithmetic of the leader lease (ARCHITECTURE.md §4,
 * rules 1, 2, 3, 4 and 7), in one place.  Pure functions on monotonic
 * milliseconds; no clock reads here.
 *
 *   D = t_send + TTL            for the last renewal that succeeded (rule 1)
 *   writes allowed iff now < D - S                                    (rule 2)
 *   pet the watchdog only if now - t_send <= S - R                   (rule 3)
 */
#ifndef PGW_LEASE_H
#define PGW_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGW_RESET_ALLOWANCE_MS 1000 /* R */
#define PGW_SAFETY_MARGIN_S    5    /* S when watchdog.safety_margin is not set */

struct pgw_lease {
	int64_t id;          /* etcd lease ID; 0 = none */
	int ttl_s;           /* TTL etcd granted */
	int64_t t_send_ms;   /* when the last successful renewal was sent */
	int64_t deadline_ms; /* D; meaningless when id == 0 */
	/* Rule 7: the lease passed D without a renewal, so this node no longer counts on
	 * it (id is 0), but etcd may still hold it: after a loss of etcd quorum, etcd
	 * restarts every lease's timer when it elects a leader again.  Only a keepalive
	 * of this ID that succeeds (etcd never renews an expired lease) brings it back,
	 * with a new D counted from that keepalive's send time.  0 = none. */
	int64_t lapsed_id;
};

/* A grant or keepalive sent at t_send succeeded and etcd reports ttl_s. */
void pgw_lease_renewed(struct pgw_lease *l, int64_t id, int64_t t_send_ms, int ttl_s);
/* The lease is gone (keepalive said TTL 0, revoked): forget it, lapsed or not. */
void pgw_lease_lost(struct pgw_lease *l);
/* Rule 7: D passed without a renewal.  Writes stop (id 0); the ID is kept as
 * lapsed_id, to be renewed only by a keepalive that succeeds. */
void pgw_lease_lapse(struct pgw_lease *l);
/* The lease the next keepalive is for: the current one, else the lapsed one; 0 = grant. */
int64_t pgw_lease_to_renew(const struct pgw_lease *l);

/*
 * Rule 2 with an armed watchdog: the watchdog fires at fires_ms unless petted, and it
 * is the backstop for a hung daemon, not the way a live one gives up.  A live daemon
 * whose renewals fail must have stopped PostgreSQL (and then disarmed, rule 5) before
 * then, or every etcd outage of a few seconds resets a healthy primary's machine, and
 * with it the chance to take writes again on the same lease when etcd is back.  So D
 * is lowered until D - S <= fires_ms - lead_ms: writes stop lead_ms before the
 * watchdog could fire.  Lowering D is always safe (rule 1 is an upper bound).
 * fires_ms 0 (no armed watchdog) or no lease: unchanged.
 */
void pgw_lease_cap_to_watchdog(struct pgw_lease *l, int64_t fires_ms, int64_t margin_ms,
                               int64_t lead_ms);
#define PGW_WD_STOP_LEAD_MS 1000 /* stopping PostgreSQL at once and disarming take less */

/* Rule 2: may this node accept writes now?  False when there is no lease. */
bool pgw_lease_allows_writes(const struct pgw_lease *l, int64_t now_ms, int64_t margin_ms);
/* D - S - now: how long writes may continue (negative when past). */
int64_t pgw_lease_write_budget_ms(const struct pgw_lease *l, int64_t now_ms, int64_t margin_ms);
/* Rule 3: may the watchdog be petted after the renewal sent at t_send? */
bool pgw_lease_may_pet(int64_t t_send_ms, int64_t now_ms, int64_t margin_ms);

/*
 * Rule 3 when a renewal is overdue: a daemon that dies closes the watchdog, and the
 * close pings it once, so the reset comes W after the death.  A leader whose renewal
 * failed may die any time before its next loop, up to loop_wait + 1 s from now, so W
 * must then be at most D - R - now - loop_wait - 1 s (at least 1 s).  0: no lease.
 */
int pgw_lease_wd_bound_s(const struct pgw_lease *l, int64_t now_ms, int loop_wait_s);

/*
 * Rule 4: loop_wait + 2 * retry_timeout <= ttl, and a margin that leaves time
 * to renew (0 < margin < ttl).  Returns false and fills err when violated.
 */
bool pgw_timing_valid(int ttl, int loop_wait, int retry_timeout, int margin_s, char *err,
                      size_t errlen);

/*
 * How long one etcd operation may take: retry_timeout, but while this node may
 * be writing, never past D - S (so a stalled renewal cannot outlive the right
 * to write).  At least 100 ms.
 */
int pgw_lease_op_timeout_ms(const struct pgw_lease *l, int64_t now_ms, int64_t margin_ms,
                            int retry_timeout_s, bool writing);

#endif
