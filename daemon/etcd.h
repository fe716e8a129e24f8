/*
 * etcd.h - a small etcd v3 client over the JSON gateway (POST /v3/...), built on
 * libcurl and json-c.  Keys and values are base64-encoded on the wire; callers
 * see plain bytes.
 *
 * Every call takes a timeout in milliseconds and returns within it (plus a few
 * ms).  On a connection error the next endpoint is tried (round robin, the one
 * that worked last first) as long as time remains.  An answer that cannot be
 * parsed is an error (PGW_ETCD_EPROTO), never a success.
 *
 * Return codes: 0 on success, a negative pgw_etcd_err otherwise; the client
 * keeps a human-readable message of the last error (pgw_etcd_errmsg), naming
 * the endpoint and what went wrong.  Not thread-safe: one client per thread.
 */
#ifndef PGW_ETCD_H
#define PGW_ETCD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pgw_etcd_err {
	PGW_ETCD_OK = 0,
	PGW_ETCD_EUNAVAIL = -1, /* no endpoint answered in time */
	PGW_ETCD_EPROTO = -2,   /* unparsable or unexpected answer */
	PGW_ETCD_EREJECT = -3,  /* etcd answered with an error (e.g. lease not found) */
	PGW_ETCD_ENOMEM = -4,
	PGW_ETCD_ECOMPACTED = -5, /* watch: start revision already compacted; re-read */
};

struct pgw_etcd;

struct pgw_etcd_tls {
	const char *cacert, *cert, *key; /* NULL when unused */
};

struct pgw_etcd_kv {
	char *key;
	char *value; /* NUL-terminated copy; value_len excludes the NUL */
	size_t value_len;
	int64_t create_revision, mod_revision, version, lease;
};

struct pgw_etcd_range {
	struct pgw_etcd_kv *kvs;
	size_t n;
	int64_t revision; /* header.revision of the answer */
};

/* endpoints: "host:port" strings; protocol "http" or "https"; user/password may be NULL. */
struct pgw_etcd *pgw_etcd_new(const char *const *endpoints, size_t n, const char *protocol,
                              const char *user, const char *password,
                              const struct pgw_etcd_tls *tls);
void pgw_etcd_free(struct pgw_etcd *c);
const char *pgw_etcd_errmsg(const struct pgw_etcd *c);

/* Leases.  keepalive: *ttl_left = remaining TTL; 0 means the lease is gone. */
int pgw_etcd_lease_grant(struct pgw_etcd *c, int ttl, int timeout_ms, int64_t *id,
                         int *granted_ttl);
int pgw_etcd_lease_keepalive(struct pgw_etcd *c, int64_t id, int timeout_ms, int *ttl_left);
int pgw_etcd_lease_revoke(struct pgw_etcd *c, int64_t id, int timeout_ms);
/* ... and the revision at which etcd deleted its keys (0: not in the answer). */
int pgw_etcd_lease_revoke_at(struct pgw_etcd *c, int64_t id, int timeout_ms, int64_t *revision);
/* LeaseTimeToLive: *ttl_left (whole seconds, truncated; -1: no such lease) and the
 * *granted TTL. */
int pgw_etcd_lease_ttl(struct pgw_etcd *c, int64_t id, int timeout_ms, int64_t *ttl_left,
                       int64_t *granted);

/* Reads: all keys with this prefix (sorted by key), or one key (n == 0 if absent). */
int pgw_etcd_range_prefix(struct pgw_etcd *c, const char *prefix, int timeout_ms,
                          struct pgw_etcd_range *out);
int pgw_etcd_get(struct pgw_etcd *c, const char *key, int timeout_ms, struct pgw_etcd_range *out);
void pgw_etcd_range_free(struct pgw_etcd_range *r);

/* Writes.  lease 0 = no lease. */
int pgw_etcd_put(struct pgw_etcd *c, const char *key, const char *value, size_t len, int64_t lease,
                 int timeout_ms);
int pgw_etcd_delete(struct pgw_etcd *c, const char *key, int timeout_ms);

/* Transactions; *succeeded tells whether the compare held (and the write happened). */
/* create-if-absent: compare create_revision == 0, then put. */
int pgw_etcd_create(struct pgw_etcd *c, const char *key, const char *value, size_t len,
                    int64_t lease, int timeout_ms, bool *succeeded);
/* put if the key's mod_revision == mod_rev (mod_rev 0 = key must be absent). */
int pgw_etcd_put_if_mod(struct pgw_etcd *c, const char *key, const char *value, size_t len,
                        int64_t lease, int64_t mod_rev, int timeout_ms, bool *succeeded);
/* put (no lease) if the key's mod_revision == mod_rev and key `guard` is attached to
 * guard_lease (the leader key to this node's lease: only the leader writes). */
int pgw_etcd_put_if_mod_guarded(struct pgw_etcd *c, const char *key, const char *value,
                                int64_t mod_rev, const char *guard, int64_t guard_lease,
                                int timeout_ms, bool *succeeded);
/* delete if the key's value equals `value` exactly. */
int pgw_etcd_delete_if_value(struct pgw_etcd *c, const char *key, const char *value, int timeout_ms,
                             bool *succeeded);
/* The same two, also putting key2 = value2 (no lease) in the same transaction (key2 NULL: not). */
int pgw_etcd_create_and_put(struct pgw_etcd *c, const char *key, const char *value, size_t len,
                            int64_t lease, const char *key2, const char *value2, int timeout_ms,
                            bool *succeeded);
int pgw_etcd_delete_if_value_and_put(struct pgw_etcd *c, const char *key, const char *value,
                                     const char *key2, const char *value2, int timeout_ms,
                                     bool *succeeded);
/* delete if the key's mod_revision == mod_rev. */
int pgw_etcd_delete_if_mod(struct pgw_etcd *c, const char *key, int64_t mod_rev, int timeout_ms,
                           bool *succeeded);

/*
 * Watch.  Streams events for keys under `prefix` from revision start_rev on,
 * calling fn(arg, ev) for each; returns as soon as fn returns true (*fired =
 * true), or when timeout_ms passes (*fired = false, return 0).  A broken stream
 * returns an error.  Used by the HA loop to sleep until loop_wait passes or the
 * leader key changes.
 */
enum pgw_etcd_event_type { PGW_ETCD_PUT, PGW_ETCD_DELETE };
struct pgw_etcd_event {
	enum pgw_etcd_event_type type;
	const char *key; /* plain, NUL-terminated */
	int64_t mod_revision, create_revision, version;
};
typedef bool (*pgw_etcd_watch_fn)(void *arg, const struct pgw_etcd_event *ev);
/*
 * Watches return early (not fired, no error) once fn(arg) returns true: a stop
 * signal, or work for the loop (a queued REST request, SIGHUP).  libcurl asks
 * about once a second while the watch is quiet, so that is the latency.
 */
typedef bool (*pgw_etcd_interrupt_fn)(void *arg);
void pgw_etcd_set_interrupt(struct pgw_etcd *c, pgw_etcd_interrupt_fn fn, void *arg);
int pgw_etcd_watch(struct pgw_etcd *c, const char *prefix, int64_t start_rev, int timeout_ms,
                   pgw_etcd_watch_fn fn, void *arg, bool *fired);

/*
 * Base64 (standard alphabet, padded), as etcd's gateway uses it; exported for
 * the tests.  encode: malloc'd NUL-terminated text.  decode: malloc'd bytes
 * followed by a NUL (not counted in *out_len); NULL on bad input or no memory.
 */
char *pgw_etcd_b64_encode(const void *data, size_t len);
char *pgw_etcd_b64_decode(const char *text, size_t text_len, size_t *out_len);

#endif
