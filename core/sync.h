/*
 * sync.h - synchronous replication (synchronous_mode): which standbys the leader
 * relies on, and the order in which it changes them, as a pure function.
 *
 * The invariant (ARCHITECTURE S2): every commit acknowledged to a client is on every
 * standby that the sync key names, so that promoting one of them loses nothing.  The
 * leader keeps it by changing things in this order, one step per loop:
 *
 *   1. drop from the key each standby it will no longer wait for (the key shrinks
 *      before PostgreSQL stops waiting for it);
 *   2. set synchronous_standby_names to the chosen standbys, all of which must
 *      acknowledge each commit (FIRST n with exactly n names);
 *   3. once those names are in effect, note the primary's flush position (the
 *      barrier: every commit acknowledged under the old names lies below it), and
 *      add a chosen standby to the key only when it has flushed up to the barrier.
 *
 * A new leader first writes a key that names itself and no standby (ha_act.c,
 * before it promotes), so that standbys of the old leader cannot be promoted over
 * commits only it acknowledged.
 */
#ifndef PGW_SYNC_H
#define PGW_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_types.h"
#include "pg_types.h"

#define PGW_SYNC_NAMES_MAX 512

/* What the leader remembers between loops (in struct pgw_node_state). */
struct pgw_sync_track {
	char names[PGW_SYNC_NAMES_MAX]; /* the synchronous_standby_names of the barrier */
	uint64_t barrier;               /* the flush position once they were in effect; 0 */
};

enum pgw_sync_do {
	PGW_SYNC_NONE,       /* everything in place */
	PGW_SYNC_WRITE_KEY,  /* write the sync key {self, members} (compare-and-swap) */
	PGW_SYNC_SET_NAMES,  /* put names in synchronous_standby_names and reload */
	PGW_SYNC_DELETE_KEY, /* synchronous_mode is off: remove the sync key */
};

struct pgw_sync_plan {
	enum pgw_sync_do what;
	char members[PGW_SYNC_MAX][PGW_NAME_MAX]; /* WRITE_KEY: the standbys to name */
	int n;
	char names[PGW_SYNC_NAMES_MAX]; /* the synchronous_standby_names wanted */
	char why[400];                  /* for the log */
};

/*
 * synchronous_standby_names for these standbys: FIRST n ("a", "b"); with none, "*"
 * when strict (a commit waits for any standby), "" otherwise (asynchronous).
 */
void pgw_sync_render(const char (*members)[PGW_NAME_MAX], int n, bool strict, char *buf,
                     size_t len);

/*
 * What a node that does not lead puts in synchronous_standby_names: NULL without
 * synchronous_mode (the parameters' value stands), "*" when strict (its first commit as
 * a new primary already waits for a standby), "" otherwise.
 */
const char *pgw_sync_standby_value(const struct pgw_sync_conf *sc);

/* Is name among the quoted names of synchronous_standby_names (as rendered above)? */
bool pgw_sync_names_list(const char *names, const char *name);

/*
 * The leader's next step (c->sync_conf.mode on or off), from the cluster, this
 * PostgreSQL (a primary: its pg_stat_replication, flush position and the
 * synchronous_standby_names in effect) and what it remembers (t, updated).
 */
void pgw_sync_plan(const struct pgw_cluster *c, const char *self, const struct pgw_pg_state *pg,
                   struct pgw_sync_track *t, struct pgw_sync_plan *p);

#endif
