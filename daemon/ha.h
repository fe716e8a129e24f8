/*
 * ha.h - the HA loop: the imperative shell around the decision core.
 *
 * One thread, one loop: renew the lease, observe PostgreSQL and etcd, decide
 * (pgw_decide), act, publish the snapshot for the REST API, then sleep until
 * loop_wait passes or a watch on the leader key fires.  The timing rules of
 * ARCHITECTURE.md §4 are enforced here through lease.h.
 */
#ifndef PGW_HA_H
#define PGW_HA_H

#include <signal.h>

#include "config.h"
#include "wdguard.h"

/*
 * Run until *stop becomes non-zero, then shut down cleanly (stop PostgreSQL,
 * release the leader key); re-read the configuration file whenever *reload
 * becomes non-zero (SIGHUP).  wd is the watchdog main opened before dropping
 * privileges; the loop owns it from here and closes it.  Returns the process
 * exit status.
 */
int pgw_ha_run(const struct pgw_config *cfg, struct pgw_wdguard *wd, volatile sig_atomic_t *stop,
               volatile sig_atomic_t *reload);

#endif
