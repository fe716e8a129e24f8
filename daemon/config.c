/*
 * config.c - load pgwarden's YAML configuration (keys as in patroni.yml) into one
 * struct pgw_config.
 *
 * libyaml's document API builds the tree.  One table, fields[], maps every key path
 * pgwarden understands ("bootstrap.dcs.ttl") to a type and a destination (an offset
 * into struct pgw_config); a single walker visits the mappings, looks each key path up
 * in the table, converts the value and stores it.  Keys not in the table, and Patroni
 * keys pgwarden does not implement yet, only produce warnings; Patroni keys pgwarden
 * refuses by design (other DCS kinds, failsafe_mode: true) are errors that say why.
 * Anything malformed rejects the whole file with one line:
 *   FILE:LINE: KEY.PATH: expected WHAT, got "VALUE"
 * Then the defaults are filled in and the cross-field rules are checked.
 */
#include "config.h"
#include "cluster_types.h"
#include "pgparam.h"
#include "shlex.h"
#include "fence.h"
#include "lease.h"
#include "netaddr.h"
#include "tlsciphers.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <json-c/json.h>
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
	F_REFUSED,  /* a Patroni key pgwarden refuses by design: error with the row's reason */
	F_NOT_TRUE, /* bool: false is accepted, true refused with the row's reason */
	F_HEADERS,  /* struct pgw_kvlist: map of HTTP header name -> value */
	F_LEVELMAP, /* log.loggers: map of Python logger -> level (checked, no effect) */
	F_ALLOW,    /* struct pgw_strlist: list of IP, CIDR or host name */
	F_URL,      /* etcd3.url: http(s)://host:port into etcd3.hosts and etcd3.protocol */
	F_SLOTS,    /* struct pgw_slot_conf: slots (permanent slots, slots.h) */
	F_IGNSLOTS, /* struct pgw_slot_conf: ignore_slots */
	F_SLOTTTL,  /* struct pgw_slot_conf: member_slots_ttl */
	F_COMMAND,  /* struct pgw_strlist: a command line split as Patroni does, or a list */
	F_STANDBY,  /* struct pgw_standby_cluster: bootstrap.dcs.standby_cluster (standby.h) */
	F_VIPADDR,  /* struct pgw_vip_addr: "a.b.c.d/len" */
	F_IFNAME,   /* char *: a network interface name */
	F_GARP,     /* int: a count 0..PGW_VIP_ARP_MAX, or a boolean (true = default) */
	F_BBOPTS,   /* struct pgw_strlist: pg_basebackup options -> "--flag", "--key=value" */
	F_METHODS,  /* struct pgw_methods: "<prefix>.*" rows, any other map under prefix */
	F_USERS,    /* struct pgw_users: bootstrap.users */
	F_BINNAME,  /* struct pgw_kvlist: postgresql.bin_name, program -> file name */
	F_LOGKV,    /* log.static_fields: map of field name -> scalar (log settings) */
	F_MODE,     /* int: permissions 0..0777, octal with a leading 0 (0640) or decimal */
};

#define FL_SECRET   1u /* never quote the value in messages */
#define FL_EMPTY_OK 2u /* clean_scalar: '' is a value */

struct field {
	const char *path;
	enum ftype type;
	size_t off;
	unsigned flags;
	const char *conflicts; /* another path that sets the same thing */
	const char *choices;   /* F_CHOICE: "a|b|c", stored as the index; F_REFUSED,
	                          F_NOT_TRUE: the reason */
	/* F_STR: the value's own check; false with why ("expected ..." text) */
	bool (*check)(const char *value, char *why, size_t whylen);
};

/* Table rows: {FIELD(path, type, member)} and so on. */
#define OFF(m)     offsetof(struct pgw_config, m)
#define SECTION(p) p, F_SECTION, 0, 0, NULL, NULL, NULL
#define UNIMPL(p)  p, F_UNIMPL, 0, 0, NULL, NULL, NULL
/* a dynamic setting outside bootstrap.dcs: ignored, with where it belongs */
#define MISPLACED(p)          p, F_UNIMPL, 0, 0, NULL, "bootstrap.dcs." p, NULL
#define FIELD(p, t, m)        p, t, OFF(m), 0, NULL, NULL, NULL
#define SECRET(p, m)          p, F_STR, OFF(m), FL_SECRET, NULL, NULL, NULL
#define ALIAS(p, t, m, other) p, t, OFF(m), 0, other, NULL, NULL
#define CHOICE(p, m, choices) p, F_CHOICE, OFF(m), 0, NULL, choices, NULL
#define REFUSED(p, why)       p, F_REFUSED, 0, 0, NULL, why, NULL
#define NOT_TRUE(p, m, why)   p, F_NOT_TRUE, OFF(m), 0, NULL, why, NULL
#define CHECKED(p, m, fn)     p, F_STR, OFF(m), 0, NULL, NULL, fn

/* postgresql.config_dir goes to pg_ctl -o (a shell word in '...') and postgresql.conf. */
static bool config_dir_ok(const char *value, char *why, size_t whylen)
{
	if (!strchr(value, '\'') && !strchr(value, '\\'))
		return true;
	snprintf(why, whylen, "expected a directory path without ' or \\");
	return false;
}

#define LEVEL_CHOICES "DEBUG|INFO|WARNING|ERROR|CRITICAL" /* enum pgw_log_level order */
/* Why pgwarden refuses the other DCS kinds and failsafe_mode (README, pgwarden.yml(5)). */
#define WHY_DCS                                                                                    \
	"not supported by pgwarden: its lease, watchdog and fencing rules are built on etcd v3 "   \
	"leases only (use the etcd3 section)"
#define WHY_FAILSAFE                                                                               \
	"true is refused by design: it keeps a primary writing while etcd is unreachable, but "    \
	"pgwarden's leader stops writes at its lease deadline and its armed watchdog resets the "  \
	"node when renewals stop (ARCHITECTURE.md section 4); set false or remove the key"
#define PRIV_CHOICES "ADMINISTRATOR|OPERATOR|USER" /* enum pgw_ipmi_priv order */

/* tags.replicatefrom: a member name as etcd keys and member keys carry it. */
static bool member_name_ok(const char *s, char *why, size_t whylen)
{
	if (strlen(s) >= PGW_NAME_MAX || strchr(s, '/')) {
		snprintf(why, whylen, "expected a member name (no '/', at most %d bytes)",
		         PGW_NAME_MAX - 1);
		return false;
	}
	return true;
}

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
    {FIELD("etcd3.url", F_URL, etcd3.hosts)},
    {CHECKED("etcd3.srv", etcd3.srv, pgw_dns_name_ok)},
    {CHECKED("etcd3.srv_suffix", etcd3.srv_suffix, pgw_srv_suffix_ok)},
    {REFUSED("etcd3.proxy",
             "not supported by pgwarden: a proxy between the leader and etcd is one more "
             "process whose failure or buffering stops the lease renewals; connect to etcd "
             "directly")},

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
    {FIELD("bootstrap.dcs.slots", F_SLOTS, dcs.slots)},
    {FIELD("bootstrap.dcs.ignore_slots", F_IGNSLOTS, dcs.slots)},
    {FIELD("bootstrap.dcs.member_slots_ttl", F_SLOTTTL, dcs.slots)},
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
    {SECTION("postgresql.callbacks")},
    {FIELD("postgresql.callbacks.on_start", F_COMMAND, postgresql.callbacks[PGW_CB_ON_START])},
    {FIELD("postgresql.callbacks.on_stop", F_COMMAND, postgresql.callbacks[PGW_CB_ON_STOP])},
    {FIELD("postgresql.callbacks.on_restart", F_COMMAND, postgresql.callbacks[PGW_CB_ON_RESTART])},
    {FIELD("postgresql.callbacks.on_reload", F_COMMAND, postgresql.callbacks[PGW_CB_ON_RELOAD])},
    {FIELD("postgresql.callbacks.on_role_change", F_COMMAND,
           postgresql.callbacks[PGW_CB_ON_ROLE_CHANGE])},
    {FIELD("postgresql.pre_promote", F_COMMAND, postgresql.pre_promote)},
    {FIELD("postgresql.before_stop", F_COMMAND, postgresql.before_stop)},
    {FIELD("postgresql.callback_timeout", F_SECONDS, postgresql.callback_timeout_ms)},

    {SECTION("tags")},
    {FIELD("tags.nofailover", F_BOOL, tags.nofailover)},
    {FIELD("tags.noloadbalance", F_BOOL, tags.noloadbalance)},
    {FIELD("tags.clonefrom", F_BOOL, tags.clonefrom)},
    {FIELD("tags.nosync", F_BOOL, tags.nosync)},
    {FIELD("tags.failover_priority", F_NONNEG, tags.failover_priority)},
    {CHECKED("tags.replicatefrom", tags.replicatefrom, member_name_ok)},
    {FIELD("tags.nostream", F_BOOL, tags.nostream)},

    {SECTION("log")},
    {CHOICE("log.level", log.level, LEVEL_CHOICES)},
    {CHOICE("log.traceback_level", log.traceback_level, LEVEL_CHOICES)},
    {CHECKED("log.format", log.format, pgw_log_format_ok)},
    {CHECKED("log.dateformat", log.dateformat, pgw_log_dateformat_ok)},
    {FIELD("log.dir", F_STR, log.dir)},
    {FIELD("log.file_num", F_NONNEG, log.file_num)},
    {FIELD("log.file_size", F_POSINT, log.file_size)},
    {FIELD("log.max_queue_size", F_POSINT, log.max_queue_size)},
    {FIELD("log.loggers", F_LEVELMAP, log)},
    {CHOICE("log.type", log.type, "plain|json")}, /* enum pgw_log_type order */
    {FIELD("log.static_fields", F_LOGKV, log)},
    {FIELD("log.mode", F_MODE, log.mode)},
    {FIELD("log.deduplicate_heartbeat_logs", F_BOOL, log.deduplicate_heartbeat_logs)},

    /* Patroni (and planned pgwarden) keys that are not implemented yet. */
    {SECTION("ctl")},
    {FIELD("ctl.insecure", F_BOOL, ctl.insecure)},
    {FIELD("ctl.cacert", F_STR, ctl.cacert)},
    {FIELD("ctl.certfile", F_STR, ctl.certfile)},
    {FIELD("ctl.keyfile", F_STR, ctl.keyfile)},
    {FIELD("ctl.api_hosts", F_STRLIST, ctl.api_hosts)},
    {SECRET("ctl.keyfile_password", ctl.keyfile_password)},
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
    {REFUSED("citus", "not supported by pgwarden: it does not manage Citus coordinator and "
                      "worker groups")},
    {REFUSED("etcd", "not supported by pgwarden: it needs etcd v3 leases; use the etcd3 "
                     "section with the same hosts")},
    {REFUSED("consul", WHY_DCS)},
    {REFUSED("zookeeper", WHY_DCS)},
    {REFUSED("exhibitor", WHY_DCS)},
    {REFUSED("kubernetes", WHY_DCS)},
    {REFUSED("raft", WHY_DCS)},
    {SECTION("vip")},
    {FIELD("vip.address", F_VIPADDR, vip.address)},
    {FIELD("vip.interface", F_IFNAME, vip.interface)},
    {FIELD("vip.arp_notify", F_GARP, vip.arp_notify)},
    {MISPLACED("synchronous_mode")},
    {MISPLACED("synchronous_mode_strict")},
    {MISPLACED("synchronous_node_count")},
    {MISPLACED("slots")},
    {MISPLACED("ignore_slots")},
    {MISPLACED("member_slots_ttl")},
    {NOT_TRUE("failsafe_mode", failsafe_mode, WHY_FAILSAFE)},
    {MISPLACED("standby_cluster")},
    {SECTION("restapi.authentication")},
    {FIELD("restapi.authentication.username", F_STR, restapi.auth.username)},
    {SECRET("restapi.authentication.password", restapi.auth.password)},
    {FIELD("restapi.protect_reads", F_BOOL, restapi.protect_reads)},
    {FIELD("restapi.certfile", F_STR, restapi.tls.certfile)},
    {FIELD("restapi.keyfile", F_STR, restapi.tls.keyfile)},
    {SECRET("restapi.keyfile_password", restapi.tls.keyfile_password)},
    {FIELD("restapi.cafile", F_STR, restapi.tls.cafile)},
    {CHOICE("restapi.verify_client", restapi.tls.verify_client, "none|optional|required")},
    {CHECKED("restapi.ciphers", restapi.ciphers, pgw_tls_ciphers_ok)},
    {FIELD("restapi.allowlist", F_ALLOW, restapi.allowlist)},
    {FIELD("restapi.allowlist_include_members", F_BOOL, restapi.allowlist_include_members)},
    {FIELD("restapi.http_extra_headers", F_HEADERS, restapi.http_extra_headers)},
    {FIELD("restapi.https_extra_headers", F_HEADERS, restapi.https_extra_headers)},
    {FIELD("restapi.request_queue_size", F_POSINT, restapi.request_queue_size)},
    {FIELD("bootstrap.method", F_NAME, bootstrap.method)},
    {FIELD("bootstrap.*", F_METHODS, bootstrap.methods)},
    {ALIAS("bootstrap.post_bootstrap", F_COMMAND, bootstrap.post_bootstrap, "bootstrap.post_init")},
    {ALIAS("bootstrap.post_init", F_COMMAND, bootstrap.post_bootstrap, "bootstrap.post_bootstrap")},
    {FIELD("bootstrap.users", F_USERS, bootstrap.users)},
    {ALIAS("bootstrap.pg_hba", F_STRLIST, bootstrap.pg_hba, "bootstrap.dcs.postgresql.pg_hba")},
    {NOT_TRUE("bootstrap.dcs.failsafe_mode", failsafe_mode, WHY_FAILSAFE)},
    {FIELD("bootstrap.dcs.standby_cluster", F_STANDBY, dcs.standby)},
    {FIELD("bootstrap.dcs.check_timeline", F_BOOL, dcs.check_timeline)},
    {FIELD("bootstrap.dcs.max_timelines_history", F_NONNEG, dcs.max_timelines_history)},
    /* the local file's only: pg_hba from etcd would let its writers choose who logs in */
    {ALIAS("bootstrap.dcs.postgresql.pg_hba", F_STRLIST, bootstrap.pg_hba, "bootstrap.pg_hba")},
    /* as pg_hba: the local file's only (who may log in as whom; commands PostgreSQL runs) */
    {ALIAS("bootstrap.dcs.postgresql.pg_ident", F_STRLIST, postgresql.pg_ident,
           "postgresql.pg_ident")},
    {ALIAS("bootstrap.dcs.postgresql.recovery_conf", F_PARAMS, postgresql.recovery_conf,
           "postgresql.recovery_conf")},
    {FIELD("postgresql.create_replica_methods", F_STRLIST, postgresql.create_replica_methods)},
    {FIELD("postgresql.*", F_METHODS, postgresql.replica_methods)},
    {FIELD("postgresql.basebackup", F_BBOPTS, postgresql.basebackup_args)},
    {ALIAS("postgresql.recovery_conf", F_PARAMS, postgresql.recovery_conf,
           "bootstrap.dcs.postgresql.recovery_conf")},
    {FIELD("postgresql.custom_conf", F_STR, postgresql.custom_conf)},
    {CHECKED("postgresql.config_dir", postgresql.config_dir, config_dir_ok)},
    {FIELD("postgresql.pg_ctl_timeout", F_POSINT, postgresql.pg_ctl_timeout)},
    {FIELD("postgresql.use_unix_socket", F_BOOL, postgresql.use_unix_socket)},
    {FIELD("postgresql.use_unix_socket_repl", F_BOOL, postgresql.use_unix_socket_repl)},
    {FIELD("postgresql.use_pg_rewind", F_BOOL, postgresql.use_pg_rewind)},
    {FIELD("postgresql.remove_data_directory_on_rewind_failure", F_BOOL,
           postgresql.remove_on_rewind_failure)},
    {FIELD("postgresql.remove_data_directory_on_diverged_timelines", F_BOOL,
           postgresql.remove_on_diverged_timelines)},
    {ALIAS("postgresql.pg_ident", F_STRLIST, postgresql.pg_ident,
           "bootstrap.dcs.postgresql.pg_ident")},
    {FIELD("postgresql.bin_name", F_BINNAME, postgresql.bin_name)},
    {FIELD("postgresql.proxy_address", F_HOSTPORT, postgresql.proxy_address)},
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
	size_t seen_line[NFIELDS]; /* where the key was set, for rules checked at the end */
	const char *url_protocol;  /* etcd3.url's scheme: "http" or "https" */
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

static int conv_choice_into(struct ctx *c, const yaml_node_t *v, const struct field *f,
                            const char *path, int *out);

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

/*
 * A command: a string split as Patroni splits it (shlex.h), or a list of arguments
 * (pgwarden's: no quoting needed).  '' or null: none.  Each argument is one line.
 */
static int conv_command(struct ctx *c, const yaml_node_t *v, const char *path,
                        struct pgw_strlist *list)
{
	const char *s, *err;
	char **argv;
	size_t len, argc;
	int rc = 0;

	strlist_free(list);
	if (v->type == YAML_SEQUENCE_NODE) {
		if (conv_strlist(c, v, path, list))
			return -1;
	} else if (!is_null(v)) {
		if (clean_scalar(c, v, path, "a command", FL_EMPTY_OK, &s, &len))
			return -1;
		argv = pgw_shlex_split(s, len, &argc, &err);
		if (!argv)
			return fail(c, v, path, "cannot split the command as Patroni does: %s",
			            err);
		for (size_t i = 0; i < argc && rc == 0; i++)
			rc = strlist_push(c, list, argv[i], strlen(argv[i]));
		pgw_shlex_free(argv);
		if (rc)
			return -1;
	}
	if (list->n > 0 && list->items[0][0] == '\0')
		return fail(c, v, path, "expected a command, got an empty program name");
	/* relative to what?  The daemon's working directory is nobody's business */
	if (list->n > 0 && strchr(list->items[0], '/') && list->items[0][0] != '/')
		return fail(c, v, path,
		            "expected a command that is an absolute path or a program in PATH, "
		            "got \"%s\"",
		            list->items[0]);
	return 0;
}

/* One pair of a map into list->items[list->n] (then list->n++); -1 with the error. */
typedef int (*kv_conv_fn)(struct ctx *c, const yaml_node_t *k, const yaml_node_t *val,
                          const char *path, struct pgw_kvlist *list);

/* A map (keys unique case-insensitively) into list, one pair at a time by one(). */
static int conv_kvmap(struct ctx *c, const yaml_node_t *v, const char *path, const char *what,
                      struct pgw_kvlist *list, kv_conv_fn one)
{
	size_t n;

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return expected(c, v, path, what, false);
	if (check_keys(c, v, path, true))
		return -1;
	n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
	if (n == 0)
		return 0;
	list->items = calloc(n, sizeof(*list->items));
	if (!list->items)
		return oom(c);
	for (size_t i = 0; i < n; i++)
		if (one(c, node_at(c, v->data.mapping.pairs.start[i].key),
		        node_at(c, v->data.mapping.pairs.start[i].value), path, list))
			return -1;
	return 0;
}

/* One PostgreSQL parameter: name = scalar value. */
static int conv_param(struct ctx *c, const yaml_node_t *k, const yaml_node_t *val, const char *path,
                      struct pgw_kvlist *list)
{
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
	return kv->name && kv->value ? 0 : oom(c);
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
		return conv_command(c, v, path, &m->argv);
	if (!strcmp(key, "no_params"))
		return conv_bool_at(c, v, path, &m->no_params);
	if (bootstrap && !strcmp(key, "keep_existing_recovery_conf"))
		return conv_bool_at(c, v, path, &m->keep_existing_recovery_conf);
	if (bootstrap && !strcmp(key, "recovery_conf")) {
		m->has_recovery_conf = true;
		return conv_kvmap(c, v, path, "a map", &m->recovery_conf, conv_param);
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

/* One HTTP header name (an RFC 9110 token) -> value, for restapi.*_extra_headers. */
static int conv_header(struct ctx *c, const yaml_node_t *k, const yaml_node_t *val,
                       const char *path, struct pgw_kvlist *list)
{
	static const char *const framing[] = {"content-length", "transfer-encoding", "connection",
	                                      "content-type"};
	const char *ks = (const char *)k->data.scalar.value, *vs;
	size_t klen = k->data.scalar.length, vlen;
	char hpath[KEYPATH_MAX + 80];
	struct pgw_kv *kv = &list->items[list->n];

	for (size_t i = 0; i < klen; i++)
		if (!isalnum((unsigned char)ks[i]) && !strchr("!#$%&'*+-.^_`|~", ks[i]))
			return expected_text(c, k, path, "an HTTP header name (letters, digits, -)",
			                     ks, klen);
	if (klen == 0)
		return expected_text(c, k, path, "an HTTP header name", ks, klen);
	snprintf(hpath, sizeof(hpath), "%s.%.*s", path, (int)(klen > 64 ? 64 : klen), ks);
	for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++)
		if (strlen(framing[i]) == klen && strncasecmp(framing[i], ks, klen) == 0)
			return fail(c, k, hpath,
			            "pgwarden sets this header itself (it frames or "
			            "types the answer)");
	if (clean_scalar(c, val, hpath, "a header value", FL_EMPTY_OK, &vs, &vlen))
		return -1;
	for (size_t i = 0; i < vlen; i++)
		if (((unsigned char)vs[i] < 0x20 && vs[i] != '\t') || vs[i] == 0x7f)
			return expected(c, val, hpath, "a header value without control characters",
			                false);
	kv->name = strndup(ks, klen);
	kv->value = strndup(vs, vlen);
	list->n++;
	return kv->name && kv->value ? 0 : oom(c);
}

/*
 * log.mode as PyYAML reads it: 0640 is octal (YAML 1.1), so is 0o640; 420 is decimal
 * (Python's int, what Patroni passes to chmod).
 */
static bool parse_filemode(const char *s, size_t len, int64_t *out)
{
	int64_t n = 0;
	size_t i = 0;
	int base = 10;

	if (len > 1 && s[0] == '0') {
		base = 8;
		i = (s[1] == 'o' || s[1] == 'O') ? 2 : 1;
	}
	if (i >= len)
		return false;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] >= '0' + base)
			return false;
		n = n * base + (s[i] - '0');
		if (n > 0777)
			return false;
	}
	*out = n;
	return true;
}

/* log.static_fields: {name: scalar}, names that do not hide the line's own fields. */
static int conv_logfields(struct ctx *c, const yaml_node_t *v, const char *path,
                          struct pgw_log_settings *l)
{
	static const char *const own[] = {"asctime", "levelname", "message"};
	size_t n;

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return expected(c, v, path, "a map of field names to values", false);
	if (check_keys(c, v, path, true))
		return -1;
	n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
	if (n == 0)
		return 0;
	l->static_fields = calloc(n, sizeof(*l->static_fields));
	if (!l->static_fields)
		return oom(c);
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *k = node_at(c, v->data.mapping.pairs.start[i].key);
		const yaml_node_t *val = node_at(c, v->data.mapping.pairs.start[i].value);
		const char *ks = (const char *)k->data.scalar.value, *vs;
		size_t klen = k->data.scalar.length, vlen;
		char fpath[KEYPATH_MAX + 80];
		struct pgw_log_field *fld = &l->static_fields[l->nstatic_fields];

		snprintf(fpath, sizeof(fpath), "%s.%.*s", path, (int)(klen > 64 ? 64 : klen), ks);
		for (size_t j = 0; j < sizeof(own) / sizeof(own[0]); j++)
			if (strlen(own[j]) == klen && !memcmp(own[j], ks, klen))
				return fail(c, k, fpath, "every JSON line has this field already");
		if (klen == 0 || memchr(ks, '\0', klen))
			return expected_text(c, k, path, "a field name", ks, klen);
		if (clean_scalar(c, val, fpath, "a scalar value", FL_EMPTY_OK, &vs, &vlen))
			return -1;
		fld->name = strndup(ks, klen);
		fld->value = strndup(vs, vlen);
		l->nstatic_fields++;
		if (!fld->name || !fld->value)
			return oom(c);
	}
	return 0;
}

/* log.loggers: {python.module: LEVEL}: checked, then it has no effect (a warning says so). */
static int conv_levelmap(struct ctx *c, const yaml_node_t *k0, const yaml_node_t *v,
                         const char *path)
{
	static const struct field level = {NULL, F_CHOICE, 0, 0, NULL, LEVEL_CHOICES, NULL};

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return expected(c, v, path, "a map of logger names to levels", false);
	if (check_keys(c, v, path, false))
		return -1;
	for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = node_at(c, p->key);
		char lpath[KEYPATH_MAX + 80];
		int ignored;

		snprintf(lpath, sizeof(lpath), "%s.%.64s", path,
		         (const char *)k->data.scalar.value);
		if (conv_choice_into(c, node_at(c, p->value), &level, lpath, &ignored))
			return -1;
	}
	return warn(c, k0, path,
	            "levels of Python modules (Patroni's loggers); pgwarden has none, so this "
	            "has no effect");
}

/* restapi.allowlist: a list (or one string) of IP addresses, CIDRs and host names. */
static int conv_allow_item(struct ctx *c, const yaml_node_t *e, const char *path,
                           struct pgw_strlist *list)
{
	char why[160], *tmp;
	const char *s;
	size_t len;
	bool ok;

	if (clean_scalar(c, e, path, "an IP address, a CIDR or a host name", 0, &s, &len))
		return -1;
	tmp = strndup(s, len);
	if (!tmp)
		return oom(c);
	ok = pgw_allow_entry_ok(tmp, why, sizeof(why));
	free(tmp);
	if (!ok)
		return fail(c, e, path, "%s", why);
	return strlist_push(c, list, s, len);
}

static int conv_allow(struct ctx *c, const yaml_node_t *v, const char *path,
                      struct pgw_strlist *list)
{
	if (is_null(v))
		return 0;
	if (v->type == YAML_SCALAR_NODE)
		return conv_allow_item(c, v, path, list);
	if (v->type != YAML_SEQUENCE_NODE)
		return expected(c, v, path, "a list of IP addresses, CIDRs and host names", false);
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++)
		if (conv_allow_item(c, node_at(c, *it), path, list))
			return -1;
	return 0;
}

/* etcd3.url: "http://host:port" or "https://host:port" (a trailing "/" at most). */
static int conv_url(struct ctx *c, const yaml_node_t *v, const char *path, struct pgw_strlist *list)
{
	static const char what[] = "http://host:port or https://host:port";
	const char *s, *hp;
	size_t len, hlen;

	if (clean_scalar(c, v, path, what, 0, &s, &len))
		return -1;
	if (len > 7 && strncasecmp(s, "http://", 7) == 0) {
		c->url_protocol = "http";
		hp = s + 7;
	} else if (len > 8 && strncasecmp(s, "https://", 8) == 0) {
		c->url_protocol = "https";
		hp = s + 8;
	} else {
		return expected(c, v, path, what, false);
	}
	hlen = len - (size_t)(hp - s);
	if (hlen > 0 && hp[hlen - 1] == '/')
		hlen--;
	if (memchr(hp, '/', hlen) || memchr(hp, '@', hlen) || memchr(hp, '?', hlen))
		return expected(c, v, path, what, false);
	return conv_hostport_text(c, v, path, hp, hlen, list, NULL);
}

/* A value with its own check (f->check). */
static int conv_checked(struct ctx *c, const struct field *f, const yaml_node_t *v,
                        const char *path, const char *s, size_t len)
{
	char why[256], *tmp = strndup(s, len);
	bool ok;

	if (!tmp)
		return oom(c);
	ok = f->check(tmp, why, sizeof(why));
	free(tmp);
	if (!ok)
		return fail(c, v, path, "%s", why);
	return store_str(c, dest(c, f), s, len);
}

/* Convert the value v of the key at path (table entry f) into the config. */
/* One of the row's "a|b|c" words (case-insensitive); stores its index. */
static int conv_choice_into(struct ctx *c, const yaml_node_t *v, const struct field *f,
                            const char *path, int *out)
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
			*out = i;
			return 0;
		}
		p = bar ? bar + 1 : NULL;
		i++;
	}
	return expected(c, v, path, what, false);
}

static int conv_choice(struct ctx *c, const yaml_node_t *v, const struct field *f, const char *path)
{
	return conv_choice_into(c, v, f, path, (int *)dest(c, f));
}

/* ---------------------------------------------------------------- slots */

/* A YAML tree as JSON (scalars as strings, null as null), for slots.c's parsers. */
static struct json_object *yaml_json(struct ctx *c, const yaml_node_t *n, int depth)
{
	struct json_object *o;

	if (!n || is_null(n))
		return NULL;
	if (n->type == YAML_SCALAR_NODE)
		return json_object_new_string_len((const char *)n->data.scalar.value,
		                                  (int)n->data.scalar.length);
	if (depth > 4)
		return json_object_new_string("(nested too deep)");
	if (n->type == YAML_SEQUENCE_NODE) {
		o = json_object_new_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     o && i < n->data.sequence.items.top; i++)
			json_object_array_add(o, yaml_json(c, node_at(c, *i), depth + 1));
		return o;
	}
	o = json_object_new_object();
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; o && p < n->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = node_at(c, p->key);

		if (k && k->type == YAML_SCALAR_NODE)
			json_object_object_add(o, (const char *)k->data.scalar.value,
			                       yaml_json(c, node_at(c, p->value), depth + 1));
	}
	return o;
}

static int conv_slots(struct ctx *c, const struct field *f, const yaml_node_t *v, const char *path)
{
	struct pgw_slot_conf *sc = dest(c, f);
	struct json_object *j;
	char why[300];
	bool ok = true;

	if (is_null(v))
		return 0;
	if (f->type == F_SLOTS && v->type != YAML_MAPPING_NODE)
		return expected(c, v, path, "a map of slot names", false);
	if (f->type == F_IGNSLOTS && v->type != YAML_SEQUENCE_NODE)
		return expected(c, v, path, "a list of maps (name, type, database, plugin)", false);
	if (f->type == F_SLOTTTL) {
		const char *txt;
		size_t len;

		if (clean_scalar(c, v, path, "a duration (e.g. 1800 or 30min)", 0, &txt, &len))
			return -1;
		j = json_object_new_string_len(txt, (int)len);
		if (!j)
			return oom(c);
		ok = pgw_slot_ttl_parse(j, &sc->member_slots_ttl, why, sizeof(why));
		json_object_put(j);
		return ok ? 0 : fail(c, v, NULL, "bootstrap.dcs.%s", why);
	}
	if (v->type == YAML_MAPPING_NODE && check_keys(c, v, path, false))
		return -1;
	if (f->type == F_SLOTS) {
		for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
		     ok && p < v->data.mapping.pairs.top; p++) {
			const yaml_node_t *k = node_at(c, p->key), *val = node_at(c, p->value);

			if (sc->nperm >= PGW_PERM_SLOTS_MAX)
				return fail(c, k, path, "more than %d permanent slots",
				            PGW_PERM_SLOTS_MAX);
			j = yaml_json(c, val, 0);
			ok = pgw_slot_def_parse((const char *)k->data.scalar.value, j,
			                        &sc->perm[sc->nperm], why, sizeof(why));
			json_object_put(j);
			if (!ok)
				return fail(c, val ? val : k, NULL, "bootstrap.dcs.%s", why);
			sc->nperm++;
		}
		return 0;
	}
	for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top;
	     i++) {
		const yaml_node_t *e = node_at(c, *i);

		if (sc->nignore >= PGW_IGNORE_MAX)
			return fail(c, e, path, "more than %d entries", PGW_IGNORE_MAX);
		j = yaml_json(c, e, 0);
		ok = pgw_slot_match_parse(sc->nignore, j, &sc->ignore[sc->nignore], why,
		                          sizeof(why));
		json_object_put(j);
		if (!ok)
			return fail(c, e, NULL, "bootstrap.dcs.%s", why);
		sc->nignore++;
	}
	return 0;
}

/* bootstrap.dcs.standby_cluster: the same checks as for the config key (standby.c) */
static int conv_standby(struct ctx *c, const yaml_node_t *v, const char *path,
                        struct pgw_standby_cluster *sc)
{
	struct json_object *j;
	char why[300];
	bool ok;

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return expected(c, v, path, "a map (host, port, restore_command, ...)", false);
	if (check_keys(c, v, path, false))
		return -1;
	j = yaml_json(c, v, 0);
	if (!j)
		return oom(c);
	ok = pgw_standby_parse(j, sc, why, sizeof(why));
	json_object_put(j);
	return ok ? 0 : fail(c, v, NULL, "bootstrap.dcs.%s", why);
}

/* vip.address, vip.interface, vip.arp_notify */
static int conv_vip(struct ctx *c, const struct field *f, const yaml_node_t *v, const char *path)
{
	char why[128], what[192], buf[64];
	const char *s;
	size_t len;
	int64_t n;
	bool b;

	switch (f->type) {
	case F_VIPADDR:
		if (clean_scalar(c, v, path, "an IPv4 address with a prefix length", 0, &s, &len))
			return -1;
		snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : 0), s);
		if (!pgw_vip_parse_address(buf, dest(c, f), why, sizeof(why))) {
			snprintf(what, sizeof(what),
			         "an IPv4 address with a prefix length such as "
			         "10.0.0.100/24 (%s)",
			         why);
			return expected(c, v, path, what, false);
		}
		return 0;
	case F_IFNAME:
		if (clean_scalar(c, v, path, "an interface name", 0, &s, &len))
			return -1;
		snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : 0), s);
		if (!pgw_vip_ifname_valid(buf))
			return expected(c, v, path,
			                "an interface name (1 to 15 characters, no '/', ':' or "
			                "blanks)",
			                false);
		return store_str(c, dest(c, f), s, len);
	default:
		snprintf(what, sizeof(what), "a number of gratuitous ARPs 0..%d, or a boolean",
		         PGW_VIP_ARP_MAX);
		if (clean_scalar(c, v, path, what, 0, &s, &len))
			return -1;
		if (parse_bool(s, len, &b))
			n = b ? PGW_VIP_ARP_DEFAULT : 0;
		else if (!parse_uint(s, len, PGW_VIP_ARP_MAX, &n))
			return expected(c, v, path, what, false);
		*(int *)dest(c, f) = (int)n;
		return 0;
	}
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
		if (f->check)
			return conv_checked(c, f, v, path, s, len);
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
	case F_NOT_TRUE:
		if (clean_scalar(c, v, path, "a boolean", 0, &s, &len))
			return -1;
		if (!parse_bool(s, len, &b))
			return expected(c, v, path, "a boolean", false);
		if (b && f->type == F_NOT_TRUE)
			return fail(c, v, path, "%s", f->choices);
		*(bool *)dest(c, f) = b;
		return 0;
	case F_HEADERS:
		return conv_kvmap(c, v, path, "a map of HTTP header names to values", dest(c, f),
		                  conv_header);
	case F_ALLOW:
		return conv_allow(c, v, path, dest(c, f));
	case F_URL:
		return conv_url(c, v, path, dest(c, f));
	case F_LEVELMAP:
		break; /* walk_map: it needs the key */
	case F_STRLIST:
		return conv_strlist(c, v, path, dest(c, f));
	case F_HOSTLIST:
		return conv_hostlist(c, v, path, dest(c, f));
	case F_PARAMS:
		return conv_kvmap(c, v, path, "a map", dest(c, f), conv_param);
	case F_INITDB:
		return conv_tool_opts(c, v, path, &initdb_tool, dest(c, f));
	case F_BBOPTS:
		return conv_tool_opts(c, v, path, &basebackup_tool, dest(c, f));
	case F_METHODS:
		return conv_method(c, v, path, f->path[0] == 'b', dest(c, f));
	case F_USERS:
		return conv_users(c, v, path, dest(c, f));
	case F_BINNAME:
		return conv_binname(c, v, path, dest(c, f));
	case F_LOGKV:
		return conv_logfields(c, v, path, dest(c, f));
	case F_MODE:
		if (clean_scalar(c, v, path, "a file mode such as 0640", 0, &s, &len))
			return -1;
		if (!parse_filemode(s, len, &n))
			return expected(c, v, path, "a file mode such as 0640 (at most 0777)",
			                false);
		*(int *)dest(c, f) = (int)n;
		return 0;
	case F_PEERS:
		return conv_peers(c, v, path, dest(c, f));
	case F_SLOTS:
	case F_IGNSLOTS:
	case F_SLOTTTL:
		return conv_slots(c, f, v, path);
	case F_COMMAND:
		return conv_command(c, v, path, dest(c, f));
	case F_STANDBY:
		return conv_standby(c, v, path, dest(c, f));
	case F_VIPADDR:
	case F_IFNAME:
	case F_GARP:
		return conv_vip(c, f, v, path);
	case F_SECTION:
	case F_UNIMPL:
	case F_REFUSED:
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
		if (f->type == F_REFUSED)
			return fail(c, k, path, "%s", f->choices);
		if (f->conflicts && lookup(f->conflicts, &other) && c->seen[other])
			return fail(c, k, path, "conflicts with %s", f->conflicts);
		c->seen[idx] = true;
		c->seen_line[idx] = line_of(k);
		if (f->type == F_LEVELMAP) {
			if (conv_levelmap(c, k, v, path))
				return -1;
			continue;
		}
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

/* postgresql.callback_timeout: 60 s unless set; at least 1 s (a bound, never "none"). */
static int finish_callbacks(struct ctx *c)
{
	if (!was_set(c, "postgresql.callback_timeout"))
		c->cfg->postgresql.callback_timeout_ms = 60000;
	else if (c->cfg->postgresql.callback_timeout_ms < 1000)
		return fail(c, NULL, "postgresql.callback_timeout",
		            "expected at least 1 second, got %lld ms",
		            (long long)c->cfg->postgresql.callback_timeout_ms);
	return 0;
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
		snprintf(line, sizeof(line),
		         "%s: bootstrap.dcs.postgresql.parameters.%s: runs a command or "
		         "loads code, "
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
	return fail(c, NULL, path,
	            "expected disable, allow, prefer, require, verify-ca or verify-full, "
	            "got \"%s\"",
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

/* A rule broken by the key at path: the error names the line where it was set. */
static int fail_key(struct ctx *c, const char *path, const char *msg)
{
	yaml_node_t at;
	size_t i;

	if (!lookup(path, &i) || !c->seen_line[i])
		return fail(c, NULL, path, "%s", msg);
	memset(&at, 0, sizeof(at));
	at.start_mark.line = c->seen_line[i] - 1;
	return fail(c, &at, path, "%s", msg);
}

/* etcd3: one of host, hosts, url, srv; the default endpoint without any. */
static int finish_etcd3(struct ctx *c)
{
	static const char *const ways[] = {"etcd3.host", "etcd3.hosts", "etcd3.url", "etcd3.srv"};
	struct pgw_config *cfg = c->cfg;
	const char *first = NULL;
	char msg[160];

	for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
		if (!was_set(c, ways[i]))
			continue;
		if (first) {
			snprintf(msg, sizeof(msg), "conflicts with %s (give the endpoints one way)",
			         first);
			return fail_key(c, ways[i], msg);
		}
		first = ways[i];
	}
	if (c->url_protocol && was_set(c, "etcd3.protocol") &&
	    strcmp(c->url_protocol, cfg->etcd3.protocol) != 0)
		return fail_key(c, "etcd3.protocol", "conflicts with the scheme of etcd3.url");
	if (c->url_protocol && !was_set(c, "etcd3.protocol") &&
	    store_str(c, &cfg->etcd3.protocol, c->url_protocol, strlen(c->url_protocol)))
		return -1;
	if (cfg->etcd3.srv_suffix && !cfg->etcd3.srv)
		return fail_key(c, "etcd3.srv_suffix", "needs etcd3.srv");
	if (!cfg->etcd3.srv && cfg->etcd3.hosts.n == 0 &&
	    strlist_push(c, &cfg->etcd3.hosts, "127.0.0.1:2379", 14))
		return -1;
	return 0;
}

static int warn_at_line(struct ctx *c, size_t line, const char *path, const char *what)
{
	char text[KEYPATH_MAX + 256];
	int r = snprintf(text, sizeof(text), "%s:%zu: %s: %s", c->name, line, path, what);

	return r < 0 ? oom(c) : strlist_push(c, &c->cfg->warnings, text, strlen(text));
}

static int finish_log(struct ctx *c)
{
	struct pgw_log_settings *l = &c->cfg->log;

	if (!was_set(c, "log.file_num"))
		l->file_num = 4;
	if (l->file_size == 0)
		l->file_size = 25000000;
	if (l->max_queue_size == 0)
		l->max_queue_size = 1000;
	if (l->max_queue_size > 100000)
		return fail_key(c, "log.max_queue_size", "at most 100000 lines");
	if (l->file_num > 1000)
		return fail_key(c, "log.file_num", "at most 1000 files");
	size_t total = 0, idx;

	for (size_t i = 0; i < l->nstatic_fields; i++)
		total += strlen(l->static_fields[i].name) + strlen(l->static_fields[i].value) + 8;
	if (total > 400)
		return fail_key(c, "log.static_fields", "at most 400 bytes of names and values");
	if (l->nstatic_fields && l->type != PGW_LOG_JSON && lookup("log.static_fields", &idx) &&
	    warn_at_line(c, c->seen_line[idx], "log.static_fields",
	                 "written with log.type json only, ignored"))
		return -1;
	return 0;
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
	if (cfg->postgresql.config_dir && cfg->postgresql.config_dir[0] != '/') {
		/* relative to the directory pgwarden starts in, as Patroni's abspath: the
		 * path goes to postgres as config_file and into postgresql.conf */
		char cwd[4096], *abs = NULL;

		if (!getcwd(cwd, sizeof(cwd)) ||
		    asprintf(&abs, "%s/%s", cwd, cfg->postgresql.config_dir) < 0)
			return fail_key(c, "postgresql.config_dir",
			                "cannot make the path absolute (getcwd failed)");
		free(cfg->postgresql.config_dir);
		cfg->postgresql.config_dir = abs;
	}
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
	if (finish_etcd3(c))
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
	if (finish_callbacks(c) || finish_fencing(c) || finish_log(c))
		return -1;
	if (!cfg->vip.address.family != !cfg->vip.interface)
		return fail(c, NULL, cfg->vip.interface ? "vip.address" : "vip.interface",
		            "required with %s (vip: the address and the interface it goes on)",
		            cfg->vip.interface ? "vip.interface" : "vip.address");
	if (!was_set(c, "vip.arp_notify"))
		cfg->vip.arp_notify = PGW_VIP_ARP_DEFAULT;
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
	pgw_slot_conf_defaults(&d->slots);
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
	cfg->log.level = PGW_INFO;
	cfg->log.traceback_level = PGW_ERROR;
	cfg->log.mode = -1;

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
	free(cfg->tags.replicatefrom);
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
	free(cfg->ctl.keyfile_password);
	strlist_free(&cfg->restapi.allowlist);
	kvlist_free(&cfg->restapi.http_extra_headers);
	kvlist_free(&cfg->restapi.https_extra_headers);
	free(cfg->restapi.ciphers);
	free(cfg->etcd3.srv);
	free(cfg->etcd3.srv_suffix);
	free(cfg->log.format);
	free(cfg->log.dateformat);
	free(cfg->log.dir);
	for (size_t i = 0; i < cfg->log.nstatic_fields; i++) {
		free(cfg->log.static_fields[i].name);
		free(cfg->log.static_fields[i].value);
	}
	free(cfg->log.static_fields);
	free(cfg->postgresql.config_dir);
	free(cfg->postgresql.proxy_address);
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
	for (int i = 0; i < PGW_CB_COUNT; i++)
		strlist_free(&cfg->postgresql.callbacks[i]);
	strlist_free(&cfg->postgresql.pre_promote);
	strlist_free(&cfg->postgresql.before_stop);
	strlist_free(&cfg->warnings);
	free(cfg->vip.interface);
	free(cfg);
}

const char *pgw_cb_name(enum pgw_cb cb)
{
	static const char *const names[PGW_CB_COUNT] = {"on_start", "on_stop", "on_restart",
	                                                "on_reload", "on_role_change"};

	return (unsigned)cb < PGW_CB_COUNT ? names[cb] : "?";
}

const char *pgw_ipmi_priv_name(int priv)
{
	static const char *const names[] = {"ADMINISTRATOR", "OPERATOR", "USER"};

	return priv >= 0 && priv < (int)(sizeof(names) / sizeof(names[0])) ? names[priv]
	                                                                   : "ADMINISTRATOR";
}
