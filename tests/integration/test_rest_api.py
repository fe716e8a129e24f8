"""The REST API's write requests against a real cluster: basic auth, switchover,
refusals that write nothing, scheduled switchover and its cancellation, and the
dynamic configuration (PATCH /config validated before it is written)."""

import base64
import copy
import json
import os
import signal
import time
import urllib.error
import urllib.request

import harness

USER, PASSWORD = "admin", "pgwt-api-secret"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(node, method, path, body=None, auth=(USER, PASSWORD), timeout=45, raw=None,
         headers=None):
    """(status, text) of one request to node's REST API.  raw: the body bytes as they
    are, sent with the headers given (no Content-Type unless given)."""
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (node.rest_port, path), data=data,
                                 method=method)
    if data is not None and raw is None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if auth:
        token = base64.b64encode(("%s:%s" % auth).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_write_requests(make_cluster):
    c = make_cluster(3, overrides={"restapi": {"authentication": {"username": USER,
                                                                  "password": PASSWORD}}})
    leader = c.leader()
    replica = c.replicas()[0]

    # no credentials or wrong ones: 401 and nothing happens
    assert call(leader, "POST", "/switchover", {"leader": leader.name}, auth=None)[0] == 401
    assert call(leader, "POST", "/switchover", {"leader": leader.name},
                auth=(USER, "wrong"))[0] == 401
    assert c.key("failover") is None
    # GETs stay open (HAProxy checks carry no credentials)
    assert leader.rest("/primary")[0] == 200

    # refusals write nothing
    st, text = call(leader, "POST", "/switchover", {"leader": leader.name, "candidate": "nobody"})
    assert st == 412 and "nobody" in text, text
    st, text = call(leader, "POST", "/switchover", {"leader": replica.name})
    assert st == 412, text
    assert call(leader, "POST", "/switchover", None)[0] == 400
    st, _ = call(leader, "POST", "/switchover", {"leader": leader.name,
                                                 "scheduled_at": "tomorrow"})
    assert st == 400
    assert c.key("failover") is None

    # scheduled, then cancelled
    at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3600))
    st, text = call(leader, "POST", "/switchover", {"leader": leader.name,
                                                    "candidate": replica.name,
                                                    "scheduled_at": at})
    assert st == 202, text
    assert json.loads(c.key("failover"))["member"] == replica.name
    assert call(leader, "DELETE", "/switchover")[0] == 200
    assert c.key("failover") is None
    assert call(leader, "DELETE", "/switchover")[0] == 404
    assert c.leader_name() == leader.name

    # a switchover now: answered once the candidate holds the key
    t0 = time.monotonic()
    st, text = call(leader, "POST", "/switchover", {"leader": leader.name,
                                                    "candidate": replica.name})
    assert st == 200 and replica.name in text, text
    harness.figure("POST /switchover -> answered with the new leader", time.monotonic() - t0)
    assert c.leader_name() == replica.name
    harness.wait_until(replica.accepts_writes, 30, "the new leader accepting writes")
    harness.wait_until(lambda: leader.rest("/replica")[0] == 200, 90,
                       "the old leader running as a replica", diag=c.dump)

    # dynamic configuration: validated before it is written
    before = c.key("config")
    st, text = call(replica, "PATCH", "/config", {"ttl": 5})
    assert st == 400 and "ttl" in text, text
    assert c.key("config") == before
    st, text = call(replica, "PATCH", "/config", {"postgresql": {"parameters":
                                                                {"work_mem": "8MB"}}})
    assert st == 200, text
    cfg = json.loads(c.key("config"))
    assert cfg["postgresql"]["parameters"]["work_mem"] == "8MB"
    assert cfg["ttl"] == json.loads(before)["ttl"]  # a merge keeps the rest
    # ... and every node applies it at its next loop, with a reload
    for n in c.nodes:
        harness.wait_until(lambda n=n: n.sql("SHOW work_mem")[0][0] == "8MB", 20,
                           "work_mem 8MB on %s" % n.name, diag=c.dump)
    st, text = call(replica, "PATCH", "/config", {"postgresql": {"parameters":
                                                                {"work_mem": None}}})
    assert st == 200 and "work_mem" not in json.loads(c.key("config"))["postgresql"]["parameters"]
    for n in c.nodes:
        harness.wait_until(lambda n=n: n.sql("SHOW work_mem")[0][0] == "4MB", 20,
                           "work_mem back to 4MB on %s" % n.name, diag=c.dump)

    # a config key that breaks the rules, written behind the API's back, changes nothing
    c.etcd.put(c.prefix + "config", json.dumps({"ttl": 5, "loop_wait": 2, "retry_timeout": 3}))
    harness.wait_until(lambda: "ignoring the dynamic configuration" in replica.log_text(), 15,
                       "the daemon refusing the bad config key")
    assert c.leader_name() == replica.name and replica.accepts_writes()

    # restart: a parameter that needs one sets pending_restart; restart_pending restarts
    # exactly the nodes that need it, and clears the flag
    c.etcd.put(c.prefix + "config", before)
    old = leader  # a replica now
    st, text = call(old, "POST", "/restart", {"restart_pending": True})
    assert st == 503 and "conditions" in text, text
    st, text = call(old, "POST", "/restart", {"role": "primary"})
    assert st == 503 and "conditions" in text, text
    st, text = call(replica, "PATCH", "/config", {"postgresql": {"parameters":
                                                                {"max_locks_per_transaction": 128}}})
    assert st == 200, text
    harness.wait_until(lambda: old.rest("/patroni")[1].get("pending_restart"), 30,
                       "pending_restart on %s" % old.name, diag=c.dump)
    start_before = old.sql("SELECT pg_postmaster_start_time()")[0][0]
    st, text = call(old, "POST", "/restart", {"restart_pending": True, "role": "replica"})
    assert st == 200 and "restarted" in text, text
    assert old.sql("SELECT pg_postmaster_start_time()")[0][0] > start_before
    assert old.sql("SHOW max_locks_per_transaction")[0][0] == "128"
    harness.wait_until(lambda: not old.rest("/patroni")[1].get("pending_restart"), 20,
                       "pending_restart cleared")
    # the leader restarts in place and keeps the key
    st, text = call(replica, "POST", "/restart", {})
    assert st == 200, text
    assert c.leader_name() == replica.name
    harness.wait_until(replica.accepts_writes, 30, "the leader accepting writes again")

    # reinitialize: refused on the leader, done on a replica
    st, text = call(replica, "POST", "/reinitialize", {})
    assert st == 503 and "leader" in text, text
    st, text = call(old, "POST", "/reinitialize", {})
    assert st == 200 and "reinitialized" in text, text
    replica.sql("CREATE TABLE IF NOT EXISTS after_reinit (i int)")
    harness.wait_until(lambda: old.sql("SELECT to_regclass('after_reinit') IS NOT NULL")[0][0],
                       30, "the re-cloned replica streaming")

    # reload: a file with an error is refused, the running settings stay
    good = old.config_text()
    old.write_config(good + "broken: [\n")
    st, text = call(old, "POST", "/reload", {})
    assert st == 400 and "reload refused" in text, text
    # a key only a restart can change is refused too
    renamed = copy.deepcopy(old.config)
    renamed["name"] = "renamed"
    old.write_config(harness.to_yaml(renamed) + "\n")
    st, text = call(old, "POST", "/reload", {})
    assert st == 409 and "name" in text, text
    # tags and local parameters take effect at once
    old.config["tags"] = {"failover_priority": 7}
    old.config.setdefault("postgresql", {}).setdefault("parameters", {})["work_mem"] = "12MB"
    old.write_config()
    st, text = call(old, "POST", "/reload", {})
    assert st == 200 and "reloaded" in text, text
    harness.wait_until(lambda: json.loads(c.key("members/" + old.name)).get("tags", {})
                       .get("failover_priority") == 7, 20, "the new tag in the member key")
    assert old.sql("SHOW work_mem")[0][0] == "12MB"
    # SIGHUP does the same
    old.config["postgresql"]["parameters"]["work_mem"] = "13MB"
    old.write_config()
    os.kill(old.daemon_pid, signal.SIGHUP)
    harness.wait_until(lambda: old.sql("SHOW work_mem")[0][0] == "13MB", 20,
                       "work_mem 13MB after SIGHUP", diag=c.dump)

    assert call(replica, "POST", "/nowhere", {})[0] == 404


def test_queued_requests_wake_the_loop_and_scheduled_restart(make_cluster):
    """With a long loop_wait (20 s) a queued request is still served at once (the loop's
    sleep ends when one is queued), and POST /restart with "schedule" restarts PostgreSQL
    once the time has come (visible in /patroni and the member key until then; one at a
    time; DELETE /restart cancels it)."""
    from datetime import datetime, timedelta, timezone
    c = make_cluster(1, overrides={"bootstrap": {"dcs": {"ttl": 60, "loop_wait": 20,
                                                         "retry_timeout": 10}}})
    node = c.wait_healthy()

    # without the wake-up each of these waits for the rest of a 20 s sleep
    took = []
    for _ in range(3):
        t0 = time.monotonic()
        st, text = call(node, "POST", "/reload", {}, auth=None)
        took.append(time.monotonic() - t0)
        assert st == 200, text
    harness.figure("POST /reload with loop_wait 20 s, slowest of 3", max(took))
    assert max(took) < 6, took

    def iso(dt):
        return dt.isoformat(timespec="seconds")

    now = datetime.now(timezone.utc)
    assert call(node, "POST", "/restart", {"schedule": "soon"}, auth=None)[0] == 400
    assert call(node, "POST", "/restart", {"schedule": iso(now - timedelta(hours=1))},
                auth=None)[0] == 400
    assert call(node, "DELETE", "/restart", None, auth=None)[0] == 404
    later = iso(now + timedelta(hours=1))
    st, text = call(node, "POST", "/restart", {"schedule": later}, auth=None)
    assert st == 202 and later in text, text
    st, text = call(node, "POST", "/restart", {"schedule": later}, auth=None)
    assert st == 409 and "already scheduled" in text, text
    harness.wait_until(lambda: (node.rest("/patroni")[1] or {}).get("scheduled_restart", {})
                       .get("schedule") == later, 10, "scheduled_restart in /patroni")
    harness.wait_until(lambda: json.loads(c.key("members/" + node.name))
                       .get("scheduled_restart", {}).get("schedule") == later, 30,
                       "scheduled_restart in the member key")
    st, text = call(node, "DELETE", "/restart", None, auth=None)
    assert st == 200, text
    harness.wait_until(lambda: "scheduled_restart" not in (node.rest("/patroni")[1] or {}),
                       10, "the cancelled restart gone from /patroni")

    start_before = node.sql("SELECT pg_postmaster_start_time()")[0][0]
    soon = iso(datetime.now(timezone.utc) + timedelta(seconds=3))
    st, text = call(node, "POST", "/restart", {"schedule": soon}, auth=None)
    assert st == 202, text
    harness.wait_until(
        lambda: node.accepts_writes() and
        node.sql("SELECT pg_postmaster_start_time()")[0][0] > start_before,
        60, "the scheduled restart", diag=c.dump)
    assert c.leader_name() == node.name
    # the loop publishes its snapshot at the end of the cycle that restarted PostgreSQL
    harness.wait_until(lambda: "scheduled_restart" not in (node.rest("/patroni")[1] or {}),
                       10, "the done restart gone from /patroni")

    # pgwardenctl restart --scheduled goes the same way
    from test_ctl import ctl
    later = iso(datetime.now(timezone.utc) + timedelta(hours=2))
    rc, out, err = ctl(c, "restart", c.scope, "--scheduled", later, "--force")
    assert rc == 0 and "scheduled on member node1" in out, out + err
    assert call(node, "DELETE", "/restart", None, auth=None)[0] == 200


def untyped(node, method, path, body):
    """(status, text): body sent with no Content-Type at all, as patronictl does."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", node.rest_port, timeout=30)
    token = base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
    conn.putrequest(method, path)
    conn.putheader("Authorization", "Basic " + token)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    out = r.status, r.read().decode()
    conn.close()
    return out


def test_hostile_writes_change_nothing(make_cluster):
    """Issue 11, items 2 to 4: a web page's cross-site POST, a body that is not JSON or
    has something after the JSON, and a PATCH /config the nodes could not apply (a line
    break in a value, a command-running parameter) are refused before anything is
    written; patronictl's way (a JSON body without Content-Type) still works."""
    c = make_cluster(1, overrides={"restapi": {"authentication": {"username": USER,
                                                                  "password": PASSWORD}}})
    node = c.leader()
    before = c.key("config")
    patch = json.dumps({"postgresql": {"parameters": {"work_mem": "7MB"}}}).encode()

    # a browser on another site: Origin, or Sec-Fetch-Site, names it
    for hdrs in ({"Origin": "http://evil.example", "Content-Type": "text/plain"},
                 {"Origin": "null"},
                 {"Sec-Fetch-Site": "cross-site"},
                 {"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}):
        st, text = call(node, "PATCH", "/config", raw=patch, headers=hdrs)
        assert st == 403 and "cross-site" in text, (hdrs, st, text)
    # same origin (Origin = Host) is not cross-site
    st, text = call(node, "PATCH", "/config", raw=patch,
                    headers={"Origin": "http://127.0.0.1:%d" % node.rest_port,
                             "Content-Type": "application/json"})
    assert st == 200, text
    # a form or text body: 415; no Content-Type (patronictl): taken
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        st, text = call(node, "PATCH", "/config", raw=patch, headers={"Content-Type": ctype})
        assert st == 415 and "application/json" in text, (ctype, st, text)
    st, text = untyped(node, "PATCH", "/config", patch)
    assert st == 200, text
    good = c.key("config")
    # trailing garbage, a second object, a NUL byte: 400
    for raw in (patch + b"garbage", patch + b" {}", patch[:-1] + b"\x00}"):
        st, text = call(node, "PATCH", "/config", raw=raw,
                        headers={"Content-Type": "application/json"})
        assert st == 400, (raw, st, text)
    # what no node could apply: refused, the key untouched
    st, text = call(node, "PATCH", "/config",
                    {"postgresql": {"parameters": {"work_mem": "1MB\nfsync = off"}}})
    assert st == 400 and "line break" in text, text
    st, text = call(node, "PATCH", "/config",
                    {"postgresql": {"parameters": {"archive_command": "touch /tmp/pwned"}}})
    assert st == 400 and "archive_command" in text and "never from etcd" in text, text
    st, text = call(node, "PATCH", "/config", {"postgresql": {"use_slots": "yes"}})
    assert st == 400 and "use_slots" in text, text
    assert c.key("config") == good and good != before
    harness.wait_until(lambda: node.sql("SHOW work_mem")[0][0] == "7MB", 20,
                       "the accepted PATCH applied", diag=c.dump)

    # written behind the API's back: the node keeps what it had, and says why
    c.etcd.put(c.prefix + "config", json.dumps(
        {"postgresql": {"parameters": {"archive_command": "touch /tmp/pwned",
                                       "work_mem": "9MB"}}}))
    harness.wait_until(lambda: "archive_command" in node.log_text() and
                       "ignoring the dynamic configuration" in node.log_text(), 15,
                       "the daemon refusing the config key")
    assert node.sql("SHOW work_mem")[0][0] == "7MB"
    assert node.sql("SHOW archive_command")[0][0] in ("", "(disabled)")


def test_headers_that_take_too_long_are_cut(make_cluster):
    """Issue 11, item 1: a connection that sends its request a byte a second never
    looks idle, so MHD's idle timeout never closes it; a flood of them from many
    addresses would fill the connection limit.  Headers must all arrive within 10 s of
    the connect; the server then shuts the connection down."""
    import socket
    c = make_cluster(1)
    node = c.leader()
    s = socket.socket()
    s.bind(("127.0.0.3", 0))
    s.connect(("127.0.0.1", node.rest_port))
    s.settimeout(1)
    t0 = time.monotonic()
    req = b"GET /primary HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60
    closed = None
    try:
        for i in range(len(req)):
            if time.monotonic() - t0 > 30:
                break
            try:
                s.send(req[i:i + 1])
                if s.recv(1) == b"":
                    closed = time.monotonic() - t0
                    break
            except socket.timeout:
                continue  # nothing to read yet: it is still open
            except OSError:
                closed = time.monotonic() - t0
                break
    finally:
        s.close()
    harness.figure("slow headers: connection cut after (s)", closed or -1)
    # 10 s, found by the next connection or the next HA loop (loop_wait 2 here)
    assert closed is not None and 9 <= closed <= 16, closed
    st, _ = harness.http_get("http://127.0.0.1:%d/primary" % node.rest_port)
    assert st == 200


def test_slow_clients_do_not_take_the_health_checks_down(make_cluster):
    """Issue 11, item 1 (slowloris): 300 connections from one address that send their
    request one byte a second filled the whole connection limit (128), and /primary,
    /replica and /health stopped answering: HAProxy marked every node down.  One client
    address now gets 16 connections at most; the checks from another keep answering."""
    import socket
    import threading
    c = make_cluster(1)
    node = c.leader()
    socks, stop = [], threading.Event()
    for _ in range(300):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", node.rest_port))
            socks.append(s)
        except OSError:
            s.close()

    def dribble():
        req = b"GET /primary HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60
        for i in range(len(req)):
            if stop.wait(1):
                return
            for s in list(socks):
                try:
                    s.send(req[i:i + 1])
                except OSError:
                    socks.remove(s)
    t = threading.Thread(target=dribble, daemon=True)
    t.start()
    try:
        time.sleep(3)  # the flood is in place
        worst = 0.0
        for _ in range(20):
            t0 = time.monotonic()
            st, _ = harness.http_get("http://127.0.0.1:%d/primary" % node.rest_port, timeout=2)
            worst = max(worst, time.monotonic() - t0)
            assert st == 200, "GET /primary did not answer during the flood (%r)" % st
            time.sleep(0.2)
        held = len(socks)
        harness.figure("slow connections still held of 300 (one address)", held)
        harness.figure("slowest /primary under the flood (s)", worst)
        assert held <= 16 + 2, "%d slow connections from one address were kept" % held
    finally:
        stop.set()
        t.join(5)
        for s in socks:
            s.close()
