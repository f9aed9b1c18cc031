"""The renderers render the verdict's body and decide nothing: the terminal box, the job summary and
Allure's first page say what the body says, and only that (pure data: no pytest run)."""

from __future__ import annotations

import ast
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.nightly.record import NightRecord, TrackedCause
from harness.report import allure_files, box, job_summary
from harness.report.cause import Cause, weigh
from harness.report.verdict import EXIT_USAGE, RunFacts, TestResult, TestStatus, conclude
from harness.startup.records import StartupRecord
from harness.startup.sources import StartupWindow
from harness.startup.tally import tally

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = (
    "[infra.gateway] backend still down: 503 page from a gateway — GET /health -> 503 text/html "
    "(known issue issue-1278)"
)


def _test(name: str, status: TestStatus, category: str | None = None, **extra: Any) -> TestResult:
    message = extra.pop("message", f"[{category}] {name} went wrong" if category else None)
    return TestResult(
        nodeid=f"tests/e2e_staging/test_x.py::{name}",
        markers=["health"],
        status=status,
        capabilities=[extra.pop("capability", "backend_health")],
        category=category,
        service="backend",
        message=message,
        **extra,
    )


def _body(*tests: TestResult, pytest_exit: int = 1, **facts: Any) -> dict[str, Any]:
    return conclude(
        RunFacts(
            pytest_exit=pytest_exit,
            environment="staging",
            targets={"backend": "https://api", "auth": "https://auth", "ws": "wss://api/ws"},
            duration_s=2.5,
            tests=tests,
            **({"started_at": "2026-12-07T03:17:00Z"} | facts),
        )
    ).body()


def _night(day: int, outcome: str, flaky: tuple[str, ...] = ()) -> NightRecord:
    cause = TrackedCause("issue-1278", "known issue issue-1278", "issue-1278", "confirmed", 1278)
    return NightRecord(
        run_id=str(day),
        started_at=f"2026-12-0{day}T03:17:00Z",
        job="e2e-staging",
        environment="staging",
        target="https://api",
        outcome=outcome,
        diagnosis="known_issue" if outcome == "failed" else "healthy",
        cause=cause if outcome == "failed" else None,
        url=f"https://github.com/o/r/actions/runs/{day}",
        revisions=("netra-backend-staging-00123-rep",),
        flaky=flaky,
    )


FLAKY = "tests/e2e_staging/test_x.py::t_flaky"


T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def _recorded(*records: StartupRecord) -> Cause:
    """The cause of a 503 on /health, weighed against these startups."""
    window = StartupWindow(
        "file:x", T0, T0 + timedelta(hours=1), tally=tally(records, since=T0, until=T0 + timedelta(hours=1))
    )
    labelled = TestResult(
        nodeid="x::t",
        markers=[],
        status="broken",
        known_issue="issue-1278",
        signature="gateway-503-on-backend-health",
    )
    cause = weigh([labelled], lambda: window)
    assert cause is not None
    return cause


def _died(why: str, after_s: float) -> StartupRecord:
    """A startup of the real build that died in its database phase after `after_s`, `why` before its error."""
    return StartupRecord(
        instance="i-1", revision="r-1", started_at=T0 + timedelta(minutes=1), db_phase_s=after_s,
        outcome="failed", failed_phase="database", exit_code=3, app_outcome="failed", db_timeout_s=95.0,
        error="Database schema validation failed - schema inconsistent", reason=why, reason_lines=(why,),
    )  # fmt: skip


REFUSED = (
    'Database connection error after 0.024s (attempt 1/3): password=REDACTED failed for user "netra_staging"'
)
BODIES = {
    "healthy": lambda: _body(_test("t_ok", "passed"), _test("t_flaky", "passed", flaky=True), pytest_exit=0),
    "known issue, confirmed": lambda: _body(
        _test("t_down", "broken", "infra.gateway", known_issue="issue-1278", message=GATEWAY),
        _test("t_login", "passed", capability="login"),
        cause=Cause("issue-1278", "confirmed", "the record confirms it", "3 of 3 startups died"),
    ),
    "product defect": lambda: _body(_test("t_chat", "failed", "product.golden_path", capability="chat")),
    "known issue ruled out by a kind": lambda: _body(
        _test("t_down", "broken", "infra.gateway", message=GATEWAY),
        cause=_recorded(_died(REFUSED, 0.07)),
    ),
    "known issue confirmed by a kind": lambda: _body(
        _test("t_down", "broken", "infra.gateway", known_issue="issue-1278", message=GATEWAY),
        cause=_recorded(_died("Database connection timeout after 10.004s (attempt 2/3)", 107.3)),
    ),
    "unrecognised startup failure": lambda: _body(
        _test("t_down", "broken", "infra.gateway", message=GATEWAY),
        cause=_recorded(_died("PHASE FAILED: DATABASE - SSL handshake failed badly (after 0.05s)", 0.05)),
    ),
    "verify-fix": lambda: _body(
        _test("t_gate", "passed", gate="health", gate_figures={"measured": "1s", "threshold": "<= 60s"}),
        _test("t_rate", "skipped", gate="startup_success_rate", message="gcloud is not installed"),
        pytest_exit=0,
        verified_issue="issue-1278",
    ),
    "usage error": lambda: _body(pytest_exit=EXIT_USAGE, usage_error="unknown marker 'golden-path'"),
    "red for nights, a test flaky over them": lambda: _body(
        _test("t_down", "broken", "infra.gateway", known_issue="issue-1278", message=GATEWAY),
        _test("t_flaky", "passed", flaky=True),
        cause=Cause("issue-1278", "confirmed", "the record confirms it", "3 of 3 startups died"),
        revisions=("netra-backend-staging-00124-rep",),
        history=(_night(4, "passed", (FLAKY,)), _night(5, "failed"), _night(6, "failed", (FLAKY,))),
    ),
    "green again": lambda: _body(
        _test("t_ok", "passed"), pytest_exit=0, history=(_night(5, "failed"), _night(6, "failed"))
    ),
    "a known issue past its review date": lambda: _body(
        _test("t_down", "broken", "infra.gateway", known_issue="issue-1278", message=GATEWAY),
        cause=Cause("issue-1278", "confirmed", "the record confirms it", "3 of 3 startups died"),
        started_at="2026-12-22T03:17:00Z",
    ),
}


@pytest.mark.parametrize("story", BODIES)
def test_every_renderer_leads_with_the_bodys_headline(story: str) -> None:
    body = BODIES[story]()
    lines = box.render(body, "reports/verdict.json")
    assert lines[2].endswith(body["headline"])
    assert f"**{body['headline']}**" in job_summary.render(body)
    assert allure_files.first_page(body)["diagnosis"] == body["headline"]
    assert allure_files.report_name(body) == f"Staging validation: {body['label']}"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


WORDS = ("headline", "owner", "label")


def _with_sentinels(body: dict[str, Any]) -> dict[str, Any]:
    """The same body with every sentence a renderer shows replaced by a word no code would compute."""
    marked = copy.deepcopy(body)
    for key in WORDS:
        marked[key] = f"SENTINEL-{key}"
    for n, group in enumerate(marked["failure_groups"]):
        group["reason"], group["title"] = f"SENTINEL-reason-{n}", f"SENTINEL-title-{n}"
    if marked.get("cause"):
        marked["cause"]["evidence"] = "SENTINEL-evidence"
    kind = (marked.get("cause") or {}).get("kind")
    if kind:
        for key in ("title", "who_acts", "next_step", "quoted"):
            kind[key] = f"SENTINEL-kind-{key}"
        kind["lines"] = [f"SENTINEL-kind-line-{n}" for n, _ in enumerate(kind["lines"])]
    for n, gate in enumerate((marked.get("slo") or {}).get("gates", [])):
        gate["measured"], gate["detail"] = f"SENTINEL-measured-{n}", f"SENTINEL-detail-{n}"
    if marked.get("streak"):
        marked["streak"]["text"] = "SENTINEL-streak"
        for n, flaky in enumerate(marked["streak"]["flaky"]):
            flaky["text"] = f"SENTINEL-flaky-{n}"
    return marked


@pytest.mark.parametrize("story", BODIES)
def test_a_renderer_says_what_the_body_says_not_what_it_would_have_decided(story: str) -> None:
    """Change the body's words and every renderer changes with them: none recomputes a headline, an
    owner, a cause's evidence, a group's reason or a gate's figure."""
    body = BODIES[story]()
    marked = _with_sentinels(body)
    shown = {
        "box": "\n".join(box.render(marked, "v.json")),
        "job summary": job_summary.render(marked),
        "allure": json.dumps(allure_files.first_page(marked)) + allure_files.report_name(marked),
    }
    replaced = [s for s in _strings(body) if s not in _strings(marked) and len(s) > 12]
    for where, text in shown.items():
        leaked = [s for s in replaced if s in text]
        assert not leaked, f"{where} shows words the body no longer says: {leaked}"
        assert "SENTINEL-headline" in text, f"{where} does not show the body's headline"
        if body.get("streak"):
            assert "SENTINEL-streak" in text, f"{where} does not show the body's streak"
        for n in range(len((body.get("streak") or {}).get("flaky", []))):
            assert f"SENTINEL-flaky-{n}" in text, f"{where} does not show a test's flakiness over the nights"

    if (body.get("cause") or {}).get("kind"):  # the kind's words, where a person reads the cause
        for where in ("job summary", "allure"):
            for key in ("title", "next_step", "quoted"):
                assert f"SENTINEL-kind-{key}" in shown[where], f"{where} does not show the kind's {key}"
            lines = marked["cause"]["kind"]["lines"]
            assert all(line in shown[where] for line in lines), (
                f"{where} does not show an unrecognised kind's lines"
            )


def test_the_streak_reads_as_the_nights_went() -> None:
    """The words a person reads: how long red, since when, which revisions; the flaky test's count."""
    streak = BODIES["red for nights, a test flaky over them"]()["streak"]
    assert streak["text"] == (
        "red for 3 nights, since 2026-12-05 03:17 UTC "
        "(revision netra-backend-staging-00123-rep → netra-backend-staging-00124-rep)"
    )
    assert [f["text"] for f in streak["flaky"]] == ["t_flaky flaky 3 of the last 4 nights"]
    assert BODIES["green again"]()["streak"]["text"] == "green again after 2 red nights"
    assert BODIES["healthy"]()["streak"] is None  # no history kept: nothing said about the nights


def test_a_known_issue_past_its_review_date_is_listed_as_new() -> None:
    body = BODIES["a known issue past its review date"]()
    assert body["headline"].startswith(
        "RE-TRIAGE: issue-1278 past its review date 2026-12-21: re-triage (owner: the platform/infrastructure team"
    )
    assert body["tracked_cause"]["key"] == "retriage:issue-1278"
    summary = job_summary.render(body)
    assert "### New failures" in summary and "### Known issues" not in summary
    within = BODIES["known issue, confirmed"]()
    assert "### Known issues" in job_summary.render(within) and "### New failures" not in job_summary.render(
        within
    )


# Renderers import nothing that could decide: the box and the job summary only text helpers; Allure's
# launch files also the catalogue (its categories), the redactor and the taxonomy.
ALLOWED = {
    "harness/report/box.py": {"harness.text"},
    "harness/report/job_summary.py": {"harness.text"},
    "harness/report/allure_files.py": {
        "harness.known_issues",
        "harness.allure_steps",
        "harness.redact",
        "harness.taxonomy",
        "harness.text",
    },
}


@pytest.mark.parametrize("path", ALLOWED)
def test_a_renderer_imports_nothing_that_decides(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text())
    imported = {
        f"{node.module}.{alias.name}" if node.module == "harness" else str(node.module)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness")
        for alias in node.names
    }
    assert imported <= ALLOWED[path], f"{path} imports {sorted(imported - ALLOWED[path])}"
