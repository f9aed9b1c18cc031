"""The verdict, decided once (`conclude`): diagnosis weighing, coverage, outcome and exit status, who
must act, the label, gates, its file contract, and what the renderers make of its body (pure data: no
pytest run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.report import box
from harness.report.allure_files import categories, mark_flaky_results
from harness.report.job_summary import render
from harness.report.verdict import (
    EXIT_INCOMPLETE,
    EXIT_INCONCLUSIVE,
    EXIT_USAGE,
    RunFacts,
    TestResult,
    TestStatus,
    Verdict,
    conclude,
    write_verdict,
)
from harness.taxonomy import Category

pytestmark = pytest.mark.unit

EVERY_CAPABILITY = {
    "backend_health": "health",
    "auth_health": "health",
    "login": "auth",
    "token_checks": "golden_path",
    "chat": "golden_path",
    "ai_answer": "golden_path",
    "persistence": "golden_path",
    "negative_auth": "auth",
}


def _test(
    status: TestStatus,
    category: str | None = None,
    *,
    known: str | None = None,
    service: str | None = "backend",
    side: bool = False,
    flaky: bool = False,
    capability: str = "backend_health",
    name: str | None = None,
    message: str | None = None,
    **extra: Any,
) -> TestResult:
    return TestResult(
        nodeid=f"t::{name or f'{status}-{category}-{known}-{service}-{capability}-{flaky}'}",
        markers=[EVERY_CAPABILITY.get(capability, "verify_fix")],
        status=status,
        capabilities=[capability],
        category=category,
        known_issue=known,
        service=service,
        side_endpoint=side,
        flaky=flaky,
        attempts=2 if flaky else 1,
        message=message if message is not None else (f"[{category}] x" if category else None),
        **extra,
    )


def _verdict(
    *tests: TestResult,
    verify: bool = False,
    pytest_exit: int | None = None,
    not_reached: tuple[TestResult, ...] = (),
    environment: str = "staging",
) -> Verdict:
    failed = any(t.status in ("failed", "broken") for t in tests)
    return conclude(
        RunFacts(
            pytest_exit=int(failed) if pytest_exit is None else pytest_exit,
            environment=environment,
            targets={"backend": "b", "auth": "a", "ws": "w"},
            started_at="2026-11-27T00:00:00Z",
            duration_s=1.0,
            tests=tests,
            not_reached=not_reached,
            verified_issue="issue-1278" if verify else None,
            judged_the_replica=environment == "local",
        )
    )


def _all_passed() -> list[TestResult]:
    return [_test("passed", capability=c, name=c) for c in EVERY_CAPABILITY]


# -- diagnosis ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tests", "kind", "known"),
    [
        ((_test("passed"),), "healthy", None),
        ((_test("passed", flaky=True),), "healthy", None),  # a retry overcame it: not a finding
        ((_test("passed", known="issue-1278"),), "known_issue", "issue-1278"),  # a passed reproduction
        # #1278 takes the backend down: every backend failure is explained by it
        (
            (_test("broken", "infra.gateway", known="issue-1278"), _test("failed", "product.golden_path")),
            "known_issue",
            "issue-1278",
        ),
        # ...but not a failure of another service
        (
            (
                _test("broken", "infra.gateway", known="issue-1278"),
                _test("failed", "product.auth", service="auth", capability="login"),
            ),
            "product_defect",
            None,
        ),
        # a product known issue is the diagnosis when it labels every failure
        (
            (
                _test(
                    "failed", "product.auth", known="staging-ws-auth-permissive", capability="negative_auth"
                ),
            ),
            "known_issue",
            "staging-ws-auth-permissive",
        ),
        # the real aebb16f build: healthy infrastructure, the product fails: never "infrastructure"
        (
            (_test("failed", "product.golden_path", capability="chat"), _test("passed")),
            "product_defect",
            None,
        ),
        # a service down explains the product failures on it
        ((_test("broken", "infra.timeout"), _test("failed", "product.http")), "infrastructure", None),
        # a side endpoint saying "not ready" while the service serves explains nothing else
        (
            (
                _test("broken", "infra.dependency", side=True),
                _test("failed", "product.golden_path", capability="chat"),
            ),
            "product_defect",
            None,
        ),
        # ...while the service reporting a dependency down on the step's own path does
        (
            (_test("broken", "infra.dependency", capability="chat"), _test("failed", "product.golden_path")),
            "infrastructure",
            None,
        ),
        ((_test("failed", "repro.not_reproduced", capability="reproduction"),), "not_reproduced", None),
        ((_test("broken", "suite.error"),), "suite_error", None),
        ((_test("broken", "suite.error"), _test("failed", "product.http")), "product_defect", None),
    ],
)
def test_diagnosis(tests: tuple[TestResult, ...], kind: str, known: str | None) -> None:
    diagnosis = _verdict(*tests).diagnosis
    assert diagnosis is not None and (diagnosis.kind, diagnosis.known_issue) == (kind, known)


# -- coverage, outcome, exit status --------------------------------------------------------------------


def test_every_capability_verified_is_a_healthy_pass_that_names_them() -> None:
    verdict = _verdict(*_all_passed())
    assert (verdict.outcome, verdict.exit_status) == ("passed", 0)
    assert verdict.headline.startswith("HEALTHY: backend health, auth health, login, token checks")


def test_skipped_golden_path_steps_make_the_run_incomplete_and_say_how_to_fix_it() -> None:
    no_key = "E2E_OAUTH_SIMULATION_KEY is not set: the suite cannot log in to this target"
    tests = [
        _test("passed", capability="backend_health"),
        *(_test("skipped", capability=c, name=c, message=no_key) for c in ("login", "chat", "persistence")),
    ]
    verdict = _verdict(*tests)
    text = verdict.headline
    assert (verdict.outcome, verdict.exit_status) == ("incomplete", EXIT_INCOMPLETE)
    assert (
        text.startswith("INCOMPLETE: login, chat (5 events), persistence not verified")
        and "secret store" in text
    )


def test_a_run_that_selects_less_is_judged_on_what_it_selected() -> None:
    verdict = _verdict(
        _test("passed", capability="backend_health"), _test("passed", capability="auth_health")
    )
    states = {c.name: (c.state, c.reason) for c in verdict.coverage}
    assert (verdict.outcome, states["login"], states["backend_health"]) == (
        "passed",
        ("not_verified", "not selected"),
        ("verified", None),
    )


def test_a_selected_test_never_reported_is_not_reached() -> None:
    verdict = _verdict(_test("passed"), not_reached=(_test("skipped", capability="chat", name="never-ran"),))
    chat = next(c for c in verdict.coverage if c.name == "chat")
    assert (chat.state, chat.reason, verdict.outcome) == (
        "not_verified",
        "not reached: the run ended before its tests ran",
        "incomplete",
    )


def test_a_skipped_negative_test_beside_passed_ones_is_noted_not_incomplete() -> None:
    tests = [
        *_all_passed(),
        _test("skipped", capability="negative_auth", name="expired", message="E2E_JWT_SECRET is not set"),
    ]
    negative = next(c for c in _verdict(*tests).coverage if c.name == "negative_auth")
    assert (negative.state, negative.reason, _verdict(*tests).outcome) == (
        "verified",
        "partly: E2E_JWT_SECRET is not set",
        "passed",
    )


def test_a_failure_outranks_incompleteness() -> None:
    verdict = _verdict(_test("failed", "product.http"), _test("skipped", capability="login"))
    assert (verdict.outcome, verdict.exit_status) == ("failed", 1)


# -- verify-fix gates ---------------------------------------------------------------------------------


def _gate(status: TestStatus, gate: str, *, name: str | None = None, **extra: Any) -> TestResult:
    category = {"failed": "product.slo", "skipped": None}.get(status)
    return _test(status, category, capability="gate", name=name or f"{gate}-{status}", gate=gate, **extra)


def test_every_gate_measured_and_passed_is_fixed() -> None:
    verdict = _verdict(_gate("passed", "health"), _gate("passed", "startup_success_rate"), verify=True)
    assert (verdict.fix, verdict.outcome, verdict.exit_status) == ("FIXED", "passed", 0)


def test_one_failed_gate_is_not_fixed() -> None:
    verdict = _verdict(_gate("passed", "health"), _gate("failed", "db_phase_max"), verify=True)
    assert (verdict.fix, verdict.outcome, verdict.exit_status) == ("NOT FIXED", "failed", 1)


def test_an_unmeasured_gate_is_inconclusive_and_says_why() -> None:
    skipped = _gate(
        "skipped", "startup_success_rate", message="startup evidence unmeasured: gcloud is not installed"
    )
    verdict = _verdict(_gate("passed", "health"), skipped, verify=True)
    text = verdict.headline
    assert (verdict.fix, verdict.exit_status) == ("INCONCLUSIVE", EXIT_INCONCLUSIVE)
    assert "startup_success_rate" in text and "gcloud is not installed" in text


def test_a_pass_that_needed_a_retry_blocks_fixed() -> None:
    verdict = _verdict(_gate("passed", "health"), _gate("passed", "availability", flaky=True), verify=True)
    retry_gate = next(g for g in verdict.gates if g.name == "no_retry_needed")
    assert (verdict.fix, retry_gate.status) == ("NOT FIXED", "failed")


def test_golden_path_runs_share_one_gate() -> None:
    runs = [_gate("passed", "golden_path", name=f"run{n}") for n in (1, 2, 3)]
    gate = next(g for g in _verdict(*runs, verify=True).gates if g.name == "golden_path")
    assert (gate.status, gate.measured) == ("passed", "3/3 passed")


def test_gate_figures_reach_the_verdict_file(tmp_path: Path) -> None:
    figures = {"measured": "3/3 = 100.0%", "threshold": ">= 90%", "detail": "3 ok"}
    verdict = _verdict(_gate("passed", "startup_success_rate", gate_figures=figures), verify=True)
    write_verdict(tmp_path / "v.json", verdict.body())
    gate = json.loads((tmp_path / "v.json").read_text())["slo"]["gates"][0]
    assert (gate["name"], gate["status"], gate["measured"], gate["threshold"]) == (
        "startup_success_rate",
        "passed",
        "3/3 = 100.0%",
        ">= 90%",
    )


# -- the file and the summaries -----------------------------------------------------------------------


def test_verdict_file_follows_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    verdict = _verdict(_test("passed"), _test("broken", "infra.ws"))
    write_verdict(path, verdict.body())
    body = json.loads(path.read_text())
    assert {
        "schema_version", "environment", "targets", "started_at", "duration_s", "outcome", "exit_status",
        "diagnosis", "known_issue", "cause", "headline", "label", "owner", "counts", "coverage",
        "failure_groups", "reproduced", "flaky", "tests", "job", "run", "revisions", "known_issue_review",
        "tracked_cause", "streak",
    } == set(body)  # fmt: skip
    assert (body["schema_version"], body["outcome"], body["diagnosis"], body["exit_status"]) == (
        5,
        "failed",
        "infrastructure",
        1,
    )
    assert {"nodeid", "status", "category", "kind", "known_issue", "service", "capabilities"} <= set(
        body["tests"][0]
    )


def test_summary_leads_with_the_diagnosis_and_groups_one_cause_once() -> None:
    """One cause is one line however its tests' messages differ in their operation and timing."""
    tests = [
        _test(
            "broken",
            "infra.gateway",
            known="issue-1278",
            name=f"t{n}",
            message=f"[infra.gateway] {what}: 503 page from a gateway — GET /health in 0.0{n}s (known issue issue-1278)",
        )
        for n, what in enumerate(
            ("backend still down", "backend health before the chat socket", "backend still down")
        )
    ]
    lines = box.render(_verdict(*tests).body(), "reports/verdict.json")
    assert lines[2].startswith("DIAGNOSIS KNOWN ISSUE issue-1278")
    cause = [line for line in lines if "503 page from a gateway" in line]
    assert cause == [
        "    3 tests [issue-1278]: backend still down: 503 page from a gateway — GET /health in 0.00s"
    ]
    assert any(line.strip() == "t0, t1, t2" for line in lines)


def test_infrastructure_headline_names_the_service_and_the_cause() -> None:
    failure = _test(
        "broken", "infra.unreachable", message="[infra.unreachable] DNS: the name does not resolve"
    )
    assert _verdict(failure).headline.startswith(
        "INFRASTRUCTURE, not the product's code: backend: unreachable (no HTTP response) — DNS: the name does not resolve"
    )


def test_job_summary_separates_known_issues_from_new_failures_and_shows_coverage() -> None:
    verdict = _verdict(
        _test("broken", "infra.gateway", known="issue-1278"),
        _test("failed", "product.auth", service="auth", capability="login"),
    )
    text = render(verdict.body())
    assert text.index("### New failures") < text.index("`product.auth`") < text.index("### Known issues")
    assert "| login | failed |" in text


def test_job_summary_is_one_row_per_cause_with_its_key_fact_and_the_issue_linked() -> None:
    page = (
        "[infra.gateway] backend still down: 503 page from a gateway, not the service's JSON (text/html) — "
        "GET https://api/health -> 503 text/html in 0.0{n}s, page title 'Error 503 (Service Unavailable)!!1' "
        "(known issue issue-1278)"
    )
    tests = [
        _test("broken", "infra.gateway", known="issue-1278", name=f"t{n}", message=page.format(n=n))
        for n in range(4)
    ]
    text = render(_verdict(*tests).body())
    rows = [line for line in text.splitlines() if line.startswith("| 4 | `infra.gateway`")]
    assert len(rows) == 1 and "page title 'Error 503 (Service Unavailable)!!1'" in rows[0]
    assert "[issue-1278](https://github.com/netra-systems/zen/issues/1278)" in rows[0]
    assert "| backend health | failed | backend still down: 503 page from a gateway" in text


def test_job_summary_of_a_usage_error_is_the_error_alone() -> None:
    text = render(conclude(RunFacts(EXIT_USAGE, usage_error="unknown marker 'golden-path'")).body())
    assert text.splitlines()[0] == "## Staging validation: ERROR (exit 4)"
    assert "USAGE ERROR: unknown marker 'golden-path'" in text and "HEALTHY" not in text and "|" not in text


def test_job_summary_shows_the_gates_table() -> None:
    verdict = _verdict(
        _gate("passed", "health", gate_figures={"measured": "8.1s", "threshold": "<= 600s"}), verify=True
    )
    text = render(verdict.body())
    assert "### Issue #1278: FIXED" in text and "| health | PASSED | 8.1s | <= 600s |" in text


def test_allure_categories_put_every_known_issue_first_and_cover_every_code_once() -> None:
    names = [c["name"] for c in categories()]
    assert names[0].startswith("Known issue issue-1278") and names[1].startswith(
        "Known issue staging-ws-auth"
    )
    assert all(sum(n.startswith(f"{code.value} ") for n in names) == 1 for code in Category)


def test_allure_categories_weigh_the_cause_like_the_verdict() -> None:
    ruled_out = {"known_issue": "issue-1278", "status": "ruled_out", "evidence": "x"}
    unconfirmed = {"known_issue": "issue-1278", "status": "unconfirmed", "evidence": "x"}
    assert not any("issue-1278" in c["name"] for c in categories(ruled_out))
    assert categories(unconfirmed)[0]["name"].endswith("(unconfirmed: outside signature only)")


def test_flaky_tag_becomes_allure_flaky_status(tmp_path: Path) -> None:
    result = {"status": "passed", "labels": [{"name": "tag", "value": "flaky"}]}
    (tmp_path / "a-result.json").write_text(json.dumps(result))
    assert mark_flaky_results(tmp_path) == 1
    assert json.loads((tmp_path / "a-result.json").read_text())["statusDetails"]["flaky"] is True


# -- who must act, the label, the local replica -----------------------------------------------------


@pytest.mark.parametrize(
    ("tests", "pytest_exit", "owner"),
    [
        ((_test("passed"),), 0, "nobody (nothing failed)"),
        (
            (_test("skipped", capability="login", message="no key"),),
            0,
            "the run's operator (nothing failed; the run is not complete)",
        ),
        ((_test("broken", "infra.timeout"),), 1, "infrastructure (the platform team)"),
        ((_test("failed", "product.http"),), 1, "product (the service's own code)"),
        ((_test("broken", "suite.error"),), 1, "the validation suite (not staging)"),
        (
            (_test("broken", "infra.gateway", known="issue-1278"),),
            1,
            "infrastructure (known issue issue-1278)",
        ),
        ((), EXIT_USAGE, "the run's operator (the run could not start)"),
    ],
)
def test_the_owner_is_who_must_act(tests: tuple[TestResult, ...], pytest_exit: int, owner: str) -> None:
    assert _verdict(*tests, pytest_exit=pytest_exit).owner == owner


def test_a_usage_error_is_concluded_like_any_run() -> None:
    body = conclude(RunFacts(EXIT_USAGE, usage_error="unknown marker 'golden-path'")).body()
    assert (body["outcome"], body["exit_status"], body["diagnosis"], body["headline"], body["label"]) == (
        "error",
        4,
        None,
        "USAGE ERROR: unknown marker 'golden-path'",
        "USAGE ERROR",
    )


@pytest.mark.parametrize(
    ("tests", "label"),
    [
        ((_test("passed"),), "HEALTHY"),
        ((_test("broken", "infra.gateway", known="issue-1278"),), "KNOWN ISSUE issue-1278"),
        ((_test("failed", "product.http"),), "PRODUCT DEFECT"),
    ],
)
def test_the_label_is_the_headlines_verdict_words(tests: tuple[TestResult, ...], label: str) -> None:
    assert _verdict(*tests).label == label


def test_a_local_run_says_it_judged_the_replica_not_staging() -> None:
    verdict = _verdict(_test("passed"), environment="local")
    assert verdict.headline.endswith("; judged the local replica, not staging")
    assert verdict.label == "HEALTHY (local replica)"
