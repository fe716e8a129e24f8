/*
 * test_sync.c - synchronous_mode (core/sync.c, cluster_view.c): the standbys the
 * leader chooses, the safe order of its changes (key shrinks first, names next, a
 * standby joins the key only past the barrier), and who may be promoted (S2).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cluster_types.h"
#include "sync.h"

struct fx {
	struct pgw_cluster c;
	struct pgw_pg_state pg;
	struct pgw_sync_track t;
	struct pgw_sync_plan p;
};

static void member(struct fx *f, const char *name, const char *role)
{
	struct pgw_member *m = &f->c.members[f->c.nmembers++];

	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->role, sizeof(m->role), "%s", role);
	snprintf(m->state, sizeof(m->state), "running");
}

/* a pg_stat_replication row: streaming, flushed up to flush */
static void row(struct fx *f, const char *name, uint64_t flush, const char *sync_state)
{
	struct pgw_pg_replication *r = &f->pg.replication[f->pg.nreplication++];

	memset(r, 0, sizeof(*r));
	snprintf(r->application_name, sizeof(r->application_name), "%s", name);
	snprintf(r->state, sizeof(r->state), "streaming");
	snprintf(r->sync_state, sizeof(r->sync_state), "%s", sync_state);
	r->flush_lsn = flush;
}

static void key(struct fx *f, const char *leader, const char *a, const char *b)
{
	memset(&f->c.sync, 0, sizeof(f->c.sync));
	f->c.sync.present = true;
	snprintf(f->c.sync.leader, sizeof(f->c.sync.leader), "%s", leader);
	if (a)
		snprintf(f->c.sync.members[f->c.sync.n++], PGW_NAME_MAX, "%s", a);
	if (b)
		snprintf(f->c.sync.members[f->c.sync.n++], PGW_NAME_MAX, "%s", b);
	f->c.sync.mod_revision = 7;
}

static void setup3(struct fx *f, bool strict)
{
	memset(f, 0, sizeof(*f));
	f->c.sync_conf = (struct pgw_sync_conf){.mode = true, .strict = strict, .count = 1};
	f->c.has_leader = true;
	snprintf(f->c.leader, sizeof(f->c.leader), "node1");
	member(f, "node1", "master");
	member(f, "node2", "replica");
	member(f, "node3", "replica");
	f->pg.flush_lsn = 1000;
	f->pg.accepting = true;
}

static void plan(struct fx *f)
{
	pgw_sync_plan(&f->c, "node1", &f->pg, &f->t, &f->p);
}

static void test_render(void **state)
{
	char names[2][PGW_NAME_MAX] = {"node2", "node3"}, buf[256];

	(void)state;
	pgw_sync_render(names, 1, false, buf, sizeof(buf));
	assert_string_equal(buf, "FIRST 1 (\"node2\")");
	pgw_sync_render(names, 2, true, buf, sizeof(buf));
	assert_string_equal(buf, "FIRST 2 (\"node2\", \"node3\")");
	pgw_sync_render(names, 0, true, buf, sizeof(buf));
	assert_string_equal(buf, "*");
	pgw_sync_render(names, 0, false, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

/* From nothing: the leader's own empty key, then the names, then the barrier. */
static void test_safe_order_from_scratch(void **state)
{
	struct fx f;

	(void)state;
	setup3(&f, false);
	row(&f, "node2", 900, "async");
	row(&f, "node3", 950, "async");
	plan(&f); /* no key yet: this leader's own, with no standby */
	assert_int_equal(f.p.what, PGW_SYNC_WRITE_KEY);
	assert_int_equal(f.p.n, 0);
	key(&f, "node1", NULL, NULL);
	plan(&f); /* then PostgreSQL waits for the least lagging */
	assert_int_equal(f.p.what, PGW_SYNC_SET_NAMES);
	assert_string_equal(f.p.names, "FIRST 1 (\"node3\")");
	snprintf(f.pg.sync_names, sizeof(f.pg.sync_names), "%s", f.p.names);
	f.pg.replication[1].flush_lsn = 990; /* in effect, but not yet past the barrier */
	snprintf(f.pg.replication[1].sync_state, 16, "sync");
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_NONE);
	assert_int_equal(f.t.barrier, 1000);
	f.pg.flush_lsn = 5000; /* the barrier stays where the names took effect */
	f.pg.replication[1].flush_lsn = 1000;
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_WRITE_KEY);
	assert_int_equal(f.p.n, 1);
	assert_string_equal(f.p.members[0], "node3");
}

/* Names that change away and come back get a new barrier (simulator seed 26808: the
 * old one let a lagging standby into the key over commits acknowledged meanwhile). */
static void test_barrier_is_retaken_when_names_come_back(void **state)
{
	struct fx f;

	(void)state;
	setup3(&f, false);
	key(&f, "node1", NULL, NULL);
	snprintf(f.pg.sync_names, sizeof(f.pg.sync_names), "FIRST 1 (\"node2\")");
	row(&f, "node2", 900, "sync");
	plan(&f); /* in effect: barrier 1000, node2 not past it */
	assert_int_equal(f.t.barrier, 1000);
	f.pg.nreplication = 0; /* node2 gone: asynchronous for a while */
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_SET_NAMES);
	assert_string_equal(f.p.names, "");
	f.pg.sync_names[0] = '\0';
	f.pg.flush_lsn = 9000; /* acknowledged at once meanwhile */
	row(&f, "node2", 1500, "async");
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_SET_NAMES);
	snprintf(f.pg.sync_names, sizeof(f.pg.sync_names), "%s", f.p.names);
	snprintf(f.pg.replication[0].sync_state, 16, "sync");
	plan(&f); /* past the old barrier (1000), not the new one (9000) */
	assert_int_equal(f.p.what, PGW_SYNC_NONE);
	assert_int_equal(f.t.barrier, 9000);
}

/* A standby that stops streaming leaves the key before PostgreSQL stops waiting. */
static void test_key_shrinks_before_the_names_change(void **state)
{
	struct fx f;

	(void)state;
	setup3(&f, false);
	key(&f, "node1", "node3", NULL);
	snprintf(f.pg.sync_names, sizeof(f.pg.sync_names), "FIRST 1 (\"node3\")");
	row(&f, "node2", 900, "async"); /* node3 is gone from pg_stat_replication */
	f.pg.accepting = false;         /* ... or not: this look failed */
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_NONE);
	f.pg.accepting = true;
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_WRITE_KEY);
	assert_int_equal(f.p.n, 0);
	key(&f, "node1", NULL, NULL);
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_SET_NAMES);
	assert_string_equal(f.p.names, "FIRST 1 (\"node2\")");
}

/* A key member keeps its place over a less lagging newcomer (no needless change). */
static void test_key_member_is_kept(void **state)
{
	struct fx f;

	(void)state;
	setup3(&f, false);
	key(&f, "node1", "node2", NULL);
	snprintf(f.pg.sync_names, sizeof(f.pg.sync_names), "FIRST 1 (\"node2\")");
	f.t.barrier = 500;
	snprintf(f.t.names, sizeof(f.t.names), "%s", f.pg.sync_names);
	row(&f, "node2", 800, "sync");
	row(&f, "node3", 999, "async");
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_NONE);
}

/* nosync and nofailover members are never chosen; strict mode waits for anyone. */
static void test_nosync_and_strict(void **state)
{
	struct fx f;

	(void)state;
	setup3(&f, true);
	f.c.members[1].nosync = true;
	f.c.members[2].nofailover = true;
	key(&f, "node1", NULL, NULL);
	row(&f, "node2", 900, "async");
	row(&f, "node3", 900, "async");
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_SET_NAMES);
	assert_string_equal(f.p.names, "*");
	f.c.sync_conf.strict = false;
	plan(&f);
	assert_string_equal(f.p.names, "");
}

/* A key of another leader is replaced by this leader's, naming no standby. */
static void test_old_leaders_key_is_replaced(void **state)
{
	struct fx f;

	(void)state;
	setup3(&f, false);
	key(&f, "node9", "node2", NULL);
	row(&f, "node2", 900, "sync");
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_WRITE_KEY);
	assert_int_equal(f.p.n, 0);
}

static void test_mode_off_deletes_the_key(void **state)
{
	struct fx f;

	(void)state;
	setup3(&f, false);
	f.c.sync_conf.mode = false;
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_NONE);
	key(&f, "node1", "node2", NULL);
	plan(&f);
	assert_int_equal(f.p.what, PGW_SYNC_DELETE_KEY);
}

/* S2: who may be promoted. */
static void test_who_may_be_promoted(void **state)
{
	struct fx f;

	(void)state;
	setup3(&f, false);
	assert_false(pgw_sync_allows(&f.c, "node2")); /* no key: nobody */
	key(&f, "node1", "node2", NULL);
	assert_true(pgw_sync_allows(&f.c, "node2"));
	assert_false(pgw_sync_allows(&f.c, "node3"));
	assert_true(pgw_sync_allows(&f.c, "node1")); /* the leader it belongs to */
	pgw_cluster_derive(&f.c);
	assert_false(f.c.members[1].sync_blocked);
	assert_true(f.c.members[2].sync_blocked);
	assert_true(pgw_sync_standby_of(&f.c, "node2"));
	assert_false(pgw_sync_standby_of(&f.c, "node3"));
	snprintf(f.c.leader, sizeof(f.c.leader), "node2"); /* the key is not the new leader's */
	assert_false(pgw_sync_standby_of(&f.c, "node2"));
	f.c.sync.malformed = true;
	assert_false(pgw_sync_allows(&f.c, "node2"));
	f.c.sync_conf.mode = false;
	assert_true(pgw_sync_allows(&f.c, "node3"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_safe_order_from_scratch),
	    cmocka_unit_test(test_key_shrinks_before_the_names_change),
	    cmocka_unit_test(test_barrier_is_retaken_when_names_come_back),
	    cmocka_unit_test(test_key_member_is_kept),
	    cmocka_unit_test(test_nosync_and_strict),
	    cmocka_unit_test(test_old_leaders_key_is_replaced),
	    cmocka_unit_test(test_mode_off_deletes_the_key),
	    cmocka_unit_test(test_who_may_be_promoted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
