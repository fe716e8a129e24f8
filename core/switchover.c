/*
 * switchover.c - what pgwardenctl and POST /switchover check before they write the
 * failover key for a switchover or a manual failover (each refusal with its reason);
 * see switchover.h.
 */
#include "switchover.h"

#include <stdio.h>
#include <string.h>

#include "decide.h"

static bool given(const char *s)
{
	return s && *s;
}

static bool check_candidate(const struct pgw_cluster *c, const char *scope, const char *cand,
                            char *err, size_t errlen)
{
	const struct pgw_member *m = pgw_cluster_member(c, cand);
	char why[256];

	if (!m) {
		snprintf(err, errlen, "candidate %s is not a member of cluster %s", cand, scope);
		return false;
	}
	if (c->has_leader && strcmp(c->leader, cand) == 0) {
		snprintf(err, errlen, "candidate %s is already the leader of cluster %s", cand,
		         scope);
		return false;
	}
	/* the daemons' own rule (decide.c), so that a request accepted here is not
	 * cancelled by the leader for a reason this check did not know */
	if (!pgw_candidate_eligible(m, pgw_cluster_leader_optime(c), c->max_lag, why,
	                            sizeof(why))) {
		snprintf(err, errlen, "candidate %s", why);
		return false;
	}
	return true;
}

/* Something any replica could take over from: at least one healthy replica. */
static bool any_candidate(const struct pgw_cluster *c, const char *scope, char *err, size_t errlen)
{
	char why[256];

	for (int i = 0; i < c->nmembers; i++)
		if (check_candidate(c, scope, c->members[i].name, why, sizeof(why)))
			return true;
	snprintf(err, errlen, "cluster %s has no healthy replica to switch over to", scope);
	return false;
}

bool pgw_check_switchover(const struct pgw_cluster *c, const char *scope, bool failover,
                          const char *leader, const char *candidate, char *err, size_t errlen)
{
	if (c->paused) {
		snprintf(err, errlen,
		         "cluster %s is paused (maintenance mode): run `pgwardenctl resume` first",
		         scope);
		return false;
	}
	if (c->failover.present) {
		snprintf(err, errlen, "a switchover is already pending in cluster %s", scope);
		return false;
	}
	if (!failover && !c->has_leader) {
		snprintf(err, errlen, "cluster %s has no leader: use failover", scope);
		return false;
	}
	if (!failover && given(leader) && strcmp(leader, c->leader) != 0) {
		snprintf(err, errlen, "%s is not the leader of cluster %s (the leader is %s)",
		         leader, scope, c->leader);
		return false;
	}
	if (failover && !given(candidate)) {
		snprintf(err, errlen, "failover needs a candidate (--candidate NAME)");
		return false;
	}
	if (given(candidate))
		return check_candidate(c, scope, candidate, err, errlen);
	return any_candidate(c, scope, err, errlen);
}
