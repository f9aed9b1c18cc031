"""A hostile staging impostor: one server on 127.0.0.1 that plays the backend, the auth service and
the chat WebSocket, and misbehaves in one chosen way (Issue 5, "Hostile responses").

Why not fault knobs of the replica: each mode needs control of the raw response (a content type
that lies, invalid UTF-8, a drip, a 10 MB body, frames out of order) that a faithful replica has
no business containing. The self-tests point the whole suite at this server (E2E_ENV=custom) and
check that every mode ends as a classified failure (or a pass) within its deadline.

One port serves everything, so the auth service lives under a prefix (its /health must stay
healthy while the backend's misbehaves):

    /health, /health/ready, /health/database, /ws/health, /api/...   backend   (hostile per mode)
    /ws                                                               chat socket (hostile per mode)
    /auth-service/health, /health/ready, /auth/e2e/test-auth, /auth/validate, /auth/me
                                                                      auth service (polite, except token-echo)
    GET /__hostile__/mode, PUT /__hostile__/mode/{mode}, GET /__hostile__/stats
                                                                      control: switch modes at run time

Modes (the backend's HTTP paths misbehave in the first group, the chat socket in the second):

    polite                       the control: a well-behaved staging the whole suite passes against
    json-typed-html-503          503, Content-Type application/json, a gateway's HTML page
    html-200-on-health           200 with the frontend's HTML page on the health paths
    empty-body                   200 application/json, no body
    invalid-utf8                 200 application/json, bytes that are not UTF-8
    huge-body                    200 application/json, 10 MB
    slow-drip                    headers at once, then one body byte per second
    huge-retry-after             a gateway's 503 maintenance page (text) with Retry-After: 86400
    ws-close-after-upgrade       upgrade accepted, then closed 1011 before any frame
    ws-garbage-frames            connection_established, then non-JSON frames, then silence
    ws-out-of-order              the five agent events in the wrong order
    ws-duplicates                agent_started and agent_completed twice (same run, same answer)
    ws-completed-without-result  agent_completed without a result
    token-echo                   credentials sent back: a 503 on every other login (with the bypass
                                 key), 200 {"valid": false} naming the token, /auth/me 500 and
                                 /api 401 repeating the Authorization header, the socket refused
                                 with a 401 repeating it, an error frame in the chat quoting it

Tokens are HS256 JWTs signed with a per-process random secret, so forged ones are refused; nothing
secret is ever printed or logged (uvicorn's access log is off).

    python -m replica.hostile --mode slow-drip --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from contract.events import CloseCode, ServerType
from contract.frames import AgentEvent, ConnectionEstablished, ConnectionEstablishedData
from contract.identity import AUTH_SERVICE, BACKEND_SERVICE, BYPASS_KEY_HEADER, DEFAULT_TEST_EMAIL
from replica import tokens
from replica.backend_app import negotiate_subprotocol

HOST = "127.0.0.1"
AUTH_PREFIX = "/auth-service"
CONTROL_PREFIX = "/__hostile__"

HTTP_MODES = (
    "json-typed-html-503",
    "html-200-on-health",
    "empty-body",
    "invalid-utf8",
    "huge-body",
    "slow-drip",
    "huge-retry-after",
)
WS_MODES = (
    "ws-close-after-upgrade",
    "ws-garbage-frames",
    "ws-out-of-order",
    "ws-duplicates",
    "ws-completed-without-result",
)
MODES = ("polite", *HTTP_MODES, *WS_MODES, "token-echo")

HUGE_BODY_BYTES = 10 * 1024 * 1024
DRIP_INTERVAL_S = 1.0
DRIP_BODY = json.dumps({"status": "healthy", "service": BACKEND_SERVICE, "padding": "." * 600}).encode()
RETRY_AFTER_S = 86400
GATEWAY_HTML = (
    b"<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 503 (Server Error)!!1</title>"
    b"<p><b>503.</b> <ins>That's an error.</ins><p>The service you requested is not available yet.</html>"
)
FRONTEND_HTML = (
    b"<!doctype html><html><head><title>Netra</title></head>"
    b'<body><div id="root">Loading the app...</div><script src="/static/app.js"></script></body></html>'
)
# A JSON-looking health body with bytes that are not UTF-8 (a lone continuation byte, an overlong form).
INVALID_UTF8_BODY = b'{"status": "healthy", "service": "netra-ai-platform", "note": "\xff\xfe\x80\xc0\xaf"}'
TOOL_NAME = "thread_history"


def _padded_json(size: int) -> bytes:
    head = b'{"status": "healthy", "service": "netra-ai-platform", "padding": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


HUGE_BODY = _padded_json(HUGE_BODY_BYTES)  # built once: serving it must cost the server nothing


@dataclass
class State:
    """The mode and what the server remembers between requests (reset on every mode switch)."""

    mode: str
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    logins: int = 0
    echoes: int = 0  # how many secrets were echoed back (self-tests check the scan had something to find)
    threads: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def switch(self, mode: str) -> None:
        self.mode, self.logins, self.echoes = mode, 0, 0
        self.threads.clear()


# ---------------------------------------------------------------------------------------------
# Backend: health and REST paths


def _polite_backend(path: str) -> dict[str, Any] | None:
    """The body a healthy backend would send for `path` (None: not a path it serves)."""
    now = time.time()
    bodies: dict[str, dict[str, Any]] = {
        "/health": {"status": "healthy", "service": BACKEND_SERVICE, "version": "hostile", "timestamp": now},
        "/health/ready": {"status": "ready", "service": BACKEND_SERVICE, "core_db": "connected"},
        "/health/database": {"status": "healthy", "connected": True, "timestamp": now},
        "/ws/health": {"status": "healthy", "mode": "hostile"},
    }
    return bodies.get(path.rstrip("/") or "/")


async def _drip() -> AsyncIterator[bytes]:
    """One byte per interval: the whole body would take minutes, far past any sane deadline."""
    for byte in DRIP_BODY:
        yield bytes([byte])
        await asyncio.sleep(DRIP_INTERVAL_S)


def _hostile_http(mode: str, path: str) -> Response | None:
    """The mode's misbehaviour for a backend HTTP path, or None to answer politely."""
    on_health = _polite_backend(path) is not None
    if mode == "json-typed-html-503":
        return Response(GATEWAY_HTML, status_code=503, media_type="application/json")
    if mode == "html-200-on-health" and on_health:
        return Response(FRONTEND_HTML, media_type="text/html")
    if mode == "empty-body":
        return Response(b"", media_type="application/json")
    if mode == "invalid-utf8":
        return Response(INVALID_UTF8_BODY, media_type="application/json")
    if mode == "huge-body":
        return Response(HUGE_BODY, media_type="application/json")
    if mode == "slow-drip":
        return StreamingResponse(_drip(), media_type="application/json")
    if mode == "huge-retry-after":  # a gateway's maintenance page (not the service's JSON), retry tomorrow
        body = b"Service Unavailable: scheduled maintenance, come back tomorrow"
        return Response(
            body, status_code=503, media_type="text/plain", headers={"Retry-After": str(RETRY_AFTER_S)}
        )
    return None


async def backend(request: Request) -> Response:
    state: State = request.app.state.hostile
    path = request.url.path
    if state.mode == "token-echo" and path.startswith("/api/"):
        return _echo(state, request, 401, "invalid credentials")
    hostile = _hostile_http(state.mode, path)
    if hostile is not None:
        return hostile
    body = _polite_backend(path)
    if body is not None:
        return JSONResponse(body)
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[:2] == ["api", "threads"] and parts[3] == "messages":
        if tokens.bearer_token(request.headers.get("authorization")) is None:
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        messages = state.threads.get(parts[2])
        if messages is None:
            return JSONResponse({"detail": "Thread not found"}, status_code=404)
        return JSONResponse({"messages": messages, "thread_id": parts[2], "total": len(messages)})
    return JSONResponse({"detail": "Not Found"}, status_code=404)


# ---------------------------------------------------------------------------------------------
# Auth service (polite unless token-echo)


def _echo(state: State, request: Request, status: int, why: str, **received: Any) -> JSONResponse:
    """An error body that repeats every credential the request carried (the token-echo defect)."""
    state.echoes += 1
    headers = {k: v for k, v in request.headers.items() if k in ("authorization", BYPASS_KEY_HEADER.lower())}
    return JSONResponse({"detail": why, "received_headers": headers, **received}, status_code=status)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def auth(request: Request) -> Response:
    state: State = request.app.state.hostile
    path = request.url.path.removeprefix(AUTH_PREFIX).rstrip("/")
    echo = state.mode == "token-echo"
    if path == "/health":
        return JSONResponse({"status": "healthy", "service": AUTH_SERVICE, "version": "hostile"})
    if path == "/health/ready":
        return JSONResponse({"status": "ready", "service": AUTH_SERVICE})
    if path == "/auth/e2e/test-auth" and request.method == "POST":
        key = request.headers.get(BYPASS_KEY_HEADER)
        if not key:
            return JSONResponse({"detail": "E2E bypass key required"}, status_code=401)
        state.logins += 1
        if echo and state.logins % 2 == 1:  # every other login: a 503 that leaks the key (retried)
            return _echo(state, request, 503, "upstream overloaded, retry", bypass_key=key)
        email = str((await _json_object(request)).get("email") or DEFAULT_TEST_EMAIL)
        user = {"id": f"hostile-{uuid.uuid4().hex[:8]}", "email": email}
        pair = {
            kind: tokens.mint(state.jwt_secret, sub=user["id"], email=email, permissions=[], token_type=kind)
            for kind in ("access", "refresh")
        }
        return JSONResponse(
            {
                "access_token": pair["access"],
                "refresh_token": pair["refresh"],
                "token_type": "Bearer",
                "user": user,
            }
        )
    if path == "/auth/validate" and request.method == "POST":
        token = (await _json_object(request)).get("token")
        if echo:  # a polite 200 whose error field repeats the token it was asked about
            state.echoes += 1
            return JSONResponse({"valid": False, "error": f"token {token} is not valid here"})
        claims = _claims(state, token if isinstance(token, str) else None)
        if claims is None:
            return JSONResponse({"valid": False, "error": "invalid token"})
        return JSONResponse({"valid": True, "user_id": claims.sub, "email": claims.email})
    if path == "/auth/me":
        if echo:
            return _echo(state, request, 500, "profile lookup crashed")
        claims = _claims(state, tokens.bearer_token(request.headers.get("authorization")))
        if claims is None:
            return JSONResponse({"detail": "Invalid or expired token"}, status_code=401)
        return JSONResponse({"id": claims.sub, "email": claims.email, "service": AUTH_SERVICE})
    return JSONResponse({"detail": "Not Found"}, status_code=404)


def _claims(state: State, token: str | None) -> tokens.Claims | None:
    if token is None:
        return None
    try:
        return tokens.verify(state.jwt_secret, token)
    except tokens.TokenError:
        return None


# ---------------------------------------------------------------------------------------------
# Chat socket


def _event(kind: ServerType, run_id: str, thread_id: str, **data: Any) -> str:
    extra = {"tool_name": TOOL_NAME} if kind in (ServerType.TOOL_EXECUTING, ServerType.TOOL_COMPLETED) else {}
    event = AgentEvent(type=kind, run_id=run_id, thread_id=thread_id, data=data, **extra)
    return event.model_dump_json()


def _turn(mode: str, question: str, thread_id: str) -> tuple[list[str | bytes], str]:
    """The frames a mode sends for one question, and the answer it stores in the thread."""
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    answer = f'You asked: "{question}". The hostile impostor answers it anyway.'
    result: dict[str, Any] = {"result": {"response": answer}}
    if mode == "ws-completed-without-result":
        result = {}

    def ev(kind: ServerType, **data: Any) -> str:
        return _event(kind, run_id, thread_id, status=str(kind), **data)

    started, thinking = ev(ServerType.AGENT_STARTED), ev(ServerType.AGENT_THINKING, reasoning="hmm")
    executing, tool_done = ev(ServerType.TOOL_EXECUTING), ev(ServerType.TOOL_COMPLETED, result={"n": 0})
    completed = ev(ServerType.AGENT_COMPLETED, **result)
    if mode == "ws-garbage-frames":
        frames: list[str | bytes] = [
            "this is not JSON",
            b"\xff\xfe\x00binary garbage",
            '{"no_type": true}',
            "[1, 2, 3]",
            "<html><body>502 Bad Gateway</body></html>",
        ]
        return frames, answer
    if mode == "ws-out-of-order":
        return [completed, tool_done, thinking, started, executing], answer
    if mode == "ws-duplicates":  # at-least-once delivery: the same events twice, same run
        return [started, started, thinking, executing, tool_done, completed, completed], answer
    return [started, thinking, executing, tool_done, completed], answer


def _welcome(user_id: str) -> str:
    data = ConnectionEstablishedData(
        user_id=f"{user_id[:8]}...", connection_id=f"main_{uuid.uuid4().hex[:12]}"
    )
    return ConnectionEstablished(data=data).model_dump_json()


async def chat(ws: WebSocket) -> None:
    state: State = ws.app.state.hostile
    offered = list(ws.scope.get("subprotocols") or [])
    chosen, subprotocol_token = negotiate_subprotocol(offered)
    token = tokens.bearer_token(ws.headers.get("authorization")) or subprotocol_token
    claims = _claims(state, token)
    if claims is None and state.mode == "token-echo":
        state.echoes += 1
        body = {
            "detail": "bad credentials",
            "authorization": ws.headers.get("authorization"),
            "offered": offered,
        }
        await ws.send_denial_response(JSONResponse(body, status_code=401))
        return
    await ws.accept(subprotocol=chosen)
    if state.mode == "ws-close-after-upgrade":
        await ws.close(CloseCode.INTERNAL_ERROR, "internal error")
        return
    if claims is None:
        await ws.send_text(json.dumps({"type": ServerType.ERROR, "message": "Authentication failed"}))
        await ws.close(CloseCode.POLICY_VIOLATION, "Authentication failed")
        return
    await ws.send_text(_welcome(claims.sub))
    try:
        while True:
            question = _question(await ws.receive_text())
            if question is None:
                continue
            if state.mode == "token-echo":
                state.echoes += 1
                leak = f"token {token} rejected (Authorization: {ws.headers.get('authorization')})"
                await ws.send_text(json.dumps({"type": ServerType.ERROR, "message": leak, "code": "ECHO"}))
                continue
            thread_id = f"thread_{uuid.uuid4().hex[:12]}"
            frames, answer = _turn(state.mode, question, thread_id)
            state.threads[thread_id] = [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
            for frame in frames:
                await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_text(frame))
    except WebSocketDisconnect:
        return


def _question(text: str) -> str | None:
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    payload = frame.get("payload") if isinstance(frame, dict) else None
    if not isinstance(frame, dict) or frame.get("type") != "user_message" or not isinstance(payload, dict):
        return None
    content = payload.get("content")
    return content if isinstance(content, str) else None


# ---------------------------------------------------------------------------------------------
# Control and app


async def control(request: Request) -> Response:
    state: State = request.app.state.hostile
    mode = request.path_params.get("mode")
    if request.method == "PUT" and mode is not None:
        if mode not in MODES:
            return JSONResponse({"detail": f"unknown mode {mode!r}", "modes": list(MODES)}, status_code=404)
        state.switch(mode)
    return JSONResponse({"mode": state.mode, "logins": state.logins, "echoes": state.echoes})


def create_app(mode: str) -> Starlette:
    """The impostor, starting in `mode` (switchable with PUT /__hostile__/mode/{mode})."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    everything = ["GET", "HEAD", "POST", "PUT", "DELETE"]
    app = Starlette(
        routes=[
            Route(f"{CONTROL_PREFIX}/mode", control, methods=["GET"]),
            Route(f"{CONTROL_PREFIX}/mode/{{mode}}", control, methods=["PUT"]),
            Route(f"{CONTROL_PREFIX}/stats", control, methods=["GET"]),
            WebSocketRoute("/ws", chat),
            Route(f"{AUTH_PREFIX}/{{path:path}}", auth, methods=everything),
            Route("/{path:path}", backend, methods=everything),
        ]
    )
    app.state.hostile = State(mode)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m replica.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, default="polite", help="misbehaviour to start with")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    args = parser.parse_args(argv)
    print(
        f"hostile impostor on http://{HOST}:{args.port} (auth under {AUTH_PREFIX}), mode {args.mode}",
        flush=True,
    )
    uvicorn.run(
        create_app(args.mode),
        host=HOST,
        port=args.port,
        log_level="warning",
        access_log=False,
        ws="websockets-sansio",
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
