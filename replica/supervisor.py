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
from typing import BinaryIO, Literal, Protocol

log = logging.getLogger("replica.supervisor")

_PR_SET_PDEATHSIG = 1


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()


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
        return min(self.max_s, self.initial_s * 2.0 ** max(0, streak - 1))


@dataclass
class ProcessExit:
    code: int | None
    at: float
    uptime_s: float
    instance_id: str | None = None


class InstanceSink(Protocol):
    """Where one process start (a Cloud Run instance) reports its output and its end."""

    instance_id: str

    def line(self, stream: Literal["stdout", "stderr"], text: str) -> None: ...

    def probe_succeeded(self) -> None: ...

    def probe_failed(self) -> None: ...

    def memory_exceeded(self, limit_mib: int, used_mib: int) -> None: ...

    def exited(self, code: int | None) -> None: ...


PIPE_LIMIT = 1 << 20  # longest line read whole; longer ones arrive in pieces
DRAIN_TIMEOUT_S = 2.0  # after an exit, how long the last buffered lines may take to arrive
PROBE_INTERVAL_S = 0.2
# Cloud Run's default startup probe (TCP, failure threshold 1, period and timeout 240 s): an instance
# whose port accepts nothing for this long after it started is not started, and is stopped.
STARTUP_PROBE_S = 240.0
MEMORY_INTERVAL_S = 0.05  # how often an instance's memory is measured against its limit


def rss_mib(pid: int) -> int | None:
    """A process's resident memory in MiB (VmRSS), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024)
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None
    return None


@dataclass
class ProcessSupervisor:
    """Runs one service process and restarts it with backoff.

    With `instances`, every start is a new instance: stdout and stderr are read line by line, copied
    to `log_path` (prefixed with `log_prefix`) and handed to the instance's sink, a TCP probe on
    `port` reports when it starts serving, and its exit is reported once its output is drained.

    Two of Cloud Run's limits are enforced the way the platform does, from outside the process:

    * the startup probe: a port that accepts nothing within `startup_probe_s` of the start fails it;
      the sink says so and the process is killed (SIGKILL: the platform stops an instance that was not
      started; a process stuck in its startup would not end on SIGTERM anyway);
    * with `memory_limit_mib`, the instance's resident memory, measured every MEMORY_INTERVAL_S: past
      the limit the sink says so (with the MiB used, as measured) and the process is killed (SIGKILL,
      as the kernel's OOM killer ends a container over its memory limit). The replica measures instead
      of setting a cgroup limit: a cgroup needs a writable cgroup tree (root, a delegated hierarchy),
      which neither a developer's machine nor a CI container can be counted on to give.
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    restart: bool = True
    backoff: Backoff = field(default_factory=Backoff)
    instances: Callable[[], InstanceSink] | None = None
    port: int | None = None
    log_prefix: str = ""
    startup_probe_s: float = STARTUP_PROBE_S
    memory_limit_mib: int | None = None
    state: str = "stopped"  # starting | running | backoff | stopped
    pid: int | None = None
    starts: int = 0
    serving: bool = False
    instance_id: str | None = None
    exits: list[ProcessExit] = field(default_factory=list)
    next_start_at: float | None = None
    _task: asyncio.Task[None] | None = None
    _process: asyncio.subprocess.Process | None = None
    _stopping: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"supervise-{self.name}")

    async def _run(self) -> None:
        streak = 0
        while not self._stopping:
            started = time.monotonic()
            code = await self._run_once()
            uptime = time.monotonic() - started
            self.exits.append(ProcessExit(code, time.time(), round(uptime, 3), self.instance_id))
            self.pid = None
            self.serving = False
            log.warning("%s exited with code %s after %.1fs", self.name, code, uptime)
            if self._stopping or not self.restart:
                break
            streak = 1 if uptime >= self.backoff.stable_after_s else streak + 1
            delay = self.backoff.delay(streak)
            self.state = "backoff"
            self.next_start_at = time.time() + delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)  # `stop` ends the wait early
        self.state = "stopped"

    async def _run_once(self) -> int | None:
        """One process, from spawn to exit; its output drained and its exit reported."""
        sink = self.instances() if self.instances else None
        self.instance_id = sink.instance_id if sink else None
        with open(self.log_path, "ab") as out:
            process = await self._spawn(out, piped=sink is not None)
            helpers = [] if sink is None else self._watch(process, sink, out)
            code = await process.wait()
            if helpers:
                _done, pending = await asyncio.wait(helpers, timeout=DRAIN_TIMEOUT_S)
                for task in pending:
                    task.cancel()
        if sink is not None:
            sink.exited(code)
        return code

    async def _spawn(self, out: BinaryIO, *, piped: bool) -> asyncio.subprocess.Process:
        self.state = "starting"
        self.next_start_at = None
        self.starts += 1
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE if piped else out,
            stderr=asyncio.subprocess.PIPE if piped else asyncio.subprocess.STDOUT,
            limit=PIPE_LIMIT,
            preexec_fn=die_with_parent(),
        )
        self.pid = self._process.pid
        self.state = "running"
        return self._process

    def _watch(
        self, process: asyncio.subprocess.Process, sink: InstanceSink, out: BinaryIO
    ) -> list[asyncio.Task[None]]:
        assert process.stdout is not None and process.stderr is not None
        tasks = [
            asyncio.create_task(self._pump(process.stdout, "stdout", sink, out)),
            asyncio.create_task(self._pump(process.stderr, "stderr", sink, out)),
        ]
        if self.port is not None:
            tasks.append(asyncio.create_task(self._probe(process, sink)))
        if self.memory_limit_mib is not None:
            tasks.append(asyncio.create_task(self._memory_limit(process, sink, self.memory_limit_mib)))
        return tasks

    async def _pump(
        self,
        stream: asyncio.StreamReader,
        name: Literal["stdout", "stderr"],
        sink: InstanceSink,
        out: BinaryIO,
    ) -> None:
        """Every line of one stream, to the log file and the instance's sink, until EOF."""
        prefix = self.log_prefix.encode()
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line past PIPE_LIMIT: take what is buffered as one piece
                raw = await stream.read(PIPE_LIMIT)
            if not raw:
                return
            out.write(prefix + raw if raw.endswith(b"\n") else prefix + raw + b"\n")
            out.flush()
            sink.line(name, raw.decode(errors="replace"))

    async def _probe(self, process: asyncio.subprocess.Process, sink: InstanceSink) -> None:
        """Cloud Run's default startup probe: the instance serves once its port accepts a connection; if
        it accepts none within `startup_probe_s` of the start, the probe fails and the instance is
        killed."""
        assert self.port is not None
        deadline = time.monotonic() + self.startup_probe_s
        while process.returncode is None:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() >= deadline:
                    if process.returncode is None:
                        log.warning(
                            "%s: startup probe failed after %.1fs: killing it",
                            self.name,
                            self.startup_probe_s,
                        )
                        sink.probe_failed()
                        _kill(process)
                    return
                await asyncio.sleep(PROBE_INTERVAL_S)
                continue
            writer.close()
            if process.returncode is None:
                self.serving = True
                sink.probe_succeeded()
            return

    async def _memory_limit(
        self, process: asyncio.subprocess.Process, sink: InstanceSink, limit_mib: int
    ) -> None:
        """Kill the instance once its resident memory is over `limit_mib`, saying how much it used."""
        while process.returncode is None:
            used = rss_mib(process.pid)
            if used is not None and used > limit_mib and process.returncode is None:
                log.warning(
                    "%s: %d MiB used, over its limit of %d MiB: killing it", self.name, used, limit_mib
                )
                sink.memory_exceeded(limit_mib, used)
                _kill(process)
                return
            await asyncio.sleep(MEMORY_INTERVAL_S)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the process (kill it after `timeout_s`), let the loop record its exit, end."""
        self._stopping = True
        self._wake.set()
        process = self._process
        if process and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), DRAIN_TIMEOUT_S + 1)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self.state = "stopped"

    def status(self) -> dict[str, object]:
        return {
            "state": self.state,
            "pid": self.pid,
            "port": self.port,
            "instance_id": self.instance_id,
            "serving": self.serving,
            "starts": self.starts,
            "restarts": max(0, self.starts - 1),
            "exit_codes": [e.code for e in self.exits[-20:]],
            "last_exit": self.exits[-1].__dict__ if self.exits else None,
            "next_start_at": self.next_start_at,
        }
