/*
 * fencer.h - the HA loop's side of STONITH (ARCHITECTURE.md S3, S4, timing rules 6
 * and 8): one fence of a lost leader, step by step, each step audited (fsync)
 * before the next one runs:
 *
 *   1. take the fence lock (pgwarden/fence-lock, create-if-absent with our lease),
 *      so only one member fences at a time;
 *   2. audit the intent;
 *   3. chassis power off through the target's BMC (native IPMI or a fence agent)
 *      and poll until the BMC reports off, bounded by fencing.timeout, retried;
 *   4. audit the result; when confirmed, mark the leader record fenced (so every
 *      member knows) and release the lock.  Only then may this node promote.
 *
 * A failed or unconfirmed fence leaves the cluster without a primary: the reason
 * goes to the log, the journal (its own MESSAGE_ID), GET /patroni and the member
 * key, and the next loop tries again.  Called only from the HA loop's thread.
 */
#ifndef PGW_FENCER_H
#define PGW_FENCER_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "etcd.h"

struct pgw_fencer;

/* MESSAGE_ID of the journal message "fencing X failed, not promoting" (priority crit). */
#define PGW_FENCE_FAILED_MESSAGE_ID "2903b8f6272c4363ae360141031469e0"

/* What the REST API, the member key and pgwardenctl show. */
struct pgw_fence_state {
	bool required;
	char target[PGW_NAME_MAX]; /* the last fence's target, "" none */
	char result[16];           /* "", "fencing", "confirmed", "failed" */
	char reason[256];          /* why it failed (or what was confirmed) */
	double wall;               /* when (unix time), 0 never */
};

/* cfg's fencing section; never NULL (an audit log that cannot be opened is retried). */
struct pgw_fencer *pgw_fencer_new(const struct pgw_config *cfg);
void pgw_fencer_free(struct pgw_fencer *f);

/* The etcd keys: <prefix>pgwarden/leader and <prefix>pgwarden/fence-lock. */
struct pgw_fence_keys {
	const char *record_key;
	const char *lock_key;
	const char *fenced_prefix; /* <prefix>pgwarden/fenced/: one record per fenced member
	                              (its BMC, for unfence), kept until it is powered on */
	int64_t lease;             /* this node's lease (the lock is attached to it) */
	int timeout_ms;            /* one etcd call */
	int timeline;              /* for the audit */
	int64_t budget_ms;         /* the whole fence must end before this node's lease (and with
	                              it the fence lock) could lapse: D - S - now, less a margin */
	const char *why; /* why it is lost, for the audit (NULL: the key went unreleased) */
};

/*
 * Fence lr's member (the lost leader).  Returns true only when its BMC confirmed
 * the power is off and the record now says so; false with the reason kept.
 */
bool pgw_fencer_fence(struct pgw_fencer *f, struct pgw_etcd *etcd, const struct pgw_fence_keys *k,
                      const struct pgw_leader_record *lr);

/* Audit the promotion that follows a fence (S4). */
void pgw_fencer_promoted(struct pgw_fencer *f, const char *fenced, int64_t lease, int timeline);

/* Power a fenced member back on (pgwardenctl unfence, through POST /unfence); audited.
 * budget_ms bounds the whole power on (the loop must renew its lease in time). */
int pgw_fencer_unfence(struct pgw_fencer *f, const struct pgw_leader_record *lr, int64_t budget_ms,
                       char *msg, size_t len);

void pgw_fencer_state(const struct pgw_fencer *f, struct pgw_fence_state *out);

#endif
