"""Bounded retries for infrastructure failures only (tenacity underneath).

A `ProductFailure` is a verdict and is never retried; neither is any other exception (a bug in a
test is not flakiness). Waits grow exponentially with jitter, except that a `Retry-After` header in
the failure's evidence is honoured (capped). The budget stop refuses to *start* a wait that would
end past the budget, so retrying never overshoots it by sleeping. A fresh tenacity object is
created per call (a shared one corrupts state across coroutines), and the last `InfraFailure`
is re-raised as itself, not wrapped in `RetryError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from harness import record
from harness.errors import InfraFailure
from harness.settings import Settings

T = TypeVar("T")
AttemptContext = Callable[[int, str], AbstractContextManager[Any]]

log = logging.getLogger(__name__)


def _no_context(attempt: int, describe: str) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


_default_attempt_context: AttemptContext = _no_context


def set_default_attempt_context(factory: AttemptContext | None) -> None:
    """Install the per-attempt context used when a call passes none (the plugin: an Allure step)."""
    global _default_attempt_context
    _default_attempt_context = factory or _no_context


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often one operation may be retried."""

    budget_s: float
    max_attempts: int = 5
    initial_s: float = 0.5
    max_wait_s: float = 8.0
    jitter_s: float = 0.5
    retry_after_cap_s: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """Local runs fail fast; staging waits long enough to ride out a restart (Retry-After: 5)."""
        if settings.env == "local":
            return cls(  # the budget, not the count, bounds local retries (a slow start takes seconds)
                budget_s=settings.retry_budget_s,
                max_attempts=12,
                initial_s=0.25,
                max_wait_s=1.0,
                jitter_s=0.25,
                retry_after_cap_s=3.0,
            )
        return cls(
            budget_s=settings.retry_budget_s,
            max_attempts=6,
            initial_s=1.0,
            max_wait_s=15.0,
            jitter_s=1.0,
            retry_after_cap_s=30.0,
        )


class stop_before_budget(stop_base):
    """Stop when the upcoming wait would end past the budget (measured on our own clock)."""

    def __init__(self, budget_s: float, clock: Callable[[], float]) -> None:
        self.budget_s = budget_s
        self._clock = clock
        self._start = clock()

    def __call__(self, retry_state: RetryCallState) -> bool:
        return (self._clock() - self._start) + retry_state.upcoming_sleep > self.budget_s


class wait_retry_after_or_backoff:
    """`Retry-After` from the failure's evidence (capped), else exponential backoff with jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._cap = policy.retry_after_cap_s
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_s, max=policy.max_wait_s, jitter=policy.jitter_s
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = retry_after_s(exc.evidence) if isinstance(exc, InfraFailure) else None
        if retry_after is not None:
            return min(retry_after, self._cap)
        return self._backoff(retry_state)


def retry_after_s(evidence: Mapping[str, Any] | None, *, now: datetime | None = None) -> float | None:
    """Seconds asked for by a `Retry-After` header (delta-seconds or HTTP-date), or None."""
    headers = (evidence or {}).get("headers") or {}
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if value is None:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _note_retry(describe: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, InfraFailure):  # retry predicate guarantees it; be explicit anyway
            return
        wait = state.upcoming_sleep
        record.current().note_retry(
            record.Retry(state.attempt_number, exc.category, exc.detail, round(wait, 3))
        )
        log.warning(
            "%s: attempt %d failed (%s), retrying in %.2fs", describe, state.attempt_number, exc, wait
        )

    return before_sleep


def _retrying_kwargs(policy: RetryPolicy, describe: str, clock: Callable[[], float] | None) -> dict[str, Any]:
    return {
        "retry": retry_if_exception_type(InfraFailure),
        "stop": stop_after_attempt(policy.max_attempts)
        | stop_before_budget(policy.budget_s, clock or time.monotonic),
        "wait": wait_retry_after_or_backoff(policy),
        "before_sleep": _note_retry(describe),
        "reraise": True,
    }


async def retry_async(
    operation: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    describe: str,
    attempt_context: AttemptContext | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], float] | None = None,
) -> T:
    """Run `operation(attempt_number)` until it succeeds, fails with a non-infra error, or the
    policy is spent; then re-raise the last failure. `sleep`/`clock` exist for tests."""
    context = attempt_context or _default_attempt_context
    retrying = AsyncRetrying(sleep=sleep or asyncio.sleep, **_retrying_kwargs(policy, describe, clock))
    attempt_number = 0
    try:
        async for attempt in retrying:
            with attempt:
                attempt_number = attempt.retry_state.attempt_number
                with context(attempt_number, describe):
                    result = await operation(attempt_number)
    finally:
        record.current().note_attempts(max(attempt_number, 1))
    return result


def retry_sync(
    operation: Callable[[int], T],
    policy: RetryPolicy,
    *,
    describe: str,
    attempt_context: AttemptContext | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> T:
    """The synchronous twin of `retry_async`."""
    context = attempt_context or _default_attempt_context
    retrying = Retrying(sleep=sleep or time.sleep, **_retrying_kwargs(policy, describe, clock))
    attempt_number = 0
    try:
        for attempt in retrying:
            with attempt:
                attempt_number = attempt.retry_state.attempt_number
                with context(attempt_number, describe):
                    result = operation(attempt_number)
    finally:
        record.current().note_attempts(max(attempt_number, 1))
    return result
