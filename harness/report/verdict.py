"""The run's verdict: per-test results in; outcome, diagnosis, coverage and (for verify-fix) gates out.

reports/verdict.json is a contract (schema below in the README). Outcomes and exit statuses:

| outcome        | exit | when                                                                        |
|----------------|------|-----------------------------------------------------------------------------|
| `passed`       | 0    | nothing failed, and every golden-path step the selection included was verified |
| `failed`       | 1    | a test failed (or pytest's own status: 2 interrupted, 4 usage error, 5 no tests) |
| `incomplete`   | 6    | nothing failed, but a selected golden-path step could not run (e.g. no bypass key) |
| `inconclusive` | 7    | verify-fix: no gate failed, but some could not be measured                   |
| `error`        | 4, 5 | a usage error (a bad setting, an unknown marker), or no test selected: no verdict on staging |
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.report.cause import Cause
from harness.report.coverage import Coverage, TestOutcome, compute, incomplete
from harness.report.diagnosis import Diagnosis, diagnose
from harness.report.gates import FixVerdict, Gate, evaluate
from harness.report.gates import verdict as fix_verdict_of
from harness.text import reason

SCHEMA_VERSION = 3
EXIT_INCOMPLETE = 6
EXIT_INCONCLUSIVE = 7

TestStatus = Literal["passed", "failed", "broken", "skipped"]
RunOutcome = Literal["passed", "failed", "incomplete", "inconclusive", "error"]
EXIT_USAGE = 4
EXIT_NO_TESTS = 5
_FIX_OUTCOMES: dict[str, RunOutcome] = {
    "FIXED": "passed",
    "NOT FIXED": "failed",
    "INCONCLUSIVE": "inconclusive",
}


@dataclass
class TestResult:
    __test__ = False

    nodeid: str
    markers: list[str]
    status: TestStatus
    title: str | None = None
    capabilities: list[str] = field(default_factory=list)
    category: str | None = None
    kind: str | None = None
    known_issue: str | None = None
    signature: str | None = None  # the known issue's signature that labelled it
    service: str | None = None
    side_endpoint: bool = False
    attempts: int = 1
    flaky: bool = False
    duration_s: float = 0.0
    message: str | None = None
    gate: str | None = None
    gate_figures: dict[str, Any] | None = None


@dataclass(frozen=True)
class FailureGroup:
    """Failures of one cause (same category, finding, known issue and service): one line with a count
    and the tests' names, wherever the verdict is read."""

    category: str
    kind: str | None
    known_issue: str | None
    service: str | None
    reason: str  # the first test's message without its category tag and per-test pointers
    tests: tuple[str, ...]  # node ids

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"count": len(self.tests), "tests": list(self.tests)}


def group_failures(failures: Sequence[TestResult]) -> list[FailureGroup]:
    """One group per cause, the largest first (ties in category order)."""
    groups: dict[tuple[str, str | None, str | None, str | None], list[TestResult]] = {}
    for test in sorted(failures, key=lambda t: t.nodeid):
        groups.setdefault((test.category or "", test.kind, test.known_issue, test.service), []).append(test)
    made = [
        FailureGroup(*key, reason(tests[0].message), tuple(t.nodeid for t in tests))
        for key, tests in groups.items()
    ]
    return sorted(made, key=lambda g: (-len(g.tests), g.category))


@dataclass
class Verdict:
    environment: str
    targets: dict[str, str]
    started_at: str
    duration_s: float
    tests: list[TestResult] = field(default_factory=list)
    selected: list[TestResult] = field(default_factory=list)  # selected but never reported (not reached)
    verify: bool = False  # a post-fix verification run: the gates decide
    measurements: dict[str, Any] = field(default_factory=dict)
    cause: Cause | None = None  # a known issue weighed against the platform's own record
    usage_error: str | None = None  # what stopped the run before it tested anything

    @property
    def counts(self) -> dict[str, int]:
        statuses = Counter(t.status for t in self.tests)
        return {
            "passed": statuses["passed"],
            "failed": statuses["failed"],
            "broken": statuses["broken"],
            "skipped": statuses["skipped"],
            "flaky": sum(t.flaky for t in self.tests),
        }

    @property
    def failures(self) -> list[TestResult]:
        return [t for t in self.tests if t.status in ("failed", "broken")]

    @property
    def failure_groups(self) -> list[FailureGroup]:
        return group_failures(self.failures)

    @property
    def diagnosis(self) -> Diagnosis:
        return diagnose(self.tests, self.cause)

    @property
    def coverage(self) -> list[Coverage]:
        outcomes = [TestOutcome(tuple(t.capabilities), t.status, t.message) for t in self.tests]
        outcomes += [TestOutcome(tuple(t.capabilities), "not_reached") for t in self.selected]
        return compute(outcomes)

    @property
    def incomplete(self) -> list[Coverage]:
        return incomplete(self.coverage)

    @property
    def gates(self) -> list[Gate]:
        return evaluate(self.tests) if self.verify else []

    @property
    def fix_verdict(self) -> FixVerdict | None:
        return fix_verdict_of(self.gates) if self.verify else None

    def outcome(self, pytest_exit: int) -> RunOutcome:
        if pytest_exit in (EXIT_USAGE, EXIT_NO_TESTS) and not self.tests:
            return "error"  # nothing was tested: no verdict on staging
        if self.verify and pytest_exit in (0, 1):
            return _FIX_OUTCOMES[fix_verdict_of(self.gates)]
        if pytest_exit != 0:
            return "failed"
        return "incomplete" if self.incomplete else "passed"

    def exit_status(self, pytest_exit: int) -> int:
        """The process's exit status: the outcome's, or pytest's own when it says more."""
        outcome = self.outcome(pytest_exit)
        if outcome == "passed":
            return 0
        if outcome == "incomplete":
            return EXIT_INCOMPLETE
        if outcome == "inconclusive":
            return EXIT_INCONCLUSIVE
        return pytest_exit or 1

    def to_json(self, pytest_exit: int, headline: str) -> dict[str, Any]:
        diagnosis = self.diagnosis
        body: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "environment": self.environment,
            "targets": self.targets,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "outcome": self.outcome(pytest_exit),
            "exit_status": self.exit_status(pytest_exit),
            "diagnosis": None if self.outcome(pytest_exit) == "error" else diagnosis.kind,
            "known_issue": diagnosis.known_issue,
            "cause": self.cause.to_dict() if self.cause else None,
            "headline": headline,
            "counts": self.counts,
            "coverage": [c.to_dict() for c in self.coverage],
            "failure_groups": [g.to_dict() for g in self.failure_groups],
            "tests": [asdict(t) for t in sorted(self.tests, key=lambda t: t.nodeid)],
        }
        if self.verify:
            body["slo"] = {
                "verdict": self.fix_verdict,
                "gates": [g.to_dict() for g in self.gates],
                "measurements": self.measurements,
            }
        return body

    def write(self, path: Path, pytest_exit: int, headline: str) -> None:
        write_verdict(path, self.to_json(pytest_exit, headline))


def write_verdict(path: Path, body: dict[str, Any]) -> None:
    """verdict.json, replaced whole (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n")
    tmp.replace(path)


def usage_verdict(message: str, redact: Callable[[str], str]) -> dict[str, Any]:
    """The verdict of a run stopped by a usage error: outcome `error`, no diagnosis, nothing tested."""
    return {
        "schema_version": SCHEMA_VERSION,
        "outcome": "error",
        "exit_status": EXIT_USAGE,
        "diagnosis": None,
        "known_issue": None,
        "cause": None,
        "headline": f"USAGE ERROR: {redact(message)}",
        "counts": {"passed": 0, "failed": 0, "broken": 0, "skipped": 0, "flaky": 0},
        "coverage": [],
        "tests": [],
    }
