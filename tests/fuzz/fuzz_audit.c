/*
 * fuzz_audit.c - fuzz target for the fencing audit log verifier and tail reader
 * (fencing/audit.c): the input is a log file as an attacker or a torn write could
 * leave it.  Checked: no crash, leak or UB; a verdict is 0, a line number within the
 * file, or -1 with a message; the tail is NULL or JSON.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/pgw-fuzz-audit-XXXXXX", err[256] = "", *tail;
	size_t lines = 1;
	int fd = mkstemp(path), rc;

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	rc = pgw_audit_verify(path, NULL, err, sizeof(err));
	if (rc < -1 || (size_t)rc > lines || (rc != 0 && !err[0]))
		abort();
	tail = pgw_audit_tail_json(path, 5);
	if (tail) {
		struct json_object *o = json_tokener_parse(tail);

		if (!json_object_is_type(o, json_type_array))
			abort();
		json_object_put(o);
		free(tail);
	}
	unlink(path);
	return 0;
}
