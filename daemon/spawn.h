/*
 * spawn.h - child programs of pgwarden (PostgreSQL's tools in pg.c, ipmitool and
 * fence agents in fencing/fence.c): started with fork and execve in a process group
 * of their own, with a clean signal state and only the descriptors they are given,
 * then waited for until a deadline while their output is collected; at the deadline
 * the whole group is SIGKILLed.
 *
 * The daemon is multi-threaded: between fork and execve only async-signal-safe calls
 * are allowed (no malloc, no stdio, no locks, no logging; another thread may have held
 * a lock at the fork), so argv and env are built before the fork and pgw_child_exec
 * must keep to such calls.
 */
#ifndef PGW_SPAWN_H
#define PGW_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * In the child after fork: a new process group, default signal dispositions, nothing
 * blocked; stdin from in, stdout and stderr to out, fd 3 from fd3 (-1: no fd 3); every
 * other descriptor closed; then execve(argv[0], argv, env).  Only async-signal-safe
 * calls.  Never returns: exit status 127 when the program cannot be started.
 */
__attribute__((noreturn)) void pgw_child_exec(char *const argv[], char *const env[], int in,
                                              int out, int fd3);

/*
 * fork, pgw_child_exec in the child; in the parent the child's process group is set
 * too (no window where a kill of the group misses it).  The pid, or -1 with errno.
 */
pid_t pgw_spawn(char *const argv[], char *const env[], int in, int out, int fd3);

/*
 * Append n bytes of output to buf (size bytes, *len used, NUL-terminated), keeping
 * only its last size - 1 bytes.
 */
void pgw_keep_tail(char *buf, size_t size, size_t *len, const char *p, size_t n);

/* Waiting for a child: what to do, and what it did. */
struct pgw_child_wait {
	int64_t deadline;     /* CLOCK_MONOTONIC ms: then the group is SIGKILLed */
	void (*tick)(void *); /* NULL, or called about once a second while waiting */
	void *tick_arg;       /* tick's argument */
	char *out;            /* the output's last out_size - 1 bytes, NUL-terminated */
	size_t out_size;      /* at least 1 */
	size_t out_len;
	int status;     /* waitpid's status; 0 when the child was not reaped */
	bool exited;    /* reaped before the deadline (status is its own) */
	bool timed_out; /* the deadline passed: killed with its group and reaped */
};

/*
 * Wait for pid, reading fd (its stdout and stderr; -1: none) into w->out, until the
 * child exits or w->deadline passes.  After the child exited, what is left in the pipe
 * is read without waiting for a grandchild that still holds it.  fd is closed here.
 * Descendants still in the group when the child exited are the caller's to kill.
 */
void pgw_child_wait(pid_t pid, int fd, struct pgw_child_wait *w);

#endif
