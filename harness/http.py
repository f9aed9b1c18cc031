"""An instrumented HTTP client that turns every exchange into evidence and never raises on a body.

Why not `client.get(...).json()`: staging answers with gateway HTML, empty 503s, slow drips and
dropped connections. Here the whole exchange (connect, headers and body) runs under one hard
deadline (httpx timeouts are per chunk), at most `body_limit` bytes are read, JSON is parsed
only when the content type says JSON and the body is complete, and transport errors become
evidence with `status=None` and their kind (DNS, TLS, refused...). Everything stored is redacted.

One `HttpProbe` serves a whole run (see `harness.loop`): its concurrency bound and its pacer are
what `E2E_MAX_CONCURRENCY` and `E2E_MAX_RPS` mean.
"""

from __future__ import annotations

import asyncio
import functools
import json as jsonlib
import ssl
import time
from collections.abc import Mapping
from typing import Any

import certifi
import httpx

from harness.evidence import SNIPPET_BYTES, HttpEvidence, is_json_type, network_failure
from harness.redact import redact, redact_headers
from harness.settings import DEFAULT_BODY_LIMIT_BYTES, Settings

# httpx's own per-phase timeouts sit just behind the hard deadline, so the deadline decides.
_HTTPX_TIMEOUT_SLACK_S = 1.0
# Closing a half-read response is a socket close; bound it anyway so cleanup cannot hang.
_CLOSE_GRACE_S = 0.5


@functools.cache
def _shared_tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one costs ~40 ms, more than a local probe."""
    return ssl.create_default_context(cafile=certifi.where())


class Pacer:
    """Spaces request starts at least 1/max_rps apart (a gentle client on a shared staging)."""

    def __init__(self, max_rps: float | None) -> None:
        self._interval = 1.0 / max_rps if max_rps else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


class HttpProbe:
    """One `httpx.AsyncClient` (connection limits from settings) that returns `HttpEvidence`."""

    def __init__(
        self,
        *,
        deadline_s: float = 10.0,
        body_limit: int = DEFAULT_BODY_LIMIT_BYTES,
        max_connections: int = 4,
        max_rps: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool = True,
    ) -> None:
        self.deadline_s = deadline_s
        self.body_limit = body_limit
        self.pacer = Pacer(max_rps)
        self._concurrency = asyncio.Semaphore(max_connections)
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            verify=_shared_tls_context() if verify is True else verify,
            follow_redirects=False,  # a redirect is evidence (e.g. a login page), not something to chase
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> HttpProbe:
        options: dict[str, Any] = {
            "deadline_s": settings.request_timeout_s,
            "body_limit": settings.body_limit_bytes,
            "max_connections": settings.max_concurrency,
            "max_rps": settings.max_rps,
        }
        return cls(**(options | kwargs))

    async def __aenter__(self) -> HttpProbe:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        deadline_s: float | None = None,
        body_limit: int | None = None,
        attempt: int = 1,
    ) -> HttpEvidence:
        """Perform one exchange within `deadline_s` (whole exchange) and describe it; never raises
        except on cancellation by the caller."""
        deadline = self.deadline_s if deadline_s is None else deadline_s
        limit = self.body_limit if body_limit is None else body_limit
        ev = HttpEvidence(method=method.upper(), url=redact(url), attempt=attempt)
        await self.pacer.wait()
        async with self._concurrency:
            started = time.monotonic()
            await self._exchange(ev, url, headers, json, deadline, limit)
            ev.elapsed_s = round(time.monotonic() - started, 4)
        return ev

    async def _exchange(
        self,
        ev: HttpEvidence,
        url: str,
        headers: Mapping[str, str] | None,
        json: Any,
        deadline_s: float,
        limit: int,
    ) -> None:
        body = bytearray()
        complete = False
        response: httpx.Response | None = None
        timeout_cm = asyncio.timeout(deadline_s)
        try:
            async with timeout_cm:
                request = self._client.build_request(
                    ev.method,
                    url,
                    headers=dict(headers or {}),
                    json=json,
                    timeout=httpx.Timeout(deadline_s + _HTTPX_TIMEOUT_SLACK_S),
                )
                response = await self._client.send(request, stream=True)
                ev.status = response.status_code
                ev.content_type = response.headers.get("content-type")
                ev.headers = redact_headers(response.headers)
                complete = await _read_limited(response, body, limit)
                ev.body_truncated = not complete
        except TimeoutError as exc:
            if timeout_cm.expired():
                _note_error(ev, "DeadlineExceeded", f"no complete response within {deadline_s:g}s")
            else:  # a socket-level timeout from below: still a timeout, still evidence
                _note_error(ev, type(exc).__name__, str(exc) or "timed out")
            ev.timed_out, ev.network = True, "timeout"
            complete = False
        except httpx.TimeoutException as exc:
            _note_error(ev, type(exc).__name__, str(exc) or "timed out")
            ev.timed_out, ev.network = True, "timeout"
            complete = False
        except Exception as exc:  # transport, TLS, DNS, protocol, decoding: all are evidence
            _note_error(ev, type(exc).__name__, str(exc) or repr(exc))
            ev.network = network_failure(exc)
            complete = False
        finally:
            if response is not None:
                await _close_quietly(response)
        _fill_body(ev, bytes(body), complete=complete)


async def _read_limited(response: httpx.Response, body: bytearray, limit: int) -> bool:
    """Read up to `limit` (decoded) bytes; False when the body was longer and reading stopped."""
    async for chunk in response.aiter_bytes():
        room = limit - len(body)
        if len(chunk) > room:
            body.extend(chunk[: max(room, 0)])
            return False
        body.extend(chunk)
    return True


async def _close_quietly(response: httpx.Response) -> None:
    try:
        async with asyncio.timeout(_CLOSE_GRACE_S):
            await response.aclose()
    except Exception:  # a broken connection is already in the evidence
        pass


def _note_error(ev: HttpEvidence, error_type: str, message: str) -> None:
    ev.error_type = error_type
    ev.error = redact(message)


def _fill_body(ev: HttpEvidence, body: bytes, *, complete: bool) -> None:
    """Snippet always; JSON only for a complete, JSON-typed body (failures go to json_error)."""
    ev.body_bytes = len(body)
    ev.body_snippet = redact(body[:SNIPPET_BYTES].decode("utf-8", errors="replace"))
    if ev.status is None or not is_json_type(ev.content_type):
        return
    if not complete:
        cut = f"cut at the {ev.body_bytes}-byte limit" if ev.body_truncated else "incomplete"
        ev.json_error = f"body {cut}: not parsed"
        return
    if not body.strip():
        ev.json_error = "empty body"
        return
    try:
        ev.json = jsonlib.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        ev.json_error = redact(f"{type(exc).__name__}: {exc}")[:300]
