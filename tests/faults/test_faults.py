"""A short fault campaign for `make test`: two seeds, two faults each, on real machines
(tests/faults/rig.py); fails when the checker reports a violation, when the cluster did not
recover within the bound after the last heal, or when a run broke.  The run directory of a
failing seed is kept and named in the message; replay it with
`tests/faults/run.py --runs 1 --seed S --k 2`.  PGWF_TEST_SEEDS="7 8" picks other seeds."""

import argparse
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

SEEDS = [int(s) for s in os.environ.get("PGWF_TEST_SEEDS", "101 102").split()]


@pytest.fixture(scope="module")
def runmod():
    import harness
    import rig
    why = rig.setup_run()
    if why:
        pytest.skip(why)
    import run
    yield run
    harness.cleanup_all()


@pytest.mark.parametrize("seed", SEEDS)
def test_fault_campaign_seed(runmod, seed):
    a = argparse.Namespace(daemon="pgwarden", timing="tight", async_=False, faults=None, k=2,
                           recovery_bound=None, keep=False)
    s = runmod.one_run(seed, a)
    msg = "seed %d (%s): violations %s, recovered %s, error %s; run dir %s" % (
        seed, ",".join(s["faults"]), s["violations"], s["recovered"], s["error"], s["rundir"])
    assert not s["error"], msg
    assert s["violations"] is not None or not os.path.exists(os.path.join(HERE, "checker.py")), msg
    assert not s["violations"], msg
    assert s["recovered"], msg
