/*
 * test_etcd.c - tests of the etcd client (daemon/etcd.c): base64, then every call
 * against a real etcd 3.4 started on loopback by the group setup, then failover
 * and bad answers against closed ports and fake HTTP servers on loopback.
 *
 * etcd is started with PR_SET_PDEATHSIG and its pid is written to a pid file in
 * its temporary directory; teardown, atexit and fatal-signal handlers kill it, so
 * a failing test does not leave it running.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "etcd.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef ETCD_BIN
#define ETCD_BIN "/usr/bin/etcd"
#endif
#define T_MS 2000 /* timeout of ordinary calls */

static struct {
	volatile pid_t pid;
	char dir[64];
	char endpoint[32];
	int port;
	bool up;
} etcd;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A loopback port nobody listens on (right now). */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* A listening socket on loopback; *port gets its port. */
static int listen_port(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* ---- the etcd fixture ---------------------------------------------------- */

static void kill_etcd_now(void)
{
	pid_t pid = etcd.pid;

	if (pid > 0)
		kill(pid, SIGKILL);
}

static void on_fatal_signal(int sig)
{
	kill_etcd_now();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void stop_etcd(void)
{
	int i, status;

	if (etcd.pid > 0) {
		kill(etcd.pid, SIGTERM);
		for (i = 0; i < 100 && waitpid(etcd.pid, &status, WNOHANG) == 0; i++)
			usleep(20000);
		if (i == 100) {
			kill(etcd.pid, SIGKILL);
			waitpid(etcd.pid, &status, 0);
		}
		etcd.pid = 0;
	}
	if (etcd.dir[0]) {
		nftw(etcd.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		etcd.dir[0] = '\0';
	}
	etcd.up = false;
}

static void exec_etcd(int port, int peer)
{
	char data[128], log[128], client[64], peer_url[64], cluster[80];
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	snprintf(data, sizeof(data), "%s/data", etcd.dir);
	snprintf(log, sizeof(log), "%s/etcd.log", etcd.dir);
	snprintf(client, sizeof(client), "http://127.0.0.1:%d", port);
	snprintf(peer_url, sizeof(peer_url), "http://127.0.0.1:%d", peer);
	snprintf(cluster, sizeof(cluster), "t=%s", peer_url);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execl(ETCD_BIN, "etcd", "--name", "t", "--data-dir", data, "--listen-client-urls", client,
	      "--advertise-client-urls", client, "--listen-peer-urls", peer_url,
	      "--initial-advertise-peer-urls", peer_url, "--initial-cluster", cluster,
	      (char *)NULL);
	_exit(127);
}

/* Keeps the first 63 bytes of an answer in a char[64]. */
static size_t sink(char *p, size_t s, size_t n, void *ud)
{
	size_t have = strlen(ud), room = 63 - have;

	strncat(ud, p, s * n < room ? s * n : room);
	return s * n;
}

/* A plain HTTP request to etcd (GET when body is NULL); true if it answered 200. */
static bool raw_http(const char *path, const char *body, char *answer64)
{
	char url[128], ans[64] = "";
	long http = 0;
	CURL *h = curl_easy_init();
	CURLcode cc;

	snprintf(url, sizeof(url), "%s%s", etcd.endpoint, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 500L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, ans);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
	curl_easy_cleanup(h);
	if (answer64)
		memcpy(answer64, ans, sizeof(ans));
	return cc == CURLE_OK && http == 200;
}

/* Starts etcd on fresh ports and waits for /health; false if it does not come up. */
static bool start_etcd(void)
{
	char pidfile[128], ans[64];
	int peer, status, i;
	FILE *f;

	etcd.port = free_port();
	peer = free_port();
	snprintf(etcd.endpoint, sizeof(etcd.endpoint), "http://127.0.0.1:%d", etcd.port);
	etcd.pid = fork();
	if (etcd.pid == 0)
		exec_etcd(etcd.port, peer);
	snprintf(pidfile, sizeof(pidfile), "%s/etcd.pid", etcd.dir);
	if ((f = fopen(pidfile, "w"))) {
		fprintf(f, "%d\n", (int)etcd.pid);
		fclose(f);
	}
	for (i = 0; i < 300; i++) {
		if (raw_http("/health", NULL, ans) && strstr(ans, "\"true\""))
			return true;
		if (waitpid(etcd.pid, &status, WNOHANG) == etcd.pid) {
			etcd.pid = 0;
			return false;
		}
		usleep(30000);
	}
	return false;
}

static int group_setup(void **state)
{
	int tries;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (access(ETCD_BIN, X_OK) != 0) {
		print_message("etcd tests skipped: %s is missing (apt-get install etcd-server)\n",
		              ETCD_BIN);
		return 0;
	}
	atexit(kill_etcd_now);
	signal(SIGABRT, on_fatal_signal);
	signal(SIGSEGV, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGINT, on_fatal_signal);
	snprintf(etcd.dir, sizeof(etcd.dir), "/tmp/pgw-test-etcd.XXXXXX");
	if (!mkdtemp(etcd.dir))
		return -1;
	for (tries = 0; tries < 3 && !etcd.up; tries++) {
		etcd.up = start_etcd();
		if (!etcd.up && etcd.pid > 0) {
			kill(etcd.pid, SIGKILL);
			waitpid(etcd.pid, NULL, 0);
			etcd.pid = 0;
		}
	}
	if (!etcd.up)
		print_message("etcd did not come up; see the log in %s\n", etcd.dir);
	return etcd.up ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	stop_etcd();
	return 0;
}

static void need_etcd(void)
{
	if (!etcd.up)
		skip();
}

static struct pgw_etcd *client(void)
{
	const char *ep[] = {etcd.endpoint};
	struct pgw_etcd *c = pgw_etcd_new(ep, 1, "http", NULL, NULL, NULL);

	assert_non_null(c);
	return c;
}

static void put_str(struct pgw_etcd *c, const char *key, const char *value, int64_t lease)
{
	int rc = pgw_etcd_put(c, key, value, strlen(value), lease, T_MS);

	if (rc)
		fail_msg("put %s: %d %s", key, rc, pgw_etcd_errmsg(c));
}

/* The key's mod_revision, or 0 if absent. */
static int64_t mod_rev(struct pgw_etcd *c, const char *key)
{
	struct pgw_etcd_range r;
	int64_t rev;

	assert_int_equal(pgw_etcd_get(c, key, T_MS, &r), 0);
	rev = r.n ? r.kvs[0].mod_revision : 0;
	pgw_etcd_range_free(&r);
	return rev;
}

/* ---- base64 -------------------------------------------------------------- */

static void check_b64(const void *data, size_t len, const char *want)
{
	char *enc = pgw_etcd_b64_encode(data, len), *dec;
	size_t dlen = 99;

	assert_non_null(enc);
	if (want)
		assert_string_equal(enc, want);
	dec = pgw_etcd_b64_decode(enc, strlen(enc), &dlen);
	assert_non_null(dec);
	assert_int_equal(dlen, len);
	assert_memory_equal(dec, len ? data : "", len);
	assert_int_equal(dec[len], '\0');
	free(enc);
	free(dec);
}

static void test_b64_vectors(void **state)
{
	(void)state;
	check_b64("", 0, "");
	check_b64("f", 1, "Zg==");
	check_b64("fo", 2, "Zm8=");
	check_b64("foo", 3, "Zm9v");
	check_b64("foob", 4, "Zm9vYg==");
	check_b64("fooba", 5, "Zm9vYmE=");
	check_b64("foobar", 6, "Zm9vYmFy");
	check_b64("\xff\xfe\x00\x01", 4, "//4AAQ==");
	check_b64("/service/pg/leader", 18, "L3NlcnZpY2UvcGcvbGVhZGVy");
}

static void test_b64_binary(void **state)
{
	unsigned char all[256], rnd[100];
	size_t len, i;

	(void)state;
	for (i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)i;
	check_b64(all, sizeof(all), NULL);
	srand(42);
	for (len = 0; len <= sizeof(rnd); len++) {
		for (i = 0; i < len; i++)
			rnd[i] = (unsigned char)rand();
		check_b64(rnd, len, NULL);
	}
}

static void test_b64_rejects(void **state)
{
	const char *bad[] = {"Zm9",  "Zm9v!A==", "Z===",    "=Zm9", "Zm=v",  "Zg=A",
	                     "Zh==", "Zm9=",     "Zm9vYg=", "Zm 9", "Zm9v\n"};
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (pgw_etcd_b64_decode(bad[i], strlen(bad[i]), &len))
			fail_msg("decoded bad base64 \"%s\"", bad[i]);
	assert_null(pgw_etcd_b64_decode("Zm\0v", 4, &len));
}

/* ---- leases -------------------------------------------------------------- */

static void test_lease_cycle(void **state)
{
	struct pgw_etcd *c;
	int64_t id = 0;
	int ttl = 0, left = -1;

	(void)state;
	need_etcd();
	c = client();
	assert_int_equal(pgw_etcd_lease_grant(c, 5, T_MS, &id, &ttl), 0);
	assert_true(id > 0);
	assert_int_equal(ttl, 5);
	assert_int_equal(pgw_etcd_lease_keepalive(c, id, T_MS, &left), 0);
	assert_in_range(left, 4, 5);
	assert_int_equal(pgw_etcd_lease_revoke(c, id, T_MS), 0);
	left = -1;
	assert_int_equal(pgw_etcd_lease_keepalive(c, id, T_MS, &left), 0);
	assert_int_equal(left, 0);
	assert_int_equal(pgw_etcd_lease_revoke(c, id, T_MS), PGW_ETCD_EREJECT);
	assert_non_null(strstr(pgw_etcd_errmsg(c), "requested lease not found"));
	assert_non_null(strstr(pgw_etcd_errmsg(c), etcd.endpoint));
	pgw_etcd_free(c);
}

static void test_lease_key_vanishes(void **state)
{
	struct pgw_etcd *c;
	int64_t id, put_rev, gone = 0;
	int ttl;

	(void)state;
	need_etcd();
	c = client();
	assert_int_equal(pgw_etcd_lease_grant(c, 10, T_MS, &id, &ttl), 0);
	put_str(c, "/lk/member", "m1", id);
	put_rev = mod_rev(c, "/lk/member");
	assert_true(put_rev > 0);
	/* the revision of the deletion (the fencer's positions-stale wait counts from it) */
	assert_int_equal(pgw_etcd_lease_revoke_at(c, id, T_MS, &gone), 0);
	assert_true(gone > put_rev);
	assert_int_equal(mod_rev(c, "/lk/member"), 0);
	pgw_etcd_free(c);
}

/* ---- reads and writes ----------------------------------------------------- */

static void test_put_get_range(void **state)
{
	struct pgw_etcd *c;
	struct pgw_etcd_range r;
	const char bin[] = {'a', 0, 'b', (char)0xff};

	(void)state;
	need_etcd();
	c = client();
	put_str(c, "/rg/x/2", "two", 0);
	put_str(c, "/rg/x/0", "zero", 0);
	put_str(c, "/rg/x/1", "", 0);
	put_str(c, "/rg/y", "other", 0);
	assert_int_equal(pgw_etcd_put(c, "/rg/x/3", bin, sizeof(bin), 0, T_MS), 0);
	assert_int_equal(pgw_etcd_range_prefix(c, "/rg/x/", T_MS, &r), 0);
	assert_int_equal(r.n, 4);
	assert_string_equal(r.kvs[0].key, "/rg/x/0");
	assert_string_equal(r.kvs[0].value, "zero");
	assert_string_equal(r.kvs[1].key, "/rg/x/1");
	assert_int_equal(r.kvs[1].value_len, 0);
	assert_string_equal(r.kvs[1].value, "");
	assert_string_equal(r.kvs[2].key, "/rg/x/2");
	assert_int_equal(r.kvs[3].value_len, sizeof(bin));
	assert_memory_equal(r.kvs[3].value, bin, sizeof(bin));
	assert_true(r.revision >= r.kvs[3].mod_revision);
	assert_true(r.kvs[2].mod_revision < r.kvs[0].mod_revision);
	assert_int_equal(r.kvs[0].version, 1);
	assert_int_equal(r.kvs[0].create_revision, r.kvs[0].mod_revision);
	pgw_etcd_range_free(&r);

	assert_int_equal(pgw_etcd_get(c, "/rg/x/", T_MS, &r), 0); /* not a prefix read */
	assert_int_equal(r.n, 0);
	assert_true(r.revision > 0);
	pgw_etcd_range_free(&r);
	assert_int_equal(pgw_etcd_get(c, "/rg/y", T_MS, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.kvs[0].value, "other");
	pgw_etcd_range_free(&r);

	assert_int_equal(pgw_etcd_delete(c, "/rg/y", T_MS), 0);
	assert_int_equal(mod_rev(c, "/rg/y"), 0);
	pgw_etcd_free(c);
}

static void test_create(void **state)
{
	struct pgw_etcd *c;
	struct pgw_etcd_range r;
	bool ok = false;

	(void)state;
	need_etcd();
	c = client();
	assert_int_equal(pgw_etcd_create(c, "/cr/leader", "n1", 2, 0, T_MS, &ok), 0);
	assert_true(ok);
	assert_int_equal(pgw_etcd_create(c, "/cr/leader", "n2", 2, 0, T_MS, &ok), 0);
	assert_false(ok);
	assert_int_equal(pgw_etcd_get(c, "/cr/leader", T_MS, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.kvs[0].value, "n1");
	pgw_etcd_range_free(&r);
	pgw_etcd_free(c);
}

static const char *value_of(struct pgw_etcd *c, const char *key, char *buf, size_t len)
{
	struct pgw_etcd_range r;

	assert_int_equal(pgw_etcd_get(c, key, T_MS, &r), 0);
	snprintf(buf, len, "%s", r.n == 1 ? r.kvs[0].value : "(absent)");
	pgw_etcd_range_free(&r);
	return buf;
}

/* The leader key and its record move together: both or neither. */
static void test_create_and_put_delete_and_put(void **state)
{
	struct pgw_etcd *c;
	char buf[64];
	bool ok = false;

	(void)state;
	need_etcd();
	c = client();
	assert_int_equal(pgw_etcd_create_and_put(c, "/cp/leader", "n1", 2, 0, "/cp/record",
	                                         "n1 took", T_MS, &ok),
	                 0);
	assert_true(ok);
	assert_string_equal(value_of(c, "/cp/record", buf, sizeof(buf)), "n1 took");
	assert_int_equal(pgw_etcd_create_and_put(c, "/cp/leader", "n2", 2, 0, "/cp/record",
	                                         "n2 took", T_MS, &ok),
	                 0);
	assert_false(ok);
	assert_string_equal(value_of(c, "/cp/record", buf, sizeof(buf)), "n1 took");
	assert_int_equal(pgw_etcd_delete_if_value_and_put(c, "/cp/leader", "n2", "/cp/record",
	                                                  "n2 released", T_MS, &ok),
	                 0);
	assert_false(ok);
	assert_string_equal(value_of(c, "/cp/record", buf, sizeof(buf)), "n1 took");
	assert_int_equal(pgw_etcd_delete_if_value_and_put(c, "/cp/leader", "n1", "/cp/record",
	                                                  "n1 released", T_MS, &ok),
	                 0);
	assert_true(ok);
	assert_string_equal(value_of(c, "/cp/record", buf, sizeof(buf)), "n1 released");
	assert_string_equal(value_of(c, "/cp/leader", buf, sizeof(buf)), "(absent)");
	pgw_etcd_free(c);
}

static void test_put_if_mod(void **state)
{
	struct pgw_etcd *c;
	int64_t rev;
	bool ok = true;

	(void)state;
	need_etcd();
	c = client();
	assert_int_equal(pgw_etcd_put_if_mod(c, "/pm/config", "a", 1, 0, 0, T_MS, &ok), 0);
	assert_true(ok); /* mod_rev 0: absent */
	rev = mod_rev(c, "/pm/config");
	assert_int_equal(pgw_etcd_put_if_mod(c, "/pm/config", "b", 1, 0, 0, T_MS, &ok), 0);
	assert_false(ok);
	assert_int_equal(pgw_etcd_put_if_mod(c, "/pm/config", "b", 1, 0, rev + 100, T_MS, &ok), 0);
	assert_false(ok);
	assert_int_equal(mod_rev(c, "/pm/config"), rev);
	assert_int_equal(pgw_etcd_put_if_mod(c, "/pm/config", "b", 1, 0, rev, T_MS, &ok), 0);
	assert_true(ok);
	assert_true(mod_rev(c, "/pm/config") > rev);
	pgw_etcd_free(c);
}

static void test_delete_if_value(void **state)
{
	struct pgw_etcd *c;
	bool ok = true;

	(void)state;
	need_etcd();
	c = client();
	put_str(c, "/dv/leader", "node1", 0);
	assert_int_equal(pgw_etcd_delete_if_value(c, "/dv/leader", "node2", T_MS, &ok), 0);
	assert_false(ok);
	assert_int_equal(pgw_etcd_delete_if_value(c, "/dv/leader", "node", T_MS, &ok), 0);
	assert_false(ok);
	assert_true(mod_rev(c, "/dv/leader") > 0);
	assert_int_equal(pgw_etcd_delete_if_value(c, "/dv/leader", "node1", T_MS, &ok), 0);
	assert_true(ok);
	assert_int_equal(mod_rev(c, "/dv/leader"), 0);
	pgw_etcd_free(c);
}

static void test_delete_if_mod(void **state)
{
	struct pgw_etcd *c;
	int64_t rev;
	bool ok = true;

	(void)state;
	need_etcd();
	c = client();
	put_str(c, "/dm/leader", "node1", 0);
	rev = mod_rev(c, "/dm/leader");
	assert_int_equal(pgw_etcd_delete_if_mod(c, "/dm/leader", rev - 1, T_MS, &ok), 0);
	assert_false(ok);
	assert_int_equal(pgw_etcd_delete_if_mod(c, "/dm/leader", rev, T_MS, &ok), 0);
	assert_true(ok);
	assert_int_equal(mod_rev(c, "/dm/leader"), 0);
	pgw_etcd_free(c);
}

/* ---- watch --------------------------------------------------------------- */

struct seen {
	int puts, deletes;
	char last_key[64];
	int64_t last_mod;
	const char *stop_on_delete_of; /* NULL: never stop */
};

static bool on_event(void *arg, const struct pgw_etcd_event *ev)
{
	struct seen *s = arg;

	if (ev->type == PGW_ETCD_DELETE)
		s->deletes++;
	else
		s->puts++;
	snprintf(s->last_key, sizeof(s->last_key), "%s", ev->key);
	s->last_mod = ev->mod_revision;
	return ev->type == PGW_ETCD_DELETE && s->stop_on_delete_of &&
	       !strcmp(ev->key, s->stop_on_delete_of);
}

static void *delete_later(void *key)
{
	struct pgw_etcd *c = client();

	usleep(200000);
	pgw_etcd_delete(c, key, T_MS);
	pgw_etcd_free(c);
	return NULL;
}

static void test_watch_fires_on_delete(void **state)
{
	struct seen s = {.stop_on_delete_of = "/wd/leader"};
	struct pgw_etcd *c;
	struct pgw_etcd_range r;
	pthread_t th;
	bool fired = false;
	int64_t t0, rev;

	(void)state;
	need_etcd();
	c = client();
	put_str(c, "/wd/leader", "n1", 0);
	put_str(c, "/wdx", "outside the prefix", 0);
	assert_int_equal(pgw_etcd_range_prefix(c, "/wd/", T_MS, &r), 0);
	rev = r.revision;
	pgw_etcd_range_free(&r);
	assert_int_equal(pthread_create(&th, NULL, delete_later, "/wd/leader"), 0);
	t0 = now_ms();
	assert_int_equal(pgw_etcd_watch(c, "/wd/", rev + 1, 3000, on_event, &s, &fired), 0);
	pthread_join(th, NULL);
	assert_true(fired);
	assert_in_range(now_ms() - t0, 100, 1500);
	assert_int_equal(s.deletes, 1);
	assert_int_equal(s.puts, 0);
	assert_string_equal(s.last_key, "/wd/leader");
	assert_true(s.last_mod > rev);
	/* from an older revision the history is replayed: PUT then DELETE */
	memset(&s, 0, sizeof(s));
	s.stop_on_delete_of = "/wd/leader";
	assert_int_equal(pgw_etcd_watch(c, "/wd/", rev, 3000, on_event, &s, &fired), 0);
	assert_true(fired);
	assert_int_equal(s.deletes, 1);
	pgw_etcd_free(c);
}

static void test_watch_timeout(void **state)
{
	struct seen s = {.stop_on_delete_of = "/wt/leader"};
	struct pgw_etcd *c;
	bool fired = true;
	int64_t t0, took;

	(void)state;
	need_etcd();
	c = client();
	put_str(c, "/wt/leader", "n1", 0);
	t0 = now_ms();
	assert_int_equal(pgw_etcd_watch(c, "/wt/", 0, 500, on_event, &s, &fired), 0);
	took = now_ms() - t0;
	assert_false(fired);
	assert_in_range(took, 450, 900);
	/* a PUT does not stop it, and the client still works afterwards */
	assert_int_equal(s.deletes, 0);
	assert_true(mod_rev(c, "/wt/leader") > 0);
	pgw_etcd_free(c);
}

/* A stop signal ends a quiet watch early, without an error, so shutdown is prompt. */
static void *raise_flag_later(void *arg)
{
	volatile sig_atomic_t *flag = arg;

	usleep(200 * 1000);
	*flag = 1;
	return NULL;
}

static bool flag_raised(void *arg)
{
	return *(volatile sig_atomic_t *)arg != 0;
}

static void test_watch_interrupted(void **state)
{
	struct seen s = {.stop_on_delete_of = "/wi/leader"};
	static volatile sig_atomic_t flag;
	struct pgw_etcd *c;
	bool fired = true;
	pthread_t t;
	int64_t t0, took;

	(void)state;
	need_etcd();
	c = client();
	flag = 0;
	pgw_etcd_set_interrupt(c, flag_raised, (void *)&flag);
	assert_int_equal(pthread_create(&t, NULL, raise_flag_later, (void *)&flag), 0);
	t0 = now_ms();
	assert_int_equal(pgw_etcd_watch(c, "/wi/", 0, 5000, on_event, &s, &fired), 0);
	took = now_ms() - t0;
	pthread_join(t, NULL);
	assert_false(fired);
	assert_in_range(took, 150, 1500);
	/* other calls are not interrupted by the flag */
	put_str(c, "/wi/leader", "n1", 0);
	assert_true(mod_rev(c, "/wi/leader") > 0);
	pgw_etcd_free(c);
}

static void test_watch_compacted(void **state)
{
	struct seen s = {0};
	struct pgw_etcd *c;
	char body[64];
	int64_t rev;
	bool fired = true;

	(void)state;
	need_etcd();
	c = client();
	put_str(c, "/wc/a", "1", 0);
	put_str(c, "/wc/a", "2", 0);
	rev = mod_rev(c, "/wc/a");
	snprintf(body, sizeof(body), "{\"revision\":\"%lld\"}", (long long)rev);
	assert_true(raw_http("/v3/kv/compaction", body, NULL));
	assert_int_equal(pgw_etcd_watch(c, "/wc/", rev - 1, 2000, on_event, &s, &fired),
	                 PGW_ETCD_ECOMPACTED);
	assert_false(fired);
	assert_non_null(strstr(pgw_etcd_errmsg(c), "compacted"));
	pgw_etcd_free(c);
}

/* ---- endpoints ----------------------------------------------------------- */

static void test_failover(void **state)
{
	char dead[32], real[32];
	const char *ep[] = {dead, real};
	struct pgw_etcd *c;
	int64_t t0;

	(void)state;
	need_etcd();
	snprintf(dead, sizeof(dead), "127.0.0.1:%d", free_port());
	snprintf(real, sizeof(real), "127.0.0.1:%d", etcd.port);
	c = pgw_etcd_new(ep, 2, "http", NULL, NULL, NULL);
	assert_non_null(c);
	t0 = now_ms();
	put_str(c, "/fo/k", "v", 0);
	assert_true(mod_rev(c, "/fo/k") > 0);
	assert_true(now_ms() - t0 < 1000);
	pgw_etcd_free(c);
}

static void test_all_dead(void **state)
{
	char d1[32], d2[32];
	const char *ep[] = {d1, d2};
	struct pgw_etcd *c;
	struct pgw_etcd_range r;
	int64_t t0;

	(void)state;
	snprintf(d1, sizeof(d1), "127.0.0.1:%d", free_port());
	snprintf(d2, sizeof(d2), "127.0.0.1:%d", free_port());
	c = pgw_etcd_new(ep, 2, "http", NULL, NULL, NULL);
	assert_non_null(c);
	t0 = now_ms();
	assert_int_equal(pgw_etcd_get(c, "/x", 500, &r), PGW_ETCD_EUNAVAIL);
	assert_true(now_ms() - t0 <= 600);
	assert_non_null(strstr(pgw_etcd_errmsg(c), d2 + 0));
	pgw_etcd_free(c);
}

/* A server that accepts connections but never answers: calls time out. */
static void test_silent_server(void **state)
{
	int port, fd = listen_port(&port);
	char ep[32];
	const char *eps[] = {ep};
	struct pgw_etcd *c;
	int64_t t0, id;
	bool fired = true;

	(void)state;
	snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
	c = pgw_etcd_new(eps, 1, "http", NULL, NULL, NULL);
	t0 = now_ms();
	assert_int_equal(pgw_etcd_lease_grant(c, 5, 300, &id, NULL), PGW_ETCD_EUNAVAIL);
	assert_in_range(now_ms() - t0, 250, 450);
	t0 = now_ms();
	assert_int_equal(pgw_etcd_watch(c, "/s/", 0, 300, on_event, NULL, &fired),
	                 PGW_ETCD_EUNAVAIL);
	assert_false(fired);
	assert_in_range(now_ms() - t0, 250, 450);
	pgw_etcd_free(c);
	close(fd);
}

/* ---- fake servers -------------------------------------------------------- */

struct fake {
	int fd, port;
	const char *const *parts; /* written one after another, 50 ms apart */
	atomic_bool stop;
	pthread_t th;
};

/* Reads one HTTP request (headers and a Content-Length body). */
static void read_request(int fd)
{
	char buf[8192], *hdr_end, *cl;
	size_t len = 0, want = SIZE_MAX;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (len < sizeof(buf) - 1 && len < want && poll(&p, 1, 1000) > 0) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
		cl = strcasestr(buf, "Content-Length:");
		if (hdr_end)
			want = (size_t)(hdr_end + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct pollfd p = {.fd = f->fd, .events = POLLIN};
	size_t i;
	int fd;

	while (!atomic_load(&f->stop)) {
		if (poll(&p, 1, 20) <= 0 || (fd = accept(f->fd, NULL, NULL)) < 0)
			continue;
		read_request(fd);
		for (i = 0; f->parts[i]; i++) {
			if (i)
				usleep(50000);
			if (write(fd, f->parts[i], strlen(f->parts[i])) < 0)
				break;
		}
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	return NULL;
}

static struct pgw_etcd *fake_start(struct fake *f, const char *const *parts)
{
	char ep[32];
	const char *eps[] = {ep};

	f->fd = listen_port(&f->port);
	f->parts = parts;
	atomic_init(&f->stop, false);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
	snprintf(ep, sizeof(ep), "127.0.0.1:%d", f->port);
	return pgw_etcd_new(eps, 1, "http", NULL, NULL, NULL);
}

static void fake_stop(struct fake *f, struct pgw_etcd *c)
{
	pgw_etcd_free(c);
	atomic_store(&f->stop, true);
	pthread_join(f->th, NULL);
	close(f->fd);
}

#define HTTP_OK "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"

static void test_fake_garbage(void **state)
{
	const char *parts[] = {HTTP_OK "this is not json", NULL};
	struct fake f;
	struct pgw_etcd *c = fake_start(&f, parts);
	struct pgw_etcd_range r;
	char where[64];
	bool ok;

	(void)state;
	snprintf(where, sizeof(where), "127.0.0.1:%d/v3/kv/range", f.port);
	assert_int_equal(pgw_etcd_get(c, "/k", T_MS, &r), PGW_ETCD_EPROTO);
	assert_non_null(strstr(pgw_etcd_errmsg(c), where));
	assert_non_null(strstr(pgw_etcd_errmsg(c), "get"));
	assert_int_equal(pgw_etcd_create(c, "/k", "v", 1, 0, T_MS, &ok), PGW_ETCD_EPROTO);
	assert_false(ok);
	fake_stop(&f, c);
}

static void test_fake_truncated(void **state)
{
	const char *parts[] = {HTTP_OK "{\"header\":{\"revision\":\"3\"},\"kvs\":[", NULL};
	struct fake f;
	struct pgw_etcd *c = fake_start(&f, parts);
	struct pgw_etcd_range r;

	(void)state;
	assert_int_equal(pgw_etcd_range_prefix(c, "/k", T_MS, &r), PGW_ETCD_EPROTO);
	fake_stop(&f, c);
}

static void test_fake_empty_header(void **state)
{
	const char *parts[] = {HTTP_OK "{\"header\":{}}\n", NULL};
	struct fake f;
	struct pgw_etcd *c = fake_start(&f, parts);
	struct pgw_etcd_range r;
	int64_t id = 7;
	int left = 9;
	bool ok = true;

	(void)state;
	assert_int_equal(pgw_etcd_range_prefix(c, "/k/", T_MS, &r), 0);
	assert_int_equal(r.n, 0);
	pgw_etcd_range_free(&r);
	assert_int_equal(pgw_etcd_lease_grant(c, 5, T_MS, &id, NULL), PGW_ETCD_EPROTO);
	assert_int_equal(id, 7);
	assert_non_null(strstr(pgw_etcd_errmsg(c), "ID"));
	assert_int_equal(pgw_etcd_lease_keepalive(c, 1, T_MS, &left), PGW_ETCD_EPROTO);
	assert_int_equal(pgw_etcd_delete_if_mod(c, "/k", 1, T_MS, &ok), 0);
	assert_false(ok); /* "succeeded" absent */
	fake_stop(&f, c);
}

static void test_fake_bad_fields(void **state)
{
	const char *parts[] = {
	    HTTP_OK "{\"header\":{},\"kvs\":[{\"key\":\"not base64!\"}],\"succeeded\":\"yes\"}",
	    NULL};
	struct fake f;
	struct pgw_etcd *c = fake_start(&f, parts);
	struct pgw_etcd_range r;
	bool ok = true;

	(void)state;
	assert_int_equal(pgw_etcd_get(c, "/k", T_MS, &r), PGW_ETCD_EPROTO);
	assert_int_equal(pgw_etcd_delete_if_mod(c, "/k", 1, T_MS, &ok), PGW_ETCD_EPROTO);
	assert_false(ok);
	fake_stop(&f, c);
}

/* Issue 11, item 8: a key with a NUL byte ("leader\\0x") is skipped, not read as "leader". */
static void test_fake_nul_key(void **state)
{
	const char *parts[] = {
	    HTTP_OK
	    "{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"L3MvbGVhZGVyAHg=\",\"value\":"
	    "\"bWFsbG9yeQ==\",\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"1\","
	    "\"lease\":\"0\"},{\"key\":\"L3MvbGVhZGVy\",\"value\":\"bm9kZTE=\",\"create_revision\":"
	    "\"4\",\"mod_revision\":\"5\",\"version\":\"1\",\"lease\":\"7\"}],\"count\":\"2\"}",
	    NULL};
	struct fake f;
	struct pgw_etcd *c = fake_start(&f, parts);
	struct pgw_etcd_range r;

	(void)state;
	assert_int_equal(pgw_etcd_range_prefix(c, "/s/", T_MS, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.kvs[0].key, "/s/leader");
	assert_string_equal(r.kvs[0].value, "node1");
	assert_int_equal(r.revision, 9);
	pgw_etcd_range_free(&r);
	fake_stop(&f, c);
}

static void test_fake_error_object(void **state)
{
	const char *parts[] = {"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
	                       "{\"error\":\"etcdserver: too many requests\",\"code\":8}",
	                       NULL};
	struct fake f;
	struct pgw_etcd *c = fake_start(&f, parts);

	(void)state;
	assert_int_equal(pgw_etcd_put(c, "/k", "v", 1, 0, T_MS), PGW_ETCD_EREJECT);
	assert_non_null(strstr(pgw_etcd_errmsg(c), "too many requests"));
	fake_stop(&f, c);
}

static void test_fake_too_large(void **state)
{
	const char *parts[] = {"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n{", NULL};
	struct fake f;
	struct pgw_etcd *c = fake_start(&f, parts);
	struct pgw_etcd_range r;
	int64_t t0 = now_ms();

	(void)state;
	assert_int_equal(pgw_etcd_get(c, "/k", T_MS, &r), PGW_ETCD_EPROTO);
	assert_non_null(strstr(pgw_etcd_errmsg(c), "larger"));
	assert_true(now_ms() - t0 < 1000);
	fake_stop(&f, c);
}

/* Stream objects split across writes, and several in one write. */
static void test_fake_watch_stream(void **state)
{
	const char *parts[] = {
	    HTTP_OK "{\"result\":{\"header\":{\"revision\":\"5\"},\"created\":true}}\n"
	            "{\"result\":{\"header\":{},\"events\":[{\"kv\":{\"key\":\"L3cv",
	    "YQ==\",\"mod_revision\":\"6\",\"version\":\"1\"}}]}}\n{\"result\":{\"events\":[{"
	    "\"type\":\"PUT\",\"kv\":{\"key\":\"L3cvYQ==\"}}]}}\n{\"resu",
	    "lt\":{\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3cvYg==\","
	    "\"mod_revision\":\"8\"}}]}}\n",
	    NULL};
	struct seen s = {.stop_on_delete_of = "/w/b"};
	struct fake f;
	struct pgw_etcd *c = fake_start(&f, parts);
	bool fired = false;

	(void)state;
	assert_int_equal(pgw_etcd_watch(c, "/w/", 5, T_MS, on_event, &s, &fired), 0);
	assert_true(fired);
	assert_int_equal(s.puts, 2);
	assert_int_equal(s.deletes, 1);
	assert_string_equal(s.last_key, "/w/b");
	assert_int_equal(s.last_mod, 8);
	fake_stop(&f, c);
}

static void test_fake_watch_bad(void **state)
{
	const char *garbage[] = {HTTP_OK "{\"result\":{\"created\":true}}\n[1,2", "}", NULL};
	const char *ended[] = {HTTP_OK "{\"result\":{\"created\":true}}\n", NULL};
	const char *err[] = {HTTP_OK "{\"error\":{\"grpc_code\":14,\"message\":\"no leader\"}}\n",
	                     NULL};
	struct seen s = {0};
	struct fake f;
	struct pgw_etcd *c;
	bool fired = true;

	(void)state;
	c = fake_start(&f, garbage);
	assert_int_equal(pgw_etcd_watch(c, "/w/", 0, T_MS, on_event, &s, &fired), PGW_ETCD_EPROTO);
	assert_false(fired);
	fake_stop(&f, c);
	c = fake_start(&f, ended);
	assert_int_equal(pgw_etcd_watch(c, "/w/", 0, T_MS, on_event, &s, &fired), PGW_ETCD_EPROTO);
	fake_stop(&f, c);
	c = fake_start(&f, err);
	assert_int_equal(pgw_etcd_watch(c, "/w/", 0, T_MS, on_event, &s, &fired), PGW_ETCD_EREJECT);
	assert_non_null(strstr(pgw_etcd_errmsg(c), "no leader"));
	fake_stop(&f, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_b64_vectors),
	    cmocka_unit_test(test_b64_binary),
	    cmocka_unit_test(test_b64_rejects),
	    cmocka_unit_test(test_lease_cycle),
	    cmocka_unit_test(test_lease_key_vanishes),
	    cmocka_unit_test(test_put_get_range),
	    cmocka_unit_test(test_create),
	    cmocka_unit_test(test_create_and_put_delete_and_put),
	    cmocka_unit_test(test_put_if_mod),
	    cmocka_unit_test(test_delete_if_value),
	    cmocka_unit_test(test_delete_if_mod),
	    cmocka_unit_test(test_watch_fires_on_delete),
	    cmocka_unit_test(test_watch_timeout),
	    cmocka_unit_test(test_watch_interrupted),
	    cmocka_unit_test(test_watch_compacted),
	    cmocka_unit_test(test_failover),
	    cmocka_unit_test(test_all_dead),
	    cmocka_unit_test(test_silent_server),
	    cmocka_unit_test(test_fake_garbage),
	    cmocka_unit_test(test_fake_truncated),
	    cmocka_unit_test(test_fake_empty_header),
	    cmocka_unit_test(test_fake_bad_fields),
	    cmocka_unit_test(test_fake_nul_key),
	    cmocka_unit_test(test_fake_error_object),
	    cmocka_unit_test(test_fake_too_large),
	    cmocka_unit_test(test_fake_watch_stream),
	    cmocka_unit_test(test_fake_watch_bad),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
