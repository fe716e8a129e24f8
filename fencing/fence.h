/*
 * fence.h - power fencing of one server through its BMC, ARCHITECTURE.md rule S3 and
 * timing rule 6: chassis power off, then chassis status until the BMC says off, all
 * within one bound; only a BMC that *confirmed* off counts as fenced.
 *
 * Three ways to reach the BMC, one interface:
 *   PGW_FENCE_IPMI, agent_path NULL   native IPMI through libfreeipmi (IPMI 2.0/RMCP+
 *                                     when lanplus, else IPMI 1.5 with MD5); when pgwarden
 *                                     was built without libfreeipmi, ipmitool from PATH;
 *   PGW_FENCE_IPMI, agent_path set    ipmitool at that path (the fallback client; the
 *                                     password reaches it through a pipe, -f /dev/fd/3);
 *   PGW_FENCE_EXTERNAL                a fence agent speaking the fence-agents stdin
 *                                     protocol (Debian fence-agents: fence_ipmilan,
 *                                     fence_redfish, fence_ilo, PDUs ...), see below.
 * The password never appears in an argv, an environment variable or a detail string.
 *
 * External agents: agent_path is executed without arguments, in its own process group,
 * with these lines on stdin (the keys fence-agents document):
 *     action=off|on|status   ip=HOST   ipport=PORT   username=USER   password=PASS
 *     lanplus=1 (when lanplus)   cipher=N (when cipher_suite >= 0)
 *     privlvl=administrator|operator|user   power_wait=0
 * power_wait=0 because pgwarden confirms with its own status polls (fence_ipmilan would
 * otherwise sleep 2 s after every off/on).  Exit codes: off/on 0 = done; status 0 = on,
 * 2 = off, anything else = unknown.  The agent's process group is killed (SIGKILL) when
 * the bound passes.  PYTHONWARNINGS=ignore and LC_ALL=C are set for it.
 *
 * Bounds: one fence (command + confirmation) takes at most timeout_ms; it is tried
 * 1 + retries times, so a failing fence returns after at most (1 + retries) * timeout_ms
 * plus a few ms.  Errors that cannot go away by retrying (wrong user or password,
 * privilege or cipher suite refused) are not retried.  Status is polled every
 * PGW_FENCE_POLL_MS.  A power-off whose reply timed out proves nothing (a BMC may still
 * run it later): only a status read of "off" confirms.
 */
#ifndef PGW_FENCE_H
#define PGW_FENCE_H

#include <stdbool.h>
#include <stddef.h>

#define PGW_FENCE_DEFAULT_PORT   623
#define PGW_FENCE_DEFAULT_CIPHER 3 /* used when cipher_suite is -1 (native and ipmitool) */
#define PGW_FENCE_POLL_MS        100

enum pgw_fence_agent {
	PGW_FENCE_IPMI,    /* native libfreeipmi, or ipmitool at agent_path */
	PGW_FENCE_EXTERNAL /* a fence-agents style agent at agent_path */
};

struct pgw_fence_bmc {
	char host[256];
	int port;
	bool lanplus;       /* IPMI 2.0 / RMCP+; false = IPMI 1.5 */
	int cipher_suite;   /* -1 = PGW_FENCE_DEFAULT_CIPHER (the agent's own default for
	                       external agents) */
	char privilege[16]; /* "ADMINISTRATOR", "OPERATOR", "USER"; "" = ADMINISTRATOR */
};

struct pgw_fence_cred {
	char username[64];
	char password[128];
};

struct pgw_fence_opts {
	enum pgw_fence_agent agent;
	const char *agent_path; /* see above */
	int timeout_ms;         /* one fence: power off + confirmation; <= 0 = 10 s */
	int retries;            /* further attempts after a failed one */
};

enum pgw_power { PGW_POWER_UNKNOWN, PGW_POWER_ON, PGW_POWER_OFF };

/*
 * Chassis power off, then chassis status until it reads off.  0 only when the BMC
 * confirmed off (also when it was off already); -1 otherwise.  detail gets one line,
 * e.g. "127.0.0.1:9001: power off confirmed after 27 ms (native IPMI 2.0, cipher 3, 1
 * status read)" or "127.0.0.1:9001: power off failed: password invalid (native IPMI 2.0,
 * cipher 3)" - never the password.
 */
int pgw_fence_off(const struct pgw_fence_opts *o, const struct pgw_fence_bmc *b,
                  const struct pgw_fence_cred *c, char *detail, size_t len);

/* The same for power on: 0 only when the BMC confirmed on. */
int pgw_fence_on(const struct pgw_fence_opts *o, const struct pgw_fence_bmc *b,
                 const struct pgw_fence_cred *c, char *detail, size_t len);

/* One status read (bounded by timeout_ms, retried like a fence); UNKNOWN on failure. */
enum pgw_power pgw_fence_status(const struct pgw_fence_opts *o, const struct pgw_fence_bmc *b,
                                const struct pgw_fence_cred *c, char *detail, size_t len);

/*
 * Credentials to fence peers, from a local file:
 *
 *     # MEMBER   USERNAME  PASSWORD (the rest of the line; trailing blanks are dropped)
 *     default    admin     s3cret
 *     node2      ipmiop    other secret
 *
 * The line of `member`, else the "default" line.  The file must be a regular file owned by
 * the effective user with no permission bits for group or others (0600 or 0400);
 * otherwise, or when no line applies, -1 and err names the file (and its mode or owner).
 * 0 on success.  A user name longer than 63 bytes or a password longer than 127 is an
 * error, not truncated.
 */
int pgw_fence_load_creds(const char *path, const char *member, struct pgw_fence_cred *out,
                         char *err, size_t errlen);

/*
 * The first line of a secret file (e.g. a BMC password file), without its newline, with
 * the same ownership and mode checks as pgw_fence_load_creds().  0, or -1 with err.
 */
int pgw_fence_read_secret(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/*
 * The checks alone, for a start-up refusal: PATH (named `what` in err, e.g. the
 * config key) is a regular file owned by the effective user, no access for group or
 * others.  0, or -1 with err.
 */
int pgw_fence_check_secret(const char *path, const char *what, char *err, size_t errlen);

/* "host", "host:port", "[v6addr]" or "[v6addr]:port" (default port 623) into host and
 * port; the other fields are left as they are.  false on a malformed address. */
bool pgw_fence_parse_bmc(const char *addr, struct pgw_fence_bmc *b);

/* "on", "off", "unknown" */
const char *pgw_power_name(enum pgw_power p);

#endif
