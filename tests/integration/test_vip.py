"""The virtual IP (issue 15) on real machines: three pgwarden nodes, each in its own network
namespace on one bridge (tests/faults/rig.py: etcd, BMCs, watchdog emulators, cgroups), and a
client namespace on the same bridge.

One run, in order:
  - the leader holds the VIP (and no one else); a client connects to PostgreSQL at the VIP
    and writes;
  - a switchover: the old leader removes the VIP before the new one adds it (the kernels'
    address events, timestamped by `ip -ts monitor address` in every node namespace);
  - a power loss of the leader (its cgroup killed; the address goes with the machine's
    RAM): the new primary adds the VIP, its gratuitous ARPs move the client's neighbour
    entry before the client sends anything, the client writes there and reads the earlier
    rows;
  - the old node is powered on and rejoins as a replica: it never holds the VIP again;
  - an address put by hand on a replica (a leftover) is removed by its daemon.
Throughout, no two nodes hold the VIP at once (the hand-made leftover aside).
Everything (namespaces, veths, bridge, cgroups, tmpfs, monitors) is removed even on failure.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "faults"))

import harness  # noqa: E402
from harness import log, wait_until  # noqa: E402

IFACE = "eth0"


class AddrWatch:
    """`ip -ts -o monitor address` in each node namespace: (time, node, added?) of the VIP."""

    STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] (Deleted )?\d+: (\S+)\s+inet (\S+)")

    def __init__(self, rig, vip):
        self.vip = vip
        self.events = []
        self.lock = threading.Lock()
        self.procs = []
        for n in rig.nodes:
            p = subprocess.Popen(["nsenter", "--net=" + n.machine.netns, "ip", "-ts", "-o",
                                  "monitor", "address"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, env=harness.clean_env())
            self.procs.append(p)
            threading.Thread(target=self._read, args=(n.name, p), daemon=True).start()
        time.sleep(0.3)

    def _read(self, name, p):
        import datetime
        for line in p.stdout:
            m = self.STAMP.match(line)
            if not m or m.group(4).split("/")[0] != self.vip:
                continue
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
            with self.lock:
                self.events.append((t, name, not m.group(2)))
            log("vip event: %s %s at %.6f" % (name, "added" if not m.group(2) else "removed", t))

    def snapshot(self):
        with self.lock:
            return sorted(self.events)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(5)


def holders_over_time(events, initial):
    """Replay the events: the largest set of simultaneous holders, and when."""
    held = set(initial)
    worst = (len(held), None, set(held))
    for t, name, added in events:
        if added:
            held.add(name)
        else:
            held.discard(name)
        if len(held) > worst[0]:
            worst = (len(held), t, set(held))
    return worst


def vip_holders(rig, vip):
    out = []
    for n in rig.nodes:
        r = n.machine.nsexec("ip", "-o", "-4", "addr", "show", "dev", IFACE, check=False)
        if re.search(r"inet %s/" % re.escape(vip), r.stdout):
            out.append(n.name)
    return out


def mac_of(node):
    # (not /sys/class/net: nsenter --net keeps the root namespace's sysfs)
    r = node.machine.nsexec("ip", "-o", "link", "show", "dev", IFACE)
    return re.search(r"link/ether (\S+)", r.stdout).group(1)


class Client:
    def __init__(self, rig, netns, vip):
        self.rig, self.netns, self.vip = rig, netns, vip

    def sql(self, query, timeout=8):
        import rig as rigmod
        env = harness.clean_env({"PGPASSWORD": rigmod.SUPERUSER_PASSWORD,
                                 "PGCONNECT_TIMEOUT": "2"})
        p = subprocess.run(["nsenter", "--net=" + self.netns,
                            os.path.join(harness.PG_BIN, "psql"), "-XAtq", "-v",
                            "ON_ERROR_STOP=1", "-h", self.vip, "-p", "5432", "-U",
                            rigmod.SUPERUSER, "-d", "postgres", "-c", query],
                           capture_output=True, text=True, timeout=timeout, env=env)
        if p.returncode != 0:
            raise AssertionError("psql at %s: %s" % (self.vip, p.stderr.strip()))
        return p.stdout.strip()

    def server(self):
        """The node that answers at the VIP (its data directory names it) and whether it
        is a primary."""
        out = self.sql("SELECT current_setting('data_directory'), pg_is_in_recovery()")
        d, rec = out.split("|")
        m = re.search(r"/(node\d)/disk/", d)
        return (m.group(1) if m else d), rec == "f"

    def neigh(self):
        r = subprocess.run(["nsenter", "--net=" + self.netns, "ip", "neigh", "show", self.vip],
                           capture_output=True, text=True, env=harness.clean_env())
        m = re.search(r"lladdr (\S+)", r.stdout)
        return m.group(1) if m else None


def patch_configs(rig, vip):
    """PostgreSQL listens on every address (the VIP comes and goes), and vip: is set."""
    for n in rig.nodes:
        orig = n.write_config

        def write(n=n, orig=orig):
            orig()
            with open(n.config_path) as f:
                text = f.read()
            text = re.sub(r'(?m)^(  listen: )"?%s:5432"?$' % re.escape(n.addr),
                          r'\g<1>"0.0.0.0:5432"', text)
            assert '"0.0.0.0:5432"' in text, text
            text += "vip:\n  address: %s/24\n  interface: %s\n  arp_notify: 3\n" % (vip, IFACE)
            with open(n.config_path, "w") as f:
                f.write(text)
        n.write_config = write


@pytest.fixture
def vrig():
    import rig as rigmod
    why = rigmod.setup_run()
    if why:
        pytest.skip(why)
    rundir = os.path.join("/tmp", "pgwf-%d-vip-%d" % (os.getpid(), int(time.time())))
    r = rigmod.Rig(rundir, "pgwarden", "tight", sync=False)
    watch = None
    try:
        vip = r.net.addr(100)
        patch_configs(r, vip)
        cl_ns, _ = r.net.add_machine("c", "client", 30)
        r.boot()
        watch = AddrWatch(r, vip)
        yield r, vip, Client(r, cl_ns, vip), watch
        assert not r.sanitizer_reports(), "sanitizer reports in %s" % r.sanitizer_reports()
    finally:
        if watch:
            watch.close()
        try:
            r.stop_daemons()
        finally:
            r.cleanup()
        harness.cleanup_all()


def test_vip_follows_the_primary(vrig):
    rig, vip, client, watch = vrig
    # 1. the leader holds the VIP, no one else does; a client writes through it
    leader = rig.node(rig.leader_name())
    wait_until(lambda: vip_holders(rig, vip) == [leader.name], 30,
               "the VIP on the leader %s only" % leader.name,
               diag=lambda: "holders %s\n%s" % (vip_holders(rig, vip), rig.dump()))
    initial = vip_holders(rig, vip)
    start = time.time()
    client.sql("CREATE TABLE vip_t (i int, node text)")
    client.sql("INSERT INTO vip_t VALUES (1, '%s')" % leader.name)
    assert client.server() == (leader.name, True)
    assert client.neigh() == mac_of(leader)

    # 2. switchover: the old leader removes the VIP before the new leader adds it
    cand = next(n for n in rig.nodes if n is not leader)
    # the switchover is refused until the candidate's member key says it is a running
    # replica (make test once saw "role: uninitialized" right after the bootstrap)
    wait_until(lambda: json.loads(rig.etcd_get("members/%s" % cand.name) or "{}")
               .get("role") == "replica", 60, "%s's member key to say replica" % cand.name)
    rc, out = rig.ctl("switchover", "--leader", leader.name, "--candidate", cand.name,
                      "--force")
    assert rc == 0, out
    wait_until(lambda: vip_holders(rig, vip) == [cand.name], 60,
               "the VIP on the new leader %s" % cand.name,
               diag=lambda: "holders %s\n%s" % (vip_holders(rig, vip), rig.dump()))
    ev = [e for e in watch.snapshot() if e[0] >= start]
    removed = [t for t, n, added in ev if n == leader.name and not added]
    added = [t for t, n, a in ev if n == cand.name and a]
    assert removed and added, ev
    assert removed[0] < added[0], "switchover: %s added the VIP at %.6f before %s removed " \
        "it at %.6f" % (cand.name, added[0], leader.name, removed[0])
    log("switchover: VIP removed on %s %.3f s before %s added it" % (
        leader.name, added[0] - removed[0], cand.name))
    wait_until(lambda: client.server() == (cand.name, True), 30,
               "the client reaching %s at the VIP" % cand.name)
    client.sql("INSERT INTO vip_t VALUES (2, '%s')" % cand.name)
    rig.wait_healthy(90)

    # 3. power loss of the leader: the new primary takes the VIP, its ARPs reach the client
    old = cand
    old_mac = mac_of(old)
    assert client.neigh() == old_mac
    t_off = time.time()
    old.machine.power_off()
    # a machine that loses power loses its addresses too (the namespace outlives the
    # cgroup here, so the test removes what the kernel's RAM would have lost)
    old.machine.nsexec("ip", "addr", "del", "%s/24" % vip, "dev", IFACE, check=False)
    log("powered off %s at %.3f" % (old.name, t_off))

    def new_holder():
        h = vip_holders(rig, vip)
        return h[0] if len(h) == 1 and h[0] != old.name else None
    new_name = wait_until(new_holder, 120, "a new primary holding the VIP",
                          diag=lambda: "holders %s\n%s" % (vip_holders(rig, vip), rig.dump()))
    new = rig.node(new_name)
    # the client has sent nothing since: only the gratuitous ARPs move its entry
    wait_until(lambda: client.neigh() == mac_of(new), 5,
               "the client's neighbour entry for the VIP moved to %s" % new.name,
               diag=lambda: "client neigh %s, %s has %s" % (client.neigh(), new.name,
                                                            mac_of(new)))
    wait_until(lambda: client.server() == (new.name, True), 30,
               "the client reaching the new primary %s at the VIP" % new.name)
    client.sql("INSERT INTO vip_t VALUES (3, '%s')" % new.name)
    rows = client.sql("SELECT count(*) FROM vip_t")
    assert rows == "3", rows

    # 4. the old node comes back as a replica and never holds the VIP again
    done = rig.restore_all()
    log("restore: %s" % done)
    rig.wait_healthy(180)
    time.sleep(2 * rig.timing["loop_wait"] + 2)
    assert vip_holders(rig, vip) == [new.name]
    again = [e for e in watch.snapshot() if e[1] == old.name and e[2] and e[0] > t_off]
    assert not again, "%s added the VIP again after its power loss: %s" % (old.name, again)
    assert client.server() == (new.name, True)

    # 5. no two holders at any instant so far
    worst = holders_over_time([e for e in watch.snapshot() if e[0] >= start], initial)
    assert worst[0] <= 1, "two nodes held the VIP at %s: %s" % (worst[1], worst[2])

    # 6. a leftover on a replica (a crashed daemon's, say) is removed by its daemon
    replica = next(n for n in rig.nodes if n is not new)
    t_left = time.time()
    replica.machine.nsexec("ip", "addr", "add", "%s/24" % vip, "dev", IFACE)
    wait_until(lambda: replica.name not in vip_holders(rig, vip),
               2 * rig.timing["loop_wait"] + 3, "%s removing the leftover VIP" % replica.name)
    gone = [t for t, n, a in watch.snapshot() if n == replica.name and not a and t > t_left]
    log("leftover removed by %s after %.3f s" % (replica.name, gone[0] - t_left))
    assert vip_holders(rig, vip) == [new.name]
    assert client.server() == (new.name, True)
