/*
 * test_ctl.c - the pure parts of pgwardenctl (ctl/ctl_*.c): the list and
 * topology tables (exact text, from a range read built by hand and parsed with
 * pgw_cluster_parse), JSON/YAML output, history and show-config, the lag
 * arithmetic, edit-config's value typing, dotted keys, diff and validation,
 * every switchover/failover refusal, and the command-line parser's exit codes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define PREFIX "/service/demo/"

/* ---- a range read built by hand ------------------------------------------------------ */

struct fixture {
	struct pgw_etcd_range r;
	struct pgw_cluster c;
	struct pgw_ctl_view v;
};

static void add_kv(struct fixture *f, const char *name, const char *value)
{
	struct pgw_etcd_kv *kv;
	char key[256];

	f->r.kvs = realloc(f->r.kvs, (f->r.n + 1) * sizeof(*f->r.kvs));
	assert_non_null(f->r.kvs);
	kv = &f->r.kvs[f->r.n++];
	memset(kv, 0, sizeof(*kv));
	snprintf(key, sizeof(key), "%s%s", PREFIX, name);
	kv->key = strdup(key);
	kv->value = strdup(value);
	kv->value_len = strlen(value);
	kv->mod_revision = 100 + (int64_t)f->r.n;
}

#define LEADER_JSON                                                                                \
	"{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"state\":\"running\",\"role\":"     \
	"\"master\",\"xlog_location\":50331648,\"timeline\":2}"
#define NODE2_JSON                                                                                 \
	"{\"conn_url\":\"postgres://127.0.0.1:5433/postgres\",\"state\":\"running\",\"role\":"     \
	"\"replica\",\"xlog_location\":50000000,\"timeline\":2}"
#define NODE3_JSON                                                                                 \
	"{\"conn_url\":\"postgres://127.0.0.1:5434/postgres\",\"state\":\"stopped\",\"role\":"     \
	"\"replica\",\"timeline\":1}"

/* initialize, leader node1, members node1..3 (already in key order). */
static void basic(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	add_kv(f, "initialize", "7321");
	add_kv(f, "leader", "node1");
	add_kv(f, "members/node1", LEADER_JSON);
	add_kv(f, "members/node2", NODE2_JSON);
	add_kv(f, "members/node3", NODE3_JSON);
}

static void parse(struct fixture *f)
{
	pgw_cluster_parse(&f->r, PREFIX, &f->c);
	pgw_ctl_view_build(&f->v, &f->c, &f->r, PREFIX, "demo");
}

static void fixture_free(struct fixture *f)
{
	pgw_cluster_clear(&f->c);
	pgw_etcd_range_free(&f->r);
}

static void assert_text(char *got, const char *want)
{
	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fprintf(stderr, "--- want:\n%s--- got:\n%s---\n", want, got);
	assert_string_equal(got, want);
	free(got);
}

/* ---- list and topology ------------------------------------------------------------- */

static void test_list_table(void **state)
{
	struct fixture f;

	(void)state;
	basic(&f);
	parse(&f);
	assert_text(pgw_ctl_render_list(&f.v, PGW_FMT_TABLE, false),
	            "+ Cluster: demo (7321) ---+---------+---------+----+-----------+\n"
	            "| Member | Host           | Role    | State   | TL | Lag in MB |\n"
	            "+--------+----------------+---------+---------+----+-----------+\n"
	            "| node1  | 127.0.0.1:5432 | Leader  | running |  2 |           |\n"
	            "| node2  | 127.0.0.1:5433 | Replica | running |  2 |       0.3 |\n"
	            "| node3  | 127.0.0.1:5434 | Replica | stopped |  1 |   unknown |\n"
	            "+--------+----------------+---------+---------+----+-----------+\n");
	fixture_free(&f);
}

/* A standby cluster's leader (issue 15): "Standby Leader", as Patroni's list says. */
static void test_list_standby_leader(void **state)
{
	struct fixture f;
	char *out;

	(void)state;
	memset(&f, 0, sizeof(f));
	add_kv(&f, "initialize", "7321");
	add_kv(&f, "leader", "node1");
	add_kv(&f, "members/node1",
	       "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"state\":\"running\","
	       "\"role\":\"standby_leader\",\"xlog_location\":50331648,\"timeline\":2}");
	add_kv(&f, "members/node2", NODE2_JSON);
	parse(&f);
	out = pgw_ctl_render_list(&f.v, PGW_FMT_TABLE, false);
	assert_non_null(out);
	assert_non_null(strstr(out, "| node1  | 127.0.0.1:5432 | Standby Leader |"));
	assert_non_null(strstr(out, "| Replica "));
	free(out);
	fixture_free(&f);
}

/* Issue 11, item 13: a state from etcd cannot drive the operator's terminal. */
static void test_list_escapes_control_characters(void **state)
{
	struct fixture f;
	char *out;

	(void)state;
	basic(&f);
	free(f.r.kvs[4].value);
	f.r.kvs[4].value = strdup("{\"conn_url\":\"postgres://127.0.0.1:5434/postgres\",\"state\":"
	                          "\"\\u001b[2J\\u001b[31mrunning\\r\",\"role\":\"replica\"}");
	f.r.kvs[4].value_len = strlen(f.r.kvs[4].value);
	parse(&f);
	out = pgw_ctl_render_list(&f.v, PGW_FMT_TABLE, false);
	assert_non_null(out);
	assert_null(strchr(out, '\x1b'));
	assert_null(strchr(out, '\r'));
	assert_non_null(strstr(out, "\\x1b[2J\\x1b[31mrunning\\x0d"));
	free(out);
	fixture_free(&f);
}

static void test_list_tags_pending_pause(void **state)
{
	struct fixture f;

	(void)state;
	memset(&f, 0, sizeof(f));
	add_kv(&f, "config", "{\"ttl\":30,\"pause\":true}");
	add_kv(&f, "initialize", "7321");
	add_kv(&f, "leader", "node1");
	add_kv(&f, "members/node1", LEADER_JSON);
	add_kv(&f, "members/node2",
	       "{\"conn_url\":\"postgres://127.0.0.1:5433/postgres\",\"state\":\"running\","
	       "\"role\":\"replica\",\"xlog_location\":50331648,\"timeline\":2,"
	       "\"pending_restart\":true,\"tags\":{\"nofailover\":true,\"failover_priority\":0}}");
	parse(&f);
	assert_text(
	    pgw_ctl_render_list(&f.v, PGW_FMT_TABLE, false),
	    "+ Cluster: demo (7321) ---+---------+---------+----+-----------+-----------------"
	    "+----------------------------------------+\n"
	    "| Member | Host           | Role    | State   | TL | Lag in MB | Pending restart "
	    "| Tags                                   |\n"
	    "+--------+----------------+---------+---------+----+-----------+-----------------"
	    "+----------------------------------------+\n"
	    "| node1  | 127.0.0.1:5432 | Leader  | running |  2 |           |                 "
	    "|                                        |\n"
	    "| node2  | 127.0.0.1:5433 | Replica | running |  2 |       0.0 | *               "
	    "| nofailover: true, failover_priority: 0 |\n"
	    "+--------+----------------+---------+---------+----+-----------+-----------------"
	    "+----------------------------------------+\n"
	    " Maintenance mode: on\n");
	assert_text(pgw_ctl_render_list(&f.v, PGW_FMT_JSON, false),
	            "[{\"Cluster\":\"demo\",\"Member\":\"node1\",\"Host\":\"127.0.0.1:5432\","
	            "\"Role\":\"Leader\",\"State\":\"running\",\"TL\":2},"
	            "{\"Cluster\":\"demo\",\"Member\":\"node2\",\"Host\":\"127.0.0.1:5433\","
	            "\"Role\":\"Replica\",\"State\":\"running\",\"TL\":2,\"Lag in MB\":0.0,"
	            "\"Pending restart\":\"*\",\"Tags\":{\"nofailover\":true,"
	            "\"failover_priority\":0}}]\n");
	fixture_free(&f);
}

/* The Watchdog column: shown when a member publishes a watchdog that is not off. */
static void test_list_watchdog(void **state)
{
	struct fixture f;
	char *text;

	(void)state;
	memset(&f, 0, sizeof(f));
	add_kv(&f, "initialize", "7321");
	add_kv(&f, "leader", "node1");
	add_kv(&f, "members/node1",
	       "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"state\":\"running\","
	       "\"role\":\"primary\",\"timeline\":2,"
	       "\"watchdog\":{\"mode\":\"required\",\"armed\":true,\"timeout\":5}}");
	add_kv(&f, "members/node2",
	       "{\"conn_url\":\"postgres://127.0.0.1:5433/postgres\",\"state\":\"running\","
	       "\"role\":\"replica\",\"timeline\":2,"
	       "\"watchdog\":{\"mode\":\"required\",\"armed\":false,\"failed\":true}}");
	add_kv(
	    &f, "members/node3",
	    "{\"conn_url\":\"postgres://127.0.0.1:5434/postgres\",\"state\":\"running\","
	    "\"role\":\"replica\",\"timeline\":2,\"watchdog\":{\"mode\":\"off\"},"
	    "\"fencing\":{\"target\":\"node0\",\"result\":\"failed\",\"reason\":\"BMC timeout\"}}");
	parse(&f);
	text = pgw_ctl_render_list(&f.v, PGW_FMT_TABLE, false);
	assert_non_null(strstr(text, " Fencing: node3 could not fence node0: BMC timeout\n"));
	assert_non_null(strstr(text, "| Watchdog          |"));
	assert_non_null(strstr(text, "| armed 5s          |"));
	assert_non_null(strstr(text, "| FAILED (required) |"));
	free(text);
	text = pgw_ctl_render_list(&f.v, PGW_FMT_JSON, false);
	assert_non_null(strstr(text, "\"Watchdog\":\"armed 5s\""));
	assert_non_null(strstr(text, "\"Watchdog\":\"FAILED (required)\""));
	free(text);
	fixture_free(&f);
}

static void test_topology_and_yaml(void **state)
{
	struct fixture f;

	(void)state;
	memset(&f, 0, sizeof(f));
	add_kv(&f, "leader", "node2");
	add_kv(&f, "members/node1", NODE2_JSON);
	add_kv(&f, "members/node2", LEADER_JSON);
	parse(&f);
	assert_text(pgw_ctl_render_list(&f.v, PGW_FMT_TABLE, true),
	            "+ Cluster: demo (uninitialized) -----+---------+----+-----------+\n"
	            "| Member  | Host           | Role    | State   | TL | Lag in MB |\n"
	            "+---------+----------------+---------+---------+----+-----------+\n"
	            "| node2   | 127.0.0.1:5432 | Leader  | running |  2 |           |\n"
	            "| + node1 | 127.0.0.1:5433 | Replica | running |  2 |       0.3 |\n"
	            "+---------+----------------+---------+---------+----+-----------+\n");
	assert_text(pgw_ctl_render_list(&f.v, PGW_FMT_YAML, true), "- Cluster: demo\n"
	                                                           "  Member: node2\n"
	                                                           "  Host: \"127.0.0.1:5432\"\n"
	                                                           "  Role: Leader\n"
	                                                           "  State: running\n"
	                                                           "  TL: 2\n"
	                                                           "- Cluster: demo\n"
	                                                           "  Member: node1\n"
	                                                           "  Host: \"127.0.0.1:5433\"\n"
	                                                           "  Role: Replica\n"
	                                                           "  State: running\n"
	                                                           "  TL: 2\n"
	                                                           "  Lag in MB: 0.3\n");
	fixture_free(&f);
}

static void test_title_longer_than_table(void **state)
{
	struct fixture f;

	(void)state;
	memset(&f, 0, sizeof(f));
	parse(&f);
	f.v.scope = "a-very-long-cluster-name-that-does-not-fit-in-the-rule";
	assert_text(pgw_ctl_render_list(&f.v, PGW_FMT_TABLE, false),
	            "+ Cluster: a-very-long-cluster-name-that-does-no+\n"
	            "| Member | Host | Role | State | TL | Lag in MB |\n"
	            "+--------+------+------+-------+----+-----------+\n"
	            "+--------+------+------+-------+----+-----------+\n");
	assert_text(pgw_ctl_render_list(&f.v, PGW_FMT_JSON, false), "[]\n");
	fixture_free(&f);
}

/* ---- lag ----------------------------------------------------------------------------- */

static void test_lag(void **state)
{
	struct fixture f;
	char buf[32];
	struct pgw_member *n2, *n3;

	(void)state;
	basic(&f);
	parse(&f);
	n2 = &f.c.members[1];
	n3 = &f.c.members[2];
	assert_int_equal(pgw_ctl_lag_bytes(&f.c, n2), 50331648 - 50000000);
	assert_int_equal(pgw_ctl_lag_bytes(&f.c, n3), -1); /* no xlog_location */
	f.c.optime = 60000000; /* the status key ahead of the leader's member key */
	assert_int_equal(pgw_ctl_lag_bytes(&f.c, n2), 10000000);
	n2->xlog_location = 70000000; /* a replica ahead: 0, never negative */
	assert_int_equal(pgw_ctl_lag_bytes(&f.c, n2), 0);
	f.c.has_leader = false; /* no leader: the last known optime */
	n2->xlog_location = 50000000;
	assert_int_equal(pgw_ctl_lag_bytes(&f.c, n2), 10000000);
	f.c.optime = -1; /* neither: unknown */
	assert_int_equal(pgw_ctl_lag_bytes(&f.c, n2), -1);

	pgw_ctl_format_lag(-1, buf, sizeof(buf));
	assert_string_equal(buf, "unknown");
	pgw_ctl_format_lag(0, buf, sizeof(buf));
	assert_string_equal(buf, "0.0");
	pgw_ctl_format_lag(1048576 * 3 / 2, buf, sizeof(buf));
	assert_string_equal(buf, "1.5");
	pgw_ctl_format_lag(1048576LL * 1024, buf, sizeof(buf));
	assert_string_equal(buf, "1024.0");
	fixture_free(&f);
}

/* ---- history and show-config ----------------------------------------------------------- */

static void test_history(void **state)
{
	(void)state;
	assert_text(
	    pgw_ctl_render_history("[[1,25165984,\"no recovery target specified\"],"
	                           "[2,50331800,\"switchover\",\"2026-01-02T03:04:05+00:00\"],"
	                           "[3,83886240,\"failover\",\"2026-01-02T04:00:00+00:00\","
	                           "\"node2\"]]",
	                           PGW_FMT_TABLE),
	    "+----+----------+------------------------------+---------------------------"
	    "+------------+\n"
	    "| TL |      LSN | Reason                       | Timestamp                 "
	    "| New Leader |\n"
	    "+----+----------+------------------------------+---------------------------"
	    "+------------+\n"
	    "|  1 | 25165984 | no recovery target specified |                           "
	    "|            |\n"
	    "|  2 | 50331800 | switchover                   | 2026-01-02T03:04:05+00:00 "
	    "|            |\n"
	    "|  3 | 83886240 | failover                     | 2026-01-02T04:00:00+00:00 "
	    "| node2      |\n"
	    "+----+----------+------------------------------+---------------------------"
	    "+------------+\n");
	assert_text(pgw_ctl_render_history("[[1,100,\"x\",\"t\",\"n\"]]", PGW_FMT_JSON),
	            "[{\"TL\":1,\"LSN\":100,\"Reason\":\"x\",\"Timestamp\":\"t\","
	            "\"New Leader\":\"n\"}]\n");
	/* absent or malformed: an empty history, not an error */
	assert_text(pgw_ctl_render_history("{oops", PGW_FMT_JSON), "[]\n");
	assert_text(pgw_ctl_render_history(NULL, PGW_FMT_YAML), "[]\n");
}

static void test_show_config(void **state)
{
	char err[256];

	(void)state;
	assert_text(pgw_ctl_render_config(
	                "{\"ttl\":30,\"loop_wait\":10,\"postgresql\":{\"use_slots\":true,"
	                "\"parameters\":{\"work_mem\":\"8MB\",\"wal_level\":\"replica\"}},"
	                "\"tags\":[],\"note\":\"a: b\",\"pause\":true,\"x\":\"true\"}",
	                PGW_FMT_TABLE, err, sizeof(err)),
	            "loop_wait: 10\n"
	            "note: \"a: b\"\n"
	            "pause: true\n"
	            "postgresql:\n"
	            "  parameters:\n"
	            "    wal_level: replica\n"
	            "    work_mem: 8MB\n"
	            "  use_slots: true\n"
	            "tags: []\n"
	            "ttl: 30\n"
	            "x: \"true\"\n");
	assert_text(pgw_ctl_render_config("{}", PGW_FMT_TABLE, err, sizeof(err)), "{}\n");
	assert_text(pgw_ctl_render_config("{\"a\":[1,{\"b\":2}]}", PGW_FMT_JSON, err, sizeof(err)),
	            "{\n  \"a\": [\n    1,\n    {\n      \"b\": 2\n    }\n  ]\n}\n");
	assert_null(pgw_ctl_render_config("[1]", PGW_FMT_TABLE, err, sizeof(err)));
	assert_non_null(strstr(err, "not a JSON object"));
	assert_null(pgw_ctl_render_config(NULL, PGW_FMT_TABLE, err, sizeof(err)));
}

static void test_yaml_lists(void **state)
{
	struct json_object *o = json_tokener_parse("[[1,2],{\"k\":[\"on\",\"\"]},\"x\"]");

	(void)state;
	assert_text(pgw_yaml_dump(o, true), "- - 1\n  - 2\n- k:\n    - \"on\"\n    - \"\"\n- x\n");
	json_object_put(o);
}

/* ---- edit-config ---------------------------------------------------------------------- */

static void assert_typed(const char *in, const char *json)
{
	struct json_object *v = pgw_conf_typed_value(in);

	assert_non_null(v);
	assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), json);
	json_object_put(v);
}

static void test_typed_value(void **state)
{
	(void)state;
	assert_typed("true", "true");
	assert_typed("false", "false");
	assert_typed("5", "5");
	assert_typed("-12", "-12");
	assert_typed("0", "0");
	assert_typed("9223372036854775807", "9223372036854775807");
	assert_typed("99999999999999999999", "\"99999999999999999999\""); /* does not fit */
	assert_typed("12a", "\"12a\"");
	assert_typed("1.5", "\"1.5\"");
	assert_typed("-", "\"-\"");
	assert_typed("", "\"\"");
	assert_typed("True", "\"True\"");
	assert_typed("8MB", "\"8MB\"");
	assert_null(pgw_conf_typed_value("null"));
}

static void test_apply_set(void **state)
{
	struct json_object *cfg = json_tokener_parse("{\"loop_wait\":10,\"postgresql\":"
	                                             "{\"use_slots\":true,\"parameters\":{}}}");
	char err[256];

	(void)state;
	assert_true(pgw_conf_apply_set(cfg, "loop_wait=5", err, sizeof(err)));
	assert_true(pgw_conf_apply_set(cfg, "postgresql.use_slots=false", err, sizeof(err)));
	assert_true(
	    pgw_conf_apply_set(cfg, "postgresql.parameters.work_mem=8MB", err, sizeof(err)));
	assert_true(pgw_conf_apply_set(cfg, "a.b.c=x=y", err, sizeof(err))); /* first '=' splits */
	assert_true(pgw_conf_apply_set(cfg, "gone=1", err, sizeof(err)));
	assert_true(pgw_conf_apply_set(cfg, "gone=null", err, sizeof(err)));
	assert_string_equal(json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN),
	                    "{\"loop_wait\":5,\"postgresql\":{\"use_slots\":false,\"parameters\":"
	                    "{\"work_mem\":\"8MB\"}},\"a\":{\"b\":{\"c\":\"x=y\"}}}");

	assert_false(pgw_conf_apply_set(cfg, "loop_wait.x=1", err, sizeof(err)));
	assert_string_equal(err, "loop_wait: is 5, not an object");
	assert_false(pgw_conf_apply_set(cfg, "novalue", err, sizeof(err)));
	assert_false(pgw_conf_apply_set(cfg, "=1", err, sizeof(err)));
	assert_false(pgw_conf_apply_set(cfg, "a..b=1", err, sizeof(err)));
	assert_false(pgw_conf_apply_set(cfg, ".a=1", err, sizeof(err)));
	assert_false(pgw_conf_apply_set(cfg, "a.=1", err, sizeof(err)));
	assert_non_null(strstr(err, "expected KEY=VALUE"));
	json_object_put(cfg);
}

static void test_config_diff(void **state)
{
	struct json_object *a = json_tokener_parse("{\"ttl\":30,\"loop_wait\":10,\"pause\":true,"
	                                           "\"postgresql\":{\"use_slots\":true}}");
	struct json_object *b = json_tokener_parse("{\"ttl\":30,\"loop_wait\":5,\"postgresql\":"
	                                           "{\"use_slots\":true,\"parameters\":"
	                                           "{\"work_mem\":\"8MB\"}}}");

	(void)state;
	assert_text(pgw_conf_diff(a, b), "loop_wait: 10 -> 5\n"
	                                 "pause: true -> (unset)\n"
	                                 "postgresql.parameters.work_mem: (unset) -> \"8MB\"\n");
	assert_text(pgw_conf_diff(a, a), "");
	json_object_put(a);
	json_object_put(b);
}

static struct json_object *yaml(const char *text, char *err)
{
	return pgw_conf_yaml_to_json("f.yml", text, strlen(text), err, 256);
}

static const char *compact(struct json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

/* Issue 11, item 16: aliases expand only so far, and an error leaks nothing (ASan). */
static void test_yaml_to_json_limits(void **state)
{
	char err[256], text[4096];
	size_t off = 0;

	(void)state;
	off += (size_t)snprintf(text + off, sizeof(text) - off,
	                        "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i <= 6; i++) {
		off += (size_t)snprintf(text + off, sizeof(text) - off, "a%d: &a%d [", i, i);
		for (int j = 0; j < 10; j++)
			off += (size_t)snprintf(text + off, sizeof(text) - off, "%s*a%d",
			                        j ? ", " : "", i - 1);
		off += (size_t)snprintf(text + off, sizeof(text) - off, "]\n");
	}
	assert_null(yaml(text, err));
	assert_non_null(strstr(err, "more than 100000 values once aliases are expanded"));
	/* an error deep inside a list and a map: the parts built so far are freed */
	assert_null(yaml("a:\n  b: [1, 2, {c: [3, {? [x] : y}]}]\n", err));
	assert_non_null(strstr(err, "expected a scalar key"));
}

/* --apply FILE: YAML typed as patronictl's loader would, errors with the line. */
static void test_yaml_to_json(void **state)
{
	char err[256];
	struct json_object *o;

	(void)state;
	o = yaml("ttl: 20\nloop_wait: 5\npause: yes\nslots: ~\nratio: 0.5\n"
	         "postgresql:\n  use_slots: off\n  parameters:\n    work_mem: 8MB\n"
	         "    port: '5433'\n  pg_hba: [a, \"b\"]\n",
	         err);
	if (!o)
		fail_msg("%s", err);
	assert_string_equal(compact(o), "{\"ttl\":20,\"loop_wait\":5,\"pause\":true,\"slots\":null,"
	                                "\"ratio\":0.5,\"postgresql\":{\"use_slots\":false,"
	                                "\"parameters\":{\"work_mem\":\"8MB\",\"port\":\"5433\"},"
	                                "\"pg_hba\":[\"a\",\"b\"]}}");
	json_object_put(o);
	o = yaml("{\"ttl\": 30}", err); /* JSON is YAML */
	assert_non_null(o);
	assert_string_equal(compact(o), "{\"ttl\":30}");
	json_object_put(o);
	o = yaml("", err);
	assert_non_null(o);
	assert_string_equal(compact(o), "{}");
	json_object_put(o);

	assert_null(yaml("- a\n- b\n", err));
	assert_string_equal(err, "f.yml:1: expected a map of settings at the top level");
	assert_null(yaml("ttl: 1\nx: [a\n", err));
	assert_true(strncmp(err, "f.yml:3: YAML syntax error", 26) == 0);
	assert_null(yaml("ttl: 1\n? [a]\n: b\n", err));
	assert_string_equal(err, "f.yml:2: expected a scalar key");
}

static void test_merge_patch(void **state)
{
	struct json_object *t =
	    json_tokener_parse("{\"ttl\":30,\"pause\":true,\"postgresql\":{\"use_slots\":true,"
	                       "\"parameters\":{\"a\":\"1\",\"b\":\"2\"}}}");
	struct json_object *p = json_tokener_parse(
	    "{\"ttl\":20,\"pause\":null,\"postgresql\":{\"parameters\":{\"b\":null,\"c\":\"3\"}},"
	    "\"new\":{\"x\":1}}");

	(void)state;
	pgw_conf_merge_patch(t, p);
	assert_string_equal(compact(t), "{\"ttl\":20,\"postgresql\":{\"use_slots\":true,"
	                                "\"parameters\":{\"a\":\"1\",\"c\":\"3\"}},"
	                                "\"new\":{\"x\":1}}");
	json_object_put(t);
	json_object_put(p);
}

static bool validate(const char *json, char *err, size_t errlen)
{
	struct json_object *o = json_tokener_parse(json);
	bool ok = pgw_conf_validate(o, 5, err, errlen);

	json_object_put(o);
	return ok;
}

static void test_validate(void **state)
{
	char err[256];

	(void)state;
	assert_true(validate("{}", err, sizeof(err))); /* defaults 30/10/10 */
	assert_true(validate("{\"ttl\":10,\"loop_wait\":2,\"retry_timeout\":3}", err, sizeof(err)));
	assert_true(validate("{\"ttl\":8,\"loop_wait\":2,\"retry_timeout\":3}", err, sizeof(err)));
	assert_false(validate("{\"ttl\":5,\"loop_wait\":2,\"retry_timeout\":3}", err, sizeof(err)));
	assert_string_equal(err, "ttl 5, loop_wait 2, retry_timeout 3: loop_wait + 2 * "
	                         "retry_timeout (8) must not exceed ttl (5)");
	assert_false(validate("{\"ttl\":\"30\"}", err, sizeof(err)));
	assert_string_equal(err, "ttl: expected a positive integer, got \"30\"");
	assert_false(validate("{\"loop_wait\":0}", err, sizeof(err)));
	assert_string_equal(err, "loop_wait: expected a positive integer, got 0");
	assert_false(validate("{\"retry_timeout\":-1}", err, sizeof(err)));
	assert_false(validate("{\"ttl\":true}", err, sizeof(err)));
	/* the rule holds but the safety margin (5 s) leaves no time to renew */
	assert_false(validate("{\"ttl\":5,\"loop_wait\":1,\"retry_timeout\":1}", err, sizeof(err)));
	assert_non_null(strstr(err, "safety margin"));
	/* issue 11, item 4: what every node would fail to apply is refused before the
	 * write, by the parse the nodes apply (dcs.c) */
	assert_false(validate("{\"postgresql\":{\"parameters\":{\"work_mem\":\"1MB\\nfsync = "
	                      "off\"}}}",
	                      err, sizeof(err)));
	assert_string_equal(err, "config key postgresql.parameters.work_mem: the value contains "
	                         "a line break or a NUL byte");
	assert_false(validate("{\"postgresql\":{\"use_slots\":\"yes\"}}", err, sizeof(err)));
	assert_non_null(strstr(err, "use_slots"));
	assert_false(validate("{\"postgresql\":{\"parameters\":{\"archive_command\":\"x\"}}}", err,
	                      sizeof(err)));
	assert_non_null(strstr(err, "never from etcd"));
	assert_true(
	    validate("{\"postgresql\":{\"parameters\":{\"work_mem\":\"8MB\"}}}", err, sizeof(err)));
}

/* ---- switchover and failover ----------------------------------------------------------- */

static bool check(struct fixture *f, bool failover, const char *leader, const char *cand,
                  const char *want_err)
{
	char err[256] = "";
	bool ok = pgw_check_switchover(&f->c, "demo", failover, leader, cand, err, sizeof(err));

	if (want_err) {
		if (!strstr(err, want_err))
			fprintf(stderr, "want \"%s\" in \"%s\"\n", want_err, err);
		assert_non_null(strstr(err, want_err));
	}
	return ok;
}

static void switch_fixture(struct fixture *f)
{
	basic(f);
	add_kv(f, "members/node4",
	       "{\"conn_url\":\"postgres://127.0.0.1:5435/postgres\",\"state\":\"running\","
	       "\"role\":\"replica\",\"tags\":{\"nofailover\":true}}");
	add_kv(f, "members/node5",
	       "{\"conn_url\":\"postgres://127.0.0.1:5436/postgres\",\"state\":\"running\","
	       "\"role\":\"uninitialized\"}");
	parse(f);
}

static void test_switchover_checks(void **state)
{
	struct fixture f;

	(void)state;
	switch_fixture(&f);
	assert_true(check(&f, false, NULL, NULL, NULL));
	assert_true(check(&f, false, "node1", "node2", NULL));
	assert_true(check(&f, false, "", "", NULL));
	assert_false(check(&f, false, "node2", "node2", "node2 is not the leader of cluster demo"));
	assert_false(check(&f, false, NULL, "nodeX", "nodeX is not a member of cluster demo"));
	assert_false(check(&f, false, NULL, "node1", "node1 is already the leader"));
	assert_false(check(&f, false, NULL, "node4", "node4 is tagged nofailover"));
	assert_false(check(&f, false, NULL, "node3", "node3 is not running (state: stopped)"));
	assert_false(
	    check(&f, false, NULL, "node5", "node5 is not a replica (role: uninitialized)"));
	fixture_free(&f);

	/* the daemons' own eligibility (decide.c): lag and the watchdog count too, so a
	 * request accepted here is not cancelled by the leader afterwards */
	switch_fixture(&f);
	add_kv(&f, "members/node6",
	       "{\"conn_url\":\"postgres://127.0.0.1:5437/postgres\",\"state\":\"running\","
	       "\"role\":\"replica\",\"xlog_location\":48000000}");
	add_kv(&f, "members/node7",
	       "{\"conn_url\":\"postgres://127.0.0.1:5438/postgres\",\"state\":\"running\","
	       "\"role\":\"replica\",\"xlog_location\":50331648,"
	       "\"watchdog\":{\"mode\":\"required\",\"failed\":true}}");
	parse(&f);
	assert_false(check(&f, false, NULL, "node6", "node6 lags 2331648 bytes"));
	assert_false(check(&f, false, NULL, "node7", "node7 needs a watchdog"));
	fixture_free(&f);
	switch_fixture(&f);
	add_kv(&f, "members/node6",
	       "{\"conn_url\":\"postgres://127.0.0.1:5437/postgres\",\"state\":\"running\","
	       "\"role\":\"replica\",\"xlog_location\":48000000}");
	add_kv(&f, "config", "{\"maximum_lag_on_failover\":4194304}");
	parse(&f);
	assert_true(check(&f, false, NULL, "node6", NULL));

	f.c.paused = true;
	assert_false(check(&f, false, NULL, "node2", "cluster demo is paused"));
	assert_false(check(&f, true, NULL, "node2", "cluster demo is paused"));
	f.c.paused = false;

	f.c.failover.present = true;
	assert_false(check(&f, false, NULL, "node2", "a switchover is already pending"));
	f.c.failover.present = false;

	f.c.has_leader = false;
	assert_false(check(&f, false, NULL, "node2", "cluster demo has no leader: use failover"));
	/* failover: allowed without a leader, but only with a candidate */
	assert_true(check(&f, true, NULL, "node2", NULL));
	assert_false(check(&f, true, NULL, NULL, "failover needs a candidate"));
	assert_false(check(&f, true, NULL, "node3", "node3 is not running"));
	fixture_free(&f);
}

static void test_no_healthy_replica(void **state)
{
	struct fixture f;

	(void)state;
	memset(&f, 0, sizeof(f));
	add_kv(&f, "leader", "node1");
	add_kv(&f, "members/node1", LEADER_JSON);
	add_kv(&f, "members/node3", NODE3_JSON);
	parse(&f);
	assert_false(check(&f, false, NULL, NULL, "no healthy replica"));
	fixture_free(&f);
}

static void test_failover_json(void **state)
{
	(void)state;
	assert_text(pgw_failover_json("node1", "node2", NULL),
	            "{\"leader\":\"node1\",\"member\":\"node2\"}");
	assert_text(pgw_failover_json("node1", "", "2026-01-01T00:00:00+00:00"),
	            "{\"leader\":\"node1\",\"scheduled_at\":\"2026-01-01T00:00:00+00:00\"}");
	assert_text(pgw_failover_json(NULL, "node2", NULL), "{\"member\":\"node2\"}");
}

/* ---- command line ----------------------------------------------------------------------- */

static int parse_argv(struct pgw_ctl_args *a, char *err, const char *first, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	const char *s;

	argv[argc++] = (char *)"pgwardenctl";
	va_start(ap, first);
	for (s = first; s && argc < 31; s = va_arg(ap, const char *))
		argv[argc++] = (char *)s;
	va_end(ap);
	argv[argc] = NULL;
	return pgw_ctl_parse_args(argc, argv, a, err, 256);
}

static void test_args_ok(void **state)
{
	struct pgw_ctl_args *a = malloc(sizeof(*a));
	char err[256];

	(void)state;
	assert_int_equal(parse_argv(a, err, "-c", "x.yml", "list", "-f", "json", "-W", NULL), 0);
	assert_int_equal(a->cmd, PGW_CTL_LIST);
	assert_string_equal(a->config, "x.yml");
	assert_int_equal(a->fmt, PGW_FMT_JSON);
	assert_true(a->watch);
	assert_true(a->interval == 2.0);

	assert_int_equal(
	    parse_argv(a, err, "topology", "--watch=0.5", "--format=yaml", "demo", NULL), 0);
	assert_int_equal(a->cmd, PGW_CTL_TOPOLOGY);
	assert_true(a->watch && a->interval == 0.5);
	assert_string_equal(a->scope, "demo");

	assert_int_equal(parse_argv(a, err, "--config=c.yml", "--namespace", "/ns/", "edit-config",
	                            "-s", "loop_wait=5", "-pwork_mem=8MB", "--set", "ttl=30",
	                            "--force", NULL),
	                 0);
	assert_int_equal(a->cmd, PGW_CTL_EDIT_CONFIG);
	assert_string_equal(a->namespace, "/ns/");
	assert_int_equal(a->nsets, 3);
	assert_string_equal(a->sets[0], "loop_wait=5");
	assert_string_equal(a->sets[1], "postgresql.parameters.work_mem=8MB");
	assert_string_equal(a->sets[2], "ttl=30");
	assert_true(a->force);
	assert_int_equal(parse_argv(a, err, "edit-config", "--apply", "p.yml", NULL), 0);
	assert_string_equal(a->apply_file, "p.yml");
	assert_false(a->replace);
	assert_int_equal(parse_argv(a, err, "edit-config", "--replace=-", NULL), 0);
	assert_string_equal(a->apply_file, "-");
	assert_true(a->replace);

	assert_int_equal(parse_argv(a, err, "switchover", "--leader", "n1", "--candidate", "n2",
	                            "--scheduled", "2026-11-23T12:00:00+01:00", NULL),
	                 0);
	assert_string_equal(a->leader, "n1");
	assert_string_equal(a->candidate, "n2");
	assert_string_equal(a->scheduled, "2026-11-23T12:00:00+01:00");
	assert_int_equal(
	    parse_argv(a, err, "switchover", "--primary", "n1", "--scheduled", "now", NULL), 0);
	assert_null(a->scheduled);

	assert_int_equal(parse_argv(a, err, "pause", "--wait", NULL), 0);
	assert_true(a->wait);
	assert_int_equal(parse_argv(a, err, "--help", NULL), 0);
	assert_true(a->help && a->cmd == PGW_CTL_NONE);
	assert_int_equal(parse_argv(a, err, "failover", "-h", NULL), 0);
	assert_true(a->help && a->cmd == PGW_CTL_FAILOVER);
	assert_non_null(strstr(pgw_ctl_help(a->cmd), "--candidate"));
	assert_non_null(strstr(pgw_ctl_help(PGW_CTL_NONE), "reload"));
	assert_null(strstr(pgw_ctl_help(PGW_CTL_NONE), "not implemented"));
	assert_int_equal(parse_argv(a, err, "--version", NULL), 0);
	assert_int_equal(a->cmd, PGW_CTL_VERSION);
	assert_int_equal(parse_argv(a, err, "restart", "demo", "node1", "node3", "--pending",
	                            "--role", "replica", "--force", NULL),
	                 0);
	assert_int_equal(a->cmd, PGW_CTL_RESTART);
	assert_string_equal(a->scope, "demo");
	assert_int_equal(a->nmembers, 2);
	assert_string_equal(a->members[1], "node3");
	assert_true(a->pending && a->force);
	assert_string_equal(a->role, "replica");
	assert_int_equal(parse_argv(a, err, "restart", "demo", "--role", "any", NULL), 0);
	assert_null(a->role);
	assert_int_equal(parse_argv(a, err, "restart", "demo", "--any", NULL), PGW_CTL_USAGE);
	assert_int_equal(parse_argv(a, err, "restart", "demo", "--role", "boss", NULL),
	                 PGW_CTL_USAGE);
	assert_int_equal(parse_argv(a, err, "reinit", "demo", "node2", "--force", NULL), 0);
	assert_int_equal(a->cmd, PGW_CTL_REINIT);
	assert_string_equal(a->members[0], "node2");
	assert_int_equal(parse_argv(a, err, "reinit", "demo", "node2", "--pending", NULL),
	                 PGW_CTL_USAGE);
	free(a);
}

static void expect_usage(struct pgw_ctl_args *a, const char *want, const char *first, ...)
{
	char *argv[32], err[256];
	int argc = 0;
	va_list ap;
	const char *s;

	argv[argc++] = (char *)"pgwardenctl";
	va_start(ap, first);
	for (s = first; s && argc < 31; s = va_arg(ap, const char *))
		argv[argc++] = (char *)s;
	va_end(ap);
	argv[argc] = NULL;
	assert_int_equal(pgw_ctl_parse_args(argc, argv, a, err, sizeof(err)), PGW_CTL_USAGE);
	if (!strstr(err, want))
		fprintf(stderr, "want \"%s\" in \"%s\"\n", want, err);
	assert_non_null(strstr(err, want));
}

static void test_args_usage_errors(void **state)
{
	struct pgw_ctl_args *a = malloc(sizeof(*a));

	(void)state;
	expect_usage(a, "no command given", NULL);
	expect_usage(a, "unknown command \"lst\"", "lst", NULL);
	expect_usage(a, "unknown option --bogus", "list", "--bogus", NULL);
	expect_usage(a, "unknown option -x", "list", "-x", NULL);
	expect_usage(a, "not valid for pause", "pause", "--force", NULL);
	expect_usage(a, "not valid before the command", "--force", "list", NULL);
	expect_usage(a, "not valid for failover", "failover", "--leader", "n1", NULL);
	expect_usage(a, "needs a value", "list", "-f", NULL);
	expect_usage(a, "takes no value", "edit-config", "--force=yes", NULL);
	expect_usage(a, "expected table, json or yaml", "list", "-f", "xml", NULL);
	expect_usage(a, "expected seconds", "list", "-w", "0", NULL);
	expect_usage(a, "expected seconds", "list", "-w", "abc", NULL);
	expect_usage(a, "expected KEY=VALUE", "edit-config", "-s", "loop_wait", NULL);
	expect_usage(a, "expected KEY=VALUE", "edit-config", "-p", "=5", NULL);
	expect_usage(a, "--scheduled", "switchover", "--scheduled", "tomorrow", NULL);
	expect_usage(a, "give one --apply or --replace", "edit-config", "--apply", "a.yml",
	             "--replace", "b.yml", NULL);
	expect_usage(a, "not valid for list", "list", "--apply", "a.yml", NULL);
	expect_usage(a, "unexpected argument \"two\"", "list", "one", "two", NULL);
	expect_usage(a, "unexpected argument", "version", "x", NULL);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_list_table),
	    cmocka_unit_test(test_list_standby_leader),
	    cmocka_unit_test(test_list_escapes_control_characters),
	    cmocka_unit_test(test_list_tags_pending_pause),
	    cmocka_unit_test(test_topology_and_yaml),
	    cmocka_unit_test(test_title_longer_than_table),
	    cmocka_unit_test(test_lag),
	    cmocka_unit_test(test_history),
	    cmocka_unit_test(test_show_config),
	    cmocka_unit_test(test_yaml_lists),
	    cmocka_unit_test(test_typed_value),
	    cmocka_unit_test(test_apply_set),
	    cmocka_unit_test(test_config_diff),
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_list_watchdog),
	    cmocka_unit_test(test_yaml_to_json),
	    cmocka_unit_test(test_yaml_to_json_limits),
	    cmocka_unit_test(test_merge_patch),
	    cmocka_unit_test(test_switchover_checks),
	    cmocka_unit_test(test_no_healthy_replica),
	    cmocka_unit_test(test_failover_json),
	    cmocka_unit_test(test_args_ok),
	    cmocka_unit_test(test_args_usage_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
