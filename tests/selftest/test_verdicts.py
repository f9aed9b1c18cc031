"""The suite's verdict in every replica scenario and protocol profile: what `make e2e-staging`
concludes, and why. Each scenario has one contracted outcome; the matrix at the end proves that
every test of the suite fails in at least one scenario."""

from __future__ import annotations

from typing import Any

import pytest

from tests.selftest.conftest import SuiteProcess, SuiteRunner

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

QUICK_AGENT = {"E2E_AGENT_TIMEOUT_S": "3"}  # scenarios where the agent never answers
NEGATIVE = "test_chat_socket_refuses"


def _failing(run: SuiteProcess) -> list[dict[str, Any]]:
    return [t for t in run.verdict["tests"] if t["status"] in ("failed", "broken")]


def _essence(run: SuiteProcess) -> tuple[str, str, str | None]:
    return run.verdict["outcome"], run.verdict["diagnosis"], run.verdict["known_issue"]


@pytest.mark.parametrize("profile", ["legacy", "aebb16f", "head"])
def test_a_healthy_replica_passes_as_healthy_in_every_protocol_profile(
    suite: SuiteRunner, profile: str
) -> None:
    run = suite("healthy", extra_env={"REPLICA_PROFILE": profile})
    assert (run.exit_code, *_essence(run)) == (0, "passed", "healthy", None), run.explain()
    assert run.verdict["headline"].startswith(
        "HEALTHY: backend health, auth health, login, token checks, chat"
    )
    assert all(c["state"] == "verified" for c in run.verdict["coverage"]), run.verdict["coverage"]


def test_issue_1278_replica_is_diagnosed_as_the_known_issue(suite: SuiteRunner) -> None:
    run = suite("issue-1278")
    assert (run.exit_code != 0, *_essence(run)) == (True, "failed", "known_issue", "issue-1278"), (
        run.explain()
    )
    assert run.verdict["headline"].startswith("KNOWN ISSUE issue-1278")


def test_issue_1278_backend_failures_are_infrastructure_only(suite: SuiteRunner) -> None:
    failing = _failing(suite("issue-1278"))
    assert failing and all(t["status"] == "broken" and t["category"].startswith("infra.") for t in failing), [
        (t["nodeid"], t["status"], t["category"]) for t in failing
    ]


def test_issue_1278_auth_tests_pass(suite: SuiteRunner) -> None:
    run = suite("issue-1278")
    auth = [t for t in run.verdict["tests"] if "TestAuthHealth" in t["nodeid"] or "login" in t["nodeid"]]
    assert auth and all(t["status"] == "passed" for t in auth), [(t["nodeid"], t["status"]) for t in auth]


def test_reproduction_suite_passes_on_the_issue_1278_replica(suite: SuiteRunner) -> None:
    run = suite("issue-1278", "issue_1278")
    assert (run.exit_code, *_essence(run)) == (0, "passed", "known_issue", "issue-1278"), run.explain()
    assert "reproduced in 6/6 probes" in run.output


def test_reproduction_on_a_healthy_replica_is_not_reproduced_not_a_defect(suite: SuiteRunner) -> None:
    run = suite("healthy", "issue_1278")
    assert (run.exit_code, run.verdict["diagnosis"]) == (1, "not_reproduced"), run.explain()
    assert {t["category"] for t in _failing(run)} == {"repro.not_reproduced"}
    assert "issue-1278 did not reproduce" in run.output and "PRODUCT DEFECT" not in run.output


def test_slow_start_passes(suite: SuiteRunner) -> None:
    run = suite("slow-start")
    assert (run.exit_code, run.verdict["outcome"]) == (0, "passed"), run.explain()


def test_a_socket_the_platform_closes_once_mid_turn_is_retried_and_marked_flaky(suite: SuiteRunner) -> None:
    """A new revision rolling out closes the first chat turn with 1012: a new socket, the question
    asked again, the run healthy and the test that needed it flaky."""
    run = suite("ws-restart-once")
    assert (run.exit_code, *_essence(run)) == (0, "passed", "healthy", None), run.explain()
    flaky = [t for t in run.verdict["tests"] if t["flaky"]]
    assert len(flaky) == 1 and flaky[0]["attempts"] == 2 and run.verdict["counts"]["flaky"] == 1, flaky


def test_a_socket_the_platform_keeps_closing_mid_turn_is_infrastructure(suite: SuiteRunner) -> None:
    run = suite("ws-restart-always")
    assert (run.verdict["diagnosis"], {t["category"] for t in _failing(run)}) == (
        "infrastructure",
        {"infra.ws"},
    ), run.explain()


def test_flaky_gateway_passes_as_healthy_with_retried_tests_marked_flaky(suite: SuiteRunner) -> None:
    verdict = suite("flaky-gateway").verdict
    assert (verdict["outcome"], verdict["diagnosis"]) == ("passed", "healthy")
    flaky = [t for t in verdict["tests"] if t["flaky"]]
    assert flaky and verdict["counts"]["flaky"] == len(flaky) and all(t["attempts"] > 1 for t in flaky)


# Product defects on a healthy infrastructure: PRODUCT DEFECT, never an infra.* category.
PRODUCT_DEFECTS = {
    "agent-broken": ({"product.golden_path"}, QUICK_AGENT),
    "auth-broken": ({"product.auth"}, {}),
    "ws-main-mode-error": (
        {"product.golden_path"},
        {},
    ),  # error frame + 1011 on every socket (aebb16f as shipped)
    "ws-router-defect": (
        {"product.golden_path"},
        {},
    ),  # close 1000 after the first frame (aebb16f, import fixed)
    "ws-error-mid-turn": ({"product.golden_path"}, {}),
    "ws-readiness-guard": ({"product.auth"}, {}),  # every upgrade refused with 403, whatever the token
    "demo-mode": ({"product.auth", "product.http"}, {}),  # every socket is demo-user-001
}


@pytest.mark.parametrize("scenario", list(PRODUCT_DEFECTS))
def test_product_defects_on_a_healthy_infrastructure_are_product_defects(
    suite: SuiteRunner, scenario: str
) -> None:
    categories, env = PRODUCT_DEFECTS[scenario]
    run = suite(scenario, extra_env=env)
    assert (run.exit_code, run.verdict["diagnosis"]) == (1, "product_defect"), run.explain()
    assert {t["category"] for t in _failing(run)} == categories, run.explain()
    assert run.verdict["headline"].startswith("PRODUCT DEFECT")


@pytest.mark.parametrize("scenario", ["ws-main-mode-error", "ws-readiness-guard"])
def test_negative_auth_is_not_passed_when_every_socket_is_refused(suite: SuiteRunner, scenario: str) -> None:
    negatives = suite(scenario).tests(NEGATIVE)
    assert negatives and all(t["status"] != "passed" for t in negatives), negatives
    skipped = [t for t in negatives if t["status"] == "skipped"]
    assert all("valid token" in (t["message"] or "") for t in skipped), skipped


def test_relaxed_websocket_auth_is_the_catalogued_permissive_auth_issue(suite: SuiteRunner) -> None:
    run = suite("relaxed-auth")
    refused = run.tests(NEGATIVE)
    assert _essence(run) == ("failed", "known_issue", "staging-ws-auth-permissive"), run.explain()
    assert refused and all((t["status"], t["category"]) == ("failed", "product.auth") for t in refused), (
        refused
    )


def test_the_service_error_envelope_is_a_dependency_never_a_gateway_page(suite: SuiteRunner) -> None:
    run = suite("service-error-envelope")
    assert (run.verdict["diagnosis"], {t["category"] for t in _failing(run)}) == (
        "infrastructure",
        {"infra.dependency"},
    ), run.explain()


def test_bypass_not_configured_is_said_plainly_and_not_retried(suite: SuiteRunner) -> None:
    run = suite("bypass-not-configured")
    login = run.tests("test_bypass_login_issues_tokens")[0]
    assert (run.verdict["diagnosis"], login["category"], login["attempts"]) == (
        "infrastructure",
        "infra.config",
        1,
    )
    assert "E2E authentication not configured" in run.verdict["headline"]


def test_every_suite_test_fails_in_some_scenario(suite: SuiteRunner) -> None:
    """'Every test can fail': each test of the suite fails in at least one replica scenario."""
    runs = [
        suite("healthy", "issue_1278"),
        suite("issue-1278"),
        suite("agent-broken", extra_env=QUICK_AGENT),
        suite("auth-broken"),
        suite("relaxed-auth"),
        suite("auth-db-down", "not verify_fix"),
    ]
    every = {t["nodeid"] for run in runs for t in run.verdict["tests"]}
    failed = {t["nodeid"] for run in runs for t in _failing(run)}
    assert sorted(every - failed) == []
