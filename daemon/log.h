/*
 * log.h - pgwarden's logging: one line per event on stderr (the journal reads it
 * when systemd runs the daemon), "LEVEL: message" with a monotonic-safe wall stamp.
 *
 * Every error message says what failed, where (file, key, host, path) and the
 * system error if there is one.  No function here allocates.
 */
#ifndef PGW_LOG_H
#define PGW_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum pgw_log_level { PGW_DEBUG, PGW_INFO, PGW_WARNING, PGW_ERROR, PGW_FATAL };

/* The log section of the configuration (Patroni's keys). */
enum pgw_log_type { PGW_LOG_PLAIN, PGW_LOG_JSON };

struct pgw_log_field {
	char *name;
	char *value; /* written as a JSON string */
};

struct pgw_log_settings {
	int level; /* log.level, enum pgw_log_level (CRITICAL = PGW_FATAL), default INFO */
	int traceback_level; /* log.traceback_level: accepted, no effect (no tracebacks) */
	char *format;        /* log.format: %(asctime)s %(levelname)s ...; NULL: pgwarden's */
	char *dateformat;    /* log.dateformat: strftime format of %(asctime)s; NULL default */
	char *dir;           /* log.dir: write <dir>/pgwarden.log instead of stderr; NULL none */
	int file_num;        /* log.file_num: old files kept (pgwarden.log.1 ..), default 4 */
	int file_size;       /* log.file_size: bytes that trigger a rotation, default 25000000 */
	int max_queue_size;  /* log.max_queue_size: lines waiting for the file, default 1000 */
	int type;            /* log.type: PGW_LOG_PLAIN or PGW_LOG_JSON */
	/* log.static_fields: more fields of every JSON line (log.type json only) */
	struct pgw_log_field *static_fields;
	size_t nstatic_fields;
	int mode; /* log.mode: permissions of the log file; -1: 0640 (less the umask) */
	/* log.deduplicate_heartbeat_logs: accepted, no effect: a decision repeated from
	 * the last loop is always logged at DEBUG only (ha_log_decision) */
	bool deduplicate_heartbeat_logs;
};

/*
 * Check a log.format / log.dateformat value; false with why filled (what is accepted).
 * format: text with %(asctime)s, %(levelname)s, %(levelno)d, %(message)s, %(name)s,
 * %(process)d (an optional "-" and width before s/d) and %%.  dateformat: strftime
 * conversions only from the set both C and Python know.
 */
bool pgw_log_format_ok(const char *fmt, char *why, size_t whylen);
bool pgw_log_dateformat_ok(const char *fmt, char *why, size_t whylen);

/* Level and line format from the settings (before any thread starts). */
void pgw_log_apply(const struct pgw_log_settings *s);
/*
 * log.dir: from now on lines go to <dir>/pgwarden.log through a writer thread and a
 * queue of max_queue_size lines, so a slow or full disk never blocks the caller: a
 * full queue drops lines (counted, reported), a failing write reports once and sends
 * the lines to stderr until the file can be written again.  Call after any fork that
 * does not exec (the watchdog keeper) and after the privilege drop.
 */
void pgw_log_open_file(const struct pgw_log_settings *s);
/* Write what is queued and stop the writer thread (back to stderr). */
void pgw_log_close_file(void);

/* Messages below this level are dropped (default PGW_INFO). */
void pgw_log_set_level(enum pgw_log_level level);
/* Prefix every line with this node name (not copied: keep it alive). */
void pgw_log_set_ident(const char *ident);

void pgw_log(enum pgw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * src into dst (NUL-terminated, cut to fit) with every control character (below 0x20,
 * and 0x7f) written as \xNN: text from etcd, peers or PostgreSQL cannot forge a log
 * line or drive a terminal (ARCHITECTURE.md §7).  pgw_log applies it to every message.
 */
void pgw_log_escape(char *dst, size_t dstlen, const char *src);

#define pgw_debug(...) pgw_log(PGW_DEBUG, __VA_ARGS__)
#define pgw_info(...)  pgw_log(PGW_INFO, __VA_ARGS__)
#define pgw_warn(...)  pgw_log(PGW_WARNING, __VA_ARGS__)
#define pgw_error(...) pgw_log(PGW_ERROR, __VA_ARGS__)

#endif
