"""The startups of a time window, tallied: what the Issue #1278 criteria are judged on.

`tally` counts the records whose `started_at` is in [since, until]: ok / failed / incomplete, the
success rate with its Wilson lower bound, the database phase's p95 and max, the failing phases, and
one line of evidence per startup.

* **Window.** A record without a `started_at` (its `SEQUENCE INITIATED` line is missing: it began
  before the window, or the line was lost) has no known start: it never enters the rate, and is counted
  and listed apart (`without_start`) when its entries overlap the window.
* **Database-phase statistics** take every record started in the window that has a `db_phase_s`,
  whatever its outcome. The criterion "database phase < 30 s / Cloud SQL connected < 30 s consistently"
  is about the phase, not about startups that survived it: a failed startup's 107 s in the database
  phase is exactly the #1278 evidence, and leaving it out would let a fleet of failures pass the gate
  (survivorship bias). For a phase that failed, the figure is the time it spent before giving up (a
  lower bound of what it needed); for a startup that failed later, or is still going, its database
  phase completed and the figure is exact.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.slo import percentile, wilson_lower
from harness.startup.records import StartupRecord, iso


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class StartupTally:
    """The startups of [since, until]: what the #1278 criteria are judged on."""

    since: datetime
    until: datetime
    records: tuple[StartupRecord, ...]
    """Records started in the window, in start order."""
    without_start: tuple[StartupRecord, ...]
    """Records with no `SEQUENCE INITIATED` line whose entries overlap the window: never in the rate."""
    ok: int
    failed: int
    incomplete: int
    success_rate: float | None
    """ok / (ok + failed); None without any finished startup."""
    wilson_lower_95: float | None
    db_phase_samples: int
    db_phase_p95_s: float | None
    db_phase_max_s: float | None
    failed_phases: dict[str, int]
    """Failed startups by the phase they failed in (`unknown` when no line named it)."""
    lines: tuple[str, ...]
    incomplete_read: str | None = None
    """Why the record read may hold only part of the window (gcloud stopped at its entry limit)."""

    @property
    def started(self) -> int:
        return self.ok + self.failed + self.incomplete

    def text(self) -> str:
        """The summary in one line."""
        window = f"{iso(self.since)}..{iso(self.until)}"
        phases = ", ".join(f"{k} {v}" for k, v in sorted(self.failed_phases.items()))
        parts = [
            f"{self.ok} ok",
            f"{self.failed} failed" + (f" ({phases})" if phases else ""),
            f"{self.incomplete} incomplete",
        ]
        if self.without_start:
            parts.append(f"{len(self.without_start)} without a start line (not counted)")
        rate = (
            "no finished startup"
            if self.success_rate is None or self.wilson_lower_95 is None
            else f"success rate {self.success_rate:.1%} (Wilson 95% lower {self.wilson_lower_95:.1%})"
        )
        db = (
            "no database-phase timing"
            if self.db_phase_p95_s is None or self.db_phase_max_s is None
            else f"database phase p95 {self.db_phase_p95_s:.3f}s, max {self.db_phase_max_s:.3f}s over {self.db_phase_samples}"
        )
        cut = f"; {self.incomplete_read}" if self.incomplete_read else ""
        return f"startups {window}: {', '.join(parts)}; {rate}; {db}{cut}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "started": self.started,
            "ok": self.ok,
            "failed": self.failed,
            "incomplete": self.incomplete,
            "without_start": len(self.without_start),
            "success_rate": self.success_rate,
            "wilson_lower_95": self.wilson_lower_95,
            "db_phase_samples": self.db_phase_samples,
            "db_phase_p95_s": self.db_phase_p95_s,
            "db_phase_max_s": self.db_phase_max_s,
            "failed_phases": dict(self.failed_phases),
            "incomplete_read": self.incomplete_read,
            "text": self.text(),
            "lines": list(self.lines),
            "records": [r.to_dict() for r in self.records],
            "records_without_start": [r.to_dict() for r in self.without_start],
        }


def tally(
    records: Iterable[StartupRecord], *, since: datetime, until: datetime, incomplete_read: str | None = None
) -> StartupTally:
    """The startups that began in [since, until] (naive datetimes are taken as UTC)."""
    since, until = as_utc(since), as_utc(until)
    in_window: list[StartupRecord] = []
    without_start: list[StartupRecord] = []
    for record in records:
        if record.started_at is not None:
            if since <= record.started_at <= until:
                in_window.append(record)
        elif (record.first_entry_at is None or record.first_entry_at <= until) and (
            record.last_entry_at is None or record.last_entry_at >= since
        ):
            without_start.append(record)
    counts = Counter(r.outcome for r in in_window)
    ok, failed = counts["ok"], counts["failed"]
    finished = ok + failed
    db_values = [r.db_phase_s for r in in_window if r.db_phase_s is not None]
    p95 = percentile(db_values, 95)
    return StartupTally(
        since=since,
        until=until,
        records=tuple(in_window),
        without_start=tuple(without_start),
        ok=ok,
        failed=failed,
        incomplete=counts["incomplete"],
        success_rate=ok / finished if finished else None,
        wilson_lower_95=wilson_lower(ok, finished) if finished else None,
        db_phase_samples=len(db_values),
        db_phase_p95_s=None if math.isnan(p95) else p95,
        db_phase_max_s=max(db_values) if db_values else None,
        failed_phases=dict(Counter(r.failed_phase or "unknown" for r in in_window if r.outcome == "failed")),
        lines=tuple(r.summary_line() for r in [*in_window, *without_start]),
        incomplete_read=incomplete_read,
    )
