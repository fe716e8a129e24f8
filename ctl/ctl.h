/*
 * ctl.h - the pure parts of pgwardenctl, the operator CLI (ctl/pgwardenctl.c
 * does the I/O): command-line parsing, the cluster view it renders (members with
 * their tags, pending_restart and pause flags read from the raw member JSON),
 * patronictl-style tables, JSON and YAML output, edit-config's value typing,
 * dotted keys, diff and validation, and switchover/failover validation.
 *
 * Nothing here reads a clock, a terminal or etcd; every text comes back
 * malloc'd (NULL only when out of memory) so the unit tests can compare it.
 */
#ifndef PGW_CTL_H
#define PGW_CTL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "confedit.h"
#include "switchover.h"
#include "sbuf.h"

/* ---- exit codes ------------------------------------------------------------------- */
#define PGW_CTL_OK     0 /* success */
#define PGW_CTL_FAILED 1 /* the operation failed or was refused */
#define PGW_CTL_USAGE  2 /* unknown command or option, bad value */

#define PGW_CTL_DEFAULT_CONFIG "/etc/pgwarden/pgwarden.yml"
#define PGW_CTL_MAX_SETS       64

/* ---- command line (ctl_args.c) ---------------------------------------------------- */
enum pgw_ctl_cmd {
	PGW_CTL_NONE,
	PGW_CTL_LIST,
	PGW_CTL_TOPOLOGY,
	PGW_CTL_HISTORY,
	PGW_CTL_SHOW_CONFIG,
	PGW_CTL_EDIT_CONFIG,
	PGW_CTL_PAUSE,
	PGW_CTL_RESUME,
	PGW_CTL_SWITCHOVER,
	PGW_CTL_FAILOVER,
	PGW_CTL_VERSION,
	PGW_CTL_RESTART,
	PGW_CTL_RELOAD,
	PGW_CTL_REINIT,
	PGW_CTL_FENCE_LOG,
	PGW_CTL_UNFENCE,
};

enum pgw_ctl_fmt { PGW_FMT_TABLE, PGW_FMT_JSON, PGW_FMT_YAML };

struct pgw_ctl_args {
	enum pgw_ctl_cmd cmd;
	const char *config;    /* -c; NULL = $PGWARDENCTL_CONFIG or the default */
	const char *scope;     /* --scope or the positional CLUSTER name; NULL = config's */
	const char *namespace; /* --namespace; NULL = config's */
	bool help;             /* --help: print the help of cmd (or the program) */
	enum pgw_ctl_fmt fmt;  /* --format */
	bool watch;            /* list -W (or -w) */
	double interval;       /* list -w SECONDS, default 2 */
	const char *sets[PGW_CTL_MAX_SETS]; /* edit-config -s KEY=VALUE, and -p as
	                                       "postgresql.parameters.NAME=VALUE" (in pg_buf) */
	size_t nsets;
	char pg_buf[PGW_CTL_MAX_SETS][256];
	bool force; /* --force */
	bool wait;  /* pause/resume --wait */
	const char *leader, *candidate, *scheduled;
	const char *members[PGW_CTL_MAX_SETS]; /* restart/reinit: MEMBER... after CLUSTER */
	size_t nmembers;
	const char *apply_file; /* edit-config --apply/--replace FILE ("-": stdin) */
	bool replace;           /* --replace: the file is the whole config, not a patch */
	bool verify;            /* fence-log --verify */
	bool pending;           /* restart --pending: only members with a pending restart */
	const char *role;       /* restart --role primary|replica|any */
};

/* Parse argv; 0 when usable, PGW_CTL_USAGE with a message in err otherwise. */
int pgw_ctl_parse_args(int argc, char *const *argv, struct pgw_ctl_args *a, char *err,
                       size_t errlen);
/* The help text of cmd (PGW_CTL_NONE: the program's). Static text. */
const char *pgw_ctl_help(enum pgw_ctl_cmd cmd);
const char *pgw_ctl_cmd_name(enum pgw_ctl_cmd cmd);

/* ---- text helpers (ctl_text.c; the growable string struct pgw_sb is sbuf.h's) ----- */
/* A table like patronictl's (prettytable): +---+ rules, | cells |, title over the top rule. */
struct pgw_ctl_table {
	size_t ncols, nrows, cap;
	const char *const *headers;
	const bool *right; /* per column: right-aligned; NULL = all left */
	char **cells;      /* nrows * ncols, owned */
	bool oom;
};
void pgw_table_init(struct pgw_ctl_table *t, size_t ncols, const char *const *headers,
                    const bool *right);
void pgw_table_row(struct pgw_ctl_table *t, const char *const *cells);
/* title: e.g. " Cluster: demo (7321) " laid over the top rule, or NULL. */
char *pgw_table_render(const struct pgw_ctl_table *t, const char *title);
void pgw_table_free(struct pgw_ctl_table *t);

/* YAML (block style) of a json-c value; sort_keys orders object keys by name. */
char *pgw_yaml_dump(struct json_object *o, bool sort_keys);
/* A YAML scalar: plain when unambiguous, else double-quoted. */
void pgw_yaml_scalar(struct pgw_sb *sb, const char *s);

/* ---- the cluster as the CLI shows it (ctl_view.c) --------------------------------- */
struct pgw_ctl_member {
	const struct pgw_member *m; /* into the cluster */
	char tags[512];             /* tags as "key: value, ..." ("" = none) */
	char tags_json[512];        /* the tags object as JSON ("" = none) */
	bool pending_restart;
	bool pause;
	char watchdog[48]; /* "armed 5s", "ready", "FAILED (required)", ...; "" = off/unknown */
};

struct pgw_ctl_view {
	const struct pgw_cluster *c;
	const char *scope;
	struct pgw_ctl_member members[PGW_MAX_MEMBERS]; /* in c->members order (by name) */
	int n;
};

/* The extras of each member of c, read from the raw member values in r. */
void pgw_ctl_view_build(struct pgw_ctl_view *v, const struct pgw_cluster *c,
                        const struct pgw_etcd_range *r, const char *prefix, const char *scope);

/* Bytes member m is behind the leader (max of the status optime and the leader's
 * xlog_location), at least 0; -1 when unknown (either side unknown). */
int64_t pgw_ctl_lag_bytes(const struct pgw_cluster *c, const struct pgw_member *m);
/* "0.0" (MB, one decimal) or "unknown". */
void pgw_ctl_format_lag(int64_t lag_bytes, char *buf, size_t len);

char *pgw_ctl_render_list(const struct pgw_ctl_view *v, enum pgw_ctl_fmt fmt, bool topology);
char *pgw_ctl_render_history(const char *history_json, enum pgw_ctl_fmt fmt);
/* show-config: YAML (table) or pretty JSON; NULL with err when the config is not JSON. */
char *pgw_ctl_render_config(const char *config_json, enum pgw_ctl_fmt fmt, char *err,
                            size_t errlen);

#endif
