"""recorder.py - the history of a fault run: the client's write attempts (client.jsonl),
the monitor's polls of every node (monitor.jsonl) and the fault events (faults.jsonl).
All times are time.monotonic() (CLOCK_MONOTONIC, the clock of the daemons' audit records,
the BMCs' chassis logs and the watchdog emulators' logs).

The client runs in the root namespace and writes unique ids through ONE libpq multi-host
connection string (target_session_attrs=read-write, connect_timeout=2).  libpq enforces
connect_timeout per host only in blocking mode, so the connection is made blocking; every
statement then gets a client-side deadline: a timer shuts the socket down (shutdown(2) on
the connection's descriptor), which ends the blocking read at once with an error.  A frozen
server's kernel keeps acknowledging TCP, so a server-side statement_timeout would never
fire.  A statement whose result arrived is acknowledged even when the deadline fires a
moment later.  The client never cancels a statement: PostgreSQL answers a cancelled wait
for a synchronous standby with a WARNING and a successful COMMIT (recorded under "warn"
when it happens anyway, e.g. after pg_cancel_backend by someone else).
"""

import json
import socket
import threading
import time

import rig as rigmod


def stop_all(*things):
    """Stop each client or monitor that was started (None: never started), whatever the
    others do: cleanup goes on."""
    for x in things:
        if x is not None:
            try:
                x.stop()
            except Exception:  # noqa: BLE001
                pass


class Jsonl:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "a")
        self.lock = threading.Lock()

    def write(self, obj):
        line = json.dumps(obj, sort_keys=False)
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()

    def close(self):
        with self.lock:
            self.f.close()


class _Guard:
    """Shut the connection's socket down when the deadline passes."""

    def __init__(self, conn, seconds):
        self.conn = conn
        self.lock = threading.Lock()
        self.done = False
        self.fired = False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self):
        with self.lock:
            if self.done:
                return
            self.fired = True
            try:
                s = socket.fromfd(self.conn.fileno(), socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.shutdown(socket.SHUT_RDWR)
                finally:
                    s.close()
            except OSError:
                pass

    def finish(self):
        with self.lock:
            self.done = True
        self.timer.cancel()
        return self.fired


class Client(threading.Thread):
    """Optional hooks (bench/failover-bench.py): `hosts` [(addr, port)] to connect through
    instead of the three nodes (e.g. a proxy), `first_id` for a second client on the same
    table, `on_record(rec)` called after each record is written."""

    def __init__(self, rig, path, period=0.05, deadline=3.0, hosts=None, first_id=1,
                 on_record=None, name="pgwf-client"):
        super().__init__(daemon=True, name=name)
        self.rig = rig
        self.out = Jsonl(path)
        self.period = period
        self.deadline = deadline
        self.stop_evt = threading.Event()
        self.next_id = first_id
        self.on_record = on_record
        self.acked = 0
        self.failed = 0
        hosts = hosts or [(n.addr, rigmod.PG_PORT) for n in rig.nodes]
        self.dsn = ("host=%s port=%s user=%s password=%s dbname=postgres "
                    "target_session_attrs=read-write connect_timeout=2 "
                    "application_name=pgwf-client" % (
                        ",".join(h for h, _ in hosts), ",".join(str(p) for _, p in hosts),
                        rigmod.SUPERUSER, rigmod.SUPERUSER_PASSWORD))

    def _connect(self):
        import psycopg2
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        g = _Guard(conn, self.deadline)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT host(inet_server_addr()), inet_server_port()")
                addr, port = cur.fetchone()
        finally:
            if g.finish():
                conn.close()
        n = self.rig.by_addr(addr)
        return conn, n.name if n else "%s:%s" % (addr, port)

    def run(self):
        conn, node = None, None
        while not self.stop_evt.is_set():
            t_next = time.monotonic() + self.period
            i = self.next_id
            self.next_id += 1
            s = time.monotonic()
            rec = {"id": i, "s": s, "r": None, "ok": False, "node": None, "err": None}
            fired = False
            try:
                if conn is None:
                    conn, node = self._connect()
                rec["node"] = node
                g = _Guard(conn, self.deadline)
                ok = False
                try:
                    with conn.cursor() as cur:
                        cur.execute("INSERT INTO faults_writes (id, t) VALUES (%s, %s)",
                                    (i, s))
                    ok = True
                finally:
                    fired = g.finish()
                    rec["r"] = time.monotonic()
                rec["ok"] = ok
                if conn.notices:
                    rec["warn"] = " | ".join(x.strip() for x in conn.notices)
                    del conn.notices[:]
                if fired:
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                rec["r"] = time.monotonic()
                msg = str(e).strip().replace("\n", " | ")
                rec["err"] = "%s%s: %s" % ("deadline %.1f s (socket shut down), " % self.deadline
                                           if fired else "", type(e).__name__, msg[:300])
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
            if rec["ok"]:
                self.acked += 1
            else:
                self.failed += 1
            self.out.write(rec)
            if self.on_record is not None:
                self.on_record(rec)
            left = t_next - time.monotonic()
            if left > 0:
                self.stop_evt.wait(left)
        if conn is not None:
            conn.close()

    def stop(self):
        self.stop_evt.set()
        self.join(30)
        self.out.close()


MONITOR_QUERY = (
    "SELECT pg_is_in_recovery(), pg_postmaster_start_time()::text,"
    " CASE WHEN pg_is_in_recovery()"
    "  THEN (SELECT received_tli FROM pg_stat_wal_receiver)"
    "  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,"
    " (SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming'),"
    " (SELECT extract(epoch FROM now() - last_msg_receipt_time)::float8"
    "  FROM pg_stat_wal_receiver)")


class Monitor:
    """One thread per node: every ~50 ms one query on a kept connection (async libpq,
    300 ms deadline for the query, 1 s for a new connection)."""

    def __init__(self, rig, path, period=0.05, deadline=0.3, connect_deadline=1.0):
        self.rig = rig
        self.out = Jsonl(path)
        self.period = period
        self.deadline = deadline
        self.connect_deadline = connect_deadline
        self.stop_evt = threading.Event()
        self.threads = [threading.Thread(target=self._poll, args=(n,), daemon=True,
                                         name="pgwf-mon-" + n.name) for n in rig.nodes]

    def start(self):
        for t in self.threads:
            t.start()

    def _poll(self, node):
        conn = None
        dsn = node.dsn(application_name="pgwf-monitor", connect_timeout=2)
        while not self.stop_evt.is_set():
            t_next = time.monotonic() + self.period
            s = time.monotonic()
            rec = {"node": node.name, "s": s, "r": None, "primary": None, "pm_start": None,
                   "tl": None}
            try:
                if conn is None or conn.closed:
                    conn = rigmod.async_connect(dsn, s + self.connect_deadline)
                rows = rigmod.async_query(conn, MONITOR_QUERY, time.monotonic() + self.deadline)
                rec_, pm, tl, up, age = rows[0]
                rec["primary"] = not rec_
                rec["pm_start"] = pm
                rec["tl"] = tl
                rec["upstream"] = up
                rec["rx_age"] = age
            except Exception as e:  # noqa: BLE001
                rec["err"] = ("%s: %s" % (type(e).__name__, str(e).strip()))[:160]
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
            rec["r"] = time.monotonic()
            self.out.write(rec)
            left = t_next - time.monotonic()
            if left > 0:
                self.stop_evt.wait(left)
        if conn is not None:
            conn.close()

    def stop(self):
        self.stop_evt.set()
        for t in self.threads:
            t.join(10)
        self.out.close()
