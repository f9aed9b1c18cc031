"""A circuit breaker shared by every test of a run, across xdist workers (a file under reports/).

When one operation has spent its whole retry budget on an infrastructure failure of a target,
the breaker opens for that target: later operations make one cheap probe (half-open) and, if the
target is still down, end at once with the same category and a pointer to the first evidence,
instead of each spending the budget again. A probe that finds the target healthy closes it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path("reports/breaker.json")
PATH_ENV = "E2E_BREAKER_FILE"


@dataclass(frozen=True)
class Trip:
    target: str
    category: str
    message: str
    known_issue: str | None
    opened_by: str  # the test whose retries were exhausted: where the full evidence is
    opened_at: float


class Breaker:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(os.environ.get(PATH_ENV, str(DEFAULT_PATH)))

    def _read(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _write(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.path)  # atomic: a reader in another worker sees the old or the new file

    def tripped(self, target: str) -> Trip | None:
        entry = self._read().get(target)
        return Trip(**entry) if entry else None

    def open(self, target: str, category: str, message: str, known_issue: str | None, opened_by: str) -> None:
        state = self._read()
        if target not in state:  # the first evidence is the one worth pointing at
            state[target] = asdict(Trip(target, category, message, known_issue, opened_by, time.time()))
            self._write(state)

    def close(self, target: str) -> None:
        state = self._read()
        if state.pop(target, None) is not None:
            self._write(state)

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
