/*
 * lease.c - deadline arithmetic of the leader lease; see lease.h.
 */
#include "lease.h"

#include <stddef.h>
#include <stdio.h>

void pgw_lease_renewed(struct pgw_lease *l, int64_t id, int64_t t_send_ms, int ttl_s)
{
	l->id = id;
	l->ttl_s = ttl_s;
	l->t_send_ms = t_send_ms;
	l->deadline_ms = t_send_ms + (int64_t)ttl_s * 1000;
	l->lapsed_id = 0;
}

void pgw_lease_lost(struct pgw_lease *l)
{
	l->id = 0;
	l->ttl_s = 0;
	l->deadline_ms = 0;
	l->lapsed_id = 0;
}

void pgw_lease_lapse(struct pgw_lease *l)
{
	int64_t id = l->id;

	pgw_lease_lost(l);
	l->lapsed_id = id;
}

int64_t pgw_lease_to_renew(const struct pgw_lease *l)
{
	return l->id != 0 ? l->id : l->lapsed_id;
}

void pgw_lease_cap_to_watchdog(struct pgw_lease *l, int64_t fires_ms, int64_t margin_ms,
                               int64_t lead_ms)
{
	int64_t cap = fires_ms - lead_ms + margin_ms;

	if (l->id != 0 && fires_ms != 0 && cap < l->deadline_ms)
		l->deadline_ms = cap;
}

bool pgw_lease_allows_writes(const struct pgw_lease *l, int64_t now_ms, int64_t margin_ms)
{
	return l->id != 0 && now_ms < l->deadline_ms - margin_ms;
}

int64_t pgw_lease_write_budget_ms(const struct pgw_lease *l, int64_t now_ms, int64_t margin_ms)
{
	if (l->id == 0)
		return -1;
	return l->deadline_ms - margin_ms - now_ms;
}

bool pgw_lease_may_pet(int64_t t_send_ms, int64_t now_ms, int64_t margin_ms)
{
	return now_ms - t_send_ms <= margin_ms - PGW_RESET_ALLOWANCE_MS;
}

int pgw_lease_wd_bound_s(const struct pgw_lease *l, int64_t now_ms, int loop_wait_s)
{
	int64_t left;

	if (l->id == 0)
		return 0;
	left = l->deadline_ms - PGW_RESET_ALLOWANCE_MS - now_ms - ((int64_t)loop_wait_s + 1) * 1000;
	if (left < 1000)
		return 1;
	return left / 1000 > 3600 ? 3600 : (int)(left / 1000);
}

bool pgw_timing_valid(int ttl, int loop_wait, int retry_timeout, int margin_s, char *err,
                      size_t errlen)
{
	if (ttl <= 0 || loop_wait <= 0 || retry_timeout <= 0) {
		snprintf(err, errlen, "ttl, loop_wait and retry_timeout must be positive");
		return false;
	}
	if ((int64_t)loop_wait + 2 * (int64_t)retry_timeout > ttl) {
		snprintf(err, errlen,
		         "loop_wait + 2 * retry_timeout (%lld) must not exceed ttl (%d)",
		         (long long)loop_wait + 2 * (long long)retry_timeout, ttl);
		return false;
	}
	if (margin_s <= 0 || margin_s >= ttl) {
		snprintf(err, errlen, "safety margin %d s must be between 1 and ttl - 1 (%d)",
		         margin_s, ttl - 1);
		return false;
	}
	return true;
}

int pgw_lease_op_timeout_ms(const struct pgw_lease *l, int64_t now_ms, int64_t margin_ms,
                            int retry_timeout_s, bool writing)
{
	int64_t t = (int64_t)retry_timeout_s * 1000;

	if (writing) {
		int64_t budget = pgw_lease_write_budget_ms(l, now_ms, margin_ms);
		if (budget < t)
			t = budget;
	}
	if (t < 100)
		t = 100;
	return (int)t;
}
