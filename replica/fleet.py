"""The backend service as Cloud Run runs it: a number of instance slots behind one front door, a
serving revision, and rollouts of new revisions.

Each slot runs one process at a time under a `ProcessSupervisor` (every start a new Cloud Run instance,
restarted with crash-loop backoff). A rollout replaces the instances with ones of a new revision, one
at a time, the way Cloud Run shifts a service to a new revision without dropping its callers: the new
instance starts beside the old one (on a port of its own) and joins the front door once it answers
`/health` 200; the old one is drained (no new request or upgrade reaches it, its open requests and
sockets finish, up to `DRAIN_TIMEOUT_S`) and only then stopped. A new instance that exits or does not
serve in time fails the rollout, and the old one stays.

Rollouts are also how the local verify-fix story gets its evidence: after its fix the replica rolls
out new revisions until enough startups have finished since the fix (`rollouts_until`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from replica.cloud_logging import CloudLogging
from replica.config import ServiceConfig
from replica.frontdoor import FrontDoor, GatewayFaults
from replica.ports import free_port
from replica.supervisor import STARTUP_PROBE_S, Backoff, ProcessSupervisor

log = logging.getLogger("replica.fleet")

READY_TIMEOUT_S = 60.0  # a new instance that does not serve by then fails its rollout
DRAIN_TIMEOUT_S = 10.0  # how long an old instance's open requests and sockets may take before it stops
SETTLE_TIMEOUT_S = 30.0  # how long `rollouts_until` waits for startups already under way
MAX_ROLLOUTS = 20  # `rollouts_until` never loops for ever (e.g. on a revision that keeps failing)

RolloutState = Literal["pending", "rolling", "done", "failed", "cancelled"]


@dataclass
class Rollout:
    """One rollout: the revision it brings, and how far it got."""

    revision: str
    instances: int
    state: RolloutState = "pending"
    replaced: int = 0
    requested_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BackendFleet:
    """The backend's instances, its front door, its revisions."""

    def __init__(
        self,
        config: ServiceConfig,
        count: int,
        *,
        argv: Callable[[int], list[str]],
        cloud_logging: CloudLogging,
        gateway: GatewayFaults,
        backoff: Backoff,
        log_path: Path,
        revision_of: Callable[[int], str],
        startup_probe_s: float = STARTUP_PROBE_S,
        memory_limit_mib: int | None = None,
    ) -> None:
        self.config = config
        self.startup_probe_s = startup_probe_s  # the service's startup probe budget (Cloud Run's setting)
        self.memory_limit_mib = memory_limit_mib  # the service's memory limit (None: not enforced)
        self._argv = argv  # the command line of an instance listening on a port
        self.cloud_logging = cloud_logging
        self.backoff = backoff
        self.log_path = log_path
        self.revision_of = revision_of  # the name of the revision after n rollouts
        self.revision = revision_of(0)
        self.rollouts: list[Rollout] = []
        self._prefixed = count > 1
        self.slots = [self._instance(f"backend-{i + 1}", config, self.revision) for i in range(count)]
        self.retired: list[ProcessSupervisor] = []  # replaced by a rollout (or a new one that failed)
        self._surge: list[ProcessSupervisor] = []  # started by a rollout, not yet in a slot
        self.door = FrontDoor("backend", {s.name: self._port(s) for s in self.slots}, gateway)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        for slot in self.slots:
            slot.start()

    async def stop(self) -> None:
        """Rollouts in progress end, then every instance (the exits still reach Cloud Logging)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        everyone = [*self.slots, *self._surge, *self.retired]
        await asyncio.gather(*(s.stop() for s in everyone), return_exceptions=True)

    async def aclose(self) -> None:
        await self.door.aclose()

    @property
    def ports(self) -> dict[str, int]:
        return {s.name: self._port(s) for s in self.slots}

    async def any_healthy(self) -> bool:
        """Whether an instance answers /health 200 on its own port (not through the front door)."""
        async with httpx.AsyncClient(timeout=2) as client:
            for slot in self.slots:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{self._port(slot)}/health")).status_code == 200:
                        return True
        return False

    # -- rollouts -----------------------------------------------------------------------------------
    def start_rollout(self, overrides: dict[str, Any] | None = None) -> Rollout:
        """A rollout in the background (after any in progress); its record, updated as it goes."""
        record = self._record()
        self._spawn(self._roll(record, overrides))
        return record

    async def rollout(self, overrides: dict[str, Any] | None = None) -> Rollout:
        """A new revision (the config with `overrides`), every instance replaced, one at a time."""
        record = self._record()
        await self._roll(record, overrides)
        return record

    async def rollouts_until(self, minimum: int, since: float) -> None:
        """Roll out new revisions, one after another, until at least `minimum` startups that began at or
        after `since` (epoch seconds) have finished, ok or failed; stop early if a rollout fails."""
        for _ in range(MAX_ROLLOUTS):
            await self._settle(minimum, since)
            if self.cloud_logging.finished_startups(since) >= minimum:
                return
            if (await self.rollout()).state != "done":
                return
        log.warning("stopped after %d rollouts short of %d startups", MAX_ROLLOUTS, minimum)

    async def _settle(self, minimum: int, since: float) -> None:
        """If the startups already under way would be enough, wait for them to finish (bounded)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            finished = self.cloud_logging.finished_startups(since)
            pending = self.cloud_logging.pending_startups(since)
            if finished >= minimum or pending == 0 or finished + pending < minimum:
                return
            await asyncio.sleep(0.1)

    def _record(self) -> Rollout:
        record = Rollout(self.revision_of(len(self.rollouts) + 1), len(self.slots))
        self.rollouts.append(record)
        return record

    async def _roll(self, record: Rollout, overrides: dict[str, Any] | None) -> None:
        async with self._lock:
            config = self.config.replace(**overrides) if overrides else self.config
            record.state = "rolling"
            log.info("rollout of %s: %d instances, one at a time", record.revision, len(self.slots))
            try:
                for index in range(len(self.slots)):
                    error = await self._replace(index, config, record.revision)
                    if error is not None:
                        record.state, record.error = "failed", error
                        log.warning("rollout of %s failed: %s", record.revision, error)
                        return
                    record.replaced += 1
                self.config, self.revision = config, record.revision
                record.state = "done"
            except asyncio.CancelledError:
                record.state = "cancelled"
                raise
            except Exception as exc:  # a defect of ours: said in the record, never a silent "rolling"
                log.exception("rollout of %s broke", record.revision)
                record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                record.finished_at = time.time()

    async def _replace(self, index: int, config: ServiceConfig, revision: str) -> str | None:
        """Slot `index` moved to an instance of `revision`; None, or why the new instance failed."""
        old = self.slots[index]
        new = self._instance(old.name, config, revision)
        self._surge.append(new)
        new.start()
        error = await self._until_ready(new)
        self._surge.remove(new)
        if error is not None:
            self.retired.append(new)
            await new.stop()
            return f"{new.name} of {revision} {error}"
        self.door.add(new.name, self._port(new))
        self.slots[index] = new
        self.retired.append(old)
        old_port = self._port(old)
        self.door.drain(old_port)
        if not await self.door.drained(old_port, DRAIN_TIMEOUT_S):
            log.warning("%s: open requests still running after %ss: stopping it", old.name, DRAIN_TIMEOUT_S)
        self.door.remove(old_port)
        await old.stop()
        return None

    async def _until_ready(self, instance: ProcessSupervisor) -> str | None:
        """None once `instance` passed its startup probe (as Cloud Run's) and answers /health 200 on its
        port; else why not (exited, too slow)."""
        url = f"http://127.0.0.1:{self._port(instance)}/health"
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if instance.exits:
                    return f"exited with {instance.exits[0].code} before serving"
                with contextlib.suppress(httpx.HTTPError):
                    if instance.serving and (await client.get(url)).status_code == 200:
                        return None
                await asyncio.sleep(0.05)
        return f"did not serve /health within {READY_TIMEOUT_S:g}s"

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- instances ----------------------------------------------------------------------------------
    def _instance(self, name: str, config: ServiceConfig, revision: str) -> ProcessSupervisor:
        """One instance slot's process: every (re)start is a new Cloud Run instance of `revision`."""
        port = free_port()
        return ProcessSupervisor(
            name=name,
            argv=self._argv(port),
            env=config.to_env(),
            log_path=self.log_path,
            backoff=self.backoff,
            instances=lambda: self.cloud_logging.instance(revision),
            port=port,
            log_prefix=f"[{name}] " if self._prefixed else "",
            startup_probe_s=self.startup_probe_s,
            memory_limit_mib=self.memory_limit_mib,
        )

    @staticmethod
    def _port(instance: ProcessSupervisor) -> int:
        assert instance.port is not None
        return instance.port

    def status(self) -> dict[str, Any]:
        """The backend as one process (what a single instance reports), plus every instance."""
        instances: list[dict[str, Any]] = [{"name": s.name, **s.status()} for s in self.slots]
        exits = sorted((e for s in [*self.slots, *self.retired] for e in s.exits), key=lambda e: e.at)
        states = {i["state"] for i in instances}
        pids = [i["pid"] for i in instances if i["pid"]]
        next_starts = [float(i["next_start_at"]) for i in instances if i["next_start_at"]]
        return {
            "state": next((s for s in ("running", "starting", "backoff") if s in states), "stopped"),
            "pid": pids[0] if pids else None,
            "serving_instances": sum(bool(i["serving"]) for i in instances),
            "starts": sum(s.starts for s in self.slots),
            "restarts": sum(max(0, s.starts - 1) for s in self.slots),
            "exit_codes": [e.code for e in exits[-20:]],
            "last_exit": exits[-1].__dict__ if exits else None,
            "next_start_at": min(next_starts) if next_starts else None,
            "instances": instances,
            "revision": self.revision,
            "rollouts": [r.to_dict() for r in self.rollouts[-5:]],
            "retired_instances": len(self.retired),
            "startups_in_progress": self.cloud_logging.pending_startups(0.0),
        }
