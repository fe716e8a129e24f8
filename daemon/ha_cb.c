/*
 * ha_cb.c - the operator's commands around PostgreSQL's actions, as Patroni runs them:
 * postgresql.callbacks (asynchronous: on_start, on_stop, on_restart, on_reload,
 * on_role_change), before_stop (before pgwarden stops PostgreSQL) and pre_promote
 * (before it promotes; a failure vetoes).  The commands come from the local file only
 * (never from etcd).  The timing rules come first: nothing here runs past the lease's
 * D - S while PostgreSQL may be writing, or may take the key's lease with it.
 */
#include "ha_int.h"

static struct pgw_cb_ctx ctx_of(const struct ha *h)
{
	return (struct pgw_cb_ctx){h->cfg->scope, h->cfg->name, h->cfg->postgresql.data_dir};
}

const char *ha_cb_role(const struct ha *h)
{
	return h->st.was_primary ? "master" : "replica";
}

void ha_cb_fire(struct ha *h, enum pgw_cb which, const char *role)
{
	struct pgw_cb_ctx ctx = ctx_of(h);

	pgw_cbrun_fire(h->cb, which, &h->cfg->postgresql.callbacks[which], role, &ctx,
	               h->cfg->postgresql.callback_timeout_ms);
	snprintf(h->cb_role, sizeof(h->cb_role), "%s", role);
}

void ha_cb_started(struct ha *h, const char *role)
{
	bool changed = h->cb_role[0] && strcmp(h->cb_role, role) != 0;

	ha_cb_fire(h, changed ? PGW_CB_ON_ROLE_CHANGE : PGW_CB_ON_START, role);
}

/* While a synchronous command runs: renew the key's lease (and pet), or tell systemd. */
static void keep_tick(void *arg)
{
	(void)ha_keep_key_lease(arg);
}

static void sd_tick(void *arg)
{
	(void)arg;
	pgw_sd_watchdog();
}

/*
 * How long a synchronous command may run while PostgreSQL may be writing: until
 * D - S, less 1 s to stop it or to renew (as a fence, ha_fence_budget_ms), and no
 * more than callback_timeout.  <= 0: no time at all.
 */
static int64_t bound_ms(const struct ha *h, bool writing)
{
	int64_t limit = h->cfg->postgresql.callback_timeout_ms, budget;

	if (!writing)
		return limit;
	budget = pgw_lease_write_budget_ms(&h->lease, ha_mono_ms(), SAFETY_MARGIN_MS) - 1000;
	return budget < limit ? budget : limit;
}

/* before_stop (Patroni: its failure does not prevent the stop). */
static void before_stop(struct ha *h, const char *mode, bool held, const char *role)
{
	const struct pgw_strlist *cmd = &h->cfg->postgresql.before_stop;
	struct pgw_cb_ctx ctx = ctx_of(h);
	int64_t limit;

	if (cmd->n == 0 || !h->pgst.running)
		return;
	if (h->st.was_primary && strcmp(mode, "immediate") == 0) {
		pgw_warn("before_stop not run: PostgreSQL may be writing and must stop at once "
		         "(the lease's deadline D - S, or another leader, comes first)");
		return;
	}
	limit = bound_ms(h, h->st.was_primary);
	if (limit <= 0) {
		pgw_warn("before_stop not run: the lease leaves no time before its deadline D - "
		         "S, by which writes must have ended");
		return;
	}
	if (h->st.was_primary && limit < h->cfg->postgresql.callback_timeout_ms)
		pgw_info("before_stop bounded to %lld ms: writes must end before the lease's "
		         "deadline D - S",
		         (long long)limit);
	pgw_cb_run_sync("before_stop", cmd, role, &ctx, ha_mono_ms() + limit,
	                held ? keep_tick : sd_tick, h);
}

int ha_stop_pg(struct ha *h, const char *mode, bool held, bool callbacks)
{
	bool was_running = h->pgst.running;
	const char *role = ha_cb_role(h);
	int rc;

	before_stop(h, mode, held, role);
	if (held)
		pgw_pg_set_keep(h->pg, ha_keep_key_lease, h);
	rc = pgw_pg_stop(h->pg, mode, PG_STOP_TIMEOUT_MS);
	pgw_pg_set_keep(h->pg, NULL, NULL);
	if (callbacks && was_running && rc == 0)
		ha_cb_fire(h, PGW_CB_ON_STOP, role);
	return rc;
}

int ha_reload_pg(struct ha *h)
{
	int rc = pgw_pg_reload(h->pg);

	if (rc == 0)
		ha_cb_fire(h, PGW_CB_ON_RELOAD, ha_cb_role(h));
	return rc;
}

bool ha_pre_promote(struct ha *h)
{
	const struct pgw_strlist *cmd = &h->cfg->postgresql.pre_promote;
	struct pgw_cb_ctx ctx = ctx_of(h);
	int64_t id = h->lease.id, limit;
	char line[256], how[64];
	int rc;

	if (cmd->n == 0)
		return true;
	/* it runs with the key held: bounded by what the lease allows a writer */
	limit = bound_ms(h, true);
	if (limit <= 0) {
		pgw_warn("pre_promote not run: the lease leaves no time before its deadline D - "
		         "S; not promoting now");
		return false;
	}
	rc = pgw_cb_run_sync("pre_promote", cmd, "replica", &ctx, ha_mono_ms() + limit, keep_tick,
	                     h);
	if (rc != 0) {
		pgw_cb_cmdline(cmd, line, sizeof(line));
		pgw_error("pre_promote `%s` %s: not promoting, releasing the leader key (as "
		          "Patroni does)",
		          line, pgw_cb_outcome(rc, how, sizeof(how)));
		pgw_step_pre_promote_vetoed(&h->st, ha_mono_ms());
		ha_give_up_key(h);
		return false;
	}
	/* the lease again, right before promoting (rule 2) */
	if (!ha_renewed(h) || h->lease.id != id) {
		pgw_error("after pre_promote, the lease holding the key no longer allows writes: "
		          "not promoting");
		return false;
	}
	return true;
}
