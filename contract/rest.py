"""REST bodies of the backend and the auth service (the fields both sides rely on)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class HealthBody(_Open):
    """Any health document: `status` is the only field every variant has."""

    status: str
    service: str | None = None


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
    id: str
    role: str
    content: str
    created_at: int
    metadata: dict[str, Any] = Field(default_factory=dict)


class MessagesPage(_Open):
    messages: list[Message]
    thread_id: str
    total: int
    limit: int
    offset: int
