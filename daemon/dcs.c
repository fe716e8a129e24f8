/*
 * dcs.c - the dynamic configuration (the config key); see dcs.h.
 */
#include "dcs.h"
#include "pgparam.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "lease.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

char *pgw_dcs_to_json(const struct pgw_dcs *d)
{
	struct json_object *o = json_object_new_object(), *pgo = json_object_new_object();
	struct json_object *params = json_object_new_object();
	char *out;

	json_object_object_add(o, "ttl", json_object_new_int(d->ttl));
	json_object_object_add(o, "loop_wait", json_object_new_int(d->loop_wait));
	json_object_object_add(o, "retry_timeout", json_object_new_int(d->retry_timeout));
	json_object_object_add(o, "maximum_lag_on_failover",
	                       json_object_new_int64(d->maximum_lag_on_failover));
	json_object_object_add(o, "primary_start_timeout",
	                       json_object_new_int(d->primary_start_timeout));
	if (d->synchronous_mode || d->synchronous_mode_strict || d->synchronous_node_count != 1) {
		json_object_object_add(o, "synchronous_mode",
		                       json_object_new_boolean(d->synchronous_mode));
		json_object_object_add(o, "synchronous_mode_strict",
		                       json_object_new_boolean(d->synchronous_mode_strict));
		json_object_object_add(o, "synchronous_node_count",
		                       json_object_new_int(d->synchronous_node_count));
	}
	json_object_object_add(pgo, "use_pg_rewind", json_object_new_boolean(d->use_pg_rewind));
	json_object_object_add(pgo, "use_slots", json_object_new_boolean(d->use_slots));
	for (size_t i = 0; i < d->pg_parameters.n; i++)
		json_object_object_add(params, d->pg_parameters.items[i].name,
		                       json_object_new_string(d->pg_parameters.items[i].value));
	json_object_object_add(pgo, "parameters", params);
	json_object_object_add(o, "postgresql", pgo);
	pgw_slot_conf_to_json(&d->slots, o);
	if (d->standby.enabled)
		json_object_object_add(o, "standby_cluster", pgw_standby_to_json(&d->standby));
	if (d->check_timeline)
		json_object_object_add(o, "check_timeline", json_object_new_boolean(1));
	if (d->max_timelines_history > 0)
		json_object_object_add(o, "max_timelines_history",
		                       json_object_new_int(d->max_timelines_history));
	out = strdup(json_object_to_json_string_ext(o, JSON_FLAGS));
	json_object_put(o);
	return out;
}

void pgw_dcs_free(struct pgw_dcs *d)
{
	for (size_t i = 0; i < d->pg_parameters.n; i++) {
		free(d->pg_parameters.items[i].name);
		free(d->pg_parameters.items[i].value);
	}
	free(d->pg_parameters.items);
	d->pg_parameters.items = NULL;
	d->pg_parameters.n = 0;
}

static bool kv_push(struct pgw_kvlist *l, const char *name, const char *value)
{
	struct pgw_kv *items = realloc(l->items, (l->n + 1) * sizeof(*items));

	if (!items)
		return false;
	l->items = items;
	items[l->n].name = strdup(name);
	items[l->n].value = strdup(value);
	if (!items[l->n].name || !items[l->n].value) {
		free(items[l->n].name);
		free(items[l->n].value);
		return false;
	}
	l->n++;
	return true;
}

bool pgw_dcs_copy(struct pgw_dcs *dst, const struct pgw_dcs *src)
{
	*dst = *src;
	dst->pg_parameters.items = NULL;
	dst->pg_parameters.n = 0;
	for (size_t i = 0; i < src->pg_parameters.n; i++)
		if (!kv_push(&dst->pg_parameters, src->pg_parameters.items[i].name,
		             src->pg_parameters.items[i].value)) {
			pgw_dcs_free(dst);
			return false;
		}
	return true;
}

bool pgw_dcs_params_differ(const struct pgw_dcs *a, const struct pgw_dcs *b)
{
	if (a->pg_parameters.n != b->pg_parameters.n)
		return true;
	for (size_t i = 0; i < a->pg_parameters.n; i++)
		if (strcmp(a->pg_parameters.items[i].name, b->pg_parameters.items[i].name) != 0 ||
		    strcmp(a->pg_parameters.items[i].value, b->pg_parameters.items[i].value) != 0)
			return true;
	return false;
}

/* An integer key: absent keeps *v; present must be an integer in [min, max]. */
static bool get_int(struct json_object *o, const char *k, int64_t min, int64_t max, int64_t *v,
                    char *err, size_t errlen)
{
	struct json_object *j;

	if (!json_object_object_get_ex(o, k, &j))
		return true;
	if (!json_object_is_type(j, json_type_int) || json_object_get_int64(j) < min ||
	    json_object_get_int64(j) > max) {
		snprintf(err, errlen,
		         "config key %s: expected an integer from %" PRId64 " to %" PRId64
		         ", got %s",
		         k, min, max, json_object_to_json_string_ext(j, JSON_FLAGS));
		return false;
	}
	*v = json_object_get_int64(j);
	return true;
}

static bool get_bool(struct json_object *o, const char *k, bool *v, char *err, size_t errlen)
{
	struct json_object *j;

	if (!json_object_object_get_ex(o, k, &j))
		return true;
	if (!json_object_is_type(j, json_type_boolean)) {
		snprintf(err, errlen, "config key postgresql.%s: expected true or false, got %s", k,
		         json_object_to_json_string_ext(j, JSON_FLAGS));
		return false;
	}
	*v = json_object_get_boolean(j);
	return true;
}

/* A boolean at the top of the config key: absent or null keeps *v. */
static bool get_top_bool(struct json_object *o, const char *k, bool *v, char *err, size_t errlen)
{
	struct json_object *j;

	if (!json_object_object_get_ex(o, k, &j) || json_object_is_type(j, json_type_null))
		return true;
	if (!json_object_is_type(j, json_type_boolean)) {
		snprintf(err, errlen, "config key %s: expected true or false, got %.60s", k,
		         json_object_to_json_string_ext(j, JSON_FLAGS));
		return false;
	}
	*v = json_object_get_boolean(j);
	return true;
}

/* postgresql.parameters: scalars only, kept as text. */
static bool get_params(struct json_object *pgo, struct pgw_kvlist *l, char *err, size_t errlen)
{
	struct json_object *params;

	if (!json_object_object_get_ex(pgo, "parameters", &params) ||
	    json_object_is_type(params, json_type_null))
		return true;
	if (!json_object_is_type(params, json_type_object)) {
		snprintf(err, errlen, "config key postgresql.parameters: expected an object");
		return false;
	}
	json_object_object_foreach(params, name, val)
	{
		const char *text, *why;

		if (val == NULL || json_object_is_type(val, json_type_null))
			continue;
		if (json_object_is_type(val, json_type_object) ||
		    json_object_is_type(val, json_type_array)) {
			snprintf(err, errlen,
			         "config key postgresql.parameters.%.64s: expected a "
			         "scalar",
			         name);
			return false;
		}
		text = json_object_is_type(val, json_type_string) ? json_object_get_string(val)
		                                                  : json_object_to_json_string(val);
		why = pgw_param_dcs_refusal(name, strlen(name), text,
		                            json_object_is_type(val, json_type_string)
		                                ? (size_t)json_object_get_string_len(val)
		                                : strlen(text));
		if (why) {
			snprintf(err, errlen, "config key postgresql.parameters.%.64s: %s", name,
			         why);
			return false;
		}
		if (!kv_push(l, name, text)) {
			snprintf(err, errlen, "out of memory");
			return false;
		}
	}
	return true;
}

static bool parse_into(struct json_object *o, struct pgw_dcs *d, int margin_s, char *err,
                       size_t errlen)
{
	int64_t ttl = d->ttl, lw = d->loop_wait, rt = d->retry_timeout;
	int64_t lag = d->maximum_lag_on_failover, pst = d->primary_start_timeout;
	int64_t mth = d->max_timelines_history;
	struct json_object *pgo;

	if (!get_int(o, "ttl", 1, 86400, &ttl, err, errlen) ||
	    !get_int(o, "loop_wait", 1, 86400, &lw, err, errlen) ||
	    !get_int(o, "retry_timeout", 1, 86400, &rt, err, errlen) ||
	    !get_int(o, "maximum_lag_on_failover", 0, INT64_MAX, &lag, err, errlen) ||
	    !get_int(o, "primary_start_timeout", 0, 86400, &pst, err, errlen) ||
	    !get_int(o, "max_timelines_history", 0, INT32_MAX, &mth, err, errlen) ||
	    !get_top_bool(o, "check_timeline", &d->check_timeline, err, errlen))
		return false;
	d->max_timelines_history = (int)mth;
	d->ttl = (int)ttl;
	d->loop_wait = (int)lw;
	d->retry_timeout = (int)rt;
	d->maximum_lag_on_failover = lag;
	d->primary_start_timeout = (int)pst;
	if (!pgw_timing_valid(d->ttl, d->loop_wait, d->retry_timeout, margin_s, err, errlen))
		return false;
	{
		struct pgw_sync_conf sc;

		if (!pgw_sync_conf_parse(o, &sc, err, errlen))
			return false;
		d->synchronous_mode = sc.mode;
		d->synchronous_mode_strict = sc.strict;
		d->synchronous_node_count = sc.count;
	}
	/* slots from etcd: a bad entry is left out (and its name kept from being dropped),
	 * never the whole key: the member slots go on (S5, slots.h) */
	pgw_slot_conf_parse(o, false, &d->slots, err, errlen);
	/* standby_cluster: absent from the key means removed (the cluster promotes); a bad
	 * one rejects the whole key (S5), which keeps the node a standby */
	{
		struct json_object *sc = NULL;

		json_object_object_get_ex(o, "standby_cluster", &sc);
		if (!pgw_standby_parse(sc, &d->standby, err, errlen)) {
			size_t n = strlen(err);

			snprintf(err + n, errlen - n, " (config key)");
			return false;
		}
	}
	if (!json_object_object_get_ex(o, "postgresql", &pgo) ||
	    json_object_is_type(pgo, json_type_null))
		return true; /* no postgresql section: no parameters from the DCS */
	if (!json_object_is_type(pgo, json_type_object)) {
		snprintf(err, errlen, "config key postgresql: expected an object");
		return false;
	}
	return get_bool(pgo, "use_pg_rewind", &d->use_pg_rewind, err, errlen) &&
	       get_bool(pgo, "use_slots", &d->use_slots, err, errlen) &&
	       get_params(pgo, &d->pg_parameters, err, errlen);
}

bool pgw_dcs_from_json(const char *json, const struct pgw_dcs *base, int margin_s,
                       struct pgw_dcs *out, char *err, size_t errlen)
{
	struct json_object *o = json ? json_tokener_parse(json) : NULL;
	struct pgw_dcs d = *base;
	bool ok;

	/* the parameters come from the key alone: base's are not inherited */
	d.pg_parameters.items = NULL;
	d.pg_parameters.n = 0;
	if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "config key: not a JSON object");
		json_object_put(o);
		return false;
	}
	ok = parse_into(o, &d, margin_s, err, errlen);
	json_object_put(o);
	if (!ok) {
		pgw_dcs_free(&d);
		return false;
	}
	*out = d;
	return true;
}
