"""One accepted, authenticated `/ws` connection: welcome, heartbeats, HEAD's handshake, the message
loop and its agent runs, in the shapes of the configured protocol era (replica/protocol.py).

The product defects of the real build live here too: the router that ends the socket on the first
client frame (`router_defect`) and the agent that fails mid-turn (`error_mid_turn`).

What a session needs of its backend is the `ChatBackend` protocol below, so that this module does not
import the backend's app (which imports this one to serve `/ws`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from fastapi import WebSocket

from contract.events import USER_MESSAGE_ALIASES, ClientType, CloseCode, ServerType
from contract.frames import ConnectionEstablished, ConnectionEstablishedData
from replica import agent, db, protocol
from replica.agent import AgentCrash, AgentRun, PlatformRestart, run_agent
from replica.config import ServiceConfig
from replica.startup import ConnectionRegistry

log = logging.getLogger("replica.chat")
_turns_started = 0  # chat turns this backend process began (restart_once ends the first one)


THREAD_TITLE_CHARS = 60


@dataclass(frozen=True)
class WsIdentity:
    user_id: str
    email: str
    authenticated: bool


class ChatBackend(Protocol):
    """What a chat session uses of the backend serving it (replica.backend_app.Backend has it)."""

    @property
    def config(self) -> ServiceConfig:
        """The scenario's knobs: protocol era, socket modes, agent behaviour."""

    @property
    def pool(self) -> asyncpg.Pool:
        """The database pool the startup built (raises the HTTP 503 when the backend is not ready)."""

    @property
    def connections(self) -> ConnectionRegistry | None:
        """Open sockets, once the websocket phase has built the registry."""


class ChatSession:
    """The socket's state: its identity, counters for heartbeats, and (HEAD) its handshake."""

    def __init__(self, ws: WebSocket, backend: ChatBackend, identity: WsIdentity) -> None:
        self.ws = ws
        self.backend = backend
        self.config = backend.config
        self.profile = backend.config.profile
        self.identity = identity
        self.connection_id = f"main_{uuid.uuid4().hex[:12]}"
        self.stats = {"messages_processed": 0, "agent_events_processed": 0}
        self.handshake_thread: str | None = None  # HEAD: the thread offered in handshake_response
        self.acknowledged = False
        self._send_lock = asyncio.Lock()
        self._runs: set[asyncio.Task[None]] = set()

    @property
    def _head(self) -> bool:
        return self.profile == protocol.HEAD

    async def send(self, frame: dict[str, Any]) -> None:
        """Serialise sends: agent runs and the message loop share one socket."""
        async with self._send_lock:
            await self.ws.send_text(json.dumps(frame))

    async def serve(self) -> None:
        registry = self.backend.connections
        if registry is not None:
            registry.add(self.connection_id, self.identity.user_id)
        try:
            if await self._open():
                await self._loop()
        finally:
            for run in self._runs:
                run.cancel()
            if registry is not None:
                registry.remove(self.connection_id)

    # -- opening: welcome, handshake, first heartbeat ------------------------------------------------

    async def _open(self) -> bool:
        """Send what the era sends before the first client frame; False if the socket had to end."""
        before = self._head and self.config.handshake_order == "before_welcome"
        if before and not await self._offer_handshake():
            return False
        await self.send(self._welcome())
        if self._head and not before and not await self._offer_handshake():
            return False
        if not protocol.is_legacy(self.profile):
            await self._heartbeat()
        return True

    def _welcome(self) -> dict[str, Any]:
        features = {"ws_auth": self.config.ws_auth, "authenticated": self.identity.authenticated}
        data = ConnectionEstablishedData(
            user_id=f"{self.identity.user_id[:8]}...", connection_id=self.connection_id, features=features
        )
        return ConnectionEstablished(data=data).model_dump(mode="json")

    async def _heartbeat(self) -> None:
        await self.send(protocol.heartbeat(self.connection_id, self.stats))

    async def _offer_handshake(self) -> bool:
        """HEAD: a thread for the user, offered in handshake_response; a dead database ends the socket."""
        try:
            thread = await db.create_thread(
                self.backend.pool, self.identity.user_id, self.identity.email, None
            )
        except db.UNAVAILABLE_ERRORS as exc:
            log.warning("handshake on %s failed: %s", self.connection_id, type(exc).__name__)
            error = protocol.flat_error(
                protocol.SERVICE_UNAVAILABLE, protocol.DATABASE_UNAVAILABLE, type(exc).__name__
            )
            await self.send(error)
            await self.ws.close(CloseCode.INTERNAL_ERROR, protocol.MID_TURN_REASON)
            return False
        self.handshake_thread = thread.id
        await self.send(protocol.handshake_response(thread.id))
        return True

    # -- the message loop --------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if self.config.ws_mode == "router_defect":
                # aebb16f's router is called with the wrong arguments: its TypeError ends the loop.
                log.error("message router failed on %s: TypeError; closing", self.connection_id)
                await self.ws.close(CloseCode.NORMAL, protocol.ROUTER_DEFECT_REASON)
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode(errors="replace")
            self.stats["messages_processed"] += 1
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
        if kind == ClientType.PING:
            await self.send({"type": ServerType.PONG, "timestamp": time.time()})
        elif self._head and kind == ClientType.HANDSHAKE_ACKNOWLEDGED:
            await self._acknowledge(frame)
        elif self._head and not self.acknowledged:
            log.warning(
                "dropped a %r frame on %s: sent before the handshake was acknowledged",
                kind,
                self.connection_id,
            )
        elif self._is_user_message(kind):
            self._spawn(self._chat(frame))
        else:
            ack = {
                "type": ServerType.ACK,
                "received_type": kind,
                "status": "acknowledged",
                "timestamp": time.time(),
            }
            await self.send(ack)

    def _is_user_message(self, kind: Any) -> bool:
        if protocol.is_legacy(self.profile):
            return bool(kind == ClientType.USER_MESSAGE)
        return bool(kind in USER_MESSAGE_ALIASES)

    async def _acknowledge(self, frame: dict[str, Any]) -> None:
        if frame.get("thread_id") != self.handshake_thread:
            await self._error("Handshake acknowledgement names the wrong thread_id", "HANDSHAKE_MISMATCH")
            return
        self.acknowledged = True
        await self.send(protocol.handshake_complete(str(self.handshake_thread)))

    async def _error(self, message: str, code: str) -> None:
        await self.send(
            {"type": ServerType.ERROR, "message": message, "code": code, "timestamp": time.time()}
        )

    # -- agent runs --------------------------------------------------------------------------------

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

    async def emit(self, event: dict[str, Any]) -> None:
        """One bridge-shaped agent event, as the era sends it (plus a heartbeat while the agent thinks)."""
        for frame in protocol.agent_frames(self.profile, event):
            await self.send(frame)
        self.stats["agent_events_processed"] += 1
        if event["type"] == ServerType.AGENT_THINKING and not protocol.is_legacy(self.profile):
            await self._heartbeat()

    async def _chat(self, frame: dict[str, Any]) -> None:
        given = frame.get("payload")
        payload: dict[str, Any] = given if isinstance(given, dict) else frame
        content = payload.get("content") or payload.get("text")
        if not isinstance(content, str) or not content.strip():
            await self._error("Message content is required", "EMPTY_MESSAGE")
            return
        run_id = str(payload.get("run_id") or f"run_{uuid.uuid4().hex}")
        requested = payload.get("thread_id") or frame.get("thread_id") or self.handshake_thread
        try:
            thread_id = await self._thread_for(requested, content)
        except db.UNAVAILABLE_ERRORS as exc:
            data = agent.failure(exc)
            await self.emit(agent.event(run_id, None, self.identity.user_id, ServerType.AGENT_ERROR, data))
            return
        if thread_id is None:
            await self._error("Thread not found", "THREAD_NOT_FOUND")
            return
        run = AgentRun(user_id=self.identity.user_id, thread_id=thread_id, run_id=run_id, question=content)
        try:
            await run_agent(self.backend.pool, self.config, run, self._restart_after_start())
        except PlatformRestart:
            log.warning("platform restart on %s mid-turn: closing 1012", self.connection_id)
            await self.ws.close(CloseCode.SERVICE_RESTART, protocol.RESTART_REASON)
        except AgentCrash:
            log.error("agent execution failed on %s: RuntimeError; closing 1011", self.connection_id)
            await self.send(protocol.mid_turn_error())
            await self.ws.close(CloseCode.INTERNAL_ERROR, protocol.MID_TURN_REASON)

    def _restart_after_start(self) -> Callable[[dict[str, Any]], Awaitable[None]]:
        """The session's emitter; in the restart modes, the platform ends the turn right after its
        agent_started (the first turn of this process only, or every one)."""
        global _turns_started
        _turns_started += 1
        restart = self.config.ws_mode == "restart_always" or (
            self.config.ws_mode == "restart_once" and _turns_started == 1
        )

        async def emit(frame: dict[str, Any]) -> None:
            await self.emit(frame)
            if restart and frame.get("type") == ServerType.AGENT_STARTED:
                raise PlatformRestart

        return emit

    async def _thread_for(self, requested: Any, content: str) -> str | None:
        """The user's thread to chat in: the requested one if theirs, a new one if none was named."""
        pool = self.backend.pool
        if requested:
            owner = await db.thread_owner(pool, str(requested))
            return str(requested) if owner == self.identity.user_id else None
        title = content.strip()[:THREAD_TITLE_CHARS]
        thread = await db.create_thread(pool, self.identity.user_id, self.identity.email, title)
        return thread.id
