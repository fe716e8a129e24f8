/*
 * test_requests.c - the request table (core/requests.c): every row is reached, and
 * each refusal happens before anything is stopped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "requests.h"

struct fx {
	struct pgw_cluster c;
	struct pgw_pg_state pg;
	struct pgw_obs o;
};

/* node1 holds the key with a fresh lease and runs as primary; node2 a replica. */
static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->c.initialized = true;
	f->c.has_leader = true;
	snprintf(f->c.leader, sizeof(f->c.leader), "node1");
	f->c.leader_lease = 7;
	f->c.nmembers = 2;
	snprintf(f->c.members[0].name, PGW_NAME_MAX, "node1");
	snprintf(f->c.members[0].conn_host, 256, "10.0.0.1");
	f->c.members[0].conn_port = 5432;
	snprintf(f->c.members[1].name, PGW_NAME_MAX, "node2");
	f->pg.datadir = PGW_DATADIR_VALID;
	f->pg.running = f->pg.accepting = true;
	f->o.now_ms = 100000;
	f->o.self = "node1";
	f->o.etcd_ok = true;
	f->o.cluster = &f->c;
	f->o.pg = &f->pg;
	f->o.margin_ms = 5000;
	pgw_lease_renewed(&f->o.lease, 7, 99000, 10); /* D = 109 s, D - S = 104 s */
}

static void as_replica(struct fx *f)
{
	f->o.self = "node2";
	f->o.lease.id = 8;
	f->pg.in_recovery = true;
	snprintf(f->pg.primary_host, sizeof(f->pg.primary_host), "10.0.0.1");
	f->pg.primary_port = 5432;
}

static struct pgw_rq_verdict ask(struct fx *f, bool healthy, struct pgw_rq r)
{
	struct pgw_rq_verdict v;

	memset(&v, 0x5a, sizeof(v));
	pgw_request_verdict(&f->o, healthy, &r, &v);
	assert_non_null(v.rule);
	return v;
}

static void expect(struct pgw_rq_verdict v, const char *rule, bool go, int status)
{
	if (strcmp(v.rule, rule) != 0 || v.go != go || v.status != status)
		fail_msg("expected %s (%s, %d), got %s (%s, %d): %s", rule, go ? "go" : "refuse",
		         status, v.rule, v.go ? "go" : "refuse", v.status, v.reason);
}

static void test_restart(void **state)
{
	struct fx f;
	struct pgw_rq_verdict v;

	(void)state;
	fx_init(&f);
	v = ask(&f, true, (struct pgw_rq){.kind = PGW_RQ_RESTART, .role = ""});
	expect(v, "restart-primary", true, 200);
	assert_true(v.as_primary);
	/* a primary whose loop has other work (or no key) is not restarted */
	expect(ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_RESTART}), "restart-primary-busy",
	       false, 503);
	/* within a second of D - S: refused before anything is stopped */
	f.o.now_ms = 103500;
	expect(ask(&f, true, (struct pgw_rq){.kind = PGW_RQ_RESTART}), "restart-lease-budget",
	       false, 503);
	f.o.now_ms = 100000;
	/* conditions: role and pending restart */
	expect(ask(&f, true, (struct pgw_rq){.kind = PGW_RQ_RESTART, .role = "replica"}),
	       "restart-conditions", false, 503);
	expect(ask(&f, true, (struct pgw_rq){.kind = PGW_RQ_RESTART, .pending_only = true}),
	       "restart-conditions", false, 503);
	f.pg.pending_restart = true;
	expect(ask(&f, true, (struct pgw_rq){.kind = PGW_RQ_RESTART, .pending_only = true}),
	       "restart-primary", true, 200);
	/* a replica restarts following its current upstream */
	as_replica(&f);
	v = ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_RESTART, .role = "replica"});
	expect(v, "restart-replica", true, 200);
	assert_false(v.as_primary);
	assert_string_equal(v.target_host, "10.0.0.1");
	assert_int_equal(v.target_port, 5432);
	expect(ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_RESTART, .role = "primary"}),
	       "restart-conditions", false, 503);
	f.pg.running = false;
	expect(ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_RESTART}), "restart-not-running",
	       false, 503);
}

static void test_reinit(void **state)
{
	struct fx f;
	struct pgw_rq_verdict v;

	(void)state;
	fx_init(&f);
	expect(ask(&f, true, (struct pgw_rq){.kind = PGW_RQ_REINIT}), "reinit-leader", false, 503);
	as_replica(&f);
	v = ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_REINIT});
	expect(v, "reinit", true, 200);
	assert_string_equal(v.target, "node1");
	assert_string_equal(v.target_host, "10.0.0.1");
	f.c.has_leader = false;
	expect(ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_REINIT}), "reinit-no-leader", false,
	       503);
	f.c.has_leader = true;
	f.o.etcd_ok = false;
	expect(ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_REINIT}), "reinit-no-leader", false,
	       503);
}

static void test_unfence(void **state)
{
	struct fx f;

	(void)state;
	fx_init(&f);
	as_replica(&f);
	expect(ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_UNFENCE, .member = "node3"}),
	       "unfence-fencing-off", false, 412);
	f.o.fencing_required = true;
	expect(ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_UNFENCE, .member = "node1"}),
	       "unfence-leader", false, 412);
	expect(ask(&f, false, (struct pgw_rq){.kind = PGW_RQ_UNFENCE, .member = "node3"}),
	       "unfence", true, 200);
}

static void test_table_printed(void **state)
{
	char buf[8192] = "";
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	(void)state;
	assert_non_null(f);
	pgw_print_request_rules(f);
	fclose(f);
	assert_non_null(strstr(buf, "restart-lease-budget"));
	assert_non_null(strstr(buf, "unfence-leader"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_restart),
	    cmocka_unit_test(test_reinit),
	    cmocka_unit_test(test_unfence),
	    cmocka_unit_test(test_table_printed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
