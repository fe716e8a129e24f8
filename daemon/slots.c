/*
 * slots.c - permanent slots, ignore_slots, member_slots_ttl; see slots.h.
 */
#include "slots.h"

#include <ctype.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static bool name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* A bare library name: no '/', no '.', nothing a shell or a path could use. */
static bool plugin_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '-';
}

static bool database_char(unsigned char c)
{
	return c >= 0x20 && c != 0x7f;
}

/* 1 to 63 bytes, each one that ok() accepts. */
static bool chars_ok(const char *s, size_t len, bool (*ok)(unsigned char))
{
	if (!s || len == 0 || len >= PGW_SLOT_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!ok((unsigned char)s[i]))
			return false;
	return true;
}

bool pgw_slot_name_ok(const char *s, size_t len)
{
	return chars_ok(s, len, name_char);
}

static bool plugin_ok(const char *s, size_t len)
{
	return chars_ok(s, len, plugin_char);
}

static bool database_ok(const char *s, size_t len)
{
	return chars_ok(s, len, database_char);
}

static const char *shown(struct json_object *v)
{
	const char *s = json_object_to_json_string_ext(v, JSON_FLAGS);

	return s ? s : "?";
}

/* A string field of an entry: absent leaves out untouched; "" when absent. */
static bool str_field(struct json_object *o, const char *where, const char *k,
                      bool (*ok)(const char *, size_t), const char *what, char *out, char *err,
                      size_t errlen)
{
	struct json_object *v;

	out[0] = '\0';
	if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null))
		return true;
	if (!json_object_is_type(v, json_type_string) ||
	    !ok(json_object_get_string(v), (size_t)json_object_get_string_len(v))) {
		snprintf(err, errlen, "%s.%s: expected %s, got %.64s", where, k, what, shown(v));
		return false;
	}
	memcpy(out, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
	return true;
}

static bool type_field(struct json_object *o, const char *where, int *type, char *err,
                       size_t errlen)
{
	struct json_object *v;
	const char *s;

	if (!json_object_object_get_ex(o, "type", &v) || json_object_is_type(v, json_type_null))
		return true;
	s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
	if (strcmp(s, "physical") == 0)
		*type = PGW_SLOT_PHYSICAL;
	else if (strcmp(s, "logical") == 0)
		*type = PGW_SLOT_LOGICAL;
	else {
		snprintf(err, errlen, "%s.type: expected physical or logical, got %.64s", where,
		         shown(v));
		return false;
	}
	return true;
}

/* Fields other than type/database/plugin (and name in ignore_slots) are refused. */
static bool known_fields(struct json_object *o, const char *where, bool with_name, char *err,
                         size_t errlen)
{
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		if (strcmp(k, "type") && strcmp(k, "database") && strcmp(k, "plugin") &&
		    (!with_name || strcmp(k, "name"))) {
			snprintf(err, errlen, "%s.%.64s: unknown field (type, database, plugin%s)",
			         where, k, with_name ? ", name" : "");
			return false;
		}
	}
	return true;
}

static bool name_ok(const char *s, size_t len)
{
	return pgw_slot_name_ok(s, len);
}

bool pgw_slot_def_parse(const char *name, struct json_object *v, struct pgw_slot_def *out,
                        char *err, size_t errlen)
{
	char where[PGW_SLOT_NAME_MAX + 16];
	struct pgw_slot_def d = {.type = PGW_SLOT_PHYSICAL};

	snprintf(where, sizeof(where), "slots.%.63s", name);
	if (!pgw_slot_name_ok(name, strlen(name))) {
		snprintf(err, errlen,
		         "slots: \"%.64s\" is not a replication slot name (a-z, 0-9 and _, at "
		         "most 63 bytes)",
		         name);
		return false;
	}
	memcpy(d.name, name, strlen(name) + 1);
	/* Patroni accepts `name:` (null) and `name: 0` for a physical slot */
	if (v && json_object_is_type(v, json_type_object)) {
		if (!known_fields(v, where, false, err, errlen) ||
		    !type_field(v, where, &d.type, err, errlen) ||
		    !str_field(v, where, "database", database_ok, "a database name", d.database,
		               err, errlen) ||
		    !str_field(v, where, "plugin", plugin_ok,
		               "a plugin name (letters, digits, _ and -)", d.plugin, err, errlen))
			return false;
	} else if (v && json_object_is_type(v, json_type_array)) {
		snprintf(err, errlen, "%s: expected a map (type, database, plugin), got a list",
		         where);
		return false;
	}
	if (d.type == PGW_SLOT_LOGICAL && (!d.database[0] || !d.plugin[0])) {
		snprintf(err, errlen, "%s: a logical slot needs database and plugin", where);
		return false;
	}
	if (d.type == PGW_SLOT_PHYSICAL && (d.database[0] || d.plugin[0])) {
		snprintf(err, errlen, "%s: a physical slot has no database or plugin", where);
		return false;
	}
	*out = d;
	return true;
}

bool pgw_slot_match_parse(int idx, struct json_object *v, struct pgw_slot_match *out, char *err,
                          size_t errlen)
{
	char where[32];
	struct pgw_slot_match m = {.type = PGW_SLOT_ANY};

	snprintf(where, sizeof(where), "ignore_slots[%d]", idx);
	if (!v || !json_object_is_type(v, json_type_object)) {
		snprintf(err, errlen,
		         "%s: expected a map (name, type, database, plugin), got %.64s", where,
		         v ? shown(v) : "null");
		return false;
	}
	if (!known_fields(v, where, true, err, errlen) ||
	    !str_field(v, where, "name", name_ok, "a replication slot name", m.name, err, errlen) ||
	    !type_field(v, where, &m.type, err, errlen) ||
	    !str_field(v, where, "database", database_ok, "a database name", m.database, err,
	               errlen) ||
	    !str_field(v, where, "plugin", plugin_ok, "a plugin name", m.plugin, err, errlen))
		return false;
	if (!m.name[0] && m.type == PGW_SLOT_ANY && !m.database[0] && !m.plugin[0]) {
		snprintf(err, errlen, "%s: matches every slot: give name, type, database or plugin",
		         where);
		return false;
	}
	*out = m;
	return true;
}

bool pgw_slot_ttl_parse(struct json_object *v, int64_t *seconds, char *err, size_t errlen)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000}, {"d", 86400000}};
	const char *s, *p;
	int64_t n = 0, ms = 1000;
	int digits = 0;

	if (json_object_is_type(v, json_type_int)) {
		n = json_object_get_int64(v);
		if (n < 0 || n > 365LL * 86400)
			goto bad;
		*seconds = n;
		return true;
	}
	if (!json_object_is_type(v, json_type_string))
		goto bad;
	s = json_object_get_string(v);
	for (p = s; *p >= '0' && *p <= '9' && digits < 12; p++, digits++)
		n = n * 10 + (*p - '0');
	if (digits == 0 || digits >= 12)
		goto bad;
	while (*p == ' ')
		p++;
	if (*p) {
		size_t i;

		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strcmp(p, units[i].unit) == 0)
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			goto bad;
		ms = units[i].ms;
	}
	if (n > 365LL * 86400 * 1000 / ms)
		goto bad;
	*seconds = n * ms / 1000;
	return true;
bad:
	snprintf(err, errlen,
	         "member_slots_ttl: expected seconds or a duration like 30min (units ms, s, min, "
	         "h, d; at most a year), got %.64s",
	         shown(v));
	return false;
}

void pgw_slot_conf_defaults(struct pgw_slot_conf *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->member_slots_ttl = PGW_MEMBER_SLOTS_TTL_DEFAULT;
}

static void refuse(struct pgw_slot_conf *sc, const char *why)
{
	size_t off = strlen(sc->refused);

	if (off == 0)
		snprintf(sc->refused, sizeof(sc->refused), "%s", why);
	else if (off + 3 < sizeof(sc->refused))
		snprintf(sc->refused + off, sizeof(sc->refused) - off, "; %s", why);
}

static void keep_name(struct pgw_slot_conf *sc, const char *name)
{
	if (sc->nkeep < PGW_PERM_SLOTS_MAX && pgw_slot_name_ok(name, strlen(name)))
		memcpy(sc->keep[sc->nkeep++], name, strlen(name) + 1);
}

/* A list that could not be read whole: while it is wrong, no slot is created or dropped. */
static void ignore_all(struct pgw_slot_conf *sc)
{
	sc->ignore[0] = (struct pgw_slot_match){.type = PGW_SLOT_PHYSICAL};
	sc->ignore[1] = (struct pgw_slot_match){.type = PGW_SLOT_LOGICAL};
	sc->nignore = 2;
}

/* A whole list is unreadable: strict, an error; else nothing is created or dropped. */
static bool unreadable(struct pgw_slot_conf *sc, bool strict, const char *why, char *err,
                       size_t errlen)
{
	if (strict) {
		snprintf(err, errlen, "%s", why);
		return false;
	}
	refuse(sc, why);
	ignore_all(sc);
	return true;
}

static bool parse_perm(struct json_object *slots, bool strict, struct pgw_slot_conf *sc, char *err,
                       size_t errlen)
{
	char why[256];

	if (!slots || json_object_is_type(slots, json_type_null))
		return true;
	if (!json_object_is_type(slots, json_type_object)) {
		snprintf(why, sizeof(why), "slots: expected a map of slot names, got %.64s",
		         shown(slots));
		goto bad;
	}
	json_object_object_foreach(slots, name, v)
	{
		if (sc->nperm >= PGW_PERM_SLOTS_MAX) {
			snprintf(why, sizeof(why), "slots: more than %d permanent slots",
			         PGW_PERM_SLOTS_MAX);
			if (strict)
				goto bad;
			refuse(sc, why);
			keep_name(sc, name);
			continue;
		}
		if (!pgw_slot_def_parse(name, v, &sc->perm[sc->nperm], why, sizeof(why))) {
			if (strict)
				goto bad;
			refuse(sc, why);
			keep_name(sc, name);
			continue;
		}
		sc->nperm++;
	}
	return true;
bad:
	return unreadable(sc, strict, why, err, errlen);
}

static bool parse_ignore(struct json_object *ign, bool strict, struct pgw_slot_conf *sc, char *err,
                         size_t errlen)
{
	char why[256];
	size_t n;

	if (!ign || json_object_is_type(ign, json_type_null))
		return true;
	if (!json_object_is_type(ign, json_type_array)) {
		snprintf(why, sizeof(why), "ignore_slots: expected a list of maps, got %.64s",
		         shown(ign));
		goto bad;
	}
	n = json_object_array_length(ign);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(ign, i);

		if (sc->nignore >= PGW_IGNORE_MAX) {
			snprintf(why, sizeof(why), "ignore_slots: more than %d entries",
			         PGW_IGNORE_MAX);
			goto bad;
		}
		if (pgw_slot_match_parse((int)i, e, &sc->ignore[sc->nignore], why, sizeof(why))) {
			sc->nignore++;
			continue;
		}
		if (strict)
			goto bad;
		refuse(sc, why);
		/* an entry that named a slot still protects that name */
		if (e && json_object_is_type(e, json_type_object)) {
			struct json_object *nm;

			if (json_object_object_get_ex(e, "name", &nm) &&
			    json_object_is_type(nm, json_type_string))
				keep_name(sc, json_object_get_string(nm));
		}
	}
	return true;
bad:
	return unreadable(sc, strict, why, err, errlen);
}

bool pgw_slot_conf_parse(struct json_object *o, bool strict, struct pgw_slot_conf *sc, char *err,
                         size_t errlen)
{
	struct json_object *v = NULL;
	int64_t ttl = sc->member_slots_ttl;
	char why[256];

	sc->nperm = sc->nignore = sc->nkeep = 0;
	sc->refused[0] = '\0';
	if (!json_object_object_get_ex(o, "slots", &v))
		v = NULL;
	if (!parse_perm(v, strict, sc, err, errlen))
		return false;
	if (!json_object_object_get_ex(o, "ignore_slots", &v))
		v = NULL;
	if (!parse_ignore(v, strict, sc, err, errlen))
		return false;
	if (json_object_object_get_ex(o, "member_slots_ttl", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!pgw_slot_ttl_parse(v, &ttl, why, sizeof(why))) {
			if (strict) {
				snprintf(err, errlen, "%s", why);
				return false;
			}
			refuse(sc, why);
		}
	} else {
		ttl = PGW_MEMBER_SLOTS_TTL_DEFAULT;
	}
	sc->member_slots_ttl = ttl;
	return true;
}

void pgw_slot_conf_to_json(const struct pgw_slot_conf *sc, struct json_object *o)
{
	if (sc->nperm > 0) {
		struct json_object *slots = json_object_new_object();

		for (int i = 0; i < sc->nperm; i++) {
			const struct pgw_slot_def *d = &sc->perm[i];
			struct json_object *e = json_object_new_object();

			json_object_object_add(e, "type",
			                       json_object_new_string(d->type == PGW_SLOT_LOGICAL
			                                                  ? "logical"
			                                                  : "physical"));
			if (d->type == PGW_SLOT_LOGICAL) {
				json_object_object_add(e, "database",
				                       json_object_new_string(d->database));
				json_object_object_add(e, "plugin",
				                       json_object_new_string(d->plugin));
			}
			json_object_object_add(slots, d->name, e);
		}
		json_object_object_add(o, "slots", slots);
	}
	if (sc->nignore > 0) {
		struct json_object *ign = json_object_new_array();

		for (int i = 0; i < sc->nignore; i++) {
			const struct pgw_slot_match *m = &sc->ignore[i];
			struct json_object *e = json_object_new_object();

			if (m->name[0])
				json_object_object_add(e, "name", json_object_new_string(m->name));
			if (m->type != PGW_SLOT_ANY)
				json_object_object_add(
				    e, "type",
				    json_object_new_string(
				        m->type == PGW_SLOT_LOGICAL ? "logical" : "physical"));
			if (m->database[0])
				json_object_object_add(e, "database",
				                       json_object_new_string(m->database));
			if (m->plugin[0])
				json_object_object_add(e, "plugin",
				                       json_object_new_string(m->plugin));
			json_object_array_add(ign, e);
		}
		json_object_object_add(o, "ignore_slots", ign);
	}
	if (sc->member_slots_ttl != PGW_MEMBER_SLOTS_TTL_DEFAULT)
		json_object_object_add(o, "member_slots_ttl",
		                       json_object_new_int64(sc->member_slots_ttl));
}

bool pgw_slot_conf_differ(const struct pgw_slot_conf *a, const struct pgw_slot_conf *b)
{
	return a->nperm != b->nperm || a->nignore != b->nignore || a->nkeep != b->nkeep ||
	       a->member_slots_ttl != b->member_slots_ttl ||
	       memcmp(a->perm, b->perm, (size_t)a->nperm * sizeof(a->perm[0])) != 0 ||
	       memcmp(a->ignore, b->ignore, (size_t)a->nignore * sizeof(a->ignore[0])) != 0 ||
	       memcmp(a->keep, b->keep, (size_t)a->nkeep * sizeof(a->keep[0])) != 0;
}

bool pgw_slot_conf_has_logical(const struct pgw_slot_conf *sc)
{
	for (int i = 0; i < sc->nperm; i++)
		if (sc->perm[i].type == PGW_SLOT_LOGICAL)
			return true;
	return false;
}

static bool match_one(const struct pgw_slot_match *m, const char *name, int type,
                      const char *database, const char *plugin)
{
	return (!m->name[0] || strcmp(m->name, name) == 0) &&
	       (m->type == PGW_SLOT_ANY || m->type == type) &&
	       (!m->database[0] || strcmp(m->database, database) == 0) &&
	       (!m->plugin[0] || strcmp(m->plugin, plugin) == 0);
}

bool pgw_slot_ignored(const struct pgw_slot_conf *sc, const struct pgw_slot_info *s)
{
	for (int i = 0; i < sc->nignore; i++)
		if (match_one(&sc->ignore[i], s->name, s->type, s->database, s->plugin))
			return true;
	for (int i = 0; i < sc->nkeep; i++)
		if (strcmp(sc->keep[i], s->name) == 0)
			return true;
	return false;
}

static bool def_ignored(const struct pgw_slot_conf *sc, const struct pgw_slot_def *d)
{
	struct pgw_slot_info s = {.type = d->type};

	memcpy(s.name, d->name, sizeof(s.name));
	memcpy(s.database, d->database, sizeof(s.database));
	memcpy(s.plugin, d->plugin, sizeof(s.plugin));
	return pgw_slot_ignored(sc, &s);
}

/* ---- the plan ---------------------------------------------------------------------- */

static const struct pgw_slot_info *find_slot(const struct pgw_slot_view *v, const char *name)
{
	for (int i = 0; i < v->nslots; i++)
		if (strcmp(v->slots[i].name, name) == 0)
			return &v->slots[i];
	return NULL;
}

static bool is_member_slot(const struct pgw_slot_view *v, const char *name)
{
	if (!v->primary || !v->use_slots)
		return false;
	for (int i = 0; i < v->nmembers; i++)
		if (strcmp(v->members[i], name) == 0 && strcmp(v->members[i], v->self) != 0)
			return true;
	return false;
}

static const struct pgw_slot_def *find_perm(const struct pgw_slot_conf *sc, const char *name)
{
	for (int i = 0; i < sc->nperm; i++)
		if (strcmp(sc->perm[i].name, name) == 0)
			return &sc->perm[i];
	return NULL;
}

static bool same_def(const struct pgw_slot_def *d, const struct pgw_slot_info *s)
{
	return d->type == s->type &&
	       (d->type == PGW_SLOT_PHYSICAL ||
	        (strcmp(d->database, s->database) == 0 && strcmp(d->plugin, s->plugin) == 0));
}

static const struct pgw_status_slot *leader_pos(const struct pgw_slot_view *v, const char *name)
{
	for (int i = 0; i < v->nleader_pos; i++)
		if (strcmp(v->leader_pos[i].name, name) == 0)
			return &v->leader_pos[i];
	return NULL;
}

struct plan {
	struct pgw_slot_op *ops;
	int n, max;
};

static struct pgw_slot_op *add_op(struct plan *p, int kind, const char *name, const char *why)
{
	struct pgw_slot_op *op;

	if (p->n >= p->max)
		return NULL;
	op = &p->ops[p->n++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	snprintf(op->slot.name, sizeof(op->slot.name), "%s", name);
	snprintf(op->why, sizeof(op->why), "%s", why);
	return op;
}

static void plan_perm_primary(const struct pgw_slot_conf *sc, const struct pgw_slot_view *v,
                              struct plan *p)
{
	for (int i = 0; i < sc->nperm; i++) {
		const struct pgw_slot_def *d = &sc->perm[i];
		const struct pgw_slot_info *s = find_slot(v, d->name);
		struct pgw_slot_op *op;

		if (def_ignored(sc, d) || is_member_slot(v, d->name))
			continue; /* ignore_slots wins; a member's slot is the member's */
		if (s && !same_def(d, s)) {
			if (!s->active && !v->paused)
				add_op(p, PGW_SLOT_DROP, s->name,
				       "its type, database or plugin differ from slots");
			continue; /* recreated at the next loop */
		}
		if (s) {
			if (s->position && (op = add_op(p, PGW_SLOT_PUBLISH, d->name, ""))) {
				op->slot = *d;
				op->lsn = s->position;
			}
			continue;
		}
		if (d->type == PGW_SLOT_LOGICAL && !v->wal_logical) {
			add_op(p, PGW_SLOT_NO_LOGICAL, d->name,
			       "wal_level is not logical yet (a restart applies it)");
			continue;
		}
		op = add_op(p, PGW_SLOT_CREATE, d->name, "permanent slot");
		if (op) {
			op->slot = *d;
			op->reserve = true;
		}
	}
}

static void plan_members(const struct pgw_slot_conf *sc, const struct pgw_slot_view *v,
                         struct plan *p)
{
	(void)sc;
	for (int i = 0; v->use_slots && i < v->nmembers; i++) {
		const char *m = v->members[i];
		struct pgw_slot_op *op;
		bool dup = false;

		for (int j = 0; j < i; j++)
			dup = dup || strcmp(v->members[j], m) == 0;
		if (!m[0] || strcmp(m, v->self) == 0 || dup || find_slot(v, m))
			continue;
		op = add_op(p, PGW_SLOT_CREATE, m, "member slot");
		if (op) /* WAL reserved from the member's first connection */
			op->slot.type = PGW_SLOT_PHYSICAL;
	}
}

static int absent_index(const struct pgw_slot_absent *absent, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(absent[i].name, name) == 0)
			return i;
	return -1;
}

/* Slots nobody asked for: dropped (inactive, not ignored, not paused), a primary's
 * physical ones only member_slots_ttl after they were first seen unwanted. */
static void plan_unknown(const struct pgw_slot_conf *sc, const struct pgw_slot_view *v,
                         struct pgw_slot_absent *absent, int *nabsent, struct plan *p)
{
	struct pgw_slot_absent kept[PGW_SLOT_ABSENT_MAX] = {0};
	int nkept = 0;

	for (int i = 0; i < v->nslots; i++) {
		const struct pgw_slot_info *s = &v->slots[i];
		int a = absent_index(absent, *nabsent, s->name);
		int64_t since = a >= 0 ? absent[a].since_ms : v->now_ms;

		if (find_perm(sc, s->name) || is_member_slot(v, s->name) || pgw_slot_ignored(sc, s))
			continue;
		if (v->primary && s->type == PGW_SLOT_PHYSICAL && sc->member_slots_ttl > 0) {
			if (v->now_ms - since < sc->member_slots_ttl * 1000) {
				if (nkept < PGW_SLOT_ABSENT_MAX) {
					kept[nkept].since_ms = since;
					memcpy(kept[nkept].name, s->name, sizeof(kept[0].name));
					nkept++;
				}
				continue;
			}
		}
		if (s->active || v->paused)
			continue;
		add_op(p, PGW_SLOT_DROP, s->name,
		       v->primary && s->type == PGW_SLOT_PHYSICAL
		           ? "no member, permanent slot or ignore_slots entry names it (kept "
		             "member_slots_ttl)"
		           : "no permanent slot or ignore_slots entry names it");
	}
	memcpy(absent, kept, (size_t)nkept * sizeof(kept[0]));
	*nabsent = nkept;
}

static void plan_perm_replica(const struct pgw_slot_conf *sc, const struct pgw_slot_view *v,
                              struct plan *p)
{
	for (int i = 0; i < sc->nperm; i++) {
		const struct pgw_slot_def *d = &sc->perm[i];
		const struct pgw_slot_info *s = find_slot(v, d->name);
		const struct pgw_status_slot *lp = leader_pos(v, d->name);
		struct pgw_slot_op *op;

		if (def_ignored(sc, d))
			continue;
		if (s && !same_def(d, s)) {
			if (!s->active && !v->paused)
				add_op(p, PGW_SLOT_DROP, s->name,
				       "its type, database or plugin differ from slots");
			continue;
		}
		if (!lp)
			continue; /* the leader has not published it (yet): nothing to follow */
		if (!s) {
			if (d->type == PGW_SLOT_LOGICAL && v->paused)
				continue; /* a copy restarts PostgreSQL: not in maintenance mode */
			op =
			    add_op(p, d->type == PGW_SLOT_LOGICAL ? PGW_SLOT_COPY : PGW_SLOT_CREATE,
			           d->name,
			           d->type == PGW_SLOT_LOGICAL
			               ? "permanent logical slot: copied from the leader"
			               : "permanent slot, kept on replicas for a failover");
			if (op) {
				op->slot = *d;
				op->reserve = true;
			}
			continue;
		}
		if (lp->lsn > s->position && (op = add_op(p, PGW_SLOT_ADVANCE, d->name, ""))) {
			op->slot = *d;
			op->lsn = lp->lsn;
		}
	}
}

int pgw_slots_plan(const struct pgw_slot_conf *sc, const struct pgw_slot_view *v,
                   struct pgw_slot_absent *absent, int *nabsent, struct pgw_slot_op *ops, int max)
{
	struct plan p = {.ops = ops, .max = max};

	if (!v->use_slots) {
		*nabsent = 0;
		return 0; /* postgresql.use_slots false: pgwarden leaves slots alone */
	}
	if (v->primary) {
		plan_members(sc, v, &p);
		plan_perm_primary(sc, v, &p);
	} else {
		*nabsent = 0;
		plan_perm_replica(sc, v, &p);
	}
	plan_unknown(sc, v, absent, nabsent, &p);
	return p.n;
}

int pgw_slot_pos_parse(struct json_object *slots, struct pgw_status_slot *out, int max)
{
	int n = 0;

	if (!slots || !json_object_is_type(slots, json_type_object))
		return 0;
	json_object_object_foreach(slots, name, v)
	{
		if (n >= max)
			break;
		if (!pgw_slot_name_ok(name, strlen(name)) ||
		    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
			continue;
		memcpy(out[n].name, name, strlen(name) + 1);
		out[n].lsn = (uint64_t)json_object_get_int64(v);
		n++;
	}
	return n;
}
