/*
 * test_lease.c - the deadline arithmetic of the leader lease (core/lease.c),
 * ARCHITECTURE.md section 4: D = t_send + TTL, writes only while now < D - S,
 * pet the watchdog only if the renewal took at most S - R, the startup timing
 * rule, and the bound on one etcd operation while writing.  Edge values are
 * tested on both sides of every boundary.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lease.h"
#include "wdguard.h"

#define T0 5000000LL /* t_send of the renewal, monotonic ms */
#define S  5000      /* safety margin, ms */

static void test_renewed_and_lost(void **state)
{
	struct pgw_lease l;

	(void)state;
	memset(&l, 0x7f, sizeof(l));
	pgw_lease_renewed(&l, 0x1234abcd5678LL, T0, 30);
	assert_int_equal(l.id, 0x1234abcd5678LL);
	assert_int_equal(l.ttl_s, 30);
	assert_int_equal(l.t_send_ms, T0);
	assert_int_equal(l.deadline_ms, T0 + 30000);

	/* a renewal replaces D, also with a shorter TTL (D measured from t_send, not now) */
	pgw_lease_renewed(&l, l.id, T0 + 9000, 7);
	assert_int_equal(l.deadline_ms, T0 + 16000);
	assert_int_equal(l.t_send_ms, T0 + 9000);

	/* a large TTL does not overflow int arithmetic */
	pgw_lease_renewed(&l, 1, T0, 3000000);
	assert_int_equal(l.deadline_ms, T0 + 3000000000LL);

	pgw_lease_lost(&l);
	assert_int_equal(l.id, 0);
	assert_int_equal(l.ttl_s, 0);
	assert_int_equal(l.deadline_ms, 0);
	assert_false(pgw_lease_allows_writes(&l, 0, S));
	assert_false(pgw_lease_allows_writes(&l, -1000000, 0));
}

static void test_allows_writes_boundary(void **state)
{
	struct pgw_lease l;
	const int64_t d = T0 + 30000;

	(void)state;
	pgw_lease_renewed(&l, 42, T0, 30);
	assert_true(pgw_lease_allows_writes(&l, T0, S));
	assert_true(pgw_lease_allows_writes(&l, d - S - 1, S));
	assert_false(pgw_lease_allows_writes(&l, d - S, S));
	assert_false(pgw_lease_allows_writes(&l, d - S + 1, S));
	assert_false(pgw_lease_allows_writes(&l, d, S));
	assert_false(pgw_lease_allows_writes(&l, d + 3600000, S));
	/* margin 0: up to D itself, exclusive */
	assert_true(pgw_lease_allows_writes(&l, d - 1, 0));
	assert_false(pgw_lease_allows_writes(&l, d, 0));

	/* id 0: never, whatever the deadline says */
	l.id = 0;
	assert_false(pgw_lease_allows_writes(&l, T0, S));
	assert_false(pgw_lease_allows_writes(&l, d - S - 1, S));
}

static void test_write_budget(void **state)
{
	struct pgw_lease l;
	const int64_t d = T0 + 30000;

	(void)state;
	pgw_lease_renewed(&l, 42, T0, 30);
	assert_int_equal(pgw_lease_write_budget_ms(&l, T0, S), 25000);
	assert_int_equal(pgw_lease_write_budget_ms(&l, d - S - 1, S), 1);
	assert_int_equal(pgw_lease_write_budget_ms(&l, d - S, S), 0);
	assert_int_equal(pgw_lease_write_budget_ms(&l, d - S + 250, S), -250);
	/* budget > 0 exactly when writes are allowed */
	for (int64_t now = d - S - 3; now <= d - S + 3; now++)
		assert_int_equal(pgw_lease_write_budget_ms(&l, now, S) > 0,
		                 pgw_lease_allows_writes(&l, now, S));
	pgw_lease_lost(&l);
	assert_true(pgw_lease_write_budget_ms(&l, T0, S) < 0);
}

static void test_may_pet_boundary(void **state)
{
	const int64_t limit = S - PGW_RESET_ALLOWANCE_MS; /* S - R = 4000 ms */

	(void)state;
	assert_int_equal(PGW_RESET_ALLOWANCE_MS, 1000);
	assert_true(pgw_lease_may_pet(T0, T0, S));
	assert_true(pgw_lease_may_pet(T0, T0 + limit - 1, S));
	assert_true(pgw_lease_may_pet(T0, T0 + limit, S));      /* took exactly S - R */
	assert_false(pgw_lease_may_pet(T0, T0 + limit + 1, S)); /* one ms more */
	assert_false(pgw_lease_may_pet(T0, T0 + 60000, S));

	/* S == R: only an instantaneous renewal; S < R: never */
	assert_true(pgw_lease_may_pet(T0, T0, PGW_RESET_ALLOWANCE_MS));
	assert_false(pgw_lease_may_pet(T0, T0 + 1, PGW_RESET_ALLOWANCE_MS));
	assert_false(pgw_lease_may_pet(T0, T0, PGW_RESET_ALLOWANCE_MS - 1));
}

static void expect_invalid(int ttl, int loop_wait, int retry, int margin, const char *w1,
                           const char *w2)
{
	char err[256] = "";

	if (pgw_timing_valid(ttl, loop_wait, retry, margin, err, sizeof(err)))
		fail_msg("ttl %d loop_wait %d retry %d margin %d accepted", ttl, loop_wait, retry,
		         margin);
	if (!strstr(err, w1) || (w2 && !strstr(err, w2)))
		fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err, w1, w2 ? w2 : "");
}

static void test_timing_valid(void **state)
{
	char err[256];

	(void)state;
	/* Patroni's defaults, and the exact limit loop_wait + 2 * retry_timeout == ttl */
	err[0] = '\0';
	assert_true(pgw_timing_valid(30, 10, 10, 5, err, sizeof(err)));
	assert_string_equal(err, "");
	assert_true(pgw_timing_valid(30, 10, 10, 29, err, sizeof(err)));
	assert_true(pgw_timing_valid(30, 10, 10, 1, err, sizeof(err)));
	assert_true(pgw_timing_valid(20, 10, 5, 5, err, sizeof(err)));

	/* one more second fails, naming the figures */
	expect_invalid(30, 11, 10, 5, "loop_wait + 2 * retry_timeout (31)", "ttl (30)");
	expect_invalid(30, 10, 11, 5, "(32)", "(30)");
}

static void test_timing_invalid(void **state)
{
	(void)state;
	expect_invalid(30, 11, 10, 5, "loop_wait + 2 * retry_timeout (31) must not exceed ttl (30)",
	               NULL);
	expect_invalid(21, 10, 6, 5, "(22)", "ttl (21)");
	/* margin 0, negative, == ttl, > ttl */
	expect_invalid(30, 10, 10, 0, "safety margin 0 s", "ttl - 1 (29)");
	expect_invalid(30, 10, 10, -3, "safety margin -3 s", NULL);
	expect_invalid(30, 10, 10, 30, "safety margin 30 s", "29");
	expect_invalid(30, 10, 10, 31, "safety margin 31 s", NULL);
	/* non-positive settings */
	expect_invalid(0, 10, 10, 5, "must be positive", NULL);
	expect_invalid(30, 0, 10, 5, "must be positive", NULL);
	expect_invalid(30, 10, 0, 5, "must be positive", NULL);
	expect_invalid(30, 10, -1, 5, "must be positive", NULL);
	/* no int overflow in the sum */
	expect_invalid(30, 2147483647, 2147483647, 5, "(6442450941)", "ttl (30)");
}

static void test_timing_small_err_buffer(void **state)
{
	char err[8];

	(void)state;
	memset(err, 'x', sizeof(err));
	assert_false(pgw_timing_valid(30, 11, 10, 5, err, sizeof(err)));
	assert_int_equal(strlen(err), sizeof(err) - 1);
}

static void test_op_timeout(void **state)
{
	struct pgw_lease l;
	const int64_t d = T0 + 30000;

	(void)state;
	pgw_lease_renewed(&l, 42, T0, 30);
	/* not writing: retry_timeout, whatever the lease says */
	assert_int_equal(pgw_lease_op_timeout_ms(&l, T0, S, 10, false), 10000);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, d + 100000, S, 10, false), 10000);
	pgw_lease_lost(&l);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, T0, S, 10, false), 10000);

	/* writing: never past D - S */
	pgw_lease_renewed(&l, 42, T0, 30);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, T0, S, 10, true), 10000); /* budget 25 s */
	assert_int_equal(pgw_lease_op_timeout_ms(&l, d - S - 10000, S, 10, true), 10000);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, d - S - 9999, S, 10, true), 9999);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, d - S - 2500, S, 10, true), 2500);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, d - S - 100, S, 10, true), 100);
	/* at least 100 ms, also past the deadline and without a lease */
	assert_int_equal(pgw_lease_op_timeout_ms(&l, d - S - 99, S, 10, true), 100);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, d - S, S, 10, true), 100);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, d + 60000, S, 10, true), 100);
	pgw_lease_lost(&l);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, T0, S, 10, true), 100);
	/* retry_timeout 0 also gets the floor */
	pgw_lease_renewed(&l, 42, T0, 30);
	assert_int_equal(pgw_lease_op_timeout_ms(&l, T0, S, 0, false), 100);
}

/* W: <= TTL - S (rule 3), <= TTL - R - loop_wait - 1 (a crash's close pings once),
 * and > loop_wait (pets come every loop). */
static void test_watchdog_timeout(void **state)
{
	(void)state;
	assert_int_equal(pgw_wdguard_timeout(10, 5, 2), 5);   /* the tests' timing: TTL - S */
	assert_int_equal(pgw_wdguard_timeout(30, 5, 10), 18); /* Patroni's defaults: crash bound */
	assert_int_equal(pgw_wdguard_timeout(30, 5, 5), 23);
	assert_int_equal(pgw_wdguard_timeout(10, 5, 4), 0); /* W 4 is not > loop_wait 4 */
	assert_int_equal(pgw_wdguard_timeout(6, 5, 1), 0);  /* TTL - S = 1 */
	assert_int_equal(pgw_wdguard_timeout(5, 5, 1), 0);
	for (int ttl = 1; ttl <= 120; ttl++)
		for (int s = 1; s < ttl; s++)
			for (int lw = 1; lw <= ttl; lw++) {
				int w = pgw_wdguard_timeout(ttl, s, lw);

				if (w == 0)
					continue;
				assert_true(w <= ttl - s && w + lw + 1 <= ttl - 1 && w > lw);
			}
}

/* Rule 7: a lapsed lease allows nothing until a keepalive renews it. */
static void test_lapse(void **state)
{
	struct pgw_lease l;

	(void)state;
	pgw_lease_renewed(&l, 42, T0, 10);
	assert_int_equal(pgw_lease_to_renew(&l), 42);
	pgw_lease_lapse(&l);
	assert_int_equal(l.id, 0);
	assert_int_equal(l.lapsed_id, 42);
	assert_int_equal(pgw_lease_to_renew(&l), 42);
	/* no writes, no budget, no watchdog bound, whatever the clock says */
	assert_false(pgw_lease_allows_writes(&l, T0, S));
	assert_true(pgw_lease_write_budget_ms(&l, T0, S) < 0);
	assert_int_equal(pgw_lease_wd_bound_s(&l, T0, 2), 0);
	/* a keepalive that succeeds: D counts from its send time, the lapse is forgotten */
	pgw_lease_renewed(&l, 42, T0 + 20000, 10);
	assert_int_equal(l.id, 42);
	assert_int_equal(l.lapsed_id, 0);
	assert_int_equal(l.deadline_ms, T0 + 30000);
	assert_true(pgw_lease_allows_writes(&l, T0 + 20001, S));
	/* etcd says it is gone: nothing is left to renew, the next call grants */
	pgw_lease_lapse(&l);
	pgw_lease_lost(&l);
	assert_int_equal(pgw_lease_to_renew(&l), 0);
	assert_int_equal(l.lapsed_id, 0);
}

/* Writes stop PGW_WD_STOP_LEAD_MS before an armed watchdog can fire, never later. */
static void test_cap_to_watchdog(void **state)
{
	struct pgw_lease l;

	(void)state;
	/* ttl 30, W 18 petted at T0 + 100: D - S = T0 + 25 s becomes T0 + 17.1 s */
	pgw_lease_renewed(&l, 7, T0, 30);
	pgw_lease_cap_to_watchdog(&l, T0 + 100 + 18000, S, 1000);
	assert_int_equal(l.deadline_ms - S, T0 + 17100);
	assert_true(pgw_lease_allows_writes(&l, T0 + 17099, S));
	assert_false(pgw_lease_allows_writes(&l, T0 + 17100, S));
	/* never raised: a later countdown leaves the lower D alone */
	pgw_lease_cap_to_watchdog(&l, T0 + 60000, S, 1000);
	assert_int_equal(l.deadline_ms - S, T0 + 17100);
	/* a watchdog that fires after D - S changes nothing (ttl 10, W 5 from T0 + 2 s) */
	pgw_lease_renewed(&l, 7, T0, 10);
	pgw_lease_cap_to_watchdog(&l, T0 + 2000 + 5000 + 10000, S, 1000);
	assert_int_equal(l.deadline_ms, T0 + 10000);
	/* no armed watchdog, or no lease: unchanged */
	pgw_lease_cap_to_watchdog(&l, 0, S, 1000);
	assert_int_equal(l.deadline_ms, T0 + 10000);
	pgw_lease_lapse(&l);
	pgw_lease_cap_to_watchdog(&l, T0 + 1, S, 1000);
	assert_int_equal(l.deadline_ms, 0);
	assert_int_equal(l.lapsed_id, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_renewed_and_lost),
	    cmocka_unit_test(test_lapse),
	    cmocka_unit_test(test_cap_to_watchdog),
	    cmocka_unit_test(test_watchdog_timeout),
	    cmocka_unit_test(test_allows_writes_boundary),
	    cmocka_unit_test(test_write_budget),
	    cmocka_unit_test(test_may_pet_boundary),
	    cmocka_unit_test(test_timing_valid),
	    cmocka_unit_test(test_timing_invalid),
	    cmocka_unit_test(test_timing_small_err_buffer),
	    cmocka_unit_test(test_op_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
