"""The hardware watchdog (ARCHITECTURE.md section 4, rules 3 to 5) with real etcd and
PostgreSQL, and watchdog/pgwarden-wdemu standing in for /dev/watchdog: the emulator has
the kernel's semantics (timeout, keepalive, magic close, a close pings once) and, when it
expires, kills every process of the node's cgroup, as a hardware reset would, logging the
CLOCK_MONOTONIC time.  Timing of every cluster: ttl 10, loop_wait 2, retry_timeout 3,
safety_margin 5, so W = 5.

- the leader's daemon alone is frozen (SIGSTOP), killed (SIGKILL), or stopped for most of
  W and then killed, while its PostgreSQL keeps running: the emulator resets the node before the lease expires, and only then a
  replica promotes.  A monitor polls every node for "accepts writes" throughout and fails
  the test if two nodes ever accept writes in the same round;
- the leader is cut off from etcd by an nftables rule on its cgroup (etcd keeps running):
  it stops writing before its lease expires, no replica promotes before that moment;
- watchdog mode required with a missing device: the node never takes the leader key (it
  runs as a replica, and says why in /patroni and pgwardenctl list); automatic: it does.
- systemd: READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 arrive on $NOTIFY_SOCKET.

PGWT_WD_TRIALS (default 1) repeats the frozen-leader scenario; the closing figure of the
watchdog issue (lease expiry - reset, over 20 trials) comes from PGWT_WD_TRIALS=20.
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
from harness import figure, log, pid_alive, wait_until
from test_ctl import ctl

TTL, LOOP_WAIT, RETRY, S = 10, 2, 3, 5
TRIALS = int(os.environ.get("PGWT_WD_TRIALS", "1"))


def wd_overrides(mode="required", device=None):
    return {"bootstrap": {"dcs": {"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY}},
            "watchdog": {"mode": mode, "device": device or "/nonexistent/watchdog",
                         "safety_margin": S}}


def watched_cluster(make_cluster, n=2):
    """n nodes, each with watchdog mode required on its own emulator."""
    c = make_cluster(n, start=False, overrides=wd_overrides())
    emus = harness.start_watchdog_emulators(c)
    c.start()
    leader = c.wait_healthy(180)
    return c, emus, leader


def member(c, name):
    raw = c.key("members/" + name)
    return json.loads(raw) if raw else {}


class Monitor(threading.Thread):
    """Polls every node for 'accepts writes' and the leader key, with monotonic times."""

    def __init__(self, c, old_leader):
        super().__init__(daemon=True)
        self.c, self.old = c, old_leader
        self.stop = threading.Event()
        self.two_writers = []           # rounds in which two nodes accepted writes
        self.old_last_write = None      # last time the old leader accepted a write
        self.key_gone = None            # first time the leader key no longer named it
        self.promoted = None            # first time another node accepted writes

    def run(self):
        while not self.stop.is_set():
            # the key first: a promotion seen in this round then comes after t_key
            t_key = time.monotonic()
            if self.key_gone is None:
                try:
                    if self.c.etcd.get(self.c.prefix + "leader") != self.old.name:
                        self.key_gone = t_key
                except Exception:  # noqa: BLE001
                    pass
            t = time.monotonic()
            writers = [n.name for n in self.c.nodes if n.accepts_writes()]
            if len(writers) > 1:
                self.two_writers.append((t, writers))
            if self.old.name in writers:
                self.old_last_write = time.monotonic()
            if self.promoted is None and any(w != self.old.name for w in writers):
                self.promoted = t
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.join(10)


def wait_armed(c, node):
    wait_until(lambda: member(c, node.name).get("watchdog", {}).get("armed") is True, 30,
               "%s's watchdog armed in its member key" % node.name, diag=c.dump)
    wd = member(c, node.name)["watchdog"]
    assert wd["mode"] == "required" and wd["timeout"] == TTL - S, wd


def reset_before_expiry(c, emus, leader, how):
    """Stop or kill the leader's daemon only; the emulator must reset the node first."""
    replica = [n for n in c.nodes if n is not leader][0]
    wait_armed(c, leader)
    assert member(c, replica.name).get("watchdog", {}).get("armed") is False
    mon = Monitor(c, leader)
    mon.start()
    pid = leader.daemon_pid
    emu = emus[leader.name]
    if how == "stall-kill":
        # right after a pet, so that the stall is as long as it can be without a reset
        pets = len(emu.events("KEEPALIVE"))
        wait_until(lambda: len(emu.events("KEEPALIVE")) > pets, 10, "a pet")
    t_fault = time.monotonic()
    os.kill(pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    log("%s the daemon of %s (pid %d); its PostgreSQL keeps running" % (how, leader.name, pid))
    t_kill = None
    if how == "stall-kill":
        time.sleep(TTL - S - 1)  # most of W, then SIGKILL while stopped
        t_kill = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        log("killed the stopped daemon after %.1f s" % (t_kill - t_fault))
    try:
        wait_until(lambda: mon.promoted is not None and mon.key_gone is not None, 60,
                   "a new primary", diag=c.dump)
    finally:
        mon.finish()
    fired = emus[leader.name].fired()
    assert fired, "the emulator never reset %s:\n%s" % (leader.name,
                                                         harness.tail(emus[leader.name].log_path))
    reset, last_ping, w = fired[-1]
    assert w == TTL - S
    assert not mon.two_writers, "two nodes accepted writes: %s" % mon.two_writers
    assert mon.old_last_write is None or mon.old_last_write <= reset + 0.5, (
        "the old leader accepted writes %.2f s after its reset" % (mon.old_last_write - reset))
    # the order the issue asks for: reset < lease expiry (key gone) < promotion
    assert reset < mon.key_gone <= mon.promoted, (reset, mon.key_gone, mon.promoted)
    # A frozen daemon's last pet came within S - R of a renewal, so the reset comes at
    # least S - R before the lease expires.  A killed one's close pings the device once,
    # at any point of its loop: W is chosen so that the reset still comes R before expiry.
    # A daemon stopped and then killed: its keeper holds the device, so its death does
    # not ping it and the reset comes W after the last pet, as for a frozen one.
    bound = 1 if how == "kill" else S - 1
    if t_kill is not None:
        assert last_ping < t_kill - 1, (
            "the device was pinged %.2f s after the stall began (the kill at %.2f s)"
            % (last_ping - t_fault, t_kill - t_fault))
    assert mon.key_gone - reset >= bound, (
        "reset only %.2f s before the lease expired" % (mon.key_gone - reset))
    figure("%s: fault -> reset" % how, reset - t_fault)
    figure("%s: lease expiry - reset (>= %d)" % (how, bound), mon.key_gone - reset)
    figure("%s: fault -> new primary" % how, mon.promoted - t_fault)
    return mon.key_gone - reset


@pytest.mark.parametrize("trial", range(TRIALS))
def test_frozen_daemon_is_reset_before_the_lease_expires(make_cluster, trial):
    c, emus, leader = watched_cluster(make_cluster)
    margin = reset_before_expiry(c, emus, leader, "freeze")
    log("trial %d: lease expiry - reset = %.3f s" % (trial, margin))


def test_killed_daemon_is_reset_before_the_lease_expires(make_cluster):
    c, emus, leader = watched_cluster(make_cluster)
    reset_before_expiry(c, emus, leader, "kill")
    # the old leader's machine comes back: it rejoins as a replica
    leader.start()
    c.wait_healthy(120)
    assert c.leader_name() != leader.name


def test_stopped_then_killed_daemon_is_reset_from_its_last_pet(make_cluster):
    """Found by the simulator (seeds 6675, 26782, 33993, 51013, 61196): the leader's daemon
    is stopped for most of W, then killed while stopped.  Its death closed the device and
    the close pinged it, so the reset came W after the kill, up to 2 W after the last pet
    and past the lease deadline.  The watchdog keeper holds the device while PostgreSQL
    may write: the reset comes W after the last pet."""
    c, emus, leader = watched_cluster(make_cluster)
    reset_before_expiry(c, emus, leader, "stall-kill")
    assert "watchdog keeper: pgwarden is gone" in open(leader.log_path).read()


def test_restarted_daemon_stops_its_leftover_primary_before_opening_the_watchdog(
        make_cluster):
    """Found by the simulator (seeds 61418, 80603): the leader's daemon is killed while
    its PostgreSQL runs; systemd starts it again before the watchdog fires, and opening
    the device disabled it, so a restarted daemon that then stalled left a primary
    running unbounded while a replica promoted on the strength of the old watchdog.  The
    new daemon must stop that PostgreSQL before it opens the device."""
    c, emus, leader = watched_cluster(make_cluster)
    wait_armed(c, leader)
    pm = leader.postmaster_pid()
    assert pm and pid_alive(pm)
    last_alive = [None]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if pid_alive(pm):
                last_alive[0] = time.monotonic()
            time.sleep(0.01)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    opens_before = len(emus[leader.name].events("OPEN"))
    os.kill(leader.daemon_pid, signal.SIGKILL)
    leader.wait_exit(10)
    log("killed the daemon of %s; starting it again at once (PostgreSQL %d runs)"
        % (leader.name, pm))
    leader.start(restart_daemon=True)
    try:
        wait_until(lambda: len(emus[leader.name].events("OPEN")) > opens_before, 20,
                   "the restarted daemon to open the watchdog", diag=c.dump)
        wait_until(lambda: not pid_alive(pm), 20, "the leftover primary to stop",
                   diag=c.dump)
    finally:
        stop.set()
        t.join(5)
    opened = float(emus[leader.name].events("OPEN")[opens_before][1]["mono"])
    assert last_alive[0] is not None and last_alive[0] < opened, (
        "postmaster %d was alive %.3f s after the watchdog was opened"
        % (pm, last_alive[0] - opened))
    assert "runs as a primary without a pgwarden" in open(leader.log_path).read()
    figure("leftover primary stopped before the watchdog was opened by",
           opened - last_alive[0])
    c.wait_healthy(120)


def slow_bin(c, prog, script):
    """A bin_dir of PostgreSQL's programs in which `prog` is the shell script `script`
    (%(real)s there names the real program)."""
    bindir = os.path.join(c.dir, "slowbin")
    os.makedirs(bindir)
    for p in os.listdir(harness.PG_BIN):
        os.symlink(os.path.join(harness.PG_BIN, p), os.path.join(bindir, p))
    os.unlink(os.path.join(bindir, prog))
    with open(os.path.join(bindir, prog), "w") as f:
        f.write("#!/bin/sh\n" + script % {"real": os.path.join(harness.PG_BIN, prog)})
    os.chmod(os.path.join(bindir, prog), 0o755)
    os.chmod(c.dir, 0o755)
    return bindir


def test_slow_initdb_does_not_trip_the_watchdog(make_cluster):
    """initdb that takes longer than W (5 s): the bootstrap must arm the watchdog only
    after it (found by the packaging appliance test, where initdb took 20 s)."""
    c = make_cluster(1, start=False, overrides=wd_overrides())
    node = c.nodes[0]
    emu = harness.WatchdogEmulator(node).start()
    bindir = slow_bin(c, "initdb", 'sleep 8\nexec %(real)s "$@"\n')
    node.config["watchdog"]["device"] = emu.socket
    node.config["postgresql"]["bin_dir"] = bindir
    node.write_config()
    c.start()
    c.wait_healthy(120)
    assert not emu.fired(), harness.tail(emu.log_path)
    wait_armed(c, node)


def slow_pg_ctl_cluster(make_cluster, action, seconds):
    """Two watched nodes whose `pg_ctl <action>` takes `seconds` longer than it would."""
    c = make_cluster(2, start=False, overrides=wd_overrides())
    if action == "promote":  # pg_ctl returns, PostgreSQL acts on the request later
        body = '  (sleep %d; exec %%(real)s "$@") >/dev/null 2>&1 &\n  exit 0\n' % seconds
    else:
        body = '  sleep %d\n' % seconds
    bindir = slow_bin(c, "pg_ctl", 'if [ "$1" = %s ]; then\n%sfi\nexec %%(real)s "$@"\n'
                      % (action, body))
    for node in c.nodes:
        node.config["postgresql"]["bin_dir"] = bindir
    emus = harness.start_watchdog_emulators(c)
    c.start()
    leader = c.wait_healthy(180)
    wait_armed(c, leader)
    return c, emus, leader, [n for n in c.nodes if n is not leader][0]


def test_slow_promotion_keeps_renewing_and_is_not_reset(make_cluster):
    """A promotion that takes longer than W (5 s).  PostgreSQL 15 that receives the
    promote request while its walreceiver is starting first sleeps out
    wal_retrieve_retry_interval (5 s); in CI the new leader, blocked in
    `pg_ctl promote -w`, did not pet its armed watchdog meanwhile and was reset: no
    primary at all.  Here every promotion takes 8 s: the promoting node must keep its
    lease renewed (and so pet) while it waits, and end up a primary."""
    c, emus, leader, replica = slow_pg_ctl_cluster(make_cluster, "promote", 8)
    t_kill = time.monotonic()
    leader.kill_machine()
    wait_until(lambda: replica.accepts_writes(), 90, "%s promoted" % replica.name,
               diag=c.dump)
    figure("slow promotion (8 s): machine killed -> new primary", time.monotonic() - t_kill)
    assert not emus[replica.name].fired(), harness.tail(emus[replica.name].log_path)
    wait_armed(c, replica)
    # PostgreSQL accepts writes before the daemon's wait for the end of the promotion (and
    # the slow pg_ctl) returns; the member key says "armed" from the moment it armed
    wait_until(lambda: "promoted: now primary" in replica.log_text(), 30,
               "%s's daemon to see the promotion through" % replica.name, diag=c.dump)
    time.sleep(TTL - S + 1)  # past W after the promotion: still not reset, still primary
    assert not emus[replica.name].fired(), harness.tail(emus[replica.name].log_path)
    assert replica.accepts_writes() and c.leader_name() == replica.name


def test_slow_shutdown_in_a_switchover_does_not_reset_the_old_leader(make_cluster):
    """The old leader's shutdown checkpoint in a switchover may outlast W (a large
    shared_buffers): it holds the key and its watchdog meanwhile, so it must keep
    renewing; here `pg_ctl stop` takes 8 s longer than it would."""
    c, emus, leader, replica = slow_pg_ctl_cluster(make_cluster, "stop", 8)
    rc, out, err = ctl(c, "switchover", "--candidate", replica.name, "--force", timeout=120)
    assert rc == 0, out + err
    wait_until(lambda: replica.accepts_writes() and c.leader_name() == replica.name, 90,
               "%s leading after the switchover" % replica.name, diag=c.dump)
    assert not emus[leader.name].fired(), harness.tail(emus[leader.name].log_path)
    c.wait_healthy(120)
    assert not emus[leader.name].fired(), harness.tail(emus[leader.name].log_path)


def nft(*args):
    r = subprocess.run(["nft"] + list(args), capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, "nft %s: %s" % (" ".join(args), r.stderr)


def test_leader_cut_off_from_etcd_stops_writing_before_expiry(make_cluster):
    if not shutil.which("nft"):
        pytest.skip("nft is missing (Debian package nftables: scripts/install-deps.sh test)")
    c, emus, leader = watched_cluster(make_cluster)
    wait_armed(c, leader)
    table = "pgwt_%d" % os.getpid()
    cg = os.path.relpath(leader.cgroup.path, "/sys/fs/cgroup")  # nft resolves it there
    nft("add", "table", "inet", table)
    try:
        nft("add", "chain", "inet", table, "out",
            "{ type filter hook output priority 0; }")
        nft("add", "rule", "inet", table, "out", "socket", "cgroupv2", "level", "1",
            '"%s"' % cg, "tcp", "dport", str(c.etcd.client_port), "drop")
        mon = Monitor(c, leader)
        mon.start()
        t_cut = time.monotonic()
        log("cut %s off from etcd (cgroup %s, port %d)" % (leader.name, cg,
                                                          c.etcd.client_port))
        try:
            wait_until(lambda: mon.promoted is not None and mon.key_gone is not None, 60,
                       "a new primary", diag=c.dump)
        finally:
            mon.finish()
        assert not mon.two_writers, "two nodes accepted writes: %s" % mon.two_writers
        assert mon.old_last_write is not None
        # end of writes on the old leader < lease expiry < promotion of the new one
        assert mon.old_last_write < mon.key_gone <= mon.promoted, (
            mon.old_last_write, mon.key_gone, mon.promoted)
        figure("cut off: last write on the old leader -> lease expiry",
               mon.key_gone - mon.old_last_write)
        figure("cut off: cut -> new primary", mon.promoted - t_cut)
        # it stopped writing by itself (demoted before D - R): no reset was needed
        log("emulator of %s: %s" % (leader.name, emus[leader.name].fired()))
    finally:
        nft("delete", "table", "inet", table)


def test_required_without_device_never_leads_automatic_does(make_cluster):
    c = make_cluster(3, start=False, node_overrides={
        "node1": {"watchdog": {"mode": "off"}},
        "node2": wd_overrides("required", "/nonexistent/watchdog"),
        "node3": wd_overrides("automatic", "/nonexistent/watchdog")})
    for n in c.nodes:
        n.config["bootstrap"]["dcs"].update(ttl=TTL, loop_wait=LOOP_WAIT, retry_timeout=RETRY)
        n.write_config()
    c.start(nodes=False)
    c.nodes[0].start()
    wait_until(lambda: c.leader_name() == "node1", 120, "node1 bootstrapping", diag=c.dump)
    c.nodes[1].start()
    c.nodes[2].start()
    c.wait_healthy(180)
    node2, node3 = c.nodes[1], c.nodes[2]
    st, js = node2.rest("/patroni")
    assert js.get("watchdog_failed") is True, js
    assert "/nonexistent/watchdog" in js["pgwarden"]["watchdog"]["reason"], js
    rc, out, err = ctl(c, "list")
    assert rc == 0 and "FAILED (required)" in out and "unavailable" in out, out + err
    # node1's machine dies: node2 would win the election by name, but may not lead
    c.nodes[0].kill_machine()
    wait_until(lambda: c.leader_name() == "node3" and node3.accepts_writes(), 60,
               "node3 (automatic) taking over", diag=c.dump)
    assert not node2.accepts_writes()
    # (node2 may never have seen the cluster without a leader: node3 can take the key
    # between two of its loops, so its log need not show the watchdog-no-election row)
    assert (node2.rest("/patroni")[1] or {}).get("watchdog_failed") is True
    assert "mode automatic" in node3.log_text()


def test_systemd_notifications(make_cluster):
    c = make_cluster(1, start=False)
    node = c.nodes[0]
    path = os.path.join(c.dir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o777)  # the daemon sends as postgres
    sock.settimeout(0.5)
    node.extra_env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}
    msgs = []

    def drain(until, pred):
        while time.monotonic() < until:
            try:
                msgs.append(sock.recv(4096).decode())
            except socket.timeout:
                pass
            if pred():
                return True
        return False

    try:
        c.start()
        assert drain(time.monotonic() + 120, lambda: any("READY=1" in m for m in msgs)), msgs
        ready = [m for m in msgs if "READY=1" in m]
        # pgwarden's own, once, with a status; PostgreSQL (built with systemd support)
        # must not send its READY=1 to pgwarden's socket
        assert len(ready) == 1 and "STATUS=" in ready[0], msgs
        assert drain(time.monotonic() + 30,
                     lambda: sum("WATCHDOG=1" in m for m in msgs) >= 3
                     and any("STATUS=primary holding the leader key" in m for m in msgs)), msgs
        node.stop_daemon()
        assert drain(time.monotonic() + 10, lambda: any("STOPPING=1" in m for m in msgs)), msgs
        figure("notifications received", len(msgs), "")
    finally:
        sock.close()


def test_restarted_leader_daemon_releases_its_stale_key(make_cluster):
    """Issue 14: the leader's daemon is killed and started again at once (systemd's
    Restart=), its PostgreSQL still running, the watchdog required.  The new daemon stops
    the leftover primary before it opens the device, and then found its own leader key on
    the old lease, which it cannot know: it waited for it to expire, and the cluster had no
    primary for up to ttl (32.5 s at ttl 30).  Now it releases the key with the leader
    record marked released (its PostgreSQL is stopped: nobody needs to fence it), and the
    best member takes over at once.  Every row written before the kill survives."""
    ttl = 30
    ov = wd_overrides()
    ov["bootstrap"]["dcs"].update({"ttl": ttl, "synchronous_mode": True})
    c = make_cluster(3, start=False, overrides=ov)
    emus = harness.start_watchdog_emulators(c)
    c.start()
    old = c.wait_healthy(180)
    wait_until(lambda: c.key("sync") is not None, 60, "a synchronous standby", diag=c.dump)
    old.sql("CREATE TABLE IF NOT EXISTS ha_rows (tag text)")
    old.sql("INSERT INTO ha_rows VALUES ('before-kill')")
    t0 = time.monotonic()
    os.kill(old.daemon_pid, signal.SIGKILL)
    old.wait_exit(10)
    old.start(restart_daemon=True)
    log("killed the daemon of leader %s and started it again" % old.name)
    wait_until(lambda: c.leader_name() != old.name, ttl, "the old key to go",
               interval=0.1, diag=c.dump)
    gone = time.monotonic() - t0
    wait_until(lambda: c.leader_name() is not None and
               c.node(c.leader_name()).accepts_writes(), 60, "a writable primary",
               interval=0.1, diag=c.dump)
    figure("leader daemon killed and restarted (watchdog, ttl %d) -> writable primary" % ttl,
           time.monotonic() - t0)
    text = open(old.log_path).read()
    assert "release-stale-own-key" in text, text[-3000:]
    assert gone < ttl - 5, "the key expired instead of being released (%.1f s)" % gone
    c.wait_healthy(120)
    new = c.node(c.leader_name())
    assert new.sql1("SELECT count(*) FROM ha_rows WHERE tag = 'before-kill'") == 1
    assert not any(e.fired() for e in emus.values())
