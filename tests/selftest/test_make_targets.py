"""The make targets as their users run them: exit codes, the verify-fix stories, WORKERS=2 equivalence."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from harness.report.verdict import EXIT_INCONCLUSIVE

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.selftest, pytest.mark.slow]

# Small verification budgets: the stories take seconds, not the staging defaults' minutes.
QUICK_VERIFY = {
    "E2E_VERIFY_GOLDEN_RUNS": "2",
    "E2E_VERIFY_PROBES": "10",
    "E2E_VERIFY_WINDOW_S": "2",
}
STARTUP_GATES = ("startup_success_rate", "db_phase_p95", "db_phase_max")


@dataclass
class MakeRun:
    exit_code: int
    output: str
    reports: Path

    @property
    def verdict(self) -> dict[str, Any]:
        verdict: dict[str, Any] = json.loads((self.reports / "verdict.json").read_text())
        return verdict


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


class MakeRuns(Protocol):
    """What the `runs` fixture gives a test: `make target` with `env`, run once per `name` and shared."""

    def __call__(self, name: str, target: str, **env: str) -> MakeRun: ...


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> MakeRuns:
    cache: dict[str, MakeRun] = {}

    def _run(name: str, target: str, **env: str) -> MakeRun:
        if name not in cache:
            cache[name] = make(target, tmp_path_factory.mktemp(name) / "reports", **env)
        return cache[name]

    return _run


def test_make_help_lists_every_target_and_every_setting() -> None:
    from harness.settings import TABLE

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = next(line for line in makefile.splitlines() if line.startswith(".PHONY:")).split()[1:]
    done = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True)
    said = " ".join(done.stdout.split())
    assert done.returncode == 0 and [t for t in phony if t not in said] == [], done.stdout + done.stderr
    assert [row.name for row in TABLE if f" {row.name} " not in said] == []


def test_e2e_staging_exits_0_on_a_healthy_replica_with_two_workers(runs: MakeRuns) -> None:
    run = runs("e2e-w2", "e2e-staging", WORKERS="2")
    assert (run.exit_code, run.verdict["outcome"]) == (0, "passed"), run.output[-4000:]


def test_e2e_staging_exits_non_zero_on_the_issue_1278_replica(runs: MakeRuns) -> None:
    run = runs("e2e-1278", "e2e-staging", REPLICA_SCENARIO="issue-1278")
    assert (run.exit_code != 0, run.verdict["diagnosis"], run.verdict["known_issue"]) == (
        True, "known_issue", "issue-1278"
    ), run.output[-4000:]  # fmt: skip


def test_reproduce_1278_exits_0_and_counts_its_evidence(runs: MakeRuns) -> None:
    run = runs("reproduce", "reproduce-1278")
    assert run.exit_code == 0 and "reproduced in 6/6 probes" in run.output, run.output[-4000:]


def _gates(run: MakeRun) -> dict[str, dict[str, Any]]:
    return {gate["name"]: gate for gate in run.verdict["slo"]["gates"]}


def test_verify_fix_ends_fixed_from_the_startups_that_followed_the_fix(runs: MakeRuns) -> None:
    run = runs("verify-fixed", "verify-fix", E2E_LOCAL_FIX_AFTER_S="2", **QUICK_VERIFY)
    gates = _gates(run)
    assert (run.exit_code, run.verdict["slo"]["verdict"], "Issue #1278: FIXED" in run.output) == (
        0,
        "FIXED",
        True,
    ), run.output[-4000:]
    assert all(gates[name]["status"] == "passed" for name in STARTUP_GATES), gates
    assert all(gates[name]["measured"] for name in STARTUP_GATES), gates  # rate, p95, max printed
    ok, finished = str(gates["startup_success_rate"]["measured"]).split(" ", 1)[0].split("/")
    assert ok == finished and int(finished) >= 10, gates["startup_success_rate"]  # "consistently"
    assert "may still be as high as" in gates["startup_success_rate"]["measured"]


def test_verify_fix_records_its_measurements(runs: MakeRuns) -> None:
    slo = runs("verify-fixed", "verify-fix", E2E_LOCAL_FIX_AFTER_S="2", **QUICK_VERIFY).verdict["slo"]
    assert {
        "availability_rate",
        "availability_wilson_lower_95",
        "health_p95_ms",
        "waited_for_health_s",
        "startup_success_rate",
        "database_phase_p95_s",
        "database_phase_max_s",
    } <= set(slo["measurements"])


def test_verify_fix_ends_not_fixed_within_its_bound_when_the_fault_stays(runs: MakeRuns) -> None:
    run = runs(
        "verify-never", "verify-fix", E2E_LOCAL_FIX_AFTER_S="never", E2E_VERIFY_WAIT_S="5", **QUICK_VERIFY
    )
    assert (run.exit_code != 0, "Issue #1278: NOT FIXED" in run.output, run.verdict["slo"]["verdict"]) == (
        True, True, "NOT FIXED"
    ), run.output[-4000:]  # fmt: skip


def test_a_startup_storm_is_not_fixed_with_its_rate_and_failing_phase(runs: MakeRuns) -> None:
    run = runs(
        "verify-storm",
        "verify-fix",
        REPLICA_SCENARIO="startup-storm",
        E2E_LOCAL_FIX_AFTER_S="never",
        **QUICK_VERIFY,
    )
    rate = _gates(run)["startup_success_rate"]
    assert (run.exit_code != 0, run.verdict["slo"]["verdict"], rate["status"]) == (
        True,
        "NOT FIXED",
        "failed",
    ), run.output[-4000:]
    assert "database" in (rate["detail"] or "") and "%" in str(rate["measured"]), rate


def test_slow_database_phases_are_not_fixed_though_every_startup_succeeds(runs: MakeRuns) -> None:
    run = runs(
        "verify-slow-db",
        "verify-fix",
        REPLICA_SCENARIO="slow-db-phase",
        E2E_LOCAL_FIX_AFTER_S="never",
        E2E_SLO_MAX_DB_PHASE_S="1",  # the replica's slow phase takes ~3 s; staging's threshold is 30 s
        **QUICK_VERIFY,
    )
    gates = _gates(run)
    assert (
        run.verdict["slo"]["verdict"],
        gates["startup_success_rate"]["status"],
        gates["db_phase_max"]["status"],
    ) == (
        "NOT FIXED",
        "passed",
        "failed",
    ), run.output[-4000:]


def test_without_startup_evidence_verify_fix_is_inconclusive_and_says_how_to_measure(runs: MakeRuns) -> None:
    run = runs(
        "verify-no-evidence",
        "verify-fix",
        E2E_LOCAL_FIX_AFTER_S="2",
        E2E_STARTUP_EVIDENCE="none",
        **QUICK_VERIFY,
    )
    gates = _gates(run)
    # make exits 2 for any failing recipe; the suite's own status is in the verdict and the summary.
    assert (run.exit_code != 0, run.verdict["exit_status"], run.verdict["slo"]["verdict"]) == (
        True, EXIT_INCONCLUSIVE, "INCONCLUSIVE"
    ), run.output[-4000:]  # fmt: skip
    assert all(gates[name]["status"] == "unmeasured" for name in STARTUP_GATES), gates
    assert "E2E_STARTUP_EVIDENCE" in run.verdict["headline"] and "Issue #1278: INCONCLUSIVE" in run.output


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


def test_two_workers_give_the_same_verdict_and_allure_results_as_one(runs: MakeRuns) -> None:
    serial, parallel = runs("e2e-w0", "e2e-staging"), runs("e2e-w2", "e2e-staging", WORKERS="2")
    assert _essence(serial.verdict) == _essence(parallel.verdict)
    assert _allure_statuses(serial.reports) == _allure_statuses(parallel.reports)
    assert (serial.reports / "allure-results" / "categories.json").read_text() == (
        parallel.reports / "allure-results" / "categories.json"
    ).read_text()


def _good_startups(count: int, at: datetime) -> list[dict[str, Any]]:
    """`count` successful startups as `gcloud logging read --format=json` prints them."""
    entries = []
    for n in range(count):
        started = at + timedelta(minutes=n)
        for offset, text in enumerate(
            (
                "DETERMINISTIC STARTUP SEQUENCE INITIATED",
                " PASS=REDACTED COMPLETED: DATABASE (0.412s)",
                "[U+1F680] DETERMINISTIC STARTUP SEQUENCE COMPLETED SUCCESSFULLY",
            )
        ):
            entries.append(
                {
                    "jsonPayload": {"message": text},
                    "severity": "INFO",
                    "timestamp": (started + timedelta(seconds=offset)).isoformat().replace("+00:00", "Z"),
                    "labels": {"instanceId": f"00f1c3d2instance{n}"},
                    "logName": "projects/netra-staging/logs/run.googleapis.com%2Fstdout",
                    "resource": {
                        "type": "cloud_run_revision",
                        "labels": {
                            "service_name": "netra-backend-staging",
                            "revision_name": "netra-backend-staging-00007-abc",
                            "location": "us-central1",
                        },
                    },
                }
            )
    return entries


def test_four_good_startups_are_too_few_to_close_the_issue(
    runs: MakeRuns, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A record of four successful startups cannot show "consistently": INCONCLUSIVE, non-zero, naming
    how many more are needed and the command that starts them."""
    since = datetime.now(UTC) - timedelta(hours=1)
    record = tmp_path_factory.mktemp("record") / "four-good-startups.json"
    record.write_text(json.dumps(_good_startups(4, since + timedelta(minutes=5))))
    run = runs(
        "verify-four",
        "verify-fix",
        REPLICA_SCENARIO="healthy",
        E2E_LOCAL_FIX_AFTER_S="never",
        E2E_STARTUP_EVIDENCE=f"file:{record}",
        E2E_STARTUP_SINCE=since.isoformat(),
        **QUICK_VERIFY,
    )
    rate = _gates(run)["startup_success_rate"]
    assert (run.exit_code != 0, run.verdict["exit_status"], run.verdict["slo"]["verdict"], rate["status"]) == (
        True, EXIT_INCONCLUSIVE, "INCONCLUSIVE", "unmeasured"
    ), run.output[-4000:]  # fmt: skip
    assert "only 4 finished startup(s) in the window, at least 10 needed (6 more)" in rate["detail"], rate
    assert "gcloud run services update netra-backend-staging" in rate["detail"]
