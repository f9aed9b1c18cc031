"""Starting, waiting for and stopping what the replica's tests run (importable from the test modules
beside it): one copy of each, shared."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from replica.handle import ReplicaHandle

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
