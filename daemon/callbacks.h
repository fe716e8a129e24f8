/*
 * callbacks.h - running the operator's commands from the local configuration file
 * (never from etcd, ARCHITECTURE.md §7): Patroni's postgresql.callbacks, which run
 * asynchronously and never hold up the HA loop, and the synchronous pre_promote and
 * before_stop.
 *
 * Every command runs as the daemon's own (unprivileged) user, in a process group of
 * its own, with stdin from /dev/null and a clean environment: PATH (PGW_CB_PATH), HOME
 * of that user, and PGWARDEN_NAME, PGWARDEN_SCOPE, PGWARDEN_ACTION, PGWARDEN_ROLE,
 * PGWARDEN_DATA_DIR.  A program named without a '/' is looked up in that PATH.  Its
 * output (stdout and stderr, the last PGW_CB_OUT_MAX bytes) is logged line by line with
 * the command's name when it ends, with how it ended.  At its time bound its whole
 * process group is SIGKILLed; so is what it left behind in that group when it exits
 * (as Patroni kills a callback's children).
 */
#ifndef PGW_CALLBACKS_H
#define PGW_CALLBACKS_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define PGW_CB_PATH    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define PGW_CB_OUT_MAX 4096

/* What a command is told about this node (also its environment). */
struct pgw_cb_ctx {
	const char *scope;
	const char *name;
	const char *data_dir;
};

/*
 * The asynchronous callbacks.  As in Patroni, one runs at a time: a new one kills the
 * one still running (with its group), except on_reload, which has a slot of its own
 * where a new on_reload kills the previous one.  pgw_cbrun_reap() is called from the
 * HA loop; it never waits.
 */
struct pgw_cbrun;

struct pgw_cbrun *pgw_cbrun_new(void);
/* Wait for the running callbacks until their time bound, at most grace_ms, then kill
 * them; free.  NULL is a no-op. */
void pgw_cbrun_free(struct pgw_cbrun *r, int64_t grace_ms);
/*
 * Start `cmd action role scope` (Patroni's arguments), bounded by timeout_ms.  cmd
 * with no words: nothing to run.  A failure to start is logged.
 */
void pgw_cbrun_fire(struct pgw_cbrun *r, enum pgw_cb which, const struct pgw_strlist *cmd,
                    const char *role, const struct pgw_cb_ctx *ctx, int64_t timeout_ms);
/* Collect output, reap the ones that ended, kill the ones past their bound; logs. */
void pgw_cbrun_reap(struct pgw_cbrun *r);
/* The earliest time bound (CLOCK_MONOTONIC ms) of a running callback, 0 none. */
int64_t pgw_cbrun_deadline(const struct pgw_cbrun *r);
/* How many callbacks run now (0, 1 or 2). */
int pgw_cbrun_running(const struct pgw_cbrun *r);

/* How a synchronous command ended. */
enum { PGW_CB_NOT_STARTED = -1, PGW_CB_TIMED_OUT = -2, PGW_CB_SIGNALED = -3 };

/*
 * Run cmd as written (pre_promote, before_stop: Patroni appends nothing) until it
 * exits or deadline (CLOCK_MONOTONIC ms) passes; tick(arg) about once a second
 * meanwhile (NULL: none).  Returns its exit status (0-255) or one of the negative
 * values above; logged with name.  role: PGWARDEN_ROLE.
 */
int pgw_cb_run_sync(const char *name, const struct pgw_strlist *cmd, const char *role,
                    const struct pgw_cb_ctx *ctx, int64_t deadline, void (*tick)(void *),
                    void *arg);

/* The command's words joined by spaces (for messages), truncated to len. */
void pgw_cb_cmdline(const struct pgw_strlist *cmd, char *buf, size_t len);

/* "exited with status 1", "timed out (killed with its process group)", ... */
const char *pgw_cb_outcome(int rc, char *buf, size_t len);

#endif
