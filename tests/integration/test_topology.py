"""Replication topology (issue 15), with Patroni's meaning: tags.replicatefrom makes a
replica stream from the named member (cascading replication) while that member runs and
streams, and from the leader otherwise; max_timelines_history keeps only the newest rows
of the history key; tags.nostream makes a replica replay WAL from the archive only
(restore_command, no primary_conninfo, no slot on the leader); check_timeline,
max_timelines_history, replicatefrom and nostream are accepted by --check-config without
a "not implemented" warning.
"""
import os
import shutil
import subprocess
import tempfile
import time

from harness import (SANITIZER_MARKERS, PGWARDEN_BIN, chown_postgres, clean_env, figure, log,
                     wait_until)
from test_ctl import ctl

# "a few loops" (loop_wait is 2 s here) plus a PostgreSQL reload and a reconnect
REPOINT_TIMEOUT = 30


def sender_port(c, node):
    """The port node's WAL receiver streams from, or None."""
    try:
        wr = c.wal_receiver(node)
    except Exception:  # noqa: BLE001 - restarting
        return None
    return wr[2] if wr and wr[0] == "streaming" else None


def has_row(node, i):
    try:
        return node.sql1("SELECT count(*) FROM topo WHERE id = %s", (i,)) == 1
    except Exception:  # noqa: BLE001 - not replayed yet, or restarting
        return False


def test_check_config_accepts_the_topology_keys(make_cluster):
    c = make_cluster(1, start=False, label="tpc", overrides={
        "tags": {"replicatefrom": "node2", "nostream": True},
        "bootstrap": {"dcs": {"check_timeline": True, "max_timelines_history": 3}}})
    node = c.nodes[0]
    p = subprocess.run([PGWARDEN_BIN, "--check-config", node.config_path],
                       capture_output=True, text=True, timeout=60, env=clean_env())
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "not implemented" not in out, out
    assert not any(m in out for m in SANITIZER_MARKERS), out


def test_replicatefrom_cascades_and_falls_back(make_cluster):
    c = make_cluster(3, start=False, label="cas",
                     node_overrides={"node3": {"tags": {"replicatefrom": "node2"}}})
    node1, node2, node3 = c.nodes
    c.start(nodes=False)
    # node1 first, so that the member node3 names is a replica
    c.start_node(node1)
    c.wait_until(lambda: c.leader_name() == "node1" and node1.accepts_writes(), 120,
                 "node1 leading")
    c.start_node(node2)
    c.start_node(node3)
    c.wait_until(lambda: sender_port(c, node2) == node1.pg_port, 180, "node2 streaming from node1")
    c.wait_until(lambda: sender_port(c, node3) == node2.pg_port, 180,
                 "node3 streaming from node2 (tags.replicatefrom)")
    assert c.members()["node3"].get("tags", {}).get("replicatefrom") == "node2"
    node1.sql("CREATE TABLE topo (id int PRIMARY KEY)")
    node1.sql("INSERT INTO topo VALUES (1)")
    c.wait_until(lambda: has_row(node3, 1), 30, "row 1 on node3 through node2")
    # the leader sends to node2 only; node3's WAL comes from node2
    apps = [r[0] for r in c.streaming_on(node1)]
    assert apps == ["node2"], apps
    assert [r[0] for r in c.streaming_on(node2)] == ["node3"]

    # node2 goes away: node3 follows the leader within a few loops
    t0 = time.monotonic()
    assert node2.stop_daemon(timeout=60) == 0
    c.wait_until(lambda: sender_port(c, node3) == node1.pg_port, REPOINT_TIMEOUT,
                 "node3 repointed to the leader")
    figure("node3 repointed to the leader after node2 stopped", time.monotonic() - t0)
    node1.sql("INSERT INTO topo VALUES (2)")
    c.wait_until(lambda: has_row(node3, 2), 30, "row 2 on node3 from the leader")
    log("node3 log: %s" % [line for line in node3.log_text().splitlines()
                           if "replicatefrom" in line][-3:])

    # node2 back and streaming: node3 cascades from it again
    c.start_node(node2)
    c.wait_until(lambda: sender_port(c, node2) == node1.pg_port, 120, "node2 streaming again")
    c.wait_until(lambda: sender_port(c, node3) == node2.pg_port, REPOINT_TIMEOUT + 20,
                 "node3 back on node2")
    node1.sql("INSERT INTO topo VALUES (3)")
    c.wait_until(lambda: has_row(node3, 3), 30, "row 3 on node3 through node2")


def test_max_timelines_history(make_cluster):
    c = make_cluster(3, label="mth",
                     overrides={"bootstrap": {"dcs": {"max_timelines_history": 1,
                                                      "check_timeline": True}}})
    for n in range(2):
        leader = c.leader()
        target = c.replicas()[0]
        # PostgreSQL streams a moment before the member key says so, and pgwardenctl
        # checks the key: wait for it
        c.wait_until(lambda: c.members().get(target.name, {}).get("replication_state")
                     == "streaming", 30, "%s's key showing it streaming" % target.name)
        rc, _, err = ctl(c, "switchover", "--candidate", target.name, "--force", timeout=180)
        assert rc == 0, err
        wait_until(lambda: c.leader_name() == target.name, 120, "%s leading" % target.name)
        c.wait_healthy(180)
        log("switchover %d: %s -> %s, history %s" % (n + 1, leader.name, target.name,
                                                     c.history()))
    hist = c.history()
    assert len(hist) == 1, hist
    # the newest row: timeline 2 ended at the second switchover, the new leader wrote it
    assert hist[0][0] == 2 and hist[0][4] == c.leader_name(), hist


def test_nostream_replays_from_the_archive(make_cluster):
    arch = tempfile.mkdtemp(prefix="pgwt-arch-")
    try:
        os.chmod(arch, 0o700)
        chown_postgres(arch)
        params = {"postgresql": {"parameters": {
            "archive_mode": "on",
            "archive_command": "test ! -f %s/%%f && cp %%p %s/%%f" % (arch, arch)}}}
        c = make_cluster(3, start=False, label="nos", overrides=params, node_overrides={
            "node3": {"tags": {"nostream": True},
                      "postgresql": {"recovery_conf": {
                          "restore_command": "cp %s/%%f %%p" % arch}}}})
        node1, node2, node3 = c.nodes
        c.start(nodes=False)
        c.start_node(node1)
        c.wait_until(lambda: c.leader_name() == "node1" and node1.accepts_writes(), 120,
                     "node1 leading")
        c.start_node(node2)
        c.start_node(node3)
        c.wait_until(lambda: sender_port(c, node2) == node1.pg_port, 180,
                     "node2 streaming from node1")

        def archive_replica():
            try:
                return (node3.sql1("SELECT pg_is_in_recovery()") is True
                        and node3.sql1("SHOW primary_conninfo") == "")
            except Exception:  # noqa: BLE001 - starting
                return False
        c.wait_until(archive_replica, 180, "node3 in recovery without primary_conninfo")
        assert c.members()["node3"].get("tags", {}).get("nostream") is True
        node1.sql("CREATE TABLE topo (id int PRIMARY KEY)")
        node1.sql("INSERT INTO topo VALUES (1)")
        node1.sql("SELECT pg_switch_wal()")
        c.wait_until(lambda: has_row(node3, 1), 60, "row 1 on node3 through the archive")
        assert c.wal_receiver(node3) is None, c.wal_receiver(node3)
        assert [r[0] for r in c.streaming_on(node1)] == ["node2"]
        slots = [r[0] for r in node1.sql("SELECT slot_name FROM pg_replication_slots")]
        assert "node2" in slots and "node3" not in slots, slots
        st, js = node3.rest("/patroni")
        assert st == 200 and "restore_command" in js["pgwarden"]["last_reason"], js
    finally:
        shutil.rmtree(arch, ignore_errors=True)
