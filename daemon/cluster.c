/*
 * cluster.c - parse the etcd view of a cluster and build the JSON pgwarden
 * writes; see cluster.h.
 */
#include "cluster.h"
#include "slots.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void add_warning(struct pgw_cluster *c, const char *fmt, const char *what)
{
	size_t used = strlen(c->warnings);

	if (used + 1 < sizeof(c->warnings))
		snprintf(c->warnings + used, sizeof(c->warnings) - used, fmt, what);
}

static void copy_str(char *dst, size_t dstlen, const char *src)
{
	snprintf(dst, dstlen, "%s", src ? src : "");
}

bool pgw_parse_conn_url(const char *url, char *host, size_t hostlen, int *port)
{
	const char *p, *end, *colon;
	char *num_end;
	long v;
	size_t hl;

	if (!url)
		return false;
	p = strstr(url, "://");
	if (!p)
		return false;
	p += 3;
	end = p + strcspn(p, "/?");
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (!rb || rb[1] != ':')
			return false;
		hl = (size_t)(rb - p - 1);
		p++;
		colon = rb + 1;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		if (!colon)
			return false;
		hl = (size_t)(colon - p);
	}
	if (hl == 0 || hl >= hostlen)
		return false;
	v = strtol(colon + 1, &num_end, 10);
	if (num_end != end || v < 1 || v > 65535)
		return false;
	memcpy(host, p, hl);
	host[hl] = '\0';
	*port = (int)v;
	return true;
}

static bool json_bool_field(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		return false;
	if (json_object_is_type(v, json_type_boolean))
		return json_object_get_boolean(v);
	if (json_object_is_type(v, json_type_string))
		return strcmp(json_object_get_string(v), "true") == 0;
	return false;
}

static int64_t json_int_field(struct json_object *o, const char *k, int64_t dflt)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		return dflt;
	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	return dflt;
}

static const char *json_str_field(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool pgw_member_parse(const char *json, size_t len, struct pgw_member *m)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o, *tags, *wd;
	const char *s;
	bool ok = false;

	if (!tok)
		return false;
	o = json_tokener_parse_ex(tok, json, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object))
		goto out;
	s = json_str_field(o, "conn_url");
	if (!s || !pgw_parse_conn_url(s, m->conn_host, sizeof(m->conn_host), &m->conn_port))
		goto out; /* a member nobody can connect to is no member */
	copy_str(m->api_url, sizeof(m->api_url), json_str_field(o, "api_url"));
	copy_str(m->role, sizeof(m->role), json_str_field(o, "role"));
	copy_str(m->state, sizeof(m->state), json_str_field(o, "state"));
	m->xlog_location = json_int_field(o, "xlog_location", -1);
	m->timeline = (int)json_int_field(o, "timeline", 0);
	s = json_str_field(o, "replication_state");
	m->streaming = s && strcmp(s, "streaming") == 0;
	m->failover_priority = 1;
	if (json_object_object_get_ex(o, "tags", &tags) &&
	    json_object_is_type(tags, json_type_object)) {
		m->nofailover = json_bool_field(tags, "nofailover");
		m->noloadbalance = json_bool_field(tags, "noloadbalance");
		m->nosync = json_bool_field(tags, "nosync");
		m->nostream = json_bool_field(tags, "nostream");
		m->failover_priority = (int)json_int_field(tags, "failover_priority", 1);
		/* a name that does not fit is no member's: left out, never truncated into
		 * another one's */
		s = json_str_field(tags, "replicatefrom");
		if (s && strlen(s) < sizeof(m->replicatefrom))
			copy_str(m->replicatefrom, sizeof(m->replicatefrom), s);
	}
	if (json_object_object_get_ex(o, "fencing", &wd) &&
	    json_object_is_type(wd, json_type_object)) {
		const char *t = json_str_field(wd, "target"), *r = json_str_field(wd, "reason");

		snprintf(m->fence_failure, sizeof(m->fence_failure), "%.60s: %.130s", t ? t : "?",
		         r ? r : "?");
	}
	copy_str(m->failover_blocked, sizeof(m->failover_blocked),
	         json_str_field(o, "failover_blocked"));
	if (json_object_object_get_ex(o, "watchdog", &wd) &&
	    json_object_is_type(wd, json_type_object)) {
		s = json_str_field(wd, "mode");
		m->watchdog_blocked =
		    s && strcmp(s, "required") == 0 && json_bool_field(wd, "failed");
		m->watchdog_armed =
		    json_bool_field(wd, "armed") && json_int_field(wd, "timeout", 0) > 0;
	}
	ok = true;
out:
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

static void parse_status(struct pgw_cluster *c, const struct pgw_etcd_kv *kv)
{
	struct json_object *o = json_tokener_parse(kv->value);

	c->optime = -1;
	c->nstatus_slots = 0;
	if (o && json_object_is_type(o, json_type_object)) {
		struct json_object *slots;

		c->optime = json_int_field(o, "optime", -1);
		if (json_object_object_get_ex(o, "slots", &slots))
			c->nstatus_slots =
			    pgw_slot_pos_parse(slots, c->status_slots, PGW_STATUS_SLOTS_MAX);
	} else
		add_warning(c, "%s: not JSON, optime unknown; ", "status");
	json_object_put(o);
}

static void parse_config(struct pgw_cluster *c, const struct pgw_etcd_kv *kv)
{
	struct json_object *o = json_tokener_parse(kv->value);

	c->has_config = true;
	free(c->config);
	c->config = strdup(kv->value);
	if (o && json_object_is_type(o, json_type_object)) {
		struct json_object *v;

		char err[200];

		c->paused = json_bool_field(o, "pause");
		if (!pgw_sync_conf_parse(o, &c->sync_conf, err, sizeof(err))) {
			/* the leader keeps going as configured before; nobody may be
			 * promoted on a guess about what the operator meant (S2) */
			add_warning(c, "config: %.150s; synchronous_mode taken as on; ", err);
			c->sync_conf.mode = true;
		}
		if (json_object_object_get_ex(o, "maximum_lag_on_failover", &v) &&
		    json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
			c->max_lag = json_object_get_int64(v);
	} else
		add_warning(c, "%s: not a JSON object; ", "config");
	json_object_put(o);
}

/* A mode: true/false, or Patroni's strings ("on", "off", "true", "false"). */
static bool sync_flag(struct json_object *o, const char *k, bool *v, char *err, size_t errlen)
{
	struct json_object *j;
	const char *s;

	if (!json_object_object_get_ex(o, k, &j) || json_object_is_type(j, json_type_null))
		return true;
	if (json_object_is_type(j, json_type_boolean)) {
		*v = json_object_get_boolean(j);
		return true;
	}
	s = json_object_is_type(j, json_type_string) ? json_object_get_string(j) : "";
	if (!strcasecmp(s, "on") || !strcasecmp(s, "true")) {
		*v = true;
		return true;
	}
	if (!strcasecmp(s, "off") || !strcasecmp(s, "false")) {
		*v = false;
		return true;
	}
	snprintf(err, errlen, "config key %s: expected true or false, got %.60s", k,
	         json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	return false;
}

bool pgw_sync_conf_parse(struct json_object *o, struct pgw_sync_conf *sc, char *err, size_t errlen)
{
	struct json_object *j;

	sc->mode = sc->strict = false;
	sc->count = 1;
	if (!sync_flag(o, "synchronous_mode", &sc->mode, err, errlen) ||
	    !sync_flag(o, "synchronous_mode_strict", &sc->strict, err, errlen))
		return false;
	if (json_object_object_get_ex(o, "synchronous_node_count", &j) &&
	    !json_object_is_type(j, json_type_null)) {
		if (!json_object_is_type(j, json_type_int) || json_object_get_int64(j) < 1 ||
		    json_object_get_int64(j) > PGW_SYNC_MAX) {
			snprintf(err, errlen,
			         "config key synchronous_node_count: expected an integer from 1 "
			         "to %d, got %.60s",
			         PGW_SYNC_MAX,
			         json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
			return false;
		}
		sc->count = (int)json_object_get_int64(j);
	}
	return true;
}

char *pgw_sync_key_json(const char *leader, const char (*names)[PGW_NAME_MAX], int n)
{
	struct json_object *o = json_object_new_object();
	char list[PGW_SYNC_MAX * (PGW_NAME_MAX + 1)] = "";
	char *out;

	json_object_object_add(o, "leader", json_object_new_string(leader));
	for (int i = 0; i < n && i < PGW_SYNC_MAX; i++) {
		if (i)
			strcat(list, ",");
		strcat(list, names[i]);
	}
	json_object_object_add(o, "sync_standby", n > 0 ? json_object_new_string(list) : NULL);
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

bool pgw_sync_key_parse(const char *json, struct pgw_sync_key *k)
{
	struct json_object *o = json_tokener_parse(json), *j;
	const char *leader, *list;
	bool ok = false;

	memset(k, 0, sizeof(*k));
	k->present = true;
	k->malformed = true;
	if (!o || !json_object_is_type(o, json_type_object))
		goto out;
	leader = json_str_field(o, "leader");
	if (!leader || !leader[0] || strlen(leader) >= PGW_NAME_MAX)
		goto out;
	copy_str(k->leader, sizeof(k->leader), leader);
	if (json_object_object_get_ex(o, "sync_standby", &j) &&
	    !json_object_is_type(j, json_type_null)) {
		if (!json_object_is_type(j, json_type_string))
			goto out;
		list = json_object_get_string(j);
		while (*list) {
			size_t len = strcspn(list, ",");

			if (len == 0 || len >= PGW_NAME_MAX || k->n >= PGW_SYNC_MAX)
				goto out; /* unreadable: nobody may be promoted */
			memcpy(k->members[k->n], list, len);
			k->members[k->n++][len] = '\0';
			list += len + (list[len] == ',');
		}
	}
	k->malformed = false;
	ok = true;
out:
	json_object_put(o);
	return ok;
}

bool pgw_parse_iso8601(const char *s, double *out)
{
	struct tm tm = {0};
	const char *p = s ? strptime(s, "%Y-%m-%d", &tm) : NULL;
	double frac = 0;
	long off = 0;

	if (!p || (*p != 'T' && *p != ' '))
		return false;
	p = strptime(p + 1, "%H:%M:%S", &tm);
	if (!p)
		return false;
	if (*p == '.') {
		char *end;

		frac = strtod(p, &end);
		p = end;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm, n = 0;

		if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5 || hh > 23 || mm > 59)
			return false;
		off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return false; /* a time without a zone is ambiguous */
	}
	if (*p)
		return false;
	*out = (double)timegm(&tm) - (double)off + frac;
	return true;
}

bool pgw_failover_parse(const char *json, struct pgw_failover *f)
{
	struct json_object *o = json_tokener_parse(json);
	const char *leader, *member, *at;
	bool ok = false;

	memset(f, 0, sizeof(*f));
	f->present = true;
	f->malformed = true;
	if (!o || !json_object_is_type(o, json_type_object))
		goto out;
	leader = json_str_field(o, "leader");
	member = json_str_field(o, "member");
	at = json_str_field(o, "scheduled_at");
	if ((!leader || !*leader) && (!member || !*member))
		goto out; /* says nothing */
	if ((leader && strlen(leader) >= PGW_NAME_MAX) ||
	    (member && strlen(member) >= PGW_NAME_MAX))
		goto out;
	if (at && *at && !pgw_parse_iso8601(at, &f->scheduled_at))
		goto out;
	copy_str(f->leader, sizeof(f->leader), leader);
	copy_str(f->member, sizeof(f->member), member);
	f->malformed = false;
	ok = true;
out:
	json_object_put(o);
	return ok;
}

static void parse_member(struct pgw_cluster *c, const struct pgw_etcd_kv *kv, const char *name)
{
	struct pgw_member *m;

	if (c->nmembers >= PGW_MAX_MEMBERS || strlen(name) >= PGW_NAME_MAX || !*name) {
		add_warning(c, "members/%s: ignored (too many members or bad name); ", name);
		return;
	}
	m = &c->members[c->nmembers];
	memset(m, 0, sizeof(*m));
	if (!pgw_member_parse(kv->value, kv->value_len, m)) {
		add_warning(c, "members/%s: malformed JSON, ignored; ", name);
		return;
	}
	copy_str(m->name, sizeof(m->name), name);
	m->mod_revision = kv->mod_revision;
	m->lease = kv->lease;
	c->nmembers++;
}

static void add_str(struct json_object *o, const char *k, const char *v);

bool pgw_leader_record_parse(const char *json, struct pgw_leader_record *lr)
{
	struct json_object *o = json_tokener_parse(json), *bmc;
	const char *s;
	int64_t fenced_at;
	bool ok = false;

	memset(lr, 0, sizeof(*lr));
	lr->present = true;
	lr->malformed = true;
	if (!o || !json_object_is_type(o, json_type_object))
		goto out;
	s = json_str_field(o, "member");
	if (!s || !s[0] || strlen(s) >= sizeof(lr->member))
		goto out;
	copy_str(lr->member, sizeof(lr->member), s);
	lr->lease = json_int_field(o, "lease", 0);
	lr->released = json_bool_field(o, "released");
	copy_str(lr->fenced_by, sizeof(lr->fenced_by), json_str_field(o, "fenced_by"));
	/* unix seconds; anything outside 1970..2^40 (year 36812) is unknown, so that the
	 * value never reaches a conversion it does not fit (issue 11, item 11) */
	fenced_at = json_int_field(o, "fenced_at", 0);
	lr->fenced_at = fenced_at > 0 && fenced_at < ((int64_t)1 << 40) ? (double)fenced_at : 0;
	if (json_object_object_get_ex(o, "bmc", &bmc) &&
	    json_object_is_type(bmc, json_type_object)) {
		copy_str(lr->bmc_address, sizeof(lr->bmc_address), json_str_field(bmc, "address"));
		lr->bmc_lanplus = json_bool_field(bmc, "lanplus");
		lr->bmc_cipher_suite = (int)json_int_field(bmc, "cipher_suite", 0);
		copy_str(lr->bmc_privilege, sizeof(lr->bmc_privilege),
		         json_str_field(bmc, "privilege"));
	}
	if (json_object_object_get_ex(o, "watchdog", &bmc) &&
	    json_object_is_type(bmc, json_type_object)) {
		int64_t t = json_int_field(bmc, "timeout", 0);

		lr->watchdog_timeout = t > 0 && t < 3600 ? (int)t : 0;
		lr->watchdog_armed = json_bool_field(bmc, "armed") && lr->watchdog_timeout > 0;
	}
	lr->malformed = false;
	ok = true;
out:
	json_object_put(o);
	return ok;
}

char *pgw_leader_record_json(const struct pgw_leader_record *lr)
{
	struct json_object *o = json_object_new_object(), *bmc;
	char *out;

	add_str(o, "member", lr->member);
	json_object_object_add(o, "lease", json_object_new_int64(lr->lease));
	if (lr->bmc_address[0]) {
		bmc = json_object_new_object();
		add_str(bmc, "address", lr->bmc_address);
		json_object_object_add(bmc, "lanplus", json_object_new_boolean(lr->bmc_lanplus));
		if (lr->bmc_cipher_suite)
			json_object_object_add(bmc, "cipher_suite",
			                       json_object_new_int(lr->bmc_cipher_suite));
		if (lr->bmc_privilege[0])
			add_str(bmc, "privilege", lr->bmc_privilege);
		json_object_object_add(o, "bmc", bmc);
	}
	if (lr->watchdog_armed && lr->watchdog_timeout > 0) {
		bmc = json_object_new_object();
		json_object_object_add(bmc, "armed", json_object_new_boolean(1));
		json_object_object_add(bmc, "timeout", json_object_new_int(lr->watchdog_timeout));
		json_object_object_add(o, "watchdog", bmc);
	}
	if (lr->released)
		json_object_object_add(o, "released", json_object_new_boolean(1));
	if (lr->fenced_by[0])
		add_str(o, "fenced_by", lr->fenced_by);
	if (lr->fenced_at > 0)
		json_object_object_add(o, "fenced_at",
		                       json_object_new_int64((int64_t)lr->fenced_at));
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

/* The history key's [timeline, switch_lsn, ...] rows into c->forks (newest kept). */
static void parse_forks(struct pgw_cluster *c, const char *json)
{
	struct json_object *arr = json_tokener_parse(json);
	size_t n, i;

	c->nforks = 0;
	c->history_rows = -1;
	c->history_timeline = 0;
	if (!arr || !json_object_is_type(arr, json_type_array)) {
		add_warning(c, "%s: malformed, ignored; ", "history");
		json_object_put(arr);
		return;
	}
	n = json_object_array_length(arr);
	c->history_rows = n <= INT32_MAX ? (int)n : -1;
	for (i = n > PGW_FORKS_MAX ? n - PGW_FORKS_MAX : 0; i < n; i++) {
		struct json_object *row = json_object_array_get_idx(arr, i);
		struct json_object *tl, *lsn;

		if (!json_object_is_type(row, json_type_array) || json_object_array_length(row) < 2)
			continue;
		tl = json_object_array_get_idx(row, 0);
		lsn = json_object_array_get_idx(row, 1);
		if (!json_object_is_type(tl, json_type_int) ||
		    !json_object_is_type(lsn, json_type_int) || json_object_get_int64(tl) < 1 ||
		    json_object_get_int64(tl) > INT32_MAX || json_object_get_int64(lsn) < 0) {
			c->history_rows = -1; /* the rows no longer map to timelines */
			continue;
		}
		c->forks[c->nforks].timeline = (int)json_object_get_int64(tl);
		c->forks[c->nforks].lsn = (uint64_t)json_object_get_int64(lsn);
		c->nforks++;
		/* the newest row only: an older one would understate the cluster's timeline */
		if (i == n - 1 && json_object_get_int64(tl) < INT32_MAX)
			c->history_timeline = (int)json_object_get_int64(tl) + 1;
	}
	json_object_put(arr);
}

int pgw_cluster_parse(const struct pgw_etcd_range *r, const char *prefix, struct pgw_cluster *c)
{
	size_t plen = strlen(prefix);

	pgw_cluster_clear(c);
	c->revision = r->revision;
	for (size_t i = 0; i < r->n; i++) {
		const struct pgw_etcd_kv *kv = &r->kvs[i];
		const char *k;
		bool nul;

		if (strncmp(kv->key, prefix, plen) != 0)
			continue;
		k = kv->key + plen;
		/* a value with a NUL byte would read as the text before it ("node1\0x" as
		 * node1): the leader key is then held by someone unknown, any other ignored */
		nul = memchr(kv->value, '\0', kv->value_len) != NULL;
		if (nul && strcmp(k, "leader") != 0) {
			add_warning(c, "%s: holds a NUL byte, ignored; ", k);
			continue;
		}
		if (strcmp(k, "leader") == 0) {
			if (nul || kv->value_len == 0 || kv->value_len >= PGW_NAME_MAX) {
				/* unreadable but present: treat as held by someone unknown */
				c->has_leader = true;
				copy_str(c->leader, sizeof(c->leader), "?");
			} else {
				c->has_leader = true;
				copy_str(c->leader, sizeof(c->leader), kv->value);
			}
			c->leader_lease = kv->lease;
			c->leader_mod_revision = kv->mod_revision;
		} else if (strcmp(k, "initialize") == 0) {
			c->initialized = true;
			if (kv->value_len < sizeof(c->sysid))
				copy_str(c->sysid, sizeof(c->sysid), kv->value);
			else
				copy_str(c->sysid, sizeof(c->sysid), "?");
		} else if (strcmp(k, "status") == 0) {
			parse_status(c, kv);
		} else if (strcmp(k, "history") == 0) {
			free(c->history);
			c->history = strdup(kv->value);
			parse_forks(c, kv->value);
		} else if (strcmp(k, "config") == 0) {
			parse_config(c, kv);
		} else if (strcmp(k, "failover") == 0) {
			if (!pgw_failover_parse(kv->value, &c->failover))
				add_warning(c, "%s: malformed, ignored; ", "failover");
			c->failover.mod_revision = kv->mod_revision;
		} else if (strcmp(k, "sync") == 0) {
			if (!pgw_sync_key_parse(kv->value, &c->sync))
				add_warning(c, "%s: malformed: nobody may be promoted; ", "sync");
			c->sync.mod_revision = kv->mod_revision;
		} else if (strncmp(k, "members/", 8) == 0) {
			parse_member(c, kv, k + 8);
		} else if (strcmp(k, "pgwarden/leader") == 0) {
			if (!pgw_leader_record_parse(kv->value, &c->last_leader))
				add_warning(c, "%s: malformed; ", "pgwarden/leader");
			c->last_leader.mod_revision = kv->mod_revision;
		} else if (strcmp(k, "pgwarden/fence-lock") == 0) {
			c->fence_locked = true;
			copy_str(c->fence_lock_holder, sizeof(c->fence_lock_holder), kv->value);
		}
	}
	pgw_cluster_derive(c);
	return 0;
}

void pgw_cluster_clear(struct pgw_cluster *c)
{
	free(c->history);
	free(c->config);
	memset(c, 0, sizeof(*c));
	c->optime = -1;
	c->max_lag = 1048576;
	c->sync_conf.count = 1;
}

static char *host_port_url(const char *scheme, const char *host, int port, const char *path)
{
	char buf[512];
	bool v6 = strchr(host, ':') != NULL;

	snprintf(buf, sizeof(buf), "%s://%s%s%s:%d%s", scheme, v6 ? "[" : "", host, v6 ? "]" : "",
	         port, path);
	return strdup(buf);
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	if (v)
		json_object_object_add(o, k, json_object_new_string(v));
}

char *pgw_member_json(const struct pgw_member_info *mi)
{
	struct json_object *o = json_object_new_object(), *tags = json_object_new_object();
	char *conn = host_port_url("postgres", mi->conn_host, mi->conn_port, "/postgres");
	char *api =
	    host_port_url(mi->api_https ? "https" : "http", mi->api_host, mi->api_port, "/patroni");
	char *out;

	add_str(o, "conn_url", conn);
	add_str(o, "api_url", api);
	if (mi->proxy_host) {
		char *proxy =
		    host_port_url("postgres", mi->proxy_host, mi->proxy_port, "/postgres");

		add_str(o, "proxy_url", proxy);
		free(proxy);
	}
	add_str(o, "state", mi->state);
	add_str(o, "role", mi->role);
	add_str(o, "version", mi->version);
	if (mi->xlog_location >= 0)
		json_object_object_add(o, "xlog_location",
		                       json_object_new_int64(mi->xlog_location));
	if (mi->receive_lsn >= 0)
		json_object_object_add(o, "receive_lsn", json_object_new_int64(mi->receive_lsn));
	if (mi->replay_lsn >= 0)
		json_object_object_add(o, "replay_lsn", json_object_new_int64(mi->replay_lsn));
	if (mi->streaming)
		add_str(o, "replication_state", "streaming");
	if (mi->timeline > 0)
		json_object_object_add(o, "timeline", json_object_new_int(mi->timeline));
	if (mi->pending_restart)
		json_object_object_add(o, "pending_restart", json_object_new_boolean(1));
	if (mi->pause)
		json_object_object_add(o, "pause", json_object_new_boolean(1));
	if (mi->wd_mode) {
		struct json_object *wd = json_object_new_object();

		add_str(wd, "mode", mi->wd_mode);
		json_object_object_add(wd, "armed", json_object_new_boolean(mi->wd_armed));
		if (mi->wd_armed && mi->wd_timeout > 0)
			json_object_object_add(wd, "timeout", json_object_new_int(mi->wd_timeout));
		if (mi->wd_failed)
			json_object_object_add(wd, "failed", json_object_new_boolean(1));
		json_object_object_add(o, "watchdog", wd);
	}
	if (mi->bmc_address) {
		struct json_object *bmc = json_object_new_object();

		add_str(bmc, "address", mi->bmc_address);
		json_object_object_add(bmc, "lanplus", json_object_new_boolean(mi->bmc_lanplus));
		if (mi->bmc_cipher_suite)
			json_object_object_add(bmc, "cipher_suite",
			                       json_object_new_int(mi->bmc_cipher_suite));
		add_str(bmc, "privilege", mi->bmc_privilege);
		json_object_object_add(o, "bmc", bmc);
	}
	if (mi->fence_target) {
		struct json_object *fe = json_object_new_object();

		add_str(fe, "target", mi->fence_target);
		add_str(fe, "result", "failed");
		add_str(fe, "reason", mi->fence_reason);
		json_object_object_add(o, "fencing", fe);
	}
	if (mi->failover_blocked)
		add_str(o, "failover_blocked", mi->failover_blocked);
	if (mi->scheduled_restart) {
		struct json_object *sr = json_object_new_object();

		add_str(sr, "schedule", mi->scheduled_restart);
		json_object_object_add(o, "scheduled_restart", sr);
	}
	if (mi->nofailover)
		json_object_object_add(tags, "nofailover", json_object_new_boolean(1));
	if (mi->noloadbalance)
		json_object_object_add(tags, "noloadbalance", json_object_new_boolean(1));
	if (mi->clonefrom)
		json_object_object_add(tags, "clonefrom", json_object_new_boolean(1));
	if (mi->nosync)
		json_object_object_add(tags, "nosync", json_object_new_boolean(1));
	if (mi->failover_priority != 1)
		json_object_object_add(tags, "failover_priority",
		                       json_object_new_int(mi->failover_priority));
	if (mi->replicatefrom && mi->replicatefrom[0])
		add_str(tags, "replicatefrom", mi->replicatefrom);
	if (mi->nostream)
		json_object_object_add(tags, "nostream", json_object_new_boolean(1));
	if (json_object_object_length(tags) > 0)
		json_object_object_add(o, "tags", tags);
	else
		json_object_put(tags);
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	free(conn);
	free(api);
	return out;
}

char *pgw_history_append(const char *old, int old_timeline, uint64_t switch_lsn, const char *reason,
                         const char *timestamp, const char *new_leader)
{
	return pgw_history_append_max(old, old_timeline, switch_lsn, reason, timestamp, new_leader,
	                              0);
}

char *pgw_history_append_max(const char *old, int old_timeline, uint64_t switch_lsn,
                             const char *reason, const char *timestamp, const char *new_leader,
                             int max_rows)
{
	struct json_object *arr = old ? json_tokener_parse(old) : NULL;
	struct json_object *line = json_object_new_array();
	size_t n;
	char *out;

	if (!arr || !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		arr = json_object_new_array();
	}
	json_object_array_add(line, json_object_new_int(old_timeline));
	json_object_array_add(line, json_object_new_int64((int64_t)switch_lsn));
	json_object_array_add(line, json_object_new_string(reason));
	json_object_array_add(line, json_object_new_string(timestamp));
	json_object_array_add(line, json_object_new_string(new_leader));
	json_object_array_add(arr, line);
	n = json_object_array_length(arr);
	if (max_rows > 0 && n > (size_t)max_rows)
		json_object_array_del_idx(arr, 0, n - (size_t)max_rows);
	out = strdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
	                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(arr);
	return out;
}

static bool given(const char *s)
{
	return s && *s;
}

char *pgw_failover_json(const char *leader, const char *candidate, const char *scheduled_at)
{
	struct json_object *o = json_object_new_object();
	char *out;

	if (given(leader))
		json_object_object_add(o, "leader", json_object_new_string(leader));
	if (given(candidate))
		json_object_object_add(o, "member", json_object_new_string(candidate));
	if (given(scheduled_at))
		json_object_object_add(o, "scheduled_at", json_object_new_string(scheduled_at));
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}
