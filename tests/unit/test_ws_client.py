"""The chat client (`harness.ws`, `harness.turn`) against scripted WebSocket servers on real loopback sockets.

Each test starts a tiny `websockets` server on 127.0.0.1 (port 0) whose `Script` plays one behaviour of
staging (the aebb16f build, the HEAD handshake, a platform or a gateway in the way), runs the client
against it in `asyncio.run`, and asserts exactly one expected outcome: a pass, or one failure category
(and the decision table's row, `kind`).

Timing: a server that sends no handshake makes the client wait its grace period after the welcome
(`HANDSHAKE_GRACE_S`, 0.5 s) before it asks. Tests where nothing is due in that window shorten it
(`quick_grace`, autouse: speed only); tests whose server sends its handshake or a failure in that
window, or whose subject is the wait itself, request `real_grace` and keep the shipped value (the
handshake or the close ends the wait early, so it costs them nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from contract.frames import ConnectionEstablished, ConnectionEstablishedData, HandshakeResponse
from harness import ws as ws_module
from harness.errors import E2EFailure, InfraFailure, ProductFailure
from harness.taxonomy import Category
from harness.turn import Turn, check_answer, check_events, validate_turn
from harness.ws import HANDSHAKE_GRACE_S, ChatSocket, TokenVia, open_socket

pytestmark = pytest.mark.unit

T = TypeVar("T")
Frame = dict[str, Any] | str | float  # a str is sent verbatim (garbage), a float is a pause (s)
Shape = Literal["data", "payload", "system_message", "flat"]
Close = tuple[int, str]

TOKEN = "unit-secret-token-7f3a9c2e"  # not JWT-shaped: only its registration can mask it
QUESTION = "Which cloud region hosts the staging database?"
ANSWER = "The staging database runs in the us-central1 region."
RESPONSE = {"response": ANSWER, "status": "completed", "execution_time_ms": 42}  # the real response dict
RUN = "run_0f3c"
THREAD = "thread_1_6a1d3e"  # the thread a HEAD handshake offers
WELCOME_USER = "e2e-e2e-..."  # the real server shows the first 8 characters and "..."
SESSION_TOKEN = "sess_Qm9xN3c5VnR5bG9uZ2Vub3VnaA"
LATE_S = 0.8  # a handshake offer this long after the welcome comes after the client's grace
SHORT_S = 0.9  # "a short grace": what a server without a handshake may cost at most
TRAILING_S = 0.1  # a duplicate arriving this long after the turn balanced (inside the settle window)
QUICK_GRACE_S = 0.05
HTML_503 = (
    "<!DOCTYPE html><html lang=en><title>Error 503 (Server Error)!!1</title>"
    "<p>The server encountered a temporary error and could not complete your request.</p></html>"
)


@pytest.fixture
def real_grace() -> None:
    """Keep the shipped grace: the server sends something inside it, or the grace is the subject."""


@pytest.fixture(autouse=True)
def quick_grace(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten the post-welcome handshake grace where the test is not about it (speed only)."""
    if "real_grace" not in request.fixturenames:
        monkeypatch.setattr(ws_module, "HANDSHAKE_GRACE_S", QUICK_GRACE_S)


# ---------------------------------------------------------------------------------------------
# Frames, in every shape the real server sends


def event(kind: str, shape: Shape = "data", **fields: Any) -> dict[str, Any]:
    """An agent event: fields under `data` (bridge), under `payload` (message processing), wrapped
    as HEAD's `system_message`, or flat (the real `agent_completed`)."""
    ids = {"run_id": RUN, "thread_id": THREAD}
    if shape == "data":
        top = {"user_id": "e2e-e2e-test", "agent_name": "supervisor", "timestamp": "2025-09-18T10:00:00Z"}
        return {"type": kind, **ids, **top, "data": fields}
    if shape == "payload":
        return {"type": kind, "payload": {**ids, **fields}}
    if shape == "system_message":
        payload = {**ids, "agent_name": "supervisor", **fields}
        return {"type": "system_message", "event": kind, "payload": payload, "timestamp": time.time()}
    return {"type": kind, **ids, "agent_name": "supervisor", **fields}


def completed(shape: Shape, answer: str = ANSWER) -> dict[str, Any]:
    """agent_completed as each shape carries the answer."""
    response = {**RESPONSE, "response": answer}
    if shape == "data":
        return event("agent_completed", "data", status="completed", result=response)
    if shape == "payload":
        return event("agent_completed", "payload", **response)
    # HEAD's wrapper and the real flat frame: final_response the text, result kept as a dict
    return event("agent_completed", shape, status="completed", final_response=answer, result=response)


def golden(shape: Shape = "data", answer: str = ANSWER) -> list[dict[str, Any]]:
    """The five events of a working turn, in order."""
    return [
        event("agent_started", shape, status="started"),
        event("agent_thinking", shape, reasoning="Looking up the deployment", step_number=1),
        event("tool_executing", shape, tool_name="deployment_lookup", parameters={"env": "staging"}),
        event("tool_completed", shape, tool_name="deployment_lookup", result={"region": "us-central1"}),
        completed(shape, answer),
    ]


def heartbeat() -> dict[str, Any]:
    data = {
        "connection_id": "main_1",
        "timestamp": "2025-09-18T10:00:00Z",
        "stats": {"messages_processed": 1},
    }
    return {"type": "heartbeat", "data": data, "timestamp": time.time()}


def welcome() -> dict[str, Any]:
    data = ConnectionEstablishedData(user_id=WELCOME_USER, connection_id="main_1")
    return ConnectionEstablished(data=data).model_dump(mode="json")


def handshake_offer(thread_id: str = THREAD, session_token: str = SESSION_TOKEN) -> dict[str, Any]:
    frame = HandshakeResponse(
        thread_id=thread_id, run_id=RUN, request_id="req_1", session_token=session_token
    )
    return frame.model_dump(mode="json")


def error_frame(code: str, message: str, *, under_data: bool = False, **extra: Any) -> dict[str, Any]:
    """An `error_message` frame, its fields at top level or (aebb16f main mode) under `data`."""
    fields = {"error_code": code, "error_message": message, **extra}
    return {"type": "error_message", "data": fields} if under_data else {"type": "error_message", **fields}


MAIN_MODE_ERROR = error_frame(
    "CONNECTION_ERROR",
    "WebSocket main mode failed: maximum recursion depth exceeded",
    under_data=True,
    details={"error_type": "RecursionError"},
)
AUTH_FAILED = error_frame(
    "AUTH_FAILED", "Authentication failed", details={"error_type": "AuthenticationError"}
)
DATABASE_DOWN = event(
    "agent_error",
    status="error",
    error_code="SERVICE_UNAVAILABLE",
    error_message="Database unavailable",
    error_context="OperationalError",
    message="Agent failed",
)


# ---------------------------------------------------------------------------------------------
# Scripted servers


@dataclass
class Script:
    """One behaviour of staging's chat socket, played by a loopback server.

    Opening: `before` (frames before the welcome), the welcome (unless `welcome` is False), `after`,
    then `close_at_open` ends it there ("abort": the connection drops without a close frame). A
    handshake (`handshake` before|after the welcome, `handshake_delay_s` after it) makes the server
    drop every client message before the acknowledgement, as HEAD does; `handshake_complete`
    answers the acknowledgement. A user message then gets `frames`, then `end`. `on_first_frame`
    closes the socket on the first client frame (the aebb16f router defect). What the server
    received, and what it dropped, is kept for the test.
    """

    frames: Sequence[Frame] = ()
    end: Close | Literal["abort"] | None = None
    before: Sequence[Frame] = ()
    welcome: bool = True
    after: Sequence[Frame] = ()
    close_at_open: Close | Literal["abort"] | None = None
    handshake: Literal["before", "after"] | None = None
    handshake_frame: dict[str, Any] = field(default_factory=handshake_offer)
    handshake_delay_s: float = 0.0
    handshake_complete: bool = True
    on_first_frame: Close | None = None
    on_ack: Sequence[Frame] = ()  # frames right after the acknowledgement (then `end_on_ack`)
    end_on_ack: Close | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def user_messages(self) -> list[dict[str, Any]]:
        return [f for f in self.received if f.get("type") == "user_message"]

    async def serve(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._play(ws)

    async def _play(self, ws: ServerConnection) -> None:
        await send_all(ws, self.before)
        if self.handshake == "before":
            await send_all(ws, [self.handshake_frame])
        if self.welcome:
            await send_all(ws, [welcome()])
        await send_all(ws, self.after)
        if await finish(ws, self.close_at_open):
            return
        if self.handshake == "after":
            await asyncio.sleep(self.handshake_delay_s)
            await send_all(ws, [self.handshake_frame])
        acknowledged = self.handshake is None
        async for raw in ws:
            frame = json.loads(raw)
            self.received.append(frame)
            if self.on_first_frame is not None:
                await ws.close(*self.on_first_frame)
                return
            if frame.get("type") == "handshake_acknowledged":
                acknowledged = True
                if self.handshake_complete:
                    await send_all(ws, [{"type": "handshake_complete", "thread_id": frame.get("thread_id")}])
                await send_all(ws, self.on_ack)
                if await finish(ws, self.end_on_ack):
                    return
            elif not acknowledged:
                self.dropped.append(frame)  # HEAD: lost, sent before the acknowledgement
            elif frame.get("type") == "user_message":
                await send_all(ws, self.frames)
                if await finish(ws, self.end):
                    return


async def send_all(ws: ServerConnection, frames: Sequence[Frame]) -> None:
    for frame in frames:
        if isinstance(frame, float):
            await asyncio.sleep(frame)
        else:
            await ws.send(frame if isinstance(frame, str) else json.dumps(frame))


async def finish(ws: ServerConnection, how: Close | Literal["abort"] | None) -> bool:
    """End the socket as scripted: True if it was ended."""
    if how is None:
        return False
    if how == "abort":
        ws.transport.abort()  # no close frame: the client sees 1006
    else:
        await ws.close(*how)
    return True


def reject(status: int, body: str, content_type: str) -> Callable[[ServerConnection, Request], Response]:
    """A `process_request` hook that refuses the upgrade with this status and body."""

    def process_request(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(status, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
        return response

    return process_request


def echo_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
    """Pick the token-bearing entry and echo it back, token included, as the real server does."""
    return offered[0] if offered else None


def against(script: Script, client: Callable[[str], Awaitable[T]], **serve_kwargs: Any) -> T:
    """Run `client(url)` against a server playing `script` on a free loopback port."""

    async def main() -> T:
        async with serve(script.serve, "127.0.0.1", 0, **serve_kwargs) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            return await client(f"ws://127.0.0.1:{port}/ws")

    return asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# The client's side


@dataclass
class Chat:
    """An opened socket (welcome, handshake) and the turn one question produced."""

    socket: ChatSocket
    turn: Turn
    open_s: float
    ask_s: float


async def open_(
    url: str, *, via: TokenVia = "header", open_timeout_s: float = 2.0, deadline_s: float = 3.0
) -> ChatSocket:
    return await open_socket(url, TOKEN, via=via, open_timeout_s=open_timeout_s, deadline_s=deadline_s)


def chat(script: Script, *, deadline_s: float = 3.0, via: TokenVia = "header", **serve_kwargs: Any) -> Chat:
    """Open a socket against `script`, ask QUESTION once, close."""

    async def client(url: str) -> Chat:
        began = time.monotonic()
        chat_socket = await open_(url, via=via)
        opened = time.monotonic()
        try:
            turn = await chat_socket.ask(QUESTION, deadline_s)
        finally:
            await chat_socket.close()
        return Chat(chat_socket, turn, opened - began, time.monotonic() - opened)

    return against(script, client, **serve_kwargs)


def everything_kept(result: Any, exc: E2EFailure) -> dict[str, str]:
    """Every place a chat's text is kept: what a secret must never reach."""
    return {
        "message": str(exc),
        "failure evidence": json.dumps(exc.evidence),
        "turn transcript": result.turn.transcript_json(),
        "socket evidence": json.dumps(result.socket.evidence.to_dict()),
        "welcome": json.dumps(result.socket.welcome),
    }


def failure(call: Callable[[], object]) -> E2EFailure:
    with pytest.raises(E2EFailure) as info:
        call()
    return info.value


def open_failure(script: Script, **serve_kwargs: Any) -> E2EFailure:
    """The classified failure `open_socket` raises against `script`."""
    return failure(lambda: against(script, open_, **serve_kwargs))


def turn_failure(script: Script, check: Callable[[Turn, str], None] = validate_turn) -> E2EFailure:
    """The classified failure `check` raises on the turn played by `script`."""
    turn = chat(script).turn
    return failure(lambda: check(turn, QUESTION))


def golden_failure(frames: Sequence[Frame]) -> str:
    """The message of a turn that fails the golden path (and only as such)."""
    exc = turn_failure(Script(frames))
    assert isinstance(exc, ProductFailure), exc
    assert exc.category == Category.PRODUCT_GOLDEN_PATH, exc
    return exc.detail


def sent_types(script: Script) -> list[str]:
    return [str(f.get("type")) for f in script.received]


# ---------------------------------------------------------------------------------------------
# Turns that pass, in every event shape


@pytest.mark.parametrize("shape", ["data", "payload", "system_message"])
def test_golden_turn_passes_in_every_event_shape(shape: Shape) -> None:
    result = chat(Script(golden(shape)))
    validate_turn(result.turn, QUESTION)
    assert result.turn.types == [
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_completed",
    ]
    assert (result.turn.answer, result.turn.run_id, result.turn.ended_by) == (ANSWER, RUN, "completed")
    assert result.socket.welcome_user == WELCOME_USER


def test_aebb16f_mix_of_bridge_payload_and_flat_frames_passes() -> None:
    """Bridge events, payload-shaped duplicates of agent_started/agent_completed, and the real flat
    agent_completed (final_response text, result a dict), as the aebb16f build sends them."""
    started, thinking, executing, tool_done, _ = golden("data")
    frames: list[Frame] = [
        started,
        event("agent_started", "payload"),
        thinking,
        heartbeat(),
        executing,
        tool_done,
        completed("flat"),
        TRAILING_S,
        completed("payload"),
    ]
    turn = chat(Script(frames)).turn
    validate_turn(turn, QUESTION)
    assert turn.answer == ANSWER and turn.ended_by == "completed"
    assert turn.types.count("agent_started") == 2 and turn.types.count("agent_completed") == 2


def test_flat_agent_completed_answer_is_its_final_response() -> None:
    """The real flat agent_completed: the text in `final_response`, `result` a dict without text."""
    result = {"status": "completed", "execution_time_ms": 42, "tools_used": ["deployment_lookup"]}
    frames = [*golden()[:4], event("agent_completed", "flat", final_response=ANSWER, result=result)]
    turn = chat(Script(frames)).turn
    validate_turn(turn, QUESTION)
    assert turn.answer == ANSWER


def test_heartbeats_anywhere_are_not_events_and_do_not_break_the_order() -> None:
    interleaved: list[Frame] = [heartbeat()]
    for frame in golden():
        interleaved += [frame, heartbeat()]
    script = Script(interleaved, before=[heartbeat()], after=[heartbeat()])
    turn = chat(script).turn
    validate_turn(turn, QUESTION)
    assert "heartbeat" not in turn.types and len(turn.events) == 5


def test_the_last_agent_completed_carrying_an_answer_wins() -> None:
    frames: list[Frame] = [
        *golden()[:4],
        completed("payload", answer="An interim note while the staging lookup runs."),
        TRAILING_S,  # the final answer trails the first (already balanced) agent_completed
        completed("flat"),
        event("agent_completed", "data", status="completed"),  # a duplicate without an answer
    ]
    turn = chat(Script(frames)).turn
    validate_turn(turn, QUESTION)
    assert turn.answer == ANSWER


def test_a_blank_duplicate_after_the_answer_does_not_erase_it() -> None:
    frames = [
        *golden()[:4],
        completed("flat"),
        event("agent_completed", "data", status="completed", result=""),
    ]
    turn = chat(Script(frames)).turn
    validate_turn(turn, QUESTION)
    assert turn.answer == ANSWER


def test_non_json_frames_are_recorded_and_the_turn_still_judged() -> None:
    frames: list[Frame] = list(golden())
    frames.insert(2, "<<not json>>")
    turn = chat(Script(frames)).turn
    validate_turn(turn, QUESTION)
    assert turn.garbage == ["<<not json>>"]


# ---------------------------------------------------------------------------------------------
# The HEAD handshake


@pytest.mark.parametrize("order", ["after", "before"])
def test_handshake_is_acknowledged_and_its_thread_used(
    order: Literal["before", "after"], real_grace: None
) -> None:
    script = Script(golden("system_message"), handshake=order)
    result = chat(script)
    validate_turn(result.turn, QUESTION)
    ack = script.received[0]
    assert (ack["type"], ack["thread_id"]) == ("handshake_acknowledged", THREAD)
    assert [m["payload"]["thread_id"] for m in script.user_messages()] == [THREAD]
    assert result.socket.handshake_thread_id == THREAD and result.turn.thread_id == THREAD
    assert script.dropped == [] and not result.turn.resent


def test_server_dropping_messages_before_the_ack_still_answers(real_grace: None) -> None:
    """HEAD loses every message sent before the acknowledgement; here it also sends no
    handshake_complete and a heartbeat right after its offer: the client still waits its settle."""
    script = Script(
        golden("system_message"), handshake="after", handshake_complete=False, after=[heartbeat()]
    )
    turn = chat(script).turn
    validate_turn(turn, QUESTION)
    assert script.dropped == [] and sent_types(script) == ["handshake_acknowledged", "user_message"]


def test_late_handshake_is_acknowledged_and_the_question_resent(real_grace: None) -> None:
    """The offer arrives after the grace (the question already sent, and lost): ack, then send again."""
    assert LATE_S > HANDSHAKE_GRACE_S + 0.2, "the client's grace is no longer short"
    script = Script(golden("system_message"), handshake="after", handshake_delay_s=LATE_S)
    result = chat(script)
    validate_turn(result.turn, QUESTION)
    assert result.turn.resent and result.turn.thread_id == THREAD
    assert sent_types(script) == ["user_message", "handshake_acknowledged", "user_message"]
    assert [m["payload"]["content"] for m in script.dropped] == [QUESTION]
    assert script.received[-1]["payload"]["thread_id"] == THREAD


def test_no_handshake_costs_only_the_short_grace(real_grace: None) -> None:
    script = Script(golden())
    result = chat(script)
    validate_turn(result.turn, QUESTION)
    assert HANDSHAKE_GRACE_S <= result.open_s < min(SHORT_S, HANDSHAKE_GRACE_S + 0.4)
    assert result.socket.handshake_thread_id is None and not result.turn.resent
    assert sent_types(script) == ["user_message"]
    assert "thread_id" not in script.user_messages()[0]["payload"]


def test_handshake_session_token_never_leaves_the_client(real_grace: None) -> None:
    """Masked by field name in the handshake frame, and by registration where the server echoes it."""
    session_token = "sess_" + secrets.token_urlsafe(18)
    leak = event("agent_error", status="error", error_message=f"session {session_token} expired")
    script = Script(
        [*golden()[:2], leak], handshake="after", handshake_frame=handshake_offer(session_token=session_token)
    )
    result = chat(script)
    exc = failure(lambda: validate_turn(result.turn, QUESTION))
    kept = everything_kept(result, exc)
    assert exc.category == Category.PRODUCT_GOLDEN_PATH
    assert [where for where, text in kept.items() if session_token in text] == []
    handshake_seen = next(
        t for t in result.socket.evidence.transcript if t["frame"].get("type") == "handshake_response"
    )
    assert handshake_seen["frame"]["session_token"] == "***REDACTED***"


def test_handshake_without_thread_id_is_a_contract_failure(real_grace: None) -> None:
    offer = {"type": "handshake_response", "session_token": SESSION_TOKEN, "message": "Handshake initiated"}
    exc = open_failure(Script(handshake="after", handshake_frame=offer))
    assert exc.category == Category.PRODUCT_CONTRACT and "without a thread_id" in exc.detail


# ---------------------------------------------------------------------------------------------
# Failures while opening


def test_main_mode_defect_is_the_product_not_infra() -> None:
    """aebb16f as shipped: an error_message (CONNECTION_ERROR, RecursionError) right after the upgrade,
    then close 1011 "main mode error": the product's code, on a healthy infrastructure."""
    exc = open_failure(
        Script(before=[MAIN_MODE_ERROR], welcome=False, close_at_open=(1011, "main mode error"))
    )
    assert isinstance(exc, ProductFailure), exc
    assert (exc.category, exc.kind) == (Category.PRODUCT_GOLDEN_PATH, "service_error")
    assert "CONNECTION_ERROR" in exc.detail and exc.evidence["close_code"] == 1011


DOWN = error_frame("SERVICE_UNAVAILABLE", "Database unavailable", details={"error_type": "OperationalError"})
DOWN_WHILE_OPENING = {
    # The HEAD server on a dead database (replica/chat.py `_offer_handshake`): the welcome, then
    # (instead of the handshake offer) the error frame and close 1011, inside the client's grace.
    "in-the-grace": Script(after=[DOWN], close_at_open=(1011, "Internal error")),
    # The same failure answering the acknowledgement, inside the client's post-ack settle.
    "after-the-ack": Script(
        handshake="after", handshake_complete=False, on_ack=[DOWN], end_on_ack=(1011, "Internal error")
    ),
}


@pytest.mark.parametrize("when", list(DOWN_WHILE_OPENING))
def test_database_down_while_opening_is_infra_dependency(when: str, real_grace: None) -> None:
    """A frame read while opening (held for the turn) still explains the close that follows it."""
    exc = open_failure(DOWN_WHILE_OPENING[when])
    assert isinstance(exc, InfraFailure), exc
    assert (exc.category, exc.kind) == (Category.INFRA_DEPENDENCY, "dependency_down")


def test_database_down_before_the_ack_is_sent_is_infra_dependency() -> None:
    """HEAD with the offer before the welcome, then the failure at once (before the ack goes out)."""
    script = Script(handshake="before", after=[DOWN], close_at_open=(1011, "Internal error"))
    exc = open_failure(script)
    assert (exc.category, exc.kind) == (Category.INFRA_DEPENDENCY, "dependency_down"), exc


def test_database_down_before_the_welcome_is_infra_dependency() -> None:
    """The same frame where the client does read it (instead of the welcome): classified right."""
    exc = open_failure(Script(before=[DOWN], welcome=False, close_at_open=(1011, "Internal error")))
    assert isinstance(exc, InfraFailure), exc
    assert (exc.category, exc.kind) == (Category.INFRA_DEPENDENCY, "dependency_down")


@pytest.mark.parametrize(
    "script",
    [
        Script(before=[AUTH_FAILED], welcome=False, close_at_open=(1008, "Authentication failed")),
        Script(welcome=False, close_at_open=(1008, "Policy violation")),
        Script(before=[AUTH_FAILED], welcome=False, close_at_open=(1000, "")),
    ],
    ids=["auth-failed-frame-then-1008", "bare-1008", "auth-failed-frame-then-1000"],
)
def test_auth_refusal_at_connect_is_product_auth(script: Script) -> None:
    exc = open_failure(script)
    assert isinstance(exc, ProductFailure), exc
    assert (exc.category, exc.kind) == (Category.PRODUCT_AUTH, "auth_refused")


@pytest.mark.parametrize("status", [401, 403])
def test_upgrade_refused_401_or_403_is_product_auth(status: int) -> None:
    exc = open_failure(Script(), process_request=reject(status, "Forbidden", "text/plain"))
    assert isinstance(exc, ProductFailure), exc
    assert (exc.category, exc.evidence["status"]) == (Category.PRODUCT_AUTH, status)


def test_upgrade_refused_503_html_is_infra_gateway_with_the_page() -> None:
    exc = open_failure(Script(), process_request=reject(503, HTML_503, "text/html; charset=UTF-8"))
    assert isinstance(exc, InfraFailure), exc
    assert (exc.category, exc.kind) == (Category.INFRA_GATEWAY, "gateway_page")
    assert (exc.evidence["status"], exc.evidence["body_snippet"]) == (503, HTML_503)


def test_upgrade_refused_503_with_the_services_startup_json_is_infra_starting() -> None:
    body = json.dumps({"status": "unhealthy", "message": "Startup in progress", "startup_in_progress": True})
    exc = open_failure(Script(), process_request=reject(503, body, "application/json"))
    assert isinstance(exc, InfraFailure), exc
    assert (exc.category, exc.kind) == (Category.INFRA_STARTING, "service_starting")


def test_upgrade_never_answered_is_infra_timeout_at_the_open_timeout() -> None:
    """TCP accepted, the HTTP upgrade never answered (a hung load balancer)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    async def main() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            await open_(f"ws://127.0.0.1:{port}/ws", open_timeout_s=0.3)

    began = time.monotonic()
    exc = failure(lambda: asyncio.run(main()))
    assert isinstance(exc, InfraFailure), exc
    assert (exc.category, exc.kind) == (Category.INFRA_TIMEOUT, "no_answer_timeout")
    assert time.monotonic() - began < 1.0


def test_no_welcome_at_all_fails_at_the_open_deadline() -> None:
    began = time.monotonic()
    exc = failure(lambda: against(Script(welcome=False), lambda url: open_(url, deadline_s=0.5)))
    assert (exc.category, exc.kind) == (Category.PRODUCT_CONTRACT, "no_welcome")
    assert "no connection_established within the deadline" in exc.detail
    assert time.monotonic() - began < 1.0


def test_refused_port_is_infra_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: the connection is refused
        exc = failure(lambda: asyncio.run(open_(f"ws://127.0.0.1:{port}/ws")))
    assert isinstance(exc, InfraFailure), exc
    assert (exc.category, exc.kind) == (Category.INFRA_UNREACHABLE, "refused")


def test_drop_right_after_the_upgrade_is_infra_ws() -> None:
    exc = open_failure(Script(welcome=False, close_at_open="abort"))
    assert (exc.category, exc.kind, exc.evidence["close_code"]) == (Category.INFRA_WS, "platform_close", 1006)


def test_orderly_close_before_the_welcome_is_the_product() -> None:
    exc = open_failure(Script(welcome=False, close_at_open=(1000, "")))
    assert isinstance(exc, ProductFailure), exc
    assert (exc.category, exc.kind) == (Category.PRODUCT_GOLDEN_PATH, "closed_early")


@pytest.mark.parametrize(
    ("first", "said"),
    [
        ("<html>frontend</html>", "a non-JSON frame before connection_established"),
        (
            {"type": "agent_started", "data": {}},
            "first frame was 'agent_started', not connection_established",
        ),
        ({"hello": "world"}, "a non-JSON frame before connection_established"),  # no `type`: not a frame
    ],
    ids=["not-json", "an-event", "no-type"],
)
def test_first_frame_not_the_welcome_is_product_contract(first: Frame, said: str) -> None:
    """Judged on that frame, at once (the server keeps the socket open: no wait for the deadline)."""
    exc = open_failure(Script(before=[first], welcome=False))
    assert isinstance(exc, ProductFailure), exc
    assert (exc.category, exc.kind) == (Category.PRODUCT_CONTRACT, "no_welcome")
    assert said in exc.detail and exc.evidence["elapsed_s"] < 1.0


# ---------------------------------------------------------------------------------------------
# Failures during the turn


def test_router_defect_close_1000_on_the_first_frame_fails_the_golden_path() -> None:
    """aebb16f with its import fixed: the welcome, then the first client frame ends the socket with
    close 1000 "main cleanup" and no event (the router's TypeError)."""
    exc = turn_failure(Script(on_first_frame=(1000, "main cleanup")), check_events)
    assert isinstance(exc, ProductFailure), exc
    assert (exc.category, exc.kind) == (Category.PRODUCT_GOLDEN_PATH, "closed_early")
    assert "main cleanup" in exc.detail and "(no events)" in exc.detail


def test_error_frame_and_1011_mid_turn_is_the_product() -> None:
    frames = [*golden()[:2], error_frame("INTERNAL_ERROR", "Agent execution failed")]
    exc = turn_failure(Script(frames, end=(1011, "Internal error")))
    assert isinstance(exc, ProductFailure), exc
    assert (exc.category, exc.kind) == (Category.PRODUCT_GOLDEN_PATH, "service_error")
    assert "INTERNAL_ERROR" in exc.detail


def test_agent_error_naming_the_database_down_is_infra_dependency() -> None:
    """The error event ends the turn at once (the socket stays open): no wait for the deadline."""
    result = chat(Script([*golden()[:2], DATABASE_DOWN]))
    exc = failure(lambda: validate_turn(result.turn, QUESTION))
    assert isinstance(exc, InfraFailure), exc
    assert (exc.category, exc.kind) == (Category.INFRA_DEPENDENCY, "dependency_down")
    assert result.turn.ended_by == "error" and result.ask_s < 1.0


@pytest.mark.parametrize(
    "end",
    [
        "abort",
        (1001, "Going away"),
        (1012, "Service restart"),
        (1013, "Try again later"),
        (1014, "Bad gateway"),
    ],
    ids=["1006-drop", "1001-going-away", "1012", "1013", "1014"],
)
def test_platform_ending_the_socket_mid_turn_is_infra_ws(end: Close | Literal["abort"]) -> None:
    script = Script(golden()[:2], end=end)
    turn = chat(script).turn
    exc = failure(lambda: validate_turn(turn, QUESTION))
    assert isinstance(exc, InfraFailure), exc
    assert (exc.category, exc.kind) == (Category.INFRA_WS, "platform_close")
    assert turn.close_code == (1006 if end == "abort" else end[0])


def test_missing_tool_completed_is_named() -> None:
    frames = [f for f in golden() if f["type"] != "tool_completed"]
    assert "missing event(s): tool_completed" in golden_failure(frames)


def test_out_of_order_events_are_named() -> None:
    started, thinking, *rest = golden()
    detail = golden_failure([thinking, started, *rest])
    assert "order violated: agent_thinking (#1) arrived before agent_started (#2)" in detail
    assert "sequence: agent_thinking > agent_started > tool_executing" in detail


def test_agent_completed_without_an_answer_is_named() -> None:
    frames = [*golden()[:4], event("agent_completed", status="completed")]
    assert "agent_completed without a readable answer" in golden_failure(frames)


@pytest.mark.parametrize("shape", ["data", "payload", "flat"])
def test_empty_answer_is_named(shape: Shape) -> None:
    assert "agent_completed carried an empty answer" in golden_failure(golden(shape, answer="  \n "))


def test_answer_not_about_the_question_is_named() -> None:
    assert "the answer is not about the question" in golden_failure(
        golden(answer="Lorem ipsum dolor sit amet.")
    )


def test_never_completing_fails_at_the_deadline_not_later() -> None:
    keep_alive: list[Frame] = [heartbeat(), 0.3] * 6  # heartbeats for 1.8 s do not extend the 1 s deadline
    result = chat(Script([*golden()[:2], *keep_alive]), deadline_s=1.0)
    exc = failure(lambda: validate_turn(result.turn, QUESTION))
    assert 1.0 <= result.ask_s < 1.5 and result.turn.ended_by == "deadline"
    assert exc.category == Category.PRODUCT_GOLDEN_PATH
    assert "no answer within 1s while the connection stayed up" in exc.detail


@pytest.mark.parametrize("end", [(1000, "Normal closure"), (1001, "Going away")])
def test_a_close_after_a_complete_turn_ends_nothing(end: Close) -> None:
    turn = chat(Script(golden(), end=end)).turn
    validate_turn(turn, QUESTION)
    assert (turn.ended_by, turn.close_code) == ("completed", end[0])


def test_socket_failure_is_the_one_reason_for_the_missing_answer() -> None:
    """check_answer on a turn the platform cut short reports that cause, not "no answer"."""
    exc = turn_failure(Script(golden()[:2], end=(1013, "Try again later")), check_answer)
    assert (exc.category, exc.kind) == (Category.INFRA_WS, "platform_close")


# ---------------------------------------------------------------------------------------------
# The token


def test_subprotocol_token_echoed_back_never_appears_anywhere() -> None:
    """The server echoes `jwt.<token>`, then repeats it in its frames; nothing kept holds it."""
    echoed = f"jwt.{TOKEN}"
    script = Script(
        [*golden()[:2], event("agent_error", error_message=f"bad protocol {echoed} (token {TOKEN})")],
        after=[{"type": "heartbeat", "data": {"protocol": echoed}}],
    )
    result = chat(script, via="subprotocol", select_subprotocol=echo_subprotocol)
    exc = failure(lambda: validate_turn(result.turn, QUESTION))
    kept = everything_kept(result, exc)
    assert result.socket.evidence.subprotocol == "jwt.***REDACTED***"
    assert exc.category == Category.PRODUCT_GOLDEN_PATH
    assert [where for where, text in kept.items() if TOKEN in text] == []


def test_subprotocol_token_in_a_refused_upgrade_is_masked() -> None:
    refusal = reject(403, f"unknown subprotocol jwt.{TOKEN}; token {TOKEN} refused", "text/plain")
    exc = failure(
        lambda: against(Script(), lambda url: open_(url, via="subprotocol"), process_request=refusal)
    )
    assert exc.category == Category.PRODUCT_AUTH
    assert TOKEN not in str(exc) and TOKEN not in json.dumps(exc.evidence)
