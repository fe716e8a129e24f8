/*
 * pgparam.c - the parameter rules shared by the config file, the dynamic
 * configuration and the postgresql.conf renderer; see pgparam.h.
 */
#include "pgparam.h"

#include <string.h>
#include <strings.h>

bool pgw_param_name_ok(const char *name, size_t len)
{
	static const char first[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
	static const char rest[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789.";

	if (!name || len == 0 || len >= 64 || !strchr(first, name[0]) || name[0] == '\0')
		return false;
	for (size_t i = 1; i < len; i++)
		if (name[i] == '\0' || !strchr(rest, name[i]))
			return false;
	return true;
}

bool pgw_param_value_ok(const char *value, size_t len)
{
	return value && memchr(value, '\n', len) == NULL && memchr(value, '\r', len) == NULL &&
	       memchr(value, '\0', len) == NULL;
}

bool pgw_param_local_only(const char *name)
{
	/* commands run by the server, code it loads, files it reads its settings from */
	static const char *const names[] = {
	    "archive_command",
	    "archive_library",
	    "restore_command",
	    "archive_cleanup_command",
	    "recovery_end_command",
	    "ssl_passphrase_command",
	    "shared_preload_libraries",
	    "session_preload_libraries",
	    "local_preload_libraries",
	    "dynamic_library_path",
	    "jit_provider",
	    "include",
	    "include_if_exists",
	    "include_dir",
	    "config_file",
	    "hba_file",
	    "ident_file",
	    "data_directory",
	    "external_pid_file",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

const char *pgw_param_dcs_refusal(const char *name, size_t nlen, const char *value, size_t vlen)
{
	if (!pgw_param_name_ok(name, nlen))
		return "not a parameter name";
	if (pgw_param_local_only(name))
		return "runs a command or loads code: it is taken from the local configuration "
		       "file only (postgresql.parameters), never from etcd";
	if (!pgw_param_value_ok(value, vlen))
		return "the value contains a line break or a NUL byte";
	return NULL;
}
