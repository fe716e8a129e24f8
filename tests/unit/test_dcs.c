/*
 * test_dcs.c - the dynamic configuration (config key): parsing, validation that
 * leaves the current settings untouched, and the JSON round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

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
	    cmocka_unit_test(test_timeline_keys),   cmocka_unit_test(test_rejected),
	    cmocka_unit_test(test_copy_and_differ),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
