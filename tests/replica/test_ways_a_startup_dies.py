"""Every way a backend startup dies, played by the replica and logged in the real build's words.

Each story is a crash loop behind the same 503 page, with auth healthy; only an instance's log lines
tell them apart (measured on the real build, aebb16f with staging settings, and Cloud Run's own lines):

* db-wrong-password, db-socket-missing, db-empty: the database phase fails at once, the line that
  says why first, then the generic `Database schema validation failed - schema inconsistent`, exit 3;
* oom: the platform kills the instance for memory during its SERVICES phase (no summary from the app);
* port-mismatch: the app starts and listens elsewhere, the startup probe on PORT fails, the platform
  kills it;
* stuck-after-database: the database phase completes, CACHE never ends, the probe fails, the kill.

(issue-1278, the timeout, is in test_stories_behind_the_503_page.py.) One replica per story, shared by
its tests: it is watched until an instance's end is in the log, then `fix` is applied (these are the
product's or the configuration's faults: it must change nothing) and the replica is watched until an
instance started after the fix has ended the same way. Everything over real sockets and processes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from contract.startup import STARTUP_FAILURE_EXIT_CODE
from harness.startup.records import parse_entries
from replica.cloud_logging import CONTAINER_NAME, CONTAINER_PORT, LOG_STDOUT, LOG_SYSTEM, SERVICE_NAME
from replica.handle import ReplicaHandle
from tests.replica.lifecycle import poll_until, running
from tests.replica.test_cloud_logging import Startup, entry_time, startups, text_of
from tests.replica.test_scenarios import get, is_gateway_page, is_json

pytestmark = [pytest.mark.replica]

DEATH_BOUND_S = 25.0  # replica start, imports, a probe budget or a database phase; a busy 2-core box
BACKOFF_MAX_S = 2.0
SIGKILL = 9
ENDED = re.compile(r"^Container (called exit\(\d+\)|terminated on signal \d+)\.$")
N = r"\d+\.\d+"  # a measured duration

# What one line must be: its severity, its log (the app's stdout or Cloud Run's system log), and a
# pattern its whole text matches.
Expected = tuple[str, str, str]


def app(severity: str, pattern: str) -> Expected:
    return (severity, LOG_STDOUT, pattern)


def platform(severity: str, pattern: str) -> Expected:
    return (severity, LOG_SYSTEM, pattern)


def literal(text: str) -> str:
    return re.escape(text)


# --- the real build's lines ---------------------------------------------------------------------------

DATABASE_PHASE_BEGINS = [
    app("INFO", literal(" CYCLE:  PHASE TRANSITION  ->  DATABASE")),
    app("INFO", rf"Initializing database for staging with capacity-aware timeouts: init={N}s, tables={N}s"),
    app("INFO", rf"Database initialization attempt 1/5 with timeout {N}s \(circuit: CLOSED\)"),
]
SCHEMA_INCONSISTENT = "Database schema validation failed - schema inconsistent"
DATABASE_PHASE_FAILS = [
    app("ERROR", rf" FAIL:  PHASE FAILED: DATABASE - {literal(SCHEMA_INCONSISTENT)} \(after \d+\.\d\ds\)"),
    app("CRITICAL", literal("[U+1F4A5] DETERMINISTIC STARTUP SEQUENCE FAILED")),
    app("CRITICAL", literal(" FAIL:  Failed at Phase: DATABASE")),
    app("CRITICAL", rf" FAIL:  Time Elapsed: {N}s"),
    app("CRITICAL", literal(f" FAIL:  Error: RuntimeError: {SCHEMA_INCONSISTENT}")),
    app("CRITICAL", literal(" FAIL:  Failed Phases: ['database']")),
    app("CRITICAL", literal(" CHART:  PARTIAL PHASE TIMINGS:")),
    app("CRITICAL", rf"    FAIL:  DATABASE    : {N}s"),
    app("CRITICAL", literal("Exiting with code 3 to signal startup failure")),
    app("ERROR", literal("Application startup failed. Exiting.")),
    platform("WARNING", literal(f"Container called exit({STARTUP_FAILURE_EXIT_CODE}).")),
]


def connection_refused(error: str) -> list[Expected]:
    """The database answers at once and refuses: what the real build logs, `error` as it reaches the log."""
    return [
        *DATABASE_PHASE_BEGINS,
        app("ERROR", rf"❌ Database connection error after {N}s \(attempt 1/3\): {literal(error)}"),
        app("ERROR", literal(f"Database connectivity check failed: {error}")),
        *DATABASE_PHASE_FAILS,
    ]


WRONG_PASSWORD = connection_refused('password=REDACTED failed for user "netra_staging"')
SOCKET_MISSING = connection_refused("[Errno 2] No such file or directory")
EMPTY_DATABASE = [
    *DATABASE_PHASE_BEGINS,
    app(
        "WARNING",
        literal(
            "Failed to verify database tables exist: Missing critical database tables: {'users', "
            "'assistants', 'runs', 'messages', 'threads'}. Run migration service first. - continuing with "
            "potential database issues"
        ),
    ),
    *DATABASE_PHASE_FAILS,
]
KILLED = platform("WARNING", literal(f"Container terminated on signal {SIGKILL}."))
MEMORY_EXCEEDED = r"Memory limit of (\d+) MiB exceeded with (\d+) MiB used\."
OOM = [
    app("INFO", literal(" CYCLE:  PHASE TRANSITION  ->  SERVICES")),
    app("INFO", literal("PHASE 5: SERVICES - Chat Pipeline & Critical Services")),
    platform("ERROR", MEMORY_EXCEEDED),
    KILLED,
]
PROBE_FAILED = [
    platform(
        "ERROR",
        literal(
            f'Default STARTUP TCP probe failed 1 time consecutively for container "{CONTAINER_NAME}" on '
            f"port {CONTAINER_PORT}. The instance was not started."
        ),
    ),
    platform(
        "ERROR",
        literal(
            "The user-provided container failed to start and listen on the port defined provided by the "
            f"PORT={CONTAINER_PORT} environment variable within the allocated timeout."
        ),
    ),
    KILLED,
]
PORT_MISMATCH = [
    app("INFO", literal("[U+1F680] DETERMINISTIC STARTUP SEQUENCE COMPLETED SUCCESSFULLY")),
    app("INFO", literal("Application startup complete.")),
    app("INFO", r"Uvicorn running on http://127\.0\.0\.1:(\d+) \(Press CTRL\+C to quit\)"),
    *PROBE_FAILED,
]
STUCK_AFTER_DATABASE = [
    *DATABASE_PHASE_BEGINS,
    app("INFO", rf" PASS=REDACTED COMPLETED: DATABASE \({N}s\)"),
    app("INFO", literal(" CYCLE:  PHASE TRANSITION  ->  CACHE")),
    app("INFO", literal("PHASE 4: CACHE - Redis Setup")),
    *PROBE_FAILED,
]
APP_OUTCOMES = (
    "STARTUP SEQUENCE FAILED",
    "STARTUP SEQUENCE COMPLETED SUCCESSFULLY",
    "Application startup failed",
)


# --- watching a story ---------------------------------------------------------------------------------


def ended(startup: Startup) -> bool:
    """The platform's line for the instance's end (an exit, or a kill) is in the log."""
    return any(e["logName"] == LOG_SYSTEM and ENDED.match(text_of(e)) for e in startup.entries)


def first_ended(handle: ReplicaHandle, since: datetime | None = None) -> Startup | None:
    """The first instance (that began at or after `since`) whose end is in the log."""
    for startup in startups(handle.cloud_logging()):
        if (since is None or entry_time(startup.entries[0]) >= since) and ended(startup):
            return startup
    return None


@dataclass(frozen=True)
class Story:
    scenario: str
    handle: ReplicaHandle
    first: Startup  # the first instance that died
    after_fix: Startup  # an instance started after `fix`, dead too
    backend: dict[str, Any]  # the backend's status then
    first_death_s: float  # from the replica's start to the first death in the log


def watch(tmp_path_factory: pytest.TempPathFactory, scenario: str) -> Iterator[Story]:
    began = time.monotonic()
    with running(tmp_path_factory.mktemp(scenario), scenario, backoff_max_s=BACKOFF_MAX_S) as handle:
        up_s = time.monotonic() - began
        first, _ = poll_until(lambda: first_ended(handle), DEATH_BOUND_S, interval_s=0.2)
        first_death_s = time.monotonic() - began
        if first is None:
            pytest.fail(f"precondition: no instance ended in {DEATH_BOUND_S}s: {handle.status()['summary']}")
        fixed_at = datetime.now(UTC)
        handle.fix()
        after_fix, _ = poll_until(lambda: first_ended(handle, fixed_at), DEATH_BOUND_S, interval_s=0.2)
        if after_fix is None:
            pytest.fail(
                f"precondition: no instance started after the fix ended: {handle.status()['summary']}"
            )
        print(
            f"{scenario}: replica up in {up_s:.1f}s, first death in the log {first_death_s:.1f}s after the "
            f"start, one more after the fix {time.monotonic() - began:.1f}s after it"
        )
        yield Story(scenario, handle, first, after_fix, handle.status()["backend"], first_death_s)


def lines_in_order(startup: Startup, expected: list[Expected]) -> list[re.Match[str]]:
    """Each expected line, in this order (other lines may come between): their matches."""
    entries = startup.entries
    matches: list[re.Match[str]] = []
    at = 0
    for severity, log_name, pattern in expected:
        regex = re.compile(pattern)
        while at < len(entries):
            entry = entries[at]
            at += 1
            match = regex.fullmatch(text_of(entry))
            if match and (entry.get("severity"), entry["logName"]) == (severity, log_name):
                matches.append(match)
                break
        else:
            logged = "\n".join(f"{e.get('severity')} {text_of(e)}" for e in entries[-40:])
            pytest.fail(
                f"no {severity} line matching {pattern!r} (in order) in {startup.instance_id}:\n{logged}"
            )
    return matches


def assert_platform_lines_name_the_instance(startup: Startup) -> None:
    """Cloud Run's lines carry the instance's id (and the container's name), like its stdout lines."""
    system = [e for e in startup.entries if e["logName"] == LOG_SYSTEM]
    assert system and all(e["labels"]["instanceId"] == startup.instance_id for e in startup.entries)
    assert all(e["labels"]["container_name"] == CONTAINER_NAME for e in system)
    assert all(e["resource"]["labels"]["service_name"] == SERVICE_NAME for e in system)


def assert_crash_loop_behind_the_503_page(story: Story) -> None:
    handle = story.handle
    assert is_gateway_page(get(f"{handle.backend_url}/health"))
    assert is_gateway_page(get(f"{handle.backend_url}/api/threads"))
    auth = get(f"{handle.auth_url}/health")
    assert (auth.status_code, is_json(auth)) == (200, True)
    assert story.backend["restarts"] >= 1 and story.backend["serving_instances"] == 0, story.backend
    assert story.first.instance_id != story.after_fix.instance_id


def assert_no_app_outcome(startup: Startup) -> None:
    """Killed by the platform: the app never said how its startup ended."""
    assert not any(startup.has(phrase) for phrase in APP_OUTCOMES), startup.texts[-20:]


# --- the database answers at once, and refuses ----------------------------------------------------------


@pytest.fixture(scope="class")
def wrong_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    yield from watch(tmp_path_factory, "db-wrong-password")


class TestDbWrongPassword:
    def test_logs_the_refusal_then_the_generic_schema_error_then_exit_3(self, wrong_password: Story) -> None:
        for startup in (wrong_password.first, wrong_password.after_fix):
            lines_in_order(startup, WRONG_PASSWORD)
            assert_platform_lines_name_the_instance(startup)

    def test_refused_at_once_not_by_timeout(self, wrong_password: Story) -> None:
        """A tenth of a second at most, not the database timeout; no timeout line, no circuit suffix."""
        (error_line,) = [t for t in wrong_password.first.texts if "Database connection error after" in t]
        took = re.search(r"after (\d+\.\d+)s", error_line)
        assert took and float(took.group(1)) < 0.5, error_line
        assert not wrong_password.first.has("failed (timeout)") and not wrong_password.first.has("[TIMEOUT")

    def test_crash_loops_with_exit_3_behind_the_503_page(self, wrong_password: Story) -> None:
        assert_crash_loop_behind_the_503_page(wrong_password)
        assert set(wrong_password.backend["exit_codes"]) == {STARTUP_FAILURE_EXIT_CODE}


@pytest.fixture(scope="class")
def socket_missing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    yield from watch(tmp_path_factory, "db-socket-missing")


class TestDbSocketMissing:
    def test_logs_errno_2_then_the_generic_schema_error_then_exit_3(self, socket_missing: Story) -> None:
        for startup in (socket_missing.first, socket_missing.after_fix):
            lines_in_order(startup, SOCKET_MISSING)
            assert_platform_lines_name_the_instance(startup)

    def test_crash_loops_with_exit_3_behind_the_503_page(self, socket_missing: Story) -> None:
        assert_crash_loop_behind_the_503_page(socket_missing)
        assert set(socket_missing.backend["exit_codes"]) == {STARTUP_FAILURE_EXIT_CODE}


@pytest.fixture(scope="class")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    yield from watch(tmp_path_factory, "db-empty")


class TestDbEmpty:
    def test_logs_the_missing_tables_then_the_generic_schema_error_then_exit_3(
        self, empty_database: Story
    ) -> None:
        for startup in (empty_database.first, empty_database.after_fix):
            lines_in_order(startup, EMPTY_DATABASE)
            assert_platform_lines_name_the_instance(startup)
            assert not startup.has("Database connection error")  # it connected

    def test_crash_loops_with_exit_3_behind_the_503_page(self, empty_database: Story) -> None:
        assert_crash_loop_behind_the_503_page(empty_database)
        assert set(empty_database.backend["exit_codes"]) == {STARTUP_FAILURE_EXIT_CODE}


# --- the platform kills the instance ----------------------------------------------------------------


@pytest.fixture(scope="class")
def oom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    yield from watch(tmp_path_factory, "oom")


class TestOom:
    def test_killed_for_memory_in_the_services_phase(self, oom: Story) -> None:
        for startup in (oom.first, oom.after_fix):
            *_, exceeded, _killed = lines_in_order(startup, OOM)
            limit, used = (int(exceeded.group(1)), int(exceeded.group(2)))
            assert limit == 256 and used > limit, exceeded.group(0)
            assert not startup.has("PHASE TRANSITION  ->  WEBSOCKET")  # it died where it was loading
            assert_no_app_outcome(startup)
            assert_platform_lines_name_the_instance(startup)

    def test_crash_loops_killed_by_sigkill_behind_the_503_page(self, oom: Story) -> None:
        assert_crash_loop_behind_the_503_page(oom)
        assert set(oom.backend["exit_codes"]) == {-SIGKILL}


@pytest.fixture(scope="class")
def port_mismatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    yield from watch(tmp_path_factory, "port-mismatch")


class TestPortMismatch:
    def test_starts_listens_elsewhere_fails_the_probe_and_is_killed(self, port_mismatch: Story) -> None:
        port = port_mismatch.backend["instances"][0]["port"]  # PORT, where the platform probes
        for startup in (port_mismatch.first, port_mismatch.after_fix):
            _ok, _complete, running_on, *_ = lines_in_order(startup, PORT_MISMATCH)
            assert int(running_on.group(1)) != port  # it serves, elsewhere
            assert not startup.has("STARTUP TCP probe succeeded")
            assert_platform_lines_name_the_instance(startup)

    def test_crash_loops_killed_by_sigkill_behind_the_503_page(self, port_mismatch: Story) -> None:
        assert_crash_loop_behind_the_503_page(port_mismatch)
        assert set(port_mismatch.backend["exit_codes"]) == {-SIGKILL}


@pytest.fixture(scope="class")
def stuck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    yield from watch(tmp_path_factory, "stuck-after-database")


class TestStuckAfterDatabase:
    def test_database_completes_cache_never_ends_the_probe_fails_and_kills(self, stuck: Story) -> None:
        for startup in (stuck.first, stuck.after_fix):
            lines_in_order(startup, STUCK_AFTER_DATABASE)
            assert not startup.has("PHASE TRANSITION  ->  SERVICES")
            assert_no_app_outcome(startup)
            assert_platform_lines_name_the_instance(startup)

    def test_the_suite_records_the_database_phase_completed_and_cache_the_last(self, stuck: Story) -> None:
        """Failed where Cloud Run's startup probe found it (the app never said how it ended)."""
        entries = [
            e for e in stuck.handle.cloud_logging() if e["labels"]["instanceId"] == stuck.first.instance_id
        ]
        (record,) = parse_entries(entries, service=SERVICE_NAME)
        assert (record.outcome, record.failed_phase, record.last_phase, record.db_phase_source) == (
            "failed",
            "cache",
            "cache",
            "completed",
        )

    def test_crash_loops_killed_by_sigkill_behind_the_503_page(self, stuck: Story) -> None:
        assert_crash_loop_behind_the_503_page(stuck)
        assert set(stuck.backend["exit_codes"]) == {-SIGKILL}
