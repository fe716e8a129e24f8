/*
 * probe.h - is a peer alive?  Quick probes of its REST API and of its PostgreSQL
 * port, each bounded by a deadline (fast takeover, rule 8).
 */
#ifndef PGW_PROBE_H
#define PGW_PROBE_H

#include <stdbool.h>

/* Any HTTP answer from api_url's /liveness within timeout_ms.  A URL that is not
 * http(s) cannot be probed: true (cannot tell, so no takeover). */
bool pgw_probe_rest(const char *api_url, int timeout_ms);

/*
 * PostgreSQL's postmaster answers within timeout_ms: a TCP connection to host:port, an
 * SSLRequest, and any one-byte answer ('S' or 'N').  This needs the postmaster to accept
 * and fork a backend, so a frozen machine (whose kernel still accepts TCP) does not
 * answer.  Nothing is logged by the server for 'N'; with ssl on, one "could not accept
 * SSL connection" line per probe (probed only while REST is silent).
 */
bool pgw_probe_pg(const char *host, int port, int timeout_ms);

#endif
