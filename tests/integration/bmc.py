"""bmc.py - simulated BMCs (OpenIPMI's ipmi_sim) on 127.0.0.1 for the fencing tests.

One Bmc per test node.  It answers IPMI 1.5 and 2.0 (RMCP+, cipher suites 0-14; use 3) on
its own UDP port, with one user, and ties chassis power to the node's cgroup v2 directory
(the "machine" of harness.Node):

    power status  on while the cgroup has processes;
    power off     `1 > cgroup.kill`: every process of the node dies (also frozen ones and
                  ones that left their process group, e.g. pg_ctl's postmaster), before the
                  IPMI reply - or off_delay seconds after it, like real BMCs, so a client
                  has to poll the status to see it;
    power on      thaws the cgroup and runs NODEDIR/power-on.cmd inside it (set it with
                  set_power_on_cmd(), e.g. to start the node's daemon again), and/or calls
                  on_power_on() from a watcher thread (e.g. harness Node.start, which keeps
                  the Node's Popen object right);
    reset         off, then on; soft: SIGTERM to every process of the node.

The programs and templates are in tests/ipmi/ (chassis.sh, lan.conf.in, cmds.emu).  Every
chassis call is logged with its CLOCK_MONOTONIC time (the clock of time.monotonic()), see
events().  ipmi_sim runs outside the node's cgroup under a small supervisor (this file run
as a script) that is the child subreaper of everything the BMC starts, so the node's killed
processes are reaped there and never pile up as zombies of the test.

    b = Bmc(node.dir, None, node.cgroup.path, "admin", "adminpass").start()
    b.address                       # "127.0.0.1:PORT" for the member's bmc.address
    b.power_state()                 # "on" / "off", read from the cgroup
    b.events("off")                 # [(mono, "off", {"result": "killed", "procs": "3", ...})]
    b.pause(); b.resume()           # SIGSTOP/SIGCONT: a BMC that stops answering
    b.stop()                        # the BMC is gone (the node keeps running)

Registered with harness.register, so harness.cleanup_all() stops it; it never touches the
node's cgroup on cleanup (the Node owns it).  Facts about ipmi_sim this relies on are in
the header of tests/ipmi/chassis.sh and were measured with openipmi 2.0.33.
"""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log, register, unregister, wait_until  # noqa: E402

IPMI_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ipmi")
IPMI_SIM = os.environ.get("IPMI_SIM") or shutil.which("ipmi_sim") or "/usr/bin/ipmi_sim"
IPMITOOL = shutil.which("ipmitool") or "/usr/bin/ipmitool"

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_PDEATHSIG = 1


def unavailable():
    """None when simulated BMCs can run here, else the reason."""
    if not os.access(IPMI_SIM, os.X_OK):
        return "ipmi_sim is missing (install openipmi)"
    if not os.access(IPMITOOL, os.X_OK):
        return "ipmitool is missing (install ipmitool)"
    if os.geteuid() != 0:
        return "simulated BMCs kill cgroups: run as root"
    return None


def _udp_in_use(port):
    r = subprocess.run(["ss", "-Hulnp", "sport = :%d" % port], capture_output=True, text=True)
    return r.stdout.strip()


def free_udp_port():
    """A UDP port on 127.0.0.1 nobody uses, not handed out before in this run.  ipmi_sim
    binds with SO_REUSEADDR, so a taken port would be shared silently: check with ss."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port in harness._used_ports:
            continue
        harness._used_ports.add(port)
        if not _udp_in_use(port):
            return port
    raise RuntimeError("no free UDP port found")


class Bmc:
    def __init__(self, node_dir, port, cgroup_path, user="admin", password="adminpass",
                 off_delay=0.0, on_power_on=None, name=None, bind="127.0.0.1"):
        """node_dir: where the BMC keeps its files (bmc.conf, bmc-lan.conf, bmc-state/,
        chassis.log, power-on.cmd, ...); port: UDP port (None: pick a free one);
        cgroup_path: the node's cgroup v2 directory; off_delay: seconds between the reply
        to "power off" and the power actually going off; on_power_on: called (from a
        thread) after each power on that found no power-on.cmd to run; it may also be
        assigned later (b.on_power_on = node.start); bind: the IPv4 address ipmi_sim
        listens on (tests/faults/ uses its bridge's address, so other network namespaces
        reach the BMC)."""
        self.dir = os.path.abspath(node_dir)
        os.makedirs(self.dir, exist_ok=True)
        self.bind = bind
        self.port = port or free_udp_port()
        self.cgroup_path = cgroup_path
        self.user = user
        self.password = password
        self.off_delay = off_delay
        self.on_power_on = on_power_on
        self.name = name or os.path.basename(self.dir.rstrip("/"))
        self.proc = None            # the supervisor
        self.sim_pid = None         # ipmi_sim itself
        self.log_path = os.path.join(self.dir, "bmc-ipmi_sim.log")
        self.chassis_log = os.path.join(self.dir, "chassis.log")
        self._watcher = None
        self._watch_stop = threading.Event()
        self._pwfiles = 0
        register(self)

    def __repr__(self):
        return "Bmc(%s %s)" % (self.name, self.address)

    @property
    def address(self):
        return "%s:%d" % (self.bind, self.port)

    # -- files ----------------------------------------------------------------------------
    def _write_conf(self):
        with open(os.path.join(self.dir, "bmc.conf"), "w") as f:
            f.write("# written by tests/integration/bmc.py, sourced by tests/ipmi/chassis.sh\n")
            f.write("CGROUP=%s\n" % shlex.quote(self.cgroup_path or ""))
            f.write("OFF_DELAY_MS=%d\n" % int(round(self.off_delay * 1000)))

    def set_cgroup(self, path):
        """Point the BMC at another cgroup (the node was recreated)."""
        self.cgroup_path = path
        self._write_conf()

    def set_off_delay(self, seconds):
        self.off_delay = seconds
        self._write_conf()

    def set_power_on_cmd(self, text):
        """NODEDIR/power-on.cmd: what power on starts inside the node's cgroup (gets NODEDIR
        as $1; stdout/stderr go to NODEDIR/power-on.log).  None removes it."""
        path = os.path.join(self.dir, "power-on.cmd")
        if text is None:
            if os.path.exists(path):
                os.unlink(path)
            return
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)

    def password_file(self, password=None, mode=0o600):
        """A file holding the password (or another one), for pgwarden-fence
        --password-file or a node's bmc.password_file."""
        pw = self.password if password is None else password
        self._pwfiles += 1
        path = os.path.join(self.dir, "bmc-password-%d" % self._pwfiles)
        with open(path, "w") as f:
            f.write(pw + "\n")
        os.chmod(path, mode)
        return path

    def credentials_line(self, member):
        """'MEMBER USER PASSWORD' for pgwarden's fencing credentials file."""
        return "%s %s %s\n" % (member, self.user, self.password)

    # -- process --------------------------------------------------------------------------
    def start(self, power_on=False):
        """Start ipmi_sim and wait until it answers a status query (0.1-0.3 s).  With
        power_on, power the node on first (runs power-on.cmd, without IPMI)."""
        assert self.proc is None or self.proc.poll() is not None, "%r already running" % self
        if _udp_in_use(self.port):
            raise RuntimeError("UDP port %d is in use: %s" % (self.port, _udp_in_use(self.port)))
        self._write_conf()
        state = os.path.join(self.dir, "bmc-state")
        shutil.rmtree(state, ignore_errors=True)  # persisted users would override lan.conf
        os.makedirs(state)
        with open(os.path.join(IPMI_DIR, "lan.conf.in")) as f:
            conf = f.read()
        chassis = "%s %s" % (os.path.join(IPMI_DIR, "chassis.sh"), self.dir)
        for k, v in (("@NAME@", "bmc%d" % self.port), ("@PORT@", str(self.port)),
                     ("@CHASSIS@", chassis), ("@USER@", self.user), ("@PASS@", self.password)):
            conf = conf.replace(k, v)
        conf = conf.replace("addr 127.0.0.1 ", "addr %s " % self.bind)
        lan = os.path.join(self.dir, "bmc-lan.conf")
        with open(lan, "w") as f:
            f.write(conf)
        os.chmod(lan, 0o600)
        if power_on:
            self.chassis("set", "power", "1")
        pidfile = os.path.join(self.dir, "bmc-ipmi_sim.pid")
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        cmd = [sys.executable, os.path.abspath(__file__), "supervise", pidfile, "--",
               IPMI_SIM, "-c", lan, "-f", os.path.join(IPMI_DIR, "cmds.emu"), "-s", state, "-n"]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, env=harness.clean_env(),
                                         start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("ipmi_sim exited:\n" + harness.tail(self.log_path))
            if self.sim_pid is None:
                try:
                    with open(pidfile) as f:
                        self.sim_pid = int(f.read().strip())
                except (OSError, ValueError):
                    return False
            if "pid=%d," % self.sim_pid not in _udp_in_use(self.port):
                return False
            return self.status_ipmitool(timeout=1) is not None

        self.sim_pid = None
        wait_until(ready, 10, "%r to answer" % self, interval=0.05)
        if self._watcher is None:  # on_power_on may also be set later
            self._watch_stop.clear()
            self._watcher = threading.Thread(target=self._watch, name="bmc-%s" % self.name,
                                             daemon=True)
            self._watcher.start()
        log("%r up (ipmi_sim pid %d, cgroup %s)" % (self, self.sim_pid, self.cgroup_path))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pause(self):
        """SIGSTOP ipmi_sim: the BMC stops answering (packets queue in its socket and are
        processed on resume())."""
        os.kill(self.sim_pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.sim_pid, signal.SIGCONT)

    def stop(self):
        """Stop the BMC.  The node keeps whatever power it had (as with a real BMC reset)."""
        if self.sim_pid:
            try:
                os.kill(self.sim_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        harness.terminate(self.proc, 10)

    def cleanup(self):
        unregister(self)
        self._watch_stop.set()
        self.stop()
        try:
            with open(os.path.join(self.dir, "offdelay.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)  # a pending delayed power off
        except (OSError, ValueError):
            pass
        if self._watcher is not None:
            self._watcher.join(5)
            self._watcher = None

    # -- power ----------------------------------------------------------------------------
    def power_state(self):
        """'on' or 'off', as the BMC would answer (the cgroup is populated or not)."""
        try:
            with open(os.path.join(self.cgroup_path, "cgroup.events")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "populated":
                        return "on" if v == "1" else "off"
        except (OSError, TypeError):
            pass
        return "off"

    def chassis(self, *args):
        """Run the chassis program directly (no IPMI), e.g. chassis("set", "power", "1")."""
        r = subprocess.run([os.path.join(IPMI_DIR, "chassis.sh"), self.dir] + list(args),
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, "chassis.sh %s: exit %d %s" % (args, r.returncode, r.stderr)
        return r.stdout

    def ipmitool(self, *args, timeout=10, password=None):
        """Run ipmitool against this BMC (lanplus, cipher 3; password via the environment)."""
        env = harness.clean_env({"IPMI_PASSWORD": self.password if password is None
                                 else password})
        return subprocess.run([IPMITOOL, "-I", "lanplus", "-C", "3", "-N", "1", "-R", "1",
                               "-H", self.bind, "-p", str(self.port), "-U", self.user, "-E"]
                              + list(args), capture_output=True, text=True, env=env,
                              timeout=timeout)

    def status_ipmitool(self, timeout=10):
        """'on' / 'off' through IPMI, None when the BMC does not answer."""
        try:
            r = self.ipmitool("chassis", "power", "status", timeout=timeout + 2)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        return "on" if "is on" in r.stdout else "off" if "is off" in r.stdout else None

    # -- the chassis log ------------------------------------------------------------------
    def events(self, kind=None, since=None):
        """[(mono, kind, {field: value})] from the chassis log, in order; kind is one of
        status, off, off-done, on, reset, soft; fields: result (on/off for status;
        killed/already-off/accepted/failed for off; started/requested/already-on/failed
        for on) and key=value extras (procs, ms, pids, delay_ms).  mono is CLOCK_MONOTONIC
        seconds (time.monotonic()); since: only events at or after that time."""
        out = []
        offset = time.time() - time.monotonic()
        try:
            with open(self.chassis_log) as f:
                lines = f.readlines()
        except OSError:
            return out
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            mono = float(parts[0]) if parts[0] != "-" else float(parts[1]) - offset
            if kind is not None and parts[2] != kind:
                continue
            if since is not None and mono < since:
                continue
            fields = {"result": parts[3]}
            fields.update(p.split("=", 1) for p in parts[4:] if "=" in p)
            out.append((mono, parts[2], fields))
        return out

    def power_offs(self, since=None):
        """CLOCK_MONOTONIC times at which this BMC cut the node's power."""
        return [t for t, k, f in self.events(since=since)
                if k in ("off", "off-done", "reset") and f["result"] == "killed"]

    def _watch(self):
        seen = len(self.events("on"))
        while not self._watch_stop.wait(0.05):
            evs = self.events("on")
            for _, _, f in evs[seen:]:
                if f["result"] == "requested" and self.on_power_on is not None:
                    try:
                        self.on_power_on()
                    except Exception as e:  # noqa: BLE001 - keep watching
                        log("%r: power-on callback failed: %s" % (self, e))
            seen = len(evs)


# ---------------------------------------------------------------------------------------
# supervisor: `python3 bmc.py supervise PIDFILE -- ipmi_sim ARGS...`
# ---------------------------------------------------------------------------------------

def _supervise(pidfile, cmd):
    """Run ipmi_sim as our child, be the child subreaper of everything it starts (the
    chassis program and the node's processes it powers on), reap them all, forward
    SIGTERM/SIGINT to ipmi_sim and exit with it.  Both die with the test process (parent
    death signal; Bmc.start() must be called from a thread that outlives the BMC, e.g.
    the main thread)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # a test run that dies without cleaning up (SIGKILL) takes its BMCs along
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:
        return 1
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=lambda: libc.prctl(
        _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0))
    with open(pidfile + ".tmp", "w") as f:
        f.write("%d\n" % child.pid)
    os.rename(pidfile + ".tmp", pidfile)

    def forward(signum, frame):
        try:
            os.kill(child.pid, signal.SIGCONT)
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while True:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child.pid:
            status = os.waitstatus_to_exitcode(st)
            child.returncode = status
            break
    try:
        os.unlink(pidfile)
    except OSError:
        pass
    # orphans still running (the node) are left alone; they go to the next subreaper
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "supervise" and sys.argv[3] == "--":
        sys.exit(_supervise(sys.argv[2], sys.argv[4:]))
    print("usage: bmc.py supervise PIDFILE -- IPMI_SIM ARGS...", file=sys.stderr)
    sys.exit(2)
