"""What the current test has done so far: attempts, retries, evidence, measurements.

The pytest plugin opens one `TestJournal` per test and binds it for each phase (setup, call,
teardown) in a context variable; the operations the test performs write into the bound record,
which the plugin then reads for the verdict and for Allure. A context variable, not a module slot:
it follows the test into the event loop thread where its operations run (see `harness.loop`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from harness.taxonomy import Category


@dataclass
class Retry:
    attempt: int
    category: Category
    message: str
    wait_s: float


@dataclass
class TestJournal:
    __test__ = False  # not a pytest test class

    nodeid: str = ""
    attempts: int = 1  # attempts of the operation that needed the most
    retries: list[Retry] = field(default_factory=list)
    reproduced: str | None = None  # set only by a reproduction test that saw its issue's signature
    note: str | None = None  # what a passed test wants the summary to say (e.g. "reproduced in 6/6 probes")
    service: str | None = None  # the service of the last operation: where a failure happened
    side_endpoint: bool = False  # that operation asked a side endpoint (readiness, database health)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    attempt_log: list[tuple[str, list[str]]] = field(default_factory=list)  # retried operations, each attempt
    measurements: dict[str, Any] = field(default_factory=dict)  # verify-fix figures, merged into verdict.slo
    gate: dict[str, Any] = field(default_factory=dict)  # verify-fix: this test's gate (measured, threshold)
    attached: int = 0  # evidence entries already attached to Allure

    @property
    def flaky(self) -> bool:
        """Passed only after at least one infrastructure retry."""
        return bool(self.retries)

    def note_retry(self, retry: Retry) -> None:
        self.retries.append(retry)

    def note_attempts(self, attempts: int) -> None:
        self.attempts = max(self.attempts, attempts)

    def note_attempt_log(self, describe: str, outcomes: list[str]) -> None:
        self.attempt_log.append((describe, outcomes))

    def note_evidence(self, evidence: dict[str, Any]) -> None:
        self.evidence.append(evidence)

    def note_operation(self, service: str, side_endpoint: bool = False) -> None:
        self.service, self.side_endpoint = service, side_endpoint

    def unattached(self) -> list[dict[str, Any]]:
        """Evidence gathered since the last call (each phase attaches its own)."""
        fresh = self.evidence[self.attached :]
        self.attached = len(self.evidence)
        return fresh


_current: ContextVar[TestJournal | None] = ContextVar("e2e_test_record", default=None)


def current() -> TestJournal:
    """The bound record; outside a test (a script, a benchmark) a throwaway one."""
    bound = _current.get()
    if bound is None:
        bound = TestJournal()
        _current.set(bound)
    return bound


@contextlib.contextmanager
def bound(rec: TestJournal) -> Iterator[TestJournal]:
    """Bind `rec` for the duration of a test phase."""
    token = _current.set(rec)
    try:
        yield rec
    finally:
        _current.reset(token)
