/*
 * sync.c - the leader's synchronous standbys and the safe order of changing them;
 * see sync.h.
 */
#include "sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct cand {
	const char *name;
	const struct pgw_pg_replication *row;
	bool in_key;   /* the sync key names it */
	bool in_names; /* PostgreSQL waits for it now */
};

static bool key_is_ours(const struct pgw_cluster *c, const char *self)
{
	return c->sync.present && !c->sync.malformed && strcmp(c->sync.leader, self) == 0;
}

/* A healthy member that streams from us and may be a synchronous standby. */
static bool usable(const struct pgw_cluster *c, const char *self,
                   const struct pgw_pg_replication *r)
{
	const struct pgw_member *m = pgw_cluster_member(c, r->application_name);

	return m && strcmp(m->name, self) != 0 && strcmp(r->state, "streaming") == 0 &&
	       !m->nosync && !m->nofailover && strcmp(m->role, "replica") == 0 &&
	       strcmp(m->state, "running") == 0;
}

const char *pgw_sync_standby_value(const struct pgw_sync_conf *sc)
{
	return !sc->mode ? NULL : sc->strict ? "*" : "";
}

bool pgw_sync_names_list(const char *names, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = strchr(names, '"'); p; p = strchr(p + 1, '"')) {
		if (strncmp(p + 1, name, n) == 0 && p[1 + n] == '"')
			return true;
		p = strchr(p + 1, '"'); /* the closing quote */
		if (!p)
			break;
	}
	return false;
}

/*
 * Ahead in the choice: already in the key, then already waited for (no needless
 * change: two standbys that overtake each other must not swap places every loop, or
 * neither ever passes a barrier), then less lag.
 */
static bool before(const struct cand *a, const struct cand *b)
{
	if (a->in_key != b->in_key)
		return a->in_key;
	if (a->in_names != b->in_names)
		return a->in_names;
	if (a->row->flush_lsn != b->row->flush_lsn)
		return a->row->flush_lsn > b->row->flush_lsn;
	return strcmp(a->name, b->name) < 0;
}

/* The chosen standbys, best first; returns how many (at most c->sync_conf.count). */
static int choose(const struct pgw_cluster *c, const char *self, const struct pgw_pg_state *pg,
                  struct cand *out)
{
	struct cand all[PGW_PG_MAX_REPLICATION] = {{0}};
	int n = 0, want = c->sync_conf.count;

	for (int i = 0; i < pg->nreplication && i < PGW_PG_MAX_REPLICATION; i++) {
		const struct pgw_pg_replication *r = &pg->replication[i];
		struct cand x = {r->application_name, r,
		                 key_is_ours(c, self) &&
		                     pgw_sync_key_lists(&c->sync, r->application_name),
		                 pgw_sync_names_list(pg->sync_names, r->application_name)};
		int j = n;

		if (!usable(c, self, r))
			continue;
		for (int k = 0; k < n; k++)
			if (strcmp(all[k].name, x.name) == 0)
				goto next; /* one row per member */
		while (j > 0 && before(&x, &all[j - 1])) {
			all[j] = all[j - 1];
			j--;
		}
		all[j] = x;
		n++;
	next:;
	}
	if (want < 1)
		want = 1;
	if (want > PGW_SYNC_MAX)
		want = PGW_SYNC_MAX;
	if (n > want)
		n = want;
	memcpy(out, all, (size_t)n * sizeof(*out));
	return n;
}

void pgw_sync_render(const char (*members)[PGW_NAME_MAX], int n, bool strict, char *buf, size_t len)
{
	size_t used;

	if (n <= 0) {
		snprintf(buf, len, "%s", strict ? "*" : "");
		return;
	}
	used = (size_t)snprintf(buf, len, "FIRST %d (", n);
	for (int i = 0; i < n && used < len; i++)
		used +=
		    (size_t)snprintf(buf + used, len - used, "%s\"%s\"", i ? ", " : "", members[i]);
	if (used < len)
		snprintf(buf + used, len - used, ")");
}

static void list_names(const char (*members)[PGW_NAME_MAX], int n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "", members[i]);
	if (n == 0)
		snprintf(buf, len, "none");
}

static bool listed(const char (*members)[PGW_NAME_MAX], int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(members[i], name) == 0)
			return true;
	return false;
}

void pgw_sync_plan(const struct pgw_cluster *c, const char *self, const struct pgw_pg_state *pg,
                   struct pgw_sync_track *t, struct pgw_sync_plan *p)
{
	struct cand chosen[PGW_SYNC_MAX];
	char chosen_names[PGW_SYNC_MAX][PGW_NAME_MAX];
	char keep[PGW_SYNC_MAX][PGW_NAME_MAX], list[PGW_SYNC_MAX * (PGW_NAME_MAX + 1)];
	int n, nkeep = 0;
	bool ours = key_is_ours(c, self);

	memset(p, 0, sizeof(*p));
	if (!c->sync_conf.mode) {
		t->names[0] = '\0';
		t->barrier = 0;
		if (c->sync.present) {
			p->what = PGW_SYNC_DELETE_KEY;
			snprintf(p->why, sizeof(p->why), "synchronous_mode is off");
		}
		return;
	}
	if (!pg->accepting || pg->in_recovery)
		return; /* no look at pg_stat_replication this time: change nothing */
	n = choose(c, self, pg, chosen);
	for (int i = 0; i < n; i++)
		snprintf(chosen_names[i], PGW_NAME_MAX, "%s", chosen[i].name);
	pgw_sync_render(chosen_names, n, c->sync_conf.strict, p->names, sizeof(p->names));

	/* 1. the key keeps only standbys still chosen (and is this leader's) */
	for (int i = 0; ours && i < c->sync.n && i < PGW_SYNC_MAX; i++)
		if (listed(chosen_names, n, c->sync.members[i]))
			snprintf(keep[nkeep++], PGW_NAME_MAX, "%s", c->sync.members[i]);
	if (!ours || nkeep != c->sync.n) {
		p->what = PGW_SYNC_WRITE_KEY;
		memcpy(p->members, keep, sizeof(keep));
		p->n = nkeep;
		list_names(keep, nkeep, list, sizeof(list));
		snprintf(p->why, sizeof(p->why), "sync key: %.200s (%s)", list,
		         ours ? "dropping standbys no longer synchronous before PostgreSQL stops "
		                "waiting for them"
		              : "this leader's own key");
		return;
	}
	/* 2. PostgreSQL waits for exactly the chosen standbys */
	if (strcmp(pg->sync_names, p->names) != 0) {
		/* a barrier belongs to one stretch of names in effect: should these names
		 * come back later, everything acknowledged meanwhile lies above the old one
		 * (simulator seed 26808) */
		t->names[0] = '\0';
		t->barrier = 0;
		p->what = PGW_SYNC_SET_NAMES;
		list_names(chosen_names, n, list, sizeof(list));
		if (n > 0)
			snprintf(p->why, sizeof(p->why), "synchronous standbys: %.200s", list);
		else if (c->sync_conf.strict)
			snprintf(p->why, sizeof(p->why),
			         "no synchronous standby available: commits wait until one "
			         "streams (synchronous_mode_strict)");
		else
			snprintf(p->why, sizeof(p->why),
			         "no synchronous standby available: commits are acknowledged "
			         "without one (asynchronous until a standby streams)");
		return;
	}
	/* 3. in effect: the barrier, then standbys that hold everything below it */
	if (strcmp(t->names, p->names) != 0 || t->barrier == 0) {
		snprintf(t->names, sizeof(t->names), "%s", p->names);
		t->barrier = pg->flush_lsn;
	}
	memcpy(p->members, keep, sizeof(keep));
	p->n = nkeep;
	for (int i = 0; i < n && t->barrier > 0; i++) {
		const struct pgw_pg_replication *r = chosen[i].row;

		if (listed(keep, nkeep, chosen[i].name) || p->n >= PGW_SYNC_MAX)
			continue;
		if ((strcmp(r->sync_state, "sync") != 0 && strcmp(r->sync_state, "quorum") != 0) ||
		    r->flush_lsn < t->barrier)
			continue;
		snprintf(p->members[p->n++], PGW_NAME_MAX, "%s", chosen[i].name);
	}
	if (p->n != nkeep) {
		p->what = PGW_SYNC_WRITE_KEY;
		list_names(p->members, p->n, list, sizeof(list));
		snprintf(p->why, sizeof(p->why),
		         "sync key: %.200s (flushed past %" PRIu64 ", where the current "
		         "synchronous_standby_names took effect)",
		         list, t->barrier);
	}
}
