/*
 * pgwarden-wdemu.c - a watchdog device emulator for host tests: the kernel watchdog
 * core's semantics (as measured with i6300esb in qemu) behind a UNIX socket, and a
 * "machine reset" that kills every process of one cgroup.  pgw_wd_open() in
 * watchdog.c speaks to it when its path is a socket.
 *
 *   pgwarden-wdemu --socket PATH --cgroup DIR [--nowayout] [--identity STR]
 *                  [--max-timeout N] [--round N]
 *
 * Protocol (SOCK_SEQPACKET, one message per operation, one reply each):
 *   connect          = open(): reply "OK", or "ERR EBUSY" and close when another
 *                      connection holds the device (one opener at a time)
 *   GETSUPPORT       -> "OK <options> <firmware_version> <identity>"
 *   SETTIMEOUT n     -> "OK <W>" (pings); "ERR EINVAL" unless 1 <= n <= max-timeout
 *   GETTIMEOUT       -> "OK <W>"
 *   KEEPALIVE        -> "OK" (pings)
 *   ENABLECARD       -> "OK" (starts the timer if stopped)
 *   DISABLECARD      -> "OK" (stops it); "ERR EBUSY" with --nowayout while running
 *   V                -> "OK 1": a write() of "V": pings and allows the magic close
 *   connection close = close(): stops the timer after a 'V' (unless --nowayout);
 *                      otherwise pings once and leaves it running ("did not stop")
 * Anything else gets "ERR EINVAL".
 *
 * open() starts the timer with the current timeout (30 s after start or a reset, as
 * i6300esb's default heartbeat); the timeout persists across opens like the driver's.
 * When it expires the emulator "resets the machine": it writes 1 to DIR/cgroup.kill
 * when that exists (cgroup v2), SIGKILLs every pid in DIR/cgroup.procs until none is
 * left, thaws DIR when it is a v1 freezer cgroup (frozen tasks die only when thawed),
 * closes the opener's connection, prints
 *   FIRED mono=<CLOCK_MONOTONIC s> last_ping=<mono> timeout=<W>
 * and is idle again with the default timeout, so the node can be restarted.
 * --round N makes SETTIMEOUT round up to a multiple of N, like drivers with coarse
 * hardware steps.  Every event goes to stdout with its monotonic time.  SIGTERM or
 * SIGINT: clean exit (status 0).  Single-threaded, poll-driven.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>

#define DEFAULT_TIMEOUT 30
/* WDIOF_SETTIMEOUT | WDIOF_MAGICCLOSE | WDIOF_KEEPALIVEPING, as i6300esb reports */
#define EMU_OPTIONS  0x8180
#define KILL_BOUND_S 10.0

static volatile sig_atomic_t stop_requested;

struct emu {
	const char *socket_path;
	const char *cgroup;
	const char *identity;
	bool nowayout;
	int max_timeout;
	int round;

	int lfd;            /* listening socket */
	int cfd;            /* the opener's connection, -1 when closed */
	bool running;       /* the timer counts */
	bool allow_release; /* a 'V' was written: close stops the timer */
	int timeout;        /* W */
	double last_ping;   /* CLOCK_MONOTONIC seconds */
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void event(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void event(const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("%s mono=%.6f", what, mono());
	if (fmt) {
		putchar(' ');
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
}

static void reply(struct emu *e, const char *text)
{
	if (e->cfd >= 0)
		(void)send(e->cfd, text, strlen(text), MSG_NOSIGNAL);
}

/* Like the watchdog core: a ping only matters while the timer runs. */
static void ping(struct emu *e)
{
	if (e->running)
		e->last_ping = mono();
}

static void start(struct emu *e)
{
	if (!e->running) {
		e->running = true;
		e->last_ping = mono();
	}
}

static void drop_opener(struct emu *e)
{
	if (e->cfd >= 0)
		close(e->cfd);
	e->cfd = -1;
	e->allow_release = false;
}

/* close(): magic close stops the timer, a plain one pings once and leaves it running. */
static void on_close(struct emu *e)
{
	if (!e->running) {
		event("CLOSE", "running=0");
	} else if (e->allow_release && !e->nowayout) {
		e->running = false;
		event("MAGICCLOSE", "running=0");
	} else {
		ping(e);
		event("CLOSE", "running=1 did_not_stop=1 magic=%d", e->allow_release);
	}
	drop_opener(e);
}

static void on_accept(struct emu *e)
{
	int fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (e->cfd >= 0) {
		(void)send(fd, "ERR EBUSY", 9, MSG_NOSIGNAL);
		close(fd);
		event("BUSY", "second opener refused");
		return;
	}
	e->cfd = fd;
	e->allow_release = false;
	start(e); /* open() starts the timer; a running one is left as it is */
	reply(e, "OK");
	event("OPEN", "timeout=%d", e->timeout);
}

static void on_message(struct emu *e)
{
	char buf[128], out[128];
	ssize_t n;
	int t;

	n = recv(e->cfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		on_close(e);
		return;
	}
	buf[n] = '\0';

	if (strcmp(buf, "GETSUPPORT") == 0) {
		snprintf(out, sizeof(out), "OK %u 0 %s", (unsigned)EMU_OPTIONS, e->identity);
		reply(e, out);
	} else if (sscanf(buf, "SETTIMEOUT %d", &t) == 1) {
		if (t < 1 || t > e->max_timeout) {
			reply(e, "ERR EINVAL");
			event("SETTIMEOUT", "want=%d refused=EINVAL", t);
			return;
		}
		e->timeout = (t + e->round - 1) / e->round * e->round;
		ping(e);
		snprintf(out, sizeof(out), "OK %d", e->timeout);
		reply(e, out);
		event("SETTIMEOUT", "want=%d timeout=%d", t, e->timeout);
	} else if (strcmp(buf, "GETTIMEOUT") == 0) {
		snprintf(out, sizeof(out), "OK %d", e->timeout);
		reply(e, out);
	} else if (strcmp(buf, "KEEPALIVE") == 0) {
		ping(e);
		reply(e, "OK");
		event("KEEPALIVE", "running=%d", e->running);
	} else if (strcmp(buf, "ENABLECARD") == 0) {
		start(e);
		reply(e, "OK");
		event("ENABLE", "timeout=%d", e->timeout);
	} else if (strcmp(buf, "DISABLECARD") == 0) {
		if (e->running && e->nowayout) {
			reply(e, "ERR EBUSY");
			event("DISABLE", "refused=EBUSY nowayout=1");
			return;
		}
		e->running = false;
		reply(e, "OK");
		event("DISABLE", NULL);
	} else if (strcmp(buf, "V") == 0) {
		e->allow_release = true;
		ping(e);
		reply(e, "OK 1");
		event("WRITE", "data=V");
	} else {
		reply(e, "ERR EINVAL");
		event("UNKNOWN", "request=\"%s\"", buf);
	}
}

static bool is_zombie(long pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return true;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return !p || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (access(path, F_OK) != 0)
		return;
	f = fopen(path, "we");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		event("KILL-WARNING", "cannot write %s: %s", path, strerror(errno));
}

/*
 * The reset: every process of the cgroup dies.  cgroup.kill (v2) when there is one,
 * and SIGKILL to what cgroup.procs lists, repeated until it lists no live process.
 * Returns how many processes it listed at first, -1 when unreadable.
 */
static int kill_cgroup(const char *dir)
{
	char path[PATH_MAX];
	double until = mono() + KILL_BOUND_S;
	int listed = -1;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	for (;;) {
		FILE *f = fopen(path, "re");
		long pid;
		int n = 0, alive = 0;

		if (!f) {
			event("KILL-WARNING", "cannot read %s: %s", path, strerror(errno));
			return listed;
		}
		while (fscanf(f, "%ld", &pid) == 1) {
			if (pid <= 1 || pid == (long)getpid())
				continue;
			n++;
			if (listed < 0)
				continue; /* first round: count them, cgroup.kill goes first */
			if (kill((pid_t)pid, SIGKILL) == 0 && !is_zombie(pid))
				alive++;
		}
		fclose(f);
		if (listed < 0) {
			listed = n;
			write_file(dir, "cgroup.kill", "1");
			continue;
		}
		/* v1 freezer: a frozen task only dies once thawed */
		write_file(dir, "freezer.state", "THAWED");
		if (alive == 0)
			return listed;
		if (mono() > until) {
			event("KILL-WARNING", "%d processes still in %s after %.0f s", alive, dir,
			      KILL_BOUND_S);
			return listed;
		}
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
}

/*
 * A cgroup whose procs list pid 1 or the emulator itself is not a test node's (a
 * mistaken --cgroup /sys/fs/cgroup/... would "reset" the host): refuse it.
 */
static bool cgroup_ok(const char *dir)
{
	char path[PATH_MAX];
	FILE *f;
	long pid;
	bool ok = true;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "pgwarden-wdemu: %s: %s\n", path, strerror(errno));
		return false;
	}
	while (fscanf(f, "%ld", &pid) == 1)
		if (pid == 1 || pid == (long)getpid())
			ok = false;
	fclose(f);
	if (!ok)
		fprintf(stderr,
		        "pgwarden-wdemu: %s lists pid 1 or this emulator: not a test cgroup\n",
		        path);
	return ok;
}

static void fire(struct emu *e)
{
	double last = e->last_ping;
	int w = e->timeout, n;

	n = kill_cgroup(e->cgroup);
	event("KILL", "procs=%d cgroup=%s", n, e->cgroup);
	drop_opener(e); /* the machine is gone, and with it the opener */
	printf("FIRED mono=%.6f last_ping=%.6f timeout=%d\n", mono(), last, w);
	fflush(stdout);
	/* a fresh boot: the driver's defaults */
	e->running = false;
	e->timeout = DEFAULT_TIMEOUT;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "pgwarden-wdemu: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 8) != 0) {
		fprintf(stderr, "pgwarden-wdemu: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pgwarden-wdemu --socket PATH --cgroup DIR [--nowayout] "
	           "[--identity STR] [--max-timeout N] [--round N]\n");
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

static int parse_args(struct emu *e, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"cgroup", required_argument, NULL, 'c'},
	    {"nowayout", no_argument, NULL, 'n'},
	    {"identity", required_argument, NULL, 'i'},
	    {"max-timeout", required_argument, NULL, 'm'},
	    {"round", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			e->socket_path = optarg;
			break;
		case 'c':
			e->cgroup = optarg;
			break;
		case 'n':
			e->nowayout = true;
			break;
		case 'i':
			if (strlen(optarg) > 32) {
				fprintf(stderr, "pgwarden-wdemu: --identity: at most 32 bytes\n");
				return 2;
			}
			e->identity = optarg;
			break;
		case 'm':
			if (!parse_int(optarg, 1, 65535, &e->max_timeout)) {
				fprintf(stderr, "pgwarden-wdemu: --max-timeout: 1..65535\n");
				return 2;
			}
			break;
		case 'r':
			if (!parse_int(optarg, 1, 3600, &e->round)) {
				fprintf(stderr, "pgwarden-wdemu: --round: 1..3600\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !e->socket_path || !e->cgroup) {
		usage(stderr);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct emu e = {
	    .identity = "pgwarden wdemu",
	    .max_timeout = 2046, /* i6300esb's range */
	    .round = 1,
	    .lfd = -1,
	    .cfd = -1,
	    .timeout = DEFAULT_TIMEOUT,
	};
	struct sigaction sa;
	sigset_t block, orig;
	int rc;

	rc = parse_args(&e, argc, argv);
	if (rc)
		return rc == 1 ? 0 : rc;
	if (e.timeout > e.max_timeout)
		e.timeout = e.max_timeout;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* signals are only delivered inside ppoll(), so none is lost between checks */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &orig);

	if (!cgroup_ok(e.cgroup))
		return 1;
	e.lfd = listen_on(e.socket_path);
	if (e.lfd < 0)
		return 1;
	event("READY", "socket=%s cgroup=%s nowayout=%d pid=%ld", e.socket_path, e.cgroup,
	      e.nowayout, (long)getpid());

	while (!stop_requested) {
		struct pollfd p[2] = {{.fd = e.lfd, .events = POLLIN},
		                      {.fd = e.cfd, .events = POLLIN}};
		struct timespec ts, *tp = NULL;
		int r;

		if (e.running) {
			double left = e.last_ping + e.timeout - mono();

			if (left <= 0) {
				fire(&e);
				continue;
			}
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
			tp = &ts;
		}
		r = ppoll(p, e.cfd >= 0 ? 2 : 1, tp, &orig);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "pgwarden-wdemu: poll: %s\n", strerror(errno));
			break;
		}
		if (r <= 0)
			continue;
		if (e.cfd >= 0 && p[1].revents)
			on_message(&e);
		if (p[0].revents & POLLIN)
			on_accept(&e);
	}
	if (e.cfd >= 0)
		close(e.cfd);
	close(e.lfd);
	unlink(e.socket_path);
	event("EXIT", "running=%d", e.running);
	return stop_requested ? 0 : 1;
}
