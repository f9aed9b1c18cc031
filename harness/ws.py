"""The chat WebSocket client: open a socket (welcome and, when the server asks, the handshake), ask
one question, collect the turn. Every failure is classified by the one decision table
(`harness.classify`), from a `WsEvidence` that records the upgrade, every frame and the close.

The handshake (HEAD): a server may send `handshake_response` (with a `thread_id`) before or after
the welcome; messages sent before the client acknowledges it are lost. The client acknowledges it,
waits briefly, and uses that thread. A server that sends none does not expect one: after the welcome
the client waits `HANDSHAKE_GRACE_S` for it, and if it arrives only after the question was sent (and
before any event), the question was lost, so it is acknowledged and sent again.

Everything kept passes through `harness.redact`; the token is registered as a secret on open (the
server echoes a `jwt.<token>` subprotocol back), and so is a handshake's `session_token`. Library
exceptions are not chained (`from None`): their text can carry that subprotocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus

from contract.events import ERROR_EVENTS, HOUSEKEEPING_EVENTS, CloseCode, ServerType
from contract.frames import (
    HandshakeAcknowledged,
    UserMessage,
    UserMessagePayload,
    event_type,
    flatten,
)
from harness.classify import classify_ws
from harness.errors import E2EFailure
from harness.evidence import WsEvidence, network_failure
from harness.http import Pacer
from harness.redact import redact, redact_data, redact_headers, register
from harness.taxonomy import Category
from harness.turn import Turn

TokenVia = Literal["header", "subprotocol"]  # how the token travels to the server

BODY_SNIPPET_BYTES = 2048
CLOSE_TIMEOUT_S = 2.0
SETTLE_S = 0.25  # after the turn balances, keep reading this long for trailing duplicates
ERROR_CLOSE_WAIT_S = 2.0  # after an error frame instead of the welcome, wait this long for the close
HANDSHAKE_GRACE_S = 0.25  # after the welcome, how long a handshake_response may take to arrive
HANDSHAKE_SETTLE_S = 0.5  # after the acknowledgement, as the HEAD client waits before its first message
DRAIN_S = 0.2  # after a failed send, how long frames received before the close are read
GARBAGE_LIMIT = 500
MAX_FRAME_BYTES = 5 * 1024 * 1024  # the HEAD client's limit

_ERRORS = frozenset(str(t) for t in ERROR_EVENTS)
_HOUSEKEEPING = frozenset(str(t) for t in HOUSEKEEPING_EVENTS) | {
    str(ServerType.HANDSHAKE_COMPLETE),
    str(ServerType.CONNECTION_ESTABLISHED),
}


class ChatSocket:
    """An open chat socket that has been welcomed (and handshaken, when the server asked)."""

    def __init__(self, ws: ClientConnection, evidence: WsEvidence, started: float) -> None:
        self._ws = ws
        self._started = started
        self.evidence = evidence
        self.welcome: dict[str, Any] = {}
        self.handshake_thread_id: str | None = None
        self.error_frame: dict[str, Any] | None = None
        self._pending: list[dict[str, Any]] = []  # frames read while opening, replayed to the turn
        self._last_question: dict[str, Any] | None = None

    @property
    def welcome_user(self) -> str | None:
        """The user the server says this socket belongs to (the real server shows 8 chars + "...")."""
        user = self.welcome.get("user_id")
        return user if isinstance(user, str) else None

    async def close(self) -> None:
        """Close politely; a socket that is already gone is not an error here."""
        with contextlib.suppress(Exception):
            await self._ws.close()

    # -- the exchange ----------------------------------------------------------------------------

    async def ask(self, question: str, deadline_s: float) -> Turn:
        """Send the question (in the handshake's thread, when there was one) and collect the turn."""
        await self._send_question(question)
        return await self._collect(question, deadline_s)

    async def _send_question(self, question: str) -> None:
        payload = UserMessagePayload(content=question, thread_id=self.handshake_thread_id)
        frame = UserMessage(payload=payload).model_dump(mode="json", exclude_none=True)
        self._last_question = frame
        await self._send(frame)

    async def _collect(self, question: str, deadline_s: float, *, settle_s: float = SETTLE_S) -> Turn:
        """Read until the turn balances (then `settle_s` more), an error event, a close, or the deadline.

        There is deliberately no inter-event gap rule: an LLM may think for a long time between
        events, and only the overall deadline bounds the wait.
        """
        turn = Turn(deadline_s=deadline_s, thread_id=self.handshake_thread_id, socket=self.evidence)
        start = time.monotonic()
        end = start + deadline_s
        finished_at: float | None = None
        while True:
            limit = end if finished_at is None else min(end, finished_at + settle_s)
            try:
                frame = await self._next(limit)
            except TimeoutError:
                break
            except ConnectionClosed:
                if finished_at is None:
                    turn.ended_by = "closed"
                break
            if frame is None:
                turn.garbage.append(str(self.evidence.transcript[-1]["frame"]))
                continue
            kind = event_type(frame)
            if kind == ServerType.HANDSHAKE_RESPONSE and not turn.types:
                await self._late_handshake(frame, turn)  # the question was lost: send it again
                continue
            if kind in _HOUSEKEEPING or kind == ServerType.HANDSHAKE_RESPONSE:
                continue
            turn.add_event(frame)
            if turn.balanced or kind in _ERRORS:
                finished_at = time.monotonic()
                if turn.ended_by == "deadline":
                    turn.ended_by = "error" if kind in _ERRORS else "completed"
            elif finished_at is not None and turn.ended_by == "completed":
                finished_at = None  # a new sub-agent started during the settle window
                turn.ended_by = "deadline"
        turn.elapsed_s = round(time.monotonic() - start, 3)
        turn.close_code, turn.close_reason = self.evidence.close_code, self.evidence.close_reason
        return turn

    async def _late_handshake(self, frame: dict[str, Any], turn: Turn) -> None:
        await self._acknowledge(frame)
        turn.thread_id = self.handshake_thread_id
        if self._last_question is not None:
            self._last_question["payload"]["thread_id"] = self.handshake_thread_id
            turn.resent = True
            await self._send(self._last_question)

    # -- opening ---------------------------------------------------------------------------------

    async def _open(self, deadline: float, handshake_grace_s: float) -> None:
        """Welcome (with any handshake before it), then a grace period for a handshake after it."""
        while not self.welcome:
            frame = await self._expect_frame(deadline, "before connection_established")
            kind = event_type(frame)
            if kind == ServerType.CONNECTION_ESTABLISHED:
                self.welcome = redact_data(flatten(frame))
            elif kind == ServerType.HANDSHAKE_RESPONSE:
                await self._acknowledge(frame)
            elif kind in _ERRORS:
                self.error_frame = redact_data(flatten(frame))
                await self._await_close(min(deadline, time.monotonic() + ERROR_CLOSE_WAIT_S))
                raise self._failure("an error frame instead of connection_established")
            elif kind not in _HOUSEKEEPING:
                raise self._contract(f"first frame was {kind!r}, not connection_established")
        if self.handshake_thread_id is None:
            await self._await_handshake(min(deadline, time.monotonic() + handshake_grace_s))

    async def _await_handshake(self, until: float) -> None:
        """A handshake_response within the grace period is acknowledged; other frames wait for the turn."""
        while True:
            try:
                frame = await self._next(until, replay=False)
            except TimeoutError:
                return
            except ConnectionClosed:
                raise self._failure("right after connection_established") from None
            if frame is None:
                continue
            if event_type(frame) == ServerType.HANDSHAKE_RESPONSE:
                await self._acknowledge(frame)
                return
            self._hold(frame)

    async def _acknowledge(self, frame: Mapping[str, Any]) -> None:
        """Answer a handshake_response with its thread_id, then wait as the HEAD client does."""
        flat = flatten(frame)
        register(flat.get("session_token") if isinstance(flat.get("session_token"), str) else None)
        thread_id = flat.get("thread_id")
        if not isinstance(thread_id, str) or not thread_id:
            raise self._contract("handshake_response without a thread_id")
        self.handshake_thread_id = thread_id
        await self._send(HandshakeAcknowledged(thread_id=thread_id).model_dump(mode="json"))
        until = time.monotonic() + HANDSHAKE_SETTLE_S
        while True:  # handshake_complete, if the server sends one, ends the wait early
            try:
                reply = await self._next(until, replay=False)
            except TimeoutError:
                return
            except ConnectionClosed:
                raise self._failure("after handshake_acknowledged") from None
            if reply is not None and event_type(reply) == ServerType.HANDSHAKE_COMPLETE:
                return
            if reply is not None:
                self._hold(reply)

    def _hold(self, frame: dict[str, Any]) -> None:
        """Keep a frame read while opening for the turn; an error frame also explains a close that
        follows it (a database down while the socket opens is the service saying so)."""
        if event_type(frame) in _ERRORS and self.error_frame is None:
            self.error_frame = redact_data(flatten(frame))
        self._pending.append(frame)

    async def _expect_frame(self, deadline: float, when: str) -> dict[str, Any]:
        try:
            frame = await self._next(deadline)
        except TimeoutError:
            raise self._contract(f"no connection_established within the deadline {when}") from None
        except ConnectionClosed:
            raise self._failure(when) from None
        if frame is None:
            raise self._contract(f"a non-JSON frame {when}")
        return frame

    async def _await_close(self, until: float) -> None:
        """After an error frame the server usually closes; that close is part of the evidence."""
        while True:
            try:
                await self._next(until)
            except (TimeoutError, ConnectionClosed):
                return

    # -- plumbing --------------------------------------------------------------------------------

    def _note(self, direction: str, frame: Any) -> None:
        self.evidence.transcript.append(
            {
                "t": round(time.monotonic() - self._started, 3),
                "direction": direction,
                "frame": redact_data(frame),
            }
        )

    async def _send(self, frame: dict[str, Any]) -> None:
        self._note("sent", frame)
        try:
            await self._ws.send(json.dumps(frame))
        except ConnectionClosed as exc:
            self._note_close(exc)
            await self._drain()
            raise self._failure(f"while sending {frame.get('type')}") from None

    async def _drain(self) -> None:
        """Read what arrived before the close (an error frame saying why), so that it is classified."""
        until = time.monotonic() + DRAIN_S
        while True:
            try:
                frame = await self._next(until, replay=False)
            except (TimeoutError, ConnectionClosed):
                return
            if frame is not None:
                self._hold(frame)

    def _note_close(self, exc: ConnectionClosed) -> None:
        self.evidence.close_code = exc.rcvd.code if exc.rcvd else int(CloseCode.ABNORMAL)
        self.evidence.close_reason = redact(exc.rcvd.reason) if exc.rcvd else "no close frame"
        self._note("closed", {"code": self.evidence.close_code, "reason": self.evidence.close_reason})

    async def _next(self, until: float, *, replay: bool = True) -> dict[str, Any] | None:
        """The next frame (first those held back while opening, unless `replay` is off), parsed;
        None for a non-JSON or type-less frame (recorded as garbage). Raises TimeoutError at
        `until` (monotonic) and ConnectionClosed (after noting the code)."""
        if replay and self._pending:
            return self._pending.pop(0)
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

    def _failure(self, when: str) -> E2EFailure:
        """The classified failure of a socket that closed or sent an error frame."""
        self.evidence.elapsed_s = round(time.monotonic() - self._started, 3)
        outcome = classify_ws(self.evidence, error_frame=self.error_frame)
        if outcome.category is None:  # closed 1000 with nothing to say: still not a welcome
            return self._contract(f"the socket closed {when}")
        return E2EFailure.judged(
            outcome, f"chat socket {when}: {outcome.reason}", self.evidence.to_dict(), service="backend"
        )

    def _contract(self, message: str) -> E2EFailure:
        self.evidence.elapsed_s = round(time.monotonic() - self._started, 3)
        return E2EFailure.of(
            Category.PRODUCT_CONTRACT,
            f"chat socket: {message}",
            self.evidence.to_dict(),
            kind="no_welcome",
            service="backend",
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


def _credentials(token: str | None, via: TokenVia) -> dict[str, Any]:
    """Connect kwargs that carry the token the way the backend extracts it (None: no credentials)."""
    if token is None:
        return {}
    if via == "header":
        return {"additional_headers": {"Authorization": f"Bearer {token}"}}
    return {"subprotocols": [f"jwt.{token}"]}


def _refusal(exc: Exception, evidence: WsEvidence) -> E2EFailure:
    """Classify an exception raised by `connect` (before any frame)."""
    evidence.error_type = type(exc).__name__
    evidence.error = redact(exc)
    if isinstance(exc, InvalidStatus):
        response = exc.response
        body = bytes(response.body or b"")
        evidence.status = response.status_code
        evidence.headers = redact_headers(dict(response.headers.raw_items()))
        evidence.body_snippet = _snippet(body, BODY_SNIPPET_BYTES)
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            evidence.body_json = redact_data(json.loads(body)) if body.strip() else None
    elif isinstance(exc, InvalidHandshake) and not isinstance(exc, InvalidMessage):
        # An HTTP answer that breaks the WebSocket handshake (a bad header, a subprotocol not offered).
        return E2EFailure.of(
            Category.PRODUCT_CONTRACT,
            f"chat socket upgrade: invalid WebSocket handshake ({type(exc).__name__}: {exc})",
            evidence.to_dict(),
            kind="bad_handshake",
            service="backend",
        )
    else:  # no answer, or not an HTTP one (InvalidMessage, a proxy error): the transport's kind
        evidence.network = network_failure(exc)
    outcome = classify_ws(evidence)
    return E2EFailure.judged(
        outcome,
        f"chat socket upgrade: {outcome.reason}",
        evidence.to_dict(),
        service="backend",
        unjudged=Category.PRODUCT_CONTRACT,
    )


async def open_socket(
    ws_url: str,
    token: str | None,
    *,
    via: TokenVia = "header",
    open_timeout_s: float = 10.0,
    deadline_s: float = 20.0,
    pacer: Pacer | None = None,
    handshake_grace_s: float = HANDSHAKE_GRACE_S,
) -> ChatSocket:
    """Connect and require the welcome within `deadline_s`; raise a classified failure otherwise.

    `open_timeout_s` bounds TCP+TLS+upgrade; `deadline_s` bounds everything up to the welcome and
    the handshake. `token=None` sends no credentials (negative auth). A socket opened only to see
    its welcome asks nothing, so it needs no grace for a late handshake (`handshake_grace_s=0`).
    """
    register(token)
    if pacer is not None:
        await pacer.wait()
    started = time.monotonic()
    evidence = WsEvidence(url=redact(ws_url), token_via=via if token else "none")
    try:
        ws = await connect(
            ws_url,
            open_timeout=min(open_timeout_s, deadline_s),
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=MAX_FRAME_BYTES,
            **_credentials(token, via),
        )
    except Exception as exc:  # every handshake outcome is classified here
        evidence.elapsed_s = round(time.monotonic() - started, 3)
        raise _refusal(exc, evidence) from None
    evidence.status = 101
    evidence.subprotocol = None if ws.subprotocol is None else redact(ws.subprotocol)
    evidence.headers = redact_headers(dict(ws.response.headers.raw_items())) if ws.response else {}
    socket = ChatSocket(ws, evidence, started)
    try:
        await socket._open(started + deadline_s, handshake_grace_s)
    except BaseException:
        await socket.close()
        raise
    return socket
