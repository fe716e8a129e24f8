/*
 * slots.h - replication slots beyond the members' own: Patroni's dynamic settings
 * `slots` (permanent slots), `ignore_slots` and `member_slots_ttl`, their parsing
 * (from the file through config.c, from the config key in etcd through dcs.c), and the
 * plan of what to create, drop and advance on this node (pure; ha_act.c carries it out
 * with pg.c).
 *
 * Names and fields are checked strictly: a slot name is what PostgreSQL accepts
 * ([a-z0-9_], 1..63 bytes); a plugin is a bare library name ([A-Za-z0-9_-], no path:
 * a plugin from etcd must not load code from anywhere but $libdir, ARCHITECTURE.md §7);
 * a database is at most 63 bytes without control characters.
 */
#ifndef PGW_SLOTS_H
#define PGW_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_types.h"

struct json_object;

#define PGW_SLOT_NAME_MAX            64   /* NAMEDATALEN: 63 bytes and the NUL */
#define PGW_PERM_SLOTS_MAX           32   /* permanent slots kept at most */
#define PGW_IGNORE_MAX               32   /* ignore_slots entries kept at most */
#define PGW_MEMBER_SLOTS_TTL_DEFAULT 1800 /* s: Patroni 4's 30min */
#define PGW_SLOT_ABSENT_MAX          32   /* unwanted physical slots a primary remembers */

enum pgw_slot_type { PGW_SLOT_ANY = -1, PGW_SLOT_PHYSICAL = 0, PGW_SLOT_LOGICAL = 1 };

/* One permanent slot (slots.<name>: {type, database, plugin}). */
struct pgw_slot_def {
	char name[PGW_SLOT_NAME_MAX];
	int type; /* enum pgw_slot_type, never ANY */
	char database[PGW_SLOT_NAME_MAX];
	char plugin[PGW_SLOT_NAME_MAX];
};

/* One ignore_slots entry: a slot matches when every field given matches ("" / ANY: any). */
struct pgw_slot_match {
	char name[PGW_SLOT_NAME_MAX];
	int type;
	char database[PGW_SLOT_NAME_MAX];
	char plugin[PGW_SLOT_NAME_MAX];
};

struct pgw_slot_conf {
	struct pgw_slot_def perm[PGW_PERM_SLOTS_MAX];
	int nperm;
	struct pgw_slot_match ignore[PGW_IGNORE_MAX];
	int nignore;
	/* names of definitions from etcd that were refused: neither created nor dropped */
	char keep[PGW_PERM_SLOTS_MAX][PGW_SLOT_NAME_MAX];
	int nkeep;
	int64_t member_slots_ttl; /* s, default PGW_MEMBER_SLOTS_TTL_DEFAULT */
	char refused[256];        /* what was refused (from etcd), "" none: for the log */
};

/* PostgreSQL's rule for slot names: [a-z0-9_], 1 to 63 bytes. */
bool pgw_slot_name_ok(const char *s, size_t len);

/*
 * One slots.<name> entry: value NULL/null/a scalar means a physical slot (Patroni
 * accepts `name: null` and `name: 0`), a map gives type/database/plugin.  False with
 * err ("slots.NAME.FIELD: expected ..., got ...") when anything is wrong.
 */
bool pgw_slot_def_parse(const char *name, struct json_object *v, struct pgw_slot_def *out,
                        char *err, size_t errlen);
/* One ignore_slots entry (a map of name/type/database/plugin); idx for messages. */
bool pgw_slot_match_parse(int idx, struct json_object *v, struct pgw_slot_match *out, char *err,
                          size_t errlen);
/* member_slots_ttl: an integer (seconds) or "N" with a unit ms, s, min, h or d. */
bool pgw_slot_ttl_parse(struct json_object *v, int64_t *seconds, char *err, size_t errlen);

/*
 * The slots, ignore_slots and member_slots_ttl keys of the config key `o` into *sc.
 * strict (the local file): the first bad entry fails with err.  Not strict (etcd, S5):
 * a bad entry is left out and its name (when it is a valid slot name) kept from being
 * dropped, and sc->refused says why; a bad member_slots_ttl keeps base's.  Keys absent
 * from o give Patroni's defaults (no slots, 30min).
 */
bool pgw_slot_conf_parse(struct json_object *o, bool strict, struct pgw_slot_conf *sc, char *err,
                         size_t errlen);
/* Add slots/ignore_slots/member_slots_ttl to the config key object o (Patroni's shape). */
void pgw_slot_conf_to_json(const struct pgw_slot_conf *sc, struct json_object *o);
/* Do two configurations ask for different slots? */
bool pgw_slot_conf_differ(const struct pgw_slot_conf *a, const struct pgw_slot_conf *b);
bool pgw_slot_conf_has_logical(const struct pgw_slot_conf *sc);
void pgw_slot_conf_defaults(struct pgw_slot_conf *sc);

/* A slot as PostgreSQL lists it (pg_replication_slots). */
struct pgw_slot_info {
	char name[PGW_SLOT_NAME_MAX];
	int type;
	char database[PGW_SLOT_NAME_MAX];
	char plugin[PGW_SLOT_NAME_MAX];
	bool active;
	uint64_t position; /* physical: restart_lsn, logical: confirmed_flush_lsn; 0 unknown */
};

/* Does an ignore_slots entry match this slot? */
bool pgw_slot_ignored(const struct pgw_slot_conf *sc, const struct pgw_slot_info *s);

/* A member slot of a member that is gone, and since when (kept member_slots_ttl). */
struct pgw_slot_absent {
	char name[PGW_SLOT_NAME_MAX];
	int64_t since_ms;
};

#define PGW_SLOT_OPS_MAX 96

enum pgw_slot_op_kind {
	PGW_SLOT_CREATE,    /* physical (member or permanent) or logical on the primary */
	PGW_SLOT_DROP,      /* unknown, inactive, not ignored */
	PGW_SLOT_ADVANCE,   /* replica: move a permanent slot to the leader's position */
	PGW_SLOT_COPY,      /* replica: copy a permanent logical slot from the leader */
	PGW_SLOT_PUBLISH,   /* primary: publish this slot's position in the status key */
	PGW_SLOT_NO_LOGICAL /* primary: wal_level is not logical, the logical slot waits */
};

struct pgw_slot_op {
	int kind; /* enum pgw_slot_op_kind */
	struct pgw_slot_def slot;
	bool reserve;  /* CREATE physical: reserve WAL now (permanent) or at first use (member) */
	uint64_t lsn;  /* ADVANCE, PUBLISH */
	char why[128]; /* for the log */
};

/* What the node sees now. */
struct pgw_slot_view {
	bool primary;               /* the leader, running as primary; else a streaming replica */
	bool paused;                /* maintenance mode: nothing is dropped, nothing copied */
	bool use_slots;             /* postgresql.use_slots: member slots on the primary */
	bool wal_logical;           /* wal_level = logical */
	const char *self;           /* this member's name */
	const char *const *members; /* live members (keys on a lease), self included or not */
	int nmembers;
	const struct pgw_slot_info *slots; /* what PostgreSQL has */
	int nslots;
	const struct pgw_status_slot *leader_pos; /* replica: the status key's slots */
	int nleader_pos;
	int64_t now_ms;
};

/*
 * The plan for this loop (at most max ops).  absent/nabsent is the primary's memory of
 * gone members' slots (in and out; at most PGW_SLOT_ABSENT_MAX entries); it is cleared on a
 * replica.  Returns the number of ops.
 */
int pgw_slots_plan(const struct pgw_slot_conf *sc, const struct pgw_slot_view *v,
                   struct pgw_slot_absent *absent, int *nabsent, struct pgw_slot_op *ops, int max);

/* The status key's "slots" object: valid names with non-negative integer positions only
 * (the rest is left out), at most max. */
int pgw_slot_pos_parse(struct json_object *slots, struct pgw_status_slot *out, int max);

#endif
