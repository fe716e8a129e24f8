/*
 * test_cluster.c - the etcd view of a cluster (daemon/cluster.c): parsing a
 * range read of the scope prefix built by hand as struct pgw_etcd_range (Patroni
 * member JSON, leader, initialize, status, history, config), what malformed
 * values turn into (skipped with a warning, never a crash nor an invented
 * value), the member JSON this node writes (round trip through the parser), the
 * history key and conn_url parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

#define PREFIX "/service/demo/"

/* ---- ranges built by hand ----------------------------------------------------- */

struct range {
	struct pgw_etcd_range r;
	size_t cap;
};

static void range_init(struct range *rg, size_t cap)
{
	rg->r.kvs = calloc(cap, sizeof(*rg->r.kvs));
	assert_non_null(rg->r.kvs);
	rg->r.n = 0;
	rg->r.revision = 1000;
	rg->cap = cap;
}

/* value may hold NULs: len bytes are copied, plus a terminating NUL */
static struct pgw_etcd_kv *add_kv_len(struct range *rg, const char *key, const char *value,
                                      size_t len, int64_t lease)
{
	struct pgw_etcd_kv *kv;

	assert_true(rg->r.n < rg->cap);
	kv = &rg->r.kvs[rg->r.n++];
	kv->key = strdup(key);
	kv->value = malloc(len + 1);
	assert_non_null(kv->key);
	assert_non_null(kv->value);
	memcpy(kv->value, value, len);
	kv->value[len] = '\0';
	kv->value_len = len;
	kv->create_revision = 10 + (int64_t)rg->r.n;
	kv->mod_revision = 100 + (int64_t)rg->r.n;
	kv->version = 1;
	kv->lease = lease;
	return kv;
}

static struct pgw_etcd_kv *add_kv(struct range *rg, const char *key, const char *value,
                                  int64_t lease)
{
	return add_kv_len(rg, key, value, strlen(value), lease);
}

static void range_free(struct range *rg)
{
	for (size_t i = 0; i < rg->r.n; i++) {
		free(rg->r.kvs[i].key);
		free(rg->r.kvs[i].value);
	}
	free(rg->r.kvs);
}

static const char node1_json[] =
    "{\"conn_url\":\"postgres://10.0.0.1:5432/postgres\","
    "\"api_url\":\"http://10.0.0.1:8008/patroni\",\"state\":\"running\","
    "\"role\":\"master\",\"version\":\"3.0.2\",\"xlog_location\":67393512,"
    "\"timeline\":3}";
static const char node2_json[] =
    "{\"conn_url\":\"postgres://10.0.0.2:5433/postgres\","
    "\"api_url\":\"http://10.0.0.2:8008/patroni\",\"state\":\"running\","
    "\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67393400,"
    "\"replication_state\":\"streaming\",\"timeline\":3,"
    "\"tags\":{\"nofailover\":false,\"failover_priority\":2}}";
static const char node3_json[] =
    "{\"conn_url\":\"postgres://[fd00::3]:5432/postgres?sslmode=require\","
    "\"api_url\":\"http://[fd00::3]:8008/patroni\",\"state\":\"starting\","
    "\"role\":\"replica\",\"version\":\"3.0.2\",\"replication_state\":\"in archive "
    "recovery\",\"tags\":{\"nofailover\":\"true\",\"noloadbalance\":true,"
    "\"clonefrom\":true}}";

/* What a range read of a healthy three-node Patroni cluster returns (sorted by key). */
static void realistic(struct range *rg)
{
	range_init(rg, 16);
	add_kv(rg, PREFIX "config",
	       "{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10,"
	       "\"maximum_lag_on_failover\":1048576,\"postgresql\":{\"use_pg_rewind\":true}}",
	       0);
	add_kv(rg, PREFIX "history",
	       "[[1,25165984,\"no recovery target specified\",\"2024-08-28T19:39:26.352526+00:00\","
	       "\"node1\"],[2,50331808,\"no recovery target specified\","
	       "\"2024-08-28T19:45:01.101+00:00\",\"node2\"]]",
	       0);
	add_kv(rg, PREFIX "initialize", "7268616322854375442", 0);
	add_kv(rg, PREFIX "leader", "node1", 0x7f01);
	add_kv(rg, PREFIX "members/node1", node1_json, 0x7f01);
	add_kv(rg, PREFIX "members/node2", node2_json, 0x7f02);
	add_kv(rg, PREFIX "members/node3", node3_json, 0x7f03);
	add_kv(rg, PREFIX "status",
	       "{\"optime\":67393512,\"slots\":{\"node2\":67393400,\"node3\":67390000},"
	       "\"retain_slots\":[\"node1\",\"node2\",\"node3\"]}",
	       0);
	add_kv(rg, PREFIX "sync", "{\"leader\":\"node1\",\"sync_standby\":null}", 0);
}

static void test_parse_realistic(void **state)
{
	struct range rg;
	struct pgw_cluster c = {0};
	const struct pgw_member *m;

	(void)state;
	realistic(&rg);
	assert_int_equal(pgw_cluster_parse(&rg.r, PREFIX, &c), 0);
	assert_int_equal(c.revision, 1000);
	assert_true(c.initialized);
	assert_string_equal(c.sysid, "7268616322854375442");
	assert_true(c.has_leader);
	assert_string_equal(c.leader, "node1");
	assert_int_equal(c.leader_lease, 0x7f01);
	assert_int_equal(c.leader_mod_revision, 104);
	assert_int_equal(c.optime, 67393512);
	assert_true(c.has_config);
	assert_non_null(c.history);
	assert_non_null(strstr(c.history, "[2,50331808,"));
	assert_int_equal(c.nforks, 2);
	assert_int_equal(c.forks[0].timeline, 1);
	assert_int_equal(c.forks[0].lsn, 25165984);
	assert_int_equal(c.forks[1].timeline, 2);
	assert_int_equal(c.forks[1].lsn, 50331808);
	assert_int_equal(c.history_rows, 2);
	assert_string_equal(c.warnings, "");
	assert_int_equal(c.nmembers, 3);

	m = pgw_cluster_leader_member(&c);
	assert_non_null(m);
	assert_string_equal(m->name, "node1");
	assert_string_equal(m->conn_host, "10.0.0.1");
	assert_int_equal(m->conn_port, 5432);
	assert_string_equal(m->api_url, "http://10.0.0.1:8008/patroni");
	assert_string_equal(m->role, "master");
	assert_string_equal(m->state, "running");
	assert_int_equal(m->xlog_location, 67393512);
	assert_int_equal(m->timeline, 3);
	assert_false(m->streaming);
	assert_false(m->nofailover);
	assert_int_equal(m->failover_priority, 1);
	assert_int_equal(m->lease, 0x7f01);
	assert_int_equal(m->mod_revision, 105);

	m = pgw_cluster_member(&c, "node2");
	assert_non_null(m);
	assert_string_equal(m->conn_host, "10.0.0.2");
	assert_int_equal(m->conn_port, 5433);
	assert_string_equal(m->role, "replica");
	assert_true(m->streaming);
	assert_false(m->nofailover);
	assert_int_equal(m->failover_priority, 2);
	assert_int_equal(m->xlog_location, 67393400);

	m = pgw_cluster_member(&c, "node3");
	assert_non_null(m);
	assert_string_equal(m->conn_host, "fd00::3");
	assert_int_equal(m->conn_port, 5432);
	assert_string_equal(m->state, "starting");
	assert_false(m->streaming);
	assert_true(m->nofailover); /* "true" as a string, as older Patroni wrote it */
	assert_true(m->noloadbalance);
	assert_int_equal(m->xlog_location, -1);
	assert_int_equal(m->timeline, 0);

	assert_null(pgw_cluster_member(&c, "node4"));
	assert_null(pgw_cluster_member(&c, ""));

	/* parsing again into the same struct frees and replaces everything */
	assert_int_equal(pgw_cluster_parse(&rg.r, PREFIX, &c), 0);
	assert_int_equal(c.nmembers, 3);
	pgw_cluster_clear(&c);
	assert_null(c.history);
	assert_int_equal(c.nmembers, 0);
	assert_int_equal(c.optime, -1);
	range_free(&rg);
}

static void test_iso8601(void **state)
{
	double t = 0;

	(void)state;
	assert_true(pgw_parse_iso8601("2026-11-23T12:00:00Z", &t));
	assert_true(t == 1795435200.0);
	assert_true(pgw_parse_iso8601("2026-11-23T13:30:00+01:30", &t));
	assert_true(t == 1795435200.0);
	assert_true(pgw_parse_iso8601("2026-11-23 11:00:00.250-01:00", &t));
	assert_true(t == 1795435200.25);
	assert_false(pgw_parse_iso8601("2026-11-23T12:00:00", &t)); /* no zone: ambiguous */
	assert_false(pgw_parse_iso8601("2026-11-23", &t));
	assert_false(pgw_parse_iso8601("2026-11-23T12:00:00+25:00", &t));
	assert_false(pgw_parse_iso8601("2026-11-23T12:00:00Zjunk", &t));
	assert_false(pgw_parse_iso8601("tomorrow", &t));
	assert_false(pgw_parse_iso8601("", &t));
	assert_false(pgw_parse_iso8601(NULL, &t));
}

static void test_failover_key(void **state)
{
	struct pgw_failover f;

	(void)state;
	assert_true(pgw_failover_parse(
	    "{\"leader\":\"node1\",\"member\":\"node2\",\"scheduled_at\":\"2026-11-23T12:00:00Z\"}",
	    &f));
	assert_true(f.present && !f.malformed);
	assert_string_equal(f.leader, "node1");
	assert_string_equal(f.member, "node2");
	assert_true(f.scheduled_at == 1795435200.0);

	assert_true(pgw_failover_parse("{\"member\":\"node3\"}", &f));
	assert_string_equal(f.leader, "");
	assert_true(f.scheduled_at == 0);

	/* bad input is present but unusable: it never names anybody */
	const char *bad[] = {"",
	                     "[]",
	                     "not json",
	                     "{}",
	                     "{\"leader\":\"\"}",
	                     "{\"member\":\"node2\",\"scheduled_at\":\"soon\"}",
	                     "{\"member\":42}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(pgw_failover_parse(bad[i], &f));
		assert_true(f.present && f.malformed);
		assert_string_equal(f.member, "");
	}
}

/* Issue 11, item 11: a fenced_at out of any sensible range is unknown, not a wait. */
static void test_leader_record_fenced_at_range(void **state)
{
	struct pgw_leader_record lr;
	char *back;

	(void)state;
	assert_true(pgw_leader_record_parse(
	    "{\"member\":\"n1\",\"fenced_by\":\"n2\",\"fenced_at\":1765000000}", &lr));
	assert_true(lr.fenced_at == 1765000000.0);
	assert_true(pgw_leader_record_parse(
	    "{\"member\":\"n1\",\"fenced_by\":\"n2\",\"fenced_at\":9223372036854775807}", &lr));
	assert_true(lr.fenced_at == 0);
	back = pgw_leader_record_json(&lr); /* (int64_t)2^63 would be undefined here */
	assert_non_null(back);
	free(back);
	assert_true(pgw_leader_record_parse(
	    "{\"member\":\"n1\",\"fenced_by\":\"n2\",\"fenced_at\":-5}", &lr));
	assert_true(lr.fenced_at == 0);
}

/* Issue 11, item 8: a value with a NUL byte does not read as the text before it. */
static void test_parse_nul_values(void **state)
{
	static const char leader[] = "node1\0x", member[] = "{\"role\":\"replica\"}\0junk";
	struct range rg;
	struct pgw_cluster c = {0};

	(void)state;
	range_init(&rg, 4);
	add_kv_len(&rg, PREFIX "leader", leader, sizeof(leader) - 1, 7);
	add_kv_len(&rg, PREFIX "members/node2", member, sizeof(member) - 1, 8);
	add_kv_len(&rg, PREFIX "pgwarden/fence-lock", leader, sizeof(leader) - 1, 9);
	assert_int_equal(pgw_cluster_parse(&rg.r, PREFIX, &c), 0);
	assert_true(c.has_leader);
	assert_string_equal(c.leader, "?"); /* held, by nobody this node knows */
	assert_int_equal(c.nmembers, 0);
	assert_false(c.fence_locked);
	assert_non_null(strstr(c.warnings, "members/node2: holds a NUL byte"));
	range_free(&rg);
	pgw_cluster_clear(&c);
}

static void test_parse_failover_and_pause(void **state)
{
	struct range rg;
	struct pgw_cluster c = {0};

	(void)state;
	range_init(&rg, 4);
	add_kv(&rg, PREFIX "config", "{\"ttl\":30,\"pause\":true}", 0);
	add_kv(&rg, PREFIX "failover", "{\"leader\":\"node1\",\"member\":\"node2\"}", 0);
	assert_int_equal(pgw_cluster_parse(&rg.r, PREFIX, &c), 0);
	assert_true(c.paused);
	assert_string_equal(c.config, "{\"ttl\":30,\"pause\":true}");
	assert_true(c.failover.present && !c.failover.malformed);
	assert_string_equal(c.failover.member, "node2");
	assert_int_equal(c.failover.mod_revision, rg.r.kvs[1].mod_revision);
	range_free(&rg);

	range_init(&rg, 4);
	add_kv(&rg, PREFIX "config", "{\"pause\":\"yes\"}", 0);
	add_kv(&rg, PREFIX "failover", "garbage", 0);
	assert_int_equal(pgw_cluster_parse(&rg.r, PREFIX, &c), 0);
	assert_false(c.paused);
	assert_true(c.failover.malformed);
	assert_non_null(strstr(c.warnings, "failover"));
	range_free(&rg);
	pgw_cluster_clear(&c);
}

static void test_parse_empty_range(void **state)
{
	struct pgw_etcd_range r = {NULL, 0, 77};
	struct pgw_cluster c = {0};

	(void)state;
	assert_int_equal(pgw_cluster_parse(&r, PREFIX, &c), 0);
	assert_int_equal(c.revision, 77);
	assert_false(c.initialized);
	assert_false(c.has_leader);
	assert_false(c.has_config);
	assert_null(c.history);
	assert_int_equal(c.optime, -1);
	assert_int_equal(c.nmembers, 0);
	assert_null(pgw_cluster_leader_member(&c));
	pgw_cluster_clear(&c);
}

/* History rows that are not [timeline >= 1, lsn >= 0, ...] are left out of the forks;
 * a history that is not an array is ignored with a warning. */
static void test_history_forks(void **state)
{
	struct range rg;
	struct pgw_cluster c = {0};

	(void)state;
	range_init(&rg, 4);
	add_kv(&rg, PREFIX "history",
	       "[[\"1\",5],[0,5],[2,-1],[3],{\"a\":1},[4,9999999999,\"r\"],[99999999999,1]]", 0);
	assert_int_equal(pgw_cluster_parse(&rg.r, PREFIX, &c), 0);
	assert_int_equal(c.nforks, 1);
	assert_int_equal(c.history_rows, -1);
	assert_int_equal(c.forks[0].timeline, 4);
	assert_int_equal(c.forks[0].lsn, 9999999999LL);
	assert_int_equal(c.history_timeline, 0); /* the newest row is unusable */
	pgw_cluster_clear(&c);
	range_free(&rg);

	/* check_timeline's cluster timeline: the newest row's + 1 */
	range_init(&rg, 4);
	add_kv(&rg, PREFIX "history", "[[1,5,\"r\"],[2,9,\"r\"]]", 0);
	assert_int_equal(pgw_cluster_parse(&rg.r, PREFIX, &c), 0);
	assert_int_equal(c.history_timeline, 3);
	pgw_cluster_clear(&c);
	range_free(&rg);

	range_init(&rg, 4);
	add_kv(&rg, PREFIX "history", "{\"1\":2}", 0);
	assert_int_equal(pgw_cluster_parse(&rg.r, PREFIX, &c), 0);
	assert_int_equal(c.nforks, 0);
	assert_non_null(strstr(c.warnings, "history: malformed"));
	pgw_cluster_clear(&c);
	range_free(&rg);
}

static void test_malformed_members_skipped(void **state)
{
	struct range rg;
	struct pgw_cluster c = {0};

	(void)state;
	range_init(&rg, 16);
	add_kv(&rg, PREFIX "leader", "node1", 1);
	add_kv(&rg, PREFIX "members/bad1", "{\"conn_url\":\"postgres://h:1/x\"", 5);
	add_kv(&rg, PREFIX "members/bad2", "{\"role\":\"replica\",\"state\":\"running\"}", 5);
	add_kv(&rg, PREFIX "members/bad3", "{\"conn_url\":\"postgres://h/x\",\"role\":\"replica\"}",
	       5);
	add_kv(&rg, PREFIX "members/bad4", "[1,2,3]", 5);
	add_kv(&rg, PREFIX "members/bad5", "", 5);
	add_kv(&rg, PREFIX "members/bad6", "{\"conn_url\":42}", 5);
	add_kv(&rg, PREFIX "members/node1", node1_json, 1);
	add_kv(&rg, PREFIX "members/", node2_json, 5); /* no name */
	add_kv(&rg, PREFIX "members/node2", node2_json, 2);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_int_equal(c.nmembers, 2);
	assert_non_null(pgw_cluster_member(&c, "node1"));
	assert_non_null(pgw_cluster_member(&c, "node2"));
	assert_null(pgw_cluster_member(&c, "bad1"));
	for (int i = 1; i <= 6; i++) {
		char w[64];

		snprintf(w, sizeof(w), "members/bad%d: malformed JSON, ignored", i);
		if (!strstr(c.warnings, w))
			fail_msg("warnings \"%s\" lack \"%s\"", c.warnings, w);
	}
	assert_non_null(strstr(c.warnings, "members/: ignored"));
	/* the leader is still found */
	assert_non_null(pgw_cluster_leader_member(&c));
	pgw_cluster_clear(&c);
	range_free(&rg);
}

static void test_status_not_json(void **state)
{
	static const char *const bad[] = {"67393512x", "not json",           "",
	                                  "[1]",       "{\"optime\":\"5\"}", "{\"optime\":"};
	struct pgw_cluster c = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct range rg;

		range_init(&rg, 2);
		add_kv(&rg, PREFIX "status", bad[i], 0);
		pgw_cluster_parse(&rg.r, PREFIX, &c);
		if (c.optime != -1)
			fail_msg("status \"%s\" gave optime %lld", bad[i], (long long)c.optime);
		range_free(&rg);
	}
	pgw_cluster_clear(&c);
}

static void test_status_not_json_warns(void **state)
{
	struct range rg;
	struct pgw_cluster c = {0};

	(void)state;
	range_init(&rg, 2);
	add_kv(&rg, PREFIX "status", "garbage", 0);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_int_equal(c.optime, -1);
	assert_non_null(strstr(c.warnings, "status: not JSON"));
	range_free(&rg);

	/* no optime in a JSON status: unknown, silently */
	range_init(&rg, 2);
	add_kv(&rg, PREFIX "status", "{\"slots\":{}}", 0);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_int_equal(c.optime, -1);
	range_free(&rg);
	pgw_cluster_clear(&c);
}

static void test_leader_value_odd(void **state)
{
	char big[200];
	struct pgw_cluster c = {0};
	struct range rg;

	(void)state;
	range_init(&rg, 2);
	add_kv(&rg, PREFIX "leader", "", 77);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_true(c.has_leader);
	assert_string_equal(c.leader, "?");
	assert_int_equal(c.leader_lease, 77);
	assert_null(pgw_cluster_leader_member(&c));
	range_free(&rg);

	memset(big, 'n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	range_init(&rg, 2);
	add_kv(&rg, PREFIX "leader", big, 78);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_true(c.has_leader);
	assert_string_equal(c.leader, "?");
	range_free(&rg);

	/* a name of exactly PGW_NAME_MAX - 1 bytes is kept */
	big[PGW_NAME_MAX - 1] = '\0';
	range_init(&rg, 2);
	add_kv(&rg, PREFIX "leader", big, 79);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_string_equal(c.leader, big);
	range_free(&rg);

	/* an initialize value too long for a system identifier */
	memset(big, '9', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	range_init(&rg, 2);
	add_kv(&rg, PREFIX "initialize", big, 0);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_true(c.initialized);
	assert_string_equal(c.sysid, "?");
	range_free(&rg);

	/* initialize with an empty value: a bootstrap is running */
	range_init(&rg, 2);
	add_kv(&rg, PREFIX "initialize", "", 0);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_true(c.initialized);
	assert_string_equal(c.sysid, "");
	range_free(&rg);
	pgw_cluster_clear(&c);
}

static void test_too_many_members(void **state)
{
	struct range rg;
	struct pgw_cluster c = {0};
	const int n = PGW_MAX_MEMBERS + 9;

	(void)state;
	range_init(&rg, (size_t)n + 1);
	for (int i = 0; i < n; i++) {
		char key[64], json[128];

		snprintf(key, sizeof(key), PREFIX "members/m%03d", i);
		snprintf(
		    json, sizeof(json),
		    "{\"conn_url\":\"postgres://10.1.0.%d:5432/postgres\",\"role\":\"replica\"}",
		    i);
		add_kv(&rg, key, json, i + 1);
	}
	add_kv(&rg, PREFIX "status", "{\"optime\":9}", 0); /* after the overflow, still read */
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_int_equal(c.nmembers, PGW_MAX_MEMBERS);
	assert_string_equal(c.members[PGW_MAX_MEMBERS - 1].name, "m031");
	assert_null(pgw_cluster_member(&c, "m032"));
	assert_non_null(strstr(c.warnings, "members/m032: ignored (too many members"));
	assert_int_equal(c.optime, 9);
	/* the warnings buffer stays terminated */
	assert_true(strlen(c.warnings) < sizeof(c.warnings));
	pgw_cluster_clear(&c);
	range_free(&rg);
}

static void test_keys_outside_prefix(void **state)
{
	struct range rg;
	struct pgw_cluster c = {0};

	(void)state;
	range_init(&rg, 16);
	add_kv(&rg, "/service/demo2/leader", "x", 1);
	add_kv(&rg, "/service/dem", "x", 1);
	add_kv(&rg, "/service/other/members/node9", node1_json, 1);
	add_kv(&rg, "/service/other/initialize", "1", 0);
	add_kv(&rg, "service/demo/leader", "y", 1);
	add_kv(&rg, PREFIX "leaderx", "z", 1);
	add_kv(&rg, PREFIX "Leader", "z", 1);
	add_kv(&rg, PREFIX "failover", "{\"leader\":\"node1\"}", 0);
	add_kv(&rg, PREFIX "members/node2", node2_json, 2);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_false(c.has_leader);
	assert_false(c.initialized);
	assert_int_equal(c.nmembers, 1);
	assert_string_equal(c.members[0].name, "node2");
	pgw_cluster_clear(&c);
	range_free(&rg);
}

static void test_history_last_one_wins_and_cleared(void **state)
{
	struct range rg;
	struct pgw_cluster c = {0};

	(void)state;
	range_init(&rg, 4);
	add_kv(&rg, PREFIX "history", "[[1,2,\"a\"]]", 0);
	add_kv(&rg, PREFIX "history", "[[1,2,\"b\"]]", 0); /* cannot happen; no leak anyway */
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_string_equal(c.history, "[[1,2,\"b\"]]");
	range_free(&rg);
	range_init(&rg, 1);
	pgw_cluster_parse(&rg.r, PREFIX, &c);
	assert_null(c.history);
	range_free(&rg);
}

/* ---- member JSON ------------------------------------------------------------- */

static struct pgw_member_info info_base(void)
{
	struct pgw_member_info mi = {0};

	mi.conn_host = "10.0.0.2";
	mi.conn_port = 5433;
	mi.api_host = "10.0.0.2";
	mi.api_port = 8009;
	mi.state = "running";
	mi.role = "replica";
	mi.version = "0.1.0";
	mi.xlog_location = 67393400;
	mi.receive_lsn = 67393400;
	mi.replay_lsn = 67393000;
	mi.timeline = 3;
	mi.streaming = true;
	mi.failover_priority = 1;
	return mi;
}

static void roundtrip(const struct pgw_member_info *mi, struct pgw_member *m)
{
	char *json = pgw_member_json(mi);

	assert_non_null(json);
	memset(m, 0, sizeof(*m));
	if (!pgw_member_parse(json, strlen(json), m))
		fail_msg("own JSON does not parse: %s", json);
	free(json);
}

/* tags.replicatefrom: published, read back; a name that cannot be a member's is not. */
static void test_member_replicatefrom(void **state)
{
	struct pgw_member_info mi = info_base();
	struct pgw_member m;
	char json[300];

	(void)state;
	roundtrip(&mi, &m);
	assert_string_equal(m.replicatefrom, "");
	assert_false(m.nostream);
	mi.replicatefrom = "node2";
	mi.nostream = true;
	roundtrip(&mi, &m);
	assert_string_equal(m.replicatefrom, "node2");
	assert_true(m.nostream);
	snprintf(json, sizeof(json),
	         "{\"conn_url\":\"postgres://h:5/p\",\"tags\":{\"replicatefrom\":\"%070d\"}}", 1);
	memset(&m, 0, sizeof(m));
	assert_true(pgw_member_parse(json, strlen(json), &m));
	assert_string_equal(m.replicatefrom, "");
	snprintf(json, sizeof(json),
	         "{\"conn_url\":\"postgres://h:5/p\",\"tags\":{\"replicatefrom\":[1]}}");
	assert_true(pgw_member_parse(json, strlen(json), &m));
	assert_string_equal(m.replicatefrom, "");
}

static void test_member_json_roundtrip(void **state)
{
	struct pgw_member_info mi = info_base();
	struct pgw_member m;
	struct json_object *o, *v;
	char *json;

	(void)state;
	roundtrip(&mi, &m);
	assert_string_equal(m.conn_host, "10.0.0.2");
	assert_int_equal(m.conn_port, 5433);
	assert_string_equal(m.api_url, "http://10.0.0.2:8009/patroni");
	assert_string_equal(m.role, "replica");
	assert_string_equal(m.state, "running");
	assert_int_equal(m.xlog_location, 67393400);
	assert_int_equal(m.timeline, 3);
	assert_true(m.streaming);
	assert_false(m.nofailover);
	assert_false(m.noloadbalance);
	assert_int_equal(m.failover_priority, 1);
	assert_false(m.watchdog_blocked);

	/* the watchdog: only mode required and failed blocks the member from leading */
	mi.wd_mode = "required";
	mi.wd_failed = true;
	roundtrip(&mi, &m);
	assert_true(m.watchdog_blocked);
	mi.wd_mode = "automatic";
	roundtrip(&mi, &m);
	assert_false(m.watchdog_blocked);
	mi.wd_mode = "required";
	mi.wd_failed = false;
	mi.wd_armed = true;
	mi.wd_timeout = 5;
	roundtrip(&mi, &m);
	assert_false(m.watchdog_blocked);
	json = pgw_member_json(&mi);
	assert_non_null(
	    strstr(json, "\"watchdog\":{\"mode\":\"required\",\"armed\":true,\"timeout\":5}"));
	free(json);
	mi.wd_mode = NULL;
	mi.wd_armed = false;

	/* Patroni's field names and types */
	json = pgw_member_json(&mi);
	o = json_tokener_parse(json);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "conn_url", &v));
	assert_string_equal(json_object_get_string(v), "postgres://10.0.0.2:5433/postgres");
	assert_true(json_object_object_get_ex(o, "replication_state", &v));
	assert_string_equal(json_object_get_string(v), "streaming");
	assert_true(json_object_object_get_ex(o, "receive_lsn", &v));
	assert_true(json_object_is_type(v, json_type_int));
	assert_true(json_object_object_get_ex(o, "version", &v));
	assert_false(json_object_object_get_ex(o, "tags", &v)); /* all default: no tags */
	json_object_put(o);
	free(json);

	/* tags, IPv6, a primary without positions */
	mi.conn_host = "fd00::2";
	mi.api_host = "::1";
	mi.role = "master";
	mi.state = "stopped";
	mi.xlog_location = -1;
	mi.receive_lsn = mi.replay_lsn = -1;
	mi.timeline = 0;
	mi.streaming = false;
	mi.nofailover = true;
	mi.noloadbalance = true;
	mi.clonefrom = true;
	mi.nosync = true;
	mi.failover_priority = 0;
	roundtrip(&mi, &m);
	assert_string_equal(m.conn_host, "fd00::2");
	assert_int_equal(m.conn_port, 5433);
	assert_string_equal(m.api_url, "http://[::1]:8009/patroni");
	assert_string_equal(m.role, "master");
	assert_string_equal(m.state, "stopped");
	assert_int_equal(m.xlog_location, -1);
	assert_int_equal(m.timeline, 0);
	assert_false(m.streaming);
	assert_true(m.nofailover);
	assert_true(m.noloadbalance);
	assert_int_equal(m.failover_priority, 0);

	json = pgw_member_json(&mi);
	assert_null(strstr(json, "xlog_location"));
	assert_null(strstr(json, "receive_lsn"));
	assert_null(strstr(json, "timeline"));
	assert_non_null(strstr(json, "\"clonefrom\":true"));
	assert_non_null(strstr(json, "\"nosync\":true"));
	free(json);

	/* strings that need escaping survive */
	mi.state = "creating \"replica\"\\\n";
	mi.failover_priority = 7;
	roundtrip(&mi, &m);
	assert_string_equal(m.state, "creating \"replica\"\\\n");
	assert_int_equal(m.failover_priority, 7);
}

static void test_member_parse_edges(void **state)
{
	struct pgw_member m;
	static const char trailing[] = "{\"conn_url\":\"postgres://h:5/x\"}";

	(void)state;
	memset(&m, 0, sizeof(m));
	/* only len bytes are read: a prefix that is incomplete JSON fails */
	assert_false(pgw_member_parse(trailing, sizeof(trailing) - 3, &m));
	assert_true(pgw_member_parse(trailing, sizeof(trailing) - 1, &m));
	assert_string_equal(m.conn_host, "h");
	assert_int_equal(m.conn_port, 5);
	assert_int_equal(m.xlog_location, -1);
	assert_string_equal(m.role, "");
	/* wrong types are ignored, not trusted */
	{
		const char *j = "{\"conn_url\":\"postgres://h:5\",\"xlog_location\":\"12\","
		                "\"timeline\":1.5,\"role\":7,\"tags\":[1]}";

		memset(&m, 0, sizeof(m));
		assert_true(pgw_member_parse(j, strlen(j), &m));
		assert_int_equal(m.xlog_location, -1);
		assert_int_equal(m.timeline, 0);
		assert_string_equal(m.role, "");
		assert_false(m.nofailover);
		assert_int_equal(m.failover_priority, 1);
	}
	assert_false(pgw_member_parse("null", 4, &m));
	assert_false(pgw_member_parse("", 0, &m));
	assert_false(pgw_member_parse("\"postgres://h:5\"", 16, &m));
}

/* ---- history ------------------------------------------------------------------- */

static void test_history_append(void **state)
{
	char *h, *h2;
	struct json_object *o, *line;

	(void)state;
	h = pgw_history_append(NULL, 1, 25165984, "no recovery target specified",
	                       "2024-08-28T19:39:26+00:00", "node2");
	assert_non_null(h);
	assert_string_equal(h, "[[1,25165984,\"no recovery target specified\","
	                       "\"2024-08-28T19:39:26+00:00\",\"node2\"]]");

	h2 = pgw_history_append(h, 2, 50331808, "r", "t", "node3");
	o = json_tokener_parse(h2);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_array));
	assert_int_equal(json_object_array_length(o), 2);
	line = json_object_array_get_idx(o, 1);
	assert_int_equal(json_object_array_length(line), 5);
	assert_int_equal(json_object_get_int(json_object_array_get_idx(line, 0)), 2);
	assert_int_equal(json_object_get_int64(json_object_array_get_idx(line, 1)), 50331808);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(line, 4)), "node3");
	assert_int_equal(
	    json_object_get_int(json_object_array_get_idx(json_object_array_get_idx(o, 0), 0)), 1);
	json_object_put(o);
	free(h);
	free(h2);

	/* garbage, a non-array JSON, an empty string: start over with the new line */
	static const char *const bad[] = {"garbage", "{\"a\":1}", "", "[[1,2", "42"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = pgw_history_append(bad[i], 4, 1, "r", "t", "n");
		assert_string_equal(h, "[[4,1,\"r\",\"t\",\"n\"]]");
		free(h);
	}

	/* max_timelines_history: the newest rows only */
	h = pgw_history_append_max("[[1,1,\"a\"],[2,2,\"b\"],[3,3,\"c\"]]", 4, 4, "r", "t", "n", 2);
	assert_string_equal(h, "[[3,3,\"c\"],[4,4,\"r\",\"t\",\"n\"]]");
	free(h);
	h = pgw_history_append_max("[[1,1,\"a\"]]", 2, 2, "r", "t", "n", 1);
	assert_string_equal(h, "[[2,2,\"r\",\"t\",\"n\"]]");
	free(h);
	h = pgw_history_append_max("[[1,1,\"a\"]]", 2, 2, "r", "t", "n", 0); /* 0: all */
	assert_string_equal(h, "[[1,1,\"a\"],[2,2,\"r\",\"t\",\"n\"]]");
	free(h);

	/* an LSN above 2^63 does not turn into garbage silently: it is kept as a number */
	h = pgw_history_append("[]", 1, 0x7fffffffffffffffULL, "r", "t", "n");
	assert_string_equal(h, "[[1,9223372036854775807,\"r\",\"t\",\"n\"]]");
	free(h);
}

/* ---- conn_url -------------------------------------------------------------------- */

static void url_ok(const char *url, const char *host, int port)
{
	char h[64];
	int p = -7;

	if (!pgw_parse_conn_url(url, h, sizeof(h), &p))
		fail_msg("\"%s\" rejected", url);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
}

static void url_bad(const char *url)
{
	char h[64] = "untouched";
	int p = -7;

	if (pgw_parse_conn_url(url, h, sizeof(h), &p))
		fail_msg("\"%s\" accepted as %s:%d", url ? url : "(null)", h, p);
	assert_string_equal(h, "untouched");
	assert_int_equal(p, -7);
}

static void test_parse_conn_url(void **state)
{
	char tiny[4];
	int p;

	(void)state;
	url_ok("postgres://10.0.0.1:5432/postgres", "10.0.0.1", 5432);
	url_ok("postgres://10.0.0.1:5432", "10.0.0.1", 5432);
	url_ok("postgresql://db.example.com:1/x?sslmode=require", "db.example.com", 1);
	url_ok("postgres://h:65535?x=1", "h", 65535);
	url_ok("postgres://[::1]:5432/postgres", "::1", 5432);
	url_ok("postgres://[fd00:1:2::3]:6432", "fd00:1:2::3", 6432);
	url_ok("http://[fe80::1%25eth0]:8008/patroni", "fe80::1%25eth0", 8008);

	url_bad(NULL);
	url_bad("");
	url_bad("10.0.0.1:5432");
	url_bad("postgres://10.0.0.1/postgres");   /* missing port */
	url_bad("postgres://10.0.0.1:/postgres");  /* empty port */
	url_bad("postgres://10.0.0.1:0/postgres"); /* port 0 */
	url_bad("postgres://10.0.0.1:65536/postgres");
	url_bad("postgres://10.0.0.1:-1/postgres");
	url_bad("postgres://10.0.0.1:99999999999999999999999/x");
	url_bad("postgres://10.0.0.1:54x2/postgres");
	url_bad("postgres://:5432/postgres"); /* empty host */
	url_bad("postgres://[::1]/postgres"); /* v6 without port */
	url_bad("postgres://[::1]5432/postgres");
	url_bad("postgres://[::1:5432/postgres"); /* no ']' */
	url_bad("postgres://[]:5432/x");
	url_bad("postgres://");
	url_bad("://:");
	url_bad("garbage");
	url_bad("postgres:/h:5432");

	/* a host that does not fit the buffer is refused, not truncated */
	assert_false(pgw_parse_conn_url("postgres://abcd:5432", tiny, sizeof(tiny), &p));
	assert_true(pgw_parse_conn_url("postgres://abc:5432", tiny, sizeof(tiny), &p));
	assert_string_equal(tiny, "abc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_realistic),
	    cmocka_unit_test(test_parse_empty_range),
	    cmocka_unit_test(test_history_forks),
	    cmocka_unit_test(test_malformed_members_skipped),
	    cmocka_unit_test(test_status_not_json),
	    cmocka_unit_test(test_status_not_json_warns),
	    cmocka_unit_test(test_leader_value_odd),
	    cmocka_unit_test(test_too_many_members),
	    cmocka_unit_test(test_keys_outside_prefix),
	    cmocka_unit_test(test_history_last_one_wins_and_cleared),
	    cmocka_unit_test(test_member_json_roundtrip),
	    cmocka_unit_test(test_member_replicatefrom),
	    cmocka_unit_test(test_member_parse_edges),
	    cmocka_unit_test(test_history_append),
	    cmocka_unit_test(test_parse_conn_url),
	    cmocka_unit_test(test_iso8601),
	    cmocka_unit_test(test_failover_key),
	    cmocka_unit_test(test_parse_failover_and_pause),
	    cmocka_unit_test(test_parse_nul_values),
	    cmocka_unit_test(test_leader_record_fenced_at_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
