/*
 * ctl_view.c - what pgwardenctl shows: the member extras read from the raw
 * member JSON (tags, pending_restart, pause), the replication lag, and the
 * list / topology / history / show-config outputs as patronictl prints them
 * (table, JSON or YAML); see ctl.h.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the view --------------------------------------------------------------------- */

static void render_tags(struct pgw_ctl_member *cm, struct json_object *tags)
{
	struct pgw_sb sb = {0};
	size_t n;
	const char **keys = pgw_json_keys(tags, false, &n);
	char *text;

	for (size_t i = 0; keys && i < n; i++) {
		const char *k = keys[i];
		struct json_object *val = json_object_object_get(tags, k);

		if (sb.len)
			pgw_sb_add(&sb, ", ");
		pgw_sb_addf(&sb, "%s: ", k);
		if (json_object_is_type(val, json_type_string))
			pgw_sb_add(&sb, json_object_get_string(val));
		else
			pgw_sb_add(&sb,
			           json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN));
	}
	free(keys);
	text = pgw_sb_take(&sb);
	snprintf(cm->tags, sizeof(cm->tags), "%s", text ? text : "");
	free(text);
	snprintf(cm->tags_json, sizeof(cm->tags_json), "%s",
	         json_object_to_json_string_ext(tags, JSON_C_TO_STRING_PLAIN |
	                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
}

static bool flag(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

/* The member's "watchdog" object as one word for the list ("" when off or absent). */
static void render_watchdog(struct pgw_ctl_member *cm, struct json_object *o)
{
	struct json_object *wd, *v;
	const char *mode;

	if (!json_object_object_get_ex(o, "watchdog", &wd) ||
	    !json_object_is_type(wd, json_type_object) ||
	    !json_object_object_get_ex(wd, "mode", &v) || !json_object_is_type(v, json_type_string))
		return;
	mode = json_object_get_string(v);
	if (strcmp(mode, "off") == 0)
		return;
	if (flag(wd, "failed"))
		snprintf(cm->watchdog, sizeof(cm->watchdog), "%s",
		         strcmp(mode, "required") == 0 ? "FAILED (required)" : "unavailable");
	else if (flag(wd, "armed") && json_object_object_get_ex(wd, "timeout", &v))
		snprintf(cm->watchdog, sizeof(cm->watchdog), "armed %ds", json_object_get_int(v));
	else
		snprintf(cm->watchdog, sizeof(cm->watchdog), "%s",
		         flag(wd, "armed") ? "armed" : "ready");
}

static void member_extras(struct pgw_ctl_member *cm, const char *json)
{
	struct json_object *o = json_tokener_parse(json), *tags;

	if (o && json_object_is_type(o, json_type_object)) {
		cm->pending_restart = flag(o, "pending_restart");
		cm->pause = flag(o, "pause");
		render_watchdog(cm, o);
		if (json_object_object_get_ex(o, "tags", &tags) &&
		    json_object_is_type(tags, json_type_object) &&
		    json_object_object_length(tags) > 0)
			render_tags(cm, tags);
	}
	json_object_put(o);
}

static const char *raw_member(const struct pgw_etcd_range *r, const char *prefix, const char *name)
{
	size_t plen = strlen(prefix);

	for (size_t i = 0; r && i < r->n; i++) {
		const char *k = r->kvs[i].key;

		if (strncmp(k, prefix, plen) == 0 && strncmp(k + plen, "members/", 8) == 0 &&
		    strcmp(k + plen + 8, name) == 0)
			return r->kvs[i].value;
	}
	return NULL;
}

void pgw_ctl_view_build(struct pgw_ctl_view *v, const struct pgw_cluster *c,
                        const struct pgw_etcd_range *r, const char *prefix, const char *scope)
{
	memset(v, 0, sizeof(*v));
	v->c = c;
	v->scope = scope;
	for (int i = 0; i < c->nmembers; i++) {
		struct pgw_ctl_member *cm = &v->members[v->n++];
		const char *raw = raw_member(r, prefix, c->members[i].name);

		cm->m = &c->members[i];
		if (raw)
			member_extras(cm, raw);
	}
}

/* ---- lag -------------------------------------------------------------------------- */

int64_t pgw_ctl_lag_bytes(const struct pgw_cluster *c, const struct pgw_member *m)
{
	return pgw_cluster_lag(c, m);
}

void pgw_ctl_format_lag(int64_t lag_bytes, char *buf, size_t len)
{
	if (lag_bytes < 0)
		snprintf(buf, len, "unknown");
	else
		snprintf(buf, len, "%.1f", (double)lag_bytes / 1048576.0);
}

/* ---- list and topology ------------------------------------------------------------ */

enum {
	COL_MEMBER,
	COL_HOST,
	COL_ROLE,
	COL_STATE,
	COL_TL,
	COL_LAG,
	COL_PENDING,
	COL_WATCHDOG,
	COL_TAGS,
	NCOL
};

static const char *const list_headers[NCOL] = {
    "Member", "Host", "Role", "State", "TL", "Lag in MB", "Pending restart", "Watchdog", "Tags"};

struct list_row {
	char cells[NCOL][600];
	bool has_tl, is_leader;
	int64_t lag;
};

static bool is_leader(const struct pgw_ctl_view *v, const struct pgw_member *m)
{
	return v->c->has_leader && strcmp(v->c->leader, m->name) == 0;
}

static void fill_row(const struct pgw_ctl_view *v, const struct pgw_ctl_member *cm,
                     const char *prefix, struct list_row *r)
{
	const struct pgw_member *m = cm->m;
	bool v6 = strchr(m->conn_host, ':') != NULL;

	memset(r, 0, sizeof(*r));
	r->is_leader = is_leader(v, m);
	snprintf(r->cells[COL_MEMBER], sizeof(r->cells[0]), "%s%s", prefix, m->name);
	snprintf(r->cells[COL_HOST], sizeof(r->cells[0]), "%s%s%s:%d", v6 ? "[" : "", m->conn_host,
	         v6 ? "]" : "", m->conn_port);
	snprintf(r->cells[COL_ROLE], sizeof(r->cells[0]), "%s",
	         r->is_leader && strcmp(m->role, "standby_leader") == 0 ? "Standby Leader"
	         : r->is_leader                                         ? "Leader"
	         : pgw_sync_standby_of(v->c, m->name)                   ? "Sync Standby"
	                                                                : "Replica");
	snprintf(r->cells[COL_STATE], sizeof(r->cells[0]), "%s", m->state);
	r->has_tl = m->timeline > 0;
	if (r->has_tl)
		snprintf(r->cells[COL_TL], sizeof(r->cells[0]), "%d", m->timeline);
	r->lag = r->is_leader ? -1 : pgw_ctl_lag_bytes(v->c, m);
	if (!r->is_leader)
		pgw_ctl_format_lag(r->lag, r->cells[COL_LAG], sizeof(r->cells[0]));
	snprintf(r->cells[COL_PENDING], sizeof(r->cells[0]), "%s", cm->pending_restart ? "*" : "");
	snprintf(r->cells[COL_WATCHDOG], sizeof(r->cells[0]), "%s", cm->watchdog);
	snprintf(r->cells[COL_TAGS], sizeof(r->cells[0]), "%s", cm->tags);
}

/* The member order: by name; for the topology, the leader first and the rest under it. */
static int ordered_rows(const struct pgw_ctl_view *v, bool topology, struct list_row *rows)
{
	int n = 0;
	bool under;

	if (topology) {
		for (int i = 0; i < v->n; i++)
			if (is_leader(v, v->members[i].m))
				fill_row(v, &v->members[i], "", &rows[n++]);
	}
	under = n > 0;
	for (int i = 0; i < v->n; i++) {
		if (topology && is_leader(v, v->members[i].m))
			continue;
		fill_row(v, &v->members[i], under ? "+ " : "", &rows[n++]);
	}
	return n;
}

static void columns_used(const struct pgw_ctl_view *v, bool *used)
{
	for (int c = 0; c < NCOL; c++)
		used[c] = c < COL_PENDING;
	for (int i = 0; i < v->n; i++) {
		used[COL_PENDING] |= v->members[i].pending_restart;
		used[COL_WATCHDOG] |= v->members[i].watchdog[0] != '\0';
		used[COL_TAGS] |= v->members[i].tags[0] != '\0';
	}
}

static char *list_table(const struct pgw_ctl_view *v, const struct list_row *rows, int n)
{
	static const bool right_all[NCOL] = {[COL_TL] = true, [COL_LAG] = true};
	const char *headers[NCOL], *cells[NCOL];
	bool used[NCOL], right[NCOL];
	size_t nc = 0;
	struct pgw_ctl_table t;
	char title[256], *text;
	struct pgw_sb sb = {0};

	columns_used(v, used);
	for (int c = 0; c < NCOL; c++)
		if (used[c]) {
			right[nc] = right_all[c];
			headers[nc++] = list_headers[c];
		}
	pgw_table_init(&t, nc, headers, right);
	for (int i = 0; i < n; i++) {
		nc = 0;
		for (int c = 0; c < NCOL; c++)
			if (used[c])
				cells[nc++] = rows[i].cells[c];
		pgw_table_row(&t, cells);
	}
	snprintf(title, sizeof(title), " Cluster: %s (%s) ", v->scope,
	         v->c->sysid[0] ? v->c->sysid : "uninitialized");
	text = pgw_table_render(&t, title);
	pgw_table_free(&t);
	if (!text)
		return NULL;
	pgw_sb_add(&sb, text);
	free(text);
	if (v->c->paused)
		pgw_sb_add(&sb, " Maintenance mode: on\n");
	for (int i = 0; i < v->n; i++)
		if (v->members[i].m->fence_failure[0])
			pgw_sb_addf(&sb, " Fencing: %s could not fence %s\n", v->members[i].m->name,
			            v->members[i].m->fence_failure);
	if (!v->c->has_leader && v->c->last_leader.present && !v->c->last_leader.released &&
	    !v->c->last_leader.fenced_by[0] && v->c->last_leader.member[0])
		pgw_sb_addf(&sb, " No leader: %s lost its key without releasing it\n",
		            v->c->last_leader.member);
	for (int i = 0; i < v->n; i++)
		if (!v->c->has_leader && v->members[i].m->failover_blocked[0])
			pgw_sb_addf(&sb, " Not promoting: %s: %s\n", v->members[i].m->name,
			            v->members[i].m->failover_blocked);
	return pgw_sb_take(&sb);
}

static struct json_object *row_object(const struct pgw_ctl_view *v, const struct list_row *r,
                                      const struct pgw_ctl_member *cm)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "Cluster", json_object_new_string(v->scope));
	json_object_object_add(o, "Member", json_object_new_string(cm->m->name));
	json_object_object_add(o, "Host", json_object_new_string(r->cells[COL_HOST]));
	json_object_object_add(o, "Role", json_object_new_string(r->cells[COL_ROLE]));
	json_object_object_add(o, "State", json_object_new_string(r->cells[COL_STATE]));
	if (r->has_tl)
		json_object_object_add(o, "TL", json_object_new_int(cm->m->timeline));
	if (!r->is_leader && r->lag >= 0)
		json_object_object_add(
		    o, "Lag in MB",
		    json_object_new_double_s((double)r->lag / 1048576.0, r->cells[COL_LAG]));
	else if (!r->is_leader)
		json_object_object_add(o, "Lag in MB", json_object_new_string("unknown"));
	if (cm->pending_restart)
		json_object_object_add(o, "Pending restart", json_object_new_string("*"));
	if (cm->watchdog[0])
		json_object_object_add(o, "Watchdog", json_object_new_string(cm->watchdog));
	if (cm->tags_json[0])
		json_object_object_add(o, "Tags", json_tokener_parse(cm->tags_json));
	return o;
}

static const struct pgw_ctl_member *find_cm(const struct pgw_ctl_view *v, const char *cell)
{
	const char *name = strncmp(cell, "+ ", 2) == 0 ? cell + 2 : cell;

	for (int i = 0; i < v->n; i++)
		if (strcmp(v->members[i].m->name, name) == 0)
			return &v->members[i];
	return NULL;
}

static char *list_structured(const struct pgw_ctl_view *v, const struct list_row *rows, int n,
                             enum pgw_ctl_fmt fmt)
{
	struct json_object *arr = json_object_new_array();
	char *out;

	for (int i = 0; i < n; i++) {
		const struct pgw_ctl_member *cm = find_cm(v, rows[i].cells[COL_MEMBER]);

		if (cm)
			json_object_array_add(arr, row_object(v, &rows[i], cm));
	}
	if (fmt == PGW_FMT_YAML) {
		out = json_object_array_length(arr) ? pgw_yaml_dump(arr, false) : strdup("[]\n");
	} else {
		const char *s = json_object_to_json_string_ext(
		    arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		size_t len = strlen(s);

		out = malloc(len + 2);
		if (out)
			snprintf(out, len + 2, "%s\n", s);
	}
	json_object_put(arr);
	return out;
}

char *pgw_ctl_render_list(const struct pgw_ctl_view *v, enum pgw_ctl_fmt fmt, bool topology)
{
	struct list_row *rows = calloc(PGW_MAX_MEMBERS, sizeof(*rows));
	char *out;
	int n;

	if (!rows)
		return NULL;
	n = ordered_rows(v, topology, rows);
	if (fmt == PGW_FMT_TABLE)
		out = list_table(v, rows, n);
	else
		out = list_structured(v, rows, n, fmt);
	free(rows);
	return out;
}

/* ---- history ---------------------------------------------------------------------- */

static const char *const hist_headers[5] = {"TL", "LSN", "Reason", "Timestamp", "New Leader"};

static const char *item_text(struct json_object *it)
{
	if (!it)
		return "";
	if (json_object_is_type(it, json_type_string))
		return json_object_get_string(it);
	return json_object_to_json_string_ext(it, JSON_C_TO_STRING_PLAIN);
}

static char *history_table(struct json_object *arr)
{
	static const bool right[5] = {true, true, false, false, false};
	struct pgw_ctl_table t;
	char *out;

	pgw_table_init(&t, 5, hist_headers, right);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *line = json_object_array_get_idx(arr, i);
		const char *cells[5];

		if (!json_object_is_type(line, json_type_array))
			continue;
		for (size_t k = 0; k < 5; k++)
			cells[k] = item_text(k < json_object_array_length(line)
			                         ? json_object_array_get_idx(line, k)
			                         : NULL);
		pgw_table_row(&t, cells);
	}
	out = pgw_table_render(&t, NULL);
	pgw_table_free(&t);
	return out;
}

static char *history_structured(struct json_object *arr, enum pgw_ctl_fmt fmt)
{
	struct json_object *out_arr = json_object_new_array();
	char *out;

	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *line = json_object_array_get_idx(arr, i), *o;

		if (!json_object_is_type(line, json_type_array))
			continue;
		o = json_object_new_object();
		for (size_t k = 0; k < 5 && k < json_object_array_length(line); k++)
			json_object_object_add(o, hist_headers[k],
			                       json_object_get(json_object_array_get_idx(line, k)));
		json_object_array_add(out_arr, o);
	}
	if (fmt == PGW_FMT_YAML && json_object_array_length(out_arr))
		out = pgw_yaml_dump(out_arr, false);
	else if (fmt == PGW_FMT_YAML)
		out = strdup("[]\n");
	else {
		struct pgw_sb sb = {0};

		pgw_sb_add(&sb,
		           json_object_to_json_string_ext(
		               out_arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		pgw_sb_add(&sb, "\n");
		out = pgw_sb_take(&sb);
	}
	json_object_put(out_arr);
	return out;
}

char *pgw_ctl_render_history(const char *history_json, enum pgw_ctl_fmt fmt)
{
	struct json_object *arr = history_json ? json_tokener_parse(history_json) : NULL;
	char *out;

	if (!arr || !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		arr = json_object_new_array();
	}
	out = fmt == PGW_FMT_TABLE ? history_table(arr) : history_structured(arr, fmt);
	json_object_put(arr);
	return out;
}

/* ---- show-config ------------------------------------------------------------------ */

char *pgw_ctl_render_config(const char *config_json, enum pgw_ctl_fmt fmt, char *err, size_t errlen)
{
	struct json_object *o = config_json ? json_tokener_parse(config_json) : NULL;
	struct pgw_sb sb = {0};

	if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "the config key is not a JSON object: %.200s",
		         config_json ? config_json : "(absent)");
		json_object_put(o);
		return NULL;
	}
	if (fmt == PGW_FMT_JSON) {
		pgw_sb_add(&sb, json_object_to_json_string_ext(
		                    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
		                           JSON_C_TO_STRING_NOSLASHESCAPE));
		pgw_sb_add(&sb, "\n");
	} else if (json_object_object_length(o) == 0) {
		pgw_sb_add(&sb, "{}\n");
	} else {
		char *y = pgw_yaml_dump(o, true);

		if (y)
			pgw_sb_add(&sb, y);
		else
			sb.oom = true;
		free(y);
	}
	json_object_put(o);
	return pgw_sb_take(&sb);
}
