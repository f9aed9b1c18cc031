"""The auth service (auth_service/main.py + auth_core/routes/auth_routes.py), as E2E tests meet it.

`auth_mode == "reject_bypass"` refuses every bypass key: the "auth broken" product defect.
In the aebb16f and head profiles its health reports `environment: "staging"`, as the real one does.
Tokens and the bypass key are never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from contract.frames import iso_now
from contract.identity import ACCESS_TOKEN_TTL_S, AUTH_SERVICE, BYPASS_KEY_HEADER, DEFAULT_TEST_EMAIL
from contract.rest import TestAuthRequest, TokenResponse, TokenUser, ValidateResponse
from replica import tokens
from replica.config import ServiceConfig

log = logging.getLogger("replica.auth")

VERSION = "1.0.0"
ENVIRONMENT = "replica"
STAGING_ENVIRONMENT = "staging"
REFRESH_TOKEN_FIELDS = ("refresh_token", "refreshToken", "token")


def _detail(status: int, detail: str) -> JSONResponse:
    """FastAPI's default error envelope, which the real auth service keeps."""
    return JSONResponse({"detail": detail}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object; {} for an empty body, None if it is not a JSON object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


TOKEN_KINDS: tuple[tuple[str, tokens.TokenType], ...] = (
    ("access_token", "access"),
    ("refresh_token", "refresh"),
)


def _token_pair(config: ServiceConfig, sub: str, email: str, permissions: list[str]) -> dict[str, str]:
    return {
        kind: tokens.mint(
            config.jwt_secret, token_type=token_type, sub=sub, email=email, permissions=permissions
        )
        for kind, token_type in TOKEN_KINDS
    }


def _bypass_refusal(config: ServiceConfig, offered: str | None) -> JSONResponse | None:
    """Why the bypass key is refused, or None if it is accepted."""
    if not config.bypass_key:
        return _detail(503, "E2E authentication not configured")
    if not offered:
        return _detail(401, "E2E bypass key required")
    if config.auth_mode == "reject_bypass" or not hmac.compare_digest(
        offered.encode(), config.bypass_key.encode()
    ):
        return _detail(401, "Invalid E2E bypass key")
    return None


class AuthService:
    """Route handlers bound to one configuration and start time."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.started = time.monotonic()
        self.environment = ENVIRONMENT if config.profile == "legacy" else STAGING_ENVIRONMENT

    def _base(self, status: str) -> dict[str, Any]:
        return {
            "status": status,
            "service": AUTH_SERVICE,
            "version": VERSION,
            "timestamp": iso_now(),
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "environment": self.environment,
        }

    async def database_error(self) -> str | None:
        """None if `SELECT 1` succeeds on the auth database within the health timeout, else why not."""
        if not self.config.auth_database_url:
            return None
        try:
            async with asyncio.timeout(self.config.health_db_timeout_s):
                conn = await asyncpg.connect(self.config.auth_database_url)
                try:
                    await conn.fetchval("SELECT 1")
                finally:
                    conn.terminate()
        except Exception as exc:
            log.warning("auth database check failed: %s", type(exc).__name__)
            return type(exc).__name__
        return None

    def _database_status(self) -> str:
        return "connected" if self.config.auth_database_url else "not_configured"

    async def health(self) -> JSONResponse:
        if await self.database_error() is not None:
            body = self._base("unhealthy") | {"reason": "Database connectivity failed"}
            return JSONResponse(body, status_code=503)
        return JSONResponse(self._base("healthy") | {"database_status": self._database_status()})

    async def ready(self) -> JSONResponse:
        error = await self.database_error()
        if error is not None:
            body = self._base("not_ready") | {"reason": f"Database not ready: {error}"}
            return JSONResponse(body, status_code=503)
        return JSONResponse(self._base("ready") | {"database_status": self._database_status()})

    async def test_auth(self, request: Request) -> JSONResponse:
        refusal = _bypass_refusal(self.config, request.headers.get(BYPASS_KEY_HEADER))
        if refusal is not None:
            return refusal
        body = await _json_body(request)
        try:
            params = TestAuthRequest.model_validate(body)
        except ValidationError:
            return _detail(422, "Invalid request body")
        email = params.email or DEFAULT_TEST_EMAIL
        local = email.split("@", 1)[0]
        user = TokenUser(
            id=f"e2e-{local}",
            email=email,
            name=params.name or local,
            permissions=params.permissions,
            oauth_simulated=params.simulate_oauth,
        )
        pair = _token_pair(self.config, user.id, email, params.permissions)
        log.info("issued E2E tokens for user %s", user.id)
        return JSONResponse(TokenResponse(**pair, expires_in=ACCESS_TOKEN_TTL_S, user=user).model_dump())

    async def refresh(self, request: Request) -> JSONResponse:
        body = await _json_body(request)
        if body is None:
            return _detail(422, "Invalid request body")
        token = next(
            (body[f] for f in REFRESH_TOKEN_FIELDS if isinstance(body.get(f), str) and body[f]), None
        )
        if token is None:
            return _detail(422, "refresh_token is required")
        try:
            claims = tokens.verify(self.config.jwt_secret, token, expected_type="refresh")
        except tokens.TokenError as exc:
            log.info("refresh refused: %s", exc.reason)
            return _detail(401, "Invalid refresh token")
        pair = _token_pair(self.config, claims.sub, claims.email, claims.permissions)
        return JSONResponse(pair | {"token_type": "Bearer", "expires_in": ACCESS_TOKEN_TTL_S})

    def _validation(self, token: str | None) -> dict[str, Any]:
        """The /auth/validate and /auth/verify answer: always a body, never an HTTP error."""
        if not token:
            return ValidateResponse(valid=False, error="missing_token").model_dump(exclude_none=True) | {
                "message": "No token provided"
            }
        try:
            claims = tokens.verify(self.config.jwt_secret, token)
        except tokens.TokenError as exc:
            body = ValidateResponse(valid=False, error="invalid_token").model_dump(exclude_none=True)
            return body | {"message": exc.message, "reason": exc.reason}
        body = ValidateResponse(valid=True, user_id=claims.sub, email=claims.email).model_dump(
            exclude_none=True
        )
        expires_at = datetime.fromtimestamp(claims.exp, UTC).isoformat()
        return body | {"permissions": claims.permissions, "expires_at": expires_at, "exp": claims.exp}

    async def validate(self, request: Request) -> JSONResponse:
        body = await _json_body(request) or {}
        token = body.get("token")
        return JSONResponse(self._validation(token if isinstance(token, str) else None))

    async def verify(self, request: Request) -> JSONResponse:
        token = tokens.bearer_token(request.headers.get("authorization"))
        if token is None and request.method == "POST":
            body = await _json_body(request) or {}
            candidate = body.get("token") or body.get("access_token")
            token = candidate if isinstance(candidate, str) else None
        return JSONResponse(self._validation(token))

    async def me(self, request: Request) -> JSONResponse:
        token = tokens.bearer_token(request.headers.get("authorization"))
        if token is None:
            return _detail(401, "Not authenticated")
        try:
            claims = tokens.verify(self.config.jwt_secret, token)
        except tokens.TokenError:
            return _detail(401, "Invalid or expired token")
        return JSONResponse({"user_id": claims.sub, "email": claims.email, "permissions": claims.permissions})


def create_app(config: ServiceConfig) -> FastAPI:
    """The auth service's ASGI app for `config`."""
    service = AuthService(config)
    app = FastAPI(title="auth-service (replica)", version=VERSION)
    app.add_api_route("/health", service.health, methods=["GET", "HEAD"])
    app.add_api_route("/health/ready", service.ready, methods=["GET", "HEAD"])
    app.add_api_route("/readiness", service.ready, methods=["GET", "HEAD"])
    app.add_api_route("/auth/e2e/test-auth", service.test_auth, methods=["POST"])
    app.add_api_route("/auth/refresh", service.refresh, methods=["POST"])
    app.add_api_route("/auth/validate", service.validate, methods=["POST"])
    app.add_api_route("/auth/verify", service.verify, methods=["GET", "POST"])
    app.add_api_route("/auth/me", service.me, methods=["GET"])
    return app
