"""Every way a startup dies, named (harness/startup/kinds.py, fixtures/startup_failures.json): a validated
table, every row reachable from a real record, a manner no row knows said as UNRECOGNISED, and the
README's table generated from the data."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness import gate_checks, known_issues
from harness.errors import E2EFailure
from harness.settings import Settings
from harness.startup import kinds
from harness.startup.kinds import README_TABLE, Table, identify, manner_of, markdown_table
from harness.startup.records import LOG_TEXT_REGEX, StartupRecord, parse_entries
from harness.startup.tally import tally
from tests.unit.test_startup_deaths import STORIES, captured

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RAW = json.loads(kinds.DEFAULT_PATH.read_text(encoding="utf-8"))
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def failed(phase: str | None = "database", **fields: Any) -> StartupRecord:
    """A failed startup of the real build: the app's own failure, exit 3, staging's 95 s timeout."""
    values: dict[str, Any] = {
        "instance": "i-1",
        "revision": "r-1",
        "started_at": T0,
        "db_phase_s": 0.07,
        "outcome": "failed",
        "failed_phase": phase,
        "exit_code": 3,
        "db_timeout_s": 95.0,
        "app_outcome": "failed",
    }
    return StartupRecord(**(values | fields))


# --------------------------------------------------------------------------------------------------
# Every row is reachable, from the replica's stories and the real build's lines
# --------------------------------------------------------------------------------------------------
STORY_KIND = {
    "issue-1278": "database-timeout",
    "db-wrong-password": "database-credentials-refused",
    "db-socket-missing": "cloud-sql-socket-missing",
    "db-empty": "database-schema-missing",
    "startup-storm": "database-connections-exhausted",
    "oom": "out-of-memory",
    "port-mismatch": "port-not-listening",
    "stuck-after-database": "stuck-after-database",
}
# The rows no captured story reaches, from the real build's lines (docs/startup-record.md).
REAL = {
    "phase-raised": failed(
        "services",
        db_phase_s=0.142,
        error="ImportError: cannot import name 'AgentRegistry' from 'netra_backend.app.agents.registry'",
        reason_lines=("PHASE FAILED: SERVICES - cannot import name 'AgentRegistry' (after 0.01s)",),
    ),
    "database-timeout": failed(
        db_phase_s=107.301,
        reason="Database connection timeout after 10.004s (attempt 2/3)",
        reason_lines=(
            "Database connection timeout after 10.004s (attempt 2/3)",
            "Database initialization attempt 1 failed (timeout):",
        ),
    ),
}


@pytest.mark.parametrize("story", STORIES)
def test_each_replica_story_is_its_kind(story: str) -> None:
    (record,) = parse_entries(captured(story))
    assert identify(record).kind_id == STORY_KIND[story]


def test_every_row_is_reachable() -> None:
    """A row that no real record reaches is dead data: each one is some story's kind."""
    reached = set(STORY_KIND.values()) | {k for k, r in REAL.items() if identify(r).kind_id == k}
    assert reached == {k.id for k in kinds.load().kinds}


@pytest.mark.parametrize("kind", [k.id for k in kinds.load().kinds])
def test_each_rows_example_is_inside_the_gcloud_filter_and_reads_as_its_rules_say(kind: str) -> None:
    """The line a row reads must reach the record through gcloud's filter; its patterns must find it."""
    row = kinds.get(kind)
    assert row is not None
    assert re.search(LOG_TEXT_REGEX, row.example), f"{kind}: its example is outside LOG_TEXT_REGEX"
    for pattern in (row.when.line, row.quote):
        assert pattern is None or re.search(pattern, row.example), f"{kind}: {pattern!r} misses its example"


def test_every_timeout_word_is_inside_the_gcloud_filter() -> None:
    """A line saying timeout decides #1278: gcloud must return it (the PHASE FAILED line carries `[TIMEOUT`)."""
    examples = {
        "Database connection timeout": "❌ Database connection timeout after 10.004s (attempt 2/3)",
        "failed (timeout)": "Database initialization attempt 1 failed (timeout):",
        "[TIMEOUT": " FAIL:  PHASE FAILED: DATABASE - x (after 2.00s) [TIMEOUT - Circuit: OPEN]",
    }
    assert set(kinds.load().manners.timeout.words) == set(examples)
    for word, line in examples.items():
        assert word in line and re.search(LOG_TEXT_REGEX, line), word


# --------------------------------------------------------------------------------------------------
# The manner, from the record alone
# --------------------------------------------------------------------------------------------------
def test_a_phase_that_lasted_the_stated_share_of_its_printed_timeout_ran_out_its_time() -> None:
    share = kinds.load().manners.timeout.share_of_timeout
    assert manner_of(failed(db_phase_s=share * 95.0)) == "timeout"
    assert manner_of(failed(db_phase_s=share * 95.0 - 0.01)) == "at_once"
    assert manner_of(failed(db_phase_s=2.002, db_timeout_s=2.0)) == "timeout"  # the replica's 1278


@pytest.mark.parametrize("word", ["Database connection timeout", "failed (timeout)", "[TIMEOUT"])
def test_the_records_own_words_say_timeout_whatever_the_duration(word: str) -> None:
    record = failed(db_phase_s=0.5, db_timeout_s=None, reason_lines=(f"x {word} y",))
    assert (manner_of(record), identify(record).kind_id) == ("timeout", "database-timeout")


def test_a_database_death_that_prints_no_timeout_and_no_words_has_no_manner_and_no_kind() -> None:
    """Neither `at_once` nor `timeout` can be read: never guessed."""
    record = failed(db_phase_s=40.0, db_timeout_s=None)
    assert (manner_of(record), identify(record).kind_id) == (None, kinds.UNRECOGNISED)


def test_the_probe_ending_a_startup_in_its_database_phase_is_the_database_running_out_of_time() -> None:
    record = failed(app_outcome=None, db_phase_s=None, platform=("probe_failed",), reason_lines=())
    assert (manner_of(record), identify(record).kind_id) == ("timeout", "database-timeout")


def test_a_successful_or_unfinished_startup_has_no_manner() -> None:
    assert manner_of(failed(outcome="ok")) is None and manner_of(failed(outcome="incomplete")) is None


# --------------------------------------------------------------------------------------------------
# What no row knows is UNRECOGNISED, with the record's own lines
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "record",
    [
        failed(app_outcome=None, exit_code=1, db_phase_s=None),  # exited, the app never said why
        failed(
            reason_lines=("PHASE FAILED: DATABASE - SSL handshake failed (after 0.05s)",)
        ),  # at once, unknown
        failed("init", app_outcome=None, platform=("probe_failed",)),  # stuck before the database
        failed("cache", reason_lines=("PHASE FAILED: CACHE - x [TIMEOUT",)),  # a timeout outside the database
    ],
    ids=["exited", "database-at-once-unknown-line", "stuck-in-init", "cache-timeout"],
)
def test_a_manner_no_row_knows_is_unrecognised_with_its_own_lines(record: StartupRecord) -> None:
    found = identify(record)
    said = kinds.named(found)
    assert (found.kind, said.id, said.blame, said.recognised) == (None, "unrecognised", None, False)
    assert said.who_acts.startswith("undetermined")
    assert said.lines == record.reason_lines or record.reason_lines == ()


def test_unrecognised_without_lines_that_say_why_shows_the_records_decisive_lines() -> None:
    record = failed(app_outcome=None, exit_code=1, evidence=("03:00:01.000 Container called exit(1).",))
    assert kinds.named(identify(record)).lines == ("Container called exit(1).",)


def test_the_quoted_line_is_the_rows_choice_else_the_line_that_says_why_else_the_error() -> None:
    stuck = failed("cache", app_outcome=None, platform=("probe_failed",), reason="port line")
    stuck = replace(stuck, reason_lines=("port line", "Default STARTUP TCP probe failed 1 time"))
    assert identify(stuck).quoted == "Default STARTUP TCP probe failed 1 time"
    assert identify(failed("services", error="ImportError: x")).quoted == "ImportError: x"


# --------------------------------------------------------------------------------------------------
# The table is validated
# --------------------------------------------------------------------------------------------------
def validate(change: Any) -> None:
    data = copy.deepcopy(RAW)
    change(data)
    Table.model_validate(data)


@pytest.mark.parametrize("field", ["id", "title", "blame", "next_step", "when", "example"])
def test_a_row_missing_a_field_fails_validation(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        validate(lambda data: data["kinds"][0].pop(field))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d["kinds"][1].update(when={}), "states no phase, manner or Cloud Run line"),
        (lambda d: d["kinds"][1].update(when={"line": "x"}), "states no phase, manner or Cloud Run line"),
        (lambda d: d["kinds"][1]["when"].update(manners=["slowly"]), "manners"),
        (lambda d: d["kinds"][1]["when"].update(phases=["migrations"]), "phases"),
        (lambda d: d["kinds"][1]["when"].update(platform=["smoke"]), "platform"),
        (lambda d: d["kinds"][2]["when"].update(line="(unclosed"), "bad regex"),
        (lambda d: d["kinds"][2].update(quote="[x"), "bad regex"),
        (lambda d: d["kinds"][2].update(blame="nobody"), "blame"),
        (lambda d: d["kinds"][2].update(id=d["kinds"][1]["id"]), "unique"),
        (lambda d: d["kinds"][2].update(id="unrecognised"), "unique"),
        (lambda d: d["kinds"][2].update(colour="red"), "colour"),
        (lambda d: d["manners"]["timeout"].update(share_of_timeout=0), "share_of_timeout"),
        (lambda d: d["manners"]["timeout"].update(words=[]), "words"),
    ],
    ids=[
        "no-rule", "line-only", "unknown-manner", "unknown-phase", "unknown-platform-line", "bad-line",
        "bad-quote", "unknown-blame", "duplicate-id", "reserved-id", "unknown-field", "zero-share", "no-words",
    ],
)  # fmt: skip
def test_a_bad_table_fails_validation_saying_why(change: Any, says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        validate(change)


def test_a_known_issues_kind_is_what_its_confirmation_states() -> None:
    """The row that is a catalogued issue and the issue's confirmation name the same death: the cause
    confirms the issue by the confirmation, the reports title it by the row."""
    for kind in kinds.load().kinds:
        if kind.known_issue is None:
            continue
        issue = known_issues.get(kind.known_issue)
        assert issue is not None and issue.confirmation is not None, kind.id
        confirmation = issue.confirmation
        assert (tuple(kind.when.phases), tuple(kind.when.manners)) == (
            (confirmation.failed_phase,),
            (confirmation.manner,),
        ), kind.id


def test_the_readme_table_of_kinds_is_generated_from_the_data() -> None:
    for name in ("README.md", "docs/startup-record.md"):
        document = (ROOT / name).read_text(encoding="utf-8")
        assert README_TABLE.applied(document) == document, (
            f"{name}'s table of startup-failure kinds is stale: "
            "python -m harness.startup.kinds --write README.md docs/startup-record.md"
        )
        assert markdown_table() in document


# --------------------------------------------------------------------------------------------------
# verify-fix's startup gate labels #1278 by the same manner
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("story", "finding", "issue"),
    [
        ("issue-1278", "startups_failed_by_database_timeout", "issue-1278"),
        ("db-wrong-password", "startups_failed", None),
        ("startup-storm", "startups_failed", None),
    ],
)
def test_verify_fix_labels_only_database_timeouts_as_1278(
    story: str, finding: str, issue: str | None
) -> None:
    """A startup-success gate failing on deaths in the database phase is #1278 only when the phase ran
    out its time; the failure names how they died."""
    records = parse_entries(captured(story))
    since = min(r.started_at for r in records if r.started_at) - timedelta(seconds=1)
    startups = tally(records, since=since, until=since + timedelta(hours=1))
    with pytest.raises(E2EFailure) as raised:
        settings = Settings.defaults("staging")
        gate_checks.require_startup_success(startups, settings.verify, settings.startup)
    failure = raised.value
    assert (failure.kind, failure.known_issue) == (finding, issue)
    assert f"how: {STORY_KIND[story]} 1" in failure.detail
