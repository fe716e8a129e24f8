/*
 * ha_publish.c - what the loop tells the world: the member key, the REST API's
 * snapshot, the decision log line and systemd's STATUS/READY/WATCHDOG.
 */
#include "ha_int.h"

const char *ha_observed_state(const struct ha *h)
{
	return h->member_state ? h->member_state : pgw_pg_state_name(&h->pgst);
}

void ha_publish_member(struct ha *h)
{
	const struct pgw_config *c = h->cfg;
	struct pgw_member_info mi = {0};
	struct pgw_wd_status wd;
	struct pgw_fence_state fs;
	char *conn_host = NULL, *api_host = NULL, *proxy_host = NULL, *json;
	int conn_port = 0, api_port = 0, proxy_port = 0;

	if (h->lease.id == 0)
		return;
	if (!pgw_split_hostport(c->postgresql.connect_address, &conn_host, &conn_port) ||
	    !pgw_split_hostport(c->restapi.connect_address, &api_host, &api_port)) {
		free(conn_host);
		free(api_host);
		return; /* validated at startup; cannot happen */
	}
	mi.conn_host = conn_host;
	mi.conn_port = conn_port;
	mi.api_host = api_host;
	mi.api_port = api_port;
	mi.api_https = c->restapi.tls.certfile != NULL;
	if (c->postgresql.proxy_address &&
	    pgw_split_hostport(c->postgresql.proxy_address, &proxy_host, &proxy_port)) {
		mi.proxy_host = proxy_host;
		mi.proxy_port = proxy_port;
	}
	mi.state = ha_observed_state(h);
	mi.role = ha_standby_leader(h) ? "standby_leader" : pgw_pg_role_name(&h->pgst);
	mi.version = PGW_VERSION;
	mi.xlog_location = pgw_pg_wal_position(&h->pgst);
	mi.receive_lsn =
	    h->pgst.in_recovery && h->pgst.accepting ? (int64_t)h->pgst.received_lsn : -1;
	mi.replay_lsn =
	    h->pgst.in_recovery && h->pgst.accepting ? (int64_t)h->pgst.replayed_lsn : -1;
	mi.timeline =
	    h->pgst.timeline ? h->pgst.timeline : (h->pgst.cd_valid ? h->pgst.cd.timeline : 0);
	mi.streaming = h->st.streamed;
	mi.pending_restart = h->pgst.pending_restart;
	mi.scheduled_restart = h->scheduled_restart[0] ? h->scheduled_restart : NULL;
	pgw_wdguard_status(h->wd, &wd);
	mi.wd_mode = pgw_wdguard_mode_name(wd.mode);
	mi.wd_armed = wd.armed;
	mi.wd_timeout = wd.timeout;
	mi.wd_failed = wd.failed;
	if (c->fencing.bmc.address) {
		mi.bmc_address = c->fencing.bmc.address;
		mi.bmc_lanplus = c->fencing.bmc.lanplus;
		mi.bmc_cipher_suite = c->fencing.bmc.cipher_suite;
		mi.bmc_privilege = pgw_ipmi_priv_name(c->fencing.bmc.privilege);
	}
	pgw_fencer_state(h->fencer, &fs);
	if (strcmp(fs.result, "failed") == 0) {
		mi.fence_target = fs.target;
		mi.fence_reason = fs.reason;
	}
	if (h->last.rule && (strcmp(h->last.rule, "unprotected-leader-lost") == 0 ||
	                     strcmp(h->last.rule, "fence-record-unreadable") == 0))
		mi.failover_blocked = h->last.reason;
	mi.pause = h->etcd_ok && h->cluster.paused;
	mi.nofailover = c->tags.nofailover;
	mi.noloadbalance = c->tags.noloadbalance;
	mi.clonefrom = c->tags.clonefrom;
	mi.nosync = c->tags.nosync;
	mi.failover_priority = c->tags.failover_priority;
	mi.replicatefrom = c->tags.replicatefrom;
	mi.nostream = c->tags.nostream;
	json = pgw_member_json(&mi);
	if (json && pgw_etcd_put(h->etcd, h->member_key, json, strlen(json), h->lease.id,
	                         ha_op_timeout(h)) != 0)
		pgw_warn("cannot publish %s: %s", h->member_key, pgw_etcd_errmsg(h->etcd));
	free(json);
	free(conn_host);
	free(api_host);
	free(proxy_host);
}

void ha_log_decision(struct ha *h, const struct pgw_action *a)
{
	bool same = a->kind == h->last.kind && strcmp(a->reason, h->last.reason) == 0;
	enum pgw_log_level lvl = a->kind == PGW_ACT_NONE ? PGW_INFO : PGW_WARNING;

	if (a->kind == PGW_ACT_LEADER_DUTIES)
		lvl = PGW_INFO;
	if (same)
		lvl = PGW_DEBUG;
	pgw_log(lvl, "decision [%s] %s: %s", a->rule, pgw_action_name(a->kind), a->reason);
	h->last = *a;
}

/* --- REST snapshot --- */

static void add_tag(struct pgw_snapshot *s, const char *k, const char *v)
{
	if (s->ntags >= PGW_MAX_TAGS)
		return;
	snprintf(s->tags[s->ntags].key, sizeof(s->tags[0].key), "%s", k);
	snprintf(s->tags[s->ntags].value, sizeof(s->tags[0].value), "%s", v);
	s->ntags++;
}

/*
 * restapi.allowlist_include_members: the members' api_url hosts that are literal
 * addresses, from keys with a lease.  What etcd says is not trusted with more
 * (ARCHITECTURE.md §7): one address per member, never a network, no DNS lookups of
 * names read there (they could block the loop, or point anywhere).
 */
static void publish_member_addrs(const struct ha *h, struct pgw_snapshot *s)
{
	s->nmember_addrs = 0;
	if (!h->cfg->restapi.allowlist_include_members || !h->etcd_ok)
		return;
	for (int i = 0; i < h->cluster.nmembers && s->nmember_addrs < PGW_REST_MEMBER_ADDRS; i++) {
		const struct pgw_member *m = &h->cluster.members[i];
		char host[256];
		int port;

		if (m->lease != 0 && pgw_parse_conn_url(m->api_url, host, sizeof(host), &port) &&
		    !strchr(host, '/') && pgw_cidr_parse(host, &s->member_addrs[s->nmember_addrs]))
			s->nmember_addrs++;
	}
}

/* Add the /cluster, /history and /config bodies from the last etcd read, publish. */
static void publish_cluster_bodies(struct ha *h, struct pgw_snapshot *s)
{
	char *sched = NULL, *cluster = NULL, *history = NULL;

	s->has_lease = h->lease.id != 0;
	s->lease_budget_ms = pgw_lease_write_budget_ms(&h->lease, ha_mono_ms(), SAFETY_MARGIN_MS);
	s->writes_until_ms = h->lease.id ? h->lease.deadline_ms - SAFETY_MARGIN_MS : 0;
	if (!s->has_lease)
		s->lease_budget_ms = 0;
	if (h->etcd_ok) {
		sched = pgw_scheduled_switchover_json(&h->cluster.failover);
		cluster = pgw_cluster_json(&h->cluster, h->cluster.paused, sched);
		history = pgw_history_json(h->cluster.history);
		s->config_json = h->cluster.config;
	}
	s->cluster_json = cluster;
	s->history_json = history;
	publish_member_addrs(h, s);
	pgw_rest_publish(h->rest, s); /* copies the bodies */
	free(sched);
	free(cluster);
	free(history);
	free(s);
}

void ha_publish_snapshot(struct ha *h, bool holds)
{
	const struct pgw_config *c = h->cfg;
	struct pgw_snapshot *s;
	char prio[16];

	if (!h->rest)
		return;
	s = calloc(1, sizeof(*s));
	if (!s)
		return;
	snprintf(s->scope, sizeof(s->scope), "%s", c->scope);
	snprintf(s->name, sizeof(s->name), "%s", c->name);
	snprintf(s->version, sizeof(s->version), "%s", PGW_VERSION);
	s->role = h->pgst.datadir == PGW_DATADIR_EMPTY ? PGW_ROLE_UNINITIALIZED
	          : ha_pg_is_primary(&h->pgst)         ? PGW_ROLE_PRIMARY
	                                               : PGW_ROLE_REPLICA;
	s->holds_leader_key = holds;
	s->standby_leader = holds && ha_standby_leader(h);
	s->cluster_unlocked = h->etcd_ok && !h->cluster.has_leader;
	s->state_str = ha_observed_state(h);
	s->pg = h->pgst;
	s->leader_optime = h->st.leader_optime;
	s->dcs_last_seen = h->dcs_last_seen;
	s->loop_mono_ms = h->loop_mono_ms;
	s->loop_wait = h->dcs.loop_wait;
	s->ttl = h->dcs.ttl;
	s->pending_restart = h->pgst.pending_restart;
	pgw_wdguard_status(h->wd, &s->watchdog);
	s->watchdog_failed = pgw_wdguard_unusable(h->wd);
	pgw_fencer_state(h->fencer, &s->fencing);
	snprintf(s->scheduled_restart, sizeof(s->scheduled_restart), "%s", h->scheduled_restart);
	s->paused = h->etcd_ok && h->cluster.paused;
	s->noloadbalance = c->tags.noloadbalance;
	s->nofailover = c->tags.nofailover;
	s->sync_standby = h->etcd_ok && pgw_sync_standby_of(&h->cluster, c->name);
	s->failover_priority = c->tags.failover_priority;
	add_tag(s, "nofailover", c->tags.nofailover ? "true" : "false");
	add_tag(s, "noloadbalance", c->tags.noloadbalance ? "true" : "false");
	add_tag(s, "clonefrom", c->tags.clonefrom ? "true" : "false");
	add_tag(s, "nosync", c->tags.nosync ? "true" : "false");
	snprintf(prio, sizeof(prio), "%d", c->tags.failover_priority);
	add_tag(s, "failover_priority", prio);
	if (c->tags.replicatefrom)
		add_tag(s, "replicatefrom", c->tags.replicatefrom);
	if (c->tags.nostream)
		add_tag(s, "nostream", "true");
	snprintf(s->last_action, sizeof(s->last_action), "%s", pgw_action_name(h->last.kind));
	snprintf(s->last_reason, sizeof(s->last_reason), "%s", h->last.reason);
	publish_cluster_bodies(h, s);
}

/* systemd: READY=1 after the first cycle, then STATUS= and WATCHDOG=1 every cycle. */
void ha_notify_systemd(struct ha *h, const struct pgw_action *a, bool holds)
{
	const char *role = pgw_pg_role_name(&h->pgst);
	char status[400];

	snprintf(status, sizeof(status), "%s%s, %s: %s",
	         strcmp(role, "master") == 0 ? "primary" : role,
	         holds ? " holding the leader key" : "", a->rule, a->reason);
	if (!h->ready_sent) {
		pgw_sd_ready(status);
		h->ready_sent = true;
	} else {
		pgw_sd_status(status);
	}
	pgw_sd_watchdog();
}

/* WatchdogSec= must leave room for a whole loop (sd_watchdog_enabled's advice: ping at half). */
void ha_check_systemd_watchdog(const struct ha *h)
{
	uint64_t usec = pgw_sd_watchdog_usec();
	uint64_t need = (uint64_t)(h->dcs.loop_wait + 2 * h->dcs.retry_timeout) * 2000000u;

	if (usec > 0 && usec < need)
		pgw_warn("systemd WatchdogSec=%.1fs is shorter than 2 * (loop_wait + 2 * "
		         "retry_timeout) = %llus: a slow but healthy loop may be restarted",
		         (double)usec / 1e6, (unsigned long long)(need / 1000000u));
}
