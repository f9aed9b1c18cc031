"""Named scenarios: how the replica should behave, healthy or broken like Issue #1278."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from replica.faultproxy import Fault
from replica.supervisor import STARTUP_PROBE_S

BackendDatabase = Literal["replica", "wrong-password", "socket-missing", "empty"]
# A short startup probe budget, so that a crash loop of instances that never listen shows within seconds.
SHORT_PROBE_S = 4.0


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    service: dict[str, Any] = field(default_factory=dict)  # ServiceConfig overrides
    db_fault: Fault = field(default_factory=Fault)
    gateway_error_rate: float = 0.0
    gateway_outage: bool = False  # the front door answers its 503 page to every request and upgrade
    pg_max_connections: int = 40
    hog_connections: bool = False  # fill every free PostgreSQL slot once the backend is up
    backend_ready_expected: bool = True  # whether `up` waits for the backend's health
    # The backend's startups die in a loop: a run of the suite starts once the first has died, as the
    # nightly meets a staging that has been down a while (its record already shows the deaths).
    crash_loop: bool = False
    auth_ready_expected: bool = True  # whether `up` waits for the auth service's health
    backend_instances: int = 1  # backend processes behind the front door (Cloud Run instances)
    # A database fault set once the backend has started (a VPC connector failing under a running
    # service): existing connections are cut too. `up` returns only after it is in place.
    db_fault_after_ready: Fault | None = None
    # The database the backend is configured with (the daemon makes it so, see ReplicaDaemon):
    # replica: the replica's PostgreSQL through the fault proxy; wrong-password: a role that needs a
    # password, given the wrong one; socket-missing: a Cloud SQL unix socket path that does not exist;
    # empty: a database of its own without any table.
    backend_database: BackendDatabase = "replica"
    # Cloud Run's settings for the backend: the startup probe's budget (a port that accepts nothing
    # for so long after the start fails it, and the instance is stopped), and the memory limit (None:
    # not enforced); see replica/supervisor.py.
    startup_probe_s: float = STARTUP_PROBE_S
    memory_limit_mib: int | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("healthy", "Everything works: login, chat, AI answers, messages stored."),
        Scenario(
            "issue-1278",
            "The database connection hangs past the database-phase timeout (3 s: a healthy phase takes 0.3 s, "
            "so a loaded machine still starts one after the fix): `❌ Database connection "
            "timeout after 3.0..s (attempt 1/3)`, `Database initialization attempt 1 failed (timeout):`, "
            "the phase fails by timeout; exit code 3, crash loop, every backend request gets the front "
            "door's 503 HTML page; auth stays healthy. `fix` clears it.",
            service={"db_timeout_s": 3.0},
            db_fault=Fault("hang"),
            backend_ready_expected=False,
            crash_loop=True,
        ),
        Scenario(
            "bad-deploy",
            "A bad deploy: the backend's startup fails in its SERVICES phase (ImportError: cannot import "
            "name 'AgentRegistry'), exit code 3, crash loop; the database is fine, the front door answers "
            "its 503 HTML page, auth stays healthy. `fix` (an infrastructure fix) does not clear it: a new "
            "deploy does (`rollout --set broken_import=`).",
            service={"broken_import": "netra_backend.app.agents.registry:AgentRegistry"},
            backend_ready_expected=False,
            crash_loop=True,
        ),
        Scenario(
            "db-wrong-password",
            "The backend's database password is wrong (a rotated secret): PostgreSQL refuses it at once, "
            "for real (the role netra_staging needs a password; the backend sends another). The database "
            "phase fails in a few hundredths of a second: `❌ Database connection error ...: "
            'password=REDACTED failed for user "netra_staging"` (PostgreSQL\'s words through the real '
            "build's redactor), `Database connectivity check failed: ...`, then the generic `PHASE FAILED: "
            "DATABASE - Database schema validation failed - schema inconsistent`; exit code 3, crash loop, "
            "the front door's 503 page; auth stays healthy. `fix` does not clear it: the configured "
            "password is wrong, not the infrastructure.",
            backend_ready_expected=False,
            crash_loop=True,
            backend_database="wrong-password",
        ),
        Scenario(
            "db-socket-missing",
            "The revision has no Cloud SQL connection: the backend connects to a unix socket path that "
            "does not exist (asyncpg raises FileNotFoundError). The database phase fails at once: `❌ "
            "Database connection error ...: [Errno 2] No such file or directory`, `Database connectivity "
            "check failed: [Errno 2] No such file or directory`, then the same generic `schema "
            "inconsistent` phase error; exit code 3, crash loop, the 503 page; auth stays healthy. `fix` "
            "does not clear it: the revision's configuration lacks the connection.",
            backend_ready_expected=False,
            crash_loop=True,
            backend_database="socket-missing",
        ),
        Scenario(
            "db-empty",
            "The database answers but migrations never ran: the backend's database is empty, and the "
            "backend, like the real one, only checks its tables (it does not create them). WARNING "
            "`Failed to verify database tables exist: Missing critical database tables: {'users', "
            "'assistants', 'runs', 'messages', 'threads'}. Run migration service first. ...`, then the "
            "generic `schema inconsistent` phase error; exit code 3, crash loop, the 503 page; auth stays "
            "healthy. `fix` does not clear it; running the migrations does (`rollout --set "
            "db_schema=create`: a backend that creates its tables).",
            service={"db_schema": "expect"},
            backend_ready_expected=False,
            crash_loop=True,
            backend_database="empty",
        ),
        Scenario(
            "oom",
            "Each instance is killed for memory during its startup: the SERVICES phase loads 1 GiB (a "
            "model), the service's memory limit is 256 MiB, and the platform kills the process (SIGKILL) "
            "once it is over: Cloud Run's ERROR `Memory limit of 256 MiB exceeded with <n> MiB used.` and "
            "`Container terminated on signal 9.`, no failure summary from the app (its log stops in the "
            "SERVICES phase); crash loop, the 503 page; auth stays healthy. `fix` does not clear it; a "
            "build that loads less does (`rollout --set preload_mib=0`).",
            service={"preload_mib": 1024},
            backend_ready_expected=False,
            crash_loop=True,
            memory_limit_mib=256,
        ),
        Scenario(
            "port-mismatch",
            "The build listens on a port of its own, not on PORT: every startup completes (the app logs "
            "success and serves, elsewhere), but Cloud Run's startup TCP probe on PORT gets no answer "
            "within its budget: ERROR `Default STARTUP TCP probe failed 1 time consecutively for container "
            "... The instance was not started.` and `The user-provided container failed to start and "
            "listen on the port defined provided by the PORT=... environment variable within the allocated "
            "timeout.`; the platform kills the instance (signal 9) and starts another: crash loop, the 503 "
            "page; auth stays healthy. `fix` does not clear it; a build that listens on PORT does "
            "(`rollout --set listen=port`).",
            service={"listen": "elsewhere"},
            backend_ready_expected=False,
            crash_loop=True,
            startup_probe_s=SHORT_PROBE_S,
        ),
        Scenario(
            "stuck-after-database",
            "The database phase completes, then the CACHE phase waits for ever (a Redis that never "
            "answers, with no timeout): the app never listens, Cloud Run's startup probe fails after its "
            "budget (the same two ERROR lines as port-mismatch) and the platform kills the instance "
            "(signal 9). The log shows the database phase completed, CACHE started, and no outcome line "
            "from the app; crash loop, the 503 page; auth stays healthy. `fix` does not clear it; a build "
            "that does not hang does (`rollout --set hang_phase=`).",
            service={"hang_phase": "cache"},
            backend_ready_expected=False,
            crash_loop=True,
            startup_probe_s=SHORT_PROBE_S,
        ),
        Scenario(
            "gateway-outage",
            "A load balancer / ingress outage: every backend instance starts and serves (startups succeed "
            "in the logs), but the front door answers its 503 HTML page to every backend request and "
            "WebSocket upgrade; auth stays healthy. `fix` clears it.",
            gateway_outage=True,
            backend_instances=2,
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
            "/health/database answers JSON 503 while /health stays up (each check holds its connection "
            "0.5 s, as a check on a loaded database does).",
            service={"health_db_hold_s": 0.5},
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
        Scenario(
            "demo-mode",
            "DEMO_MODE on (its default at aebb16f): every socket, whatever its token, is demo-user-001.",
            service={"ws_auth": "demo"},
        ),
        Scenario(
            "service-error-envelope",
            "The database path fails under a running backend: /health still answers, but database-backed "
            "endpoints answer the service's own 503 error envelope (SERVICE_UNAVAILABLE, 'Database "
            "unavailable') and the agent reports the same.",
            db_fault_after_ready=Fault("refuse"),
        ),
        Scenario(
            "bypass-not-configured",
            "Staging's auth service lacks the E2E bypass secret: the bypass login answers 503 "
            "{'detail': 'E2E authentication not configured'} (the service speaking, not a gateway).",
            service={"bypass_key": ""},
        ),
        Scenario(
            "ws-main-mode-error",
            "The aebb16f build as shipped: every socket gets an error_message (CONNECTION_ERROR, "
            "RecursionError) right after the upgrade, then close 1011. Infrastructure healthy.",
            service={"ws_mode": "main_mode_error"},
        ),
        Scenario(
            "ws-router-defect",
            "The aebb16f build with its import fixed: the welcome arrives, then the first client frame "
            "ends the socket with close 1000 'main cleanup' and no event. Infrastructure healthy.",
            service={"ws_mode": "router_defect"},
        ),
        Scenario(
            "ws-error-mid-turn",
            "The agent fails mid-turn: agent_started, agent_thinking, an error frame, close 1011.",
            service={"ws_mode": "error_mid_turn"},
        ),
        Scenario(
            "ws-restart-once",
            "A new revision rolling out: the first chat turn on the backend is closed by the platform with "
            "1012 'service restart' right after agent_started; every turn after it completes.",
            service={"ws_mode": "restart_once"},
        ),
        Scenario(
            "ws-restart-always",
            "The platform closes every chat turn with 1012 'service restart' right after agent_started "
            "(instances restarting without end).",
            service={"ws_mode": "restart_always"},
        ),
        Scenario(
            "ws-readiness-guard",
            "The WebSocket readiness guard refuses every upgrade before accept (HTTP 403 on the wire), "
            "whatever the token, while HTTP health is fine.",
            service={"ws_mode": "readiness_guard"},
        ),
        Scenario(
            "startup-storm",
            "Several backend instances start at once against a database with too few connections "
            "(connection pool exhaustion during concurrent startup attempts): some exit 3 in the "
            "database phase and crash-loop, the startup success rate falls under 90%. Each backend "
            "holds 2 connections from its database phase on, PostgreSQL has 7: 3 of the 6 serve.",
            service={"db_pool_max": 2},  # a pool that cannot grow past what startup took
            backend_instances=6,
            pg_max_connections=7,  # 3 x 2 for the survivors, 1 left for auth's health check
        ),
        Scenario(
            "slow-db-phase",
            "Every startup succeeds, but each database connection takes 1.5 s: the database phase of "
            "every startup is slow (over a threshold of 1 s).",
            service={"db_timeout_s": 8.0},
            db_fault=Fault("latency", 1500),
            backend_instances=3,
        ),
    )
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
