"""How a startup died, as its record keeps it: the line that says why, the timeout the record prints,
Cloud Run's own lines (memory, the startup probe, the port, a kill), and an outcome that never calls a
startup that did not serve `ok`.

Two sources of real lines: the real build's, as docs/startup-record.md and the measured runs quote them
(built here entry by entry), and the replica's, captured from its stories (`startup_logs/<story>.jsonl`:
the entries of the first instance that died, as `python -m replica logs` printed them after `python -m
replica up --scenario <story>`, newest first, every noise line kept).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.startup.records import LOG_TEXT_REGEX, StartupRecord, parse_entries
from tests.unit.test_startup_record import (
    INSTANCE_A,
    REVISION,
    T0,
    Entry,
    facts,
    info,
    lines,
    newest_first,
    only,
    system,
)

pytestmark = pytest.mark.unit

LOGS = Path(__file__).parent / "startup_logs"
STORIES = sorted(p.stem for p in LOGS.glob("*.jsonl"))


def captured(story: str) -> list[Entry]:
    return [json.loads(line) for line in (LOGS / f"{story}.jsonl").read_text().splitlines() if line]


# --------------------------------------------------------------------------------------------------
# The real build's lines (docs/startup-record.md, "How the database phase dies")
# --------------------------------------------------------------------------------------------------
DATABASE_BEGINS = [
    *info("DETERMINISTIC STARTUP SEQUENCE INITIATED", " CYCLE:  PHASE TRANSITION  ->  INIT"),
    *info(" PASS=REDACTED COMPLETED: INIT (0.021s)", " CYCLE:  PHASE TRANSITION  ->  DEPENDENCIES"),
    *info(" PASS=REDACTED COMPLETED: DEPENDENCIES (0.028s)", " CYCLE:  PHASE TRANSITION  ->  DATABASE"),
    *info("PHASE 3: DATABASE - Database Setup with VPC Connector Capacity Awareness"),
    *info("Initializing database for staging with capacity-aware timeouts: init=95.0s, tables=35.0s"),
    *info("Database initialization attempt 1/5 with timeout 95.0s (circuit: CLOSED)"),
]
SCHEMA_INCONSISTENT = (
    " FAIL:  PHASE FAILED: DATABASE - Database schema validation failed - schema inconsistent (after 0.07s)"
)
FAILED_AT_ONCE = [
    ("ERROR", SCHEMA_INCONSISTENT),
    ("ERROR", SCHEMA_INCONSISTENT),
    ("CRITICAL", "[U+1F4A5] DETERMINISTIC STARTUP SEQUENCE FAILED"),
    ("CRITICAL", " FAIL:  Failed at Phase: DATABASE"),
    ("CRITICAL", " FAIL:  Time Elapsed: 0.206s"),
    ("CRITICAL", "Exiting with code 3 to signal startup failure"),
    ("ERROR", "Application startup failed. Exiting."),
]
WRONG_PASSWORD = [
    (
        "ERROR",
        '❌ Database connection error after 0.024s (attempt 1/3): password=REDACTED failed for user "netra_staging"',
    ),
    ("ERROR", 'Database connectivity check failed: password=REDACTED failed for user "netra_staging"'),
]
SOCKET_MISSING = [
    ("ERROR", "❌ Database connection error after 0.028s (attempt 1/3): [Errno 2] No such file or directory"),
    ("ERROR", "Database connectivity check failed: [Errno 2] No such file or directory"),
]
EMPTY = [
    (
        "WARNING",
        "Failed to verify database tables exist: Missing critical database tables: {'users', 'assistants', "
        "'runs', 'messages', 'threads'}. Run migration service first. - continuing with potential database "
        "issues",
    )
]
TIMEOUT_1278 = [
    ("ERROR", "❌ Database connection timeout after 10.004s (attempt 2/3)"),
    ("WARNING", "Database initialization attempt 1 failed (timeout):"),
    *info("Database initialization attempt 2/5 with timeout 125.0s (circuit: CLOSED)"),
    ("WARNING", "Circuit breaker: Database failures reached threshold (3), opening circuit for 60s"),
]
PHASE_FAILED_1278 = (
    " FAIL:  PHASE FAILED: DATABASE - Capacity-aware database initialization failed in staging environment: "
    "Database circuit breaker is open: Circuit is open, 34.7s remaining before retry (after 107.30s)"
)


def died_in_the_database_phase(why: list[tuple[str, str]], *, after_s: float = 0.07) -> list[Entry]:
    """One startup of the real build: the database phase begins, logs `why`, fails `after_s` later with
    the generic words, exit 3 from Cloud Run."""
    failed_at = T0 + timedelta(seconds=0.2 + after_s)
    failure = FAILED_AT_ONCE if after_s < 1 else [("ERROR", PHASE_FAILED_1278), *FAILED_AT_ONCE[2:]]
    return [
        *lines(INSTANCE_A, T0, [*DATABASE_BEGINS, *why], step_s=0.001),
        *lines(INSTANCE_A, failed_at, failure, step_s=0.001),
        system(INSTANCE_A, failed_at + timedelta(seconds=1.4), "Container called exit(3)."),
    ]


@pytest.mark.parametrize(
    ("why", "reason"),
    [
        (
            WRONG_PASSWORD,
            'Database connection error after 0.024s (attempt 1/3): password=REDACTED failed for user "netra_staging"',
        ),
        (
            SOCKET_MISSING,
            "Database connection error after 0.028s (attempt 1/3): [Errno 2] No such file or directory",
        ),
        (EMPTY, EMPTY[0][1]),
    ],
    ids=["wrong-password", "socket-missing", "empty-database"],
)
def test_a_fast_database_death_keeps_the_line_before_the_generic_phase_error(
    why: list[tuple[str, str]], reason: str
) -> None:
    record = only(parse_entries(newest_first(died_in_the_database_phase(why))))
    assert (record.outcome, record.failed_phase, record.exit_code, record.db_phase_s) == (
        "failed",
        "database",
        3,
        0.07,
    )
    assert record.error == "Database schema validation failed - schema inconsistent"  # the same for all three
    assert record.reason == reason  # what tells them apart
    assert record.reason_lines[-1] == SCHEMA_INCONSISTENT.strip().removeprefix("FAIL:  ")
    assert record.db_timeout_s == 95.0 and record.app_outcome == "failed"
    assert f"why: {reason}" in record.summary_line()


def test_the_real_1278_keeps_its_timeout_its_words_and_the_phases_107_s() -> None:
    record = only(parse_entries(newest_first(died_in_the_database_phase(TIMEOUT_1278, after_s=107.3))))
    assert (record.failed_phase, record.db_phase_s, record.db_timeout_s) == ("database", 107.3, 95.0)
    assert record.reason == "Database connection timeout after 10.004s (attempt 2/3)"
    assert "Database initialization attempt 1 failed (timeout):" in record.reason_lines
    assert any("Circuit breaker" in line for line in record.reason_lines)
    assert record.error is not None and record.error.startswith(
        "Capacity-aware database initialization failed"
    )


def test_lines_logged_after_the_phase_error_or_in_another_phase_do_not_say_why() -> None:
    """The specific line comes *before* the generic phase error, in the phase that failed."""
    earlier = [("WARNING", "Database initialization attempt 1 failed (timeout):")]
    entries = lines(
        INSTANCE_A,
        T0,
        [
            *info("DETERMINISTIC STARTUP SEQUENCE INITIATED", " CYCLE:  PHASE TRANSITION  ->  DATABASE"),
            *earlier,
        ],
    )
    entries += lines(
        INSTANCE_A,
        T0 + timedelta(seconds=1),
        [*info(" PASS=REDACTED COMPLETED: DATABASE (0.9s)", " CYCLE:  PHASE TRANSITION  ->  SERVICES")],
    )
    entries += lines(
        INSTANCE_A,
        T0 + timedelta(seconds=2),
        [
            ("ERROR", " FAIL:  PHASE FAILED: SERVICES - cannot import name 'AgentRegistry' (after 0.01s)"),
            ("CRITICAL", " FAIL:  Failed at Phase: SERVICES"),
            ("CRITICAL", " FAIL:  Error: ImportError: cannot import name 'AgentRegistry'"),
            ("ERROR", "❌ Database connection error after 0.1s (attempt 1/3): too late"),
        ],
    )
    record = only(parse_entries(entries))
    assert (record.failed_phase, record.reason) == ("services", None)
    assert record.error == "ImportError: cannot import name 'AgentRegistry'"
    assert record.reason_lines == (
        "PHASE FAILED: SERVICES - cannot import name 'AgentRegistry' (after 0.01s)",
    )


def test_the_line_that_says_why_is_redacted_and_bounded() -> None:
    clear = [
        (
            "ERROR",
            "❌ Database connection error after 0.02s (attempt 1/3): password=hunter2-secret " + "x" * 500,
        )
    ]
    record = only(parse_entries(died_in_the_database_phase(clear)))
    assert record.reason is not None and "hunter2" not in record.reason and len(record.reason) <= 300
    assert all("hunter2" not in line for line in (*record.reason_lines, *record.evidence))


# --------------------------------------------------------------------------------------------------
# Cloud Run ends a startup (its system log)
# --------------------------------------------------------------------------------------------------
def started(services_at_s: float = 0.3) -> list[Entry]:
    return lines(
        INSTANCE_A,
        T0,
        [
            *DATABASE_BEGINS,
            *info(" PASS=REDACTED COMPLETED: DATABASE (0.142s)", " CYCLE:  PHASE TRANSITION  ->  CACHE"),
            *info(" PASS=REDACTED COMPLETED: CACHE (0.050s)", " CYCLE:  PHASE TRANSITION  ->  SERVICES"),
        ],
        step_s=services_at_s / 20,
    )


def test_an_instance_killed_for_memory_during_startup_failed_in_its_phase() -> None:
    entries = [
        *started(),
        system(
            INSTANCE_A,
            T0 + timedelta(seconds=3),
            "Memory limit of 3072 MiB exceeded with 3211 MiB used.",
            "ERROR",
        ),
        system(INSTANCE_A, T0 + timedelta(seconds=3.1), "Container terminated on signal 9."),
    ]
    record = only(parse_entries(newest_first(entries)))
    assert (record.outcome, record.failed_phase, record.app_outcome) == ("failed", "services", None)
    assert (record.platform, record.signal) == (("memory_exceeded", "signal"), 9)
    assert record.reason == "Memory limit of 3072 MiB exceeded with 3211 MiB used."
    assert "killed (signal 9)" in record.summary_line()


def test_memory_exceeded_after_a_successful_startup_is_a_crash_not_a_failed_startup() -> None:
    entries = started() + lines(
        INSTANCE_A,
        T0 + timedelta(seconds=1),
        info("[U+1F680] DETERMINISTIC STARTUP SEQUENCE COMPLETED SUCCESSFULLY"),
    )
    entries += [
        system(
            INSTANCE_A,
            T0 + timedelta(minutes=5),
            "Memory limit of 3072 MiB exceeded with 3211 MiB used.",
            "ERROR",
        )
    ]
    record = only(parse_entries(entries))
    assert (record.outcome, record.reason) == ("ok", None)


PROBE_FAILED = 'Default STARTUP TCP probe failed 1 time consecutively for container "netra-backend-staging-1" on port 8080. The instance was not started.'
NOT_LISTENING = (
    "The user-provided container failed to start and listen on the port defined provided by the PORT=8080 "
    "environment variable within the allocated timeout."
)


def test_a_startup_that_completed_but_never_listened_on_its_port_is_failed_never_ok() -> None:
    """The app logs COMPLETED SUCCESSFULLY first; Cloud Run's probe on PORT never reached it: it never served."""
    entries = started() + lines(
        INSTANCE_A,
        T0 + timedelta(seconds=1),
        info(
            "[U+1F680] DETERMINISTIC STARTUP SEQUENCE COMPLETED SUCCESSFULLY", "Application startup complete."
        ),
    )
    entries += [
        system(INSTANCE_A, T0 + timedelta(seconds=240), PROBE_FAILED, "ERROR"),
        system(INSTANCE_A, T0 + timedelta(seconds=240.01), NOT_LISTENING, "ERROR"),
        system(INSTANCE_A, T0 + timedelta(seconds=241), "Container terminated on signal 9."),
    ]
    record = only(parse_entries(newest_first(entries)))
    assert (record.outcome, record.app_outcome, record.failed_phase) == ("failed", "completed", None)
    assert record.platform == ("probe_failed", "port_not_listening", "signal")
    assert record.reason == NOT_LISTENING and PROBE_FAILED in record.reason_lines
    assert "failed after the app said it had started" in record.summary_line()


def test_a_startup_hung_in_a_phase_the_probe_ended_failed_in_that_phase() -> None:
    """One record, not two: Cloud Run's line carries the instance and the revision as the app's do."""
    entries = [*started(), system(INSTANCE_A, T0 + timedelta(seconds=240), PROBE_FAILED, "ERROR")]
    record = only(parse_entries(entries))
    assert record.revision == REVISION
    assert (record.outcome, record.failed_phase, record.last_phase, record.reason) == (
        "failed",
        "services",
        "services",
        PROBE_FAILED,
    )


def test_a_kill_the_record_gives_no_reason_for_stays_incomplete() -> None:
    entries = [*started(), system(INSTANCE_A, T0 + timedelta(seconds=3), "Container terminated on signal 9.")]
    record = only(parse_entries(entries))
    assert (record.outcome, record.signal, record.failed_phase) == ("incomplete", 9, None)


# --------------------------------------------------------------------------------------------------
# The replica's stories, as it logs them
# --------------------------------------------------------------------------------------------------
# story: (failed phase, the line that says why starts with, Cloud Run's lines, the app's own outcome)
REPLICA: dict[str, tuple[str | None, str, tuple[str, ...], str | None]] = {
    "issue-1278": ("database", "Database connection timeout after 2.0", (), "failed"),
    "db-wrong-password": ("database", "Database connection error after 0.0", (), "failed"),
    "db-socket-missing": ("database", "Database connection error after 0.0", (), "failed"),
    "db-empty": (
        "database",
        "Failed to verify database tables exist: Missing critical database tables",
        (),
        "failed",
    ),
    "startup-storm": ("database", "", (), "failed"),
    "oom": ("services", "Memory limit of 256 MiB exceeded with", ("memory_exceeded", "signal"), None),
    "port-mismatch": (
        None,
        "The user-provided container failed to start and listen on the port",
        ("probe_failed", "port_not_listening", "signal"),
        "completed",
    ),
    "stuck-after-database": (
        "cache",
        "The user-provided container failed to start and listen on the port",
        ("probe_failed", "port_not_listening", "signal"),
        None,
    ),
}


def test_every_captured_story_is_checked() -> None:
    assert sorted(REPLICA) == STORIES


@pytest.mark.parametrize("story", STORIES)
def test_each_replica_story_is_one_failed_startup_that_says_why(story: str) -> None:
    phase, why, platform, said = REPLICA[story]
    record = only(parse_entries(captured(story)))
    assert (record.outcome, record.failed_phase, record.platform, record.app_outcome) == (
        "failed",
        phase,
        platform,
        said,
    )
    assert record.db_timeout_s is not None  # every story's database phase began and printed its timeout
    if why:
        assert record.reason is not None and record.reason.startswith(why), record.reason_lines
    else:  # a connection refused while the pool fills: the phase error itself says why
        assert (
            record.reason is None
            and record.error == "TooManyConnectionsError: sorry, too many clients already"
        )


@pytest.mark.parametrize("story", STORIES)
def test_the_filter_keeps_every_line_that_decides_how_a_startup_died(story: str) -> None:
    """What gcloud returns through the filter (LOG_TEXT_REGEX) makes the same record as the whole log:
    outcome, phases, the line that says why, the timeout, Cloud Run's lines."""
    regex = re.compile(LOG_TEXT_REGEX)  # RE2 and Python agree on this plain subset

    def kept(entry: dict[str, Any]) -> bool:
        payload = entry.get("jsonPayload") or {}
        return any(regex.search(str(v)) for v in (entry.get("textPayload"), payload.get("message")) if v)

    entries = captured(story)
    whole, filtered = only(parse_entries(entries)), only(parse_entries([e for e in entries if kept(e)]))
    assert deciding(filtered) == deciding(whole)
    assert len([e for e in entries if kept(e)]) < len(entries) / 2  # the filter still drops the noise


def deciding(record: StartupRecord) -> tuple[object, ...]:
    return (
        *facts(record),
        record.error,
        record.reason,
        record.reason_lines,
        record.db_timeout_s,
        record.app_outcome,
        record.platform,
        record.signal,
    )


def test_the_replicas_fast_deaths_and_its_timeout_differ_only_in_manner_not_in_phase_or_exit() -> None:
    """Phase, exit code and the generic words are the same: a cause that read only those could not tell."""
    records = {
        story: only(parse_entries(captured(story)))
        for story in ("issue-1278", "db-wrong-password", "db-socket-missing", "db-empty")
    }
    assert {(r.failed_phase, r.exit_code) for r in records.values()} == {("database", 3)}
    timeout = records.pop("issue-1278")
    assert timeout.db_phase_s is not None and timeout.db_timeout_s is not None
    assert timeout.db_phase_s >= timeout.db_timeout_s
    for record in records.values():
        assert record.db_phase_s is not None and record.db_timeout_s is not None
        assert record.db_phase_s < 0.1 * record.db_timeout_s
        assert record.error == "RuntimeError: Database schema validation failed - schema inconsistent"
