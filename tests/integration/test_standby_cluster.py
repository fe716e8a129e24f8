"""standby_cluster (issue 15): cluster B follows cluster A's primary.

A has 2 nodes, as usual.  B (2 nodes, its own scope and etcd) has
bootstrap.dcs.standby_cluster pointing at A's leader: B's leader is the "standby
leader" (it holds B's leader key, runs PostgreSQL as a standby of A, /standby-leader 200,
/primary 503, role standby_leader), B's other node replicates from it, and rows written on
A appear on both.  Killing B's standby leader makes B's replica the standby leader, still
following A, without a promotion.  Removing standby_cluster from B's config key (PATCH
/config) promotes B's leader through the normal promotion path; A is unchanged."""

import json
import urllib.request

import harness


def patch_config(node, body):
    req = urllib.request.Request(node.rest_url("/config"), data=json.dumps(body).encode(),
                                 method="PATCH", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read().decode()


def sender_port(c, node):
    try:
        wr = c.wal_receiver(node)
    except Exception:  # noqa: BLE001 - not answering yet
        return None
    return wr[2] if wr and wr[0] == "streaming" else None


def has_row(node, v):
    try:
        return node.sql1("SELECT count(*) FROM sc_t WHERE v = %s", (v,)) == 1
    except Exception:  # noqa: BLE001
        return False


def is_standby_leader(c, node, remote_port):
    st, js = node.rest("/standby-leader")
    return (st == 200 and js and js.get("role") == "standby_leader"
            and node.rest("/primary")[0] == 503 and node.rest("/leader")[0] == 200
            and sender_port(c, node) == remote_port)


def test_standby_cluster(make_cluster):
    a = make_cluster(n=2, label="sca")
    la = a.wait_healthy()
    la.sql("CREATE TABLE sc_t (id serial PRIMARY KEY, v text)")
    la.sql("INSERT INTO sc_t (v) VALUES ('before')")

    b = make_cluster(n=2, start=False, label="scb", overrides={
        "bootstrap": {"dcs": {"standby_cluster": {"host": "127.0.0.1", "port": la.pg_port}}}})
    b.start()
    bl = b.node(b.wait_leader(timeout=180))
    b.wait_until(lambda: is_standby_leader(b, bl, la.pg_port), 120,
                 "%s standby leader of A's %s" % (bl.name, la.name))
    br = [n for n in b.nodes if n is not bl][0]
    b.wait_until(lambda: sender_port(b, br) == bl.pg_port, 180,
                 "%s streaming from standby leader %s" % (br.name, bl.name))
    assert not bl.accepts_writes() and not br.accepts_writes()
    # the member key is written at the start of a loop: one loop after the REST snapshot
    b.wait_until(lambda: b.members()[bl.name]["role"] == "standby_leader", 20,
                 "member key role standby_leader")
    assert br.rest("/standby-leader")[0] == 503
    b.wait_until(lambda: br.rest("/replica")[0] == 200, 30, "/replica 200 on %s" % br.name)
    assert json.loads(b.key("config"))["standby_cluster"]["port"] == la.pg_port
    cl = json.loads(harness.http_get(bl.rest_url("/cluster"))[1])
    assert {m["name"]: m["role"] for m in cl["members"]}[bl.name] == "standby_leader", cl
    # B is a copy of A: the same system identifier, no timeline of its own
    assert b.key("initialize") == a.key("initialize")

    # a row written on A appears on both B nodes
    la.sql("INSERT INTO sc_t (v) VALUES ('one')")
    for n in b.nodes:
        b.wait_until(lambda n=n: has_row(n, "one"), 60, "row 'one' on %s" % n.name)

    # B's standby leader is lost: B's replica takes the key as standby leader, follows A
    bl.kill_machine()
    new = b.node(b.wait_leader(timeout=90, exclude=(bl.name,)))
    assert new is br
    b.wait_until(lambda: is_standby_leader(b, new, la.pg_port), 90,
                 "%s standby leader following A after the failover" % new.name)
    assert not new.accepts_writes()
    la.sql("INSERT INTO sc_t (v) VALUES ('two')")
    b.wait_until(lambda: has_row(new, "two"), 60, "row 'two' on %s" % new.name)
    assert "promoted" not in new.log_text(current_start_only=True)

    # standby_cluster removed from B's config key: B's leader promotes, A is unchanged
    a_timeline = a.primary_timeline(la)
    st, text = patch_config(new, {"standby_cluster": None})
    assert st == 200, text
    assert "standby_cluster" not in json.loads(b.key("config"))
    b.wait_until(new.accepts_writes, 90, "%s promoted" % new.name)
    b.wait_until(lambda: new.rest("/primary")[0] == 200, 30, "/primary 200 on %s" % new.name)
    assert new.rest("/standby-leader")[0] == 503
    b.wait_until(lambda: b.members()[new.name]["role"] in ("master", "primary"), 20,
                 "member key role master")
    new.sql("INSERT INTO sc_t (v) VALUES ('b only')")
    assert has_row(new, "b only")
    assert not has_row(la, "b only")
    assert a.leader() is la and la.accepts_writes() and la.rest("/primary")[0] == 200
    assert a.primary_timeline(la) == a_timeline
    assert b.primary_timeline(new) > a_timeline
    la.sql("INSERT INTO sc_t (v) VALUES ('three')")
    assert not has_row(new, "three")
