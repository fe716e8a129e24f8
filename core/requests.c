/*
 * requests.c - the request table; see requests.h.  Rows are checked in order for the
 * request's kind; the first whose guard holds answers.
 */
#include "requests.h"

#include <string.h>

struct rq_rule {
	const char *name;
	enum pgw_rq_kind kind;
	bool (*guard)(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
	              struct pgw_rq_verdict *v);
	int status; /* 0: carry it out */
	const char *reason;
};

static bool running(const struct pgw_obs *o)
{
	return o->pg->running && o->pg->accepting;
}

static bool primary(const struct pgw_obs *o)
{
	return running(o) && !o->pg->in_recovery;
}

static bool g_not_running(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                          struct pgw_rq_verdict *v)
{
	(void)healthy, (void)r, (void)v;
	return !running(o);
}

static bool g_conditions(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                         struct pgw_rq_verdict *v)
{
	bool want_replica = r->role && strcmp(r->role, "replica") == 0;

	(void)healthy, (void)v;
	return (r->pending_only && !o->pg->pending_restart) ||
	       (r->role && r->role[0] && want_replica == primary(o));
}

static bool g_primary_unhealthy(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                                struct pgw_rq_verdict *v)
{
	(void)r, (void)v;
	return primary(o) && !healthy;
}

/* The loop is blocked while PostgreSQL starts: it must be up before D - S, less 1 s. */
static bool g_lease_budget(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                           struct pgw_rq_verdict *v)
{
	(void)healthy, (void)r, (void)v;
	return primary(o) && pgw_lease_write_budget_ms(&o->lease, o->now_ms, o->margin_ms) <= 1000;
}

static bool g_restart_primary(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                              struct pgw_rq_verdict *v)
{
	(void)healthy, (void)r;
	v->as_primary = true;
	return primary(o);
}

static bool g_restart_replica(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                              struct pgw_rq_verdict *v)
{
	(void)healthy, (void)r;
	snprintf(v->target_host, sizeof(v->target_host), "%s", o->pg->primary_host);
	v->target_port = o->pg->primary_port;
	return true;
}

static bool g_reinit_leader(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                            struct pgw_rq_verdict *v)
{
	(void)healthy, (void)r, (void)v;
	return pgw_obs_holds_leader(o) || primary(o);
}

static bool g_reinit_no_leader(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                               struct pgw_rq_verdict *v)
{
	(void)healthy, (void)r, (void)v;
	return !o->etcd_ok || !pgw_cluster_leader_member(o->cluster);
}

static bool g_reinit(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                     struct pgw_rq_verdict *v)
{
	const struct pgw_member *l = pgw_cluster_leader_member(o->cluster);

	(void)healthy, (void)r;
	snprintf(v->target, sizeof(v->target), "%s", l->name);
	snprintf(v->target_host, sizeof(v->target_host), "%s", l->conn_host);
	v->target_port = l->conn_port;
	return true;
}

static bool g_unfence_off(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                          struct pgw_rq_verdict *v)
{
	(void)healthy, (void)r, (void)v;
	return !o->fencing_required;
}

static bool g_unfence_leader(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                             struct pgw_rq_verdict *v)
{
	(void)healthy, (void)v;
	return o->etcd_ok && o->cluster->has_leader && r->member &&
	       strcmp(o->cluster->leader, r->member) == 0;
}

static bool g_always(const struct pgw_obs *o, bool healthy, const struct pgw_rq *r,
                     struct pgw_rq_verdict *v)
{
	(void)o, (void)healthy, (void)r, (void)v;
	return true;
}

static const struct rq_rule rq_rules[] = {
    {"restart-not-running", PGW_RQ_RESTART, g_not_running, 503, "PostgreSQL is not running"},
    {"restart-conditions", PGW_RQ_RESTART, g_conditions, 503,
     "restart conditions are not satisfied"},
    {"restart-primary-busy", PGW_RQ_RESTART, g_primary_unhealthy, 503,
     "a primary is restarted only while it holds the leader key and nothing else is due"},
    {"restart-lease-budget", PGW_RQ_RESTART, g_lease_budget, 503,
     "the lease is too close to its deadline to restart the primary"},
    {"restart-primary", PGW_RQ_RESTART, g_restart_primary, 0,
     "restarting PostgreSQL as the primary, started before D - S"},
    {"restart-replica", PGW_RQ_RESTART, g_restart_replica, 0,
     "restarting PostgreSQL as a replica of its current upstream"},
    {"reinit-leader", PGW_RQ_REINIT, g_reinit_leader, 503, "I am the leader, can not reinitialize"},
    {"reinit-no-leader", PGW_RQ_REINIT, g_reinit_no_leader, 503, "no leader to clone from"},
    {"reinit", PGW_RQ_REINIT, g_reinit, 0,
     "throwing the data directory away and cloning the leader again"},
    {"unfence-fencing-off", PGW_RQ_UNFENCE, g_unfence_off, 412, "fencing is off on this member"},
    {"unfence-leader", PGW_RQ_UNFENCE, g_unfence_leader, 412, "the member holds the leader key"},
    {"unfence", PGW_RQ_UNFENCE, g_always, 0,
     "powering the fenced member on through its BMC (if it is recorded as fenced)"},
};

void pgw_request_verdict(const struct pgw_obs *o, bool leader_healthy, const struct pgw_rq *r,
                         struct pgw_rq_verdict *v)
{
	for (size_t i = 0; i < sizeof(rq_rules) / sizeof(rq_rules[0]); i++) {
		const struct rq_rule *rule = &rq_rules[i];

		if (rule->kind != r->kind)
			continue;
		memset(v, 0, sizeof(*v));
		if (!rule->guard(o, leader_healthy, r, v))
			continue;
		v->go = rule->status == 0;
		v->status = rule->status ? rule->status : 200;
		v->rule = rule->name;
		snprintf(v->reason, sizeof(v->reason), "%s", rule->reason);
		return;
	}
	memset(v, 0, sizeof(*v)); /* cannot happen: every kind ends in an always-row */
	v->status = 400;
	v->rule = "unknown-request";
	snprintf(v->reason, sizeof(v->reason), "unknown request");
}

void pgw_print_request_rules(FILE *out)
{
	static const char *const kinds[] = {"restart", "reinitialize", "unfence"};

	for (size_t i = 0; i < sizeof(rq_rules) / sizeof(rq_rules[0]); i++)
		fprintf(out, "R%-2zu %-24s %-12s -> %-5s %s\n", i + 1, rq_rules[i].name,
		        kinds[rq_rules[i].kind], rq_rules[i].status ? "refuse" : "do",
		        rq_rules[i].reason);
}
