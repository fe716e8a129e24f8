/*
 * test_rest.c - the REST API: status codes (table-driven, pure), the /patroni
 * JSON body, and a real server on 127.0.0.1 hit with libcurl and raw sockets
 * (methods, before the first publish, oversized headers and bodies, and
 * concurrent requests while snapshots are published); the /cluster, /history,
 * /config bodies (deep-copied at publish) and the Prometheus text of /metrics.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "rest.h"

#define NOW_MS 1000000 /* the fake monotonic clock of the pure tests */

/* ---- snapshots ---------------------------------------------------------- */

static void add_tag(struct pgw_snapshot *s, const char *key, const char *value)
{
	snprintf(s->tags[s->ntags].key, sizeof(s->tags[0].key), "%s", key);
	snprintf(s->tags[s->ntags].value, sizeof(s->tags[0].value), "%s", value);
	s->ntags++;
}

static void base(struct pgw_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->scope, sizeof(s->scope), "demo");
	snprintf(s->name, sizeof(s->name), "node1");
	snprintf(s->version, sizeof(s->version), "0.1.0");
	s->state_str = "running";
	s->pg.datadir = PGW_DATADIR_VALID;
	s->pg.running = true;
	s->pg.accepting = true;
	s->pg.timeline = 3;
	s->pg.system_identifier = 7268616322854375442ULL;
	s->pg.server_version = 150018;
	s->pg.postmaster_start_time = 1724873966.352526;
	s->leader_optime = 50000000;
	s->dcs_last_seen = 1724874235.5;
	s->loop_mono_ms = NOW_MS - 5000;
	s->loop_wait = 10;
	s->ttl = 30;
	add_tag(s, "dc", "east");
	add_tag(s, "clonefrom", "true");
	add_tag(s, "failover_priority", "2");
	snprintf(s->last_action, sizeof(s->last_action), "renew");
	snprintf(s->last_reason, sizeof(s->last_reason), "I am the leader");
}

static void primary_with_key(struct pgw_snapshot *s)
{
	base(s);
	s->role = PGW_ROLE_PRIMARY;
	s->holds_leader_key = true;
	s->writes_until_ms = INT64_MAX; /* the lease allows writes */
	s->pg.wal_lsn = 50000000;
	s->pg.nreplication = 1;
	snprintf(s->pg.replication[0].usename, 64, "replicator");
	snprintf(s->pg.replication[0].application_name, 64, "node2");
	snprintf(s->pg.replication[0].client_addr, 64, "127.0.0.2");
	snprintf(s->pg.replication[0].state, 32, "streaming");
	snprintf(s->pg.replication[0].sync_state, 16, "async");
}

/* holds the key, runs as primary, but its loop has not run since D - S passed */
static void primary_past_deadline(struct pgw_snapshot *s)
{
	primary_with_key(s);
	s->writes_until_ms = NOW_MS;
}

static void primary_without_key(struct pgw_snapshot *s)
{
	primary_with_key(s);
	s->holds_leader_key = false;
	s->cluster_unlocked = true;
}

static void replica_streaming(struct pgw_snapshot *s)
{
	base(s);
	s->role = PGW_ROLE_REPLICA;
	s->pg.in_recovery = true;
	s->pg.streaming = true;
	s->pg.received_lsn = 49900000; /* 100000 bytes behind */
	s->pg.replayed_lsn = 49800000;
	s->pg.replayed_timestamp = 1724874230.25;
}

static void replica_lagging(struct pgw_snapshot *s)
{
	replica_streaming(s);
	s->pg.streaming = false;
	s->pg.received_lsn = 10000000; /* 40 MB behind */
	s->pg.replayed_lsn = 10000000;
}

static void replica_noloadbalance(struct pgw_snapshot *s)
{
	replica_streaming(s);
	s->noloadbalance = true;
	add_tag(s, "noloadbalance", "true");
}

static void replica_unknown_optime(struct pgw_snapshot *s)
{
	replica_streaming(s);
	s->leader_optime = -1;
}

static void stopped_node(struct pgw_snapshot *s)
{
	replica_streaming(s);
	s->state_str = "stopped";
	s->pg.running = false;
	s->pg.accepting = false;
	s->pg.streaming = false;
}

static void uninitialized(struct pgw_snapshot *s)
{
	base(s);
	s->state_str = "uninitialized";
	s->role = PGW_ROLE_UNINITIALIZED;
	s->pg.running = false;
	s->pg.datadir = PGW_DATADIR_EMPTY;
	s->pg.server_version = 0;
	s->pg.timeline = 0;
	s->pg.system_identifier = 0;
	s->pg.postmaster_start_time = 0;
}

/* the leader of a standby cluster: holds the key, runs as a standby of the remote */
static void standby_leader(struct pgw_snapshot *s)
{
	replica_streaming(s);
	s->holds_leader_key = true;
	s->standby_leader = true;
}

static void stale_loop(struct pgw_snapshot *s)
{
	replica_streaming(s);
	s->loop_mono_ms = NOW_MS - 31000;
}

static void stale_loop_paused(struct pgw_snapshot *s)
{
	stale_loop(s);
	s->paused = true;
}

static void primary_with_bodies(struct pgw_snapshot *s)
{
	primary_with_key(s);
	s->cluster_json = "{\"members\":[]}";
	s->history_json = "[]";
	s->config_json = "{\"ttl\":30}";
}

/* ---- (1) status codes ----------------------------------------------------- */

struct status_case {
	const char *name;
	void (*make)(struct pgw_snapshot *);
	const char *path;
	const char *query;
	int want;
};

static const struct status_case status_cases[] = {
    {"pk /", primary_with_key, "/", NULL, 200},
    {"pk /primary", primary_with_key, "/primary", NULL, 200},
    {"pk /master", primary_with_key, "/master", NULL, 200},
    {"pk /read-write", primary_with_key, "/read-write", NULL, 200},
    {"pk /primary tag ignored", primary_with_key, "/primary", "tag_dc=west", 200},
    {"pk /leader", primary_with_key, "/leader", NULL, 200},
    {"pk /standby-leader", primary_with_key, "/standby-leader", NULL, 503},
    {"pk /replica", primary_with_key, "/replica", NULL, 503},
    {"pk /read-only", primary_with_key, "/read-only", NULL, 200},
    {"pk /health", primary_with_key, "/health", NULL, 200},
    {"pk /liveness", primary_with_key, "/liveness", NULL, 200},
    {"pk /readiness", primary_with_key, "/readiness", NULL, 200},
    {"pk /patroni", primary_with_key, "/patroni", NULL, 200},
    {"pk unknown", primary_with_key, "/nope", NULL, 404},
    {"pk /primary/", primary_with_key, "/primary/", NULL, 200},
    {"pk /primaryx", primary_with_key, "/primaryx", NULL, 404},

    {"p-late /primary", primary_past_deadline, "/primary", NULL, 503},
    {"p-late /", primary_past_deadline, "/", NULL, 503},

    {"p-nokey /", primary_without_key, "/", NULL, 503},
    {"p-nokey /primary", primary_without_key, "/primary", NULL, 503},
    {"p-nokey /leader", primary_without_key, "/leader", NULL, 503},
    {"p-nokey /read-only", primary_without_key, "/read-only", NULL, 503},
    {"p-nokey /replica", primary_without_key, "/replica", NULL, 503},
    {"p-nokey /health", primary_without_key, "/health", NULL, 200},
    {"p-nokey /readiness", primary_without_key, "/readiness", NULL, 503},
    {"p-nokey /patroni", primary_without_key, "/patroni", NULL, 200},

    {"rs /primary", replica_streaming, "/primary", NULL, 503},
    {"rs /leader", replica_streaming, "/leader", NULL, 503},
    {"rs /replica", replica_streaming, "/replica", NULL, 200},
    {"rs /replica lag=1MB", replica_streaming, "/replica", "lag=1MB", 200},
    {"rs /replica lag=1mb", replica_streaming, "/replica", "lag=1mb", 200},
    {"rs /replica lag=100000", replica_streaming, "/replica", "lag=100000", 200},
    {"rs /replica lag=99999", replica_streaming, "/replica", "lag=99999", 503},
    {"rs /replica lag=98kB", replica_streaming, "/replica", "lag=98kB", 200},
    {"rs /replica lag=97KB", replica_streaming, "/replica", "lag=97KB", 503},
    {"rs /replica lag=97B", replica_streaming, "/replica", "lag=97B", 503},
    {"rs /replica lag=1GB", replica_streaming, "/replica", "lag=1GB", 200},
    {"rs /replica lag=1TB", replica_streaming, "/replica", "lag=1TB", 200},
    {"rs /replica lag=garbage", replica_streaming, "/replica", "lag=garbage", 503},
    {"rs /replica lag=", replica_streaming, "/replica", "lag=", 503},
    {"rs /replica lag", replica_streaming, "/replica", "lag", 503},
    {"rs /replica lag=-1", replica_streaming, "/replica", "lag=-1", 503},
    {"rs /replica lag=1.5MB", replica_streaming, "/replica", "lag=1.5MB", 503},
    {"rs /replica lag=1PB", replica_streaming, "/replica", "lag=1PB", 503},
    {"rs /replica lag overflow", replica_streaming, "/replica", "lag=99999999999999999999", 503},
    {"rs /replica lag TB overflow", replica_streaming, "/replica", "lag=9999999999TB", 503},
    {"rs /replica tag_dc=east", replica_streaming, "/replica", "tag_dc=east", 200},
    {"rs /replica tag_dc=e%61st", replica_streaming, "/replica", "tag_dc=e%61st", 200},
    {"rs /replica tag_dc=west", replica_streaming, "/replica", "tag_dc=west", 503},
    {"rs /replica tag_rack=1", replica_streaming, "/replica", "tag_rack=1", 503},
    {"rs /replica tag_clonefrom=true", replica_streaming, "/replica", "tag_clonefrom=true", 200},
    {"rs /replica lag+tag", replica_streaming, "/replica", "lag=1MB&tag_dc=east", 200},
    {"rs /replica lag+badtag", replica_streaming, "/replica", "lag=1MB&tag_dc=west", 503},
    {"rs /replica other arg", replica_streaming, "/replica", "foo=bar&&=&x", 200},
    {"rs /read-only", replica_streaming, "/read-only", NULL, 200},
    {"rs /read-only lag=garbage", replica_streaming, "/read-only", "lag=garbage", 503},
    {"rs /health", replica_streaming, "/health", NULL, 200},
    {"rs /readiness", replica_streaming, "/readiness", NULL, 200},
    {"rs /liveness", replica_streaming, "/liveness", NULL, 200},
    {"rs unknown", replica_streaming, "/cluster-x", "lag=1MB", 404},

    {"rl /replica", replica_lagging, "/replica", NULL, 200},
    {"rl /replica lag=1MB", replica_lagging, "/replica", "lag=1MB", 503},
    {"rl /replica lag=100MB", replica_lagging, "/replica", "lag=100MB", 200},
    {"rl /readiness", replica_lagging, "/readiness", NULL, 503},
    {"rl /read-only lag=1MB", replica_lagging, "/read-only", "lag=1MB", 503},

    {"ru /replica", replica_unknown_optime, "/replica", NULL, 200},
    {"ru /replica lag=1TB", replica_unknown_optime, "/replica", "lag=1TB", 503},

    {"rn /replica", replica_noloadbalance, "/replica", NULL, 503},
    {"rn /read-only", replica_noloadbalance, "/read-only", NULL, 503},
    {"rn /health", replica_noloadbalance, "/health", NULL, 200},

    {"st /replica", stopped_node, "/replica", NULL, 503},
    {"st /health", stopped_node, "/health", NULL, 503},
    {"st /readiness", stopped_node, "/readiness", NULL, 503},
    {"st /liveness", stopped_node, "/liveness", NULL, 200},
    {"st /patroni", stopped_node, "/patroni", NULL, 200},

    {"un /", uninitialized, "/", NULL, 503},
    {"un /replica", uninitialized, "/replica", NULL, 503},
    {"un /read-only", uninitialized, "/read-only", NULL, 503},
    {"un /health", uninitialized, "/health", NULL, 503},
    {"un /patroni", uninitialized, "/patroni", NULL, 200},
    {"un unknown", uninitialized, "/x", NULL, 404},

    {"stale /liveness", stale_loop, "/liveness", NULL, 503},
    {"stale paused /liveness", stale_loop_paused, "/liveness", NULL, 200},

    {"pk /sync", primary_with_key, "/sync", NULL, 503},
    {"pk /async", primary_with_key, "/async", NULL, 503},
    {"pk /standby_leader", primary_with_key, "/standby_leader", NULL, 503},
    {"rs /sync", replica_streaming, "/sync", NULL, 503},
    {"rs /synchronous", replica_streaming, "/synchronous", NULL, 503},
    {"rs /async", replica_streaming, "/async", NULL, 200},
    {"rs /asynchronous/", replica_streaming, "/asynchronous/", NULL, 200},
    {"rs /async lag=99999", replica_streaming, "/async", "lag=99999", 503},
    {"rs /async tag_dc=east", replica_streaming, "/async", "tag_dc=east", 200},
    {"rs /asynchronous tag_dc=west", replica_streaming, "/asynchronous", "tag_dc=west", 503},
    {"rs /asyncx", replica_streaming, "/asyncx", NULL, 404},
    {"rl /async lag=1MB", replica_lagging, "/async", "lag=1MB", 503},
    {"rn /async", replica_noloadbalance, "/async", NULL, 503},
    {"st /async", stopped_node, "/async", NULL, 503},
    {"rs /standby-leader", replica_streaming, "/standby-leader", NULL, 503},
    {"sl /standby-leader", standby_leader, "/standby-leader", NULL, 200},
    {"sl /standby_leader", standby_leader, "/standby_leader", NULL, 200},
    {"sl /standby-leader tag", standby_leader, "/standby-leader", "tag_dc=nowhere", 503},
    {"sl /leader", standby_leader, "/leader", NULL, 200},
    {"sl /primary", standby_leader, "/primary", NULL, 503},
    {"sl /", standby_leader, "/", NULL, 503},
    {"sl /replica", standby_leader, "/replica", NULL, 503},
    {"sl /read-only", standby_leader, "/read-only", NULL, 200},
    {"sl /readiness", standby_leader, "/readiness", NULL, 200},

    {"pk /cluster null", primary_with_key, "/cluster", NULL, 503},
    {"pk /config null", primary_with_key, "/config", NULL, 503},
    {"pk /history null", primary_with_key, "/history", NULL, 200},
    {"pk /metrics", primary_with_key, "/metrics", NULL, 200},
    {"pb /cluster", primary_with_bodies, "/cluster", NULL, 200},
    {"pb /cluster/", primary_with_bodies, "/cluster/", "lag=garbage", 200},
    {"pb /config", primary_with_bodies, "/config", NULL, 200},
    {"pb /history", primary_with_bodies, "/history", NULL, 200},
    {"pb /clusters", primary_with_bodies, "/clusters", NULL, 404},
    {"un /metrics", uninitialized, "/metrics", NULL, 200},
};

static void test_status_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]); i++) {
		const struct status_case *c = &status_cases[i];
		struct pgw_snapshot s;
		int got;

		c->make(&s);
		got = pgw_rest_status_for(&s, c->path, c->query, NOW_MS);
		if (got != c->want)
			fail_msg("%s: %s?%s -> %d, want %d", c->name, c->path,
			         c->query ? c->query : "", got, c->want);
	}
}

static void test_status_no_snapshot(void **state)
{
	(void)state;
	assert_int_equal(pgw_rest_status_for(NULL, "/primary", NULL, NOW_MS), 503);
	assert_int_equal(pgw_rest_status_for(NULL, "/nope", NULL, NOW_MS), 503);
	assert_int_equal(pgw_rest_status_for(NULL, "/cluster", NULL, NOW_MS), 503);
	assert_int_equal(pgw_rest_status_for(NULL, "/metrics", NULL, NOW_MS), 503);
}

static void test_liveness_ttl_fallback(void **state)
{
	struct pgw_snapshot s;

	(void)state;
	replica_streaming(&s);
	s.ttl = 0;
	s.loop_wait = 10;
	s.loop_mono_ms = NOW_MS - 20000;
	assert_int_equal(pgw_rest_status_for(&s, "/liveness", NULL, NOW_MS), 200);
	s.loop_mono_ms = NOW_MS - 20001;
	assert_int_equal(pgw_rest_status_for(&s, "/liveness", NULL, NOW_MS), 503);
}

/* ---- (2) the JSON body ---------------------------------------------------- */

static json_object *get(json_object *o, const char *key, json_type type)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("missing key %s", key);
	if (json_object_get_type(v) != type)
		fail_msg("key %s: type %s", key, json_type_to_name(json_object_get_type(v)));
	return v;
}

static void assert_absent(json_object *o, const char *key)
{
	if (json_object_object_get_ex(o, key, NULL))
		fail_msg("key %s should be absent", key);
}

static json_object *body_of(const struct pgw_snapshot *s)
{
	char *text = pgw_rest_patroni_json(s);
	json_object *o;

	assert_non_null(text);
	o = json_tokener_parse(text);
	free(text);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

static void check_common(json_object *o)
{
	json_object *tags = get(o, "tags", json_type_object);
	json_object *p = get(o, "patroni", json_type_object);
	json_object *w = get(o, "pgwarden", json_type_object);

	assert_string_equal(json_object_get_string(get(o, "state", json_type_string)), "running");
	assert_string_equal(
	    json_object_get_string(get(o, "postmaster_start_time", json_type_string)),
	    "2024-08-28 19:39:26.352526+00:00");
	assert_int_equal(json_object_get_int(get(o, "server_version", json_type_int)), 150018);
	assert_int_equal(json_object_get_int(get(o, "timeline", json_type_int)), 3);
	assert_int_equal(json_object_get_int64(get(o, "dcs_last_seen", json_type_int)), 1724874235);
	assert_string_equal(
	    json_object_get_string(get(o, "database_system_identifier", json_type_string)),
	    "7268616322854375442");
	assert_string_equal(json_object_get_string(get(tags, "dc", json_type_string)), "east");
	assert_true(json_object_get_boolean(get(tags, "clonefrom", json_type_boolean)));
	assert_int_equal(json_object_get_int(get(tags, "failover_priority", json_type_int)), 2);
	assert_string_equal(json_object_get_string(get(p, "version", json_type_string)), "0.1.0");
	assert_string_equal(json_object_get_string(get(p, "scope", json_type_string)), "demo");
	assert_string_equal(json_object_get_string(get(w, "name", json_type_string)), "node1");
	get(w, "holds_leader_key", json_type_boolean);
	assert_string_equal(json_object_get_string(get(w, "last_action", json_type_string)),
	                    "renew");
	get(w, "last_reason", json_type_string);
}

static void test_json_primary(void **state)
{
	struct pgw_snapshot s;
	json_object *o, *xlog, *rep, *r0;

	(void)state;
	primary_with_key(&s);
	o = body_of(&s);
	check_common(o);
	assert_string_equal(json_object_get_string(get(o, "role", json_type_string)), "master");
	xlog = get(o, "xlog", json_type_object);
	assert_int_equal(json_object_get_int64(get(xlog, "location", json_type_int)), 50000000);
	assert_absent(xlog, "received_location");
	rep = get(o, "replication", json_type_array);
	assert_int_equal(json_object_array_length(rep), 1);
	r0 = json_object_array_get_idx(rep, 0);
	assert_string_equal(json_object_get_string(get(r0, "usename", json_type_string)),
	                    "replicator");
	assert_string_equal(json_object_get_string(get(r0, "application_name", json_type_string)),
	                    "node2");
	get(r0, "client_addr", json_type_string);
	get(r0, "state", json_type_string);
	get(r0, "sync_state", json_type_string);
	get(r0, "sync_priority", json_type_int);
	assert_true(json_object_get_boolean(
	    get(get(o, "pgwarden", json_type_object), "holds_leader_key", json_type_boolean)));
	assert_absent(o, "cluster_unlocked");
	assert_absent(o, "pending_restart");
	assert_absent(o, "pause");
	assert_absent(o, "watchdog_failed");
	json_object_put(o);
}

static void test_json_standby_leader(void **state)
{
	struct pgw_snapshot s;
	json_object *o, *xlog;

	(void)state;
	standby_leader(&s);
	o = body_of(&s);
	assert_string_equal(json_object_get_string(get(o, "role", json_type_string)),
	                    "standby_leader");
	xlog = get(o, "xlog", json_type_object);
	get(xlog, "received_location", json_type_int);
	json_object_put(o);
}

static void test_json_replica(void **state)
{
	struct pgw_snapshot s;
	json_object *o, *xlog, *tags;

	(void)state;
	replica_noloadbalance(&s);
	s.cluster_unlocked = true;
	s.pending_restart = true;
	s.paused = true;
	s.watchdog_failed = true;
	o = body_of(&s);
	check_common(o);
	assert_string_equal(json_object_get_string(get(o, "role", json_type_string)), "replica");
	xlog = get(o, "xlog", json_type_object);
	assert_int_equal(json_object_get_int64(get(xlog, "received_location", json_type_int)),
	                 49900000);
	assert_int_equal(json_object_get_int64(get(xlog, "replayed_location", json_type_int)),
	                 49800000);
	assert_string_equal(
	    json_object_get_string(get(xlog, "replayed_timestamp", json_type_string)),
	    "2024-08-28 19:43:50.250000+00:00");
	assert_false(json_object_get_boolean(get(xlog, "paused", json_type_boolean)));
	assert_absent(xlog, "location");
	assert_absent(o, "replication");
	tags = get(o, "tags", json_type_object);
	assert_true(json_object_get_boolean(get(tags, "noloadbalance", json_type_boolean)));
	assert_true(json_object_get_boolean(get(o, "cluster_unlocked", json_type_boolean)));
	assert_true(json_object_get_boolean(get(o, "pending_restart", json_type_boolean)));
	assert_true(json_object_get_boolean(get(o, "pause", json_type_boolean)));
	assert_true(json_object_get_boolean(get(o, "watchdog_failed", json_type_boolean)));
	json_object_put(o);

	s.pg.replayed_timestamp = 0;
	o = body_of(&s);
	get(get(o, "xlog", json_type_object), "replayed_timestamp", json_type_null);
	json_object_put(o);
}

static void test_json_uninitialized_and_odd_strings(void **state)
{
	struct pgw_snapshot s;
	json_object *o;

	(void)state;
	uninitialized(&s);
	memset(s.name, 'x', sizeof(s.name)); /* no NUL: must stay bounded */
	snprintf(s.last_reason, sizeof(s.last_reason), "quote \" backslash \\ newline \n");
	o = body_of(&s);
	assert_string_equal(json_object_get_string(get(o, "role", json_type_string)),
	                    "uninitialized");
	assert_absent(o, "xlog");
	assert_absent(o, "postmaster_start_time");
	assert_absent(o, "server_version");
	assert_absent(o, "database_system_identifier");
	assert_int_equal(json_object_get_string_len(
	                     get(get(o, "pgwarden", json_type_object), "name", json_type_string)),
	                 sizeof(s.name));
	assert_string_equal(json_object_get_string(get(get(o, "pgwarden", json_type_object),
	                                               "last_reason", json_type_string)),
	                    s.last_reason);
	json_object_put(o);
}

/* ---- (2b) the /metrics text ------------------------------------------------ */

#define NAME_RE  "[a-zA-Z_:][a-zA-Z0-9_:]*"
#define LABEL_RE "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""

/* The lines of the Prometheus text format 0.0.4 that pgwarden writes. */
struct prom_re {
	regex_t help, type, sample;
};

static void prom_re_init(struct prom_re *re)
{
	assert_int_equal(regcomp(&re->help, "^# HELP (" NAME_RE ") [^\n]+$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&re->type,
	                         "^# TYPE (" NAME_RE ") (counter|gauge|histogram|summary|untyped)$",
	                         REG_EXTENDED),
	                 0);
	assert_int_equal(regcomp(&re->sample,
	                         "^(" NAME_RE ")(\\{" LABEL_RE "(," LABEL_RE ")*\\})? "
	                         "[-+]?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$",
	                         REG_EXTENDED),
	                 0);
}

static void prom_re_free(struct prom_re *re)
{
	regfree(&re->help);
	regfree(&re->type);
	regfree(&re->sample);
}

/* The first capture group of a match, or fail. */
static void match_name(const regex_t *re, const char *line, char *name, size_t namelen)
{
	regmatch_t m[2];
	int len;

	if (regexec(re, line, 2, m, 0) != 0)
		fail_msg("not a valid Prometheus line: \"%s\"", line);
	len = (int)(m[1].rm_eo - m[1].rm_so);
	snprintf(name, namelen, "%.*s", len, line + m[1].rm_so);
}

/* Every line valid; each family: # HELP, # TYPE, then its samples.  Returns the samples. */
static int check_metrics(const char *text)
{
	struct prom_re re;
	char *copy = strdup(text), *save = NULL;
	char help[128] = "", type[128] = "", name[128];
	int samples = 0;

	assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	prom_re_init(&re);
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ", 7) == 0) {
			match_name(&re.help, line, help, sizeof(help));
			type[0] = '\0';
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			match_name(&re.type, line, type, sizeof(type));
			assert_string_equal(type, help);
		} else {
			match_name(&re.sample, line, name, sizeof(name));
			assert_string_equal(name, type);
			samples++;
		}
	}
	prom_re_free(&re);
	free(copy);
	return samples;
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = strstr(text, line); p; p = strstr(p + 1, line)) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	}
	return false;
}

#define LABELS "{scope=\"demo\",name=\"node1\"}"

static void expect_lines(const char *text, const char *const *lines, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!has_line(text, lines[i]))
			fail_msg("missing line \"%s\" in:\n%s", lines[i], text);
	}
}

static char *metrics_of(const struct pgw_snapshot *s)
{
	char *text = pgw_rest_metrics_text(s);

	assert_non_null(text);
	check_metrics(text);
	return text;
}

static void test_metrics_primary(void **state)
{
	static const char *const want[] = {
	    "patroni_version" LABELS " 000100",
	    "patroni_postgres_running" LABELS " 1",
	    "patroni_postmaster_start_time" LABELS " 1724873966.352526",
	    "patroni_master" LABELS " 1",
	    "patroni_primary" LABELS " 1",
	    "patroni_replica" LABELS " 0",
	    "patroni_xlog_location" LABELS " 50000000",
	    "patroni_xlog_received_location" LABELS " 0",
	    "patroni_xlog_replayed_location" LABELS " 0",
	    "patroni_xlog_replayed_timestamp" LABELS " 0.000000",
	    "patroni_xlog_paused" LABELS " 0",
	    "patroni_postgres_timeline" LABELS " 3",
	    "patroni_postgres_server_version" LABELS " 150018",
	    "patroni_dcs_last_seen" LABELS " 1724874235",
	    "patroni_pending_restart" LABELS " 0",
	    "patroni_is_paused" LABELS " 0",
	    "patroni_cluster_unlocked" LABELS " 0",
	    "pgwarden_holds_leader_key" LABELS " 1",
	    "pgwarden_lease_deadline_margin_seconds" LABELS " 12.345",
	    "# TYPE patroni_xlog_location counter",
	    "# TYPE patroni_primary gauge",
	};
	struct pgw_snapshot s;
	char *text;

	(void)state;
	primary_with_key(&s);
	s.has_lease = true;
	s.lease_budget_ms = 12345;
	text = metrics_of(&s);
	expect_lines(text, want, sizeof(want) / sizeof(want[0]));
	assert_null(strstr(text, "pgwarden_replication_lag_bytes"));
	free(text);

	/* a lease past its budget: a negative margin; no lease: no line */
	s.lease_budget_ms = -1500;
	text = metrics_of(&s);
	assert_true(has_line(text, "pgwarden_lease_deadline_margin_seconds" LABELS " -1.500"));
	free(text);
	s.has_lease = false;
	s.holds_leader_key = false;
	s.cluster_unlocked = true;
	text = metrics_of(&s);
	assert_null(strstr(text, "pgwarden_lease_deadline_margin_seconds"));
	assert_true(has_line(text, "patroni_primary" LABELS " 0"));
	assert_true(has_line(text, "patroni_cluster_unlocked" LABELS " 1"));
	assert_true(has_line(text, "pgwarden_holds_leader_key" LABELS " 0"));
	free(text);
}

static void test_metrics_replica(void **state)
{
	static const char *const want[] = {
	    "patroni_primary" LABELS " 0",
	    "patroni_master" LABELS " 0",
	    "patroni_replica" LABELS " 1",
	    "patroni_xlog_location" LABELS " 0",
	    "patroni_xlog_received_location" LABELS " 49900000",
	    "patroni_xlog_replayed_location" LABELS " 49800000",
	    "patroni_xlog_replayed_timestamp" LABELS " 1724874230.250000",
	    "patroni_xlog_paused" LABELS " 1",
	    "patroni_pending_restart" LABELS " 1",
	    "patroni_is_paused" LABELS " 1",
	    "pgwarden_holds_leader_key" LABELS " 0",
	    "pgwarden_replication_lag_bytes" LABELS " 100000",
	};
	struct pgw_snapshot s;
	char *text;

	(void)state;
	replica_streaming(&s);
	s.pg.replay_paused = true;
	s.pending_restart = true;
	s.paused = true;
	text = metrics_of(&s);
	expect_lines(text, want, sizeof(want) / sizeof(want[0]));
	assert_null(strstr(text, "pgwarden_lease_deadline_margin_seconds"));
	free(text);

	/* ahead of the published optime: 0; optime unknown: no line */
	s.pg.received_lsn = 60000000;
	text = metrics_of(&s);
	assert_true(has_line(text, "pgwarden_replication_lag_bytes" LABELS " 0"));
	free(text);
	s.leader_optime = -1;
	text = metrics_of(&s);
	assert_null(strstr(text, "pgwarden_replication_lag_bytes"));
	free(text);
}

static void test_metrics_odd_labels(void **state)
{
	struct pgw_snapshot s;
	char *text;

	(void)state;
	uninitialized(&s);
	snprintf(s.scope, sizeof(s.scope), "a\"b\\c\nd");
	memset(s.name, 'x', sizeof(s.name)); /* no NUL: must stay bounded */
	snprintf(s.version, sizeof(s.version), "3.0.2");
	text = metrics_of(&s);
	assert_non_null(strstr(text, "{scope=\"a\\\"b\\\\c\\nd\",name=\"xxxx"));
	assert_non_null(strstr(text, "\"} 030002\n"));
	assert_true(has_line(text, "# TYPE patroni_version gauge"));
	assert_null(strstr(text, "pgwarden_replication_lag_bytes"));
	free(text);
}

/* ---- (3) a real server -------------------------------------------------- */

struct buf {
	char *data;
	size_t len;
};

static size_t collect(char *ptr, size_t size, size_t n, void *userdata)
{
	struct buf *b = userdata;
	char *p = realloc(b->data, b->len + size * n + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->len, ptr, size * n);
	b->data = p;
	b->len += size * n;
	b->data[b->len] = '\0';
	return size * n;
}

/* One request; returns the status code (0 on a transport error), *body malloc'd. */
static long http(CURL *curl, int port, const char *method, const char *path, char **body,
                 struct buf *headers)
{
	char url[512];
	struct buf b = {NULL, 0};
	long status = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	if (headers) {
		curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
		curl_easy_setopt(curl, CURLOPT_HEADERDATA, headers);
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (body)
		*body = b.data ? b.data : strdup("");
	else
		free(b.data);
	return status;
}

static long http_code(CURL *curl, int port, const char *method, const char *path)
{
	return http(curl, port, method, path, NULL, NULL);
}

static struct pgw_rest *start_any_port(void)
{
	char err[256] = "";
	struct pgw_rest *r = pgw_rest_start("127.0.0.1:0", NULL, err, sizeof(err));

	if (r == NULL)
		fail_msg("pgw_rest_start: %s", err);
	assert_true(pgw_rest_port(r) > 0);
	return r;
}

static void test_server_before_publish(void **state)
{
	struct pgw_rest *r = start_any_port();
	CURL *curl = curl_easy_init();
	char *body;

	(void)state;
	assert_int_equal(http(curl, pgw_rest_port(r), "GET", "/primary", &body, NULL), 503);
	assert_string_equal(body, "{\"state\":\"starting\"}");
	free(body);
	assert_int_equal(http_code(curl, pgw_rest_port(r), "GET", "/replica"), 503);
	assert_int_equal(http_code(curl, pgw_rest_port(r), "HEAD", "/patroni"), 503);
	assert_int_equal(http_code(curl, pgw_rest_port(r), "GET", "/nope"), 503);
	assert_int_equal(http_code(curl, pgw_rest_port(r), "POST", "/primary"), 405);
	curl_easy_cleanup(curl);
	pgw_rest_stop(r);
}

static void check_json_body(const char *body, const char *role)
{
	json_object *o = json_tokener_parse(body);
	json_object *v;

	if (o == NULL)
		fail_msg("not JSON: %s", body);
	assert_true(json_object_object_get_ex(o, "role", &v));
	assert_string_equal(json_object_get_string(v), role);
	json_object_put(o);
}

static void test_server_methods(void **state)
{
	struct pgw_rest *r = start_any_port();
	CURL *curl = curl_easy_init();
	struct pgw_snapshot s;
	int port = pgw_rest_port(r);
	struct buf hdrs = {NULL, 0};
	char *body;

	(void)state;
	primary_with_key(&s);
	pgw_rest_publish(r, &s);
	assert_int_equal(http(curl, port, "GET", "/primary", &body, &hdrs), 200);
	check_json_body(body, "master");
	assert_non_null(strcasestr(hdrs.data, "Content-Type: application/json\r\n"));
	free(body);
	free(hdrs.data);
	hdrs = (struct buf){NULL, 0};
	assert_int_equal(http(curl, port, "HEAD", "/primary", &body, &hdrs), 200);
	assert_string_equal(body, "");
	assert_non_null(strcasestr(hdrs.data, "Content-Type: application/json\r\n"));
	free(body);
	free(hdrs.data);
	hdrs = (struct buf){NULL, 0};
	assert_int_equal(http(curl, port, "OPTIONS", "/primary", &body, &hdrs), 200);
	assert_string_equal(body, "");
	assert_non_null(strcasestr(hdrs.data, "Allow: GET, HEAD, OPTIONS\r\n"));
	assert_non_null(strcasestr(hdrs.data, "Content-Length: 0\r\n"));
	free(body);
	free(hdrs.data);
	assert_int_equal(http_code(curl, port, "GET", "/replica"), 503);
	assert_int_equal(http_code(curl, port, "HEAD", "/replica"), 503);
	assert_int_equal(http_code(curl, port, "OPTIONS", "/replica"), 503);

	replica_streaming(&s);
	pgw_rest_publish(r, &s);
	assert_int_equal(http_code(curl, port, "GET", "/primary"), 503);
	assert_int_equal(http_code(curl, port, "HEAD", "/primary"), 503);
	assert_int_equal(http_code(curl, port, "OPTIONS", "/primary"), 503);
	assert_int_equal(http(curl, port, "GET", "/replica", &body, NULL), 200);
	check_json_body(body, "replica");
	free(body);
	assert_int_equal(http_code(curl, port, "HEAD", "/replica"), 200);
	assert_int_equal(http_code(curl, port, "OPTIONS", "/replica"), 200);
	/* query arguments arrive URL-decoded */
	assert_int_equal(http_code(curl, port, "GET", "/replica?lag=1MB&tag_dc=e%61st"), 200);
	assert_int_equal(http_code(curl, port, "GET", "/replica?lag=1kB"), 503);
	assert_int_equal(http_code(curl, port, "GET", "/replica?lag=garbage"), 503);
	assert_int_equal(http_code(curl, port, "GET", "/replica?tag_dc=west"), 503);

	assert_int_equal(http(curl, port, "GET", "/nope", &body, NULL), 404);
	assert_non_null(strstr(body, "\"error\""));
	free(body);
	assert_int_equal(http_code(curl, port, "POST", "/primary"), 405);
	assert_int_equal(http_code(curl, port, "PUT", "/config"), 405);
	assert_int_equal(http_code(curl, port, "PATCH", "/config"), 405);
	assert_int_equal(http_code(curl, port, "DELETE", "/switchover"), 405);
	curl_easy_cleanup(curl);
	pgw_rest_stop(r);
}

static size_t discard(char *ptr, size_t size, size_t n, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * n;
}

/* POST `len` bytes (chunked when asked); the status code, 0 on a transport error. */
static long post(CURL *curl, int port, const char *data, size_t len, bool chunked)
{
	struct curl_slist *h = NULL;
	char url[128];
	long status = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/switchover", port);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
	if (chunked) {
		h = curl_slist_append(h, "Transfer-Encoding: chunked");
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	}
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return status;
}

static void test_server_bodies(void **state)
{
	struct pgw_rest *r = start_any_port();
	CURL *curl = curl_easy_init();
	size_t big = 100 * 1024;
	char *data = malloc(big + 1);
	int port = pgw_rest_port(r);
	long st;

	(void)state;
	memset(data, 'a', big);
	data[big] = '\0';
	/* bodies up to 64 KiB are read (and discarded for now), then 405 */
	assert_int_equal(post(curl, port, "{\"leader\":\"node1\"}", 18, false), 405);
	assert_int_equal(post(curl, port, data, 60 * 1024, false), 405);
	assert_int_equal(post(curl, port, data, 60 * 1024, true), 405);
	/* a 100 KB body announced by Content-Length: 413 at once */
	assert_int_equal(post(curl, port, data, big, false), 413);
	/* a chunked one that grows past 64 KiB: the connection is dropped (or 413) */
	st = post(curl, port, data, big, true);
	assert_true(st == 0 || st == 413);
	/* still serving */
	assert_int_equal(http_code(curl, port, "GET", "/primary"), 503);
	free(data);
	curl_easy_cleanup(curl);
	pgw_rest_stop(r);
}

/* Send raw bytes, return what came back (at most outlen - 1 bytes). */
static void raw_exchange(int port, const char *req, size_t len, char *out, size_t outlen)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 3};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t got = 0, sent = 0;

	assert_true(fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	while (sent < len) {
		ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);

		if (n <= 0)
			break; /* the server may stop reading and answer early */
		sent += (size_t)n;
	}
	while (got + 1 < outlen) {
		ssize_t n = recv(fd, out + got, outlen - 1 - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	close(fd);
}

static void test_server_huge_header(void **state)
{
	struct pgw_rest *r = start_any_port();
	const char *head = "GET /primary HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ";
	size_t big = 100 * 1024;
	size_t len = strlen(head) + big + 4;
	char *req = malloc(len + 1);
	char resp[4096];
	CURL *curl = curl_easy_init();
	struct pgw_snapshot s;

	(void)state;
	primary_with_key(&s);
	pgw_rest_publish(r, &s);
	strcpy(req, head);
	memset(req + strlen(head), 'a', big);
	memcpy(req + strlen(head) + big, "\r\n\r\n", 5);
	raw_exchange(pgw_rest_port(r), req, len, resp, sizeof(resp));
	if (strncmp(resp, "HTTP/1.1 4", 10) != 0)
		fail_msg("want a 4xx answer, got: %.80s", resp);
	free(req);
	/* still serving */
	assert_int_equal(http_code(curl, pgw_rest_port(r), "GET", "/primary"), 200);
	curl_easy_cleanup(curl);
	pgw_rest_stop(r);
}

static void test_server_listen_errors(void **state)
{
	struct pgw_rest *r = start_any_port();
	struct pgw_rest *r2;
	char listen[64], want[128], err[256];

	(void)state;
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", pgw_rest_port(r));
	r2 = pgw_rest_start(listen, NULL, err, sizeof(err));
	assert_null(r2);
	snprintf(want, sizeof(want), "restapi.listen %s: cannot listen: Address already in use",
	         listen);
	assert_string_equal(err, want);
	pgw_rest_stop(r);
	/* the port is free again once stopped */
	r2 = pgw_rest_start(listen, NULL, err, sizeof(err));
	if (r2 == NULL)
		fail_msg("restart on %s: %s", listen, err);
	pgw_rest_stop(r2);

	const char *bad[] = {
	    "localhost:8008", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:80x",
	    ":8008",          "[::1:8008", "::1:8008",   "127.0.0.1:-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(pgw_rest_start(bad[i], NULL, err, sizeof(err)));
		assert_non_null(strstr(err, "restapi.listen"));
	}
}

static void test_server_ipv6(void **state)
{
	char err[256];
	struct pgw_rest *r = pgw_rest_start("[::1]:0", NULL, err, sizeof(err));

	(void)state;
	if (r == NULL) {
		/* a host without IPv6 loopback: the error must say so */
		assert_non_null(strstr(err, "restapi.listen [::1]:0: cannot listen"));
		skip();
	}
	assert_true(pgw_rest_port(r) > 0);
	pgw_rest_stop(r);
}

/* A malloc'd, scribbled-over and freed copy: the server must have its own. */
static char *scratch(const char *s)
{
	return strdup(s);
}

static void scrub(char *s)
{
	memset(s, '#', strlen(s));
	free(s);
}

/* Publish with cluster/history/config strings the caller frees at once. */
static void publish_bodies(struct pgw_rest *r, struct pgw_snapshot *s, const char *cluster,
                           const char *history, const char *config)
{
	char *c = cluster ? scratch(cluster) : NULL;
	char *h = history ? scratch(history) : NULL;
	char *k = config ? scratch(config) : NULL;

	s->cluster_json = c;
	s->history_json = h;
	s->config_json = k;
	pgw_rest_publish(r, s);
	if (c)
		scrub(c);
	if (h)
		scrub(h);
	if (k)
		scrub(k);
	s->cluster_json = s->history_json = s->config_json = NULL;
}

/* GET path: want status and exactly that body, and a JSON Content-Type. */
static void expect_get(CURL *curl, int port, const char *path, long status, const char *body)
{
	struct buf hdrs = {NULL, 0};
	char *got;
	json_object *o;

	assert_int_equal(http(curl, port, "GET", path, &got, &hdrs), status);
	assert_string_equal(got, body);
	o = json_tokener_parse(got);
	if (o == NULL)
		fail_msg("GET %s: not JSON: %s", path, got);
	json_object_put(o);
	assert_non_null(strcasestr(hdrs.data, "Content-Type: application/json\r\n"));
	free(got);
	free(hdrs.data);
}

#define CLUSTER_BODY                                                                               \
	"{\"members\":[{\"name\":\"node1\",\"role\":\"leader\",\"state\":\"running\"},"            \
	"{\"name\":\"node2\",\"role\":\"replica\",\"state\":\"running\",\"lag\":0}]}"
#define HISTORY_BODY "[[1,25165984,\"no recovery target specified\"]]"
#define CONFIG_BODY  "{\"ttl\":30,\"loop_wait\":10,\"postgresql\":{\"use_pg_rewind\":true}}"

static int ok_writer(void *arg, const char *method, const char *path, const char *body, size_t len,
                     char **resp)
{
	(void)arg, (void)method, (void)path, (void)body, (void)len;
	*resp = strdup("{}");
	return 200;
}

/* Issue 11, item 5: restapi.protect_reads puts the state endpoints behind the auth. */
static void test_server_protected_reads(void **state)
{
	struct pgw_rest *r = start_any_port();
	CURL *curl = curl_easy_init();
	int port = pgw_rest_port(r);
	struct pgw_snapshot s;
	char url[128];
	long code = 0;

	(void)state;
	primary_with_key(&s);
	publish_bodies(r, &s, CLUSTER_BODY, HISTORY_BODY, CONFIG_BODY);
	pgw_rest_set_writer(r, ok_writer, NULL, "api", "s3cret");
	assert_int_equal(http_code(curl, port, "GET", "/cluster"), 200); /* off by default */
	pgw_rest_protect_reads(r, true);
	assert_int_equal(http_code(curl, port, "GET", "/cluster"), 401);
	assert_int_equal(http_code(curl, port, "GET", "/history"), 401);
	assert_int_equal(http_code(curl, port, "HEAD", "/config"), 401);
	assert_int_equal(http_code(curl, port, "GET", "/fencing"), 401);
	/* HAProxy's checks and /patroni stay open */
	assert_int_equal(http_code(curl, port, "GET", "/primary"), 200);
	assert_int_equal(http_code(curl, port, "GET", "/health"), 200);
	assert_int_equal(http_code(curl, port, "GET", "/patroni"), 200);
	/* with the credentials */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/cluster", port);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_USERPWD, "api:s3cret");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	{
		struct buf b = {NULL, 0};

		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
		assert_int_equal(curl_easy_perform(curl), CURLE_OK);
		free(b.data);
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	assert_int_equal(code, 200);
	curl_easy_cleanup(curl);
	pgw_rest_stop(r);
}

/* Issue 11, item 5: a flood of malformed requests writes at most ten lines a minute. */
static void test_server_malformed_requests_log_rate_limited(void **state)
{
	struct pgw_rest *r = start_any_port();
	char path[] = "/tmp/pgwt-restlog-XXXXXX", resp[512], *text;
	int fd = mkstemp(path), saved = dup(2), lines = 0;
	static const char bad[] = "GET /primary HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n";
	FILE *f;
	long n;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, 2);
	for (int i = 0; i < 40; i++)
		raw_exchange(pgw_rest_port(r), bad, sizeof(bad) - 1, resp, sizeof(resp));
	pgw_rest_stop(r);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fdopen(fd, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(path);
	for (char *p = text; (p = strstr(p, "restapi 127.0.0.1")); p++)
		lines++;
	if (lines < 1 || lines > 10)
		fail_msg("%d restapi lines for 40 malformed requests:\n%s", lines, text);
	free(text);
}

static void test_server_cluster_history_config(void **state)
{
	struct pgw_rest *r = start_any_port();
	CURL *curl = curl_easy_init();
	int port = pgw_rest_port(r);
	struct pgw_snapshot s;
	char *body;

	(void)state;
	assert_int_equal(http_code(curl, port, "GET", "/cluster"), 503);
	primary_with_key(&s);
	publish_bodies(r, &s, CLUSTER_BODY, HISTORY_BODY, CONFIG_BODY);
	expect_get(curl, port, "/cluster", 200, CLUSTER_BODY);
	expect_get(curl, port, "/cluster/", 200, CLUSTER_BODY);
	expect_get(curl, port, "/history", 200, HISTORY_BODY);
	expect_get(curl, port, "/config", 200, CONFIG_BODY);
	assert_int_equal(http(curl, port, "HEAD", "/cluster", &body, NULL), 200);
	assert_string_equal(body, "");
	free(body);
	assert_int_equal(http_code(curl, port, "OPTIONS", "/config"), 200);
	assert_int_equal(http_code(curl, port, "HEAD", "/history"), 200);

	/* nothing known: 503 for /cluster and /config, an empty list for /history */
	publish_bodies(r, &s, NULL, NULL, NULL);
	expect_get(curl, port, "/cluster", 503, "{\"error\":\"cluster state unknown\"}");
	expect_get(curl, port, "/config", 503, "{\"error\":\"configuration unknown\"}");
	expect_get(curl, port, "/history", 200, "[]");
	assert_int_equal(http_code(curl, port, "HEAD", "/cluster"), 503);
	assert_int_equal(http_code(curl, port, "OPTIONS", "/cluster"), 503);
	assert_int_equal(http_code(curl, port, "PUT", "/config"), 405);

	/* every publish replaces all three */
	publish_bodies(r, &s, "{\"members\":[]}", NULL, CONFIG_BODY);
	expect_get(curl, port, "/cluster", 200, "{\"members\":[]}");
	expect_get(curl, port, "/history", 200, "[]");
	expect_get(curl, port, "/config", 200, CONFIG_BODY);
	curl_easy_cleanup(curl);
	pgw_rest_stop(r);
}

static void test_server_role_variants(void **state)
{
	struct pgw_rest *r = start_any_port();
	CURL *curl = curl_easy_init();
	int port = pgw_rest_port(r);
	struct pgw_snapshot s;
	char *body;

	(void)state;
	replica_streaming(&s);
	pgw_rest_publish(r, &s);
	assert_int_equal(http(curl, port, "GET", "/async", &body, NULL), 200);
	check_json_body(body, "replica");
	free(body);
	assert_int_equal(http_code(curl, port, "GET", "/asynchronous?lag=1MB"), 200);
	assert_int_equal(http_code(curl, port, "GET", "/async?lag=1kB"), 503);
	assert_int_equal(http_code(curl, port, "HEAD", "/async"), 200);
	assert_int_equal(http(curl, port, "GET", "/sync", &body, NULL), 503);
	check_json_body(body, "replica");
	free(body);
	assert_int_equal(http_code(curl, port, "GET", "/synchronous"), 503);
	assert_int_equal(http_code(curl, port, "OPTIONS", "/sync"), 503);
	assert_int_equal(http_code(curl, port, "GET", "/standby-leader"), 503);
	assert_int_equal(http_code(curl, port, "GET", "/standby_leader"), 503);
	primary_with_key(&s);
	pgw_rest_publish(r, &s);
	assert_int_equal(http_code(curl, port, "GET", "/async"), 503);
	assert_int_equal(http_code(curl, port, "GET", "/sync"), 503);
	curl_easy_cleanup(curl);
	pgw_rest_stop(r);
}

/* GET /metrics: 200, text/plain; version=0.0.4, valid lines; returns the body. */
static char *get_metrics(CURL *curl, int port)
{
	struct buf hdrs = {NULL, 0};
	char *body;

	assert_int_equal(http(curl, port, "GET", "/metrics", &body, &hdrs), 200);
	if (strcasestr(hdrs.data, "Content-Type: text/plain; version=0.0.4") == NULL)
		fail_msg("headers: %s", hdrs.data);
	free(hdrs.data);
	assert_true(check_metrics(body) >= 20);
	return body;
}

static void test_server_metrics(void **state)
{
	struct pgw_rest *r = start_any_port();
	CURL *curl = curl_easy_init();
	int port = pgw_rest_port(r);
	struct pgw_snapshot s;
	char *body;

	(void)state;
	assert_int_equal(http_code(curl, port, "GET", "/metrics"), 503);
	primary_with_key(&s);
	s.has_lease = true;
	s.lease_budget_ms = 20000;
	pgw_rest_publish(r, &s);
	body = get_metrics(curl, port);
	assert_true(has_line(body, "patroni_primary" LABELS " 1"));
	assert_true(has_line(body, "patroni_xlog_location" LABELS " 50000000"));
	assert_true(has_line(body, "pgwarden_lease_deadline_margin_seconds" LABELS " 20.000"));
	free(body);
	assert_int_equal(http(curl, port, "HEAD", "/metrics", &body, NULL), 200);
	assert_string_equal(body, "");
	free(body);

	replica_streaming(&s);
	pgw_rest_publish(r, &s);
	body = get_metrics(curl, port);
	assert_true(has_line(body, "patroni_replica" LABELS " 1"));
	assert_true(has_line(body, "patroni_xlog_replayed_location" LABELS " 49800000"));
	assert_true(has_line(body, "pgwarden_replication_lag_bytes" LABELS " 100000"));
	assert_null(strstr(body, "pgwarden_lease_deadline_margin_seconds"));
	free(body);
	curl_easy_cleanup(curl);
	pgw_rest_stop(r);
}

/* ---- concurrency ------------------------------------------------------------ */

struct load {
	int port;
	atomic_int bad;
	atomic_int done;
	atomic_bool stop;
	struct pgw_rest *rest;
};

static void *load_client(void *arg)
{
	struct load *l = arg;
	CURL *curl = curl_easy_init();
	static const char *const paths[] = {"/primary", "/replica?lag=1MB", "/patroni",
	                                    "/read-only"};

	for (int i = 0; i < 50; i++) {
		char *body = NULL;
		long st = http(curl, l->port, "GET", paths[i % 4], &body, NULL);
		json_object *o = json_tokener_parse(body);

		if ((st != 200 && st != 503) || o == NULL)
			atomic_fetch_add(&l->bad, 1);
		json_object_put(o);
		free(body);
		atomic_fetch_add(&l->done, 1);
	}
	curl_easy_cleanup(curl);
	return NULL;
}

static void *load_publisher(void *arg)
{
	struct load *l = arg;
	struct pgw_snapshot s;

	for (unsigned i = 0; !atomic_load(&l->stop); i++) {
		if (i % 2)
			primary_with_key(&s);
		else
			replica_streaming(&s);
		snprintf(s.last_reason, sizeof(s.last_reason), "cycle %u %s", i,
		         "with a reason long enough to make tearing visible");
		pgw_rest_publish(l->rest, &s);
	}
	return NULL;
}

static void test_server_concurrent(void **state)
{
	struct load l = {0};
	pthread_t clients[4], pub;

	(void)state;
	l.rest = start_any_port();
	l.port = pgw_rest_port(l.rest);
	assert_int_equal(pthread_create(&pub, NULL, load_publisher, &l), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&clients[i], NULL, load_client, &l), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(clients[i], NULL);
	atomic_store(&l.stop, true);
	pthread_join(pub, NULL);
	pgw_rest_stop(l.rest);
	assert_int_equal(atomic_load(&l.done), 200);
	assert_int_equal(atomic_load(&l.bad), 0);
}

/* What a reader may get while bodies change: never a torn or freed one. */
static bool cluster_answer_ok(const char *path, long st, const char *body)
{
	json_object *o = NULL, *members = NULL;
	bool ok;

	if (strcmp(path, "/metrics") == 0)
		return st == 200 && has_line(body, "patroni_primary" LABELS " 1");
	o = json_tokener_parse(body);
	if (strcmp(path, "/history") == 0)
		ok = st == 200 && json_object_is_type(o, json_type_array) &&
		     json_object_array_length(o) == 1;
	else if (st == 200)
		ok = json_object_object_get_ex(o, "members", &members) &&
		     json_object_array_length(members) == 1;
	else
		ok = st == 503 && json_object_object_get_ex(o, "error", NULL);
	json_object_put(o);
	return ok;
}

/* Readers of /cluster, /history and /metrics while the loop publishes new bodies. */
static void *cluster_client(void *arg)
{
	static const char *const paths[] = {"/cluster", "/history", "/cluster", "/metrics"};
	struct load *l = arg;
	CURL *curl = curl_easy_init();

	for (int i = 0; i < 50; i++) {
		char *body = NULL;
		long st = http(curl, l->port, "GET", paths[i % 4], &body, NULL);

		if (!cluster_answer_ok(paths[i % 4], st, body))
			atomic_fetch_add(&l->bad, 1);
		free(body);
		atomic_fetch_add(&l->done, 1);
	}
	curl_easy_cleanup(curl);
	return NULL;
}

/* Every third cycle without a cluster body; the others with one member per cycle. */
static void *cluster_publisher(void *arg)
{
	struct load *l = arg;
	struct pgw_snapshot s;
	char cluster[256], history[128];

	for (unsigned i = 0; !atomic_load(&l->stop); i++) {
		primary_with_key(&s);
		snprintf(cluster, sizeof(cluster),
		         "{\"members\":[{\"name\":\"node%u\",\"role\":\"leader\",\"state\":"
		         "\"running with a long enough state to make tearing visible\"}]}",
		         i);
		snprintf(history, sizeof(history), "[[1,%u,\"cycle\"]]", i);
		publish_bodies(l->rest, &s, i % 3 ? cluster : NULL, history, NULL);
	}
	return NULL;
}

static void test_server_concurrent_cluster(void **state)
{
	struct load l = {0};
	struct pgw_snapshot s;
	pthread_t clients[4], pub;

	(void)state;
	l.rest = start_any_port();
	l.port = pgw_rest_port(l.rest);
	primary_with_key(&s);
	publish_bodies(l.rest, &s, NULL, "[[1,0,\"first\"]]", NULL);
	assert_int_equal(pthread_create(&pub, NULL, cluster_publisher, &l), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&clients[i], NULL, cluster_client, &l), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(clients[i], NULL);
	atomic_store(&l.stop, true);
	pthread_join(pub, NULL);
	pgw_rest_stop(l.rest);
	assert_int_equal(atomic_load(&l.done), 200);
	assert_int_equal(atomic_load(&l.bad), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_table),
	    cmocka_unit_test(test_status_no_snapshot),
	    cmocka_unit_test(test_liveness_ttl_fallback),
	    cmocka_unit_test(test_json_primary),
	    cmocka_unit_test(test_json_replica),
	    cmocka_unit_test(test_json_standby_leader),
	    cmocka_unit_test(test_json_uninitialized_and_odd_strings),
	    cmocka_unit_test(test_metrics_primary),
	    cmocka_unit_test(test_metrics_replica),
	    cmocka_unit_test(test_metrics_odd_labels),
	    cmocka_unit_test(test_server_before_publish),
	    cmocka_unit_test(test_server_methods),
	    cmocka_unit_test(test_server_bodies),
	    cmocka_unit_test(test_server_huge_header),
	    cmocka_unit_test(test_server_listen_errors),
	    cmocka_unit_test(test_server_ipv6),
	    cmocka_unit_test(test_server_concurrent),
	    cmocka_unit_test(test_server_cluster_history_config),
	    cmocka_unit_test(test_server_protected_reads),
	    cmocka_unit_test(test_server_malformed_requests_log_rate_limited),
	    cmocka_unit_test(test_server_role_variants),
	    cmocka_unit_test(test_server_metrics),
	    cmocka_unit_test(test_server_concurrent_cluster),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
