"""The backend's startup record around one run, read at most once, on first need.

Two needs share the one reading: the first backend failure that a dying backend would explain (a
gateway's 503 page, the service saying its startup failed) asks whether the record already settles it,
and the cause at the run's end weighs a known issue against it. A healthy run needs neither and reads
nothing.

The record settles a failure when it shows the backend's startups *dying*: startups in the window that
failed, and none succeeding since the last of them. No cold start can then explain the 503, and no
retry will see the backend come up: the run stops spending its retry budget on that service. A startup
merely in progress (a cold start, no failure before it), a record that cannot be read, or a recovery
after the failures leave the retries as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from harness.startup.records import StartupRecord
from harness.startup.sources import StartupWindow


@dataclass(frozen=True)
class Dying:
    """The record's word that the backend's startups are dying: how many, where, and the last one."""

    failed: int
    of: int
    last: StartupRecord

    def __str__(self) -> str:
        last = self.last
        if last.failed_phase:
            where = f"in phase {last.failed_phase}"
        elif last.app_outcome == "completed":  # Cloud Run's probe never reached it: it never served
            where = "after the app said it had started"
        else:
            where = "in a phase the record does not name"
        return (
            f"the startup record shows the backend's startups dying: {self.failed} of {self.of} failed, "
            f"the last {where}, none succeeded since"
        )


def dying(window: StartupWindow) -> Dying | None:
    """The startups of `window` are dying: at least one failed, and none succeeded after the last one."""
    if window.tally is None:
        return None
    started = [(r.started_at, r) for r in window.tally.records if r.started_at is not None]
    failed = [(at, r) for at, r in started if r.outcome == "failed"]
    if not failed:
        return None  # nothing failed: a startup in progress is a cold start
    last_at, last = max(failed, key=lambda pair: pair[0])
    if any(r.outcome == "ok" and at > last_at for at, r in started):
        return None  # it recovered
    return Dying(len(failed), len(started), last)


class StartupWatch:
    """One run's view of the startup record, each reading bounded by the reader it is given.

    `dying()` reads the record at most once (the first failure that asks); `window()`, for the cause
    at the run's end, reuses that reading when it settled the failure, else reads once more: a reading
    taken in the run's first second may predate the deaths the run then met. Thread-safe."""

    def __init__(self, read: Callable[[], StartupWindow]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._early: StartupWindow | None = None
        self._final: StartupWindow | None = None

    def dying(self) -> Dying | None:
        with self._lock:
            if self._early is None:
                self._early = self._read()
            return dying(self._early)

    @property
    def reading(self) -> StartupWindow | None:
        """The last reading taken (the cause's, else the early one), without reading: None if none."""
        return self._final or self._early

    def window(self) -> StartupWindow:
        with self._lock:
            if self._early is not None and dying(self._early) is not None:
                return self._early
            if self._final is None:
                self._final = self._read()
            return self._final
