"""faults.py - the fault catalogue of the campaign: a schedule drawn from the seed (plan())
and, for each kind, what apply() does to the machines and what heal() undoes.

The schedule is drawn entirely up front from random.Random(seed), in roles ("the leader",
"replica 0 or 1 in name order", "etcd member 2"), so a seed replays the same schedule; the
names the roles resolve to at run time are recorded in faults.jsonl with every parameter.
"""

import json
import os
import signal
import subprocess
import threading
import time

from harness import log

# kind -> (applies to Patroni too, "leader fault" (a BMC pause may overlap it))
KINDS = {
    "power_loss_leader": (True, True),
    "power_loss_replica": (True, False),
    "kill_daemon_leader": (True, True),
    "stop_daemon_leader": (True, True),
    "freeze_leader_short": (True, True),
    "freeze_leader_long": (True, True),
    "partition_leader_etcd": (True, True),
    "partition_leader_replicas": (True, True),
    "partition_leader_all": (True, True),
    "partition_leader_out": (True, True),
    "partition_leader_in": (True, True),
    "etcd_member_kill": (True, False),
    "etcd_quorum_loss": (True, False),
    "net_loss": (True, False),
    "net_slow": (True, False),
    "disk_full_leader": (True, True),
}
OVERLAPS = ("switchover", "bmc_pause")
PART_TABLE = "pgwf_part"
LOSS_TABLE = "pgwf_loss"
ETCD_PART_TABLE = "pgwf_etcdpart"


def plan(seed, k, ttl, loop_wait, kinds=None, overlaps=None, daemon="pgwarden"):
    """K fault specs drawn from random.Random(seed) alone."""
    import random
    rng = random.Random(seed)
    kinds = [x for x in (kinds or KINDS) if daemon == "pgwarden" or KINDS[x][0]]
    out = []
    for _ in range(k):
        kind = rng.choice(sorted(kinds))
        spec = {"kind": kind, "pre_delay": round(rng.uniform(0.0, loop_wait + 1.0), 3)}
        if kind == "freeze_leader_short":
            spec["hold"] = round(rng.uniform(1.0, 0.8 * ttl), 3)
        elif kind == "freeze_leader_long":
            spec["hold"] = round(rng.uniform(1.3 * ttl, 2.5 * ttl), 3)
        elif kind == "stop_daemon_leader":
            spec["hold"] = round(rng.uniform(1.0, 2.0 * ttl), 3)
        else:
            spec["hold"] = round(rng.uniform(3.0, 3.0 * ttl), 3)
        spec["replica_index"] = rng.randrange(2)
        if kind == "etcd_member_kill":
            spec["member"] = rng.choice(["etcd1", "etcd1", "etcd2", "etcd3"])  # etcd1: listed first
        if kind == "etcd_quorum_loss":
            spec["members"] = sorted(rng.sample(["etcd1", "etcd2", "etcd3"], 2))
            spec["how"] = rng.choice(["kill", "partition"])
        if kind in ("net_loss", "net_slow"):
            spec["on"] = rng.choice(["leader", "replica", "etcd"])
            spec["etcd_member"] = rng.choice(["etcd1", "etcd2", "etcd3"])
        if kind == "net_loss":
            spec["percent"] = rng.choice([5, 10, 20, 30, 50])
        if kind == "net_slow":
            spec["rate_kbit"] = rng.choice([32, 64, 128, 256, 512])
            spec["tbf_latency_ms"] = rng.choice([200, 500, 1000, 2000])
        # overlapping events
        ov = []
        p_sw = 1.0 if overlaps and "switchover" in overlaps else (0.0 if overlaps else 0.25)
        p_bmc = 1.0 if overlaps and "bmc_pause" in overlaps else (0.0 if overlaps else 0.3)
        r_sw, r_bmc = rng.random(), rng.random()
        sw_delay = round(rng.uniform(0.0, spec["hold"]), 3)
        sw_via = rng.choice(["rest", "ctl"])
        bmc_delay = round(rng.uniform(0.0, min(2.0, spec["hold"])), 3)
        bmc_hold = round(rng.uniform(2.0, 3.0 * ttl), 3)
        if r_sw < p_sw:
            ov.append({"kind": "switchover", "delay": sw_delay, "via": sw_via})
        if r_bmc < p_bmc and daemon == "pgwarden" and KINDS[kind][1]:
            ov.append({"kind": "bmc_pause", "delay": bmc_delay, "hold": bmc_hold})
        spec["overlaps"] = ov
        out.append(spec)
    return out


class FaultRun:
    """Applies and heals the faults of one run, writing faults.jsonl."""

    def __init__(self, rig, out):
        self.rig = rig
        self.out = out      # recorder.Jsonl
        self.t_last_heal = None

    def event(self, event, kind, target, detail):
        t = time.monotonic()
        self.out.write({"t": t, "event": event, "kind": kind, "target": target,
                        "detail": detail})
        log("%s %s %s %s" % (event, kind, target, json.dumps(detail)[:300]))
        if event == "heal":
            self.t_last_heal = t
        return t

    # -- one fault ------------------------------------------------------------------------
    def run_one(self, spec, leader_name):
        rig = self.rig
        kind = spec["kind"]
        leader = rig.node(leader_name)
        replicas = sorted((n for n in rig.nodes if n is not leader), key=lambda n: n.name)
        replica = replicas[spec["replica_index"]]
        detail = dict(spec)
        detail.pop("overlaps", None)
        undo = None
        target = leader.name
        if kind in ("power_loss_leader", "power_loss_replica"):
            node = leader if kind.endswith("leader") else replica
            target = node.name
            detail["daemon_pid"] = node.daemon_pid()
            detail["postmaster_pid"] = node.postmaster_pid()
            t = self.event("start", kind, target, detail)
            node.machine.power_off()
            node.reset_watchdog()

            def undo():
                return {"restored": rig.restore_all()}
        elif kind == "kill_daemon_leader":
            pid = leader.daemon_pid()
            detail["daemon_pid"] = pid
            detail["postmaster_pid"] = leader.postmaster_pid()
            t = self.event("start", kind, target, detail)
            os.kill(pid, signal.SIGKILL)

            def undo():
                return {"restored": rig.restore_all()}
        elif kind == "stop_daemon_leader":
            pid = leader.daemon_pid()
            detail["daemon_pid"] = pid
            detail["signal"] = "SIGSTOP"
            t = self.event("start", kind, target, detail)
            os.kill(pid, signal.SIGSTOP)

            def undo():
                try:
                    os.kill(pid, signal.SIGCONT)
                    r = "SIGCONT sent"
                except ProcessLookupError:
                    r = "daemon gone (machine reset?)"
                return {"sigcont": r, "restored": rig.restore_all()}
        elif kind.startswith("freeze_leader"):
            detail["ttl"] = rig.timing["ttl"]
            t = self.event("start", kind, target, detail)
            leader.machine.freeze(True)

            def undo():
                thawed = False
                if leader.machine.cgroup.exists():
                    try:
                        leader.machine.freeze(False)
                        thawed = True
                    except OSError:
                        pass
                return {"thawed": thawed, "was_powered": leader.machine.powered(),
                        "restored": rig.restore_all()}
        elif kind.startswith("partition_leader"):
            etcd = [m.addr for m in rig.etcd]
            peers = [n.addr for n in replicas]
            addrs, direction = {
                "partition_leader_etcd": (etcd, "both"),
                "partition_leader_replicas": (peers, "both"),
                "partition_leader_all": (etcd + peers, "both"),
                "partition_leader_out": (etcd + peers, "out"),
                "partition_leader_in": (etcd + peers, "in")}[kind]
            detail.update({"drop": addrs, "direction": direction, "netns": leader.machine.netns,
                           "nft_table": "inet " + PART_TABLE})
            t = self.event("start", kind, target, detail)
            leader.machine.block(PART_TABLE, addrs, direction)

            def undo():
                leader.machine.unblock(PART_TABLE)
                return {"nft_table_deleted": True, "restored": rig.restore_all()}
        elif kind == "etcd_member_kill":
            m = [e for e in rig.etcd if e.name == spec["member"]][0]
            target = m.name
            detail["pid"] = m.proc.pid if m.running() else None
            t = self.event("start", kind, target, detail)
            m.kill(signal.SIGKILL)

            def undo():
                m.start()
                return {"restarted": m.name}
        elif kind == "etcd_quorum_loss":
            ms = [e for e in rig.etcd if e.name in spec["members"]]
            target = ",".join(e.name for e in ms)
            t = self.event("start", kind, target, detail)
            if spec["how"] == "kill":
                for m in ms:
                    m.kill(signal.SIGKILL)
            else:
                others = [a for a in ([e.addr for e in rig.etcd] + [n.addr for n in rig.nodes])]
                for m in ms:
                    m.machine.block(ETCD_PART_TABLE, [a for a in others if a != m.addr])

            def undo():
                if spec["how"] == "kill":
                    for m in ms:
                        m.start()
                else:
                    for m in ms:
                        m.machine.unblock(ETCD_PART_TABLE)
                return {"how": spec["how"], "members": [m.name for m in ms]}
        elif kind in ("net_loss", "net_slow"):
            if spec["on"] == "leader":
                mach = leader.machine
            elif spec["on"] == "replica":
                mach = replica.machine
            else:
                mach = [e for e in rig.etcd if e.name == spec["etcd_member"]][0].machine
            target = mach.name
            if kind == "net_loss":
                detail.update({"nft": "numgen random mod 100 < %d drop, both directions on eth0"
                               % spec["percent"]})
                t = self.event("start", kind, target, detail)
                mach.random_loss(LOSS_TABLE, spec["percent"])

                def undo():
                    mach.unblock(LOSS_TABLE)
                    return {"nft_table_deleted": True}
            else:
                qd = ["tbf", "rate", "%dkbit" % spec["rate_kbit"], "burst", "16kbit",
                      "latency", "%dms" % spec["tbf_latency_ms"]]
                detail["tc"] = "tc qdisc add dev eth0 root " + " ".join(qd)
                t = self.event("start", kind, target, detail)
                mach.tc("qdisc", "add", "dev", "eth0", "root", *qd)

                def undo():
                    mach.tc("qdisc", "del", "dev", "eth0", "root", check=False)
                    return {"tc": "root qdisc deleted"}
        elif kind == "disk_full_leader":
            path = os.path.join(leader.disk, "fill")
            detail["fill_file"] = path
            t = self.event("start", kind, target, detail)
            filled = fill_disk(path)

            def undo():
                try:
                    os.unlink(path)
                except OSError:
                    pass
                return {"removed": path, "filled_bytes": filled,
                        "restored": rig.restore_all()}
        else:
            raise ValueError("unknown fault kind %s" % kind)

        # overlapping events, each in a thread of its own
        threads = []
        for ov in spec["overlaps"]:
            th = threading.Thread(target=self._overlap, args=(ov, t, leader, replicas),
                                  daemon=True)
            th.start()
            threads.append(th)
        end = t + spec["hold"]
        while time.monotonic() < end:
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))
        for th in threads:
            th.join(120)
        healed = undo()
        self.event("heal", kind, target, healed)
        return target

    def _overlap(self, ov, t_start, leader, replicas):
        rig = self.rig
        time.sleep(max(0.0, t_start + ov["delay"] - time.monotonic()))
        if ov["kind"] == "bmc_pause":
            b = leader.bmc
            self.event("start", "bmc_pause", leader.name,
                       {"bmc": b.address, "ipmi_sim_pid": b.sim_pid, "hold": ov["hold"]})
            b.pause()
            time.sleep(ov["hold"])
            b.resume()
            self.event("heal", "bmc_pause", leader.name, {"resumed": True})
        elif ov["kind"] == "switchover":
            cand = ""
            if rig.sync:
                try:
                    k = json.loads(rig.etcd_get("sync") or "{}")
                    cand = (k.get("sync_standby") or "").split(",")[0]
                except Exception:  # noqa: BLE001
                    cand = ""
            detail = {"via": ov["via"], "leader": leader.name, "candidate": cand or None}
            self.event("start", "switchover", leader.name, detail)
            if ov["via"] == "ctl" and rig.daemon == "pgwarden":
                args = ["switchover", "--leader", leader.name, "--force"]
                if cand:
                    args += ["--candidate", cand]
                try:
                    rc, out = rig.ctl(*args, timeout=90)
                except subprocess.TimeoutExpired:
                    rc, out = None, "timeout after 90 s"
                res = {"rc": rc, "output": out.strip()[-400:]}
            else:
                body = {"leader": leader.name}
                if cand:
                    body["candidate"] = cand
                res = {"via_node": None}
                for n in [leader] + replicas:
                    st, js = harness_post(n, "/switchover", body)
                    if st is not None:
                        res = {"via_node": n.name, "status": st, "body": str(js)[:400]}
                        break
                else:
                    res["status"] = None
            self.event("heal", "switchover", leader.name, res)


def harness_post(node, path, body):
    import rig as rigmod
    return rigmod.http("POST", "http://%s:%d%s" % (node.addr, rigmod.REST_PORT, path), body,
                       timeout=30, auth=(rigmod.REST_USER, rigmod.REST_PASSWORD))


def fill_disk(path):
    """Write zeros to path until ENOSPC; bytes written."""
    n = 0
    chunk = b"\0" * (1 << 20)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:
        return 0
    try:
        for size in (1 << 20, 1 << 12, 1):
            c = chunk[:size]
            while True:
                try:
                    w = os.write(fd, c)
                except OSError:
                    break
                if w <= 0:
                    break
                n += w
    finally:
        os.close(fd)
    return n
