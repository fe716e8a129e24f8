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
