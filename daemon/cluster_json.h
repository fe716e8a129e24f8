/*
 * cluster_json.h - the bodies of GET /cluster and GET /history, rendered from
 * the cluster as last read from etcd, in Patroni's shapes:
 *   /cluster  {"members": [{name, role, state, api_url, host, port, timeline,
 *              lag, tags}], "pause": true, "scheduled_switchover": {...}}
 *   /history  the history key's JSON array, "[]" when absent or malformed.
 * Pure functions (no I/O, no locks); the HA loop calls them and hands the
 * strings to pgw_rest_publish().
 */
#ifndef PGW_CLUSTER_JSON_H
#define PGW_CLUSTER_JSON_H

#include <stdbool.h>

#include "cluster.h"

/*
 * GET /cluster.  Members sorted by name; role "leader" for the leader-key holder,
 * "replica" otherwise; lag (replicas only) = max(0, leader optime - xlog_location)
 * where the leader optime is max(c->optime, the leader member's xlog_location), or
 * "unknown" when either side is unknown.  "pause" only when paused; scheduled_switchover
 * (a JSON object as text, may be NULL) embedded when it parses as an object.
 * malloc'd, NULL when out of memory.
 */
char *pgw_cluster_json(const struct pgw_cluster *c, bool paused,
                       const char *scheduled_switchover_json);

/* GET /history: raw re-serialized when it parses as a JSON array, "[]" otherwise. malloc'd. */
char *pgw_history_json(const char *raw);
/* One JSON value and nothing but white space after it; NULL otherwise (no trailing
 * garbage: a request body or a key is taken whole or not at all). */
struct json_object *pgw_json_parse_whole(const char *text);

/*
 * The "scheduled_switchover" object of a failover key with a schedule, Patroni style:
 * {"at": "2026-11-23T12:00:00+00:00", "from": leader, "to": member} ("from"/"to" only
 * when set).  NULL when there is no usable scheduled switchover (or out of memory).
 */
char *pgw_scheduled_switchover_json(const struct pgw_failover *f);

#endif
