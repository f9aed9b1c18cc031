"""The startup record: the real backend's startups, read from its Cloud Logging entries (or a file).

The success criteria of Issue #1278 are about startups (database phase under 30 s, Cloud SQL connected
under 30 s consistently, startup success rate above 90 %). No endpoint reports them: the backend's logs
are the only outside source (docs/startup-record.md describes what it writes and how it is read).

`parse` / `parse_entries` turn LogEntry dicts (as `gcloud logging read --format=json` prints them) into one
`StartupRecord` per startup, grouped by instance id (+ revision). Pure: where the entries come from is
`harness.startup.sources`; a window's tally is `harness.startup.tally`. Matching is on core phrases,
never on prefixes: the source writes markers such as ` CYCLE:`, ` PASS:`, `[U+1F680]`, and the service's
own log redactor turns ` PASS:  PHASE COMPLETED: DATABASE (0.142s)` into `PASS=REDACTED COMPLETED:
DATABASE (0.142s)`. Severity is ignored (a successful startup logs dozens of ERROR lines). Bad entries
are skipped and counted, never raised.

Decisions (each one is tested):

* **Outcome.** `failed` when the startup sequence logged `STARTUP SEQUENCE FAILED` or the server logged
  `Application startup failed` (the server never served, whatever was logged before). Otherwise `ok`
  when `STARTUP SEQUENCE COMPLETED SUCCESSFULLY` was logged: an exit *after* that line is a crash of a
  started service, not a failed startup; it is kept (`exit_code`, `exit_after_startup=True`) and shown in
  the record's line, and the outcome stays `ok`. Otherwise `failed` on a non-zero exit (Cloud Run's
  `Container called exit(N).`, else the web server's `Worker (pid:N) exited with code N`). Otherwise
  `incomplete` (still starting at the window's end, killed by the startup probe, or lines missing).
* **One startup per segment.** An instance's entries, in time order, form one startup; a further
  `SEQUENCE INITIATED` starts a new one once the current one has its own `SEQUENCE INITIATED` or an
  outcome (a container restarted in the same instance). An entry without a revision name joins its
  instance's only revision. A line repeated with the same text within
  `DUPLICATE_WINDOW_S` on the same instance is one line (the backend logs some lines 2-3 times).
* **Database phase** (`db_phase_s`, with `db_phase_source`): `COMPLETED: DATABASE (Xs)` however
  prefixed; else the breakdown line `DATABASE : Xs (p%)`; else the `FAIL: DATABASE : Xs` line of
  `PARTIAL PHASE TIMINGS`; else the largest `after Xs` of a `PHASE FAILED: DATABASE` line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from harness.redact import redact_line

StartupOutcome = Literal["ok", "failed", "incomplete"]
DbPhaseSource = Literal["completed", "breakdown", "partial_timings", "phase_failed_after"]

DUPLICATE_WINDOW_S = 5.0
"""The same text on the same instance within this many seconds is one line logged several times."""

_MAX_EVIDENCE_CHARS = 200

# --------------------------------------------------------------------------------------------------
# Phrases, matched case-sensitively on each line of an entry's text, anywhere in the line.
# --------------------------------------------------------------------------------------------------
_NUM = r"(\d+(?:\.\d+)?)"
_INITIATED = re.compile(r"STARTUP SEQUENCE INITIATED")
_SUCCEEDED = re.compile(r"STARTUP SEQUENCE COMPLETED SUCCESSFULLY")
_SEQUENCE_FAILED = re.compile(r"STARTUP SEQUENCE FAILED")
_APP_FAILED = re.compile(r"Application startup failed")
_PHASE_COMPLETED = re.compile(rf"COMPLETED:\s*([A-Z_]+)\s*\(\s*{_NUM}\s*s\s*\)")
# A whole line: the success breakdown `   DATABASE    : 0.142s (11.6%)` or a line of PARTIAL PHASE
# TIMINGS `    FAIL:  DATABASE    : 107.301s`. Anchored, so `Total duration: 0.00s`, `Total Fixes: 5/5`
# and the mangled `PASS=REDACTED        : 0.154s` never match.
_TIMING_LINE = re.compile(
    rf"^\s*(?:(?:PASS|FAIL):\s*)?([A-Z_]+)\s*:\s*{_NUM}\s*s(?:\s*\(\s*{_NUM}\s*%\s*\))?\s*$"
)
_PHASE_FAILED = re.compile(r"PHASE FAILED:\s*([A-Z_]+)")
# The error a failed phase names: `PHASE FAILED: SERVICES - <error> (after 0.12s)`, else the failure
# summary's `FAIL:  Error: <error>`.
_PHASE_ERROR = re.compile(r"PHASE FAILED:\s*[A-Z_]+\s*-\s*(.*?)\s*\(after\s+\d")
_ERROR_LINE = re.compile(r"FAIL:\s*Error:\s*(\S.*)")
_TYPED_ERROR = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")
_AFTER = re.compile(rf"\bafter\s+{_NUM}\s*s\b")
_FAILED_AT = re.compile(r"Failed at Phase:\s*([A-Za-z_]+)")
_TRANSITION = re.compile(r"PHASE TRANSITION\s*(?:->|\u2192|\[U\+2192\])\s*([A-Z_]+)")
_CONTAINER_EXIT = re.compile(r"Container called exit\((-?\d+)\)")
_WORKER_EXIT = re.compile(r"Worker \(pid:\s*\d+\) exited with code (-?\d+)")

# The same phrases for Cloud Logging (RE2, case-sensitive, unanchored; `[(]` avoids escaping a
# backslash inside the filter's quoted string). Every line that decides a record matches it (a test
# checks); of the phase lines only the database's timings and the transitions (where an incomplete
# startup stopped) are kept.
LOG_TEXT_REGEX = "|".join(
    [
        "STARTUP SEQUENCE (INITIATED|COMPLETED SUCCESSFULLY|FAILED)",
        "PHASE TRANSITION",
        "COMPLETED: *DATABASE *[(]",
        "DATABASE *: *[0-9]",
        "PHASE FAILED:",
        "Failed at Phase:",
        "FAIL: *Error:",
        "Application startup failed",
        "Container called exit[(]",
        "exited with code",
    ]
)

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})$"
)


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------
def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class StartupRecord:
    """One startup of one container instance, as its log lines tell it."""

    instance: str
    revision: str | None
    started_at: datetime | None
    """UTC time of the `SEQUENCE INITIATED` entry; None when that line is missing."""
    db_phase_s: float | None
    outcome: StartupOutcome
    failed_phase: str | None
    """Lower-case phase name from `Failed at Phase: X`, else from `PHASE FAILED: X`."""
    exit_code: int | None
    """From `Container called exit(N).`, else from the web server's `Worker ... exited with code N`."""
    error: str | None = None
    """The failed phase's error, one line: the one naming its type (`ImportError: ...`, from the failure
    summary's `Error:`), else `PHASE FAILED: X - <error>`'s words."""
    service: str | None = None
    db_phase_source: DbPhaseSource | None = None
    last_phase: str | None = None
    """The last phase the sequence entered (lower-case): where an incomplete startup stopped."""
    exit_after_startup: bool = False
    """The exit came after `COMPLETED SUCCESSFULLY`: a started service crashed or was stopped; the
    outcome stays ok."""
    first_entry_at: datetime | None = None
    last_entry_at: datetime | None = None
    entries: int = 0
    evidence: tuple[str, ...] = ()
    """The decisive lines, time-stamped, scrubbed of credentials, shortened."""

    def summary_line(self) -> str:
        """One line for a person: when, which instance, what happened, the database phase."""
        when = iso(self.started_at) or f"(no start line; first entry {iso(self.first_entry_at)})"
        instance = self.instance if len(self.instance) <= 16 else f"{self.instance[:12]}…"
        where = f"{instance} {self.revision}" if self.revision else instance
        parts: list[str] = [self.outcome]
        if self.outcome == "failed":
            said = f" ({self.error})" if self.error else ""
            parts = [f"failed at {self.failed_phase or 'an unknown phase'}{said}"]
        elif self.outcome == "incomplete":
            parts = [f"incomplete (last phase {self.last_phase or 'unknown'})"]
        if self.db_phase_s is not None:
            parts.append(f"database phase {self.db_phase_s:.3f}s ({self.db_phase_source})")
        if self.exit_code is not None:
            parts.append(
                f"exit {self.exit_code}"
                + (" after startup (not a startup failure)" if self.exit_after_startup else "")
            )
        return f"{when} {where}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "revision": self.revision,
            "service": self.service,
            "started_at": iso(self.started_at),
            "outcome": self.outcome,
            "db_phase_s": self.db_phase_s,
            "db_phase_source": self.db_phase_source,
            "failed_phase": self.failed_phase,
            "last_phase": self.last_phase,
            "exit_code": self.exit_code,
            "error": self.error,
            "exit_after_startup": self.exit_after_startup,
            "first_entry_at": iso(self.first_entry_at),
            "last_entry_at": iso(self.last_entry_at),
            "entries": self.entries,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class ParsedEvidence:
    """The records and what was left out, so nothing disappears silently."""

    records: tuple[StartupRecord, ...]
    entries_total: int = 0
    skipped_malformed: int = 0
    """Not a mapping, or no parsable timestamp."""
    skipped_without_instance: int = 0
    skipped_other_service: int = 0
    duplicates: int = 0
    """Lines dropped because the same instance logged the same text within `DUPLICATE_WINDOW_S`
    (the repeated `=====` banners count too)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": [r.to_dict() for r in self.records],
            "entries_total": self.entries_total,
            "skipped_malformed": self.skipped_malformed,
            "skipped_without_instance": self.skipped_without_instance,
            "skipped_other_service": self.skipped_other_service,
            "duplicates": self.duplicates,
        }


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------
def parse_timestamp(value: object) -> datetime | None:
    """RFC3339 (fractions up to nanoseconds, `Z` or an offset) as an aware UTC datetime; None if not."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    offset = "+00:00" if zone in ("Z", "z") else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{year}-{month}-{day}T{hour}:{minute}:{second}.{micro:06d}{offset}")
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _text_of(entry: Mapping[Any, Any]) -> str:
    payload = entry.get("jsonPayload")
    text = payload.get("message") if isinstance(payload, Mapping) else entry.get("textPayload")
    return text if isinstance(text, str) else ""


@dataclass
class _Line:
    at: datetime
    text: str
    instance: str
    revision: str | None
    service: str | None


def _words(error: str) -> str:
    """An error's words without an empty tail: `TimeoutError: ` is `TimeoutError`."""
    return error.strip().rstrip(":").strip()


@dataclass
class _Segment:
    lines: list[_Line] = field(default_factory=list)
    started_at: datetime | None = None
    success_at: datetime | None = None
    startup_failed: bool = False
    exits: list[tuple[datetime, int, Literal["container", "worker"]]] = field(default_factory=list)
    completed_db: float | None = None
    breakdown_db: float | None = None
    partial_db: float | None = None
    failed_after_db: float | None = None
    failed_at_phase: str | None = None
    phase_failed: str | None = None
    phase_error: str | None = None  # the words of `PHASE FAILED: X - <error>`
    summary_error: str | None = None  # the failure summary's `Error: <type>: <error>`
    last_phase: str | None = None
    relevant: bool = False
    evidence: list[str] = field(default_factory=list)

    @property
    def has_start_or_outcome(self) -> bool:
        return (
            self.started_at is not None
            or self.success_at is not None
            or self.startup_failed
            or bool(self.exits)
        )

    def note(self, line: _Line, text: str) -> None:
        self.relevant = True
        stamp = line.at.strftime("%H:%M:%S.%f")[:-3]
        self.evidence.append(f"{stamp} {redact_line(text, _MAX_EVIDENCE_CHARS)}")

    def read(self, line: _Line) -> None:
        self.lines.append(line)
        for text in line.text.splitlines() or [""]:
            if _INITIATED.search(text):
                if self.started_at is None:
                    self.started_at = line.at
                self.note(line, text)
            if _SUCCEEDED.search(text):
                self.success_at = self.success_at or line.at
                self.note(line, text)
            if _SEQUENCE_FAILED.search(text) or _APP_FAILED.search(text):
                self.startup_failed = True
                self.note(line, text)
            if m := _PHASE_COMPLETED.search(text):
                self.relevant = True
                if m.group(1) == "DATABASE" and self.completed_db is None:
                    self.completed_db = float(m.group(2))
                    self.note(line, text)
            if (m := _TIMING_LINE.match(text)) and m.group(1) == "DATABASE":
                if m.group(3) is not None and self.breakdown_db is None:  # `(11.6%)`: the success breakdown
                    self.breakdown_db = float(m.group(2))
                elif m.group(3) is None and self.partial_db is None:  # no share: PARTIAL PHASE TIMINGS
                    self.partial_db = float(m.group(2))
                self.note(line, text)
            if m := _PHASE_FAILED.search(text):
                self.phase_failed = self.phase_failed or m.group(1).lower()
                said = _PHASE_ERROR.search(text)
                if said and _words(said.group(1)) and self.phase_error is None:
                    self.phase_error = redact_line(_words(said.group(1)), _MAX_EVIDENCE_CHARS)
                if m.group(1) == "DATABASE":
                    for after in _AFTER.findall(text):
                        self.failed_after_db = max(self.failed_after_db or 0.0, float(after))
                self.note(line, text)
            if (m := _ERROR_LINE.search(text)) and _words(m.group(1)) and self.summary_error is None:
                self.summary_error = redact_line(_words(m.group(1)), _MAX_EVIDENCE_CHARS)
                self.note(line, text)
            if m := _FAILED_AT.search(text):
                self.failed_at_phase = self.failed_at_phase or m.group(1).lower()
                self.note(line, text)
            if m := _TRANSITION.search(text):
                self.relevant = True
                self.last_phase = m.group(1).lower()
            if m := _CONTAINER_EXIT.search(text):
                self.exits.append((line.at, int(m.group(1)), "container"))
                self.note(line, text)
            if m := _WORKER_EXIT.search(text):
                self.exits.append((line.at, int(m.group(1)), "worker"))
                self.note(line, text)

    def _error(self) -> str | None:
        """The error's first line: the one that names its type (`ImportError: ...`), else the failed
        phase's own words, else the summary's."""
        named = [e for e in (self.summary_error, self.phase_error) if e and _TYPED_ERROR.match(e)]
        return next(iter(named), self.phase_error or self.summary_error)

    def record(self) -> StartupRecord:
        first = self.lines[0]
        container = [e for e in self.exits if e[2] == "container"]
        chosen = (container or self.exits)[0] if self.exits else None
        exit_code = chosen[1] if chosen else None
        nonzero_exit = any(code != 0 for _, code, _ in self.exits)
        outcome: StartupOutcome
        if self.startup_failed:
            outcome = "failed"
        elif self.success_at is not None:
            outcome = "ok"
        elif nonzero_exit:
            outcome = "failed"
        else:
            outcome = "incomplete"
        exit_after = self.success_at is not None and chosen is not None and chosen[0] >= self.success_at
        candidates: list[tuple[float | None, DbPhaseSource]] = [
            (self.completed_db, "completed"),
            (self.breakdown_db, "breakdown"),
            (self.partial_db, "partial_timings"),
            (self.failed_after_db, "phase_failed_after"),
        ]
        db, source = next(((v, s) for v, s in candidates if v is not None), (None, None))
        return StartupRecord(
            instance=first.instance,
            revision=next((ln.revision for ln in self.lines if ln.revision), None),
            service=next((ln.service for ln in self.lines if ln.service), None),
            started_at=self.started_at,
            db_phase_s=db,
            db_phase_source=source,
            outcome=outcome,
            failed_phase=self.failed_at_phase or self.phase_failed,
            last_phase=self.last_phase,
            exit_code=exit_code,
            error=self._error(),
            exit_after_startup=exit_after,
            first_entry_at=first.at,
            last_entry_at=self.lines[-1].at,
            entries=len(self.lines),
            evidence=tuple(self.evidence),
        )


def parse(entries: Iterable[object], *, service: str | None = None) -> ParsedEvidence:
    """Every startup in `entries` (any order), with counts of what was skipped. Never raises on data.

    `service`: when given, entries of another Cloud Run service (`resource.labels.service_name`) are
    skipped and counted; entries without a service name are kept."""
    lines: list[_Line] = []
    total = malformed = without_instance = other_service = 0
    for entry in entries:
        total += 1
        try:
            if not isinstance(entry, Mapping):
                malformed += 1
                continue
            at = parse_timestamp(entry.get("timestamp")) or parse_timestamp(entry.get("receiveTimestamp"))
            if at is None:
                malformed += 1
                continue
            labels = entry.get("labels")
            instance = _str(labels.get("instanceId")) if isinstance(labels, Mapping) else None
            if instance is None:
                without_instance += 1
                continue
            resource = entry.get("resource")
            rlabels = resource.get("labels") if isinstance(resource, Mapping) else None
            rlabels = rlabels if isinstance(rlabels, Mapping) else {}
            entry_service = _str(rlabels.get("service_name"))
            if service is not None and entry_service is not None and entry_service != service:
                other_service += 1
                continue
            lines.append(
                _Line(
                    at=at,
                    text=_text_of(entry),
                    instance=instance,
                    revision=_str(rlabels.get("revision_name")),
                    service=entry_service,
                )
            )
        except Exception:  # a hostile mapping (a property that raises): skip it, as promised
            malformed += 1

    lines.sort(key=lambda ln: ln.at)  # gcloud prints newest first; files may hold any order

    groups: dict[tuple[str, str | None], list[_Line]] = {}
    for ln in lines:
        groups.setdefault((ln.instance, ln.revision), []).append(ln)
    # A line without a revision (rare) joins its instance's group when the instance has exactly one.
    for instance, revision in [k for k in groups if k[1] is None]:
        named = [k for k in groups if k[0] == instance and k[1] is not None]
        if len(named) == 1:
            groups[named[0]] = sorted(
                groups[named[0]] + groups.pop((instance, revision)), key=lambda ln: ln.at
            )

    records: list[StartupRecord] = []
    duplicates = 0
    for group in groups.values():
        kept, dropped = _deduplicate(group)
        duplicates += dropped
        segment = _Segment()
        for ln in kept:
            if _INITIATED.search(ln.text) and segment.has_start_or_outcome:
                records.append(segment.record())
                segment = _Segment()
            segment.read(ln)
        if segment.lines and segment.relevant:
            records.append(segment.record())

    far_future = datetime.max.replace(tzinfo=UTC)
    records.sort(key=lambda r: (r.started_at or r.first_entry_at or far_future, r.instance))
    return ParsedEvidence(
        records=tuple(records),
        entries_total=total,
        skipped_malformed=malformed,
        skipped_without_instance=without_instance,
        skipped_other_service=other_service,
        duplicates=duplicates,
    )


def _deduplicate(group: list[_Line]) -> tuple[list[_Line], int]:
    """Drop a line whose text the same instance logged within `DUPLICATE_WINDOW_S` before. This also
    drops an entry present twice (e.g. two merged exports): same text, same time."""
    kept: list[_Line] = []
    last_seen: dict[str, datetime] = {}
    dropped = 0
    for ln in group:
        key = ln.text.strip()
        previous = last_seen.get(key)
        if key and previous is not None and (ln.at - previous).total_seconds() <= DUPLICATE_WINDOW_S:
            dropped += 1
            continue
        last_seen[key] = ln.at
        kept.append(ln)
    return kept, dropped


def parse_entries(entries: Iterable[object], *, service: str | None = None) -> list[StartupRecord]:
    """The startups in `entries` (LogEntry dicts in any order); see `parse` for the skipped counts."""
    return list(parse(entries, service=service).records)
