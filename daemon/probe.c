/*
 * probe.c - the prober thread: overlapping liveness probes of the leader (probe.h).
 *
 * One thread, one curl multi handle (it keeps the REST connections alive between
 * rounds) and up to PROBE_ROUNDS rounds in flight, each with its own REST transfer
 * and PostgreSQL socket.  The thread owns everything but the target and the result,
 * which the HA loop sets and reads under the mutex; curl_multi_wakeup() tells the
 * thread that the target changed.  Nothing here decides anything: the silence goes to
 * the step (core/step.c), which fences only with etcd's proof that the lease is
 * unrenewed too.
 */
#include "probe.h"

#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define PROBE_ROUNDS 16

enum pg_state { PG_NONE, PG_CONNECTING, PG_ASKED };

struct round {
	bool used;
	int64_t sent_ms, deadline_ms;
	CURL *rest; /* in the multi handle until done */
	int pg_fd;  /* -1: none */
	enum pg_state pg;
};

struct pgw_prober {
	pthread_t thread;
	CURLM *multi;
	pthread_mutex_t mu; /* guards target, has_target, gen, stop, silent_since */
	struct pgw_probe_target target;
	bool has_target, stop;
	unsigned gen;
	int64_t silent_since;

	/* the thread's own */
	struct round r[PROBE_ROUNDS];
	struct pgw_probe_target t; /* its copy of the target */
	unsigned t_gen;
	bool t_set;
	char url[PGW_PROBE_URL_MAX + 16]; /* t's /liveness URL, "" = no REST probe */
	struct sockaddr_storage pg_addr;  /* t's PostgreSQL, resolved once */
	socklen_t pg_addrlen;             /* 0: not resolved (or not probed) */
	int64_t last_answered_sent;       /* send time of the newest answered round */
	int64_t first_unanswered;         /* send time of the first round sent after it that
	                                   * did not answer (in flight, failed or given up); 0:
	                                   * none */
	int64_t next_round_ms;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

/* api_url's scheme://host:port followed by /liveness; "" when it is not http(s) (an
 * api_url from etcd that says file:// or ftp:// is not followed). */
static void liveness_url(char *out, size_t n, const char *api_url)
{
	const char *end = strstr(api_url, "://");

	out[0] = '\0';
	if (!end || (strncmp(api_url, "http://", 7) != 0 && strncmp(api_url, "https://", 8) != 0))
		return;
	end = strchr(end + 3, '/');
	snprintf(out, n, "%.*s/liveness", (int)(end ? (size_t)(end - api_url) : strlen(api_url)),
	         api_url);
}

/* Resolve the target's PostgreSQL once (in this thread: a slow resolver delays only
 * the probes).  Not resolved: PostgreSQL is not probed, REST still is. */
static void resolve_pg(struct pgw_prober *p)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	char port[16];
	int rc;

	p->pg_addrlen = 0;
	if (!p->t.host[0] || p->t.host[0] == '/')
		return;
	snprintf(port, sizeof(port), "%d", p->t.port);
	rc = getaddrinfo(p->t.host, port, &hints, &res);
	if (rc != 0 || !res || res->ai_addrlen > sizeof(p->pg_addr)) {
		pgw_warn("fast takeover: cannot resolve the leader's PostgreSQL host %s: %s",
		         p->t.host, rc != 0 ? gai_strerror(rc) : "no address");
		if (res)
			freeaddrinfo(res);
		return;
	}
	memcpy(&p->pg_addr, res->ai_addr, res->ai_addrlen);
	p->pg_addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

static void end_round(struct pgw_prober *p, struct round *r)
{
	if (r->rest) {
		curl_multi_remove_handle(p->multi, r->rest);
		curl_easy_cleanup(r->rest);
		r->rest = NULL;
	}
	if (r->pg_fd >= 0)
		close(r->pg_fd);
	r->pg_fd = -1;
	r->pg = PG_NONE;
	r->used = false;
}

/* Can the target be probed at all?  If not, it counts as answering (cannot tell). */
static bool probeable(const struct pgw_prober *p)
{
	return p->url[0] || p->pg_addrlen > 0;
}

/* The result, for the HA loop. */
static void publish(struct pgw_prober *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->gen == p->t_gen)
		p->silent_since = p->t_set && probeable(p) ? p->first_unanswered : 0;
	pthread_mutex_unlock(&p->mu);
}

/* A round answered: the leader was alive when it was sent.  The silence, if any, now
 * starts at the first round sent after it (rounds sent before it no longer matter). */
static void answered(struct pgw_prober *p, struct round *r)
{
	int64_t sent = r->sent_ms;

	if (sent > p->last_answered_sent)
		p->last_answered_sent = sent;
	if (p->first_unanswered != 0 && p->first_unanswered <= sent) {
		p->first_unanswered = 0;
		for (int i = 0; i < PROBE_ROUNDS; i++) {
			const struct round *o = &p->r[i];

			if (o->used && o->sent_ms > sent &&
			    (p->first_unanswered == 0 || o->sent_ms < p->first_unanswered))
				p->first_unanswered = o->sent_ms;
		}
	}
	for (int i = 0; i < PROBE_ROUNDS; i++)
		if (p->r[i].used && p->r[i].sent_ms <= sent)
			end_round(p, &p->r[i]);
}

static CURL *rest_transfer(struct pgw_prober *p, struct round *r)
{
	CURL *c = curl_easy_init();

	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_URL, p->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(r->deadline_ms - r->sent_ms));
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L); /* liveness only, no data */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)r);
	if (curl_multi_add_handle(p->multi, c) != CURLM_OK) {
		curl_easy_cleanup(c);
		return NULL;
	}
	return c;
}

/* Start connecting to the postmaster (the SSLRequest goes once connected). */
static void pg_connect(struct pgw_prober *p, struct round *r)
{
	int fd = socket(p->pg_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	if (connect(fd, (const struct sockaddr *)&p->pg_addr, p->pg_addrlen) != 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return;
	}
	r->pg_fd = fd;
	r->pg = PG_CONNECTING;
}

/* A round: REST always; PostgreSQL too while the leader is silent (a paused daemon
 * beside a live primary), so that a healthy cluster costs no backend forks. */
static void start_round(struct pgw_prober *p, int64_t now)
{
	struct round *r = NULL;
	bool silent = p->first_unanswered != 0;

	for (int i = 0; i < PROBE_ROUNDS && !r; i++)
		if (!p->r[i].used)
			r = &p->r[i];
	if (!r)
		return; /* all in flight: the oldest frees a slot at its deadline */
	*r = (struct round){
	    .used = true, .sent_ms = now, .deadline_ms = now + p->t.timeout_ms, .pg_fd = -1};
	if (p->url[0])
		r->rest = rest_transfer(p, r);
	if (p->pg_addrlen > 0 && (silent || !r->rest))
		pg_connect(p, r);
	if (!r->rest && r->pg_fd < 0) {
		r->used = false; /* nothing could be sent: not a silence of the leader's */
		return;
	}
	if (p->first_unanswered == 0)
		p->first_unanswered = now;
}

/* Advance one round's PostgreSQL probe after poll() said rev. */
static void pg_progress(struct pgw_prober *p, struct round *r, short rev)
{
	/* SSLRequest: length 8, code 80877103 */
	static const unsigned char req[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	int err = 0;
	socklen_t elen = sizeof(err);
	char answer;

	if (r->pg == PG_CONNECTING && (rev & (POLLOUT | POLLERR | POLLHUP))) {
		if (getsockopt(r->pg_fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0 ||
		    send(r->pg_fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
			close(r->pg_fd); /* refused: the postmaster is gone */
			r->pg_fd = -1;
			r->pg = PG_NONE;
			return;
		}
		r->pg = PG_ASKED;
		return;
	}
	if (r->pg == PG_ASKED && (rev & (POLLIN | POLLERR | POLLHUP))) {
		if (recv(r->pg_fd, &answer, 1, 0) == 1) {
			answered(p, r);
			return;
		}
		close(r->pg_fd);
		r->pg_fd = -1;
		r->pg = PG_NONE;
	}
}

/* Take the target the HA loop set, if it changed: start afresh. */
static bool take_target(struct pgw_prober *p)
{
	bool changed, stop;

	pthread_mutex_lock(&p->mu);
	stop = p->stop;
	changed = p->gen != p->t_gen;
	if (changed) {
		p->t_gen = p->gen;
		p->t_set = p->has_target;
		p->t = p->target;
		p->silent_since = 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (!changed || stop)
		return !stop;
	for (int i = 0; i < PROBE_ROUNDS; i++)
		if (p->r[i].used)
			end_round(p, &p->r[i]);
	p->last_answered_sent = 0;
	p->first_unanswered = 0;
	p->next_round_ms = 0;
	p->url[0] = '\0';
	p->pg_addrlen = 0;
	if (p->t_set) {
		liveness_url(p->url, sizeof(p->url), p->t.api_url);
		resolve_pg(p);
	}
	return true;
}

/* Wait for answers until the next round is due (or a wakeup), then take them. */
static void poll_rounds(struct pgw_prober *p, int64_t now)
{
	struct curl_waitfd fds[PROBE_ROUNDS];
	struct round *of[PROBE_ROUNDS];
	int nfds = 0, running = 0, wait = p->t_set ? (int)(p->next_round_ms - now) : 60000;
	CURLMsg *m;
	int left;

	for (int i = 0; i < PROBE_ROUNDS; i++) {
		struct round *r = &p->r[i];

		if (!r->used)
			continue;
		if (r->deadline_ms - now < wait)
			wait = (int)(r->deadline_ms - now);
		if (r->pg_fd >= 0) {
			fds[nfds] = (struct curl_waitfd){
			    .fd = r->pg_fd, .events = r->pg == PG_CONNECTING ? POLLOUT : POLLIN};
			of[nfds++] = r;
		}
	}
	if (wait < 0)
		wait = 0;
	curl_multi_poll(p->multi, fds, (unsigned)nfds, wait, NULL);
	for (int i = 0; i < nfds; i++)
		if (of[i]->used && of[i]->pg_fd == fds[i].fd && fds[i].revents)
			pg_progress(p, of[i], fds[i].revents);
	curl_multi_perform(p->multi, &running);
	while ((m = curl_multi_info_read(p->multi, &left)) != NULL) {
		struct round *r = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (!r || r->rest != m->easy_handle)
			continue;
		if (m->data.result == CURLE_OK) {
			answered(p, r);
			continue;
		}
		curl_multi_remove_handle(p->multi, r->rest);
		curl_easy_cleanup(r->rest);
		r->rest = NULL;
	}
}

static void *prober_main(void *arg)
{
	struct pgw_prober *p = arg;

	while (take_target(p)) {
		int64_t now = mono_ms();

		for (int i = 0; i < PROBE_ROUNDS; i++)
			if (p->r[i].used &&
			    (now >= p->r[i].deadline_ms || (!p->r[i].rest && p->r[i].pg_fd < 0)))
				end_round(p, &p->r[i]); /* given up, or every probe failed */
		if (p->t_set && probeable(p) && now >= p->next_round_ms) {
			start_round(p, now);
			p->next_round_ms = now + p->t.interval_ms;
			curl_multi_perform(p->multi, &(int){0}); /* send at once */
		}
		publish(p);
		poll_rounds(p, mono_ms());
		publish(p);
	}
	for (int i = 0; i < PROBE_ROUNDS; i++)
		if (p->r[i].used)
			end_round(p, &p->r[i]);
	return NULL;
}

struct pgw_prober *pgw_prober_new(void)
{
	struct pgw_prober *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return NULL;
	for (int i = 0; i < PROBE_ROUNDS; i++)
		p->r[i].pg_fd = -1;
	p->multi = curl_multi_init();
	if (!p->multi) {
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	rc = pthread_create(&p->thread, NULL, prober_main, p);
	if (rc != 0) {
		curl_multi_cleanup(p->multi);
		pthread_mutex_destroy(&p->mu);
		free(p);
		errno = rc;
		return NULL;
	}
	return p;
}

void pgw_prober_free(struct pgw_prober *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_mutex_unlock(&p->mu);
	curl_multi_wakeup(p->multi);
	pthread_join(p->thread, NULL);
	curl_multi_cleanup(p->multi);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

void pgw_prober_set_target(struct pgw_prober *p, const struct pgw_probe_target *t)
{
	bool changed;

	pthread_mutex_lock(&p->mu);
	changed = (t != NULL) != p->has_target || (t && memcmp(t, &p->target, sizeof(*t)) != 0);
	if (changed) {
		p->has_target = t != NULL;
		if (t)
			p->target = *t;
		else
			memset(&p->target, 0, sizeof(p->target));
		p->gen++;
		p->silent_since = 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (changed)
		curl_multi_wakeup(p->multi);
}

int64_t pgw_prober_silent_since(struct pgw_prober *p)
{
	int64_t since;

	pthread_mutex_lock(&p->mu);
	since = p->gen == p->t_gen ? p->silent_since : 0;
	pthread_mutex_unlock(&p->mu);
	return since;
}
