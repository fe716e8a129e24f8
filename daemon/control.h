/*
 * control.h - the REST API's write requests: switchover, failover and the
 * dynamic configuration, carried out as etcd writes that the HA loops of the
 * cluster act on (the same keys pgwardenctl writes).
 *
 * It runs in a REST thread with an etcd client of its own, never touching the HA
 * loop's state; one request at a time (a second concurrent one gets 503), so a
 * waiting switchover holds at most one REST thread.
 */
#ifndef PGW_CONTROL_H
#define PGW_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct pgw_control;

/* prefix: "<namespace><scope>/".  NULL when out of memory. */
struct pgw_control *pgw_control_new(const struct pgw_config *cfg, const char *prefix);
void pgw_control_free(struct pgw_control *ctl);

/*
 * A pgw_rest_write_fn (arg = the control):
 *   POST /switchover {"leader", "candidate", "scheduled_at"}   200, 202 scheduled, 412, 503
 *   POST /failover {"candidate"}                               200, 412, 503
 *   DELETE /switchover                                         200, 404
 *   PATCH /config (merge; null removes), PUT /config (replace) 200, 400, 409
 *   POST /restart {"restart_pending", "role"}, POST /reinitialize  (queued for the loop)
 *   POST /restart {"schedule": ISO 8601, ...}  202: kept until due, then carried out by
 *   the loop like a queued one; 409 while another is scheduled.  DELETE /restart: 200, 404
 *   POST /reload (re-read the local configuration file; queued for the loop)
 *   POST /unfence {"member"} (power a fenced member back on, audited; queued for the loop)
 * Other paths: 404.
 */
int pgw_control_write(void *arg, const char *method, const char *path, const char *body, size_t len,
                      char **resp);

/*
 * Requests only the HA loop may carry out (it alone touches PostgreSQL): the REST
 * thread queues one and waits for the loop's answer.
 */
enum pgw_request_kind {
	PGW_REQ_NONE,
	PGW_REQ_RESTART,
	PGW_REQ_REINIT,
	PGW_REQ_RELOAD,
	PGW_REQ_UNFENCE, /* power a fenced member back on (member) */
};

struct pgw_request {
	enum pgw_request_kind kind;
	bool restart_pending_only; /* restart only when a parameter waits for it */
	char role[16];             /* restart only in this role ("primary"/"master"/"replica") */
	char member[64];           /* unfence: the member to power on */
	double at;                 /* a scheduled restart: unix time it is due, 0 = now */
	char at_text[64];          /* ... as the client gave it */
};

/* The loop: take the queued request, if any (true), and later answer it. */
bool pgw_control_take(struct pgw_control *ctl, struct pgw_request *req);
/*
 * The loop, every cycle: a scheduled restart that is due at wall time `now` is
 * taken (true) and carried out with no one waiting for the answer.  `scheduled`
 * (may be NULL) gets the pending one's time text, "" when none.
 */
bool pgw_control_take_due(struct pgw_control *ctl, double now, struct pgw_request *req,
                          char *scheduled, size_t len);
/* Is a request waiting for the loop, or was a scheduled restart set or cancelled?
 * (So the loop's sleep can end early.) */
bool pgw_control_pending(struct pgw_control *ctl);
void pgw_control_finish(struct pgw_control *ctl, int status, const char *msg);

#endif
