/*
 * ha_int.h - what the HA loop's files share (ha.c, ha_act.c, ha_serve.c,
 * ha_publish.c): struct ha, the loop's state and handles, and the helpers one file
 * calls in another.  Not for anything outside the HA loop.
 */
#ifndef PGW_HA_INT_H
#define PGW_HA_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#include "callbacks.h"
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
/* pg_ctl start/stop: postgresql.pg_ctl_timeout when set, else 120 s */
#define PG_CTL_TIMEOUT_MS                                                                          \
	(h->cfg->postgresql.pg_ctl_timeout ? h->cfg->postgresql.pg_ctl_timeout * 1000 : 120000)
#define PG_START_TIMEOUT_MS   PG_CTL_TIMEOUT_MS
#define PG_STOP_TIMEOUT_MS    PG_CTL_TIMEOUT_MS
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
	char sync_key[600];
	char record_key[600];     /* pgwarden/leader: who led, with which lease and BMC */
	char fence_lock_key[600]; /* pgwarden/fence-lock: one fencer at a time */
	char fenced_prefix[600];  /* pgwarden/fenced/<member>: fenced members, for unfence */

	struct pgw_lease lease;
	struct pgw_dcs dcs; /* effective dynamic settings: bootstrap.dcs, then the config key */
	/* standby_cluster as applied (pgw_standby_effective), and what of it was refused */
	struct pgw_standby_cluster standby;
	char standby_refused[256];
	char *dcs_seen; /* the config key text last applied (or refused) */
	bool etcd_ok;
	double dcs_last_seen;
	struct pgw_cluster cluster;
	struct pgw_pg_state pgst;

	char scheduled_restart[64]; /* the pending scheduled restart's time, "" none */
	bool ready_sent;            /* systemd was told READY=1 */

	struct pgw_action last;
	const char *member_state; /* overrides the observed state while an action runs */
	int64_t loop_mono_ms;
	int64_t leader_gone_rev;    /* the leader key was deleted at this revision (watch, or this
	                               node's revoke) */
	int64_t probe_warned_ms;    /* the last "leader answers neither" warning (mono ms) */
	struct pgw_prober *prober;  /* fast takeover: probes the leader (started when first
	                               needed) */
	int64_t replica_started_ms; /* PostgreSQL started or pointed at a leader as a replica */

	/* slots (ha_act.c): unwanted physical slots a primary keeps member_slots_ttl, the
	 * permanent slots' positions for the status key ("{...}", NULL none), the last
	 * warning about them */
	struct pgw_slot_absent slot_absent[PGW_SLOT_ABSENT_MAX];
	int nslot_absent;
	char *status_slots;
	int64_t slot_warned_ms;
	struct pgw_cbrun *cb; /* postgresql.callbacks under way (callbacks.h) */
	char cb_role[16];     /* the role the last callback announced ("" none yet): a start in
	                         another role is on_role_change, as in Patroni */
	bool won_key;         /* this cycle's action took the leader key (vip) */
};

struct pgw_request;
struct pgw_prober;
struct pgw_rq_verdict;

/* ha.c (the loop) */
int64_t ha_mono_ms(void);
double ha_wall_now(void);
bool ha_pg_is_primary(const struct pgw_pg_state *st);
/* This node holds the leader key of a standby cluster and runs as a standby. */
bool ha_standby_leader(const struct ha *h);
int ha_op_timeout(const struct ha *h);
static inline int64_t ha_clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}
int64_t ha_fence_budget_ms(const struct ha *h);
/* Renew (or grant) the lease; 0, or the etcd client's error (etcd.h). */
int ha_renew_lease(struct ha *h);
void ha_observe_pg(struct ha *h);
void ha_build_obs(struct ha *h, struct pgw_obs *o, bool shutdown);
bool ha_arm_watchdog(struct ha *h);

/* ha_cb.c (the operator's commands around PostgreSQL's actions) */
/* "master" (Patroni 3's word, as the member key) or "replica": for the callbacks */
const char *ha_cb_role(const struct ha *h);
void ha_cb_fire(struct ha *h, enum pgw_cb which, const char *role);
/* PostgreSQL started in role: on_start, or on_role_change when the role changed. */
void ha_cb_started(struct ha *h, const char *role);
/*
 * Stop PostgreSQL: before_stop first (bounded; skipped when writes must end at once),
 * then pg_ctl stop (renewing the lease meanwhile when held), then on_stop when it was
 * running and `callbacks` (a restart announces on_restart instead).
 */
int ha_stop_pg(struct ha *h, const char *mode, bool held, bool callbacks);
/* pg_ctl reload, then on_reload. */
int ha_reload_pg(struct ha *h);
/* postgresql.pre_promote: true to go on promoting; false when it vetoed (recorded in
 * the state, key released) or the lease leaves no time to run it. */
bool ha_pre_promote(struct ha *h);

/* ha_act.c (carrying out decisions) */
/* Renew the lease holding the key while an action takes long (pets on success);
 * false once that lease is lost or no longer allows writes. */
bool ha_keep_key_lease(void *arg);
void ha_give_up_key(struct ha *h);
bool ha_renewed(struct ha *h);
int ha_configure_replica(struct ha *h, const struct pgw_action *a);
void ha_act_clone(struct ha *h, const struct pgw_action *a);
bool ha_watching_leader(const struct ha *h);
void ha_probe_leader(struct ha *h);
int64_t ha_probe_interval_ms(const struct ha *h);
void ha_act(struct ha *h, const struct pgw_action *a, bool holds);
/* Rewrite postgresql.conf for the current role (with the dynamic parameters), reload. */
void ha_refresh_pg_config(struct ha *h);

/* ha_vip.c (the virtual IP: the core decides, these carry it out) */
void ha_vip_observe(struct ha *h);
/* Remove the address now if the core says so (o, a NULL: between observations). */
void ha_vip_guard(struct ha *h, const struct pgw_obs *o, const struct pgw_action *a);
/* After the action: add it (and announce it) if the core says so. */
void ha_vip_after(struct ha *h, const struct pgw_action *a, bool holds);
void ha_vip_release(struct ha *h);

/* ha_serve.c (requests and configuration) */
void ha_apply_dynamic_config(struct ha *h);
int ha_reload_config(struct ha *h, char *msg, size_t len);
void ha_serve_request(struct ha *h, bool healthy);

/* ha_publish.c (member key, REST snapshot, systemd) */
const char *ha_observed_state(const struct ha *h);
void ha_publish_member(struct ha *h);
void ha_log_decision(struct ha *h, const struct pgw_action *a);
void ha_publish_snapshot(struct ha *h, bool holds);
void ha_notify_systemd(struct ha *h, const struct pgw_action *a, bool holds);
void ha_check_systemd_watchdog(const struct ha *h);

#endif
