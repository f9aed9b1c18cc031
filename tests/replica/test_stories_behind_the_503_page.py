"""Three stories behind the same 503 page: the front door's HTML answer is identical, the instances'
state and the backend's Cloud Logging entries tell them apart.

* issue-1278: startups time out in the DATABASE phase, exit 3, crash loop (infrastructure);
* bad-deploy: startups fail in the SERVICES phase with an ImportError, exit 3, crash loop, while the
  database is fine (the product's own deploy; an infrastructure fix does not clear it, a new deploy does);
* gateway-outage: every instance starts and serves, the front door answers the page anyway.

Everything over real sockets: the front doors (httpx, websockets), the instances' own ports, the
control API, `python -m replica logs`, and the record the suite's own parser
(harness/startup/records.py) makes of the entries: the evidence verify-fix and the diagnosis read.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from contract.startup import STARTUP_FAILURE_EXIT_CODE
from harness.startup.records import StartupRecord, parse_entries
from replica.cloud_logging import LOG_SYSTEM, SERVICE_NAME
from replica.handle import ReplicaHandle
from tests.replica.lifecycle import cli, poll_until, running
from tests.replica.test_cloud_logging import EXIT, Startup, startups, text_of
from tests.replica.test_cloud_logging import ISSUE_1278_TIMEOUT_S as TIMEOUT_S
from tests.replica.test_scenarios import get, is_gateway_page, is_healthy_backend, is_json, login
from tests.replica.test_ways_a_startup_dies import (
    DATABASE_PHASE_BEGINS,
    app,
    lines_in_order,
    literal,
    platform,
)

pytestmark = [pytest.mark.replica]

CRASH_LOOP_BOUND_S = 25.0  # two failed startups of one instance, each with its exit entry
SERVING_BOUND_S = 20.0
FAILED_STARTUPS = 2  # a crash loop: the first startup and at least one restart
BROKEN_NAME = "AgentRegistry"
BROKEN_MODULE = "netra_backend.app.agents.registry"
IMPORT_ERROR = f"cannot import name '{BROKEN_NAME}' from '{BROKEN_MODULE}'"
SERVICES_PHASE_FAILED = re.compile(
    rf"^ FAIL:  PHASE FAILED: SERVICES - {re.escape(IMPORT_ERROR)} \(after \d+\.\d\ds\)$"
)
DATABASE_PHASE_FAILED = re.compile(
    r"^ FAIL:  PHASE FAILED: DATABASE - .*\(after \d+\.\d\ds\) \[TIMEOUT - Circuit: OPEN\]$"
)
DATABASE_COMPLETED = re.compile(r"^ PASS=REDACTED COMPLETED: DATABASE \(\d+\.\d{3}s\)$")


# --- reading what the front door, the instances and the logs say ---------------------------------


@dataclass(frozen=True)
class Upgrade:
    """How the front door answered a WebSocket upgrade: the HTTP status it refused with, or accepted."""

    status: int | None
    content_type: str
    body: bytes


async def _upgrade(ws_url: str, token: str) -> Upgrade:
    try:
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}):
            return Upgrade(None, "", b"")
    except InvalidStatus as refused:
        response = refused.response
        return Upgrade(
            response.status_code, response.headers.get("Content-Type", ""), bytes(response.body or b"")
        )


def upgrade(handle: ReplicaHandle) -> Upgrade:
    return asyncio.run(_upgrade(handle.ws_url, login(handle)))


def is_gateway_refusal(refused: Upgrade) -> bool:
    return refused.status == 503 and refused.content_type.startswith("text/html") and b"503" in refused.body


def logged_entries(handle: ReplicaHandle) -> list[dict[str, Any]]:
    """The backend's Cloud Logging entries as `python -m replica logs` prints them."""
    return list(json.loads(cli(handle.run_dir, "logs").stdout))


def records(handle: ReplicaHandle) -> list[StartupRecord]:
    """The startups as the suite's own parser records them (what verify-fix and the diagnosis read)."""
    return parse_entries(logged_entries(handle), service=SERVICE_NAME)


def failed_with_exit(handle: ReplicaHandle) -> list[Startup] | None:
    """The failed startups once at least FAILED_STARTUPS of them have their platform exit entry."""
    failed = [s for s in startups(handle.cloud_logging()) if s.outcome == "failed" and s.exits]
    return failed if len(failed) >= FAILED_STARTUPS else None


def revision_of(entry: dict[str, Any]) -> str:
    return str(entry["resource"]["labels"]["revision_name"])


@dataclass(frozen=True)
class WatchedCrashLoop:
    handle: ReplicaHandle
    failed: list[Startup]  # failed startups, each ended by its exit entry
    backend: dict[str, Any]  # the backend's status then


def watch_crash_loop(handle: ReplicaHandle) -> WatchedCrashLoop:
    failed, elapsed = poll_until(lambda: failed_with_exit(handle), CRASH_LOOP_BOUND_S, interval_s=0.2)
    print(f"{handle.state['scenario']}: {len(failed or [])} failed startups logged after {elapsed:.1f}s")
    if not failed:
        pytest.fail(f"precondition: no crash loop in {CRASH_LOOP_BOUND_S}s: {handle.status()['summary']}")
    return WatchedCrashLoop(handle, failed, handle.status()["backend"])


def assert_ends_like_the_real_backend(startup: Startup) -> None:
    """The lines every failed startup ends with, whatever the phase, in order, then the platform's."""
    texts = startup.texts
    tail = [
        "Exiting with code 3 to signal startup failure",
        "Application startup failed. Exiting.",
        f"Container called exit({STARTUP_FAILURE_EXIT_CODE}).",
    ]
    positions = [next((i for i, t in enumerate(texts) if t == line), -1) for line in tail]
    assert -1 not in positions and positions == sorted(positions), (positions, texts[-12:])
    assert startup.entries[-1]["logName"] == LOG_SYSTEM and EXIT.match(texts[-1])


# --- bad-deploy -------------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def bad_deploy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WatchedCrashLoop]:
    with running(tmp_path_factory.mktemp("bad-deploy"), "bad-deploy", backoff_max_s=2.0) as handle:
        yield watch_crash_loop(handle)


class TestBadDeploy:
    def test_front_door_answers_its_503_page(self, bad_deploy: WatchedCrashLoop) -> None:
        assert is_gateway_page(get(f"{bad_deploy.handle.backend_url}/health"))

    def test_front_door_refuses_the_chat_upgrade_with_its_503_page(
        self, bad_deploy: WatchedCrashLoop
    ) -> None:
        refused = upgrade(bad_deploy.handle)
        assert is_gateway_refusal(refused), refused

    def test_auth_stays_healthy(self, bad_deploy: WatchedCrashLoop) -> None:
        response = get(f"{bad_deploy.handle.auth_url}/health")
        assert (response.status_code, is_json(response)) == (200, True)

    def test_the_backend_crash_loops_with_exit_code_3(self, bad_deploy: WatchedCrashLoop) -> None:
        backend = bad_deploy.backend
        assert STARTUP_FAILURE_EXIT_CODE in backend["exit_codes"] and backend["restarts"] >= 1, backend
        assert backend["serving_instances"] == 0
        assert "crash-looping (last exit 3" in bad_deploy.handle.status()["summary"]

    def test_each_startup_fails_in_the_services_phase_with_the_import_error(
        self, bad_deploy: WatchedCrashLoop
    ) -> None:
        for startup in bad_deploy.failed:
            texts = startup.texts
            phase_failed = [
                t for t in texts if "PHASE FAILED" in t
            ]  # the phase's handler, then the orchestrator's
            assert len(phase_failed) == 2 and all(SERVICES_PHASE_FAILED.match(t) for t in phase_failed), (
                texts[-30:]
            )
            assert " FAIL:  Failed at Phase: SERVICES" in texts
            assert f" FAIL:  Error: ImportError: {IMPORT_ERROR}" in texts
            assert " FAIL:  Failed Phases: ['services']" in texts
            assert_ends_like_the_real_backend(startup)

    def test_the_database_phase_completed_in_every_failed_startup(self, bad_deploy: WatchedCrashLoop) -> None:
        """The database is fine: each startup got past it before failing."""
        for startup in bad_deploy.failed:
            assert sum(bool(DATABASE_COMPLETED.match(t)) for t in startup.texts) == 1, startup.texts
            assert not any("PHASE FAILED: DATABASE" in t for t in startup.texts)

    def test_the_suite_records_services_exit_3_and_the_revision(self, bad_deploy: WatchedCrashLoop) -> None:
        failed = [r for r in records(bad_deploy.handle) if r.outcome == "failed" and r.exit_code is not None]
        assert len(failed) >= FAILED_STARTUPS, records(bad_deploy.handle)
        revision = bad_deploy.handle.state["revision"]
        for record in failed:
            assert (record.failed_phase, record.exit_code, record.revision) == ("services", 3, revision)
            assert record.db_phase_s is not None and record.db_phase_source == "completed"


def test_an_infrastructure_fix_leaves_a_bad_deploy_broken_and_a_new_deploy_fixes_it(tmp_path: Path) -> None:
    """`fix` clears the infrastructure's faults, which were never the problem: the next startup still
    fails in SERVICES. A deploy of a build that imports fine (`rollout --set broken_import=`) serves,
    from a new revision whose startups succeed."""
    with running(tmp_path, "bad-deploy", backoff_max_s=1.0) as handle:
        watch_crash_loop(handle)
        fixed_at = datetime.now(UTC)
        cli(tmp_path, "fix")

        def failed_after_the_fix() -> list[Startup] | None:
            found = startups(handle.cloud_logging(since=fixed_at))
            failed = [s for s in found if s.initiated_at and s.outcome == "failed" and s.exits]
            return failed or None

        failed, _ = poll_until(failed_after_the_fix, CRASH_LOOP_BOUND_S)
        assert failed and failed[0].has(f" FAIL:  Error: ImportError: {IMPORT_ERROR}"), (
            "no failed startup after the fix"
        )
        assert is_gateway_page(get(f"{handle.backend_url}/health"))

        deployed = cli(tmp_path, "rollout", "--set", "broken_import=")
        assert "done" in deployed.stdout, deployed.stdout
        status = handle.status()
        revision = status["revision"]
        assert revision != handle.state["revision"] and status["backend"]["serving_instances"] == 1
        assert is_healthy_backend(get(f"{handle.backend_url}/health"))
        new = [r for r in records(handle) if r.revision == revision]
        assert [r.outcome for r in new] == ["ok"], new


# --- gateway-outage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outage:
    handle: ReplicaHandle
    up_s: float  # how long `python -m replica up` took to return
    entries: list[dict[str, Any]]  # once every instance's startup is in the logs


@pytest.fixture(scope="class")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """`python -m replica up --scenario gateway-outage`, timed: it must return though the backend never
    answers healthy through its front door."""
    run_dir = tmp_path_factory.mktemp("gateway-outage")
    began = time.monotonic()
    cli(run_dir, "up", "--scenario", "gateway-outage")
    up_s = time.monotonic() - began
    handle = ReplicaHandle.attach(run_dir)
    try:

        def all_started() -> list[dict[str, Any]] | None:
            """Both startups ok in the record, and both instances taken into the front door's pool (a
            moment later: their probe and /health first)."""
            entries = handle.cloud_logging()
            found = startups(entries)
            started = len(found) == 2 and all(s.outcome == "ok" for s in found)
            return entries if started and handle.status()["backend"]["serving_instances"] == 2 else None

        entries, _ = poll_until(all_started, SERVING_BOUND_S)
        yield Outage(handle, up_s, entries or handle.cloud_logging())
    finally:
        handle.stop()


class TestGatewayOutage:
    def test_up_returns_though_the_front_door_never_answers_healthy(self, outage: Outage) -> None:
        print(f"gateway-outage: up returned after {outage.up_s:.1f}s")
        assert outage.up_s < SERVING_BOUND_S

    def test_every_backend_request_gets_the_503_page(self, outage: Outage) -> None:
        base = outage.handle.backend_url
        for path in ("/health", "/health/ready", "/api/threads"):
            assert is_gateway_page(get(base + path)), path
        assert is_gateway_page(httpx.post(f"{base}/api/threads", json={}, timeout=5))

    def test_every_chat_upgrade_gets_the_503_page(self, outage: Outage) -> None:
        refused = upgrade(outage.handle)
        assert is_gateway_refusal(refused), refused

    def test_every_instance_serves_on_its_own_port(self, outage: Outage) -> None:
        backend = outage.handle.status()["backend"]
        ports = [i["port"] for i in backend["instances"]]
        assert backend["serving_instances"] == len(ports) == 2
        for port in ports:
            assert is_healthy_backend(get(f"http://127.0.0.1:{port}/health")), port

    def test_auth_stays_healthy(self, outage: Outage) -> None:
        response = get(f"{outage.handle.auth_url}/health")
        assert (response.status_code, is_json(response)) == (200, True)

    def test_status_says_the_front_door_is_out_while_the_instances_serve(self, outage: Outage) -> None:
        status = outage.handle.status()
        assert status["faults"]["gateway_outage"] is True
        assert status["summary"].startswith("2/2 backend instances serving; front door OUTAGE"), status[
            "summary"
        ]
        assert status["doors"]["backend"]["gateway_errors"] >= 1

    def test_the_logs_show_every_startup_succeeding_and_no_exit(self, outage: Outage) -> None:
        found = startups(outage.entries)
        assert [s.outcome for s in found] == ["ok", "ok"]
        assert not any(EXIT.match(text_of(e)) for e in outage.entries)
        assert {revision_of(e) for e in outage.entries} == {outage.handle.state["revision"]}

    def test_the_suite_records_two_good_startups(self, outage: Outage) -> None:
        found = parse_entries(outage.entries, service=SERVICE_NAME)
        assert [(r.outcome, r.failed_phase, r.exit_code) for r in found] == [("ok", None, None)] * 2
        assert all(r.revision == outage.handle.state["revision"] for r in found)


def test_fix_ends_a_gateway_outage(tmp_path: Path) -> None:
    with running(tmp_path, "gateway-outage") as handle:
        assert is_gateway_page(get(f"{handle.backend_url}/health"))
        cli(tmp_path, "fix")
        assert is_healthy_backend(get(f"{handle.backend_url}/health"))
        assert handle.status()["summary"] == "2/2 backend instances serving"


# --- issue-1278: the record that confirms it -------------------------------------------------------


@pytest.fixture(scope="class")
def issue_1278(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WatchedCrashLoop]:
    with running(tmp_path_factory.mktemp("issue-1278-record"), "issue-1278", backoff_max_s=2.0) as handle:
        yield watch_crash_loop(handle)


class TestIssue1278Record:
    def test_each_startup_fails_in_the_database_phase_by_timeout(self, issue_1278: WatchedCrashLoop) -> None:
        for startup in issue_1278.failed:
            texts = startup.texts
            assert sum(bool(DATABASE_PHASE_FAILED.match(t)) for t in texts) == 2, texts[-30:]
            assert " FAIL:  Failed at Phase: DATABASE" in texts
            assert " FAIL:  Failed Phases: ['database']" in texts
            assert_ends_like_the_real_backend(startup)

    def test_the_database_phase_logs_the_timeout_like_the_real_1278_run(
        self, issue_1278: WatchedCrashLoop
    ) -> None:
        """The real run's lines, in order: the attempt, `❌ ... timeout after <x>s`, the attempt's failure,
        then the phase's; x and the phase's duration are the scenario's timeout, measured."""
        expected = [
            *DATABASE_PHASE_BEGINS,
            app("ERROR", r"❌ Database connection timeout after (\d+\.\d{3})s \(attempt 1/3\)"),
            app("WARNING", literal("Database initialization attempt 1 failed (timeout):")),
            app("ERROR", DATABASE_PHASE_FAILED.pattern),
            app("CRITICAL", literal(" FAIL:  Failed at Phase: DATABASE")),
            app("CRITICAL", literal("Exiting with code 3 to signal startup failure")),
            platform("WARNING", literal(f"Container called exit({STARTUP_FAILURE_EXIT_CODE}).")),
        ]
        for startup in issue_1278.failed:
            matches = lines_in_order(startup, expected)
            waited = float(matches[len(DATABASE_PHASE_BEGINS)].group(1))
            assert TIMEOUT_S - 0.1 <= waited < TIMEOUT_S + 1.0, matches[len(DATABASE_PHASE_BEGINS)].group(0)

    def test_the_suite_records_database_exit_3_and_the_revision(self, issue_1278: WatchedCrashLoop) -> None:
        failed = [r for r in records(issue_1278.handle) if r.outcome == "failed" and r.exit_code is not None]
        assert len(failed) >= FAILED_STARTUPS, records(issue_1278.handle)
        for record in failed:
            assert (record.failed_phase, record.exit_code, record.revision) == (
                "database",
                3,
                issue_1278.handle.state["revision"],
            )
            assert (
                record.db_phase_s is not None and record.db_phase_s >= TIMEOUT_S - 0.1
            )  # the timeout, measured
