"""REST bodies of the backend and the auth service (the fields both sides rely on)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# `status` values of a healthy document: the backend at aebb16f says "ok", older builds and the auth
# service say "healthy" (with `service`); "pass" is the IETF health-check draft's word.
HEALTHY_STATUSES = frozenset({"ok", "healthy", "pass"})
READY_STATUSES = frozenset({"ready", "ok", "healthy", "pass"})


class ErrorEnvelope(_Open):
    """The backend's own error body, on every status (routes/utils/error_handlers.py); in staging it
    carries a stack trace. Recognised by `error: true` plus a string `error_code`."""

    error: bool = True
    error_code: str
    message: str
    user_message: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    trace_id: str | None = None
    request_id: str | None = None
    timestamp: str | None = None


def is_error_envelope(body: Any) -> bool:
    return isinstance(body, dict) and body.get("error") is True and isinstance(body.get("error_code"), str)


class StartupHealth(_Open):
    """The backend's own 503 while its startup runs or after it failed (the rich /health variant)."""

    status: str = "unhealthy"
    message: str
    startup_in_progress: bool | None = None
    startup_failed: bool | None = None
    startup_complete: bool | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class TokenUser(_Open):
    id: str
    email: str
    name: str | None = None
    permissions: list[str] = Field(default_factory=list)
    oauth_simulated: bool | None = None


class TokenResponse(_Open):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int = 900
    user: TokenUser | None = None


class TestAuthRequest(_Open):
    __test__ = False  # not a pytest test class
    email: str | None = None
    name: str | None = None
    permissions: list[str] = Field(default_factory=lambda: ["read", "write"])
    simulate_oauth: bool = True


class ValidateResponse(_Open):
    valid: bool
    user_id: str | None = None
    email: str | None = None
    error: str | None = None


class ThreadCreate(_Open):
    title: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Thread(_Open):
    id: str
    object: str = "thread"
    title: str | None = None
    created_at: int
    updated_at: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    message_count: int = 0


class Message(_Open):
    """A stored message; `content` is a plain string (older builds) or a list of text parts."""

    id: str
    role: str
    content: str | list[dict[str, Any]]
    created_at: int
    metadata: dict[str, Any] = Field(default_factory=dict)


class MessagesPage(_Open):
    messages: list[Message]
    thread_id: str
    total: int
    limit: int
    offset: int
