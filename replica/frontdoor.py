"""The front door: a reverse proxy for HTTP and WebSocket upgrades, like Google's front end before
Cloud Run. It balances requests round robin over the service's instances, skipping any that refuses
the connection (not listening: starting, crashed, in backoff); when none answers, callers get what
staging's callers got during Issue #1278: a 503 with an HTML page, never JSON.

Instances come and go at runtime (a rollout): a new one is `add`ed once it serves; an old one is
`drain`ed (no new request or upgrade goes to it) and `remove`d once its open requests and sockets
have finished (`drained`), so callers never see the swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
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
    """Faults of the front door itself: a share of requests answered with the 503 page, or all of
    them (`outage`: the load balancer / ingress is down while every instance behind it is healthy).

    The share is spread evenly over requests (deterministic, no randomness), so a 30% rate fails
    3 requests in every 10 and a test run is reproducible.
    """

    error_rate: float = 0.0
    outage: bool = False
    _seen: int = 0
    injected: int = 0

    def should_fail(self) -> bool:
        self._seen += 1
        n = self._seen
        failed = self.outage or int(n * self.error_rate) > int((n - 1) * self.error_rate)
        self.injected += failed
        return failed

    def clear(self) -> None:
        self.error_rate = 0.0
        self.outage = False


@dataclass(eq=False)
class Upstream:
    """One instance behind the door: its name (the slot it fills), its port, and what it is doing."""

    name: str
    port: int
    draining: bool = False  # takes no new request or upgrade
    inflight: int = 0  # requests being relayed and sockets being bridged right now


def gateway_503() -> Response:
    return HTMLResponse(GATEWAY_503_PAGE, status_code=503, headers=GATEWAY_HEADERS)


class FrontDoor:
    """One public URL in front of a service's instances, each on 127.0.0.1:port."""

    def __init__(
        self, name: str, upstreams: int | Mapping[str, int], faults: GatewayFaults | None = None
    ) -> None:
        self.name = name
        named = {name: upstreams} if isinstance(upstreams, int) else dict(upstreams)
        self.upstreams = [Upstream(instance, port) for instance, port in named.items()]
        self.faults = faults or GatewayFaults()
        self.requests = 0
        self.gateway_errors = 0
        self.answered = {instance: 0 for instance in named}  # requests each instance (slot) took
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

    # -- instances coming and going -------------------------------------------------------------
    def add(self, name: str, port: int) -> None:
        """A new instance that serves: it takes requests from now on."""
        self.upstreams.append(Upstream(name, port))
        self.answered.setdefault(name, 0)

    def drain(self, port: int) -> None:
        """No new request or upgrade goes to the instance on `port`; open ones go on."""
        for upstream in self.upstreams:
            if upstream.port == port:
                upstream.draining = True

    async def drained(self, port: int, timeout_s: float) -> bool:
        """Whether the instance on `port` finished its open requests and sockets within `timeout_s`."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(u.port == port and u.inflight for u in self.upstreams):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def remove(self, port: int) -> None:
        self.upstreams = [u for u in self.upstreams if u.port != port]

    def status(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "gateway_errors": self.gateway_errors,
            "answered": dict(self.answered),
            "upstreams": [
                {"name": u.name, "port": u.port, "draining": u.draining, "inflight": u.inflight}
                for u in self.upstreams
            ],
        }

    # -- relaying ---------------------------------------------------------------------------------
    def _rotation(self) -> list[Upstream]:
        """Every instance taking requests, starting after the one that answered last."""
        live = [u for u in self.upstreams if not u.draining]
        start = self._next % len(live) if live else 0
        return live[start:] + live[:start]

    def _took(self, upstream: Upstream) -> None:
        self.answered[upstream.name] += 1
        live = [u for u in self.upstreams if not u.draining]
        self._next = (live.index(upstream) + 1) if upstream in live else 0

    def _page(self) -> Response:
        self.gateway_errors += 1
        return gateway_503()

    async def _http(self, request: Request) -> Response:
        self.requests += 1
        if self.faults.should_fail():
            return self._page()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        body = await request.body()
        for upstream in self._rotation():
            built = self._client.build_request(
                request.method,
                f"http://127.0.0.1:{upstream.port}{request.url.path}",
                params=request.query_params,
                headers=headers,
                content=body,
            )
            upstream.inflight += 1
            try:
                response = await self._client.send(built, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                upstream.inflight -= 1
                continue  # this instance does not answer: the next one
            except httpx.TransportError as exc:
                upstream.inflight -= 1
                log.warning(
                    "%s: %s failed %s %s: %s", self.name, upstream.name, request.method, request.url.path, exc
                )
                return self._page()
            self._took(upstream)
            out_headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
            return StreamingResponse(
                _relay(response, upstream),
                status_code=response.status_code,
                headers={**out_headers, **GATEWAY_HEADERS},
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
        for upstream in self._rotation():
            upstream.inflight += 1
            try:
                await self._bridge_to(websocket, upstream, path, headers)
                return
            except ConnectionRefusedError:
                continue  # this instance does not answer: the next one
            finally:
                upstream.inflight -= 1
        log.warning("%s: no instance answers the websocket upgrade", self.name)
        await websocket.send_denial_response(self._page())

    async def _bridge_to(
        self, websocket: WebSocket, upstream: Upstream, path: str, headers: dict[str, str]
    ) -> None:
        """The upgrade through `upstream`, bridged until one side closes; ConnectionRefusedError if
        it does not listen (the caller tries the next one)."""
        try:
            connection = await connect(
                f"ws://127.0.0.1:{upstream.port}{path}",
                additional_headers=headers,
                subprotocols=websocket.scope.get("subprotocols") or None,
                open_timeout=10,
                max_size=None,
            )
        except InvalidStatus as exc:
            self._took(upstream)
            await websocket.send_denial_response(_denial(exc))
            return
        except ConnectionRefusedError:
            raise
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            log.warning("%s: websocket upstream %s unavailable: %s", self.name, upstream.name, exc)
            await websocket.send_denial_response(self._page())
            return
        self._took(upstream)
        await websocket.accept(subprotocol=connection.subprotocol)
        await _bridge(websocket, connection)

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


async def _relay(response: httpx.Response, upstream: Upstream) -> AsyncIterator[bytes]:
    """The upstream's body to the caller; the request counts as open on `upstream` until it ends."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError:
        log.warning("upstream dropped the response body")
    finally:
        upstream.inflight -= 1
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
                if data is not None:
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
