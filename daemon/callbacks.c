/*
 * callbacks.c - the operator's commands: Patroni's callbacks (asynchronous, reaped by
 * the HA loop), pre_promote and before_stop (synchronous, bounded); see callbacks.h.
 */
#include "callbacks.h"

#include "log.h"
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CMDLINE_MAX 512
#define ENV_MAX     8

enum { SLOT_MAIN, SLOT_RELOAD, NSLOTS };

struct slot {
	pid_t pid; /* 0: free */
	int fd;    /* its output, -1 once closed */
	int64_t started, deadline;
	const char *name; /* static: pgw_cb_name() */
	char cmdline[CMDLINE_MAX];
	char out[PGW_CB_OUT_MAX];
	size_t out_len;
};

struct pgw_cbrun {
	struct slot slots[NSLOTS];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- building a child: argv, environment --- */

struct child {
	char *argv[64 + 5];
	char *env[ENV_MAX + 1];
	char path[4096]; /* argv[0] looked up in PGW_CB_PATH */
	char envbuf[ENV_MAX][1024];
	char cmdline[CMDLINE_MAX];
};

/* A program without '/' is looked up in PGW_CB_PATH (execve does not search). */
static const char *resolve(const char *prog, char *buf, size_t len)
{
	const char *p = PGW_CB_PATH;
	struct stat st;

	if (strchr(prog, '/'))
		return prog;
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t dl = colon ? (size_t)(colon - p) : strlen(p);

		if ((size_t)snprintf(buf, len, "%.*s/%s", (int)dl, p, prog) < len &&
		    stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
			return buf;
		p += dl + (colon ? 1 : 0);
	}
	return prog; /* execve fails: "cannot execute", exit status 127 */
}

static void home_of_user(char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[2048];

	if (getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &res) == 0 && res && pw.pw_dir)
		snprintf(buf, len, "HOME=%s", pw.pw_dir);
	else
		snprintf(buf, len, "HOME=/");
}

static void format_cmdline(char *const argv[], char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; argv[i] && off + 1 < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%s", i ? " " : "", argv[i]);

		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/* argv = cmd + extra (NULL-terminated, may be NULL); false when it has too many words. */
static bool build_child(struct child *c, const struct pgw_strlist *cmd, const char *const *extra,
                        const char *action, const char *role, const struct pgw_cb_ctx *ctx)
{
	size_t n = 0;
	const char *vals[][2] = {
	    {"PATH=", PGW_CB_PATH},          {"PGWARDEN_NAME=", ctx->name},
	    {"PGWARDEN_SCOPE=", ctx->scope}, {"PGWARDEN_ACTION=", action},
	    {"PGWARDEN_ROLE=", role},        {"PGWARDEN_DATA_DIR=", ctx->data_dir},
	};
	size_t nv = sizeof(vals) / sizeof(vals[0]), e = 0;

	if (cmd->n == 0 || cmd->n > 64)
		return false;
	for (size_t i = 0; i < cmd->n; i++)
		c->argv[n++] = cmd->items[i];
	for (size_t i = 0; extra && extra[i]; i++)
		c->argv[n++] = (char *)extra[i];
	c->argv[n] = NULL;
	format_cmdline(c->argv, c->cmdline, sizeof(c->cmdline));
	c->argv[0] = (char *)resolve(cmd->items[0], c->path, sizeof(c->path));
	for (size_t i = 0; i < nv; i++) {
		snprintf(c->envbuf[e], sizeof(c->envbuf[e]), "%s%s", vals[i][0],
		         vals[i][1] ? vals[i][1] : "");
		c->env[e] = c->envbuf[e];
		e++;
	}
	home_of_user(c->envbuf[e], sizeof(c->envbuf[e]));
	c->env[e] = c->envbuf[e];
	c->env[++e] = NULL;
	return true;
}

/* Start the child with its output on a pipe (*fd, non-blocking here); pid or -1. */
static pid_t start(const struct child *c, int *fd)
{
	int pfd[2], devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t pid;

	*fd = -1;
	if (devnull < 0)
		return -1;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		close(devnull);
		return -1;
	}
	pid = pgw_spawn(c->argv, c->env, devnull, pfd[1], -1);
	close(pfd[1]);
	close(devnull);
	if (pid < 0) {
		close(pfd[0]);
		return -1;
	}
	*fd = pfd[0];
	return pid;
}

void pgw_cb_cmdline(const struct pgw_strlist *cmd, char *buf, size_t len)
{
	char *argv[65];
	size_t n = cmd->n < 64 ? cmd->n : 64;

	for (size_t i = 0; i < n; i++)
		argv[i] = cmd->items[i];
	argv[n] = NULL;
	format_cmdline(argv, buf, len);
}

/* --- outcome and output --- */

const char *pgw_cb_outcome(int rc, char *buf, size_t len)
{
	if (rc == PGW_CB_NOT_STARTED)
		snprintf(buf, len, "could not be started");
	else if (rc == PGW_CB_TIMED_OUT)
		snprintf(buf, len, "timed out (killed with its process group)");
	else if (rc == PGW_CB_SIGNALED)
		snprintf(buf, len, "was killed by a signal");
	else
		snprintf(buf, len, "exited with status %d", rc);
	return buf;
}

static int status_rc(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return PGW_CB_SIGNALED;
}

/* Log the output line by line, then how it ended. */
static void log_end(const char *name, const char *cmdline, const char *out, int rc, int64_t ms)
{
	const char *p = out;
	char how[64];

	while (*p) {
		const char *nl = strchr(p, '\n');
		int n = nl ? (int)(nl - p) : (int)strlen(p);

		if (n > 0)
			pgw_info("%s: %.*s", name, n, p);
		p += n + (nl ? 1 : 0);
	}
	pgw_log(rc == 0 ? PGW_INFO : PGW_WARNING, "%s `%s` %s after %lld ms", name, cmdline,
	        pgw_cb_outcome(rc, how, sizeof(how)), (long long)ms);
}

/* --- asynchronous callbacks --- */

/* Read what is there, never waiting; close at EOF. */
static void drain(struct slot *s)
{
	char buf[4096];
	ssize_t n;

	while (s->fd >= 0) {
		n = read(s->fd, buf, sizeof(buf));
		if (n > 0) {
			pgw_keep_tail(s->out, sizeof(s->out), &s->out_len, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		close(s->fd);
		s->fd = -1;
	}
}

/* The child was reaped (rc), or is killed now (why_killed: "timeout" or the reason);
 * its group goes too; logged. */
static void finish(struct slot *s, int rc, const char *why_killed)
{
	int64_t ms = now_ms() - s->started;
	int status = 0;

	if (why_killed) {
		kill(-s->pid, SIGKILL);
		kill(s->pid, SIGKILL);
		while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	/* what it left in its group (background children) ends with it, as in Patroni */
	kill(-s->pid, SIGKILL);
	drain(s);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (why_killed && strcmp(why_killed, "timeout") != 0) {
		pgw_warn("%s `%s` still running: killed with its process group, %s", s->name,
		         s->cmdline, why_killed);
		log_end(s->name, s->cmdline, s->out, PGW_CB_SIGNALED, ms);
	} else {
		log_end(s->name, s->cmdline, s->out, why_killed ? PGW_CB_TIMED_OUT : rc, ms);
	}
	s->pid = 0;
}

struct pgw_cbrun *pgw_cbrun_new(void)
{
	struct pgw_cbrun *r = calloc(1, sizeof(*r));

	if (r)
		for (int i = 0; i < NSLOTS; i++)
			r->slots[i].fd = -1;
	return r;
}

void pgw_cbrun_reap(struct pgw_cbrun *r)
{
	int64_t now = now_ms();

	for (int i = 0; r && i < NSLOTS; i++) {
		struct slot *s = &r->slots[i];
		int status = 0;
		pid_t got;

		if (s->pid == 0)
			continue;
		drain(s);
		got = waitpid(s->pid, &status, WNOHANG);
		if (got == s->pid)
			finish(s, status_rc(status), NULL);
		else if (got < 0 && errno == ECHILD)
			finish(s, PGW_CB_SIGNALED, NULL); /* reaped elsewhere: cannot tell */
		else if (now >= s->deadline)
			finish(s, 0, "timeout");
	}
}

int64_t pgw_cbrun_deadline(const struct pgw_cbrun *r)
{
	int64_t d = 0;

	for (int i = 0; r && i < NSLOTS; i++)
		if (r->slots[i].pid && (d == 0 || r->slots[i].deadline < d))
			d = r->slots[i].deadline;
	return d;
}

int pgw_cbrun_running(const struct pgw_cbrun *r)
{
	int n = 0;

	for (int i = 0; r && i < NSLOTS; i++)
		n += r->slots[i].pid != 0;
	return n;
}

void pgw_cbrun_fire(struct pgw_cbrun *r, enum pgw_cb which, const struct pgw_strlist *cmd,
                    const char *role, const struct pgw_cb_ctx *ctx, int64_t timeout_ms)
{
	struct slot *s;
	const char *action = pgw_cb_name(which);
	const char *extra[] = {action, role, ctx->scope, NULL};
	struct child *c;
	char why[80];

	if (!r || cmd->n == 0)
		return;
	s = &r->slots[which == PGW_CB_ON_RELOAD ? SLOT_RELOAD : SLOT_MAIN];
	pgw_cbrun_reap(r); /* one that just ended is not "still running" */
	if (s->pid) {
		snprintf(why, sizeof(why), "since %s starts (one at a time, as in Patroni)",
		         action);
		finish(s, 0, why);
	}
	c = calloc(1, sizeof(*c));
	if (!c || !build_child(c, cmd, extra, action, role, ctx)) {
		pgw_error("%s: cannot run the callback: %s", action,
		          c ? "too many arguments" : "out of memory");
		free(c);
		return;
	}
	s->pid = start(c, &s->fd);
	if (s->pid < 0) {
		pgw_error("%s `%s`: cannot start: %s", action, c->cmdline, strerror(errno));
		s->pid = 0;
		free(c);
		return;
	}
	fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
	s->name = action;
	s->started = now_ms();
	s->deadline = s->started + timeout_ms;
	s->out_len = 0;
	s->out[0] = '\0';
	snprintf(s->cmdline, sizeof(s->cmdline), "%s", c->cmdline);
	pgw_info("%s: running `%s` (pid %ld)", action, s->cmdline, (long)s->pid);
	free(c);
}

void pgw_cbrun_free(struct pgw_cbrun *r, int64_t grace_ms)
{
	int64_t until = now_ms() + grace_ms;

	if (!r)
		return;
	while (pgw_cbrun_running(r) && now_ms() < until) {
		struct timespec ts = {0, 50 * 1000000};

		pgw_cbrun_reap(r);
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < NSLOTS; i++)
		if (r->slots[i].pid)
			finish(&r->slots[i], 0, "since pgwarden is stopping");
	free(r);
}

/* --- synchronous: pre_promote, before_stop --- */

int pgw_cb_run_sync(const char *name, const struct pgw_strlist *cmd, const char *role,
                    const struct pgw_cb_ctx *ctx, int64_t deadline, void (*tick)(void *), void *arg)
{
	struct child *c = calloc(1, sizeof(*c));
	char out[PGW_CB_OUT_MAX];
	struct pgw_child_wait w = {.deadline = deadline,
	                           .tick = tick,
	                           .tick_arg = arg,
	                           .out = out,
	                           .out_size = sizeof(out)};
	int64_t t0 = now_ms();
	int fd, rc;
	pid_t pid;

	if (!c || !build_child(c, cmd, NULL, name, role, ctx)) {
		pgw_error("%s: cannot run: %s", name, c ? "too many arguments" : "out of memory");
		free(c);
		return PGW_CB_NOT_STARTED;
	}
	pid = start(c, &fd);
	if (pid < 0) {
		pgw_error("%s `%s`: cannot start: %s", name, c->cmdline, strerror(errno));
		free(c);
		return PGW_CB_NOT_STARTED;
	}
	pgw_info("%s: running `%s` (pid %ld, at most %lld ms)", name, c->cmdline, (long)pid,
	         (long long)(deadline - t0));
	pgw_child_wait(pid, fd, &w);
	kill(-pid, SIGKILL); /* what it left behind in its group */
	rc = w.timed_out ? PGW_CB_TIMED_OUT : w.exited ? status_rc(w.status) : PGW_CB_SIGNALED;
	log_end(name, c->cmdline, out, rc, now_ms() - t0);
	free(c);
	return rc;
}
