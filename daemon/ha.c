/*
 * ha.c - the HA loop; see ha.h.  One cycle: rule 7, renew the lease, observe
 * PostgreSQL, publish the member key, read the cluster, step (core/step.c), carry out
 * the action (ha_act.c), serve one queued request (ha_serve.c), publish (ha_publish.c),
 * wait.  The decisions are all the core's; this file only sequences the I/O.
 *
 * Ownership: struct ha (ha_int.h) owns the etcd client, the PostgreSQL controller, the
 * REST server and the last cluster view; everything is freed in ha_close().  Only this
 * thread talks to etcd and PostgreSQL.
 */
#include "ha.h"
#include "ha_int.h"
#include "probe.h"

int64_t ha_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double ha_wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

bool ha_pg_is_primary(const struct pgw_pg_state *st)
{
	return st->running && st->accepting && !st->in_recovery;
}

/* Timeout for one etcd call: retry_timeout, never past D - S while writing. */
int ha_op_timeout(const struct ha *h)
{
	return pgw_lease_op_timeout_ms(&h->lease, ha_mono_ms(), SAFETY_MARGIN_MS,
	                               h->dcs.retry_timeout, h->st.was_primary || h->st.vip_held);
}

/*
 * How long a fence (or unfence) may block the loop: until D - S, less 1 s to renew.
 * Past that, the lease and with it the fence lock could lapse mid-fence.
 */
int64_t ha_fence_budget_ms(const struct ha *h)
{
	return pgw_lease_write_budget_ms(&h->lease, ha_mono_ms(), SAFETY_MARGIN_MS) - 1000;
}

/* --- lease --- */

#define LAPSED_KEEPALIVE_MS 1000

/* After anything that moves D or the watchdog's countdown: writes stop before the
 * watchdog can fire (pgw_lease_cap_to_watchdog). */
static void ha_cap_lease(struct ha *h)
{
	pgw_lease_cap_to_watchdog(&h->lease, pgw_wdguard_fires_at(h->wd), SAFETY_MARGIN_MS,
	                          PGW_WD_STOP_LEAD_MS);
}

static int renew_lease(struct ha *h);

int ha_renew_lease(struct ha *h)
{
	int rc = renew_lease(h);

	ha_cap_lease(h);
	return rc;
}

/* 0, or the etcd client's error (PGW_ETCD_EUNAVAIL: no endpoint answered in time). */
static int renew_lease(struct ha *h)
{
	int64_t t_send = ha_mono_ms(), id;
	int ttl = 0, rc;

	if (h->lease.id != 0 && t_send >= h->lease.deadline_ms) {
		/* Rule 7: past D the lease is lapsed for us, whatever etcd still thinks. */
		pgw_warn("lease %" PRIx64 " passed its deadline without renewal: no longer "
		         "counting on it (only a keepalive that succeeds brings it back)",
		         h->lease.id);
		pgw_lease_lapse(&h->lease);
	}
	id = pgw_lease_to_renew(&h->lease);
	if (id != 0) {
		/* A lapsed lease's keepalive waits at most LAPSED_KEEPALIVE_MS: etcd does not
		 * complete a keepalive that reached it while it had no leader, so after a loss
		 * of quorum the one that brings the lease back is the first sent after etcd
		 * elected a leader again, and these come about once a second (wait_next). */
		int timeout = ha_op_timeout(h);

		if (h->lease.id == 0 && timeout > LAPSED_KEEPALIVE_MS)
			timeout = LAPSED_KEEPALIVE_MS;
		rc = pgw_etcd_lease_keepalive(h->etcd, id, timeout, &ttl);
		if (rc != 0) {
			pgw_warn("lease keepalive failed: %s", pgw_etcd_errmsg(h->etcd));
			return rc;
		}
		if (ttl > 0) {
			if (h->lease.id == 0)
				pgw_warn(
				    "lease %" PRIx64 " is still alive in etcd (etcd restarts "
				    "lease timers when it regains quorum): renewed, counting on it "
				    "again with a new deadline",
				    id);
			pgw_lease_renewed(&h->lease, id, t_send, ttl);
			pgw_wdguard_renewed(h->wd, t_send, ha_mono_ms(), SAFETY_MARGIN_MS);
			return 0;
		}
		pgw_warn("lease %" PRIx64 " is gone in etcd: granting a new one", id);
		pgw_lease_lost(&h->lease);
		t_send = ha_mono_ms();
	}
	rc = pgw_etcd_lease_grant(h->etcd, h->dcs.ttl, ha_op_timeout(h), &id, &ttl);
	if (rc != 0 || id == 0 || ttl <= 0) {
		pgw_warn("lease grant failed: %s", pgw_etcd_errmsg(h->etcd));
		return rc != 0 ? rc : PGW_ETCD_EPROTO;
	}
	pgw_lease_renewed(&h->lease, id, t_send, ttl);
	pgw_wdguard_renewed(h->wd, t_send, ha_mono_ms(), SAFETY_MARGIN_MS);
	pgw_info("granted lease %" PRIx64 " with ttl %d s", id, ttl);
	return 0;
}

/* A create_replica_methods method that works without a leader (no_leader)? */
static bool clone_without_leader(const struct pgw_config *c)
{
	for (size_t i = 0; i < c->postgresql.create_replica_methods.n; i++) {
		const struct pgw_method *m = pgw_method_find(
		    &c->postgresql.replica_methods, c->postgresql.create_replica_methods.items[i]);

		if (m && m->no_leader)
			return true;
	}
	return false;
}

/* --- observation --- */

void ha_observe_pg(struct ha *h)
{
	pgw_pg_observe(h->pg, PG_OBSERVE_TIMEOUT_MS, &h->pgst);
	pgw_step_pg_observed(&h->st, &h->pgst);
}

static void read_cluster(struct ha *h)
{
	struct pgw_etcd_range r = {0};

	h->etcd_ok = false;
	if (pgw_etcd_range_prefix(h->etcd, h->prefix, ha_op_timeout(h), &r) != 0) {
		pgw_warn("cannot read the cluster from etcd: %s", pgw_etcd_errmsg(h->etcd));
		pgw_etcd_range_free(&r);
		return;
	}
	pgw_cluster_parse(&r, h->prefix, &h->cluster);
	pgw_etcd_range_free(&r);
	if (h->cluster.has_leader)
		h->leader_gone_rev = 0;
	else if (h->leader_gone_rev <= h->cluster.revision)
		h->cluster.leader_gone_rev = h->leader_gone_rev;
	if (h->cluster.warnings[0])
		pgw_warn("etcd: %s", h->cluster.warnings);
	h->etcd_ok = true;
	h->dcs_last_seen = ha_wall_now();
}

/* standby_cluster: what etcd says, within what the file allows (standby.h) */
static void standby_effective(struct ha *h)
{
	char why[256];

	pgw_standby_effective(&h->dcs.standby, &h->cfg->dcs.standby, &h->standby, why, sizeof(why));
	if (strcmp(why, h->standby_refused) != 0 && why[0])
		pgw_warn("dynamic configuration: standby_cluster: %s", why);
	snprintf(h->standby_refused, sizeof(h->standby_refused), "%s", why);
}

bool ha_standby_leader(const struct ha *h)
{
	return h->standby.enabled && h->etcd_ok && h->cluster.has_leader && h->lease.id != 0 &&
	       strcmp(h->cluster.leader, h->cfg->name) == 0 &&
	       h->cluster.leader_lease == h->lease.id && h->pgst.running &&
	       !ha_pg_is_primary(&h->pgst);
}

void ha_build_obs(struct ha *h, struct pgw_obs *o, bool shutdown)
{
	const struct pgw_config *c = h->cfg;
	struct pgw_member *s = &o->self_member;

	memset(o, 0, sizeof(*o));
	o->now_ms = ha_mono_ms();
	o->wall_now = ha_wall_now();
	o->self = c->name;
	o->shutdown_requested = shutdown;
	o->lease = h->lease;
	o->margin_ms = SAFETY_MARGIN_MS;
	o->watchdog_unusable = pgw_wdguard_unusable(h->wd);
	o->fencing_required = h->cfg->fencing.mode == PGW_FENCE_REQUIRED;
	o->fast_takeover_after_ms = h->cfg->fencing.fast_takeover_after_ms;
	o->unprotected_failover = h->cfg->failover_unprotected;
	o->loop_wait_s = h->dcs.loop_wait;
	s->watchdog_blocked = o->watchdog_unusable;
	o->etcd_ok = h->etcd_ok;
	o->cluster = &h->cluster;
	o->pg = &h->pgst;
	o->cd_valid = h->pgst.cd_valid;
	o->cd = h->pgst.cd;
	snprintf(s->name, sizeof(s->name), "%s", c->name);
	snprintf(s->role, sizeof(s->role), "%s", pgw_pg_role_name(&h->pgst));
	snprintf(s->state, sizeof(s->state), "%s", ha_observed_state(h));
	s->xlog_location = pgw_pg_wal_position(&h->pgst);
	s->timeline = h->pgst.timeline;
	s->nofailover = c->tags.nofailover;
	s->failover_priority = c->tags.failover_priority;
	o->max_lag = h->dcs.maximum_lag_on_failover;
	o->nofailover = c->tags.nofailover;
	/* postgresql.use_pg_rewind in the local file wins over the dynamic one (Patroni) */
	o->use_pg_rewind =
	    c->postgresql.use_pg_rewind_set ? c->postgresql.use_pg_rewind : h->dcs.use_pg_rewind;
	o->keep_data_on_rewind_failure = !c->postgresql.remove_on_rewind_failure;
	o->keep_data_without_rewind = !c->postgresql.remove_on_diverged_timelines;
	o->clone_without_leader = clone_without_leader(c);
	o->primary_start_timeout_s = h->dcs.primary_start_timeout;
	standby_effective(h);
	o->standby_cluster = h->standby.enabled;
	o->standby_host = h->standby.host;
	o->standby_port = h->standby.port;
	o->replicatefrom = c->tags.replicatefrom;
	o->nostream = c->tags.nostream;
	s->nostream = c->tags.nostream;
	o->check_timeline = h->dcs.check_timeline;
	if (c->tags.replicatefrom)
		snprintf(s->replicatefrom, sizeof(s->replicatefrom), "%s", c->tags.replicatefrom);
}

/* --- actions --- */

struct watch_ctx {
	const struct ha *h;
	bool leader;
	int64_t *gone_rev; /* the revision of the leader key's deletion, when seen */
};

static bool watch_fires(void *arg, const struct pgw_etcd_event *ev)
{
	const struct watch_ctx *w = arg;
	size_t plen = strlen(w->h->prefix);

	if (strcmp(ev->key, w->h->leader_key) == 0) {
		if (ev->type == PGW_ETCD_DELETE)
			*w->gone_rev = ev->mod_revision;
		return true;
	}
	/* the leader acts on a switchover request at once */
	if (w->leader && strcmp(ev->key, w->h->failover_key) == 0)
		return true;
	/* a candidate waiting for positions published after the leader's loss wakes up
	 * for each one, instead of a whole loop later */
	if (w->h->last.rule && strcmp(w->h->last.rule, "positions-stale") == 0 &&
	    ev->type == PGW_ETCD_PUT && strncmp(ev->key + plen, "members/", 8) == 0)
		return true;
	/* the leader wakes up for a new member, to create its slot at once */
	return w->leader && ev->type == PGW_ETCD_PUT && ev->version == 1 &&
	       strncmp(ev->key + plen, "members/", 8) == 0;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Should the loop's sleep end now?  A stop, a SIGHUP or a queued REST request. */
static bool wake_up(void *arg)
{
	struct ha *h = arg;

	return *h->stop || *h->reload || (h->control && pgw_control_pending(h->control));
}

/*
 * Watch etcd until `until` in slices of `every` ms and call between() after each: the
 * wait ends on an event, a failed watch, a wake-up, or when between() says so.
 */
static void watch_in_slices(struct ha *h, int64_t until, int64_t every, struct watch_ctx *w,
                            bool (*between)(struct ha *h, int64_t until, int64_t *every,
                                            bool *state),
                            bool state)
{
	int64_t wait;
	bool fired = false;

	while ((wait = until - ha_mono_ms()) > 0 && !wake_up(h)) {
		if (pgw_etcd_watch(h->etcd, h->prefix, h->cluster.revision + 1,
		                   (int)(wait < every ? wait : every), watch_fires, w,
		                   &fired) != 0 ||
		    fired || between(h, until, &every, &state))
			return;
	}
}

/* Fast takeover, the replica's side: ask the prober; stop waiting once the leader has
 * been silent for the threshold with its lease unrenewed as long (rule 8).  Close to
 * the threshold, ask again when it is reached rather than a whole round later. */
static bool probe_between(struct ha *h, int64_t until, int64_t *every, bool *state)
{
	int64_t t = h->cfg->fencing.fast_takeover_after_ms, silence, unrenewed;

	(void)until;
	(void)state;
	ha_probe_leader(h);
	silence = pgw_step_silence_ms(&h->st, &h->cluster, ha_mono_ms());
	unrenewed = pgw_step_unrenewed_ms(&h->st, &h->cluster);
	if (silence >= t && unrenewed >= t)
		return true;
	*every = ha_probe_interval_ms(h);
	if (silence > 0) {
		int64_t left = t - (silence < unrenewed || unrenewed == 0 ? silence : unrenewed);

		*every = ha_clamp(left, 50, *every);
	}
	return false;
}

/*
 * Fast takeover, the leader's side: renew the lease every PGW_HEARTBEAT_MS, so that a
 * replica can tell from etcd that a leader it cannot reach is alive (pgw_lease_ttl_stale).
 * *beating: a renewal that fails ends the heartbeat until the next cycle.
 */
static bool heartbeat_between(struct ha *h, int64_t until, int64_t *every, bool *beating)
{
	(void)every;
	if (*beating && h->lease.id != 0 && h->lease.lapsed_id == 0 && ha_mono_ms() + 100 < until)
		*beating = ha_renew_lease(h) == 0 && h->lease.id != 0;
	return false;
}

/* A replica started (or repointed) in the last CATCH_UP_MS that was not seen streaming
 * yet (it may have been started in this very cycle, after the observation). */
#define CATCH_UP_MS 30000

static bool replica_catching_up(const struct ha *h, int64_t now)
{
	return h->replica_started_ms != 0 && now - h->replica_started_ms < CATCH_UP_MS &&
	       !(h->pgst.running && h->pgst.streaming);
}

static void wait_next(struct ha *h, int64_t cycle_start, bool holds)
{
	int64_t until = cycle_start + (int64_t)h->dcs.loop_wait * 1000;
	int64_t now = ha_mono_ms(), wait;
	struct watch_ctx w = {h, holds, &h->leader_gone_rev};
	bool fired = false;

	if ((h->st.was_primary || h->st.vip_held) && h->lease.id != 0) {
		/* wake up in time to renew (or to demote, the vip first) before D - S */
		int64_t latest = h->lease.deadline_ms - SAFETY_MARGIN_MS - 500;
		if (latest < until)
			until = latest;
	}
	if (pgw_cbrun_deadline(h->cb) != 0 && pgw_cbrun_deadline(h->cb) < until)
		until = pgw_cbrun_deadline(h->cb); /* a hung callback is killed on time */
	if (h->lease.lapsed_id != 0 && until > cycle_start + 1000)
		until = cycle_start + 1000; /* try its keepalive every second: see ha_renew_lease */
	if (replica_catching_up(h, now) && until > cycle_start + 1000)
		until =
		    cycle_start + 1000; /* publish "streaming" (REST /replica) within a second */
	wait = until - now;
	if (wait <= 0 || wake_up(h))
		return;
	if (!ha_watching_leader(h))
		ha_probe_leader(
		    h); /* stops the prober: nobody to watch (else probe_between asks) */
	if (h->etcd_ok && ha_watching_leader(h)) {
		/* asks the prober after each of its rounds */
		watch_in_slices(h, until, ha_probe_interval_ms(h), &w, probe_between, false);
		return;
	}
	if (h->etcd_ok && holds && h->cfg->fencing.fast_takeover_after_ms > 0) {
		watch_in_slices(h, until, PGW_HEARTBEAT_MS, &w, heartbeat_between, true);
		return;
	}
	if (h->etcd_ok) {
		if (pgw_etcd_watch(h->etcd, h->prefix, h->cluster.revision + 1, (int)wait,
		                   watch_fires, &w, &fired) == 0)
			return;
		pgw_debug("watch failed: %s", pgw_etcd_errmsg(h->etcd));
	}
	/* etcd unreachable: sleep in short steps so a stop signal is seen quickly */
	while (!wake_up(h) && (wait = until - ha_mono_ms()) > 0)
		sleep_ms(wait < 200 ? wait : 200);
}

/* --- the watchdog (rules 3 to 5; the policy is wdguard.c) --- */

/* W for the lease in use (a new lease gets the config's ttl). */
bool ha_arm_watchdog(struct ha *h)
{
	int ttl = h->lease.id ? h->lease.ttl_s : h->dcs.ttl;
	bool ok = pgw_wdguard_arm(h->wd, ttl, h->cfg->watchdog.safety_margin, h->dcs.loop_wait);

	ha_cap_lease(h);
	return ok;
}

/* Rule 5: once PostgreSQL no longer accepts writes (looked at again when the action
 * gave up) and the key is not ours, the watchdog is disarmed. */
static void watchdog_after_act(struct ha *h, const struct pgw_action *a, bool held)
{
	if (pgw_action_gives_up(a->kind))
		ha_observe_pg(h);
	if (pgw_step_may_disarm(&h->st, a, held))
		pgw_wdguard_idle(h->wd);
}

/*
 * The leader is gone and this node's member key predates the loss: the candidates
 * compare only positions published after it (decide.c, positions-stale), so publish
 * again at once.  This node may have published just before the loss in this very
 * cycle, and would otherwise do so only a loop_wait later, while the candidate waits
 * for it (the failover bench: 10 s of a fast takeover at loop_wait 10).
 */
static void republish_after_loss(struct ha *h)
{
	const struct pgw_member *me = pgw_cluster_member(&h->cluster, h->cfg->name);

	if (h->etcd_ok && h->st.no_leader_rev > 0 && me && me->mod_revision <= h->st.no_leader_rev)
		ha_publish_member(h);
}

static void cycle(struct ha *h, bool shutdown)
{
	struct pgw_obs o;
	struct pgw_action a;
	int64_t start = ha_mono_ms();
	bool holds, etcd_down, fenced_before;

	h->won_key = false;
	/* Rule 7: after any pause, compare the clock with D before anything else (the
	 * virtual IP goes first, then writes stop). */
	ha_vip_guard(h, NULL, NULL);
	if (pgw_step_must_stop(&h->st, &h->lease, start, SAFETY_MARGIN_MS)) {
		pgw_error("lease deadline D - S passed while running as primary: stopping "
		          "PostgreSQL at once");
		ha_stop_pg(h, "immediate", false, true); /* before_stop skipped: no time left */
		ha_observe_pg(h);
		if (!h->st.was_primary)
			pgw_wdguard_idle(h->wd); /* rule 5: writes stopped first */
	}
	pgw_cbrun_reap(h->cb); /* callbacks that ended: logged; past their bound: killed */
	etcd_down = ha_renew_lease(h) == PGW_ETCD_EUNAVAIL;
	ha_vip_guard(h, NULL, NULL); /* a renewal that failed up to D - S, a lost lease */
	if (h->lease.id != 0 && h->lease.t_send_ms < start) { /* not renewed this loop */
		pgw_wdguard_bound(h->wd,
		                  pgw_lease_wd_bound_s(&h->lease, ha_mono_ms(), h->dcs.loop_wait));
		ha_cap_lease(h); /* a lowered W restarted the countdown */
	}
	ha_observe_pg(h);
	ha_vip_observe(h);
	if (*h->reload) {
		char msg[256];

		*h->reload = 0;
		ha_reload_config(h, msg, sizeof(msg));
	}
	if (etcd_down) {
		/* no endpoint answered the keepalive in time: a write and a read would wait out
		 * their timeouts too, and the next keepalive (the one that can bring a lapsed
		 * lease back when etcd regains quorum) would come that much later */
		h->etcd_ok = false;
	} else {
		ha_publish_member(h);
		read_cluster(h);
	}
	pgw_step_cluster_read(&h->st, h->etcd_ok, &h->cluster, &h->pgst, ha_mono_ms());
	republish_after_loss(h);
	ha_apply_dynamic_config(h);
	ha_build_obs(h, &o, shutdown);
	holds = pgw_obs_holds_leader(&o);
	pgw_step(&h->st, &o, &a);
	if (pgw_step_needs_watchdog(&h->st, &a)) {
		bool was_armed = pgw_wdguard_fires_at(h->wd) != 0;

		if (!ha_arm_watchdog(h))
			pgw_step_without_watchdog(&h->st, &o, &a);
		else if (!was_armed && pgw_wdguard_fires_at(h->wd) != 0 && h->etcd_ok)
			/* S3: the others learn of the armed watchdog before PostgreSQL may write
			 * (a leader whose lapsed lease came back holds the key disarmed) */
			ha_publish_member(h);
	}
	ha_log_decision(h, &a);
	fenced_before = h->st.fenced[0] != '\0';
	ha_vip_guard(h, &o, &a); /* before an action that gives up writing */
	ha_act(h, &a, holds);
	ha_vip_after(h, &a, holds);
	watchdog_after_act(h, &a, holds);
	if (!shutdown) { /* after the safety rows: a restart as primary needs a healthy leader */
		ha_serve_request(h, holds && a.kind == PGW_ACT_LEADER_DUTIES);
		ha_vip_guard(h, NULL, NULL); /* e.g. restarted as a replica */
	}
	h->loop_mono_ms = ha_mono_ms();
	ha_publish_snapshot(h, holds);
	ha_notify_systemd(h, &a, holds);
	/* a fence just confirmed: the next cycle takes the key at once, not a loop later */
	if (!shutdown && !(a.kind == PGW_ACT_FENCE && !fenced_before && h->st.fenced[0]))
		wait_next(h, start, holds);
}

static bool key(char *dst, size_t len, const char *prefix, const char *suffix)
{
	return (size_t)snprintf(dst, len, "%s%s", prefix, suffix) < len;
}

static int ha_open(struct ha *h, const struct pgw_config *cfg, struct pgw_wdguard *wd,
                   volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
	const struct pgw_etcd_tls tls = {cfg->etcd3.cacert, cfg->etcd3.cert, cfg->etcd3.key};
	const struct pgw_rest_options rest_opts = {
	    .tls = &cfg->restapi.tls,
	    .backlog = cfg->restapi.request_queue_size,
	    .ciphers = cfg->restapi.ciphers,
	    .http_headers = &cfg->restapi.http_extra_headers,
	    .https_headers = &cfg->restapi.https_extra_headers,
	    .allowlist = &cfg->restapi.allowlist,
	    .allowlist_include_members = cfg->restapi.allowlist_include_members};
	char err[256], member[PGW_NAME_MAX + 16];

	memset(h, 0, sizeof(*h));
	h->cfg = cfg;
	h->wd = wd;
	h->stop = stop;
	h->reload = reload;
	pgw_state_init(&h->st);
	pgw_cluster_clear(&h->cluster);
	if (!pgw_dcs_copy(&h->dcs, &cfg->dcs)) {
		pgw_error("out of memory");
		return -1;
	}
	snprintf(member, sizeof(member), "members/%s", cfg->name);
	if ((size_t)snprintf(h->prefix, sizeof(h->prefix), "%s%s/", cfg->namespace, cfg->scope) >=
	        sizeof(h->prefix) ||
	    !key(h->leader_key, sizeof(h->leader_key), h->prefix, "leader") ||
	    !key(h->member_key, sizeof(h->member_key), h->prefix, member) ||
	    !key(h->init_key, sizeof(h->init_key), h->prefix, "initialize") ||
	    !key(h->status_key, sizeof(h->status_key), h->prefix, "status") ||
	    !key(h->history_key, sizeof(h->history_key), h->prefix, "history") ||
	    !key(h->config_key, sizeof(h->config_key), h->prefix, "config") ||
	    !key(h->failover_key, sizeof(h->failover_key), h->prefix, "failover") ||
	    !key(h->sync_key, sizeof(h->sync_key), h->prefix, "sync") ||
	    !key(h->record_key, sizeof(h->record_key), h->prefix, "pgwarden/leader") ||
	    !key(h->fence_lock_key, sizeof(h->fence_lock_key), h->prefix, "pgwarden/fence-lock") ||
	    !key(h->fenced_prefix, sizeof(h->fenced_prefix), h->prefix, "pgwarden/fenced/")) {
		pgw_error("namespace and scope are too long");
		return -1;
	}
	h->etcd = pgw_etcd_new((const char *const *)cfg->etcd3.hosts.items, cfg->etcd3.hosts.n,
	                       cfg->etcd3.protocol, cfg->etcd3.username, cfg->etcd3.password, &tls);
	h->pg = pgw_pg_new(cfg);
	h->fencer = pgw_fencer_new(cfg);
	if (!h->etcd || !h->pg || !h->fencer) {
		pgw_error("out of memory");
		return -1;
	}
	pgw_pg_set_logical_slots(h->pg, pgw_slot_conf_has_logical(&h->dcs.slots));
	pgw_etcd_set_interrupt(h->etcd, wake_up, h);
	h->rest = pgw_rest_start(cfg->restapi.listen, &rest_opts, err, sizeof(err));
	if (h->rest && cfg->fencing.mode == PGW_FENCE_REQUIRED)
		pgw_rest_set_audit_log(h->rest, cfg->fencing.audit_log);
	if (!h->rest) {
		pgw_error("%s", err);
		return -1;
	}
	h->control = pgw_control_new(cfg, h->prefix);
	h->cb = pgw_cbrun_new();
	if (!h->control || !h->cb) {
		pgw_error("out of memory");
		return -1;
	}
	pgw_rest_protect_reads(h->rest, cfg->restapi.protect_reads);
	pgw_rest_set_writer(h->rest, pgw_control_write, h->control, cfg->restapi.auth.username,
	                    cfg->restapi.auth.password);
	return 0;
}

static void ha_close(struct ha *h)
{
	struct pgw_request req;

	/* a REST thread waiting for the loop would hold up the server's stop */
	if (h->control && pgw_control_take(h->control, &req))
		pgw_control_finish(h->control, 503, "pgwarden is shutting down");
	if (h->rest)
		pgw_rest_stop(h->rest); /* first: no request may use the control after this */
	pgw_control_free(h->control);
	/* an on_stop of the final stop gets a moment to finish, not the whole bound */
	pgw_cbrun_free(h->cb, h->cfg->postgresql.callback_timeout_ms < 10000
	                          ? h->cfg->postgresql.callback_timeout_ms
	                          : 10000);
	pgw_fencer_free(h->fencer);
	pgw_prober_free(h->prober);
	pgw_dcs_free(&h->dcs);
	free(h->dcs_seen);
	free(h->status_slots);
	pgw_config_free(h->cfg_reloaded);
	if (h->pg)
		pgw_pg_free(h->pg);
	if (h->etcd)
		pgw_etcd_free(h->etcd);
	pgw_cluster_clear(&h->cluster);
}

int pgw_ha_run(const struct pgw_config *cfg, struct pgw_wdguard *wd, volatile sig_atomic_t *stop,
               volatile sig_atomic_t *reload)
{
	struct ha *h = calloc(1, sizeof(*h));
	bool clean = true;
	int rc = 1;

	if (!h) {
		pgw_error("out of memory");
		pgw_wdguard_close(wd, false);
		return 1;
	}
	if (ha_open(h, cfg, wd, stop, reload) == 0) {
		pgw_info("pgwarden %s: member %s of cluster %s, etcd prefix %s", PGW_VERSION,
		         cfg->name, cfg->scope, h->prefix);
		ha_check_systemd_watchdog(h);
		if (cfg->failover_unprotected && cfg->fencing.mode != PGW_FENCE_REQUIRED)
			pgw_warn("failover.unprotected is on: a replica promotes when a lost "
			         "leader's lease expires even if neither a fence nor an armed "
			         "watchdog stops that leader, so two primaries may accept writes "
			         "at once (ARCHITECTURE S3); turn it off, or arm a watchdog or "
			         "fencing");
		while (!*stop)
			cycle(h, false);
		pgw_info("shutting down");
		pgw_sd_stopping(
		    "shutting down: stopping PostgreSQL, then releasing the leader key");
		cycle(h, true); /* its SHUTDOWN observed PostgreSQL after stopping it */
		ha_vip_release(h);
		clean = !h->st.was_primary;
		rc = 0;
	}
	ha_close(h);
	pgw_wdguard_close(wd, clean);
	free(h);
	return rc;
}
