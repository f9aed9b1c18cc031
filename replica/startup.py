"""The backend's deterministic startup (SMD): seven ordered, timed phases, one error type on failure.

It mirrors netra_backend/app/smd.py closely enough that a hanging database fails the `database`
phase after `db_timeout_s` with `DeterministicStartupError`, which the lifespan turns into exit 3.

It also logs what the real orchestrator logs, in its words (logger `netra_backend.app.smd`, JSON on
stdout; see replica/cloud_logging.py and docs/startup-record.md): the phase transitions, each phase's
measured duration when the next one starts, the success breakdown or the failure's partial timings,
and the noise a parser must survive (banners, unrelated `Total ...:` lines, ERROR lines in a startup
that succeeds). The success lines are written as the source writes them (` PASS:  PHASE COMPLETED:
...`); the JSON formatter's redactor mangles them on the way out, as the real one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from contract.startup import PHASES, StartupPhase
from replica import agent, db, tokens
from replica.config import ServiceConfig

smd = logging.getLogger("netra_backend.app.smd")
# The real build's schema validation logs the connectivity check's failure under its own logger.
schema_log = logging.getLogger("netra_backend.app.services.schema_validation_service")

BANNER = "=" * 80
DB_ATTEMPTS = 5  # what the real phase announces; the replica spends its whole budget on the first
DB_CONNECT_ATTEMPTS = 3  # the connection attempts within one, as the real build numbers them
SCHEMA_INCONSISTENT = "Database schema validation failed - schema inconsistent"
PRELOAD_CHUNK_MIB = 8  # the SERVICES phase's preload grows by this much at a time
PRELOAD_PAUSE_S = 0.02  # between chunks: the memory grows as a load does, not in one jump
# Connections the database phase holds at once (schema setup, and a capacity check beside it): why
# backends starting together exhaust a small PostgreSQL (scenario startup-storm).
STARTUP_DB_CONNECTIONS = 2
PHASE_TITLES: dict[StartupPhase, str] = {
    StartupPhase.INIT: "PHASE 1: INIT - Foundation",
    StartupPhase.DEPENDENCIES: "PHASE 2: DEPENDENCIES - Core Services",
    StartupPhase.DATABASE: "PHASE 3: DATABASE - Database Setup with VPC Connector Capacity Awareness",
    StartupPhase.CACHE: "PHASE 4: CACHE - Redis Setup",
    StartupPhase.SERVICES: "PHASE 5: SERVICES - Chat Pipeline & Critical Services",
    StartupPhase.WEBSOCKET: "PHASE 6: WEBSOCKET - WebSocket Integration",
    StartupPhase.FINALIZE: "PHASE 7: FINALIZE - Validation & Optional Services",
}


class DeterministicStartupError(Exception):
    """A phase failed: startup must stop and the process exit with code 3."""

    def __init__(self, phase: str, error_type: str, message: str, duration: float, is_timeout: bool) -> None:
        super().__init__(f"startup phase {phase!r} failed after {duration:.2f}s: {error_type}: {message}")
        self.phase = phase
        self.error_type = error_type
        self.message = message
        self.duration = duration
        self.is_timeout = is_timeout


@dataclass
class StartupState:
    """The fields the real backend keeps on `app.state`, which its rich /health reads."""

    startup_complete: bool = False
    startup_in_progress: bool = False
    startup_failed: bool = False
    startup_error: str | None = None
    startup_phase: str | None = None
    startup_start_time: float | None = None
    startup_phase_timings: dict[str, float] = field(default_factory=dict)
    startup_completed_phases: list[str] = field(default_factory=list)
    startup_failed_phases: list[str] = field(default_factory=list)
    startup_phase_errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return sum(self.startup_phase_timings.values()) if self.startup_phase_timings else None


class ConnectionRegistry:
    """Open WebSocket connections by id (what the real WebSocket manager tracks)."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}

    def add(self, connection_id: str, user_id: str) -> None:
        self._users[connection_id] = user_id

    def remove(self, connection_id: str) -> None:
        self._users.pop(connection_id, None)

    def __len__(self) -> int:
        return len(self._users)


@dataclass
class BackendResources:
    """What the startup phases build (pool, cache, connection registry, agents) and the routes use."""

    config: ServiceConfig
    pool: asyncpg.Pool | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    connections: ConnectionRegistry | None = None
    services: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()  # never waits on a database that may hang
            self.pool = None


PhaseFn = Callable[[BackendResources], Awaitable[None]]


async def _init(rt: BackendResources) -> None:
    """Environment validation: a backend without a database URL or JWT secret cannot serve."""
    smd.info("  [U+2713] Step 1: Logging initialized")
    missing = [name for name in ("backend_database_url", "jwt_secret") if not getattr(rt.config, name)]
    if missing:
        raise ValueError(f"missing configuration: {', '.join(missing)}")
    smd.info("  [U+2713] Step 2: Environment validated")


async def _dependencies(rt: BackendResources) -> None:
    """Key manager check: the shared secret must round-trip a token."""
    probe = tokens.mint(rt.config.jwt_secret, sub="startup-probe", email="", permissions=[], ttl_s=60)
    tokens.verify(rt.config.jwt_secret, probe)
    smd.info("  [U+2713] Step 5: Key manager initialized")
    # The real startup fixes log a banner and unrelated totals between the phases.
    for line in (BANNER, "STARTUP FIXES APPLIED", "Total Fixes: 5/5", "Total duration: 0.00s", BANNER):
        smd.info(line)
    smd.info("  [U+2713] Step 7: Startup fixes applied")


async def _database(rt: BackendResources) -> None:
    """Connect through the VPC connector's place, within `db_timeout_s`, holding two connections; then
    the schema: created (the replica's stand-in for the migration service) or checked, as configured.

    It fails the way the real build's phase fails (measured on aebb16f with staging settings), in its
    words, the line that says why before the generic phase error:

    * a database path that hangs (#1278): `❌ Database connection timeout after <x>s (attempt 1/3)`,
      `Database initialization attempt 1 failed (timeout):`, then the phase fails by timeout;
    * a database that refuses at once (a wrong password, no Cloud SQL socket, too many clients):
      `❌ Database connection error after <x>s (attempt 1/3): <error>`, `Database connectivity check
      failed: <error>`, then the phase fails with `Database schema validation failed - schema
      inconsistent`, the real build's generic words. `<error>` is what asyncpg raised, verbatim; the
      JSON formatter's redactor then mangles it as the real one does (PostgreSQL's `password
      authentication failed for user "netra_staging"` reaches the log as `password=REDACTED failed ...`);
    * a database without the backend's tables (`db_schema="expect"`): `Failed to verify database tables
      exist: Missing critical database tables: {...}. ...`, then the same generic phase error.
    """
    timeout = rt.config.db_timeout_s
    smd.info(
        "Initializing database for staging with capacity-aware timeouts: init=%.1fs, tables=%.1fs",
        timeout,
        timeout,
    )
    smd.info(
        "Database initialization attempt 1/%d with timeout %.1fs (circuit: CLOSED)", DB_ATTEMPTS, timeout
    )
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            rt.pool = await _connect(rt, started)
            await _hold_connections(rt.pool, min(STARTUP_DB_CONNECTIONS, rt.config.db_pool_max))
            if rt.config.db_schema == "create":
                await db.ensure_schema(rt.pool)
            else:
                await _expect_tables(rt.pool)
    except TimeoutError:
        smd.error(
            "❌ Database connection timeout after %.3fs (attempt 1/%d)",
            time.monotonic() - started,
            DB_CONNECT_ATTEMPTS,
        )
        smd.warning("Database initialization attempt 1 failed (timeout):")
        raise
    except RuntimeError:
        raise  # schema validation failed (see _connect, _expect_tables): its lines are logged
    except Exception as exc:
        smd.warning(
            "Database initialization attempt 1/%d failed: %s: %s", DB_ATTEMPTS, type(exc).__name__, exc
        )
        raise
    # The real build's health check trips over its own code on every startup (it is not fatal).
    smd.error("Database health check FAILED: TypeError: object bool can't be used in 'await' expression")
    smd.info("  [U+2713] Step 8: Database connected")


async def _connect(rt: BackendResources, started: float) -> asyncpg.Pool:
    """The pool's first connection; a refusal (OSError, PostgreSQL's own error) fails schema validation."""
    try:
        return await db.create_pool(rt.config.backend_database_url, rt.config.db_pool_max)
    except TimeoutError:
        raise  # a hang, not a refusal (an OSError too)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        took = time.monotonic() - started
        smd.error(
            "❌ Database connection error after %.3fs (attempt 1/%d): %s", took, DB_CONNECT_ATTEMPTS, exc
        )
        schema_log.error("Database connectivity check failed: %s", exc)
        raise RuntimeError(SCHEMA_INCONSISTENT) from exc


async def _expect_tables(pool: asyncpg.Pool) -> None:
    """The real backend's check that the migration service ran: its critical tables must exist."""
    missing = await db.missing_tables(pool, db.CRITICAL_TABLES)
    if missing:
        listed = "{" + ", ".join(repr(name) for name in missing) + "}"
        smd.warning(
            "Failed to verify database tables exist: Missing critical database tables: %s. Run migration "
            "service first. - continuing with potential database issues",
            listed,
        )
        raise RuntimeError(SCHEMA_INCONSISTENT)


async def _hold_connections(pool: asyncpg.Pool, count: int) -> None:
    """Acquire `count` pooled connections at once and prove each answers (they stay in the pool)."""
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(count):
            conn = await stack.enter_async_context(pool.acquire())
            await db.ping(conn)


async def _cache(rt: BackendResources) -> None:
    """The replica's Redis stand-in: an in-process dict, proven by a write and a read."""
    rt.cache["startup:probe"] = time.time()
    if "startup:probe" not in rt.cache:
        raise RuntimeError("cache write was lost")
    smd.info("  [U+2713] Step 9: Redis connected")


async def _services(rt: BackendResources) -> None:
    """Agent registry: the agents a chat message can be routed to. A bad deploy (`broken_import`)
    fails here, as a build whose agent registry lost a name does: with the ImportError Python raises."""
    if rt.config.broken_import:
        module, _, name = rt.config.broken_import.partition(":")
        raise ImportError(f"cannot import name {name!r} from {module!r}", name=module)
    if rt.config.preload_mib:
        await _preload(rt, rt.config.preload_mib)
    rt.services["agents"] = {agent.AGENT_NAME: agent.run_agent}
    smd.info("Total Services: 5")
    smd.info("  [U+2713] Step 12: Agent supervisor created with bridge")


async def _preload(rt: BackendResources, mib: int) -> None:
    """Load `mib` MiB and keep it (a model, a big index), written so that it is resident memory: what a
    memory limit under it kills (scenario oom)."""
    loaded: list[bytearray] = rt.services.setdefault("preloaded", [])
    for _ in range(-(-mib // PRELOAD_CHUNK_MIB)):
        loaded.append(bytearray(b"\x01") * (PRELOAD_CHUNK_MIB << 20))
        await asyncio.sleep(PRELOAD_PAUSE_S)


async def _websocket(rt: BackendResources) -> None:
    rt.connections = ConnectionRegistry()
    smd.info("  [U+2713] Step 16: WebSocket manager initialized")


async def _finalize(rt: BackendResources) -> None:
    """Critical-path validation: the pool answers a query within the database timeout."""
    if rt.pool is None:
        raise RuntimeError("database pool missing after the database phase")
    async with asyncio.timeout(rt.config.db_timeout_s):
        await db.ping(rt.pool)
    smd.error("Configuration validation failed: 1 critical issue (bypassed: BYPASS_STARTUP_VALIDATION=true)")
    smd.info("  [U+2713] Step 24: Critical path validation completed")


PHASE_FUNCTIONS: dict[StartupPhase, PhaseFn] = {
    StartupPhase.INIT: _init,
    StartupPhase.DEPENDENCIES: _dependencies,
    StartupPhase.DATABASE: _database,
    StartupPhase.CACHE: _cache,
    StartupPhase.SERVICES: _services,
    StartupPhase.WEBSOCKET: _websocket,
    StartupPhase.FINALIZE: _finalize,
}


async def run_startup(resources: BackendResources, state: StartupState) -> None:
    """Run every phase in order, recording progress on `state`; the first failure raises."""
    state.startup_in_progress = True
    state.startup_start_time = time.time()
    for line in (BANNER, "DETERMINISTIC STARTUP SEQUENCE INITIATED", BANNER):
        smd.info(line)
    try:
        for phase in PHASES:
            _log_transition(phase, state)
            await _run_phase(phase, resources, state)
    except DeterministicStartupError as error:
        _log_failure(error, state)
        raise
    _log_completed(PHASES[-1], state)
    state.startup_phase = "complete"
    state.startup_in_progress = False
    state.startup_complete = True
    _log_success(state)


def _log_completed(phase: StartupPhase, state: StartupState) -> None:
    duration = state.startup_phase_timings[phase.value]
    smd.info(" PASS:  PHASE COMPLETED: %s (%.3fs)", phase.value.upper(), duration)


def _log_transition(phase: StartupPhase, state: StartupState) -> None:
    """The previous phase's completion is logged when the next one starts, as in the real build."""
    if state.startup_completed_phases:
        _log_completed(StartupPhase(state.startup_completed_phases[-1]), state)
    smd.info(" CYCLE:  PHASE TRANSITION  ->  %s", phase.value.upper())
    smd.info("   Started at: %.3fs elapsed", time.time())
    smd.info(PHASE_TITLES[phase])


def _elapsed(state: StartupState) -> float:
    return time.time() - (state.startup_start_time or time.time())


def _log_success(state: StartupState) -> None:
    elapsed = _elapsed(state)
    for line in (BANNER, "[U+1F680] DETERMINISTIC STARTUP SEQUENCE COMPLETED SUCCESSFULLY", BANNER):
        smd.info(line)
    smd.info(" PASS:  Total Time: %.3fs", elapsed)
    smd.info(" PASS:  Phases Completed: %d/%d", len(state.startup_completed_phases), len(PHASES))
    smd.info(" CHART:  PHASE TIMING BREAKDOWN:")
    for phase in PHASES:
        duration = state.startup_phase_timings[phase.value]
        share = 100 * duration / elapsed if elapsed > 0 else 0.0
        smd.info("   %-12s: %.3fs (%.1f%%)", phase.value.upper(), duration, share)
    smd.info(" TARGET:  CRITICAL SYSTEMS STATUS:")
    smd.info("   Database:      PASS:  Connected & Validated")
    smd.info("   Chat Pipeline: PASS:  Operational & WebSocket-Enabled")
    for line in (BANNER, "[U+1F7E2] CHAT FUNCTIONALITY: FULLY OPERATIONAL", BANNER):
        smd.info(line)


def _phase_failed_line(error: DeterministicStartupError, raw_error: str) -> str:
    line = f" FAIL:  PHASE FAILED: {error.phase.upper()} - {raw_error} (after {error.duration:.2f}s)"
    return line + " [TIMEOUT - Circuit: OPEN]" if error.is_timeout else line


def _log_failure(error: DeterministicStartupError, state: StartupState) -> None:
    """What the real orchestrator logs when a phase fails: the phase (twice), then the summary."""
    raw = str(error.__cause__) if error.__cause__ is not None else error.message
    for _ in range(2):  # the phase's own handler, then the orchestrator's
        smd.error(_phase_failed_line(error, raw))
    for line in (BANNER, "[U+1F4A5] DETERMINISTIC STARTUP SEQUENCE FAILED", BANNER):
        smd.critical(line)
    smd.critical(" FAIL:  Failed at Phase: %s", error.phase.upper())
    smd.critical(" FAIL:  Time Elapsed: %.3fs", _elapsed(state))
    smd.critical(" FAIL:  Error: %s: %s", error.error_type, raw)
    completed = state.startup_completed_phases
    smd.critical(f" PASS:  Completed Phases: {completed}" if completed else " FAIL:  No phases completed")
    smd.critical(" FAIL:  Failed Phases: %s", state.startup_failed_phases)
    smd.critical(" CHART:  PARTIAL PHASE TIMINGS:")
    for name, duration in state.startup_phase_timings.items():
        status = " PASS: " if name in completed else " FAIL: "
        smd.critical("   %s %-12s: %.3fs", status, name.upper(), duration)
    smd.critical(BANNER)
    smd.critical("[U+1F534] CRITICAL: CHAT FUNCTIONALITY IS BROKEN")
    smd.critical("[U+1F534] SERVICE CANNOT START - DETERMINISTIC FAILURE")
    smd.critical(BANNER)


async def _run_phase(phase: StartupPhase, resources: BackendResources, state: StartupState) -> None:
    state.startup_phase = phase.value
    started = time.monotonic()
    try:
        if resources.config.hang_phase == phase.value:
            await asyncio.Event().wait()  # its dependency never answers, and nothing times it out
        await PHASE_FUNCTIONS[phase](resources)
    except Exception as exc:
        duration = time.monotonic() - started
        state.startup_phase_timings[phase.value] = duration
        raise _fail(phase, exc, duration, state) from exc
    state.startup_phase_timings[phase.value] = time.monotonic() - started
    state.startup_completed_phases.append(phase.value)


def _fail(
    phase: StartupPhase, exc: Exception, duration: float, state: StartupState
) -> DeterministicStartupError:
    is_timeout = isinstance(exc, TimeoutError)
    message = f"timed out after {duration:.2f}s" if is_timeout and not str(exc) else str(exc)
    error = DeterministicStartupError(phase.value, type(exc).__name__, message, duration, is_timeout)
    state.startup_in_progress = False
    state.startup_failed = True
    state.startup_error = str(error)
    state.startup_failed_phases.append(phase.value)
    state.startup_phase_errors[phase.value] = {
        "error_type": error.error_type,
        "error_message": message,
        "duration": duration,
        "is_timeout_error": is_timeout,
    }
    return error
