"""The front door: a reverse proxy for HTTP and WebSocket upgrades, like Google's front end before
Cloud Run. It balances requests round robin over the service's instances, skipping any that refuses
the connection (not listening: starting, crashed, in backoff); when none answers, callers get what
staging's callers got during Issue #1278: a 503 with an HTML page, never JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

log = logging.getLogger("replica.frontdoor")

# The page Google's front end serves when no healthy instance answers (text/html).
GATEWAY_503_PAGE = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <title>Error 503 (Service Unavailable)!!1</title>
  <p><b>503.</b> <ins>That's an error.</ins>
  <p>The service you requested is not available yet. Please try again in 30 seconds.
  <ins>That's all we know.</ins>
</html>
"""
GATEWAY_HEADERS = {"Server": "Google Frontend", "Via": "1.1 google"}
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
     "transfer-encoding", "upgrade", "host", "content-length", "server"}
)  # fmt: skip
_WS_FORWARDED = ("authorization", "x-e2e-bypass-key", "user-agent")


@dataclass
class GatewayFaults:
    """Faults of the front door itself: a share of requests answered with the 503 page.

    The share is spread evenly over requests (deterministic, no randomness), so a 30% rate fails
    3 requests in every 10 and a test run is reproducible.
    """

    error_rate: float = 0.0
    _seen: int = 0
    injected: int = 0

    def should_fail(self) -> bool:
        self._seen += 1
        n = self._seen
        failed = int(n * self.error_rate) > int((n - 1) * self.error_rate)
        self.injected += failed
        return failed


def gateway_503() -> Response:
    return HTMLResponse(GATEWAY_503_PAGE, status_code=503, headers=GATEWAY_HEADERS)


class FrontDoor:
    """One public URL in front of a service's instances, each on 127.0.0.1:port."""

    def __init__(
        self, name: str, upstreams: int | Mapping[str, int], faults: GatewayFaults | None = None
    ) -> None:
        self.name = name
        named = {name: upstreams} if isinstance(upstreams, int) else dict(upstreams)
        self.upstreams = list(named.items())
        self.faults = faults or GatewayFaults()
        self.requests = 0
        self.gateway_errors = 0
        self.answered = {instance: 0 for instance, _ in self.upstreams}  # requests each instance took
        self._next = 0
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=2.0))
        self.app = Starlette(
            routes=[
                WebSocketRoute("/{path:path}", self._websocket),
                Route(
                    "/{path:path}",
                    self._http,
                    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                ),
            ]
        )

    def _rotation(self) -> list[tuple[int, str, int]]:
        """(index, name, port) of every instance, starting after the one that answered last."""
        count = len(self.upstreams)
        order = [(self._next + i) % count for i in range(count)]
        return [(i, *self.upstreams[i]) for i in order]

    def _took(self, index: int, instance: str) -> None:
        self.answered[instance] += 1
        self._next = (index + 1) % len(self.upstreams)

    def _page(self) -> Response:
        self.gateway_errors += 1
        return gateway_503()

    async def _http(self, request: Request) -> Response:
        self.requests += 1
        if self.faults.should_fail():
            return self._page()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        body = await request.body()
        for index, instance, port in self._rotation():
            upstream = self._client.build_request(
                request.method,
                f"http://127.0.0.1:{port}{request.url.path}",
                params=request.query_params,
                headers=headers,
                content=body,
            )
            try:
                response = await self._client.send(upstream, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                continue  # this instance does not answer: the next one
            except httpx.TransportError as exc:
                log.warning(
                    "%s: %s failed %s %s: %s", self.name, instance, request.method, request.url.path, exc
                )
                return self._page()
            self._took(index, instance)
            out_headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
            return StreamingResponse(
                _relay(response), status_code=response.status_code, headers={**out_headers, **GATEWAY_HEADERS}
            )
        log.warning("%s: no instance answers %s %s", self.name, request.method, request.url.path)
        return self._page()

    async def _websocket(self, websocket: WebSocket) -> None:
        self.requests += 1
        if self.faults.should_fail():
            await websocket.send_denial_response(self._page())
            return
        path = websocket.url.path + (f"?{websocket.url.query}" if websocket.url.query else "")
        headers = {k: v for k, v in websocket.headers.items() if k.lower() in _WS_FORWARDED}
        for index, instance, port in self._rotation():
            try:
                upstream = await connect(
                    f"ws://127.0.0.1:{port}{path}",
                    additional_headers=headers,
                    subprotocols=websocket.scope.get("subprotocols") or None,  # type: ignore[arg-type]
                    open_timeout=10,
                    max_size=None,
                )
            except InvalidStatus as exc:
                self._took(index, instance)
                await websocket.send_denial_response(_denial(exc))
                return
            except ConnectionRefusedError:
                continue  # this instance does not answer: the next one
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                log.warning("%s: websocket upstream %s unavailable: %s", self.name, instance, exc)
                await websocket.send_denial_response(self._page())
                return
            self._took(index, instance)
            await websocket.accept(subprotocol=upstream.subprotocol)
            await _bridge(websocket, upstream)
            return
        log.warning("%s: no instance answers the websocket upgrade", self.name)
        await websocket.send_denial_response(self._page())

    async def aclose(self) -> None:
        await self._client.aclose()


def _denial(exc: InvalidStatus) -> Response:
    """The upstream's own refusal of an upgrade, passed through (status, body, type, Retry-After)."""
    headers = {k: v for k, v in exc.response.headers.items() if k.lower() in ("retry-after",)}
    content_type = exc.response.headers.get("Content-Type", "text/plain")
    return Response(
        exc.response.body or b"",
        status_code=exc.response.status_code,
        media_type=content_type,
        headers=headers,
    )


async def _relay(response: httpx.Response):  # type: ignore[no-untyped-def]
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError:
        log.warning("upstream dropped the response body")
    finally:
        await response.aclose()


async def _bridge(client: WebSocket, upstream: ClientConnection) -> None:
    """Pump frames both ways until one side closes, then pass its close code to the other."""

    async def client_to_upstream() -> None:
        try:
            while True:
                message = await client.receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close(message.get("code", 1000))
                    return
                data = message.get("text") if message.get("text") is not None else message.get("bytes")
                await upstream.send(data)
        except (WebSocketDisconnect, ConnectionClosed):
            return

    async def upstream_to_client() -> None:
        try:
            async for data in upstream:
                if isinstance(data, str):
                    await client.send_text(data)
                else:
                    await client.send_bytes(data)
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1006
        close_code = 1011 if code in (1005, 1006) else code  # 1005/1006 may not be sent on the wire
        with contextlib.suppress(Exception):
            await client.close(close_code, upstream.close_reason or "")

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await upstream.close()
