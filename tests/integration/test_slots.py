"""Permanent replication slots, ignore_slots and member_slots_ttl (issue 15), with Patroni's
meaning: slots defined in bootstrap.dcs.slots exist on the primary, a permanent logical slot
is copied to the replica and advanced there from the status key, so after a switchover a
consumer resumes from it on the new primary without missing a committed change (it may see
some twice); the same after a failover, when the leader's whole machine loses power (every
backend dies with it) and the replica takes over; a permanent physical slot exists on the
new primary; slots made by hand are
left alone when ignore_slots matches them and dropped (inactive, member_slots_ttl 0) when
it does not, as Patroni drops unknown slots.
"""
import re
import subprocess

from harness import (SANITIZER_MARKERS, PGWARDEN_BIN, clean_env, deep_merge, figure, log,
                     to_yaml, wait_until)
from test_ctl import ctl

SLOTS = {"perm_phys": {"type": "physical"},
         "cdc": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}}
OVERRIDES = {"bootstrap": {"dcs": {
    "slots": SLOTS,
    "ignore_slots": [{"name": "keep_me"}, {"type": "logical", "plugin": "pgoutput"}],
    "member_slots_ttl": 0,
    "postgresql": {"parameters": {"wal_level": "logical"}}}}}

INSERT = re.compile(r"table public\.t: INSERT: id\[integer\]:(\d+)")


def slots_of(node):
    return {r[0]: r[1] for r in node.sql(
        "SELECT slot_name, slot_type FROM pg_replication_slots")}


def slots_now(node):
    """slots_of, or {} while the node is restarting."""
    try:
        return slots_of(node)
    except Exception:  # noqa: BLE001 - a restart in progress
        return {}


def consume(node):
    """Everything the cdc slot gives now (and confirms): the ids inserted into t."""
    rows = node.sql("SELECT data FROM pg_logical_slot_get_changes('cdc', NULL, NULL)")
    return [int(m.group(1)) for (d,) in rows for m in [INSERT.search(d)] if m]


def insert(node, first, last):
    for i in range(first, last + 1):
        node.sql("INSERT INTO t VALUES (%s)", (i,))


def lsn_bytes(node, sql):
    v = node.sql1("SELECT (%s - '0/0'::pg_lsn)::bigint" % sql)
    return v if v is not None else -1


CONFIRMED = "(SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc')"


def confirmed_on(node):
    """The cdc slot's confirmed position on node (bytes), -1 when it has none."""
    return lsn_bytes(node, CONFIRMED)


def test_check_config_accepts_the_slot_keys(make_cluster):
    c = make_cluster(1, start=False, overrides=OVERRIDES, label="slc")
    node = c.nodes[0]
    p = subprocess.run([PGWARDEN_BIN, "--check-config", node.config_path],
                       capture_output=True, text=True, timeout=60, env=clean_env())
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "not implemented" not in out, out
    assert not any(m in out for m in SANITIZER_MARKERS), out


def test_check_config_names_a_bad_slot_key(make_cluster):
    c = make_cluster(1, start=False, label="slb")
    node = c.nodes[0]
    bad = {"bootstrap": {"dcs": {"slots": {"cdc": {"type": "logical", "database": "postgres",
                                                    "plugin": "../../tmp/evil"}}}}}
    node.write_config(to_yaml(deep_merge(node.config, bad)) + "\n")
    p = subprocess.run([PGWARDEN_BIN, "--check-config", node.config_path],
                       capture_output=True, text=True, timeout=60, env=clean_env())
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "bootstrap.dcs.slots.cdc.plugin" in out, out


def test_logical_slot_survives_a_switchover(make_cluster):
    c = make_cluster(2, overrides=OVERRIDES, label="sl")
    leader = c.leader()
    replica = [n for n in c.nodes if n is not leader][0]
    wait_until(lambda: {"perm_phys", "cdc"} <= set(slots_of(leader)), 30,
               "the permanent slots on the leader", diag=c.dump)
    assert slots_of(leader)["cdc"] == "logical"

    # slots made by hand: one ignore_slots matches (kept), one it does not (dropped, as
    # Patroni drops unknown slots), and a logical one matched by type and plugin
    leader.sql("SELECT pg_create_physical_replication_slot('keep_me')")
    leader.sql("SELECT pg_create_physical_replication_slot('stray')")
    leader.sql("SELECT pg_create_logical_replication_slot('by_hand', 'pgoutput')")
    wait_until(lambda: "stray" not in slots_of(leader), 20, "the unknown slot dropped",
               diag=c.dump)
    assert {"keep_me", "by_hand"} <= set(slots_of(leader)), slots_of(leader)

    leader.sql("CREATE TABLE t (id integer)")
    seen = []
    insert(leader, 1, 40)
    seen += consume(leader)
    insert(leader, 41, 80)
    seen += consume(leader)
    assert seen == list(range(1, 81)), seen
    confirmed = lsn_bytes(leader, "(SELECT confirmed_flush_lsn FROM pg_replication_slots "
                                  "WHERE slot_name = 'cdc')")

    # the replica copies the slot (one restart) and advances it to the published position
    wait_until(lambda: "cdc" in slots_now(replica), 90, "the logical slot copied to the "
               "replica", diag=c.dump)
    wait_until(lambda: "cdc" in slots_now(replica) and lsn_bytes(replica, "(SELECT confirmed_flush_lsn FROM "
                                          "pg_replication_slots WHERE slot_name = 'cdc')")
               >= confirmed, 60, "the replica's copy advanced", diag=c.dump)
    assert "perm_phys" in slots_of(replica)
    assert "keep_me" not in slots_of(replica)

    insert(leader, 81, 120)  # committed, replicated, not consumed before the switchover
    wait_until(lambda: replica.sql1("SELECT count(*) FROM t") == 120, 30,
               "the rows on the replica", diag=c.dump)

    rc, _, err = ctl(c, "switchover", "--candidate", replica.name, "--force", timeout=180)
    assert rc == 0, err
    c.wait_until(replica.accepts_writes, 90, "%s to accept writes" % replica.name)
    new = replica
    assert {"cdc", "perm_phys"} <= set(slots_of(new)), slots_of(new)
    after = consume(new)
    insert(new, 121, 130)
    after += consume(new)
    dup = [i for i in after if i <= 80]
    log("after the switchover the consumer got %d changes, %d of them seen before"
        % (len(after), len(dup)))
    missing = set(range(1, 131)) - set(seen) - set(after)
    assert not missing, "changes missed after the switchover: %s" % sorted(missing)
    assert sorted(set(after) - set(dup)) == list(range(81, 131))
    assert not c.sanitizer_reports()


def test_logical_slot_survives_a_failover(make_cluster):
    c = make_cluster(2, overrides=OVERRIDES, label="slf")
    leader = c.leader()
    replica = [n for n in c.nodes if n is not leader][0]
    wait_until(lambda: {"perm_phys", "cdc"} <= set(slots_of(leader)), 30,
               "the permanent slots on the leader", diag=c.dump)

    leader.sql("CREATE TABLE t (id integer)")
    seen = []
    insert(leader, 1, 40)
    seen += consume(leader)
    insert(leader, 41, 80)
    seen += consume(leader)
    assert seen == list(range(1, 81)), seen
    confirmed = confirmed_on(leader)
    assert confirmed > 0

    # before the power loss the replica has copied the slot (one restart) and advanced
    # its copy at least to what the consumer confirmed on the leader
    wait_until(lambda: "cdc" in slots_now(replica), 90, "the logical slot copied to the "
               "replica", diag=c.dump)
    wait_until(lambda: confirmed_on(replica) >= confirmed, 60, "the replica's copy advanced",
               diag=c.dump)
    assert slots_of(replica)["cdc"] == "logical" and "perm_phys" in slots_of(replica)
    log("cdc confirmed at %d on the leader, %d on the replica"
        % (confirmed, confirmed_on(replica)))

    # consumed just before the power loss: the replica's copy may not have followed (the
    # position comes through the status key every loop_wait), so these may come again
    insert(leader, 81, 100)
    seen += consume(leader)
    assert seen == list(range(1, 101)), seen
    insert(leader, 101, 120)  # committed, replicated, not consumed before the failover
    wait_until(lambda: replica.sql1("SELECT count(*) FROM t") == 120, 30,
               "the rows on the replica", diag=c.dump)

    log("killing the machine of leader %s" % leader.name)
    leader.kill_machine()  # the daemon, the postmaster and every backend die at once
    assert not leader.machine_processes()
    c.wait_leader(timeout=90, exclude=(leader.name,))
    assert c.leader_name() == replica.name
    c.wait_until(replica.accepts_writes, 60, "%s to accept writes" % replica.name)
    new = replica
    assert {"cdc", "perm_phys"} <= set(slots_of(new)), slots_of(new)
    assert slots_of(new)["cdc"] == "logical"
    assert confirmed_on(new) >= confirmed, (confirmed_on(new), confirmed)
    after = consume(new)
    insert(new, 121, 130)
    after += consume(new)
    dup = [i for i in after if i in seen]
    missing = set(range(1, 131)) - set(seen) - set(after)
    log("after the failover the consumer got %d changes, %d of them seen before, %d missed"
        % (len(after), len(dup), len(missing)))
    figure("changes consumed before the failover", len(seen), "changes")
    figure("changes missed after the failover", len(missing), "changes")
    figure("duplicates after the failover", len(dup), "changes")
    assert not missing, "changes missed after the failover: %s" % sorted(missing)
    assert sorted(set(after) - set(dup)) == list(range(101, 131))
    assert len(after) - len(dup) == 30, "a change given twice on the new primary: %s" % after
    # the copy was at least where the consumer stood before the last batch
    assert all(81 <= i <= 100 for i in dup), dup
    assert not c.sanitizer_reports()
