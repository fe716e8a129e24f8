/*
 * cluster.h - the cluster as read from etcd (one range read of the scope
 * prefix), and the JSON of the keys pgwarden writes, in Patroni's layout:
 *   <namespace><scope>/leader          plain member name, on the leader's lease
 *   <namespace><scope>/members/<name>  member JSON, on the member's lease
 *   <namespace><scope>/initialize      system identifier (decimal string)
 *   <namespace><scope>/history         [[tl, lsn, reason, timestamp, leader], ...]
 *   <namespace><scope>/status          {"optime": N}
 *   <namespace><scope>/config          dynamic configuration JSON
 *
 * Parsing never trusts etcd: a member whose JSON is malformed is left out
 * (it cannot be a candidate) and reported in `warnings`; a malformed status or
 * history is treated as unknown.  Nothing read here can cause an action by
 * being malformed.
 */
#ifndef PGW_CLUSTER_H
#define PGW_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_types.h"
#include "etcd.h"

/* What the record's JSON says (malloc'd), for the writer. */
char *pgw_leader_record_json(const struct pgw_leader_record *lr);
bool pgw_leader_record_parse(const char *json, struct pgw_leader_record *lr);

/* prefix: "<namespace><scope>/" (with the trailing slash). */
int pgw_cluster_parse(const struct pgw_etcd_range *r, const char *prefix, struct pgw_cluster *out);
void pgw_cluster_clear(struct pgw_cluster *c);
/* The failover key's JSON; leader/candidate/scheduled_at omitted when NULL or "". */
char *pgw_failover_json(const char *leader, const char *candidate, const char *scheduled_at);

/* The sync key: {"leader": leader, "sync_standby": "a,b"} (null when n == 0). */
char *pgw_sync_key_json(const char *leader, const char (*names)[PGW_NAME_MAX], int n);
/* Parse the sync key's JSON into *k; false (and k->malformed) when unusable. */
bool pgw_sync_key_parse(const char *json, struct pgw_sync_key *k);
/* The synchronous settings of a config key's JSON object (Patroni's forms: true/false
 * or "on"/"off" for the modes); false with err when a value is unusable. */
struct json_object;
bool pgw_sync_conf_parse(struct json_object *config, struct pgw_sync_conf *sc, char *err,
                         size_t errlen);

/* Parse the failover key's JSON into *f; false (and f->malformed) when unusable. */
bool pgw_failover_parse(const char *json, struct pgw_failover *f);
/* "2026-11-23T12:00:00+01:00" (also 'Z', fractions, a space for 'T') -> unix time. */
bool pgw_parse_iso8601(const char *s, double *out);

/* Parse one member JSON value into *m (name not touched); false when malformed. */
bool pgw_member_parse(const char *json, size_t len, struct pgw_member *m);

/* What this node publishes in members/<name>. */
struct pgw_member_info {
	const char *conn_host;
	int conn_port;
	const char *api_host;
	int api_port;
	bool api_https; /* the REST API speaks TLS: api_url is https:// */
	/* postgresql.proxy_address: "proxy_url": postgres://host:port/postgres (NULL: none) */
	const char *proxy_host;
	int proxy_port;
	const char *state;
	const char *role;
	const char *version;
	int64_t xlog_location;           /* -1 = omit */
	int64_t receive_lsn, replay_lsn; /* -1 = omit */
	int timeline;                    /* 0 = omit */
	bool streaming;
	bool pending_restart;
	const char *scheduled_restart; /* ISO 8601 of a scheduled restart, NULL none */
	/* pgwarden's addition: "watchdog": {"mode", "armed", "timeout", "failed"}, so a
	 * candidate knows the old leader's reset bound.  NULL mode: omitted. */
	const char *wd_mode;
	bool wd_armed, wd_failed;
	int wd_timeout;
	/* pgwarden's: "bmc": this node's BMC, no credentials (NULL address: omitted) */
	const char *bmc_address;
	bool bmc_lanplus;
	int bmc_cipher_suite;
	const char *bmc_privilege;
	/* pgwarden's: "fencing": a fence this node tried that failed (NULL: omitted) */
	const char *fence_target, *fence_reason;
	/* pgwarden's: "failover_blocked": why this node, a candidate, does not promote (S3) */
	const char *failover_blocked;
	bool pause; /* maintenance mode is on */
	bool nofailover, noloadbalance, clonefrom, nosync;
	int failover_priority;
	const char *replicatefrom; /* tags.replicatefrom, NULL or "" = none */
	bool nostream;
};
/* malloc'd compact JSON */
char *pgw_member_json(const struct pgw_member_info *mi);

/* malloc'd JSON of history with one more line appended (old may be NULL or malformed:
 * then the new history starts with that line). */
char *pgw_history_append(const char *old, int old_timeline, uint64_t switch_lsn, const char *reason,
                         const char *timestamp, const char *new_leader);
/* The same, keeping only the newest max_rows lines (max_timelines_history; 0 = all). */
char *pgw_history_append_max(const char *old, int old_timeline, uint64_t switch_lsn,
                             const char *reason, const char *timestamp, const char *new_leader,
                             int max_rows);
/* Parse "postgres://host:port/..." into host and port. */
bool pgw_parse_conn_url(const char *url, char *host, size_t hostlen, int *port);

#endif
