/*
 * sim.c - deterministic simulation of whole pgwarden clusters (make sim).
 *
 * From one seed, 3 or 5 nodes run the daemon's own decision code (step.c and the
 * table in decide.c, linked unchanged) against simulated etcd, PostgreSQL,
 * BMCs, watchdogs, a network and an operator, on a simulated clock, while faults
 * are injected at random.  The executor below mirrors daemon/ha.c's cycle (rule 7
 * check, renew, observe, publish, read, step, act); only I/O is replaced.
 *
 * After every tick it checks:
 *   S1  never two nodes accepting writes at one instant (with
 *       failover.unprotected on, a breach is reported as expected, not failed);
 *   S3  every promotion after an unplanned loss follows a released key, a fence
 *       whose power-off really happened, an armed watchdog on the lost leader, an
 *       operator's failover, or the opt-in;
 *   durability: a promoted node is not behind another eligible node by more than
 *       maximum_lag_on_failover;
 *   S2  with synchronous_mode on (3 seeds in 8, chosen apart from the seed's
 *       main random stream), no commit the primary acknowledged is missing on a node
 *       it promotes (a commit is acknowledged once every standby named in the
 *       primary's synchronous_standby_names has it, or at once when none is named);
 *   VIP (the virtual IP, issue 15): never two powered nodes holding the address at
 *       one instant (with failover.unprotected on, expected like S1), and a node
 *       whose daemon runs its loop holds it only as primary, with the leader key, before
 *       D - S of its lease;
 *   liveness: once no fault is active (a dead node the design covers is allowed)
 *       a writable primary holding the leader key exists within liveness_bound_ms().
 *
 * A violation prints the seed, the configuration and the last events of every
 * node in time order; `sim --seed N` replays it exactly (add -v for every event).
 *
 *   sim [--seeds N] [--from S] [--seed S] [--nodes 3|5] [--quiet] [-v]
 *
 * Exit 0 when every seed ran clean; the last line reads "sim: N passed, M failed".
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "decide.h"
#include "lease.h"
#include "log.h"
#include "pg.h"
#include "requests.h"
#include "step.h"
#include "sync.h"
#include "wdguard.h"

#define MAXN             5
#define TICK_MS          50
#define WALL_EPOCH       1800000000.0 /* simulated unix time at t = 0 */
#define WRITE_RATE       4000         /* WAL bytes a primary writes per tick (80 kB/s) */
#define MAX_LAG          1048576
#define BOOT_MS          5000
#define KEEPER_QUIET_MS  1000 /* daemon/wdkeeper.c: no possible writer this long */
#define PG_START_MS      1000
#define RESTART_MS       5000 /* systemd RestartSec */
#define ETCD_ELECTION_MS 1000 /* etcd electing a leader when quorum is back */

/* ---- deterministic randomness ------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static int64_t rnd_in(int64_t lo, int64_t hi) /* [lo, hi] */
{
	return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static bool chance(int percent)
{
	return (int)(rnd() % 100) < percent;
}

/* ---- the world ------------------------------------------------------------------ */

struct sim_cfg {
	int nodes;
	int ttl, loop_wait, retry_timeout, margin;
	bool fencing;        /* fencing.mode required */
	int fence_timeout_s; /* fencing.timeout */
	int fast_takeover_s; /* 0 off */
	int wd_mode;         /* 0 off, 1 automatic, 2 required */
	bool unprotected;    /* failover.unprotected */
	bool use_rewind;
	bool sync, strict; /* synchronous_mode, synchronous_mode_strict */
};

struct lease_e {
	int64_t id;
	int64_t expires;
	bool live;
};

struct member_key {
	bool present;
	int64_t lease;
	int64_t rev;
	struct pgw_member m;
};

struct etcd {
	int64_t rev;
	struct lease_e leases[256];
	int nleases;
	int64_t next_id;
	bool leader;
	int64_t leader_gone_rev; /* the revision of the leader key's last deletion */
	char leader_name[PGW_NAME_MAX];
	int64_t leader_lease, leader_rev;
	int64_t leader_since; /* when the key was taken (simulated ms) */
	struct member_key members[MAXN];
	bool initialized;
	char sysid[32];
	int64_t optime;
	bool paused;
	struct pgw_failover failover;
	struct pgw_leader_record record;
	bool lock;
	char lock_holder[PGW_NAME_MAX];
	int64_t lock_lease;
	struct pgw_sync_key sync;
	/* faults */
	bool down;
	int64_t slow_ms;
};

struct pgsim {
	bool data;
	bool running, accepting, in_recovery;
	int64_t accept_at;
	int tl;
	int64_t lsn;
	char upstream[PGW_NAME_MAX];
	bool streaming;
	enum pgw_cluster_state cs;           /* control file state while stopped */
	char sync_names[PGW_SYNC_NAMES_MAX]; /* synchronous_standby_names in effect */
};

struct node {
	char name[PGW_NAME_MAX];
	int idx;
	/* machine */
	bool powered;
	int64_t boot_at; /* powered back on at (0: stays off) */
	bool frozen;
	/* daemon */
	bool alive;
	int64_t restart_at; /* systemd restarts it at (0: not) */
	bool stopped;       /* SIGSTOP */
	struct pgw_node_state st;
	struct pgw_lease lease;
	struct pgw_cluster cluster;
	bool etcd_ok;
	int64_t next_cycle, busy_until;
	char last_rule[40];
	/* an action that completes later */
	enum pgw_action_kind pending;
	char pending_target[PGW_NAME_MAX];
	/* PostgreSQL */
	struct pgsim pg;
	/* watchdog */
	bool wd_broken;
	bool wd_armed;
	int wd_W;
	int wd_full;    /* the W of the arming, before any bound */
	bool led_armed; /* its watchdog was armed the last time it held the leader key */
	int64_t wd_last_pet;
	bool keeper;             /* the keeper holds the device for a dead daemon */
	int64_t keeper_quiet_at; /* ... and PostgreSQL could not write since (0: it could) */
	/* BMC */
	bool bmc_down;
	/* network */
	bool cut_etcd, cut_peers;
	int loss_pct;      /* its link to etcd drops this share of requests or their answers */
	int64_t slow_ms;   /* ... and delays each answer by this much */
	bool bmc_badcreds; /* its BMC refuses the fencers' credentials */
	int request;       /* an operator's POST: 1 /restart, 2 /reinitialize (0 none) */
	bool nofailover;
	int64_t repl_lag; /* synchronous_mode seeds: its standby stays this far behind */
	bool vip;         /* the virtual IP is on its interface (lost with power only) */
};

struct world {
	struct sim_cfg cfg;
	uint64_t seed;
	int64_t now;
	struct etcd e;
	struct node n[MAXN];
	int max_tl;
	int64_t fork_lsn[4096]; /* timeline t began at fork_lsn[t] */
	int parent_tl[4096];    /* ... forking off timeline parent_tl[t] (not always t - 1) */
	/* fault bookkeeping */
	int active_faults;
	int64_t last_fault;
	int64_t no_primary_since;
	bool manual_failover; /* an operator failover named the promoting node */
	/* results */
	int violations;
	int s1_expected;  /* S1 breaches with failover.unprotected on */
	int vip_expected; /* two VIP holders with failover.unprotected on */
	int64_t promotions, fences;
	int64_t stale_loss; /* promotions behind a replica whose key was stale */
	int64_t leader_pos; /* the highest position a leader published */
	/* S2: the latest commit a primary acknowledged, as (timeline, position) */
	int acked_tl;
	int64_t acked_lsn;
};

static struct world W;
static bool verbose, quiet;

/* ---- event log ---------------------------------------------------------------------- */

#define EVLOG 400
static char evlog[EVLOG][200];
static int evpos, evcount;

static void ev(const struct node *nd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ev(const struct node *nd, const char *fmt, ...)
{
	char *p = evlog[evpos];
	int k;
	va_list ap;

	k = snprintf(p, sizeof(evlog[0]), "%8.2f %-6s ", W.now / 1000.0, nd ? nd->name : "world");
	va_start(ap, fmt);
	vsnprintf(p + k, sizeof(evlog[0]) - (size_t)k, fmt, ap);
	va_end(ap);
	if (verbose)
		printf("%s\n", p);
	evpos = (evpos + 1) % EVLOG;
	if (evcount < EVLOG)
		evcount++;
}

static void dump_cfg(void)
{
	const struct sim_cfg *c = &W.cfg;

	printf("  config: %d nodes, ttl %d, loop_wait %d, retry_timeout %d, S %d, fencing %s "
	       "(timeout %d s, fast takeover %d s), watchdog %s, unprotected %s, rewind %s, "
	       "synchronous_mode %s\n",
	       c->nodes, c->ttl, c->loop_wait, c->retry_timeout, c->margin,
	       c->fencing ? "required" : "off", c->fence_timeout_s, c->fast_takeover_s,
	       c->wd_mode == 2 ? "required"
	       : c->wd_mode    ? "automatic"
	                       : "off",
	       c->unprotected ? "on" : "off", c->use_rewind ? "on" : "off",
	       c->sync ? (c->strict ? "strict" : "on") : "off");
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void violation(const char *fmt, ...)
{
	va_list ap;

	W.violations++;
	if (W.violations > 1 || quiet)
		return;
	printf("VIOLATION seed %" PRIu64 " at %.2f s: ", W.seed, W.now / 1000.0);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	dump_cfg();
	printf("  last events (replay: sim --seed %" PRIu64 " -v):\n", W.seed);
	for (int i = 0; i < evcount; i++)
		printf("    %s\n", evlog[(evpos - evcount + i + EVLOG) % EVLOG]);
}

/* ---- etcd ----------------------------------------------------------------------------- */

static struct node *node_named(const char *name)
{
	for (int i = 0; i < W.cfg.nodes; i++)
		if (strcmp(W.n[i].name, name) == 0)
			return &W.n[i];
	return NULL;
}

static struct lease_e *lease_get(int64_t id)
{
	for (int i = 0; i < W.e.nleases; i++)
		if (W.e.leases[i].id == id && W.e.leases[i].live)
			return &W.e.leases[i];
	return NULL;
}

static void wake_all(void)
{
	for (int i = 0; i < W.cfg.nodes; i++)
		if (W.n[i].next_cycle > W.now + 100)
			W.n[i].next_cycle = W.now + 100; /* the leader-key watch fires */
}

static void drop_leader(const char *why)
{
	ev(NULL, "etcd: leader key %s (%s) deleted: %s", W.e.leader_name,
	   W.e.leader_lease ? "leased" : "-", why);
	W.e.leader = false;
	W.e.rev++;
	W.e.leader_gone_rev = W.e.rev;
	wake_all();
}

static void lease_revoke(int64_t id)
{
	struct lease_e *l = lease_get(id);

	if (!l)
		return;
	l->live = false;
	if (W.e.leader && W.e.leader_lease == id)
		drop_leader("its lease ended");
	for (int i = 0; i < MAXN; i++)
		if (W.e.members[i].present && W.e.members[i].lease == id)
			W.e.members[i].present = false;
	if (W.e.lock && W.e.lock_lease == id)
		W.e.lock = false;
}

static void etcd_expire(void)
{
	if (W.e.down)
		return; /* without quorum there is no etcd leader to expire leases */
	for (int i = 0; i < W.e.nleases; i++)
		if (W.e.leases[i].live && W.e.leases[i].expires <= W.now)
			lease_revoke(W.e.leases[i].id);
	/* compact */
	int k = 0;
	for (int i = 0; i < W.e.nleases; i++)
		if (W.e.leases[i].live)
			W.e.leases[k++] = W.e.leases[i];
	W.e.nleases = k;
}

/* Can this node's request reach etcd within the operation timeout? */
static bool etcd_reach(const struct node *nd)
{
	if (W.e.down || nd->cut_etcd ||
	    W.e.slow_ms + nd->slow_ms >= (int64_t)W.cfg.retry_timeout * 1000)
		return false;
	return nd->loss_pct == 0 || (int)(rnd() % 100) >= nd->loss_pct;
}

/* A lossy link may lose the answer of a request etcd applied: the client sees a
 * failure, etcd has the change (a create that won, a keepalive that renewed). */
static bool answer_lost(const struct node *nd)
{
	return nd->loss_pct > 0 && (int)(rnd() % 100) < nd->loss_pct / 2;
}

/* ---- PostgreSQL ------------------------------------------------------------------------- */

static bool pg_writable(const struct node *nd)
{
	return nd->powered && !nd->frozen && nd->pg.running && nd->pg.accepting &&
	       !nd->pg.in_recovery;
}

static void pg_stop(struct node *nd, bool immediate)
{
	if (!nd->pg.running)
		return;
	/* a fast shutdown of a primary waits until every connected standby has flushed the
	 * WAL up to the shutdown checkpoint (walsender's WalSndDone) */
	if (!immediate && !nd->pg.in_recovery)
		for (int i = 0; i < W.cfg.nodes; i++) {
			struct node *r = &W.n[i];

			if (r != nd && r->pg.running && r->pg.in_recovery && r->pg.streaming &&
			    strcmp(r->pg.upstream, nd->name) == 0 && r->pg.tl == nd->pg.tl &&
			    r->pg.lsn < nd->pg.lsn)
				r->pg.lsn = nd->pg.lsn;
		}
	nd->pg.running = nd->pg.accepting = nd->pg.streaming = false;
	if (nd->pg.in_recovery)
		nd->pg.cs = immediate ? PGW_CS_IN_ARCHIVE_RECOVERY : PGW_CS_SHUT_DOWN_IN_RECOVERY;
	else
		nd->pg.cs = immediate ? PGW_CS_IN_PRODUCTION : PGW_CS_SHUT_DOWN;
	ev(nd, "pg: stopped (%s)", immediate ? "immediate" : "fast");
}

static void pg_start(struct node *nd, bool replica, const char *upstream)
{
	if (!nd->pg.data)
		return;
	nd->pg.running = true;
	nd->pg.accepting = false;
	nd->pg.accept_at = W.now + PG_START_MS;
	nd->pg.in_recovery = replica;
	snprintf(nd->pg.upstream, sizeof(nd->pg.upstream), "%s", replica ? upstream : "");
	ev(nd, "pg: started as %s%s%s", replica ? "replica" : "primary",
	   replica && upstream[0] ? " of " : "", replica ? upstream : "");
}

/* pg_stat_replication of a primary: the nodes streaming from it. */
static void replication_rows(const struct node *nd, struct pgw_pg_state *ps)
{
	snprintf(ps->sync_names, sizeof(ps->sync_names), "%s", nd->pg.sync_names);
	for (int i = 0; i < W.cfg.nodes && ps->nreplication < PGW_PG_MAX_REPLICATION; i++) {
		const struct node *o = &W.n[i];
		struct pgw_pg_replication *r = &ps->replication[ps->nreplication];

		if (o == nd || !o->powered || o->frozen || !o->pg.streaming ||
		    strcmp(o->pg.upstream, nd->name) != 0)
			continue;
		memset(r, 0, sizeof(*r));
		snprintf(r->application_name, sizeof(r->application_name), "%s", o->name);
		snprintf(r->state, sizeof(r->state), "streaming");
		snprintf(r->sync_state, sizeof(r->sync_state), "%s",
		         strcmp(nd->pg.sync_names, "*") == 0 ||
		                 pgw_sync_names_list(nd->pg.sync_names, o->name)
		             ? "sync"
		             : "async");
		r->flush_lsn = (uint64_t)o->pg.lsn;
		ps->nreplication++;
	}
}

static void observe(const struct node *nd, struct pgw_pg_state *ps)
{
	memset(ps, 0, sizeof(*ps));
	ps->datadir = nd->pg.data ? PGW_DATADIR_VALID : PGW_DATADIR_EMPTY;
	ps->running = nd->pg.running;
	ps->accepting = nd->pg.running && nd->pg.accepting;
	if (ps->accepting) {
		ps->in_recovery = nd->pg.in_recovery;
		ps->timeline = nd->pg.tl;
		ps->system_identifier = 7000000000000000001ULL;
		if (nd->pg.in_recovery) {
			ps->received_lsn = ps->replayed_lsn = (uint64_t)nd->pg.lsn;
			ps->streaming = nd->pg.streaming;
			if (nd->pg.upstream[0]) {
				snprintf(ps->primary_host, sizeof(ps->primary_host), "h-%s",
				         nd->pg.upstream);
				ps->primary_port = 5432;
			}
		} else {
			ps->wal_lsn = (uint64_t)nd->pg.lsn;
			ps->flush_lsn = (uint64_t)nd->pg.lsn;
			if (W.cfg.sync)
				replication_rows(nd, ps);
		}
	}
	if (!nd->pg.running && nd->pg.data) {
		ps->cd_valid = true;
		ps->cd.state = nd->pg.cs;
		ps->cd.timeline = nd->pg.tl;
		ps->cd.system_identifier = 7000000000000000001ULL;
		ps->cd.checkpoint_lsn = (uint64_t)nd->pg.lsn;
	}
}

/* Where utl's line of descent left timeline tl: INT64_MAX when utl is tl, -1 when tl is
 * not one of its ancestors. */
static int64_t left_at(int tl, int utl)
{
	if (utl == tl)
		return INT64_MAX;
	for (int t = utl; t > tl; t = W.parent_tl[t])
		if (W.parent_tl[t] == tl)
			return W.fork_lsn[t];
	return -1;
}

/* The last WAL position timelines tl1 and tl2 share (pg_rewind's divergence point). */
static int64_t shared_until(int tl1, int tl2)
{
	int64_t mine = INT64_MAX; /* where tl1's line left the ancestor a */

	for (int a = tl1; a >= 1; a = W.parent_tl[a]) {
		int64_t theirs = left_at(a, tl2);

		if (theirs >= 0)
			return mine < theirs ? mine : theirs;
		mine = W.fork_lsn[a];
	}
	return 0;
}

/* Can a replica at (tl, lsn) stream from a server on timeline utl?  Only if tl is an
 * ancestor of utl and the replica is not past the point where utl's line left tl. */
static bool tl_compatible(int tl, int64_t lsn, int utl)
{
	return left_at(tl, utl) >= lsn;
}

static void replicate(struct node *nd)
{
	struct node *u;

	nd->pg.streaming = false;
	if (!nd->pg.running || !nd->pg.accepting || !nd->pg.in_recovery || !nd->pg.upstream[0])
		return;
	u = node_named(nd->pg.upstream);
	if (!u || !u->powered || u->frozen || !u->pg.running || !u->pg.accepting || u == nd ||
	    nd->cut_peers || u->cut_peers)
		return;
	if (u->pg.in_recovery && u->pg.tl == nd->pg.tl && u->pg.lsn < nd->pg.lsn)
		return;
	if (!tl_compatible(nd->pg.tl, nd->pg.lsn, u->pg.tl))
		return;
	nd->pg.tl = u->pg.tl;
	{
		int64_t target = u->pg.lsn - (int64_t)(rnd() % (3 * WRITE_RATE)) - nd->repl_lag;

		if (target > nd->pg.lsn)
			nd->pg.lsn = target;
	}
	nd->pg.streaming = true;
}

/* ---- machine, watchdog, BMC --------------------------------------------------------------- */

static void power_off(struct node *nd, const char *why, int64_t back_after)
{
	if (!nd->powered)
		return;
	if (nd->pg.running)
		pg_stop(nd, true);
	nd->powered = false;
	nd->vip = false; /* addresses live in RAM */
	nd->alive = false;
	nd->frozen = false;
	nd->stopped = false;
	nd->wd_armed = false;
	nd->keeper = false;
	nd->keeper_quiet_at = 0;
	nd->boot_at = back_after > 0 ? W.now + back_after : 0;
	ev(nd, "machine: power off (%s)", why);
}

/*
 * pgw_pg_unmanaged_writer: a postmaster without standby.signal, or with a promotion asked
 * for and not finished, may accept writes.
 */
static bool pg_may_write(const struct node *nd)
{
	return nd->pg.running && (!nd->pg.in_recovery || nd->pending == PGW_ACT_PROMOTE);
}

/* The keeper closes the device: a close without the magic 'V' pings it once. */
static void keeper_release(struct node *nd)
{
	nd->keeper = false;
	nd->keeper_quiet_at = 0;
	if (nd->wd_armed)
		nd->wd_last_pet = W.now;
	ev(nd, "watchdog keeper: released the device");
}

static void daemon_start(struct node *nd)
{
	nd->alive = true;
	nd->stopped = false;
	pgw_state_init(&nd->st);
	memset(&nd->lease, 0, sizeof(nd->lease));
	nd->next_cycle = W.now + 200;
	nd->busy_until = 0;
	nd->pending = PGW_ACT_NONE;
	ev(nd, "daemon: started");
	/* main.c: a leftover virtual IP goes first (a new daemon holds no lease) */
	if (nd->vip) {
		nd->vip = false;
		ev(nd, "vip: leftover removed at start");
	}
	/* main.c: a primary left by the dead daemon is stopped before the device is opened
	 * (pgw_pg_stop_leftover_primary) */
	if (W.cfg.wd_mode != 0 && pg_may_write(nd)) {
		ev(nd, "daemon: leftover primary stopped before opening the watchdog");
		pg_stop(nd, true);
	}
	/* its keeper lets go once PostgreSQL cannot write; the open waits for that */
	if (nd->keeper)
		keeper_release(nd);
	/* the watchdog driver disables the device right after opening it */
	nd->wd_armed = false;
}

static void power_on(struct node *nd)
{
	if (nd->powered)
		return;
	nd->powered = true;
	nd->boot_at = 0;
	ev(nd, "machine: power on");
	daemon_start(nd);
	nd->next_cycle = W.now + BOOT_MS;
}

static void daemon_kill(struct node *nd, int64_t restart_after)
{
	if (!nd->alive)
		return;
	nd->alive = false;
	nd->stopped = false;
	/* the keeper holds the device (daemon/wdkeeper.c): the death closes nothing */
	if (W.cfg.wd_mode != 0 && !nd->wd_broken)
		nd->keeper = true;
	nd->restart_at = restart_after > 0 ? W.now + restart_after : 0;
	ev(nd, "daemon: killed%s", restart_after > 0 ? "" : " (no restart)");
}

/* A dead daemon's keeper lets go after a second in which PostgreSQL could not write. */
static void keeper_check(struct node *nd)
{
	if (!nd->keeper || !nd->powered || nd->frozen || nd->alive)
		return;
	if (pg_may_write(nd)) {
		nd->keeper_quiet_at = 0;
	} else if (!nd->keeper_quiet_at) {
		nd->keeper_quiet_at = W.now;
	} else if (W.now - nd->keeper_quiet_at > KEEPER_QUIET_MS) {
		keeper_release(nd);
	}
}

static void wd_check(struct node *nd)
{
	if (nd->powered && nd->wd_armed && W.now >= nd->wd_last_pet + (int64_t)nd->wd_W * 1000) {
		ev(nd, "watchdog: fired (W %d s, last pet %.2f)", nd->wd_W,
		   nd->wd_last_pet / 1000.0);
		power_off(nd, "watchdog reset", BOOT_MS);
	}
}

/* ---- the executor (mirrors daemon/ha.c) -------------------------------------------------------
 */

static int64_t margin_ms(void)
{
	return (int64_t)W.cfg.margin * 1000;
}

static bool wd_arm(struct node *nd, int ttl)
{
	int w = pgw_wdguard_timeout(ttl, W.cfg.margin, W.cfg.loop_wait);

	if (W.cfg.wd_mode == 0)
		return true;
	if (nd->wd_broken || w <= 0)
		return W.cfg.wd_mode != 2;
	if (!nd->wd_armed) {
		nd->wd_armed = true;
		nd->wd_last_pet = W.now;
		nd->wd_W = nd->wd_full = w;
		ev(nd, "watchdog: armed, W %d s", w);
	} else if (w != nd->wd_full && nd->wd_W == nd->wd_full) {
		nd->wd_W = nd->wd_full = w;
	}
	return true;
}

static void wd_idle(struct node *nd)
{
	if (nd->wd_armed)
		ev(nd, "watchdog: disarmed");
	nd->wd_armed = false;
}

static void renew(struct node *nd)
{
	int64_t t_send = W.now, lat = W.e.slow_ms + nd->slow_ms;

	int64_t id;

	if (nd->lease.id != 0 && t_send >= nd->lease.deadline_ms)
		pgw_lease_lapse(&nd->lease);
	if (!etcd_reach(nd))
		return;
	id = pgw_lease_to_renew(&nd->lease);
	if (id != 0 && !lease_get(id))
		pgw_lease_lost(&nd->lease); /* gone in etcd: grant a new one (ha_renew_lease) */
	else if (id != 0) {
		lease_get(id)->expires = W.now + lat + (int64_t)W.cfg.ttl * 1000;
		if (answer_lost(nd))
			return; /* renewed in etcd, unknown here: D stays where it was */
		if (nd->lease.id == 0)
			ev(nd, "etcd: lapsed lease %" PRId64 " is still alive: renewed", id);
		nd->lease.id = id;
		nd->lease.ttl_s = W.cfg.ttl;
	}
	if (nd->lease.id == 0) {
		struct lease_e *l = &W.e.leases[W.e.nleases++];

		l->id = ++W.e.next_id;
		l->live = true;
		l->expires = W.now + lat + (int64_t)W.cfg.ttl * 1000;
		if (answer_lost(nd))
			return; /* a lease nobody knows of: it expires by itself */
		nd->lease.id = l->id;
		nd->lease.ttl_s = W.cfg.ttl;
	}
	pgw_lease_renewed(&nd->lease, nd->lease.id, t_send, nd->lease.ttl_s);
	if (nd->wd_armed && pgw_lease_may_pet(t_send, W.now + lat, margin_ms())) {
		nd->wd_last_pet = W.now + lat;
		nd->wd_W = nd->wd_full; /* a bound lowered it: back to the full W */
	}
}

/* ha.c ha_cap_lease: writes stop before the armed watchdog can fire */
static void cap_lease(struct node *nd)
{
	pgw_lease_cap_to_watchdog(&nd->lease,
	                          nd->wd_armed ? nd->wd_last_pet + (int64_t)nd->wd_W * 1000 : 0,
	                          margin_ms(), PGW_WD_STOP_LEAD_MS);
}

static void fill_member(const struct node *nd, const struct pgw_pg_state *ps, struct pgw_member *m)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", nd->name);
	snprintf(m->role, sizeof(m->role), "%s", pgw_pg_role_name(ps));
	snprintf(m->state, sizeof(m->state), "%s", pgw_pg_state_name(ps));
	m->xlog_location = pgw_pg_wal_position(ps);
	m->timeline = ps->timeline;
	snprintf(m->conn_host, sizeof(m->conn_host), "h-%s", nd->name);
	m->conn_port = 5432;
	snprintf(m->api_url, sizeof(m->api_url), "http://h-%s:8008/patroni", nd->name);
	m->nofailover = nd->nofailover;
	m->failover_priority = 1;
	m->streaming = nd->st.streamed;
	m->watchdog_blocked = W.cfg.wd_mode == 2 && nd->wd_broken;
	m->watchdog_armed = nd->wd_armed;
}

static bool holds_key(const struct node *nd)
{
	return W.e.leader && strcmp(W.e.leader_name, nd->name) == 0 &&
	       W.e.leader_lease == nd->lease.id && nd->lease.id != 0;
}

static void publish_member(struct node *nd, const struct pgw_pg_state *ps)
{
	struct member_key *k = &W.e.members[nd->idx];

	if (nd->lease.id == 0 || !etcd_reach(nd) || !lease_get(nd->lease.id))
		return;
	fill_member(nd, ps, &k->m);
	k->present = true;
	k->lease = nd->lease.id;
	k->rev = ++W.e.rev;
	/* the watch of a candidate waiting for fresh positions fires (ha.c watch_fires) */
	for (int i = 0; i < W.cfg.nodes; i++)
		if (&W.n[i] != nd && strcmp(W.n[i].last_rule, "positions-stale") == 0 &&
		    W.n[i].next_cycle > W.now + 100)
			W.n[i].next_cycle = W.now + 100;
	k->m.lease = nd->lease.id;
	k->m.mod_revision = k->rev;
	if (holds_key(nd) && k->m.xlog_location > W.leader_pos)
		W.leader_pos = k->m.xlog_location;
}

static void read_cluster(struct node *nd)
{
	struct pgw_cluster *c = &nd->cluster;

	nd->etcd_ok = false;
	if (!etcd_reach(nd))
		return;
	memset(c, 0, sizeof(*c));
	c->revision = W.e.rev;
	c->initialized = W.e.initialized;
	snprintf(c->sysid, sizeof(c->sysid), "%s", W.e.sysid);
	c->has_leader = W.e.leader;
	if (W.e.leader) {
		snprintf(c->leader, sizeof(c->leader), "%s", W.e.leader_name);
		c->leader_lease = W.e.leader_lease;
		c->leader_mod_revision = W.e.leader_rev;
	}
	for (int i = 0; i < MAXN; i++)
		if (W.e.members[i].present)
			c->members[c->nmembers++] = W.e.members[i].m;
	c->optime = W.e.optime;
	/* the history key, one row per promotion: [the timeline it forked off, where] */
	for (int t = W.max_tl > PGW_FORKS_MAX ? W.max_tl - PGW_FORKS_MAX + 1 : 2; t <= W.max_tl;
	     t++) {
		c->forks[c->nforks].timeline = W.parent_tl[t];
		c->forks[c->nforks++].lsn = (uint64_t)W.fork_lsn[t];
	}
	c->history_rows = W.max_tl > 0 ? W.max_tl - 1 : 0;
	if (!W.e.leader)
		c->leader_gone_rev = W.e.leader_gone_rev; /* the watch saw the deletion */
	c->max_lag = MAX_LAG;
	c->paused = W.e.paused;
	c->failover = W.e.failover;
	c->last_leader = W.e.record;
	c->fence_locked = W.e.lock;
	snprintf(c->fence_lock_holder, sizeof(c->fence_lock_holder), "%s", W.e.lock_holder);
	c->sync_conf =
	    (struct pgw_sync_conf){.mode = W.cfg.sync, .strict = W.cfg.strict, .count = 1};
	c->sync = W.e.sync;
	pgw_cluster_derive(c);
	nd->etcd_ok = true;
}

static void build_obs(struct node *nd, const struct pgw_pg_state *ps, struct pgw_obs *o)
{
	struct pgw_member *s = &o->self_member;

	memset(o, 0, sizeof(*o));
	o->now_ms = W.now;
	o->wall_now = WALL_EPOCH + W.now / 1000.0;
	o->self = nd->name;
	o->lease = nd->lease;
	o->margin_ms = margin_ms();
	o->watchdog_unusable = W.cfg.wd_mode == 2 && nd->wd_broken;
	o->fencing_required = W.cfg.fencing;
	o->fast_takeover_after_ms = (int64_t)W.cfg.fast_takeover_s * 1000;
	o->etcd_ok = nd->etcd_ok;
	o->cluster = &nd->cluster;
	o->pg = ps;
	o->cd_valid = ps->cd_valid;
	o->cd = ps->cd;
	fill_member(nd, ps, s);
	s->watchdog_blocked = o->watchdog_unusable;
	o->max_lag = MAX_LAG;
	o->nofailover = nd->nofailover;
	o->use_pg_rewind = W.cfg.use_rewind;
	o->primary_start_timeout_s = 300;
	o->unprotected_failover = W.cfg.unprotected;
	o->loop_wait_s = W.cfg.loop_wait;
}

static void write_record(const struct node *nd, bool released)
{
	memset(&W.e.record, 0, sizeof(W.e.record));
	W.e.record.present = true;
	snprintf(W.e.record.member, sizeof(W.e.record.member), "%s", nd->name);
	W.e.record.lease = nd->lease.id;
	if (released && W.e.leader && strcmp(W.e.leader_name, nd->name) == 0)
		W.e.record.lease = W.e.leader_lease; /* ha_act.c: the lease the key was on */
	W.e.record.released = released;
	snprintf(W.e.record.bmc_address, sizeof(W.e.record.bmc_address), "bmc-%s", nd->name);
	W.e.record.watchdog_armed = nd->wd_armed;
	W.e.record.watchdog_timeout = nd->wd_armed ? nd->wd_W : 0;
	W.e.record.mod_revision = ++W.e.rev;
}

static bool take_key(struct node *nd)
{
	if (!etcd_reach(nd) || W.e.leader || !lease_get(nd->lease.id))
		return false;
	W.e.leader = true;
	snprintf(W.e.leader_name, sizeof(W.e.leader_name), "%s", nd->name);
	W.e.leader_lease = nd->lease.id;
	W.e.leader_since = W.now;
	W.e.leader_rev = ++W.e.rev;
	write_record(nd, false);
	ev(nd, "etcd: took the leader key (lease %" PRId64 ")", nd->lease.id);
	wake_all();
	if (answer_lost(nd)) {
		ev(nd, "etcd: the answer to the leader key's creation was lost");
		return false;
	}
	return true;
}

static void give_up_key(struct node *nd)
{
	if (!etcd_reach(nd) || !W.e.leader || strcmp(W.e.leader_name, nd->name) != 0)
		return;
	W.e.leader = false;
	write_record(nd, true);
	W.e.leader_gone_rev = W.e.rev; /* one transaction: the record's revision */
	ev(nd, "etcd: released the leader key");
	wake_all();
}

/* The S3 and durability checks, at the moment a node starts accepting writes after it
 * took the key from a lost leader. */
static void check_promotion(const struct node *nd)
{
	const struct pgw_leader_record *r = &W.e.record;
	const struct node *old;

	W.promotions++;
	/* an operator's failover to a named member is the operator's choice of data, and
	 * failover.unprotected lets the old leader write on beside the new one */
	for (int i = 0; i < W.cfg.nodes && !W.manual_failover && !W.cfg.unprotected; i++) {
		const struct node *o = &W.n[i];

		const struct pgw_member *k = pgw_cluster_member(&nd->cluster, o->name);

		if (o == nd || !o->powered || !o->pg.running || !o->pg.accepting ||
		    !o->pg.in_recovery || o->nofailover || o->pg.tl != nd->pg.tl - 1 ||
		    o->pg.lsn <= nd->pg.lsn + MAX_LAG)
			continue;
		/* eligible: a running replica in the view the candidate decided on; one whose
		 * key was older than its state is counted, not failed (see the note) */
		if (k && (k->watchdog_blocked || k->sync_blocked))
			continue; /* it may not lead (watchdog required and unusable, or not a
			             synchronous standby: S2 holds what was acknowledged) */
		if (!k || strcmp(k->role, "replica") != 0 || strcmp(k->state, "running") != 0) {
			W.stale_loss++;
			ev(nd,
			   "note: %s had %" PRId64 " bytes more, but its key did not show it "
			   "eligible",
			   o->name, o->pg.lsn - nd->pg.lsn);
			continue;
		}
		violation("durability: %s promoted at %" PRId64 ", %s is eligible at %" PRId64
		          " (more than maximum_lag_on_failover %d ahead)",
		          nd->name, nd->pg.lsn, o->name, o->pg.lsn, MAX_LAG);
	}
	if (!r->present || r->released || strcmp(r->member, nd->name) == 0)
		return;
	old = node_named(r->member);
	if (!old || !old->powered || !old->pg.running || old->pg.in_recovery)
		return; /* cannot write */
	if (r->fenced_by[0] && !old->powered)
		return;
	if (old->wd_armed || W.manual_failover || W.cfg.unprotected)
		return;
	violation("S3: %s promoted while %s, lost without releasing its key, still runs "
	          "PostgreSQL as primary, neither fenced nor bounded by a watchdog",
	          nd->name, old->name);
}

/* Does WAL at (tl, lsn) contain the point (atl, alsn)?  Either timeline may descend from
 * the other; the point must come before their lines part. */
static bool holds_point(int tl, int64_t lsn, int atl, int64_t alsn)
{
	int64_t down = left_at(atl, tl), up = left_at(tl, atl);

	if (alsn <= 0)
		return true;
	if (down >= 0)
		return alsn <= down && lsn >= alsn;
	if (up >= 0)
		return alsn <= up && lsn >= alsn;
	return false;
}

/* S2: what the writable primary nd acknowledged by now (synchronous_mode). */
static void track_acked(const struct node *nd)
{
	const char *names = nd->pg.sync_names;
	int64_t acked = -1;

	if (!W.cfg.sync || !pg_writable(nd) || nd->pg.tl < W.acked_tl)
		return;
	if (!names[0]) {
		acked = nd->pg.lsn; /* asynchronous: acknowledged at once */
	} else {
		bool any = strcmp(names, "*") == 0;

		for (int i = 0; i < W.cfg.nodes; i++) {
			const struct node *o = &W.n[i];
			bool listed = pgw_sync_names_list(names, o->name);
			bool streams = o != nd && o->powered && !o->frozen && o->pg.streaming &&
			               strcmp(o->pg.upstream, nd->name) == 0 &&
			               o->pg.tl == nd->pg.tl;

			if (any && streams && o->pg.lsn > acked)
				acked = o->pg.lsn;
			if (!any && listed) {
				if (!streams)
					return; /* a named standby is missing: commits wait */
				if (acked < 0 || o->pg.lsn < acked)
					acked = o->pg.lsn;
			}
		}
		if (acked > nd->pg.lsn)
			acked = nd->pg.lsn;
	}
	if (acked < 0)
		return;
	if (nd->pg.tl > W.acked_tl || acked > W.acked_lsn) {
		W.acked_tl = nd->pg.tl;
		if (acked > W.acked_lsn)
			W.acked_lsn = acked;
	}
}

/* pg_ctl promote was sent: PostgreSQL promotes even if the daemon stops meanwhile. */
static void promote_pg(struct node *nd)
{
	if (!nd->pg.running || !nd->pg.in_recovery)
		return;
	if (W.cfg.sync && !holds_point(nd->pg.tl, nd->pg.lsn, W.acked_tl, W.acked_lsn)) {
		violation("S2: %s promoted at timeline %d position %" PRId64
		          ", without the commit acknowledged at timeline %d position %" PRId64,
		          nd->name, nd->pg.tl, nd->pg.lsn, W.acked_tl, W.acked_lsn);
		if (nd->pg.lsn < W.acked_lsn)
			W.acked_lsn = nd->pg.lsn;
	}
	W.max_tl = (nd->pg.tl > W.max_tl ? nd->pg.tl : W.max_tl) + 1;
	W.fork_lsn[W.max_tl] = nd->pg.lsn;
	W.parent_tl[W.max_tl] = nd->pg.tl;
	nd->pg.tl = W.max_tl;
	nd->pg.in_recovery = false;
	nd->pg.upstream[0] = '\0';
	if (W.cfg.sync)
		W.acked_tl = nd->pg.tl; /* the same point, now on the new timeline */
	ev(nd, "pg: promoted to timeline %d at %" PRId64, nd->pg.tl, nd->pg.lsn);
	check_promotion(nd);
	W.manual_failover = false;
}

/* ha.c wait_next: a primary (or the VIP's holder) wakes in time to renew or demote
 * before D - S */
static void wake_in_time(struct node *nd)
{
	if ((nd->st.was_primary || nd->st.vip_held) && nd->lease.id != 0 &&
	    nd->next_cycle > nd->lease.deadline_ms - margin_ms() - 500)
		nd->next_cycle = nd->lease.deadline_ms - margin_ms() - 500;
}

/* ha_vip.c: the core says when the address goes (o, a NULL: between observations) ... */
static void vip_guard(struct node *nd, const struct pgw_obs *o, const struct pgw_action *a)
{
	const char *why = pgw_step_vip_drop(&nd->st, &nd->lease, W.now, margin_ms(), o, a);

	if (!why)
		return;
	nd->vip = false;
	pgw_step_vip_dropped(&nd->st);
	ev(nd, "vip: removed (%s)", why);
}

/* ... and when it comes, after an action */
static void vip_after(struct node *nd, enum pgw_action_kind k, bool holds)
{
	if (!pgw_step_vip_add(&nd->st, k, holds, &nd->lease, W.now, margin_ms()))
		return;
	nd->vip = true;
	pgw_step_vip_added(&nd->st, nd->lease.id);
	ev(nd, "vip: added");
}

/* The daemon's part, once it runs again: it promoted, renew, clear the failover key. */
static void promote(struct node *nd)
{
	char fenced[PGW_NAME_MAX];
	int64_t fl;

	promote_pg(nd);
	if (nd->pg.in_recovery)
		return;
	pgw_step_promoted(&nd->st, fenced, sizeof(fenced), &fl);
	renew(nd);
	vip_after(nd, PGW_ACT_PROMOTE, holds_key(nd));
	wake_in_time(nd); /* ha.c waits after promote() with the primary's wake-up */
	if (etcd_reach(nd)) {
		W.e.optime = nd->pg.lsn;
		if (W.e.failover.present) {
			W.e.failover.present = false;
			ev(nd, "etcd: removed the failover key");
		}
	}
}

static void act_fence(struct node *nd)
{
	const struct pgw_leader_record *lr = &nd->cluster.last_leader;
	struct node *t = node_named(lr->member);
	int64_t budget = pgw_lease_write_budget_ms(&nd->lease, W.now, margin_ms()) - 1000;
	int64_t confirm = rnd_in(200, 2000);

	if (nd->lease.id == 0 || !etcd_reach(nd))
		return;
	if (W.e.lock && strcmp(W.e.lock_holder, nd->name) != 0) {
		ev(nd, "fence: %s holds the fence lock", W.e.lock_holder);
		return;
	}
	W.e.lock = true;
	snprintf(W.e.lock_holder, sizeof(W.e.lock_holder), "%s", nd->name);
	W.e.lock_lease = nd->lease.id;
	ev(nd, "fence: audit intent: power off %s", lr->member);
	W.fences++;
	if (!t || t->bmc_down || t->bmc_badcreds || budget < confirm ||
	    confirm > (int64_t)W.cfg.fence_timeout_s * 1000) {
		ev(nd, "fence: failed (%s)",
		   !t                ? "no such node"
		   : t->bmc_down     ? "BMC unreachable"
		   : t->bmc_badcreds ? "BMC refused the credentials"
		                     : "no time left");
		W.e.lock = false;
		nd->busy_until = W.now + (t && t->bmc_down ? 2000 : 100);
		return;
	}
	power_off(t, "fenced", 0);
	t->boot_at = 0; /* off through its BMC: it stays off until unfenced */
	nd->busy_until = W.now + confirm;
	nd->pending = PGW_ACT_FENCE;
	snprintf(nd->pending_target, sizeof(nd->pending_target), "%s", lr->member);
}

/* The part of the fence that completes once the BMC confirmed power off. */
static void fence_done(struct node *nd)
{
	struct node *t = node_named(nd->pending_target);
	const struct pgw_leader_record *lr = &W.e.record;

	if (t && t->powered) {
		ev(nd, "fence: %s is on again: not confirmed", t->name);
	} else if (!etcd_reach(nd)) {
		ev(nd, "fence: power off confirmed, but etcd is unreachable: not marked");
	} else if (strcmp(lr->member, nd->pending_target) != 0 || lr->released ||
	           lr->fenced_by[0]) {
		ev(nd, "fence: power off confirmed, but the record changed: not marked");
	} else {
		snprintf(W.e.record.fenced_by, sizeof(W.e.record.fenced_by), "%s", nd->name);
		W.e.record.fenced_at = WALL_EPOCH + W.now / 1000.0;
		W.e.record.mod_revision = ++W.e.rev;
		pgw_step_fenced(&nd->st, lr->member, lr->lease);
		ev(nd, "fence: audit result: %s off, confirmed; record marked", t ? t->name : "?");
		if (W.e.leader && strcmp(W.e.leader_name, nd->pending_target) == 0) {
			lease_revoke(W.e.leader_lease); /* fast takeover */
			ev(nd, "etcd: revoked the fenced leader's lease");
		}
		nd->next_cycle = W.now; /* ha.c: the next cycle takes the key at once */
	}
	if (etcd_reach(nd) && W.e.lock && strcmp(W.e.lock_holder, nd->name) == 0)
		W.e.lock = false;
}

/* The sync key, as ha_act.c writes it: compare its revision, and the leader key on
 * this node's lease. */
static bool write_sync_key(struct node *nd, const char (*members)[PGW_NAME_MAX], int n)
{
	int64_t seen = nd->cluster.sync.present ? nd->cluster.sync.mod_revision : 0;
	int64_t now = W.e.sync.present ? W.e.sync.mod_revision : 0;

	if (!etcd_reach(nd) || !W.e.leader || strcmp(W.e.leader_name, nd->name) != 0 ||
	    W.e.leader_lease != nd->lease.id || seen != now)
		return false;
	memset(&W.e.sync, 0, sizeof(W.e.sync));
	W.e.sync.present = true;
	snprintf(W.e.sync.leader, sizeof(W.e.sync.leader), "%s", nd->name);
	for (int i = 0; i < n && i < PGW_SYNC_MAX; i++)
		snprintf(W.e.sync.members[W.e.sync.n++], PGW_NAME_MAX, "%s", members[i]);
	W.e.sync.mod_revision = ++W.e.rev;
	nd->cluster.sync = W.e.sync; /* its own write, as the next read would show it */
	ev(nd, "etcd: sync key {%s: %s%s}", nd->name, n ? members[0] : "none", n > 1 ? ",..." : "");
	return !answer_lost(nd);
}

static bool sync_before_promote(struct node *nd)
{
	if (!W.cfg.sync)
		return true;
	if (!write_sync_key(nd, NULL, 0))
		return false;
	snprintf(nd->pg.sync_names, sizeof(nd->pg.sync_names), "%s",
	         pgw_sync_standby_value(&nd->cluster.sync_conf));
	return true;
}

static void sync_duties(struct node *nd)
{
	struct pgw_pg_state ps;
	struct pgw_sync_plan p;

	observe(nd, &ps);
	pgw_sync_plan(&nd->cluster, nd->name, &ps, &nd->st.sync, &p);
	if (p.what == PGW_SYNC_WRITE_KEY)
		write_sync_key(nd, (const char(*)[PGW_NAME_MAX])p.members, p.n);
	else if (p.what == PGW_SYNC_SET_NAMES) {
		snprintf(nd->pg.sync_names, sizeof(nd->pg.sync_names), "%s", p.names);
		ev(nd, "pg: synchronous_standby_names = '%s'", p.names);
	}
}

static void act(struct node *nd, const struct pgw_action *a, bool holds)
{
	struct node *t = a->target[0] ? node_named(a->target) : NULL;

	switch (a->kind) {
	case PGW_ACT_NONE:
	case PGW_ACT_COUNT:
		break;
	case PGW_ACT_BOOTSTRAP:
		if (!take_key(nd))
			break;
		if (W.e.initialized) {
			give_up_key(nd);
			break;
		}
		W.e.initialized = true;
		nd->pg.data = true;
		nd->pg.tl = 1;
		nd->pg.lsn = 0;
		if (W.max_tl < 1)
			W.max_tl = 1;
		renew(nd);
		if (!wd_arm(nd, W.cfg.ttl)) {
			give_up_key(nd);
			break;
		}
		write_record(nd, false); /* now with the watchdog (as ha.c does) */
		pg_start(nd, false, "");
		nd->pg.accept_at = W.now;
		nd->pg.accepting = true;
		pgw_step_pg_writable(&nd->st);
		snprintf(W.e.sysid, sizeof(W.e.sysid), "7000000000000000001");
		nd->busy_until = W.now + 2000;
		break;
	case PGW_ACT_CLONE:
		if (!t || !t->powered || t->frozen || !t->pg.running || !t->pg.accepting ||
		    nd->cut_peers || t->cut_peers) {
			nd->busy_until = W.now + 1000;
			break;
		}
		pg_stop(nd, false);
		nd->pg.data = true;
		nd->pg.tl = t->pg.tl;
		nd->pg.lsn = t->pg.lsn;
		pgw_step_cloned(&nd->st);
		pg_start(nd, true, t->name);
		nd->busy_until = W.now + 2000;
		ev(nd, "clone: from %s", t->name);
		break;
	case PGW_ACT_START_REPLICA:
		pg_start(nd, true, a->target);
		break;
	case PGW_ACT_FOLLOW:
		snprintf(nd->pg.upstream, sizeof(nd->pg.upstream), "%s", a->target);
		ev(nd, "pg: now follows %s", a->target);
		break;
	case PGW_ACT_REWIND:
		pg_stop(nd, false);
		if (!t || !t->powered || !t->pg.running || nd->cut_peers || chance(10)) {
			ev(nd, "rewind: from %s failed", a->target);
			pgw_step_rewind_failed(&nd->st, a->target);
			break;
		}
		{
			int64_t fork = shared_until(nd->pg.tl, t->pg.tl);

			if (nd->pg.lsn > fork)
				nd->pg.lsn = fork;
		}
		nd->pg.tl = t->pg.tl;
		nd->pg.cs = PGW_CS_IN_ARCHIVE_RECOVERY;
		ev(nd, "rewind: from %s done", a->target);
		pgw_step_rewound(&nd->st);
		pg_start(nd, true, a->target);
		nd->busy_until = W.now + 1000;
		break;
	case PGW_ACT_ACQUIRE:
		if (nd->lease.id == 0 || !take_key(nd))
			break;
		if (!sync_before_promote(nd))
			break;
		nd->pending = PGW_ACT_PROMOTE;
		nd->busy_until = W.now + 300;
		break;
	case PGW_ACT_PROMOTE:
		if (!sync_before_promote(nd))
			break;
		nd->pending = PGW_ACT_PROMOTE;
		nd->busy_until = W.now + 300;
		break;
	case PGW_ACT_LEADER_DUTIES:
		if (etcd_reach(nd))
			W.e.optime = nd->pg.lsn;
		if (W.cfg.sync)
			sync_duties(nd);
		break;
	case PGW_ACT_START_PRIMARY:
		pg_start(nd, false, "");
		pgw_step_pg_writable(&nd->st);
		break;
	case PGW_ACT_DEMOTE_NOW:
	case PGW_ACT_DEMOTE:
		pg_stop(nd, a->kind == PGW_ACT_DEMOTE_NOW);
		pgw_step_pg_stopped(&nd->st);
		if (nd->etcd_ok && nd->cluster.has_leader &&
		    strcmp(nd->cluster.leader, nd->name) == 0)
			give_up_key(nd);
		break;
	case PGW_ACT_RELEASE:
	case PGW_ACT_SHUTDOWN:
	case PGW_ACT_HANDOVER:
		pg_stop(nd, false);
		pgw_step_pg_stopped(&nd->st);
		/* (release-stale-own-key: the key names this node on an earlier lease) */
		if (holds || (a->kind == PGW_ACT_RELEASE && nd->cluster.has_leader &&
		              strcmp(nd->cluster.leader, nd->name) == 0)) {
			if (etcd_reach(nd))
				W.e.optime = nd->pg.lsn;
			give_up_key(nd);
		}
		break;
	case PGW_ACT_CANCEL_SWITCHOVER:
		if (etcd_reach(nd) && W.e.failover.present) {
			W.e.failover.present = false;
			ev(nd, "etcd: cancelled the switchover");
		}
		break;
	case PGW_ACT_FENCE:
		act_fence(nd);
		break;
	case PGW_ACT_RELEASE_FENCE_LOCK:
		if (etcd_reach(nd) && W.e.lock && strcmp(W.e.lock_holder, nd->name) == 0) {
			W.e.lock = false;
			ev(nd, "etcd: released its stale fence lock");
		}
		break;
	}
}

/* An operator's POST /restart or /reinitialize, as ha_serve.c carries it out: the
 * request table (core/requests.c) decides. */
static void serve_request(struct node *nd, bool healthy)
{
	struct pgw_pg_state ps;
	struct pgw_obs o;
	struct pgw_rq rq = {.kind = nd->request == 1 ? PGW_RQ_RESTART : PGW_RQ_REINIT, .role = ""};
	struct pgw_rq_verdict v;

	nd->request = 0;
	observe(nd, &ps);
	build_obs(nd, &ps, &o);
	pgw_request_verdict(&o, healthy, &rq, &v);
	ev(nd, "request [%s] %s: %s", v.rule, v.go ? "carried out" : "refused", v.reason);
	if (!v.go)
		return;
	if (rq.kind == PGW_RQ_RESTART) {
		pg_stop(nd, false);
		if (v.as_primary) {
			pg_start(nd, false, "");
			pgw_step_pg_writable(&nd->st);
		} else {
			char up[PGW_NAME_MAX];

			snprintf(up, sizeof(up), "%.*s", PGW_NAME_MAX - 1,
			         strncmp(v.target_host, "h-", 2) == 0 ? v.target_host + 2 : "");
			pg_start(nd, true, up);
		}
	} else {
		struct pgw_action c = {.kind = PGW_ACT_CLONE};

		snprintf(c.target, sizeof(c.target), "%s", v.target);
		pg_stop(nd, true);
		act(nd, &c, false);
	}
	observe(nd, &ps);
	pgw_step_pg_observed(&nd->st, &ps);
}

static void cycle(struct node *nd)
{
	struct pgw_pg_state ps;
	struct pgw_obs o;
	struct pgw_action a;
	bool holds;

	vip_guard(nd, NULL, NULL); /* ha.c: the address first, then rule 7 */
	if (pgw_step_must_stop(&nd->st, &nd->lease, W.now, margin_ms())) {
		ev(nd, "rule 7: past D - S as primary: immediate stop");
		pg_stop(nd, true);
		observe(nd, &ps);
		pgw_step_pg_observed(&nd->st, &ps);
		if (!nd->st.was_primary)
			wd_idle(nd);
	}
	renew(nd);
	if (nd->wd_armed && nd->lease.t_send_ms < W.now) { /* not renewed this cycle */
		int b = pgw_lease_wd_bound_s(&nd->lease, W.now, W.cfg.loop_wait);

		if (b > 0 && b < nd->wd_W) { /* WDIOC_SETTIMEOUT restarts the countdown */
			nd->wd_W = b;
			nd->wd_last_pet = W.now;
			ev(nd, "watchdog: renewal overdue, W lowered to %d s", b);
		}
	}
	cap_lease(nd);
	vip_guard(nd, NULL, NULL); /* a renewal that failed, a lost lease */
	observe(nd, &ps);
	pgw_step_pg_observed(&nd->st, &ps);
	pgw_step_vip_observed(&nd->st, nd->vip);
	publish_member(nd, &ps);
	read_cluster(nd);
	pgw_step_cluster_read(&nd->st, nd->etcd_ok, &nd->cluster, &ps, W.now);
	/* ha.c republish_after_loss: a member key that predates the loss is published again */
	{
		const struct pgw_member *me = pgw_cluster_member(&nd->cluster, nd->name);

		if (nd->etcd_ok && nd->st.no_leader_rev > 0 && me &&
		    me->mod_revision <= nd->st.no_leader_rev)
			publish_member(nd, &ps);
	}
	build_obs(nd, &ps, &o);
	holds = pgw_obs_holds_leader(&o);
	pgw_step(&nd->st, &o, &a);
	if (pgw_step_needs_watchdog(&nd->st, &a)) {
		bool was_armed = nd->wd_armed;

		if (!wd_arm(nd, nd->lease.id ? nd->lease.ttl_s : W.cfg.ttl))
			pgw_step_without_watchdog(&nd->st, &o, &a);
		else if (!was_armed && nd->wd_armed && nd->etcd_ok)
			publish_member(nd, &ps); /* ha.c: before PostgreSQL may write */
	}
	cap_lease(nd);
	if (strcmp(a.rule, nd->last_rule) != 0 || verbose)
		ev(nd, "decide [%s] %s: %s", a.rule, pgw_action_name(a.kind), a.reason);
	snprintf(nd->last_rule, sizeof(nd->last_rule), "%s", a.rule);
	vip_guard(nd, &o, &a);
	act(nd, &a, holds);
	vip_after(nd, a.kind, holds || holds_key(nd));
	if (pgw_action_gives_up(a.kind)) {
		observe(nd, &ps);
		pgw_step_pg_observed(&nd->st, &ps);
	}
	/* (ha.c promotes inside act(); here the promotion completes later) */
	if (pgw_step_may_disarm(&nd->st, &a, holds) && nd->pending != PGW_ACT_PROMOTE)
		wd_idle(nd);
	if (nd->request) {
		serve_request(nd, holds && a.kind == PGW_ACT_LEADER_DUTIES);
		vip_guard(nd, NULL, NULL);
	}
	/* fast takeover: the loop probes the leader while it waits */
	{
		const struct pgw_member *l = pgw_cluster_leader_member(&nd->cluster);
		bool watching =
		    pgw_step_watching(&nd->st, W.cfg.fencing && W.cfg.fast_takeover_s > 0,
		                      nd->etcd_ok, &nd->cluster, nd->name);

		if (watching) {
			struct node *ln = node_named(l->name);
			bool reach =
			    ln && ln->powered && !ln->frozen && !nd->cut_peers && !ln->cut_peers;
			bool pg_answers = reach && ln->pg.running && ln->pg.accepting;
			bool rest_answers = reach && ln->alive && !ln->stopped;
			struct lease_e *le = lease_get(nd->cluster.leader_lease);
			/* ha.c: a leader with fast takeover on renews every PGW_HEARTBEAT_MS */
			bool beating = ln && ln->powered && ln->alive && !ln->stopped &&
			               !ln->frozen && !W.e.down && !ln->cut_etcd &&
			               ln->lease.id == nd->cluster.leader_lease;
			/* the probes overlap and answer at once here; a reading of a lease
			 * that does not beat says stale at once, sooner than etcd would
			 * (a pessimistic model: more takeovers, never fewer) */
			bool same = strcmp(nd->st.silent_leader, l->name) == 0 &&
			            nd->st.silent_lease == nd->cluster.leader_lease;
			struct pgw_probe p = {.silent_since = pg_answers || rest_answers ? 0
			                                      : same && nd->st.leader_silent_since
			                                          ? nd->st.leader_silent_since
			                                          : W.now,
			                      .lease = !le || !le->live || !beating
			                                   ? PGW_LEASE_STALE
			                                   : PGW_LEASE_RENEWED,
			                      .lease_sent_ms = W.now,
			                      .lease_recv_ms = W.now};

			pgw_step_probe(&nd->st, true, l->name, nd->cluster.leader_lease, &p);
		} else {
			pgw_step_probe(&nd->st, false, "", 0, &(struct pgw_probe){0});
		}
	}
	if (nd->busy_until < W.now)
		nd->busy_until = W.now;
	nd->next_cycle = nd->busy_until + (int64_t)W.cfg.loop_wait * 1000;
	/* ha.c wait_next: a primary wakes in time to renew or demote before D - S; a lapsed
	 * lease is tried every second */
	wake_in_time(nd);
	if (nd->lease.lapsed_id != 0 && nd->next_cycle > nd->busy_until + 1000)
		nd->next_cycle = nd->busy_until + 1000;
	if (nd->next_cycle < W.now + TICK_MS)
		nd->next_cycle = W.now + TICK_MS;
	if (W.cfg.fencing && W.cfg.fast_takeover_s > 0 && nd->st.leader_silent_since &&
	    nd->next_cycle > W.now + 500)
		nd->next_cycle = W.now + 500; /* looks again twice a second while silent */
}

/* ---- faults and the operator ------------------------------------------------------------------
 */

enum fault {
	F_KILL,
	F_STOP,
	F_FREEZE,
	F_POWER,
	F_CUT_ETCD,
	F_CUT_PEERS,
	F_ETCD_DOWN,
	F_ETCD_SLOW,
	F_BMC_DOWN,
	F_WD_BROKEN,
	F_PG_CRASH,
	F_SWITCHOVER,
	F_FAILOVER,
	F_PAUSE,
	F_LOSSY,
	F_BMC_CREDS,
	F_REQUEST,
	F_COUNT
};

struct active {
	enum fault f;
	int node;
	int64_t until;
	bool used;
};

#define MAXACT 16
static struct active act_faults[MAXACT];

static struct node *leader_node(void)
{
	return W.e.leader ? node_named(W.e.leader_name) : NULL;
}

static void fault_end(struct active *x)
{
	struct node *nd = &W.n[x->node];

	x->used = false;
	W.active_faults--;
	W.last_fault = W.now;
	switch (x->f) {
	case F_KILL:
		break; /* systemd restarts it (restart_at), or the final heal */
	case F_STOP:
		if (nd->alive && nd->stopped) {
			nd->stopped = false;
			ev(nd, "daemon: SIGCONT");
		}
		break;
	case F_FREEZE:
		if (nd->frozen) {
			nd->frozen = false;
			ev(nd, "machine: thawed");
		}
		break;
	case F_POWER:
		break;
	case F_CUT_ETCD:
		nd->cut_etcd = false;
		ev(nd, "net: reaches etcd again");
		break;
	case F_CUT_PEERS:
		nd->cut_peers = false;
		ev(nd, "net: reaches peers again");
		break;
	case F_ETCD_DOWN:
		W.e.down = false;
		/* etcd's lessor on a new leader (Promote): every lease starts a full TTL again */
		for (int i = 0; i < W.e.nleases; i++)
			W.e.leases[i].expires =
			    W.now + ETCD_ELECTION_MS + (int64_t)W.cfg.ttl * 1000;
		ev(NULL, "etcd: quorum back");
		break;
	case F_ETCD_SLOW:
		W.e.slow_ms = 0;
		ev(NULL, "etcd: fast again");
		break;
	case F_BMC_DOWN:
		nd->bmc_down = false;
		ev(nd, "BMC reachable again");
		break;
	case F_WD_BROKEN:
		nd->wd_broken = false;
		ev(nd, "watchdog device works again");
		break;
	case F_PAUSE:
		W.e.paused = false;
		ev(NULL, "operator: resume");
		break;
	case F_LOSSY:
		nd->loss_pct = 0;
		nd->slow_ms = 0;
		ev(nd, "net: link to etcd clean again");
		break;
	case F_BMC_CREDS:
		nd->bmc_badcreds = false;
		ev(nd, "BMC accepts the credentials again");
		break;
	default:
		break;
	}
}

static void inject(void)
{
	int slot = -1;
	enum fault f = (enum fault)rnd_in(0, F_COUNT - 1);
	int ni = (int)rnd_in(0, W.cfg.nodes - 1);
	struct node *nd = &W.n[ni], *l = leader_node();
	int64_t dur = rnd_in(500, 30000);

	for (int i = 0; i < MAXACT; i++)
		if (!act_faults[i].used)
			slot = i;
	if (slot < 0)
		return;
	if (l && chance(50) && f <= F_CUT_PEERS) {
		nd = l; /* faults hit the leader more often: that is where it matters */
		ni = l->idx;
	}
	W.last_fault = W.now;
	switch (f) {
	case F_KILL:
		if (!nd->alive || nd->frozen) /* nothing runs on a frozen machine */
			return;
		daemon_kill(nd, chance(50) ? RESTART_MS : 0);
		return; /* a dead daemon stays a fault until restarted: counted by health() */
	case F_STOP:
		if (!nd->alive || nd->stopped || nd->frozen)
			return;
		nd->stopped = true;
		ev(nd, "daemon: SIGSTOP for %.1f s", dur / 1000.0);
		break;
	case F_FREEZE:
		if (!nd->powered || nd->frozen)
			return;
		nd->frozen = true;
		ev(nd, "machine: frozen for %.1f s", dur / 1000.0);
		break;
	case F_POWER:
		power_off(nd, "power loss", chance(70) ? dur : 0);
		return;
	case F_CUT_ETCD:
		if (nd->cut_etcd)
			return;
		nd->cut_etcd = true;
		ev(nd, "net: cut from etcd for %.1f s", dur / 1000.0);
		break;
	case F_CUT_PEERS:
		if (nd->cut_peers)
			return;
		nd->cut_peers = true;
		ev(nd, "net: cut from peers for %.1f s", dur / 1000.0);
		break;
	case F_ETCD_DOWN:
		if (W.e.down)
			return;
		W.e.down = true;
		ev(NULL, "etcd: quorum lost for %.1f s", dur / 1000.0);
		break;
	case F_ETCD_SLOW:
		if (W.e.slow_ms)
			return;
		W.e.slow_ms = rnd_in(100, (int64_t)W.cfg.retry_timeout * 1200);
		ev(NULL, "etcd: answers take %" PRId64 " ms for %.1f s", W.e.slow_ms, dur / 1000.0);
		break;
	case F_BMC_DOWN:
		if (nd->bmc_down)
			return;
		nd->bmc_down = true;
		ev(nd, "BMC unreachable for %.1f s", dur / 1000.0);
		break;
	case F_WD_BROKEN:
		if (nd->wd_broken)
			return;
		nd->wd_broken = true;
		ev(nd, "watchdog device cannot be armed for %.1f s", dur / 1000.0);
		break;
	case F_PG_CRASH:
		if (!nd->powered || !nd->pg.running || nd->frozen)
			return;
		ev(nd, "pg: crashed");
		pg_stop(nd, true);
		return;
	case F_SWITCHOVER:
		if (!l || W.e.failover.present)
			return;
		memset(&W.e.failover, 0, sizeof(W.e.failover));
		W.e.failover.present = true;
		snprintf(W.e.failover.leader, sizeof(W.e.failover.leader), "%s", l->name);
		if (chance(50) && nd != l)
			snprintf(W.e.failover.member, sizeof(W.e.failover.member), "%s", nd->name);
		W.e.failover.mod_revision = ++W.e.rev;
		ev(NULL, "operator: switchover from %s to %s", l->name,
		   W.e.failover.member[0] ? W.e.failover.member : "any");
		return;
	case F_FAILOVER:
		/* pgwardenctl failover: the operator declares the old leader dead; done only
		 * when it is (as the docs ask), so S3 holds by the operator's word */
		if (W.e.leader || W.e.failover.present)
			return;
		for (int i = 0; i < W.cfg.nodes; i++)
			if (W.n[i].powered && W.n[i].pg.running && !W.n[i].pg.in_recovery)
				return; /* a primary, even a frozen one, is not down */
		if (W.e.record.present && !W.e.record.released) {
			const struct node *lost = node_named(W.e.record.member);

			if (lost && lost->powered)
				return; /* the operator makes sure the lost leader is off */
		}
		memset(&W.e.failover, 0, sizeof(W.e.failover));
		W.e.failover.present = true;
		snprintf(W.e.failover.member, sizeof(W.e.failover.member), "%s", nd->name);
		W.e.failover.mod_revision = ++W.e.rev;
		W.manual_failover = true;
		ev(NULL, "operator: failover to %s", nd->name);
		return;
	case F_PAUSE:
		if (W.e.paused)
			return;
		W.e.paused = true;
		ev(NULL, "operator: pause for %.1f s", dur / 1000.0);
		break;
	case F_LOSSY:
		if (nd->loss_pct)
			return;
		nd->loss_pct = (int)rnd_in(10, 60);
		nd->slow_ms = rnd_in(0, (int64_t)W.cfg.retry_timeout * 800);
		ev(nd,
		   "net: link to etcd loses %d%% of requests or answers, +%" PRId64
		   " ms, for %.1f s",
		   nd->loss_pct, nd->slow_ms, dur / 1000.0);
		break;
	case F_BMC_CREDS:
		if (nd->bmc_badcreds)
			return;
		nd->bmc_badcreds = true;
		ev(nd, "BMC refuses the fencers' credentials for %.1f s", dur / 1000.0);
		break;
	case F_REQUEST:
		nd->request = chance(50) ? 1 : 2;
		ev(nd, "operator: POST %s", nd->request == 1 ? "/restart" : "/reinitialize");
		return;
	default:
		return;
	}
	act_faults[slot] = (struct active){.f = f, .node = ni, .until = W.now + dur, .used = true};
	W.active_faults++;
}

/* End every fault; with keep_dead, one node may stay dead (a loss the design covers). */
static void heal(bool keep_dead)
{
	int dead = keep_dead ? (int)rnd_in(0, W.cfg.nodes - 1) : -1;

	for (int i = 0; i < MAXACT; i++)
		if (act_faults[i].used)
			fault_end(&act_faults[i]);
	if (W.e.failover.present && !W.e.leader) {
		W.e.failover.present = false;
		W.manual_failover = false;
	}
	for (int i = 0; i < W.cfg.nodes; i++) {
		struct node *nd = &W.n[i];

		if (i == dead) {
			if (W.cfg.fencing || W.cfg.wd_mode != 0)
				continue;
			dead = -1;
		}
		if (!nd->powered)
			power_on(nd);
		else if (!nd->alive)
			daemon_start(nd);
	}
	if (dead >= 0)
		ev(&W.n[dead], "stays as it is (the cluster must cope)");
	W.last_fault = W.now;
}

/* ---- checks
 * -------------------------------------------------------------------------------------- */

static int64_t liveness_bound_ms(void)
{
	const struct sim_cfg *c = &W.cfg;

	/*
	 * From the moment the last fault ended, with the cluster healthy but for one dead
	 * node the design covers:
	 *   boot + PostgreSQL start of a node that was just powered on       BOOT + PG_START
	 *   the lost leader's lease runs out                                 ttl
	 *   the next loop notices (a watch fires at once, a loop at worst)   loop_wait
	 *   one etcd operation that was in flight when the fault ended       retry_timeout
	 *   the fence: power off and its confirmation                        fencing.timeout
	 *   the best candidate waits for positions published after the loss,
	 *   or for a member that does not run yet (decide.c, positions-stale) 2 * loop_wait + 1 s
	 *   the loop after the fence takes the key and promotes              loop_wait + 1 s
	 */
	return BOOT_MS + PG_START_MS + (int64_t)c->ttl * 1000 + 4LL * c->loop_wait * 1000 +
	       (int64_t)c->retry_timeout * 1000 + (c->fencing ? c->fence_timeout_s * 1000LL : 0) +
	       2000;
}

/* Can the cluster be expected to have a primary (no fault active but covered deaths)? */
static bool healthy(void)
{
	int ok = 0;
	int64_t best = -1, known = W.leader_pos > W.e.optime ? W.leader_pos : W.e.optime;

	if (W.active_faults > 0 || W.e.down || W.e.paused)
		return false;
	for (int i = 0; i < W.cfg.nodes; i++)
		if (W.n[i].powered && W.n[i].alive && W.n[i].pg.data && !W.n[i].nofailover &&
		    W.n[i].pg.lsn > best)
			best = W.n[i].pg.lsn;
	if (!W.e.leader && best < known - MAX_LAG)
		return false; /* maximum_lag_on_failover: no candidate by design */
	if (W.cfg.sync && !W.e.leader) {
		bool any = false;

		for (int i = 0; i < W.cfg.nodes; i++)
			if (W.n[i].powered && W.n[i].alive && !W.n[i].nofailover &&
			    W.e.sync.present &&
			    (strcmp(W.e.sync.leader, W.n[i].name) == 0 ||
			     pgw_sync_key_lists(&W.e.sync, W.n[i].name)))
				any = true;
		if (!any)
			return false; /* S2: nobody the sync key names runs and may lead: no
			                 failover, by design */
	}
	for (int i = 0; i < W.cfg.nodes; i++) {
		const struct node *nd = &W.n[i];

		if (nd->powered && nd->alive && !nd->stopped && !nd->frozen)
			ok++;
		else if (nd->powered && !nd->alive && nd->restart_at)
			return false; /* systemd is about to restart it */
		else if ((!nd->powered || !nd->alive) && !W.cfg.fencing && !nd->led_armed &&
		         !W.cfg.unprotected && W.e.record.present && !W.e.record.released &&
		         strcmp(W.e.record.member, nd->name) == 0)
			return false; /* the lost leader, down and unprotected: by design (S3) no
			                 failover, whether or not its PostgreSQL still runs */
	}
	return ok > 0 && W.e.initialized;
}

/* The virtual IP: one holder at most; a daemon that runs its loop holds it only as the
 * leader primary before D - S (a hung or dead one is the watchdog's, like its writes). */
static void check_vip(void)
{
	int holders = 0;

	for (int i = 0; i < W.cfg.nodes; i++) {
		const struct node *nd = &W.n[i];

		if (!nd->powered || !nd->vip)
			continue;
		holders++;
		if (!nd->alive || nd->stopped || nd->frozen)
			continue;
		if (!nd->st.was_primary || !holds_key(nd) ||
		    !pgw_lease_allows_writes(&nd->lease, W.now, margin_ms()))
			violation("VIP: %s holds the address as %s, %s the leader key, %.2f s %s "
			          "D - S",
			          nd->name, nd->st.was_primary ? "primary" : "no primary",
			          holds_key(nd) ? "with" : "without",
			          (nd->lease.deadline_ms - margin_ms() - W.now) / 1000.0,
			          nd->lease.id ? "before" : "(no lease) before");
	}
	if (holders > 1) {
		if (W.cfg.unprotected)
			W.vip_expected++;
		else
			violation("VIP: %d nodes hold the address", holders);
	}
}

static void check(void)
{
	int writers = 0;
	char names[64] = "";
	bool primary = false;

	for (int i = 0; i < W.cfg.nodes; i++)
		if (pg_writable(&W.n[i])) {
			writers++;
			strcat(names, " ");
			strcat(names, W.n[i].name);
			if (holds_key(&W.n[i]))
				primary = true;
		}
	check_vip();
	if (writers > 1) {
		if (W.cfg.unprotected) {
			W.s1_expected++;
		} else {
			violation("S1: %d nodes accept writes:%s", writers, names);
		}
	}
	if (primary || !healthy()) {
		W.no_primary_since = 0;
		return;
	}
	if (W.no_primary_since == 0)
		W.no_primary_since = W.now;
	{
		int64_t from =
		    W.no_primary_since > W.last_fault ? W.no_primary_since : W.last_fault;

		if (W.now - from > liveness_bound_ms())
			violation(
			    "liveness: no writable primary for %.1f s since the cluster became "
			    "healthy (bound %.1f s)",
			    (W.now - from) / 1000.0, liveness_bound_ms() / 1000.0);
	}
}

/* Rejoin: at the end, long after the last fault healed, every running replica of a
 * cluster with a primary streams from it (the fault rig found an old primary started as a
 * replica with no leader, then switched to the new leader by a reload: its timeline had
 * forked, it never streamed again). */
static void check_rejoined(void)
{
	const struct node *p = NULL;

	for (int i = 0; i < W.cfg.nodes; i++)
		if (pg_writable(&W.n[i]) && holds_key(&W.n[i]))
			p = &W.n[i];
	/* a replica gets two loops to see a new leader's timeline, PGW_DIVERGED_CONFIRM_MS
	 * and a rewind */
	if (!p || W.e.paused ||
	    W.now - W.e.leader_since <
	        2 * (int64_t)W.cfg.loop_wait * 1000 + PGW_DIVERGED_CONFIRM_MS + 15000)
		return;
	for (int i = 0; i < W.cfg.nodes; i++) {
		const struct node *nd = &W.n[i];

		if (nd == p || !nd->powered || !nd->alive || nd->stopped || nd->frozen ||
		    !nd->pg.running || !nd->pg.in_recovery || nd->nofailover)
			continue;
		if (!nd->pg.streaming)
			violation("rejoin: %s runs as a replica (timeline %d, lsn %" PRId64
			          ") but does not stream from %s (timeline %d) %.0f s after the "
			          "last fault healed, %.0f s after %s took the key",
			          nd->name, nd->pg.tl, nd->pg.lsn, p->name, p->pg.tl,
			          (W.now - W.last_fault) / 1000.0,
			          (W.now - W.e.leader_since) / 1000.0, p->name);
	}
}

/* ---- one run
 * -------------------------------------------------------------------------------------- */

static void setup(uint64_t seed, int nodes_opt)
{
	struct sim_cfg *c = &W.cfg;

	memset(&W, 0, sizeof(W));
	memset(act_faults, 0, sizeof(act_faults));
	evpos = evcount = 0;
	W.seed = seed;
	rng_state = seed * 0x2545F4914F6CDD1DULL + 1;
	c->nodes = nodes_opt ? nodes_opt : (chance(70) ? 3 : 5);
	if (chance(75)) {
		c->ttl = 10;
		c->loop_wait = 2;
		c->retry_timeout = 4;
	} else {
		c->ttl = 30;
		c->loop_wait = 10;
		c->retry_timeout = 10;
	}
	c->margin = 5;
	c->fencing = chance(60);
	c->fence_timeout_s = 5;
	c->fast_takeover_s = c->fencing && chance(50) ? 2 : 0;
	c->wd_mode = (int)rnd_in(0, 2);
	c->unprotected = !c->fencing && c->wd_mode == 0 && chance(20);
	c->use_rewind = chance(80);
	/* apart from the main random stream, so that every other seed runs as before */
	c->sync = (seed * 0x9E3779B97F4A7C15ULL) >> 61 < 3;
	c->strict = c->sync && ((seed * 0xBF58476D1CE4E5B9ULL) >> 63);
	W.e.optime = -1;
	for (int i = 0; i < c->nodes; i++) {
		struct node *nd = &W.n[i];

		snprintf(nd->name, sizeof(nd->name), "node%d", i + 1);
		nd->idx = i;
		nd->powered = true;
		nd->nofailover = i == c->nodes - 1 && c->nodes == 5 && chance(30);
		/* a slow standby (0 to 6 s of WAL behind), apart from the main stream too */
		if (c->sync)
			nd->repl_lag =
			    (int64_t)(((seed + (uint64_t)i) * 0xD6E8FEB86659FD93ULL) >> 62) * 40 *
			    WRITE_RATE;
		daemon_start(nd);
		nd->next_cycle = rnd_in(0, 1000);
	}
}

static void tick(void)
{
	etcd_expire();
	for (int i = 0; i < MAXACT; i++)
		if (act_faults[i].used && W.now >= act_faults[i].until)
			fault_end(&act_faults[i]);
	for (int i = 0; i < W.cfg.nodes; i++) {
		struct node *nd = &W.n[i];

		if (!nd->powered && nd->boot_at && W.now >= nd->boot_at) {
			W.last_fault = W.now;
			power_on(nd);
		}
		if (nd->powered && !nd->alive && nd->restart_at && W.now >= nd->restart_at) {
			nd->restart_at = 0;
			W.last_fault = W.now;
			daemon_start(nd);
		}
		if (nd->pg.running && !nd->pg.accepting && !nd->frozen && W.now >= nd->pg.accept_at)
			nd->pg.accepting = true;
		if (pg_writable(nd))
			nd->pg.lsn += WRITE_RATE;
		if (holds_key(nd))
			nd->led_armed = nd->wd_armed;
	}
	for (int i = 0; i < W.cfg.nodes; i++)
		if (W.n[i].powered && !W.n[i].frozen)
			replicate(&W.n[i]);
	for (int i = 0; i < W.cfg.nodes; i++)
		track_acked(&W.n[i]);
	for (int i = 0; i < W.cfg.nodes; i++) {
		struct node *nd = &W.n[i];

		keeper_check(nd);
		wd_check(nd);
		if (nd->pending == PGW_ACT_PROMOTE && W.now >= nd->busy_until && nd->powered &&
		    !nd->frozen)
			promote_pg(nd);
		if (!nd->powered || !nd->alive || nd->stopped || nd->frozen)
			continue;
		if (nd->pending != PGW_ACT_NONE && W.now >= nd->busy_until) {
			enum pgw_action_kind k = nd->pending;

			nd->pending = PGW_ACT_NONE;
			if (k == PGW_ACT_FENCE)
				fence_done(nd);
			else if (k == PGW_ACT_PROMOTE)
				promote(nd);
		}
		if (W.now >= nd->next_cycle && W.now >= nd->busy_until)
			cycle(nd);
	}
	check();
}

/* Simulated seconds: 20 s to form the cluster, chaos, then quiet with one covered loss. */
#define T_CHAOS_END 150000
#define T_END       (T_CHAOS_END + 90000)

static int run(uint64_t seed, int nodes_opt)
{
	int64_t next_fault;

	setup(seed, nodes_opt);
	next_fault = 20000 + rnd_in(0, 10000);
	for (W.now = 0; W.now <= T_END && W.violations == 0; W.now += TICK_MS) {
		if (W.now == T_CHAOS_END)
			heal(chance(50));
		if (W.now < T_CHAOS_END && W.now >= next_fault) {
			inject();
			next_fault = W.now + rnd_in(1000, 25000);
		}
		tick();
	}
	if (W.violations == 0)
		check_rejoined();
	return W.violations;
}

int main(int argc, char **argv)
{
	uint64_t from = 1, count = 200, one = 0;
	int nodes = 0;
	bool have_one = false;
	unsigned long failed = 0, passed = 0, expected_s1 = 0;
	int64_t promotions = 0, fences = 0, stale = 0;
	struct timespec t0, t1;
	double secs;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
			count = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
			from = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			one = strtoull(argv[++i], NULL, 10);
			have_one = true;
		} else if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc)
			nodes = atoi(argv[++i]);
		else if (strcmp(argv[i], "-v") == 0)
			verbose = true;
		else if (strcmp(argv[i], "--quiet") == 0)
			quiet = true;
		else {
			fprintf(stderr,
			        "usage: sim [--seeds N] [--from S] [--seed S] [--nodes 3|5] "
			        "[--quiet] [-v]\n");
			return 2;
		}
	}
	if (nodes != 0 && nodes != 3 && nodes != 5) {
		fprintf(stderr, "sim: --nodes must be 3 or 5\n");
		return 2;
	}
	pgw_log_set_level(PGW_FATAL);
	if (have_one) {
		from = one;
		count = 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t s = from; s < from + count; s++) {
		if (run(s, nodes))
			failed++;
		else
			passed++;
		expected_s1 += W.s1_expected > 0;
		promotions += W.promotions;
		fences += W.fences;
		stale += W.stale_loss;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("sim: seeds %" PRIu64 "..%" PRIu64 ", %.1f s, %.0f seeds/s, %" PRId64
	       " promotions, %" PRId64 " fences, %lu runs with failover.unprotected saw two "
	       "writers (expected)\n",
	       from, from + count - 1, secs, (double)count / (secs > 0 ? secs : 1), promotions,
	       fences, expected_s1);
	printf("sim: %" PRId64 " promotions lost more than maximum_lag_on_failover to a replica "
	       "whose member key was older than its state (not counted as failures)\n",
	       stale);
	printf("sim: %lu passed, %lu failed\n", passed, failed);
	return failed ? 1 : 0;
}
