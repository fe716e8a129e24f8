/*
 * test_decide.c - the HA decision table (core/decide.c): every row is reached
 * by at least one test (checked at the end against pgw_print_rules), each test
 * asserting the action, the row name and the words of the reason; the safety
 * cases (lease deadline, another leader, etcd down, stale own key) each have
 * their own test; and the election is run from every candidate's point of view
 * on the same cluster data to check that exactly one node takes the key.
 *
 * Observations come from two fixtures, "healthy replica node2 following leader
 * node1" and "healthy leader node1", tweaked per test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"

#define NOW        10000000LL /* the fake monotonic clock, ms */
#define MARGIN     5000       /* S, ms */
#define TTL        30         /* s */
#define LEADER_LSE 111        /* node1's lease */
#define SELF_LSE   222        /* the observing node's lease */
#define SYSID      7000000000000000001ULL
#define SYSID_STR  "7000000000000000001"
#define MB         (1024 * 1024)

/* ---- fixtures ------------------------------------------------------------ */

struct fx {
	struct pgw_cluster c;
	struct pgw_pg_state pg;
	struct pgw_obs o;
	bool sync_self; /* copy self's cluster entry into o.self_member before deciding */
};

static struct pgw_member *add_member(struct pgw_cluster *c, const char *name, const char *host,
                                     int port, const char *role, int64_t xlog)
{
	struct pgw_member *m = &c->members[c->nmembers++];

	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->conn_host, sizeof(m->conn_host), "%s", host);
	m->conn_port = port;
	snprintf(m->role, sizeof(m->role), "%s", role);
	snprintf(m->state, sizeof(m->state), "running");
	m->xlog_location = xlog;
	m->timeline = 2;
	m->failover_priority = 1;
	m->streaming = strcmp(role, "replica") == 0;
	return m;
}

static struct pgw_member *member(struct fx *f, const char *name)
{
	for (int i = 0; i < f->c.nmembers; i++)
		if (strcmp(f->c.members[i].name, name) == 0)
			return &f->c.members[i];
	fail_msg("no member %s in the fixture", name);
	return NULL;
}

static void remove_member(struct fx *f, const char *name)
{
	struct pgw_member *m = member(f, name);
	int i = (int)(m - f->c.members);

	memmove(m, m + 1, sizeof(*m) * (size_t)(f->c.nmembers - i - 1));
	f->c.nmembers--;
}

static void set_leader(struct fx *f, const char *name, int64_t lease)
{
	f->c.has_leader = true;
	snprintf(f->c.leader, sizeof(f->c.leader), "%s", name);
	f->c.leader_lease = lease;
}

static void no_leader(struct fx *f)
{
	f->c.has_leader = false;
	f->c.leader[0] = '\0';
	f->c.leader_lease = 0;
}

/* Renewed so that D - S - now == budget_ms. */
static void lease_budget(struct fx *f, int64_t budget_ms)
{
	int64_t d = NOW + budget_ms + MARGIN;

	pgw_lease_renewed(&f->o.lease, f->o.lease.id ? f->o.lease.id : SELF_LSE,
	                  d - (int64_t)TTL * 1000, TTL);
}

/* node2, a streaming replica of leader node1; node3 a replica a bit behind. */
static void fx_replica(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->sync_self = true;
	f->c.initialized = true;
	snprintf(f->c.sysid, sizeof(f->c.sysid), SYSID_STR);
	f->c.optime = 5000;
	set_leader(f, "node1", LEADER_LSE);
	add_member(&f->c, "node1", "10.0.0.1", 5432, "master", 5000);
	add_member(&f->c, "node2", "10.0.0.2", 5432, "replica", 5000);
	add_member(&f->c, "node3", "10.0.0.3", 5432, "replica", 4000);

	f->pg.datadir = PGW_DATADIR_VALID;
	f->pg.running = true;
	f->pg.accepting = true;
	f->pg.in_recovery = true;
	f->pg.timeline = 2;
	f->pg.system_identifier = SYSID;
	f->pg.streaming = true;
	snprintf(f->pg.primary_host, sizeof(f->pg.primary_host), "10.0.0.1");
	f->pg.primary_port = 5432;

	f->o.now_ms = NOW;
	f->o.self = "node2";
	f->o.margin_ms = MARGIN;
	pgw_lease_renewed(&f->o.lease, SELF_LSE, NOW - 1000, TTL);
	f->o.etcd_ok = true;
	f->o.cluster = &f->c;
	f->o.pg = &f->pg;
	f->o.leader_optime = 5000;
	f->o.max_lag = MB;
	f->o.use_pg_rewind = true;
	f->o.primary_start_timeout_s = 300;
}

/* node1, the healthy primary holding the leader key. */
static void fx_leader(struct fx *f)
{
	fx_replica(f);
	f->o.self = "node1";
	f->o.lease.id = LEADER_LSE;
	f->pg.in_recovery = false;
	f->pg.streaming = false;
	f->pg.primary_host[0] = '\0';
	f->pg.primary_port = 0;
	f->pg.wal_lsn = 5000;
}

/* node2, a healthy replica, after the leader key expired (node1 is gone). */
static void fx_no_leader(struct fx *f)
{
	fx_replica(f);
	no_leader(f);
	remove_member(f, "node1");
}

/* Stopped PostgreSQL; the control file says `state`. */
static void pg_stopped(struct fx *f, enum pgw_cluster_state state)
{
	f->pg.running = false;
	f->pg.accepting = false;
	f->pg.in_recovery = false;
	f->pg.streaming = false;
	f->pg.system_identifier = 0;
	f->pg.timeline = 0;
	f->o.cd_valid = true;
	f->o.cd.state = state;
	f->o.cd.system_identifier = SYSID;
	f->o.cd.timeline = 2;
}

static void pg_empty(struct fx *f)
{
	memset(&f->pg, 0, sizeof(f->pg));
	f->pg.datadir = PGW_DATADIR_EMPTY;
	f->o.cd_valid = false;
}

/* The leader record of a leader lost as name (present, neither released nor fenced). */
static struct pgw_leader_record *last_leader(struct fx *f, const char *name)
{
	struct pgw_leader_record *lr = &f->c.last_leader;

	lr->present = true;
	snprintf(lr->member, sizeof(lr->member), "%s", name);
	return lr;
}

/* ---- deciding and checking ----------------------------------------------- */

static const char *seen_rules[64];
static int nseen;

static void note_rule(const char *rule)
{
	for (int i = 0; i < nseen; i++)
		if (strcmp(seen_rules[i], rule) == 0)
			return;
	assert_true(nseen < (int)(sizeof(seen_rules) / sizeof(seen_rules[0])));
	seen_rules[nseen++] = rule;
}

static void decide_as(struct fx *f, const char *self, struct pgw_action *a)
{
	f->o.self = self;
	if (f->sync_self && f->o.etcd_ok) {
		const struct pgw_member *m = pgw_cluster_member(&f->c, self);

		if (m)
			f->o.self_member = *m;
		f->o.nofailover = f->o.self_member.nofailover;
	}
	memset(a, 0x5a, sizeof(*a)); /* decide must fill everything it returns */
	pgw_decide(&f->o, a);
	assert_non_null(a->rule);
	assert_true(a->reason[0] != '\0');
	assert_non_null(memchr(a->reason, '\0', sizeof(a->reason)));
	note_rule(a->rule);
}

static void decide(struct fx *f, struct pgw_action *a)
{
	decide_as(f, f->o.self, a);
}

/* words: substrings of the reason separated by '|'. */
static void check(const struct pgw_action *a, enum pgw_action_kind kind, const char *rule,
                  const char *words)
{
	char buf[512], *save = NULL;

	if (strcmp(a->rule, rule) != 0 || a->kind != kind)
		fail_msg("expected %s/%s, got %s/%s: %s", rule, pgw_action_name(kind), a->rule,
		         pgw_action_name(a->kind), a->reason);
	snprintf(buf, sizeof(buf), "%s", words);
	for (char *w = strtok_r(buf, "|", &save); w; w = strtok_r(NULL, "|", &save))
		if (!strstr(a->reason, w))
			fail_msg("rule %s: reason \"%s\" lacks \"%s\"", rule, a->reason, w);
}

static void check_target(const struct pgw_action *a, const char *name, const char *host, int port)
{
	assert_string_equal(a->target, name);
	assert_string_equal(a->target_host, host);
	assert_int_equal(a->target_port, port);
}

static bool primary_kind(enum pgw_action_kind k)
{
	return k == PGW_ACT_ACQUIRE || k == PGW_ACT_PROMOTE || k == PGW_ACT_BOOTSTRAP ||
	       k == PGW_ACT_START_PRIMARY || k == PGW_ACT_LEADER_DUTIES;
}

/* ---- the fixtures themselves --------------------------------------------- */

static void test_fixture_replica_following(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "replica following the leader|node1|streaming");
	check_target(&a, "node1", "10.0.0.1", 5432);

	f.pg.streaming = false;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "not streaming");

	/* up but not answering yet: keep waiting, whatever the upstream */
	f.pg.accepting = false;
	f.pg.primary_host[0] = '\0';
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "node1");
}

static void test_fixture_leader_healthy(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	assert_true(pgw_obs_holds_leader(&f.o));
	decide(&f, &a);
	check(&a, PGW_ACT_LEADER_DUTIES, "leader-healthy", "holding the leader key|primary");
}

/* ---- safety rows ----------------------------------------------------------- */

static void test_shutdown(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	f.o.shutdown_requested = true;
	decide(&f, &a);
	check(&a, PGW_ACT_SHUTDOWN, "shutdown", "shutdown requested|release the leader key");

	/* it comes first, even before the lease deadline and with etcd down */
	lease_budget(&f, -1);
	f.o.etcd_ok = false;
	f.o.cluster = NULL;
	decide(&f, &a);
	check(&a, PGW_ACT_SHUTDOWN, "shutdown", "shutdown requested");
}

static void test_lease_deadline_etcd_down(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	f.o.etcd_ok = false;
	f.o.cluster = NULL; /* "valid only when etcd_ok": decide must not look at it */

	lease_budget(&f, 1); /* now = D - S - 1: writes still allowed */
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "etcd-unreachable", "etcd unreachable|lease deadline");

	lease_budget(&f, 0); /* now = D - S */
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "lease-deadline", "D - S|stopping writes at once|0 ms past");

	lease_budget(&f, -12345);
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "lease-deadline", "12345 ms past D - S");
}

static void test_lease_deadline_etcd_up(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* etcd still shows our key (etcd's own expiry is later than D - S) */
	fx_leader(&f);
	lease_budget(&f, 0);
	assert_true(pgw_obs_holds_leader(&f.o));
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "lease-deadline", "0 ms past D - S");

	lease_budget(&f, 1);
	decide(&f, &a);
	check(&a, PGW_ACT_LEADER_DUTIES, "leader-healthy", "primary");
}

static void test_lease_deadline_no_lease(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	pgw_lease_lost(&f.o.lease);
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "lease-deadline", "D - S|no lease");

	/* a replica without a lease is not touched by that row */
	fx_replica(&f);
	pgw_lease_lost(&f.o.lease);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "node1");
}

static void test_etcd_unreachable_never_takes_over(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* each of these would take or use the leader role with etcd up */
	for (int v = 0; v < 5; v++) {
		switch (v) {
		case 0: /* best candidate, no leader */
			fx_no_leader(&f);
			break;
		case 1: /* empty data directory, no cluster */
			fx_no_leader(&f);
			f.c.initialized = false;
			pg_empty(&f);
			break;
		case 2: /* key held, in recovery */
			fx_leader(&f);
			f.pg.in_recovery = true;
			break;
		case 3: /* key held, PostgreSQL down */
			fx_leader(&f);
			pg_stopped(&f, PGW_CS_SHUT_DOWN);
			break;
		default: /* healthy primary with a good lease: keeps running, no duties */
			fx_leader(&f);
			break;
		}
		decide(&f, &a); /* with etcd up: acquire, bootstrap, promote, start, duties */
		assert_true(primary_kind(a.kind));
		f.o.etcd_ok = false;
		decide(&f, &a);
		check(&a, PGW_ACT_NONE, "etcd-unreachable", "etcd unreachable");
		assert_false(pgw_obs_holds_leader(&f.o));
		f.o.cluster = NULL;
		decide(&f, &a);
		check(&a, PGW_ACT_NONE, "etcd-unreachable", "keeping the current role");
	}
}

static void test_primary_other_leader(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	set_leader(&f, "node3", 999);
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "primary-other-leader",
	      "another member holds the leader key|stopping writes at once|held by node3");

	/* even when the holder's member key is missing */
	remove_member(&f, "node3");
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "primary-other-leader", "node3");

	/* an unreadable leader value counts as somebody else's */
	set_leader(&f, "?", 999);
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "primary-other-leader", "held by ?");
}

/* A primary that is running but not answering (e.g. max_connections reached) still
 * counts for the safety rows when the shell last saw it as primary. */
static void test_unanswering_primary_still_demoted(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	f.pg.accepting = false;
	f.o.may_write = true;
	set_leader(&f, "node3", 999);
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "primary-other-leader", "held by node3");

	fx_leader(&f);
	f.pg.accepting = false;
	f.o.may_write = true;
	lease_budget(&f, -1);
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "lease-deadline", "1 ms past D - S");

	/* without the shell's memory it is a replica that is still starting */
	fx_leader(&f);
	f.pg.accepting = false;
	f.o.may_write = false;
	set_leader(&f, "node3", 999);
	decide(&f, &a);
	assert_int_not_equal(a.kind, PGW_ACT_DEMOTE_NOW);
}

static void test_primary_own_name_other_lease(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* the key names us but is on an earlier lease: it is not ours to write under */
	fx_leader(&f);
	f.c.leader_lease = 4242;
	assert_false(pgw_obs_holds_leader(&f.o));
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "primary-other-leader", "held by node1");
}

static void test_primary_without_key(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	no_leader(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE, "primary-without-key",
	      "running as primary without the leader key|demoting");
}

/* ---- holding the key --------------------------------------------------------- */

static void test_leader_in_recovery_promotes(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	f.pg.in_recovery = true;
	decide(&f, &a);
	check(&a, PGW_ACT_PROMOTE, "leader-in-recovery", "in recovery|promoting");
}

/* ---- standby cluster: the leader follows a remote primary ------------------------ */

/* node1 holds the key of a standby cluster and streams from the remote 10.9.9.9:5433. */
static void fx_standby_leader(struct fx *f)
{
	fx_leader(f);
	f->o.standby_cluster = true;
	f->o.standby_host = "10.9.9.9";
	f->o.standby_port = 5433;
	f->pg.in_recovery = true;
	f->pg.streaming = true;
	snprintf(f->pg.primary_host, sizeof(f->pg.primary_host), "10.9.9.9");
	f->pg.primary_port = 5433;
	snprintf(member(f, "node1")->role, sizeof(member(f, "node1")->role), "standby_leader");
}

static void test_standby_leader_stays_standby(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_standby_leader(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "standby-leader",
	      "standby leader|not promoting|10.9.9.9:5433|streaming");
	check_target(&a, "standby_cluster", "10.9.9.9", 5433);
	assert_true(a.standby_leader);

	/* starting, not answering yet: waiting, never promoting */
	f.pg.accepting = false;
	f.pg.primary_host[0] = '\0';
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "standby-leader", "not promoting");

	/* in recovery for longer than primary_start_timeout: by design, not a failed start */
	f.pg.accepting = true;
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.9.9.9");
	f.o.primary_down_since_ms = NOW - 3600000;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "standby-leader", "not promoting");

	/* restore_command only: no host to follow */
	f.o.standby_host = "";
	f.pg.primary_host[0] = '\0';
	f.pg.primary_port = 0;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "standby-leader", "restore_command only");
	check_target(&a, "standby_cluster", "", 0);
}

static void test_standby_leader_repoints_and_starts(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* a replica that took the key still follows the old standby leader */
	fx_standby_leader(&f);
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.0.0.3");
	f.pg.primary_port = 5432;
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "standby-leader-follow",
	      "switching to the remote primary|was following 10.0.0.3:5432|10.9.9.9:5433");
	check_target(&a, "standby_cluster", "10.9.9.9", 5433);
	assert_true(a.standby_leader);

	/* same host, other port: not the remote */
	fx_standby_leader(&f);
	f.pg.primary_port = 5432;
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "standby-leader-follow", "10.9.9.9:5433");

	fx_standby_leader(&f);
	pg_stopped(&f, PGW_CS_SHUT_DOWN_IN_RECOVERY);
	decide(&f, &a);
	check(&a, PGW_ACT_START_REPLICA, "standby-leader-start",
	      "starting it as a standby of the remote primary|10.9.9.9:5433");
	check_target(&a, "standby_cluster", "10.9.9.9", 5433);
	assert_true(a.standby_leader);

	/* down for longer than primary_start_timeout: released as for any leader */
	f.o.primary_down_since_ms = NOW - 300001;
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "leader-start-timeout", "primary_start_timeout");
	f.o.primary_down_since_ms = NOW - 300000;
	decide(&f, &a);
	check(&a, PGW_ACT_START_REPLICA, "standby-leader-start", "remote primary");

	/* no usable data: released as for any leader */
	f.pg.datadir = PGW_DATADIR_EMPTY;
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "leader-no-data", "releasing");
}

static void test_standby_removed_promotes(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_standby_leader(&f);
	f.o.standby_cluster = false; /* standby_cluster removed from the config key */
	decide(&f, &a);
	check(&a, PGW_ACT_PROMOTE, "leader-in-recovery",
	      "no standby_cluster in the dynamic configuration|promoting");
	assert_false(a.standby_leader);

	/* the promotion's safety rows still come first */
	lease_budget(&f, 0);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "leader-lease-stale", "not promoting");
	fx_standby_leader(&f);
	f.o.standby_cluster = false;
	f.c.paused = true;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "paused", "no automatic promotion");
	fx_standby_leader(&f);
	f.o.standby_cluster = false;
	f.o.pre_promote_vetoed = true;
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "pre-promote-vetoed-leader", "instead of promoting");
}

static void test_standby_safety_rows_first(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* without the key (another leader), the standby rows never apply */
	fx_standby_leader(&f);
	set_leader(&f, "node3", 333);
	decide(&f, &a);
	assert_true(strncmp(a.rule, "standby-leader", 14) != 0);
	assert_false(a.standby_leader);

	/* a primary holding the key is left as it is (pgwarden never demotes it into a
	 * standby leader) */
	fx_standby_leader(&f);
	f.pg.in_recovery = false;
	f.pg.primary_host[0] = '\0';
	decide(&f, &a);
	check(&a, PGW_ACT_LEADER_DUTIES, "leader-healthy", "primary");

	/* etcd unreachable: nothing */
	fx_standby_leader(&f);
	f.o.etcd_ok = false;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "etcd-unreachable", "keeping the current role");
}

static void test_standby_election_and_bootstrap(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* the standby leader is lost: the best replica takes the key, as standby leader */
	fx_no_leader(&f);
	f.o.standby_cluster = true;
	f.o.standby_host = "10.9.9.9";
	f.o.standby_port = 5433;
	decide(&f, &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "taking the leader key|as standby leader");
	assert_true(a.standby_leader);
	f.o.standby_cluster = false;
	decide(&f, &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "taking the leader key");
	assert_false(a.standby_leader);

	/* a failover request naming this node: the same */
	f.o.standby_cluster = true;
	f.c.failover.present = true;
	snprintf(f.c.failover.member, sizeof(f.c.failover.member), "node2");
	f.c.failover.mod_revision = 10;
	decide(&f, &a);
	check(&a, PGW_ACT_ACQUIRE, "failover-to-this-node", "as standby leader");
	assert_true(a.standby_leader);

	/* a new standby cluster: cloned from the remote primary, not initdb */
	fx_no_leader(&f);
	f.c.initialized = false;
	f.c.sysid[0] = '\0';
	f.c.nmembers = 0;
	pg_empty(&f);
	f.o.standby_cluster = true;
	f.o.standby_host = "10.9.9.9";
	f.o.standby_port = 5433;
	decide(&f, &a);
	check(&a, PGW_ACT_BOOTSTRAP, "bootstrap-standby",
	      "cloning the remote primary|standby cluster|10.9.9.9:5433");
	check_target(&a, "standby_cluster", "10.9.9.9", 5433);
	assert_true(a.standby_leader);
	f.o.standby_cluster = false;
	decide(&f, &a);
	check(&a, PGW_ACT_BOOTSTRAP, "bootstrap", "bootstrapping a new cluster");
	assert_false(a.standby_leader);
}

static void test_leader_lease_stale(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* etcd still shows our key, but our own deadline says writes must not start */
	fx_leader(&f);
	f.pg.in_recovery = true;
	lease_budget(&f, 0);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "leader-lease-stale", "past D - S|not promoting");

	pg_stopped(&f, PGW_CS_SHUT_DOWN);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "leader-lease-stale", "not promoting or starting");

	lease_budget(&f, 1);
	decide(&f, &a);
	check(&a, PGW_ACT_START_PRIMARY, "leader-postgres-down", "starting it in place");
}

static void test_leader_postgres_down_and_timeout(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	pg_stopped(&f, PGW_CS_IN_PRODUCTION);
	decide(&f, &a);
	check(&a, PGW_ACT_START_PRIMARY, "leader-postgres-down",
	      "holding the leader key and PostgreSQL is not running|starting it in place");

	f.o.primary_down_since_ms = NOW - 300000; /* exactly the timeout: still trying */
	decide(&f, &a);
	check(&a, PGW_ACT_START_PRIMARY, "leader-postgres-down", "starting");

	f.o.primary_down_since_ms = NOW - 300001;
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "leader-start-timeout",
	      "primary_start_timeout|releasing the leader key|down for 300001 ms|300 s");

	/* up but not accepting after the timeout: also released */
	f.pg.running = true;
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "leader-start-timeout", "300001 ms");
}

static void test_leader_starting(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	f.pg.accepting = false;
	f.pg.in_recovery = false;
	f.o.primary_down_since_ms = NOW - 1000;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "leader-starting", "waiting for PostgreSQL to accept connections");
}

static void test_leader_no_data(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	pg_empty(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "leader-no-data", "without a usable data directory|releasing");

	f.pg.datadir = PGW_DATADIR_INVALID;
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "leader-no-data", "usable data directory");
}

/* ---- the key names this node but is not on its lease -------------------------- */

static void test_stale_own_key_never_acquires(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* node2, the best candidate, finds "node2" in the key on an older lease */
	fx_no_leader(&f);
	set_leader(&f, "node2", 555);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "stale-own-key",
	      "names this node but belongs to an earlier lease|waiting|key lease 555|this node's "
	      "lease 222");

	/* no lease at all */
	pgw_lease_lost(&f.o.lease);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "stale-own-key", "this node's lease 0");

	/* in recovery or stopped, never promote/start under a key that is not ours */
	fx_replica(&f);
	set_leader(&f, "node2", 555);
	for (int v = 0; v < 3; v++) {
		if (v == 1)
			pg_stopped(&f, PGW_CS_SHUT_DOWN);
		if (v == 2)
			pg_empty(&f);
		decide(&f, &a);
		check(&a, PGW_ACT_NONE, "stale-own-key", "earlier lease");
	}
}

/* Issue 14: a restarted daemon (the old one killed) finds its own key on the old lease,
 * with its record, and PostgreSQL stopped: it releases the key at once (the record says
 * released, so nobody fences) instead of making the cluster wait out that lease. */
static void test_restarted_daemon_releases_its_stale_key(void **state)
{
	struct fx f;
	struct pgw_action a;
	struct pgw_leader_record *lr = &f.c.last_leader;

	(void)state;
	fx_no_leader(&f);
	set_leader(&f, "node2", 555);
	pg_stopped(&f, PGW_CS_IN_PRODUCTION); /* the leftover primary, stopped by main.c */
	lr->present = true;
	snprintf(lr->member, sizeof(lr->member), "node2");
	lr->lease = 555;
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "release-stale-own-key",
	      "earlier lease and PostgreSQL is stopped|key lease 555|this node's lease 222");

	/* PostgreSQL still running (a writer, or a state not known): wait */
	f.pg.running = true;
	decide(&f, &a);
	assert_string_not_equal(a.rule, "release-stale-own-key");
	f.pg.running = false;
	/* the record is about another lease, released already, or fenced: not ours to act on */
	lr->lease = 554;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "stale-own-key", "earlier lease");
	lr->lease = 555;
	lr->released = true;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "stale-own-key", "earlier lease");
	lr->released = false;
	snprintf(lr->fenced_by, sizeof(lr->fenced_by), "node1");
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "stale-own-key", "earlier lease");
	lr->fenced_by[0] = '\0';
	/* not while paused, not without etcd */
	f.c.paused = true;
	decide(&f, &a);
	assert_string_not_equal(a.rule, "release-stale-own-key");
	f.c.paused = false;
	f.o.etcd_ok = false;
	decide(&f, &a);
	assert_string_not_equal(a.rule, "release-stale-own-key");
}

/* ---- following another leader ------------------------------------------------ */

static void test_leader_member_missing(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	remove_member(&f, "node1");
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "leader-member-missing", "member key is missing|leader node1");

	set_leader(&f, "?", 9);
	pg_empty(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "leader-member-missing", "leader ?");
}

static void test_clone_empty_datadir(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	pg_empty(&f);
	member(&f, "node1")->conn_port = 6543;
	decide(&f, &a);
	check(&a, PGW_ACT_CLONE, "clone",
	      "empty data directory|cloning|from node1 at 10.0.0.1:6543");
	check_target(&a, "node1", "10.0.0.1", 6543);

	snprintf(member(&f, "node1")->conn_host, sizeof(f.c.members[0].conn_host), "fd00::1");
	decide(&f, &a);
	check(&a, PGW_ACT_CLONE, "clone", "fd00::1");
	check_target(&a, "node1", "fd00::1", 6543);
}

static void test_invalid_datadir(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	pg_stopped(&f, PGW_CS_UNKNOWN);
	f.pg.datadir = PGW_DATADIR_INVALID;
	f.o.cd_valid = false;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "invalid-datadir", "not a usable PostgreSQL cluster");

	fx_no_leader(&f);
	pg_stopped(&f, PGW_CS_UNKNOWN);
	f.pg.datadir = PGW_DATADIR_INVALID;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "invalid-datadir", "not touching it");
}

static void test_foreign_sysid(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	f.pg.system_identifier = 6999999999999999999ULL;
	f.pg.primary_host[0] = '\0'; /* would be a follow otherwise */
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "foreign-datadir",
	      "belongs to another cluster|6999999999999999999|" SYSID_STR);

	/* stopped: the identifier comes from pg_controldata */
	pg_stopped(&f, PGW_CS_SHUT_DOWN);
	f.o.cd.system_identifier = 42;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "foreign-datadir", "local system identifier 42");

	/* an old primary of another cluster is not rewound either; nor is a lone node */
	fx_no_leader(&f);
	f.pg.system_identifier = 42;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "foreign-datadir", "42");

	/* the same identifier: no row about it */
	fx_replica(&f);
	pg_stopped(&f, PGW_CS_SHUT_DOWN_IN_RECOVERY);
	decide(&f, &a);
	check(&a, PGW_ACT_START_REPLICA, "start-replica", "node1");
}

static void test_follow_new_leader(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.0.0.3");
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "follow-new-leader",
	      "switching to the leader|was following 10.0.0.3:5432|leader is node1 at "
	      "10.0.0.1:5432");
	check_target(&a, "node1", "10.0.0.1", 5432);

	/* same host, other port */
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.0.0.1");
	f.pg.primary_port = 5433;
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "follow-new-leader", "was following 10.0.0.1:5433");

	/* a standalone replica (no primary_conninfo) */
	f.pg.primary_host[0] = '\0';
	f.pg.primary_port = 0;
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "follow-new-leader", "was following nobody");
}

static void test_old_primary_rewinds(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	for (int v = 0; v < 2; v++) {
		fx_replica(&f);
		pg_stopped(&f, v ? PGW_CS_IN_PRODUCTION : PGW_CS_SHUT_DOWN);
		member(&f, "node1")->timeline = 3;
		decide(&f, &a);
		check(
		    &a, PGW_ACT_REWIND, "rewind",
		    "old primary rejoining|rewinding|local timeline 2, leader node1 on timeline 3");
		check_target(&a, "node1", "10.0.0.1", 5432);
	}
}

static void test_old_primary_waits_for_timeline(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	pg_stopped(&f, PGW_CS_SHUT_DOWN);
	member(&f, "node1")->timeline = 0;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "leader-timeline-unknown",
	      "publish its timeline before rewinding|leader node1");

	/* a leader still on this node's timeline (promotion not published yet): pg_rewind
	 * would answer "no rewind required" although this node diverged */
	for (int tl = 1; tl <= 2; tl++) {
		member(&f, "node1")->timeline = tl;
		decide(&f, &a);
		check(&a, PGW_ACT_NONE, "leader-timeline-unknown", "this node on timeline 2");
	}
	member(&f, "node1")->timeline = 3;
	decide(&f, &a);
	check(&a, PGW_ACT_REWIND, "rewind", "local timeline 2, leader node1 on timeline 3");
}

/* A replica holding WAL past the point where its timeline ended in the history key. */
static void test_diverged_replica(void **state)
{
	struct fx f;
	struct pgw_action a;
	uint64_t fork = 0;

	(void)state;
	fx_replica(&f);
	member(&f, "node1")->timeline = 3;
	f.c.forks[0] = (struct pgw_fork){1, 3000};
	f.c.forks[1] = (struct pgw_fork){2, 5500};
	f.c.nforks = 2;
	f.pg.streaming = false;
	f.pg.received_lsn = 6000;
	f.pg.replayed_lsn = 5900;
	assert_true(pgw_diverged(&f.o, &fork));
	assert_int_equal(fork, 5500);
	f.pg.received_lsn = f.pg.replayed_lsn = 5500; /* exactly at the fork: it can follow */
	assert_false(pgw_diverged(&f.o, &fork));
	f.pg.replayed_lsn = 5501;
	assert_true(pgw_diverged(&f.o, &fork));
	/* the leader on this node's timeline: nothing forked yet */
	member(&f, "node1")->timeline = 2;
	assert_false(pgw_diverged(&f.o, &fork));
	/* the leader's timeline not published: the history alone tells */
	member(&f, "node1")->timeline = 0;
	assert_true(pgw_diverged(&f.o, &fork));
	member(&f, "node1")->timeline = 3;
	/* the history does not say where timeline 2 ended: unknown, not diverged */
	f.c.nforks = 1;
	assert_false(pgw_diverged(&f.o, &fork));
	f.c.nforks = 2;
	/* stopped: the control file's timeline and checkpoint */
	pg_stopped(&f, PGW_CS_SHUT_DOWN_IN_RECOVERY);
	f.o.cd.checkpoint_lsn = 5600;
	assert_true(pgw_diverged(&f.o, &fork));
	f.o.cd.checkpoint_lsn = 5400;
	assert_false(pgw_diverged(&f.o, &fork));
	/* this node is the leader: never */
	fx_replica(&f);
	f.c.forks[0] = (struct pgw_fork){2, 100};
	f.c.nforks = 1;
	member(&f, "node1")->timeline = 3;
	f.o.self = "node1";
	assert_false(pgw_diverged(&f.o, &fork));

	/* one row per promotion: the leader's line is walked.  TL2 left TL1 at 100, TL3 left
	 * TL2 at 200, TL4 left TL2 at 300; the leader is on TL4 */
	fx_replica(&f);
	f.c.forks[0] = (struct pgw_fork){1, 100};
	f.c.forks[1] = (struct pgw_fork){2, 200};
	f.c.forks[2] = (struct pgw_fork){2, 300};
	f.c.nforks = 3;
	f.c.history_rows = 3;
	member(&f, "node1")->timeline = 4;
	f.pg.timeline = 3; /* TL3 is not on TL4's line: whatever its position */
	f.pg.received_lsn = f.pg.replayed_lsn = 201;
	assert_true(pgw_diverged(&f.o, &fork));
	f.pg.timeline = 2; /* TL4 left TL2 at 300, not where TL3 did */
	f.pg.received_lsn = f.pg.replayed_lsn = 250;
	assert_false(pgw_diverged(&f.o, &fork));
	f.pg.replayed_lsn = 301;
	assert_true(pgw_diverged(&f.o, &fork));
	assert_int_equal(fork, 300);
	f.pg.timeline = 1; /* two steps up: TL2 left TL1 at 100 */
	f.pg.received_lsn = f.pg.replayed_lsn = 100;
	assert_false(pgw_diverged(&f.o, &fork));
	f.pg.replayed_lsn = 150;
	assert_true(pgw_diverged(&f.o, &fork));
	assert_int_equal(fork, 100);
	/* rows that do not map (a Patroni key holds only the leader's ancestry): the latest
	 * row forking off the node's timeline */
	f.c.history_rows = 2;
	f.pg.timeline = 3;
	f.pg.received_lsn = f.pg.replayed_lsn = 201;
	assert_false(pgw_diverged(&f.o, &fork)); /* nothing forked off TL3: unknown */

	/* the decision: confirmed divergence (step.c) rewinds a running replica */
	fx_replica(&f);
	member(&f, "node1")->timeline = 3;
	f.pg.streaming = false;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "not streaming");
	f.o.diverged = true;
	decide(&f, &a);
	check(&a, PGW_ACT_REWIND, "rewind", "forked off the leader's history");
	check_target(&a, "node1", "10.0.0.1", 5432);
	f.o.rewind_failed = true;
	decide(&f, &a);
	check(&a, PGW_ACT_CLONE, "reclone", "pg_rewind failed");
	/* an old primary started as a replica while it had no leader: rewound at once */
	fx_replica(&f);
	member(&f, "node1")->timeline = 3;
	f.o.ran_as_primary = true;
	decide(&f, &a);
	check(&a, PGW_ACT_REWIND, "rewind", "started as a replica while it had no leader");
	member(&f, "node1")->timeline = 2; /* not before the leader's timeline is newer */
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "leader-timeline-unknown", "this node on timeline 2");
}

static void test_old_primary_reclones(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	pg_stopped(&f, PGW_CS_SHUT_DOWN);
	f.o.rewind_failed = true;
	decide(&f, &a);
	check(&a, PGW_ACT_CLONE, "reclone", "cannot be rewound|re-cloning|pg_rewind failed");
	check_target(&a, "node1", "10.0.0.1", 5432);

	f.o.rewind_failed = false;
	f.o.use_pg_rewind = false;
	decide(&f, &a);
	check(&a, PGW_ACT_CLONE, "reclone", "use_pg_rewind is off");
	check_target(&a, "node1", "10.0.0.1", 5432);
}

/* remove_data_directory_on_rewind_failure / _on_diverged_timelines: false keeps the data. */
static void test_old_primary_keeps_data(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	pg_stopped(&f, PGW_CS_SHUT_DOWN);
	f.o.rewind_failed = true;
	f.o.keep_data_on_rewind_failure = true;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "keep-unrewound-data",
	      "remove_data_directory_on_rewind_failure is false");
	f.o.keep_data_without_rewind = true; /* only when pg_rewind is off */
	f.o.keep_data_on_rewind_failure = false;
	decide(&f, &a);
	check(&a, PGW_ACT_CLONE, "reclone", "pg_rewind failed");
	f.o.rewind_failed = false;
	f.o.use_pg_rewind = false;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "keep-unrewound-data",
	      "remove_data_directory_on_diverged_timelines is false");
	/* a rewind that can still run is not held back */
	f.o.use_pg_rewind = true;
	member(&f, "node1")->timeline = 3;
	decide(&f, &a);
	check(&a, PGW_ACT_REWIND, "rewind", "leader node1");
}

static void test_start_replica(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	pg_stopped(&f, PGW_CS_SHUT_DOWN_IN_RECOVERY);
	decide(&f, &a);
	check(&a, PGW_ACT_START_REPLICA, "start-replica",
	      "starting it as a replica of the leader|leader node1");
	check_target(&a, "node1", "10.0.0.1", 5432);

	/* no control data (unreadable) but a valid directory: start as replica too */
	f.o.cd_valid = false;
	decide(&f, &a);
	check(&a, PGW_ACT_START_REPLICA, "start-replica", "node1");
}

/* ---- cascading replication (tags.replicatefrom) --------------------------------- */

/* node3 names node2 in tags.replicatefrom; node2's key lives on a lease and streams. */
static void fx_cascade(struct fx *f)
{
	fx_replica(f);
	f->o.self = "node3";
	f->o.replicatefrom = "node2";
	member(f, "node2")->lease = 5;
	member(f, "node3")->lease = 6;
	snprintf(member(f, "node3")->replicatefrom, PGW_NAME_MAX, "node2");
}

static void test_replicatefrom_cascades(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_cascade(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "follow-upstream",
	      "tags.replicatefrom|was following 10.0.0.1:5432|node2 at 10.0.0.2:5432");
	check_target(&a, "node2", "10.0.0.2", 5432);

	/* repointed: it stays there */
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.0.0.2");
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following-upstream", "cascading|node2, leader node1|streaming");
	check_target(&a, "node2", "10.0.0.2", 5432);

	/* still starting: no repoint yet */
	f.pg.accepting = false;
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.0.0.1");
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following-upstream", "node2");

	/* stopped: started from node2 */
	pg_stopped(&f, PGW_CS_SHUT_DOWN_IN_RECOVERY);
	decide(&f, &a);
	check(&a, PGW_ACT_START_REPLICA, "start-replica", "from node2 (tags.replicatefrom)");
	check_target(&a, "node2", "10.0.0.2", 5432);

	/* naming the leader, or nothing: the leader, with no fallback said */
	fx_cascade(&f);
	f.o.replicatefrom = "node1";
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "node1");
	assert_null(strstr(a.reason, "replicatefrom"));
	f.o.replicatefrom = NULL;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "node1");
}

/* The named member cannot serve: the leader, and the reason says why. */
static void test_replicatefrom_falls_back(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_cascade(&f);
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.0.0.2");
	member(&f, "node2")->streaming = false;
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "follow-new-leader",
	      "was following 10.0.0.2:5432|leader is node1|node2 does not stream|following the "
	      "leader");
	check_target(&a, "node1", "10.0.0.1", 5432);

	fx_cascade(&f);
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.0.0.2");
	snprintf(member(&f, "node2")->state, sizeof(member(&f, "node2")->state), "stopped");
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "follow-new-leader",
	      "not a running replica (role replica, "
	      "state stopped)");

	/* gone (its key expired with its lease), or a key without a lease (hand-written) */
	fx_cascade(&f);
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.0.0.2");
	remove_member(&f, "node2");
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "follow-new-leader", "node2 is not a live member");
	fx_cascade(&f);
	member(&f, "node2")->lease = 0;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "node1|node2 is not a live member");

	/* still on the old timeline: it has not followed the new leader yet */
	fx_cascade(&f);
	member(&f, "node1")->timeline = 3;
	member(&f, "node2")->timeline = 2;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "node2 is on timeline 2, the leader on 3");

	/* the leader itself, promoted: not a replica */
	fx_cascade(&f);
	snprintf(member(&f, "node2")->role, sizeof(member(&f, "node2")->role), "master");
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "not a running replica (role master");

	/* its own name */
	fx_cascade(&f);
	f.o.replicatefrom = "node3";
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "names this node itself");
}

/* a -> b -> a: both fall back to the leader, neither is left without a source. */
static void test_replicatefrom_loop(void **state)
{
	struct fx f;
	struct pgw_action a;
	char why[200];

	(void)state;
	fx_cascade(&f);
	snprintf(member(&f, "node2")->replicatefrom, PGW_NAME_MAX, "node3");
	snprintf(f.pg.primary_host, sizeof(f.pg.primary_host), "10.0.0.2");
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "follow-new-leader", "a loop, node2 replicates from this node");
	check_target(&a, "node1", "10.0.0.1", 5432);
	/* and from node2's side, with node3's tag */
	assert_ptr_equal(pgw_upstream(&f.c, "node2", "node3", why, sizeof(why)),
	                 member(&f, "node1"));
	assert_non_null(strstr(why, "a loop, node3 replicates from this node"));

	/* a longer one: node3 -> node2 -> node4 -> node3 */
	fx_cascade(&f);
	add_member(&f.c, "node4", "10.0.0.4", 5432, "replica", 5000)->lease = 7;
	snprintf(member(&f, "node2")->replicatefrom, PGW_NAME_MAX, "node4");
	snprintf(member(&f, "node4")->replicatefrom, PGW_NAME_MAX, "node3");
	assert_ptr_equal(pgw_upstream(&f.c, "node3", "node2", why, sizeof(why)),
	                 member(&f, "node1"));
	assert_non_null(strstr(why, "node4 replicates from this node"));

	/* a loop elsewhere (node2 <-> node4) is theirs to break: node3 keeps node2, and the
	 * walk ends */
	snprintf(member(&f, "node4")->replicatefrom, PGW_NAME_MAX, "node2");
	assert_ptr_equal(pgw_upstream(&f.c, "node3", "node2", why, sizeof(why)),
	                 member(&f, "node2"));
	assert_string_equal(why, "");
	/* a chain that ends at the leader, or at a name nobody has */
	snprintf(member(&f, "node4")->replicatefrom, PGW_NAME_MAX, "node1");
	assert_ptr_equal(pgw_upstream(&f.c, "node3", "node2", why, sizeof(why)),
	                 member(&f, "node2"));
	snprintf(member(&f, "node4")->replicatefrom, PGW_NAME_MAX, "ghost");
	assert_ptr_equal(pgw_upstream(&f.c, "node3", "node2", why, sizeof(why)),
	                 member(&f, "node2"));
}

/* tags.nostream: no primary_conninfo, WAL from restore_command; still a candidate. */
static void test_nostream(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_replica(&f);
	f.o.nostream = true;
	f.o.replicatefrom = "node3"; /* nostream wins: it streams from nobody */
	member(&f, "node3")->lease = 6;
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "stop-streaming",
	      "removing primary_conninfo|was following "
	      "10.0.0.1:5432");
	assert_string_equal(a.target, "");
	assert_string_equal(a.target_host, "");

	f.pg.primary_host[0] = '\0';
	f.pg.primary_port = 0;
	f.pg.streaming = false;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following-archive", "restore_command|leader node1");
	assert_string_equal(a.target, "");

	/* stopped: started without a source */
	pg_stopped(&f, PGW_CS_SHUT_DOWN_IN_RECOVERY);
	decide(&f, &a);
	check(&a, PGW_ACT_START_REPLICA, "start-replica",
	      "tags.nostream: without primary_conninfo");
	assert_string_equal(a.target, "");
	assert_string_equal(a.target_host, "");

	/* an empty data directory is still cloned from the leader */
	pg_empty(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_CLONE, "clone", "node1");

	/* a nostream member serves as an upstream: it has the WAL it replayed */
	fx_cascade(&f);
	member(&f, "node2")->streaming = false;
	member(&f, "node2")->nostream = true;
	decide(&f, &a);
	check(&a, PGW_ACT_FOLLOW, "follow-upstream", "node2");

	/* and it stands for election like any replica (Patroni: nostream is about WAL
	 * transport and slots only) */
	fx_no_leader(&f);
	f.o.nostream = true;
	member(&f, "node2")->streaming = false;
	member(&f, "node2")->nostream = true;
	decide(&f, &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "position 5000");
}

/* ---- nobody holds the key ------------------------------------------------------ */

static void test_no_fresh_lease(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	pgw_lease_lost(&f.o.lease);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "no-fresh-lease",
	      "holds no fresh lease|cannot take the leader key");

	fx_no_leader(&f);
	lease_budget(&f, 0);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "no-fresh-lease", "no fresh lease");
	lease_budget(&f, 1);
	decide(&f, &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "taking the leader key");

	/* nor bootstrap */
	fx_no_leader(&f);
	f.c.initialized = false;
	pg_empty(&f);
	pgw_lease_lost(&f.o.lease);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "no-fresh-lease", "no fresh lease");
}

static void test_bootstrap(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	f.c.initialized = false;
	f.c.sysid[0] = '\0';
	f.c.nmembers = 0;
	pg_empty(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_BOOTSTRAP, "bootstrap",
	      "no cluster in etcd and an empty data directory|bootstrapping");
}

/* Rule 4: watchdog mode required and no usable watchdog: never lead, may replicate. */
static void test_watchdog_unusable(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	f.c.initialized = false;
	f.c.sysid[0] = '\0';
	f.c.nmembers = 0;
	pg_empty(&f);
	f.o.watchdog_unusable = true;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "watchdog-no-bootstrap",
	      "watchdog mode required|not bootstrapping");

	/* the best candidate of a leaderless cluster does not stand for election ... */
	fx_no_leader(&f);
	decide_as(&f, "node2", &a);
	assert_int_equal(a.kind, PGW_ACT_ACQUIRE);
	f.o.watchdog_unusable = true;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "watchdog-no-election", "cannot be armed|not standing");

	/* the others see its member key say so, and elect the next one (not: nobody) */
	member(&f, "node2")->watchdog_blocked = true;
	f.o.watchdog_unusable = false;
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	member(&f, "node2")->watchdog_blocked = false;
	f.o.watchdog_unusable = true;

	/* ... not even when a failover names it */
	snprintf(f.c.failover.member, sizeof(f.c.failover.member), "node2");
	f.c.failover.present = true;
	decide_as(&f, "node2", &a);
	assert_int_not_equal(a.kind, PGW_ACT_ACQUIRE);

	/* a leader whose watchdog cannot be armed gives the key up */
	fx_leader(&f);
	f.o.watchdog_unusable = true;
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "leader-watchdog-failed",
	      "cannot be armed|releasing the leader key");
	/* (not in maintenance mode: no automatic demotion then) */
	f.c.paused = true;
	decide(&f, &a);
	assert_int_equal(a.kind, PGW_ACT_LEADER_DUTIES);

	/* a replica keeps following */
	fx_replica(&f);
	f.o.watchdog_unusable = true;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "following");
}

/* S3: with fencing required, a leader lost unplanned is fenced before anyone promotes. */
static void test_fence_before_promote(void **state)
{
	struct fx f;
	struct pgw_action a;
	struct pgw_leader_record *lr;

	(void)state;
	fx_no_leader(&f);
	f.o.fencing_required = true;
	lr = last_leader(&f, "node1");
	lr->lease = 0x1234;
	snprintf(lr->bmc_address, sizeof(lr->bmc_address), "127.0.0.1:9001");

	/* the best candidate fences first; the others wait as usual */
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_FENCE, "fence-before-promote", "powering it off|node1|127.0.0.1:9001");
	assert_string_equal(a.target, "node1");
	assert_false(pgw_fence_needed(&f.o) == false);
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node2");

	/* while another member holds the fence lock, no one else fences */
	f.c.fence_locked = true;
	snprintf(f.c.fence_lock_holder, sizeof(f.c.fence_lock_holder), "node3");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "fence-by-other", "node3 fences node1");
	/* Regression (simulator seed 35563): a holder that will not fence (not the best
	 * candidate) used to keep its lock while the others waited on it: it releases it */
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_RELEASE_FENCE_LOCK, "fence-lock-stale", "node1");
	f.c.has_leader = true; /* also with a leader (it would block fast takeover) */
	snprintf(f.c.leader, sizeof(f.c.leader), "node1");
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_RELEASE_FENCE_LOCK, "fence-lock-stale", "node1");
	f.c.has_leader = false;
	/* ... except the holder itself (a fence that did not finish) */
	snprintf(f.c.fence_lock_holder, sizeof(f.c.fence_lock_holder), "node2");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_FENCE, "fence-before-promote", "node1");
	f.c.fence_locked = false;

	/* fenced (confirmed), or released cleanly: promote */
	snprintf(lr->fenced_by, sizeof(lr->fenced_by), "node2");
	lr->fenced_at = f.o.wall_now - 1;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	/* Regression (simulator seed 49): node3 fenced, but node2 ranks better now.  node2
	 * used to wait for node3 while node3 answered not-best: no primary for the whole
	 * grace.  Now node2 does not wait for a fencer ranked below it, and node3 defers. */
	snprintf(lr->fenced_by, sizeof(lr->fenced_by), "node3");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node2");
	/* a fencer that ranks better is waited for ... */
	snprintf(lr->fenced_by, sizeof(lr->fenced_by), "node2");
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_NONE, "fencer-takes-over", "node2 fenced node1");
	/* ... for a while; not for a fenced_at in the future (skew or forgery) ... */
	lr->fenced_at = f.o.wall_now + 3600;
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node2");
	lr->fenced_at = f.o.wall_now - PGW_FENCER_GRACE_S - 1;
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node2");
	snprintf(lr->fenced_by, sizeof(lr->fenced_by), "node3");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	/* ... or not at all when its member key is gone */
	lr->fenced_at = f.o.wall_now - 1;
	snprintf(lr->fenced_by, sizeof(lr->fenced_by), "node9");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	snprintf(lr->fenced_by, sizeof(lr->fenced_by), "node2");
	lr->fenced_by[0] = '\0';
	lr->released = true;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	lr->released = false;

	/* a named failover candidate fences too */
	f.c.failover.present = true;
	snprintf(f.c.failover.member, sizeof(f.c.failover.member), "node3");
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_FENCE, "fence-before-promote", "node1");
	f.c.failover.present = false;

	/* S3 without fencing: a lost leader that nothing bounds keeps its key's role */
	f.o.fencing_required = false;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "unprotected-leader-lost", "node1|pgwardenctl failover");
	f.o.lost_leader_watchdog = true; /* it kept an armed watchdog: it was reset */
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	f.o.lost_leader_watchdog = false;
	f.o.unprotected_failover = true; /* the opt-in */
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	f.o.unprotected_failover = false;
	/* pgwardenctl failover (no leader named) is the operator's word; a switchover is not
	 * (simulator seed 2472: a switchover to a lost leader promoted a second writer) */
	f.c.failover.present = true;
	snprintf(f.c.failover.member, sizeof(f.c.failover.member), "node2");
	f.c.failover.mod_revision = 50;
	f.o.positions_after_rev = 60; /* given before the loss (seed 11623): not the word */
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "unprotected-leader-lost", "node1");
	f.o.positions_after_rev = 40;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "failover-to-this-node", "any");
	snprintf(f.c.failover.leader, sizeof(f.c.failover.leader), "node1");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "unprotected-leader-lost", "node1");
	memset(&f.c.failover, 0, sizeof(f.c.failover));
	f.o.positions_after_rev = 0;
	f.o.fencing_required = true;

	/* an unreadable record: in doubt, no promotion */
	lr->malformed = true;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "fence-record-unreadable", "not promoting");
	lr->malformed = false;

	/* the record names this node (it restarted after losing its key): nothing to fence */
	snprintf(lr->member, sizeof(lr->member), "node2");
	assert_false(pgw_fence_needed(&f.o) && strcmp(f.o.self, "node2") == 0);
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	snprintf(lr->member, sizeof(lr->member), "node1");

	/* fencing off: the lease expiry alone is no longer enough (S3) ... */
	f.o.fencing_required = false;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "unprotected-leader-lost", "node1");
	/* ... but the old leader back as a running replica no longer writes */
	{
		struct pgw_member *m1 = &f.c.members[f.c.nmembers++];

		memset(m1, 0, sizeof(*m1));
		snprintf(m1->name, sizeof(m1->name), "node1");
		snprintf(m1->role, sizeof(m1->role), "replica");
		snprintf(m1->state, sizeof(m1->state), "running");
		m1->xlog_location = 0;
		decide_as(&f, "node2", &a);
		check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	}
}

/* Rule 8: a silent leader is fenced by the best candidate before its lease expires. */
static void test_fast_takeover(void **state)
{
	struct fx f;
	struct pgw_action a;
	struct pgw_leader_record *lr;

	(void)state;
	fx_replica(&f);
	f.o.fencing_required = true;
	f.o.fast_takeover_after_ms = 4000;
	lr = &f.c.last_leader;
	lr->present = true;
	snprintf(lr->member, sizeof(lr->member), "%s", f.c.leader);
	lr->lease = f.c.leader_lease;
	f.o.leader_unreachable_ms = 3999;
	f.o.leader_unrenewed_ms = 4000;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "following");
	f.o.leader_unreachable_ms = 4000;
	/* silent to the replicas but still renewing its lease in etcd: alive, never fenced */
	f.o.leader_unrenewed_ms = 0;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "following");
	/* nor when it renewed within the threshold (a pause shorter than it) */
	f.o.leader_unrenewed_ms = 3999;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "following", "following");
	f.o.leader_unrenewed_ms = 4000;
	decide(&f, &a);
	check(&a, PGW_ACT_FENCE, "fast-takeover",
	      "silent for 4000 ms and its lease unrenewed for 4000 ms");
	assert_string_equal(a.target, f.c.leader);

	/* not when the record is about another lease (in doubt: wait for the TTL) */
	lr->lease++;
	decide(&f, &a);
	assert_int_not_equal(a.kind, PGW_ACT_FENCE);
	lr->lease--;
	/* not while paused, not when off, not when another member fences */
	f.c.paused = true;
	decide(&f, &a);
	assert_int_not_equal(a.kind, PGW_ACT_FENCE);
	f.c.paused = false;
	f.o.fast_takeover_after_ms = 0;
	decide(&f, &a);
	assert_int_not_equal(a.kind, PGW_ACT_FENCE);
	f.o.fast_takeover_after_ms = 4000;
	f.c.fence_locked = true;
	snprintf(f.c.fence_lock_holder, sizeof(f.c.fence_lock_holder), "node3");
	decide(&f, &a);
	assert_int_not_equal(a.kind, PGW_ACT_FENCE);
	f.c.fence_locked = false;
	/* and not by a member that is not the best candidate */
	f.o.nofailover = true;
	f.sync_self = false;
	decide(&f, &a);
	assert_int_not_equal(a.kind, PGW_ACT_FENCE);
}

static void test_uninitialized_with_data(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	f.c.initialized = false;
	f.c.sysid[0] = '\0';
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "uninitialized-with-data", "refusing to bootstrap over it");

	pg_stopped(&f, PGW_CS_SHUT_DOWN);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "uninitialized-with-data", "holds data");
}

static void test_bootstrap_in_progress(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* initialize key with an empty value: someone runs initdb right now */
	fx_no_leader(&f);
	f.c.sysid[0] = '\0';
	pg_empty(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "bootstrap-in-progress", "another member is bootstrapping");

	fx_no_leader(&f);
	f.c.sysid[0] = '\0';
	decide(&f, &a); /* even a perfect candidate waits */
	check(&a, PGW_ACT_NONE, "bootstrap-in-progress", "bootstrapping the cluster");
}

static void test_no_leader_empty(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	pg_empty(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "no-leader-empty", "nothing to clone from yet");
}

/* A replica method that needs no leader (no_leader: a backup) clones without one. */
static void test_no_leader_clone_from_backup(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	pg_empty(&f);
	f.o.clone_without_leader = true;
	decide(&f, &a);
	check(&a, PGW_ACT_CLONE, "clone-no-leader", "needs no leader");
	assert_string_equal(a.target_host, "");
	f.c.sysid[0] = '\0'; /* not while another member bootstraps */
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "bootstrap-in-progress", "bootstrapping");
}

static void test_no_leader_start(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	pg_stopped(&f, PGW_CS_SHUT_DOWN_IN_RECOVERY);
	decide(&f, &a);
	check(&a, PGW_ACT_START_REPLICA, "no-leader-start",
	      "starting PostgreSQL as a replica to stand for election");
	assert_string_equal(a.target, "");
	assert_int_equal(a.target_port, 0);

	/* also an old primary: it is started as a replica, not as a primary */
	pg_stopped(&f, PGW_CS_SHUT_DOWN);
	decide(&f, &a);
	check(&a, PGW_ACT_START_REPLICA, "no-leader-start", "as a replica");
}

static void test_no_leader_starting(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	f.pg.accepting = false;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "no-leader-starting", "waiting for PostgreSQL");
}

/* ---- pre_promote's veto (postgresql.pre_promote exited non-zero) ---------- */

static void request_switchover(struct fx *f, const char *leader, const char *member, double at);

static void test_pre_promote_veto(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* the best candidate does not take the key while vetoed */
	fx_no_leader(&f);
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	f.o.pre_promote_vetoed = true;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "pre-promote-vetoed", "pre_promote vetoed|not standing");
	/* a switchover or failover naming it cannot be carried out: removed */
	request_switchover(&f, "node1", "node2", 0);
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "pre-promote-vetoed-request", "removing|node1");
	request_switchover(&f, "", "node2", 0);
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "pre-promote-vetoed-request", "any");
	/* one naming another member is not this node's to remove */
	request_switchover(&f, "node1", "node3", 0);
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "pre-promote-vetoed", "not standing");
	memset(&f.c.failover, 0, sizeof(f.c.failover));
	/* nor does it fence the lost leader to take over (it would not take over) */
	f.o.fencing_required = true;
	last_leader(&f, "node1");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "pre-promote-vetoed", "not standing");
	f.o.pre_promote_vetoed = false;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_FENCE, "fence-before-promote", "node1");

	/* the key is still held (its release failed): never promote on it, release it */
	fx_leader(&f);
	f.pg.in_recovery = true;
	decide(&f, &a);
	check(&a, PGW_ACT_PROMOTE, "leader-in-recovery", "promoting");
	f.o.pre_promote_vetoed = true;
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "pre-promote-vetoed-leader", "vetoed|releasing");
	pg_stopped(&f, PGW_CS_SHUT_DOWN_IN_RECOVERY); /* nor start it as primary */
	decide(&f, &a);
	check(&a, PGW_ACT_RELEASE, "pre-promote-vetoed-leader", "instead of promoting");
	/* a primary already writing is not demoted by a stale veto */
	fx_leader(&f);
	f.o.pre_promote_vetoed = true;
	decide(&f, &a);
	check(&a, PGW_ACT_LEADER_DUTIES, "leader-healthy", "primary");
	assert_int_equal(pgw_pre_promote_holdoff_ms(10), 21000);
}

/* ---- switchover, failover, pause ------------------------------------------ */

static void request_switchover(struct fx *f, const char *leader, const char *member, double at)
{
	memset(&f->c.failover, 0, sizeof(f->c.failover));
	f->c.failover.present = true;
	snprintf(f->c.failover.leader, sizeof(f->c.failover.leader), "%s", leader);
	snprintf(f->c.failover.member, sizeof(f->c.failover.member), "%s", member);
	f->c.failover.scheduled_at = at;
}

static void test_switchover_hands_over(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	request_switchover(&f, "node1", "node2", 0);
	decide(&f, &a);
	check(&a, PGW_ACT_HANDOVER, "switchover", "handing over the leader key|to node2");

	/* to "any": the healthiest replica takes it later */
	request_switchover(&f, "", "", 0);
	f.c.failover.leader[0] = '\0';
	snprintf(f.c.failover.leader, sizeof(f.c.failover.leader), "node1");
	decide(&f, &a);
	check(&a, PGW_ACT_HANDOVER, "switchover", "to the healthiest replica");
}

static const char *election(struct fx *f, const char *const *names, int n);
static const char *const two[2];

/*
 * Requests that no longer speak for anyone (found by the simulator):
 *  - seed 495: a switchover whose leader was lost without handing over;
 *  - seed 46062: a switchover whose named member is far behind another replica (its
 *    leader never published the final position);
 *  - seed 46932: a manual failover older than the last leader key, left behind.
 */
static void test_stale_requests_do_not_choose(void **state)
{
	struct fx f;
	struct pgw_action a;
	struct pgw_leader_record *lr;

	(void)state;
	fx_no_leader(&f);
	lr = last_leader(&f, "node1");
	f.o.lost_leader_watchdog = true; /* S3 satisfied: only the request matters */
	member(&f, "node2")->xlog_location = 5000;
	member(&f, "node3")->xlog_location = 4000;
	/* the switchover to node3 was due when node1 was lost: the election decides */
	request_switchover(&f, "node1", "node3", 0);
	assert_string_equal(election(&f, two, 2), "node2");
	/* released (a handover): the switchover is carried out */
	lr->released = true;
	assert_string_equal(election(&f, two, 2), "node3");
	/* ... unless node3 is more than maximum_lag_on_failover behind node2, which has
	 * more than the leader ever published (both eligible against that position) */
	f.o.leader_optime = 5000;
	f.o.max_lag = MB;
	member(&f, "node2")->xlog_location = 4000 + 2 * MB;
	assert_string_equal(election(&f, two, 2), "node2");
	member(&f, "node2")->xlog_location = 5000;

	/* a manual failover to node3 older than the last leader key: obsolete */
	request_switchover(&f, "", "node3", 0);
	f.c.failover.mod_revision = 10;
	f.o.leader_rev = 20;
	assert_string_equal(election(&f, two, 2), "node2");
	f.c.failover.mod_revision = 30; /* newer: the operator's choice */
	assert_string_equal(election(&f, two, 2), "node3");
	/* and a leader cancels an obsolete one instead of handing over */
	fx_leader(&f);
	request_switchover(&f, "", "node2", 0);
	f.c.failover.mod_revision = 10;
	f.o.leader_rev = 20;
	decide(&f, &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "switchover-cancel", "older than this node");
}

static void test_switchover_scheduled(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	f.o.wall_now = 1000000;
	request_switchover(&f, "node1", "node2", 1000060);
	decide(&f, &a);
	check(&a, PGW_ACT_LEADER_DUTIES, "leader-healthy", "primary");
	f.o.wall_now = 1000060;
	decide(&f, &a);
	check(&a, PGW_ACT_HANDOVER, "switchover", "to node2");
}

static void test_switchover_cancelled(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_leader(&f);
	request_switchover(&f, "node1", "node9", 0);
	decide(&f, &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "switchover-cancel", "node9 is not a member");

	request_switchover(&f, "node1", "node3", 0);
	f.o.leader_optime = 3 * MB;
	member(&f, "node2")->xlog_location = 3 * MB;
	member(&f, "node3")->xlog_location = MB - 1;
	decide(&f, &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "switchover-cancel", "node3 lags");

	request_switchover(&f, "node1", "node1", 0);
	decide(&f, &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "switchover-cancel", "the leader itself");

	request_switchover(&f, "node7", "node2", 0);
	decide(&f, &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "switchover-cancel", "names node7 as the leader");

	request_switchover(&f, "node1", "node2", 0);
	f.c.failover.malformed = true;
	decide(&f, &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "switchover-cancel", "malformed");

	request_switchover(&f, "node1", "node2", 0);
	f.c.paused = true;
	decide(&f, &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "switchover-cancel", "paused");

	/* no replica at all */
	fx_leader(&f);
	remove_member(&f, "node2");
	remove_member(&f, "node3");
	request_switchover(&f, "node1", "", 0);
	decide(&f, &a);
	check(&a, PGW_ACT_CANCEL_SWITCHOVER, "switchover-cancel", "no eligible replica");
}

static void test_named_candidate_takes_over(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* node3 is behind node2, but the request names node3: only node3 acquires */
	fx_no_leader(&f);
	request_switchover(&f, "node1", "node3", 0);
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_ACQUIRE, "failover-to-this-node",
	      "names this node|requested leader node1");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "failover-to-other", "waiting for it to take over|node3");

	/* this node's own nofailover setting wins over a request naming it */
	member(&f, "node3")->nofailover = true;
	decide_as(&f, "node3", &a);
	assert_int_not_equal(a.kind, PGW_ACT_ACQUIRE);
	member(&f, "node3")->nofailover = false;

	/* the named member cannot (lags too much): the election decides as usual */
	f.o.leader_optime = 3 * MB;
	member(&f, "node2")->xlog_location = 3 * MB;
	member(&f, "node3")->xlog_location = MB - 1;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	decide_as(&f, "node3", &a);
	assert_int_not_equal(a.kind, PGW_ACT_ACQUIRE);
}

static void test_paused_no_automatic_action(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	f.c.paused = true;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "paused", "maintenance mode");

	fx_leader(&f); /* the leader keeps its duties (renewal, slots) */
	f.c.paused = true;
	decide(&f, &a);
	check(&a, PGW_ACT_LEADER_DUTIES, "leader-healthy", "primary");

	fx_leader(&f); /* but a crashed primary is not restarted */
	f.c.paused = true;
	pg_stopped(&f, PGW_CS_IN_PRODUCTION);
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "paused", "no automatic");

	fx_leader(&f); /* and the safety rows still hold: no writes past D - S */
	f.c.paused = true;
	lease_budget(&f, -1);
	decide(&f, &a);
	check(&a, PGW_ACT_DEMOTE_NOW, "lease-deadline", "D - S");
}

static void test_candidate_acquires(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	decide(&f, &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate",
	      "healthiest eligible member|taking the leader key|position 5000, leader's last 5000");
}

/* check_timeline: a node behind the history's newest timeline does not stand. */
static void test_check_timeline(void **state)
{
	struct fx f;
	struct pgw_action a;
	const char *all[] = {"node2", "node3"};

	(void)state;
	fx_no_leader(&f);
	f.c.history_timeline = 3; /* newest row [2, ...]: the cluster is on timeline 3 */
	decide(&f, &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "position 5000"); /* off: Patroni's default */

	f.o.check_timeline = true;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "timeline-behind",
	      "not standing for election|timeline 2 is behind the cluster's 3");
	member(&f, "node2")->timeline = 0;
	decide(&f, &a);
	check(&a, PGW_ACT_NONE, "timeline-behind", "timeline is unknown, the cluster's is 3");
	member(&f, "node2")->timeline = 3;
	decide(&f, &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "position 5000");
	/* no history: nothing to compare with */
	member(&f, "node2")->timeline = 2;
	f.c.history_timeline = 0;
	decide(&f, &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "position 5000");

	/* node3, behind in WAL but on the cluster's timeline, is the one that takes over */
	f.c.history_timeline = 3;
	member(&f, "node3")->timeline = 3;
	assert_string_equal(election(&f, all, 2), "node3");
	/* both behind: nobody does (Patroni's rule; an operator's failover still may) */
	member(&f, "node3")->timeline = 2;
	assert_null(election(&f, all, 2));
}

/* ---- the election ----------------------------------------------------------- */

/* Decide from each replica's view on the same cluster data; returns the one node that
 * acquires (fails when more than one does), or NULL. */
static const char *election(struct fx *f, const char *const *names, int n)
{
	const char *winner = NULL;
	struct pgw_action a;

	for (int i = 0; i < n; i++) {
		decide_as(f, names[i], &a);
		if (a.kind != PGW_ACT_ACQUIRE) {
			assert_int_equal(a.kind, PGW_ACT_NONE);
			continue;
		}
		if (winner)
			fail_msg("both %s and %s acquire", winner, names[i]);
		winner = names[i];
	}
	return winner;
}

static const char *const two[] = {"node2", "node3"};

static void test_election_higher_position_wins(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	assert_string_equal(election(&f, two, 2), "node2");
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_NONE, "not-best",
	      "not the best candidate|node2 is a better candidate|position 5000|this node: "
	      "streamed, position 4000");

	member(&f, "node3")->xlog_location = 5001;
	assert_string_equal(election(&f, two, 2), "node3");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node3 is a better candidate");
}

static void test_election_tie_priority_then_name(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	member(&f, "node3")->xlog_location = 5000;
	assert_string_equal(election(&f, two, 2), "node2"); /* same priority: by name */
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node2 is a better candidate|priority 1");

	member(&f, "node3")->failover_priority = 2;
	assert_string_equal(election(&f, two, 2), "node3");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node3 is a better candidate|priority 2");

	/* position beats priority */
	member(&f, "node2")->xlog_location = 5001;
	assert_string_equal(election(&f, two, 2), "node2");
}

static void test_election_lagging_not_eligible(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	/* node2 streamed (would rank first) but lags more than maximum_lag_on_failover;
	 * node3 did not stream but is within the limit */
	fx_no_leader(&f);
	f.o.leader_optime = 10 * MB;
	member(&f, "node2")->xlog_location = 10 * MB - MB - 1;
	member(&f, "node3")->xlog_location = 10 * MB - MB;
	member(&f, "node2")->streaming = true;
	member(&f, "node3")->streaming = false;
	assert_string_equal(election(&f, two, 2), "node3");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "not-best",
	      "node2 lags 1048577 bytes behind the leader's last position 10485760|more than "
	      "maximum_lag_on_failover 1048576");

	/* exactly max_lag behind is still eligible */
	member(&f, "node2")->xlog_location = 10 * MB - MB;
	assert_string_equal(election(&f, two, 2), "node2");
}

static void test_election_only_candidate_lags(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	remove_member(&f, "node3");
	f.o.leader_optime = 10 * MB;
	member(&f, "node2")->xlog_location = 1000;
	assert_null(election(&f, two, 1));
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node2 lags|maximum_lag_on_failover");

	/* with node3 lagging too: nobody */
	add_member(&f.c, "node3", "10.0.0.3", 5432, "replica", 2000);
	assert_null(election(&f, two, 2));

	/* unknown position: not eligible either */
	member(&f, "node2")->xlog_location = -1;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node2 has no known WAL position");
}

static void test_election_nofailover(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	member(&f, "node2")->nofailover = true; /* the best position, but tagged */
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "nofailover", "tagged nofailover|not standing for election");
	assert_string_equal(election(&f, two, 2), "node3");

	/* the config flag alone also stops it */
	member(&f, "node2")->nofailover = false;
	f.sync_self = false;
	f.o.self_member = *member(&f, "node2");
	f.o.nofailover = true;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "nofailover", "nofailover");

	/* the self_member flag alone too (the not-best row says why) */
	f.o.nofailover = false;
	f.o.self_member.nofailover = true;
	decide_as(&f, "node2", &a);
	assert_int_not_equal(a.kind, PGW_ACT_ACQUIRE);
	check(&a, PGW_ACT_NONE, "not-best", "node2 is tagged nofailover");
}

/*
 * Regression (simulator seeds 755, 1871, 2084, 2100, 2660): the best candidate by the
 * member keys took the key while another replica's key predated the leader's loss;
 * that replica had received more WAL since, and the new leader lost it.  The best
 * candidate now waits for keys newer than the loss (one loop of the others).
 */
static void test_election_waits_for_positions_after_the_loss(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	f.o.positions_after_rev = 100;
	member(&f, "node2")->mod_revision = 101;
	member(&f, "node3")->mod_revision = 102;
	assert_string_equal(election(&f, two, 2), "node2");
	member(&f, "node2")->mod_revision = 90;
	member(&f, "node3")->mod_revision = 95;
	assert_null(election(&f, two, 2));
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "positions-stale", "node3, key revision 95|100");
	decide_as(&f, "node3", &a); /* not the best: nothing to wait for */
	check(&a, PGW_ACT_NONE, "not-best", "node2");
	member(&f, "node3")->mod_revision = 101;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	/* a member that holds data but does not run yet (the old leader coming back as a
	 * replica, simulator seed 17050) is waited for, 2 * loop_wait + 1 s at most */
	f.o.loop_wait_s = 2;
	snprintf(member(&f, "node3")->state, sizeof(member(&f, "node3")->state), "stopped");
	f.o.no_leader_for_ms = 4000;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "positions-stale", "node3 is stopped|4000 ms");
	f.o.no_leader_for_ms = 5000;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	snprintf(member(&f, "node3")->state, sizeof(member(&f, "node3")->state), "running");
	/* a running member's key that never changes (no lease: a peer's or an operator's
	 * write) is waited for the same bounded time, not for ever */
	member(&f, "node3")->mod_revision = 95;
	f.o.no_leader_for_ms = 4000;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "positions-stale", "node3, key revision 95");
	f.o.no_leader_for_ms = 5000;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	f.o.no_leader_for_ms = 0;
	member(&f, "node3")->mod_revision = 101;
	/* a stale key of a member that cannot lead anyway does not hold the election up */
	member(&f, "node3")->mod_revision = 95;
	member(&f, "node3")->nofailover = true;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	member(&f, "node3")->nofailover = false;
	member(&f, "node3")->mod_revision = 101;
}

/*
 * Regression (failover bench, kill-restart, 1 run in 5): the leader's daemon was killed
 * and restarted; it stopped its leftover primary and published "stopped" just before a
 * replica fenced it.  The best candidate then waited for the powered-off member's key
 * (positions-stale, "node1 is stopped") until 2 * loop_wait + 1 s: 28 s of no primary.
 * The last leader's key says nothing once the record says it was fenced.
 */
static void test_election_does_not_wait_for_the_fenced_leader(void **state)
{
	struct fx f;
	struct pgw_action a;
	struct pgw_leader_record *lr;

	(void)state;
	fx_no_leader(&f);
	f.o.positions_after_rev = 100;
	member(&f, "node2")->mod_revision = 101;
	member(&f, "node3")->mod_revision = 102;
	snprintf(member(&f, "node3")->state, sizeof(member(&f, "node3")->state), "stopped");
	f.o.loop_wait_s = 10;
	f.o.no_leader_for_ms = 4000;
	lr = &f.c.last_leader;
	lr->present = true;
	snprintf(lr->member, sizeof(lr->member), "node3");
	lr->released = true; /* a clean loss: its key is worth waiting for */
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "positions-stale", "node3 is stopped");
	lr->released = false;
	snprintf(lr->fenced_by, sizeof(lr->fenced_by), "node2");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	/* another member that is stopped is still waited for */
	snprintf(lr->member, sizeof(lr->member), "node1");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "positions-stale", "node3 is stopped");
}

/*
 * Regression (simulator seed 30140): the last leader, reset by its watchdog, came back
 * with its device unusable (watchdog required: it may not lead).  Its key said
 * "stopped", position unknown; its PostgreSQL then ran as a replica and served the WAL
 * nobody had published to a replica that still followed it.  The best candidate by the
 * keys took the key 2.2 MB short.  While the last leader may hold more WAL than this
 * node, the election waits (2 * loop_wait + 1 s at most) for the others' keys.
 */
static void test_election_waits_for_a_last_leader_that_may_not_lead(void **state)
{
	struct fx f;
	struct pgw_action a;
	struct pgw_member *old;
	struct pgw_leader_record *lr;

	(void)state;
	fx_no_leader(&f);
	lr = last_leader(&f, "node1");
	lr->released = true; /* S3 is not what this is about */
	f.o.positions_after_rev = 100;
	f.o.loop_wait_s = 2;
	f.o.no_leader_for_ms = 4000;
	member(&f, "node2")->mod_revision = 101;
	member(&f, "node3")->mod_revision = 102;
	old = add_member(&f.c, "node1", "10.0.0.1", 5432, "master", -1);
	snprintf(old->state, sizeof(old->state), "stopped");
	old->timeline = 0;
	old->watchdog_blocked = true;
	old->mod_revision = 103;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "positions-stale",
	      "node1, the last leader, may not lead but holds more WAL");
	/* running, on the same timeline: more than maximum_lag_on_failover ahead waits */
	snprintf(old->state, sizeof(old->state), "running");
	snprintf(old->role, sizeof(old->role), "replica");
	old->timeline = 2;
	old->xlog_location = 5000 + MB + 1;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "positions-stale", "position 1053577");
	/* a newer timeline too */
	old->xlog_location = 10;
	old->timeline = 3;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "positions-stale", "timeline 3");
	/* within maximum_lag_on_failover: the election goes on */
	old->timeline = 2;
	old->xlog_location = 5000 + MB;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	/* a key from before the loss says nothing about now */
	old->xlog_location = -1;
	old->mod_revision = 99;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	/* another member that may not lead is not waited for: only the last leader's WAL
	 * is unpublished */
	old->mod_revision = 103;
	lr->member[0] = '\0';
	snprintf(lr->member, sizeof(lr->member), "node9");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
	/* and the wait is bounded */
	snprintf(lr->member, sizeof(lr->member), "node1");
	f.o.no_leader_for_ms = 5000;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "healthiest");
}

/* Regression (simulator seed 3279): the old leader back as a replica, not streaming
 * yet, holds more WAL than a streamer; ranking streamers first lost the difference. */
static void test_election_position_beats_streaming(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	member(&f, "node2")->streaming = false;
	member(&f, "node2")->xlog_location = 6000;
	member(&f, "node3")->streaming = true;
	member(&f, "node3")->xlog_location = 4000;
	assert_string_equal(election(&f, two, 2), "node2");
	decide_as(&f, "node3", &a);
	check(&a, PGW_ACT_NONE, "not-best",
	      "node2 is a better candidate (not streaming, position 6000|this node: streamed, "
	      "position 4000");
	/* equal positions: the streamer first */
	member(&f, "node2")->xlog_location = 4000;
	assert_string_equal(election(&f, two, 2), "node3");
	/* a higher position on an older timeline ranks below the newer timeline */
	member(&f, "node2")->xlog_location = 9000;
	member(&f, "node2")->timeline = 2;
	member(&f, "node3")->timeline = 3;
	assert_string_equal(election(&f, two, 2), "node3");
}

static void test_election_ineligible_members_ignored(void **state)
{
	struct fx f;
	struct pgw_action a;

	(void)state;
	fx_no_leader(&f);
	/* node4: a far better position, but not a running replica */
	add_member(&f.c, "node4", "10.0.0.4", 5432, "master", 9000);
	add_member(&f.c, "node5", "10.0.0.5", 5432, "replica", 9000);
	snprintf(member(&f, "node5")->state, sizeof(f.c.members[0].state), "stopped");
	add_member(&f.c, "node6", "10.0.0.6", 5432, "replica", 9000);
	member(&f, "node6")->nofailover = true;
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_ACQUIRE, "candidate", "position 5000");

	/* self not a running replica */
	snprintf(member(&f, "node2")->state, sizeof(f.c.members[0].state), "starting");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node2 is not running (state: starting)");
	snprintf(member(&f, "node2")->state, sizeof(f.c.members[0].state), "running");
	snprintf(member(&f, "node2")->role, sizeof(f.c.members[0].role), "uninitialized");
	decide_as(&f, "node2", &a);
	check(&a, PGW_ACT_NONE, "not-best", "node2 is not a replica (role: uninitialized)");
}

/* Many small clusters: with every node seeing the same data, at most one acquires, and
 * exactly one when some node is eligible. */
static void test_election_exactly_one(void **state)
{
	static const char *const names[] = {"a", "b", "c", "d"};
	unsigned seed = 12345;

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		struct fx f;
		int n = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4;
		int eligible = 0;
		char why[256];

		fx_no_leader(&f);
		f.c.nmembers = 0;
		f.o.leader_optime = (seed >> 8) % 3 ? 100 : -1;
		f.o.max_lag = 50;
		for (int i = 0; i < n; i++) {
			struct pgw_member *m;

			seed = seed * 1103515245u + 12345u;
			m = add_member(&f.c, names[i], "h", 5432, "replica",
			               (int64_t)((seed >> 16) % 4) * 30 - 1);
			m->streaming = (seed >> 20) & 1;
			m->failover_priority = (int)((seed >> 22) % 2);
			m->nofailover = ((seed >> 24) % 5) == 0;
			if (pgw_candidate_eligible(m, f.o.leader_optime, f.o.max_lag, why,
			                           sizeof(why)))
				eligible++;
		}
		if (eligible)
			assert_non_null(election(&f, names, n));
		else
			assert_null(election(&f, names, n));
	}
}

static void test_candidate_eligible_direct(void **state)
{
	struct pgw_cluster c;
	struct pgw_member *m;
	char why[256];

	(void)state;
	memset(&c, 0, sizeof(c));
	m = add_member(&c, "n", "h", 1, "replica", 100);
	assert_true(pgw_candidate_eligible(m, 100, 0, why, sizeof(why)));
	assert_true(pgw_candidate_eligible(m, -1, 0, why, sizeof(why))); /* leader unknown */
	assert_true(pgw_candidate_eligible(m, 50, 0, why, sizeof(why))); /* ahead */
	assert_false(pgw_candidate_eligible(m, 101, 0, why, sizeof(why)));
	assert_non_null(strstr(why, "n lags 1 bytes"));
	m->xlog_location = -1;
	assert_false(pgw_candidate_eligible(m, -1, INT64_MAX - 1, why, sizeof(why)));
	assert_non_null(strstr(why, "no known WAL position"));
	m->xlog_location = 100;
	m->role[0] = '\0';
	assert_false(pgw_candidate_eligible(m, 100, 0, why, sizeof(why)));
	assert_non_null(strstr(why, "role: unknown"));
	snprintf(m->role, sizeof(m->role), "replica");
	m->state[0] = '\0';
	assert_false(pgw_candidate_eligible(m, 100, 0, why, sizeof(why)));
	assert_non_null(strstr(why, "state: unknown"));
	/* a tiny buffer is not overrun */
	assert_false(pgw_candidate_eligible(m, 100, 0, why, 4));
	assert_int_equal(strlen(why), 3);
}

static void test_action_names(void **state)
{
	(void)state;
	for (int k = 0; k < PGW_ACT_COUNT; k++) {
		const char *n = pgw_action_name((enum pgw_action_kind)k);

		assert_non_null(n);
		assert_string_not_equal(n, "?");
		for (int j = 0; j < k; j++)
			assert_string_not_equal(n, pgw_action_name((enum pgw_action_kind)j));
	}
	assert_string_equal(pgw_action_name(PGW_ACT_COUNT), "?");
	assert_string_equal(pgw_action_name((enum pgw_action_kind) - 1), "?");
	assert_string_equal(pgw_action_name(PGW_ACT_DEMOTE_NOW), "demote_now");
}

/* ---- the printed table ------------------------------------------------------- */

static char *print_rules(bool dot)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	pgw_print_rules(fp, dot);
	assert_int_equal(fclose(fp), 0);
	assert_non_null(buf);
	return buf;
}

/* The row names, in table order, from the text form. */
static int rule_names(char names[][40], int max)
{
	char *text = print_rules(false), *save = NULL;
	int n = 0;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int num = 0;

		assert_true(n < max);
		assert_int_equal(sscanf(line, "%d %39s", &num, names[n]), 2);
		assert_int_equal(num, n + 1);
		assert_non_null(strstr(line, "->"));
		n++;
	}
	free(text);
	return n;
}

static void test_print_rules_text(void **state)
{
	char names[128][40];
	char *text = print_rules(false);
	int n = rule_names(names, 128), lines = 0;

	(void)state;
	for (char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, n);
	assert_true(n >= 30);
	assert_string_equal(names[0], "shutdown");
	assert_string_equal(names[1], "lease-deadline");
	assert_string_equal(names[n - 1], "fallthrough");
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++)
			assert_string_not_equal(names[i], names[j]);
	assert_non_null(strstr(text, "lease-deadline           primary    -> demote_now"));
	free(text);
}

static void test_print_rules_dot(void **state)
{
	char names[128][40];
	int n = rule_names(names, 128), edges = 0;
	char *dot = print_rules(true), *save = NULL;
	size_t len = strlen(dot);

	(void)state;
	assert_true(strncmp(dot, "digraph pgwarden {\n", 19) == 0);
	assert_true(len > 2 && strcmp(dot + len - 2, "}\n") == 0);
	for (char *line = strtok_r(dot, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char from[64], to[64], label[80];
		int quotes = 0;

		if (strncmp(line, "  \"", 3) != 0)
			continue;
		for (char *p = line; *p; p++)
			quotes += *p == '"';
		assert_int_equal(quotes, 6);
		assert_int_equal(sscanf(line,
		                        "  \"%63[^\"]\" -> \"%63[^\"]\" [label=\"%79[^\"]\"];",
		                        from, to, label),
		                 3);
		assert_true(line[strlen(line) - 1] == ';');
		snprintf(from, sizeof(from), "%d %s", edges + 1, names[edges]);
		assert_string_equal(label, from);
		edges++;
	}
	assert_int_equal(edges, n);
	free(dot);
}

/* Runs last: every row of the table was the answer of some test above.  "fallthrough"
 * cannot be reached: "not-best" is the exact complement of "candidate". */
static void test_every_rule_reached(void **state)
{
	char names[128][40];
	int n = rule_names(names, 128);

	(void)state;
	for (int i = 0; i < n; i++) {
		bool found = false;

		if (strcmp(names[i], "fallthrough") == 0)
			continue;
		for (int j = 0; j < nseen && !found; j++)
			found = strcmp(seen_rules[j], names[i]) == 0;
		if (!found)
			fail_msg("rule %s is not reached by any test", names[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixture_replica_following),
	    cmocka_unit_test(test_fixture_leader_healthy),
	    cmocka_unit_test(test_shutdown),
	    cmocka_unit_test(test_lease_deadline_etcd_down),
	    cmocka_unit_test(test_lease_deadline_etcd_up),
	    cmocka_unit_test(test_lease_deadline_no_lease),
	    cmocka_unit_test(test_etcd_unreachable_never_takes_over),
	    cmocka_unit_test(test_primary_other_leader),
	    cmocka_unit_test(test_unanswering_primary_still_demoted),
	    cmocka_unit_test(test_primary_own_name_other_lease),
	    cmocka_unit_test(test_primary_without_key),
	    cmocka_unit_test(test_leader_in_recovery_promotes),
	    cmocka_unit_test(test_standby_leader_stays_standby),
	    cmocka_unit_test(test_standby_leader_repoints_and_starts),
	    cmocka_unit_test(test_standby_removed_promotes),
	    cmocka_unit_test(test_standby_safety_rows_first),
	    cmocka_unit_test(test_standby_election_and_bootstrap),
	    cmocka_unit_test(test_leader_lease_stale),
	    cmocka_unit_test(test_leader_postgres_down_and_timeout),
	    cmocka_unit_test(test_leader_starting),
	    cmocka_unit_test(test_leader_no_data),
	    cmocka_unit_test(test_stale_own_key_never_acquires),
	    cmocka_unit_test(test_restarted_daemon_releases_its_stale_key),
	    cmocka_unit_test(test_leader_member_missing),
	    cmocka_unit_test(test_clone_empty_datadir),
	    cmocka_unit_test(test_invalid_datadir),
	    cmocka_unit_test(test_foreign_sysid),
	    cmocka_unit_test(test_follow_new_leader),
	    cmocka_unit_test(test_old_primary_rewinds),
	    cmocka_unit_test(test_diverged_replica),
	    cmocka_unit_test(test_old_primary_waits_for_timeline),
	    cmocka_unit_test(test_old_primary_reclones),
	    cmocka_unit_test(test_old_primary_keeps_data),
	    cmocka_unit_test(test_start_replica),
	    cmocka_unit_test(test_replicatefrom_cascades),
	    cmocka_unit_test(test_replicatefrom_falls_back),
	    cmocka_unit_test(test_replicatefrom_loop),
	    cmocka_unit_test(test_nostream),
	    cmocka_unit_test(test_no_fresh_lease),
	    cmocka_unit_test(test_bootstrap),
	    cmocka_unit_test(test_uninitialized_with_data),
	    cmocka_unit_test(test_bootstrap_in_progress),
	    cmocka_unit_test(test_no_leader_empty),
	    cmocka_unit_test(test_no_leader_clone_from_backup),
	    cmocka_unit_test(test_no_leader_start),
	    cmocka_unit_test(test_no_leader_starting),
	    cmocka_unit_test(test_pre_promote_veto),
	    cmocka_unit_test(test_switchover_hands_over),
	    cmocka_unit_test(test_switchover_scheduled),
	    cmocka_unit_test(test_stale_requests_do_not_choose),
	    cmocka_unit_test(test_switchover_cancelled),
	    cmocka_unit_test(test_named_candidate_takes_over),
	    cmocka_unit_test(test_paused_no_automatic_action),
	    cmocka_unit_test(test_candidate_acquires),
	    cmocka_unit_test(test_check_timeline),
	    cmocka_unit_test(test_election_higher_position_wins),
	    cmocka_unit_test(test_election_tie_priority_then_name),
	    cmocka_unit_test(test_election_lagging_not_eligible),
	    cmocka_unit_test(test_election_only_candidate_lags),
	    cmocka_unit_test(test_election_nofailover),
	    cmocka_unit_test(test_election_position_beats_streaming),
	    cmocka_unit_test(test_election_waits_for_positions_after_the_loss),
	    cmocka_unit_test(test_election_does_not_wait_for_the_fenced_leader),
	    cmocka_unit_test(test_election_waits_for_a_last_leader_that_may_not_lead),
	    cmocka_unit_test(test_election_ineligible_members_ignored),
	    cmocka_unit_test(test_election_exactly_one),
	    cmocka_unit_test(test_candidate_eligible_direct),
	    cmocka_unit_test(test_action_names),
	    cmocka_unit_test(test_print_rules_text),
	    cmocka_unit_test(test_print_rules_dot),
	    cmocka_unit_test(test_watchdog_unusable),
	    cmocka_unit_test(test_fence_before_promote),
	    cmocka_unit_test(test_fast_takeover),
	    cmocka_unit_test(test_every_rule_reached), /* keep last */
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
