/*
 * cluster_types.h - the cluster as the decision core sees it: members, the leader,
 * the failover request, pgwarden's leader record and fence lock, as plain data.
 * daemon/cluster.c fills it from one etcd range read (and never trusts etcd);
 * cluster_view.c answers the questions every layer asks of it.
 */
#ifndef PGW_CLUSTER_TYPES_H
#define PGW_CLUSTER_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGW_MAX_MEMBERS 32
#define PGW_NAME_MAX    64
#define PGW_SYNC_MAX    8 /* synchronous standbys at most (synchronous_node_count) */

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
	bool nosync; /* tag nosync: never a synchronous standby */
	/* tag replicatefrom: the member it streams from (cascading), "" = the leader */
	char replicatefrom[PGW_NAME_MAX];
	bool nostream; /* tag nostream: replays WAL from the archive only, never streams */
	/* synchronous mode is on and the sync key names neither it as a synchronous
	 * standby nor as the leader it belongs to: it may not be promoted (S2;
	 * pgw_cluster_derive sets it) */
	bool sync_blocked;
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

/* The dynamic configuration's synchronous replication settings (Patroni's keys). */
struct pgw_sync_conf {
	bool mode;   /* synchronous_mode */
	bool strict; /* synchronous_mode_strict: block commits rather than go async */
	int count;   /* synchronous_node_count, 1 by default */
};

/*
 * The sync key ({"leader": name, "sync_standby": "a,b"}): the leader's synchronous
 * standbys, written before it relies on them.  In synchronous mode only a member it
 * names (or the leader it names) may be promoted.
 */
struct pgw_sync_key {
	bool present;
	bool malformed; /* present but unreadable: nobody may be promoted */
	char leader[PGW_NAME_MAX];
	char members[PGW_SYNC_MAX][PGW_NAME_MAX];
	int n;
	int64_t mod_revision;
};

#define PGW_FORKS_MAX        64
#define PGW_STATUS_SLOTS_MAX 32

/* A slot position the leader published in the status key ("slots": {name: lsn}). */
struct pgw_status_slot {
	char name[PGW_NAME_MAX];
	uint64_t lsn;
};

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
	/* the status key's slots: valid slot names with positions only */
	struct pgw_status_slot status_slots[PGW_STATUS_SLOTS_MAX];
	int nstatus_slots;
	char *history; /* raw JSON of the history key (malloc'd), NULL when absent */
	/* the history key's rows [timeline, switch_lsn, ...]: timeline forks[i].timeline ended
	 * at forks[i].lsn (the newest PGW_FORKS_MAX rows; malformed rows are left out) */
	struct pgw_fork {
		int timeline;
		uint64_t lsn;
	} forks[PGW_FORKS_MAX];
	int nforks;
	/* rows in the key, all well formed (-1 otherwise).  pgwarden appends one row per
	 * promotion, so when it is the leader's timeline - 1, row k (from 0) is where the
	 * parent of timeline k + 2 ended, and the leader's line of descent can be walked */
	int history_rows;
	/* the cluster's timeline as the history key tells it: its newest row's timeline + 1
	 * (Patroni's cluster timeline, for check_timeline); 0 unknown (no or bad history) */
	int history_timeline;
	bool has_config;
	char *config; /* raw JSON of the config key (malloc'd), NULL when absent */
	bool paused;  /* config has "pause": true */
	struct pgw_failover failover;
	struct pgw_leader_record last_leader; /* "pgwarden/leader" */
	bool fence_locked;                    /* "pgwarden/fence-lock" exists */
	char fence_lock_holder[PGW_NAME_MAX];
	int64_t max_lag; /* maximum_lag_on_failover from the config key (1 MiB default) */
	struct pgw_sync_conf sync_conf; /* from the config key */
	struct pgw_sync_key sync;       /* the sync key */
	/* no leader: the revision at which its key was deleted, when a watch saw it (0
	 * unknown); keys published after it postdate the leader's loss */
	int64_t leader_gone_rev;
	char warnings[512]; /* what was ignored, for the log */
};

const struct pgw_member *pgw_cluster_member(const struct pgw_cluster *c, const char *name);
/* The leader's member entry, or NULL. */
const struct pgw_member *pgw_cluster_leader_member(const struct pgw_cluster *c);
/* The leader's last known WAL position: max(status optime, the leader member's
 * xlog_location); -1 when neither is known. */
int64_t pgw_cluster_leader_optime(const struct pgw_cluster *c);
/* Bytes m is behind that position (at least 0); -1 when either side is unknown. */
int64_t pgw_cluster_lag(const struct pgw_cluster *c, const struct pgw_member *m);
/* Does the sync key name `name` as a synchronous standby? */
bool pgw_sync_key_lists(const struct pgw_sync_key *k, const char *name);
/* Synchronous mode: may `name` be promoted (S2)?  Always true without it. */
bool pgw_sync_allows(const struct pgw_cluster *c, const char *name);
/* Is `name` a synchronous standby of the current leader (synchronous_mode on, the
 * sync key the leader's and naming it)?  What /sync, /cluster and list show. */
bool pgw_sync_standby_of(const struct pgw_cluster *c, const char *name);
/* Derived facts, after a read: each member's sync_blocked. */
void pgw_cluster_derive(struct pgw_cluster *c);

#endif
