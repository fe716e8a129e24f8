/*
 * log.c - line-oriented logging to stderr; see log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum pgw_log_level min_level = PGW_INFO;
static const char *log_ident = "";

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "FATAL"};

void pgw_log_set_level(enum pgw_log_level level)
{
	min_level = level;
}

void pgw_log_set_ident(const char *ident)
{
	log_ident = ident ? ident : "";
}

void pgw_log(enum pgw_log_level level, const char *fmt, ...)
{
	char line[2048];
	char stamp[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t off;

	if (level < min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	off = (size_t)snprintf(line, sizeof(line), "%s.%03ld %s%s%s: ", stamp,
	                       (long)(tv.tv_usec / 1000), log_ident, log_ident[0] ? " " : "",
	                       level_names[level]);
	if (off >= sizeof(line))
		off = sizeof(line) - 1;
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof(line) - off, fmt, ap);
	va_end(ap);
	/* one write per line so concurrent threads do not interleave */
	fprintf(stderr, "%s\n", line);
}
