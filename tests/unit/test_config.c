/*
 * test_config.c - the YAML configuration parser (daemon/config.c): the example
 * conf/pgwarden.yml, the files under tests/unit/data/config/ (good-*.yml declare
 * their warning count, bad-*.yml their exact error on the first line), defaults,
 * every error kind with its exact "file:line: key: ..." message, warnings,
 * pgw_split_hostport, and a small mutation fuzz (run it under ASan).
 *
 * The source tree is found from $PGW_SRCDIR, the current directory, this file's
 * path or the executable's path (build/<variant>/tests/test_config).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define ERRLEN 512

struct env {
	char root[4096]; /* the source tree */
};

/* A config with the three required keys on lines 1-4; `extra` starts at line 5. */
#define BASE "scope: s\nname: n\npostgresql:\n  data_dir: /d\n"

static struct pgw_config *parse(const char *text, char *err)
{
	return pgw_config_parse("t.yml", text, strlen(text), err, ERRLEN);
}

static char *path_in(const struct env *e, const char *rel)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", e->root, rel) > 0);
	return p;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static const char *kv_get(const struct pgw_kvlist *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i].name, name) == 0)
			return l->items[i].value;
	return NULL;
}

/* ---- the example and the data files ------------------------------------- */

static void test_example_conf(void **state)
{
	const struct env *e = *state;
	char err[ERRLEN];
	char *path = path_in(e, "conf/pgwarden.yml");
	struct pgw_config *cfg = pgw_config_load(path, err, sizeof(err));

	if (!cfg)
		fail_msg("%s", err);
	for (size_t i = 0; i < cfg->warnings.n; i++)
		print_message("warning: %s\n", cfg->warnings.items[i]);
	assert_int_equal(cfg->warnings.n, 0);
	assert_string_equal(cfg->path, path);
	assert_string_equal(cfg->name, "node1");
	assert_string_equal(cfg->namespace, "/service/");
	assert_string_equal(cfg->restapi.listen, "127.0.0.1:8008");
	assert_string_equal(cfg->restapi.connect_address, "127.0.0.1:8008");
	assert_string_equal(cfg->postgresql.listen, "127.0.0.1:5432");
	assert_string_equal(cfg->postgresql.connect_address, "127.0.0.1:5432");
	assert_string_equal(cfg->postgresql.data_dir, "/var/lib/postgresql/15/pgwarden");
	assert_string_equal(cfg->postgresql.pgpass, "/var/lib/postgresql/15/pgpass.node1");
	assert_int_equal(cfg->etcd3.hosts.n, 1);
	assert_string_equal(cfg->etcd3.hosts.items[0], "127.0.0.1:2379");
	assert_non_null(cfg->postgresql.superuser.password);
	assert_non_null(cfg->postgresql.replication.password);
	assert_non_null(kv_get(&cfg->postgresql.parameters, "unix_socket_directories"));
	assert_true(cfg->postgresql.pg_hba.n >= 2);
	assert_true(cfg->dcs.loop_wait + 2 * cfg->dcs.retry_timeout <= cfg->dcs.ttl);
	pgw_config_free(cfg);
	free(path);
}

static int first_line_value(const char *file, const char *prefix, char *out, size_t outlen)
{
	char line[1024];
	FILE *f = fopen(file, "r");
	size_t plen = strlen(prefix);

	assert_non_null(f);
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	if (strncmp(line, prefix, plen) != 0)
		return -1;
	snprintf(out, outlen, "%s", line + plen);
	return 0;
}

/* Every good-*.yml parses with its declared number of warnings; every bad-*.yml
 * fails with exactly the message on its first line. */
static void test_data_files(void **state)
{
	const struct env *e = *state;
	char *dir = path_in(e, "tests/unit/data/config");
	DIR *d = opendir(dir);
	struct dirent *de;
	int ngood = 0, nbad = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char want[1024], err[ERRLEN], *file;
		struct pgw_config *cfg;

		if (!strstr(de->d_name, ".yml"))
			continue;
		assert_true(asprintf(&file, "%s/%s", dir, de->d_name) > 0);
		cfg = pgw_config_load(file, err, sizeof(err));
		if (strncmp(de->d_name, "good-", 5) == 0) {
			assert_int_equal(first_line_value(file, "# warnings: ", want, sizeof(want)),
			                 0);
			if (!cfg)
				fail_msg("%s", err);
			if (cfg->warnings.n != (size_t)atoi(want)) {
				for (size_t i = 0; i < cfg->warnings.n; i++)
					print_message("warning: %s\n", cfg->warnings.items[i]);
				fail_msg("%s: %zu warnings, expected %s", de->d_name,
				         cfg->warnings.n, want);
			}
			ngood++;
		} else {
			assert_int_equal(first_line_value(file, "# error: ", want, sizeof(want)),
			                 0);
			if (cfg)
				fail_msg("%s: parsed, expected an error", de->d_name);
			/* the message names the path given; compare from the base name on */
			assert_int_equal(strncmp(err, dir, strlen(dir)), 0);
			assert_string_equal(err + strlen(dir) + 1, want);
			nbad++;
		}
		pgw_config_free(cfg);
		free(file);
	}
	closedir(d);
	free(dir);
	assert_true(ngood >= 3);
	assert_true(nbad >= 10);
}

/* ---- defaults and values ------------------------------------------------ */

static void test_defaults(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg = parse(BASE, err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_string_equal(cfg->path, "t.yml");
	assert_string_equal(cfg->scope, "s");
	assert_string_equal(cfg->name, "n");
	assert_string_equal(cfg->namespace, "/service/");
	assert_string_equal(cfg->user, "postgres");
	assert_string_equal(cfg->restapi.listen, "127.0.0.1:8008");
	assert_string_equal(cfg->restapi.connect_address, "127.0.0.1:8008");
	assert_int_equal(cfg->etcd3.hosts.n, 1);
	assert_string_equal(cfg->etcd3.hosts.items[0], "127.0.0.1:2379");
	assert_string_equal(cfg->etcd3.protocol, "http");
	assert_null(cfg->etcd3.username);
	assert_null(cfg->etcd3.password);
	assert_null(cfg->etcd3.cacert);
	assert_null(cfg->etcd3.cert);
	assert_null(cfg->etcd3.key);
	assert_int_equal(cfg->dcs.ttl, 30);
	assert_int_equal(cfg->dcs.loop_wait, 10);
	assert_int_equal(cfg->dcs.retry_timeout, 10);
	assert_int_equal(cfg->dcs.maximum_lag_on_failover, 1048576);
	assert_int_equal(cfg->dcs.primary_start_timeout, 300);
	assert_true(cfg->dcs.use_pg_rewind);
	assert_true(cfg->dcs.use_slots);
	assert_int_equal(cfg->dcs.pg_parameters.n, 0);
	assert_int_equal(cfg->initdb_args.n, 0);
	assert_string_equal(cfg->postgresql.listen, "127.0.0.1:5432");
	assert_string_equal(cfg->postgresql.connect_address, "127.0.0.1:5432");
	assert_string_equal(cfg->postgresql.data_dir, "/d");
	assert_string_equal(cfg->postgresql.bin_dir, "/usr/lib/postgresql/15/bin");
	assert_string_equal(cfg->postgresql.pgpass, "/pgpass.n");
	assert_string_equal(cfg->postgresql.superuser.username, "postgres");
	assert_null(cfg->postgresql.superuser.password);
	assert_string_equal(cfg->postgresql.replication.username, "replicator");
	assert_null(cfg->postgresql.replication.password);
	assert_null(cfg->postgresql.rewind.username);
	assert_null(cfg->postgresql.rewind.password);
	assert_int_equal(cfg->postgresql.parameters.n, 0);
	assert_int_equal(cfg->postgresql.pg_hba.n, 0);
	assert_false(cfg->tags.nofailover);
	assert_false(cfg->tags.noloadbalance);
	assert_false(cfg->tags.clonefrom);
	assert_false(cfg->tags.nosync);
	assert_int_equal(cfg->tags.failover_priority, 1);
	assert_int_equal(cfg->warnings.n, 0);
	pgw_config_free(cfg);
}

static void test_full_file(void **state)
{
	const struct env *e = *state;
	char err[ERRLEN];
	char *path = path_in(e, "tests/unit/data/config/good-full.yml");
	struct pgw_config *cfg = pgw_config_load(path, err, sizeof(err));
	const struct pgw_kvlist *dp, *lp;

	if (!cfg)
		fail_msg("%s", err);
	assert_string_equal(cfg->namespace, "/clusters/");
	assert_string_equal(cfg->name, "pg2");
	assert_string_equal(cfg->user, "pgw");
	assert_string_equal(cfg->restapi.listen, "0.0.0.0:8010");
	assert_string_equal(cfg->restapi.connect_address, "10.0.0.2:8010");
	assert_int_equal(cfg->etcd3.hosts.n, 3);
	assert_string_equal(cfg->etcd3.hosts.items[0], "10.0.0.1:2379");
	assert_string_equal(cfg->etcd3.hosts.items[1], "10.0.0.2:2379");
	assert_string_equal(cfg->etcd3.hosts.items[2], "[fd00::3]:2379");
	assert_string_equal(cfg->etcd3.protocol, "https");
	assert_string_equal(cfg->etcd3.username, "root");
	assert_string_equal(cfg->etcd3.password, "etcdpw");
	assert_string_equal(cfg->etcd3.cacert, "/etc/ca.pem");
	assert_string_equal(cfg->etcd3.cert, "/etc/cert.pem");
	assert_string_equal(cfg->etcd3.key, "/etc/key.pem");
	assert_int_equal(cfg->dcs.ttl, 60);
	assert_int_equal(cfg->dcs.loop_wait, 5);
	assert_int_equal(cfg->dcs.retry_timeout, 20);
	assert_true(cfg->dcs.maximum_lag_on_failover == INT64_C(10737418240));
	assert_int_equal(cfg->dcs.primary_start_timeout, 0);
	assert_false(cfg->dcs.use_pg_rewind);
	assert_false(cfg->dcs.use_slots);

	/* parameters keep their text, whatever YAML type they look like, in order */
	dp = &cfg->dcs.pg_parameters;
	assert_int_equal(dp->n, 5);
	assert_string_equal(dp->items[0].name, "max_connections");
	assert_string_equal(dp->items[0].value, "200");
	assert_string_equal(dp->items[1].name, "hot_standby");
	assert_string_equal(dp->items[1].value, "true");
	assert_string_equal(dp->items[2].value, "logical");
	assert_string_equal(dp->items[3].value, "0.9");
	assert_string_equal(dp->items[4].name, "pg_stat_statements.max");
	assert_string_equal(dp->items[4].value, "5000");

	assert_int_equal(cfg->initdb_args.n, 3);
	assert_string_equal(cfg->initdb_args.items[0], "--data-checksums");
	assert_string_equal(cfg->initdb_args.items[1], "--encoding=UTF8");
	assert_string_equal(cfg->initdb_args.items[2], "--locale=en_US.UTF-8");

	assert_string_equal(cfg->postgresql.listen, "*:5433");
	assert_string_equal(cfg->postgresql.connect_address, "[::1]:5433");
	assert_string_equal(cfg->postgresql.data_dir, "/srv/pg/data/");
	assert_string_equal(cfg->postgresql.bin_dir, "/usr/lib/postgresql/16/bin");
	assert_string_equal(cfg->postgresql.pgpass, "/tmp/pgpass");
	assert_string_equal(cfg->postgresql.superuser.username, "admin");
	assert_string_equal(cfg->postgresql.superuser.password, "s3cr3t: with colon");
	assert_string_equal(cfg->postgresql.replication.username, "repl");
	assert_string_equal(cfg->postgresql.replication.password, "replpw");
	assert_string_equal(cfg->postgresql.rewind.username, "rewinder");
	assert_string_equal(cfg->postgresql.rewind.password, "rewindpw");
	lp = &cfg->postgresql.parameters;
	assert_int_equal(lp->n, 3);
	assert_string_equal(kv_get(lp, "shared_buffers"), "1GB");
	assert_string_equal(kv_get(lp, "log_min_duration_statement"), "-1");
	assert_string_equal(kv_get(lp, "fsync"), "Yes");
	assert_int_equal(cfg->postgresql.pg_hba.n, 2);
	assert_string_equal(cfg->postgresql.pg_hba.items[0], "local all all trust");
	assert_string_equal(cfg->postgresql.pg_hba.items[1],
	                    "host replication repl 10.0.0.0/24 md5");
	assert_true(cfg->tags.nofailover);
	assert_true(cfg->tags.noloadbalance);
	assert_true(cfg->tags.clonefrom);
	assert_true(cfg->tags.nosync);
	assert_int_equal(cfg->tags.failover_priority, 0);
	assert_int_equal(cfg->warnings.n, 0);
	pgw_config_free(cfg);
	free(path);
}

static void test_parameters_types(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg = parse(BASE "  parameters:\n"
	                                    "    max_connections: 100\n"
	                                    "    hot_standby: on\n"
	                                    "    wal_log_hints: false\n"
	                                    "    wal_level: replica\n"
	                                    "    archive_command: 'cp %p /arch/%f'\n"
	                                    "    random_page_cost: 1.1\n"
	                                    "    Work_Mem: \"4MB\"\n"
	                                    "    custom.setting: yes\n"
	                                    "    shared_preload_libraries: ''\n"
	                                    "bootstrap:\n"
	                                    "  dcs:\n"
	                                    "    postgresql:\n"
	                                    "      parameters: {max_wal_senders: 5, fsync: off}\n",
	                               err);
	const struct pgw_kvlist *p;

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	p = &cfg->postgresql.parameters;
	assert_int_equal(p->n, 9);
	assert_string_equal(kv_get(p, "max_connections"), "100");
	assert_string_equal(kv_get(p, "shared_preload_libraries"), "");
	assert_string_equal(kv_get(p, "hot_standby"), "on");
	assert_string_equal(kv_get(p, "wal_log_hints"), "false");
	assert_string_equal(kv_get(p, "wal_level"), "replica");
	assert_string_equal(kv_get(p, "archive_command"), "cp %p /arch/%f");
	assert_string_equal(kv_get(p, "random_page_cost"), "1.1");
	assert_string_equal(kv_get(p, "Work_Mem"), "4MB");
	assert_string_equal(kv_get(p, "custom.setting"), "yes");
	p = &cfg->dcs.pg_parameters;
	assert_int_equal(p->n, 2);
	assert_string_equal(kv_get(p, "max_wal_senders"), "5");
	assert_string_equal(kv_get(p, "fsync"), "off");
	assert_int_equal(cfg->warnings.n, 0);
	pgw_config_free(cfg);
}

static void test_hosts_forms(void **state)
{
	static const struct {
		const char *yaml;
		size_t n;
		const char *last;
	} cases[] = {
	    {"etcd3:\n  hosts:\n    - a:2379\n    - b:2380\n    - '[::1]:2379'\n", 3, "[::1]:2379"},
	    {"etcd3:\n  hosts: [a:1, b:2]\n", 2, "b:2"},
	    {"etcd3:\n  hosts: a:2379,b:2379 , c:2379\n", 3, "c:2379"},
	    {"etcd3:\n  hosts: 10.1.1.1:2379\n", 1, "10.1.1.1:2379"},
	    {"etcd3:\n  host: 10.1.1.1:2379\n", 1, "10.1.1.1:2379"},
	    {"etcd3:\n  hosts: \"x:1,y:2\"\n", 2, "y:2"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[ERRLEN], *text;
		struct pgw_config *cfg;

		assert_true(asprintf(&text, "%s%s", BASE, cases[i].yaml) > 0);
		cfg = parse(text, err);
		if (!cfg)
			fail_msg("case %zu: %s", i, err);
		assert_int_equal(cfg->etcd3.hosts.n, cases[i].n);
		assert_string_equal(cfg->etcd3.hosts.items[cases[i].n - 1], cases[i].last);
		assert_int_equal(cfg->warnings.n, 0);
		pgw_config_free(cfg);
		free(text);
	}
}

static void test_initdb_forms(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg;

	(void)state;
	cfg = parse(BASE "bootstrap:\n  initdb:\n"
	                 "  - data-checksums\n"
	                 "  - encoding: UTF8\n"
	                 "  - {locale: C.UTF-8}\n"
	                 "  - \"auth-local\": peer\n"
	                 "  - no-instructions\n",
	            err);
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->initdb_args.n, 5);
	assert_string_equal(cfg->initdb_args.items[0], "--data-checksums");
	assert_string_equal(cfg->initdb_args.items[1], "--encoding=UTF8");
	assert_string_equal(cfg->initdb_args.items[2], "--locale=C.UTF-8");
	assert_string_equal(cfg->initdb_args.items[3], "--auth-local=peer");
	assert_string_equal(cfg->initdb_args.items[4], "--no-instructions");
	pgw_config_free(cfg);

	/* Patroni also takes a plain map */
	cfg = parse(BASE "bootstrap:\n  initdb: {encoding: UTF8, wal-segsize: 32}\n", err);
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->initdb_args.n, 2);
	assert_string_equal(cfg->initdb_args.items[0], "--encoding=UTF8");
	assert_string_equal(cfg->initdb_args.items[1], "--wal-segsize=32");
	pgw_config_free(cfg);

	/* empty */
	cfg = parse(BASE "bootstrap:\n  initdb:\n", err);
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->initdb_args.n, 0);
	pgw_config_free(cfg);
}

static void test_booleans(void **state)
{
	static const struct {
		const char *text;
		bool value;
	} cases[] = {{"true", true},   {"True", true},   {"TRUE", true},   {"yes", true},
	             {"Yes", true},    {"on", true},     {"ON", true},     {"'on'", true},
	             {"false", false}, {"False", false}, {"no", false},    {"NO", false},
	             {"off", false},   {"Off", false},   {"\"no\"", false}};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[ERRLEN], *text;
		struct pgw_config *cfg;

		assert_true(asprintf(&text, "%stags:\n  nosync: %s\n  nofailover: %s\n", BASE,
		                     cases[i].text, cases[i].text) > 0);
		cfg = parse(text, err);
		if (!cfg)
			fail_msg("%s: %s", cases[i].text, err);
		assert_int_equal(cfg->tags.nosync, cases[i].value);
		assert_int_equal(cfg->tags.nofailover, cases[i].value);
		pgw_config_free(cfg);
		free(text);
	}
}

static void test_namespace_and_pgpass(void **state)
{
	static const struct {
		const char *ns, *data_dir, *want_ns, *want_pgpass;
	} cases[] = {
	    {"service", "/var/lib/pg/data", "/service/", "/var/lib/pg/pgpass.n"},
	    {"/service", "/var/lib/pg/data/", "/service/", "/var/lib/pg/pgpass.n"},
	    {"service/", "/var/lib//pg//data//", "/service/", "/var/lib//pg/pgpass.n"},
	    {"/a/b/", "data", "/a/b/", "./pgpass.n"},
	    {"/", "rel/data", "/", "rel/pgpass.n"},
	    {"x", "/data", "/x/", "/pgpass.n"},
	    {"x", "/", "/x/", "/pgpass.n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[ERRLEN], *text;
		struct pgw_config *cfg;

		assert_true(asprintf(&text,
		                     "scope: s\nname: n\nnamespace: '%s'\n"
		                     "postgresql:\n  data_dir: '%s'\n",
		                     cases[i].ns, cases[i].data_dir) > 0);
		cfg = parse(text, err);
		if (!cfg)
			fail_msg("case %zu: %s", i, err);
		assert_string_equal(cfg->namespace, cases[i].want_ns);
		assert_string_equal(cfg->postgresql.pgpass, cases[i].want_pgpass);
		pgw_config_free(cfg);
		free(text);
	}
}

static void test_connect_address_defaults(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg =
	    parse(BASE "  listen: 127.0.0.2:6432\nrestapi:\n  listen: 127.0.0.2:9008\n", err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_string_equal(cfg->restapi.connect_address, "127.0.0.2:9008");
	assert_string_equal(cfg->postgresql.connect_address, "127.0.0.2:6432");
	pgw_config_free(cfg);
}

/* TLS, ctl and watchdog sections land where the daemon and pgwardenctl read them. */
static void test_tls_watchdog_sections(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg =
	    parse(BASE "restapi:\n  certfile: /c.pem\n  keyfile: /k.pem\n  cafile: /ca.pem\n"
	               "  keyfile_password: s3cret\n  verify_client: Optional\n"
	               "ctl:\n  insecure: true\n  cacert: /ca2.pem\n"
	               "watchdog:\n  mode: required\n  device: /dev/watchdog1\n"
	               "  safety_margin: 4\n",
	          err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_string_equal(cfg->restapi.tls.certfile, "/c.pem");
	assert_string_equal(cfg->restapi.tls.keyfile, "/k.pem");
	assert_string_equal(cfg->restapi.tls.cafile, "/ca.pem");
	assert_string_equal(cfg->restapi.tls.keyfile_password, "s3cret");
	assert_int_equal(cfg->restapi.tls.verify_client, PGW_VERIFY_OPTIONAL);
	assert_true(cfg->ctl.insecure);
	assert_string_equal(cfg->ctl.cacert, "/ca2.pem");
	assert_int_equal(cfg->watchdog.mode, PGW_WD_REQUIRED);
	assert_string_equal(cfg->watchdog.device, "/dev/watchdog1");
	assert_int_equal(cfg->watchdog.safety_margin, 4);
	pgw_config_free(cfg);

	cfg = parse(BASE, err);
	if (!cfg)
		fail_msg("%s", err);
	assert_null(cfg->restapi.tls.certfile);
	assert_int_equal(cfg->restapi.tls.verify_client, PGW_VERIFY_NONE);
	assert_int_equal(cfg->watchdog.mode, PGW_WD_OFF);
	assert_string_equal(cfg->watchdog.device, "/dev/watchdog");
	assert_int_equal(cfg->watchdog.safety_margin, 5);
	assert_int_equal(cfg->fencing.mode, PGW_FENCE_OFF);
	assert_string_equal(cfg->fencing.agent, "ipmi");
	assert_int_equal(cfg->fencing.timeout, 30);
	assert_int_equal(cfg->fencing.retries, 2);
	assert_true(cfg->fencing.bmc.lanplus);
	assert_string_equal(cfg->fencing.audit_log, "/var/lib/pgwarden/fencing.log");
	pgw_config_free(cfg);

	cfg = parse(BASE "fencing:\n  mode: required\n  agent: /usr/sbin/fence_ipmilan\n"
	                 "  retries: 0\n  fast_takeover_after: 1.25\n  bmc:\n"
	                 "    address: 10.0.0.1:623\n    lanplus: false\n    cipher_suite: 3\n"
	                 "    privilege: operator\n"
	                 "  peers:\n    n1: {address: 10.0.0.1:623, lanplus: false}\n"
	                 "    n2: {address: '[fd00::2]', cipher_suite: 17, privilege: User}\n",
	            err);
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->fencing.peers.n, 2);
	assert_null(pgw_fence_peer(&cfg->fencing.peers, "n3"));
	assert_string_equal(pgw_fence_peer(&cfg->fencing.peers, "n1")->address, "10.0.0.1:623");
	assert_false(pgw_fence_peer(&cfg->fencing.peers, "n1")->lanplus);
	assert_true(pgw_fence_peer(&cfg->fencing.peers, "n2")->lanplus);
	assert_int_equal(pgw_fence_peer(&cfg->fencing.peers, "n2")->cipher_suite, 17);
	assert_int_equal(pgw_fence_peer(&cfg->fencing.peers, "n2")->privilege, PGW_PRIV_USER);
	assert_int_equal(cfg->fencing.mode, PGW_FENCE_REQUIRED);
	assert_string_equal(cfg->fencing.agent, "/usr/sbin/fence_ipmilan");
	assert_int_equal(cfg->fencing.retries, 0);
	assert_int_equal(cfg->fencing.fast_takeover_after_ms, 1250);
	assert_string_equal(cfg->fencing.bmc.address, "10.0.0.1:623");
	assert_false(cfg->fencing.bmc.lanplus);
	assert_int_equal(cfg->fencing.bmc.cipher_suite, 3);
	assert_int_equal(cfg->fencing.bmc.privilege, PGW_PRIV_OPERATOR);
	pgw_config_free(cfg);
}

/* ---- errors ------------------------------------------------------------- */

struct ecase {
	const char *yaml;
	const char *err;
};

/* issue 15: tags.replicatefrom, check_timeline, max_timelines_history are read, with no
 * "not implemented" warning; bad values are errors naming the key and the line. */
static void test_topology_keys(void **state)
{
	static const struct ecase bad[] = {
	    {BASE "tags:\n  replicatefrom: a/b\n",
	     "t.yml:6: tags.replicatefrom: expected a member name (no '/', at most 63 bytes)"},
	    {BASE "tags:\n  replicatefrom: [a]\n",
	     "t.yml:6: tags.replicatefrom: expected a string, got a list"},
	    {BASE "tags:\n  nostream: yes please\n",
	     "t.yml:6: tags.nostream: expected a boolean, got \"yes please\""},
	    {BASE "bootstrap:\n  dcs:\n    check_timeline: 2\n",
	     "t.yml:7: bootstrap.dcs.check_timeline: expected a boolean, got \"2\""},
	    {BASE "bootstrap:\n  dcs:\n    max_timelines_history: -1\n",
	     "t.yml:7: bootstrap.dcs.max_timelines_history: expected a non-negative integer, got "
	     "\"-1\""},
	};
	char err[ERRLEN], text[300];
	struct pgw_config *cfg;

	(void)state;
	cfg = parse(BASE "tags:\n  replicatefrom: node2\n  nostream: true\nbootstrap:\n  dcs:\n"
	                 "    check_timeline: true\n    max_timelines_history: 5\n",
	            err);
	if (!cfg)
		fail_msg("%s", err);
	assert_string_equal(cfg->tags.replicatefrom, "node2");
	assert_true(cfg->tags.nostream);
	assert_true(cfg->dcs.check_timeline);
	assert_int_equal(cfg->dcs.max_timelines_history, 5);
	assert_int_equal(cfg->warnings.n, 0);
	pgw_config_free(cfg);
	cfg = parse(BASE, err);
	assert_non_null(cfg);
	assert_null(cfg->tags.replicatefrom);
	assert_false(cfg->tags.nostream);
	assert_false(cfg->dcs.check_timeline);
	assert_int_equal(cfg->dcs.max_timelines_history, 0);
	pgw_config_free(cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(parse(bad[i].yaml, err));
		assert_string_equal(err, bad[i].err);
	}
	/* a name longer than a member name can be (63 bytes) */
	snprintf(text, sizeof(text), BASE "tags:\n  replicatefrom: %064d\n", 1);
	assert_null(parse(text, err));
	assert_non_null(strstr(err, "t.yml:6: tags.replicatefrom: expected a member name"));
}

static const struct ecase error_cases[] = {
    /* integers */
    {BASE "bootstrap:\n  dcs:\n    ttl: 3O\n",
     "t.yml:7: bootstrap.dcs.ttl: expected a positive integer, got \"3O\""},
    {BASE "bootstrap:\n  dcs:\n    retry_timeout: ten\n",
     "t.yml:7: bootstrap.dcs.retry_timeout: expected a positive integer, got \"ten\""},
    {BASE "bootstrap:\n  dcs:\n    ttl: 99999999999\n",
     "t.yml:7: bootstrap.dcs.ttl: expected a positive integer, got \"99999999999\""},
    {BASE "bootstrap:\n  dcs:\n    ttl: 030\n",
     "t.yml:7: bootstrap.dcs.ttl: expected a positive integer, got \"030\""},
    {BASE "bootstrap:\n  dcs:\n    ttl: -30\n",
     "t.yml:7: bootstrap.dcs.ttl: expected a positive integer, got \"-30\""},
    {BASE "bootstrap:\n  dcs:\n    ttl: [30]\n",
     "t.yml:7: bootstrap.dcs.ttl: expected a positive integer, got a list"},
    {BASE "bootstrap:\n  dcs:\n    ttl: ~\n",
     "t.yml:7: bootstrap.dcs.ttl: expected a positive integer, got \"~\""},
    {BASE "bootstrap:\n  dcs:\n    primary_start_timeout: 1.5\n",
     "t.yml:7: bootstrap.dcs.primary_start_timeout: expected a non-negative integer, got "
     "\"1.5\""},
    {BASE "bootstrap:\n  dcs:\n    maximum_lag_on_failover: 99999999999999999999\n",
     "t.yml:7: bootstrap.dcs.maximum_lag_on_failover: expected a non-negative integer, got "
     "\"99999999999999999999\""},
    {BASE "tags:\n  failover_priority: 1e3\n",
     "t.yml:6: tags.failover_priority: expected a non-negative integer, got \"1e3\""},
    /* booleans */
    {BASE "bootstrap:\n  dcs:\n    postgresql:\n      use_slots: 2\n",
     "t.yml:8: bootstrap.dcs.postgresql.use_slots: expected a boolean, got \"2\""},
    {BASE "tags:\n  nosync: {a: 1}\n", "t.yml:6: tags.nosync: expected a boolean, got a map"},
    /* strings */
    {BASE "user: {a: 1}\n", "t.yml:5: user: expected a string, got a map"},
    {BASE "user: ~\n", "t.yml:5: user: expected a string, got \"~\""},
    {BASE "user: ''\n", "t.yml:5: user: expected a string, got \"\""},
    {BASE "user: \"a\\nb\"\n",
     "t.yml:5: user: expected a string without line breaks or NUL bytes, got \"a\\nb\""},
    {BASE "user: \"a\\0b\"\n",
     "t.yml:5: user: expected a string without line breaks or NUL bytes, got \"a\\x00b\""},
    {BASE "  authentication:\n    superuser:\n      password: \"top\\nsecret\"\n",
     "t.yml:7: postgresql.authentication.superuser.password: expected a string without line "
     "breaks or NUL bytes, got \"***\""},
    {BASE "  authentication:\n    replication:\n      password: [secret]\n",
     "t.yml:7: postgresql.authentication.replication.password: expected a string, got a list"},
    {"scope: s\nname: a/b\npostgresql:\n  data_dir: /d\n",
     "t.yml:2: name: expected a name without '/', got \"a/b\""},
    {"scope: s\nname: [n]\npostgresql:\n  data_dir: /d\n",
     "t.yml:2: name: expected a name, got a list"},
    {BASE "etcd3:\n  protocol: ftp\n", "t.yml:6: etcd3.protocol: expected http or https, got "
                                       "\"ftp\""},
    /* bootstrap and replica methods (issue 15) */
    {BASE "bootstrap:\n  method: restore\n",
     "t.yml:6: bootstrap.method: names \"restore\", but bootstrap.restore.command is not set"},
    {BASE "bootstrap:\n  method: restore\n  restore:\n    no_params: true\n",
     "t.yml:6: bootstrap.method: names \"restore\", but bootstrap.restore.command is not set"},
    {BASE "bootstrap:\n  method: r\n  r:\n    command: /bin/x 'a b\n",
     "t.yml:8: bootstrap.r.command: cannot split the command as Patroni does: no closing "
     "quotation"},
    {BASE "bootstrap:\n  method: r\n  r:\n    command: bin/x\n",
     "t.yml:8: bootstrap.r.command: expected a command that is an absolute path or a program "
     "in PATH, got \"bin/x\""},
    {BASE "bootstrap:\n  method: r\n  r:\n    command: /bin/x\n    no_params: 3\n",
     "t.yml:9: bootstrap.r.no_params: expected a boolean, got \"3\""},
    {BASE "  basebackup:\n    - pgdata: /x\n",
     "t.yml:6: postgresql.basebackup: expected a pg_basebackup option pgwarden does not set "
     "itself, got \"pgdata\""},
    {BASE "  basebackup: {wal-method: fetch}\n",
     "t.yml:5: postgresql.basebackup: expected a pg_basebackup option pgwarden does not set "
     "itself, got \"wal-method\""},
    {BASE "  basebackup: [D]\n",
     "t.yml:5: postgresql.basebackup: expected a pg_basebackup option name such as max-rate, "
     "got \"D\""},
    {BASE "  basebackup: -D /x\n",
     "t.yml:5: postgresql.basebackup: expected a list of pg_basebackup options, got \"-D /x\""},
    {BASE "  bin_name:\n    pg_ctl: /usr/bin/pg_ctl\n",
     "t.yml:6: postgresql.bin_name.pg_ctl: expected a file name in bin_dir (no '/'), got "
     "\"/usr/bin/pg_ctl\""},
    {BASE "  bin_name:\n    psql: x\n",
     "t.yml:6: postgresql.bin_name: expected pg_ctl, initdb, pg_controldata, pg_basebackup, "
     "postgres, pg_isready or pg_rewind, got \"psql\""},
    {BASE "  pg_ctl_timeout: 0\n",
     "t.yml:5: postgresql.pg_ctl_timeout: expected a positive integer, got \"0\""},
    {BASE "  remove_data_directory_on_rewind_failure: maybe\n",
     "t.yml:5: postgresql.remove_data_directory_on_rewind_failure: expected a boolean, got "
     "\"maybe\""},
    {BASE "  create_replica_methods: [a/b]\n",
     "t.yml: postgresql.create_replica_methods: \"a/b\": expected basebackup or the name of a "
     "method (postgresql.a/b.command)"},
    {BASE "bootstrap:\n  users:\n    u:\n      options: [drop table]\n",
     "t.yml:8: bootstrap.users.u.options: expected a role option (createdb, createrole, login, "
     "nologin, replication, superuser, inherit, bypassrls, or NO...), got \"drop table\""},
    {BASE "bootstrap:\n  post_init: /a\n  post_bootstrap: /b\n",
     "t.yml:7: bootstrap.post_bootstrap: conflicts with bootstrap.post_init"},
    /* list of strings */
    {BASE "  pg_hba: local all all trust\n",
     "t.yml:5: postgresql.pg_hba: expected a list of strings, got \"local all all trust\""},
    {BASE "  pg_hba:\n    - local all all trust\n    - [host, all]\n",
     "t.yml:7: postgresql.pg_hba: expected a string, got a list"},
    /* host:port */
    {BASE "restapi:\n  listen: 127.0.0.1:0\n",
     "t.yml:6: restapi.listen: expected host:port, got \"127.0.0.1:0\""},
    {BASE "restapi:\n  listen: 127.0.0.1\n",
     "t.yml:6: restapi.listen: expected host:port, got \"127.0.0.1\""},
    /* beyond loopback, writes need a credential (ARCHITECTURE.md section 7) */
    {BASE "restapi:\n  listen: 0.0.0.0:8008\n",
     "t.yml: restapi.authentication: required when restapi.listen (0.0.0.0:8008) is not a "
     "loopback address: without it anyone who reaches that port can switch over, restart "
     "or reconfigure PostgreSQL (or set restapi.verify_client: required)"},
    {BASE "restapi:\n  listen: '[::]:8008'\n",
     "t.yml: restapi.authentication: required when restapi.listen ([::]:8008) is not a "
     "loopback address: without it anyone who reaches that port can switch over, restart "
     "or reconfigure PostgreSQL (or set restapi.verify_client: required)"},
    {BASE "restapi:\n  listen: 10.0.0.2:8008\n  connect_address: 10.0.0.2:8008\n",
     "t.yml: restapi.authentication: required when restapi.listen (10.0.0.2:8008) is not a "
     "loopback address: without it anyone who reaches that port can switch over, restart "
     "or reconfigure PostgreSQL (or set restapi.verify_client: required)"},
    {BASE "restapi:\n  listen: localhost.example.com:8008\n",
     "t.yml: restapi.authentication: required when restapi.listen (localhost.example.com:8008) is "
     "not a "
     "loopback address: without it anyone who reaches that port can switch over, restart "
     "or reconfigure PostgreSQL (or set restapi.verify_client: required)"},
    {BASE "restapi:\n  connect_address: '::1:8008'\n",
     "t.yml:6: restapi.connect_address: expected host:port, got \"::1:8008\""},
    {BASE "  listen: ':5432'\n", "t.yml:5: postgresql.listen: expected host:port, got "
                                 "\":5432\""},
    {BASE "  connect_address: '[::1]5432'\n",
     "t.yml:5: postgresql.connect_address: expected host:port, got \"[::1]5432\""},
    {BASE "etcd3:\n  hosts: a:1,,b:2\n", "t.yml:6: etcd3.hosts: expected host:port, got \"\""},
    {BASE "etcd3:\n  hosts: a:1,b\n", "t.yml:6: etcd3.hosts: expected host:port, got \"b\""},
    {BASE "etcd3:\n  hosts: []\n",
     "t.yml:6: etcd3.hosts: expected at least one host:port, got an empty list"},
    {BASE "etcd3:\n  hosts: {a: 1}\n",
     "t.yml:6: etcd3.hosts: expected a list of host:port, got a map"},
    {BASE "etcd3:\n  host: a:1\n  hosts: b:2\n", "t.yml:7: etcd3.hosts: conflicts with etcd3.host"},
    {BASE "bootstrap:\n  dcs:\n    master_start_timeout: 5\n    primary_start_timeout: 5\n",
     "t.yml:8: bootstrap.dcs.primary_start_timeout: conflicts with "
     "bootstrap.dcs.master_start_timeout"},
    /* maps */
    {BASE "tags: [a]\n", "t.yml:5: tags: expected a map, got a list"},
    {BASE "restapi: 127.0.0.1:8008\n", "t.yml:5: restapi: expected a map, got \"127.0.0.1:8008\""},
    {BASE "bootstrap:\n  dcs: []\n", "t.yml:6: bootstrap.dcs: expected a map, got a list"},
    {"- scope: s\n", "t.yml:1: expected a map at the top level, got a list"},
    {"just text\n", "t.yml:1: expected a map at the top level, got \"just text\""},
    {BASE "? [a, b]\n: c\n", "t.yml:5: expected a scalar key, got a list"},
    {BASE "  parameters: [a]\n", "t.yml:5: postgresql.parameters: expected a map, got a list"},
    /* duplicates */
    {BASE "name: m\n", "t.yml:5: duplicate key \"name\" (first at line 2)"},
    {BASE "  parameters:\n    Max_Connections: 1\n    work_mem: 1MB\n    max_connections: 2\n",
     "t.yml:8: postgresql.parameters: duplicate key \"max_connections\" (first at line 6)"},
    /* parameters */
    {BASE "  parameters:\n    'bad name': 1\n",
     "t.yml:6: postgresql.parameters: expected a parameter name, got \"bad name\""},
    {BASE "  parameters:\n    work_mem: ~\n",
     "t.yml:6: postgresql.parameters.work_mem: expected a scalar value, got \"~\""},
    {BASE "  parameters:\n    work_mem: {a: 1}\n",
     "t.yml:6: postgresql.parameters.work_mem: expected a scalar value, got a map"},
    {BASE "  parameters:\n    search_path: \"a\\nb\"\n",
     "t.yml:6: postgresql.parameters.search_path: expected a scalar value without line breaks "
     "or NUL bytes, got \"a\\nb\""},
    /* initdb */
    {BASE "bootstrap:\n  initdb: data-checksums\n",
     "t.yml:6: bootstrap.initdb: expected a list of initdb options, got \"data-checksums\""},
    {BASE "bootstrap:\n  initdb:\n    - --data-checksums\n",
     "t.yml:7: bootstrap.initdb: expected an initdb option name such as data-checksums, got "
     "\"--data-checksums\""},
    {BASE "bootstrap:\n  initdb:\n    - pgdata: /x\n",
     "t.yml:7: bootstrap.initdb: expected an initdb option pgwarden does not set itself, got "
     "\"pgdata\""},
    {BASE "bootstrap:\n  initdb:\n    - [a]\n",
     "t.yml:7: bootstrap.initdb: expected a flag or a single-key map, got a list"},
    {BASE "bootstrap:\n  initdb:\n    - encoding: [UTF8]\n",
     "t.yml:7: bootstrap.initdb: expected an initdb option value, got a list"},
    {BASE "bootstrap:\n  initdb:\n    - 'data checksums'\n",
     "t.yml:7: bootstrap.initdb: expected an initdb option name, got \"data checksums\""},
    /* YAML itself */
    {BASE "user: [a\n", "t.yml:6: YAML syntax error: did not find expected ',' or ']'"},
    {BASE "user: *nope\n", "t.yml:5: YAML syntax error: found undefined alias"},
    {BASE "user: \xff\n", "t.yml:5: YAML syntax error: invalid leading UTF-8 octet"},
    {"scope: s\npostgresql:\n\tdata_dir: /d\n",
     "t.yml:3: YAML syntax error: found character that cannot start any token"},
    {BASE "---\nuser: x\n", "t.yml:6: expected one YAML document, got a second one"},
    {BASE "user: x\n...\nfoo: ]\n",
     "t.yml:7: YAML syntax error: did not find expected <document start>"},
    /* required keys */
    {"", "t.yml: scope: required key is missing"},
    {"# nothing\n", "t.yml: scope: required key is missing"},
    {"~\n", "t.yml: scope: required key is missing"},
    {"name: n\npostgresql:\n  data_dir: /d\n", "t.yml: scope: required key is missing"},
    {"scope: s\npostgresql:\n  data_dir: /d\n", "t.yml: name: required key is missing"},
    {"scope: s\nname: n\n", "t.yml: postgresql.data_dir: required key is missing"},
    {"scope: s\nname: n\npostgresql:\n", "t.yml: postgresql.data_dir: required key is missing"},
    /* REST TLS, ctl, watchdog */
    {BASE "restapi:\n  keyfile: /k.pem\n", "t.yml: restapi.keyfile: needs restapi.certfile"},
    {BASE "restapi:\n  cafile: /ca.pem\n", "t.yml: restapi.cafile: needs restapi.certfile (TLS)"},
    {BASE "restapi:\n  certfile: /c.pem\n  verify_client: required\n",
     "t.yml: restapi.verify_client: needs restapi.cafile to check client certificates against"},
    {BASE "restapi:\n  certfile: /c.pem\n  verify_client: always\n",
     "t.yml:7: restapi.verify_client: expected one of none|optional|required, got \"always\""},
    {BASE "ctl:\n  keyfile: /k.pem\n", "t.yml: ctl.keyfile: needs ctl.certfile"},
    {BASE "watchdog:\n  mode: on\n",
     "t.yml:6: watchdog.mode: expected one of off|automatic|required, got \"on\""},
    {BASE "fencing:\n  mode: required\n",
     "t.yml: fencing.bmc.address: required with fencing.mode required (peers fence this node "
     "there)"},
    {BASE "fencing:\n  mode: required\n  bmc:\n    address: 10.0.0.1\n",
     "t.yml: fencing.peers: required with fencing.mode required: every member's BMC "
     "(address, lanplus, cipher_suite), since an address read from etcd is never trusted "
     "alone"},
    {BASE "fencing:\n  peers:\n    n1: {lanplus: true}\n",
     "t.yml:7: fencing.peers.n1: address: required (where this member's BMC answers)"},
    {BASE "fencing:\n  peers:\n    n1: {address: 'a b'}\n",
     "t.yml:7: fencing.peers.n1.address: expected host, host:port or [v6]:port, got \"a b\""},
    {BASE "fencing:\n  peers:\n    n1: {address: x, password: p}\n",
     "t.yml:7: fencing.peers.n1.password: unknown key (address, lanplus, cipher_suite, "
     "privilege)"},
    {BASE "fencing:\n  peers:\n    n1: {address: x, cipher_suite: 18}\n",
     "t.yml:7: fencing.peers.n1.cipher_suite: expected a cipher suite (0 to 17), got \"18\""},
    {BASE "fencing:\n  peers: [n1]\n",
     "t.yml:6: fencing.peers: expected a map of member names to their BMC, got a list"},
    {BASE "  authentication:\n    replication:\n      sslmode: verify-full\n",
     "t.yml: postgresql.authentication.replication.sslmode: verify-full needs sslrootcert "
     "(the CA to verify with)"},
    {BASE "  authentication:\n    rewind:\n      sslmode: always\n",
     "t.yml: postgresql.authentication.rewind.sslmode: expected disable, allow, prefer, "
     "require, verify-ca or verify-full, got \"always\""},
    {BASE "restapi:\n  protect_reads: true\n",
     "t.yml: restapi.protect_reads: needs restapi.authentication (the credentials the reads "
     "then need)"},
    {BASE "fencing:\n  agent: fence_ipmilan\n",
     "t.yml: fencing.agent: expected ipmi or the absolute path of a fence agent, got "
     "\"fence_ipmilan\""},
    {BASE "fencing:\n  fast_takeover_after: 5\n",
     "t.yml: fencing.fast_takeover_after: needs fencing.mode required (a takeover before the "
     "TTL is only safe after a confirmed power off)"},
    {BASE "fencing:\n  mode: required\n  fast_takeover_after: 1.2345\n",
     "t.yml:7: fencing.fast_takeover_after: expected seconds (e.g. 1 or 1.5, at most 3 "
     "decimals), got \"1.2345\""},
    {BASE "fencing:\n  mode: required\n  fast_takeover_after: -1\n",
     "t.yml:7: fencing.fast_takeover_after: expected seconds (e.g. 1 or 1.5, at most 3 "
     "decimals), got \"-1\""},
    {BASE "fencing:\n  mode: required\n  fast_takeover_after: 1.\n",
     "t.yml:7: fencing.fast_takeover_after: expected seconds (e.g. 1 or 1.5, at most 3 "
     "decimals), got \"1.\""},
    {BASE "fencing:\n  bmc:\n    address: admin@10.0.0.1\n",
     "t.yml: fencing.bmc.address: expected host, host:port or [v6]:port, got "
     "\"admin@10.0.0.1\" (peers fence this node there)"},
    {BASE "fencing:\n  bmc:\n    privilege: root\n",
     "t.yml:7: fencing.bmc.privilege: expected one of ADMINISTRATOR|OPERATOR|USER, got "
     "\"root\""},
    {BASE "watchdog:\n  safety_margin: 0\n",
     "t.yml:6: watchdog.safety_margin: expected a positive integer, got \"0\""},
    /* timing rule */
    {BASE "bootstrap:\n  dcs:\n    ttl: 29\n",
     "t.yml: bootstrap.dcs: loop_wait + 2 * retry_timeout (30) must not exceed ttl (29)"},
    {BASE "bootstrap:\n  dcs:\n    ttl: 40\n    loop_wait: 2147483647\n    retry_timeout: "
          "2147483647\n",
     "t.yml: bootstrap.dcs: loop_wait + 2 * retry_timeout (6442450941) must not exceed ttl "
     "(40)"},
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		char err[ERRLEN];
		struct pgw_config *cfg = parse(error_cases[i].yaml, err);

		if (cfg) {
			pgw_config_free(cfg);
			fail_msg("case %zu parsed, expected: %s", i, error_cases[i].err);
		}
		if (strcmp(err, error_cases[i].err) != 0)
			fail_msg("case %zu:\n  got:  %s\n  want: %s", i, err, error_cases[i].err);
	}
}

/* ---- issue 15: log, restapi, ctl, etcd3 keys; keys refused by design ------- */

/* Every one of these keys is accepted, stored, and warns of nothing but log.loggers. */
static void test_issue15_keys(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg = parse(
	    BASE
	    "log:\n  level: warning\n  traceback_level: DEBUG\n"
	    "  format: '%(asctime)s %(levelname)-8s: %(message)s'\n"
	    "  dateformat: '%Y-%m-%d %H:%M:%S'\n  dir: /var/log/pgwarden\n  file_num: 0\n"
	    "  file_size: 1000\n  max_queue_size: 50\n  loggers:\n    urllib3: DEBUG\n"
	    "restapi:\n  allowlist: [127.0.0.1, '10.0.0.0/8', '::1', 'fd00::/8', db1.example]\n"
	    "  allowlist_include_members: true\n"
	    "  http_extra_headers:\n    X-Frame-Options: SAMEORIGIN\n    X-Empty: ''\n"
	    "  https_extra_headers:\n    Strict-Transport-Security: max-age=31536000\n"
	    "  request_queue_size: 64\n"
	    "  ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-GCM-SHA384:!SSLv1:"
	    "!SSLv2:!SSLv3:!TLSv1:!TLSv1.1'\n"
	    "ctl:\n  certfile: /c.pem\n  keyfile: /k.pem\n  keyfile_password: sekrit\n"
	    "etcd3:\n  url: https://etcd.example:2379/\n"
	    "failsafe_mode: false\nbootstrap:\n  dcs:\n    failsafe_mode: off\n",
	    err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->log.level, 2);
	assert_int_equal(cfg->log.traceback_level, 0);
	assert_string_equal(cfg->log.format, "%(asctime)s %(levelname)-8s: %(message)s");
	assert_string_equal(cfg->log.dir, "/var/log/pgwarden");
	assert_int_equal(cfg->log.file_num, 0);
	assert_int_equal(cfg->log.file_size, 1000);
	assert_int_equal(cfg->log.max_queue_size, 50);
	assert_int_equal(cfg->restapi.allowlist.n, 5);
	assert_string_equal(cfg->restapi.allowlist.items[4], "db1.example");
	assert_true(cfg->restapi.allowlist_include_members);
	assert_int_equal(cfg->restapi.http_extra_headers.n, 2);
	assert_string_equal(cfg->restapi.http_extra_headers.items[0].name, "X-Frame-Options");
	assert_string_equal(cfg->restapi.http_extra_headers.items[0].value, "SAMEORIGIN");
	assert_int_equal(cfg->restapi.https_extra_headers.n, 1);
	assert_int_equal(cfg->restapi.request_queue_size, 64);
	assert_non_null(cfg->restapi.ciphers);
	assert_string_equal(cfg->ctl.keyfile_password, "sekrit");
	assert_int_equal(cfg->etcd3.hosts.n, 1);
	assert_string_equal(cfg->etcd3.hosts.items[0], "etcd.example:2379");
	assert_string_equal(cfg->etcd3.protocol, "https");
	assert_false(cfg->failsafe_mode);
	assert_int_equal(cfg->warnings.n, 1);
	assert_string_equal(cfg->warnings.items[0],
	                    "t.yml:14: log.loggers: levels of Python modules (Patroni's "
	                    "loggers); pgwarden has none, so this has no effect");
	pgw_config_free(cfg);
}

/* Defaults of the log section (Patroni's: INFO, 4 files of 25 MB, 1000 queued). */
static void test_issue15_defaults(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg =
	    parse(BASE "etcd3:\n  srv: example.org\n  srv_suffix: prod\n", err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->log.level, 1);
	assert_null(cfg->log.dir);
	assert_int_equal(cfg->log.file_num, 4);
	assert_int_equal(cfg->log.file_size, 25000000);
	assert_int_equal(cfg->log.max_queue_size, 1000);
	assert_int_equal(cfg->restapi.allowlist.n, 0);
	assert_false(cfg->restapi.allowlist_include_members);
	assert_int_equal(cfg->etcd3.hosts.n, 0); /* from DNS at start */
	assert_string_equal(cfg->etcd3.srv, "example.org");
	assert_int_equal(cfg->warnings.n, 0);
	pgw_config_free(cfg);
}

/* Errors: file, line, key, and a message that starts like this. */
static const struct ecase issue15_errors[] = {
    {BASE "log:\n  level: LOUD\n",
     "t.yml:6: log.level: expected one of DEBUG|INFO|WARNING|ERROR|CRITICAL, got \"LOUD\""},
    {BASE "log:\n  traceback_level: 10\n",
     "t.yml:6: log.traceback_level: expected one of DEBUG|INFO|WARNING|ERROR|CRITICAL"},
    {BASE "log:\n  format: '%(asctime)s %(funcName)s %(message)s'\n",
     "t.yml:6: log.format: unsupported placeholder \"%(funcName)s\"; accepted: %(asctime)s"},
    {BASE "log:\n  format: '%(asctime)s %(levelname)s'\n",
     "t.yml:6: log.format: has no %(message)s"},
    {BASE "log:\n  format: '%(message)x'\n", "t.yml:6: log.format: unsupported placeholder"},
    {BASE "log:\n  dateformat: '%H:%M:%S.%f'\n",
     "t.yml:6: log.dateformat: unsupported conversion \"%f\""},
    {BASE "log:\n  file_size: 0\n", "t.yml:6: log.file_size: expected a positive integer"},
    {BASE "log:\n  file_num: -1\n", "t.yml:6: log.file_num: expected a non-negative integer"},
    {BASE "log:\n  max_queue_size: 1000000\n", "t.yml:6: log.max_queue_size: at most 100000"},
    {BASE "log:\n  loggers:\n    urllib3: NOISY\n",
     "t.yml:7: log.loggers.urllib3: expected one of DEBUG|INFO|WARNING|ERROR|CRITICAL"},
    {BASE "restapi:\n  allowlist: ['10.0.0.1/8']\n",
     "t.yml:6: restapi.allowlist: expected an IP address, a network such as 10.0.0.0/8 (no "
     "host bits set) or a host name, got \"10.0.0.1/8\""},
    {BASE "restapi:\n  allowlist:\n    - 127.0.0.1\n    - 10.0.0.0/33\n",
     "t.yml:8: restapi.allowlist: expected an IP address, a network"},
    {BASE "restapi:\n  allowlist: ['bad_host!']\n", "t.yml:6: restapi.allowlist: expected"},
    {BASE "restapi:\n  allowlist: ['300.1.1.1']\n", "t.yml:6: restapi.allowlist: expected"},
    {BASE "restapi:\n  allowlist_include_members: maybe\n",
     "t.yml:6: restapi.allowlist_include_members: expected a boolean"},
    {BASE "restapi:\n  http_extra_headers:\n    X-A: \"a\\r\\nSet-Cookie: x\"\n",
     "t.yml:7: restapi.http_extra_headers.X-A: expected a header value without line breaks "
     "or NUL bytes, got \"a\\r\\nSet-Cookie: x\""},
    {BASE "restapi:\n  https_extra_headers:\n    X-A: \"a\\x01b\"\n",
     "t.yml:7: restapi.https_extra_headers.X-A: expected a header value without control "
     "characters"},
    {BASE "restapi:\n  http_extra_headers:\n    \"X A\": v\n",
     "t.yml:7: restapi.http_extra_headers: expected an HTTP header name"},
    {BASE "restapi:\n  http_extra_headers:\n    \"X-A:\\nX-B\": v\n",
     "t.yml:7: restapi.http_extra_headers: expected an HTTP header name"},
    {BASE "restapi:\n  http_extra_headers:\n    Content-Length: 5\n",
     "t.yml:7: restapi.http_extra_headers.Content-Length: pgwarden sets this header itself"},
    {BASE "restapi:\n  http_extra_headers: [a]\n",
     "t.yml:6: restapi.http_extra_headers: expected a map of HTTP header names to values"},
    {BASE "restapi:\n  request_queue_size: 0\n",
     "t.yml:6: restapi.request_queue_size: expected a positive integer"},
    {BASE "restapi:\n  ciphers: 'HIGH:!aNULL'\n",
     "t.yml:6: restapi.ciphers: \"HIGH\" is not a cipher suite pgwarden knows"},
    {BASE "restapi:\n  ciphers: '!SSLv3'\n", "t.yml:6: restapi.ciphers: names no cipher suite"},
    {BASE "etcd3:\n  url: ftp://e:2379\n",
     "t.yml:6: etcd3.url: expected http://host:port or https://host:port, got \"ftp://e:2379\""},
    {BASE "etcd3:\n  url: http://e:2379/v3\n", "t.yml:6: etcd3.url: expected http://host:port"},
    {BASE "etcd3:\n  hosts: [a:1]\n  url: http://e:2379\n",
     "t.yml:7: etcd3.url: conflicts with etcd3.hosts (give the endpoints one way)"},
    {BASE "etcd3:\n  url: http://e:2379\n  protocol: https\n",
     "t.yml:7: etcd3.protocol: conflicts with the scheme of etcd3.url"},
    {BASE "etcd3:\n  srv: example.org\n  host: a:1\n",
     "t.yml:6: etcd3.srv: conflicts with etcd3.host"},
    {BASE "etcd3:\n  srv_suffix: prod\n", "t.yml:6: etcd3.srv_suffix: needs etcd3.srv"},
    {BASE "etcd3:\n  srv: 'exa mple.org'\n", "t.yml:6: etcd3.srv: expected a DNS name"},
    {BASE "etcd3:\n  srv: example.org\n  srv_suffix: a.b\n",
     "t.yml:7: etcd3.srv_suffix: expected letters, digits and '-'"},
    {BASE "etcd3:\n  proxy: http://p:3128\n",
     "t.yml:6: etcd3.proxy: not supported by pgwarden: a proxy between the leader and etcd"},
    {BASE "ctl:\n  keyfile_password: [x]\n",
     "t.yml:6: ctl.keyfile_password: expected a string, got a list"},
    {BASE "failsafe_mode: true\n",
     "t.yml:5: failsafe_mode: true is refused by design: it keeps a primary writing while "
     "etcd is unreachable"},
    {BASE "bootstrap:\n  dcs:\n    failsafe_mode: on\n",
     "t.yml:7: bootstrap.dcs.failsafe_mode: true is refused by design"},
    {BASE "consul:\n  host: 127.0.0.1:8500\n",
     "t.yml:5: consul: not supported by pgwarden: its lease, watchdog and fencing rules are "
     "built on etcd v3 leases only (use the etcd3 section)"},
    {BASE "etcd:\n  host: 127.0.0.1:2379\n",
     "t.yml:5: etcd: not supported by pgwarden: it needs etcd v3 leases"},
    {BASE "zookeeper:\n  hosts: [z:2181]\n", "t.yml:5: zookeeper: not supported by pgwarden"},
    {BASE "exhibitor:\n  hosts: [e]\n", "t.yml:5: exhibitor: not supported by pgwarden"},
    {BASE "kubernetes:\n  namespace: x\n", "t.yml:5: kubernetes: not supported by pgwarden"},
    {BASE "raft:\n  data_dir: x\n", "t.yml:5: raft: not supported by pgwarden"},
    {BASE "citus:\n  group: 0\n", "t.yml:5: citus: not supported by pgwarden"},
};

static void test_issue15_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(issue15_errors) / sizeof(issue15_errors[0]); i++) {
		char err[ERRLEN];
		struct pgw_config *cfg = parse(issue15_errors[i].yaml, err);
		const char *want = issue15_errors[i].err;

		if (cfg) {
			pgw_config_free(cfg);
			fail_msg("case %zu parsed, expected: %s", i, want);
		}
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("case %zu:\n  got:  %s\n  want: %s...", i, err, want);
	}
}

/* Loopback needs no credential; beyond it basic auth or required client certs do. */
static void test_rest_exposure_allowed(void **state)
{
	static const char *const ok[] = {
	    "restapi:\n  listen: 127.0.0.2:8008\n",
	    "restapi:\n  listen: '[::1]:8008'\n",
	    "restapi:\n  listen: localhost:8008\n",
	    "restapi:\n  listen: 0.0.0.0:8008\n  authentication:\n    username: u\n"
	    "    password: p\n",
	    "restapi:\n  listen: 0.0.0.0:8008\n  certfile: /c.pem\n  cafile: /ca.pem\n"
	    "  verify_client: required\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char err[ERRLEN], *text;
		struct pgw_config *cfg;

		assert_true(asprintf(&text, "%s%s", BASE, ok[i]) > 0);
		cfg = parse(text, err);
		if (!cfg)
			fail_msg("%s: %s", ok[i], err);
		pgw_config_free(cfg);
		free(text);
	}
}

/* A Patroni config's archive_command under bootstrap.dcs stays on this node (section 7). */
static void test_local_only_params_never_go_to_etcd(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg =
	    parse(BASE "  parameters:\n    restore_command: local-restore\n"
	               "bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n"
	               "        archive_command: 'cp %p /arch/%f'\n        work_mem: 8MB\n"
	               "        Restore_Command: from-dcs\n",
	          err);
	const struct pgw_kvlist *dcs, *local;

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	dcs = &cfg->dcs.pg_parameters;
	local = &cfg->postgresql.parameters;
	assert_int_equal(dcs->n, 1);
	assert_string_equal(dcs->items[0].name, "work_mem");
	assert_int_equal(local->n, 2);
	assert_string_equal(local->items[0].name, "restore_command");
	assert_string_equal(local->items[0].value, "local-restore"); /* the local one wins */
	assert_string_equal(local->items[1].name, "archive_command");
	assert_string_equal(local->items[1].value, "cp %p /arch/%f");
	assert_int_equal(cfg->warnings.n, 2);
	assert_non_null(
	    strstr(cfg->warnings.items[0],
	           "bootstrap.dcs.postgresql.parameters.archive_command: runs a command "
	           "or loads code, so it is never written to etcd: kept in this node's "
	           "postgresql.parameters"));
	assert_non_null(strstr(cfg->warnings.items[1], "postgresql.parameters sets it already"));
	pgw_config_free(cfg);
}

static void test_timing_boundary(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg = parse(BASE "bootstrap:\n  dcs:\n    ttl: 12\n    loop_wait: 2\n"
	                                    "    retry_timeout: 5\n",
	                               err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->dcs.ttl, 12);
	pgw_config_free(cfg);
}

static void test_unreadable(void **state)
{
	const struct env *e = *state;
	char err[ERRLEN], *dir, *want;

	(void)state;
	assert_null(pgw_config_load("/nonexistent/pgwarden.yml", err, sizeof(err)));
	assert_string_equal(err,
	                    "/nonexistent/pgwarden.yml: cannot read: No such file or directory");

	dir = path_in(e, "tests/unit/data/config");
	assert_null(pgw_config_load(dir, err, sizeof(err)));
	assert_true(asprintf(&want, "%s: cannot read: Is a directory", dir) > 0);
	assert_string_equal(err, want);
	free(want);
	free(dir);
}

static void test_small_or_no_error_buffer(void **state)
{
	char err[16];

	(void)state;
	assert_null(pgw_config_parse("t.yml", "x: [", 4, NULL, 0));
	assert_null(pgw_config_parse("t.yml", "x: [", 4, err, sizeof(err)));
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_null(pgw_config_parse("t.yml", "", 0, err, 1));
	assert_string_equal(err, "");
	assert_null(pgw_config_load("/nonexistent", NULL, 0));
	assert_null(pgw_config_parse(NULL, NULL, 0, err, sizeof(err)));
}

static void test_long_values_are_cut(void **state)
{
	char err[ERRLEN], text[2048];
	char want[ERRLEN];

	(void)state;
	snprintf(text, sizeof(text), BASE "tags:\n  nosync: %0400d\n", 7);
	assert_null(parse(text, err));
	snprintf(want, sizeof(want), "t.yml:6: tags.nosync: expected a boolean, got \"%064d...\"",
	         0);
	assert_string_equal(err, want);
}

/* ---- warnings ----------------------------------------------------------- */

/* Patroni's bootstrap and replica-creation keys (issue 15). */
static void test_bootstrap_replica_keys(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg;
	const struct pgw_method *m;

	(void)state;
	cfg = parse(BASE "  create_replica_methods: [wal_g, basebackup]\n"
	                 "  wal_g:\n"
	                 "    command: wal-g \"backup-fetch\" 'a b' c\\ d\n"
	                 "    no_master: true\n"
	                 "    threads: 4\n"
	                 "  basebackup:\n    - verbose\n    - max-rate: 10M\n"
	                 "  bin_name: {pg_ctl: pg_ctl.w, postgres: pg.w}\n"
	                 "  pg_ctl_timeout: 60\n"
	                 "  use_pg_rewind: false\n"
	                 "  remove_data_directory_on_diverged_timelines: false\n"
	                 "  pg_ident: [\"m a b\"]\n"
	                 "  custom_conf: /etc/x.conf\n"
	                 "  recovery_conf: {restore_command: cp /a/%f %p}\n"
	                 "bootstrap:\n"
	                 "  method: restore\n"
	                 "  restore:\n"
	                 "    command: /bin/restore --x=\"a b\"\n"
	                 "    keep_existing_recovery_conf: true\n"
	                 "    recovery_conf: {recovery_target_action: promote}\n"
	                 "  post_init: /bin/post.sh x\n"
	                 "  users:\n    admin: {password: pw, options: [createrole, NOLOGIN]}\n"
	                 "    plain: {}\n"
	                 "  pg_hba: [\"host all all 0.0.0.0/0 md5\"]\n",
	            err);
	assert_non_null(cfg);
	assert_int_equal(cfg->warnings.n, 0);
	assert_int_equal(cfg->postgresql.create_replica_methods.n, 2);
	m = pgw_method_find(&cfg->postgresql.replica_methods, "wal_g");
	assert_non_null(m);
	assert_int_equal(m->argv.n, 4);
	assert_string_equal(m->argv.items[0], "wal-g");
	assert_string_equal(m->argv.items[1], "backup-fetch");
	assert_string_equal(m->argv.items[2], "a b");
	assert_string_equal(m->argv.items[3], "c d");
	assert_true(m->no_leader);
	assert_false(m->keep_data);
	assert_int_equal(m->params.n, 1);
	assert_string_equal(m->params.items[0].name, "threads");
	assert_string_equal(m->params.items[0].value, "4");
	assert_int_equal(cfg->postgresql.basebackup_args.n, 2);
	assert_string_equal(cfg->postgresql.basebackup_args.items[0], "--verbose");
	assert_string_equal(cfg->postgresql.basebackup_args.items[1], "--max-rate=10M");
	assert_int_equal(cfg->postgresql.bin_name.n, 2);
	assert_string_equal(cfg->postgresql.bin_name.items[1].value, "pg.w");
	assert_int_equal(cfg->postgresql.pg_ctl_timeout, 60);
	assert_true(cfg->postgresql.use_pg_rewind_set);
	assert_false(cfg->postgresql.use_pg_rewind);
	assert_true(cfg->postgresql.remove_on_rewind_failure); /* pgwarden's default */
	assert_false(cfg->postgresql.remove_on_diverged_timelines);
	assert_string_equal(cfg->postgresql.pg_ident.items[0], "m a b");
	assert_string_equal(cfg->postgresql.custom_conf, "/etc/x.conf");
	assert_string_equal(cfg->postgresql.recovery_conf.items[0].value, "cp /a/%f %p");
	assert_string_equal(cfg->bootstrap.method, "restore");
	m = pgw_method_find(&cfg->bootstrap.methods, "restore");
	assert_non_null(m);
	assert_int_equal(m->argv.n, 2);
	assert_string_equal(m->argv.items[1], "--x=a b");
	assert_true(m->keep_existing_recovery_conf);
	assert_true(m->has_recovery_conf);
	assert_string_equal(m->recovery_conf.items[0].name, "recovery_target_action");
	assert_int_equal(cfg->bootstrap.post_bootstrap.n, 2);
	assert_int_equal(cfg->bootstrap.users.n, 2);
	assert_string_equal(cfg->bootstrap.users.items[0].options, "CREATEROLE NOLOGIN");
	assert_string_equal(cfg->bootstrap.users.items[0].password, "pw");
	assert_string_equal(cfg->bootstrap.users.items[1].options, "LOGIN");
	assert_string_equal(cfg->bootstrap.pg_hba.items[0], "host all all 0.0.0.0/0 md5");
	pgw_config_free(cfg);

	/* a method section nothing names is an unknown key; defaults otherwise */
	cfg = parse(BASE "  spare:\n    command: /bin/x\n"
	                 "bootstrap:\n  method: initdb\n  other:\n    command: /bin/y\n",
	            err);
	assert_non_null(cfg);
	assert_int_equal(cfg->warnings.n, 2);
	assert_string_equal(cfg->warnings.items[0],
	                    "t.yml:5: postgresql.spare: unknown key (not in "
	                    "create_replica_methods), ignored");
	assert_string_equal(cfg->warnings.items[1],
	                    "t.yml:9: bootstrap.other: unknown key (bootstrap.method does not "
	                    "name it), ignored");
	assert_false(cfg->postgresql.use_pg_rewind_set);
	assert_true(cfg->postgresql.remove_on_diverged_timelines);
	pgw_config_free(cfg);
}

/* bootstrap.dcs.standby_cluster: implemented (no warning), checked as the config key is */
static void test_standby_cluster(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg = parse(BASE "bootstrap:\n"
	                                    "  dcs:\n"
	                                    "    standby_cluster:\n"
	                                    "      host: 10.1.2.3\n"
	                                    "      port: 5433\n"
	                                    "      primary_slot_name: standby_b\n"
	                                    "      create_replica_methods: [basebackup]\n"
	                                    "      restore_command: cp /arch/%f %p\n"
	                                    "      recovery_min_apply_delay: 5min\n",
	                               err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->warnings.n, 0);
	assert_true(cfg->dcs.standby.enabled);
	assert_string_equal(cfg->dcs.standby.host, "10.1.2.3");
	assert_int_equal(cfg->dcs.standby.port, 5433);
	assert_string_equal(cfg->dcs.standby.primary_slot_name, "standby_b");
	assert_string_equal(cfg->dcs.standby.methods[0], "basebackup");
	assert_string_equal(cfg->dcs.standby.restore_command, "cp /arch/%f %p");
	assert_string_equal(cfg->dcs.standby.recovery_min_apply_delay, "5min");
	pgw_config_free(cfg);

	cfg = parse(BASE "bootstrap:\n  dcs:\n    standby_cluster:\n      port: 5433\n", err);
	assert_null(cfg);
	assert_non_null(strstr(err, "needs host (the remote primary) or restore_command"));
	cfg = parse(BASE "bootstrap:\n  dcs:\n    standby_cluster:\n      host: a b\n", err);
	assert_null(cfg);
	assert_non_null(strstr(err, "standby_cluster.host"));
	cfg = parse(BASE "bootstrap:\n  dcs:\n    standby_cluster:\n      host: h\n      port: 0\n",
	            err);
	assert_null(cfg);
	assert_non_null(strstr(err, "standby_cluster.port"));
	cfg = parse(BASE "bootstrap:\n  dcs:\n    standby_cluster: h\n", err);
	assert_null(cfg);
	assert_non_null(strstr(err, "bootstrap.dcs.standby_cluster"));
}

static void test_warnings(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg = parse(BASE "  parameters:\n"
	                                    "    custom.thing: 1\n"
	                                    "    anything_at_all: x\n"
	                                    "  use_unix_socket:\n"
	                                    "    true\n"
	                                    "foo: 1\n"
	                                    "restapi:\n"
	                                    "  bar: {deep: [1, 2]}\n"
	                                    "standby_cluster:\n"
	                                    "  host: h\n"
	                                    "bootstrap.dcs:\n"
	                                    "  ttl: 5\n"
	                                    "tags:\n"
	                                    "  \"\": x\n",
	                               err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->postgresql.parameters.n, 2);
	assert_int_equal(cfg->dcs.ttl, 30);
	/* use_unix_socket is implemented (issue 15): no warning, the value is read */
	assert_true(cfg->postgresql.use_unix_socket);
	assert_int_equal(cfg->warnings.n, 5);
	assert_string_equal(cfg->warnings.items[0], "t.yml:10: foo: unknown key, ignored");
	assert_string_equal(cfg->warnings.items[1], "t.yml:12: restapi.bar: unknown key, ignored");
	assert_string_equal(cfg->warnings.items[2],
	                    "t.yml:13: standby_cluster: a dynamic setting: ignored here, set "
	                    "bootstrap.dcs.standby_cluster (or pgwardenctl edit-config)");
	assert_string_equal(cfg->warnings.items[3],
	                    "t.yml:15: bootstrap.dcs: unknown key, ignored");
	assert_string_equal(cfg->warnings.items[4], "t.yml:18: tags.: unknown key, ignored");
	pgw_config_free(cfg);
}

static void assert_argv(const struct pgw_strlist *l, size_t n, ...)
{
	va_list ap;

	assert_int_equal(l->n, n);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l->items[i], va_arg(ap, const char *));
	va_end(ap);
}

/* postgresql.callbacks, pre_promote, before_stop: Patroni's keys, split as Patroni
 * splits them (shlex), or a list; no "not implemented" warning. */
static void test_callbacks(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg =
	    parse(BASE "  callbacks:\n"
	               "    on_start: /bin/cb.sh\n"
	               "    on_stop: \"/bin/cb.sh 'a b' c\\\\ d \\\"e f\\\"\"\n"
	               "    on_restart: [/bin/cb.sh, 'x y']\n"
	               "    on_reload: ''\n"
	               "    on_role_change: /bin/cb.sh --role-change\n"
	               "  pre_promote: /usr/bin/fence --check\n"
	               "  before_stop: /bin/drain\n"
	               "  callback_timeout: 2.5\n",
	          err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->warnings.n, 0);
	assert_argv(&cfg->postgresql.callbacks[PGW_CB_ON_START], 1, "/bin/cb.sh");
	assert_argv(&cfg->postgresql.callbacks[PGW_CB_ON_STOP], 4, "/bin/cb.sh", "a b", "c d",
	            "e f");
	assert_argv(&cfg->postgresql.callbacks[PGW_CB_ON_RESTART], 2, "/bin/cb.sh", "x y");
	assert_argv(&cfg->postgresql.callbacks[PGW_CB_ON_RELOAD], 0);
	assert_argv(&cfg->postgresql.callbacks[PGW_CB_ON_ROLE_CHANGE], 2, "/bin/cb.sh",
	            "--role-change");
	assert_argv(&cfg->postgresql.pre_promote, 2, "/usr/bin/fence", "--check");
	assert_argv(&cfg->postgresql.before_stop, 1, "/bin/drain");
	assert_int_equal(cfg->postgresql.callback_timeout_ms, 2500);
	assert_string_equal(pgw_cb_name(PGW_CB_ON_ROLE_CHANGE), "on_role_change");
	pgw_config_free(cfg);

	cfg = parse(BASE, err);
	assert_non_null(cfg);
	assert_int_equal(cfg->postgresql.callback_timeout_ms, 60000);
	assert_int_equal(cfg->postgresql.pre_promote.n, 0);
	pgw_config_free(cfg);

	assert_null(parse(BASE "  pre_promote: \"/bin/x 'unclosed\"\n", err));
	assert_string_equal(err, "t.yml:5: postgresql.pre_promote: cannot split the command as "
	                         "Patroni does: no closing quotation");
	assert_null(parse(BASE "  callbacks:\n    on_stop: \"'' x\"\n", err));
	assert_string_equal(err, "t.yml:6: postgresql.callbacks.on_stop: expected a command, got "
	                         "an empty program name");
	assert_null(parse(BASE "  callbacks:\n    on_stop: {a: b}\n", err));
	assert_null(parse(BASE "  callback_timeout: 0.5\n", err));
	assert_string_equal(err, "t.yml: postgresql.callback_timeout: expected at least 1 second, "
	                         "got 500 ms");
	/* an unknown callback is an unknown key, as for any section */
	cfg = parse(BASE "  callbacks:\n    post_promote: /bin/x\n", err);
	assert_non_null(cfg);
	assert_int_equal(cfg->warnings.n, 1);
	assert_string_equal(cfg->warnings.items[0],
	                    "t.yml:6: postgresql.callbacks.post_promote: unknown key, ignored");
	pgw_config_free(cfg);
}

static void test_empty_sections(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg = parse(BASE "  parameters:\n  pg_hba:\nrestapi:\ntags: {}\n"
	                                    "bootstrap:\n  dcs:\n",
	                               err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->postgresql.parameters.n, 0);
	assert_int_equal(cfg->postgresql.pg_hba.n, 0);
	assert_int_equal(cfg->dcs.ttl, 30);
	assert_int_equal(cfg->warnings.n, 0);
	pgw_config_free(cfg);
}

/* Issue 15: postgresql.config_dir, use_unix_socket(_repl), proxy_address and the log
 * keys type, static_fields, mode, deduplicate_heartbeat_logs: read, no warning. */
static void test_issue15_rest_keys(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg = parse(BASE "  config_dir: /etc/postgresql/15/main\n"
	                                    "  use_unix_socket: true\n"
	                                    "  use_unix_socket_repl: true\n"
	                                    "  proxy_address: 127.0.0.1:6432\n"
	                                    "log:\n"
	                                    "  type: json\n"
	                                    "  static_fields:\n"
	                                    "    app: pgwarden\n"
	                                    "    dc: 3\n"
	                                    "  mode: 0644\n"
	                                    "  deduplicate_heartbeat_logs: true\n",
	                               err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->warnings.n, 0);
	assert_string_equal(cfg->postgresql.config_dir, "/etc/postgresql/15/main");
	assert_true(cfg->postgresql.use_unix_socket);
	assert_true(cfg->postgresql.use_unix_socket_repl);
	assert_string_equal(cfg->postgresql.proxy_address, "127.0.0.1:6432");
	assert_int_equal(cfg->log.type, PGW_LOG_JSON);
	assert_int_equal(cfg->log.nstatic_fields, 2);
	assert_string_equal(cfg->log.static_fields[0].name, "app");
	assert_string_equal(cfg->log.static_fields[0].value, "pgwarden");
	assert_string_equal(cfg->log.static_fields[1].name, "dc");
	assert_string_equal(cfg->log.static_fields[1].value, "3");
	assert_int_equal(cfg->log.mode, 0644);
	assert_true(cfg->log.deduplicate_heartbeat_logs);
	pgw_config_free(cfg);

	/* defaults; decimal and 0o modes; a relative config_dir made absolute */
	cfg = parse(BASE "  config_dir: conf\nlog:\n  mode: 420\n", err);
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->log.mode, 420);
	assert_int_equal(cfg->log.type, PGW_LOG_PLAIN);
	assert_false(cfg->postgresql.use_unix_socket);
	assert_null(cfg->postgresql.proxy_address);
	assert_true(cfg->postgresql.config_dir[0] == '/');
	assert_non_null(strstr(cfg->postgresql.config_dir, "/conf"));
	pgw_config_free(cfg);
	cfg = parse(BASE "log:\n  mode: 0o600\n", err);
	assert_non_null(cfg);
	assert_int_equal(cfg->log.mode, 0600);
	pgw_config_free(cfg);
	cfg = parse(BASE, err);
	assert_non_null(cfg);
	assert_int_equal(cfg->log.mode, -1);
	assert_null(cfg->postgresql.config_dir);
	pgw_config_free(cfg);

	/* static_fields without type json: a warning that says they are not written */
	cfg = parse(BASE "log:\n  static_fields: {a: b}\n", err);
	assert_non_null(cfg);
	assert_int_equal(cfg->warnings.n, 1);
	assert_string_equal(cfg->warnings.items[0], "t.yml:6: log.static_fields: written with "
	                                            "log.type json only, ignored");
	pgw_config_free(cfg);
}

/* Bad values of the issue 15 keys: errors that name the key and the line. */
static void test_issue15_rest_bad_values(void **state)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
	    {BASE "  use_unix_socket: maybe\n",
	     "t.yml:5: postgresql.use_unix_socket: expected a boolean, got \"maybe\""},
	    {BASE "  use_unix_socket_repl: [1]\n",
	     "t.yml:5: postgresql.use_unix_socket_repl: expected a boolean, got a list"},
	    {BASE "  proxy_address: nope\n",
	     "t.yml:5: postgresql.proxy_address: expected host:port, got \"nope\""},
	    {BASE "  config_dir: \"/etc/it's\"\n",
	     "t.yml:5: postgresql.config_dir: expected a directory path without ' or \\"},
	    {BASE "  config_dir: ''\n",
	     "t.yml:5: postgresql.config_dir: expected a string, got \"\""},
	    {BASE "log:\n  type: xml\n",
	     "t.yml:6: log.type: expected one of plain|json, got \"xml\""},
	    {BASE "log:\n  mode: 0999\n",
	     "t.yml:6: log.mode: expected a file mode such as 0640 (at most 0777), got \"0999\""},
	    {BASE "log:\n  mode: 1000\n",
	     "t.yml:6: log.mode: expected a file mode such as 0640 (at most 0777), got \"1000\""},
	    {BASE "log:\n  static_fields: [a]\n",
	     "t.yml:6: log.static_fields: expected a map of field names to values, got a list"},
	    {BASE "log:\n  static_fields:\n    message: x\n",
	     "t.yml:7: log.static_fields.message: every JSON line has this field already"},
	    {BASE "log:\n  static_fields:\n    a: [1]\n",
	     "t.yml:7: log.static_fields.a: expected a scalar value, got a list"},
	    {BASE "log:\n  deduplicate_heartbeat_logs: 2\n",
	     "t.yml:6: log.deduplicate_heartbeat_logs: expected a boolean, got \"2\""},
	};
	char err[ERRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pgw_config *cfg = parse(cases[i].yaml, err);

		if (cfg)
			fail_msg("case %zu parsed", i);
		if (strcmp(err, cases[i].want))
			fail_msg("case %zu:\n  got:  %s\n  want: %s", i, err, cases[i].want);
	}
}

static void test_anchors_and_aliases(void **state)
{
	char err[ERRLEN];
	struct pgw_config *cfg = parse("scope: &s batman\nname: *s\n"
	                               "bootstrap:\n  dcs:\n    postgresql:\n"
	                               "      parameters: &p {max_connections: 50}\n"
	                               "postgresql:\n  data_dir: /d\n  parameters: *p\n"
	                               "x: &loop [*loop]\n",
	                               err);

	(void)state;
	if (!cfg)
		fail_msg("%s", err);
	assert_string_equal(cfg->name, "batman");
	assert_string_equal(kv_get(&cfg->postgresql.parameters, "max_connections"), "50");
	assert_string_equal(kv_get(&cfg->dcs.pg_parameters, "max_connections"), "50");
	assert_int_equal(cfg->warnings.n, 1);
	pgw_config_free(cfg);
}

/* ---- pgw_split_hostport ------------------------------------------------- */

static void test_split_hostport(void **state)
{
	static const struct {
		const char *in;
		const char *host;
		int port;
	} good[] = {
	    {"127.0.0.1:5432", "127.0.0.1", 5432},
	    {"localhost:1", "localhost", 1},
	    {"db-1.example.org:65535", "db-1.example.org", 65535},
	    {"[::1]:8008", "::1", 8008},
	    {"[fe80::1%eth0]:2379", "fe80::1%eth0", 2379},
	    {"*:5432", "*", 5432},
	};
	static const char *const bad[] = {
	    "",
	    ":",
	    "host",
	    "host:",
	    ":5432",
	    "host:0",
	    "host:65536",
	    "host:-1",
	    "host:+1",
	    "host:12a",
	    "host:99999999999999999999",
	    "::1:5432",
	    "[::1]",
	    "[::1]:",
	    "[]:1",
	    "[::1]5432",
	    "[::1:5432",
	    "ho st:1",
	    "host:1 ",
	    "a]:1",
	    "user@host:1",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *host = NULL;
		int port = 0;

		if (!pgw_split_hostport(good[i].in, &host, &port))
			fail_msg("rejected %s", good[i].in);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
		free(host);
		assert_true(pgw_split_hostport(good[i].in, NULL, NULL));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *host = (char *)"x";
		int port = 7;

		if (pgw_split_hostport(bad[i], &host, &port))
			fail_msg("accepted \"%s\"", bad[i]);
		assert_null(host);
		assert_int_equal(port, 7);
	}
	assert_false(pgw_split_hostport(NULL, NULL, NULL));
}

/* ---- fuzz ----------------------------------------------------------------- */

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Parse text; whatever happens, exactly one of cfg and err is set, and a config
 * that parses is complete. */
static void parse_checked(const char *text, size_t len)
{
	char err[ERRLEN];
	struct pgw_config *cfg = pgw_config_parse("f.yml", text, len, err, sizeof(err));

	if (cfg) {
		assert_string_equal(err, "");
		assert_non_null(cfg->scope);
		assert_non_null(cfg->name);
		assert_non_null(cfg->postgresql.data_dir);
		assert_non_null(cfg->postgresql.pgpass);
		assert_true(cfg->etcd3.hosts.n > 0);
		assert_true(cfg->namespace[0] == '/');
		assert_true(cfg->namespace[strlen(cfg->namespace) - 1] == '/');
		assert_true(cfg->dcs.loop_wait + 2LL * cfg->dcs.retry_timeout <= cfg->dcs.ttl);
		pgw_config_free(cfg);
	} else {
		assert_true(strncmp(err, "f.yml", 5) == 0);
		assert_non_null(memchr(err, '\0', sizeof(err)));
		assert_null(strchr(err, '\n'));
	}
}

static void fuzz_one(const char *orig, size_t len, uint64_t seed, int rounds)
{
	static const char specials[] = ":-[]{},#&*!|>'\"%@`? \t\n\r~\\.0123456789";
	char *buf = malloc(len + 64);
	uint64_t s = seed;

	assert_non_null(buf);
	for (size_t cut = 0; cut <= len; cut++)
		parse_checked(orig, cut);
	for (int r = 0; r < rounds; r++) {
		size_t n = len;
		int edits = 1 + (int)(next_rand(&s) % 4);

		memcpy(buf, orig, len);
		for (int k = 0; k < edits; k++) {
			size_t pos = n ? next_rand(&s) % n : 0;
			uint64_t op = next_rand(&s) % 4;
			char ch = (next_rand(&s) % 3 == 0)
			              ? (char)(next_rand(&s) & 0xff)
			              : specials[next_rand(&s) % (sizeof(specials) - 1)];

			if (op == 0 && n) {
				buf[pos] = ch;
			} else if (op == 1 && n + 1 < len + 64) {
				memmove(buf + pos + 1, buf + pos, n - pos);
				buf[pos] = ch;
				n++;
			} else if (op == 2 && n) {
				memmove(buf + pos, buf + pos + 1, n - pos - 1);
				n--;
			} else if (n) {
				/* duplicate a line's worth of bytes somewhere else */
				size_t from = next_rand(&s) % n, cnt = next_rand(&s) % 24;

				if (cnt > n - from)
					cnt = n - from;
				if (n + cnt < len + 64) {
					memmove(buf + pos + cnt, buf + pos, n - pos);
					memmove(buf + pos, buf + (from >= pos ? from + cnt : from),
					        cnt);
					n += cnt;
				}
			}
		}
		parse_checked(buf, n);
	}
	free(buf);
}

static void test_fuzz(void **state)
{
	const struct env *e = *state;
	static const char *const files[] = {"conf/pgwarden.yml",
	                                    "tests/unit/data/config/good-full.yml",
	                                    "tests/unit/data/config/good-patroni.yml"};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *path = path_in(e, files[i]);
		size_t len;
		char *text = read_all(path, &len);

		fuzz_one(text, len, 0x9e3779b97f4a7c15ULL + i, 3000);
		free(text);
		free(path);
	}
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++)
		fuzz_one(error_cases[i].yaml, strlen(error_cases[i].yaml), 1 + i, 50);
}

/* ---- main --------------------------------------------------------------- */

static bool is_root(const char *dir)
{
	char probe[4200];

	snprintf(probe, sizeof(probe), "%s/tests/unit/data/config/good-full.yml", dir);
	return access(probe, R_OK) == 0;
}

static bool find_root(char *out, size_t outlen)
{
	char buf[4096], tmp[4096];
	const char *env = getenv("PGW_SRCDIR");
	ssize_t n;

	if (env && is_root(env)) {
		snprintf(out, outlen, "%s", env);
		return true;
	}
	if (is_root(".")) {
		snprintf(out, outlen, ".");
		return true;
	}
	snprintf(tmp, sizeof(tmp), "%s", __FILE__); /* tests/unit/test_config.c */
	snprintf(buf, sizeof(buf), "%s/../..", dirname(tmp));
	if (is_root(buf)) {
		snprintf(out, outlen, "%s", buf);
		return true;
	}
	n = readlink("/proc/self/exe", tmp, sizeof(tmp) - 1); /* build/<variant>/tests/x */
	if (n > 0) {
		tmp[n] = '\0';
		snprintf(buf, sizeof(buf), "%s/../../..", dirname(tmp));
		if (is_root(buf)) {
			snprintf(out, outlen, "%s", buf);
			return true;
		}
	}
	return false;
}

int main(void)
{
	struct env e;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_prestate(test_example_conf, &e),
	    cmocka_unit_test_prestate(test_data_files, &e),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test_prestate(test_full_file, &e),
	    cmocka_unit_test(test_parameters_types),
	    cmocka_unit_test(test_hosts_forms),
	    cmocka_unit_test(test_initdb_forms),
	    cmocka_unit_test(test_booleans),
	    cmocka_unit_test(test_namespace_and_pgpass),
	    cmocka_unit_test(test_connect_address_defaults),
	    cmocka_unit_test(test_tls_watchdog_sections),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_timing_boundary),
	    cmocka_unit_test(test_rest_exposure_allowed),
	    cmocka_unit_test(test_local_only_params_never_go_to_etcd),
	    cmocka_unit_test_prestate(test_unreadable, &e),
	    cmocka_unit_test(test_small_or_no_error_buffer),
	    cmocka_unit_test(test_long_values_are_cut),
	    cmocka_unit_test(test_warnings),
	    cmocka_unit_test(test_standby_cluster),
	    cmocka_unit_test(test_topology_keys),
	    cmocka_unit_test(test_callbacks),
	    cmocka_unit_test(test_empty_sections),
	    cmocka_unit_test(test_bootstrap_replica_keys),
	    cmocka_unit_test(test_anchors_and_aliases),
	    cmocka_unit_test(test_issue15_rest_keys),
	    cmocka_unit_test(test_issue15_rest_bad_values),
	    cmocka_unit_test(test_split_hostport),
	    cmocka_unit_test(test_issue15_keys),
	    cmocka_unit_test(test_issue15_defaults),
	    cmocka_unit_test(test_issue15_errors),
	    cmocka_unit_test_prestate(test_fuzz, &e),
	};

	if (!find_root(e.root, sizeof(e.root))) {
		fprintf(stderr, "test_config: cannot find the source tree (set PGW_SRCDIR)\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
