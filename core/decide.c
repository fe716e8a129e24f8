/*
 * decide.c - the HA decision table; see decide.h.
 *
 * Each row: a name, the situation it covers (for the printed graph), a guard,
 * the action and a reason.  Rows are checked in order; the first guard that
 * holds wins.  Safety rows come first: a primary without a valid lease or with
 * somebody else's leader key stops writing before anything else is considered.
 * Guards may fill a->target and a->reason's detail (the reason's printf
 * arguments come from the observation only).
 */
#include "decide.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

struct rule {
	const char *name;
	const char *situation; /* graph node: "leader", "replica", "no leader", "any" */
	bool (*guard)(const struct pgw_obs *o, struct pgw_action *a);
	enum pgw_action_kind kind;
	const char *reason;
};

static const char *const action_names[PGW_ACT_COUNT] = {
    [PGW_ACT_NONE] = "none",
    [PGW_ACT_BOOTSTRAP] = "bootstrap",
    [PGW_ACT_CLONE] = "clone",
    [PGW_ACT_START_REPLICA] = "start_replica",
    [PGW_ACT_FOLLOW] = "follow",
    [PGW_ACT_REWIND] = "rewind",
    [PGW_ACT_ACQUIRE] = "acquire",
    [PGW_ACT_PROMOTE] = "promote",
    [PGW_ACT_LEADER_DUTIES] = "leader_duties",
    [PGW_ACT_START_PRIMARY] = "start_primary",
    [PGW_ACT_DEMOTE_NOW] = "demote_now",
    [PGW_ACT_DEMOTE] = "demote",
    [PGW_ACT_RELEASE] = "release",
    [PGW_ACT_SHUTDOWN] = "shutdown",
    [PGW_ACT_HANDOVER] = "handover",
    [PGW_ACT_CANCEL_SWITCHOVER] = "cancel_switchover",
    [PGW_ACT_FENCE] = "fence",
    [PGW_ACT_RELEASE_FENCE_LOCK] = "release_fence_lock",
};

const char *pgw_action_name(enum pgw_action_kind k)
{
	return (unsigned)k < PGW_ACT_COUNT ? action_names[k] : "?";
}

static void detail(struct pgw_action *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void detail(struct pgw_action *a, const char *fmt, ...)
{
	size_t used = strlen(a->reason);
	va_list ap;

	if (used + 3 >= sizeof(a->reason))
		return;
	memcpy(a->reason + used, " (", 3);
	used += 2;
	va_start(ap, fmt);
	vsnprintf(a->reason + used, sizeof(a->reason) - used, fmt, ap);
	va_end(ap);
	used = strlen(a->reason);
	if (used + 1 < sizeof(a->reason)) {
		a->reason[used] = ')';
		a->reason[used + 1] = '\0';
	}
}

/* --- facts derived from the observation --- */

static bool pg_primary(const struct pgw_obs *o)
{
	return o->pg->running && o->pg->accepting && !o->pg->in_recovery;
}

/* For the safety rows: a primary we cannot see right now still counts. */
static bool pg_may_write(const struct pgw_obs *o)
{
	return pg_primary(o) || (o->may_write && o->pg->running);
}

bool pgw_obs_holds_leader(const struct pgw_obs *o)
{
	const struct pgw_cluster *c = o->cluster;

	return o->etcd_ok && c->has_leader && o->lease.id != 0 && strcmp(c->leader, o->self) == 0 &&
	       c->leader_lease == o->lease.id;
}

static bool has_other_leader(const struct pgw_obs *o)
{
	return o->etcd_ok && o->cluster->has_leader && !pgw_obs_holds_leader(o);
}

static uint64_t local_sysid(const struct pgw_obs *o)
{
	if (o->pg->system_identifier)
		return o->pg->system_identifier;
	return o->cd_valid ? o->cd.system_identifier : 0;
}

/* The data directory belongs to a different cluster than the one in etcd. */
static bool foreign_sysid(const struct pgw_obs *o, struct pgw_action *a)
{
	const char *cs = o->cluster->sysid;
	uint64_t mine = local_sysid(o);
	char buf[32];

	if (!o->cluster->initialized || cs[0] == '\0' || mine == 0)
		return false;
	snprintf(buf, sizeof(buf), "%" PRIu64, mine);
	if (strcmp(buf, cs) == 0)
		return false;
	detail(a, "local system identifier %s, cluster's %s", buf, cs);
	return true;
}

/* An old primary: its control file says so, or it did when it was started as a
 * replica with no leader to rewind from (pgw_node_state.ran_as_primary). */
bool pgw_control_file_primary(const struct pgw_obs *o)
{
	return o->cd_valid &&
	       (o->cd.state == PGW_CS_SHUT_DOWN || o->cd.state == PGW_CS_IN_PRODUCTION);
}

static bool was_primary(const struct pgw_obs *o)
{
	return o->ran_as_primary || o->diverged || pgw_control_file_primary(o);
}

/* The timeline of this node's data: PostgreSQL's while it runs, else the control file's. */
static int local_timeline(const struct pgw_obs *o)
{
	return o->pg->running && o->pg->timeline > 0 ? o->pg->timeline : o->cd.timeline;
}

/*
 * Walk the leader's line of descent (timeline ltl) back to timeline tl, when the history
 * key has one row per promotion (cluster.history_rows): 1 and where the line left tl, 0
 * when tl is not on it, -1 when the rows do not tell.
 */
static int leader_line(const struct pgw_cluster *c, int ltl, int tl, uint64_t *left_at)
{
	int first = c->history_rows - c->nforks + 2; /* the timeline forks[0] began */
	int child = ltl;

	if (ltl <= 0 || c->history_rows != ltl - 1)
		return -1;
	while (child > tl) {
		const struct pgw_fork *f;

		if (child - first < 0 || child - first >= c->nforks)
			return -1; /* older than the rows kept */
		f = &c->forks[child - first];
		if (f->timeline >= child)
			return -1; /* not a line of descent */
		if (f->timeline == tl) {
			*left_at = f->lsn;
			return 1;
		}
		child = f->timeline;
	}
	return 0;
}

bool pgw_diverged(const struct pgw_obs *o, uint64_t *fork_lsn)
{
	const struct pgw_member *l =
	    o->cluster->has_leader ? pgw_cluster_leader_member(o->cluster) : NULL;
	int tl = local_timeline(o);
	uint64_t pos;

	/* a leader that published no timeline (PostgreSQL starting) leaves it to the history */
	if (!l || tl <= 0 || (l->timeline > 0 && l->timeline <= tl) ||
	    strcmp(l->name, o->self) == 0)
		return false;
	if (o->pg->running) {
		if (!o->pg->in_recovery)
			return false; /* a primary: the rows for it decide */
		pos = o->pg->received_lsn > o->pg->replayed_lsn ? o->pg->received_lsn
		                                                : o->pg->replayed_lsn;
	} else if (o->cd_valid) {
		pos = o->cd.checkpoint_lsn;
	} else {
		return false;
	}
	switch (leader_line(o->cluster, l->timeline, tl, fork_lsn)) {
	case 1:
		return pos > *fork_lsn;
	case 0:
		*fork_lsn = 0;
		return true; /* its timeline is not on the leader's line at all */
	default:
		break;
	}
	/* the rows do not map to timelines: the latest that forked off tl */
	for (int i = o->cluster->nforks - 1; i >= 0; i--)
		if (o->cluster->forks[i].timeline == tl) {
			*fork_lsn = o->cluster->forks[i].lsn;
			return pos > o->cluster->forks[i].lsn;
		}
	return false;
}

static const struct pgw_member *leader_member(const struct pgw_obs *o)
{
	return pgw_cluster_leader_member(o->cluster);
}

static void set_target(struct pgw_action *a, const struct pgw_member *m)
{
	snprintf(a->target, sizeof(a->target), "%s", m->name);
	snprintf(a->target_host, sizeof(a->target_host), "%s", m->conn_host);
	a->target_port = m->conn_port;
}

/* --- the election --- */

static int64_t member_lag(const struct pgw_member *m, int64_t leader_optime)
{
	if (leader_optime < 0 || m->xlog_location < 0)
		return m->xlog_location < 0 ? INT64_MAX : 0;
	return leader_optime > m->xlog_location ? leader_optime - m->xlog_location : 0;
}

bool pgw_candidate_eligible(const struct pgw_member *m, int64_t leader_optime, int64_t max_lag,
                            char *why, size_t whylen)
{
	int64_t lag = member_lag(m, leader_optime);

	if (m->nofailover) {
		snprintf(why, whylen, "%s is tagged nofailover", m->name);
		return false;
	}
	if (m->watchdog_blocked) {
		snprintf(why, whylen, "%s needs a watchdog (mode required) that cannot be armed",
		         m->name);
		return false;
	}
	if (m->sync_blocked) {
		snprintf(why, whylen,
		         "%s is not a synchronous standby in the sync key (synchronous_mode: "
		         "only those may be promoted, so that no acknowledged commit is lost)",
		         m->name);
		return false;
	}
	if (strcmp(m->role, "replica") != 0) {
		snprintf(why, whylen, "%s is not a replica (role: %s)", m->name,
		         m->role[0] ? m->role : "unknown");
		return false;
	}
	if (strcmp(m->state, "running") != 0) {
		snprintf(why, whylen, "%s is not running (state: %s)", m->name,
		         m->state[0] ? m->state : "unknown");
		return false;
	}
	if (lag > max_lag) {
		if (lag == INT64_MAX)
			snprintf(why, whylen, "%s has no known WAL position", m->name);
		else
			snprintf(why, whylen,
			         "%s lags %" PRId64
			         " bytes behind the leader's last position %" PRId64
			         ", more than maximum_lag_on_failover %" PRId64,
			         m->name, lag, leader_optime, max_lag);
		return false;
	}
	return true;
}

/*
 * Ranking: the newer timeline (when both are known), then the WAL position, then
 * whether it streamed, then failover_priority, then the name.  Position before
 * streaming: an old leader back as a replica holds the most WAL but does not stream
 * yet, and ranking it behind streamers lost up to 1.1 MB beyond
 * maximum_lag_on_failover (simulator seed 3279).  The timeline first: a higher
 * position on an older timeline is WAL the newer timeline does not have.
 */
static bool better(const struct pgw_member *a, const struct pgw_member *b)
{
	if (a->timeline > 0 && b->timeline > 0 && a->timeline != b->timeline)
		return a->timeline > b->timeline;
	if (a->xlog_location != b->xlog_location)
		return a->xlog_location > b->xlog_location;
	if (a->streaming != b->streaming)
		return a->streaming;
	if (a->failover_priority != b->failover_priority)
		return a->failover_priority > b->failover_priority;
	return strcmp(a->name, b->name) < 0;
}

bool pgw_timeline_behind(const struct pgw_obs *o, char *why, size_t whylen)
{
	int ctl = o->cluster->history_timeline, tl = o->self_member.timeline;

	if (!o->check_timeline || ctl <= 0)
		return false;
	if (tl <= 0) {
		snprintf(why, whylen,
		         "check_timeline: this node's timeline is unknown, the cluster's is %d",
		         ctl);
		return true;
	}
	if (tl >= ctl)
		return false;
	snprintf(why, whylen, "check_timeline: this node's timeline %d is behind the cluster's %d",
	         tl, ctl);
	return true;
}

bool pgw_is_best_candidate(const struct pgw_obs *o, char *why, size_t whylen)
{
	const struct pgw_member *self = &o->self_member;
	const struct pgw_cluster *c = o->cluster;
	char dummy[256];

	if (pgw_timeline_behind(o, why, whylen))
		return false;
	if (!pgw_candidate_eligible(self, o->leader_optime, o->max_lag, why, whylen))
		return false;
	for (int i = 0; i < c->nmembers; i++) {
		const struct pgw_member *m = &c->members[i];

		if (strcmp(m->name, o->self) == 0)
			continue;
		if (!pgw_candidate_eligible(m, o->leader_optime, o->max_lag, dummy, sizeof(dummy)))
			continue;
		if (better(m, self)) {
			snprintf(why, whylen,
			         "%s is a better candidate (%s, position %" PRId64
			         ", priority %d; this node: %s, position %" PRId64 ", priority %d)",
			         m->name, m->streaming ? "streamed" : "not streaming",
			         m->xlog_location, m->failover_priority,
			         self->streaming ? "streamed" : "not streaming",
			         self->xlog_location, self->failover_priority);
			return false;
		}
	}
	return true;
}

/* --- guards, in table order --- */

static bool g_shutdown(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return o->shutdown_requested;
}

static bool g_lease_deadline(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!pg_may_write(o) || pgw_lease_allows_writes(&o->lease, o->now_ms, o->margin_ms))
		return false;
	if (o->lease.id == 0)
		detail(a, "no lease");
	else
		detail(a, "%" PRId64 " ms past D - S",
		       -pgw_lease_write_budget_ms(&o->lease, o->now_ms, o->margin_ms));
	return true;
}

static bool g_etcd_down(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return !o->etcd_ok;
}

static bool g_primary_other_leader(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!pg_may_write(o) || !has_other_leader(o))
		return false;
	detail(a, "leader key held by %s", o->cluster->leader);
	return true;
}

static bool g_primary_no_leader(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pg_primary(o) && !o->cluster->has_leader;
}

/* --- switchover, failover and pause --- */

/* A leader record that names no one: in doubt, fence (which cannot happen) or wait. */
static bool record_unreadable(const struct pgw_leader_record *lr)
{
	return lr->malformed || !lr->member[0];
}

/* Another member holds the fence lock (it is fencing, or its fence did not finish). */
static bool locked_by_other(const struct pgw_obs *o)
{
	return o->cluster->fence_locked && strcmp(o->cluster->fence_lock_holder, o->self) != 0;
}

static bool failover_usable(const struct pgw_obs *o)
{
	const struct pgw_failover *f = &o->cluster->failover;

	return f->present && !f->malformed;
}

static const struct pgw_member *named_member(const struct pgw_obs *o, const char *name)
{
	return strcmp(name, o->self) == 0 ? &o->self_member : pgw_cluster_member(o->cluster, name);
}

/* Is there a replica that may take over from this leader (the named one, or any)? */
static bool switchover_target_ok(const struct pgw_obs *o, char *why, size_t whylen)
{
	const struct pgw_failover *f = &o->cluster->failover;
	const struct pgw_cluster *c = o->cluster;
	const struct pgw_member *m;

	if (f->member[0]) {
		m = named_member(o, f->member);
		if (!m) {
			snprintf(why, whylen, "candidate %s is not a member", f->member);
			return false;
		}
		if (strcmp(f->member, o->self) == 0) {
			snprintf(why, whylen, "candidate %s is the leader itself", f->member);
			return false;
		}
		return pgw_candidate_eligible(m, o->leader_optime, o->max_lag, why, whylen);
	}
	for (int i = 0; i < c->nmembers; i++)
		if (strcmp(c->members[i].name, o->self) != 0 &&
		    pgw_candidate_eligible(&c->members[i], o->leader_optime, o->max_lag, why,
		                           whylen))
			return true;
	snprintf(why, whylen, "no eligible replica to hand over to");
	return false;
}

/* A switchover addressed to this leader (or to any leader) whose time has come. */
static bool switchover_due(const struct pgw_obs *o)
{
	const struct pgw_failover *f = &o->cluster->failover;

	return pgw_obs_holds_leader(o) && pg_primary(o) && failover_usable(o) &&
	       (f->scheduled_at == 0 || o->wall_now >= f->scheduled_at);
}

static bool failover_obsolete(const struct pgw_obs *o);

static bool g_switchover_cancel(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_failover *f = &o->cluster->failover;
	char why[200];

	if (!pgw_obs_holds_leader(o) || !pg_primary(o) || !o->cluster->failover.present)
		return false;
	if (f->malformed) {
		detail(a, "the failover key is malformed");
		return true;
	}
	if (f->leader[0] && strcmp(f->leader, o->self) != 0) {
		detail(a, "it names %s as the leader, but this node is", f->leader);
		return true;
	}
	if (failover_obsolete(o)) {
		detail(a, "a failover request older than this node's leadership");
		return true;
	}
	if (!switchover_due(o))
		return false;
	if (o->cluster->paused) {
		detail(a, "the cluster is paused");
		return true;
	}
	if (switchover_target_ok(o, why, sizeof(why)))
		return false;
	detail(a, "%s", why);
	return true;
}

static bool g_switchover(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_failover *f = &o->cluster->failover;

	if (!switchover_due(o))
		return false;
	detail(a, "to %s", f->member[0] ? f->member : "the healthiest replica");
	return true;
}

static bool g_paused(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return o->cluster->paused;
}

/*
 * A switchover (it names the leader) whose leader was lost without handing over: it
 * no longer chooses anyone; the election does, on positions (simulator seed 495: the
 * named member was promoted 2.4 MB behind another replica).
 */
static bool switchover_orphaned(const struct pgw_obs *o)
{
	const struct pgw_failover *f = &o->cluster->failover;
	const struct pgw_leader_record *lr = &o->cluster->last_leader;

	return f->leader[0] && !o->cluster->has_leader && lr->present && !lr->released &&
	       strcmp(lr->member, f->leader) == 0;
}

/*
 * A manual failover (no leader named) older than the last leader key: made before that
 * leader took over, it is not about it (simulator seed 46932: one left behind when its
 * promotion could not delete it chose a member 1.4 MB behind another, much later).
 */
static bool failover_obsolete(const struct pgw_obs *o)
{
	const struct pgw_failover *f = &o->cluster->failover;

	return !f->leader[0] && f->mod_revision < o->leader_rev;
}

/*
 * A switchover's named member takes over only when no eligible member is more than
 * maximum_lag_on_failover ahead of it: the leader that should have handed over did
 * not publish its final position (simulator seed 46062: 2.3 MB lost).
 */
static bool far_behind_another(const struct pgw_obs *o, const struct pgw_member *t)
{
	const struct pgw_cluster *c = o->cluster;
	char why[200];

	if (!o->cluster->failover.leader[0])
		return false; /* an operator's failover: the operator's choice */
	for (int i = 0; i < c->nmembers + 1; i++) {
		const struct pgw_member *m = i < c->nmembers ? &c->members[i] : &o->self_member;

		if (strcmp(m->name, t->name) != 0 &&
		    (i == c->nmembers || strcmp(m->name, o->self) != 0) &&
		    pgw_candidate_eligible(m, o->leader_optime, INT64_MAX, why, sizeof(why)) &&
		    m->xlog_location > t->xlog_location &&
		    (uint64_t)m->xlog_location - (uint64_t)t->xlog_location >
		        (uint64_t)(o->max_lag < 0 ? 0 : o->max_lag))
			return true;
	}
	return false;
}

static bool g_n_failover_self(const struct pgw_obs *o, struct pgw_action *a)
{
	char why[200];

	if (far_behind_another(o, &o->self_member))
		return false;

	if (!failover_usable(o) || o->nofailover || switchover_orphaned(o) ||
	    failover_obsolete(o) || strcmp(o->cluster->failover.member, o->self) != 0)
		return false;
	if (!pgw_candidate_eligible(&o->self_member, o->leader_optime, o->max_lag, why,
	                            sizeof(why)))
		return false;
	detail(a, "requested leader %s%s",
	       o->cluster->failover.leader[0] ? o->cluster->failover.leader : "any",
	       o->standby_cluster ? "; standby cluster: as standby leader, no promotion" : "");
	a->standby_leader = o->standby_cluster;
	return true;
}

static bool g_n_failover_other(const struct pgw_obs *o, struct pgw_action *a)
{
	const char *name = o->cluster->failover.member;
	const struct pgw_member *m;
	char why[200];

	if (switchover_orphaned(o) || failover_obsolete(o) || !failover_usable(o) || !name[0] ||
	    strcmp(name, o->self) == 0)
		return false;
	m = pgw_cluster_member(o->cluster, name);
	if (!m || !pgw_candidate_eligible(m, o->leader_optime, o->max_lag, why, sizeof(why)) ||
	    far_behind_another(o, m))
		return false; /* the named member cannot: the election decides */
	detail(a, "%s", name);
	return true;
}

static bool g_leader_watchdog(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pgw_obs_holds_leader(o) && o->watchdog_unusable && !o->cluster->paused;
}

static bool g_leader_healthy(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pgw_obs_holds_leader(o) && pg_primary(o);
}

/*
 * etcd may still show our key between D - S and etcd's own expiry (e.g. the last
 * keepalive failed but the read succeeded): promoting or starting as primary then
 * would accept writes past D - S (rule 2).  Wait for a renewal instead.
 */
static bool g_leader_lease_stale(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pgw_obs_holds_leader(o) &&
	       !pgw_lease_allows_writes(&o->lease, o->now_ms, o->margin_ms);
}

int64_t pgw_pre_promote_holdoff_ms(int loop_wait_s)
{
	return (2LL * loop_wait_s + 1) * 1000;
}

/*
 * pre_promote vetoed the promotion but the key is still ours (the action's release
 * failed, or PostgreSQL went down meanwhile): never promote or start as primary on
 * it; give the key up as Patroni does.
 */
static bool g_leader_vetoed(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pgw_obs_holds_leader(o) && o->pre_promote_vetoed && !pg_primary(o);
}

/* --- standby cluster: the leader follows the remote primary --- */

static void set_remote(const struct pgw_obs *o, struct pgw_action *a)
{
	const char *host = o->standby_host ? o->standby_host : "";

	snprintf(a->target, sizeof(a->target), "%s", "standby_cluster");
	snprintf(a->target_host, sizeof(a->target_host), "%s", host);
	a->target_port = host[0] ? o->standby_port : 0;
	a->standby_leader = true;
}

static bool standby_leader(const struct pgw_obs *o)
{
	return o->standby_cluster && pgw_obs_holds_leader(o);
}

/* running and following the remote primary (or, not answering yet, starting) */
static bool g_standby_leader(const struct pgw_obs *o, struct pgw_action *a)
{
	const char *host = o->standby_host ? o->standby_host : "";

	if (!standby_leader(o) || !o->pg->running)
		return false;
	if (o->pg->accepting && (strcmp(o->pg->primary_host, host) != 0 ||
	                         (host[0] && o->pg->primary_port != o->standby_port)))
		return false;
	set_remote(o, a);
	if (host[0])
		detail(a, "%s:%d, WAL receiver %s", host, o->standby_port,
		       o->pg->streaming ? "streaming" : "not streaming");
	else
		detail(a, "restore_command only");
	return true;
}

static bool g_standby_leader_follow(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!standby_leader(o) || !o->pg->running || !o->pg->accepting)
		return false;
	set_remote(o, a);
	detail(a, "was following %s:%d, remote primary %s:%d",
	       o->pg->primary_host[0] ? o->pg->primary_host : "nobody", o->pg->primary_port,
	       a->target_host[0] ? a->target_host : "none", a->target_port);
	return true;
}

/* stopped: started as a standby of the remote, until primary_start_timeout (then the
 * leader-start-timeout row releases the key, as for any leader that cannot start) */
static bool g_standby_leader_start(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!standby_leader(o) || o->pg->running || o->pg->datadir != PGW_DATADIR_VALID)
		return false;
	if (o->primary_down_since_ms != 0 &&
	    o->now_ms - o->primary_down_since_ms > (int64_t)o->primary_start_timeout_s * 1000)
		return false;
	set_remote(o, a);
	detail(a, "remote primary %s:%d", a->target_host[0] ? a->target_host : "none",
	       a->target_port);
	return true;
}

static bool g_leader_promote(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pgw_obs_holds_leader(o) && o->pg->running && o->pg->accepting && o->pg->in_recovery;
}

static bool g_leader_start_timeout(const struct pgw_obs *o, struct pgw_action *a)
{
	int64_t down;

	if (!pgw_obs_holds_leader(o) || o->primary_down_since_ms == 0)
		return false;
	down = o->now_ms - o->primary_down_since_ms;
	if (down <= (int64_t)o->primary_start_timeout_s * 1000)
		return false;
	detail(a, "down for %" PRId64 " ms, primary_start_timeout %d s", down,
	       o->primary_start_timeout_s);
	return true;
}

static bool g_leader_no_data(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pgw_obs_holds_leader(o) && !o->pg->running && o->pg->datadir != PGW_DATADIR_VALID;
}

static bool g_leader_starting(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pgw_obs_holds_leader(o) && o->pg->running;
}

static bool g_leader_restart(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pgw_obs_holds_leader(o);
}

/*
 * The leader key names this node on a lease it no longer has: its daemon was restarted
 * (the old one was killed or crashed), and PostgreSQL is stopped (main.c stops a leftover
 * primary before the loop starts).  Nothing can write here, so the key is released as
 * on a clean stop, with the record marked released (S3: no fence needed), instead of
 * making the cluster wait out the old lease (ttl).  Rule 7 holds: the key is deleted,
 * never written again with the new lease.
 */
static bool g_release_stale_own_key(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_cluster *c = o->cluster;
	const struct pgw_leader_record *lr = &c->last_leader;

	if (!o->etcd_ok || !c->has_leader || strcmp(c->leader, o->self) != 0 ||
	    c->leader_lease == o->lease.id || o->pg->running)
		return false;
	if (!lr->present || record_unreadable(lr) || strcmp(lr->member, o->self) != 0 ||
	    lr->lease != c->leader_lease || lr->released || lr->fenced_by[0])
		return false;
	detail(a, "key lease %" PRId64 ", this node's lease %" PRId64, c->leader_lease,
	       o->lease.id);
	return true;
}

static bool g_stale_own_key(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!o->cluster->has_leader || strcmp(o->cluster->leader, o->self) != 0)
		return false;
	detail(a, "key lease %" PRId64 ", this node's lease %" PRId64, o->cluster->leader_lease,
	       o->lease.id);
	return true;
}

/* Rows below apply when another member holds the leader key. */
static bool follower(const struct pgw_obs *o)
{
	return has_other_leader(o);
}

/*
 * Rule 8: the leader stopped answering for fast_takeover_after, and etcd proves it
 * stopped renewing its lease for as long (a leader cut off from the replicas alone is
 * alive; one paused or slowed for less than the threshold renews again); the best
 * candidate may fence it (then revoke its lease) instead of waiting for the TTL.  Only
 * when the leader record names this very leader and lease (in doubt: wait for the TTL).
 */
static bool g_f_fast_takeover(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_cluster *c = o->cluster;
	const struct pgw_leader_record *lr = &c->last_leader;
	char why[200];

	if (!o->fencing_required || o->fast_takeover_after_ms <= 0 || !c->has_leader ||
	    strcmp(c->leader, o->self) == 0 ||
	    o->leader_unreachable_ms < o->fast_takeover_after_ms ||
	    o->leader_unrenewed_ms < o->fast_takeover_after_ms)
		return false;
	if (!lr->present || record_unreadable(lr) || strcmp(lr->member, c->leader) != 0 ||
	    lr->lease != c->leader_lease || lr->released || lr->fenced_by[0])
		return false;
	if (o->nofailover || o->watchdog_unusable || !pgw_is_best_candidate(o, why, sizeof(why)))
		return false;
	if (locked_by_other(o))
		return false;
	snprintf(a->target, sizeof(a->target), "%s", c->leader);
	detail(a, "%s silent for %" PRId64 " ms and its lease unrenewed for %" PRId64 " ms, BMC %s",
	       c->leader, o->leader_unreachable_ms, o->leader_unrenewed_ms,
	       lr->bmc_address[0] ? lr->bmc_address : "unknown");
	return true;
}

static bool would_acquire(const struct pgw_obs *o);

/*
 * This node holds the fence lock but will not fence now (a fence whose lock could not
 * be deleted afterwards, e.g. etcd answered too late): the others wait on that lock
 * for as long as this node's lease lives, and nobody fences or promotes (simulator
 * seed 35563).  Delete it.
 */
static bool g_fence_lock_stale(const struct pgw_obs *o, struct pgw_action *a)
{
	struct pgw_action scratch = {0};

	if (!o->cluster->fence_locked || strcmp(o->cluster->fence_lock_holder, o->self) != 0)
		return false;
	if (g_f_fast_takeover(o, &scratch))
		return false;
	if (!o->cluster->has_leader && pgw_fence_needed(o) && would_acquire(o))
		return false;
	detail(a, "no fence of %s due from this node",
	       o->cluster->last_leader.member[0] ? o->cluster->last_leader.member : "anyone");
	return true;
}

static bool g_f_no_member(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!follower(o) || leader_member(o))
		return false;
	detail(a, "leader %s", o->cluster->leader);
	return true;
}

static bool g_f_clone(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!follower(o) || o->pg->datadir != PGW_DATADIR_EMPTY)
		return false;
	set_target(a, leader_member(o));
	detail(a, "from %s at %s:%d", a->target, a->target_host, a->target_port);
	return true;
}

static bool g_invalid_datadir(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return o->pg->datadir == PGW_DATADIR_INVALID && !o->pg->running;
}

static bool g_foreign(const struct pgw_obs *o, struct pgw_action *a)
{
	return o->cluster->initialized && foreign_sysid(o, a);
}

static bool upstream_is(const struct pgw_obs *o, const struct pgw_member *m)
{
	return o->pg->primary_port == m->conn_port &&
	       strcmp(o->pg->primary_host, m->conn_host) == 0;
}

const struct pgw_member *pgw_upstream(const struct pgw_cluster *c, const char *self,
                                      const char *replicatefrom, char *why, size_t whylen)
{
	const struct pgw_member *l = pgw_cluster_leader_member(c), *m, *cur;

	if (whylen > 0)
		why[0] = '\0';
	if (!replicatefrom || !replicatefrom[0] ||
	    (c->has_leader && strcmp(replicatefrom, c->leader) == 0))
		return l;
	if (strcmp(replicatefrom, self) == 0) {
		snprintf(why, whylen, "tags.replicatefrom names this node itself");
		return l;
	}
	m = pgw_cluster_member(c, replicatefrom);
	if (!m || m->lease == 0) {
		snprintf(why, whylen, "tags.replicatefrom %s is not a live member", replicatefrom);
		return l;
	}
	if (strcmp(m->role, "replica") != 0 || strcmp(m->state, "running") != 0) {
		snprintf(why, whylen,
		         "tags.replicatefrom %s is not a running replica (role %s, state %s)",
		         m->name, m->role[0] ? m->role : "unknown",
		         m->state[0] ? m->state : "unknown");
		return l;
	}
	if (!m->streaming && !m->nostream) {
		snprintf(why, whylen, "tags.replicatefrom %s does not stream", m->name);
		return l;
	}
	if (l && l->timeline > 0 && m->timeline != l->timeline) {
		snprintf(why, whylen, "tags.replicatefrom %s is on timeline %d, the leader on %d",
		         m->name, m->timeline, l->timeline);
		return l;
	}
	/* its own tag, and the tags of the members it names in turn: a chain back to this
	 * node is a loop (a -> b -> a), and everyone on it falls back to the leader */
	cur = m;
	for (int hops = 0; hops < PGW_MAX_MEMBERS && cur->replicatefrom[0]; hops++) {
		if (c->has_leader && strncmp(cur->replicatefrom, c->leader, PGW_NAME_MAX) == 0)
			break;
		if (strncmp(cur->replicatefrom, self, PGW_NAME_MAX) == 0) {
			snprintf(why, whylen,
			         "tags.replicatefrom %s: a loop, %s replicates from this node",
			         m->name, cur->name);
			return l;
		}
		cur = pgw_cluster_member(c, cur->replicatefrom);
		if (!cur)
			break;
	}
	return m;
}

/* The member this replica streams from: the leader, or tags.replicatefrom's member. */
static const struct pgw_member *upstream(const struct pgw_obs *o, char *why, size_t whylen)
{
	return pgw_upstream(o->cluster, o->self, o->replicatefrom, why, whylen);
}

static bool cascading(const struct pgw_obs *o, const struct pgw_member *up)
{
	return up != leader_member(o);
}

/* tags.nostream: a running replica (not an old primary) that must not stream at all. */
static bool archive_only(const struct pgw_obs *o)
{
	return o->nostream && follower(o) && o->pg->running && !was_primary(o);
}

static bool g_f_following_archive(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!archive_only(o) || (o->pg->accepting && o->pg->primary_host[0]))
		return false;
	detail(a, "leader %s", o->cluster->leader);
	return true;
}

static bool g_f_stop_streaming(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!archive_only(o))
		return false;
	detail(a, "was following %s:%d", o->pg->primary_host, o->pg->primary_port);
	return true;
}

/* A replica that cascades: running, not an old primary, its upstream not the leader. */
static bool cascade_candidate(const struct pgw_obs *o, const struct pgw_member **up)
{
	char why[200];

	if (!follower(o) || !o->pg->running || was_primary(o) || !leader_member(o) || o->nostream)
		return false;
	*up = upstream(o, why, sizeof(why));
	return *up && cascading(o, *up);
}

static bool g_f_following_upstream(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_member *up;

	if (!cascade_candidate(o, &up) || (o->pg->accepting && !upstream_is(o, up)))
		return false;
	set_target(a, up);
	detail(a, "%s, leader %s, WAL receiver %s", a->target, o->cluster->leader,
	       o->pg->streaming ? "streaming" : "not streaming");
	return true;
}

static bool g_f_follow_upstream(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_member *up;

	if (!cascade_candidate(o, &up))
		return false;
	set_target(a, up);
	detail(a, "was following %s:%d, tags.replicatefrom %s at %s:%d",
	       o->pg->primary_host[0] ? o->pg->primary_host : "nobody", o->pg->primary_port,
	       a->target, a->target_host, a->target_port);
	return true;
}

/* Why a replica with tags.replicatefrom follows the leader instead, for the reason. */
static void fallback_detail(const struct pgw_obs *o, struct pgw_action *a)
{
	char why[200];

	upstream(o, why, sizeof(why));
	if (why[0])
		detail(a, "%s: following the leader", why);
}

static bool g_f_following(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_member *l;

	if (!follower(o) || !o->pg->running || was_primary(o))
		return false;
	l = leader_member(o);
	if (o->pg->accepting && !upstream_is(o, l))
		return false;
	set_target(a, l);
	detail(a, "%s, WAL receiver %s", a->target,
	       o->pg->streaming ? "streaming" : "not streaming");
	fallback_detail(o, a);
	return true;
}

static bool g_f_follow_new(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!follower(o) || !o->pg->running || was_primary(o))
		return false;
	set_target(a, leader_member(o));
	detail(a, "was following %s:%d, leader is %s at %s:%d",
	       o->pg->primary_host[0] ? o->pg->primary_host : "nobody", o->pg->primary_port,
	       a->target, a->target_host, a->target_port);
	fallback_detail(o, a);
	return true;
}

/*
 * An old primary rewinds only from a leader whose published timeline is newer
 * than its own: before that, the leader may still be promoting, and pg_rewind
 * against it would find "no rewind required" while this node has diverged.
 */
static bool g_f_leader_tl_unknown(const struct pgw_obs *o, struct pgw_action *a)
{
	int ltl;

	if (!follower(o) || !was_primary(o) || !o->use_pg_rewind || o->rewind_failed)
		return false;
	ltl = leader_member(o)->timeline;
	if (ltl > 0 && ltl > local_timeline(o))
		return false;
	detail(a, "leader %s on timeline %d, this node on timeline %d", o->cluster->leader, ltl,
	       local_timeline(o));
	return true;
}

/* An old primary that cannot be rewound, whose data directory the file says to keep. */
static bool g_f_keep_data(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!follower(o) || !was_primary(o))
		return false;
	if (o->use_pg_rewind && o->rewind_failed && o->keep_data_on_rewind_failure) {
		detail(a,
		       "pg_rewind from %s failed and "
		       "remove_data_directory_on_rewind_failure is false",
		       o->cluster->leader);
		return true;
	}
	if (!o->use_pg_rewind && o->keep_data_without_rewind) {
		detail(a, "use_pg_rewind is off and "
		          "remove_data_directory_on_diverged_timelines is false");
		return true;
	}
	return false;
}

static bool g_f_reclone(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!follower(o) || !was_primary(o) || (o->use_pg_rewind && !o->rewind_failed))
		return false;
	set_target(a, leader_member(o));
	detail(a, "%s", o->rewind_failed ? "pg_rewind failed" : "use_pg_rewind is off");
	return true;
}

static bool g_f_rewind(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!follower(o) || !was_primary(o))
		return false;
	set_target(a, leader_member(o));
	detail(a, "local timeline %d, leader %s on timeline %d%s", local_timeline(o), a->target,
	       leader_member(o)->timeline,
	       o->ran_as_primary ? ", started as a replica while it had no leader"
	       : o->diverged     ? ", its WAL forked off the leader's history"
	                         : "");
	return true;
}

static bool g_f_start(const struct pgw_obs *o, struct pgw_action *a)
{
	char why[200];
	const struct pgw_member *up;

	if (!follower(o))
		return false;
	if (o->nostream) {
		detail(a,
		       "tags.nostream: without primary_conninfo, WAL from restore_command; leader "
		       "%s",
		       o->cluster->leader);
		return true; /* no target: nobody to stream from */
	}
	up = upstream(o, why, sizeof(why));
	set_target(a, up);
	if (cascading(o, up))
		detail(a, "from %s (tags.replicatefrom), leader %s", a->target, o->cluster->leader);
	else
		detail(a, "leader %s%s%s", a->target, why[0] ? "; " : "", why);
	return true;
}

/* Rows below apply when nobody holds the leader key. */
static bool g_n_no_fresh_lease(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return !pgw_lease_allows_writes(&o->lease, o->now_ms, o->margin_ms);
}

static bool g_n_bootstrap(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return !o->cluster->initialized && o->pg->datadir == PGW_DATADIR_EMPTY;
}

static bool g_n_bootstrap_standby(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!o->standby_cluster || !g_n_bootstrap(o, a))
		return false;
	set_remote(o, a);
	detail(a, "remote primary %s:%d", a->target_host[0] ? a->target_host : "none",
	       a->target_port);
	return true;
}

static bool g_n_watchdog_bootstrap(const struct pgw_obs *o, struct pgw_action *a)
{
	return o->watchdog_unusable && g_n_bootstrap(o, a);
}

static bool g_n_uninitialized_data(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return !o->cluster->initialized;
}

static bool g_n_bootstrapping(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return o->cluster->sysid[0] == '\0';
}

/* No leader, an empty data directory, and a replica method that needs none (a backup). */
static bool g_n_clone_no_leader(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return o->pg->datadir == PGW_DATADIR_EMPTY && o->clone_without_leader;
}

static bool g_n_empty(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return o->pg->datadir == PGW_DATADIR_EMPTY;
}

static bool g_n_start(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return !o->pg->running;
}

static bool g_n_starting(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return !o->pg->accepting;
}

static bool g_n_watchdog(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return o->watchdog_unusable;
}

bool pgw_fence_needed(const struct pgw_obs *o)
{
	const struct pgw_leader_record *lr = &o->cluster->last_leader;

	if (!o->fencing_required || !o->etcd_ok || o->cluster->has_leader || !lr->present)
		return false;
	if (record_unreadable(lr))
		return true;
	return !lr->released && !lr->fenced_by[0] && strcmp(lr->member, o->self) != 0;
}

/* Would the rows below take the leader key (a named failover, or the election)? */
static bool would_acquire(const struct pgw_obs *o)
{
	struct pgw_action scratch = {0}; /* the guards append to its reason */
	char why[200];

	if (o->watchdog_unusable || o->pre_promote_vetoed)
		return false;
	if (g_n_failover_self(o, &scratch))
		return true;
	if (g_n_failover_other(o, &scratch) || o->nofailover)
		return false;
	return pgw_is_best_candidate(o, why, sizeof(why));
}

static bool g_n_fence_other(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!pgw_fence_needed(o) || !locked_by_other(o))
		return false;
	detail(a, "%s fences %s", o->cluster->fence_lock_holder, o->cluster->last_leader.member);
	return true;
}

/*
 * The last leader was fenced moments ago (fenced_at within the grace; a time in the
 * future, from a skewed clock or a forged record, does not stretch the wait).
 */
static bool fenced_recently(const struct pgw_obs *o)
{
	const struct pgw_leader_record *lr = &o->cluster->last_leader;
	double age = o->wall_now - lr->fenced_at;

	return o->fencing_required && !o->cluster->has_leader && lr->present &&
	       !record_unreadable(lr) && lr->fenced_by[0] && age >= -PGW_FENCER_GRACE_S &&
	       age <= PGW_FENCER_GRACE_S;
}

/*
 * Another member fenced the last leader moments ago and can take over: wait for it,
 * but only while its member key shows it eligible and ranked above this node.
 * Otherwise the election decides at once: the fencer fenced as the best candidate,
 * yet positions read since may rank another member first, and the two waiting for
 * each other left the cluster without a primary for the whole grace (found by the
 * simulator, seed 49).  Once the fence is recorded nothing else needs the fencer.
 */
static bool g_n_fencer_takes_over(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_leader_record *lr = &o->cluster->last_leader;
	const struct pgw_member *f;
	char why[200];

	if (!fenced_recently(o) || strcmp(lr->fenced_by, o->self) == 0)
		return false;
	f = pgw_cluster_member(o->cluster, lr->fenced_by);
	if (!f || !pgw_candidate_eligible(f, o->leader_optime, o->max_lag, why, sizeof(why)) ||
	    !better(f, &o->self_member))
		return false;
	detail(a, "%s fenced %s", lr->fenced_by, lr->member);
	return true;
}

/*
 * S3 without fencing: the last leader was lost without releasing its key and did
 * not keep an armed watchdog, so nothing bounds it: its PostgreSQL may still accept
 * writes.  Do not promote (unless failover.unprotected opts into Patroni's way).
 */
static bool g_n_unprotected(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_leader_record *lr = &o->cluster->last_leader;

	if (o->fencing_required || o->unprotected_failover || !lr->present || lr->released ||
	    lr->fenced_by[0] || o->lost_leader_watchdog || o->lost_leader_back)
		return false;
	/* pgwardenctl failover (a member and no leader), given after the leader was lost:
	 * the operator's word that it is down.  A switchover names the leader it expected,
	 * and a request older than the loss (simulator seed 11623) was about another
	 * leader: no such word. */
	if (failover_usable(o) && !o->cluster->failover.leader[0] &&
	    o->cluster->failover.member[0] &&
	    o->cluster->failover.mod_revision > o->positions_after_rev)
		return false;
	if (!record_unreadable(lr)) {
		const struct pgw_member *m = pgw_cluster_member(o->cluster, lr->member);

		if (strcmp(lr->member, o->self) == 0)
			return false;
		/* it is back under a new lease and its daemon says PostgreSQL runs as a
		 * replica: it no longer writes, and its position takes part in the election */
		if (m && strcmp(m->role, "replica") == 0 && strcmp(m->state, "running") == 0)
			return false;
	}
	detail(a, "%s, lease %" PRIx64 "; pgwardenctl failover promotes once it is known down",
	       lr->member[0] ? lr->member : "unknown", (uint64_t)lr->lease);
	return true;
}

/* The vetoed node is the one a switchover or failover names: that request cannot be
 * carried out; remove it so that the election (or the old leader) decides. */
static bool g_n_vetoed_request(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!o->pre_promote_vetoed || !failover_usable(o) ||
	    strcmp(o->cluster->failover.member, o->self) != 0)
		return false;
	detail(a, "requested leader %s",
	       o->cluster->failover.leader[0] ? o->cluster->failover.leader : "any");
	return true;
}

static bool g_n_vetoed(const struct pgw_obs *o, struct pgw_action *a)
{
	if (!o->pre_promote_vetoed)
		return false;
	detail(a, "for %" PRId64 " ms after the veto", pgw_pre_promote_holdoff_ms(o->loop_wait_s));
	return true;
}

static bool g_n_fence_unreadable(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return pgw_fence_needed(o) && record_unreadable(&o->cluster->last_leader) &&
	       would_acquire(o);
}

static bool g_n_fence(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_leader_record *lr = &o->cluster->last_leader;

	if (!pgw_fence_needed(o) || record_unreadable(lr) || !would_acquire(o))
		return false;
	snprintf(a->target, sizeof(a->target), "%s", lr->member);
	detail(a, "%s, lease %" PRIx64 ", BMC %s", lr->member, (uint64_t)lr->lease,
	       lr->bmc_address[0] ? lr->bmc_address : "unknown");
	return true;
}

/*
 * m is the last leader, its key postdates the loss, and it may hold WAL this node lacks
 * beyond maximum_lag_on_failover (a newer timeline, a higher position, or an unknown
 * one).  Stopped or running: it starts as a replica, and its key may lag what its
 * PostgreSQL does.
 */
static bool last_leader_holds_more(const struct pgw_obs *o, const struct pgw_member *m)
{
	const struct pgw_member *self = &o->self_member;
	const struct pgw_leader_record *lr = &o->cluster->last_leader;

	if (record_unreadable(lr) || strcmp(lr->member, m->name) != 0 ||
	    m->mod_revision <= o->positions_after_rev)
		return false;
	if (m->xlog_location < 0)
		return true; /* stopped, position unknown: it may hold anything */
	if (m->timeline > 0 && self->timeline > 0 && m->timeline != self->timeline)
		return m->timeline > self->timeline;
	if (self->xlog_location < 0)
		return true;
	/* both >= 0: the difference cannot overflow */
	return m->xlog_location - self->xlog_location > o->max_lag;
}

/* m is the last leader, and the record says a member fenced it. */
static bool fenced_last_leader(const struct pgw_obs *o, const struct pgw_member *m)
{
	const struct pgw_leader_record *lr = &o->cluster->last_leader;

	return !record_unreadable(lr) && lr->fenced_by[0] && strcmp(lr->member, m->name) == 0;
}

/*
 * Before taking the key, the positions compared must postdate the loss of the leader:
 * a running replica whose member key is older may have received more WAL since, and
 * promoting past it would lose more than maximum_lag_on_failover (the simulator found
 * 1.2 to 4.4 MB, seeds 755, 1871, 2084, 2100, 2660).  Its daemon publishes every loop,
 * or its key expires with its lease: the wait is bounded by loop_wait (or ttl).
 */
static bool g_n_positions_stale(const struct pgw_obs *o, struct pgw_action *a)
{
	const struct pgw_cluster *c = o->cluster;
	char why[200];

	/* Every wait here is bounded, 2 * loop_wait + 1 s from the loss: a live member
	 * republishes every loop, and a key that never changes (written without a lease,
	 * by a peer or by hand) must not hold the election up for ever (section 7). */
	if (o->positions_after_rev <= 0 ||
	    o->no_leader_for_ms >= (2LL * o->loop_wait_s + 1) * 1000 ||
	    !pgw_is_best_candidate(o, why, sizeof(why)))
		return false;
	for (int i = 0; i < c->nmembers; i++) {
		const struct pgw_member *m = &c->members[i];

		if (strcmp(m->name, o->self) == 0)
			continue;
		/* the last leader, back as a replica that may not lead, holds WAL nobody
		 * published: the replicas that still follow it receive it by cascading, so
		 * their keys are not final yet (simulator seed 30140) */
		if ((m->nofailover || m->watchdog_blocked) && last_leader_holds_more(o, m)) {
			detail(a,
			       "%s, the last leader, may not lead but holds more WAL (timeline %d, "
			       "position %" PRId64 "): its replicas may still receive it",
			       m->name, m->timeline, m->xlog_location);
			return true;
		}
		if (m->nofailover || m->watchdog_blocked)
			continue;
		/* not running yet but holding data: its position is unknown until it runs, and
		 * the old leader back as a replica holds the most WAL (simulator seeds 17050,
		 * 39269).  Not the last leader once fenced (powered off, confirmed): its key was
		 * written before the power went, and a daemon restarted on it just before (it
		 * stops the leftover primary, then publishes "stopped") would hold the election
		 * up for 2 * loop_wait + 1 s for nothing (failover bench, kill-restart: 28 s) */
		if (strcmp(m->state, "running") != 0 && strcmp(m->role, "uninitialized") != 0 &&
		    m->role[0] && !fenced_last_leader(o, m)) {
			detail(a, "%s is %s, seen %" PRId64 " ms without a leader", m->name,
			       m->state[0] ? m->state : "in an unknown state", o->no_leader_for_ms);
			return true;
		}
		if (strcmp(m->role, "replica") != 0 || strcmp(m->state, "running") != 0 ||
		    m->mod_revision > o->positions_after_rev)
			continue;
		detail(a, "%s, key revision %" PRId64 ", leader lost at or before %" PRId64,
		       m->name, m->mod_revision, o->positions_after_rev);
		return true;
	}
	return false;
}

static bool g_n_nofailover(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)a;
	return o->nofailover;
}

static bool g_n_timeline_behind(const struct pgw_obs *o, struct pgw_action *a)
{
	char why[200];

	if (!pgw_timeline_behind(o, why, sizeof(why)))
		return false;
	detail(a, "%s", why);
	return true;
}

static bool g_n_candidate(const struct pgw_obs *o, struct pgw_action *a)
{
	char why[200];

	if (!pgw_is_best_candidate(o, why, sizeof(why)))
		return false;
	detail(a, "position %" PRId64 ", leader's last %" PRId64 "%s", o->self_member.xlog_location,
	       o->leader_optime,
	       o->standby_cluster ? "; standby cluster: as standby leader, no promotion" : "");
	a->standby_leader = o->standby_cluster;
	return true;
}

static bool g_n_not_best(const struct pgw_obs *o, struct pgw_action *a)
{
	char why[200];

	if (pgw_is_best_candidate(o, why, sizeof(why)))
		return false; /* unreachable: the row above took it */
	detail(a, "%s", why);
	return true;
}

static bool g_always(const struct pgw_obs *o, struct pgw_action *a)
{
	(void)o;
	(void)a;
	return true;
}

static const struct rule rules[] = {
    {"shutdown", "any", g_shutdown, PGW_ACT_SHUTDOWN,
     "shutdown requested: stop PostgreSQL, then release the leader key"},
    {"lease-deadline", "primary", g_lease_deadline, PGW_ACT_DEMOTE_NOW,
     "the lease could not be renewed before D - S: stopping writes at once"},
    {"etcd-unreachable", "any", g_etcd_down, PGW_ACT_NONE,
     "etcd unreachable: keeping the current role (a primary stops at the lease deadline)"},
    {"primary-other-leader", "primary", g_primary_other_leader, PGW_ACT_DEMOTE_NOW,
     "running as primary while another member holds the leader key: stopping writes at once"},
    {"primary-without-key", "primary", g_primary_no_leader, PGW_ACT_DEMOTE,
     "running as primary without the leader key: demoting to stand for election as a replica"},
    {"switchover-cancel", "leader", g_switchover_cancel, PGW_ACT_CANCEL_SWITCHOVER,
     "a switchover request cannot be carried out: removing it"},
    {"switchover", "leader", g_switchover, PGW_ACT_HANDOVER,
     "switchover requested: stopping PostgreSQL and handing over the leader key"},
    {"leader-watchdog-failed", "leader", g_leader_watchdog, PGW_ACT_RELEASE,
     "watchdog mode required but the watchdog cannot be armed: stopping PostgreSQL and "
     "releasing the leader key (not while paused)"},
    {"leader-healthy", "leader", g_leader_healthy, PGW_ACT_LEADER_DUTIES,
     "holding the leader key and running as primary"},
    {"leader-lease-stale", "leader", g_leader_lease_stale, PGW_ACT_NONE,
     "holding the leader key but the lease is past D - S: not promoting or starting until it is "
     "renewed"},
    {"paused", "any", g_paused, PGW_ACT_NONE,
     "maintenance mode (pause): no automatic promotion, demotion, start or stop"},
    {"pre-promote-vetoed-leader", "leader", g_leader_vetoed, PGW_ACT_RELEASE,
     "postgresql.pre_promote vetoed this node's promotion: stopping PostgreSQL and releasing "
     "the leader key instead of promoting"},
    {"standby-leader", "leader", g_standby_leader, PGW_ACT_NONE,
     "standby cluster (standby_cluster in the dynamic configuration): standby leader "
     "following the remote primary, not promoting"},
    {"standby-leader-follow", "leader", g_standby_leader_follow, PGW_ACT_FOLLOW,
     "standby cluster: standby leader following another server: switching to the remote "
     "primary"},
    {"standby-leader-start", "leader", g_standby_leader_start, PGW_ACT_START_REPLICA,
     "standby cluster: standby leader with PostgreSQL stopped: starting it as a standby of "
     "the remote primary"},
    {"leader-in-recovery", "leader", g_leader_promote, PGW_ACT_PROMOTE,
     "holding the leader key while PostgreSQL is in recovery and no standby_cluster in the "
     "dynamic configuration: promoting"},
    {"leader-start-timeout", "leader", g_leader_start_timeout, PGW_ACT_RELEASE,
     "PostgreSQL did not come up as primary within primary_start_timeout: releasing the leader "
     "key"},
    {"leader-no-data", "leader", g_leader_no_data, PGW_ACT_RELEASE,
     "holding the leader key without a usable data directory: releasing it"},
    {"leader-starting", "leader", g_leader_starting, PGW_ACT_NONE,
     "holding the leader key: waiting for PostgreSQL to accept connections"},
    {"leader-postgres-down", "leader", g_leader_restart, PGW_ACT_START_PRIMARY,
     "holding the leader key and PostgreSQL is not running: starting it in place"},
    {"release-stale-own-key", "no leader", g_release_stale_own_key, PGW_ACT_RELEASE,
     "the leader key names this node on an earlier lease and PostgreSQL is stopped: releasing "
     "it (no fence needed) instead of waiting for that lease to expire"},
    {"stale-own-key", "no leader", g_stale_own_key, PGW_ACT_NONE,
     "the leader key names this node but belongs to an earlier lease: waiting for it to expire"},
    {"fence-lock-stale", "any", g_fence_lock_stale, PGW_ACT_RELEASE_FENCE_LOCK,
     "this node holds the fence lock but is not fencing: releasing it so that another "
     "member can"},
    {"fast-takeover", "replica", g_f_fast_takeover, PGW_ACT_FENCE,
     "the leader answers neither on REST nor on PostgreSQL and no longer renews its lease: "
     "fencing it to take over before the lease expires"},
    {"leader-member-missing", "replica", g_f_no_member, PGW_ACT_NONE,
     "the leader's member key is missing: cannot connect to it yet"},
    {"clone", "replica", g_f_clone, PGW_ACT_CLONE, "empty data directory: cloning from the leader"},
    {"invalid-datadir", "any", g_invalid_datadir, PGW_ACT_NONE,
     "the data directory is not a usable PostgreSQL cluster: not touching it"},
    {"foreign-datadir", "any", g_foreign, PGW_ACT_NONE,
     "the data directory belongs to another cluster: not touching it"},
    {"following-archive", "replica", g_f_following_archive, PGW_ACT_NONE,
     "tags.nostream: replaying WAL from the archive (restore_command), not streaming"},
    {"stop-streaming", "replica", g_f_stop_streaming, PGW_ACT_FOLLOW,
     "tags.nostream: removing primary_conninfo, WAL comes from restore_command only"},
    {"following-upstream", "replica", g_f_following_upstream, PGW_ACT_NONE,
     "replica following the member named by tags.replicatefrom (cascading replication)"},
    {"follow-upstream", "replica", g_f_follow_upstream, PGW_ACT_FOLLOW,
     "tags.replicatefrom names a running, streaming member: switching to it (cascading "
     "replication)"},
    {"following", "replica", g_f_following, PGW_ACT_NONE, "replica following the leader"},
    {"follow-new-leader", "replica", g_f_follow_new, PGW_ACT_FOLLOW,
     "replica following another primary: switching to the leader"},
    {"leader-timeline-unknown", "replica", g_f_leader_tl_unknown, PGW_ACT_NONE,
     "old primary waiting for the leader to publish its timeline before rewinding"},
    {"keep-unrewound-data", "replica", g_f_keep_data, PGW_ACT_NONE,
     "old primary that cannot be rewound, and the configuration keeps its data directory: "
     "waiting for pgwardenctl reinit"},
    {"reclone", "replica", g_f_reclone, PGW_ACT_CLONE,
     "old primary cannot be rewound: re-cloning from the leader"},
    {"rewind", "replica", g_f_rewind, PGW_ACT_REWIND,
     "old primary rejoining: rewinding from the leader"},
    {"start-replica", "replica", g_f_start, PGW_ACT_START_REPLICA,
     "PostgreSQL stopped: starting it as a replica of the leader (or of the member its "
     "tags.replicatefrom names)"},
    {"no-fresh-lease", "no leader", g_n_no_fresh_lease, PGW_ACT_NONE,
     "no leader, but this node holds no fresh lease: it cannot take the leader key"},
    {"watchdog-no-bootstrap", "no leader", g_n_watchdog_bootstrap, PGW_ACT_NONE,
     "no cluster in etcd, but watchdog mode required and the watchdog cannot be armed: not "
     "bootstrapping"},
    {"bootstrap-standby", "no leader", g_n_bootstrap_standby, PGW_ACT_BOOTSTRAP,
     "no cluster in etcd, an empty data directory and standby_cluster in bootstrap.dcs: "
     "cloning the remote primary to bootstrap a standby cluster"},
    {"bootstrap", "no leader", g_n_bootstrap, PGW_ACT_BOOTSTRAP,
     "no cluster in etcd and an empty data directory: bootstrapping a new cluster"},
    {"uninitialized-with-data", "no leader", g_n_uninitialized_data, PGW_ACT_NONE,
     "no cluster in etcd but the data directory holds data: refusing to bootstrap over it"},
    {"bootstrap-in-progress", "no leader", g_n_bootstrapping, PGW_ACT_NONE,
     "another member is bootstrapping the cluster"},
    {"clone-no-leader", "no leader", g_n_clone_no_leader, PGW_ACT_CLONE,
     "no leader and an empty data directory: creating a replica with a method that needs no "
     "leader (no_leader)"},
    {"no-leader-empty", "no leader", g_n_empty, PGW_ACT_NONE,
     "no leader and an empty data directory: nothing to clone from yet"},
    {"no-leader-start", "no leader", g_n_start, PGW_ACT_START_REPLICA,
     "no leader: starting PostgreSQL as a replica to stand for election"},
    {"no-leader-starting", "no leader", g_n_starting, PGW_ACT_NONE,
     "no leader: waiting for PostgreSQL to accept connections"},
    {"pre-promote-vetoed-request", "no leader", g_n_vetoed_request, PGW_ACT_CANCEL_SWITCHOVER,
     "postgresql.pre_promote vetoed this node's promotion: removing the switchover or failover "
     "request that names it"},
    {"pre-promote-vetoed", "no leader", g_n_vetoed, PGW_ACT_NONE,
     "postgresql.pre_promote vetoed this node's promotion: not standing for election for now"},
    {"fence-by-other", "no leader", g_n_fence_other, PGW_ACT_NONE,
     "the last leader was lost without releasing its key and another member is fencing it: "
     "waiting"},
    {"fencer-takes-over", "no leader", g_n_fencer_takes_over, PGW_ACT_NONE,
     "the member that fenced the last leader takes over: waiting for it"},
    {"fence-record-unreadable", "no leader", g_n_fence_unreadable, PGW_ACT_NONE,
     "fencing required but the leader record (pgwarden/leader) is unreadable: no one to fence, "
     "not promoting"},
    {"fence-before-promote", "no leader", g_n_fence, PGW_ACT_FENCE,
     "the last leader was lost without releasing its key: powering it off through its BMC, "
     "confirmed, before taking the leader key"},
    {"unprotected-leader-lost", "no leader", g_n_unprotected, PGW_ACT_NONE,
     "the last leader was lost without releasing its key, and neither a fence nor an armed "
     "watchdog stops it writing: not promoting (failover.unprotected opts in)"},
    {"watchdog-no-election", "no leader", g_n_watchdog, PGW_ACT_NONE,
     "no leader, but watchdog mode required and the watchdog cannot be armed: not standing "
     "for election"},
    {"failover-to-this-node", "no leader", g_n_failover_self, PGW_ACT_ACQUIRE,
     "a switchover or failover names this node: taking the leader key"},
    {"failover-to-other", "no leader", g_n_failover_other, PGW_ACT_NONE,
     "a switchover or failover names another member: waiting for it to take over"},
    {"nofailover", "no leader", g_n_nofailover, PGW_ACT_NONE,
     "no leader, but this node is tagged nofailover: not standing for election"},
    {"timeline-behind", "no leader", g_n_timeline_behind, PGW_ACT_NONE,
     "check_timeline: this node's timeline is behind the cluster's (the history key): not "
     "standing for election"},
    {"positions-stale", "no leader", g_n_positions_stale, PGW_ACT_NONE,
     "no leader: waiting for the members' positions published after the leader's loss"},
    {"candidate", "no leader", g_n_candidate, PGW_ACT_ACQUIRE,
     "no leader and this node is the healthiest eligible member: taking the leader key"},
    {"not-best", "no leader", g_n_not_best, PGW_ACT_NONE, "no leader: not the best candidate"},
    {"fallthrough", "any", g_always, PGW_ACT_NONE, "no rule applies: doing nothing"},
};

void pgw_decide(const struct pgw_obs *o, struct pgw_action *a)
{
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const struct rule *r = &rules[i];

		memset(a, 0, sizeof(*a));
		snprintf(a->reason, sizeof(a->reason), "%s", r->reason);
		if (r->guard(o, a)) {
			a->kind = r->kind;
			a->rule = r->name;
			return;
		}
	}
}

void pgw_print_rules(FILE *out, bool dot)
{
	size_t n = sizeof(rules) / sizeof(rules[0]);

	if (!dot) {
		for (size_t i = 0; i < n; i++)
			fprintf(out, "%2zu  %-24s %-10s -> %-14s %s\n", i + 1, rules[i].name,
			        rules[i].situation, pgw_action_name(rules[i].kind),
			        rules[i].reason);
		return;
	}
	fprintf(out, "digraph pgwarden {\n  rankdir=LR;\n");
	for (size_t i = 0; i < n; i++)
		fprintf(out, "  \"%s\" -> \"%s\" [label=\"%zu %s\"];\n", rules[i].situation,
		        pgw_action_name(rules[i].kind), i + 1, rules[i].name);
	fprintf(out, "}\n");
}
