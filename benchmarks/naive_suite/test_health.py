from __future__ import annotations

import requests
from naive_env import AUTH_URL, BACKEND_URL, TIMEOUT


def test_backend_health() -> None:
    response = requests.get(f"{BACKEND_URL}/health", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_backend_ready() -> None:
    response = requests.get(f"{BACKEND_URL}/health/ready", timeout=TIMEOUT)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["core_db"] == "connected"


def test_backend_database() -> None:
    response = requests.get(f"{BACKEND_URL}/health/database", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["connected"] is True


def test_websocket_health() -> None:
    response = requests.get(f"{BACKEND_URL}/ws/health", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_auth_health() -> None:
    response = requests.get(f"{AUTH_URL}/health", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_auth_ready() -> None:
    response = requests.get(f"{AUTH_URL}/health/ready", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
