/*
 * switchover.h - may a switchover or failover request be written?  The same rules as
 * the decision core (decide.c) applies, for pgwardenctl and POST /switchover.
 */
#ifndef PGW_SWITCHOVER_H
#define PGW_SWITCHOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster_types.h"

/*
 * Check a switchover (failover = false) or failover request against the cluster.
 * leader/candidate may be NULL or "" (switchover: any healthy replica).  Returns true
 * when it may be written; false with the reason in err.
 */
bool pgw_check_switchover(const struct pgw_cluster *c, const char *scope, bool failover,
                          const char *leader, const char *candidate, char *err, size_t errlen);

#endif
