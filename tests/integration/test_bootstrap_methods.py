"""Patroni's bootstrap and replica-creation keys (issue 15): a custom bootstrap method,
post_bootstrap, bootstrap.users, create_replica_methods with a custom method and the
fallback to basebackup, postgresql.basebackup options, bin_name, custom_conf and
pg_ident; and a failing custom bootstrap that leaves no half cluster.

The scripts are shell scripts written by the test into each node's directory; each
writes a marker file with the arguments it got."""

import os
import stat
import subprocess
import time

import harness
from harness import PG_BIN, chown_postgres, wait_until


def script(node, name, body):
    path = os.path.join(node.dir, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    chown_postgres(path)
    return path


def marker(node, name):
    path = os.path.join(node.dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().split("\n")


# a bootstrap method that runs initdb itself (as Patroni's docs' examples do)
BOOT = r'''echo "$@" | tr ' ' '\n' > "%(dir)s/boot.args"
for a in "$@"; do case "$a" in --datadir=*) d="${a#--datadir=}";; esac; done
exec %(bin)s/initdb -D "$d" -U postgres --auth-local=trust --auth-host=scram-sha-256
'''

# post_bootstrap: gets a connection string, the password comes from PGPASSFILE
POST = r'''echo "$@" > "%(dir)s/post.args"
exec /usr/bin/psql -X -v ON_ERROR_STOP=1 "$1" -c "CREATE TABLE made_by_post_bootstrap (i int)"
'''

# a replica method that clones with pg_basebackup itself
CLONE = r'''echo "$@" | tr ' ' '\n' > "%(dir)s/clone.args"
for a in "$@"; do case "$a" in --datadir=*) d="${a#--datadir=}";; --connstring=*) c="${a#--connstring=}";; esac; done
exec %(bin)s/pg_basebackup -D "$d" -d "$c" -X stream -c fast
'''

FAIL = r'''echo "$@" > "%(dir)s/fail.args"
exit 3
'''

# pg_ctl under another name (postgresql.bin_name): logs, then runs the real one
PGCTL_WRAPPER = r'''echo "$@" >> "%(dir)s/pgctl.calls"
exec %(bin)s/pg_ctl "$@"
'''


def bin_dir_with_wrapper(node):
    """A bin_dir of symlinks to PostgreSQL's programs plus pg_ctl.pgw, the wrapper."""
    d = os.path.join(node.dir, "bin")
    os.makedirs(d, exist_ok=True)
    for prog in os.listdir(PG_BIN):
        os.symlink(os.path.join(PG_BIN, prog), os.path.join(d, prog))
    w = os.path.join(d, "pg_ctl.pgw")
    with open(w, "w") as f:
        f.write("#!/bin/sh\n" + PGCTL_WRAPPER % {"dir": node.dir, "bin": PG_BIN})
    os.chmod(w, 0o755)
    chown_postgres(d)
    return d


def check_config_quiet(node):
    p = subprocess.run([harness.PGWARDEN_BIN, "--check-config", node.config_path],
                       capture_output=True, text=True, timeout=60, env=harness.clean_env())
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "not implemented" not in out and "unknown key" not in out, out


def test_custom_bootstrap_and_replica_methods(make_cluster):
    c = make_cluster(n=3, start=False, label="bsm")
    n1, n2, n3 = c.nodes
    v = lambda n: {"dir": n.dir, "bin": PG_BIN}
    custom_conf = os.path.join(n1.dir, "custom.conf")
    with open(custom_conf, "w") as f:
        f.write("work_mem = '7MB'\n")
    chown_postgres(custom_conf)
    for n in c.nodes:
        n.config["bootstrap"].update({
            "method": "scripted",
            "scripted": {"command": script(n, "boot.sh", BOOT % v(n))},
            "post_bootstrap": script(n, "post.sh", POST % v(n)),
            "users": {"app_owner": {"password": "app-secret", "options": ["createdb"]}},
        })
    # n1 bootstraps (it starts alone) with custom_conf and pg_ident
    n1.config["postgresql"].update({"custom_conf": custom_conf,
                                    "pg_ident": ["testmap postgres postgres"],
                                    "pg_ctl_timeout": 90})
    # n2: the custom method clones; n3: it fails, basebackup follows with options,
    # and pg_ctl runs under another name
    n2.config["postgresql"].update({
        "create_replica_methods": ["byscript", "basebackup"],
        "byscript": {"command": script(n2, "clone.sh", CLONE % v(n2)), "threads": 4},
    })
    n3.config["postgresql"].update({
        "create_replica_methods": ["broken", "basebackup"],
        "broken": {"command": script(n3, "fail.sh", FAIL % v(n3)), "keep_data": False},
        "basebackup": [{"max-rate": "64M"}, {"checkpoint": "fast"}, "verbose"],
        "bin_dir": bin_dir_with_wrapper(n3),
        "bin_name": {"pg_ctl": "pg_ctl.pgw"},
        "use_pg_rewind": True,
        "remove_data_directory_on_rewind_failure": True,
        "remove_data_directory_on_diverged_timelines": True,
    })
    for n in c.nodes:
        n.write_config()
        check_config_quiet(n)

    c.start(nodes=False)
    n1.start()
    wait_until(lambda: n1.rest("/primary")[0] == 200, 60, "n1 primary", diag=c.dump)
    args = marker(n1, "boot.args")
    assert args and "--scope=%s" % c.scope in args and "--datadir=%s" % n1.data_dir in args, args
    post = marker(n1, "post.args")
    assert post and "dbname=postgres" in post[0] and "port=%d" % n1.pg_port in post[0], post
    assert n1.sql1("SELECT count(*) FROM pg_class WHERE relname = 'made_by_post_bootstrap'") == 1
    assert n1.sql1("SELECT rolcreatedb AND rolcanlogin FROM pg_roles "
                   "WHERE rolname = 'app_owner'") is True
    assert n1.sql1("SELECT rolname FROM pg_roles WHERE rolname = %s", (harness.REPL_USER,))
    assert n1.sql1("SHOW work_mem") == "7MB"
    assert n1.sql1("SELECT count(*) FROM pg_ident_file_mappings WHERE map_name = 'testmap'") == 1
    # the custom bootstrap's trust line is gone once it ended
    with open(os.path.join(n1.data_dir, "pg_hba.conf")) as f:
        assert "trust" not in f.read().replace("local all all trust", "")
    assert c.key("initialize") == str(n1.sql1(
        "SELECT system_identifier FROM pg_control_system()"))

    n2.start()
    n3.start()
    c.wait_healthy(120)
    args = marker(n2, "clone.args")
    assert args, "the replica method of n2 did not run"
    for want in ("--scope=%s" % c.scope, "--role=replica", "--datadir=%s" % n2.data_dir,
                 "--threads=4"):
        assert want in args, (want, args)
    conn = [a for a in args if a.startswith("--connstring=")]
    assert conn and "port=%d" % n1.pg_port in " ".join(args), args
    assert "replica created with method byscript" in n2.log_text()
    assert marker(n3, "fail.args"), "the failing method of n3 did not run"
    log3 = n3.log_text()
    assert "replica method broken failed: trying basebackup" in log3, log3[-3000:]
    run = [l for l in log3.splitlines() if "running " in l and "pg_basebackup" in l]
    assert run and "--max-rate=64M" in run[-1] and "--checkpoint=fast" in run[-1] \
        and " -c fast" not in run[-1], run
    calls = marker(n3, "pgctl.calls")
    assert calls and any(l.startswith("start") for l in calls), calls
    for r in (n2, n3):
        assert r.sql1("SELECT pg_is_in_recovery()") is True


def test_failed_custom_bootstrap_leaves_no_half_cluster(make_cluster):
    c = make_cluster(n=1, start=False, label="bsf")
    n = c.nodes[0]
    half = r'''for a in "$@"; do case "$a" in --datadir=*) d="${a#--datadir=}";; esac; done
mkdir -p "$d" && echo junk > "$d/PG_VERSION" && echo restore failed >&2
echo x >> "%s/attempts"
exit 3
''' % n.dir
    n.config["bootstrap"].update({"method": "restore",
                                  "restore": {"command": script(n, "half.sh", half),
                                              "recovery_conf": {
                                                  "recovery_target_action": "promote"}}})
    n.write_config()
    check_config_quiet(n)
    c.start()
    wait_until(lambda: len(marker(n, "attempts") or []) >= 3, 60,
               "two failed bootstrap attempts", diag=c.dump)
    log = n.log_text()
    assert "bootstrap failed: removing the half-made data directory" in log, log[-3000:]
    assert "restore failed" in log, log[-3000:]
    n.stop_daemon()
    assert not os.path.exists(n.data_dir) or not os.listdir(n.data_dir), \
        os.listdir(n.data_dir)
    assert c.key("initialize") is None
    assert c.key("leader") is None
    assert not n.postmaster_running()
