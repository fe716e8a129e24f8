/*
 * pgwardenctl.c - the operator CLI of pgwarden, patronictl's counterpart:
 *
 *   pgwardenctl [-c CONFIG] COMMAND [options]
 *   list, topology, history, show-config, edit-config, pause, resume,
 *   switchover, failover, restart, reload, reinit, version
 *
 * It reads the daemon's own configuration file for etcd3.hosts, namespace and
 * scope and talks to etcd directly (Patroni's key layout), never to PostgreSQL.
 * This file does the I/O (etcd, terminal, clock); the decisions and texts are
 * in ctl_*.c (ctl.h), where the unit tests reach them.
 *
 * Exit status: 0 success, 1 failed or refused, 2 usage error.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "audit.h"
#include "etcd.h"

#define ETCD_TIMEOUT_MS 5000
#define WAIT_S          60

struct ctl {
	const struct pgw_ctl_args *a;
	struct pgw_config *cfg;
	struct pgw_etcd *etcd;
	const char *scope;
	char prefix[512];
};

/* ---- small helpers ---------------------------------------------------------------- */

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	nanosleep(&ts, NULL);
}

static int fail(const char *cmd, const char *msg)
{
	fprintf(stderr, "pgwardenctl %s: %s\n", cmd, msg);
	return PGW_CTL_FAILED;
}

static int etcd_fail(const struct ctl *x, const char *what)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s: etcd: %s", what, pgw_etcd_errmsg(x->etcd));
	return fail(pgw_ctl_cmd_name(x->a->cmd), msg);
}

static void key_path(const struct ctl *x, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", x->prefix, name);
}

/* Read a line from stdin after printing prompt; "" on EOF. */
static void ask(const char *prompt, char *buf, size_t len)
{
	size_t n;

	fputs(prompt, stdout);
	fflush(stdout);
	if (!fgets(buf, (int)len, stdin)) {
		buf[0] = '\0';
		fputs("\n", stdout);
		return;
	}
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
}

static bool confirm(const char *prompt)
{
	char line[64];

	ask(prompt, line, sizeof(line));
	return strcmp(line, "y") == 0 || strcmp(line, "Y") == 0 || strcmp(line, "yes") == 0;
}

static int print_text(char *text)
{
	if (!text)
		return fail("", "out of memory");
	fputs(text, stdout);
	fflush(stdout);
	free(text);
	return PGW_CTL_OK;
}

/* ---- reading etcd ----------------------------------------------------------------- */

/* The whole scope prefix: cluster parsed, range kept for the raw member values. */
static int read_cluster(struct ctl *x, struct pgw_etcd_range *r, struct pgw_cluster *c)
{
	memset(r, 0, sizeof(*r));
	memset(c, 0, sizeof(*c));
	c->optime = -1;
	if (pgw_etcd_range_prefix(x->etcd, x->prefix, ETCD_TIMEOUT_MS, r) != 0)
		return etcd_fail(x, "cannot read the cluster");
	pgw_cluster_parse(r, x->prefix, c);
	return PGW_CTL_OK;
}

/* One key; *value NULL when absent. */
static int read_key(struct ctl *x, const char *name, char **value, int64_t *mod_rev)
{
	struct pgw_etcd_range r;
	char key[600];

	*value = NULL;
	*mod_rev = 0;
	key_path(x, name, key, sizeof(key));
	if (pgw_etcd_get(x->etcd, key, ETCD_TIMEOUT_MS, &r) != 0)
		return etcd_fail(x, key);
	if (r.n > 0) {
		*value = strdup(r.kvs[0].value);
		*mod_rev = r.kvs[0].mod_revision;
	}
	pgw_etcd_range_free(&r);
	return PGW_CTL_OK;
}

static char *render_cluster(struct ctl *x, enum pgw_ctl_fmt fmt, bool topology, int *rc)
{
	struct pgw_etcd_range r;
	struct pgw_cluster c;
	struct pgw_ctl_view *v;
	char *text = NULL;

	*rc = read_cluster(x, &r, &c);
	if (*rc)
		return NULL;
	v = malloc(sizeof(*v));
	if (v) {
		pgw_ctl_view_build(v, &c, &r, x->prefix, x->scope);
		text = pgw_ctl_render_list(v, fmt, topology);
	}
	free(v);
	pgw_cluster_clear(&c);
	pgw_etcd_range_free(&r);
	if (!text)
		*rc = fail("list", "out of memory");
	return text;
}

/* ---- list, topology, history, show-config ----------------------------------------- */

static void watch_header(void)
{
	char stamp[64];
	time_t t = time(NULL);
	struct tm tm;

	if (isatty(STDOUT_FILENO))
		fputs("\033[H\033[2J", stdout);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S %Z", localtime_r(&t, &tm));
	printf("%s\n", stamp);
}

static int cmd_list(struct ctl *x)
{
	bool topology = x->a->cmd == PGW_CTL_TOPOLOGY;
	int rc;

	for (;;) {
		char *text;

		if (x->a->watch)
			watch_header();
		text = render_cluster(x, x->a->fmt, topology, &rc);
		if (text)
			print_text(text);
		if (!x->a->watch)
			return rc;
		sleep_s(x->a->interval);
	}
}

static int cmd_history(struct ctl *x)
{
	char *value;
	int64_t rev;
	int rc = read_key(x, "history", &value, &rev);

	if (rc)
		return rc;
	rc = print_text(pgw_ctl_render_history(value, x->a->fmt));
	free(value);
	return rc;
}

static int cmd_show_config(struct ctl *x)
{
	char *value, err[512], *text;
	int64_t rev;
	int rc = read_key(x, "config", &value, &rev);

	if (rc)
		return rc;
	if (!value) {
		snprintf(err, sizeof(err), "cluster %s has no config key (not bootstrapped yet?)",
		         x->scope);
		return fail("show-config", err);
	}
	text = pgw_ctl_render_config(value, x->a->fmt, err, sizeof(err));
	free(value);
	return text ? print_text(text) : fail("show-config", err);
}

/* ---- the config key: edit-config, pause, resume ----------------------------------- */

struct cfg_edit {
	struct json_object *old_cfg, *new_cfg;
	int64_t mod_rev;
};

static int load_config_key(struct ctl *x, struct cfg_edit *e)
{
	char *value;
	int rc = read_key(x, "config", &value, &e->mod_rev);

	e->old_cfg = e->new_cfg = NULL;
	if (rc)
		return rc;
	e->old_cfg = value ? json_tokener_parse(value) : json_object_new_object();
	free(value);
	if (!e->old_cfg || !json_object_is_type(e->old_cfg, json_type_object)) {
		json_object_put(e->old_cfg);
		e->old_cfg = NULL;
		return fail(pgw_ctl_cmd_name(x->a->cmd), "the config key is not a JSON object");
	}
	e->new_cfg = NULL;
	if (json_object_deep_copy(e->old_cfg, &e->new_cfg, NULL) != 0)
		return fail(pgw_ctl_cmd_name(x->a->cmd), "out of memory");
	return PGW_CTL_OK;
}

static void edit_free(struct cfg_edit *e)
{
	json_object_put(e->old_cfg);
	json_object_put(e->new_cfg);
}

static int store_config_key(struct ctl *x, struct cfg_edit *e)
{
	const char *json = json_object_to_json_string_ext(
	    e->new_cfg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char key[600];
	bool ok = false;

	key_path(x, "config", key, sizeof(key));
	if (pgw_etcd_put_if_mod(x->etcd, key, json, strlen(json), 0, e->mod_rev, ETCD_TIMEOUT_MS,
	                        &ok) != 0)
		return etcd_fail(x, key);
	if (!ok)
		return fail(pgw_ctl_cmd_name(x->a->cmd), "config changed concurrently, try again");
	return PGW_CTL_OK;
}

/* The whole of FILE ("-": stdin), NUL-terminated; NULL with a message printed. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f) {
		fprintf(stderr, "pgwardenctl edit-config: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	do {
		if (n + 4096 + 1 > cap) {
			char *nb = cap < 1024 * 1024 ? realloc(buf, cap = n + 65536) : NULL;

			if (!nb) {
				fprintf(stderr, "pgwardenctl edit-config: %s: larger than 1 MiB\n",
				        path);
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	if (buf && ferror(f)) {
		fprintf(stderr, "pgwardenctl edit-config: %s: %s\n", path, strerror(errno));
		free(buf);
		buf = NULL;
	}
	if (f != stdin)
		fclose(f);
	if (buf)
		buf[n] = '\0';
	*len = n;
	return buf;
}

/* --apply FILE merges the file into the config, --replace FILE replaces it. */
static int apply_file(struct cfg_edit *e, const char *path, bool replace)
{
	char err[512];
	size_t len;
	char *text = slurp(path, &len);
	struct json_object *patch;

	if (!text)
		return PGW_CTL_FAILED;
	patch =
	    pgw_conf_yaml_to_json(strcmp(path, "-") ? path : "stdin", text, len, err, sizeof(err));
	free(text);
	if (!patch)
		return fail("edit-config", err);
	if (replace) {
		json_object_put(e->new_cfg);
		e->new_cfg = patch;
	} else {
		pgw_conf_merge_patch(e->new_cfg, patch);
		json_object_put(patch);
	}
	return PGW_CTL_OK;
}

/* No -s/-p/--apply and a terminal: the YAML in $EDITOR, the result replaces it. */
static int run_editor(struct cfg_edit *e)
{
	char path[] = "/tmp/pgwardenctl-config-XXXXXX.yaml", cmd[1200];
	const char *editor = getenv("EDITOR");
	char *yaml = pgw_yaml_dump(e->old_cfg, true);
	int fd = mkstemps(path, 5), rc;

	if (fd < 0 || !yaml) {
		free(yaml);
		return fail("edit-config",
		            fd < 0 ? "cannot create a temporary file" : "out of memory");
	}
	if (write(fd, yaml, strlen(yaml)) != (ssize_t)strlen(yaml)) {
		close(fd);
		unlink(path);
		free(yaml);
		return fail("edit-config", "cannot write the temporary file");
	}
	close(fd);
	free(yaml);
	snprintf(cmd, sizeof(cmd), "%s '%s'", editor && *editor ? editor : "vi", path);
	rc = system(cmd);
	if (rc != 0) {
		unlink(path);
		return fail("edit-config", "the editor failed, nothing changed");
	}
	rc = apply_file(e, path, true);
	unlink(path);
	return rc;
}

static int apply_sets(struct ctl *x, struct cfg_edit *e)
{
	char err[512];
	int rc = PGW_CTL_OK;

	if (x->a->apply_file)
		rc = apply_file(e, x->a->apply_file, x->a->replace);
	else if (x->a->nsets == 0)
		rc = run_editor(e);
	if (rc)
		return rc;
	for (size_t i = 0; i < x->a->nsets; i++)
		if (!pgw_conf_apply_set(e->new_cfg, x->a->sets[i], err, sizeof(err)))
			return fail("edit-config", err);
	if (!pgw_conf_validate(e->new_cfg, x->cfg->watchdog.safety_margin, err, sizeof(err))) {
		char msg[600];

		snprintf(msg, sizeof(msg), "refused, nothing changed: %s", err);
		return fail("edit-config", msg);
	}
	return PGW_CTL_OK;
}

static int edit_config(struct ctl *x, struct cfg_edit *e)
{
	char *diff;
	int rc = apply_sets(x, e);

	if (rc)
		return rc;
	diff = pgw_conf_diff(e->old_cfg, e->new_cfg);
	if (!diff)
		return fail("edit-config", "out of memory");
	if (!*diff) {
		free(diff);
		printf("Not changed\n");
		return PGW_CTL_OK;
	}
	printf("---\n+++\n%s", diff);
	free(diff);
	if (!x->a->force && !confirm("Apply these changes? [y/N]: "))
		return fail("edit-config", "aborted, nothing changed");
	rc = store_config_key(x, e);
	if (rc == PGW_CTL_OK)
		printf("Configuration changed\n");
	return rc;
}

static int cmd_edit_config(struct ctl *x)
{
	struct cfg_edit e;
	int rc;

	if (x->a->nsets == 0 && !x->a->apply_file && !isatty(STDIN_FILENO)) {
		fprintf(stderr, "pgwardenctl edit-config: nothing to change: give -s KEY=VALUE, "
		                "-p PARAM=VALUE or --apply FILE (the editor needs a terminal)\n");
		return PGW_CTL_USAGE;
	}
	rc = load_config_key(x, &e);
	if (rc == PGW_CTL_OK)
		rc = edit_config(x, &e);
	edit_free(&e);
	return rc;
}

/* Every member key says pause (or none does). */
static int pause_recognized(struct ctl *x, bool pause, bool *done)
{
	struct pgw_etcd_range r;
	struct pgw_cluster c;
	struct pgw_ctl_view *v = malloc(sizeof(*v));
	int rc = v ? read_cluster(x, &r, &c) : fail("pause", "out of memory");

	*done = false;
	if (rc) {
		free(v);
		return rc;
	}
	pgw_ctl_view_build(v, &c, &r, x->prefix, x->scope);
	*done = true;
	for (int i = 0; i < v->n; i++)
		if (v->members[i].pause != pause)
			*done = false;
	free(v);
	pgw_cluster_clear(&c);
	pgw_etcd_range_free(&r);
	return PGW_CTL_OK;
}

static int wait_pause(struct ctl *x, bool pause)
{
	double deadline = now_mono() + WAIT_S;
	bool done = false;

	printf("'%s' request sent, waiting until it is recognized by all nodes\n",
	       pause ? "pause" : "resume");
	fflush(stdout);
	while (now_mono() < deadline) {
		if (pause_recognized(x, pause, &done) == PGW_CTL_OK && done)
			return PGW_CTL_OK;
		sleep_s(1);
	}
	return fail(pause ? "pause" : "resume",
	            "not every member recognized the change within 60 s (see `pgwardenctl list`)");
}

static int toggle_pause(struct ctl *x, struct cfg_edit *e, bool pause)
{
	struct json_object *v;
	bool paused = json_object_object_get_ex(e->old_cfg, "pause", &v) &&
	              json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
	int rc;

	if (paused == pause)
		return fail(pause ? "pause" : "resume",
		            pause ? "cluster is already paused" : "cluster is not paused");
	if (pause)
		json_object_object_add(e->new_cfg, "pause", json_object_new_boolean(1));
	else
		json_object_object_del(e->new_cfg, "pause");
	rc = store_config_key(x, e);
	if (rc)
		return rc;
	if (x->a->wait && (rc = wait_pause(x, pause)) != 0)
		return rc;
	printf("Success: cluster management is %s\n", pause ? "paused" : "resumed");
	return PGW_CTL_OK;
}

static int cmd_pause(struct ctl *x)
{
	struct cfg_edit e;
	int rc = load_config_key(x, &e);

	if (rc == PGW_CTL_OK)
		rc = toggle_pause(x, &e, x->a->cmd == PGW_CTL_PAUSE);
	edit_free(&e);
	return rc;
}

/* ---- switchover and failover ------------------------------------------------------ */

struct request {
	char leader[PGW_NAME_MAX];    /* the leader to demote ("" = none) */
	char candidate[PGW_NAME_MAX]; /* "" = any healthy replica */
};

/* "['node2', 'node3']": the members that would pass as candidates. */
static void candidates(const struct pgw_cluster *c, const char *scope, char *buf, size_t len)
{
	char why[256];
	size_t used = 0;

	snprintf(buf, len, "[");
	for (int i = 0; i < c->nmembers; i++) {
		const char *name = c->members[i].name;

		if (!pgw_check_switchover(c, scope, true, NULL, name, why, sizeof(why)))
			continue;
		used = strlen(buf);
		snprintf(buf + used, len - used, "%s'%s'", used > 1 ? ", " : "", name);
	}
	used = strlen(buf);
	snprintf(buf + used, len - used, "]");
}

static void prompt_missing(const struct ctl *x, const struct pgw_cluster *c, bool failover,
                           struct request *q)
{
	char prompt[1024], list[700], line[PGW_NAME_MAX];

	if (!failover && !x->a->leader && c->has_leader) {
		snprintf(prompt, sizeof(prompt), "Primary [%s]: ", c->leader);
		ask(prompt, line, sizeof(line));
		snprintf(q->leader, sizeof(q->leader), "%s", line[0] ? line : c->leader);
	}
	if (!x->a->candidate) {
		candidates(c, x->scope, list, sizeof(list));
		snprintf(prompt, sizeof(prompt), "Candidate %s []: ", list);
		ask(prompt, q->candidate, sizeof(q->candidate));
	}
}

static int check_request(const struct ctl *x, const struct pgw_cluster *c, bool failover,
                         struct request *q)
{
	const char *cmd = failover ? "failover" : "switchover";
	char err[512], prompt[700];

	if (!pgw_check_switchover(c, x->scope, failover, q->leader, q->candidate, err, sizeof(err)))
		return fail(cmd, err);
	if (failover)
		snprintf(q->leader, sizeof(q->leader), "%s", c->has_leader ? c->leader : "");
	else if (!q->leader[0])
		snprintf(q->leader, sizeof(q->leader), "%s", c->leader);
	if (x->a->scheduled) {
		double t = 0;

		pgw_parse_iso8601(x->a->scheduled, &t);
		if (t < (double)time(NULL))
			return fail(cmd, "the scheduled time is in the past");
	}
	if (x->a->force)
		return PGW_CTL_OK;
	if (q->leader[0])
		snprintf(
		    prompt, sizeof(prompt),
		    "Are you sure you want to %s cluster %s, demoting current leader %s? [y/N]: ",
		    cmd, x->scope, q->leader);
	else
		snprintf(prompt, sizeof(prompt),
		         "Are you sure you want to %s cluster %s? [y/N]: ", cmd, x->scope);
	return confirm(prompt) ? PGW_CTL_OK : fail(cmd, "aborted, nothing changed");
}

static int write_request(struct ctl *x, const struct request *q)
{
	char key[600], msg[800], *json, *cur;
	bool ok = false;
	int64_t rev;
	int rc;

	json = pgw_failover_json(q->leader, q->candidate, x->a->scheduled);
	if (!json)
		return fail(pgw_ctl_cmd_name(x->a->cmd), "out of memory");
	key_path(x, "failover", key, sizeof(key));
	rc = pgw_etcd_create(x->etcd, key, json, strlen(json), 0, ETCD_TIMEOUT_MS, &ok);
	free(json);
	if (rc != 0)
		return etcd_fail(x, key);
	if (ok)
		return PGW_CTL_OK;
	if (read_key(x, "failover", &cur, &rev) != 0)
		cur = NULL;
	snprintf(msg, sizeof(msg), "a switchover is already pending: %s", cur ? cur : "?");
	free(cur);
	return fail(pgw_ctl_cmd_name(x->a->cmd), msg);
}

static bool switched(const char *now_leader, const struct request *q)
{
	if (!now_leader || !*now_leader || strcmp(now_leader, q->leader) == 0)
		return false;
	return !q->candidate[0] || strcmp(now_leader, q->candidate) == 0;
}

static int report_timeout(struct ctl *x, const struct request *q, const char *now_leader)
{
	char *fo = NULL;
	int64_t rev;
	const char *what = x->a->cmd == PGW_CTL_FAILOVER ? "Failover" : "Switchover";

	read_key(x, "failover", &fo, &rev);
	fprintf(stderr, "%s failed: after %d s the leader is %s%s%s; the failover key %s%s\n", what,
	        WAIT_S, now_leader && *now_leader ? now_leader : "(none)",
	        q->leader[0] ? ", was " : "", q->leader, fo ? "is still there: " : "is gone",
	        fo ? fo : "");
	free(fo);
	return PGW_CTL_FAILED;
}

static int wait_switched(struct ctl *x, const struct request *q)
{
	double deadline = now_mono() + WAIT_S;
	char *leader = NULL;
	int64_t rev;
	int rc;

	for (;;) {
		free(leader);
		leader = NULL;
		if (read_key(x, "leader", &leader, &rev) == 0 && switched(leader, q))
			break;
		if (now_mono() >= deadline) {
			rc = report_timeout(x, q, leader);
			free(leader);
			return rc;
		}
		sleep_s(1);
	}
	printf("Successfully %s to %s\n",
	       x->a->cmd == PGW_CTL_FAILOVER ? "failed over" : "switched over", leader);
	free(leader);
	return print_text(render_cluster(x, PGW_FMT_TABLE, false, &rc));
}

static int switch_cluster(struct ctl *x, const struct pgw_cluster *c, bool failover)
{
	struct request q;
	int rc;

	memset(&q, 0, sizeof(q));
	snprintf(q.leader, sizeof(q.leader), "%s", x->a->leader ? x->a->leader : "");
	snprintf(q.candidate, sizeof(q.candidate), "%s", x->a->candidate ? x->a->candidate : "");
	if (!x->a->force)
		prompt_missing(x, c, failover, &q);
	rc = check_request(x, c, failover, &q);
	if (rc == PGW_CTL_OK)
		rc = write_request(x, &q);
	if (rc != PGW_CTL_OK)
		return rc;
	if (x->a->scheduled) {
		printf("%s scheduled at %s\n", failover ? "Failover" : "Switchover",
		       x->a->scheduled);
		return PGW_CTL_OK;
	}
	return wait_switched(x, &q);
}

static int cmd_switchover(struct ctl *x)
{
	bool failover = x->a->cmd == PGW_CTL_FAILOVER;
	const char *cmd = pgw_ctl_cmd_name(x->a->cmd);
	struct pgw_etcd_range r;
	struct pgw_cluster c;
	int rc;

	if (!x->a->force && !isatty(STDIN_FILENO)) {
		fprintf(stderr,
		        "pgwardenctl %s: stdin is not a terminal: use --force to %s without "
		        "confirmation\n",
		        cmd, cmd);
		return PGW_CTL_USAGE;
	}
	if (failover && x->a->force && !x->a->candidate) {
		fprintf(stderr, "pgwardenctl failover: --candidate NAME is required\n");
		return PGW_CTL_USAGE;
	}
	rc = read_cluster(x, &r, &c);
	if (rc)
		return rc;
	rc = switch_cluster(x, &c, failover);
	pgw_cluster_clear(&c);
	pgw_etcd_range_free(&r);
	return rc;
}

/* ---- setup ------------------------------------------------------------------------ */

static int setup(struct ctl *x, char *ns_buf, size_t ns_len)
{
	const char *path = x->a->config ? x->a->config : getenv("PGWARDENCTL_CONFIG");
	struct pgw_etcd_tls tls;
	char err[1024];
	const char *ns;

	if (!path || !*path)
		path = PGW_CTL_DEFAULT_CONFIG;
	x->cfg = pgw_config_load(path, err, sizeof(err));
	if (!x->cfg) {
		fprintf(stderr, "pgwardenctl: %s\n", err);
		return PGW_CTL_FAILED;
	}
	if (pgw_config_resolve_etcd_srv(x->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "pgwardenctl: %s\n", err);
		return PGW_CTL_FAILED;
	}
	x->scope = x->a->scope ? x->a->scope : x->cfg->scope;
	ns = x->a->namespace ? x->a->namespace : x->cfg->namespace;
	snprintf(ns_buf, ns_len, "%s%s%s", ns[0] == '/' ? "" : "/", ns,
	         ns[0] && ns[strlen(ns) - 1] == '/' ? "" : "/");
	snprintf(x->prefix, sizeof(x->prefix), "%s%s/", ns_buf, x->scope);
	tls.cacert = x->cfg->etcd3.cacert;
	tls.cert = x->cfg->etcd3.cert;
	tls.key = x->cfg->etcd3.key;
	x->etcd = pgw_etcd_new((const char *const *)x->cfg->etcd3.hosts.items,
	                       x->cfg->etcd3.hosts.n, x->cfg->etcd3.protocol,
	                       x->cfg->etcd3.username, x->cfg->etcd3.password, &tls);
	if (!x->etcd) {
		fprintf(stderr, "pgwardenctl: cannot set up the etcd client for %s\n", path);
		return PGW_CTL_FAILED;
	}
	return PGW_CTL_OK;
}

/* ---- restart, reinit: the members' REST API ------------------------------------------ */

struct http_buf {
	char data[512];
	size_t len;
};

static size_t http_sink(char *p, size_t size, size_t n, void *ud)
{
	struct http_buf *b = ud;
	size_t k = size * n, room = sizeof(b->data) - 1 - b->len;

	memcpy(b->data + b->len, p, k < room ? k : room);
	b->len += k < room ? k : room;
	b->data[b->len] = '\0';
	return size * n;
}

/*
 * TLS towards the members' REST API (an https api_url): ctl.cacert, ctl.certfile
 * and ctl.keyfile, defaulting to restapi.cafile, certfile and keyfile as in
 * patronictl; ctl.insecure skips the certificate checks.
 */
static void set_tls(CURL *curl, const struct pgw_config *cfg)
{
	const char *ca = cfg->ctl.cacert ? cfg->ctl.cacert : cfg->restapi.tls.cafile;
	const char *cert = cfg->ctl.certfile ? cfg->ctl.certfile : cfg->restapi.tls.certfile;
	const char *key = cfg->ctl.certfile ? cfg->ctl.keyfile : cfg->restapi.tls.keyfile;
	const char *pass =
	    cfg->ctl.certfile ? cfg->ctl.keyfile_password : cfg->restapi.tls.keyfile_password;

	if (ca)
		curl_easy_setopt(curl, CURLOPT_CAINFO, ca);
	if (cert && access(cert, R_OK) == 0) {
		curl_easy_setopt(curl, CURLOPT_SSLCERT, cert);
		if (key)
			curl_easy_setopt(curl, CURLOPT_SSLKEY, key);
		if (pass)
			curl_easy_setopt(curl, CURLOPT_KEYPASSWD, pass);
	}
	if (cfg->ctl.insecure) {
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

/* http://127.x.x.x, http://localhost or http://[::1]: the password stays on this host. */
static bool loopback_url(const char *url)
{
	const char *h = strstr(url, "://");

	h = h ? h + 3 : url;
	return strncmp(h, "127.", 4) == 0 || strncmp(h, "[::1]", 5) == 0 ||
	       (strncmp(h, "localhost", 9) == 0 && strchr(":/", h[9]));
}

/* The host of url (http://host:port/..., http://[v6]:port/...) into buf; false if none. */
static bool url_host(const char *url, char *buf, size_t size)
{
	const char *h = strstr(url, "://"), *e;

	if (!h)
		return false;
	h += 3;
	if (*h == '[')
		e = strchr(++h, ']');
	else
		e = h + strcspn(h, ":/?#");
	if (!e || e == h || (size_t)(e - h) >= size)
		return false;
	memcpy(buf, h, (size_t)(e - h));
	buf[e - h] = '\0';
	return true;
}

/*
 * The member key is etcd's data, so its api_url is too: with ctl.api_hosts set, only
 * the hosts listed there get a request (and the REST password).  False, with the
 * reason in out, for any other host.
 */
static bool api_host_allowed(const struct pgw_config *cfg, const struct pgw_member *m,
                             struct http_buf *out)
{
	char host[256];

	if (cfg->ctl.api_hosts.n == 0)
		return true;
	if (url_host(m->api_url, host, sizeof(host)))
		for (size_t i = 0; i < cfg->ctl.api_hosts.n; i++)
			if (strcasecmp(cfg->ctl.api_hosts.items[i], host) == 0)
				return true;
	snprintf(out->data, sizeof(out->data),
	         "member %.64s publishes api_url \"%.200s\", whose host is not in ctl.api_hosts: "
	         "nothing sent",
	         m->name, m->api_url);
	return false;
}

/* POST path with body to the member's REST API (api_url with its path replaced). */
static long post_member(struct ctl *x, const struct pgw_member *m, const char *path,
                        const char *body, struct http_buf *out)
{
	CURL *curl = curl_easy_init();
	char url[512];
	const char *end = strstr(m->api_url, "://");
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	size_t base;
	long code = 0;

	out->len = 0;
	out->data[0] = '\0';
	if (strncmp(m->api_url, "http://", 7) != 0 && strncmp(m->api_url, "https://", 8) != 0) {
		/* the member key is etcd's data: the password goes to http(s) only */
		snprintf(out->data, sizeof(out->data),
		         "member %.64s publishes api_url \"%.200s\": only http:// and https:// are "
		         "used",
		         m->name, m->api_url);
		goto done;
	}
	if (!api_host_allowed(x->cfg, m, out) || !curl || !end)
		goto done;
	end = strchr(end + 3, '/');
	base = end ? (size_t)(end - m->api_url) : strlen(m->api_url);
	snprintf(url, sizeof(url), "%.*s%s", (int)base, m->api_url, path);
	hdr = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 150L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_sink);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
	if (x->cfg->restapi.auth.username) {
		if (strncmp(url, "http://", 7) == 0 && !loopback_url(url))
			fprintf(stderr,
			        "warning: the REST password goes to %s over plain http (set "
			        "restapi.certfile on the members for https)\n",
			        url);
		curl_easy_setopt(curl, CURLOPT_USERNAME, x->cfg->restapi.auth.username);
		curl_easy_setopt(curl, CURLOPT_PASSWORD, x->cfg->restapi.auth.password);
	}
	set_tls(curl, x->cfg);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	else
		snprintf(out->data, sizeof(out->data), "%.300s: no answer: %.150s", url,
		         cerr[0] ? cerr : "connection failed");
done:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(curl);
	return code;
}

static bool named(const struct pgw_ctl_args *a, const char *name)
{
	if (a->nmembers == 0)
		return true;
	for (size_t i = 0; i < a->nmembers; i++)
		if (strcmp(a->members[i], name) == 0)
			return true;
	return false;
}

/* Does member v->members[i] pass restart's --pending and --role filters? */
static bool restart_wanted(const struct ctl *x, const struct pgw_ctl_view *v, int i)
{
	const struct pgw_member *m = v->members[i].m;
	bool leader = v->c->has_leader && strcmp(v->c->leader, m->name) == 0;

	if (x->a->pending && !v->members[i].pending_restart)
		return false;
	if (x->a->role && (strcmp(x->a->role, "replica") == 0) == leader)
		return false;
	return true;
}

static int post_members(struct ctl *x, const struct pgw_ctl_view *v)
{
	bool restart = x->a->cmd == PGW_CTL_RESTART;
	const char *what =
	    x->a->cmd == PGW_CTL_REINIT ? "reinitialize" : pgw_ctl_cmd_name(x->a->cmd);
	const char *path = restart                       ? "/restart"
	                   : x->a->cmd == PGW_CTL_RELOAD ? "/reload"
	                                                 : "/reinitialize";
	char body[256];
	struct http_buf out;
	int rc = PGW_CTL_OK, done = 0;

	/* the time was checked by the argument parser: an ISO 8601 text without quotes */
	snprintf(body, sizeof(body), "{%s%s%s%s%s}",
	         restart && x->a->pending ? "\"restart_pending\":true" : "",
	         restart && x->a->pending && x->a->scheduled ? "," : "",
	         restart && x->a->scheduled ? "\"schedule\":\"" : "",
	         restart && x->a->scheduled ? x->a->scheduled : "",
	         restart && x->a->scheduled ? "\"" : "");
	for (int i = 0; i < v->n; i++) {
		const struct pgw_member *m = v->members[i].m;
		long code;

		if (!named(x->a, m->name) || (restart && !restart_wanted(x, v, i)))
			continue;
		code = post_member(x, m, path, body, &out);
		done++;
		if (code == 200) {
			printf("Success: %s on member %s\n", what, m->name);
		} else if (code == 202) {
			printf("Success: %s scheduled on member %s (%s)\n", what, m->name,
			       out.data);
		} else {
			printf("Failed: %s for member %s, status code=%ld, (%s)\n", what, m->name,
			       code, out.data);
			rc = PGW_CTL_FAILED;
		}
	}
	if (done == 0)
		printf("No member to %s\n", what);
	return rc;
}

static int cmd_member_request(struct ctl *x)
{
	const char *cmd = pgw_ctl_cmd_name(x->a->cmd);
	struct pgw_etcd_range r;
	struct pgw_cluster c;
	struct pgw_ctl_view *v;
	char prompt[256];
	int rc;

	if (x->a->cmd == PGW_CTL_REINIT && x->a->nmembers == 0)
		return fail(cmd, "name the members to reinitialize");
	if (!x->a->force && !isatty(STDIN_FILENO)) {
		fprintf(stderr, "pgwardenctl %s: stdin is not a terminal: use --force\n", cmd);
		return PGW_CTL_USAGE;
	}
	rc = read_cluster(x, &r, &c);
	if (rc)
		return rc;
	v = malloc(sizeof(*v));
	if (!v) {
		rc = fail(cmd, "out of memory");
	} else {
		pgw_ctl_view_build(v, &c, &r, x->prefix, x->scope);
		for (size_t i = 0; i < x->a->nmembers && rc == PGW_CTL_OK; i++)
			if (!pgw_cluster_member(&c, x->a->members[i]))
				rc = fail(x->a->members[i], "is not a member of the cluster");
		snprintf(prompt, sizeof(prompt), "Are you sure you want to %s %s? [y/N] ", cmd,
		         x->a->nmembers ? "these members" : "all members");
		if (rc == PGW_CTL_OK && !x->a->force && !confirm(prompt))
			rc = fail(cmd, "aborted");
		if (rc == PGW_CTL_OK)
			rc = post_members(x, v);
	}
	free(v);
	pgw_cluster_clear(&c);
	pgw_etcd_range_free(&r);
	return rc;
}

/* ---- fencing ------------------------------------------------------------------------ */

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
	           ? json_object_get_string(v)
	           : "-";
}

/* fence-log: the records of this node's audit log, or --verify of its chain. */
static int cmd_fence_log(struct ctl *x)
{
	const char *path = x->cfg->fencing.audit_log;
	struct json_object *arr;
	char err[512], *text;
	int rc;

	if (x->a->verify) {
		unsigned char key[PGW_AUDIT_KEY_MAX + 1];
		size_t key_len = 0;

		/* a keyed chain is verified with its key (root's: run this as root) */
		if (x->cfg->fencing.audit_key_file &&
		    pgw_audit_read_key(x->cfg->fencing.audit_key_file, key, &key_len, err,
		                       sizeof(err)) != 0)
			return fail("fence-log --verify", err);
		rc = pgw_audit_verify_all_keyed(path, key_len ? key : NULL, key_len, err,
		                                sizeof(err));
		explicit_bzero(key, sizeof(key));
		if (rc < 0)
			return fail("fence-log", err);
		if (rc > 0) {
			printf("%s: chain BROKEN at line %d: %s\n", path, rc, err);
			return PGW_CTL_FAILED;
		}
		printf("%s: chain intact\n", path);
		return PGW_CTL_OK;
	}
	text = pgw_audit_tail_json(path, 1000000);
	arr = text ? json_tokener_parse(text) : NULL;
	free(text);
	if (!json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		snprintf(err, sizeof(err), "%s: cannot read", path);
		return fail("fence-log", err);
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *r = json_object_array_get_idx(arr, i), *seq;

		json_object_object_get_ex(r, "seq", &seq);
		printf("%5" PRId64 "  %s  %-8s %-15s %-8s %-14s %s\n", json_object_get_int64(seq),
		       jstr(r, "wall"), jstr(r, "actor"), jstr(r, "action"), jstr(r, "target"),
		       jstr(r, "result"), jstr(r, "reason"));
	}
	json_object_put(arr);
	return PGW_CTL_OK;
}

/* unfence CLUSTER MEMBER: POST /unfence to the leader (or another running member). */
static int cmd_unfence(struct ctl *x)
{
	const char *target = x->a->nmembers == 1 ? x->a->members[0] : NULL;
	const struct pgw_member *api = NULL;
	struct pgw_etcd_range r;
	struct pgw_cluster c;
	struct http_buf out;
	char body[128], prompt[160];
	long code;
	int rc;

	if (!target)
		return fail("unfence", "name one member to power on");
	if (!x->a->force && !isatty(STDIN_FILENO)) {
		fprintf(stderr, "pgwardenctl unfence: stdin is not a terminal: use --force\n");
		return PGW_CTL_USAGE;
	}
	rc = read_cluster(x, &r, &c);
	if (rc)
		return rc;
	api = pgw_cluster_leader_member(&c);
	for (int i = 0; !api && i < c.nmembers; i++)
		if (strcmp(c.members[i].name, target) != 0 && c.members[i].api_url[0])
			api = &c.members[i];
	snprintf(prompt, sizeof(prompt), "Are you sure you want to power %s on? [y/N] ", target);
	if (!api)
		rc = fail("unfence", "no running member to ask");
	else if (!x->a->force && !confirm(prompt))
		rc = fail("unfence", "aborted");
	if (rc == PGW_CTL_OK) {
		snprintf(body, sizeof(body), "{\"member\":\"%s\"}", target);
		code = post_member(x, api, "/unfence", body, &out);
		if (code == 200) {
			printf("Success: %s (by %s)\n", out.data, api->name);
		} else {
			printf("Failed: unfence %s through %s, status code=%ld, (%s)\n", target,
			       api->name, code, out.data);
			rc = PGW_CTL_FAILED;
		}
	}
	pgw_cluster_clear(&c);
	pgw_etcd_range_free(&r);
	return rc;
}

static int dispatch(struct ctl *x)
{
	switch (x->a->cmd) {
	case PGW_CTL_LIST:
	case PGW_CTL_TOPOLOGY:
		return cmd_list(x);
	case PGW_CTL_HISTORY:
		return cmd_history(x);
	case PGW_CTL_SHOW_CONFIG:
		return cmd_show_config(x);
	case PGW_CTL_EDIT_CONFIG:
		return cmd_edit_config(x);
	case PGW_CTL_PAUSE:
	case PGW_CTL_RESUME:
		return cmd_pause(x);
	case PGW_CTL_SWITCHOVER:
	case PGW_CTL_FAILOVER:
		return cmd_switchover(x);
	case PGW_CTL_RESTART:
	case PGW_CTL_RELOAD:
	case PGW_CTL_REINIT:
		return cmd_member_request(x);
	case PGW_CTL_FENCE_LOG:
		return cmd_fence_log(x);
	case PGW_CTL_UNFENCE:
		return cmd_unfence(x);
	default:
		return PGW_CTL_USAGE;
	}
}

/* Commands that need neither the configuration nor etcd; -1 when cmd needs them. */
static int local_command(const struct pgw_ctl_args *a)
{
	if (a->help) {
		fputs(pgw_ctl_help(a->cmd), stdout);
		return PGW_CTL_OK;
	}
	if (a->cmd == PGW_CTL_VERSION) {
		printf("pgwardenctl %s\n", PGW_VERSION);
		return PGW_CTL_OK;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct pgw_ctl_args *a = malloc(sizeof(*a));
	struct ctl x;
	char err[512], ns[256];
	int rc;

	if (!a)
		return PGW_CTL_FAILED;
	rc = pgw_ctl_parse_args(argc, argv, a, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "pgwardenctl: %s\n", err);
		free(a);
		return rc;
	}
	rc = local_command(a);
	if (rc >= 0) {
		free(a);
		return rc;
	}
	memset(&x, 0, sizeof(x));
	x.a = a;
	rc = setup(&x, ns, sizeof(ns));
	if (rc == PGW_CTL_OK)
		rc = dispatch(&x);
	pgw_etcd_free(x.etcd);
	pgw_config_free(x.cfg);
	free(a);
	return rc;
}
