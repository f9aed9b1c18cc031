"""The replica's backend and auth service over real sockets: real PostgreSQL, real subprocesses.

Each service runs as `python -m replica.<name> --port N` with the REPLICA_* env of a ServiceConfig,
exactly as the daemon starts it; nothing is mocked. Checks use httpx and the websockets client.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from contract.events import GOLDEN_PATH_EVENTS, CloseCode, ServerType
from contract.frames import answer_text
from contract.identity import AUTH_SERVICE, BACKEND_SERVICE, BYPASS_KEY_HEADER
from contract.rest import MessagesPage, StartupHealth, TokenResponse
from contract.startup import PHASES, STARTUP_FAILURE_EXIT_CODE
from replica import tokens
from replica.backend_app import negotiate_subprotocol
from replica.config import ServiceConfig
from replica.postgres import PostgresServer
from tests.replica.lifecycle import Service, spawn_service

pytestmark = [pytest.mark.replica]

BYPASS_KEY = "replica-test-bypass-key"
SERVE_TIMEOUT_S = 20.0
FRAME_TIMEOUT_S = 10.0
HANG_DB_TIMEOUT_S = 1.5
EXIT_MARGIN_S = 8.0  # interpreter start-up and imports on a busy 2-core machine
QUESTION = "What is 2+3, and how does PostgreSQL keep chat threads?"


class Launcher:
    """Starts service subprocesses and guarantees that none outlives the module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.services: list[Service] = []

    def start(self, module: str, config: ServiceConfig) -> Service:
        name = module.rsplit(".", 1)[-1]
        service = spawn_service(module, module, config, self.root / f"{name}-{len(self.services)}.log")
        self.services.append(service)
        return service

    def backend(self, config: ServiceConfig) -> Service:
        service = self.start("replica.backend", config)
        return service.wait_serving("/health/live", SERVE_TIMEOUT_S)

    def auth(self, config: ServiceConfig) -> Service:
        service = self.start("replica.auth", config)
        return service.wait_serving("/health", SERVE_TIMEOUT_S)

    def stop_all(self) -> None:
        for service in self.services:
            service.stop()


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    services = Launcher(tmp_path_factory.mktemp("services"))
    try:
        yield services
    finally:
        services.stop_all()


@pytest.fixture(scope="module")
def config(postgres: PostgresServer) -> ServiceConfig:
    """The legacy era: these tests pin its shapes (test_profiles.py covers aebb16f and head)."""
    return ServiceConfig(
        bypass_key=BYPASS_KEY,
        backend_database_url=postgres.url,
        auth_database_url=postgres.url,
        db_timeout_s=5.0,
        agent_step_delay_s=0.02,
        profile="legacy",
    )


@pytest.fixture(scope="module")
def auth(launcher: Launcher, config: ServiceConfig) -> Service:
    return launcher.auth(config)


@pytest.fixture(scope="module")
def backend(launcher: Launcher, config: ServiceConfig) -> Service:
    return launcher.backend(config)


@pytest.fixture(scope="module")
def token(auth: Service) -> str:
    """An access token obtained the way E2E tests obtain it: the bypass-key login."""
    response = httpx.post(f"{auth.url}/auth/e2e/test-auth", headers={BYPASS_KEY_HEADER: BYPASS_KEY}, json={})
    response.raise_for_status()
    return TokenResponse.model_validate(response.json()).access_token


@pytest.fixture(scope="module")
def hanging_db_url() -> Iterator[str]:
    """A "database" that completes TCP handshakes (the kernel does, from the backlog) and never answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/postgres"
    finally:
        listener.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- WebSocket helpers -------------------------------------------------------------------------


async def _recv_json(ws: ClientConnection, timeout_s: float = FRAME_TIMEOUT_S) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    return frame


async def _frames_until(ws: ClientConnection, last: str, timeout_s: float) -> list[dict[str, Any]]:
    """Frames received until one of type `last`, or until `timeout_s` of total waiting passes."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            frames.append(await _recv_json(ws, remaining))
        except TimeoutError:
            break
        if frames[-1]["type"] == last:
            break
    return frames


async def _close_code(ws: ClientConnection) -> int | None:
    """The server's close code, after draining whatever it sent before closing."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def _chat(ws: ClientConnection, content: str, timeout_s: float) -> list[dict[str, Any]]:
    """Send one user message (after the welcome) and collect frames up to agent_completed."""
    welcome = await _recv_json(ws)
    assert welcome["type"] == ServerType.CONNECTION_ESTABLISHED, welcome
    await ws.send(json.dumps({"type": "user_message", "payload": {"content": content}}))
    return await _frames_until(ws, ServerType.AGENT_COMPLETED, timeout_s)


def _refusal_code(url: str, token: str | None) -> int | None:
    async def attempt() -> int | None:
        async with connect(url, additional_headers=_bearer(token) if token else None) as ws:
            return await _close_code(ws)

    return asyncio.run(attempt())


def _welcome(url: str, **connect_kwargs: Any) -> tuple[dict[str, Any], str | None]:
    async def attempt() -> tuple[dict[str, Any], str | None]:
        async with connect(url, **connect_kwargs) as ws:
            return await _recv_json(ws), ws.subprotocol

    return asyncio.run(attempt())


# --- pure pieces: token verification reasons and subprotocol negotiation ---------------------------

SECRET = "a-test-secret-of-at-least-32-bytes!"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (tokens.mint(SECRET, sub="u", email="u@x", permissions=[], ttl_s=-60), "expired"),
        (tokens.mint(SECRET + "-other", sub="u", email="u@x", permissions=[]), "bad_signature"),
        ("not.a.jwt", "malformed"),
        (tokens.mint(SECRET, sub="u", email="u@x", permissions=[], token_type="refresh"), "wrong_type"),
    ],
)
def test_verify_names_the_reason(token: str, reason: str) -> None:
    with pytest.raises(tokens.TokenError) as refused:
        tokens.verify(SECRET, token)
    assert refused.value.reason == reason


def test_token_subprotocol_wins_over_bare_name() -> None:
    jwt_token = tokens.mint(SECRET, sub="u", email="u@x", permissions=[])
    assert negotiate_subprotocol(["agent_chat", f"jwt.{jwt_token}"]) == (f"jwt.{jwt_token}", jwt_token)


# --- auth service ------------------------------------------------------------------------------


def test_auth_health_reports_connected_database(auth: Service) -> None:
    body = httpx.get(f"{auth.url}/health").json()
    assert (body["status"], body["service"], body["database_status"]) == (
        "healthy",
        AUTH_SERVICE,
        "connected",
    )


def test_test_auth_with_right_key_issues_verifiable_tokens(auth: Service, config: ServiceConfig) -> None:
    response = httpx.post(f"{auth.url}/auth/e2e/test-auth", headers={BYPASS_KEY_HEADER: BYPASS_KEY}, json={})
    issued = TokenResponse.model_validate(response.json())
    claims = tokens.verify(config.jwt_secret, issued.access_token)
    assert (response.status_code, claims.sub, issued.user and issued.user.id) == (
        200,
        "e2e-e2e-test",
        "e2e-e2e-test",
    )


def test_test_auth_with_wrong_key_is_401(auth: Service) -> None:
    response = httpx.post(f"{auth.url}/auth/e2e/test-auth", headers={BYPASS_KEY_HEADER: "wrong"}, json={})
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid E2E bypass key"})


def test_test_auth_without_key_is_401(auth: Service) -> None:
    response = httpx.post(f"{auth.url}/auth/e2e/test-auth", json={})
    assert (response.status_code, response.json()) == (401, {"detail": "E2E bypass key required"})


def test_reject_bypass_mode_refuses_the_right_key(launcher: Launcher, config: ServiceConfig) -> None:
    broken = launcher.auth(config.replace(auth_mode="reject_bypass"))
    try:
        response = httpx.post(f"{broken.url}/auth/e2e/test-auth", headers={BYPASS_KEY_HEADER: BYPASS_KEY})
    finally:
        broken.stop()
    assert response.status_code == 401


def test_refresh_accepts_camel_case_field(auth: Service) -> None:
    login = httpx.post(f"{auth.url}/auth/e2e/test-auth", headers={BYPASS_KEY_HEADER: BYPASS_KEY}).json()
    response = httpx.post(f"{auth.url}/auth/refresh", json={"refreshToken": login["refresh_token"]})
    assert response.status_code == 200 and response.json()["access_token"]


def test_validate_answers_200_invalid_for_garbage(auth: Service) -> None:
    response = httpx.post(f"{auth.url}/auth/validate", json={"token": "not-a-jwt"})
    assert (response.status_code, response.json()["valid"]) == (200, False)


def test_me_returns_the_token_profile(auth: Service, token: str) -> None:
    assert httpx.get(f"{auth.url}/auth/me", headers=_bearer(token)).json()["user_id"] == "e2e-e2e-test"


# --- backend health and REST -------------------------------------------------------------------


def test_backend_health_reports_service_and_all_phase_timings(backend: Service) -> None:
    response = httpx.get(f"{backend.url}/health")
    body = response.json()
    assert (response.status_code, body["service"]) == (200, BACKEND_SERVICE)
    assert list(body["startup"]["phase_timings"]) == [p.value for p in PHASES]


def test_backend_database_health_is_connected(backend: Service) -> None:
    body = httpx.get(f"{backend.url}/health/database").json()
    assert (body["status"], body["connected"]) == ("healthy", True)


def test_backend_ready_reports_core_db_connected(backend: Service) -> None:
    assert httpx.get(f"{backend.url}/health/ready").json()["core_db"] == "connected"


def test_threads_require_bearer(backend: Service) -> None:
    assert httpx.get(f"{backend.url}/api/threads").status_code == 401


def test_thread_of_another_user_is_404(backend: Service, config: ServiceConfig, token: str) -> None:
    created = httpx.post(f"{backend.url}/api/threads", headers=_bearer(token), json={"title": "mine"}).json()
    stranger = tokens.mint(config.jwt_secret, sub="someone-else", email="x@example.com", permissions=[])
    response = httpx.get(f"{backend.url}/api/threads/{created['id']}/messages", headers=_bearer(stranger))
    assert response.status_code == 404


# --- WebSocket golden path ---------------------------------------------------------------------


@dataclass(frozen=True)
class DirectChatTurn:
    frames: list[dict[str, Any]]

    @property
    def agent_events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] in GOLDEN_PATH_EVENTS]

    @property
    def thread_id(self) -> str:
        thread_id: str = self.frames[-1]["thread_id"]
        return thread_id


@pytest.fixture(scope="module")
def turn(backend: Service, token: str) -> DirectChatTurn:
    async def chat() -> list[dict[str, Any]]:
        async with connect(backend.ws_url, additional_headers=_bearer(token)) as ws:
            return await _chat(ws, QUESTION, FRAME_TIMEOUT_S)

    return DirectChatTurn(asyncio.run(chat()))


def test_golden_path_sends_the_five_events_in_order(turn: DirectChatTurn) -> None:
    assert [f["type"] for f in turn.agent_events] == list(GOLDEN_PATH_EVENTS)


def test_every_agent_event_names_thread_and_run(turn: DirectChatTurn) -> None:
    assert all(f.get("thread_id") and f.get("run_id") for f in turn.agent_events)


def test_answer_is_about_the_question(turn: DirectChatTurn) -> None:
    answer = answer_text(turn.frames[-1]) or ""
    assert "postgresql" in answer.lower() and "2 + 3 = 5" in answer


def test_both_messages_are_listed_by_rest(backend: Service, token: str, turn: DirectChatTurn) -> None:
    response = httpx.get(f"{backend.url}/api/threads/{turn.thread_id}/messages", headers=_bearer(token))
    page = MessagesPage.model_validate(response.json())
    assert [(m.role, m.content) for m in page.messages] == [
        ("user", QUESTION),
        ("assistant", answer_text(turn.frames[-1])),
    ]


def test_both_messages_are_in_postgres(postgres: PostgresServer, turn: DirectChatTurn) -> None:
    async def roles() -> list[str]:
        conn = await asyncpg.connect(postgres.url)
        try:
            rows = await conn.fetch(
                "SELECT role FROM messages WHERE thread_id = $1 ORDER BY seq", turn.thread_id
            )
        finally:
            await conn.close()
        return [r["role"] for r in rows]

    assert asyncio.run(roles()) == ["user", "assistant"]


def test_second_question_sees_thread_history(backend: Service, token: str, turn: DirectChatTurn) -> None:
    async def follow_up() -> list[dict[str, Any]]:
        async with connect(backend.ws_url, additional_headers=_bearer(token)) as ws:
            await _recv_json(ws)
            message = {
                "type": "user_message",
                "payload": {"content": "And 4*5?", "thread_id": turn.thread_id},
            }
            await ws.send(json.dumps(message))
            return await _frames_until(ws, ServerType.AGENT_COMPLETED, FRAME_TIMEOUT_S)

    answer = answer_text(asyncio.run(follow_up())[-1]) or ""
    assert "2 earlier messages" in answer and QUESTION in answer


def test_token_subprotocol_is_accepted_and_echoed(backend: Service, token: str) -> None:
    welcome, chosen = _welcome(backend.ws_url, subprotocols=[f"jwt.{token}"])
    assert (welcome["type"], chosen) == (ServerType.CONNECTION_ESTABLISHED, f"jwt.{token}")


def test_invalid_json_gets_parse_error_and_socket_stays_open(backend: Service, token: str) -> None:
    async def exchange() -> tuple[str, str]:
        async with connect(backend.ws_url, additional_headers=_bearer(token)) as ws:
            await _recv_json(ws)
            await ws.send("{not json")
            error = await _recv_json(ws)
            await ws.send(json.dumps({"type": "ping"}))
            return error["code"], (await _recv_json(ws))["type"]

    assert asyncio.run(exchange()) == ("JSON_PARSE_ERROR", ServerType.PONG)


# --- WebSocket authentication ------------------------------------------------------------------


def test_strict_refuses_missing_token_with_1008(backend: Service) -> None:
    assert _refusal_code(backend.ws_url, None) == CloseCode.POLICY_VIOLATION


def test_strict_refuses_bad_signature_with_1008(backend: Service) -> None:
    forged = tokens.mint(
        "not-the-shared-secret-but-long-enough", sub="mallory", email="m@example.com", permissions=["admin"]
    )
    assert _refusal_code(backend.ws_url, forged) == CloseCode.POLICY_VIOLATION


def test_strict_refuses_expired_token_with_1008(backend: Service, config: ServiceConfig) -> None:
    expired = tokens.mint(config.jwt_secret, sub="late", email="l@example.com", permissions=[], ttl_s=-60)
    assert _refusal_code(backend.ws_url, expired) == CloseCode.POLICY_VIOLATION


def test_relaxed_mode_admits_no_token_as_invented_user(launcher: Launcher, config: ServiceConfig) -> None:
    relaxed = launcher.backend(config.replace(ws_auth="relaxed"))
    try:
        welcome, _ = _welcome(relaxed.ws_url)
    finally:
        relaxed.stop()
    assert welcome["data"]["user_id"].startswith("relaxed_")


def test_broken_agent_never_completes(launcher: Launcher, config: ServiceConfig, token: str) -> None:
    broken = launcher.backend(config.replace(agent_mode="broken"))

    async def chat() -> list[str]:
        async with connect(broken.ws_url, additional_headers=_bearer(token)) as ws:
            return [f["type"] for f in await _chat(ws, QUESTION, timeout_s=3.0)]

    try:
        seen = asyncio.run(chat())
    finally:
        broken.stop()
    assert ServerType.TOOL_COMPLETED in seen and ServerType.AGENT_COMPLETED not in seen


# --- startup failure (issue #1278): a database that never answers --------------------------------


@dataclass(frozen=True)
class StartupExit:
    code: int | None
    seconds: float
    stderr: str
    served_http: bool


@pytest.fixture(scope="module")
def blocking_exit(launcher: Launcher, config: ServiceConfig, hanging_db_url: str) -> StartupExit:
    """A blocking-mode backend against the hanging database, watched until it exits."""
    hung = config.replace(backend_database_url=hanging_db_url, db_timeout_s=HANG_DB_TIMEOUT_S)
    service = launcher.start("replica.backend", hung)
    served = False
    deadline = service.started + HANG_DB_TIMEOUT_S + EXIT_MARGIN_S
    while service.process.poll() is None and time.monotonic() < deadline:
        try:
            httpx.get(f"{service.url}/health", timeout=0.5)
            served = True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    service.stop()
    return StartupExit(
        service.process.returncode, time.monotonic() - service.started, service.stderr(), served
    )


def test_blocking_startup_exits_3_within_db_timeout(blocking_exit: StartupExit) -> None:
    assert blocking_exit.code == STARTUP_FAILURE_EXIT_CODE
    assert blocking_exit.seconds < HANG_DB_TIMEOUT_S + EXIT_MARGIN_S


def test_blocking_startup_logs_the_database_phase(blocking_exit: StartupExit) -> None:
    assert "CRITICAL" in blocking_exit.stderr and "phase=database" in blocking_exit.stderr


def test_blocking_startup_never_serves_http(blocking_exit: StartupExit) -> None:
    assert not blocking_exit.served_http


@dataclass(frozen=True)
class EarlyRun:
    bodies: list[dict[str, Any]]
    code: int | None


@pytest.fixture(scope="module")
def early_run(launcher: Launcher, config: ServiceConfig, hanging_db_url: str) -> EarlyRun:
    """An early-mode backend against the hanging database: every /health 503 body until it exits."""
    hung = config.replace(
        backend_database_url=hanging_db_url,
        db_timeout_s=HANG_DB_TIMEOUT_S,
        startup_mode="early",
        early_fail_grace_s=1.5,
    )
    service = launcher.start("replica.backend", hung)
    bodies: list[dict[str, Any]] = []
    deadline = service.started + HANG_DB_TIMEOUT_S + 1.5 + EXIT_MARGIN_S
    while service.process.poll() is None and time.monotonic() < deadline:
        try:
            response = httpx.get(f"{service.url}/health", timeout=0.5)
            if response.status_code == 503:
                bodies.append(response.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    service.stop()
    return EarlyRun(bodies, service.process.returncode)


def test_early_startup_reports_progress_while_db_hangs(early_run: EarlyRun) -> None:
    progress = [StartupHealth.model_validate(b) for b in early_run.bodies if b.get("startup_in_progress")]
    assert progress and progress[-1].details["phase"] == "database"


def test_early_startup_reports_failure_in_database_phase(early_run: EarlyRun) -> None:
    failed = [StartupHealth.model_validate(b) for b in early_run.bodies if b.get("startup_failed")]
    assert failed and failed[0].details["phase"] == "database"


def test_early_startup_failure_exits_3(early_run: EarlyRun) -> None:
    assert early_run.code == STARTUP_FAILURE_EXIT_CODE
