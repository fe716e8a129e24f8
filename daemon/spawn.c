/*
 * spawn.c - starting a child program and waiting for it with a deadline; see spawn.h.
 *
 * pgw_child_exec runs between fork and execve in a multi-threaded process: it may use
 * async-signal-safe calls only (no malloc, no stdio, no locks, no logging).
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 4096
#define POLL_MS    20 /* how long one wait for output may last before waitpid again */
#define IDLE_MS    10 /* the longest sleep between waitpids once the output is closed */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pgw_child_exec(char *const argv[], char *const env[], int in, int out, int fd3)
{
	static const int sigs[] = {SIGPIPE, SIGINT,  SIGQUIT, SIGTERM, SIGHUP,
	                           SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM};
	static const char msg[] = "pgwarden: cannot execute ";
	int keep = fd3 >= 0 ? 3 : 2; /* the highest descriptor the program gets */
	struct sigaction sa;
	sigset_t none;

	setpgid(0, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* move everything above the target numbers first, so no dup2 overwrites a source */
	in = fcntl(in, F_DUPFD_CLOEXEC, 10);
	out = fcntl(out, F_DUPFD_CLOEXEC, 10);
	if (fd3 >= 0)
		fd3 = fcntl(fd3, F_DUPFD_CLOEXEC, 10);
	if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	if (keep == 3 && (fd3 < 0 || dup2(fd3, 3) < 0))
		_exit(127);
	/* no daemon descriptor (watchdog, sockets, etcd, the audit log) leaks into a child */
	if (close_range((unsigned)keep + 1, ~0U, 0) < 0)
		for (int fd = keep + 1; fd < 65536; fd++)
			close(fd);
	execve(argv[0], argv, env);
	if (write(2, msg, sizeof(msg) - 1) < 0 || write(2, argv[0], strlen(argv[0])) < 0 ||
	    write(2, "\n", 1) < 0)
		_exit(127);
	_exit(127);
}

pid_t pgw_spawn(char *const argv[], char *const env[], int in, int out, int fd3)
{
	pid_t pid = fork();

	if (pid == 0)
		pgw_child_exec(argv, env, in, out, fd3);
	if (pid > 0)
		setpgid(pid, pid); /* also here: no window where a kill of the group misses it */
	return pid;
}

void pgw_keep_tail(char *buf, size_t size, size_t *len, const char *p, size_t n)
{
	const size_t cap = size - 1;

	if (n >= cap) {
		memcpy(buf, p + n - cap, cap);
		*len = cap;
	} else {
		if (*len + n > cap) {
			size_t drop = *len + n - cap;

			memmove(buf, buf + drop, *len - drop);
			*len -= drop;
		}
		memcpy(buf + *len, p, n);
		*len += n;
	}
	buf[*len] = '\0';
}

/* Append to the output, keeping its last out_size - 1 bytes. */
static void keep_output(struct pgw_child_wait *w, const char *p, size_t n)
{
	pgw_keep_tail(w->out, w->out_size, &w->out_len, p, n);
}

/* Wait up to wait_ms for output and read what is there; *fd = -1 after EOF or an error. */
static void read_available(int *fd, struct pgw_child_wait *w, int wait_ms)
{
	struct pollfd pfd = {.fd = *fd, .events = POLLIN};
	char chunk[READ_CHUNK];
	ssize_t n;

	if (poll(&pfd, 1, wait_ms) <= 0)
		return;
	n = read(*fd, chunk, sizeof(chunk));
	if (n > 0) {
		keep_output(w, chunk, (size_t)n);
	} else if (n == 0 || errno != EINTR) {
		close(*fd); /* EOF: the child is about to exit */
		*fd = -1;
	}
}

/* After the child exited: read what is left without waiting for grandchildren. */
static void drain(int fd, struct pgw_child_wait *w)
{
	char chunk[READ_CHUNK];
	ssize_t n;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			keep_output(w, chunk, (size_t)n);
	close(fd);
}

void pgw_child_wait(pid_t pid, int fd, struct pgw_child_wait *w)
{
	int64_t next_tick = now_ms() + 1000, idle_ms = 1;

	w->out_len = 0;
	w->out[0] = '\0';
	w->status = 0;
	w->exited = w->timed_out = false;
	for (;;) {
		pid_t r = waitpid(pid, &w->status, WNOHANG);
		int64_t rem;

		if (r == pid || (r < 0 && errno != EINTR)) {
			w->exited = r == pid;
			break;
		}
		if (w->tick && now_ms() >= next_tick) {
			w->tick(w->tick_arg);
			next_tick = now_ms() + 1000; /* a tick may take long itself */
		}
		rem = w->deadline - now_ms();
		if (rem <= 0) {
			w->timed_out = true;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL); /* in case it is not (yet) in its group */
			while (waitpid(pid, &w->status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		if (fd >= 0) {
			read_available(&fd, w, rem < POLL_MS ? (int)rem : POLL_MS);
		} else {
			/* output closed: it is about to exit, so look often at first; a poll
			 * without descriptors is a sleep (EINTR: look again) */
			poll(NULL, 0, (int)(rem < idle_ms ? rem : idle_ms));
			idle_ms = idle_ms * 2 < IDLE_MS ? idle_ms * 2 : IDLE_MS;
		}
	}
	if (fd >= 0)
		drain(fd, w);
}
