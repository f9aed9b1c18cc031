"""The backend (netra-ai-platform): health endpoints, threads REST and the `/ws` chat golden path.

Every route speaks the configured protocol era (`ServiceConfig.profile`, shapes in
replica/protocol.py): legacy's rich health and `{"detail"}` errors, or aebb16f/head's `{"status":
"ok"}`, error envelope and `/ws/health` quirk. The socket's session lives in replica/chat.py.

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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from contract.events import CloseCode, ServerType
from contract.frames import iso_now
from contract.identity import BACKEND_SERVICE, BARE_SUBPROTOCOLS, TOKEN_SUBPROTOCOL_PREFIXES
from contract.rest import MessagesPage, StartupHealth, Thread, ThreadCreate
from contract.startup import PHASES, STARTUP_FAILURE_EXIT_CODE
from replica import db, protocol, tokens
from replica.chat import ChatSession, WsIdentity
from replica.config import ServiceConfig
from replica.startup import (
    BackendResources,
    ConnectionRegistry,
    DeterministicStartupError,
    StartupState,
    run_startup,
)

log = logging.getLogger("replica.backend")

VERSION = "1.0.0"
ENVIRONMENT = "replica"


# The real build's lifespan and web server, whose startup lines go to stdout as JSON (see serve.py).
lifespan_log = logging.getLogger("netra_backend.app.core.lifespan_manager")
server_log = logging.getLogger("uvicorn.error")


def _log_startup_failure(error: DeterministicStartupError) -> None:
    """The lifespan's CRITICAL line (JSON, real words), and a plain one on stderr for local greps."""
    log.critical(
        "DeterministicStartupError: phase=%s error_type=%s duration=%.2fs is_timeout=%s message=%s",
        error.phase,
        error.error_type,
        error.duration,
        error.is_timeout,
        error.message,
    )
    lifespan_log.critical("DETERMINISTIC STARTUP FAILURE: %s", error)


def _exit_for_startup_failure() -> None:
    """Leave at once with exit code 3 (os._exit: no shutdown hook may wait on the dead database)."""
    lifespan_log.critical("Exiting with code %d to signal startup failure", STARTUP_FAILURE_EXIT_CODE)
    server_log.error("Application startup failed. Exiting.")
    for name in ("", lifespan_log.name, server_log.name):
        for handler in logging.getLogger(name).handlers:
            handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(STARTUP_FAILURE_EXIT_CODE)


class Backend:
    """The backend's state: startup progress and what the phases built."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.state = StartupState()
        self.resources = BackendResources(config)
        self._startup_task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.state.startup_complete and self.resources.pool is not None

    @property
    def pool(self) -> asyncpg.Pool:
        if not self.ready or self.resources.pool is None:
            raise HTTPException(503, "Service not ready")
        return self.resources.pool

    @property
    def connections(self) -> ConnectionRegistry | None:
        return self.resources.connections

    async def start_blocking(self) -> None:
        try:
            await run_startup(self.resources, self.state)
        except DeterministicStartupError as error:
            _log_startup_failure(error)
            _exit_for_startup_failure()

    def start_early(self) -> None:
        self._startup_task = asyncio.create_task(self._startup_then_grace())

    async def _startup_then_grace(self) -> None:
        """Early mode: on failure keep serving the failed /health body for a grace period, then exit 3."""
        try:
            await run_startup(self.resources, self.state)
        except DeterministicStartupError as error:
            _log_startup_failure(error)
            log.info("serving the failed /health for %.1fs before exiting", self.config.early_fail_grace_s)
            await asyncio.sleep(self.config.early_fail_grace_s)
            _exit_for_startup_failure()

    async def stop(self) -> None:
        if self._startup_task is not None:
            self._startup_task.cancel()
        await self.resources.close()

    async def db_error(self) -> str | None:
        """None if a pooled connection answers `SELECT 1` within health_db_timeout_s, else the error type."""
        if not self.ready or self.resources.pool is None:
            return "StartupIncomplete"
        try:
            async with (
                asyncio.timeout(self.config.health_db_timeout_s),
                self.resources.pool.acquire() as conn,
            ):
                await db.ping(conn, hold_s=self.config.health_db_hold_s)
        except Exception as exc:  # acquire timeout, too many connections, connection reset: all "unavailable"
            log.warning("database health check failed: %s", type(exc).__name__)
            return type(exc).__name__
        return None

    def pool_status(self) -> dict[str, int]:
        pool = self.resources.pool
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


HealthRoute = tuple[str, Any]


def _add_health_routes(app: FastAPI, backend: Backend) -> None:
    legacy = protocol.is_legacy(backend.config.profile)
    routes = _legacy_health_routes(backend) if legacy else _health_routes(backend)
    for path, handler in routes:
        app.add_api_route(path, handler, methods=["GET", "HEAD"])


def _health_routes(backend: Backend) -> list[HealthRoute]:
    """aebb16f's simplified health: `{"status": "ok"}`, readiness without components, the envelope."""

    async def health() -> JSONResponse:
        return backend.startup_refusal() or JSONResponse(protocol.OK_BODY)

    async def alive() -> JSONResponse:
        return JSONResponse(protocol.OK_BODY)

    async def ready(request: Request) -> JSONResponse:
        refusal = backend.startup_refusal()
        if refusal is not None:
            return refusal
        if await backend.db_error() is not None:
            return envelope_response(request, 503, protocol.DATABASE_UNAVAILABLE)
        return JSONResponse(protocol.READY_BODY)

    async def database(request: Request) -> JSONResponse:
        if await backend.db_error() is not None:
            return envelope_response(request, 503, protocol.DATABASE_UNAVAILABLE)
        body = {"status": "healthy", "connected": True, "pool_status": backend.pool_status()}
        return JSONResponse(body | {"timestamp": iso_now()})

    return [
        ("/health", health),
        ("/health/", health),
        ("/health/live", alive),
        ("/health/startup", alive),
        ("/health/ready", ready),
        ("/health/database", database),
    ]


def _legacy_health_routes(backend: Backend) -> list[HealthRoute]:
    """The rich health of the builds before 2025-09-16 (service, version, core_db, /ws/health 200)."""

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

    return [
        ("/health", health),
        ("/health/", health),
        ("/health/ready", ready),
        ("/health/live", live),
        ("/health/database", database),
        ("/ws/health", ws_health),
    ]


def _open_connections(backend: Backend) -> int:
    return len(backend.connections) if backend.connections is not None else 0


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def envelope_response(
    request: Request, status_code: int, message: str, exc: BaseException | None = None
) -> JSONResponse:
    """The backend's own error envelope (aebb16f/head), its status recomputed from the error code."""
    status, code = protocol.envelope_status(status_code)
    body = protocol.error_envelope(status, code, message, exc, request.headers.get("x-request-id"))
    return JSONResponse(body, status_code=status)


def _install_error_envelope(app: FastAPI) -> None:
    """aebb16f/head: every error status answers the envelope; 401 keeps FastAPI's `{"detail"}`."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 401:
            return JSONResponse({"detail": exc.detail}, status_code=401, headers=exc.headers)
        return envelope_response(request, exc.status_code, str(exc.detail), exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        return envelope_response(request, 422, "Request validation failed", exc)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable behind %s: %s", request.url.path, type(exc).__name__)
        return envelope_response(request, 503, protocol.DATABASE_UNAVAILABLE, exc)

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return envelope_response(request, 500, "Internal server error", exc)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    for error_type in db.UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, database_error)
    app.add_exception_handler(Exception, internal_error)


class WsPlainGetRefusal:
    """aebb16f's WebSocket readiness middleware: a plain HTTP GET under /ws (no Sec-WebSocket-Key)
    gets its own 503 `service_not_ready`, however healthy the service; sockets are unaffected."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        under_ws = path == "/ws" or path.startswith("/ws/")
        has_key = any(name == b"sec-websocket-key" for name, _ in scope.get("headers", []))
        if scope["type"] == "http" and under_ws and not has_key:
            retry = {"Retry-After": str(protocol.WS_NOT_READY_RETRY_AFTER_S)}
            response = JSONResponse(protocol.ws_not_ready_body(), status_code=503, headers=retry)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


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
    request: Request, thread_id: str, user: CurrentUser, pool: Pool, limit: Limit = 50, offset: Offset = 0
) -> MessagesPage:
    """A thread's messages, content shaped per era; another user's thread is missing (404), not forbidden."""
    if await db.thread_owner(pool, thread_id) != user.sub:
        raise HTTPException(404, "Thread not found")
    profile = _backend(request).config.profile
    stored = await db.list_messages(pool, thread_id, limit, offset)
    messages = [
        m.model_copy(update={"content": protocol.message_content(profile, str(m.content))}) for m in stored
    ]
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


def authenticate_ws(config: ServiceConfig, token: str | None) -> WsIdentity | None:
    """The connection's user; strict mode refuses (None), relaxed mode invents `relaxed_XXXX` like
    staging, demo mode makes everyone `demo-user-001` (DEMO_MODE, on by default at aebb16f)."""
    if config.ws_auth == "demo":
        log.warning(
            "websocket demo mode: the connection becomes %s whatever its token", protocol.DEMO_USER_ID
        )
        return WsIdentity(protocol.DEMO_USER_ID, protocol.DEMO_EMAIL, authenticated=False)
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


def _add_websocket_route(app: FastAPI, backend: Backend) -> None:
    @app.websocket("/ws")
    async def chat(ws: WebSocket) -> None:
        if not await _admit(ws, backend):
            return
        token = tokens.bearer_token(ws.headers.get("authorization")) or ws.scope["replica.subprotocol_token"]
        identity = authenticate_ws(backend.config, token)
        if identity is None:
            await ws.send_text(json.dumps(_auth_failed_frame(backend.config)))
            await ws.close(CloseCode.POLICY_VIOLATION, "Authentication failed")
            return
        log.info("websocket connected user=%s authenticated=%s", identity.user_id, identity.authenticated)
        await ChatSession(ws, backend, identity).serve()


async def _admit(ws: WebSocket, backend: Backend) -> bool:
    """Readiness guard, subprotocol, accept, and the shipped build's main-mode failure; True to go on."""
    if backend.config.ws_mode == "readiness_guard":
        # A close before accept: uvicorn answers the upgrade with HTTP 403, whatever the token.
        log.warning("websocket readiness guard refused an upgrade before accept")
        await ws.close(CloseCode.INTERNAL_ERROR, protocol.READINESS_GUARD_REASON)
        return False
    chosen, subprotocol_token = negotiate_subprotocol(list(ws.scope.get("subprotocols") or []))
    if ws.scope.get("subprotocols") and chosen is None:
        await ws.close(CloseCode.UNSUPPORTED, "No supported subprotocols")
        return False
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
        return False
    await ws.accept(subprotocol=chosen)
    ws.scope["replica.subprotocol_token"] = subprotocol_token
    if backend.config.ws_mode == "main_mode_error":
        log.error("websocket main mode failed: RecursionError (an import that calls itself)")
        await ws.send_text(json.dumps(protocol.main_mode_error()))
        await ws.close(CloseCode.INTERNAL_ERROR, protocol.MAIN_MODE_ERROR_REASON)
        return False
    return True


def _auth_failed_frame(config: ServiceConfig) -> dict[str, Any]:
    if protocol.is_legacy(config.profile):
        return {"type": ServerType.ERROR, "message": "Authentication failed", "code": "AUTH_FAILED"}
    return protocol.auth_failed()


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
    if not protocol.is_legacy(config.profile):
        _install_error_envelope(app)
        app.add_middleware(WsPlainGetRefusal)
    return app
