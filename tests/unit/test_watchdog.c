/*
 * test_watchdog.c - the watchdog driver (watchdog/watchdog.c, wdctl.c) and the
 * emulator (pgwarden-wdemu): the timeout arithmetic of ARCHITECTURE.md section 4
 * rule 3 at its edges (slow renewal, renewal right at S - R, a driver rounding the
 * timeout up, TTL - S < 1), then the driver against a real emulator process: open,
 * arm, read-back, keepalive, disarm, magic close, a second opener (EBUSY), nowayout
 * (DISABLECARD EBUSY), a crash (plain close pings once and keeps it running), firing
 * W s after the last ping and killing the node's cgroup, the sysfs listing and the
 * operator's test command.  Timeouts of 1 or 2 s keep it short; runs as a normal user.
 *
 * Each test starts its own emulator on a socket in a mkdtemp directory, with --cgroup
 * pointing to a plain directory whose cgroup.procs is a file the test writes (empty:
 * firing kills nothing).  The emulator binary is $PGW_WDEMU, or pgwarden-wdemu next
 * to the tests' directory (build/<variant>/tests/test_watchdog ->
 * build/<variant>/pgwarden-wdemu), as the Makefile builds it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "lease.h"
#include "pg.h"
#include "wdguard.h"
#include "../../watchdog/watchdog.h"

#define S_MS (PGW_SAFETY_MARGIN_S * 1000)
#define R_MS PGW_RESET_ALLOWANCE_MS

/* --- arithmetic --- */

static void test_want_and_max_timeout(void **state)
{
	(void)state;
	/* W = TTL - S */
	assert_int_equal(pgw_wd_want_timeout(30, 5), 25);
	assert_int_equal(pgw_wd_max_timeout(30, 5), 25);
	assert_int_equal(pgw_wd_want_timeout(10, 5), 5);
	assert_int_equal(pgw_wd_want_timeout(6, 5), 1);
	assert_int_equal(pgw_wd_max_timeout(6, 5), 1);
	/* TTL - S < 1: ask for 1 s, but nothing is usable */
	assert_int_equal(pgw_wd_want_timeout(5, 5), 1);
	assert_int_equal(pgw_wd_max_timeout(5, 5), 0);
	assert_false(pgw_wd_timeout_usable(pgw_wd_want_timeout(5, 5), pgw_wd_max_timeout(5, 5)));
	assert_int_equal(pgw_wd_want_timeout(3, 5), 1);
	assert_int_equal(pgw_wd_max_timeout(3, 5), -2);
	assert_false(pgw_wd_timeout_usable(1, -2));
	/* what is asked for is usable whenever TTL - S >= 1 */
	for (int ttl = 1; ttl <= 40; ttl++)
		for (int s = 0; s <= ttl + 2; s++)
			assert_int_equal(pgw_wd_timeout_usable(pgw_wd_want_timeout(ttl, s),
			                                       pgw_wd_max_timeout(ttl, s)),
			                 ttl - s >= 1);
}

static void test_timeout_usable(void **state)
{
	(void)state;
	assert_true(pgw_wd_timeout_usable(25, 25));
	assert_true(pgw_wd_timeout_usable(1, 25));
	assert_true(pgw_wd_timeout_usable(1, 1));
	/* a driver that rounds 25 up to 26 (or to its hardware step of 30) is refused */
	assert_false(pgw_wd_timeout_usable(26, 25));
	assert_false(pgw_wd_timeout_usable(30, 25));
	/* nonsense read back (ipmi_watchdog accepts anything) */
	assert_false(pgw_wd_timeout_usable(0, 25));
	assert_false(pgw_wd_timeout_usable(-1, 25));
	assert_false(pgw_wd_timeout_usable(1, 0));
}

/*
 * Rule 3 end to end on numbers: whatever renewal gets petted, the reset comes no later
 * than D - R, and a slow renewal is not petted.
 */
static void test_keepalive_window(void **state)
{
	const int ttl = 10;
	const int64_t t_send = 7000000, d = t_send + ttl * 1000;
	const int w = pgw_wd_want_timeout(ttl, PGW_SAFETY_MARGIN_S);

	(void)state;
	/* fast renewal, and one that took exactly S - R: petted */
	assert_true(pgw_lease_may_pet(t_send, t_send + 50, S_MS));
	assert_true(pgw_lease_may_pet(t_send, t_send + S_MS - R_MS, S_MS));
	/* slow renewal: not petted (fires earlier, which is safe) */
	assert_false(pgw_lease_may_pet(t_send, t_send + S_MS - R_MS + 1, S_MS));
	assert_false(pgw_lease_may_pet(t_send, t_send + ttl * 1000, S_MS));
	/* the latest pet that is allowed still resets by D - R */
	for (int64_t now = t_send; now <= t_send + ttl * 1000; now += 250)
		if (pgw_lease_may_pet(t_send, now, S_MS))
			assert_true(now + w * 1000 <= d - R_MS);
	/* and with W one second longer (rounded up) it would not */
	assert_false(t_send + S_MS - R_MS + (w + 1) * 1000 <= d - R_MS);
}

/* --- the emulator process --- */

struct emu {
	pid_t pid;
	pid_t pm; /* a fake postmaster, killed by the teardown */
	int out;  /* its stdout */
	char dir[64];
	char sock[128];
	char cgroup[128];
	char procs[160];
	char buf[16384];
	size_t len;
};

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

static void emu_bin(char *out, size_t len)
{
	const char *env = getenv("PGW_WDEMU");
	char exe[4096];
	ssize_t n;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1); /* build/<variant>/tests/x */
	if (n <= 0)
		fail_msg("readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	snprintf(out, len, "%s/../pgwarden-wdemu", dirname(exe));
}

/*
 * The next line of the emulator's output that starts with prefix (NULL: any line)
 * within timeout_ms, into line; false when none came.
 */
static bool emu_line(struct emu *e, const char *prefix, int timeout_ms, char *line, size_t len)
{
	double until = mono() + timeout_ms / 1000.0;

	for (;;) {
		char *nl;

		while ((nl = memchr(e->buf, '\n', e->len)) != NULL) {
			size_t n = (size_t)(nl - e->buf);
			bool match;

			*nl = '\0';
			match = !prefix || strncmp(e->buf, prefix, strlen(prefix)) == 0;
			if (match && line) {
				size_t c = n < len - 1 ? n : len - 1;

				memcpy(line, e->buf, c);
				line[c] = '\0';
			}
			memmove(e->buf, nl + 1, e->len - n - 1);
			e->len -= n + 1;
			if (match)
				return true;
		}

		double left = until - mono();
		struct pollfd p = {.fd = e->out, .events = POLLIN};
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			return false;
		r = read(e->out, e->buf + e->len, sizeof(e->buf) - 1 - e->len);
		if (r <= 0)
			return false;
		e->len += (size_t)r;
	}
}

/* Assert the next event is `what` (its line starts with it); returns its mono time. */
static double expect_event(struct emu *e, const char *what, const char *contains)
{
	char line[512], *m;

	if (!emu_line(e, NULL, 3000, line, sizeof(line)))
		fail_msg("no event from the emulator, expected %s", what);
	if (strncmp(line, what, strlen(what)) != 0 || line[strlen(what)] != ' ' ||
	    (contains && !strstr(line, contains)))
		fail_msg("emulator said \"%s\", expected %s%s%s", line, what,
		         contains ? " with " : "", contains ? contains : "");
	m = strstr(line, "mono=");
	return m ? strtod(m + 5, NULL) : 0;
}

/* No event within ms. */
static void expect_quiet(struct emu *e, int ms)
{
	char line[512];

	if (emu_line(e, NULL, ms, line, sizeof(line)))
		fail_msg("unexpected event from the emulator: \"%s\"", line);
}

struct fired {
	double mono, last_ping;
	int timeout;
};

static struct fired expect_fired(struct emu *e, int within_ms)
{
	struct fired f = {0, 0, 0};
	char line[512];

	if (!emu_line(e, "FIRED", within_ms, line, sizeof(line)))
		fail_msg("the emulator did not fire within %d ms", within_ms);
	if (sscanf(line, "FIRED mono=%lf last_ping=%lf timeout=%d", &f.mono, &f.last_ping,
	           &f.timeout) != 3)
		fail_msg("bad FIRED line \"%s\"", line);
	return f;
}

/* The events of an open (idle at 60 s, disabled) and an arming with timeout (W). */
static void expect_open_and_arm(struct emu *e, const char *timeout, bool keepalive)
{
	expect_event(e, "OPEN", NULL);
	expect_event(e, "SETTIMEOUT", "timeout=60");
	expect_event(e, "DISABLE", NULL);
	expect_event(e, "SETTIMEOUT", timeout);
	expect_event(e, "ENABLE", NULL);
	if (keepalive)
		expect_event(e, "KEEPALIVE", NULL);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/*
 * Regression (simulator seed 1759): a leader whose renewals failed for 15 s was then
 * killed; the close pinged the device, which fired W after the death, past the lease
 * deadline, while a new leader already wrote.  With the renewal overdue the guard
 * lowers W to the bound, so the crash's ping is followed by a reset within it; a
 * renewal in time restores the full W.
 */
static void test_bound_lowers_timeout_before_crash(void **state)
{
	struct emu *e = *state;
	struct pgw_lease l = {0};
	struct fired f;
	double closed;
	pid_t pid;
	int status;

	/* D 6 s ahead, loop_wait 2: bound = 6 - 1 - 2 - 1 = 2 s */
	pgw_lease_renewed(&l, 7, 0, 10);
	assert_int_equal(pgw_lease_wd_bound_s(&l, 4000, 2), 2);
	assert_int_equal(pgw_lease_wd_bound_s(&l, 9000, 2), 1); /* at least 1 s */
	l.id = 0;
	assert_int_equal(pgw_lease_wd_bound_s(&l, 4000, 2), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pgw_config cfg;
		struct pgw_wdguard *g;
		struct pgw_wd_status st;

		memset(&cfg, 0, sizeof(cfg));
		cfg.watchdog.mode = PGW_WD_REQUIRED;
		cfg.watchdog.device = e->sock;
		g = pgw_wdguard_open(&cfg);
		/* ttl 10, S 5, loop_wait 2: W 5 */
		if (!pgw_wdguard_arm(g, 10, 5, 2))
			_exit(1);
		pgw_wdguard_bound(g, 7); /* longer than W: nothing */
		pgw_wdguard_bound(g, 2);
		pgw_wdguard_status(g, &st);
		if (st.timeout != 2)
			_exit(2);
		pgw_wdguard_renewed(g, 1000, 1100, 5000); /* in the window: back to 5 */
		pgw_wdguard_status(g, &st);
		if (st.timeout != 5)
			_exit(3);
		pgw_wdguard_bound(g, 1);
		sleep_ms(300);
		_exit(0); /* killed: the kernel closes the descriptor */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	expect_open_and_arm(e, "timeout=5", true);
	expect_event(e, "SETTIMEOUT", "timeout=2");
	expect_event(e, "ENABLE", NULL);
	expect_event(e, "KEEPALIVE", NULL);
	expect_event(e, "SETTIMEOUT", "timeout=5");
	expect_event(e, "ENABLE", NULL);
	expect_event(e, "KEEPALIVE", NULL);
	expect_event(e, "SETTIMEOUT", "timeout=1");
	expect_event(e, "ENABLE", NULL);
	expect_event(e, "KEEPALIVE", NULL);
	closed = expect_event(e, "CLOSE", "running=1 did_not_stop=1 magic=0");
	f = expect_fired(e, 3000);
	assert_int_equal(f.timeout, 1); /* the lowered W, not the armed 5 s */
	assert_true(f.mono - closed < 1.5);
}

/* --- the keeper (daemon/wdkeeper.c) --- */

/* A process whose name is "postgres", and a data directory whose postmaster.pid names it. */
static pid_t fake_postmaster(struct emu *e, char *data, size_t len)
{
	char path[256], text[32];
	pid_t pm;

	snprintf(data, len, "%s/data", e->dir);
	assert_int_equal(mkdir(data, 0700), 0);
	pm = fork();
	assert_true(pm >= 0);
	if (pm == 0) {
		prctl(PR_SET_NAME, "postgres", 0, 0, 0);
		for (;;)
			pause();
	}
	e->pm = pm;
	sleep_ms(50); /* the name is set */
	snprintf(path, sizeof(path), "%s/postmaster.pid", data);
	snprintf(text, sizeof(text), "%d\n%s\n", (int)pm, data);
	write_text(path, text);
	return pm;
}

static void touch(const char *data, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", data, name);
	write_text(path, "");
}

static void remove_data(const char *data)
{
	static const char *const files[] = {"postmaster.pid", "standby.signal", "promote"};
	char path[256];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", data, files[i]);
		unlink(path);
	}
	rmdir(data);
}

static void remove_data_of(struct emu *e)
{
	char data[128];

	snprintf(data, sizeof(data), "%s/data", e->dir);
	remove_data(data);
}

static void kill_wait(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* In a forked "daemon": open the device, start the keeper, arm for ttl 6, S 3,
 * loop_wait 1 (W 3); _exit(1) when arming fails. */
static struct pgw_wdguard *keeper_daemon_arm(struct emu *e, const char *data)
{
	struct pgw_config cfg;
	struct pgw_wdguard *g;

	memset(&cfg, 0, sizeof(cfg));
	cfg.watchdog.mode = PGW_WD_REQUIRED;
	cfg.watchdog.device = e->sock;
	cfg.postgresql.data_dir = (char *)data;
	g = pgw_wdguard_open(&cfg);
	pgw_wdguard_keep(g);
	if (!pgw_wdguard_arm(g, 6, 3, 1))
		_exit(1);
	return g;
}

/*
 * A "daemon": opens the device, starts its keeper, arms for ttl 6, S 3, loop_wait 1
 * (W 3), then stalls for stall_ms without petting and dies without closing anything,
 * as SIGKILL after SIGSTOP would.  Returns once it is dead.
 */
static void daemon_arms_stalls_dies(struct emu *e, const char *data, int stall_ms)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		(void)keeper_daemon_arm(e, data);
		sleep_ms(stall_ms);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	expect_open_and_arm(e, "timeout=3", false);
}

/* Reap the orphaned keeper (this process is a subreaper), within ms. */
static bool keeper_exited(int ms)
{
	for (int waited = 0; waited < ms; waited += 50) {
		pid_t r = waitpid(-1, NULL, WNOHANG);

		if (r > 0 || (r < 0 && errno == ECHILD))
			return true;
		sleep_ms(50);
	}
	return false;
}

/*
 * Regression (simulator seeds 6675, 26782, 33993, 51013, 61196): a leader's daemon is
 * stopped for most of W, then killed.  Alone, its death closed the device, which pinged
 * it: the reset came W after the death, up to 2 W after the last pet and past the lease
 * deadline.  The keeper holds the device while PostgreSQL may write, so the reset comes
 * W after the last pet, and the death is not even seen by the device.
 */
static void test_keeper_stall_then_kill_fires_from_last_pet(void **state)
{
	struct emu *e = *state;
	char data[128], pids[32];
	double pet;
	struct fired f;
	pid_t pm = fake_postmaster(e, data, sizeof(data));

	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	snprintf(pids, sizeof(pids), "%d\n", (int)pm);
	write_text(e->procs, pids); /* the reset kills the "postmaster" */
	daemon_arms_stalls_dies(e, data, 2000);
	pet = 0;
	{
		char line[256];

		assert_true(emu_line(e, NULL, 1000, line, sizeof(line)));
		assert_true(strncmp(line, "KEEPALIVE", 9) == 0);
		pet = strtod(strstr(line, "mono=") + 5, NULL);
	}
	/* the next event is the reset, 3 s after the arming's keepalive: no CLOSE */
	f = expect_fired(e, 4000);
	assert_int_equal(f.timeout, 3);
	assert_true(f.last_ping >= pet - 0.05 && f.last_ping <= pet + 0.05);
	assert_true(f.mono - pet < 3.5);
	assert_int_equal(waitpid(pm, NULL, 0), pm);
	write_text(e->procs, "");
	/* nothing can write any more: the keeper lets go and exits */
	assert_true(keeper_exited(3000));
	remove_data(data);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

/* A standby cannot write: the keeper lets go about a second after the daemon died. */
static void test_keeper_lets_go_of_a_standby_not_a_promotion(void **state)
{
	struct emu *e = *state;
	char data[128], line[256];
	pid_t pm = fake_postmaster(e, data, sizeof(data));
	double died;

	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	touch(data, "standby.signal");
	touch(data, "promote"); /* a promotion asked for: a writer soon */
	assert_true(pgw_pg_unmanaged_writer(data) == pm);
	daemon_arms_stalls_dies(e, data, 0);
	expect_event(e, "KEEPALIVE", NULL);
	died = mono();
	expect_quiet(e, 1500); /* held */
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/promote", data);
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(pgw_pg_unmanaged_writer(data), 0);
	assert_true(emu_line(e, NULL, 2500, line, sizeof(line)));
	assert_true(strncmp(line, "CLOSE", 5) == 0);
	assert_non_null(strstr(line, "did_not_stop=1"));
	assert_true(mono() - died < 4.0);
	assert_true(keeper_exited(1000));
	/* the card runs on from that close: it fires, and kills nothing */
	expect_fired(e, 4000);
	kill_wait(pm);
	remove_data(data);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

/* A clean close: disabled, magic-closed, the keeper gone before close returns. */
static void test_keeper_clean_close(void **state)
{
	struct emu *e = *state;
	char data[128];
	pid_t pm = fake_postmaster(e, data, sizeof(data));
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pgw_wdguard *g = keeper_daemon_arm(e, data);

		pgw_wdguard_idle(g);
		pgw_wdguard_close(g, true);
		/* no child left: the keeper was waited for */
		_exit(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	expect_open_and_arm(e, "timeout=3", true);
	expect_event(e, "DISABLE", NULL);
	expect_event(e, "DISABLE", NULL);
	expect_event(e, "WRITE", "data=V");
	expect_event(e, "CLOSE", "running=0");
	expect_quiet(e, 500);
	kill_wait(pm);
	remove_data(data);
}

/*
 * A restarted daemon: the device is busy while the keeper of the dead one holds it; once
 * the leftover primary is stopped the keeper lets go and the open succeeds.
 */
static void test_keeper_restart_opens_after_leftover_stops(void **state)
{
	struct emu *e = *state;
	char data[128], err[256];
	struct pgw_config cfg;
	struct pgw_wdguard *g;
	struct pgw_wd_status st;
	struct pgw_wd *busy;
	pid_t pm = fake_postmaster(e, data, sizeof(data));

	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	daemon_arms_stalls_dies(e, data, 0);
	expect_event(e, "KEEPALIVE", NULL);
	busy = pgw_wd_open(e->sock, err, sizeof(err));
	assert_null(busy);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(pgw_pg_stop_leftover_primary(data, 3000), 0);
	assert_int_equal(waitpid(pm, NULL, 0), pm);
	memset(&cfg, 0, sizeof(cfg));
	cfg.watchdog.mode = PGW_WD_REQUIRED;
	cfg.watchdog.device = e->sock;
	cfg.postgresql.data_dir = data;
	g = pgw_wdguard_open(&cfg);
	pgw_wdguard_status(g, &st);
	assert_true(st.open);
	assert_false(st.failed);
	expect_event(e, "BUSY", NULL);                             /* our first try */
	assert_true(emu_line(e, "CLOSE", 3000, err, sizeof(err))); /* then busy tries */
	assert_non_null(strstr(err, "did_not_stop=1"));
	expect_event(e, "OPEN", NULL);
	assert_true(keeper_exited(1000));
	pgw_wdguard_close(g, true);
	remove_data(data);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

/* prestate: NULL-terminated extra arguments for the emulator */
static int emu_setup(void **state)
{
	const char *const *extra = *state;
	struct emu *e = calloc(1, sizeof(*e));
	char bin[4200];
	const char *argv[16];
	int fds[2], n = 0;

	assert_non_null(e);
	emu_bin(bin, sizeof(bin));
	if (access(bin, X_OK) != 0)
		fail_msg("%s: %s (build it with make, or set PGW_WDEMU)", bin, strerror(errno));
	snprintf(e->dir, sizeof(e->dir), "/tmp/pgw-wdtest.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->sock, sizeof(e->sock), "%s/watchdog.sock", e->dir);
	snprintf(e->cgroup, sizeof(e->cgroup), "%s/node", e->dir);
	snprintf(e->procs, sizeof(e->procs), "%s/cgroup.procs", e->cgroup);
	assert_int_equal(mkdir(e->cgroup, 0700), 0);
	write_text(e->procs, "");

	argv[n++] = bin;
	argv[n++] = "--socket";
	argv[n++] = e->sock;
	argv[n++] = "--cgroup";
	argv[n++] = e->cgroup;
	for (int i = 0; extra && extra[i] && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

	assert_int_equal(pipe(fds), 0);
	e->pid = fork();
	assert_true(e->pid >= 0);
	if (e->pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	e->out = fds[0];
	if (!emu_line(e, "READY", 5000, NULL, 0)) {
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
		fail_msg("%s did not start", bin);
	}
	*state = e;
	return 0;
}

static int emu_teardown(void **state)
{
	struct emu *e = *state;
	int status = 0;

	if (!e)
		return 0;
	if (e->pm > 0) { /* unless the test reaped it */
		if (waitpid(e->pm, NULL, WNOHANG) == 0) {
			kill(e->pm, SIGKILL);
			waitpid(e->pm, NULL, 0);
		}
		remove_data_of(e);
	}
	kill(e->pid, SIGTERM);
	waitpid(e->pid, &status, 0);
	close(e->out);
	unlink(e->procs);
	rmdir(e->cgroup);
	unlink(e->sock);
	rmdir(e->dir);
	free(e);
	/* a clean exit on SIGTERM */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	return 0;
}

static struct pgw_wd *open_ok(struct emu *e)
{
	char err[512] = "";
	struct pgw_wd *wd = pgw_wd_open(e->sock, err, sizeof(err));

	if (!wd)
		fail_msg("pgw_wd_open: %s", err);
	return wd;
}

/* open, and the three events it causes */
static struct pgw_wd *open_idle(struct emu *e)
{
	struct pgw_wd *wd = open_ok(e);

	expect_event(e, "OPEN", NULL);
	expect_event(e, "SETTIMEOUT", "timeout=60");
	expect_event(e, "DISABLE", NULL);
	return wd;
}

static void arm_ok(struct emu *e, struct pgw_wd *wd, int want, int max)
{
	char err[512] = "";

	if (pgw_wd_arm(wd, want, max, err, sizeof(err)) != 0)
		fail_msg("pgw_wd_arm(%d, %d): %s", want, max, err);
	expect_event(e, "SETTIMEOUT", NULL);
	expect_event(e, "ENABLE", NULL);
	expect_event(e, "KEEPALIVE", "running=1");
}

/* --- the driver against the emulator --- */

static void test_open_idles(void **state)
{
	struct emu *e = *state;
	const struct pgw_wd_info *in;
	struct pgw_wd *wd;

	wd = open_ok(e);
	in = pgw_wd_info(wd);
	assert_true(in->emulated);
	assert_string_equal(in->identity, "pgwarden wdemu");
	assert_int_equal(in->options, 0x8180);
	assert_int_equal(in->timeout, PGW_WD_IDLE_TIMEOUT);
	assert_false(in->nowayout);
	assert_false(in->armed);
	/* open() started the timer with the default 30 s; set a timeout, then stop it */
	expect_event(e, "OPEN", "timeout=30");
	expect_event(e, "SETTIMEOUT", "want=60 timeout=60");
	expect_event(e, "DISABLE", NULL);
	assert_int_equal(pgw_wd_get_timeout(wd), 60);
	pgw_wd_close(wd);
	expect_event(e, "DISABLE", NULL);
	expect_event(e, "WRITE", "data=V");
	expect_event(e, "CLOSE", "running=0");
}

/* The emulator runs with --max-timeout 45: the idle timeout is refused, it pings. */
static void test_open_idle_timeout_refused(void **state)
{
	struct emu *e = *state;
	struct pgw_wd *wd = open_ok(e);

	assert_int_equal(pgw_wd_info(wd)->timeout, 30);
	assert_false(pgw_wd_info(wd)->armed);
	expect_event(e, "OPEN", "timeout=30");
	expect_event(e, "SETTIMEOUT", "want=60 refused=EINVAL");
	expect_event(e, "KEEPALIVE", "running=1");
	expect_event(e, "DISABLE", NULL);
	arm_ok(e, wd, 45, 45);
	pgw_wd_close(wd);
}

static void test_arm_keepalive_disarm(void **state)
{
	struct emu *e = *state;
	struct pgw_wd *wd = open_idle(e);
	const struct pgw_wd_info *in = pgw_wd_info(wd);
	char err[512] = "";

	if (pgw_wd_arm(wd, 1, 5, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_true(in->armed);
	assert_int_equal(in->timeout, 1);
	expect_event(e, "SETTIMEOUT", "want=1 timeout=1");
	expect_event(e, "ENABLE", "timeout=1");
	expect_event(e, "KEEPALIVE", "running=1");
	for (int i = 0; i < 3; i++) {
		sleep_ms(400);
		assert_int_equal(pgw_wd_keepalive(wd), 0);
		expect_event(e, "KEEPALIVE", "running=1");
	}
	assert_int_equal(pgw_wd_disarm(wd, err, sizeof(err)), 0);
	assert_false(in->armed);
	expect_event(e, "DISABLE", NULL);
	/* disarmed: no reset, however long nobody pets */
	expect_quiet(e, 1600);
	/* and armed again */
	arm_ok(e, wd, 1, 5);
	assert_true(in->armed);
	assert_int_equal(pgw_wd_disarm(wd, err, sizeof(err)), 0);
	expect_event(e, "DISABLE", NULL);
	pgw_wd_close(wd);
}

static void test_arm_out_of_range(void **state)
{
	struct emu *e = *state;
	struct pgw_wd *wd = open_idle(e);
	char err[512];

	/* checked before the device is touched */
	assert_int_equal(pgw_wd_arm(wd, 0, 5, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "timeout 0 s is out of range 1..5 s"));
	assert_int_equal(pgw_wd_arm(wd, 6, 5, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "timeout 6 s is out of range 1..5 s"));
	/* TTL - S < 1 */
	assert_int_equal(
	    pgw_wd_arm(wd, pgw_wd_want_timeout(5, 5), pgw_wd_max_timeout(5, 5), err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "out of range 1..0 s"));
	assert_false(pgw_wd_info(wd)->armed);
	expect_quiet(e, 200);
	/* the device itself refuses (the emulator's --max-timeout 100) */
	assert_int_equal(pgw_wd_arm(wd, 200, 300, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "WDIOC_SETTIMEOUT(200): Invalid argument"));
	assert_false(pgw_wd_info(wd)->armed);
	expect_event(e, "SETTIMEOUT", "refused=EINVAL");
	expect_event(e, "DISABLE", NULL);
	pgw_wd_close(wd);
}

/* The emulator runs with --round 5: SETTIMEOUT(2) reads back 5. */
static void test_arm_rounded_up_refused(void **state)
{
	struct emu *e = *state;
	struct pgw_wd *wd = open_idle(e);
	const struct pgw_wd_info *in = pgw_wd_info(wd);
	char err[512];

	assert_int_equal(pgw_wd_arm(wd, 2, 3, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "asked for a 2 s timeout, the device reports 5 s, more than "
	                            "the 3 s allowed"));
	assert_false(in->armed);
	assert_int_equal(in->timeout, 5);
	expect_event(e, "SETTIMEOUT", "want=2 timeout=5");
	expect_event(e, "DISABLE", NULL); /* disabled again, not enabled */
	expect_quiet(e, 200);
	/* exactly the limit is fine */
	arm_ok(e, wd, 5, 5);
	assert_int_equal(in->timeout, 5);
	pgw_wd_close(wd);
}

static void test_pet_after_renewal(void **state)
{
	struct emu *e = *state;
	struct pgw_wd *wd = open_idle(e);
	const int64_t t = 1000000;
	char err[512];

	arm_ok(e, wd, 2, 5);
	/* renewal took exactly S - R: petted */
	assert_int_equal(pgw_wd_pet_after_renewal(wd, t, t + S_MS - R_MS, S_MS), 1);
	expect_event(e, "KEEPALIVE", "running=1");
	/* slow renewal: no keepalive reaches the device, the next event is the disarm */
	assert_int_equal(pgw_wd_pet_after_renewal(wd, t, t + S_MS - R_MS + 1, S_MS), 0);
	assert_int_equal(pgw_wd_disarm(wd, err, sizeof(err)), 0);
	expect_event(e, "DISABLE", NULL);
	pgw_wd_close(wd);
}

static void test_magic_close(void **state)
{
	struct emu *e = *state;
	struct pgw_wd *wd = open_idle(e);

	arm_ok(e, wd, 1, 5);
	pgw_wd_close(wd);
	expect_event(e, "DISABLE", NULL);
	expect_event(e, "WRITE", "data=V");
	expect_event(e, "CLOSE", "running=0");
	expect_quiet(e, 1600);
	/* the device can be opened again */
	wd = open_idle(e);
	pgw_wd_close(wd);
}

static void test_second_open_busy(void **state)
{
	struct emu *e = *state;
	struct pgw_wd *a = open_idle(e), *b;
	char err[512] = "";

	b = pgw_wd_open(e->sock, err, sizeof(err));
	assert_null(b);
	assert_int_equal(errno, EBUSY);
	assert_non_null(strstr(err, e->sock));
	assert_non_null(strstr(err, "Device or resource busy"));
	expect_event(e, "BUSY", NULL);
	/* the first opener is undisturbed */
	assert_int_equal(pgw_wd_get_timeout(a), 60);
	pgw_wd_close(a);
	expect_event(e, "DISABLE", NULL);
	expect_event(e, "WRITE", NULL);
	expect_event(e, "CLOSE", NULL);
	b = open_idle(e);
	pgw_wd_close(b);
}

/* A daemon that dies holding an armed device: close() pings once, then it fires. */
static void test_crash_fires_after_close(void **state)
{
	struct emu *e = *state;
	struct fired f;
	double closed;
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[512];
		struct pgw_wd *wd = pgw_wd_open(e->sock, err, sizeof(err));

		if (!wd || pgw_wd_arm(wd, 1, 5, err, sizeof(err)) != 0)
			_exit(1);
		sleep_ms(300);
		_exit(0); /* no pgw_wd_close: the kernel closes the descriptor */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
	expect_open_and_arm(e, "timeout=1", true);
	closed = expect_event(e, "CLOSE", "running=1 did_not_stop=1 magic=0");
	f = expect_fired(e, 3000);
	assert_int_equal(f.timeout, 1);
	/* measured from the close, not from the last deliberate keepalive */
	assert_true(f.last_ping >= closed - 0.1 && f.last_ping <= closed + 0.1);
	assert_true(f.mono - f.last_ping >= 1.0);
	assert_true(f.mono - f.last_ping < 1.5);
}

static void test_fires_without_pets(void **state)
{
	struct emu *e = *state;
	struct pgw_wd *wd = open_idle(e);
	struct fired f;
	double last = 0;
	char line[256];

	arm_ok(e, wd, 1, 5);
	for (int i = 0; i < 3; i++) {
		sleep_ms(300);
		assert_int_equal(pgw_wd_keepalive(wd), 0);
		last = expect_event(e, "KEEPALIVE", "running=1");
	}
	f = expect_fired(e, 3000);
	assert_int_equal(f.timeout, 1);
	assert_true(f.last_ping >= last - 0.1 && f.last_ping <= last + 0.1);
	assert_true(f.mono - f.last_ping >= 1.0);
	assert_true(f.mono - f.last_ping < 1.5);
	/* the "machine" was reset: the old descriptor is dead */
	assert_int_equal(pgw_wd_keepalive(wd), -1);
	assert_int_equal(errno, EPIPE);
	assert_int_equal(pgw_wd_get_timeout(wd), -1);
	pgw_wd_close(wd);
	/* and it boots again with the driver's default timeout */
	wd = open_ok(e);
	assert_true(emu_line(e, "OPEN", 3000, line, sizeof(line)));
	assert_non_null(strstr(line, "timeout=30"));
	pgw_wd_close(wd);
}

static void test_fire_kills_cgroup(void **state)
{
	struct emu *e = *state;
	struct pgw_wd *wd = open_idle(e);
	char pids[32], line[256];
	pid_t node;
	int status;

	node = fork(); /* stands for the node's PostgreSQL */
	assert_true(node >= 0);
	if (node == 0) {
		for (;;)
			pause();
	}
	snprintf(pids, sizeof(pids), "%d\n", (int)node);
	write_text(e->procs, pids);
	arm_ok(e, wd, 1, 5);
	assert_true(emu_line(e, "KILL", 3000, line, sizeof(line)));
	assert_non_null(strstr(line, "procs=1"));
	expect_fired(e, 1000);
	assert_int_equal(waitpid(node, &status, 0), node);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	write_text(e->procs, "");
	pgw_wd_close(wd);
}

/* The emulator runs with --nowayout. */
static void test_nowayout(void **state)
{
	struct emu *e = *state;
	const struct pgw_wd_info *in;
	struct pgw_wd *wd;
	char err[512] = "";
	struct fired f;
	double closed;

	wd = open_ok(e);
	in = pgw_wd_info(wd);
	/* DISABLECARD right after open was refused: it runs, the caller must pet it */
	assert_true(in->nowayout);
	assert_true(in->armed);
	expect_event(e, "OPEN", NULL);
	expect_event(e, "SETTIMEOUT", "timeout=60");
	expect_event(e, "DISABLE", "refused=EBUSY");

	arm_ok(e, wd, 1, 5);
	assert_int_equal(pgw_wd_disarm(wd, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "nowayout"));
	assert_true(in->armed);
	expect_event(e, "DISABLE", "refused=EBUSY");
	assert_int_equal(pgw_wd_keepalive(wd), 0);
	expect_event(e, "KEEPALIVE", "running=1");
	/* the magic close cannot stop it either: it fires W after the close */
	pgw_wd_close(wd);
	expect_event(e, "WRITE", "data=V");
	closed = expect_event(e, "CLOSE", "running=1 did_not_stop=1 magic=1");
	f = expect_fired(e, 3000);
	assert_true(f.last_ping >= closed - 0.1 && f.mono - f.last_ping >= 1.0);
}

static void test_open_not_a_watchdog(void **state)
{
	char err[512], dir[] = "/tmp/pgw-wdtest.XXXXXX", file[64];

	(void)state;
	assert_null(pgw_wd_open("/nonexistent/watchdog", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/watchdog: No such file or directory");
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/watchdog", dir);
	write_text(file, "");
	assert_null(pgw_wd_open(file, err, sizeof(err)));
	assert_non_null(strstr(err, "not a watchdog (neither a character device"));
	assert_null(pgw_wd_open(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "not a watchdog"));
	unlink(file);
	rmdir(dir);
	/* a character device that is no watchdog */
	assert_null(pgw_wd_open("/dev/null", err, sizeof(err)));
	assert_non_null(strstr(err, "/dev/null: not a watchdog: WDIOC_GETSUPPORT"));
}

static void mkattr(const char *dir, const char *wd, const char *file, const char *text)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, wd);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, wd, file);
	write_text(path, text);
}

static void test_list_sysfs(void **state)
{
	char dir[] = "/tmp/pgw-wdtest.XXXXXX", cmd[128];
	struct pgw_wd_sysfs w[4];

	(void)state;
	assert_non_null(mkdtemp(dir));
	mkattr(dir, "watchdog0", "identity", "i6300ESB timer\n");
	mkattr(dir, "watchdog0", "timeout", "30\n");
	mkattr(dir, "watchdog0", "state", "inactive\n");
	mkattr(dir, "watchdog0", "nowayout", "0\n");
	mkattr(dir, "watchdog0", "bootstatus", "32\n");
	mkattr(dir, "watchdog0", "dev", "248:0\n");
	mkattr(dir, "watchdog10", "identity", "Software Watchdog\n");
	mkattr(dir, "watchdog2", "nowayout", "1\n");
	mkattr(dir, "other", "identity", "not a watchdog\n");

	assert_int_equal(pgw_wd_list(dir, w, 4), 3);
	/* natural order: watchdog2 before watchdog10 */
	assert_string_equal(w[0].name, "watchdog0");
	assert_string_equal(w[0].identity, "i6300ESB timer");
	assert_string_equal(w[0].state, "inactive");
	assert_string_equal(w[0].dev, "248:0");
	assert_int_equal(w[0].timeout, 30);
	assert_int_equal(w[0].nowayout, 0);
	assert_int_equal(w[0].bootstatus, 32);
	assert_string_equal(w[1].name, "watchdog2");
	assert_int_equal(w[1].nowayout, 1);
	assert_int_equal(w[1].timeout, -1);
	assert_int_equal(w[1].bootstatus, -1);
	assert_string_equal(w[1].identity, "");
	assert_string_equal(w[2].name, "watchdog10");
	assert_int_equal(pgw_wd_list(dir, w, 1), 1);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(pgw_wd_list(dir, w, 4), -1);
	assert_int_equal(errno, ENOENT);
}

static char *run_cmd_test(const char *device, int timeout, bool fire, int *rc)
{
	FILE *f = tmpfile();
	char *text;
	long n;

	assert_non_null(f);
	*rc = pgw_wd_cmd_test(device, timeout, fire, f);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return text;
}

static void test_cmd_test(void **state)
{
	struct emu *e = *state;
	char *out;
	int rc;

	out = run_cmd_test(e->sock, 2, false, &rc);
	if (rc != 0 || !strstr(out, "identity \"pgwarden wdemu\"") ||
	    !strstr(out, "options 0x8180 (SETTIMEOUT|MAGICCLOSE|KEEPALIVEPING)") ||
	    !strstr(out, "the device reports W = 2 s") || !strstr(out, "keepalive 3\n") ||
	    !strstr(out, "PASS: stopped with the magic close"))
		fail_msg("rc %d, output:\n%s", rc, out);
	free(out);
	expect_event(e, "OPEN", NULL);
	assert_true(emu_line(e, "WRITE", 1000, NULL, 0));
	expect_event(e, "CLOSE", "running=0");

	/* fire: the emulator resets the "machine" and closes the connection */
	out = run_cmd_test(e->sock, 1, true, &rc);
	if (rc != 0 || !strstr(out, "PASS: the emulator fired"))
		fail_msg("rc %d, output:\n%s", rc, out);
	free(out);
	expect_fired(e, 1000);

	out = run_cmd_test(e->sock, 0, false, &rc);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "must be at least 1 s"));
	free(out);
}

static void test_cmd_list(void **state)
{
	FILE *f = tmpfile();

	(void)state;
	assert_non_null(f);
	/* whatever this host has: it lists it, or says there is none */
	assert_int_equal(pgw_wd_cmd_list(f), 0);
	assert_true(ftell(f) > 0);
	fclose(f);
}

static const char *const plain[] = {"--max-timeout", "100", NULL};
static const char *const max45[] = {"--max-timeout", "45", NULL};
static const char *const round5[] = {"--round", "5", NULL};
static const char *const nowayout[] = {"--nowayout", "--identity", "nowayout emu", NULL};

#define EMU_TEST(f, args)                                                                          \
	cmocka_unit_test_prestate_setup_teardown(f, emu_setup, emu_teardown, (void *)args)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_want_and_max_timeout),
	    cmocka_unit_test(test_timeout_usable),
	    cmocka_unit_test(test_keepalive_window),
	    EMU_TEST(test_open_idles, plain),
	    EMU_TEST(test_open_idle_timeout_refused, max45),
	    EMU_TEST(test_arm_keepalive_disarm, plain),
	    EMU_TEST(test_arm_out_of_range, plain),
	    EMU_TEST(test_arm_rounded_up_refused, round5),
	    EMU_TEST(test_pet_after_renewal, plain),
	    EMU_TEST(test_magic_close, plain),
	    EMU_TEST(test_second_open_busy, plain),
	    EMU_TEST(test_crash_fires_after_close, plain),
	    EMU_TEST(test_bound_lowers_timeout_before_crash, plain),
	    EMU_TEST(test_fires_without_pets, plain),
	    EMU_TEST(test_fire_kills_cgroup, plain),
	    EMU_TEST(test_nowayout, nowayout),
	    EMU_TEST(test_keeper_stall_then_kill_fires_from_last_pet, plain),
	    EMU_TEST(test_keeper_lets_go_of_a_standby_not_a_promotion, plain),
	    EMU_TEST(test_keeper_clean_close, plain),
	    EMU_TEST(test_keeper_restart_opens_after_leftover_stops, plain),
	    cmocka_unit_test(test_open_not_a_watchdog),
	    cmocka_unit_test(test_list_sysfs),
	    EMU_TEST(test_cmd_test, plain),
	    cmocka_unit_test(test_cmd_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
