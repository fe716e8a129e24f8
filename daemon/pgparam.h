/*
 * pgparam.h - which PostgreSQL parameters pgwarden writes to postgresql.conf, and
 * from where they may come (ARCHITECTURE.md §7).
 *
 * One rule for every path a parameter takes: the local configuration file
 * (config.c), the dynamic configuration in etcd and PATCH /config (dcs.c), and the
 * renderer of postgresql.conf (pg.c).  A set that one of them accepts is a set the
 * renderer can write, so a bad PATCH is refused before it reaches etcd instead of
 * leaving every node unable to write its configuration.
 *
 * Parameters that run a command or load code (archive_command, restore_command,
 * shared_preload_libraries, include, ...) are taken from the local file only: a
 * write to etcd, or to PATCH /config, must not become a command run as postgres on
 * every node.
 */
#ifndef PGW_PGPARAM_H
#define PGW_PGPARAM_H

#include <stdbool.h>
#include <stddef.h>

/* A GUC name: a letter or '_', then letters, digits, '_' and '.'; fewer than 64 bytes. */
bool pgw_param_name_ok(const char *name, size_t len);
/* A value postgresql.conf can hold: no line break, no NUL byte. */
bool pgw_param_value_ok(const char *value, size_t len);
/* Does this parameter run a command or load code (local file only)? */
bool pgw_param_local_only(const char *name);
/*
 * name = value from the dynamic configuration (etcd, PATCH /config): NULL when it
 * may be applied, else why not (a static string).
 */
const char *pgw_param_dcs_refusal(const char *name, size_t nlen, const char *value, size_t vlen);

#endif
