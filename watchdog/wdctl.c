/*
 * wdctl.c - the operators' watchdog commands, in the style of sbd's query-watchdog
 * and test-watchdog: list what /sys/class/watchdog has, and exercise one device
 * (open, arm, pet, magic close; or stop petting and let it reset the machine).
 * The command-line options that call these live with the daemon's main.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include <linux/watchdog.h>

#include "watchdog.h"

#define LIST_MAX 32
/* the legacy /dev/watchdog: misc major 10, WATCHDOG_MINOR of <linux/miscdevice.h> */
#define MISC_MAJOR          10
#define WATCHDOG_MISC_MINOR 130

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static const char *yes_no(int v)
{
	return v < 0 ? "-" : v ? "yes" : "no";
}

int pgw_wd_cmd_list(FILE *out)
{
	struct pgw_wd_sysfs w[LIST_MAX];
	int n = pgw_wd_list(NULL, w, LIST_MAX);

	if (n < 0 && errno != ENOENT) {
		fprintf(out, "cannot read %s: %s\n", PGW_WD_SYSFS, strerror(errno));
		return 1;
	}
	if (n <= 0) {
		fprintf(out,
		        "no watchdog devices in %s (no driver loaded? e.g. modprobe softdog)\n",
		        PGW_WD_SYSFS);
		return 0;
	}
	fprintf(out, "%d watchdog device(s) (/dev/watchdog is watchdog0):\n", n);
	fprintf(out, "%-11s %-16s %-32s %7s %-9s %-8s %s\n", "NAME", "DEVICE", "IDENTITY",
	        "TIMEOUT", "STATE", "NOWAYOUT", "BOOTSTATUS");
	for (int i = 0; i < n; i++) {
		char dev[48], timeout[16], boot[16];

		snprintf(dev, sizeof(dev), "/dev/%s", w[i].name);
		snprintf(timeout, sizeof(timeout), w[i].timeout < 0 ? "-" : "%d s", w[i].timeout);
		snprintf(boot, sizeof(boot), w[i].bootstatus < 0 ? "-" : "0x%x", w[i].bootstatus);
		fprintf(out, "%-11s %-16s %-32s %7s %-9s %-8s %s%s\n", w[i].name, dev,
		        w[i].identity[0] ? w[i].identity : "-", timeout,
		        w[i].state[0] ? w[i].state : "-", yes_no(w[i].nowayout), boot,
		        w[i].bootstatus > 0 && (w[i].bootstatus & WDIOF_CARDRESET)
		            ? " (CARDRESET: it reset this machine last time)"
		            : "");
	}
	return 0;
}

/* sysfs's nowayout for a /dev node (1, 0), or -1 when it cannot be told. */
static int sysfs_nowayout(const char *device)
{
	struct pgw_wd_sysfs w[LIST_MAX];
	struct stat st;
	char dev[16];
	bool legacy;
	int n;

	if (stat(device, &st) != 0 || !S_ISCHR(st.st_mode))
		return -1;
	n = pgw_wd_list(NULL, w, LIST_MAX);
	snprintf(dev, sizeof(dev), "%u:%u", major(st.st_rdev), minor(st.st_rdev));
	/* the legacy misc node is the first device's */
	legacy = major(st.st_rdev) == MISC_MAJOR && minor(st.st_rdev) == WATCHDOG_MISC_MINOR;
	for (int i = 0; i < n; i++)
		if (strcmp(w[i].dev, dev) == 0 || (legacy && strcmp(w[i].name, "watchdog0") == 0))
			return w[i].nowayout;
	return -1;
}

static void print_options(FILE *out, unsigned options)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
	    {WDIOF_SETTIMEOUT, "SETTIMEOUT"},       {WDIOF_MAGICCLOSE, "MAGICCLOSE"},
	    {WDIOF_KEEPALIVEPING, "KEEPALIVEPING"}, {WDIOF_PRETIMEOUT, "PRETIMEOUT"},
	    {WDIOF_CARDRESET, "CARDRESET"},         {WDIOF_ALARMONLY, "ALARMONLY"},
	};
	const char *sep = "";

	fprintf(out, "0x%x (", options);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (options & names[i].bit) {
			fprintf(out, "%s%s", sep, names[i].name);
			sep = "|";
		}
	fprintf(out, "%s)", options ? "" : "none reported");
}

/* fire: no more pets; wait for the reset (or, on the emulator, for its close). */
static int wait_for_reset(struct pgw_wd *wd, int w, double last, FILE *out)
{
	const int limit = 2 * w + 5;

	fprintf(out, "no more keepalives: expecting a reset about %d s after the last one\n", w);
	fflush(out);
	for (;;) {
		double since;

		sleep_ms(1000);
		since = mono() - last;
		if (pgw_wd_info(wd)->emulated && pgw_wd_get_timeout(wd) < 0) {
			fprintf(
			    out,
			    "PASS: the emulator fired (noticed %.1f s after the last keepalive)\n",
			    since);
			pgw_wd_close(wd);
			return 0;
		}
		fprintf(out, "alive %.1f s after the last keepalive\n", since);
		fflush(out);
		if (since > limit) {
			fprintf(out,
			        "FAIL: still alive %.1f s after the last keepalive: this watchdog "
			        "does not reset the machine; stopping it\n",
			        since);
			pgw_wd_close(wd);
			return 1;
		}
	}
}

int pgw_wd_cmd_test(const char *device, int timeout, bool fire, FILE *out)
{
	const struct pgw_wd_info *in;
	struct pgw_wd *wd;
	char err[512];
	double last;
	int interval;
	bool nowayout;

	if (timeout < 1) {
		fprintf(out, "FAIL: timeout %d s: must be at least 1 s\n", timeout);
		return 1;
	}
	if (!fire && sysfs_nowayout(device) == 1) {
		fprintf(out,
		        "%s: nowayout is set: once opened it cannot be stopped and would reset "
		        "this machine; not testing (only a fire test can use it)\n",
		        device);
		return 1;
	}
	wd = pgw_wd_open(device, err, sizeof(err));
	if (!wd) {
		fprintf(out, "FAIL: %s\n", err);
		return 1;
	}
	in = pgw_wd_info(wd);
	fprintf(out, "%s%s: identity \"%s\", options ", device, in->emulated ? " (emulator)" : "",
	        in->identity);
	print_options(out, in->options);
	fprintf(out, ", nowayout %s\n", in->nowayout ? "yes (DISABLECARD refused)" : "no");

	if (pgw_wd_arm(wd, timeout, timeout, err, sizeof(err)) != 0) {
		fprintf(out, "FAIL: %s\n", err);
		pgw_wd_close(wd);
		return 1;
	}
	fprintf(out, "armed: asked for %d s, the device reports W = %d s\n", timeout, in->timeout);
	interval = in->timeout >= 2 ? 1000 : 500;
	for (int i = 1; i <= 3; i++) {
		sleep_ms(interval);
		if (pgw_wd_keepalive(wd) != 0) {
			fprintf(out, "FAIL: %s: WDIOC_KEEPALIVE: %s\n", device, strerror(errno));
			pgw_wd_close(wd);
			return 1;
		}
		fprintf(out, "keepalive %d\n", i);
		fflush(out);
	}
	last = mono();
	if (fire)
		return wait_for_reset(wd, in->timeout, last, out);

	nowayout = in->nowayout;
	pgw_wd_close(wd);
	if (nowayout) {
		fprintf(out,
		        "FAIL: nowayout: the magic close cannot stop it; it resets this machine "
		        "in about %d s unless something keeps it alive\n",
		        timeout);
		return 1;
	}
	fprintf(out, "PASS: stopped with the magic close ('V', then close)\n");
	return 0;
}
