/*
 * pg_types.h - what pgwarden observes of the local PostgreSQL, as plain data: the
 * decision core reads it, the PostgreSQL controller (daemon/pg.c) fills it in.
 */
#ifndef PGW_PG_TYPES_H
#define PGW_PG_TYPES_H

#include <stdbool.h>
#include <stdint.h>

/* What the data directory holds, as far as pg_controldata tells. */
enum pgw_datadir_state {
	PGW_DATADIR_EMPTY,   /* missing or empty: needs initdb or a clone */
	PGW_DATADIR_VALID,   /* PG_VERSION and a readable control file */
	PGW_DATADIR_INVALID, /* something there but not a usable cluster */
};

/* pg_controldata's "Database cluster state". */
enum pgw_cluster_state {
	PGW_CS_UNKNOWN,
	PGW_CS_SHUT_DOWN,             /* "shut down": was a primary, clean */
	PGW_CS_SHUT_DOWN_IN_RECOVERY, /* "shut down in recovery": was a replica, clean */
	PGW_CS_IN_PRODUCTION,         /* "in production": primary, running or crashed */
	PGW_CS_IN_ARCHIVE_RECOVERY,   /* "in archive recovery": replica, running or crashed */
	PGW_CS_OTHER,
};

struct pgw_controldata {
	enum pgw_cluster_state state;
	uint64_t system_identifier;
	int timeline;              /* "Latest checkpoint's TimeLineID" */
	uint64_t checkpoint_lsn;   /* "Latest checkpoint location" */
	uint64_t min_recovery_lsn; /* "Minimum recovery ending location" (0 when none) */
};

/* One row of pg_stat_replication, on a primary. */
struct pgw_pg_replication {
	char usename[64];
	char application_name[64];
	char client_addr[64];
	char state[32];
	char sync_state[16];
	int sync_priority;
	uint64_t flush_lsn; /* what it has flushed (0 unknown) */
};

#define PGW_PG_MAX_REPLICATION 16

/* The observed state of the local PostgreSQL at one instant. */
struct pgw_pg_state {
	enum pgw_datadir_state datadir;
	bool cd_valid;             /* not running: pg_controldata could be read into cd */
	struct pgw_controldata cd; /* the control file of a stopped server */
	bool running;              /* postmaster alive (postmaster.pid and a live pid) */
	bool accepting;            /* a libpq connection and query succeeded */
	bool in_recovery;          /* pg_is_in_recovery() */
	int timeline;              /* current timeline (0 when unknown) */
	uint64_t system_identifier;
	int server_version;           /* e.g. 150018 */
	double postmaster_start_time; /* unix time, 0 when unknown */
	/* primary: pg_current_wal_lsn(); replica: received and replayed */
	uint64_t wal_lsn;
	uint64_t received_lsn;
	uint64_t replayed_lsn;
	double replayed_timestamp; /* unix time of the last replayed xact, 0 when none */
	bool replay_paused;
	bool streaming;         /* pg_stat_wal_receiver.status = 'streaming' */
	char primary_host[256]; /* host and port the WAL receiver connects to (from
	                           primary_conninfo) */
	int primary_port;
	bool pending_restart; /* some parameter waits for a restart */
	/* primary: pg_current_wal_flush_lsn(); synchronous_standby_names in effect */
	uint64_t flush_lsn;
	char sync_names[512];
	struct pgw_pg_replication replication[PGW_PG_MAX_REPLICATION];
	int nreplication;
};

/* What a member key says of this PostgreSQL (pg_view.c): role "master", "replica" or
 * "uninitialized" (a stopped server by its control file), state "running", "starting"
 * or "stopped", and the WAL position (primary: written; replica: the larger of received
 * and replayed; -1 when it does not answer). */
const char *pgw_pg_role_name(const struct pgw_pg_state *st);
const char *pgw_pg_state_name(const struct pgw_pg_state *st);
int64_t pgw_pg_wal_position(const struct pgw_pg_state *st);

#endif
