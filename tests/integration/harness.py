"""harness.py - real etcd and real pgwarden nodes on 127.0.0.1 for the integration tests.

A test "machine" is a cgroup v2 directory (/sys/fs/cgroup/unified/pgwt-RUNID-NAME): each
node's daemon is exec'd inside it, so PostgreSQL (which pg_ctl setsid()s away from the
daemon) and every backend land there too.  Power loss of a machine = cgroup.kill.

Everything a run creates (processes, cgroups, temp dirs) is registered here and removed by
cleanup_all(), which runs from the fixtures' finalizers, atexit and a SIGTERM/SIGHUP handler.
At import, cgroups left behind by earlier runs whose pytest process is gone are killed and
removed.

Only 127.0.0.1 is ever contacted (HTTP goes through an opener with proxies disabled; the
daemons get no proxy variables either).
"""

import atexit
import base64
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

PGWARDEN_BIN = os.environ.get("PGWARDEN_BIN", "/work/main/build/asan/pgwarden")
ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")


def _default_cgroot():
    # This host: cgroup v1 controllers plus cgroup2 at /sys/fs/cgroup/unified.  A plain
    # Debian 12 machine: cgroup2 alone at /sys/fs/cgroup.
    for d in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(os.path.join(d, "cgroup.procs")) and \
                os.path.exists(os.path.join(d, "cgroup.subtree_control")):
            return d
    return "/sys/fs/cgroup/unified"


CGROOT = os.environ.get("PGWT_CGROOT") or _default_cgroot()
TMPROOT = os.environ.get("PGWT_TMP", "/tmp")
CG_PREFIX = "pgwt-"
RUN_ID = "%d-%s" % (os.getpid(), secrets.token_hex(3))

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "pgwt-super-secret"
REPL_USER = "replicator"
REPL_PASSWORD = "pgwt-repl-secret"

# Sanitizer reports that make a test fail.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "LeakSanitizer has encountered a fatal error")

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
WDEMU_BIN = os.environ.get("PGWARDEN_WDEMU",
                           os.path.join(os.path.dirname(PGWARDEN_BIN), "pgwarden-wdemu"))
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
               "ALL_PROXY", "ftp_proxy", "FTP_PROXY")


def log(msg):
    """Progress line (shown by pytest -s, and captured into the report otherwise)."""
    print("[harness %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


FIGURES = []   # (test, what, value) measured by the tests; conftest prints them at the end


def figure(what, value, unit="s"):
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0].split("::")[-1]
    FIGURES.append((test, what, value, unit))
    log("%s: %s %s" % (what, value if not isinstance(value, float) else "%.1f" % value, unit))


# ---------------------------------------------------------------------------------------
# cleanup registry
# ---------------------------------------------------------------------------------------

_registry = []          # objects with .cleanup(), in creation order
_registry_lock = threading.RLock()
_cleaning = False


def register(obj):
    with _registry_lock:
        _registry.append(obj)
    return obj


def unregister(obj):
    with _registry_lock:
        if obj in _registry:
            _registry.remove(obj)


def cleanup_all():
    """Kill and remove everything this process started.  Safe to call more than once."""
    global _cleaning
    with _registry_lock:
        if _cleaning:
            return
        _cleaning = True
        try:
            while _registry:
                obj = _registry.pop()
                try:
                    obj.cleanup()
                except Exception as e:  # keep going: the rest must be cleaned too
                    log("cleanup of %r failed: %s" % (obj, e))
        finally:
            _cleaning = False


def _on_signal(signum, frame):
    cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_handlers():
    atexit.register(cleanup_all)
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:   # nohup keeps working
        signal.signal(signal.SIGHUP, _on_signal)
    # A shell without job control starts background commands with SIGINT ignored (and
    # Python then installs no KeyboardInterrupt handler); run-integration.sh runs pytest so
    # and forwards Ctrl-C to it, so make SIGINT interrupt the run again.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# Orphans.  pg_ctl daemonizes the postmaster and a killed postmaster leaves its backends
# behind, so they are re-parented to PID 1; in a container whose PID 1 does not reap, every
# node ever started leaves zombies.  As a child subreaper this process inherits them instead,
# and a thread reaps the zombie PostgreSQL processes (never a process a Popen object waits
# for: those run pgwarden, etcd or sh).
_PR_SET_CHILD_SUBREAPER = 36
_ORPHAN_COMMS = ("postgres", "postmaster", "pg_", "initdb")


def reap_orphans():
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        except (OSError, ValueError):
            continue
        if state != "Z" or int(ppid) != me or not comm.startswith(_ORPHAN_COMMS):
            continue
        try:
            os.waitpid(int(entry), os.WNOHANG)
        except ChildProcessError:
            pass


def _reaper():
    while True:
        time.sleep(2)
        try:
            reap_orphans()
        except Exception:  # noqa: BLE001 - never let the reaper take the run down
            pass


def become_subreaper():
    """Adopt orphaned PostgreSQL processes and reap them; False when not possible."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError, TypeError):
        return False
    threading.Thread(target=_reaper, name="pgwt-reaper", daemon=True).start()
    return True


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------

_used_ports = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago and that this run has not used."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port found")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as dead.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(pred, timeout, what, interval=0.3, diag=None):
    """Call pred() until it returns something truthy (returned) or `timeout` s pass.

    Exceptions from pred count as "not yet" and the last one is shown on timeout.  On
    timeout raises AssertionError naming `what`, with diag() (e.g. a cluster dump) appended.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    last_val = None
    while True:
        try:
            last_val = pred()
            if last_val:
                return last_val
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last_exc = e
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    msg = "timed out after %.0f s waiting for %s" % (timeout, what)
    if last_exc is not None:
        msg += "\nlast error: %s: %s" % (type(last_exc).__name__, last_exc)
    elif last_val is not None:
        msg += "\nlast value: %r" % (last_val,)
    if diag is not None:
        try:
            msg += "\n" + diag()
        except Exception as e:  # noqa: BLE001
            msg += "\n(diagnostics failed: %s)" % e
    raise AssertionError(msg)


def tls_context(cafile, client=None):
    """An ssl context that trusts cafile (and presents client=(cert, key) when given)."""
    import ssl
    ctx = ssl.create_default_context(cafile=cafile)
    if client:
        ctx.load_cert_chain(client[0], client[1])
    return ctx


def http_get(url, timeout=3.0, context=None):
    """(status, body bytes) or (None, None) when nothing answered.  Loopback only."""
    assert url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")), url
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) \
                if context else _NO_PROXY.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None, None


def http_post_json(url, body, timeout=5.0):
    assert url.startswith("http://127.0.0.1:"), url
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with _NO_PROXY.open(req, timeout=timeout) as r:
        return json.loads(r.read() or b"{}")


def tail(path, lines=40, since=0):
    try:
        with open(path, "rb") as f:
            f.seek(since)
            data = f.read()
    except OSError as e:
        return "(%s: %s)" % (path, e.strerror)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["no_proxy"] = env["NO_PROXY"] = "*"
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1"
    env.setdefault("LANG", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


def chown_postgres(path):
    import pwd
    pw = pwd.getpwnam("postgres")
    os.chown(path, pw.pw_uid, pw.pw_gid)


def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True, timeout=60,
                       env=clean_env())
    assert r.returncode == 0, "openssl %s:\n%s" % (" ".join(args), r.stderr)


def make_tls(d, name="pgwt"):
    """A test CA in directory d, a server certificate for 127.0.0.1 and a client
    certificate signed by it, and an unrelated self-signed 'rogue' client certificate.
    Files are owned by postgres (the daemon's user), keys mode 0600.
    Returns {ca, cert, key, client_cert, client_key, rogue_cert, rogue_key}."""
    os.makedirs(d, exist_ok=True)
    f = {k: os.path.join(d, "%s-%s.pem" % (name, k)) for k in
         ("ca", "ca_key", "cert", "key", "client_cert", "client_key", "rogue_cert",
          "rogue_key")}
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as fh:
        fh.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-days", "2", "-subj", "/CN=pgwt test CA", "-keyout", f["ca_key"], "-out",
              f["ca"]], d)
    for who, cn in (("", "127.0.0.1"), ("client_", "pgwt-admin")):
        csr = os.path.join(d, who + "req.csr")
        _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-subj", "/CN=" + cn, "-keyout", f[who + "key"] if who else f["key"],
                  "-out", csr], d)
        _openssl(["x509", "-req", "-in", csr, "-CA", f["ca"], "-CAkey", f["ca_key"],
                  "-CAcreateserial", "-days", "2", "-extfile", ext,
                  "-out", f[who + "cert"]], d)
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-days", "2", "-subj", "/CN=rogue", "-keyout", f["rogue_key"], "-out",
              f["rogue_cert"]], d)
    for path in f.values():
        chown_postgres(path)
        os.chmod(path, 0o600 if path.endswith("key.pem") else 0o644)
    return f


# ---------------------------------------------------------------------------------------
# YAML (written by hand: the tests control the exact text and its line numbers)
# ---------------------------------------------------------------------------------------

class Raw(str):
    """A scalar written to YAML exactly as given (e.g. Raw('3O') for a bad ttl)."""


_PLAIN_OK = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:@-]*")
_LOOKS_TYPED = re.compile(r"[-+]?(\.?[0-9][0-9_:.eE+-]*|\.inf|\.nan)")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def yaml_scalar(v):
    if isinstance(v, Raw):
        return str(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if (_PLAIN_OK.fullmatch(s) and not _LOOKS_TYPED.fullmatch(s)
            and s.lower() not in _RESERVED and not s.endswith(":")):
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """dict/list/scalar -> YAML text (block style)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = yaml_scalar(k)
            if isinstance(v, dict) and v:
                out.append("%s%s:" % (pad, key))
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, list) and v:
                out.append("%s%s:" % (pad, key))
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                out.append("%s%s: {}" % (pad, key))
            elif isinstance(v, list):
                out.append("%s%s: []" % (pad, key))
            else:
                out.append("%s%s: %s" % (pad, key, yaml_scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub = to_yaml(item, indent + 2).splitlines()
                out.append("%s- %s" % (pad, sub[0].lstrip()))
                out.extend(sub[1:])
            else:
                out.append("%s- %s" % (pad, yaml_scalar(item)))
    else:
        out.append(pad + yaml_scalar(obj))
    return "\n".join(out)


def deep_merge(base, over):
    """A copy of base with over merged in (dicts recursively; None in over deletes a key)."""
    res = dict(base)
    for k, v in (over or {}).items():
        if v is None:
            res.pop(k, None)
        elif isinstance(v, dict) and isinstance(res.get(k), dict):
            res[k] = deep_merge(res[k], v)
        else:
            res[k] = v
    return res


def find_line(text, pattern):
    """1-based number of the first line of text matching the regex pattern."""
    for i, line in enumerate(text.splitlines(), 1):
        if re.search(pattern, line):
            return i
    raise ValueError("no line matches %r" % pattern)


# ---------------------------------------------------------------------------------------
# cgroups ("machines")
# ---------------------------------------------------------------------------------------

def cgroups_available():
    return os.path.exists(os.path.join(CGROOT, "cgroup.procs")) and os.access(CGROOT, os.W_OK)


class Cgroup:
    def __init__(self, name):
        self.name = name
        self.path = os.path.join(CGROOT, name)

    def __repr__(self):
        return "Cgroup(%s)" % self.name

    def create(self):
        os.makedirs(self.path, exist_ok=True)
        return self

    def exists(self):
        return os.path.isdir(self.path)

    def procs(self):
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def populated(self):
        try:
            with open(os.path.join(self.path, "cgroup.events")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "populated":
                        return v == "1"
        except OSError:
            return False
        return bool(self.procs())

    def _write(self, fname, value):
        with open(os.path.join(self.path, fname), "w") as f:
            f.write(value)

    def kill(self, timeout=15.0):
        """SIGKILL every process in the cgroup (power loss) and wait until it is empty."""
        if not self.exists():
            return
        deadline = time.monotonic() + timeout
        have_kill = os.path.exists(os.path.join(self.path, "cgroup.kill"))
        # A frozen cgroup must be thawed for its processes to die.
        if os.path.exists(os.path.join(self.path, "cgroup.freeze")):
            try:
                self._write("cgroup.freeze", "0")
            except OSError:
                pass
        while self.populated():
            if have_kill:
                self._write("cgroup.kill", "1")
            else:
                for pid in self.procs():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            t_end = time.monotonic() + 1.0
            while self.populated() and time.monotonic() < t_end:
                time.sleep(0.02)
            if time.monotonic() > deadline:
                raise RuntimeError("%s still populated after kill: %s" % (self.path, self.procs()))

    def freeze(self, frozen=True):
        self._write("cgroup.freeze", "1" if frozen else "0")

    def remove(self):
        if not self.exists():
            return
        self.kill()
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        os.rmdir(self.path)

    def cleanup(self):
        self.remove()


class WatchdogEmulator:
    """pgwarden-wdemu for one node: a UNIX socket in the node's directory that the node
    uses as watchdog.device; when it expires it kills every process of the node's cgroup,
    as a hardware reset would, and logs `FIRED mono=... last_ping=... timeout=...`
    (CLOCK_MONOTONIC, the same clock as time.monotonic()).  It runs outside the node's
    cgroup, as a child of the test, and is stopped by cleanup()."""

    def __init__(self, node, nowayout=False):
        self.node = node
        self.socket = os.path.join(node.dir, "watchdog.sock")
        self.log_path = os.path.join(node.dir, "wdemu.log")
        self.nowayout = nowayout
        self.proc = None
        register(self)

    def __repr__(self):
        return "WatchdogEmulator(%s)" % self.node.name

    def start(self):
        if self.node.cgroup is None or not self.node.cgroup.exists():
            self.node.cgroup = new_cgroup(self.node.cgroup_label)
        cmd = [WDEMU_BIN, "--socket", self.socket, "--cgroup", self.node.cgroup.path]
        if self.nowayout:
            cmd.append("--nowayout")
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, env=clean_env(),
                                         start_new_session=True)
        wait_until(lambda: os.path.exists(self.socket) or self.proc.poll() is not None, 10,
                   "%r to listen" % self)
        assert self.proc.poll() is None, "pgwarden-wdemu exited:\n" + tail(self.log_path)
        return self

    def events(self, kind=None):
        """[(kind, {field: value})] from the log, in order."""
        out = []
        try:
            with open(self.log_path) as f:
                for line in f:
                    parts = line.split()
                    if not parts or (kind and parts[0] != kind):
                        continue
                    out.append((parts[0], dict(p.split("=", 1) for p in parts[1:] if "=" in p)))
        except OSError:
            pass
        return out

    def fired(self):
        """[(mono, last_ping, W)] of every reset so far."""
        return [(float(f["mono"]), float(f["last_ping"]), int(f["timeout"]))
                for _, f in self.events("FIRED")]

    def cleanup(self):
        unregister(self)
        terminate(self.proc)


def terminate(proc, timeout=5):
    """SIGTERM a child (a subprocess.Popen or None) and reap it; SIGKILL after timeout."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def postmaster_pid(data_dir):
    """The pid in DATA_DIR/postmaster.pid, None when there is none."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def start_watchdog_emulators(cluster):
    """Before the nodes start: one WatchdogEmulator per node, its socket as the node's
    watchdog.device (config rewritten); {name: emulator}."""
    emus = {}
    for node in cluster.nodes:
        emus[node.name] = WatchdogEmulator(node).start()
        node.config.setdefault("watchdog", {})["device"] = emus[node.name].socket
        node.write_config()
    return emus


def new_cgroup(label):
    cg = Cgroup("%s%s-%s" % (CG_PREFIX, RUN_ID, label))
    cg.create()
    register(cg)
    return cg


def remove_stale_cgroups():
    """Kill and remove pgwt-PID-* cgroups whose creating pytest process is gone."""
    removed = []
    for path in glob.glob(os.path.join(CGROOT, CG_PREFIX + "*")):
        name = os.path.basename(path)
        m = re.match(re.escape(CG_PREFIX) + r"(\d+)-[0-9a-f]{6}-", name)
        if not m:
            continue  # not made by this harness
        if int(m.group(1)) != os.getpid() and pid_alive(int(m.group(1))):
            continue  # another run that is still going
        try:
            Cgroup(name).remove()
            removed.append(name)
        except OSError as e:
            log("cannot remove stale cgroup %s: %s" % (name, e))
    if removed:
        log("removed stale cgroups: %s" % ", ".join(removed))
    # Data directories of runs that died without cleaning up (their logs stay).
    for path in glob.glob(os.path.join(TMPROOT, CG_PREFIX + "*")):
        m = re.match(re.escape(CG_PREFIX) + r"(\d+)-[0-9a-f]{6}-", os.path.basename(path))
        if not m or not os.path.isdir(path) or pid_alive(int(m.group(1))):
            continue
        for d in glob.glob(os.path.join(path, "*", "data")) + \
                glob.glob(os.path.join(path, "*", "data.*")):
            if os.path.isdir(d) and not d.endswith(".log"):
                shutil.rmtree(d, ignore_errors=True)
    return removed


# ---------------------------------------------------------------------------------------
# etcd
# ---------------------------------------------------------------------------------------

def _b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def _unb64(s):
    return base64.b64decode(s).decode("utf-8", "replace")


def _prefix_end(prefix):
    b = bytearray(prefix.encode())
    b[-1] += 1
    return bytes(b)


class Etcd:
    """One etcd member on 127.0.0.1 with fixed ports and data dir (restartable)."""

    def __init__(self, basedir, label="etcd", name="etcd0"):
        self.name = name
        self.initial_cluster = None   # "name=peer,..." for a member of a larger cluster
        self.dir = basedir
        self.data_dir = os.path.join(basedir, "data")
        self.log_path = os.path.join(basedir, "etcd.log")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.label = label
        self.proc = None
        self.cgroup = None
        os.makedirs(self.dir, exist_ok=True)
        register(self)

    def __repr__(self):
        return "Etcd(127.0.0.1:%d)" % self.client_port

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.client_port

    @property
    def peer_url(self):
        return "http://127.0.0.1:%d" % self.peer_port

    def start(self, timeout=30, wait=True):
        if self.proc and self.proc.poll() is None:
            return self
        if self.cgroup is None:
            self.cgroup = new_cgroup(self.label)
        cmd = [ETCD_BIN, "--name", self.name, "--data-dir", self.data_dir,
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", self.peer_url,
               "--initial-advertise-peer-urls", self.peer_url,
               "--initial-cluster", self.initial_cluster or "%s=%s" % (self.name, self.peer_url),
               "--initial-cluster-state", "new",
               "--initial-cluster-token", "pgwt-" + RUN_ID, "--logger", "zap",
               "--log-outputs", "stderr", "--log-level", "warn"]
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["sh", "-c", 'echo $$ > "$0" && exec "$@"',
                 os.path.join(self.cgroup.path, "cgroup.procs")] + cmd,
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                env=clean_env(), start_new_session=True)
        finally:
            logf.close()
        if wait:
            wait_until(self.is_up, timeout, "etcd on %s to answer" % self.endpoint,
                       diag=lambda: "etcd log:\n" + tail(self.log_path, 30))
        return self

    def is_up(self):
        if not self.proc or self.proc.poll() is not None:
            return False
        st, body = http_get(self.url + "/health", timeout=1)
        return st == 200 and b"true" in (body or b"")

    def _call(self, path, body, timeout=3.0):
        return http_post_json(self.url + "/v3/" + path, body, timeout=timeout)

    def get_prefix(self, prefix):
        """{key: value} for every key under prefix (values decoded as UTF-8)."""
        r = self._call("kv/range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))})
        return {_unb64(kv["key"]): _unb64(kv.get("value", "")) for kv in r.get("kvs", [])}

    def get(self, key):
        r = self._call("kv/range", {"key": _b64(key)})
        kvs = r.get("kvs", [])
        return _unb64(kvs[0].get("value", "")) if kvs else None

    def put(self, key, value):
        self._call("kv/put", {"key": _b64(key), "value": _b64(value)})

    def delete(self, key, prefix=False):
        body = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(_prefix_end(key))
        self._call("kv/deleterange", body)

    def _signal(self, sig, timeout):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def stop(self, timeout=15):
        return self._signal(signal.SIGTERM, timeout)

    def kill(self):
        return self._signal(signal.SIGKILL, 10)

    def cleanup(self):
        try:
            self.kill()
        finally:
            if self.cgroup:
                self.cgroup.remove()
                unregister(self.cgroup)


# ---------------------------------------------------------------------------------------
# a pgwarden node
# ---------------------------------------------------------------------------------------

def default_config(scope, name, node_dir, etcd_hosts, pg_port, rest_port):
    addr_pg = "127.0.0.1:%d" % pg_port
    addr_rest = "127.0.0.1:%d" % rest_port
    return {
        "scope": scope,
        "namespace": "/service/",
        "name": name,
        "restapi": {"listen": addr_rest, "connect_address": addr_rest},
        "etcd3": {"hosts": list(etcd_hosts)},
        "bootstrap": {
            "dcs": {
                "ttl": 10,
                "loop_wait": 2,
                "retry_timeout": 3,
                "maximum_lag_on_failover": 1048576,
                "primary_start_timeout": 30,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        "max_connections": 40,
                        "shared_buffers": "16MB",
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "64MB",
                        "wal_log_hints": "on",
                        "hot_standby": "on",
                    },
                },
            },
        },
        "postgresql": {
            "listen": addr_pg,
            "connect_address": addr_pg,
            "data_dir": os.path.join(node_dir, "data"),
            "bin_dir": PG_BIN,
            "pgpass": os.path.join(node_dir, "pgpass"),
            "authentication": {
                "superuser": {"username": SUPERUSER, "password": SUPERUSER_PASSWORD},
                "replication": {"username": REPL_USER, "password": REPL_PASSWORD},
            },
            "parameters": {"unix_socket_directories": node_dir},
            "pg_hba": [
                "local all all trust",
                "host all all 127.0.0.1/32 scram-sha-256",
                "host replication all 127.0.0.1/32 scram-sha-256",
            ],
        },
        "tags": {"nofailover": False, "failover_priority": 1},
        # Most tests exercise failover mechanics without a watchdog or fencing, which
        # S3 only allows with this opt-in; test_ha.py checks the default (off).
        "failover": {"unprotected": True},
    }


class Node:
    def __init__(self, name, basedir, scope, etcd_hosts, overrides=None, cgroup_label=None):
        self.name = name
        self.cgroup_label = cgroup_label or name
        self.dir = os.path.join(basedir, name)
        os.makedirs(self.dir, exist_ok=True)
        chown_postgres(self.dir)
        os.chmod(self.dir, 0o700)
        self.pg_port = free_port()
        self.rest_port = free_port()
        self.config = deep_merge(
            default_config(scope, name, self.dir, etcd_hosts, self.pg_port, self.rest_port),
            overrides or {})
        self.data_dir = self.config["postgresql"]["data_dir"]
        self.config_path = os.path.join(self.dir, "pgwarden.yml")
        self.log_path = os.path.join(self.dir, "pgwarden.log")
        self.pg_log_path = self.data_dir + ".log"
        self.proc = None
        self.cgroup = None
        self.extra_env = {}      # added to the daemon's environment (e.g. NOTIFY_SOCKET)
        self.tls_ca = None       # CA of the REST certificate when restapi has no cafile
        self.tls_client = None   # (cert, key) presented by rest() over HTTPS
        self.starts = 0
        self.log_offset = 0          # where the log of the current start begins
        self.write_config()
        register(self)

    def __repr__(self):
        return "Node(%s pg=%d rest=%d)" % (self.name, self.pg_port, self.rest_port)

    # -- config ---------------------------------------------------------------------------
    def config_text(self):
        return "# written by tests/integration/harness.py\n" + to_yaml(self.config) + "\n"

    def write_config(self, text=None):
        text = self.config_text() if text is None else text
        with open(self.config_path, "w") as f:
            f.write(text)
        os.chmod(self.config_path, 0o600)
        chown_postgres(self.config_path)
        return text

    # -- processes ------------------------------------------------------------------------
    def start(self, restart_daemon=False):
        """Start the daemon inside this node's machine (cgroup): a machine powered on
        (empty), or with restart_daemon, a daemon started again beside the PostgreSQL
        its predecessor left running (what systemd's Restart= does)."""
        assert not self.daemon_alive(), "%s: daemon already running" % self.name
        if self.cgroup is None or not self.cgroup.exists():
            self.cgroup = new_cgroup(self.cgroup_label)
        assert restart_daemon or not self.cgroup.populated(), (
            "%s: machine still has processes %s" % (self.name, self.cgroup.procs()))
        self.starts += 1
        with open(self.log_path, "ab") as logf:
            logf.write(("=== harness: start #%d of %s at %s ===\n"
                        % (self.starts, self.name, time.strftime("%H:%M:%S"))).encode())
            logf.flush()
            self.log_offset = logf.tell()
            self.proc = subprocess.Popen(
                ["sh", "-c", 'echo $$ > "$0" && exec "$1" "$2"',
                 os.path.join(self.cgroup.path, "cgroup.procs"), PGWARDEN_BIN, self.config_path],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                cwd=self.dir, env=clean_env(self.extra_env), start_new_session=True)
        return self

    def daemon_alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def daemon_pid(self):
        return self.proc.pid if self.proc else None

    def stop_daemon(self, sig=signal.SIGTERM, wait=True, timeout=60):
        """Signal the daemon process only; with wait, return its exit code."""
        if not self.daemon_alive():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, sig)
        if not wait:
            return None
        return self.proc.wait(timeout)

    def wait_exit(self, timeout):
        return self.proc.wait(timeout)

    def kill_machine(self):
        """Power loss: SIGKILL every process of the node (daemon, postmaster, backends)."""
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                raise AssertionError("%s: daemon survived cgroup.kill" % self.name)

    def postmaster_pid(self):
        return postmaster_pid(self.data_dir)

    def postmaster_running(self):
        pid = self.postmaster_pid()
        return pid is not None and pid_alive(pid)

    def kill_postmaster(self):
        pid = self.postmaster_pid()
        assert pid and pid_alive(pid), "%s: no running postmaster" % self.name
        os.kill(pid, signal.SIGKILL)
        return pid

    def machine_processes(self):
        """[(pid, comm)] of every process in this node's cgroup."""
        out = []
        for pid in (self.cgroup.procs() if self.cgroup else []):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    out.append((pid, f.read().strip()))
            except OSError:
                pass
        return out

    def cleanup(self):
        if self.cgroup is not None:
            self.cgroup.remove()
            unregister(self.cgroup)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    # -- PostgreSQL and REST --------------------------------------------------------------
    def connect(self, timeout=5, **kw):
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user=SUPERUSER,
                                password=SUPERUSER_PASSWORD, dbname="postgres",
                                connect_timeout=timeout, application_name="pgwt-test",
                                options="-c statement_timeout=15000", **kw)
        conn.autocommit = True
        return conn

    def sql(self, query, args=None, timeout=5):
        """Run one statement as superuser with autocommit; rows (list of tuples) or None."""
        conn = self.connect(timeout)
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def sql1(self, query, args=None):
        rows = self.sql(query, args)
        return rows[0][0] if rows else None

    def accepts_writes(self):
        try:
            return self.sql1("SELECT NOT pg_is_in_recovery()") is True
        except Exception:  # noqa: BLE001
            return False

    def rest_url(self, path=""):
        tls = "certfile" in self.config.get("restapi", {})
        return "%s://127.0.0.1:%d%s" % ("https" if tls else "http", self.rest_port, path)

    def rest(self, path, timeout=3.0, context=None):
        """(status, json or None); (None, None) when the REST API does not answer.  Over
        HTTPS (restapi.certfile set) the context trusts restapi.cafile, or self.tls_ca
        when the node has no cafile, and presents self.tls_client when set."""
        api = self.config.get("restapi", {})
        if context is None and "certfile" in api:
            context = tls_context(api.get("cafile") or self.tls_ca,
                                  self.tls_client)
        st, body = http_get(self.rest_url(path), timeout, context)
        if st is None:
            return None, None
        try:
            return st, json.loads(body) if body else None
        except ValueError:
            return st, None

    # -- logs -----------------------------------------------------------------------------
    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, current_start_only=False, since=None):
        """The daemon's log (all starts; only the current start's; or from byte `since`)."""
        try:
            with open(self.log_path, "rb") as f:
                if since is not None:
                    f.seek(since)
                elif current_start_only:
                    f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def pg_log_text(self):
        try:
            with open(self.pg_log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sanitizer_reports(self):
        text = self.log_text()
        lines = text.splitlines()
        hits = [i for i, l in enumerate(lines) if any(m in l for m in SANITIZER_MARKERS)]
        if not hits:
            return None
        i = hits[0]
        return "%s: %d sanitizer report(s) in %s; first:\n%s" % (
            self.name, len(hits), self.log_path, "\n".join(lines[max(0, i - 2):i + 40]))


# ---------------------------------------------------------------------------------------
# a cluster: etcd + N nodes
# ---------------------------------------------------------------------------------------

_cluster_seq = 0


class Cluster:
    def __init__(self, n=3, label="c", overrides=None, node_overrides=None, etcd_members=1):
        global _cluster_seq
        _cluster_seq += 1
        self.scope = "pgwt%d" % _cluster_seq
        self.dir = os.path.join(TMPROOT, "%s%s-%s%d" % (CG_PREFIX, RUN_ID, label, _cluster_seq))
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.prefix = "/service/%s/" % self.scope
        self.etcds = [Etcd(os.path.join(self.dir, "etcd" if i == 0 else "etcd%d" % i),
                           label="%s%d-etcd%s" % (label, _cluster_seq, i or ""),
                           name="etcd%d" % i) for i in range(etcd_members)]
        if etcd_members > 1:
            peers = ",".join("%s=%s" % (e.name, e.peer_url) for e in self.etcds)
            for e in self.etcds:
                e.initial_cluster = peers
        self.etcd = self.etcds[0]
        self.nodes = []
        self.label = "%s%d" % (label, _cluster_seq)
        self.state = {}   # for tests that build on each other
        for i in range(n):
            name = "node%d" % (i + 1)
            ov = deep_merge(overrides or {}, (node_overrides or {}).get(name, {}))
            # Node cgroups carry the cluster label so two clusters' node1 do not collide.
            self.nodes.append(Node(name, self.dir, self.scope, [e.endpoint for e in self.etcds], ov,
                                   cgroup_label="%s-%s" % (self.label, name)))
        register(self)
        log("cluster %s in %s: etcd %s, %s" % (self.scope, self.dir, self.etcd.endpoint,
                                               ", ".join(map(repr, self.nodes))))

    def __repr__(self):
        return "Cluster(%s)" % self.scope

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, etcd=True, nodes=True):
        if etcd:
            for e in self.etcds:   # a member of a larger cluster answers once quorum is there
                e.start(wait=len(self.etcds) == 1)
            for e in self.etcds:
                wait_until(e.is_up, 30, "%r to answer" % e,
                           diag=lambda e=e: "etcd log:\n" + tail(e.log_path, 30))
        if nodes:
            for node in self.nodes:
                self.start_node(node)
        return self

    def start_node(self, node):
        node.start()
        return node

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def stop(self, graceful=True, timeout=40):
        """Stop every daemon (SIGTERM, so ASan's leak check runs), then kill the machines."""
        if graceful:
            live = [n for n in self.nodes if n.daemon_alive()]
            for n in live:
                try:
                    n.stop_daemon(signal.SIGTERM, wait=False)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            for n in live:
                try:
                    n.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log("%s: daemon did not exit within %d s of SIGTERM" % (n.name, timeout))
        for n in self.nodes:
            n.cleanup()
        for e in self.etcds:
            e.cleanup()

    def cleanup(self, keep_logs=False):
        unregister(self)
        try:
            self.stop(graceful=False)
        finally:
            self.remove_files(keep_logs)

    def remove_files(self, keep_logs):
        if not os.path.isdir(self.dir):
            return
        if keep_logs:
            for n in self.nodes:
                shutil.rmtree(n.data_dir, ignore_errors=True)
            for e in self.etcds:
                shutil.rmtree(e.data_dir, ignore_errors=True)
            log("logs kept in %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def sanitizer_reports(self):
        reps = [r for r in (n.sanitizer_reports() for n in self.nodes) if r]
        return "\n\n".join(reps) if reps else None

    # -- etcd view ------------------------------------------------------------------------
    def keys(self):
        return self.etcd.get_prefix(self.prefix)

    def key(self, name):
        return self.etcd.get(self.prefix + name)

    def leader_name(self):
        try:
            return self.key("leader")
        except Exception:  # noqa: BLE001 - etcd down counts as "no leader known"
            return None

    def leader(self):
        name = self.leader_name()
        return self.node(name) if name else None

    def replicas(self, leader=None):
        leader = leader or self.leader_name()
        return [n for n in self.nodes if n.name != leader]

    def members(self):
        out = {}
        for k, v in self.keys().items():
            if k.startswith(self.prefix + "members/"):
                out[k[len(self.prefix + "members/"):]] = json.loads(v)
        return out

    def history(self):
        v = self.key("history")
        return json.loads(v) if v else []

    # -- waiting --------------------------------------------------------------------------
    def wait_until(self, pred, timeout, what, interval=0.3):
        return wait_until(pred, timeout, what, interval, diag=self.dump)

    def wait_leader(self, timeout=60, exclude=()):
        """Name of the leader once the leader key names a node not in exclude."""
        def pred():
            name = self.leader_name()
            return name if name and name not in exclude else None
        return self.wait_until(pred, timeout, "a leader other than %s" % list(exclude)
                               if exclude else "a leader")

    def streaming_on(self, leader):
        """application names/ports of the streaming standbys pg_stat_replication shows."""
        return leader.sql("SELECT application_name, client_port, state FROM pg_stat_replication"
                          " WHERE state = 'streaming'")

    def wal_receiver(self, node):
        """(status, sender_host, sender_port, received_tli) of node's WAL receiver, or None."""
        rows = node.sql("SELECT status, sender_host, sender_port, received_tli"
                        " FROM pg_stat_wal_receiver")
        return rows[0] if rows else None

    @staticmethod
    def primary_timeline(node):
        """The timeline a primary writes on (pg_control's may lag until the next checkpoint)."""
        return int(node.sql1("SELECT pg_walfile_name(pg_current_wal_lsn())")[:8], 16)

    def streams_from(self, replica, leader):
        """replica's WAL receiver streams from leader, on the leader's timeline.  (A replica
        whose timeline forked off before its replay position keeps reconnecting on the old
        timeline, and its receiver says "streaming" between the attempts.)"""
        wr = self.wal_receiver(replica)
        return (bool(wr) and wr[0] == "streaming" and wr[2] == leader.pg_port
                and wr[3] == self.primary_timeline(leader))

    def is_healthy(self, nodes=None):
        nodes = nodes or [n for n in self.nodes if n.daemon_alive()]
        leader = self.leader()
        if leader is None or leader not in nodes:
            return False
        if leader.rest("/primary")[0] != 200 or not leader.accepts_writes():
            return False
        for r in nodes:
            if r is leader:
                continue
            if r.rest("/replica")[0] != 200 or not self.streams_from(r, leader):
                return False
        return len(self.streaming_on(leader)) >= len(nodes) - 1

    def wait_healthy(self, timeout=120, nodes=None):
        """One leader (primary, accepts writes) and every other running node streaming from it."""
        self.wait_until(lambda: self.is_healthy(nodes), timeout,
                        "a healthy cluster (1 leader + %d streaming replicas)"
                        % (len(nodes or self.nodes) - 1), interval=0.5)
        return self.leader()

    def restore(self, timeout=150):
        """Start every node whose daemon is not running, then wait for a healthy cluster."""
        for e in self.etcds:
            if not e.is_up():
                e.start(wait=len(self.etcds) == 1)
        for n in self.nodes:
            if not n.daemon_alive():
                if n.cgroup and n.cgroup.populated():
                    n.cgroup.kill()
                log("restore: starting %s again" % n.name)
                self.start_node(n)
        return self.wait_healthy(timeout)

    # -- diagnostics ----------------------------------------------------------------------
    def dump(self, log_lines=40, pg_lines=15):
        out = ["===== cluster %s (%s) =====" % (self.scope, self.dir)]
        try:
            keys = self.keys()
            out.append("--- etcd keys under %s:" % self.prefix)
            for k in sorted(keys):
                out.append("  %s = %s" % (k[len(self.prefix):], keys[k][:400]))
        except Exception as e:  # noqa: BLE001
            out.append("--- etcd: unreachable (%s)" % e)
        for n in self.nodes:
            st, js = n.rest("/patroni", timeout=2)
            brief = None
            if js:
                brief = {k: js.get(k) for k in ("role", "state", "timeline", "xlog",
                                                "cluster_unlocked", "pending_restart")}
            out.append("--- %s: daemon %s, postmaster pid %s (%s), machine %s, REST /patroni %s %s"
                       % (n.name,
                          "running pid %d" % n.proc.pid if n.daemon_alive()
                          else "exited rc=%s" % (n.proc.returncode if n.proc else "never started"),
                          n.postmaster_pid(), "alive" if n.postmaster_running() else "dead",
                          n.machine_processes() if n.cgroup else "-", st,
                          json.dumps(brief) if brief else ""))
            out.append("  daemon log %s (last %d lines):" % (n.log_path, log_lines))
            out.append(_indent(tail(n.log_path, log_lines)))
            out.append("  PostgreSQL log %s (last %d lines):" % (n.pg_log_path, pg_lines))
            out.append(_indent(tail(n.pg_log_path, pg_lines)))
        return "\n".join(out)


def _indent(text, pad="    "):
    return "\n".join(pad + l for l in text.splitlines())


class Writer(threading.Thread):
    """Inserts ids 1, 2, ... into TABLE through one node with autocommit, recording each id
    whose COMMIT returned.  Stops at the first error (the id then is "in doubt") or on stop()."""

    def __init__(self, node, table, pause=0.01):
        super().__init__(daemon=True)
        self.node = node
        self.table = table
        self.pause = pause
        self.acked = []
        self.in_doubt = []
        self.errors = []
        self._stop_evt = threading.Event()

    def run(self):
        i = 0
        conn = None
        try:
            conn = self.node.connect(timeout=3)
            cur = conn.cursor()
            while not self._stop_evt.is_set():
                i += 1
                try:
                    cur.execute("INSERT INTO %s (id) VALUES (%%s)" % self.table, (i,))
                except Exception as e:  # noqa: BLE001 - the leader died: stop writing
                    self.in_doubt.append(i)
                    self.errors.append("%s: %s" % (type(e).__name__, str(e).strip()))
                    break
                self.acked.append(i)
                if self.pause:
                    time.sleep(self.pause)
        except Exception as e:  # noqa: BLE001
            self.errors.append("%s: %s" % (type(e).__name__, str(e).strip()))
        finally:
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass

    def stop(self):
        self._stop_evt.set()
        self.join(10)


def preflight():
    """None when integration tests can run here, else the reason to skip them."""
    if os.geteuid() != 0:
        return "integration tests need root (they run PostgreSQL as postgres and use cgroups)"
    if not os.access(ETCD_BIN, os.X_OK):
        return "%s is missing (install etcd-server)" % ETCD_BIN
    if not os.access(os.path.join(PG_BIN, "postgres"), os.X_OK):
        return "PostgreSQL 15 is missing under %s" % PG_BIN
    if not cgroups_available():
        return "cgroup v2 is not writable at %s" % CGROOT
    try:
        import pwd
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    return None
