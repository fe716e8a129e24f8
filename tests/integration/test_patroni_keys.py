"""Patroni keys of issue 15 against a running daemon: restapi.allowlist and
allowlist_include_members (unsafe requests from other addresses get 403, health checks
stay open), restapi.http_extra_headers on every answer, and log.dir with rotation at
log.file_size keeping log.file_num files, filtered by log.level.  The REST API listens on
127.0.0.1; requests come from 127.0.0.1, .2 or .3 (all loopback)."""

import glob
import http.client
import os
import re
import time

import harness


def request(node, method, path, source="127.0.0.1", body=None):
    """(status, headers dict, body text) of one request sent from the address source."""
    conn = http.client.HTTPConnection("127.0.0.1", node.rest_port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json"} if body else {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


def started(c, node_config):
    """Start the single-node cluster c after merging node_config into its node."""
    node = c.nodes[0]
    node.config = harness.deep_merge(node.config, node_config)
    node.write_config()
    c.start()
    c.wait_leader(timeout=90)
    return node


def test_allowlist_and_extra_headers(make_cluster):
    c = make_cluster(n=1, start=False, label="allow")
    node = started(c, {"restapi": {
        "allowlist": ["127.0.0.2", "192.0.2.0/24"],
        "http_extra_headers": {"X-Frame-Options": "SAMEORIGIN", "X-Pgwt": "yes"},
        "https_extra_headers": {"Strict-Transport-Security": "max-age=1"}}})

    # health checks and other reads stay open from anywhere, with the extra headers
    harness.wait_until(lambda: request(node, "GET", "/health", source="127.0.0.3")[0] == 200,
                       30, "GET /health from 127.0.0.3")
    st, hdrs, _ = request(node, "GET", "/health", source="127.0.0.3")
    assert hdrs.get("X-Frame-Options") == "SAMEORIGIN" and hdrs.get("X-Pgwt") == "yes", hdrs
    assert "Strict-Transport-Security" not in hdrs, "https header over plain HTTP: %r" % hdrs
    assert request(node, "GET", "/primary", source="127.0.0.1")[0] == 200

    # an unsafe request from an address not listed: 403 with a reason, and logged
    st, hdrs, body = request(node, "POST", "/reload", source="127.0.0.1", body="{}")
    assert st == 403, (st, body)
    assert "restapi.allowlist" in body, body
    assert hdrs.get("X-Pgwt") == "yes", hdrs
    assert request(node, "PATCH", "/config", source="127.0.0.3", body="{}")[0] == 403
    assert request(node, "DELETE", "/switchover", source="127.0.0.3")[0] == 403
    harness.wait_until(lambda: "POST /reload from 127.0.0.1 refused" in node.log_text(), 10,
                       "the refusal in the log")

    # from the listed address it goes through to the handler
    st, _, body = request(node, "POST", "/reload", source="127.0.0.2", body="{}")
    assert st != 403 and st < 500, (st, body)


def test_allowlist_include_members(make_cluster):
    """The node's own member key names 127.0.0.1 (its api_url): with
    allowlist_include_members, that address may write, 127.0.0.3 may not."""
    c = make_cluster(n=1, start=False, label="allowm")
    node = started(c, {"restapi": {"allowlist": ["127.0.0.2"],
                                   "allowlist_include_members": True}})
    harness.wait_until(
        lambda: request(node, "POST", "/reload", source="127.0.0.1", body="{}")[0] != 403, 20,
        "a member's address to be allowed")
    assert request(node, "POST", "/reload", source="127.0.0.2", body="{}")[0] != 403
    assert request(node, "POST", "/reload", source="127.0.0.3", body="{}")[0] == 403
    assert request(node, "GET", "/health", source="127.0.0.3")[0] == 200


def _files(logdir):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(logdir, "pgwarden.log*")))


def test_log_file_rotation_and_level(make_cluster):
    c = make_cluster(n=1, start=False, label="logf")
    node = c.nodes[0]
    logdir, logdir2 = os.path.join(node.dir, "logs"), os.path.join(node.dir, "logs2")
    for d in (logdir, logdir2):
        os.makedirs(d)
        harness.chown_postgres(d)
    # DEBUG: a line or two every loop_wait, enough to rotate a 3000-byte file quickly
    node = started(c, {"log": {"dir": logdir, "file_size": 3000, "file_num": 2,
                               "level": "DEBUG",
                               "format": "%(asctime)s %(levelname)s: %(message)s"}})
    harness.wait_until(lambda: "pgwarden.log.2" in _files(logdir), 120,
                       "two rotations of the log file", diag=lambda: repr(_files(logdir)))
    time.sleep(6)  # more rotations: still no third old file
    assert _files(logdir) == ["pgwarden.log", "pgwarden.log.1", "pgwarden.log.2"], _files(logdir)
    for name in _files(logdir):
        size = os.path.getsize(os.path.join(logdir, name))
        assert size <= 3000, "%s has %d bytes (file_size 3000)" % (name, size)
    text = "".join(open(os.path.join(logdir, n)).read() for n in _files(logdir))
    line = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
                      r"(DEBUG|INFO|WARNING|ERROR|CRITICAL): ")
    bad = [l for l in text.splitlines() if not line.match(l)]
    assert not bad, "lines not in log.format:\n" + "\n".join(bad[:5])
    assert " DEBUG: " in text, "log.level DEBUG: no DEBUG lines"
    assert "decision [" not in node.log_text(current_start_only=True), \
        "with log.dir the daemon's lines still went to stderr"

    # log.level WARNING: the warning at start is there, INFO and DEBUG lines are not
    assert node.stop_daemon(timeout=60) == 0
    node.config["log"].update({"level": "WARNING", "dir": logdir2})
    node.write_config()
    node.start(restart_daemon=True)
    path2 = os.path.join(logdir2, "pgwarden.log")
    harness.wait_until(lambda: os.path.exists(path2) and
                       "failover.unprotected is on" in open(path2).read(), 60,
                       "the start's WARNING in the new file")
    time.sleep(6)  # a few loops: their INFO and DEBUG lines stay out
    text = open(path2).read()
    assert " INFO: " not in text and " DEBUG: " not in text, text
