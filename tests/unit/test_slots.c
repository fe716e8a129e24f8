/*
 * test_slots.c - slots, ignore_slots, member_slots_ttl: the file (strict, errors name the
 * key), the config key from etcd (hostile values left out, names kept from being
 * dropped), the status key's positions, and the plan of creates, drops, copies and
 * advances.
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

#include "config.h"
#include "dcs.h"
#include "slots.h"

#define BASE "scope: s\nname: n\npostgresql:\n  data_dir: /d\n"

static struct pgw_config *parse(const char *text, char *err)
{
	return pgw_config_parse("t.yml", text, strlen(text), err, 512);
}

static void test_file_good(void **state)
{
	char err[512] = "";
	struct pgw_config *cfg = parse(BASE "bootstrap:\n  dcs:\n    slots:\n"
	                                    "      phys:\n      zero: 0\n"
	                                    "      cdc: {type: logical, database: app, plugin: "
	                                    "test_decoding}\n"
	                                    "    ignore_slots:\n      - name: keep_me\n"
	                                    "      - {type: logical, plugin: pgoutput}\n"
	                                    "    member_slots_ttl: 10min\n",
	                               err);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(cfg->dcs.slots.nperm, 3);
	assert_string_equal(cfg->dcs.slots.perm[0].name, "phys");
	assert_int_equal(cfg->dcs.slots.perm[1].type, PGW_SLOT_PHYSICAL);
	assert_int_equal(cfg->dcs.slots.perm[2].type, PGW_SLOT_LOGICAL);
	assert_string_equal(cfg->dcs.slots.perm[2].plugin, "test_decoding");
	assert_int_equal(cfg->dcs.slots.nignore, 2);
	assert_int_equal(cfg->dcs.slots.ignore[1].type, PGW_SLOT_LOGICAL);
	assert_int_equal(cfg->dcs.slots.member_slots_ttl, 600);
	for (size_t i = 0; i < cfg->warnings.n; i++)
		assert_null(strstr(cfg->warnings.items[i], "not implemented"));
	pgw_config_free(cfg);
	cfg = parse(BASE, err);
	assert_int_equal(cfg->dcs.slots.member_slots_ttl, 1800);
	pgw_config_free(cfg);
}

static const struct {
	const char *yaml, *err;
} bad_files[] = {
    {"    slots:\n      Bad-Name:\n", "bootstrap.dcs.slots: \"Bad-Name\" is not a replication"},
    {"    slots:\n      s: {type: logcal}\n",
     "bootstrap.dcs.slots.s.type: expected physical or logical, got \"logcal\""},
    {"    slots:\n      s: {type: logical, database: d, plugin: /tmp/evil}\n",
     "bootstrap.dcs.slots.s.plugin: expected a plugin name"},
    {"    slots:\n      s: {type: logical, database: d}\n",
     "bootstrap.dcs.slots.s: a logical slot needs database and plugin"},
    {"    slots:\n      s: {type: logical, database: d, plugin: [a]}\n",
     "bootstrap.dcs.slots.s.plugin: expected a plugin name"},
    {"    slots:\n      s: {type: physical, dbname: d}\n",
     "bootstrap.dcs.slots.s.dbname: unknown field"},
    {"    slots: [a]\n", "bootstrap.dcs.slots: expected a map of slot names"},
    {"    ignore_slots:\n      - {}\n", "bootstrap.dcs.ignore_slots[0]: matches every slot"},
    {"    ignore_slots:\n      - name: 'x y'\n",
     "bootstrap.dcs.ignore_slots[0].name: expected a replication slot name"},
    {"    member_slots_ttl: 30 fortnights\n", "bootstrap.dcs.member_slots_ttl: expected"},
};

static void test_file_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		char text[512], err[512] = "";
		struct pgw_config *cfg;

		snprintf(text, sizeof(text), BASE "bootstrap:\n  dcs:\n%s", bad_files[i].yaml);
		cfg = parse(text, err);
		if (cfg || !strstr(err, bad_files[i].err))
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, bad_files[i].err);
	}
}

/* From etcd: bad entries are left out, their names kept; the rest still applies. */
static void test_etcd_hostile(void **state)
{
	struct pgw_dcs b, d;
	char err[256];

	(void)state;
	pgw_dcs_defaults(&b);
	assert_true(pgw_dcs_from_json(
	    "{\"slots\":{\"good\":{\"type\":\"physical\"},\"evil\":{\"type\":\"logical\","
	    "\"database\":\"d\",\"plugin\":\"../../x\"},\"BAD\":1,\"num\":{\"type\":7},"
	    "\"cdc\":{\"type\":\"logical\",\"database\":\"d\",\"plugin\":\"test_decoding\"}},"
	    "\"ignore_slots\":[{\"name\":\"k\"},{\"name\":\"oops\",\"type\":\"nope\"}],"
	    "\"member_slots_ttl\":-5}",
	    &b, 5, &d, err, sizeof(err)));
	assert_int_equal(d.slots.nperm, 2);
	assert_string_equal(d.slots.perm[0].name, "good");
	assert_string_equal(d.slots.perm[1].name, "cdc");
	assert_int_equal(d.slots.nignore, 1);
	assert_int_equal(d.slots.nkeep, 3); /* evil, num, oops (BAD is no slot name) */
	assert_int_equal(d.slots.member_slots_ttl, 1800);
	assert_non_null(strstr(d.slots.refused, "slots.evil.plugin"));
	pgw_dcs_free(&d);

	/* not even a list: nothing may be dropped while it is wrong */
	assert_true(pgw_dcs_from_json("{\"slots\":\"x\",\"ignore_slots\":{\"a\":1}}", &b, 5, &d,
	                              err, sizeof(err)));
	{
		struct pgw_slot_info s = {.name = "anything", .type = PGW_SLOT_LOGICAL};

		assert_true(pgw_slot_ignored(&d.slots, &s));
		s.type = PGW_SLOT_PHYSICAL;
		assert_true(pgw_slot_ignored(&d.slots, &s));
	}
	pgw_dcs_free(&d);
}

static void test_round_trip(void **state)
{
	struct pgw_dcs b, d, e;
	char err[256], *json;

	(void)state;
	pgw_dcs_defaults(&b);
	assert_true(pgw_dcs_from_json("{\"slots\":{\"cdc\":{\"type\":\"logical\",\"database\":"
	                              "\"d\",\"plugin\":\"p\"},\"ph\":null},\"ignore_slots\":[{"
	                              "\"database\":\"d\"}],\"member_slots_ttl\":\"1h\"}",
	                              &b, 5, &d, err, sizeof(err)));
	json = pgw_dcs_to_json(&d);
	assert_true(pgw_dcs_from_json(json, &b, 5, &e, err, sizeof(err)));
	assert_false(pgw_slot_conf_differ(&d.slots, &e.slots));
	assert_int_equal(e.slots.member_slots_ttl, 3600);
	assert_true(pgw_slot_conf_has_logical(&e.slots));
	free(json);
	pgw_dcs_free(&d);
	pgw_dcs_free(&e);
}

static void test_status_positions(void **state)
{
	struct json_object *o = json_tokener_parse(
	    "{\"cdc\":123,\"Bad\":1,\"neg\":-1,\"str\":\"5\",\"ok_2\":9007199254740993}");
	struct pgw_status_slot pos[4];
	int n = pgw_slot_pos_parse(o, pos, 4);

	(void)state;
	assert_int_equal(n, 2);
	assert_string_equal(pos[0].name, "cdc");
	assert_int_equal(pos[0].lsn, 123);
	assert_string_equal(pos[1].name, "ok_2");
	json_object_put(o);
}

static struct pgw_slot_conf conf(void)
{
	struct pgw_slot_conf sc;
	char err[256];
	struct json_object *o = json_tokener_parse(
	    "{\"slots\":{\"perm\":null,\"cdc\":{\"type\":\"logical\",\"database\":\"d\","
	    "\"plugin\":\"p\"}},\"ignore_slots\":[{\"name\":\"keep_me\"}],\"member_slots_ttl\":"
	    "60}");

	pgw_slot_conf_defaults(&sc);
	assert_true(pgw_slot_conf_parse(o, true, &sc, err, sizeof(err)));
	json_object_put(o);
	return sc;
}

static int count(const struct pgw_slot_op *ops, int n, int kind, const char *name)
{
	int c = 0;

	for (int i = 0; i < n; i++)
		c += ops[i].kind == kind && strcmp(ops[i].slot.name, name) == 0;
	return c;
}

static void test_plan_primary(void **state)
{
	struct pgw_slot_conf sc = conf();
	const char *members[] = {"self", "m2"};
	struct pgw_slot_info have[] = {
	    {.name = "cdc",
	     .type = PGW_SLOT_LOGICAL,
	     .database = "d",
	     .plugin = "p",
	     .position = 500},
	    {.name = "keep_me", .type = PGW_SLOT_PHYSICAL},
	    {.name = "stray", .type = PGW_SLOT_PHYSICAL},
	    {.name = "stray_l", .type = PGW_SLOT_LOGICAL, .database = "d", .plugin = "x"},
	    {.name = "busy",
	     .type = PGW_SLOT_LOGICAL,
	     .database = "d",
	     .plugin = "x",
	     .active = true}};
	struct pgw_slot_view v = {.primary = true,
	                          .use_slots = true,
	                          .wal_logical = true,
	                          .self = "self",
	                          .members = members,
	                          .nmembers = 2,
	                          .slots = have,
	                          .nslots = 5,
	                          .now_ms = 1000};
	struct pgw_slot_absent absent[PGW_SLOT_ABSENT_MAX];
	struct pgw_slot_op ops[PGW_SLOT_OPS_MAX];
	int nabsent = 0, n;

	(void)state;
	n = pgw_slots_plan(&sc, &v, absent, &nabsent, ops, PGW_SLOT_OPS_MAX);
	assert_int_equal(count(ops, n, PGW_SLOT_CREATE, "m2"), 1);
	assert_int_equal(count(ops, n, PGW_SLOT_CREATE, "self"), 0);
	assert_int_equal(count(ops, n, PGW_SLOT_CREATE, "perm"), 1);
	assert_int_equal(count(ops, n, PGW_SLOT_PUBLISH, "cdc"), 1);
	assert_int_equal(count(ops, n, PGW_SLOT_DROP, "keep_me"), 0);
	assert_int_equal(count(ops, n, PGW_SLOT_DROP, "stray_l"), 1); /* as Patroni */
	assert_int_equal(count(ops, n, PGW_SLOT_DROP, "busy"), 0);    /* active */
	assert_int_equal(count(ops, n, PGW_SLOT_DROP, "stray"), 0);   /* member_slots_ttl */
	assert_int_equal(nabsent, 1);
	v.now_ms = 1000 + 61000;
	n = pgw_slots_plan(&sc, &v, absent, &nabsent, ops, PGW_SLOT_OPS_MAX);
	assert_int_equal(count(ops, n, PGW_SLOT_DROP, "stray"), 1);
	/* paused: nothing is dropped */
	v.paused = true;
	n = pgw_slots_plan(&sc, &v, absent, &nabsent, ops, PGW_SLOT_OPS_MAX);
	assert_int_equal(count(ops, n, PGW_SLOT_DROP, "stray"), 0);
	/* wal_level not logical: the logical slot waits, said so */
	v.paused = false;
	v.nslots = 0;
	v.wal_logical = false;
	n = pgw_slots_plan(&sc, &v, absent, &nabsent, ops, PGW_SLOT_OPS_MAX);
	assert_int_equal(count(ops, n, PGW_SLOT_NO_LOGICAL, "cdc"), 1);
	/* use_slots false: pgwarden leaves every slot alone */
	v.use_slots = false;
	v.nslots = 5;
	assert_int_equal(pgw_slots_plan(&sc, &v, absent, &nabsent, ops, PGW_SLOT_OPS_MAX), 0);
}

static void test_plan_replica(void **state)
{
	struct pgw_slot_conf sc = conf();
	struct pgw_status_slot pos[] = {{"cdc", 800}, {"perm", 700}};
	struct pgw_slot_info have[] = {
	    {.name = "old_member", .type = PGW_SLOT_PHYSICAL},
	    {.name = "perm", .type = PGW_SLOT_PHYSICAL, .position = 600}};
	struct pgw_slot_view v = {.use_slots = true,
	                          .wal_logical = true,
	                          .self = "self",
	                          .slots = have,
	                          .nslots = 2,
	                          .leader_pos = pos,
	                          .nleader_pos = 2,
	                          .now_ms = 5};
	struct pgw_slot_absent absent[PGW_SLOT_ABSENT_MAX];
	struct pgw_slot_op ops[PGW_SLOT_OPS_MAX];
	int nabsent = 3, n;

	(void)state;
	n = pgw_slots_plan(&sc, &v, absent, &nabsent, ops, PGW_SLOT_OPS_MAX);
	assert_int_equal(nabsent, 0);
	assert_int_equal(count(ops, n, PGW_SLOT_COPY, "cdc"), 1);
	assert_int_equal(count(ops, n, PGW_SLOT_ADVANCE, "perm"), 1);
	assert_int_equal(count(ops, n, PGW_SLOT_DROP, "old_member"), 1);
	/* the leader has not published cdc: nothing to copy yet */
	v.nleader_pos = 0;
	n = pgw_slots_plan(&sc, &v, absent, &nabsent, ops, PGW_SLOT_OPS_MAX);
	assert_int_equal(count(ops, n, PGW_SLOT_COPY, "cdc"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_file_good),        cmocka_unit_test(test_file_bad),
	    cmocka_unit_test(test_etcd_hostile),     cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_status_positions), cmocka_unit_test(test_plan_primary),
	    cmocka_unit_test(test_plan_replica),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
