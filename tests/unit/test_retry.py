"""Retries: infrastructure only, Retry-After honoured and capped, the budget never overshot.

A fake clock and sleep make waits exact and instant.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from harness import journal
from harness.errors import InfraFailure, ProductFailure
from harness.retry import QUICK_RECHECK_S, RetryPolicy, retry_after_s, retry_async
from harness.settings import Settings
from harness.taxonomy import Category

pytestmark = pytest.mark.unit

NO_JITTER = RetryPolicy(
    budget_s=100, max_attempts=4, initial_s=1, max_wait_s=3, jitter_s=0, retry_after_cap_s=5
)


class FakeTime:
    """A clock that only moves when something sleeps or an attempt 'takes time'."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[tuple[float, float]] = []  # (start, duration)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleep_sync(seconds)

    def sleep_sync(self, seconds: float) -> None:
        self.waits.append((self.now, seconds))
        self.now += seconds

    @property
    def durations(self) -> list[float]:
        return [duration for _, duration in self.waits]


def gateway(attempt: int, headers: dict[str, str] | None = None) -> InfraFailure:
    return InfraFailure(
        Category.INFRA_GATEWAY, f"503 page on attempt {attempt}", evidence={"headers": headers or {}}
    )


@pytest.fixture
def rec() -> Iterator[journal.TestJournal]:
    with journal.bound(journal.TestJournal(nodeid="tests/unit/test_retry.py")) as bound:
        yield bound


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def run(operation: Any, policy: RetryPolicy, fake: FakeTime, **kwargs: Any) -> Any:
    return asyncio.run(
        retry_async(
            operation, policy, describe="backend /health", sleep=fake.sleep, clock=fake.clock, **kwargs
        )
    )


def test_infra_failure_is_retried_until_success(rec: journal.TestJournal, fake: FakeTime) -> None:
    async def operation(attempt: int) -> str:
        if attempt < 3:
            raise gateway(attempt)
        return "healthy"

    assert (run(operation, NO_JITTER, fake), rec.attempts) == ("healthy", 3)


def test_product_failure_is_not_retried(rec: journal.TestJournal, fake: FakeTime) -> None:
    calls: list[int] = []

    async def operation(attempt: int) -> None:
        calls.append(attempt)
        raise ProductFailure(Category.PRODUCT_CONTRACT, "frontend answered")

    with pytest.raises(ProductFailure):
        run(operation, NO_JITTER, fake)
    assert (calls, rec.retries) == ([1], [])


def test_other_exceptions_are_not_retried(fake: FakeTime) -> None:
    calls: list[int] = []

    async def operation(attempt: int) -> None:
        calls.append(attempt)
        raise KeyError("bug in the test")

    with pytest.raises(KeyError):
        run(operation, NO_JITTER, fake)
    assert calls == [1]


def test_last_infra_failure_is_reraised_itself(fake: FakeTime) -> None:
    async def operation(attempt: int) -> None:
        raise gateway(attempt)

    with pytest.raises(InfraFailure, match="attempt 4"):
        run(operation, NO_JITTER, fake)


def test_backoff_is_exponential_and_capped(fake: FakeTime) -> None:
    async def operation(attempt: int) -> None:
        raise gateway(attempt)

    with pytest.raises(InfraFailure):
        run(operation, NO_JITTER, fake)
    assert fake.durations == [1, 2, 3]


def test_retry_after_seconds_is_honoured(fake: FakeTime) -> None:
    async def operation(attempt: int) -> str:
        if attempt == 1:
            raise gateway(attempt, {"retry-after": "2"})
        return "ok"

    run(operation, NO_JITTER, fake)
    assert fake.durations == [2.0]


def test_retry_after_is_capped(fake: FakeTime) -> None:
    async def operation(attempt: int) -> str:
        if attempt == 1:
            raise gateway(attempt, {"Retry-After": "120"})
        return "ok"

    run(operation, NO_JITTER, fake)
    assert fake.durations == [5.0]


def test_retry_after_http_date_is_parsed() -> None:
    now = datetime(2025, 9, 18, 12, 0, 0, tzinfo=UTC)
    evidence = {"headers": {"retry-after": "Thu, 18 Sep 2025 12:00:30 GMT"}}
    assert retry_after_s(evidence, now=now) == 30.0


def test_retry_after_garbage_falls_back_to_backoff(fake: FakeTime) -> None:
    async def operation(attempt: int) -> str:
        if attempt == 1:
            raise gateway(attempt, {"retry-after": "soon"})
        return "ok"

    run(operation, NO_JITTER, fake)
    assert fake.durations == [1.0]


def test_budget_is_never_overshot_by_a_wait(fake: FakeTime) -> None:
    policy = RetryPolicy(budget_s=10, max_attempts=100, initial_s=1, max_wait_s=4, jitter_s=0.5)

    async def operation(attempt: int) -> None:
        fake.now += 0.7  # each attempt takes time too
        raise gateway(attempt)

    with pytest.raises(InfraFailure):
        run(operation, policy, fake)
    assert fake.waits and all(start + duration <= 10 for start, duration in fake.waits)


def test_budget_stops_before_a_long_retry_after(fake: FakeTime) -> None:
    policy = RetryPolicy(
        budget_s=3, max_attempts=5, initial_s=0.1, max_wait_s=1, jitter_s=0, retry_after_cap_s=30
    )
    calls: list[int] = []

    async def operation(attempt: int) -> None:
        calls.append(attempt)
        raise gateway(attempt, {"retry-after": "10"})

    with pytest.raises(InfraFailure):
        run(operation, policy, fake)
    assert (calls, fake.waits) == ([1], [])


def test_zero_budget_means_one_attempt(fake: FakeTime) -> None:
    calls: list[int] = []

    async def operation(attempt: int) -> None:
        calls.append(attempt)
        raise gateway(attempt)

    with pytest.raises(InfraFailure):
        run(operation, RetryPolicy(budget_s=0), fake)
    assert calls == [1]


def test_retries_are_noted_in_the_record(rec: journal.TestJournal, fake: FakeTime) -> None:
    async def operation(attempt: int) -> str:
        if attempt == 1:
            raise gateway(attempt, {"retry-after": "2"})
        return "ok"

    run(operation, NO_JITTER, fake)
    assert [(r.attempt, r.category, r.message, r.wait_s) for r in rec.retries] == [
        (1, Category.INFRA_GATEWAY, "503 page on attempt 1", 2.0)
    ]


def test_attempts_are_noted_when_all_fail(rec: journal.TestJournal, fake: FakeTime) -> None:
    async def operation(attempt: int) -> None:
        raise gateway(attempt)

    with pytest.raises(InfraFailure):
        run(operation, NO_JITTER, fake)
    assert (rec.attempts, len(rec.retries)) == (4, 3)


def test_each_attempt_of_a_retried_operation_is_logged(rec: journal.TestJournal, fake: FakeTime) -> None:
    async def operation(attempt: int) -> str:
        if attempt < 3:
            raise gateway(attempt)
        return "ok"

    run(operation, NO_JITTER, fake)
    assert rec.attempt_log == [
        (
            "backend /health",
            ["[infra.gateway] 503 page on attempt 1", "[infra.gateway] 503 page on attempt 2", "passed"],
        )
    ]


def test_an_operation_that_passes_at_once_logs_no_attempts(rec: journal.TestJournal, fake: FakeTime) -> None:
    async def operation(attempt: int) -> str:
        return "ok"

    run(operation, NO_JITTER, fake)
    assert (rec.attempt_log, rec.attempts) == ([], 1)


def test_a_configuration_refusal_is_never_retried(fake: FakeTime) -> None:
    calls: list[int] = []

    async def operation(attempt: int) -> None:
        calls.append(attempt)
        raise InfraFailure(Category.INFRA_CONFIG, "E2E authentication not configured")

    with pytest.raises(InfraFailure):
        run(operation, NO_JITTER, fake)
    assert calls == [1]


def unresolvable(attempt: int) -> InfraFailure:
    return InfraFailure(Category.INFRA_UNREACHABLE, f"DNS on attempt {attempt}", kind="dns")


def test_a_terminal_failure_gets_one_quick_recheck_and_no_more(fake: FakeTime) -> None:
    calls: list[int] = []

    async def operation(attempt: int) -> None:
        calls.append(attempt)
        raise unresolvable(attempt)

    with pytest.raises(InfraFailure):
        run(operation, NO_JITTER, fake, terminal=lambda failure: failure.kind == "dns")
    assert (calls, fake.durations) == ([1, 2], [QUICK_RECHECK_S])


def test_a_terminal_failure_that_clears_on_the_recheck_passes(fake: FakeTime) -> None:
    async def operation(attempt: int) -> str:
        if attempt == 1:
            raise unresolvable(attempt)
        return "resolved"

    assert run(operation, NO_JITTER, fake, terminal=lambda failure: True) == "resolved"


def test_the_same_failure_not_called_terminal_gets_every_retry(fake: FakeTime) -> None:
    calls: list[int] = []

    async def operation(attempt: int) -> None:
        calls.append(attempt)
        raise unresolvable(attempt)

    with pytest.raises(InfraFailure):
        run(operation, NO_JITTER, fake, terminal=lambda failure: False)
    assert calls == [1, 2, 3, 4]


def test_concurrent_calls_do_not_share_state(fake: FakeTime) -> None:
    async def flaky(attempt: int) -> int:
        if attempt == 1:
            raise gateway(attempt)
        return attempt

    async def steady(attempt: int) -> int:
        return attempt

    async def both() -> list[int]:
        return list(
            await asyncio.gather(
                retry_async(flaky, NO_JITTER, describe="a", sleep=fake.sleep, clock=fake.clock),
                retry_async(steady, NO_JITTER, describe="b", sleep=fake.sleep, clock=fake.clock),
            )
        )

    assert asyncio.run(both()) == [2, 1]


def test_real_sleep_respects_a_small_budget() -> None:
    policy = RetryPolicy(budget_s=0.3, max_attempts=50, initial_s=0.05, max_wait_s=0.1, jitter_s=0.02)

    async def operation(attempt: int) -> None:
        raise gateway(attempt)

    async def timed() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with contextlib.suppress(InfraFailure):
            await retry_async(operation, policy, describe="real")
        return loop.time() - started

    assert asyncio.run(timed()) <= 0.3 + 0.25  # the budget, plus what a loaded machine adds to one sleep


def test_policy_from_local_settings_fits_the_local_budget() -> None:
    policy = RetryPolicy.from_settings(Settings.from_env({}))
    assert (policy.budget_s, policy.max_wait_s <= policy.budget_s) == (5.0, True)


def test_policy_from_staging_settings_rides_out_a_restart() -> None:
    policy = RetryPolicy.from_settings(Settings.from_env({"E2E_ENV": "staging", "E2E_RETRY_BUDGET_S": "45"}))
    assert (policy.budget_s, policy.retry_after_cap_s >= 5) == (45.0, True)
