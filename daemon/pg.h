/*
 * pg.h - the PostgreSQL controller: everything pgwarden does to the local
 * PostgreSQL 15 (initdb, configuration files, pg_ctl start/stop/promote,
 * pg_basebackup, pg_rewind, replication slots, and observing its state through
 * libpq and pg_controldata).
 *
 * All functions block, each bounded by the timeout given; they never run as root
 * (the daemon dropped privileges before).  Errors are logged with context (the
 * command line, its exit status and the last lines of its output) and returned
 * as -1; success is 0.
 */
#ifndef PGW_PG_H
#define PGW_PG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "pg_types.h"

struct pgw_pg; /* the controller: config, paths, a cached libpq connection */

/* cfg must outlive the controller.  NULL (logged) when data_dir or pgpass is unset. */
struct pgw_pg *pgw_pg_new(const struct pgw_config *cfg);
void pgw_pg_free(struct pgw_pg *pg);
/* A reloaded configuration with the same paths and addresses (the caller checked):
 * parameters, pg_hba and passwords for the next written files come from it. */
void pgw_pg_set_config(struct pgw_pg *pg, const struct pgw_config *cfg);

/* Fill *st; never fails (unknown fields stay 0/false).  timeout bounds the libpq work
 * (one round trip on a cached connection) and pg_controldata (half of it).  A data
 * directory with PG_VERSION served by a live postmaster counts as VALID even if
 * pg_controldata fails at that instant. */
void pgw_pg_observe(struct pgw_pg *pg, int timeout_ms, struct pgw_pg_state *st);

/* pg_controldata of the data directory; -1 when it cannot be read. */
int pgw_pg_controldata(struct pgw_pg *pg, struct pgw_controldata *cd);

/* initdb with cfg->initdb_args, then write the configuration (as a primary). */
int pgw_pg_initdb(struct pgw_pg *pg, int timeout_ms);

/*
 * Write postgresql.conf (including initdb's settings, kept as postgresql.base.conf),
 * pg_hba.conf and the pgpass file.  When primary_host is NULL the node is set up as a
 * primary (no standby.signal); otherwise as a standby streaming from primary_host:port
 * through the physical slot `slot` (may be NULL); primary_host "" makes a standby that
 * follows nobody yet.  dcs_params and the local
 * parameters are merged, local ones winning.
 */
int pgw_pg_write_config(struct pgw_pg *pg, const struct pgw_kvlist *dcs_params,
                        const char *primary_host, int primary_port, const char *slot);

/* On a fresh primary: create the replication user (and the rewind user when it is
 * not the superuser) with the configured passwords.  Idempotent. */
int pgw_pg_bootstrap_roles(struct pgw_pg *pg, int timeout_ms);

/* pg_ctl start -w (timeout_ms 0: -W, return once started); the server log goes to "<data_dir>.log"
 * (a sibling file, so a re-clone that replaces the data directory keeps it).  0 at once when it
 * already runs. */
int pgw_pg_start(struct pgw_pg *pg, int timeout_ms);
/* mode: "fast" or "immediate". */
int pgw_pg_stop(struct pgw_pg *pg, const char *mode, int timeout_ms);

/*
 * At start, before the watchdog is opened: a postmaster running in data_dir without
 * standby.signal is a primary left by a daemon that died.  Its watchdog still runs and
 * is what the peers count on to reset it before its lease expires; opening the device
 * stops that, so stop PostgreSQL first (SIGQUIT, immediate shutdown; works as root
 * too).  0 when nothing was running or it stopped within timeout_ms; -1 otherwise.
 */
int pgw_pg_stop_leftover_primary(const char *data_dir, int timeout_ms);
/*
 * The postmaster running in data_dir when it may accept writes: no standby.signal, or
 * a promotion asked for (the "promote" file) and not finished.  0 when none runs, or
 * it is a standby.  The watchdog keeper and the start of the daemon ask this.
 */
pid_t pgw_pg_unmanaged_writer(const char *data_dir);
/* Re-read the configuration files (pg_ctl reload). */
int pgw_pg_reload(struct pgw_pg *pg);
/*
 * synchronous_mode: the synchronous_standby_names that every later write of
 * postgresql.conf puts last (NULL: none of pgwarden's).  True when it changed.
 */
bool pgw_pg_set_sync_names(struct pgw_pg *pg, const char *names);
const char *pgw_pg_sync_names(const struct pgw_pg *pg);

/* Called about once a second during a long wait; false gives the wait up. */
typedef bool (*pgw_pg_keep_fn)(void *arg);
/*
 * Until set to NULL, call keep(keep_arg) about once a second while a command or a
 * query of pg waits: the HA loop renews its lease (petting the watchdog) while
 * PostgreSQL stops or promotes for longer than the watchdog's W.
 */
void pgw_pg_set_keep(struct pgw_pg *pg, pgw_pg_keep_fn keep, void *keep_arg);
/*
 * pg_ctl promote, then wait until pg_is_in_recovery() is false and checkpoint,
 * calling keep(keep_arg) about once a second meanwhile (the HA loop renews its lease).
 */
int pgw_pg_promote(struct pgw_pg *pg, int timeout_ms, pgw_pg_keep_fn keep, void *keep_arg);

/*
 * bootstrap.method (Patroni's custom bootstrap): run the method's command (with
 * --scope and --datadir unless no_params), which must leave a data directory, then
 * write the configuration as a primary; its recovery_conf goes into postgresql.conf
 * with recovery.signal (PostgreSQL 12+), keep_existing_recovery_conf keeps the signal
 * files it left, else they are removed.  Until pgw_pg_bootstrap_done, pg_hba.conf
 * trusts the superuser from this host (the restored cluster may know another
 * password) and the recovery settings stay.
 */
int pgw_pg_custom_bootstrap(struct pgw_pg *pg, const struct pgw_method *m,
                            const struct pgw_kvlist *dcs_params, int timeout_ms);
/* Wait until the started server leaves recovery (a custom bootstrap's restore), calling
 * keep about once a second; -1 when it stops or the time is out. */
int pgw_pg_wait_writable(struct pgw_pg *pg, int timeout_ms, pgw_pg_keep_fn keep, void *keep_arg);
/* End a custom bootstrap: the normal pg_hba.conf and postgresql.conf, reload. */
int pgw_pg_bootstrap_done(struct pgw_pg *pg, const struct pgw_kvlist *dcs_params);
/* A failed bootstrap: forget the custom bootstrap's settings (trust, recovery). */
void pgw_pg_bootstrap_abort(struct pgw_pg *pg);
/* bootstrap.post_bootstrap (or post_init): run it with a connection string to the new
 * primary as its last argument.  0 when unset or it exited with status 0. */
int pgw_pg_post_bootstrap(struct pgw_pg *pg, int timeout_ms);
/*
 * postgresql.create_replica_methods in order (default: basebackup) until one
 * succeeds: basebackup is pgw_pg_basebackup; a custom method empties the data
 * directory (unless keep_data) and runs its command with --scope, --role=replica,
 * --datadir and --connstring (unless no_params) after its own --key=value options.
 * host NULL or "": no leader, only methods with no_leader are tried.
 */
int pgw_pg_create_replica(struct pgw_pg *pg, const char *host, int port, int timeout_ms);
/*
 * Standby cluster: create this node's data directory from the remote primary
 * (sc->host:port, or without one a no_leader method), with standby_cluster's
 * create_replica_methods when given (only names that are basebackup or a method of the
 * local file), else postgresql.create_replica_methods' default, basebackup.
 */
int pgw_pg_create_standby_leader(struct pgw_pg *pg, const struct pgw_standby_cluster *sc,
                                 int timeout_ms);
/* The standby leader's recovery settings (restore_command, archive_cleanup_command,
 * recovery_min_apply_delay), written with the next standby configuration; NULL: none
 * (a replica of the standby leader, or a primary). */
void pgw_pg_set_standby(struct pgw_pg *pg, const struct pgw_standby_cluster *sc);

/* Remove the data directory and clone it from host:port with pg_basebackup. */
int pgw_pg_basebackup(struct pgw_pg *pg, const char *host, int port, int timeout_ms);
/* Rewind the (stopped) data directory from the primary at host:port with pg_rewind. */
int pgw_pg_rewind(struct pgw_pg *pg, const char *host, int port, int timeout_ms);

/* The local server's slots (at most max) and whether wal_level is logical; -1 on error. */
int pgw_pg_list_slots(struct pgw_pg *pg, struct pgw_slot_info *out, int max, bool *wal_logical,
                      int timeout_ms);
/* Create a slot: physical (reserve: WAL from now, else from the first connection) or
 * logical in its database.  Two of max_replication_slots are always left free. */
int pgw_pg_create_slot(struct pgw_pg *pg, const struct pgw_slot_def *d, bool reserve,
                       int timeout_ms);
/* Drop the slot if it is not active. */
int pgw_pg_drop_slot(struct pgw_pg *pg, const char *name, int timeout_ms);
/* pg_replication_slot_advance (a logical slot in its own database; works in recovery). */
int pgw_pg_advance_slot(struct pgw_pg *pg, const struct pgw_slot_def *d, uint64_t lsn,
                        int timeout_ms);
/* The leader's pg_replslot/<name>/state, read over libpq as pg_rewind's user, only if that
 * slot is the logical slot d (database, plugin); malloc'd into *data. */
int pgw_pg_read_leader_slot(struct pgw_pg *pg, const char *host, int port,
                            const struct pgw_slot_def *d, unsigned char **data, size_t *len,
                            int timeout_ms);
/* Is this a whole slot file (magic and CRC-32C as PostgreSQL checks them at startup)? */
bool pgw_pg_slot_file_ok(const unsigned char *data, size_t len);
/* The restart_lsn recorded in a slot file (PostgreSQL 15's layout). */
uint64_t pgw_pg_slot_file_restart_lsn(const unsigned char *data, size_t len);
/* Where the oldest WAL segment in the local pg_wal begins. */
int pgw_pg_oldest_wal(struct pgw_pg *pg, uint64_t *lsn, int timeout_ms);
/* Write pg_replslot/<name>/state into the stopped data directory (read at the next start). */
int pgw_pg_install_slot(struct pgw_pg *pg, const char *name, const unsigned char *data, size_t len);
/* Remove pg_replslot/<name> from the stopped data directory. */
int pgw_pg_remove_slot_dir(struct pgw_pg *pg, const char *name);
/* Permanent logical slots exist: postgresql.conf gets wal_level = logical and
 * hot_standby_feedback = on.  True when this changed (write the config again). */
bool pgw_pg_set_logical_slots(struct pgw_pg *pg, bool on);

/* The member name as a slot name: lower case, [a-z0-9_] only, others become '_'. */
void pgw_pg_slot_name(const char *member, char *out, size_t outlen);

/* Read "<data_dir>/pg_wal/<TL>.history" last line: the parent timeline (the one this
 * one forked off: not always TL - 1), the switch LSN on it, and the reason. */
int pgw_pg_timeline_switch(struct pgw_pg *pg, int timeline, int *parent, uint64_t *switch_lsn,
                           char *reason, size_t reasonlen);

/* The last error of this controller (a failed command's line, exit status and output
 * tail, or the SQL error), "" when none.  Valid until the next call on pg. */
const char *pgw_pg_last_error(const struct pgw_pg *pg);

/*
 * Parse pg_controldata's output (run with LC_ALL=C).  Returns -1 when the cluster
 * state, the system identifier or the checkpoint location is missing or malformed.
 */
int pgw_pg_parse_controldata(const char *text, struct pgw_controldata *cd);

/*
 * The text of the managed postgresql.conf (pure: no I/O).  Settings in order: the
 * managed defaults, then dcs_params, then cfg->postgresql.parameters, each name
 * once with its last value; then, when primary_host is not NULL, the standby
 * settings.  listen_addresses, port, hba_file and the recovery settings cannot be
 * overridden.  Returns a malloc'd string, or NULL with a message in err when a
 * name or value cannot be written safely.
 */
char *pgw_pg_render_conf(const struct pgw_config *cfg, const struct pgw_kvlist *dcs_params,
                         const char *primary_host, int primary_port, const char *slot, char *err,
                         size_t errlen);

/*
 * postgresql.use_unix_socket: the host for the daemon's own connections: the first
 * absolute directory of unix_socket_directories (local parameters, else
 * bootstrap.dcs's), "" (libpq's default socket) when unset, NULL when it names none
 * (TCP).  malloc'd.
 */
char *pgw_pg_unix_socket_host(const struct pgw_config *cfg);

/* Where postgresql.conf, pg_hba.conf and pg_ident.conf live: postgresql.config_dir,
 * else the data directory. */
const char *pgw_pg_config_dir(const struct pgw_config *cfg);

/* "0/3000060" <-> integer. */
bool pgw_lsn_parse(const char *s, uint64_t *lsn);
void pgw_lsn_format(uint64_t lsn, char *out, size_t outlen);

#endif
