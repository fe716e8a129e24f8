/*
 * control.c - the REST API's write requests; see control.h.
 *
 * Validation is shared with pgwardenctl (ctl_switch.c, ctl_edit.c), so the CLI
 * and the API refuse the same requests with the same reasons.  Bad input never
 * writes anything: a request is parsed and checked in full before etcd is touched.
 */
#include "control.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "cluster_json.h"
#include "confedit.h"
#include "switchover.h"
#include "etcd.h"
#include "log.h"

#define CTL_TIMEOUT_MS   5000
#define SWITCH_WAIT_MS   30000
#define SWITCH_POLL_MS   250
#define REQUEST_WAIT_S   120 /* a restart or a re-clone, as the loop reports it */
#define JSON_FLAGS       (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define HTTP_OK          200
#define HTTP_ACCEPTED    202
#define HTTP_BAD_REQUEST 400
#define HTTP_NOT_FOUND   404
#define HTTP_CONFLICT    409
#define HTTP_PRECOND     412
#define HTTP_UNAVAILABLE 503

struct pgw_control {
	const struct pgw_config *cfg;
	struct pgw_etcd *etcd;
	pthread_mutex_t mu; /* one request at a time */
	char prefix[512];
	char failover_key[600];
	char config_key[600];
	char leader_key[600];
	/* the request slot shared with the HA loop, guarded by qmu */
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	bool queued, taken, done;
	struct pgw_request req;
	int qstatus;
	char qmsg[256];
	struct pgw_request scheduled; /* a scheduled restart (kind NONE: none); under qmu */
	bool sched_changed;           /* ... set or cancelled since the loop last looked */
};

struct pgw_control *pgw_control_new(const struct pgw_config *cfg, const char *prefix)
{
	const struct pgw_etcd_tls tls = {cfg->etcd3.cacert, cfg->etcd3.cert, cfg->etcd3.key};
	struct pgw_control *ctl = calloc(1, sizeof(*ctl));

	if (!ctl)
		return NULL;
	ctl->cfg = cfg;
	snprintf(ctl->prefix, sizeof(ctl->prefix), "%s", prefix);
	snprintf(ctl->failover_key, sizeof(ctl->failover_key), "%sfailover", prefix);
	snprintf(ctl->config_key, sizeof(ctl->config_key), "%sconfig", prefix);
	snprintf(ctl->leader_key, sizeof(ctl->leader_key), "%sleader", prefix);
	ctl->etcd =
	    pgw_etcd_new((const char *const *)cfg->etcd3.hosts.items, cfg->etcd3.hosts.n,
	                 cfg->etcd3.protocol, cfg->etcd3.username, cfg->etcd3.password, &tls);
	if (!ctl->etcd) {
		free(ctl);
		return NULL;
	}
	pthread_mutex_init(&ctl->mu, NULL);
	pthread_mutex_init(&ctl->qmu, NULL);
	pthread_cond_init(&ctl->qcv, NULL);
	return ctl;
}

void pgw_control_free(struct pgw_control *ctl)
{
	if (!ctl)
		return;
	pgw_etcd_free(ctl->etcd);
	pthread_mutex_destroy(&ctl->mu);
	pthread_mutex_destroy(&ctl->qmu);
	pthread_cond_destroy(&ctl->qcv);
	free(ctl);
}

static int answer(char **resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A plain-text answer, as Patroni gives for these endpoints. */
static int answer(char **resp, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(resp, fmt, ap) < 0)
		*resp = NULL;
	va_end(ap);
	return status;
}

static int etcd_failed(struct pgw_control *ctl, char **resp)
{
	return answer(resp, HTTP_UNAVAILABLE, "etcd: %s", pgw_etcd_errmsg(ctl->etcd));
}

static bool read_cluster(struct pgw_control *ctl, struct pgw_cluster *c)
{
	struct pgw_etcd_range r = {0};
	bool ok = pgw_etcd_range_prefix(ctl->etcd, ctl->prefix, CTL_TIMEOUT_MS, &r) == 0;

	if (ok)
		pgw_cluster_parse(&r, ctl->prefix, c);
	pgw_etcd_range_free(&r);
	return ok;
}

/* The current leader's name ("" when none), or false when etcd did not answer. */
static bool current_leader(struct pgw_control *ctl, char *name, size_t len)
{
	struct pgw_etcd_range r = {0};
	bool ok = pgw_etcd_get(ctl->etcd, ctl->leader_key, CTL_TIMEOUT_MS, &r) == 0;

	name[0] = '\0';
	if (ok && r.n == 1)
		snprintf(name, len, "%s", r.kvs[0].value);
	pgw_etcd_range_free(&r);
	return ok;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Wait until the leader key names someone else than `old` (and `want`, if given). */
static bool wait_new_leader(struct pgw_control *ctl, const char *old, const char *want, char *now,
                            size_t len)
{
	for (int waited = 0; waited <= SWITCH_WAIT_MS; waited += SWITCH_POLL_MS) {
		if (current_leader(ctl, now, len) && now[0] && strcmp(now, old) != 0 &&
		    (!want[0] || strcmp(now, want) == 0))
			return true;
		sleep_ms(SWITCH_POLL_MS);
	}
	return false;
}

static const char *json_str(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null))
		return "";
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Parse a switchover/failover body; false with the reason in *resp's status. */
static struct json_object *parse_object(const char *body, char **resp, int *status)
{
	struct json_object *o = pgw_json_parse_whole(body);

	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		*status = answer(resp, HTTP_BAD_REQUEST,
		                 "the request body is not one JSON object (and nothing after it)");
		return NULL;
	}
	return o;
}

static int check_schedule(const char *at, char **resp)
{
	double t;

	if (!at[0])
		return 0;
	if (!pgw_parse_iso8601(at, &t))
		return answer(resp, HTTP_BAD_REQUEST,
		              "scheduled_at: expected an ISO 8601 time with a zone, got \"%.64s\"",
		              at);
	if (t < (double)time(NULL))
		return answer(resp, HTTP_PRECOND, "scheduled_at %s is in the past", at);
	return 0;
}

/* POST /switchover and POST /failover. */
static int do_switchover(struct pgw_control *ctl, const char *body, bool failover, char **resp)
{
	struct pgw_cluster c = {0};
	struct json_object *o;
	const char *leader, *cand, *at;
	char err[256], now[PGW_NAME_MAX], old[PGW_NAME_MAX], *value;
	bool created = false;
	int status;

	if (!(o = parse_object(body, resp, &status)))
		return status;
	leader = json_str(o, "leader");
	cand = json_str(o, "candidate");
	at = json_str(o, "scheduled_at");
	if (!leader || !cand || !at) {
		status = answer(resp, HTTP_BAD_REQUEST,
		                "leader, candidate and scheduled_at must be strings");
		goto out;
	}
	if (failover && (!cand[0] || at[0])) {
		status = answer(resp, HTTP_BAD_REQUEST,
		                "failover needs a candidate and cannot be scheduled");
		goto out;
	}
	if ((status = check_schedule(at, resp)) != 0)
		goto out;
	if (!read_cluster(ctl, &c)) {
		status = etcd_failed(ctl, resp);
		goto out;
	}
	if (!pgw_check_switchover(&c, ctl->cfg->scope, failover, leader, cand, err, sizeof(err))) {
		status = answer(resp, HTTP_PRECOND, "%s", err);
		goto out;
	}
	snprintf(old, sizeof(old), "%s", c.has_leader ? c.leader : "");
	value = pgw_failover_json(leader[0] ? leader : old, cand, at);
	if (!value || pgw_etcd_create(ctl->etcd, ctl->failover_key, value, strlen(value), 0,
	                              CTL_TIMEOUT_MS, &created) != 0) {
		free(value);
		status = etcd_failed(ctl, resp);
		goto out;
	}
	free(value);
	if (!created) {
		status =
		    answer(resp, HTTP_UNAVAILABLE, "a switchover or failover is already pending");
		goto out;
	}
	pgw_info("REST: %s requested (leader %s, candidate %s%s%s)",
	         failover ? "failover" : "switchover", old[0] ? old : "none",
	         cand[0] ? cand : "any", at[0] ? ", at " : "", at);
	if (at[0]) {
		status = answer(resp, HTTP_ACCEPTED, "Switchover scheduled");
		goto out;
	}
	if (wait_new_leader(ctl, old, cand, now, sizeof(now)))
		status = answer(resp, HTTP_OK, "Successfully %s over to \"%s\"",
		                failover ? "failed" : "switched", now);
	else
		status = answer(resp, HTTP_UNAVAILABLE, "%s failed: no new leader within %d s",
		                failover ? "Failover" : "Switchover", SWITCH_WAIT_MS / 1000);
out:
	json_object_put(o);
	pgw_cluster_clear(&c);
	return status;
}

/* DELETE /switchover: cancel a scheduled (or pending) switchover. */
static int cancel_switchover(struct pgw_control *ctl, char **resp)
{
	struct pgw_etcd_range r = {0};
	bool deleted = false;
	int status;

	if (pgw_etcd_get(ctl->etcd, ctl->failover_key, CTL_TIMEOUT_MS, &r) != 0) {
		status = etcd_failed(ctl, resp);
	} else if (r.n == 0) {
		status = answer(resp, HTTP_NOT_FOUND, "No switchover is scheduled");
	} else if (pgw_etcd_delete_if_mod(ctl->etcd, ctl->failover_key, r.kvs[0].mod_revision,
	                                  CTL_TIMEOUT_MS, &deleted) != 0) {
		status = etcd_failed(ctl, resp);
	} else {
		status = deleted ? answer(resp, HTTP_OK, "scheduled switchover deleted")
		                 : answer(resp, HTTP_CONFLICT, "the switchover changed meanwhile");
	}
	pgw_etcd_range_free(&r);
	return status;
}

/* PATCH /config (merge) and PUT /config (replace), validated, compare-and-swap. */
static int edit_config(struct pgw_control *ctl, const char *body, bool replace, char **resp)
{
	struct pgw_etcd_range r = {0};
	struct json_object *patch, *cfg = NULL;
	char err[256];
	const char *text;
	bool ok = false;
	int status;

	if (!(patch = parse_object(body, resp, &status)))
		return status;
	if (pgw_etcd_get(ctl->etcd, ctl->config_key, CTL_TIMEOUT_MS, &r) != 0) {
		status = etcd_failed(ctl, resp);
		goto out;
	}
	if (replace) {
		cfg = json_object_get(patch);
	} else {
		cfg = r.n == 1 ? json_tokener_parse(r.kvs[0].value) : json_object_new_object();
		if (!cfg || !json_object_is_type(cfg, json_type_object)) {
			status = answer(resp, HTTP_CONFLICT,
			                "the config key in etcd is not a JSON "
			                "object; replace it with PUT /config");
			goto out;
		}
		pgw_conf_merge_patch(cfg, patch);
	}
	if (!pgw_conf_validate(cfg, ctl->cfg->watchdog.safety_margin, err, sizeof(err))) {
		status = answer(resp, HTTP_BAD_REQUEST, "%s", err);
		goto out;
	}
	text = json_object_to_json_string_ext(cfg, JSON_FLAGS);
	if (pgw_etcd_put_if_mod(ctl->etcd, ctl->config_key, text, strlen(text), 0,
	                        r.n == 1 ? r.kvs[0].mod_revision : 0, CTL_TIMEOUT_MS, &ok) != 0) {
		status = etcd_failed(ctl, resp);
		goto out;
	}
	if (!ok) {
		status = answer(resp, HTTP_CONFLICT, "the configuration changed concurrently");
		goto out;
	}
	pgw_info("REST: dynamic configuration %s", replace ? "replaced" : "patched");
	*resp = strdup(text);
	status = HTTP_OK;
out:
	json_object_put(patch);
	json_object_put(cfg);
	pgw_etcd_range_free(&r);
	return status;
}

/* Hand a request to the loop and wait for its answer. */
static int queue_request(struct pgw_control *ctl, const struct pgw_request *req, char **resp)
{
	struct timespec until;
	int status;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += REQUEST_WAIT_S;
	pthread_mutex_lock(&ctl->qmu);
	ctl->req = *req;
	ctl->queued = true;
	ctl->taken = ctl->done = false;
	while (!ctl->done)
		if (pthread_cond_timedwait(&ctl->qcv, &ctl->qmu, &until) != 0)
			break;
	if (ctl->done)
		status = answer(resp, ctl->qstatus, "%s", ctl->qmsg);
	else
		status =
		    answer(resp, HTTP_UNAVAILABLE, "no answer from the HA loop within %d s%s",
		           REQUEST_WAIT_S, ctl->taken ? " (the request is still running)" : "");
	ctl->queued = false; /* not taken yet: withdrawn */
	pthread_mutex_unlock(&ctl->qmu);
	return status;
}

bool pgw_control_take(struct pgw_control *ctl, struct pgw_request *req)
{
	bool got;

	pthread_mutex_lock(&ctl->qmu);
	got = ctl->queued && !ctl->taken;
	if (got) {
		ctl->taken = true;
		*req = ctl->req;
	}
	pthread_mutex_unlock(&ctl->qmu);
	return got;
}

bool pgw_control_pending(struct pgw_control *ctl)
{
	bool pending;

	pthread_mutex_lock(&ctl->qmu);
	pending = (ctl->queued && !ctl->taken) || ctl->sched_changed;
	pthread_mutex_unlock(&ctl->qmu);
	return pending;
}

void pgw_control_finish(struct pgw_control *ctl, int status, const char *msg)
{
	pthread_mutex_lock(&ctl->qmu);
	ctl->qstatus = status;
	snprintf(ctl->qmsg, sizeof(ctl->qmsg), "%s", msg);
	ctl->done = true;
	pthread_cond_broadcast(&ctl->qcv);
	pthread_mutex_unlock(&ctl->qmu);
}

bool pgw_control_take_due(struct pgw_control *ctl, double now, struct pgw_request *req,
                          char *scheduled, size_t len)
{
	bool due;

	pthread_mutex_lock(&ctl->qmu);
	due = ctl->scheduled.kind != PGW_REQ_NONE && ctl->scheduled.at <= now;
	ctl->sched_changed = false;
	if (due) {
		*req = ctl->scheduled;
		ctl->scheduled.kind = PGW_REQ_NONE;
	}
	if (scheduled)
		snprintf(scheduled, len, "%s",
		         ctl->scheduled.kind != PGW_REQ_NONE ? ctl->scheduled.at_text : "");
	pthread_mutex_unlock(&ctl->qmu);
	return due;
}

/* POST /restart with "schedule": keep it for the loop (one at a time, as Patroni). */
static int schedule_restart(struct pgw_control *ctl, struct pgw_request *req, const char *at,
                            char **resp)
{
	int status;

	if (!pgw_parse_iso8601(at, &req->at))
		return answer(resp, HTTP_BAD_REQUEST,
		              "schedule: expected an ISO 8601 time with a zone, got \"%.64s\"", at);
	if (req->at < (double)time(NULL))
		return answer(resp, HTTP_BAD_REQUEST, "schedule %.64s is in the past", at);
	snprintf(req->at_text, sizeof(req->at_text), "%s", at);
	pthread_mutex_lock(&ctl->qmu);
	if (ctl->scheduled.kind != PGW_REQ_NONE) {
		status = answer(resp, HTTP_CONFLICT, "Another restart is already scheduled for %s",
		                ctl->scheduled.at_text);
	} else {
		ctl->scheduled = *req;
		ctl->sched_changed = true;
		status = answer(resp, HTTP_ACCEPTED, "Restart scheduled for %s", at);
	}
	pthread_mutex_unlock(&ctl->qmu);
	if (status == HTTP_ACCEPTED)
		pgw_info("REST: restart of PostgreSQL scheduled for %s", at);
	return status;
}

/* DELETE /restart: cancel the scheduled restart. */
static int cancel_restart(struct pgw_control *ctl, char **resp)
{
	bool had;

	pthread_mutex_lock(&ctl->qmu);
	had = ctl->scheduled.kind != PGW_REQ_NONE;
	ctl->scheduled.kind = PGW_REQ_NONE;
	ctl->sched_changed = had;
	pthread_mutex_unlock(&ctl->qmu);
	if (!had)
		return answer(resp, HTTP_NOT_FOUND, "No restart is scheduled");
	pgw_info("REST: scheduled restart cancelled");
	return answer(resp, HTTP_OK, "scheduled restart deleted");
}

/*
 * POST /restart {"restart_pending": bool, "role": "primary"|"master"|"replica",
 * "schedule": ISO 8601}.
 */
static int restart(struct pgw_control *ctl, const char *body, char **resp)
{
	struct pgw_request req = {.kind = PGW_REQ_RESTART};
	struct json_object *o = NULL, *v;
	const char *role, *at = "";
	int status;

	if (body[0] && !(o = parse_object(body, resp, &status)))
		return status;
	if (o && !(at = json_str(o, "schedule"))) {
		json_object_put(o);
		return answer(resp, HTTP_BAD_REQUEST, "schedule: expected an ISO 8601 string");
	}
	if (o && json_object_object_get_ex(o, "restart_pending", &v))
		req.restart_pending_only = json_object_get_boolean(v);
	role = o ? json_str(o, "role") : "";
	if (!role || (role[0] && strcmp(role, "primary") != 0 && strcmp(role, "master") != 0 &&
	              strcmp(role, "replica") != 0)) {
		json_object_put(o);
		return answer(resp, HTTP_BAD_REQUEST, "role: expected primary, master or replica");
	}
	snprintf(req.role, sizeof(req.role), "%s", role);
	if (at && at[0])
		status = schedule_restart(ctl, &req, at, resp);
	else
		status = queue_request(ctl, &req, resp);
	json_object_put(o);
	return status;
}

/* POST /unfence {"member": NAME}. */
static int unfence(struct pgw_control *ctl, const char *body, char **resp)
{
	struct pgw_request req = {.kind = PGW_REQ_UNFENCE};
	struct json_object *o;
	const char *member;
	int status;

	if (!(o = parse_object(body, resp, &status)))
		return status;
	member = json_str(o, "member");
	if (!member || !member[0] || strlen(member) >= sizeof(req.member)) {
		json_object_put(o);
		return answer(resp, HTTP_BAD_REQUEST, "member: expected the name of a member");
	}
	snprintf(req.member, sizeof(req.member), "%s", member);
	json_object_put(o);
	return queue_request(ctl, &req, resp);
}

static bool path_is(const char *path, const char *name)
{
	size_t n = strlen(name);

	return strncmp(path, name, n) == 0 && (path[n] == '\0' || strcmp(path + n, "/") == 0);
}

static int route(struct pgw_control *ctl, const char *method, const char *path, const char *body,
                 char **resp)
{
	bool post = strcmp(method, "POST") == 0;

	if (post && path_is(path, "/switchover"))
		return do_switchover(ctl, body, false, resp);
	if (post && path_is(path, "/failover"))
		return do_switchover(ctl, body, true, resp);
	if (strcmp(method, "DELETE") == 0 && path_is(path, "/switchover"))
		return cancel_switchover(ctl, resp);
	if (path_is(path, "/config") && strcmp(method, "PATCH") == 0)
		return edit_config(ctl, body, false, resp);
	if (path_is(path, "/config") && strcmp(method, "PUT") == 0)
		return edit_config(ctl, body, true, resp);
	if (post && path_is(path, "/restart"))
		return restart(ctl, body, resp);
	if (strcmp(method, "DELETE") == 0 && path_is(path, "/restart"))
		return cancel_restart(ctl, resp);
	if (post && path_is(path, "/reinitialize")) {
		struct pgw_request req = {.kind = PGW_REQ_REINIT};

		return queue_request(ctl, &req, resp);
	}
	if (post && path_is(path, "/unfence"))
		return unfence(ctl, body, resp);
	if (post && path_is(path, "/reload")) {
		struct pgw_request req = {.kind = PGW_REQ_RELOAD};

		return queue_request(ctl, &req, resp);
	}
	return answer(resp, HTTP_NOT_FOUND, "%s %s: no such endpoint", method, path);
}

int pgw_control_write(void *arg, const char *method, const char *path, const char *body, size_t len,
                      char **resp)
{
	struct pgw_control *ctl = arg;
	int status;

	*resp = NULL;
	if (strlen(body) != len)
		return answer(resp, HTTP_BAD_REQUEST, "the request body contains a NUL byte");
	if (pthread_mutex_trylock(&ctl->mu) != 0)
		return answer(resp, HTTP_UNAVAILABLE, "another request is in progress, try again");
	status = route(ctl, method, path, body, resp);
	pthread_mutex_unlock(&ctl->mu);
	return status;
}
