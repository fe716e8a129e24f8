"""Issue 15's acceptance test: Patroni's own example configs (postgres0.yml, postgres1.yml,
postgres2.yml from the patroni/patroni repository, written out here as data) pass
`pgwarden --check-config` with no "not implemented" warning, and postgres0.yml, adapted to
the test's etcd, ports and directories, runs a 1-node cluster.

The examples are reproduced with their comments dropped and are changed only where pgwarden
must differ; each change is marked "ADAPTED" with the reason.  Keys still not implemented
because another branch is doing them are listed in PENDING_ELSEWHERE, not hidden."""

import os
import re
import subprocess

import harness

# Keys of the examples that are still "not implemented" (none left: every key of the
# examples is implemented or, for other DCS kinds, refused with a reason).  A key put
# here must leave it when it lands: the test fails on a listed key that no longer warns.
PENDING_ELSEWHERE = set()

# patroni/patroni postgres0.yml (comments dropped).
POSTGRES0 = """\
scope: batman
name: postgresql0

restapi:
  listen: 127.0.0.1:{rest_port}
  connect_address: 127.0.0.1:{rest_port}

# ADAPTED: "etcd:" (etcd v2 API) -> "etcd3:": pgwarden needs etcd v3 leases and refuses
# the etcd section; the host is the test's etcd instead of 127.0.0.1:2379.
etcd3:
  host: {etcd_host}

bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry_timeout}
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      pg_hba:
      - host replication replicator 127.0.0.1/32 md5
      - host all all 0.0.0.0/0 md5
      parameters:
  initdb:
  - encoding: UTF8
  - data-checksums

postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  # ADAPTED: data/postgresql0 and /tmp/pgpass0 -> the test's directory
  data_dir: {dir}/data/postgresql0
  pgpass: {dir}/pgpass0
  authentication:
    replication:
      username: replicator
      password: rep-pass
    superuser:
      username: postgres
      password: patroni
    rewind:
      username: rewind_user
      password: rewind_password
  parameters:
    unix_socket_directories: '..'
{extra_postgresql}
tags:
    noloadbalance: false
    clonefrom: false
    nosync: false
    nostream: false
{extra}"""

# patroni/patroni postgres1.yml (comments dropped).
POSTGRES1 = """\
scope: batman
name: postgresql1

restapi:
  listen: 127.0.0.1:8009
  connect_address: 127.0.0.1:8009

# ADAPTED: "etcd:" -> "etcd3:" (see postgres0.yml)
etcd3:
  host: 127.0.0.1:2379

bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      pg_hba:
      - host replication replicator 127.0.0.1/32 md5
      - host all all 0.0.0.0/0 md5
      parameters:
  initdb:
  - encoding: UTF8
  - data-checksums

postgresql:
  listen: 127.0.0.1:5433
  connect_address: 127.0.0.1:5433
  data_dir: data/postgresql1
  pgpass: /tmp/pgpass1
  authentication:
    replication:
      username: replicator
      password: rep-pass
    superuser:
      username: postgres
      password: patroni
    rewind:
      username: rewind_user
      password: rewind_password
  parameters:
    unix_socket_directories: '..'
  basebackup:
      - verbose
      - max-rate: 100M

tags:
    noloadbalance: false
    clonefrom: false
"""

# patroni/patroni postgres2.yml (comments dropped).
POSTGRES2 = """\
scope: batman
name: postgresql2

restapi:
  listen: 127.0.0.1:8010
  connect_address: 127.0.0.1:8010
  authentication:
    username: username
    password: password

# ADAPTED: "etcd:" -> "etcd3:" (see postgres0.yml)
etcd3:
  host: 127.0.0.1:2379

bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
  initdb:
  - encoding: UTF8
  - data-checksums
  pg_hba:
  - host replication replicator 127.0.0.1/32 md5
  - host all all 0.0.0.0/0 md5
  users:
    admin:
      password: admin%
      options:
        - createrole
        - createdb

postgresql:
  listen: 127.0.0.1:5434
  connect_address: 127.0.0.1:5434
  data_dir: data/postgresql2
  pgpass: /tmp/pgpass2
  authentication:
    replication:
      username: replicator
      password: rep-pass
    superuser:
      username: postgres
      password: zalando
    rewind:
      username: rewind_user
      password: rewind_password
  parameters:
    unix_socket_directories: '..'
tags:
    nofailover: false
    noloadbalance: false
    clonefrom: false
    replicatefrom: postgres1
"""

# The lines the examples have commented out that name issue 15's keys, switched on: they
# must be read without a warning too.
COMMENTED_KEYS = """\
  proxy_address: 127.0.0.1:5433
  config_dir: {dir}/conf
  use_unix_socket: true
  use_unix_socket_repl: true"""

NOT_IMPL = re.compile(r"(\S+): not implemented by pgwarden yet")


def check(path):
    p = subprocess.run([harness.PGWARDEN_BIN, "--check-config", path], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60, env=harness.clean_env())
    out = p.stdout + p.stderr
    for m in harness.SANITIZER_MARKERS:
        assert m not in out, "sanitizer report:\n" + out
    assert p.returncode == 0, "rc %d:\n%s" % (p.returncode, out)
    return out


def render0(d, **kw):
    values = dict(rest_port=8008, pg_port=5432, etcd_host="127.0.0.1:2379", ttl=30,
                  loop_wait=10, retry_timeout=10, dir=d, extra="", extra_postgresql="")
    values.update(kw)
    return POSTGRES0.format(**values)


def test_patroni_examples_have_no_unimplemented_keys(tmp_path):
    d = str(tmp_path)
    examples = {
        "postgres0.yml": render0(d),
        "postgres1.yml": POSTGRES1,
        "postgres2.yml": POSTGRES2,
        "postgres0-commented.yml": render0(d, extra_postgresql=COMMENTED_KEYS.format(dir=d)),
    }
    seen_pending = set()
    for name, text in examples.items():
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        out = check(path)
        keys = set(NOT_IMPL.findall(out))
        keys = {k.split(": ")[-1] for k in keys}
        unexpected = keys - PENDING_ELSEWHERE
        assert not unexpected, "%s: not implemented: %s\n%s" % (name, sorted(unexpected), out)
        seen_pending |= keys
        assert "unknown key" not in out, "%s:\n%s" % (name, out)
    # the allowlist holds nothing the examples do not need
    assert seen_pending == PENDING_ELSEWHERE, sorted(PENDING_ELSEWHERE - seen_pending)


def test_postgres0_runs_a_one_node_cluster(make_cluster):
    """postgres0.yml, adapted to the test's etcd, ports and directory, starts and leads."""
    import psycopg2

    c = make_cluster(n=1, start=False, label="p0")
    node = c.nodes[0]
    # ADAPTED for a real start: the harness cluster's scope (its helpers look there), the
    # test's ports, etcd and directory; the harness's timing (ttl 10, loop_wait 2,
    # retry_timeout 3) instead of 30/10/10 to keep the test short; the harness's bin_dir
    # (PostgreSQL 15 is not in PATH); failover.unprotected as every harness cluster has
    # (no watchdog, no fencing here).
    text = render0(node.dir, rest_port=node.rest_port, pg_port=node.pg_port,
                   etcd_host=c.etcd.endpoint, ttl=10, loop_wait=2, retry_timeout=3,
                   extra_postgresql="  bin_dir: %s" % harness.PG_BIN,
                   extra="failover:\n  unprotected: true\n")
    text = text.replace("scope: batman", "scope: %s" % c.scope)
    node.write_config(text)
    node.data_dir = os.path.join(node.dir, "data", "postgresql0")
    node.pg_log_path = node.data_dir + ".log"
    out = check(node.config_path)
    assert set(k.split(": ")[-1] for k in NOT_IMPL.findall(out)) <= PENDING_ELSEWHERE, out
    c.start()
    c.wait_leader(timeout=120)
    assert c.leader_name() == "postgresql0"

    def query(sql):
        conn = psycopg2.connect(host="127.0.0.1", port=node.pg_port, user="postgres",
                                password="patroni", dbname="postgres", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchone()[0]
        finally:
            conn.close()

    harness.wait_until(lambda: query("SELECT NOT pg_catalog.pg_is_in_recovery()"), 60,
                       "postgresql0 to accept writes as the example's superuser")
    assert query("SHOW data_checksums") == "on"          # bootstrap.initdb
    assert query("SHOW unix_socket_directories") == ".."  # postgresql.parameters
    # the example's socket directory, '..' from the data directory
    assert os.path.exists(os.path.join(node.dir, "data", ".s.PGSQL.%d" % node.pg_port))
