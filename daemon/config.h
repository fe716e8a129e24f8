/*
 * config.h - pgwarden's configuration: the YAML file (keys as in patroni.yml)
 * parsed with libyaml into one immutable struct.
 *
 * A config is either fully understood or rejected: pgw_config_load() returns NULL
 * and an error naming the file, the line and the key, e.g.
 *   pgwarden.yml:12: bootstrap.dcs.ttl: expected a positive integer, got "3O"
 * Unknown keys only produce warnings (collected in cfg->warnings).
 */
#ifndef PGW_CONFIG_H
#define PGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "slots.h"
#include "standby.h"
#include "vip.h"

/* An ordered list of name = value pairs (PostgreSQL parameters). */
struct pgw_kv {
	char *name;
	char *value;
};

struct pgw_kvlist {
	struct pgw_kv *items;
	size_t n;
};

/* One member's BMC as this node's file pins it (fencing.peers.<member>). */
struct pgw_fence_peer {
	char *name;
	char *address;    /* host[:port] */
	bool lanplus;     /* default true */
	int cipher_suite; /* 0 = the tool's default */
	int privilege;    /* enum pgw_ipmi_priv, default ADMINISTRATOR */
};

struct pgw_fence_peers {
	struct pgw_fence_peer *items;
	size_t n;
};

/* The member's pinned BMC, or NULL. */
const struct pgw_fence_peer *pgw_fence_peer(const struct pgw_fence_peers *p, const char *member);

struct pgw_strlist {
	char **items;
	size_t n;
};

struct pgw_auth {
	char *username; /* NULL when not set */
	char *password; /* NULL when not set */
	/* TLS towards the leader (replication, rewind; Patroni's keys): sslmode default
	 * prefer, up to verify-full with sslrootcert; NULL when not set */
	char *sslmode, *sslrootcert, *sslcert, *sslkey;
};

/*
 * A custom method (Patroni's meaning): bootstrap.<name> (bootstrap.method names it) or
 * postgresql.<name> (postgresql.create_replica_methods lists it).  The command comes from
 * the local file only (ARCHITECTURE.md §7), split as a shell would (quotes, backslashes)
 * but never run through a shell.
 */
struct pgw_method {
	char *name;
	struct pgw_strlist argv;          /* the command's words; empty: the name is the command */
	size_t line;                      /* where the method's section starts */
	bool no_params;                   /* no --scope/--datadir/... arguments */
	bool keep_existing_recovery_conf; /* bootstrap: keep recovery.signal/standby.signal */
	bool has_recovery_conf;           /* bootstrap: recovery_conf was given */
	struct pgw_kvlist recovery_conf;  /* bootstrap: recovery parameters (PG 12+: in
	                                     postgresql.conf, with recovery.signal) */
	bool no_leader;                   /* replica: works without a leader (no_master too) */
	bool keep_data;                   /* replica: do not empty the data directory first */
	struct pgw_kvlist params;         /* replica: other keys, passed as --key=value */
	bool used;                        /* named by bootstrap.method / create_replica_methods */
};

struct pgw_methods {
	struct pgw_method *items;
	size_t n;
};

/* The method called name, or NULL. */
const struct pgw_method *pgw_method_find(const struct pgw_methods *m, const char *name);

/* bootstrap.users.<name>: created after the bootstrap (deprecated in Patroni, still read). */
struct pgw_user {
	char *name;
	char *password; /* NULL: none */
	char *
	    options; /* SQL role options, validated keywords joined by ' ', e.g. "CREATEDB LOGIN" */
};

struct pgw_users {
	struct pgw_user *items;
	size_t n;
};

/* The dynamic ("DCS") settings: bootstrap.dcs in the file, later the config key. */
struct pgw_dcs {
	int ttl;                         /* s, default 30 */
	int loop_wait;                   /* s, default 10 */
	int retry_timeout;               /* s, default 10 */
	int64_t maximum_lag_on_failover; /* bytes, default 1048576 */
	int primary_start_timeout;       /* s, default 300 */
	bool use_pg_rewind;              /* default true */
	bool use_slots;                  /* default true */
	struct pgw_kvlist pg_parameters; /* bootstrap.dcs.postgresql.parameters */
	bool synchronous_mode;           /* default false */
	bool synchronous_mode_strict;    /* default false */
	int synchronous_node_count;      /* default 1 */
	/* slots, ignore_slots, member_slots_ttl (slots.h) */
	struct pgw_slot_conf slots;
	/* standby_cluster: follow a remote primary (standby.h) */
	struct pgw_standby_cluster standby;
	bool check_timeline;       /* default false: see decide.h pgw_timeline_behind */
	int max_timelines_history; /* rows the history key keeps, 0 (default) = all */
};

/* Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10, ...), no parameters. */
void pgw_dcs_defaults(struct pgw_dcs *d);

enum pgw_verify_client { PGW_VERIFY_NONE, PGW_VERIFY_OPTIONAL, PGW_VERIFY_REQUIRED };
enum pgw_wd_mode { PGW_WD_OFF, PGW_WD_AUTOMATIC, PGW_WD_REQUIRED };
enum pgw_fence_mode { PGW_FENCE_OFF, PGW_FENCE_REQUIRED };
enum pgw_ipmi_priv { PGW_PRIV_ADMINISTRATOR, PGW_PRIV_OPERATOR, PGW_PRIV_USER };

/* restapi: TLS when certfile is set (Patroni's keys and meanings). */
struct pgw_rest_tls_config {
	char *certfile;         /* PEM certificate (chain); NULL: plain HTTP */
	char *keyfile;          /* PEM private key; default: in certfile */
	char *keyfile_password; /* for an encrypted key */
	char *cafile;           /* CA that client certificates must chain to */
	int verify_client;      /* enum pgw_verify_client: optional = for writes only */
};

/* postgresql.callbacks, in the order of pgw_cb_name() */
enum pgw_cb {
	PGW_CB_ON_START,
	PGW_CB_ON_STOP,
	PGW_CB_ON_RESTART,
	PGW_CB_ON_RELOAD,
	PGW_CB_ON_ROLE_CHANGE,
	PGW_CB_COUNT
};
/* "on_start", "on_stop", ... as in Patroni's configuration and callback arguments */
const char *pgw_cb_name(enum pgw_cb cb);

struct pgw_config {
	char *path;      /* the file it came from */
	char *scope;     /* required */
	char *namespace; /* default "/service/", always begins and ends with '/' */
	char *name;      /* required: this member's name */
	char *user;      /* pgwarden-only: unprivileged user to run as when started as root; default
	                    "postgres" */

	struct {
		char *listen;          /* host:port, default "127.0.0.1:8008" */
		char *connect_address; /* host:port, default = listen */
		struct pgw_auth auth;  /* restapi.authentication: basic auth for non-GET requests */
		bool protect_reads;    /* restapi.protect_reads: auth for GET /cluster, /history,
		                          /config, /fencing too (topology, BMC addresses) */
		struct pgw_rest_tls_config tls;
		/* restapi.allowlist: IPs, CIDRs, host names that may call the unsafe
		 * (POST, PUT, PATCH, DELETE) endpoints; none: any */
		struct pgw_strlist allowlist;
		bool allowlist_include_members;        /* and the members' api_url addresses */
		struct pgw_kvlist http_extra_headers;  /* on every answer */
		struct pgw_kvlist https_extra_headers; /* and these over TLS */
		int request_queue_size;                /* listen backlog, 0: libmicrohttpd's */
		char *ciphers; /* OpenSSL-style cipher list (daemon/tlsciphers.h), NULL: default */
	} restapi;

	struct {
		bool insecure;  /* do not verify the members' REST certificates */
		char *cacert;   /* CA for the members' REST certificates; default restapi.cafile */
		char *certfile; /* client certificate (verify_client); default restapi.certfile */
		char *keyfile;  /* its key; default restapi.keyfile */
		char *keyfile_password; /* its password; default restapi.keyfile_password */
		/* the only hosts (as api_urls name them) pgwardenctl sends requests to;
		 * none: any host a member key names */
		struct pgw_strlist api_hosts;
	} ctl;

	/* failover.unprotected: promote after a lost leader's lease expired even when no
	 * fence and no armed watchdog bounds it (Patroni's way; S3 opt-in, local only) */
	bool failover_unprotected;
	/* failsafe_mode (top level or bootstrap.dcs): only false is accepted (see config.c) */
	bool failsafe_mode;

	struct {
		int mode;          /* enum pgw_wd_mode, default off */
		char *device;      /* default "/dev/watchdog" */
		int safety_margin; /* S in s, default 5 */
	} watchdog;

	/* STONITH: peers power this node off through its BMC before they promote. */
	struct {
		int mode;    /* enum pgw_fence_mode, default off */
		char *agent; /* "ipmi" (default) or the path of a fence agent */
		int timeout; /* s for one fence: power off + confirmation, default 30 */
		int retries; /* default 2 */
		int64_t fast_takeover_after_ms; /* 0 = off */
		char *audit_log;                /* default /var/lib/pgwarden/fencing.log */
		char *credentials_file;         /* peers' BMC credentials, default
		                                   /etc/pgwarden/fencing.secret */
		char *audit_key_file; /* HMAC key of the audit chain (root's), NULL none */
		/* its bytes, read by main.c as root before the privilege drop */
		unsigned char audit_key[65];
		size_t audit_key_len;
		struct {
			char *address;    /* this node's BMC, host[:port]; published without
			                     credentials */
			bool lanplus;     /* default true */
			int cipher_suite; /* 0 = the tool's default */
			int privilege;    /* enum pgw_ipmi_priv, default ADMINISTRATOR */
		} bmc;
		/* fencing.peers: every member's BMC pinned here (ARCHITECTURE.md §7); the
		 * address a leader record publishes is only checked against it */
		struct pgw_fence_peers peers;
	} fencing;

	struct {
		struct pgw_strlist hosts; /* "host:port" each; at least one */
		char *protocol;           /* "http" (default) or "https" */
		char *username, *password, *cacert, *cert, *key; /* NULL when not set */
		/* etcd3.srv: the domain whose SRV records (_etcd-client-ssl._tcp, then
		 * _etcd-client._tcp, with "-<srv_suffix>") name the endpoints; resolved
		 * into hosts and protocol by pgw_config_resolve_etcd_srv() */
		char *srv, *srv_suffix;
	} etcd3;

	struct pgw_log_settings log; /* the log section */

	struct pgw_dcs dcs; /* bootstrap.dcs with defaults filled in */

	/* bootstrap.initdb: a list of "flag" or {key: value}; stored as initdb
	 * arguments, e.g. "--data-checksums", "--encoding=UTF8". */
	struct pgw_strlist initdb_args;

	struct {
		char *method;               /* NULL or "initdb": initdb; else a bootstrap.<name> */
		struct pgw_methods methods; /* bootstrap.<name> sections */
		struct pgw_strlist post_bootstrap; /* post_bootstrap (or post_init): its words */
		struct pgw_strlist pg_hba; /* pg_hba lines when postgresql.pg_hba is not set */
		struct pgw_users users;
	} bootstrap;

	struct {
		char *listen;          /* host:port, default "127.0.0.1:5432" */
		char *connect_address; /* host:port, default = listen */
		char *data_dir;        /* required */
		char *bin_dir;         /* default "/usr/lib/postgresql/15/bin" */
		char *pgpass;          /* default "<data_dir>/../pgpass.<name>" -> see config.c */
		struct pgw_auth superuser;    /* username default "postgres" */
		struct pgw_auth replication;  /* username default "replicator" */
		struct pgw_auth rewind;       /* optional; superuser used when unset */
		struct pgw_kvlist parameters; /* local postgresql.parameters */
		struct pgw_strlist pg_hba;    /* lines of pg_hba.conf */
		/* Commands as argv (n == 0: none), from the local file only (never from etcd):
		 * postgresql.callbacks.<on_start|...>, run as Patroni does with the action, the
		 * role and the scope appended; pre_promote and before_stop run as written. */
		struct pgw_strlist callbacks[PGW_CB_COUNT];
		struct pgw_strlist pre_promote;
		struct pgw_strlist before_stop;
		int64_t
		    callback_timeout_ms; /* postgresql.callback_timeout (pgwarden), default 60 s */
		struct pgw_strlist pg_ident; /* lines of pg_ident.conf; none: initdb's file */
		char *custom_conf; /* included in place of postgresql.base.conf (initdb's) */
		struct pgw_kvlist recovery_conf; /* more recovery settings on a standby */
		struct pgw_kvlist bin_name;      /* program -> its file name in bin_dir */
		int pg_ctl_timeout;              /* s for pg_ctl start/stop; 0: pgwarden's */
		/* local use_pg_rewind, over the dynamic one when use_pg_rewind_set */
		bool use_pg_rewind, use_pg_rewind_set;
		/* after a failed pg_rewind / with diverged timelines and no rewind: re-clone
		 * (true, pgwarden's default) or keep the data directory and wait */
		bool remove_on_rewind_failure, remove_on_diverged_timelines;
		struct pgw_strlist create_replica_methods; /* default: basebackup */
		struct pgw_methods replica_methods;        /* postgresql.<name> sections */
		struct pgw_strlist basebackup_args;        /* "--max-rate=10M", ... */
		/* config_dir: postgresql.conf, pg_hba.conf, pg_ident.conf there, not in
		 * data_dir (postgres runs with config_file=); NULL: data_dir */
		char *config_dir;
		/* the daemon's own connections through the unix socket (first entry of
		 * unix_socket_directories, else libpq's default); replication to a leader on
		 * this host (same connect_address host, or a loopback one) through it too */
		bool use_unix_socket, use_unix_socket_repl;
		char *proxy_address; /* host:port published as proxy_url in the member key */
	} postgresql;

	struct {
		bool nofailover, noloadbalance, clonefrom, nosync;
		int failover_priority; /* default 1 */
		char *replicatefrom;   /* cascading replication: a member's name, NULL = none */
		bool nostream;         /* no primary_conninfo: WAL from restore_command only */
	} tags;

	struct pgw_strlist warnings; /* "file:line: key: unknown key, ignored" */

	/* vip: the virtual IP the leader primary holds (vip.h); address.family 0 = none */
	struct {
		struct pgw_vip_addr address;
		char *interface;
		int arp_notify; /* gratuitous ARPs after adding it (0..20, true = 3) */
	} vip;
};

/*
 * Parse and validate PATH.  On failure returns NULL and writes one line into
 * err (errlen bytes) such as "pgwarden.yml:12: bootstrap.dcs.ttl: expected a
 * positive integer, got \"3O\"".  Validation includes the timing rule
 * loop_wait + 2 * retry_timeout <= ttl.
 */
struct pgw_config *pgw_config_load(const char *path, char *err, size_t errlen);

/* Same, from a buffer; `name` is used in messages in place of the file path. */
struct pgw_config *pgw_config_parse(const char *name, const char *text, size_t len, char *err,
                                    size_t errlen);

void pgw_config_free(struct pgw_config *cfg);

/*
 * etcd3.srv set: look the SRV records up (res_query) and put the endpoints into
 * cfg->etcd3.hosts and the protocol into cfg->etcd3.protocol.  0, or -1 with err.
 * Without etcd3.srv: 0, nothing changes.
 */
int pgw_config_resolve_etcd_srv(struct pgw_config *cfg, char *err, size_t errlen);

/* The IPMI name of an enum pgw_ipmi_priv ("ADMINISTRATOR", "OPERATOR", "USER"). */
const char *pgw_ipmi_priv_name(int priv);

/* Split "host:port" (or "[v6]:port"); returns false when malformed. host gets a malloc'd copy. */
bool pgw_split_hostport(const char *hostport, char **host, int *port);

#endif
