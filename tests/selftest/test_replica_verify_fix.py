"""verify-fix's local story gathers the startups its gate needs: after the replica's fix, its rollouts
start new instances until `E2E_SLO_MIN_STARTUPS` startups have finished since the fix, and the
replica's `pytest_e2e_await_startups` holds the gates until the record has them all, in the process
that runs the gates (an xdist worker, where the plugin started nothing, included).

Budgets are small on purpose (two golden runs, ten probes over 2 s): the gates then read the record
seconds after the backend answers, long before ten startups could have happened without the wait.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.selftest.conftest import SuiteRunner

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

MIN_STARTUPS = 10
QUICK_VERIFY = {
    "E2E_VERIFY_GOLDEN_RUNS": "2",
    "E2E_VERIFY_PROBES": "10",
    "E2E_VERIFY_WINDOW_S": "2",
    "E2E_LOCAL_FIX_AFTER_S": "2",
    "REPLICA_INSTANCES": "3",
    "E2E_SLO_MIN_STARTUPS": str(MIN_STARTUPS),
}
RATE = re.compile(r"^(\d+)/(\d+) = ")


def gates(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {gate["name"]: gate for gate in verdict["slo"]["gates"]}


@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "xdist-2"])
def test_after_the_local_fix_the_gate_reads_at_least_ten_good_startups(
    suite: SuiteRunner, workers: int
) -> None:
    xdist = ["-n", str(workers), "--dist", "loadgroup"] if workers else []
    run = suite("issue-1278", "verify_fix", extra_env=QUICK_VERIFY, extra_args=xdist)
    measured = gates(run.verdict)
    rate = RATE.match(str(measured["startup_success_rate"]["measured"]))
    print(f"{workers} workers: startup_success_rate {measured['startup_success_rate']['measured']}")
    assert (run.verdict["slo"]["verdict"], rate is not None) == ("FIXED", True), run.explain()
    assert rate is not None
    ok, finished = int(rate.group(1)), int(rate.group(2))
    assert ok == finished >= MIN_STARTUPS, measured["startup_success_rate"]
    assert measured["no_retry_needed"]["status"] == "passed", measured["no_retry_needed"]
    assert {g["status"] for g in measured.values()} == {"passed"}, measured
