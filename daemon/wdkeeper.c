/*
 * wdkeeper.c - the watchdog keeper; see wdkeeper.h for why it exists.
 *
 * The keeper is forked from the daemon (which has no threads) and does not exec: it
 * closes every descriptor but the device, its end of the pipe and stdio, ignores the
 * signals an operator's "stop" sends, and then only polls the pipe, reads the data
 * directory's postmaster.pid and signal files and calls kill(pid, 0).
 */
#include "wdkeeper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pg.h"

#define KEEPER_POLL_MS  200
#define KEEPER_QUIET_MS 1000 /* no possible writer for this long before letting go */

/* Close every descriptor above stdio except a and b. */
static void close_others(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo > 3)
		(void)close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo + 1)
		(void)close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	(void)close_range((unsigned)hi + 1, ~0U, 0);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static _Noreturn void keeper_main(int wd_fd, int rd, const char *data_dir)
{
	bool orphan = false;
	int quiet_ms = 0;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	(void)prctl(PR_SET_NAME, "pgwarden-wdkeep", 0, 0, 0);
	close_others(wd_fd, rd);

	while (!orphan) {
		struct pollfd p = {.fd = rd, .events = POLLIN};
		char c;
		ssize_t n;

		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			orphan = true; /* cannot watch the daemon: behave as if it died */
			break;
		}
		n = read(rd, &c, 1);
		if (n == 1 && c == 'R') {
			/* a clean close: the daemon disabled the card and magic-closed it */
			close(wd_fd);
			_exit(0);
		}
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			orphan = true;
	}
	close(rd);
	if (pgw_pg_unmanaged_writer(data_dir) > 0)
		pgw_error("watchdog keeper: pgwarden is gone and PostgreSQL may still accept "
		          "writes: the watchdog stays open and resets this machine W after the "
		          "last pet, unless PostgreSQL stops first");
	for (;;) {
		if (pgw_pg_unmanaged_writer(data_dir) > 0)
			quiet_ms = 0;
		else
			quiet_ms += KEEPER_POLL_MS;
		if (quiet_ms > KEEPER_QUIET_MS)
			break;
		sleep_ms(KEEPER_POLL_MS);
	}
	/* nothing can write any more: letting go pings the device once, which is harmless */
	close(wd_fd);
	pgw_info("watchdog keeper: PostgreSQL accepts no writes, the watchdog is released");
	_exit(0);
}

int pgw_wdkeeper_start(struct pgw_wdkeeper *k, int wd_fd, const char *data_dir, char *err,
                       size_t errlen)
{
	int p[2];
	pid_t pid;

	k->pid = 0;
	k->pipe_wr = -1;
	if (pipe2(p, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "watchdog keeper: pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		int e = errno;

		snprintf(err, errlen, "watchdog keeper: fork: %s", strerror(e));
		close(p[0]);
		close(p[1]);
		errno = e;
		return -1;
	}
	if (pid == 0)
		keeper_main(wd_fd, p[0], data_dir);
	close(p[0]);
	k->pid = pid;
	k->pipe_wr = p[1];
	return 0;
}

bool pgw_wdkeeper_alive(struct pgw_wdkeeper *k)
{
	int status;
	pid_t r;

	if (k->pid <= 0)
		return false;
	r = waitpid(k->pid, &status, WNOHANG);
	if (r == 0 || (r < 0 && errno == EINTR))
		return true;
	k->pid = 0;
	if (k->pipe_wr >= 0)
		close(k->pipe_wr);
	k->pipe_wr = -1;
	return false;
}

void pgw_wdkeeper_stop(struct pgw_wdkeeper *k, bool now, int wait_ms)
{
	if (k->pid <= 0)
		return;
	if (now && write(k->pipe_wr, "R", 1) != 1)
		pgw_warn("watchdog keeper %ld: cannot tell it to let go: %s", (long)k->pid,
		         strerror(errno));
	close(k->pipe_wr);
	k->pipe_wr = -1;
	if (!now) {
		k->pid = 0; /* it decides when to go; it is reaped by init */
		return;
	}
	for (int waited = 0; waited <= wait_ms; waited += 10) {
		if (!pgw_wdkeeper_alive(k))
			return;
		sleep_ms(10);
	}
	pgw_warn("watchdog keeper %ld did not exit within %d ms", (long)k->pid, wait_ms);
	k->pid = 0;
}
