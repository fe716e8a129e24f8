/*
 * standby.c - the standby_cluster section; see standby.h.
 */
#include "standby.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static bool fail(char *why, size_t whylen, const char *key, const char *what, struct json_object *v)
{
	snprintf(why, whylen, "standby_cluster.%s: %s, got %.64s", key, what,
	         v ? json_object_to_json_string_ext(v, JSON_FLAGS) : "nothing");
	return false;
}

/* A host name, an IPv4 or an IPv6 address: no path, no list, no option-like start. */
static bool host_ok(const char *s, size_t len)
{
	if (len == 0 || len >= 254 || s[0] == '-' || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(".-_:", s[i]))
			return false;
	return true;
}

/* A slot or method name: [a-z0-9_], 1..63 bytes. */
static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len >= PGW_SC_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

static bool cmd_ok(const char *s, size_t len)
{
	if (len >= PGW_SC_CMD_MAX || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (iscntrl((unsigned char)s[i]))
			return false;
	return true;
}

/* PostgreSQL's recovery_min_apply_delay: an integer (ms) or one with a unit. */
static bool delay_ok(const char *s)
{
	static const char *const units[] = {"", "ms", "s", "min", "h", "d"};
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n > 9)
		return false;
	s += n;
	while (*s == ' ')
		s++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(s, units[i]) == 0)
			return true;
	return false;
}

static bool get_string(struct json_object *v, const char *key, char *dst, size_t size,
                       bool (*ok)(const char *, size_t), const char *what, char *why, size_t whylen)
{
	const char *s;
	size_t len;

	if (!json_object_is_type(v, json_type_string))
		return fail(why, whylen, key, what, v);
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (len >= size || !ok(s, len))
		return fail(why, whylen, key, what, v);
	memcpy(dst, s, len + 1);
	return true;
}

static bool get_port(struct json_object *v, int *port, char *why, size_t whylen)
{
	const char *what = "expected a port number from 1 to 65535";
	long long p;
	char *end;

	if (json_object_is_type(v, json_type_int)) {
		p = json_object_get_int64(v);
	} else if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);

		if (!isdigit((unsigned char)s[0]) || strlen(s) > 5)
			return fail(why, whylen, "port", what, v);
		p = strtoll(s, &end, 10);
		if (*end)
			return fail(why, whylen, "port", what, v);
	} else {
		return fail(why, whylen, "port", what, v);
	}
	if (p < 1 || p > 65535)
		return fail(why, whylen, "port", what, v);
	*port = (int)p;
	return true;
}

static bool get_methods(struct json_object *v, struct pgw_standby_cluster *sc, char *why,
                        size_t whylen)
{
	const char *what = "expected a list of method names ([a-z0-9_], at most 8)";
	size_t n;

	if (!json_object_is_type(v, json_type_array) ||
	    (n = json_object_array_length(v)) > PGW_SC_METHODS_MAX)
		return fail(why, whylen, "create_replica_methods", what, v);
	for (size_t i = 0; i < n; i++)
		if (!get_string(json_object_array_get_idx(v, i), "create_replica_methods",
		                sc->methods[i], sizeof(sc->methods[i]), name_ok, what, why, whylen))
			return false;
	sc->nmethods = (int)n;
	return true;
}

static bool delay_str_ok(const char *s, size_t len)
{
	(void)len;
	return delay_ok(s);
}

bool pgw_standby_parse(struct json_object *j, struct pgw_standby_cluster *out, char *why,
                       size_t whylen)
{
	struct pgw_standby_cluster sc;

	memset(&sc, 0, sizeof(sc));
	sc.port = 5432;
	why[0] = '\0';
	if (!j || json_object_is_type(j, json_type_null)) {
		*out = sc;
		return true;
	}
	if (!json_object_is_type(j, json_type_object)) {
		snprintf(why, whylen, "standby_cluster: expected a map");
		return false;
	}
	sc.enabled = true;
	json_object_object_foreach(j, key, v)
	{
		bool ok;

		if (v == NULL || json_object_is_type(v, json_type_null))
			continue;
		if (strcmp(key, "host") == 0)
			ok = get_string(v, key, sc.host, sizeof(sc.host), host_ok,
			                "expected a host name or an IP address", why, whylen);
		else if (strcmp(key, "port") == 0)
			ok = get_port(v, &sc.port, why, whylen);
		else if (strcmp(key, "primary_slot_name") == 0)
			ok = get_string(v, key, sc.primary_slot_name, sizeof(sc.primary_slot_name),
			                name_ok, "expected a slot name ([a-z0-9_], 1 to 63 bytes)",
			                why, whylen);
		else if (strcmp(key, "create_replica_methods") == 0)
			ok = get_methods(v, &sc, why, whylen);
		else if (strcmp(key, "restore_command") == 0)
			ok = get_string(
			    v, key, sc.restore_command, sizeof(sc.restore_command), cmd_ok,
			    "expected a command line without control characters", why, whylen);
		else if (strcmp(key, "archive_cleanup_command") == 0)
			ok = get_string(v, key, sc.archive_cleanup_command,
			                sizeof(sc.archive_cleanup_command), cmd_ok,
			                "expected a command line without control characters", why,
			                whylen);
		else if (strcmp(key, "recovery_min_apply_delay") == 0) {
			if (json_object_is_type(v, json_type_int) &&
			    json_object_get_int64(v) >= 0 &&
			    json_object_get_int64(v) <= 999999999) {
				snprintf(sc.recovery_min_apply_delay,
				         sizeof(sc.recovery_min_apply_delay), "%lld",
				         (long long)json_object_get_int64(v));
				ok = true;
			} else {
				ok = get_string(v, key, sc.recovery_min_apply_delay,
				                sizeof(sc.recovery_min_apply_delay), delay_str_ok,
				                "expected a delay such as 300000 or 5min", why,
				                whylen);
			}
		} else {
			snprintf(why, whylen, "standby_cluster.%.64s: unknown key", key);
			ok = false;
		}
		if (!ok)
			return false;
	}
	if (!sc.host[0] && !sc.restore_command[0]) {
		snprintf(why, whylen,
		         "standby_cluster: needs host (the remote primary) or "
		         "restore_command");
		return false;
	}
	*out = sc;
	return true;
}

struct json_object *pgw_standby_to_json(const struct pgw_standby_cluster *sc)
{
	struct json_object *o, *m;

	if (!sc->enabled || !(o = json_object_new_object()))
		return NULL;
	if (sc->host[0]) {
		json_object_object_add(o, "host", json_object_new_string(sc->host));
		json_object_object_add(o, "port", json_object_new_int(sc->port));
	}
	if (sc->primary_slot_name[0])
		json_object_object_add(o, "primary_slot_name",
		                       json_object_new_string(sc->primary_slot_name));
	if (sc->nmethods > 0) {
		m = json_object_new_array();
		for (int i = 0; m && i < sc->nmethods; i++)
			json_object_array_add(m, json_object_new_string(sc->methods[i]));
		json_object_object_add(o, "create_replica_methods", m);
	}
	if (sc->restore_command[0])
		json_object_object_add(o, "restore_command",
		                       json_object_new_string(sc->restore_command));
	if (sc->archive_cleanup_command[0])
		json_object_object_add(o, "archive_cleanup_command",
		                       json_object_new_string(sc->archive_cleanup_command));
	if (sc->recovery_min_apply_delay[0])
		json_object_object_add(o, "recovery_min_apply_delay",
		                       json_object_new_string(sc->recovery_min_apply_delay));
	return o;
}

bool pgw_standby_same(const struct pgw_standby_cluster *a, const struct pgw_standby_cluster *b)
{
	if (a->enabled != b->enabled || a->port != b->port || a->nmethods != b->nmethods ||
	    strcmp(a->host, b->host) != 0 ||
	    strcmp(a->primary_slot_name, b->primary_slot_name) != 0 ||
	    strcmp(a->restore_command, b->restore_command) != 0 ||
	    strcmp(a->archive_cleanup_command, b->archive_cleanup_command) != 0 ||
	    strcmp(a->recovery_min_apply_delay, b->recovery_min_apply_delay) != 0)
		return false;
	for (int i = 0; i < a->nmethods; i++)
		if (strcmp(a->methods[i], b->methods[i]) != 0)
			return false;
	return true;
}

static void note(char *why, size_t whylen, const char *what)
{
	size_t used = strlen(why);

	if (used < whylen)
		snprintf(why + used, whylen - used, "%s%s", used ? "; " : "", what);
}

void pgw_standby_effective(const struct pgw_standby_cluster *dyn,
                           const struct pgw_standby_cluster *local, struct pgw_standby_cluster *out,
                           char *why, size_t whylen)
{
	why[0] = '\0';
	*out = *dyn;
	if (!dyn->enabled)
		return;
	if (strcmp(dyn->host, local->host) != 0 || (dyn->host[0] && dyn->port != local->port)) {
		note(why, whylen,
		     local->host[0]
		         ? "host/port differ from the file's "
		           "bootstrap.dcs.standby_cluster: following the file's"
		         : "host/port are not in the file's bootstrap.dcs.standby_cluster: "
		           "following no remote primary");
		snprintf(out->host, sizeof(out->host), "%s", local->host);
		out->port = local->port;
	}
	if (strcmp(dyn->restore_command, local->restore_command) != 0 ||
	    strcmp(dyn->archive_cleanup_command, local->archive_cleanup_command) != 0)
		note(why, whylen,
		     "restore_command/archive_cleanup_command from etcd are not run: the file's "
		     "bootstrap.dcs.standby_cluster ones are used");
	snprintf(out->restore_command, sizeof(out->restore_command), "%s", local->restore_command);
	snprintf(out->archive_cleanup_command, sizeof(out->archive_cleanup_command), "%s",
	         local->archive_cleanup_command);
}
