/*
 * test_step.c - what a node remembers between observations (core/step.c): each
 * remembered fact, how it changes, and what it makes the decision see.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "step.h"

struct fx {
	struct pgw_node_state s;
	struct pgw_cluster c;
	struct pgw_pg_state pg;
	struct pgw_obs o;
};

static struct pgw_member *add_member(struct fx *f, const char *name, int64_t lease, int64_t rev)
{
	struct pgw_member *m = &f->c.members[f->c.nmembers++];

	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->lease = lease;
	m->mod_revision = rev;
	snprintf(m->role, sizeof(m->role), "replica");
	snprintf(m->state, sizeof(m->state), "running");
	return m;
}

/* node1 leads with lease 11 (key revision 10); this node is node2, a replica. */
static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	pgw_state_init(&f->s);
	f->c.initialized = true;
	f->c.has_leader = true;
	snprintf(f->c.leader, sizeof(f->c.leader), "node1");
	f->c.leader_lease = 11;
	f->c.leader_mod_revision = 10;
	f->c.revision = 12;
	f->c.optime = 1000;
	f->c.max_lag = 1048576;
	add_member(f, "node1", 11, 9);
	add_member(f, "node2", 12, 11);
	f->pg.datadir = PGW_DATADIR_VALID;
	f->pg.running = f->pg.accepting = f->pg.in_recovery = f->pg.streaming = true;
	f->o.self = "node2";
	f->o.etcd_ok = true;
	f->o.cluster = &f->c;
	f->o.pg = &f->pg;
	f->o.margin_ms = 5000;
	snprintf(f->o.self_member.name, PGW_NAME_MAX, "node2");
}

static void lose_leader(struct fx *f, bool record_armed)
{
	f->c.has_leader = false;
	f->c.revision = 20;
	f->c.last_leader.present = true;
	snprintf(f->c.last_leader.member, PGW_NAME_MAX, "node1");
	f->c.last_leader.lease = 11;
	f->c.last_leader.watchdog_armed = record_armed;
	f->c.nmembers = 1;
	f->c.members[0] = f->c.members[1]; /* node1's key went with its lease */
}

static void decide(struct fx *f, struct pgw_action *a)
{
	memset(a, 0, sizeof(*a));
	pgw_step(&f->s, &f->o, a);
}

static void test_was_primary(void **state)
{
	struct fx f;
	struct pgw_lease l = {0};

	(void)state;
	fx_init(&f);
	f.pg.in_recovery = false;
	pgw_step_pg_observed(&f.s, &f.pg);
	assert_true(f.s.was_primary);
	/* up but not answering: it may still be a primary we cannot see */
	f.pg.accepting = false;
	pgw_step_pg_observed(&f.s, &f.pg);
	assert_true(f.s.was_primary);
	/* rule 7: no lease, or past D - S, while it may write: stop at once */
	assert_true(pgw_step_must_stop(&f.s, &l, 1000, 5000));
	pgw_lease_renewed(&l, 5, 0, 10);
	assert_false(pgw_step_must_stop(&f.s, &l, 4999, 5000));
	assert_true(pgw_step_must_stop(&f.s, &l, 5000, 5000));
	f.pg.running = false;
	pgw_step_pg_observed(&f.s, &f.pg);
	assert_false(f.s.was_primary);
	assert_false(pgw_step_must_stop(&f.s, &l, 5000, 5000));
}

static void test_leader_optime_and_rewind(void **state)
{
	struct fx f;

	(void)state;
	fx_init(&f);
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	assert_int_equal(f.s.leader_optime, 1000);
	assert_true(f.s.streamed);
	f.c.optime = 900; /* never goes back for the same leader */
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	assert_int_equal(f.s.leader_optime, 1000);
	/* a failed read changes nothing */
	f.c.optime = 5000;
	pgw_step_cluster_read(&f.s, false, &f.c, &f.pg, f.o.now_ms);
	assert_int_equal(f.s.leader_optime, 1000);
	/* a rewind that failed from node1 is retried from another leader only */
	pgw_step_rewind_failed(&f.s, "node1");
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	assert_true(f.s.rewind_failed);
	snprintf(f.c.leader, sizeof(f.c.leader), "node3");
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	assert_false(f.s.rewind_failed);
	assert_int_equal(f.s.leader_optime, 5000); /* a new leader's own position */
}

static void test_lost_leader_watchdog(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* never seen leading (e.g. this daemon restarted): the record's word */
	fx_init(&f);
	lose_leader(&f, true);
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	decide(&f, &a);
	assert_true(f.o.lost_leader_watchdog);
	fx_init(&f);
	lose_leader(&f, false);
	decide(&f, &a);
	assert_false(f.o.lost_leader_watchdog);

	/* seen leading: its member key, published after it took the key, is the latest word */
	fx_init(&f);
	f.c.members[0].watchdog_armed = false; /* revision 9: before the key (10) */
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	assert_false(f.s.wd_known);
	f.c.members[0].mod_revision = 13;
	f.c.members[0].watchdog_armed = true; /* armed later (simulator seed 74117) */
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	lose_leader(&f, false);
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	decide(&f, &a);
	assert_true(f.o.lost_leader_watchdog);

	/* ... and it can take it back: disarmed while leading */
	fx_init(&f);
	f.c.members[0].mod_revision = 13;
	f.c.members[0].watchdog_armed = false;
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	lose_leader(&f, true);
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	decide(&f, &a);
	assert_false(f.o.lost_leader_watchdog);

	/* a restarted daemon of the same name (a new lease) does not speak for the old one
	 * (simulator seed 37400) */
	fx_init(&f);
	f.c.members[0].lease = 99;
	f.c.members[0].mod_revision = 13;
	f.c.members[0].watchdog_armed = false;
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	lose_leader(&f, true);
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	decide(&f, &a);
	assert_true(f.o.lost_leader_watchdog);
}

static void test_revisions(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_init(&f);
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	assert_int_equal(f.s.leader_rev, 10);
	assert_int_equal(f.s.no_leader_rev, 0);
	lose_leader(&f, true);
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	assert_int_equal(f.s.no_leader_rev, 20); /* the first read without a leader */
	f.c.revision = 25;
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	assert_int_equal(f.s.no_leader_rev, 20);
	decide(&f, &a);
	assert_int_equal(f.o.positions_after_rev, 20);
	assert_int_equal(f.o.leader_rev, 10);
	f.c.has_leader = true;
	f.c.leader_mod_revision = 30;
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, f.o.now_ms);
	assert_int_equal(f.s.no_leader_rev, 0);
	assert_int_equal(f.s.leader_rev, 30);
}

/* One report of the leader's probes to the step (leader node1, lease 11). */
static void probe(struct fx *f, int64_t silent_since, enum pgw_lease_reading lease, int64_t sent,
                  int64_t recv)
{
	struct pgw_probe p = {silent_since, lease, sent, recv};

	pgw_step_probe(&f->s, true, "node1", 11, &p);
}

static void test_probe_and_fence(void **state)
{
	struct fx f;
	char fenced[PGW_NAME_MAX];
	int64_t lease = 0;

	(void)state;
	fx_init(&f);
	assert_true(pgw_step_watching(&f.s, true, true, &f.c, "node2"));
	assert_false(pgw_step_watching(&f.s, false, true, &f.c, "node2"));
	assert_false(pgw_step_watching(&f.s, true, true, &f.c, "node1")); /* itself */
	/* silence counts from the send time of the first unanswered probe */
	probe(&f, 1000, PGW_LEASE_RENEWED, 1000, 1010);
	assert_int_equal(pgw_step_silence_ms(&f.s, &f.c, 1500), 500);
	assert_int_equal(pgw_step_unrenewed_ms(&f.s, &f.c), 0); /* still renewing */
	/* a stale reading proves [recv - 1 s, sent] unrenewed */
	probe(&f, 1000, PGW_LEASE_STALE, 3000, 3010);
	assert_int_equal(pgw_step_silence_ms(&f.s, &f.c, 3500), 2500);
	assert_int_equal(pgw_step_unrenewed_ms(&f.s, &f.c), 990);
	/* overlapping readings chain: no renewal can hide between them */
	probe(&f, 1000, PGW_LEASE_STALE, 3500, 3510);
	probe(&f, 1000, PGW_LEASE_NOT_READ, 0, 0); /* no reading: the span stays */
	probe(&f, 1000, PGW_LEASE_STALE, 4400, 4420);
	assert_int_equal(pgw_step_unrenewed_ms(&f.s, &f.c), 4400 - 2010);
	/* readings further apart than 1 s may hide a renewal: the span starts again */
	probe(&f, 1000, PGW_LEASE_STALE, 5500, 5500);
	assert_int_equal(pgw_step_unrenewed_ms(&f.s, &f.c), 1000);
	/* a reading answered before it was asked is nonsense: in doubt, not proven */
	probe(&f, 1000, PGW_LEASE_STALE, 5600, 5599);
	assert_int_equal(pgw_step_unrenewed_ms(&f.s, &f.c), 0);
	probe(&f, 1000, PGW_LEASE_STALE, 5700, 5700);
	/* another lease of the same name starts a new silence */
	f.c.leader_lease = 12;
	assert_int_equal(pgw_step_silence_ms(&f.s, &f.c, 5800), 0);
	assert_int_equal(pgw_step_unrenewed_ms(&f.s, &f.c), 0);
	f.c.leader_lease = 11;
	/* the lease seen renewed again (or a failed reading): the span ends, the silence
	 * goes on */
	probe(&f, 1000, PGW_LEASE_RENEWED, 5800, 5810);
	assert_int_equal(pgw_step_unrenewed_ms(&f.s, &f.c), 0);
	assert_int_equal(pgw_step_silence_ms(&f.s, &f.c, 5900), 4900);
	/* a later answered probe ends the silence: what the lease said is forgotten */
	probe(&f, 1000, PGW_LEASE_STALE, 6000, 6000);
	probe(&f, 0, PGW_LEASE_STALE, 6100, 6100);
	assert_int_equal(pgw_step_silence_ms(&f.s, &f.c, 6200), 0);
	assert_int_equal(pgw_step_unrenewed_ms(&f.s, &f.c), 0);
	/* a probe of another leader forgets the span too */
	probe(&f, 6300, PGW_LEASE_STALE, 6300, 6300);
	pgw_step_probe(&f.s, true, "node3", 11, &(struct pgw_probe){.silent_since = 6400});
	f.c.leader_lease = 11;
	assert_int_equal(pgw_step_unrenewed_ms(&f.s, &f.c), 0);
	pgw_step_probe(&f.s, false, "", 0, &(struct pgw_probe){0});
	assert_int_equal(f.s.leader_silent_since, 0);

	pgw_step_fenced(&f.s, "node1", 11);
	pgw_step_promoted(&f.s, fenced, sizeof(fenced), &lease);
	assert_string_equal(fenced, "node1");
	assert_int_equal(lease, 11);
	assert_true(f.s.was_primary);
	pgw_step_promoted(&f.s, fenced, sizeof(fenced), &lease);
	assert_string_equal(fenced, ""); /* audited once */
}

/* etcd's remaining TTL is truncated to seconds: stale only when provably > 1 s old. */
static void test_lease_ttl_stale(void **state)
{
	(void)state;
	assert_false(pgw_lease_ttl_stale(30, 30)); /* just renewed */
	assert_false(pgw_lease_ttl_stale(29, 30)); /* elapsed in (0, 1] s */
	assert_true(pgw_lease_ttl_stale(28, 30));  /* elapsed > 1 s */
	assert_true(pgw_lease_ttl_stale(3, 30));
	assert_true(pgw_lease_ttl_stale(-1, 30)); /* gone */
	assert_true(pgw_lease_ttl_stale(-1, 0));
	assert_false(pgw_lease_ttl_stale(0, 0));   /* no grantedTTL: cannot tell */
	assert_false(pgw_lease_ttl_stale(40, 30)); /* nonsense: cannot tell */
}

/* S3: the lost leader seen back as a running replica (new lease) stays known as no
 * longer writing after its new member key is gone too (simulator seed 44263). */
static void test_lost_leader_back_as_replica(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_init(&f);
	lose_leader(&f, false);
	pgw_lease_renewed(&f.o.lease, 12, 0, 30);
	f.o.now_ms = 1000;
	snprintf(f.c.sysid, sizeof(f.c.sysid), "7000000000000000001");
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, 1000);
	decide(&f, &a);
	assert_false(f.o.lost_leader_back);
	assert_string_equal(a.rule, "unprotected-leader-lost");
	/* under its old lease it says nothing */
	add_member(&f, "node1", 11, 21);
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, 1500);
	decide(&f, &a);
	assert_false(f.o.lost_leader_back);
	f.c.nmembers = 1;
	/* a new incarnation that is not running as a replica says nothing either */
	snprintf(add_member(&f, "node1", 31, 22)->state, sizeof(f.c.members[1].state), "starting");
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, 2000);
	decide(&f, &a);
	assert_false(f.o.lost_leader_back);
	/* back as a running replica under lease 31 */
	snprintf(f.c.members[1].state, sizeof(f.c.members[1].state), "running");
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, 3000);
	decide(&f, &a);
	assert_true(f.o.lost_leader_back);
	assert_string_not_equal(a.rule, "unprotected-leader-lost");
	/* it dies again: its key goes with lease 31, the memory stays */
	f.c.nmembers = 1;
	pgw_step_cluster_read(&f.s, true, &f.c, &f.pg, 4000);
	decide(&f, &a);
	assert_true(f.o.lost_leader_back);
	assert_string_not_equal(a.rule, "unprotected-leader-lost");
	/* a later leader (another lease in the record) is judged afresh */
	f.c.last_leader.lease = 41;
	decide(&f, &a);
	assert_false(f.o.lost_leader_back);
	assert_string_equal(a.rule, "unprotected-leader-lost");
}

/* Divergence counts once it has held, not streaming, for PGW_DIVERGED_CONFIRM_MS;
 * a stopped server's control file counts at once. */
static void test_divergence_confirmed(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_init(&f);
	f.c.members[0].timeline = 3;
	f.c.forks[0] = (struct pgw_fork){2, 5000};
	f.c.nforks = 1;
	f.pg.timeline = 2;
	f.pg.received_lsn = 6000;
	f.pg.streaming = false;
	f.o.now_ms = 100000;
	decide(&f, &a);
	assert_false(f.o.diverged);
	f.o.now_ms += PGW_DIVERGED_CONFIRM_MS - 1;
	decide(&f, &a);
	assert_false(f.o.diverged);
	f.o.now_ms += 1;
	decide(&f, &a);
	assert_true(f.o.diverged);
	/* it streams: not diverged after all (a checkpoint timeline that lagged) */
	f.pg.streaming = true;
	decide(&f, &a);
	assert_false(f.o.diverged);
	f.pg.streaming = false;
	f.o.now_ms += PGW_DIVERGED_CONFIRM_MS - 1;
	decide(&f, &a);
	assert_false(f.o.diverged); /* the clock started again */
	/* stopped */
	f.pg.running = f.pg.accepting = f.pg.in_recovery = false;
	f.o.cd_valid = true;
	f.o.cd.state = PGW_CS_SHUT_DOWN_IN_RECOVERY;
	f.o.cd.timeline = 2;
	f.o.cd.checkpoint_lsn = 5001;
	decide(&f, &a);
	assert_true(f.o.diverged);
	pgw_step_rewound(&f.s);
	assert_int_equal(f.s.diverged_since, 0);
}

/* An old primary's data started as a replica keeps being treated as an old primary. */
static void test_ran_as_primary(void **state)
{
	struct fx f;
	struct pgw_action a;
	char fenced[PGW_NAME_MAX];
	int64_t fl;

	(void)state;
	fx_init(&f);
	lose_leader(&f, true);
	pgw_lease_renewed(&f.o.lease, 12, 0, 30);
	f.o.now_ms = 1000;
	snprintf(f.c.sysid, sizeof(f.c.sysid), "7000000000000000001");
	f.pg.running = f.pg.accepting = f.pg.in_recovery = false;
	f.o.cd_valid = true;
	f.o.cd.state = PGW_CS_IN_PRODUCTION;
	decide(&f, &a);
	assert_string_equal(a.rule, "no-leader-start");
	assert_true(f.s.ran_as_primary);
	pgw_step_rewound(&f.s);
	assert_false(f.s.ran_as_primary);
	f.s.ran_as_primary = true;
	pgw_step_cloned(&f.s);
	assert_false(f.s.ran_as_primary);
	f.s.ran_as_primary = true;
	pgw_step_promoted(&f.s, fenced, sizeof(fenced), &fl);
	assert_false(f.s.ran_as_primary);
	/* a replica's data (control file in recovery) started as a replica: nothing kept */
	f.o.cd.state = PGW_CS_SHUT_DOWN_IN_RECOVERY;
	decide(&f, &a);
	assert_string_equal(a.rule, "no-leader-start");
	assert_false(f.s.ran_as_primary);
}

static void test_watchdog_effects(void **state)
{
	struct fx f;
	struct pgw_action a = {0};

	(void)state;
	fx_init(&f);
	a.kind = PGW_ACT_ACQUIRE;
	assert_true(pgw_step_needs_watchdog(&f.s, &a));
	a.kind = PGW_ACT_FOLLOW;
	assert_false(pgw_step_needs_watchdog(&f.s, &a));
	f.s.was_primary = true; /* a primary keeps it armed whatever it does */
	assert_true(pgw_step_needs_watchdog(&f.s, &a));
	/* rule 5: disarm only once writes stopped, and not while holding the key */
	a.kind = PGW_ACT_NONE;
	assert_false(pgw_step_may_disarm(&f.s, &a, false));
	f.s.was_primary = false;
	assert_true(pgw_step_may_disarm(&f.s, &a, false));
	assert_false(pgw_step_may_disarm(&f.s, &a, true));
	a.kind = PGW_ACT_RELEASE;
	assert_true(pgw_step_may_disarm(&f.s, &a, true));
	assert_true(pgw_action_gives_up(PGW_ACT_DEMOTE_NOW));
	assert_false(pgw_action_gives_up(PGW_ACT_PROMOTE));
}

static void test_primary_down_since(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_init(&f);
	snprintf(f.c.leader, sizeof(f.c.leader), "node2"); /* this node holds the key */
	f.c.leader_lease = 12;
	f.o.self = "node2";
	pgw_lease_renewed(&f.o.lease, 12, 0, 10);
	f.pg.running = false;
	f.o.now_ms = 1000;
	decide(&f, &a);
	assert_int_equal(f.s.primary_down_since, 1000);
	f.o.now_ms = 2000;
	decide(&f, &a);
	assert_int_equal(f.o.primary_down_since_ms, 1000);
	f.pg.running = true;
	f.pg.in_recovery = false;
	decide(&f, &a);
	assert_int_equal(f.s.primary_down_since, 0);
}

/* pre_promote's veto: seen by the decision until another member leads, or for the
 * hold-off; a promotion forgets it. */
static void test_pre_promote_veto(void **state)
{
	struct fx f;
	struct pgw_action a;
	char fenced[PGW_NAME_MAX];
	int64_t fl;

	(void)state;
	fx_init(&f);
	lose_leader(&f, true);
	snprintf(f.c.sysid, sizeof(f.c.sysid), "1"); /* bootstrapped */
	f.o.loop_wait_s = 10;
	f.o.now_ms = 100000;
	pgw_lease_renewed(&f.o.lease, 12, 99000, 30);
	decide(&f, &a);
	assert_false(f.o.pre_promote_vetoed);
	assert_string_not_equal(a.rule, "pre-promote-vetoed");

	pgw_step_pre_promote_vetoed(&f.s, 100000);
	decide(&f, &a);
	assert_true(f.o.pre_promote_vetoed);
	assert_int_equal(a.kind, PGW_ACT_NONE);
	assert_string_equal(a.rule, "pre-promote-vetoed");
	/* still within 2 * loop_wait + 1 s */
	f.o.now_ms = 100000 + pgw_pre_promote_holdoff_ms(10) - 1;
	pgw_lease_renewed(&f.o.lease, 12, f.o.now_ms, 30);
	decide(&f, &a);
	assert_true(f.o.pre_promote_vetoed);
	/* then it stands again (and runs pre_promote again) */
	f.o.now_ms += 1;
	decide(&f, &a);
	assert_false(f.o.pre_promote_vetoed);
	assert_string_not_equal(a.rule, "pre-promote-vetoed");
	assert_int_equal(f.s.pre_promote_veto_ms, 0);

	/* another member took over: the veto has done its job */
	pgw_step_pre_promote_vetoed(&f.s, f.o.now_ms);
	f.c.has_leader = true;
	snprintf(f.c.leader, sizeof(f.c.leader), "node3");
	decide(&f, &a);
	assert_false(f.o.pre_promote_vetoed);
	assert_int_equal(f.s.pre_promote_veto_ms, 0);

	/* a promotion forgets it */
	pgw_step_pre_promote_vetoed(&f.s, f.o.now_ms);
	pgw_step_promoted(&f.s, fenced, sizeof(fenced), &fl);
	assert_int_equal(f.s.pre_promote_veto_ms, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_was_primary),
	    cmocka_unit_test(test_leader_optime_and_rewind),
	    cmocka_unit_test(test_lost_leader_watchdog),
	    cmocka_unit_test(test_revisions),
	    cmocka_unit_test(test_probe_and_fence),
	    cmocka_unit_test(test_lease_ttl_stale),
	    cmocka_unit_test(test_lost_leader_back_as_replica),
	    cmocka_unit_test(test_divergence_confirmed),
	    cmocka_unit_test(test_ran_as_primary),
	    cmocka_unit_test(test_watchdog_effects),
	    cmocka_unit_test(test_primary_down_since),
	    cmocka_unit_test(test_pre_promote_veto),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
