#!/usr/bin/python3
"""run.py - the fault campaign of issue 13 on real processes.

    tests/faults/run.py --runs N --seed S [--daemon pgwarden|patroni] [--timing tight|default]
                        [--async] [--faults kind,kind] [--k K] [--keep]

Runs N runs with seeds S, S+1, ...: each boots a fresh three-node cluster on its own
machines (rig.py), starts the client and the monitor (recorder.py), applies K faults drawn
from the seed (faults.py) one after the other (wait until healthy, start, hold, heal, wait
for recovery), writes final.json, tears everything down and calls tests/faults/checker.py
(check(rundir), report(rundir)) when it exists.  Exit status 1 when any run had a violation
(or did not recover, or could not boot); its seed and run directory are printed.  Run as
root with /usr/bin/python3.
"""

import argparse
import json
import os
import shutil
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rig as rigmod  # noqa: E402
import faults as faultmod  # noqa: E402
import recorder  # noqa: E402
import harness  # noqa: E402  (rig put tests/integration on the path)
from harness import log  # noqa: E402

RUNS_ROOT = os.environ.get("PGWF_RUNS", "/tmp/pgwf-runs")
RECOVERY_BOUND = {"tight": 60.0, "default": 150.0}


def wait_recovery(rig, fr, bound, t_from):
    """(t_recovered, primary, streaming) of the first sample with one primary and all other
    nodes streaming from it, or (None, None, streaming) after `bound` s from t_from.  Every
    2 s, machines found off are powered on again and dead daemons restarted (recorded as
    heal events of kind "restore")."""
    last_restore = time.monotonic()
    streaming = {}
    while True:
        s = time.monotonic()
        prim, streaming = rig.recovered()
        if prim:
            return s, prim, streaming
        if s - t_from > bound:
            return None, None, streaming
        if time.monotonic() - last_restore > 2.0:
            last_restore = time.monotonic()
            try:
                done = rig.restore_all()
            except Exception as e:  # noqa: BLE001
                done = {"error": str(e)}
            if done:
                fr.event("heal", "restore", ",".join(sorted(done)), {"restored": done})
        time.sleep(0.2)


def final_ids(rig, primary):
    if primary is None:
        return []
    rows = rig.node(primary).sql("SELECT id FROM faults_writes ORDER BY id", timeout=30)
    return [r[0] for r in rows]


def run_checker(rundir):
    """(violations or None when there is no checker, report text)."""
    if not os.path.exists(os.path.join(HERE, "checker.py")):
        return None, "no checker"
    import importlib
    checker = importlib.import_module("checker")
    res = checker.check(rundir)
    text = checker.report(rundir)
    if isinstance(res, dict):
        v = res.get("violations", [])
    elif isinstance(res, bool):
        v = [] if res else ["check failed"]
    elif res is None:
        v = []
    else:
        v = list(res)
    return v, text if isinstance(text, str) else ""


def one_run(seed, a):
    t_begin = time.monotonic()
    timing = dict(rigmod.TIMINGS[a.timing])
    kinds = [k for k in (a.faults or []) if k not in faultmod.OVERLAPS] or None
    overlaps = [k for k in (a.faults or []) if k in faultmod.OVERLAPS] or None
    for k in kinds or []:
        if k not in faultmod.KINDS:
            raise SystemExit("unknown fault kind %s (known: %s)" % (
                k, ", ".join(list(faultmod.KINDS) + list(faultmod.OVERLAPS))))
    specs = faultmod.plan(seed, a.k, timing["ttl"], timing["loop_wait"], kinds, overlaps,
                          a.daemon)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rundir = os.path.join(RUNS_ROOT, "pgwf-%d-%s-s%d-%s" % (os.getpid(), a.daemon, seed, stamp))
    os.makedirs(RUNS_ROOT, exist_ok=True)
    bound = a.recovery_bound or RECOVERY_BOUND[a.timing]
    summary = {"seed": seed, "rundir": rundir, "faults": [s["kind"] for s in specs],
               "violations": None, "recovered": None, "error": None}
    rig = None
    client = monitor = fout = None
    try:
        rig = rigmod.Rig(rundir, a.daemon, a.timing, sync=not a.async_)
        t0_mono, t0_wall = time.monotonic(), time.time()
        runinfo = {
            "seed": seed, "daemon": a.daemon, "sync": rig.sync, "fencing": rig.fencing,
            "timing": timing, "recovery_bound": bound, "t0_mono": t0_mono, "t0_wall": t0_wall,
            "nodes": {n.name: {"addr": n.addr, "pg_port": rigmod.PG_PORT,
                               "rest_port": rigmod.REST_PORT, "dir": n.dir,
                               "audit_log": n.audit_log if rig.fencing else None,
                               "pgwarden_log": n.log_path,
                               "wdemu_log": os.path.join(n.dir, "wdemu.log")
                               if rig.fencing else None,
                               "bmc_chassis_log": os.path.join(n.dir, "chassis.log")
                               if rig.fencing else None,
                               "config": n.config_path, "data_dir": n.data_dir}
                      for n in rig.nodes},
            "etcd": {m.name: {"addr": m.addr, "dir": m.dir, "log": m.log_path}
                     for m in rig.etcd},
            "pgwardenctl": rigmod.PGWARDENCTL,
            "scope": rig.scope, "namespace": "/service/",
            "fast_takeover_after": rig.fast_takeover_after if rig.fencing else None,
            "schedule": specs,
            "args": {"faults": a.faults, "k": a.k, "timing": a.timing, "async": a.async_,
                     "daemon": a.daemon, "recovery_bound": a.recovery_bound},
        }
        with open(os.path.join(rundir, "run.json"), "w") as f:
            json.dump(runinfo, f, indent=1)
        print("run seed %d: %s -> %s" % (seed, ", ".join(summary["faults"]), rundir),
              flush=True)
        fout = recorder.Jsonl(os.path.join(rundir, "faults.jsonl"))
        fr = faultmod.FaultRun(rig, fout)
        t = time.monotonic()
        rig.boot()
        summary["boot_s"] = round(time.monotonic() - t, 1)
        leader = rig.wait_healthy(120)
        rig.node(leader).sql("CREATE TABLE faults_writes (id bigint PRIMARY KEY,"
                             " t double precision)", timeout=20)
        monitor = recorder.Monitor(rig, os.path.join(rundir, "monitor.jsonl"))
        monitor.start()
        client = recorder.Client(rig, os.path.join(rundir, "client.jsonl"))
        client.start()
        time.sleep(2.0)
        per_fault = []
        t_recovered = prim = None
        streaming = {}
        stuck = False
        for i, spec in enumerate(specs):
            try:
                leader = rig.wait_healthy(max(120.0, 2 * bound))
            except AssertionError as e:
                log("not healthy before fault %d: %s" % (i + 1, str(e)[:2000]))
                stuck = True
                break
            time.sleep(spec["pre_delay"])
            leader = rig.healthy() or leader
            t_start = time.monotonic()
            target = fr.run_one(spec, leader)
            t_healed = fr.t_last_heal
            t_rec, prim, streaming = wait_recovery(rig, fr, bound, t_healed)
            per_fault.append({"kind": spec["kind"], "target": target, "t_start": t_start,
                              "t_healed": t_healed, "t_recovered": t_rec,
                              "recovery_s": round(t_rec - t_healed, 2) if t_rec else None})
            t_recovered = t_rec
            if t_rec is None:
                log("fault %d (%s): no recovery within %.0f s of the heal" % (
                    i + 1, spec["kind"], bound))
                log(rig.dump())
                break
            log("fault %d (%s): recovered %.1f s after the heal, primary %s" % (
                i + 1, spec["kind"], t_rec - t_healed, prim))
        time.sleep(2.0)   # a few writes on the final primary
        client.stop()
        monitor.stop()
        if prim is None:
            state = rig.pg_state()
            prims = [k for k, v in state.items() if v and v["primary"]]
            prim_final = prims[0] if len(prims) == 1 else None
        else:
            prim_final = prim
        try:
            ids = final_ids(rig, prim_final)
        except Exception as e:  # noqa: BLE001
            log("cannot read faults_writes on %s: %s" % (prim_final, e))
            ids = []
        final = {"t_healed": fr.t_last_heal, "t_recovered": None if stuck else t_recovered,
                 "primary": prim_final, "ids": ids, "streaming": streaming,
                 "per_fault": per_fault, "stuck_before_fault": stuck,
                 "client": {"acked": client.acked, "failed": client.failed}}
        with open(os.path.join(rundir, "final.json"), "w") as f:
            json.dump(final, f)
        summary["recovered"] = final["t_recovered"] is not None
        summary["per_fault"] = per_fault
        summary["acked"] = client.acked
        rig.stop_daemons()
        san = rig.sanitizer_reports()
        if san:
            summary["error"] = "sanitizer report in %s" % ", ".join(san)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001
        summary["error"] = "%s: %s" % (type(e).__name__, e)
        traceback.print_exc()
        if rig is not None:
            try:
                log(rig.dump())
            except Exception:  # noqa: BLE001
                pass
    finally:
        recorder.stop_all(client, monitor)
        if fout is not None:
            fout.close()
        if rig is not None:
            rig.cleanup()
            rig.remove_data()
    summary["run_s"] = round(time.monotonic() - t_begin, 1)
    if os.path.exists(os.path.join(rundir, "final.json")):
        try:
            v, text = run_checker(rundir)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            v, text = ["checker crashed: %s" % e], ""
        summary["violations"] = v
        if text:
            print(text, flush=True)
    failed = bool(summary["violations"]) or summary["error"] or not summary["recovered"]
    summary["failed"] = bool(failed)
    if not failed and not a.keep:
        shutil.rmtree(rundir, ignore_errors=True)
        summary["rundir"] = None
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--daemon", choices=("pgwarden", "patroni"), default="pgwarden")
    p.add_argument("--timing", choices=("tight", "default"), default="tight")
    p.add_argument("--async", dest="async_", action="store_true",
                   help="synchronous_mode off (default: on)")
    p.add_argument("--faults", type=lambda s: [x for x in s.split(",") if x],
                   help="kinds to draw from (default: all); 'switchover' / 'bmc_pause' "
                        "make every fault of the run overlap with that")
    p.add_argument("--k", type=int, default=3, help="faults per run (default 3)")
    p.add_argument("--recovery-bound", type=float, default=None)
    p.add_argument("--keep", action="store_true", help="keep the run dirs of passing runs")
    p.add_argument("--minutes", type=float, default=None,
                   help="start no run after this many minutes (as many runs as fit)")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    harness.install_handlers()
    harness.become_subreaper()
    rigmod.remove_stale()
    rows = []
    t_start = time.monotonic()
    for r in range(a.runs):
        if a.minutes is not None and time.monotonic() - t_start > a.minutes * 60:
            print("--minutes %g reached: %d of %d runs started" % (a.minutes, r, a.runs))
            break
        seed = a.seed + r
        s = one_run(seed, a)
        rows.append(s)
        nv = "-" if s["violations"] is None else str(len(s["violations"]))
        print("seed %d: faults %s; violations %s; recovered %s; %.0f s%s%s" % (
            s["seed"], ",".join(s["faults"]), nv, s["recovered"], s["run_s"],
            "; ERROR " + s["error"] if s["error"] else "",
            "; FAILED, run dir %s" % s["rundir"] if s["failed"] else ""), flush=True)
        for v in (s["violations"] or [])[:20]:
            print("    violation: %s" % (v,), flush=True)
    print("\n%-6s %-9s %-70s %-5s %-9s %-7s %s" % ("seed", "daemon", "faults", "viol",
                                                  "recovered", "secs", "run dir"))
    for s in rows:
        nv = "-" if s["violations"] is None else str(len(s["violations"]))
        print("%-6d %-9s %-70s %-5s %-9s %-7.0f %s" % (
            s["seed"], a.daemon, ",".join(s["faults"])[:70], nv, s["recovered"], s["run_s"],
            s["rundir"] or ""))
    kept = [s["rundir"] for s in rows if s["rundir"] and os.path.isdir(s["rundir"])]
    if kept and os.path.exists(os.path.join(HERE, "checker.py")):
        import importlib
        checker = importlib.import_module("checker")
        try:
            print("\nper fault kind (the %d run dirs kept):\n" % len(kept))
            print(checker.summary([(d, checker.check(d), checker.metrics(d)) for d in kept]))
        except Exception as e:  # noqa: BLE001
            print("summary failed: %s" % e)
    bad = [s for s in rows if s["failed"]]
    if bad:
        print("\n%d of %d runs failed: seeds %s" % (len(bad), len(rows),
                                                    " ".join(str(s["seed"]) for s in bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
