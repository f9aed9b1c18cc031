"""The suite's verdict in every replica scenario: what `make e2e-staging` concludes, and why."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.selftest, pytest.mark.slow]


def test_healthy_replica_passes_as_healthy(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("healthy")
    assert (run.exit_code, run.verdict["outcome"], run.verdict["diagnosis"]) == (0, "passed", "healthy"), (
        run.explain()
    )


def test_issue_1278_replica_is_diagnosed_as_issue_1278(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("issue-1278")
    assert (run.exit_code != 0, run.verdict["outcome"], run.verdict["diagnosis"]) == (
        True, "failed", "issue_1278"
    ), run.explain()  # fmt: skip


def test_issue_1278_backend_failures_are_infrastructure_only(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("issue-1278")
    failing = [t for t in run.verdict["tests"] if t["status"] in ("failed", "broken")]
    assert failing and all(t["status"] == "broken" and t["category"].startswith("infra.") for t in failing), [
        (t["nodeid"], t["status"], t["category"]) for t in failing
    ]


def test_issue_1278_auth_tests_pass(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("issue-1278")
    auth = [t for t in run.verdict["tests"] if "TestAuthHealth" in t["nodeid"] or "login" in t["nodeid"]]
    assert auth and all(t["status"] == "passed" for t in auth), [(t["nodeid"], t["status"]) for t in auth]


def test_reproduction_suite_passes_on_the_issue_1278_replica(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("issue-1278", "issue_1278")
    assert (run.exit_code, run.verdict["outcome"], run.verdict["diagnosis"]) == (0, "passed", "issue_1278"), (
        run.explain()
    )
    assert "reproduced in 6/6 probes" in run.output


def test_reproduction_suite_fails_on_a_healthy_replica(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("healthy", "issue_1278")
    assert run.exit_code != 0 and "Issue #1278 did not reproduce" in run.output, run.explain()


def test_slow_start_passes(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("slow-start")
    assert (run.exit_code, run.verdict["outcome"]) == (0, "passed"), run.explain()


def test_flaky_gateway_passes_as_healthy_with_retried_tests_marked_flaky(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("flaky-gateway")
    verdict = run.verdict
    assert (verdict["outcome"], verdict["diagnosis"]) == ("passed", "healthy"), run.explain()
    flaky = [t for t in verdict["tests"] if t["flaky"]]
    assert flaky and verdict["counts"]["flaky"] == len(flaky) and all(t["attempts"] > 1 for t in flaky), (
        verdict["tests"]
    )


def test_agent_broken_is_a_golden_path_product_defect(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("agent-broken", extra_env={"E2E_AGENT_TIMEOUT_S": "3"})
    assert (run.verdict["diagnosis"], "product.golden_path" in run.categories()) == (
        "product_defect",
        True,
    ), run.explain()


def test_auth_broken_is_an_auth_product_defect(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("auth-broken")
    assert (run.verdict["diagnosis"], "product.auth" in run.categories()) == ("product_defect", True), (
        run.explain()
    )


def test_relaxed_websocket_auth_is_reported_as_an_auth_finding(suite) -> None:  # type: ignore[no-untyped-def]
    run = suite("relaxed-auth")
    refused = run.tests("test_chat_socket_refuses")
    assert refused and all((t["status"], t["category"]) == ("failed", "product.auth") for t in refused), (
        refused
    )


def test_every_suite_test_fails_in_some_scenario(suite) -> None:  # type: ignore[no-untyped-def]
    """'Every test can fail': each test of the suite fails in at least one replica scenario."""
    runs = [
        suite("healthy", "issue_1278"),
        suite("issue-1278"),
        suite("agent-broken", extra_env={"E2E_AGENT_TIMEOUT_S": "3"}),
        suite("auth-broken"),
        suite("relaxed-auth"),
        suite("auth-db-down", "not verify_fix"),
    ]
    every = {t["nodeid"] for run in runs for t in run.verdict["tests"]}
    failed = {
        t["nodeid"] for run in runs for t in run.verdict["tests"] if t["status"] in ("failed", "broken")
    }
    assert sorted(every - failed) == []
