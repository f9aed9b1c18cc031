"""The chat client against scripted WebSocket servers on real loopback sockets.

Each test starts a tiny `websockets` server whose handler plays one behaviour of staging, runs the
client against it, and asserts exactly one expected outcome (a pass, or one failure category).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from contract.frames import ConnectionEstablished, ConnectionEstablishedData
from harness.errors import E2EFailure, InfraFailure, ProductFailure
from harness.taxonomy import Category
from harness.ws import ChatSession, Turn, chat_session, is_about, open_chat, ping, validate_turn

pytestmark = pytest.mark.unit

T = TypeVar("T")
Frame = dict[str, Any] | str  # a str is sent verbatim (garbage)

TOKEN = "unit-secret-token-7f3a9c2e"  # not JWT-shaped: only its registration can mask it
QUESTION = "Which cloud region hosts the staging database?"
ANSWER = "The staging database runs in the us-central1 region."
HTML_503 = (
    "<html><head><title>Error 503 (Service Unavailable)!!1</title></head><body>That's an error.</body></html>"
)


# ---------------------------------------------------------------------------------------------
# Frames


def event(kind: str, shape: str = "data", **fields: Any) -> dict[str, Any]:
    """An agent event in the bridge shape (`data`) or the message-processing shape (`payload`)."""
    if shape == "data":
        return {"type": kind, "run_id": "run-1", "agent_name": "supervisor", "data": fields}
    return {"type": kind, "payload": {"run_id": "run-1", "thread_id": "thread-1", **fields}}


def golden(answer: Any = ANSWER, shape: str = "data") -> list[dict[str, Any]]:
    return [
        event("agent_started", shape, status="started"),
        event("agent_thinking", shape, reasoning="Looking up the deployment", step_number=1),
        event("tool_executing", shape, tool_name="deployment_lookup", parameters={"env": "staging"}),
        event("tool_completed", shape, tool_name="deployment_lookup", result={"region": "us-central1"}),
        event("agent_completed", shape, status="completed", result=answer),
    ]


def welcome(**extra: Any) -> str:
    data = ConnectionEstablishedData(user_id="user-123...", connection_id="main_1", **extra)
    return ConnectionEstablished(data=data).model_dump_json()


# ---------------------------------------------------------------------------------------------
# Scripted servers


Handler = Callable[[ServerConnection], Awaitable[None]]


def authorized(ws: ServerConnection) -> bool:
    """The token by header or by `jwt.<token>` subprotocol, as the backend extracts it."""
    return ws.request.headers.get("Authorization") == f"Bearer {TOKEN}" or ws.subprotocol == f"jwt.{TOKEN}"


def chat_server(frames: Sequence[Frame] = (), close: tuple[int, str] | None = None) -> Handler:
    """Welcome, answer pings, and play `frames` after the user message (then close, if asked)."""

    async def handler(ws: ServerConnection) -> None:
        if not authorized(ws):
            await ws.send(json.dumps({"type": "error_message", "error_code": "AUTH_FAILED"}))
            await ws.close(1008, "Authentication failed")
            return
        await ws.send(welcome())
        async for raw in ws:
            kind = json.loads(raw)["type"]
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif kind == "user_message":
                for frame in frames:
                    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
                if close:
                    await ws.close(*close)
                    return

    return handler


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


def against(handler: Handler, client: Callable[[str], Awaitable[T]], **serve_kwargs: Any) -> T:
    """Run `client(url)` against a server playing `handler` on a free loopback port."""

    async def main() -> T:
        async with serve(handler, "127.0.0.1", 0, **serve_kwargs) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            return await client(f"ws://127.0.0.1:{port}/ws")

    return asyncio.run(main())


async def ask(url: str, *, deadline_s: float = 3.0) -> Turn:
    async with chat_session(url, TOKEN, deadline_s=3.0) as session:
        await session.send_user_message(QUESTION, thread_id="thread-1", run_id="run-1")
        return await session.collect_turn(deadline_s)


def turn_of(frames: Sequence[Frame], close: tuple[int, str] | None = None) -> Turn:
    return against(chat_server(frames, close), ask)


def failure(call: Callable[[], object]) -> E2EFailure:
    with pytest.raises(E2EFailure) as info:
        call()
    return info.value


def connect_failure(handler: Handler, token: str | None = TOKEN, **serve_kwargs: Any) -> E2EFailure:
    return failure(
        lambda: against(handler, lambda url: open_chat(url, token, deadline_s=3.0), **serve_kwargs)
    )


# ---------------------------------------------------------------------------------------------
# Turns that pass


@pytest.mark.parametrize("shape", ["data", "payload"])
def test_golden_path_passes_in_either_event_shape(shape: str) -> None:
    turn = turn_of(golden(shape=shape))
    validate_turn(turn, QUESTION)
    assert (turn.answer, turn.run_id, turn.ended_by) == (ANSWER, "run-1", "completed")


def test_duplicates_are_tolerated_and_the_last_agent_completed_is_the_answer() -> None:
    started, thinking, executing, tool_done, _ = golden()
    frames = [
        started,
        event("agent_started", "payload"),
        thinking,
        executing,
        tool_done,
        event("agent_completed", result=""),
        event("agent_completed", "payload", response="An interim note"),
        event("agent_completed", "payload", response=ANSWER),
    ]
    turn = turn_of(frames)
    validate_turn(turn, QUESTION)
    assert turn.answer == ANSWER


def test_non_json_frames_are_recorded_and_the_turn_still_judged() -> None:
    frames: list[Frame] = golden()
    frames.insert(2, "<<not json>>")
    turn = turn_of(frames)
    validate_turn(turn, QUESTION)
    assert turn.garbage == ["<<not json>>"]


def test_subprotocol_transport_keeps_the_echoed_token_out_of_everything() -> None:
    async def client(url: str) -> tuple[ChatSession, Turn]:
        async with chat_session(url, TOKEN, transport="subprotocol", deadline_s=3.0) as session:
            await session.send_user_message(QUESTION)
            return session, await session.collect_turn(3.0)

    handler = chat_server([*golden()[:2], event("agent_error", error_message=f"bad token {TOKEN}")])
    session, turn = against(handler, client, select_subprotocol=echo_subprotocol)
    exc = failure(lambda: validate_turn(turn, QUESTION))
    kept = [str(exc), json.dumps(exc.evidence), turn.transcript_json(), str(vars(session))]
    assert session.subprotocol == "jwt.***REDACTED***"
    assert exc.category == Category.PRODUCT_GOLDEN_PATH
    assert not [text for text in kept if TOKEN in text]


def test_ping_gets_pong() -> None:
    async def client(url: str) -> float:
        async with chat_session(url, TOKEN, deadline_s=3.0) as session:
            return await ping(session, deadline_s=2.0)

    assert 0 <= against(chat_server(), client) < 2.0


# ---------------------------------------------------------------------------------------------
# Turns that fail the golden path


def golden_failure(frames: Sequence[Frame]) -> str:
    exc = failure(lambda: validate_turn(turn_of(frames), QUESTION))
    assert isinstance(exc, ProductFailure) and exc.category == Category.PRODUCT_GOLDEN_PATH
    return exc.detail


def test_missing_tool_completed_is_named() -> None:
    frames = [f for f in golden() if f["type"] != "tool_completed"]
    assert "missing event(s): tool_completed" in golden_failure(frames)


def test_out_of_order_events_fail() -> None:
    started, thinking, *rest = golden()
    detail = golden_failure([thinking, started, *rest])
    assert "order violated: agent_thinking (#1) arrived before agent_started (#2)" in detail
    assert "sequence: agent_thinking > agent_started > tool_executing" in detail


def test_agent_error_fails() -> None:
    frames = [*golden()[:2], event("agent_error", status="error", error_message="LLM quota exceeded")]
    assert "error event agent_error arrived: 'LLM quota exceeded'" in golden_failure(frames)


def test_agent_completed_without_result_fails() -> None:
    frames = [*golden()[:4], event("agent_completed", status="completed")]
    assert "without a readable answer" in golden_failure(frames)


def test_empty_answer_fails() -> None:
    assert "empty answer" in golden_failure(golden(answer="  \n "))


def test_answer_not_about_the_question_fails() -> None:
    assert "not about the question" in golden_failure(golden(answer="Lorem ipsum dolor sit amet."))


def test_never_completing_fails_at_the_deadline_not_later() -> None:
    began = time.monotonic()
    turn = against(chat_server(golden()[:2]), lambda url: ask(url, deadline_s=1.0))
    exc = failure(lambda: validate_turn(turn, QUESTION))
    assert time.monotonic() - began < 1.5
    assert exc.category == Category.PRODUCT_GOLDEN_PATH
    assert "no answer within 1s while the connection stayed up" in exc.detail


@pytest.mark.parametrize(
    ("question", "answer", "about"),
    [
        ("What is 2+2?", "4", True),
        ("What is 6 x 7?", "It is 42.", True),
        ("What is 2+2?", "5", False),
        ("Summarise the staging incidents", "Two incidents hit staging.", True),
        ("Summarise the staging incidents", "Hello there!", False),
        ("Hi?", "Anything at all", True),  # nothing to check against
    ],
)
def test_relevance_rule(question: str, answer: str, about: bool) -> None:
    assert is_about(question, answer) is about


# ---------------------------------------------------------------------------------------------
# Connection outcomes and their categories


def test_close_1011_mid_turn_is_infra_ws() -> None:
    turn = turn_of(golden()[:2], close=(1011, "Service not ready"))
    exc = failure(lambda: validate_turn(turn, QUESTION))
    assert isinstance(exc, InfraFailure) and exc.category == Category.INFRA_WS


def test_close_1008_at_connect_is_product_auth() -> None:
    exc = connect_failure(chat_server(), token="wrong-token-0000")
    assert isinstance(exc, ProductFailure) and exc.category == Category.PRODUCT_AUTH


def test_drop_right_after_upgrade_is_infra_ws() -> None:
    """No close frame (1006): the connection was lost, as when a load balancer drops it."""

    async def handler(ws: ServerConnection) -> None:
        ws.transport.abort()

    exc = connect_failure(handler)
    assert exc.category == Category.INFRA_WS and exc.evidence["close_code"] == 1006


def test_orderly_close_before_welcome_is_product_contract() -> None:
    """An orderly 1000 close comes from the application itself, which then broke its contract."""

    async def handler(ws: ServerConnection) -> None:
        await ws.close()

    assert connect_failure(handler).category == Category.PRODUCT_CONTRACT


def test_non_json_first_frame_is_product_contract() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("<html>frontend</html>")
        await ws.wait_closed()

    assert connect_failure(handler).category == Category.PRODUCT_CONTRACT


def test_handshake_503_html_is_infra_ws_with_the_page_in_evidence() -> None:
    exc = connect_failure(chat_server(), process_request=reject(503, HTML_503, "text/html; charset=UTF-8"))
    assert isinstance(exc, InfraFailure) and exc.category == Category.INFRA_WS
    assert (exc.evidence["status"], exc.evidence["body_snippet"]) == (503, HTML_503)


def test_handshake_403_is_product_auth() -> None:
    exc = connect_failure(chat_server(), process_request=reject(403, "Forbidden", "text/plain"))
    assert isinstance(exc, ProductFailure) and exc.category == Category.PRODUCT_AUTH


def test_refused_port_is_infra_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exc = failure(lambda: asyncio.run(open_chat(f"ws://127.0.0.1:{port}/ws", TOKEN, open_timeout_s=2.0)))
    assert isinstance(exc, InfraFailure) and exc.category == Category.INFRA_UNREACHABLE
