"""etcd with three members, and what the cluster does when etcd loses and regains quorum
(ARCHITECTURE.md section 4, rules 2 and 7).

- One member killed: etcd keeps quorum, the leader keeps its key and takes writes.
- Quorum lost (two of three members killed): the primary stops taking writes before its
  lease deadline less the safety margin (rule 2), with the watchdog armed and never fired.
- Quorum restored (the two members started again from their data): etcd restarts every
  lease timer when it elects a leader again, so the old leader's lease, and the leader key
  on it, are still there.  The old leader proves the lapsed lease alive with a keepalive
  (etcd never renews an expired lease) and takes writes again: same leader, no failover,
  no fence.  Before, it forgot the lapsed lease, so nobody could take the key until etcd
  expired it a full TTL after the restore, and then the cluster failed over for nothing
  (12.9-14.0 s without writes).
"""

import signal
import threading
import time

import psycopg2

import harness
from harness import SUPERUSER, SUPERUSER_PASSWORD, figure, log, wait_until

TTL, LOOP_WAIT, RETRY, S = 10, 2, 3, 5
ETCD_STEP_DOWN = 3   # two election timeouts (etcd's default 1 s) and some slack


class Acks(threading.Thread):
    """Writes through a libpq multi-host string (target_session_attrs=read-write) every
    50 ms; `acks` holds (time.monotonic() of the COMMIT's return, server port)."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.dsn = dict(host=",".join("127.0.0.1" for _ in c.nodes),
                        port=",".join(str(n.pg_port) for n in c.nodes),
                        user=SUPERUSER, password=SUPERUSER_PASSWORD, dbname="postgres",
                        connect_timeout=1, target_session_attrs="read-write",
                        options="-c statement_timeout=1000")
        self.acks = []
        self.halt = threading.Event()

    def run(self):
        conn, port = None, None
        while not self.halt.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(**self.dsn)
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute("SELECT inet_server_port()")
                        port = cur.fetchone()[0]
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO quorum_acks VALUES (now())")
                self.acks.append((time.monotonic(), port))
            except psycopg2.Error:
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.05)
        if conn is not None:
            conn.close()

    def stop(self):
        self.halt.set()
        self.join(10)

    def after(self, t):
        return [a for a in self.acks if a[0] > t]


def quorum(c):
    """Does etcd answer a linearizable read (it has a leader) within 0.5 s?"""
    try:
        return "header" in harness.http_post_json(c.etcd.url + "/v3/kv/range", {"key": "eA=="},
                                                   timeout=0.5)
    except OSError:
        return False


def quorum_cluster(make_cluster):
    c = make_cluster(3, start=False, etcd_members=3, overrides={
        "bootstrap": {"dcs": {"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY}},
        "watchdog": {"mode": "required", "device": "/nonexistent", "safety_margin": S}})
    emus = harness.start_watchdog_emulators(c)
    c.start()
    leader = c.wait_healthy(180)
    leader.sql("CREATE TABLE quorum_acks (t timestamptz)")
    return c, emus, leader


def test_quorum_lost_and_restored_keeps_the_same_leader(make_cluster):
    c, emus, leader = quorum_cluster(make_cluster)
    w = Acks(c)
    w.start()
    try:
        wait_until(lambda: len(w.acks) > 10, 20, "writes through the multi-host string")
        # one member down: quorum holds, nothing changes
        c.etcds[2].kill()
        t_one = time.monotonic()
        time.sleep(2 * TTL / 2)
        assert c.leader_name() == leader.name
        gaps = [b[0] - a[0] for a, b in zip(w.after(t_one), w.after(t_one)[1:])]
        figure("longest write gap with one etcd member down", max(gaps))
        c.etcds[2].start()

        c.etcds[1].kill()
        c.etcds[2].kill()
        t_lost = time.monotonic()
        # Rule 2.  etcd's leader renews leases without a quorum round until it notices it
        # lost its followers (CheckQuorum, an election timeout: 1 s, seen 1.6 s here), so
        # the last renewal may be sent up to ETCD_STEP_DOWN after t_lost.
        wait_until(lambda: not leader.accepts_writes(), TTL + ETCD_STEP_DOWN,
                   "the primary to stop taking writes")
        last = max(a[0] for a in w.acks)
        figure("quorum lost: last write acknowledged after", last - t_lost)
        assert last < t_lost + ETCD_STEP_DOWN + TTL - S, "a write was acknowledged after D - S"
        # past the TTL: had etcd counted time without a leader, the lease would be gone
        time.sleep(TTL + 2 - (time.monotonic() - t_lost))
        t_back = time.monotonic()
        c.etcds[1].start(wait=False)
        c.etcds[2].start(wait=False)
        wait_until(lambda: quorum(c), 60, "etcd to regain quorum", interval=0.05)
        t_quorum = time.monotonic()
        wait_until(lambda: w.after(t_back), 60, "writes to be accepted again")
        first = w.after(t_back)[0]
        figure("quorum restored: etcd answers a linearizable read after", t_quorum - t_back)
        figure("quorum restored: writes accepted again after", first[0] - t_back)
        figure("... of which after etcd answered", first[0] - t_quorum)
        assert first[1] == leader.pg_port, "writes resumed on another node: a needless failover"
        assert c.leader_name() == leader.name
        time.sleep(LOOP_WAIT + 1)
        assert all(a[1] == leader.pg_port for a in w.after(t_back)), "writes on two nodes"
    finally:
        w.stop()
    for name, emu in emus.items():
        assert not emu.fired(), "%s's watchdog fired: %s" % (name, emu.fired())
    text = leader.log_text()
    assert "is still alive in etcd" in text, text[-3000:]
    c.wait_healthy(60)
    log("history: %s" % c.history())


def test_lapsed_lease_that_etcd_expired_is_not_renewed(make_cluster):
    """The leader's daemon is stopped (SIGSTOP) past the TTL: etcd expires its lease and
    another node takes over.  Thawed, the old leader's keepalive of its lapsed lease fails
    (etcd never renews an expired lease): it stays a replica and never writes again."""
    c, emus, leader = quorum_cluster(make_cluster)
    leader.stop_daemon(signal.SIGSTOP, wait=False)
    # the watchdog emulator resets the machine at W: power it on again and start the daemon
    wait_until(lambda: c.leader_name() not in (None, leader.name), 60, "another leader")
    new = c.leader()
    assert not leader.daemon_alive() or not leader.accepts_writes()
    if leader.daemon_alive():
        leader.stop_daemon(signal.SIGCONT, wait=False)
    else:
        leader.start()
    c.wait_healthy(120)
    assert c.leader_name() == new.name
    assert "is still alive in etcd" not in leader.log_text()
