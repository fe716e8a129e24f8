/*
 * fuzz_json.c - fuzz target for the JSON that reaches a node from etcd or a REST
 * client: the dynamic configuration (daemon/dcs.c, with the parameter rules of
 * pgparam.c), the leader record and its round trip, the failover key, the sync key
 * and its round trip, a member key (daemon/cluster.c), a request body taken whole
 * (pgw_json_parse_whole) and merged into a configuration as PATCH /config does (confedit.c), then
 * validated.
 *
 * Input: the bytes up to the first 0xff are one JSON text, the rest a second (the
 * patch).  Checked: no crash, leak or UB; a record that parses renders and parses again
 * to the same member; what the dcs parse accepts postgresql.conf can hold.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cluster_json.h"
#include "confedit.h"
#include "config.h"
#include "dcs.h"
#include "pgparam.h"

static char *text_of(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s) {
		memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}

static void fuzz_one_text(const char *json, size_t len)
{
	struct pgw_leader_record lr, again;
	struct pgw_failover fo;
	struct pgw_member m;
	struct pgw_sync_key sk;
	struct pgw_dcs base, out;
	char err[256];

	pgw_dcs_defaults(&base);
	if (pgw_dcs_from_json(json, &base, 5, &out, err, sizeof(err))) {
		for (size_t i = 0; i < out.pg_parameters.n; i++) {
			const struct pgw_kv *kv = &out.pg_parameters.items[i];

			if (pgw_param_dcs_refusal(kv->name, strlen(kv->name), kv->value,
			                          strlen(kv->value)))
				abort(); /* accepted something a node would refuse */
		}
		pgw_dcs_free(&out);
	}
	if (pgw_leader_record_parse(json, &lr)) {
		char *back = pgw_leader_record_json(&lr);

		if (back && (!pgw_leader_record_parse(back, &again) ||
		             strcmp(again.member, lr.member) != 0))
			abort();
		free(back);
	}
	(void)pgw_failover_parse(json, &fo);
	(void)pgw_member_parse(json, len, &m);
	if (pgw_sync_key_parse(json, &sk)) {
		char *back =
		    pgw_sync_key_json(sk.leader, (const char(*)[PGW_NAME_MAX])sk.members, sk.n);
		struct pgw_sync_key sk2;

		if (back && (!pgw_sync_key_parse(back, &sk2) || sk2.n != sk.n ||
		             strcmp(sk2.leader, sk.leader) != 0))
			abort(); /* a key that parses must render and parse to the same */
		free(back);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = memchr(data, 0xff, size);
	size_t n1 = sep ? (size_t)(sep - data) : size;
	char *a = text_of(data, n1), *b = sep ? text_of(sep + 1, size - n1 - 1) : NULL;
	struct json_object *target, *patch;
	char err[256];

	if (!a)
		goto out;
	fuzz_one_text(a, n1);
	target = pgw_json_parse_whole(a);
	patch = b ? pgw_json_parse_whole(b) : NULL;
	if (json_object_is_type(target, json_type_object) &&
	    json_object_is_type(patch, json_type_object)) {
		pgw_conf_merge_patch(target, patch);
		(void)pgw_conf_validate(target, 5, err, sizeof(err));
	}
	json_object_put(target);
	json_object_put(patch);
out:
	free(a);
	free(b);
	return 0;
}
