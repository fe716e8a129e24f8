/*
 * sdnotify.c - READY, STATUS, WATCHDOG and STOPPING for systemd; see sdnotify.h.
 * A notification is one datagram to systemd; the loop sends STATUS= every
 * cycle (once per loop_wait), so no state is kept here.
 */
#include "sdnotify.h"

#include <systemd/sd-daemon.h>

void pgw_sd_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void pgw_sd_status(const char *status)
{
	sd_notifyf(0, "STATUS=%s", status);
}

void pgw_sd_watchdog(void)
{
	if (pgw_sd_watchdog_usec() > 0)
		sd_notify(0, "WATCHDOG=1");
}

void pgw_sd_stopping(const char *status)
{
	sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}

uint64_t pgw_sd_watchdog_usec(void)
{
	uint64_t usec = 0;

	return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
