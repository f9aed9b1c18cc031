"""Measuring a verify-fix gate, inside its test: the figures go into the test's journal (the
gate's measured value, threshold and detail), the judgement is the test's outcome (a failure raises
its classified `E2EFailure`; too little evidence skips, saying how to measure it). The gates' model
(status per gate, the FIXED / NOT FIXED / INCONCLUSIVE verdict) is `harness.report.gates`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from harness import allure_api as allure
from harness import journal
from harness.classify import Expect, classify_http, finding
from harness.errors import E2EFailure, ProductFailure
from harness.evidence import HttpEvidence, Observation
from harness.settings import StartupEvidence, VerifyFix
from harness.slo import percentile, wilson_lower
from harness.startup import kinds
from harness.startup.sources import StartupWindow, new_revision_command
from harness.startup.tally import StartupTally
from harness.taxonomy import Category


def note_gate(measured: Any, threshold: str, detail: str | None = None, **figures: Any) -> None:
    """This test's gate figures, and the run's measurements (verdict.json `slo`)."""
    current = journal.current()
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
        raise E2EFailure.judged(
            judgement,
            f"the {issue} signature is still seen in {len(hits)}/{len(probes)} probes: {ev.summary()}",
            ev.to_dict(),
            service="backend",
            unjudged=Category.INFRA_GATEWAY,
        )


def startup_tally(window: StartupWindow) -> StartupTally:
    """The window's startups; the gates that need them are unmeasured (skipped, saying why and how to
    read them) when the record could not be read."""
    if window.tally is None:
        pytest.skip(f"startup evidence unmeasured: {window.unmeasured}")
    startups = window.tally
    allure.attach(
        "\n".join([startups.text(), *startups.lines]),
        name="startups",
        attachment_type=allure.attachment_type.TEXT,
    )
    journal.current().measurements.update(startups=startups.text())
    return startups


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


def _startup_failure(startups: StartupTally, message: str, kind: str) -> E2EFailure:
    """Startups failing, or slow, in the backend's own record: infrastructure (the catalogue knows
    startups failing by the database phase's timeout as #1278)."""
    phases = ", ".join(f"{phase} {n}" for phase, n in sorted(startups.failed_phases.items()))
    died = Counter(kinds.identify(r).kind_id for r in startups.records if r.outcome == "failed")
    if died:
        phases += f"; how: {', '.join(f'{k} {n}' for k, n in died.most_common())}"
    category = Category.INFRA_STARTING if kind.startswith("startups_failed") else Category.INFRA_DEPENDENCY
    judgement = finding(
        Observation(channel="logs", target="backend", path="startup"), category, kind, message
    )
    return E2EFailure.judged(
        judgement,
        f"{message}{f' (failing phases: {phases})' if phases else ''}; {startups.text()}",
        {"startups": startups.to_dict()},
        service="backend",
    )


def require_startup_success(startups: StartupTally, verify: VerifyFix, evidence: StartupEvidence) -> None:
    """The startup success rate is above the status update's threshold, over enough finished startups."""
    finished = startups.ok + startups.failed
    note_gate(
        what_it_supports(startups.ok, finished) if finished else None,
        f"> {verify.min_startup_success:.0%} over >= {verify.min_startups} startups",
        startups.text(),
        startups_ok=startups.ok,
        startups_failed=startups.failed,
        startups_incomplete=startups.incomplete,
        startup_success_rate=startups.success_rate,
        startup_wilson_lower_95=startups.wilson_lower_95,
    )
    rate = startups.success_rate
    if rate is not None and rate <= verify.min_startup_success and startups.failed:
        # #1278 is the database phase running out its time, not any death in that phase: a refused
        # password dies there too, at once (harness.startup.kinds reads the manner from the record).
        timed_out = [
            r
            for r in startups.records
            if r.outcome == "failed"
            and r.failed_phase == "database"
            and kinds.identify(r).manner == "timeout"
        ]
        kind = "startups_failed_by_database_timeout" if timed_out else "startups_failed"
        raise _startup_failure(
            startups,
            f"startup success rate {startups.ok}/{finished} = {rate:.1%} is not above {verify.min_startup_success:.0%}",
            kind,
        )
    if finished < verify.min_startups:
        _too_few(finished, verify, evidence, "finished startup(s)")


def require_db_phase(
    startups: StartupTally, figure: str, seconds: float | None, verify: VerifyFix, evidence: StartupEvidence
) -> None:
    """The database phase's `figure` (p95 or max) is under the status update's threshold, over enough
    startups."""
    threshold = verify.max_db_phase_s
    shown = None if seconds is None else f"{seconds:.3f}s ({startups.db_phase_samples} startups)"
    note_gate(
        shown,
        f"< {threshold:g}s over >= {verify.min_startups} startups",
        startups.text(),
        **{f"database_phase_{figure}_s": seconds},
    )
    if seconds is not None and seconds >= threshold:
        message = f"database phase {figure} {seconds:.3f}s is not under {threshold:g}s"
        raise _startup_failure(startups, message, "db_phase_slow")
    if startups.db_phase_samples < verify.min_startups:
        _too_few(startups.db_phase_samples, verify, evidence, "startup(s) with a database-phase timing")
