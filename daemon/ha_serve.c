/*
 * ha_serve.c - what the REST API queued for the loop, carried out as the request table
 * (core/requests.c) says, and the configuration: SIGHUP/POST /reload of the file and the
 * dynamic configuration from the config key.
 */
#include "ha_int.h"

/* Rewrite postgresql.conf for the current role with the new parameters, reload. */
void ha_refresh_pg_config(struct ha *h)
{
	const struct pgw_member *l = pgw_cluster_leader_member(&h->cluster);
	struct pgw_action a;
	int rc;

	if (!h->pgst.running || !h->pgst.accepting)
		return; /* written before the next start anyway */
	memset(&a, 0, sizeof(a));
	if (h->pgst.in_recovery) {
		if (ha_standby_leader(h)) {
			snprintf(a.target_host, sizeof(a.target_host), "%s", h->standby.host);
			a.target_port = h->standby.port;
			a.standby_leader = true;
		} else if (l && strcmp(l->name, h->cfg->name) != 0) {
			snprintf(a.target_host, sizeof(a.target_host), "%s", l->conn_host);
			a.target_port = l->conn_port;
		}
		rc = ha_configure_replica(h, &a);
	} else {
		rc = pgw_pg_write_config(h->pg, &h->dcs.pg_parameters, NULL, 0, NULL);
	}
	if (rc == 0 && ha_reload_pg(h) == 0)
		pgw_info("dynamic configuration: PostgreSQL parameters applied with a reload");
}

/* The config key changed: take its settings at this cycle (S5: a bad one changes nothing). */
void ha_apply_dynamic_config(struct ha *h)
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
	if (next.slots.refused[0])
		pgw_error(
		    "dynamic configuration: slot settings left out (no slot of these names is "
		    "created or dropped): %s",
		    next.slots.refused);
	params = pgw_dcs_params_differ(&h->dcs, &next);
	/* permanent logical slots need wal_level logical and hot_standby_feedback */
	if (pgw_pg_set_logical_slots(h->pg, pgw_slot_conf_has_logical(&next.slots)))
		params = true;
	pgw_dcs_free(&h->dcs);
	h->dcs = next;
	if (params)
		ha_refresh_pg_config(h);
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
	    {"fencing.audit_key_file", a->fencing.audit_key_file, b->fencing.audit_key_file},
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
int ha_reload_config(struct ha *h, char *msg, size_t len)
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
	ha_refresh_pg_config(h);
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
	ha_stop_pg(h, "fast", false, false); /* on_restart once it is back, not on_stop */
	if (v->as_primary) {
		/* the loop is blocked meanwhile: never let the start run past D - S */
		budget =
		    pgw_lease_write_budget_ms(&h->lease, ha_mono_ms(), SAFETY_MARGIN_MS) - 1000;
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
		if (ha_configure_replica(h, &a) != 0 ||
		    pgw_pg_start(h->pg, PG_START_TIMEOUT_MS) != 0)
			return snprintf(msg, len, "restart failed: %s", "see the log"), 503;
	}
	ha_cb_fire(h, PGW_CB_ON_RESTART, v->as_primary ? "master" : "replica");
	return snprintf(msg, len, "restarted successfully"), 200;
}

/* POST /reinitialize, allowed: throw the data away and clone the leader again. */
static int do_reinit(struct ha *h, const struct pgw_rq_verdict *v, char *msg, size_t len)
{
	struct pgw_action a;

	memset(&a, 0, sizeof(a));
	snprintf(a.target, sizeof(a.target), "%s", v->target);
	snprintf(a.target_host, sizeof(a.target_host), "%s", v->target_host);
	a.target_port = v->target_port;
	pgw_info("REST: reinitializing from %s", v->target);
	ha_stop_pg(h, "immediate", false, true);
	ha_act_clone(h, &a);
	ha_observe_pg(h);
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
	if (pgw_etcd_get(h->etcd, key, ha_op_timeout(h), &r) != 0)
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
	status = pgw_fencer_unfence(h->fencer, &lr, ha_fence_budget_ms(h), msg, len);
	if (status == 200 &&
	    pgw_etcd_delete_if_mod(h->etcd, key, lr.mod_revision, ha_op_timeout(h), &ok) != 0)
		pgw_warn("cannot delete %s: %s", key, pgw_etcd_errmsg(h->etcd));
	return status;
}

/* Ask the request table (core/requests.c); carry it out when it says so. */
static int serve(struct ha *h, const struct pgw_request *req, bool healthy, char *msg, size_t len)
{
	struct pgw_rq rq = {
	    .pending_only = req->restart_pending_only, .role = req->role, .member = req->member};
	struct pgw_rq_verdict v;
	struct pgw_obs o;

	if (req->kind == PGW_REQ_RELOAD)
		return ha_reload_config(h, msg, len);
	if (req->kind != PGW_REQ_RESTART && req->kind != PGW_REQ_REINIT &&
	    req->kind != PGW_REQ_UNFENCE)
		return snprintf(msg, len, "unknown request"), 400;
	rq.kind = req->kind == PGW_REQ_RESTART  ? PGW_RQ_RESTART
	          : req->kind == PGW_REQ_REINIT ? PGW_RQ_REINIT
	                                        : PGW_RQ_UNFENCE;
	ha_build_obs(h, &o, false);
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
void ha_serve_request(struct ha *h, bool healthy)
{
	struct pgw_request req;
	char msg[256];
	int status;

	if (!h->control)
		return;
	if (pgw_control_take_due(h->control, ha_wall_now(), &req, h->scheduled_restart,
	                         sizeof(h->scheduled_restart))) {
		pgw_info("scheduled restart (%s) is due", req.at_text);
		status = serve(h, &req, healthy, msg, sizeof(msg));
		if (status == 200)
			pgw_info("scheduled restart: %s", msg);
		else
			pgw_warn("scheduled restart not done: %s", msg);
		ha_observe_pg(h);
		return;
	}
	if (!pgw_control_take(h->control, &req))
		return;
	status = serve(h, &req, healthy, msg, sizeof(msg));
	pgw_control_finish(h->control, status, msg);
	ha_observe_pg(h);
}
