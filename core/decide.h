/*
 * decide.h - the HA decision core: a pure function from one observation of the
 * cluster (etcd), the local PostgreSQL and the lease to the one action the HA
 * loop performs next.  No I/O, no globals, no clock reads: the observation
 * carries the time.
 *
 * The rules are a table (decide.c) evaluated top to bottom; the first row whose
 * guard holds gives the action, and every row carries a reason, which goes to
 * the log and the REST API.  `pgwarden --print-rules` prints the table, and
 * `--print-rules=dot` as a Graphviz graph.
 */
#ifndef PGW_DECIDE_H
#define PGW_DECIDE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cluster_types.h"
#include "lease.h"
#include "pg_types.h"

enum pgw_action_kind {
	PGW_ACT_NONE,          /* nothing to do: healthy, or waiting for something */
	PGW_ACT_BOOTSTRAP,     /* take leader + initialize keys, initdb, start as primary */
	PGW_ACT_CLONE,         /* pg_basebackup from the leader, then start as a replica */
	PGW_ACT_START_REPLICA, /* write standby configuration (following the leader if any), start
	                        */
	PGW_ACT_FOLLOW,        /* running replica: point primary_conninfo at the leader, reload */
	PGW_ACT_REWIND,        /* stopped, diverged from the leader: pg_rewind, start as replica */
	PGW_ACT_ACQUIRE,       /* take the leader key (create-if-absent txn), then promote */
	PGW_ACT_PROMOTE,       /* we hold the key and PostgreSQL is in recovery: promote */
	PGW_ACT_LEADER_DUTIES, /* healthy primary holding the key: slots, status key */
	PGW_ACT_START_PRIMARY, /* we hold the key, PostgreSQL is down: start it in place */
	PGW_ACT_DEMOTE_NOW,    /* writes must stop at once: immediate shutdown */
	PGW_ACT_DEMOTE,        /* orderly demotion: fast shutdown, rejoin as replica later */
	PGW_ACT_RELEASE,       /* stop PostgreSQL and give up the leader key */
	PGW_ACT_SHUTDOWN,      /* daemon stopping: stop PostgreSQL, release the key */
	PGW_ACT_HANDOVER, /* switchover: stop PostgreSQL, publish the final position, release the
	                     key */
	PGW_ACT_CANCEL_SWITCHOVER, /* remove a switchover request that cannot be carried out */
	PGW_ACT_FENCE, /* power the lost leader (target) off through its BMC, confirmed, audited */
	PGW_ACT_RELEASE_FENCE_LOCK, /* delete this node's fence lock: it is not fencing */
	PGW_ACT_COUNT
};

struct pgw_obs {
	int64_t now_ms;  /* CLOCK_MONOTONIC */
	double wall_now; /* unix time, only to compare with a scheduled switchover */
	const char *self;
	bool shutdown_requested;

	struct pgw_lease lease;
	int64_t margin_ms; /* S */

	bool etcd_ok;                      /* the cluster read of this cycle succeeded */
	const struct pgw_cluster *cluster; /* valid only when etcd_ok */

	const struct pgw_pg_state *pg;
	/* PostgreSQL may be accepting writes even if this observation could not see it
	 * (running, not answering, last seen as primary). */
	bool may_write;
	bool cd_valid; /* cd holds pg_controldata of the (stopped) data directory */
	struct pgw_controldata cd;

	/* This node as a candidate, with fresh values (position = max(received, replayed)). */
	struct pgw_member self_member;

	int64_t leader_optime; /* the leader's last published WAL position, -1 unknown */
	int64_t max_lag;       /* maximum_lag_on_failover */
	bool nofailover;
	/* watchdog.mode required and the watchdog cannot be armed with W <= TTL - S
	 * (rule 4): this node must not take, or keep, the leader key. */
	bool watchdog_unusable;
	/* fencing.mode required: a leader lost unplanned is powered off, confirmed, before
	 * anyone promotes (S3); cluster->last_leader says who it was and whether it left
	 * cleanly or was fenced already. */
	bool fencing_required;
	/* Fast takeover (rule 8): the leader answered neither on PostgreSQL nor on its REST
	 * API for leader_unreachable_ms (0: it answers); fencing.fast_takeover_after in ms,
	 * 0 = off. */
	int64_t leader_unreachable_ms;
	int64_t fast_takeover_after_ms;
	/* ... and for how long etcd's readings prove its lease unrenewed (step.h; 0: not
	 * proven): a leader that only the replicas cannot reach still renews, and is never
	 * fenced */
	int64_t leader_unrenewed_ms;
	/* S3 without fencing: the lost leader (cluster->last_leader) kept an armed watchdog
	 * to the end, so it was reset before its lease expired (step.c remembers what its
	 * member key said; the record says what it had when it took the key). */
	bool lost_leader_watchdog;
	/* the lost leader was seen back as a running replica since it lost the key (step.h) */
	bool lost_leader_back;
	/* PostgreSQL runs as a replica on a data directory that ran as primary (step.h) */
	bool ran_as_primary;
	/* this node's data forked off the leader's history (pgw_diverged), and, while
	 * PostgreSQL runs, it has not streamed for PGW_DIVERGED_CONFIRM_MS: rewind it */
	bool diverged;
	/* failover.unprotected (local file only): promote after a lost leader's lease
	 * expired even when nothing bounds it (Patroni's behaviour; S1 may break). */
	bool unprotected_failover;
	/* Durability: the election compares positions from member keys; one published
	 * before the leader was lost may be older than what its replica received since.
	 * Keys with mod_revision <= positions_after_rev are not trusted for that (0: all). */
	int64_t positions_after_rev;
	/* how long this node has seen no leader (0: a leader, or just now), and loop_wait:
	 * a member still starting PostgreSQL is waited for up to 2 * loop_wait + 1 s */
	int64_t no_leader_for_ms;
	int loop_wait_s;
	/* the mod_revision of the last leader key this node saw (0 unknown) */
	int64_t leader_rev;
	/* postgresql.pre_promote vetoed this node's promotion, within
	 * pgw_pre_promote_holdoff_ms() and while no other member leads (step.h) */
	bool pre_promote_vetoed;
	bool use_pg_rewind;
	bool rewind_failed; /* the last rewind from the current leader failed */
	/* postgresql.remove_data_directory_on_rewind_failure / _on_diverged_timelines set
	 * to false (local file): an old primary that cannot be rewound keeps its data
	 * directory and waits for an operator's reinit instead of being re-cloned */
	bool keep_data_on_rewind_failure;
	bool keep_data_without_rewind;
	/* a create_replica_methods method works without a leader (no_leader) */
	bool clone_without_leader;
	int64_t primary_down_since_ms; /* holding the key with PostgreSQL down since; 0 = up */
	int primary_start_timeout_s;
	/* standby_cluster in the dynamic configuration: this cluster follows a remote
	 * primary; its leader stays a standby ("standby leader") of standby_host:port
	 * ("" = none: restore_command only) instead of promoting */
	bool standby_cluster;
	const char *standby_host;
	int standby_port;
	/* tags.replicatefrom (local file): the member to stream from instead of the leader,
	 * NULL or "" = the leader (pgw_upstream) */
	const char *replicatefrom;
	/* tags.nostream (local file): no primary_conninfo at all, WAL only through
	 * restore_command (Patroni 3.2's meaning) */
	bool nostream;
	/* check_timeline (dynamic configuration): a node whose timeline is behind the
	 * cluster's (cluster->history_timeline) does not stand for election */
	bool check_timeline;
};

struct pgw_action {
	enum pgw_action_kind kind;
	const char *rule;          /* the table row's name */
	char reason[256];          /* the row's reason, with names and figures filled in */
	char target[PGW_NAME_MAX]; /* leader to follow/clone/rewind from, or better candidate */
	char target_host[256];
	int target_port;
	/* standby cluster: the target is the remote primary (standby_cluster.host:port);
	 * ACQUIRE/BOOTSTRAP make this node the standby leader, never a primary */
	bool standby_leader;
};

/*
 * Has this node's data forked off the leader's history?  Its timeline T is older than
 * the leader's, and it holds WAL past the point where T ended in the history key (it
 * received from an old primary what the new leader never had, or ran as that primary):
 * PostgreSQL then never streams from the leader again, only pg_rewind or a clone
 * helps.  T and the position are PostgreSQL's while it runs (a WAL receiver's timeline,
 * else the last checkpoint's, which may lag: see PGW_DIVERGED_CONFIRM_MS), else the
 * control file's.  False when the history does not say where T ended.
 */
bool pgw_diverged(const struct pgw_obs *o, uint64_t *fork_lsn);
/* The control file of the stopped server says it ran as primary (shut down, or crashed,
 * in production). */
bool pgw_control_file_primary(const struct pgw_obs *o);
#define PGW_DIVERGED_CONFIRM_MS 15000

/* How long a node whose pre_promote vetoed its promotion stays out of the election:
 * 2 * loop_wait + 1 s, time for another member (the old leader of a vetoed switchover)
 * to take over; then it stands again and runs pre_promote again. */
int64_t pgw_pre_promote_holdoff_ms(int loop_wait_s);

void pgw_decide(const struct pgw_obs *o, struct pgw_action *a);

const char *pgw_action_name(enum pgw_action_kind k);

/* Does this node hold the leader key with its current lease? */
bool pgw_obs_holds_leader(const struct pgw_obs *o);

/*
 * The election: is `self` the best eligible candidate among the members (self's
 * entry replaced by o->self_member)?  On false, *why says which member is better
 * or why self is not eligible.
 */
bool pgw_is_best_candidate(const struct pgw_obs *o, char *why, size_t whylen);
bool pgw_candidate_eligible(const struct pgw_member *m, int64_t leader_optime, int64_t max_lag,
                            char *why, size_t whylen);

/*
 * Cascading replication (tags.replicatefrom): the member a replica named `self`, whose
 * tag names `replicatefrom` ("" or NULL: none), streams from.  The named member when its
 * key (on a lease) shows a running replica that streams (or is tagged nostream: it
 * replays from the archive and serves what it has), on the leader's timeline, and
 * the chain of replicatefrom tags from it does not lead back to `self` (a loop would
 * leave every member on it without a source); otherwise the leader's member (NULL when
 * its key is missing).  *why says why the named member was not taken ("" when it was,
 * or none is named).
 */
const struct pgw_member *pgw_upstream(const struct pgw_cluster *c, const char *self,
                                      const char *replicatefrom, char *why, size_t whylen);

/*
 * check_timeline: is this node's timeline behind the cluster's (the history key's
 * newest row + 1)?  False when check_timeline is off or the history tells no timeline;
 * true when this node's timeline is unknown (Patroni: "can not figure out my timeline").
 */
bool pgw_timeline_behind(const struct pgw_obs *o, char *why, size_t whylen);

/*
 * S3: must the last leader be fenced before this node may promote?  True when
 * fencing is required, etcd shows no leader, and the leader record names another
 * member that neither released its key nor was fenced (or the record is unreadable:
 * in doubt, fence or do not promote).
 */
bool pgw_fence_needed(const struct pgw_obs *o);

/* How long the member that fenced the last leader has to take over before the
 * others elect among themselves (it fenced because it was the best candidate). */
#define PGW_FENCER_GRACE_S 30

/* Print the rule table as text (dot == false) or a Graphviz digraph. */
void pgw_print_rules(FILE *out, bool dot);

#endif
