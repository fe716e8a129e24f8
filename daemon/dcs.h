/*
 * dcs.h - the dynamic configuration: the `config` key in etcd, as Patroni keeps
 * it ({"ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover",
 * "primary_start_timeout", "postgresql": {"use_pg_rewind", "use_slots",
 * "parameters": {...}}, "pause", ...}).  The bootstrap node writes it from
 * bootstrap.dcs; every HA loop applies it at its next cycle.
 *
 * A config key that does not parse or breaks a rule changes nothing: the loop
 * keeps its settings and logs why (ARCHITECTURE.md S5).
 */
#ifndef PGW_DCS_H
#define PGW_DCS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* JSON of these settings (malloc'd). */
char *pgw_dcs_to_json(const struct pgw_dcs *d);

/*
 * Parse the config key into *out, starting from `base` for the keys it does not
 * set.  Validated (positive integers, booleans, the timing rule of lease.c with
 * this node's safety margin margin_s); false with err when anything is wrong, and
 * then *out is untouched.  On success *out owns its parameter list: release it
 * with pgw_dcs_free().
 */
bool pgw_dcs_from_json(const char *json, const struct pgw_dcs *base, int margin_s,
                       struct pgw_dcs *out, char *err, size_t errlen);

/* A deep copy of src into *dst (false when out of memory). */
bool pgw_dcs_copy(struct pgw_dcs *dst, const struct pgw_dcs *src);
void pgw_dcs_free(struct pgw_dcs *d);
/* Do the PostgreSQL parameters differ (name, value or order)? */
bool pgw_dcs_params_differ(const struct pgw_dcs *a, const struct pgw_dcs *b);

#endif
