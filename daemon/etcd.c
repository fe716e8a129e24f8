/*
 * etcd.c - etcd v3 client over the JSON gateway (libcurl easy interface +
 * json-c); see etcd.h.
 *
 * One CURL handle per client, reused for keep-alive.  Every call has a
 * deadline; connection failures move on to the next endpoint while time
 * remains.  Answers are parsed strictly: anything that is not the JSON shape a
 * call needs is PGW_ETCD_EPROTO, an etcd error object is PGW_ETCD_EREJECT.
 * The watch stream is parsed incrementally inside the curl write callback.
 */
#include "etcd.h"
#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ANSWER  (4L * 1024 * 1024) /* refuse answers (and watch objects) larger */
#define MIN_CONNECT 100                /* ms: least connect time given to one endpoint */

struct pgw_etcd {
	char **urls;   /* "http://host:port" */
	size_t n, cur; /* cur: the endpoint that worked last */
	size_t at;     /* the endpoint of the current attempt, for messages */
	char *user, *password;
	char *token; /* auth token, valid for urls[token_ep] */
	size_t token_ep;
	CURL *curl;
	pgw_etcd_interrupt_fn interrupt; /* watches end early when interrupt(interrupt_arg) */
	void *interrupt_arg;
	char curl_err[CURL_ERROR_SIZE];
	char errmsg[512];
	int64_t nul_warned_at; /* CLOCK_MONOTONIC s of the last warning about a NUL key */
};

/* One HTTP exchange: where it goes and where the answer's bytes go. */
struct req {
	const char *what; /* e.g. "lease grant", for messages */
	const char *path; /* e.g. "/v3/lease/grant" */
	const char *body;
	size_t (*consume)(struct req *r, const char *p, size_t n); /* n, or 0 to stop */
	void (*reset)(struct req *r);
	void *ud;
	size_t received; /* bytes of the current attempt */
};

struct buf {
	char *data;
	size_t len, cap;
	bool too_big;
};

/* ---- small helpers ---------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 4))) static int fail(struct pgw_etcd *c, int code, const char *fmt,
                                                      ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

const char *pgw_etcd_errmsg(const struct pgw_etcd *c)
{
	return c ? c->errmsg : "no etcd client";
}

/* ---- base64 ------------------------------------------------------------ */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *pgw_etcd_b64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	char *out, *o;
	size_t i;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	o = out;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		*o++ = b64_chars[v >> 18 & 63];
		*o++ = b64_chars[v >> 12 & 63];
		*o++ = b64_chars[v >> 6 & 63];
		*o++ = b64_chars[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);

		*o++ = b64_chars[v >> 18 & 63];
		*o++ = b64_chars[v >> 12 & 63];
		*o++ = i + 1 < len ? b64_chars[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char ch)
{
	const char *p = ch ? strchr(b64_chars, ch) : NULL;

	return p ? (int)(p - b64_chars) : -1;
}

/* Decodes one group of 4 characters into up to 3 bytes; returns the byte count or -1. */
static int b64_group(const char *s, bool last, unsigned char *out)
{
	int v[4], pad = 0, k;

	for (k = 0; k < 4; k++) {
		if (s[k] == '=' && last && k >= 2) {
			pad++;
			v[k] = 0;
			continue;
		}
		if (pad || (v[k] = b64_value(s[k])) < 0)
			return -1;
	}
	out[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
	out[1] = (unsigned char)(v[1] << 4 | v[2] >> 2);
	out[2] = (unsigned char)(v[2] << 6 | v[3]);
	/* reject non-canonical encodings (bits set in the padding) */
	if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))
		return -1;
	return 3 - pad;
}

char *pgw_etcd_b64_decode(const char *text, size_t text_len, size_t *out_len)
{
	unsigned char *out;
	size_t i, n = 0;

	if (text_len % 4)
		return NULL;
	out = malloc(text_len / 4 * 3 + 1);
	if (!out)
		return NULL;
	for (i = 0; i < text_len; i += 4) {
		int got = b64_group(text + i, i + 4 == text_len, out + n);

		if (got < 0) {
			free(out);
			return NULL;
		}
		n += (size_t)got;
	}
	out[n] = '\0';
	*out_len = n;
	return (char *)out;
}

/* ---- JSON helpers ------------------------------------------------------ */

static int jadd(json_object *o, const char *k, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_object_add(o, k, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int jadd_b64(json_object *o, const char *k, const void *data, size_t len)
{
	char *s = pgw_etcd_b64_encode(data, len);
	int rc;

	if (!s)
		return -1;
	rc = jadd(o, k, json_object_new_string(s));
	free(s);
	return rc;
}

/* int64 fields travel as JSON strings. */
static int jadd_i64(json_object *o, const char *k, int64_t v)
{
	char s[32];

	snprintf(s, sizeof(s), "%" PRId64, v);
	return jadd(o, k, json_object_new_string(s));
}

static json_object *jget(json_object *o, const char *k)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return NULL;
	return v;
}

static json_object *jget_obj(json_object *o, const char *k)
{
	json_object *v = jget(o, k);

	return json_object_is_type(v, json_type_object) ? v : NULL;
}

/* An int64 field: a JSON string of digits or a number; absent (or null) reads as 0. */
static bool jget_i64(json_object *o, const char *k, int64_t *out)
{
	json_object *v = jget(o, k);
	const char *s;
	char *end;
	long long x;

	*out = 0;
	if (!v)
		return true;
	if (json_object_is_type(v, json_type_int)) {
		errno = 0;
		*out = json_object_get_int64(v);
		return errno == 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return false;
	s = json_object_get_string(v);
	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = x;
	return true;
}

/* A base64 string field, decoded; NULL if absent or bad.  absent_ok: absent = "". */
static char *jget_b64(json_object *o, const char *k, bool absent_ok, size_t *len)
{
	json_object *v = jget(o, k);

	if (!v && absent_ok) {
		*len = 0;
		return calloc(1, 1);
	}
	if (!json_object_is_type(v, json_type_string))
		return NULL;
	return pgw_etcd_b64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v),
	                           len);
}

/* etcd's error: {"error": "text", "message": ..., "code": N} (or a nested object in streams). */
static const char *etcd_error_text(json_object *o)
{
	json_object *e = jget(o, "error");
	json_object *m = jget(o, "message");

	if (json_object_is_type(e, json_type_object)) {
		m = jget(e, "message");
		e = NULL;
	}
	if (json_object_is_type(m, json_type_string))
		return json_object_get_string(m);
	if (json_object_is_type(e, json_type_string))
		return json_object_get_string(e);
	return "unknown error";
}

/* ---- client ------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int set_tls(struct pgw_etcd *c, const struct pgw_etcd_tls *tls)
{
	int rc = 0;

	if (!tls)
		return 0;
	if (tls->cacert)
		rc |= curl_easy_setopt(c->curl, CURLOPT_CAINFO, tls->cacert);
	if (tls->cert)
		rc |= curl_easy_setopt(c->curl, CURLOPT_SSLCERT, tls->cert);
	if (tls->key)
		rc |= curl_easy_setopt(c->curl, CURLOPT_SSLKEY, tls->key);
	return rc;
}

static int setup_curl(struct pgw_etcd *c, bool https, const struct pgw_etcd_tls *tls)
{
	int rc = 0;

	c->curl = curl_easy_init();
	if (!c->curl)
		return -1;
	rc |= curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	rc |= curl_easy_setopt(c->curl, CURLOPT_PROXY, "");
	rc |= curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
	rc |= curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MAX_ANSWER);
	rc |= curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	if (https)
		rc |= set_tls(c, tls);
	return rc ? -1 : 0;
}

static char *make_url(const char *endpoint, const char *protocol)
{
	char *u;

	if (strstr(endpoint, "://"))
		return strdup(endpoint);
	if (asprintf(&u, "%s://%s", protocol, endpoint) < 0)
		return NULL;
	return u;
}

struct pgw_etcd *pgw_etcd_new(const char *const *endpoints, size_t n, const char *protocol,
                              const char *user, const char *password,
                              const struct pgw_etcd_tls *tls)
{
	struct pgw_etcd *c;
	size_t i;

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK || !endpoints || n == 0)
		return NULL;
	if (!protocol)
		protocol = "http";
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->urls = calloc(n, sizeof(*c->urls));
	if (!c->urls)
		goto fail;
	for (c->n = 0; c->n < n; c->n++)
		if (!(c->urls[c->n] = make_url(endpoints[c->n], protocol)))
			goto fail;
	c->user = dup_or_null(user);
	c->password = dup_or_null(password ? password : (user ? "" : NULL));
	if ((user && (!c->user || !c->password)) ||
	    setup_curl(c, strcmp(protocol, "https") == 0, tls) < 0)
		goto fail;
	return c;
fail:
	for (i = 0; c->urls && i < c->n; i++)
		free(c->urls[i]);
	c->n = 0;
	pgw_etcd_free(c);
	return NULL;
}

void pgw_etcd_free(struct pgw_etcd *c)
{
	size_t i;

	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	for (i = 0; i < c->n; i++)
		free(c->urls[i]);
	free(c->urls);
	free(c->user);
	free(c->password);
	free(c->token);
	free(c);
}

/* ---- transport --------------------------------------------------------- */

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct req *r = ud;
	size_t n = size * nmemb;

	r->received += n;
	return r->consume(r, p, n);
}

static size_t buf_consume(struct req *r, const char *p, size_t n)
{
	struct buf *b = r->ud;
	size_t cap;
	char *d;

	if (b->len + n + 1 > (size_t)MAX_ANSWER) {
		b->too_big = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(d = realloc(b->data, cap)))
			return 0;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static void buf_reset(struct req *r)
{
	struct buf *b = r->ud;

	b->len = 0;
	b->too_big = false;
}

/* One POST to one endpoint; returns curl's result, *http the status (0 if none). */
static CURLcode attempt(struct pgw_etcd *c, size_t ep, struct req *r, int64_t deadline, int conn_ms,
                        long *http)
{
	struct curl_slist *h = NULL, *t;
	char url[1024], *auth;
	long left = (long)(deadline - now_ms());
	CURLcode cc;

	*http = 0;
	if (left < 1)
		return CURLE_OPERATION_TIMEDOUT;
	snprintf(url, sizeof(url), "%s%s", c->urls[ep], r->path);
	h = curl_slist_append(h, "Content-Type: application/json");
	if (h && (t = curl_slist_append(h, "Expect:")))
		h = t;
	if (h && c->token && c->token_ep == ep && strcmp(r->path, "/v3/auth/authenticate")) {
		if (asprintf(&auth, "Authorization: %s", c->token) < 0)
			auth = NULL;
		t = auth ? curl_slist_append(h, auth) : NULL;
		free(auth);
		if (!t) {
			curl_slist_free_all(h);
			return CURLE_OUT_OF_MEMORY;
		}
	}
	if (!h)
		return CURLE_OUT_OF_MEMORY;
	c->at = ep;
	r->received = 0;
	r->reset(r);
	c->curl_err[0] = '\0';
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body));
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, left);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(conn_ms < left ? conn_ms : left));
	cc = curl_easy_perform(c->curl);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, http);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	return cc;
}

/* Did the exchange reach an etcd that answered (as opposed to a transport failure)? */
static bool reached(CURLcode cc, const struct req *r)
{
	return cc == CURLE_OK || cc == CURLE_WRITE_ERROR || cc == CURLE_FILESIZE_EXCEEDED ||
	       cc == CURLE_ABORTED_BY_CALLBACK ||
	       (cc == CURLE_OPERATION_TIMEDOUT && r->received > 0);
}

static int transport_fail(struct pgw_etcd *c, size_t ep, const struct req *r, CURLcode cc)
{
	return fail(c, PGW_ETCD_EUNAVAIL, "etcd %s at %s%s: %s%s%s", r->what, c->urls[ep], r->path,
	            curl_easy_strerror(cc), c->curl_err[0] ? ": " : "", c->curl_err);
}

/* Parses a whole answer into a JSON object; EPROTO/EREJECT with a message otherwise. */
static int parse_answer(struct pgw_etcd *c, size_t ep, const struct req *r, const struct buf *b,
                        long http, json_object **out)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = NULL;
	size_t end = 0;

	*out = NULL;
	if (!tok)
		return fail(c, PGW_ETCD_ENOMEM, "etcd %s: out of memory", r->what);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	if (b->len > 0 && b->len < INT_MAX) {
		o = json_tokener_parse_ex(tok, b->data, (int)b->len);
		end = json_tokener_get_parse_end(tok);
	}
	json_tokener_free(tok);
	while (o && end < b->len && strchr(" \t\r\n", b->data[end]))
		end++;
	if (!json_object_is_type(o, json_type_object) || end != b->len) {
		json_object_put(o);
		return fail(
		    c, PGW_ETCD_EPROTO,
		    "etcd %s at %s%s: answer is not a JSON object (HTTP %ld, %zu bytes: \"%.60s\")",
		    r->what, c->urls[ep], r->path, http, b->len, b->len ? b->data : "");
	}
	if (jget(o, "error")) {
		fail(c, PGW_ETCD_EREJECT, "etcd %s at %s%s: %s", r->what, c->urls[ep], r->path,
		     etcd_error_text(o));
		json_object_put(o);
		return PGW_ETCD_EREJECT;
	}
	if (http != 200) {
		json_object_put(o);
		return fail(c, PGW_ETCD_EPROTO, "etcd %s at %s%s: HTTP status %ld", r->what,
		            c->urls[ep], r->path, http);
	}
	*out = o;
	return 0;
}

/* POST a JSON body to one endpoint and parse the answer. */
static int post_to(struct pgw_etcd *c, size_t ep, const struct req *rq, int64_t deadline,
                   int conn_ms, json_object **out)
{
	struct buf b = {0};
	struct req r = *rq;
	long http;
	CURLcode cc;
	int rc;

	r.consume = buf_consume;
	r.reset = buf_reset;
	r.ud = &b;
	cc = attempt(c, ep, &r, deadline, conn_ms, &http);
	if (b.too_big || cc == CURLE_FILESIZE_EXCEEDED)
		rc = fail(c, PGW_ETCD_EPROTO, "etcd %s at %s%s: answer larger than %ld bytes",
		          r.what, c->urls[ep], r.path, MAX_ANSWER);
	else if (cc == CURLE_OUT_OF_MEMORY || cc == CURLE_WRITE_ERROR)
		rc = fail(c, PGW_ETCD_ENOMEM, "etcd %s: out of memory", r.what);
	else if (cc != CURLE_OK)
		rc = transport_fail(c, ep, &r, cc);
	else
		rc = parse_answer(c, ep, &r, &b, http, out);
	free(b.data);
	return rc;
}

/* Gets an auth token from endpoint ep (simple tokens are per member). */
static int authenticate(struct pgw_etcd *c, size_t ep, int64_t deadline, int conn_ms)
{
	struct req r = {.what = "authenticate", .path = "/v3/auth/authenticate"};
	json_object *req = json_object_new_object(), *ans = NULL, *tok;
	int rc = PGW_ETCD_ENOMEM;

	if (req && !jadd(req, "name", json_object_new_string(c->user)) &&
	    !jadd(req, "password", json_object_new_string(c->password))) {
		r.body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
		                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
		rc = post_to(c, ep, &r, deadline, conn_ms, &ans);
	}
	json_object_put(req);
	if (rc < 0)
		return rc;
	tok = jget(ans, "token");
	if (!json_object_is_type(tok, json_type_string)) {
		json_object_put(ans);
		return fail(c, PGW_ETCD_EPROTO, "etcd authenticate at %s: answer has no token",
		            c->urls[ep]);
	}
	free(c->token);
	c->token = strdup(json_object_get_string(tok));
	c->token_ep = ep;
	json_object_put(ans);
	return c->token ? 0 : fail(c, PGW_ETCD_ENOMEM, "etcd authenticate: out of memory");
}

/* Connect time for one endpoint: a fair share of what is left, so later ones get a turn. */
static int connect_budget(int64_t deadline, size_t endpoints_left)
{
	int64_t left = deadline - now_ms();
	int64_t share = left / (int64_t)(endpoints_left ? endpoints_left : 1);

	if (share < MIN_CONNECT)
		share = MIN_CONNECT;
	if (share > left)
		share = left;
	return share < 1 ? 1 : (int)share;
}

/* One endpoint: authenticate if needed, then the request.  EUNAVAIL: try the next one. */
static int try_endpoint(struct pgw_etcd *c, size_t ep, struct req *r, int64_t deadline, int conn_ms,
                        json_object **out, CURLcode *cc_out)
{
	long http;
	CURLcode cc;
	int rc;

	if (c->user && (!c->token || c->token_ep != ep)) {
		rc = authenticate(c, ep, deadline, conn_ms);
		if (rc < 0)
			return rc;
	}
	if (out) {
		rc = post_to(c, ep, r, deadline, conn_ms, out);
	} else {
		cc = attempt(c, ep, r, deadline, conn_ms, &http);
		if (!reached(cc, r))
			return transport_fail(c, ep, r, cc);
		*cc_out = cc;
		rc = 0;
	}
	if (rc != PGW_ETCD_EUNAVAIL)
		c->cur = ep;
	return rc;
}

/*
 * Runs one request against the endpoints, the last good one first; moves on
 * after a transport failure while time remains.  With a buffer sink (watch ==
 * false) the answer is parsed into *out; otherwise the caller's consume/reset
 * handle the bytes and *cc_out gets curl's result.
 */
static int exchange(struct pgw_etcd *c, struct req *r, int timeout_ms, json_object **out,
                    CURLcode *cc_out)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
	int rc = PGW_ETCD_EUNAVAIL;
	size_t k, ep;

	for (k = 0; k < c->n && now_ms() < deadline; k++) {
		ep = (c->cur + k) % c->n;
		rc = try_endpoint(c, ep, r, deadline, connect_budget(deadline, c->n - k), out,
		                  cc_out);
		if (rc == PGW_ETCD_EUNAVAIL)
			continue;
		if (rc == PGW_ETCD_EREJECT && strstr(c->errmsg, "auth token")) {
			free(c->token); /* expired, or the member restarted: get a new one */
			c->token = NULL;
		}
		return rc;
	}
	if (k == 0)
		return fail(c, PGW_ETCD_EUNAVAIL, "etcd %s: no time left to try an endpoint",
		            r->what);
	return rc;
}

/* Sends the JSON request `req` (consumed) and returns the parsed answer. */
static int call(struct pgw_etcd *c, const char *what, const char *path, json_object *req,
                int timeout_ms, json_object **ans)
{
	struct req r = {.what = what, .path = path};
	int rc;

	*ans = NULL;
	if (!req)
		return fail(c, PGW_ETCD_ENOMEM, "etcd %s: out of memory building the request",
		            what);
	r.body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
	rc = r.body ? exchange(c, &r, timeout_ms, ans, NULL)
	            : fail(c, PGW_ETCD_ENOMEM, "etcd %s: out of memory", what);
	json_object_put(req);
	return rc;
}

/* The answer must carry a header object; EPROTO otherwise. */
static int need_header(struct pgw_etcd *c, const char *what, json_object *ans)
{
	if (jget_obj(ans, "header"))
		return 0;
	return fail(c, PGW_ETCD_EPROTO, "etcd %s at %s: answer has no header", what,
	            c->urls[c->at]);
}

static int bad_field(struct pgw_etcd *c, const char *what, const char *field)
{
	return fail(c, PGW_ETCD_EPROTO, "etcd %s at %s: answer has no valid \"%s\"", what,
	            c->urls[c->at], field);
}

/* ---- leases ------------------------------------------------------------ */

static int clamp_int(int64_t v)
{
	return v > INT_MAX ? INT_MAX : v < 0 ? 0 : (int)v;
}

int pgw_etcd_lease_grant(struct pgw_etcd *c, int ttl, int timeout_ms, int64_t *id, int *granted_ttl)
{
	const char *what = "lease grant";
	json_object *req = json_object_new_object(), *ans;
	int64_t lid, lttl;
	int rc;

	if (req && jadd_i64(req, "TTL", ttl)) {
		json_object_put(req);
		req = NULL;
	}
	rc = call(c, what, "/v3/lease/grant", req, timeout_ms, &ans);
	if (rc == 0 && !(rc = need_header(c, what, ans))) {
		if (!jget_i64(ans, "ID", &lid) || lid == 0)
			rc = bad_field(c, what, "ID");
		else if (!jget_i64(ans, "TTL", &lttl) || lttl <= 0)
			rc = bad_field(c, what, "TTL");
		else {
			*id = lid;
			if (granted_ttl)
				*granted_ttl = clamp_int(lttl);
		}
	}
	json_object_put(ans);
	return rc;
}

static json_object *id_request(int64_t id)
{
	json_object *req = json_object_new_object();

	if (req && jadd_i64(req, "ID", id)) {
		json_object_put(req);
		return NULL;
	}
	return req;
}

int pgw_etcd_lease_keepalive(struct pgw_etcd *c, int64_t id, int timeout_ms, int *ttl_left)
{
	const char *what = "lease keepalive";
	json_object *ans, *res;
	int64_t ttl;
	int rc;

	rc = call(c, what, "/v3/lease/keepalive", id_request(id), timeout_ms, &ans);
	if (rc == 0) {
		res = jget_obj(ans, "result");
		if (!res || need_header(c, what, res))
			rc = bad_field(c, what, "result");
		else if (!jget_i64(res, "TTL", &ttl))
			rc = bad_field(c, what, "TTL");
		else
			*ttl_left = clamp_int(ttl); /* absent or 0: the lease is gone */
	}
	json_object_put(ans);
	return rc;
}

int pgw_etcd_lease_revoke_at(struct pgw_etcd *c, int64_t id, int timeout_ms, int64_t *revision)
{
	json_object *ans;
	int rc = call(c, "lease revoke", "/v3/lease/revoke", id_request(id), timeout_ms, &ans);

	if (rc == 0)
		rc = need_header(c, "lease revoke", ans);
	if (rc == 0 && revision &&
	    (!jget_i64(jget_obj(ans, "header"), "revision", revision) || *revision < 0))
		*revision = 0;
	json_object_put(ans);
	return rc;
}

int pgw_etcd_lease_revoke(struct pgw_etcd *c, int64_t id, int timeout_ms)
{
	return pgw_etcd_lease_revoke_at(c, id, timeout_ms, NULL);
}

int pgw_etcd_lease_ttl(struct pgw_etcd *c, int64_t id, int timeout_ms, int64_t *ttl_left,
                       int64_t *granted)
{
	const char *what = "lease time-to-live";
	json_object *ans;
	int rc = call(c, what, "/v3/lease/timetolive", id_request(id), timeout_ms, &ans);

	if (rc == 0) {
		/* a lease that is gone: TTL -1 and no grantedTTL (0 omitted by the gateway) */
		if (need_header(c, what, ans))
			rc = PGW_ETCD_EPROTO;
		else if (!jget_i64(ans, "TTL", ttl_left))
			rc = bad_field(c, what, "TTL");
		else if (!jget_i64(ans, "grantedTTL", granted))
			*granted = 0;
	}
	json_object_put(ans);
	return rc;
}

/* ---- reads ------------------------------------------------------------- */

/* The end of the range covering every key that starts with prefix (len bytes into end). */
static size_t prefix_end(const char *prefix, char *end)
{
	size_t len = strlen(prefix);

	memcpy(end, prefix, len);
	while (len > 0) {
		unsigned char last = (unsigned char)end[len - 1];

		if (last < 0xff) {
			end[len - 1] = (char)(last + 1);
			return len;
		}
		len--;
	}
	end[0] = '\0'; /* all keys */
	return 1;
}

static bool parse_kv(json_object *o, struct pgw_etcd_kv *kv, size_t *klen)
{
	if (!json_object_is_type(o, json_type_object))
		return false;
	kv->key = jget_b64(o, "key", false, klen);
	kv->value = jget_b64(o, "value", true, &kv->value_len);
	return kv->key && kv->value && jget_i64(o, "create_revision", &kv->create_revision) &&
	       jget_i64(o, "mod_revision", &kv->mod_revision) &&
	       jget_i64(o, "version", &kv->version) && jget_i64(o, "lease", &kv->lease);
}

/*
 * A key with a NUL byte would read as the text before it: "leader\0x" as the leader
 * key (ARCHITECTURE.md §7; it made a healthy primary shut down).  No key pgwarden or
 * Patroni writes has one: such a key is skipped, with a warning once a minute.
 * (Values are bytes with a length; their readers check them, cluster.c.)
 */
static bool has_nul(struct pgw_etcd *c, const char *key, size_t klen)
{
	struct timespec ts;

	if (!memchr(key, '\0', klen))
		return false;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (c->nul_warned_at == 0 || ts.tv_sec - c->nul_warned_at >= 60) { /* once a minute */
		c->nul_warned_at = ts.tv_sec;
		pgw_warn("etcd: skipping key \"%.*s\" (%zu bytes): it holds a NUL byte",
		         (int)strnlen(key, 64), key, klen);
	}
	return true;
}

static int parse_range(struct pgw_etcd *c, json_object *ans, struct pgw_etcd_range *out)
{
	json_object *kvs = jget(ans, "kvs");
	size_t i, n;

	if (need_header(c, "range", ans))
		return PGW_ETCD_EPROTO;
	if (!jget_i64(jget_obj(ans, "header"), "revision", &out->revision))
		return bad_field(c, "range", "header.revision");
	if (!kvs)
		return 0;
	if (!json_object_is_type(kvs, json_type_array))
		return bad_field(c, "range", "kvs");
	n = json_object_array_length(kvs);
	if (n && !(out->kvs = calloc(n, sizeof(*out->kvs))))
		return fail(c, PGW_ETCD_ENOMEM, "etcd range: out of memory for %zu keys", n);
	for (i = 0; i < n; i++) {
		struct pgw_etcd_kv *kv = &out->kvs[out->n++]; /* range_free frees a partial one */
		size_t klen = 0;

		if (!parse_kv(json_object_array_get_idx(kvs, i), kv, &klen))
			return bad_field(c, "range", "kvs[].key/value/revision");
		if (has_nul(c, kv->key, klen)) {
			free(kv->key);
			free(kv->value);
			memset(kv, 0, sizeof(*kv));
			out->n--;
		}
	}
	return 0;
}

static int range(struct pgw_etcd *c, const char *what, const char *key, bool prefix, int timeout_ms,
                 struct pgw_etcd_range *out)
{
	json_object *req = json_object_new_object(), *ans;
	char *end = malloc(strlen(key) + 1);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!req || !end || jadd_b64(req, "key", key, strlen(key)) ||
	    (prefix && jadd_b64(req, "range_end", end, prefix_end(key, end)))) {
		json_object_put(req);
		req = NULL;
	}
	free(end);
	rc = call(c, what, "/v3/kv/range", req, timeout_ms, &ans);
	if (rc == 0)
		rc = parse_range(c, ans, out);
	json_object_put(ans);
	if (rc < 0)
		pgw_etcd_range_free(out);
	return rc;
}

int pgw_etcd_range_prefix(struct pgw_etcd *c, const char *prefix, int timeout_ms,
                          struct pgw_etcd_range *out)
{
	return range(c, "range", prefix, true, timeout_ms, out);
}

int pgw_etcd_get(struct pgw_etcd *c, const char *key, int timeout_ms, struct pgw_etcd_range *out)
{
	return range(c, "get", key, false, timeout_ms, out);
}

void pgw_etcd_range_free(struct pgw_etcd_range *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n; i++) {
		free(r->kvs[i].key);
		free(r->kvs[i].value);
	}
	free(r->kvs);
	r->kvs = NULL;
	r->n = 0;
}

/* ---- writes and transactions ------------------------------------------- */

static json_object *put_body(const char *key, const char *value, size_t len, int64_t lease)
{
	json_object *o = json_object_new_object();

	if (o && !jadd_b64(o, "key", key, strlen(key)) && !jadd_b64(o, "value", value, len) &&
	    (lease == 0 || !jadd_i64(o, "lease", lease)))
		return o;
	json_object_put(o);
	return NULL;
}

static json_object *delete_body(const char *key)
{
	json_object *o = json_object_new_object();

	if (o && !jadd_b64(o, "key", key, strlen(key)))
		return o;
	json_object_put(o);
	return NULL;
}

static int simple_write(struct pgw_etcd *c, const char *what, const char *path, json_object *req,
                        int timeout_ms)
{
	json_object *ans;
	int rc = call(c, what, path, req, timeout_ms, &ans);

	if (rc == 0)
		rc = need_header(c, what, ans);
	json_object_put(ans);
	return rc;
}

int pgw_etcd_put(struct pgw_etcd *c, const char *key, const char *value, size_t len, int64_t lease,
                 int timeout_ms)
{
	return simple_write(c, "put", "/v3/kv/put", put_body(key, value, len, lease), timeout_ms);
}

int pgw_etcd_delete(struct pgw_etcd *c, const char *key, int timeout_ms)
{
	return simple_write(c, "delete", "/v3/kv/deleterange", delete_body(key), timeout_ms);
}

/* One compare: target "CREATE"/"MOD"/"LEASE" with an int64, or "VALUE" with bytes. */
static json_object *compare(const char *key, const char *target, int64_t rev, const char *value)
{
	json_object *o = json_object_new_object();
	int bad;

	if (!o)
		return NULL;
	bad = jadd_b64(o, "key", key, strlen(key)) ||
	      jadd(o, "target", json_object_new_string(target)) ||
	      jadd(o, "result", json_object_new_string("EQUAL"));
	if (!bad && value)
		bad = jadd_b64(o, "value", value, strlen(value));
	else if (!bad && strcmp(target, "LEASE") == 0)
		bad = jadd_i64(o, "lease", rev);
	else if (!bad)
		bad =
		    jadd_i64(o, strcmp(target, "CREATE") ? "mod_revision" : "create_revision", rev);
	if (bad) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* [v]; consumes v (also on failure). */
static json_object *array_of(json_object *v)
{
	json_object *a = json_object_new_array();

	if (!a || !v || json_object_array_add(a, v)) {
		json_object_put(a);
		json_object_put(v);
		return NULL;
	}
	return a;
}

/* {k: v}; consumes v (also on failure). */
static json_object *object_of(const char *k, json_object *v)
{
	json_object *o = json_object_new_object();

	if (!o) {
		json_object_put(v);
		return NULL;
	}
	if (jadd(o, k, v)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* {"compare": [cmp], "success": [{op_name: op}]}; consumes cmp and op. */
static json_object *txn_body(json_object *cmp, const char *op_name, json_object *op)
{
	json_object *o = object_of("compare", array_of(cmp));
	json_object *s = array_of(object_of(op_name, op));

	if (!o || jadd(o, "success", s)) {
		if (!o)
			json_object_put(s);
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Add {"request_put": put(key2 = value2, no lease)} to a txn body's success ops. */
static json_object *with_put(json_object *body, const char *key2, const char *value2)
{
	json_object *s, *op;

	if (!body || !key2)
		return body;
	op = object_of("request_put", put_body(key2, value2, strlen(value2), 0));
	if (!op || !json_object_object_get_ex(body, "success", &s) ||
	    json_object_array_add(s, op) != 0) {
		json_object_put(op);
		json_object_put(body);
		return NULL;
	}
	return body;
}

static int txn(struct pgw_etcd *c, const char *what, json_object *body, int timeout_ms,
               bool *succeeded)
{
	json_object *ans, *s;
	int rc = call(c, what, "/v3/kv/txn", body, timeout_ms, &ans);

	*succeeded = false;
	if (rc == 0 && !(rc = need_header(c, what, ans))) {
		s = jget(ans, "succeeded");
		if (s && !json_object_is_type(s, json_type_boolean))
			rc = bad_field(c, what, "succeeded");
		else
			*succeeded = s && json_object_get_boolean(s);
	}
	json_object_put(ans);
	return rc;
}

int pgw_etcd_create(struct pgw_etcd *c, const char *key, const char *value, size_t len,
                    int64_t lease, int timeout_ms, bool *succeeded)
{
	json_object *b = txn_body(compare(key, "CREATE", 0, NULL), "request_put",
	                          put_body(key, value, len, lease));

	return txn(c, "create", b, timeout_ms, succeeded);
}

int pgw_etcd_create_and_put(struct pgw_etcd *c, const char *key, const char *value, size_t len,
                            int64_t lease, const char *key2, const char *value2, int timeout_ms,
                            bool *succeeded)
{
	json_object *b = txn_body(compare(key, "CREATE", 0, NULL), "request_put",
	                          put_body(key, value, len, lease));

	return txn(c, "create", with_put(b, key2, value2), timeout_ms, succeeded);
}

int pgw_etcd_delete_if_value_and_put(struct pgw_etcd *c, const char *key, const char *value,
                                     const char *key2, const char *value2, int timeout_ms,
                                     bool *succeeded)
{
	json_object *b =
	    txn_body(compare(key, "VALUE", 0, value), "request_delete_range", delete_body(key));

	return txn(c, "delete if value", with_put(b, key2, value2), timeout_ms, succeeded);
}

int pgw_etcd_put_if_mod(struct pgw_etcd *c, const char *key, const char *value, size_t len,
                        int64_t lease, int64_t mod_rev, int timeout_ms, bool *succeeded)
{
	json_object *b = txn_body(compare(key, "MOD", mod_rev, NULL), "request_put",
	                          put_body(key, value, len, lease));

	return txn(c, "put if mod_revision", b, timeout_ms, succeeded);
}

int pgw_etcd_put_if_mod_guarded(struct pgw_etcd *c, const char *key, const char *value,
                                int64_t mod_rev, const char *guard, int64_t guard_lease,
                                int timeout_ms, bool *succeeded)
{
	json_object *b = txn_body(compare(key, "MOD", mod_rev, NULL), "request_put",
	                          put_body(key, value, strlen(value), 0));
	json_object *cmps, *g = compare(guard, "LEASE", guard_lease, NULL);

	if (b && g && json_object_object_get_ex(b, "compare", &cmps) &&
	    json_object_array_add(cmps, g) == 0)
		g = NULL;
	else {
		json_object_put(b);
		b = NULL;
	}
	json_object_put(g);
	return txn(c, "put if mod_revision and lease", b, timeout_ms, succeeded);
}

int pgw_etcd_delete_if_value(struct pgw_etcd *c, const char *key, const char *value, int timeout_ms,
                             bool *succeeded)
{
	json_object *b =
	    txn_body(compare(key, "VALUE", 0, value), "request_delete_range", delete_body(key));

	return txn(c, "delete if value", b, timeout_ms, succeeded);
}

int pgw_etcd_delete_if_mod(struct pgw_etcd *c, const char *key, int64_t mod_rev, int timeout_ms,
                           bool *succeeded)
{
	json_object *b =
	    txn_body(compare(key, "MOD", mod_rev, NULL), "request_delete_range", delete_body(key));

	return txn(c, "delete if mod_revision", b, timeout_ms, succeeded);
}

/* ---- watch ------------------------------------------------------------- */

struct watch {
	struct pgw_etcd *c;
	json_tokener *tok;
	size_t obj_bytes; /* bytes of the object being parsed */
	pgw_etcd_watch_fn fn;
	void *arg;
	bool created, fired;
	int err; /* set when the stream is refused: negative pgw_etcd_err */
};

static int watch_fail(struct watch *w, int code, const char *fmt, const char *detail)
{
	w->err = fail(w->c, code, "etcd watch at %s: %s%s", w->c->urls[w->c->at], fmt, detail);
	return w->err;
}

/* One event of result.events[]: decode, hand to the caller. */
static int watch_event(struct watch *w, json_object *e)
{
	struct pgw_etcd_event ev = {.type = PGW_ETCD_PUT};
	json_object *kv = jget_obj(e, "kv"), *type = jget(e, "type");
	const char *t =
	    json_object_is_type(type, json_type_string) ? json_object_get_string(type) : NULL;
	size_t klen;
	char *key;

	if (type && (!t || (strcmp(t, "PUT") && strcmp(t, "DELETE"))))
		return watch_fail(w, PGW_ETCD_EPROTO, "unknown event type", "");
	if (t && !strcmp(t, "DELETE"))
		ev.type = PGW_ETCD_DELETE;
	if (!kv || !(key = jget_b64(kv, "key", false, &klen)))
		return watch_fail(w, PGW_ETCD_EPROTO, "event without a valid kv.key", "");
	ev.key = key;
	if (memchr(key, '\0', klen)) {
		has_nul(w->c, key, klen);
		free(key);
		return 0; /* not an event about any key of ours */
	}
	if (!jget_i64(kv, "mod_revision", &ev.mod_revision) ||
	    !jget_i64(kv, "create_revision", &ev.create_revision) ||
	    !jget_i64(kv, "version", &ev.version)) {
		free(key);
		return watch_fail(w, PGW_ETCD_EPROTO, "event with a bad revision", "");
	}
	w->fired = w->fn(w->arg, &ev);
	free(key);
	return 0;
}

static int watch_canceled(struct watch *w, json_object *res)
{
	json_object *reason = jget(res, "cancel_reason");
	int64_t compact = 0;

	if (jget_i64(res, "compact_revision", &compact) && compact > 0) {
		char s[64];

		snprintf(s, sizeof(s), "%" PRId64, compact);
		return watch_fail(w, PGW_ETCD_ECOMPACTED,
		                  "start revision compacted; oldest available is ", s);
	}
	return watch_fail(w, PGW_ETCD_EREJECT, "watch canceled: ",
	                  json_object_is_type(reason, json_type_string)
	                      ? json_object_get_string(reason)
	                      : "no reason given");
}

/* One object of the stream: {"result": {...}} or {"error": ...}. */
static int watch_object(struct watch *w, json_object *o)
{
	json_object *res, *events, *canceled;
	size_t i, n;

	if (!json_object_is_type(o, json_type_object))
		return watch_fail(w, PGW_ETCD_EPROTO, "stream item is not a JSON object", "");
	if (jget(o, "error"))
		return watch_fail(w, PGW_ETCD_EREJECT, "", etcd_error_text(o));
	if (!(res = jget_obj(o, "result")))
		return watch_fail(w, PGW_ETCD_EPROTO, "stream item without result", "");
	canceled = jget(res, "canceled");
	if (canceled && json_object_get_boolean(canceled))
		return watch_canceled(w, res);
	if (json_object_get_boolean(jget(res, "created")))
		w->created = true;
	events = jget(res, "events");
	if (!events)
		return 0;
	if (!json_object_is_type(events, json_type_array))
		return watch_fail(w, PGW_ETCD_EPROTO, "events is not an array", "");
	n = json_object_array_length(events);
	for (i = 0; i < n && !w->fired; i++)
		if (watch_event(w, json_object_array_get_idx(events, i)) < 0)
			return w->err;
	return 0;
}

/* curl write callback body: feed the tokener, handle every complete object. */
static size_t watch_consume(struct req *r, const char *p, size_t n)
{
	struct watch *w = r->ud;
	size_t off = 0;

	while (off < n) {
		size_t chunk = n - off > INT_MAX ? INT_MAX : n - off, used;
		json_object *o = json_tokener_parse_ex(w->tok, p + off, (int)chunk);
		enum json_tokener_error e = json_tokener_get_error(w->tok);

		used = json_tokener_get_parse_end(w->tok);
		if (!o && e != json_tokener_continue) {
			watch_fail(w, PGW_ETCD_EPROTO,
			           "stream is not JSON: ", json_tokener_error_desc(e));
			return 0;
		}
		w->obj_bytes += used;
		off += used;
		if (!o) {
			if (w->obj_bytes > (size_t)MAX_ANSWER) {
				watch_fail(w, PGW_ETCD_EPROTO, "stream object too large", "");
				return 0;
			}
			continue;
		}
		w->obj_bytes = 0;
		json_tokener_reset(w->tok);
		watch_object(w, o);
		json_object_put(o);
		if (w->err || w->fired)
			return 0;
	}
	return n;
}

static void watch_reset(struct req *r)
{
	struct watch *w = r->ud;

	json_tokener_reset(w->tok);
	w->obj_bytes = 0;
	w->created = false;
}

static json_object *watch_body(const char *prefix, int64_t start_rev)
{
	json_object *cr = json_object_new_object();
	char *end = malloc(strlen(prefix) + 1);
	bool ok = cr && end && !jadd_b64(cr, "key", prefix, strlen(prefix)) &&
	          !jadd_b64(cr, "range_end", end, prefix_end(prefix, end)) &&
	          (start_rev <= 0 || !jadd_i64(cr, "start_revision", start_rev));

	free(end);
	if (!ok) {
		json_object_put(cr);
		return NULL;
	}
	return object_of("create_request", cr);
}

/* What a finished watch transfer means for the caller. */
static int watch_result(struct pgw_etcd *c, struct watch *w, int rc, CURLcode cc, bool *fired)
{
	if (rc < 0)
		return rc;
	if (w->err)
		return w->err;
	if (w->fired) {
		*fired = true;
		return 0;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_ABORTED_BY_CALLBACK)
		return 0; /* quiet until the timeout (or interrupted): the normal case */
	if (cc == CURLE_WRITE_ERROR)
		return fail(c, PGW_ETCD_ENOMEM, "etcd watch: out of memory");
	return fail(c, PGW_ETCD_EPROTO, "etcd watch at %s: stream ended%s (%s)", c->urls[c->at],
	            w->created ? "" : " before the watch was created", curl_easy_strerror(cc));
}

/* curl's progress callback during a watch: non-zero aborts the transfer. */
static int interrupt_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                        curl_off_t ulnow)
{
	const struct pgw_etcd *c = ud;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return c->interrupt && c->interrupt(c->interrupt_arg) ? 1 : 0;
}

void pgw_etcd_set_interrupt(struct pgw_etcd *c, pgw_etcd_interrupt_fn fn, void *arg)
{
	c->interrupt = fn;
	c->interrupt_arg = arg;
}

int pgw_etcd_watch(struct pgw_etcd *c, const char *prefix, int64_t start_rev, int timeout_ms,
                   pgw_etcd_watch_fn fn, void *arg, bool *fired)
{
	struct watch w = {.c = c, .fn = fn, .arg = arg};
	struct req r = {.what = "watch",
	                .path = "/v3/watch",
	                .consume = watch_consume,
	                .reset = watch_reset,
	                .ud = &w};
	json_object *body = watch_body(prefix, start_rev);
	CURLcode cc = CURLE_OK;
	int rc;

	*fired = false;
	w.tok = json_tokener_new();
	if (!body || !w.tok) {
		rc = fail(c, PGW_ETCD_ENOMEM, "etcd watch: out of memory");
	} else {
		json_tokener_set_flags(w.tok,
		                       JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
		r.body = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
		                                                  JSON_C_TO_STRING_NOSLASHESCAPE);
		if (c->interrupt) {
			curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, interrupt_cb);
			curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
			curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
		}
		rc = exchange(c, &r, timeout_ms, NULL, &cc);
		curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 1L);
		rc = watch_result(c, &w, rc, cc, fired);
	}
	if (w.tok)
		json_tokener_free(w.tok);
	json_object_put(body);
	return rc;
}
