"""The shared circuit breaker against a real replica: it opens on a dead backend, makes later
operations fail fast with the same classified evidence, and closes once the backend is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import record
from harness.breaker import Breaker
from harness.errors import InfraFailure
from harness.settings import Settings
from harness.staging import Staging
from harness.taxonomy import Category
from replica.handle import ReplicaHandle

pytestmark = [pytest.mark.replica]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    handle = ReplicaHandle.start("issue-1278", tmp_path_factory.mktemp("breaker") / "replica")
    try:
        yield handle
    finally:
        handle.stop()


def _staging(handle: ReplicaHandle, breaker_file: Path) -> Staging:
    settings = Settings.from_env({"E2E_ENV": "local", "E2E_RETRY_BUDGET_S": "2"}).with_targets(
        handle.backend_url, handle.auth_url, handle.ws_url
    )
    return Staging(settings, Breaker(breaker_file))


def _timed_failure(staging: Staging) -> tuple[InfraFailure, float]:
    started = time.monotonic()
    with pytest.raises(InfraFailure) as failure:
        staging.check("backend", "/health")
    return failure.value, time.monotonic() - started


def test_breaker_opens_then_fails_fast_then_closes_after_the_fix(
    broken: ReplicaHandle, tmp_path: Path
) -> None:
    staging = _staging(broken, tmp_path / "breaker.json")
    record.begin("first")
    first, first_s = _timed_failure(staging)
    assert staging.breaker.tripped("backend") is not None, "an exhausted retry budget must open the breaker"
    record.begin("second")
    second, second_s = _timed_failure(staging)
    assert (first.category, second.category, second.known_issue) == (
        Category.INFRA_GATEWAY, Category.INFRA_GATEWAY, "issue-1278"
    )  # fmt: skip
    assert second_s < 1.0 < first_s, f"first {first_s:.2f}s (retried), second {second_s:.2f}s (fail fast)"
    assert "circuit opened in first" in second.detail
    broken.fix()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # bounded: the crash-loop backoff plus a startup
        try:
            body = staging.check("backend", "/health")
            break
        except InfraFailure:
            time.sleep(0.5)
    else:
        pytest.fail("the backend never recovered after fix()")
    assert (body["status"], staging.breaker.tripped("backend")) == ("healthy", None)
