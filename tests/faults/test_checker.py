"""Tests of tests/faults/checker.py on synthetic run directories: each bug the checker is
named after must be flagged, and clean histories (a normal failover, windows that
intersect without proving anything) must not.  No root, no real processes except
pgwardenctl (when it is built) to verify audit chains.

    /usr/bin/python3 -m pytest tests/faults/test_checker.py
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

CTL = next((c for c in checker.PGWARDENCTL_DEFAULTS if os.access(c, os.X_OK)), "")
HAVE_CTL = bool(CTL)

T0_MONO = 5000.0
T0_WALL = 1796550000.0  # 2026-12-06
ZERO = "0" * 64


class Synth:
    """A run directory written the way the rig writes one; times are seconds from t0."""

    def __init__(self, d, sync=True, fencing=True, daemon="pgwarden", bound=30.0,
                 t0=(T0_MONO, T0_WALL)):
        self.dir = str(d)
        self.t0m, self.t0w = t0
        self.sync, self.fencing, self.daemon, self.bound = sync, fencing, daemon, bound
        self.nodes = ["node1", "node2", "node3"]
        self.faults, self.client, self.monitor = [], [], []
        self.logs = {n: [] for n in self.nodes}
        self.audit = {n: [] for n in self.nodes}
        self.wdemu = {n: [] for n in self.nodes}
        self.bmc = {n: [] for n in self.nodes}
        self.final = {"t_healed": None, "t_recovered": None, "primary": None, "ids": [],
                      "streaming": {}}
        self.next_id = 1

    # -- building --
    def fault(self, t, event, kind, target, **detail):
        self.faults.append({"t": self.t0m + t, "event": event, "kind": kind,
                            "target": target, "detail": detail})

    def sample(self, node, t, primary, pm, tl=1, dur=0.004):
        self.monitor.append({"node": node, "s": self.t0m + t, "r": self.t0m + t + dur,
                             "primary": primary, "pm_start": pm if primary is not None else None,
                             "tl": tl if primary is not None else None})

    def samples(self, node, t1, t2, primary, pm, tl=1, step=0.05):
        t = t1
        while t < t2 - 1e-9:
            self.sample(node, t, primary, pm, tl)
            t += step

    def ack(self, node, t, dur=0.003, ok=True, err=None):
        i = self.next_id
        self.next_id += 1
        self.client.append({"id": i, "s": self.t0m + t, "r": self.t0m + t + dur, "ok": ok,
                            "node": node if ok else None, "err": err})
        return i

    def acks(self, node, t1, t2, step=0.1):
        t, ids = t1, []
        while t < t2 - 1e-9:
            ids.append(self.ack(node, t))
            t += step
        return ids

    def log(self, node, t, msg, level="INFO"):
        w = self.t0w + t
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(w))
        self.logs[node].append("%s.%03d %s %s: %s" % (stamp, int(round((w % 1) * 1000)) % 1000,
                                                   node, level, msg))

    def rec(self, node, t, action, target=None, result=None, reason=None, bmc=None):
        """An audit record as fencing/audit.c writes it (format and hash chain)."""
        recs = self.audit[node]
        seq = len(recs) + 1
        prev = recs[-1][1] if recs else ZERO
        w = self.t0w + t
        wall = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(w)) + ".%03dZ" % (
            int(round((w % 1) * 1000)) % 1000)
        mono = "%.3f" % (self.t0m + t)
        j = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
        canon = ('{"seq":%d,"wall":"%s","mono":%s,"cluster":"pgwf","actor":%s,"target":%s,'
                 '"bmc":%s,"action":%s,"result":%s,"reason":%s,"lease":7,"timeline":1,'
                 '"prev":"%s"}' % (seq, wall, mono, j(node), j(target), j(bmc), j(action),
                                   j(result), j(reason), prev))
        h = hashlib.sha256(canon.encode()).hexdigest()
        recs.append((canon[:-1] + ',"hash":"%s"}' % h, h))

    def fence(self, fencer, t_intent, t_result, target="node1", bmc=True):
        self.rec(fencer, t_intent, "fence-intent", target, "started",
                 "leader key of lease 7 lost without a release")
        self.log(fencer, t_intent + 0.001, "fencing %s: chassis power off through BMC x" % target,
                 "WARNING")
        if bmc:  # the target's BMC: power already off (it lost power), then status off
            self.chassis(target, t_intent + 0.2, "off", "already-off", "procs=0")
            self.chassis(target, (t_intent + t_result) / 2, "status", "off")
        self.rec(fencer, t_result, "fence-result", target, "off-confirmed", "chassis off")
        self.log(fencer, t_result + 0.01, "fencing %s: power off confirmed by BMC x (off)"
                 % target)

    def chassis(self, node, t, kind, result, extra=""):
        """A line of tests/ipmi/chassis.sh's log: MONO EPOCHREALTIME kind result k=v..."""
        self.bmc[node].append("%.9f %.6f %s %s %s" % (self.t0m + t, self.t0w + t, kind, result,
                                                      extra))

    def wd_fired(self, node, t):
        self.wdemu[node].append("FIRED mono=%.6f last_ping=%.6f timeout=5"
                                % (self.t0m + t, self.t0m + t - 5))

    def recovered(self, t_healed, t_recovered, primary, streaming=None):
        self.final.update({"t_healed": self.t0m + t_healed,
                           "t_recovered": None if t_recovered is None else self.t0m + t_recovered,
                           "primary": primary,
                           "ids": [c["id"] for c in self.client if c["ok"]],
                           "streaming": streaming if streaming is not None else
                           {n: n != primary for n in self.nodes}})

    # -- writing --
    def node_paths(self, n):
        d = os.path.join(self.dir, n)
        return {"addr": "10.99.0.%d" % (self.nodes.index(n) + 2), "pg_port": 5432,
                "rest_port": 8008, "dir": d, "audit_log": os.path.join(d, "fencing.log"),
                "pgwarden_log": os.path.join(d, "pgwarden.log"),
                "wdemu_log": os.path.join(d, "wdemu.log"),
                "bmc_chassis_log": os.path.join(d, "chassis.log"),
                "config": os.path.join(d, "pgwarden.yml")}

    def write(self, skip=()):
        os.makedirs(self.dir, exist_ok=True)
        run = {"seed": 4242, "daemon": self.daemon, "sync": self.sync, "fencing": self.fencing,
               "timing": {"ttl": 10, "loop_wait": 2, "retry_timeout": 3},
               "recovery_bound": self.bound, "t0_mono": self.t0m, "t0_wall": self.t0w,
               "nodes": {n: self.node_paths(n) for n in self.nodes},
               "etcd": {}, "pgwardenctl": CTL}
        files = {"run.json": json.dumps(run), "final.json": json.dumps(self.final),
                 "faults.jsonl": "".join(json.dumps(f) + "\n" for f in self.faults),
                 "client.jsonl": "".join(json.dumps(c) + "\n" for c in self.client),
                 "monitor.jsonl": "".join(json.dumps(m) + "\n" for m in self.monitor)}
        for name, text in files.items():
            if name not in skip:
                with open(os.path.join(self.dir, name), "w") as f:
                    f.write(text)
        for n in self.nodes:
            p = self.node_paths(n)
            os.makedirs(p["dir"], exist_ok=True)
            with open(p["pgwarden_log"], "w") as f:
                f.write("=== rig: start #1 of %s at mono %.3f ===\n" % (n, self.t0m))
                f.write("".join(ln + "\n" for ln in self.logs[n]))
            if self.audit[n]:
                with open(p["audit_log"], "w") as f:
                    f.write("".join(ln + "\n" for ln, _ in self.audit[n]))
            if self.bmc[n]:
                with open(p["bmc_chassis_log"], "w") as f:
                    f.write("".join(ln.rstrip() + "\n" for ln in self.bmc[n]))
            with open(p["wdemu_log"], "w") as f:
                f.write("READY mono=%.6f socket=x cgroup=y nowayout=0 pid=1\n" % self.t0m)
                f.write("".join(ln + "\n" for ln in self.wdemu[n]))
        return self.dir


def names(viol):
    return sorted({v.name for v in viol})


def only(viol, name):
    return [v for v in viol if v.name == name]


def healthy_start(s, until=10.0):
    """node1 bootstraps and leads until `until`; node2 and node3 stream from it."""
    s.log("node1", 0.1, "decision [bootstrap] bootstrap: no cluster in etcd and an empty data "
          "directory: bootstrapping a new cluster", "WARNING")
    s.log("node1", 1.0, "bootstrapped cluster pgwf with system identifier 1")
    s.samples("node1", 0.2, 0.9, False, "P1")
    s.samples("node1", 0.9, until, True, "P1")
    for n in ("node2", "node3"):
        s.samples(n, 2.0, until, False, "P%s" % n[-1])
    return s.acks("node1", 1.0, until - 0.05)


def failover(tmp_path, fence=True, release=False, **kw):
    """The leader node1 loses power at 10; node2 fences it (14..15), takes the key at 15.2
    and promotes (same postmaster, now primary); node1 comes back as a replica at 25."""
    s = Synth(tmp_path, **kw)
    healthy_start(s)
    s.fault(10.0, "start", "power_loss_leader", "node1")
    s.samples("node1", 10.0, 25.0, None, None)
    s.samples("node3", 10.0, 40.0, False, "P3")
    s.samples("node2", 10.0, 15.5, False, "P2")
    if release:
        s.log("node1", 9.96, "released the leader key")
    s.chassis("node1", 5.0, "status", "on")
    if fence:
        s.fence("node2", 14.0, 15.0)
    s.log("node2", 15.2, "took the leader key: promoting")
    s.log("node2", 15.5, "promoted: now primary on timeline 2")
    if fence:
        s.rec("node2", 15.51, "promote", "node1", "ok", "promoted after the confirmed fence")
    s.log("node2", 18.0, "decision [leader-healthy] leader_duties: holding the leader key")
    s.samples("node2", 15.55, 40.0, True, "P2", tl=2)
    s.acks("node2", 15.6, 40.0)
    s.fault(20.0, "heal", "power_loss_leader", "node1")
    if fence:
        s.chassis("node1", 20.0, "on", "requested")  # the rig's unfence
    s.log("node1", 24.0, "decision [rewind] rewind: old primary rejoining", "WARNING")
    s.samples("node1", 25.0, 40.0, False, "P1b", tl=2)
    s.recovered(20.0, 26.0, "node2")
    return s


# --- clean histories ---------------------------------------------------------------------

def test_clean_failover_is_not_flagged(tmp_path):
    s = failover(tmp_path)
    d = s.write()
    assert checker.check(d) == []
    n, _ = checker.possible_overlaps(checker.load(d))
    assert n == 0


def test_clean_switchover_by_release_is_not_flagged(tmp_path):
    # no fence at all: the old leader released the key (the release rule)
    s = failover(tmp_path, fence=False, release=True)
    assert checker.check(s.write()) == []


def test_intersecting_windows_are_a_figure_not_a_violation(tmp_path):
    s = failover(tmp_path)
    # node1's last primary answer and node2's first overlap in time, nothing more
    s.sample("node1", 9.99, True, "P1", dur=0.05)
    s.sample("node2", 10.01, True, "P2", tl=2, dur=0.05)
    d = s.write()
    assert only(checker.check(d), "S1") == []
    n, t = checker.possible_overlaps(checker.load(d))
    assert n >= 1 and t > 0


def test_a_b_a_acks_without_postmaster_continuity_are_not_flagged(tmp_path):
    s = Synth(tmp_path)
    healthy_start(s, until=5.0)
    s.samples("node1", 5.0, 9.0, None, None)
    s.ack("node1", 6.0)
    s.ack("node2", 6.5)
    s.ack("node1", 7.0)
    # node1 answers again with ANOTHER postmaster: it may have restarted in between
    s.samples("node1", 9.0, 9.5, True, "P1-restarted")
    s.recovered(0.0, 1.0, "node1")
    d = s.write()
    assert only(checker.check(d), "S1") == []


# --- S1 ------------------------------------------------------------------------------------

def test_s1_thawed_old_primary_proves_overlap(tmp_path):
    s = failover(tmp_path)
    # node1 was frozen, not powered off: it answers as primary with the same postmaster
    s.sample("node1", 20.0, True, "P1")
    v = only(checker.check(s.write()), "S1")
    assert v and "node1 and node2 both primary" in v[0].message, v


def test_s1_from_acks_a_b_a_with_one_postmaster(tmp_path):
    s = Synth(tmp_path)
    healthy_start(s, until=5.0)
    # node1 seen as a replica at 5 (postmaster P1x), then not answering, then primary with
    # the same postmaster at 8: its acks at 6 and 7 were that postmaster's, primary from 6
    s.sample("node1", 5.0, False, "P1x")
    s.samples("node1", 5.05, 8.0, None, None)
    s.sample("node1", 8.0, True, "P1x")
    s.ack("node1", 6.0)
    s.ack("node2", 6.5)
    s.ack("node1", 7.0)
    s.recovered(0.0, 1.0, "node1")
    v = only(checker.check(s.write()), "S1")
    assert v and "node2 answered as primary inside it" in v[0].message \
        and "ack of id" in v[0].message, v


def test_s1_certain_intervals_that_intersect(tmp_path):
    # wide windows: no single answer lies inside the other's certain interval, yet node1
    # was primary over [1.0, 2.0] and node2 over [1.5, 2.5]
    s = Synth(tmp_path)
    s.sample("node1", 0.5, True, "PA", dur=0.5)
    s.sample("node1", 2.0, True, "PA", dur=0.6)
    s.sample("node2", 0.9, True, "PB", dur=0.6)
    s.sample("node2", 2.5, True, "PB", dur=0.5)
    s.recovered(3.0, 3.5, "node1")
    v = only(checker.check(s.write()), "S1")
    assert v and "both primary throughout" in v[0].message, v


def test_s1_not_primary_sample_breaks_continuity(tmp_path):
    s = Synth(tmp_path)
    s.sample("node1", 1.0, True, "PA")
    s.sample("node1", 2.0, False, "PA")
    s.sample("node1", 3.0, True, "PA")
    s.sample("node2", 2.5, True, "PB")
    s.recovered(3.0, 3.5, "node1")
    assert only(checker.check(s.write()), "S1") == []


# --- S2 ------------------------------------------------------------------------------------

def test_s2_lost_sync_commit(tmp_path):
    s = failover(tmp_path)
    lost = s.client[50]["id"]
    s.final["ids"].remove(lost)
    v = only(checker.check(s.write()), "S2")
    assert v and "%d (acked by node1" % lost in v[0].message, v


def test_s2_async_loss_is_a_figure(tmp_path):
    s = failover(tmp_path, sync=False)
    s.final["ids"].remove(s.client[50]["id"])
    d = s.write()
    assert checker.check(d) == []
    assert len(checker.lost_acked(checker.load(d))) == 1
    assert sum(m["lost_acked"] for m in checker.metrics(d)) == 0  # acked before the fault


# --- S3 ------------------------------------------------------------------------------------

def test_s3_promotion_before_the_fence_result(tmp_path):
    s = failover(tmp_path, fence=False)
    s.fence("node2", 14.0, 15.3)  # the result comes after the take at 15.2
    v = only(checker.check(s.write()), "S3")
    assert v and "BEFORE the fence of node1 was confirmed" in v[0].message, v


def test_s3_promotion_with_no_fence_at_all(tmp_path):
    s = failover(tmp_path, fence=False)
    v = only(checker.check(s.write()), "S3")
    assert v and "no fence of node1 at all" in v[0].message, v


def test_s3_promotion_after_a_failed_fence(tmp_path):
    s = failover(tmp_path, fence=False)
    s.rec("node2", 14.0, "fence-intent", "node1", "started", "lost")
    s.rec("node2", 15.0, "fence-result", "node1", "failed", "BMC timeout")
    v = only(checker.check(s.write()), "S3")
    assert v and "no confirmed power off" in v[0].message, v


def test_s3_fence_by_another_member_counts(tmp_path):
    s = failover(tmp_path, fence=False)
    s.fence("node3", 14.0, 15.0)  # node3 fenced, node2 won the election
    assert checker.check(s.write()) == []


def test_s3_watchdog_guarded_leader_without_fencing(tmp_path):
    s = failover(tmp_path, fence=False, fencing=False)
    s.log("node1", 0.5, "watchdog watchdog.sock armed: timeout 5 s (ttl 10 s, safety_margin 5 s)")
    assert only(checker.check(s.write()), "S3") == []


def test_s3_unguarded_leader_without_fencing(tmp_path):
    s = failover(tmp_path, fence=False, fencing=False)
    s.log("node1", 0.5, "watchdog watchdog.sock armed: timeout 5 s (ttl 10 s, safety_margin 5 s)")
    s.log("node1", 5.0, "watchdog watchdog.sock disarmed")
    v = only(checker.check(s.write()), "S3")
    assert v and "nor did it keep an armed watchdog" in v[0].message, v


def test_s3_old_leader_back_as_replica_without_fencing(tmp_path):
    s = failover(tmp_path, fence=False, fencing=False)
    s.samples("node1", 12.0, 13.0, False, "P1c")  # back as a replica before the take
    assert only(checker.check(s.write()), "S3") == []


def test_s3_primary_without_the_key(tmp_path):
    s = failover(tmp_path)
    s.samples("node3", 30.0, 31.0, True, "P3new", tl=2)  # node3 never took the key
    v = only(checker.check(s.write()), "S3")
    assert v and "node3 answered as primary" in v[0].message, v


def test_s3_skipped_for_patroni(tmp_path):
    s = failover(tmp_path, fence=False, daemon="patroni", fencing=False)
    d = s.write()
    run = checker.load(d)
    assert checker.check(run) == []
    assert any("S3/S4 skipped" in n for n in run.notes)


def test_bootstrap_race_loser_is_not_a_leader(tmp_path):
    s = failover(tmp_path)
    # node3 also decided to bootstrap but lost the race: it never led
    s.log("node3", 0.2, "decision [bootstrap] bootstrap: no cluster in etcd", "WARNING")
    assert checker.check(s.write()) == []


# --- S4 ------------------------------------------------------------------------------------

def test_s4_result_without_intent(tmp_path):
    s = failover(tmp_path, fence=False)
    s.rec("node2", 15.0, "fence-result", "node1", "off-confirmed", "chassis off")
    s.rec("node2", 15.51, "promote", "node1", "ok", "promoted after the confirmed fence")
    v = only(checker.check(s.write()), "S4")
    assert v and "no fence-intent recorded before it" in v[0].message, v


def test_s4_promote_record_without_fence(tmp_path):
    s = failover(tmp_path, fence=False, release=True)
    s.rec("node2", 15.51, "promote", "node1", "ok", "promoted after the confirmed fence")
    v = only(checker.check(s.write()), "S3")
    assert v and "with no confirmed fence of node1 before it" in v[0].message, v


def test_s4_promotion_after_fence_not_audited(tmp_path):
    s = failover(tmp_path, fence=False)
    s.fence("node2", 14.0, 15.0)  # and no promote record, while node2 went on
    v = only(checker.check(s.write()), "S4")
    assert v and "no promote record follows" in v[0].message, v


def test_s4_log_says_confirmed_without_record(tmp_path):
    s = failover(tmp_path)
    s.log("node3", 16.0, "fencing node2: power off confirmed by BMC y (off)")
    v = only(checker.check(s.write()), "S4")
    assert v and "no such record in its audit log" in v[0].message, v


@pytest.mark.skipif(not HAVE_CTL, reason="build/pgwardenctl not built")
def test_s4_synthetic_audit_log_verifies_with_real_pgwardenctl(tmp_path):
    s = failover(tmp_path)
    d = s.write()
    run = checker.load(d)
    assert checker.verify_audit_logs(run, CTL) == []
    assert not any("no pgwardenctl" in n for n in run.notes)


@pytest.mark.skipif(not HAVE_CTL, reason="build/pgwardenctl not built")
def test_s4_broken_chain_real_pgwardenctl(tmp_path):
    s = failover(tmp_path)
    d = s.write()
    p = s.node_paths("node2")["audit_log"]
    # one byte of a reason changed: the records still say the same, only the chain breaks
    text = open(p).read().replace('"reason":"chassis off"', '"reason":"chassis 0ff"')
    open(p, "w").write(text)
    v = checker.check(d, ctl=CTL)
    assert len(v) == 1 and v[0].name == "S4", v
    assert "pgwardenctl fence-log --verify" in v[0].message
    assert "chain BROKEN at line 2" in v[0].message and "hash mismatch" in v[0].message, v


def test_s4_broken_chain_without_pgwardenctl(tmp_path, monkeypatch):
    s = failover(tmp_path)
    d = s.write()
    p = s.node_paths("node2")["audit_log"]
    lines = open(p).read().splitlines(True)
    open(p, "w").write(lines[0] + lines[2])  # a record removed
    monkeypatch.setattr(checker, "_pgwardenctl", lambda run, ctl: None)
    v = only(checker.check(d), "S4")
    assert any("line 2: seq 3 follows seq 1" in x.message for x in v), v


def test_py_verify_agrees_with_pgwardenctl_on_intact_log(tmp_path):
    s = failover(tmp_path)
    s.write()
    assert checker.py_verify_chain(s.node_paths("node2")["audit_log"]) == ""


# --- RECOVERY ------------------------------------------------------------------------------

def test_recovery_never(tmp_path):
    s = failover(tmp_path)
    s.final["t_recovered"] = None
    v = only(checker.check(s.write()), "RECOVERY")
    assert v and "never recovered" in v[0].message, v


def test_recovery_too_slow(tmp_path):
    s = failover(tmp_path, bound=5.0)  # recovered 6 s after the heal
    v = only(checker.check(s.write()), "RECOVERY")
    assert v and "more than the bound" in v[0].message, v


def test_recovery_node_down_without_audit(tmp_path):
    s = failover(tmp_path)
    s.samples("node3", 40.0, 42.0, None, None)
    s.final["streaming"]["node3"] = False
    v = only(checker.check(s.write()), "RECOVERY")
    assert v and "node3 is down at the end" in v[0].message, v


def test_recovery_node_left_fenced_with_audit_is_a_note(tmp_path):
    s = failover(tmp_path)
    s.samples("node1", 40.0, 42.0, None, None)
    s.final["streaming"]["node1"] = False
    d = s.write()
    run = checker.load(d)
    assert only(checker.check(run), "RECOVERY") == []
    assert any("node1 left fenced" in n for n in run.notes)


# --- INPUT -----------------------------------------------------------------------------------

def test_input_truncated_last_line_is_a_note(tmp_path):
    s = failover(tmp_path)
    d = s.write()
    with open(os.path.join(d, "monitor.jsonl"), "a") as f:
        f.write('{"node": "node1", "s": 50')
    with open(os.path.join(d, "client.jsonl"), "a") as f:
        f.write('{"id": 9999, "s"')
    run = checker.load(d)
    assert checker.check(run) == []
    assert any("monitor.jsonl: truncated last line" in n for n in run.notes)
    assert any("client.jsonl: truncated last line" in n for n in run.notes)


def test_input_missing_file(tmp_path):
    s = failover(tmp_path)
    d = s.write(skip=("final.json",))
    v = checker.check(d)
    assert ["INPUT"] == names(v) and "final.json is missing" in v[0].message


def test_input_unparsable_middle_line(tmp_path):
    s = failover(tmp_path)
    d = s.write()
    p = os.path.join(d, "faults.jsonl")
    lines = open(p).read().splitlines(True)
    open(p, "w").write(lines[0] + "garbage\n" + lines[1])
    v = only(checker.check(d), "INPUT")
    assert v and "faults.jsonl line 2 is unparsable" in v[0].message


def test_input_no_run_json(tmp_path):
    s = failover(tmp_path)
    d = s.write(skip=("run.json",))
    v = checker.check(d)
    assert names(v) == ["INPUT"] and "run.json is missing" in v[0].message
    checker.report(d)  # must not crash


def test_input_record_without_times(tmp_path):
    s = failover(tmp_path)
    s.client.append({"id": 1234, "ok": True, "node": "node2"})
    v = only(checker.check(s.write()), "INPUT")
    assert v and "client.jsonl: record without s/r" in v[0].message


# --- figures, table, timeline, command line ------------------------------------------------

def test_metrics_of_a_failover(tmp_path):
    s = failover(tmp_path)
    s.wd_fired("node1", 12.0)
    m = checker.metrics(s.write())
    assert len(m) == 1
    m = m[0]
    assert m["kind"] == "power_loss_leader" and m["target"] == "node1"
    assert m["duration"] == pytest.approx(10.0)
    # last node1 ack at ~9.95 (r 9.953), first node2 ack at 15.6 (r 15.603)
    assert m["write_unavailability"] == pytest.approx(5.65, abs=0.06)
    assert m["leader_changes"] == 1 and m["fences"] == 1 and m["fence_attempts"] == 1
    assert m["watchdog_resets"] == 1 and m["lost_acked"] == 0


def test_metrics_unavailability_open_when_writes_never_resume(tmp_path):
    s = Synth(tmp_path)
    healthy_start(s)
    s.fault(10.0, "start", "etcd_quorum_loss", "etcd")
    s.fault(15.0, "heal", "etcd_quorum_loss", "etcd")
    for i in range(20):
        s.ack(None, 10.5 + i, ok=False, err="timeout")
    s.recovered(15.0, None, None)
    m = checker.metrics(s.write())[0]
    assert m["unavailable_open"] and m["write_unavailability"] > 19


def test_summary_table(tmp_path):
    res = []
    for i, bad in enumerate((False, True)):
        s = failover(tmp_path / str(i))
        if bad:
            s.sample("node1", 20.0, True, "P1")
        d = s.write()
        res.append((d, checker.check(d), checker.metrics(d)))
    table = checker.summary(res)
    assert "| fault | daemon | runs | violations |" in table
    assert "| power_loss_leader | pgwarden | 2 | 1 | 5.7 | 5.7 |" in table, table


def test_report_timeline(tmp_path):
    s = failover(tmp_path)
    s.wd_fired("node1", 12.0)
    d = s.write()
    assert "timeline (s from t0)" not in checker.report(d)  # a clean run: figures only
    text = checker.report(d, timeline=True)
    assert "seed 4242" in text
    assert "writes acked by node1 from" in text and "writes acked by node2 from" in text
    assert "start power_loss_leader node1" in text
    assert "took the leader key: promoting" in text
    assert "fence-result node1 off-confirmed" in text
    assert "FIRED mono=" in text
    assert "node2: primary (postmaster P2, timeline 2)" in text
    order = [text.index(x) for x in ("start power_loss_leader", "fence-intent",
                                     "fence-result", "took the leader key")]
    assert order == sorted(order)
    assert "+15.200" in text  # log wall clock converted to seconds from t0


def test_cli_exit_codes(tmp_path):
    me = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checker.py")
    good = failover(tmp_path / "good").write()
    s = failover(tmp_path / "bad", fence=False)
    bad = s.write()
    p = subprocess.run(["/usr/bin/python3", me, good], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "OK" in p.stdout and "timeline" not in p.stdout
    p = subprocess.run(["/usr/bin/python3", me, good, bad], capture_output=True, text=True)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "S3" in p.stdout and "timeline (s from t0):" in p.stdout
    assert "| power_loss_leader | pgwarden | 2 | 1 |" in p.stdout


def test_s3_fence_of_an_earlier_tenure_does_not_count(tmp_path):
    s = failover(tmp_path, fence=False)
    # node1 was fenced once before it bootstrapped this leadership: that says nothing of
    # the node1 that led from 0.1 to 10
    s.fence("node3", -6.0, -5.0)
    v = only(checker.check(s.write()), "S3")
    assert v and "no fence of node1 at all" in v[0].message, v


def test_s3_leader_taking_its_own_key_again_needs_no_fence(tmp_path):
    s = Synth(tmp_path)
    healthy_start(s)
    # node1's lease lapsed (etcd unreachable), it stopped, and took the key again
    s.log("node1", 10.0, "lease deadline D - S passed while running as primary: stopping "
          "PostgreSQL at once", "ERROR")
    s.samples("node1", 10.0, 12.0, False, "P1b")
    s.log("node1", 12.0, "took the leader key: promoting")
    s.samples("node1", 12.5, 14.0, True, "P1b")
    s.recovered(0.0, 1.0, "node1")
    assert checker.check(s.write()) == []


def test_s3_fence_confirmed_without_the_bmc_cutting_power(tmp_path):
    s = failover(tmp_path, fence=False)
    s.fence("node2", 14.0, 15.0, bmc=False)
    s.rec("node2", 15.51, "promote", "node1", "ok", "promoted after the confirmed fence")
    s.chassis("node1", 14.3, "status", "on")  # the BMC never said off, never cut power
    v = only(checker.check(s.write()), "S3")
    assert v and "BMC logged no power off" in v[0].message, v


def test_recovery_of_an_earlier_fault_too_slow(tmp_path):
    s = failover(tmp_path, bound=10.0)
    s.final["per_fault"] = [
        {"kind": "kill_daemon", "target": "node3", "t_start": T0_MONO + 2.0,
         "t_healed": T0_MONO + 3.0, "t_recovered": T0_MONO + 14.5},
        {"kind": "power_loss_leader", "target": "node1", "t_start": T0_MONO + 9.0,
         "t_healed": T0_MONO + 20.0, "t_recovered": T0_MONO + 26.0}]
    v = only(checker.check(s.write()), "RECOVERY")
    assert len(v) == 1 and "kill_daemon on node3: recovered 11.5 s" in v[0].message, v


def test_report_shows_timeline_of_a_failing_run(tmp_path):
    s = failover(tmp_path, fence=False)
    text = checker.report(s.write())
    assert "violations:" in text and "S3" in text and "timeline (s from t0):" in text


def test_s1_answer_overlapping_a_not_primary_answer_is_used_on_neither_side(tmp_path):
    # node1: primary at ~1.0, not primary somewhere in [2.0, 2.5], primary somewhere in
    # [2.1, 2.2]: the last may come after the not-primary instant, so nothing ties it to
    # the first; node2's answer at 1.5 proves nothing
    s = Synth(tmp_path)
    s.sample("node1", 1.0, True, "PA")
    s.sample("node1", 2.0, False, "PA", dur=0.5)
    s.sample("node1", 2.1, True, "PA", dur=0.1)
    s.sample("node2", 1.5, True, "PB")
    s.recovered(3.0, 3.5, "node1")
    assert only(checker.check(s.write()), "S1") == []


def test_input_garbage_everywhere_does_not_crash(tmp_path):
    s = failover(tmp_path)
    d = s.write()
    with open(os.path.join(d, "run.json"), "w") as f:
        json.dump({"seed": 1, "nodes": ["node1"], "etcd": 3}, f)
    with open(os.path.join(d, "final.json"), "w") as f:
        f.write("[1, 2")
    v = checker.check(d)
    assert names(v) == ["INPUT"], v
    assert any("nodes is not an object" in x.message for x in v)
    assert any("final.json is unparsable" in x.message for x in v)
    checker.report(d, timeline=True)
    checker.metrics(d)


FENCE_TOOL = next((c for c in (os.path.join(os.path.dirname(p), "pgwarden-fence")
                               for p in checker.PGWARDENCTL_DEFAULTS)
                   if os.access(c, os.X_OK)), "")


def real_append(path, action, target="node1", result=None, reason=None):
    """One record appended by pgwarden-fence, i.e. by fencing/audit.c itself (now)."""
    cmd = [FENCE_TOOL, "append", path, "--action", action, "--target", target,
           "--cluster", "pgwf", "--actor", "node2"]
    if result:
        cmd += ["--result", result]
    if reason:
        cmd += ["--reason", reason]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    with open(path) as f:
        return json.loads(f.read().splitlines()[-1])


@pytest.mark.skipif(not (HAVE_CTL and FENCE_TOOL), reason="pgwardenctl/pgwarden-fence not built")
def test_real_audit_log_clean_then_broken(tmp_path):
    """The failover with an audit log written by the daemon's own code (pgwarden-fence
    append): the checker finds the intent, the confirmed result and the promote record,
    and fence-log --verify passes; with a record removed, the chain breaks."""
    d = str(tmp_path)
    log = os.path.join(d, "node2", "fencing.log")
    os.makedirs(os.path.dirname(log))
    intent = real_append(log, "fence-intent", result="started", reason="lost")
    # the synthetic history is placed around the real records: the intent at t = 14.0
    t0m = intent["mono"] - 14.0
    t0w = checker._iso_wall(intent["wall"]) - 14.0
    time.sleep(0.05)
    res = real_append(log, "fence-result", result="off-confirmed", reason="chassis off")
    assert res["mono"] - t0m < 15.0  # before the take at 15.2
    s = failover(tmp_path, fence=False, t0=(t0m, t0w))
    s.chassis("node1", 14.01, "off", "already-off", "procs=0")
    real_append(log, "promote", result="ok", reason="promoted after the confirmed fence")
    s.write()
    assert checker.py_verify_chain(log) == ""
    run = checker.load(d)
    assert [r["action"] for r in run.audit["node2"]] == ["fence-intent", "fence-result",
                                                         "promote"]
    assert checker.check(run, ctl=CTL) == []
    assert "power off confirmed by node2" in checker.report(d)

    lines = open(log).read().splitlines(True)
    open(log, "w").write(lines[0] + lines[2])  # the fence-result removed
    v = checker.check(d, ctl=CTL)
    broken = [x for x in v if x.name == "S4" and "chain BROKEN at line 2" in x.message]
    assert broken, v
    assert checker.py_verify_chain(log).startswith("line 2:")
    assert any(x.name == "S3" for x in v), v  # and the promotion now follows no fence


def test_s2_not_judged_without_a_final_primary(tmp_path):
    s = failover(tmp_path)
    s.final.update({"primary": None, "ids": [], "t_recovered": None})
    d = s.write()
    run = checker.load(d)
    assert names(checker.check(run)) == ["RECOVERY"]
    assert any("S2 not checked" in n for n in run.notes)


def test_a_rule_that_fails_is_an_input_violation_not_a_crash(tmp_path, monkeypatch):
    s = failover(tmp_path)
    d = s.write()

    def boom(run):
        raise KeyError("x")
    monkeypatch.setattr(checker, "check_recovery", boom)
    v = checker.check(d)
    assert v == [checker.Violation("INPUT", "the checker failed evaluating RECOVERY: "
                                            "KeyError: 'x'")]


def test_patroni_log_lines_in_the_timeline(tmp_path):
    s = failover(tmp_path, fence=False, daemon="patroni", fencing=False)
    w = s.t0w + 15.25
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(w))  # Patroni: local time
    s.logs["node2"].append("%s,%03d INFO: promoted self to leader by acquiring session lock"
                           % (stamp, int(round((w % 1) * 1000)) % 1000))
    text = checker.report(s.write(), timeline=True)
    line = [ln for ln in text.splitlines() if "promoted self to leader" in ln]
    assert line and line[0].split()[0] == "+15.250", line


def test_recovery_node_powered_off_by_its_bmc_without_audit(tmp_path):
    s = failover(tmp_path)
    s.chassis("node3", 30.0, "off", "killed", "procs=9")
    v = only(checker.check(s.write()), "RECOVERY")
    assert v and "node3 is powered off by its BMC since +30.000" in v[0].message, v


def test_recovery_power_back_on_is_fine(tmp_path):
    s = failover(tmp_path)
    s.chassis("node1", 21.0, "on", "requested")
    d = s.write()
    assert checker.bmc_off_at_end(checker.load(d)) == {}
    assert checker.check(d) == []
