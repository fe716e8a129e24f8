"""The "no false fence" soak (tests/faults/soak.py), short: about 90 s of load and hiccups
on the leader (PGWF_SOAK_MINUTES overrides; PGWF_SOAK_SEED picks the seed, else one is
drawn and printed), which must end with no fence, no leader change and a sound cluster.

The second test shows that the soak's counter does see a fence: the leader's whole machine
frozen (not alive) until a replica fences it.  The freeze lasts PGWF_SOAK_DEAD_HOLD s
(default 6): a replica sees the frozen leader silent and its lease unrenewed for the
threshold (1 s) after about 1.5 s, and the fence comes well inside the hold.  Run as root:
`tests/run-integration.sh tests/faults/test_soak.py` (about 3 minutes for both)."""

import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
os.environ.setdefault("PGWARDEN_BIN", os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                                   "build", "asan", "pgwarden"))

MINUTES = float(os.environ.get("PGWF_SOAK_MINUTES", "1.5"))
SEED = os.environ.get("PGWF_SOAK_SEED")
DEAD_HOLD = float(os.environ.get("PGWF_SOAK_DEAD_HOLD", "6"))


@pytest.fixture(scope="module")
def soakmod():
    if os.geteuid() != 0:
        pytest.skip("the fault rig needs root (namespaces, cgroups, tmpfs)")
    import harness
    why = harness.preflight()
    if why:
        pytest.skip(why)
    if shutil.which("stress-ng") is None:
        pytest.skip("stress-ng is missing: scripts/install-deps.sh soak")
    import rig
    import soak
    harness.install_handlers()
    harness.become_subreaper()
    rig.remove_stale()
    yield soak
    harness.cleanup_all()


def _run(soak, args):
    a = soak.parse_args(args + (["--seed", SEED] if SEED else []))
    return soak.Soak(a).run()


def _msg(res):
    c = res["counts"]
    return ("seed %s: fences %s (fence-intent %d, BMC power offs %d, leader changes %s, "
            "primary changes %s), fast-takeover decisions %d, problems %s, checker %s; "
            "run dir %s" % (res["seed"], res["fences"], c["fence_intents"], c["bmc_power_offs"],
                            res["leader_changes"], res["primary_changes"],
                            c["fast_takeover_decisions"], res["problems"][:3],
                            res["violations"], res["rundir"]))


def test_soak_no_false_fence(soakmod):
    res = _run(soakmod, ["--minutes", str(MINUTES), "--fast-takeover-after", "1"])
    msg = _msg(res)
    assert sum(res["applied"].values()) > 0, "no event applied: " + msg
    assert res["fences"] == 0, msg
    assert res["counts"]["fast_takeover_decisions"] == 0, msg
    assert not res["problems"], msg
    assert res["violations"] == [], msg
    assert res["passed"], msg


def test_soak_counts_a_real_fence(soakmod):
    """A leader frozen for DEAD_HOLD s is not alive: the same counting code must report
    the fence (fence-intent, BMC power off and leader change all seen)."""
    res = _run(soakmod, ["--minutes", "1.5", "--fast-takeover-after", "1",
                         "--events", "freeze_dead", "--dead-hold", str(DEAD_HOLD),
                         "--stop-on-fence"])
    msg = _msg(res)
    assert res["applied"].get("freeze_dead", 0) >= 1, msg
    assert res["fences"] >= 1, msg
    assert res["counts"]["fence_intents"] >= 1, msg
    assert res["counts"]["bmc_power_offs"] >= 1, msg
    assert res["leader_changes"], msg
    assert not res["passed"], msg
    if res["rundir"] and os.path.isdir(res["rundir"]):
        shutil.rmtree(res["rundir"], ignore_errors=True)   # the expected failure
