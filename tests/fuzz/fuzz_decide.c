/*
 * fuzz_decide.c - fuzz target for the decision core and the etcd view parser.
 *
 * The input bytes become one observation (every field of struct pgw_obs, a
 * random cluster with up to PGW_MAX_MEMBERS members and random strings), and
 * pgw_decide's answer is checked against the safety invariants (ARCHITECTURE.md
 * sections 3 and 4).  The rest of the input is fed, by a selector byte, to
 * pgw_member_parse (raw bytes, in a buffer of exactly their length), to
 * pgw_cluster_parse (a range of keys with templated or raw values; the parsed
 * cluster is then decided on too), or to pgw_parse_conn_url and a member JSON
 * round trip.
 *
 * Two builds:
 *   libFuzzer (clang):
 *     clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -Icore -Idaemon $(pkg-config --cflags json-c) tests/fuzz/fuzz_decide.c \
 *       core/decide.c core/cluster_view.c daemon/cluster.c core/lease.c daemon/log.c -ljson-c \
 *       -o build/fuzz_decide
 *     mkdir -p build/fuzz-corpus && build/fuzz_decide -max_total_time=180 build/fuzz-corpus
 *   plain driver (gcc, no libFuzzer): define PGW_FUZZ_STANDALONE; main() runs
 *     PGW_RANDOM_ITERATIONS (default 200000) pseudo-random inputs from a fixed
 *     seed and prints "random: N passed, M failed".  tests/unit/test_decide_random.c
 *     includes this file that way, so `make unit` runs it.
 * An invariant violation prints the observation and the action, then aborts
 * (libFuzzer keeps the input as a crash file) or, in the driver, counts a failure
 * and makes the exit status non-zero.
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "decide.h"
#include "lease.h"
#include "pg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- reading the input ------------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t n, i;
};

/* nbytes bytes big-endian; zeros once the input is used up */
static uint64_t rd_bits(struct rd *r, int nbytes)
{
	uint64_t v = 0;

	for (int k = 0; k < nbytes; k++)
		v = v << 8 | (r->i < r->n ? r->p[r->i++] : 0);
	return v;
}

static unsigned rd_pick(struct rd *r, unsigned n)
{
	return (unsigned)(rd_bits(r, 1) % n);
}

static bool rd_bool(struct rd *r)
{
	return rd_bits(r, 1) & 1;
}

/* A random string of up to cap - 1 raw bytes (an embedded NUL just ends it early). */
static void rd_str(struct rd *r, char *buf, size_t cap)
{
	size_t len = rd_pick(r, 256) % cap;

	for (size_t k = 0; k < len; k++)
		buf[k] = (char)rd_bits(r, 1);
	buf[len] = '\0';
}

static void rd_pool(struct rd *r, char *buf, size_t cap, const char *const *pool, unsigned n)
{
	unsigned k = rd_pick(r, n + 1);

	if (k < n)
		snprintf(buf, cap, "%s", pool[k]);
	else
		rd_str(r, buf, cap);
}

static int64_t rd_i64(struct rd *r)
{
	switch (rd_pick(r, 6)) {
	case 0:
		return -1;
	case 1:
		return 0;
	case 2:
		return (int64_t)rd_bits(r, 2);
	case 3:
		return (int64_t)rd_bits(r, 4);
	case 4:
		return (int64_t)rd_bits(r, 8); /* anything, negative too */
	default:
		return INT64_MAX - (int64_t)rd_bits(r, 1);
	}
}

static const char *const names[] = {"node1", "node2", "node3", "node4", "n", "?", ""};
static const char *const hosts[] = {"10.0.0.1", "10.0.0.2", "fd00::1", "h", ""};
static const char *const roles[] = {"replica", "master", "primary", "uninitialized", ""};
static const char *const states[] = {"running", "stopped", "starting", "crashed", ""};
static const char *const sysids[] = {"", "7000000000000000001", "?", "42", "0"};
#define NPOOL(a) ((unsigned)(sizeof(a) / sizeof((a)[0])))
#define SYSID    7000000000000000001ULL

/* ---- failure reporting ------------------------------------------------------- */

static unsigned long failures;

static void report(const struct pgw_obs *o, const struct pgw_action *a, const char *what)
{
	failures++;
	if (failures > 5)
		return;
	fprintf(stderr, "INVARIANT VIOLATED: %s\n", what);
	fprintf(stderr, "  action %s rule %s: %s (target %s %s:%d)\n", pgw_action_name(a->kind),
	        a->rule ? a->rule : "(null)", a->reason, a->target, a->target_host, a->target_port);
	fprintf(stderr,
	        "  self %s now %" PRId64 " shutdown %d etcd_ok %d lease id %" PRId64 " D %" PRId64
	        " S %" PRId64 "\n",
	        o->self, o->now_ms, o->shutdown_requested, o->etcd_ok, o->lease.id,
	        o->lease.deadline_ms, o->margin_ms);
	fprintf(stderr,
	        "  pg datadir %d running %d accepting %d in_recovery %d sysid %" PRIu64
	        " upstream %s:%d\n",
	        o->pg->datadir, o->pg->running, o->pg->accepting, o->pg->in_recovery,
	        o->pg->system_identifier, o->pg->primary_host, o->pg->primary_port);
	if (o->etcd_ok && o->cluster)
		fprintf(stderr,
		        "  cluster initialized %d sysid '%s' leader %d '%s' lease %" PRId64
		        " members %d\n",
		        o->cluster->initialized, o->cluster->sysid, o->cluster->has_leader,
		        o->cluster->leader, o->cluster->leader_lease, o->cluster->nmembers);
#ifndef PGW_FUZZ_STANDALONE
	abort();
#endif
}

#define CHECK(cond, what)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			report(o, &a, what);                                                       \
	} while (0)

#ifdef PGW_FUZZ_STANDALONE
/* how often each row answered, printed when PGW_RANDOM_STATS is set */
static struct {
	const char *rule;
	unsigned long n;
} rule_hits[64];

static void note_rule(const char *rule)
{
	for (size_t i = 0; i < sizeof(rule_hits) / sizeof(rule_hits[0]); i++) {
		if (!rule_hits[i].rule)
			rule_hits[i].rule = rule;
		if (rule_hits[i].rule == rule) {
			rule_hits[i].n++;
			return;
		}
	}
}
#else
#define note_rule(r) ((void)(r))
#endif

static bool is_primary_kind(enum pgw_action_kind k)
{
	return k == PGW_ACT_ACQUIRE || k == PGW_ACT_PROMOTE || k == PGW_ACT_BOOTSTRAP ||
	       k == PGW_ACT_START_PRIMARY || k == PGW_ACT_LEADER_DUTIES;
}

/* Decide and check every invariant. */
static void decide_and_check(const struct pgw_obs *o)
{
	struct pgw_action a, b;
	bool pg_primary = o->pg->running && o->pg->accepting && !o->pg->in_recovery;
	bool fresh = pgw_lease_allows_writes(&o->lease, o->now_ms, o->margin_ms);
	bool holds = pgw_obs_holds_leader(o);
	char why[256];

	memset(&a, 0xa5, sizeof(a));
	pgw_decide(o, &a);

	CHECK((unsigned)a.kind < PGW_ACT_COUNT, "action kind out of range");
	CHECK(a.rule && a.rule[0], "action without a rule name");
	CHECK(memchr(a.reason, '\0', sizeof(a.reason)) && a.reason[0],
	      "reason empty or unterminated");
	CHECK(memchr(a.target, '\0', sizeof(a.target)) &&
	          memchr(a.target_host, '\0', sizeof(a.target_host)),
	      "target unterminated");
	if (!a.rule || !memchr(a.reason, '\0', sizeof(a.reason)))
		return;
	note_rule(a.rule);

	/* pure: the same observation gives the same action */
	memset(&b, 0x3c, sizeof(b));
	pgw_decide(o, &b);
	CHECK(a.kind == b.kind && a.rule == b.rule && strcmp(a.reason, b.reason) == 0 &&
	          strcmp(a.target, b.target) == 0 && strcmp(a.target_host, b.target_host) == 0 &&
	          a.target_port == b.target_port,
	      "not deterministic");

	if (!o->etcd_ok)
		CHECK(!is_primary_kind(a.kind), "takes or uses the leader role while etcd is down");
	/* tags.replicatefrom: a replica streams from the leader, or from a live, running,
	 * streaming replica other than itself */
	if (o->etcd_ok && o->cluster->has_leader && !o->nostream &&
	    (a.kind == PGW_ACT_FOLLOW || a.kind == PGW_ACT_START_REPLICA) &&
	    strcmp(a.target, o->cluster->leader) != 0) {
		const struct pgw_member *t = pgw_cluster_member(o->cluster, a.target);

		CHECK(t && t->lease != 0 && (t->streaming || t->nostream) &&
		          strcmp(t->role, "replica") == 0 &&
		          strcmp(t->state, "running") == 0 && strcmp(t->name, o->self) != 0,
		      "streams from a member that is neither the leader nor a healthy replica");
	}
	if (o->etcd_ok && o->cluster->has_leader)
		CHECK(a.kind != PGW_ACT_ACQUIRE && a.kind != PGW_ACT_BOOTSTRAP,
		      "acquire/bootstrap while the cluster has a leader");
	if (a.kind == PGW_ACT_ACQUIRE) {
		const struct pgw_failover *f = &o->cluster->failover;
		bool named = f->present && !f->malformed && strcmp(f->member, o->self) == 0;

		CHECK(!o->nofailover && !o->self_member.nofailover, "acquire while nofailover");
		CHECK(!o->self_member.watchdog_blocked, "acquire while its watchdog is blocked");
		CHECK(!o->cluster->paused, "acquire while paused");
		if (named)
			CHECK(pgw_candidate_eligible(&o->self_member, o->leader_optime, o->max_lag,
			                             why, sizeof(why)),
			      "acquire as the named candidate while not eligible");
		else
			CHECK(pgw_is_best_candidate(o, why, sizeof(why)),
			      "acquire while not the best candidate");
	}
	if (a.kind == PGW_ACT_ACQUIRE)
		CHECK(!pgw_fence_needed(o), "acquire before the lost leader was fenced (S3)");
	if (a.kind == PGW_ACT_ACQUIRE && !o->fencing_required && !o->unprotected_failover &&
	    !o->lost_leader_watchdog) {
		/* S3 without fencing: a lost, unbounded leader is replaced only on the operator's
		 * fresh word, or once it is back as a running replica */
		const struct pgw_leader_record *lr = &o->cluster->last_leader;
		const struct pgw_failover *f = &o->cluster->failover;
		const struct pgw_member *back = lr->present && !lr->malformed
		                                    ? pgw_cluster_member(o->cluster, lr->member)
		                                    : NULL;
		bool lost = lr->present && !lr->released && !lr->fenced_by[0] &&
		            (lr->malformed || !lr->member[0] || strcmp(lr->member, o->self) != 0);
		bool word = f->present && !f->malformed && !f->leader[0] &&
		            strcmp(f->member, o->self) == 0 &&
		            f->mod_revision > o->positions_after_rev;
		bool replica = back && strcmp(back->role, "replica") == 0 &&
		               strcmp(back->state, "running") == 0;

		CHECK(!lost || word || replica,
		      "acquire after an unprotected leader was lost, without the operator's word");
	}
	if (a.kind == PGW_ACT_ACQUIRE && strcmp(a.rule, "candidate") == 0 &&
	    o->positions_after_rev > 0 && o->no_leader_for_ms < (2LL * o->loop_wait_s + 1) * 1000) {
		/* durability: positions compared postdate the loss */
		for (int i = 0; i < o->cluster->nmembers; i++) {
			const struct pgw_member *m = &o->cluster->members[i];

			CHECK(strcmp(m->name, o->self) == 0 || m->nofailover ||
			          m->watchdog_blocked || strcmp(m->role, "replica") != 0 ||
			          strcmp(m->state, "running") != 0 ||
			          m->mod_revision > o->positions_after_rev,
			      "acquire on a member key older than the leader's loss");
		}
	}
	if (a.kind == PGW_ACT_FENCE) {
		bool fast = o->fencing_required && o->cluster->has_leader &&
		            o->fast_takeover_after_ms > 0 &&
		            o->leader_unreachable_ms >= o->fast_takeover_after_ms &&
		            strcmp(a.target, o->cluster->leader) == 0 &&
		            strcmp(o->cluster->last_leader.member, o->cluster->leader) == 0 &&
		            o->cluster->last_leader.lease == o->cluster->leader_lease;

		CHECK((pgw_fence_needed(o) || fast) && a.target[0] &&
		          strcmp(a.target, o->self) != 0 && !o->cluster->last_leader.malformed,
		      "fence without a need, or of no one, or of itself");
		CHECK(!o->cluster->paused, "fence while paused");
	}
	if (o->watchdog_unusable)
		CHECK(a.kind != PGW_ACT_ACQUIRE && a.kind != PGW_ACT_BOOTSTRAP &&
		          a.kind != PGW_ACT_PROMOTE && a.kind != PGW_ACT_START_PRIMARY &&
		          (a.kind != PGW_ACT_LEADER_DUTIES || o->cluster->paused),
		      "takes or keeps the leader role without a usable watchdog (mode required)");
	if (a.kind == PGW_ACT_HANDOVER) {
		const struct pgw_failover *f = &o->cluster->failover;

		CHECK(holds && pg_primary, "handover without being the leader");
		CHECK(f->present && !f->malformed && !o->cluster->paused,
		      "handover without a usable request, or while paused");
		CHECK(f->scheduled_at == 0 || o->wall_now >= f->scheduled_at,
		      "handover before the scheduled time");
	}
	if (pg_primary && !fresh && !o->shutdown_requested)
		CHECK(a.kind == PGW_ACT_DEMOTE_NOW,
		      "primary without a valid lease not demoted now");
	if (pg_primary && o->etcd_ok && o->cluster->has_leader && !holds && !o->shutdown_requested)
		CHECK(a.kind == PGW_ACT_DEMOTE_NOW, "primary under another leader not demoted now");
	if (a.kind == PGW_ACT_PROMOTE || a.kind == PGW_ACT_START_PRIMARY ||
	    a.kind == PGW_ACT_LEADER_DUTIES)
		CHECK(holds, "promote/start primary/duties without holding the leader key");
	if (is_primary_kind(a.kind))
		CHECK(fresh, "writes would start or continue past D - S");
	if (o->shutdown_requested)
		CHECK(a.kind == PGW_ACT_SHUTDOWN, "shutdown not honoured");

	/* actions aimed at the leader name it and its address; follow and start may aim at
	 * the upstream tags.replicatefrom chose instead (pgw_upstream) */
	if (a.kind == PGW_ACT_CLONE || a.kind == PGW_ACT_REWIND || a.kind == PGW_ACT_FOLLOW ||
	    (a.kind == PGW_ACT_START_REPLICA && o->cluster->has_leader)) {
		const struct pgw_member *l = pgw_cluster_leader_member(o->cluster), *t = l;

		CHECK(o->etcd_ok && o->cluster->has_leader && l, "replica action without a leader");
		if (l && (a.kind == PGW_ACT_FOLLOW || a.kind == PGW_ACT_START_REPLICA))
			t = pgw_upstream(o->cluster, o->self, o->replicatefrom, why, sizeof(why));
		if (o->nostream && (a.kind == PGW_ACT_FOLLOW || a.kind == PGW_ACT_START_REPLICA))
			CHECK(!a.target[0] && !a.target_host[0], "nostream, yet a source to stream from");
		else if (t)
			CHECK(strcmp(a.target, t->name) == 0 &&
			          strcmp(a.target_host, t->conn_host) == 0 &&
			          a.target_port == t->conn_port,
			      "target is neither the leader's address nor its upstream's");
	}
}

/* ---- building an observation ------------------------------------------------ */

static void random_member(struct rd *r, struct pgw_member *m)
{
	memset(m, 0, sizeof(*m));
	rd_pool(r, m->name, sizeof(m->name), names, NPOOL(names));
	rd_pool(r, m->role, sizeof(m->role), roles, NPOOL(roles));
	rd_pool(r, m->state, sizeof(m->state), states, NPOOL(states));
	rd_pool(r, m->conn_host, sizeof(m->conn_host), hosts, NPOOL(hosts));
	m->conn_port = rd_bool(r) ? 5432 : (int)rd_bits(r, 2);
	m->xlog_location = rd_i64(r);
	m->timeline = (int)(int8_t)rd_bits(r, 1);
	m->nofailover = rd_pick(r, 4) == 0;
	m->watchdog_blocked = rd_pick(r, 8) == 0;
	m->noloadbalance = rd_bool(r);
	m->failover_priority = (int)(int8_t)rd_bits(r, 1);
	m->streaming = rd_bool(r);
	m->lease = (int64_t)rd_pick(r, 4);
	m->watchdog_armed = rd_bool(r);
	m->mod_revision = (int64_t)rd_pick(r, 64);
	if (rd_bool(r))
		rd_pool(r, m->replicatefrom, sizeof(m->replicatefrom), names, NPOOL(names));
	m->nostream = rd_pick(r, 4) == 0;
}

static struct world {
	struct pgw_cluster c;
	struct pgw_pg_state pg;
	struct pgw_obs o;
	char self[PGW_NAME_MAX];
} w;

/*
 * Fully random observations rarely get deep into the table (a candidate needs a
 * dozen fields to agree), so some of them are made coherent, by flags.
 */
static void nudge(struct rd *r)
{
	struct pgw_obs *o = &w.o;
	unsigned flags = (unsigned)rd_bits(r, 1);

	if (flags & 1) { /* distinct member names; self and the leader among them */
		for (int i = 0; i < w.c.nmembers; i++)
			snprintf(w.c.members[i].name, sizeof(w.c.members[i].name), "node%d", i + 1);
		if (w.c.nmembers > 0) {
			snprintf(w.self, sizeof(w.self), "node%u",
			         1 + rd_pick(r, (unsigned)w.c.nmembers));
			snprintf(w.c.leader, sizeof(w.c.leader), "node%u",
			         1 + rd_pick(r, (unsigned)w.c.nmembers));
			o->self_member = *pgw_cluster_member(&w.c, w.self);
			o->nofailover = o->self_member.nofailover;
		}
	}
	if (flags & 2) { /* one system identifier everywhere */
		w.c.initialized = true;
		snprintf(w.c.sysid, sizeof(w.c.sysid), "%llu", (unsigned long long)SYSID);
		w.pg.system_identifier = w.pg.system_identifier ? SYSID : 0;
		o->cd.system_identifier = SYSID;
	}
	if (flags & 4) { /* a lease renewed a moment ago */
		o->margin_ms = 5000;
		pgw_lease_renewed(&o->lease, o->lease.id ? o->lease.id : 222,
		                  o->now_ms - (int64_t)rd_pick(r, 200) * 100, 30);
		if (strcmp(w.c.leader, w.self) == 0 && rd_bool(r))
			w.c.leader_lease = o->lease.id;
	}
	if (flags & 8) { /* a healthy running replica, candidates around it */
		w.pg.datadir = PGW_DATADIR_VALID;
		w.pg.running = w.pg.accepting = w.pg.in_recovery = true;
		for (int i = 0; i < w.c.nmembers; i++)
			if (rd_bool(r)) {
				snprintf(w.c.members[i].role, sizeof(w.c.members[i].role),
				         "replica");
				snprintf(w.c.members[i].state, sizeof(w.c.members[i].state),
				         "running");
			}
		snprintf(o->self_member.role, sizeof(o->self_member.role), "replica");
		snprintf(o->self_member.state, sizeof(o->self_member.state), "running");
		if (o->self_member.xlog_location < 0)
			o->self_member.xlog_location = (int64_t)rd_bits(r, 2);
	}
	if (flags & 16) /* etcd up, no shutdown */
		o->etcd_ok = true, o->cluster = &w.c, o->shutdown_requested = false;
}

static void random_obs(struct rd *r)
{
	struct pgw_obs *o = &w.o;
	int64_t t_send;

	memset(&w, 0, sizeof(w));
	/* the cluster */
	w.c.revision = (int64_t)rd_bits(r, 2);
	w.c.initialized = rd_pick(r, 4) != 0;
	rd_pool(r, w.c.sysid, sizeof(w.c.sysid), sysids, NPOOL(sysids));
	w.c.has_leader = rd_bool(r);
	if (w.c.has_leader)
		rd_pool(r, w.c.leader, sizeof(w.c.leader), names, NPOOL(names));
	w.c.nmembers =
	    rd_pick(r, 8) == 0 ? (int)rd_pick(r, PGW_MAX_MEMBERS + 1) : (int)rd_pick(r, 5);
	for (int i = 0; i < w.c.nmembers; i++)
		random_member(r, &w.c.members[i]);
	w.c.optime = rd_i64(r);
	w.c.has_config = rd_bool(r);

	/* the local PostgreSQL */
	w.pg.datadir = (enum pgw_datadir_state)rd_pick(r, 3);
	w.pg.running = rd_bool(r);
	w.pg.accepting = w.pg.running && rd_pick(r, 4) != 0;
	w.pg.in_recovery = rd_bool(r);
	w.pg.streaming = rd_bool(r);
	w.pg.timeline = (int)rd_pick(r, 5);
	switch (rd_pick(r, 3)) {
	case 0:
		w.pg.system_identifier = 0;
		break;
	case 1:
		w.pg.system_identifier = SYSID;
		break;
	default:
		w.pg.system_identifier = rd_bits(r, 8);
	}
	rd_pool(r, w.pg.primary_host, sizeof(w.pg.primary_host), hosts, NPOOL(hosts));
	w.pg.primary_port = rd_bool(r) ? 5432 : (int)rd_bits(r, 2);

	/* time and the lease: realistic monotonic figures (no 2^63 clocks) */
	o->now_ms = (int64_t)rd_bits(r, 5);
	o->margin_ms = (int64_t)(rd_bits(r, 2) % 40000);
	t_send = o->now_ms - (int64_t)(rd_bits(r, 3) % 200000) + 2000;
	switch (rd_pick(r, 5)) {
	case 0:
		break; /* no lease */
	case 1:
		pgw_lease_renewed(&o->lease, 111, t_send, 1 + (int)rd_pick(r, 60));
		break;
	case 2:
		pgw_lease_renewed(&o->lease, 222, t_send, 1 + (int)rd_pick(r, 60));
		break;
	default:
		pgw_lease_renewed(&o->lease, (int64_t)rd_bits(r, 2), t_send,
		                  1 + (int)rd_pick(r, 60));
	}
	switch (rd_pick(r, 4)) {
	case 0:
		w.c.leader_lease = o->lease.id;
		break;
	case 1:
		w.c.leader_lease = 111;
		break;
	case 2:
		w.c.leader_lease = 0;
		break;
	default:
		w.c.leader_lease = (int64_t)rd_bits(r, 2);
	}

	rd_pool(r, w.self, sizeof(w.self), names, NPOOL(names));
	o->self = w.self;
	o->shutdown_requested = rd_pick(r, 16) == 0;
	o->etcd_ok = rd_pick(r, 5) != 0;
	o->cluster = o->etcd_ok || rd_bool(r) ? &w.c : NULL;
	o->pg = &w.pg;
	o->cd_valid = rd_bool(r);
	o->cd.state = (enum pgw_cluster_state)rd_pick(r, 6);
	o->cd.system_identifier = rd_bool(r) ? SYSID : rd_bits(r, 8);
	o->cd.timeline = (int)rd_pick(r, 5);

	/* self as a candidate: usually its own (fresh) copy of its cluster entry */
	if (rd_pick(r, 4) != 0 && pgw_cluster_member(&w.c, w.self))
		o->self_member = *pgw_cluster_member(&w.c, w.self);
	else
		random_member(r, &o->self_member);
	snprintf(o->self_member.name, sizeof(o->self_member.name), "%s", w.self);

	/* maintenance mode and switchover/failover requests */
	w.c.paused = rd_pick(r, 8) == 0;
	w.c.history_timeline = (int)(int8_t)rd_bits(r, 1);
	memset(&w.c.failover, 0, sizeof(w.c.failover));
	if (rd_pick(r, 3) == 0) {
		w.c.failover.present = true;
		w.c.failover.malformed = rd_pick(r, 6) == 0;
		rd_pool(r, w.c.failover.leader, sizeof(w.c.failover.leader), names, NPOOL(names));
		rd_pool(r, w.c.failover.member, sizeof(w.c.failover.member), names, NPOOL(names));
		w.c.failover.scheduled_at = rd_bool(r) ? 0 : (double)rd_pick(r, 2000);
	}
	o->wall_now = (double)rd_pick(r, 2000);

	/* the leader record and the fence lock (pgwarden/leader, pgwarden/fence-lock) */
	memset(&w.c.last_leader, 0, sizeof(w.c.last_leader));
	if (rd_pick(r, 4) != 0) {
		w.c.last_leader.present = true;
		w.c.last_leader.malformed = rd_pick(r, 8) == 0;
		rd_pool(r, w.c.last_leader.member, sizeof(w.c.last_leader.member), names,
		        NPOOL(names));
		w.c.last_leader.lease = rd_i64(r);
		w.c.last_leader.released = rd_pick(r, 3) == 0;
		if (rd_pick(r, 3) == 0)
			rd_pool(r, w.c.last_leader.fenced_by, sizeof(w.c.last_leader.fenced_by),
			        names, NPOOL(names));
		w.c.last_leader.fenced_at = (double)rd_pick(r, 2000);
	}
	w.c.fence_locked = rd_pick(r, 4) == 0;
	rd_pool(r, w.c.fence_lock_holder, sizeof(w.c.fence_lock_holder), names, NPOOL(names));

	o->leader_optime = rd_i64(r);
	switch (rd_pick(r, 4)) {
	case 0:
		o->max_lag = 1048576;
		break;
	case 1:
		o->max_lag = 0;
		break;
	case 2:
		o->max_lag = INT64_MAX;
		break;
	default:
		o->max_lag = rd_i64(r);
	}
	o->nofailover = rd_pick(r, 4) == 0 || o->self_member.nofailover;
	o->watchdog_unusable = rd_pick(r, 8) == 0;
	o->fencing_required = rd_bool(r);
	o->fast_takeover_after_ms = rd_bool(r) ? 0 : (int64_t)rd_pick(r, 20000);
	o->leader_unreachable_ms = rd_bool(r) ? 0 : (int64_t)rd_pick(r, 40000);
	o->use_pg_rewind = rd_bool(r);
	o->rewind_failed = rd_bool(r);
	o->primary_down_since_ms = rd_bool(r) ? 0 : o->now_ms - (int64_t)(rd_bits(r, 3) % 1000000);
	o->primary_start_timeout_s = (int)rd_pick(r, 256) * 4;
	o->lost_leader_watchdog = rd_bool(r);
	o->unprotected_failover = rd_pick(r, 4) == 0;
	o->positions_after_rev = rd_bool(r) ? 0 : (int64_t)rd_pick(r, 64);
	o->leader_rev = rd_bool(r) ? 0 : (int64_t)rd_pick(r, 64);
	o->loop_wait_s = (int)rd_pick(r, 12);
	o->no_leader_for_ms = rd_bool(r) ? 0 : (int64_t)rd_pick(r, 64) * 500;
	o->replicatefrom = rd_bool(r) ? NULL : names[rd_pick(r, NPOOL(names))];
	o->check_timeline = rd_bool(r);
	o->nostream = rd_pick(r, 4) == 0;
	nudge(r);
}

/* ---- parsers ----------------------------------------------------------------- */

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static void check_member(const struct pgw_member *m, const char *where)
{
	if (!terminated(m->name, sizeof(m->name)) || !terminated(m->role, sizeof(m->role)) ||
	    !terminated(m->state, sizeof(m->state)) ||
	    !terminated(m->conn_host, sizeof(m->conn_host)) ||
	    !terminated(m->api_url, sizeof(m->api_url)) || !m->conn_host[0] || m->conn_port < 1 ||
	    m->conn_port > 65535) {
		fprintf(stderr, "INVARIANT VIOLATED: %s: member %s host '%s' port %d\n", where,
		        m->name, m->conn_host, m->conn_port);
		failures++;
#ifndef PGW_FUZZ_STANDALONE
		abort();
#endif
	}
}

static void fuzz_member_parse(struct rd *r)
{
	size_t len = r->n - r->i;
	char *buf = malloc(len ? len : 1); /* exactly len bytes: no NUL to lean on */
	struct pgw_member m;

	if (!buf)
		return;
	memcpy(buf, r->p + r->i, len);
	r->i = r->n;
	memset(&m, 0, sizeof(m));
	if (pgw_member_parse(buf, len, &m))
		check_member(&m, "pgw_member_parse");
	free(buf);
}

/* A member value: a template with random fields, or raw bytes. */
static void member_value(struct rd *r, char *buf, size_t cap)
{
	char host[32], role[24], state[32];

	if (rd_pick(r, 4) == 0) {
		rd_str(r, buf, cap);
		return;
	}
	rd_pool(r, host, sizeof(host), hosts, NPOOL(hosts));
	rd_pool(r, role, sizeof(role), roles, NPOOL(roles));
	rd_pool(r, state, sizeof(state), states, NPOOL(states));
	/* raw bytes in the strings may well break the JSON: that is the point */
	snprintf(buf, cap,
	         "{\"conn_url\":\"postgres://%s%s%s:%d/postgres\",\"role\":\"%s\","
	         "\"state\":\"%s\",\"xlog_location\":%" PRId64 ",\"timeline\":%d,%s"
	         "\"tags\":{\"nofailover\":%s,\"failover_priority\":%d}}",
	         strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
	         (int)rd_bits(r, 3) - 1000, role, state, rd_i64(r), (int)(int8_t)rd_bits(r, 1),
	         rd_bool(r) ? "\"replication_state\":\"streaming\"," : "",
	         rd_bool(r) ? "true" : "\"false\"", (int)(int8_t)rd_bits(r, 1));
}

static void fuzz_cluster_parse(struct rd *r)
{
	static const char *const keys[] = {"leader", "initialize", "status",   "history",
	                                   "config", "sync",       "failover", "members/"};
	static struct pgw_etcd_kv kvs[48];
	static char vals[48][512];
	static char keybuf[48][160];
	struct pgw_etcd_range range = {kvs, 0, 0};
	struct pgw_cluster *c = &w.c;
	const char *prefix = "/service/demo/";
	char *hist;

	range.n = rd_pick(r, 49);
	range.revision = (int64_t)rd_bits(r, 4);
	for (size_t i = 0; i < range.n; i++) {
		struct pgw_etcd_kv *kv = &kvs[i];
		unsigned k = rd_pick(r, NPOOL(keys) + 2);
		char name[PGW_NAME_MAX + 8];

		memset(kv, 0, sizeof(*kv));
		if (k < NPOOL(keys)) {
			rd_pool(r, name, sizeof(name), names, NPOOL(names));
			snprintf(keybuf[i], sizeof(keybuf[i]), "%s%s%s", prefix, keys[k],
			         k == NPOOL(keys) - 1 ? name : "");
		} else if (k == NPOOL(keys)) {
			snprintf(keybuf[i], sizeof(keybuf[i]), "/service/other/leader");
		} else {
			rd_str(r, keybuf[i], sizeof(keybuf[i]));
		}
		if (k == NPOOL(keys) - 1)
			member_value(r, vals[i], sizeof(vals[i]));
		else if (k == 2 && rd_bool(r))
			snprintf(vals[i], sizeof(vals[i]), "{\"optime\":%" PRId64 "}", rd_i64(r));
		else
			rd_str(r, vals[i], sizeof(vals[i]));
		kv->key = keybuf[i];
		kv->value = vals[i];
		kv->value_len = strlen(vals[i]);
		kv->mod_revision = (int64_t)rd_bits(r, 2);
		kv->lease = (int64_t)rd_pick(r, 4) * 111;
	}
	pgw_cluster_parse(&range, prefix, c);
	if (c->nmembers < 0 || c->nmembers > PGW_MAX_MEMBERS ||
	    !terminated(c->warnings, sizeof(c->warnings)) ||
	    !terminated(c->leader, sizeof(c->leader)) || !terminated(c->sysid, sizeof(c->sysid)) ||
	    (c->has_leader && !c->leader[0])) {
		fprintf(stderr, "INVARIANT VIOLATED: pgw_cluster_parse result\n");
		failures++;
#ifndef PGW_FUZZ_STANDALONE
		abort();
#endif
	}
	for (int i = 0; i < c->nmembers; i++)
		check_member(&c->members[i], "pgw_cluster_parse");

	/* the history we would write next is a JSON array ending with our line */
	hist = pgw_history_append(c->history, 3, rd_bits(r, 8), "r", "t", "node1");
	if (hist) {
		struct json_object *arr = json_tokener_parse(hist);

		if (!arr || !json_object_is_type(arr, json_type_array) ||
		    json_object_array_length(arr) < 1 ||
		    json_object_array_length(
		        json_object_array_get_idx(arr, json_object_array_length(arr) - 1)) != 5) {
			fprintf(stderr, "INVARIANT VIOLATED: history append: %s\n", hist);
			failures++;
#ifndef PGW_FUZZ_STANDALONE
			abort();
#endif
		}
		json_object_put(arr);
		free(hist);
	}

	/* and decide on what was parsed, with etcd reachable */
	w.o.etcd_ok = true;
	w.o.cluster = c;
	decide_and_check(&w.o);
	pgw_cluster_clear(c);
}

static void fuzz_url_and_roundtrip(struct rd *r)
{
	char url[300], host[256], h2[64];
	struct pgw_member_info mi = {0};
	struct pgw_member m;
	int port = 0;
	char *json;

	rd_str(r, url, sizeof(url));
	if (pgw_parse_conn_url(url, host, sizeof(host), &port) &&
	    (!host[0] || port < 1 || port > 65535)) {
		fprintf(stderr, "INVARIANT VIOLATED: conn_url %s -> '%s':%d\n", url, host, port);
		failures++;
#ifndef PGW_FUZZ_STANDALONE
		abort();
#endif
	}

	rd_pool(r, h2, sizeof(h2), hosts, NPOOL(hosts));
	if (!h2[0] || strpbrk(h2, "/?[]"))
		snprintf(h2, sizeof(h2), "h");
	mi.conn_host = h2;
	mi.conn_port = 1 + (int)(rd_bits(r, 2) % 65535);
	mi.api_host = "127.0.0.1";
	mi.api_port = 8008;
	mi.state = states[rd_pick(r, NPOOL(states))];
	mi.role = roles[rd_pick(r, NPOOL(roles))];
	mi.xlog_location = rd_i64(r);
	mi.receive_lsn = rd_i64(r);
	mi.replay_lsn = rd_i64(r);
	mi.timeline = (int)rd_pick(r, 9);
	mi.streaming = rd_bool(r);
	mi.nofailover = rd_bool(r);
	mi.noloadbalance = rd_bool(r);
	mi.failover_priority = (int)(int8_t)rd_bits(r, 1);
	json = pgw_member_json(&mi);
	if (!json)
		return;
	memset(&m, 0, sizeof(m));
	if (!pgw_member_parse(json, strlen(json), &m) || strcmp(m.conn_host, h2) != 0 ||
	    m.conn_port != mi.conn_port || strcmp(m.role, mi.role) != 0 ||
	    strcmp(m.state, mi.state) != 0 ||
	    m.xlog_location != (mi.xlog_location >= 0 ? mi.xlog_location : -1) ||
	    m.timeline != mi.timeline || m.streaming != mi.streaming ||
	    m.nofailover != mi.nofailover || m.noloadbalance != mi.noloadbalance ||
	    m.failover_priority != mi.failover_priority) {
		fprintf(stderr, "INVARIANT VIOLATED: member JSON round trip: %s\n", json);
		failures++;
#ifndef PGW_FUZZ_STANDALONE
		abort();
#endif
	}
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = {data, size, 0};

	random_obs(&r);
	decide_and_check(&w.o);
	switch (rd_pick(&r, 4)) {
	case 1:
		fuzz_member_parse(&r);
		break;
	case 2:
		fuzz_cluster_parse(&r);
		break;
	case 3:
		fuzz_url_and_roundtrip(&r);
		break;
	default:
		break;
	}
	return 0;
}

#ifdef PGW_FUZZ_STANDALONE
/* ---- plain driver: fixed-seed pseudo-random inputs --------------------------- */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	static uint8_t buf[4096];
	const char *env = getenv("PGW_RANDOM_ITERATIONS");
	unsigned long n = env ? strtoul(env, NULL, 10) : 200000, passed = 0;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	if (argc > 1)
		seed = strtoull(argv[1], NULL, 0);
	for (unsigned long it = 0; it < n; it++) {
		size_t len = (size_t)(xorshift(&seed) % sizeof(buf));
		unsigned long before = failures;

		for (size_t k = 0; k < len; k += 8) {
			uint64_t v = xorshift(&seed);

			memcpy(buf + k, &v, len - k < 8 ? len - k : 8);
		}
		LLVMFuzzerTestOneInput(buf, len);
		if (failures == before)
			passed++;
		else if (failures - before > 0 && failures <= 5)
			fprintf(stderr, "  (iteration %lu)\n", it);
	}
	if (getenv("PGW_RANDOM_STATS"))
		for (size_t i = 0;
		     i < sizeof(rule_hits) / sizeof(rule_hits[0]) && rule_hits[i].rule; i++)
			printf("  %-26s %lu\n", rule_hits[i].rule, rule_hits[i].n);
	printf("random: %lu passed, %lu failed\n", passed, n - passed);
	return passed == n ? 0 : 1;
}
#endif
