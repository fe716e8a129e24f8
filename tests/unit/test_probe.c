/*
 * test_probe.c - the prober thread (daemon/probe.c) against small servers on
 * loopback: an HTTP server that answers (at once or late), a "postmaster" that answers
 * an SSLRequest with 'N', a listener that never accepts (a frozen machine: the kernel
 * completes the handshake, nobody answers) and a closed port (a dead one).
 *
 * The bounds are loose on purpose (an ASan build on a loaded machine): they tell a
 * prober that sees the leader from one that does not, not how fast it is.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "probe.h"

enum srv_mode { SRV_HTTP, SRV_PG, SRV_DEAF };

#define SRV_CONNS 64

struct srv {
	int lfd, port;
	enum srv_mode mode;
	int delay_ms;   /* answer this late */
	int drop_every; /* leave every n-th request unanswered (0: none) */
	int asked;
	pthread_t th;
	volatile int stop;
	int fd[SRV_CONNS];
	long long due[SRV_CONNS]; /* when to answer on fd[i] (0: nothing asked) */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void srv_answer(struct srv *s, int i)
{
	static const char http[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

	if (s->mode == SRV_HTTP)
		(void)!write(s->fd[i], http, sizeof(http) - 1);
	else
		(void)!write(s->fd[i], "N", 1);
	s->due[i] = 0;
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;

	while (!s->stop) {
		struct pollfd p[SRV_CONNS + 1];
		int at[SRV_CONNS + 1], n = 0;
		long long now = now_ms();

		for (int i = 0; i < SRV_CONNS; i++)
			if (s->fd[i] >= 0 && s->due[i] && s->due[i] <= now)
				srv_answer(s, i);
		if (s->mode != SRV_DEAF) {
			p[n] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
			at[n++] = -1;
		}
		for (int i = 0; i < SRV_CONNS; i++)
			if (s->fd[i] >= 0) {
				p[n] = (struct pollfd){.fd = s->fd[i], .events = POLLIN};
				at[n++] = i;
			}
		if (poll(p, (nfds_t)n, 10) <= 0)
			continue;
		for (int k = 0; k < n; k++) {
			char buf[4096];
			int i = at[k];

			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (i < 0) {
				int fd = accept(s->lfd, NULL, NULL);

				for (int j = 0; fd >= 0 && j < SRV_CONNS; j++)
					if (s->fd[j] < 0) {
						s->fd[j] = fd;
						s->due[j] = 0;
						fd = -1;
					}
				if (fd >= 0)
					close(fd);
				continue;
			}
			if (read(s->fd[i], buf, sizeof(buf)) <= 0) {
				close(s->fd[i]);
				s->fd[i] = -1;
				continue;
			}
			if (s->drop_every && ++s->asked % s->drop_every == 0)
				continue; /* lost: the connection stays, nothing comes */
			s->due[i] = now_ms() + s->delay_ms;
			if (s->delay_ms == 0)
				srv_answer(s, i);
		}
	}
	return NULL;
}

static void srv_start(struct srv *s, enum srv_mode mode, int delay_ms)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	memset(s, 0, sizeof(*s));
	for (int i = 0; i < SRV_CONNS; i++)
		s->fd[i] = -1;
	s->mode = mode;
	s->delay_ms = delay_ms;
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 64), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
	for (int i = 0; i < SRV_CONNS; i++)
		if (s->fd[i] >= 0)
			close(s->fd[i]);
	close(s->lfd);
}

/* A port nothing listens on (bound, then closed). */
static int closed_port(void)
{
	struct srv s;
	int port;

	srv_start(&s, SRV_DEAF, 0);
	port = s.port;
	srv_stop(&s);
	return port;
}

static struct pgw_probe_target target(int rest_port, int pg_port, int interval, int timeout)
{
	struct pgw_probe_target t;

	memset(&t, 0, sizeof(t));
	if (rest_port)
		snprintf(t.api_url, sizeof(t.api_url), "http://127.0.0.1:%d/patroni", rest_port);
	if (pg_port)
		snprintf(t.host, sizeof(t.host), "127.0.0.1");
	t.port = pg_port;
	t.tag = 1;
	t.interval_ms = interval;
	t.timeout_ms = timeout;
	return t;
}

/* The longest silence the prober reports while sampled every 10 ms for ms. */
static long long longest_silence(struct pgw_prober *p, int ms)
{
	long long end = now_ms() + ms, longest = 0;

	while (now_ms() < end) {
		long long since = pgw_prober_silent_since(p);

		if (since && now_ms() - since > longest)
			longest = now_ms() - since;
		sleep_ms(10);
	}
	return longest;
}

/* The leader answers on REST: never silent for long; once it is gone: silent. */
static void test_rest_answers_then_dies(void **state)
{
	struct pgw_prober *p = pgw_prober_new();
	struct srv s;
	struct pgw_probe_target t;
	long long since;

	(void)state;
	assert_non_null(p);
	srv_start(&s, SRV_HTTP, 0);
	t = target(s.port, 0, 100, 1000);
	pgw_prober_set_target(p, &t);
	assert_true(longest_silence(p, 1500) < 700);
	srv_stop(&s); /* the port refuses from now on */
	sleep_ms(800);
	since = pgw_prober_silent_since(p);
	assert_true(since > 0);
	assert_true(now_ms() - since >= 500);
	pgw_prober_free(p);
}

/* A leader whose every answer comes 400 ms late, probed every 100 ms: the rounds
 * overlap, so it is never silent for much longer than its latency. */
static void test_late_answers_overlap(void **state)
{
	struct pgw_prober *p = pgw_prober_new();
	struct srv s;
	struct pgw_probe_target t;

	(void)state;
	assert_non_null(p);
	srv_start(&s, SRV_HTTP, 400);
	t = target(s.port, 0, 100, 1500);
	pgw_prober_set_target(p, &t);
	assert_true(longest_silence(p, 2500) < 1200);
	pgw_prober_free(p);
	srv_stop(&s);
}

/* A lossy link: every third request is lost (its round waits out its 2 s timeout).
 * The next rounds do not wait for it: the silence is a round or two, not 2 s (the
 * old probes, one at a time, were silent for their whole deadline). */
static void test_lost_requests_cost_one_round(void **state)
{
	struct pgw_prober *p = pgw_prober_new();
	struct srv s;
	struct pgw_probe_target t;

	(void)state;
	assert_non_null(p);
	srv_start(&s, SRV_HTTP, 0);
	s.drop_every = 3;
	t = target(s.port, 0, 100, 2000);
	pgw_prober_set_target(p, &t);
	assert_true(longest_silence(p, 2500) < 800);
	pgw_prober_free(p);
	srv_stop(&s);
}

/* REST silent (a stopped daemon) but its postmaster answers: alive. */
static void test_postmaster_answers_for_a_stopped_daemon(void **state)
{
	struct pgw_prober *p = pgw_prober_new();
	struct srv rest, pg;
	struct pgw_probe_target t;

	(void)state;
	assert_non_null(p);
	srv_start(&rest, SRV_DEAF, 0);
	srv_start(&pg, SRV_PG, 0);
	t = target(rest.port, pg.port, 100, 1000);
	pgw_prober_set_target(p, &t);
	sleep_ms(300); /* PostgreSQL is asked from the second round on */
	assert_true(longest_silence(p, 1500) < 700);
	pgw_prober_free(p);
	srv_stop(&pg);
	srv_stop(&rest);
}

/* A frozen machine: its kernel accepts, nothing answers on either port. */
static void test_frozen_machine_is_silent(void **state)
{
	struct pgw_prober *p = pgw_prober_new();
	struct srv rest, pg;
	struct pgw_probe_target t;
	long long since, start = now_ms();

	(void)state;
	assert_non_null(p);
	srv_start(&rest, SRV_DEAF, 0);
	srv_start(&pg, SRV_DEAF, 0);
	t = target(rest.port, pg.port, 100, 1000);
	pgw_prober_set_target(p, &t);
	sleep_ms(1200);
	since = pgw_prober_silent_since(p);
	/* silent from the first round on, though its rounds were given up meanwhile */
	assert_true(since >= start && since <= start + 300);
	pgw_prober_free(p);
	srv_stop(&pg);
	srv_stop(&rest);
}

/* Another target starts afresh; an unprobeable one (a socket path, a file:// URL) is
 * never silent (cannot tell: no takeover); no target: nothing. */
static void test_target_change_and_unprobeable(void **state)
{
	struct pgw_prober *p = pgw_prober_new();
	struct pgw_probe_target t = target(closed_port(), 0, 100, 1000);
	struct srv s;

	(void)state;
	assert_non_null(p);
	pgw_prober_set_target(p, &t);
	sleep_ms(500);
	assert_true(pgw_prober_silent_since(p) > 0);
	t.tag = 2; /* the same addresses, another lease */
	pgw_prober_set_target(p, &t);
	assert_int_equal(pgw_prober_silent_since(p), 0);
	srv_start(&s, SRV_HTTP, 0);
	t = target(s.port, 0, 100, 1000);
	pgw_prober_set_target(p, &t);
	assert_true(longest_silence(p, 600) < 500);
	srv_stop(&s);

	memset(&t, 0, sizeof(t));
	snprintf(t.api_url, sizeof(t.api_url), "file:///etc/passwd");
	snprintf(t.host, sizeof(t.host), "/run/postgresql");
	t.port = 5432;
	t.interval_ms = 100;
	t.timeout_ms = 1000;
	pgw_prober_set_target(p, &t);
	assert_int_equal(longest_silence(p, 400), 0);
	pgw_prober_set_target(p, NULL);
	assert_int_equal(pgw_prober_silent_since(p), 0);
	pgw_prober_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rest_answers_then_dies),
	    cmocka_unit_test(test_late_answers_overlap),
	    cmocka_unit_test(test_lost_requests_cost_one_round),
	    cmocka_unit_test(test_postmaster_answers_for_a_stopped_daemon),
	    cmocka_unit_test(test_frozen_machine_is_silent),
	    cmocka_unit_test(test_target_change_and_unprobeable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
