"""The backend's deterministic startup (SMD): seven ordered, timed phases, one error type on failure.

It mirrors netra_backend/app/smd.py closely enough that a hanging database fails the `database`
phase after `db_timeout_s` with `DeterministicStartupError`, which the lifespan turns into exit 3.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from contract.startup import PHASES, StartupPhase
from replica import agent, db, tokens
from replica.config import ServiceConfig


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
class Runtime:
    """What the phases build and the routes use."""

    config: ServiceConfig
    pool: asyncpg.Pool | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    connections: ConnectionRegistry | None = None
    services: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()  # never waits on a database that may hang
            self.pool = None


PhaseFn = Callable[[Runtime], Awaitable[None]]


async def _init(rt: Runtime) -> None:
    """Environment validation: a backend without a database URL or JWT secret cannot serve."""
    missing = [name for name in ("backend_database_url", "jwt_secret") if not getattr(rt.config, name)]
    if missing:
        raise ValueError(f"missing configuration: {', '.join(missing)}")


async def _dependencies(rt: Runtime) -> None:
    """Key manager check: the shared secret must round-trip a token."""
    probe = tokens.mint(rt.config.jwt_secret, sub="startup-probe", email="", permissions=[], ttl_s=60)
    tokens.verify(rt.config.jwt_secret, probe)


async def _database(rt: Runtime) -> None:
    async with asyncio.timeout(rt.config.db_timeout_s):
        rt.pool = await db.create_pool(rt.config.backend_database_url, rt.config.db_pool_max)
        await db.ensure_schema(rt.pool)


async def _cache(rt: Runtime) -> None:
    """The replica's Redis stand-in: an in-process dict, proven by a write and a read."""
    rt.cache["startup:probe"] = time.time()
    if "startup:probe" not in rt.cache:
        raise RuntimeError("cache write was lost")


async def _services(rt: Runtime) -> None:
    """Agent registry: the agents a chat message can be routed to."""
    rt.services["agents"] = {agent.AGENT_NAME: agent.run_agent}


async def _websocket(rt: Runtime) -> None:
    rt.connections = ConnectionRegistry()


async def _finalize(rt: Runtime) -> None:
    """Critical-path validation: the pool answers a query within the database timeout."""
    if rt.pool is None:
        raise RuntimeError("database pool missing after the database phase")
    async with asyncio.timeout(rt.config.db_timeout_s):
        await db.ping(rt.pool)


PHASE_FUNCTIONS: dict[StartupPhase, PhaseFn] = {
    StartupPhase.INIT: _init,
    StartupPhase.DEPENDENCIES: _dependencies,
    StartupPhase.DATABASE: _database,
    StartupPhase.CACHE: _cache,
    StartupPhase.SERVICES: _services,
    StartupPhase.WEBSOCKET: _websocket,
    StartupPhase.FINALIZE: _finalize,
}


async def run_startup(runtime: Runtime, state: StartupState) -> None:
    """Run every phase in order, recording progress on `state`; the first failure raises."""
    state.startup_in_progress = True
    state.startup_start_time = time.time()
    for phase in PHASES:
        await _run_phase(phase, runtime, state)
    state.startup_phase = "complete"
    state.startup_in_progress = False
    state.startup_complete = True


async def _run_phase(phase: StartupPhase, runtime: Runtime, state: StartupState) -> None:
    state.startup_phase = phase.value
    started = time.monotonic()
    try:
        await PHASE_FUNCTIONS[phase](runtime)
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
