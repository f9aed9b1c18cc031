"""The cause at the strength its evidence supports: confirmed, ruled out or unconfirmed by the backend's
own startup record (harness.report.cause), and what the diagnosis and the headline make of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from harness.report.cause import Cause, weigh
from harness.report.diagnosis import diagnose
from harness.report.verdict import RunFacts, TestResult, Verdict, conclude
from harness.startup.records import StartupRecord
from harness.startup.sources import StartupWindow
from harness.startup.tally import tally

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
REVISION = "netra-backend-staging-00042-xyz"
GATEWAY_503 = (
    "[infra.gateway] backend /health: 503 with a non-JSON body: a gateway page (known issue issue-1278)"
)


@dataclass(frozen=True)
class LabelledFailure:
    status: str = "broken"
    known_issue: str | None = "issue-1278"
    signature: str | None = "gateway-503-on-backend-health"
    message: str | None = GATEWAY_503


def record(n: int, outcome: str, phase: str | None = None, **fields: object) -> StartupRecord:
    values: dict[str, object] = {
        "instance": f"instance-{n}",
        "revision": REVISION,
        "started_at": T0 + timedelta(minutes=n),
        "db_phase_s": None,
        "outcome": outcome,
        "failed_phase": phase,
        "exit_code": 3 if outcome == "failed" else None,
    }
    return StartupRecord(**(values | fields))  # type: ignore[arg-type]


def window(*records: StartupRecord) -> StartupWindow:
    until = T0 + timedelta(hours=1)
    return StartupWindow("file:x", T0, until, tally=tally(records, since=T0, until=until))


UNREADABLE = StartupWindow("gcloud", T0, T0 + timedelta(hours=1), unmeasured="gcloud is not installed (...)")


def never() -> StartupWindow:
    raise AssertionError("the record was read although nothing needed it")


def test_a_run_without_a_known_issue_has_no_cause_and_reads_no_record() -> None:
    assert (
        weigh([LabelledFailure(known_issue=None, signature=None), LabelledFailure(status="passed")], never)
        is None
    )


def test_startups_dying_in_the_database_phase_confirm_1278_with_the_figures() -> None:
    records = [record(i, "failed", "database", db_phase_s=s) for i, s in enumerate((75.2, 88.0, 107.3, 90.0))]
    records += [record(8, "ok", db_phase_s=1.2), record(9, "incomplete", last_phase="database")]
    cause = weigh([LabelledFailure()], lambda: window(*records))
    assert cause is not None and (cause.status, cause.known_issue) == ("confirmed", "issue-1278")
    assert (
        cause.detail
        == f"4 of 6 startups of revision {REVISION} died in phase database after 75-107 s, exit 3"
    )


def test_startups_dying_in_another_phase_rule_1278_out_as_a_bad_deploy() -> None:
    error = "ImportError: cannot import name 'AgentRegistry' from 'netra_backend.app.agents.registry'"
    records = [record(i, "failed", "services", error=error) for i in range(5)]
    cause = weigh([LabelledFailure()], lambda: window(*records))
    assert cause is not None and (cause.status, cause.instead) == ("ruled_out", "bad_deploy")
    assert cause.detail == f"5 of 5 startups of revision {REVISION} died in phase services, exit 3 ({error})"
    assert "not issue-1278" in cause.evidence


def test_startups_succeeding_while_the_gateway_answers_503_rule_1278_out_for_the_load_balancer() -> None:
    cause = weigh(
        [LabelledFailure()],
        lambda: window(record(1, "ok", db_phase_s=0.07), record(2, "ok", db_phase_s=0.05)),
    )
    assert cause is not None and (cause.status, cause.instead) == ("ruled_out", "gateway")
    assert "2 of 2 startups" in cause.detail and "load balancer / ingress" in cause.evidence


def test_an_unreadable_record_leaves_1278_unconfirmed_saying_why_and_how() -> None:
    cause = weigh([LabelledFailure()], lambda: UNREADABLE)
    assert cause is not None and cause.status == "unconfirmed"
    assert "outside signature" in cause.evidence and "gcloud is not installed" in cause.evidence
    assert "roles/logging.viewer" in cause.evidence and cause.detail.endswith(
        "not confirmed: gcloud is not installed (...); to confirm, read the backend's startup record: "
        "E2E_STARTUP_EVIDENCE=gcloud, gcloud authenticated with roles/logging.viewer (docs/known-issues.md)"
    )


@pytest.mark.parametrize(
    "records", [(), (record(1, "incomplete", last_phase="database"),)], ids=["empty", "starting"]
)
def test_a_record_without_a_finished_startup_leaves_1278_unconfirmed(
    records: tuple[StartupRecord, ...],
) -> None:
    cause = weigh([LabelledFailure()], lambda: window(*records))
    assert cause is not None and cause.status == "unconfirmed" and "no finished startup" in cause.evidence


def test_the_platforms_own_words_confirm_without_the_record() -> None:
    own = LabelledFailure(
        signature="startups-failing-in-database-phase-in-the-logs", message="[infra.starting] rate 3/12"
    )
    cause = weigh([LabelledFailure(), own], never)
    assert cause is not None and (cause.status, cause.by) == ("confirmed", "the platform's own words")


def test_an_issue_without_a_confirmation_rule_is_confirmed_by_what_the_run_saw() -> None:
    seen = LabelledFailure(
        known_issue="staging-ws-auth-permissive", signature="socket-accepted-without-a-valid-token"
    )
    cause = weigh([seen], never)
    assert cause is not None and (cause.status, cause.by) == ("confirmed", "what the run saw")


def test_a_wrong_exit_code_does_not_confirm() -> None:
    cause = weigh([LabelledFailure()], lambda: window(record(1, "failed", "database", exit_code=1)))
    assert cause is not None and cause.status == "ruled_out"


# -- what the diagnosis and the headline make of it ---------------------------------------------------


def _result(known_issue: str | None) -> TestResult:
    return TestResult(
        nodeid="tests/e2e_staging/test_health.py::test_health",
        markers=["health"],
        status="broken",
        category="infra.gateway",
        kind="gateway_page",
        known_issue=known_issue,
        signature="gateway-503-on-backend-health",
        service="backend",
        message=GATEWAY_503,
    )


def _verdict(cause: Cause, known_issue: str | None) -> Verdict:
    return conclude(RunFacts(1, "staging", tests=(_result(known_issue),), cause=cause))


def test_a_bad_deploy_is_the_products_and_a_gateway_outage_the_infrastructures() -> None:
    bad = Cause("issue-1278", "ruled_out", "x", "5 of 5 startups died in phase services", "bad_deploy")
    lb = Cause("issue-1278", "ruled_out", "x", "3 of 3 startups succeeded", "gateway")
    assert diagnose([_result(None)], bad).kind == "product_defect"
    assert diagnose([_result(None)], lb).kind == "infrastructure"
    assert _verdict(bad, None).headline.startswith("PRODUCT DEFECT (a bad deploy, not issue-1278): 5 of 5")
    assert _verdict(lb, None).headline.startswith(
        "INFRASTRUCTURE (the load balancer / ingress, not issue-1278)"
    )


def test_an_unconfirmed_headline_never_states_the_blame_as_fact() -> None:
    said = "the failures match issue-1278's outside signature (...); not confirmed: gcloud is not installed"
    cause = Cause("issue-1278", "unconfirmed", said, said)
    line = _verdict(cause, "issue-1278").headline
    assert (
        line.startswith("KNOWN ISSUE issue-1278, unconfirmed: the failures match") and "Cloud SQL" not in line
    )


def test_a_confirmed_headline_names_its_evidence_and_the_blame() -> None:
    cause = Cause("issue-1278", "confirmed", "x", "4 of 6 startups of revision r died in phase database")
    line = _verdict(cause, "issue-1278").headline
    assert line == (
        "KNOWN ISSUE issue-1278, confirmed by the startup record (4 of 6 startups of revision r died in phase "
        "database): infrastructure (Cloud SQL via the VPC connector)"
    )


def test_a_bad_deploy_the_record_shows_is_owned_by_the_product_or_its_configuration() -> None:
    bad = Cause("issue-1278", "ruled_out", "x", "5 of 5 startups died in phase services", "bad_deploy")
    assert _verdict(bad, None).owner == "product (a bad deploy: the code or its configuration)"
