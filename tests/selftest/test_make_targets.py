"""The make targets as their users run them: exit codes, the verify-fix stories, WORKERS=2 equivalence."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.selftest, pytest.mark.slow]

# Small verification budgets: the stories take seconds, not the staging defaults' minutes.
QUICK_VERIFY = {
    "E2E_VERIFY_GOLDEN_RUNS": "2",
    "E2E_VERIFY_PROBES": "10",
    "E2E_VERIFY_WINDOW_S": "2",
}


@dataclass
class MakeRun:
    exit_code: int
    output: str
    reports: Path

    @property
    def verdict(self) -> dict[str, Any]:
        return json.loads((self.reports / "verdict.json").read_text())


def make(target: str, reports: Path, **env: str) -> MakeRun:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("E2E_", "REPLICA_", "PYTEST_", "MAKE"))}
    done = subprocess.run(
        ["make", "--no-print-directory", target, f"REPORTS={reports}"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return MakeRun(done.returncode, done.stdout + done.stderr, reports)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache: dict[str, MakeRun] = {}

    def _run(name: str, target: str, **env: str) -> MakeRun:
        if name not in cache:
            cache[name] = make(target, tmp_path_factory.mktemp(name) / "reports", **env)
        return cache[name]

    return _run


def test_e2e_staging_exits_0_on_a_healthy_replica_with_two_workers(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs("e2e-w2", "e2e-staging", WORKERS="2")
    assert (run.exit_code, run.verdict["outcome"]) == (0, "passed"), run.output[-4000:]


def test_e2e_staging_exits_non_zero_on_the_issue_1278_replica(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs("e2e-1278", "e2e-staging", REPLICA_SCENARIO="issue-1278")
    assert (run.exit_code != 0, run.verdict["diagnosis"]) == (True, "issue_1278"), run.output[-4000:]


def test_reproduce_1278_exits_0_and_counts_its_evidence(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs("reproduce", "reproduce-1278")
    assert run.exit_code == 0 and "reproduced in 6/6 probes" in run.output, run.output[-4000:]


def test_verify_fix_ends_fixed_when_the_fault_is_cleared_while_it_waits(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs("verify-fixed", "verify-fix", E2E_LOCAL_FIX_AFTER_S="2", **QUICK_VERIFY)
    assert (run.exit_code, "Issue #1278: FIXED" in run.output, run.verdict["slo"]["fixed"]) == (
        0,
        True,
        True,
    ), run.output[-4000:]


def test_verify_fix_records_its_measurements(runs) -> None:  # type: ignore[no-untyped-def]
    slo = runs("verify-fixed", "verify-fix", E2E_LOCAL_FIX_AFTER_S="2", **QUICK_VERIFY).verdict["slo"]
    assert {
        "availability_rate",
        "availability_wilson_lower_95",
        "health_p95_ms",
        "waited_for_health_s",
    } <= set(slo)


def test_verify_fix_ends_not_fixed_within_its_bound_when_the_fault_stays(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(
        "verify-never", "verify-fix", E2E_LOCAL_FIX_AFTER_S="never", E2E_VERIFY_WAIT_S="5", **QUICK_VERIFY
    )
    assert (run.exit_code != 0, "Issue #1278: NOT FIXED" in run.output, run.verdict["slo"]["fixed"]) == (
        True, True, False
    ), run.output[-4000:]  # fmt: skip


def _essence(verdict: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the number of workers (timings and attempt counts may)."""
    tests = [
        (t["nodeid"], t["status"], t["category"], t["known_issue"], t["markers"]) for t in verdict["tests"]
    ]
    return {
        "outcome": verdict["outcome"],
        "diagnosis": verdict["diagnosis"],
        "counts": verdict["counts"],
        "tests": tests,
    }


def _allure_statuses(reports: Path) -> list[tuple[str, str]]:
    results = [json.loads(p.read_text()) for p in (reports / "allure-results").glob("*-result.json")]
    return sorted((r["fullName"], r["status"]) for r in results)


def test_two_workers_give_the_same_verdict_and_allure_results_as_one(runs) -> None:  # type: ignore[no-untyped-def]
    serial, parallel = runs("e2e-w0", "e2e-staging"), runs("e2e-w2", "e2e-staging", WORKERS="2")
    assert _essence(serial.verdict) == _essence(parallel.verdict)
    assert _allure_statuses(serial.reports) == _allure_statuses(parallel.reports)
    assert (serial.reports / "allure-results" / "categories.json").read_text() == (
        parallel.reports / "allure-results" / "categories.json"
    ).read_text()
