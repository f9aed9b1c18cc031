"""Starting, waiting for and stopping what the replica's tests run (importable from the test modules
beside it): one copy of each, shared."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from replica.config import ServiceConfig
from replica.handle import ReplicaHandle
from replica.ports import free_port

REPO = Path(__file__).resolve().parents[2]

T = TypeVar("T")


def poll_until(
    probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.1
) -> tuple[T | None, float]:
    """(the first truthy value `probe` returns, seconds it took); (None, timeout) if none came in time."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < timeout_s:
        value = probe()
        if value:
            return value, elapsed
        time.sleep(interval_s)
    return None, timeout_s


@contextmanager
def running(run_dir: Path, scenario: str, **start_kwargs: Any) -> Iterator[ReplicaHandle]:
    """A replica of `scenario` that is stopped whatever the test did."""
    handle = ReplicaHandle.start(scenario, run_dir, **start_kwargs)
    try:
        yield handle
    finally:
        handle.stop()


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill what does not stop: no service outlives its test."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Service:
    """One service subprocess (`python -m replica.<name>`); its stderr goes to a file so that a full
    pipe never blocks it."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    serving: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)

    def wait_serving(self, path: str, timeout_s: float) -> Service:
        """Block until GET `path` answers 200 (once is enough); fail with the service's stderr if it
        dies first or does not serve in time."""
        deadline = time.monotonic() + timeout_s
        while not self.serving and time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.stderr()[-3000:]}")
            with suppress(httpx.HTTPError):
                self.serving = httpx.get(self.url + path, timeout=1.0).status_code == 200
            if not self.serving:
                time.sleep(0.1)
        if not self.serving:
            pytest.fail(f"{self.name} did not serve {path} within {timeout_s}s:\n{self.stderr()[-3000:]}")
        return self


def spawn_service(module: str, name: str, config: ServiceConfig, log_path: Path) -> Service:
    """Start `python -m <module> --port N` with `config` in its environment, as the daemon does."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port)],
            env=os.environ | config.to_env(),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    return Service(name, port, process, log_path)


def cli(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m replica --run-dir D ...` as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "replica", "--run-dir", str(run_dir), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
