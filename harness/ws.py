"""The chat WebSocket client: connect, ask one question, collect the turn, judge it.

Every failure leaves as an `E2EFailure` with exactly one category, decided here and nowhere else:

=====================================================  ======================
what happened                                          category
=====================================================  ======================
handshake answered 5xx (gateway page, readiness 503)   infra.ws
handshake answered 401/403                             product.auth
handshake answered any other non-101 status            product.http
refused / reset / DNS / TLS / proxy / no HTTP answer   infra.unreachable
opening handshake slower than `open_timeout_s`         infra.timeout
closed with a code in INFRA_CLOSE_CODES (1006 = drop)  infra.ws
closed 1008                                            product.auth
closed with any other code before the welcome          product.contract
first frame not JSON / not connection_established      product.contract
no welcome within the deadline after the upgrade       product.contract
no pong within the deadline                            product.contract
the turn's events, order, errors or answer are wrong   product.golden_path
=====================================================  ======================

A socket that upgraded is served by the application, so silence after the upgrade is the
application's; only a drop or an infrastructure close code counts as infrastructure.

Everything kept (transcript, evidence, messages) passes through `harness.redact`, and the token is
registered as a secret on open, because the server echoes a `jwt.<token>` subprotocol back.
Library exceptions are not chained (`from None`): their text can carry that subprotocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import operator
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    ProxyError,
)

from contract.events import ERROR_EVENTS, GOLDEN_PATH_EVENTS, INFRA_CLOSE_CODES, CloseCode, ServerType
from contract.frames import UserMessage, UserMessagePayload, answer_text, flatten
from harness.errors import E2EFailure
from harness.redact import redact, redact_data, redact_headers, register
from harness.taxonomy import Category

Transport = Literal["header", "subprotocol"]
EndedBy = Literal["completed", "error", "deadline", "closed"]

BODY_SNIPPET_BYTES = 2048
CLOSE_TIMEOUT_S = 2.0
SETTLE_S = 0.25  # after the turn balances, keep reading this long for trailing duplicates
ERROR_CLOSE_WAIT_S = 2.0  # after an error frame instead of the welcome, wait this long for the close
SEQUENCE_LIMIT = 60
GARBAGE_LIMIT = 500

_ERRORS = frozenset(str(t) for t in ERROR_EVENTS)


# ---------------------------------------------------------------------------------------------
# The turn


@dataclass
class Turn:
    """What one question produced, already redacted: enough to judge it and to attach it.

    `ended_by` says why collection stopped: `completed` (every agent_started matched by an
    agent_completed), `error` (an error event), `deadline`, or `closed` (the socket closed first).
    `run_id`/`thread_id` are what was sent, else the first seen; `run_ids` lists every run_id seen.
    """

    deadline_s: float
    thread_id: str | None = None
    run_id: str | None = None
    run_ids: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    answer: str | None = None
    close_code: int | None = None
    close_reason: str | None = None
    elapsed_s: float = 0.0
    ended_by: EndedBy = "deadline"
    garbage: list[str] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """Every agent_started (outer run, sub-agents, duplicates) has its agent_completed."""
        done = self.types.count(ServerType.AGENT_COMPLETED)
        return done > 0 and done >= self.types.count(ServerType.AGENT_STARTED)

    def add_event(self, frame: dict[str, Any]) -> None:
        """Record a JSON frame; the answer always comes from the latest agent_completed."""
        flat = redact_data({**flatten(frame), "type": frame["type"]})
        self.events.append(flat)
        self.types.append(frame["type"])
        for key in ("run_id", "thread_id"):
            value = flat.get(key)
            if isinstance(value, str) and getattr(self, key) is None:
                setattr(self, key, value)
        if isinstance(flat.get("run_id"), str) and flat["run_id"] not in self.run_ids:
            self.run_ids.append(flat["run_id"])
        if frame["type"] == ServerType.AGENT_COMPLETED:
            text = answer_text(frame)
            self.answer = None if text is None else redact(text)

    def sequence(self) -> str:
        """The event types in arrival order, for messages (long streams are cut)."""
        shown = self.types[:SEQUENCE_LIMIT]
        more = len(self.types) - len(shown)
        text = " > ".join(shown) or "(no events)"
        if more:
            text += f" > …(+{more})"
        if self.garbage:
            text += f" [+{len(self.garbage)} non-JSON frame(s)]"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def transcript_json(self) -> str:
        """The whole turn as indented JSON, for an Allure attachment."""
        return redact(json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str))


# ---------------------------------------------------------------------------------------------
# The session


class ChatSession:
    """An open chat socket that has been welcomed with `connection_established`."""

    def __init__(self, ws: ClientConnection, ws_url: str, transport: Transport, started: float) -> None:
        self._ws = ws
        self._started = started
        self._turn_start = 0
        self._sent: dict[str, str | None] = {}
        self.ws_url = redact(ws_url)
        self.transport = transport
        self.subprotocol = None if ws.subprotocol is None else redact(ws.subprotocol)
        self.handshake_headers = redact_headers(dict(ws.response.headers.raw_items())) if ws.response else {}
        self.established: dict[str, Any] = {}
        self.transcript: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def __aenter__(self) -> ChatSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close politely; a socket that is already gone is not an error here."""
        with contextlib.suppress(Exception):
            await self._ws.close()

    async def send_user_message(
        self, content: str, thread_id: str | None = None, run_id: str | None = None
    ) -> dict[str, Any]:
        """Send the shape the server reads (`payload.content`); the next `collect_turn` starts here."""
        message = UserMessage(payload=UserMessagePayload(content=content, thread_id=thread_id, run_id=run_id))
        frame = message.model_dump(mode="json", exclude_none=True)
        self._turn_start = len(self.transcript)
        self._sent = {"thread_id": thread_id, "run_id": run_id}
        await self._send(frame, "while sending user_message")
        return frame

    async def collect_turn(self, deadline_s: float, *, settle_s: float = SETTLE_S) -> Turn:
        """Read until the turn balances (then `settle_s` more), an error event, a close, or the deadline.

        There is deliberately no inter-event gap rule: an LLM may think for a long time between
        events, and only the overall deadline bounds the wait.
        """
        turn = Turn(
            deadline_s=deadline_s, thread_id=self._sent.get("thread_id"), run_id=self._sent.get("run_id")
        )
        start = time.monotonic()
        end = start + deadline_s
        finished_at: float | None = None
        while True:
            limit = end if finished_at is None else min(end, finished_at + settle_s)
            try:
                frame = await self._receive(limit)
            except TimeoutError:
                break
            except ConnectionClosed:
                if finished_at is None:
                    turn.ended_by = "closed"
                break
            if frame is None:
                turn.garbage.append(str(self.transcript[-1]["frame"]))
                continue
            turn.add_event(frame)
            if turn.balanced or frame["type"] in _ERRORS:
                finished_at = time.monotonic()
                if turn.ended_by == "deadline":
                    turn.ended_by = "error" if frame["type"] in _ERRORS else "completed"
            elif finished_at is not None and turn.ended_by == "completed":
                finished_at = None  # a new sub-agent started during the settle window
                turn.ended_by = "deadline"
        turn.elapsed_s = round(time.monotonic() - start, 3)
        turn.close_code, turn.close_reason = self.close_code, self.close_reason
        turn.transcript = list(self.transcript[self._turn_start :])
        return turn

    # -- plumbing shared by the welcome, the turn and ping ------------------------------------

    def _note(self, direction: str, frame: Any) -> None:
        self.transcript.append(
            {
                "t": round(time.monotonic() - self._started, 3),
                "direction": direction,
                "frame": redact_data(frame),
            }
        )

    async def _send(self, frame: dict[str, Any], when: str) -> None:
        self._note("sent", frame)
        try:
            await self._ws.send(json.dumps(frame))
        except ConnectionClosed as exc:
            self._note_close(exc)
            raise self._closed_failure(when) from None

    def _note_close(self, exc: ConnectionClosed) -> None:
        self.close_code = exc.rcvd.code if exc.rcvd else int(CloseCode.ABNORMAL)
        self.close_reason = redact(exc.rcvd.reason) if exc.rcvd else "no close frame"
        self._note("closed", {"code": self.close_code, "reason": self.close_reason})

    async def _receive(self, until: float) -> dict[str, Any] | None:
        """The next frame, parsed; None for a non-JSON or type-less frame (recorded as garbage).

        Raises TimeoutError at `until` (monotonic) and ConnectionClosed (after noting the code).
        """
        try:
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                raw = await self._ws.recv()
        except ConnectionClosed as exc:
            self._note_close(exc)
            raise
        frame = _parse(raw)
        if frame is None:
            self._note("garbage", _snippet(raw, GARBAGE_LIMIT))
        else:
            self._note("received", frame)
        return frame

    async def _expect_welcome(self, until: float) -> None:
        """Require `connection_established` as the first frame, or classify why it did not come."""
        try:
            frame = await self._receive(until)
        except TimeoutError:
            raise self._failure(
                Category.PRODUCT_CONTRACT, "no connection_established after the upgrade"
            ) from None
        except ConnectionClosed:
            raise self._closed_failure("before connection_established") from None
        if frame is not None and frame["type"] == ServerType.CONNECTION_ESTABLISHED:
            self.established = redact_data(flatten(frame))
            return
        if frame is not None and frame["type"] in _ERRORS:
            await self._await_close(min(until, time.monotonic() + ERROR_CLOSE_WAIT_S))
        what = "a non-JSON frame" if frame is None else f"{frame['type']!r}"
        raise self._failure(Category.PRODUCT_CONTRACT, f"first frame was {what}, not connection_established")

    async def _await_close(self, until: float) -> None:
        """After an error frame the server usually closes; that close code decides the category."""
        while True:
            try:
                await self._receive(until)
            except TimeoutError:
                return
            except ConnectionClosed:
                raise self._closed_failure("after an error frame instead of connection_established") from None

    def _closed_failure(self, when: str) -> E2EFailure:
        code = self.close_code or int(CloseCode.ABNORMAL)
        failure = close_failure(code, self.close_reason, when, self._evidence())
        return failure or self._failure(Category.PRODUCT_CONTRACT, f"closed with code {code} {when}")

    def _failure(self, category: Category, message: str) -> E2EFailure:
        return E2EFailure.of(category, redact(message), self._evidence())

    def _evidence(self) -> dict[str, Any]:
        return redact_data(
            {
                "url": self.ws_url,
                "transport": self.transport,
                "subprotocol": self.subprotocol,
                "handshake_headers": self.handshake_headers,
                "close_code": self.close_code,
                "close_reason": self.close_reason,
                "elapsed_s": round(time.monotonic() - self._started, 3),
                "transcript": self.transcript,
            }
        )


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(frame, dict) and isinstance(frame.get("type"), str):
        return frame
    return None


def _snippet(raw: str | bytes, limit: int) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes | bytearray) else raw
    return redact(text[:limit])


def close_failure(code: int, reason: str | None, when: str, evidence: dict[str, Any]) -> E2EFailure | None:
    """The failure a close code alone decides (infra codes, 1008), or None if it decides nothing."""
    said = f" ({reason!r})" if reason else ""
    if code in INFRA_CLOSE_CODES:
        return E2EFailure.of(
            Category.INFRA_WS, redact(f"connection closed with code {code}{said} {when}"), evidence
        )
    if code == CloseCode.POLICY_VIOLATION:
        message = f"connection closed 1008{said} {when}: authentication refused"
        return E2EFailure.of(Category.PRODUCT_AUTH, redact(message), evidence)
    return None


# ---------------------------------------------------------------------------------------------
# Opening


def _credentials(token: str | None, transport: Transport) -> dict[str, Any]:
    """Connect kwargs that carry the token the way the backend extracts it (None: no credentials)."""
    if token is None:
        return {}
    if transport == "header":
        return {"additional_headers": {"Authorization": f"Bearer {token}"}}
    if transport == "subprotocol":
        return {"subprotocols": [f"jwt.{token}"]}
    raise ValueError(f"unknown transport {transport!r}")


def _handshake_failure(exc: Exception, evidence: dict[str, Any]) -> E2EFailure:
    """Classify an exception raised by `connect` (before any frame)."""
    evidence["error_type"] = type(exc).__name__
    evidence["error"] = redact(exc)
    if isinstance(exc, InvalidStatus):
        response = exc.response
        evidence.update(
            status=response.status_code,
            headers=redact_headers(dict(response.headers.raw_items())),
            body_snippet=_snippet(bytes(response.body or b""), BODY_SNIPPET_BYTES),
        )
        status = response.status_code
        if status >= 500:
            category = Category.INFRA_WS
        elif status in (401, 403):
            category = Category.PRODUCT_AUTH
        else:
            category = Category.PRODUCT_HTTP
        ctype = response.headers.get("Content-Type", "no content-type")
        return E2EFailure.of(category, f"WebSocket upgrade refused with HTTP {status} ({ctype})", evidence)
    if isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
        return E2EFailure.of(Category.INFRA_TIMEOUT, "WebSocket opening handshake timed out", evidence)
    if isinstance(exc, OSError | InvalidMessage | ProxyError):
        what = f"{type(exc).__name__}: {redact(exc)}"
        return E2EFailure.of(Category.INFRA_UNREACHABLE, f"WebSocket endpoint unreachable ({what})", evidence)
    if isinstance(exc, InvalidHandshake):
        what = f"{type(exc).__name__}: {redact(exc)}"
        return E2EFailure.of(Category.PRODUCT_CONTRACT, f"invalid WebSocket handshake ({what})", evidence)
    raise exc


async def open_chat(
    ws_url: str,
    token: str | None,
    *,
    transport: Transport = "header",
    open_timeout_s: float = 10.0,
    deadline_s: float = 20.0,
) -> ChatSession:
    """Connect and require the welcome frame within `deadline_s`; raise a classified failure otherwise.

    `open_timeout_s` bounds TCP+TLS+upgrade (infra.timeout); `deadline_s` bounds everything up
    to and including `connection_established`. `token=None` sends no credentials (negative auth).
    """
    register(token)
    started = time.monotonic()
    until = started + deadline_s
    try:
        ws = await connect(
            ws_url,
            open_timeout=min(open_timeout_s, deadline_s),
            close_timeout=CLOSE_TIMEOUT_S,
            **_credentials(token, transport),
        )
    except Exception as exc:  # every handshake outcome is classified here or re-raised
        evidence = {
            "url": redact(ws_url),
            "transport": transport,
            "elapsed_s": round(time.monotonic() - started, 3),
        }
        raise _handshake_failure(exc, evidence) from None
    session = ChatSession(ws, ws_url, transport, started)
    try:
        await session._expect_welcome(until)
    except BaseException:
        await session.close()
        raise
    return session


@asynccontextmanager
async def chat_session(
    ws_url: str,
    token: str | None,
    *,
    transport: Transport = "header",
    open_timeout_s: float = 10.0,
    deadline_s: float = 20.0,
) -> AsyncIterator[ChatSession]:
    """`open_chat` that always closes the socket afterwards."""
    session = await open_chat(
        ws_url, token, transport=transport, open_timeout_s=open_timeout_s, deadline_s=deadline_s
    )
    try:
        yield session
    finally:
        await session.close()


async def ping(session: ChatSession, deadline_s: float = 5.0) -> float:
    """Send `{"type":"ping"}` and return the seconds until `pong`; other frames are recorded and skipped."""
    start = time.monotonic()
    until = start + deadline_s
    await session._send({"type": "ping", "timestamp": time.time()}, "while sending ping")
    while True:
        try:
            frame = await session._receive(until)
        except TimeoutError:
            raise session._failure(Category.PRODUCT_CONTRACT, f"no pong within {deadline_s:g}s") from None
        except ConnectionClosed:
            raise session._closed_failure("while waiting for pong") from None
        if frame is not None and frame["type"] == ServerType.PONG:
            return time.monotonic() - start


# ---------------------------------------------------------------------------------------------
# Judging a turn

# Rule for "the answer is about the question" (deliberately simple, to catch canned or foreign
# answers, not to grade quality): the answer shares at least one meaningful word with the question
# (4+ letters, case-insensitive, not a stop word, a trailing plural "s" ignored), or it contains the
# result of a simple `a <op> b` arithmetic expression in the question ("2+2" -> 4). A question
# without meaningful words or arithmetic cannot be checked and passes this rule.
_WORD = re.compile(r"[a-z]{4,}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ARITHMETIC = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/x])\s*(-?\d+(?:\.\d+)?)")
_OPERATORS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "x": operator.mul,
    "/": operator.truediv,
}
# fmt: off
STOP_WORDS = frozenset({
    "about", "above", "after", "again", "also", "answer", "been", "before", "being", "below", "between",
    "both", "could", "does", "doing", "down", "during", "each", "explain", "from", "further", "give",
    "have", "having", "hello", "help", "here", "into", "just", "know", "like", "make", "many", "more",
    "most", "much", "need", "only", "other", "over", "please", "question", "same", "should", "some",
    "such", "tell", "than", "thank", "thanks", "that", "their", "them", "then", "there", "these",
    "they", "this", "those", "through", "under", "until", "very", "want", "were", "what", "when",
    "where", "which", "while", "whom", "will", "with", "would", "your", "yours"
})
# fmt: on


def meaningful_words(text: str) -> set[str]:
    return {w[:-1] if len(w) > 4 and w.endswith("s") else w for w in _WORD.findall(text.lower())} - STOP_WORDS


def _number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def implied_numbers(question: str) -> set[str]:
    """Results of simple binary arithmetic in the question, normalised ("4", "2.5")."""
    results = set()
    for a, op, b in _ARITHMETIC.findall(question.lower()):
        if not (op == "/" and float(b) == 0):
            results.add(_number(str(_OPERATORS[op](float(a), float(b)))))
    return results


def is_about(question: str, answer: str) -> bool:
    """True if `answer` plausibly answers `question` (see the rule above)."""
    words, numbers = meaningful_words(question), implied_numbers(question)
    if not words and not numbers:
        return True
    answer_numbers = {_number(n) for n in _NUMBER.findall(answer)}
    return bool(words & meaningful_words(answer)) or bool(numbers & answer_numbers)


def _order_violation(turn: Turn) -> str | None:
    """The first ordering rule the turn breaks, or None (all five events are known present)."""
    types = turn.types

    def first(kind: str) -> int:
        return types.index(kind)

    started, thinking = first(ServerType.AGENT_STARTED), first(ServerType.AGENT_THINKING)
    executing = first(ServerType.TOOL_EXECUTING)
    final = len(types) - 1 - types[::-1].index(ServerType.AGENT_COMPLETED)
    if thinking < started:
        return f"agent_thinking (#{thinking + 1}) arrived before agent_started (#{started + 1})"
    if executing < thinking:
        return f"tool_executing (#{executing + 1}) arrived before agent_thinking (#{thinking + 1})"
    early = first(ServerType.TOOL_COMPLETED)
    if early < executing:
        return f"tool_completed (#{early + 1}) arrived before any tool_executing (#{executing + 1})"
    tool = turn.events[executing].get("tool_name")
    matched = next(
        (
            i
            for i in range(executing + 1, len(types))
            if types[i] == ServerType.TOOL_COMPLETED and turn.events[i].get("tool_name") in (None, tool)
        ),
        None,
    )
    if matched is None:
        return f"no tool_completed matches tool_executing (#{executing + 1}, tool {tool!r})"
    if final < matched:
        return f"final agent_completed (#{final + 1}) arrived before tool_completed (#{matched + 1})"
    return None


def _error_text(event: dict[str, Any]) -> str:
    for key in ("error_message", "message", "error", "error_code"):
        if isinstance(event.get(key), str) and event[key]:
            return event[key]
    return "(no message)"


def _turn_rule(turn: Turn, question: str) -> str | None:
    """The first golden-path rule the turn breaks, as a sentence; None if it passes."""
    errors = [e for e in turn.events if e["type"] in _ERRORS]
    if errors:
        return f"error event {errors[0]['type']} arrived: {_error_text(errors[0])!r}"
    missing = [str(t) for t in GOLDEN_PATH_EVENTS if t not in turn.types]
    if not turn.balanced and turn.ended_by == "deadline":
        gaps = f" (missing: {', '.join(missing)})" if missing else ""
        return f"no answer within {turn.deadline_s:g}s while the connection stayed up{gaps}"
    if turn.ended_by == "closed":
        return f"connection closed with code {turn.close_code} before the final agent_completed"
    if missing:
        return f"missing event(s): {', '.join(missing)}"
    violation = _order_violation(turn)
    if violation:
        return f"order violated: {violation}"
    if turn.answer is None:
        return "agent_completed without a readable answer (no result|response|final_response)"
    if not turn.answer.strip():
        return "agent_completed carried an empty answer"
    if not is_about(question, turn.answer):
        return (
            f"the answer is not about the question (no shared word or implied number): {turn.answer[:200]!r}"
        )
    return None


def validate_turn(turn: Turn, question: str) -> None:
    """Raise unless the turn is a complete, ordered, error-free golden path with an answer to `question`.

    A mid-turn close decides first (infra codes -> infra.ws, 1008 -> product.auth): an error frame
    sent just before an infrastructure close is the server's farewell, not a product verdict.
    """
    evidence = {"turn": turn.to_dict(), "question": redact(question)}
    if not turn.balanced and turn.close_code is not None:
        failure = close_failure(
            turn.close_code, turn.close_reason, f"mid-turn; sequence: {turn.sequence()}", evidence
        )
        if failure:
            raise failure
    rule = _turn_rule(turn, question)
    if rule:
        message = redact(f"golden path: {rule}; sequence: {turn.sequence()}")
        raise E2EFailure.of(Category.PRODUCT_GOLDEN_PATH, message, evidence)
