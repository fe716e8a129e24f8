#!/usr/bin/python3
"""The history checker of the fault campaign (issue 13): reads one run directory written by
the rig (tests/faults/rig.py, run.py) and says which safety rules the history breaks.

    check(rundir)   -> [Violation(name, message)]   S1 S2 S3 S4 RECOVERY INPUT
    metrics(rundir) -> [dict]                        one per fault: the figures
    summary([(rundir, violations, metrics)]) -> str  the issue's Markdown table
    report(rundir)  -> str                           seed, faults, merged timeline
    notes(rundir)   -> [str]                         what was skipped or could not be told

    /usr/bin/python3 tests/faults/checker.py [--timeline] [--summary] RUNDIR...

All times in the files are time.monotonic() seconds (the monitor, the client, the faults,
the audit records' "mono" and the watchdog emulator's lines share CLOCK_MONOTONIC).  The
daemons' logs carry UTC wall-clock stamps (daemon/log.c, millisecond, truncated); they are
compared with the audit records' "wall" (the same kernel clock, the same precision) and
converted to monotonic with t0_wall/t0_mono of run.json only for the timeline and for
comparisons with the monitor, which then allow CLOCK_SLACK.

What each rule proves, and its limits, is said at each check_* function.
"""

import bisect
import calendar
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple


class Violation(NamedTuple):
    name: str  # S1 S2 S3 S4 RECOVERY INPUT
    message: str


# wall-clock stamps converted to monotonic: allowed error when compared with the monitor
CLOCK_SLACK = 1.0
# a log line written right after an audit record: the same clock, millisecond truncation
WALL_RES = 0.0015
MAX_LIST = 12  # ids, samples... listed in one message

_TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PGWARDENCTL_DEFAULTS = [os.path.join(_TOP, "build", "pgwardenctl"),
                        os.path.join(_TOP, "build", "release", "pgwardenctl")]

# --- reading ------------------------------------------------------------------------------

LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:[.,](\d{1,6}))?\s+"
                    r"(?:(\S+)\s+)?(DEBUG|INFO|WARNING|ERROR|FATAL|CRITICAL):\s?(.*)$")
RIG_RE = re.compile(r"^=== rig: (.*) at mono ([0-9.]+) ===$")


class Run:
    """Everything of one run directory, read once; problems go to .errors (INPUT
    violations) and .notes (skipped truncated lines, files that are legitimately absent)."""

    def __init__(self, rundir):
        self.dir = rundir
        self.errors = []
        self.notes = []
        self.meta = self._json("run.json") or {}
        self.faults = self._jsonl("faults.jsonl")
        self.client = self._jsonl("client.jsonl")
        self.monitor = self._jsonl("monitor.jsonl")
        self.final = self._json("final.json")
        m = self.meta
        self.daemon = m.get("daemon", "pgwarden")
        self.t0_mono = _num(m.get("t0_mono"))
        self.t0_wall = _num(m.get("t0_wall"))
        if self.meta and (self.t0_mono is None or self.t0_wall is None):
            self.errors.append("run.json: t0_mono or t0_wall missing")
        if self.t0_mono is None:
            self.t0_mono = min([x.get("s", 0) for x in self.monitor[:1]] or [0])
        self.nodes = m.get("nodes") or {}
        if not isinstance(self.nodes, dict) or \
                not all(isinstance(v, dict) for v in self.nodes.values()):
            self.errors.append("run.json: nodes is not an object of objects")
            self.nodes = {}
        if self.meta and not self.nodes:
            self.errors.append("run.json: no nodes")
        self.timing = m.get("timing") or {}
        self.bound = _num(m.get("recovery_bound"))
        self.sync = bool(m.get("sync"))
        self.fencing = bool(m.get("fencing"))
        self._check_records()
        self.logs = {}  # node -> [LogLine]
        self.audit = {}  # node -> [record dict, with "_file", "_line"]
        self.wdemu = {}  # node -> [(mono, kind, text)]
        self.bmc = {}  # node -> [(mono, kind, result, text)] from the BMC's chassis log
        for name, nd in sorted(self.nodes.items()):
            self.logs[name] = self._daemon_log(name, nd.get("pgwarden_log"))
            self.audit[name] = self._audit(name, nd.get("audit_log"))
            self.wdemu[name] = self._wdemu(name, nd.get("wdemu_log"))
            self.bmc[name] = self._chassis(name, nd.get("bmc_chassis_log"))
        self.etcd = {}
        etcd = m.get("etcd") if isinstance(m.get("etcd"), dict) else {}
        for name, ed in sorted(etcd.items()):
            self.etcd[name] = self._etcd_log(name, ed.get("log") if isinstance(ed, dict) else None)
        self.takeovers = []  # check_s3: (mono, node, previous leader, why it was safe)
        self.acks = sorted((c for c in self.client if c.get("ok")), key=lambda c: c["r"])

    # -- files --
    def path(self, name):
        return name if os.path.isabs(name) else os.path.join(self.dir, name)

    def _json(self, name):
        p = self.path(name)
        try:
            with open(p) as f:
                v = json.load(f)
        except FileNotFoundError:
            self.errors.append("%s is missing" % name)
            return None
        except (OSError, ValueError) as e:
            self.errors.append("%s is unparsable: %s" % (name, e))
            return None
        if not isinstance(v, dict):
            self.errors.append("%s is not a JSON object" % name)
            return None
        return v

    def _lines(self, p, label, required=True):
        """The file's lines and whether its last line lacks its newline; None if absent."""
        try:
            with open(p, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if required:
                self.errors.append("%s is missing" % label)
            return None, False
        except OSError as e:
            self.errors.append("%s cannot be read: %s" % (label, e))
            return None, False
        text = data.decode("utf-8", "replace")
        torn = bool(text) and not text.endswith("\n")
        return text.split("\n")[:-1] if not torn else text.split("\n"), torn

    def _jsonl(self, name, required=True):
        lines, torn = self._lines(self.path(name), name, required)
        if lines is None:
            return []
        out = []
        last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
        for i, ln in enumerate(lines):
            if not ln.strip():
                continue
            try:
                v = json.loads(ln)
                if not isinstance(v, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                if i == last:
                    self.note("%s: truncated last line %d skipped (%s)"
                                      % (name, i + 1, "no newline" if torn else e))
                else:
                    self.errors.append("%s line %d is unparsable: %s" % (name, i + 1, e))
                continue
            out.append(v)
        return out

    def _check_records(self):
        """Records lacking the fields every rule needs are INPUT errors, then dropped."""
        def keep(recs, label, fields):
            good = []
            for r in recs:
                if all(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                       for k in fields):
                    good.append(r)
                else:
                    self.errors.append("%s: record without %s: %s"
                                       % (label, "/".join(fields), json.dumps(r)[:200]))
            return good
        self.faults = keep(self.faults, "faults.jsonl", ["t"])
        self.client = keep(self.client, "client.jsonl", ["s", "r"])
        self.monitor = keep(self.monitor, "monitor.jsonl", ["s", "r"])
        if self.final is not None and "t_healed" not in self.final:
            self.errors.append("final.json: no t_healed")

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def mono_of_wall(self, wall):
        if self.t0_wall is None:
            return None
        return wall - self.t0_wall + self.t0_mono

    def _daemon_log(self, node, p):
        if not p:
            self.errors.append("run.json: node %s has no pgwarden_log" % node)
            return []
        lines, _ = self._lines(self.path(p), "%s daemon log %s" % (node, p))
        out = []
        raw_left = 0
        for ln in lines or []:
            m = RIG_RE.match(ln)
            if m:
                mono = float(m.group(2))
                out.append(LogLine(node, None, mono, "RIG", m.group(1), ln))
                raw_left = 5
                continue
            m = LOG_RE.match(ln)
            if not m:
                # unstamped text right after a (re)start: why a daemon would not start
                if raw_left and ln.strip() and out:
                    raw_left -= 1
                    out.append(LogLine(node, None, out[-1].mono, "RAW", ln.strip(), ln))
                continue
            raw_left = 0
            wall = _wall(m.group(1), m.group(2), m.group(3), utc=self.daemon == "pgwarden")
            out.append(LogLine(node, wall, self.mono_of_wall(wall) if wall else None,
                               m.group(5), m.group(6), ln))
        return out

    def _audit(self, node, p):
        if not p:
            return []
        recs = []
        paths = []
        i = 1
        while os.path.exists(self.path(p) + ".%d" % i):
            paths.append(self.path(p) + ".%d" % i)
            i += 1
        paths = list(reversed(paths)) + [self.path(p)]
        for fp in paths:
            lines, torn = self._lines(fp, "audit log", required=False)
            if lines is None:
                continue
            for n, ln in enumerate(lines, 1):
                if not ln.strip():
                    continue
                try:
                    r = json.loads(ln)
                    if not isinstance(r, dict) or not isinstance(r.get("seq"), int):
                        raise ValueError("not an audit record")
                except ValueError as e:
                    # the chain check (fence-log --verify) says whether that is damage
                    self.note("%s audit log %s line %d unreadable (%s)%s"
                                      % (node, fp, n, e, ", the last" if n == len(lines) else ""))
                    continue
                r["_file"], r["_line"], r["_raw"] = fp, n, ln
                r["_wall"] = _iso_wall(r.get("wall"))
                recs.append(r)
        return recs

    def _wdemu(self, node, p):
        if not p:
            return []
        lines, _ = self._lines(self.path(p), "%s wdemu log" % node, required=False)
        if lines is None:
            self.note("%s: no watchdog emulator log" % node)
            return []
        out = []
        for ln in lines:
            parts = ln.split()
            if len(parts) < 2 or not parts[1].startswith("mono="):
                continue
            try:
                out.append((float(parts[1][5:]), parts[0], ln.strip()))
            except ValueError:
                continue
        return out

    def _chassis(self, node, p):
        """tests/ipmi/chassis.sh lines: "MONO EPOCHREALTIME kind result [k=v...]"."""
        if not p:
            return []
        lines, _ = self._lines(self.path(p), "%s BMC chassis log" % node, required=False)
        out = []
        for ln in lines or []:
            parts = ln.split()
            if len(parts) < 4:
                continue
            try:
                mono = float(parts[0]) if parts[0] != "-" else \
                    self.mono_of_wall(float(parts[1]))
            except (ValueError, TypeError):
                continue
            if mono is not None:
                out.append((mono, parts[2], parts[3], " ".join(parts[2:])))
        return out

    def _etcd_log(self, name, p):
        """(mono, text) of the etcd events worth a line in the timeline."""
        if not p:
            return []
        lines, _ = self._lines(self.path(p), "etcd log", required=False)
        out = []
        for ln in lines or []:
            m = RIG_RE.match(ln)
            if m:
                out.append((float(m.group(2)), m.group(1)))
                continue
            msg, wall = None, None
            if ln.startswith("{"):
                try:
                    o = json.loads(ln)
                except ValueError:
                    continue
                msg = str(o.get("msg", ""))
                ts = o.get("ts")
                if isinstance(ts, (int, float)):
                    wall = float(ts)
                elif isinstance(ts, str):
                    wall = _iso_wall(ts)
                extra = o.get("to") or o.get("leader") or o.get("remote-peer-id") or ""
                if extra:
                    msg += " " + str(extra)
            else:
                m2 = re.match(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)\.(\d+) \w \| (.*)$", ln)
                if m2:
                    wall = _wall(m2.group(1), m2.group(2), m2.group(3), utc=True)
                    msg = m2.group(4)
            if msg and wall and ETCD_EVENT_RE.search(msg):
                out.append((self.mono_of_wall(wall), msg))
        return out


ETCD_EVENT_RE = re.compile(r"became leader|elected leader|lost leader|leader changed|new election|"
                           r"became candidate|no leader|stopping|stopped|ready to serve|"
                           r"peer became (in)?active|lost TCP streaming",
                           re.I)


class LogLine(NamedTuple):
    node: str
    wall: float  # epoch seconds, None for the rig's own lines
    mono: float  # estimated from wall (exact for the rig's lines)
    level: str
    msg: str
    raw: str


def _num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _wall(date, hms, frac, utc=True):
    try:
        tt = time.strptime(date + " " + hms, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    base = calendar.timegm(tt) if utc else time.mktime(tt)
    return base + (int(frac) / 10 ** len(frac) if frac else 0.0)


def _iso_wall(s):
    if not isinstance(s, str):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$", s)
    if not m:
        return None
    w = _wall(m.group(1), m.group(2), m.group(3), utc=True)
    tz = m.group(4)
    if w is not None and tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        w -= sign * (hh * 3600 + mm * 60)
    return w


def load(rundir):
    """The Run of a directory, read now (a Run passes through)."""
    return rundir if isinstance(rundir, Run) else Run(rundir)


# --- S1: one writer ---------------------------------------------------------------------

class Evidence(NamedTuple):
    """Node was primary (accepted writes) at SOME instant of [s, r]."""
    node: str
    s: float
    r: float
    what: str  # "monitor" or "ack id ..."
    pm: object  # pm_start when the monitor gave it


class Guarantee(NamedTuple):
    """Node was primary at EVERY instant of [lo, hi]."""
    node: str
    pm: str
    lo: float
    hi: float
    first: Evidence
    last: Evidence


def primary_evidence(run):
    ev = []
    for m in run.monitor:
        if m.get("primary") is True and m.get("node"):
            ev.append(Evidence(m["node"], m["s"], m["r"], "monitor", m.get("pm_start")))
    for c in run.acks:
        if c.get("node"):
            ev.append(Evidence(c["node"], c["s"], c["r"], "ack of id %s" % c.get("id"), None))
    ev.sort(key=lambda e: (e.s, e.r))
    return ev


def postmaster_segments(run):
    """{node: [(pm_start, [samples])]}: maximal runs of a node's monitor samples (in the
    order of s) that carry one pm_start, not interrupted by a sample with another one.
    pg_postmaster_start_time is unique per postmaster: equal values at two samples mean
    the same postmaster process was alive from the first's r to the last's s."""
    by_node = {}
    for m in run.monitor:
        if m.get("node"):
            by_node.setdefault(m["node"], []).append(m)
    segs = {}
    for node, samples in by_node.items():
        samples.sort(key=lambda m: (m["s"], m["r"]))
        out = []
        for m in samples:
            pm = m.get("pm_start")
            if pm is None:
                continue  # no answer: says nothing of a restart
            if out and out[-1][0] == pm:
                out[-1][1].append(m)
            else:
                out.append((pm, [m]))
        segs[node] = out
    return segs


def guarantees(run):
    """Intervals in which a node was certainly primary.

    Within one postmaster's segment (alive over [r of its first sample, s of its last]),
    the evidence that it was primary is its samples with primary=true and the client's
    acknowledged commits from that node whose whole [s, r] lies inside the segment (one
    PostgreSQL per node: that commit was this postmaster's).  A postmaster that was
    primary at x1 and still alive at x2 > x1 was primary throughout [x1, x2]: PostgreSQL
    leaves recovery only forward, and returns to it only through a restart.  So for
    evidence windows [s_i, r_i] (each holding one primary instant x_i) the node was
    primary over [min r_i, max s_i].  A sample saying primary=false inside the segment
    (which that argument says cannot happen) splits it, and evidence whose window
    overlaps that sample's window is used on neither side."""
    acks_by_node = {}
    for c in run.acks:
        if c.get("node"):
            acks_by_node.setdefault(c["node"], []).append(c)
    for v in acks_by_node.values():
        v.sort(key=lambda c: c["s"])
    out = []
    for node, segs in postmaster_segments(run).items():
        acks = acks_by_node.get(node, [])
        ack_s = [c["s"] for c in acks]
        for pm, samples in segs:
            lo_alive, hi_alive = samples[0]["r"], samples[-1]["s"]
            events = [(m["s"], m["r"], m.get("primary"), Evidence(node, m["s"], m["r"],
                                                                  "monitor", pm))
                      for m in samples]
            i = bisect.bisect_left(ack_s, lo_alive)
            while i < len(acks) and acks[i]["s"] <= hi_alive:
                c = acks[i]
                if c["r"] <= hi_alive:
                    events.append((c["s"], c["r"], True,
                                   Evidence(node, c["s"], c["r"], "ack of id %s" % c.get("id"),
                                            None)))
                i += 1
            f_r = sorted(e[1] for e in events if e[2] is False)
            f_s = sorted(e[0] for e in events if e[2] is False)
            runs = {}
            for s, r, p, e in events:
                if p is not True:
                    continue
                k = bisect.bisect_left(f_r, s)  # primary=false samples wholly before
                if bisect.bisect_right(f_s, r) != k:
                    continue  # overlaps a primary=false sample: on neither side
                runs.setdefault(k, []).append(e)
            for run_ev in runs.values():
                first = min(run_ev, key=lambda e: e.r)
                last = max(run_ev, key=lambda e: e.s)
                if first.r < last.s:
                    out.append(Guarantee(node, pm, first.r, last.s, first, last))
    out.sort(key=lambda g: g.lo)
    return out


def _rel(run, t):
    return "%+.3f" % (t - run.t0_mono) if t is not None else "?"


def _ev(run, e):
    return "%s %s [%s, %s]" % (e.node, e.what, _rel(run, e.s), _rel(run, e.r))


def check_s1(run):
    """S1, proven overlaps only: (a) evidence that node B was primary at some instant of
    [s, r] (a monitor sample or an acknowledged commit) lying wholly inside an interval in
    which node A was certainly primary (see guarantees()); (b) two nodes' certain
    intervals intersecting.  A-ack, B-ack, A-ack strictly ordered is (a) when A's monitor
    samples show one postmaster around the three.  Limits: "primary" is the role the
    monitor reads (not in recovery): a frozen primary counts as one; overlaps shorter than
    the sampling that leave no window inside the other's certain interval are only
    counted by possible_overlaps()."""
    out = []
    said = set()  # one violation per pair of postmasters (an ack's is unknown: None)
    gs = guarantees(run)
    ev = primary_evidence(run)
    ev_s = [e.s for e in ev]
    for g in gs:
        inside = []
        i = bisect.bisect_left(ev_s, g.lo)
        while i < len(ev) and ev[i].s <= g.hi:
            e = ev[i]
            if e.node != g.node and e.r <= g.hi:
                inside.append(e)
            i += 1
        by_other = {}
        for e in inside:
            by_other.setdefault(e.node, []).append(e)
        for other, es in sorted(by_other.items()):
            key = frozenset([(g.node, g.pm), (other, es[0].pm)])
            if key in said:
                continue
            said.add(key)
            out.append(Violation("S1", "%s and %s both primary: %s was primary throughout "
                                 "[%s, %s] (postmaster %s; from %s to %s) and %s answered "
                                 "as primary inside it %d time(s), first: %s"
                                 % (g.node, other, g.node, _rel(run, g.lo), _rel(run, g.hi),
                                    g.pm, _ev(run, g.first), _ev(run, g.last), other, len(es),
                                    _ev(run, es[0]))))
    for i, a in enumerate(gs):
        for b in gs[i + 1:]:
            if b.lo >= a.hi:
                break
            if a.node == b.node:
                continue
            lo, hi = max(a.lo, b.lo), min(a.hi, b.hi)
            key = frozenset([(a.node, a.pm), (b.node, b.pm)])
            if hi > lo and key not in said:
                said.add(key)
                out.append(Violation("S1", "%s and %s both primary throughout [%s, %s]: "
                                     "%s certainly primary over [%s, %s], %s over [%s, %s]"
                                     % (a.node, b.node, _rel(run, lo), _rel(run, hi),
                                        a.node, _rel(run, a.lo), _rel(run, a.hi),
                                        b.node, _rel(run, b.lo), _rel(run, b.hi))))
    return out


def possible_overlaps(run):
    """(count, seconds): pairs of primary evidence of two nodes whose windows intersect
    (each could have been primary at a common instant; not a proof), and the length of
    the union of those intersections."""
    ev = primary_evidence(run)
    active = []
    n = 0
    spans = []
    for e in ev:
        active = [a for a in active if a.r >= e.s]
        for a in active:
            if a.node != e.node:
                n += 1
                spans.append((max(a.s, e.s), min(a.r, e.r)))
        active.append(e)
    total, cur = 0.0, None
    for lo, hi in sorted(spans):
        if cur and lo <= cur[1]:
            cur[1] = max(cur[1], hi)
        else:
            if cur:
                total += cur[1] - cur[0]
            cur = [lo, hi]
    if cur:
        total += cur[1] - cur[0]
    return n, total


# --- S2: no lost commit ------------------------------------------------------------------

def lost_acked(run):
    """Acknowledged writes missing from the final primary; None when it cannot be told
    (no final primary, no ids)."""
    f = run.final or {}
    if not f.get("primary") or not isinstance(f.get("ids"), list):
        return None
    have = set(f["ids"])
    return [c for c in run.acks if c.get("id") not in have]


def check_s2(run):
    """S2 (sync runs): every acknowledged id is in final.json ids.  Without a final
    primary nothing can be said (RECOVERY reports that).  Limits: a commit the leader
    acknowledged alone because no standby was available (non-strict synchronous mode,
    with a warning in its log) is flagged as well."""
    if not run.sync or run.final is None:
        return []
    lost = lost_acked(run)
    if lost is None:
        run.note("S2 not checked: final.json names no primary or no ids")
        return []
    if not lost:
        return []
    desc = ", ".join("%s (acked by %s at %s%s)"
                     % (c.get("id"), c.get("node"), _rel(run, c["r"]),
                        "; the server warned: %s" % c["warn"][:120] if c.get("warn") else "")
                     for c in lost[:MAX_LIST])
    return [Violation("S2", "%d acknowledged write(s) missing from the final primary %s: %s%s"
                      % (len(lost), run.final.get("primary"), desc,
                         ", ..." if len(lost) > MAX_LIST else ""))]


# --- S3 / S4: fence before promote, audited ----------------------------------------------

TAKE = "took the leader key"
RELEASE = "released the leader key"
PROMOTED = "promoted: now primary"
BOOT_DECISION = "decision [bootstrap]"
BOOTSTRAPPED = "bootstrapped cluster"


def tenures(run):
    """[(wall, mono, node, how)] in time order: a node became the leader.  "took the leader
    key" is logged once the create-if-absent transaction won; a bootstrap counts from its
    "decision [bootstrap]" line (PostgreSQL runs as primary before "bootstrapped cluster"
    is logged), but only when that node then logs "bootstrapped cluster" (a member that
    lost the bootstrap race logs the decision and nothing else)."""
    out = []
    for node, lines in run.logs.items():
        boot = None
        for ln in lines:
            if ln.wall is None:
                continue
            if ln.msg.startswith(TAKE + ":") or ln.msg == TAKE:
                out.append((ln.wall, ln.mono, node, "took the leader key"))
            elif ln.msg.startswith(BOOT_DECISION):
                boot = ln
            elif ln.msg.startswith(BOOTSTRAPPED):
                b = boot or ln
                out.append((b.wall, b.mono, node, "bootstrap"))
                boot = None
    out.sort()
    return out


def _fmt_wall(run, w):
    m = run.mono_of_wall(w)
    return _rel(run, m) if m is not None else "wall %.3f" % w


def _audit_all(run):
    return [r for recs in run.audit.values() for r in recs]


def _intent_before(recs, res):
    """In the fencer's file: the fence-intent for res's target between the previous
    fence-result for it and res (by seq)."""
    prev_seq = max([r["seq"] for r in recs if r.get("action") == "fence-result" and
                    r.get("target") == res.get("target") and r["seq"] < res["seq"]] or [0])
    return [r for r in recs if r.get("action") == "fence-intent" and
            r.get("target") == res.get("target") and prev_seq < r["seq"] < res["seq"]]


def _watchdog_state(run, node, before_wall):
    """The last thing node's log said of its watchdog before that instant: "armed" or
    "disarmed" or None."""
    st = None
    for ln in run.logs.get(node, []):
        if ln.wall is None or ln.wall > before_wall:
            continue
        if ln.msg.startswith("watchdog ") and (" armed: timeout" in ln.msg or
                                               "timeout back to" in ln.msg or
                                               "timeout lowered" in ln.msg):
            st = "armed"
        elif ln.msg.startswith("watchdog ") and (ln.msg.endswith(" disarmed") or
                                                 "closed (magic close)" in ln.msg):
            st = "disarmed"
    return st


def check_s3(run):
    """S3 (pgwarden): every time a node X took the leader key after another node Y had
    been leader (Y took the key or bootstrapped, and nobody since), there is, before X's
    take, one of: a "released the leader key" line of Y after Y's take (its delete is
    conditional on the key naming Y, so a release line can only belong to a release that
    came before X's take, and such a line is accepted until Y's next take); a fence-result
    "off-confirmed" audit record (any node's log) targeting Y, written after Y's take and
    no later than X's take (wall clocks of one kernel, ms precision), with its fence-intent
    before it in the same file; or, with fencing not required, Y's watchdog armed at that
    point by its own log, or Y seen by the monitor answering as a non-primary.  A node the
    monitor first sees primary with a new postmaster while another node has held the key
    for more than CLOCK_SLACK is flagged too, and so is a confirmed power off that the
    target's BMC log does not back (_fences_backed_by_bmc).  run.takeovers keeps each
    change of leader with the basis found, for the report.  Limits: the logs must hold
    every take (the rig appends them across restarts); an operator's failover is not
    recognised; a new safe basis in the daemon needs its log line here."""
    out = []
    if run.daemon != "pgwarden":
        return out
    ts = tenures(run)
    audit = _audit_all(run)
    confirmed = [r for r in audit if r.get("action") == "fence-result" and
                 r.get("result") == "off-confirmed" and r.get("_wall") is not None]
    run.takeovers = []

    def basis(why):
        run.takeovers.append((mono, x, y, why))
    for i, (wall, mono, x, how) in enumerate(ts):
        if how != "took the leader key":
            run.takeovers.append((mono, x, None, how))
            continue
        if i == 0:
            run.note("%s took the leader key at %s with no earlier leader in the logs"
                     % (x, _fmt_wall(run, wall)))
            continue
        pwall, _, y, _ = ts[i - 1]
        if y == x:
            basis("its own earlier leadership")
            continue  # its own earlier tenure: nobody else's PostgreSQL to stop
        y_next = min([w for w, _, n, _ in ts[i:] if n == y] or [float("inf")])
        rel = [ln for ln in run.logs.get(y, []) if ln.wall is not None and
               ln.msg.startswith(RELEASE) and pwall <= ln.wall < y_next]
        if rel:
            basis("released by %s at %s" % (y, _fmt_wall(run, rel[0].wall)))
            continue
        fences = [r for r in confirmed if r.get("target") == y and r["_wall"] >= pwall]
        before = [r for r in fences if r["_wall"] <= wall + WALL_RES]
        if before:
            f = before[-1]
            basis("power off confirmed by %s at %s (audit seq %s)"
                  % (f.get("actor"), _fmt_wall(run, f["_wall"]), f.get("seq")))
            continue
        if not run.fencing:
            if _watchdog_state(run, y, wall) == "armed":
                basis("lease of a watchdog-guarded leader")
                continue
            ymono = run.mono_of_wall(pwall)
            xmono = run.mono_of_wall(wall)
            back = [m for m in run.monitor if m.get("node") == y and m.get("primary") is False
                    and ymono is not None and m["s"] > ymono + CLOCK_SLACK and
                    m["r"] < xmono - CLOCK_SLACK]
            if back:
                basis("%s seen as a replica at %s" % (y, _rel(run, back[0]["s"])))
                continue
        intents = [r for r in audit if r.get("action") == "fence-intent" and
                   r.get("target") == y and r.get("_wall") is not None and
                   pwall <= r["_wall"] <= wall + WALL_RES]
        basis("NONE (S3 violation)")
        if fences:
            f = fences[0]
            out.append(Violation("S3", "%s took the leader key at %s, BEFORE the fence of %s "
                                 "was confirmed (fence-result off-confirmed by %s at %s, "
                                 "seq %s); %s led since %s and did not release the key"
                                 % (x, _fmt_wall(run, wall), y, f.get("actor"),
                                    _fmt_wall(run, f["_wall"]), f.get("seq"), y,
                                    _fmt_wall(run, pwall))))
        elif intents:
            out.append(Violation("S3", "%s took the leader key at %s after a fence-intent "
                                 "for %s (by %s at %s) but with no confirmed power off; "
                                 "%s led since %s and did not release the key"
                                 % (x, _fmt_wall(run, wall), y, intents[-1].get("actor"),
                                    _fmt_wall(run, intents[-1]["_wall"]), y,
                                    _fmt_wall(run, pwall))))
        else:
            out.append(Violation("S3", "%s took the leader key at %s with no fence of %s at "
                                 "all: %s led since %s, did not release the key, and no "
                                 "audit log confirms its power off%s"
                                 % (x, _fmt_wall(run, wall), y, y, _fmt_wall(run, pwall),
                                    "" if run.fencing else
                                    " (nor did it keep an armed watchdog)")))
    out += _rogue_primaries(run, ts)
    out += _fences_backed_by_bmc(run)
    return out


def _fences_backed_by_bmc(run):
    """Every fence-result "off-confirmed" is backed by the target's BMC: its chassis log
    (when the rig kept one) shows a power off (off, off-done or reset, not failed) or a
    status read "off" between the fence-intent and the result (CLOCK_MONOTONIC on both
    sides; 50 ms allowed for the log's own stamping)."""
    out = []
    for node, recs in run.audit.items():
        for r in recs:
            if not (r.get("action") == "fence-result" and r.get("result") == "off-confirmed"):
                continue
            ev = run.bmc.get(r.get("target")) or []
            if not ev or not isinstance(r.get("mono"), (int, float)):
                continue
            intents = _intent_before(recs, r)
            lo = (intents[-1].get("mono") if intents and
                  isinstance(intents[-1].get("mono"), (int, float)) else r["mono"] - 120) - 0.05
            hi = r["mono"] + 0.05
            backed = [e for e in ev if lo <= e[0] <= hi and
                      ((e[1] in ("off", "off-done", "reset") and e[2] != "failed") or
                       (e[1] == "status" and e[2] == "off"))]
            if not backed:
                out.append(Violation("S3", "%s audit seq %s: power off of %s confirmed at %s, "
                                     "but %s's BMC logged no power off and no status off "
                                     "since the intent (%s)"
                                     % (node, r.get("seq"), r.get("target"),
                                        _rel(run, r["mono"]), r.get("target"),
                                        _rel(run, lo + 0.05))))
    return out


def _rogue_primaries(run, ts):
    """A postmaster seen primary while the logs say another node has led for a while."""
    out = []
    if not ts or run.t0_wall is None:
        return out
    monos = [(m, node) for _, m, node, _ in ts if m is not None]
    keys = [m for m, _ in monos]
    for node, segs in postmaster_segments(run).items():
        for pm, samples in segs:
            first = next((m for m in samples if m.get("primary") is True), None)
            if first is None:
                continue
            i = bisect.bisect_right(keys, first["s"] - CLOCK_SLACK) - 1
            if i < 0:
                continue
            t_lead, leader = monos[i]
            # the node itself took over within the slack: not provable
            if leader != node and not any(n == node and abs(t - first["s"]) <= CLOCK_SLACK
                                          for t, n in monos):
                out.append(Violation("S3", "%s answered as primary at %s (postmaster %s) "
                                     "while %s had held the leader key since %s and %s "
                                     "had not taken it" % (node, _rel(run, first["s"]), pm,
                                                           leader, _rel(run, t_lead), node)))
    return out


def check_s4(run, ctl=None):
    """S4 (pgwarden): every off-confirmed fence-result has its fence-intent before it in
    the same file; every "promote" audit record follows a confirmed fence of its target
    in the same file; a node that logged "promoted" after fencing and went on logging has
    the promote record; every "fencing X: power off confirmed" log line has its audit
    record; `pgwardenctl fence-log --verify` passes on every audit log present.  Limits:
    a record cut off the END of a log is not seen by the chain (audit.h): the log lines
    are the cross-check."""
    out = []
    if run.daemon != "pgwarden":
        return out
    for node, recs in run.audit.items():
        for r in recs:
            if r.get("action") == "fence-result" and r.get("result") == "off-confirmed":
                if not _intent_before(recs, r):
                    out.append(Violation("S4", "%s audit seq %s: power off of %s confirmed "
                                         "with no fence-intent recorded before it"
                                         % (node, r.get("seq"), r.get("target"))))
            if r.get("action") == "promote":
                ok = [f for f in recs if f.get("action") == "fence-result" and
                      f.get("result") == "off-confirmed" and
                      f.get("target") == r.get("target") and f["seq"] < r["seq"]]
                if not ok:
                    out.append(Violation("S3", "%s audit seq %s: promote after fencing %s, "
                                         "with no confirmed fence of %s before it in its log"
                                         % (node, r.get("seq"), r.get("target"),
                                            r.get("target"))))
        # the promotion after this node's own fence is audited
        lines = run.logs.get(node, [])
        ts = tenures(run)
        for r in recs:
            if not (r.get("action") == "fence-result" and r.get("result") == "off-confirmed"
                    and r.get("_wall") is not None):
                continue
            # this node's next take, when it took over from the node it fenced
            nxt = [i for i, t in enumerate(ts) if t[2] == node and
                   t[3] == "took the leader key" and t[0] >= r["_wall"] - WALL_RES]
            if not nxt or nxt[0] == 0 or ts[nxt[0] - 1][2] != r.get("target"):
                continue
            take = ts[nxt[0]]
            until = ts[nxt[0] + 1][0] if nxt[0] + 1 < len(ts) else float("inf")
            promoted = [ln for ln in lines if ln.wall is not None and
                        ln.msg.startswith(PROMOTED) and take[0] <= ln.wall < until]
            later = [p for p in recs if p.get("action") == "promote" and p["seq"] > r["seq"]
                     and p.get("target") == r.get("target")]
            if promoted and not later:
                p = promoted[0]
                went_on = [ln for ln in lines if ln.wall is not None and
                           ln.wall > p.wall + 2.0]
                if went_on:
                    out.append(Violation("S4", "%s promoted at %s after fencing %s (seq %s), "
                                         "but no promote record follows in its audit log"
                                         % (node, _fmt_wall(run, p.wall), r.get("target"),
                                            r.get("seq"))))
        for ln in lines:
            m = re.match(r"fencing (\S+): power off confirmed", ln.msg)
            if m and ln.wall is not None:
                rec = [r for r in recs if r.get("action") == "fence-result" and
                       r.get("result") == "off-confirmed" and r.get("target") == m.group(1)
                       and r["_wall"] is not None and r["_wall"] <= ln.wall + WALL_RES]
                if not rec:
                    out.append(Violation("S4", "%s logged at %s that the power off of %s is "
                                         "confirmed, with no such record in its audit log"
                                         % (node, _fmt_wall(run, ln.wall), m.group(1))))
    out += verify_audit_logs(run, ctl)
    return out


def _pgwardenctl(run, ctl):
    for c in [ctl, os.environ.get("PGWARDENCTL"), run.meta.get("pgwardenctl")] + \
            PGWARDENCTL_DEFAULTS:
        if c and os.access(c, os.X_OK):
            return c
    return None


def verify_audit_logs(run, ctl=None):
    """`pgwardenctl fence-log --verify` on every node's audit log that exists, with the
    node's own configuration (it may name an audit key), or, when that does not point at
    the log run.json names or cannot be read, a minimal one that does."""
    out = []
    exe = _pgwardenctl(run, ctl)
    for node, nd in sorted(run.nodes.items()):
        p = nd.get("audit_log")
        if not p or not os.path.exists(run.path(p)):
            continue
        if exe is None:
            run.note("no pgwardenctl: %s's audit chain checked by the checker itself"
                             % node)
            bad = py_verify_chain(run.path(p))
            if bad:
                out.append(Violation("S4", "%s audit log %s: %s" % (node, p, bad)))
            continue
        rc, text = _ctl_verify(exe, nd, run.path(p))
        if rc == 0:
            continue
        if rc == 1 and "chain BROKEN" in text:
            out.append(Violation("S4", "%s: pgwardenctl fence-log --verify: %s"
                                 % (node, text.strip())))
        else:
            out.append(Violation("S4", "%s: pgwardenctl fence-log --verify failed (rc %d): %s"
                                 % (node, rc, text.strip()[:500])))
    return out


def _ctl_verify(exe, nd, log_path):
    def run_ctl(cfg):
        try:
            p = subprocess.run([exe, "-c", cfg, "fence-log", "--verify"], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL)
            return p.returncode, p.stdout + p.stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            return -1, str(e)
    cfg = nd.get("config") or os.path.join(nd.get("dir") or "", "pgwarden.yml")
    if os.path.exists(cfg):
        rc, text = run_ctl(cfg)
        if (rc == 0 and "chain intact" in text) or "chain BROKEN" in text:
            if os.path.realpath(log_path) in text or log_path in text:
                return rc, text
    with tempfile.TemporaryDirectory(prefix="pgwf-check-") as d:
        cfg = os.path.join(d, "pgwarden.yml")
        with open(cfg, "w") as f:
            f.write("scope: check\nname: check\npostgresql:\n  data_dir: %s\n"
                    "fencing:\n  audit_log: %s\n" % (os.path.join(d, "data"),
                                                     json.dumps(log_path)))
        return run_ctl(cfg)


def py_verify_chain(path):
    """What is wrong with a (plain, unkeyed) audit log's chain, "" when intact: the same
    rules as pgw_audit_verify (fencing/audit.h), for when pgwardenctl is not there."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        return str(e)
    if not data:
        return ""
    if not data.endswith(b"\n"):
        return "incomplete last record (no newline)"
    prev_hash, prev_seq = None, None
    tail_len = len(',"hash":"') + 64 + 2
    for n, ln in enumerate(data[:-1].split(b"\n"), 1):
        if len(ln) < tail_len + 2 or not ln.startswith(b"{") or \
                ln[-tail_len:-66] != b',"hash":"' or not ln.endswith(b'"}'):
            return "line %d: not an audit record" % n
        stored = ln[-66:-2].decode("ascii", "replace")
        canon = ln[:-tail_len] + b"}"
        if hashlib.sha256(canon).hexdigest() != stored:
            return "line %d: hash mismatch" % n
        try:
            o = json.loads(canon)
        except ValueError:
            return "line %d: bad JSON" % n
        seq, prev = o.get("seq"), o.get("prev")
        if n == 1:
            if not ((seq == 1 and prev == "0" * 64) or o.get("action") == "rotate"):
                return "line 1: earlier records were removed"
        elif seq != prev_seq + 1 or prev != prev_hash:
            return "line %d: seq %s follows seq %s or prev does not match" % (n, seq, prev_seq)
        prev_hash, prev_seq = stored, seq
    return ""


# --- RECOVERY ----------------------------------------------------------------------------

def fenced_at_end(run):
    """{node: record} of the nodes whose last audited power event is a confirmed off."""
    last = {}
    for r in sorted(_audit_all(run), key=lambda r: (r.get("mono") or 0)):
        a, res = r.get("action"), r.get("result")
        if a == "fence-result" and res == "off-confirmed":
            last[r.get("target")] = r
        elif a == "unfence-result" and res == "on":
            last.pop(r.get("target"), None)
    return last


def down_at_end(run):
    """Nodes whose monitor samples after t_healed are all unanswered (at least one) and
    that final.json neither names primary nor streaming."""
    f = run.final or {}
    t_h = _num(f.get("t_healed"))
    out = []
    for node in run.nodes:
        if node == f.get("primary") or (f.get("streaming") or {}).get(node):
            continue
        after = [m for m in run.monitor if m.get("node") == node and
                 (t_h is None or m["s"] >= t_h)]
        if after and all(m.get("primary") is None for m in after[-20:]):
            out.append(node)
    return out


def _last_decisions(run):
    """"; node2 last said: decision [...]" for the nodes neither primary nor streaming."""
    f = run.final or {}
    out = ""
    for node in sorted(run.nodes):
        if node == f.get("primary") or (f.get("streaming") or {}).get(node):
            continue
        last = [ln for ln in run.logs.get(node, []) if ln.msg.startswith("decision [") and
                not ln.msg.startswith("decision [shutdown]")]
        if last:
            out += "; %s last decided at %s: %s" % (node, _rel(run, last[-1].mono),
                                                   last[-1].msg[:200])
    return out


def bmc_off_at_end(run):
    """{node: mono} of the nodes whose BMC's last power change (chassis log) is an off."""
    out = {}
    for node, evs in run.bmc.items():
        power = [e for e in evs if e[1] in ("off", "off-done", "on", "reset") and
                 e[2] != "failed"]
        if power and power[-1][1] in ("off", "off-done"):
            out[node] = power[-1][0]
    return out


def check_recovery(run):
    """RECOVERY: final.json t_recovered is null (one primary and every other node
    streaming never came back after the last heal), or it came later than
    recovery_bound after t_healed; the same for each earlier fault of final.json
    per_fault; a node down at the end, or left powered off by its BMC (chassis log), (its last samples unanswered,
    not streaming) that no audit record says was fenced, or that final.json lists as
    fenced without such a record."""
    out = []
    f = run.final
    if f is None:
        return out
    t_h, t_r = _num(f.get("t_healed")), _num(f.get("t_recovered"))
    if t_r is None:
        out.append(Violation("RECOVERY", "never recovered after the last heal at %s "
                             "(final primary %s, streaming %s)%s%s"
                             % (_rel(run, t_h), f.get("primary"),
                                json.dumps(f.get("streaming")),
                                "; the cluster was not healthy before a fault"
                                if f.get("stuck_before_fault") else "", _last_decisions(run))))
    elif t_h is not None and run.bound is not None and t_r - t_h > run.bound:
        out.append(Violation("RECOVERY", "recovered %.1f s after the last heal, more than the "
                             "bound of %.1f s" % (t_r - t_h, run.bound)))
    # the faults before the last one (final.json per_fault, when the rig wrote it)
    for pf in (f.get("per_fault") or [])[:-1]:
        ph, pr = _num(pf.get("t_healed")), _num(pf.get("t_recovered"))
        if ph is None:
            continue
        if pr is None:
            out.append(Violation("RECOVERY", "fault %s on %s healed at %s: never recovered"
                                 % (pf.get("kind"), pf.get("target"), _rel(run, ph))))
        elif run.bound is not None and pr - ph > run.bound:
            out.append(Violation("RECOVERY", "fault %s on %s: recovered %.1f s after its heal, "
                                 "more than the bound of %.1f s"
                                 % (pf.get("kind"), pf.get("target"), pr - ph, run.bound)))
    fenced = fenced_at_end(run)
    listed = f.get("fenced")
    if isinstance(listed, dict):
        listed = [k for k, v in listed.items() if v]
    suspects = set(down_at_end(run)) | set(listed if isinstance(listed, list) else []) | \
        set(bmc_off_at_end(run))
    for node in sorted(suspects):
        if node in fenced:
            r = fenced[node]
            run.note("%s left fenced at the end: power off confirmed by %s (seq %s): %s"
                             % (node, r.get("actor"), r.get("seq"), r.get("reason")))
            continue
        off = bmc_off_at_end(run).get(node)
        out.append(Violation("RECOVERY", "%s and no audit record says it was fenced"
                             % ("%s is powered off by its BMC since %s" % (node, _rel(run, off))
                                if off is not None else "%s is down at the end (no answer "
                                "after the heal, not streaming)" % node)))
    return out


# --- all of it ---------------------------------------------------------------------------

def check(rundir, ctl=None):
    """[Violation] of a run directory; INPUT first.  ctl: a pgwardenctl to verify with
    (default: $PGWARDENCTL, run.json's, then build/pgwardenctl).  A rule that cannot be
    evaluated (the checker failed on this history) is an INPUT violation saying so,
    never an exception."""
    try:
        run = load(rundir)
    except Exception as e:  # noqa: BLE001 - a checker must not crash the campaign
        return [Violation("INPUT", "the checker cannot read %s: %s: %s"
                          % (rundir, type(e).__name__, e))]
    out = [Violation("INPUT", e) for e in run.errors]
    if not run.meta:
        return out
    rules = [("S1", check_s1), ("S2", check_s2)]
    if run.daemon == "pgwarden":
        rules += [("S3", check_s3), ("S4", lambda r: check_s4(r, ctl))]
    else:
        run.note("S3/S4 skipped: daemon %s keeps no fencing audit" % run.daemon)
    rules.append(("RECOVERY", check_recovery))
    for name, fn in rules:
        try:
            out += fn(run)
        except Exception as e:  # noqa: BLE001
            out.append(Violation("INPUT", "the checker failed evaluating %s: %s: %s"
                                 % (name, type(e).__name__, e)))
    return out


def notes(rundir):
    return list(load(rundir).notes)


# --- figures -----------------------------------------------------------------------------

def primary_changes(run):
    """[(t, node)]: the monitor's primaries in order; one entry each time a node other
    than the last one is first seen primary."""
    out = []
    for m in sorted(run.monitor, key=lambda m: m["s"]):
        if m.get("primary") is True and (not out or out[-1][1] != m["node"]):
            out.append((m["s"], m["node"]))
    return out


def write_gaps(run):
    """[(lo, hi)] between consecutive acknowledged commits (their r), in order."""
    rs = [c["r"] for c in run.acks]
    return list(zip(rs, rs[1:]))


def metrics(rundir):
    """One dict per fault (faults.jsonl start..heal, matched by kind and target):
    kind, target, start, heal, duration, window_end (t_recovered, or heal + bound when
    it did not recover or recovered later), write_unavailability (the longest interval
    between consecutive acknowledged commits, measured between their r times, that
    overlaps [start, window_end]; when no commit followed, up to the last client
    record, flagged open), leader_changes (monitor), fences (confirmed power offs
    audited), fence_attempts, watchdog_resets (wdemu FIRED), lost_acked (acknowledged
    in the window, missing from the final primary; None when unknown)."""
    run = load(rundir)
    f = run.final or {}
    t_rec = _num(f.get("t_recovered"))
    bound = run.bound if run.bound is not None else 60.0
    lost = lost_acked(run)
    lost_r = [c["r"] for c in lost] if lost is not None else None
    gaps = write_gaps(run)
    last_client = max([c["r"] for c in run.client] or [None], key=lambda v: v or 0)
    changes = primary_changes(run)
    audit = _audit_all(run)
    fired = [(t, n) for n, evs in run.wdemu.items() for t, kind, _ in evs if kind == "FIRED"]
    starts = {}
    out = []
    for ev in sorted(run.faults, key=lambda e: e["t"]):
        k = (ev.get("kind"), json.dumps(ev.get("target"), sort_keys=True))
        if ev.get("event") == "start":
            starts.setdefault(k, []).append(ev)
        elif ev.get("event") == "heal" and starts.get(k):
            s = starts[k].pop(0)
            out.append(_fault_metrics(run, s, ev["t"], _recovered_after(run, s, ev["t"], t_rec),
                                      bound, gaps, last_client, changes, audit, fired, lost_r))
    for k, evs in starts.items():
        for s in evs:
            m = _fault_metrics(run, s, _num(f.get("t_healed")), t_rec, bound, gaps,
                               last_client, changes, audit, fired, lost_r)
            m["note"] = "no heal recorded"
            out.append(m)
    out.sort(key=lambda m: m["start"])
    return out


def _recovered_after(run, start, heal, t_rec):
    """The recovery time of this fault: final.json per_fault (the entry whose start and
    heal bracket this fault's), else t_recovered when it follows this heal."""
    for pf in (run.final or {}).get("per_fault") or []:
        ps, ph = _num(pf.get("t_start")), _num(pf.get("t_healed"))
        if ps is not None and ph is not None and ps - 1.0 <= start["t"] and heal <= ph + 1e-6:
            return _num(pf.get("t_recovered"))
    return t_rec


def _fault_metrics(run, s, heal, t_rec, bound, gaps, last_client, changes, audit, fired, lost_r):
    start = s["t"]
    heal = heal if heal is not None else start
    end = t_rec if (t_rec is not None and t_rec >= heal and t_rec - heal <= bound) \
        else heal + bound
    worst, w_iv, open_gap = 0.0, None, False
    for lo, hi in gaps:
        if lo < end and hi > start and hi - lo > worst:
            worst, w_iv = hi - lo, (lo, hi)
    if run.acks:
        last_r = run.acks[-1]["r"]
        if last_client is not None and last_r < end and last_client > start and \
                last_client - last_r > worst:
            worst, w_iv, open_gap = last_client - last_r, (last_r, last_client), True
    elif last_client is not None:
        worst, w_iv, open_gap = last_client - start, (start, last_client), True
    prev = [n for t, n in changes if t < start]
    lead = prev[-1] if prev else None
    n_changes = 0
    for t, n in changes:
        if start <= t <= end and n != lead:
            n_changes += 1
            lead = n
    in_win = [r for r in audit if isinstance(r.get("mono"), (int, float)) and
              start <= r["mono"] <= end]
    return {
        "kind": s.get("kind"), "target": s.get("target"), "detail": s.get("detail"),
        "start": start, "heal": heal, "duration": heal - start, "window_end": end,
        "recovery": (t_rec - heal) if t_rec is not None else None,
        "write_unavailability": round(worst, 3),
        "unavailable_from": w_iv[0] if w_iv else None,
        "unavailable_open": open_gap,
        "leader_changes": n_changes,
        "fences": sum(1 for r in in_win if r.get("action") == "fence-result" and
                      r.get("result") == "off-confirmed"),
        "fence_attempts": sum(1 for r in in_win if r.get("action") == "fence-intent"),
        "watchdog_resets": sum(1 for t, _ in fired if start <= t <= end),
        "lost_acked": (sum(1 for r in lost_r if start <= r <= end)
                       if lost_r is not None else None),
    }


def summary(results):
    """results: [(rundir, violations, metrics)] -> the issue's Markdown table, one row per
    fault kind and daemon: runs with that fault, runs among them with a violation (any
    rule: a violation is not tied to one fault of a run), median and worst
    write-unavailability over the faults of that kind."""
    rows = {}
    for rundir, viol, mets in results:
        run = load(rundir)
        for kind in sorted({m["kind"] for m in mets}):
            r = rows.setdefault((kind, run.daemon), {"runs": set(), "bad": set(), "un": []})
            r["runs"].add(run.dir)
            if viol:
                r["bad"].add(run.dir)
            r["un"] += [m["write_unavailability"] for m in mets if m["kind"] == kind]
    lines = ["| fault | daemon | runs | violations | median write-unavailability (s) | "
             "worst (s) |", "|---|---|---|---|---|---|"]
    for (kind, daemon), r in sorted(rows.items()):
        un = r["un"]
        lines.append("| %s | %s | %d | %d | %s | %s |"
                     % (kind, daemon, len(r["runs"]), len(r["bad"]),
                        "%.1f" % statistics.median(un) if un else "-",
                        "%.1f" % max(un) if un else "-"))
    return "\n".join(lines) + "\n"


# --- the timeline ------------------------------------------------------------------------

LOG_MATTERS = re.compile(r"decision \[|promot|demot|fenc|lease|leader key|took|released|bootstrap|"
                         r"stopping|shutting down|watchdog .*(armed|disarmed|closed|overdue)|"
                         r"rewound|pg_rewind|re-clone|unfenced|failover|switchover|"
                         r"running as primary|deadline|NOT promoting|rig:|"
                         r"acquir|demoting|following a different|session lock", re.I)


def _timeline(run):
    ev = []  # (mono, source, text)
    for f in run.faults:
        ev.append((f["t"], "fault", "%s %s %s %s" % (f.get("event"), f.get("kind"),
                                                  f.get("target"),
                                                  json.dumps(f.get("detail") or {}))))
    # client: runs of acks by one node, runs of failures with one error
    cur = None
    for c in sorted(run.client, key=lambda c: c["s"]):
        key = ("ok", c.get("node")) if c.get("ok") else ("fail", (c.get("err") or "")[:80])
        if cur and cur[0] == key:
            cur[2], cur[3] = c["r"], cur[3] + 1
        else:
            if cur:
                ev.append(_client_line(run, cur))
            cur = [key, c["r"] if c.get("ok") else c["s"], c["r"], 1]
    if cur:
        ev.append(_client_line(run, cur))
    # monitor: role changes per node
    last = {}
    for m in sorted(run.monitor, key=lambda m: m["s"]):
        st = ("primary" if m.get("primary") is True else
              "replica" if m.get("primary") is False else "no answer")
        key = (st, m.get("pm_start"), m.get("tl"))
        if last.get(m["node"]) != key:
            if st == "no answer":
                desc = "no answer"
            else:
                desc = "%s (postmaster %s, timeline %s)" % (st, m.get("pm_start"), m.get("tl"))
            ev.append((m["s"], "monitor", "%s: %s" % (m["node"], desc)))
            last[m["node"]] = key
    for node, lines in run.logs.items():
        for ln in lines:
            if ln.mono is None:
                continue
            if ln.level in ("ERROR", "FATAL", "CRITICAL", "RIG", "RAW") or \
                    (ln.level != "DEBUG" and LOG_MATTERS.search(ln.msg)):
                ev.append((ln.mono, "log " + node, "%s %s" % (ln.level, ln.msg[:300])))
    for node, recs in run.audit.items():
        for r in recs:
            if isinstance(r.get("mono"), (int, float)):
                ev.append((r["mono"], "audit " + node,
                           "#%s %s %s %s (%s)" % (r.get("seq"), r.get("action"),
                                                  r.get("target"), r.get("result"),
                                                  (r.get("reason") or "")[:120])))
    for node, evs in run.wdemu.items():
        for t, kind, text in evs:
            if kind in ("FIRED", "KILL", "ENABLE", "DISABLE", "MAGICCLOSE"):
                ev.append((t, "wdemu " + node, text))
    for node, evs in run.bmc.items():
        last_status = None
        for t, kind, result, text in evs:
            if kind == "status":
                if result == last_status:
                    continue
                last_status = result
            ev.append((t, "bmc " + node, text[:200]))
    for name, evs in run.etcd.items():
        for t, text in evs:
            if t is not None:
                ev.append((t, "etcd " + name, text[:200]))
    f = run.final or {}
    for k in ("t_healed", "t_recovered"):
        if _num(f.get(k)) is not None:
            ev.append((f[k], "final", k))
    ev.sort(key=lambda e: e[0])
    return ev


def _client_line(run, cur):
    (what, who), t1, t2, n = cur
    if what == "ok":
        return (t1, "client", "writes acked by %s from %s to %s (%d writes)"
                % (who, _rel(run, t1), _rel(run, t2), n))
    return (t1, "client", "%d write(s) failed from %s to %s: %s"
            % (n, _rel(run, t1), _rel(run, t2), who))


def replay_command(run):
    """The tests/faults/run.py command that plans the same schedule (add the --faults the
    original run was given, if any)."""
    m = run.meta
    t = run.timing
    tight = t.get("ttl") == 10 and t.get("loop_wait") == 2
    k = len(m.get("schedule") or []) or None
    return ("PGWARDEN_BIN=build/asan/pgwarden /usr/bin/python3 tests/faults/run.py --runs 1 "
            "--seed %s --daemon %s --timing %s%s%s --keep"
            % (m.get("seed"), run.daemon, "tight" if tight else "default",
               " --k %d" % k if k else "", "" if run.sync else " --async"))


def report(rundir, timeline=None):
    """Seed, daemon, settings, violations, notes, the fault schedule, the figures and,
    for a run with a violation (or timeline=True), the merged timeline (seconds relative
    to t0_mono)."""
    run = load(rundir)
    viol = check(run)
    if timeline is None:
        timeline = bool(viol)
    m = run.meta
    out = ["run %s: seed %s, daemon %s, sync %s, fencing %s, timing %s, recovery bound %s"
           % (run.dir, m.get("seed"), run.daemon, run.sync, run.fencing,
              json.dumps(run.timing), run.bound)]
    out.append("replay: %s" % replay_command(run))
    out.append("")
    out.append("violations:" if viol else "violations: none")
    out += ["  %s %s" % v for v in viol]
    if run.notes:
        out.append("notes:")
        out += ["  " + n for n in run.notes]
    out.append("")
    out.append("fault schedule:")
    for f in sorted(run.faults, key=lambda f: f["t"]):
        out.append("  %9s  %-5s %-20s %s %s" % (_rel(run, f["t"]), f.get("event"),
                                               f.get("kind"), f.get("target"),
                                               json.dumps(f.get("detail") or {})))
    if run.meta:
        try:
            n_poss, t_poss = possible_overlaps(run)
            out.append("")
            out.append("figures: possible overlaps (intersecting windows, not proven) %d "
                       "pairs, %.3f s; acknowledged writes %d, lost %s%s"
                       % (n_poss, t_poss, len(run.acks),
                          _len_or_unknown(lost_acked(run)), "" if run.sync else " (async)"))
            for m in metrics(run):
                out.append(_fmt_metric(m, run))
        except Exception as e:  # noqa: BLE001
            out.append("figures: the checker failed: %s: %s" % (type(e).__name__, e))
    if run.takeovers:
        out.append("")
        out.append("leadership (from the daemons' logs):")
        for t, x, y, why in run.takeovers:
            out.append("  %9s  %s %s" % (_rel(run, t), x, "%s" % why if y is None else
                                         "took over from %s: %s" % (y, why)))
    if not timeline:
        return "\n".join(out) + "\n"
    out.append("")
    out.append("timeline (s from t0):")
    try:
        for e in _timeline(run):
            out.append("  %9s  %-14s %s" % (_rel(run, e[0]), e[1], e[2]))
    except Exception as e:  # noqa: BLE001
        out.append("  the checker failed: %s: %s" % (type(e).__name__, e))
    return "\n".join(out) + "\n"


# --- command line ------------------------------------------------------------------------

def _len_or_unknown(x):
    return str(len(x)) if x is not None else "unknown"


def _fmt_metric(m, run):
    return ("  %-20s %-10s start %s, %.1f s, write-unavailability %.2f s%s, leader changes "
            "%d, fences %d (attempts %d), watchdog resets %d, lost acked %s%s"
            % (m["kind"], m["target"], _rel(run, m["start"]), m["duration"],
               m["write_unavailability"], " (open)" if m["unavailable_open"] else "",
               m["leader_changes"], m["fences"], m["fence_attempts"], m["watchdog_resets"],
               m["lost_acked"] if m["lost_acked"] is not None else "?",
               ", " + m["note"] if m.get("note") else ""))


def main(argv):
    args = []
    for a in argv:
        if a.startswith("--"):
            continue
        if os.path.isdir(a) and not os.path.exists(os.path.join(a, "run.json")):
            # a directory of runs (the rig's /tmp/pgwf-runs)
            subs = sorted(os.path.join(a, x) for x in os.listdir(a)
                          if os.path.exists(os.path.join(a, x, "run.json")))
            if subs:
                args += subs
                continue
        args.append(a)
    flags = {a for a in argv if a.startswith("--")}
    if not args or "--help" in flags:
        print(__doc__)
        return 2
    bad = False
    results = []
    for d in args:
        run = load(d)
        viol = check(run)
        mets = metrics(run) if run.meta else []
        results.append((run, viol, mets))
        print("== %s: %s" % (d, "%d violation(s)" % len(viol) if viol else "OK"))
        print(report(run, timeline=bool(viol) or "--timeline" in flags))
        bad = bad or bool(viol)
    if "--summary" in flags or len(results) > 1:
        print(summary(results))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
