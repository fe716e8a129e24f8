/*
 * sdnotify.h - systemd's side of pgwarden's liveness (Type=notify, WatchdogSec=):
 * READY=1 once the first observation is done, STATUS= with the role and the
 * reason of the last decision, WATCHDOG=1 from the HA loop only (so a loop that
 * is stuck gets pgwarden restarted by systemd too), STOPPING=1 on shutdown.
 *
 * Thin wrappers over libsystemd's sd_notify(); without $NOTIFY_SOCKET (not
 * started by systemd) every call does nothing.
 */
#ifndef PGW_SDNOTIFY_H
#define PGW_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* READY=1 with a first STATUS= line. */
void pgw_sd_ready(const char *status);
/* STATUS=... */
void pgw_sd_status(const char *status);
/* WATCHDOG=1, when systemd asked for it (WatchdogSec=). */
void pgw_sd_watchdog(void);
/* STOPPING=1 with a STATUS= line. */
void pgw_sd_stopping(const char *status);
/* systemd's watchdog interval in microseconds, 0 when it is not enabled. */
uint64_t pgw_sd_watchdog_usec(void);

#endif
