/*
 * testutil.h - small helpers shared by the unit tests (header-only; the Makefile
 * passes -Itests/unit).
 */
#ifndef PGW_TESTUTIL_H
#define PGW_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>

/* rm -rf a test's scratch directory (made with mkdtemp under /tmp); complain, not fail. */
static inline void testutil_remove_dir(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

#endif
