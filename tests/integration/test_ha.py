"""HA core integration tests (issue "HA core", section Tests).

The four tests of TestOneClusterThroughFailoverAndRejoin share one 3-node cluster (the
class-scoped `cluster` fixture) and run in file order: bootstrap -> replication -> failover ->
rejoin; the rejoin test redoes the failover when it runs alone.  The other tests get fresh
clusters of their own (a bootstrap takes 5-20 s).

Timing settings of every test cluster: ttl 10, loop_wait 2, retry_timeout 3.
"""

import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from harness import Cluster, Writer, clean_env, figure, log, wait_until

TTL = 10
LOOP_WAIT = 2


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def primary_timeline(node):
    return Cluster.primary_timeline(node)


def system_identifier(node):
    return str(node.sql1("SELECT system_identifier FROM pg_control_system()"))


def ensure_table(cluster, leader, table="ha_rows"):
    leader.sql("CREATE TABLE IF NOT EXISTS %s (id serial PRIMARY KEY, tag text NOT NULL,"
               " at timestamptz DEFAULT now())" % table)


def insert_tag(node, tag, table="ha_rows"):
    node.sql("INSERT INTO %s (tag) VALUES (%%s)" % table, (tag,))


def has_tag(node, tag, table="ha_rows"):
    return node.sql1("SELECT count(*) FROM %s WHERE tag = %%s" % table, (tag,)) == 1


def wait_row_on(cluster, nodes, tag, timeout=30, table="ha_rows"):
    for n in nodes:
        cluster.wait_until(lambda n=n: has_tag(n, tag, table), timeout,
                           "row %r to appear on %s" % (tag, n.name))


def streams_from(cluster, replica, leader):
    return cluster.streams_from(replica, leader)


def do_failover(cluster):
    """Power off the leader's machine; wait for a new leader that accepts writes.  Returns a
    dict that the rejoin test reuses."""
    leader = cluster.wait_healthy(120)
    ensure_table(cluster, leader)
    old_tl = primary_timeline(leader)
    hist_before = cluster.history()
    before = "before-" + uuid.uuid4().hex[:8]
    insert_tag(leader, before)
    wait_row_on(cluster, cluster.replicas(leader.name), before)

    log_sizes = {n.name: n.log_size() for n in cluster.nodes}
    log("killing the machine of leader %s (timeline %d)" % (leader.name, old_tl))
    t0 = time.monotonic()
    leader.kill_machine()
    new_name = cluster.wait_leader(timeout=TTL + 40, exclude=(leader.name,))
    t_key = time.monotonic() - t0
    new = cluster.node(new_name)
    cluster.wait_until(new.accepts_writes, 40, "new leader %s to accept writes" % new_name)
    t_writes = time.monotonic() - t0
    figure("leader machine killed -> new leader key", t_key)
    figure("leader machine killed -> new leader writable", t_writes)

    after = ["after-" + uuid.uuid4().hex[:8] for _ in range(3)]
    for tag in after:
        insert_tag(new, tag)
    info = {"old": leader.name, "new": new_name, "old_tl": old_tl, "hist_before": hist_before,
            "before": before, "after": after, "t_key": t_key, "t_writes": t_writes,
            "log_sizes": log_sizes}
    cluster.state["failover"] = info
    return info


# ---------------------------------------------------------------------------------------
# the shared cluster
# ---------------------------------------------------------------------------------------

class TestOneClusterThroughFailoverAndRejoin:
    """bootstrap -> replication -> failover -> rejoin, on one cluster, in this order."""

    def test_bootstrap_one_leader_two_streaming_replicas(self, cluster):
        leader = cluster.wait_healthy(60)
        replicas = cluster.replicas(leader.name)
        assert len(replicas) == 2

        streaming = cluster.streaming_on(leader)
        assert len(streaming) == 2, "pg_stat_replication on %s: %r" % (leader.name, streaming)
        for r in replicas:
            assert streams_from(cluster, r, leader), "%s does not stream from %s: %r" % (
                r.name, leader.name, cluster.wal_receiver(r))
            assert r.sql1("SELECT pg_is_in_recovery()") is True

        ids = {n.name: system_identifier(n) for n in cluster.nodes}
        init = cluster.key("initialize")
        assert len(set(ids.values())) == 1, "system identifiers differ: %r" % ids
        assert init == ids[leader.name], "initialize key %r, nodes %r" % (init, ids)

        # members/<name> keys and the REST API agree with the roles.
        members = cluster.wait_until(
            lambda: (lambda m: m if len(m) == 3 and all(v.get("state") == "running" for v in m.values())
                     else None)(cluster.members()),
            3 * LOOP_WAIT + 10, "three members keys with state running")
        assert members[leader.name]["role"] in ("master", "primary"), members
        for r in replicas:
            assert members[r.name]["role"] == "replica", members
            assert r.rest("/primary")[0] == 503
            st, js = r.rest("/patroni")
            assert st == 200 and js["role"] == "replica", (st, js)
            assert str(js.get("database_system_identifier")) == init, js
        for name, m in members.items():
            node = cluster.node(name)
            assert str(node.pg_port) in m.get("conn_url", ""), m
            assert str(node.rest_port) in m.get("api_url", ""), m
        st, js = leader.rest("/patroni")
        assert st == 200 and js["role"] in ("master", "primary"), (st, js)
        assert leader.rest("/replica")[0] == 503
        assert all(n.rest("/health")[0] == 200 for n in cluster.nodes)


    def test_row_written_on_leader_appears_on_both_replicas(self, cluster):
        leader = cluster.wait_healthy(60)
        ensure_table(cluster, leader)
        tag = "repl-" + uuid.uuid4().hex[:8]
        insert_tag(leader, tag)
        wait_row_on(cluster, cluster.replicas(leader.name), tag, timeout=30)


    def test_leader_machine_killed_new_leader_takes_over(self, cluster):
        fo = do_failover(cluster)
        new = cluster.node(fo["new"])
        third = [n for n in cluster.nodes if n.name not in (fo["old"], fo["new"])][0]

        # Lease expiry bounds the failover: ttl plus a few loops (ASan build, 2 cores).
        assert fo["t_key"] < TTL + 3 * LOOP_WAIT + 10, "failover took %.1f s" % fo["t_key"]

        new_tl = primary_timeline(new)
        assert new_tl > fo["old_tl"], "timeline %d after failover, was %d" % (new_tl, fo["old_tl"])

        def history_entry():
            h = cluster.history()
            return h if len(h) > len(fo["hist_before"]) else None
        hist = cluster.wait_until(history_entry, 3 * LOOP_WAIT + 10, "a new history entry in etcd")
        last = hist[-1]
        assert int(last[0]) == fo["old_tl"], "history %r (old timeline %d)" % (hist, fo["old_tl"])
        if len(last) >= 5:
            assert last[4] == fo["new"], "history %r names %r, new leader is %s" % (hist, last[4], fo["new"])

        cluster.wait_until(lambda: (new.rest("/patroni")[1] or {}).get("timeline") == new_tl,
                           3 * LOOP_WAIT + 10, "REST timeline %d on %s" % (new_tl, new.name))

        # The third node follows the new leader (without a re-clone) and gets its rows.
        cluster.wait_until(lambda: streams_from(cluster, third, new), 60,
                           "%s to stream from the new leader %s" % (third.name, new.name))
        cluster.wait_until(lambda: len(cluster.streaming_on(new)) >= 1, 30,
                           "pg_stat_replication on %s to show %s" % (new.name, third.name))
        wait_row_on(cluster, [third], fo["after"][-1])
        assert system_identifier(third) == system_identifier(new)
        text = third.log_text(since=fo["log_sizes"][third.name])
        assert not re.search(r"pg_basebackup|re-?clon", text, re.I), (
            "%s was re-cloned instead of following:\n%s" % (third.name, text[-3000:]))


    def test_killed_leader_restarted_rejoins_through_pg_rewind(self, cluster):
        fo = cluster.state.get("failover") or do_failover(cluster)
        old, new = cluster.node(fo["old"]), cluster.node(fo["new"])
        assert not old.daemon_alive()

        log("restarting old leader %s" % old.name)
        pg_log_start = len(old.pg_log_text())
        t0 = time.monotonic()
        cluster.start_node(old)

        def rejoined_or_stuck():
            if old.rest("/replica")[0] == 200 and streams_from(cluster, old, new):
                return "rejoined"
            # PostgreSQL retries every 5 s; three refusals in a row means it will not get better.
            forked = [l for l in old.pg_log_text()[pg_log_start:].splitlines() if "forked off" in l]
            return "stuck: " + forked[-1].strip() if len(forked) >= 3 else None
        outcome = cluster.wait_until(rejoined_or_stuck, 90, "old leader %s to rejoin as a replica "
                                     "of %s" % (old.name, new.name))
        assert outcome == "rejoined", (
            "%s cannot follow %s: its data directory is still ahead of the fork point after the "
            "daemon's rewind step (PostgreSQL: %s)\n%s" % (old.name, new.name, outcome[7:],
                                                          cluster.dump()))
        figure("old leader restarted -> streaming replica", time.monotonic() - t0)
        assert cluster.leader_name() == new.name

        text = old.log_text(current_start_only=True)
        assert re.search(r"rewind", text, re.I), (
            "the daemon log of %s does not mention pg_rewind:\n%s" % (old.name, text[-3000:]))
        assert not re.search(r"re-?clon", text, re.I), (
            "%s was re-cloned instead of rewound:\n%s" % (old.name, text[-3000:]))

        for tag in fo["after"]:
            cluster.wait_until(lambda tag=tag: has_tag(old, tag), 30,
                               "row %r written after the failover on %s" % (tag, old.name))
        assert has_tag(old, fo["before"])
        tag = "post-rejoin-" + uuid.uuid4().hex[:8]
        insert_tag(new, tag)
        wait_row_on(cluster, [old], tag)
        assert system_identifier(old) == system_identifier(new)
        cluster.wait_until(lambda: cluster.members().get(old.name, {}).get("role") == "replica",
                           3 * LOOP_WAIT + 10, "members/%s to say replica" % old.name)


# ---------------------------------------------------------------------------------------
# clusters of their own
# ---------------------------------------------------------------------------------------

def test_clean_stop_of_leader_hands_over_quickly(make_cluster):
    cluster = make_cluster(n=3, label="cleanstop")
    leader = cluster.leader()
    ensure_table(cluster, leader)
    log("SIGTERM to the daemon of leader %s (pid %d)" % (leader.name, leader.daemon_pid))
    t0 = time.monotonic()
    leader.stop_daemon(signal.SIGTERM, wait=False)
    new_name = wait_until(lambda: (lambda n: n if n and n != leader.name else None)(
                              cluster.leader_name()),
                          TTL + 20, "a new leader after a clean stop", interval=0.1,
                          diag=cluster.dump)
    dt = time.monotonic() - t0
    figure("SIGTERM to leader daemon -> new leader key", dt)
    try:
        rc = leader.wait_exit(60)
    except Exception:  # noqa: BLE001
        raise AssertionError("daemon of %s still running 60 s after SIGTERM\n%s"
                             % (leader.name, cluster.dump()))
    assert dt < TTL / 2, "handover took %.1f s (ttl %d): not faster than the lease" % (dt, TTL)
    assert rc == 0, "daemon of %s exited with %s after SIGTERM" % (leader.name, rc)
    assert not leader.postmaster_running(), "PostgreSQL of %s still running" % leader.name
    assert leader.machine_processes() == [], "left in %s's machine: %r" % (
        leader.name, leader.machine_processes())
    new = cluster.node(new_name)
    cluster.wait_until(new.accepts_writes, 30, "%s to accept writes" % new_name)
    insert_tag(new, "after-clean-stop")


def test_crashed_postmaster_on_leader_is_restarted(make_cluster):
    cluster = make_cluster(n=3, label="pmcrash")
    leader = cluster.leader()
    ensure_table(cluster, leader)
    old_pid = leader.kill_postmaster()
    log("SIGKILLed postmaster %d of leader %s" % (old_pid, leader.name))
    seen = set()

    def back():
        seen.add(cluster.leader_name())
        pid = leader.postmaster_pid()
        return pid and pid != old_pid and leader.postmaster_running() and leader.accepts_writes()
    t0 = time.monotonic()
    cluster.wait_until(back, 60, "the postmaster of %s to be restarted and accept writes"
                       % leader.name)
    figure("postmaster SIGKILLed -> leader writable again", time.monotonic() - t0)
    assert cluster.leader_name() == leader.name
    assert seen <= {leader.name}, "leader key changed hands meanwhile: %r" % seen
    assert leader.daemon_alive()
    insert_tag(leader, "after-postmaster-crash")
    cluster.wait_healthy(60)
    assert cluster.leader_name() == leader.name


def test_etcd_down_at_start_keeps_postgresql_stopped(make_cluster):
    c = make_cluster(n=1, start=False, label="etcddown")
    node = c.nodes[0]
    node.start()
    rest_answers = []
    deadline = time.monotonic() + 15  # several loop_waits and retry_timeouts
    while time.monotonic() < deadline:
        assert node.daemon_alive(), "daemon exited (rc %s) while etcd was down:\n%s" % (
            node.proc.returncode, node.log_text()[-3000:])
        assert node.postmaster_pid() is None, "postmaster.pid appeared while etcd was down"
        procs = [p for p in node.machine_processes() if p[1] in ("postgres", "postmaster", "initdb")]
        assert not procs, "PostgreSQL processes while etcd was down: %r" % procs
        st, _ = node.rest("/health", timeout=1)
        if st is not None:
            rest_answers.append(st)
            assert st == 503, "/health answered %s while etcd was down" % st
            st2, js = node.rest("/patroni", timeout=1)
            assert (js or {}).get("state") != "running", js
        time.sleep(0.5)
    assert rest_answers, "the REST API never answered while etcd was down"
    text = node.log_text()
    assert re.search(r"etcd", text, re.I), "the log does not say etcd is unreachable:\n" + text

    log("starting etcd now")
    c.etcd.start()
    t0 = time.monotonic()
    c.wait_until(lambda: c.leader_name() == node.name and node.accepts_writes(), 120,
                 "%s to bootstrap and lead once etcd is up" % node.name)
    figure("etcd started -> single node bootstrapped and writable", time.monotonic() - t0)
    c.wait_until(lambda: node.rest("/primary")[0] == 200, 2 * LOOP_WAIT + 10,
                 "/primary on %s to answer 200" % node.name)


def test_leader_killed_after_replica_restart_loses_no_acknowledged_write(make_cluster):
    c = make_cluster(n=3, label="nolost")
    leader = c.wait_healthy(60)
    leader.sql("CREATE TABLE acked (id int PRIMARY KEY)")
    c.wait_until(lambda: all(r.sql1("SELECT to_regclass('acked') IS NOT NULL")
                             for r in c.replicas(leader.name)),
                 30, "table acked on the replicas")

    writer = Writer(leader, "acked", pause=0.005)
    writer.start()
    try:
        time.sleep(2)
        victim = c.replicas(leader.name)[0]
        log("power-cycling replica %s" % victim.name)
        victim.kill_machine()
        victim.start()
        n_at_restart = len(writer.acked)
        time.sleep(3)
        n_at_kill = len(writer.acked)
        log("killing the machine of leader %s (%d rows acknowledged)" % (leader.name, n_at_kill))
        leader.kill_machine()
        writer.join(20)
    finally:
        writer.stop()
    assert n_at_kill > n_at_restart, "the writer made no progress: %r" % writer.errors

    new_name = c.wait_leader(timeout=TTL + 40, exclude=(leader.name,))
    new = c.node(new_name)
    c.wait_until(new.accepts_writes, 40, "new leader %s to accept writes" % new_name)
    figure("acknowledged writes (new leader %s, restarted %s)" % (new_name, victim.name),
           len(writer.acked), "rows")
    present = {r[0] for r in new.sql("SELECT id FROM acked")}
    missing = [i for i in writer.acked if i not in present]
    log("new leader %s (restarted replica was %s): %d acknowledged, %d present, %d missing"
        % (new_name, victim.name, len(writer.acked), len(present), len(missing)))
    assert not missing, (
        "%d acknowledged writes lost after failover to %s (the replica restarted 3 s before the "
        "kill was %s); first missing ids %r, last acknowledged %d, writer errors %r\n%s"
        % (len(missing), new_name, victim.name, missing[:10], writer.acked[-1], writer.errors,
           c.dump()))


def test_unprotected_lost_leader_is_not_promoted_by_default(make_cluster):
    """S3: watchdog and fencing off, failover.unprotected off (the default).  The leader's
    daemon is SIGKILLed and its PostgreSQL keeps accepting writes: no replica may promote
    when the lease expires (Patroni would: two writers for about 9 s here).  Once the old
    machine is really down, the operator's `pgwardenctl failover` promotes."""
    c = make_cluster(n=3, label="unprot", overrides={"failover": {"unprotected": False}})
    leader = c.leader()
    ensure_table(c, leader)
    log("SIGKILL to the daemon of leader %s; its PostgreSQL keeps running" % leader.name)
    os.kill(leader.daemon_pid, signal.SIGKILL)
    wait_until(lambda: c.leader_name() is None, TTL + 15, "the leader key to expire",
               interval=0.2, diag=c.dump)
    replicas = [n for n in c.nodes if n is not leader]
    wait_until(lambda: all("unprotected-leader-lost" in open(n.log_path).read()
                           for n in replicas),
               30, "both replicas to say why they do not promote", diag=c.dump)
    # the reason reaches /patroni, /cluster and pgwardenctl list
    r = replicas[0]
    st, body = r.rest("/patroni")
    assert st is not None and "neither a fence nor an armed watchdog" in body.get(
        "pgwarden", {}).get("last_reason", ""), body

    def blocked_in_cluster():
        st, body = r.rest("/cluster")
        return st == 200 and any("failover_blocked" in m for m in body.get("members", []))
    wait_until(blocked_in_cluster, 15, "failover_blocked in /cluster", diag=c.dump)
    ctl_bin = os.path.join(os.path.dirname(os.environ["PGWARDEN_BIN"]), "pgwardenctl")
    p = subprocess.run([ctl_bin, "-c", r.config_path, "list"], capture_output=True,
                       text=True, timeout=60, env=clean_env())
    assert "Not promoting" in p.stdout and leader.name in p.stdout, p.stdout + p.stderr
    time.sleep(2 * 2 + 1)
    assert c.leader_name() is None, "a replica took the key:\n%s" % c.dump()
    assert leader.accepts_writes(), "the old primary should still be writable (the hazard)"
    for n in replicas:
        assert not n.accepts_writes(), "%s promoted without protection" % n.name
    leader.kill_machine()
    target = replicas[0]
    p = subprocess.run([ctl_bin, "-c", target.config_path, "failover", "--candidate",
                        target.name, "--force"], capture_output=True, text=True, timeout=120,
                       env=clean_env())
    log("pgwardenctl failover -> %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
    assert p.returncode == 0, p.stderr
    c.wait_until(target.accepts_writes, 60, "%s to accept writes after the failover"
                 % target.name)


def test_member_keys_without_a_lease_get_no_replication_slot(make_cluster):
    """Issue 11, item 9: member keys written without a lease (by hand, or by anyone who
    can write to etcd) made the leader create a WAL-holding slot for each, until
    max_replication_slots was full and a real replica got none.  Only members whose key
    lives on a lease count, slots reserve WAL from the first connection, and two slots
    stay free."""
    import json as _json
    c = make_cluster(2)
    leader = c.leader()
    replica = [n for n in c.nodes if n is not leader][0]
    fake = {"conn_url": "postgres://127.0.0.1:1/postgres", "api_url": "http://127.0.0.1:1/patroni",
            "state": "running", "role": "replica", "xlog_location": 1, "timeline": 1}
    for i in range(15):
        c.etcd.put(c.prefix + "members/ghost%02d" % i, _json.dumps(fake))
    time.sleep(3 * 2 + 1)  # a few loops (loop_wait 2)
    slots = [r[0] for r in leader.sql(
        "SELECT slot_name FROM pg_replication_slots ORDER BY 1")]
    log("slots on %s: %s" % (leader.name, slots))
    assert not [s for s in slots if s.startswith("ghost")], slots
    assert slots == [re.sub("[^a-z0-9_]", "_", replica.name.lower())], slots
    wait_until(lambda: leader.sql("SELECT count(*) FROM pg_stat_replication "
                                  "WHERE state = 'streaming'")[0][0] == 1, 30,
               "the real replica streaming", diag=c.dump)
    reserved = leader.sql("SELECT restart_lsn IS NOT NULL FROM pg_replication_slots")[0][0]
    assert reserved, "the real replica's slot reserves WAL once it is connected"


def nft(*args):
    r = subprocess.run(["nft"] + list(args), capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, "nft %s: %s" % (" ".join(args), r.stderr)


def test_replica_ahead_of_the_new_leader_is_rewound(make_cluster):
    """A replica that received WAL the new leader never had (its WAL forked off the new
    leader's history) cannot stream from it: PostgreSQL refuses a timeline that forked
    before its position.  Before, pgwarden switched its primary_conninfo by reload and left it
    'following, not streaming' for good; now the history key tells it forked, and it is
    rewound.  Set-up: the leader's packets to replica B's WAL receiver are dropped (nft)
    while the leader writes, so replica C gets WAL that B does not; C is tagged nofailover,
    the leader's machine is killed, and B is promoted from the shorter history."""
    if not shutil.which("nft"):
        pytest.skip("nft is missing (Debian package nftables: scripts/install-deps.sh test)")
    c = make_cluster(n=3, label="fork")
    leader = c.wait_healthy(60)
    b, ahead = c.replicas(leader.name)
    ahead.config["tags"]["nofailover"] = True
    ahead.write_config()
    os.kill(ahead.daemon_pid, signal.SIGHUP)
    wait_until(lambda: "nofailover" in (c.key("members/" + ahead.name) or ""), 20,
               "%s's member key to carry nofailover" % ahead.name)
    leader.sql("CREATE TABLE fork_rows (id int)")
    wait_until(lambda: all(r.sql1("SELECT to_regclass('fork_rows') IS NOT NULL")
                           for r in (b, ahead)), 30, "the table on both replicas")
    port = leader.sql1("SELECT client_port FROM pg_stat_replication WHERE application_name = %s",
                       (b.name,))
    assert port, "%s does not stream from %s" % (b.name, leader.name)
    table = "pgwt_fork_%d" % os.getpid()
    nft("add", "table", "inet", table)
    try:
        nft("add", "chain", "inet", table, "out", "{ type filter hook output priority 0; }")
        nft("add", "rule", "inet", table, "out", "tcp", "sport", str(leader.pg_port), "tcp",
            "dport", str(port), "drop")
        leader.sql("INSERT INTO fork_rows SELECT generate_series(1, 1000)")
        pos = leader.sql1("SELECT pg_current_wal_lsn()::text")
        wait_until(lambda: ahead.sql1("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (pos,)),
                   30, "%s to replay the rows" % ahead.name)
        log("%s has WAL up to %s, %s received up to %s" % (
            ahead.name, pos, b.name, b.sql1("SELECT pg_last_wal_receive_lsn()::text")))
        leader.kill_machine()
        t_kill = time.monotonic()
        # (the dead leader's kernel would still deliver its queued WAL to B once the
        # rule goes: keep it until B has promoted)
        assert c.wait_leader(timeout=TTL + 40, exclude=(leader.name,)) == b.name
        wait_until(b.accepts_writes, 40, "%s to accept writes" % b.name)
    finally:
        nft("delete", "table", "inet", table)
    b.sql("INSERT INTO fork_rows VALUES (-1)")
    c.wait_until(lambda: c.streams_from(ahead, b), 90,
                 "%s (ahead of %s's fork) to stream from it again" % (ahead.name, b.name))
    figure("leader killed -> forked replica streams again", time.monotonic() - t_kill)
    assert "forked off the leader's history" in ahead.log_text(), ahead.log_text()[-3000:]
    assert ahead.sql1("SELECT count(*) FROM fork_rows WHERE id = -1") == 1
    assert ahead.sql1("SELECT count(*) FROM fork_rows") == b.sql1("SELECT count(*) FROM fork_rows")
