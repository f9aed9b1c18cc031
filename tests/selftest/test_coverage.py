"""A verdict claims only what the run tested, and an unreachable staging is told in seconds.

The runs point the suite at a target the way a user does (E2E_ENV=custom): a replica this module
starts itself, whose bypass key the suite is NOT given (the night the nightly job's secret is missing),
and a staging whose names do not resolve (a laptop off the VPN; `.invalid` never resolves).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.report.verdict import EXIT_INCOMPLETE
from replica.handle import ReplicaHandle
from tests.selftest.conftest import SuiteRunner

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

UNREACHABLE_WITHIN_S = 5.0  # issue 10: time to verdict on an unresolvable staging
UNRESOLVABLE = {
    "E2E_ENV": "custom",
    "E2E_BACKEND_URL": "https://api.staging.invalid",
    "E2E_AUTH_URL": "https://auth.staging.invalid",
    "E2E_WS_URL": "wss://api.staging.invalid/ws",
    "E2E_OAUTH_SIMULATION_KEY": "selftest-key-for-an-unresolvable-staging",
    "E2E_RETRY_BUDGET_S": "60",  # staging's budget: the fast path must not depend on a small one
    "E2E_REQUEST_TIMEOUT_S": "10",
}


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A healthy replica, and the suite's environment for it without the bypass key."""
    handle = ReplicaHandle.start("healthy", tmp_path_factory.mktemp("keyless") / "replica")
    try:
        yield {
            "E2E_ENV": "custom",
            "E2E_BACKEND_URL": handle.backend_url,
            "E2E_AUTH_URL": handle.auth_url,
            "E2E_WS_URL": handle.ws_url,
        }
    finally:
        handle.stop()


def test_a_run_without_the_key_is_incomplete_and_says_which_key(
    fresh_suite: SuiteRunner, keyless: dict[str, str]
) -> None:
    run = fresh_suite("healthy", extra_env=keyless)
    verdict = run.verdict
    states = {c["name"]: c["state"] for c in verdict["coverage"]}
    assert (run.exit_code, verdict["outcome"], verdict["exit_status"]) == (
        EXIT_INCOMPLETE,
        "incomplete",
        EXIT_INCOMPLETE,
    ), run.explain()
    assert (
        verdict["headline"].startswith("INCOMPLETE: login")
        and "E2E_OAUTH_SIMULATION_KEY" in verdict["headline"]
    )
    assert (states["backend_health"], states["login"], states["chat"]) == (
        "verified",
        "not_verified",
        "not_verified",
    )
    assert "HEALTHY" not in run.output


def test_a_run_that_selects_only_health_is_judged_on_health(
    fresh_suite: SuiteRunner, keyless: dict[str, str]
) -> None:
    run = fresh_suite("healthy", "health", extra_env=keyless)
    reasons = {c["name"]: c["reason"] for c in run.verdict["coverage"]}
    assert (run.exit_code, run.verdict["outcome"], reasons["login"], reasons["chat"]) == (
        0,
        "passed",
        "not selected",
        "not selected",
    ), run.explain()
    assert run.verdict["headline"].startswith(
        "HEALTHY: backend health, auth health verified (not verified: login"
    )


def test_an_unresolvable_staging_is_infrastructure_within_seconds_with_the_dns_hint(
    fresh_suite: SuiteRunner, tmp_path: Path
) -> None:
    started = time.monotonic()
    run = fresh_suite("healthy", extra_env=UNRESOLVABLE)
    wall = time.monotonic() - started
    verdict = run.verdict
    print(
        f"unresolvable staging: pytest {verdict['duration_s']:.2f}s, wall {wall:.2f}s, {verdict['headline']}"
    )
    assert (run.exit_code, verdict["diagnosis"]) == (1, "infrastructure"), run.explain()
    assert verdict["duration_s"] <= UNREACHABLE_WITHIN_S, verdict["duration_s"]
    assert (
        "DNS" in verdict["headline"]
        and "VPN" in verdict["headline"]
        and "staging.invalid" in verdict["headline"]
    )
    assert {t["category"] for t in verdict["tests"] if t["status"] == "broken"} == {"infra.unreachable"}
