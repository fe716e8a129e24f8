/*
 * probe.c - quick liveness probes of a peer (see probe.h).  Each probe has its own
 * deadline and never blocks longer; the HA loop calls them while it waits.
 */
#include "probe.h"

#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

bool pgw_probe_rest(const char *api_url, int timeout_ms)
{
	CURL *curl;
	char url[512];
	const char *end = strstr(api_url, "://");
	bool ok;

	/* an api_url from etcd that is not http(s) (file://, ftp://...) is not followed */
	if (!end || (strncmp(api_url, "http://", 7) != 0 && strncmp(api_url, "https://", 8) != 0))
		return true;
	curl = curl_easy_init();
	if (!curl)
		return true;
	end = strchr(end + 3, '/');
	snprintf(url, sizeof(url), "%.*s/liveness",
	         (int)(end ? (size_t)(end - api_url) : strlen(api_url)), api_url);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L); /* liveness only, no data */
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	ok = curl_easy_perform(curl) == CURLE_OK;
	curl_easy_cleanup(curl);
	return ok;
}

/* Wait for events on fd until deadline (mono ms); true when they came. */
static bool wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		int64_t left = deadline - mono_ms();
		int rc;

		if (left <= 0)
			return false;
		rc = poll(&p, 1, (int)left);
		if (rc > 0)
			return true;
		if (rc < 0 && errno != EINTR)
			return false;
	}
}

/* Connect to one address and ask for SSL; true on any answer byte. */
static bool ask_ssl(const struct addrinfo *ai, int64_t deadline)
{
	/* SSLRequest: length 8, code 80877103 */
	static const unsigned char req[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	bool ok = false;
	int err = 0;
	socklen_t elen = sizeof(err);
	char answer;

	if (fd < 0)
		return false;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
		goto out;
	if (!wait_fd(fd, POLLOUT, deadline) ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0)
		goto out;
	if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		goto out;
	if (!wait_fd(fd, POLLIN, deadline))
		goto out;
	ok = recv(fd, &answer, 1, 0) == 1;
out:
	close(fd);
	return ok;
}

bool pgw_probe_pg(const char *host, int port, int timeout_ms)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	int64_t deadline = mono_ms() + timeout_ms;
	char portstr[16];
	bool ok = false;

	if (!host || !host[0] || host[0] == '/')
		return true; /* a UNIX socket path or nothing: cannot probe, cannot tell */
	snprintf(portstr, sizeof(portstr), "%d", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return false;
	for (const struct addrinfo *ai = res; ai && !ok && mono_ms() < deadline; ai = ai->ai_next)
		ok = ask_ssl(ai, deadline);
	freeaddrinfo(res);
	return ok;
}
