/*
 * fencer.c - one audited fence of a lost leader for the HA loop; see fencer.h.
 * The audit log is fencing/audit.c, the power control fencing/fence.c.
 */
#include "fencer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "audit.h"
#include "fence.h"
#include "log.h"

struct pgw_fencer {
	const struct pgw_config *cfg;
	struct pgw_audit *audit; /* NULL until it could be opened */
	struct pgw_fence_opts opts;
	struct pgw_fence_state st;
};

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct pgw_fencer *pgw_fencer_new(const struct pgw_config *cfg)
{
	struct pgw_fencer *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->cfg = cfg;
	f->st.required = cfg->fencing.mode == PGW_FENCE_REQUIRED;
	f->opts.agent =
	    strcmp(cfg->fencing.agent, "ipmi") == 0 ? PGW_FENCE_IPMI : PGW_FENCE_EXTERNAL;
	f->opts.agent_path = f->opts.agent == PGW_FENCE_EXTERNAL ? cfg->fencing.agent : NULL;
	f->opts.timeout_ms = cfg->fencing.timeout * 1000;
	f->opts.retries = cfg->fencing.retries;
	return f;
}

void pgw_fencer_free(struct pgw_fencer *f)
{
	if (!f)
		return;
	pgw_audit_close(f->audit);
	free(f);
}

static bool audit_ready(struct pgw_fencer *f, char *err, size_t len)
{
	if (!f->audit)
		f->audit = pgw_audit_open_keyed(f->cfg->fencing.audit_log, f->cfg->scope,
		                                f->cfg->name, f->cfg->fencing.audit_key,
		                                f->cfg->fencing.audit_key_len, err, len);
	return f->audit != NULL;
}

/* Keep the outcome for the REST API and say it in the log and the journal. */
static void outcome(struct pgw_fencer *f, const char *target, const char *result, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

static void outcome(struct pgw_fencer *f, const char *target, const char *result, const char *fmt,
                    ...)
{
	va_list ap;

	snprintf(f->st.target, sizeof(f->st.target), "%s", target);
	snprintf(f->st.result, sizeof(f->st.result), "%s", result);
	va_start(ap, fmt);
	vsnprintf(f->st.reason, sizeof(f->st.reason), fmt, ap);
	va_end(ap);
	f->st.wall = wall_now();
	if (strcmp(result, "confirmed") == 0) {
		pgw_info("fencing %s: %s", target, f->st.reason);
		return;
	}
	pgw_error("fencing %s failed, NOT promoting (the cluster stays without a primary): %s",
	          target, f->st.reason);
	sd_journal_send("MESSAGE=pgwarden: fencing %s failed, not promoting: %s", target,
	                f->st.reason, "MESSAGE_ID=%s", PGW_FENCE_FAILED_MESSAGE_ID, "PRIORITY=2",
	                "PGW_FENCE_TARGET=%s", target, "PGW_FENCE_RESULT=%s", result, NULL);
}

/* One audit record; false (and the outcome said) when it cannot be made durable. */
static bool audit(struct pgw_fencer *f, const char *action, const struct pgw_leader_record *lr,
                  const char *result, const char *reason, int timeline)
{
	struct pgw_audit_rec r = {.action = action,
	                          .target = lr->member,
	                          .bmc = lr->bmc_address,
	                          .result = result,
	                          .reason = reason,
	                          .lease = lr->lease,
	                          .timeline = timeline};
	char err[256];

	if (pgw_audit_append(f->audit, &r, err, sizeof(err)) == 0)
		return true;
	outcome(f, lr->member, "failed", "cannot write the audit log: %s", err);
	return false;
}

/*
 * The BMC to reach lr->member through: the one this node's file pins for it
 * (fencing.peers), with the pinned lanplus, cipher suite and privilege.  A leader
 * record from etcd only has its address checked against the pin: trusted, a forged
 * record would make this node open an IPMI session, with the site's BMC password, to
 * a host of the writer's choice, or downgrade it to IPMI 1.5 (ARCHITECTURE.md §7).
 */
static bool bmc_of(const struct pgw_fencer *f, const struct pgw_leader_record *lr,
                   struct pgw_fence_bmc *b, char *why, size_t whylen)
{
	static const char *const privs[] = {"ADMINISTRATOR", "OPERATOR", "USER"};
	const struct pgw_fence_peer *p = pgw_fence_peer(&f->cfg->fencing.peers, lr->member);
	struct pgw_fence_bmc published;

	memset(b, 0, sizeof(*b));
	if (!p || !pgw_fence_parse_bmc(p->address, b)) {
		snprintf(why, whylen, "fencing.peers pins no BMC for %.64s", lr->member);
		return false;
	}
	if (lr->bmc_address[0] &&
	    (!pgw_fence_parse_bmc(lr->bmc_address, &published) ||
	     strcmp(published.host, b->host) != 0 || published.port != b->port)) {
		snprintf(why, whylen,
		         "%.64s publishes BMC \"%.80s\", not %.80s as fencing.peers pins: refused",
		         lr->member, lr->bmc_address, p->address);
		return false;
	}
	b->lanplus = p->lanplus;
	b->cipher_suite = p->cipher_suite ? p->cipher_suite : -1;
	snprintf(b->privilege, sizeof(b->privilege), "%s",
	         p->privilege >= 0 && p->privilege < 3 ? privs[p->privilege] : privs[0]);
	return true;
}

/* The record again, now saying who fenced it (compare-and-swap on its revision). */
static bool mark_fenced(struct pgw_fencer *f, struct pgw_etcd *etcd, const struct pgw_fence_keys *k,
                        const struct pgw_leader_record *lr)
{
	struct pgw_leader_record done = *lr;
	char *json;
	bool ok = false;

	char key[700];

	snprintf(done.fenced_by, sizeof(done.fenced_by), "%s", f->cfg->name);
	done.fenced_at = wall_now();
	json = pgw_leader_record_json(&done);
	if (json && pgw_etcd_put_if_mod(etcd, k->record_key, json, strlen(json), 0,
	                                lr->mod_revision, k->timeout_ms, &ok) != 0)
		ok = false;
	/* the record is overwritten by the next leader: keep the fenced one for unfence */
	snprintf(key, sizeof(key), "%s%s", k->fenced_prefix, lr->member);
	if (ok && pgw_etcd_put(etcd, key, json, strlen(json), 0, k->timeout_ms) != 0)
		pgw_warn("cannot record %s as fenced in %s (unfence will not find its BMC): %s",
		         lr->member, key, pgw_etcd_errmsg(etcd));
	free(json);
	return ok;
}

/* Power off, confirmed, both audited; the caller holds the lock. */
static bool fence_locked(struct pgw_fencer *f, struct pgw_etcd *etcd,
                         const struct pgw_fence_keys *k, const struct pgw_leader_record *lr)
{
	struct pgw_fence_opts opts = f->opts;
	struct pgw_fence_bmc bmc;
	struct pgw_fence_cred cred;
	char err[256], detail[256], why[320];
	int64_t per_try = k->budget_ms / (1 + (opts.retries > 0 ? opts.retries : 0));

	/* every attempt fits in the lease, so the lock cannot lapse while we fence */
	if (per_try < opts.timeout_ms)
		opts.timeout_ms = (int)per_try;
	if (opts.timeout_ms < 1000) {
		outcome(f, lr->member, "failed",
		        "the lease is too close to its deadline to fence (%lld ms left)",
		        (long long)k->budget_ms);
		return false;
	}
	if (!bmc_of(f, lr, &bmc, why, sizeof(why))) {
		audit(f, "fence-result", lr, "failed", why, k->timeline);
		outcome(f, lr->member, "failed", "%s", why);
		return false;
	}
	if (pgw_fence_load_creds(f->cfg->fencing.credentials_file, lr->member, &cred, err,
	                         sizeof(err)) != 0) {
		audit(f, "fence-result", lr, "failed", err, k->timeline);
		outcome(f, lr->member, "failed", "%s", err);
		return false;
	}
	if (k->why && k->why[0])
		snprintf(why, sizeof(why), "lease %" PRIx64 ": %s", (uint64_t)lr->lease, k->why);
	else
		snprintf(why, sizeof(why), "leader key of lease %" PRIx64 " lost without a release",
		         (uint64_t)lr->lease);
	if (!audit(f, "fence-intent", lr, "started", why, k->timeline))
		return false;
	snprintf(f->st.result, sizeof(f->st.result), "fencing");
	pgw_warn("fencing %s: chassis power off through BMC %s (%s)", lr->member, lr->bmc_address,
	         why);
	if (pgw_fence_off(&opts, &bmc, &cred, detail, sizeof(detail)) != 0) {
		memset(&cred, 0, sizeof(cred));
		audit(f, "fence-result", lr, "failed", detail, k->timeline);
		outcome(f, lr->member, "failed", "BMC %s: %s", lr->bmc_address, detail);
		return false;
	}
	memset(&cred, 0, sizeof(cred));
	if (!audit(f, "fence-result", lr, "off-confirmed", detail, k->timeline))
		return false;
	if (!mark_fenced(f, etcd, k, lr)) {
		outcome(f, lr->member, "failed",
		        "powered off, but the leader record could not be marked fenced: %s",
		        pgw_etcd_errmsg(etcd));
		return false;
	}
	outcome(f, lr->member, "confirmed", "power off confirmed by BMC %s (%s)", lr->bmc_address,
	        detail);
	return true;
}

bool pgw_fencer_fence(struct pgw_fencer *f, struct pgw_etcd *etcd, const struct pgw_fence_keys *k,
                      const struct pgw_leader_record *lr)
{
	char err[256];
	bool won = false, ok;

	if (!audit_ready(f, err, sizeof(err))) {
		outcome(f, lr->member, "failed", "cannot open the audit log: %s", err);
		return false;
	}
	if (pgw_etcd_create(etcd, k->lock_key, f->cfg->name, strlen(f->cfg->name), k->lease,
	                    k->timeout_ms, &won) != 0) {
		outcome(f, lr->member, "failed", "cannot take the fence lock: %s",
		        pgw_etcd_errmsg(etcd));
		return false;
	}
	if (!won) {
		/* ours from a fence that did not finish (the decision allows that), or another's */
		struct pgw_etcd_range r;

		if (pgw_etcd_get(etcd, k->lock_key, k->timeout_ms, &r) != 0)
			return false;
		won = r.n == 1 && strcmp(r.kvs[0].value, f->cfg->name) == 0;
		pgw_etcd_range_free(&r);
		if (!won) {
			pgw_info("another member holds the fence lock: not fencing %s", lr->member);
			return false;
		}
	}
	ok = fence_locked(f, etcd, k, lr);
	if (pgw_etcd_delete_if_value(etcd, k->lock_key, f->cfg->name, k->timeout_ms, &won) != 0)
		pgw_warn("cannot release the fence lock (it goes with our lease): %s",
		         pgw_etcd_errmsg(etcd));
	return ok;
}

void pgw_fencer_promoted(struct pgw_fencer *f, const char *fenced, int64_t lease, int timeline)
{
	struct pgw_leader_record lr = {0};
	char err[256];

	if (!audit_ready(f, err, sizeof(err))) {
		pgw_error("promoted after fencing %s, but the audit log cannot be opened: %s",
		          fenced, err);
		return;
	}
	snprintf(lr.member, sizeof(lr.member), "%s", fenced);
	lr.lease = lease;
	audit(f, "promote", &lr, "ok", "promoted after the confirmed fence", timeline);
}

int pgw_fencer_unfence(struct pgw_fencer *f, const struct pgw_leader_record *lr, int64_t budget_ms,
                       char *msg, size_t len)
{
	struct pgw_fence_opts opts = f->opts;
	struct pgw_fence_bmc bmc;
	struct pgw_fence_cred cred;
	char err[256], detail[256];
	int rc;

	opts.retries = 0;
	if (budget_ms < opts.timeout_ms)
		opts.timeout_ms = (int)budget_ms;
	if (opts.timeout_ms < 1000)
		return snprintf(msg, len,
		                "busy: the lease is too close to its deadline, try again"),
		       503;
	if (!audit_ready(f, err, sizeof(err)))
		return snprintf(msg, len, "cannot open the audit log: %s", err), 503;
	if (!bmc_of(f, lr, &bmc, err, sizeof(err)))
		return snprintf(msg, len, "%s", err), 412;
	if (pgw_fence_load_creds(f->cfg->fencing.credentials_file, lr->member, &cred, err,
	                         sizeof(err)) != 0)
		return snprintf(msg, len, "%s", err), 503;
	if (!audit(f, "unfence-intent", lr, "started", "operator request", 0)) {
		memset(&cred, 0, sizeof(cred));
		return snprintf(msg, len, "cannot write the audit log"), 503;
	}
	rc = pgw_fence_on(&opts, &bmc, &cred, detail, sizeof(detail));
	memset(&cred, 0, sizeof(cred));
	audit(f, "unfence-result", lr, rc == 0 ? "on" : "failed", detail, 0);
	if (rc != 0)
		return snprintf(msg, len, "power on through BMC %s failed: %s", lr->bmc_address,
		                detail),
		       503;
	pgw_info("unfenced %s: power on through BMC %s", lr->member, lr->bmc_address);
	return snprintf(msg, len, "%s powered on (%s)", lr->member, detail), 200;
}

void pgw_fencer_state(const struct pgw_fencer *f, struct pgw_fence_state *out)
{
	*out = f->st;
}
