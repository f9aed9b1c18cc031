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
  `Application startup failed` (the server never served, whatever was logged before). `failed` too when
  Cloud Run ended the startup in its own words: its startup probe failed (`... probe failed ... The
  instance was not started.`, `failed to start and listen on the port defined provided by the PORT=...`),
  even after the app logged `COMPLETED SUCCESSFULLY` (it listened elsewhere, or too late: it never
  served), or it killed the instance for memory (`Memory limit of N MiB exceeded with M MiB used.`)
  before the app said it had started. Otherwise `ok` when `STARTUP SEQUENCE COMPLETED SUCCESSFULLY`
  was logged: an exit *after* that line is a crash of a started service, not a failed startup; it is
  kept (`exit_code`, `exit_after_startup=True`) and shown in the record's line, and the outcome stays
  `ok`. Otherwise `failed` on a non-zero exit (Cloud Run's `Container called exit(N).`, else the web
  server's `Worker (pid:N) exited with code N`). Otherwise `incomplete` (still starting at the window's
  end, killed by a signal the record gives no reason for, or lines missing).
* **The line that says why** (`reason`, with every such line in `reason_lines`). The real build fails
  its database phase with the same generic words whatever went wrong (`Database schema validation
  failed - schema inconsistent`); the line that says why comes just before it: the connection's own
  error (`Database connection error after 0.024s (attempt 1/3): password=REDACTED failed for user
  "..."`, `... [Errno 2] No such file or directory`), its timeout (`Database connection timeout after
  10.004s`), the missing tables (`Missing critical database tables: {...}`). `_WHY` lists those
  phrases, most specific first; `reason` is the best one logged in the failed phase before its phase
  error, else Cloud Run's line that ended the startup (memory, then the port, then the probe). Lines
  are kept redacted and bounded (`_MAX_REASON_CHARS`, at most `_MAX_REASON_LINES`).
* **The database timeout the record prints** (`db_timeout_s`): `capacity-aware timeouts: init=95.0s`,
  so that a reader can tell a phase that ran out its time from one that died at once.
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
AppOutcome = Literal["completed", "failed"]
# Cloud Run's own lines about a startup (its system log), by what they say.
PlatformLine = Literal["memory_exceeded", "probe_failed", "port_not_listening", "signal"]

DUPLICATE_WINDOW_S = 5.0
"""The same text on the same instance within this many seconds is one line logged several times."""

_MAX_EVIDENCE_CHARS = 200
_MAX_REASON_CHARS = 300
_MAX_REASON_LINES = 10

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
_DB_TIMEOUT = re.compile(rf"capacity-aware timeouts:\s*init\s*=\s*{_NUM}\s*s")
# The lines that say why the database phase failed, most specific first: the real build's generic
# phase error comes after them (docs/startup-record.md, "How the database phase dies").
_WHY: tuple[re.Pattern[str], ...] = (
    re.compile(r"Missing critical database tables"),  # migrations never ran
    re.compile(r"Database connection (?:error|timeout) after"),  # the connection's own words and reason
    re.compile(r"Database connectivity check failed"),  # the schema validator's, the same reason
    re.compile(r"Database initialization attempt \d+ failed"),  # `... attempt 1 failed (timeout):`
    re.compile(r"Circuit breaker: Database failures reached threshold"),
)
# Cloud Run's own lines (its system log, `textPayload`), matched loosely: the probe's wording is known
# from memory of real logs (docs/startup-record.md), the memory line as a public runbook quotes it.
_MEMORY = re.compile(r"Memory limit of \d+\s*\w+ exceeded|container ran out of memory")
_PROBE_FAILED = re.compile(r"STARTUP \w+ probe failed|[Ss]tartup probe failed")
_PORT_NOT_LISTENING = re.compile(r"failed to start and listen on the port")
_SIGNAL = re.compile(r"Container terminated on signal (\d+)")
# Cloud Run's lines as reasons, the most telling first.
_PLATFORM_WHY: tuple[tuple[PlatformLine, re.Pattern[str]], ...] = (
    ("memory_exceeded", _MEMORY),
    ("port_not_listening", _PORT_NOT_LISTENING),
    ("probe_failed", _PROBE_FAILED),
)
_MARKERS = re.compile(r"^(?:\[U\+[0-9A-F]+\]|FAIL:|PASS:|[^\w\[])+")

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
        # the database phase's timeout, and the lines that say why it failed
        "capacity-aware timeouts",
        "Missing critical database tables",
        "Database connection (error|timeout) after",
        "Database connectivity check failed",
        "Database initialization attempt [0-9]+ failed",
        "Circuit breaker: Database failures reached threshold",
        # Cloud Run's own lines: the memory limit, the startup probe, the port, a kill
        "Memory limit of [0-9]+",
        "container ran out of memory",
        "[Ss]tartup probe failed|STARTUP [A-Z]+ probe failed",
        "failed to start and listen on the port",
        "Container terminated on signal",
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
    """Lower-case phase name from `Failed at Phase: X`, else from `PHASE FAILED: X`; for a startup Cloud
    Run ended before the app said how it ended (memory, the startup probe), the phase it was in."""
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
    reason: str | None = None
    """The line that says why: the most specific one the failed phase logged before its (generic)
    phase error, else Cloud Run's line that ended the startup; redacted, without its markers."""
    reason_lines: tuple[str, ...] = ()
    """Every line that says how this startup died, in order: the failed phase's specific lines, its
    phase error, Cloud Run's lines (redacted, bounded). A reader looks for a kind's words here."""
    db_timeout_s: float | None = None
    """The database phase's timeout as the record prints it (`capacity-aware timeouts: init=95.0s`)."""
    app_outcome: AppOutcome | None = None
    """What the app itself said: `completed` (`COMPLETED SUCCESSFULLY`), `failed`, or nothing."""
    platform: tuple[PlatformLine, ...] = ()
    """Cloud Run's own lines about this startup, by what they say (in the order first seen)."""
    signal: int | None = None
    """N from Cloud Run's `Container terminated on signal N.`"""

    def summary_line(self) -> str:
        """One line for a person: when, which instance, what happened, the database phase."""
        when = iso(self.started_at) or f"(no start line; first entry {iso(self.first_entry_at)})"
        instance = self.instance if len(self.instance) <= 16 else f"{self.instance[:12]}…"
        where = f"{instance} {self.revision}" if self.revision else instance
        parts: list[str] = [self.outcome]
        if self.outcome == "failed":
            words = [w for w in (self.error, self.reason and f"why: {self.reason}") if w]
            said = f" ({'; '.join(words)})" if words else ""
            parts = [f"failed at {self.failed_phase or 'an unknown phase'}{said}"]
            if self.failed_phase is None and self.app_outcome == "completed":
                parts = [f"failed after the app said it had started ({self.reason})"]
        elif self.outcome == "incomplete":
            parts = [f"incomplete (last phase {self.last_phase or 'unknown'})"]
        if self.db_phase_s is not None:
            parts.append(f"database phase {self.db_phase_s:.3f}s ({self.db_phase_source})")
        if self.exit_code is not None:
            parts.append(
                f"exit {self.exit_code}"
                + (" after startup (not a startup failure)" if self.exit_after_startup else "")
            )
        if self.signal is not None:
            parts.append(f"killed (signal {self.signal})")
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
            "reason": self.reason,
            "reason_lines": list(self.reason_lines),
            "db_timeout_s": self.db_timeout_s,
            "app_outcome": self.app_outcome,
            "platform": list(self.platform),
            "signal": self.signal,
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


def _quoted(text: str) -> str:
    """A line as a person quotes it: redacted, bounded, without the build's markers (` FAIL: `, `❌`)."""
    return redact_line(_MARKERS.sub("", text.strip()), _MAX_REASON_CHARS)


@dataclass(frozen=True)
class _Why:
    """A line that says why, where it was logged."""

    rank: int  # its place in `_WHY` (lower: more specific)
    phase: str | None  # the phase the sequence was in
    text: str  # quoted


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
    db_timeout: float | None = None
    whys: list[_Why] = field(default_factory=list)  # the failing phase's lines that say why
    phase_failed_text: str | None = None  # the first `PHASE FAILED` line, quoted
    platform: dict[PlatformLine, tuple[datetime, str]] = field(default_factory=dict)  # first of each
    signal: int | None = None

    @property
    def has_start_or_outcome(self) -> bool:
        return (
            self.started_at is not None
            or self.success_at is not None
            or self.startup_failed
            or bool(self.exits)
            or self.signal is not None
        )

    def _why(self, text: str) -> None:
        """Keep `text` if it says why a phase fails (before the phase's own error is logged)."""
        rank = next((i for i, pattern in enumerate(_WHY) if pattern.search(text)), None)
        if rank is not None and self.phase_failed_text is None and len(self.whys) < _MAX_REASON_LINES:
            quoted = _quoted(text)
            if all(w.text != quoted for w in self.whys):
                self.whys.append(_Why(rank, self.last_phase, quoted))

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
            if m := _DB_TIMEOUT.search(text):
                self.db_timeout = self.db_timeout or float(m.group(1))
                self.note(line, text)
            if any(pattern.search(text) for pattern in _WHY):
                self._why(text)
                self.note(line, text)
            for name, pattern in _PLATFORM_WHY:
                if pattern.search(text) and name not in self.platform:
                    self.platform[name] = (line.at, _quoted(text))
                    self.note(line, text)
            if m := _SIGNAL.search(text):
                self.signal = self.signal if self.signal is not None else int(m.group(1))
                self.platform.setdefault("signal", (line.at, _quoted(text)))
                self.note(line, text)
            if m := _PHASE_FAILED.search(text):
                self.phase_failed_text = self.phase_failed_text or _quoted(text)
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

    def _platform_ended(self) -> bool:
        """Cloud Run ended this startup in its own words: its startup probe failed (the instance was
        never started, whatever the app said), or it killed the instance for memory before the app
        said it had started."""
        if "probe_failed" in self.platform or "port_not_listening" in self.platform:
            return True
        memory = self.platform.get("memory_exceeded")
        return memory is not None and (self.success_at is None or memory[0] < self.success_at)

    def _reason(self, failed_phase: str | None) -> tuple[str | None, tuple[str, ...]]:
        """The line that says why, and every line that says how it died (see the module's docstring)."""
        mine = [w for w in self.whys if failed_phase is None or w.phase in (None, failed_phase)]
        platform = [self.platform[name][1] for name, _ in _PLATFORM_WHY if name in self.platform] + (
            [self.platform["signal"][1]] if "signal" in self.platform else []
        )
        best = min(mine, key=lambda w: w.rank).text if mine else (platform[0] if platform else None)
        lines = [w.text for w in mine] + ([self.phase_failed_text] if self.phase_failed_text else [])
        return best, tuple(dict.fromkeys(lines + platform))[:_MAX_REASON_LINES]

    def record(self) -> StartupRecord:
        first = self.lines[0]
        container = [e for e in self.exits if e[2] == "container"]
        chosen = (container or self.exits)[0] if self.exits else None
        exit_code = chosen[1] if chosen else None
        nonzero_exit = any(code != 0 for _, code, _ in self.exits)
        platform_ended = self._platform_ended()
        outcome: StartupOutcome
        if self.startup_failed or platform_ended:
            outcome = "failed"
        elif self.success_at is not None:
            outcome = "ok"
        elif nonzero_exit:
            outcome = "failed"
        else:
            outcome = "incomplete"
        said_failed = self.startup_failed or self.failed_at_phase or self.phase_failed  # a phase's own words
        app_outcome: AppOutcome | None = (
            "failed" if said_failed else "completed" if self.success_at is not None else None
        )
        failed_phase = self.failed_at_phase or self.phase_failed
        if failed_phase is None and platform_ended and app_outcome is None:
            failed_phase = self.last_phase  # where Cloud Run found it
        reason, reason_lines = self._reason(failed_phase) if outcome != "ok" else (None, ())
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
            failed_phase=failed_phase,
            last_phase=self.last_phase,
            exit_code=exit_code,
            error=self._error(),
            exit_after_startup=exit_after,
            first_entry_at=first.at,
            last_entry_at=self.lines[-1].at,
            entries=len(self.lines),
            evidence=tuple(self.evidence),
            reason=reason,
            reason_lines=reason_lines,
            db_timeout_s=self.db_timeout,
            app_outcome=app_outcome,
            platform=tuple(self.platform),
            signal=self.signal,
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
