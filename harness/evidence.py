"""What an exchange left behind: enough to judge it later without the raw response or socket.

`HttpEvidence` describes one HTTP exchange, `WsEvidence` one chat socket (upgrade, frames, close).
Both are redacted before they are kept, and both name a failed transport the same way
(`transport_kind`), so the classifier reads HTTP and WebSocket failures alike.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from harness.redact import redact_data

SNIPPET_BYTES = 4096

# How a transport failed, read from the exception chain (types, not message text).
Transport = Literal["dns", "tls", "refused", "reset", "timeout", "network"]


def transport_kind(exc: BaseException) -> Transport:
    """The kind of a transport failure: the first recognised type in the exception's chain.

    httpx wraps httpcore, which wraps the OSError that says what happened; websockets raises the
    OSError itself. Walking `__cause__`/`__context__` finds it either way.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return "dns"
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return "tls"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        if isinstance(current, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return "reset"
        if isinstance(current, TimeoutError) or "Timeout" in type(current).__name__:
            return "timeout"
        current = current.__cause__ or current.__context__
    return "network"


@dataclass
class HttpEvidence:
    """Status, headers, timings and the first bytes of the body of one exchange (redacted).

    `status` is None when no response arrived; then `error` says why and `transport` how.
    """

    method: str
    url: str
    status: int | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body_snippet: str = ""
    body_bytes: int = 0
    body_truncated: bool = False
    json: Any = None  # the parsed body, only when it is JSON and parsed cleanly
    json_error: str | None = None  # why a JSON-typed body did not parse
    elapsed_s: float = 0.0
    error: str | None = None
    error_type: str | None = None
    transport: Transport | None = None
    timed_out: bool = False
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Redacted: evidence is for reports; callers needing raw tokens read `.json` directly."""
        return dict(redact_data(asdict(self)))

    def summary(self) -> str:
        """One line a person reads: what was asked, what came back, how long it took."""
        where = f"{self.method} {self.url}"
        if self.status is None:
            return f"{where} -> no response ({self.error_type}: {self.error}) after {self.elapsed_s:.2f}s"
        body = self.body_snippet[:120].replace("\n", " ").strip()
        return (
            f"{where} -> {self.status} {self.content_type or 'no content-type'} "
            f"in {self.elapsed_s:.2f}s, body: {body!r}"
        )


@dataclass
class WsEvidence:
    """One chat socket as the client saw it (redacted): the upgrade, every frame, the close."""

    url: str
    transport_via: str  # how the token travelled: header | subprotocol | none
    status: int | None = None  # the upgrade's HTTP status (101 when accepted)
    headers: dict[str, str] = field(default_factory=dict)
    body_snippet: str = ""
    body_json: Any = None  # the refusal's body, when it was JSON
    error: str | None = None
    error_type: str | None = None
    transport: Transport | None = None
    subprotocol: str | None = None
    close_code: int | None = None
    close_reason: str | None = None
    elapsed_s: float = 0.0
    transcript: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(redact_data(asdict(self)))

    def summary(self) -> str:
        if self.status is None:
            return f"WS {self.url} -> no upgrade ({self.error_type}: {self.error})"
        if self.status != 101:
            return f"WS {self.url} -> HTTP {self.status}, body: {self.body_snippet[:120]!r}"
        closed = f", closed {self.close_code} {self.close_reason or ''}".rstrip() if self.close_code else ""
        return f"WS {self.url} -> upgraded, {len(self.transcript)} frame(s){closed}"


def is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
