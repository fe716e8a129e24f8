/*
 * test_pg.c - unit tests of the PostgreSQL controller's pure parts (LSNs, slot names,
 * pg_controldata and timeline history parsing, postgresql.conf rendering) and of the
 * file and child-process handling with fake PostgreSQL programs.  No PostgreSQL is
 * started; runs as a normal user.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "pg.h"

/* Real `pg_controldata` output of PostgreSQL 15: a running primary. */
static const char CD_PRIMARY[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7711336404795711392\n"
    "Database cluster state:               in production\n"
    "pg_control last modified:             Mon Nov 23 12:03:39 2026\n"
    "Latest checkpoint location:           0/15010A8\n"
    "Latest checkpoint's REDO location:    0/15010A8\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000001\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Latest checkpoint's NextXID:          0:725\n"
    "Latest checkpoint's NextOID:          13572\n"
    "Latest checkpoint's NextMultiXactId:  1\n"
    "Latest checkpoint's NextMultiOffset:  0\n"
    "Latest checkpoint's oldestXID:        717\n"
    "Latest checkpoint's oldestXID's DB:   1\n"
    "Latest checkpoint's oldestActiveXID:  0\n"
    "Latest checkpoint's oldestMultiXid:   1\n"
    "Latest checkpoint's oldestMulti's DB: 1\n"
    "Latest checkpoint's oldestCommitTsXid:0\n"
    "Latest checkpoint's newestCommitTsXid:0\n"
    "Time of latest checkpoint:            Mon Nov 23 12:03:39 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/0\n"
    "Min recovery ending loc's timeline:   0\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "End-of-backup record required:        no\n"
    "wal_level setting:                    replica\n"
    "wal_log_hints setting:                on\n"
    "max_connections setting:              100\n"
    "max_worker_processes setting:         8\n"
    "max_wal_senders setting:              10\n"
    "max_prepared_xacts setting:           0\n"
    "max_locks_per_xact setting:           64\n"
    "track_commit_timestamp setting:       off\n"
    "Maximum data alignment:               8\n"
    "Database block size:                  8192\n"
    "Blocks per segment of large relation: 131072\n"
    "WAL block size:                       8192\n"
    "Bytes per WAL segment:                16777216\n"
    "Maximum length of identifiers:        64\n"
    "Maximum columns in an index:          32\n"
    "Maximum size of a TOAST chunk:        1996\n"
    "Size of a large-object chunk:         2048\n"
    "Date/time type storage:               64-bit integers\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           0\n"
    "Mock authentication nonce:            "
    "6504a583e81fd4a67ead153d686f06f410b804d5ef92ce7c401e37057dfa6f39\n";

/* A running standby. */
static const char CD_STANDBY[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7711336404795711392\n"
    "Database cluster state:               in archive recovery\n"
    "pg_control last modified:             Mon Nov 23 12:03:40 2026\n"
    "Latest checkpoint location:           0/2000060\n"
    "Latest checkpoint's REDO location:    0/2000028\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000002\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Latest checkpoint's NextXID:          0:727\n"
    "Latest checkpoint's NextOID:          24576\n"
    "Latest checkpoint's NextMultiXactId:  1\n"
    "Latest checkpoint's NextMultiOffset:  0\n"
    "Latest checkpoint's oldestXID:        717\n"
    "Latest checkpoint's oldestXID's DB:   1\n"
    "Latest checkpoint's oldestActiveXID:  727\n"
    "Latest checkpoint's oldestMultiXid:   1\n"
    "Latest checkpoint's oldestMulti's DB: 1\n"
    "Latest checkpoint's oldestCommitTsXid:0\n"
    "Latest checkpoint's newestCommitTsXid:0\n"
    "Time of latest checkpoint:            Mon Nov 23 12:03:39 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/2000100\n"
    "Min recovery ending loc's timeline:   1\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "End-of-backup record required:        no\n"
    "wal_level setting:                    replica\n"
    "wal_log_hints setting:                on\n"
    "max_connections setting:              100\n"
    "max_worker_processes setting:         8\n"
    "max_wal_senders setting:              10\n"
    "max_prepared_xacts setting:           0\n"
    "max_locks_per_xact setting:           64\n"
    "track_commit_timestamp setting:       off\n"
    "Maximum data alignment:               8\n"
    "Database block size:                  8192\n"
    "Blocks per segment of large relation: 131072\n"
    "WAL block size:                       8192\n"
    "Bytes per WAL segment:                16777216\n"
    "Maximum length of identifiers:        64\n"
    "Maximum columns in an index:          32\n"
    "Maximum size of a TOAST chunk:        1996\n"
    "Size of a large-object chunk:         2048\n"
    "Date/time type storage:               64-bit integers\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           0\n"
    "Mock authentication nonce:            "
    "6504a583e81fd4a67ead153d686f06f410b804d5ef92ce7c401e37057dfa6f39\n";

/* A standby, cleanly stopped, on timeline 2 after a rewind. */
static const char CD_STANDBY_DOWN[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7711336404795711392\n"
    "Database cluster state:               shut down in recovery\n"
    "pg_control last modified:             Mon Nov 23 12:03:41 2026\n"
    "Latest checkpoint location:           0/3000108\n"
    "Latest checkpoint's REDO location:    0/3000108\n"
    "Latest checkpoint's REDO WAL file:    000000020000000000000003\n"
    "Latest checkpoint's TimeLineID:       2\n"
    "Latest checkpoint's PrevTimeLineID:   2\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Latest checkpoint's NextXID:          0:727\n"
    "Latest checkpoint's NextOID:          24576\n"
    "Latest checkpoint's NextMultiXactId:  1\n"
    "Latest checkpoint's NextMultiOffset:  0\n"
    "Latest checkpoint's oldestXID:        717\n"
    "Latest checkpoint's oldestXID's DB:   1\n"
    "Latest checkpoint's oldestActiveXID:  0\n"
    "Latest checkpoint's oldestMultiXid:   1\n"
    "Latest checkpoint's oldestMulti's DB: 1\n"
    "Latest checkpoint's oldestCommitTsXid:0\n"
    "Latest checkpoint's newestCommitTsXid:0\n"
    "Time of latest checkpoint:            Mon Nov 23 12:03:40 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/3008200\n"
    "Min recovery ending loc's timeline:   2\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "End-of-backup record required:        no\n"
    "wal_level setting:                    replica\n"
    "wal_log_hints setting:                on\n"
    "max_connections setting:              100\n"
    "max_worker_processes setting:         8\n"
    "max_wal_senders setting:              10\n"
    "max_prepared_xacts setting:           0\n"
    "max_locks_per_xact setting:           64\n"
    "track_commit_timestamp setting:       off\n"
    "Maximum data alignment:               8\n"
    "Database block size:                  8192\n"
    "Blocks per segment of large relation: 131072\n"
    "WAL block size:                       8192\n"
    "Bytes per WAL segment:                16777216\n"
    "Maximum length of identifiers:        64\n"
    "Maximum columns in an index:          32\n"
    "Maximum size of a TOAST chunk:        1996\n"
    "Size of a large-object chunk:         2048\n"
    "Date/time type storage:               64-bit integers\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           0\n"
    "Mock authentication nonce:            "
    "6504a583e81fd4a67ead153d686f06f410b804d5ef92ce7c401e37057dfa6f39\n";

/* ---- fixtures: a temporary directory and a hand-made configuration ---------------- */

struct fixture {
	char dir[64];
	char data[128], pgpass[128], bin[128];
	struct pgw_kv local[3];
	struct pgw_kv dcs[3];
	struct pgw_kvlist dcs_list;
	struct pgw_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/pgw-test-pg.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	snprintf(f->pgpass, sizeof(f->pgpass), "%s/pg pass", f->dir);
	snprintf(f->bin, sizeof(f->bin), "%s/bin", f->dir);
	f->dcs[0] = (struct pgw_kv){"max_connections", "200"};
	f->dcs[1] = (struct pgw_kv){"shared_buffers", "64MB"};
	f->dcs[2] = (struct pgw_kv){"wal_keep_size", "1GB"};
	f->local[0] = (struct pgw_kv){"MAX_CONNECTIONS", "300"};
	f->local[1] = (struct pgw_kv){"port", "9999"};
	f->local[2] = (struct pgw_kv){"log_line_prefix", "it's %m \\ "};
	f->dcs_list = (struct pgw_kvlist){f->dcs, 3};
	f->cfg.scope = "test";
	f->cfg.name = "node-1";
	f->cfg.postgresql.listen = "0.0.0.0:5433";
	f->cfg.postgresql.data_dir = f->data;
	f->cfg.postgresql.bin_dir = f->bin;
	f->cfg.postgresql.pgpass = f->pgpass;
	f->cfg.postgresql.superuser =
	    (struct pgw_auth){.username = "postgres", .password = "su:pw"};
	f->cfg.postgresql.replication =
	    (struct pgw_auth){.username = "replicator", .password = "re\\pl"};
	f->cfg.postgresql.parameters = (struct pgw_kvlist){f->local, 3};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	testutil_remove_dir(f->dir);
	free(f);
	return 0;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
}

static char *read_text(const char *path)
{
	static char buf[16384];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (!fp)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return buf;
}

static void make_dir(const char *path)
{
	assert_int_equal(mkdir(path, 0700), 0);
}

/* A fake PostgreSQL program in the fixture's bin dir. */
static void fake_program(struct fixture *f, const char *name, const char *script)
{
	char path[256];
	struct stat st;

	if (stat(f->bin, &st) != 0)
		make_dir(f->bin);
	snprintf(path, sizeof(path), "%s/%s", f->bin, name);
	write_text(path, script, 0755);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- LSNs ------------------------------------------------------------------------- */

static void test_lsn_parse_valid(void **state)
{
	uint64_t lsn;

	(void)state;
	assert_true(pgw_lsn_parse("0/3000060", &lsn));
	assert_int_equal(lsn, 0x3000060);
	assert_true(pgw_lsn_parse("16/B374D848", &lsn));
	assert_int_equal(lsn, 0x16B374D848ULL);
	assert_true(pgw_lsn_parse("a/b", &lsn));
	assert_int_equal(lsn, 0xA0000000BULL);
	assert_true(pgw_lsn_parse("FFFFFFFF/FFFFFFFF", &lsn));
	assert_int_equal(lsn, UINT64_MAX);
	assert_true(pgw_lsn_parse("0/0", &lsn));
	assert_int_equal(lsn, 0);
	assert_true(pgw_lsn_parse("00000001/00000000", &lsn));
	assert_int_equal(lsn, 1ULL << 32);
}

static void test_lsn_parse_invalid(void **state)
{
	static const char *const bad[] = {
	    "",    "/",    "0/",   "/0",    "0",           "0/1 ",        " 0/1", "0/1/2", "g/1",
	    "1/g", "-1/2", "+1/2", "0x1/2", "123456789/0", "0/123456789", "0 /1", "0/ 1",  "1\n/2",
	};
	uint64_t lsn = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pgw_lsn_parse(bad[i], &lsn))
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_false(pgw_lsn_parse(NULL, &lsn));
	assert_int_equal(lsn, 42); /* untouched on failure */
}

static void test_lsn_format(void **state)
{
	uint64_t values[] = {0, 1, 0x3000060, 0x16B374D848ULL, 1ULL << 32, UINT64_MAX};
	char out[32];
	uint64_t back;

	(void)state;
	pgw_lsn_format(0, out, sizeof(out));
	assert_string_equal(out, "0/0");
	pgw_lsn_format(0x16B374D848ULL, out, sizeof(out));
	assert_string_equal(out, "16/B374D848");
	pgw_lsn_format(UINT64_MAX, out, sizeof(out));
	assert_string_equal(out, "FFFFFFFF/FFFFFFFF");
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		pgw_lsn_format(values[i], out, sizeof(out));
		assert_true(pgw_lsn_parse(out, &back));
		assert_int_equal(back, values[i]);
	}
	pgw_lsn_format(0x16B374D848ULL, out, 4); /* truncated, still terminated */
	assert_string_equal(out, "16/");
}

/* ---- slot names ------------------------------------------------------------------- */

static void test_slot_name(void **state)
{
	char out[64], small[5], longname[200];

	(void)state;
	pgw_pg_slot_name("node1", out, sizeof(out));
	assert_string_equal(out, "node1");
	pgw_pg_slot_name("Node-2.Example.COM", out, sizeof(out));
	assert_string_equal(out, "node_2_example_com");
	pgw_pg_slot_name("pg_0 é", out, sizeof(out));
	assert_string_equal(out, "pg_0___"); /* two bytes of UTF-8 -> two '_' */
	pgw_pg_slot_name("", out, sizeof(out));
	assert_string_equal(out, "");
	pgw_pg_slot_name("abcdefgh", small, sizeof(small));
	assert_string_equal(small, "abcd");
	memset(longname, 'X', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	pgw_pg_slot_name(longname, out, sizeof(out));
	assert_int_equal(strlen(out), 63);
	assert_int_equal(out[0], 'x');
}

/* ---- pg_controldata --------------------------------------------------------------- */

static void test_controldata_primary(void **state)
{
	struct pgw_controldata cd;

	(void)state;
	assert_int_equal(pgw_pg_parse_controldata(CD_PRIMARY, &cd), 0);
	assert_int_equal(cd.state, PGW_CS_IN_PRODUCTION);
	assert_int_equal(cd.system_identifier, 7711336404795711392ULL);
	assert_int_equal(cd.timeline, 1);
	assert_int_equal(cd.checkpoint_lsn, 0x15010A8);
	assert_int_equal(cd.min_recovery_lsn, 0);
}

static void test_controldata_standby(void **state)
{
	struct pgw_controldata cd;

	(void)state;
	assert_int_equal(pgw_pg_parse_controldata(CD_STANDBY, &cd), 0);
	assert_int_equal(cd.state, PGW_CS_IN_ARCHIVE_RECOVERY);
	assert_int_equal(cd.timeline, 1);
	assert_int_equal(cd.checkpoint_lsn, 0x2000060);
	assert_int_equal(cd.min_recovery_lsn, 0x2000100);
	assert_int_equal(pgw_pg_parse_controldata(CD_STANDBY_DOWN, &cd), 0);
	assert_int_equal(cd.state, PGW_CS_SHUT_DOWN_IN_RECOVERY);
	assert_int_equal(cd.timeline, 2);
	assert_int_equal(cd.checkpoint_lsn, 0x3000108);
	assert_int_equal(cd.min_recovery_lsn, 0x3008200);
}

static void test_controldata_states(void **state)
{
	static const struct {
		const char *text;
		enum pgw_cluster_state st;
	} cases[] = {
	    {"shut down", PGW_CS_SHUT_DOWN},
	    {"shut down in recovery", PGW_CS_SHUT_DOWN_IN_RECOVERY},
	    {"in production", PGW_CS_IN_PRODUCTION},
	    {"in archive recovery", PGW_CS_IN_ARCHIVE_RECOVERY},
	    {"in crash recovery", PGW_CS_OTHER},
	    {"shutting down", PGW_CS_OTHER},
	};
	struct pgw_controldata cd;
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
		         "Database system identifier:           1\r\n"
		         "Database cluster state:               %s\r\n"
		         "Latest checkpoint location:           0/1\r\n",
		         cases[i].text);
		assert_int_equal(pgw_pg_parse_controldata(text, &cd), 0);
		assert_int_equal(cd.state, cases[i].st);
		assert_int_equal(cd.timeline, 0); /* absent */
	}
}

static void test_controldata_garbage(void **state)
{
	static const char *const bad[] = {
	    "",
	    "garbage\n\n:::\n",
	    "pg_controldata: error: could not open file \"global/pg_control\" for reading: "
	    "No such file or directory\n",
	    /* a required field missing */
	    "Database cluster state: in production\nLatest checkpoint location: 0/1\n",
	    /* malformed values */
	    "Database system identifier: 12x\nDatabase cluster state: in production\n"
	    "Latest checkpoint location: 0/1\n",
	    "Database system identifier: 1\nDatabase cluster state: in production\n"
	    "Latest checkpoint location: 0/zz\n",
	    "Database system identifier: 1\nDatabase cluster state: \n"
	    "Latest checkpoint location: 0/1\n",
	    "Database system identifier: 1\nDatabase cluster state: in production\n"
	    "Latest checkpoint location: 0/1\nLatest checkpoint's TimeLineID: 0\n",
	    "Database system identifier: -1\nDatabase cluster state: in production\n"
	    "Latest checkpoint location: 0/1\n",
	};
	struct pgw_controldata cd;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (pgw_pg_parse_controldata(bad[i], &cd) == 0)
			fail_msg("accepted case %zu", i);
	/* truncated real output: the checkpoint location is cut off */
	char cut[700];
	snprintf(cut, sizeof(cut), "%.*s",
	         (int)(strstr(CD_PRIMARY, "Latest checkpoint location") - CD_PRIMARY), CD_PRIMARY);
	assert_int_equal(pgw_pg_parse_controldata(cut, &cd), -1);
}

/* ---- timeline history ------------------------------------------------------------- */

static void test_timeline_switch(void **state)
{
	struct fixture *f = *state;
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);
	char path[256], reason[64];
	uint64_t lsn = 0;
	int parent = 0;

	assert_non_null(pg);
	make_dir(f->data);
	snprintf(path, sizeof(path), "%s/pg_wal", f->data);
	make_dir(path);
	snprintf(path, sizeof(path), "%s/pg_wal/00000002.history", f->data);
	write_text(path, "1\t0/3000000\tno recovery target specified\n", 0600);
	assert_int_equal(pgw_pg_timeline_switch(pg, 2, &parent, &lsn, reason, sizeof(reason)), 0);
	assert_int_equal(lsn, 0x3000000);
	assert_int_equal(parent, 1);
	assert_string_equal(reason, "no recovery target specified");

	/* timeline 10 (hex name 0000000A): the last line counts, blank lines skipped */
	snprintf(path, sizeof(path), "%s/pg_wal/0000000A.history", f->data);
	write_text(path,
	           "1\t0/3000000\tno recovery target specified\n\n"
	           "9\t1A/FF000028\tat restore point \"x\"\n\n",
	           0600);
	assert_int_equal(pgw_pg_timeline_switch(pg, 10, &parent, &lsn, reason, 8), 0);
	assert_int_equal(lsn, 0x1AFF000028ULL);
	assert_int_equal(parent, 9);
	assert_string_equal(reason, "at rest"); /* truncated to the buffer */

	snprintf(path, sizeof(path), "%s/pg_wal/00000003.history", f->data);
	write_text(path, "1\tnot-an-lsn\treason\n", 0600);
	assert_int_equal(pgw_pg_timeline_switch(pg, 3, &parent, &lsn, reason, sizeof(reason)), -1);
	write_text(path, "", 0600);
	assert_int_equal(pgw_pg_timeline_switch(pg, 3, &parent, &lsn, reason, sizeof(reason)), -1);
	assert_int_equal(pgw_pg_timeline_switch(pg, 4, &parent, &lsn, reason, sizeof(reason)), -1);
	assert_non_null(strstr(pgw_pg_last_error(pg), "00000004.history"));
	pgw_pg_free(pg);
}

/* ---- postgresql.conf -------------------------------------------------------------- */

/* The line "name = ..." of conf, or NULL; asserts there is at most one. */
static const char *conf_line(const char *conf, const char *name)
{
	char key[80];
	const char *hit = NULL;

	snprintf(key, sizeof(key), "\n%s = ", name);
	for (const char *p = strstr(conf, key); p; p = strstr(p + 1, key)) {
		assert_null(hit);
		hit = p + 1;
	}
	return hit;
}

static void assert_setting(const char *conf, const char *name, const char *quoted)
{
	const char *line = conf_line(conf, name);
	size_t n = strlen(name) + 3;

	if (!line)
		fail_msg("%s missing", name);
	if (strncmp(line + n, quoted, strlen(quoted)) || line[n + strlen(quoted)] != '\n')
		fail_msg("%s: expected %s, got %.*s", name, quoted, (int)strcspn(line, "\n"), line);
}

static void test_render_primary(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	char *conf = pgw_pg_render_conf(&f->cfg, &f->dcs_list, NULL, 0, NULL, err, sizeof(err));

	assert_non_null(conf);
	assert_non_null(strstr(conf, "\ninclude 'postgresql.base.conf'\n"));
	assert_true(strstr(conf, "include") < strstr(conf, "listen_addresses"));
	assert_setting(conf, "listen_addresses", "'0.0.0.0'");
	assert_setting(conf, "port", "'5433'"); /* local "port" ignored: listen decides */
	assert_non_null(strstr(conf, "\nhba_file = '/tmp/pgw-test-pg."));
	assert_setting(conf, "wal_level", "'replica'");
	assert_setting(conf, "hot_standby", "'on'");
	assert_setting(conf, "wal_log_hints", "'on'");
	assert_setting(conf, "max_wal_senders", "'10'");
	assert_setting(conf, "max_replication_slots", "'10'");
	assert_setting(conf, "wal_keep_size", "'1GB'");   /* dcs over the default */
	assert_setting(conf, "max_connections", "'300'"); /* local over dcs */
	assert_null(conf_line(conf, "MAX_CONNECTIONS"));
	assert_setting(conf, "shared_buffers", "'64MB'");
	assert_setting(conf, "log_line_prefix", "'it''s %m \\\\ '");
	assert_null(strstr(conf, "primary_conninfo"));
	assert_null(strstr(conf, "recovery_target_timeline"));
	free(conf);
}

static void test_render_standby(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	char *conf;

	f->cfg.postgresql.listen = "127.0.0.2:5432";
	conf = pgw_pg_render_conf(&f->cfg, NULL, "10.0.0.1", 5434, "node_2", err, sizeof(err));
	assert_non_null(conf);
	assert_setting(conf, "listen_addresses", "'127.0.0.2'");
	assert_setting(conf, "max_connections", "'300'");
	assert_setting(conf, "wal_keep_size", "'128MB'");
	/* the passfile path has a blank: quoted inside the conninfo */
	assert_non_null(strstr(conf, "\nprimary_conninfo = 'host=10.0.0.1 port=5434 "
	                             "user=replicator passfile=''/tmp/pgw-test-pg."));
	assert_non_null(strstr(conf, "/pg pass'' application_name=node-1 sslmode=prefer'\n"));
	assert_setting(conf, "primary_slot_name", "'node_2'");
	assert_setting(conf, "recovery_target_timeline", "'latest'");
	free(conf);
	/* issue 11, item 12: the replication user's TLS settings, up to verify-full */
	f->cfg.postgresql.replication.sslmode = "verify-full";
	f->cfg.postgresql.replication.sslrootcert = "/etc/pgwarden/ca.pem";
	conf = pgw_pg_render_conf(&f->cfg, NULL, "10.0.0.1", 5434, "node_2", err, sizeof(err));
	assert_non_null(conf);
	assert_non_null(strstr(conf, "application_name=node-1 sslmode=verify-full "
	                             "sslrootcert=/etc/pgwarden/ca.pem'\n"));
	free(conf);
	f->cfg.postgresql.replication.sslmode = NULL;
	f->cfg.postgresql.replication.sslrootcert = NULL;

	conf = pgw_pg_render_conf(&f->cfg, NULL, "10.0.0.1", 5434, NULL, err, sizeof(err));
	assert_non_null(conf);
	assert_null(strstr(conf, "primary_slot_name"));
	free(conf);
}

static void test_render_rejects(void **state)
{
	struct fixture *f = *state;
	struct pgw_kv bad_name[] = {{"work_mem = '1GB'\nfsync", "off"}};
	struct pgw_kv bad_value[] = {{"work_mem", "1MB'\nfsync = 'off"}};
	struct pgw_kvlist l = {bad_name, 1};
	char err[256] = "";

	(void)state;
	assert_null(pgw_pg_render_conf(&f->cfg, &l, NULL, 0, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "invalid parameter name"));
	l.items = bad_value;
	err[0] = '\0';
	assert_null(pgw_pg_render_conf(&f->cfg, &l, NULL, 0, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "work_mem"));
	f->cfg.postgresql.listen = "no-port";
	err[0] = '\0';
	assert_null(pgw_pg_render_conf(&f->cfg, NULL, NULL, 0, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "postgresql.listen"));
}

/* ---- configuration files on disk -------------------------------------------------- */

static void test_write_config(void **state)
{
	struct fixture *f = *state;
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);
	char path[256];
	struct stat st;
	char *text;

	assert_non_null(pg);
	assert_int_equal(pgw_pg_write_config(pg, NULL, "h", 1, "s"), -1); /* no data dir */
	make_dir(f->data);
	snprintf(path, sizeof(path), "%s/postgresql.conf", f->data);
	write_text(path, "# initdb's\nshared_buffers = 128MB\n", 0600);

	assert_int_equal(pgw_pg_write_config(pg, &f->dcs_list, "127.0.0.9", 5432, "node_1"), 0);
	snprintf(path, sizeof(path), "%s/postgresql.base.conf", f->data);
	assert_string_equal(read_text(path), "# initdb's\nshared_buffers = 128MB\n");
	snprintf(path, sizeof(path), "%s/postgresql.conf", f->data);
	assert_non_null(strstr(read_text(path), "primary_slot_name = 'node_1'"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/standby.signal", f->data);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/pg_hba.conf", f->data);
	text = read_text(path);
	assert_non_null(strstr(text, "\nlocal all all peer\n")); /* not trust (issue 11) */
	assert_null(strstr(text, "trust"));
	assert_non_null(strstr(text, "\nhost replication all 127.0.0.1/32 scram-sha-256\n"));
	/* every line names one host: the leader's lines its host:port only (issue 11.12) */
	assert_string_equal(read_text(f->pgpass), "127.0.0.1:5433:*:postgres:su\\:pw\n"
	                                          "127.0.0.9:5432:*:replicator:re\\\\pl\n"
	                                          "127.0.0.9:5432:*:postgres:su\\:pw\n");
	assert_int_equal(stat(f->pgpass, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* with a rewind user the superuser's password is for this node's server only */
	f->cfg.postgresql.rewind = (struct pgw_auth){.username = "rew", .password = "rpw"};
	assert_int_equal(pgw_pg_write_config(pg, &f->dcs_list, "127.0.0.9", 5432, "node_1"), 0);
	assert_string_equal(read_text(f->pgpass), "127.0.0.1:5433:*:postgres:su\\:pw\n"
	                                          "127.0.0.9:5432:*:replicator:re\\\\pl\n"
	                                          "127.0.0.9:5432:*:rew:rpw\n");
	f->cfg.postgresql.rewind = (struct pgw_auth){0};

	/* again, as a primary: the base stays, standby.signal goes, custom hba */
	char *hba[] = {"local all all peer", "host all all 0.0.0.0/0 scram-sha-256"};
	f->cfg.postgresql.pg_hba = (struct pgw_strlist){hba, 2};
	assert_int_equal(pgw_pg_write_config(pg, NULL, NULL, 0, NULL), 0);
	snprintf(path, sizeof(path), "%s/postgresql.base.conf", f->data);
	assert_string_equal(read_text(path), "# initdb's\nshared_buffers = 128MB\n");
	snprintf(path, sizeof(path), "%s/postgresql.conf", f->data);
	assert_null(strstr(read_text(path), "primary_conninfo"));
	snprintf(path, sizeof(path), "%s/standby.signal", f->data);
	assert_int_not_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/pg_hba.conf", f->data);
	assert_non_null(strstr(read_text(path), "\nlocal all all peer\nhost all all 0.0.0.0/0"));
	/* a primary connects to no leader: its own server's line only */
	assert_string_equal(read_text(f->pgpass), "127.0.0.1:5433:*:postgres:su\\:pw\n");
	snprintf(path, sizeof(path), "%s/postgresql.conf.tmp", f->data);
	assert_int_not_equal(stat(path, &st), 0);
	pgw_pg_free(pg);
}

static void test_write_config_lost_base(void **state)
{
	struct fixture *f = *state;
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);
	char path[256];

	make_dir(f->data);
	assert_int_equal(pgw_pg_write_config(pg, NULL, NULL, 0, NULL), 0);
	snprintf(path, sizeof(path), "%s/postgresql.base.conf", f->data);
	unlink(path);
	/* our own postgresql.conf must never become the base (it would include itself) */
	assert_int_equal(pgw_pg_write_config(pg, NULL, NULL, 0, NULL), 0);
	assert_null(strstr(read_text(path), "include"));
	pgw_pg_free(pg);
}

/* postgresql.config_dir: the three files there, initdb's settings copied there once
 * (from the data directory's postgresql.base.conf when the node ran without
 * config_dir before), and postgresql.conf points at them. */
static void test_write_config_dir(void **state)
{
	struct fixture *f = *state;
	struct pgw_pg *pg;
	char path[256], cdir[160], want[400];
	struct stat st;

	snprintf(cdir, sizeof(cdir), "%s/conf", f->dir);
	f->cfg.postgresql.config_dir = cdir;
	pg = pgw_pg_new(&f->cfg);
	assert_non_null(pg);
	make_dir(f->data);
	snprintf(path, sizeof(path), "%s/postgresql.conf", f->data);
	write_text(path, "# initdb's\nshared_buffers = 128MB\n", 0600);
	assert_int_equal(pgw_pg_write_config(pg, NULL, "127.0.0.9", 5432, "node_1"), 0);
	assert_int_equal(stat(cdir, &st), 0); /* created */
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/postgresql.base.conf", cdir);
	assert_string_equal(read_text(path), "# initdb's\nshared_buffers = 128MB\n");
	snprintf(path, sizeof(path), "%s/postgresql.conf", cdir);
	snprintf(want, sizeof(want),
	         "\nhba_file = '%s/pg_hba.conf'\nident_file = '%s/pg_ident.conf'\n", cdir, cdir);
	assert_non_null(strstr(read_text(path), want));
	assert_non_null(strstr(read_text(path), "primary_slot_name = 'node_1'"));
	snprintf(path, sizeof(path), "%s/pg_hba.conf", cdir);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/pg_ident.conf", cdir);
	assert_int_equal(stat(path, &st), 0);
	/* the data directory keeps initdb's file and gets no pgwarden file but the signal */
	snprintf(path, sizeof(path), "%s/postgresql.conf", f->data);
	assert_string_equal(read_text(path), "# initdb's\nshared_buffers = 128MB\n");
	snprintf(path, sizeof(path), "%s/pg_hba.conf", f->data);
	assert_int_not_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/standby.signal", f->data);
	assert_int_equal(stat(path, &st), 0);
	/* an operator's pg_ident.conf in config_dir stays */
	snprintf(path, sizeof(path), "%s/pg_ident.conf", cdir);
	write_text(path, "mine\n", 0600);
	assert_int_equal(pgw_pg_write_config(pg, NULL, NULL, 0, NULL), 0);
	assert_string_equal(read_text(path), "mine\n");
	pgw_pg_free(pg);

	/* a node that ran without config_dir: its postgresql.base.conf is the source */
	snprintf(path, sizeof(path), "%s/postgresql.base.conf", cdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/postgresql.base.conf", f->data);
	write_text(path, "# the old base\n", 0600);
	pg = pgw_pg_new(&f->cfg);
	assert_int_equal(pgw_pg_write_config(pg, NULL, NULL, 0, NULL), 0);
	snprintf(path, sizeof(path), "%s/postgresql.base.conf", cdir);
	assert_string_equal(read_text(path), "# the old base\n");
	pgw_pg_free(pg);
	f->cfg.postgresql.config_dir = NULL;
}

/* postgresql.use_unix_socket: the host of the daemon's connections. */
static void test_unix_socket_host(void **state)
{
	struct fixture *f = *state;
	struct pgw_kv p[] = {{"unix_socket_directories", " .., \"/run/pg a\" ,/tmp"}};
	struct pgw_kv rel[] = {{"unix_socket_directories", "..,@abstract"}};
	char *h;

	f->cfg.postgresql.parameters = (struct pgw_kvlist){NULL, 0};
	h = pgw_pg_unix_socket_host(&f->cfg);
	assert_string_equal(h, ""); /* unset: libpq's default socket */
	free(h);
	f->cfg.postgresql.parameters = (struct pgw_kvlist){p, 1};
	h = pgw_pg_unix_socket_host(&f->cfg);
	assert_string_equal(h, "/run/pg a"); /* the first absolute entry */
	free(h);
	f->cfg.postgresql.parameters = (struct pgw_kvlist){rel, 1};
	assert_null(pgw_pg_unix_socket_host(&f->cfg)); /* none absolute: TCP */
	/* with use_unix_socket the password file's line is for localhost */
	f->cfg.postgresql.parameters = (struct pgw_kvlist){p, 1};
	f->cfg.postgresql.use_unix_socket = true;
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);

	make_dir(f->data);
	assert_int_equal(pgw_pg_write_config(pg, NULL, NULL, 0, NULL), 0);
	assert_string_equal(read_text(f->pgpass), "localhost:5433:*:postgres:su\\:pw\n");
	pgw_pg_free(pg);
	f->cfg.postgresql.use_unix_socket = false;
}

/* ---- observation without a server, child programs --------------------------------- */

static void test_observe_no_server(void **state)
{
	struct fixture *f = *state;
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);
	struct pgw_pg_state st;
	char path[256], script[4096], pidline[160];

	assert_non_null(pg);
	pgw_pg_observe(pg, 1000, &st);
	assert_int_equal(st.datadir, PGW_DATADIR_EMPTY); /* missing */
	assert_false(st.running);
	assert_false(st.accepting);
	make_dir(f->data);
	pgw_pg_observe(pg, 1000, &st);
	assert_int_equal(st.datadir, PGW_DATADIR_EMPTY); /* empty */
	snprintf(path, sizeof(path), "%s/junk", f->data);
	write_text(path, "x", 0600);
	pgw_pg_observe(pg, 1000, &st);
	assert_int_equal(st.datadir, PGW_DATADIR_INVALID); /* no PG_VERSION */

	/* PG_VERSION, and a pg_controldata that works / fails */
	snprintf(path, sizeof(path), "%s/PG_VERSION", f->data);
	write_text(path, "15\n", 0600);
	snprintf(script, sizeof(script), "#!/bin/sh\ncat <<'END'\n%sEND\n", CD_STANDBY_DOWN);
	fake_program(f, "pg_controldata", script);
	pgw_pg_observe(pg, 1000, &st);
	assert_int_equal(st.datadir, PGW_DATADIR_VALID);
	fake_program(f, "pg_controldata", "#!/bin/sh\necho 'could not open' >&2\nexit 1\n");
	pgw_pg_observe(pg, 1000, &st);
	assert_int_equal(st.datadir, PGW_DATADIR_INVALID);

	/* a stale postmaster.pid: a pid that is not a postmaster */
	snprintf(path, sizeof(path), "%s/postmaster.pid", f->data);
	snprintf(pidline, sizeof(pidline), "%ld\n%s\n", (long)getpid(), f->data);
	write_text(path, pidline, 0600);
	pgw_pg_observe(pg, 1000, &st);
	assert_false(st.running);
	write_text(path, "999999999\n", 0600);
	pgw_pg_observe(pg, 1000, &st);
	assert_false(st.running);
	pgw_pg_free(pg);
}

static void test_controldata_command(void **state)
{
	struct fixture *f = *state;
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);
	struct pgw_controldata cd;
	char script[4096];

	/* the fake checks its arguments and environment */
	snprintf(script, sizeof(script),
	         "#!/bin/sh\n[ \"$1 $2\" = \"-D %s\" ] || exit 3\n"
	         "[ \"$LC_ALL\" = C ] && [ \"$PGPASSFILE\" = \"%s\" ] || exit 4\n"
	         "cat <<'END'\n%sEND\n",
	         f->data, f->pgpass, CD_PRIMARY);
	fake_program(f, "pg_controldata", script);
	setenv("PGHOST", "elsewhere", 1);
	assert_int_equal(pgw_pg_controldata(pg, &cd), 0);
	unsetenv("PGHOST");
	assert_int_equal(cd.state, PGW_CS_IN_PRODUCTION);
	fake_program(f, "pg_controldata", "#!/bin/sh\necho garbage\n");
	assert_int_equal(pgw_pg_controldata(pg, &cd), -1);
	pgw_pg_free(pg);
}

static void test_command_failure_tail(void **state)
{
	struct fixture *f = *state;
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);
	const char *err;

	fake_program(f, "pg_ctl",
	             "#!/bin/sh\nfor i in $(seq 1 40); do echo \"line $i\"; done\n"
	             "echo \"env $LC_ALL\" >&2\nexit 7\n");
	assert_int_equal(pgw_pg_reload(pg), -1);
	err = pgw_pg_last_error(pg);
	assert_non_null(strstr(err, "pg_ctl reload -D"));
	assert_non_null(strstr(err, "exited with status 7"));
	assert_non_null(strstr(err, "line 40 | env C"));
	assert_null(strstr(err, "line 21 |")); /* only the last 20 lines */
	assert_non_null(strstr(err, ": line 22 | line 23 |"));
	pgw_pg_free(pg);
}

/* Is pid gone (or a zombie nobody reaped yet)?  Waits up to a second. */
static bool process_gone(long pid)
{
	char path[64], buf[256];

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	for (int i = 0; i < 100; i++) {
		char *text = read_text(path);

		if (!text)
			return true;
		snprintf(buf, sizeof(buf), "%s", text);
		if (strstr(buf, ") Z") || strstr(buf, ") X"))
			return true;
		usleep(10000);
	}
	return false;
}

static long read_pid(const char *path)
{
	char *text = NULL;

	for (int i = 0; i < 100 && !(text = read_text(path)); i++)
		usleep(10000);
	assert_non_null(text);
	return atol(text);
}

static void test_command_timeout(void **state)
{
	struct fixture *f = *state;
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);
	char script[512], pidfile[256];
	double t0;
	long pid;

	/* a child and a grandchild in its process group: both must go */
	snprintf(pidfile, sizeof(pidfile), "%s/grandchild.pid", f->dir);
	snprintf(script, sizeof(script),
	         "#!/bin/sh\necho starting\nsleep 30 &\necho $! > '%s'\nsleep 30\n", pidfile);
	fake_program(f, "pg_ctl", script);
	t0 = now_s();
	assert_int_equal(pgw_pg_start(pg, 1500), -1);
	assert_true(now_s() - t0 < 5);
	assert_non_null(strstr(pgw_pg_last_error(pg), "timed out after 1500 ms"));
	assert_non_null(strstr(pgw_pg_last_error(pg), "starting"));
	assert_true(process_gone(read_pid(pidfile)));
	unlink(pidfile);

	/* like pg_ctl start: exits while a setsid'd grandchild (holding our pipe) runs on */
	snprintf(script, sizeof(script),
	         "#!/bin/sh\nsetsid sh -c 'echo $$ > \"%s\"; exec sleep 30' &\necho ok\n", pidfile);
	fake_program(f, "pg_ctl", script);
	t0 = now_s();
	assert_int_equal(pgw_pg_start(pg, 10000), 0);
	assert_true(now_s() - t0 < 2);
	pid = read_pid(pidfile);
	assert_false(process_gone(pid)); /* not killed... */
	kill((pid_t)pid, SIGKILL);       /* ...so the test stops it */
	assert_true(process_gone(pid));
	pgw_pg_free(pg);
}

static void test_missing_program(void **state)
{
	struct fixture *f = *state;
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);

	assert_int_equal(pgw_pg_reload(pg), -1);
	assert_non_null(strstr(pgw_pg_last_error(pg), "exited with status 127"));
	assert_non_null(strstr(pgw_pg_last_error(pg), "cannot execute"));
	pgw_pg_free(pg);
}

static void test_new_rejects(void **state)
{
	struct fixture *f = *state;

	f->cfg.postgresql.pgpass = NULL;
	assert_null(pgw_pg_new(&f->cfg));
	f->cfg.postgresql.pgpass = f->pgpass;
	f->cfg.postgresql.listen = "127.0.0.1:99999";
	assert_null(pgw_pg_new(&f->cfg));
	f->cfg.postgresql.listen = "[::1]:5432";
	struct pgw_pg *pg = pgw_pg_new(&f->cfg);
	assert_non_null(pg);
	pgw_pg_free(pg);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lsn_parse_valid),
	    cmocka_unit_test(test_lsn_parse_invalid),
	    cmocka_unit_test(test_lsn_format),
	    cmocka_unit_test(test_slot_name),
	    cmocka_unit_test(test_controldata_primary),
	    cmocka_unit_test(test_controldata_standby),
	    cmocka_unit_test(test_controldata_states),
	    cmocka_unit_test(test_controldata_garbage),
	    T(test_timeline_switch),
	    T(test_render_primary),
	    T(test_render_standby),
	    T(test_render_rejects),
	    T(test_write_config),
	    T(test_write_config_lost_base),
	    T(test_write_config_dir),
	    T(test_unix_socket_host),
	    T(test_observe_no_server),
	    T(test_controldata_command),
	    T(test_command_failure_tail),
	    T(test_command_timeout),
	    T(test_missing_program),
	    T(test_new_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
