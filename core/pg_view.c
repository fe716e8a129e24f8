/*
 * pg_view.c - what a member publishes of its PostgreSQL (member key role, state and
 * WAL position), derived from one observation; see pg_types.h.  The daemon and the
 * simulator publish through these, so the election sees the same values in both.
 */
#include "pg_types.h"

const char *pgw_pg_role_name(const struct pgw_pg_state *st)
{
	if (st->datadir == PGW_DATADIR_EMPTY)
		return "uninitialized";
	if (st->running && st->accepting)
		return st->in_recovery ? "replica" : "master";
	if (st->cd_valid)
		return st->cd.state == PGW_CS_SHUT_DOWN || st->cd.state == PGW_CS_IN_PRODUCTION
		           ? "master"
		           : "replica";
	return "replica";
}

const char *pgw_pg_state_name(const struct pgw_pg_state *st)
{
	if (st->running)
		return st->accepting ? "running" : "starting";
	return "stopped";
}

int64_t pgw_pg_wal_position(const struct pgw_pg_state *st)
{
	if (!st->running || !st->accepting)
		return -1;
	if (!st->in_recovery)
		return (int64_t)st->wal_lsn;
	return (int64_t)(st->received_lsn > st->replayed_lsn ? st->received_lsn : st->replayed_lsn);
}
