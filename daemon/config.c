/*
 * config.c - load pgwarden's YAML configuration (keys as in patroni.yml) into one
 * struct pgw_config.
 *
 * libyaml's document API builds the tree.  One table, fields[], maps every key path
 * pgwarden understands ("bootstrap.dcs.ttl") to a type and a destination (an offset
 * into struct pgw_config); a single walker visits the mappings, looks each key path up
 * in the table, converts the value and stores it.  Keys not in the table, and Patroni
 * keys pgwarden does not implement yet, only produce warnings.  Anything malformed
 * rejects the whole file with one line:
 *   FILE:LINE: KEY.PATH: expected WHAT, got "VALUE"
 * Then the defaults are filled in and the cross-field rules are checked.
 */
#include "config.h"
#include "cluster_types.h"
#include "pgparam.h"
#include "fence.h"
#include "lease.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_MAX_BYTES (1024 * 1024) /* a bigger file is certainly not a config */
#define KEYPATH_MAX      200           /* longer key paths are unknown keys */
#define GOT_MAX          64            /* bytes of a bad value quoted in an error */

enum ftype {
	F_SECTION,  /* a map whose keys are in the table under this path */
	F_UNIMPL,   /* a Patroni key pgwarden does not implement yet: warn */
	F_STR,      /* char *: a non-empty single-line string */
	F_NAME,     /* char *: F_STR without '/' (used in etcd key names) */
	F_PROTO,    /* char *: "http" or "https" */
	F_HOSTPORT, /* char *: "host:port" */
	F_POSINT,   /* int >= 1 */
	F_NONNEG,   /* int >= 0 */
	F_NONNEG64, /* int64_t >= 0 */
	F_SECONDS,  /* int64_t ms: seconds >= 0 with up to 3 decimals ("1", "1.5", "0.25") */
	F_BOOL,     /* bool */
	F_STRLIST,  /* struct pgw_strlist: list of F_STR */
	F_HOSTLIST, /* struct pgw_strlist: list of host:port or "h:p,h:p" */
	F_PARAMS,   /* struct pgw_kvlist: map of PostgreSQL parameters */
	F_PEERS,    /* struct pgw_fence_peers: map of member -> {address, lanplus, ...} */
	F_INITDB,   /* struct pgw_strlist: initdb options -> "--flag", "--key=value" */
	F_CHOICE,   /* int: index of the value in the row's "a|b|c" choices */
	F_BBOPTS,   /* struct pgw_strlist: pg_basebackup options -> "--flag", "--key=value" */
	F_CMD,      /* struct pgw_strlist: a command line split into words (no shell) */
	F_METHODS,  /* struct pgw_methods: "<prefix>.*" rows, any other map under prefix */
	F_USERS,    /* struct pgw_users: bootstrap.users */
	F_BINNAME,  /* struct pgw_kvlist: postgresql.bin_name, program -> file name */
};

#define FL_SECRET   1u /* never quote the value in messages */
#define FL_EMPTY_OK 2u /* clean_scalar: '' is a value */

struct field {
	const char *path;
	enum ftype type;
	size_t off;
	unsigned flags;
	const char *conflicts; /* another path that sets the same thing */
	const char *choices;   /* F_CHOICE: "a|b|c", stored as the index */
};

/* Table rows: {FIELD(path, type, member)} and so on. */
#define OFF(m)     offsetof(struct pgw_config, m)
#define SECTION(p) p, F_SECTION, 0, 0, NULL, NULL
#define UNIMPL(p)  p, F_UNIMPL, 0, 0, NULL, NULL
/* a dynamic setting outside bootstrap.dcs: ignored, with where it belongs */
#define MISPLACED(p)          p, F_UNIMPL, 0, 0, NULL, "bootstrap.dcs." p
#define FIELD(p, t, m)        p, t, OFF(m), 0, NULL, NULL
#define SECRET(p, m)          p, F_STR, OFF(m), FL_SECRET, NULL, NULL
#define ALIAS(p, t, m, other) p, t, OFF(m), 0, other, NULL
#define CHOICE(p, m, choices) p, F_CHOICE, OFF(m), 0, NULL, choices

#define PRIV_CHOICES "ADMINISTRATOR|OPERATOR|USER" /* enum pgw_ipmi_priv order */

static const struct field fields[] = {
    {FIELD("scope", F_NAME, scope)},
    {FIELD("namespace", F_STR, namespace)},
    {FIELD("name", F_NAME, name)},
    {FIELD("user", F_STR, user)},

    {SECTION("restapi")},
    {FIELD("restapi.listen", F_HOSTPORT, restapi.listen)},
    {FIELD("restapi.connect_address", F_HOSTPORT, restapi.connect_address)},

    {SECTION("etcd3")},
    {ALIAS("etcd3.hosts", F_HOSTLIST, etcd3.hosts, "etcd3.host")},
    {ALIAS("etcd3.host", F_HOSTLIST, etcd3.hosts, "etcd3.hosts")},
    {FIELD("etcd3.protocol", F_PROTO, etcd3.protocol)},
    {FIELD("etcd3.username", F_STR, etcd3.username)},
    {SECRET("etcd3.password", etcd3.password)},
    {FIELD("etcd3.cacert", F_STR, etcd3.cacert)},
    {FIELD("etcd3.cert", F_STR, etcd3.cert)},
    {FIELD("etcd3.key", F_STR, etcd3.key)},

    {SECTION("bootstrap")},
    {SECTION("bootstrap.dcs")},
    {FIELD("bootstrap.dcs.ttl", F_POSINT, dcs.ttl)},
    {FIELD("bootstrap.dcs.loop_wait", F_POSINT, dcs.loop_wait)},
    {FIELD("bootstrap.dcs.retry_timeout", F_POSINT, dcs.retry_timeout)},
    {FIELD("bootstrap.dcs.maximum_lag_on_failover", F_NONNEG64, dcs.maximum_lag_on_failover)},
    {ALIAS("bootstrap.dcs.primary_start_timeout", F_NONNEG, dcs.primary_start_timeout,
           "bootstrap.dcs.master_start_timeout")},
    {ALIAS("bootstrap.dcs.master_start_timeout", F_NONNEG, dcs.primary_start_timeout,
           "bootstrap.dcs.primary_start_timeout")},
    {FIELD("bootstrap.dcs.synchronous_mode", F_BOOL, dcs.synchronous_mode)},
    {FIELD("bootstrap.dcs.synchronous_mode_strict", F_BOOL, dcs.synchronous_mode_strict)},
    {FIELD("bootstrap.dcs.synchronous_node_count", F_POSINT, dcs.synchronous_node_count)},
    {SECTION("bootstrap.dcs.postgresql")},
    {FIELD("bootstrap.dcs.postgresql.use_pg_rewind", F_BOOL, dcs.use_pg_rewind)},
    {FIELD("bootstrap.dcs.postgresql.use_slots", F_BOOL, dcs.use_slots)},
    {FIELD("bootstrap.dcs.postgresql.parameters", F_PARAMS, dcs.pg_parameters)},
    {FIELD("bootstrap.initdb", F_INITDB, initdb_args)},

    {SECTION("postgresql")},
    {FIELD("postgresql.listen", F_HOSTPORT, postgresql.listen)},
    {FIELD("postgresql.connect_address", F_HOSTPORT, postgresql.connect_address)},
    {FIELD("postgresql.data_dir", F_STR, postgresql.data_dir)},
    {FIELD("postgresql.bin_dir", F_STR, postgresql.bin_dir)},
    {FIELD("postgresql.pgpass", F_STR, postgresql.pgpass)},
    {SECTION("postgresql.authentication")},
    {SECTION("postgresql.authentication.superuser")},
    {FIELD("postgresql.authentication.superuser.username", F_STR, postgresql.superuser.username)},
    {SECRET("postgresql.authentication.superuser.password", postgresql.superuser.password)},
    {SECTION("postgresql.authentication.replication")},
    {FIELD("postgresql.authentication.replication.username", F_STR,
           postgresql.replication.username)},
    {SECRET("postgresql.authentication.replication.password", postgresql.replication.password)},
    {FIELD("postgresql.authentication.replication.sslmode", F_STR, postgresql.replication.sslmode)},
    {FIELD("postgresql.authentication.replication.sslrootcert", F_STR,
           postgresql.replication.sslrootcert)},
    {FIELD("postgresql.authentication.replication.sslcert", F_STR, postgresql.replication.sslcert)},
    {FIELD("postgresql.authentication.replication.sslkey", F_STR, postgresql.replication.sslkey)},
    {SECTION("postgresql.authentication.rewind")},
    {FIELD("postgresql.authentication.rewind.username", F_STR, postgresql.rewind.username)},
    {SECRET("postgresql.authentication.rewind.password", postgresql.rewind.password)},
    {FIELD("postgresql.authentication.rewind.sslmode", F_STR, postgresql.rewind.sslmode)},
    {FIELD("postgresql.authentication.rewind.sslrootcert", F_STR, postgresql.rewind.sslrootcert)},
    {FIELD("postgresql.authentication.rewind.sslcert", F_STR, postgresql.rewind.sslcert)},
    {FIELD("postgresql.authentication.rewind.sslkey", F_STR, postgresql.rewind.sslkey)},
    {FIELD("postgresql.parameters", F_PARAMS, postgresql.parameters)},
    {FIELD("postgresql.pg_hba", F_STRLIST, postgresql.pg_hba)},

    {SECTION("tags")},
    {FIELD("tags.nofailover", F_BOOL, tags.nofailover)},
    {FIELD("tags.noloadbalance", F_BOOL, tags.noloadbalance)},
    {FIELD("tags.clonefrom", F_BOOL, tags.clonefrom)},
    {FIELD("tags.nosync", F_BOOL, tags.nosync)},
    {FIELD("tags.failover_priority", F_NONNEG, tags.failover_priority)},

    /* Patroni (and planned pgwarden) keys that are not implemented yet. */
    {UNIMPL("log")},
    {SECTION("ctl")},
    {FIELD("ctl.insecure", F_BOOL, ctl.insecure)},
    {FIELD("ctl.cacert", F_STR, ctl.cacert)},
    {FIELD("ctl.certfile", F_STR, ctl.certfile)},
    {FIELD("ctl.keyfile", F_STR, ctl.keyfile)},
    {FIELD("ctl.api_hosts", F_STRLIST, ctl.api_hosts)},
    {UNIMPL("ctl.keyfile_password")},
    {SECTION("failover")},
    {FIELD("failover.unprotected", F_BOOL, failover_unprotected)},
    {SECTION("watchdog")},
    {CHOICE("watchdog.mode", watchdog.mode, "off|automatic|required")},
    {FIELD("watchdog.device", F_STR, watchdog.device)},
    {FIELD("watchdog.safety_margin", F_POSINT, watchdog.safety_margin)},
    {SECTION("fencing")},
    {CHOICE("fencing.mode", fencing.mode, "off|required")},
    {FIELD("fencing.agent", F_STR, fencing.agent)},
    {FIELD("fencing.timeout", F_POSINT, fencing.timeout)},
    {FIELD("fencing.retries", F_NONNEG, fencing.retries)},
    {FIELD("fencing.fast_takeover_after", F_SECONDS, fencing.fast_takeover_after_ms)},
    {FIELD("fencing.audit_log", F_STR, fencing.audit_log)},
    {FIELD("fencing.credentials_file", F_STR, fencing.credentials_file)},
    {FIELD("fencing.audit_key_file", F_STR, fencing.audit_key_file)},
    {SECTION("fencing.bmc")},
    {FIELD("fencing.bmc.address", F_STR, fencing.bmc.address)},
    {FIELD("fencing.bmc.lanplus", F_BOOL, fencing.bmc.lanplus)},
    {FIELD("fencing.bmc.cipher_suite", F_NONNEG, fencing.bmc.cipher_suite)},
    {CHOICE("fencing.bmc.privilege", fencing.bmc.privilege, PRIV_CHOICES)},
    {FIELD("fencing.peers", F_PEERS, fencing.peers)},
    {UNIMPL("citus")},
    {UNIMPL("etcd")},
    {UNIMPL("consul")},
    {UNIMPL("zookeeper")},
    {UNIMPL("exhibitor")},
    {UNIMPL("kubernetes")},
    {UNIMPL("raft")},
    {MISPLACED("synchronous_mode")},
    {MISPLACED("synchronous_mode_strict")},
    {MISPLACED("synchronous_node_count")},
    {UNIMPL("failsafe_mode")},
    {UNIMPL("standby_cluster")},
    {SECTION("restapi.authentication")},
    {FIELD("restapi.authentication.username", F_STR, restapi.auth.username)},
    {SECRET("restapi.authentication.password", restapi.auth.password)},
    {FIELD("restapi.protect_reads", F_BOOL, restapi.protect_reads)},
    {FIELD("restapi.certfile", F_STR, restapi.tls.certfile)},
    {FIELD("restapi.keyfile", F_STR, restapi.tls.keyfile)},
    {SECRET("restapi.keyfile_password", restapi.tls.keyfile_password)},
    {FIELD("restapi.cafile", F_STR, restapi.tls.cafile)},
    {CHOICE("restapi.verify_client", restapi.tls.verify_client, "none|optional|required")},
    {UNIMPL("restapi.ciphers")},
    {UNIMPL("restapi.allowlist")},
    {UNIMPL("restapi.allowlist_include_members")},
    {UNIMPL("restapi.http_extra_headers")},
    {UNIMPL("restapi.https_extra_headers")},
    {UNIMPL("restapi.request_queue_size")},
    {UNIMPL("etcd3.url")},
    {UNIMPL("etcd3.proxy")},
    {UNIMPL("etcd3.srv")},
    {UNIMPL("etcd3.srv_suffix")},
    {FIELD("bootstrap.method", F_NAME, bootstrap.method)},
    {FIELD("bootstrap.*", F_METHODS, bootstrap.methods)},
    {ALIAS("bootstrap.post_bootstrap", F_CMD, bootstrap.post_bootstrap, "bootstrap.post_init")},
    {ALIAS("bootstrap.post_init", F_CMD, bootstrap.post_bootstrap, "bootstrap.post_bootstrap")},
    {FIELD("bootstrap.users", F_USERS, bootstrap.users)},
    {FIELD("bootstrap.pg_hba", F_STRLIST, bootstrap.pg_hba)},
    {UNIMPL("bootstrap.dcs.failsafe_mode")},
    {UNIMPL("bootstrap.dcs.standby_cluster")},
    {UNIMPL("bootstrap.dcs.slots")},
    {UNIMPL("bootstrap.dcs.ignore_slots")},
    {UNIMPL("bootstrap.dcs.check_timeline")},
    {UNIMPL("bootstrap.dcs.max_timelines_history")},
    {UNIMPL("bootstrap.dcs.member_slots_ttl")},
    {UNIMPL("bootstrap.dcs.postgresql.pg_hba")},
    {UNIMPL("bootstrap.dcs.postgresql.pg_ident")},
    {UNIMPL("bootstrap.dcs.postgresql.recovery_conf")},
    {UNIMPL("postgresql.callbacks")},
    {FIELD("postgresql.create_replica_methods", F_STRLIST, postgresql.create_replica_methods)},
    {FIELD("postgresql.*", F_METHODS, postgresql.replica_methods)},
    {FIELD("postgresql.basebackup", F_BBOPTS, postgresql.basebackup_args)},
    {FIELD("postgresql.recovery_conf", F_PARAMS, postgresql.recovery_conf)},
    {FIELD("postgresql.custom_conf", F_STR, postgresql.custom_conf)},
    {UNIMPL("postgresql.config_dir")},
    {FIELD("postgresql.pg_ctl_timeout", F_POSINT, postgresql.pg_ctl_timeout)},
    {UNIMPL("postgresql.use_unix_socket")},
    {UNIMPL("postgresql.use_unix_socket_repl")},
    {FIELD("postgresql.use_pg_rewind", F_BOOL, postgresql.use_pg_rewind)},
    {FIELD("postgresql.remove_data_directory_on_rewind_failure", F_BOOL,
           postgresql.remove_on_rewind_failure)},
    {FIELD("postgresql.remove_data_directory_on_diverged_timelines", F_BOOL,
           postgresql.remove_on_diverged_timelines)},
    {FIELD("postgresql.pg_ident", F_STRLIST, postgresql.pg_ident)},
    {FIELD("postgresql.bin_name", F_BINNAME, postgresql.bin_name)},
    {UNIMPL("postgresql.proxy_address")},
    {UNIMPL("postgresql.pre_promote")},
    {UNIMPL("postgresql.before_stop")},
    {UNIMPL("tags.replicatefrom")},
    {UNIMPL("tags.nostream")},
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* Options of a tool that pgwarden sets itself (as Patroni refuses them too). */
struct opt_tool {
	const char *name;
	const char *example;          /* "an initdb option name such as data-checksums" */
	const char *const *forbidden; /* NULL-terminated */
};

static const char *const initdb_forbidden[] = {"pgdata",    "nosync",  "pwfile",
                                               "sync-only", "version", NULL};
static const char *const basebackup_forbidden[] = {"pgdata",      "format",
                                                   "wal-method",  "xlog-method",
                                                   "gzip",        "compress",
                                                   "version",     "dbname",
                                                   "host",        "port",
                                                   "username",    "password",
                                                   "no-password", "write-recovery-conf",
                                                   "target",      NULL};
static const struct opt_tool initdb_tool = {
    "initdb", "an initdb option name such as data-checksums", initdb_forbidden};
static const struct opt_tool basebackup_tool = {
    "pg_basebackup", "a pg_basebackup option name such as max-rate", basebackup_forbidden};

struct ctx {
	const char *name; /* file name for messages */
	const char *text; /* the input, for reader errors */
	size_t len;
	yaml_document_t *doc;
	struct pgw_config *cfg;
	char *err;
	size_t errlen;
	bool failed;
	bool seen[NFIELDS];
	size_t seen_line[NFIELDS]; /* where the key of a seen row was (its last one) */
	size_t key_line;           /* the line of the key being converted (a method's name) */
};

/* ---------------------------------------------------------------- messages */

static void bufappend(char *buf, size_t size, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void bufappend(char *buf, size_t size, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (!buf || *off >= size)
		return;
	va_start(ap, fmt);
	r = vsnprintf(buf + *off, size - *off, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	*off = (size_t)r >= size - *off ? size : *off + (size_t)r;
}

static size_t line_of(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

/* The first error wins; later ones (there are none: we stop) are dropped. */
static int fail(struct ctx *c, const yaml_node_t *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct ctx *c, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
	size_t off = 0;
	va_list ap;

	if (c->failed)
		return -1;
	c->failed = true;
	if (!c->err || c->errlen == 0)
		return -1;
	c->err[0] = '\0';
	if (n)
		bufappend(c->err, c->errlen, &off, "%s:%zu: ", c->name, line_of(n));
	else
		bufappend(c->err, c->errlen, &off, "%s: ", c->name);
	if (path && *path)
		bufappend(c->err, c->errlen, &off, "%s: ", path);
	if (off < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + off, c->errlen - off, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int oom(struct ctx *c)
{
	return fail(c, NULL, NULL, "out of memory");
}

/* Quote s for a message: "..." with C escapes, at most GOT_MAX input bytes. */
static void quote(char *out, size_t outlen, const char *s, size_t n)
{
	size_t off = 0, i;

	bufappend(out, outlen, &off, "\"");
	for (i = 0; i < n && i < GOT_MAX; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			bufappend(out, outlen, &off, "\\%c", ch);
		else if (ch == '\n')
			bufappend(out, outlen, &off, "\\n");
		else if (ch == '\r')
			bufappend(out, outlen, &off, "\\r");
		else if (ch == '\t')
			bufappend(out, outlen, &off, "\\t");
		else if (ch < 0x20 || ch == 0x7f)
			bufappend(out, outlen, &off, "\\x%02x", ch);
		else
			bufappend(out, outlen, &off, "%c", ch);
	}
	if (i < n) {
		/* do not end in the middle of a UTF-8 sequence */
		while (off > 1 && off < outlen && ((unsigned char)out[off - 1] & 0xc0) == 0x80)
			off--;
		if (off > 1 && off < outlen && ((unsigned char)out[off - 1] & 0xc0) == 0xc0)
			off--;
		if (off < outlen)
			out[off] = '\0';
		bufappend(out, outlen, &off, "...");
	}
	bufappend(out, outlen, &off, "\"");
}

/* What a node is, for "got ...". */
static void describe(char *out, size_t outlen, const yaml_node_t *n, bool secret)
{
	if (n->type == YAML_SCALAR_NODE) {
		if (secret)
			snprintf(out, outlen, "\"***\"");
		else
			quote(out, outlen, (const char *)n->data.scalar.value,
			      n->data.scalar.length);
	} else if (n->type == YAML_SEQUENCE_NODE) {
		snprintf(out, outlen, "a list");
	} else if (n->type == YAML_MAPPING_NODE) {
		snprintf(out, outlen, "a map");
	} else {
		snprintf(out, outlen, "nothing");
	}
}

static int expected(struct ctx *c, const yaml_node_t *n, const char *path, const char *what,
                    bool secret)
{
	char got[4 * GOT_MAX + 16];

	describe(got, sizeof(got), n, secret);
	return fail(c, n, path, "expected %s, got %s", what, got);
}

static int expected_text(struct ctx *c, const yaml_node_t *n, const char *path, const char *what,
                         const char *s, size_t len)
{
	char got[4 * GOT_MAX + 16];

	quote(got, sizeof(got), s, len);
	return fail(c, n, path, "expected %s, got %s", what, got);
}

/* ---------------------------------------------------------------- lists */

static int strlist_push(struct ctx *c, struct pgw_strlist *l, const char *s, size_t len)
{
	char **items;
	char *copy;

	copy = strndup(s, len);
	if (!copy)
		return oom(c);
	items = realloc(l->items, (l->n + 1) * sizeof(*items));
	if (!items) {
		free(copy);
		return oom(c);
	}
	items[l->n++] = copy;
	l->items = items;
	return 0;
}

static void strlist_free(struct pgw_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static void kvlist_free(struct pgw_kvlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].name);
		free(l->items[i].value);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static int warn(struct ctx *c, const yaml_node_t *n, const char *path, const char *what)
{
	char line[KEYPATH_MAX + 256];
	int r;

	r = snprintf(line, sizeof(line), "%s:%zu: %s: %s", c->name, line_of(n), path, what);
	if (r < 0)
		return oom(c);
	return strlist_push(c, &c->cfg->warnings, line, strlen(line));
}

/* ---------------------------------------------------------------- scalars */

static yaml_node_t *node_at(struct ctx *c, int index)
{
	return yaml_document_get_node(c->doc, index);
}

static bool is_null(const yaml_node_t *n)
{
	const char *s;

	if (!n || n->type == YAML_NO_NODE)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = (const char *)n->data.scalar.value;
	return n->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* A scalar that can be stored as a C string: not null, not empty (unless FL_EMPTY_OK),
 * one line, no NUL. */
static int clean_scalar(struct ctx *c, const yaml_node_t *n, const char *path, const char *what,
                        unsigned flags, const char **s, size_t *len)
{
	bool secret = (flags & FL_SECRET) != 0;

	if (!n || n->type != YAML_SCALAR_NODE || is_null(n) ||
	    (n->data.scalar.length == 0 && !(flags & FL_EMPTY_OK)))
		return n ? expected(c, n, path, what, secret)
		         : fail(c, NULL, path, "missing value");
	*s = (const char *)n->data.scalar.value;
	*len = n->data.scalar.length;
	if (memchr(*s, '\0', *len) || memchr(*s, '\n', *len) || memchr(*s, '\r', *len)) {
		char got[4 * GOT_MAX + 16];

		describe(got, sizeof(got), n, secret);
		return fail(c, n, path, "expected %s without line breaks or NUL bytes, got %s",
		            what, got);
	}
	return 0;
}

/* Decimal digits only (no sign, no leading zero, no YAML 1.1 octal/hex/underscores). */
static bool parse_uint(const char *s, size_t len, int64_t max, int64_t *out)
{
	int64_t v = 0;

	if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (max - (s[i] - '0')) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Seconds, "N" or "N.ddd" (at most 3 decimals, at most a day), as milliseconds. */
static bool parse_seconds_ms(const char *s, size_t len, int64_t *ms)
{
	const char *dot = memchr(s, '.', len);
	size_t ilen = dot ? (size_t)(dot - s) : len, flen = dot ? len - ilen - 1 : 0;
	int64_t whole, frac = 0;

	if (!parse_uint(s, ilen, 86400, &whole) || (dot && (flen == 0 || flen > 3)))
		return false;
	for (size_t i = 0; i < 3; i++) {
		char d = i < flen ? dot[1 + i] : '0';

		if (d < '0' || d > '9')
			return false;
		frac = frac * 10 + (d - '0');
	}
	*ms = whole * 1000 + frac;
	return true;
}

static bool parse_bool(const char *s, size_t len, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};

	for (size_t i = 0; i < 3; i++) {
		if (len == strlen(yes[i]) && strncasecmp(s, yes[i], len) == 0) {
			*out = true;
			return true;
		}
		if (len == strlen(no[i]) && strncasecmp(s, no[i], len) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static bool host_char_ok(unsigned char ch)
{
	return ch > 0x20 && ch != 0x7f && ch != '[' && ch != ']' && ch != '/' && ch != '@';
}

bool pgw_split_hostport(const char *hostport, char **host, int *port)
{
	const char *h, *colon, *p;
	size_t hlen;
	int64_t v;

	if (host)
		*host = NULL;
	if (!hostport)
		return false;
	if (hostport[0] == '[') {
		const char *close = strchr(hostport, ']');

		if (!close || close[1] != ':')
			return false;
		h = hostport + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
		for (size_t i = 0; i < hlen; i++)
			if (!host_char_ok((unsigned char)h[i]))
				return false;
	} else {
		colon = strrchr(hostport, ':');
		if (!colon)
			return false;
		h = hostport;
		hlen = (size_t)(colon - h);
		for (size_t i = 0; i < hlen; i++)
			if (!host_char_ok((unsigned char)h[i]) || h[i] == ':')
				return false;
	}
	if (hlen == 0)
		return false;
	p = colon + 1;
	if (!parse_uint(p, strlen(p), 65535, &v) || v < 1)
		return false;
	if (host) {
		*host = strndup(h, hlen);
		if (!*host)
			return false;
	}
	if (port)
		*port = (int)v;
	return true;
}

/* ---------------------------------------------------------------- maps */

struct keyref {
	const char *s;
	size_t len;
	size_t pos;
	const yaml_node_t *node;
};

static int keycmp_base(const struct keyref *a, const struct keyref *b, bool ci)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int r = ci ? strncasecmp(a->s, b->s, n) : memcmp(a->s, b->s, n);

	if (r == 0 && a->len != b->len)
		r = a->len < b->len ? -1 : 1;
	if (r == 0)
		r = a->pos < b->pos ? -1 : (a->pos > b->pos);
	return r;
}

static int keycmp(const void *a, const void *b)
{
	return keycmp_base(a, b, false);
}

static int keycmp_ci(const void *a, const void *b)
{
	return keycmp_base(a, b, true);
}

static bool keys_equal(const struct keyref *a, const struct keyref *b, bool ci)
{
	if (a->len != b->len)
		return false;
	return ci ? strncasecmp(a->s, b->s, a->len) == 0 : memcmp(a->s, b->s, a->len) == 0;
}

/* Every key of the map is a scalar and appears once (ci: case-insensitively). */
static int check_keys(struct ctx *c, const yaml_node_t *map, const char *path, bool ci)
{
	size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
	const struct keyref *dup = NULL, *first = NULL;
	struct keyref *keys;

	if (n == 0)
		return 0;
	keys = calloc(n, sizeof(*keys));
	if (!keys)
		return oom(c);
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *k = node_at(c, map->data.mapping.pairs.start[i].key);

		if (!k || k->type != YAML_SCALAR_NODE) {
			free(keys);
			return k ? expected(c, k, path, "a scalar key", false)
			         : fail(c, map, path, "missing key");
		}
		keys[i] = (struct keyref){(const char *)k->data.scalar.value, k->data.scalar.length,
		                          i, k};
	}
	qsort(keys, n, sizeof(*keys), ci ? keycmp_ci : keycmp);
	for (size_t i = 1; i < n; i++) {
		if (keys_equal(&keys[i - 1], &keys[i], ci) && (!dup || keys[i].pos < dup->pos)) {
			dup = &keys[i];
			first = &keys[i - 1];
			while (first > keys && keys_equal(first - 1, dup, ci))
				first--;
		}
	}
	if (dup) {
		char got[4 * GOT_MAX + 16];

		quote(got, sizeof(got), dup->s, dup->len);
		fail(c, dup->node, path, "duplicate key %s (first at line %zu)", got,
		     line_of(first->node));
	}
	free(keys);
	return dup ? -1 : 0;
}

/* prefix.key into out; false when the key cannot be a table path (too long, has '.'). */
static bool make_path(char *out, size_t outlen, const char *prefix, const yaml_node_t *k)
{
	const char *s = (const char *)k->data.scalar.value;
	size_t len = k->data.scalar.length, off = 0;
	bool ok = len > 0;

	if (*prefix)
		bufappend(out, outlen, &off, "%s.", prefix);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (off + 4 >= outlen) {
			bufappend(out, outlen, &off, "...");
			return false;
		}
		if (ch == '.')
			ok = false;
		if (ch < 0x20 || ch == 0x7f) {
			ok = false;
			ch = '?';
		}
		out[off++] = (char)ch;
	}
	out[off < outlen ? off : outlen - 1] = '\0';
	return ok;
}

static const struct field *lookup(const char *path, size_t *index)
{
	for (size_t i = 0; i < NFIELDS; i++) {
		if (strcmp(fields[i].path, path) == 0) {
			*index = i;
			return &fields[i];
		}
	}
	return NULL;
}

/* The "<prefix>.*" row, if any. */
static bool lookup_wild(const char *prefix, size_t *index)
{
	char wild[KEYPATH_MAX + 4];

	snprintf(wild, sizeof(wild), "%s.*", prefix);
	return lookup(wild, index) != NULL;
}

/* ---------------------------------------------------------------- converters */

static void *dest(struct ctx *c, const struct field *f)
{
	return (char *)c->cfg + f->off;
}

static int store_str(struct ctx *c, char **dst, const char *s, size_t len)
{
	char *copy = strndup(s, len);

	if (!copy)
		return oom(c);
	free(*dst);
	*dst = copy;
	return 0;
}

static int conv_hostport_text(struct ctx *c, const yaml_node_t *n, const char *path, const char *s,
                              size_t len, struct pgw_strlist *list, char **dst)
{
	char *tmp = strndup(s, len);
	bool ok;

	if (!tmp)
		return oom(c);
	ok = strlen(tmp) == len && pgw_split_hostport(tmp, NULL, NULL);
	free(tmp);
	if (!ok)
		return expected_text(c, n, path, "host:port", s, len);
	return list ? strlist_push(c, list, s, len) : store_str(c, dst, s, len);
}

static int conv_hostlist(struct ctx *c, const yaml_node_t *v, const char *path,
                         struct pgw_strlist *list)
{
	if (v->type == YAML_SCALAR_NODE && !is_null(v)) {
		/* Patroni's form: "host1:port1,host2:port2" */
		const char *s, *end, *p;
		size_t len;

		if (clean_scalar(c, v, path, "a list of host:port", 0, &s, &len))
			return -1;
		end = s + len;
		for (p = s; p <= end;) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *e = comma ? comma : end, *b = p;

			while (b < e && (*b == ' ' || *b == '\t'))
				b++;
			while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (conv_hostport_text(c, v, path, b, (size_t)(e - b), list, NULL))
				return -1;
			if (!comma)
				break;
			p = comma + 1;
		}
	} else if (v->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = v->data.sequence.items.start;
		     it < v->data.sequence.items.top; it++) {
			const yaml_node_t *e = node_at(c, *it);
			const char *s;
			size_t len;

			if (clean_scalar(c, e, path, "host:port", 0, &s, &len) ||
			    conv_hostport_text(c, e, path, s, len, list, NULL))
				return -1;
		}
	} else {
		return expected(c, v, path, "a list of host:port", false);
	}
	if (list->n == 0)
		return fail(c, v, path, "expected at least one host:port, got an empty list");
	return 0;
}

static int conv_strlist(struct ctx *c, const yaml_node_t *v, const char *path,
                        struct pgw_strlist *list)
{
	if (is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return expected(c, v, path, "a list of strings", false);
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		const char *s;
		size_t len;

		if (clean_scalar(c, node_at(c, *it), path, "a string", 0, &s, &len) ||
		    strlist_push(c, list, s, len))
			return -1;
	}
	return 0;
}

static int conv_params(struct ctx *c, const yaml_node_t *v, const char *path,
                       struct pgw_kvlist *list)
{
	size_t n;

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return expected(c, v, path, "a map", false);
	if (check_keys(c, v, path, true))
		return -1;
	n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
	if (n == 0)
		return 0;
	list->items = calloc(n, sizeof(*list->items));
	if (!list->items)
		return oom(c);
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *k = node_at(c, v->data.mapping.pairs.start[i].key);
		const yaml_node_t *val = node_at(c, v->data.mapping.pairs.start[i].value);
		const char *ks = (const char *)k->data.scalar.value, *vs;
		size_t klen = k->data.scalar.length, vlen;
		char ppath[KEYPATH_MAX + 8];
		struct pgw_kv *kv = &list->items[list->n];

		if (!pgw_param_name_ok(ks, klen))
			return expected_text(c, k, path, "a parameter name", ks, klen);
		snprintf(ppath, sizeof(ppath), "%s.%.*s", path, (int)klen, ks);
		if (clean_scalar(c, val, ppath, "a scalar value", FL_EMPTY_OK, &vs, &vlen))
			return -1;
		kv->name = strndup(ks, klen);
		kv->value = strndup(vs, vlen);
		list->n++; /* freed by kvlist_free even when half-filled */
		if (!kv->name || !kv->value)
			return oom(c);
	}
	return 0;
}

static int tool_option(struct ctx *c, const yaml_node_t *n, const char *path,
                       const struct opt_tool *t, const char *s, size_t len, const char *value,
                       size_t vlen, struct pgw_strlist *list)
{
	char what[96];
	char *arg;
	int r;

	if (len < 2 || s[0] == '-') /* long names only: "--D" means nothing */
		return expected_text(c, n, path, t->example, s, len);
	snprintf(what, sizeof(what), "a%s %s option name", t->name[0] == 'i' ? "n" : "", t->name);
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return expected_text(c, n, path, what, s, len);
	snprintf(what, sizeof(what), "a%s %s option pgwarden does not set itself",
	         t->name[0] == 'i' ? "n" : "", t->name);
	for (size_t i = 0; t->forbidden[i]; i++)
		if (strlen(t->forbidden[i]) == len && memcmp(t->forbidden[i], s, len) == 0)
			return expected_text(c, n, path, what, s, len);
	if (value)
		r = asprintf(&arg, "--%.*s=%.*s", (int)len, s, (int)vlen, value);
	else
		r = asprintf(&arg, "--%.*s", (int)len, s);
	if (r < 0)
		return oom(c);
	r = strlist_push(c, list, arg, (size_t)r);
	free(arg);
	return r;
}

/* The pairs of a {key: value} map as "--key=value". */
static int tool_map(struct ctx *c, const yaml_node_t *m, const char *path, const struct opt_tool *t,
                    struct pgw_strlist *list)
{
	if (check_keys(c, m, path, false))
		return -1;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = node_at(c, p->key), *val = node_at(c, p->value);
		const char *ks, *vs;
		size_t klen, vlen;

		char kwhat[64], vwhat[64];

		snprintf(kwhat, sizeof(kwhat), "a%s %s option name", t->name[0] == 'i' ? "n" : "",
		         t->name);
		snprintf(vwhat, sizeof(vwhat), "a%s %s option value", t->name[0] == 'i' ? "n" : "",
		         t->name);
		if (clean_scalar(c, k, path, kwhat, 0, &ks, &klen) ||
		    clean_scalar(c, val, path, vwhat, 0, &vs, &vlen) ||
		    tool_option(c, k, path, t, ks, klen, vs, vlen, list))
			return -1;
	}
	return 0;
}

/* One setting of fencing.peers.<member>: address, lanplus, cipher_suite, privilege. */
static int conv_peer_key(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v,
                         const char *ppath, struct pgw_fence_peer *peer)
{
	const char *key = (const char *)k->data.scalar.value, *s;
	char path[KEYPATH_MAX + 80];
	struct pgw_fence_bmc bmc;
	size_t len;
	int64_t n;

	snprintf(path, sizeof(path), "%s.%s", ppath, key);
	if (!strcmp(key, "address")) {
		if (clean_scalar(c, v, path, "host, host:port or [v6]:port", 0, &s, &len))
			return -1;
		free(peer->address);
		peer->address = strndup(s, len);
		if (!peer->address)
			return oom(c);
		if (!pgw_fence_parse_bmc(peer->address, &bmc))
			return expected(c, v, path, "host, host:port or [v6]:port", false);
		return 0;
	}
	if (!strcmp(key, "lanplus")) {
		if (clean_scalar(c, v, path, "a boolean", 0, &s, &len) ||
		    !parse_bool(s, len, &peer->lanplus))
			return c->failed ? -1 : expected(c, v, path, "a boolean", false);
		return 0;
	}
	if (!strcmp(key, "cipher_suite")) {
		if (clean_scalar(c, v, path, "a non-negative integer", 0, &s, &len) ||
		    !parse_uint(s, len, 17, &n))
			return c->failed ? -1
			                 : expected(c, v, path, "a cipher suite (0 to 17)", false);
		peer->cipher_suite = (int)n;
		return 0;
	}
	if (!strcmp(key, "privilege")) {
		static const char *const privs[] = {"administrator", "operator", "user"};

		if (clean_scalar(c, v, path, "one of " PRIV_CHOICES, 0, &s, &len))
			return -1;
		for (int i = 0; i < 3; i++)
			if (len == strlen(privs[i]) && !strncasecmp(s, privs[i], len)) {
				peer->privilege = i;
				return 0;
			}
		return expected(c, v, path, "one of " PRIV_CHOICES, false);
	}
	return fail(c, k, path, "unknown key (address, lanplus, cipher_suite, privilege)");
}

/* fencing.peers: {member: {address: host:port, lanplus: true, cipher_suite: 3}, ...} */
static int conv_peers(struct ctx *c, const yaml_node_t *v, const char *path,
                      struct pgw_fence_peers *peers)
{
	size_t n;

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return expected(c, v, path, "a map of member names to their BMC", false);
	if (check_keys(c, v, path, false))
		return -1;
	n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
	if (n == 0)
		return 0;
	peers->items = calloc(n, sizeof(*peers->items));
	if (!peers->items)
		return oom(c);
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *k = node_at(c, v->data.mapping.pairs.start[i].key);
		const yaml_node_t *m = node_at(c, v->data.mapping.pairs.start[i].value);
		struct pgw_fence_peer *peer = &peers->items[peers->n++];
		char ppath[KEYPATH_MAX + 8];

		peer->lanplus = true;
		peer->name = strndup((const char *)k->data.scalar.value, k->data.scalar.length);
		if (!peer->name)
			return oom(c);
		snprintf(ppath, sizeof(ppath), "%s.%s", path, peer->name);
		if (!m || m->type != YAML_MAPPING_NODE)
			return expected(c, m ? m : k, ppath,
			                "a map (address, lanplus, cipher_suite)", false);
		if (check_keys(c, m, ppath, false))
			return -1;
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
		     p < m->data.mapping.pairs.top; p++)
			if (conv_peer_key(c, node_at(c, p->key), node_at(c, p->value), ppath, peer))
				return -1;
		if (!peer->address)
			return fail(c, m, ppath,
			            "address: required (where this member's BMC answers)");
	}
	return 0;
}

const struct pgw_fence_peer *pgw_fence_peer(const struct pgw_fence_peers *p, const char *member)
{
	for (size_t i = 0; member && i < p->n; i++)
		if (strcmp(p->items[i].name, member) == 0)
			return &p->items[i];
	return NULL;
}

/* initdb or pg_basebackup options: a list of "flag" or {key: value}, or one map. */
static int conv_tool_opts(struct ctx *c, const yaml_node_t *v, const char *path,
                          const struct opt_tool *t, struct pgw_strlist *list)
{
	if (is_null(v))
		return 0;
	if (v->type == YAML_MAPPING_NODE)
		return tool_map(c, v, path, t, list);
	if (v->type != YAML_SEQUENCE_NODE) {
		char what[64];

		snprintf(what, sizeof(what), "a list of %s options", t->name);
		return expected(c, v, path, what, false);
	}
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		const yaml_node_t *e = node_at(c, *it);
		const char *s;
		size_t len;

		if (e && e->type == YAML_MAPPING_NODE &&
		    e->data.mapping.pairs.top - e->data.mapping.pairs.start == 1) {
			if (tool_map(c, e, path, t, list))
				return -1;
			continue;
		}
		if (e && e->type != YAML_SCALAR_NODE)
			return expected(c, e, path, "a flag or a single-key map", false);
		char what[64];

		snprintf(what, sizeof(what), "a%s %s option", t->name[0] == 'i' ? "n" : "",
		         t->name);
		if (clean_scalar(c, e, path, what, 0, &s, &len) ||
		    tool_option(c, e, path, t, s, len, NULL, 0, list))
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- commands, methods */

/*
 * Split a command line into words as a POSIX shell would, without expanding anything:
 * blanks separate words, '...' is literal, "..." keeps what is inside (a backslash
 * escapes " \ $ ` there), a backslash outside quotes escapes the next character.  The
 * first word is an absolute path or a program name looked up in PATH.
 */
static int split_words(struct ctx *c, const yaml_node_t *n, const char *path, const char *s,
                       size_t len, struct pgw_strlist *out)
{
	char *word = malloc(len + 1);
	size_t w = 0, i = 0;
	bool in_word = false;

	if (!word)
		return oom(c);
	while (i <= len) {
		char ch = i < len ? s[i] : '\0';

		if (ch == '\0' || ch == ' ' || ch == '\t') {
			if (in_word && strlist_push(c, out, word, w)) {
				free(word);
				return -1;
			}
			in_word = false;
			w = 0;
			i++;
			continue;
		}
		in_word = true;
		if (ch == '\\') {
			if (i + 1 >= len)
				break;
			word[w++] = s[i + 1];
			i += 2;
		} else if (ch == '\'' || ch == '"') {
			size_t j = i + 1;

			for (; j < len && s[j] != ch; j++) {
				if (ch == '"' && s[j] == '\\' && j + 1 < len &&
				    strchr("\"\\$`", s[j + 1]))
					j++;
				word[w++] = s[j];
			}
			if (j >= len)
				break;
			i = j + 1;
		} else {
			word[w++] = ch;
			i++;
		}
	}
	free(word);
	if (i <= len)
		return expected_text(c, n, path, "a command with balanced quotes", s, len);
	if (out->n == 0)
		return expected_text(c, n, path, "a command", s, len);
	if (strchr(out->items[0], '/') && out->items[0][0] != '/')
		return expected_text(
		    c, n, path, "a command that is an absolute path or a program in PATH", s, len);
	return 0;
}

static int conv_cmd(struct ctx *c, const yaml_node_t *v, const char *path, struct pgw_strlist *l)
{
	const char *s;
	size_t len;

	strlist_free(l);
	if (clean_scalar(c, v, path, "a command", 0, &s, &len))
		return -1;
	return split_words(c, v, path, s, len, l);
}

static int conv_bool_at(struct ctx *c, const yaml_node_t *v, const char *path, bool *out)
{
	const char *s;
	size_t len;

	if (clean_scalar(c, v, path, "a boolean", 0, &s, &len))
		return -1;
	if (!parse_bool(s, len, out))
		return expected(c, v, path, "a boolean", false);
	return 0;
}

static int kvlist_push(struct ctx *c, struct pgw_kvlist *l, const char *name, size_t nlen,
                       const char *value, size_t vlen)
{
	struct pgw_kv *items = realloc(l->items, (l->n + 1) * sizeof(*items));

	if (!items)
		return oom(c);
	l->items = items;
	items[l->n].name = strndup(name, nlen);
	items[l->n].value = strndup(value, vlen);
	l->n++; /* freed by kvlist_free even when half-filled */
	return items[l->n - 1].name && items[l->n - 1].value ? 0 : oom(c);
}

/* One key of a method's section; bootstrap says which kind of method it is. */
static int method_key(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v, const char *mpath,
                      bool bootstrap, struct pgw_method *m)
{
	const char *key = (const char *)k->data.scalar.value, *s;
	size_t klen = k->data.scalar.length, len;
	char path[KEYPATH_MAX + 80];

	snprintf(path, sizeof(path), "%s.%.*s", mpath, (int)klen, key);
	if (!strcmp(key, "command"))
		return conv_cmd(c, v, path, &m->argv);
	if (!strcmp(key, "no_params"))
		return conv_bool_at(c, v, path, &m->no_params);
	if (bootstrap && !strcmp(key, "keep_existing_recovery_conf"))
		return conv_bool_at(c, v, path, &m->keep_existing_recovery_conf);
	if (bootstrap && !strcmp(key, "recovery_conf")) {
		m->has_recovery_conf = true;
		return conv_params(c, v, path, &m->recovery_conf);
	}
	if (bootstrap)
		return warn(c, k, path, "unknown key, ignored");
	if (!strcmp(key, "no_master") || !strcmp(key, "no_leader"))
		return conv_bool_at(c, v, path, &m->no_leader);
	if (!strcmp(key, "keep_data"))
		return conv_bool_at(c, v, path, &m->keep_data);
	/* any other key goes to the command as --key=value, as in Patroni */
	for (size_t i = 0; i < klen; i++)
		if (!isalnum((unsigned char)key[i]) && key[i] != '_' && key[i] != '-')
			return expected_text(c, k, mpath, "an option name", key, klen);
	if (clean_scalar(c, v, path, "a scalar value", FL_EMPTY_OK, &s, &len))
		return -1;
	return kvlist_push(c, &m->params, key, klen, s, len);
}

/* bootstrap.<name> or postgresql.<name>: a custom method's section (a map). */
static int conv_method(struct ctx *c, const yaml_node_t *v, const char *path, bool bootstrap,
                       struct pgw_methods *l)
{
	const char *dot = strrchr(path, '.');
	struct pgw_method *items, *m;

	if (v->type != YAML_MAPPING_NODE)
		return warn(c, v, path, "unknown key, ignored");
	if (check_keys(c, v, path, false))
		return -1;
	items = realloc(l->items, (l->n + 1) * sizeof(*items));
	if (!items)
		return oom(c);
	l->items = items;
	m = &items[l->n++];
	*m = (struct pgw_method){.name = strdup(dot ? dot + 1 : path), .line = c->key_line};
	if (!m->name)
		return oom(c);
	for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++)
		if (method_key(c, node_at(c, p->key), node_at(c, p->value), path, bootstrap, m))
			return -1;
	return 0;
}

const struct pgw_method *pgw_method_find(const struct pgw_methods *m, const char *name)
{
	for (size_t i = 0; name && i < m->n; i++)
		if (strcmp(m->items[i].name, name) == 0)
			return &m->items[i];
	return NULL;
}

/* bootstrap.users.<name>.options: role options, as Patroni passes them to CREATE ROLE. */
static int user_options(struct ctx *c, const yaml_node_t *v, const char *path, struct pgw_user *u)
{
	static const char *const ok[] = {
	    "SUPERUSER",    "NOSUPERUSER",   "CREATEDB",  "NOCREATEDB",  "CREATEROLE",
	    "NOCREATEROLE", "INHERIT",       "NOINHERIT", "LOGIN",       "NOLOGIN",
	    "REPLICATION",  "NOREPLICATION", "BYPASSRLS", "NOBYPASSRLS", NULL};
	struct pgw_sb_lite {
		char buf[512];
		size_t off;
	} b = {.off = 0};
	bool login = false;

	if (is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return expected(c, v, path, "a list of role options", false);
	b.buf[0] = '\0';
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		const yaml_node_t *e = node_at(c, *it);
		const char *s;
		size_t len, i;

		if (clean_scalar(c, e, path, "a role option", 0, &s, &len))
			return -1;
		for (i = 0; ok[i]; i++)
			if (strlen(ok[i]) == len && !strncasecmp(ok[i], s, len))
				break;
		if (!ok[i])
			return expected_text(
			    c, e, path,
			    "a role option (createdb, createrole, login, nologin, "
			    "replication, superuser, inherit, bypassrls, or NO...)",
			    s, len);
		login = login || !strcmp(ok[i], "LOGIN") || !strcmp(ok[i], "NOLOGIN");
		bufappend(b.buf, sizeof(b.buf), &b.off, "%s%s", b.off ? " " : "", ok[i]);
	}
	if (!login)
		bufappend(b.buf, sizeof(b.buf), &b.off, "%sLOGIN", b.off ? " " : "");
	free(u->options);
	u->options = strdup(b.buf);
	return u->options ? 0 : oom(c);
}

/* bootstrap.users: {name: {password: ..., options: [createdb, ...]}} */
static int conv_users(struct ctx *c, const yaml_node_t *v, const char *path, struct pgw_users *l)
{
	size_t n;

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return expected(c, v, path, "a map of user names", false);
	if (check_keys(c, v, path, false))
		return -1;
	n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
	l->items = n ? calloc(n, sizeof(*l->items)) : NULL;
	if (n && !l->items)
		return oom(c);
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *k = node_at(c, v->data.mapping.pairs.start[i].key);
		const yaml_node_t *m = node_at(c, v->data.mapping.pairs.start[i].value);
		struct pgw_user *u = &l->items[l->n++];
		char upath[KEYPATH_MAX + 8];
		const char *s;
		size_t len;

		if (clean_scalar(c, k, path, "a user name", 0, &s, &len))
			return -1;
		u->name = strndup(s, len);
		if (!u->name)
			return oom(c);
		snprintf(upath, sizeof(upath), "%s.%s", path, u->name);
		if (!is_null(m) && m->type != YAML_MAPPING_NODE)
			return expected(c, m, upath, "a map (password, options)", false);
		if (is_null(m) || check_keys(c, m, upath, false)) {
			if (c->failed)
				return -1;
			continue;
		}
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
		     p < m->data.mapping.pairs.top; p++) {
			const yaml_node_t *pk = node_at(c, p->key), *pv = node_at(c, p->value);
			const char *key = (const char *)pk->data.scalar.value;
			char kpath[KEYPATH_MAX + 80];

			snprintf(kpath, sizeof(kpath), "%s.%s", upath, key);
			if (!strcmp(key, "password")) {
				if (clean_scalar(c, pv, kpath, "a string", FL_SECRET, &s, &len) ||
				    store_str(c, &u->password, s, len))
					return -1;
			} else if (!strcmp(key, "options")) {
				if (user_options(c, pv, kpath, u))
					return -1;
			} else if (warn(c, pk, kpath, "unknown key, ignored")) {
				return -1;
			}
		}
	}
	for (size_t i = 0; i < l->n; i++)
		if (!l->items[i].options && !(l->items[i].options = strdup("LOGIN")))
			return oom(c);
	return 0;
}

/* postgresql.bin_name: {pg_ctl: pg_ctl.wrapper, ...}, file names in bin_dir. */
static int conv_binname(struct ctx *c, const yaml_node_t *v, const char *path, struct pgw_kvlist *l)
{
	static const char *const progs[] = {"pg_ctl",        "initdb",   "pg_controldata",
	                                    "pg_basebackup", "postgres", "pg_isready",
	                                    "pg_rewind",     NULL};

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return expected(c, v, path, "a map of program names", false);
	if (check_keys(c, v, path, false))
		return -1;
	for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = node_at(c, p->key), *val = node_at(c, p->value);
		const char *ks = (const char *)k->data.scalar.value, *vs;
		size_t klen = k->data.scalar.length, vlen, i;
		char kpath[KEYPATH_MAX + 80];

		for (i = 0; progs[i]; i++)
			if (strlen(progs[i]) == klen && !memcmp(progs[i], ks, klen))
				break;
		if (!progs[i])
			return expected_text(c, k, path,
			                     "pg_ctl, initdb, pg_controldata, pg_basebackup, "
			                     "postgres, pg_isready or pg_rewind",
			                     ks, klen);
		snprintf(kpath, sizeof(kpath), "%s.%.*s", path, (int)klen, ks);
		if (clean_scalar(c, val, kpath, "a file name in bin_dir", 0, &vs, &vlen))
			return -1;
		if (memchr(vs, '/', vlen) || (vlen <= 2 && vs[0] == '.'))
			return expected(c, val, kpath, "a file name in bin_dir (no '/')", false);
		if (kvlist_push(c, l, ks, klen, vs, vlen))
			return -1;
	}
	return 0;
}

/* Convert the value v of the key at path (table entry f) into the config. */
/* One of the row's "a|b|c" words (case-insensitive); stores its index. */
static int conv_choice(struct ctx *c, const yaml_node_t *v, const struct field *f, const char *path)
{
	char what[96];
	const char *s, *p = f->choices;
	size_t len;
	int i = 0;

	snprintf(what, sizeof(what), "one of %s", f->choices);
	if (clean_scalar(c, v, path, what, 0, &s, &len))
		return -1;
	while (p) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);

		if (n == len && strncasecmp(p, s, len) == 0) {
			*(int *)dest(c, f) = i;
			return 0;
		}
		p = bar ? bar + 1 : NULL;
		i++;
	}
	return expected(c, v, path, what, false);
}

static int convert(struct ctx *c, const struct field *f, const yaml_node_t *v, const char *path)
{
	bool secret = (f->flags & FL_SECRET) != 0;
	const char *s;
	size_t len;
	int64_t n;
	bool b;

	switch (f->type) {
	case F_STR:
		if (clean_scalar(c, v, path, "a string", f->flags, &s, &len))
			return -1;
		return store_str(c, dest(c, f), s, len);
	case F_NAME:
		if (clean_scalar(c, v, path, "a name", f->flags, &s, &len))
			return -1;
		if (memchr(s, '/', len))
			return expected(c, v, path, "a name without '/'", secret);
		return store_str(c, dest(c, f), s, len);
	case F_PROTO:
		if (clean_scalar(c, v, path, "http or https", 0, &s, &len))
			return -1;
		if (len == 4 && strncasecmp(s, "http", 4) == 0)
			return store_str(c, dest(c, f), "http", 4);
		if (len == 5 && strncasecmp(s, "https", 5) == 0)
			return store_str(c, dest(c, f), "https", 5);
		return expected(c, v, path, "http or https", false);
	case F_CHOICE:
		return conv_choice(c, v, f, path);
	case F_HOSTPORT:
		if (clean_scalar(c, v, path, "host:port", 0, &s, &len))
			return -1;
		return conv_hostport_text(c, v, path, s, len, NULL, dest(c, f));
	case F_POSINT:
	case F_NONNEG: {
		const char *what =
		    f->type == F_POSINT ? "a positive integer" : "a non-negative integer";

		if (clean_scalar(c, v, path, what, 0, &s, &len))
			return -1;
		if (!parse_uint(s, len, INT32_MAX, &n) || (f->type == F_POSINT && n < 1))
			return expected(c, v, path, what, false);
		*(int *)dest(c, f) = (int)n;
		return 0;
	}
	case F_NONNEG64:
		if (clean_scalar(c, v, path, "a non-negative integer", 0, &s, &len))
			return -1;
		if (!parse_uint(s, len, INT64_MAX, &n))
			return expected(c, v, path, "a non-negative integer", false);
		*(int64_t *)dest(c, f) = n;
		return 0;
	case F_SECONDS:
		if (clean_scalar(c, v, path, "seconds (e.g. 1 or 1.5)", 0, &s, &len))
			return -1;
		if (!parse_seconds_ms(s, len, &n))
			return expected(c, v, path, "seconds (e.g. 1 or 1.5, at most 3 decimals)",
			                false);
		*(int64_t *)dest(c, f) = n;
		return 0;
	case F_BOOL:
		if (clean_scalar(c, v, path, "a boolean", 0, &s, &len))
			return -1;
		if (!parse_bool(s, len, &b))
			return expected(c, v, path, "a boolean", false);
		*(bool *)dest(c, f) = b;
		return 0;
	case F_STRLIST:
		return conv_strlist(c, v, path, dest(c, f));
	case F_HOSTLIST:
		return conv_hostlist(c, v, path, dest(c, f));
	case F_PARAMS:
		return conv_params(c, v, path, dest(c, f));
	case F_INITDB:
		return conv_tool_opts(c, v, path, &initdb_tool, dest(c, f));
	case F_BBOPTS:
		return conv_tool_opts(c, v, path, &basebackup_tool, dest(c, f));
	case F_CMD:
		return conv_cmd(c, v, path, dest(c, f));
	case F_METHODS:
		return conv_method(c, v, path, f->path[0] == 'b', dest(c, f));
	case F_USERS:
		return conv_users(c, v, path, dest(c, f));
	case F_BINNAME:
		return conv_binname(c, v, path, dest(c, f));
	case F_PEERS:
		return conv_peers(c, v, path, dest(c, f));
	case F_SECTION:
	case F_UNIMPL:
		break;
	}
	return fail(c, v, path, "internal error: bad field type");
}

/* ---------------------------------------------------------------- walker */

static int walk_map(struct ctx *c, const yaml_node_t *map, const char *prefix)
{
	if (check_keys(c, map, prefix, false))
		return -1;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
		char path[KEYPATH_MAX];
		const struct field *f = NULL;
		size_t idx = 0, other;

		if (!v)
			return fail(c, k, prefix, "missing value");
		if (make_path(path, sizeof(path), prefix, k))
			f = lookup(path, &idx);
		if (!f && v->type == YAML_MAPPING_NODE && lookup_wild(prefix, &idx))
			f = &fields[idx]; /* a custom method's section (F_METHODS) */
		if (!f) {
			if (warn(c, k, path, "unknown key, ignored"))
				return -1;
			continue;
		}
		if (f->type == F_UNIMPL && f->choices) {
			char what[KEYPATH_MAX + 96];

			snprintf(what, sizeof(what),
			         "a dynamic setting: ignored here, set %s (or pgwardenctl "
			         "edit-config)",
			         f->choices);
			if (warn(c, k, path, what))
				return -1;
			continue;
		}
		if (f->type == F_UNIMPL) {
			if (warn(c, k, path, "not implemented by pgwarden yet, ignored"))
				return -1;
			continue;
		}
		if (f->conflicts && lookup(f->conflicts, &other) && c->seen[other])
			return fail(c, k, path, "conflicts with %s", f->conflicts);
		c->seen[idx] = true;
		c->seen_line[idx] = line_of(k);
		if (f->type == F_SECTION) {
			if (is_null(v))
				continue;
			if (v->type != YAML_MAPPING_NODE)
				return expected(c, v, path, "a map", false);
			if (walk_map(c, v, path))
				return -1;
			continue;
		}
		c->key_line = line_of(k);
		if (convert(c, f, v, path))
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- defaults, rules */

static int set_default(struct ctx *c, char **dst, const char *value)
{
	if (*dst)
		return 0;
	*dst = strdup(value);
	return *dst ? 0 : oom(c);
}

static int normalise_namespace(struct ctx *c)
{
	char *ns = c->cfg->namespace, *out;
	size_t len = strlen(ns);
	bool lead = ns[0] != '/', trail = len == 0 || ns[len - 1] != '/';

	if (!lead && !trail)
		return 0;
	if (len == 0 || (len == 1 && ns[0] == '/'))
		trail = false;
	if (asprintf(&out, "%s%s%s", lead ? "/" : "", ns, trail ? "/" : "") < 0)
		return oom(c);
	free(ns);
	c->cfg->namespace = out;
	return 0;
}

/* "<dirname(data_dir)>/pgpass.<name>" */
static int default_pgpass(struct ctx *c)
{
	struct pgw_config *cfg = c->cfg;
	const char *d = cfg->postgresql.data_dir;
	size_t end = strlen(d);
	int r;

	if (cfg->postgresql.pgpass)
		return 0;
	while (end > 1 && d[end - 1] == '/') /* "a/b/" -> "a/b" */
		end--;
	while (end > 0 && d[end - 1] != '/') /* -> "a/" */
		end--;
	while (end > 1 && d[end - 1] == '/') /* -> "a" */
		end--;
	if (end == 0)
		r = asprintf(&cfg->postgresql.pgpass, "./pgpass.%s", cfg->name);
	else if (end == 1 && d[0] == '/')
		r = asprintf(&cfg->postgresql.pgpass, "/pgpass.%s", cfg->name);
	else
		r = asprintf(&cfg->postgresql.pgpass, "%.*s/pgpass.%s", (int)end, d, cfg->name);
	if (r < 0) {
		cfg->postgresql.pgpass = NULL;
		return oom(c);
	}
	return 0;
}

/* Did the file set the key at path (a row of fields[])? */
static bool was_set(const struct ctx *c, const char *path)
{
	size_t i;

	return lookup(path, &i) && c->seen[i];
}

/* fencing: defaults, and what mode required cannot do without. */
static int finish_fencing(struct ctx *c)
{
	struct pgw_config *cfg = c->cfg;
	struct pgw_fence_bmc bmc;

	if (!was_set(c, "fencing.bmc.lanplus"))
		cfg->fencing.bmc.lanplus = true;
	if (cfg->fencing.timeout == 0)
		cfg->fencing.timeout = 30;
	if (!was_set(c, "fencing.retries"))
		cfg->fencing.retries = 2;
	if (set_default(c, &cfg->fencing.agent, "ipmi") ||
	    set_default(c, &cfg->fencing.audit_log, "/var/lib/pgwarden/fencing.log") ||
	    set_default(c, &cfg->fencing.credentials_file, "/etc/pgwarden/fencing.secret"))
		return -1;
	if (strcmp(cfg->fencing.agent, "ipmi") != 0 && cfg->fencing.agent[0] != '/')
		return fail(c, NULL, "fencing.agent",
		            "expected ipmi or the absolute path of a fence agent, got \"%s\"",
		            cfg->fencing.agent);
	if (cfg->fencing.bmc.address && !pgw_fence_parse_bmc(cfg->fencing.bmc.address, &bmc))
		return fail(c, NULL, "fencing.bmc.address",
		            "expected host, host:port or [v6]:port, got \"%s\" (peers fence this "
		            "node there)",
		            cfg->fencing.bmc.address);
	if (cfg->fencing.mode == PGW_FENCE_REQUIRED && !cfg->fencing.bmc.address)
		return fail(c, NULL, "fencing.bmc.address",
		            "required with fencing.mode required (peers fence this node there)");
	if (cfg->fencing.mode == PGW_FENCE_REQUIRED && cfg->fencing.peers.n == 0)
		return fail(c, NULL, "fencing.peers",
		            "required with fencing.mode required: every member's BMC (address, "
		            "lanplus, cipher_suite), since an address read from etcd is never "
		            "trusted alone");
	if (cfg->fencing.fast_takeover_after_ms && cfg->fencing.mode != PGW_FENCE_REQUIRED)
		return fail(c, NULL, "fencing.fast_takeover_after",
		            "needs fencing.mode required (a takeover before the TTL is only safe "
		            "after a confirmed power off)");
	return 0;
}

/* restapi TLS: the key goes with a certificate, client checks need a CA. */
static int check_tls(struct ctx *c)
{
	const struct pgw_config *cfg = c->cfg;
	const struct pgw_rest_tls_config *t = &cfg->restapi.tls;

	if (t->keyfile && !t->certfile)
		return fail(c, NULL, "restapi.keyfile", "needs restapi.certfile");
	if (t->cafile && !t->certfile)
		return fail(c, NULL, "restapi.cafile", "needs restapi.certfile (TLS)");
	if (t->verify_client != PGW_VERIFY_NONE && !t->cafile)
		return fail(c, NULL, "restapi.verify_client",
		            "needs restapi.cafile to check client certificates against");
	if (cfg->ctl.keyfile && !cfg->ctl.certfile)
		return fail(c, NULL, "ctl.keyfile", "needs ctl.certfile");
	if (cfg->dcs.synchronous_node_count > PGW_SYNC_MAX)
		return fail(c, NULL, "bootstrap.dcs.synchronous_node_count", "at most 8");
	return 0;
}

static bool kvlist_has(const struct pgw_kvlist *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->items[i].name, name) == 0)
			return true;
	return false;
}

/*
 * ARCHITECTURE.md §7: parameters that run a command or load code never go to etcd.
 * A Patroni configuration often sets archive_command under bootstrap.dcs: it is moved
 * to this node's postgresql.parameters (unless set there already), with a warning.
 */
static int keep_local_only_params(struct ctx *c)
{
	struct pgw_kvlist *dcs = &c->cfg->dcs.pg_parameters,
	                  *local = &c->cfg->postgresql.parameters;
	size_t kept = 0;

	for (size_t i = 0; i < dcs->n; i++) {
		struct pgw_kv kv = dcs->items[i], *items;
		char line[KEYPATH_MAX + 256];

		if (!pgw_param_local_only(kv.name)) {
			dcs->items[kept++] = kv;
			continue;
		}
		snprintf(
		    line, sizeof(line),
		    "%s: bootstrap.dcs.postgresql.parameters.%s: runs a command or loads code, "
		    "so it is never written to etcd: %s",
		    c->name, kv.name,
		    kvlist_has(local, kv.name) ? "postgresql.parameters sets it already"
		                               : "kept in this node's postgresql.parameters");
		if (strlist_push(c, &c->cfg->warnings, line, strlen(line)))
			return -1;
		if (kvlist_has(local, kv.name)) {
			free(kv.name);
			free(kv.value);
			continue;
		}
		items = realloc(local->items, (local->n + 1) * sizeof(*items));
		if (!items)
			return oom(c);
		local->items = items;
		local->items[local->n++] = kv;
	}
	dcs->n = kept;
	return 0;
}

/* postgresql.authentication.<who>.sslmode: one of libpq's; verify-* need sslrootcert. */
static int check_sslmode(struct ctx *c, const struct pgw_auth *a, const char *who)
{
	static const char *const modes[] = {"disable", "allow",     "prefer",
	                                    "require", "verify-ca", "verify-full"};
	char path[96];

	if (!a->sslmode)
		return 0;
	snprintf(path, sizeof(path), "postgresql.authentication.%s.sslmode", who);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(a->sslmode, modes[i])) {
			if (i >= 4 && !a->sslrootcert)
				return fail(c, NULL, path,
				            "%s needs sslrootcert (the CA to verify with)",
				            a->sslmode);
			return 0;
		}
	return fail(
	    c, NULL, path,
	    "expected disable, allow, prefer, require, verify-ca or verify-full, got \"%s\"",
	    a->sslmode);
}

/* The host part of host:port is a loopback address (127/8, ::1, localhost). */
static bool loopback_listen(const char *hostport)
{
	if (strncmp(hostport, "127.", 4) == 0 || strncmp(hostport, "[::1]:", 6) == 0)
		return true;
	return strncmp(hostport, "localhost:", 10) == 0;
}

/*
 * ARCHITECTURE.md §7: the REST API's writes switch over, restart and reconfigure
 * PostgreSQL.  Beyond loopback they need a credential: basic auth, or client
 * certificates required for every request.
 */
static int check_rest_exposure(struct ctx *c)
{
	const struct pgw_config *cfg = c->cfg;

	if (loopback_listen(cfg->restapi.listen) || cfg->restapi.auth.username ||
	    cfg->restapi.tls.verify_client == PGW_VERIFY_REQUIRED)
		return 0;
	return fail(c, NULL, "restapi.authentication",
	            "required when restapi.listen (%s) is not a loopback address: without it "
	            "anyone who reaches that port can switch over, restart or reconfigure "
	            "PostgreSQL (or set restapi.verify_client: required)",
	            cfg->restapi.listen);
}

static int warn_at_line(struct ctx *c, size_t line, const char *path, const char *what)
{
	char text[KEYPATH_MAX + 256];
	int r = snprintf(text, sizeof(text), "%s:%zu: %s: %s", c->name, line, path, what);

	return r < 0 ? oom(c) : strlist_push(c, &c->cfg->warnings, text, strlen(text));
}

/*
 * bootstrap.method names a bootstrap.<name> section with a command; the names in
 * create_replica_methods are basebackup or a command (postgresql.<name>, else the name
 * itself, as Patroni does).  Sections nothing names are unknown keys.
 */
static int check_methods(struct ctx *c)
{
	struct pgw_config *cfg = c->cfg;
	const char *bm = cfg->bootstrap.method;
	struct pgw_method *m;
	char path[KEYPATH_MAX + 16];

	if (bm && strcmp(bm, "initdb") != 0) {
		m = (struct pgw_method *)pgw_method_find(&cfg->bootstrap.methods, bm);
		if (!m || m->argv.n == 0) {
			yaml_node_t at = {0}; /* only its line is used */
			size_t i = 0;

			lookup("bootstrap.method", &i);
			at.start_mark.line = c->seen_line[i] - 1;
			return fail(c, &at, "bootstrap.method",
			            "names \"%s\", but bootstrap.%s.command is not set", bm, bm);
		}
		m->used = true;
	}
	for (size_t i = 0; i < cfg->postgresql.create_replica_methods.n; i++) {
		const char *name = cfg->postgresql.create_replica_methods.items[i];

		m = (struct pgw_method *)pgw_method_find(&cfg->postgresql.replica_methods, name);
		if (m)
			m->used = true;
		if (strcmp(name, "basebackup") == 0)
			continue;
		if (!m && (strchr(name, '/') || strpbrk(name, " \t")))
			return fail(c, NULL, "postgresql.create_replica_methods",
			            "\"%s\": expected basebackup or the name of a method "
			            "(postgresql.%s.command)",
			            name, name);
		if (m && m->argv.n == 0 && strchr(name, '/'))
			return fail(c, NULL, "postgresql.create_replica_methods",
			            "\"%s\": postgresql.%s.command is not set", name, name);
	}
	for (int b = 0; b < 2; b++) {
		struct pgw_methods *l =
		    b ? &cfg->bootstrap.methods : &cfg->postgresql.replica_methods;

		for (size_t i = 0; i < l->n; i++) {
			if (l->items[i].used)
				continue;
			snprintf(path, sizeof(path), "%s.%s", b ? "bootstrap" : "postgresql",
			         l->items[i].name);
			if (warn_at_line(
			        c, l->items[i].line, path,
			        b ? "unknown key (bootstrap.method does not name it), ignored"
			          : "unknown key (not in create_replica_methods), ignored"))
				return -1;
		}
	}
	cfg->postgresql.use_pg_rewind_set = was_set(c, "postgresql.use_pg_rewind");
	if (!was_set(c, "postgresql.remove_data_directory_on_rewind_failure"))
		cfg->postgresql.remove_on_rewind_failure = true;
	if (!was_set(c, "postgresql.remove_data_directory_on_diverged_timelines"))
		cfg->postgresql.remove_on_diverged_timelines = true;
	return 0;
}

static int finish(struct ctx *c)
{
	struct pgw_config *cfg = c->cfg;
	char terr[160];

	if (!cfg->scope)
		return fail(c, NULL, "scope", "required key is missing");
	if (!cfg->name)
		return fail(c, NULL, "name", "required key is missing");
	if (!cfg->postgresql.data_dir)
		return fail(c, NULL, "postgresql.data_dir", "required key is missing");

	if (set_default(c, &cfg->namespace, "/service/") || normalise_namespace(c) ||
	    set_default(c, &cfg->user, "postgres") ||
	    set_default(c, &cfg->restapi.listen, "127.0.0.1:8008") ||
	    set_default(c, &cfg->restapi.connect_address, cfg->restapi.listen) ||
	    set_default(c, &cfg->etcd3.protocol, "http") ||
	    set_default(c, &cfg->postgresql.listen, "127.0.0.1:5432") ||
	    set_default(c, &cfg->postgresql.connect_address, cfg->postgresql.listen) ||
	    set_default(c, &cfg->postgresql.bin_dir, "/usr/lib/postgresql/15/bin") ||
	    set_default(c, &cfg->postgresql.superuser.username, "postgres") ||
	    set_default(c, &cfg->postgresql.replication.username, "replicator") ||
	    default_pgpass(c))
		return -1;
	if (cfg->etcd3.hosts.n == 0 && strlist_push(c, &cfg->etcd3.hosts, "127.0.0.1:2379", 14))
		return -1;

	if (!cfg->restapi.auth.username != !cfg->restapi.auth.password)
		return fail(c, NULL, "restapi.authentication",
		            "username and password must be given together");
	if (check_sslmode(c, &cfg->postgresql.replication, "replication") ||
	    check_sslmode(c, &cfg->postgresql.rewind, "rewind"))
		return -1;
	if (cfg->restapi.protect_reads && !cfg->restapi.auth.username)
		return fail(c, NULL, "restapi.protect_reads",
		            "needs restapi.authentication (the credentials the reads then need)");
	if (check_tls(c) || check_rest_exposure(c) || keep_local_only_params(c) ||
	    check_methods(c) || set_default(c, &cfg->watchdog.device, "/dev/watchdog"))
		return -1;
	if (cfg->watchdog.safety_margin == 0)
		cfg->watchdog.safety_margin = PGW_SAFETY_MARGIN_S;
	if (finish_fencing(c))
		return -1;
	/* the timing rule has one home: lease.c */
	if (!pgw_timing_valid(cfg->dcs.ttl, cfg->dcs.loop_wait, cfg->dcs.retry_timeout,
	                      cfg->watchdog.safety_margin, terr, sizeof(terr)))
		return fail(c, NULL, "bootstrap.dcs", "%s", terr);
	return 0;
}

/* ---------------------------------------------------------------- entry points */

void pgw_dcs_defaults(struct pgw_dcs *d)
{
	*d = (struct pgw_dcs){.ttl = 30,
	                      .loop_wait = 10,
	                      .retry_timeout = 10,
	                      .maximum_lag_on_failover = 1048576,
	                      .primary_start_timeout = 300,
	                      .use_pg_rewind = true,
	                      .use_slots = true,
	                      .synchronous_node_count = 1};
}

static size_t line_at_offset(const char *text, size_t len, size_t offset)
{
	size_t line = 1;

	for (size_t i = 0; i < offset && i < len; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

static int yaml_error(struct ctx *c, const yaml_parser_t *parser)
{
	size_t line;

	if (parser->error == YAML_MEMORY_ERROR)
		return oom(c);
	if (parser->error == YAML_READER_ERROR)
		line = line_at_offset(c->text, c->len, parser->problem_offset);
	else
		line = parser->problem_mark.line + 1;
	c->failed = true;
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s:%zu: YAML syntax error: %s", c->name, line,
		         parser->problem ? parser->problem : "unknown problem");
	return -1;
}

static int parse_into(struct ctx *c)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	const yaml_node_t *root;
	int rc = -1;

	if (!yaml_parser_initialize(&parser))
		return oom(c);
	yaml_parser_set_input_string(&parser, (const unsigned char *)c->text, c->len);
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_error(c, &parser);
		yaml_parser_delete(&parser);
		return -1;
	}
	c->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root && !is_null(root)) {
		if (root->type != YAML_MAPPING_NODE)
			expected(c, root, NULL, "a map at the top level", false);
		else
			walk_map(c, root, "");
	}
	if (!c->failed) {
		/* a second document would be silently ignored: refuse it */
		if (!yaml_parser_load(&parser, &extra)) {
			yaml_error(c, &parser);
		} else {
			const yaml_node_t *r2 = yaml_document_get_root_node(&extra);

			if (r2)
				fail(c, r2, NULL, "expected one YAML document, got a second one");
			yaml_document_delete(&extra);
		}
	}
	if (!c->failed)
		rc = finish(c);
	c->doc = NULL;
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

struct pgw_config *pgw_config_parse(const char *name, const char *text, size_t len, char *err,
                                    size_t errlen)
{
	struct ctx *c;
	struct pgw_config *cfg;

	if (err && errlen)
		err[0] = '\0';
	if (!name)
		name = "(config)";
	c = calloc(1, sizeof(*c));
	cfg = calloc(1, sizeof(*cfg));
	if (!c || !cfg || !(cfg->path = strdup(name))) {
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", name);
		free(c);
		pgw_config_free(cfg);
		return NULL;
	}
	*c = (struct ctx){.name = name,
	                  .text = text ? text : "",
	                  .len = text ? len : 0,
	                  .cfg = cfg,
	                  .err = err,
	                  .errlen = errlen};

	pgw_dcs_defaults(&cfg->dcs);
	cfg->tags.failover_priority = 1;

	if (parse_into(c)) {
		pgw_config_free(cfg);
		cfg = NULL;
	}
	free(c);
	return cfg;
}

struct pgw_config *pgw_config_load(const char *path, char *err, size_t errlen)
{
	struct pgw_config *cfg;
	size_t len = 0, cap = 8192;
	char *buf = NULL;
	int fd, saved;

	if (err && errlen)
		err[0] = '\0';
	if (!path)
		path = "(null)";
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail_errno;
	buf = malloc(cap);
	if (!buf) {
		errno = ENOMEM;
		goto fail_errno;
	}
	for (;;) {
		ssize_t r;

		if (len > CONFIG_MAX_BYTES) {
			if (err && errlen)
				snprintf(err, errlen, "%s: cannot read: larger than %d bytes", path,
				         CONFIG_MAX_BYTES);
			free(buf);
			close(fd);
			return NULL;
		}
		if (len == cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				errno = ENOMEM;
				goto fail_errno;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail_errno;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	cfg = pgw_config_parse(path, buf, len, err, errlen);
	free(buf);
	return cfg;

fail_errno:
	saved = errno;
	if (err && errlen)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(saved));
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void methods_free(struct pgw_methods *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].name);
		strlist_free(&l->items[i].argv);
		kvlist_free(&l->items[i].recovery_conf);
		kvlist_free(&l->items[i].params);
	}
	free(l->items);
}

void pgw_config_free(struct pgw_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->scope);
	free(cfg->namespace);
	free(cfg->name);
	free(cfg->user);
	free(cfg->restapi.listen);
	free(cfg->restapi.connect_address);
	free(cfg->restapi.auth.username);
	free(cfg->restapi.auth.password);
	free(cfg->restapi.tls.certfile);
	free(cfg->restapi.tls.keyfile);
	free(cfg->restapi.tls.keyfile_password);
	free(cfg->restapi.tls.cafile);
	free(cfg->ctl.cacert);
	free(cfg->ctl.certfile);
	free(cfg->ctl.keyfile);
	strlist_free(&cfg->ctl.api_hosts);
	free(cfg->watchdog.device);
	free(cfg->fencing.agent);
	free(cfg->fencing.audit_log);
	free(cfg->fencing.credentials_file);
	free(cfg->fencing.audit_key_file);
	explicit_bzero(cfg->fencing.audit_key, sizeof(cfg->fencing.audit_key));
	free(cfg->fencing.bmc.address);
	for (size_t i = 0; i < cfg->fencing.peers.n; i++) {
		free(cfg->fencing.peers.items[i].name);
		free(cfg->fencing.peers.items[i].address);
	}
	free(cfg->fencing.peers.items);
	strlist_free(&cfg->etcd3.hosts);
	free(cfg->etcd3.protocol);
	free(cfg->etcd3.username);
	free(cfg->etcd3.password);
	free(cfg->etcd3.cacert);
	free(cfg->etcd3.cert);
	free(cfg->etcd3.key);
	kvlist_free(&cfg->dcs.pg_parameters);
	strlist_free(&cfg->initdb_args);
	free(cfg->bootstrap.method);
	methods_free(&cfg->bootstrap.methods);
	strlist_free(&cfg->bootstrap.post_bootstrap);
	strlist_free(&cfg->bootstrap.pg_hba);
	for (size_t i = 0; i < cfg->bootstrap.users.n; i++) {
		free(cfg->bootstrap.users.items[i].name);
		free(cfg->bootstrap.users.items[i].password);
		free(cfg->bootstrap.users.items[i].options);
	}
	free(cfg->bootstrap.users.items);
	strlist_free(&cfg->postgresql.pg_ident);
	free(cfg->postgresql.custom_conf);
	kvlist_free(&cfg->postgresql.recovery_conf);
	kvlist_free(&cfg->postgresql.bin_name);
	strlist_free(&cfg->postgresql.create_replica_methods);
	methods_free(&cfg->postgresql.replica_methods);
	strlist_free(&cfg->postgresql.basebackup_args);
	free(cfg->postgresql.listen);
	free(cfg->postgresql.connect_address);
	free(cfg->postgresql.data_dir);
	free(cfg->postgresql.bin_dir);
	free(cfg->postgresql.pgpass);
	free(cfg->postgresql.superuser.username);
	free(cfg->postgresql.superuser.password);
	free(cfg->postgresql.replication.username);
	free(cfg->postgresql.replication.password);
	free(cfg->postgresql.rewind.username);
	for (int i = 0; i < 2; i++) {
		struct pgw_auth *a = i ? &cfg->postgresql.rewind : &cfg->postgresql.replication;

		free(a->sslmode);
		free(a->sslrootcert);
		free(a->sslcert);
		free(a->sslkey);
	}
	free(cfg->postgresql.rewind.password);
	kvlist_free(&cfg->postgresql.parameters);
	strlist_free(&cfg->postgresql.pg_hba);
	strlist_free(&cfg->warnings);
	free(cfg);
}

const char *pgw_ipmi_priv_name(int priv)
{
	static const char *const names[] = {"ADMINISTRATOR", "OPERATOR", "USER"};

	return priv >= 0 && priv < (int)(sizeof(names) / sizeof(names[0])) ? names[priv]
	                                                                   : "ADMINISTRATOR";
}
