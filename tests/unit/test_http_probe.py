"""HttpProbe against real sockets: nasty bodies become evidence within the deadline, never exceptions.

Each test starts a raw asyncio server on 127.0.0.1 that misbehaves in one way.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from harness.evidence import SNIPPET_BYTES, HttpEvidence
from harness.http import HttpProbe
from harness.redact import MASK, register

pytestmark = pytest.mark.unit

Behaviour = Callable[[asyncio.StreamWriter], Awaitable[None]]
DEADLINE_S = 0.6
# Bounds "stopped at the deadline" against "ran on": a drip or a huge body would take seconds more.
# Generous, so that a loaded 2-core machine cannot break it.
SLACK_S = 1.5
TIMER_TOLERANCE_S = 0.05  # elapsed_s is rounded and measured inside the call: compare with a margin


def probe(
    method: str, url: str, *, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any
) -> HttpEvidence:
    """One request through a fresh client (the suite shares one per run; a test needs no more)."""

    async def one() -> HttpEvidence:
        async with HttpProbe(transport=transport) as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(one())


def head(status: str = "200 OK", content_type: str = "application/json", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{extra}\r\n".encode()


def exchange(behaviour: Behaviour, path: str = "/health", **kwargs: Any) -> tuple[HttpEvidence, float]:
    """Serve `behaviour` once on a fresh port, run one probe request, return evidence and wall time."""

    async def main() -> tuple[HttpEvidence, float]:
        handlers: set[asyncio.Task[None]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None  # the server runs each connection's handler in a task of its own
            handlers.add(task)
            try:
                await reader.readuntil(b"\r\n\r\n")
                await behaviour(writer)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, HttpProbe(deadline_s=DEADLINE_S) as client:
            started = time.monotonic()
            ev = await client.request("GET", f"http://127.0.0.1:{port}{path}", **kwargs)
            took = time.monotonic() - started
            for task in handlers:  # stop the misbehaving server before the loop ends
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            return ev, took

    return asyncio.run(main())


async def drip(writer: asyncio.StreamWriter) -> None:
    writer.write(head(extra="Content-Length: 1000\r\n"))
    for _ in range(1000):
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.05)


async def ten_megabytes(writer: asyncio.StreamWriter) -> None:
    size = 10 * 1024 * 1024
    writer.write(head(extra=f"Content-Length: {size}\r\n"))
    block = b"[" + b"1," * 32767 + b"1"  # 64 KiB of a never-ending JSON array
    for _ in range(size // len(block)):
        writer.write(block)
        await writer.drain()


async def invalid_utf8(writer: asyncio.StreamWriter) -> None:
    body = b'{"status": "ok\xff\xfe"}'
    writer.write(head(extra=f"Content-Length: {len(body)}\r\n") + body)
    await writer.drain()


async def close_mid_body(writer: asyncio.StreamWriter) -> None:
    writer.write(head(extra="Content-Length: 100\r\n") + b'{"status": "ok"')
    await writer.drain()


async def never_answer(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def gateway_page(writer: asyncio.StreamWriter) -> None:
    body = b"<html><title>Error 503 (Server Error)!!1</title></html>"
    writer.write(head("503 Service Unavailable", "text/html", f"Content-Length: {len(body)}\r\n") + body)
    await writer.drain()


async def json_ok(writer: asyncio.StreamWriter) -> None:
    body = b'{"status": "healthy", "service": "netra-ai-platform"}'
    writer.write(head(extra=f"Content-Length: {len(body)}\r\n") + body)
    await writer.drain()


def test_slow_drip_body_stops_at_the_deadline() -> None:
    ev, took = exchange(drip)
    assert (ev.status, ev.timed_out, took < DEADLINE_S + SLACK_S) == (200, True, True)


def test_slow_drip_keeps_what_arrived_but_does_not_parse_it() -> None:
    ev, _ = exchange(drip)
    assert (ev.json, ev.json_error) == (None, "body incomplete: not parsed")


def test_ten_megabytes_are_cut_at_the_body_limit() -> None:
    ev, took = exchange(ten_megabytes, body_limit=1024 * 1024)
    assert (ev.body_truncated, ev.body_bytes, took < DEADLINE_S + SLACK_S) == (True, 1024 * 1024, True)


def test_truncated_json_body_is_not_parsed() -> None:
    ev, _ = exchange(ten_megabytes, body_limit=64 * 1024)
    assert ev.json is None and ev.json_error is not None and "limit" in ev.json_error


def test_snippet_is_bounded() -> None:
    ev, _ = exchange(ten_megabytes, body_limit=64 * 1024)
    assert len(ev.body_snippet.encode()) == SNIPPET_BYTES


def test_invalid_utf8_json_becomes_json_error() -> None:
    ev, _ = exchange(invalid_utf8)
    assert (ev.status, ev.json, ev.json_error is not None) == (200, None, True)


def test_invalid_utf8_snippet_uses_replacement_characters() -> None:
    ev, _ = exchange(invalid_utf8)
    assert ev.body_snippet == '{"status": "ok\ufffd\ufffd"}'


def test_close_mid_body_keeps_status_and_names_the_error() -> None:
    ev, took = exchange(close_mid_body)
    assert (ev.status, ev.error_type, ev.timed_out, took < DEADLINE_S + SLACK_S) == (
        200,
        "RemoteProtocolError",
        False,
        True,
    )


def test_no_answer_is_a_timeout_without_status() -> None:
    ev, took = exchange(never_answer)
    assert (ev.status, ev.timed_out, took < DEADLINE_S + SLACK_S) == (None, True, True)


def test_gateway_html_page_is_kept_as_a_snippet() -> None:
    ev, _ = exchange(gateway_page)
    assert (ev.status, ev.content_type, ev.json, "Error 503" in ev.body_snippet) == (
        503,
        "text/html",
        None,
        True,
    )


def test_json_body_is_parsed() -> None:
    ev, _ = exchange(json_ok)
    assert ev.json == {"status": "healthy", "service": "netra-ai-platform"}


def test_elapsed_is_recorded() -> None:
    ev, took = exchange(drip)
    assert DEADLINE_S - TIMER_TOLERANCE_S <= ev.elapsed_s <= took + TIMER_TOLERANCE_S


def test_connection_refused_is_evidence_not_an_exception() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    ev = probe("GET", f"http://127.0.0.1:{port}/health", deadline_s=DEADLINE_S)
    assert (ev.status, ev.error_type, ev.timed_out, ev.network) == (None, "ConnectError", False, "refused")


def test_a_name_that_does_not_resolve_is_named_dns() -> None:
    ev = probe("GET", "http://api.staging.invalid/health", deadline_s=DEADLINE_S * 5)
    assert (ev.status, ev.network) == (None, "dns")


def test_secrets_in_url_and_body_are_redacted() -> None:
    register("probe-secret-value-123")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"echo": "probe-secret-value-123"}, headers={"Set-Cookie": "s=1"})

    ev = probe("GET", "http://127.0.0.1/x?key=probe-secret-value-123", transport=httpx.MockTransport(handler))
    stored = ev.url + ev.body_snippet + str(ev.headers)
    assert "probe-secret-value-123" not in stored and ev.headers["set-cookie"] == MASK
