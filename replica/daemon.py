"""The replica's runtime: one process that owns PostgreSQL, the fault proxy, the two services, the
two front doors and a control API, and stops all of them together.

The backend runs as `instances` processes (Cloud Run instances), each supervised on its own port
behind the one front door; every start gets a new instance id, and the instances' output becomes
the service's Cloud Logging (`cloud-logging.json`, see replica/cloud_logging.py). Rollouts replace
the instances with ones of a new revision, one at a time (replica/fleet.py).

The control API (`control_url` in the state file; `python -m replica status|fix|fault|rollout`):
GET /status, POST /fault, POST /fix (optionally at a given time, then rollouts until enough startups
have finished since), POST /rollout, POST /startups (rollouts until enough startups have finished
since a time), POST /stop.

`REPLICA_FAIL_START_AFTER=postgres|services|doors` makes the start fail on purpose right after that
step (a test's way to prove that a failed start leaves nothing behind); it is never set otherwise.

Run by `python -m replica up` (detached) or `python -m replica up --foreground` (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from replica import db, scenarios
from replica.cloud_logging import FILE_NAME as CLOUD_LOGGING_FILE
from replica.cloud_logging import CloudLogging, revision_name
from replica.config import PROFILES, ServiceConfig
from replica.faultproxy import Fault, FaultProxy
from replica.fleet import BackendFleet
from replica.frontdoor import FrontDoor, GatewayFaults
from replica.ports import free_port
from replica.postgres import PASSWORD_ROLE, PostgresServer
from replica.state import STATE_FILE, write_state
from replica.supervisor import Backoff, ProcessSupervisor

log = logging.getLogger("replica")

BYPASS_KEY_ENV = "E2E_OAUTH_SIMULATION_KEY"
EXTERNAL_DB_ENV = "REPLICA_EXTERNAL_DATABASE_URL"
JWT_SECRET_ENV = "REPLICA_JWT_SECRET"  # lets the suite mint an expired-but-valid token for negative auth
# A failure injected on purpose into the start (see ReplicaDaemon._fail_if_asked); for tests only.
FAIL_START_AFTER_ENV = "REPLICA_FAIL_START_AFTER"


class StartFailure(RuntimeError):
    """The start failed on purpose (REPLICA_FAIL_START_AFTER), or the scenario cannot be played here."""


# The real backend's database and a Cloud SQL instance connection name (project:region:instance), for
# the scenarios whose backend is configured with a database of its own (Scenario.backend_database).
BACKEND_DATABASE = "netra_staging"
CLOUD_SQL_INSTANCE = "netra-staging:us-central1:staging-shared-postgres"


FIX_LEAD_S = 1.0  # a scheduled fix is in place this long before its window opens


class ReplicaDaemon:
    """The daemon process of one replica: everything it runs, wired explicitly, stopped together."""

    def __init__(
        self,
        scenario: scenarios.Scenario,
        run_dir: Path,
        overrides: dict[str, Any] | None = None,
        backoff: Backoff | None = None,
        instances: int | None = None,
        profile: str | None = None,
    ) -> None:
        self.scenario = scenario
        self.run_dir = run_dir
        self.overrides = overrides or {}
        self.backoff = backoff or Backoff()
        self.instances = instances or scenario.backend_instances
        self.profile = profile  # wins over the scenario and the overrides
        self.stop_event = asyncio.Event()
        self.gateway = GatewayFaults(scenario.gateway_error_rate, outage=scenario.gateway_outage)
        self.postgres: PostgresServer | None = None
        self.hog: list[asyncpg.Connection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.log_task: asyncio.Task[None] | None = None
        self.started_at = time.time()
        self.cloud_logging = CloudLogging(run_dir / CLOUD_LOGGING_FILE)
        self.fault_after_ready_applied = False
        self.fix_record: dict[str, Any] | None = None  # the last fix asked for: when, whether applied
        # Startups asked for (by a fix, or by the suite for its evidence): how many, since when, done
        self.startup_target: dict[str, Any] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self) -> None:
        """Start everything, serve until stopped, stop everything.

        Each step registers how to undo it as soon as it has started, so a failure at any later step
        (a port, PostgreSQL, a service that cannot spawn, `REPLICA_FAIL_START_AFTER`) stops what was
        started, in reverse order, before the exception leaves: PostgreSQL runs in its own session and
        its data in a directory of its own, and nobody else would stop or remove them (the state
        file that `down` reads is written only once everything serves).
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as started:
            ports = await self._start(started)
            log.info(
                "replica %s serving: backend :%s auth :%s",
                self.scenario.name,
                ports["backend"],
                ports["auth"],
            )
            await self.stop_event.wait()
            log.info("stopping replica")

    async def _start(self, started: contextlib.AsyncExitStack) -> dict[str, int]:
        """Every start step, in order, each one's undo pushed on `started` (undone last-in, first-out:
        the front doors close first, then the services, whose last lines still reach Cloud Logging, then
        the logging, the proxy and PostgreSQL, and the state file goes last)."""
        started.callback((self.run_dir / STATE_FILE).unlink, missing_ok=True)
        db_host, db_port, direct_url = self._start_postgres(started)
        await self._fail_if_asked("postgres")
        proxy_port = free_port()
        self.proxy = FaultProxy(db_host, db_port, proxy_port, self.scenario.db_fault)
        await self.proxy.start()
        started.push_async_callback(self.proxy.stop)
        proxied_url = _with_port(direct_url, proxy_port)
        backend_url = await self._backend_database(direct_url, proxied_url)

        bypass_key = os.environ.get(BYPASS_KEY_ENV) or secrets.token_urlsafe(24)
        config = self._config(bypass_key, backend_url, direct_url)
        self.fleet = BackendFleet(
            config,
            self.instances,
            argv=lambda port: [sys.executable, "-m", "replica.backend", "--port", str(port)],
            cloud_logging=self.cloud_logging,
            gateway=self.gateway,
            backoff=self.backoff,
            log_path=self.run_dir / "backend.log",
            revision_of=lambda rollouts: revision_name(self.started_at, rollouts),
            startup_probe_s=self.scenario.startup_probe_s,
            memory_limit_mib=self.scenario.memory_limit_mib,
        )
        self.auth_port = free_port()
        self.auth = self._supervisor("auth", "replica.auth", self.auth_port, config)
        self.auth_door = FrontDoor("auth", self.auth_port)
        started.push_async_callback(self._close_doors)
        self.log_task = asyncio.create_task(self.cloud_logging.run())
        started.push_async_callback(self.cloud_logging.aclose, self.log_task)
        self.auth.start()
        self.fleet.start()
        started.push_async_callback(self._stop_services)
        await self._fail_if_asked("services")

        listening: list[socket.socket] = []
        for _ in ("backend", "auth", "control"):
            listening.append(_listen_on_a_free_port())
            started.callback(listening[-1].close)
        ports = dict(
            zip(("backend", "auth", "control"), (s.getsockname()[1] for s in listening), strict=True)
        )
        servers = [
            _server(self.fleet.door.app, ports["backend"]),
            _server(self.auth_door.app, ports["auth"]),
            _server(self._control_app(), ports["control"]),
        ]
        serving = [
            asyncio.create_task(s.serve(sockets=[sock])) for s, sock in zip(servers, listening, strict=True)
        ]
        started.push_async_callback(_stop_servers, servers, serving)
        await _until_serving(servers, serving)
        started.push_async_callback(self._stop_tasks)
        if self.scenario.hog_connections:
            self.tasks.append(asyncio.create_task(self._hog_when_ready(direct_url)))
        if self.scenario.db_fault_after_ready is not None:
            self.tasks.append(asyncio.create_task(self._fault_when_ready(self.scenario.db_fault_after_ready)))
        await self._fail_if_asked("doors")
        write_state(self.run_dir, self._state(ports, config, bypass_key, direct_url))
        return ports

    def _state(
        self, ports: dict[str, int], config: ServiceConfig, bypass_key: str, direct_url: str
    ) -> dict[str, Any]:
        """What `attach`, `down`, `status` and the suite read from the state file."""
        return {
            "pid": os.getpid(),
            "scenario": self.scenario.name,
            "backend_url": f"http://127.0.0.1:{ports['backend']}",
            "auth_url": f"http://127.0.0.1:{ports['auth']}",
            "ws_url": f"ws://127.0.0.1:{ports['backend']}/ws",
            "control_url": f"http://127.0.0.1:{ports['control']}",
            "backend_ready_expected": self.scenario.backend_ready_expected,
            # the front door answers its 503 page whatever the instances do: `up` checks them directly
            "gateway_outage": self.scenario.gateway_outage,
            "auth_ready_expected": self.scenario.auth_ready_expected,
            "postgres_pid": self.postgres.process.pid if self.postgres and self.postgres.process else None,
            "bypass_key": bypass_key,
            "postgres_url": direct_url,  # direct, not through the fault proxy: for checks of stored rows
            "started_at": self.started_at,
            "profile": config.profile,
            "backend_instances": self.instances,
            "backend_instance_ports": self.fleet.ports,  # at start; a rollout moves them (see status)
            "revision": self.fleet.revision,  # the first; `status` names the one serving now
            "cloud_logging_path": str(self.cloud_logging.path),
            "db_fault_after_ready": _fault_dict(self.scenario.db_fault_after_ready),
        }

    async def _fail_if_asked(self, step: str) -> None:
        """`REPLICA_FAIL_START_AFTER=<step>` (postgres | services | doors): fail the start right after
        that step, once what it started is really running, so that a test can prove a failed start
        leaves nothing behind. Unset (always, outside such tests) it does nothing."""
        if os.environ.get(FAIL_START_AFTER_ENV) != step:
            return
        if step == "services":  # their processes must exist before the failure, or there is nothing to undo
            await self._services_listening(timeout_s=30.0)
        raise StartFailure(f"start failed on purpose after step {step!r} ({FAIL_START_AFTER_ENV}={step})")

    async def _services_listening(self, timeout_s: float) -> None:
        """Until every service process accepts connections on its port (or `timeout_s`)."""
        ports = [self.auth_port, *self.fleet.ports.values()]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all([await _accepts(port) for port in ports]):
                return
            await asyncio.sleep(0.1)

    async def _stop_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for conn in self.hog:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)

    async def _stop_services(self) -> None:
        await asyncio.gather(self.fleet.stop(), self.auth.stop(), return_exceptions=True)

    async def _close_doors(self) -> None:
        await asyncio.gather(self.fleet.aclose(), self.auth_door.aclose(), return_exceptions=True)

    def _config(self, bypass_key: str, proxied_url: str, direct_url: str) -> ServiceConfig:
        config = ServiceConfig(
            jwt_secret=os.environ.get(JWT_SECRET_ENV) or secrets.token_urlsafe(32),
            bypass_key=bypass_key,
            backend_database_url=proxied_url,
            auth_database_url=direct_url,
        ).replace(**{**self.scenario.service, **self.overrides})
        return config.replace(profile=self.profile) if self.profile else config

    async def _backend_database(self, direct_url: str, proxied_url: str) -> str:
        """The backend's database URL, as the scenario's `backend_database` wants it, made real:

        * replica: the replica's PostgreSQL through the fault proxy;
        * wrong-password: the role netra_staging, which PostgreSQL makes give its password (see
          replica/postgres.py), with a new random password; the backend gets another one, through the
          proxy. The refusal is checked here: a PostgreSQL that lets the wrong password in (an external
          one that trusts local connections) cannot play the story, and the start fails saying so;
        * socket-missing: a Cloud SQL unix socket (`host=<dir>`, as Cloud Run mounts them) in a
          directory that is never created: asyncpg's connect raises FileNotFoundError (errno 2). Short,
          under the temp dir: a unix socket path is limited to 107 bytes, and a longer one would fail
          with another error;
        * empty: a database of its own (netra_staging, made empty if missing), through the proxy.
        """
        kind = self.scenario.backend_database
        if kind == "replica":
            return proxied_url
        if kind == "socket-missing":
            missing = Path(tempfile.gettempdir()) / f"cloudsql-{secrets.token_hex(4)}" / CLOUD_SQL_INSTANCE
            if missing.parent.exists():
                raise StartFailure(f"{missing.parent} exists: the Cloud SQL socket would not be missing")
            return f"postgresql://{PASSWORD_ROLE}@/{BACKEND_DATABASE}?host={missing}"
        conn = await asyncpg.connect(direct_url, timeout=10)
        try:
            if kind == "wrong-password":
                await db.set_login_password(conn, PASSWORD_ROLE, secrets.token_hex(16))
                await _refused(_with_credentials(direct_url, PASSWORD_ROLE, secrets.token_hex(16)))
                return _with_credentials(proxied_url, PASSWORD_ROLE, secrets.token_hex(16))
            await db.ensure_database(conn, BACKEND_DATABASE)
            return _with_database(proxied_url, BACKEND_DATABASE)
        finally:
            await conn.close()

    def _start_postgres(self, started: contextlib.AsyncExitStack) -> tuple[str, int, str]:
        external = os.environ.get(EXTERNAL_DB_ENV)
        if external:
            parts = urlsplit(external)
            return parts.hostname or "127.0.0.1", parts.port or 5432, external
        self.postgres = PostgresServer(
            self.run_dir / "postgres", max_connections=self.scenario.pg_max_connections
        )
        self.postgres.start()  # stops what it started itself if it fails
        started.callback(self.postgres.stop)
        return "127.0.0.1", self.postgres.port, self.postgres.url

    def _supervisor(self, name: str, module: str, port: int, config: ServiceConfig) -> ProcessSupervisor:
        return ProcessSupervisor(
            name=name,
            argv=[sys.executable, "-m", module, "--port", str(port)],
            env=config.to_env(),
            log_path=self.run_dir / f"{name}.log",
            backoff=self.backoff,
        )

    async def _backend_healthy(self) -> None:
        """Return once any backend instance answers /health with 200 (or the replica stops)."""
        while not self.stop_event.is_set() and not await self.fleet.any_healthy():
            await asyncio.sleep(0.1)

    async def _fault_when_ready(self, fault: Fault) -> None:
        """A VPC connector failing under a running service: set once the backend first serves."""
        await self._backend_healthy()
        await self.proxy.set_fault(fault)
        self.fault_after_ready_applied = True
        log.info("db fault after ready: %s (cut %d open connections)", fault, self.proxy.cut)

    async def _auth_healthy(self) -> None:
        """Return once the auth service answers /health with 200 on its own port (or the replica stops):
        it holds its database connection by then."""
        async with httpx.AsyncClient(timeout=2) as client:
            while not self.stop_event.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{self.auth_port}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)

    async def _hog_when_ready(self, direct_url: str) -> None:
        """Other tenants of a shared Cloud SQL instance: take every free connection and keep it, once
        both services serve (the story is the backend's checks under load, not an auth service that
        never got its connection)."""
        await self._backend_healthy()
        await self._auth_healthy()
        while len(self.hog) < self.scenario.pg_max_connections:
            try:
                self.hog.append(await asyncpg.connect(direct_url, timeout=2))
            except (asyncpg.PostgresError, OSError, TimeoutError):
                break
        log.info("hogging %d database connections", len(self.hog))

    # -- control API -----------------------------------------------------------------------
    def _control_app(self) -> Starlette:
        async def status(_: Request) -> JSONResponse:
            return JSONResponse(self.status())

        async def fault(request: Request) -> JSONResponse:
            body = await request.json()
            if "db" in body:
                await self.proxy.set_fault(Fault.parse(str(body["db"])))
            if "gateway_error_rate" in body:
                self.gateway.error_rate = float(body["gateway_error_rate"])
            if "gateway_outage" in body:
                self.gateway.outage = bool(body["gateway_outage"])
            return JSONResponse(self.status())

        async def fix(request: Request) -> JSONResponse:
            """What the infrastructure team's fix does: the database path and the gateway work again.
            Body (optional): `at` (epoch seconds: the fix happens then, not now), `rollout_startups`
            (then roll out new revisions until that many startups have finished since the fix)."""
            body = await request.json() if await request.body() else {}
            await self.schedule_fix(body.get("at"), int(body.get("rollout_startups") or 0))
            return JSONResponse(self.status())

        async def startups(request: Request) -> JSONResponse:
            """Body `startups`, `since` (epoch seconds): roll out until that many have finished since."""
            body = await request.json()
            self.gather_startups(int(body["startups"]), float(body["since"]))
            return JSONResponse(self.status())

        async def rollout(request: Request) -> JSONResponse:
            """A new revision, every instance replaced one at a time; body `service`: config overrides
            (a deploy of another build, e.g. one that fixes a bad deploy)."""
            body = await request.json() if await request.body() else {}
            record = self.fleet.start_rollout(body.get("service") or None)
            return JSONResponse({"rollout": record.to_dict(), **self.status()})

        async def stop(_: Request) -> JSONResponse:
            self.stop_event.set()
            return JSONResponse({"stopping": True})

        return Starlette(
            routes=[
                Route("/status", status),
                Route("/fault", fault, methods=["POST"]),
                Route("/fix", fix, methods=["POST"]),
                Route("/rollout", rollout, methods=["POST"]),
                Route("/startups", startups, methods=["POST"]),
                Route("/stop", stop, methods=["POST"]),
            ]
        )

    async def schedule_fix(self, at: float | None, rollout_startups: int) -> None:
        """The fix at `at` (at once if None or past: applied when this returns), then rollouts until
        `rollout_startups` startups that began at or after it have finished. A time fixed in advance
        lets the suite's startup window begin exactly at the fix: the fix is in place `FIX_LEAD_S`
        before it, so no startup that begins in the window meets the fault (a timer that fires a little
        late under load must not let one slip in). A fix at once is dated when it is in place."""
        record: dict[str, Any] = {"at": at, "applied": False}
        self.fix_record = record

        async def apply() -> None:
            await self.proxy.set_fault(Fault())
            self.gateway.clear()
            record["applied"] = True
            log.info("fix applied")

        async def ahead_of(when: float) -> None:
            await asyncio.sleep(max(0.0, when - FIX_LEAD_S - time.time()))
            await apply()

        if at is None or float(at) <= time.time():
            await apply()
            record["at"] = when = time.time()
        else:
            when = float(at)
            self.tasks.append(asyncio.create_task(ahead_of(when)))
        if rollout_startups:
            self.startup_target = {"startups": rollout_startups, "since": when, "after": "fix", "done": False}
        if rollout_startups:
            self.tasks.append(asyncio.create_task(self._gather_startups(self.startup_target, record)))

    def gather_startups(self, startups: int, since: float) -> None:
        """Rollouts until `startups` startups that began at or after `since` have finished: what a
        suite asks for when its window holds too few (and no fix is gathering them already)."""
        self.startup_target = {"startups": startups, "since": since, "after": "request", "done": False}
        self.tasks.append(asyncio.create_task(self._gather_startups(self.startup_target, None)))

    async def _gather_startups(self, target: dict[str, Any] | None, fix: dict[str, Any] | None) -> None:
        assert target is not None
        try:
            while fix is not None and not fix["applied"]:  # rollouts begin with the fix, not before
                await asyncio.sleep(0.05)
            await self.fleet.rollouts_until(target["startups"], since=target["since"])
        finally:
            target["done"] = True

    def status(self) -> dict[str, Any]:
        after_ready = self.scenario.db_fault_after_ready
        backend = self.fleet.status()
        faults = {
            "db": self.proxy.fault.to_dict(),
            "gateway_error_rate": self.gateway.error_rate,
            "gateway_outage": self.gateway.outage,
        }
        target = self.startup_target and {
            **self.startup_target,
            "finished": self.cloud_logging.finished_startups(self.startup_target["since"]),
        }
        return {
            "scenario": self.scenario.name,
            "summary": _summary(backend, faults),
            "uptime_s": round(time.time() - self.started_at, 3),
            "faults": faults,
            "db_fault_after_ready": None
            if after_ready is None
            else {"fault": after_ready.to_dict(), "applied": self.fault_after_ready_applied},
            "fix": self.fix_record,
            "startup_target": target,
            "backend": backend,
            "auth": self.auth.status(),
            "doors": {"backend": self.fleet.door.status(), "auth": self.auth_door.status()},
            "revision": self.fleet.revision,
            "cloud_logging": {"path": str(self.cloud_logging.path), "entries": self.cloud_logging.count},
            "db_proxy_connections": self.proxy.connections,
            "db_proxy_cut_connections": self.proxy.cut,
            "hogged_connections": len(self.hog),
        }


def _summary(backend: dict[str, Any], faults: dict[str, Any]) -> str:
    """One line saying what is going on, for a person reading `status`."""
    instances = len(backend["instances"])
    serving = f"{backend['serving_instances']}/{instances} backend instances serving"
    crash_looping = backend["serving_instances"] == 0 and backend["restarts"] > 0 and backend["exit_codes"]
    parts = [serving]
    if crash_looping:
        parts.append(f"crash-looping (last exit {backend['exit_codes'][-1]}, {backend['restarts']} restarts)")
    if faults["gateway_outage"]:
        parts.append("front door OUTAGE: every backend request and upgrade gets its 503 page")
    elif faults["gateway_error_rate"]:
        parts.append(
            f"front door answers {faults['gateway_error_rate']:.0%} of backend requests with its 503 page"
        )
    elif backend["serving_instances"] == 0:
        parts.append("front door answers its 503 page (no instance serves)")
    if faults["db"]["kind"] != "none":
        parts.append(f"database path fault: {faults['db']['kind']}")
    rolling = [r for r in backend["rollouts"] if r["state"] in ("pending", "rolling")]
    if rolling:
        parts.append(
            f"rolling out {rolling[-1]['revision']} ({rolling[-1]['replaced']}/{rolling[-1]['instances']})"
        )
    return "; ".join(parts)


async def _refused(url: str) -> None:
    """Raise unless PostgreSQL refuses this URL's password."""
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except asyncpg.InvalidPasswordError:
        return
    await conn.close()
    raise StartFailure(
        f"PostgreSQL accepts any password for {PASSWORD_ROLE} (trust authentication): "
        "the db-wrong-password story needs it refused"
    )


def _with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}").geturl()


def _with_database(url: str, database: str) -> str:
    return urlsplit(url)._replace(path=f"/{database}").geturl()


def _fault_dict(fault: Fault | None) -> dict[str, object] | None:
    return None if fault is None else fault.to_dict()


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host_port = f"{parts.hostname}:{port}"
    return parts._replace(netloc=f"{netloc[0]}@{host_port}" if len(netloc) == 2 else host_port).geturl()


def _listen_on_a_free_port(attempts: int = 20) -> socket.socket:
    """A socket listening on a free port of 127.0.0.1: a port another process takes between being
    chosen and being claimed (another replica, a service of this one) is passed over for another."""
    for _ in range(attempts - 1):
        with contextlib.suppress(OSError):
            return _listen(free_port())
    return _listen(free_port())


def _listen(port: int) -> socket.socket:
    """Bind and listen on 127.0.0.1:`port` now, so that the port is claimed here (a bound socket that
    does not listen yet can share its port with another under SO_REUSEADDR, and uvicorn's own listen
    would then fail inside its task, exiting the whole process)."""
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every proxied answer waited ~40 ms on Nagle and the delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


async def _until_serving(servers: list[uvicorn.Server], serving: list[asyncio.Task[None]]) -> None:
    """Until every server listens; a server that ended instead raises."""
    while not all(s.started for s in servers):
        ended = [task for task in serving if task.done()]
        if ended:
            raise RuntimeError(f"a front door or the control API stopped while starting: {ended[0]!r}")
        await asyncio.sleep(0.02)


async def _stop_servers(servers: list[uvicorn.Server], serving: list[asyncio.Task[None]]) -> None:
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*serving, return_exceptions=True)


async def _accepts(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the signals to the daemon: its SIGTERM/SIGINT handler stops every
    service together (uvicorn's own would stop one server and re-raise the signal when it ends)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: Any, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws_max_size=2**24,
        server_header=False, date_header=False,  # the upstream's headers pass through, as at Google's edge
    )  # fmt: skip
    return _Server(config)


async def _main(args: argparse.Namespace) -> None:
    daemon = ReplicaDaemon(
        scenarios.get(args.scenario),
        Path(args.run_dir).resolve(),
        overrides=json.loads(args.overrides) if args.overrides else None,
        backoff=Backoff(initial_s=args.backoff_initial, max_s=args.backoff_max),
        instances=args.instances,
        profile=args.profile,
    )
    loop = asyncio.get_running_loop()
    # A foreground `up` blocks these while it waits; a blocked mask is inherited, so undo it here.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop_event.set)
    watch = (
        asyncio.create_task(_stop_when_gone(args.owner_pid, daemon.stop_event)) if args.owner_pid else None
    )
    try:
        await daemon.run()
    finally:
        if watch is not None:
            watch.cancel()


async def _stop_when_gone(owner_pid: int, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """A replica started for a run stops when that run's process is gone, however it ended
    (a SIGKILL, a CI timeout): it never outlives its owner as an orphan holding ports and PostgreSQL."""
    while not stop.is_set():
        try:
            os.kill(owner_pid, 0)
        except ProcessLookupError:
            log.warning("owner process %d is gone: stopping the replica", owner_pid)
            stop.set()
            return
        except PermissionError:
            pass  # alive, owned by someone else
        await asyncio.sleep(every_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m replica.daemon")
    parser.add_argument("--scenario", default="healthy")
    parser.add_argument("--run-dir", default=".replica")
    parser.add_argument("--overrides", help="JSON object of ServiceConfig overrides")
    parser.add_argument("--backoff-initial", type=float, default=1.0)
    parser.add_argument("--backoff-max", type=float, default=4.0)
    parser.add_argument("--instances", type=int, help="backend instances (default: the scenario's)")
    parser.add_argument("--profile", choices=PROFILES, help="protocol era; wins over the scenario's")
    parser.add_argument("--owner-pid", type=int, help="stop when this process is gone (a test run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health probe says nothing
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
