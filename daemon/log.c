/*
 * log.c - line-oriented logging to stderr; see log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/*
 * Is stderr journald's stream (systemd sets JOURNAL_STREAM=dev:ino)?  Then each line
 * starts with its syslog priority, "<3>" for an error, and without a time stamp (the
 * journal has its own), so `journalctl -p err` finds the errors.
 */
static bool stderr_is_journal(void)
{
	static int cached = -1; /* decided once, before the REST threads log */
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (cached < 0)
		cached = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
		         (unsigned long long)st.st_dev == dev &&
		         (unsigned long long)st.st_ino == ino;
	return cached;
}

void pgw_log_escape(char *dst, size_t dstlen, const char *src)
{
	size_t o = 0;

	if (dstlen == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)src; *p && o + 1 < dstlen; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			dst[o++] = (char)*p;
		} else if (o + 4 < dstlen) {
			snprintf(dst + o, dstlen - o, "\\x%02x", *p);
			o += 4;
		} else {
			break;
		}
	}
	dst[o] = '\0';
}

void pgw_log(enum pgw_log_level level, const char *fmt, ...)
{
	static const int prio[] = {7, 6, 4, 3, 2}; /* DEBUG INFO WARNING ERROR FATAL */
	char line[2048], msg[2048];
	char stamp[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t off;

	if (level < min_level)
		return;
	if (stderr_is_journal()) {
		off = (size_t)snprintf(line, sizeof(line), "<%d>%s%s%s: ", prio[level], log_ident,
		                       log_ident[0] ? " " : "", level_names[level]);
	} else {
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		off = (size_t)snprintf(line, sizeof(line), "%s.%03ld %s%s%s: ", stamp,
		                       (long)(tv.tv_usec / 1000), log_ident,
		                       log_ident[0] ? " " : "", level_names[level]);
	}
	if (off >= sizeof(line))
		off = sizeof(line) - 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pgw_log_escape(line + off, sizeof(line) - off, msg);
	/* one write per line so concurrent threads do not interleave */
	fprintf(stderr, "%s\n", line);
}
