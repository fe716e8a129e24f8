/*
 * requests.h - the operator's requests that only the HA loop may carry out (POST
 * /restart, a scheduled restart, POST /reinitialize, POST /unfence): whether this
 * node carries one out now, and how, decided like everything else in the core (a
 * table with a reason on every row, printed by `pgwarden --print-rules`).
 */
#ifndef PGW_REQUESTS_H
#define PGW_REQUESTS_H

#include <stdbool.h>
#include <stdio.h>

#include "decide.h"

enum pgw_rq_kind { PGW_RQ_RESTART, PGW_RQ_REINIT, PGW_RQ_UNFENCE };

struct pgw_rq {
	enum pgw_rq_kind kind;
	bool pending_only;  /* restart only when a parameter waits for a restart */
	const char *role;   /* restart only in this role ("primary", "master", "replica"), "" any */
	const char *member; /* unfence: the member to power on */
};

struct pgw_rq_verdict {
	bool go;    /* carry it out (else answer `status` with the reason) */
	int status; /* HTTP status when refused */
	const char *rule;
	char reason[256];
	bool as_primary; /* restart: start again as the primary */
	/* restart as a replica: its upstream; reinitialize: the leader to clone */
	char target[PGW_NAME_MAX];
	char target_host[256];
	int target_port;
};

/*
 * o: this cycle's observation (after the step); leader_healthy: this node holds the
 * key and its decision was leader-healthy (a restart as primary needs no other work
 * from the loop now).
 */
void pgw_request_verdict(const struct pgw_obs *o, bool leader_healthy, const struct pgw_rq *r,
                         struct pgw_rq_verdict *v);

void pgw_print_request_rules(FILE *out);

#endif
