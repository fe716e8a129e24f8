/*
 * fuzz_rest.c - fuzz target for what the REST API computes from a client's request:
 * the path and query of a health check against a published snapshot (query parsing,
 * URL decoding, lag units, tag filters: pgw_rest_status_for), and the /patroni and
 * /metrics bodies of a snapshot whose strings come from the input (names, tags and
 * reasons travel from etcd and PostgreSQL into them).
 *
 * Input: path '?' query, then 0xff, then bytes spread over the snapshot.  Checked: no
 * crash, leak or UB; a status is one of the codes the API answers; /patroni is JSON.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rest.h"

static void fill(char *dst, size_t len, const uint8_t **p, const uint8_t *end)
{
	size_t n = 0;

	while (*p < end && n + 1 < len && **p != 0xfe)
		dst[n++] = (char)*(*p)++;
	dst[n] = '\0';
	if (*p < end)
		(*p)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = memchr(data, 0xff, size), *p, *end = data + size;
	size_t n = sep ? (size_t)(sep - data) : size;
	char *req = malloc(n + 1), *q;
	struct pgw_snapshot *s = calloc(1, sizeof(*s));
	int st;

	if (!req || !s)
		goto out;
	memcpy(req, data, n);
	req[n] = '\0';
	q = strchr(req, '?');
	if (q)
		*q++ = '\0';
	p = sep ? sep + 1 : end;
	if (p < end) {
		s->role = (enum pgw_role)(*p % 4);
		s->holds_leader_key = *p & 8;
		s->paused = *p & 16;
		s->pg.running = *p & 32;
		s->pg.in_recovery = *p++ & 64;
	}
	s->leader_optime = p < end ? (int64_t)*p++ * 100000 - 1 : -1;
	s->state_str = "running";
	fill(s->scope, sizeof(s->scope), &p, end);
	fill(s->name, sizeof(s->name), &p, end);
	fill(s->last_reason, sizeof(s->last_reason), &p, end);
	for (s->ntags = 0; p < end && s->ntags < 3; s->ntags++) {
		fill(s->tags[s->ntags].key, sizeof(s->tags[s->ntags].key), &p, end);
		fill(s->tags[s->ntags].value, sizeof(s->tags[s->ntags].value), &p, end);
	}
	st = pgw_rest_status_for(s, req, q, 1000);
	if (st != 200 && st != 404 && st != 503 && st != 400)
		abort();
	(void)pgw_rest_status_for(NULL, req, q, 1000);
	{
		char *body = pgw_rest_patroni_json(s), *metrics = pgw_rest_metrics_text(s);
		struct json_object *o = body ? json_tokener_parse(body) : NULL;

		if (body && !json_object_is_type(o, json_type_object))
			abort();
		json_object_put(o);
		free(body);
		free(metrics);
	}
out:
	free(req);
	free(s);
	return 0;
}
