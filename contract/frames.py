"""WebSocket frames of the chat protocol, in both shapes the real server emits.

The bridge shape keeps fields under `data`; the message-processing shape keeps them under `payload`.
`flatten` merges both so that readers need not care which shape arrived.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract.events import GOLDEN_PATH_EVENTS, ClientType, ServerType


def iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Frame(BaseModel):
    """Any JSON frame: a `type` plus whatever the sender put beside it."""

    model_config = ConfigDict(extra="allow")
    type: str


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
    user_id: str
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


def flatten(frame: dict[str, Any]) -> dict[str, Any]:
    """Top-level fields overlaid with `payload` and `data` (both shapes read alike)."""
    merged = {k: v for k, v in frame.items() if k not in ("payload", "data")}
    for key in ("payload", "data"):
        inner = frame.get(key)
        if isinstance(inner, dict):
            merged.update(inner)
    return merged


ANSWER_KEYS = ("result", "response", "final_response")


def answer_text(frame: dict[str, Any]) -> str | None:
    """The AI answer carried by an `agent_completed` frame, as the real CLI reads it; None if absent."""
    flat = flatten(frame)
    for key in ANSWER_KEYS:
        value = flat.get(key)
        if isinstance(value, dict):
            for inner_key in ("response", "text", "content", "message"):
                if isinstance(value.get(inner_key), str):
                    return value[inner_key]
        if isinstance(value, str):
            return value
    return None
