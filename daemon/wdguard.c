/*
 * wdguard.c - when the HA loop arms, pets and disarms the hardware watchdog;
 * see wdguard.h.  The device calls are watchdog/watchdog.c's.
 */
#include "wdguard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lease.h"
#include "log.h"
#include "watchdog.h"
#include "wdkeeper.h"

#define KEEPER_WAIT_MS 3000 /* a previous daemon's keeper, or ours at a clean close */

struct pgw_wdguard {
	int mode; /* enum pgw_wd_mode */
	char device[256];
	struct pgw_wd *wd; /* NULL: not open */
	bool armed;        /* armed by us (a nowayout device also runs when idle) */
	int timeout;       /* W of the current arming, as the driver reported it */
	int want;          /* the timeout that arming asked for */
	int max_timeout;   /* TTL - S of that arming */
	bool lowered;      /* a bound (pgw_wdguard_bound) set a shorter timeout */
	int64_t pinged_ms; /* when the countdown last restarted (arm, pet, bound), mono ms */
	bool failed;       /* the last open or arm failed */
	char reason[200];
	bool missed_window; /* the last renewal was too slow to pet (logged once) */
	char *data_dir;     /* PostgreSQL's, for the keeper */
	bool keep;          /* a keeper must hold the device (from pgw_wdguard_keep on) */
	struct pgw_wdkeeper keeper;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *pgw_wdguard_mode_name(int mode)
{
	return mode == PGW_WD_REQUIRED    ? "required"
	       : mode == PGW_WD_AUTOMATIC ? "automatic"
	                                  : "off";
}

/* Keep the reason; log it once per distinct reason.  Returns whether the node may lead. */
static bool failure(struct pgw_wdguard *g, const char *why)
{
	bool again = g->failed && strcmp(g->reason, why) == 0;

	g->failed = true;
	snprintf(g->reason, sizeof(g->reason), "%s", why);
	if (g->mode == PGW_WD_REQUIRED) {
		if (!again)
			pgw_error("watchdog (mode required): %s: this node will not become leader",
			          why);
		return false;
	}
	if (!again)
		pgw_warn("watchdog (mode automatic): %s: running without it", why);
	return true;
}

static bool try_open(struct pgw_wdguard *g)
{
	char err[256];
	const struct pgw_wd_info *i;

	if (g->wd)
		return true;
	g->wd = pgw_wd_open(g->device, err, sizeof(err));
	/* the keeper of a daemon that died lets go once PostgreSQL cannot write */
	for (int waited = 0; !g->wd && errno == EBUSY && waited < KEEPER_WAIT_MS; waited += 100) {
		struct timespec ts = {0, 100 * 1000000};

		if (waited == 0)
			pgw_info("watchdog %s is busy: waiting up to %d ms for the keeper of an "
			         "earlier daemon to let go",
			         g->device, KEEPER_WAIT_MS);
		nanosleep(&ts, NULL);
		g->wd = pgw_wd_open(g->device, err, sizeof(err));
	}
	if (!g->wd) {
		failure(g, err);
		return false;
	}
	i = pgw_wd_info(g->wd);
	pgw_info("watchdog %s opened: \"%s\", options 0x%x%s%s", g->device, i->identity, i->options,
	         i->emulated ? " (emulator)" : "",
	         i->nowayout ? "; nowayout: it cannot be stopped and is kept alive" : "");
	return true;
}

struct pgw_wdguard *pgw_wdguard_open(const struct pgw_config *cfg)
{
	struct pgw_wdguard *g = calloc(1, sizeof(*g));

	if (!g) {
		pgw_error("out of memory");
		abort();
	}
	g->mode = cfg->watchdog.mode;
	snprintf(g->device, sizeof(g->device), "%s", cfg->watchdog.device);
	g->data_dir = cfg->postgresql.data_dir ? strdup(cfg->postgresql.data_dir) : NULL;
	if (g->mode != PGW_WD_OFF)
		try_open(g);
	return g;
}

/*
 * An open device has a keeper once pgw_wdguard_keep was called; one that died is
 * started again.  False when none can be started: the device must then not be armed,
 * since this daemon's death would ping it (wdkeeper.h).
 */
static bool keeper_ensure(struct pgw_wdguard *g)
{
	char err[256];
	bool again = g->keeper.pid != 0;

	if (!g->wd || !g->keep || pgw_wdkeeper_alive(&g->keeper))
		return true;
	if (again)
		pgw_error("watchdog keeper died: starting another");
	if (pgw_wdkeeper_start(&g->keeper, pgw_wd_fd(g->wd), g->data_dir, err, sizeof(err)) != 0) {
		(void)failure(g, err);
		return false;
	}
	pgw_info("watchdog keeper %ld holds %s", (long)g->keeper.pid, g->device);
	return true;
}

void pgw_wdguard_keep(struct pgw_wdguard *g)
{
	g->keep = true;
	(void)keeper_ensure(g);
}

void pgw_wdguard_close(struct pgw_wdguard *g, bool clean)
{
	if (!g)
		return;
	if (g->wd && clean) {
		pgw_wd_close(g->wd);
		pgw_wdkeeper_stop(&g->keeper, true, KEEPER_WAIT_MS);
		pgw_info("watchdog %s closed (magic close)", g->device);
	} else if (g->wd) {
		/* PostgreSQL may still accept writes: leave the timer running; the keeper
		 * holds the device until PostgreSQL stops, or the reset */
		pgw_wdkeeper_stop(&g->keeper, false, 0);
		pgw_error("watchdog %s left armed: PostgreSQL did not stop cleanly", g->device);
	}
	free(g->data_dir);
	free(g);
}

int pgw_wdguard_timeout(int ttl_s, int margin_s, int loop_wait_s)
{
	int w = pgw_wd_max_timeout(ttl_s, margin_s);
	int crash = ttl_s - PGW_RESET_ALLOWANCE_MS / 1000 - loop_wait_s - 1;

	if (crash < w)
		w = crash;
	/* healthy pets come every loop_wait: a smaller W would fire in normal operation */
	return w > loop_wait_s ? w : 0;
}

bool pgw_wdguard_arm(struct pgw_wdguard *g, int ttl_s, int margin_s, int loop_wait_s)
{
	int want = pgw_wdguard_timeout(ttl_s, margin_s, loop_wait_s);
	char err[256];

	if (g->mode == PGW_WD_OFF)
		return true;
	if (!try_open(g))
		return g->mode != PGW_WD_REQUIRED;
	if (!keeper_ensure(g))
		return g->mode != PGW_WD_REQUIRED; /* required: the decision gives the role up */
	if (g->armed && g->want == want)
		return true;
	if (want <= 0) {
		snprintf(
		    err, sizeof(err),
		    "ttl %d s, safety_margin %d s and loop_wait %d s leave no usable timeout "
		    "(W must be > loop_wait and <= ttl - safety_margin and ttl - loop_wait - 2)",
		    ttl_s, margin_s, loop_wait_s);
		return failure(g, err);
	}
	if (pgw_wd_arm(g->wd, want, pgw_wd_max_timeout(ttl_s, margin_s), err, sizeof(err)) != 0)
		return failure(g, err);
	g->armed = true;
	g->pinged_ms = mono_ms();
	g->want = want;
	g->max_timeout = pgw_wd_max_timeout(ttl_s, margin_s);
	g->lowered = false;
	g->timeout = pgw_wd_info(g->wd)->timeout;
	g->failed = false;
	g->reason[0] = '\0';
	pgw_info("watchdog %s armed: timeout %d s (ttl %d s, safety_margin %d s)", g->device,
	         g->timeout, ttl_s, margin_s);
	return true;
}

void pgw_wdguard_renewed(struct pgw_wdguard *g, int64_t t_send_ms, int64_t now_ms,
                         int64_t margin_ms)
{
	int rc;

	if (!g->wd || !g->armed)
		return;
	if (g->lowered && pgw_lease_may_pet(t_send_ms, now_ms, margin_ms)) {
		/* renewed in time: back to the full W (setting it pets the device) */
		char err[256];

		if (pgw_wd_arm(g->wd, g->want, g->max_timeout, err, sizeof(err)) != 0) {
			failure(g, err);
			return;
		}
		g->timeout = pgw_wd_info(g->wd)->timeout;
		g->lowered = false;
		g->pinged_ms = mono_ms();
		pgw_info("watchdog %s: lease renewed, timeout back to %d s", g->device, g->timeout);
		return;
	}
	rc = pgw_wd_pet_after_renewal(g->wd, t_send_ms, now_ms, margin_ms);
	if (rc == 1)
		g->pinged_ms = mono_ms();
	if (rc == 0 && !g->missed_window)
		pgw_warn("lease renewal took %lld ms, more than safety_margin - 1 s: the watchdog "
		         "is not petted (it fires earlier, which is safe)",
		         (long long)(now_ms - t_send_ms));
	g->missed_window = rc == 0;
	if (rc < 0)
		failure(g, "keepalive failed");
}

void pgw_wdguard_bound(struct pgw_wdguard *g, int bound_s)
{
	char err[256];

	if (!g->wd || !g->armed || bound_s <= 0 || bound_s >= g->timeout)
		return;
	/* WDIOC_SETTIMEOUT restarts the countdown: a reset now + bound_s at the latest */
	if (pgw_wd_arm(g->wd, bound_s, g->max_timeout, err, sizeof(err)) != 0) {
		failure(g, err);
		return;
	}
	g->timeout = pgw_wd_info(g->wd)->timeout;
	g->lowered = true;
	g->pinged_ms = mono_ms();
	pgw_warn("watchdog %s: lease renewal overdue, timeout lowered to %d s so that a crash "
	         "now still resets this node before the lease deadline",
	         g->device, g->timeout);
}

void pgw_wdguard_idle(struct pgw_wdguard *g)
{
	char err[256];
	int rc;

	if (!g->wd)
		return;
	(void)keeper_ensure(g);
	if (g->armed) {
		rc = pgw_wd_disarm(g->wd, err, sizeof(err));
		if (rc >= 0) {
			g->armed = false; /* rc 1: nowayout, kept alive below from now on */
			g->timeout = 0;
			pgw_info("watchdog %s %s", g->device,
			         rc == 0 ? "disarmed" : "cannot be stopped (nowayout): kept alive");
		} else {
			pgw_error("watchdog %s: cannot disarm: %s", g->device, err);
		}
	}
	/* rule 5: a device that cannot be stopped is kept alive while not primary */
	if (!g->armed && pgw_wd_info(g->wd)->nowayout && pgw_wd_keepalive(g->wd) != 0)
		pgw_error("watchdog %s: keepalive failed: %s", g->device, strerror(errno));
}

int64_t pgw_wdguard_fires_at(const struct pgw_wdguard *g)
{
	return g && g->wd && g->armed ? g->pinged_ms + (int64_t)g->timeout * 1000 : 0;
}

bool pgw_wdguard_unusable(const struct pgw_wdguard *g)
{
	return g->mode == PGW_WD_REQUIRED && g->failed;
}

void pgw_wdguard_status(const struct pgw_wdguard *g, struct pgw_wd_status *out)
{
	const struct pgw_wd_info *i = g->wd ? pgw_wd_info(g->wd) : NULL;

	memset(out, 0, sizeof(*out));
	out->mode = g->mode;
	out->open = g->wd != NULL;
	out->armed = g->armed || (i && i->nowayout);
	out->timeout = g->armed ? g->timeout : 0;
	out->failed = g->failed;
	out->nowayout = i && i->nowayout;
	if (i)
		snprintf(out->identity, sizeof(out->identity), "%s", i->identity);
	snprintf(out->reason, sizeof(out->reason), "%s", g->reason);
}
