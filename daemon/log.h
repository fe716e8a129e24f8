/*
 * log.h - pgwarden's logging: one line per event on stderr (the journal reads it
 * when systemd runs the daemon), "LEVEL: message" with a monotonic-safe wall stamp.
 *
 * Every error message says what failed, where (file, key, host, path) and the
 * system error if there is one.  No function here allocates.
 */
#ifndef PGW_LOG_H
#define PGW_LOG_H

#include <stddef.h>

enum pgw_log_level { PGW_DEBUG, PGW_INFO, PGW_WARNING, PGW_ERROR, PGW_FATAL };

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
