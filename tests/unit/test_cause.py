"""The cause at the strength its evidence supports: confirmed, ruled out or unconfirmed by the backend's
own startup record (harness.report.cause), and what the diagnosis and the headline make of it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypedDict, Unpack

import pytest

from harness.report import cause as cause_module
from harness.report.cause import Cause, weigh
from harness.report.diagnosis import diagnose
from harness.report.verdict import RunFacts, TestResult, Verdict, conclude
from harness.startup.records import AppOutcome, StartupOutcome, StartupRecord
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


# What the app itself said of a startup that failed or succeeded (none, of an incomplete one).
APP_OUTCOME: dict[StartupOutcome, AppOutcome] = {"failed": "failed", "ok": "completed"}


class RecordFields(TypedDict, total=False):
    """The fields a test sets on a startup of `record`."""

    db_phase_s: float | None
    exit_code: int | None
    last_phase: str | None
    error: str | None
    reason: str | None
    reason_lines: tuple[str, ...]
    db_timeout_s: float | None


def record(
    n: int, outcome: StartupOutcome, phase: str | None = None, **fields: Unpack[RecordFields]
) -> StartupRecord:
    """A startup of the real build: a failed one said so itself (its phase failed) and exited 3; its
    database phase printed staging's timeout (95 s)."""
    startup = StartupRecord(
        instance=f"instance-{n}",
        revision=REVISION,
        started_at=T0 + timedelta(minutes=n),
        db_phase_s=None,
        outcome=outcome,
        failed_phase=phase,
        exit_code=3 if outcome == "failed" else None,
        app_outcome=APP_OUTCOME.get(outcome),
        db_timeout_s=95.0,
    )
    return replace(startup, **fields)


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
    assert cause.kind is not None and cause.kind.id == "database-timeout"


def test_startups_dying_in_another_phase_rule_1278_out_as_a_bad_deploy() -> None:
    error = "ImportError: cannot import name 'AgentRegistry' from 'netra_backend.app.agents.registry'"
    records = [record(i, "failed", "services", error=error) for i in range(5)]
    cause = weigh([LabelledFailure()], lambda: window(*records))
    assert cause is not None and (cause.status, cause.instead) == ("ruled_out", "startup")
    assert cause.detail == f"5 of 5 startups of revision {REVISION} died in phase services, exit 3"
    assert cause.kind is not None and (cause.kind.id, cause.kind.blame, cause.kind.quoted) == (
        "phase-raised",
        "product",
        error,
    )
    assert "not issue-1278's database timeout" in cause.evidence and error in cause.evidence


WRONG_PASSWORD = (
    'Database connection error after 0.024s (attempt 1/3): password=REDACTED failed for user "netra_staging"'
)
SCHEMA_INCONSISTENT = (
    "PHASE FAILED: DATABASE - Database schema validation failed - schema inconsistent (after 0.07s)"
)


def died_at_once(n: int, why: str, after_s: float = 0.07) -> StartupRecord:
    """The real build's database phase refusing at once: the line that says why, then the generic words."""
    return record(
        n,
        "failed",
        "database",
        db_phase_s=after_s,
        error="Database schema validation failed - schema inconsistent",
        reason=why,
        reason_lines=(why, SCHEMA_INCONSISTENT),
    )


def test_a_fast_database_death_rules_1278_out_with_its_real_reason() -> None:
    """Phase database, exit 3, behind the same 503 page: but in a tenth of a second, not by a timeout."""
    records = [died_at_once(i, WRONG_PASSWORD) for i in range(3)]
    cause = weigh([LabelledFailure()], lambda: window(*records))
    assert cause is not None and (cause.status, cause.instead) == ("ruled_out", "startup")
    assert (
        cause.detail == f"3 of 3 startups of revision {REVISION} died in phase database after 0.07 s, exit 3"
    )
    assert cause.manner == "the database answered at once, not issue-1278's timeout"
    assert cause.kind is not None and (cause.kind.id, cause.kind.quoted) == (
        "database-credentials-refused",
        WRONG_PASSWORD,
    )
    assert cause.evidence.startswith(
        f"the startup record rules it out: {cause.detail}: the database answered at once, not issue-1278's "
        f'timeout; the database refused the service\'s credentials ("{WRONG_PASSWORD}"); who acts: the '
        "product or its configuration"
    )
    assert "after 0 s" not in cause.evidence


@pytest.mark.parametrize(
    ("why", "kind"),
    [
        ("Database connectivity check failed: [Errno 2] No such file or directory", "cloud-sql-socket-missing"),
        ("Failed to verify database tables exist: Missing critical database tables: {'users'}", "database-schema-missing"),
    ],
)  # fmt: skip
def test_each_fast_database_death_is_its_own_kind(why: str, kind: str) -> None:
    cause = weigh([LabelledFailure()], lambda: window(died_at_once(1, why, after_s=0.012)))
    assert cause is not None and cause.status == "ruled_out" and cause.kind is not None
    assert (cause.kind.id, cause.kind.quoted) == (kind, why)
    assert "after 0.012 s" in cause.detail


def test_a_database_timeout_is_still_1278_confirmed_with_the_line_that_says_so() -> None:
    timeout = "Database connection timeout after 10.004s (attempt 2/3)"
    records = [record(1, "failed", "database", db_phase_s=107.301, reason=timeout, reason_lines=(timeout,))]
    records += [died_at_once(2, WRONG_PASSWORD)]  # one refused at once does not unconfirm the other
    cause = weigh([LabelledFailure()], lambda: window(*records))
    assert cause is not None and (cause.status, cause.detail) == (
        "confirmed",
        f"1 of 2 startups of revision {REVISION} died in phase database after 107 s, exit 3",
    )
    assert cause.kind is not None and (cause.kind.id, cause.kind.quoted) == ("database-timeout", timeout)


@pytest.mark.parametrize(
    ("db_phase_s", "status"), [(47.5, "confirmed"), (47.4, "ruled_out")], ids=["share-reached", "under-share"]
)
def test_the_share_of_the_printed_timeout_decides_the_manner(db_phase_s: float, status: str) -> None:
    """Half of the 95 s the record prints (the share fixtures/startup_failures.json states)."""
    cause = weigh([LabelledFailure()], lambda: window(record(1, "failed", "database", db_phase_s=db_phase_s)))
    assert cause is not None and cause.status == status


@pytest.mark.parametrize(
    "line",
    [
        "Database initialization attempt 1 failed (timeout):",
        "PHASE FAILED: DATABASE - (after 2.00s) [TIMEOUT - Circuit: OPEN]",
    ],
)
def test_the_records_words_saying_timeout_confirm_whatever_the_duration(line: str) -> None:
    fast = record(1, "failed", "database", db_phase_s=2.0, reason_lines=(line,))
    cause = weigh([LabelledFailure()], lambda: window(fast))
    assert cause is not None and cause.status == "confirmed"


def test_a_database_death_the_record_does_not_show_the_manner_of_stays_unconfirmed() -> None:
    """No timeout printed, no words: neither confirmed nor ruled out, and it says what would settle it."""
    cause = weigh(
        [LabelledFailure()],
        lambda: window(record(1, "failed", "database", db_phase_s=40.0, db_timeout_s=None)),
    )
    assert cause is not None and cause.status == "unconfirmed"
    assert "neither the phase's timeout nor words saying timeout" in cause.evidence


def test_an_unrecognised_death_rules_1278_out_with_the_records_own_lines_and_blames_nobody() -> None:
    line = "PHASE FAILED: DATABASE - SSL handshake failed (after 0.05s)"
    cause = weigh(
        [LabelledFailure()],
        lambda: window(record(1, "failed", "database", db_phase_s=0.05, reason_lines=(line,))),
    )
    assert cause is not None and cause.status == "ruled_out" and cause.kind is not None
    assert (cause.kind.id, cause.kind.blame, cause.kind.lines) == ("unrecognised", None, (line,))
    assert f'UNRECOGNISED: "{line}"' in cause.evidence
    verdict = _verdict(cause, None)
    assert verdict.headline.startswith(
        f"UNRECOGNISED STARTUP FAILURE (not issue-1278): 1 of 1 startups of revision {REVISION} died in "
        f"phase database after 0.05 s, exit 3: the database answered at once, not issue-1278's timeout; the "
        f'record\'s lines: "{line}"'
    )
    assert verdict.owner.startswith("undetermined") and verdict.diagnosis is not None
    assert (
        verdict.diagnosis.kind == "infrastructure"
    )  # the outside view stays; nobody is blamed for the cause


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0.07, "0.07"), (0.009, "0.009"), (0.0, "0.000"), (0.5, "0.5"), (2.002, "2.0"), (107.3, "107")],
)
def test_durations_print_as_a_person_reads_them_never_0_s(seconds: float, said: str) -> None:
    assert cause_module.seconds(seconds) == said


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
        signature="startups-failing-by-database-timeout-in-the-logs", message="[infra.starting] rate 3/12"
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
    timed_out = record(1, "failed", "database", exit_code=1, db_phase_s=107.3)
    cause = weigh([LabelledFailure()], lambda: window(timed_out))
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


def ruled_out_by(*records: StartupRecord) -> Cause:
    cause = weigh([LabelledFailure()], lambda: window(*records))
    assert cause is not None and cause.status == "ruled_out"
    return cause


BAD_DEPLOY = record(1, "failed", "services", error="ImportError: cannot import name 'AgentRegistry'")


def test_a_bad_deploy_is_the_products_and_a_gateway_outage_the_infrastructures() -> None:
    bad = ruled_out_by(BAD_DEPLOY)
    lb = Cause("issue-1278", "ruled_out", "x", "3 of 3 startups succeeded", "gateway")
    assert diagnose([_result(None)], bad).kind == "product_defect"
    assert diagnose([_result(None)], lb).kind == "infrastructure"
    assert _verdict(bad, None).headline.startswith(
        "PRODUCT DEFECT (a startup phase raised an error: a bad deploy, not issue-1278): 1 of 1"
    )
    assert _verdict(lb, None).headline.startswith(
        "INFRASTRUCTURE (the load balancer / ingress, not issue-1278)"
    )


def test_the_kind_decides_who_acts_the_diagnosis_and_the_headline() -> None:
    """A refused password is the product's configuration; a database out of connections the infrastructure's."""
    refused = _verdict(ruled_out_by(died_at_once(1, WRONG_PASSWORD)), None)
    assert (refused.diagnosis and refused.diagnosis.kind, refused.owner) == (
        "product_defect",
        "the product or its configuration (the service's team): the database refused the service's credentials",
    )
    assert refused.headline == (
        "PRODUCT DEFECT (the database refused the service's credentials, not issue-1278): 1 of 1 startups of "
        f"revision {REVISION} died in phase database after 0.07 s, exit 3: the database answered at once, not "
        f"issue-1278's timeout; \"{WRONG_PASSWORD}\"; the product or its configuration (the service's team) "
        "must act: check the database user and password the revision is given (its secret, e.g. a rotated "
        "password) against the Cloud SQL user"
    )
    assert refused.label == "PRODUCT DEFECT (issue-1278 ruled out) database-credentials-refused"
    exhausted = _verdict(
        ruled_out_by(died_at_once(1, "PHASE FAILED: DATABASE - sorry, too many clients already")), None
    )
    assert (exhausted.diagnosis and exhausted.diagnosis.kind, exhausted.owner.split(":")[0]) == (
        "infrastructure",
        "infrastructure (the platform team)",
    )
    assert exhausted.headline.startswith(
        "INFRASTRUCTURE (the database had no connection left for the service, not issue-1278)"
    )


def test_an_unconfirmed_headline_never_states_the_blame_as_fact() -> None:
    said = "the failures match issue-1278's outside signature (...); not confirmed: gcloud is not installed"
    cause = Cause("issue-1278", "unconfirmed", said, said)
    line = _verdict(cause, "issue-1278").headline
    assert (
        line.startswith("KNOWN ISSUE issue-1278, unconfirmed: the failures match") and "Cloud SQL" not in line
    )


def test_a_confirmed_headline_names_the_kind_its_evidence_the_line_and_the_blame() -> None:
    timeout = "Database connection timeout after 10.004s (attempt 2/3)"
    confirmed = record(1, "failed", "database", db_phase_s=107.301, reason=timeout, reason_lines=(timeout,))
    cause = weigh([LabelledFailure()], lambda: window(confirmed))
    assert cause is not None
    verdict = _verdict(cause, "issue-1278")
    assert verdict.headline == (
        "KNOWN ISSUE issue-1278, confirmed by the startup record: the database phase ran out its time: Cloud "
        f"SQL never answered (1 of 1 startups of revision {REVISION} died in phase database after 107 s, "
        f'exit 3; "{timeout}"): infrastructure (Cloud SQL via the VPC connector)'
    )
    assert verdict.owner == "infrastructure (known issue issue-1278)"


def test_a_bad_deploy_the_record_shows_is_owned_by_the_product_or_its_configuration() -> None:
    assert _verdict(ruled_out_by(BAD_DEPLOY), None).owner == (
        "the product or its configuration (the service's team): a startup phase raised an error: a bad deploy"
    )


def test_a_record_cut_at_the_entry_limit_is_said_in_the_cause_and_the_gates() -> None:
    """gcloud stopped at its limit: whatever the record settles, a person reads that it holds the newest
    entries only (the window's oldest startups may be missing)."""
    cut = "the newest 5000 entries only (gcloud stopped at its limit)"
    until = T0 + timedelta(hours=1)
    startups = tally([record(1, "failed", "database")], since=T0, until=until, incomplete_read=cut)
    cause = weigh([LabelledFailure()], lambda: StartupWindow("gcloud", T0, until, tally=startups))
    assert cause is not None and cause.evidence.endswith(f"({cut})")
    assert startups.text().endswith(f"; {cut}")  # the gates' detail and measurements are this text
