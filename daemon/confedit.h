/*
 * confedit.h - editing the dynamic configuration (the config key's JSON): typed
 * values, "a.b=c" assignments, YAML to JSON, RFC 7386 merge patches, diffs and the
 * timing check.  pgwardenctl edit-config and the REST API's PATCH /config share it.
 */
#ifndef PGW_CONFEDIT_H
#define PGW_CONFEDIT_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

/* The keys of object o (pointers into o), sorted by name when sort; malloc'd, NULL when
 * out of memory; *n their number. */
const char **pgw_json_keys(struct json_object *o, bool sort, size_t *n);

/* "true"/"false" -> bool, an integer -> int, "null" -> NULL (delete), else a string. */
struct json_object *pgw_conf_typed_value(const char *s);
/* Apply one "a.b.c=value" to root (creating objects on the way); false with err. */
bool pgw_conf_apply_set(struct json_object *root, const char *assignment, char *err, size_t errlen);
/* Lines "key: old -> new" for every dotted leaf that differs ("" = no change). */
char *pgw_conf_diff(struct json_object *old_cfg, struct json_object *new_cfg);
/* ttl/loop_wait/retry_timeout positive integers and the timing rule; false with err. */
bool pgw_conf_validate(struct json_object *cfg, int safety_margin, char *err, size_t errlen);
/*
 * edit-config --apply/--replace: the JSON of a YAML (or JSON) text whose top level is
 * a map (an empty text is {}); plain scalars typed as YAML does (true/yes/on, null/~,
 * numbers), quoted ones stay strings.  NULL with "NAME:LINE: why" in err.
 */
struct json_object *pgw_conf_yaml_to_json(const char *name, const char *text, size_t len, char *err,
                                          size_t errlen);
/* RFC 7386 merge patch: patch's keys into target, objects merged, null removes. */
void pgw_conf_merge_patch(struct json_object *target, struct json_object *patch);

#endif
