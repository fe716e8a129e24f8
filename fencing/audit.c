/*
 * audit.c - the fencing audit log: JSON lines chained by SHA-256, written with one
 * write() and an fsync() per record, copied to the journal; verification, rotation and
 * the tail for GET /fencing.  The record format and the canonical text are defined in
 * audit.h.
 */
#include "audit.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>
#include <systemd/sd-journal.h>

#include "sbuf.h"

#define HASH_MEMBER     ",\"hash\":\""
#define HASH_MEMBER_LEN (sizeof(HASH_MEMBER) - 1)
/* ,"hash":"<64 hex>"} */
#define HASH_TAIL_LEN (HASH_MEMBER_LEN + PGW_AUDIT_HASH_HEX + 2)
#define TAIL_CHUNK    65536
#define MAX_ROTATED   100000

static const char zero_hash[PGW_AUDIT_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* The HMAC key of a keyed log (fencing.audit_key_file); len 0: a plain SHA-256 chain. */
struct audit_key {
	const unsigned char *k;
	size_t len;
};

struct pgw_audit {
	int fd;
	unsigned char key[PGW_AUDIT_KEY_MAX];
	size_t key_len;
	char *path;
	char *cluster;
	char *actor;
	int64_t next_seq;
	char last_hash[PGW_AUDIT_HASH_HEX + 1];
	off_t size; /* the file's size after our last write or read; -1 = re-read the tail */
};

/* --- canonical JSON strings --- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string (or null) as audit.h defines it: escaped, valid UTF-8, cut at FIELD_MAX. */
static void buf_json_str(struct pgw_sb *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, used = 0;

	if (!s) {
		pgw_sb_add(b, "null");
		return;
	}
	n = strlen(s);
	pgw_sb_add(b, "\"");
	while (used < n && used < PGW_AUDIT_FIELD_MAX) {
		unsigned c = p[used];
		size_t l;

		switch (c) {
		case '"':
			pgw_sb_add(b, "\\\"");
			used++;
			continue;
		case '\\':
			pgw_sb_add(b, "\\\\");
			used++;
			continue;
		case '\b':
			pgw_sb_add(b, "\\b");
			used++;
			continue;
		case '\f':
			pgw_sb_add(b, "\\f");
			used++;
			continue;
		case '\n':
			pgw_sb_add(b, "\\n");
			used++;
			continue;
		case '\r':
			pgw_sb_add(b, "\\r");
			used++;
			continue;
		case '\t':
			pgw_sb_add(b, "\\t");
			used++;
			continue;
		default:
			break;
		}
		if (c < 0x20 || c == 0x7f) {
			pgw_sb_addf(b, "\\u%04x", c);
			used++;
			continue;
		}
		l = utf8_len(p + used, n - used);
		if (l == 0) {
			pgw_sb_add(b, "\xef\xbf\xbd"); /* U+FFFD */
			used++;
			continue;
		}
		if (used + l > PGW_AUDIT_FIELD_MAX)
			break;
		pgw_sb_addn(b, s + used, l);
		used += l;
	}
	pgw_sb_add(b, "\"");
}

/* --- hashing --- */

static void hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static int sha256_hex(const void *data, size_t len, char out[PGW_AUDIT_HASH_HEX + 1])
{
	unsigned char d[32];

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, d) < 0)
		return -1;
	hex(d, sizeof(d), out);
	return 0;
}

/* A record's hash: HMAC-SHA256 with the key of a keyed log, else SHA-256. */
static int digest_hex(const struct audit_key *key, const void *data, size_t len,
                      char out[PGW_AUDIT_HASH_HEX + 1])
{
	unsigned char d[32];

	if (!key || key->len == 0)
		return sha256_hex(data, len, out);
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key->k, key->len, data, len, d) < 0)
		return -1;
	hex(d, sizeof(d), out);
	return 0;
}

static bool is_hex64(const char *s, size_t n)
{
	if (n != PGW_AUDIT_HASH_HEX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* --- one record: check its hash and read the fields the chain needs --- */

struct rec_info {
	int64_t seq;
	char hash[PGW_AUDIT_HASH_HEX + 1];
	char prev[PGW_AUDIT_HASH_HEX + 1];
	bool rotate;
};

/*
 * Check one line (without '\n'): it ends with the hash member, the hash matches the
 * canonical text, and the canonical text is a JSON object with seq, prev and action.
 * 0, or -1 with what is wrong in err.  scratch is reused between calls.
 */
static int check_record(const char *line, size_t len, struct pgw_sb *scratch,
                        const struct audit_key *key, struct rec_info *ri, char *err, size_t errlen)
{
	char computed[PGW_AUDIT_HASH_HEX + 1];
	const char *stored;
	struct json_tokener *tok;
	struct json_object *o = NULL, *v;
	size_t clen;
	int rc = -1;

	if (len == 0) {
		snprintf(err, errlen, "empty line");
		return -1;
	}
	if (len < HASH_TAIL_LEN + 2 ||
	    memcmp(line + len - HASH_TAIL_LEN, HASH_MEMBER, HASH_MEMBER_LEN) != 0 ||
	    line[len - 2] != '"' || line[len - 1] != '}') {
		snprintf(err, errlen,
		         "not an audit record (it does not end with a \"hash\" member)");
		return -1;
	}
	stored = line + len - HASH_TAIL_LEN + HASH_MEMBER_LEN;
	if (!is_hex64(stored, PGW_AUDIT_HASH_HEX)) {
		snprintf(err, errlen,
		         "not an audit record (its hash is not 64 lowercase hex digits)");
		return -1;
	}
	clen = len - HASH_TAIL_LEN;
	scratch->len = 0;
	pgw_sb_addn(scratch, line, clen);
	pgw_sb_addn(scratch, "}", 1);
	if (scratch->oom) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (digest_hex(key, scratch->buf, scratch->len, computed) < 0) {
		snprintf(err, errlen, "SHA-256 failed (GnuTLS)");
		return -1;
	}
	if (memcmp(computed, stored, PGW_AUDIT_HASH_HEX) != 0 && key && key->len &&
	    sha256_hex(scratch->buf, scratch->len, computed) == 0 &&
	    memcmp(computed, stored, PGW_AUDIT_HASH_HEX) == 0) {
		snprintf(err, errlen,
		         "hash mismatch: the record is chained without the key of "
		         "fencing.audit_key_file (written, or rewritten, by someone who does not "
		         "have it)");
		return -1;
	}
	if (memcmp(computed, stored, PGW_AUDIT_HASH_HEX) != 0) {
		snprintf(err, errlen,
		         "hash mismatch: the record says %.12s..., its text hashes to %.12s... "
		         "(the record was changed)",
		         stored, computed);
		return -1;
	}
	tok = json_tokener_new();
	if (!tok) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, scratch->buf, (int)scratch->len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != scratch->len) {
		snprintf(err, errlen, "bad JSON: %s",
		         o ? "trailing text"
		           : json_tokener_error_desc(json_tokener_get_error(tok)));
		goto out;
	}
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "bad record: not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(o, "seq", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 1) {
		snprintf(err, errlen, "bad record: no positive integer \"seq\"");
		goto out;
	}
	ri->seq = json_object_get_int64(v);
	if (!json_object_object_get_ex(o, "prev", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !is_hex64(json_object_get_string(v), (size_t)json_object_get_string_len(v))) {
		snprintf(err, errlen, "bad record: \"prev\" is not 64 lowercase hex digits");
		goto out;
	}
	memcpy(ri->prev, json_object_get_string(v), PGW_AUDIT_HASH_HEX + 1);
	if (!json_object_object_get_ex(o, "action", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "bad record: no \"action\"");
		goto out;
	}
	ri->rotate = strcmp(json_object_get_string(v), "rotate") == 0;
	memcpy(ri->hash, stored, PGW_AUDIT_HASH_HEX);
	ri->hash[PGW_AUDIT_HASH_HEX] = '\0';
	rc = 0;
out:
	json_object_put(o);
	json_tokener_free(tok);
	return rc;
}

/* --- reading the end of a file --- */

static ssize_t pread_full(int fd, char *p, size_t n, off_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/*
 * Read the end of fd (size bytes long) into b so that it holds at least the last `want`
 * complete lines, or the whole file.  *start is the file offset of b->buf[0]; when it is
 * not 0, b starts with the remainder of a line that is not wanted.
 */
static int read_tail(int fd, off_t size, int want, struct pgw_sb *b, off_t *start)
{
	size_t chunk = TAIL_CHUNK;

	for (;;) {
		off_t off = size > (off_t)chunk ? size - (off_t)chunk : 0;
		size_t n = (size_t)(size - off);
		ssize_t r;
		int nl = 0;

		b->len = 0;
		if (!pgw_sb_reserve(b, n)) {
			errno = ENOMEM;
			return -1;
		}
		r = pread_full(fd, b->buf, n, off);
		if (r < 0)
			return -1;
		b->len = (size_t)r;
		b->buf[b->len] = '\0';
		*start = off;
		if (off == 0)
			return 0;
		/* the newline ending the last line, plus one before each wanted line */
		for (size_t i = 0; i < b->len && nl <= want; i++)
			nl += b->buf[i] == '\n';
		if (nl > want)
			return 0;
		chunk *= 2;
	}
}

/* 1-based number of the line that starts at byte offset `at` of fd. */
static long line_number_at(int fd, off_t at)
{
	char chunk[65536];
	long line = 1;
	off_t off = 0;

	while (off < at) {
		size_t want = at - off < (off_t)sizeof(chunk) ? (size_t)(at - off) : sizeof(chunk);
		ssize_t r = pread_full(fd, chunk, want, off);

		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			line += chunk[i] == '\n';
		off += r;
	}
	return line;
}

/*
 * The last record of fd: its seq and hash into ri; *empty for an empty file.  -1 with
 * err naming path and line when it is damaged or unreadable.
 */
static int read_last_record(int fd, const char *path, const struct audit_key *key,
                            struct rec_info *ri, bool *empty, char *err, size_t errlen)
{
	struct pgw_sb b = {0}, scratch = {0};
	struct stat st;
	off_t start;
	size_t end, begin;
	char why[256];
	int rc = -1;

	*empty = false;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "audit log %s: fstat: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_size == 0) {
		*empty = true;
		return 0;
	}
	if (read_tail(fd, st.st_size, 1, &b, &start) < 0) {
		snprintf(err, errlen, "audit log %s: read: %s", path, strerror(errno));
		goto out;
	}
	end = b.len;
	if (end == 0 || b.buf[end - 1] != '\n') {
		/* a torn write: the last line has no newline */
		begin = end;
		while (begin > 0 && b.buf[begin - 1] != '\n')
			begin--;
		snprintf(err, errlen,
		         "audit log %s line %ld: incomplete last record (no newline at its end; an "
		         "interrupted write?); move the file aside to start a new log",
		         path, line_number_at(fd, start + (off_t)begin));
		goto out;
	}
	end--; /* the last line is b.buf[begin, end) */
	begin = end;
	while (begin > 0 && b.buf[begin - 1] != '\n')
		begin--;
	if (check_record(b.buf + begin, end - begin, &scratch, key, ri, why, sizeof(why)) < 0) {
		snprintf(err, errlen,
		         "audit log %s line %ld: last record is damaged: %s; check it with "
		         "pgw_audit_verify (pgwardenctl fence-log --verify)",
		         path, line_number_at(fd, start + (off_t)begin), why);
		goto out;
	}
	rc = 0;
out:
	pgw_sb_free(&b);
	pgw_sb_free(&scratch);
	return rc;
}

/* Continue seq and chain from the file's actual last record. */
static int resync(struct pgw_audit *a, char *err, size_t errlen)
{
	struct audit_key key = {a->key, a->key_len};
	struct rec_info ri;
	struct stat st;
	bool empty;

	if (read_last_record(a->fd, a->path, &key, &ri, &empty, err, errlen) < 0)
		return -1;
	if (fstat(a->fd, &st) < 0) {
		snprintf(err, errlen, "audit log %s: fstat: %s", a->path, strerror(errno));
		return -1;
	}
	if (empty) {
		a->next_seq = 1;
		memcpy(a->last_hash, zero_hash, sizeof(zero_hash));
	} else {
		a->next_seq = ri.seq + 1;
		memcpy(a->last_hash, ri.hash, sizeof(ri.hash));
	}
	a->size = st.st_size;
	return 0;
}

/* --- files and directories --- */

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int fsync_dir_of(const char *path, char *err, size_t errlen)
{
	char *dir = dir_of(path);
	int fd, rc = 0;

	if (!dir) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "audit log directory %s: %s: %s", dir,
		         fd < 0 ? "open" : "fsync", strerror(errno));
		rc = -1;
	}
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

static int lock_fd(int fd)
{
	int r;

	do
		r = flock(fd, LOCK_EX);
	while (r < 0 && errno == EINTR);
	return r;
}

/*
 * Open PATH for appending; create it (0600, fsync file and directory) when missing and
 * `create` is set.  The descriptor, or -1 with err.
 */
static int open_log(const char *path, bool create, char *err, size_t errlen)
{
	for (int tries = 0; tries < 3; tries++) {
		struct stat st;
		int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);

		if (fd >= 0) {
			if (fstat(fd, &st) < 0) {
				snprintf(err, errlen, "audit log %s: fstat: %s", path,
				         strerror(errno));
				close(fd);
				return -1;
			}
			if (!S_ISREG(st.st_mode)) {
				snprintf(err, errlen, "audit log %s: not a regular file", path);
				close(fd);
				return -1;
			}
			return fd;
		}
		if (errno != ENOENT || !create) {
			snprintf(err, errlen, "audit log %s: open: %s", path, strerror(errno));
			return -1;
		}
		fd =
		    open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno == EEXIST)
			continue; /* created by someone else meanwhile: open theirs */
		if (fd < 0) {
			snprintf(err, errlen, "audit log %s: create: %s", path, strerror(errno));
			return -1;
		}
		if (fchmod(fd, 0600) < 0 || fsync(fd) < 0) {
			snprintf(err, errlen, "audit log %s: chmod/fsync after create: %s", path,
			         strerror(errno));
			close(fd);
			return -1;
		}
		if (fsync_dir_of(path, err, errlen) < 0) {
			close(fd);
			return -1;
		}
		return fd;
	}
	snprintf(err, errlen, "audit log %s: open: the file keeps being replaced", path);
	return -1;
}

/*
 * Take the append lock on the file that PATH names now (another process may have rotated
 * it: then switch to the new file) and continue from its actual end.
 */
static int lock_current(struct pgw_audit *a, char *err, size_t errlen)
{
	for (int tries = 0; tries < 5; tries++) {
		struct stat sp, sf;
		int fd;

		if (lock_fd(a->fd) < 0) {
			snprintf(err, errlen, "audit log %s: flock: %s", a->path, strerror(errno));
			return -1;
		}
		if (fstat(a->fd, &sf) < 0) {
			snprintf(err, errlen, "audit log %s: fstat: %s", a->path, strerror(errno));
			flock(a->fd, LOCK_UN);
			return -1;
		}
		if (stat(a->path, &sp) == 0 && sp.st_dev == sf.st_dev && sp.st_ino == sf.st_ino) {
			if (sf.st_size != a->size && resync(a, err, errlen) < 0) {
				flock(a->fd, LOCK_UN);
				return -1;
			}
			return 0;
		}
		/* PATH was rotated or replaced since we opened it */
		fd = open_log(a->path, false, err, errlen);
		if (fd < 0) {
			flock(a->fd, LOCK_UN);
			return -1;
		}
		close(a->fd); /* releases its lock */
		a->fd = fd;
		a->size = -1;
	}
	snprintf(err, errlen, "audit log %s: the file keeps being replaced", a->path);
	return -1;
}

/* --- writing --- */

static void now_strings(char *wall, size_t wlen, char *mono, size_t mlen)
{
	struct timespec rt, mt;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	gmtime_r(&rt.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(wall, wlen, "%s.%03ldZ", base, rt.tv_nsec / 1000000);
	snprintf(mono, mlen, "%lld.%03ld", (long long)mt.tv_sec, mt.tv_nsec / 1000000);
}

/* The full line (with hash and '\n') for record r with the given seq and prev. */
static int build_line(const struct pgw_audit *a, const struct pgw_audit_rec *r, int64_t seq,
                      const char *prev, struct pgw_sb *b, char hash[PGW_AUDIT_HASH_HEX + 1])
{
	char wall[48], mono[32];

	now_strings(wall, sizeof(wall), mono, sizeof(mono));
	pgw_sb_addf(b, "{\"seq\":%lld,\"wall\":\"%s\",\"mono\":%s,\"cluster\":", (long long)seq,
	            wall, mono);
	buf_json_str(b, a->cluster);
	pgw_sb_add(b, ",\"actor\":");
	buf_json_str(b, a->actor);
	pgw_sb_add(b, ",\"target\":");
	buf_json_str(b, r->target);
	pgw_sb_add(b, ",\"bmc\":");
	buf_json_str(b, r->bmc);
	pgw_sb_add(b, ",\"action\":");
	buf_json_str(b, r->action);
	pgw_sb_add(b, ",\"result\":");
	buf_json_str(b, r->result);
	pgw_sb_add(b, ",\"reason\":");
	buf_json_str(b, r->reason);
	pgw_sb_addf(b, ",\"lease\":%lld,\"timeline\":%d,\"prev\":\"%s\"}", (long long)r->lease,
	            r->timeline, prev);
	struct audit_key key = {a->key, a->key_len};

	if (b->oom || digest_hex(&key, b->buf, b->len, hash) < 0)
		return -1;
	b->len--; /* drop the '}' of the canonical text */
	pgw_sb_add(b, HASH_MEMBER);
	pgw_sb_add(b, hash);
	pgw_sb_add(b, "\"}\n");
	return b->oom ? -1 : 0;
}

static void journal(const struct pgw_audit *a, const struct pgw_audit_rec *r, int64_t seq,
                    const char *prev, const char *hash)
{
	const char *res = r->result ? r->result : "";
	int prio = (!strcmp(res, "failed") || !strcmp(res, "timeout")) ? LOG_ERR : LOG_NOTICE;

	/* best effort: the file is the record; a missing journal must not stop fencing */
	sd_journal_send(
	    "MESSAGE=fencing audit #%lld: %s %s%s%s%s%s", (long long)seq, r->action,
	    r->target ? r->target : "-", r->result ? ": " : "", res, r->reason ? " - " : "",
	    r->reason ? r->reason : "", "MESSAGE_ID=" PGW_AUDIT_MESSAGE_ID, "PRIORITY=%d", prio,
	    "SYSLOG_IDENTIFIER=pgwarden", "PGW_FENCE_SEQ=%lld", (long long)seq,
	    "PGW_FENCE_ACTION=%s", r->action, "PGW_FENCE_TARGET=%s", r->target ? r->target : "",
	    "PGW_FENCE_BMC=%s", r->bmc ? r->bmc : "", "PGW_FENCE_RESULT=%s", res,
	    "PGW_FENCE_REASON=%s", r->reason ? r->reason : "", "PGW_FENCE_LEASE=%lld",
	    (long long)r->lease, "PGW_FENCE_TIMELINE=%d", r->timeline, "PGW_FENCE_CLUSTER=%s",
	    a->cluster ? a->cluster : "", "PGW_FENCE_ACTOR=%s", a->actor ? a->actor : "",
	    "PGW_FENCE_PREV=%s", prev, "PGW_FENCE_HASH=%s", hash, NULL);
}

/* Write one record to fd (locked, synced), fsync.  On error nothing of it stays. */
static int append_locked(struct pgw_audit *a, const struct pgw_audit_rec *r, char *err,
                         size_t errlen)
{
	char hash[PGW_AUDIT_HASH_HEX + 1], prev[PGW_AUDIT_HASH_HEX + 1];
	struct pgw_sb b = {0};
	off_t before = a->size;
	int64_t seq = a->next_seq;
	int rc = -1;

	memcpy(prev, a->last_hash, sizeof(prev));
	if (build_line(a, r, seq, prev, &b, hash) < 0) {
		snprintf(err, errlen, "audit log %s: cannot build the record (out of memory)",
		         a->path);
		goto out;
	}
	if (pgw_write_all(a->fd, b.buf, b.len) < 0) {
		snprintf(err, errlen, "audit log %s: write of record %lld: %s", a->path,
		         (long long)seq, strerror(errno));
		if (ftruncate(a->fd, before) < 0)
			a->size = -1; /* a torn record is left: the next open refuses it */
		goto out;
	}
	if (fsync(a->fd) < 0) {
		snprintf(err, errlen, "audit log %s: fsync of record %lld: %s", a->path,
		         (long long)seq, strerror(errno));
		if (ftruncate(a->fd, before) < 0)
			a->size = -1;
		goto out;
	}
	a->size = before + (off_t)b.len;
	a->next_seq = seq + 1;
	memcpy(a->last_hash, hash, sizeof(hash));
	journal(a, r, seq, prev, hash);
	rc = 0;
out:
	pgw_sb_free(&b);
	return rc;
}

/* --- public --- */

struct pgw_audit *pgw_audit_open(const char *path, const char *cluster, const char *actor,
                                 char *err, size_t errlen)
{
	return pgw_audit_open_keyed(path, cluster, actor, NULL, 0, err, errlen);
}

struct pgw_audit *pgw_audit_open_keyed(const char *path, const char *cluster, const char *actor,
                                       const unsigned char *key, size_t key_len, char *err,
                                       size_t errlen)
{
	struct pgw_audit *a;

	if (!path || !*path) {
		snprintf(err, errlen, "audit log: no path");
		return NULL;
	}
	if (key_len > PGW_AUDIT_KEY_MAX) {
		snprintf(err, errlen, "audit log %s: key longer than %d bytes", path,
		         PGW_AUDIT_KEY_MAX);
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (a) {
		a->fd = -1;
		if (key && key_len)
			memcpy(a->key, key, key_len);
		a->key_len = key && key_len ? key_len : 0;
	}
	if (!a || !(a->path = strdup(path)) || !(a->cluster = strdup(cluster ? cluster : "")) ||
	    !(a->actor = strdup(actor ? actor : ""))) {
		snprintf(err, errlen, "audit log %s: out of memory", path);
		goto fail;
	}
	a->fd = open_log(path, true, err, errlen);
	if (a->fd < 0)
		goto fail;
	if (lock_fd(a->fd) < 0) {
		snprintf(err, errlen, "audit log %s: flock: %s", path, strerror(errno));
		goto fail;
	}
	if (resync(a, err, errlen) < 0)
		goto fail;
	flock(a->fd, LOCK_UN);
	return a;
fail:
	pgw_audit_close(a);
	return NULL;
}

int pgw_audit_append(struct pgw_audit *a, const struct pgw_audit_rec *r, char *err, size_t errlen)
{
	int rc;

	if (!r || !r->action || !*r->action) {
		snprintf(err, errlen, "audit log %s: a record needs an action", a->path);
		return -1;
	}
	if (lock_current(a, err, errlen) < 0)
		return -1;
	rc = append_locked(a, r, err, errlen);
	flock(a->fd, LOCK_UN);
	return rc;
}

int pgw_audit_rotate(struct pgw_audit *a, char *err, size_t errlen)
{
	size_t plen = strlen(a->path) + 32;
	char *from = malloc(plen), *to = malloc(plen);
	struct pgw_audit n = {.fd = -1};
	char reason[PATH_MAX + 64];
	struct stat st;
	int top = 0, moved, rc = -1;

	if (!from || !to) {
		snprintf(err, errlen, "audit log %s: out of memory", a->path);
		goto out;
	}
	if (lock_current(a, err, errlen) < 0)
		goto out;
	n = *a; /* the new file continues seq and chain; only fd and size differ */
	/* PATH.N -> PATH.N+1, highest first; nothing is deleted */
	while (top < MAX_ROTATED) {
		snprintf(from, plen, "%s.%d", a->path, top + 1);
		if (lstat(from, &st) < 0)
			break;
		top++;
	}
	moved = top + 1; /* the lowest N moved to N+1 so far */
	for (int i = top; i >= 1; i--) {
		snprintf(from, plen, "%s.%d", a->path, i);
		snprintf(to, plen, "%s.%d", a->path, i + 1);
		if (rename(from, to) < 0) {
			snprintf(err, errlen, "audit log rotation: rename %s -> %s: %s", from, to,
			         strerror(errno));
			goto undo_shift;
		}
		moved = i;
	}
	/* PATH.1 is a second name of the current file until the new PATH replaces it, so
	 * PATH never disappears (another process opening it meanwhile gets the old file) */
	snprintf(to, plen, "%s.1", a->path);
	if (link(a->path, to) < 0) {
		snprintf(err, errlen, "audit log rotation: link %s -> %s: %s", a->path, to,
		         strerror(errno));
		goto undo_shift;
	}
	snprintf(from, plen, "%s.rotate-%ld", a->path, (long)getpid());
	unlink(from);
	n.fd = open(from, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (n.fd < 0) {
		snprintf(err, errlen, "audit log rotation: create %s: %s", from, strerror(errno));
		goto undo_link;
	}
	if (fchmod(n.fd, 0600) < 0) {
		snprintf(err, errlen, "audit log rotation: chmod %s: %s", from, strerror(errno));
		goto undo_new;
	}
	n.size = 0;
	snprintf(reason, sizeof(reason), "continues %s.1", a->path);
	{
		struct pgw_audit_rec r = {.action = "rotate", .result = "ok", .reason = reason};

		/* append_locked names the file by n.path; the error is about the new file */
		if (append_locked(&n, &r, err, errlen) < 0)
			goto undo_new;
	}
	if (rename(from, a->path) < 0) {
		snprintf(err, errlen, "audit log rotation: rename %s -> %s: %s", from, a->path,
		         strerror(errno));
		goto undo_new;
	}
	if (fsync_dir_of(a->path, err, errlen) < 0) {
		/* the rename happened; the directory entry may not be durable yet */
		close(a->fd);
		a->fd = n.fd;
		a->size = n.size;
		a->next_seq = n.next_seq;
		memcpy(a->last_hash, n.last_hash, sizeof(n.last_hash));
		goto out;
	}
	close(a->fd); /* drops the old file's lock: waiting writers see the new PATH */
	a->fd = n.fd;
	a->size = n.size;
	a->next_seq = n.next_seq;
	memcpy(a->last_hash, n.last_hash, sizeof(n.last_hash));
	rc = 0;
	goto out;
undo_new:
	if (n.fd >= 0)
		close(n.fd);
	unlink(from);
undo_link:
	snprintf(to, plen, "%s.1", a->path);
	unlink(to);
undo_shift:
	/* put PATH.N+1 back to PATH.N, so no number is missing (best effort) */
	for (int i = moved; i <= top; i++) {
		snprintf(from, plen, "%s.%d", a->path, i + 1);
		snprintf(to, plen, "%s.%d", a->path, i);
		if (rename(from, to) < 0)
			break;
	}
	flock(a->fd, LOCK_UN);
out:
	free(from);
	free(to);
	return rc;
}

void pgw_audit_close(struct pgw_audit *a)
{
	if (a)
		explicit_bzero(a->key, sizeof(a->key));
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	free(a->cluster);
	free(a->actor);
	free(a);
}

int64_t pgw_audit_next_seq(const struct pgw_audit *a)
{
	return a->next_seq;
}

const char *pgw_audit_last_hash(const struct pgw_audit *a)
{
	return a->last_hash;
}

/* --- verification --- */

static int verify_file(const char *path, const char *expect_prev, const struct audit_key *key,
                       char *err, size_t errlen);

int pgw_audit_verify(const char *path, const char *expect_prev, char *err, size_t errlen)
{
	return verify_file(path, expect_prev, NULL, err, errlen);
}

static int verify_file(const char *path, const char *expect_prev, const struct audit_key *key,
                       char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	struct pgw_sb scratch = {0};
	struct rec_info ri, last = {0};
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int rc = 0;

	if (!f) {
		snprintf(err, errlen, "audit log %s: open: %s", path, strerror(errno));
		return -1;
	}
	if (expect_prev && !is_hex64(expect_prev, strlen(expect_prev))) {
		snprintf(err, errlen, "audit log %s: the expected prev hash is not 64 hex digits",
		         path);
		fclose(f);
		return -1;
	}
	errno = 0;
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[n - 1] != '\n') {
			snprintf(
			    err, errlen,
			    "audit log %s line %ld: incomplete record (no newline at its end; an "
			    "interrupted write?)",
			    path, lineno);
			rc = (int)lineno;
			break;
		}
		if (check_record(line, (size_t)n - 1, &scratch, key, &ri, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "audit log %s line %ld: %s", path, lineno, why);
			rc = (int)lineno;
			break;
		}
		if (lineno == 1) {
			bool genesis = ri.seq == 1 && !strcmp(ri.prev, zero_hash);

			if (expect_prev && !(ri.rotate && !strcmp(ri.prev, expect_prev))) {
				snprintf(
				    err, errlen,
				    "audit log %s line 1: expected a \"rotate\" record continuing "
				    "from %.12s..., found %s with seq %lld and prev %.12s...",
				    path, expect_prev, ri.rotate ? "a rotate record" : "a record",
				    (long long)ri.seq, ri.prev);
				rc = 1;
				break;
			}
			if (!expect_prev && !genesis && !ri.rotate) {
				snprintf(
				    err, errlen,
				    "audit log %s line 1: the log starts at seq %lld with prev "
				    "%.12s...: earlier records were removed (a new log starts at "
				    "seq "
				    "1, a rotated one with a \"rotate\" record)",
				    path, (long long)ri.seq, ri.prev);
				rc = 1;
				break;
			}
		} else if (ri.seq != last.seq + 1 || strcmp(ri.prev, last.hash) != 0) {
			char what[160];

			if (ri.seq != last.seq + 1)
				snprintf(
				    what, sizeof(what), "seq %lld follows seq %lld%s",
				    (long long)ri.seq, (long long)last.seq,
				    strcmp(ri.prev, last.hash) != 0
				        ? " and prev does not match the hash of the line before"
				        : "");
			else
				snprintf(what, sizeof(what),
				         "prev %.12s... does not match the hash %.12s... of the "
				         "line before",
				         ri.prev, last.hash);
			snprintf(
			    err, errlen,
			    "audit log %s line %ld: %s: a record was removed or the lines were "
			    "reordered",
			    path, lineno, what);
			rc = (int)lineno;
			break;
		}
		last = ri;
		errno = 0;
	}
	if (rc == 0 && n < 0 && errno != 0) {
		snprintf(err, errlen, "audit log %s: read: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	pgw_sb_free(&scratch);
	fclose(f);
	return rc;
}

static int file_last_hash(const char *path, const struct audit_key *key,
                          char out[PGW_AUDIT_HASH_HEX + 1], char *err, size_t errlen);

int pgw_audit_file_last_hash(const char *path, char out[PGW_AUDIT_HASH_HEX + 1], char *err,
                             size_t errlen)
{
	return file_last_hash(path, NULL, out, err, errlen);
}

static int file_last_hash(const char *path, const struct audit_key *key,
                          char out[PGW_AUDIT_HASH_HEX + 1], char *err, size_t errlen)
{
	struct rec_info ri;
	bool empty;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	out[0] = '\0';
	if (fd < 0) {
		snprintf(err, errlen, "audit log %s: open: %s", path, strerror(errno));
		return -1;
	}
	rc = read_last_record(fd, path, key, &ri, &empty, err, errlen);
	if (rc == 0 && !empty)
		memcpy(out, ri.hash, sizeof(ri.hash));
	close(fd);
	return rc;
}

int pgw_audit_verify_all(const char *path, char *err, size_t errlen)
{
	return pgw_audit_verify_all_keyed(path, NULL, 0, err, errlen);
}

int pgw_audit_verify_all_keyed(const char *path, const unsigned char *key_bytes, size_t key_len,
                               char *err, size_t errlen)
{
	struct audit_key k = {key_bytes, key_bytes ? key_len : 0}, *key = k.len ? &k : NULL;
	size_t plen = strlen(path) + 32;
	char *name = malloc(plen);
	char prev[PGW_AUDIT_HASH_HEX + 1] = "";
	struct stat st;
	int top = 0, rc = 0;

	if (!name) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (top < MAX_ROTATED) {
		snprintf(name, plen, "%s.%d", path, top + 1);
		if (stat(name, &st) < 0)
			break;
		top++;
	}
	for (int i = top; i >= 0 && rc == 0; i--) {
		if (i > 0)
			snprintf(name, plen, "%s.%d", path, i);
		else
			snprintf(name, plen, "%s", path);
		rc = verify_file(name, i == top ? NULL : prev, key, err, errlen);
		if (rc == 0 && file_last_hash(name, key, prev, err, errlen) < 0)
			rc = -1;
		if (rc == 0 && i > 0 && prev[0] == '\0') {
			snprintf(err, errlen, "audit log %s: empty rotated file", name);
			rc = -1;
		}
	}
	free(name);
	return rc;
}

/* --- tail --- */

char *pgw_audit_tail_json(const char *path, int n)
{
	struct json_object *arr;
	struct pgw_sb b = {0};
	struct stat st;
	off_t start = 0;
	size_t pos, end, nl = 0;
	char *res = NULL;
	int fd;

	if (n < 0)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? strdup("[]") : NULL;
	arr = json_object_new_array();
	if (!arr || fstat(fd, &st) < 0 || (n > 0 && read_tail(fd, st.st_size, n, &b, &start) < 0))
		goto out;
	if (n == 0 || b.len == 0)
		goto done;
	/* complete lines only: a torn last line is left out */
	end = b.len;
	while (end > 0 && b.buf[end - 1] != '\n')
		end--;
	/* walk back n lines from end */
	pos = end;
	while (pos > 0 && nl <= (size_t)n) {
		if (b.buf[pos - 1] == '\n' && ++nl == (size_t)n + 1)
			break;
		pos--;
	}
	if (start > 0 && pos == 0)
		goto out; /* cannot happen: read_tail gave enough lines */
	while (pos < end) {
		char *eol = memchr(b.buf + pos, '\n', end - pos);
		size_t len = (size_t)(eol - (b.buf + pos));
		struct json_tokener *tok = json_tokener_new();
		struct json_object *o = NULL;

		if (tok) {
			o = json_tokener_parse_ex(tok, b.buf + pos, (int)len);
			if (o && (json_tokener_get_error(tok) != json_tokener_success ||
			          !json_object_is_type(o, json_type_object))) {
				json_object_put(o);
				o = NULL;
			}
			json_tokener_free(tok);
		}
		if (!o) {
			o = json_object_new_object();
			if (o)
				json_object_object_add(o, "damaged", json_object_new_boolean(1));
		}
		if (o)
			json_object_array_add(arr, o);
		pos += len + 1;
	}
done:
	res = strdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
	                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(arr);
	pgw_sb_free(&b);
	close(fd);
	return res;
}

/* --- the key --- */

int pgw_audit_read_key(const char *path, unsigned char key[PGW_AUDIT_KEY_MAX + 1], size_t *len,
                       char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	*len = 0;
	if (fd < 0) {
		snprintf(err, errlen, "fencing.audit_key_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		         "fencing.audit_key_file %s: must be a regular file owned by root and "
		         "readable by nobody else (the database's user must not read it)",
		         path);
		close(fd);
		return -1;
	}
	n = read(fd, key, PGW_AUDIT_KEY_MAX + 1);
	close(fd);
	if (n < 32 || n > PGW_AUDIT_KEY_MAX) {
		explicit_bzero(key, PGW_AUDIT_KEY_MAX + 1);
		snprintf(err, errlen, "fencing.audit_key_file %s: expected 32 to %d bytes, got %zd",
		         path, PGW_AUDIT_KEY_MAX, n);
		return -1;
	}
	*len = (size_t)n;
	return 0;
}
