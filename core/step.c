/*
 * step.c - a node's remembered state and every change to it; see step.h.
 */
#include "step.h"

#include <stdio.h>
#include <string.h>

void pgw_state_init(struct pgw_node_state *s)
{
	memset(s, 0, sizeof(*s));
	s->leader_optime = -1;
}

bool pgw_step_must_stop(const struct pgw_node_state *s, const struct pgw_lease *l, int64_t now_ms,
                        int64_t margin_ms)
{
	return s->was_primary && !pgw_lease_allows_writes(l, now_ms, margin_ms);
}

void pgw_step_pg_observed(struct pgw_node_state *s, const struct pgw_pg_state *pg)
{
	/* A server that is up but not answering keeps the previous value: it may be a
	 * primary we cannot see. */
	if (!pg->running)
		s->was_primary = false;
	else if (pg->accepting)
		s->was_primary = !pg->in_recovery;
}

void pgw_step_pg_writable(struct pgw_node_state *s)
{
	s->was_primary = true;
}

void pgw_step_pg_stopped(struct pgw_node_state *s)
{
	s->was_primary = false;
}

static void copy_name(char *dst, const char *src)
{
	snprintf(dst, PGW_NAME_MAX, "%s", src);
}

/*
 * S3: remember what the leader's member key says of its watchdog while it leads.
 * The leader record, written with the key, says what it had when it took it; a
 * member key published after that (a higher revision) is its latest word.
 */
static void track_leader_watchdog(struct pgw_node_state *s, const struct pgw_cluster *c)
{
	const struct pgw_member *l = pgw_cluster_leader_member(c);

	if (!c->has_leader)
		return;
	if (strcmp(s->wd_leader, c->leader) != 0 || s->wd_lease != c->leader_lease) {
		copy_name(s->wd_leader, c->leader);
		s->wd_lease = c->leader_lease;
		s->wd_known = false; /* the record's word until the member key speaks */
	}
	/* only the incarnation that holds the key speaks for it (same lease): a restarted
	 * daemon of the same name publishes under a new lease (simulator seed 37400) */
	if (l && l->lease == c->leader_lease && l->mod_revision > c->leader_mod_revision) {
		s->wd_known = true;
		s->wd_leader_armed = l->watchdog_armed;
	}
}

/* S3: the lost leader came back as a replica (its new incarnation says so). */
static void track_lost_leader_back(struct pgw_node_state *s, const struct pgw_cluster *c)
{
	const struct pgw_leader_record *lr = &c->last_leader;
	const struct pgw_member *m;

	if (c->has_leader || !lr->present || lr->malformed || lr->released)
		return;
	m = pgw_cluster_member(c, lr->member);
	if (m && m->lease != lr->lease && strcmp(m->role, "replica") == 0 &&
	    strcmp(m->state, "running") == 0) {
		copy_name(s->back_leader, lr->member);
		s->back_lease = lr->lease;
	}
}

void pgw_step_cluster_read(struct pgw_node_state *s, bool etcd_ok, const struct pgw_cluster *c,
                           const struct pgw_pg_state *pg, int64_t now_ms)
{
	int64_t opt;

	if (!etcd_ok)
		return;
	if (c->has_leader) {
		s->streamed = pg->running && pg->streaming;
		opt = pgw_cluster_leader_optime(c);
		if (strcmp(s->optime_leader, c->leader) != 0) {
			copy_name(s->optime_leader, c->leader);
			s->leader_optime = opt;
		} else if (opt > s->leader_optime) {
			s->leader_optime = opt;
		}
	} else if (c->optime > s->leader_optime) {
		s->leader_optime = c->optime;
	}
	track_leader_watchdog(s, c);
	track_lost_leader_back(s, c);
	if (c->has_leader && c->leader_mod_revision > s->leader_rev)
		s->leader_rev = c->leader_mod_revision;
	if (c->has_leader) {
		s->no_leader_rev = 0;
		s->no_leader_since_ms = 0;
	} else if (s->no_leader_rev == 0) {
		s->no_leader_rev = c->leader_gone_rev > 0 && c->leader_gone_rev <= c->revision
		                       ? c->leader_gone_rev
		                       : (c->revision > 0 ? c->revision : 1);
		s->no_leader_since_ms = now_ms;
	}
	/* a different leader than the one rewinding failed from: try rewinding again */
	if (s->rewind_failed && c->has_leader && strcmp(c->leader, s->rewind_failed_from) != 0)
		s->rewind_failed = false;
}

bool pgw_step_watching(const struct pgw_node_state *s, bool fast_takeover_on, bool etcd_ok,
                       const struct pgw_cluster *c, const char *self)
{
	const struct pgw_member *l = pgw_cluster_leader_member(c);

	return fast_takeover_on && etcd_ok && l && strcmp(l->name, self) != 0 && !s->was_primary;
}

/* Forget the lease's unrenewed span. */
static void forget_unrenewed(struct pgw_node_state *s)
{
	s->unrenewed_from = 0;
	s->unrenewed_to = 0;
}

/* A stale reading proves [recv - PGW_LEASE_STALE_MS, sent] free of renewals; it extends
 * the span when the two overlap (no renewal can hide between them), else starts one. */
static void lease_read(struct pgw_node_state *s, const struct pgw_probe *p)
{
	int64_t from = p->lease_recv_ms - PGW_LEASE_STALE_MS;

	if (p->lease != PGW_LEASE_STALE || p->lease_sent_ms <= 0 ||
	    p->lease_recv_ms < p->lease_sent_ms) {
		forget_unrenewed(s);
		return;
	}
	if (s->unrenewed_to != 0 && from <= s->unrenewed_to) {
		if (p->lease_sent_ms > s->unrenewed_to)
			s->unrenewed_to = p->lease_sent_ms;
		return;
	}
	s->unrenewed_from = from;
	s->unrenewed_to = p->lease_sent_ms;
}

void pgw_step_probe(struct pgw_node_state *s, bool watching, const char *leader, int64_t lease,
                    const struct pgw_probe *p)
{
	if (!watching || strcmp(s->silent_leader, leader) != 0 || s->silent_lease != lease) {
		copy_name(s->silent_leader, watching ? leader : "");
		s->silent_lease = watching ? lease : 0;
		s->leader_silent_since = 0;
		forget_unrenewed(s);
		if (!watching)
			return;
	}
	s->leader_silent_since = p->silent_since > 0 ? p->silent_since : 0;
	if (s->leader_silent_since == 0)
		forget_unrenewed(s); /* it answers: whatever its lease says, it is alive */
	else if (p->lease != PGW_LEASE_NOT_READ)
		lease_read(s, p);
}

static bool same_silent_leader(const struct pgw_node_state *s, const struct pgw_cluster *c)
{
	return c->has_leader && strcmp(s->silent_leader, c->leader) == 0 &&
	       s->silent_lease == c->leader_lease;
}

int64_t pgw_step_silence_ms(const struct pgw_node_state *s, const struct pgw_cluster *c,
                            int64_t now_ms)
{
	if (!s->leader_silent_since || !same_silent_leader(s, c) || now_ms < s->leader_silent_since)
		return 0;
	return now_ms - s->leader_silent_since;
}

int64_t pgw_step_unrenewed_ms(const struct pgw_node_state *s, const struct pgw_cluster *c)
{
	if (!s->leader_silent_since || !same_silent_leader(s, c) || s->unrenewed_to == 0)
		return 0;
	return s->unrenewed_to - s->unrenewed_from;
}

bool pgw_lease_ttl_stale(int64_t ttl_left, int64_t granted)
{
	if (ttl_left < 0)
		return true; /* gone: expired or revoked */
	if (granted <= 0 || ttl_left > granted)
		return false; /* cannot tell */
	return (granted - ttl_left - 1) * 1000 >= PGW_LEASE_STALE_MS;
}

/* Did the lost leader named in the record keep an armed watchdog to the end? */
static bool lost_leader_had_watchdog(const struct pgw_node_state *s,
                                     const struct pgw_leader_record *lr)
{
	if (!lr->present || lr->malformed)
		return false;
	/* its member key's latest word while it led (it may have armed later, simulator
	 * seed 74117, or lost the watchdog) */
	if (strcmp(s->wd_leader, lr->member) == 0 && s->wd_lease == lr->lease && s->wd_known)
		return s->wd_leader_armed;
	return lr->watchdog_armed; /* not seen leading: the record's word */
}

/*
 * A replica whose data forked off the leader's history never streams again.  Stopped,
 * the control file tells at once; running without a WAL receiver, its timeline is the
 * last checkpoint's, which lags a replica that has just crossed to the leader's
 * timeline, so it must have stayed so, not streaming, for PGW_DIVERGED_CONFIRM_MS.
 */
static void track_divergence(struct pgw_node_state *s, struct pgw_obs *o)
{
	uint64_t fork = 0;

	if (!o->etcd_ok || !pgw_diverged(o, &fork) || (o->pg->running && o->pg->streaming)) {
		s->diverged_since = 0;
		o->diverged = false;
		return;
	}
	if (s->diverged_since == 0)
		s->diverged_since = o->now_ms;
	o->diverged = !o->pg->running || o->now_ms - s->diverged_since >= PGW_DIVERGED_CONFIRM_MS;
}

void pgw_step(struct pgw_node_state *s, struct pgw_obs *o, struct pgw_action *a)
{
	o->may_write = s->was_primary;
	o->self_member.streaming = s->streamed;
	o->leader_optime = s->leader_optime;
	o->rewind_failed = s->rewind_failed;
	o->positions_after_rev = s->no_leader_rev;
	o->no_leader_for_ms = s->no_leader_since_ms ? o->now_ms - s->no_leader_since_ms : 0;
	o->leader_rev = s->leader_rev;
	if (o->etcd_ok) {
		o->self_member.sync_blocked = !pgw_sync_allows(o->cluster, o->self);
		o->leader_unreachable_ms = pgw_step_silence_ms(s, o->cluster, o->now_ms);
		o->leader_unrenewed_ms = pgw_step_unrenewed_ms(s, o->cluster);
		o->lost_leader_watchdog = lost_leader_had_watchdog(s, &o->cluster->last_leader);
		o->lost_leader_back = o->cluster->last_leader.present &&
		                      strcmp(s->back_leader, o->cluster->last_leader.member) == 0 &&
		                      s->back_lease == o->cluster->last_leader.lease;
	}
	/* a standby leader runs in recovery by design: not a primary that fails to start */
	if (pgw_obs_holds_leader(o) &&
	    !(o->pg->running && o->pg->accepting && !o->pg->in_recovery) &&
	    !(o->standby_cluster && o->pg->running)) {
		if (s->primary_down_since == 0)
			s->primary_down_since = o->now_ms;
	} else {
		s->primary_down_since = 0;
	}
	o->primary_down_since_ms = s->primary_down_since;
	/* a veto of this node's promotion holds until another member leads, or for a while */
	if (s->pre_promote_veto_ms != 0 &&
	    ((o->etcd_ok && o->cluster->has_leader && strcmp(o->cluster->leader, o->self) != 0) ||
	     o->now_ms - s->pre_promote_veto_ms >= pgw_pre_promote_holdoff_ms(o->loop_wait_s)))
		s->pre_promote_veto_ms = 0;
	o->pre_promote_vetoed = s->pre_promote_veto_ms != 0;
	o->ran_as_primary = s->ran_as_primary;
	track_divergence(s, o);
	pgw_decide(o, a);
	/* an old primary started as a replica loses what its control file said of it */
	if (a->kind == PGW_ACT_START_REPLICA && pgw_control_file_primary(o))
		s->ran_as_primary = true;
}

bool pgw_step_needs_watchdog(const struct pgw_node_state *s, const struct pgw_action *a)
{
	switch (a->kind) {
	case PGW_ACT_ACQUIRE:
	case PGW_ACT_PROMOTE:
	case PGW_ACT_START_PRIMARY:
	case PGW_ACT_LEADER_DUTIES:
		return true;
	default: /* a bootstrap arms after initdb, inside the action */
		return s->was_primary;
	}
}

void pgw_step_without_watchdog(struct pgw_node_state *s, struct pgw_obs *o, struct pgw_action *a)
{
	o->watchdog_unusable = true;
	o->self_member.watchdog_blocked = true;
	pgw_step(s, o, a);
}

bool pgw_action_gives_up(enum pgw_action_kind k)
{
	return k == PGW_ACT_RELEASE || k == PGW_ACT_HANDOVER || k == PGW_ACT_SHUTDOWN ||
	       k == PGW_ACT_DEMOTE || k == PGW_ACT_DEMOTE_NOW;
}

bool pgw_step_may_disarm(const struct pgw_node_state *s, const struct pgw_action *a, bool held)
{
	return !s->was_primary && (!held || pgw_action_gives_up(a->kind));
}

void pgw_step_vip_observed(struct pgw_node_state *s, bool present)
{
	s->vip_held = present;
	if (!present)
		s->vip_lease = 0; /* removed by someone else: added again when due */
}

const char *pgw_step_vip_drop(const struct pgw_node_state *s, const struct pgw_lease *l,
                              int64_t now_ms, int64_t margin_ms, const struct pgw_obs *o,
                              const struct pgw_action *a)
{
	if (!s->vip_held)
		return NULL;
	if (s->vip_lease == 0)
		return "the address is on the interface but this daemon did not add it under a "
		       "lease (a leftover)";
	if (l->id != s->vip_lease)
		return "the lease it was added under is lost";
	if (!pgw_lease_allows_writes(l, now_ms, margin_ms))
		return "the lease is past D - S (rule 2)";
	if (!s->was_primary)
		return "PostgreSQL does not run as primary";
	if (o && o->shutdown_requested)
		return "shutting down";
	if (a && pgw_action_gives_up(a->kind))
		return "giving up writing";
	if (o && o->etcd_ok && !pgw_obs_holds_leader(o))
		return "the leader key is not this node's";
	return NULL;
}

bool pgw_step_vip_add(const struct pgw_node_state *s, enum pgw_action_kind k, bool holds_key,
                      const struct pgw_lease *l, int64_t now_ms, int64_t margin_ms)
{
	bool leads = k == PGW_ACT_ACQUIRE || k == PGW_ACT_PROMOTE || k == PGW_ACT_LEADER_DUTIES ||
	             k == PGW_ACT_BOOTSTRAP;

	return !s->vip_held && leads && holds_key && s->was_primary &&
	       pgw_lease_allows_writes(l, now_ms, margin_ms);
}

void pgw_step_vip_added(struct pgw_node_state *s, int64_t lease)
{
	s->vip_held = true;
	s->vip_lease = lease;
}

void pgw_step_vip_dropped(struct pgw_node_state *s)
{
	s->vip_held = false;
	s->vip_lease = 0;
}

void pgw_step_rewind_failed(struct pgw_node_state *s, const char *from)
{
	s->rewind_failed = true;
	copy_name(s->rewind_failed_from, from);
}

void pgw_step_cloned(struct pgw_node_state *s)
{
	s->rewind_failed = false;
	s->ran_as_primary = false;
	s->diverged_since = 0;
}

void pgw_step_rewound(struct pgw_node_state *s)
{
	s->ran_as_primary = false;
	s->diverged_since = 0;
}

void pgw_step_fenced(struct pgw_node_state *s, const char *member, int64_t lease)
{
	copy_name(s->fenced, member);
	s->fenced_lease = lease;
}

void pgw_step_pre_promote_vetoed(struct pgw_node_state *s, int64_t now_ms)
{
	s->pre_promote_veto_ms = now_ms > 0 ? now_ms : 1;
}

void pgw_step_promoted(struct pgw_node_state *s, char *fenced, size_t len, int64_t *fenced_lease)
{
	s->pre_promote_veto_ms = 0;
	s->was_primary = true;
	s->ran_as_primary = false; /* its WAL is the cluster's now */
	snprintf(fenced, len, "%s", s->fenced);
	*fenced_lease = s->fenced_lease;
	s->fenced[0] = '\0';
}
