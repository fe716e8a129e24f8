"""Routing and tooling compatibility: Debian's HAProxy and patronictl in front of pgwarden.

test_haproxy_routes_writes_to_the_primary_and_reads_to_replicas
    Debian's haproxy (2.6) runs as a child of the test with the seeds' Patroni-style config
    (`option httpchk GET /primary` on a write port, `GET /replica` on a read port) and the
    check timing and timeouts of the example pgwarden ships
    (packaging/examples/haproxy.cfg: its default-server lines and timeouts are read from
    that file, so this test proves the shipped settings).  A client that connects
    through the write port reaches the primary; after a switchover (failover key in etcd) and
    after a failover (the leader's machine is killed) a client that reconnects through the
    write port reaches the new primary within a bounded time (printed as figures); the 30
    fresh connections opened through the read port in the settled phases (before, after the
    switchover, after the failover) all land on replicas.  During each transition a watcher
    records HAProxy's server states and probes the read port every 0.25 s: how many reads
    reached a just-promoted primary (bounded by fall x inter of the checks) is a figure, not
    an assertion, as polling health checks cannot avoid that window.

test_patronictl_list_shows_pgwarden_cluster
    Debian's patronictl (Patroni 3.0.2) with a minimal config (scope, namespace, etcd3 hosts)
    lists a pgwarden cluster: the leader as "Leader", the replicas as "Replica", state
    "running", TL = the primary's timeline, a numeric lag; again after a switchover.

Both need the Debian packages haproxy and patroni (scripts/install-deps.sh test) and are
skipped without them.  Timing settings of the test clusters: ttl 10, loop_wait 2.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import harness
from harness import Cluster, figure, log, wait_until

HAPROXY_BIN = os.environ.get("HAPROXY_BIN", "/usr/sbin/haproxy")
PATRONICTL_BIN = os.environ.get("PATRONICTL_BIN", "/usr/bin/patronictl")

TTL = 10
CHECK_INTER = 1.0     # the shipped example's check interval of a healthy server (s)
SWITCHOVER_BOUND = 45  # s from the failover key to a write-port client on the new primary
FAILOVER_BOUND = TTL + 40  # s from the leader's power loss to the same
READ_PROBES_PER_PHASE = 10  # 3 phases -> N = 30 read-port connections


EXAMPLE_CFG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                           "packaging", "examples", "haproxy.cfg")


def shipped_example():
    """The shipped example's default-server line per backend and its timeouts."""
    out, backend = {"timeouts": []}, None
    with open(EXAMPLE_CFG) as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if line.startswith("backend "):
                backend = line.split()[1]
            elif line.startswith("timeout ") and line.split()[1] in ("connect", "check"):
                out["timeouts"].append(line)
            elif line.startswith("default-server ") and backend:
                out[backend] = line
    assert "pg_primary" in out and "pg_replica" in out and len(out["timeouts"]) == 2, out
    return out


def _need(path, pkg):
    if not os.access(path, os.X_OK):
        pytest.skip("%s is missing (Debian package %s: scripts/install-deps.sh test)"
                    % (path, pkg))


# ---------------------------------------------------------------------------------------
# HAProxy as a child process
# ---------------------------------------------------------------------------------------

class HAProxy:
    """haproxy -f CFG -db, a child of this process, killed by cleanup() (registered with the
    harness so a SIGTERM'd or crashing run removes it too)."""

    def __init__(self, cluster):
        self.dir = os.path.join(cluster.dir, "haproxy")
        os.makedirs(self.dir, exist_ok=True)
        self.cfg_path = os.path.join(self.dir, "haproxy.cfg")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        self.sock_path = os.path.join(self.dir, "admin.sock")
        self.write_port = harness.free_port()
        self.read_port = harness.free_port()
        self.nodes = list(cluster.nodes)
        self.check_extra = ""  # e.g. "check-ssl verify required ca-file CA" for HTTPS checks
        self.proc = None
        harness.register(self)

    def __repr__(self):
        return "HAProxy(write 127.0.0.1:%d, read 127.0.0.1:%d)" % (self.write_port,
                                                                   self.read_port)

    def config_text(self):
        example = shipped_example()

        def backend(name, check):
            lines = ["backend %s" % name,
                     "    option httpchk GET %s" % check,
                     "    http-check expect status 200",
                     "    " + example[name]]
            for n in self.nodes:
                lines.append("    server %s 127.0.0.1:%d check port %d%s"
                             % (n.name, n.pg_port, n.rest_port,
                                " " + self.check_extra if self.check_extra else ""))
            return lines

        lines = ["# written by tests/integration/test_routing.py",
                 "global",
                 "    maxconn 200",
                 "    stats socket %s mode 600 level admin" % self.sock_path,
                 "",
                 "defaults",
                 "    mode tcp",
                 "    retries 2",
                 "    timeout client 30m",
                 "    timeout server 30m"] + ["    " + t for t in example["timeouts"]] + [
                 "",
                 "frontend pg_write",
                 "    bind 127.0.0.1:%d" % self.write_port,
                 "    default_backend pg_primary",
                 "",
                 "frontend pg_read",
                 "    bind 127.0.0.1:%d" % self.read_port,
                 "    default_backend pg_replica",
                 ""]
        lines += backend("pg_primary", "/primary") + [""]
        lines += backend("pg_replica", "/replica") + [""]
        return "\n".join(lines)

    def start(self):
        with open(self.cfg_path, "w") as f:
            f.write(self.config_text())
        chk = subprocess.run([HAPROXY_BIN, "-c", "-f", self.cfg_path], capture_output=True,
                             text=True, timeout=30, env=harness.clean_env())
        assert chk.returncode == 0, "haproxy -c rejects %s:\n%s%s" % (
            self.cfg_path, chk.stdout, chk.stderr)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen([HAPROXY_BIN, "-f", self.cfg_path, "-db"],
                                         stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, cwd=self.dir,
                                         env=harness.clean_env(), start_new_session=True)
        wait_until(lambda: self.alive() and os.path.exists(self.sock_path), 15,
                   "haproxy to start", diag=lambda: harness.tail(self.log_path))
        log("%r started (pid %d, config %s)" % (self, self.proc.pid, self.cfg_path))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        harness.unregister(self)
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stat(self):
        """{(backend, server): status} from the admin socket's `show stat`."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect(self.sock_path)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        lines = data.decode().splitlines()
        cols = lines[0].lstrip("# ").split(",")
        ip, isv, ist = cols.index("pxname"), cols.index("svname"), cols.index("status")
        out = {}
        for line in lines[1:]:
            f = line.split(",")
            if len(f) > ist and f[isv] not in ("FRONTEND", "BACKEND"):
                out[(f[ip], f[isv])] = f[ist]
        return out

    def up(self, backend):
        """Servers of backend that take traffic: "UP", and also "UP 1/2" (up, one failed
        check: it stays in the rotation until `fall` checks failed)."""
        return sorted(sv for (px, sv), st in self.stat().items()
                      if px == backend and st.startswith("UP"))

    def wait_up(self, backend, names, timeout=30, cluster=None):
        want = sorted(names)
        what = "haproxy backend %s to have exactly %s UP" % (backend, want)
        diag = lambda: "haproxy: %r\nhaproxy log:\n%s%s" % (  # noqa: E731
            self.stat(), harness.tail(self.log_path, 20),
            "\n" + cluster.dump() if cluster else "")
        wait_until(lambda: self.up(backend) == want, timeout, what, interval=0.1, diag=diag)

    def dump(self):
        try:
            st = self.stat()
        except OSError as e:
            st = "admin socket: %s" % e
        return "haproxy servers: %r\nhaproxy log:\n%s" % (st, harness.tail(self.log_path, 30))


def pg_connect(port, timeout=2):
    import psycopg2
    conn = psycopg2.connect(host="127.0.0.1", port=port, user=harness.SUPERUSER,
                            password=harness.SUPERUSER_PASSWORD, dbname="postgres",
                            connect_timeout=timeout, application_name="pgwt-routing")
    conn.autocommit = True
    return conn


def where_am_i(port, timeout=2):
    """(pg_is_in_recovery(), inet_server_port()) over one fresh connection through port."""
    conn = pg_connect(port, timeout)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery(), inet_server_port()")
            return cur.fetchone()
    finally:
        conn.close()


def reconnect_to_primary(hap, wants, t0, bound, cluster):
    """Reconnect through the write port (every 0.1 s, from t0 on) until a session lands on a
    primary (not in recovery) among `wants`.  Returns (node, seconds since t0).  A session on
    a node in recovery (the write port routing to a replica) fails the test."""
    by_port = {n.pg_port: n for n in wants}
    names = "/".join(n.name for n in wants)
    attempts, errors, last = 0, [], None
    while True:
        attempts += 1
        t_try = time.monotonic() - t0
        try:
            rec, port = where_am_i(hap.write_port, timeout=1)
            last = (rec, port)
            assert not rec, ("the write port sent a session to a node in recovery (port %d)"
                             "\n%s" % (port, hap.dump()))
            if port in by_port:
                dt = time.monotonic() - t0
                shown = errors if len(errors) <= 6 else errors[:3] + ["..."] + errors[-3:]
                log("write port reaches %s after %.1f s (%d attempts; %d failed: %s)"
                    % (by_port[port].name, dt, attempts, len(errors), shown))
                return by_port[port], dt
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - no server up yet, or one going away
            last = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[-1:])
            errors.append("at %.2f s, %.2f s long: %s" % (t_try, time.monotonic() - t0 - t_try,
                                                          last))
        if time.monotonic() - t0 > bound:
            raise AssertionError("write port did not reach %s within %d s; last %r\n%s\n%s"
                                 % (names, bound, last, hap.dump(), cluster.dump()))
        time.sleep(0.1)


def probe_reads(hap, leader, replicas, count):
    """`count` fresh connections through the read port: each must be on a replica in
    recovery, never on the leader."""
    seen = {}
    by_port = {n.pg_port: n.name for n in replicas}
    for _ in range(count):
        rec, port = where_am_i(hap.read_port)
        assert port != leader.pg_port, "the read port sent a session to the leader %s\n%s" % (
            leader.name, hap.dump())
        assert rec is True, "the read port sent a session to port %d, not in recovery\n%s" % (
            port, hap.dump())
        assert port in by_port, "read session on unexpected port %d" % port
        seen[by_port[port]] = seen.get(by_port[port], 0) + 1
    log("read port: %d sessions, on %s" % (count, seen))
    return seen


class TransitionWatcher(threading.Thread):
    """Runs while a switchover or failover happens: polls HAProxy's server states every 0.1 s
    (when did pg_primary switch to the new leader, when did pg_replica drop it) and opens a
    fresh read-port connection every 0.25 s (did any reach a primary).  Polling health checks
    cannot keep reads off a node that was just promoted (it stays in pg_replica until `fall`
    checks failed, up to fall x inter), so that count is reported, not asserted."""

    def __init__(self, hap):
        super().__init__(daemon=True)
        self.hap = hap
        self.reads = []     # (t, in_recovery, port) or (t, None, error)
        self.states = []    # (t, pg_primary UP list, pg_replica UP list), on change
        self._stop_evt = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        last_probe = -1.0
        while not self._stop_evt.is_set():
            t = time.monotonic() - self.t0
            try:
                st = (self.hap.up("pg_primary"), self.hap.up("pg_replica"))
                if not self.states or self.states[-1][1:] != st:
                    self.states.append((t,) + st)
            except OSError:
                pass
            if t - last_probe >= 0.25:
                last_probe = t
                try:
                    rec, port = where_am_i(self.hap.read_port, timeout=1)
                    self.reads.append((time.monotonic() - self.t0, rec, port))
                except Exception as e:  # noqa: BLE001
                    self.reads.append((time.monotonic() - self.t0, None, type(e).__name__))
            self._stop_evt.wait(0.1)

    def first(self, pred):
        for t, prim, rep in self.states:
            if pred(prim, rep):
                return t
        return None

    def stop(self, what, new):
        """Stop and report; `new` is the node that became primary."""
        self._stop_evt.set()
        self.join(10)
        log("haproxy states during %s: %s" % (what, [(round(t, 2), p, r)
                                                     for t, p, r in self.states]))
        t_prim = self.first(lambda p, r: p == [new.name])
        t_rep = self.first(lambda p, r: p == [new.name] and new.name not in r)
        if t_prim is not None:
            figure("%s -> haproxy pg_primary = [%s]" % (what, new.name), t_prim)
        if t_rep is not None:
            figure("%s -> haproxy pg_replica drops %s" % (what, new.name), t_rep)
        ok = [x for x in self.reads if x[1] is True]
        bad = [x for x in self.reads if x[1] is False]
        failed = [x for x in self.reads if x[1] is None]
        log("read probes during %s: %d on replicas, %d on a primary %s, %d failed"
            % (what, len(ok), len(bad), [(round(t, 2), p) for t, _, p in bad], len(failed)))
        figure("%s: read-port sessions that reached a primary" % what, len(bad),
               "of %d" % len(self.reads))
        return bad


def settle(hap, cluster, leader, replicas):
    """Wait until HAProxy's view matches the cluster: only the leader in pg_primary, exactly
    the (streaming) replicas in pg_replica."""
    hap.wait_up("pg_primary", [leader.name], cluster=cluster)
    hap.wait_up("pg_replica", [n.name for n in replicas], cluster=cluster)


# ---------------------------------------------------------------------------------------
# 1. HAProxy
# ---------------------------------------------------------------------------------------

def test_haproxy_routes_writes_to_the_primary_and_reads_to_replicas(make_cluster):
    _need(HAPROXY_BIN, "haproxy")
    c = make_cluster(3, label="r")
    leader = c.wait_healthy(120)
    replicas = c.replicas(leader.name)
    hap = HAProxy(c).start()
    try:
        _routing_scenario(c, hap, leader, replicas)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, hap.dump())) from None
    finally:
        hap.cleanup()


def _routing_scenario(c, hap, leader, replicas):
    reads = 0

    # -- steady state ---------------------------------------------------------------------
    t0 = time.monotonic()
    settle(hap, c, leader, replicas)
    figure("haproxy started -> backends match the cluster", time.monotonic() - t0)
    rec, port = where_am_i(hap.write_port)
    assert (rec, port) == (False, leader.pg_port), \
        "write port: in_recovery=%s port=%s, leader %s is on %d" % (rec, port, leader.name,
                                                                    leader.pg_port)
    held = pg_connect(hap.write_port)   # a session that lives across the switchover
    with held.cursor() as cur:
        cur.execute("CREATE TABLE routing_rows (id int PRIMARY KEY, via text)")
        cur.execute("INSERT INTO routing_rows VALUES (1, 'write port')")
    seen = probe_reads(hap, leader, replicas, READ_PROBES_PER_PHASE)
    reads += READ_PROBES_PER_PHASE
    assert len(seen) == 2, "read port used only %s of two replicas" % list(seen)

    # -- switchover -----------------------------------------------------------------------
    target = replicas[0]
    log("switchover %s -> %s through the failover key" % (leader.name, target.name))
    watcher = TransitionWatcher(hap)
    watcher.start()
    t0 = time.monotonic()
    c.etcd.put(c.prefix + "failover", json.dumps({"leader": leader.name,
                                                  "member": target.name}))
    try:
        _, dt = reconnect_to_primary(hap, [target], t0, SWITCHOVER_BOUND, c)
    finally:
        time.sleep(4 * CHECK_INTER)   # let the watcher see the read backend settle
        watcher.stop("switchover (failover key)", target)
    figure("switchover (failover key) -> write-port client on new primary", dt)
    assert c.wait_leader(10) == target.name
    # The session opened on the old primary does not survive it.
    with pytest.raises(Exception):
        with held.cursor() as cur:
            cur.execute("SELECT 1")
    held.close()
    where = pg_connect(hap.write_port)
    try:
        with where.cursor() as cur:
            cur.execute("INSERT INTO routing_rows VALUES (2, 'write port after switchover')")
    finally:
        where.close()

    old = leader
    leader = target
    replicas = c.replicas(leader.name)
    c.wait_healthy(90)
    t0 = time.monotonic()
    settle(hap, c, leader, replicas)
    figure("switchover: cluster healthy -> haproxy backends settled",
           time.monotonic() - t0)
    seen = probe_reads(hap, leader, replicas, READ_PROBES_PER_PHASE)
    reads += READ_PROBES_PER_PHASE
    assert sorted(seen) == sorted(n.name for n in replicas), \
        "read port used only %s; the demoted %s should serve reads too" % (list(seen), old.name)

    # -- failover (power loss of the leader's machine) ------------------------------------
    log("killing the machine of leader %s" % leader.name)
    watcher = TransitionWatcher(hap)
    watcher.start()
    t0 = time.monotonic()
    leader.kill_machine()
    try:
        new, dt = reconnect_to_primary(hap, [n for n in c.nodes if n is not leader], t0,
                                       FAILOVER_BOUND, c)
        assert c.wait_leader(10, exclude=(leader.name,)) == new.name, \
            "the write port reached %s, the leader key names %s" % (new.name, c.leader_name())
    finally:
        time.sleep(4 * CHECK_INTER)
        watcher.stop("leader machine killed", c.node(c.leader_name() or leader.name))
    figure("leader machine killed -> write-port client on new primary", dt)
    conn = pg_connect(hap.write_port)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO routing_rows VALUES (3, 'write port after failover')")
            cur.execute("SELECT count(*) FROM routing_rows")
            assert cur.fetchone()[0] == 3
    finally:
        conn.close()

    dead = leader
    leader = new
    alive = [n for n in c.nodes if n is not dead]
    replicas = [n for n in alive if n is not leader]
    c.wait_healthy(90, nodes=alive)
    t0 = time.monotonic()
    settle(hap, c, leader, replicas)
    figure("failover: cluster healthy -> haproxy backends settled", time.monotonic() - t0)
    probe_reads(hap, leader, replicas, READ_PROBES_PER_PHASE)
    reads += READ_PROBES_PER_PHASE
    assert reads == 30
    assert hap.alive(), "haproxy exited:\n" + hap.dump()


# ---------------------------------------------------------------------------------------
# 2. patronictl
# ---------------------------------------------------------------------------------------

def patronictl(cluster, *args, timeout=60):
    cfg = os.path.join(cluster.dir, "patronictl.yml")
    if not os.path.exists(cfg):
        with open(cfg, "w") as f:
            f.write(harness.to_yaml({"scope": cluster.scope, "namespace": "/service/",
                                     "etcd3": {"hosts": [cluster.etcd.endpoint]}}) + "\n")
    env = harness.clean_env({"PYTHONWARNINGS": "ignore"})
    for k in list(env):
        if k.startswith(("PATRONI", "PYTHON")) and k != "PYTHONWARNINGS":
            del env[k]   # Patroni reads PATRONI_* settings from the environment
    cmd = [PATRONICTL_BIN, "-c", cfg] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    log("$ %s -> rc %d\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def patronictl_list(cluster):
    r = patronictl(cluster, "list", "-f", "json")
    assert r.returncode == 0, "patronictl list failed (rc %d):\n%s%s" % (
        r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def check_listing(cluster, rows, leader):
    """rows of `patronictl list -f json` (Patroni 3.0.2) describe the cluster led by leader."""
    tl = Cluster.primary_timeline(leader)
    by_name = {r["Member"]: r for r in rows}
    assert sorted(by_name) == sorted(n.name for n in cluster.nodes), rows
    for n in cluster.nodes:
        r = by_name[n.name]
        assert r["Cluster"] == cluster.scope, r
        # Host is host:port when the port is not 5432 or the hosts are the same.
        assert r["Host"] == "127.0.0.1:%d" % n.pg_port, r
        # Patroni 3.0.2 prints the member key's state as is: "running" (the "streaming"
        # spelling for replicas came with 3.0.4).
        assert r["State"] == "running", r
        assert r.get("TL") == tl, "%s: TL %r, the primary writes on timeline %d" % (
            n.name, r.get("TL"), tl)
        if n is leader:
            assert r["Role"] == "Leader", r
            assert "Lag in MB" not in r, r      # the leader has no lag column
        else:
            assert r["Role"] == "Replica", r
            assert isinstance(r.get("Lag in MB"), int) and not isinstance(
                r["Lag in MB"], bool), "%s: lag %r is not a number" % (n.name, r.get("Lag in MB"))
            assert 0 <= r["Lag in MB"] <= 1, r


def test_patronictl_list_shows_pgwarden_cluster(make_cluster):
    _need(PATRONICTL_BIN, "patroni")
    c = make_cluster(3, label="p")
    leader = c.wait_healthy(120)

    # Members write timeline/xlog_location every loop; wait for the keys to agree with
    # PostgreSQL before comparing.
    def listing_ok():
        rows = patronictl_list(c)
        check_listing(c, rows, leader)
        return rows
    t0 = time.monotonic()
    rows = c.wait_until(listing_ok, 30, "patronictl list to describe the cluster")
    figure("healthy -> patronictl list matches", time.monotonic() - t0)
    # patronictl computes a replica's lag against the status key's optime (0 without it).
    status = json.loads(c.key("status") or "{}")
    assert isinstance(status.get("optime"), int) and status["optime"] > 0, status
    log("patronictl list: %s" % json.dumps(rows))

    # After a switchover: new leader, timeline + 1, on every member.
    target = c.replicas(leader.name)[0]
    c.etcd.put(c.prefix + "failover", json.dumps({"leader": leader.name,
                                                  "member": target.name}))
    c.wait_until(lambda: c.leader_name() == target.name, 60,
                 "%s to take the leader key" % target.name)
    leader = c.wait_healthy(90)
    assert leader is target
    assert Cluster.primary_timeline(leader) == 2
    t0 = time.monotonic()
    rows = c.wait_until(listing_ok, 30, "patronictl list to describe the cluster after the"
                        " switchover")
    figure("switchover healthy -> patronictl list matches", time.monotonic() - t0)
    log("patronictl list after switchover: %s" % json.dumps(rows))

    # patronictl history reads the history key.
    r = patronictl(c, "history", "-f", "json")
    assert r.returncode == 0, r.stderr
    hist = json.loads(r.stdout)
    assert hist and hist[-1]["TL"] == 1 and hist[-1]["New Leader"] == target.name, hist
