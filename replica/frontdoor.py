"""The front door: a reverse proxy for HTTP and WebSocket upgrades, like Google's front end before
Cloud Run. When the upstream is not listening, starting, or crashed, callers get what staging's
callers got during Issue #1278: a 503 with an HTML page, never JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
    """One public URL in front of one upstream service on 127.0.0.1:`upstream_port`."""

    def __init__(self, name: str, upstream_port: int, faults: GatewayFaults | None = None) -> None:
        self.name = name
        self.upstream_port = upstream_port
        self.faults = faults or GatewayFaults()
        self.requests = 0
        self.gateway_errors = 0
        self._client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{upstream_port}", timeout=httpx.Timeout(300.0, connect=2.0)
        )
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

    def _page(self) -> Response:
        self.gateway_errors += 1
        return gateway_503()

    async def _http(self, request: Request) -> Response:
        self.requests += 1
        if self.faults.should_fail():
            return self._page()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        upstream = self._client.build_request(
            request.method,
            request.url.path,
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
        try:
            response = await self._client.send(upstream, stream=True)
        except httpx.TransportError as exc:
            log.warning(
                "%s: upstream unavailable for %s %s: %s", self.name, request.method, request.url.path, exc
            )
            return self._page()
        out_headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
        return StreamingResponse(
            _relay(response), status_code=response.status_code, headers={**out_headers, **GATEWAY_HEADERS}
        )

    async def _websocket(self, websocket: WebSocket) -> None:
        self.requests += 1
        if self.faults.should_fail():
            await websocket.send_denial_response(self._page())
            return
        url = f"ws://127.0.0.1:{self.upstream_port}{websocket.url.path}"
        if websocket.url.query:
            url += f"?{websocket.url.query}"
        headers = {k: v for k, v in websocket.headers.items() if k.lower() in _WS_FORWARDED}
        try:
            upstream = await connect(
                url,
                additional_headers=headers,
                subprotocols=websocket.scope.get("subprotocols") or None,  # type: ignore[arg-type]
                open_timeout=10,
                max_size=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body or b""
            headers = {k: v for k, v in exc.response.headers.items() if k.lower() in ("retry-after",)}
            content_type = exc.response.headers.get("Content-Type", "text/plain")
            await websocket.send_denial_response(
                Response(body, status_code=status, media_type=content_type, headers=headers)
            )
            return
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            log.warning("%s: websocket upstream unavailable: %s", self.name, exc)
            await websocket.send_denial_response(self._page())
            return
        await websocket.accept(subprotocol=upstream.subprotocol)
        await _bridge(websocket, upstream)

    async def aclose(self) -> None:
        await self._client.aclose()


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
