"""The replica's protocol eras (legacy, aebb16f, head) and the real build's WebSocket defects, over real
sockets: one real PostgreSQL and one backend subprocess per configuration, all started at once.

These are the shapes the suite must read on the real staging (docs/protocol.md); each
test names the shape it pins, so a replica that drifts from the real system fails here first.
"""

from __future__ import annotations

import ast
import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from contract.events import GOLDEN_PATH_EVENTS, CloseCode, ServerType
from contract.frames import answer_text, event_type, message_text, text_parts
from contract.identity import AUTH_SERVICE, BACKEND_SERVICE
from contract.rest import ErrorEnvelope, MessagesPage, is_error_envelope
from replica import tokens
from replica.config import ServiceConfig
from replica.faultproxy import FaultProxy
from replica.ports import free_port
from replica.postgres import PostgresServer
from tests.replica.lifecycle import Service, spawn_service

pytestmark = [pytest.mark.replica]

SERVE_TIMEOUT_S = 30.0  # a dozen interpreters start at once on a 2-core machine
FRAME_TIMEOUT_S = 10.0
DROP_WAIT_S = 1.0  # how long a message sent before the handshake's acknowledgement must stay unanswered
QUESTION = "What is 2+3, and how does PostgreSQL keep chat threads?"
USER_ID = "e2e-e2e-test"
WS_NOT_READY = "WebSocket service is not ready. Enhanced uvicorn compatibility check failed."

# Every backend the module needs, by name: its ServiceConfig overrides.
BACKENDS: dict[str, dict[str, Any]] = {
    "legacy": {"profile": "legacy"},
    "aebb16f": {"profile": "aebb16f"},
    "head": {"profile": "head"},
    "head-demo-handshake-first": {"profile": "head", "ws_auth": "demo", "handshake_order": "before_welcome"},
    "main-mode-error": {"profile": "aebb16f", "ws_mode": "main_mode_error"},
    "router-defect": {"profile": "aebb16f", "ws_mode": "router_defect"},
    "router-defect-head": {"profile": "head", "ws_mode": "router_defect"},
    "error-mid-turn": {"profile": "aebb16f", "ws_mode": "error_mid_turn"},
    "readiness-guard": {"profile": "aebb16f", "ws_mode": "readiness_guard"},
    "database-cut": {"profile": "aebb16f"},  # its database path is cut once it serves
}
AUTHS: dict[str, dict[str, Any]] = {"legacy": {"profile": "legacy"}, "aebb16f": {"profile": "aebb16f"}}


# --- the fleet of services ----------------------------------------------------------------------


class CuttableDatabasePath:
    """A fault proxy between one backend and PostgreSQL, run on its own event loop thread: `cut()`
    drops every open connection and refuses new ones (a VPC connector failing under a running service)."""

    def __init__(self, postgres_port: int) -> None:
        self.proxy = FaultProxy("127.0.0.1", postgres_port, free_port())
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self.proxy.start())

    def _call(self, coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def cut(self) -> None:
        self._call(self.proxy.stop())

    def close(self) -> None:
        self._call(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class Fleet:
    config: ServiceConfig
    backends: dict[str, Service] = field(default_factory=dict)
    auths: dict[str, Service] = field(default_factory=dict)

    def backend(self, name: str) -> Service:
        return self.backends[name].wait_serving("/health/live", SERVE_TIMEOUT_S)

    def auth(self, name: str) -> Service:
        return self.auths[name].wait_serving("/health", SERVE_TIMEOUT_S)

    def token(self, sub: str = USER_ID) -> str:
        return tokens.mint(self.config.jwt_secret, sub=sub, email=f"{sub}@example.com", permissions=["read"])


def _spawn(module: str, name: str, config: ServiceConfig, logs: Path) -> Service:
    return spawn_service(module, name, config, logs / f"{name}.log")


@pytest.fixture(scope="module")
def database_path(postgres: PostgresServer) -> Iterator[CuttableDatabasePath]:
    path = CuttableDatabasePath(postgres.port)
    try:
        yield path
    finally:
        path.close()


@pytest.fixture(scope="module")
def fleet(
    postgres: PostgresServer, database_path: CuttableDatabasePath, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Every service at once (the interpreters start in parallel); each is awaited on first use."""
    logs = tmp_path_factory.mktemp("services")
    config = ServiceConfig(
        backend_database_url=postgres.url,
        auth_database_url=postgres.url,
        bypass_key="profiles-test-key",
        db_timeout_s=10.0,
        agent_step_delay_s=0.02,
    )
    fleet = Fleet(config)
    cut_url = postgres.url_for(database_path.proxy.port)
    try:
        for name, overrides in BACKENDS.items():
            backend_config = config.replace(**overrides)
            if name == "database-cut":
                backend_config = backend_config.replace(backend_database_url=cut_url)
            fleet.backends[name] = _spawn("replica.backend", name, backend_config, logs)
        for name, overrides in AUTHS.items():
            fleet.auths[name] = _spawn("replica.auth", f"auth-{name}", config.replace(**overrides), logs)
        yield fleet
    finally:
        for service in [*fleet.backends.values(), *fleet.auths.values()]:
            service.stop()


# --- small helpers ------------------------------------------------------------------------------


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def get_json(service: Service, path: str, token: str | None = None) -> tuple[int, Any]:
    response = httpx.get(service.url + path, headers=bearer(token), timeout=FRAME_TIMEOUT_S)
    return response.status_code, response.json()


class Socket:
    """A client socket that reads JSON frames with deadlines and reports how the server closed."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def recv(self, timeout_s: float = FRAME_TIMEOUT_S) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s)))

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, done: Callable[[dict[str, Any]], bool], timeout_s: float) -> list[dict[str, Any]]:
        """Frames up to and including the first `done` one, or whatever came within `timeout_s`."""
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                frames.append(await self.recv(remaining))
            except TimeoutError:
                break
            if done(frames[-1]):
                break
        return frames

    async def closed(self) -> tuple[list[dict[str, Any]], int | None, str]:
        """(frames before the close, the server's close code, its reason)."""
        frames: list[dict[str, Any]] = []
        try:
            while True:
                frames.append(await self.recv())
        except ConnectionClosed as closed:
            rcvd = closed.rcvd
            return frames, rcvd.code if rcvd else None, rcvd.reason if rcvd else ""


T = TypeVar("T")


def talk(url: str, token: str | None, script: Callable[[Socket], Awaitable[T]]) -> T:
    """Run `script` on a socket to `url` (Bearer `token`) and return what it returns."""

    async def run() -> T:
        async with connect(url, additional_headers=bearer(token)) as ws:
            return await script(Socket(ws))

    return asyncio.run(run())


def user_message(content: str, thread_id: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"content": content}
    if thread_id:
        payload["thread_id"] = thread_id
    return {"type": "user_message", "payload": payload}


def is_final(frame: dict[str, Any]) -> bool:
    """The turn's last frame: the payload duplicate (aebb16f) or the only agent_completed."""
    if event_type(frame) != ServerType.AGENT_COMPLETED:
        return False
    return frame["type"] == ServerType.SYSTEM_MESSAGE or "payload" in frame or "data" in frame


def non_heartbeat(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] != ServerType.HEARTBEAT]


def stored(fleet: Fleet, service: Service, thread_id: str, token: str | None = None) -> MessagesPage:
    status, body = get_json(service, f"/api/threads/{thread_id}/messages", token or fleet.token())
    assert status == 200, body
    return MessagesPage.model_validate(body)


# --- health, per profile ------------------------------------------------------------------------


class TestHealth:
    def test_legacy_health_is_rich(self, fleet: Fleet) -> None:
        status, body = get_json(fleet.backend("legacy"), "/health")
        assert (status, body["status"], body["service"]) == (200, "healthy", BACKEND_SERVICE)

    def test_legacy_ready_reports_core_db(self, fleet: Fleet) -> None:
        status, body = get_json(fleet.backend("legacy"), "/health/ready")
        assert (status, body["status"], body["core_db"]) == (200, "ready", "connected")

    def test_legacy_ws_health_is_200(self, fleet: Fleet) -> None:
        status, body = get_json(fleet.backend("legacy"), "/ws/health")
        assert (status, body["status"]) == (200, "healthy")

    @pytest.mark.parametrize("profile", ["aebb16f", "head"])
    @pytest.mark.parametrize("path", ["/health", "/health/", "/health/live", "/health/startup"])
    def test_health_is_status_ok_and_nothing_else(self, fleet: Fleet, profile: str, path: str) -> None:
        assert get_json(fleet.backend(profile), path) == (200, {"status": "ok"})

    @pytest.mark.parametrize("profile", ["aebb16f", "head"])
    def test_ready_is_status_ready_only(self, fleet: Fleet, profile: str) -> None:
        assert get_json(fleet.backend(profile), "/health/ready") == (200, {"status": "ready"})

    @pytest.mark.parametrize("profile", ["legacy", "aebb16f", "head"])
    def test_database_health_is_connected(self, fleet: Fleet, profile: str) -> None:
        status, body = get_json(fleet.backend(profile), "/health/database")
        assert (status, body["status"], body["connected"]) == (200, "healthy", True)
        assert body["pool_status"] and body["timestamp"]

    @pytest.mark.parametrize("profile", ["aebb16f", "head"])
    @pytest.mark.parametrize("path", ["/ws/health", "/ws"])
    def test_plain_get_under_ws_is_the_services_own_503(self, fleet: Fleet, profile: str, path: str) -> None:
        """The real readiness middleware's quirk: refused although the service and its sockets work."""
        status, body = get_json(fleet.backend(profile), path)
        assert (status, body["error"], body["message"]) == (503, "service_not_ready", WS_NOT_READY)

    def test_legacy_auth_health(self, fleet: Fleet) -> None:
        status, body = get_json(fleet.auth("legacy"), "/health")
        assert (status, body["status"], body["service"], body["environment"]) == (
            200,
            "healthy",
            AUTH_SERVICE,
            "replica",
        )

    def test_auth_health_says_staging_and_connected(self, fleet: Fleet) -> None:
        status, body = get_json(fleet.auth("aebb16f"), "/health")
        fields = (body["status"], body["service"], body["database_status"], body["environment"])
        assert (status, fields) == (200, ("healthy", AUTH_SERVICE, "connected", "staging"))

    def test_bypass_login_still_works(self, fleet: Fleet) -> None:
        response = httpx.post(
            f"{fleet.auth('aebb16f').url}/auth/e2e/test-auth",
            headers={"X-E2E-Bypass-Key": "profiles-test-key"},
        )
        assert (response.status_code, response.json()["user"]["id"]) == (200, USER_ID)


# --- REST errors --------------------------------------------------------------------------------


class TestErrors:
    def test_legacy_missing_thread_is_detail_404(self, fleet: Fleet) -> None:
        status, body = get_json(fleet.backend("legacy"), "/api/threads/thread_none/messages", fleet.token())
        assert (status, body) == (404, {"detail": "Thread not found"})

    @pytest.mark.parametrize("profile", ["aebb16f", "head"])
    def test_missing_thread_is_the_error_envelope(self, fleet: Fleet, profile: str) -> None:
        status, body = get_json(fleet.backend(profile), "/api/threads/thread_none/messages", fleet.token())
        envelope = ErrorEnvelope.model_validate(body)
        assert (status, is_error_envelope(body), envelope.error_code, envelope.message) == (
            404,
            True,
            "DB_RECORD_NOT_FOUND",
            "Thread not found",
        )
        assert envelope.details == {"status_code": 404} and envelope.trace_id and envelope.request_id
        assert body["stack_trace"] and isinstance(body["line_number"], int) and body["source_file"]

    def test_missing_token_stays_detail_401(self, fleet: Fleet) -> None:
        status, body = get_json(fleet.backend("aebb16f"), "/api/threads")
        assert (status, body) == (401, {"detail": "Not authenticated"})


# --- one chat turn, per profile -----------------------------------------------------------------


@dataclass(frozen=True)
class ProfileTurn:
    opening: list[dict[str, Any]]  # what the server sent before the first client frame
    frames: list[dict[str, Any]]  # everything after the user message, up to the turn's last frame

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if event_type(f) == kind]


async def _opening(sock: Socket, count: int) -> list[dict[str, Any]]:
    return [await sock.recv() for _ in range(count)]


def _turn(service: Service, token: str, opening_frames: int) -> ProfileTurn:
    async def script(sock: Socket) -> ProfileTurn:
        opening = await _opening(sock, opening_frames)
        await sock.send(user_message(QUESTION))
        return ProfileTurn(opening, await sock.until(is_final, FRAME_TIMEOUT_S))

    return talk(service.ws_url, token, script)


@pytest.fixture(scope="class")
def legacy_turn(fleet: Fleet) -> ProfileTurn:
    return _turn(fleet.backend("legacy"), fleet.token(), opening_frames=1)


class TestLegacyTurn:
    def test_the_five_events_in_the_bridge_shape(self, legacy_turn: ProfileTurn) -> None:
        assert [f["type"] for f in legacy_turn.frames] == list(GOLDEN_PATH_EVENTS)
        assert all("data" in f for f in legacy_turn.frames)

    def test_stored_contents_are_plain_strings(self, fleet: Fleet, legacy_turn: ProfileTurn) -> None:
        page = stored(fleet, fleet.backend("legacy"), legacy_turn.frames[-1]["thread_id"])
        answer = answer_text(legacy_turn.frames[-1])
        assert [(m.role, m.content) for m in page.messages] == [("user", QUESTION), ("assistant", answer)]


@pytest.fixture(scope="class")
def aebb16f_turn(fleet: Fleet) -> ProfileTurn:
    return _turn(fleet.backend("aebb16f"), fleet.token(), opening_frames=2)


class TestAebb16fTurn:
    def test_welcome_then_heartbeat(self, aebb16f_turn: ProfileTurn) -> None:
        welcome, heartbeat = aebb16f_turn.opening
        assert (welcome["type"], welcome["data"]["user_id"]) == (
            ServerType.CONNECTION_ESTABLISHED,
            "e2e-e2e-...",
        )
        assert heartbeat["type"] == ServerType.HEARTBEAT
        assert heartbeat["data"]["connection_id"] == welcome["data"]["connection_id"]
        assert "stats" in heartbeat["data"]

    def test_events_with_their_duplicates_in_order(self, aebb16f_turn: ProfileTurn) -> None:
        shapes = [(f["type"], "payload" in f) for f in non_heartbeat(aebb16f_turn.frames)]
        assert shapes == [
            (ServerType.AGENT_STARTED, False),
            (ServerType.AGENT_STARTED, True),
            (ServerType.AGENT_THINKING, False),
            (ServerType.TOOL_EXECUTING, False),
            (ServerType.TOOL_COMPLETED, False),
            (ServerType.AGENT_COMPLETED, False),
            (ServerType.AGENT_COMPLETED, True),
        ]

    def test_a_heartbeat_while_the_agent_thinks(self, aebb16f_turn: ProfileTurn) -> None:
        kinds = [f["type"] for f in aebb16f_turn.frames]
        thinking = kinds.index(ServerType.AGENT_THINKING)
        assert kinds[thinking + 1] == ServerType.HEARTBEAT

    def test_bridge_and_payload_started(self, aebb16f_turn: ProfileTurn) -> None:
        bridge, duplicate = aebb16f_turn.of_type(ServerType.AGENT_STARTED)
        assert bridge["data"]["status"] == "started"
        assert duplicate == {
            "type": "agent_started",
            "payload": {"thread_id": bridge["thread_id"], "run_id": bridge["run_id"]},
        }

    def test_tool_events_carry_tool_name_and_results_at_top_level(self, aebb16f_turn: ProfileTurn) -> None:
        (executing,) = aebb16f_turn.of_type(ServerType.TOOL_EXECUTING)
        (completed,) = aebb16f_turn.of_type(ServerType.TOOL_COMPLETED)
        assert executing["tool_name"] == completed["tool_name"] == "thread_history"
        assert isinstance(completed["results"], dict)

    def test_agent_completed_is_flat_with_a_dict_result(self, aebb16f_turn: ProfileTurn) -> None:
        flat, duplicate = aebb16f_turn.of_type(ServerType.AGENT_COMPLETED)
        assert "data" not in flat and "payload" not in flat
        assert (flat["status"], flat["result"]["response"]) == ("completed", flat["final_response"])
        assert "postgresql" in flat["final_response"].lower() and "2 + 3 = 5" in flat["final_response"]
        assert duplicate == {"type": "agent_completed", "payload": flat["result"]}

    def test_stored_contents_are_text_parts_and_the_answer_a_dict_repr(
        self, fleet: Fleet, aebb16f_turn: ProfileTurn
    ) -> None:
        flat = aebb16f_turn.of_type(ServerType.AGENT_COMPLETED)[0]
        page = stored(fleet, fleet.backend("aebb16f"), flat["thread_id"])
        user, assistant = page.messages
        assert (user.role, user.content) == ("user", text_parts(QUESTION))
        assistant_text = message_text(assistant.content) or ""
        assert (assistant.role, assistant_text) == ("assistant", str(flat["result"]))
        assert ast.literal_eval(assistant_text)["response"] == flat["final_response"]


def test_aliases_without_payload_are_user_messages(fleet: Fleet) -> None:
    """`chat_message` with its text on the frame itself, and a ping answered on the way."""

    async def script(sock: Socket) -> list[dict[str, Any]]:
        await _opening(sock, 2)
        await sock.send({"type": "ping"})
        await sock.send({"type": "chat_message", "text": "What is 4*5?"})
        return await sock.until(is_final, FRAME_TIMEOUT_S)

    frames = talk(fleet.backend("aebb16f").ws_url, fleet.token(), script)
    assert frames[0]["type"] == ServerType.PONG
    assert "4 * 5 = 20" in (answer_text(frames[-1]) or "")


# --- head: the handshake and the system_message wrapper ----------------------------------------


@dataclass(frozen=True)
class HeadSession:
    opening: list[dict[str, Any]]
    before_ack: list[dict[str, Any]]  # frames answering a user message and a ping sent before the ack
    wrong_ack: dict[str, Any]
    complete: dict[str, Any]
    frames: list[dict[str, Any]]  # the turn after the acknowledgement

    @property
    def handshake(self) -> dict[str, Any]:
        return next(f for f in self.opening if f["type"] == ServerType.HANDSHAKE_RESPONSE)


def _head_session(service: Service, token: str | None) -> HeadSession:
    async def script(sock: Socket) -> HeadSession:
        opening = await _opening(sock, 3)
        thread_id = next(f["thread_id"] for f in opening if f["type"] == ServerType.HANDSHAKE_RESPONSE)
        await sock.send(user_message("Sent too early: is this lost?"))
        await sock.send({"type": "ping"})
        before_ack = await sock.until(lambda f: False, DROP_WAIT_S)
        await sock.send({"type": "handshake_acknowledged", "thread_id": "thread_not_mine"})
        wrong_ack = await sock.recv()
        await sock.send({"type": "handshake_acknowledged", "thread_id": thread_id, "timestamp": time.time()})
        complete = await sock.recv()
        await sock.send(user_message(QUESTION))
        frames = await sock.until(is_final, FRAME_TIMEOUT_S)
        return HeadSession(opening, before_ack, wrong_ack, complete, frames)

    return talk(service.ws_url, token, script)


@pytest.fixture(scope="class")
def head(fleet: Fleet) -> HeadSession:
    return _head_session(fleet.backend("head"), fleet.token())


class TestHead:
    def test_welcome_then_handshake_then_heartbeat(self, head: HeadSession) -> None:
        assert [f["type"] for f in head.opening] == [
            ServerType.CONNECTION_ESTABLISHED,
            ServerType.HANDSHAKE_RESPONSE,
            ServerType.HEARTBEAT,
        ]

    def test_handshake_response_fields(self, head: HeadSession) -> None:
        offer = head.handshake
        assert offer["thread_id"] and offer["run_id"] and offer["request_id"] and offer["message"]
        assert offer["session_token"].startswith("sess_") and len(offer["session_token"]) > 20

    def test_a_message_before_the_ack_is_dropped(self, head: HeadSession) -> None:
        """Only the ping is answered; no agent event within DROP_WAIT_S."""
        assert [f["type"] for f in non_heartbeat(head.before_ack)] == [ServerType.PONG]

    def test_an_ack_with_the_wrong_thread_is_an_error(self, head: HeadSession) -> None:
        assert (head.wrong_ack["type"], head.wrong_ack["code"]) == (ServerType.ERROR, "HANDSHAKE_MISMATCH")

    def test_the_right_ack_completes_the_handshake(self, head: HeadSession) -> None:
        assert (head.complete["type"], head.complete["thread_id"]) == (
            ServerType.HANDSHAKE_COMPLETE,
            head.handshake["thread_id"],
        )

    def test_the_five_events_wrapped_as_system_messages(self, head: HeadSession) -> None:
        events = non_heartbeat(head.frames)
        assert {f["type"] for f in events} == {ServerType.SYSTEM_MESSAGE}
        assert [f["event"] for f in events] == list(GOLDEN_PATH_EVENTS)

    def test_the_turn_runs_in_the_handshakes_thread(self, head: HeadSession) -> None:
        threads = {f["payload"]["thread_id"] for f in non_heartbeat(head.frames)}
        assert threads == {head.handshake["thread_id"]}

    def test_completed_payload_has_final_response_and_dict_result(self, head: HeadSession) -> None:
        payload = head.frames[-1]["payload"]
        assert payload["result"]["response"] == payload["final_response"]
        assert "2 + 3 = 5" in payload["final_response"]

    def test_stored_in_the_handshakes_thread_as_text_parts(self, fleet: Fleet, head: HeadSession) -> None:
        page = stored(fleet, fleet.backend("head"), head.handshake["thread_id"])
        assert [(m.role, message_text(m.content)) for m in page.messages] == [
            ("user", QUESTION),
            ("assistant", str(head.frames[-1]["payload"]["result"])),
        ]


@pytest.fixture(scope="class")
def demo_first(fleet: Fleet) -> HeadSession:
    forged = tokens.mint("not-the-shared-secret-but-long-enough", sub="mallory", email="m@x", permissions=[])
    return _head_session(fleet.backend("head-demo-handshake-first"), forged)


class TestHeadHandshakeFirstInDemoMode:
    def test_handshake_response_comes_before_the_welcome(self, demo_first: HeadSession) -> None:
        assert [f["type"] for f in demo_first.opening] == [
            ServerType.HANDSHAKE_RESPONSE,
            ServerType.CONNECTION_ESTABLISHED,
            ServerType.HEARTBEAT,
        ]

    def test_a_forged_token_becomes_the_demo_user(self, demo_first: HeadSession) -> None:
        assert demo_first.opening[1]["data"]["user_id"] == "demo-use..."

    def test_the_demo_users_thread_is_not_the_real_users(self, fleet: Fleet, demo_first: HeadSession) -> None:
        path = f"/api/threads/{demo_first.handshake['thread_id']}/messages"
        status, body = get_json(fleet.backend("head-demo-handshake-first"), path, fleet.token())
        assert (status, body["error_code"]) == (404, "DB_RECORD_NOT_FOUND")

    def test_the_turn_still_answers(self, demo_first: HeadSession) -> None:
        assert "2 + 3 = 5" in demo_first.frames[-1]["payload"]["final_response"]


# --- WebSocket defects of the real build --------------------------------------------------------


def _closing(service: Service, token: str | None, first: dict[str, Any] | None = None) -> Any:
    """(frames, close code, reason) of a socket that sends `first` once it is open (if given)."""

    async def script(sock: Socket) -> Any:
        if first is not None:
            await sock.send(first)
        return await sock.closed()

    return talk(service.ws_url, token, script)


@pytest.mark.parametrize("with_token", [True, False])
def test_main_mode_error_before_any_welcome(fleet: Fleet, with_token: bool) -> None:
    frames, code, reason = _closing(fleet.backend("main-mode-error"), fleet.token() if with_token else None)
    (error,) = frames
    assert (error["type"], error["data"]["error_code"], error["data"]["details"]["error_type"]) == (
        ServerType.ERROR_MESSAGE,
        "CONNECTION_ERROR",
        "RecursionError",
    )
    assert (code, reason) == (CloseCode.INTERNAL_ERROR, "main mode error")


@pytest.mark.parametrize("first", [user_message(QUESTION), {"type": "ping"}])
def test_router_defect_ends_the_socket_on_the_first_frame(fleet: Fleet, first: dict[str, Any]) -> None:
    frames, code, reason = _closing(fleet.backend("router-defect"), fleet.token(), first)
    assert [f["type"] for f in frames] == [ServerType.CONNECTION_ESTABLISHED, ServerType.HEARTBEAT]
    assert (code, reason) == (CloseCode.NORMAL, "main cleanup")


def test_router_defect_in_head_counts_the_ack(fleet: Fleet) -> None:
    async def script(sock: Socket) -> Any:
        opening = await _opening(sock, 3)
        thread_id = next(f["thread_id"] for f in opening if f["type"] == ServerType.HANDSHAKE_RESPONSE)
        await sock.send({"type": "handshake_acknowledged", "thread_id": thread_id})
        return await sock.closed()

    frames, code, reason = talk(fleet.backend("router-defect-head").ws_url, fleet.token(), script)
    assert (frames, code, reason) == ([], CloseCode.NORMAL, "main cleanup")


def test_error_mid_turn(fleet: Fleet) -> None:
    async def script(sock: Socket) -> Any:
        await _opening(sock, 2)
        await sock.send(user_message(QUESTION))
        return await sock.closed()

    frames, code, reason = talk(fleet.backend("error-mid-turn").ws_url, fleet.token(), script)
    *events, error = non_heartbeat(frames)
    assert [f["type"] for f in events] == ["agent_started", "agent_started", "agent_thinking"]
    assert (error["type"], error["error_code"], error["error_message"], error["details"]) == (
        ServerType.ERROR_MESSAGE,
        "INTERNAL_ERROR",
        "Agent execution failed",
        {"error_type": "RuntimeError"},
    )
    assert (code, reason) == (CloseCode.INTERNAL_ERROR, "Internal error")


@pytest.mark.parametrize("with_token", [True, False])
def test_readiness_guard_refuses_every_upgrade_with_403(fleet: Fleet, with_token: bool) -> None:
    service = fleet.backend("readiness-guard")
    with pytest.raises(InvalidStatus) as refused:
        talk(service.ws_url, fleet.token() if with_token else None, lambda sock: sock.recv())
    assert refused.value.response.status_code == 403
    assert get_json(service, "/health") == (200, {"status": "ok"})


# --- the database path cut under a running backend ----------------------------------------------


@pytest.fixture(scope="class")
def cut(fleet: Fleet, database_path: CuttableDatabasePath) -> Service:
    service = fleet.backend("database-cut")
    database_path.cut()
    return service


def _assert_database_unavailable(status: int, body: Any) -> None:
    assert (status, is_error_envelope(body)) == (503, True), body
    assert (body["error_code"], body["message"]) == ("SERVICE_UNAVAILABLE", "Database unavailable")


class TestDatabaseCut:
    def test_health_still_ok(self, cut: Service) -> None:
        assert get_json(cut, "/health") == (200, {"status": "ok"})

    @pytest.mark.parametrize("path", ["/health/database", "/health/ready"])
    def test_database_backed_health_answers_the_envelope(self, cut: Service, path: str) -> None:
        _assert_database_unavailable(*get_json(cut, path))

    def test_threads_answer_the_envelope(self, fleet: Fleet, cut: Service) -> None:
        _assert_database_unavailable(*get_json(cut, "/api/threads", fleet.token()))

    def test_chat_reports_agent_error_service_unavailable(self, fleet: Fleet, cut: Service) -> None:
        async def script(sock: Socket) -> list[dict[str, Any]]:
            await _opening(sock, 2)
            await sock.send(user_message(QUESTION))
            return await sock.until(lambda f: f["type"] == ServerType.AGENT_ERROR, FRAME_TIMEOUT_S)

        error = talk(cut.ws_url, fleet.token(), script)[-1]
        assert error["type"] == ServerType.AGENT_ERROR, error
        assert (error["data"]["error_code"], error["data"]["error_message"], error["data"]["status"]) == (
            "SERVICE_UNAVAILABLE",
            "Database unavailable",
            "error",
        )
