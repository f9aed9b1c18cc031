"""What an exchange left behind, and the facts every judge reads.

`HttpEvidence` describes one HTTP exchange, `WsEvidence` one chat socket (upgrade, frames, close);
both are redacted before they are kept. `Observation` is the channel-neutral record of facts built
from either (status or close code, content type, the body parsed as JSON or why not, how the
network failed): the decision table (`harness.classify`), a known-issue signature
(`harness.known_issues`) and a summary ask HTTP and WebSocket the same questions through it.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from harness.redact import redact_data

SNIPPET_BYTES = 4096

Target = Literal["backend", "auth"]  # the services the suite asks
Channel = Literal["http", "ws", "logs"]  # logs: a finding read from the backend's startup record
# How the network failed when no answer arrived, read from the exception chain (types, not text).
NetworkFailure = Literal["dns", "tls", "refused", "reset", "timeout", "network"]


def network_failure(exc: BaseException) -> NetworkFailure:
    """The kind of a network failure: the first recognised type in the exception's chain.

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


@dataclass(frozen=True)
class Observation:
    """The facts of one exchange, whatever its channel.

    `status` is the HTTP status (an upgrade's: 101 when accepted), None when no answer arrived:
    then `network` says how the network failed. `expected` says whether the status is one the
    caller expected. `body_json` is the body parsed as JSON (None when it is not JSON: `json_error`
    says why for a JSON-typed body); on a socket, `error_frame` is the error frame the server sent.
    """

    channel: Channel
    target: Target
    path: str
    where: str = ""  # host:port
    status: int | None = None
    expected: bool = False
    network: NetworkFailure | None = None
    error: str | None = None
    body_cut: Literal["timeout", "dropped"] | None = None  # the status arrived, the body did not
    content_type: str | None = None
    body_snippet: str = ""
    body_bytes: int = 0
    body_truncated: bool = False
    body_json: Any = None
    json_error: str | None = None
    error_frame: Mapping[str, Any] | None = None
    close_code: int | None = None
    close_reason: str | None = None
    auth_step: bool = False  # 401/403 here is an authentication decision

    @property
    def is_json(self) -> bool:
        """The service answered in JSON: a parsed body, or an error frame."""
        return self.body_json is not None or self.error_frame is not None

    @property
    def service_json(self) -> Mapping[str, Any] | None:
        """The service's own words on a failure: an error frame, or a JSON object on an unexpected status."""
        if self.error_frame is not None:
            return self.error_frame
        if not self.expected and isinstance(self.body_json, Mapping):
            return self.body_json
        return None

    @property
    def failed(self) -> bool:
        """Something to explain: an unexpected status, an error frame, or a close."""
        return not self.expected or self.close_code is not None or self.service_json is not None

    @property
    def media_type(self) -> str:
        return (self.content_type or "").split(";", 1)[0].strip().lower()

    @property
    def is_html(self) -> bool:
        head = self.body_snippet.lstrip()[:15].lower()
        return self.media_type in ("text/html", "application/xhtml+xml") or head.startswith(
            ("<!doctype html", "<html")
        )

    @property
    def reported_service(self) -> str | None:
        """The `service` a JSON body names about itself, if any."""
        service = self.body_json.get("service") if isinstance(self.body_json, Mapping) else None
        return service if isinstance(service, str) else None


def _path(url: str) -> str:
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return url


def _where(url: str) -> str:
    try:
        parts = urlsplit(url)
        default = {"https": "443", "wss": "443"}.get(parts.scheme, "80")
        return f"{parts.hostname}:{parts.port or default}"
    except ValueError:
        return url


@dataclass
class HttpEvidence:
    """Status, headers, timings and the first bytes of the body of one exchange (redacted).

    `status` is None when no response arrived; then `error` says why and `network` how.
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
    network: NetworkFailure | None = None
    timed_out: bool = False
    attempt: int = 1

    def observe(self, target: Target, *, ok: frozenset[int], auth_step: bool = False) -> Observation:
        """The facts of this exchange, for a caller that expected one of the statuses `ok`."""
        body_cut: Literal["timeout", "dropped"] | None = None
        if self.status is not None and self.timed_out:
            body_cut = "timeout"
        elif self.status is not None and self.error is not None:
            body_cut = "dropped"
        network: NetworkFailure | None = None
        if self.status is None:
            network = "timeout" if self.timed_out else self.network or "network"
        return Observation(
            channel="http",
            target=target,
            path=_path(self.url),
            where=_where(self.url),
            status=self.status,
            expected=self.status in ok,
            network=network,
            error=self.error,
            body_cut=body_cut,
            content_type=self.content_type,
            body_snippet=self.body_snippet,
            body_bytes=self.body_bytes,
            body_truncated=self.body_truncated,
            body_json=self.json,
            json_error=self.json_error,
            auth_step=auth_step,
        )

    def to_dict(self) -> dict[str, Any]:
        """Redacted: evidence is for reports; callers needing raw tokens read `.json` directly."""
        return dict(redact_data(asdict(self)))

    def summary(self) -> str:
        """One line a person reads: what was asked, what came back (the body's key fact), how long."""
        where = f"{self.method} {self.url}"
        if self.status is None:
            return f"{where} -> no response ({self.error_type}: {self.error}) after {self.elapsed_s:.2f}s"
        return (
            f"{where} -> {self.status} {self.content_type or 'no content-type'} "
            f"in {self.elapsed_s:.2f}s, {key_fact(self.body_snippet, self.json)}"
        )


@dataclass
class WsEvidence:
    """One chat socket as the client saw it (redacted): the upgrade, every frame, the close."""

    url: str
    token_via: str  # how the token travelled: header | subprotocol | none
    status: int | None = None  # the upgrade's HTTP status (101 when accepted)
    headers: dict[str, str] = field(default_factory=dict)
    body_snippet: str = ""
    body_json: Any = None  # the refusal's body, when it was JSON
    error: str | None = None
    error_type: str | None = None
    network: NetworkFailure | None = None
    subprotocol: str | None = None
    close_code: int | None = None
    close_reason: str | None = None
    elapsed_s: float = 0.0
    transcript: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(redact_data(asdict(self)))

    def observe(
        self,
        target: Target = "backend",
        *,
        error_frame: Mapping[str, Any] | None = None,
        auth_step: bool = True,
    ) -> Observation:
        """The socket's facts: the refused upgrade (and its body), or the error frame and close after it."""
        no_answer = self.status is None and self.close_code is None
        content_type = next((v for k, v in self.headers.items() if k.lower() == "content-type"), None)
        return Observation(
            channel="ws",
            target=target,
            path=_path(self.url),
            where=_where(self.url),
            status=self.status,
            expected=self.status == 101,
            network=(self.network or "network") if no_answer else None,
            error=self.error,
            content_type=content_type,
            body_snippet=self.body_snippet,
            body_bytes=len(self.body_snippet),
            body_json=self.body_json,
            error_frame=error_frame,
            close_code=self.close_code,
            close_reason=self.close_reason,
            auth_step=auth_step,
        )

    def summary(self) -> str:
        if self.status is None:
            return f"WS {self.url} -> no upgrade ({self.error_type}: {self.error})"
        if self.status != 101:
            return f"WS {self.url} -> HTTP {self.status}, {key_fact(self.body_snippet, self.body_json)}"
        closed = f", closed {self.close_code} {self.close_reason or ''}".rstrip() if self.close_code else ""
        return f"WS {self.url} -> upgraded, {len(self.transcript)} frame(s){closed}"


_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")
_MESSAGE_KEYS = ("message", "detail", "error_message", "reason", "error", "status")


def key_fact(snippet: str, parsed: Any = None) -> str:
    """The fact of a body a person needs: an HTML page's `<title>`, the service's own message in its
    JSON, else the first bytes."""
    if isinstance(parsed, Mapping):
        said = next(
            (f"{k}: {parsed[k]!r}" for k in _MESSAGE_KEYS if isinstance(parsed.get(k), str | bool)), None
        )
        code = parsed.get("error_code")
        if said:
            return f"its JSON says {code + ', ' if isinstance(code, str) else ''}{said}"[:200]
    title = _TITLE.search(snippet)
    if title:
        return f"page title {' '.join(title.group(1).split())[:120]!r}"
    body = snippet[:120].replace("\n", " ").strip()
    return f"body: {body!r}" if body else "empty body"


def is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
