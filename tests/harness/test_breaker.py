"""The shared circuit breaker and the unreachable fast path, against real targets: a real issue-1278
replica (the breaker opens on a dead backend, later operations fail fast with the same classified
evidence, it closes once the backend is back), and a name that does not resolve (confirmed once,
then the run's use of that host ends at once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import journal
from harness.breaker import Breaker
from harness.errors import InfraFailure
from harness.loop import LoopThread
from harness.operations import Operations
from harness.settings import Settings
from harness.taxonomy import Category
from replica.handle import ReplicaHandle

pytestmark = [pytest.mark.replica]
UNRESOLVABLE = {
    "E2E_ENV": "custom",
    "E2E_BACKEND_URL": "https://api.staging.invalid",  # .invalid never resolves (RFC 2606)
    "E2E_AUTH_URL": "https://auth.staging.invalid",
    "E2E_WS_URL": "wss://api.staging.invalid/ws",
    "E2E_RETRY_BUDGET_S": "60",  # what a staging run allows: the fast path must not need it
}


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    handle = ReplicaHandle.start("issue-1278", tmp_path_factory.mktemp("breaker") / "replica")
    try:
        yield handle
    finally:
        handle.stop()


def _staging(settings: Settings, breaker_file: Path, loop: LoopThread) -> Operations:
    return Operations(settings, Breaker(breaker_file), loop)


def _timed_failure(staging: Operations, nodeid: str) -> tuple[InfraFailure, float]:
    started = time.monotonic()
    with journal.bound(journal.TestJournal(nodeid=nodeid)), pytest.raises(InfraFailure) as failure:
        staging.check("backend", "/health")
    return failure.value, time.monotonic() - started


def test_breaker_opens_then_fails_fast_then_closes_after_the_fix(
    broken: ReplicaHandle, tmp_path: Path, loop: LoopThread
) -> None:
    settings = Settings.from_env({"E2E_ENV": "local", "E2E_RETRY_BUDGET_S": "2"}).with_targets(
        broken.backend_url, broken.auth_url, broken.ws_url
    )
    staging = _staging(settings, tmp_path / "breaker.json", loop)
    first, first_s = _timed_failure(staging, "first")
    assert staging.breaker.tripped("backend") is not None, "an exhausted retry budget must open the breaker"
    second, second_s = _timed_failure(staging, "second")
    assert (first.category, second.category, second.known_issue) == (
        Category.INFRA_GATEWAY, Category.INFRA_GATEWAY, "issue-1278"
    )  # fmt: skip
    assert second_s < 1.0 < first_s, f"first {first_s:.2f}s (retried), second {second_s:.2f}s (fail fast)"
    assert "circuit opened in first" in second.detail
    broken.fix()
    deadline = time.monotonic() + 30
    with journal.bound(journal.TestJournal(nodeid="after the fix")):
        while time.monotonic() < deadline:  # bounded: the crash-loop backoff plus a startup
            try:
                body = staging.check("backend", "/health")
                break
            except InfraFailure:
                time.sleep(0.5)
        else:
            pytest.fail("the backend never recovered after fix()")
    assert (body["status"], staging.breaker.tripped("backend")) == ("ok", None)


def test_an_unresolvable_host_is_confirmed_once_then_ends_at_once(tmp_path: Path, loop: LoopThread) -> None:
    staging = _staging(Settings.from_env(UNRESOLVABLE), tmp_path / "breaker.json", loop)
    first, first_s = _timed_failure(staging, "first")
    second, second_s = _timed_failure(staging, "second")
    trip = staging.breaker.tripped("backend")
    assert (first.category, first.kind, second.category, trip.kind if trip else None) == (
        Category.INFRA_UNREACHABLE,
        "dns",
        Category.INFRA_UNREACHABLE,
        "dns",
    )
    assert "VPN" in first.detail and "api.staging.invalid" in first.detail
    # Two lookups and one quick re-check, not a 60 s budget; then one lookup for the half-open probe.
    assert first_s < 3.0 and second_s < 1.5, f"first {first_s:.2f}s, second {second_s:.2f}s"
