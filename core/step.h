/*
 * step.h - what a node remembers between two observations, and every change to
 * it, in one place (ARCHITECTURE.md §8).
 *
 * The HA loop (ha.c) and the multi-node simulator (tests/sim/) drive a node the
 * same way, through these functions only:
 *
 *   pgw_step_must_stop()      rule 7, first thing after any pause
 *   pgw_step_pg_observed()    after each look at PostgreSQL
 *   pgw_step_cluster_read()   after each read of the cluster from etcd
 *   pgw_step_probe()          fast takeover: did the leader answer?
 *   pgw_step()                fills the remembered facts into the observation,
 *                             decides (decide.c) and records what the decision implies
 *   pgw_step_*()              the outcome of an effect (rewind failed, fenced, promoted)
 *
 * Everything here is pure: no I/O, no clock reads, no globals.
 */
#ifndef PGW_STEP_H
#define PGW_STEP_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster_types.h"
#include "decide.h"
#include "lease.h"
#include "pg_types.h"
#include "sync.h"

struct pgw_node_state {
	/* PostgreSQL may be accepting writes: it ran as primary at the last observation
	 * that could tell (a server that is up but not answering keeps the value). */
	bool was_primary;
	bool streamed; /* WAL receiver streaming while a leader existed */
	/* the leader's last known WAL position (and whose it is), -1 unknown */
	char optime_leader[PGW_NAME_MAX];
	int64_t leader_optime;
	/* holding the leader key while PostgreSQL is not primary, since (mono ms); 0 */
	int64_t primary_down_since;
	/* the last pg_rewind from rewind_failed_from failed: re-clone instead */
	bool rewind_failed;
	char rewind_failed_from[PGW_NAME_MAX];
	/* the leader this node fenced (with its lease), until it promoted */
	char fenced[PGW_NAME_MAX];
	int64_t fenced_lease;
	/* fast takeover: since when (mono ms, 0 = it answers) the leader named here, with
	 * this lease, answered neither on PostgreSQL nor on REST (the send time of the
	 * first probe it left unanswered since its last answer), and the span [from, to]
	 * (mono ms, 0 = none) in which etcd's readings prove its lease was not renewed */
	int64_t leader_silent_since;
	char silent_leader[PGW_NAME_MAX];
	int64_t silent_lease;
	int64_t unrenewed_from, unrenewed_to;
	/* S3: what the current leader's member key said of its watchdog, while it led
	 * (its key goes with its lease, so it is remembered here) */
	char wd_leader[PGW_NAME_MAX];
	int64_t wd_lease;
	bool wd_known; /* a member key of that incarnation spoke after it took the key */
	bool wd_leader_armed;
	/* the etcd revision at which this node first saw no leader (0: a leader exists):
	 * member keys up to it predate the loss, and their positions may be stale */
	int64_t no_leader_rev;
	int64_t no_leader_since_ms; /* ... and when (mono ms) */
	/* the mod_revision of the last leader key seen: a manual failover request older
	 * than it predates that leader and is not about it */
	int64_t leader_rev;
	/* this data directory ran as primary (control file) when PostgreSQL was started as a
	 * replica, with no leader to rewind from: it may hold WAL the next leader never had,
	 * so it is treated as an old primary (rewind, or re-clone) until it has rejoined */
	bool ran_as_primary;
	/* since when (mono ms, 0 = not) pgw_diverged() holds while PostgreSQL does not stream */
	int64_t diverged_since;
	/* S3: the lost leader of the record (name, the lease it led with) was seen back as a
	 * running replica under another lease: it no longer writes, even if it dies again
	 * and its member key goes with its new lease */
	char back_leader[PGW_NAME_MAX];
	int64_t back_lease;
	/* synchronous_mode, as leader: the barrier of the names in effect (sync.h) */
	struct pgw_sync_track sync;
	/* postgresql.pre_promote vetoed this node's promotion at this time (mono ms), 0 = no
	 * veto in force; forgotten once another member leads, or after
	 * pgw_pre_promote_holdoff_ms() */
	int64_t pre_promote_veto_ms;
	/* vip: the address is on this node's interface (as last seen, added or removed), and
	 * the lease it was added under (0: not added by this daemon under a lease, e.g. left
	 * over by a crashed one) */
	bool vip_held;
	int64_t vip_lease;
};

void pgw_state_init(struct pgw_node_state *s);

/* Rule 7: PostgreSQL may be writing and the lease is past D - S: stop it at once. */
bool pgw_step_must_stop(const struct pgw_node_state *s, const struct pgw_lease *l, int64_t now_ms,
                        int64_t margin_ms);

/* PostgreSQL was looked at (or stopped, started: call it again). */
void pgw_step_pg_observed(struct pgw_node_state *s, const struct pgw_pg_state *pg);
/* PostgreSQL was started as a primary: it may accept writes before it is seen. */
void pgw_step_pg_writable(struct pgw_node_state *s);
/* PostgreSQL was stopped. */
void pgw_step_pg_stopped(struct pgw_node_state *s);

/* The cluster was read (etcd_ok false: the read failed and c is stale). */
void pgw_step_cluster_read(struct pgw_node_state *s, bool etcd_ok, const struct pgw_cluster *c,
                           const struct pgw_pg_state *pg, int64_t now_ms);

/* Fast takeover: should the leader be probed now (this node follows another leader)? */
bool pgw_step_watching(const struct pgw_node_state *s, bool fast_takeover_on, bool etcd_ok,
                       const struct pgw_cluster *c, const char *self);
/*
 * What the probes of the leader found (ha.c asks while the loop waits; the probes
 * themselves overlap, daemon/probe.c).  A live leader renews its lease every
 * PGW_HEARTBEAT_MS while fast takeover is on; a reading of its lease in etcd that says
 * it was not renewed for PGW_LEASE_STALE_MS proves [recv - PGW_LEASE_STALE_MS, sent]
 * free of renewals, and readings that overlap so chain into a longer span.
 */
#define PGW_HEARTBEAT_MS   500
#define PGW_LEASE_STALE_MS 1000
enum pgw_lease_reading {
	PGW_LEASE_NOT_READ, /* no reading this time: the span stays as it was */
	PGW_LEASE_RENEWED,  /* renewed within PGW_LEASE_STALE_MS, or the reading failed */
	PGW_LEASE_STALE,    /* proven not renewed for PGW_LEASE_STALE_MS, or gone */
};
struct pgw_probe {
	int64_t silent_since; /* send time of the first probe unanswered since the last
	                       * answered one (mono ms); 0: it answers */
	enum pgw_lease_reading lease;
	int64_t lease_sent_ms, lease_recv_ms; /* when the reading was asked and answered */
};
/* The probes' answer for leader/lease (watching false: not probing, forget). */
void pgw_step_probe(struct pgw_node_state *s, bool watching, const char *leader, int64_t lease,
                    const struct pgw_probe *p);
/* How long the current leader (same name and lease) has been silent; 0 = it answers. */
int64_t pgw_step_silence_ms(const struct pgw_node_state *s, const struct pgw_cluster *c,
                            int64_t now_ms);
/* For how long etcd proves the silent leader's lease unrenewed (0: not proven). */
int64_t pgw_step_unrenewed_ms(const struct pgw_node_state *s, const struct pgw_cluster *c);
/*
 * Is a lease proven unrenewed for PGW_LEASE_STALE_MS?  etcd reports the remaining TTL
 * truncated to whole seconds: ttl_left = floor(granted - elapsed), so elapsed >
 * granted - ttl_left - 1.  ttl_left < 0: the lease is gone.
 */
bool pgw_lease_ttl_stale(int64_t ttl_left, int64_t granted);

/*
 * The decision: fills the remembered facts into *o (may_write, leader_optime,
 * rewind_failed, primary_down_since, silence, the old leader's watchdog, the
 * self_member's streaming flag), updates primary_down_since and decides.
 */
void pgw_step(struct pgw_node_state *s, struct pgw_obs *o, struct pgw_action *a);

/* Rule 3: must the watchdog be armed before this action is carried out? */
bool pgw_step_needs_watchdog(const struct pgw_node_state *s, const struct pgw_action *a);
/*
 * Arming failed (watchdog mode required): the decision again, now knowing this node
 * may not lead (rule 4).  Same observation otherwise.
 */
void pgw_step_without_watchdog(struct pgw_node_state *s, struct pgw_obs *o, struct pgw_action *a);
/* Did this action give up writing (PostgreSQL stopped, key released)? */
bool pgw_action_gives_up(enum pgw_action_kind k);
/* Rule 5: after the action (and a fresh look at PostgreSQL when it gave up), may the
 * watchdog be disarmed?  held: the node held the key at the observation. */
bool pgw_step_may_disarm(const struct pgw_node_state *s, const struct pgw_action *a, bool held);

/*
 * The virtual IP (vip: in the configuration).  Holding the address is part of "may
 * accept writes" (ARCHITECTURE.md §4 rule 2): only while PostgreSQL runs as primary, the
 * node holds the leader key on the lease the address was added under, and now < D - S
 * of that lease.  The loop asks pgw_step_vip_drop() with o and a NULL at the rule 7
 * check and right after each renewal, and with the cycle's observation and decision
 * before it carries the action out: so the address goes before PostgreSQL stops
 * accepting writes, at the same deadline.  After the action, pgw_step_vip_add() says
 * whether to add it (holds_key: the node holds the leader key now, e.g. it took it).
 */
void pgw_step_vip_observed(struct pgw_node_state *s, bool present);
/* NULL: the address may stay (or is not held); else why it must go now. */
const char *pgw_step_vip_drop(const struct pgw_node_state *s, const struct pgw_lease *l,
                              int64_t now_ms, int64_t margin_ms, const struct pgw_obs *o,
                              const struct pgw_action *a);
bool pgw_step_vip_add(const struct pgw_node_state *s, enum pgw_action_kind k, bool holds_key,
                      const struct pgw_lease *l, int64_t now_ms, int64_t margin_ms);
void pgw_step_vip_added(struct pgw_node_state *s, int64_t lease);
void pgw_step_vip_dropped(struct pgw_node_state *s);

/* Effects' outcomes. */
void pgw_step_rewind_failed(struct pgw_node_state *s, const char *from);
void pgw_step_cloned(struct pgw_node_state *s);
void pgw_step_rewound(struct pgw_node_state *s);
void pgw_step_fenced(struct pgw_node_state *s, const char *member, int64_t lease);
/* pre_promote exited non-zero (or timed out) at now_ms: this node does not promote, and
 * stays out of the election for pgw_pre_promote_holdoff_ms() (decide.c's rows). */
void pgw_step_pre_promote_vetoed(struct pgw_node_state *s, int64_t now_ms);
/* Promoted: PostgreSQL writes now.  Copies the member this node fenced before (if any,
 * "" otherwise) into fenced/len for the audit, and forgets it. */
void pgw_step_promoted(struct pgw_node_state *s, char *fenced, size_t len, int64_t *fenced_lease);

#endif
