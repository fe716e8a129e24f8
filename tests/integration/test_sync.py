"""synchronous_mode (issue 12): no acknowledged commit is lost when the leader's machine
dies, only a standby named in the sync key is promoted, strict mode blocks commits
rather than acknowledge what only the primary holds, and the REST API, /metrics and
pgwardenctl list show the synchronous standby.

A writer commits unique ids one at a time (autocommit) on whichever node accepts
writes and records each id whose COMMIT returned: those are acknowledged.  It sets no
statement_timeout: PostgreSQL answers a cancelled wait for a synchronous standby with
a WARNING and a successful COMMIT, which would count as acknowledged.
"""
import json
import os
import re
import threading
import time

import psycopg2
import pytest

import harness
from harness import SUPERUSER, SUPERUSER_PASSWORD, figure, log, wait_until
from test_ctl import ctl
from test_routing import PATRONICTL_BIN, patronictl_list

KILLS = int(os.environ.get("PGWT_SYNC_KILLS", "10"))


def sync_overrides(strict=False):
    return {"bootstrap": {"dcs": {"synchronous_mode": True,
                                  "synchronous_mode_strict": strict}}}


def sync_key(c):
    raw = c.key("sync")
    return json.loads(raw) if raw else {}


def sync_standbys(c):
    k = sync_key(c)
    return [s for s in (k.get("sync_standby") or "").split(",") if s] \
        if k.get("leader") == c.leader_name() else []


class Writer(threading.Thread):
    """Commits ids 1, 2, ... on the node that accepts writes; `acked` holds each id
    whose COMMIT returned."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stop = threading.Event()
        self.acked = []
        self.errors = 0
        self.next_id = 1

    def connect(self):
        for n in self.c.nodes:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=n.pg_port, user=SUPERUSER,
                                        password=SUPERUSER_PASSWORD, dbname="postgres",
                                        connect_timeout=2, application_name="pgwt-writer",
                                        target_session_attrs="read-write")
                conn.autocommit = True
                return conn
            except psycopg2.Error:
                continue
        return None

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                    if conn is None:
                        time.sleep(0.1)
                        continue
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO acked (id) VALUES (%s)", (self.next_id,))
                self.acked.append(self.next_id)
                self.next_id += 1
                time.sleep(0.01)
            except psycopg2.Error:
                self.errors += 1
                self.next_id += 1  # an id whose COMMIT did not return is never reused
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
                time.sleep(0.1)

    def finish(self):
        self.stop.set()
        self.join(30)


def missing_on(node, ids):
    present = {r[0] for r in node.sql("SELECT id FROM acked")}
    return [i for i in ids if i not in present]


def test_leader_killed_ten_times_loses_no_acknowledged_commit(make_cluster):
    c = make_cluster(3, overrides=sync_overrides())
    leader = c.wait_healthy(180)
    leader.sql("CREATE TABLE acked (id bigint PRIMARY KEY)")
    w = Writer(c)
    w.start()
    try:
        for k in range(KILLS):
            wait_until(lambda: sync_standbys(c), 60, "a synchronous standby in the sync key",
                       diag=c.dump)
            leader = c.leader()
            sync = sync_standbys(c)
            # through the REST API too: /sync on the named standby, /async on the other
            for n in c.nodes:
                if n is not leader:
                    want = 200 if n.name in sync else 503
                    wait_until(lambda: n.rest("/sync")[0] == want, 15,
                               "%s /sync answering %d" % (n.name, want))
            time.sleep(0.5 + (k % 4) * 0.7)  # a moment that differs from kill to kill
            before = len(w.acked)
            t0 = time.monotonic()
            leader.kill_machine()
            log("kill %d: %s killed; sync standbys %s; %d commits acknowledged"
                % (k + 1, leader.name, sync, before))
            wait_until(lambda: c.leader_name() not in (None, leader.name)
                       and c.leader().accepts_writes(), 90, "a new primary", diag=c.dump)
            new = c.leader()
            figure("sync kill %d: machine killed -> new primary" % (k + 1),
                   time.monotonic() - t0)
            assert new.name in sync, "promoted %s, not in sync %s" % (new.name, sync)
            wait_until(lambda: len(w.acked) > before + 5, 60, "writes on the new primary")
            lost = missing_on(new, list(w.acked))
            assert not lost, "kill %d: %d acknowledged commits missing on %s: %s" % (
                k + 1, len(lost), new.name, lost[:20])
            c.start_node(leader)
            c.wait_healthy(180)
        # a switchover to the synchronous standby, under the same writer
        wait_until(lambda: sync_standbys(c), 60, "a synchronous standby", diag=c.dump)
        target = sync_standbys(c)[0]
        before = len(w.acked)
        rc, out, err = ctl(c, "switchover", "--candidate", target, "--force", timeout=120)
        assert rc == 0, out + err
        wait_until(lambda: c.leader_name() == target and c.leader().accepts_writes(), 60,
                   "%s leading after the switchover" % target, diag=c.dump)
        wait_until(lambda: len(w.acked) > before + 5, 60, "writes after the switchover")
        lost = missing_on(c.node(target), list(w.acked))
        assert not lost, "switchover: %d acknowledged commits missing: %s" % (len(lost),
                                                                           lost[:20])
    finally:
        w.finish()
    final = c.leader()
    lost = missing_on(final, w.acked)
    assert not lost, lost[:20]
    figure("sync kills: acknowledged commits, all present", len(w.acked), unit="")
    wait_until(lambda: "Sync Standby" in ctl(c, "list")[1], 60, "Sync Standby in the list",
               diag=c.dump)
    # /cluster is rendered by the node from its last read: a loop later at most
    wait_until(lambda: any(m["role"] == "sync_standby"
                           for m in (final.rest("/cluster")[1] or {}).get("members", [])),
               30, "a sync_standby in /cluster", diag=c.dump)


def test_strict_mode_blocks_commits_without_a_standby(make_cluster):
    c = make_cluster(3, overrides=sync_overrides(strict=True))
    leader = c.wait_healthy(180)
    leader.sql("CREATE TABLE acked (id bigint PRIMARY KEY)")
    wait_until(lambda: sync_standbys(c), 60, "a synchronous standby", diag=c.dump)
    replicas = c.replicas()
    for r in replicas:
        r.kill_machine()
    # the leader drops the dead standbys from the key, then waits for anyone ("*")
    wait_until(lambda: leader.sql1("SHOW synchronous_standby_names") == "*", 60,
               "synchronous_standby_names = '*'", diag=c.dump)
    assert sync_standbys(c) == []
    done = threading.Event()
    err = []

    def commit():
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=leader.pg_port, user=SUPERUSER,
                                    password=SUPERUSER_PASSWORD, dbname="postgres",
                                    connect_timeout=5)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("INSERT INTO acked (id) VALUES (1)")
            done.set()
        except Exception as e:  # noqa: BLE001
            err.append(e)

    t = threading.Thread(target=commit, daemon=True)
    t.start()
    time.sleep(8)
    assert not done.is_set() and not err, "a commit was acknowledged with no standby: %s" % err
    st, body = leader.rest("/patroni")
    assert body["role"] in ("master", "primary"), body
    t0 = time.monotonic()
    c.start_node(replicas[0])
    wait_until(done.is_set, 120, "the blocked commit to return once a standby streams",
               diag=c.dump)
    figure("strict: standby started -> blocked commit acknowledged", time.monotonic() - t0)
    wait_until(lambda: sync_standbys(c) == [replicas[0].name], 60, "the standby in the key",
               diag=c.dump)
    assert replicas[0].sql1("SELECT count(*) FROM acked WHERE id = 1") == 1


def test_sync_key_and_endpoints_without_faults(make_cluster):
    c = make_cluster(3, overrides=sync_overrides())
    leader = c.wait_healthy(180)
    wait_until(lambda: sync_standbys(c), 60, "a synchronous standby", diag=c.dump)
    sync = sync_standbys(c)
    assert len(sync) == 1 and sync[0] != leader.name
    s = c.node(sync[0])
    other = [n for n in c.replicas() if n.name != s.name][0]
    assert leader.sql1("SHOW synchronous_standby_names") == 'FIRST 1 ("%s")' % s.name
    wait_until(lambda: s.rest("/sync")[0] == 200 and s.rest("/async")[0] == 503, 15,
               "/sync on the synchronous standby")
    assert other.rest("/sync")[0] == 503 and other.rest("/async")[0] == 200
    assert s.rest("/patroni")[1].get("sync_standby") is True
    if os.access(PATRONICTL_BIN, os.X_OK):  # Debian's patronictl 3.0.2 reads the same key
        rows = {r["Member"]: r["Role"] for r in patronictl_list(c)}
        assert rows[s.name] == "Sync Standby" and rows[other.name] == "Replica", rows
    metrics = harness.http_get(s.rest_url("/metrics"))[1].decode()
    assert re.search(r"^patroni_sync_standby\{[^}]*\} 1$", metrics, re.M), metrics
    # a switchover to the asynchronous standby is refused: it may lack commits
    rc, out, err = ctl(c, "switchover", "--candidate", other.name, "--force")
    assert rc != 0 and "synchronous" in out + err, out + err
    # nosync on the synchronous standby: the leader moves the key, safely
    s.config.setdefault("tags", {})["nosync"] = True
    s.write_config()
    s.stop_daemon()
    s.start()
    wait_until(lambda: sync_standbys(c) == [other.name], 90, "the key moving to %s" % other.name,
               diag=c.dump)
    assert leader.sql1("SHOW synchronous_standby_names") == 'FIRST 1 ("%s")' % other.name
    # synchronous_mode off: the key goes, PostgreSQL stops waiting
    rc, out, err = ctl(c, "edit-config", "-s", "synchronous_mode=false", "--force")
    assert rc == 0, out + err
    wait_until(lambda: c.key("sync") is None and
               leader.sql1("SHOW synchronous_standby_names") == "", 60, "sync mode off",
               diag=c.dump)
