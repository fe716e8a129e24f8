#!/usr/bin/python3
"""failover-bench.py - the operator's view of failover: pgwarden vs Patroni 3.0.2.

    bench/failover-bench.py [--systems patroni,pgwarden,pgwarden-fast]
                            [--timings default,tight] [--scenarios LIST] [--runs 3]
                            [--fast-takeover-after 1] [--haproxy-cfg FILE] [--async]
                            [--footprint-seconds 60] [--keep] [--results bench/RESULTS.md]

On the fault rig of tests/faults/ (rig.py: network namespaces on a bridge, cgroups, tmpfs
disks, simulated BMCs, watchdog emulators, three etcd members, three PostgreSQL nodes) it
boots one cluster per (system, timing, run), measures the bootstrap, the daemons' idle
footprint and REST throughput, then starts the recorder's client (one write every 50 ms
through one libpq multi-host string) and applies, one after the other, a planned
switchover, a SIGKILL of the leader's daemon, a freeze of the leader machine, a power loss
of the leader (then its rejoin), and a power loss seen through HAProxy; each time it
measures the write gap the client saw and the phases of the failover, restores the
cluster and waits until it is healthy again.  It prints the tables, writes bench/RESULTS.md
and draws one power-loss failover per system with gnuplot (bench/failover-SYSTEM.png).

Not a test: the exit status is 0 whenever the measurement ran, whatever the figures (a run
that does not recover is recorded as such).  Run as root with /usr/bin/python3; only the
rig's bridge addresses and loopback are used.  See bench/README.md.
"""

import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("PGWARDEN_BIN", os.path.join(ROOT, "build", "release", "pgwarden"))
sys.path.insert(0, os.path.join(ROOT, "tests", "faults"))
import rig as rigmod  # noqa: E402
import recorder  # noqa: E402
import checker  # noqa: E402  (its daemon-log parsing: LOG_RE, _wall)
import harness  # noqa: E402  (rig put tests/integration on the path)

SYSTEMS = ("patroni", "pgwarden", "pgwarden-fast")
TIMINGS = ("default", "tight")
SCENARIOS = ("bootstrap", "footprint", "rest", "switchover", "kill-daemon", "kill-restart",
             "freeze", "power-loss", "rejoin", "haproxy")
# kill-restart: the daemon is started again after its systemd unit's RestartSec
# (packaging/systemd/pgwarden.service: 5 s; Debian's patroni.service: Restart=on-failure
# with systemd's default RestartSec, 100 ms)
RESTART_SEC = {"pgwarden": 5.0, "patroni": 0.1}
RECOVERY_BOUND = {"tight": 60.0, "default": 150.0}   # as tests/faults/run.py
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def daemon_of(system):
    return "patroni" if system == "patroni" else "pgwarden"


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else None


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.*f" % (nd, v)
    return str(v)


class LoadSampler(threading.Thread):
    """The 1-minute load average every 5 s."""

    def __init__(self):
        super().__init__(daemon=True, name="bench-loadavg")
        self.samples = []
        self.stop_evt = threading.Event()

    def run(self):
        while not self.stop_evt.is_set():
            try:
                with open("/proc/loadavg") as f:
                    self.samples.append(float(f.read().split()[0]))
            except (OSError, ValueError):
                pass
            self.stop_evt.wait(5.0)

    def stop(self):
        self.stop_evt.set()


class Acks:
    """A client's records as they arrive (recorder.Client's on_record hook)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acks = []      # ok records, in order of completion
        self.last = None    # last record of any kind

    def add(self, rec):
        with self.lock:
            self.last = rec
            if rec.get("ok"):
                self.acks.append(rec)

    def snapshot(self):
        with self.lock:
            return list(self.acks)

    def first_ack_after(self, t, not_node=None, node=None):
        """The first ack completed after t (by a node other than not_node / by node)."""
        with self.lock:
            i = len(self.acks)
            while i > 0 and self.acks[i - 1]["r"] > t:
                i -= 1
            for a in self.acks[i:]:
                if (not_node is None or a["node"] != not_node) and \
                        (node is None or a["node"] == node):
                    return a
        return None

    def last_ack_time(self):
        with self.lock:
            return self.acks[-1]["r"] if self.acks else None


def write_gap(acks, t_fault, t_end):
    """The longest interval between two consecutive acknowledged writes (by completion
    time) that ends after the fault instant and starts before t_end; an interval still open
    at t_end counts up to t_end (open=True).  (gap, lo, hi, open)."""
    rs = sorted(a["r"] for a in acks)
    best = (None, None, None, False)
    prev = None
    for r in rs:
        if prev is not None and r > t_fault and prev < t_end:
            if best[0] is None or r - prev > best[0]:
                best = (r - prev, prev, r, False)
        prev = r
        if r > t_end:
            break
    if prev is not None and prev < t_end:
        # the last ack came before the end of the window: writes had not resumed
        g = t_end - prev
        if best[0] is None or g > best[0]:
            best = (g, prev, t_end, True)
    return best


# ---------------------------------------------------------------------------------------
# logs, audit records, monitor
# ---------------------------------------------------------------------------------------

class Logs:
    """The daemons' log lines, audit records and watchdog resets of one rig, in monotonic
    time (wall stamps converted with t0_mono/t0_wall taken at the rig's start)."""

    def __init__(self, rig, t0_mono, t0_wall):
        self.rig = rig
        self.t0_mono, self.t0_wall = t0_mono, t0_wall

    def lines(self):
        """[(mono, node, msg)] of every node's daemon log."""
        out = []
        utc = self.rig.daemon == "pgwarden"
        for n in self.rig.nodes:
            try:
                with open(n.log_path, errors="replace") as f:
                    for ln in f:
                        m = checker.LOG_RE.match(ln.rstrip("\n"))
                        if not m:
                            continue
                        w = checker._wall(m.group(1), m.group(2), m.group(3), utc=utc)
                        if w is not None:
                            out.append((w - self.t0_wall + self.t0_mono, n.name, m.group(6)))
            except OSError:
                pass
        out.sort()
        return out

    def audit(self):
        out = []
        if not self.rig.fencing:
            return out
        for n in self.rig.nodes:
            try:
                with open(n.audit_log) as f:
                    for ln in f:
                        try:
                            r = json.loads(ln)
                        except ValueError:
                            continue
                        if isinstance(r, dict) and isinstance(r.get("mono"), (int, float)):
                            out.append(r)
            except OSError:
                pass
        out.sort(key=lambda r: r["mono"])
        return out

    def watchdog_fired(self, node):
        if node.wdemu is None:
            return []
        try:
            return [t for t, _, _ in node.wdemu.fired()]
        except Exception:  # noqa: BLE001
            return []


def read_monitor(path, t_from, t_to):
    out = []
    try:
        with open(path) as f:
            for ln in f:
                try:
                    m = json.loads(ln)
                except ValueError:
                    continue
                if t_from <= m.get("s", 0) <= t_to:
                    out.append(m)
    except OSError:
        pass
    out.sort(key=lambda m: m["s"])
    return out


def monitor_two_primaries(samples, fresh=0.5):
    """Seconds during which two or more nodes answered pg_is_in_recovery() = false in
    samples less than `fresh` s old."""
    state = {}
    total = 0.0
    prev_t, prev_n = None, 0
    for m in samples:
        t = m["s"]
        if prev_t is not None and prev_n >= 2:
            total += t - prev_t
        state[m["node"]] = (m.get("primary") is True, t)
        prev_n = sum(1 for p, s in state.values() if p and t - s < fresh)
        prev_t = t
    return round(total, 2)


# pgwarden decisions that mean "the leader is gone or silent" on a surviving node
PGW_DETECT = re.compile(r"decision \[(fast-takeover|fence-before-promote|fence-by-other|"
                        r"fencer-takes-over|positions-stale|candidate|not-best|"
                        r"no-fresh-lease|unprotected-leader-lost|watchdog-no-election|"
                        r"fence-record-unreadable|nofailover)\]")
PGW_KEY = re.compile(r"^took the leader key")
PAT_KEY = re.compile(r"promoted self to leader|acquired session lock as a leader|"
                     r"Lock owner: (\S+); I am \1")


def pat_detect(old):
    return re.compile(r"Request failed to %s\b|promoted self to leader|following a different "
                      r"leader|acquired session lock|Lock owner: None|no leader"
                      % re.escape(old))


def phases(ctx, t_fault, old, new, t_end, acks, kind):
    """{phase: seconds since the fault} of one failover (only those found)."""
    rig = ctx.rig
    out = {}
    lines = [x for x in ctx.logs.lines() if t_fault - 0.5 <= x[0] <= t_end]
    pgw = rig.daemon == "pgwarden"
    if kind != "switchover":
        det = PGW_DETECT if pgw else pat_detect(old)
        for t, node, msg in lines:
            if node != old and t >= t_fault and det.search(msg):
                out["detection"] = t - t_fault
                break
    if new:
        key = PGW_KEY if pgw else PAT_KEY
        for t, node, msg in lines:
            if node == new and t >= t_fault and key.search(msg):
                if not pgw and msg.startswith("Lock owner") and kind != "switchover":
                    continue
                out["leader key taken"] = t - t_fault
                break
    for r in ctx.logs.audit():
        if r["mono"] < t_fault or r["mono"] > t_end or r.get("target") != old:
            continue
        if r.get("action") == "fence-intent" and "fence intent" not in out:
            out["fence intent"] = r["mono"] - t_fault
        if r.get("action") == "fence-result" and r.get("result") == "off-confirmed" \
                and "off confirmed" not in out:
            out["off confirmed"] = r["mono"] - t_fault
    fired = [t for t in ctx.logs.watchdog_fired(rig.node(old)) if t_fault <= t <= t_end]
    if fired:
        out["watchdog reset"] = fired[0] - t_fault
    mon = read_monitor(ctx.monitor_path, t_fault, t_end)
    for m in mon:
        if m["node"] == old and m.get("primary") is not True:
            out["old primary gone"] = m["s"] - t_fault
            break
    if new:
        for m in mon:
            if m["node"] == new and m.get("primary") is True:
                out["promoted"] = m["s"] - t_fault
                break
        fa = [a for a in acks if a["r"] > t_fault and a["node"] == new]
        if fa:
            out["first ack"] = fa[0]["r"] - t_fault
    return {k: round(v, 3) for k, v in out.items()}


# ---------------------------------------------------------------------------------------
# the probe: is a node writable (a commit acknowledged with the session's defaults)?
# ---------------------------------------------------------------------------------------

class Prober:
    """One thread per node: INSERT INTO bench_probe on a kept connection every 0.2 s.  A
    commit that does not return (a primary waiting for a synchronous standby that left)
    keeps its thread waiting on it, so there is at most one such backend per node."""

    def __init__(self, rig):
        self.rig = rig
        self.stop_evt = threading.Event()
        self.recs = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True,
                                         name="bench-probe-" + n.name) for n in rig.nodes]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _wait(self, conn, deadline=None):
        import psycopg2.extensions as ext
        while True:
            st = conn.poll()
            if st == ext.POLL_OK:
                return True
            if self.stop_evt.is_set() or (deadline and time.monotonic() > deadline):
                return False
            if st == ext.POLL_READ:
                select.select([conn.fileno()], [], [], 0.2)
            else:
                select.select([], [conn.fileno()], [], 0.2)

    def _run(self, node):
        import psycopg2
        conn = None
        dsn = node.dsn(application_name="bench-probe", connect_timeout=2)
        while not self.stop_evt.is_set():
            t_next = time.monotonic() + 0.2
            s = time.monotonic()
            ok, err = False, None
            try:
                if conn is None:
                    conn = psycopg2.connect(dsn, async_=True)
                    if not self._wait(conn, time.monotonic() + 1.0):
                        raise TimeoutError("connect deadline")
                cur = conn.cursor()
                cur.execute("INSERT INTO bench_probe (node, t) VALUES (%s, %s)",
                            (node.name, s))
                ok = self._wait(conn)
                if not ok:
                    err = "stopped while waiting for the commit"
            except Exception as e:  # noqa: BLE001
                err = ("%s: %s" % (type(e).__name__, str(e).strip()))[:120]
                if conn is not None and not conn.closed and \
                        getattr(e, "pgcode", None) == "25006":
                    pass    # read-only transaction (a replica): the connection stays
                elif conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
            with self.lock:
                self.recs.append({"node": node.name, "s": s, "r": time.monotonic(),
                                  "ok": ok, "err": err})
            left = t_next - time.monotonic()
            if left > 0:
                self.stop_evt.wait(left)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def stop(self):
        self.stop_evt.set()
        for t in self.threads:
            t.join(5)

    def two_writable(self, window=0.5):
        """(times two different nodes acknowledged probe commits less than `window` s
        apart, seconds covered by such pairs, {node: acked probes})."""
        acks = sorted((r for r in self.recs if r["ok"]), key=lambda r: r["r"])
        pairs, span = 0, []
        last = {}
        for a in acks:
            for n, t in last.items():
                if n != a["node"] and a["r"] - t < window:
                    pairs += 1
                    span.append(a["r"])
                    break
            last[a["node"]] = a["r"]
        per = {}
        for a in acks:
            per[a["node"]] = per.get(a["node"], 0) + 1
        return pairs, round(max(span) - min(span), 2) if span else 0.0, per


# ---------------------------------------------------------------------------------------
# HAProxy
# ---------------------------------------------------------------------------------------

def haproxy_config(src, rig, bind_addr):
    """The file `src` with every bind address replaced by bind_addr (ports kept) and the
    i-th server of each backend pointed at the rig's node i (PostgreSQL port; a check port
    becomes the REST port).  Everything else, the check settings included, verbatim.
    Returns (text, port of the frontend whose backend is pg_primary)."""
    out = []
    sec = None
    idx = 0
    port = None
    fe_port = None
    for ln in open(src).read().split("\n"):
        s = ln.strip()
        if ln and not ln[0].isspace() and s and not s.startswith("#"):
            sec = s.split()
            idx = 0
            fe_port = None
        m = re.match(r"^(\s*bind\s+)(\S+?):(\d+)(.*)$", ln)
        if m:
            ln = "%s%s:%s%s" % (m.group(1), bind_addr, m.group(3), m.group(4))
            fe_port = int(m.group(3))
        if re.match(r"^\s*(default_backend|use_backend)\s+pg_primary\b", ln) and fe_port:
            port = port or fe_port
        m = re.match(r"^(\s*server\s+)(\S+)\s+(\S+):(\d+)(.*)$", ln)
        if m and sec and sec[0] in ("backend", "listen"):
            n = rig.nodes[idx % len(rig.nodes)]
            idx += 1
            tail = re.sub(r"\bport\s+\d+", "port %d" % rigmod.REST_PORT, m.group(5))
            ln = "%s%s %s:%d%s" % (m.group(1), n.name, n.addr, rigmod.PG_PORT, tail)
        out.append(ln)
    return "\n".join(out), port or 5000


class Haproxy:
    def __init__(self, rig, src, workdir):
        self.cfg_path = os.path.join(workdir, "haproxy.cfg")
        text, self.port = haproxy_config(src, rig, rig.net.gw)
        self.addr = rig.net.gw
        with open(self.cfg_path, "w") as f:
            f.write("# generated by bench/failover-bench.py from %s\n%s" % (src, text))
        self.log_path = os.path.join(workdir, "haproxy.log")
        self.proc = None
        harness.register(self)

    def start(self):
        r = subprocess.run(["haproxy", "-c", "-f", self.cfg_path], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("haproxy -c: %s" % (r.stdout + r.stderr)[-800:])
        with open(self.log_path, "ab") as lf:
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg_path],
                                         stdin=subprocess.DEVNULL, stdout=lf,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env=harness.clean_env())
        return self

    def cleanup(self):
        harness.unregister(self)
        harness.terminate(self.proc)


# ---------------------------------------------------------------------------------------
# one cluster (system, timing, run)
# ---------------------------------------------------------------------------------------

class Ctx:
    pass


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    f_ = st[st.rindex(")") + 2:].split()
    # fields after ")": state(3) ... utime(14) stime(15) cutime(16) cstime(17)
    return sum(int(x) for x in f_[11:15]) / CLK_TCK


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def smaps_kib(pid):
    """(Pss, Private_Clean + Private_Dirty) of a process, KiB.  PSS adds up across
    processes (a page shared by n processes counts 1/n in each): RSS does not, and counts
    every shared library page the process maps (libc, libssl, ... that PostgreSQL maps
    too) in full."""
    pss = priv = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k == "Pss":
                pss = int(v.split()[0])
            elif k in ("Private_Clean", "Private_Dirty"):
                priv += int(v.split()[0])
    return pss, priv


def daemon_pids(node):
    """The daemon's processes in the node's cgroup: pgwarden and its watchdog keeper, or
    the patroni python process (PostgreSQL not counted)."""
    want = "patroni" if node.rig.daemon == "patroni" else "pgwarden"
    out = []
    for pid in node.cgroup.procs():
        try:
            with open("/proc/%d/comm" % pid) as f:
                comm = f.read().strip()
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if comm.startswith(want) or any(want.encode() in os.path.basename(a) for a in argv[:2]):
            if comm.startswith(("postgres", "postmaster", "pg_")):
                continue
            out.append(pid)
    return sorted(out)


def footprint(ctx, seconds):
    rig = ctx.rig
    leader = rig.healthy() or rig.leader_name()
    pids = {n.name: daemon_pids(n) for n in rig.nodes}
    t0 = time.monotonic()
    c0 = {}
    for name, ps in pids.items():
        c0[name] = sum(proc_stat(p) for p in ps)
    time.sleep(seconds)
    dt = time.monotonic() - t0
    res = {"seconds": round(dt, 1), "leader": leader, "nodes": {}}
    for name, ps in pids.items():
        try:
            c1 = sum(proc_stat(p) for p in ps)
            rss = sum(vm_rss_kib(p) for p in ps)
            sm = [smaps_kib(p) for p in ps]
        except OSError as e:
            res["nodes"][name] = {"error": str(e)}
            continue
        res["nodes"][name] = {"pids": ps, "rss_mib": round(rss / 1024.0, 1),
                              "pss_mib": round(sum(x[0] for x in sm) / 1024.0, 1),
                              "uss_mib": round(sum(x[1] for x in sm) / 1024.0, 1),
                              "cpu_s_per_min": round((c1 - c0[name]) * 60.0 / dt, 3),
                              "role": "leader" if name == leader else "replica"}
    return res


def rest_bench(ctx, duration):
    rig = ctx.rig
    leader = rig.node(rig.healthy() or rig.leader_name())
    url = "http://%s:%d/primary" % (leader.addr, rigmod.REST_PORT)
    r = subprocess.run(["wrk", "-t2", "-c16", "-d%ds" % duration, "--latency", url],
                       capture_output=True, text=True, timeout=duration + 60,
                       env=harness.clean_env())
    out = r.stdout
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p99 = re.search(r"^\s+99%\s+([0-9.]+)(us|ms|s)\s*$", out, re.M)
    res = {"url": url, "rps": float(rps.group(1)) if rps else None, "p99_ms": None,
           "errors": (re.search(r"Socket errors:.*|Non-2xx.*", out) or [None])[0]}
    if p99:
        res["p99_ms"] = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return res


def wait_writes_flowing(ctx, timeout=30.0):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        la = ctx.acks.last_ack_time()
        if la is not None and time.monotonic() - la < 0.3:
            return True
        time.sleep(0.1)
    return False


def restore(ctx):
    rig = ctx.rig
    for n in rig.nodes:
        try:
            if n.machine.cgroup.exists() and n.machine.frozen():
                n.machine.freeze(False)
        except OSError:
            pass
    try:
        return rig.restore_all()
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


def wait_healthy(ctx, what="next scenario", relaxed_ok=False):
    """The rig's healthy (one primary holding the leader key, both others streaming from
    it, in sync mode a sync key naming it and a standby) within the recovery bound; else,
    within as long again, that or the same without the sync key condition (noted: a
    stale sync key is worth knowing, but the next scenario can still run).  None when
    neither comes.  relaxed_ok: the relaxed form is enough from the start, without a note.
    """
    rig = ctx.rig
    t0 = time.monotonic()
    relaxed = None
    while time.monotonic() - t0 < 2 * ctx.bound:
        try:
            h = rig.healthy()
        except Exception:  # noqa: BLE001
            h = False
        if h:
            return h
        if relaxed_ok or time.monotonic() - t0 > ctx.bound:
            try:
                prim, _ = rig.recovered()
                if prim and rig.leader_name() == prim:
                    relaxed = prim
                    break
            except Exception:  # noqa: BLE001
                pass
        time.sleep(0.3)
    if relaxed and relaxed_ok:
        return relaxed
    path = os.path.join(rig.dir, "not-healthy-%d.txt" % int(time.monotonic()))
    try:
        with open(path, "w") as f:
            f.write(rig.dump())
            f.write("\nsync key: %s\n" % rig.etcd_get("sync"))
    except Exception:  # noqa: BLE001
        pass
    if relaxed:
        try:
            sk = rig.etcd_get("sync")
        except Exception:  # noqa: BLE001
            sk = "?"
        note = ("not healthy by the rig's definition %.0f s after the restore, before %s: "
                "%s leads and both others stream from it, but the sync key is %s; "
                "going on (state in %s)" % (ctx.bound, what, relaxed, sk, path))
        ctx.notes.append(note)
        log(note)
        return relaxed
    log("cluster not healthy within %.0f s, before %s (state in %s)" % (2 * ctx.bound, what,
                                                                        path))
    return None


def pre_fault(ctx, what):
    """Healthy, writes flowing, then a pause of 1 s + uniform(0, loop_wait) (the fault
    lands anywhere in the HA loop)."""
    leader = wait_healthy(ctx, what)
    if leader is None:
        return None
    wait_writes_flowing(ctx)
    time.sleep(1.0 + ctx.rng.uniform(0, ctx.rig.timing["loop_wait"]))
    return ctx.rig.healthy() or leader


def observe(ctx, acks, t_fault, old, bound, undo=None, settle=3.0, target=None):
    """Wait until `acks` has an acknowledged write after t_fault on a node other than `old`
    (or on `target`), then `settle` s more; or until `bound` s after the fault, when
    `undo` (thaw, daemon restart, power on) is called and writes are awaited for up to the
    recovery bound.  Returns a dict: outcome, t_end, new leader, t_undo."""
    res = {"outcome": None, "t_undo": None, "new": None}
    t_first = None
    while True:
        now = time.monotonic()
        a = acks.first_ack_after(t_fault, not_node=old if target is None else None,
                                 node=target)
        if a is not None and t_first is None:
            t_first = a["r"]
            res["new"] = a["node"]
        if t_first is not None and now >= t_first + settle:
            res["outcome"] = "failover"
            break
        if now - t_fault > bound:
            break
        time.sleep(0.1)
    if res["outcome"] is None:
        res["t_undo"] = time.monotonic()
        res["undo"] = undo() if undo else None
        log("no failover within %.0f s: restored (%s)" % (bound, json.dumps(res["undo"])[:200]))
        t_stop = res["t_undo"] + ctx.bound
        while time.monotonic() < t_stop:
            a = acks.first_ack_after(res["t_undo"])
            if a is not None:
                res["outcome"] = "resumed after the bench's restore"
                res["new"] = a["node"]
                time.sleep(settle)
                break
            time.sleep(0.1)
        else:
            res["outcome"] = "no recovery"
    res["t_end"] = time.monotonic()
    return res


def failover_sample(ctx, acks, t_fault, old, obs, kind, extra=None):
    snap = acks.snapshot()
    gap, lo, hi, open_ = write_gap(snap, t_fault, obs["t_end"])
    new = obs.get("new")
    if new == old:
        new = None
    if new is None:
        try:
            ln = ctx.rig.leader_name()
            new = ln if ln != old else None
        except Exception:  # noqa: BLE001
            new = None
    ph = phases(ctx, t_fault, old, new, obs["t_end"], snap, kind)
    s = {"scenario": kind, "value": round(gap, 3) if gap is not None else None,
         "outcome": obs["outcome"], "old": old, "new": new, "gap_from": lo, "gap_to": hi,
         "gap_open": open_, "t_fault": t_fault, "phases": ph,
         "undo": obs.get("undo"), "t_undo": obs.get("t_undo")}
    if obs["outcome"] == "no recovery":
        s["value"] = None
        s["lower_bound"] = round(gap, 3) if gap is not None else None
    if extra:
        s.update(extra)
    # acks around the fault for the plot (id, seconds since the fault, node)
    s["acks"] = [(a["id"], round(a["r"] - t_fault, 3), a["node"]) for a in snap
                 if t_fault - 3.0 <= a["r"] <= obs["t_end"]]
    log("%s: write gap %s s (%s), old %s new %s, phases %s" % (
        kind, fmt(s["value"], 2), obs["outcome"], old, new, json.dumps(ph)))
    return s


def scen_power_loss(ctx, kind="power-loss", acks=None):
    rig = ctx.rig
    acks = acks or ctx.acks
    leader = pre_fault(ctx, kind)
    if leader is None:
        return None
    node = rig.node(leader)
    t = time.monotonic()
    node.machine.power_off()
    node.reset_watchdog()
    obs = observe(ctx, acks, t, leader, ctx.fail_bound, undo=lambda: restore(ctx))
    return failover_sample(ctx, acks, t, leader, obs, kind)


def scen_rejoin(ctx, old):
    """Power the old leader on again: seconds until it streams from the new leader (and
    until its REST /replica answers 200)."""
    rig = ctx.rig
    node = rig.node(old)
    t = time.monotonic()
    done = restore(ctx)
    t_stream = t_rest = None
    leader = None
    while time.monotonic() - t < ctx.bound and (t_stream is None or t_rest is None):
        leader = rig.leader_name()
        ln = rig.node(leader) if leader and leader != old else None
        if t_stream is None and ln is not None:
            try:
                rows = node.sql("SELECT status, sender_host FROM pg_stat_wal_receiver",
                                timeout=1.0)
                if rows and rows[0][0] == "streaming" and rows[0][1] == ln.addr:
                    t_stream = time.monotonic()
            except Exception:  # noqa: BLE001
                pass
        if t_rest is None:
            st, _ = node.rest("/replica", timeout=1.0)
            if st == 200:
                t_rest = time.monotonic()
        time.sleep(0.2)
    s = {"scenario": "rejoin", "value": round(t_stream - t, 2) if t_stream else None,
         "rest_replica_s": round(t_rest - t, 2) if t_rest else None,
         "outcome": "streaming" if t_stream else "not streaming within %.0f s" % ctx.bound,
         "restore": done, "leader": leader}
    log("rejoin of %s: streaming after %s s, REST /replica 200 after %s s (%s)" % (
        old, fmt(s["value"], 2), fmt(s["rest_replica_s"], 2), json.dumps(done)))
    return s


def scen_freeze(ctx):
    rig = ctx.rig
    leader = pre_fault(ctx, "freeze")
    if leader is None:
        return None
    node = rig.node(leader)
    prober = Prober(rig).start()
    t = time.monotonic()
    node.machine.freeze(True)
    # the frozen machine stays frozen until a failover was seen (or the bound passed)
    obs = observe(ctx, ctx.acks, t, leader, ctx.fail_bound, undo=lambda: restore(ctx))
    thaw = None
    if obs["outcome"] == "failover":
        thaw = restore(ctx)
    wait_healthy(ctx, "the end of the probes", relaxed_ok=True)   # the old leader rejoined
    extra = dict(two_primaries(ctx, prober, t, leader), thaw=thaw,
                 old_leader_acks_after_new=old_acks_after_new(ctx.acks, t, leader))
    return failover_sample(ctx, ctx.acks, t, leader, obs, "freeze", extra)


def two_primaries(ctx, prober, t, leader):
    """Stop the prober; what it and the monitor saw of two writable primaries since t."""
    prober.stop()
    pairs, span, per = prober.two_writable()
    mon = read_monitor(ctx.monitor_path, t, time.monotonic())
    return {"two_writable": pairs > 0, "two_writable_pairs": pairs,
            "two_writable_span_s": span, "probe_acks": per,
            "two_primaries_monitor_s": monitor_two_primaries(mon)}


def old_acks_after_new(acks, t_fault, old):
    snap = acks.snapshot()
    first_new = next((a["r"] for a in snap if a["r"] > t_fault and a["node"] != old), None)
    if first_new is None:
        return 0
    return sum(1 for a in snap if a["r"] > first_new and a["node"] == old)


def scen_kill_daemon(ctx):
    rig = ctx.rig
    leader = pre_fault(ctx, "kill-daemon")
    if leader is None:
        return None
    node = rig.node(leader)
    pid = node.daemon_pid()
    prober = Prober(rig).start()
    t = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    obs = observe(ctx, ctx.acks, t, leader, ctx.fail_bound, undo=lambda: restore(ctx))
    restored = restore(ctx) if obs["outcome"] == "failover" else None
    wait_healthy(ctx, "the end of the probes", relaxed_ok=True)   # the old leader rejoined
    extra = dict(two_primaries(ctx, prober, t, leader), killed_pid=pid, restore=restored,
                 old_leader_acks_after_new=old_acks_after_new(ctx.acks, t, leader))
    return failover_sample(ctx, ctx.acks, t, leader, obs, "kill-daemon", extra)


def scen_kill_restart(ctx):
    """The leader's daemon killed and started again as its systemd unit would: the write
    gap wherever the writes go on (the same primary, or a new one)."""
    rig = ctx.rig
    leader = pre_fault(ctx, "kill-restart")
    if leader is None:
        return None
    node = rig.node(leader)
    pid = node.daemon_pid()
    delay = RESTART_SEC["patroni" if rig.daemon == "patroni" else "pgwarden"]
    prober = Prober(rig).start()
    t = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    time.sleep(delay)
    node.reap()
    node.start(restart_daemon=True)
    t_restart = time.monotonic()
    obs = {"outcome": "no recovery", "new": None, "t_undo": None}
    while time.monotonic() - t < ctx.fail_bound:
        # writes flowing again, on the same primary or a new one, 1 s after the restart
        a = ctx.acks.first_ack_after(t_restart + 1.0)
        if a is not None:
            obs["outcome"] = "writes go on"
            obs["new"] = a["node"] if a["node"] != leader else None
            time.sleep(2.0)
            break
        time.sleep(0.2)
    obs["t_end"] = time.monotonic()
    seen = two_primaries(ctx, prober, t, leader)
    # the restarted node may have been fenced (powered off) meanwhile: noted, then restored
    if not node.machine.powered():
        obs["fenced"] = True
        obs["undo"] = restore(ctx)
    wait_healthy(ctx, "the end of kill-restart", relaxed_ok=True)
    extra = dict(seen, killed_pid=pid, restart_after_s=delay,
                 fenced=obs.get("fenced", False))
    return failover_sample(ctx, ctx.acks, t, leader, obs, "kill-restart", extra)


def scen_switchover(ctx):
    rig = ctx.rig
    leader = pre_fault(ctx, "switchover")
    if leader is None:
        return None
    cand = None
    if rig.sync:
        try:
            cand = (json.loads(rig.etcd_get("sync") or "{}").get("sync_standby") or "") \
                .split(",")[0] or None
        except Exception:  # noqa: BLE001
            cand = None
    if cand is None:
        cand = sorted(n.name for n in rig.nodes if n.name != leader)[0]
    body = {"leader": leader, "candidate": cand}
    answer = {}

    def post():
        st, js = rigmod.http("POST", "http://%s:%d/switchover" % (rig.node(leader).addr,
                                                                 rigmod.REST_PORT),
                             body, timeout=60, auth=(rigmod.REST_USER, rigmod.REST_PASSWORD))
        answer.update({"status": st, "body": str(js)[:300], "r": time.monotonic()})
    th = threading.Thread(target=post, daemon=True)
    t = time.monotonic()
    th.start()
    obs = observe(ctx, ctx.acks, t, leader, ctx.fail_bound, undo=lambda: restore(ctx),
                  target=cand)
    th.join(60)
    extra = {"request": body, "answer": answer,
             "answer_s": round(answer["r"] - t, 3) if answer.get("r") else None}
    return failover_sample(ctx, ctx.acks, t, leader, obs, "switchover", extra)


def scen_haproxy(ctx):
    rig = ctx.rig
    hp = Haproxy(rig, ctx.args.haproxy_cfg, rig.dir).start()
    hacks = Acks()
    client = None
    try:
        if wait_healthy(ctx, "haproxy") is None:
            return None
        client = recorder.Client(rig, os.path.join(rig.dir, "client-haproxy.jsonl"),
                                 hosts=[(hp.addr, hp.port)], first_id=1000000001,
                                 on_record=hacks.add, name="bench-haproxy-client")
        client.start()
        ctx.other_acks.append(hacks)
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end:
            la = hacks.last_ack_time()
            if la is not None and time.monotonic() - la < 0.3 and len(hacks.acks) > 20:
                break
            time.sleep(0.2)
        else:
            log("no writes through haproxy within 60 s (%s)" % (hacks.last,))
            return {"scenario": "haproxy", "value": None,
                    "outcome": "no writes through haproxy before the fault"}
        s = scen_power_loss(ctx, "haproxy", acks=hacks)
        if s is not None:
            d = failover_sample(ctx, ctx.acks, s["t_fault"], s["old"],
                                {"t_end": time.monotonic(), "outcome": "-", "new": s["new"]},
                                "haproxy-direct")
            s["direct_client_gap"] = d["value"]
            s["haproxy_cfg"] = ctx.args.haproxy_cfg
            s["restore"] = restore(ctx)
        return s
    finally:
        if client is not None:
            client.stop()
        hp.cleanup()


def lost_writes(ctx, out):
    """Acknowledged writes (both clients) missing from the primary at the end of the run,
    each counted against the last fault before its acknowledgement ("lost_acked")."""
    rig = ctx.rig
    state = rig.pg_state()
    prims = [k for k, v in state.items() if v and v["primary"]]
    if len(prims) != 1:
        out["lost_check"] = "no single primary at the end (%s)" % ",".join(prims)
        return
    have = set(r[0] for r in rig.node(prims[0]).sql("SELECT id FROM faults_writes",
                                                    timeout=30))
    acked = ctx.acks.snapshot()
    for a in ctx.other_acks:
        acked += a.snapshot()
    lost = sorted((a["r"], a["id"]) for a in acked if a["id"] not in have)
    out["lost_check"] = "%d of %d acknowledged writes missing on %s" % (len(lost), len(acked),
                                                                     prims[0])
    faults = sorted((s["t_fault"], s) for s in out["samples"] if s.get("t_fault"))
    for _, s in faults:
        s["lost_acked"] = 0
    for r, i in lost:
        before = [s for t, s in faults if t <= r]
        if before:
            before[-1]["lost_acked"] += 1
            before[-1].setdefault("lost_ids", []).append(i)
    log(out["lost_check"])


def one_cluster(args, system, timing, run_no, workdir, rng):
    """Every selected scenario on one fresh cluster; {scenario: [samples]} (+ "error")."""
    daemon = daemon_of(system)
    rundir = os.path.join(workdir, "%s-%s-r%d" % (system, timing, run_no))
    out = {"system": system, "timing": timing, "run": run_no, "rundir": rundir,
           "samples": []}
    sc = set(args.scenarios)
    ctx = Ctx()
    ctx.args = args
    ctx.rng = rng
    ctx.bound = args.recovery_bound or RECOVERY_BOUND[timing]
    ctx.notes = []
    ctx.other_acks = []
    rig = client = monitor = None
    t_begin = time.monotonic()
    try:
        rig = rigmod.Rig(rundir, daemon, timing, sync=not args.async_)
        if system == "pgwarden-fast":
            rig.fast_takeover_after = args.fast_takeover_after
        elif system == "pgwarden":
            rig.fast_takeover_after = 0
        ctx.rig = rig
        t = rig.timing
        ctx.fail_bound = 2 * t["ttl"] + 2 * t["loop_wait"] + 10
        ctx.t0_mono, ctx.t0_wall = time.monotonic(), time.time()
        ctx.logs = Logs(rig, ctx.t0_mono, ctx.t0_wall)
        ctx.monitor_path = os.path.join(rundir, "monitor.jsonl")
        with open(os.path.join(rundir, "run.json"), "w") as f:
            json.dump({"system": system, "daemon": daemon, "timing": t, "sync": rig.sync,
                       "fencing": rig.fencing, "fast_takeover_after":
                       rig.fast_takeover_after if rig.fencing else None,
                       "t0_mono": ctx.t0_mono, "t0_wall": ctx.t0_wall,
                       "nodes": {n.name: {"addr": n.addr, "dir": n.dir,
                                          "pgwarden_log": n.log_path,
                                          "audit_log": n.audit_log if rig.fencing else None}
                                 for n in rig.nodes}}, f, indent=1)
        log("=== %s, %s timing, run %d: %s" % (system, timing, run_no, rundir))
        t_boot = time.monotonic()
        rig.boot(timeout=max(240, 2 * ctx.bound))
        t_healthy = time.monotonic()
        t_start = None
        try:
            with open(rig.nodes[0].log_path) as f:
                m = re.search(r"=== rig: start #1 of \S+ at mono ([0-9.]+) ===", f.read())
                t_start = float(m.group(1)) if m else None
        except OSError:
            pass
        boot = round(t_healthy - (t_start or t_boot), 2)
        log("bootstrap: healthy %.1f s after the first node started" % boot)
        if "bootstrap" in sc:
            out["samples"].append({"scenario": "bootstrap", "value": boot,
                                   "outcome": "healthy"})
        leader = rig.wait_healthy(ctx.bound)
        rig.node(leader).sql("CREATE TABLE faults_writes (id bigint PRIMARY KEY,"
                             " t double precision); CREATE TABLE bench_probe"
                             " (node text, t double precision)", timeout=20)
        if "footprint" in sc:
            time.sleep(5.0)
            fp = footprint(ctx, args.footprint_seconds)
            log("footprint: %s" % json.dumps(fp["nodes"]))
            out["samples"].append(dict(fp, scenario="footprint", value=None,
                                       outcome="measured"))
        if "rest" in sc:
            rb = rest_bench(ctx, args.wrk_duration)
            log("REST: %s req/s, p99 %s ms (%s)" % (rb["rps"], rb["p99_ms"], rb["url"]))
            out["samples"].append(dict(rb, scenario="rest", value=rb["rps"],
                                       outcome="measured"))
        if not sc & {"switchover", "kill-daemon", "kill-restart", "freeze", "power-loss",
                     "rejoin", "haproxy"}:
            return out
        monitor = recorder.Monitor(rig, ctx.monitor_path)
        monitor.start()
        ctx.acks = Acks()
        client = recorder.Client(rig, os.path.join(rundir, "client.jsonl"),
                                 on_record=ctx.acks.add)
        client.start()
        time.sleep(2.0)
        # power loss (and the rejoin after it) first: they matter most, and a fault that
        # leaves the cluster broken (a freeze, a killed daemon) comes last
        if sc & {"power-loss", "rejoin"}:
            s = scen_power_loss(ctx)
            if s is None:
                out["error"] = "not healthy before power-loss"
                return out
            out["samples"].append(s)
            if "rejoin" in sc:
                if s.get("t_undo") is None:
                    out["samples"].append(scen_rejoin(ctx, s["old"]))
                else:
                    out["samples"].append({"scenario": "rejoin", "value": None,
                                           "outcome": "not measured: the old leader was "
                                           "powered on before a failover"})
            else:
                restore(ctx)
        plan = [("haproxy", scen_haproxy), ("switchover", scen_switchover),
                ("kill-restart", scen_kill_restart), ("kill-daemon", scen_kill_daemon),
                ("freeze", scen_freeze)]
        for name, fn in plan:
            if name not in sc:
                continue
            s = fn(ctx)
            if s is None:
                out["error"] = "not healthy before %s" % name
                return out
            out["samples"].append(s)
        if wait_healthy(ctx, "the end of the run") is None:
            out["error"] = "not healthy after the last scenario"
        return out
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001
        out["error"] = "%s: %s" % (type(e).__name__, e)
        traceback.print_exc()
        if rig is not None:
            try:
                log(rig.dump())
            except Exception:  # noqa: BLE001
                pass
        return out
    finally:
        recorder.stop_all(client, monitor)
        if client is not None and rig is not None:
            try:
                lost_writes(ctx, out)
            except Exception as e:  # noqa: BLE001
                log("cannot check for lost writes: %s" % e)
        out["notes"] = ctx.notes
        if rig is not None:
            rig.cleanup()
            rig.remove_data()
        out["seconds"] = round(time.monotonic() - t_begin, 1)
        log("=== %s, %s timing, run %d done in %.0f s%s" % (
            system, timing, run_no, out["seconds"],
            "; ERROR " + out["error"] if out.get("error") else ""))


# ---------------------------------------------------------------------------------------
# statistics, tables, plots, RESULTS.md
# ---------------------------------------------------------------------------------------

GAP_ROWS = [("power-loss", "power loss: write gap s"),
            ("freeze", "freeze: write gap s"),
            ("kill-daemon", "daemon SIGKILL: write gap s"),
            ("kill-restart", "daemon SIGKILL, restarted as by systemd: write gap s"),
            ("switchover", "switchover: write gap s"),
            ("haproxy", "power loss via HAProxy: write gap s"),
            ("rejoin", "rejoin: s until streaming"),
            ("bootstrap", "bootstrap: s until healthy")]
PHASES = ("detection", "fence intent", "off confirmed", "watchdog reset", "leader key taken",
          "promoted", "first ack")


def cell_samples(runs, system, timing, scenario):
    return [s for r in runs if r["system"] == system and r["timing"] == timing
            for s in r["samples"] if s.get("scenario") == scenario]


def stat_cell(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": med(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def cell_text(st, nd=1, total=None):
    if st is None:
        return "-" if not total else "none of %d" % total
    t = "%s [%s-%s] n=%d" % (fmt(st["median"], nd), fmt(st["min"], nd), fmt(st["max"], nd),
                             st["n"])
    if total and total != st["n"]:
        t += "/%d" % total
    return t


def build_tables(runs, systems, timings):
    """[(title, header, rows, notes)] per timing."""
    tables = []
    base = "patroni" if "patroni" in systems else None
    others = [s for s in systems if s != "patroni"]
    for timing in timings:
        if not any(r["timing"] == timing for r in runs):
            continue
        header = ["metric"] + list(systems) + ["%s/patroni" % s for s in others if base]
        rows = []
        notes = []

        def add(label, stats_by_sys, nd=1, totals=None, ratio=True):
            row = [label]
            for s in systems:
                row.append(cell_text(stats_by_sys.get(s), nd, (totals or {}).get(s)))
            if base:
                b = stats_by_sys.get(base)
                for s in others:
                    o = stats_by_sys.get(s)
                    if ratio and b and o and b["median"]:
                        row.append("%.2fx" % (o["median"] / b["median"]))
                    else:
                        row.append("-")
            rows.append(row)

        for scen, label in GAP_ROWS:
            st, tot = {}, {}
            for s in systems:
                smp = cell_samples(runs, s, timing, scen)
                if smp:
                    st[s] = stat_cell([x.get("value") for x in smp])
                    tot[s] = len(smp)
                    for x in smp:
                        if x.get("outcome") not in ("failover", "healthy", "streaming",
                                                    "measured", None):
                            notes.append("%s %s: %s (write gap %s s%s)" % (
                                s, scen, x.get("outcome"), fmt(x.get("value"), 1),
                                ", at least %s s" % fmt(x.get("lower_bound"), 1)
                                if x.get("lower_bound") else ""))
            if st:
                add(label, st, totals=tot)
            if scen == "rejoin":
                st = {s: stat_cell([x.get("rest_replica_s") for x in
                                    cell_samples(runs, s, timing, scen)])
                      for s in systems if cell_samples(runs, s, timing, scen)}
                if any(st.values()):
                    add("rejoin: s until REST /replica 200", st)
        for scen, label in GAP_ROWS[:5]:
            row = ["%s: acked writes lost" % label.split(":")[0]]
            seen = False
            for s in systems:
                smp = [x for x in cell_samples(runs, s, timing, scen) if "lost_acked" in x]
                if smp:
                    seen = True
                    k = sum(1 for x in smp if x["lost_acked"])
                    row.append("%d in %d of %d runs" % (sum(x["lost_acked"] for x in smp),
                                                        k, len(smp)))
                else:
                    row.append("-")
            if seen:
                rows.append(row + (["-"] * len(others) if base else []))
        for scen in ("kill-daemon", "kill-restart", "freeze"):
            row = ["%s: two writable primaries" % {"kill-daemon": "daemon SIGKILL",
                                                   "kill-restart": "daemon SIGKILL+restart",
                                                   "freeze": "freeze"}[scen]]
            seen = False
            for s in systems:
                smp = [x for x in cell_samples(runs, s, timing, scen) if "two_writable" in x]
                if smp:
                    seen = True
                    k = sum(1 for x in smp if x["two_writable"])
                    mon = max(x.get("two_primaries_monitor_s") or 0 for x in smp)
                    row.append("%d of %d runs (monitor: max %.1f s)" % (k, len(smp), mon))
                else:
                    row.append("-")
            if seen:
                rows.append(row + (["-"] * len(others) if base else []))
        # footprint
        for key, label, nd in (("rss_mib", "daemon RSS MiB", 1),
                               ("pss_mib", "daemon PSS MiB", 1),
                               ("uss_mib", "daemon private (USS) MiB", 1),
                               ("cpu_s_per_min", "idle CPU s/min", 3)):
            for role in ("leader", "replica"):
                st = {}
                for s in systems:
                    vals = []
                    for x in cell_samples(runs, s, timing, "footprint"):
                        vals += [nd_.get(key) for nd_ in x["nodes"].values()
                                 if nd_.get("role") == role and nd_.get(key) is not None]
                    if vals:
                        st[s] = stat_cell(vals)
                if st:
                    add("%s, %s" % (label, role), st, nd)
        for key, label, nd in (("rps", "REST GET /primary req/s", 0),
                               ("p99_ms", "REST GET /primary p99 ms", 2)):
            st = {}
            for s in systems:
                vals = [x.get(key) for x in cell_samples(runs, s, timing, "rest")]
                if vals:
                    st[s] = stat_cell(vals)
            if st:
                add(label, st, nd)
        for r in runs:
            if r["timing"] == timing:
                notes += ["%s run %d: %s" % (r["system"], r["run"], n)
                          for n in r.get("notes") or []]
        # phase medians of the power loss failovers
        ph_rows = []
        for scen in ("power-loss", "freeze", "kill-daemon", "kill-restart", "switchover", "haproxy"):
            for s in systems:
                smp = [x for x in cell_samples(runs, s, timing, scen) if x.get("phases")]
                if not smp:
                    continue
                row = ["%s %s" % (scen, s)]
                for p in PHASES:
                    v = [x["phases"][p] for x in smp if p in x["phases"]]
                    row.append(fmt(med(v), 2) if v else "-")
                ph_rows.append(row)
        tables.append(("%s timing (ttl %d, loop_wait %d, retry_timeout %d)" % (
            timing, rigmod.TIMINGS[timing]["ttl"], rigmod.TIMINGS[timing]["loop_wait"],
            rigmod.TIMINGS[timing]["retry_timeout"]), header, rows, notes, ph_rows))
    return tables


def text_table(header, rows):
    w = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w[i]) for i, c in enumerate(header)),
             "  ".join("-" * x for x in w)]
    for r in rows:
        lines.append("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))
    return "\n".join(lines)


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


PHASE_COLORS = {"detection": "#ff7f0e", "fence intent": "#9467bd", "off confirmed": "#8c564b",
                "watchdog reset": "#7f7f7f", "leader key taken": "#d62728",
                "promoted": "#2ca02c", "first ack": "#17becf"}


def plot(sample, system, timing, path):
    """One failover as a PNG: acknowledged write ids over seconds since the fault, with a
    vertical line per phase."""
    acks = sample.get("acks") or []
    if not acks or not shutil.which("gnuplot"):
        return False
    old = sample.get("old")
    ph = sample.get("phases") or {}
    xmax = max([a[1] for a in acks] + [v for v in ph.values()] + [1.0]) + 1.0
    data_old = "\n".join("%.3f %d" % (x, i) for i, x, n in acks if n == old) or "NaN NaN"
    data_new = "\n".join("%.3f %d" % (x, i) for i, x, n in acks if n != old) or "NaN NaN"
    lines = [
        'set terminal pngcairo size 800,400 font "DejaVu Sans,9"',
        "set output '%s'" % path,
        'set title "%s, %s timing: power loss of the leader (%s), write gap %s s"'
        % (system, timing, old, fmt(sample.get("value"), 2)),
        'set xlabel "seconds since the fault"',
        'set ylabel "acknowledged write id"',
        "set xrange [-3:%.1f]" % xmax,
        "set key outside right top box font ',8'",
        "set grid xtics lc rgb '#dddddd'",
        "$old << EOD", data_old, "EOD",
        "$new << EOD", data_new, "EOD",
    ]
    plots = ["$old using 1:2 with points pt 7 ps 0.35 lc rgb '#1f77b4' title 'ack by %s (old)'"
             % old,
             "$new using 1:2 with points pt 7 ps 0.35 lc rgb '#2ca02c' title 'ack by %s'"
             % (sample.get("new") or "new leader")]
    lines.append("set arrow from 0, graph 0 to 0, graph 1 nohead lc rgb 'black' lw 1.5")
    plots.append("NaN with lines lc rgb 'black' lw 1.5 title 'fault 0.00'")
    for p in PHASES:
        if p in ph:
            c = PHASE_COLORS[p]
            lines.append("set arrow from %.3f, graph 0 to %.3f, graph 1 nohead lc rgb '%s' "
                         "dt 2 lw 1.5" % (ph[p], ph[p], c))
            plots.append("NaN with lines lc rgb '%s' dt 2 lw 1.5 title '%s %+.2f'"
                         % (c, p, ph[p]))
    lines.append("plot " + ", ".join(plots))
    r = subprocess.run(["gnuplot"], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        log("gnuplot failed for %s: %s" % (path, r.stderr[-500:]))
        return False
    return True


def versions():
    def run(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                               env=harness.clean_env())
            return (r.stdout + r.stderr).strip().split("\n")[0]
        except Exception as e:  # noqa: BLE001
            return "? (%s)" % e
    return {"pgwarden": run([rigmod.PGWARDEN_BIN, "--version"]),
            "patroni": run([rigmod.PATRONI_BIN, "--version"]),
            "PostgreSQL": run([os.path.join(rigmod.PG_BIN, "postgres"), "--version"]),
            "etcd": run([rigmod.ETCD_BIN, "--version"]),
            "haproxy": run(["haproxy", "-v"])}


def machine():
    cpu = "?"
    try:
        for ln in open("/proc/cpuinfo"):
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
        mem = [ln for ln in open("/proc/meminfo") if ln.startswith("MemTotal")][0]
        mem = "%.1f GiB" % (int(mem.split()[1]) / 1048576.0)
    except (OSError, IndexError):
        mem = "?"
    return {"cpu": cpu, "nproc": os.cpu_count(), "memory": mem,
            "kernel": os.uname().release}


def write_results(path, args, runs, tables, loads, t_start_wall, elapsed, pngs, workdir):
    ver = versions()
    mach = machine()
    L = ["# Failover benchmark: pgwarden vs Patroni 3.0.2", "",
         "Written by `bench/failover-bench.py` (see bench/README.md for what each figure "
         "means). Cells: median [min-max] n=values (one per run; for the footprint one per "
         "node), /runs when some runs gave none; ratios on the medians.", "",
         "- date: %s (%.0f min)" % (time.strftime("%Y-%m-%d %H:%M %Z",
                                                  time.localtime(t_start_wall)), elapsed / 60),
         "- command: `%s`" % " ".join([sys.argv[0]] + sys.argv[1:]),
         "- machine: %s, %s CPUs, %s, kernel %s" % (mach["cpu"], mach["nproc"], mach["memory"],
                                                   mach["kernel"]),
         "- versions: pgwarden `%s`, Patroni `%s`, PostgreSQL `%s`, etcd `%s`, HAProxy `%s`"
         % (ver["pgwarden"], ver["patroni"], ver["PostgreSQL"], ver["etcd"], ver["haproxy"]),
         "- load average (1 min, every 5 s during the run): min %s, median %s, max %s"
         % (fmt(min(loads) if loads else None, 2), fmt(med(loads), 2),
            fmt(max(loads) if loads else None, 2)),
         "- systems: %s; synchronous_mode %s; pgwarden-fast: fencing.fast_takeover_after %s;"
         " HAProxy configuration from `%s`" % (", ".join(args.systems),
                                                "off" if args.async_ else "on",
                                                args.fast_takeover_after,
                                                os.path.relpath(args.haproxy_cfg, ROOT)
                                                if args.haproxy_cfg.startswith(ROOT)
                                                else args.haproxy_cfg),
         ""]
    for title, header, rows, notes, ph_rows in tables:
        L += ["## %s" % title, "", md_table(header, rows), ""]
        if ph_rows:
            L += ["Phases (median seconds since the fault or the switchover request):", "",
                  md_table(["failover"] + list(PHASES), ph_rows), ""]
        if notes:
            L += ["Runs that needed the bench's help or did not recover:", ""]
            L += ["- " + n for n in notes] + [""]
    errs = [r for r in runs if r.get("error")]
    if errs:
        L += ["## Runs that broke off", ""]
        L += ["- %s %s run %d: %s" % (r["system"], r["timing"], r["run"], r["error"])
              for r in errs] + [""]
    if pngs:
        L += ["## Power-loss failovers", ""]
        for system, timing, p in pngs:
            L += ["![%s, %s timing](%s)" % (system, timing, os.path.basename(p)), ""]
    L += ["Raw samples (every run, every phase): `%s/results.json`; the runs' logs are "
          "kept there only with --keep or for a run that broke off." % workdir, ""]
    with open(path, "w") as f:
        f.write("\n".join(L))


# ---------------------------------------------------------------------------------------

def csv_opt(allowed, env):
    def parse(s):
        vals = [x.strip() for x in s.split(",") if x.strip()]
        bad = [v for v in vals if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError("unknown %s (known: %s)" % (
                ", ".join(bad), ", ".join(allowed)))
        return vals
    return parse


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    p.add_argument("--systems", type=csv_opt(SYSTEMS, None),
                   default=env("BENCH_SYSTEMS", ",".join(SYSTEMS)),
                   help="comma-separated, of %s (env BENCH_SYSTEMS)" % ",".join(SYSTEMS))
    p.add_argument("--timings", type=csv_opt(TIMINGS, None),
                   default=env("BENCH_TIMINGS", ",".join(TIMINGS)),
                   help="default (ttl 30, loop_wait 10, retry_timeout 10) and/or tight "
                        "(10/2/3) (env BENCH_TIMINGS)")
    p.add_argument("--scenarios", type=csv_opt(SCENARIOS, None),
                   default=env("BENCH_SCENARIOS", ",".join(SCENARIOS)),
                   help="of %s (env BENCH_SCENARIOS)" % ",".join(SCENARIOS))
    p.add_argument("--runs", type=int, default=int(env("BENCH_RUNS", "3")),
                   help="clusters per (system, timing), each runs every scenario once "
                        "(default 3, env BENCH_RUNS)")
    p.add_argument("--fast-takeover-after", type=int, default=1,
                   help="fencing.fast_takeover_after of pgwarden-fast (default 1)")
    p.add_argument("--haproxy-cfg", default=os.path.join(ROOT, "packaging", "examples",
                                                         "haproxy.cfg"),
                   help="HAProxy configuration to use (addresses substituted)")
    p.add_argument("--async", dest="async_", action="store_true",
                   help="synchronous_mode off (default: on, as the fault rig)")
    p.add_argument("--footprint-seconds", type=float, default=60.0)
    p.add_argument("--wrk-duration", type=int, default=5)
    p.add_argument("--recovery-bound", type=float, default=None,
                   help="seconds to wait for a recovery (default 60 tight, 150 default)")
    p.add_argument("--seed", type=int, default=1, help="for the pauses before each fault")
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    p.add_argument("--png-dir", default=os.path.join(ROOT, "bench"))
    p.add_argument("--workdir", default=env("PGWF_BENCH_DIR", "/tmp/pgwf-bench"))
    p.add_argument("--keep", action="store_true", help="keep every run's logs")
    p.add_argument("--merge", default=None,
                   help="a results.json of an earlier invocation: its complete runs count, "
                        "and only the (system, timing, run) cells it lacks are measured")
    a = p.parse_args(argv)
    for k in ("systems", "timings", "scenarios"):
        if isinstance(getattr(a, k), str):
            setattr(a, k, csv_opt({"systems": SYSTEMS, "timings": TIMINGS,
                                   "scenarios": SCENARIOS}[k], None)(getattr(a, k)))
    a.haproxy_cfg = os.path.abspath(a.haproxy_cfg)
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    for b in (rigmod.PGWARDEN_BIN, rigmod.PGWARDENCTL, harness.WDEMU_BIN):
        if not os.access(b, os.X_OK):
            raise SystemExit("%s missing: make && make build/release/pgwarden-wdemu" % b)
    harness.install_handlers()
    harness.become_subreaper()
    rigmod.remove_stale()
    workdir = os.path.join(a.workdir, "bench-%d-%s" % (os.getpid(),
                                                       time.strftime("%Y%m%d-%H%M%S")))
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)
    loads = LoadSampler()
    loads.start()
    t_wall, t0 = time.time(), time.monotonic()
    rng = random.Random(a.seed)
    runs = []
    log("failover bench: systems %s, timings %s, scenarios %s, %d run(s) each; work dir %s"
        % (",".join(a.systems), ",".join(a.timings), ",".join(a.scenarios), a.runs, workdir))
    interrupted = False
    if a.merge:
        with open(a.merge) as f:
            runs = [r for r in json.load(f) if not r.get("error")]
        log("merged %d complete runs from %s" % (len(runs), a.merge))
    have = {(r["system"], r["timing"], r["run"]) for r in runs}
    try:
        for timing in a.timings:
            for i in range(1, a.runs + 1):
                for system in a.systems:
                    if (system, timing, i) in have:
                        continue
                    r = one_cluster(a, system, timing, i, workdir, rng)
                    runs.append(r)
                    with open(os.path.join(workdir, "results.json"), "w") as f:
                        json.dump(runs, f)
                    if not r.get("error") and not a.keep:
                        shutil.rmtree(r["rundir"], ignore_errors=True)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up, then the figures so far")
        harness.cleanup_all()
    loads.stop()
    elapsed = time.monotonic() - t0
    tables = build_tables(runs, a.systems, a.timings)
    for title, header, rows, notes, ph_rows in tables:
        print("\n== %s\n" % title)
        print(text_table(header, rows))
        if ph_rows:
            print("\nphases (median s since the fault):\n")
            print(text_table(["failover"] + list(PHASES), ph_rows))
        for n in notes:
            print("note: " + n)
    for r in runs:
        if r.get("error"):
            print("run broke off: %s %s run %d: %s (run dir %s)" % (
                r["system"], r["timing"], r["run"], r["error"], r["rundir"]))
    # one power-loss failover per system: the median run, default timing if measured
    pngs = []
    for system in a.systems:
        for timing in sorted(a.timings, key=lambda t: t != "default"):
            smp = [x for x in cell_samples(runs, system, timing, "power-loss")
                   if x.get("value") is not None]
            if not smp:
                continue
            smp.sort(key=lambda x: x["value"])
            path = os.path.join(workdir if interrupted else a.png_dir,
                                "failover-%s.png" % system)
            if plot(smp[(len(smp) - 1) // 2], system, timing, path):
                pngs.append((system, timing, path))
            break
    if interrupted:     # the committed RESULTS.md and PNGs stay as they were
        a.results = os.path.join(workdir, "RESULTS-partial.md")
    write_results(a.results, a, runs, tables, loads.samples, t_wall, elapsed, pngs, workdir)
    log("wrote %s%s; %.0f s in all" % (a.results, "".join(", " + p for _, _, p in pngs),
                                       elapsed))
    if not a.keep and not any(r.get("error") for r in runs):
        log("raw samples: %s/results.json" % workdir)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
