"""Post-infrastructure-fix verification (`make verify-fix`): is Issue #1278 fixed?

Each test is one gate of the status update's success criteria (`@pytest.mark.gate`):
1. the backend answers healthy within a bounded wait (progress on the terminal);
2. the golden path, several times; health probes spread over a window (availability, p95, no #1278
   signature);
3. from the backend's own startup logs (`E2E_STARTUP_EVIDENCE`): the startup success rate over the
   window, and the database phase's p95 and max.
FIXED only if every gate was measured and passed (and no test needed a retry: the run's own gate);
NOT FIXED if one failed; INCONCLUSIVE if some could not be measured (each says how to measure it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import allure
import pytest

from harness import record
from harness.classify import Expect, Observation, classify_http, finding
from harness.errors import E2EFailure, InfraFailure, ProductFailure
from harness.evidence import HttpEvidence
from harness.pytest_plugin import suite_of
from harness.settings import Settings
from harness.slo import percentile, wilson_lower
from harness.staging import Staging
from harness.startup_evidence import StartupSummary, parse_entries, summarize
from harness.startup_sources import load_entries
from harness.taxonomy import Category
from harness.turn import validate_turn

QUESTION = "After the infrastructure fix, what is 40 + 2 and where is this conversation stored?"
ISSUE = "issue-1278"

pytestmark = [
    pytest.mark.verify_fix,
    pytest.mark.xdist_group("verify_fix"),
    allure.epic("Issue #1278"),
    allure.feature("Post-fix verification"),
    allure.severity(allure.severity_level.BLOCKER),
    allure.link("https://github.com/netra-systems/zen/issues/1278", link_type="issue", name="#1278"),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "golden_run" in metafunc.fixturenames:
        runs = suite_of(metafunc.config).settings.verify.golden_runs
        metafunc.parametrize("golden_run", range(1, runs + 1), ids=[f"run{n}" for n in range(1, runs + 1)])


def _gate(measured: Any, threshold: str, detail: str | None = None, **figures: Any) -> None:
    """This test's gate figures, and the run's measurements (verdict.json `slo`)."""
    current = record.current()
    current.gate = {"measured": measured, "threshold": threshold, "detail": detail}
    current.measurements.update(figures)
    allure.attach(str(current.gate | figures), name="gate", attachment_type=allure.attachment_type.TEXT)


def _slo_failure(message: str) -> ProductFailure:
    return ProductFailure(Category.PRODUCT_SLO, message, kind="slo")


# -- the measurements, shared by the gates ----------------------------------------------------------


@pytest.fixture(scope="module")
def recovered(staging: Staging, settings: Settings, pytestconfig: pytest.Config) -> dict[str, Any]:
    """Gate 1, and the precondition of every probe: the backend answers healthy within the bound."""
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"[verify-fix] {line}")

    interval = 0.5 if settings.env == "local" else 5.0
    with allure.step(f"wait up to {settings.verify.wait_s:g}s for the backend to answer healthy"):
        body, waited = staging.wait_until_healthy(settings.verify.wait_s, interval, progress)
    return {"health": body, "waited_s": round(waited, 2)}


@pytest.fixture(scope="module")
def availability(staging: Staging, settings: Settings, recovered: dict[str, Any]) -> list[HttpEvidence]:
    """Plain /health probes spread over the window (never retried: each one counts)."""
    verify = settings.verify
    with allure.step(f"{verify.probes} health probes over {verify.window_s:g}s"):
        return staging.sample("backend", "/health", verify.probes, verify.window_s)


@pytest.fixture(scope="module")
def startups(settings: Settings, pytestconfig: pytest.Config) -> StartupSummary:
    """The backend's startups in the window, from its own logs; skips (unmeasured) when they cannot
    be read, saying why and how to read them."""
    evidence = settings.startup
    pytestconfig.hook.pytest_e2e_await_startups(
        config=pytestconfig, minimum=settings.verify.min_startups, timeout_s=settings.verify.wait_s
    )
    until = datetime.now(UTC)
    since = evidence.since or until - timedelta(seconds=evidence.window_s)
    spec = evidence.source or ("none" if settings.env == "local" else "gcloud")
    with allure.step(f"read startup evidence ({spec}) from {since.isoformat()} to {until.isoformat()}"):
        result = load_entries(
            spec,
            since=since,
            until=until,
            project=evidence.project,
            service=evidence.service,
            region=evidence.region,
            timeout_s=evidence.gcloud_timeout_s,
        )
    if result.unmeasured:
        pytest.skip(f"startup evidence unmeasured: {result.unmeasured}")
    summary = summarize(parse_entries(result.entries, service=evidence.service), since=since, until=until)
    allure.attach(
        "\n".join([summary.text(), *summary.lines]),
        name="startups",
        attachment_type=allure.attachment_type.TEXT,
    )
    record.current().measurements.update(startups=summary.text())
    return summary


def _probe_ok(ev: HttpEvidence) -> bool:
    return classify_http(ev, Expect(target="backend")).ok and (ev.json or {}).get("status") in (
        "ok",
        "healthy",
    )


# -- the gates -----------------------------------------------------------------------------------------


@pytest.mark.gate("health")
@pytest.mark.verifies("backend_health")
@allure.title("The backend answers healthy within the wait bound")
def test_backend_answers_healthy_within_the_wait_bound(recovered: dict[str, Any], settings: Settings) -> None:
    _gate(
        f"{recovered['waited_s']}s",
        f"<= {settings.verify.wait_s:g}s",
        waited_for_health_s=recovered["waited_s"],
    )


@pytest.mark.gate("golden_path")
@pytest.mark.verifies("login")
@pytest.mark.verifies("chat")
@pytest.mark.verifies("ai_answer")
@allure.title("Golden path run {golden_run}: login, chat, the five events, an answer about the question")
def test_golden_path_run(golden_run: int, staging: Staging, recovered: dict[str, Any]) -> None:
    login = staging.login()
    turn = staging.chat(login.access_token, QUESTION)
    allure.attach(
        turn.transcript_json(),
        name=f"run {golden_run} transcript",
        attachment_type=allure.attachment_type.JSON,
    )
    validate_turn(turn, QUESTION)
    record.current().measurements[f"golden_path_run{golden_run}_s"] = round(turn.elapsed_s, 3)


@pytest.mark.gate("availability")
@allure.title("Health availability over the window meets the SLO")
def test_availability_meets_the_slo(availability: list[HttpEvidence], settings: Settings) -> None:
    ok = sum(_probe_ok(ev) for ev in availability)
    total = len(availability)
    rate, lower = ok / total, wilson_lower(ok, total)
    threshold = settings.verify.min_availability
    _gate(
        f"{ok}/{total} = {rate:.1%}",
        f">= {threshold:.0%}",
        f"{ok}/{total} probes healthy, Wilson 95% lower bound {lower:.1%}",
        availability_probes=total,
        availability_ok=ok,
        availability_rate=round(rate, 4),
        availability_wilson_lower_95=round(lower, 4),
    )
    if rate < threshold:
        first_bad = next(ev for ev in availability if not _probe_ok(ev))
        raise _slo_failure(
            f"availability {ok}/{total} = {rate:.1%} (Wilson 95% lower bound {lower:.1%}) is under "
            f"{threshold:.0%}; e.g. {first_bad.summary()}"
        )


@pytest.mark.gate("health_p95")
@allure.title("Health latency p95 is under its threshold")
def test_health_latency_p95_is_under_its_threshold(
    availability: list[HttpEvidence], settings: Settings
) -> None:
    p95_ms = percentile([ev.elapsed_s * 1000 for ev in availability], 95)
    threshold = settings.verify.max_p95_ms
    _gate(f"{p95_ms:.1f} ms", f"< {threshold:g} ms", health_p95_ms=round(p95_ms, 1))
    if not p95_ms < threshold:
        raise _slo_failure(f"p95 health latency {p95_ms:.0f} ms is over {threshold:g} ms")


@pytest.mark.gate("no_known_issue")
@allure.title("No probe shows the #1278 signature")
def test_no_issue_1278_signature_in_any_probe(availability: list[HttpEvidence]) -> None:
    outcomes = [(ev, classify_http(ev, Expect(target="backend"))) for ev in availability]
    hits = [(ev, outcome) for ev, outcome in outcomes if outcome.known_issue == ISSUE]
    _gate(len(hits), "0 probes", issue_1278_signatures=len(hits))
    if hits:
        ev, outcome = hits[0]
        raise E2EFailure.of(
            outcome.category or Category.INFRA_GATEWAY,
            f"the #1278 signature is still seen in {len(hits)}/{len(availability)} probes: {ev.summary()}",
            evidence=ev.to_dict(),
            known_issue=ISSUE,
            kind=outcome.kind,
            service="backend",
        )


def _startup_failure(summary: StartupSummary, message: str, kind: str) -> InfraFailure:
    """Startups failing, or slow, in the backend's own logs: infrastructure (the catalogue knows
    startups failing in the database phase as #1278)."""
    phases = ", ".join(f"{phase} {n}" for phase, n in sorted(summary.failed_phases.items()))
    category = Category.INFRA_STARTING if kind.startswith("startups_failed") else Category.INFRA_DEPENDENCY
    outcome = finding(Observation(channel="logs", target="backend", path="startup"), category, kind, message)
    return InfraFailure(
        category,
        f"{message}{f' (failing phases: {phases})' if phases else ''}; {summary.text()}",
        {"startups": summary.to_dict()},
        outcome.known_issue,
        kind=kind,
        service="backend",
    )


@pytest.mark.gate("startup_success_rate")
@allure.title("Staging startups succeed at the status update's rate over the window")
def test_startup_success_rate(startups: StartupSummary, settings: Settings) -> None:
    verify = settings.verify
    finished = startups.ok + startups.failed
    rate = startups.success_rate
    _gate(
        None
        if rate is None
        else f"{startups.ok}/{finished} = {rate:.1%} (Wilson lower {startups.wilson_lower_95:.1%})",
        f">= {verify.min_startup_success:.0%} over >= {verify.min_startups} startups",
        startups.text(),
        startups_ok=startups.ok,
        startups_failed=startups.failed,
        startups_incomplete=startups.incomplete,
        startup_success_rate=rate,
        startup_wilson_lower_95=startups.wilson_lower_95,
    )
    if finished < verify.min_startups:
        pytest.skip(
            f"only {finished} finished startup(s) in the window (at least {verify.min_startups} needed): widen "
            "E2E_STARTUP_WINDOW_S or set E2E_STARTUP_SINCE to the fix, or start new instances (a new revision)"
        )
    if rate is not None and rate < verify.min_startup_success:
        raise _startup_failure(
            startups,
            f"startup success rate {startups.ok}/{finished} = {rate:.1%} (Wilson 95% lower "
            f"{startups.wilson_lower_95:.1%}) is under {verify.min_startup_success:.0%}",
            "startups_failed_in_database_phase"
            if "database" in startups.failed_phases
            else "startups_failed",
        )


def _database_phase_gate(
    startups: StartupSummary, settings: Settings, figure: str, seconds: float | None
) -> None:
    """The database phase's `figure` (p95 or max) against the status update's threshold."""
    threshold = settings.verify.max_db_phase_s
    shown = None if seconds is None else f"{seconds:.3f}s ({startups.db_phase_samples} startups)"
    _gate(shown, f"< {threshold:g}s", startups.text(), **{f"database_phase_{figure}_s": seconds})
    if seconds is None:
        pytest.skip("no startup in the window logged a database-phase timing")
    if seconds >= threshold:
        message = f"database phase {figure} {seconds:.3f}s is not under {threshold:g}s"
        raise _startup_failure(startups, message, "db_phase_slow")


@pytest.mark.gate("db_phase_p95")
@allure.title("The database phase (SMD phase 3) p95 is under its threshold")
def test_database_phase_p95(startups: StartupSummary, settings: Settings) -> None:
    _database_phase_gate(startups, settings, "p95", startups.db_phase_p95_s)


@pytest.mark.gate("db_phase_max")
@allure.title("Every database phase (Cloud SQL connection) is under its threshold")
def test_database_phase_max(startups: StartupSummary, settings: Settings) -> None:
    _database_phase_gate(startups, settings, "max", startups.db_phase_max_s)
