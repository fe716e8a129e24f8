/*
 * wdguard.h - the HA loop's use of the hardware watchdog (ARCHITECTURE.md §4,
 * rules 3, 4 and 5): when it is armed, when it is petted, when it is disarmed,
 * and what a node whose watchdog cannot be armed may do.  The device itself is
 * watchdog/watchdog.c; this is policy, called only from the HA loop's thread.
 *
 *   open      at start, before privileges are dropped (the device is root's);
 *             opening leaves it disabled (or, nowayout, kept alive by us)
 *   arm       before this node takes the leader key, and whenever it holds the
 *             key or runs as primary, with W = pgw_wdguard_timeout(...)
 *   pet       only right after a successful lease renewal, and only when the
 *             renewal took at most S - R (rule 3)
 *   disarm    once PostgreSQL no longer accepts writes and the key is not ours;
 *             a nowayout device is petted every loop instead (rule 5)
 *   close     on a clean shutdown, after the key was released: magic close
 *
 * Mode off: nothing is opened.  automatic: used when it works, a warning when
 * not.  required: a node whose watchdog cannot be armed never takes the leader
 * key and gives it up if it holds it (pgw_wdguard_unusable feeds the decision).
 */
#ifndef PGW_WDGUARD_H
#define PGW_WDGUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct pgw_wdguard;

/* What the REST API, the member key and pgwardenctl show. */
struct pgw_wd_status {
	int mode;          /* enum pgw_wd_mode */
	bool open;         /* the device is open */
	bool armed;        /* the timer runs (armed by us, or a nowayout device) */
	int timeout;       /* W while armed, else 0 */
	bool failed;       /* the last open or arm failed */
	bool nowayout;     /* the device cannot be stopped */
	char identity[33]; /* the driver's identity */
	char reason[200];  /* why it failed, "" otherwise */
};

/* Open cfg->watchdog.device unless mode is off.  Never NULL (a failure is kept). */
struct pgw_wdguard *pgw_wdguard_open(const struct pgw_config *cfg);
/*
 * Shutdown.  clean: PostgreSQL stopped and the key was released, so disable the
 * card and magic-close it.  Otherwise the timer is left running: the keeper holds the
 * device while PostgreSQL may write, and the machine is reset W after the last pet.
 * NULL is accepted.
 */
void pgw_wdguard_close(struct pgw_wdguard *g, bool clean);
/*
 * After privileges are dropped: from now on a keeper process holds the open device
 * (wdkeeper.h), so that this daemon's death never pings it while PostgreSQL may write.
 */
void pgw_wdguard_keep(struct pgw_wdguard *g);
/* "off", "automatic" or "required". */
const char *pgw_wdguard_mode_name(int mode);

/*
 * The timeout to arm with for a lease of ttl_s (rule 3: W <= TTL - S).  It is also
 * kept below TTL - R - loop_wait - 1: a daemon that dies (a crash, SIGKILL) together
 * with its keeper closes the device, and that close pings it once, so the reset comes
 * W after the death, which may be up to one loop after the last renewal.  0 when no W
 * is usable.
 */
int pgw_wdguard_timeout(int ttl_s, int margin_s, int loop_wait_s);

/*
 * About to take, or holding, the leader role: arm for a lease of ttl_s (re-arm
 * when W changes).  True when armed, or when the mode lets the node lead without
 * one (off, or automatic after a warning); false when mode is required and the
 * watchdog cannot be armed (the reason is kept and logged).
 */
bool pgw_wdguard_arm(struct pgw_wdguard *g, int ttl_s, int margin_s, int loop_wait_s);

/* A lease renewal sent at t_send_ms succeeded and it is now now_ms: pet (rule 3). */
void pgw_wdguard_renewed(struct pgw_wdguard *g, int64_t t_send_ms, int64_t now_ms,
                         int64_t margin_ms);

/* Not leader and PostgreSQL not accepting writes: disarm, or keep a nowayout one alive. */
/*
 * The lease was not renewed this loop: lower W to bound_s (pgw_lease_wd_bound_s) when
 * that is shorter, so that the ping of a crash's close cannot carry the reset past the
 * lease deadline.  The next renewal in time restores the full W.
 */
void pgw_wdguard_bound(struct pgw_wdguard *g, int bound_s);

void pgw_wdguard_idle(struct pgw_wdguard *g);

/* While armed by this node: when (mono ms) the device resets the machine unless it is
 * petted before; 0 when not armed. */
int64_t pgw_wdguard_fires_at(const struct pgw_wdguard *g);

/* Mode required and no usable watchdog: the node must not lead. */
bool pgw_wdguard_unusable(const struct pgw_wdguard *g);

void pgw_wdguard_status(const struct pgw_wdguard *g, struct pgw_wd_status *out);

#endif
