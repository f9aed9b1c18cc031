from __future__ import annotations

from typing import Any

import requests
from naive_env import AUTH_URL, BACKEND_URL, FIVE_EVENTS, QUESTION, TEST_EMAIL, TIMEOUT


def test_token_validates(tokens: dict[str, Any]) -> None:
    response = requests.post(
        f"{AUTH_URL}/auth/validate", json={"token": tokens["access_token"]}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.json()["valid"] is True


def test_me(tokens: dict[str, Any]) -> None:
    response = requests.get(
        f"{AUTH_URL}/auth/me",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.json()["email"] == TEST_EMAIL


def test_chat_five_events(chat: dict[str, Any]) -> None:
    for name in FIVE_EVENTS:
        assert name in chat["types"]
    final = chat["events"][-1]
    assert final["type"] == "agent_completed"
    answer = final["data"]["result"]["response"]
    assert "42" in answer


def test_answer_is_stored(tokens: dict[str, Any], chat: dict[str, Any]) -> None:
    final = chat["events"][-1]
    thread_id = final["thread_id"]
    response = requests.get(
        f"{BACKEND_URL}/api/threads/{thread_id}/messages",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    stored = [(m["role"], m["content"]) for m in response.json()["messages"]]
    assert ("user", QUESTION) in stored
    assert ("assistant", final["data"]["result"]["response"]) in stored
