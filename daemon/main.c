/*
 * main.c - pgwarden's entry point: command line, configuration, privilege drop,
 * signals, then the HA loop.
 *
 *   pgwarden CONFIG.yml                 run this node in the foreground
 *   pgwarden --check-config CONFIG.yml  validate the configuration and exit
 *   pgwarden --print-rules[=dot]        print the decision table
 *   pgwarden --list-watchdogs           the watchdog devices sysfs knows
 *   pgwarden --test-watchdog[=DEVICE] [--timeout=N] [--fire --force]
 *                                       arm, pet 3 times, magic close (or let it fire)
 *   pgwarden --version
 */
#include <errno.h>
#include <grp.h>
#include <net/if.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "decide.h"
#include "pg.h"
#include "requests.h"
#include "fence.h"
#include "ha.h"
#include "audit.h"
#include "watchdog.h"
#include "log.h"
#include "vip.h"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_reload(int sig)
{
	(void)sig;
	reload_requested = 1;
}

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: pgwarden [--check-config] CONFIG.yml\n"
	        "       pgwarden --print-rules[=dot]\n"
	        "       pgwarden --list-watchdogs\n"
	        "       pgwarden --test-watchdog[=DEVICE] [--timeout=SECONDS] [--fire --force]\n"
	        "           arm DEVICE (default /dev/watchdog) with the timeout (default 10),\n"
	        "           pet it 3 times and stop it with the magic close; --fire stops\n"
	        "           petting instead and RESETS THIS MACHINE (needs --force)\n"
	        "       pgwarden --version\n");
}

/* --test-watchdog[=DEV] [--timeout=N] [--fire] [--force] */
static int test_watchdog(int argc, char **argv)
{
	const char *dev = "/dev/watchdog";
	bool fire = false, force = false;
	int timeout = 10;

	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--test-watchdog=", 16) == 0) {
			dev = argv[i] + 16;
		} else if (strncmp(argv[i], "--timeout=", 10) == 0) {
			timeout = atoi(argv[i] + 10);
			if (timeout < 1 || timeout > 3600) {
				fprintf(
				    stderr,
				    "pgwarden: --timeout: expected 1..3600 seconds, got \"%s\"\n",
				    argv[i] + 10);
				return 2;
			}
		} else if (strcmp(argv[i], "--fire") == 0) {
			fire = true;
		} else if (strcmp(argv[i], "--force") == 0) {
			force = true;
		} else if (strcmp(argv[i], "--test-watchdog") != 0) {
			fprintf(stderr, "pgwarden: --test-watchdog: unexpected argument \"%s\"\n",
			        argv[i]);
			return 2;
		}
	}
	if (fire && !force) {
		fprintf(stderr,
		        "pgwarden: --fire resets this machine: add --force if you mean it\n");
		return 2;
	}
	return pgw_wd_cmd_test(dev, timeout, fire, stdout);
}

static int install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
		pgw_error("cannot install signal handlers: %s", strerror(errno));
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = on_reload;
	if (sigaction(SIGHUP, &sa, NULL) != 0) {
		pgw_error("cannot install the SIGHUP handler: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Started as root: become cfg->user for good (PostgreSQL never runs as root).  With a
 * vip, CAP_NET_ADMIN and CAP_NET_RAW stay (vip.h); otherwise no capability at all. */
static int drop_privileges(const struct pgw_config *cfg)
{
	bool vip = cfg->vip.address.family != 0;
	struct passwd *pw;
	char why[256];

	if (geteuid() != 0)
		return 0;
	if (pgw_vip_caps_prepare(vip, why, sizeof(why)) != 0) {
		pgw_error("%s", why);
		return -1;
	}
	pw = getpwnam(cfg->user);
	if (!pw) {
		pgw_error("%s: user: no such user \"%s\"", cfg->path, cfg->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		pgw_error("%s: user: refusing to run as root", cfg->path);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		pgw_error("cannot switch to user %s: %s", pw->pw_name, strerror(errno));
		return -1;
	}
	if (pgw_vip_caps_limit(vip, why, sizeof(why)) != 0) {
		pgw_error("%s", why);
		return -1;
	}
	if (setuid(0) == 0) {
		pgw_error("privilege drop to %s did not stick", pw->pw_name);
		return -1;
	}
	setenv("HOME", pw->pw_dir, 1);
	setenv("USER", pw->pw_name, 1);
	pgw_info("running as user %s (uid %d)%s", pw->pw_name, (int)pw->pw_uid,
	         vip ? " with CAP_NET_ADMIN and CAP_NET_RAW (vip)" : "");
	return 0;
}

/* Not started as root (systemd's User=): keep no more than the vip needs, and pass
 * nothing on to PostgreSQL (ambient capabilities would). */
static int limit_capabilities(const struct pgw_config *cfg)
{
	char why[256];

	if (geteuid() == 0)
		return 0; /* drop_privileges did it */
	if (pgw_vip_caps_limit(cfg->vip.address.family != 0, why, sizeof(why)) == 0)
		return 0;
	pgw_error("%s", why);
	return -1;
}

/* vip.interface may appear later (a bond, a VLAN): only a warning. */
static void check_vip_interface(const struct pgw_config *cfg, bool to_stdout)
{
	if (!cfg->vip.interface || if_nametoindex(cfg->vip.interface) != 0)
		return;
	if (to_stdout)
		printf("%s: warning: vip.interface: no interface \"%s\" on this machine now\n",
		       cfg->path, cfg->vip.interface);
	else
		pgw_warn("%s: vip.interface: no interface \"%s\" on this machine now: the "
		         "virtual IP cannot be added until it exists",
		         cfg->path, cfg->vip.interface);
}

/*
 * fencing.mode required: the peers' BMC credentials must be there, owned by the user
 * pgwarden runs as, and readable by no one else (they power machines off).  The same
 * checks as every use of the file (fencing/fence.c), made once at start.
 */
static int check_fencing_secret(const struct pgw_config *cfg)
{
	char err[512];

	if (cfg->fencing.mode != PGW_FENCE_REQUIRED ||
	    pgw_fence_check_secret(cfg->fencing.credentials_file, "fencing.credentials_file", err,
	                           sizeof(err)) == 0)
		return 0;
	pgw_error("%s: %s", cfg->path, err);
	return -1;
}

/* A daemon that starts holds no lease: the virtual IP on the interface is a leftover of
 * a dead one (rule 2), and goes first, before a leftover primary is stopped. */
static void remove_leftover_vip(const struct pgw_config *cfg)
{
	char addr[64];

	if (!cfg->vip.interface || pgw_vip_present(cfg->vip.interface, &cfg->vip.address) != 1)
		return;
	pgw_vip_format(&cfg->vip.address, addr, sizeof(addr));
	if (pgw_vip_del(cfg->vip.interface, &cfg->vip.address) != 0)
		pgw_error("vip: cannot remove the leftover %s from %s: %s", addr,
		          cfg->vip.interface, strerror(errno));
	else
		pgw_warn("vip: removed %s from %s: a leftover (this daemon holds no lease yet)",
		         addr, cfg->vip.interface);
}

static struct pgw_config *load_config(const char *path)
{
	char err[1024];
	struct pgw_config *cfg = pgw_config_load(path, err, sizeof(err));

	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	for (size_t i = 0; i < cfg->warnings.n; i++)
		pgw_warn("%s", cfg->warnings.items[i]);
	return cfg;
}

int main(int argc, char **argv)
{
	struct pgw_config *cfg;
	bool check_only = false;
	const char *path = NULL;
	struct pgw_wdguard *wd;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--check-config") == 0) {
			check_only = true;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("pgwarden %s\n", PGW_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--print-rules") == 0 ||
		           strcmp(argv[i], "--print-rules=dot") == 0) {
			pgw_print_rules(stdout, strchr(argv[i], '=') != NULL);
			if (!strchr(argv[i], '='))
				pgw_print_request_rules(stdout);
			return 0;
		} else if (strcmp(argv[i], "--list-watchdogs") == 0) {
			return pgw_wd_cmd_list(stdout);
		} else if (strncmp(argv[i], "--test-watchdog", 15) == 0) {
			return test_watchdog(argc, argv);
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' || path) {
			fprintf(stderr, "pgwarden: unexpected argument \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		} else {
			path = argv[i];
		}
	}
	if (!path) {
		usage(stderr);
		return 2;
	}
	cfg = load_config(path);
	if (!cfg)
		return 1;
	if (check_only) {
		check_vip_interface(cfg, true);
		printf("%s: configuration is valid\n", path);
		pgw_config_free(cfg);
		return 0;
	}
	pgw_log_set_ident(cfg->name);
	pgw_log_apply(&cfg->log);
	/* etcd3.srv: the endpoints come from DNS, once, at start */
	{
		char err[768];

		if (pgw_config_resolve_etcd_srv(cfg, err, sizeof(err)) != 0) {
			pgw_error("%s", err);
			pgw_config_free(cfg);
			return 1;
		}
	}
	remove_leftover_vip(cfg);
	/* a primary left running by a daemon that died is stopped before the device is
	 * opened: opening disables the watchdog its peers count on (simulator seed 61418) */
	if (cfg->watchdog.mode != PGW_WD_OFF && cfg->postgresql.data_dir &&
	    pgw_pg_stop_leftover_primary(cfg->postgresql.data_dir, 10000) != 0) {
		pgw_error("not starting: PostgreSQL may still be a primary and the watchdog would "
		          "be disarmed by opening it");
		pgw_config_free(cfg);
		return 1;
	}
	/* the audit chain's key is root's: read it now, keep it in memory only */
	if (cfg->fencing.audit_key_file) {
		char err[512];

		if (pgw_audit_read_key(cfg->fencing.audit_key_file, cfg->fencing.audit_key,
		                       &cfg->fencing.audit_key_len, err, sizeof(err)) != 0) {
			pgw_error("%s", err);
			pgw_config_free(cfg);
			return 1;
		}
	}
	/* the watchdog device is root's: open it first, keep the descriptor */
	wd = pgw_wdguard_open(cfg);
	check_vip_interface(cfg, false);
	if (limit_capabilities(cfg) != 0 || drop_privileges(cfg) != 0 ||
	    check_fencing_secret(cfg) != 0) {
		pgw_wdguard_close(wd, true);
		pgw_config_free(cfg);
		return 1;
	}
	/* the key in memory is out of the database user's reach only if processes of
	 * that user cannot read ours (/proc/PID/mem, ptrace): not dumpable */
	if (cfg->fencing.audit_key_len && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		pgw_warn("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
	/* before the signal handlers: the keeper starts with the default ones */
	pgw_wdguard_keep(wd);
	if (install_signals() != 0) {
		pgw_wdguard_close(wd, true);
		pgw_config_free(cfg);
		return 1;
	}
	/* log.dir: the writer thread starts after the keeper's fork and the privilege
	 * drop (the file is the run-time user's) */
	pgw_log_open_file(&cfg->log);
	rc = pgw_ha_run(cfg, wd, &stop_requested, &reload_requested);
	pgw_log_close_file();
	pgw_config_free(cfg);
	return rc;
}
