"""WebSocket frames of the chat protocol, in every shape the real server emits.

Agent events arrive with their fields under `data` (the bridge), under `payload` (message
processing), flat (the real `agent_completed`), or wrapped as `{"type": "system_message",
"event": <type>, "payload": {...}}` (HEAD). `event_type` and `flatten` read all of them alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract.events import GOLDEN_PATH_EVENTS, ClientType, ServerType


def iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class UserMessagePayload(BaseModel):
    model_config = ConfigDict(extra="allow")
    content: str
    thread_id: str | None = None
    run_id: str | None = None
    timestamp: float = Field(default_factory=time.time)


class UserMessage(BaseModel):
    """Client -> server: the shape the real server reads (`payload.content`)."""

    type: str = ClientType.USER_MESSAGE
    payload: UserMessagePayload


class ConnectionEstablishedData(BaseModel):
    model_config = ConfigDict(extra="allow")
    mode: str = "main"
    user_id: str  # the real server sends the first 8 characters and "..." ("e2e-e2e-...")
    connection_id: str
    golden_path_events: list[str] = Field(default_factory=lambda: [str(e) for e in GOLDEN_PATH_EVENTS])
    features: dict[str, Any] = Field(default_factory=dict)
    timestamp: str = Field(default_factory=iso_now)


class ConnectionEstablished(BaseModel):
    """Server -> client welcome: the fields sit under `data`, not at top level."""

    type: str = ServerType.CONNECTION_ESTABLISHED
    data: ConnectionEstablishedData
    timestamp: float = Field(default_factory=time.time)
    server_id: str | None = None
    correlation_id: str | None = None


class HandshakeResponse(BaseModel):
    """Server -> client (HEAD), before or after the welcome: messages sent before the client
    acknowledges this `thread_id` are lost. `session_token` is a credential."""

    model_config = ConfigDict(extra="allow")
    type: str = ServerType.HANDSHAKE_RESPONSE
    thread_id: str
    run_id: str | None = None
    request_id: str | None = None
    session_token: str | None = None
    timestamp: float = Field(default_factory=time.time)
    message: str = "Handshake initiated: acknowledge the thread_id before sending messages"


class HandshakeAcknowledged(BaseModel):
    """Client -> server (HEAD): the handshake's thread_id echoed back."""

    type: str = ClientType.HANDSHAKE_ACKNOWLEDGED
    thread_id: str
    timestamp: float = Field(default_factory=time.time)


class Heartbeat(BaseModel):
    """Server -> client at any time (idle timeout, keep-alive)."""

    model_config = ConfigDict(extra="allow")
    type: str = ServerType.HEARTBEAT
    data: dict[str, Any] = Field(default_factory=dict)  # connection_id, timestamp, stats
    timestamp: float = Field(default_factory=time.time)


class ErrorMessage(BaseModel):
    """Server -> client error frame (`error_message`); the real main-mode failure puts its fields
    under `data` (`data.error_code` CONNECTION_ERROR, `data.details.error_type`)."""

    model_config = ConfigDict(extra="allow")
    type: str = ServerType.ERROR_MESSAGE
    error_code: str | None = None
    error_message: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] | None = None
    timestamp: float = Field(default_factory=time.time)
    recovery_suggestions: list[str] = Field(default_factory=list)


class AgentEvent(BaseModel):
    """Server -> client agent event in the bridge shape (details under `data`)."""

    model_config = ConfigDict(extra="allow")
    type: str
    run_id: str
    thread_id: str | None = None
    user_id: str | None = None
    agent_name: str = "supervisor"
    timestamp: str = Field(default_factory=iso_now)
    data: dict[str, Any] = Field(default_factory=dict)


def event_type(frame: Mapping[str, Any]) -> str:
    """The frame's effective type: a `system_message` wrapper stands for the event it carries."""
    kind = str(frame.get("type", ""))
    inner = frame.get("event")
    if kind == ServerType.SYSTEM_MESSAGE and isinstance(inner, str) and inner:
        return inner
    return kind


def flatten(frame: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level fields overlaid with `payload` and `data` (every shape read alike), typed by
    `event_type`."""
    merged = {k: v for k, v in frame.items() if k not in ("payload", "data")}
    for key in ("payload", "data"):
        inner = frame.get(key)
        if isinstance(inner, Mapping):
            merged.update(inner)
    merged["type"] = event_type(frame)
    return merged


# Where the final answer sits, in the real server's order of preference (unified_manager.py).
ANSWER_KEYS = ("final_response", "response", "result")
_INNER_TEXT_KEYS = ("final_response", "response", "text", "content", "message", "answer")


def answer_text(frame: Mapping[str, Any]) -> str | None:
    """The AI answer carried by an `agent_completed` frame, in any shape: the first non-blank text;
    "" when the only texts there are blank (an empty answer, not a missing one); None if absent."""
    texts: list[str] = []
    flat = flatten(frame)
    for key in ANSWER_KEYS:
        value = flat.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, Mapping):
            texts += [value[k] for k in _INNER_TEXT_KEYS if isinstance(value.get(k), str)]
    answer = next((text for text in texts if text.strip()), None)
    return answer if answer is not None else ("" if texts else None)


def text_parts(text: str) -> list[dict[str, Any]]:
    """Message content as the real thread service stores it: a list of text parts."""
    return [{"type": "text", "text": {"value": text}}]


def message_text(content: Any) -> str | None:
    """A stored message's text: a plain string, or the text parts joined; None if neither."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping):
                continue
            text = part.get("text")
            if isinstance(text, Mapping):
                text = text.get("value")
            if isinstance(text, str):
                texts.append(text)
        return "".join(texts) if texts else None
    return None
