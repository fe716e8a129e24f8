/*
 * audit.h - the fencing audit log, ARCHITECTURE.md rule S4: an append-only file of JSON
 * lines, one per fencing decision, attempt, result and the promotion that follows.  Each
 * record is written and fsync'ed before pgw_audit_append() returns, so the caller takes
 * its next step only once the record is on disk; each record carries the SHA-256 of the
 * one before it, so a changed byte, a removed line or two swapped lines are found by
 * pgw_audit_verify(); each record is also sent to the journal with structured fields.
 *
 * Record (one line, the keys always in this order, no blanks, '\n' at the end):
 *
 *   {"seq":7,"wall":"2026-11-23T14:05:01.123Z","mono":1946.250,"cluster":"pg1",
 *    "actor":"node2","target":"node1","bmc":"127.0.0.1:9001","action":"power-off",
 *    "result":"ok","reason":"...","lease":7587869402934,"timeline":3,
 *    "prev":"<64 hex>","hash":"<64 hex>"}
 *
 *   seq       1, 2, 3, ... without gaps, continued across rotation;
 *   wall      UTC, millisecond precision (display only);
 *   mono      CLOCK_MONOTONIC in seconds with three decimals (the same clock as the HA
 *             loop's deadlines and Python's time.monotonic());
 *   target, bmc, result, reason
 *             strings, or null when the caller passed NULL; bmc is "host:port", never a
 *             user name or password;
 *   lease     the etcd lease id involved (0 = none), timeline the PostgreSQL timeline
 *             (0 = none);
 *   prev      the "hash" of the record before; the first record of a new log has seq 1
 *             and prev = 64 '0'; the first record of a file started by pgw_audit_rotate()
 *             has action "rotate" and prev = the last hash of PATH.1;
 *   hash      lowercase hex SHA-256 of the record's canonical text.
 *
 * Canonical text: the line without its '\n' and without its last member
 * `,"hash":"<64 hex>"`, i.e. the bytes from '{' to the end of the "prev" value, followed
 * by '}'.  It is always valid JSON: strings escape '"', '\' and the characters below 0x20
 * and 0x7f (\b \f \n \r \t, otherwise \u00XX), invalid UTF-8 bytes are replaced by
 * U+FFFD, and every string field is cut at PGW_AUDIT_FIELD_MAX bytes (on a character
 * boundary).  The hash is over the bytes as written; verification never re-serialises.
 *
 * A chain proves the order and integrity of what is in the file, not that nothing was
 * cut off its end; the journal copy of each record (with PGW_FENCE_HASH) is the external
 * anchor for that.
 *
 * Several processes may append to one file: appends hold flock(LOCK_EX) and continue
 * from the file's actual last record when another process wrote since.
 */
#ifndef PGW_AUDIT_H
#define PGW_AUDIT_H

#include <stddef.h>
#include <stdint.h>

/* MESSAGE_ID of every audit record in the journal (journalctl MESSAGE_ID=...). */
#define PGW_AUDIT_MESSAGE_ID "8ecb3e9512aa44cf934839e69e64370a"

#define PGW_AUDIT_FIELD_MAX 1024 /* bytes per string field, before escaping */
#define PGW_AUDIT_HASH_HEX  64

struct pgw_audit; /* opaque: owns the descriptor, the next seq and the last hash */

struct pgw_audit_rec {
	const char *action; /* "fence-intent", "power-off", "power-status", "fence-result",
	                       "promote", "unfence", ... (required) */
	const char *target; /* the member fenced, or NULL */
	const char *bmc;    /* "host:port" of its BMC, never credentials, or NULL */
	const char *result; /* "ok", "failed", "timeout", "off", "on", ..., or NULL */
	const char *reason; /* free text, or NULL */
	int64_t lease;      /* 0 = none */
	int timeline;       /* 0 = none */
};

/*
 * Open PATH for appending, creating it (mode 0600, then fsync of the file and of its
 * directory) when it does not exist.  The last record is read to continue seq and the
 * chain; when it is damaged (not JSON, incomplete, wrong hash) the result is NULL and
 * err names the file and the line: the daemon must not fence without an audit log.
 * cluster and actor (this node's name) are copied into every record.
 */
struct pgw_audit *pgw_audit_open(const char *path, const char *cluster, const char *actor,
                                 char *err, size_t errlen);

/*
 * Append one record: write, fsync, then send it to the journal (MESSAGE_ID
 * PGW_AUDIT_MESSAGE_ID; fields PGW_FENCE_SEQ, _ACTION, _TARGET, _BMC, _RESULT, _REASON,
 * _LEASE, _TIMELINE, _CLUSTER, _ACTOR, _PREV, _HASH; a journal that cannot be reached is
 * not an error).  0, or -1 with err (nothing of the record is left in the file then).
 */
int pgw_audit_append(struct pgw_audit *a, const struct pgw_audit_rec *r, char *err, size_t errlen);

/*
 * Rotate: PATH.N -> PATH.N+1 for every existing N (highest first; nothing is deleted),
 * PATH -> PATH.1, a new PATH (0600) whose first record is {"action":"rotate",
 * "prev": last hash of PATH.1, seq continuing}.  0, or -1 with err.
 */
int pgw_audit_rotate(struct pgw_audit *a, char *err, size_t errlen);

void pgw_audit_close(struct pgw_audit *a);

/* seq of the next record and hash of the last one (64 hex + NUL), for tests and status. */
int64_t pgw_audit_next_seq(const struct pgw_audit *a);
const char *pgw_audit_last_hash(const struct pgw_audit *a);

/*
 * Verify one file.  0 when the chain is intact; otherwise the 1-based line number of the
 * first bad record, with err saying what is wrong:
 *   - "hash mismatch" (a byte of the record was changed),
 *   - "seq N follows seq M" / "prev does not match" (a line was removed or reordered),
 *   - "not an audit record" / "bad JSON" / "incomplete record" (damage, a torn write),
 *   - line 1 neither a new log's first record (seq 1, prev zeros) nor a "rotate" record
 *     (earlier records were cut off).
 * expect_prev, when not NULL, is the last hash of the file this one was rotated from:
 * the first record must then be a "rotate" record with that prev.  -1 when the file
 * cannot be read (err says why).  An empty file is intact.
 */
int pgw_audit_verify(const char *path, const char *expect_prev, char *err, size_t errlen);

/*
 * Verify PATH and its rotated predecessors PATH.N ... PATH.1 as one chain (oldest first).
 * 0 when intact; otherwise the line number of the first bad record and err starting with
 * that file's name; -1 when a file cannot be read.
 */
int pgw_audit_verify_all(const char *path, char *err, size_t errlen);

/*
 * Keyed logs (fencing.audit_key_file): each record's "hash" is HMAC-SHA256 with a key
 * that only root can read; the daemon reads it before it drops privileges and keeps it
 * in memory (and makes itself non-dumpable).  Whoever can write the file but not read
 * the key - the postgres user, so any database superuser through COPY ... TO PROGRAM -
 * can no longer rewrite the chain so that it verifies: verify with the key (as root).
 * Verified without the key, a keyed log fails; a log rewritten as a plain chain verifies
 * without the key and fails with it ("chained without the key").
 */
#define PGW_AUDIT_KEY_MAX 64
struct pgw_audit *pgw_audit_open_keyed(const char *path, const char *cluster, const char *actor,
                                       const unsigned char *key, size_t key_len, char *err,
                                       size_t errlen);
int pgw_audit_verify_all_keyed(const char *path, const unsigned char *key, size_t key_len,
                               char *err, size_t errlen);
/* The key (32 to 64 bytes) from a file owned by root, mode 0600 or stricter; -1 + err. */
int pgw_audit_read_key(const char *path, unsigned char key[PGW_AUDIT_KEY_MAX + 1], size_t *len,
                       char *err, size_t errlen);

/*
 * The hash of the last record of PATH (64 hex + NUL into out), "" for an empty file.
 * 0, or -1 with err (unreadable, or the last record is damaged).
 */
int pgw_audit_file_last_hash(const char *path, char out[PGW_AUDIT_HASH_HEX + 1], char *err,
                             size_t errlen);

/*
 * The last n records of PATH as a JSON array, oldest first (for GET /fencing), malloc'd;
 * "[]" when the file does not exist; a line that is not JSON appears as
 * {"damaged":true}.  NULL on a read error or n < 0.
 */
char *pgw_audit_tail_json(const char *path, int n);

#endif
