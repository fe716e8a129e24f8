/*
 * standby.h - Patroni's standby_cluster: a whole cluster that follows a remote primary
 * (or a restore_command).  Its leader, the "standby leader", holds the leader key as
 * usual but runs PostgreSQL as a standby of standby_cluster.host:port; the other members
 * follow it.  Removing the section from the dynamic configuration (the config key)
 * promotes the standby leader (core/decide.c, rows standby-leader*).
 *
 * The section is parsed strictly from the file (config.c, bootstrap.dcs.standby_cluster)
 * and from the config key in etcd (dcs.c).  What etcd says is untrusted
 * (ARCHITECTURE.md §7): pgw_standby_effective() takes from it whether the cluster is a
 * standby cluster and the harmless settings, but the host that receives the replication
 * credentials and the commands PostgreSQL runs come from the local file only.
 */
#ifndef PGW_STANDBY_H
#define PGW_STANDBY_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

#define PGW_SC_HOST_MAX    256
#define PGW_SC_CMD_MAX     1024
#define PGW_SC_METHODS_MAX 8
#define PGW_SC_NAME_MAX    64

struct pgw_standby_cluster {
	bool enabled;                                      /* the section is there (not null) */
	char host[PGW_SC_HOST_MAX];                        /* "" = none: restore_command only */
	int port;                                          /* 5432 when not given */
	char primary_slot_name[PGW_SC_NAME_MAX];           /* "" = none */
	char methods[PGW_SC_METHODS_MAX][PGW_SC_NAME_MAX]; /* create_replica_methods */
	int nmethods;
	char restore_command[PGW_SC_CMD_MAX];         /* "" = none */
	char archive_cleanup_command[PGW_SC_CMD_MAX]; /* "" = none */
	char recovery_min_apply_delay[32];            /* "" = none; an integer or "5min" */
};

/*
 * Parse a standby_cluster value (an object, or null/absent = not a standby cluster).
 * Strings only where Patroni has strings; the port may be a number or digits (YAML
 * gives strings).  False with *why on anything else: an unknown key, a host that is not
 * a host name or address, a port out of 1..65535, a bad slot or method name, a command
 * with a control character, an object without host nor restore_command.
 */
bool pgw_standby_parse(struct json_object *j, struct pgw_standby_cluster *out, char *why,
                       size_t whylen);

/* The section as JSON (for the config key at bootstrap); NULL when not enabled. */
struct json_object *pgw_standby_to_json(const struct pgw_standby_cluster *sc);

bool pgw_standby_same(const struct pgw_standby_cluster *a, const struct pgw_standby_cluster *b);

/*
 * What this node applies: `dyn` is the dynamic configuration's section (the config key,
 * or bootstrap.dcs before there is one), `local` the file's bootstrap.dcs.standby_cluster.
 * enabled, primary_slot_name, recovery_min_apply_delay and create_replica_methods come
 * from dyn; host and port too when they equal the file's, else the file's (the
 * replication password goes to that host); restore_command and archive_cleanup_command
 * always from the file.  *why (may be "") says what of dyn was refused.
 */
void pgw_standby_effective(const struct pgw_standby_cluster *dyn,
                           const struct pgw_standby_cluster *local, struct pgw_standby_cluster *out,
                           char *why, size_t whylen);

#endif
