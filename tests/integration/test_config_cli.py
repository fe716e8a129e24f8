"""`pgwarden --check-config` and a daemon started with a bad config (no etcd needed)."""

import os
import subprocess
import time

import pytest

import harness
from harness import Raw, SANITIZER_MARKERS, deep_merge, find_line, to_yaml


@pytest.fixture
def node(make_cluster):
    """An unstarted node (its etcd is never started: nothing here should reach it)."""
    return make_cluster(n=1, start=False, label="cfg").nodes[0]


def run(*args, timeout=60):
    p = subprocess.run([harness.PGWARDEN_BIN] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout, env=harness.clean_env())
    out = p.stdout + p.stderr
    for m in SANITIZER_MARKERS:
        assert m not in out, "sanitizer report:\n" + out
    return p.returncode, p.stdout, p.stderr


def write_bad_ttl(node):
    text = "# written by tests/integration/test_config_cli.py\n" + to_yaml(
        deep_merge(node.config, {"bootstrap": {"dcs": {"ttl": Raw("3O")}}})) + "\n"
    node.write_config(text)
    line = find_line(text, r"^\s+ttl: 3O$")
    return '%s:%d: bootstrap.dcs.ttl: expected a positive integer, got "3O"' % (
        node.config_path, line)


def test_check_config_accepts_a_good_config(node):
    rc, out, err = run("--check-config", node.config_path)
    assert rc == 0, "rc %d\nstdout: %s\nstderr: %s" % (rc, out, err)


def test_check_config_rejects_bad_ttl_with_file_line_and_key(node):
    expected = write_bad_ttl(node)
    rc, out, err = run("--check-config", node.config_path)
    assert rc != 0, "a config with ttl: 3O was accepted:\n%s%s" % (out, err)
    lines = [l for l in (out + err).splitlines() if l.strip()]
    assert lines == [expected], "expected exactly\n  %s\ngot\n  %s" % (expected, "\n  ".join(lines))


def test_check_config_rejects_timing_rule_violation(node):
    # loop_wait + 2 * retry_timeout <= ttl must hold: 2 + 2*3 > 7.
    text = to_yaml(deep_merge(node.config, {"bootstrap": {"dcs": {"ttl": 7}}})) + "\n"
    node.write_config(text)
    rc, out, err = run("--check-config", node.config_path)
    assert rc != 0, "ttl 7 with loop_wait 2, retry_timeout 3 was accepted"
    assert node.config_path in out + err and "ttl" in out + err, out + err


def test_daemon_refuses_to_start_with_bad_config(node):
    expected = write_bad_ttl(node)
    node.start()
    try:
        rc = node.wait_exit(30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the daemon kept running with a bad config:\n" + node.log_text())
    text = node.log_text(current_start_only=True)
    assert rc != 0, "daemon exited 0 with a bad config:\n" + text
    assert expected in text.splitlines(), "expected the line\n  %s\nin\n%s" % (expected, text)
    time.sleep(0.5)
    assert not node.cgroup.populated(), "processes left: %r" % node.machine_processes()
    assert not os.path.exists(os.path.join(node.data_dir, "postmaster.pid"))
    assert not os.path.exists(os.path.join(node.data_dir, "PG_VERSION")), "initdb ran"
    assert node.rest("/health", timeout=1) == (None, None), "the REST API answered"
    for m in SANITIZER_MARKERS:
        assert m not in text, text


def test_data_dir_under_a_missing_directory(make_cluster):
    """A fresh install may lack the directory above data_dir (e.g. /var/lib/postgresql/15):
    pgwarden creates it instead of failing the bootstrap in a loop (found by the package's
    appliance test)."""
    c = make_cluster(1, start=False)
    node = c.nodes[0]
    node.config["postgresql"]["data_dir"] = os.path.join(node.dir, "pg", "15", "main")
    node.data_dir = node.config["postgresql"]["data_dir"]
    node.write_config()
    c.start()
    c.wait_healthy(120)
    assert os.path.isdir(os.path.join(node.dir, "pg", "15", "main", "base"))
    assert os.stat(os.path.join(node.dir, "pg")).st_mode & 0o777 == 0o700


def test_check_config_accepts_the_patroni_keys_of_issue_15(node):
    """Every key of issue 15 passes --check-config without a "not implemented" warning."""
    extra = {
        "log": {"level": "WARNING", "traceback_level": "ERROR",
                "format": "%(asctime)s %(levelname)s: %(message)s",
                "dateformat": "%Y-%m-%d %H:%M:%S", "dir": node.dir, "file_num": 4,
                "file_size": 25000000, "max_queue_size": 1000},
        "restapi": {"allowlist": ["127.0.0.1", "10.0.0.0/8", "localhost"],
                    "allowlist_include_members": True,
                    "http_extra_headers": {"X-Frame-Options": "SAMEORIGIN"},
                    "https_extra_headers": {"Strict-Transport-Security": "max-age=31536000"},
                    "request_queue_size": 5,
                    "ciphers": "ECDHE-RSA-AES256-GCM-SHA384:!SSLv3:!TLSv1:!TLSv1.1"},
        "ctl": {"keyfile_password": "x"},
        "failsafe_mode": False,
        "bootstrap": {"dcs": {"failsafe_mode": False}},
    }
    cfg = deep_merge(node.config, extra)
    del cfg["etcd3"]["hosts"]
    cfg["etcd3"]["url"] = "http://127.0.0.1:2379"
    node.write_config(to_yaml(cfg) + "\n")
    rc, out, err = run("--check-config", node.config_path)
    assert rc == 0, "rc %d\nstdout: %s\nstderr: %s" % (rc, out, err)
    assert "not implemented" not in out + err and "unknown key" not in out + err, out + err


@pytest.mark.parametrize("key,value,line_re,msg", [
    ("failsafe_mode", True, r"^failsafe_mode: true$", "true is refused by design"),
    ("consul", {"host": "127.0.0.1:8500"}, r"^consul:$", "not supported by pgwarden"),
    ("etcd", {"host": "127.0.0.1:2379"}, r"^etcd:$", "not supported by pgwarden"),
    ("kubernetes", {"namespace": "x"}, r"^kubernetes:$", "not supported by pgwarden"),
])
def test_check_config_refuses_keys_pgwarden_does_not_support(node, key, value, line_re, msg):
    text = to_yaml(deep_merge(node.config, {key: value})) + "\n"
    node.write_config(text)
    line = find_line(text, line_re)
    rc, out, err = run("--check-config", node.config_path)
    assert rc != 0, "accepted:\n" + out + err
    assert ("%s:%d: %s: %s" % (node.config_path, line, key, msg)) in out + err, out + err
