/*
 * test_cluster_json.c - the bodies of GET /cluster and GET /history rendered
 * from hand-built struct pgw_cluster values: roles, sort order, lag (numeric,
 * zero when ahead, "unknown"), tags, pause, scheduled switchover, the empty
 * cluster, unterminated names, and malformed history or switchover text.
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

#include "cluster_json.h"

/* ---- building clusters ----------------------------------------------------- */

static struct pgw_member *add_member(struct pgw_cluster *c, const char *name, int64_t xlog)
{
	struct pgw_member *m = &c->members[c->nmembers++];

	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->role, sizeof(m->role), "replica");
	snprintf(m->state, sizeof(m->state), "running");
	snprintf(m->conn_host, sizeof(m->conn_host), "127.0.0.%d", c->nmembers);
	m->conn_port = 5432;
	snprintf(m->api_url, sizeof(m->api_url), "http://127.0.0.%d:8008/patroni", c->nmembers);
	m->xlog_location = xlog;
	m->timeline = 4;
	m->failover_priority = 1;
	return m;
}

static void set_leader(struct pgw_cluster *c, const char *name)
{
	c->has_leader = true;
	snprintf(c->leader, sizeof(c->leader), "%s", name);
}

/* node3 (ahead of the leader), node1 (leader, 1000), node2 (100 behind): out of order. */
static void three_nodes(struct pgw_cluster *c)
{
	memset(c, 0, sizeof(*c));
	c->initialized = true;
	c->optime = 950;
	add_member(c, "node3", 1200);
	snprintf(add_member(c, "node1", 1000)->role, sizeof(c->members[0].role), "master");
	add_member(c, "node2", 900);
	set_leader(c, "node1");
}

/* ---- reading the JSON ------------------------------------------------------ */

static json_object *parse(char *text)
{
	json_object *o;

	assert_non_null(text);
	o = json_tokener_parse(text);
	if (o == NULL)
		fail_msg("not JSON: %s", text);
	free(text);
	return o;
}

static json_object *get(json_object *o, const char *key, json_type type)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("missing key %s in %s", key, json_object_to_json_string(o));
	if (json_object_get_type(v) != type)
		fail_msg("key %s: type %s", key, json_type_to_name(json_object_get_type(v)));
	return v;
}

static void assert_absent(json_object *o, const char *key)
{
	if (json_object_object_get_ex(o, key, NULL))
		fail_msg("key %s should be absent in %s", key, json_object_to_json_string(o));
}

static const char *str(json_object *o, const char *key)
{
	return json_object_get_string(get(o, key, json_type_string));
}

static json_object *members(json_object *o, size_t want)
{
	json_object *list = get(o, "members", json_type_array);

	assert_int_equal(json_object_array_length(list), want);
	return list;
}

static json_object *member(json_object *list, size_t i, const char *name)
{
	json_object *m = json_object_array_get_idx(list, i);

	assert_string_equal(str(m, "name"), name);
	return m;
}

static int64_t lag_of(json_object *m)
{
	return json_object_get_int64(get(m, "lag", json_type_int));
}

/* ---- /cluster ------------------------------------------------------------- */

static void test_leader_and_replicas(void **state)
{
	struct pgw_cluster c;
	json_object *o, *list, *m;

	(void)state;
	three_nodes(&c);
	o = parse(pgw_cluster_json(&c, false, NULL));
	list = members(o, 3);
	m = member(list, 0, "node1");
	assert_string_equal(str(m, "role"), "leader");
	assert_string_equal(str(m, "state"), "running");
	assert_string_equal(str(m, "api_url"), "http://127.0.0.2:8008/patroni");
	assert_string_equal(str(m, "host"), "127.0.0.2");
	assert_int_equal(json_object_get_int(get(m, "port", json_type_int)), 5432);
	assert_int_equal(json_object_get_int(get(m, "timeline", json_type_int)), 4);
	assert_absent(m, "lag");
	assert_absent(m, "tags");
	m = member(list, 1, "node2");
	assert_string_equal(str(m, "role"), "replica");
	assert_int_equal(lag_of(m), 100); /* max(950, 1000) - 900 */
	m = member(list, 2, "node3");
	assert_string_equal(str(m, "role"), "replica");
	assert_int_equal(lag_of(m), 0); /* ahead: never negative */
	assert_absent(o, "pause");
	assert_absent(o, "scheduled_switchover");
	json_object_put(o);
}

static void test_status_optime_ahead_of_leader_member(void **state)
{
	struct pgw_cluster c;
	json_object *o;

	(void)state;
	three_nodes(&c);
	c.optime = 5000; /* the status key is newer than the leader's member key */
	o = parse(pgw_cluster_json(&c, false, NULL));
	assert_int_equal(lag_of(member(members(o, 3), 1, "node2")), 4100);
	assert_int_equal(lag_of(member(members(o, 3), 2, "node3")), 3800);
	json_object_put(o);
}

static void test_unknown_lag(void **state)
{
	struct pgw_cluster c;
	json_object *o;

	(void)state;
	three_nodes(&c);
	c.members[2].xlog_location = -1; /* node2 never said where it is */
	o = parse(pgw_cluster_json(&c, false, NULL));
	assert_string_equal(str(member(members(o, 3), 1, "node2"), "lag"), "unknown");
	assert_int_equal(lag_of(member(members(o, 3), 2, "node3")), 0);
	json_object_put(o);

	/* no leader key and no status optime: nothing to measure against */
	three_nodes(&c);
	c.has_leader = false;
	c.leader[0] = '\0';
	c.optime = -1;
	o = parse(pgw_cluster_json(&c, false, NULL));
	for (size_t i = 0; i < 3; i++) {
		json_object *m = json_object_array_get_idx(members(o, 3), i);

		assert_string_equal(str(m, "role"), "replica");
		assert_string_equal(str(m, "lag"), "unknown");
	}
	json_object_put(o);

	/* no leader key but a status optime: every member measured against it */
	c.optime = 1100;
	o = parse(pgw_cluster_json(&c, false, NULL));
	assert_int_equal(lag_of(member(members(o, 3), 0, "node1")), 100);
	assert_int_equal(lag_of(member(members(o, 3), 1, "node2")), 200);
	assert_int_equal(lag_of(member(members(o, 3), 2, "node3")), 0);
	json_object_put(o);

	/* a leader key whose member is missing: the status optime still counts */
	three_nodes(&c);
	set_leader(&c, "gone");
	o = parse(pgw_cluster_json(&c, false, NULL));
	assert_int_equal(lag_of(member(members(o, 3), 0, "node1")), 0);
	assert_int_equal(lag_of(member(members(o, 3), 1, "node2")), 50);
	json_object_put(o);
}

static void test_tags(void **state)
{
	struct pgw_cluster c;
	json_object *o, *list, *tags;

	(void)state;
	three_nodes(&c);
	c.members[0].nofailover = true;     /* node3 */
	c.members[2].noloadbalance = true;  /* node2 */
	c.members[2].failover_priority = 0; /* node2 */
	c.members[2].nostream = true;
	snprintf(c.members[2].replicatefrom, sizeof(c.members[2].replicatefrom), "node3");
	o = parse(pgw_cluster_json(&c, false, NULL));
	list = members(o, 3);
	assert_absent(member(list, 0, "node1"), "tags");
	tags = get(member(list, 1, "node2"), "tags", json_type_object);
	assert_true(json_object_get_boolean(get(tags, "noloadbalance", json_type_boolean)));
	assert_int_equal(json_object_get_int(get(tags, "failover_priority", json_type_int)), 0);
	assert_string_equal(json_object_get_string(get(tags, "replicatefrom", json_type_string)),
	                    "node3");
	assert_true(json_object_get_boolean(get(tags, "nostream", json_type_boolean)));
	assert_absent(tags, "nofailover");
	tags = get(member(list, 2, "node3"), "tags", json_type_object);
	assert_true(json_object_get_boolean(get(tags, "nofailover", json_type_boolean)));
	assert_int_equal(json_object_object_length(tags), 1);
	json_object_put(o);
}

static void test_optional_member_fields(void **state)
{
	struct pgw_cluster c;
	json_object *o, *m;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.optime = -1;
	add_member(&c, "solo", 10);
	c.members[0].timeline = 0;
	c.members[0].conn_host[0] = '\0';
	c.members[0].api_url[0] = '\0';
	c.members[0].state[0] = '\0';
	memset(c.members[0].name, 'x', sizeof(c.members[0].name)); /* no NUL: stays bounded */
	o = parse(pgw_cluster_json(&c, false, NULL));
	m = json_object_array_get_idx(members(o, 1), 0);
	assert_int_equal(strlen(str(m, "name")), PGW_NAME_MAX);
	assert_string_equal(str(m, "state"), "");
	assert_absent(m, "timeline");
	assert_absent(m, "host");
	assert_absent(m, "port");
	assert_absent(m, "api_url");
	assert_string_equal(str(m, "lag"), "unknown");
	json_object_put(o);
}

static void test_empty_cluster_pause_and_switchover(void **state)
{
	struct pgw_cluster c;
	json_object *o, *sw;
	char *text;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.optime = -1;
	c.nmembers = -3; /* nonsense counts are clamped */
	text = pgw_cluster_json(&c, false, NULL);
	assert_string_equal(text, "{\"members\":[]}");
	free(text);

	o = parse(
	    pgw_cluster_json(&c, true, "{\"at\":\"2026-11-23T12:00:00+00:00\",\"from\":\"a/b\"}"));
	members(o, 0);
	assert_true(json_object_get_boolean(get(o, "pause", json_type_boolean)));
	sw = get(o, "scheduled_switchover", json_type_object);
	assert_string_equal(str(sw, "at"), "2026-11-23T12:00:00+00:00");
	assert_string_equal(str(sw, "from"), "a/b");
	json_object_put(o);

	/* no slash escaping */
	text = pgw_cluster_json(&c, false, "{\"from\":\"a/b\"}");
	assert_non_null(strstr(text, "\"a/b\""));
	free(text);

	/* a switchover text that is not one JSON object is left out */
	const char *bad[] = {"", "garbage", "[1,2]", "\"at\"", "{\"at\":", "{} {}", "{}x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = parse(pgw_cluster_json(&c, false, bad[i]));
		assert_absent(o, "scheduled_switchover");
		json_object_put(o);
	}
	o = parse(pgw_cluster_json(&c, false, " {} \n"));
	get(o, "scheduled_switchover", json_type_object);
	json_object_put(o);
}

static void test_scheduled_switchover_json(void **state)
{
	struct pgw_failover f;
	json_object *o;

	(void)state;
	memset(&f, 0, sizeof(f));
	assert_null(pgw_scheduled_switchover_json(NULL));
	assert_null(pgw_scheduled_switchover_json(&f)); /* not present */
	f.present = true;
	snprintf(f.leader, sizeof(f.leader), "node1");
	assert_null(pgw_scheduled_switchover_json(&f)); /* not scheduled: now */
	f.scheduled_at = 1795435200.0;                  /* 2026-11-23T12:00:00Z */
	o = parse(pgw_scheduled_switchover_json(&f));
	assert_string_equal(str(o, "at"), "2026-11-23T12:00:00+00:00");
	assert_string_equal(str(o, "from"), "node1");
	assert_absent(o, "to");
	json_object_put(o);
	snprintf(f.member, sizeof(f.member), "node2");
	f.scheduled_at += 0.25;
	o = parse(pgw_scheduled_switchover_json(&f));
	assert_string_equal(str(o, "at"), "2026-11-23T12:00:00.250000+00:00");
	assert_string_equal(str(o, "to"), "node2");
	json_object_put(o);
	f.malformed = true;
	assert_null(pgw_scheduled_switchover_json(&f));
}

/* ---- /history ---------------------------------------------------------------- */

static void test_history(void **state)
{
	static const char *const malformed[] = {
	    "",      "garbage", "{\"a\":1}", "[[1,25165984,\"no recovery target\"",
	    "[] []", "[]x",     "\"[]\"",    "[1,]]"};
	char *text;

	(void)state;
	text =
	    pgw_history_json("[[1, 25165984, \"no recovery target specified\", "
	                     "\"2026-11-23T12:00:00+00:00\", \"node/1\"], [2, 33554432, \"x\"]]\n");
	assert_string_equal(text, "[[1,25165984,\"no recovery target specified\","
	                          "\"2026-11-23T12:00:00+00:00\",\"node/1\"],[2,33554432,\"x\"]]");
	free(text);
	text = pgw_history_json("[]");
	assert_string_equal(text, "[]");
	free(text);
	text = pgw_history_json(NULL);
	assert_string_equal(text, "[]");
	free(text);
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		text = pgw_history_json(malformed[i]);
		if (strcmp(text, "[]") != 0)
			fail_msg("history %s -> %s, want []", malformed[i], text);
		free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_leader_and_replicas),
	    cmocka_unit_test(test_status_optime_ahead_of_leader_member),
	    cmocka_unit_test(test_unknown_lag),
	    cmocka_unit_test(test_tags),
	    cmocka_unit_test(test_optional_member_fields),
	    cmocka_unit_test(test_empty_cluster_pause_and_switchover),
	    cmocka_unit_test(test_scheduled_switchover_json),
	    cmocka_unit_test(test_history),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
