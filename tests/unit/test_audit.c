/*
 * test_audit.c - the fencing audit log (fencing/audit.c), rule S4: a chain of records
 * verifies; a changed byte, a deleted line, two swapped lines, a cut-off head and a torn
 * last write each fail verification naming the right line; a damaged last record keeps
 * the log from being opened (so the daemon refuses to fence); reopening continues seq
 * and chain; rotation keeps the chain across files (and a wrong anchor is found); two
 * writers on one file stay one chain; the file is 0600; strings are escaped into valid
 * one-line JSON; the tail for GET /fencing.  Runs as a normal user in a mkdtemp dir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>

#include "testutil.h"
#include "audit.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/pgw-audit-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/fencing.log", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	testutil_remove_dir(fx->dir);
	free(fx);
	return 0;
}

/* --- file helpers --- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Split a file into its lines (each with its '\n'); returns the count. */
static int lines_of(const char *path, char ***out)
{
	char *buf = slurp(path, NULL), *p = buf;
	char **lines = NULL;
	int n = 0;

	while (*p) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);

		lines = realloc(lines, sizeof(*lines) * (size_t)(n + 1));
		assert_non_null(lines);
		lines[n] = strndup(p, len);
		n++;
		p += len;
	}
	free(buf);
	*out = lines;
	return n;
}

static void write_lines(const char *path, char **lines, int n)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	for (int i = 0; i < n; i++)
		if (lines[i])
			fputs(lines[i], f);
	assert_int_equal(fclose(f), 0);
}

static void free_lines(char **lines, int n)
{
	for (int i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

/* Write records 1..n (fresh log) and return the last hash in last (65 bytes). */
static void write_chain(const char *path, int n, char *last)
{
	char err[512], reason[64];
	struct pgw_audit *a = pgw_audit_open(path, "pg-test", "node2", err, sizeof(err));
	static const char *const actions[] = {"fence-intent", "power-off", "power-status",
	                                      "fence-result", "promote"};

	if (!a)
		fail_msg("open: %s", err);
	for (int i = 0; i < n; i++) {
		struct pgw_audit_rec r = {.action = actions[i % 5],
		                          .target = "node1",
		                          .bmc = "127.0.0.1:9001",
		                          .result = "ok",
		                          .reason = reason,
		                          .lease = 7587869402934LL + i,
		                          .timeline = 3};

		snprintf(reason, sizeof(reason), "record number %d", i + 1);
		if (pgw_audit_append(a, &r, err, sizeof(err)) != 0)
			fail_msg("append %d: %s", i + 1, err);
	}
	if (last)
		snprintf(last, PGW_AUDIT_HASH_HEX + 1, "%s", pgw_audit_last_hash(a));
	pgw_audit_close(a);
}

static struct json_object *parse_line(const char *line)
{
	struct json_object *o = json_tokener_parse(line);

	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return json_object_get_string(v);
}

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	return json_object_get_int64(v);
}

/* --- tests --- */

static void test_chain_verifies(void **state)
{
	struct fixture *fx = *state;
	char err[512] = "", last[65];
	struct stat st;
	char **lines;
	int n;

	write_chain(fx->path, 6, last);
	assert_int_equal(pgw_audit_verify(fx->path, NULL, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_verify_all(fx->path, err, sizeof(err)), 0);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	n = lines_of(fx->path, &lines);
	assert_int_equal(n, 6);
	for (int i = 0; i < n; i++) {
		struct json_object *o = parse_line(lines[i]);
		static const char *const keys[] = {
		    "seq",    "wall",   "mono",   "cluster", "actor",    "target", "bmc",
		    "action", "result", "reason", "lease",   "timeline", "prev",   "hash"};
		const char *p = lines[i];

		/* the keys in the documented order */
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			char quoted[32];

			snprintf(quoted, sizeof(quoted), "\"%s\":", keys[k]);
			p = strstr(p, quoted);
			assert_non_null(p);
		}
		assert_int_equal(get_int(o, "seq"), i + 1);
		assert_string_equal(get_str(o, "cluster"), "pg-test");
		assert_string_equal(get_str(o, "actor"), "node2");
		assert_string_equal(get_str(o, "target"), "node1");
		assert_int_equal(get_int(o, "lease"), 7587869402934LL + i);
		assert_int_equal(get_int(o, "timeline"), 3);
		assert_int_equal(strlen(get_str(o, "wall")), strlen("2026-11-23T14:05:01.123Z"));
		assert_true(get_str(o, "wall")[23] == 'Z');
		if (i == 0) {
			assert_string_equal(get_str(o, "prev"), "00000000000000000000000000000000"
			                                        "00000000000000000000000000000000");
		} else {
			struct json_object *before = parse_line(lines[i - 1]);

			assert_string_equal(get_str(o, "prev"), get_str(before, "hash"));
			json_object_put(before);
		}
		if (i == n - 1)
			assert_string_equal(get_str(o, "hash"), last);
		json_object_put(o);
	}
	free_lines(lines, n);
}

/* The hash is SHA-256 of the line without its "hash" member, as audit.h defines it. */
static void test_hash_definition(void **state)
{
	struct fixture *fx = *state;
	char **lines;
	char canon[4096], hexs[65];
	unsigned char d[32];
	const char *h;
	size_t len;

	write_chain(fx->path, 1, NULL);
	assert_int_equal(lines_of(fx->path, &lines), 1);
	h = strstr(lines[0], ",\"hash\":\"");
	assert_non_null(h);
	len = (size_t)(h - lines[0]);
	assert_true(len + 2 < sizeof(canon));
	memcpy(canon, lines[0], len);
	canon[len] = '}';
	canon[len + 1] = '\0';
	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, canon, len + 1, d), 0);
	for (int i = 0; i < 32; i++)
		snprintf(hexs + 2 * i, 3, "%02x", d[i]);
	assert_memory_equal(h + 9, hexs, 64);
	assert_string_equal(h + 9 + 64, "\"}\n");
	free_lines(lines, 1);
}

static void expect_bad(const char *path, int line, const char *what)
{
	char err[512] = "";
	int rc = pgw_audit_verify(path, NULL, err, sizeof(err));

	if (rc != line || !strstr(err, what))
		fail_msg("verify: expected line %d with \"%s\", got %d: %s", line, what, rc, err);
}

static void test_flipped_byte(void **state)
{
	struct fixture *fx = *state;
	char *buf, *p;
	size_t len;

	write_chain(fx->path, 5, NULL);
	buf = slurp(fx->path, &len);
	/* one byte of record 3's reason: "record number 3" -> "record number 4" */
	p = strstr(buf, "record number 3");
	assert_non_null(p);
	p[14] = '4';
	spit(fx->path, buf, len);
	expect_bad(fx->path, 3, "hash mismatch");

	/* a flipped bit in a record's stored hash is found too */
	unlink(fx->path);
	write_chain(fx->path, 5, NULL);
	free(buf);
	buf = slurp(fx->path, &len);
	p = buf;
	for (int i = 0; i < 3; i++)
		p = strstr(p, ",\"hash\":\"") + 1; /* line 3's hash member */
	p[20] = p[20] == 'a' ? 'b' : 'a';
	spit(fx->path, buf, len);
	expect_bad(fx->path, 3, "hash mismatch");

	/* a byte that breaks the JSON (in the hash member) */
	unlink(fx->path);
	write_chain(fx->path, 5, NULL);
	free(buf);
	buf = slurp(fx->path, &len);
	p = strstr(strstr(strstr(buf, "\n") + 1, "\n") + 1, ",\"hash\"");
	p[0] = ';';
	spit(fx->path, buf, len);
	expect_bad(fx->path, 3, "not an audit record");
	free(buf);
}

static void test_deleted_line(void **state)
{
	struct fixture *fx = *state;
	char **lines;
	int n;

	write_chain(fx->path, 6, NULL);
	n = lines_of(fx->path, &lines);
	free(lines[2]); /* line 3 */
	lines[2] = NULL;
	write_lines(fx->path, lines, n);
	expect_bad(fx->path, 3, "seq 4 follows seq 2");
	expect_bad(fx->path, 3, "removed or the lines were reordered");

	/* the last line removed: the chain itself cannot tell (the journal copy can) */
	lines[2] = NULL;
	free(lines[5]);
	lines[5] = NULL;
	write_lines(fx->path, lines, n);
	expect_bad(fx->path, 3, "seq 4 follows seq 2");

	/* the first line removed: the log no longer starts at seq 1 */
	free(lines[0]);
	lines[0] = NULL;
	write_lines(fx->path, lines, n);
	expect_bad(fx->path, 1, "earlier records were removed");
	free_lines(lines, n);
}

static void test_swapped_lines(void **state)
{
	struct fixture *fx = *state;
	char **lines, *t;
	int n;

	write_chain(fx->path, 6, NULL);
	n = lines_of(fx->path, &lines);
	t = lines[3]; /* lines 4 and 5 */
	lines[3] = lines[4];
	lines[4] = t;
	write_lines(fx->path, lines, n);
	expect_bad(fx->path, 4, "seq 5 follows seq 3");
	free_lines(lines, n);
}

/* A record whose seq was renumbered to hide a gap still breaks the chain at prev. */
static void test_prev_mismatch(void **state)
{
	struct fixture *fx = *state;
	char other[160], **a, **b;
	int n;

	/* two independent logs with the same seqs: line 3 taken from the other one */
	snprintf(other, sizeof(other), "%s.other", fx->path);
	write_chain(fx->path, 4, NULL);
	write_chain(other, 4, NULL);
	n = lines_of(fx->path, &a);
	assert_int_equal(lines_of(other, &b), 4);
	if (strcmp(a[2], b[2]) == 0)
		skip(); /* identical to the millisecond: nothing to test */
	free(a[2]);
	a[2] = strdup(b[2]);
	write_lines(fx->path, a, n);
	expect_bad(fx->path, 3, "prev");
	expect_bad(fx->path, 3, "does not match the hash");
	free_lines(a, n);
	free_lines(b, 4);
}

static void test_torn_last_record(void **state)
{
	struct fixture *fx = *state;
	char err[512] = "";
	char *buf;
	size_t len;

	write_chain(fx->path, 4, NULL);
	buf = slurp(fx->path, &len);
	spit(fx->path, buf, len - 40); /* the last write was cut short */
	expect_bad(fx->path, 4, "incomplete");
	assert_null(pgw_audit_open(fx->path, "pg-test", "node2", err, sizeof(err)));
	assert_non_null(strstr(err, fx->path));
	assert_non_null(strstr(err, "line 4"));
	assert_non_null(strstr(err, "incomplete"));
	free(buf);
}

static void test_damaged_last_record_refuses_open(void **state)
{
	struct fixture *fx = *state;
	char err[512] = "";
	char *buf, *p;
	size_t len;

	write_chain(fx->path, 5, NULL);
	buf = slurp(fx->path, &len);
	p = strstr(buf, "record number 5");
	assert_non_null(p);
	p[0] = 'R';
	spit(fx->path, buf, len);
	assert_null(pgw_audit_open(fx->path, "pg-test", "node2", err, sizeof(err)));
	assert_non_null(strstr(err, "line 5"));
	assert_non_null(strstr(err, "hash mismatch"));

	/* not JSON at all */
	spit(fx->path, "hello\n", 6);
	assert_null(pgw_audit_open(fx->path, "pg-test", "node2", err, sizeof(err)));
	assert_non_null(strstr(err, "line 1"));
	free(buf);
}

static void test_reopen_continues(void **state)
{
	struct fixture *fx = *state;
	char err[512] = "", last[65];
	struct pgw_audit *a;
	struct pgw_audit_rec r = {.action = "promote", .result = "ok"};
	char **lines;
	struct json_object *o;

	write_chain(fx->path, 3, last);
	a = pgw_audit_open(fx->path, "pg-test", "node3", err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(pgw_audit_next_seq(a), 4);
	assert_string_equal(pgw_audit_last_hash(a), last);
	assert_int_equal(pgw_audit_append(a, &r, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_append(a, &r, err, sizeof(err)), 0);
	pgw_audit_close(a);
	assert_int_equal(pgw_audit_verify(fx->path, NULL, err, sizeof(err)), 0);
	assert_int_equal(lines_of(fx->path, &lines), 5);
	o = parse_line(lines[3]);
	assert_int_equal(get_int(o, "seq"), 4);
	assert_string_equal(get_str(o, "prev"), last);
	assert_string_equal(get_str(o, "actor"), "node3");
	assert_null(get_str(o, "target")); /* NULL -> null */
	json_object_put(o);
	free_lines(lines, 5);

	/* an empty existing file is a new log */
	spit(fx->path, "", 0);
	a = pgw_audit_open(fx->path, "pg-test", "node3", err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(pgw_audit_next_seq(a), 1);
	pgw_audit_close(a);
}

static void test_rotation_keeps_chain(void **state)
{
	struct fixture *fx = *state;
	char err[512] = "", last1[65], p1[160], p2[160], h[65], **lines;
	struct pgw_audit *a;
	struct pgw_audit_rec r = {.action = "unfence", .target = "node1", .result = "ok"};
	struct json_object *o;
	struct stat st;
	int n;

	write_chain(fx->path, 3, last1);
	a = pgw_audit_open(fx->path, "pg-test", "node2", err, sizeof(err));
	assert_non_null(a);
	if (pgw_audit_rotate(a, err, sizeof(err)) != 0)
		fail_msg("rotate: %s", err);
	assert_int_equal(pgw_audit_append(a, &r, err, sizeof(err)), 0);
	snprintf(p1, sizeof(p1), "%s.1", fx->path);
	snprintf(p2, sizeof(p2), "%s.2", fx->path);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* the old file is PATH.1, untouched */
	assert_int_equal(pgw_audit_verify(p1, NULL, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_file_last_hash(p1, h, err, sizeof(err)), 0);
	assert_string_equal(h, last1);
	/* the new one starts with a rotate record continuing seq and chain */
	n = lines_of(fx->path, &lines);
	assert_int_equal(n, 2);
	o = parse_line(lines[0]);
	assert_string_equal(get_str(o, "action"), "rotate");
	assert_int_equal(get_int(o, "seq"), 4);
	assert_string_equal(get_str(o, "prev"), last1);
	json_object_put(o);
	assert_int_equal(pgw_audit_verify(fx->path, NULL, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_verify(fx->path, last1, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_verify_all(fx->path, err, sizeof(err)), 0);
	/* a wrong anchor */
	assert_int_equal(
	    pgw_audit_verify(fx->path,
	                     "1111111111111111111111111111111111111111111111111111111111"
	                     "111111",
	                     err, sizeof(err)),
	    1);
	assert_non_null(strstr(err, "rotate"));

	/* a second rotation shifts PATH.1 to PATH.2 */
	assert_int_equal(pgw_audit_rotate(a, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_append(a, &r, err, sizeof(err)), 0);
	assert_int_equal(stat(p2, &st), 0);
	assert_int_equal(pgw_audit_verify_all(fx->path, err, sizeof(err)), 0);
	pgw_audit_close(a);

	/* the rotate record removed: the new file no longer connects */
	free(lines[0]);
	lines[0] = NULL;
	write_lines(p1, lines, n);
	assert_int_equal(pgw_audit_verify(p1, NULL, err, sizeof(err)), 1);
	assert_int_equal(pgw_audit_verify_all(fx->path, err, sizeof(err)), 1);
	assert_non_null(strstr(err, p1));
	free_lines(lines, n);
}

/* Two handles (two processes, e.g. the daemon and pgwardenctl) append to one chain; one
 * of them rotates and the other follows into the new file. */
static void test_two_writers(void **state)
{
	struct fixture *fx = *state;
	char err[512] = "";
	struct pgw_audit *a, *b;
	struct pgw_audit_rec r = {.action = "power-status", .result = "off"};

	a = pgw_audit_open(fx->path, "pg-test", "node2", err, sizeof(err));
	b = pgw_audit_open(fx->path, "pg-test", "node3", err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pgw_audit_append(i % 2 ? a : b, &r, err, sizeof(err)), 0);
		assert_int_equal(pgw_audit_append(a, &r, err, sizeof(err)), 0);
	}
	assert_int_equal(pgw_audit_next_seq(a), 9);
	assert_int_equal(pgw_audit_verify(fx->path, NULL, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_rotate(a, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_append(b, &r, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_append(a, &r, err, sizeof(err)), 0);
	assert_int_equal(pgw_audit_next_seq(b), 11);
	assert_int_equal(pgw_audit_next_seq(a), 12);
	if (pgw_audit_verify_all(fx->path, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	pgw_audit_close(a);
	pgw_audit_close(b);
}

static void test_escaping_and_fields(void **state)
{
	struct fixture *fx = *state;
	char err[512] = "", big[3000], **lines;
	struct pgw_audit *a = pgw_audit_open(fx->path, "pg \"test\"", "node\\2", err, sizeof(err));
	struct pgw_audit_rec r = {
	    .action = "fence-result",
	    .target = "node1",
	    .bmc = "127.0.0.1:623",
	    .result = "failed",
	    .reason = "line1\nline2\t\"quoted\" \x01 bad \xff\xfe utf8 \xc3\xa9 / end"};
	struct json_object *o;
	int n;

	assert_non_null(a);
	assert_int_equal(pgw_audit_append(a, &r, err, sizeof(err)), 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r.reason = big;
	assert_int_equal(pgw_audit_append(a, &r, err, sizeof(err)), 0);
	r.action = NULL;
	assert_int_equal(pgw_audit_append(a, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "action"));
	pgw_audit_close(a);

	assert_int_equal(pgw_audit_verify(fx->path, NULL, err, sizeof(err)), 0);
	n = lines_of(fx->path, &lines);
	assert_int_equal(n, 2); /* one line per record, whatever the reason holds */
	o = parse_line(lines[0]);
	assert_string_equal(get_str(o, "cluster"), "pg \"test\"");
	assert_string_equal(get_str(o, "actor"), "node\\2");
	assert_string_equal(get_str(o, "reason"), "line1\nline2\t\"quoted\" \x01 bad \xef\xbf\xbd"
	                                          "\xef\xbf\xbd utf8 \xc3\xa9 / end");
	/* bmc is the address only: nothing that looks like a user or a password */
	assert_string_equal(get_str(o, "bmc"), "127.0.0.1:623");
	assert_null(strstr(lines[0], "password"));
	assert_null(strstr(lines[0], "admin"));
	json_object_put(o);
	o = parse_line(lines[1]);
	assert_int_equal(strlen(get_str(o, "reason")), PGW_AUDIT_FIELD_MAX);
	json_object_put(o);
	free_lines(lines, n);
}

static void test_tail_json(void **state)
{
	struct fixture *fx = *state;
	char missing[160], *json;
	struct json_object *arr;

	snprintf(missing, sizeof(missing), "%s/none.log", fx->dir);
	json = pgw_audit_tail_json(missing, 5);
	assert_string_equal(json, "[]");
	free(json);

	write_chain(fx->path, 7, NULL);
	json = pgw_audit_tail_json(fx->path, 3);
	assert_non_null(json);
	arr = json_tokener_parse(json);
	assert_non_null(arr);
	assert_int_equal(json_object_array_length(arr), 3);
	assert_int_equal(get_int(json_object_array_get_idx(arr, 0), "seq"), 5);
	assert_int_equal(get_int(json_object_array_get_idx(arr, 2), "seq"), 7);
	json_object_put(arr);
	free(json);

	json = pgw_audit_tail_json(fx->path, 100); /* more than there are */
	arr = json_tokener_parse(json);
	assert_int_equal(json_object_array_length(arr), 7);
	json_object_put(arr);
	free(json);

	json = pgw_audit_tail_json(fx->path, 0);
	assert_string_equal(json, "[]");
	free(json);
	assert_null(pgw_audit_tail_json(fx->path, -1));
}

/* Many records: verification stays fast (the figure is in the closing note). */
static const unsigned char KEY[32] = "0123456789abcdef0123456789ABCDEF";

static void append_n(struct pgw_audit *a, int n, const char *reason)
{
	char err[512];

	for (int i = 0; i < n; i++) {
		struct pgw_audit_rec r = {.action = i ? "fence-result" : "fence-intent",
		                          .target = "node1",
		                          .result = "ok",
		                          .reason = reason};

		if (pgw_audit_append(a, &r, err, sizeof(err)) != 0)
			fail_msg("append: %s", err);
	}
}

/*
 * Issue 11, item 15: the postgres user can write the log (COPY ... TO PROGRAM) and
 * could rewrite a plain chain so that it verifies.  A keyed chain (HMAC-SHA256 with a
 * key only root reads) cannot be rewritten without the key: verified with the key, a
 * plain chain fails and says why.
 */
static void test_keyed_chain(void **state)
{
	struct fixture *fx = *state;
	char err[512] = "", forged[160];
	struct pgw_audit *a;
	unsigned char other[32];

	a = pgw_audit_open_keyed(fx->path, "demo", "node2", KEY, sizeof(KEY), err, sizeof(err));
	if (!a)
		fail_msg("open: %s", err);
	append_n(a, 3, "lease lost");
	pgw_audit_close(a);
	assert_int_equal(pgw_audit_verify_all_keyed(fx->path, KEY, sizeof(KEY), err, sizeof(err)),
	                 0);
	/* without the key, or with another, it does not verify */
	assert_int_equal(pgw_audit_verify_all(fx->path, err, sizeof(err)), 1);
	memcpy(other, KEY, sizeof(other));
	other[0] ^= 1;
	assert_int_equal(
	    pgw_audit_verify_all_keyed(fx->path, other, sizeof(other), err, sizeof(err)), 1);
	assert_non_null(strstr(err, "hash mismatch"));
	/* the writer continues a keyed chain only with its key */
	assert_null(pgw_audit_open(fx->path, "demo", "node2", err, sizeof(err)));
	a = pgw_audit_open_keyed(fx->path, "demo", "node2", KEY, sizeof(KEY), err, sizeof(err));
	assert_non_null(a);
	append_n(a, 1, "again");
	pgw_audit_close(a);
	assert_int_equal(pgw_audit_verify_all_keyed(fx->path, KEY, sizeof(KEY), err, sizeof(err)),
	                 0);

	/* the attacker's rewrite: the same story as a plain chain, one reason changed */
	snprintf(forged, sizeof(forged), "%s/forged.log", fx->dir);
	a = pgw_audit_open(forged, "demo", "node2", err, sizeof(err));
	assert_non_null(a);
	append_n(a, 3, "operator request");
	pgw_audit_close(a);
	assert_int_equal(pgw_audit_verify_all(forged, err, sizeof(err)), 0); /* fools the plain */
	assert_int_equal(pgw_audit_verify_all_keyed(forged, KEY, sizeof(KEY), err, sizeof(err)), 1);
	assert_non_null(strstr(err, "chained without the key of fencing.audit_key_file"));
}

/* The key file: root's, mode 0600 or stricter, 32 to 64 bytes. */
static void test_key_file(void **state)
{
	struct fixture *fx = *state;
	char path[160], err[512] = "";
	unsigned char key[PGW_AUDIT_KEY_MAX + 1];
	size_t len = 99;

	snprintf(path, sizeof(path), "%s/audit.key", fx->dir);
	spit(path, (const char *)KEY, sizeof(KEY));
	assert_int_equal(chmod(path, 0600), 0);
	if (geteuid() == 0) {
		assert_int_equal(pgw_audit_read_key(path, key, &len, err, sizeof(err)), 0);
		assert_int_equal(len, 32);
		assert_memory_equal(key, KEY, 32);
		assert_int_equal(chmod(path, 0640), 0);
	}
	/* not root's (a normal user's run), or readable by the group */
	assert_int_equal(pgw_audit_read_key(path, key, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "owned by root and readable by nobody else"));
	assert_int_equal(len, 0);
	assert_int_equal(chmod(path, 0600), 0);
	spit(path, "short", 5);
	if (geteuid() == 0) {
		assert_int_equal(pgw_audit_read_key(path, key, &len, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "expected 32 to 64 bytes, got 5"));
	}
	assert_int_equal(pgw_audit_read_key("/nonexistent/k", key, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/k"));
}

static void test_many_records(void **state)
{
	struct fixture *fx = *state;
	char err[512];
	struct timespec t0, t1;
	double ms;

	write_chain(fx->path, 500, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pgw_audit_verify(fx->path, NULL, err, sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	print_message("verify of 500 records: %.1f ms\n", ms);
	assert_true(ms < 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hash_definition, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flipped_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deleted_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_swapped_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prev_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_last_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_last_record_refuses_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation_keeps_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_escaping_and_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tail_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyed_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_records, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
