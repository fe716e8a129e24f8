/*
 * ctl_text.c - text building blocks of pgwardenctl: tables drawn like
 * patronictl's (prettytable with the cluster title laid over the top rule) and a
 * small block-style YAML emitter for json-c values; see ctl.h.  The growable
 * string they write into is sbuf.c's.
 */
#include "ctl.h"

#include <json-c/json_object_iterator.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* ---- tables ---------------------------------------------------------------------- */

void pgw_table_init(struct pgw_ctl_table *t, size_t ncols, const char *const *headers,
                    const bool *right)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->headers = headers;
	t->right = right;
}

void pgw_table_row(struct pgw_ctl_table *t, const char *const *cells)
{
	if (t->oom)
		return;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 8;
		char **p = realloc(t->cells, cap * t->ncols * sizeof(*p));

		if (!p) {
			t->oom = true;
			return;
		}
		t->cells = p;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		/* cells hold etcd's data: control characters shown as \xNN, never sent to
		 * the terminal (ARCHITECTURE.md §7) */
		const char *c = cells[i] ? cells[i] : "";
		size_t n = 4 * strlen(c) + 1;
		char *s = malloc(n);

		if (!s)
			t->oom = true;
		else
			pgw_log_escape(s, n, c);
		t->cells[t->nrows * t->ncols + i] = s;
	}
	t->nrows++;
}

void pgw_table_free(struct pgw_ctl_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

static const char *cell(const struct pgw_ctl_table *t, size_t row, size_t col)
{
	const char *s = t->cells[row * t->ncols + col];

	return s ? s : "";
}

static void rule(struct pgw_sb *sb, const size_t *w, size_t ncols)
{
	pgw_sb_add(sb, "+");
	for (size_t i = 0; i < ncols; i++) {
		pgw_sb_pad(sb, '-', w[i] + 2);
		pgw_sb_add(sb, "+");
	}
}

static void row_line(struct pgw_sb *sb, const struct pgw_ctl_table *t, const size_t *w,
                     const char *const *cells)
{
	pgw_sb_add(sb, "|");
	for (size_t i = 0; i < t->ncols; i++) {
		size_t len = strlen(cells[i]);
		bool right = t->right && t->right[i];

		pgw_sb_add(sb, " ");
		if (right)
			pgw_sb_pad(sb, ' ', w[i] - len);
		pgw_sb_add(sb, cells[i]);
		if (!right)
			pgw_sb_pad(sb, ' ', w[i] - len);
		pgw_sb_add(sb, " |");
	}
	pgw_sb_add(sb, "\n");
}

/* The top rule with the title laid over it from the second character on. */
static void title_rule(struct pgw_sb *sb, const size_t *w, size_t ncols, const char *title)
{
	struct pgw_sb r = {0};
	char *line;
	size_t len, tl;

	rule(&r, w, ncols);
	line = pgw_sb_take(&r);
	if (!line) {
		sb->oom = true;
		return;
	}
	len = strlen(line);
	tl = strlen(title);
	if (tl > len - 2)
		tl = len - 2;
	memcpy(line + 1, title, tl);
	pgw_sb_add(sb, line);
	free(line);
}

char *pgw_table_render(const struct pgw_ctl_table *t, const char *title)
{
	struct pgw_sb sb = {0};
	size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof(*w));
	const char **cells = calloc(t->ncols ? t->ncols : 1, sizeof(*cells));

	if (!w || !cells || t->oom) {
		free(w);
		free(cells);
		return NULL;
	}
	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = strlen(t->headers[c]);
		for (size_t r = 0; r < t->nrows; r++)
			if (strlen(cell(t, r, c)) > w[c])
				w[c] = strlen(cell(t, r, c));
	}
	if (title)
		title_rule(&sb, w, t->ncols, title);
	else
		rule(&sb, w, t->ncols);
	pgw_sb_add(&sb, "\n");
	row_line(&sb, t, w, t->headers);
	rule(&sb, w, t->ncols);
	pgw_sb_add(&sb, "\n");
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++)
			cells[c] = cell(t, r, c);
		row_line(&sb, t, w, cells);
	}
	rule(&sb, w, t->ncols);
	pgw_sb_add(&sb, "\n");
	free(w);
	free(cells);
	return pgw_sb_take(&sb);
}

/* ---- YAML ------------------------------------------------------------------------ */

static bool yaml_plain_ok(const char *s)
{
	static const char *const reserved[] = {"true", "false", "yes", "no", "on", "off",
	                                       "null", "~",     "y",   "n",  NULL};
	regex_t plain, typed;
	bool ok;

	if (!*s || s[strlen(s) - 1] == ':')
		return false;
	for (size_t i = 0; reserved[i]; i++)
		if (strcasecmp(s, reserved[i]) == 0)
			return false;
	if (regcomp(&plain, "^[A-Za-z0-9_./][A-Za-z0-9_./:@ -]*$", REG_EXTENDED | REG_NOSUB))
		return false;
	if (regcomp(&typed, "^[-+]?([.]?[0-9][0-9_:.eE+-]*|[.]inf|[.]nan)$",
	            REG_EXTENDED | REG_NOSUB | REG_ICASE)) {
		regfree(&plain);
		return false;
	}
	ok = regexec(&plain, s, 0, NULL, 0) == 0 && regexec(&typed, s, 0, NULL, 0) != 0 &&
	     s[strlen(s) - 1] != ' ' && !strstr(s, ": ") && !strstr(s, " #");
	regfree(&plain);
	regfree(&typed);
	return ok;
}

void pgw_yaml_scalar(struct pgw_sb *sb, const char *s)
{
	struct json_object *js;

	if (yaml_plain_ok(s)) {
		pgw_sb_add(sb, s);
		return;
	}
	/* a JSON string is a valid YAML double-quoted scalar */
	js = json_object_new_string(s);
	pgw_sb_add(sb, json_object_to_json_string_ext(js, JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(js);
}

static void yaml_value(struct pgw_sb *sb, struct json_object *o, int indent, bool sort_keys);

static bool is_nonempty_container(struct json_object *o)
{
	if (json_object_is_type(o, json_type_object))
		return json_object_object_length(o) > 0;
	if (json_object_is_type(o, json_type_array))
		return json_object_array_length(o) > 0;
	return false;
}

static void yaml_leaf(struct pgw_sb *sb, struct json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		pgw_sb_add(sb, "null");
		break;
	case json_type_object:
		pgw_sb_add(sb, "{}");
		break;
	case json_type_array:
		pgw_sb_add(sb, "[]");
		break;
	case json_type_string:
		pgw_yaml_scalar(sb, json_object_get_string(o));
		break;
	default:
		pgw_sb_add(sb, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	}
}

static void yaml_entry(struct pgw_sb *sb, const char *key, struct json_object *v, int indent,
                       bool sort_keys)
{
	pgw_sb_pad(sb, ' ', (size_t)indent);
	pgw_yaml_scalar(sb, key);
	pgw_sb_add(sb, ":");
	if (is_nonempty_container(v)) {
		pgw_sb_add(sb, "\n");
		yaml_value(sb, v, indent + 2, sort_keys);
	} else {
		pgw_sb_add(sb, " ");
		yaml_leaf(sb, v);
		pgw_sb_add(sb, "\n");
	}
}

static void yaml_object(struct pgw_sb *sb, struct json_object *o, int indent, bool sort_keys)
{
	size_t n;
	const char **keys = pgw_json_keys(o, sort_keys, &n);

	if (!keys) {
		sb->oom = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		yaml_entry(sb, keys[i], json_object_object_get(o, keys[i]), indent, sort_keys);
	free(keys);
}

/* "- " then the item; a container item starts on the dash's line. */
static void yaml_array(struct pgw_sb *sb, struct json_object *a, int indent, bool sort_keys)
{
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *it = json_object_array_get_idx(a, i);
		struct pgw_sb sub = {0};
		char *text;

		pgw_sb_pad(sb, ' ', (size_t)indent);
		pgw_sb_add(sb, "- ");
		if (!is_nonempty_container(it)) {
			yaml_leaf(sb, it);
			pgw_sb_add(sb, "\n");
			continue;
		}
		yaml_value(&sub, it, indent + 2, sort_keys);
		text = pgw_sb_take(&sub);
		if (!text) {
			sb->oom = true;
			return;
		}
		pgw_sb_add(sb, text + indent + 2); /* the first line without its indentation */
		free(text);
	}
}

static void yaml_value(struct pgw_sb *sb, struct json_object *o, int indent, bool sort_keys)
{
	if (json_object_is_type(o, json_type_object) && json_object_object_length(o) > 0)
		yaml_object(sb, o, indent, sort_keys);
	else if (json_object_is_type(o, json_type_array) && json_object_array_length(o) > 0)
		yaml_array(sb, o, indent, sort_keys);
	else {
		pgw_sb_pad(sb, ' ', (size_t)indent);
		yaml_leaf(sb, o);
		pgw_sb_add(sb, "\n");
	}
}

char *pgw_yaml_dump(struct json_object *o, bool sort_keys)
{
	struct pgw_sb sb = {0};

	yaml_value(&sb, o, 0, sort_keys);
	return pgw_sb_take(&sb);
}
