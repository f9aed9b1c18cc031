"""The backend (netra-ai-platform): rich health endpoints, threads REST and the `/ws` chat golden path.

Startup runs the deterministic orchestrator in the ASGI lifespan. `blocking` mode serves nothing
until it ends (uvicorn's real behaviour); `early` mode serves the rich /health 503 bodies meanwhile.
Either way a failed phase ends the process with exit code 3, as netra_backend's lifespan does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, WebSocket
from fastapi.responses import JSONResponse

from contract.events import ClientType, CloseCode, ServerType
from contract.frames import ConnectionEstablished, ConnectionEstablishedData, iso_now
from contract.identity import BACKEND_SERVICE, BARE_SUBPROTOCOLS, TOKEN_SUBPROTOCOL_PREFIXES
from contract.rest import MessagesPage, StartupHealth, Thread, ThreadCreate
from contract.startup import PHASES, STARTUP_FAILURE_EXIT_CODE
from replica import db, tokens
from replica.agent import AgentRun, run_agent
from replica.config import ServiceConfig
from replica.startup import DeterministicStartupError, Runtime, StartupState, run_startup

log = logging.getLogger("replica.backend")

VERSION = "1.0.0"
ENVIRONMENT = "replica"
THREAD_TITLE_CHARS = 60


def _log_startup_failure(error: DeterministicStartupError) -> None:
    """The one CRITICAL line operators grep for: phase, error type, duration."""
    log.critical(
        "DeterministicStartupError: phase=%s error_type=%s duration=%.2fs is_timeout=%s message=%s",
        error.phase,
        error.error_type,
        error.duration,
        error.is_timeout,
        error.message,
    )


def _exit_for_startup_failure() -> None:
    """Leave at once with exit code 3 (os._exit: no shutdown hook may wait on the dead database)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(STARTUP_FAILURE_EXIT_CODE)


class Backend:
    """The backend's state: startup progress and what the phases built."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.state = StartupState()
        self.runtime = Runtime(config)
        self._startup_task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.state.startup_complete and self.runtime.pool is not None

    @property
    def pool(self) -> asyncpg.Pool:
        if not self.ready or self.runtime.pool is None:
            raise HTTPException(503, "Service not ready")
        return self.runtime.pool

    async def start_blocking(self) -> None:
        try:
            await run_startup(self.runtime, self.state)
        except DeterministicStartupError as error:
            _log_startup_failure(error)
            _exit_for_startup_failure()

    def start_early(self) -> None:
        self._startup_task = asyncio.create_task(self._startup_then_grace())

    async def _startup_then_grace(self) -> None:
        """Early mode: on failure keep serving the failed /health body for a grace period, then exit 3."""
        try:
            await run_startup(self.runtime, self.state)
        except DeterministicStartupError as error:
            _log_startup_failure(error)
            log.info("serving the failed /health for %.1fs before exiting", self.config.early_fail_grace_s)
            await asyncio.sleep(self.config.early_fail_grace_s)
            _exit_for_startup_failure()

    async def stop(self) -> None:
        if self._startup_task is not None:
            self._startup_task.cancel()
        await self.runtime.close()

    async def db_error(self) -> str | None:
        """None if a pooled connection answers `SELECT 1` within health_db_timeout_s, else the error type."""
        if not self.ready or self.runtime.pool is None:
            return "StartupIncomplete"
        try:
            async with asyncio.timeout(self.config.health_db_timeout_s), self.runtime.pool.acquire() as conn:
                await db.ping(conn)
        except Exception as exc:  # acquire timeout, too many connections, connection reset: all "unavailable"
            log.warning("database health check failed: %s", type(exc).__name__)
            return type(exc).__name__
        return None

    def pool_status(self) -> dict[str, int]:
        pool = self.runtime.pool
        if pool is None:
            return {}
        return {
            "size": pool.get_size(),
            "idle": pool.get_idle_size(),
            "min_size": pool.get_min_size(),
            "max_size": pool.get_max_size(),
        }

    def startup_refusal(self) -> JSONResponse | None:
        """The rich /health 503 for a startup that is running, failed or never began; None when ready."""
        state = self.state
        if state.startup_failed:
            phase = state.startup_failed_phases[-1] if state.startup_failed_phases else state.startup_phase
            errors = state.startup_phase_errors.get(phase or "", {})
            body = StartupHealth(
                message=f"Startup failed: {state.startup_error}",
                startup_failed=True,
                details={"phase": phase, **errors},
            )
        elif state.startup_in_progress:
            progress = round(100 * len(state.startup_completed_phases) / len(PHASES))
            body = StartupHealth(
                message="Startup in progress",
                startup_in_progress=True,
                details={"phase": state.startup_phase, "progress": progress},
            )
        elif not self.ready:
            body = StartupHealth(message="Startup not complete", startup_complete=False)
        else:
            return None
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)

    def startup_summary(self) -> dict[str, Any]:
        return {
            "phase_timings": dict(self.state.startup_phase_timings),
            "completed_phases": list(self.state.startup_completed_phases),
            "duration_s": self.state.duration_s,
        }


def _add_health_routes(app: FastAPI, backend: Backend) -> None:
    async def health() -> JSONResponse:
        refusal = backend.startup_refusal()
        if refusal is not None:
            return refusal
        body = {
            "status": "healthy",
            "service": BACKEND_SERVICE,
            "version": VERSION,
            "timestamp": time.time(),
            "startup": backend.startup_summary(),
        }
        return JSONResponse(body)

    async def ready() -> JSONResponse:
        refusal = backend.startup_refusal()
        if refusal is not None:
            return refusal
        error = await backend.db_error()
        base = {"service": BACKEND_SERVICE, "timestamp": time.time(), "environment": ENVIRONMENT}
        if error is not None:
            body = base | {"status": "unhealthy", "message": "Database check failed", "core_db": "failed"}
            return JSONResponse(body | {"error_type": error}, status_code=503)
        components = {"clickhouse_db": "skipped_optional", "redis_db": "disabled_optional"}
        websocket = {"accepting_connections": True, "open_connections": _open_connections(backend)}
        return JSONResponse(
            base | {"status": "ready", "core_db": "connected", **components, "websocket_readiness": websocket}
        )

    async def live() -> JSONResponse:
        body = {"status": "healthy", "service": BACKEND_SERVICE, "version": VERSION, "timestamp": iso_now()}
        return JSONResponse(body | {"environment": ENVIRONMENT})

    async def database() -> JSONResponse:
        error = await backend.db_error()
        if error is not None:
            body = {
                "detail": "Database unavailable",
                "status": "unhealthy",
                "connected": False,
                "error_type": error,
            }
            return JSONResponse(body, status_code=503)
        body = {
            "status": "healthy",
            "connected": True,
            "pool_status": backend.pool_status(),
            "timestamp": iso_now(),
        }
        return JSONResponse(body)

    async def ws_health() -> JSONResponse:
        accepting = backend.ready
        body = {
            "status": "healthy" if accepting else "unhealthy",
            "mode": "ssot_consolidated",
            "components": {
                "startup_phase": backend.state.startup_phase,
                "connections": _open_connections(backend),
            },
            "service_availability": {
                "allow_websocket_connections": accepting,
                "denial_reason": None if accepting else "startup_incomplete",
            },
        }
        return JSONResponse(body)

    for path, handler in (
        ("/health", health),
        ("/health/", health),
        ("/health/ready", ready),
        ("/health/live", live),
        ("/health/database", database),
        ("/ws/health", ws_health),
    ):
        app.add_api_route(path, handler, methods=["GET", "HEAD"])


def _open_connections(backend: Backend) -> int:
    return len(backend.runtime.connections) if backend.runtime.connections is not None else 0


def _backend(request: Request) -> Backend:
    return request.app.state.backend


def _current_user(request: Request, authorization: Annotated[str | None, Header()] = None) -> tokens.Claims:
    """The Bearer token's identity; 401 without a valid access token."""
    token = tokens.bearer_token(authorization)
    if token is None:
        raise HTTPException(401, "Not authenticated")
    try:
        return tokens.verify(_backend(request).config.jwt_secret, token)
    except tokens.TokenError as exc:
        raise HTTPException(401, f"Invalid token: {exc.reason}") from exc


def _pool(request: Request) -> asyncpg.Pool:
    return _backend(request).pool


CurrentUser = Annotated[tokens.Claims, Depends(_current_user)]
Pool = Annotated[asyncpg.Pool, Depends(_pool)]
Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0)]
threads_router = APIRouter(prefix="/api/threads")


@threads_router.post("", response_model=Thread)
async def create_thread(user: CurrentUser, pool: Pool, body: ThreadCreate | None = None) -> Thread:
    request = body or ThreadCreate()
    return await db.create_thread(pool, user.sub, user.email, request.title, request.metadata)


@threads_router.get("", response_model=list[Thread])
async def list_threads(user: CurrentUser, pool: Pool, limit: Limit = 50, offset: Offset = 0) -> list[Thread]:
    return await db.list_threads(pool, user.sub, limit, offset)


@threads_router.get("/{thread_id}/messages", response_model=MessagesPage)
async def list_messages(
    thread_id: str, user: CurrentUser, pool: Pool, limit: Limit = 50, offset: Offset = 0
) -> MessagesPage:
    """A thread's messages; another user's thread is reported as missing (404), not forbidden."""
    if await db.thread_owner(pool, thread_id) != user.sub:
        raise HTTPException(404, "Thread not found")
    messages = await db.list_messages(pool, thread_id, limit, offset)
    total = await db.count_messages(pool, thread_id)
    return MessagesPage(messages=messages, thread_id=thread_id, total=total, limit=limit, offset=offset)


def negotiate_subprotocol(offered: list[str]) -> tuple[str | None, str | None]:
    """(the subprotocol to accept, the token it carries): token-bearing entries win, echoed verbatim."""
    for entry in offered:
        for prefix in TOKEN_SUBPROTOCOL_PREFIXES:
            if entry.startswith(prefix) and len(entry) > len(prefix):
                return entry, _subprotocol_token(entry[len(prefix) :])
    bare = next((entry for entry in offered if entry in BARE_SUBPROTOCOLS), None)
    return bare, None


def _subprotocol_token(value: str) -> str:
    """A JWT carried raw, as `<env>.<jwt>`, or base64url-encoded."""
    parts = value.split(".")
    if len(parts) == 3:
        return value
    if len(parts) == 4:
        return ".".join(parts[1:])
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return value


@dataclass(frozen=True)
class WsIdentity:
    user_id: str
    email: str
    authenticated: bool


def authenticate_ws(config: ServiceConfig, token: str | None) -> WsIdentity | None:
    """The connection's user; strict mode refuses (None), relaxed mode invents `relaxed_XXXX` like staging."""
    reason = "missing_token"
    if token is not None:
        try:
            claims = tokens.verify(config.jwt_secret, token)
            return WsIdentity(claims.sub, claims.email, authenticated=True)
        except tokens.TokenError as exc:
            reason = exc.reason
    if config.ws_auth == "strict":
        log.info("websocket authentication refused: %s", reason)
        return None
    user_id = f"relaxed_{secrets.token_hex(2)}"
    log.warning("websocket authentication failed (%s); relaxed mode admits invented user %s", reason, user_id)
    return WsIdentity(user_id, "", authenticated=False)


class ChatSession:
    """One accepted, authenticated `/ws` connection: its message loop and its agent runs."""

    def __init__(self, ws: WebSocket, backend: Backend, identity: WsIdentity) -> None:
        self.ws = ws
        self.backend = backend
        self.identity = identity
        self.connection_id = f"main_{uuid.uuid4().hex[:12]}"
        self._send_lock = asyncio.Lock()
        self._runs: set[asyncio.Task[None]] = set()

    async def send(self, frame: dict[str, Any]) -> None:
        """Serialise sends: agent runs and the message loop share one socket."""
        async with self._send_lock:
            await self.ws.send_text(json.dumps(frame))

    async def serve(self) -> None:
        registry = self.backend.runtime.connections
        if registry is not None:
            registry.add(self.connection_id, self.identity.user_id)
        try:
            await self.send(self._welcome())
            await self._loop()
        finally:
            for run in self._runs:
                run.cancel()
            if registry is not None:
                registry.remove(self.connection_id)

    def _welcome(self) -> dict[str, Any]:
        features = {"ws_auth": self.backend.config.ws_auth, "authenticated": self.identity.authenticated}
        data = ConnectionEstablishedData(
            user_id=f"{self.identity.user_id[:8]}...", connection_id=self.connection_id, features=features
        )
        return ConnectionEstablished(data=data).model_dump(mode="json")

    async def _loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode(errors="replace")
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            await self._error("Invalid JSON: expected a JSON object", "JSON_PARSE_ERROR")
            return
        kind = frame.get("type")
        if kind == ClientType.USER_MESSAGE:
            self._spawn(self._chat(frame))
        elif kind == ClientType.PING:
            await self.send({"type": ServerType.PONG, "timestamp": time.time()})
        else:
            ack = {
                "type": ServerType.ACK,
                "received_type": kind,
                "status": "acknowledged",
                "timestamp": time.time(),
            }
            await self.send(ack)

    async def _error(self, message: str, code: str) -> None:
        await self.send(
            {"type": ServerType.ERROR, "message": message, "code": code, "timestamp": time.time()}
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guarded(coro))
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        """A run whose client went away must not surface as an unretrieved task exception."""
        try:
            await coro
        except Exception as exc:
            log.info("chat run on %s ended early: %s", self.connection_id, type(exc).__name__)

    async def _chat(self, frame: dict[str, Any]) -> None:
        payload = frame.get("payload") if isinstance(frame.get("payload"), dict) else frame
        content = payload.get("content") or payload.get("text")
        if not isinstance(content, str) or not content.strip():
            await self._error("Message content is required", "EMPTY_MESSAGE")
            return
        thread_id = await self._thread_for(payload.get("thread_id") or frame.get("thread_id"), content)
        if thread_id is None:
            await self._error("Thread not found", "THREAD_NOT_FOUND")
            return
        run_id = payload.get("run_id") or f"run_{uuid.uuid4().hex}"
        run = AgentRun(
            user_id=self.identity.user_id, thread_id=thread_id, run_id=str(run_id), question=content
        )
        await run_agent(self.backend.pool, self.backend.config, run, self.send)

    async def _thread_for(self, requested: Any, content: str) -> str | None:
        """The user's thread to chat in: the requested one if theirs, a new one if none was named."""
        pool = self.backend.pool
        if requested:
            return (
                str(requested)
                if await db.thread_owner(pool, str(requested)) == self.identity.user_id
                else None
            )
        title = content.strip()[:THREAD_TITLE_CHARS]
        thread = await db.create_thread(pool, self.identity.user_id, self.identity.email, title)
        return thread.id


def _add_websocket_route(app: FastAPI, backend: Backend) -> None:
    @app.websocket("/ws")
    async def chat(ws: WebSocket) -> None:
        chosen, subprotocol_token = negotiate_subprotocol(list(ws.scope.get("subprotocols") or []))
        if ws.scope.get("subprotocols") and chosen is None:
            await ws.close(CloseCode.UNSUPPORTED, "No supported subprotocols")
            return
        if not backend.ready:
            # Like staging's WebSocket readiness middleware: refuse the upgrade with its 503 JSON.
            await ws.send_denial_response(
                JSONResponse(
                    {
                        "error": "service_not_ready",
                        "message": "WebSocket service is not ready: startup in progress",
                        "details": {"state": str(backend.state.startup_phase), "retry_after_seconds": 2},
                    },
                    status_code=503,
                    headers={"Retry-After": "2"},
                )
            )
            return
        await ws.accept(subprotocol=chosen)
        token = tokens.bearer_token(ws.headers.get("authorization")) or subprotocol_token
        identity = authenticate_ws(backend.config, token)
        if identity is None:
            await ws.send_text(
                json.dumps(
                    {"type": ServerType.ERROR, "message": "Authentication failed", "code": "AUTH_FAILED"}
                )
            )
            await ws.close(CloseCode.POLICY_VIOLATION, "Authentication failed")
            return
        log.info("websocket connected user=%s authenticated=%s", identity.user_id, identity.authenticated)
        await ChatSession(ws, backend, identity).serve()


def create_app(config: ServiceConfig) -> FastAPI:
    """The backend's ASGI app for `config`; its lifespan runs the deterministic startup."""
    backend = Backend(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if config.startup_mode == "blocking":
            await backend.start_blocking()
        else:
            backend.start_early()
        yield
        await backend.stop()

    app = FastAPI(title="netra-ai-platform (replica)", version=VERSION, lifespan=lifespan)
    app.state.backend = backend
    _add_health_routes(app, backend)
    app.include_router(threads_router)
    _add_websocket_route(app, backend)
    return app
