"""Patroni's postgresql.callbacks, pre_promote and before_stop against a real cluster.

Each callback is one script that appends "NODE ACTION ARGS..." to a file (ACTION from
PGWARDEN_ACTION, ARGS what Patroni passes: the action, the role, the scope for the
callbacks; nothing for pre_promote and before_stop).

- test_callbacks_follow_the_cluster: on_start on bootstrap (master) and on the replica,
  on_reload on SIGHUP and on `pgwardenctl reload`, a switchover: before_stop then on_stop
  on the old leader, on_role_change master on the new one, on_role_change replica on the
  old one once it follows; then a hung on_reload is killed with its process group after
  postgresql.callback_timeout while the HA loop keeps cycling.
- test_pre_promote_veto: the candidate's pre_promote exits 1: no promotion, the key is
  released and the switchover request removed, the log names the command and its exit
  status and carries its output; it is tried again after the hold-off, and promotes once
  the script allows it.
Timing settings of every test cluster: ttl 10, loop_wait 2, retry_timeout 3.
"""

import os
import signal
import subprocess
import tempfile
import time

import harness
from harness import PGWARDEN_BIN, clean_env, log, wait_until

CTL = os.path.join(os.path.dirname(PGWARDEN_BIN), "pgwardenctl")

SCRIPT = """#!/bin/sh
# $1.. as Patroni passes them; the environment is pgwarden's clean one
echo "$PGWARDEN_NAME $PGWARDEN_ACTION $* home=$HOME" >> "%(dir)s/calls.log"
if [ "$PGWARDEN_ACTION" = on_reload ] && [ -e "%(dir)s/hang" ]; then
    sleep 987654 &
    wait
fi
if [ "$PGWARDEN_ACTION" = pre_promote ] && [ -e "%(dir)s/veto-$PGWARDEN_NAME" ]; then
    echo "refusing to promote $PGWARDEN_NAME" >&2
    exit 1
fi
exit 0
"""


def script_dir():
    d = tempfile.mkdtemp(prefix="pgwt-cb-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "cb.sh")
    with open(path, "w") as f:
        f.write(SCRIPT % {"dir": d})
    os.chmod(path, 0o755)
    harness.chown_postgres(d)
    return d, path


def callbacks_config(path, timeout=5):
    cb = "%s --from-pgwarden" % path  # split as Patroni splits it: two words
    return {"postgresql": {
        "callbacks": {k: cb for k in ("on_start", "on_stop", "on_restart", "on_reload",
                                      "on_role_change")},
        "pre_promote": path,
        "before_stop": path,
        "callback_timeout": timeout,
    }}


def calls(d):
    try:
        with open(os.path.join(d, "calls.log")) as f:
            return [line.split() for line in f.read().splitlines()]
    except FileNotFoundError:
        return []


def has_call(d, node, *words):
    """A line of node whose words after the name and action start with `words`."""
    for c in calls(d):
        if c[0] == node and c[2:2 + len(words)] == list(words):
            return True
    return False


def index_of(d, node, action, *args):
    for i, c in enumerate(calls(d)):
        if c[0] == node and c[1] == action and c[2:2 + len(args)] == list(args):
            return i
    return None


def ctl(cluster, *args, timeout=120):
    p = subprocess.run([CTL, "-c", cluster.nodes[0].config_path] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout, env=clean_env())
    log("pgwardenctl %s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p.returncode, p.stdout, p.stderr


def mod_revision(cluster, key):
    r = cluster.etcd._call("kv/range", {"key": harness._b64(cluster.prefix + key)})
    kvs = r.get("kvs", [])
    return int(kvs[0]["mod_revision"]) if kvs else 0


def sleeper_pids():
    p = subprocess.run(["pgrep", "-f", "sleep 987654"], capture_output=True, text=True)
    return p.stdout.split()


def callback_cluster(make_cluster, label):
    """Two nodes with every command set to the script: (script dir, script, cluster,
    leader, replica)."""
    d, path = script_dir()
    c = make_cluster(n=2, start=False, label=label, overrides=callbacks_config(path))
    c.start()
    leader = c.wait_healthy(180)
    return d, path, c, leader, c.replicas(leader.name)[0]


def test_callbacks_follow_the_cluster(make_cluster):
    d, path, c, leader, replica = callback_cluster(make_cluster, "cb")
    scope = c.scope

    # bootstrap and clone: on_start with the role and the scope, as Patroni passes them
    wait_until(lambda: has_call(d, leader.name, "--from-pgwarden", "on_start", "master", scope),
               30, "on_start master on the leader")
    wait_until(lambda: has_call(d, replica.name, "--from-pgwarden", "on_start", "replica",
                                scope), 30, "on_start replica on the replica")
    assert not any(c_[1] in ("pre_promote", "before_stop") for c_ in calls(d)), calls(d)
    # a clean environment: HOME of the daemon's user, nothing of ours
    assert all(c_[-1].startswith("home=/") for c_ in calls(d)), calls(d)
    assert "on_start: running" in leader.log_text()
    assert "on_start `%s --from-pgwarden on_start master %s` exited with status 0" % (
        path, scope) in leader.log_text()
    # --check-config: no "not implemented" for these keys
    p = subprocess.run([PGWARDEN_BIN, "--check-config", leader.config_path],
                       capture_output=True, text=True, env=clean_env(), timeout=30)
    assert p.returncode == 0, p.stderr
    assert "not implemented" not in p.stdout + p.stderr, p.stdout + p.stderr

    # reload: SIGHUP, then pgwardenctl reload
    os.kill(leader.daemon_pid, signal.SIGHUP)
    wait_until(lambda: has_call(d, leader.name, "--from-pgwarden", "on_reload", "master", scope),
               20, "on_reload on the leader after SIGHUP")
    rc, _, err = ctl(c, "reload", scope, replica.name, "--force")
    assert rc == 0, err
    wait_until(lambda: has_call(d, replica.name, "--from-pgwarden", "on_reload", "replica",
                                scope), 20, "on_reload on the replica after pgwardenctl reload")

    # switchover: before_stop, then on_stop on the old leader; on_role_change on both
    rc, _, err = ctl(c, "switchover", "--candidate", replica.name, "--force")
    assert rc == 0, err
    wait_until(lambda: c.leader_name() == replica.name, 60, "the candidate to lead")
    wait_until(lambda: has_call(d, replica.name, "--from-pgwarden", "on_role_change", "master",
                                scope), 30, "on_role_change master on the new leader")
    wait_until(lambda: has_call(d, leader.name, "--from-pgwarden", "on_role_change", "replica",
                                scope), 60, "on_role_change replica on the old leader")
    b = index_of(d, leader.name, "before_stop")
    s = index_of(d, leader.name, "on_stop", "--from-pgwarden", "on_stop", "master", scope)
    assert b is not None and s is not None and b < s, calls(d)
    assert calls(d)[b][2:] == ["home=%s" % calls(d)[b][-1][5:]], calls(d)[b]  # no arguments
    assert index_of(d, replica.name, "pre_promote") is not None, calls(d)

    # a hung callback: killed with its group after callback_timeout (5 s), the loop cycles
    new_leader = replica
    open(os.path.join(d, "hang"), "w").close()
    os.kill(new_leader.daemon_pid, signal.SIGHUP)
    wait_until(lambda: sleeper_pids(), 20, "the hung on_reload to run")
    t0 = time.monotonic()
    rev0 = mod_revision(c, "members/" + new_leader.name)
    wait_until(lambda: "timed out (killed with its process group)" in new_leader.log_text(),
               20, "the hung on_reload to be killed")
    killed_after = time.monotonic() - t0
    wait_until(lambda: not sleeper_pids(), 5, "the callback's child to be gone too")
    assert mod_revision(c, "members/" + new_leader.name) > rev0, \
        "the member key was not published while the callback hung"
    assert killed_after < 5 + 3, killed_after  # 5 s bound, reaped within a loop
    st, _ = new_leader.rest("/liveness")
    assert st == 200
    assert c.leader_name() == new_leader.name
    os.remove(os.path.join(d, "hang"))


def test_pre_promote_veto(make_cluster):
    d, path, c, leader, replica = callback_cluster(make_cluster, "veto")
    open(os.path.join(d, "veto-" + replica.name), "w").close()

    rc, out, err = ctl(c, "switchover", "--candidate", replica.name, "--force", timeout=120)
    log("switchover with a vetoing candidate: rc %d" % rc)
    wait_until(lambda: "pre_promote `%s` exited with status 1: not promoting" % path
               in replica.log_text(), 60, "the veto in the candidate's log")
    text = replica.log_text()
    assert "pre_promote: refusing to promote %s" % replica.name in text  # its output
    assert "released the leader key" in text
    wait_until(lambda: "[pre-promote-vetoed-request] cancel_switchover" in replica.log_text(),
               30, "the vetoed switchover request to be removed")
    wait_until(lambda: c.key("failover") is None, 10, "the failover key to be gone")
    # while the veto holds, nobody writes: the candidate never promotes (it stays the
    # best candidate, so the old leader does not take over either: Patroni's outcome)
    t_end = time.monotonic() + 15
    while time.monotonic() < t_end:
        assert not replica.accepts_writes(), "the vetoed candidate accepts writes"
        if c.leader_name() == leader.name:
            break
        time.sleep(0.5)
    assert "promoted: now primary" not in replica.log_text()
    vetoes = replica.log_text().count("exited with status 1: not promoting")
    assert vetoes >= 2, "pre_promote is not tried again after the hold-off (%d)" % vetoes
    # the operator lifts the veto: the next try promotes
    os.remove(os.path.join(d, "veto-" + replica.name))
    wait_until(lambda: any(n.accepts_writes() for n in c.nodes), 60, "a primary again")
    new = c.wait_healthy(120)
    assert c.leader_name() == new.name
