"""The device half of fencing (ARCHITECTURE.md S3, timing rule 6) against real simulated
BMCs: fencing/fence.c, through build/<variant>/pgwarden-fence (the same code the daemon
calls), talks IPMI to one OpenIPMI ipmi_sim per test (tests/integration/bmc.py) whose
power off kills every process of a cgroup standing in for the server.

- power off through each backend - native libfreeipmi, ipmitool, Debian's fence_ipmilan as
  an external agent - kills all of the node's processes (also one that left its process
  group), and only then is it reported confirmed; status reads off; power on runs the
  node's power-on command again;
- a BMC that powers off a moment after its reply (like real BMCs): the fence polls the
  status until off; one that needs longer than the bound: not confirmed, and the power
  still goes off later (a timed-out fence proves nothing);
- wrong password: fails at once with a clear reason (and without the password), nothing
  is powered off;
- BMC stopped or hung (SIGSTOP): fails within --timeout, nothing is powered off;
- credentials: a peers' credentials file works; one group or others may read is refused;
- IPMI 1.5 (--lan) works too; power on can call back into the test (bmc.on_power_on);
- an audit record reaches the journal with its MESSAGE_ID and PGW_FENCE_* fields.

Figures (medians of PGWT_FENCE_TRIALS, default 5): the time of a confirmed power off per
backend, and when the node died relative to the start of the fence.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import pytest

import bmc
import harness
from harness import figure, log, wait_until

FENCE_BIN = os.environ.get("PGWARDEN_FENCE",
                           os.path.join(os.path.dirname(harness.PGWARDEN_BIN), "pgwarden-fence"))
FENCE_IPMILAN = shutil.which("fence_ipmilan") or "/usr/sbin/fence_ipmilan"
TRIALS = int(os.environ.get("PGWT_FENCE_TRIALS", "5"))

# The simulated server: the exec'd main process, a child in its process group, and one
# that left the group (setsid), as pg_ctl's postmaster does.
WORKLOAD = """#!/bin/sh
sleep 600 &
setsid sleep 601 &
exec sleep 602
"""
NPROCS = 3

METHODS = {
    "native": [],
    "ipmitool": ["--ipmitool"],
    "fence_ipmilan": ["--agent", FENCE_IPMILAN, "--cipher", "3"],
}

pytestmark = pytest.mark.skipif(bmc.unavailable() is not None,
                                reason="simulated BMCs: %s" % bmc.unavailable())

_count = [0]


@pytest.fixture
def node(request):
    """A cgroup "server" running WORKLOAD, with its own simulated BMC (admin/adminpass)."""
    if not os.access(FENCE_BIN, os.X_OK):
        pytest.fail("%s is missing: build it with `make asan` (or set PGWARDEN_FENCE)"
                    % FENCE_BIN, pytrace=False)
    failed_before = request.session.testsfailed
    _count[0] += 1
    d = tempfile.mkdtemp(prefix="pgwt-%s-fence%d-" % (harness.RUN_ID, _count[0]),
                         dir=harness.TMPROOT)
    cg = harness.new_cgroup("fence%d" % _count[0])
    b = bmc.Bmc(d, None, cg.path, "admin", "adminpass", name="fence%d" % _count[0])
    b.set_power_on_cmd(WORKLOAD)
    b.start(power_on=True)
    wait_until(lambda: len(cg.procs()) == NPROCS, 5, "the node's %d processes" % NPROCS)
    yield SimpleNamespace(bmc=b, cgroup=cg, dir=d, password_file=b.password_file())
    b.cleanup()
    cg.remove()
    harness.unregister(cg)
    if request.session.testsfailed == failed_before:
        shutil.rmtree(d, ignore_errors=True)
    else:
        log("kept %s (chassis.log, bmc-ipmi_sim.log)" % d)


def fence(n, action, *extra, password_file=None, timeout=10):
    """Run pgwarden-fence ACTION against the node's BMC: (exit, output, elapsed ms)."""
    cmd = [FENCE_BIN, action, "--bmc", n.bmc.address]
    if "--credentials" not in extra:
        cmd += ["--user", "admin", "--password-file", password_file or n.password_file]
    cmd += ["--timeout", str(timeout)] + list(extra)
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * 3 + 30,
                       env=harness.clean_env())
    ms = (time.monotonic() - t0) * 1000
    out = (r.stdout + r.stderr).strip()
    log("pgwarden-fence %s %s -> %d in %.0f ms: %s" % (action, " ".join(extra), r.returncode,
                                                      ms, out))
    return r.returncode, out, ms


def skip_unless(method):
    if method == "fence_ipmilan" and not os.access(FENCE_IPMILAN, os.X_OK):
        pytest.skip("fence_ipmilan is missing (install fence-agents)")


@pytest.mark.parametrize("method", list(METHODS))
def test_off_kills_node_then_on(node, method):
    skip_unless(method)
    times, dead = [], []
    for trial in range(TRIALS):
        pids = node.cgroup.procs()
        assert len(pids) == NPROCS
        t0 = time.monotonic()
        rc, out, ms = fence(node, "off", *METHODS[method])
        t1 = time.monotonic()
        assert rc == 0, out
        assert "power off confirmed" in out
        # confirmed means dead: nothing of the node is left, not even the setsid'd process
        assert not node.cgroup.populated(), node.cgroup.procs()
        assert not [p for p in pids if harness.pid_alive(p)]
        assert node.bmc.power_state() == "off"
        offs = node.bmc.power_offs(since=t0)
        assert len(offs) == 1 and t0 <= offs[0] <= t1, node.bmc.events(since=t0)
        times.append(ms)
        dead.append((offs[0] - t0) * 1000)

        rc, out, _ = fence(node, "status", *METHODS[method])
        assert rc == 0 and out.splitlines()[0] == "off", out
        rc, out, _ = fence(node, "on", *METHODS[method])
        assert rc == 0 and "power on confirmed" in out, out
        wait_until(lambda: len(node.cgroup.procs()) == NPROCS, 5, "the node to boot again")
        rc, out, _ = fence(node, "status", *METHODS[method])
        assert rc == 0 and out.splitlines()[0] == "on", out
    figure("%s: confirmed power off, median of %d" % (method, TRIALS),
           statistics.median(times), "ms")
    figure("%s: node dead after (from start), median" % method, statistics.median(dead), "ms")
    log("%s: confirmed off in %s ms" % (method, ", ".join("%.0f" % t for t in times)))


@pytest.mark.parametrize("method", ["native", "fence_ipmilan"])
def test_delayed_off_is_polled_until_off(node, method):
    """The BMC answers "done" at once and cuts the power 0.6 s later: the fence is
    confirmed only once the status reads off, and by then the node is dead."""
    skip_unless(method)
    node.bmc.set_off_delay(0.6)
    t0 = time.monotonic()
    rc, out, ms = fence(node, "off", *METHODS[method])
    assert rc == 0, out
    assert ms >= 600, out
    assert not node.cgroup.populated()
    done = node.bmc.events("off-done", since=t0)
    assert len(done) == 1 and done[0][2]["result"] == "killed", node.bmc.events(since=t0)
    if method == "native":
        assert "status reads" in out  # more than one: it polled (fence_ipmilan polls itself)
    figure("%s: confirmed off, BMC cuts power 0.6 s after its reply" % method, ms, "ms")


def test_unconfirmed_off_within_bound(node):
    """A BMC slower than the bound: the fence fails (not confirmed) within --timeout, and
    the power still goes off afterwards - a failed fence proves nothing either way."""
    node.bmc.set_off_delay(2.0)
    rc, out, ms = fence(node, "off", timeout=0.8)
    assert rc == 1
    assert "not confirmed" in out and "still reports power on" in out, out
    assert ms < 800 + 300, out
    assert node.cgroup.populated()
    wait_until(lambda: not node.cgroup.populated(), 5, "the accepted power off to happen")


WRONG_PASSWORD = {
    "native": "password invalid",
    "ipmitool": "Unable to establish IPMI v2 / RMCP+ session",
    "fence_ipmilan": "Unable to obtain correct plug status",
}


@pytest.mark.parametrize("method", list(METHODS))
def test_wrong_password_powers_nothing_off(node, method):
    skip_unless(method)
    pids = node.cgroup.procs()
    t0 = time.monotonic()
    bad = node.bmc.password_file("not-the-password")
    rc, out, ms = fence(node, "off", *METHODS[method], password_file=bad)
    assert rc == 1
    assert "not confirmed" in out and WRONG_PASSWORD[method] in out, out
    assert "not-the-password" not in out and "adminpass" not in out
    assert ms < 5000, out  # no waiting for a timeout: the BMC says no
    assert node.cgroup.procs() == pids
    assert node.bmc.events("off", since=t0) == []
    figure("%s: wrong password reported after" % method, ms, "ms")


@pytest.mark.parametrize("how", ["stopped", "hung"])
@pytest.mark.parametrize("method", list(METHODS))
def test_unreachable_bmc_fails_within_timeout(node, method, how):
    skip_unless(method)
    pids = node.cgroup.procs()
    if how == "stopped":
        node.bmc.stop()
    else:
        node.bmc.pause()
    rc, out, ms = fence(node, "off", *METHODS[method], timeout=2)
    assert rc == 1
    assert "not confirmed" in out, out
    # the bound plus process start-up; fence_ipmilan's own default would be 20 s
    assert ms < 2000 + 400, out
    if how == "hung":
        node.bmc.resume()  # what it queued meanwhile is only session set-up, no power command
        time.sleep(1)
        assert node.bmc.status_ipmitool() == "on"
    assert node.cgroup.procs() == pids
    figure("%s: BMC %s, --timeout 2 failed after" % (method, how), ms, "ms")


def test_credentials_file_and_modes(node):
    creds = os.path.join(node.dir, "fencing.secret")
    with open(creds, "w") as f:
        f.write("# peers' BMC credentials\nnode9 nobody nothing\n")
        f.write(node.bmc.credentials_line("default"))
    os.chmod(creds, 0o600)
    rc, out, _ = fence(node, "status", "--credentials", creds, "--member", "node1")
    assert rc == 0 and out.startswith("on"), out
    rc, out, _ = fence(node, "status", "--credentials", creds, "--member", "node9")
    assert rc == 1 and "username invalid" in out, out

    os.chmod(creds, 0o644)
    rc, out, _ = fence(node, "off", "--credentials", creds, "--member", "node1")
    assert rc == 1
    assert creds in out and "mode 0644" in out, out
    os.chmod(node.password_file, 0o640)
    rc, out, _ = fence(node, "off")
    assert rc == 1 and "mode 0640" in out, out
    assert node.cgroup.populated()
    assert node.bmc.events("off") == []


def test_ipmi_1_5(node):
    """IPMI 1.5 (--lan, MD5 session) works too; lanplus is the default."""
    rc, out, _ = fence(node, "status", "--lan")
    assert rc == 0 and out.startswith("on") and "native IPMI 1.5" in out, out
    rc, out, _ = fence(node, "off", "--lan")
    assert rc == 0, out
    assert not node.cgroup.populated()


JOURNAL_LISTENER = r"""
import os, socket, subprocess, sys
os.makedirs("/run/systemd/journal", exist_ok=True)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/systemd/journal/socket")
s.settimeout(10)
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
sys.stdout.write(s.recv(65536).decode("utf-8", "replace"))
"""


def test_audit_record_reaches_the_journal(tmp_path):
    """Each audit record also goes to the journal with its MESSAGE_ID and PGW_FENCE_*
    fields.  journald is not running here: a listener on its socket stands in, inside a
    private mount namespace (a tmpfs over /run/systemd), so nothing on the host sees it."""
    if not os.path.isdir("/run/systemd") or not shutil.which("unshare"):
        pytest.skip("needs /run/systemd and unshare")
    audit_h = os.path.join(os.path.dirname(__file__), "..", "..", "fencing", "audit.h")
    with open(audit_h) as f:
        msgid = [line.split('"')[1] for line in f if "define PGW_AUDIT_MESSAGE_ID" in line][0]
    log_path = str(tmp_path / "fencing.log")
    cmd = [FENCE_BIN, "append", log_path, "--action", "fence-result", "--target", "node1",
           "--bmc", "127.0.0.1:623", "--result", "off-confirmed", "--reason", "BMC confirmed",
           "--cluster", "pgt", "--actor", "node2"]
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        'mount --make-rprivate / && mount -t tmpfs pgwt /run/systemd && '
                        'exec "$0" -c "$@"', sys.executable, JOURNAL_LISTENER] + cmd,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    fields = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    with open(log_path) as f:
        rec = json.loads(f.readline())
    assert fields["MESSAGE_ID"] == msgid
    assert fields["PGW_FENCE_ACTION"] == "fence-result"
    assert fields["PGW_FENCE_TARGET"] == "node1"
    assert fields["PGW_FENCE_RESULT"] == "off-confirmed"
    assert fields["PGW_FENCE_BMC"] == "127.0.0.1:623"
    assert fields["PGW_FENCE_SEQ"] == "1"
    assert fields["PGW_FENCE_HASH"] == rec["hash"]
    assert fields["PGW_FENCE_CLUSTER"] == "pgt" and fields["PGW_FENCE_ACTOR"] == "node2"


def test_power_on_callback(node):
    """Without a power-on.cmd, power on calls bmc.on_power_on (assigned after start, as a
    test does with harness Node.start): the fence is confirmed once the callback booted
    the node."""
    started = []

    def boot():
        p = subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec sleep 600',
                              node.cgroup.path], start_new_session=True)
        started.append(p)

    node.bmc.set_power_on_cmd(None)
    node.bmc.on_power_on = boot
    rc, out, _ = fence(node, "off")
    assert rc == 0, out
    rc, out, _ = fence(node, "on")
    assert rc == 0 and "power on confirmed" in out, out
    assert len(started) == 1 and node.cgroup.procs() == [started[0].pid]
    assert [f["result"] for _, _, f in node.bmc.events("on")][-1] == "requested"
    node.cgroup.kill()
    started[0].wait(5)


def test_keyed_audit_chain_from_the_command_line(tmp_path):
    """Issue 11, item 15, with the installed tool: a chain written with the key verifies
    only with it; the postgres user's rewrite as a plain chain (what a database superuser
    could do through COPY ... TO PROGRAM) fools the plain verifier, not the keyed one; a
    key file the postgres user could read is refused."""
    if os.geteuid() != 0:
        pytest.skip("the key file must be root's")
    key = str(tmp_path / "audit.key")
    with open(key, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(key, 0o600)
    log_path = str(tmp_path / "fencing.log")

    def fence(*args):
        return subprocess.run([FENCE_BIN] + list(args), capture_output=True, text=True,
                              timeout=30)
    for action in ("fence-intent", "fence-result", "promote"):
        r = fence("append", log_path, "--action", action, "--target", "node1", "--key", key)
        assert r.returncode == 0, r.stderr
    assert fence("verify-all", log_path, "--key", key).returncode == 0
    r = fence("verify-all", log_path)
    assert r.returncode == 1 and "hash mismatch" in r.stderr, r.stderr
    # the rewrite: the same records as a plain chain
    forged = str(tmp_path / "forged.log")
    for action in ("fence-intent", "fence-result", "promote"):
        assert fence("append", forged, "--action", action, "--target", "node9").returncode == 0
    assert fence("verify-all", forged).returncode == 0
    r = fence("verify-all", forged, "--key", key)
    assert r.returncode == 1 and "chained without the key" in r.stderr, r.stderr
    os.chmod(key, 0o640)
    r = fence("verify-all", log_path, "--key", key)
    assert r.returncode == 3 and "readable by nobody else" in r.stderr, r.stderr
