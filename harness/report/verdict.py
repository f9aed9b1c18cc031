"""The run's verdict, decided once: the run's facts in, everything it concluded out.

`conclude(RunFacts)` computes, once, the outcome, the exit status, the diagnosis, the headline, who
must act, the cause, the coverage, the failure groups and (verify-fix) the gates, into one frozen
`Verdict`; `Verdict.body()` is reports/verdict.json (a contract: README, docs/verdict.schema.json). The
terminal box, the job summary and Allure's first page render that body and decide nothing. A run
stopped by a usage error is concluded the same way.

| outcome        | exit | when                                                                        |
|----------------|------|-----------------------------------------------------------------------------|
| `passed`       | 0    | nothing failed, and every golden-path step the selection included was verified |
| `failed`       | 1    | a test failed (or pytest's own status when it says more: 2 interrupted)        |
| `incomplete`   | 6    | nothing failed, but a selected golden-path step could not run (e.g. no bypass key) |
| `inconclusive` | 7    | verify-fix: no gate failed, but some could not be measured                   |
| `error`        | 4, 5 | a usage error (a bad setting, an unknown marker), or no test selected: no verdict on staging |
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from harness import known_issues
from harness.nightly.record import NightRecord, RunIdentity, TrackedCause, parse_time
from harness.nightly.streak import Streak, Tonight, streak
from harness.redact import redact
from harness.report.cause import Cause
from harness.report.coverage import Coverage, TestOutcome, compute, incomplete
from harness.report.diagnosis import Diagnosis, diagnose
from harness.report.gates import FixVerdict, Gate, evaluate, fix_verdict
from harness.report.headline import Decided, words
from harness.report.tracked_cause import past_review, retriage_words, tracked_cause
from harness.taxonomy import Category
from harness.text import reason

SCHEMA_VERSION = 5
EXIT_INCOMPLETE = 6
EXIT_INCONCLUSIVE = 7
EXIT_USAGE = 4
EXIT_NO_TESTS = 5

TestStatus = Literal["passed", "failed", "broken", "skipped"]
RunOutcome = Literal["passed", "failed", "incomplete", "inconclusive", "error"]
_FIX_OUTCOMES: dict[FixVerdict, RunOutcome] = {
    "FIXED": "passed",
    "NOT FIXED": "failed",
    "INCONCLUSIVE": "inconclusive",
}
_EXIT_OF: dict[RunOutcome, int] = {
    "passed": 0,
    "incomplete": EXIT_INCOMPLETE,
    "inconclusive": EXIT_INCONCLUSIVE,
}


@dataclass(frozen=True)
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

    @property
    def name(self) -> str:
        return self.nodeid.split("::")[-1]


@dataclass(frozen=True)
class FailureGroup:
    """Failures of one cause (same category, finding, known issue and service): one line with a count
    and the tests' names, wherever the verdict is read."""

    category: str
    title: str  # the category's description
    kind: str | None
    known_issue: str | None
    link: str | None  # the known issue's link
    service: str | None
    reason: str  # the first test's message without its category tag and per-test pointers
    tests: tuple[str, ...]  # node ids
    new: bool = True  # not a known issue's, or a known issue's past its review date: someone must look

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"count": len(self.tests), "tests": list(self.tests)}


def group_failures(
    failures: Sequence[TestResult], expired: frozenset[str] = frozenset()
) -> tuple[FailureGroup, ...]:
    """One group per cause, the largest first (ties in category order); a group is new unless a known
    issue still within its review date explains it."""
    groups: dict[tuple[str, str | None, str | None, str | None], list[TestResult]] = {}
    for test in sorted(failures, key=lambda t: t.nodeid):
        groups.setdefault((test.category or "", test.kind, test.known_issue, test.service), []).append(test)
    made = [
        FailureGroup(
            category,
            Category(category).description if category else "",
            kind,
            issue,
            _link(issue),
            service,
            reason(tests[0].message),
            tuple(t.nodeid for t in tests),
            new=issue is None or issue in expired,
        )
        for (category, kind, issue, service), tests in groups.items()
    ]
    return tuple(sorted(made, key=lambda g: (-len(g.tests), g.category)))


def _link(issue_id: str | None) -> str | None:
    issue = known_issues.get(issue_id)
    return issue.link if issue else None


@dataclass(frozen=True)
class RunFacts:
    """What the run observed: the verdict's only input."""

    pytest_exit: int
    environment: str | None = None
    targets: Mapping[str, str] = field(default_factory=dict)
    started_at: str | None = None
    duration_s: float = 0.0
    tests: tuple[TestResult, ...] = ()
    not_reached: tuple[TestResult, ...] = ()  # selected, never reported
    verified_issue: str | None = None  # a verify-fix run: the known issue whose fix it verifies
    measurements: Mapping[str, Any] = field(default_factory=dict)
    cause: Cause | None = None  # a known issue weighed against the platform's own record
    usage_error: str | None = None  # what stopped the run before it tested anything
    judged_the_replica: bool = False  # the targets were the local replica, not staging
    # The backend revisions the startup record showed (when the cause read it).
    revisions: tuple[str, ...] = ()
    job: str | None = None  # the job this run is a night of (e2e-staging, reproduce-1278, verify-fix)
    run: RunIdentity | None = None
    # The nights before this one, of this job and environment (oldest first); None: no history kept,
    # nothing is said about streaks.
    history: tuple[NightRecord, ...] | None = None


@dataclass(frozen=True)
class Verdict:
    """Everything the run concluded, each fact computed once by `conclude`."""

    facts: RunFacts
    outcome: RunOutcome
    exit_status: int
    diagnosis: Diagnosis | None  # None: nothing was tested
    headline: str
    owner: str
    label: str
    counts: Mapping[str, int]
    coverage: tuple[Coverage, ...]
    failure_groups: tuple[FailureGroup, ...]
    gates: tuple[Gate, ...]
    fix: FixVerdict | None
    tracked: TrackedCause | None = None  # the cause a tracker follows (None: a green night)
    streak: Streak | None = None  # what changed since the nights before (None: no history)
    review: Mapping[str, Any] | None = None  # the diagnosis's known issue: its owner and review date

    def body(self) -> dict[str, Any]:
        """verdict.json: what every renderer reads."""
        facts = self.facts
        cause = facts.cause
        body: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "environment": facts.environment,
            "targets": dict(facts.targets),
            "started_at": facts.started_at,
            "duration_s": round(facts.duration_s, 3),
            "outcome": self.outcome,
            "exit_status": self.exit_status,
            "diagnosis": self.diagnosis.kind if self.diagnosis else None,
            "known_issue": self.diagnosis.known_issue if self.diagnosis else None,
            "headline": self.headline,
            "label": self.label,
            "owner": self.owner,
            "cause": cause.to_dict() | {"link": _link(cause.known_issue)} if cause else None,
            "counts": dict(self.counts),
            "coverage": [c.to_dict() for c in self.coverage],
            "failure_groups": [g.to_dict() for g in self.failure_groups],
            "reproduced": [
                {"known_issue": t.known_issue, "test": t.name, "message": t.message}
                for t in _sorted(facts.tests)
                if t.status == "passed" and t.known_issue
            ],
            "flaky": [t.name for t in _sorted(facts.tests) if t.flaky],
            "tests": [asdict(t) for t in _sorted(facts.tests)],
            "job": facts.job,
            "run": facts.run.to_dict() if facts.run else None,
            "revisions": list(facts.revisions),
            "known_issue_review": dict(self.review) if self.review else None,
            "tracked_cause": self.tracked.to_dict() if self.tracked else None,
            "streak": self.streak.to_dict() if self.streak else None,
        }
        if self.fix is not None:
            body["slo"] = {
                "issue": facts.verified_issue,
                "issue_name": known_issues.name_of(facts.verified_issue),
                "verdict": self.fix,
                "gates": [g.to_dict() for g in self.gates],
                "measurements": dict(facts.measurements),
            }
        return body


def _sorted(tests: Sequence[TestResult]) -> list[TestResult]:
    return sorted(tests, key=lambda t: t.nodeid)


def conclude(facts: RunFacts) -> Verdict:
    """The verdict of one run, every fact decided here, once."""
    tests = facts.tests
    nothing_tested = facts.usage_error is not None or (
        facts.pytest_exit in (EXIT_USAGE, EXIT_NO_TESTS) and not tests
    )
    outcomes = [TestOutcome(tuple(t.capabilities), t.status, t.message) for t in tests]
    outcomes += [TestOutcome(tuple(t.capabilities), "not_reached") for t in facts.not_reached]
    coverage = tuple(compute(outcomes))
    verify = facts.verified_issue is not None and not nothing_tested
    gates = tuple(evaluate(tests)) if verify else ()
    fix = fix_verdict(gates) if verify else None
    outcome: RunOutcome
    if nothing_tested:
        outcome = "error"
    elif fix is not None and facts.pytest_exit in (0, 1):
        outcome = _FIX_OUTCOMES[fix]
    elif facts.pytest_exit != 0:
        outcome = "failed"
    else:
        outcome = "incomplete" if incomplete(coverage) else "passed"
    exit_status = _EXIT_OF.get(outcome, facts.pytest_exit or 1)
    if outcome == "error" and facts.usage_error is not None:
        exit_status = EXIT_USAGE
    diagnosis = None if nothing_tested else diagnose(tests, facts.cause)
    failures = [t for t in tests if t.status in ("failed", "broken")]
    day = parse_time(facts.started_at).date() if facts.started_at else None
    expired = frozenset(
        issue.id for issue in known_issues.load() if day is not None and issue.past_review(day)
    )
    issue_id = diagnosis.known_issue if diagnosis else None
    retriage = (
        retriage_words(issue_id)
        if diagnosis and diagnosis.kind == "known_issue" and past_review(issue_id, day) and issue_id
        else None
    )
    tracked = tracked_cause(
        outcome=outcome, diagnosis=diagnosis, cause=facts.cause, failures=failures, day=day
    )
    night = _streak(facts, outcome, tracked)
    said = words(
        Decided(
            outcome=outcome,
            diagnosis=diagnosis,
            coverage=coverage,
            failures=failures,
            cause=facts.cause,
            gates=gates,
            fix=fix,
            verified_issue=facts.verified_issue,
            usage_error=redact(facts.usage_error) if facts.usage_error else None,
            nothing_selected=facts.pytest_exit == EXIT_NO_TESTS,
            judged_the_replica=facts.judged_the_replica,
            retriage=retriage,
            streak=night.text if night else None,
        )
    )
    statuses = Counter(t.status for t in tests)
    counts = {s: statuses[s] for s in ("passed", "failed", "broken", "skipped")}
    return Verdict(
        facts=facts,
        outcome=outcome,
        exit_status=exit_status,
        diagnosis=diagnosis,
        headline=said.headline,
        owner=said.owner,
        label=said.label,
        counts=counts | {"flaky": sum(t.flaky for t in tests)},
        coverage=coverage,
        failure_groups=group_failures(failures, expired),
        gates=gates,
        fix=fix,
        tracked=tracked,
        streak=night,
        review=_review(issue_id, day),
    )


def _streak(facts: RunFacts, outcome: RunOutcome, tracked: TrackedCause | None) -> Streak | None:
    """Tonight against the nights before, when a history is kept (and the run has a time)."""
    if facts.history is None or facts.started_at is None:
        return None
    tonight = Tonight(
        started_at=facts.started_at,
        red=outcome != "passed",
        cause=tracked,
        revisions=facts.revisions,
        flaky=tuple(sorted(t.nodeid for t in facts.tests if t.flaky)),
    )
    return streak(facts.history, tonight)


def _review(issue_id: str | None, day: date | None) -> dict[str, Any] | None:
    """The diagnosis's known issue: who answers for it, until when, and whether that date has passed."""
    issue = known_issues.get(issue_id)
    if issue is None:
        return None
    return {
        "known_issue": issue.id,
        "owner": issue.owner,
        "review_by": issue.review_by.isoformat(),
        "past": day is not None and issue.past_review(day),
        "tracker": issue.tracker,
    }


def write_verdict(path: Path, body: Mapping[str, Any]) -> None:
    """verdict.json, replaced whole (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n")
    tmp.replace(path)
