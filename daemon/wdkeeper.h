/*
 * wdkeeper.h - the watchdog keeper: a child process that holds a second descriptor of
 * the watchdog device for as long as this node's PostgreSQL may accept writes.
 *
 * The kernel pings a watchdog once when its last descriptor is closed without the magic
 * close.  A daemon stopped (SIGSTOP, a debugger, a stuck page fault) for most of W and
 * then killed would, alone, ping the device at its death and carry the reset up to 2 W
 * after its last pet: past the lease deadline, while a replica promotes (simulator seeds
 * 6675, 26782, 33993, 51013, 61196).  With the keeper holding the same open file, the
 * daemon's death closes nothing: the countdown runs from the daemon's last pet.
 *
 * Once the daemon is gone the keeper lets go of the device (its close pings once; the
 * card keeps running if it was armed) only after PostgreSQL has not been a possible
 * writer (pgw_pg_unmanaged_writer) for a second: a restarted daemon stops a leftover
 * primary first, then opens the device again.  Clean shutdown: the daemon disables the
 * card, magic-closes its descriptor and tells the keeper to let go at once.
 */
#ifndef PGW_WDKEEPER_H
#define PGW_WDKEEPER_H

#include <stdbool.h>
#include <sys/types.h>

struct pgw_wdkeeper {
	pid_t pid;   /* 0: none runs */
	int pipe_wr; /* the daemon's end; its closing tells the keeper the daemon is gone */
};

/* Start a keeper for wd_fd.  0, or -1 with errno and err filled in. */
int pgw_wdkeeper_start(struct pgw_wdkeeper *k, int wd_fd, const char *data_dir, char *err,
                       size_t errlen);
/* Is the keeper still running?  A dead one is reaped and forgotten. */
bool pgw_wdkeeper_alive(struct pgw_wdkeeper *k);
/*
 * The daemon closes the device.  now: the card was disabled and magic-closed, the keeper
 * closes at once (waited for up to wait_ms); otherwise it keeps the device while
 * PostgreSQL may write, as after the daemon's death.
 */
void pgw_wdkeeper_stop(struct pgw_wdkeeper *k, bool now, int wait_ms);

#endif
