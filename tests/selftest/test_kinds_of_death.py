"""Every way the replica's backend dies behind the same 503 page, judged by the whole suite: its verdict
names the kind of death, quotes the line that says why, states the cause at the strength the record
supports, and names who acts.

Each story is a crash loop, exit 3 or a kill, the gateway's 503 page on every backend request: from
outside, #1278's signature. Only the record tells them apart (docs/startup-record.md): #1278 runs out
the database phase's time (confirmed); a refused password, a missing Cloud SQL socket, an empty
database die in that phase at once (ruled out); a bad deploy raises in another phase, an instance is
killed for memory, a container never listens on its port, a startup hangs after the database (ruled
out). One suite run per story and source, shared (the `suite` fixture): the default selection, as
`make e2e-staging` runs it, once the replica's first startup has died.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.report.job_summary import render
from harness.startup import kinds
from tests.selftest.conftest import RealGcloud, SuiteRunner

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

# Where the suite reads the replica's record: one line a source, the settings of a run of `scenario`
# (a source that needs a server of its own takes it from a fixture: `request.getfixturevalue(...)`).
# The real gcloud, against a local stand-in of Cloud Logging's API: the filter, the paging and the
# client meet what a nightly meets (skipped, saying why, where gcloud is not installed).
Source = Callable[[str], dict[str, str]]


def _real_gcloud(request: pytest.FixtureRequest) -> Source:
    real_gcloud: RealGcloud = request.getfixturevalue("real_gcloud")
    return real_gcloud.source


SOURCES: dict[str, Callable[[pytest.FixtureRequest], Source]] = {"gcloud": _real_gcloud}


@dataclass(frozen=True)
class Story:
    scenario: str
    kind: str  # its row of fixtures/startup_failures.json
    status: str  # issue-1278's strength
    quoted: tuple[str, ...]  # phrases of the line the headline quotes
    lead: str  # how the headline begins


STORIES = [
    Story("issue-1278", "database-timeout", "confirmed", ("Database connection timeout after 3.0",), "KNOWN ISSUE issue-1278, confirmed by the startup record: "),
    Story("db-wrong-password", "database-credentials-refused", "ruled_out", ("Database connection error after 0.", 'password=REDACTED failed for user "netra_staging"'), "PRODUCT DEFECT ("),
    Story("db-socket-missing", "cloud-sql-socket-missing", "ruled_out", ("[Errno 2] No such file or directory",), "PRODUCT DEFECT ("),
    Story("db-empty", "database-schema-missing", "ruled_out", ("Missing critical database tables: {'users'",), "PRODUCT DEFECT ("),
    Story("bad-deploy", "phase-raised", "ruled_out", ("ImportError: cannot import name 'AgentRegistry'",), "PRODUCT DEFECT ("),
    Story("oom", "out-of-memory", "ruled_out", ("Memory limit of 256 MiB exceeded with ",), "PRODUCT DEFECT ("),
    Story("port-mismatch", "port-not-listening", "ruled_out", ("failed to start and listen on the port defined provided by the PORT=",), "PRODUCT DEFECT ("),
    Story("stuck-after-database", "stuck-after-database", "ruled_out", ("STARTUP TCP probe failed",), "PRODUCT DEFECT ("),
]  # fmt: skip
FAST_DATABASE_DEATHS = {"db-wrong-password", "db-socket-missing", "db-empty"}


@pytest.fixture(params=sorted(SOURCES))
def source(request: pytest.FixtureRequest) -> Source:
    return SOURCES[request.param](request)


def _judged(suite: SuiteRunner, story: Story, source: Source) -> tuple[dict[str, Any], dict[str, Any]]:
    run = suite(story.scenario, extra_env=source(story.scenario))
    verdict = run.verdict
    cause = verdict.get("cause")
    assert cause is not None and cause.get("kind") is not None, run.explain()
    assert f"DIAGNOSIS {verdict['headline']}" in run.output  # the terminal's words are the verdict's
    assert verdict["headline"] in render(verdict)  # and the job summary's
    return verdict, cause


@pytest.mark.parametrize("story", STORIES, ids=[s.scenario for s in STORIES])
def test_the_headline_names_the_kind_and_quotes_the_line_that_says_why(
    suite: SuiteRunner, story: Story, source: Source
) -> None:
    verdict, cause = _judged(suite, story, source)
    row = kinds.get(story.kind)
    assert row is not None
    headline = verdict["headline"]
    assert (cause["kind"]["id"], cause["kind"]["title"]) == (story.kind, row.title), headline
    assert headline.startswith(story.lead) and row.title in headline, headline
    quoted = cause["kind"]["quoted"] or ""
    assert all(phrase in quoted for phrase in story.quoted), quoted
    assert f'"{quoted}"' in headline, headline
    assert "after 0 s" not in headline and "after 0-" not in headline  # a sub-second phase says so


@pytest.mark.parametrize("story", STORIES, ids=[s.scenario for s in STORIES])
def test_the_cause_has_the_strength_the_record_supports_and_the_kind_says_who_acts(
    suite: SuiteRunner, story: Story, source: Source
) -> None:
    verdict, cause = _judged(suite, story, source)
    row = kinds.get(story.kind)
    assert row is not None
    assert (cause["known_issue"], cause["status"]) == ("issue-1278", story.status), cause["evidence"]
    assert cause["kind"]["next_step"] == row.next_step and cause["kind"]["who_acts"] == row.who_acts
    if story.status == "confirmed":
        assert (verdict["diagnosis"], verdict["known_issue"], verdict["owner"]) == (
            "known_issue",
            "issue-1278",
            "infrastructure (known issue issue-1278)",
        )
        return
    assert (verdict["diagnosis"], verdict["known_issue"]) == ("product_defect", None), verdict["headline"]
    assert verdict["owner"] == f"{row.who_acts}: {row.title}"
    assert "not issue-1278" in verdict["headline"] and row.next_step in verdict["headline"]
    assert all(t["known_issue"] is None for t in verdict["tests"]), "a ruled-out label must not stay"


@pytest.mark.parametrize("scenario", sorted(FAST_DATABASE_DEATHS))
def test_a_fast_database_death_says_the_database_answered_at_once_not_1278s_timeout(
    suite: SuiteRunner, scenario: str, source: Source
) -> None:
    """Phase database, exit 3, behind the 503 page, like #1278: the manner, in hundredths of a second."""
    verdict, cause = _judged(suite, next(s for s in STORIES if s.scenario == scenario), source)
    # (its exit code when Cloud Run's `Container called exit(3).` reached the record before the suite read it)
    assert "died in phase database after 0.0" in cause["evidence"], cause["evidence"]
    assert "the database answered at once, not issue-1278's timeout" in verdict["headline"]


def test_a_death_no_kind_knows_is_unrecognised_with_the_records_own_lines(
    suite: SuiteRunner, tmp_path: Path
) -> None:
    """The replica's refused password, its record's reason rewritten into one no row of
    fixtures/startup_failures.json knows (read from a file, as gcloud prints it, moved to now): the
    verdict says UNRECOGNISED, quotes the record's own lines and blames nobody, never a guess."""
    unknown = "SSL SYSCALL error: EOF detected"
    lines = (ROOT / "tests/unit/startup_logs/db-wrong-password.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line]
    newest = max(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in entries)
    moved = datetime.now(UTC) - timedelta(seconds=5) - newest
    for entry in entries:
        for key in ("timestamp", "receiveTimestamp"):
            at = datetime.fromisoformat(entry[key][:26].rstrip("Z") + "+00:00") + moved
            entry[key] = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    record = tmp_path / "record.jsonl"
    text = "\n".join(json.dumps(e) for e in entries).replace(
        'password=REDACTED failed for user \\"netra_staging\\"', unknown
    )
    assert unknown in text
    record.write_text(text + "\n")
    run = suite("db-wrong-password", extra_env={"E2E_STARTUP_EVIDENCE": f"file:{record}"})
    cause, verdict = run.verdict["cause"], run.verdict
    assert cause is not None and (cause["status"], cause["kind"]["id"]) == ("ruled_out", "unrecognised"), (
        run.explain()
    )
    assert verdict["headline"].startswith("UNRECOGNISED STARTUP FAILURE (not issue-1278): "), verdict[
        "headline"
    ]
    assert f"Database connection error after 0.008s (attempt 1/3): {unknown}" in verdict["headline"]
    assert verdict["owner"].startswith("undetermined") and verdict["known_issue"] is None
    assert f"DIAGNOSIS {verdict['headline']}" in run.output
