from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from naive_env import JWT_SECRET, TEST_EMAIL, TIMEOUT, WS_URL
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def make_token(secret: str, expires_in: int) -> str:
    now = int(time.time())
    claims = {
        "sub": "e2e-negative-auth", "email": TEST_EMAIL, "iat": now - 3600, "exp": now + expires_in,
        "iss": "netra-auth-service", "aud": "netra-platform", "jti": str(uuid.uuid4()), "type": "access",
    }  # fmt: skip
    return jwt.encode(claims, secret, algorithm="HS256")


def assert_refused(**connect_kwargs: Any) -> None:
    """The server sends an error frame and closes with 1008 (policy violation), never a welcome."""
    received = []
    with (
        connect(WS_URL, open_timeout=TIMEOUT, **connect_kwargs) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        while True:
            received.append(json.loads(ws.recv(timeout=TIMEOUT))["type"])
    assert "connection_established" not in received
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


def test_login(tokens: dict[str, Any]) -> None:
    assert tokens["access_token"]
    assert tokens["refresh_token"]


def test_ws_refuses_no_token() -> None:
    assert_refused()


def test_ws_refuses_bad_signature() -> None:
    forged = make_token(uuid.uuid4().hex * 2, 900)
    assert_refused(subprotocols=[f"jwt.{forged}"])


def test_ws_refuses_expired_token() -> None:
    if not JWT_SECRET:
        pytest.skip("E2E_JWT_SECRET not set")
    assert_refused(additional_headers={"Authorization": f"Bearer {make_token(JWT_SECRET, -60)}"})
