/*
 * test_log.c - the log line format: with stderr on journald's stream (JOURNAL_STREAM
 * names stderr's device and inode) each line carries its syslog priority, "<3>" for
 * an error, so the journal can filter by priority.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#include <json-c/json.h>

static void test_journal_priorities(void **state)
{
	char path[] = "/tmp/pgwt-log-XXXXXX", env[64], buf[512] = "";
	int fd = mkstemp(path), saved = dup(2);
	struct stat st;
	ssize_t n;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	dup2(fd, 2);
	pgw_error("disk %s is full", "/x");
	pgw_warn("slow");
	pgw_info("fine");
	/* issue 11, item 13: a member name from etcd cannot forge a line or a colour */
	pgw_warn("member %s", "n1\n<3>ERROR: forged\x1b[31m\r\x7f");
	fflush(stderr);
	dup2(saved, 2);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	assert_true(n > 0);
	assert_string_equal(buf, "<3>ERROR: disk /x is full\n<4>WARNING: slow\n<6>INFO: fine\n"
	                         "<4>WARNING: member n1\\x0a<3>ERROR: forged\\x1b[31m\\x0d\\x7f\n");
}

static void test_escape_bounds(void **state)
{
	char out[8];

	(void)state;
	pgw_log_escape(out, sizeof(out), "ab\001cdef");
	assert_string_equal(out, "ab\\x01c"); /* cut to fit, never a half escape */
	pgw_log_escape(out, sizeof(out), "abcde\002");
	assert_string_equal(out, "abcde");
	pgw_log_escape(out, 1, "abc");
	assert_string_equal(out, "");
}

/* stderr into a temporary file while fn runs; its text (malloc'd) */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/pgwt-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	static char buf[16384];
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	buf[n > 0 ? n : 0] = '\0';
	return strdup(buf);
}

static void log_three(void *arg)
{
	(void)arg;
	pgw_debug("hidden %d", 1);
	pgw_info("shown %d", 2);
	pgw_error("bad\nline");
}

/* log.level filters, log.format's placeholders and width, log.dateformat. */
static void test_format_and_level(void **state)
{
	struct pgw_log_settings s = {.level = PGW_INFO,
	                             .format = "[%(levelname)-8s] %(name)s %(levelno)d %(message)s",
	                             .dateformat = NULL};
	struct pgw_log_settings d = {
	    .level = PGW_ERROR, .format = "%(asctime)s|%(message)s", .dateformat = "%Y"};
	char *out, year[8];
	time_t now = time(NULL);
	struct tm tm;

	(void)state;
	pgw_log_apply(&s);
	out = capture_stderr(log_three, NULL);
	/* stderr counts as the journal's since test_journal_priorities (decided once per
	 * process): the priority comes first, then the line by log.format */
	assert_string_equal(out, "<6>[INFO    ] pgwarden 20 shown 2\n"
	                         "<3>[ERROR   ] pgwarden 40 bad\\x0aline\n");
	free(out);
	pgw_log_apply(&d);
	out = capture_stderr(log_three, NULL);
	localtime_r(&now, &tm);
	strftime(year, sizeof(year), "%Y", &tm);
	assert_non_null(strstr(out, "|bad\\x0aline\n"));
	assert_memory_equal(out, "<3>", 3);
	assert_memory_equal(out + 3, year, 4);
	assert_null(strstr(out, "shown"));
	free(out);
	s = (struct pgw_log_settings){.level = PGW_INFO};
	pgw_log_apply(&s);
}

static void test_format_checks(void **state)
{
	char why[300];

	(void)state;
	assert_true(pgw_log_format_ok("%(asctime)s %(levelname)s: %(message)s", why, sizeof(why)));
	assert_true(
	    pgw_log_format_ok("%(process)d %(levelno)5d %% %(message)-20s", why, sizeof(why)));
	assert_false(pgw_log_format_ok("%(asctime)s %(threadName)s %(message)s", why, sizeof(why)));
	assert_false(pgw_log_format_ok("%(message)", why, sizeof(why)));
	assert_false(pgw_log_format_ok("%(message)s %s", why, sizeof(why)));
	assert_false(pgw_log_format_ok("%(levelname)d %(message)s", why, sizeof(why)));
	assert_false(pgw_log_format_ok("no message", why, sizeof(why)));
	assert_true(pgw_log_dateformat_ok("%Y-%m-%dT%H:%M:%S%z", why, sizeof(why)));
	assert_false(pgw_log_dateformat_ok("%s", why, sizeof(why)));
	assert_false(pgw_log_dateformat_ok("%", why, sizeof(why)));
}

static size_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

/* log.dir: rotated at file_size, file_num old files kept, nothing on stderr. */
static void test_file_rotation(void **state)
{
	char dir[] = "/tmp/pgwt-logdir-XXXXXX", p[256];
	struct pgw_log_settings s = {
	    .level = PGW_INFO, .file_num = 2, .file_size = 400, .max_queue_size = 1000};

	(void)state;
	assert_non_null(mkdtemp(dir));
	s.dir = dir;
	pgw_log_apply(&s);
	pgw_log_open_file(&s);
	for (int i = 0; i < 60; i++)
		pgw_info("line %02d of the rotation test", i);
	pgw_log_close_file();
	snprintf(p, sizeof(p), "%s/pgwarden.log", dir);
	assert_true(file_size(p) > 0 && file_size(p) <= 400);
	snprintf(p, sizeof(p), "%s/pgwarden.log.1", dir);
	assert_true(file_size(p) > 300 && file_size(p) <= 400);
	snprintf(p, sizeof(p), "%s/pgwarden.log.2", dir);
	assert_true(file_size(p) > 300);
	snprintf(p, sizeof(p), "%s/pgwarden.log.3", dir);
	assert_int_equal(access(p, F_OK), -1); /* file_num 2: no third */
	for (int i = 0; i <= 3; i++) {
		if (i)
			snprintf(p, sizeof(p), "%s/pgwarden.log.%d", dir, i);
		else
			snprintf(p, sizeof(p), "%s/pgwarden.log", dir);
		unlink(p);
	}
	rmdir(dir);
}

static void log_json(void *arg)
{
	(void)arg;
	pgw_info("plain \"quoted\" \\ back");
	pgw_error("bad\nline \x01 \xff\xfe end \xc3\xa9");
}

/* log.type json: one JSON object a line, with asctime, levelname, message and
 * log.static_fields; quotes, control bytes and bytes that are not UTF-8 cannot break
 * a line or its JSON. */
static void test_json_lines(void **state)
{
	struct pgw_log_field fields[] = {{"app", "pgwarden"}, {"dc", "eu \"1\""}};
	struct pgw_log_settings s = {
	    .level = PGW_INFO, .type = PGW_LOG_JSON, .static_fields = fields, .nstatic_fields = 2};
	char *out, *line, *save = NULL;
	int n = 0;

	(void)state;
	pgw_log_apply(&s);
	out = capture_stderr(log_json, NULL);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		const char *body = strchr(line, '{'); /* after the journal's "<6>" */
		struct json_object *o = json_tokener_parse(body), *v;

		if (!o)
			fail_msg("not JSON: %s", line);
		assert_true(json_object_object_get_ex(o, "asctime", &v));
		assert_true(json_object_object_get_ex(o, "levelname", &v));
		assert_string_equal(json_object_get_string(v), n == 0 ? "INFO" : "ERROR");
		assert_true(json_object_object_get_ex(o, "message", &v));
		assert_string_equal(json_object_get_string(v),
		                    n == 0
		                        ? "plain \"quoted\" \\ back"
		                        : "bad\nline \x01 \xef\xbf\xbd\xef\xbf\xbd end \xc3\xa9");
		assert_true(json_object_object_get_ex(o, "app", &v));
		assert_string_equal(json_object_get_string(v), "pgwarden");
		assert_true(json_object_object_get_ex(o, "dc", &v));
		assert_string_equal(json_object_get_string(v), "eu \"1\"");
		json_object_put(o);
	}
	assert_int_equal(n, 2);
	free(out);
	s = (struct pgw_log_settings){.level = PGW_INFO};
	pgw_log_apply(&s);
}

/* log.mode: the file's permissions, whatever the umask. */
static void test_file_mode(void **state)
{
	char dir[] = "/tmp/pgwt-logmode-XXXXXX", p[256];
	struct pgw_log_settings s = {.level = PGW_INFO,
	                             .file_num = 1,
	                             .file_size = 4000,
	                             .max_queue_size = 10,
	                             .mode = 0604};
	struct stat st;
	mode_t old = umask(077);

	(void)state;
	assert_non_null(mkdtemp(dir));
	s.dir = dir;
	pgw_log_apply(&s);
	pgw_log_open_file(&s);
	pgw_info("one line");
	pgw_log_close_file();
	umask(old);
	snprintf(p, sizeof(p), "%s/pgwarden.log", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0604);
	unlink(p);
	rmdir(dir);
	s = (struct pgw_log_settings){.level = PGW_INFO};
	pgw_log_apply(&s);
}

static void log_to_full_disk(void *arg)
{
	const struct pgw_log_settings *s = arg;

	pgw_log_open_file(s);
	pgw_info("first");
	pgw_info("second");
	pgw_log_close_file();
}

/* A file that cannot be written (/dev/full: ENOSPC) is reported once, and the lines
 * go to stderr; nothing crashes, nothing blocks. */
static void test_file_full_disk(void **state)
{
	char dir[] = "/tmp/pgwt-logdir-XXXXXX", p[256], *out;
	struct pgw_log_settings s = {
	    .level = PGW_INFO, .file_num = 1, .file_size = 1000, .max_queue_size = 10};
	const char *hit;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/pgwarden.log", dir);
	assert_int_equal(symlink("/dev/full", p), 0);
	s.dir = dir;
	out = capture_stderr(log_to_full_disk, &s);
	hit = strstr(out, "log.dir: cannot write");
	assert_non_null(hit);
	assert_null(strstr(hit + 1, "log.dir: cannot write")); /* once */
	assert_non_null(strstr(out, "INFO: first\n"));
	assert_non_null(strstr(out, "INFO: second\n"));
	free(out);
	unlink(p);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_journal_priorities),
	    cmocka_unit_test(test_escape_bounds),
	    cmocka_unit_test(test_format_and_level),
	    cmocka_unit_test(test_format_checks),
	    cmocka_unit_test(test_file_rotation),
	    /* before test_file_full_disk: its failing file sends lines to stderr for 10 s */
	    cmocka_unit_test(test_file_mode),
	    cmocka_unit_test(test_file_full_disk),
	    cmocka_unit_test(test_json_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
