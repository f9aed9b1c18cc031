"""A circuit breaker shared by every test of a run, across xdist workers (a file beside the verdict).

When one operation has spent its retry budget on an infrastructure failure of a target (or confirmed
that the target cannot be reached at all: its name does not resolve, its certificate fails, nothing
listens), the breaker opens for that target: later operations make one cheap probe (half-open) and,
if the target is still down, end at once with the same category and a pointer to the first evidence,
instead of each spending the budget again. A probe that finds the target healthy closes it.

It also remembers which hosts answered in this run: a refusal from a host that already answered is
a blip worth retrying; from a host that never did, it is how the host is.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Trip:
    target: str
    category: str
    message: str
    known_issue: str | None
    opened_by: str  # the test whose retries were exhausted: where the full evidence is
    opened_at: float
    kind: str = ""


class Breaker:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._answered: set[str] = set()  # known in this process, written once each

    def _read(self) -> dict[str, Any]:
        try:
            state = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"trips": {}, "answered": []}
        return state if isinstance(state, dict) and "trips" in state else {"trips": {}, "answered": []}

    def _write(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.path)  # atomic: a reader in another worker sees the old or the new file

    def tripped(self, target: str) -> Trip | None:
        entry = self._read()["trips"].get(target)
        return Trip(**entry) if entry else None

    def open(self, trip: Trip) -> None:
        state = self._read()
        if trip.target not in state["trips"]:  # the first evidence is the one worth pointing at
            state["trips"][trip.target] = asdict(trip)
            self._write(state)

    def close(self, target: str) -> None:
        state = self._read()
        if state["trips"].pop(target, None) is not None:
            self._write(state)

    def note_answered(self, host: str) -> None:
        if host in self._answered:
            return
        self._answered.add(host)
        state = self._read()
        if host not in state["answered"]:
            state["answered"].append(host)
            self._write(state)

    def answered(self, host: str) -> bool:
        return host in self._answered or host in self._read()["answered"]

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self._answered.clear()


def new_trip(
    target: str, category: str, message: str, known_issue: str | None, opened_by: str, kind: str
) -> Trip:
    return Trip(target, category, message, known_issue, opened_by, time.time(), kind)
