"""What a run verified: the platform's golden path broken into capabilities, each verified, failed,
or not verified with the reason.

A test says what it verifies with `@pytest.mark.verifies("<capability>")`. A capability is verified
when at least one of its tests passed and none failed; failed when one failed; otherwise not verified
(not selected, skipped with the skip's reason, or not reached). A skipped golden-path step that the
selection included makes the run `incomplete`: a green run must not claim what it never tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from harness.text import first_line, reason

State = Literal["verified", "failed", "not_verified"]


@dataclass(frozen=True)
class Capability:
    name: str
    title: str
    golden_path: bool  # a step of login -> chat -> AI answer -> stored: skipping it leaves the run incomplete


CAPABILITIES: tuple[Capability, ...] = (
    Capability("backend_health", "backend health", False),
    Capability("auth_health", "auth health", False),
    Capability("login", "login", True),
    Capability("token_checks", "token checks", True),
    Capability("chat", "chat (5 events)", True),
    Capability("ai_answer", "AI answer", True),
    Capability("persistence", "persistence", True),
    Capability("negative_auth", "negative auth", False),
)


@dataclass(frozen=True)
class TestOutcome:
    """What coverage needs of one test result."""

    __test__ = False
    capabilities: tuple[str, ...]
    status: str  # passed | failed | broken | skipped | not_reached
    message: str | None = None


@dataclass(frozen=True)
class Coverage:
    name: str
    title: str
    golden_path: bool
    state: State
    reason: str | None = None  # why it is not verified, or what was left out of a verified one
    tests: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute(outcomes: Iterable[TestOutcome]) -> list[Coverage]:
    """Each capability's state, in catalogue order."""
    by_capability: dict[str, list[TestOutcome]] = {c.name: [] for c in CAPABILITIES}
    for outcome in outcomes:
        for name in outcome.capabilities:
            by_capability.setdefault(name, []).append(outcome)
    return [_judge(c, by_capability[c.name]) for c in CAPABILITIES]


def _judge(capability: Capability, tests: Sequence[TestOutcome]) -> Coverage:
    def of(state: State, reason: str | None = None) -> Coverage:
        return Coverage(capability.name, capability.title, capability.golden_path, state, reason, len(tests))

    if not tests:
        return of("not_verified", "not selected")
    failed = [t for t in tests if t.status in ("failed", "broken")]
    if failed:
        return of("failed", reason(failed[0].message))
    skipped = [t for t in tests if t.status == "skipped"]
    unreached = [t for t in tests if t.status == "not_reached"]
    if any(t.status == "passed" for t in tests):
        left_out = _reasons(skipped) or ("not reached" if unreached else None)
        return of("verified", f"partly: {left_out}" if left_out else None)
    if skipped:
        return of("not_verified", f"skipped: {_reasons(skipped)}")
    return of("not_verified", "not reached: the run ended before its tests ran")


def _reasons(tests: Sequence[TestOutcome]) -> str | None:
    seen: dict[str, None] = {}
    for test in tests:
        seen.setdefault(first_line(test.message) or "no reason given", None)
    return "; ".join(seen) or None


def incomplete(coverage: Sequence[Coverage]) -> list[Coverage]:
    """Golden-path capabilities the selection included but the run could not verify (skipped or
    not reached, as opposed to failed or deliberately not selected)."""
    return [c for c in coverage if c.golden_path and c.state == "not_verified" and c.reason != "not selected"]
