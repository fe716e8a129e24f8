/*
 * confedit.c - editing the dynamic configuration's JSON: typing "-s KEY=VALUE" values
 * the way patronictl does for the simple cases, setting a dotted key, YAML to JSON,
 * merge patches, the per-key diff shown before applying, and the timing validation
 * that keeps a bad edit out of etcd; see confedit.h.
 */
#include "confedit.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "dcs.h"
#include "lease.h"
#include "sbuf.h"

struct json_object *pgw_conf_typed_value(const char *s)
{
	const char *p = s;
	char *end;
	long long v;

	if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)
		return json_object_new_boolean(s[0] == 't');
	if (strcmp(s, "null") == 0)
		return NULL;
	if (*p == '-')
		p++;
	if (*p >= '0' && *p <= '9' && strspn(p, "0123456789") == strlen(p)) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno == 0 && *end == '\0')
			return json_object_new_int64(v);
	}
	return json_object_new_string(s);
}

/* The object under `seg` in parent, created when absent; NULL with err when not an object. */
static struct json_object *child_object(struct json_object *parent, const char *seg,
                                        const char *path, char *err, size_t errlen)
{
	struct json_object *c;

	if (json_object_object_get_ex(parent, seg, &c)) {
		if (json_object_is_type(c, json_type_object))
			return c;
		snprintf(err, errlen, "%s: is %s, not an object", path,
		         json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN));
		return NULL;
	}
	c = json_object_new_object();
	json_object_object_add(parent, seg, c);
	return c;
}

static bool valid_key(const char *key, size_t klen)
{
	if (klen == 0 || key[0] == '.' || key[klen - 1] == '.')
		return false;
	for (size_t i = 1; i < klen; i++)
		if (key[i] == '.' && key[i - 1] == '.')
			return false;
	return true;
}

bool pgw_conf_apply_set(struct json_object *root, const char *assignment, char *err, size_t errlen)
{
	const char *eq = strchr(assignment, '=');
	char key[512], *seg, *dot;
	struct json_object *obj = root;
	size_t klen = eq ? (size_t)(eq - assignment) : 0;

	if (!eq || !valid_key(assignment, klen) || klen >= sizeof(key)) {
		snprintf(err, errlen,
		         "%s: expected KEY=VALUE with a dotted KEY such as loop_wait=5",
		         assignment);
		return false;
	}
	memcpy(key, assignment, klen);
	key[klen] = '\0';
	for (seg = key; (dot = strchr(seg, '.')) != NULL; seg = dot + 1) {
		*dot = '\0';
		obj = child_object(obj, seg, key, err, errlen);
		*dot = '.';
		if (!obj)
			return false;
	}
	if (strcmp(eq + 1, "null") == 0)
		json_object_object_del(obj, seg);
	else
		json_object_object_add(obj, seg, pgw_conf_typed_value(eq + 1));
	return true;
}

/* ---- --apply FILE: YAML to JSON, merge patch (also PATCH /config's)
 * ---------------------------------------- */

/* A plain YAML scalar typed as YAML 1.1 core would: bool, null, integer, float, string. */
static struct json_object *plain_scalar(const char *s)
{
	static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no",
	                                                                       "off"};
	char *end;
	double d;

	for (size_t i = 0; i < 3; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return json_object_new_boolean(1);
		if (strcasecmp(s, no[i]) == 0)
			return json_object_new_boolean(0);
	}
	if (!*s || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0)
		return NULL;
	if (strpbrk(s, ".eE") && strspn(s, "+-0123456789.eE") == strlen(s)) {
		errno = 0;
		d = strtod(s, &end);
		if (errno == 0 && *end == '\0')
			return json_object_new_double(d);
	}
	return pgw_conf_typed_value(s);
}

/* Values a document may hold once its aliases are expanded: a YAML "billion laughs"
 * of 180 KB expanded to 2.3 GB here before this limit (issue 11, item 16). */
#define YAML_MAX_NODES 100000

struct yaml_json {
	yaml_document_t *doc;
	char *err;
	size_t errlen;
	const char *name;
	int depth;
	size_t nodes; /* visited so far, aliases counted each time */
};

static bool yaml_node_json(struct yaml_json *y, yaml_node_t *n, struct json_object **out);

static bool yaml_map_json(struct yaml_json *y, yaml_node_t *n, struct json_object **out)
{
	*out = json_object_new_object();
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
		struct json_object *v;

		if (!k || k->type != YAML_SCALAR_NODE) {
			snprintf(y->err, y->errlen, "%s:%zu: expected a scalar key", y->name,
			         (k ? k->start_mark.line : n->start_mark.line) + 1);
			return false;
		}
		if (!yaml_node_json(y, yaml_document_get_node(y->doc, p->value), &v)) {
			json_object_put(v); /* the part built before the error */
			return false;
		}
		json_object_object_add(*out, (const char *)k->data.scalar.value, v);
	}
	return true;
}

static bool yaml_node_json(struct yaml_json *y, yaml_node_t *n, struct json_object **out)
{
	bool ok = true;

	*out = NULL;
	if (n == NULL)
		return true;
	if (++y->depth > 32) {
		snprintf(y->err, y->errlen, "%s:%zu: nested too deeply", y->name,
		         n->start_mark.line + 1);
		y->depth--;
		return false;
	}
	if (++y->nodes > YAML_MAX_NODES) {
		snprintf(y->err, y->errlen,
		         "%s:%zu: more than %d values once aliases are expanded: refused", y->name,
		         n->start_mark.line + 1, YAML_MAX_NODES);
		y->depth--;
		return false;
	}
	if (n->type == YAML_SCALAR_NODE) {
		const char *v = (const char *)n->data.scalar.value;

		*out = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_scalar(v)
		                                                       : json_object_new_string(v);
	} else if (n->type == YAML_SEQUENCE_NODE) {
		*out = json_object_new_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     ok && i < n->data.sequence.items.top; i++) {
			struct json_object *v;

			ok = yaml_node_json(y, yaml_document_get_node(y->doc, *i), &v);
			if (ok)
				json_object_array_add(*out, v);
			else
				json_object_put(v);
		}
	} else {
		ok = yaml_map_json(y, n, out);
	}
	y->depth--;
	return ok;
}

struct json_object *pgw_conf_yaml_to_json(const char *name, const char *text, size_t len, char *err,
                                          size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct yaml_json y = {&doc, err, errlen, name, 0, 0};
	struct json_object *out = NULL;
	yaml_node_t *root;

	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "%s:%zu: YAML syntax error: %s", name,
		         parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
		yaml_parser_delete(&parser);
		return NULL;
	}
	root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		out = json_object_new_object();
	} else if (root->type != YAML_MAPPING_NODE) {
		snprintf(err, errlen, "%s:%zu: expected a map of settings at the top level", name,
		         root->start_mark.line + 1);
	} else if (!yaml_node_json(&y, root, &out)) {
		json_object_put(out);
		out = NULL;
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return out;
}

void pgw_conf_merge_patch(struct json_object *target, struct json_object *patch)
{
	json_object_object_foreach(patch, k, v)
	{
		struct json_object *t;

		if (v == NULL || json_object_is_type(v, json_type_null)) {
			json_object_object_del(target, k);
		} else if (json_object_is_type(v, json_type_object) &&
		           json_object_object_get_ex(target, k, &t) &&
		           json_object_is_type(t, json_type_object)) {
			pgw_conf_merge_patch(t, v);
		} else {
			json_object_object_add(target, k, json_object_get(v));
		}
	}
}

/* flat[dotted key] = value as JSON text, for every leaf (an empty object is a leaf). */
static void flatten(struct json_object *o, const char *prefix, struct json_object *flat)
{
	size_t n;
	const char **keys = pgw_json_keys(o, false, &n);

	for (size_t i = 0; keys && i < n; i++) {
		struct json_object *v = json_object_object_get(o, keys[i]);
		char path[1024];

		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", keys[i]);
		if (json_object_is_type(v, json_type_object) && json_object_object_length(v) > 0)
			flatten(v, path, flat);
		else
			json_object_object_add(
			    flat, path,
			    json_object_new_string(json_object_to_json_string_ext(
			        v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)));
	}
	free(keys);
}

static const char *flat_get(struct json_object *flat, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(flat, k, &v) ? json_object_get_string(v) : NULL;
}

/* all[k] = k for every key of from. */
static void add_keys(struct json_object *all, struct json_object *from)
{
	size_t n;
	const char **keys = pgw_json_keys(from, false, &n);

	for (size_t i = 0; keys && i < n; i++)
		json_object_object_add(all, keys[i], NULL);
	free(keys);
}

static void diff_lines(struct pgw_sb *sb, struct json_object *fo, struct json_object *fn)
{
	struct json_object *all = json_object_new_object();
	size_t n;
	const char **keys;

	add_keys(all, fo);
	add_keys(all, fn);
	keys = pgw_json_keys(all, true, &n);
	if (!keys)
		sb->oom = true;
	for (size_t i = 0; keys && i < n; i++) {
		const char *a = flat_get(fo, keys[i]), *b = flat_get(fn, keys[i]);

		if (a && b && strcmp(a, b) == 0)
			continue;
		pgw_sb_addf(sb, "%s: %s -> %s\n", keys[i], a ? a : "(unset)", b ? b : "(unset)");
	}
	free(keys);
	json_object_put(all);
}

char *pgw_conf_diff(struct json_object *old_cfg, struct json_object *new_cfg)
{
	struct json_object *fo = json_object_new_object(), *fn = json_object_new_object();
	struct pgw_sb sb = {0};

	flatten(old_cfg, "", fo);
	flatten(new_cfg, "", fn);
	pgw_sb_add(&sb, "");
	diff_lines(&sb, fo, fn);
	json_object_put(fo);
	json_object_put(fn);
	return pgw_sb_take(&sb);
}

static bool positive_int(struct json_object *cfg, const char *key, int dflt, int *out, char *err,
                         size_t errlen)
{
	struct json_object *v;
	int64_t x;

	*out = dflt;
	if (!json_object_object_get_ex(cfg, key, &v))
		return true;
	x = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
	if (x <= 0 || x > 1000000) {
		snprintf(err, errlen, "%s: expected a positive integer, got %s", key,
		         json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		return false;
	}
	*out = (int)x;
	return true;
}

bool pgw_conf_validate(struct json_object *cfg, int safety_margin, char *err, size_t errlen)
{
	int ttl, loop_wait, retry_timeout;
	struct pgw_dcs base, parsed;
	char why[256];

	if (!positive_int(cfg, "ttl", 30, &ttl, err, errlen) ||
	    !positive_int(cfg, "loop_wait", 10, &loop_wait, err, errlen) ||
	    !positive_int(cfg, "retry_timeout", 10, &retry_timeout, err, errlen))
		return false;
	if (!pgw_timing_valid(ttl, loop_wait, retry_timeout, safety_margin, why, sizeof(why))) {
		snprintf(err, errlen, "ttl %d, loop_wait %d, retry_timeout %d: %s", ttl, loop_wait,
		         retry_timeout, why);
		return false;
	}
	/* the parse every node applies to the key: what it refuses is not written */
	pgw_dcs_defaults(&base);
	if (!pgw_dcs_from_json(json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN), &base,
	                       safety_margin, &parsed, err, errlen))
		return false;
	pgw_dcs_free(&parsed);
	/* what a node would leave out of slots/ignore_slots is refused here, with why */
	pgw_slot_conf_defaults(&parsed.slots);
	return pgw_slot_conf_parse(cfg, true, &parsed.slots, err, errlen);
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **pgw_json_keys(struct json_object *o, bool sort, size_t *n)
{
	struct json_object_iterator it = json_object_iter_begin(o), end = json_object_iter_end(o);
	size_t cap = (size_t)json_object_object_length(o);
	const char **keys = calloc(cap ? cap : 1, sizeof(*keys));

	*n = 0;
	if (!keys)
		return NULL;
	for (; !json_object_iter_equal(&it, &end) && *n < cap; json_object_iter_next(&it))
		keys[(*n)++] = json_object_iter_peek_name(&it);
	if (sort)
		qsort(keys, *n, sizeof(*keys), cmp_key);
	return keys;
}
