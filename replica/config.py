"""The knobs of the replica's services, passed to each child process as REPLICA_* variables.

One dataclass is the single source of truth: the daemon builds it from a scenario, `to_env()`
hands it to the backend and auth processes, and `from_env()` reads it back there.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any, Literal

StartupMode = Literal["blocking", "early"]
# strict: refuse bad tokens (1008); relaxed: invent `relaxed_XXXX` users like staging at aebb16f;
# demo: every socket becomes `demo-user-001` (DEMO_MODE on, its default at aebb16f).
WsAuth = Literal["strict", "relaxed", "demo"]
AgentMode = Literal["normal", "broken"]
AuthMode = Literal["normal", "reject_bypass"]
DbSchema = Literal["create", "expect"]
Listen = Literal["port", "elsewhere"]
# The wire protocol era the services speak (orthogonal to scenarios; see docs/protocol.md):
# legacy: before 2025-09-16 (rich /health with `service`, readiness with core_db, events under
#         `data`, message content a plain string);
# aebb16f: the last build of the backend (/health {"status":"ok"}, /health/ready {"status":"ready"},
#         /ws/health refuses a plain GET with its own 503, bridge + payload duplicates, a flat
#         agent_completed with final_response and a dict result, heartbeats, content as text parts,
#         the error envelope);
# head:   aebb16f plus the HEAD handshake (handshake_response / handshake_acknowledged, messages
#         before the acknowledgement lost) and events wrapped as system_message.
Profile = Literal["legacy", "aebb16f", "head"]
PROFILES: tuple[str, ...] = ("legacy", "aebb16f", "head")
# Product defects of the chat socket, as the real aebb16f build showed them (docs/protocol.md):
# main_mode_error: right after the upgrade an error_message (CONNECTION_ERROR, RecursionError), close 1011;
# router_defect:   the welcome, then the first client frame ends the socket with close 1000 "main cleanup";
# error_mid_turn:  agent_started, agent_thinking, then an error frame and close 1011;
# readiness_guard: every upgrade refused before accept (the client sees HTTP 403), whatever the token.
# And the platform ending a socket mid-turn (an instance stopped for a new revision), not a defect:
# restart_once:    the first chat turn of a backend process is closed 1012 "service restart" right
#                  after agent_started; the turns after it complete;
# restart_always:  every chat turn is closed that way.
WsMode = Literal[
    "normal",
    "main_mode_error",
    "router_defect",
    "error_mid_turn",
    "readiness_guard",
    "restart_once",
    "restart_always",
]

ENV_PREFIX = "REPLICA_"


@dataclass(frozen=True)
class ServiceConfig:
    """What the backend and the auth service need to know about the scenario they run in."""

    jwt_secret: str = "replica-dev-secret-not-for-staging"
    bypass_key: str = ""
    backend_database_url: str = ""  # through the fault proxy (the VPC connector's place)
    auth_database_url: str = ""  # direct: the auth service stays healthy in issue-1278
    db_timeout_s: float = 3.0  # the database phase's timeout (staging: 75-95 s)
    db_pool_max: int = 10
    health_db_timeout_s: float = 1.0
    # How long the database health check's query holds its connection (a check under load): with it, a
    # burst of checks needs more connections than the pool keeps idle, whatever the machine's speed.
    health_db_hold_s: float = 0.0
    # blocking: nothing is served until startup ends (uvicorn's real behaviour; callers see the front
    # door's 503 page). early: /health answers JSON 503 with startup fields while the phases run.
    startup_mode: StartupMode = "blocking"
    early_fail_grace_s: float = 2.0  # early mode: how long a failed startup serves its JSON before exit 3
    profile: Profile = "aebb16f"
    ws_auth: WsAuth = "strict"
    ws_mode: WsMode = "normal"
    # head only: whether handshake_response comes right after the welcome or before it.
    handshake_order: Literal["after_welcome", "before_welcome"] = "after_welcome"
    agent_mode: AgentMode = "normal"
    agent_step_delay_s: float = 0.05
    auth_mode: AuthMode = "normal"
    # A bad deploy: `module:Name` that the startup's SERVICES phase imports and cannot (empty: none).
    broken_import: str = ""
    # create: the database phase creates the tables (the replica's stand-in for the migration service
    # that a real deploy runs first); expect: like the real backend, it only checks that its critical
    # tables exist (an empty database then fails the phase: scenario db-empty).
    db_schema: DbSchema = "create"
    # A startup phase that never ends (e.g. "cache": a Redis that never answers); empty: none.
    hang_phase: str = ""
    # MiB the SERVICES phase loads into memory and keeps (a model, a big index): what a memory limit kills.
    preload_mib: int = 0
    # port: listen on --port (Cloud Run's PORT); elsewhere: on another port (a port hard-coded in the
    # build), where the platform's startup probe never looks.
    listen: Listen = "port"

    def to_env(self) -> dict[str, str]:
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            default = f.default
            values[f.name] = type(default)(raw) if isinstance(default, (int, float)) else raw
        return cls(**values)

    def replace(self, **changes: Any) -> ServiceConfig:
        return dataclasses.replace(self, **changes)
