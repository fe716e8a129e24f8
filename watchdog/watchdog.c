/*
 * watchdog.c - the Linux watchdog driver: open, arm, pet, disarm and magic close of
 * /dev/watchdog through the WDIOC_* ioctls, or of the host-test emulator
 * (pgwarden-wdemu) through its socket; the timeout arithmetic of rule 3; and the
 * /sys/class/watchdog listing.  See watchdog.h.
 *
 * Facts this code relies on (measured with i6300esb in qemu, ../reference notes):
 * open() starts the timer with the driver's current timeout; WDIOC_SETTIMEOUT and
 * every write() ping; close() without a preceding 'V' pings once and leaves the timer
 * running; a second open() gets EBUSY; with nowayout DISABLECARD gets EBUSY and 'V'
 * is ignored; some drivers (ipmi_watchdog) accept any timeout, so it is range-checked
 * here.
 */
#include "watchdog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/watchdog.h>

#include "lease.h"

#define EMU_REPLY_TIMEOUT_MS 5000
#define EMU_MSG_MAX          128

struct pgw_wd {
	int fd;
	char path[256];
	struct pgw_wd_info info;
};

/* The operations both back ends know; names for messages and the emulator protocol. */
enum wd_op { WD_SETTIMEOUT, WD_GETTIMEOUT, WD_KEEPALIVE, WD_ENABLE, WD_DISABLE };

static const struct {
	const char *ioctl_name; /* for error messages */
	const char *emu_word;   /* the emulator's request */
} wd_ops[] = {
    [WD_SETTIMEOUT] = {"WDIOC_SETTIMEOUT", "SETTIMEOUT"},
    [WD_GETTIMEOUT] = {"WDIOC_GETTIMEOUT", "GETTIMEOUT"},
    [WD_KEEPALIVE] = {"WDIOC_KEEPALIVE", "KEEPALIVE"},
    [WD_ENABLE] = {"WDIOS_ENABLECARD", "ENABLECARD"},
    [WD_DISABLE] = {"WDIOS_DISABLECARD", "DISABLECARD"},
};

/* --- arithmetic --- */

int pgw_wd_max_timeout(int ttl_s, int margin_s)
{
	return ttl_s - margin_s;
}

int pgw_wd_want_timeout(int ttl_s, int margin_s)
{
	int w = pgw_wd_max_timeout(ttl_s, margin_s);

	return w < 1 ? 1 : w;
}

bool pgw_wd_timeout_usable(int w, int max_timeout)
{
	return w >= 1 && w <= max_timeout;
}

/* --- the emulator's side: one SOCK_SEQPACKET message per operation --- */

static int errno_from_name(const char *name)
{
	static const struct {
		const char *name;
		int value;
	} names[] = {
	    {"EBUSY", EBUSY}, {"EINVAL", EINVAL}, {"ENOTTY", ENOTTY}, {"EOPNOTSUPP", EOPNOTSUPP},
	    {"EPERM", EPERM}, {"EIO", EIO},       {"ENODEV", ENODEV},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i].name) == 0)
			return names[i].value;
	return EIO;
}

/*
 * Read one reply: "OK[ text]" -> 0 and text in out; "ERR NAME" -> -1 with errno.  The
 * emulator closing the connection (it fired, like a machine reset) gives EPIPE.
 */
static int emu_reply(int fd, char *out, size_t outlen)
{
	char buf[EMU_MSG_MAX];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n;
	int r;

	do
		r = poll(&p, 1, EMU_REPLY_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		errno = ETIMEDOUT;
	if (r <= 0)
		return -1;
	do
		n = recv(fd, buf, sizeof(buf) - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == ECONNRESET)
		n = 0;
	if (n == 0)
		errno = EPIPE;
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (strncmp(buf, "ERR ", 4) == 0) {
		errno = errno_from_name(buf + 4);
		return -1;
	}
	if (strncmp(buf, "OK", 2) != 0 || (buf[2] != '\0' && buf[2] != ' ')) {
		errno = EPROTO;
		return -1;
	}
	if (out)
		snprintf(out, outlen, "%s", buf[2] ? buf + 3 : "");
	return 0;
}

static int emu_request(int fd, const char *msg, char *out, size_t outlen)
{
	ssize_t n;

	do
		n = send(fd, msg, strlen(msg), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == ECONNRESET)
		errno = EPIPE;
	if (n < 0)
		return -1;
	return emu_reply(fd, out, outlen);
}

/* Connecting is the open(): the emulator answers "OK" or "ERR EBUSY" at once. */
static int emu_connect(struct pgw_wd *wd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(wd->path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, wd->path);
	wd->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (wd->fd < 0)
		return -1;
	if (connect(wd->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    emu_reply(wd->fd, NULL, 0) != 0) {
		int e = errno;

		close(wd->fd);
		wd->fd = -1;
		errno = e;
		return -1;
	}
	return 0;
}

/* --- one operation, on either back end --- */

static int wd_ctl(struct pgw_wd *wd, enum wd_op op, int *val)
{
	int arg = val ? *val : 0, r;

	if (wd->info.emulated) {
		char msg[64], reply[EMU_MSG_MAX];

		if (op == WD_SETTIMEOUT)
			snprintf(msg, sizeof(msg), "%s %d", wd_ops[op].emu_word, arg);
		else
			snprintf(msg, sizeof(msg), "%s", wd_ops[op].emu_word);
		if (emu_request(wd->fd, msg, reply, sizeof(reply)) != 0)
			return -1;
		if (val && (op == WD_SETTIMEOUT || op == WD_GETTIMEOUT) &&
		    sscanf(reply, "%d", val) != 1) {
			errno = EPROTO;
			return -1;
		}
		return 0;
	}

	do {
		switch (op) {
		case WD_SETTIMEOUT:
			r = ioctl(wd->fd, WDIOC_SETTIMEOUT, &arg);
			break;
		case WD_GETTIMEOUT:
			r = ioctl(wd->fd, WDIOC_GETTIMEOUT, &arg);
			break;
		case WD_KEEPALIVE:
			r = ioctl(wd->fd, WDIOC_KEEPALIVE, &arg);
			break;
		case WD_ENABLE:
			arg = WDIOS_ENABLECARD;
			r = ioctl(wd->fd, WDIOC_SETOPTIONS, &arg);
			break;
		case WD_DISABLE:
		default:
			arg = WDIOS_DISABLECARD;
			r = ioctl(wd->fd, WDIOC_SETOPTIONS, &arg);
			break;
		}
	} while (r < 0 && errno == EINTR);
	if (r == 0 && val && (op == WD_SETTIMEOUT || op == WD_GETTIMEOUT))
		*val = arg;
	return r;
}

static int wd_getsupport(struct pgw_wd *wd)
{
	if (wd->info.emulated) {
		char reply[EMU_MSG_MAX];
		unsigned options, firmware;
		int used = 0;

		if (emu_request(wd->fd, "GETSUPPORT", reply, sizeof(reply)) != 0)
			return -1;
		if (sscanf(reply, "%u %u %n", &options, &firmware, &used) != 2 || used == 0) {
			errno = EPROTO;
			return -1;
		}
		wd->info.options = options;
		snprintf(wd->info.identity, sizeof(wd->info.identity), "%s", reply + used);
	} else {
		struct watchdog_info wi;
		int r;

		memset(&wi, 0, sizeof(wi));
		do
			r = ioctl(wd->fd, WDIOC_GETSUPPORT, &wi);
		while (r < 0 && errno == EINTR);
		if (r != 0)
			return -1;
		wd->info.options = wi.options;
		/* identity is 32 bytes, not necessarily NUL-terminated */
		memcpy(wd->info.identity, wi.identity, sizeof(wi.identity));
		wd->info.identity[sizeof(wi.identity)] = '\0';
	}
	return 0;
}

static void fail(const struct pgw_wd *wd, enum wd_op op, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s: %s", wd->path, wd_ops[op].ioctl_name, strerror(errno));
}

/* The magic close: 'V' (a write, which also pings), then close(). */
static void magic_close(struct pgw_wd *wd)
{
	if (wd->info.emulated) {
		(void)emu_request(wd->fd, "V", NULL, 0);
	} else {
		ssize_t n;

		do
			n = write(wd->fd, "V", 1);
		while (n < 0 && errno == EINTR);
	}
	close(wd->fd);
	wd->fd = -1;
}

/* --- the API --- */

struct pgw_wd *pgw_wd_open(const char *path, char *err, size_t errlen)
{
	struct pgw_wd *wd;
	struct stat st;
	int t, e;

	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISCHR(st.st_mode) && !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen,
		         "%s: not a watchdog (neither a character device nor an emulator socket)",
		         path);
		errno = ENODEV;
		return NULL;
	}
	wd = calloc(1, sizeof(*wd));
	if (!wd) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	snprintf(wd->path, sizeof(wd->path), "%s", path);
	wd->info.emulated = S_ISSOCK(st.st_mode);
	wd->info.timeout = -1;

	/* from here on the timer runs */
	if (wd->info.emulated) {
		if (emu_connect(wd) != 0) {
			e = errno;
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
			free(wd);
			errno = e;
			return NULL;
		}
	} else {
		wd->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (wd->fd < 0) {
			e = errno;
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
			free(wd);
			errno = e;
			return NULL;
		}
		if (fstat(wd->fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
			snprintf(err, errlen, "%s: not a character device", path);
			close(wd->fd);
			free(wd);
			errno = ENODEV;
			return NULL;
		}
	}
	if (wd_getsupport(wd) != 0) {
		/* not a watchdog: plain close, no 'V' written to a stranger */
		e = errno;
		snprintf(err, errlen, "%s: not a watchdog: WDIOC_GETSUPPORT: %s", path,
		         strerror(e));
		close(wd->fd);
		free(wd);
		errno = e;
		return NULL;
	}

	/* open() started the timer: set a known timeout (this pings), then stop it */
	t = PGW_WD_IDLE_TIMEOUT;
	if (wd_ctl(wd, WD_SETTIMEOUT, &t) != 0)
		(void)wd_ctl(wd, WD_KEEPALIVE, NULL); /* driver refuses it: at least ping */
	if (wd_ctl(wd, WD_GETTIMEOUT, &t) == 0)
		wd->info.timeout = t;
	if (wd_ctl(wd, WD_DISABLE, NULL) != 0) {
		if (errno != EBUSY) {
			e = errno;
			fail(wd, WD_DISABLE, err, errlen);
			magic_close(wd);
			free(wd);
			errno = e;
			return NULL;
		}
		wd->info.nowayout = true; /* it keeps counting: the caller keeps it alive */
		wd->info.armed = true;
	}
	return wd;
}

/* After a refused or failed arm: stop the card again, keeping errno. */
static void disable_again(struct pgw_wd *wd)
{
	int e = errno;

	if (wd_ctl(wd, WD_DISABLE, NULL) == 0) {
		wd->info.armed = false;
	} else if (errno == EBUSY) {
		wd->info.nowayout = true;
		wd->info.armed = true;
	}
	errno = e;
}

int pgw_wd_arm(struct pgw_wd *wd, int want, int max_timeout, char *err, size_t errlen)
{
	int w = want;

	if (!pgw_wd_timeout_usable(want, max_timeout)) {
		snprintf(err, errlen,
		         "%s: watchdog timeout %d s is out of range 1..%d s (TTL - safety margin)",
		         wd->path, want, max_timeout);
		errno = EINVAL;
		return -1;
	}
	if (wd_ctl(wd, WD_SETTIMEOUT, &w) != 0) {
		snprintf(err, errlen, "%s: WDIOC_SETTIMEOUT(%d): %s", wd->path, want,
		         strerror(errno));
		disable_again(wd);
		return -1;
	}
	if (wd_ctl(wd, WD_GETTIMEOUT, &w) != 0) {
		fail(wd, WD_GETTIMEOUT, err, errlen);
		disable_again(wd);
		return -1;
	}
	wd->info.timeout = w;
	if (!pgw_wd_timeout_usable(w, max_timeout)) {
		snprintf(
		    err, errlen,
		    "%s: asked for a %d s timeout, the device reports %d s, more than the %d s "
		    "allowed (TTL - safety margin): not arming",
		    wd->path, want, w, max_timeout);
		errno = ERANGE;
		disable_again(wd);
		return -1;
	}
	if (wd_ctl(wd, WD_ENABLE, NULL) != 0) {
		fail(wd, WD_ENABLE, err, errlen);
		disable_again(wd);
		return -1;
	}
	if (wd_ctl(wd, WD_KEEPALIVE, NULL) != 0) {
		fail(wd, WD_KEEPALIVE, err, errlen);
		disable_again(wd);
		return -1;
	}
	wd->info.armed = true;
	return 0;
}

int pgw_wd_keepalive(struct pgw_wd *wd)
{
	return wd_ctl(wd, WD_KEEPALIVE, NULL);
}

int pgw_wd_pet_after_renewal(struct pgw_wd *wd, int64_t t_send_ms, int64_t now_ms,
                             int64_t margin_ms)
{
	if (!pgw_lease_may_pet(t_send_ms, now_ms, margin_ms))
		return 0;
	return pgw_wd_keepalive(wd) == 0 ? 1 : -1;
}

int pgw_wd_disarm(struct pgw_wd *wd, char *err, size_t errlen)
{
	if (wd_ctl(wd, WD_DISABLE, NULL) == 0) {
		wd->info.armed = false;
		return 0;
	}
	if (errno == EBUSY) {
		wd->info.nowayout = true;
		wd->info.armed = true;
		snprintf(err, errlen,
		         "%s: WDIOS_DISABLECARD: device busy (nowayout): it stays armed and "
		         "must be kept alive",
		         wd->path);
		return 1;
	}
	fail(wd, WD_DISABLE, err, errlen);
	return -1;
}

void pgw_wd_close(struct pgw_wd *wd)
{
	int e = errno;

	if (!wd)
		return;
	if (wd->fd >= 0) {
		if (!wd->info.nowayout)
			(void)wd_ctl(wd, WD_DISABLE, NULL);
		magic_close(wd);
	}
	free(wd);
	errno = e;
}

int pgw_wd_fd(const struct pgw_wd *wd)
{
	return wd->fd;
}

const struct pgw_wd_info *pgw_wd_info(const struct pgw_wd *wd)
{
	return &wd->info;
}

int pgw_wd_get_timeout(struct pgw_wd *wd)
{
	int w = -1;

	return wd_ctl(wd, WD_GETTIMEOUT, &w) == 0 ? w : -1;
}

/* --- /sys/class/watchdog --- */

/* First line of dir/name/file into buf, without the newline; false when unreadable. */
static bool read_attr(const char *dir, const char *name, const char *file, char *buf, size_t len)
{
	char path[512];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, name, file);
	buf[0] = '\0';
	f = fopen(path, "re");
	if (!f)
		return false;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

static int read_int_attr(const char *dir, const char *name, const char *file)
{
	char buf[32], *end;
	long v;

	if (!read_attr(dir, name, file, buf, sizeof(buf)))
		return -1;
	v = strtol(buf, &end, 0);
	return end == buf || v < 0 || v > 0x7fffffff ? -1 : (int)v;
}

static int is_watchdog_entry(const struct dirent *d)
{
	return strncmp(d->d_name, "watchdog", 8) == 0;
}

int pgw_wd_list(const char *sysdir, struct pgw_wd_sysfs *out, int max)
{
	struct dirent **names;
	int n, count = 0;

	if (!sysdir)
		sysdir = PGW_WD_SYSFS;
	n = scandir(sysdir, &names, is_watchdog_entry, versionsort);
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		size_t len = strlen(name);

		if (count < max && len < sizeof(out->name)) {
			struct pgw_wd_sysfs *w = &out[count++];

			memset(w, 0, sizeof(*w));
			memcpy(w->name, name, len + 1);
			read_attr(sysdir, name, "identity", w->identity, sizeof(w->identity));
			read_attr(sysdir, name, "state", w->state, sizeof(w->state));
			read_attr(sysdir, name, "dev", w->dev, sizeof(w->dev));
			w->timeout = read_int_attr(sysdir, name, "timeout");
			w->nowayout = read_int_attr(sysdir, name, "nowayout");
			w->bootstatus = read_int_attr(sysdir, name, "bootstatus");
		}
		free(names[i]);
	}
	free(names);
	return count;
}
