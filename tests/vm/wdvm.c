/*
 * wdvm.c - the guest side of the real-device watchdog test (tests/vm/): a static
 * program that drives the kernel's i6300esb driver in a qemu VM through the
 * project's own watchdog/watchdog.c and the daemon's keepalive-window rule
 * (pgw_wd_pet_after_renewal -> pgw_lease_may_pet), and prints what the host script
 * (test_watchdog_vm.sh) times.  Every line carries the guest's CLOCK_MONOTONIC.
 *
 *   wdvm lease [ttl=10] [margin=5] [renewals=6] [latency_ms=200] [device=/dev/watchdog]
 *       arm with W = TTL - S; every second "renew" the lease (a successful renewal
 *       that takes latency_ms) and pet after it when the window allows; then the
 *       renewals fail and nothing pets any more: the hardware must reset the VM
 *       before the simulated lease expiry D = t_send + TTL.  Exits 3 if still alive
 *       10 s after D.
 *   wdvm magic [timeout=5] [pets=3] [device=/dev/watchdog]
 *       arm, pet, stop with pgw_wd_close() (DISABLECARD, 'V', close), then stay
 *       alive 3 * W and exit 0.
 *   wdvm exit CODE
 *       write CODE to qemu's isa-debug-exit port 0xf4 (qemu exits (CODE << 1) | 1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <time.h>
#include <unistd.h>

#include "../../watchdog/watchdog.h"
#include "lease.h"

#define DEBUG_EXIT_PORT 0xf4

struct opts {
	int ttl, margin, renewals, latency_ms, timeout, pets;
	const char *device;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double secs(int64_t ms)
{
	return (double)ms / 1000.0;
}

static void sleep_until(int64_t t_ms)
{
	int64_t left;

	while ((left = t_ms - mono_ms()) > 0) {
		struct timespec ts = {.tv_sec = left / 1000,
		                      .tv_nsec = (long)(left % 1000) * 1000000};

		nanosleep(&ts, NULL);
	}
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		int *target = NULL;

		if (!eq) {
			fprintf(stderr, "wdvm: %s: expected key=value\n", argv[i]);
			return -1;
		}
		*eq = '\0';
		if (strcmp(argv[i], "device") == 0) {
			o->device = eq + 1;
			continue;
		}
		if (strcmp(argv[i], "ttl") == 0)
			target = &o->ttl;
		else if (strcmp(argv[i], "margin") == 0)
			target = &o->margin;
		else if (strcmp(argv[i], "renewals") == 0)
			target = &o->renewals;
		else if (strcmp(argv[i], "latency_ms") == 0)
			target = &o->latency_ms;
		else if (strcmp(argv[i], "timeout") == 0)
			target = &o->timeout;
		else if (strcmp(argv[i], "pets") == 0)
			target = &o->pets;
		if (!target) {
			fprintf(stderr, "wdvm: unknown option %s\n", argv[i]);
			return -1;
		}
		*target = atoi(eq + 1);
	}
	return 0;
}

static struct pgw_wd *open_device(const struct opts *o)
{
	char err[512];
	struct pgw_wd *wd = pgw_wd_open(o->device, err, sizeof(err));
	const struct pgw_wd_info *in;

	if (!wd) {
		printf("OPEN-FAILED %s\n", err);
		return NULL;
	}
	in = pgw_wd_info(wd);
	printf("OPENED mono=%.3f device=%s identity=\"%s\" options=0x%x idle_timeout=%d "
	       "nowayout=%d\n",
	       secs(mono_ms()), o->device, in->identity, in->options, in->timeout, in->nowayout);
	return wd;
}

static int scenario_lease(const struct opts *o)
{
	const int want = pgw_wd_want_timeout(o->ttl, o->margin);
	const int max = pgw_wd_max_timeout(o->ttl, o->margin);
	const int64_t margin_ms = (int64_t)o->margin * 1000;
	int64_t next, t_send = 0, last_pet = 0, deadline = 0;
	struct pgw_wd *wd;
	char err[512];

	printf("LEASE ttl=%d margin=%d reset_allowance_ms=%d want=%d max=%d renewals=%d "
	       "latency_ms=%d\n",
	       o->ttl, o->margin, PGW_RESET_ALLOWANCE_MS, want, max, o->renewals, o->latency_ms);
	wd = open_device(o);
	if (!wd)
		return 1;
	if (pgw_wd_arm(wd, want, max, err, sizeof(err)) != 0) {
		printf("ARM-FAILED %s\n", err);
		pgw_wd_close(wd);
		return 1;
	}
	printf("ARMED mono=%.3f W=%d\n", secs(mono_ms()), pgw_wd_info(wd)->timeout);
	fflush(stdout);

	next = mono_ms() + 1000;
	for (int i = 1; i <= o->renewals; i++) {
		int64_t now;
		int r;

		sleep_until(next);
		next += 1000;
		t_send = mono_ms();
		sleep_until(t_send + o->latency_ms); /* the renewal's round trip; it succeeds */
		deadline = t_send + (int64_t)o->ttl * 1000;
		now = mono_ms();
		r = pgw_wd_pet_after_renewal(wd, t_send, now, margin_ms);
		if (r < 0) {
			printf("KEEPALIVE-FAILED %s\n", strerror(errno));
			return 1;
		}
		if (r == 1) {
			last_pet = now;
			printf("KEEPALIVE %d mono=%.3f t_send=%.3f D=%.3f\n", i, secs(now),
			       secs(t_send), secs(deadline));
		} else {
			printf("NOT-PETTED %d mono=%.3f t_send=%.3f took_ms=%lld\n", i, secs(now),
			       secs(t_send), (long long)(now - t_send));
		}
		fflush(stdout);
	}
	if (last_pet == 0) {
		printf("NO-KEEPALIVE: no renewal came back within S - R; nothing was petted\n");
		pgw_wd_close(wd);
		return 1;
	}
	/* gap: how long after its renewal's t_send the last pet came; D - R bounds the reset */
	printf("LAST-KEEPALIVE mono=%.3f t_send=%.3f gap=%.3f D=%.3f until_D=%.3f "
	       "expect_reset_at=%.3f\n",
	       secs(last_pet), secs(t_send), secs(last_pet - t_send), secs(deadline),
	       secs(deadline - last_pet),
	       secs(last_pet + (int64_t)pgw_wd_info(wd)->timeout * 1000));
	fflush(stdout);

	/* from now on every renewal fails: no pets, the hardware has to act */
	for (;;) {
		sleep_until(next);
		next += 1000;
		printf("RENEWAL-FAILED mono=%.3f since_last_keepalive=%.3f D_in=%.3f\n",
		       secs(mono_ms()), secs(mono_ms() - last_pet), secs(deadline - mono_ms()));
		fflush(stdout);
		if (mono_ms() > deadline + 10000) {
			printf("NO-RESET: still alive 10 s after the lease expiry\n");
			pgw_wd_close(wd);
			return 3;
		}
	}
}

static int scenario_magic(const struct opts *o)
{
	struct pgw_wd *wd;
	char err[512];
	int64_t closed;
	int w;

	wd = open_device(o);
	if (!wd)
		return 1;
	if (pgw_wd_arm(wd, o->timeout, o->timeout, err, sizeof(err)) != 0) {
		printf("ARM-FAILED %s\n", err);
		pgw_wd_close(wd);
		return 1;
	}
	w = pgw_wd_info(wd)->timeout;
	printf("ARMED mono=%.3f W=%d\n", secs(mono_ms()), w);
	for (int i = 1; i <= o->pets; i++) {
		sleep_until(mono_ms() + 1000);
		if (pgw_wd_keepalive(wd) != 0) {
			printf("KEEPALIVE-FAILED %s\n", strerror(errno));
			return 1;
		}
		printf("KEEPALIVE %d mono=%.3f\n", i, secs(mono_ms()));
		fflush(stdout);
	}
	pgw_wd_close(wd);
	closed = mono_ms();
	printf("MAGIC-CLOSED mono=%.3f\n", secs(closed));
	fflush(stdout);
	for (int i = 1; i <= 3 * w; i++) {
		sleep_until(closed + (int64_t)i * 1000);
		printf("ALIVE +%ds after the magic close\n", i);
		fflush(stdout);
	}
	printf("MAGIC-OK alive %d s (3 * W) after the magic close\n", 3 * w);
	return 0;
}

static int guest_exit(int code)
{
	if (ioperm(DEBUG_EXIT_PORT, 1, 1) != 0) {
		fprintf(stderr, "wdvm: ioperm: %s\n", strerror(errno));
		return 1;
	}
	outb((unsigned char)code, DEBUG_EXIT_PORT);
	sleep(1);
	fprintf(stderr, "wdvm: isa-debug-exit is not there\n");
	return 1;
}

int main(int argc, char **argv)
{
	struct opts o = {.ttl = 10,
	                 .margin = 5,
	                 .renewals = 6,
	                 .latency_ms = 200,
	                 .timeout = 5,
	                 .pets = 3,
	                 .device = "/dev/watchdog"};

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "exit") == 0)
		return guest_exit((int)strtol(argv[2], NULL, 0));
	if (argc < 2 || parse_opts(&o, argc, argv) != 0) {
		fprintf(stderr, "usage: wdvm lease|magic [key=value...] | wdvm exit CODE\n");
		return 2;
	}
	if (strcmp(argv[1], "lease") == 0)
		return scenario_lease(&o);
	if (strcmp(argv[1], "magic") == 0)
		return scenario_magic(&o);
	fprintf(stderr, "wdvm: unknown scenario %s\n", argv[1]);
	return 2;
}
