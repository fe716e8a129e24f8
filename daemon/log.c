/*
 * log.c - line-oriented logging to stderr, or to a rotated file through a writer
 * thread (log.dir); see log.h.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX  2048
#define LOG_SEGS_MAX  32
#define LOG_RETRY_MS  10000 /* a failing log file is tried again this often */
#define LOG_FILE_NAME "pgwarden.log"

static enum pgw_log_level min_level = PGW_INFO;
static const char *log_ident = "";

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "FATAL"};
/* Python's names, for log.format's %(levelname)s and %(levelno)d */
static const char *const py_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};
static const int py_levelno[] = {10, 20, 30, 40, 50};

/* log.format, parsed once by pgw_log_apply (before any thread starts). */
enum seg_kind {
	SEG_TEXT,
	SEG_ASCTIME,
	SEG_LEVELNAME,
	SEG_LEVELNO,
	SEG_MESSAGE,
	SEG_NAME,
	SEG_PROCESS
};
struct seg {
	enum seg_kind kind;
	int width; /* negative: left-aligned */
	const char *text;
	size_t len;
};
static struct seg segs[LOG_SEGS_MAX];
static int nsegs = -1; /* -1: pgwarden's own format */
static char fmt_copy[512], datefmt[128];
static void asctime_py(char *out, size_t outlen, const struct timeval *tv);
/* log.type json: one JSON object a line; log.static_fields rendered once (",\"k\":\"v\"") */
#define LOG_STATIC_MAX 512
static bool json_lines;
static char json_static[LOG_STATIC_MAX];

/* The file writer (log.dir): a ring of queued lines; everything below guarded by q_mu. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool on, stop;
	char (*ring)[LOG_LINE_MAX];
	int cap, head, count;
	long dropped;    /* lines a full queue dropped since the last report */
	char path[4096]; /* <dir>/pgwarden.log */
	int file_num;
	int64_t file_size;
	int mode; /* log.mode, -1: none */
} q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

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

static const struct {
	const char *name;
	enum seg_kind kind;
	bool numeric;
} placeholders[] = {{"asctime", SEG_ASCTIME, false}, {"levelname", SEG_LEVELNAME, false},
                    {"levelno", SEG_LEVELNO, true},  {"message", SEG_MESSAGE, false},
                    {"name", SEG_NAME, false},       {"process", SEG_PROCESS, true}};

#define FORMAT_ACCEPTED                                                                            \
	"%(asctime)s, %(levelname)s, %(levelno)d, %(message)s, %(name)s, %(process)d (with an "    \
	"optional - and width before s or d) and %%"

/* Parse fmt into out (at most max segments); false with why. */
static bool parse_format(const char *fmt, struct seg *out, int max, int *n, char *why,
                         size_t whylen)
{
	const char *p = fmt, *lit = fmt;
	bool has_message = false;

	*n = 0;
	while (*p) {
		const char *close, *q2;
		size_t nlen;
		int width = 0, sign = 1, k;
		bool found = false;

		if (*p != '%') {
			p++;
			continue;
		}
		if (p > lit) {
			if (*n >= max)
				goto too_many;
			out[(*n)++] = (struct seg){SEG_TEXT, 0, lit, (size_t)(p - lit)};
		}
		if (p[1] == '%') {
			if (*n >= max)
				goto too_many;
			out[(*n)++] = (struct seg){SEG_TEXT, 0, p, 1};
			p += 2;
			lit = p;
			continue;
		}
		if (p[1] != '(' || !(close = strchr(p + 2, ')'))) {
			snprintf(why, whylen, "unsupported conversion at \"%.16s\"; accepted: %s",
			         p, FORMAT_ACCEPTED);
			return false;
		}
		nlen = (size_t)(close - (p + 2));
		q2 = close + 1;
		if (*q2 == '-') {
			sign = -1;
			q2++;
		}
		while (*q2 >= '0' && *q2 <= '9' && width < 1000)
			width = width * 10 + (*q2++ - '0');
		for (k = 0; k < (int)(sizeof(placeholders) / sizeof(placeholders[0])); k++)
			if (strlen(placeholders[k].name) == nlen &&
			    strncmp(placeholders[k].name, p + 2, nlen) == 0 &&
			    (*q2 == 's' || (*q2 == 'd' && placeholders[k].numeric))) {
				found = true;
				break;
			}
		if (!found) {
			snprintf(why, whylen, "unsupported placeholder \"%.*s\"; accepted: %s",
			         (int)((*q2 ? q2 + 1 : q2) - p > 40 ? 40 : (*q2 ? q2 + 1 : q2) - p),
			         p, FORMAT_ACCEPTED);
			return false;
		}
		if (*n >= max)
			goto too_many;
		has_message |= placeholders[k].kind == SEG_MESSAGE;
		out[(*n)++] = (struct seg){placeholders[k].kind, sign * width, NULL, 0};
		p = q2 + 1;
		lit = p;
	}
	if (p > lit) {
		if (*n >= max)
			goto too_many;
		out[(*n)++] = (struct seg){SEG_TEXT, 0, lit, (size_t)(p - lit)};
	}
	if (!has_message) {
		snprintf(why, whylen, "has no %%(message)s: the lines would say nothing");
		return false;
	}
	return true;
too_many:
	snprintf(why, whylen, "too many parts (at most %d)", max);
	return false;
}

bool pgw_log_format_ok(const char *fmt, char *why, size_t whylen)
{
	struct seg tmp[LOG_SEGS_MAX];
	int n;

	if (strlen(fmt) >= sizeof(fmt_copy)) {
		snprintf(why, whylen, "longer than %zu bytes", sizeof(fmt_copy) - 1);
		return false;
	}
	return parse_format(fmt, tmp, LOG_SEGS_MAX, &n, why, whylen);
}

bool pgw_log_dateformat_ok(const char *fmt, char *why, size_t whylen)
{
	/* conversions C's strftime and Python's time.strftime both have */
	static const char ok[] = "aAbBcdHIjmMpSUwWxXyYzZ%";

	if (strlen(fmt) >= sizeof(datefmt)) {
		snprintf(why, whylen, "longer than %zu bytes", sizeof(datefmt) - 1);
		return false;
	}
	for (const char *p = fmt; *p; p++)
		if (*p == '%' && (!p[1] || !strchr(ok, *++p))) {
			snprintf(
			    why, whylen, "unsupported conversion \"%%%.1s\"; accepted: %%%s", p,
			    "a %A %b %B %c %d %H %I %j %m %M %p %S %U %w %W %x %X %y %Y %z %Z %%");
			return false;
		}
	return true;
}

/*
 * Append src to line as the inside of a JSON string, stopping before limit: quotes,
 * backslashes and control characters escaped, bytes that are not UTF-8 as U+FFFD, so
 * every line parses (text from etcd or PostgreSQL cannot break out of its field).
 */
static size_t json_str(char *line, size_t limit, size_t off, const char *src)
{
	const unsigned char *p = (const unsigned char *)src;

	while (*p) {
		char tmp[8];
		size_t n = 1, tl;

		if (*p == '"' || *p == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)*p;
			tl = 2;
		} else if (*p < 0x20 || *p == 0x7f) {
			tl = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
		} else if (*p < 0x80) {
			tmp[0] = (char)*p;
			tl = 1;
		} else {
			/* a well-formed UTF-8 sequence (no overlong 2-byte form) or U+FFFD */
			n = *p >= 0xc2 && *p <= 0xdf   ? 2
			    : *p >= 0xe0 && *p <= 0xef ? 3
			    : *p >= 0xf0 && *p <= 0xf4 ? 4
			                               : 0;
			for (size_t i = 1; i < n; i++)
				if ((p[i] & 0xc0) != 0x80)
					n = 0;
			if (n == 0) {
				n = 1;
				memcpy(tmp, "\\ufffd", 6);
				tl = 6;
			} else {
				memcpy(tmp, p, n);
				tl = n;
			}
		}
		if (off + tl >= limit)
			break;
		memcpy(line + off, tmp, tl);
		off += tl;
		p += n;
	}
	line[off] = '\0';
	return off;
}

/* {"asctime": ..., "levelname": ..., "message": ..., static fields} (Patroni's json). */
static size_t json_line(char *line, size_t size, size_t off, enum pgw_log_level level,
                        const char *msg)
{
	size_t tail = strlen(json_static) + 3; /* the static fields, "}" and NUL */
	struct timeval tv;
	char stamp[128];

	gettimeofday(&tv, NULL);
	asctime_py(stamp, sizeof(stamp), &tv);
	off += (size_t)snprintf(line + off, size - off, "{\"asctime\": \"");
	off = json_str(line, size - tail, off, stamp);
	off += (size_t)snprintf(line + off, size - off,
	                        "\", \"levelname\": \"%s\", \"message\": \"", py_names[level]);
	off = json_str(line, size - tail - 1, off, msg);
	off += (size_t)snprintf(line + off, size - off, "\"%s}", json_static);
	return off;
}

void pgw_log_apply(const struct pgw_log_settings *s)
{
	char why[256];
	size_t off = 0;
	int n;

	json_lines = s->type == PGW_LOG_JSON;
	json_static[0] = '\0';
	for (size_t i = 0; i < s->nstatic_fields; i++) {
		char one[LOG_STATIC_MAX];
		size_t o;

		o = (size_t)snprintf(one, sizeof(one), ", \"");
		o = json_str(one, sizeof(one) - 8, o, s->static_fields[i].name);
		o += (size_t)snprintf(one + o, sizeof(one) - o, "\": \"");
		o = json_str(one, sizeof(one) - 2, o, s->static_fields[i].value);
		o += (size_t)snprintf(one + o, sizeof(one) - o, "\"");
		if (off + o >= sizeof(json_static))
			break; /* config.c keeps the whole under LOG_STATIC_MAX */
		memcpy(json_static + off, one, o + 1);
		off += o;
	}
	min_level = (enum pgw_log_level)s->level;
	datefmt[0] = '\0';
	if (s->dateformat)
		snprintf(datefmt, sizeof(datefmt), "%s", s->dateformat);
	nsegs = -1;
	if (s->format) {
		snprintf(fmt_copy, sizeof(fmt_copy), "%s", s->format);
		if (parse_format(fmt_copy, segs, LOG_SEGS_MAX, &n, why, sizeof(why)))
			nsegs = n;
	}
}

/* Python's %(asctime)s: local time, "%Y-%m-%d %H:%M:%S,mmm" or log.dateformat. */
static void asctime_py(char *out, size_t outlen, const struct timeval *tv)
{
	struct tm tm;
	size_t n;

	localtime_r(&tv->tv_sec, &tm);
	if (datefmt[0]) {
		if (strftime(out, outlen, datefmt, &tm) == 0)
			out[0] = '\0';
		return;
	}
	n = strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out + n, outlen - n, ",%03ld", (long)(tv->tv_usec / 1000));
}

static size_t put(char *line, size_t size, size_t off, const char *s, size_t len, int width)
{
	size_t pad = width > 0 && (size_t)width > len ? (size_t)width - len : 0;
	size_t rpad = width < 0 && (size_t)-width > len ? (size_t)-width - len : 0;

	for (; pad && off + 1 < size; pad--)
		line[off++] = ' ';
	for (size_t i = 0; i < len && off + 1 < size; i++)
		line[off++] = s[i];
	for (; rpad && off + 1 < size; rpad--)
		line[off++] = ' ';
	line[off] = '\0';
	return off;
}

/* The line by log.format (msg already escaped). */
static size_t format_line(char *line, size_t size, size_t off, enum pgw_log_level level,
                          const char *msg)
{
	struct timeval tv;
	char tmp[128];

	gettimeofday(&tv, NULL);
	for (int i = 0; i < nsegs; i++) {
		const struct seg *sg = &segs[i];

		switch (sg->kind) {
		case SEG_TEXT:
			off = put(line, size, off, sg->text, sg->len, 0);
			break;
		case SEG_ASCTIME:
			asctime_py(tmp, sizeof(tmp), &tv);
			off = put(line, size, off, tmp, strlen(tmp), sg->width);
			break;
		case SEG_LEVELNAME:
			off = put(line, size, off, py_names[level], strlen(py_names[level]),
			          sg->width);
			break;
		case SEG_LEVELNO:
			snprintf(tmp, sizeof(tmp), "%d", py_levelno[level]);
			off = put(line, size, off, tmp, strlen(tmp), sg->width);
			break;
		case SEG_MESSAGE:
			off = put(line, size, off, msg, strlen(msg), sg->width);
			break;
		case SEG_NAME:
			off = put(line, size, off, "pgwarden", 8, sg->width);
			break;
		case SEG_PROCESS:
			snprintf(tmp, sizeof(tmp), "%ld", (long)getpid());
			off = put(line, size, off, tmp, strlen(tmp), sg->width);
			break;
		}
	}
	return off;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the log file ------------------------------------------------------ */

/* Writer thread state (only the writer thread touches these). */
static int wfd = -1;
static int64_t wsize;
static bool wfailing;
static int64_t wretry_ms;

static void stderr_line(const char *s)
{
	fprintf(stderr, "%s\n", s);
}

static int open_log(void)
{
	struct stat st;

	wfd = open(q.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (wfd < 0)
		return -1;
	if (q.mode >= 0 && fchmod(wfd, (mode_t)q.mode) != 0) { /* log.mode, past the umask */
		close(wfd);
		wfd = -1;
		return -1;
	}
	wsize = fstat(wfd, &st) == 0 ? st.st_size : 0;
	return 0;
}

/* pgwarden.log -> .1 -> .2 ... (the oldest beyond file_num goes), as Python's
 * RotatingFileHandler does; with file_num 0 the file starts over. */
static int rotate(void)
{
	char from[4200], to[4200];

	close(wfd);
	wfd = -1;
	if (q.file_num == 0) {
		wfd = open(q.path, O_WRONLY | O_TRUNC | O_APPEND | O_CLOEXEC);
		wsize = 0;
		return wfd < 0 ? -1 : 0;
	}
	for (int i = q.file_num - 1; i >= 1; i--) {
		snprintf(from, sizeof(from), "%s.%d", q.path, i);
		snprintf(to, sizeof(to), "%s.%d", q.path, i + 1);
		if (rename(from, to) != 0 && errno != ENOENT)
			return -1;
	}
	snprintf(to, sizeof(to), "%s.1", q.path);
	if (rename(q.path, to) != 0 && errno != ENOENT)
		return -1;
	return open_log();
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* One line (without its newline) into the file; on failure to stderr, reported once. */
static void file_line(char *line)
{
	size_t len = strlen(line);
	int e;

	if (wfailing && mono_ms() < wretry_ms) {
		stderr_line(line);
		return;
	}
	line[len] = '\n';
	if ((wfd >= 0 || open_log() == 0) &&
	    (wsize == 0 || wsize + (int64_t)len + 1 <= q.file_size || rotate() == 0) &&
	    write_all(wfd, line, len + 1) == 0) {
		line[len] = '\0';
		wsize += (int64_t)len + 1;
		if (wfailing) {
			wfailing = false;
			stderr_line("pgwarden: log.dir: the log file can be written again");
		}
		return;
	}
	e = errno;
	line[len] = '\0';
	if (!wfailing)
		fprintf(
		    stderr,
		    "pgwarden: log.dir: cannot write %s: %s; logging to stderr, trying the file "
		    "again every %d s\n",
		    q.path, strerror(e), LOG_RETRY_MS / 1000);
	wfailing = true;
	wretry_ms = mono_ms() + LOG_RETRY_MS;
	if (wfd >= 0)
		close(wfd);
	wfd = -1;
	stderr_line(line);
}

static void *writer(void *arg)
{
	char line[LOG_LINE_MAX + 1];
	long dropped;

	(void)arg;
	pthread_mutex_lock(&q.mu);
	for (;;) {
		while (q.count == 0 && q.dropped == 0 && !q.stop)
			pthread_cond_wait(&q.cv, &q.mu);
		if (q.count == 0 && q.dropped == 0 && q.stop)
			break;
		dropped = q.dropped;
		q.dropped = 0;
		if (q.count > 0) {
			memcpy(line, q.ring[q.head], LOG_LINE_MAX);
			q.head = (q.head + 1) % q.cap;
			q.count--;
		} else {
			line[0] = '\0';
		}
		pthread_mutex_unlock(&q.mu);
		if (line[0])
			file_line(line);
		if (dropped) {
			snprintf(line, sizeof(line),
			         "pgwarden: WARNING: %ld log lines were dropped: the log file fell "
			         "behind by more than log.max_queue_size lines",
			         dropped);
			file_line(line);
		}
		pthread_mutex_lock(&q.mu);
	}
	pthread_mutex_unlock(&q.mu);
	if (wfd >= 0)
		close(wfd);
	wfd = -1;
	return NULL;
}

void pgw_log_open_file(const struct pgw_log_settings *s)
{
	if (!s->dir || q.on)
		return;
	snprintf(q.path, sizeof(q.path), "%s/%s", s->dir, LOG_FILE_NAME);
	q.file_num = s->file_num;
	q.file_size = s->file_size;
	q.mode = s->mode;
	q.cap = s->max_queue_size > 0 ? s->max_queue_size : 1000;
	q.ring = calloc((size_t)q.cap, sizeof(*q.ring));
	if (!q.ring) {
		pgw_error("log.dir: out of memory for %d queued lines; logging to stderr", q.cap);
		return;
	}
	q.head = q.count = 0;
	q.stop = false;
	if (pthread_create(&q.thread, NULL, writer, NULL) != 0) {
		pgw_error("log.dir: cannot start the log writer thread; logging to stderr");
		free(q.ring);
		q.ring = NULL;
		return;
	}
	pthread_mutex_lock(&q.mu);
	q.on = true;
	pthread_mutex_unlock(&q.mu);
	pgw_info("logging to %s (rotated at %d bytes, %d old files kept)", q.path, (int)q.file_size,
	         q.file_num);
}

void pgw_log_close_file(void)
{
	pthread_mutex_lock(&q.mu);
	if (!q.on) {
		pthread_mutex_unlock(&q.mu);
		return;
	}
	q.stop = true;
	pthread_cond_signal(&q.cv);
	pthread_mutex_unlock(&q.mu);
	pthread_join(q.thread, NULL);
	pthread_mutex_lock(&q.mu);
	q.on = false;
	free(q.ring);
	q.ring = NULL;
	pthread_mutex_unlock(&q.mu);
}

/* Queue the line for the writer; false when there is no file (write it to stderr). */
static bool enqueue(const char *line)
{
	bool on;

	pthread_mutex_lock(&q.mu);
	on = q.on && !q.stop;
	if (on) {
		if (q.count < q.cap) {
			snprintf(q.ring[(q.head + q.count) % q.cap], LOG_LINE_MAX, "%s", line);
			q.count++;
		} else {
			q.dropped++; /* a slow disk never holds up the HA loop */
		}
		pthread_cond_signal(&q.cv);
	}
	pthread_mutex_unlock(&q.mu);
	return on;
}

void pgw_log(enum pgw_log_level level, const char *fmt, ...)
{
	static const int prio[] = {7, 6, 4, 3, 2}; /* DEBUG INFO WARNING ERROR FATAL */
	char line[LOG_LINE_MAX], msg[LOG_LINE_MAX - 256], esc[LOG_LINE_MAX - 256];
	char stamp[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t off = 0;
	bool to_file;

	if (level < min_level)
		return;
	to_file = q.on; /* a racy peek is fine: enqueue decides under the lock */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pgw_log_escape(esc, sizeof(esc), msg);
	line[0] = '\0';
	if (!to_file && stderr_is_journal())
		off = (size_t)snprintf(line, sizeof(line), "<%d>", prio[level]);
	if (json_lines) {
		off = json_line(line, sizeof(line), off, level, msg);
	} else if (nsegs >= 0) {
		off = format_line(line, sizeof(line), off, level, esc);
	} else if (!to_file && stderr_is_journal()) {
		snprintf(line + off, sizeof(line) - off, "%s%s%s: %s", log_ident,
		         log_ident[0] ? " " : "", level_names[level], esc);
	} else {
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(line, sizeof(line), "%s.%03ld %s%s%s: %s", stamp,
		         (long)(tv.tv_usec / 1000), log_ident, log_ident[0] ? " " : "",
		         level_names[level], esc);
	}
	(void)off;
	if (to_file && enqueue(line))
		return;
	/* one write per line so concurrent threads do not interleave */
	fprintf(stderr, "%s\n", line);
}
