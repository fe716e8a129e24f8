/*
 * pg_smoke.c - drives daemon/pg.c through a real two-node flow (not a unit test):
 * initdb a primary, clone a standby with a slot, promote it, rewind the old primary
 * from it and make it follow.  Run through tests/pg_smoke.sh as the postgres user.
 *
 *   pg_smoke BASE_DIR PORT1 PORT2 [fixtures_dir]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pg.h"

#define T_START    60000
#define T_STOP     60000
#define T_OBSERVE  5000
#define T_CLONE    120000
#define T_INITDB   120000
#define T_PROMOTE  60000
#define T_REWIND   120000
#define T_STREAM_S 30

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "SMOKE FAILED at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

struct node {
	struct pgw_config cfg;
	struct pgw_kv params[2];
	struct pgw_pg *pg;
	char name[16], listen[32], data[512], pgpass[512], sockdir[512];
	int port;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void node_init(struct node *n, const char *base, const char *name, int port)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", name);
	snprintf(n->listen, sizeof(n->listen), "127.0.0.1:%d", port);
	snprintf(n->data, sizeof(n->data), "%s/%s/data", base, name);
	snprintf(n->pgpass, sizeof(n->pgpass), "%s/%s/pgpass", base, name);
	snprintf(n->sockdir, sizeof(n->sockdir), "%s/%s", base, name);
	n->port = port;
	n->params[0] = (struct pgw_kv){"unix_socket_directories", n->sockdir};
	n->params[1] = (struct pgw_kv){"shared_buffers", "16MB"};
	n->cfg.scope = "smoke";
	n->cfg.name = n->name;
	n->cfg.postgresql.listen = n->listen;
	n->cfg.postgresql.data_dir = n->data;
	n->cfg.postgresql.bin_dir = "/usr/lib/postgresql/15/bin";
	n->cfg.postgresql.pgpass = n->pgpass;
	n->cfg.postgresql.superuser =
	    (struct pgw_auth){.username = "postgres", .password = "super'pw:1"};
	n->cfg.postgresql.replication =
	    (struct pgw_auth){.username = "replicator", .password = "repl\\pw"};
	n->cfg.postgresql.rewind =
	    (struct pgw_auth){.username = "rewind_user", .password = "rewind pw"};
	n->cfg.postgresql.parameters = (struct pgw_kvlist){n->params, 2};
	n->cfg.dcs.use_slots = true;
	n->cfg.dcs.use_pg_rewind = true;
	n->pg = pgw_pg_new(&n->cfg);
	CHECK(n->pg != NULL);
}

static void show(const char *label, const struct pgw_pg_state *st)
{
	char wal[32], rec[32], rep[32];

	pgw_lsn_format(st->wal_lsn, wal, sizeof(wal));
	pgw_lsn_format(st->received_lsn, rec, sizeof(rec));
	pgw_lsn_format(st->replayed_lsn, rep, sizeof(rep));
	printf("[%s] datadir=%d running=%d accepting=%d in_recovery=%d tl=%d sysid=%llu "
	       "version=%d wal=%s received=%s replayed=%s streaming=%d primary=%s:%d "
	       "pending_restart=%d nrepl=%d",
	       label, st->datadir, st->running, st->accepting, st->in_recovery, st->timeline,
	       (unsigned long long)st->system_identifier, st->server_version, wal, rec, rep,
	       st->streaming, st->primary_host, st->primary_port, st->pending_restart,
	       st->nreplication);
	for (int i = 0; i < st->nreplication; i++)
		printf(" [%s %s %s %s]", st->replication[i].application_name,
		       st->replication[i].usename, st->replication[i].state,
		       st->replication[i].sync_state);
	printf("\n");
	fflush(stdout);
}

/* Observe until the standby streams (or T_STREAM_S passes). */
static void wait_streaming(struct node *n, struct pgw_pg_state *st)
{
	for (int i = 0; i < T_STREAM_S * 5; i++) {
		pgw_pg_observe(n->pg, T_OBSERVE, st);
		if (st->streaming)
			return;
		usleep(200000);
	}
	show(n->name, st);
	CHECK(!"standby never streamed");
}

static void save_controldata(const char *fixtures, const struct node *n, const char *label)
{
	char cmd[2048];

	if (!fixtures)
		return;
	snprintf(cmd, sizeof(cmd),
	         "LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D %s > %s/controldata_%s.txt",
	         n->data, fixtures, label);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot save controldata %s\n", label);
}

#define TIMED(label, expr)                                                                         \
	do {                                                                                       \
		double t0_ = now_s();                                                              \
		CHECK((expr) == 0);                                                                \
		printf("TIMING %s %.2f s\n", label, now_s() - t0_);                                \
		fflush(stdout);                                                                    \
	} while (0)

static void phase_primary(struct node *n1, const char *fixtures)
{
	const char *slots[] = {"node2"};
	struct pgw_controldata cd;
	struct pgw_pg_state st;

	pgw_pg_observe(n1->pg, T_OBSERVE, &st);
	CHECK(st.datadir == PGW_DATADIR_EMPTY && !st.running);
	TIMED("initdb", pgw_pg_initdb(n1->pg, T_INITDB));
	pgw_pg_observe(n1->pg, T_OBSERVE, &st);
	CHECK(st.datadir == PGW_DATADIR_VALID && !st.running);
	CHECK(pgw_pg_controldata(n1->pg, &cd) == 0 && cd.state == PGW_CS_SHUT_DOWN);
	TIMED("start primary", pgw_pg_start(n1->pg, T_START));
	CHECK(pgw_pg_start(n1->pg, T_START) == 0); /* already running */
	CHECK(pgw_pg_bootstrap_roles(n1->pg, 10000) == 0);
	CHECK(pgw_pg_bootstrap_roles(n1->pg, 10000) == 0); /* idempotent */
	CHECK(pgw_pg_sync_slots(n1->pg, slots, 1, 10000) == 0);
	CHECK(pgw_pg_sync_slots(n1->pg, slots, 1, 10000) == 0);
	pgw_pg_observe(n1->pg, T_OBSERVE, &st);
	show("node1 primary", &st);
	CHECK(st.running && st.accepting && !st.in_recovery && st.timeline == 1);
	CHECK(st.server_version >= 150000 && st.wal_lsn > 0 &&
	      st.system_identifier == cd.system_identifier);
	save_controldata(fixtures, n1, "primary_running");
}

static void phase_standby(struct node *n1, struct node *n2, const char *fixtures)
{
	struct pgw_pg_state st;

	TIMED("basebackup", pgw_pg_basebackup(n2->pg, "127.0.0.1", n1->port, T_CLONE));
	CHECK(pgw_pg_write_config(n2->pg, NULL, "127.0.0.1", n1->port, "node2") == 0);
	TIMED("start standby", pgw_pg_start(n2->pg, T_START));
	wait_streaming(n2, &st);
	show("node2 standby", &st);
	CHECK(st.in_recovery && st.timeline == 1 && st.received_lsn > 0);
	CHECK(!strcmp(st.primary_host, "127.0.0.1") && st.primary_port == n1->port);
	pgw_pg_observe(n1->pg, T_OBSERVE, &st);
	show("node1 primary", &st);
	CHECK(st.nreplication == 1 && !strcmp(st.replication[0].application_name, "node2"));
	save_controldata(fixtures, n2, "standby_running");
}

/* The smoke test holds no lease: the promotion may always go on waiting. */
static bool keep_always(void *arg)
{
	(void)arg;
	return true;
}

static void phase_promote(struct node *n1, struct node *n2)
{
	const char *slots[] = {"node1"};
	struct pgw_pg_state st;
	uint64_t lsn = 0;
	int parent = 0;
	char reason[128], lsntext[32];

	TIMED("promote", pgw_pg_promote(n2->pg, T_PROMOTE, keep_always, NULL));
	pgw_pg_observe(n2->pg, T_OBSERVE, &st);
	show("node2 promoted", &st);
	CHECK(!st.in_recovery && st.timeline == 2);
	CHECK(pgw_pg_timeline_switch(n2->pg, 2, &parent, &lsn, reason, sizeof(reason)) == 0);
	pgw_lsn_format(lsn, lsntext, sizeof(lsntext));
	printf("timeline 2 switched at %s (%s)\n", lsntext, reason);
	CHECK(pgw_pg_sync_slots(n2->pg, slots, 1, 10000) == 0);
	const char *mode = getenv("SMOKE_OLD_PRIMARY_STOP");

	/* "immediate" leaves node1 crashed: pg_rewind must recover it in single-user mode */
	TIMED("stop node1", pgw_pg_stop(n1->pg, mode ? mode : "fast", T_STOP));
	TIMED("stop node2", pgw_pg_stop(n2->pg, "fast", T_STOP));
	CHECK(pgw_pg_stop(n1->pg, "fast", T_STOP) == 0); /* already stopped */
}

/* Clone node1 again over its existing data directory, follow, stop. */
static void reclone(struct node *n1, struct node *n2)
{
	struct pgw_pg_state st;
	char old[600];

	TIMED("basebackup over existing data",
	      pgw_pg_basebackup(n1->pg, "127.0.0.1", n2->port, T_CLONE));
	snprintf(old, sizeof(old), "%s.old", n1->data);
	CHECK(access(old, F_OK) != 0);
	CHECK(pgw_pg_write_config(n1->pg, NULL, "127.0.0.1", n2->port, "node1") == 0);
	TIMED("start re-cloned node1", pgw_pg_start(n1->pg, T_START));
	wait_streaming(n1, &st);
	show("node1 re-cloned", &st);
	CHECK(st.in_recovery && st.timeline == 2);
	TIMED("stop node1", pgw_pg_stop(n1->pg, "fast", T_STOP));
}

static void phase_rewind(struct node *n1, struct node *n2, const char *fixtures)
{
	struct pgw_pg_state st;

	CHECK(pgw_pg_write_config(n2->pg, NULL, NULL, 0, NULL) == 0);
	TIMED("restart node2 as primary", pgw_pg_start(n2->pg, T_START));
	TIMED("rewind", pgw_pg_rewind(n1->pg, "127.0.0.1", n2->port, T_REWIND));
	CHECK(pgw_pg_write_config(n1->pg, NULL, "127.0.0.1", n2->port, "node1") == 0);
	TIMED("start node1 as standby", pgw_pg_start(n1->pg, T_START));
	wait_streaming(n1, &st);
	show("node1 rewound standby", &st);
	CHECK(st.in_recovery && st.timeline == 2 && st.primary_port == n2->port);
	pgw_pg_observe(n2->pg, T_OBSERVE, &st);
	show("node2 primary", &st);
	CHECK(st.nreplication == 1 && !strcmp(st.replication[0].application_name, "node1"));
	TIMED("stop node1", pgw_pg_stop(n1->pg, "fast", T_STOP));
	save_controldata(fixtures, n1, "standby_shut_down");
	reclone(n1, n2);
	save_controldata(fixtures, n2, "primary_shut_down");
	pgw_pg_observe(n1->pg, T_OBSERVE, &st);
	CHECK(!st.running && !st.accepting && st.datadir == PGW_DATADIR_VALID);
}

int main(int argc, char **argv)
{
	struct node n1, n2;
	const char *fixtures = argc > 4 ? argv[4] : NULL;
	double t0 = now_s();

	if (argc < 4) {
		fprintf(stderr, "usage: %s BASE_DIR PORT1 PORT2 [FIXTURES_DIR]\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	node_init(&n1, argv[1], "node1", atoi(argv[2]));
	node_init(&n2, argv[1], "node2", atoi(argv[3]));
	phase_primary(&n1, fixtures);
	phase_standby(&n1, &n2, fixtures);
	phase_promote(&n1, &n2);
	phase_rewind(&n1, &n2, fixtures);
	pgw_pg_free(n1.pg);
	pgw_pg_free(n2.pg);
	printf("SMOKE OK in %.1f s\n", now_s() - t0);
	return 0;
}
