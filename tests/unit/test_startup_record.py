"""Startup evidence: the real backend's log entries (as docs/startup-record.md describes them, the measured
build's mangled lines included) become startup records; sources say why when they cannot be read."""

from __future__ import annotations

import json
import os
import random
import re
import stat
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.slo import wilson_lower
from harness.startup.records import (
    LOG_TEXT_REGEX,
    StartupOutcome,
    StartupRecord,
    parse,
    parse_entries,
    parse_timestamp,
)
from harness.startup.sources import gcloud_filter, load_entries
from harness.startup.tally import tally

pytestmark = pytest.mark.unit

PROJECT = "netra-staging"
SERVICE = "netra-backend-staging"
REGION = "us-central1"
REVISION = "netra-backend-staging-00042-xyz"
T0 = datetime(2025, 9, 15, 18, 0, 0, tzinfo=UTC)
INSTANCE_A = "0069c7a988a1f7d3e2b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a"
INSTANCE_B = "0069c7a988b2e8f4a1c3d5e7f9012b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192b"
Entry = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# LogEntry builders, shaped like `gcloud logging read --format=json` output for Cloud Run
# --------------------------------------------------------------------------------------------------
def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # nanoseconds, as Cloud Logging prints them


def _entry(instance: str | None, at: datetime, log: str, severity: str, service: str) -> Entry:
    entry: Entry = {
        "insertId": f"{log[:3]}{at.timestamp():.6f}{(instance or '')[-4:]}",
        "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2F{log}",
        "receiveTimestamp": stamp(at + timedelta(seconds=1)),
        "resource": {
            "type": "cloud_run_revision",
            "labels": {
                "configuration_name": service,
                "location": REGION,
                "project_id": PROJECT,
                "revision_name": REVISION if service == SERVICE else f"{service}-00007-abc",
                "service_name": service,
            },
        },
        "severity": severity,
        "timestamp": stamp(at),
    }
    if instance is not None:
        entry["labels"] = {"instanceId": instance}
    return entry


def app(
    instance: str | None, at: datetime, message: str, severity: str = "INFO", service: str = SERVICE
) -> Entry:
    """A line of the backend's JSON logging on stdout."""
    entry = _entry(instance, at, "stdout", severity, service)
    entry["jsonPayload"] = {
        "message": message,
        "labels": {"module": "smd", "function": "initialize_system", "line": 212},
        "context": {"name": "netra_backend.app.smd", "service": "netra-backend"},
    }
    return entry


def system(instance: str, at: datetime, text: str, severity: str = "WARNING") -> Entry:
    """A line of Cloud Run itself (run.googleapis.com%2Fvarlog%2Fsystem)."""
    entry = _entry(instance, at, "varlog%2Fsystem", severity, SERVICE)
    entry["labels"]["container_name"] = "netra-backend-staging-1"
    entry["textPayload"] = text
    return entry


def stderr(instance: str, at: datetime, text: str) -> Entry:
    """A plain-text line of the web server on stderr (not JSON)."""
    entry = _entry(instance, at, "stderr", "ERROR", SERVICE)
    entry["textPayload"] = text
    return entry


def lines(
    instance: str, start: datetime, messages: list[tuple[str, str]], step_s: float = 0.01
) -> list[Entry]:
    return [
        app(instance, start + timedelta(seconds=i * step_s), text, severity)
        for i, (severity, text) in enumerate(messages)
    ]


def info(*texts: str) -> list[tuple[str, str]]:
    return [("INFO", t) for t in texts]


BANNER = "=" * 80
HEALTH_ERRORS = [
    ("ERROR", "Database health check FAILED: TypeError: object bool can't be used in 'await' expression"),
    ("ERROR", "Configuration validation failed: 3 errors (bypassed by BYPASS_STARTUP_VALIDATION)"),
    ("ERROR", " FAIL:  ClickHouse connection check failed: connection refused"),
]


def successful_startup(instance: str, start: datetime, db: str = "0.142") -> list[Entry]:
    """A successful startup as the measured build writes it: mangled PASS lines, banners, unrelated
    `Total ...:` lines and 43 ERROR lines."""
    errors = [HEALTH_ERRORS[i % 3] for i in range(43)]
    messages = [
        *info("=" * 60, "DETERMINISTIC STARTUP SEQUENCE INITIATED", "=" * 60),
        *info(" CYCLE:  PHASE TRANSITION  ->  INIT", "   Started at: 1757959200.123s elapsed"),
        *info("Total duration: 0.00s", "Total Fixes: 5/5", "Total Services: 5"),
        *info(" CYCLE:  PHASE TRANSITION  ->  DEPENDENCIES", " PASS=REDACTED COMPLETED: INIT (0.321s)"),
        *info(" CYCLE:  PHASE TRANSITION  ->  DATABASE", " PASS=REDACTED COMPLETED: DEPENDENCIES (0.028s)"),
        *info("PHASE 3: DATABASE - Database Setup with VPC Connector Capacity Awareness"),
        *info("Initializing database for staging with capacity-aware timeouts: init=95.0s, tables=35.0s"),
        *info("Database initialization attempt 1/5 with timeout 95.0s (circuit: CLOSED)"),
        *errors,
        *info(" CYCLE:  PHASE TRANSITION  ->  CACHE", f" PASS=REDACTED COMPLETED: DATABASE ({db}s)"),
        *info(" CYCLE:  PHASE TRANSITION  ->  SERVICES", " PASS=REDACTED COMPLETED: CACHE (0.050s)"),
        *info(" CYCLE:  PHASE TRANSITION  ->  WEBSOCKET", " PASS=REDACTED COMPLETED: SERVICES (0.420s)"),
        *info(" CYCLE:  PHASE TRANSITION  ->  FINALIZE", " PASS=REDACTED COMPLETED: WEBSOCKET (0.100s)"),
        *info(" PASS=REDACTED COMPLETED: FINALIZE (0.154s)", BANNER),
        *info("[U+1F680] DETERMINISTIC STARTUP SEQUENCE COMPLETED SUCCESSFULLY", BANNER),
        *info(
            " PASS=REDACTED Time: 1.215s", " PASS=REDACTED Completed: 7/7", " CHART:  PHASE TIMING BREAKDOWN:"
        ),
        *info(
            "   INIT        : 0.321s (26.4%)",
            f"   DATABASE    : {db}s (11.6%)",
            "   CACHE       : 0.050s (4.1%)",
        ),
        *info("Application startup complete."),
    ]
    return lines(instance, start, messages)


def failed_startup(instance: str, start: datetime) -> list[Entry]:
    """The measured #1278 failure: the database path hangs, the breaker opens, PHASE FAILED twice,
    PARTIAL PHASE TIMINGS, exit 3 from the server, the web server and Cloud Run."""
    db_start = start + timedelta(seconds=1)
    failed_at = db_start + timedelta(seconds=107.3)
    phase_failed = (
        " FAIL:  PHASE FAILED: DATABASE - Capacity-aware database initialization failed: "
        "connection timed out after 10.0s (after 107.30s) [TIMEOUT - Circuit: OPEN]"
    )
    return [
        *lines(
            instance,
            start,
            info("DETERMINISTIC STARTUP SEQUENCE INITIATED", " CYCLE:  PHASE TRANSITION  ->  INIT"),
        ),
        *lines(
            instance,
            db_start,
            [
                *info(
                    " CYCLE:  PHASE TRANSITION  ->  DATABASE",
                    " PASS=REDACTED COMPLETED: DEPENDENCIES (0.028s)",
                ),
                *info("Database initialization attempt 1/5 with timeout 95.0s (circuit: CLOSED)"),
                ("WARNING", "Database initialization attempt 1 failed (timeout)"),
                (
                    "WARNING",
                    "Circuit breaker: Database failures reached threshold (3), opening circuit for 60s",
                ),
            ],
        ),
        *lines(
            instance,
            failed_at,
            [
                ("ERROR", phase_failed),
                ("ERROR", phase_failed),  # logged twice for one failure
                ("CRITICAL", BANNER),
                ("CRITICAL", "[U+1F4A5] DETERMINISTIC STARTUP SEQUENCE FAILED"),
                ("CRITICAL", " FAIL:  Failed at Phase: DATABASE"),
                ("CRITICAL", " FAIL:  Time Elapsed: 107.483s"),
                ("CRITICAL", " FAIL:  Error: Capacity-aware database initialization failed"),
                ("CRITICAL", " CHART:  PARTIAL PHASE TIMINGS:"),
                ("CRITICAL", "    PASS=REDACTED        : 0.154s"),
                ("CRITICAL", "    PASS=REDACTED        : 0.028s"),
                ("CRITICAL", "    FAIL:  DATABASE    : 107.301s"),
                ("CRITICAL", "Exiting with code 3 to signal startup failure"),
                ("ERROR", "Application startup failed. Exiting."),
            ],
        ),
        stderr(
            instance,
            failed_at + timedelta(seconds=1),
            "[2025-09-15 18:01:49 +0000] [1] [ERROR] Worker (pid:7) exited with code 3",
        ),
        stderr(
            instance,
            failed_at + timedelta(seconds=1.01),
            "[2025-09-15 18:01:49 +0000] [1] [ERROR] Reason: Worker failed to boot.",
        ),
        system(instance, failed_at + timedelta(seconds=1.4), "Container called exit(3)."),
    ]


def newest_first(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: e["timestamp"], reverse=True)


def without(entries: list[Entry], *phrases: str) -> list[Entry]:
    def text(e: Entry) -> str:
        return str(e.get("jsonPayload", {}).get("message", e.get("textPayload", "")))

    return [e for e in entries if not any(p in text(e) for p in phrases)]


def only(records: list[StartupRecord]) -> StartupRecord:
    assert len(records) == 1, [r.summary_line() for r in records]
    return records[0]


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------
def test_successful_startup_of_the_measured_build_is_ok_with_its_database_phase() -> None:
    record = only(parse_entries(newest_first(successful_startup(INSTANCE_A, T0))))
    assert record.outcome == "ok"
    assert (record.db_phase_s, record.db_phase_source) == (0.142, "completed")
    assert record.started_at == T0 + timedelta(seconds=0.01)  # the INITIATED entry, after a banner
    assert (record.instance, record.revision, record.service) == (INSTANCE_A, REVISION, SERVICE)
    assert (record.failed_phase, record.exit_code) == (None, None)


def test_error_lines_of_a_successful_startup_do_not_make_it_fail() -> None:
    entries = successful_startup(INSTANCE_A, T0)
    assert sum(e["severity"] == "ERROR" for e in entries) == 43
    assert only(parse_entries(entries)).outcome == "ok"


def test_breakdown_line_gives_the_database_phase_when_the_completed_line_is_missing() -> None:
    entries = without(successful_startup(INSTANCE_A, T0, db="1.275"), "COMPLETED: DATABASE")
    record = only(parse_entries(entries))
    assert (record.db_phase_s, record.db_phase_source) == (1.275, "breakdown")


def test_unrelated_total_lines_and_mangled_prefixes_are_not_timings() -> None:
    messages = info(
        "DETERMINISTIC STARTUP SEQUENCE INITIATED",
        "Total duration: 0.00s",
        " PASS=REDACTED Time: 1.215s",
        "    PASS=REDACTED        : 0.154s",
        "Database pool size: 20",
    )
    record = only(parse_entries(lines(INSTANCE_A, T0, messages)))
    assert (record.db_phase_s, record.outcome) == (None, "incomplete")


def test_failed_startup_in_the_database_phase() -> None:
    record = only(parse_entries(newest_first(failed_startup(INSTANCE_A, T0))))
    assert record.outcome == "failed"
    assert record.failed_phase == "database"
    assert (record.db_phase_s, record.db_phase_source) == (107.301, "partial_timings")
    assert record.exit_code == 3


def test_largest_after_of_phase_failed_is_the_last_resort_for_the_database_phase() -> None:
    entries = without(failed_startup(INSTANCE_A, T0), "PARTIAL PHASE", "FAIL:  DATABASE", "Failed at Phase")
    record = only(parse_entries(entries))
    assert (record.db_phase_s, record.db_phase_source) == (
        107.30,
        "phase_failed_after",
    )  # not the inner 10.0s
    assert record.failed_phase == "database"  # from PHASE FAILED


def test_startup_failing_after_the_database_phase_keeps_its_completed_database_time() -> None:
    messages = [
        *info("DETERMINISTIC STARTUP SEQUENCE INITIATED", " CYCLE:  PHASE TRANSITION  ->  CACHE"),
        ("INFO", " PASS=REDACTED COMPLETED: DATABASE (1.275s)"),
        ("ERROR", " FAIL:  PHASE FAILED: CACHE - Redis connection refused (after 2.00s)"),
        ("CRITICAL", "[U+1F4A5] DETERMINISTIC STARTUP SEQUENCE FAILED"),
        ("CRITICAL", " FAIL:  Failed at Phase: CACHE"),
        ("CRITICAL", "    PASS=REDACTED        : 1.275s"),
        ("CRITICAL", "    FAIL:  CACHE       : 2.001s"),
    ]
    record = only(parse_entries(lines(INSTANCE_A, T0, messages)))
    assert (record.outcome, record.failed_phase) == ("failed", "cache")
    assert (record.db_phase_s, record.db_phase_source) == (1.275, "completed")


def test_a_failed_phase_names_its_error_in_one_line() -> None:
    record = only(parse_entries(newest_first(failed_startup(INSTANCE_A, T0))))
    assert record.error == "Capacity-aware database initialization failed: connection timed out after 10.0s"
    assert f"failed at database ({record.error}; why: {record.reason})" in record.summary_line()


def test_a_phase_failed_without_words_takes_the_summarys_error_line() -> None:
    messages = [
        *info("DETERMINISTIC STARTUP SEQUENCE INITIATED"),
        ("ERROR", " FAIL:  PHASE FAILED: SERVICES -  (after 0.12s)"),
        ("CRITICAL", " FAIL:  Failed at Phase: SERVICES"),
        ("CRITICAL", " FAIL:  Error: ImportError: cannot import name 'AgentRegistry' token=abc123secret"),
    ]
    record = only(parse_entries(lines(INSTANCE_A, T0, messages)))
    assert (record.failed_phase, record.error) == (
        "services",
        "ImportError: cannot import name 'AgentRegistry' token=***REDACTED***",
    )


def test_the_error_line_that_names_its_type_is_preferred() -> None:
    messages = [
        *info("DETERMINISTIC STARTUP SEQUENCE INITIATED"),
        ("ERROR", " FAIL:  PHASE FAILED: SERVICES - cannot import name 'AgentRegistry' (after 0.00s)"),
        ("CRITICAL", " FAIL:  Failed at Phase: SERVICES"),
        ("CRITICAL", " FAIL:  Error: ImportError: cannot import name 'AgentRegistry'"),
    ]
    record = only(parse_entries(lines(INSTANCE_A, T0, messages)))
    assert record.error == "ImportError: cannot import name 'AgentRegistry'"


def test_container_exit_alone_makes_a_failed_startup() -> None:
    entries = [
        app(INSTANCE_A, T0, "DETERMINISTIC STARTUP SEQUENCE INITIATED"),
        system(INSTANCE_A, T0 + timedelta(seconds=90), "Container called exit(3)."),
    ]
    record = only(parse_entries(entries))
    assert (record.outcome, record.exit_code, record.failed_phase) == ("failed", 3, None)


def test_worker_exit_code_is_the_fallback_when_cloud_run_line_is_missing() -> None:
    record = only(parse_entries(without(failed_startup(INSTANCE_A, T0), "Container called exit")))
    assert record.exit_code == 3


def test_exit_after_a_successful_startup_is_a_crash_not_a_failed_startup() -> None:
    entries = [
        *successful_startup(INSTANCE_A, T0),
        system(INSTANCE_A, T0 + timedelta(hours=2), "Container called exit(1)."),
    ]
    record = only(parse_entries(entries))
    assert (record.outcome, record.exit_code, record.exit_after_startup) == ("ok", 1, True)
    assert "exit 1 after startup (not a startup failure)" in record.summary_line()


def test_startup_without_outcome_is_incomplete_and_says_where_it_stopped() -> None:
    messages = info(
        "DETERMINISTIC STARTUP SEQUENCE INITIATED",
        " CYCLE:  PHASE TRANSITION  ->  INIT",
        " CYCLE:  PHASE TRANSITION  ->  DATABASE",
        "Database initialization attempt 1/5 with timeout 95.0s (circuit: CLOSED)",
    )
    record = only(parse_entries(lines(INSTANCE_A, T0, messages)))
    assert (record.outcome, record.last_phase, record.db_phase_s) == ("incomplete", "database", None)
    assert "incomplete (last phase database)" in record.summary_line()


def test_entries_in_any_order_give_the_same_records() -> None:
    entries = successful_startup(INSTANCE_A, T0) + failed_startup(INSTANCE_B, T0)
    shuffled = list(entries)
    random.Random(1278).shuffle(shuffled)
    expected = parse_entries(entries)
    assert [r.outcome for r in expected] == ["failed", "ok"]  # in start order: B at T0, A 10 ms later
    assert parse_entries(newest_first(entries)) == expected
    assert parse_entries(shuffled) == expected


def test_lines_logged_several_times_are_read_once() -> None:
    entries = failed_startup(INSTANCE_A, T0)
    doubled = [*entries, *entries]  # the same entries twice (same insertId), as in two merged exports
    doubled.insert(
        1, app(INSTANCE_A, T0 + timedelta(seconds=0.002), "DETERMINISTIC STARTUP SEQUENCE INITIATED")
    )
    parsed = parse(doubled)
    assert only(list(parsed.records)) == only(parse_entries(entries))
    assert parsed.duplicates == len(entries) + 2  # every copy, the re-logged INITIATED, one PHASE FAILED


def test_each_instance_is_its_own_startup() -> None:
    entries = successful_startup(INSTANCE_A, T0) + failed_startup(INSTANCE_B, T0 + timedelta(seconds=0.005))
    records = parse_entries(newest_first(entries))
    assert {(r.instance, r.outcome) for r in records} == {(INSTANCE_A, "ok"), (INSTANCE_B, "failed")}


def test_a_restart_on_the_same_instance_is_a_second_startup() -> None:
    entries = failed_startup(INSTANCE_A, T0) + successful_startup(INSTANCE_A, T0 + timedelta(minutes=5))
    assert [r.outcome for r in parse_entries(newest_first(entries))] == ["failed", "ok"]


def test_a_platform_line_without_revision_joins_its_instance() -> None:
    entries = without(failed_startup(INSTANCE_A, T0), "Container called exit", "exited with code")
    exit_line = system(INSTANCE_A, T0 + timedelta(seconds=110), "Container called exit(3).")
    del exit_line["resource"]["labels"]["revision_name"]
    record = only(parse_entries([*entries, exit_line]))
    assert (record.revision, record.exit_code) == (REVISION, 3)


def test_entries_without_instance_or_of_another_service_are_skipped_and_counted() -> None:
    entries = [
        *successful_startup(INSTANCE_A, T0),
        app(None, T0, "DETERMINISTIC STARTUP SEQUENCE INITIATED"),
        app(INSTANCE_B, T0, "DETERMINISTIC STARTUP SEQUENCE INITIATED", service="netra-auth-service"),
    ]
    parsed = parse(entries, service=SERVICE)
    assert [r.instance for r in parsed.records] == [INSTANCE_A]
    assert (parsed.skipped_without_instance, parsed.skipped_other_service) == (1, 1)


def test_malformed_entries_are_skipped_never_raised() -> None:
    good = successful_startup(INSTANCE_A, T0)
    bad: list[object] = [
        None,
        42,
        "DETERMINISTIC STARTUP SEQUENCE INITIATED",
        [],
        {},
        {"timestamp": "yesterday", "labels": {"instanceId": INSTANCE_B}},
        {"timestamp": stamp(T0), "labels": "not a mapping", "textPayload": "Container called exit(3)."},
        {"timestamp": stamp(T0), "labels": {"instanceId": INSTANCE_B}, "jsonPayload": "text", "resource": 7},
        {"timestamp": stamp(T0), "labels": {"instanceId": INSTANCE_B}, "jsonPayload": {"message": None}},
    ]
    parsed = parse([*bad, *good])
    assert [r.instance for r in parsed.records] == [INSTANCE_A]
    assert (parsed.skipped_malformed, parsed.skipped_without_instance) == (6, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-09-15T18:00:00.012345678Z", datetime(2025, 9, 15, 18, 0, 0, 12345, tzinfo=UTC)),
        ("2025-09-15T18:00:00Z", datetime(2025, 9, 15, 18, 0, 0, tzinfo=UTC)),
        ("2025-09-15T20:00:00.5+02:00", datetime(2025, 9, 15, 18, 0, 0, 500000, tzinfo=UTC)),
        ("2025-09-15T18:00:00", None),  # no zone: not RFC3339
        ("18:00", None),
        (None, None),
    ],
)
def test_rfc3339_timestamps(text: str | None, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_records_are_json_friendly_and_scrub_credentials_from_evidence() -> None:
    entries = failed_startup(INSTANCE_A, T0)
    entries[-6]["jsonPayload"]["message"] = (
        " FAIL:  Error: connect postgresql://netra:hunter2-secret@10.0.0.3/netra failed"
    )
    entries.append(
        app(
            INSTANCE_A,
            T0 + timedelta(seconds=109),
            "PHASE FAILED: DATABASE - token ya29.fake-access-token-123",
        )
    )
    record = only(parse_entries(entries))
    text = json.dumps(record.to_dict())
    assert json.loads(text)["started_at"] == "2025-09-15T18:00:00.000Z"
    assert "Failed at Phase: DATABASE" in text
    assert "hunter2" not in text and "ya29.fake" not in text


# --------------------------------------------------------------------------------------------------
# The Cloud Logging filter
# --------------------------------------------------------------------------------------------------
def facts(r: StartupRecord) -> tuple[object, ...]:
    """What a record says, without the bookkeeping of which entries it was read from."""
    return (
        r.instance,
        r.started_at,
        r.outcome,
        r.db_phase_s,
        r.db_phase_source,
        r.failed_phase,
        r.exit_code,
        r.last_phase,
    )


def test_filter_regex_keeps_every_line_the_parser_reads_and_drops_the_noise() -> None:
    regex = re.compile(LOG_TEXT_REGEX)  # RE2 and Python agree on this plain subset
    decisive = [
        e
        for e in successful_startup(INSTANCE_A, T0) + failed_startup(INSTANCE_B, T0)
        if any(regex.search(str(v)) for v in (e.get("textPayload"), e.get("jsonPayload", {}).get("message")))
    ]
    full = parse_entries(successful_startup(INSTANCE_A, T0) + failed_startup(INSTANCE_B, T0))

    def how(r: StartupRecord) -> tuple[object, ...]:  # how it died, as the kinds read it
        return (*facts(r), r.error, r.reason, r.reason_lines, r.db_timeout_s, r.app_outcome, r.platform)

    assert [how(r) for r in parse_entries(decisive)] == [how(r) for r in full]
    by_instance = {r.instance: r for r in full}
    assert by_instance[INSTANCE_B].reason == "Database initialization attempt 1 failed (timeout)"
    assert by_instance[INSTANCE_A].db_timeout_s == 95.0
    for noise in [
        "=" * 80,
        "Total duration: 0.00s",
        HEALTH_ERRORS[0][1],
        "Database initialization attempt 1/5",
        "Database initialization attempt 1/5 with timeout 95.0s (circuit: CLOSED)",
        'Default STARTUP TCP probe succeeded after 1 attempt for container "x" on port 8000.',
    ]:
        assert not regex.search(noise), noise


def test_gcloud_filter_restricts_resource_service_region_and_window() -> None:
    text = gcloud_filter(since=T0, until=T0 + timedelta(hours=1), service=SERVICE, region=REGION)
    assert text.startswith(
        'resource.type="cloud_run_revision" AND resource.labels.service_name="netra-backend-staging"'
    )
    assert 'resource.labels.location="us-central1"' in text
    assert 'timestamp>="2025-09-15T18:00:00.000000Z" AND timestamp<="2025-09-15T19:00:00.000000Z"' in text
    assert f'(jsonPayload.message=~"{LOG_TEXT_REGEX}" OR textPayload=~"{LOG_TEXT_REGEX}")' in text


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------
def load(spec: str, gcloud: str = "gcloud", timeout_s: float = 10.0) -> Any:
    return load_entries(
        spec,
        since=T0,
        until=T0 + timedelta(hours=1),
        project=PROJECT,
        service=SERVICE,
        region=REGION,
        timeout_s=timeout_s,
        gcloud=gcloud,
    )


def test_none_says_how_to_enable_it() -> None:
    result = load("none")
    assert not result.measured and result.entries == ()
    assert result.unmeasured == (
        "startup evidence disabled (E2E_STARTUP_EVIDENCE=none): set it to gcloud "
        "(with credentials that can read Cloud Logging in netra-staging) or file:PATH"
    )


def test_unknown_spec_is_unmeasured() -> None:
    assert "use gcloud, file:PATH or none" in (load("gcs://bucket").unmeasured or "")


def test_file_with_a_json_array_as_gcloud_prints_it(tmp_path: Path) -> None:
    entries = newest_first(failed_startup(INSTANCE_A, T0))
    path = tmp_path / "logs.json"
    path.write_text(json.dumps(entries, indent=2))
    result = load(f"file:{path}")
    assert result.measured and result.source == f"file:{path}"
    assert only(parse_entries(result.entries)).outcome == "failed"


def test_file_with_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "logs.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in successful_startup(INSTANCE_A, T0)) + "\n\n")
    assert only(parse_entries(load(f"file:{path}").entries)).outcome == "ok"


def test_missing_file_is_unmeasured_with_its_path(tmp_path: Path) -> None:
    result = load(f"file:{tmp_path / 'nope.json'}")
    assert result.unmeasured is not None and "nope.json does not exist" in result.unmeasured


@pytest.mark.parametrize("content", ['[{"timestamp": "x"},', '{"a": 1}\nnot json\n', "  \n"])
def test_invalid_file_is_unmeasured(tmp_path: Path, content: str) -> None:
    path = tmp_path / "logs.json"
    path.write_text(content)
    result = load(f"file:{path}")
    assert not result.measured and str(path) in (result.unmeasured or "")


def fake_gcloud(tmp_path: Path, body: str) -> str:
    path = tmp_path / "gcloud"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_gcloud_entries_and_the_command_it_ran(tmp_path: Path) -> None:
    (tmp_path / "out.json").write_text(json.dumps(newest_first(successful_startup(INSTANCE_A, T0))))
    gcloud = fake_gcloud(tmp_path, f'printf "%s\\n" "$@" > "{tmp_path}/argv"\ncat "{tmp_path}/out.json"')
    result = load("gcloud", gcloud=gcloud)
    assert result.measured and result.note is None
    assert only(parse_entries(result.entries)).outcome == "ok"
    argv = (tmp_path / "argv").read_text().splitlines()
    expected_filter = gcloud_filter(since=T0, until=T0 + timedelta(hours=1), service=SERVICE, region=REGION)
    assert argv == [
        "logging",
        "read",
        expected_filter,
        "--project=netra-staging",
        "--format=json",
        "--limit=5000",
    ]


def test_gcloud_stopping_at_its_limit_is_noted(tmp_path: Path) -> None:
    gcloud = fake_gcloud(tmp_path, "echo '[{}, {}]'")
    result = load_entries(
        "gcloud",
        since=T0,
        until=T0,
        project=PROJECT,
        service=SERVICE,
        region=None,
        timeout_s=10,
        gcloud=gcloud,
        limit=2,
    )
    assert result.measured and (result.note or "").startswith(
        "the newest 2 entries only (gcloud stopped at its limit)"
    )


def test_gcloud_not_authenticated_never_shows_the_token(tmp_path: Path) -> None:
    gcloud = fake_gcloud(
        tmp_path,
        "echo 'ERROR: (gcloud.logging.read) Reauthentication required; cached token ya29.fake-access-token-123 expired' >&2\n"
        "echo 'Please run: $ gcloud auth login' >&2\nexit 1",
    )
    reason = load("gcloud", gcloud=gcloud).unmeasured or ""
    assert reason.startswith("gcloud is not authenticated for netra-staging (gcloud said: Reauthentication")
    assert "run `gcloud auth login`" in reason and "ya29.fake-access-token-123" not in reason
    assert "\n" not in reason


def test_gcloud_other_failure_gives_its_first_stderr_line(tmp_path: Path) -> None:
    gcloud = fake_gcloud(
        tmp_path, "echo 'ERROR: (gcloud.logging.read) INVALID_ARGUMENT: Unparseable filter' >&2\nexit 2"
    )
    reason = load("gcloud", gcloud=gcloud).unmeasured
    assert (
        reason
        == "gcloud logging read failed (exit 2): ERROR: (gcloud.logging.read) INVALID_ARGUMENT: Unparseable filter"
    )


def test_gcloud_printing_something_else_than_json_is_unmeasured(tmp_path: Path) -> None:
    reason = load("gcloud", gcloud=fake_gcloud(tmp_path, "echo 'Listed 0 items.'")).unmeasured
    assert reason is not None and reason.startswith("gcloud logging read printed something that is not JSON")


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan stays a zombie where pid 1 does not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


def test_gcloud_that_hangs_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "sleeper.pid"
    gcloud = fake_gcloud(tmp_path, f"sh -c 'echo $$ > \"{pidfile}\"; exec sleep 30'")
    started = time.monotonic()
    reason = load("gcloud", gcloud=gcloud, timeout_s=1.0).unmeasured
    assert time.monotonic() - started < 2.0
    assert reason is not None and reason.startswith(
        "gcloud logging read did not answer within 1s and was killed"
    )
    sleeper = int(pidfile.read_text())  # its child too: nothing left behind (SIGKILL, given a moment to land)
    deadline = time.monotonic() + 0.5
    while running(sleeper) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not running(sleeper)


def test_gcloud_not_installed_says_how_to_get_it(tmp_path: Path) -> None:
    reason = load("gcloud", gcloud=str(tmp_path / "missing" / "gcloud")).unmeasured
    assert reason is not None and reason.startswith("gcloud is not installed (")
    assert "https://cloud.google.com/sdk/docs/install" in reason


# --------------------------------------------------------------------------------------------------
# The window's summary
# --------------------------------------------------------------------------------------------------
def record(
    minute: float, outcome: StartupOutcome = "ok", db: float | None = 1.0, failed_phase: str | None = None
) -> StartupRecord:
    at = T0 + timedelta(minutes=minute)
    return StartupRecord(
        instance=f"i{minute}",
        revision=REVISION,
        started_at=at,
        db_phase_s=db,
        outcome=outcome,
        failed_phase=failed_phase,
        exit_code=None,
        first_entry_at=at,
        last_entry_at=at,
    )


UNTIL = T0 + timedelta(hours=1)


def test_rate_counts_ok_and_failed_and_keeps_incomplete_apart() -> None:
    records = [record(i) for i in range(9)] + [record(10, "failed", failed_phase="database")]
    records += [record(20, "incomplete", db=None), record(21, "incomplete", db=None)]
    summary = tally(records, since=T0, until=UNTIL)
    assert (summary.ok, summary.failed, summary.incomplete, summary.started) == (9, 1, 2, 12)
    assert summary.success_rate == 0.9
    assert summary.wilson_lower_95 == wilson_lower(9, 10)
    assert summary.failed_phases == {"database": 1}
    assert len(summary.lines) == 12


def test_only_startups_begun_in_the_window_count() -> None:
    records = [record(-1, "failed"), record(0), record(60), record(61, "failed")]
    summary = tally(records, since=T0, until=UNTIL)
    assert (summary.ok, summary.failed) == (2, 0)


def test_records_without_a_start_line_are_listed_apart_never_in_the_rate() -> None:
    orphan = replace(record(5, "failed", failed_phase="database"), started_at=None)
    before = replace(orphan, first_entry_at=T0 - timedelta(hours=2), last_entry_at=T0 - timedelta(hours=1))
    summary = tally([record(1), orphan, before], since=T0, until=UNTIL)
    assert (summary.ok, summary.failed, summary.success_rate) == (1, 0, 1.0)
    assert summary.without_start == (orphan,)
    assert "1 without a start line (not counted)" in summary.text()
    assert any("no start line" in line for line in summary.lines)


def test_database_phase_p95_and_max_take_every_outcome() -> None:
    records = [record(i, db=float(i + 1)) for i in range(19)]  # 1..19 s
    records += [record(30, "failed", db=107.301), record(31, "incomplete", db=2.0), record(32, db=None)]
    summary = tally(records, since=T0, until=UNTIL)
    assert summary.db_phase_samples == 21
    assert summary.db_phase_p95_s == 19.0  # nearest rank 20 of 21 sorted values
    assert summary.db_phase_max_s == 107.301


def test_no_finished_startup_gives_no_rate_and_no_timing() -> None:
    summary = tally([record(1, "incomplete", db=None)], since=T0, until=UNTIL)
    assert (
        summary.success_rate,
        summary.wilson_lower_95,
        summary.db_phase_p95_s,
        summary.db_phase_max_s,
    ) == (None,) * 4
    assert "no finished startup" in summary.text() and "no database-phase timing" in summary.text()


def test_summary_of_parsed_logs_reads_as_evidence() -> None:
    entries = newest_first(
        successful_startup(INSTANCE_A, T0 + timedelta(minutes=1))
        + failed_startup(INSTANCE_B, T0 + timedelta(minutes=2))
    )
    summary = tally(parse_entries(entries), since=T0, until=UNTIL)
    assert summary.text() == (
        "startups 2025-09-15T18:00:00.000Z..2025-09-15T19:00:00.000Z: 1 ok, 1 failed (database 1), "
        "0 incomplete; success rate 50.0% (Wilson 95% lower 9.5%); "
        "database phase p95 107.301s, max 107.301s over 2"
    )
    assert summary.lines[1].endswith(
        f"{INSTANCE_B[:12]}… {REVISION}: failed at database (Capacity-aware database initialization failed: connection timed out after 10.0s; why: Database initialization attempt 1 failed (timeout)), database phase 107.301s (partial_timings), exit 3"
    )
    assert json.loads(json.dumps(summary.to_dict()))["failed"] == 1
