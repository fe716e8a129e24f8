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
 *   POST /reload (re-read the local configuration file; queued for the loop)
 * Other paths: 404.
 */
int pgw_control_write(void *arg, const char *method, const char *path, const char *body, size_t len,
                      char **resp);

/*
 * Requests only the HA loop may carry out (it alone touches PostgreSQL): the REST
 * thread queues one and waits for the loop's answer.
 */
enum pgw_request_kind { PGW_REQ_NONE, PGW_REQ_RESTART, PGW_REQ_REINIT, PGW_REQ_RELOAD };

struct pgw_request {
	enum pgw_request_kind kind;
	bool restart_pending_only; /* restart only when a parameter waits for it */
	char role[16];             /* restart only in this role ("primary"/"master"/"replica") */
};

/* The loop: take the queued request, if any (true), and later answer it. */
bool pgw_control_take(struct pgw_control *ctl, struct pgw_request *req);
void pgw_control_finish(struct pgw_control *ctl, int status, const char *msg);

#endif
