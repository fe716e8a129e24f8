#!/usr/bin/python3
"""soak.py - the "no false fence" soak: a leader that is slow but alive is never fenced.

    tests/faults/soak.py [--minutes 20] [--seed S] [--fast-takeover-after 1]
                         [--events kind,kind] [--stop-on-fence] [--keep] [--dead-hold S]
                         [--cut-hold S]
    tests/faults/soak.py --count RUNDIR      # the fence count of a kept run directory

One cluster on the fault rig (rig.py: pgwarden, fencing and watchdog required,
synchronous_mode on, timing `default`: ttl 30, loop_wait 10, retry_timeout 10) with
`fencing.fast_takeover_after` from --fast-takeover-after.  For --minutes, loads and short
hiccups drawn from the seed are applied to the machine of the *current* leader, overlapping:

    lane stress   stress-ng (--cpu 2|4 --io 2 --hdd 2 --vm 1 --vm-bytes 256M) in the
                  leader's cgroup for 30-120 s, temp files on the node's disk (a tmpfs)
    lane pgbench  pgbench (scale 10, -c 4-8) from inside the leader's cgroup for 30-90 s
                  (it vacuums and truncates pgbench_history first: the tmpfs is 512 MB),
                  a CHECKPOINT every 5-10 s meanwhile
    lane blip     one at a time, 5-20 s apart:
                  cut_replicas   the leader cut from both replicas for 2 s (--cut-hold; nft,
                                 both ways; etcd, the client and the BMCs stay reachable)
                  loss           30-50 % random loss on the leader's link for 2 s
                  isolate_short  the leader cut from everyone for threshold / 2 s
                  stop_daemon    SIGSTOP of the leader's pgwarden for 1 s (PostgreSQL runs)
                  freeze_machine cgroup freeze of the whole leader machine for 0.5 s
                  freeze_dead    (not "alive"; only when named in --events) the whole
                                 machine frozen for --dead-hold s: a fence is then expected

Network holds are timed by the kernel (nft set elements with a timeout), pauses by a
SCHED_FIFO helper, so a loaded machine does not stretch them; the measured holds are
reported.  Counted as a fence: a "fence-intent" record in any node's fencing audit log, a
power off in any BMC's chassis log, a change of the leader key (or of the primary the
monitor sees).  Exit status 0 when there was none and the cluster stayed sound (no daemon
death, no watchdog reset, recovery at the end, no sanitizer report, no checker
violation), else 1; the run directory is then kept and printed.  As root, /usr/bin/python3.
"""

import argparse
import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("PGWARDEN_BIN", os.path.join(TOP, "build", "asan", "pgwarden"))
sys.path.insert(0, HERE)
import rig as rigmod  # noqa: E402
import recorder  # noqa: E402
import checker  # noqa: E402
import harness  # noqa: E402  (rig put tests/integration on the path)
from harness import log  # noqa: E402
from run import final_ids, wait_recovery  # noqa: E402

RUNS_ROOT = os.environ.get("PGWF_RUNS", "/tmp/pgwf-runs")
RECOVERY_BOUND = 150.0          # timing default, as run.py
STRESS_BIN = "stress-ng"
PGBENCH = os.path.join(rigmod.PG_BIN, "pgbench")
PGBENCH_SCALE = 10
NET_TABLE = "pgwf_soak_net"
DEAD_HOLD = 6.0
# A replica's prober (daemon/probe.c) starts a round every threshold / 5; a frozen leader
# is silent from its first unanswered round, and etcd proves its lease unrenewed about a
# second after its last heartbeat: with a 1 s threshold the fence comes about 1.5 s into
# the freeze, so "dead" must last a few times longer than that.

LOAD_KINDS = ("stress", "pgbench")
BLIP_KINDS = ("cut_replicas", "loss", "isolate_short", "stop_daemon", "freeze_machine")
ALIVE_KINDS = LOAD_KINDS + BLIP_KINDS
DEAD_KINDS = ("freeze_dead",)


# ---------------------------------------------------------------------------------------
# the schedule
# ---------------------------------------------------------------------------------------

def plan(seed, duration, threshold, kinds=ALIVE_KINDS, dead_hold=DEAD_HOLD, cut_hold=2.0):
    """Every event of the soak, drawn from the seed alone: one random stream per lane, so
    a longer run with the same seed starts with the same events.  Times are seconds from
    the start of the soak; each lane's events follow one another, the lanes overlap."""
    out = []

    def rng(lane):
        return random.Random("pgwf-soak-%d-%s" % (seed, lane))
    if "stress" in kinds:
        r = rng("stress")
        t = r.uniform(2.0, 15.0)
        while t < duration - 10.0:
            hold = min(r.uniform(30.0, 120.0), duration - t)
            out.append({"lane": "stress", "kind": "stress", "at": round(t, 3),
                        "hold": round(hold, 1), "cpu": r.choice([2, 4]), "io": 2, "hdd": 2,
                        "hdd_bytes": "16M", "vm": 1, "vm_bytes": "256M"})
            t += hold + r.uniform(5.0, 30.0)
    if "pgbench" in kinds:
        r = rng("pgbench")
        t = r.uniform(2.0, 15.0)
        while t < duration - 10.0:
            hold = min(r.uniform(30.0, 90.0), duration - t)
            out.append({"lane": "pgbench", "kind": "pgbench", "at": round(t, 3),
                        "hold": round(hold, 1), "clients": r.randint(4, 8),
                        "checkpoint_every": [round(r.uniform(5.0, 10.0), 2)
                                             for _ in range(int(hold / 5.0) + 1)]})
            t += hold + r.uniform(5.0, 30.0)
    blips = sorted(k for k in kinds if k in BLIP_KINDS + DEAD_KINDS)
    holds = {"cut_replicas": cut_hold, "loss": 2.0, "isolate_short": threshold / 2.0,
             "stop_daemon": 1.0, "freeze_machine": 0.5, "freeze_dead": dead_hold}
    if blips:
        r = rng("blip")
        t = r.uniform(5.0, 15.0)
        while t < duration - 3.0:
            kind = r.choice(blips)
            ev = {"lane": "blip", "kind": kind, "at": round(t, 3), "hold": holds[kind]}
            if kind == "loss":
                ev["percent"] = r.randint(30, 50)
            out.append(ev)
            t += ev["hold"] + r.uniform(5.0, 20.0)
    out.sort(key=lambda e: e["at"])
    for i, e in enumerate(out):
        e["i"] = i + 1
    return out


# ---------------------------------------------------------------------------------------
# counting fences (live during the soak, and at the end, and for a kept run directory)
# ---------------------------------------------------------------------------------------

SILENCE_RE = re.compile(r"leader (\S+) answers neither on "
                        r"(?:PostgreSQL nor on REST|REST nor on PostgreSQL) \(for (-?\d+) ms\)")
POWER_OFF_EVENTS = ("off", "off-done", "reset", "soft")


class FenceCounter:
    """Reads, incrementally, every node's fencing audit log (and its rotated .N files),
    its BMC's chassis log and its daemon log.  Counts: fence-intent records (deduplicated
    by node and seq), chassis power-off requests (tests/ipmi/chassis.sh events off,
    off-done, reset, soft, whatever their result), "decision [fast-takeover]" lines, and
    keeps the longest "answers neither on REST nor on PostgreSQL (for N ms)" warning
    (logged at the start of a silence and every 5 s of it).
    nodes: run.json's "nodes" ({name: {audit_log, bmc_chassis_log, pgwarden_log}})."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.pos = {}             # path -> (offset, partial last line)
        self.intents = {}         # (node, seq) -> record
        self.power_offs = []      # {"node", "mono", "line"}
        self.decisions = []       # {"node", "line"}
        self.silences = 0         # warnings seen
        self.max_silence = None   # {"ms", "node", "leader", "line"}
        self.lock = threading.Lock()

    def _new_lines(self, path):
        off, part = self.pos.get(path, (0, b""))
        try:
            size = os.path.getsize(path)
            if size < off:                      # rotated or truncated: read it again
                off, part = 0, b""
            with open(path, "rb") as f:
                f.seek(off)
                data = f.read()
        except OSError:
            return []
        data = part + data
        lines = data.split(b"\n")
        self.pos[path] = (off + len(data) - len(part), lines[-1])
        return [ln.decode("utf-8", "replace") for ln in lines[:-1]]

    def scan(self):
        with self.lock:
            for name, nd in sorted(self.nodes.items()):
                self._scan_audit(name, nd.get("audit_log"))
                self._scan_chassis(name, nd.get("bmc_chassis_log"))
                self._scan_log(name, nd.get("pgwarden_log"))
        return self.result()

    def _scan_audit(self, name, p):
        if not p:
            return
        paths = []
        i = 1
        while os.path.exists("%s.%d" % (p, i)):
            paths.append("%s.%d" % (p, i))
            i += 1
        for fp in list(reversed(paths)) + [p]:
            for ln in self._new_lines(fp):
                try:
                    r = json.loads(ln)
                except ValueError:
                    continue
                if isinstance(r, dict) and r.get("action") == "fence-intent":
                    r["_node"] = name
                    self.intents.setdefault((name, r.get("seq"), r.get("wall")), r)

    def _scan_chassis(self, name, p):
        if not p:
            return
        for ln in self._new_lines(p):
            parts = ln.split()
            if len(parts) >= 4 and parts[2] in POWER_OFF_EVENTS:
                self.power_offs.append({"node": name, "mono": parts[0], "line": ln.strip()})

    def _scan_log(self, name, p):
        if not p:
            return
        for ln in self._new_lines(p):
            if "decision [fast-takeover]" in ln:
                self.decisions.append({"node": name, "line": ln.strip()})
            m = SILENCE_RE.search(ln)
            if m:
                self.silences += 1
                ms = int(m.group(2))
                if self.max_silence is None or ms > self.max_silence["ms"]:
                    self.max_silence = {"ms": ms, "node": name, "leader": m.group(1),
                                        "line": ln.strip()}

    def result(self):
        return {"fence_intents": len(self.intents), "bmc_power_offs": len(self.power_offs),
                "fast_takeover_decisions": len(self.decisions),
                "silence_warnings": self.silences, "max_silence": self.max_silence,
                "intents": sorted(self.intents.values(), key=lambda r: str(r.get("wall"))),
                "power_offs": list(self.power_offs), "decisions": list(self.decisions)}


def count_fences(rundir):
    """The FenceCounter result of a (kept) run directory, from its run.json."""
    with open(os.path.join(rundir, "run.json")) as f:
        meta = json.load(f)
    return FenceCounter(meta["nodes"]).scan()


def fence_total(counts, leader_changes):
    """One fence shows as a fence-intent, a BMC power off and a leader change; any of
    them alone is one too: the number of fences is the largest of the three counts."""
    return max(counts["fence_intents"], counts["bmc_power_offs"], leader_changes)


# ---------------------------------------------------------------------------------------
# timed pauses: a SCHED_FIFO helper, so that a loaded machine does not stretch the hold
# ---------------------------------------------------------------------------------------

HELPER = r"""
import json, os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
what, target, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
def act(on):
    if what == "freeze":
        fd = os.open(target, os.O_WRONLY)
        try:
            os.write(fd, b"1" if on else b"0")
        finally:
            os.close(fd)
    else:
        os.kill(int(target), signal.SIGSTOP if on else signal.SIGCONT)
t0 = time.monotonic(); act(True); t1 = time.monotonic()
time.sleep(max(0.0, t1 + hold - time.monotonic()))
t2 = time.monotonic(); err = None
try:
    act(False)
except OSError as e:
    err = str(e)
t3 = time.monotonic()
print(json.dumps({"t_on": [t0, t1], "t_off": [t2, t3], "held": t3 - t0, "err": err}))
"""

_CHRT = None


def _chrt():
    global _CHRT
    if _CHRT is None:
        try:
            ok = subprocess.run(["chrt", "-f", "50", "true"], capture_output=True,
                                timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        _CHRT = ["chrt", "-f", "50"] if ok else []
    return _CHRT


def timed_pause(what, target, hold):
    p = subprocess.run(_chrt() + ["/usr/bin/python3", "-c", HELPER, what, str(target),
                                  "%.3f" % hold], capture_output=True, text=True,
                       timeout=hold + 60, env=harness.clean_env(), stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError("pause helper (%s %s): exit %d: %s" % (what, target, p.returncode,
                                                                  p.stderr.strip()[-300:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------
# the soak
# ---------------------------------------------------------------------------------------

class Soak:
    def __init__(self, a):
        self.a = a
        self.seed = a.seed
        self.threshold = a.fast_takeover_after
        self.duration = a.minutes * 60.0
        self.kinds = a.events
        self.schedule = plan(self.seed, self.duration, self.threshold, self.kinds,
                             a.dead_hold, a.cut_hold)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        os.makedirs(RUNS_ROOT, exist_ok=True)
        self.rundir = os.path.join(RUNS_ROOT, "pgwf-%d-soak-s%d-%s" % (os.getpid(), self.seed,
                                                                       stamp))
        self.rig = None
        self.out = None
        self.stop_evt = threading.Event()      # lanes: start nothing more
        self.watch_stop = threading.Event()
        self.lock = threading.Lock()
        self.applied = collections.Counter()
        self.skipped = collections.Counter()
        self.checkpoints = collections.Counter()
        self.holds = collections.defaultdict(list)   # kind -> measured holds (s)
        self.active = []              # [t_start, t_end or None, kind, target]
        self.leader = None
        self.leader_changes = []      # (t, from, to)
        self.problems = []            # the cluster broke / the soak could not do its job
        self.procs = []
        self.disk_max = {}
        self.counter = None
        self.seen_fences = 0
        self.fence_notes = []
        self.t0 = None
        self.t0_wall = None

    # -- records --------------------------------------------------------------------------
    def event(self, event, kind, target, detail):
        """faults.jsonl, as the fault campaign writes it (the checker reads it)."""
        t = time.monotonic()
        self.out.write({"t": t, "event": event, "kind": kind, "target": target,
                        "detail": detail})
        log("soak %s %s %s %s" % (event, kind, target, json.dumps(detail)[:200]))
        return t

    def problem(self, text):
        with self.lock:
            if text not in self.problems:
                self.problems.append(text)
        log("PROBLEM: " + text)

    def rel(self, t):
        return "%+.1f s" % (t - self.t0) if (t is not None and self.t0) else "?"

    # -- run ------------------------------------------------------------------------------
    def run(self):
        a = self.a
        t_begin = time.monotonic()
        print("soak: seed %d, %.1f min, fast_takeover_after %d s, events %s, pgwarden %s"
              % (self.seed, a.minutes, self.threshold, ",".join(self.kinds),
                 rigmod.PGWARDEN_BIN), flush=True)
        print("soak: replay with --seed %d --minutes %g --fast-takeover-after %d%s%s%s; "
              "run dir %s"
              % (self.seed, a.minutes, self.threshold,
                 " --events " + ",".join(self.kinds) if tuple(self.kinds) != ALIVE_KINDS
                 else "", " --cut-hold %g" % a.cut_hold if a.cut_hold != 2.0 else "",
                 " --dead-hold %g" % a.dead_hold if "freeze_dead" in self.kinds else "",
                 self.rundir), flush=True)
        client = monitor = None
        threads = []
        watcher = None
        final = None
        interrupted = False
        try:
            rig = self.rig = rigmod.Rig(self.rundir, "pgwarden", "default", sync=True)
            rig.fast_takeover_after = self.threshold
            self.write_runinfo()
            self.out = recorder.Jsonl(os.path.join(self.rundir, "faults.jsonl"))
            rig.boot()
            leader = rig.wait_healthy(120)
            rig.node(leader).sql("CREATE TABLE faults_writes (id bigint PRIMARY KEY,"
                                 " t double precision)", timeout=20)
            if "pgbench" in self.kinds:
                self.pgbench_init(rig.node(leader))
            monitor = recorder.Monitor(rig, os.path.join(self.rundir, "monitor.jsonl"))
            monitor.start()
            client = recorder.Client(rig, os.path.join(self.rundir, "client.jsonl"))
            client.start()
            self.leader = rig.wait_healthy(120)
            self.counter = FenceCounter(self.runinfo["nodes"])
            self.counter.scan()
            self.t0, self.t0_wall = time.monotonic(), time.time()
            self.event("start", "soak", self.leader, {"seed": self.seed,
                                                      "duration_s": self.duration})
            watcher = threading.Thread(target=self.watch, name="soak-watch", daemon=True)
            watcher.start()
            for lane in ("stress", "pgbench", "blip"):
                evs = [e for e in self.schedule if e["lane"] == lane]
                if evs:
                    th = threading.Thread(target=self.lane, args=(evs,), name="soak-" + lane,
                                          daemon=True)
                    th.start()
                    threads.append(th)
            end = self.t0 + self.duration
            while time.monotonic() < end and not self.stop_evt.is_set():
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            self.stop_lanes(threads)
            t_end = self.event("heal", "soak", self.leader, {"applied": dict(self.applied)})
            # the end: one primary, both others streaming from it (machines found off are
            # powered on again, dead daemons restarted: run.py's wait_recovery)
            t_rec, prim, streaming = wait_recovery(rig, self, RECOVERY_BOUND, t_end)
            if t_rec is None:
                self.problem("no recovery within %.0f s of the end: %s"
                             % (RECOVERY_BOUND, rig.dump()[-3000:]))
            else:
                log("healthy again %.1f s after the end, primary %s" % (t_rec - t_end, prim))
            time.sleep(2.0)
            self.watch_stop.set()
            watcher.join(30)
            client.stop()
            monitor.stop()
            try:
                ids = final_ids(rig, prim) if prim else []
            except Exception as e:  # noqa: BLE001
                self.problem("cannot read faults_writes on %s: %s" % (prim, e))
                ids = []
            final = {"t_healed": t_end, "t_recovered": t_rec, "primary": prim, "ids": ids,
                     "streaming": streaming, "per_fault": [],
                     "client": {"acked": client.acked, "failed": client.failed}}
            with open(os.path.join(self.rundir, "final.json"), "w") as f:
                json.dump(final, f)
            rig.stop_daemons()
            san = rig.sanitizer_reports()
            if san:
                self.problem("sanitizer report in the log of %s" % ", ".join(san))
        except KeyboardInterrupt:
            interrupted = True
            self.problem("interrupted")
            raise
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            self.problem("%s: %s" % (type(e).__name__, e))
            if self.rig is not None and self.rig.net is not None:
                try:
                    log(self.rig.dump())
                except Exception:  # noqa: BLE001
                    pass
        finally:
            self.stop_lanes(threads)
            self.watch_stop.set()
            recorder.stop_all(client, monitor)
            if self.rig is not None:
                self.rig.cleanup()
                self.rig.remove_data()
            if self.out is not None:
                self.out.close()
            if interrupted:
                print("soak interrupted: run dir kept: %s" % self.rundir, flush=True)
        res = self.results(final, time.monotonic() - t_begin)
        with open(os.path.join(self.rundir, "soak.json"), "w") as f:
            json.dump(res, f, indent=1, default=str)
        print(self.report(res), flush=True)
        if res["passed"] and not a.keep:
            shutil.rmtree(self.rundir, ignore_errors=True)
            res["rundir"] = None
        elif not res["passed"]:
            print("soak FAILED: run dir kept: %s" % self.rundir, flush=True)
        return res

    def write_runinfo(self):
        rig = self.rig
        self.runinfo = {
            "seed": self.seed, "daemon": "pgwarden", "sync": rig.sync, "fencing": rig.fencing,
            "timing": rig.timing, "recovery_bound": RECOVERY_BOUND,
            "t0_mono": time.monotonic(), "t0_wall": time.time(),
            "nodes": {n.name: {"addr": n.addr, "pg_port": rigmod.PG_PORT,
                               "rest_port": rigmod.REST_PORT, "dir": n.dir,
                               "audit_log": n.audit_log, "pgwarden_log": n.log_path,
                               "wdemu_log": os.path.join(n.dir, "wdemu.log"),
                               "bmc_chassis_log": os.path.join(n.dir, "chassis.log"),
                               "config": n.config_path, "data_dir": n.data_dir}
                      for n in rig.nodes},
            "etcd": {m.name: {"addr": m.addr, "dir": m.dir, "log": m.log_path}
                     for m in rig.etcd},
            "pgwardenctl": rigmod.PGWARDENCTL, "scope": rig.scope, "namespace": "/service/",
            "fast_takeover_after": self.threshold, "schedule": self.schedule,
            "soak": {"minutes": self.a.minutes, "events": list(self.kinds),
                     "dead_hold": self.a.dead_hold, "cut_hold": self.a.cut_hold,
                     "stop_on_fence": self.a.stop_on_fence},
        }
        with open(os.path.join(self.rundir, "run.json"), "w") as f:
            json.dump(self.runinfo, f, indent=1)

    def stop_lanes(self, threads):
        self.stop_evt.set()
        for th in threads:
            th.join(self.a.dead_hold + 60)
            if th.is_alive():
                self.problem("lane %s did not stop" % th.name)
        with self.lock:
            procs = list(self.procs)
        for p in procs:
            self.kill_proc(p)

    # -- the lanes ------------------------------------------------------------------------
    def current_leader(self):
        name = self.rig.leader_name()
        if not name:
            return None
        n = self.rig.node(name)
        if not n.machine.powered() or not n.daemon_alive() or n.machine.frozen():
            return None
        return n

    def lane(self, events):
        for ev in events:
            at = self.t0 + ev["at"]
            while not self.stop_evt.is_set() and time.monotonic() < at:
                self.stop_evt.wait(min(1.0, max(0.0, at - time.monotonic())))
            if self.stop_evt.is_set():
                return
            node = self.current_leader()
            if node is None:
                self.skipped[ev["kind"]] += 1
                log("soak: event %d (%s) skipped: no live leader" % (ev["i"], ev["kind"]))
                continue
            try:
                getattr(self, "do_" + ev["kind"])(ev, node)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                self.problem("event %d (%s on %s) failed: %s: %s"
                             % (ev["i"], ev["kind"], node.name, type(e).__name__, e))

    def remaining(self):
        return self.t0 + self.duration - time.monotonic()

    def start_active(self, kind, target):
        rec = [time.monotonic(), None, kind, target]
        with self.lock:
            self.active.append(rec)
        return rec

    def track(self, p):
        with self.lock:
            self.procs.append(p)

    def kill_proc(self, p):
        """SIGTERM, then SIGKILL, to the process group of a load we started (its own
        session: stress-ng and its workers, pgbench)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if p.poll() is not None:
                break
            try:
                os.killpg(p.pid, sig)
            except OSError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        with self.lock:
            if p in self.procs and p.poll() is not None:
                self.procs.remove(p)

    def wait_proc(self, p, timeout):
        """True when p ended by itself within timeout; else it is killed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.stop_evt.is_set():
            try:
                p.wait(0.5)
                break
            except subprocess.TimeoutExpired:
                pass
        ended = p.poll() is not None
        self.kill_proc(p)
        return ended

    def popen_on(self, node, cmd, logname, **kw):
        if self.stop_evt.is_set() or not node.machine.powered():
            return None     # never "power on" a machine by starting a load in it
        p = node.machine.popen(cmd, os.path.join(node.dir, logname), **kw)
        self.track(p)
        return p

    def pgbench_init(self, node):
        log("pgbench -i -s %d on %s" % (PGBENCH_SCALE, node.name))
        env = harness.clean_env({"PGPASSWORD": rigmod.SUPERUSER_PASSWORD})
        p = node.machine.popen([PGBENCH, "-i", "-q", "-s", str(PGBENCH_SCALE), "-h", node.addr,
                                "-p", str(rigmod.PG_PORT), "-U", rigmod.SUPERUSER, "postgres"],
                               os.path.join(node.dir, "pgbench.log"), env=env)
        try:
            rc = p.wait(600)
        except subprocess.TimeoutExpired:
            self.kill_proc(p)
            raise RuntimeError("pgbench -i did not finish in 600 s")
        if rc != 0:
            raise RuntimeError("pgbench -i: exit %d: %s" % (
                rc, harness.tail(os.path.join(node.dir, "pgbench.log"), 5)))
        node.sql("CHECKPOINT", timeout=60)

    def do_stress(self, ev, node):
        hold = int(min(ev["hold"], self.remaining()))
        if hold < 5:
            return
        d = os.path.join(node.disk, "stress-%d" % ev["i"])
        os.makedirs(d, exist_ok=True)
        cmd = [STRESS_BIN, "--cpu", str(ev["cpu"]), "--io", str(ev["io"]),
               "--hdd", str(ev["hdd"]), "--hdd-bytes", ev["hdd_bytes"],
               "--vm", str(ev["vm"]), "--vm-bytes", ev["vm_bytes"],
               "--timeout", "%ds" % hold, "--temp-path", d, "--metrics-brief"]
        rec = self.start_active("stress", node.name)
        p = self.popen_on(node, cmd, "stress.log", cwd=d)
        if p is None:
            return
        self.event("start", "stress", node.name, {"i": ev["i"], "hold": hold,
                                                  "cmd": " ".join(cmd), "pid": p.pid})
        self.applied["stress"] += 1
        ended = self.wait_proc(p, hold + 30)
        rec[1] = time.monotonic()
        self.holds["stress"].append(rec[1] - rec[0])
        self.event("heal", "stress", node.name, {"i": ev["i"], "rc": p.returncode,
                                                 "ended_by_itself": ended})
        shutil.rmtree(d, ignore_errors=True)

    def do_pgbench(self, ev, node):
        hold = int(min(ev["hold"], self.remaining()))
        if hold < 5:
            return
        env = harness.clean_env({"PGPASSWORD": rigmod.SUPERUSER_PASSWORD,
                                 "PGCONNECT_TIMEOUT": "5"})
        cmd = [PGBENCH, "-h", node.addr, "-p", str(rigmod.PG_PORT), "-U", rigmod.SUPERUSER,
               "-c", str(ev["clients"]), "-j", "2", "-T", str(hold), "-P", "10", "postgres"]
        rec = self.start_active("pgbench", node.name)
        p = self.popen_on(node, cmd, "pgbench.log", env=env)
        if p is None:
            return
        self.event("start", "pgbench", node.name, {"i": ev["i"], "hold": hold,
                                                   "clients": ev["clients"], "pid": p.pid})
        self.applied["pgbench"] += 1
        k = 0
        end = time.monotonic() + hold + 30
        while p.poll() is None and not self.stop_evt.is_set() and time.monotonic() < end:
            nxt = time.monotonic() + ev["checkpoint_every"][k % len(ev["checkpoint_every"])]
            k += 1
            while p.poll() is None and not self.stop_evt.is_set() and time.monotonic() < nxt:
                time.sleep(0.2)
            if p.poll() is not None or self.stop_evt.is_set():
                break
            try:
                node.sql("CHECKPOINT", timeout=30)
                self.checkpoints["ok"] += 1
            except Exception as e:  # noqa: BLE001
                self.checkpoints["failed"] += 1
                log("CHECKPOINT on %s failed: %s" % (node.name, str(e)[:200]))
        ended = self.wait_proc(p, max(0.0, end - time.monotonic()))
        rec[1] = time.monotonic()
        self.holds["pgbench"].append(rec[1] - rec[0])
        self.event("heal", "pgbench", node.name, {"i": ev["i"], "rc": p.returncode,
                                                  "ended_by_itself": ended,
                                                  "checkpoints": k})

    def _timed_drop(self, ev, node, addrs, percent=None):
        """nft in the leader's namespace: drop to and from addrs (a random percent of it
        with percent) through set elements the kernel expires after the hold."""
        ms = int(round(ev["hold"] * 1000))
        m = node.machine
        cond = "" if percent is None else " numgen random mod 100 < %d" % percent
        script = ("table inet %s {\n"
                  "  set peers { type ipv4_addr; flags timeout; }\n"
                  "  chain input { type filter hook input priority -10; policy accept;"
                  " ip saddr @peers%s drop; }\n"
                  "  chain output { type filter hook output priority -10; policy accept;"
                  " ip daddr @peers%s drop; }\n"
                  "}\n"
                  "add element inet %s peers { %s }\n"
                  % (NET_TABLE, cond, cond, NET_TABLE,
                     ", ".join("%s timeout %dms" % (x, ms) for x in addrs)))
        m.unblock(NET_TABLE)
        detail = {"i": ev["i"], "hold": ev["hold"], "drop": addrs, "percent": percent,
                  "nft_table": "inet " + NET_TABLE}
        rec = self.start_active(ev["kind"], node.name)
        t_a = time.monotonic()
        m.nft(script)
        t_b = time.monotonic()
        detail["nft_s"] = round(t_b - t_a, 3)
        self.event("start", ev["kind"], node.name, detail)
        self.applied[ev["kind"]] += 1
        # the kernel drops the elements hold s after the insertion, within [t_a, t_b]
        time.sleep(max(0.0, t_b + ev["hold"] + 0.3 - time.monotonic()))
        rec[1] = t_b + ev["hold"]
        self.holds[ev["kind"]].append(rec[1] - t_a)
        m.unblock(NET_TABLE)
        self.event("heal", ev["kind"], node.name, {"i": ev["i"], "nft_table_deleted": True,
                                                   "max_hold_s": round(rec[1] - t_a, 3)})

    def _others(self, node):
        return [n.addr for n in self.rig.nodes if n is not node]

    def do_cut_replicas(self, ev, node):
        self._timed_drop(ev, node, self._others(node))

    def do_isolate_short(self, ev, node):
        self._timed_drop(ev, node, self._others(node) + [e.addr for e in self.rig.etcd] +
                         [self.rig.net.gw])

    def do_loss(self, ev, node):
        self._timed_drop(ev, node, self._others(node) + [e.addr for e in self.rig.etcd] +
                         [self.rig.net.gw], percent=ev["percent"])

    def _pause(self, ev, node, what, target):
        rec = self.start_active(ev["kind"], node.name)
        t = self.event("start", ev["kind"], node.name, {"i": ev["i"], "hold": ev["hold"],
                                                        what: target})
        self.applied[ev["kind"]] += 1
        r = timed_pause("freeze" if what == "cgroup" else "stop", target, ev["hold"])
        rec[0], rec[1] = r["t_on"][0], r["t_off"][1]
        self.holds[ev["kind"]].append(r["held"])
        r["lag_s"] = round(r["t_on"][0] - t, 3)
        self.event("heal", ev["kind"], node.name, dict(r, i=ev["i"]))
        if r.get("err"):
            log("soak: %s undo: %s" % (ev["kind"], r["err"]))

    def do_stop_daemon(self, ev, node):
        pid = node.daemon_pid()
        if pid is None:
            self.skipped[ev["kind"]] += 1
            return
        self._pause(ev, node, "daemon_pid", pid)

    def do_freeze_machine(self, ev, node):
        self._pause(ev, node, "cgroup", os.path.join(node.machine.cgroup.path, "cgroup.freeze"))

    do_freeze_dead = do_freeze_machine

    # -- watching -------------------------------------------------------------------------
    def watch(self):
        """Every 0.5 s the leader key; every 2 s the fence counter, dead daemons, machines
        off; every 5 s the disks.  Without --stop-on-fence, a machine off for 10 s is
        powered on again (unfenced) and a dead daemon restarted (rig.restore_all)."""
        rig = self.rig
        last_scan = last_disk = last_restore = 0.0
        dead_since = {}
        off_since = {}
        reported = set()
        while not self.watch_stop.is_set():
            now = time.monotonic()
            name = rig.leader_name()
            if name and name != self.leader:
                if self.leader is not None:
                    self.leader_changes.append((now, self.leader, name))
                    self.problem("leader change at %s: %s -> %s"
                                 % (self.rel(now), self.leader, name))
                    if self.a.stop_on_fence:
                        self.stop_evt.set()
                self.leader = name
            if now - last_scan >= 2.0:
                last_scan = now
                res = self.counter.scan()
                n = max(res["fence_intents"], res["bmc_power_offs"])
                if n > self.seen_fences:
                    self.seen_fences = n
                    log("FENCE seen at %s: %d fence-intent record(s), %d BMC power off(s)"
                        % (self.rel(now), res["fence_intents"], res["bmc_power_offs"]))
                    if self.a.stop_on_fence:
                        self.stop_evt.set()
                for nd in rig.nodes:
                    nd.reap()
                    powered = nd.machine.powered()
                    if powered and not nd.daemon_alive():
                        dead_since.setdefault(nd.name, now)
                        key = ("daemon", nd.name, nd.starts)
                        if now - dead_since[nd.name] >= 2.0 and key not in reported:
                            reported.add(key)
                            self.problem("%s: daemon exited while its machine is on (%s)"
                                         % (nd.name, harness.tail(nd.log_path, 3)))
                    else:
                        dead_since.pop(nd.name, None)
                    if not powered:
                        off_since.setdefault(nd.name, now)
                    else:
                        off_since.pop(nd.name, None)
                if not self.a.stop_on_fence and (dead_since or off_since) and \
                        now - last_restore >= 5.0 and \
                        all(now - t >= 10.0 for t in list(dead_since.values()) +
                            list(off_since.values())):
                    last_restore = now
                    try:
                        done = rig.restore_all()
                    except Exception as e:  # noqa: BLE001
                        done = {"error": str(e)}
                    if done:
                        self.event("heal", "restore", ",".join(sorted(done)),
                                   {"restored": done})
            if now - last_disk >= 5.0:
                last_disk = now
                for nd in rig.nodes:
                    try:
                        st = os.statvfs(nd.disk)
                        used = 100.0 * (1 - st.f_bavail / float(st.f_blocks))
                    except (OSError, ZeroDivisionError):
                        continue
                    self.disk_max[nd.name] = max(self.disk_max.get(nd.name, 0.0), used)
            self.watch_stop.wait(0.5)

    # -- the verdict ----------------------------------------------------------------------
    def results(self, final, run_s):
        res = {"seed": self.seed, "minutes": self.a.minutes, "run_s": round(run_s, 1),
               "fast_takeover_after": self.threshold, "events": list(self.kinds),
               "rundir": self.rundir, "applied": dict(self.applied),
               "skipped": dict(self.skipped), "checkpoints": dict(self.checkpoints),
               "max_hold_s": {k: round(max(v), 3) for k, v in self.holds.items() if v},
               "leader_changes": [(round(t - (self.t0 or t), 1), a, b)
                                  for t, a, b in self.leader_changes],
               "problems": list(self.problems), "disk_max_pct": {
                   k: round(v, 1) for k, v in self.disk_max.items()},
               "soak_s": None, "primary_changes": None, "client": None,
               "violations": None}
        if self.t0:
            res["soak_s"] = round(min(self.duration, max(0.0, (final or {}).get(
                "t_healed", time.monotonic()) - self.t0)), 1)
        counter = self.counter or (FenceCounter(self.runinfo["nodes"])
                                   if getattr(self, "runinfo", None) else None)
        counts = counter.scan() if counter else FenceCounter({}).scan()
        res["counts"] = counts
        evidence = []
        run = None
        if os.path.exists(os.path.join(self.rundir, "final.json")):
            try:
                run = checker.load(self.rundir)
                res["violations"] = [list(v) for v in checker.check(run)]
                t0 = self.t0 or run.t0_mono
                pc = checker.primary_changes(run)
                res["primary_changes"] = [(round(t - t0, 1), n) for t, n in pc[1:]]
                acks = [c for c in run.acks if t0 <= c["r"]]
                gaps = checker.write_gaps(run)
                gaps = [(lo, hi) for lo, hi in gaps if hi >= t0]
                g = max(gaps, key=lambda x: x[1] - x[0]) if gaps else None
                res["client"] = {
                    "acked": len(acks),
                    "failed": sum(1 for c in run.client if not c.get("ok") and c["s"] >= t0),
                    "longest_gap_s": round(g[1] - g[0], 2) if g else None,
                    "longest_gap_at": round(g[0] - t0, 1) if g else None,
                    "during": self.active_at(g[0], g[1]) if g else []}
                evidence = self.evidence(run, counts)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                res["violations"] = [["INPUT", "checker failed: %s: %s"
                                      % (type(e).__name__, e)]]
        res["evidence"] = evidence
        n_pc = len(res["primary_changes"] or [])
        res["fences"] = fence_total(counts, max(len(self.leader_changes), n_pc))
        res["passed"] = (res["fences"] == 0 and counts["fast_takeover_decisions"] == 0 and
                         not self.problems and not res["violations"] and
                         res["violations"] is not None)
        return res

    def active_at(self, lo, hi):
        with self.lock:
            return sorted({"%s@%s" % (k, tg) for s, e, k, tg in self.active
                           if s <= hi and (e is None or e >= lo)})

    def evidence(self, run, counts):
        """For every fence-intent: the record, what the fencer logged in the 60 s before,
        and the soak events active then."""
        out = []
        for r in counts["intents"][:5]:
            node = r["_node"]
            w = checker._iso_wall(r.get("wall"))
            lines = []
            for ln in run.logs.get(node, []):
                if w is None or ln.wall is None or not (w - 60 <= ln.wall <= w + 2):
                    continue
                if re.search(r"answers neither|fast-takeover|fencing|silent|took the leader",
                             ln.msg):
                    lines.append(ln.raw)
            mono = r.get("mono") if isinstance(r.get("mono"), (int, float)) else None
            out.append({"node": node, "record": {k: v for k, v in r.items()
                                                 if not k.startswith("_")},
                        "log": lines[-15:],
                        "active": self.active_at(mono - 30, mono) if mono else []})
        return out

    def report(self, res):
        c = res["counts"]
        ms = c["max_silence"]
        cl = res["client"] or {}
        kinds = [k for k in self.kinds]
        L = ["", "==== soak seed %d: %s ====" % (res["seed"], "PASS" if res["passed"]
                                                  else "FAIL"),
             "duration: %s s of load (planned %.0f s), run %.0f s in all, "
             "fast_takeover_after %d s, timing default (ttl 30)"
             % (res["soak_s"], self.duration, res["run_s"], self.threshold),
             "events applied: " + ", ".join("%s %d" % (k, self.applied.get(k, 0))
                                            for k in kinds)
             + "; CHECKPOINTs %d (failed %d)" % (self.checkpoints.get("ok", 0),
                                                 self.checkpoints.get("failed", 0))
             + ("; skipped %s" % json.dumps(res["skipped"]) if res["skipped"] else ""),
             "measured holds (max, s): " + ", ".join(
                 "%s %.2f" % (k, v) for k, v in sorted(res["max_hold_s"].items())),
             "FENCES: %d (fence-intent records %d, BMC power offs %d, leader changes %d "
             "(etcd key), primary changes %s (monitor)); fast-takeover decisions %d"
             % (res["fences"], c["fence_intents"], c["bmc_power_offs"],
                len(res["leader_changes"]), len(res["primary_changes"])
                if res["primary_changes"] is not None else "?",
                c["fast_takeover_decisions"]),
             "longest leader silence logged: %s" % (
                 "%d ms (%s about %s; %d warnings)" % (ms["ms"], ms["node"], ms["leader"],
                                                       c["silence_warnings"])
                 if ms else "none (no \"answers neither\" warning)"),
             "client: %s acked, %s failed, longest gap between acks %s s at %s s%s"
             % (cl.get("acked"), cl.get("failed"), cl.get("longest_gap_s"),
                cl.get("longest_gap_at"),
                " (during %s)" % ", ".join(cl["during"]) if cl.get("during") else ""),
             "leader tmpfs use (max %%): %s" % json.dumps(res["disk_max_pct"]),
             "checker: %s" % ("not run" if res["violations"] is None else
                              "no violation" if not res["violations"] else
                              "; ".join("%s %s" % (v[0], v[1][:300])
                                        for v in res["violations"][:5]))]
        for lc in res["leader_changes"]:
            L.append("leader change at %+.1f s: %s -> %s" % tuple(lc))
        for r in c["power_offs"][:5]:
            L.append("BMC power off: %s: %s" % (r["node"], r["line"]))
        for d in c["decisions"][:5]:
            L.append("decision: %s: %s" % (d["node"], d["line"][:250]))
        for e in res["evidence"]:
            L.append("fence-intent by %s: %s" % (e["node"], json.dumps(e["record"])[:400]))
            L.append("  soak events active in the 30 s before: %s" % ", ".join(e["active"]))
            for ln in e["log"]:
                L.append("  | " + ln[:220])
        for p in res["problems"][:10]:
            L.append("problem: " + p[:600])
        return "\n".join(L)


# ---------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=None, help="default: drawn, and printed")
    p.add_argument("--fast-takeover-after", type=int, default=1,
                   help="fencing.fast_takeover_after, seconds (default 1)")
    p.add_argument("--events", type=lambda s: tuple(x for x in s.split(",") if x),
                   default=ALIVE_KINDS,
                   help="kinds to draw from (default: %s); freeze_dead is a fault that is "
                        "not alive, only drawn when named" % ",".join(ALIVE_KINDS))
    p.add_argument("--dead-hold", type=float, default=DEAD_HOLD,
                   help="freeze_dead: how long the leader machine stays frozen (s)")
    p.add_argument("--cut-hold", type=float, default=2.0,
                   help="cut_replicas: how long the leader is cut from the replicas (s); "
                        "etcd stays reachable, so the leader keeps its lease")
    p.add_argument("--stop-on-fence", action="store_true",
                   help="end the soak at the first fence or leader change")
    p.add_argument("--keep", action="store_true", help="keep the run dir of a passing run")
    p.add_argument("--count", metavar="RUNDIR",
                   help="print the fence count of a kept run directory and exit")
    a = p.parse_args(argv)
    for k in a.events:
        if k not in ALIVE_KINDS + DEAD_KINDS:
            p.error("unknown event kind %s (known: %s)" % (k, ", ".join(ALIVE_KINDS +
                                                                         DEAD_KINDS)))
    if a.fast_takeover_after < 1:
        p.error("--fast-takeover-after must be >= 1 (fast takeover off otherwise)")
    if a.seed is None:
        a.seed = int.from_bytes(os.urandom(3), "big")
    return a


def preflight(a):
    why = harness.preflight()
    if why:
        return why
    if "stress" in a.events and shutil.which(STRESS_BIN) is None:
        return "stress-ng is missing (scripts/install-deps.sh soak)"
    if "pgbench" in a.events and not os.access(PGBENCH, os.X_OK):
        return "%s is missing" % PGBENCH
    if not os.access(rigmod.PGWARDEN_BIN, os.X_OK):
        return "%s is missing (make asan)" % rigmod.PGWARDEN_BIN
    return None


def main(argv=None):
    a = parse_args(argv)
    if a.count:
        c = count_fences(a.count)
        print(json.dumps({k: v for k, v in c.items() if k not in ("intents",)}, indent=1))
        return 1 if max(c["fence_intents"], c["bmc_power_offs"]) else 0
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    why = preflight(a)
    if why:
        raise SystemExit("soak: " + why)
    harness.install_handlers()
    harness.become_subreaper()
    rigmod.remove_stale()
    res = Soak(a).run()
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
