/*
 * probe.h - is the leader alive?  A prober thread sends overlapping probes of its
 * REST API and of its PostgreSQL port, and tells since when it has been silent
 * (fast takeover, rule 8).
 *
 * A round starts every interval_ms: GET /liveness (on a kept-alive connection when
 * one is free), plus, while the leader is silent, an SSLRequest to its postmaster.
 * Any HTTP answer, or any answer byte from the postmaster (which must accept and fork
 * a backend for it, so a frozen machine whose kernel still accepts TCP does not
 * answer), answers the round.  A round is given up after timeout_ms, but the next
 * ones do not wait for it: a SYN lost to a lossy link (retransmitted after 1 s) or a
 * postmaster slowed by load costs one round, not the whole threshold.
 */
#ifndef PGW_PROBE_H
#define PGW_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#define PGW_PROBE_URL_MAX  512
#define PGW_PROBE_HOST_MAX 256

struct pgw_probe_target {
	char api_url[PGW_PROBE_URL_MAX]; /* its member key's api_url ("" or not http(s):
	                                  * REST is not probed) */
	char host[PGW_PROBE_HOST_MAX];   /* its PostgreSQL ("" or a socket path: not probed) */
	int port;
	int64_t tag; /* which leader (its lease): another tag starts afresh too */
	int interval_ms, timeout_ms;
};

struct pgw_prober;

/* Start the thread (idle until a target is set); NULL with errno on failure. */
struct pgw_prober *pgw_prober_new(void);
/* Stop the thread and free everything. */
void pgw_prober_free(struct pgw_prober *p);
/*
 * Probe t from now on (NULL: stop probing).  A target that differs from the current
 * one (any field) starts afresh: the rounds in flight are dropped, nothing is silent.
 */
void pgw_prober_set_target(struct pgw_prober *p, const struct pgw_probe_target *t);
/*
 * The send time (mono ms) of the first round the target left unanswered since the
 * last round it answered; 0 while it answers (or cannot be probed, or before the first
 * round).  A round still in flight counts as unanswered: it may answer later, and the
 * silence then starts again from a later round.
 */
int64_t pgw_prober_silent_since(struct pgw_prober *p);

#endif
