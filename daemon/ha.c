/*
 * ha.c - the HA loop; see ha.h.
 *
 * Ownership: struct ha owns the etcd client, the PostgreSQL controller, the REST
 * server and the last cluster view; everything is freed in ha_close().  Only this
 * thread talks to etcd and PostgreSQL.
 */
#include "ha.h"

#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "cluster_json.h"
#include "control.h"
#include "dcs.h"
#include "decide.h"
#include "etcd.h"
#include "lease.h"
#include "fencer.h"
#include "sdnotify.h"
#include "requests.h"
#include "step.h"
#include "wdguard.h"
#include "log.h"
#include "pg.h"
#include "rest.h"

#define SAFETY_MARGIN_MS      ((int64_t)h->cfg->watchdog.safety_margin * 1000) /* S */
#define PG_OBSERVE_TIMEOUT_MS 2000
#define PG_START_TIMEOUT_MS   120000
#define PG_STOP_TIMEOUT_MS    120000
#define PG_PROMOTE_TIMEOUT_MS 30000
#define PG_CLONE_TIMEOUT_MS   (6 * 3600 * 1000)

struct ha {
	const struct pgw_config *cfg;    /* the running one: main's, or cfg_reloaded */
	struct pgw_config *cfg_reloaded; /* owned: the last file read by a reload */
	volatile sig_atomic_t *reload;   /* SIGHUP */
	volatile sig_atomic_t *stop;
	struct pgw_etcd *etcd;
	struct pgw_pg *pg;
	struct pgw_rest *rest;
	struct pgw_control *control; /* the REST API's write requests */
	struct pgw_wdguard *wd;      /* the hardware watchdog (main's, opened before the privilege
	                                drop) */
	struct pgw_fencer *fencer;   /* STONITH of a lost leader, audited */
	struct pgw_node_state st;    /* everything the decisions remember (step.c) */

	char prefix[512];
	char leader_key[600];
	char member_key[600];
	char init_key[600];
	char status_key[600];
	char history_key[600];
	char config_key[600];
	char failover_key[600];
	char record_key[600];     /* pgwarden/leader: who led, with which lease and BMC */
	char fence_lock_key[600]; /* pgwarden/fence-lock: one fencer at a time */
	char fenced_prefix[600];  /* pgwarden/fenced/<member>: fenced members, for unfence */

	struct pgw_lease lease;
	struct pgw_dcs dcs; /* effective dynamic settings: bootstrap.dcs, then the config key */
	char *dcs_seen;     /* the config key text last applied (or refused) */
	bool etcd_ok;
	double dcs_last_seen;
	struct pgw_cluster cluster;
	struct pgw_pg_state pgst;

	char scheduled_restart[64]; /* the pending scheduled restart's time, "" none */
	bool ready_sent;            /* systemd was told READY=1 */

	struct pgw_action last;
	const char *member_state; /* overrides the observed state while an action runs */
	int64_t loop_mono_ms;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool pg_is_primary(const struct pgw_pg_state *st)
{
	return st->running && st->accepting && !st->in_recovery;
}

/* Timeout for one etcd call: retry_timeout, never past D - S while writing. */
static int op_timeout(const struct ha *h)
{
	return pgw_lease_op_timeout_ms(&h->lease, mono_ms(), SAFETY_MARGIN_MS, h->dcs.retry_timeout,
	                               h->st.was_primary);
}

/*
 * How long a fence (or unfence) may block the loop: until D - S, less 1 s to renew.
 * Past that, the lease and with it the fence lock could lapse mid-fence.
 */
static int64_t fence_budget_ms(const struct ha *h)
{
	return pgw_lease_write_budget_ms(&h->lease, mono_ms(), SAFETY_MARGIN_MS) - 1000;
}

/* --- lease --- */

static void renew_lease(struct ha *h)
{
	int64_t t_send = mono_ms();
	int ttl = 0, rc;

	if (h->lease.id != 0 && t_send >= h->lease.deadline_ms) {
		/* Rule 7: past D the lease is lapsed for us, whatever etcd still thinks. */
		pgw_warn("lease %" PRIx64 " passed its deadline without renewal: dropping it",
		         h->lease.id);
		pgw_lease_lost(&h->lease);
	}
	if (h->lease.id != 0) {
		rc = pgw_etcd_lease_keepalive(h->etcd, h->lease.id, op_timeout(h), &ttl);
		if (rc != 0) {
			pgw_warn("lease keepalive failed: %s", pgw_etcd_errmsg(h->etcd));
			return;
		}
		if (ttl <= 0) {
			pgw_warn("lease %" PRIx64 " is gone in etcd: a new one will be granted",
			         h->lease.id);
			pgw_lease_lost(&h->lease);
			return;
		}
		pgw_lease_renewed(&h->lease, h->lease.id, t_send, ttl);
		pgw_wdguard_renewed(h->wd, t_send, mono_ms(), SAFETY_MARGIN_MS);
		return;
	}
	{
		int64_t id = 0;

		rc = pgw_etcd_lease_grant(h->etcd, h->dcs.ttl, op_timeout(h), &id, &ttl);
		if (rc != 0 || id == 0 || ttl <= 0) {
			pgw_warn("lease grant failed: %s", pgw_etcd_errmsg(h->etcd));
			return;
		}
		pgw_lease_renewed(&h->lease, id, t_send, ttl);
		pgw_wdguard_renewed(h->wd, t_send, mono_ms(), SAFETY_MARGIN_MS);
		pgw_info("granted lease %" PRIx64 " with ttl %d s", id, ttl);
	}
}

/* --- observation --- */

static void observe_pg(struct ha *h)
{
	pgw_pg_observe(h->pg, PG_OBSERVE_TIMEOUT_MS, &h->pgst);
	pgw_step_pg_observed(&h->st, &h->pgst);
}

static const char *observed_state(const struct ha *h)
{
	if (h->member_state)
		return h->member_state;
	if (h->pgst.running)
		return h->pgst.accepting ? "running" : "starting";
	return "stopped";
}

static const char *observed_role(const struct ha *h)
{
	if (h->pgst.datadir == PGW_DATADIR_EMPTY)
		return "uninitialized";
	if (h->pgst.running && h->pgst.accepting)
		return h->pgst.in_recovery ? "replica" : "master";
	if (h->pgst.cd_valid)
		return h->pgst.cd.state == PGW_CS_SHUT_DOWN ||
		               h->pgst.cd.state == PGW_CS_IN_PRODUCTION
		           ? "master"
		           : "replica";
	return "replica";
}

static int64_t wal_position(const struct pgw_pg_state *st)
{
	if (!st->running || !st->accepting)
		return -1;
	if (!st->in_recovery)
		return (int64_t)st->wal_lsn;
	return (int64_t)(st->received_lsn > st->replayed_lsn ? st->received_lsn : st->replayed_lsn);
}

static void publish_member(struct ha *h)
{
	const struct pgw_config *c = h->cfg;
	struct pgw_member_info mi = {0};
	struct pgw_wd_status wd;
	struct pgw_fence_state fs;
	char *conn_host = NULL, *api_host = NULL, *json;
	int conn_port = 0, api_port = 0;

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
	mi.state = observed_state(h);
	mi.role = observed_role(h);
	mi.version = PGW_VERSION;
	mi.xlog_location = wal_position(&h->pgst);
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
	json = pgw_member_json(&mi);
	if (json && pgw_etcd_put(h->etcd, h->member_key, json, strlen(json), h->lease.id,
	                         op_timeout(h)) != 0)
		pgw_warn("cannot publish %s: %s", h->member_key, pgw_etcd_errmsg(h->etcd));
	free(json);
	free(conn_host);
	free(api_host);
}

static void read_cluster(struct ha *h)
{
	struct pgw_etcd_range r = {0};

	h->etcd_ok = false;
	if (pgw_etcd_range_prefix(h->etcd, h->prefix, op_timeout(h), &r) != 0) {
		pgw_warn("cannot read the cluster from etcd: %s", pgw_etcd_errmsg(h->etcd));
		pgw_etcd_range_free(&r);
		return;
	}
	pgw_cluster_parse(&r, h->prefix, &h->cluster);
	pgw_etcd_range_free(&r);
	if (h->cluster.warnings[0])
		pgw_warn("etcd: %s", h->cluster.warnings);
	h->etcd_ok = true;
	h->dcs_last_seen = wall_now();
}

static int configure_replica(struct ha *h, const struct pgw_action *a);

/* Rewrite postgresql.conf for the current role with the new parameters, reload. */
static void refresh_pg_config(struct ha *h)
{
	const struct pgw_member *l = pgw_cluster_leader_member(&h->cluster);
	struct pgw_action a;
	int rc;

	if (!h->pgst.running || !h->pgst.accepting)
		return; /* written before the next start anyway */
	memset(&a, 0, sizeof(a));
	if (h->pgst.in_recovery) {
		if (l && strcmp(l->name, h->cfg->name) != 0) {
			snprintf(a.target_host, sizeof(a.target_host), "%s", l->conn_host);
			a.target_port = l->conn_port;
		}
		rc = configure_replica(h, &a);
	} else {
		rc = pgw_pg_write_config(h->pg, &h->dcs.pg_parameters, NULL, 0, NULL);
	}
	if (rc == 0 && pgw_pg_reload(h->pg) == 0)
		pgw_info("dynamic configuration: PostgreSQL parameters applied with a reload");
}

/* The config key changed: take its settings at this cycle (S5: a bad one changes nothing). */
static void apply_dynamic_config(struct ha *h)
{
	struct pgw_dcs next;
	char err[256];
	bool params;

	if (!h->etcd_ok || !h->cluster.config ||
	    (h->dcs_seen && strcmp(h->dcs_seen, h->cluster.config) == 0))
		return;
	free(h->dcs_seen);
	h->dcs_seen = strdup(h->cluster.config);
	if (!pgw_dcs_from_json(h->cluster.config, &h->dcs, h->cfg->watchdog.safety_margin, &next,
	                       err, sizeof(err))) {
		pgw_warn("ignoring the dynamic configuration, keeping the current one: %s", err);
		return;
	}
	if (next.ttl != h->dcs.ttl || next.loop_wait != h->dcs.loop_wait ||
	    next.retry_timeout != h->dcs.retry_timeout)
		pgw_info("dynamic configuration: ttl %d, loop_wait %d, retry_timeout %d "
		         "(a new ttl applies from the next lease)",
		         next.ttl, next.loop_wait, next.retry_timeout);
	params = pgw_dcs_params_differ(&h->dcs, &next);
	pgw_dcs_free(&h->dcs);
	h->dcs = next;
	if (params)
		refresh_pg_config(h);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_auth(const struct pgw_auth *a, const struct pgw_auth *b)
{
	return same_str(a->username, b->username) && same_str(a->password, b->password);
}

/* The first setting whose change needs a restart of pgwarden, or NULL. */
static const char *restart_needed(const struct pgw_config *a, const struct pgw_config *b)
{
	const struct {
		const char *key, *x, *y;
	} keys[] = {
	    {"name", a->name, b->name},
	    {"scope", a->scope, b->scope},
	    {"namespace", a->namespace, b->namespace},
	    {"user", a->user, b->user},
	    {"restapi.listen", a->restapi.listen, b->restapi.listen},
	    {"restapi.connect_address", a->restapi.connect_address, b->restapi.connect_address},
	    {"postgresql.listen", a->postgresql.listen, b->postgresql.listen},
	    {"postgresql.connect_address", a->postgresql.connect_address,
	     b->postgresql.connect_address},
	    {"postgresql.data_dir", a->postgresql.data_dir, b->postgresql.data_dir},
	    {"postgresql.bin_dir", a->postgresql.bin_dir, b->postgresql.bin_dir},
	    {"postgresql.pgpass", a->postgresql.pgpass, b->postgresql.pgpass},
	    {"etcd3.protocol", a->etcd3.protocol, b->etcd3.protocol},
	    {"etcd3.username", a->etcd3.username, b->etcd3.username},
	    {"etcd3.password", a->etcd3.password, b->etcd3.password},
	    {"etcd3.cacert", a->etcd3.cacert, b->etcd3.cacert},
	    {"etcd3.cert", a->etcd3.cert, b->etcd3.cert},
	    {"etcd3.key", a->etcd3.key, b->etcd3.key},
	    {"restapi.certfile", a->restapi.tls.certfile, b->restapi.tls.certfile},
	    {"restapi.keyfile", a->restapi.tls.keyfile, b->restapi.tls.keyfile},
	    {"restapi.keyfile_password", a->restapi.tls.keyfile_password,
	     b->restapi.tls.keyfile_password},
	    {"restapi.cafile", a->restapi.tls.cafile, b->restapi.tls.cafile},
	    {"watchdog.device", a->watchdog.device, b->watchdog.device},
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!same_str(keys[i].x, keys[i].y))
			return keys[i].key;
	if (a->etcd3.hosts.n != b->etcd3.hosts.n)
		return "etcd3.hosts";
	for (size_t i = 0; i < a->etcd3.hosts.n; i++)
		if (!same_str(a->etcd3.hosts.items[i], b->etcd3.hosts.items[i]))
			return "etcd3.hosts";
	if (!same_auth(&a->restapi.auth, &b->restapi.auth))
		return "restapi.authentication";
	if (a->restapi.tls.verify_client != b->restapi.tls.verify_client)
		return "restapi.verify_client";
	if (a->watchdog.mode != b->watchdog.mode)
		return "watchdog.mode";
	if (a->watchdog.safety_margin != b->watchdog.safety_margin)
		return "watchdog.safety_margin";
	if (!same_auth(&a->postgresql.superuser, &b->postgresql.superuser) ||
	    !same_auth(&a->postgresql.replication, &b->postgresql.replication) ||
	    !same_auth(&a->postgresql.rewind, &b->postgresql.rewind))
		return "postgresql.authentication";
	return NULL;
}

/*
 * SIGHUP or POST /reload: re-read the configuration file.  A file with an error, or
 * one that changes what only a restart can change, is refused and the running
 * settings stay; otherwise tags, local PostgreSQL parameters and pg_hba take
 * effect now (PostgreSQL reloads).  Returns an HTTP status, msg says why.
 */
static int reload_config(struct ha *h, char *msg, size_t len)
{
	char err[1024];
	struct pgw_config *next = pgw_config_load(h->cfg->path, err, sizeof(err));
	const char *key;

	if (!next) {
		pgw_error("reload refused, keeping the running configuration: %s", err);
		return snprintf(msg, len, "reload refused: %.*s", (int)(len > 20 ? len - 20 : 0),
		                err),
		       400;
	}
	key = restart_needed(h->cfg, next);
	if (key) {
		pgw_error("reload refused, keeping the running configuration: %s: %s changed, "
		          "which needs a restart of pgwarden",
		          next->path, key);
		snprintf(msg, len, "reload refused: %s changed, which needs a restart of pgwarden",
		         key);
		pgw_config_free(next);
		return 409;
	}
	for (size_t i = 0; i < next->warnings.n; i++)
		pgw_warn("%s", next->warnings.items[i]);
	h->cfg = next;
	pgw_pg_set_config(h->pg, next);
	pgw_config_free(h->cfg_reloaded); /* only this thread used it */
	h->cfg_reloaded = next;
	refresh_pg_config(h);
	pgw_info("reloaded %s", next->path);
	return snprintf(msg, len, "reloaded %s", next->path), 200;
}

/* POST /restart: stop and start PostgreSQL in its current role. */
/* Carry out a restart the request table (core/requests.c) allowed. */
static int do_restart(struct ha *h, const struct pgw_rq_verdict *v, char *msg, size_t len)
{
	int64_t budget;
	struct pgw_action a;

	pgw_info("REST: restarting PostgreSQL [%s]", v->rule);
	pgw_pg_stop(h->pg, "fast", PG_STOP_TIMEOUT_MS);
	if (v->as_primary) {
		/* the loop is blocked meanwhile: never let the start run past D - S */
		budget = pgw_lease_write_budget_ms(&h->lease, mono_ms(), SAFETY_MARGIN_MS) - 1000;
		if (budget <= 0)
			return snprintf(msg, len,
			                "stopped; the lease is too close to its deadline "
			                "to start as primary"),
			       503;
		if (pgw_pg_write_config(h->pg, &h->dcs.pg_parameters, NULL, 0, NULL) != 0 ||
		    pgw_pg_start(h->pg, budget < PG_START_TIMEOUT_MS ? (int)budget
		                                                     : PG_START_TIMEOUT_MS) != 0)
			return snprintf(msg, len, "restart failed: %s", "see the log"), 503;
	} else {
		memset(&a, 0, sizeof(a));
		snprintf(a.target_host, sizeof(a.target_host), "%s", v->target_host);
		a.target_port = v->target_port;
		if (configure_replica(h, &a) != 0 || pgw_pg_start(h->pg, PG_START_TIMEOUT_MS) != 0)
			return snprintf(msg, len, "restart failed: %s", "see the log"), 503;
	}
	return snprintf(msg, len, "restarted successfully"), 200;
}

static void act_clone(struct ha *h, const struct pgw_action *a);

/* POST /reinitialize, allowed: throw the data away and clone the leader again. */
static int do_reinit(struct ha *h, const struct pgw_rq_verdict *v, char *msg, size_t len)
{
	struct pgw_action a;

	memset(&a, 0, sizeof(a));
	snprintf(a.target, sizeof(a.target), "%s", v->target);
	snprintf(a.target_host, sizeof(a.target_host), "%s", v->target_host);
	a.target_port = v->target_port;
	pgw_info("REST: reinitializing from %s", v->target);
	pgw_pg_stop(h->pg, "immediate", PG_STOP_TIMEOUT_MS);
	act_clone(h, &a);
	observe_pg(h);
	if (!h->pgst.running)
		return snprintf(msg, len, "reinitialize failed: see the log"), 503;
	return snprintf(msg, len, "reinitialized from %s", v->target), 200;
}

/* POST /unfence: power a member recorded under pgwarden/fenced/ back on. */
static int do_unfence(struct ha *h, const char *member, char *msg, size_t len)
{
	struct pgw_leader_record lr;
	struct pgw_etcd_range r = {0};
	char key[700];
	bool found, ok = false;
	int status;

	snprintf(key, sizeof(key), "%s%s", h->fenced_prefix, member);
	if (pgw_etcd_get(h->etcd, key, op_timeout(h), &r) != 0)
		return snprintf(msg, len, "etcd: %s", pgw_etcd_errmsg(h->etcd)), 503;
	found = r.n == 1 && pgw_leader_record_parse(r.kvs[0].value, &lr) &&
	        strcmp(lr.member, member) == 0;
	if (found)
		lr.mod_revision = r.kvs[0].mod_revision;
	pgw_etcd_range_free(&r);
	if (!found)
		return snprintf(msg, len, "%.64s is not recorded as fenced (no %.120s)", member,
		                key),
		       412;
	status = pgw_fencer_unfence(h->fencer, &lr, fence_budget_ms(h), msg, len);
	if (status == 200 &&
	    pgw_etcd_delete_if_mod(h->etcd, key, lr.mod_revision, op_timeout(h), &ok) != 0)
		pgw_warn("cannot delete %s: %s", key, pgw_etcd_errmsg(h->etcd));
	return status;
}

/* A request from the REST API that only this loop may carry out. */
static void build_obs(struct ha *h, struct pgw_obs *o, bool shutdown);

/* Ask the request table (core/requests.c); carry it out when it says so. */
static int serve(struct ha *h, const struct pgw_request *req, bool healthy, char *msg, size_t len)
{
	struct pgw_rq rq = {
	    .pending_only = req->restart_pending_only, .role = req->role, .member = req->member};
	struct pgw_rq_verdict v;
	struct pgw_obs o;

	if (req->kind == PGW_REQ_RELOAD)
		return reload_config(h, msg, len);
	if (req->kind != PGW_REQ_RESTART && req->kind != PGW_REQ_REINIT &&
	    req->kind != PGW_REQ_UNFENCE)
		return snprintf(msg, len, "unknown request"), 400;
	rq.kind = req->kind == PGW_REQ_RESTART  ? PGW_RQ_RESTART
	          : req->kind == PGW_REQ_REINIT ? PGW_RQ_REINIT
	                                        : PGW_RQ_UNFENCE;
	build_obs(h, &o, false);
	pgw_request_verdict(&o, healthy, &rq, &v);
	if (!v.go) {
		pgw_info("request refused [%s]: %s", v.rule, v.reason);
		return snprintf(msg, len, "%s", v.reason), v.status;
	}
	if (rq.kind == PGW_RQ_RESTART)
		return do_restart(h, &v, msg, len);
	if (rq.kind == PGW_RQ_REINIT)
		return do_reinit(h, &v, msg, len);
	return do_unfence(h, req->member, msg, len);
}

/* A request from the REST API that only this loop may carry out.  healthy: this node
 * holds the key and its decision was leader-healthy (nothing else due). */
static void serve_request(struct ha *h, bool healthy)
{
	struct pgw_request req;
	char msg[256];
	int status;

	if (!h->control)
		return;
	if (pgw_control_take_due(h->control, wall_now(), &req, h->scheduled_restart,
	                         sizeof(h->scheduled_restart))) {
		pgw_info("scheduled restart (%s) is due", req.at_text);
		status = serve(h, &req, healthy, msg, sizeof(msg));
		if (status == 200)
			pgw_info("scheduled restart: %s", msg);
		else
			pgw_warn("scheduled restart not done: %s", msg);
		observe_pg(h);
		return;
	}
	if (!pgw_control_take(h->control, &req))
		return;
	status = serve(h, &req, healthy, msg, sizeof(msg));
	pgw_control_finish(h->control, status, msg);
	observe_pg(h);
}

static void build_obs(struct ha *h, struct pgw_obs *o, bool shutdown)
{
	const struct pgw_config *c = h->cfg;
	struct pgw_member *s = &o->self_member;

	memset(o, 0, sizeof(*o));
	o->now_ms = mono_ms();
	o->wall_now = wall_now();
	o->self = c->name;
	o->shutdown_requested = shutdown;
	o->lease = h->lease;
	o->margin_ms = SAFETY_MARGIN_MS;
	o->watchdog_unusable = pgw_wdguard_unusable(h->wd);
	o->fencing_required = h->cfg->fencing.mode == PGW_FENCE_REQUIRED;
	o->fast_takeover_after_ms = (int64_t)h->cfg->fencing.fast_takeover_after * 1000;
	o->unprotected_failover = h->cfg->failover_unprotected;
	o->loop_wait_s = h->dcs.loop_wait;
	s->watchdog_blocked = o->watchdog_unusable;
	o->etcd_ok = h->etcd_ok;
	o->cluster = &h->cluster;
	o->pg = &h->pgst;
	o->cd_valid = h->pgst.cd_valid;
	o->cd = h->pgst.cd;
	snprintf(s->name, sizeof(s->name), "%s", c->name);
	snprintf(s->role, sizeof(s->role), "%s", observed_role(h));
	snprintf(s->state, sizeof(s->state), "%s", observed_state(h));
	s->xlog_location = wal_position(&h->pgst);
	s->timeline = h->pgst.timeline;
	s->nofailover = c->tags.nofailover;
	s->failover_priority = c->tags.failover_priority;
	o->max_lag = h->dcs.maximum_lag_on_failover;
	o->nofailover = c->tags.nofailover;
	o->use_pg_rewind = h->dcs.use_pg_rewind;
	o->primary_start_timeout_s = h->dcs.primary_start_timeout;
}

/* --- actions --- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT) {
		pgw_error("cannot remove %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void remove_datadir(struct ha *h)
{
	const char *d = h->cfg->postgresql.data_dir;

	if (nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
		pgw_error("cannot remove data directory %s: %s", d, strerror(errno));
}

static void timestamp_iso(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}

static void slot_for_self(const struct ha *h, char *slot, size_t len)
{
	if (h->dcs.use_slots)
		pgw_pg_slot_name(h->cfg->name, slot, len);
	else
		slot[0] = '\0';
}

static int configure_replica(struct ha *h, const struct pgw_action *a)
{
	char slot[64];

	slot_for_self(h, slot, sizeof(slot));
	return pgw_pg_write_config(h->pg, &h->dcs.pg_parameters,
	                           a->target_host[0] ? a->target_host : "", a->target_port,
	                           slot[0] ? slot : NULL);
}

static void start_replica(struct ha *h, const struct pgw_action *a)
{
	if (configure_replica(h, a) == 0)
		pgw_pg_start(h->pg, PG_START_TIMEOUT_MS);
}

/* The record of this node as leader (pgwarden/leader), released or not. */
static char *own_leader_record(const struct ha *h, bool released)
{
	const struct pgw_config *c = h->cfg;
	struct pgw_leader_record lr = {0};
	struct pgw_wd_status wd;

	snprintf(lr.member, sizeof(lr.member), "%s", c->name);
	lr.lease = h->lease.id;
	lr.released = released;
	pgw_wdguard_status(h->wd, &wd);
	lr.watchdog_armed = wd.armed && wd.timeout > 0;
	lr.watchdog_timeout = wd.timeout;
	if (c->fencing.bmc.address) {
		snprintf(lr.bmc_address, sizeof(lr.bmc_address), "%s", c->fencing.bmc.address);
		lr.bmc_lanplus = c->fencing.bmc.lanplus;
		lr.bmc_cipher_suite = c->fencing.bmc.cipher_suite;
		snprintf(lr.bmc_privilege, sizeof(lr.bmc_privilege), "%s",
		         pgw_ipmi_priv_name(c->fencing.bmc.privilege));
	}
	return pgw_leader_record_json(&lr);
}

/*
 * Take the leader key (create-if-absent, rule 7) and, in the same transaction,
 * record who took it with which lease and BMC: if this node is lost unplanned,
 * the others know whom to fence.  *won says whether it was taken.
 */
static int take_key(struct ha *h, bool *won)
{
	char *rec = own_leader_record(h, false);
	int rc;

	*won = false;
	if (!rec)
		return -1;
	rc = pgw_etcd_create_and_put(h->etcd, h->leader_key, h->cfg->name, strlen(h->cfg->name),
	                             h->lease.id, h->record_key, rec, op_timeout(h), won);
	free(rec);
	return rc;
}

/* Give the key up cleanly: deleted, and the record says released (no fence needed). */
static void give_up_key(struct ha *h)
{
	char *rec = own_leader_record(h, true);
	bool ok = false;

	if (!rec || pgw_etcd_delete_if_value_and_put(h->etcd, h->leader_key, h->cfg->name,
	                                             h->record_key, rec, op_timeout(h), &ok) != 0)
		pgw_warn("cannot delete the leader key: %s",
		         rec ? pgw_etcd_errmsg(h->etcd) : "out of memory");
	else if (ok)
		pgw_info("released the leader key");
	free(rec);
}

static void sync_slots(struct ha *h)
{
	const char *names[PGW_MAX_MEMBERS];
	int n = 0;

	if (!h->dcs.use_slots)
		return;
	for (int i = 0; i < h->cluster.nmembers; i++)
		if (strcmp(h->cluster.members[i].name, h->cfg->name) != 0)
			names[n++] = h->cluster.members[i].name;
	pgw_pg_sync_slots(h->pg, names, n, PG_OBSERVE_TIMEOUT_MS);
}

static void publish_status(struct ha *h, uint64_t optime)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "{\"optime\":%" PRIu64 "}", optime);
	if (pgw_etcd_put(h->etcd, h->status_key, buf, strlen(buf), 0, op_timeout(h)) != 0)
		pgw_warn("cannot write %s: %s", h->status_key, pgw_etcd_errmsg(h->etcd));
}

static void record_history(struct ha *h, int new_tl)
{
	uint64_t lsn = 0;
	char reason[128] = "no recovery target specified", ts[40], *hist;

	if (new_tl <= 1)
		return;
	if (pgw_pg_timeline_switch(h->pg, new_tl, &lsn, reason, sizeof(reason)) != 0)
		pgw_warn("cannot read the history file of timeline %d", new_tl);
	timestamp_iso(ts, sizeof(ts));
	hist = pgw_history_append(h->cluster.history, new_tl - 1, lsn, reason, ts, h->cfg->name);
	if (hist &&
	    pgw_etcd_put(h->etcd, h->history_key, hist, strlen(hist), 0, op_timeout(h)) != 0)
		pgw_warn("cannot write %s: %s", h->history_key, pgw_etcd_errmsg(h->etcd));
	free(hist);
}

/* Remove the failover key we read (only that version of it). */
static void clear_failover(struct ha *h)
{
	bool ok = false;

	if (!h->cluster.failover.present)
		return;
	if (pgw_etcd_delete_if_mod(h->etcd, h->failover_key, h->cluster.failover.mod_revision,
	                           op_timeout(h), &ok) != 0)
		pgw_warn("cannot remove %s: %s", h->failover_key, pgw_etcd_errmsg(h->etcd));
	else if (ok)
		pgw_info("removed the switchover request");
}

static void promote(struct ha *h)
{
	struct pgw_pg_state st;
	char fenced[PGW_NAME_MAX];
	int64_t fenced_lease;

	if (pgw_pg_promote(h->pg, PG_PROMOTE_TIMEOUT_MS) != 0) {
		pgw_error("promotion failed; will retry while holding the leader key");
		return;
	}
	pgw_pg_observe(h->pg, PG_OBSERVE_TIMEOUT_MS, &st);
	pgw_info("promoted: now primary on timeline %d", st.timeline);
	renew_lease(h); /* the promotion's checkpoint may have been long: renew (and pet) now */
	pgw_step_promoted(&h->st, fenced, sizeof(fenced), &fenced_lease);
	if (fenced[0]) /* S4: the promotion that follows a fence is audited too */
		pgw_fencer_promoted(h->fencer, fenced, fenced_lease, st.timeline);
	record_history(h, st.timeline);
	publish_status(h, st.wal_lsn);
	sync_slots(h);
	clear_failover(h); /* a switchover or failover that brought us here is done */
}

static bool arm_watchdog(struct ha *h);

/* Renew now (petting the watchdog, rule 3); true while writes are still allowed. */
static bool renewed(struct ha *h)
{
	renew_lease(h);
	if (pgw_lease_allows_writes(&h->lease, mono_ms(), SAFETY_MARGIN_MS))
		return true;
	pgw_error("the lease could not be renewed: not going on as primary");
	return false;
}

/*
 * initdb may outlast the watchdog's W and writes nothing a client could see, so a
 * bootstrap arms the watchdog only after it, right after a fresh renewal, before
 * PostgreSQL starts as primary.
 */
static bool arm_for_primary(struct ha *h)
{
	return renewed(h) && arm_watchdog(h);
}

static void act_bootstrap(struct ha *h)
{
	bool won = false;
	char *cfgjson, *rec, sysid[32];
	struct pgw_pg_state st;

	if (take_key(h, &won) != 0 || !won)
		return;
	if (pgw_etcd_create(h->etcd, h->init_key, "", 0, 0, op_timeout(h), &won) != 0 || !won) {
		pgw_info("another member started the bootstrap first");
		give_up_key(h);
		return;
	}
	h->member_state = "initializing new cluster";
	publish_member(h);
	if (pgw_pg_initdb(h->pg, PG_START_TIMEOUT_MS) != 0 || !arm_for_primary(h) ||
	    pgw_pg_start(h->pg, PG_START_TIMEOUT_MS) != 0 || !renewed(h) ||
	    pgw_pg_bootstrap_roles(h->pg, PG_START_TIMEOUT_MS) != 0) {
		pgw_error("bootstrap failed: removing the half-made data directory and the "
		          "initialize key so that a member can try again");
		pgw_pg_stop(h->pg, "immediate", PG_STOP_TIMEOUT_MS);
		remove_datadir(h);
		pgw_etcd_delete_if_value(h->etcd, h->init_key, "", op_timeout(h), &won);
		give_up_key(h);
		h->member_state = NULL;
		return;
	}
	h->member_state = NULL;
	/* the record written with the key predates the watchdog (armed after initdb) */
	rec = own_leader_record(h, false);
	if (!rec || pgw_etcd_put(h->etcd, h->record_key, rec, strlen(rec), 0, op_timeout(h)) != 0)
		pgw_warn("cannot update %s: %s", h->record_key,
		         rec ? pgw_etcd_errmsg(h->etcd) : "out of memory");
	free(rec);
	pgw_pg_observe(h->pg, PG_OBSERVE_TIMEOUT_MS, &st);
	snprintf(sysid, sizeof(sysid), "%" PRIu64, st.system_identifier);
	if (pgw_etcd_put(h->etcd, h->init_key, sysid, strlen(sysid), 0, op_timeout(h)) != 0)
		pgw_error("cannot record the system identifier in %s: %s", h->init_key,
		          pgw_etcd_errmsg(h->etcd));
	cfgjson = pgw_dcs_to_json(&h->cfg->dcs);
	if (cfgjson)
		pgw_etcd_create(h->etcd, h->config_key, cfgjson, strlen(cfgjson), 0, op_timeout(h),
		                &won);
	free(cfgjson);
	pgw_step_pg_writable(&h->st);
	publish_status(h, st.wal_lsn);
	pgw_info("bootstrapped cluster %s with system identifier %s", h->cfg->scope, sysid);
}

static void act_clone(struct ha *h, const struct pgw_action *a)
{
	h->member_state = "creating replica";
	publish_member(h);
	if (pgw_pg_basebackup(h->pg, a->target_host, a->target_port, PG_CLONE_TIMEOUT_MS) == 0) {
		pgw_step_cloned(&h->st);
		start_replica(h, a);
	}
	h->member_state = NULL;
}

static void act_rewind(struct ha *h, const struct pgw_action *a)
{
	if (h->pgst.running)
		pgw_pg_stop(h->pg, "fast", PG_STOP_TIMEOUT_MS);
	if (pgw_pg_rewind(h->pg, a->target_host, a->target_port, PG_CLONE_TIMEOUT_MS) != 0) {
		pgw_error("pg_rewind from %s failed: the data directory will be re-cloned",
		          a->target);
		pgw_step_rewind_failed(&h->st, a->target);
		return;
	}
	pgw_info("rewound from %s", a->target);
	start_replica(h, a);
}

static void act_follow(struct ha *h, const struct pgw_action *a)
{
	if (configure_replica(h, a) == 0)
		pgw_pg_reload(h->pg);
}

/* --- fast takeover (rule 8): is the leader silent on both PostgreSQL and REST? --- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

/* Any HTTP answer from the leader's REST API within 1 s counts as alive. */
static bool rest_answers(const char *api_url)
{
	CURL *curl = curl_easy_init();
	char url[512];
	const char *end = strstr(api_url, "://");
	bool ok;

	if (!curl || !end) {
		curl_easy_cleanup(curl);
		return true; /* cannot tell: assume it answers */
	}
	end = strchr(end + 3, '/');
	snprintf(url, sizeof(url), "%.*s/liveness",
	         (int)(end ? (size_t)(end - api_url) : strlen(api_url)), api_url);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 1000L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L); /* liveness only, no data */
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	ok = curl_easy_perform(curl) == CURLE_OK;
	curl_easy_cleanup(curl);
	return ok;
}

static bool pg_answers(const char *host, int port)
{
	char portstr[16];
	const char *const keys[] = {"host", "port", "connect_timeout", "dbname", NULL};
	const char *const vals[] = {host, portstr, "1", "postgres", NULL};

	snprintf(portstr, sizeof(portstr), "%d", port);
	return PQpingParams(keys, vals, 0) != PQPING_NO_RESPONSE;
}

/* Fast takeover is on and this replica follows another node's leadership. */
static bool watching_leader(const struct ha *h)
{
	return pgw_step_watching(&h->st,
	                         h->cfg->fencing.mode == PGW_FENCE_REQUIRED &&
	                             h->cfg->fencing.fast_takeover_after > 0,
	                         h->etcd_ok, &h->cluster, h->cfg->name);
}

/* Probed while the loop waits (wait_next); a silence belongs to one leader and lease. */
static void probe_leader(struct ha *h)
{
	const struct pgw_member *l = pgw_cluster_leader_member(&h->cluster);
	bool silent;

	if (!watching_leader(h)) {
		pgw_step_probe(&h->st, false, "", 0, false, 0);
		return;
	}
	silent = !pg_answers(l->conn_host, l->conn_port) && !rest_answers(l->api_url);
	pgw_step_probe(&h->st, true, l->name, h->cluster.leader_lease, silent, mono_ms());
	if (silent)
		pgw_warn("leader %s answers neither on PostgreSQL nor on REST (for %lld ms)",
		         l->name, (long long)pgw_step_silence_ms(&h->st, &h->cluster, mono_ms()));
}

/* Fence the lost leader the leader record names (the decision checked it must be). */
static void act_fence(struct ha *h)
{
	const struct pgw_leader_record *lr = &h->cluster.last_leader;
	struct pgw_fence_keys k = {.record_key = h->record_key,
	                           .lock_key = h->fence_lock_key,
	                           .fenced_prefix = h->fenced_prefix,
	                           .lease = h->lease.id,
	                           .timeout_ms = op_timeout(h),
	                           .timeline = h->pgst.timeline,
	                           .budget_ms = fence_budget_ms(h)};

	if (h->lease.id == 0)
		return;
	h->member_state = "fencing";
	publish_member(h);
	if (pgw_fencer_fence(h->fencer, h->etcd, &k, lr)) {
		pgw_step_fenced(&h->st, lr->member, lr->lease);
		/* fast takeover: its key is still there; it is powered off, so end its lease */
		if (h->cluster.has_leader && strcmp(h->cluster.leader, lr->member) == 0) {
			if (pgw_etcd_lease_revoke(h->etcd, h->cluster.leader_lease,
			                          op_timeout(h)) != 0)
				pgw_warn("cannot revoke the fenced leader's lease (it expires by "
				         "itself): %s",
				         pgw_etcd_errmsg(h->etcd));
			else
				pgw_info("revoked the lease of fenced leader %s", lr->member);
		}
	}
	h->member_state = NULL;
}

static void act_acquire(struct ha *h)
{
	bool won = false;

	if (h->lease.id == 0)
		return;
	if (take_key(h, &won) != 0) {
		pgw_warn("cannot take the leader key: %s", pgw_etcd_errmsg(h->etcd));
		return;
	}
	if (!won) {
		pgw_info("another member took the leader key first");
		return;
	}
	pgw_info("took the leader key: promoting");
	promote(h);
}

static void act_start_primary(struct ha *h)
{
	if (pgw_pg_write_config(h->pg, &h->dcs.pg_parameters, NULL, 0, NULL) != 0)
		return;
	pgw_step_pg_writable(&h->st); /* it may accept writes before the next observation */
	pgw_pg_start(h->pg, 0);       /* no wait: the loop keeps renewing the lease */
}

static void act_demote(struct ha *h, const char *mode)
{
	pgw_pg_stop(h->pg, mode, PG_STOP_TIMEOUT_MS);
	pgw_step_pg_stopped(&h->st);
	/* a key left by an earlier lease of ours would only block the election */
	if (h->etcd_ok && h->cluster.has_leader && strcmp(h->cluster.leader, h->cfg->name) == 0)
		give_up_key(h);
}

/* Stop PostgreSQL cleanly; when holding the key, publish the final position (so
 * candidates can tell they have it all) and release the key. */
static void step_down(struct ha *h, bool held)
{
	struct pgw_controldata cd;

	pgw_pg_stop(h->pg, "fast", PG_STOP_TIMEOUT_MS);
	pgw_step_pg_stopped(&h->st);
	if (!held)
		return;
	if (pgw_pg_controldata(h->pg, &cd) == 0)
		publish_status(h, cd.checkpoint_lsn);
	give_up_key(h);
}

static void act_shutdown(struct ha *h, bool held)
{
	step_down(h, held);
	if (h->lease.id != 0)
		pgw_etcd_lease_revoke(h->etcd, h->lease.id, op_timeout(h));
}

/* holds: this node held the leader key at the observation (pgw_obs_holds_leader). */
static void act(struct ha *h, const struct pgw_action *a, bool holds)
{
	switch (a->kind) {
	case PGW_ACT_NONE:
		break;
	case PGW_ACT_BOOTSTRAP:
		act_bootstrap(h);
		break;
	case PGW_ACT_CLONE:
		act_clone(h, a);
		break;
	case PGW_ACT_START_REPLICA:
		start_replica(h, a);
		break;
	case PGW_ACT_FOLLOW:
		act_follow(h, a);
		break;
	case PGW_ACT_REWIND:
		act_rewind(h, a);
		break;
	case PGW_ACT_ACQUIRE:
		act_acquire(h);
		break;
	case PGW_ACT_PROMOTE:
		promote(h);
		break;
	case PGW_ACT_LEADER_DUTIES:
		sync_slots(h);
		publish_status(h, h->pgst.wal_lsn);
		break;
	case PGW_ACT_START_PRIMARY:
		act_start_primary(h);
		break;
	case PGW_ACT_DEMOTE_NOW:
		act_demote(h, "immediate");
		break;
	case PGW_ACT_DEMOTE:
		act_demote(h, "fast");
		break;
	case PGW_ACT_RELEASE:
		pgw_pg_stop(h->pg, "fast", PG_STOP_TIMEOUT_MS);
		pgw_step_pg_stopped(&h->st);
		give_up_key(h);
		break;
	case PGW_ACT_SHUTDOWN:
		act_shutdown(h, holds);
		break;
	case PGW_ACT_HANDOVER:
		step_down(h, holds);
		break;
	case PGW_ACT_CANCEL_SWITCHOVER:
		clear_failover(h);
		break;
	case PGW_ACT_FENCE:
		act_fence(h);
		break;
	case PGW_ACT_RELEASE_FENCE_LOCK: {
		bool ok = false;

		if (pgw_etcd_delete_if_value(h->etcd, h->fence_lock_key, h->cfg->name,
		                             op_timeout(h), &ok) != 0)
			pgw_warn("cannot delete the fence lock: %s", pgw_etcd_errmsg(h->etcd));
		else if (ok)
			pgw_info("released a fence lock left from an earlier fence");
		break;
	}
	case PGW_ACT_COUNT:
		break;
	}
}

static void log_decision(struct ha *h, const struct pgw_action *a)
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

/* Add the /cluster, /history and /config bodies from the last etcd read, publish. */
static void publish_cluster_bodies(struct ha *h, struct pgw_snapshot *s)
{
	char *sched = NULL, *cluster = NULL, *history = NULL;

	s->has_lease = h->lease.id != 0;
	s->lease_budget_ms = pgw_lease_write_budget_ms(&h->lease, mono_ms(), SAFETY_MARGIN_MS);
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
	pgw_rest_publish(h->rest, s); /* copies the bodies */
	free(sched);
	free(cluster);
	free(history);
	free(s);
}

static void publish_snapshot(struct ha *h, bool holds)
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
	          : pg_is_primary(&h->pgst)            ? PGW_ROLE_PRIMARY
	                                               : PGW_ROLE_REPLICA;
	s->holds_leader_key = holds;
	s->cluster_unlocked = h->etcd_ok && !h->cluster.has_leader;
	s->state_str = observed_state(h);
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
	s->failover_priority = c->tags.failover_priority;
	add_tag(s, "nofailover", c->tags.nofailover ? "true" : "false");
	add_tag(s, "noloadbalance", c->tags.noloadbalance ? "true" : "false");
	add_tag(s, "clonefrom", c->tags.clonefrom ? "true" : "false");
	add_tag(s, "nosync", c->tags.nosync ? "true" : "false");
	snprintf(prio, sizeof(prio), "%d", c->tags.failover_priority);
	add_tag(s, "failover_priority", prio);
	snprintf(s->last_action, sizeof(s->last_action), "%s", pgw_action_name(h->last.kind));
	snprintf(s->last_reason, sizeof(s->last_reason), "%s", h->last.reason);
	publish_cluster_bodies(h, s);
}

/* --- the loop --- */

struct watch_ctx {
	const struct ha *h;
	bool leader;
};

static bool watch_fires(void *arg, const struct pgw_etcd_event *ev)
{
	const struct watch_ctx *w = arg;
	size_t plen = strlen(w->h->prefix);

	if (strcmp(ev->key, w->h->leader_key) == 0)
		return true;
	/* the leader acts on a switchover request at once */
	if (w->leader && strcmp(ev->key, w->h->failover_key) == 0)
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

static void wait_next(struct ha *h, int64_t cycle_start, bool holds)
{
	int64_t until = cycle_start + (int64_t)h->dcs.loop_wait * 1000;
	int64_t now = mono_ms(), wait;
	struct watch_ctx w = {h, holds};
	bool fired = false;

	if (h->st.was_primary && h->lease.id != 0) {
		/* wake up in time to renew (or to demote) before D - S */
		int64_t latest = h->lease.deadline_ms - SAFETY_MARGIN_MS - 500;
		if (latest < until)
			until = latest;
	}
	wait = until - now;
	if (wait <= 0 || wake_up(h))
		return;
	if (h->etcd_ok && watching_leader(h)) {
		/* fast takeover: probe the leader every second while waiting */
		const int64_t threshold = (int64_t)h->cfg->fencing.fast_takeover_after * 1000;

		while ((wait = until - mono_ms()) > 0 && !wake_up(h)) {
			int64_t slice = wait < 1000 ? wait : 1000;
			int64_t silent = pgw_step_silence_ms(&h->st, &h->cluster, mono_ms());
			int64_t left = silent ? threshold - silent : slice;

			/* silent already: look again when the threshold is reached */
			if (left < slice)
				slice = left < 100 ? 100 : left;
			if (pgw_etcd_watch(h->etcd, h->prefix, h->cluster.revision + 1, (int)slice,
			                   watch_fires, &w, &fired) != 0 ||
			    fired)
				return;
			probe_leader(h);
			if (pgw_step_silence_ms(&h->st, &h->cluster, mono_ms()) >= threshold)
				return;
		}
		return;
	}
	if (h->etcd_ok) {
		if (pgw_etcd_watch(h->etcd, h->prefix, h->cluster.revision + 1, (int)wait,
		                   watch_fires, &w, &fired) == 0)
			return;
		pgw_debug("watch failed: %s", pgw_etcd_errmsg(h->etcd));
	}
	/* etcd unreachable: sleep in short steps so a stop signal is seen quickly */
	while (!wake_up(h) && (wait = until - mono_ms()) > 0)
		sleep_ms(wait < 200 ? wait : 200);
}

/* --- the watchdog (rules 3 to 5; the policy is wdguard.c) --- */

/* W for the lease in use (a new lease gets the config's ttl). */
static bool arm_watchdog(struct ha *h)
{
	int ttl = h->lease.id ? h->lease.ttl_s : h->dcs.ttl;

	return pgw_wdguard_arm(h->wd, ttl, h->cfg->watchdog.safety_margin, h->dcs.loop_wait);
}

/* Rule 5: once PostgreSQL no longer accepts writes (looked at again when the action
 * gave up) and the key is not ours, the watchdog is disarmed. */
static void watchdog_after_act(struct ha *h, const struct pgw_action *a, bool held)
{
	if (pgw_action_gives_up(a->kind))
		observe_pg(h);
	if (pgw_step_may_disarm(&h->st, a, held))
		pgw_wdguard_idle(h->wd);
}

/* systemd: READY=1 after the first cycle, then STATUS= and WATCHDOG=1 every cycle. */
static void notify_systemd(struct ha *h, const struct pgw_action *a, bool holds)
{
	const char *role = observed_role(h);
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

static void cycle(struct ha *h, bool shutdown)
{
	struct pgw_obs o;
	struct pgw_action a;
	int64_t start = mono_ms();
	bool holds;

	/* Rule 7: after any pause, compare the clock with D before anything else. */
	if (pgw_step_must_stop(&h->st, &h->lease, start, SAFETY_MARGIN_MS)) {
		pgw_error("lease deadline D - S passed while running as primary: stopping "
		          "PostgreSQL at once");
		pgw_pg_stop(h->pg, "immediate", PG_STOP_TIMEOUT_MS);
		observe_pg(h);
		if (!h->st.was_primary)
			pgw_wdguard_idle(h->wd); /* rule 5: writes stopped first */
	}
	renew_lease(h);
	if (h->lease.id != 0 && h->lease.t_send_ms < start) /* not renewed this loop */
		pgw_wdguard_bound(h->wd,
		                  pgw_lease_wd_bound_s(&h->lease, mono_ms(), h->dcs.loop_wait));
	observe_pg(h);
	if (*h->reload) {
		char msg[256];

		*h->reload = 0;
		reload_config(h, msg, sizeof(msg));
	}
	publish_member(h);
	read_cluster(h);
	pgw_step_cluster_read(&h->st, h->etcd_ok, &h->cluster, &h->pgst, mono_ms());
	apply_dynamic_config(h);
	build_obs(h, &o, shutdown);
	holds = pgw_obs_holds_leader(&o);
	pgw_step(&h->st, &o, &a);
	if (pgw_step_needs_watchdog(&h->st, &a) && !arm_watchdog(h))
		pgw_step_without_watchdog(&h->st, &o, &a);
	log_decision(h, &a);
	act(h, &a, holds);
	watchdog_after_act(h, &a, holds);
	if (!shutdown) /* after the safety rows: a restart as primary needs a healthy leader */
		serve_request(h, holds && a.kind == PGW_ACT_LEADER_DUTIES);
	h->loop_mono_ms = mono_ms();
	publish_snapshot(h, holds);
	notify_systemd(h, &a, holds);
	if (!shutdown)
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
	pgw_etcd_set_interrupt(h->etcd, wake_up, h);
	h->rest = pgw_rest_start(cfg->restapi.listen, &cfg->restapi.tls, err, sizeof(err));
	if (h->rest && cfg->fencing.mode == PGW_FENCE_REQUIRED)
		pgw_rest_set_audit_log(h->rest, cfg->fencing.audit_log);
	if (!h->rest) {
		pgw_error("%s", err);
		return -1;
	}
	h->control = pgw_control_new(cfg, h->prefix);
	if (!h->control) {
		pgw_error("out of memory");
		return -1;
	}
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
	pgw_fencer_free(h->fencer);
	pgw_dcs_free(&h->dcs);
	free(h->dcs_seen);
	pgw_config_free(h->cfg_reloaded);
	if (h->pg)
		pgw_pg_free(h->pg);
	if (h->etcd)
		pgw_etcd_free(h->etcd);
	pgw_cluster_clear(&h->cluster);
}

/* WatchdogSec= must leave room for a whole loop (sd_watchdog_enabled's advice: ping at half). */
static void check_systemd_watchdog(const struct ha *h)
{
	uint64_t usec = pgw_sd_watchdog_usec();
	uint64_t need = (uint64_t)(h->dcs.loop_wait + 2 * h->dcs.retry_timeout) * 2000000u;

	if (usec > 0 && usec < need)
		pgw_warn("systemd WatchdogSec=%.1fs is shorter than 2 * (loop_wait + 2 * "
		         "retry_timeout) = %llus: a slow but healthy loop may be restarted",
		         (double)usec / 1e6, (unsigned long long)(need / 1000000u));
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
		check_systemd_watchdog(h);
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
		clean = !h->st.was_primary;
		rc = 0;
	}
	ha_close(h);
	pgw_wdguard_close(wd, clean);
	free(h);
	return rc;
}
