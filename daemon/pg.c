/*
 * pg.c - the PostgreSQL controller (see pg.h): child programs (initdb, pg_ctl,
 * pg_controldata, pg_basebackup, pg_rewind) run with fork/execve (spawn.c), bounded by a
 * timeout, their output captured; observation and SQL through one cached libpq
 * connection driven without blocking past a deadline; configuration files
 * written atomically.
 */
#include "pg.h"
#include "pgparam.h"
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sbuf.h"
#include "spawn.h"
#include "sdnotify.h"

extern char **environ;

#define DEFAULT_BIN_DIR            "/usr/lib/postgresql/15/bin"
#define DEFAULT_SUPERUSER          "postgres"
#define DEFAULT_REPLICATION        "replicator"
#define OUT_KEEP                   16384 /* bytes of a child's output kept */
#define TAIL_LINES                 20    /* lines of it quoted in errors */
#define TAIL_MAX                   1400  /* characters of it quoted in errors */
#define CONTROLDATA_TIMEOUT_MS     10000
#define RELOAD_TIMEOUT_MS          10000
#define CLONE_CONNECT_TIMEOUT      "10"
#define CONF_MARKER                "# Written by pgwarden"
#define MAX_RESULTS                4
#define KEEP_EVERY_MS              1000  /* how often pgw_pg_keep_fn is called */
#define PROMOTE_REQUEST_TIMEOUT_MS 10000 /* pg_ctl promote -W */
#define NOT_RUNNING_GRACE_MS       5000  /* no postmaster that long while waiting: it died */

struct pgw_pg {
	const struct pgw_config *cfg;
	const char *bin_dir;
	const char *data_dir;
	char *log_path;   /* <data_dir>.log */
	char *local_host; /* where to connect to the local server */
	int local_port;
	PGconn *conn; /* cached; NULL when not connected */
	char err[2048];
	bool warned_rewind_superuser; /* the warning of write_pgpass, once */
	/* pgw_pg_set_keep: called about once a second while a command or a query
	 * waits; false gives up a query's wait (a command goes on) */
	pgw_pg_keep_fn keep;
	void *keep_arg;
	/* synchronous_mode: synchronous_standby_names written last in postgresql.conf
	 * (over any parameter); NULL when pgwarden leaves it alone */
	char *sync_names;
	/* standby leader: standby_cluster's recovery settings (pgw_pg_set_standby) */
	bool has_standby;
	struct pgw_standby_cluster standby;
	/* permanent logical slots: wal_level = logical, hot_standby_feedback = on (last) */
	bool logical_slots;
	/* during a custom bootstrap (pgw_pg_custom_bootstrap until pgw_pg_bootstrap_done):
	 * the method's recovery settings (with recovery.signal), whether to keep the
	 * signal files the method left, and trust for the superuser from this host (the
	 * restored cluster may have another password until the roles are set) */
	const struct pgw_kvlist *boot_recovery;
	bool boot_keep_signals;
	bool boot_trust;
};

/* Flags of run_cmd(). */
enum { RUN_QUIET = 1 }; /* log the command at DEBUG and a failure at WARNING */

struct cmd_out {
	char buf[OUT_KEEP + 1];
	size_t len;
};

struct cmd_result {
	int status; /* exit code; -1 when killed, timed out or not started */
	bool timed_out;
	struct cmd_out out;
};

/* ---- small helpers ---------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > 1000000000 ? 1000000000 : (int)left;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* pg_ctl's -t: one second less than our own bound, so pg_ctl reports first. */
static int pgctl_seconds(int timeout_ms)
{
	int s = (timeout_ms - 1000) / 1000;

	return s < 1 ? 1 : s;
}

__attribute__((format(printf, 3, 4))) static void set_err(struct pgw_pg *pg, bool log,
                                                          const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pg->err, sizeof(pg->err), fmt, ap);
	va_end(ap);
	if (log)
		pgw_error("%s", pg->err);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static const char *su_name(const struct pgw_config *cfg)
{
	return cfg->postgresql.superuser.username ? cfg->postgresql.superuser.username
	                                          : DEFAULT_SUPERUSER;
}

static const char *repl_name(const struct pgw_config *cfg)
{
	return cfg->postgresql.replication.username ? cfg->postgresql.replication.username
	                                            : DEFAULT_REPLICATION;
}

/* The user pg_rewind connects as: the rewind user, else the superuser. */
static const char *rewind_name(const struct pgw_config *cfg)
{
	return cfg->postgresql.rewind.username ? cfg->postgresql.rewind.username : su_name(cfg);
}

/* "host:port" or "[v6]:port" -> malloc'd host and port; false when malformed. */
static bool split_hostport(const char *hp, char **host, int *port)
{
	const char *colon, *h = hp;
	size_t hlen;
	char *end;
	long p;

	colon = strrchr(hp, ':');
	if (!colon || colon == hp)
		return false;
	hlen = (size_t)(colon - hp);
	if (hp[0] == '[') {
		if (hlen < 3 || hp[hlen - 1] != ']')
			return false;
		h = hp + 1;
		hlen -= 2;
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
		return false;
	*host = strndup(h, hlen);
	*port = (int)p;
	return *host != NULL;
}

/* The address to reach a server listening on `listen` from this machine. */
static char *local_connect_host(const char *listen_host)
{
	size_t n = strcspn(listen_host, ",");

	if (n == 0 || !strncmp(listen_host, "0.0.0.0", n) || !strncmp(listen_host, "*", n) ||
	    !strncmp(listen_host, "::", n))
		return strdup("127.0.0.1");
	return strndup(listen_host, n);
}

const char *pgw_pg_config_dir(const struct pgw_config *cfg)
{
	return cfg->postgresql.config_dir ? cfg->postgresql.config_dir : cfg->postgresql.data_dir;
}

/* A parameter's value from the local file, else from bootstrap.dcs; NULL when unset. */
static const char *param_value(const struct pgw_config *cfg, const char *name)
{
	const struct pgw_kvlist *lists[] = {&cfg->postgresql.parameters, &cfg->dcs.pg_parameters};

	for (size_t l = 0; l < 2; l++)
		for (size_t i = 0; i < lists[l]->n; i++)
			if (lists[l]->items[i].name && !strcasecmp(lists[l]->items[i].name, name))
				return lists[l]->items[i].value;
	return NULL;
}

/*
 * postgresql.use_unix_socket, as Patroni: the first absolute directory in
 * unix_socket_directories ("" when the parameter is unset: libpq's default socket);
 * NULL when it names no absolute directory (relative ones are relative to the data
 * directory, '@' ones abstract): then TCP.
 */
char *pgw_pg_unix_socket_host(const struct pgw_config *cfg)
{
	const char *v = param_value(cfg, "unix_socket_directories");

	if (!v)
		return strdup("");
	while (*v) {
		size_t n = strcspn(v, ",");
		const char *s = v, *e = v + n;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e - s >= 2 && *s == '"' && e[-1] == '"') {
			s++;
			e--;
		}
		if (s < e && *s == '/' && !memchr(s, '"', (size_t)(e - s)))
			return strndup(s, (size_t)(e - s));
		v += n + (v[n] == ',');
	}
	return NULL;
}

static char *path_in(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static bool file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- files ------------------------------------------------------------------------ */

static int fsync_parent(const char *path)
{
	char *dir = strdup(path);
	char *slash;
	int fd, rc;

	if (!dir)
		return -1;
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Replace path with len bytes of data (mode `mode`): write "<path>.tmp", fsync, rename,
 * fsync dir. */
static int write_bytes_atomic(struct pgw_pg *pg, const char *path, const void *data, size_t len,
                              mode_t mode)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd, saved;

	if (!tmp)
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		goto fail;
	if (fchmod(fd, mode) < 0 || pgw_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0)
		goto fail;
	free(tmp);
	if (fsync_parent(path) < 0)
		pgw_warn("cannot fsync the directory of %s: %s", path, strerror(errno));
	return 0;
fail:
	saved = errno;
	set_err(pg, true, "cannot write %s: %s", path, strerror(saved));
	unlink(tmp);
	free(tmp);
	return -1;
}

static int write_file_atomic(struct pgw_pg *pg, const char *path, const char *text, mode_t mode)
{
	return write_bytes_atomic(pg, path, text, strlen(text), mode);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

/* rm -rf path (no error when it does not exist). */
static int remove_tree(struct pgw_pg *pg, const char *path)
{
	if (!file_exists(path))
		return 0;
	pgw_info("removing %s", path);
	if (nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS) != 0) {
		set_err(pg, true, "cannot remove %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- child programs --------------------------------------------------------------- */

/* The last TAIL_LINES lines of the output on one line, joined by " | ". */
static void out_tail(const struct cmd_out *o, char *dst, size_t dstlen)
{
	size_t end = o->len, start, j = 0;
	int lines = 0;

	while (end > 0 && (o->buf[end - 1] == '\n' || o->buf[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && !(o->buf[start - 1] == '\n' && ++lines >= TAIL_LINES))
		start--;
	if (end - start > TAIL_MAX)
		start = end - TAIL_MAX;
	for (size_t i = start; i < end && j + 4 < dstlen; i++) {
		if (o->buf[i] == '\n') {
			memcpy(dst + j, " | ", 3);
			j += 3;
		} else if (o->buf[i] != '\r') {
			dst[j++] = o->buf[i] == '\t' ? ' ' : o->buf[i];
		}
	}
	if (dstlen)
		dst[j < dstlen ? j : dstlen - 1] = '\0';
}

/* The command line for the log (arguments with blanks or quotes single-quoted). */
static void format_cmdline(char *const argv[], char *dst, size_t dstlen)
{
	size_t j = 0;

	dst[0] = '\0';
	for (int i = 0; argv[i] && j + 1 < dstlen; i++) {
		bool quote = argv[i][0] == '\0' || strpbrk(argv[i], " \t'\"\\") != NULL;
		int n =
		    snprintf(dst + j, dstlen - j, quote ? "%s'%s'" : "%s%s", i ? " " : "", argv[i]);

		if (n < 0)
			break;
		j += (size_t)n;
	}
}

/*
 * PG* and locale variables would change what the tools do; systemd's NOTIFY_SOCKET
 * and WATCHDOG_* are pgwarden's: PostgreSQL (built with systemd support) would send
 * its own READY=1 and STOPPING=1 to the socket otherwise.
 */
static bool env_dropped(const char *e)
{
	return !strncmp(e, "PG", 2) || !strncmp(e, "LC_", 3) || !strncmp(e, "LANG=", 5) ||
	       !strncmp(e, "LANGUAGE=", 9) || !strncmp(e, "NOTIFY_SOCKET=", 14) ||
	       !strncmp(e, "WATCHDOG_", 9) || !strncmp(e, "LISTEN_", 7);
}

/*
 * The environment of a child: ours without the variables env_dropped() names, plus
 * LC_ALL=C, PGPASSFILE and `extra` (may be NULL).  Built before fork.
 */
static char **build_env(const struct pgw_pg *pg, const char *extra)
{
	size_t n = 0, j = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 4, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!env_dropped(environ[i]))
			env[j++] = environ[i];
	env[j++] = "LC_ALL=C";
	env[j] = xasprintf("PGPASSFILE=%s", pg->cfg->postgresql.pgpass);
	if (!env[j]) {
		free(env);
		return NULL;
	}
	if (extra)
		env[j + 1] = (char *)extra;
	return env;
}

/* Free what build_env allocated: the array and its PGPASSFILE entry. */
static void free_env(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], "PGPASSFILE=", 11))
			free(env[i]);
	free(env);
}

/*
 * Called about once a second while a child runs: waiting for one (a clone, a rewind, a
 * shutdown) may outlast systemd's WatchdogSec, and the loop is busy, not stuck, so it
 * tells systemd so.  The hardware watchdog is not petted here (rule 3: only after
 * renewals) unless the caller set a keep function that renews (pgw_pg_set_keep).
 */
static void child_tick(void *arg)
{
	struct pgw_pg *pg = arg;

	pgw_sd_watchdog();
	if (pg->keep)
		(void)pg->keep(pg->keep_arg); /* a command under way is not cut short */
}

/* Collect output and wait for pid until deadline; kill its process group then. */
static void wait_child(struct pgw_pg *pg, pid_t pid, int fd, int64_t deadline,
                       struct cmd_result *res)
{
	struct pgw_child_wait w = {.deadline = deadline,
	                           .tick = child_tick,
	                           .tick_arg = pg,
	                           .out = res->out.buf,
	                           .out_size = sizeof(res->out.buf)};

	pgw_child_wait(pid, fd, &w);
	res->out.len = w.out_len;
	res->timed_out = w.timed_out;
	if (!w.timed_out && WIFEXITED(w.status))
		res->status = WEXITSTATUS(w.status);
}

/* Describe a failed command in pg->err and the log. */
static void report_failure(struct pgw_pg *pg, const char *cmdline, const struct cmd_result *res,
                           int timeout_ms, int flags)
{
	char tail[TAIL_MAX + 64];
	char how[64];

	out_tail(&res->out, tail, sizeof(tail));
	if (res->timed_out)
		snprintf(how, sizeof(how), "timed out after %d ms (killed)", timeout_ms);
	else if (res->status < 0)
		snprintf(how, sizeof(how), "was killed by a signal");
	else
		snprintf(how, sizeof(how), "exited with status %d", res->status);
	set_err(pg, false, "%s %s: %s", cmdline, how, tail[0] ? tail : "(no output)");
	if (flags & RUN_QUIET)
		pgw_warn("%s", pg->err);
	else
		pgw_error("%s", pg->err);
}

/*
 * Run argv (argv[0] a full path) with our environment rules, bounded by timeout_ms.
 * Returns 0 when it exited with status 0, -1 otherwise (logged, pg->err set).
 */
static int run_cmd(struct pgw_pg *pg, char *const argv[], const char *extra_env, int timeout_ms,
                   int flags, struct cmd_result *res)
{
	char cmdline[1024];
	int pfd[2], devnull;
	char **env;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	res->status = -1;
	format_cmdline(argv, cmdline, sizeof(cmdline));
	pgw_log(flags & RUN_QUIET ? PGW_DEBUG : PGW_INFO, "running %s", cmdline);
	env = build_env(pg, extra_env);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!env || devnull < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
		set_err(pg, true, "cannot run %s: %s", cmdline, strerror(errno));
		goto fail_setup;
	}
	pid = pgw_spawn(argv, env, devnull, pfd[1], -1);
	close(pfd[1]);
	if (pid < 0) {
		set_err(pg, true, "cannot fork for %s: %s", cmdline, strerror(errno));
		close(pfd[0]);
		goto fail_setup;
	}
	close(devnull);
	free_env(env);
	wait_child(pg, pid, pfd[0], now_ms() + timeout_ms, res);
	if (res->status == 0)
		return 0;
	report_failure(pg, cmdline, res, timeout_ms, flags);
	return -1;
fail_setup:
	if (devnull >= 0)
		close(devnull);
	free_env(env);
	return -1;
}

/* The full path of a PostgreSQL program (postgresql.bin_name may rename it). */
static char *bin(const struct pgw_pg *pg, const char *prog)
{
	const struct pgw_kvlist *names = &pg->cfg->postgresql.bin_name;

	for (size_t i = 0; i < names->n; i++)
		if (strcmp(names->items[i].name, prog) == 0)
			return path_in(pg->bin_dir, names->items[i].value);
	return path_in(pg->bin_dir, prog);
}

/* A command's program: an absolute path as it is, a bare name looked up in PATH. */
static char *find_program(const char *name)
{
	const char *path = getenv("PATH"), *p;

	if (strchr(name, '/'))
		return strdup(name);
	for (p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin"; p;) {
		const char *colon = strchr(p, ':');
		int n = colon ? (int)(colon - p) : (int)strlen(p);
		char *cand = xasprintf("%.*s/%s", n, p, name);

		if (cand && n > 0 && access(cand, X_OK) == 0)
			return cand;
		free(cand);
		p = colon ? colon + 1 : NULL;
	}
	return strdup(name); /* execve fails, and run_cmd says so */
}

/* ---- pg_controldata --------------------------------------------------------------- */

static enum pgw_cluster_state parse_cluster_state(const char *v)
{
	static const struct {
		const char *text;
		enum pgw_cluster_state state;
	} states[] = {
	    {"shut down", PGW_CS_SHUT_DOWN},
	    {"shut down in recovery", PGW_CS_SHUT_DOWN_IN_RECOVERY},
	    {"in production", PGW_CS_IN_PRODUCTION},
	    {"in archive recovery", PGW_CS_IN_ARCHIVE_RECOVERY},
	};

	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (!strcmp(v, states[i].text))
			return states[i].state;
	return v[0] ? PGW_CS_OTHER : PGW_CS_UNKNOWN;
}

static bool parse_u64(const char *v, uint64_t *out)
{
	char *end;

	if (!(*v >= '0' && *v <= '9'))
		return false;
	errno = 0;
	*out = strtoull(v, &end, 10);
	return errno == 0 && *end == '\0';
}

enum { CD_STATE = 1, CD_SYSID = 2, CD_TLI = 4, CD_CKPT = 8, CD_MINREC = 16 };

/* Apply one "key: value" line; returns the CD_* bit it set, 0 if none, -1 if malformed. */
static int controldata_line(const char *key, const char *v, struct pgw_controldata *cd)
{
	uint64_t u;

	if (!strcmp(key, "Database cluster state")) {
		cd->state = parse_cluster_state(v);
		return cd->state == PGW_CS_UNKNOWN ? -1 : CD_STATE;
	}
	if (!strcmp(key, "Database system identifier"))
		return parse_u64(v, &cd->system_identifier) ? CD_SYSID : -1;
	if (!strcmp(key, "Latest checkpoint's TimeLineID")) {
		if (!parse_u64(v, &u) || u == 0 || u > 0x7fffffff)
			return -1;
		cd->timeline = (int)u;
		return CD_TLI;
	}
	if (!strcmp(key, "Latest checkpoint location"))
		return pgw_lsn_parse(v, &cd->checkpoint_lsn) ? CD_CKPT : -1;
	if (!strcmp(key, "Minimum recovery ending location"))
		return pgw_lsn_parse(v, &cd->min_recovery_lsn) ? CD_MINREC : -1;
	return 0;
}

int pgw_pg_parse_controldata(const char *text, struct pgw_controldata *cd)
{
	const int needed = CD_STATE | CD_SYSID | CD_CKPT;
	int seen = 0;

	memset(cd, 0, sizeof(*cd));
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char line[256], *colon, *v, *e;
		int bit;

		if (n < sizeof(line)) {
			memcpy(line, p, n);
			line[n] = '\0';
			colon = strchr(line, ':');
			if (colon) {
				*colon = '\0';
				for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
					;
				for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\r');)
					*--e = '\0';
				bit = controldata_line(line, v, cd);
				if (bit < 0)
					return -1;
				seen |= bit;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	return (seen & needed) == needed ? 0 : -1;
}

static int controldata_run(struct pgw_pg *pg, int flags, int timeout_ms, struct pgw_controldata *cd)
{
	char *prog = bin(pg, "pg_controldata");
	char *argv[] = {prog, "-D", (char *)pg->data_dir, NULL};
	struct cmd_result *res = malloc(sizeof(*res));
	int rc = -1;

	if (!prog || !res)
		goto out;
	/* a read racing a control file update can fail its CRC check: read again */
	for (int attempt = 0; attempt < 3; attempt++) {
		if (attempt)
			sleep_ms(100);
		if (run_cmd(pg, argv, NULL, timeout_ms, flags, res) < 0)
			break;
		if (strstr(res->out.buf, "calculated CRC checksum does not match")) {
			set_err(pg, false, "pg_controldata -D %s: CRC mismatch", pg->data_dir);
			continue;
		}
		rc = pgw_pg_parse_controldata(res->out.buf, cd);
		if (rc < 0)
			set_err(pg, !(flags & RUN_QUIET), "pg_controldata -D %s: unexpected output",
			        pg->data_dir);
		break;
	}
out:
	free(res);
	free(prog);
	return rc;
}

int pgw_pg_controldata(struct pgw_pg *pg, struct pgw_controldata *cd)
{
	return controldata_run(pg, 0, CONTROLDATA_TIMEOUT_MS, cd);
}

/* ---- the local postmaster --------------------------------------------------------- */

/* The pid in postmaster.pid, 0 when there is none. */
static pid_t postmaster_pid(const struct pgw_pg *pg)
{
	char *path = path_in(pg->data_dir, "postmaster.pid");
	char line[32] = "";
	FILE *f = path ? fopen(path, "re") : NULL;
	long pid;
	char *end;

	free(path);
	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	pid = strtol(line, &end, 10);
	if (end == line || (*end != '\n' && *end != '\0') || pid <= 1)
		return 0;
	return (pid_t)pid;
}

/* Is pid a live (non-zombie) postgres process?  Like PostgreSQL, EPERM means no. */
static bool postmaster_alive(pid_t pid)
{
	char path[64], buf[512];
	ssize_t n;
	char *paren;
	int fd;

	if (kill(pid, 0) < 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true; /* no /proc: trust kill() */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	if (paren && (paren[2] == 'Z' || paren[2] == 'X'))
		return false;
	/* a stale postmaster.pid whose pid now names another program */
	return strncmp(buf + strcspn(buf, "(") + 1, "postgres)", 9) == 0 ||
	       strncmp(buf + strcspn(buf, "(") + 1, "postmaster)", 11) == 0;
}

static bool is_running(const struct pgw_pg *pg)
{
	pid_t pid = postmaster_pid(pg);

	return pid > 0 && postmaster_alive(pid);
}

pid_t pgw_pg_unmanaged_writer(const char *data_dir)
{
	struct pgw_pg probe = {.data_dir = data_dir};
	pid_t pid = data_dir ? postmaster_pid(&probe) : 0;
	char *standby, *promote;
	bool replica;

	if (pid <= 0 || !postmaster_alive(pid))
		return 0;
	standby = path_in(data_dir, "standby.signal");
	promote = path_in(data_dir, "promote");
	/* no allocation, no answer: assume the worst */
	replica = standby && promote && file_exists(standby) && !file_exists(promote);
	free(standby);
	free(promote);
	return replica ? 0 : pid;
}

int pgw_pg_stop_leftover_primary(const char *data_dir, int timeout_ms)
{
	pid_t pid = pgw_pg_unmanaged_writer(data_dir);
	int64_t deadline;
	struct timespec ts;

	if (pid == 0)
		return 0;
	pgw_warn("PostgreSQL (postmaster %ld) runs as a primary without a pgwarden: an earlier "
	         "daemon died.  Stopping it (immediate) before the watchdog is opened, since "
	         "opening it stops the reset the peers count on",
	         (long)pid);
	if (kill(pid, SIGQUIT) != 0) {
		pgw_error("cannot stop postmaster %ld: %s", (long)pid, strerror(errno));
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
	while (postmaster_alive(pid)) {
		struct timespec pause = {0, 50 * 1000000};

		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= deadline) {
			pgw_error("postmaster %ld still runs %d ms after SIGQUIT", (long)pid,
			          timeout_ms);
			return -1;
		}
		nanosleep(&pause, NULL);
	}
	pgw_info("the leftover primary stopped");
	return 0;
}

/*
 * What the data directory holds.  pg_controldata runs only when no postmaster
 * does: a running postmaster vouches for its directory, and the HA loop needs
 * the control file (state, timeline) only for a stopped server.
 */
static enum pgw_datadir_state datadir_state(struct pgw_pg *pg, struct pgw_pg_state *st,
                                            int timeout_ms)
{
	DIR *d = opendir(pg->data_dir);
	struct dirent *e;
	bool empty = true;
	char *ver;
	bool has_version;

	if (!d)
		return errno == ENOENT ? PGW_DATADIR_EMPTY : PGW_DATADIR_INVALID;
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	if (empty)
		return PGW_DATADIR_EMPTY;
	ver = path_in(pg->data_dir, "PG_VERSION");
	has_version = ver && file_exists(ver);
	free(ver);
	if (!has_version)
		return PGW_DATADIR_INVALID;
	if (st->running)
		return PGW_DATADIR_VALID;
	st->cd_valid = controldata_run(pg, RUN_QUIET, timeout_ms, &st->cd) == 0;
	return st->cd_valid ? PGW_DATADIR_VALID : PGW_DATADIR_INVALID;
}

/* ---- libpq ------------------------------------------------------------------------ */

static void notice_cb(void *arg, const char *message)
{
	(void)arg;
	pgw_debug("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

static void pq_drop(struct pgw_pg *pg)
{
	if (pg->conn)
		PQfinish(pg->conn);
	pg->conn = NULL;
}

/* Wait for the socket until the deadline; false on timeout or error. */
static bool pq_wait(PGconn *conn, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = PQsocket(conn), .events = events};
	int rc;

	if (pfd.fd < 0)
		return false;
	do {
		rc = poll(&pfd, 1, remaining_ms(deadline));
	} while (rc < 0 && errno == EINTR);
	return rc > 0;
}

static PGconn *pq_start(struct pgw_pg *pg, const char *dbname, int64_t deadline)
{
	char port[16], timeout[16], options[64];
	int left = remaining_ms(deadline);
	const char *kw[] = {"host",     "port",
	                    "user",     "dbname",
	                    "passfile", "connect_timeout",
	                    "options",  "application_name",
	                    NULL};
	const char *val[] = {
	    pg->local_host, port,    su_name(pg->cfg), dbname, pg->cfg->postgresql.pgpass,
	    timeout,        options, "pgwarden",       NULL};

	snprintf(port, sizeof(port), "%d", pg->local_port);
	snprintf(timeout, sizeof(timeout), "%d", left / 1000 + 1);
	snprintf(options, sizeof(options), "-c statement_timeout=%d", left > 0 ? left : 1);
	return PQconnectStartParams(kw, val, 0);
}

/* Connect to the local server's database dbname (non-blocking, bounded by deadline). */
static PGconn *pq_connect(struct pgw_pg *pg, const char *dbname, int64_t deadline)
{
	PGconn *conn = pq_start(pg, dbname, deadline);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (!conn || PQstatus(conn) == CONNECTION_BAD)
		goto fail;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED)
			goto fail;
		if (!pq_wait(conn, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline)) {
			set_err(pg, false, "connecting to %s:%d: timed out", pg->local_host,
			        pg->local_port);
			PQfinish(conn);
			return NULL;
		}
		st = PQconnectPoll(conn);
	}
	PQsetNoticeProcessor(conn, notice_cb, NULL);
	return conn;
fail:
	set_err(pg, false, "connecting to %s:%d: %.*s", pg->local_host, pg->local_port,
	        conn ? (int)strcspn(PQerrorMessage(conn), "\n") : 20,
	        conn ? PQerrorMessage(conn) : "out of memory");
	PQfinish(conn);
	return NULL;
}

static PGconn *pq_conn(struct pgw_pg *pg, int64_t deadline)
{
	if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
		return pg->conn;
	pq_drop(pg);
	pg->conn = pq_connect(pg, "postgres", deadline);
	return pg->conn;
}

/* Wait for the whole answer; up to maxres results in res[]. -1 (connection dropped)
 * on timeout or a broken connection. */
static int pq_collect(struct pgw_pg *pg, int64_t deadline, PGresult **res, int maxres)
{
	PGresult *r;
	int n = 0;

	for (;;) {
		while (PQisBusy(pg->conn)) {
			int64_t until = deadline;

			if (pg->keep && until > now_ms() + KEEP_EVERY_MS)
				until = now_ms() + KEEP_EVERY_MS;
			if (pq_wait(pg->conn, POLLIN, until)) {
				if (PQconsumeInput(pg->conn))
					continue;
			} else if (until < deadline && now_ms() >= until) { /* a slice ended */
				if (pg->keep(pg->keep_arg))
					continue;
				set_err(pg, false, "query on %s:%d: given up (%s)", pg->local_host,
				        pg->local_port, "the lease could not be kept");
				goto fail;
			}
			set_err(pg, false, "query on %s:%d: %s", pg->local_host, pg->local_port,
			        remaining_ms(deadline) ? "connection lost" : "timed out");
			goto fail;
		}
		r = PQgetResult(pg->conn);
		if (!r)
			return n;
		if (n < maxres)
			res[n++] = r;
		else
			PQclear(r);
	}
fail:
	while (n > 0)
		PQclear(res[--n]);
	pq_drop(pg);
	return -1;
}

/* Send sql (with params when nparams > 0) and collect its results. */
static int pq_roundtrip(struct pgw_pg *pg, const char *sql, int nparams, const char *const *params,
                        int64_t deadline, PGresult **res, int maxres)
{
	int ok;

	if (!pq_conn(pg, deadline))
		return -1;
	if (nparams > 0)
		ok = PQsendQueryParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	else
		ok = PQsendQuery(pg->conn, sql);
	if (!ok) {
		set_err(pg, false, "sending a query to %s:%d: %.*s", pg->local_host, pg->local_port,
		        (int)strcspn(PQerrorMessage(pg->conn), "\n"), PQerrorMessage(pg->conn));
		pq_drop(pg);
		return -1;
	}
	return pq_collect(pg, deadline, res, maxres);
}

/*
 * One statement whose result must have status `want`; NULL (logged as `what`)
 * otherwise.  The caller PQclear()s the result.
 */
static PGresult *pq_query(struct pgw_pg *pg, const char *what, const char *sql, int nparams,
                          const char *const *params, int64_t deadline, ExecStatusType want)
{
	PGresult *res[MAX_RESULTS];
	int n = pq_roundtrip(pg, sql, nparams, params, deadline, res, MAX_RESULTS);

	if (n < 0) {
		char cause[sizeof(pg->err)];

		memcpy(cause, pg->err, sizeof(cause));
		set_err(pg, true, "%s: %s", what, cause);
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		if (PQresultStatus(res[i]) != want) {
			const char *msg = PQresultErrorMessage(res[i]);

			set_err(pg, true, "%s: %.*s", what, (int)strcspn(msg, "\n"),
			        msg[0] ? msg : PQresStatus(PQresultStatus(res[i])));
			while (n > 0)
				PQclear(res[--n]);
			return NULL;
		}
	}
	while (n > 1)
		PQclear(res[--n]);
	return n == 1 ? res[0] : NULL;
}

/* Run commands (no rows expected; several statements allowed without params). */
static int pq_exec(struct pgw_pg *pg, const char *what, const char *sql, int nparams,
                   const char *const *params, int64_t deadline)
{
	PGresult *res = pq_query(pg, what, sql, nparams, params, deadline, PGRES_COMMAND_OK);

	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

static bool col_null(const PGresult *r, int c)
{
	return PQgetisnull(r, 0, c);
}

static bool col_bool(const PGresult *r, int c)
{
	return !col_null(r, c) && PQgetvalue(r, 0, c)[0] == 't';
}

static long long col_ll(const PGresult *r, int c)
{
	return col_null(r, c) ? 0 : strtoll(PQgetvalue(r, 0, c), NULL, 10);
}

static double col_double(const PGresult *r, int c)
{
	return col_null(r, c) ? 0 : strtod(PQgetvalue(r, 0, c), NULL);
}

static uint64_t col_lsn(const PGresult *r, int c)
{
	uint64_t lsn = 0;

	if (!col_null(r, c))
		pgw_lsn_parse(PQgetvalue(r, 0, c), &lsn);
	return lsn;
}

static void copy_str(char *dst, size_t dstlen, const char *src)
{
	snprintf(dst, dstlen, "%s", src ? src : "");
}

/* ---- observe ---------------------------------------------------------------------- */

/* One round trip: the state row, then pg_stat_replication. */
static const char OBSERVE_SQL[] =
    "SELECT r.rec,"
    " CASE WHEN r.rec THEN coalesce(w.received_tli,"
    "  (pg_catalog.pg_control_checkpoint()).timeline_id)"
    " ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name("
    "  pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END,"
    " (pg_catalog.pg_control_system()).system_identifier,"
    " pg_catalog.current_setting('server_version_num')::int,"
    " extract(epoch FROM pg_catalog.pg_postmaster_start_time()),"
    " CASE WHEN r.rec THEN NULL ELSE pg_catalog.pg_current_wal_lsn() END,"
    " pg_catalog.pg_last_wal_receive_lsn(),"
    " pg_catalog.pg_last_wal_replay_lsn(),"
    " extract(epoch FROM pg_catalog.pg_last_xact_replay_timestamp()),"
    " CASE WHEN r.rec THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END,"
    " w.status, w.sender_host, w.sender_port,"
    " pg_catalog.current_setting('primary_conninfo'),"
    " EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE pending_restart),"
    " CASE WHEN r.rec THEN NULL ELSE pg_catalog.pg_current_wal_flush_lsn() END,"
    " pg_catalog.current_setting('synchronous_standby_names')"
    " FROM (SELECT pg_catalog.pg_is_in_recovery() AS rec) r"
    " LEFT JOIN pg_catalog.pg_stat_wal_receiver w ON true;"
    "SELECT usename, application_name, client_addr::text, state, sync_state,"
    " sync_priority, flush_lsn FROM pg_catalog.pg_stat_replication"
    " ORDER BY application_name";

enum {
	OBS_REC,
	OBS_TLI,
	OBS_SYSID,
	OBS_VERSION,
	OBS_START,
	OBS_WAL,
	OBS_RECEIVED,
	OBS_REPLAYED,
	OBS_REPLAY_TS,
	OBS_PAUSED,
	OBS_WR_STATUS,
	OBS_WR_HOST,
	OBS_WR_PORT,
	OBS_CONNINFO,
	OBS_PENDING,
	OBS_FLUSH,
	OBS_SYNC_NAMES,
	OBS_NCOLS
};

/* host and port of primary_conninfo, when the WAL receiver does not say. */
static void conninfo_host(const char *conninfo, struct pgw_pg_state *st)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);

	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (!o->val)
			continue;
		if (!strcmp(o->keyword, "host"))
			copy_str(st->primary_host, sizeof(st->primary_host), o->val);
		else if (!strcmp(o->keyword, "port"))
			st->primary_port = atoi(o->val);
	}
	PQconninfoFree(opts);
}

static void fill_state(const PGresult *r, struct pgw_pg_state *st)
{
	st->in_recovery = col_bool(r, OBS_REC);
	st->timeline = (int)col_ll(r, OBS_TLI);
	st->system_identifier = (uint64_t)col_ll(r, OBS_SYSID);
	st->server_version = (int)col_ll(r, OBS_VERSION);
	st->postmaster_start_time = col_double(r, OBS_START);
	st->wal_lsn = col_lsn(r, OBS_WAL);
	st->received_lsn = col_lsn(r, OBS_RECEIVED);
	st->replayed_lsn = col_lsn(r, OBS_REPLAYED);
	st->replayed_timestamp = col_double(r, OBS_REPLAY_TS);
	st->replay_paused = col_bool(r, OBS_PAUSED);
	st->streaming =
	    !col_null(r, OBS_WR_STATUS) && !strcmp(PQgetvalue(r, 0, OBS_WR_STATUS), "streaming");
	if (!col_null(r, OBS_WR_HOST)) {
		copy_str(st->primary_host, sizeof(st->primary_host), PQgetvalue(r, 0, OBS_WR_HOST));
		st->primary_port = (int)col_ll(r, OBS_WR_PORT);
	} else if (st->in_recovery && !col_null(r, OBS_CONNINFO)) {
		conninfo_host(PQgetvalue(r, 0, OBS_CONNINFO), st);
	}
	st->pending_restart = col_bool(r, OBS_PENDING);
	st->flush_lsn = col_lsn(r, OBS_FLUSH);
	copy_str(st->sync_names, sizeof(st->sync_names),
	         col_null(r, OBS_SYNC_NAMES) ? "" : PQgetvalue(r, 0, OBS_SYNC_NAMES));
}

static void fill_replication(const PGresult *r, struct pgw_pg_state *st)
{
	int n = PQntuples(r);

	if (n > PGW_PG_MAX_REPLICATION)
		n = PGW_PG_MAX_REPLICATION;
	for (int i = 0; i < n; i++) {
		struct pgw_pg_replication *rep = &st->replication[i];

		copy_str(rep->usename, sizeof(rep->usename), PQgetvalue(r, i, 0));
		copy_str(rep->application_name, sizeof(rep->application_name), PQgetvalue(r, i, 1));
		copy_str(rep->client_addr, sizeof(rep->client_addr), PQgetvalue(r, i, 2));
		copy_str(rep->state, sizeof(rep->state), PQgetvalue(r, i, 3));
		copy_str(rep->sync_state, sizeof(rep->sync_state), PQgetvalue(r, i, 4));
		rep->sync_priority = atoi(PQgetvalue(r, i, 5));
		rep->flush_lsn = 0;
		if (!PQgetisnull(r, i, 6))
			pgw_lsn_parse(PQgetvalue(r, i, 6), &rep->flush_lsn);
	}
	st->nreplication = n;
}

static void observe_sql(struct pgw_pg *pg, int64_t deadline, struct pgw_pg_state *st)
{
	PGresult *res[MAX_RESULTS];
	bool cached = pg->conn != NULL;
	int n = pq_roundtrip(pg, OBSERVE_SQL, 0, NULL, deadline, res, MAX_RESULTS);

	/* the server may have restarted under a cached connection: once more, fresh */
	if (n < 0 && cached && remaining_ms(deadline) > 0)
		n = pq_roundtrip(pg, OBSERVE_SQL, 0, NULL, deadline, res, MAX_RESULTS);
	if (n < 0) {
		pgw_warn("observing PostgreSQL: %s", pg->err);
		return;
	}
	if (n == 2 && PQresultStatus(res[0]) == PGRES_TUPLES_OK && PQntuples(res[0]) == 1 &&
	    PQnfields(res[0]) == OBS_NCOLS && PQresultStatus(res[1]) == PGRES_TUPLES_OK) {
		fill_state(res[0], st);
		fill_replication(res[1], st);
		st->accepting = true;
	} else {
		const char *msg = n > 0 ? PQresultErrorMessage(res[n - 1]) : "";

		set_err(pg, false, "observing PostgreSQL: %.*s", (int)strcspn(msg, "\n"),
		        msg[0] ? msg : "unexpected answer");
		pgw_warn("%s", pg->err);
	}
	while (n > 0)
		PQclear(res[--n]);
}

void pgw_pg_observe(struct pgw_pg *pg, int timeout_ms, struct pgw_pg_state *st)
{
	int64_t deadline = now_ms() + timeout_ms;

	memset(st, 0, sizeof(*st));
	st->running = is_running(pg);
	st->datadir = datadir_state(pg, st, timeout_ms > 100 ? timeout_ms / 2 : 50);
	if (!st->running) {
		pq_drop(pg);
		return;
	}
	observe_sql(pg, deadline, st);
}

/* ---- configuration files ---------------------------------------------------------- */

struct conf_item {
	const char *name;
	const char *value;
};

struct conf_list {
	struct conf_item *items;
	size_t n, cap;
};

/* Names pgwarden alone sets: parameters with these names are ignored. */
static bool conf_protected(const char *name)
{
	static const char *const names[] = {"listen_addresses",  "port",
	                                    "hba_file",          "ident_file",
	                                    "config_file",       "primary_conninfo",
	                                    "primary_slot_name", "recovery_target_timeline"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(name, names[i]))
			return true;
	return false;
}

static bool conf_name_ok(const char *name)
{
	return name && pgw_param_name_ok(name, strlen(name));
}

/* Set name (case-insensitively once, at its first place) to value. */
static int conf_set(struct conf_list *l, const char *name, const char *value)
{
	for (size_t i = 0; i < l->n; i++) {
		if (!strcasecmp(l->items[i].name, name)) {
			l->items[i].value = value;
			return 0;
		}
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct conf_item *items = realloc(l->items, cap * sizeof(*items));

		if (!items)
			return -1;
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = (struct conf_item){name, value};
	return 0;
}

static int conf_merge(struct conf_list *l, const struct pgw_kvlist *kv, const char *origin,
                      bool from_dcs, char *err, size_t errlen)
{
	for (size_t i = 0; kv && i < kv->n; i++) {
		const struct pgw_kv *p = &kv->items[i];

		if (!conf_name_ok(p->name) || !p->value) {
			snprintf(err, errlen, "%s: invalid parameter name \"%s\"", origin,
			         p->name ? p->name : "(null)");
			return -1;
		}
		if (from_dcs && pgw_param_local_only(p->name)) {
			snprintf(err, errlen, "%s: %s: taken from the local file only", origin,
			         p->name);
			return -1;
		}
		if (conf_protected(p->name))
			continue;
		if (conf_set(l, p->name, p->value) < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* Append 'value' quoted for postgresql.conf; false when it cannot be written. */
static bool quote_guc(struct pgw_sb *b, const char *value)
{
	if (!pgw_param_value_ok(value, strlen(value)))
		return false;
	pgw_sb_add(b, "'");
	for (const char *p = value; *p; p++) {
		if (*p == '\'')
			pgw_sb_add(b, "''");
		else if (*p == '\\')
			pgw_sb_add(b, "\\\\");
		else
			pgw_sb_addn(b, p, 1);
	}
	pgw_sb_add(b, "'");
	return true;
}

/* Append " key=value" to a libpq connection string, quoting the value as needed. */
static void conninfo_add(struct pgw_sb *b, const char *key, const char *value)
{
	bool quote = value[0] == '\0' || strpbrk(value, " \t\n\\'") != NULL;

	pgw_sb_addf(b, "%s%s=", b->len ? " " : "", key);
	if (quote)
		pgw_sb_add(b, "'");
	for (const char *p = value; *p; p++) {
		if (*p == '\'' || *p == '\\')
			pgw_sb_add(b, "\\");
		pgw_sb_addn(b, p, 1);
	}
	if (quote)
		pgw_sb_add(b, "'");
}

/* libpq's TLS keywords for a connection to the leader as this user (sslmode prefer). */
static void conninfo_tls(struct pgw_sb *b, const struct pgw_auth *a)
{
	conninfo_add(b, "sslmode", a->sslmode ? a->sslmode : "prefer");
	if (a->sslrootcert)
		conninfo_add(b, "sslrootcert", a->sslrootcert);
	if (a->sslcert)
		conninfo_add(b, "sslcert", a->sslcert);
	if (a->sslkey)
		conninfo_add(b, "sslkey", a->sslkey);
}

/* The settings pg_rewind logs in with: its own user, or the superuser's. */
static const struct pgw_auth *rewind_auth(const struct pgw_config *cfg)
{
	return cfg->postgresql.rewind.username ? &cfg->postgresql.rewind
	                                       : &cfg->postgresql.superuser;
}

static char *primary_conninfo(const struct pgw_config *cfg, const char *host, int port)
{
	struct pgw_sb b = {0};
	char portstr[16];

	snprintf(portstr, sizeof(portstr), "%d", port);
	conninfo_add(&b, "host", host);
	conninfo_add(&b, "port", portstr);
	conninfo_add(&b, "user", repl_name(cfg));
	conninfo_add(&b, "passfile", cfg->postgresql.pgpass ? cfg->postgresql.pgpass : "");
	conninfo_add(&b, "application_name", cfg->name ? cfg->name : "pgwarden");
	conninfo_tls(&b, &cfg->postgresql.replication);
	return pgw_sb_take(&b);
}

/* The managed defaults; strings in *owned are freed by the caller. */
static int conf_defaults(const struct pgw_config *cfg, struct conf_list *l, char **owned, char *err,
                         size_t errlen)
{
	const char *listen = cfg->postgresql.listen ? cfg->postgresql.listen : "127.0.0.1:5432";
	char *host = NULL;
	int port, rc = 0;

	if (!split_hostport(listen, &host, &port)) {
		snprintf(err, errlen, "postgresql.listen: expected host:port, got \"%s\"", listen);
		return -1;
	}
	owned[0] = host;
	owned[1] = xasprintf("%d", port);
	owned[2] = xasprintf("%s/pg_hba.conf", pgw_pg_config_dir(cfg));
	owned[3] = xasprintf("%s/pg_ident.conf", pgw_pg_config_dir(cfg));
	if (!owned[1] || !owned[2] || !owned[3])
		rc = -1;
	rc |= conf_set(l, "listen_addresses", host);
	rc |= conf_set(l, "port", owned[1] ? owned[1] : "");
	rc |= conf_set(l, "hba_file", owned[2] ? owned[2] : "");
	/* postgresql.config_dir: pg_ident.conf there too (data_dir: initdb's place) */
	rc |= conf_set(l, "ident_file", owned[3] ? owned[3] : "");
	rc |= conf_set(l, "wal_level", "replica");
	rc |= conf_set(l, "hot_standby", "on");
	rc |= conf_set(l, "wal_log_hints", "on");
	rc |= conf_set(l, "max_wal_senders", "10");
	rc |= conf_set(l, "max_replication_slots", "10");
	rc |= conf_set(l, "wal_keep_size", "128MB");
	rc |= conf_set(l, "max_connections", "100");
	if (rc)
		snprintf(err, errlen, "out of memory");
	return rc ? -1 : 0;
}

static bool conf_emit(struct pgw_sb *b, const char *name, const char *value, char *err,
                      size_t errlen)
{
	pgw_sb_addf(b, "%s = ", name);
	if (!quote_guc(b, value)) {
		snprintf(err, errlen, "parameter %s: the value contains a line break", name);
		return false;
	}
	pgw_sb_add(b, "\n");
	return true;
}

/* postgresql.recovery_conf on a standby (restore_command, ...), but not what pgwarden sets. */
static bool conf_emit_recovery(struct pgw_sb *b, const struct pgw_kvlist *kv, char *err,
                               size_t errlen)
{
	bool ok = true;

	for (size_t i = 0; ok && i < kv->n; i++)
		if (!conf_protected(kv->items[i].name))
			ok = conf_emit(b, kv->items[i].name, kv->items[i].value, err, errlen);
	return ok;
}

static bool conf_emit_standby(struct pgw_sb *b, const struct pgw_config *cfg,
                              const char *primary_host, int primary_port, const char *slot,
                              char *err, size_t errlen)
{
	char *ci;
	bool ok;

	if (!primary_host[0]) {
		/* a standby with nobody to follow yet: replays what it has, waits */
		pgw_sb_add(b, "\n# standby without a primary to follow\n");
		return conf_emit(b, "recovery_target_timeline", "latest", err, errlen) &&
		       conf_emit_recovery(b, &cfg->postgresql.recovery_conf, err, errlen);
	}
	ci = primary_conninfo(cfg, primary_host, primary_port);
	ok = ci != NULL;
	pgw_sb_add(b, "\n# standby of ");
	pgw_sb_add(b, primary_host);
	pgw_sb_addf(b, ":%d\n", primary_port);
	ok = ok && conf_emit(b, "primary_conninfo", ci, err, errlen);
	if (ok && slot && slot[0])
		ok = conf_emit(b, "primary_slot_name", slot, err, errlen);
	ok = ok && conf_emit(b, "recovery_target_timeline", "latest", err, errlen);
	ok = ok && conf_emit_recovery(b, &cfg->postgresql.recovery_conf, err, errlen);
	free(ci);
	return ok;
}

char *pgw_pg_render_conf(const struct pgw_config *cfg, const struct pgw_kvlist *dcs_params,
                         const char *primary_host, int primary_port, const char *slot, char *err,
                         size_t errlen)
{
	struct conf_list l = {0};
	char *owned[4] = {NULL, NULL, NULL, NULL};
	struct pgw_sb b = {0};
	bool ok;

	ok = conf_defaults(cfg, &l, owned, err, errlen) == 0 &&
	     conf_merge(&l, dcs_params, "dcs postgresql.parameters", true, err, errlen) == 0 &&
	     conf_merge(&l, &cfg->postgresql.parameters, "postgresql.parameters", false, err,
	                errlen) == 0;
	if (ok) {
		pgw_sb_add(&b, CONF_MARKER
		           ": every change here is overwritten; set parameters\n"
		           "# in pgwarden's configuration.  initdb's settings are in the include.\n"
		           "include ");
		if (!quote_guc(&b, cfg->postgresql.custom_conf ? cfg->postgresql.custom_conf
		                                               : "postgresql.base.conf")) {
			snprintf(err, errlen, "postgresql.custom_conf: cannot be written safely");
			ok = false;
		}
		pgw_sb_add(&b, "\n\n");
		for (size_t i = 0; ok && i < l.n; i++)
			ok = conf_emit(&b, l.items[i].name, l.items[i].value, err, errlen);
	}
	if (ok && primary_host)
		ok = conf_emit_standby(&b, cfg, primary_host, primary_port, slot, err, errlen);
	free(l.items);
	for (size_t i = 0; i < 4; i++)
		free(owned[i]);
	if (ok && b.oom)
		snprintf(err, errlen, "out of memory");
	if (!ok || b.oom) {
		pgw_sb_free(&b);
		return NULL;
	}
	return pgw_sb_take(&b);
}

static char *render_hba(struct pgw_pg *pg)
{
	const struct pgw_strlist *lines =
	    pg->cfg->postgresql.pg_hba.n ? &pg->cfg->postgresql.pg_hba : &pg->cfg->bootstrap.pg_hba;
	struct pgw_sb b = {0};

	pgw_sb_add(&b, CONF_MARKER ": every change here is overwritten.\n");
	if (pg->boot_trust && !strpbrk(su_name(pg->cfg), " \t\n\r\"")) {
		/* custom bootstrap: the restored cluster's superuser may have another password
		 * until pgw_pg_bootstrap_roles sets ours; pgw_pg_bootstrap_done removes this */
		pgw_sb_add(&b, "# until the end of the custom bootstrap\nhost all \"");
		pgw_sb_add(&b, su_name(pg->cfg));
		pgw_sb_add(&b, "\" samehost trust\n");
	}
	if (lines->n == 0) {
		/* peer, not trust: a local OS user is not a superuser (issue 11, item 14);
		 * pgwarden itself connects over TCP with its password */
		pgw_sb_add(&b, "local all all peer\n"
		               "host all all 127.0.0.1/32 scram-sha-256\n"
		               "host replication all 127.0.0.1/32 scram-sha-256\n");
		return pgw_sb_take(&b);
	}
	for (size_t i = 0; i < lines->n; i++) {
		if (strpbrk(lines->items[i], "\n\r")) {
			set_err(pg, true, "pg_hba: line %zu contains a line break", i + 1);
			pgw_sb_free(&b);
			return NULL;
		}
		pgw_sb_add(&b, lines->items[i]);
		pgw_sb_add(&b, "\n");
	}
	return pgw_sb_take(&b);
}

/* A pgpass field: ':' and '\' escaped. */
static void pgpass_field(struct pgw_sb *b, const char *s)
{
	for (; *s; s++) {
		if (*s == ':' || *s == '\\')
			pgw_sb_add(b, "\\");
		pgw_sb_addn(b, s, 1);
	}
}

/* A line for host:port only (the leader's address comes from etcd: no wildcard). */
static void pgpass_line(struct pgw_sb *b, const char *host, int port, const char *user,
                        const struct pgw_auth *auth)
{
	if (!auth->password || strpbrk(auth->password, "\n\r") || strpbrk(user, "\n\r") ||
	    strpbrk(host, "\n\r"))
		return;
	pgpass_field(b, host);
	pgw_sb_addf(b, ":%d:*:", port);
	pgpass_field(b, user);
	pgw_sb_add(b, ":");
	pgpass_field(b, auth->password);
	pgw_sb_add(b, "\n");
}

/*
 * The password file: the superuser for this node's own server, and the replication
 * and rewind users for the leader at leader_host:leader_port (NULL on a primary: no
 * such line), the one server this node is about to connect to, so that a password
 * goes to no other host.
 */
static int write_pgpass(struct pgw_pg *pg, const char *leader_host, int leader_port)
{
	const struct pgw_config *cfg = pg->cfg;
	struct pgw_sb b = {0};
	char *text;
	int rc;

	/* a connection through a unix socket matches the host field "localhost" (libpq) */
	pgpass_line(&b,
	            !pg->local_host                                  ? "127.0.0.1"
	            : pg->local_host[0] == '/' || !pg->local_host[0] ? "localhost"
	                                                             : pg->local_host,
	            pg->local_port, su_name(cfg), &cfg->postgresql.superuser);
	if (leader_host) {
		pgpass_line(&b, leader_host, leader_port, repl_name(cfg),
		            &cfg->postgresql.replication);
		/* pg_rewind logs in as the rewind user, or else as the superuser: said
		 * once, loudly */
		if (cfg->postgresql.rewind.username) {
			pgpass_line(&b, leader_host, leader_port, rewind_name(cfg),
			            &cfg->postgresql.rewind);
		} else {
			pgpass_line(&b, leader_host, leader_port, su_name(cfg),
			            &cfg->postgresql.superuser);
			if (!pg->warned_rewind_superuser)
				pgw_warn(
				    "postgresql.authentication.rewind is not set: pg_rewind "
				    "logs in to the leader as the superuser, so the "
				    "superuser's password goes to any host the leader's member "
				    "key names; set a rewind user");
			pg->warned_rewind_superuser = true;
		}
	}
	text = pgw_sb_take(&b);
	if (!text) {
		set_err(pg, true, "writing %s: out of memory", cfg->postgresql.pgpass);
		return -1;
	}
	rc = write_file_atomic(pg, cfg->postgresql.pgpass, text, 0600);
	free(text);
	return rc;
}

/* Does path begin with our marker (a postgresql.conf we wrote)? */
static bool written_by_us(const char *path)
{
	char head[sizeof(CONF_MARKER)] = "";
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return false;
	n = fread(head, 1, sizeof(head) - 1, f);
	fclose(f);
	head[n] = '\0';
	return !strcmp(head, CONF_MARKER);
}

/* The text of a (small) file; NULL when it cannot be read. */
static char *read_small_file(const char *path)
{
	struct pgw_sb b = {0};
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "re");

	if (!f)
		return NULL;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && b.len < 1024 * 1024)
		pgw_sb_addn(&b, buf, n);
	fclose(f);
	return pgw_sb_take(&b);
}

/*
 * postgresql.config_dir: initdb's settings copied to <config_dir>/postgresql.base.conf
 * once, from the data directory (where initdb or pg_basebackup put them): its
 * postgresql.base.conf when the node ran without config_dir before, else its
 * postgresql.conf unless pgwarden wrote it.  The data directory's files stay (postgres
 * reads config_file, never them).
 */
static int copy_base_conf(struct pgw_pg *pg, const char *base)
{
	char *old = path_in(pg->data_dir, "postgresql.base.conf");
	char *src = old && file_exists(old) ? old : path_in(pg->data_dir, "postgresql.conf");
	char *text = NULL;
	int rc;

	if (src && file_exists(src) && !written_by_us(src))
		text = read_small_file(src);
	if (text)
		pgw_info("keeping %s as %s", src, base);
	rc =
	    write_file_atomic(pg, base, text ? text : "# no settings of initdb were found\n", 0600);
	free(text);
	if (src != old)
		free(src);
	free(old);
	return rc;
}

/* Keep initdb's postgresql.conf as postgresql.base.conf (once). */
static int ensure_base_conf(struct pgw_pg *pg, const char *conf, const char *base)
{
	if (file_exists(base))
		return 0;
	if (pg->cfg->postgresql.config_dir)
		return copy_base_conf(pg, base);
	if (file_exists(conf) && !written_by_us(conf)) {
		pgw_info("keeping %s as %s", conf, base);
		if (rename(conf, base) < 0) {
			set_err(pg, true, "cannot rename %s to %s: %s", conf, base,
			        strerror(errno));
			return -1;
		}
		fsync_parent(base);
		return 0;
	}
	return write_file_atomic(pg, base, "# no settings of initdb were found\n", 0600);
}

static int write_postgresql_conf(struct pgw_pg *pg, const struct pgw_kvlist *dcs_params,
                                 const char *primary_host, int primary_port, const char *slot)
{
	char *conf = path_in(pgw_pg_config_dir(pg->cfg), "postgresql.conf");
	char *base = path_in(pgw_pg_config_dir(pg->cfg), "postgresql.base.conf");
	char err[512] = "";
	char *text = NULL;
	int rc = -1;

	if (!conf || !base || ensure_base_conf(pg, conf, base) < 0)
		goto out;
	text = pgw_pg_render_conf(pg->cfg, dcs_params, primary_host, primary_port, slot, err,
	                          sizeof(err));
	if (text && pg->sync_names) {
		struct pgw_sb b = {0};

		pgw_sb_add(&b, text);
		pgw_sb_add(&b, "# synchronous_mode: the standbys the leader waits for\n");
		free(text);
		text = NULL;
		if (conf_emit(&b, "synchronous_standby_names", pg->sync_names, err, sizeof(err)))
			text = pgw_sb_take(&b);
		else
			pgw_sb_free(&b);
	}
	if (text && primary_host && pg->has_standby) {
		const struct pgw_standby_cluster *sc = &pg->standby;
		struct pgw_sb b = {0};
		bool ok = true;

		/* after postgresql.recovery_conf: the last setting wins */
		pgw_sb_add(&b, text);
		pgw_sb_add(&b, "\n# standby leader of a standby cluster (standby_cluster)\n");
		free(text);
		if (sc->restore_command[0])
			ok =
			    conf_emit(&b, "restore_command", sc->restore_command, err, sizeof(err));
		if (ok && sc->archive_cleanup_command[0])
			ok = conf_emit(&b, "archive_cleanup_command", sc->archive_cleanup_command,
			               err, sizeof(err));
		if (ok && sc->recovery_min_apply_delay[0])
			ok = conf_emit(&b, "recovery_min_apply_delay", sc->recovery_min_apply_delay,
			               err, sizeof(err));
		text = ok && !b.oom ? pgw_sb_take(&b) : NULL;
		if (!text)
			pgw_sb_free(&b);
	}
	if (text && pg->boot_recovery) {
		struct pgw_sb b = {0};
		bool ok = true;

		pgw_sb_add(&b, text);
		pgw_sb_add(&b, "\n# the custom bootstrap's recovery_conf (until it ends)\n");
		free(text);
		for (size_t i = 0; ok && i < pg->boot_recovery->n; i++)
			ok = conf_emit(&b, pg->boot_recovery->items[i].name,
			               pg->boot_recovery->items[i].value, err, sizeof(err));
		text = ok ? pgw_sb_take(&b) : NULL;
		if (!ok)
			pgw_sb_free(&b);
	}
	if (text && pg->logical_slots) {
		struct pgw_sb b = {0};

		pgw_sb_add(&b, text);
		pgw_sb_add(&b, "# permanent logical slots (slots): decoding on the primary, the\n"
		               "# standbys' copies kept usable by their feedback\n"
		               "wal_level = 'logical'\nhot_standby_feedback = 'on'\n");
		free(text);
		text = b.oom ? NULL : pgw_sb_take(&b);
		if (!text) {
			pgw_sb_free(&b);
			snprintf(err, sizeof(err), "out of memory");
		}
	}
	if (!text) {
		set_err(pg, true, "cannot write %s: %s", conf, err);
		goto out;
	}
	rc = write_file_atomic(pg, conf, text, 0600);
out:
	free(text);
	free(conf);
	free(base);
	return rc;
}

static int write_hba(struct pgw_pg *pg)
{
	char *path = path_in(pgw_pg_config_dir(pg->cfg), "pg_hba.conf");
	char *text = render_hba(pg);
	int rc = -1;

	if (path && text)
		rc = write_file_atomic(pg, path, text, 0600);
	free(path);
	free(text);
	return rc;
}

/* postgresql.pg_ident: pg_ident.conf (initdb's file stays when it is not set; in
 * config_dir, one without maps is written once). */
static int write_ident(struct pgw_pg *pg)
{
	const struct pgw_strlist *lines = &pg->cfg->postgresql.pg_ident;
	struct pgw_sb b = {0};
	char *path, *text;
	int rc = -1;

	if (lines->n == 0 && !pg->cfg->postgresql.config_dir)
		return 0;
	pgw_sb_add(&b, CONF_MARKER ": every change here is overwritten.\n");
	for (size_t i = 0; i < lines->n; i++) {
		pgw_sb_add(&b, lines->items[i]);
		pgw_sb_add(&b, "\n");
	}
	text = pgw_sb_take(&b);
	path = path_in(pgw_pg_config_dir(pg->cfg), "pg_ident.conf");
	if (lines->n == 0 && path && file_exists(path))
		rc = 0; /* config_dir without postgresql.pg_ident: the operator's file stays */
	else if (text && path)
		rc = write_file_atomic(pg, path, text, 0600);
	free(text);
	free(path);
	return rc;
}

/* name in the data directory: created (empty) or removed. */
static int set_signal(struct pgw_pg *pg, const char *name, bool present)
{
	char *path = path_in(pg->data_dir, name);
	int rc = 0;

	if (!path)
		return -1;
	if (present) {
		rc = write_file_atomic(pg, path, "", 0600);
	} else if (unlink(path) < 0 && errno != ENOENT) {
		set_err(pg, true, "cannot remove %s: %s", path, strerror(errno));
		rc = -1;
	} else {
		fsync_parent(path);
	}
	free(path);
	return rc;
}

/*
 * standby.signal on a standby; recovery.signal only while a custom bootstrap
 * recovers (its recovery_conf); both left alone while a custom bootstrap keeps
 * what its method wrote (keep_existing_recovery_conf).
 */
static int set_signals(struct pgw_pg *pg, bool standby)
{
	if (pg->boot_keep_signals && !standby)
		return 0;
	return set_signal(pg, "standby.signal", standby) ||
	       set_signal(pg, "recovery.signal", !standby && pg->boot_recovery != NULL);
}

static void warn_protected(const struct pgw_kvlist *kv, const char *origin)
{
	for (size_t i = 0; kv && i < kv->n; i++)
		if (kv->items[i].name && conf_protected(kv->items[i].name))
			pgw_warn("%s: %s is managed by pgwarden, ignored", origin,
			         kv->items[i].name);
}

int pgw_pg_write_config(struct pgw_pg *pg, const struct pgw_kvlist *dcs_params,
                        const char *primary_host, int primary_port, const char *slot)
{
	struct stat st;

	if (stat(pg->data_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		set_err(pg, true, "cannot write the configuration: %s is not a directory",
		        pg->data_dir);
		return -1;
	}
	if (pg->cfg->postgresql.config_dir && mkdir(pg->cfg->postgresql.config_dir, 0700) != 0 &&
	    errno != EEXIST) {
		set_err(pg, true, "cannot create postgresql.config_dir %s: %s",
		        pg->cfg->postgresql.config_dir, strerror(errno));
		return -1;
	}
	warn_protected(dcs_params, "dcs postgresql.parameters");
	warn_protected(&pg->cfg->postgresql.parameters, "postgresql.parameters");
	if (write_postgresql_conf(pg, dcs_params, primary_host, primary_port, slot) < 0 ||
	    write_hba(pg) < 0 || write_ident(pg) < 0 || set_signals(pg, primary_host != NULL) < 0 ||
	    write_pgpass(pg, primary_host, primary_port) < 0)
		return -1;
	if (primary_host)
		pgw_info("configured %s as a standby of %s:%d (slot %s)", pg->data_dir,
		         primary_host, primary_port, slot && slot[0] ? slot : "none");
	else
		pgw_info("configured %s as a primary", pg->data_dir);
	return 0;
}

/* ---- lifecycle -------------------------------------------------------------------- */

struct pgw_pg *pgw_pg_new(const struct pgw_config *cfg)
{
	const char *listen = cfg->postgresql.listen ? cfg->postgresql.listen : "127.0.0.1:5432";
	struct pgw_pg *pg;
	char *host = NULL;
	int port = 0;

	if (!cfg->postgresql.data_dir || !cfg->postgresql.pgpass) {
		pgw_error("PostgreSQL controller: postgresql.data_dir and postgresql.pgpass "
		          "must be set");
		return NULL;
	}
	if (!split_hostport(listen, &host, &port)) {
		pgw_error("PostgreSQL controller: postgresql.listen: expected host:port, "
		          "got \"%s\"",
		          listen);
		return NULL;
	}
	pg = calloc(1, sizeof(*pg));
	if (pg) {
		pg->cfg = cfg;
		pg->bin_dir = cfg->postgresql.bin_dir ? cfg->postgresql.bin_dir : DEFAULT_BIN_DIR;
		pg->data_dir = cfg->postgresql.data_dir;
		pg->log_path = xasprintf("%s.log", cfg->postgresql.data_dir);
		pg->local_host = NULL;
		if (cfg->postgresql.use_unix_socket) {
			pg->local_host = pgw_pg_unix_socket_host(cfg);
			if (!pg->local_host)
				pgw_warn(
				    "postgresql.use_unix_socket: unix_socket_directories names "
				    "no absolute directory; connecting over TCP");
		}
		if (!pg->local_host)
			pg->local_host = local_connect_host(host);
		pg->local_port = port;
	}
	free(host);
	if (pg && (!pg->log_path || !pg->local_host)) {
		pgw_pg_free(pg);
		pg = NULL;
	}
	if (!pg)
		pgw_error("PostgreSQL controller: out of memory");
	return pg;
}

void pgw_pg_set_config(struct pgw_pg *pg, const struct pgw_config *cfg)
{
	pg->cfg = cfg;
}

void pgw_pg_free(struct pgw_pg *pg)
{
	if (!pg)
		return;
	pq_drop(pg);
	free(pg->log_path);
	free(pg->local_host);
	free(pg->sync_names);
	free(pg);
}

const char *pgw_pg_last_error(const struct pgw_pg *pg)
{
	return pg->err;
}

/* A temporary file holding the superuser password for initdb; NULL when unset. */
static char *make_pwfile(struct pgw_pg *pg)
{
	const char *pw = pg->cfg->postgresql.superuser.password;
	char *path;
	int fd;

	if (!pw)
		return NULL;
	path = xasprintf("%s.pwfile.XXXXXX", pg->data_dir);
	if (!path)
		return NULL;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0 || pgw_write_all(fd, pw, strlen(pw)) < 0 || pgw_write_all(fd, "\n", 1) < 0) {
		set_err(pg, true, "cannot write a password file next to %s: %s", pg->data_dir,
		        strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		free(path);
		return NULL;
	}
	close(fd);
	return path;
}

/*
 * mkdir -p the directory that holds data_dir (mode 0700 for what we create): a
 * fresh package install has /var/lib/postgresql but maybe not .../15.  0 or -1.
 */
static int make_parent(struct pgw_pg *pg)
{
	char *path = xasprintf("%s", pg->data_dir), *p;
	int rc = 0;

	if (!path)
		return -1;
	p = strrchr(path, '/');
	if (p && p != path) {
		*p = '\0'; /* path is now the parent; create it one component at a time */
		for (p = path + 1; rc == 0; p++) {
			char c = *p;

			if (c != '/' && c != '\0')
				continue;
			*p = '\0';
			if (mkdir(path, 0700) != 0 && errno != EEXIST)
				rc = -1;
			*p = c;
			if (c == '\0')
				break;
		}
		if (rc != 0)
			set_err(pg, true,
			        "cannot create %s (the directory of postgresql.data_dir): %s", path,
			        strerror(errno));
	}
	free(path);
	return rc;
}

int pgw_pg_initdb(struct pgw_pg *pg, int timeout_ms)
{
	const struct pgw_strlist *extra = &pg->cfg->initdb_args;
	char *prog, *pwfile;

	if (make_parent(pg) != 0)
		return -1;
	prog = bin(pg, "initdb");
	pwfile = make_pwfile(pg);
	char *pwarg = pwfile ? xasprintf("--pwfile=%s", pwfile) : NULL;
	char **argv = calloc(extra->n + 10, sizeof(*argv));
	struct cmd_result *res = malloc(sizeof(*res));
	int rc = -1, i = 0;

	if (pg->cfg->postgresql.superuser.password && !pwarg)
		goto out;
	if (!prog || !argv || !res)
		goto out;
	if (!pwarg)
		pgw_warn("initdb: no superuser password set; TCP logins as %s will fail",
		         su_name(pg->cfg));
	argv[i++] = prog;
	argv[i++] = "-D";
	argv[i++] = (char *)pg->data_dir;
	argv[i++] = "-U";
	argv[i++] = (char *)su_name(pg->cfg);
	if (pwarg)
		argv[i++] = pwarg;
	argv[i++] = "--auth-local=peer";
	argv[i++] = "--auth-host=scram-sha-256";
	for (size_t k = 0; k < extra->n; k++)
		argv[i++] = extra->items[k];
	rc = run_cmd(pg, argv, NULL, timeout_ms, 0, res);
	if (rc == 0)
		rc = pgw_pg_write_config(pg, &pg->cfg->dcs.pg_parameters, NULL, 0, NULL);
out:
	if (pwfile)
		unlink(pwfile);
	free(pwfile);
	free(pwarg);
	free(argv);
	free(res);
	free(prog);
	return rc;
}

/* Run `pg_ctl ACTION -D data_dir` with more arguments (NULL-terminated). */
static int pg_ctl(struct pgw_pg *pg, int timeout_ms, const char *action, ...)
{
	char *prog = bin(pg, "pg_ctl");
	char *argv[16] = {prog, (char *)action, "-D", (char *)pg->data_dir};
	struct cmd_result *res = malloc(sizeof(*res));
	int i = 4, rc = -1;
	va_list ap;
	char *a;

	va_start(ap, action);
	while ((a = va_arg(ap, char *)) && i < 15)
		argv[i++] = a;
	va_end(ap);
	if (prog && res)
		rc = run_cmd(pg, argv, NULL, timeout_ms, 0, res);
	free(res);
	free(prog);
	return rc;
}

int pgw_pg_start(struct pgw_pg *pg, int timeout_ms)
{
	char secs[16];

	if (is_running(pg)) {
		pgw_info("PostgreSQL in %s is already running", pg->data_dir);
		return 0;
	}
	/* postgresql.bin_name.postgres: pg_ctl -p (pg_ctl finds "postgres" beside itself) */
	char *postgres = bin(pg, "postgres");
	/* postgresql.config_dir: postgres reads <config_dir>/postgresql.conf (pg_ctl hands
	 * -o to /bin/sh: config.c refuses a ' in the path) */
	char *opts =
	    pg->cfg->postgresql.config_dir
	        ? xasprintf("-c 'config_file=%s/postgresql.conf'", pg->cfg->postgresql.config_dir)
	        : NULL;
	int rc;

	if (!postgres || (pg->cfg->postgresql.config_dir && !opts)) {
		free(postgres);
		return -1;
	}
	if (timeout_ms == 0) { /* do not wait: the caller polls with pgw_pg_observe */
		rc = opts ? pg_ctl(pg, 30000, "start", "-W", "-l", pg->log_path, "-p", postgres,
		                   "-o", opts, (char *)NULL)
		          : pg_ctl(pg, 30000, "start", "-W", "-l", pg->log_path, "-p", postgres,
		                   (char *)NULL);
	} else {
		snprintf(secs, sizeof(secs), "%d", pgctl_seconds(timeout_ms));
		rc = opts ? pg_ctl(pg, timeout_ms, "start", "-w", "-t", secs, "-l", pg->log_path,
		                   "-p", postgres, "-o", opts, (char *)NULL)
		          : pg_ctl(pg, timeout_ms, "start", "-w", "-t", secs, "-l", pg->log_path,
		                   "-p", postgres, (char *)NULL);
	}
	free(opts);
	free(postgres);
	return rc;
}

int pgw_pg_stop(struct pgw_pg *pg, const char *mode, int timeout_ms)
{
	char secs[16];

	if (strcmp(mode, "fast") && strcmp(mode, "immediate") && strcmp(mode, "smart")) {
		set_err(pg, true, "stopping PostgreSQL: unknown mode \"%s\"", mode);
		return -1;
	}
	pq_drop(pg);
	if (!is_running(pg))
		return 0;
	snprintf(secs, sizeof(secs), "%d", pgctl_seconds(timeout_ms));
	if (pg_ctl(pg, timeout_ms, "stop", "-m", mode, "-w", "-t", secs, (char *)NULL) == 0)
		return 0;
	return is_running(pg) ? -1 : 0;
}

int pgw_pg_reload(struct pgw_pg *pg)
{
	return pg_ctl(pg, RELOAD_TIMEOUT_MS, "reload", (char *)NULL);
}

bool pgw_pg_set_logical_slots(struct pgw_pg *pg, bool on)
{
	bool changed = pg->logical_slots != on;

	pg->logical_slots = on;
	return changed;
}

bool pgw_pg_set_sync_names(struct pgw_pg *pg, const char *names)
{
	char *copy = NULL;

	if ((names == NULL) == (pg->sync_names == NULL) &&
	    (!names || strcmp(names, pg->sync_names) == 0))
		return false;
	if (names && !(copy = strdup(names)))
		return false;
	free(pg->sync_names);
	pg->sync_names = copy;
	return true;
}

const char *pgw_pg_sync_names(const struct pgw_pg *pg)
{
	return pg->sync_names;
}

void pgw_pg_set_keep(struct pgw_pg *pg, pgw_pg_keep_fn keep, void *keep_arg)
{
	pg->keep = keep;
	pg->keep_arg = keep_arg;
}

/* Wait until pg_is_in_recovery() is false (after pg_ctl promote), keeping the lease. */
static int confirm_promoted(struct pgw_pg *pg, int64_t deadline)
{
	int64_t next_keep = now_ms() + KEEP_EVERY_MS, down_since = 0;

	do {
		PGresult *r = pq_query(pg, "checking promotion", "SELECT pg_is_in_recovery()", 0,
		                       NULL, deadline, PGRES_TUPLES_OK);
		bool in_recovery = !r || PQntuples(r) != 1 || col_bool(r, 0);

		PQclear(r);
		if (!in_recovery)
			return 0;
		/* a server just started with pg_ctl -W may not have written its pid yet */
		if (is_running(pg))
			down_since = 0;
		else if (down_since == 0)
			down_since = now_ms();
		else if (now_ms() - down_since > NOT_RUNNING_GRACE_MS) {
			set_err(pg, true, "PostgreSQL in %s stopped while in recovery (see %s)",
			        pg->data_dir, pg->log_path);
			return -1;
		}
		if (now_ms() >= next_keep && pg->keep) {
			if (!pg->keep(pg->keep_arg)) {
				set_err(pg, true,
				        "promote: gave up waiting for %s to leave recovery: "
				        "the lease could not be kept",
				        pg->data_dir);
				return -1;
			}
			next_keep = now_ms() + KEEP_EVERY_MS;
		}
		sleep_ms(100);
	} while (remaining_ms(deadline) > 0);
	set_err(pg, true, "promote: %s is still in recovery", pg->data_dir);
	return -1;
}

/*
 * Ask for the promotion without pg_ctl's wait, then wait here, calling keep about
 * once a second so that the caller renews its lease (and pets the watchdog, rule 3)
 * however long PostgreSQL takes.  It may take long: PostgreSQL 15 that receives the
 * request while a walreceiver is starting first sleeps out wal_retrieve_retry_interval
 * (5 s by default), longer than the watchdog's W in tight settings; and the checkpoint
 * after the promotion writes every dirty buffer.
 */
int pgw_pg_promote(struct pgw_pg *pg, int timeout_ms, pgw_pg_keep_fn keep, void *keep_arg)
{
	int64_t deadline = now_ms() + timeout_ms;
	int rc = -1;
	PGresult *r;

	pgw_pg_set_keep(pg, keep, keep_arg);
	if (pg_ctl(pg, PROMOTE_REQUEST_TIMEOUT_MS, "promote", "-W", (char *)NULL) == 0 &&
	    confirm_promoted(pg, deadline) == 0) {
		/*
		 * Until the first checkpoint after promotion, pg_control still names the old
		 * timeline, and pg_rewind of the old primary against this server answers "no
		 * rewind required" although the old primary has diverged.  Checkpoint now, so
		 * the new timeline is on record before anyone rewinds from us.
		 */
		r = pq_query(pg, "checkpoint after promotion", "CHECKPOINT", 0, NULL, deadline,
		             PGRES_COMMAND_OK);
		PQclear(r); /* a failure is logged by pq_query; the promotion stands */
		rc = 0;
	}
	pgw_pg_set_keep(pg, NULL, NULL);
	return rc;
}

/* ---- cloning and rewinding -------------------------------------------------------- */

static int refuse_if_running(struct pgw_pg *pg, const char *what)
{
	if (!is_running(pg))
		return 0;
	set_err(pg, true, "%s: PostgreSQL is running in %s; stop it first", what, pg->data_dir);
	return -1;
}

/* Put the finished clone in place of the data directory. */
static int swap_in_clone(struct pgw_pg *pg, const char *clone)
{
	char *old = xasprintf("%s.old", pg->data_dir);
	int rc = -1;

	if (!old || remove_tree(pg, old) < 0)
		goto out;
	if (chmod(clone, 0700) < 0) {
		set_err(pg, true, "cannot chmod %s: %s", clone, strerror(errno));
		goto out;
	}
	if (file_exists(pg->data_dir) && rename(pg->data_dir, old) < 0) {
		set_err(pg, true, "cannot rename %s to %s: %s", pg->data_dir, old, strerror(errno));
		goto out;
	}
	if (rename(clone, pg->data_dir) < 0) {
		set_err(pg, true, "cannot rename %s to %s: %s", clone, pg->data_dir,
		        strerror(errno));
		goto out;
	}
	fsync_parent(pg->data_dir);
	rc = 0;
	remove_tree(pg, old);
out:
	free(old);
	return rc;
}

int pgw_pg_basebackup(struct pgw_pg *pg, const char *host, int port, int timeout_ms)
{
	char *prog = make_parent(pg) == 0 ? bin(pg, "pg_basebackup") : NULL;
	char *clone = xasprintf("%s.clone", pg->data_dir);
	struct cmd_result *res = malloc(sizeof(*res));
	char portstr[16];
	int rc = -1;

	struct pgw_sb ci = {0};

	snprintf(portstr, sizeof(portstr), "%d", port);
	conninfo_add(&ci, "host", host);
	conninfo_add(&ci, "port", portstr);
	conninfo_add(&ci, "user", repl_name(pg->cfg));
	conninfo_add(&ci, "passfile", pg->cfg->postgresql.pgpass ? pg->cfg->postgresql.pgpass : "");
	conninfo_tls(&ci, &pg->cfg->postgresql.replication);
	char *conninfo = pgw_sb_take(&ci);
	const struct pgw_strlist *opts = &pg->cfg->postgresql.basebackup_args;
	char **argv = calloc(opts->n + 12, sizeof(*argv));
	bool checkpoint = false;
	int n = 0;

	if (argv) {
		char *fixed[] = {
		    prog, "-D",     clone,          "-d", conninfo ? conninfo : (char *)"",
		    "-X", "stream", "--no-password"};

		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
			argv[n++] = fixed[i];
		/* postgresql.basebackup, as Patroni passes it (checkpoint: fast by default) */
		for (size_t i = 0; i < opts->n; i++) {
			checkpoint = checkpoint || !strncmp(opts->items[i], "--checkpoint", 12);
			argv[n++] = opts->items[i];
		}
		if (!checkpoint) {
			argv[n++] = "-c";
			argv[n++] = "fast";
		}
	}
	if (!prog || !clone || !res || !conninfo || !argv ||
	    refuse_if_running(pg, "pg_basebackup") < 0 || write_pgpass(pg, host, port) < 0 ||
	    remove_tree(pg, clone) < 0)
		goto out;
	pgw_info("cloning %s from %s:%d", pg->data_dir, host, port);
	if (run_cmd(pg, argv, "PGCONNECT_TIMEOUT=" CLONE_CONNECT_TIMEOUT, timeout_ms, 0, res) < 0) {
		remove_tree(pg, clone);
		goto out;
	}
	rc = swap_in_clone(pg, clone);
out:
	free(argv);
	free(res);
	free(conninfo);
	free(clone);
	free(prog);
	return rc;
}

/* A connection to the leader as pg_rewind's user (or the superuser); options: libpq's
 * "options" (NULL: none). */
static char *leader_conninfo(const struct pgw_pg *pg, const char *host, int port,
                             const char *options)
{
	struct pgw_sb b = {0};
	char portstr[16];

	snprintf(portstr, sizeof(portstr), "%d", port);
	conninfo_add(&b, "host", host);
	conninfo_add(&b, "port", portstr);
	conninfo_add(&b, "user", rewind_name(pg->cfg));
	conninfo_add(&b, "dbname", "postgres");
	conninfo_add(&b, "passfile", pg->cfg->postgresql.pgpass);
	conninfo_add(&b, "connect_timeout", CLONE_CONNECT_TIMEOUT);
	if (options)
		conninfo_add(&b, "options", options);
	conninfo_tls(&b, rewind_auth(pg->cfg));
	return pgw_sb_take(&b);
}

int pgw_pg_rewind(struct pgw_pg *pg, const char *host, int port, int timeout_ms)
{
	char *prog = bin(pg, "pg_rewind");
	char *conninfo = leader_conninfo(pg, host, port, NULL);
	char *source = conninfo ? xasprintf("--source-server=%s", conninfo) : NULL;
	struct cmd_result *res = malloc(sizeof(*res));
	char *argv[] = {prog, "-D", (char *)pg->data_dir, source, NULL};
	int rc = -1;

	if (prog && source && res && refuse_if_running(pg, "pg_rewind") == 0 &&
	    write_pgpass(pg, host, port) == 0) {
		pgw_info("rewinding %s from %s:%d", pg->data_dir, host, port);
		rc = run_cmd(pg, argv, NULL, timeout_ms, 0, res);
		if (rc == 0) {
			char tail[TAIL_MAX + 64];

			out_tail(&res->out, tail, sizeof(tail));
			pgw_info("pg_rewind: %s", tail[0] ? tail : "(no output)");
		}
	}
	free(res);
	free(source);
	free(conninfo);
	free(prog);
	return rc;
}

/* ---- custom bootstrap and replica methods (Patroni's) ------------------------------- */

/* argv of a custom command: its words (the first looked up in PATH), then extra. */
static char **command_argv(const struct pgw_strlist *words, const char *name,
                           const struct pgw_strlist *extra)
{
	size_t n = words->n ? words->n : 1;
	char **argv = calloc(n + extra->n + 1, sizeof(*argv));

	if (!argv)
		return NULL;
	argv[0] = find_program(words->n ? words->items[0] : name);
	if (!argv[0]) {
		free(argv);
		return NULL;
	}
	for (size_t i = 1; i < words->n; i++)
		argv[i] = words->items[i];
	for (size_t i = 0; i < extra->n; i++)
		argv[n + i] = extra->items[i];
	return argv;
}

static void command_free(char **argv)
{
	if (argv)
		free(argv[0]);
	free(argv);
}

/* Run a custom command (its output logged), bounded by timeout_ms.  0 on exit status 0. */
static int run_custom(struct pgw_pg *pg, const char *what, const struct pgw_strlist *words,
                      const char *name, const struct pgw_strlist *extra, const char *extra_env,
                      int timeout_ms)
{
	char **argv = command_argv(words, name, extra);
	struct cmd_result *res = malloc(sizeof(*res));
	int rc = -1;

	if (argv && res) {
		pgw_info("%s: running %s", what, argv[0]);
		rc = run_cmd(pg, argv, extra_env, timeout_ms, 0, res);
		if (rc == 0) {
			char tail[TAIL_MAX + 64];

			out_tail(&res->out, tail, sizeof(tail));
			pgw_info("%s: %s exited with status 0: %s", what, argv[0],
			         tail[0] ? tail : "(no output)");
		}
	} else {
		set_err(pg, true, "%s: out of memory", what);
	}
	free(res);
	command_free(argv);
	return rc;
}

static int push_arg(struct pgw_strlist *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int push_arg(struct pgw_strlist *l, const char *fmt, ...)
{
	char **items = realloc(l->items, (l->n + 1) * sizeof(*items));
	va_list ap;
	int r;

	if (!items)
		return -1;
	l->items = items;
	va_start(ap, fmt);
	r = vasprintf(&items[l->n], fmt, ap);
	va_end(ap);
	if (r < 0)
		return -1;
	l->n++;
	return 0;
}

static void args_free(struct pgw_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	*l = (struct pgw_strlist){0};
}

static bool has_pg_version(const struct pgw_pg *pg)
{
	char *v = path_in(pg->data_dir, "PG_VERSION");
	bool ok = v && file_exists(v);

	free(v);
	return ok;
}

int pgw_pg_custom_bootstrap(struct pgw_pg *pg, const struct pgw_method *m,
                            const struct pgw_kvlist *dcs_params, int timeout_ms)
{
	struct pgw_strlist extra = {0};
	char *promote = NULL;
	int rc = -1;

	if (make_parent(pg) != 0 || refuse_if_running(pg, "custom bootstrap") < 0)
		return -1;
	/* Patroni's arguments: --scope and --datadir, unless no_params */
	if (!m->no_params && (push_arg(&extra, "--scope=%s", pg->cfg->scope) < 0 ||
	                      push_arg(&extra, "--datadir=%s", pg->data_dir) < 0))
		goto out;
	if (run_custom(pg, "bootstrap method", &m->argv, m->name, &extra, NULL, timeout_ms) < 0)
		goto out;
	if (!has_pg_version(pg)) {
		set_err(pg, true,
		        "bootstrap method %s exited with status 0 but left no "
		        "PostgreSQL data directory in %s",
		        m->name, pg->data_dir);
		goto out;
	}
	/* no promote trigger left by a backup: PostgreSQL would promote by itself */
	promote = path_in(pg->data_dir, "promote");
	if (promote)
		unlink(promote);
	pg->boot_trust = true;
	pg->boot_recovery = m->has_recovery_conf ? &m->recovery_conf : NULL;
	pg->boot_keep_signals = !m->has_recovery_conf && m->keep_existing_recovery_conf;
	rc = pgw_pg_write_config(pg, dcs_params, NULL, 0, NULL);
out:
	free(promote);
	args_free(&extra);
	return rc;
}

int pgw_pg_wait_writable(struct pgw_pg *pg, int timeout_ms, pgw_pg_keep_fn keep, void *keep_arg)
{
	int rc;

	pgw_pg_set_keep(pg, keep, keep_arg);
	rc = confirm_promoted(pg, now_ms() + timeout_ms);
	pgw_pg_set_keep(pg, NULL, NULL);
	return rc;
}

void pgw_pg_bootstrap_abort(struct pgw_pg *pg)
{
	pg->boot_trust = pg->boot_keep_signals = false;
	pg->boot_recovery = NULL;
}

int pgw_pg_bootstrap_done(struct pgw_pg *pg, const struct pgw_kvlist *dcs_params)
{
	if (!pg->boot_trust && !pg->boot_recovery && !pg->boot_keep_signals)
		return 0;
	pg->boot_trust = pg->boot_keep_signals = false;
	pg->boot_recovery = NULL;
	if (pgw_pg_write_config(pg, dcs_params, NULL, 0, NULL) < 0)
		return -1;
	pq_drop(pg); /* the next connection logs in with the password */
	return pgw_pg_reload(pg);
}

int pgw_pg_post_bootstrap(struct pgw_pg *pg, int timeout_ms)
{
	const struct pgw_strlist *cmd = &pg->cfg->bootstrap.post_bootstrap;
	struct pgw_strlist extra = {0};
	struct pgw_sb ci = {0};
	char port[16];
	int rc = -1;

	if (cmd->n == 0)
		return 0;
	/* Patroni's argument: a connection string to the new primary as the superuser
	 * (the password in PGPASSFILE), and synchronous_commit local */
	snprintf(port, sizeof(port), "%d", pg->local_port);
	conninfo_add(&ci, "dbname", "postgres");
	conninfo_add(&ci, "user", su_name(pg->cfg));
	conninfo_add(&ci, "host", pg->local_host);
	conninfo_add(&ci, "port", port);
	char *connstr = pgw_sb_take(&ci);

	if (connstr && push_arg(&extra, "%s", connstr) == 0)
		rc = run_custom(pg, "post_bootstrap", cmd, NULL, &extra,
		                "PGOPTIONS=-c synchronous_commit=local", timeout_ms);
	free(connstr);
	args_free(&extra);
	return rc;
}

/* The replication connection string a replica method gets (--connstring). */
static char *replica_connstring(const struct pgw_pg *pg, const char *host, int port)
{
	struct pgw_sb b = {0};
	char portstr[16];

	snprintf(portstr, sizeof(portstr), "%d", port);
	conninfo_add(&b, "dbname", "postgres");
	conninfo_add(&b, "user", repl_name(pg->cfg));
	conninfo_add(&b, "host", host);
	conninfo_add(&b, "port", portstr);
	conninfo_tls(&b, &pg->cfg->postgresql.replication);
	return pgw_sb_take(&b);
}

/* One custom replica method: --key=value for its other keys, then Patroni's four. */
static int replica_method(struct pgw_pg *pg, const char *name, const struct pgw_method *m,
                          const char *host, int port, int timeout_ms)
{
	static const struct pgw_method none = {0};
	struct pgw_strlist extra = {0};
	char *connstr = host ? replica_connstring(pg, host, port) : strdup("");
	int rc = -1;

	if (!m)
		m = &none;
	if (!connstr || refuse_if_running(pg, name) < 0)
		goto out;
	for (size_t i = 0; i < m->params.n; i++)
		if (push_arg(&extra, "--%s=%s", m->params.items[i].name, m->params.items[i].value) <
		    0)
			goto out;
	if (!m->no_params && (push_arg(&extra, "--scope=%s", pg->cfg->scope) < 0 ||
	                      push_arg(&extra, "--role=replica") < 0 ||
	                      push_arg(&extra, "--datadir=%s", pg->data_dir) < 0 ||
	                      push_arg(&extra, "--connstring=%s", connstr) < 0))
		goto out;
	if (!m->keep_data && remove_tree(pg, pg->data_dir) < 0)
		goto out;
	if (host && write_pgpass(pg, host, port) < 0)
		goto out;
	pgw_info("creating the replica with method %s", name);
	rc = run_custom(pg, "replica method", &m->argv, name, &extra, NULL, timeout_ms);
	if (rc == 0 && !has_pg_version(pg)) {
		set_err(pg, true,
		        "replica method %s exited with status 0 but left no "
		        "PostgreSQL data directory in %s",
		        name, pg->data_dir);
		rc = -1;
	}
	if (rc != 0 && !m->keep_data)
		remove_tree(pg, pg->data_dir);
out:
	free(connstr);
	args_free(&extra);
	return rc;
}

static int create_replica(struct pgw_pg *pg, const char *const *items, size_t nitems,
                          const char *host, int port, int timeout_ms)
{
	size_t n = nitems ? nitems : 1;

	if (host && !host[0])
		host = NULL;
	if (make_parent(pg) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *name = nitems ? items[i] : "basebackup";
		const struct pgw_method *m =
		    pgw_method_find(&pg->cfg->postgresql.replica_methods, name);

		if (strcmp(name, "basebackup") == 0) {
			if (host && pgw_pg_basebackup(pg, host, port, timeout_ms) == 0)
				return 0;
		} else if (host || (m && m->no_leader)) {
			if (replica_method(pg, name, m, host, port, timeout_ms) == 0) {
				pgw_info("replica created with method %s", name);
				return 0;
			}
		} else {
			continue; /* needs a leader to copy from */
		}
		if (i + 1 < n)
			pgw_warn("replica method %s failed: trying %s", name, items[i + 1]);
	}
	set_err(pg, true, "no replica method succeeded%s", host ? "" : " without a leader");
	return -1;
}

int pgw_pg_create_replica(struct pgw_pg *pg, const char *host, int port, int timeout_ms)
{
	const struct pgw_strlist *names = &pg->cfg->postgresql.create_replica_methods;

	return create_replica(pg, (const char *const *)names->items, names->n, host, port,
	                      timeout_ms);
}

int pgw_pg_create_standby_leader(struct pgw_pg *pg, const struct pgw_standby_cluster *sc,
                                 int timeout_ms)
{
	const char *items[PGW_SC_METHODS_MAX];
	size_t n = 0;

	/* names from etcd choose among the methods of the local file only (section 7) */
	for (int i = 0; i < sc->nmethods; i++) {
		if (strcmp(sc->methods[i], "basebackup") != 0 &&
		    !pgw_method_find(&pg->cfg->postgresql.replica_methods, sc->methods[i])) {
			pgw_warn("standby_cluster.create_replica_methods: %s is not a method of "
			         "this node's file: skipped",
			         sc->methods[i]);
			continue;
		}
		items[n++] = sc->methods[i];
	}
	if (sc->nmethods > 0 && n == 0) {
		set_err(pg, true, "standby_cluster.create_replica_methods: no usable method");
		return -1;
	}
	return create_replica(pg, items, n, sc->host, sc->port, timeout_ms);
}

void pgw_pg_set_standby(struct pgw_pg *pg, const struct pgw_standby_cluster *sc)
{
	pg->has_standby = sc != NULL;
	if (sc)
		pg->standby = *sc;
}

/* ---- roles and slots -------------------------------------------------------------- */

static int require_primary(struct pgw_pg *pg, const char *what, int64_t deadline)
{
	PGresult *r = pq_query(pg, what, "SELECT pg_catalog.pg_is_in_recovery()", 0, NULL, deadline,
	                       PGRES_TUPLES_OK);
	bool primary = r && PQntuples(r) == 1 && !col_bool(r, 0);

	if (r && !primary)
		set_err(pg, true, "%s: the local server is in recovery, not a primary", what);
	PQclear(r);
	return primary ? 0 : -1;
}

static int role_exists(struct pgw_pg *pg, const char *user, int64_t deadline)
{
	const char *params[] = {user};
	PGresult *r = pq_query(pg, "looking up a role",
	                       "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", 1, params,
	                       deadline, PGRES_TUPLES_OK);
	int rc = r ? PQntuples(r) > 0 : -1;

	PQclear(r);
	return rc;
}

/* CREATE (or ALTER, to converge) ROLE user WITH attrs and the password hashed here. */
static int ensure_role(struct pgw_pg *pg, const char *user, const char *password, const char *attrs,
                       int64_t deadline)
{
	int exists = role_exists(pg, user, deadline);
	char *ident = NULL, *hash = NULL, *lit = NULL, *sql = NULL;
	int rc = -1;

	if (exists < 0)
		return -1;
	ident = PQescapeIdentifier(pg->conn, user, strlen(user));
	if (password) {
		hash = PQencryptPasswordConn(pg->conn, password, user, "scram-sha-256");
		lit = hash ? PQescapeLiteral(pg->conn, hash, strlen(hash)) : NULL;
	}
	if (ident && (!password || lit))
		sql = xasprintf("%s ROLE %s WITH %s%s%s", exists ? "ALTER" : "CREATE", ident, attrs,
		                lit ? " PASSWORD " : "", lit ? lit : "");
	if (sql) {
		pgw_info("%s role %s (%s)", exists ? "updating" : "creating", user, attrs);
		rc = pq_exec(pg, "creating a role", sql, 0, NULL, deadline);
	} else {
		set_err(pg, true, "creating role %s: %s", user, PQerrorMessage(pg->conn));
	}
	free(sql);
	PQfreemem(lit);
	PQfreemem(hash);
	PQfreemem(ident);
	return rc;
}

static int grant_rewind(struct pgw_pg *pg, const char *user, int64_t deadline)
{
	char *ident = PQescapeIdentifier(pg->conn, user, strlen(user));
	char *sql =
	    ident ? xasprintf("GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, "
	                      "boolean) TO %1$s;"
	                      "GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, "
	                      "boolean) TO %1$s;"
	                      "GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) "
	                      "TO %1$s;"
	                      "GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, "
	                      "bigint, bigint, boolean) TO %1$s",
	                      ident)
	          : NULL;
	int rc = sql ? pq_exec(pg, "granting pg_rewind's functions", sql, 0, NULL, deadline) : -1;

	free(sql);
	PQfreemem(ident);
	return rc;
}

/* bootstrap.users (Patroni 3.0 still creates them): not the three pgwarden manages. */
static int bootstrap_users(struct pgw_pg *pg, int64_t deadline)
{
	const struct pgw_config *cfg = pg->cfg;
	const struct pgw_users *u = &cfg->bootstrap.users;

	for (size_t i = 0; i < u->n; i++) {
		const char *name = u->items[i].name;

		if (!strcmp(name, su_name(cfg)) || !strcmp(name, repl_name(cfg)) ||
		    !strcmp(name, rewind_name(cfg)))
			continue;
		if (ensure_role(pg, name, u->items[i].password, u->items[i].options, deadline) < 0)
			return -1;
	}
	return 0;
}

static int roles_in_tx(struct pgw_pg *pg, int64_t deadline)
{
	const struct pgw_config *cfg = pg->cfg;
	const char *su = su_name(cfg), *repl = repl_name(cfg), *rew = rewind_name(cfg);

	/* a custom bootstrap restored another cluster: give the superuser our password */
	if (pg->boot_trust && cfg->postgresql.superuser.password &&
	    ensure_role(pg, su, cfg->postgresql.superuser.password, "SUPERUSER LOGIN", deadline) <
	        0)
		return -1;
	if (strcmp(repl, su) && ensure_role(pg, repl, cfg->postgresql.replication.password,
	                                    "REPLICATION LOGIN", deadline) < 0)
		return -1;
	if (strcmp(rew, su)) {
		if (strcmp(rew, repl) &&
		    ensure_role(pg, rew, cfg->postgresql.rewind.password, "LOGIN", deadline) < 0)
			return -1;
		if (grant_rewind(pg, rew, deadline) < 0)
			return -1;
	}
	return bootstrap_users(pg, deadline);
}

int pgw_pg_bootstrap_roles(struct pgw_pg *pg, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	if (require_primary(pg, "creating roles", deadline) < 0)
		return -1;
	/* keep the statements (with password hashes) out of the server log */
	if (pq_exec(pg, "creating roles",
	            "BEGIN; SET LOCAL log_statement = 'none';"
	            " SET LOCAL log_min_duration_statement = -1;"
	            " SET LOCAL log_min_error_statement = 'panic'",
	            0, NULL, deadline) < 0)
		return -1;
	if (roles_in_tx(pg, deadline) < 0) {
		if (pg->conn)
			pq_exec(pg, "rolling back", "ROLLBACK", 0, NULL, deadline);
		return -1;
	}
	return pq_exec(pg, "committing roles", "COMMIT", 0, NULL, deadline);
}

static void copy_field(char *dst, size_t len, const PGresult *r, int row, int col)
{
	snprintf(dst, len, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

int pgw_pg_list_slots(struct pgw_pg *pg, struct pgw_slot_info *out, int max, bool *wal_logical,
                      int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	PGresult *r =
	    pq_query(pg, "reading wal_level", "SELECT current_setting('wal_level') = 'logical'", 0,
	             NULL, deadline, PGRES_TUPLES_OK);
	int n = 0;

	if (!r)
		return -1;
	*wal_logical = PQntuples(r) == 1 && col_bool(r, 0);
	PQclear(r);
	r = pq_query(pg, "listing replication slots",
	             "SELECT slot_name, slot_type = 'logical', database, plugin, active,"
	             " (CASE WHEN slot_type = 'logical' THEN confirmed_flush_lsn ELSE restart_lsn"
	             " END - '0/0'::pg_lsn)::bigint FROM pg_catalog.pg_replication_slots"
	             " ORDER BY slot_name",
	             0, NULL, deadline, PGRES_TUPLES_OK);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r) && n < max; i++, n++) {
		struct pgw_slot_info *s = &out[n];

		memset(s, 0, sizeof(*s));
		copy_field(s->name, sizeof(s->name), r, i, 0);
		s->type = PQgetvalue(r, i, 1)[0] == 't' ? PGW_SLOT_LOGICAL : PGW_SLOT_PHYSICAL;
		copy_field(s->database, sizeof(s->database), r, i, 2);
		copy_field(s->plugin, sizeof(s->plugin), r, i, 3);
		s->active = PQgetvalue(r, i, 4)[0] == 't';
		s->position =
		    PQgetisnull(r, i, 5) ? 0 : (uint64_t)strtoull(PQgetvalue(r, i, 5), NULL, 10);
	}
	PQclear(r);
	return n;
}

/* How many more slots may be created: two stay free for the operator's own tools. */
static int slot_room(struct pgw_pg *pg, int64_t deadline)
{
	PGresult *r = pq_query(pg, "counting replication slots",
	                       "SELECT current_setting('max_replication_slots')::int"
	                       " - (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int - 2",
	                       0, NULL, deadline, PGRES_TUPLES_OK);
	int room = r && PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : 0;

	PQclear(r);
	return room > 0 ? room : 0;
}

/* One statement in the local database db (a connection of its own, closed after). */
static PGresult *query_in_db(struct pgw_pg *pg, const char *db, const char *what, const char *sql,
                             int nparams, const char *const *params, int64_t deadline)
{
	PGconn *saved = pg->conn;
	PGresult *r = NULL;

	pg->conn = pq_connect(pg, db, deadline);
	if (pg->conn)
		r = pq_query(pg, what, sql, nparams, params, deadline, PGRES_TUPLES_OK);
	else {
		char cause[sizeof(pg->err)];

		memcpy(cause, pg->err, sizeof(cause));
		set_err(pg, true, "%s: database %s: %s", what, db, cause);
	}
	pq_drop(pg);
	pg->conn = saved;
	return r;
}

int pgw_pg_create_slot(struct pgw_pg *pg, const struct pgw_slot_def *d, bool reserve,
                       int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	const char *params[] = {d->name, d->type == PGW_SLOT_LOGICAL ? d->plugin
	                                 : reserve                   ? "true"
	                                                             : "false"};
	PGresult *r;

	if (slot_room(pg, deadline) <= 0) {
		set_err(pg, true,
		        "no room for replication slot %s: max_replication_slots is full (two are "
		        "kept free)",
		        d->name);
		return -1;
	}
	if (d->type == PGW_SLOT_LOGICAL) {
		pgw_info("creating logical replication slot %s (database %s, plugin %s)", d->name,
		         d->database, d->plugin);
		r = query_in_db(pg, d->database, "creating a logical replication slot",
		                "SELECT pg_catalog.pg_create_logical_replication_slot($1, $2)", 2,
		                params, deadline);
	} else {
		pgw_info("creating physical replication slot %s", d->name);
		/* a member's slot reserves WAL from the member's first connection, not from
		 * now: a member key that no replica stands behind holds no WAL */
		r = pq_query(
		    pg, "creating a replication slot",
		    "SELECT pg_catalog.pg_create_physical_replication_slot($1, $2::boolean)", 2,
		    params, deadline, PGRES_TUPLES_OK);
	}
	PQclear(r);
	return r ? 0 : -1;
}

int pgw_pg_drop_slot(struct pgw_pg *pg, const char *name, int timeout_ms)
{
	const char *params[] = {name};
	PGresult *r;

	pgw_info("dropping replication slot %s", name);
	r = pq_query(pg, "dropping a replication slot",
	             "SELECT pg_catalog.pg_drop_replication_slot(slot_name)"
	             " FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND NOT active",
	             1, params, now_ms() + timeout_ms, PGRES_TUPLES_OK);
	PQclear(r);
	return r ? 0 : -1;
}

int pgw_pg_advance_slot(struct pgw_pg *pg, const struct pgw_slot_def *d, uint64_t lsn,
                        int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	char text[32];
	const char *params[] = {d->name, text};
	const char *sql = "SELECT pg_catalog.pg_replication_slot_advance($1, $2::pg_lsn)";
	PGresult *r;

	pgw_lsn_format(lsn, text, sizeof(text));
	if (d->type == PGW_SLOT_LOGICAL)
		r = query_in_db(pg, d->database, "advancing a logical replication slot", sql, 2,
		                params, deadline);
	else
		r = pq_query(pg, "advancing a replication slot", sql, 2, params, deadline,
		             PGRES_TUPLES_OK);
	PQclear(r);
	return r ? 0 : -1;
}

/* PostgreSQL's CRC-32C (Castagnoli), bitwise: a slot file is a few hundred bytes. */
static uint32_t crc32c(const unsigned char *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;

	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return crc ^ 0xFFFFFFFFu;
}

#define SLOT_MAGIC     0x1051CA1u /* ReplicationSlotOnDisk.magic */
#define SLOT_FILE_MAX  4096
#define SLOT_FILE_HEAD 16 /* magic, checksum, version, length */

/* A whole ReplicationSlotOnDisk: magic, and the checksum over everything after it. */
bool pgw_pg_slot_file_ok(const unsigned char *data, size_t len)
{
	uint32_t magic, sum;

	if (len < SLOT_FILE_HEAD || len > SLOT_FILE_MAX)
		return false;
	memcpy(&magic, data, 4);
	memcpy(&sum, data + 4, 4);
	return magic == SLOT_MAGIC && sum == crc32c(data + 8, len - 8);
}

uint64_t pgw_pg_slot_file_restart_lsn(const unsigned char *data, size_t len)
{
	uint64_t lsn = 0;

	/* ReplicationSlotOnDisk: 16 bytes of header, then ReplicationSlotPersistentData:
	 * name (64), database, persistency, xmin, catalog_xmin (4 each), restart_lsn */
	if (len >= SLOT_FILE_HEAD + 88)
		memcpy(&lsn, data + SLOT_FILE_HEAD + 80, 8);
	return lsn;
}

int pgw_pg_oldest_wal(struct pgw_pg *pg, uint64_t *lsn, int timeout_ms)
{
	PGresult *r =
	    pq_query(pg, "finding the oldest WAL segment",
	             "SELECT min(('x' || substr(name, 9, 8))::bit(32)::bigint * 4294967296 +"
	             " ('x' || substr(name, 17, 8))::bit(32)::bigint * (SELECT setting::bigint FROM"
	             " pg_catalog.pg_settings WHERE name = 'wal_segment_size'))"
	             " FROM pg_catalog.pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'",
	             0, NULL, now_ms() + timeout_ms, PGRES_TUPLES_OK);
	int rc = r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? 0 : -1;

	if (rc == 0)
		*lsn = (uint64_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return rc;
}

int pgw_pg_read_leader_slot(struct pgw_pg *pg, const char *host, int port,
                            const struct pgw_slot_def *d, unsigned char **data, size_t *len,
                            int timeout_ms)
{
	char opts[64];
	char *conninfo;
	const char *params[] = {d->name, d->database, d->plugin};
	const int formats[] = {0, 0, 0};
	PGconn *conn = NULL;
	PGresult *r = NULL;
	int rc = -1;

	*data = NULL;
	*len = 0;
	snprintf(opts, sizeof(opts), "-c statement_timeout=%d", timeout_ms);
	conninfo = leader_conninfo(pg, host, port, opts);
	if (!conninfo || write_pgpass(pg, host, port) < 0)
		goto out;
	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		set_err(pg, true, "copying slot %s: connecting to %s:%d: %.*s", d->name, host, port,
		        (int)strcspn(PQerrorMessage(conn), "\n"), PQerrorMessage(conn));
		goto out;
	}
	/* the slot as the leader has it on disk, only if it is the one slots defines */
	r = PQexecParams(conn,
	                 "SELECT pg_catalog.pg_read_binary_file('pg_replslot/' || slot_name ||"
	                 " '/state') FROM pg_catalog.pg_replication_slots WHERE slot_name = $1"
	                 " AND slot_type = 'logical' AND database = $2 AND plugin = $3",
	                 3, NULL, params, NULL, formats, 1);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		const char *why = PQresultStatus(r) == PGRES_TUPLES_OK
		                      ? "no such logical slot there (with that database and plugin)"
		                      : PQresultErrorMessage(r);

		set_err(pg, true, "copying slot %s from %s:%d: %.*s", d->name, host, port,
		        (int)strcspn(why, "\n"), why);
		goto out;
	}
	*len = (size_t)PQgetlength(r, 0, 0);
	if (!pgw_pg_slot_file_ok((const unsigned char *)PQgetvalue(r, 0, 0), *len)) {
		set_err(pg, true, "copying slot %s from %s:%d: not a valid slot file (%zu bytes)",
		        d->name, host, port, *len);
		goto out;
	}
	*data = malloc(*len);
	if (*data) {
		memcpy(*data, PQgetvalue(r, 0, 0), *len);
		rc = 0;
	}
out:
	if (rc < 0)
		*len = 0;
	PQclear(r);
	PQfinish(conn);
	free(conninfo);
	return rc;
}

int pgw_pg_install_slot(struct pgw_pg *pg, const char *name, const unsigned char *data, size_t len)
{
	char *dir = NULL, *file = NULL;
	int rc = -1;

	if (!pgw_slot_name_ok(name, strlen(name)) || !pgw_pg_slot_file_ok(data, len) ||
	    refuse_if_running(pg, "installing a slot") < 0)
		return -1;
	dir = xasprintf("%s/pg_replslot/%s", pg->data_dir, name);
	file = dir ? xasprintf("%s/state", dir) : NULL;
	if (!file)
		goto out;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		set_err(pg, true, "cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	rc = write_bytes_atomic(pg, file, data, len, 0600);
	if (rc == 0 && fsync_parent(dir) < 0)
		pgw_warn("cannot fsync the directory of %s: %s", dir, strerror(errno));
out:
	free(file);
	free(dir);
	return rc;
}

int pgw_pg_remove_slot_dir(struct pgw_pg *pg, const char *name)
{
	char *dir;
	int rc;

	if (!pgw_slot_name_ok(name, strlen(name)) || refuse_if_running(pg, "removing a slot") < 0)
		return -1;
	dir = xasprintf("%s/pg_replslot/%s", pg->data_dir, name);
	rc = dir ? remove_tree(pg, dir) : -1;
	free(dir);
	return rc;
}

void pgw_pg_slot_name(const char *member, char *out, size_t outlen)
{
	size_t i = 0;

	if (outlen == 0)
		return;
	for (; member && member[i] && i + 1 < outlen && i < 63; i++) {
		char c = member[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		out[i] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') ? c : '_';
	}
	out[i] = '\0';
}

/* ---- timeline history and LSNs ---------------------------------------------------- */

/* "parentTLI <tab> X/X <tab> reason"; false when malformed. */
static bool parse_history_line(const char *line, int *parent, uint64_t *lsn, char *reason,
                               size_t reasonlen)
{
	char lsntext[32];
	const char *p = line;
	size_t n;
	char *end;
	unsigned long tli;

	if (!(*p >= '0' && *p <= '9'))
		return false;
	errno = 0;
	tli = strtoul(p, &end, 10);
	if (errno || tli < 1 || tli > INT32_MAX)
		return false;
	*parent = (int)tli;
	p = end + strspn(end, " \t");
	if (p == end)
		return false;
	n = strcspn(p, " \t\r\n");
	if (n == 0 || n >= sizeof(lsntext))
		return false;
	memcpy(lsntext, p, n);
	lsntext[n] = '\0';
	if (!pgw_lsn_parse(lsntext, lsn))
		return false;
	p += n;
	p += strspn(p, " \t");
	n = strcspn(p, "\r\n");
	if (reason && reasonlen)
		snprintf(reason, reasonlen, "%.*s", (int)n, p);
	return true;
}

int pgw_pg_timeline_switch(struct pgw_pg *pg, int timeline, int *parent, uint64_t *switch_lsn,
                           char *reason, size_t reasonlen)
{
	char *path = xasprintf("%s/pg_wal/%08X.history", pg->data_dir, (unsigned)timeline);
	char line[1024], last[1024] = "";
	FILE *f = path ? fopen(path, "re") : NULL;
	bool ok;

	if (!f) {
		set_err(pg, true, "cannot read %s: %s", path ? path : "history file",
		        strerror(errno));
		free(path);
		return -1;
	}
	while (fgets(line, sizeof(line), f))
		if (line[strspn(line, " \t\r\n")] != '\0' && line[0] != '#')
			memcpy(last, line, sizeof(last));
	fclose(f);
	ok = parse_history_line(last, parent, switch_lsn, reason, reasonlen);
	if (!ok)
		set_err(pg, true, "%s: no valid last line", path);
	free(path);
	return ok ? 0 : -1;
}

/* Up to 8 hex digits; advances *s. */
static bool parse_hex32(const char **s, uint64_t *v)
{
	int n = 0;

	*v = 0;
	for (; n < 9; n++, (*s)++) {
		char c = **s;
		int d = (c >= '0' && c <= '9')   ? c - '0'
		        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
		        : (c >= 'A' && c <= 'F') ? c - 'A' + 10
		                                 : -1;

		if (d < 0)
			break;
		*v = *v << 4 | (uint64_t)d;
	}
	return n >= 1 && n <= 8;
}

bool pgw_lsn_parse(const char *s, uint64_t *lsn)
{
	uint64_t hi, lo;

	if (!s || !parse_hex32(&s, &hi) || *s++ != '/' || !parse_hex32(&s, &lo) || *s)
		return false;
	*lsn = hi << 32 | lo;
	return true;
}

void pgw_lsn_format(uint64_t lsn, char *out, size_t outlen)
{
	snprintf(out, outlen, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}
