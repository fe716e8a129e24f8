/*
 * rest.c - the REST API on libmicrohttpd; see rest.h.
 *
 * The HA loop publishes a snapshot with pgw_rest_publish(): it is copied under
 * the mutex together with its prebuilt bodies (/patroni and /metrics, built
 * here; /cluster, /history and /config, deep copies of the caller's strings),
 * so a request handler only takes the mutex to compute a status code (a pure
 * function of the snapshot) and to copy a string.  Nothing else blocks a handler.
 *
 * Requests: GET/HEAD/OPTIONS on the health-check endpoints.  POST, PUT, PATCH and
 * DELETE go to the writer the daemon registers (pgw_rest_set_writer), behind HTTP
 * basic auth when restapi.authentication is set; without a writer they answer 405.
 * A body announced larger than 64 KiB answers 413 (a chunked body that grows past
 * it makes us drop the connection).
 *
 * TLS (restapi.certfile): libmicrohttpd over GnuTLS with the certificate and key
 * read into memory at start.  With restapi.cafile the server asks for a client
 * certificate; verify_client decides which requests need one that verifies
 * against that CA (required: all, optional: the writes only, as in Patroni),
 * and the check is done here, per request, since MHD only asks for it.
 */
#include "rest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "log.h"
#include "tlsciphers.h"

#define REST_MAX_BODY        (64 * 1024)
#define REST_THREADS         2u /* one may wait in a switchover; the other serves checks */
#define REST_CONN_LIMIT      512u
#define REST_CONN_PER_IP     16u /* a slow client (slowloris) cannot take the rest */
#define REST_LOG_BURST       10  /* malformed-request messages logged per minute */
#define REST_CONN_TIMEOUT_S  10u
#define REST_HEADERS_MS      10000 /* a request's headers must all arrive within this */
#define REST_CONN_MEMORY     ((size_t)32 * 1024) /* bounds request line + headers */
#define REST_MAX_TAG_FILTERS 16
#define REST_ALLOW           "GET, HEAD, OPTIONS"
#define REST_STARTING_BODY   "{\"state\":\"starting\"}"
#define REST_JSON_TYPE       "application/json"
#define REST_METRICS_TYPE    "text/plain; version=0.0.4; charset=utf-8"
#define JSON_FLAGS           (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* The strings a published snapshot owns (each NULL when unknown). */
struct rest_bodies {
	char *patroni; /* pgw_rest_patroni_json(&snap), NULL when it could not be built */
	char *metrics; /* pgw_rest_metrics_text(&snap) */
	char *cluster; /* copies of snap->cluster_json, history_json, config_json */
	char *history;
	char *config;
};

/* Which body a GET answers with. */
enum rest_body { BODY_PATRONI, BODY_CLUSTER, BODY_HISTORY, BODY_CONFIG, BODY_METRICS };

struct pgw_rest {
	struct MHD_Daemon *mhd;
	int port;
	char listen[128];
	pgw_rest_write_fn write_fn; /* set once, before requests arrive */
	void *write_arg;
	char *auth_user, *auth_password;
	int verify_client;  /* enum pgw_verify_client; only with TLS */
	char *audit_log;    /* GET /fencing: the fencing audit log, NULL none */
	bool protect_reads; /* GET of the state endpoints needs auth_user too */
	/* libmicrohttpd's messages (one per malformed request): at most REST_LOG_BURST a
	 * minute, then one line saying how many were left out; guarded by mu */
	int64_t log_window_ms;
	int log_count, log_suppressed;
	char *tls_cert, *tls_key, *tls_ca, *tls_key_password; /* PEM text, kept for MHD */
	char tls_priority[640];                               /* restapi.ciphers, "" default */
	int backlog;                                          /* restapi.request_queue_size */
	struct pgw_kv *headers; /* restapi.http(s)_extra_headers (copies), set at start */
	size_t nheaders;
	/* restapi.allowlist (resolved at start) and, with allowlist_include_members, the
	 * published members' addresses (in the snapshot, under mu): who may write */
	bool allow_on, allow_members;
	struct pgw_cidr *allow;
	size_t nallow;
	pthread_mutex_t mu; /* guards everything below */
	bool have_snap;
	struct pgw_snapshot snap; /* its *_json point into `bodies` (or are NULL) */
	struct rest_bodies bodies;
	/*
	 * Connections whose request headers have not all arrived (slowloris: a byte a
	 * second never looks idle to MHD's timeout): shut down REST_HEADERS_MS after they
	 * opened.  An entry goes on MHD's CLOSED notice, which comes before MHD closes
	 * the socket, so a descriptor here is always the connection's own.
	 */
	pthread_mutex_t pend_mu;
	struct rest_pending {
		struct MHD_Connection *c;
		int fd;        /* -1 once shut down */
		int64_t since; /* CLOCK_MONOTONIC ms */
	} pend[REST_CONN_LIMIT];
	int npend;
	int64_t headers_ms;
};

/* Per-request state, between MHD's calls of the handler. */
struct rest_req {
	size_t body_len;
	char *body; /* kept for the writer (NUL-terminated), NULL otherwise */
};

/* The query arguments the checks look at, URL-decoded. */
struct rest_query {
	bool lag_given;
	bool lag_valid;
	int64_t lag_max;
	bool tags_unmatchable; /* a filter that no tag can satisfy (too long, too many) */
	int ntags;
	struct {
		char key[32];
		char value[128];
	} tags[REST_MAX_TAG_FILTERS];
};

/* ---- pure helpers: sizes, query strings, status codes ---------------- */

/* "1048576", "10MB", "1024kB", "1gb": 1024-based units like Patroni. */
static bool parse_lag(const char *v, int64_t *out)
{
	static const char *const units[] = {"b", "kb", "mb", "gb", "tb"};
	int64_t n = 0;
	const char *p = v;

	if (v == NULL || *v < '0' || *v > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (INT64_MAX - (*p - '0')) / 10)
			return false;
		n = n * 10 + (*p - '0');
	}
	if (*p == '\0') {
		*out = n;
		return true;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(p, units[i]) != 0)
			continue;
		for (size_t k = 0; k < i; k++) {
			if (n > INT64_MAX / 1024)
				return false;
			n *= 1024;
		}
		*out = n;
		return true;
	}
	return false;
}

static void query_add(struct rest_query *q, const char *key, const char *value)
{
	if (key == NULL)
		return;
	if (strcmp(key, "lag") == 0) {
		if (!q->lag_given) { /* the first one counts, like parse_qs()[0] */
			q->lag_given = true;
			q->lag_valid = parse_lag(value, &q->lag_max);
		}
		return;
	}
	if (strncmp(key, "tag_", 4) != 0)
		return;
	if (value == NULL)
		value = "";
	if (q->ntags >= REST_MAX_TAG_FILTERS || strlen(key + 4) >= sizeof(q->tags[0].key) ||
	    strlen(value) >= sizeof(q->tags[0].value)) {
		q->tags_unmatchable = true;
		return;
	}
	strcpy(q->tags[q->ntags].key, key + 4);
	strcpy(q->tags[q->ntags].value, value);
	q->ntags++;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* In place: '+' is a space, %XX a byte (a bad escape stays as is, like MHD). */
static void url_decode(char *s)
{
	char *w = s;

	for (const char *p = s; *p; p++) {
		int hi, lo;

		if (*p == '+') {
			*w++ = ' ';
		} else if (*p == '%' && (hi = hex_val(p[1])) >= 0 && (lo = hex_val(p[2])) >= 0) {
			*w++ = (char)(hi * 16 + lo);
			p += 2;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
}

/* "lag=10MB&tag_dc=east"; false only when out of memory. */
static bool query_parse(const char *query, struct rest_query *q)
{
	char *copy, *save = NULL;

	memset(q, 0, sizeof(*q));
	if (query == NULL)
		return true;
	copy = strdup(query);
	if (copy == NULL)
		return false;
	for (char *pair = strtok_r(copy, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(pair, '=');

		if (eq)
			*eq++ = '\0';
		url_decode(pair);
		if (eq)
			url_decode(eq);
		query_add(q, pair, eq);
	}
	free(copy);
	return true;
}

static int64_t mono_ms(void);

/*
 * 200 on /primary only from the lease holder running as primary, and only until D - S:
 * a loop that stalls (a frozen machine thawing, a slow disk) leaves the snapshot
 * saying "primary" while its lease runs out, and a load balancer that trusts one
 * good check (rise 1) must not be sent there by it.
 */
static bool primary_ok(const struct pgw_snapshot *s, int64_t now_mono_ms)
{
	return s->holds_leader_key && s->role == PGW_ROLE_PRIMARY &&
	       now_mono_ms < s->writes_until_ms;
}

/* The snapshot's tag `key` as a string, NULL when the node has no such tag. */
static const char *snap_tag(const struct pgw_snapshot *s, const char *key)
{
	int n = s->ntags < 0 ? 0 : s->ntags > PGW_MAX_TAGS ? PGW_MAX_TAGS : s->ntags;

	for (int i = 0; i < n; i++) {
		if (strncmp(s->tags[i].key, key, sizeof(s->tags[i].key)) == 0)
			return s->tags[i].value;
	}
	return NULL;
}

static bool tags_match(const struct pgw_snapshot *s, const struct rest_query *q)
{
	if (q->tags_unmatchable)
		return false;
	for (int i = 0; i < q->ntags; i++) {
		const char *v = snap_tag(s, q->tags[i].key);

		if (v == NULL || strncmp(v, q->tags[i].value, sizeof(s->tags[0].value)) != 0)
			return false;
	}
	return true;
}

static bool lag_ok(const struct pgw_snapshot *s, const struct rest_query *q)
{
	uint64_t pos =
	    s->pg.received_lsn > s->pg.replayed_lsn ? s->pg.received_lsn : s->pg.replayed_lsn;
	int64_t lag;

	if (!q->lag_given)
		return true;
	if (!q->lag_valid || s->leader_optime < 0)
		return false;
	if (pos >= (uint64_t)s->leader_optime)
		return true;
	lag = s->leader_optime - (int64_t)pos;
	return lag <= q->lag_max;
}

static bool replica_ok(const struct pgw_snapshot *s, const struct rest_query *q)
{
	return s->role == PGW_ROLE_REPLICA && !s->standby_leader && s->pg.running &&
	       !s->noloadbalance && lag_ok(s, q) && tags_match(s, q);
}

static bool liveness_ok(const struct pgw_snapshot *s, int64_t now_mono_ms)
{
	int64_t limit_s = s->ttl > 0 ? s->ttl : (int64_t)s->loop_wait * 2;

	return s->paused || now_mono_ms - s->loop_mono_ms <= limit_s * 1000;
}

static bool readiness_ok(const struct pgw_snapshot *s)
{
	if (!s->pg.running)
		return false;
	return (s->holds_leader_key && s->role == PGW_ROLE_PRIMARY) || s->standby_leader ||
	       (s->role == PGW_ROLE_REPLICA && s->pg.streaming);
}

/* path equals name, or name followed by one trailing slash. */
static bool path_is(const char *path, const char *name)
{
	size_t n = strlen(name);

	return strncmp(path, name, n) == 0 && (path[n] == '\0' || (path[n] == '/' && !path[n + 1]));
}

static int code(bool ok)
{
	return ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
}

/* The one status function both pgw_rest_status_for() and the handler use. */
static int status_core(const struct pgw_snapshot *s, const char *path, const struct rest_query *q,
                       int64_t now_mono_ms)
{
	if (s == NULL)
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	if (strcmp(path, "/") == 0 || path_is(path, "/primary") || path_is(path, "/master") ||
	    path_is(path, "/read-write"))
		return code(primary_ok(s, now_mono_ms));
	if (path_is(path, "/leader"))
		return code(s->holds_leader_key);
	if (path_is(path, "/standby-leader") || path_is(path, "/standby_leader"))
		return code(s->standby_leader && s->pg.running && tags_match(s, q));
	if (path_is(path, "/replica"))
		return code(replica_ok(s, q));
	if (path_is(path, "/async") || path_is(path, "/asynchronous"))
		return code(replica_ok(s, q) && !s->sync_standby);
	if (path_is(path, "/sync") || path_is(path, "/synchronous"))
		return code(replica_ok(s, q) && s->sync_standby);
	if (path_is(path, "/read-only"))
		return code(primary_ok(s, now_mono_ms) || replica_ok(s, q) ||
		            (s->standby_leader && s->pg.running));
	if (path_is(path, "/health"))
		return code(s->pg.running);
	if (path_is(path, "/liveness"))
		return code(liveness_ok(s, now_mono_ms));
	if (path_is(path, "/readiness"))
		return code(readiness_ok(s));
	if (path_is(path, "/patroni") || path_is(path, "/history") || path_is(path, "/metrics"))
		return MHD_HTTP_OK;
	if (path_is(path, "/cluster"))
		return code(s->cluster_json != NULL);
	if (path_is(path, "/config"))
		return code(s->config_json != NULL);
	return MHD_HTTP_NOT_FOUND;
}

int pgw_rest_status_for(const struct pgw_snapshot *s, const char *path, const char *query,
                        int64_t now_mono_ms)
{
	struct rest_query q;

	if (path == NULL)
		return MHD_HTTP_NOT_FOUND;
	if (!query_parse(query, &q))
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	return status_core(s, path, &q, now_mono_ms);
}

/* ---- the /patroni JSON body -------------------------------------------- */

/* A fixed-size field that may lack its NUL. */
static void add_str(json_object *o, const char *key, const char *s, size_t size)
{
	json_object_object_add(o, key, json_object_new_string_len(s, (int)strnlen(s, size)));
}

#define ADD_FIELD(o, key, arr) add_str((o), (key), (arr), sizeof(arr))

/* Patroni's format: "2024-08-28 19:39:26.352526+00:00" (we always say UTC). */
static json_object *json_time(double t)
{
	time_t sec = (time_t)t;
	long usec = (long)((t - (double)sec) * 1e6 + 0.5);
	struct tm tm;
	char buf[64];

	if (usec >= 1000000) {
		sec++;
		usec -= 1000000;
	}
	if (gmtime_r(&sec, &tm) == NULL)
		return NULL;
	snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d.%06ld+00:00", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
	return json_object_new_string(buf);
}

static const char *role_name(enum pgw_role role)
{
	switch (role) {
	case PGW_ROLE_PRIMARY:
		return "master"; /* Patroni 3.0.2's word */
	case PGW_ROLE_REPLICA:
		return "replica";
	default:
		return "uninitialized";
	}
}

static json_object *json_xlog(const struct pgw_snapshot *s)
{
	json_object *x = json_object_new_object();

	if (s->role == PGW_ROLE_PRIMARY) {
		json_object_object_add(x, "location", json_object_new_uint64(s->pg.wal_lsn));
		return x;
	}
	json_object_object_add(x, "received_location", json_object_new_uint64(s->pg.received_lsn));
	json_object_object_add(x, "replayed_location", json_object_new_uint64(s->pg.replayed_lsn));
	json_object_object_add(x, "replayed_timestamp",
	                       s->pg.replayed_timestamp > 0 ? json_time(s->pg.replayed_timestamp)
	                                                    : NULL);
	json_object_object_add(x, "paused", json_object_new_boolean(s->pg.replay_paused));
	return x;
}

static json_object *json_replication(const struct pgw_pg_state *pg)
{
	json_object *list = json_object_new_array();
	int n =
	    pg->nreplication > PGW_PG_MAX_REPLICATION ? PGW_PG_MAX_REPLICATION : pg->nreplication;

	for (int i = 0; i < n; i++) {
		const struct pgw_pg_replication *r = &pg->replication[i];
		json_object *o = json_object_new_object();

		ADD_FIELD(o, "usename", r->usename);
		ADD_FIELD(o, "application_name", r->application_name);
		ADD_FIELD(o, "client_addr", r->client_addr);
		ADD_FIELD(o, "state", r->state);
		ADD_FIELD(o, "sync_state", r->sync_state);
		json_object_object_add(o, "sync_priority", json_object_new_int(r->sync_priority));
		json_object_array_add(list, o);
	}
	return list;
}

/* A tag's value with Patroni's types: booleans and failover_priority typed. */
static json_object *json_tag_value(const char *key, const char *value)
{
	static const char *const bools[] = {"nofailover", "noloadbalance", "clonefrom", "nosync"};
	char *end;
	long n;

	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		if (strcmp(key, bools[i]) != 0)
			continue;
		if (strcasecmp(value, "true") == 0 || strcasecmp(value, "false") == 0)
			return json_object_new_boolean(strcasecmp(value, "true") == 0);
	}
	if (strcmp(key, "failover_priority") == 0) {
		errno = 0;
		n = strtol(value, &end, 10);
		if (*value && *end == '\0' && errno == 0 && n >= INT32_MIN && n <= INT32_MAX)
			return json_object_new_int((int32_t)n);
	}
	return json_object_new_string(value);
}

static json_object *json_tags(const struct pgw_snapshot *s)
{
	json_object *o = json_object_new_object();
	int n = s->ntags < 0 ? 0 : s->ntags > PGW_MAX_TAGS ? PGW_MAX_TAGS : s->ntags;

	for (int i = 0; i < n; i++) {
		char key[sizeof(s->tags[i].key) + 1];
		char value[sizeof(s->tags[i].value) + 1];

		snprintf(key, sizeof(key), "%.*s", (int)sizeof(s->tags[i].key), s->tags[i].key);
		snprintf(value, sizeof(value), "%.*s", (int)sizeof(s->tags[i].value),
		         s->tags[i].value);
		if (key[0])
			json_object_object_add(o, key, json_tag_value(key, value));
	}
	return o;
}

static void add_flag(json_object *o, const char *key, bool on)
{
	if (on)
		json_object_object_add(o, key, json_object_new_boolean(true));
}

static json_object *json_watchdog(const struct pgw_wd_status *w)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "mode", json_object_new_string(pgw_wdguard_mode_name(w->mode)));
	json_object_object_add(o, "armed", json_object_new_boolean(w->armed));
	if (w->armed && w->timeout > 0)
		json_object_object_add(o, "timeout", json_object_new_int(w->timeout));
	if (w->identity[0])
		ADD_FIELD(o, "identity", w->identity);
	add_flag(o, "nowayout", w->nowayout);
	add_flag(o, "failed", w->failed);
	if (w->reason[0])
		ADD_FIELD(o, "reason", w->reason);
	return o;
}

static json_object *json_fencing(const struct pgw_fence_state *f)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "mode", json_object_new_string(f->required ? "required" : "off"));
	if (f->result[0]) {
		ADD_FIELD(o, "target", f->target);
		ADD_FIELD(o, "result", f->result);
		ADD_FIELD(o, "reason", f->reason);
		json_object_object_add(o, "at", json_time(f->wall));
	}
	return o;
}

static json_object *json_pgwarden(const struct pgw_snapshot *s)
{
	json_object *o = json_object_new_object();

	ADD_FIELD(o, "name", s->name);
	json_object_object_add(o, "holds_leader_key", json_object_new_boolean(s->holds_leader_key));
	ADD_FIELD(o, "last_action", s->last_action);
	ADD_FIELD(o, "last_reason", s->last_reason);
	json_object_object_add(o, "watchdog", json_watchdog(&s->watchdog));
	json_object_object_add(o, "fencing", json_fencing(&s->fencing));
	return o;
}

static json_object *json_patroni(const struct pgw_snapshot *s)
{
	json_object *o = json_object_new_object();

	ADD_FIELD(o, "version", s->version);
	ADD_FIELD(o, "scope", s->scope);
	return o;
}

/* The PostgreSQL half: state, start time, role, version, xlog, timeline, replication. */
static void json_add_pg(json_object *o, const struct pgw_snapshot *s)
{
	const struct pgw_pg_state *pg = &s->pg;

	json_object_object_add(o, "state",
	                       json_object_new_string(s->state_str ? s->state_str : "unknown"));
	if (pg->postmaster_start_time > 0)
		json_object_object_add(o, "postmaster_start_time",
		                       json_time(pg->postmaster_start_time));
	json_object_object_add(
	    o, "role",
	    json_object_new_string(s->standby_leader ? "standby_leader" : role_name(s->role)));
	if (pg->server_version > 0)
		json_object_object_add(o, "server_version",
		                       json_object_new_int(pg->server_version));
	if (pg->running && s->role != PGW_ROLE_UNINITIALIZED)
		json_object_object_add(o, "xlog", json_xlog(s));
	if (pg->timeline > 0)
		json_object_object_add(o, "timeline", json_object_new_int(pg->timeline));
	if (pg->nreplication > 0)
		json_object_object_add(o, "replication", json_replication(pg));
}

char *pgw_rest_patroni_json(const struct pgw_snapshot *s)
{
	json_object *o = json_object_new_object();
	char sysid[32];
	char *out;

	if (o == NULL)
		return NULL;
	json_add_pg(o, s);
	add_flag(o, "cluster_unlocked", s->cluster_unlocked);
	if (s->dcs_last_seen > 0)
		json_object_object_add(o, "dcs_last_seen",
		                       json_object_new_int64((int64_t)s->dcs_last_seen));
	json_object_object_add(o, "tags", json_tags(s));
	if (s->pg.system_identifier) {
		snprintf(sysid, sizeof(sysid), "%" PRIu64, s->pg.system_identifier);
		json_object_object_add(o, "database_system_identifier",
		                       json_object_new_string(sysid));
	}
	add_flag(o, "pending_restart", s->pending_restart || s->pg.pending_restart);
	if (s->scheduled_restart[0]) {
		json_object *sr = json_object_new_object();

		json_object_object_add(sr, "schedule",
		                       json_object_new_string(s->scheduled_restart));
		json_object_object_add(o, "scheduled_restart", sr);
	}
	json_object_object_add(o, "patroni", json_patroni(s));
	add_flag(o, "pause", s->paused);
	add_flag(o, "watchdog_failed", s->watchdog_failed);
	add_flag(o, "sync_standby", s->role == PGW_ROLE_REPLICA && s->sync_standby);
	json_object_object_add(o, "pgwarden", json_pgwarden(s));
	out = strdup(json_object_to_json_string_ext(o, JSON_FLAGS));
	json_object_put(o);
	return out;
}

/* ---- the /metrics body (Prometheus text format 0.0.4) ------------------- */

/* Writes the metrics, one family at a time, with the labels of this node. */
struct metrics {
	FILE *f;
	char labels[600]; /* {scope="...",name="..."} */
};

/* A label value: backslash, double quote and newline escaped; bounded by size. */
static void label_value(char *out, size_t outlen, const char *s, size_t size)
{
	size_t n = strnlen(s, size), w = 0;

	for (size_t i = 0; i < n && w + 3 < outlen; i++) {
		char ch = s[i];

		if (ch == '\\' || ch == '"' || ch == '\n') {
			out[w++] = '\\';
			ch = ch == '\n' ? 'n' : ch;
		}
		out[w++] = ch;
	}
	out[w] = '\0';
}

static void metrics_labels(struct metrics *m, const struct pgw_snapshot *s)
{
	char scope[2 * sizeof(s->scope) + 1], name[2 * sizeof(s->name) + 1];

	label_value(scope, sizeof(scope), s->scope, sizeof(s->scope));
	label_value(name, sizeof(name), s->name, sizeof(s->name));
	snprintf(m->labels, sizeof(m->labels), "{scope=\"%.280s\",name=\"%.280s\"}", scope, name);
}

static void metric(struct metrics *m, const char *name, const char *type, const char *help,
                   const char *value)
{
	fprintf(m->f, "# HELP %s %s\n# TYPE %s %s\n%s%s %s\n", name, help, name, type, name,
	        m->labels, value);
}

static void metric_int(struct metrics *m, const char *name, const char *type, const char *help,
                       int64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	metric(m, name, type, help, buf);
}

static void metric_u64(struct metrics *m, const char *name, const char *help, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	metric(m, name, "counter", help, buf);
}

static void metric_flag(struct metrics *m, const char *name, const char *help, bool v)
{
	metric(m, name, "gauge", help, v ? "1" : "0");
}

static void metric_double(struct metrics *m, const char *name, const char *help, double v,
                          int decimals)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	metric(m, name, "gauge", help, buf);
}

/* Patroni's form: each of major.minor.patch on two digits ("3.0.2" -> 030002). */
static void version_number(char *out, size_t outlen, const char *version, size_t size)
{
	char v[64];
	char *p = v;
	size_t w = 0;

	snprintf(v, sizeof(v), "%.*s", (int)strnlen(version, size), version);
	for (int part = 0; part < 3 && w + 3 <= outlen; part++) {
		long n = strtol(p, &p, 10);

		w += (size_t)snprintf(out + w, outlen - w, "%02ld", n < 0 || n > 99 ? 0 : n);
		if (*p == '.')
			p++;
	}
	if (w == 0)
		snprintf(out, outlen, "0");
}

static void metrics_node(struct metrics *m, const struct pgw_snapshot *s)
{
	char version[16];

	version_number(version, sizeof(version), s->version, sizeof(s->version));
	metric(m, "patroni_version", "gauge", "Patroni semver without periods.", version);
	metric_flag(m, "patroni_postgres_running",
	            "Value is 1 if Postgres is running, 0 otherwise.", s->pg.running);
	metric_double(m, "patroni_postmaster_start_time", "Epoch seconds since Postgres started.",
	              s->pg.postmaster_start_time, 6);
	metric_flag(m, "patroni_master", "Value is 1 if this node is the leader, 0 otherwise.",
	            primary_ok(s, mono_ms()));
	metric_flag(m, "patroni_primary", "Value is 1 if this node is the leader, 0 otherwise.",
	            primary_ok(s, mono_ms()));
	metric_flag(m, "patroni_standby_leader",
	            "Value is 1 if this node is the standby_leader, 0 otherwise.",
	            s->standby_leader);
	metric_flag(m, "patroni_replica", "Value is 1 if this node is a replica, 0 otherwise.",
	            s->role == PGW_ROLE_REPLICA);
	metric_flag(m, "patroni_sync_standby",
	            "Value is 1 if this node is a sync standby replica, 0 otherwise.",
	            s->role == PGW_ROLE_REPLICA && s->sync_standby);
}

static void metrics_xlog(struct metrics *m, const struct pgw_snapshot *s)
{
	bool primary = s->pg.running && s->role == PGW_ROLE_PRIMARY;
	bool replica = s->pg.running && s->role == PGW_ROLE_REPLICA;

	metric_u64(m, "patroni_xlog_location",
	           "Current location of the Postgres transaction log, 0 if this node is not the "
	           "leader.",
	           primary ? s->pg.wal_lsn : 0);
	metric_u64(m, "patroni_xlog_received_location",
	           "Current location of the received Postgres transaction log, 0 if this node is "
	           "not a replica.",
	           replica ? s->pg.received_lsn : 0);
	metric_u64(m, "patroni_xlog_replayed_location",
	           "Current location of the replayed Postgres transaction log, 0 if this node is "
	           "not a replica.",
	           replica ? s->pg.replayed_lsn : 0);
	metric_double(m, "patroni_xlog_replayed_timestamp",
	              "Current timestamp of the replayed Postgres transaction log, 0 if null.",
	              replica ? s->pg.replayed_timestamp : 0, 6);
	metric_flag(m, "patroni_xlog_paused",
	            "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
	            replica && s->pg.replay_paused);
}

static void metrics_state(struct metrics *m, const struct pgw_snapshot *s)
{
	metric_int(m, "patroni_postgres_server_version", "gauge",
	           "Version of Postgres (if running), 0 otherwise.",
	           s->pg.running ? s->pg.server_version : 0);
	metric_flag(m, "patroni_cluster_unlocked",
	            "Value is 1 if the cluster is unlocked, 0 if locked.", s->cluster_unlocked);
	metric_int(m, "patroni_postgres_timeline", "counter",
	           "Postgres timeline of this node (if running), 0 otherwise.",
	           s->pg.running ? s->pg.timeline : 0);
	metric_int(m, "patroni_dcs_last_seen", "gauge",
	           "Epoch timestamp when DCS was last contacted successfully by Patroni.",
	           (int64_t)s->dcs_last_seen);
	metric_flag(m, "patroni_pending_restart",
	            "Value is 1 if the node needs a restart, 0 otherwise.",
	            s->pending_restart || s->pg.pending_restart);
	metric_flag(m, "patroni_is_paused", "Value is 1 if auto failover is disabled, 0 otherwise.",
	            s->paused);
}

/* Replica: bytes behind the leader's last published position, -1 when unknown. */
static int64_t replication_lag(const struct pgw_snapshot *s)
{
	uint64_t pos =
	    s->pg.received_lsn > s->pg.replayed_lsn ? s->pg.received_lsn : s->pg.replayed_lsn;

	if (s->role != PGW_ROLE_REPLICA || s->leader_optime < 0)
		return -1;
	return pos >= (uint64_t)s->leader_optime ? 0 : s->leader_optime - (int64_t)pos;
}

static void metrics_pgwarden(struct metrics *m, const struct pgw_snapshot *s)
{
	int64_t lag = replication_lag(s);

	metric_flag(m, "pgwarden_holds_leader_key",
	            "Value is 1 if this node holds the leader key with its live lease, 0 "
	            "otherwise.",
	            s->holds_leader_key);
	if (s->has_lease)
		metric_double(m, "pgwarden_lease_deadline_margin_seconds",
		              "Seconds left before the lease deadline minus the safety margin when "
		              "the snapshot was published (negative: past).",
		              (double)s->lease_budget_ms / 1000.0, 3);
	metric_flag(m, "pgwarden_watchdog_armed",
	            "Value is 1 if the hardware watchdog is armed (it resets the machine unless "
	            "petted), 0 otherwise.",
	            s->watchdog.armed);
	metric_int(m, "pgwarden_watchdog_timeout_seconds", "gauge",
	           "The armed watchdog's timeout W as the driver reported it, 0 when not armed.",
	           s->watchdog.timeout);
	metric_flag(
	    m, "pgwarden_fencing_failed",
	    "Value is 1 if the last fence this node tried was not confirmed (no promotion).",
	    strcmp(s->fencing.result, "failed") == 0);
	metric_flag(m, "pgwarden_watchdog_failed",
	            "Value is 1 if the last attempt to open or arm the watchdog failed.",
	            s->watchdog.failed);
	if (lag >= 0)
		metric_int(m, "pgwarden_replication_lag_bytes", "gauge",
		           "Bytes this replica is behind the leader's last published WAL position.",
		           lag);
}

char *pgw_rest_metrics_text(const struct pgw_snapshot *s)
{
	struct metrics m;
	char *out = NULL;
	size_t len = 0;

	m.f = open_memstream(&out, &len);
	if (m.f == NULL)
		return NULL;
	metrics_labels(&m, s);
	metrics_node(&m, s);
	metrics_xlog(&m, s);
	metrics_state(&m, s);
	metrics_pgwarden(&m, s);
	if (fclose(m.f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* ---- HTTP ----------------------------------------------------------------- */

static bool log_allowed(struct pgw_rest *r, int *dropped);

/* restapi.http_extra_headers on every answer, https_extra_headers too over TLS. */
static void add_extra_headers(const struct pgw_rest *r, struct MHD_Response *resp)
{
	for (size_t i = 0; i < r->nheaders; i++)
		MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
}

/* content_type NULL: none (an empty answer). */
static enum MHD_Result reply(const struct pgw_rest *r, struct MHD_Connection *c, int status,
                             char *body, const char *content_type)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (body == NULL)
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	else
		resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, REST_ALLOW);
	add_extra_headers(r, resp);
	ret = MHD_queue_response(c, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* {"error": "<what> <subject>"} ({"error": "<what>"} without subject), malloc'd (NULL when
 * out of memory). */
static char *error_body(const char *what, const char *subject)
{
	json_object *o = json_object_new_object();
	char msg[512];
	char *out;

	snprintf(msg, sizeof(msg), "%s%s%.400s", what, subject ? " " : "", subject ? subject : "");
	json_object_object_add(o, "error", json_object_new_string(msg));
	out = strdup(json_object_to_json_string_ext(o, JSON_FLAGS));
	json_object_put(o);
	return out;
}

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
	(void)kind;
	query_add(cls, key, value);
	return MHD_YES;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum rest_body body_kind(const char *url)
{
	if (path_is(url, "/cluster"))
		return BODY_CLUSTER;
	if (path_is(url, "/history"))
		return BODY_HISTORY;
	if (path_is(url, "/config"))
		return BODY_CONFIG;
	if (path_is(url, "/metrics"))
		return BODY_METRICS;
	return BODY_PATRONI;
}

/* The published body of that kind, with its default; NULL only for an unknown cluster/config. */
static const char *body_of_kind(const struct rest_bodies *b, enum rest_body kind)
{
	switch (kind) {
	case BODY_CLUSTER:
		return b->cluster;
	case BODY_HISTORY:
		return b->history ? b->history : "[]";
	case BODY_CONFIG:
		return b->config;
	case BODY_METRICS:
		return b->metrics ? b->metrics : "";
	default:
		return b->patroni ? b->patroni : "{}";
	}
}

/* Status code and a copy of the body, under the mutex and nothing else. */
static int answer_from_snapshot(struct pgw_rest *r, const char *url, const struct rest_query *q,
                                enum rest_body kind, char **body)
{
	int64_t now = mono_ms();
	const char *src;
	int status;

	pthread_mutex_lock(&r->mu);
	if (!r->have_snap) {
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
		src = REST_STARTING_BODY;
	} else {
		status = status_core(&r->snap, url, q, now);
		src = body_of_kind(&r->bodies, kind);
	}
	*body = src ? strdup(src) : NULL;
	pthread_mutex_unlock(&r->mu);
	return status;
}

/* The answer's body when the snapshot has none to give (built outside the mutex). */
static char *fallback_body(int status, enum rest_body kind, const char *url, char *body)
{
	if (status == MHD_HTTP_NOT_FOUND) {
		free(body);
		return error_body("not found:", url);
	}
	if (body == NULL && kind == BODY_CLUSTER)
		return error_body("cluster state unknown", NULL);
	if (body == NULL && kind == BODY_CONFIG)
		return error_body("configuration unknown", NULL);
	return body;
}

void pgw_rest_set_audit_log(struct pgw_rest *r, const char *path)
{
	free(r->audit_log);
	r->audit_log = path ? strdup(path) : NULL;
}

/* GET /fencing: the last 100 records of the audit log (read here: never the HA loop). */
static enum MHD_Result answer_fencing(struct pgw_rest *r, struct MHD_Connection *c,
                                      const char *method)
{
	char *body = r->audit_log ? pgw_audit_tail_json(r->audit_log, 100) : strdup("[]");

	if (body == NULL)
		return reply(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		             error_body("cannot read the fencing audit log", r->audit_log),
		             REST_JSON_TYPE);
	if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0) {
		free(body);
		return reply(r, c, MHD_HTTP_OK, NULL, NULL);
	}
	return reply(r, c, MHD_HTTP_OK, body, REST_JSON_TYPE);
}

static enum MHD_Result answer_get(struct pgw_rest *r, struct MHD_Connection *c, const char *url,
                                  const char *method)
{
	enum rest_body kind = body_kind(url);
	struct rest_query q;
	char *body;
	int status;

	if (path_is(url, "/fencing"))
		return answer_fencing(r, c, method);
	memset(&q, 0, sizeof(q));
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_arg, &q);
	status = answer_from_snapshot(r, url, &q, kind, &body);
	body = fallback_body(status, kind, url, body);
	if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0) {
		free(body);
		return reply(r, c, status, NULL, NULL);
	}
	if (body == NULL)
		return MHD_NO; /* out of memory: drop the connection */
	return reply(r, c, status, body,
	             kind == BODY_METRICS && status == MHD_HTTP_OK ? REST_METRICS_TYPE
	                                                           : REST_JSON_TYPE);
}

static bool method_is_read(const char *method)
{
	return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
	       strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 ||
	       strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0;
}

static bool body_too_large(struct MHD_Connection *c)
{
	const char *cl =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;
	unsigned long long n;

	if (cl == NULL)
		return false;
	errno = 0;
	n = strtoull(cl, &end, 10);
	return errno != 0 || n > REST_MAX_BODY;
}

/* First call for a request: refuse an oversized body at once, else start reading. */
static enum MHD_Result begin_request(const struct pgw_rest *r, struct MHD_Connection *c,
                                     void **req_cls)
{
	struct rest_req *req;

	if (body_too_large(c))
		return reply(r, c, MHD_HTTP_CONTENT_TOO_LARGE,
		             error_body("request body larger than", "65536 bytes"), REST_JSON_TYPE);
	req = calloc(1, sizeof(*req));
	if (req == NULL)
		return MHD_NO;
	*req_cls = req;
	return MHD_YES;
}

/* Collect a request body for the writer (discard it when there is none). */
static enum MHD_Result keep_body(const struct pgw_rest *r, struct rest_req *req, const char *data,
                                 size_t *size)
{
	size_t n = *size;

	*size = 0;
	if (req->body_len + n > REST_MAX_BODY)
		return MHD_NO;
	if (r->write_fn) {
		char *b = realloc(req->body, req->body_len + n + 1);

		if (b == NULL)
			return MHD_NO;
		memcpy(b + req->body_len, data, n);
		b[req->body_len + n] = '\0';
		req->body = b;
	}
	req->body_len += n;
	return MHD_YES;
}

/* Equal strings, in a time that depends on the secret's length only. */
static bool secret_equal(const char *given, const char *secret)
{
	size_t lg = strlen(given), ls = strlen(secret);
	unsigned char d = lg != ls;

	for (size_t i = 0; i < ls; i++)
		d |= (unsigned char)((i < lg ? given[i] : 0) ^ secret[i]);
	return d == 0;
}

static bool auth_ok(const struct pgw_rest *r, struct MHD_Connection *c)
{
	char *pass = NULL, *user;
	bool ok;

	if (r->auth_user == NULL)
		return true;
	user = MHD_basic_auth_get_username_password(c, &pass);
	ok = user && pass;
	/* both compared, whatever the first says */
	ok = (user ? secret_equal(user, r->auth_user) : false) & ok;
	ok = (pass ? secret_equal(pass, r->auth_password) : false) & ok;
	MHD_free(user);
	MHD_free(pass);
	return ok;
}

static enum MHD_Result answer_unauthorized(const struct pgw_rest *r, struct MHD_Connection *c)
{
	char *body = error_body("authentication required", NULL);
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (body == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, REST_JSON_TYPE);
	add_extra_headers(r, resp);
	ret = MHD_queue_basic_auth_fail_response(c, "pgwarden", resp);
	MHD_destroy_response(resp);
	return ret;
}

static bool is_json_type(const char *type)
{
	size_t n = strlen(REST_JSON_TYPE);

	return strncasecmp(type, REST_JSON_TYPE, n) == 0 &&
	       (type[n] == '\0' || type[n] == ';' || type[n] == ' ');
}

/*
 * Cross-site writes (ARCHITECTURE.md §7): a web page on another site can make a
 * browser send a "simple" POST (text/plain, a form, or a typeless Blob) from the
 * browser's network position.  Browsers say where a request comes from: Origin on
 * every cross-origin POST, Sec-Fetch-Site on all of them.  A write that names another
 * site is refused (403); a body type other than JSON too (415).  pgwardenctl and
 * patronictl send no Origin, and patronictl no type: both stay accepted.  NULL: fine.
 */
static const char *write_refusal(struct MHD_Connection *c, int *status)
{
	const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	const char *type =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *o_host = origin ? strstr(origin, "://") : NULL;

	*status = MHD_HTTP_FORBIDDEN;
	if (site && strcasecmp(site, "same-origin") != 0 && strcasecmp(site, "none") != 0)
		return "cross-site request refused (Sec-Fetch-Site)";
	if (origin && (!o_host || !host || strcasecmp(o_host + 3, host) != 0))
		return "cross-site request refused (Origin is another site)";
	*status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
	if (type && !is_json_type(type))
		return "the request body must be application/json";
	return NULL;
}

/* POST/PUT/PATCH/DELETE: authenticate, then hand the request to the writer. */
static enum MHD_Result answer_write(struct pgw_rest *r, struct MHD_Connection *c, const char *url,
                                    const char *method, struct rest_req *req)
{
	char *resp = NULL;
	const char *why;
	int status;

	if (r->write_fn == NULL)
		return reply(r, c, MHD_HTTP_METHOD_NOT_ALLOWED,
		             error_body("method not allowed:", method), REST_JSON_TYPE);
	if (!auth_ok(r, c))
		return answer_unauthorized(r, c);
	why = write_refusal(c, &status);
	if (why)
		return reply(r, c, status, error_body(why, NULL), REST_JSON_TYPE);
	status = r->write_fn(r->write_arg, method, url, req->body ? req->body : "", req->body_len,
	                     &resp);
	if (resp == NULL)
		resp = strdup("");
	if (resp == NULL)
		return MHD_NO;
	return reply(r, c, status, resp,
	             resp[0] == '{' || resp[0] == '[' ? REST_JSON_TYPE : "text/plain");
}

void pgw_rest_set_writer(struct pgw_rest *r, pgw_rest_write_fn fn, void *arg, const char *user,
                         const char *password)
{
	r->write_fn = fn;
	r->write_arg = arg;
	free(r->auth_user);
	free(r->auth_password);
	r->auth_user = user && password ? strdup(user) : NULL;
	r->auth_password = user && password ? strdup(password) : NULL;
}

/* Did the client present a certificate that verifies against restapi.cafile? */
static bool client_cert_ok(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t session;
	unsigned int status = 0, n = 0;

	if (ci == NULL || ci->tls_session == NULL)
		return false;
	session = (gnutls_session_t)ci->tls_session;
	if (gnutls_certificate_get_peers(session, &n) == NULL || n == 0)
		return false;
	return gnutls_certificate_verify_peers2(session, &status) == GNUTLS_E_SUCCESS &&
	       status == 0;
}

static bool needs_client_cert(const struct pgw_rest *r, const char *method)
{
	return r->verify_client == PGW_VERIFY_REQUIRED ||
	       (r->verify_client == PGW_VERIFY_OPTIONAL && !method_is_read(method));
}

/* restapi.protect_reads: the endpoints that show topology, configuration, BMCs. */
static bool read_protected(const struct pgw_rest *r, const char *url)
{
	return r->protect_reads && r->auth_user &&
	       (path_is(url, "/cluster") || path_is(url, "/history") || path_is(url, "/config") ||
	        path_is(url, "/fencing"));
}

void pgw_rest_protect_reads(struct pgw_rest *r, bool on)
{
	r->protect_reads = on;
}

/* Shut down the connections whose headers are overdue; pend_mu held. */
static void pend_sweep(struct pgw_rest *r, int64_t now)
{
	int n = 0;

	for (int i = 0; i < r->npend; i++)
		if (r->pend[i].fd >= 0 && now - r->pend[i].since >= r->headers_ms) {
			shutdown(r->pend[i].fd, SHUT_RDWR); /* MHD sees the end and closes it */
			r->pend[i].fd = -1;
			n++;
		}
	if (n > 0)
		pgw_debug("restapi: closed %d connections whose request headers took more than "
		          "%" PRId64 " ms",
		          n, r->headers_ms);
}

static void pend_forget(struct pgw_rest *r, struct MHD_Connection *c)
{
	for (int i = 0; i < r->npend; i++)
		if (r->pend[i].c == c) {
			r->pend[i] = r->pend[--r->npend];
			return;
		}
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
	struct pgw_rest *r = cls;
	const union MHD_ConnectionInfo *ci;
	int64_t now = mono_ms();

	(void)socket_context;
	pthread_mutex_lock(&r->pend_mu);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		pend_sweep(r, now);
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci && r->npend < (int)REST_CONN_LIMIT)
			r->pend[r->npend++] = (struct rest_pending){c, (int)ci->connect_fd, now};
	} else {
		pend_forget(r, c);
	}
	pthread_mutex_unlock(&r->pend_mu);
}

/* The headers of a request on c are complete (the handler's first call). */
static void headers_arrived(struct pgw_rest *r, struct MHD_Connection *c)
{
	pthread_mutex_lock(&r->pend_mu);
	pend_forget(r, c);
	pthread_mutex_unlock(&r->pend_mu);
}

/*
 * restapi.allowlist / allowlist_include_members (Patroni's meaning): with either set,
 * only those addresses may call POST, PUT, PATCH and DELETE; reads stay open.  A
 * refusal is logged (rate-limited with libmicrohttpd's messages).
 */
static bool allowed(struct pgw_rest *r, struct MHD_Connection *c, const char *method,
                    const char *url)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;
	struct pgw_cidr who;
	char addr[INET6_ADDRSTRLEN] = "?", esc[256];
	bool ok = false;
	int dropped;

	if (!r->allow_on)
		return true;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	sa = ci ? ci->client_addr : NULL;
	if (sa && pgw_cidr_from_sockaddr(sa, &who)) {
		for (size_t i = 0; i < r->nallow && !ok; i++)
			ok = pgw_cidr_match(&r->allow[i], sa);
		if (!ok && r->allow_members) {
			pthread_mutex_lock(&r->mu);
			for (int i = 0; r->have_snap && i < r->snap.nmember_addrs && !ok; i++)
				ok = pgw_cidr_match(&r->snap.member_addrs[i], sa);
			pthread_mutex_unlock(&r->mu);
		}
		inet_ntop(who.family, who.addr, addr, sizeof(addr));
	}
	if (!ok && log_allowed(r, &dropped)) {
		pgw_log_escape(esc, sizeof(esc), url);
		pgw_warn("restapi %s: %s %s from %s refused: not in restapi.allowlist%s", r->listen,
		         method, esc, addr, r->allow_members ? " nor a member's address" : "");
	}
	return ok;
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
	struct rest_req *req = *req_cls;

	(void)version;
	(void)upload_data;
	if (req == NULL)
		headers_arrived(cls, c);
	if (req == NULL && !method_is_read(method) && !allowed(cls, c, method, url))
		return reply(
		    cls, c, MHD_HTTP_FORBIDDEN,
		    error_body("access denied: this address may not call the unsafe endpoints "
		               "(restapi.allowlist)",
		               NULL),
		    REST_JSON_TYPE);
	if (req == NULL && needs_client_cert(cls, method) && !client_cert_ok(c))
		return reply(
		    cls, c, MHD_HTTP_FORBIDDEN,
		    error_body("a client certificate signed by restapi.cafile is required", NULL),
		    REST_JSON_TYPE);
	if (req == NULL)
		return begin_request(cls, c, req_cls);
	if (*upload_data_size > 0)
		return keep_body(cls, req, upload_data, upload_data_size);
	if (!method_is_read(method))
		return answer_write(cls, c, url, method, req);
	if (read_protected(cls, url) && !auth_ok(cls, c))
		return answer_unauthorized(cls, c);
	return answer_get(cls, c, url, method);
}

static void request_done(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	if (*req_cls) {
		free(((struct rest_req *)*req_cls)->body);
		free(*req_cls);
	}
	*req_cls = NULL;
}

/* Rate limit: may this message be logged?  *dropped: how many the last window left out. */
static bool log_allowed(struct pgw_rest *r, int *dropped)
{
	int64_t now = mono_ms();
	bool ok;

	pthread_mutex_lock(&r->mu);
	*dropped = 0;
	if (now - r->log_window_ms >= 60000) {
		*dropped = r->log_suppressed;
		r->log_window_ms = now;
		r->log_count = 0;
		r->log_suppressed = 0;
	}
	ok = r->log_count++ < REST_LOG_BURST;
	if (!ok)
		r->log_suppressed++;
	pthread_mutex_unlock(&r->mu);
	return ok;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct pgw_rest *r = cls;
	char msg[512];
	size_t n;
	int dropped;
	bool ok = log_allowed(r, &dropped);

	if (dropped)
		pgw_warn("restapi %s: %d more messages in the last minute were not logged",
		         r->listen, dropped);
	if (!ok)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	pgw_warn("restapi %s: %s", r->listen, msg);
}

/* ---- start / publish / stop ------------------------------------------------ */

/* "127.0.0.1:8008" or "[::1]:8008" (literal addresses only). */
static bool parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, char *err,
                         size_t errlen)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t hlen;
	char *end;
	long port;

	if (colon == NULL || colon[1] == '\0')
		goto bad;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || errno != 0 || port < 0 || port > 65535 || colon[1] < '0' ||
	    colon[1] > '9')
		goto bad;
	hlen = (size_t)(colon - listen);
	if (hlen >= 2 && listen[0] == '[' && colon[-1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (h == listen) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*len = sizeof(*in);
		if (inet_pton(AF_INET, host, &in->sin_addr) == 1)
			return true;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1)
			return true;
	}
bad:
	snprintf(err, errlen,
	         "restapi.listen %s: expected IPv4:port or [IPv6]:port with a literal address",
	         listen);
	return false;
}

/* MHD does not say why it could not start: find out by binding the same address. */
static void explain_failure(const char *addr, const struct sockaddr_storage *ss, socklen_t len,
                            char *err, size_t errlen)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	int e = 0;

	if (fd < 0) {
		e = errno;
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ss->ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, 1) != 0)
			e = errno;
		close(fd);
	}
	if (e)
		snprintf(err, errlen, "restapi.listen %s: cannot listen: %s", addr, strerror(e));
	else
		snprintf(err, errlen,
		         "restapi.listen %s: cannot listen: libmicrohttpd failed to start (see the "
		         "log)",
		         addr);
}

static struct MHD_Daemon *start_mhd(struct pgw_rest *r, const struct sockaddr_storage *ss)
{
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
	uint16_t port = ss->ss_family == AF_INET6
	                    ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
	                    : ntohs(((const struct sockaddr_in *)ss)->sin_port);
	struct MHD_OptionItem opts[16];
	int n = 0;

#define OPT(o, v, p)                                                                               \
	opts[n++] = (struct MHD_OptionItem)                                                        \
	{                                                                                          \
		(o), (intptr_t)(v), (p)                                                            \
	}
	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The logger goes first so that MHD reports everything through it. */
	OPT(MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, r);
	OPT(MHD_OPTION_SOCK_ADDR, 0, (void *)ss);
	OPT(MHD_OPTION_THREAD_POOL_SIZE, REST_THREADS, NULL);
	OPT(MHD_OPTION_CONNECTION_LIMIT, REST_CONN_LIMIT, NULL);
	OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, REST_CONN_PER_IP, NULL);
	OPT(MHD_OPTION_CONNECTION_TIMEOUT, REST_CONN_TIMEOUT_S, NULL);
	OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, REST_CONN_MEMORY, NULL);
	OPT(MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)request_done, NULL);
	OPT(MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_connection, r);
	if (r->backlog > 0)
		OPT(MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)r->backlog, NULL);
	if (r->tls_cert && r->tls_priority[0])
		OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, r->tls_priority);
	if (r->tls_cert) {
		flags |= MHD_USE_TLS;
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, r->tls_cert);
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, r->tls_key);
		if (r->tls_key_password)
			OPT(MHD_OPTION_HTTPS_KEY_PASSWORD, 0, r->tls_key_password);
		if (r->tls_ca)
			OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, r->tls_ca);
	}
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
	return MHD_start_daemon(flags, port, NULL, NULL, handle_request, r, MHD_OPTION_ARRAY, opts,
	                        MHD_OPTION_END);
}

/* The whole of a PEM file named by config key `what`; NULL with err filled. */
static char *read_pem(const char *what, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	ssize_t got;

	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s %s: cannot read: %s", what, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (st.st_size <= 0 || st.st_size > 1024 * 1024) {
		snprintf(err, errlen, "%s %s: not a PEM file (size %lld)", what, path,
		         (long long)st.st_size);
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	if (got != st.st_size) {
		snprintf(err, errlen, "%s %s: cannot read: %s", what, path,
		         got < 0 ? strerror(errno) : "short read");
		free(buf);
		close(fd);
		return NULL;
	}
	buf[got] = '\0';
	close(fd);
	return buf;
}

static void tls_free(struct pgw_rest *r)
{
	free(r->tls_cert);
	free(r->tls_key);
	free(r->tls_ca);
	free(r->tls_key_password);
}

/* Read the PEM files of restapi TLS; false with err filled. */
static bool tls_load(struct pgw_rest *r, const struct pgw_rest_tls_config *t, char *err,
                     size_t errlen)
{
	if (t == NULL || t->certfile == NULL)
		return true;
	r->tls_cert = read_pem("restapi.certfile", t->certfile, err, errlen);
	if (r->tls_cert == NULL)
		return false;
	r->tls_key =
	    t->keyfile ? read_pem("restapi.keyfile", t->keyfile, err, errlen) : strdup(r->tls_cert);
	if (r->tls_key == NULL)
		return false;
	if (t->cafile && (r->tls_ca = read_pem("restapi.cafile", t->cafile, err, errlen)) == NULL)
		return false;
	if (t->keyfile_password && (r->tls_key_password = strdup(t->keyfile_password)) == NULL) {
		snprintf(err, errlen, "restapi.keyfile_password: out of memory");
		return false;
	}
	r->verify_client = t->cafile ? t->verify_client : PGW_VERIFY_NONE;
	return true;
}

/* The extra headers, copied (https ones only over TLS). */
static bool headers_load(struct pgw_rest *r, const struct pgw_rest_options *o)
{
	const struct pgw_kvlist *lists[2] = {o->http_headers,
	                                     r->tls_cert ? o->https_headers : NULL};
	size_t n = 0;

	for (int l = 0; l < 2; l++)
		n += lists[l] ? lists[l]->n : 0;
	if (n == 0)
		return true;
	r->headers = calloc(n, sizeof(*r->headers));
	if (!r->headers)
		return false;
	for (int l = 0; l < 2; l++)
		for (size_t i = 0; lists[l] && i < lists[l]->n; i++) {
			struct pgw_kv *kv = &r->headers[r->nheaders++];

			kv->name = strdup(lists[l]->items[i].name);
			kv->value = strdup(lists[l]->items[i].value);
			if (!kv->name || !kv->value)
				return false;
		}
	return true;
}

static bool allow_add(struct pgw_rest *r, const struct pgw_cidr *net)
{
	struct pgw_cidr *a = realloc(r->allow, (r->nallow + 1) * sizeof(*a));

	if (!a)
		return false;
	r->allow = a;
	r->allow[r->nallow++] = *net;
	return true;
}

/* restapi.allowlist: networks as they are, host names resolved (all their addresses). */
static bool allow_load(struct pgw_rest *r, const struct pgw_rest_options *o, char *err,
                       size_t errlen)
{
	r->allow_members = o->allowlist_include_members;
	r->allow_on = r->allow_members || (o->allowlist && o->allowlist->n > 0);
	for (size_t i = 0; o->allowlist && i < o->allowlist->n; i++) {
		const char *e = o->allowlist->items[i];
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
		struct pgw_cidr net;
		int rc;

		if (pgw_cidr_parse(e, &net)) {
			if (!allow_add(r, &net))
				goto oom;
			continue;
		}
		rc = getaddrinfo(e, NULL, &hints, &res);
		if (rc != 0) {
			pgw_warn("restapi.allowlist: %s: %s; it is left out (fails closed)", e,
			         gai_strerror(rc));
			continue;
		}
		for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
			if (pgw_cidr_from_sockaddr(ai->ai_addr, &net) && !allow_add(r, &net)) {
				freeaddrinfo(res);
				goto oom;
			}
		freeaddrinfo(res);
	}
	return true;
oom:
	snprintf(err, errlen, "restapi.allowlist: out of memory");
	return false;
}

static void options_free(struct pgw_rest *r)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->allow);
}

/* Everything of opts but listen; false with err. */
static bool options_load(struct pgw_rest *r, const struct pgw_rest_options *o, char *err,
                         size_t errlen)
{
	char why[256];

	if (!o)
		return true;
	if (!tls_load(r, o->tls, err, errlen))
		return false;
	r->backlog = o->backlog;
	if (o->ciphers && r->tls_cert &&
	    !pgw_tls_priority(o->ciphers, r->tls_priority, sizeof(r->tls_priority), why,
	                      sizeof(why))) {
		snprintf(err, errlen, "restapi.ciphers: %s", why);
		return false;
	}
	if (!headers_load(r, o)) {
		snprintf(err, errlen, "restapi extra headers: out of memory");
		return false;
	}
	return allow_load(r, o, err, errlen);
}

struct pgw_rest *pgw_rest_start(const char *listen, const struct pgw_rest_options *opts, char *err,
                                size_t errlen)
{
	const struct pgw_rest_tls_config *tls = opts ? opts->tls : NULL;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	socklen_t len;
	struct pgw_rest *r;

	if (!parse_listen(listen, &ss, &len, err, errlen))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "restapi.listen %s: out of memory", listen);
		return NULL;
	}
	snprintf(r->listen, sizeof(r->listen), "%s", listen);
	if (!options_load(r, opts, err, errlen)) {
		tls_free(r);
		options_free(r);
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->pend_mu, NULL);
	r->headers_ms = REST_HEADERS_MS;
	r->mhd = start_mhd(r, &ss);
	if (r->mhd == NULL) {
		if (r->tls_cert)
			snprintf(
			    err, errlen,
			    "restapi.listen %s: cannot start HTTPS with restapi.certfile %s "
			    "(is the key the certificate's, the PEM valid, the password right?)",
			    listen, tls->certfile);
		else
			explain_failure(listen, &ss, len, err, errlen);
		pthread_mutex_destroy(&r->mu);
		pthread_mutex_destroy(&r->pend_mu);
		tls_free(r);
		options_free(r);
		free(r);
		return NULL;
	}
	info = MHD_get_daemon_info(r->mhd, MHD_DAEMON_INFO_BIND_PORT);
	r->port = info ? info->port : 0;
	pgw_info("restapi: listening on %s (port %d, %s)", listen, r->port,
	         r->tls_cert ? "https" : "http");
	return r;
}

int pgw_rest_port(const struct pgw_rest *r)
{
	return r->port;
}

static void bodies_free(struct rest_bodies *b)
{
	free(b->patroni);
	free(b->metrics);
	free(b->cluster);
	free(b->history);
	free(b->config);
	memset(b, 0, sizeof(*b));
}

/* A copy of a borrowed string; false when out of memory (NULL stays NULL). */
static bool copy_body(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return src == NULL || *dst != NULL;
}

/* Everything a snapshot answers with, built and copied outside the lock. */
static void bodies_build(struct rest_bodies *b, const struct pgw_snapshot *snap)
{
	bool ok;

	b->patroni = pgw_rest_patroni_json(snap);
	b->metrics = pgw_rest_metrics_text(snap);
	ok = copy_body(&b->cluster, snap->cluster_json);
	ok = copy_body(&b->history, snap->history_json) && ok;
	ok = copy_body(&b->config, snap->config_json) && ok;
	if (b->patroni == NULL || b->metrics == NULL || !ok)
		pgw_error("restapi: cannot build the published bodies: out of memory");
}

void pgw_rest_publish(struct pgw_rest *r, const struct pgw_snapshot *snap)
{
	struct rest_bodies fresh = {0}, old;

	bodies_build(&fresh, snap);
	pthread_mutex_lock(&r->pend_mu);
	pend_sweep(r, mono_ms());
	pthread_mutex_unlock(&r->pend_mu);
	pthread_mutex_lock(&r->mu);
	old = r->bodies;
	r->bodies = fresh;
	r->snap = *snap;
	/* the caller's strings are borrowed: point at our copies instead */
	r->snap.cluster_json = fresh.cluster;
	r->snap.history_json = fresh.history;
	r->snap.config_json = fresh.config;
	r->have_snap = true;
	pthread_mutex_unlock(&r->mu);
	bodies_free(&old);
}

void pgw_rest_stop(struct pgw_rest *r)
{
	if (r == NULL)
		return;
	MHD_stop_daemon(r->mhd);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->pend_mu);
	bodies_free(&r->bodies);
	free(r->auth_user);
	free(r->auth_password);
	free(r->audit_log);
	tls_free(r);
	options_free(r);
	free(r);
}
