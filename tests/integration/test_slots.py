"""Permanent replication slots, ignore_slots and member_slots_ttl (issue 15), with Patroni's
meaning: slots defined in bootstrap.dcs.slots exist on the primary, a permanent logical slot
is copied to the replica and advanced there from the status key, so after a switchover a
consumer resumes from it on the new primary without missing a committed change (it may see
some twice); a permanent physical slot exists on the new primary; slots made by hand are
left alone when ignore_slots matches them and dropped (inactive, member_slots_ttl 0) when
it does not, as Patroni drops unknown slots.
"""
import re
import subprocess

from harness import (SANITIZER_MARKERS, PGWARDEN_BIN, clean_env, deep_merge, log, to_yaml,
                     wait_until)
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
