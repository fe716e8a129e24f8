/*
 * cluster_json.c - the bodies of GET /cluster and GET /history; see cluster_json.h.
 *
 * Every string of struct pgw_cluster is a fixed-size array; they are read with
 * strnlen() so that a hand-built value without its NUL stays bounded.
 */
#include "cluster_json.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* A fixed-size field that may lack its NUL; nothing added when empty. */
static void add_str(json_object *o, const char *key, const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n > 0)
		json_object_object_add(o, key, json_object_new_string_len(s, (int)n));
}

#define ADD_FIELD(o, key, arr) add_str((o), (key), (arr), sizeof(arr))

static char *to_string(json_object *o)
{
	char *out = o ? strdup(json_object_to_json_string_ext(o, JSON_FLAGS)) : NULL;

	json_object_put(o);
	return out;
}

json_object *pgw_json_parse_whole(const char *text)
{
	size_t len = text ? strlen(text) : 0;
	struct json_tokener *tok;
	json_object *o;
	size_t end;

	if (text == NULL || len > INT32_MAX || (tok = json_tokener_new()) == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, text, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (json_tokener_get_error(tok) != json_tokener_success)
		o = NULL; /* parse_ex returned NULL: an error or an incomplete value */
	json_tokener_free(tok);
	while (o && end < len && strchr(" \t\r\n", text[end]))
		end++;
	if (o && end < len) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

static bool same_name(const char *a, const char *b)
{
	return strncmp(a, b, PGW_NAME_MAX) == 0;
}

static json_object *json_lag(int64_t optime, int64_t xlog)
{
	if (optime < 0 || xlog < 0)
		return json_object_new_string("unknown");
	return json_object_new_int64(optime > xlog ? optime - xlog : 0);
}

/* The tags pgw_member keeps, as the member wrote them; NULL when none. */
static json_object *json_member_tags(const struct pgw_member *m)
{
	json_object *t = json_object_new_object();

	if (m->nofailover)
		json_object_object_add(t, "nofailover", json_object_new_boolean(1));
	if (m->noloadbalance)
		json_object_object_add(t, "noloadbalance", json_object_new_boolean(1));
	if (m->failover_priority != 1)
		json_object_object_add(t, "failover_priority",
		                       json_object_new_int(m->failover_priority));
	ADD_FIELD(t, "replicatefrom", m->replicatefrom);
	if (m->nostream)
		json_object_object_add(t, "nostream", json_object_new_boolean(1));
	if (json_object_object_length(t) > 0)
		return t;
	json_object_put(t);
	return NULL;
}

static json_object *json_member(const struct pgw_member *m, bool is_leader, bool sync,
                                int64_t optime)
{
	json_object *o = json_object_new_object();
	json_object *tags = json_member_tags(m);

	ADD_FIELD(o, "name", m->name);
	json_object_object_add(
	    o, "role",
	    json_object_new_string(is_leader && strcmp(m->role, "standby_leader") == 0
	                               ? "standby_leader"
	                           : is_leader ? "leader"
	                           : sync      ? "sync_standby"
	                                       : "replica"));
	json_object_object_add(
	    o, "state",
	    json_object_new_string_len(m->state, (int)strnlen(m->state, sizeof(m->state))));
	ADD_FIELD(o, "api_url", m->api_url);
	ADD_FIELD(o, "host", m->conn_host);
	if (strnlen(m->conn_host, sizeof(m->conn_host)) > 0 && m->conn_port > 0)
		json_object_object_add(o, "port", json_object_new_int(m->conn_port));
	if (m->timeline > 0)
		json_object_object_add(o, "timeline", json_object_new_int(m->timeline));
	if (!is_leader)
		json_object_object_add(o, "lag", json_lag(optime, m->xlog_location));
	if (tags)
		json_object_object_add(o, "tags", tags);
	if (m->fence_failure[0])
		json_object_object_add(o, "fencing_failed",
		                       json_object_new_string(m->fence_failure));
	if (m->failover_blocked[0])
		json_object_object_add(o, "failover_blocked",
		                       json_object_new_string(m->failover_blocked));
	return o;
}

static int by_name(const void *a, const void *b)
{
	const struct pgw_member *ma = *(const struct pgw_member *const *)a;
	const struct pgw_member *mb = *(const struct pgw_member *const *)b;

	return strncmp(ma->name, mb->name, sizeof(ma->name));
}

static json_object *json_members(const struct pgw_cluster *c)
{
	const struct pgw_member *sorted[PGW_MAX_MEMBERS] = {NULL};
	int64_t optime = pgw_cluster_leader_optime(c);
	int n = c->nmembers < 0 ? 0 : c->nmembers > PGW_MAX_MEMBERS ? PGW_MAX_MEMBERS : c->nmembers;
	json_object *list = json_object_new_array();

	for (int i = 0; i < n; i++)
		sorted[i] = &c->members[i];
	qsort(sorted, (size_t)n, sizeof(sorted[0]), by_name);
	for (int i = 0; i < n; i++) {
		bool is_leader = c->has_leader && same_name(sorted[i]->name, c->leader);

		json_object_array_add(
		    list,
		    json_member(sorted[i], is_leader,
		                !is_leader && pgw_sync_standby_of(c, sorted[i]->name), optime));
	}
	return list;
}

/* pgwarden's: who led last and how it left ("released", "fenced by X", "lost"). */
static json_object *json_last_leader(const struct pgw_leader_record *lr)
{
	json_object *o = json_object_new_object();
	char how[PGW_NAME_MAX + 16];

	if (lr->malformed) {
		json_object_object_add(o, "state", json_object_new_string("unreadable record"));
		return o;
	}
	json_object_object_add(o, "member", json_object_new_string(lr->member));
	if (lr->released)
		snprintf(how, sizeof(how), "released");
	else if (lr->fenced_by[0])
		snprintf(how, sizeof(how), "fenced by %s", lr->fenced_by);
	else
		snprintf(how, sizeof(how), "holding or lost");
	json_object_object_add(o, "state", json_object_new_string(how));
	return o;
}

char *pgw_cluster_json(const struct pgw_cluster *c, bool paused,
                       const char *scheduled_switchover_json)
{
	json_object *o = json_object_new_object();
	json_object *sw = pgw_json_parse_whole(scheduled_switchover_json);

	if (o == NULL) {
		json_object_put(sw);
		return NULL;
	}
	json_object_object_add(o, "members", json_members(c));
	if (paused)
		json_object_object_add(o, "pause", json_object_new_boolean(1));
	if (json_object_is_type(sw, json_type_object))
		json_object_object_add(o, "scheduled_switchover", sw);
	else
		json_object_put(sw);
	if (c->last_leader.present)
		json_object_object_add(o, "last_leader", json_last_leader(&c->last_leader));
	return to_string(o);
}

char *pgw_history_json(const char *raw)
{
	json_object *o = pgw_json_parse_whole(raw);

	if (!json_object_is_type(o, json_type_array)) {
		json_object_put(o);
		return strdup("[]");
	}
	return to_string(o);
}

/* Python's isoformat() of an aware UTC datetime: microseconds only when not zero. */
static json_object *json_iso_time(double t)
{
	time_t sec = (time_t)t;
	long usec = (long)((t - (double)sec) * 1e6 + 0.5);
	char frac[24] = "";
	char buf[64];
	struct tm tm;

	if (usec >= 1000000) {
		sec++;
		usec -= 1000000;
	}
	if (gmtime_r(&sec, &tm) == NULL)
		return NULL;
	if (usec > 0)
		snprintf(frac, sizeof(frac), ".%06ld", usec);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d%s+00:00", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	return json_object_new_string(buf);
}

char *pgw_scheduled_switchover_json(const struct pgw_failover *f)
{
	json_object *o, *at;

	if (f == NULL || !f->present || f->malformed || f->scheduled_at <= 0)
		return NULL;
	at = json_iso_time(f->scheduled_at);
	if (at == NULL)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "at", at);
	ADD_FIELD(o, "from", f->leader);
	ADD_FIELD(o, "to", f->member);
	return to_string(o);
}
