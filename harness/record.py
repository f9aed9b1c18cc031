"""What the current test has done so far: attempts, retries, known-issue hits, evidence.

The pytest plugin opens one record per test; the retry policy and the checks write into it; the
plugin reads it to fill the verdict (attempts, flaky, reproduced) and the Allure attachments.
One test runs at a time in a process (xdist workers are processes), so a module-level slot is enough.
"""

from __future__ import annotations

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
class TestRecord:
    __test__ = False  # not a pytest test class

    nodeid: str = ""
    attempts: int = 1  # attempts of the operation that needed the most
    retries: list[Retry] = field(default_factory=list)
    reproduced: str | None = None  # set only by a reproduction test that saw its issue's signature
    note: str | None = None  # what a passed test wants the summary to say (e.g. "reproduced in 6/6 probes")
    evidence: list[dict[str, Any]] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)  # SLO figures, merged into verdict.slo

    @property
    def flaky(self) -> bool:
        """Passed only after at least one infrastructure retry."""
        return bool(self.retries)

    def note_retry(self, retry: Retry) -> None:
        self.retries.append(retry)

    def note_attempts(self, attempts: int) -> None:
        self.attempts = max(self.attempts, attempts)

    def note_evidence(self, evidence: dict[str, Any]) -> None:
        self.evidence.append(evidence)


_current = TestRecord()


def current() -> TestRecord:
    return _current


def begin(nodeid: str) -> TestRecord:
    global _current
    _current = TestRecord(nodeid=nodeid)
    return _current
