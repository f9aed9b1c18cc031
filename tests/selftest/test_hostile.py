"""The whole suite against a hostile impostor of staging (replica/hostile.py), one mode at a time.

Issue 5, "Hostile responses": each misbehaviour ends as a failure of the expected category (or a
pass, where that is right) within a bound derived from the budgets, and never as a crash of the
harness. The modes share one impostor (the `hostile` fixture) whose mode is switched per test.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass

import pytest

from replica.hostile import MODES, RETRY_AFTER_S
from tests.selftest.conftest import HostileServer, SuiteProcess, SuiteRunner

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

HEALTH, GOLDEN, EVERYTHING = "health", "golden_path", "health or golden_path or auth"
BACKEND_HEALTH, CHAT_TURN, AI_ANSWER = (
    "TestBackendHealth",
    "test_chat_turn_delivers",
    "test_ai_answer_is_about",
)
# Interpreter start, imports and collection of one suite run, generous for a loaded 2-core machine.
STARTUP_S = 10.0
# Far below the 10 MB the impostor serves and the suite's 1 MB body limit: evidence is a snippet.
MAX_REPORT_FILE_BYTES = 256 * 1024
# Signs of an exception nobody anticipated (pytest's own tracebacks of classified failures are fine).
CRASH = re.compile(
    r"Traceback \(most recent call last\)|INTERNALERROR|Task exception was never retrieved|Exception ignored"
)
HARNESS_RAISE = re.compile(r"^harness/\S+\.py:\d+: (\w+)$", re.MULTILINE)
CLASSIFIED = frozenset({"E2EFailure", "InfraFailure", "ProductFailure", "NotReproduced"})


@dataclass(frozen=True)
class Case:
    """What one mode must produce: `expected` categories for every failure (empty: the run passes),
    and the tests (by nodeid fragment) that must be among the failures."""

    markers: str
    expected: frozenset[str]
    must_fail: str = ""


CASES: dict[str, Case] = {
    # The control: a well-behaved impostor, so that any failure below is the mode's doing.
    "polite": Case(EVERYTHING, frozenset()),
    "json-typed-html-503": Case(HEALTH, frozenset({"infra.gateway"}), BACKEND_HEALTH),
    "html-200-on-health": Case(HEALTH, frozenset({"product.contract"}), BACKEND_HEALTH),
    "empty-body": Case(HEALTH, frozenset({"product.contract"}), BACKEND_HEALTH),
    "invalid-utf8": Case(HEALTH, frozenset({"product.contract"}), BACKEND_HEALTH),
    "huge-body": Case(HEALTH, frozenset({"product.contract"}), BACKEND_HEALTH),
    "slow-drip": Case(HEALTH, frozenset({"infra.timeout"}), BACKEND_HEALTH),
    "huge-retry-after": Case(HEALTH, frozenset({"infra.gateway"}), BACKEND_HEALTH),
    # 1011 after the upgrade is the server's own failure (HEAD counts it a server error), not the platform.
    "ws-close-after-upgrade": Case(GOLDEN, frozenset({"product.golden_path"}), CHAT_TURN),
    "ws-garbage-frames": Case(GOLDEN, frozenset({"product.golden_path"}), CHAT_TURN),
    "ws-out-of-order": Case(GOLDEN, frozenset({"product.golden_path"}), CHAT_TURN),
    # Duplicated events of one run (at-least-once delivery) balance out and the last answer is
    # good: the golden path holds, so the run passes.
    "ws-duplicates": Case(GOLDEN, frozenset()),
    # The five events arrive in order; only the answer is missing.
    "ws-completed-without-result": Case(GOLDEN, frozenset({"product.golden_path"}), AI_ANSWER),
    # Credentials echoed back: a 503 on every other login (retried), a 200 {"valid": false} naming
    # the token, a 500 from /auth/me, a 401 refusing the socket, an error frame in the chat. The
    # scan for the echoed secrets (SuiteProcess.secret_hits) is shared with test_secrets.
    "token-echo": Case(
        EVERYTHING, frozenset({"product.golden_path", "product.http", "product.auth"}), CHAT_TURN
    ),
}


def test_every_mode_of_the_impostor_has_a_case() -> None:
    assert set(CASES) == set(MODES)


@pytest.mark.parametrize("mode", list(CASES))
def test_suite_classifies_a_hostile_staging(
    mode: str, hostile: HostileServer, fresh_suite: SuiteRunner
) -> None:
    case = CASES[mode]
    env = hostile.suite_env(f"hostile-key-{secrets.token_urlsafe(12)}")
    request_s, agent_s, budget_s = (
        float(env[name]) for name in ("E2E_REQUEST_TIMEOUT_S", "E2E_AGENT_TIMEOUT_S", "E2E_RETRY_BUDGET_S")
    )
    # A test runs at most two guarded operations (the chat's health precondition, then the
    # operation); retries never start a wait past the budget, and an attempt started inside it
    # lasts at most one request timeout. The chat then waits at most the agent timeout.
    per_test_s = 2 * (budget_s + request_s) + agent_s
    hostile.use(mode)
    started = time.monotonic()
    run = fresh_suite("hostile", case.markers, extra_env=env)
    elapsed = time.monotonic() - started
    tests = run.verdict["tests"]
    bound = STARTUP_S + len(tests) * per_test_s
    print(f"{mode}: {elapsed:.1f}s for {len(tests)} tests (bound {bound:.0f}s, {per_test_s:.0f}s per test)")

    assert tests, run.explain()
    assert elapsed < bound, run.explain()
    slow = [(t["nodeid"], t["duration_s"]) for t in tests if t["duration_s"] > per_test_s]
    assert not slow, slow
    failing = [t for t in tests if t["status"] in ("failed", "broken")]
    assert all(t["category"] for t in failing), [t["nodeid"] for t in failing if not t["category"]]
    wrong = [
        (t["nodeid"], t["category"], t["message"]) for t in failing if t["category"] not in case.expected
    ]
    assert not wrong, f"expected only {sorted(case.expected)}: {wrong}"
    if case.must_fail:
        concerned = run.tests(case.must_fail)
        assert concerned and all(t["status"] in ("failed", "broken") for t in concerned), run.explain()
    assert (run.exit_code == 0) == (not case.expected), run.explain()
    assert not CRASH.findall(run.output), run.explain()
    raised = set(HARNESS_RAISE.findall(run.output)) - CLASSIFIED
    assert not raised, f"the harness raised {raised}: {run.explain()}"
    check = MODE_CHECKS.get(mode)
    if check is not None:
        check(run, hostile, env)


def _truncated_evidence(run: SuiteProcess, hostile: HostileServer, env: dict[str, str]) -> None:
    """The 10 MB body left only a snippet behind, and the evidence says it was cut at the limit."""
    sizes = {p.name: p.stat().st_size for p in run.reports.rglob("*") if p.is_file()}
    assert max(sizes.values()) < MAX_REPORT_FILE_BYTES, sizes
    attachments = [json.loads(p.read_text()) for p in run.reports.glob("allure-results/*-attachment.json")]
    exchanges = [
        item for a in attachments for item in (a if isinstance(a, list) else [a])
    ]  # lists: "exchanges"
    evidence = [e for e in exchanges if isinstance(e, dict) and e.get("body_truncated")]
    assert evidence and all(e["body_bytes"] == 1024 * 1024 and e["json"] is None for e in evidence), evidence


def _retry_after_capped(run: SuiteProcess, hostile: HostileServer, env: dict[str, str]) -> None:
    """No test waited toward the Retry-After: the budget stops a retry whose (capped) wait overshoots it."""
    bound = float(env["E2E_RETRY_BUDGET_S"]) + float(env["E2E_REQUEST_TIMEOUT_S"])
    durations = [t["duration_s"] for t in run.verdict["tests"]]
    assert max(durations) <= bound < RETRY_AFTER_S, (durations, bound)


def _secrets_not_echoed(run: SuiteProcess, hostile: HostileServer, env: dict[str, str]) -> None:
    """The impostor did echo credentials back, and none of them reached a report or the output."""
    assert hostile.stats()["echoes"] > 0
    hits = run.secret_hits(env["E2E_OAUTH_SIMULATION_KEY"])
    assert not hits, "secrets leaked:\n" + "\n".join(hits)


MODE_CHECKS = {
    "huge-body": _truncated_evidence,
    "huge-retry-after": _retry_after_capped,
    "token-echo": _secrets_not_echoed,
}
