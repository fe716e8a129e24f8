"""Issue 15's PostgreSQL and log keys against running daemons: postgresql.config_dir (the
configuration files live there, PostgreSQL runs with them, a replica cloned with
pg_basebackup keeps working), postgresql.use_unix_socket (the daemon's own sessions come
through the socket: pg_stat_activity shows no client address), postgresql.proxy_address
(proxy_url in the member key), and log.type json (every line the daemon writes parses as
JSON and carries log.static_fields)."""

import json
import os
import re

import harness

MARKER = "# Written by pgwarden"


def conf_dir(node):
    return os.path.join(node.dir, "conf")


def test_config_dir_socket_proxy_json_log(make_cluster):
    c = make_cluster(n=2, start=False, label="cdir")
    for i, node in enumerate(c.nodes):
        node.config = harness.deep_merge(node.config, {
            "postgresql": {"config_dir": conf_dir(node), "use_unix_socket": True,
                           "proxy_address": "127.0.0.1:%d" % (6432 + i)},
            "log": {"type": "json", "static_fields": {"app": "pgwt", "node": node.name},
                    "mode": harness.Raw("0640")}})
        node.write_config()
    c.start()
    leader = c.nodes[0] if c.wait_leader(timeout=120) == "node1" else c.nodes[1]
    c.wait_healthy(timeout=180)

    for node in c.nodes:
        d = conf_dir(node)
        # the configuration files are in config_dir and PostgreSQL runs with them
        for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf", "postgresql.base.conf"):
            assert os.path.isfile(os.path.join(d, name)), "%s: no %s in %s" % (node, name, d)
        with open(os.path.join(d, "postgresql.conf")) as f:
            assert f.read().startswith(MARKER)
        assert node.sql1("SHOW config_file") == os.path.join(d, "postgresql.conf")
        assert node.sql1("SHOW hba_file") == os.path.join(d, "pg_hba.conf")
        assert node.sql1("SHOW ident_file") == os.path.join(d, "pg_ident.conf")
        # the data directory's postgresql.conf is not the one pgwarden writes
        data_conf = os.path.join(node.data_dir, "postgresql.conf")
        if os.path.exists(data_conf):
            with open(data_conf) as f:
                assert not f.read().startswith(MARKER), "%s written in the data dir" % node

        # use_unix_socket: the daemon's sessions have no client address (a socket)
        rows = node.sql("SELECT client_addr FROM pg_stat_activity"
                        " WHERE application_name = 'pgwarden'")
        assert rows, "%s: no session of the daemon in pg_stat_activity" % node
        assert all(r[0] is None for r in rows), "%s: TCP sessions: %r" % (node, rows)

    # the replica was cloned (pg_basebackup copies the data dir, not config_dir) and runs
    # with its own config_dir
    replica = [n for n in c.nodes if n is not leader][0]
    assert c.streams_from(replica, leader)
    leader.sql("CREATE TABLE cdir_t (v int)")
    leader.sql("INSERT INTO cdir_t VALUES (42)")
    harness.wait_until(lambda: replica.sql1("SELECT count(*) FROM pg_catalog.pg_class"
                                            " WHERE relname = 'cdir_t'") == 1
                       and replica.sql1("SELECT v FROM cdir_t") == 42, 30,
                       "the row on the replica")

    # proxy_address: proxy_url in each member key
    for i, node in enumerate(c.nodes):
        member = json.loads(c.key("members/%s" % node.name))
        assert member.get("proxy_url") == "postgres://127.0.0.1:%d/postgres" % (6432 + i), member

    # log.type json: the daemon's lines are JSON with the static fields; log.mode only
    # matters with log.dir (not set here)
    plain = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")
    for node in c.nodes:
        lines = [l for l in node.log_text().splitlines() if l and not l.startswith("=== ")]
        objs = []
        for l in lines:
            assert not plain.match(l), "%s: a plain line: %s" % (node, l)
            if l.startswith("{"):
                o = json.loads(l)
                assert o["app"] == "pgwt" and o["node"] == node.name, o
                assert o["levelname"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), o
                assert "asctime" in o and "message" in o, o
                objs.append(o)
        assert len(objs) >= 3, "%s: too few JSON lines:\n%s" % (node, "\n".join(lines[:20]))
        assert any("decision" in o["message"] for o in objs), objs[:5]
