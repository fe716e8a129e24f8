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
#include <unistd.h>

#include "log.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_journal_priorities),
	    cmocka_unit_test(test_escape_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
