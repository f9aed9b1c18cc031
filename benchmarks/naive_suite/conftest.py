"""Fixtures of the naive suite: written the usual way (requests, fixed 30 s timeouts, `.json()`).

It deliberately does not load `harness.pytest_plugin`: this is the baseline the benchmark
compares our suite against. Targets come from the same environment variables as ours.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from naive_env import AUTH_URL, BYPASS_KEY, QUESTION, TEST_EMAIL, TIMEOUT, WS_URL
from websockets.sync.client import connect


@pytest.fixture(scope="session")
def tokens() -> dict[str, Any]:
    response = requests.post(
        f"{AUTH_URL}/auth/e2e/test-auth",
        headers={"X-E2E-Bypass-Key": BYPASS_KEY},
        json={"email": TEST_EMAIL},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def chat(tokens: dict[str, Any]) -> dict[str, Any]:
    """One question over the WebSocket: the events received and the final answer."""
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    with connect(WS_URL, additional_headers=headers, open_timeout=TIMEOUT) as ws:
        welcome = json.loads(ws.recv(timeout=TIMEOUT))
        assert welcome["type"] == "connection_established"
        ws.send(json.dumps({"type": "user_message", "payload": {"content": QUESTION}}))
        events: list[dict[str, Any]] = []
        while True:
            event = json.loads(ws.recv(timeout=TIMEOUT))
            events.append(event)
            if event["type"] in ("agent_completed", "agent_error", "error"):
                break
    return {"events": events, "types": [e["type"] for e in events]}
