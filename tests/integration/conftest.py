"""Fixtures for pgwarden's integration tests (real etcd, real PostgreSQL 15, as root).

    cluster        a 3-node cluster shared by the tests of one class (started, healthy)
    make_cluster   factory for fresh clusters owned by one test: make_cluster(n=3, start=True)

Every cluster is torn down after its tests even when they fail: daemons get SIGTERM (so
LeakSanitizer can report), then every node's cgroup is killed and removed, and etcd is killed.
A node log with an ASan/UBSan/LSan report fails the test that owned the cluster.  Files of a
cluster are removed when its tests passed; on failure the logs and configs are kept (the path
is printed) and the data directories are removed.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

BOOT_TIMEOUT = int(os.environ.get("PGWT_BOOT_TIMEOUT", "180"))

_SKIP_REASON = harness.preflight()


def pytest_configure(config):
    harness.install_handlers()
    if _SKIP_REASON is None:
        harness.become_subreaper()
        harness.remove_stale_cgroups()


def pytest_report_header(config):
    return ["pgwarden: %s" % harness.PGWARDEN_BIN,
            "integration: %s" % ("SKIPPED: " + _SKIP_REASON if _SKIP_REASON else
                                 "run id %s, cgroups under %s" % (harness.RUN_ID, harness.CGROOT))]


def pytest_collection_modifyitems(config, items):
    if _SKIP_REASON is None:
        return
    mark = pytest.mark.skip(reason="pgwarden integration tests: " + _SKIP_REASON)
    for item in items:
        item.add_marker(mark)


def pytest_terminal_summary(terminalreporter):
    if harness.FIGURES:
        terminalreporter.section("pgwarden figures")
        for test, what, value, unit in harness.FIGURES:
            v = "%.1f" % value if isinstance(value, float) else str(value)
            terminalreporter.write_line("%-60s %-45s %8s %s" % (test, what, v, unit))


def pytest_unconfigure(config):
    harness.cleanup_all()


@pytest.fixture(scope="session", autouse=True)
def pgwarden_bin():
    if not os.access(harness.PGWARDEN_BIN, os.X_OK):
        pytest.fail("pgwarden binary %s is missing: build it with `make asan` (or set PGWARDEN_BIN)"
                    % harness.PGWARDEN_BIN, pytrace=False)
    return harness.PGWARDEN_BIN


# Clusters alive right now, so a failing test's report can carry their state.
_active = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for c in list(_active):
            try:
                rep.sections.append(("cluster %s state" % c.scope, c.dump()))
            except Exception as e:  # noqa: BLE001
                rep.sections.append(("cluster %s state" % c.scope, "dump failed: %s" % e))


def _finish(c, request, failed_before):
    """Stop a cluster; raise when a sanitizer reported anything."""
    if c in _active:
        _active.remove(c)
    try:
        c.stop(graceful=True)
    finally:
        reports = c.sanitizer_reports()
        failed = request.session.testsfailed > failed_before or bool(reports)
        c.cleanup(keep_logs=failed)
    if reports:
        pytest.fail("sanitizer report in a node log:\n" + reports, pytrace=False)


def _new_cluster(request, n, start, **kw):
    c = harness.Cluster(n, label=kw.pop("label", "t"), **kw)
    _active.append(c)
    failed_before = request.session.testsfailed
    request.addfinalizer(lambda: _finish(c, request, failed_before))
    if start:
        c.start()
        c.wait_healthy(BOOT_TIMEOUT)
    return c


@pytest.fixture(scope="class")
def cluster(request):
    """A started, healthy 3-node cluster shared by the tests of one class (in file order)."""
    return _new_cluster(request, 3, True, label="k")


@pytest.fixture
def make_cluster(request):
    """make_cluster(n=3, start=True, overrides=None, node_overrides=None) -> Cluster."""
    def make(n=3, start=True, **kw):
        return _new_cluster(request, n, start, **kw)
    return make
