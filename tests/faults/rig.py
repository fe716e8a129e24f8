"""rig.py - "machines" for the fault campaign (issue 13): network namespaces on a bridge,
cgroups, simulated BMCs, watchdog emulators, three etcd members, and the pgwarden (or
Patroni) nodes running inside them.

Layout of one run (N derived from the pid, see pick_net()):

    bridge pgwfN 10.231.N.1/24 (root namespace)      BMCs: ipmi_sim on 10.231.N.1:<udp>
      veth pgwfNn1 <-> eth0 in /run/netns/pgwfN-node1 10.231.N.11   pgwarden, PostgreSQL :5432, REST :8008
      veth pgwfNn2 <-> eth0 in /run/netns/pgwfN-node2 10.231.N.12
      veth pgwfNn3 <-> eth0 in /run/netns/pgwfN-node3 10.231.N.13
      veth pgwfNe1 <-> eth0 in /run/netns/pgwfN-etcd1 10.231.N.21   etcd :2379/:2380
      ...  etcd2 .22, etcd3 .23

Each node and each etcd member is a cgroup v2 directory (harness.new_cgroup): kill = power
loss, cgroup.freeze = hung machine.  Processes are put into the cgroup first, then enter the
namespace with nsenter --net (ip netns exec would remount /sys and hide the cgroup fs).
A node's PostgreSQL data lives on a tmpfs of its own (NODEDIR/disk) so the disk can be
filled.  Everything is torn down by Rig.cleanup() (registered with harness.register), and
leftovers of dead runs are removed by remove_stale().
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness  # noqa: E402
import bmc as bmc_mod  # noqa: E402
from harness import log, register, unregister, wait_until  # noqa: E402

PGWARDEN_BIN = harness.PGWARDEN_BIN
PGWARDENCTL = os.path.join(os.path.dirname(PGWARDEN_BIN), "pgwardenctl")
PATRONI_BIN = os.environ.get("PATRONI_BIN", "/usr/bin/patroni")
ETCD_BIN = harness.ETCD_BIN
PG_BIN = harness.PG_BIN
SUPERUSER, SUPERUSER_PASSWORD = harness.SUPERUSER, harness.SUPERUSER_PASSWORD
REPL_USER, REPL_PASSWORD = harness.REPL_USER, harness.REPL_PASSWORD
BMC_USER, BMC_PASSWORD = "admin", "pgwf-bmc-pass"
REST_USER, REST_PASSWORD = "pgwf", "pgwf-rest-secret"
PG_PORT, REST_PORT, ETCD_CLIENT, ETCD_PEER = 5432, 8008, 2379, 2380
STATE_DIR = "/run/pgwf"          # one file per live run: N -> owner pid
DISK_SIZE = "512m"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sh(*cmd, check=True, timeout=30):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                       env=harness.clean_env())
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                                 (r.stderr or r.stdout).strip()))
    return r


def http(method, url, body=None, timeout=2.0, auth=None):
    """(status, parsed json or raw text) or (None, error) -- only the rig's addresses."""
    assert re.match(r"https?://10\.231\.\d+\.\d+:", url), url
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if auth:
        import base64
        headers["Authorization"] = "Basic " + base64.b64encode(
            ("%s:%s" % auth).encode()).decode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _NO_PROXY.open(req, timeout=timeout) as r:
            raw = r.read()
            st = r.status
    except urllib.error.HTTPError as e:
        raw, st = e.read(), e.code
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        return None, str(e)
    try:
        return st, json.loads(raw) if raw else None
    except ValueError:
        return st, raw.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------
# stale runs, network numbering
# ---------------------------------------------------------------------------------------

def _owner(n):
    try:
        with open(os.path.join(STATE_DIR, str(n))) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def remove_stale():
    """Remove namespaces, veths, bridges, mounts and cgroups of rig runs whose process is
    gone (crashed or SIGKILLed)."""
    harness.remove_stale_cgroups()
    os.makedirs(STATE_DIR, exist_ok=True)
    ns = sh("ip", "netns", "list", check=False).stdout.split("\n")
    links = sh("ip", "-o", "link", "show", check=False).stdout
    nums = set()
    for line in ns:
        m = re.match(r"pgwf(\d+)-", line)
        if m:
            nums.add(int(m.group(1)))
    for m in re.finditer(r"^\d+: (pgwf(\d+))[:@]", links, re.M):
        nums.add(int(m.group(2)))
    for f in os.listdir(STATE_DIR):
        if f.isdigit():
            nums.add(int(f))
    for n in sorted(nums):
        pid = _owner(n)
        if pid is not None and pid != os.getpid() and harness.pid_alive(pid):
            continue
        log("removing leftovers of dead rig run %d (owner %s)" % (n, pid))
        _teardown_net(n)
    # watchdog emulators of dead runs (they run outside the machines' cgroups)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"pgwarden-wdemu"):
            continue
        m = re.search(rb"/pgwf-(\d+)-[^/]*/node\d/watchdog\.sock", b" ".join(argv))
        if m and int(m.group(1)) != os.getpid() and not harness.pid_alive(int(m.group(1))):
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass
    # tmpfs disks of dead runs
    with open("/proc/self/mounts") as f:
        mounts = [l.split()[1] for l in f]
    for mp in mounts:
        m = re.search(r"/pgwf-(\d+)-[^/]*/node\d/disk$", mp)
        if m and not harness.pid_alive(int(m.group(1))):
            sh("umount", "-l", mp, check=False)


def setup_run():
    """None when the rig can run here, after installing the signal handlers, becoming
    the subreaper and removing stale runs; else why it cannot (a reason to skip)."""
    if os.geteuid() != 0:
        return "the fault rig needs root (namespaces, cgroups, tmpfs)"
    why = harness.preflight()
    if why:
        return why
    harness.install_handlers()
    harness.become_subreaper()
    remove_stale()
    return None


def _teardown_net(n):
    for line in sh("ip", "netns", "list", check=False).stdout.split("\n"):
        name = line.split(" ")[0]
        if name.startswith("pgwf%d-" % n):
            sh("ip", "netns", "del", name, check=False)
    links = sh("ip", "-o", "link", "show", check=False).stdout
    for m in re.finditer(r"^\d+: (pgwf%d[a-z0-9]*)[:@]" % n, links, re.M):
        sh("ip", "link", "del", m.group(1), check=False)
    try:
        os.unlink(os.path.join(STATE_DIR, str(n)))
    except OSError:
        pass


def pick_net():
    """A subnet number 1..250 derived from the pid, not used by a live run."""
    os.makedirs(STATE_DIR, exist_ok=True)
    base = os.getpid() % 250
    for i in range(250):
        n = (base + i) % 250 + 1
        path = os.path.join(STATE_DIR, str(n))
        if os.path.exists("/sys/class/net/pgwf%d" % n):
            continue
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _owner(n)
            if pid and harness.pid_alive(pid) and pid != os.getpid():
                continue
            os.unlink(path)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, b"%d\n" % os.getpid())
        os.close(fd)
        return n
    raise RuntimeError("no free 10.231.N.0/24 subnet")


# ---------------------------------------------------------------------------------------
# network and machines
# ---------------------------------------------------------------------------------------

class Net:
    def __init__(self):
        self.n = pick_net()
        self.bridge = "pgwf%d" % self.n
        self.subnet = "10.231.%d.0/24" % self.n
        self.gw = "10.231.%d.1" % self.n
        self.namespaces = []
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", self.gw + "/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    def addr(self, host):
        return "10.231.%d.%d" % (self.n, host)

    def add_machine(self, short, name, host):
        """A namespace pgwfN-name with eth0 = 10.231.N.host on the bridge; returns
        (netns path, root-side veth name)."""
        ns = "pgwf%d-%s" % (self.n, name)
        veth = "pgwf%d%s" % (self.n, short)
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        path = "/run/netns/" + ns
        for cmd in (["ip", "addr", "add", self.addr(host) + "/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"]):
            sh("nsenter", "--net=" + path, *cmd)
        return path, veth

    def cleanup(self):
        _teardown_net(self.n)


class Machine:
    """A network namespace + a cgroup.  run() starts a process inside both."""

    def __init__(self, rig, short, name, host):
        self.rig = rig
        self.name = name
        self.cgroup_label = name
        self.addr = rig.net.addr(host)
        self.netns, self.veth = rig.net.add_machine(short, name, host)
        self.cgroup = harness.new_cgroup("pgwf%d-%s" % (rig.net.n, name))

    def ensure_cgroup(self):
        if not self.cgroup.exists():
            self.cgroup.create()

    def popen(self, cmd, logpath, cwd=None, env=None):
        self.ensure_cgroup()
        logf = open(logpath, "ab")
        try:
            return subprocess.Popen(
                ["sh", "-c", 'echo $$ > "$0" && ns=$1 && shift && exec nsenter --net="$ns" "$@"',
                 os.path.join(self.cgroup.path, "cgroup.procs"), self.netns] + list(cmd),
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                cwd=cwd, env=env or harness.clean_env(), start_new_session=True)
        finally:
            logf.close()

    def nsexec(self, *cmd, check=True):
        return sh("nsenter", "--net=" + self.netns, *cmd, check=check)

    def powered(self):
        return self.cgroup.populated()

    def power_off(self):
        self.cgroup.kill()

    def freeze(self, frozen=True):
        self.cgroup.freeze(frozen)

    def frozen(self):
        try:
            with open(os.path.join(self.cgroup.path, "cgroup.events")) as f:
                return "frozen 1" in f.read()
        except OSError:
            return False

    # -- packet filters (inside this machine's namespace) ---------------------------------
    def nft(self, script):
        p = subprocess.run(["nsenter", "--net=" + self.netns, "nft", "-f", "-"], input=script,
                           capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise RuntimeError("nft in %s: %s\n%s" % (self.name, p.stderr, script))

    def block(self, table, addrs, direction="both"):
        """Drop packets to (out) and/or from (in) addrs, in table `table`."""
        s = ", ".join(addrs)
        rules = ["table inet %s {" % table]
        if direction in ("both", "in"):
            rules.append("  chain input { type filter hook input priority -10; policy accept;"
                         " ip saddr { %s } drop; }" % s)
        if direction in ("both", "out"):
            rules.append("  chain output { type filter hook output priority -10; policy accept;"
                         " ip daddr { %s } drop; }" % s)
        rules.append("}")
        self.nft("\n".join(rules) + "\n")

    def random_loss(self, table, percent):
        self.nft("table inet %s {\n"
                 "  chain input { type filter hook input priority -10; policy accept;"
                 " iifname \"eth0\" numgen random mod 100 < %d drop; }\n"
                 "  chain output { type filter hook output priority -10; policy accept;"
                 " oifname \"eth0\" numgen random mod 100 < %d drop; }\n}\n"
                 % (table, percent, percent))

    def unblock(self, table):
        self.nsexec("nft", "delete", "table", "inet", table, check=False)

    def tc(self, *args, check=True):
        return self.nsexec("tc", *args, check=check)


# ---------------------------------------------------------------------------------------
# etcd
# ---------------------------------------------------------------------------------------

class EtcdMember:
    def __init__(self, rig, i):
        self.rig = rig
        self.name = "etcd%d" % i
        self.machine = Machine(rig, "e%d" % i, self.name, 20 + i)
        self.addr = self.machine.addr
        self.dir = os.path.join(rig.dir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "etcd.log")
        self.proc = None

    @property
    def endpoint(self):
        return "%s:%d" % (self.addr, ETCD_CLIENT)

    def start(self):
        if self.running():
            return
        cluster = ",".join("%s=http://%s:%d" % (m.name, m.addr, ETCD_PEER)
                           for m in self.rig.etcd)
        url = "http://%s:%d" % (self.addr, ETCD_CLIENT)
        peer = "http://%s:%d" % (self.addr, ETCD_PEER)
        cmd = [ETCD_BIN, "--name", self.name, "--data-dir", self.data_dir,
               "--listen-client-urls", url, "--advertise-client-urls", url,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", cluster, "--initial-cluster-state", "new",
               "--initial-cluster-token", "pgwf-%d-%d" % (self.rig.net.n, os.getpid()),
               "--logger", "zap", "--log-outputs", "stderr", "--log-level", "info"]
        with open(self.log_path, "ab") as f:
            f.write(("=== rig: start %s at mono %.3f ===\n" % (self.name, time.monotonic()))
                    .encode())
        self.proc = self.machine.popen(cmd, self.log_path, cwd=self.dir)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def healthy(self):
        st, body = http("GET", "http://%s/health" % self.endpoint, timeout=1)
        return st == 200 and isinstance(body, dict) and body.get("health") == "true"

    def kill(self, sig=signal.SIGKILL):
        if self.running():
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.machine.power_off()
                self.proc.wait(5)


# ---------------------------------------------------------------------------------------
# nodes
# ---------------------------------------------------------------------------------------

class PgNode:
    """One pgwarden (or Patroni) node on its machine."""

    def __init__(self, rig, i):
        self.rig = rig
        self.name = "node%d" % i
        self.machine = Machine(rig, "n%d" % i, self.name, 10 + i)
        self.cgroup_label = self.name
        self.addr = self.machine.addr
        self.dir = os.path.join(rig.dir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        harness.chown_postgres(self.dir)
        os.chmod(self.dir, 0o700)
        self.disk = os.path.join(self.dir, "disk")
        os.makedirs(self.disk, exist_ok=True)
        import pwd
        pw = pwd.getpwnam("postgres")
        sh("mount", "-t", "tmpfs", "-o", "size=%s,mode=0700,uid=%d,gid=%d"
           % (DISK_SIZE, pw.pw_uid, pw.pw_gid), "pgwf-disk", self.disk)
        rig.mounts.append(self.disk)
        self.data_dir = os.path.join(self.disk, "data")
        self.log_path = os.path.join(self.dir, "%s.log" % rig.daemon)
        self.audit_log = os.path.join(self.dir, "fencing.log")
        self.config_path = os.path.join(self.dir, "%s.yml" % rig.daemon)
        self.proc = None
        self.starts = 0
        self.bmc = None
        self.wdemu = None
        self._start_lock = threading.Lock()

    # harness.WatchdogEmulator reads node.cgroup
    @property
    def cgroup(self):
        return self.machine.cgroup

    @cgroup.setter
    def cgroup(self, value):
        pass

    def __repr__(self):
        return "PgNode(%s %s)" % (self.name, self.addr)

    # -- config ---------------------------------------------------------------------------
    def pg_params(self):
        return {"max_connections": 60, "shared_buffers": "16MB", "max_wal_senders": 10,
                "max_replication_slots": 10, "wal_keep_size": "64MB", "min_wal_size": "32MB",
                "max_wal_size": "128MB", "wal_log_hints": "on", "hot_standby": "on"}

    def pg_hba(self):
        sub = self.rig.net.subnet
        return ["local all all trust",
                "host all all 127.0.0.1/32 scram-sha-256",
                "host replication all 127.0.0.1/32 scram-sha-256",
                "host all all %s scram-sha-256" % sub,
                "host replication all %s scram-sha-256" % sub]

    def write_config(self):
        rig = self.rig
        t = rig.timing
        pg = "%s:%d" % (self.addr, PG_PORT)
        rest = "%s:%d" % (self.addr, REST_PORT)
        cfg = {
            "scope": rig.scope, "namespace": "/service/", "name": self.name,
            "restapi": {"listen": rest, "connect_address": rest,
                        "authentication": {"username": REST_USER, "password": REST_PASSWORD}},
            "etcd3": {"hosts": [m.endpoint for m in rig.etcd]},
            "bootstrap": {"dcs": {
                "ttl": t["ttl"], "loop_wait": t["loop_wait"],
                "retry_timeout": t["retry_timeout"],
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": rig.sync,
                "postgresql": {"use_pg_rewind": True, "use_slots": True,
                               "parameters": self.pg_params()}}},
            "postgresql": {
                "listen": pg, "connect_address": pg, "data_dir": self.data_dir,
                "bin_dir": PG_BIN, "pgpass": os.path.join(self.dir, "pgpass"),
                "authentication": {
                    "superuser": {"username": SUPERUSER, "password": SUPERUSER_PASSWORD},
                    "replication": {"username": REPL_USER, "password": REPL_PASSWORD}},
                "parameters": {"unix_socket_directories": self.dir},
                "pg_hba": self.pg_hba()},
            "tags": {"nofailover": False, "failover_priority": 1},
        }
        if rig.daemon == "pgwarden":
            cfg["bootstrap"]["dcs"]["primary_start_timeout"] = 30
            cfg["ctl"] = {"api_hosts": [n.addr for n in rig.nodes]}
            cfg["watchdog"] = {"mode": "required", "device": self.wdemu.socket,
                               "safety_margin": 5}
            peers = {n.name: {"address": n.bmc.address, "lanplus": True, "cipher_suite": 3}
                     for n in rig.nodes}
            cfg["fencing"] = {"mode": "required", "agent": "ipmi", "timeout": 10,
                              "retries": 1, "audit_log": self.audit_log,
                              "credentials_file": rig.secret,
                              "fast_takeover_after": rig.fast_takeover_after,
                              "bmc": dict(peers[self.name]), "peers": peers}
        else:
            cfg["etcd3"]["protocol"] = "http"
            cfg["watchdog"] = {"mode": "off"}
            cfg["bootstrap"]["initdb"] = [{"encoding": "UTF8"}]
        text = "# written by tests/faults/rig.py\n" + harness.to_yaml(cfg) + "\n"
        with open(self.config_path, "w") as f:
            f.write(text)
        os.chmod(self.config_path, 0o600)
        harness.chown_postgres(self.config_path)

    # -- processes ------------------------------------------------------------------------
    def start(self, restart_daemon=False):
        """Power on (empty machine) or, with restart_daemon, start the daemon again beside
        what its predecessor left running."""
        with self._start_lock:
            if self.daemon_alive():
                return
            if not restart_daemon and self.machine.powered():
                raise RuntimeError("%s: machine still has processes" % self.name)
            self.starts += 1
            with open(self.log_path, "ab") as f:
                f.write(("=== rig: start #%d of %s at mono %.3f ===\n"
                         % (self.starts, self.name, time.monotonic())).encode())
            if self.rig.daemon == "pgwarden":
                cmd = [PGWARDEN_BIN, self.config_path]
                env = harness.clean_env()
            else:
                cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                       "env", "HOME=" + self.dir, "USER=postgres", PATRONI_BIN,
                       self.config_path]
                env = harness.clean_env()
            self.proc = self.machine.popen(cmd, self.log_path, cwd=self.dir, env=env)

    def on_power_on(self):
        """BMC power on (or watchdog reset followed by power on): boot the node."""
        log("%s: powered on by its BMC" % self.name)
        self.reset_watchdog()
        self.start()

    def reset_watchdog(self):
        """A machine that lost power loses its watchdog timer too: the emulator of a
        dead machine would otherwise fire W s after the daemon's death (on an empty
        cgroup, or on the machine booted again meanwhile).  Restart it (idle)."""
        w = self.wdemu
        if w is None:
            return
        harness.terminate(w.proc)
        try:
            os.unlink(w.socket)
        except OSError:
            pass
        with open(w.log_path, "a") as f:
            f.write("# rig: emulator restarted (machine power cycle) at mono=%.6f\n"
                    % time.monotonic())
        w.start()

    def daemon_alive(self):
        return self.proc is not None and self.proc.poll() is None

    def daemon_pid(self):
        return self.proc.pid if self.daemon_alive() else None

    def reap(self):
        if self.proc is not None:
            self.proc.poll()

    def postmaster_pid(self):
        return harness.postmaster_pid(self.data_dir)

    def save_pg_logs(self):
        """PostgreSQL's logs live on the node's tmpfs disk: copy them next to the daemon's
        log (NODEDIR/pg-<name>) before the disk goes."""
        for p in glob.glob(os.path.join(self.disk, "*.log")):
            try:
                shutil.copyfile(p, os.path.join(self.dir, "pg-" + os.path.basename(p)))
            except OSError:
                pass

    def pg_log_path(self):
        return self.data_dir + ".log"

    def rest(self, path, timeout=2.0):
        return http("GET", "http://%s:%d%s" % (self.addr, REST_PORT, path), timeout=timeout)

    def dsn(self, **kw):
        d = {"host": self.addr, "port": PG_PORT, "user": SUPERUSER,
             "password": SUPERUSER_PASSWORD, "dbname": "postgres"}
        d.update(kw)
        return " ".join("%s=%s" % (k, v) for k, v in d.items())

    def sql(self, query, timeout=3.0):
        return pg_query(self.dsn(application_name="pgwf-rig"), query, timeout)


# ---------------------------------------------------------------------------------------
# PostgreSQL with client-side deadlines (psycopg2 async mode + select)
# ---------------------------------------------------------------------------------------

class Deadline(Exception):
    pass


def _wait(conn, deadline):
    import psycopg2.extensions as ext
    import select
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise Deadline("deadline")
        if state == ext.POLL_READ:
            r, _, _ = select.select([conn.fileno()], [], [], left)
        elif state == ext.POLL_WRITE:
            _, r, _ = select.select([], [conn.fileno()], [], left)
        else:
            raise RuntimeError("poll state %r" % state)


def async_connect(dsn, deadline):
    import psycopg2
    conn = psycopg2.connect(dsn, async_=True)
    try:
        _wait(conn, deadline)
    except BaseException:
        conn.close()
        raise
    return conn


def async_query(conn, query, deadline):
    """Rows of query on an async connection; raises Deadline (connection then closed)."""
    cur = conn.cursor()
    try:
        cur.execute(query)
        _wait(conn, deadline)
    except BaseException:
        conn.close()
        raise
    return cur.fetchall() if cur.description else None


def pg_query(dsn, query, timeout=3.0):
    deadline = time.monotonic() + timeout
    conn = async_connect(dsn + " connect_timeout=2", deadline)
    try:
        return async_query(conn, query, deadline)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------
# the rig
# ---------------------------------------------------------------------------------------

TIMINGS = {"tight": {"ttl": 10, "loop_wait": 2, "retry_timeout": 3},
           "default": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}}


class Rig:
    def __init__(self, rundir, daemon="pgwarden", timing="tight", sync=True):
        self.dir = rundir
        self.daemon = daemon
        self.timing_name = timing
        self.timing = dict(TIMINGS[timing])
        self.sync = sync
        self.fencing = daemon == "pgwarden"
        self.fast_takeover_after = 3
        self.mounts = []
        self.net = None
        self.etcd = []
        self.nodes = []
        self.bmc_paused = set()
        register(self)
        os.makedirs(rundir, exist_ok=True)
        os.chmod(rundir, 0o755)
        self.net = Net()
        self.scope = "pgwf%d" % self.net.n
        self.prefix = "/service/%s/" % self.scope
        self.secret = os.path.join(rundir, "fencing.secret")
        for i in (1, 2, 3):
            self.etcd.append(EtcdMember(self, i))
        for i in (1, 2, 3):
            self.nodes.append(PgNode(self, i))
        log("rig %s: bridge %s %s, run dir %s" % (self.scope, self.net.bridge, self.net.subnet,
                                                  rundir))

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def by_addr(self, addr):
        for n in self.nodes:
            if n.addr == addr:
                return n
        return None

    # -- boot -----------------------------------------------------------------------------
    def boot(self, timeout=240):
        for m in self.etcd:
            m.start()
        wait_until(lambda: all(m.healthy() for m in self.etcd), 60, "three healthy etcd members",
                   diag=lambda: "\n".join(harness.tail(m.log_path, 15) for m in self.etcd))
        if self.fencing:
            with open(self.secret, "w") as f:
                f.write("# member username password\ndefault %s %s\n" % (BMC_USER, BMC_PASSWORD))
            harness.chown_postgres(self.secret)
            os.chmod(self.secret, 0o600)
            for n in self.nodes:
                n.bmc = bmc_mod.Bmc(n.dir, None, n.cgroup.path, BMC_USER, BMC_PASSWORD,
                                    on_power_on=n.on_power_on, name=n.name,
                                    bind=self.net.gw).start()
                n.wdemu = harness.WatchdogEmulator(n).start()
        for n in self.nodes:
            n.write_config()
        first = self.nodes[0]
        first.start()

        def first_leads():
            if not first.daemon_alive():
                raise AssertionError("%s exited: %s" % (first.name, harness.tail(first.log_path, 5)))
            return self.leader_name() == first.name and self.primary_ok(first)
        wait_until(first_leads, timeout,
                   "%s to bootstrap and lead" % first.name, diag=self.dump)
        for n in self.nodes[1:]:
            n.start()
        self.wait_healthy(timeout)

    # -- state ----------------------------------------------------------------------------
    def etcd_get(self, key, timeout=1.0):
        import base64
        body = {"key": base64.b64encode((self.prefix + key).encode()).decode()}
        for m in self.etcd:
            st, js = http("POST", "http://%s/v3/kv/range" % m.endpoint, body, timeout=timeout)
            if st == 200 and isinstance(js, dict):
                kvs = js.get("kvs") or []
                return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None
        raise RuntimeError("no etcd member answered")

    def leader_name(self):
        try:
            return self.etcd_get("leader")
        except Exception:  # noqa: BLE001
            return None

    def primary_ok(self, node):
        try:
            return node.sql("SELECT NOT pg_is_in_recovery()")[0][0] is True
        except Exception:  # noqa: BLE001
            return False

    def pg_state(self, timeout=1.5):
        """{node: state}; state is None (no answer), {"primary": True, "tl": n, "lsn": n}
        or {"primary": False, "upstream": addr|None, "tl": received tli, "lsn": received
        LSN, "rx_age": s since the WAL receiver's last message}."""
        out = {}

        def one(n):
            try:
                rows = n.sql(
                    "SELECT pg_is_in_recovery(),"
                    " CASE WHEN pg_is_in_recovery() THEN NULL ELSE"
                    "  ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
                    " END,"
                    " (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()"
                    "  ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint,"
                    " (SELECT status || ' ' || sender_host || ' ' || received_tli || ' ' ||"
                    "  extract(epoch FROM now() - last_msg_receipt_time)"
                    "  FROM pg_stat_wal_receiver)", timeout)
                rec, tl, lsn, wr = rows[0]
                if not rec:
                    out[n.name] = {"primary": True, "tl": tl, "lsn": lsn}
                else:
                    st = wr.split() if wr else []
                    out[n.name] = {"primary": False,
                                   "upstream": st[1] if st and st[0] == "streaming" else None,
                                   "tl": int(st[2]) if len(st) > 2 else None,
                                   "lsn": lsn,
                                   "rx_age": float(st[3]) if len(st) > 3 else None}
            except Exception:  # noqa: BLE001
                out[n.name] = None

        ts = [threading.Thread(target=one, args=(n,)) for n in self.nodes]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return out

    RX_FRESH = 5.0

    def recovered(self, state=None):
        """(primary name, {node: streaming}) when exactly one node is primary and every
        other streams from it on its timeline; else (None, streaming map).  A WAL
        receiver keeps saying "streaming" for wal_receiver_timeout (60 s) after its
        sender went silent (a partition), so streaming also needs a message received in
        the last RX_FRESH s or the primary's WAL position reached."""
        state = state or self.pg_state()
        prim = [k for k, v in state.items() if v and v["primary"]]
        streaming = {k: False for k in state}
        if len(prim) != 1:
            return None, streaming
        p = self.node(prim[0])
        ptl = state[p.name]["tl"]
        plsn = state[p.name].get("lsn") or 0
        ok = True
        for k, v in state.items():
            if k == p.name:
                streaming[k] = False
                continue
            fresh = bool(v and ((v.get("rx_age") is not None and v["rx_age"] < self.RX_FRESH)
                                or (v.get("lsn") or -1) >= plsn))
            streaming[k] = bool(v and not v["primary"] and v["upstream"] == p.addr
                                and v["tl"] == ptl and fresh)
            ok = ok and streaming[k]
        return (p.name if ok else None), streaming

    def healthy(self):
        prim, _ = self.recovered()
        if prim is None:
            return False
        if self.daemon == "pgwarden" or self.daemon == "patroni":
            if self.leader_name() != prim:
                return False
        if self.sync:
            try:
                k = json.loads(self.etcd_get("sync") or "{}")
            except Exception:  # noqa: BLE001
                return False
            if k.get("leader") != prim or not k.get("sync_standby"):
                return False
        return prim

    def wait_healthy(self, timeout):
        return wait_until(self.healthy, timeout, "a healthy cluster", interval=0.3,
                          diag=self.dump)

    def dump(self):
        out = ["===== rig %s (%s) =====" % (self.scope, self.dir)]
        try:
            out.append("leader key: %s" % self.leader_name())
        except Exception as e:  # noqa: BLE001
            out.append("etcd: %s" % e)
        out.append("pg: %s" % json.dumps(self.pg_state()))
        for n in self.nodes:
            out.append("--- %s: daemon %s, machine %s, last log lines:" % (
                n.name, "alive" if n.daemon_alive() else "down",
                "on" if n.machine.powered() else "off"))
            out.append(harness.tail(n.log_path, 15))
            out.append("  PostgreSQL log (last lines):")
            out.append(harness.tail(n.pg_log_path(), 8))
        return "\n".join(out)

    # -- power ----------------------------------------------------------------------------
    def power_on(self, node, how="ipmi"):
        """Power a node on through its BMC (its watcher boots the node), or start it
        directly (Patroni: no BMC).  Returns what was done."""
        if node.machine.powered():
            return "already-on"
        if node.bmc is None:
            node.start()
            return "started"
        if how == "unfence":
            p = subprocess.run([PGWARDENCTL, "-c", self._ctl_config(exclude=node), "unfence",
                                self.scope, node.name, "--force"], capture_output=True,
                               text=True, timeout=60, env=harness.clean_env(),
                               stdin=subprocess.DEVNULL)
            if p.returncode == 0:
                wait_until(node.machine.powered, 20, "%s powered on" % node.name)
                return "unfenced"
            log("unfence of %s failed (%d): %s %s" % (node.name, p.returncode, p.stdout,
                                                      p.stderr))
        r = node.bmc.ipmitool("chassis", "power", "on", timeout=15)
        if r.returncode != 0:
            node.bmc.chassis("set", "power", "1")
            how = "chassis"
        wait_until(node.machine.powered, 20, "%s powered on" % node.name)
        return "ipmi-power-on" if how != "chassis" else "chassis-power-on"

    def fenced_record(self, name):
        try:
            return self.etcd_get("pgwarden/fenced/" + name)
        except Exception:  # noqa: BLE001
            return None

    def _ctl_config(self, exclude=None):
        for n in self.nodes:
            if n is not exclude and n.daemon_alive():
                return n.config_path
        return self.nodes[0].config_path

    def ctl(self, *args, timeout=60):
        p = subprocess.run([PGWARDENCTL, "-c", self._ctl_config()] + list(args),
                           capture_output=True, text=True, timeout=timeout,
                           env=harness.clean_env(), stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout + p.stderr

    def restore_all(self):
        """After a heal: every machine that is off is powered on (a fenced one through
        pgwardenctl unfence, audited), a machine whose daemon died is given a new daemon."""
        done = {}
        for n in self.nodes:
            n.reap()
            if not n.machine.powered():
                how = "unfence" if self.fencing and self.fenced_record(n.name) else "ipmi"
                done[n.name] = self.power_on(n, how)
            elif not n.daemon_alive():
                n.start(restart_daemon=True)
                done[n.name] = "daemon-restarted"
        for m in self.etcd:
            if not m.running():
                m.start()
                done[m.name] = "started"
        return done

    # -- teardown -------------------------------------------------------------------------
    def stop_daemons(self, timeout=30):
        """SIGTERM every daemon (ASan leak reports), then the machines are killed."""
        live = [n for n in self.nodes if n.daemon_alive()]
        for n in live:
            try:
                n.machine.freeze(False)
                os.kill(n.proc.pid, signal.SIGCONT)
                os.kill(n.proc.pid, signal.SIGTERM)
            except (ProcessLookupError, OSError):
                pass
        deadline = time.monotonic() + timeout
        for n in live:
            try:
                n.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log("%s: daemon did not exit within %d s of SIGTERM" % (n.name, timeout))

    def cleanup(self):
        unregister(self)
        for n in self.nodes:
            if n.bmc is not None:
                n.bmc.on_power_on = None
                n.bmc.cleanup()
            if n.wdemu is not None:
                n.wdemu.cleanup()
        for n in self.nodes + self.etcd:
            m = n.machine
            try:
                m.cgroup.remove()
            except Exception as e:  # noqa: BLE001
                log("cannot remove %s: %s" % (m.cgroup, e))
            unregister(m.cgroup)
            if n.proc is not None:
                try:
                    n.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for n in self.nodes:
            n.save_pg_logs()
        for mp in self.mounts:
            sh("umount", mp, check=False)
            if os.path.ismount(mp):
                sh("umount", "-l", mp, check=False)
        self.mounts = []
        if self.net is not None:
            self.net.cleanup()
            self.net = None

    def sanitizer_reports(self):
        out = []
        for n in self.nodes:
            try:
                text = open(n.log_path, errors="replace").read()
            except OSError:
                continue
            if any(m in text for m in harness.SANITIZER_MARKERS):
                out.append(n.name)
        return out

    def remove_data(self):
        """Drop the bulky parts of a run dir (data lives on the tmpfs, gone at umount)."""
        for m in self.etcd:
            shutil.rmtree(m.data_dir, ignore_errors=True)
