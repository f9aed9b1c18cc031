"""The gates of post-fix verification: each measured value, its threshold, and passed, failed or
unmeasured (with the reason and how to measure it). Issue #1278 is FIXED only when every gate was
measured and passed; NOT FIXED when one failed; INCONCLUSIVE when none failed but some were not
measured (skipped is not verified).

A verify-fix test names its gate with `@pytest.mark.gate("<name>")` and measures it with one of
the `require_*` functions below, which put its figures in the test record (`note_gate`); the gate's
status is the test's outcome. Tests that share a gate (the golden-path runs) pass it together. One
gate is the run's own: no test needed a retry to pass.

A gate judged on too little evidence is unmeasured, not passed: the startup gates need at least
`E2E_SLO_MIN_STARTUPS` finished startups (the status update says "consistently"), and each line says
what its evidence supports (a rate with the highest failure rate still consistent with it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import allure
import pytest

from harness import record
from harness.classify import Expect, classify_http, finding
from harness.errors import E2EFailure, InfraFailure, ProductFailure
from harness.evidence import HttpEvidence, Observation
from harness.settings import StartupEvidence, VerifyFix
from harness.slo import percentile, wilson_lower
from harness.startup_evidence import StartupSummary
from harness.startup_sources import StartupWindow, new_revision_command
from harness.taxonomy import Category
from harness.text import first_line, reason

GateStatus = Literal["passed", "failed", "unmeasured"]
FixVerdict = Literal["FIXED", "NOT FIXED", "INCONCLUSIVE"]
NO_RETRY = "no_retry_needed"

TITLES: dict[str, str] = {
    "health": "backend /health answers healthy within the wait bound",
    "golden_path": "golden path (login, chat, 5 events, AI answer) every run",
    "availability": "health availability over the window",
    "health_p95": "health latency p95",
    "no_known_issue": "no #1278 signature in any probe",
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


def verdict(gates: Sequence[Gate]) -> FixVerdict:
    if any(g.status == "failed" for g in gates):
        return "NOT FIXED"
    if any(g.status == "unmeasured" for g in gates):
        return "INCONCLUSIVE"
    return "FIXED"


# -- measuring a gate (in a verify-fix test) ---------------------------------------------------------


def note_gate(measured: Any, threshold: str, detail: str | None = None, **figures: Any) -> None:
    """This test's gate figures, and the run's measurements (verdict.json `slo`)."""
    current = record.current()
    current.gate = {"measured": measured, "threshold": threshold, "detail": detail}
    current.measurements.update(figures)
    allure.attach(str(current.gate | figures), name="gate", attachment_type=allure.attachment_type.TEXT)


def _slo_failure(message: str) -> ProductFailure:
    return ProductFailure(Category.PRODUCT_SLO, message, kind="slo")


def healthy_probe(ev: HttpEvidence) -> bool:
    """A probe the backend answered itself, with a healthy body."""
    return classify_http(ev, Expect(), target="backend").ok and (ev.json or {}).get("status") in (
        "ok",
        "healthy",
    )


def require_availability(probes: Sequence[HttpEvidence], minimum: float) -> None:
    ok = sum(healthy_probe(ev) for ev in probes)
    total = len(probes)
    rate, lower = ok / total, wilson_lower(ok, total)
    note_gate(
        f"{ok}/{total} = {rate:.1%}",
        f">= {minimum:.0%}",
        f"{ok}/{total} probes healthy, Wilson 95% lower bound {lower:.1%}",
        availability_probes=total,
        availability_ok=ok,
        availability_rate=round(rate, 4),
        availability_wilson_lower_95=round(lower, 4),
    )
    if rate < minimum:
        first_bad = next(ev for ev in probes if not healthy_probe(ev))
        raise _slo_failure(
            f"availability {ok}/{total} = {rate:.1%} (Wilson 95% lower bound {lower:.1%}) is under "
            f"{minimum:.0%}; e.g. {first_bad.summary()}"
        )


def require_p95(probes: Sequence[HttpEvidence], max_ms: float) -> None:
    p95_ms = percentile([ev.elapsed_s * 1000 for ev in probes], 95)
    note_gate(f"{p95_ms:.1f} ms", f"< {max_ms:g} ms", health_p95_ms=round(p95_ms, 1))
    if not p95_ms < max_ms:
        raise _slo_failure(f"p95 health latency {p95_ms:.0f} ms is over {max_ms:g} ms")


def require_no_signature(probes: Sequence[HttpEvidence], issue: str) -> None:
    """No probe shows `issue`'s signature (from outside: the record is the startup gates' to read)."""
    judged = [(ev, classify_http(ev, Expect(), target="backend")) for ev in probes]
    hits = [(ev, j) for ev, j in judged if j.known_issue == issue]
    note_gate(len(hits), "0 probes", issue_1278_signatures=len(hits))
    if hits:
        ev, judgement = hits[0]
        raise E2EFailure.of(
            judgement.category or Category.INFRA_GATEWAY,
            f"the {issue} signature is still seen in {len(hits)}/{len(probes)} probes: {ev.summary()}",
            evidence=ev.to_dict(),
            known_issue=issue,
            kind=judgement.kind,
            service="backend",
            signature=judgement.signature,
        )


def startup_summary(window: StartupWindow) -> StartupSummary:
    """The window's startups; the gates that need them are unmeasured (skipped, saying why and how to
    read them) when the record could not be read."""
    if window.summary is None:
        pytest.skip(f"startup evidence unmeasured: {window.unmeasured}")
    summary = window.summary
    allure.attach(
        "\n".join([summary.text(), *summary.lines]),
        name="startups",
        attachment_type=allure.attachment_type.TEXT,
    )
    record.current().measurements.update(startups=summary.text())
    return summary


def _too_few(have: int, verify: VerifyFix, evidence: StartupEvidence, what: str) -> None:
    """Unmeasured: fewer startups than the gate needs; how many more, and how to cause them."""
    missing = verify.min_startups - have
    pytest.skip(
        f"only {have} {what} in the window, at least {verify.min_startups} needed ({missing} more): "
        f"start new instances of the backend, e.g. a new revision: `{new_revision_command(evidence)}` "
        "(each starts at least one instance; repeat, or raise --min-instances), then run again with "
        "E2E_STARTUP_SINCE set to before the first one"
    )


def what_it_supports(ok: int, finished: int) -> str:
    """A rate with the highest failure rate still consistent with it at 95 % confidence."""
    rate = ok / finished
    worst = 1 - wilson_lower(ok, finished)
    return (
        f"{ok}/{finished} = {rate:.1%}; the failure rate may still be as high as {worst:.1%} (95% confidence)"
    )


def _startup_failure(summary: StartupSummary, message: str, kind: str) -> InfraFailure:
    """Startups failing, or slow, in the backend's own record: infrastructure (the catalogue knows
    startups failing in the database phase as #1278)."""
    phases = ", ".join(f"{phase} {n}" for phase, n in sorted(summary.failed_phases.items()))
    category = Category.INFRA_STARTING if kind.startswith("startups_failed") else Category.INFRA_DEPENDENCY
    judgement = finding(
        Observation(channel="logs", target="backend", path="startup"), category, kind, message
    )
    return InfraFailure(
        category,
        f"{message}{f' (failing phases: {phases})' if phases else ''}; {summary.text()}",
        {"startups": summary.to_dict()},
        judgement.known_issue,
        kind=kind,
        service="backend",
        signature=judgement.signature,
    )


def require_startup_success(summary: StartupSummary, verify: VerifyFix, evidence: StartupEvidence) -> None:
    """The startup success rate is above the status update's threshold, over enough finished startups."""
    finished = summary.ok + summary.failed
    note_gate(
        what_it_supports(summary.ok, finished) if finished else None,
        f"> {verify.min_startup_success:.0%} over >= {verify.min_startups} startups",
        summary.text(),
        startups_ok=summary.ok,
        startups_failed=summary.failed,
        startups_incomplete=summary.incomplete,
        startup_success_rate=summary.success_rate,
        startup_wilson_lower_95=summary.wilson_lower_95,
    )
    rate = summary.success_rate
    if rate is not None and rate <= verify.min_startup_success and summary.failed:
        kind = (
            "startups_failed_in_database_phase" if "database" in summary.failed_phases else "startups_failed"
        )
        raise _startup_failure(
            summary,
            f"startup success rate {summary.ok}/{finished} = {rate:.1%} is not above {verify.min_startup_success:.0%}",
            kind,
        )
    if finished < verify.min_startups:
        _too_few(finished, verify, evidence, "finished startup(s)")


def require_db_phase(
    summary: StartupSummary, figure: str, seconds: float | None, verify: VerifyFix, evidence: StartupEvidence
) -> None:
    """The database phase's `figure` (p95 or max) is under the status update's threshold, over enough
    startups."""
    threshold = verify.max_db_phase_s
    shown = None if seconds is None else f"{seconds:.3f}s ({summary.db_phase_samples} startups)"
    note_gate(
        shown,
        f"< {threshold:g}s over >= {verify.min_startups} startups",
        summary.text(),
        **{f"database_phase_{figure}_s": seconds},
    )
    if seconds is not None and seconds >= threshold:
        message = f"database phase {figure} {seconds:.3f}s is not under {threshold:g}s"
        raise _startup_failure(summary, message, "db_phase_slow")
    if summary.db_phase_samples < verify.min_startups:
        _too_few(summary.db_phase_samples, verify, evidence, "startup(s) with a database-phase timing")
