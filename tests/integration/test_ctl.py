"""pgwardenctl, the operator CLI, against a real etcd and three real pgwarden nodes.

pgwardenctl sits next to the daemon under test ($PGWARDEN_BIN) and reads a node's own
configuration file (etcd3.hosts, namespace, scope), as an operator on that machine would.

TestCtlViews shares one cluster: list, topology, show-config, edit-config (a good edit and one
refused by the timing rule), usage errors and switchover refusals (nothing is written).
TestCtlSwitchoverAndPause shares another: a switchover to a chosen replica (the old leader
rejoins as a replica), then pause -> the leader's machine dies -> no promotion -> resume -> a
new leader.  Timing settings of every test cluster: ttl 10, loop_wait 2, retry_timeout 3.
"""

import copy
import json
import os
import subprocess
import time

import harness
from harness import PGWARDEN_BIN, SANITIZER_MARKERS, clean_env, figure, log

CTL = os.path.join(os.path.dirname(PGWARDEN_BIN), "pgwardenctl")
TTL = 10


def ctl(cluster, *args, timeout=120, stdin=None):
    """Run pgwardenctl with node1's config; (exit code, stdout, stderr).  stdin is never a
    terminal here.  A sanitizer report fails the test."""
    cmd = [CTL, "-c", cluster.nodes[0].config_path] + list(args)
    p = subprocess.run(cmd, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout, env=clean_env())
    log("%s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    assert not any(m in p.stderr for m in SANITIZER_MARKERS), p.stderr
    return p.returncode, p.stdout, p.stderr


def list_json(cluster):
    rc, out, err = ctl(cluster, "list", "-f", "json")
    assert rc == 0, err
    return json.loads(out)


def config_json(cluster):
    rc, out, err = ctl(cluster, "show-config", "-f", "json")
    assert rc == 0, err
    return json.loads(out)


def roles(rows):
    return sorted(r["Role"] for r in rows)


class TestCtlViews:
    def test_list_shows_one_leader_two_running_replicas(self, cluster):
        leader = cluster.wait_healthy()
        rows = cluster.wait_until(
            lambda: (lambda r: r if all("TL" in x and x["State"] == "running" for x in r)
                     else None)(list_json(cluster)),
            30, "every member running with a timeline")
        assert roles(rows) == ["Leader", "Replica", "Replica"], rows
        assert [r["Member"] for r in rows if r["Role"] == "Leader"] == [leader.name]
        assert {r["Cluster"] for r in rows} == {cluster.scope}
        for r in rows:
            node = cluster.node(r["Member"])
            assert r["Host"] == "127.0.0.1:%d" % node.pg_port
            assert r["TL"] >= 1
            if r["Role"] == "Replica":
                assert r["Lag in MB"] == "unknown" or r["Lag in MB"] >= 0

        rc, out, err = ctl(cluster, "list")
        assert rc == 0, err
        lines = out.splitlines()
        sysid = cluster.key("initialize")
        assert lines[0].startswith("+ Cluster: %s (%s) " % (cluster.scope, sysid)), out
        assert [c.strip() for c in lines[1].split("|")[1:-1]] == [
            "Member", "Host", "Role", "State", "TL", "Lag in MB"], out
        body = [l for l in lines if l.startswith("| node")]
        assert len(body) == 3, out
        assert sum(" Leader " in l for l in body) == 1
        assert sum(" Replica " in l for l in body) == 2
        assert all(" running " in l for l in body)
        assert "Maintenance mode" not in out

    def test_topology_puts_replicas_under_the_leader(self, cluster):
        leader = cluster.wait_healthy()
        rc, out, err = ctl(cluster, "topology")
        assert rc == 0, err
        body = [l for l in out.splitlines() if l.startswith("| ")][1:]
        assert body[0].startswith("| %s " % leader.name), out
        assert all(l.startswith("| + node") for l in body[1:]) and len(body) == 3, out

    def test_show_config(self, cluster):
        rc, out, err = ctl(cluster, "show-config")
        assert rc == 0, err
        assert "ttl: 10\n" in out and "loop_wait: 2\n" in out and "retry_timeout: 3\n" in out
        assert "postgresql:\n" in out and "  use_slots: true\n" in out
        assert config_json(cluster)["ttl"] == 10

    def test_edit_config_sets_loop_wait(self, cluster):
        rc, out, err = ctl(cluster, "edit-config", "-s", "loop_wait=3", "--force")
        assert rc == 0, err
        assert "loop_wait: 2 -> 3" in out
        rc, out, err = ctl(cluster, "show-config")
        assert rc == 0 and "loop_wait: 3\n" in out, out
        assert json.loads(cluster.key("config"))["loop_wait"] == 3
        # the same edit again changes nothing
        rc, out, _ = ctl(cluster, "edit-config", "-s", "loop_wait=3", "--force")
        assert rc == 0 and "Not changed" in out

    def test_edit_config_breaking_the_timing_rule_is_refused(self, cluster):
        before = cluster.key("config")
        rc, out, err = ctl(cluster, "edit-config", "-s", "ttl=5", "-s", "loop_wait=2",
                           "-s", "retry_timeout=3", "--force")
        assert rc == 1, (out, err)
        assert "loop_wait + 2 * retry_timeout (8) must not exceed ttl (5)" in err
        rc, out, err = ctl(cluster, "edit-config", "-s", "ttl=abc", "--force")
        assert rc == 1 and "ttl: expected a positive integer" in err
        # without --force and without a "y" on stdin nothing is written either
        rc, out, err = ctl(cluster, "edit-config", "-s", "loop_wait=1", stdin="n\n")
        assert rc == 1 and "Apply these changes?" in out
        assert cluster.key("config") == before

    def test_edit_config_apply_file(self, cluster):
        patch = os.path.join(cluster.dir, "patch.yml")
        with open(patch, "w") as f:
            f.write("# a patch as an operator writes it\nloop_wait: 2\n"
                    "postgresql:\n  parameters:\n    work_mem: 8MB\n")
        rc, out, err = ctl(cluster, "edit-config", "--apply", patch, "--force")
        assert rc == 0, err
        assert 'postgresql.parameters.work_mem: (unset) -> "8MB"' in out, out
        cfg = json.loads(cluster.key("config"))
        assert cfg["loop_wait"] == 2 and cfg["postgresql"]["parameters"]["work_mem"] == "8MB"
        assert cfg["ttl"] == 10  # a patch keeps what it does not name
        # from stdin, null removes the key
        rc, out, err = ctl(cluster, "edit-config", "--apply", "-", "--force",
                           stdin="postgresql:\n  parameters:\n    work_mem: null\n")
        assert rc == 0, err
        assert "work_mem" not in json.loads(cluster.key("config"))["postgresql"]["parameters"]
        # a bad file: the line is named and nothing is written
        before = cluster.key("config")
        with open(patch, "w") as f:
            f.write("ttl: 10\nloop_wait: [2\n")
        rc, out, err = ctl(cluster, "edit-config", "--apply", patch, "--force")
        assert rc == 1 and patch + ":3: YAML syntax error" in err, err
        with open(patch, "w") as f:
            f.write("ttl: 6\n")
        rc, out, err = ctl(cluster, "edit-config", "--apply", patch, "--force")
        assert rc == 1 and "must not exceed ttl (6)" in err, err
        rc, out, err = ctl(cluster, "edit-config", "--apply", patch + ".missing", "--force")
        assert rc == 1 and "No such file" in err, err
        assert cluster.key("config") == before

    def test_usage_errors_exit_2(self, cluster):
        assert ctl(cluster, "list", "--bogus")[0] == 2
        assert ctl(cluster, "bogus")[0] == 2
        assert ctl(cluster, "list", "-f", "xml")[0] == 2
        rc, _, err = ctl(cluster, "switchover")
        assert rc == 2 and "--force" in err
        rc, out, _ = ctl(cluster, "--help")
        assert rc == 0 and "switchover" in out and "reload" in out
        rc, _, err = ctl(cluster, "restart", cluster.scope)
        assert rc == 2 and "--force" in err
        rc, _, err = ctl(cluster, "reload", cluster.scope)
        assert rc == 2 and "--force" in err
        p = subprocess.run([CTL, "-c", "/nonexistent/pgwarden.yml", "list"], capture_output=True,
                           text=True, env=clean_env(), timeout=30)
        assert p.returncode == 1 and "/nonexistent/pgwarden.yml" in p.stderr

    def test_restart_and_reinit_through_the_rest_api(self, cluster):
        leader = cluster.leader()
        replica = cluster.replicas()[0]
        t0 = replica.sql("SELECT pg_postmaster_start_time()")[0][0]
        rc, out, err = ctl(cluster, "restart", cluster.scope, replica.name, "--force")
        assert rc == 0 and "Success: restart on member %s" % replica.name in out, out + err
        assert replica.sql("SELECT pg_postmaster_start_time()")[0][0] > t0
        # --pending: nobody waits for a restart, so nobody is restarted
        rc, out, _ = ctl(cluster, "restart", cluster.scope, "--pending", "--force")
        assert rc == 0 and "No member to restart" in out, out
        rc, out, err = ctl(cluster, "reload", cluster.scope, "--force")
        assert rc == 0 and out.count("Success: reload") == 3, out + err
        # reinit refuses the leader (the daemon says why) and re-clones a replica
        rc, out, _ = ctl(cluster, "reinit", cluster.scope, leader.name, "--force")
        assert rc == 1 and "leader" in out, out
        rc, out, err = ctl(cluster, "reinit", cluster.scope, replica.name, "--force")
        assert rc == 0 and "Success: reinitialize on member %s" % replica.name in out, out + err
        cluster.wait_until(lambda: replica.rest("/replica")[0] == 200, 60, "the re-cloned replica")
        rc, _, err = ctl(cluster, "reinit", cluster.scope, "nobody", "--force")
        assert rc == 1 and "nobody" in err

    def test_api_hosts_keeps_requests_to_the_hosts_listed(self, cluster):
        """ctl.api_hosts: an api_url from etcd naming another host gets nothing (issue 11.7)."""
        replica = cluster.replicas()[0]
        t0 = replica.sql("SELECT pg_postmaster_start_time()")[0][0]
        cfg = copy.deepcopy(cluster.nodes[0].config)
        cfg.setdefault("ctl", {})["api_hosts"] = ["192.0.2.7", "pg1.example.net"]
        path = os.path.join(cluster.dir, "ctl-api-hosts.yml")
        with open(path, "w") as f:
            f.write(harness.to_yaml(cfg) + "\n")
        p = subprocess.run([CTL, "-c", path, "restart", cluster.scope, replica.name, "--force"],
                           capture_output=True, text=True, env=clean_env(), timeout=60)
        out = p.stdout + p.stderr
        assert p.returncode == 1 and "not in ctl.api_hosts: nothing sent" in out, out
        assert replica.sql("SELECT pg_postmaster_start_time()")[0][0] == t0
        cfg["ctl"]["api_hosts"] = ["pg1.example.net", "127.0.0.1"]
        with open(path, "w") as f:
            f.write(harness.to_yaml(cfg) + "\n")
        p = subprocess.run([CTL, "-c", path, "reload", cluster.scope, replica.name, "--force"],
                           capture_output=True, text=True, env=clean_env(), timeout=60)
        assert p.returncode == 0 and "Success: reload" in p.stdout, p.stdout + p.stderr

    def test_switchover_refusals_write_nothing(self, cluster):
        leader = cluster.wait_healthy()
        replica = cluster.replicas(leader.name)[0]
        cases = [
            (["--candidate", leader.name], "already the leader"),
            (["--candidate", "nosuchnode"], "not a member"),
            (["--leader", replica.name, "--candidate", leader.name], "not the leader"),
        ]
        for args, why in cases:
            rc, _, err = ctl(cluster, "switchover", "--force", *args)
            assert rc == 1 and why in err, err
        assert ctl(cluster, "failover", "--force")[0] == 2   # needs --candidate
        assert cluster.key("failover") is None
        assert cluster.leader_name() == leader.name


class TestCtlSwitchoverAndPause:
    def test_switchover_to_a_chosen_replica(self, cluster):
        old = cluster.wait_healthy()
        target = sorted(n.name for n in cluster.replicas(old.name))[-1]
        t0 = time.monotonic()
        rc, out, err = ctl(cluster, "switchover", "--candidate", target, "--force", timeout=120)
        assert rc == 0, (out, err)
        assert "Successfully switched over to %s" % target in out
        figure("pgwardenctl switchover -> new leader key", time.monotonic() - t0)
        assert cluster.leader_name() == target
        # the old leader comes back as a running replica of the new one
        cluster.wait_until(
            lambda: {r["Member"]: (r["Role"], r["State"]) for r in list_json(cluster)}
            .get(old.name) == ("Replica", "running"), 90,
            "%s to rejoin as a running replica" % old.name)
        cluster.wait_healthy(120)
        assert cluster.key("failover") is None
        rc, out, err = ctl(cluster, "history", "-f", "json")
        assert rc == 0, err
        hist = json.loads(out)
        assert hist and hist[-1].get("New Leader", target) == target, hist

    def test_pause_prevents_failover_until_resume(self, cluster):
        leader = cluster.wait_healthy(120)
        rc, out, err = ctl(cluster, "pause", "--wait", timeout=90)
        assert rc == 0, (out, err)
        assert json.loads(cluster.key("config")).get("pause") is True
        rc, out, _ = ctl(cluster, "list")
        assert " Maintenance mode: on" in out
        rc, _, err = ctl(cluster, "pause")
        assert rc == 1 and "cluster is already paused" in err
        rc, _, err = ctl(cluster, "switchover", "--force")
        assert rc == 1 and "paused" in err

        log("paused; killing the machine of leader %s" % leader.name)
        leader.kill_machine()
        replicas = cluster.replicas(leader.name)
        deadline = time.monotonic() + TTL + 6
        while time.monotonic() < deadline:
            holder = cluster.leader_name()
            assert holder in (None, leader.name), "%s took the leader key while paused" % holder
            for r in replicas:
                assert not r.accepts_writes(), "%s was promoted while paused" % r.name
            time.sleep(0.5)
        assert cluster.leader_name() is None, "the dead leader's key outlived its TTL"

        t0 = time.monotonic()
        rc, out, err = ctl(cluster, "resume")
        assert rc == 0 and "resumed" in out, (out, err)
        new = cluster.wait_leader(timeout=20, exclude=(leader.name,))
        figure("pgwardenctl resume -> new leader key", time.monotonic() - t0)
        cluster.wait_until(cluster.node(new).accepts_writes, 30, "%s to accept writes" % new)
