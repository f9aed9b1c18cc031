"""The history of one job against one environment: its nights, oldest first, in one JSON document.

One document per job+environment, and the document says whose it is: a local dry run
(E2E_ENV=local) or a verify-fix never enters the staging nightly's history, even when pointed at its
file (`HistoryFile.read` refuses a document of another key). A night is keyed by its run id: a re-run
of the same run replaces its record, never adds a night (`History.with_night`).

The same document is the local file (`E2E_HISTORY=path`) and the durable copy (`harness.nightly.store`),
so that what a run reads is what CI keeps. When the durable copy could not be read, the pulled file
says so (`unavailable`): the run then says nothing about the nights before, rather than calling
tonight the first one, and still records itself (the store merges it in later).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.nightly.record import NightRecord, parse_time

FORMAT = 1
LIMIT = 400  # nights kept per job and environment: more than a year of nightlies, well under 1 MB


@dataclass(frozen=True)
class History:
    job: str
    environment: str
    records: tuple[NightRecord, ...] = ()
    unavailable: str | None = None  # why the durable copy could not be read (None: it was, or none is used)

    @property
    def key(self) -> tuple[str, str]:
        return (self.job, self.environment)

    def previous(self, run_id: str) -> tuple[NightRecord, ...]:
        """The nights before this run: every record but its own (a re-run does not follow itself)."""
        return tuple(r for r in self.records if r.run_id != run_id)

    def with_night(self, night: NightRecord) -> History:
        """This history with `night` in it: replacing the record of the same run id, in time order,
        the oldest dropped beyond `LIMIT`."""
        if night.key != self.key:
            raise ValueError(
                f"a night of {'/'.join(night.key)} does not belong in {'/'.join(self.key)}'s history"
            )
        kept = [r for r in self.records if r.run_id != night.run_id] + [night]
        kept.sort(key=lambda r: parse_time(r.started_at))
        return replace(self, records=tuple(kept[-LIMIT:]), unavailable=None)

    def merged(self, nights: Sequence[NightRecord]) -> History:
        merged = self
        for night in nights:
            merged = merged.with_night(night)
        return merged

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "format": FORMAT,
            "job": self.job,
            "environment": self.environment,
            "records": [r.to_dict() for r in self.records],
        }
        if self.unavailable:
            body["unavailable"] = self.unavailable
        return json.dumps(body, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> History:
        data = json.loads(text)
        if not isinstance(data, dict) or "job" not in data or "environment" not in data:
            raise ValueError("not a nightly history (expected an object with job, environment, records)")
        return cls(
            job=str(data["job"]),
            environment=str(data["environment"]),
            records=tuple(NightRecord.from_dict(r) for r in data.get("records") or ()),
            unavailable=data.get("unavailable"),
        )


class HistoryError(Exception):
    """The history file cannot be used for this run (the message says why, in one line)."""


@dataclass(frozen=True)
class HistoryFile:
    """The local history file (`E2E_HISTORY`), holding one job+environment's document."""

    path: Path

    def read(self, job: str, environment: str) -> History:
        """This key's history; an empty one when the file does not exist yet."""
        if not self.path.exists():
            return History(job, environment)
        try:
            found = History.from_json(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HistoryError(f"history {self.path} is unreadable: {exc}") from None
        if found.key != (job, environment):
            raise HistoryError(
                f"history {self.path} holds {found.job} on {found.environment}; this run is {job} on "
                f"{environment}: not read, not recorded (each job and environment has a history of its own)"
            )
        return found

    def write(self, history: History) -> None:
        """Replaced whole (a reader never sees half a file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(history.to_json(), encoding="utf-8")
        tmp.replace(self.path)


def file_name(job: str, environment: str) -> str:
    """The history's name for a job and environment, locally and on the history branch."""
    return f"{job}.{environment}.json"
