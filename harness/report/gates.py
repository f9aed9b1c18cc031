"""The gates of post-fix verification: each measured value, its threshold, and passed, failed or
unmeasured (with the reason and how to measure it). The verified issue is FIXED only when every gate was
measured and passed; NOT FIXED when one failed; INCONCLUSIVE when none failed but some were not
measured (skipped is not verified).

A verify-fix test names its gate with `@pytest.mark.gate("<name>")` and measures it with one of
the `require_*` functions of `harness.gate_checks`, which put its figures in the test's journal; the
gate's status is the test's outcome. Tests that share a gate (the golden-path runs) pass it together.
One gate is the run's own: no test needed a retry to pass. This module is the model only: it judges
the results it is given, and measures nothing.

A gate judged on too little evidence is unmeasured, not passed: the startup gates need at least
`E2E_SLO_MIN_STARTUPS` finished startups (the status update says "consistently"), and each line says
what its evidence supports (a rate with the highest failure rate still consistent with it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from harness.text import first_line, reason

GateStatus = Literal["passed", "failed", "unmeasured"]
FixVerdict = Literal["FIXED", "NOT FIXED", "INCONCLUSIVE"]
NO_RETRY = "no_retry_needed"

TITLES: dict[str, str] = {
    "health": "backend /health answers healthy within the wait bound",
    "golden_path": "golden path (login, chat, 5 events, AI answer) every run",
    "availability": "health availability over the window",
    "health_p95": "health latency p95",
    "no_known_issue": "no probe shows the verified issue's signature",
    "startup_success_rate": "startup success rate (ok / (ok + failed)) in the window",
    "db_phase_p95": "database phase (SMD phase 3) p95",
    "db_phase_max": "database phase max (Cloud SQL connection < 30 s consistently)",
    NO_RETRY: "no test needed an infrastructure retry to pass",
}


class GateResult(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def gate(self) -> str | None: ...
    @property
    def gate_figures(self) -> Mapping[str, Any] | None: ...
    @property
    def message(self) -> str | None: ...
    @property
    def flaky(self) -> bool: ...
    @property
    def nodeid(self) -> str: ...


@dataclass(frozen=True)
class Gate:
    name: str
    title: str
    status: GateStatus
    measured: Any = None
    threshold: str | None = None
    detail: str | None = None  # what was measured, or why it was not and how to measure it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(tests: Sequence[GateResult]) -> list[Gate]:
    """One gate per gate name (in the order first seen), plus the run's own no-retry gate."""
    grouped: dict[str, list[GateResult]] = {}
    for test in tests:
        if test.gate:
            grouped.setdefault(test.gate, []).append(test)
    gates = [_gate(name, group) for name, group in grouped.items()]
    flaky = [t.nodeid.split("::")[-1] for t in tests if t.flaky]
    gates.append(
        Gate(
            NO_RETRY,
            TITLES[NO_RETRY],
            "failed" if flaky else "passed",
            measured=len(flaky),
            threshold="0 retried passes",
            detail=f"passed only after a retry: {', '.join(flaky)}" if flaky else None,
        )
    )
    return gates


def _gate(name: str, tests: Sequence[GateResult]) -> Gate:
    figures: dict[str, Any] = {}
    for test in tests:
        figures.update(test.gate_figures or {})
    failed = [t for t in tests if t.status in ("failed", "broken")]
    skipped = [t for t in tests if t.status == "skipped"]
    status: GateStatus = "failed" if failed else "unmeasured" if skipped or not tests else "passed"
    detail = figures.get("detail")
    if failed:
        detail = reason(failed[0].message) or detail
    elif skipped:
        detail = first_line(skipped[0].message) or "skipped"
    if len(tests) > 1:
        passed = sum(t.status == "passed" for t in tests)
        figures.setdefault("measured", f"{passed}/{len(tests)} passed")
        figures.setdefault("threshold", "every run passes")
    return Gate(
        name,
        TITLES.get(name, name),
        status,
        measured=figures.get("measured"),
        threshold=figures.get("threshold"),
        detail=detail,
    )


def fix_verdict(gates: Sequence[Gate]) -> FixVerdict:
    if any(g.status == "failed" for g in gates):
        return "NOT FIXED"
    if any(g.status == "unmeasured" for g in gates):
        return "INCONCLUSIVE"
    return "FIXED"
