"""The replica's Cloud Logging: the startup evidence the real backend writes, read as gcloud returns it.

Post-fix verification judges Issue #1278 on startups (success rate, database-phase durations), and
on staging their only source is the backend's log entries. These tests read `cloud-logging.json` of
real replicas (real processes, real PostgreSQL) the way the suite's parser will: entries grouped by
`labels.instanceId`, matched on the real build's phrases, its mangled success lines included.
The helpers at the top are shared with test_instances.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from replica import scenarios
from replica.cloud_logging import LOG_STDERR, LOG_STDOUT, LOG_SYSTEM, SERVICE_NAME
from replica.handle import ReplicaHandle
from tests.replica.lifecycle import cli, poll_until, running

pytestmark = [pytest.mark.replica]

T = TypeVar("T")
EVIDENCE_BOUND_S = 15.0  # until every instance's startup is in the file (imports on a busy 2-core box)
CRASH_LOOP_BOUND_S = 20.0  # three instances: imports, the 3 s database timeout, exit 3
ISSUE_1278_TIMEOUT_S = float(scenarios.get("issue-1278").service["db_timeout_s"])
FIX_BOUND_S = 10.0  # post-fix verification's story: >= 3 good startups within ~10 s of the fix
FIX_BACKOFF_MAX_S = 2.0

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
RECEIVE_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$")
INSTANCE_ID = re.compile(r"^[0-9a-f]{64,}$")
DB_COMPLETED = re.compile(r"COMPLETED: DATABASE \((\d+\.\d{3})s\)")
DB_BREAKDOWN = re.compile(r"^\s+DATABASE\s*: (\d+\.\d{3})s \(\d+\.\d%\)$")
DB_PARTIAL = re.compile(r"FAIL:\s+DATABASE\s*: (\d+\.\d{3})s$")
FAILED_AT = re.compile(r"Failed at Phase: (\w+)")
EXIT = re.compile(r"^Container called exit\((\d+)\)\.$")


# --- reading startups out of the entries (what the suite's parser does, minimally) ----------------


def text_of(entry: dict[str, Any]) -> str:
    payload = entry.get("jsonPayload")
    return str(payload.get("message", "")) if isinstance(payload, dict) else str(entry.get("textPayload", ""))


def entry_time(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["timestamp"])


@dataclass
class Startup:
    """One instance's startup: its entries in time order and what they say."""

    instance_id: str
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [text_of(e) for e in self.entries]

    def has(self, phrase: str) -> bool:
        return any(phrase in t for t in self.texts)

    def first(self, pattern: re.Pattern[str]) -> str | None:
        return next((m.group(1) for t in self.texts if (m := pattern.search(t))), None)

    @property
    def initiated_at(self) -> datetime | None:
        return next((entry_time(e) for e in self.entries if "STARTUP SEQUENCE INITIATED" in text_of(e)), None)

    @property
    def outcome(self) -> str:
        if self.has("STARTUP SEQUENCE FAILED") or self.has("Application startup failed"):
            return "failed"
        return "ok" if self.has("STARTUP SEQUENCE COMPLETED SUCCESSFULLY") else "incomplete"

    @property
    def db_phase_s(self) -> float | None:
        value = self.first(DB_COMPLETED) or self.first(DB_PARTIAL)
        return float(value) if value else None

    @property
    def exits(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if EXIT.match(str(e.get("textPayload", "")))]


def startups(entries: list[dict[str, Any]]) -> list[Startup]:
    """One Startup per instance id, in the order the instances first logged."""
    by_instance: dict[str, Startup] = {}
    for entry in reversed(entries):  # the file is newest first
        instance = entry["labels"]["instanceId"]
        by_instance.setdefault(instance, Startup(instance)).entries.append(entry)
    return list(by_instance.values())


def outcomes(found: list[Startup]) -> dict[str, int]:
    counts = {"ok": 0, "failed": 0, "incomplete": 0}
    for startup in found:
        counts[startup.outcome] += 1
    return counts


def success_rate(found: list[Startup]) -> float | None:
    counts = outcomes(found)
    finished = counts["ok"] + counts["failed"]
    return counts["ok"] / finished if finished else None


# --- small helpers ---------------------------------------------------------------------------------


def instance_ids(handle: ReplicaHandle) -> set[str]:
    """The instance ids the daemon gave its current backend processes."""
    return {i["instance_id"] for i in handle.status()["backend"]["instances"]}


# --- healthy: one successful startup per instance --------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    handle: ReplicaHandle
    entries: list[dict[str, Any]]
    instances: set[str]


@pytest.fixture(scope="class")
def healthy_evidence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evidence]:
    """Two healthy instances, once both startups are in the file."""
    with running(tmp_path_factory.mktemp("healthy-logs"), "healthy", instances=2) as handle:

        def both_started() -> list[dict[str, Any]] | None:
            entries = handle.cloud_logging()
            return entries if outcomes(startups(entries))["ok"] == 2 else None

        entries, elapsed = poll_until(both_started, EVIDENCE_BOUND_S)
        print(f"healthy: both startups logged {elapsed:.1f}s after start")
        yield Evidence(handle, entries or handle.cloud_logging(), instance_ids(handle))


def both(evidence: Evidence) -> list[Startup]:
    """The two instances' startups (failing here, not passing vacuously, when they are missing)."""
    found = startups(evidence.entries)
    assert len(found) == 2, [s.instance_id for s in found]
    return found


class TestHealthyStartupEvidence:
    def test_one_successful_startup_per_instance(self, healthy_evidence: Evidence) -> None:
        found = startups(healthy_evidence.entries)
        initiated = {s.instance_id: s.texts.count("DETERMINISTIC STARTUP SEQUENCE INITIATED") for s in found}
        assert initiated == dict.fromkeys(healthy_evidence.instances, 1)
        assert [s.outcome for s in found] == ["ok", "ok"]

    def test_database_phase_line_is_mangled_like_the_real_build(self, healthy_evidence: Evidence) -> None:
        """` PASS:  PHASE COMPLETED: DATABASE (0.142s)` reaches the log as `PASS=REDACTED COMPLETED: ...`."""
        for startup in both(healthy_evidence):
            lines = [t for t in startup.texts if DB_COMPLETED.search(t)]
            assert len(lines) == 1 and re.fullmatch(
                r" PASS=REDACTED COMPLETED: DATABASE \(\d+\.\d{3}s\)", lines[0]
            )
            assert not any("PASS:" in t for t in startup.texts), "a success line escaped the redactor"

    def test_success_summary_and_breakdown_agree_on_the_database_phase(
        self, healthy_evidence: Evidence
    ) -> None:
        for startup in both(healthy_evidence):
            assert startup.has("[U+1F680] DETERMINISTIC STARTUP SEQUENCE COMPLETED SUCCESSFULLY")
            assert startup.has(" PASS=REDACTED Completed: 7/7") and startup.has(
                "Application startup complete."
            )
            assert startup.first(DB_BREAKDOWN) == startup.first(DB_COMPLETED)

    def test_noise_a_parser_must_survive_is_there(self, healthy_evidence: Evidence) -> None:
        """Banners, unrelated totals and ERROR lines in a startup that succeeds, as in the real logs."""
        startup = both(healthy_evidence)[0]
        errors = [text_of(e) for e in startup.entries if e.get("severity") == "ERROR"]
        assert (
            startup.has("=" * 80)
            and startup.has("Total duration: 0.00s")
            and startup.has("Total Services: 5")
        )
        assert any(t.startswith("Database health check FAILED: TypeError") for t in errors), errors

    def test_entries_have_the_shape_gcloud_returns(self, healthy_evidence: Evidence) -> None:
        assert healthy_evidence.entries
        for entry in healthy_evidence.entries:
            assert entry["logName"] in (LOG_STDOUT, LOG_STDERR, LOG_SYSTEM)
            assert entry["resource"]["type"] == "cloud_run_revision"
            labels = entry["resource"]["labels"]
            assert (labels["service_name"], labels["configuration_name"]) == (SERVICE_NAME, SERVICE_NAME)
            assert labels["revision_name"] == healthy_evidence.handle.state["revision"]
            assert INSTANCE_ID.match(entry["labels"]["instanceId"])
            assert RFC3339_Z.match(entry["timestamp"]) and RECEIVE_Z.match(entry["receiveTimestamp"])
            assert ("jsonPayload" in entry) != ("textPayload" in entry)
        assert len({e["insertId"] for e in healthy_evidence.entries}) == len(healthy_evidence.entries)

    def test_json_lines_keep_their_payload_and_lift_the_severity(self, healthy_evidence: Evidence) -> None:
        """The real build's line (message, timestamp, labels, context) with `severity` lifted to the entry."""
        for entry in (e for e in healthy_evidence.entries if "jsonPayload" in e):
            payload = entry["jsonPayload"]
            assert set(payload) == {"message", "timestamp", "labels", "context"}, payload
            assert set(payload["labels"]) == {"module", "function", "line"}
            assert entry["severity"] in ("INFO", "WARNING", "ERROR", "CRITICAL")
            assert datetime.fromisoformat(payload["timestamp"]) == entry_time(entry)

    def test_array_is_newest_first(self, healthy_evidence: Evidence) -> None:
        times = [entry_time(e) for e in healthy_evidence.entries]
        assert times == sorted(times, reverse=True)

    def test_state_and_cli_name_the_same_entries(self, healthy_evidence: Evidence) -> None:
        """`python -m replica logs [--since]` prints the file's array (or its entries since a time)."""
        handle = healthy_evidence.handle
        assert handle.state["cloud_logging_path"] == str(handle.cloud_logging_path)
        middle = entry_time(healthy_evidence.entries[len(healthy_evidence.entries) // 2])
        since = middle.astimezone(UTC).isoformat().replace("+00:00", "Z")
        printed = json.loads(cli(handle.run_dir, "logs", "--since", since).stdout)
        # Read after the command: a running instance may have logged more since (newest first), never less.
        later = [e for e in handle.cloud_logging() if entry_time(e) >= middle]
        assert printed and printed == later[len(later) - len(printed) :]


# --- issue-1278 with three instances: failed startups, then the fix ---------------------------------


@dataclass(frozen=True)
class FixStory:
    failed: list[Startup]  # the startups that failed before the fix
    ok_after_fix: list[Startup]  # the good startups that began after it
    fix_to_three_ok_s: float | None


@pytest.fixture(scope="class")
def fix_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixStory]:
    """issue-1278 on three instances: wait for three failed startups, `fix`, wait for three good ones."""
    run_dir = tmp_path_factory.mktemp("issue-1278-logs")
    with running(run_dir, "issue-1278", instances=3, backoff_max_s=FIX_BACKOFF_MAX_S) as handle:

        def three_failed() -> list[Startup] | None:
            failed = [s for s in startups(handle.cloud_logging()) if s.outcome == "failed" and s.exits]
            return failed if len(failed) >= 3 else None

        failed, elapsed = poll_until(three_failed, CRASH_LOOP_BOUND_S)
        print(f"issue-1278: {len(failed or [])} failed startups logged after {elapsed:.1f}s")
        failed = failed or [s for s in startups(handle.cloud_logging()) if s.outcome == "failed"]
        fixed_at = datetime.now(UTC)
        handle.fix()

        def three_ok() -> list[Startup] | None:
            found = startups(handle.cloud_logging(since=fixed_at - timedelta(seconds=1)))
            ok = [s for s in found if s.outcome == "ok" and (s.initiated_at or fixed_at) >= fixed_at]
            return ok if len(ok) >= 3 else None

        ok, took = poll_until(three_ok, FIX_BOUND_S)
        print(f"issue-1278: {len(ok or [])} good startups {took:.1f}s after the fix")
        yield FixStory(failed, ok or [], took if ok else None)


class TestIssue1278StartupEvidence:
    def test_each_failed_startup_names_the_database_phase(self, fix_story: FixStory) -> None:
        assert len(fix_story.failed) >= 3
        for startup in fix_story.failed:
            assert startup.first(FAILED_AT) == "DATABASE", startup.texts[-30:]
            assert startup.has("PHASE FAILED: DATABASE") and startup.has("[TIMEOUT - Circuit: OPEN]")
            assert startup.has("Exiting with code 3 to signal startup failure")

    def test_each_failed_startup_has_its_container_exit_3(self, fix_story: FixStory) -> None:
        """Cloud Run's `Container called exit(3).`, on the same instance, after its last line."""
        assert len(fix_story.failed) >= 3
        for startup in fix_story.failed:
            (exit_entry,) = startup.exits
            assert (exit_entry["textPayload"], exit_entry["severity"]) == (
                "Container called exit(3).",
                "WARNING",
            )
            assert exit_entry["logName"] == LOG_SYSTEM
            assert exit_entry is startup.entries[-1]

    def test_failed_database_phase_spent_the_whole_timeout(self, fix_story: FixStory) -> None:
        """The partial timings' `FAIL: DATABASE : N.NNNs` is the measured timeout, not a constant."""
        durations = [s.db_phase_s for s in fix_story.failed]
        timeout = ISSUE_1278_TIMEOUT_S
        assert durations and all(d is not None and timeout - 0.1 <= d < timeout + 1.0 for d in durations), (
            durations
        )

    def test_three_good_startups_within_10s_of_the_fix(self, fix_story: FixStory) -> None:
        assert fix_story.fix_to_three_ok_s is not None, "fewer than 3 good startups after the fix"
        for startup in fix_story.ok_after_fix:
            assert startup.db_phase_s is not None and not startup.exits
