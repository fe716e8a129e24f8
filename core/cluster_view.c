/*
 * cluster_view.c - lookups on the cluster as read (cluster_types.h).
 */
#include "cluster_types.h"

#include <string.h>

const struct pgw_member *pgw_cluster_member(const struct pgw_cluster *c, const char *name)
{
	for (int i = 0; i < c->nmembers; i++)
		if (strcmp(c->members[i].name, name) == 0)
			return &c->members[i];
	return NULL;
}

const struct pgw_member *pgw_cluster_leader_member(const struct pgw_cluster *c)
{
	return c->has_leader ? pgw_cluster_member(c, c->leader) : NULL;
}

int64_t pgw_cluster_leader_optime(const struct pgw_cluster *c)
{
	const struct pgw_member *l = pgw_cluster_leader_member(c);
	int64_t pos = c->optime;

	if (l && l->xlog_location > pos)
		pos = l->xlog_location;
	return pos < 0 ? -1 : pos;
}

int64_t pgw_cluster_lag(const struct pgw_cluster *c, const struct pgw_member *m)
{
	int64_t ref = pgw_cluster_leader_optime(c);

	if (ref < 0 || m->xlog_location < 0)
		return -1;
	return ref > m->xlog_location ? ref - m->xlog_location : 0;
}

bool pgw_sync_key_lists(const struct pgw_sync_key *k, const char *name)
{
	if (!k->present || k->malformed)
		return false;
	for (int i = 0; i < k->n && i < PGW_SYNC_MAX; i++)
		if (strcmp(k->members[i], name) == 0)
			return true;
	return false;
}

/*
 * S2: every commit acknowledged in synchronous mode is on each standby the sync key
 * names (the leader adds one only after it holds everything acknowledged before) and
 * on the leader the key belongs to.  Anyone else may lack one: not promoted.  No
 * key, or an unreadable one: nobody, as Patroni does.
 */
bool pgw_sync_allows(const struct pgw_cluster *c, const char *name)
{
	if (!c->sync_conf.mode)
		return true;
	if (!c->sync.present || c->sync.malformed)
		return false;
	return strcmp(c->sync.leader, name) == 0 || pgw_sync_key_lists(&c->sync, name);
}

bool pgw_sync_standby_of(const struct pgw_cluster *c, const char *name)
{
	return c->sync_conf.mode && c->has_leader && c->sync.present && !c->sync.malformed &&
	       strcmp(c->sync.leader, c->leader) == 0 && pgw_sync_key_lists(&c->sync, name);
}

void pgw_cluster_derive(struct pgw_cluster *c)
{
	for (int i = 0; i < c->nmembers; i++)
		c->members[i].sync_blocked = !pgw_sync_allows(c, c->members[i].name);
}
