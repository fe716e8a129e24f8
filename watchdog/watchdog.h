/*
 * watchdog.h - the Linux watchdog driver (/dev/watchdog, WDIOC_* ioctls) and its
 * arithmetic, ARCHITECTURE.md section 4, rules 3 and 5:
 *
 *   arm with W <= TTL - S, W read back after WDIOC_SETTIMEOUT;
 *   pet only right after a successful renewal and only if now - t_send <= S - R
 *   (the decision is pgw_lease_may_pet() in core/lease.h);
 *   disarm with WDIOS_DISABLECARD, and close with the magic 'V' right before close();
 *   a device that cannot be stopped (nowayout) stays open and is kept alive.
 *
 * The same calls drive the host-test emulator (watchdog/pgwarden-wdemu.c) when the
 * path is a UNIX socket: each operation is one SOCK_SEQPACKET message instead of an
 * ioctl, with the kernel's semantics (see the protocol at the top of pgwarden-wdemu.c).
 * No globals: each struct pgw_wd owns its descriptor.
 */
#ifndef PGW_WATCHDOG_H
#define PGW_WATCHDOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The timeout set right after open(), before WDIOS_DISABLECARD: open() starts the
 * timer with whatever timeout the driver had (30 s for i6300esb).  This only matters
 * on a nowayout device, which keeps counting and must be kept alive by the loop.
 */
#define PGW_WD_IDLE_TIMEOUT 60

struct pgw_wd; /* opaque, owns the descriptor */

struct pgw_wd_info {
	char identity[33]; /* WDIOC_GETSUPPORT identity */
	unsigned options;  /* WDIOC_GETSUPPORT options (WDIOF_*); 0 on some drivers (IPMI) */
	int timeout;       /* W read back with WDIOC_GETTIMEOUT; -1 if unknown */
	bool nowayout;     /* WDIOS_DISABLECARD was refused with EBUSY */
	bool armed;        /* the timer runs: pgw_wd_arm() succeeded, or nowayout */
	bool emulated;     /* the path is the emulator's socket */
};

/*
 * Open the device (or connect to the emulator) and check that it is a watchdog
 * (a character device that answers WDIOC_GETSUPPORT, or the emulator's socket).
 * open() starts the timer, so it then sets PGW_WD_IDLE_TIMEOUT and disables the card
 * at once.  If WDIOS_DISABLECARD fails with EBUSY, info.nowayout and info.armed are
 * set, and the caller must keep the device alive (rule 5).  NULL on error, with the
 * path and strerror in err.
 */
struct pgw_wd *pgw_wd_open(const char *path, char *err, size_t errlen);

/*
 * Arm for the lease: check 1 <= want <= max_timeout (max_timeout is TTL - S), then
 * WDIOC_SETTIMEOUT(want), WDIOC_GETTIMEOUT.  A read-back W above max_timeout (a driver
 * rounding up) is refused: the card is disabled again and -1 is returned with a message
 * naming want, W and max_timeout.  Otherwise WDIOS_ENABLECARD and WDIOC_KEEPALIVE;
 * info.timeout = W, info.armed = true, returns 0.
 */
int pgw_wd_arm(struct pgw_wd *wd, int want, int max_timeout, char *err, size_t errlen);

/* WDIOC_KEEPALIVE.  0, or -1 with errno. */
int pgw_wd_keepalive(struct pgw_wd *wd);

/*
 * Rule 3: pet right after the renewal sent at t_send_ms succeeded, and only if
 * pgw_lease_may_pet() allows it (the renewal took at most S - R).  Returns 1 when
 * petted, 0 when the window was missed (not petted: the watchdog fires earlier, which
 * is safe), -1 when WDIOC_KEEPALIVE failed (errno set).
 */
int pgw_wd_pet_after_renewal(struct pgw_wd *wd, int64_t t_send_ms, int64_t now_ms,
                             int64_t margin_ms);

/*
 * WDIOS_DISABLECARD, keeping the descriptor open.  0 when stopped; 1 when the device
 * refuses with EBUSY (nowayout: it stays armed and the caller keeps petting it); -1 on
 * any other error, with a message in err.
 */
int pgw_wd_disarm(struct pgw_wd *wd, char *err, size_t errlen);

/*
 * Clean shutdown: WDIOS_DISABLECARD, then the magic 'V' and close().  'V' is written
 * nowhere else.  A nowayout device keeps running (and close pings it once).  NULL is
 * accepted.
 */
void pgw_wd_close(struct pgw_wd *wd);

/* The open descriptor (the watchdog keeper holds a copy of it). */
int pgw_wd_fd(const struct pgw_wd *wd);
const struct pgw_wd_info *pgw_wd_info(const struct pgw_wd *wd);

/* WDIOC_GETTIMEOUT (does not ping): W, or -1 with errno (EPIPE: the emulator fired). */
int pgw_wd_get_timeout(struct pgw_wd *wd);

/* --- arithmetic (pure) --- */

/* Largest usable W for a lease: TTL - S (may be < 1: then nothing is usable). */
int pgw_wd_max_timeout(int ttl_s, int margin_s);
/* The timeout to ask for: TTL - S, at least 1. */
int pgw_wd_want_timeout(int ttl_s, int margin_s);
/* Is a (read-back) timeout usable: 1 <= w <= max_timeout? */
bool pgw_wd_timeout_usable(int w, int max_timeout);

/* --- what /sys/class/watchdog says, for operators --- */

#define PGW_WD_SYSFS "/sys/class/watchdog"

struct pgw_wd_sysfs {
	char name[32];     /* watchdogN (its device is /dev/watchdogN) */
	char identity[64]; /* "" when unknown */
	char state[16];    /* "active" / "inactive", "" when unknown */
	char dev[16];      /* major:minor of /dev/watchdogN */
	int timeout;       /* -1 when unknown */
	int nowayout;      /* 0 or 1, -1 when unknown */
	int bootstatus;    /* WDIOF_* (32 = CARDRESET: the last boot ended by it), -1 unknown */
};

/*
 * Fill up to max entries from sysdir (NULL: PGW_WD_SYSFS), sorted by name.  Returns
 * how many, or -1 with errno when sysdir cannot be read (ENOENT: no driver loaded).
 */
int pgw_wd_list(const char *sysdir, struct pgw_wd_sysfs *out, int max);

/* --- operator commands (wdctl.c), in the style of sbd's query-/test-watchdog --- */

/* Print the watchdogs pgw_wd_list() finds.  0, or 1 when sysfs cannot be read. */
int pgw_wd_cmd_list(FILE *out);
/*
 * Open device, arm it with timeout, pet it 3 times 1 s apart, then stop it with the
 * magic close; prints identity, options and W.  fire: stop petting instead and wait
 * for the reset (the caller asks for --force).  0 on success, 1 on failure.
 */
int pgw_wd_cmd_test(const char *device, int timeout, bool fire, FILE *out);

#endif
