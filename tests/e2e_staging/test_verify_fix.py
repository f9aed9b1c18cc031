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

from typing import Any

import pytest

from harness import allure_api as allure
from harness import gate_checks, journal
from harness.allure_steps import label_issue
from harness.evidence import HttpEvidence
from harness.operations import Operations
from harness.settings import Settings
from harness.startup.sources import read_startups
from harness.startup.tally import StartupTally
from harness.turn import validate_turn

QUESTION = "After the infrastructure fix, what is 40 + 2 and where is this conversation stored?"

pytestmark = [
    pytest.mark.verify_fix,
    pytest.mark.xdist_group("verify_fix"),
    allure.feature("Post-fix verification"),
    allure.severity(allure.severity_level.BLOCKER),
]


@pytest.fixture(autouse=True)
def _the_verified_issue(settings: Settings) -> None:
    """Every gate names the issue whose fix it verifies (`E2E_VERIFY_ISSUE`), linked from the catalogue."""
    label_issue(settings.verify.issue)


# -- the measurements, shared by the gates ----------------------------------------------------------


@pytest.fixture(scope="module")
def recovered(platform: Operations, settings: Settings, pytestconfig: pytest.Config) -> dict[str, Any]:
    """Gate 1, and the precondition of every probe: the backend answers healthy within the bound."""
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        assert capture is not None and terminal is not None, "pytest's capture and terminal plugins"
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"[verify-fix] {line}")

    verify = settings.verify
    with allure.step(f"wait up to {verify.wait_s:g}s for the backend to answer healthy"):
        body, waited = platform.wait_until_healthy(verify.wait_s, verify.poll_interval_s, progress)
    return {"health": body, "waited_s": round(waited, 2)}


@pytest.fixture(scope="module")
def availability(platform: Operations, settings: Settings, recovered: dict[str, Any]) -> list[HttpEvidence]:
    """Plain /health probes spread over the window (never retried: each one counts)."""
    verify = settings.verify
    with allure.step(f"{verify.probes} health probes over {verify.window_s:g}s"):
        return platform.sample("backend", "/health", verify.probes, verify.window_s)


@pytest.fixture(scope="module")
def startups(settings: Settings, pytestconfig: pytest.Config) -> StartupTally:
    """The backend's startups in the window, from its own record (read once)."""
    pytestconfig.hook.pytest_e2e_await_startups(
        config=pytestconfig, minimum=settings.verify.min_startups, timeout_s=settings.verify.wait_s
    )
    with allure.step("read the backend's startup record over the window"):
        return gate_checks.startup_tally(read_startups(settings))


# -- the gates -----------------------------------------------------------------------------------------


@pytest.mark.gate("health")
@pytest.mark.verifies("backend_health")
@allure.title("The backend answers healthy within the wait bound")
def test_backend_answers_healthy_within_the_wait_bound(recovered: dict[str, Any], settings: Settings) -> None:
    waited = recovered["waited_s"]
    gate_checks.note_gate(f"{waited}s", f"<= {settings.verify.wait_s:g}s", waited_for_health_s=waited)


@pytest.mark.gate("golden_path")
@pytest.mark.verifies("login")
@pytest.mark.verifies("chat")
@pytest.mark.verifies("ai_answer")
@allure.title("Golden path run {golden_run}: login, chat, the five events, an answer about the question")
def test_golden_path_run(golden_run: int, platform: Operations, recovered: dict[str, Any]) -> None:
    turn = platform.chat(platform.login().access_token, QUESTION)
    allure.attach(
        turn.transcript_json(),
        name=f"run {golden_run} transcript",
        attachment_type=allure.attachment_type.JSON,
    )
    validate_turn(turn, QUESTION)
    journal.current().measurements[f"golden_path_run{golden_run}_s"] = round(turn.elapsed_s, 3)


@pytest.mark.gate("availability")
@allure.title("Health availability over the window meets the SLO")
def test_availability_meets_the_slo(availability: list[HttpEvidence], settings: Settings) -> None:
    gate_checks.require_availability(availability, settings.verify.min_availability)


@pytest.mark.gate("health_p95")
@allure.title("Health latency p95 is under its threshold")
def test_health_latency_p95_is_under_its_threshold(
    availability: list[HttpEvidence], settings: Settings
) -> None:
    gate_checks.require_p95(availability, settings.verify.max_p95_ms)


@pytest.mark.gate("no_known_issue")
@allure.title("No probe shows the verified issue's signature")
def test_no_probe_shows_the_verified_issues_signature(
    availability: list[HttpEvidence], settings: Settings
) -> None:
    gate_checks.require_no_signature(availability, settings.verify.issue)


@pytest.mark.gate("startup_success_rate")
@allure.title("Staging startups succeed at the status update's rate, over enough startups")
def test_startup_success_rate(startups: StartupTally, settings: Settings) -> None:
    gate_checks.require_startup_success(startups, settings.verify, settings.startup)


@pytest.mark.gate("db_phase_p95")
@allure.title("The database phase (SMD phase 3) p95 is under its threshold")
def test_database_phase_p95(startups: StartupTally, settings: Settings) -> None:
    gate_checks.require_db_phase(startups, "p95", startups.db_phase_p95_s, settings.verify, settings.startup)


@pytest.mark.gate("db_phase_max")
@allure.title("Every database phase (Cloud SQL connection) is under its threshold")
def test_database_phase_max(startups: StartupTally, settings: Settings) -> None:
    gate_checks.require_db_phase(startups, "max", startups.db_phase_max_s, settings.verify, settings.startup)
