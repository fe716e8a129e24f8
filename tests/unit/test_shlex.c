/*
 * test_shlex.c - Patroni's command splitting (daemon/shlex.c): the answers Python's
 * shlex.split gives (POSIX mode) for the same inputs, and its two errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "shlex.h"

/* Split s and compare with the NULL-terminated expected words. */
static void check(const char *s, ...)
{
	const char *err = NULL;
	size_t argc = 0, i = 0;
	char **argv = pgw_shlex_split(s, strlen(s), &argc, &err);
	const char *want;
	va_list ap;

	if (!argv)
		fail_msg("%s: %s", s, err);
	va_start(ap, s);
	while ((want = va_arg(ap, const char *)) != NULL) {
		assert_true(i < argc);
		assert_string_equal(argv[i], want);
		i++;
	}
	va_end(ap);
	assert_int_equal(argc, i);
	assert_null(argv[argc]);
	pgw_shlex_free(argv);
}

static void check_error(const char *s, const char *msg)
{
	const char *err = NULL;
	size_t argc = 7;

	assert_null(pgw_shlex_split(s, strlen(s), &argc, &err));
	assert_int_equal(argc, 0);
	assert_non_null(err);
	assert_string_equal(err, msg);
}

static void test_words(void **state)
{
	(void)state;
	check("", NULL);
	check("  \t ", NULL);
	check("/usr/local/bin/cb.sh", "/usr/local/bin/cb.sh", NULL);
	check("  a   b\tc\n d ", "a", "b", "c", "d", NULL);
	check("python3 /opt/cb.py --x=1", "python3", "/opt/cb.py", "--x=1", NULL);
	/* '#' is not a comment, ';' and '|' are not operators: no shell */
	check("a #b c;d|e $HOME *", "a", "#b", "c;d|e", "$HOME", "*", NULL);
}

static void test_quotes(void **state)
{
	(void)state;
	check("'a b' \"c d\"", "a b", "c d", NULL);
	check("x'a b'y\"c\"z", "xa bycz", NULL);
	check("a '' \"\" b", "a", "", "", "b", NULL);
	check("'it''s'", "its", NULL);
	check("'a \\ b\"'", "a \\ b\"", NULL); /* nothing special inside '' */
	check("\"a \\\" \\\\ \\n \\$ '\"", "a \" \\ \\n \\$ '", NULL); /* only \" and \\ */
	check("a\\ b \\'c\\\" \\\\", "a b", "'c\"", "\\", NULL);
}

static void test_errors(void **state)
{
	(void)state;
	check_error("a 'b", "no closing quotation");
	check_error("a \"b\\\"", "no closing quotation");
	check_error("a b\\", "no escaped character after a backslash");
	{
		const char *err = NULL;
		size_t argc;

		assert_null(pgw_shlex_split("a\0b", 3, &argc, &err));
		assert_string_equal(err, "a NUL byte in the command");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_words),
	    cmocka_unit_test(test_quotes),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
