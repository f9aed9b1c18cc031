"""Bounded retries for transient infrastructure failures only (tenacity underneath).

A `ProductFailure` is a verdict and is never retried; neither is any other exception (a bug in a
test is not flakiness), nor an `infra.config` refusal (staging will not configure itself). Waits
grow exponentially with jitter, except that a `Retry-After` header in the failure's evidence is
honoured (capped). The budget stop refuses to *start* a wait that would end past the budget, so
retrying never overshoots it by sleeping. A failure the caller calls `terminal` (a name that does
not resolve, a certificate that fails, a refused connection on a host that never answered) gets one
quick re-check and no more: backoff does not fix DNS. A fresh tenacity object is created per call
(a shared one corrupts state across coroutines); the last failure is re-raised as itself.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_base, stop_after_attempt, wait_exponential_jitter
from tenacity.stop import stop_base

from harness import journal
from harness.errors import InfraFailure
from harness.settings import Settings

T = TypeVar("T")
Terminal = Callable[[InfraFailure], bool]

QUICK_RECHECK_S = 0.3  # the one re-check of a terminal failure: a blip in DNS or a listener restarting

log = logging.getLogger(__name__)


def never_terminal(failure: InfraFailure) -> bool:
    return False


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
        """The run's policy (`E2E_RETRY_*`, defaults per profile): local runs fail fast, the budget
        rather than the count bounding them; staging waits long enough to ride out a restart."""
        return cls(
            budget_s=settings.retry_budget_s,
            max_attempts=settings.retry_max_attempts,
            initial_s=settings.retry_initial_s,
            max_wait_s=settings.retry_max_wait_s,
            jitter_s=settings.retry_jitter_s,
            retry_after_cap_s=settings.retry_after_cap_s,
        )


class retry_transient(retry_base):
    """Retry an `InfraFailure` whose category says it is transient (`Policy.retried`)."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return isinstance(exc, InfraFailure) and exc.category.policy.retried


class stop_before_budget(stop_base):
    """Stop when the upcoming wait would end past the budget (measured on our own clock)."""

    def __init__(self, budget_s: float, clock: Callable[[], float]) -> None:
        self.budget_s = budget_s
        self._clock = clock
        self._start = clock()

    def __call__(self, retry_state: RetryCallState) -> bool:
        return (self._clock() - self._start) + retry_state.upcoming_sleep > self.budget_s


class stop_when_confirmed(stop_base):
    """Stop once a terminal failure has been seen twice (the first try and its quick re-check)."""

    def __init__(self, terminal: Terminal) -> None:
        self._terminal = terminal

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return isinstance(exc, InfraFailure) and self._terminal(exc) and retry_state.attempt_number >= 2


class wait_retry_after_or_backoff:
    """`Retry-After` from the failure's evidence (capped), a quick re-check for a terminal failure,
    else exponential backoff with jitter."""

    def __init__(self, policy: RetryPolicy, terminal: Terminal) -> None:
        self._cap = policy.retry_after_cap_s
        self._terminal = terminal
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_s, max=policy.max_wait_s, jitter=policy.jitter_s
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, InfraFailure):
            if self._terminal(exc):
                return QUICK_RECHECK_S
            retry_after = retry_after_s(exc.evidence)
            if retry_after is not None:
                return min(retry_after, self._cap)
        return float(self._backoff(retry_state))


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
        if not isinstance(exc, InfraFailure):  # the retry predicate guarantees it; be explicit anyway
            return
        wait = state.upcoming_sleep
        journal.current().note_retry(
            journal.Retry(state.attempt_number, exc.category, exc.detail, round(wait, 3))
        )
        log.warning(
            "%s: attempt %d failed (%s), retrying in %.2fs", describe, state.attempt_number, exc, wait
        )

    return before_sleep


async def retry_async(
    operation: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    describe: str,
    terminal: Terminal = never_terminal,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], float] | None = None,
) -> T:
    """Run `operation(attempt_number)` until it succeeds, fails with a non-transient error, or the
    policy is spent; then re-raise the last failure. Every attempt of an operation that needed more
    than one is noted in the test record (the report shows each as a step). `sleep`/`clock` exist
    for tests."""
    retrying = AsyncRetrying(
        retry=retry_transient(),
        stop=stop_after_attempt(policy.max_attempts)
        | stop_before_budget(policy.budget_s, clock or time.monotonic)
        | stop_when_confirmed(terminal),
        wait=wait_retry_after_or_backoff(policy, terminal),
        before_sleep=_note_retry(describe),
        reraise=True,
        sleep=sleep or asyncio.sleep,
    )
    attempt_number = 0
    outcomes: list[str] = []
    try:
        async for attempt in retrying:
            with attempt:
                attempt_number = attempt.retry_state.attempt_number
                try:
                    result = await operation(attempt_number)
                except Exception as exc:
                    outcomes.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    raise
                outcomes.append("passed")
    finally:
        current = journal.current()
        current.note_attempts(max(attempt_number, 1))
        if len(outcomes) > 1:
            current.note_attempt_log(describe, outcomes)
    return result
