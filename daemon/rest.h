/*
 * rest.h - the REST API (libmicrohttpd, its own thread).  It never takes a
 * decision and never blocks the HA loop: the loop publishes an immutable
 * snapshot after every cycle (pgw_rest_publish copies it under a mutex), and
 * request handlers answer from the latest snapshot only.
 *
 * Endpoints (status codes as in Patroni's contract): GET/HEAD/OPTIONS on
 *   /, /primary, /master, /read-write, /leader, /replica (?lag=N[unit],
 *   ?tag_KEY=VALUE), /read-only, /health, /liveness, /readiness, /patroni.
 * Every role endpoint answers with the JSON body of GET /patroni.
 *   /standby-leader, /standby_leader: the leader of a standby cluster (standby.h);
 *   /async, /asynchronous: as /replica.
 *   /cluster, /config: the published cluster_json / config_json (503 with
 *   {"error": ...} while NULL); /history: history_json ("[]" while NULL);
 *   /metrics: Prometheus text (text/plain; version=0.0.4), see pgw_rest_metrics_text.
 */
#ifndef PGW_REST_H
#define PGW_REST_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "netaddr.h"
#include "pg.h"
#include "fencer.h"
#include "wdguard.h"

enum pgw_role { PGW_ROLE_UNINITIALIZED, PGW_ROLE_PRIMARY, PGW_ROLE_REPLICA };

#define PGW_MAX_TAGS          8
#define PGW_REST_MEMBER_ADDRS 32 /* members' addresses for allowlist_include_members */

struct pgw_snapshot {
	char scope[128];
	char name[128];
	char version[32];       /* pgwarden version */
	enum pgw_role role;     /* from the local PostgreSQL (in recovery or not) */
	bool holds_leader_key;  /* this node holds the leader key with its live lease */
	bool standby_leader;    /* ... of a standby cluster, running as a standby (standby.h) */
	bool cluster_unlocked;  /* no leader key in the last read */
	const char *state_str;  /* "running", "stopped", "starting", "crashed", ... (static) */
	struct pgw_pg_state pg; /* the last observation of PostgreSQL */
	int64_t leader_optime;  /* leader's last published WAL position, -1 unknown */
	double dcs_last_seen;   /* unix time of the last successful etcd read, 0 never */
	int64_t loop_mono_ms;   /* CLOCK_MONOTONIC ms of the last completed HA cycle */
	int loop_wait;          /* s, for /liveness */
	int ttl;                /* s */
	bool paused;
	bool pending_restart;
	char scheduled_restart[64];     /* ISO 8601 of a scheduled restart, "" none */
	bool watchdog_failed;           /* mode required and not usable (Patroni's flag) */
	struct pgw_wd_status watchdog;  /* mode, armed, W, why it failed */
	struct pgw_fence_state fencing; /* the last fence this node tried */
	bool noloadbalance;
	bool nofailover;
	bool sync_standby; /* a synchronous standby of the current leader (sync key) */
	int failover_priority;
	struct {
		char key[32];
		char value[128];
	} tags[PGW_MAX_TAGS]; /* all tags as strings */
	int ntags;
	char last_action[64];  /* the last decision's action name */
	char last_reason[256]; /* and its reason */
	/*
	 * Bodies of GET /cluster, /history and /config, rendered by the HA loop from its
	 * last etcd read (borrowed: pgw_rest_publish copies them).  NULL when unknown.
	 */
	const char *cluster_json;
	const char *history_json;
	const char *config_json;
	int64_t lease_budget_ms; /* D - S - now when published (negative: past); 0 without lease */
	int64_t writes_until_ms; /* CLOCK_MONOTONIC ms of D - S (rule 2); 0 without lease */
	bool has_lease;
	/* restapi.allowlist_include_members: the literal addresses of the api_urls of the
	 * members whose keys carry a lease, one address each (never a network) */
	struct pgw_cidr member_addrs[PGW_REST_MEMBER_ADDRS];
	int nmember_addrs;
};

struct pgw_rest;

/* What the restapi section sets besides listen (all optional). */
struct pgw_rest_options {
	const struct pgw_rest_tls_config *tls;  /* HTTPS when tls->certfile is set */
	int backlog;                            /* restapi.request_queue_size; 0: MHD's */
	const char *ciphers;                    /* restapi.ciphers (OpenSSL syntax); NULL */
	const struct pgw_kvlist *http_headers;  /* restapi.http_extra_headers */
	const struct pgw_kvlist *https_headers; /* restapi.https_extra_headers (TLS only) */
	/* restapi.allowlist (addresses, CIDRs, host names resolved now) and
	 * allowlist_include_members: with either, only those may call the unsafe methods */
	const struct pgw_strlist *allowlist;
	bool allowlist_include_members;
};

/*
 * Start listening on host:port (a literal address), over HTTPS when opts->tls and its
 * certfile are set; opts may be NULL.  NULL with err filled on failure (naming the key
 * and file).
 */
struct pgw_rest *pgw_rest_start(const char *listen, const struct pgw_rest_options *opts, char *err,
                                size_t errlen);
/* The TCP port actually bound (useful with port 0 in tests). */
int pgw_rest_port(const struct pgw_rest *r);
void pgw_rest_publish(struct pgw_rest *r, const struct pgw_snapshot *snap);

/*
 * The handler of POST, PUT, PATCH and DELETE requests (switchover, failover,
 * config, ...), called from a REST thread with the path, the body (at most
 * 64 KiB, NUL-terminated) and where to put a malloc'd response body (JSON or
 * plain text); returns the HTTP status.  It may block (a switchover waits for
 * the new leader), so it must not be shared with the HA loop's state.
 */
typedef int (*pgw_rest_write_fn)(void *arg, const char *method, const char *path, const char *body,
                                 size_t len, char **resp);
/* Register it (before requests arrive); user and password, when both are set, make
 * those requests require HTTP basic auth (401 otherwise). */
void pgw_rest_set_writer(struct pgw_rest *r, pgw_rest_write_fn fn, void *arg, const char *user,
                         const char *password);
/* GET /fencing serves the last records of this audit log (set before requests arrive). */
void pgw_rest_set_audit_log(struct pgw_rest *r, const char *path);
/*
 * restapi.protect_reads: GET /cluster, /history, /config and /fencing (the topology,
 * the configuration, BMC addresses) need the writer's basic auth too; the health
 * checks (/primary, /replica, /health, ...) and /patroni stay open for HAProxy.
 */
void pgw_rest_protect_reads(struct pgw_rest *r, bool on);
void pgw_rest_stop(struct pgw_rest *r);

/*
 * Pure helpers, exposed for unit tests: the status code a GET of `path` with
 * query arguments would get from this snapshot (`now_mono_ms` for /liveness),
 * and the JSON body of /patroni (malloc'd).
 *   query: "lag=10MB&tag_dc=east" style string (URL-encoded) or NULL.
 *   s: NULL means "nothing published yet" (503 for every path).
 * Over HTTP, other methods than GET/HEAD/OPTIONS answer 405, a body larger than
 * 64 KiB 413, and an unknown path 404 with {"error": ...}.
 */
int pgw_rest_status_for(const struct pgw_snapshot *s, const char *path, const char *query,
                        int64_t now_mono_ms);
char *pgw_rest_patroni_json(const struct pgw_snapshot *s);
/*
 * The body of GET /metrics (malloc'd): Patroni's patroni_* gauges and counters, each with
 * # HELP and # TYPE, labelled {scope="...",name="..."}, plus pgwarden_holds_leader_key,
 * pgwarden_lease_deadline_margin_seconds (only with a lease) and
 * pgwarden_replication_lag_bytes (only on a replica with a known leader optime).
 */
char *pgw_rest_metrics_text(const struct pgw_snapshot *s);

#endif
