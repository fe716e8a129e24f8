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

#include "etcd.h"

#define PGW_MAX_MEMBERS 32
#define PGW_NAME_MAX    64

struct pgw_member {
	char name[PGW_NAME_MAX];
	char role[24];         /* "master", "primary", "replica", "uninitialized" */
	char state[32];        /* "running", "stopped", "starting", ... */
	int64_t xlog_location; /* WAL position: primary's write, replica's received/replayed; -1
	                          unknown */
	int timeline;          /* 0 unknown */
	char conn_host[256];   /* from conn_url */
	int conn_port;
	char api_url[256];
	bool nofailover;
	bool noloadbalance;
	int failover_priority;
	bool streaming;             /* replication_state == "streaming" */
	bool watchdog_blocked;      /* "watchdog": mode required and failed: it may not lead */
	bool watchdog_armed;        /* "watchdog": armed, with a timeout */
	char fence_failure[200];    /* "fencing": "TARGET: reason" of its failed fence, "" none */
	char failover_blocked[256]; /* "failover_blocked": why it does not promote, "" none */
	int64_t mod_revision;
	int64_t lease;
};

/*
 * The failover key: a switchover ({"leader": old, "member": new, "scheduled_at": t}) or a
 * manual failover ({"member": new}) requested by pgwardenctl or the REST API.
 */
struct pgw_failover {
	bool present;
	bool malformed;            /* present but unusable: ignored (and reported) */
	char leader[PGW_NAME_MAX]; /* "" = any leader */
	char member[PGW_NAME_MAX]; /* "" = any healthy replica */
	double scheduled_at;       /* unix time; 0 = now */
	int64_t mod_revision;
};

/*
 * pgwarden's record of the last leader (key "pgwarden/leader", no lease): written in
 * the same transaction that creates the leader key, marked released in the one that
 * deletes it on a clean release, and marked fenced by the node that confirmed its
 * power off.  A leader key that vanished while its record is neither released nor
 * fenced was lost unplanned: with fencing required, its node is fenced before any
 * promotion (ARCHITECTURE.md S3).  The BMC is the leader's own, without credentials.
 */
struct pgw_leader_record {
	bool present;
	bool malformed;
	char member[PGW_NAME_MAX];
	int64_t lease;
	bool released;                /* it gave the key up itself: no fence needed */
	char fenced_by[PGW_NAME_MAX]; /* "" = not fenced */
	double fenced_at;             /* unix time of the confirmed fence, 0 unknown */
	char bmc_address[256];        /* "" = it published no BMC */
	bool bmc_lanplus;
	int bmc_cipher_suite;
	char bmc_privilege[16];
	/* "watchdog": {"armed": true, "timeout": W}: it took the key with its watchdog armed */
	bool watchdog_armed;
	int watchdog_timeout;
	int64_t mod_revision;
};

/* What the record's JSON says (malloc'd), for the writer. */
char *pgw_leader_record_json(const struct pgw_leader_record *lr);
bool pgw_leader_record_parse(const char *json, struct pgw_leader_record *lr);

struct pgw_cluster {
	int64_t revision; /* header revision of the read */
	bool initialized; /* initialize key present */
	char sysid[32];   /* its value; "" while a bootstrap runs */
	bool has_leader;
	char leader[PGW_NAME_MAX];
	int64_t leader_lease;
	int64_t leader_mod_revision;
	struct pgw_member members[PGW_MAX_MEMBERS];
	int nmembers;
	int64_t optime; /* status key optime, -1 unknown */
	char *history;  /* raw JSON of the history key (malloc'd), NULL when absent */
	bool has_config;
	char *config; /* raw JSON of the config key (malloc'd), NULL when absent */
	bool paused;  /* config has "pause": true */
	struct pgw_failover failover;
	struct pgw_leader_record last_leader; /* "pgwarden/leader" */
	bool fence_locked;                    /* "pgwarden/fence-lock" exists */
	char fence_lock_holder[PGW_NAME_MAX];
	char warnings[512]; /* what was ignored, for the log */
};

/* prefix: "<namespace><scope>/" (with the trailing slash). */
int pgw_cluster_parse(const struct pgw_etcd_range *r, const char *prefix, struct pgw_cluster *out);
void pgw_cluster_clear(struct pgw_cluster *c);
const struct pgw_member *pgw_cluster_member(const struct pgw_cluster *c, const char *name);
/* The leader's member entry, or NULL. */
const struct pgw_member *pgw_cluster_leader_member(const struct pgw_cluster *c);
/* The leader's last known WAL position: max(status optime, the leader member's
 * xlog_location); -1 when neither is known. */
int64_t pgw_cluster_leader_optime(const struct pgw_cluster *c);
/* maximum_lag_on_failover from the config key (Patroni's default, 1 MiB, when it is
 * absent or unusable): what the daemons elect with, for pgwardenctl and the REST API. */
int64_t pgw_cluster_max_lag(const struct pgw_cluster *c);
/* Bytes m is behind that position (at least 0); -1 when either side is unknown. */
int64_t pgw_cluster_lag(const struct pgw_cluster *c, const struct pgw_member *m);

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
};
/* malloc'd compact JSON */
char *pgw_member_json(const struct pgw_member_info *mi);

/* malloc'd JSON of history with one more line appended (old may be NULL or malformed:
 * then the new history starts with that line). */
char *pgw_history_append(const char *old, int old_timeline, uint64_t switch_lsn, const char *reason,
                         const char *timestamp, const char *new_leader);
/* Parse "postgres://host:port/..." into host and port. */
bool pgw_parse_conn_url(const char *url, char *host, size_t hostlen, int *port);

#endif
