/*
 * fuzz_config.c - fuzz target for the configuration file parser (daemon/config.c)
 * and edit-config's YAML converter (daemon/confedit.c, pgw_conf_yaml_to_json) with
 * pgw_conf_validate on what it builds.  Checked: no crash, leak or UB, and a refusal
 * always comes with a message.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "confedit.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	struct pgw_config *cfg =
	    pgw_config_parse("f.yml", (const char *)data, size, err, sizeof(err));
	struct json_object *o;

	if (cfg)
		pgw_config_free(cfg);
	else if (!err[0])
		abort();
	err[0] = '\0';
	o = pgw_conf_yaml_to_json("f.yml", (const char *)data, size, err, sizeof(err));
	if (o) {
		(void)pgw_conf_validate(o, 5, err, sizeof(err));
		json_object_put(o);
	} else if (!err[0]) {
		abort();
	}
	return 0;
}
