"""Named scenarios: how the replica should behave, healthy or broken like Issue #1278."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from replica.faultproxy import Fault


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    service: dict[str, Any] = field(default_factory=dict)  # ServiceConfig overrides
    db_fault: Fault = field(default_factory=Fault)
    gateway_error_rate: float = 0.0
    pg_max_connections: int = 40
    hog_connections: bool = False  # fill every free PostgreSQL slot once the backend is up
    backend_ready_expected: bool = True  # whether `up` waits for the backend's health
    auth_ready_expected: bool = True  # whether `up` waits for the auth service's health


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("healthy", "Everything works: login, chat, AI answers, messages stored."),
        Scenario(
            "issue-1278",
            "The database connection hangs past the database-phase timeout: exit code 3, crash loop, "
            "every backend request gets the front door's 503 HTML page; auth stays healthy. `fix` clears it.",
            service={"db_timeout_s": 2.0},
            db_fault=Fault("hang"),
            backend_ready_expected=False,
        ),
        Scenario(
            "slow-start",
            "Database connections take 1 s (under the 5 s timeout): the backend answers its own JSON 503 "
            "'Startup in progress' for the first seconds, then is healthy.",
            service={"db_timeout_s": 5.0, "startup_mode": "early"},
            db_fault=Fault("latency", 1000),
            backend_ready_expected=False,
        ),
        Scenario(
            "flaky-gateway",
            "The front door answers 30% of backend requests with a 503 HTML page (spread evenly).",
            gateway_error_rate=0.3,
        ),
        Scenario(
            "pool-exhaustion",
            "PostgreSQL has very few connections and other clients hold them: under concurrent load "
            "/health/database answers JSON 503 while /health stays up.",
            pg_max_connections=8,
            hog_connections=True,
        ),
        Scenario(
            "agent-broken",
            "Infrastructure healthy, but the agent never sends agent_completed (a product defect).",
            service={"agent_mode": "broken"},
        ),
        Scenario(
            "auth-broken",
            "The auth service rejects the bypass key (a product defect).",
            service={"auth_mode": "reject_bypass"},
        ),
        Scenario(
            "auth-db-down",
            "The auth service cannot reach its database: its health answers JSON 503 'Database connectivity "
            "failed' (an infrastructure dependency), while login and the backend still work.",
            service={"auth_database_url": "postgresql://postgres@127.0.0.1:9/postgres"},
            auth_ready_expected=False,
        ),
        Scenario(
            "relaxed-auth",
            "The real staging's permissive WebSocket auth: connections without a valid token are accepted.",
            service={"ws_auth": "relaxed"},
        ),
    )
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
