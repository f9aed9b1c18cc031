"""Runs a service process and restarts it when it exits, with crash-loop backoff, as Cloud Run does."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("replica.supervisor")

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when its parent dies, so no process is left behind."""

    def _preexec() -> None:
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)

    return _preexec


@dataclass(frozen=True)
class Backoff:
    """Exponential restart delays; a process that stayed up `stable_after_s` resets the streak."""

    initial_s: float = 1.0
    max_s: float = 8.0
    stable_after_s: float = 30.0

    def delay(self, streak: int) -> float:
        return min(self.max_s, self.initial_s * 2 ** max(0, streak - 1))


@dataclass
class Exit:
    code: int | None
    at: float
    uptime_s: float


@dataclass
class ProcessSupervisor:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    restart: bool = True
    backoff: Backoff = field(default_factory=Backoff)
    state: str = "stopped"  # starting | running | backoff | stopped
    pid: int | None = None
    starts: int = 0
    exits: list[Exit] = field(default_factory=list)
    next_start_at: float | None = None
    _task: asyncio.Task[None] | None = None
    _process: asyncio.subprocess.Process | None = None
    _stopping: bool = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"supervise-{self.name}")

    async def _run(self) -> None:
        streak = 0
        while not self._stopping:
            started = time.monotonic()
            await self._spawn()
            assert self._process is not None
            code = await self._process.wait()
            uptime = time.monotonic() - started
            self.exits.append(Exit(code, time.time(), round(uptime, 3)))
            self.pid = None
            log.warning("%s exited with code %s after %.1fs", self.name, code, uptime)
            if self._stopping or not self.restart:
                break
            streak = 1 if uptime >= self.backoff.stable_after_s else streak + 1
            delay = self.backoff.delay(streak)
            self.state = "backoff"
            self.next_start_at = time.time() + delay
            await asyncio.sleep(delay)
        self.state = "stopped"

    async def _spawn(self) -> None:
        self.state = "starting"
        self.next_start_at = None
        self.starts += 1
        with open(self.log_path, "ab") as out:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        self.pid = self._process.pid
        self.state = "running"

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        process = self._process
        if process and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.state = "stopped"

    def status(self) -> dict[str, object]:
        return {
            "state": self.state,
            "pid": self.pid,
            "starts": self.starts,
            "restarts": max(0, self.starts - 1),
            "exit_codes": [e.code for e in self.exits[-20:]],
            "last_exit": self.exits[-1].__dict__ if self.exits else None,
            "next_start_at": self.next_start_at,
        }
