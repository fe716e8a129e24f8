/*
 * ha_act.c - carrying out the action the core decided: etcd transactions (the leader
 * key with its record, status, history, failover), PostgreSQL (bootstrap, clone,
 * rewind, promote, start, stop), fencing, and the fast-takeover probes.
 */
#include "ha_int.h"

#include "probe.h"

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

/*
 * Does the replica stream from a member other than the leader (tags.replicatefrom)?
 * That member, a replica, holds no slot for it: stream without one (the leader's is
 * not used meanwhile, see sync_slots).
 */
static bool cascading_to(const struct ha *h, const struct pgw_action *a)
{
	const struct pgw_member *l = h->etcd_ok ? pgw_cluster_leader_member(&h->cluster) : NULL;

	return l && a->target_host[0] &&
	       (l->conn_port != a->target_port || strcmp(l->conn_host, a->target_host) != 0);
}

int ha_configure_replica(struct ha *h, const struct pgw_action *a)
{
	char slot[64];

	/* the standby leader follows the remote primary with standby_cluster's settings;
	 * its replicas follow it with their member slots (none when cascading) */
	if (a->standby_leader) {
		snprintf(slot, sizeof(slot), "%s", h->standby.primary_slot_name);
	} else {
		slot_for_self(h, slot, sizeof(slot));
		if (cascading_to(h, a))
			slot[0] = '\0';
	}
	pgw_pg_set_standby(h->pg, a->standby_leader ? &h->standby : NULL);
	/* a standby ignores it; it matters from the instant of a promotion on */
	pgw_pg_set_sync_names(h->pg, pgw_sync_standby_value(&h->cluster.sync_conf));
	/* tags.nostream: never a primary_conninfo, also when a clone or a rewind from the
	 * leader starts the replica (the core gives start and follow no target then) */
	if (h->cfg->tags.nostream)
		return pgw_pg_write_config(h->pg, &h->dcs.pg_parameters, "", 0, NULL);
	return pgw_pg_write_config(h->pg, &h->dcs.pg_parameters,
	                           a->target_host[0] ? a->target_host : "", a->target_port,
	                           slot[0] ? slot : NULL);
}

static void start_replica(struct ha *h, const struct pgw_action *a)
{
	if (ha_configure_replica(h, a) == 0 && pgw_pg_start(h->pg, PG_START_TIMEOUT_MS) == 0) {
		h->replica_started_ms = ha_mono_ms();
		ha_cb_started(h, "replica");
	}
}

/*
 * The record of this node as leader (pgwarden/leader), released or not.  A release
 * records the lease the key was on (an earlier one, after a restart of the daemon).
 */
static char *own_leader_record(const struct ha *h, bool released)
{
	const struct pgw_config *c = h->cfg;
	struct pgw_leader_record lr = {0};
	struct pgw_wd_status wd;

	snprintf(lr.member, sizeof(lr.member), "%s", c->name);
	lr.lease = h->lease.id;
	if (released && h->cluster.has_leader && strcmp(h->cluster.leader, c->name) == 0)
		lr.lease = h->cluster.leader_lease;
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
	                             h->lease.id, h->record_key, rec, ha_op_timeout(h), won);
	free(rec);
	return rc;
}

/* Give the key up cleanly: deleted, and the record says released (no fence needed). */
void ha_give_up_key(struct ha *h)
{
	char *rec = own_leader_record(h, true);
	bool ok = false;

	if (!rec ||
	    pgw_etcd_delete_if_value_and_put(h->etcd, h->leader_key, h->cfg->name, h->record_key,
	                                     rec, ha_op_timeout(h), &ok) != 0)
		pgw_warn("cannot delete the leader key: %s",
		         rec ? pgw_etcd_errmsg(h->etcd) : "out of memory");
	else if (ok)
		pgw_info("released the leader key");
	free(rec);
}

/* --- slots (slots.h: what is planned; here it is carried out) --- */

#define SLOTS_LISTED_MAX 64

/* Warnings about slots: at most one a minute (they would come every loop). */
static void slot_warn(struct ha *h, const char *what, const char *name, const char *why)
{
	int64_t now = ha_mono_ms();

	if (h->slot_warned_ms && now - h->slot_warned_ms < 60000)
		return;
	h->slot_warned_ms = now;
	pgw_warn("replication slot %s: %s: %s", name, what, why);
}

/* The status key's "slots" object from the PUBLISH ops (NULL when none). */
static void keep_positions(struct ha *h, const struct pgw_slot_op *ops, int n)
{
	struct json_object *o = json_object_new_object();

	for (int i = 0; o && i < n; i++)
		if (ops[i].kind == PGW_SLOT_PUBLISH)
			json_object_object_add(o, ops[i].slot.name,
			                       json_object_new_int64((int64_t)ops[i].lsn));
	free(h->status_slots);
	h->status_slots = o && json_object_object_length(o) > 0
	                      ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN))
	                      : NULL;
	json_object_put(o);
}

/*
 * A replica copies the leader's permanent logical slots (PostgreSQL 15 has no failover
 * slots): each slot file is read from the leader, then PostgreSQL is stopped, the
 * files are put into pg_replslot and it starts again (it reads slots only at startup).
 * From then on the loop advances them to the positions the leader publishes.
 */
static void copy_logical_slots(struct ha *h, const struct pgw_slot_op *ops, int n)
{
	const struct pgw_member *l = pgw_cluster_leader_member(&h->cluster);
	unsigned char *data[PGW_PERM_SLOTS_MAX] = {0};
	size_t len[PGW_PERM_SLOTS_MAX] = {0};
	const char *names[PGW_PERM_SLOTS_MAX];
	struct pgw_action a = {0};
	int k = 0;

	uint64_t oldest = 0;

	if (!l || pgw_pg_oldest_wal(h->pg, &oldest, PG_OBSERVE_TIMEOUT_MS) != 0)
		return;
	for (int i = 0; i < n && k < PGW_PERM_SLOTS_MAX; i++) {
		if (ops[i].kind != PGW_SLOT_COPY)
			continue;
		if (pgw_pg_read_leader_slot(h->pg, l->conn_host, l->conn_port, &ops[i].slot,
		                            &data[k], &len[k], PG_OBSERVE_TIMEOUT_MS * 5) != 0) {
			slot_warn(h, "cannot copy it from the leader", ops[i].slot.name,
			          pgw_pg_last_error(h->pg));
			continue;
		}
		/* a copy that needs WAL this replica no longer has could never be advanced */
		if (pgw_pg_slot_file_restart_lsn(data[k], len[k]) < oldest) {
			slot_warn(
			    h, "not copied yet", ops[i].slot.name,
			    "the leader's slot still needs WAL older than this replica's oldest "
			    "segment (copied once its consumer moves it on)");
			free(data[k]);
			data[k] = NULL;
			continue;
		}
		names[k++] = ops[i].slot.name;
	}
	if (k == 0)
		return;
	pgw_info("copying %d permanent logical slot(s) from leader %s (first %s): restarting "
	         "PostgreSQL, which reads slots only at startup",
	         k, l->name, names[0]);
	snprintf(a.target_host, sizeof(a.target_host), "%s", l->conn_host);
	a.target_port = l->conn_port;
	h->member_state = "restarting";
	ha_publish_member(h);
	if (pgw_pg_stop(h->pg, "fast", PG_STOP_TIMEOUT_MS) == 0) {
		for (int i = 0; i < k; i++)
			if (pgw_pg_install_slot(h->pg, names[i], data[i], len[i]) != 0)
				pgw_error("cannot install slot %s: %s", names[i],
				          pgw_pg_last_error(h->pg));
		if (ha_configure_replica(h, &a) != 0 ||
		    pgw_pg_start(h->pg, PG_START_TIMEOUT_MS) != 0) {
			/* never leave a replica down for a slot: without them, and again */
			pgw_error("PostgreSQL did not start with the copied slots: removing them");
			pgw_pg_stop(h->pg, "immediate", PG_STOP_TIMEOUT_MS);
			for (int i = 0; i < k; i++)
				pgw_pg_remove_slot_dir(h->pg, names[i]);
			pgw_pg_start(h->pg, PG_START_TIMEOUT_MS);
		}
		h->replica_started_ms = ha_mono_ms();
	}
	h->member_state = NULL;
	for (int i = 0; i < k; i++)
		free(data[i]);
}

/* One loop of slot upkeep: the leader (primary) or a replica following it. */
/* A member that streams from another member (tags.replicatefrom), not from the leader,
 * or not at all (tags.nostream): the leader keeps no slot for it (once inactive, dropped
 * after member_slots_ttl). */
static bool cascades(const struct pgw_cluster *c, const struct pgw_member *m)
{
	char why[200];
	const struct pgw_member *up = pgw_upstream(c, m->name, m->replicatefrom, why, sizeof(why));

	return m->nostream || (up && up != pgw_cluster_leader_member(c));
}

static void sync_slots(struct ha *h, bool primary)
{
	struct pgw_slot_info have[SLOTS_LISTED_MAX];
	char names[PGW_MAX_MEMBERS][PGW_SLOT_NAME_MAX], self[PGW_SLOT_NAME_MAX];
	const char *members[PGW_MAX_MEMBERS];
	struct pgw_slot_view v = {.primary = primary,
	                          .paused = h->cluster.paused,
	                          .use_slots = h->dcs.use_slots,
	                          .self = self,
	                          .members = members,
	                          .slots = have,
	                          .leader_pos = h->cluster.status_slots,
	                          .nleader_pos = primary ? 0 : h->cluster.nstatus_slots,
	                          .now_ms = ha_mono_ms()};
	struct pgw_slot_op *ops;
	int n, copies = 0;

	if (!h->dcs.use_slots || !h->etcd_ok)
		return;
	pgw_pg_slot_name(h->cfg->name, self, sizeof(self));
	/* a member counts only while its key lives on a lease (a daemon keeps it alive):
	 * keys written without one (by hand, or by a hostile writer) would hold WAL and
	 * fill max_replication_slots (issue 11, item 9) */
	for (int i = 0; i < h->cluster.nmembers; i++)
		if (h->cluster.members[i].lease != 0 &&
		    !(primary && cascades(&h->cluster, &h->cluster.members[i]))) {
			pgw_pg_slot_name(h->cluster.members[i].name, names[v.nmembers],
			                 sizeof(names[0]));
			members[v.nmembers] = names[v.nmembers];
			v.nmembers++;
		}
	v.nslots =
	    pgw_pg_list_slots(h->pg, have, SLOTS_LISTED_MAX, &v.wal_logical, PG_OBSERVE_TIMEOUT_MS);
	ops = calloc(PGW_SLOT_OPS_MAX, sizeof(*ops));
	if (v.nslots < 0 || !ops) {
		free(ops);
		return;
	}
	n = pgw_slots_plan(&h->dcs.slots, &v, h->slot_absent, &h->nslot_absent, ops,
	                   PGW_SLOT_OPS_MAX);
	for (int i = 0; i < n; i++) {
		const struct pgw_slot_op *op = &ops[i];
		int rc = 0;

		switch (op->kind) {
		case PGW_SLOT_CREATE:
			rc = pgw_pg_create_slot(h->pg, &op->slot, op->reserve,
			                        PG_OBSERVE_TIMEOUT_MS * 5);
			break;
		case PGW_SLOT_DROP:
			pgw_info("replication slot %s: dropping: %s", op->slot.name, op->why);
			rc = pgw_pg_drop_slot(h->pg, op->slot.name, PG_OBSERVE_TIMEOUT_MS);
			break;
		case PGW_SLOT_ADVANCE:
			rc = pgw_pg_advance_slot(h->pg, &op->slot, op->lsn,
			                         PG_OBSERVE_TIMEOUT_MS * 5);
			/* a copy whose WAL is gone is useless: dropped, copied again later */
			if (rc != 0 && op->slot.type == PGW_SLOT_LOGICAL &&
			    strstr(pgw_pg_last_error(h->pg), "has already been removed"))
				pgw_pg_drop_slot(h->pg, op->slot.name, PG_OBSERVE_TIMEOUT_MS);
			break;
		case PGW_SLOT_COPY:
			copies++;
			break;
		case PGW_SLOT_NO_LOGICAL:
			slot_warn(h, "not created", op->slot.name, op->why);
			break;
		case PGW_SLOT_PUBLISH:
			break;
		}
		if (rc != 0)
			slot_warn(h, "failed", op->slot.name, pgw_pg_last_error(h->pg));
	}
	if (primary)
		keep_positions(h, ops, n);
	if (copies > 0)
		copy_logical_slots(h, ops, n);
	free(ops);
}

static void publish_status(struct ha *h, uint64_t optime)
{
	char *buf = NULL;

	if (asprintf(&buf, "{\"optime\":%" PRIu64 "%s%s}", optime,
	             h->status_slots ? ",\"slots\":" : "",
	             h->status_slots ? h->status_slots : "") < 0)
		return;
	if (pgw_etcd_put(h->etcd, h->status_key, buf, strlen(buf), 0, ha_op_timeout(h)) != 0)
		pgw_warn("cannot write %s: %s", h->status_key, pgw_etcd_errmsg(h->etcd));
	free(buf);
}

static void record_history(struct ha *h, int new_tl)
{
	uint64_t lsn = 0;
	int parent = new_tl - 1;
	char reason[128] = "no recovery target specified", ts[40], *hist;

	if (new_tl <= 1)
		return;
	if (pgw_pg_timeline_switch(h->pg, new_tl, &parent, &lsn, reason, sizeof(reason)) != 0)
		pgw_warn("cannot read the history file of timeline %d", new_tl);
	timestamp_iso(ts, sizeof(ts));
	/* [the timeline that ended, where, ...], as in the history file (and Patroni's key):
	 * a replica promoted from an older timeline forks off that one, not new_tl - 1 */
	hist = pgw_history_append_max(h->cluster.history, parent, lsn, reason, ts, h->cfg->name,
	                              h->dcs.max_timelines_history);
	if (hist &&
	    pgw_etcd_put(h->etcd, h->history_key, hist, strlen(hist), 0, ha_op_timeout(h)) != 0)
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
	                           ha_op_timeout(h), &ok) != 0)
		pgw_warn("cannot remove %s: %s", h->failover_key, pgw_etcd_errmsg(h->etcd));
	else if (ok)
		pgw_info("removed the switchover request");
}

/* --- synchronous_mode (core/sync.h has the order and why) --- */

/* The sync key = {self, members}, only while this node holds the leader key. */
static bool write_sync_key(struct ha *h, const char (*members)[PGW_NAME_MAX], int n)
{
	char *json = pgw_sync_key_json(h->cfg->name, members, n);
	int64_t mod = h->cluster.sync.present ? h->cluster.sync.mod_revision : 0;
	bool ok = false;

	if (!json || pgw_etcd_put_if_mod_guarded(h->etcd, h->sync_key, json, mod, h->leader_key,
	                                         h->lease.id, ha_op_timeout(h), &ok) != 0)
		pgw_warn("cannot write %s: %s", h->sync_key,
		         json ? pgw_etcd_errmsg(h->etcd) : "out of memory");
	else if (!ok)
		pgw_warn("%s changed or the leader key is not ours: not written", h->sync_key);
	free(json);
	return ok;
}

/* Put names in synchronous_standby_names (postgresql.conf, reload). */
static void set_sync_names(struct ha *h, const char *names)
{
	pgw_pg_set_sync_names(h->pg, names);
	if (pgw_pg_write_config(h->pg, &h->dcs.pg_parameters, NULL, 0, NULL) == 0)
		pgw_pg_reload(h->pg);
}

/* The leader's synchronous standbys: one step of the safe order per loop. */
static void sync_duties(struct ha *h)
{
	struct pgw_sync_plan p;
	bool ok = false;

	pgw_sync_plan(&h->cluster, h->cfg->name, &h->pgst, &h->st.sync, &p);
	if (!h->cluster.sync_conf.mode && pgw_pg_sync_names(h->pg)) {
		pgw_info("synchronous_mode is off: synchronous_standby_names back to the "
		         "parameters' value");
		set_sync_names(h, NULL);
	}
	switch (p.what) {
	case PGW_SYNC_NONE:
		break;
	case PGW_SYNC_WRITE_KEY:
		if (write_sync_key(h, (const char(*)[PGW_NAME_MAX])p.members, p.n))
			pgw_info("%s", p.why);
		break;
	case PGW_SYNC_SET_NAMES:
		if (strncmp(p.names, "FIRST", 5) != 0)
			pgw_warn("%s", p.why); /* no standby to wait for */
		else
			pgw_info("%s", p.why);
		set_sync_names(h, p.names);
		break;
	case PGW_SYNC_DELETE_KEY:
		if (pgw_etcd_delete_if_mod(h->etcd, h->sync_key, h->cluster.sync.mod_revision,
		                           ha_op_timeout(h), &ok) == 0 &&
		    ok)
			pgw_info("removed %s: %s", h->sync_key, p.why);
		break;
	}
}

/*
 * synchronous_mode, before promoting: the sync key names this node as leader and no
 * standby, so that the old leader's standbys (which may lack what this node will
 * acknowledge) can no longer be promoted; strict mode waits for a standby from the
 * first commit.  False: the key could not be written, do not promote yet.
 */
static bool sync_before_promote(struct ha *h)
{
	if (!h->cluster.sync_conf.mode)
		return true;
	if (!write_sync_key(h, NULL, 0)) {
		pgw_error("synchronous_mode: cannot write the sync key before promoting: not "
		          "promoting yet");
		return false;
	}
	if (strcmp(h->pgst.sync_names, pgw_sync_standby_value(&h->cluster.sync_conf)) != 0) {
		/* strict mode turned on after this standby's configuration was written */
		struct pgw_action a = {.target_port = h->pgst.primary_port};

		snprintf(a.target_host, sizeof(a.target_host), "%s", h->pgst.primary_host);
		if (ha_configure_replica(h, &a) == 0)
			pgw_pg_reload(h->pg);
	}
	pgw_pg_set_sync_names(h->pg, pgw_sync_standby_value(&h->cluster.sync_conf));
	return true;
}

/*
 * While PostgreSQL promotes, keep renewing the lease that holds the leader key (each
 * renewal pets the watchdog, rule 3): a promotion may outlast W.  False once that
 * lease is lost or no longer allows writes; the next step then demotes.
 */
bool ha_keep_key_lease(void *arg)
{
	struct ha *h = arg;
	int64_t id = h->lease.id;

	pgw_sd_watchdog();
	if (id == 0)
		return false;
	ha_renew_lease(h);
	return h->lease.id == id &&
	       pgw_lease_allows_writes(&h->lease, ha_mono_ms(), SAFETY_MARGIN_MS);
}

static void promote(struct ha *h)
{
	struct pgw_pg_state st;
	char fenced[PGW_NAME_MAX];
	int64_t fenced_lease;

	if (!ha_pre_promote(h) || !sync_before_promote(h))
		return;
	if (pgw_pg_promote(h->pg, PG_PROMOTE_TIMEOUT_MS, ha_keep_key_lease, h) != 0) {
		pgw_error("promotion failed; will retry while holding the leader key");
		return;
	}
	pgw_pg_observe(h->pg, PG_OBSERVE_TIMEOUT_MS, &st);
	pgw_info("promoted: now primary on timeline %d", st.timeline);
	ha_cb_fire(h, PGW_CB_ON_ROLE_CHANGE, "master");
	ha_renew_lease(h); /* the promotion's checkpoint may have been long: renew (and pet) now */
	pgw_step_promoted(&h->st, fenced, sizeof(fenced), &fenced_lease);
	if (fenced[0]) /* S4: the promotion that follows a fence is audited too */
		pgw_fencer_promoted(h->fencer, fenced, fenced_lease, st.timeline);
	record_history(h, st.timeline);
	sync_slots(h, true);
	publish_status(h, st.wal_lsn);
	clear_failover(h); /* a switchover or failover that brought us here is done */
}

/* Renew now (petting the watchdog, rule 3); true while writes are still allowed. */
bool ha_renewed(struct ha *h)
{
	ha_renew_lease(h);
	if (pgw_lease_allows_writes(&h->lease, ha_mono_ms(), SAFETY_MARGIN_MS))
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
	return ha_renewed(h) && ha_arm_watchdog(h);
}

/* bootstrap.method when it names a custom method (config.c checked it has a command). */
static const struct pgw_method *custom_bootstrap(const struct pgw_config *c)
{
	if (!c->bootstrap.method || strcmp(c->bootstrap.method, "initdb") == 0)
		return NULL;
	return pgw_method_find(&c->bootstrap.methods, c->bootstrap.method);
}

/*
 * Make the new cluster's data directory (initdb, or the custom method, whose exit
 * status decides), start it as primary (a custom method's recovery ends first),
 * create the roles and run post_bootstrap.  A custom method may restore a large
 * backup: the lease holding the leader key is renewed meanwhile.
 */
static bool make_new_cluster(struct ha *h)
{
	const struct pgw_method *m = custom_bootstrap(h->cfg);
	const struct pgw_kvlist *params = &h->cfg->dcs.pg_parameters;
	bool ok;

	h->member_state = m ? "running custom bootstrap script" : "initializing new cluster";
	ha_publish_member(h);
	if (!m)
		ok = pgw_pg_initdb(h->pg, PG_START_TIMEOUT_MS) == 0 && arm_for_primary(h) &&
		     pgw_pg_start(h->pg, PG_START_TIMEOUT_MS) == 0;
	else {
		pgw_pg_set_keep(h->pg, ha_keep_key_lease, h);
		ok = pgw_pg_custom_bootstrap(h->pg, m, params, PG_CLONE_TIMEOUT_MS) == 0;
		pgw_pg_set_keep(h->pg, NULL, NULL);
		/* no wait in pg_ctl: a recovery may last longer than any start timeout */
		ok = ok && arm_for_primary(h) && pgw_pg_start(h->pg, 0) == 0 &&
		     pgw_pg_wait_writable(h->pg, PG_CLONE_TIMEOUT_MS, ha_keep_key_lease, h) == 0;
	}
	return ok && ha_renewed(h) && pgw_pg_bootstrap_roles(h->pg, PG_START_TIMEOUT_MS) == 0 &&
	       pgw_pg_post_bootstrap(h->pg, PG_START_TIMEOUT_MS) == 0 &&
	       pgw_pg_bootstrap_done(h->pg, params) == 0;
}

/*
 * A standby cluster's first member: its data directory is a copy of the remote primary
 * (pg_basebackup, or standby_cluster.create_replica_methods), started as its standby.
 * Nothing here accepts writes: the watchdog is not armed for it.
 */
static bool make_standby_cluster(struct ha *h, const struct pgw_action *a)
{
	bool ok;

	h->member_state = "creating standby leader";
	ha_publish_member(h);
	pgw_pg_set_keep(h->pg, ha_keep_key_lease, h);
	ok = pgw_pg_create_standby_leader(h->pg, &h->standby, PG_CLONE_TIMEOUT_MS) == 0;
	pgw_pg_set_keep(h->pg, NULL, NULL);
	if (!ok)
		pgw_error("standby cluster: cannot copy the remote primary: %s",
		          pgw_pg_last_error(h->pg));
	return ok && ha_configure_replica(h, a) == 0 &&
	       pgw_pg_start(h->pg, PG_START_TIMEOUT_MS) == 0;
}

static void act_bootstrap(struct ha *h, const struct pgw_action *a)
{
	bool won = false;
	char *cfgjson, *rec, sysid[32];
	struct pgw_pg_state st;
	bool standby = a->standby_leader;

	if (take_key(h, &won) != 0 || !won)
		return;
	h->won_key = true;
	if (pgw_etcd_create(h->etcd, h->init_key, "", 0, 0, ha_op_timeout(h), &won) != 0 || !won) {
		pgw_info("another member started the bootstrap first");
		ha_give_up_key(h);
		return;
	}
	if (standby ? !make_standby_cluster(h, a) : !make_new_cluster(h)) {
		pgw_error("bootstrap failed: removing the half-made data directory and the "
		          "initialize key so that a member can try again");
		pgw_pg_stop(h->pg, "immediate", PG_STOP_TIMEOUT_MS);
		pgw_pg_bootstrap_abort(h->pg);
		remove_datadir(h);
		pgw_etcd_delete_if_value(h->etcd, h->init_key, "", ha_op_timeout(h), &won);
		ha_give_up_key(h);
		h->member_state = NULL;
		return;
	}
	h->member_state = NULL;
	/* the record written with the key predates the watchdog (armed after initdb) */
	rec = own_leader_record(h, false);
	if (!rec ||
	    pgw_etcd_put(h->etcd, h->record_key, rec, strlen(rec), 0, ha_op_timeout(h)) != 0)
		pgw_warn("cannot update %s: %s", h->record_key,
		         rec ? pgw_etcd_errmsg(h->etcd) : "out of memory");
	free(rec);
	pgw_pg_observe(h->pg, PG_OBSERVE_TIMEOUT_MS, &st);
	snprintf(sysid, sizeof(sysid), "%" PRIu64, st.system_identifier);
	if (pgw_etcd_put(h->etcd, h->init_key, sysid, strlen(sysid), 0, ha_op_timeout(h)) != 0)
		pgw_error("cannot record the system identifier in %s: %s", h->init_key,
		          pgw_etcd_errmsg(h->etcd));
	cfgjson = pgw_dcs_to_json(&h->cfg->dcs);
	if (cfgjson)
		pgw_etcd_create(h->etcd, h->config_key, cfgjson, strlen(cfgjson), 0,
		                ha_op_timeout(h), &won);
	free(cfgjson);
	if (standby) {
		pgw_info("bootstrapped standby cluster %s (system identifier %s) following %s:%d",
		         h->cfg->scope, sysid, a->target_host[0] ? a->target_host : "no host",
		         a->target_port);
		h->replica_started_ms = ha_mono_ms();
		ha_cb_started(h, "standby_leader");
		return;
	}
	pgw_step_pg_writable(&h->st);
	publish_status(h, st.wal_lsn);
	pgw_info("bootstrapped cluster %s with system identifier %s", h->cfg->scope, sysid);
	ha_cb_started(h, "master");
}

void ha_act_clone(struct ha *h, const struct pgw_action *a)
{
	h->member_state = "creating replica";
	ha_publish_member(h);
	/* postgresql.create_replica_methods in order (basebackup by default) */
	if (pgw_pg_create_replica(h->pg, a->target_host, a->target_port, PG_CLONE_TIMEOUT_MS) ==
	    0) {
		pgw_step_cloned(&h->st);
		start_replica(h, a);
	}
	h->member_state = NULL;
}

static void act_rewind(struct ha *h, const struct pgw_action *a)
{
	if (h->pgst.running)
		ha_stop_pg(h, "fast", false, true);
	if (pgw_pg_rewind(h->pg, a->target_host, a->target_port, PG_CLONE_TIMEOUT_MS) != 0) {
		pgw_error("pg_rewind from %s failed: the data directory will be re-cloned",
		          a->target);
		pgw_step_rewind_failed(&h->st, a->target);
		return;
	}
	pgw_info("rewound from %s", a->target);
	pgw_step_rewound(&h->st);
	start_replica(h, a);
}

static void act_follow(struct ha *h, const struct pgw_action *a)
{
	if (ha_configure_replica(h, a) == 0 && ha_reload_pg(h) == 0)
		h->replica_started_ms = ha_mono_ms();
}

/* --- fast takeover (rule 8): is the leader silent on REST, PostgreSQL and etcd? --- */

/* Fast takeover is on and this replica follows another node's leadership. */
bool ha_watching_leader(const struct ha *h)
{
	return pgw_step_watching(&h->st,
	                         h->cfg->fencing.mode == PGW_FENCE_REQUIRED &&
	                             h->cfg->fencing.fast_takeover_after_ms > 0,
	                         h->etcd_ok, &h->cluster, h->cfg->name);
}

/* A probe round every fifth of the threshold, 100 ms to 1 s. */
int64_t ha_probe_interval_ms(const struct ha *h)
{
	return ha_clamp(h->cfg->fencing.fast_takeover_after_ms / 5, 100, 1000);
}

/* What the prober probes: the leader's REST API and PostgreSQL, from its member key. */
static void probe_target(const struct ha *h, const struct pgw_member *l, struct pgw_probe_target *t)
{
	memset(t, 0, sizeof(*t)); /* compared whole: no stale bytes after the strings */
	snprintf(t->api_url, sizeof(t->api_url), "%s", l->api_url);
	snprintf(t->host, sizeof(t->host), "%s", l->conn_host);
	t->port = l->conn_port;
	t->tag = h->cluster.leader_lease;
	t->interval_ms = (int)ha_probe_interval_ms(h);
	/* a round may answer late (a SYN retransmitted after 1 s): it still counts */
	t->timeout_ms = (int)ha_clamp(h->cfg->fencing.fast_takeover_after_ms, 1000, 5000);
}

/* etcd's reading of the leader's lease.  A failed reading: in doubt, renewed. */
static void read_leader_lease(struct ha *h, struct pgw_probe *p)
{
	int64_t ttl = 0, granted = 0;
	int rc;

	p->lease_sent_ms = ha_mono_ms();
	/* a reading slower than PGW_LEASE_STALE_MS cannot chain with the next anyway */
	rc = pgw_etcd_lease_ttl(h->etcd, h->cluster.leader_lease, PGW_LEASE_STALE_MS, &ttl,
	                        &granted);
	p->lease_recv_ms = ha_mono_ms();
	if (rc != 0)
		pgw_debug("cannot read the leader's lease: %s", pgw_etcd_errmsg(h->etcd));
	p->lease =
	    rc == 0 && pgw_lease_ttl_stale(ttl, granted) ? PGW_LEASE_STALE : PGW_LEASE_RENEWED;
}

/* Report a silence once it lasts half the threshold, then every 5 s. */
static void warn_silence(struct ha *h, const struct pgw_member *l, int64_t silence, bool was_silent)
{
	int64_t now = ha_mono_ms();

	if (silence < h->cfg->fencing.fast_takeover_after_ms / 2 || silence == 0) {
		if (was_silent && silence == 0)
			pgw_info("leader %s answers again", l->name);
		if (silence == 0)
			h->probe_warned_ms = 0;
		return;
	}
	if (h->probe_warned_ms != 0 && now - h->probe_warned_ms < 5000)
		return;
	h->probe_warned_ms = now;
	if (pgw_step_unrenewed_ms(&h->st, &h->cluster) > 0)
		pgw_warn("leader %s answers neither on REST nor on PostgreSQL (for %lld ms); its "
		         "lease is unrenewed for %lld ms",
		         l->name, (long long)silence,
		         (long long)pgw_step_unrenewed_ms(&h->st, &h->cluster));
	else
		pgw_warn("leader %s answers neither on REST nor on PostgreSQL (for %lld ms); its "
		         "lease is still renewed (or cannot tell)",
		         l->name, (long long)silence);
}

/*
 * Called while the loop waits (wait_next): points the prober at the leader (or stops
 * it), and tells the step what the probes found.  etcd's view of the lease is read
 * only while the leader has been silent for a whole probe interval.
 */
void ha_probe_leader(struct ha *h)
{
	const struct pgw_member *l = pgw_cluster_leader_member(&h->cluster);
	struct pgw_probe p = {.lease = PGW_LEASE_NOT_READ};
	struct pgw_probe_target t;
	int64_t now, silence;
	bool was_silent;

	if (!ha_watching_leader(h) || !l) {
		if (h->prober)
			pgw_prober_set_target(h->prober, NULL);
		pgw_step_probe(&h->st, false, "", 0, &p);
		return;
	}
	if (!h->prober && !(h->prober = pgw_prober_new())) {
		pgw_error("fast takeover off: cannot start the prober thread: %s", strerror(errno));
		pgw_step_probe(&h->st, false, "", 0, &p);
		return;
	}
	probe_target(h, l, &t);
	pgw_prober_set_target(h->prober, &t);
	now = ha_mono_ms();
	was_silent = h->probe_warned_ms != 0;
	p.silent_since = pgw_prober_silent_since(h->prober);
	silence = p.silent_since ? now - p.silent_since : 0;
	if (silence >= ha_probe_interval_ms(h))
		read_leader_lease(h, &p);
	pgw_step_probe(&h->st, true, l->name, h->cluster.leader_lease, &p);
	warn_silence(h, l, silence, was_silent);
}

/* Fence the lost leader the leader record names (the decision checked it must be). */
static void act_fence(struct ha *h, const struct pgw_action *a)
{
	const struct pgw_leader_record *lr = &h->cluster.last_leader;
	struct pgw_fence_keys k = {.record_key = h->record_key,
	                           .lock_key = h->fence_lock_key,
	                           .fenced_prefix = h->fenced_prefix,
	                           .lease = h->lease.id,
	                           .timeout_ms = ha_op_timeout(h),
	                           .timeline = h->pgst.timeline,
	                           .budget_ms = ha_fence_budget_ms(h),
	                           /* fast takeover: the key is still there; say why */
	                           .why = strcmp(a->rule, "fast-takeover") == 0 ? a->reason : NULL};

	if (h->lease.id == 0)
		return;
	h->member_state = "fencing";
	ha_publish_member(h);
	if (pgw_fencer_fence(h->fencer, h->etcd, &k, lr)) {
		pgw_step_fenced(&h->st, lr->member, lr->lease);
		/* fast takeover: its key is still there; it is powered off, so end its lease */
		if (h->cluster.has_leader && strcmp(h->cluster.leader, lr->member) == 0) {
			int64_t gone = 0;

			if (pgw_etcd_lease_revoke_at(h->etcd, h->cluster.leader_lease,
			                             ha_op_timeout(h), &gone) != 0) {
				pgw_warn("cannot revoke the fenced leader's lease (it expires by "
				         "itself): %s",
				         pgw_etcd_errmsg(h->etcd));
			} else {
				pgw_info("revoked the lease of fenced leader %s", lr->member);
				/* the loss happened at this revision: positions published after it
				 * are fresh (positions-stale), and the next cycle comes before any
				 * watch could tell */
				if (gone > 0)
					h->leader_gone_rev = gone;
			}
		}
	}
	h->member_state = NULL;
}

static void act_acquire(struct ha *h, const struct pgw_action *a)
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
	h->won_key = true;
	if (a->standby_leader) {
		/* the next cycle's standby-leader rows point it at the remote primary */
		pgw_info("took the leader key as standby leader of a standby cluster: not "
		         "promoting");
		return;
	}
	pgw_info("took the leader key: promoting");
	promote(h);
}

static void act_start_primary(struct ha *h)
{
	if (pgw_pg_write_config(h->pg, &h->dcs.pg_parameters, NULL, 0, NULL) != 0)
		return;
	pgw_step_pg_writable(&h->st);    /* it may accept writes before the next observation */
	if (pgw_pg_start(h->pg, 0) == 0) /* no wait: the loop keeps renewing the lease */
		ha_cb_started(h, "master");
}

static void act_demote(struct ha *h, const char *mode)
{
	ha_stop_pg(h, mode, false, true);
	pgw_step_pg_stopped(&h->st);
	/* a key left by an earlier lease of ours would only block the election */
	if (h->etcd_ok && h->cluster.has_leader && strcmp(h->cluster.leader, h->cfg->name) == 0)
		ha_give_up_key(h);
}

/* Stop PostgreSQL cleanly; when holding the key, publish the final position (so
 * candidates can tell they have it all) and release the key. */
static void step_down(struct ha *h, bool held)
{
	struct pgw_controldata cd;

	/* the shutdown checkpoint may outlast W: a switchover must not reset the node */
	ha_stop_pg(h, "fast", held, true);
	pgw_step_pg_stopped(&h->st);
	if (!held)
		return;
	if (pgw_pg_controldata(h->pg, &cd) == 0)
		publish_status(h, cd.checkpoint_lsn);
	ha_give_up_key(h);
}

static void act_shutdown(struct ha *h, bool held)
{
	int64_t id = pgw_lease_to_renew(&h->lease);

	step_down(h, held);
	/* a lapsed lease too: it is this node's own, and revoking it frees a leader key
	 * that may still sit on it for the others at once */
	if (id != 0)
		pgw_etcd_lease_revoke(h->etcd, id, ha_op_timeout(h));
}

/* holds: this node held the leader key at the observation (pgw_obs_holds_leader). */
void ha_act(struct ha *h, const struct pgw_action *a, bool holds)
{
	switch (a->kind) {
	case PGW_ACT_NONE:
		/* a replica streaming from the leader keeps the permanent slots */
		if (strcmp(a->rule, "following") == 0 && h->pgst.running && h->pgst.in_recovery)
			sync_slots(h, false);
		/* the standby leader keeps its replicas' member slots, as a primary does */
		else if (strcmp(a->rule, "standby-leader") == 0 && h->pgst.running &&
		         h->pgst.accepting)
			sync_slots(h, true);
		break;
	case PGW_ACT_BOOTSTRAP:
		act_bootstrap(h, a);
		break;
	case PGW_ACT_CLONE:
		ha_act_clone(h, a);
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
		act_acquire(h, a);
		break;
	case PGW_ACT_PROMOTE:
		promote(h);
		break;
	case PGW_ACT_LEADER_DUTIES:
		sync_duties(h);
		sync_slots(h, true);
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
		ha_stop_pg(h, "fast", false, true);
		pgw_step_pg_stopped(&h->st);
		ha_give_up_key(h);
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
		act_fence(h, a);
		break;
	case PGW_ACT_RELEASE_FENCE_LOCK: {
		bool ok = false;

		if (pgw_etcd_delete_if_value(h->etcd, h->fence_lock_key, h->cfg->name,
		                             ha_op_timeout(h), &ok) != 0)
			pgw_warn("cannot delete the fence lock: %s", pgw_etcd_errmsg(h->etcd));
		else if (ok)
			pgw_info("released a fence lock left from an earlier fence");
		break;
	}
	case PGW_ACT_COUNT:
		break;
	}
}
