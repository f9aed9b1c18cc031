"""Cloud Logging, as the real backend's startup evidence reaches it: both ends of the pipe.

The #1278 criteria are judged on startups, and the backend's logs are the only outside source of them
(docs/startup-record.md). So the replica writes the same evidence the same way:

* in the backend process, `log_json_to_stdout` makes the startup loggers write one JSON object a line
  on stdout (`severity`, `message`, `timestamp`, `labels`, `context`), through the real build's own
  redactor, which takes `PASS:` (or `password`) and the word after it for a secret: `PASS=REDACTED`;
* in the daemon, `CloudLogging` turns each instance's stdout/stderr lines into LogEntries exactly as
  `gcloud logging read --format=json` returns them (special field `severity` lifted out of the
  payload, `labels.instanceId`, the `cloud_run_revision` resource), adds the platform's own lines
  (`Container called exit(N).`, the startup probe's success or failure, a memory limit exceeded),
  and keeps `cloud-logging.json` in the run directory: a JSON array, newest first, rewritten
  atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

PROJECT_ID = "netra-staging"
SERVICE_NAME = "netra-backend-staging"
LOCATION = "us-central1"
CONTAINER_NAME = f"{SERVICE_NAME}-1"
# The real service's PORT, which Cloud Run's probe lines name (the replica's instances listen elsewhere).
CONTAINER_PORT = 8000
APP_SERVICE = "netra-service"  # `context.service` as the real formatter fills it
FILE_NAME = "cloud-logging.json"
FLUSH_INTERVAL_S = 0.25
MAX_ENTRIES = 20_000  # the oldest go first past this (a replica left crash-looping for hours)
WRITE_DUTY = 0.2  # a large file is rewritten less often: writing takes at most this share of the time

_LOG_PREFIX = f"projects/{PROJECT_ID}/logs/run.googleapis.com%2F"
LOG_STDOUT = _LOG_PREFIX + "stdout"
LOG_STDERR = _LOG_PREFIX + "stderr"
LOG_SYSTEM = _LOG_PREFIX + "varlog%2Fsystem"
SEVERITIES = frozenset(
    {"DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"}
)
Stream = Literal["stdout", "stderr"]
# The phrases that begin and end a startup, as the suite's parser matches them (harness/startup/records.py).
STARTUP_BEGAN = "STARTUP SEQUENCE INITIATED"
STARTUP_SUCCEEDED = "STARTUP SEQUENCE COMPLETED SUCCESSFULLY"
STARTUP_FAILED = ("STARTUP SEQUENCE FAILED", "Application startup failed")

# --------------------------------------------------------------------------------------------------
# The backend process: JSON lines on stdout, mangled like the real build's
# --------------------------------------------------------------------------------------------------
# The real build's redactor (netra_backend/app/core/logging_formatters.py, `SensitiveDataFilter`), its
# password rule: a password-like key (any case), the blanks, colons or equals signs after it, and the next
# word (in quotes or not) become `<key>=REDACTED`. It takes the sequencer's ` PASS:  PHASE COMPLETED` for a
# secret (` PASS=REDACTED COMPLETED`), and PostgreSQL's `password authentication failed for user "x"` too
# (`password=REDACTED failed for user "x"`): both manglings are measured on the real build. Its other rules
# (API keys, tokens, e-mail addresses...) never match what the replica's backend logs, and are left out.
_PASSWORD_AND_WORD = re.compile(r'(password|passwd|pwd|pass)[\s:=]+"?[^"\s]+"?', re.IGNORECASE)


def redact(message: str) -> str:
    """The real build's log redactor, as it treats passwords (see `_PASSWORD_AND_WORD`)."""
    return _PASSWORD_AND_WORD.sub(r"\1=REDACTED", message)


class JsonLineFormatter(logging.Formatter):
    """One JSON object a line, in the shape the real build's Cloud Run formatter writes."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "severity": record.levelname,
            "message": redact(record.getMessage()),
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "labels": {"module": record.name, "function": record.funcName, "line": str(record.lineno)},
            "context": {"name": record.name, "service": APP_SERVICE},
        }
        return json.dumps(line, ensure_ascii=False)


def log_json_to_stdout(logger_names: Iterable[str]) -> None:
    """Route these loggers (and only these) to stdout as JSON lines; the rest keeps its handlers.
    Written in UTF-8 whatever the locale, as on Cloud Run (the real build writes `❌` as the character)."""
    if isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.encoding.lower() != "utf-8":
        sys.stdout.reconfigure(encoding="utf-8")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLineFormatter())
    for name in logger_names:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


# --------------------------------------------------------------------------------------------------
# The platform: LogEntries as gcloud returns them
# --------------------------------------------------------------------------------------------------
def new_instance_id() -> str:
    """A Cloud Run instance id: long lower-case hex, with the prefix real ones share."""
    return "0069c7a988" + secrets.token_hex(43)


def revision_name(started_at: float, rollouts: int = 0) -> str:
    """The revision a replica run serves first (e.g. `netra-backend-staging-00042-rep`), and the one
    after `rollouts` rollouts: Cloud Run numbers a service's revisions in order."""
    return f"{SERVICE_NAME}-{(int(started_at) + rollouts) % 100_000:05d}-rep"


def rfc3339(at_ns: int, digits: int = 6) -> str:
    """UTC with a `Z`, as Cloud Logging prints times (6 digits for `timestamp`, 9 for `receiveTimestamp`)."""
    seconds, fraction = divmod(at_ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{fraction // 10 ** (9 - digits):0{digits}d}Z"


def _insert_id(at_ns: int) -> str:
    """Like Cloud Run's: hex seconds, hex microseconds, then 8 random hex digits."""
    seconds, fraction = divmod(at_ns, 1_000_000_000)
    return f"{seconds:08x}{fraction // 1000:08x}{secrets.token_hex(4)}"


def _line_time_ns(value: object) -> int | None:
    """The nanoseconds of a line's own ISO timestamp; None when absent or unparsable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class _Stored:
    at_ns: int
    seq: int
    text: str  # the entry, serialised once, indented as an element of gcloud's array


class CloudLogging:
    """The backend's Cloud Logging: every instance's entries, kept in `path` newest first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.instances: list[InstanceLog] = []
        self._entries: list[_Stored] = []
        self._seq = 0
        self._dirty = True
        self._closing = asyncio.Event()

    def instance(self, revision: str) -> InstanceLog:
        """A new Cloud Run instance of `revision` (one process start): its own id, its own entries."""
        instance = InstanceLog(self, new_instance_id(), revision)
        self.instances.append(instance)
        return instance

    def finished_startups(self, since: float) -> int:
        """Startups that began at or after `since` (epoch seconds) and have ended, ok or failed."""
        return sum(1 for i in self._began(since) if i.outcome)

    def pending_startups(self, since: float) -> int:
        """Startups that began at or after `since` and may still end: no outcome yet, process running."""
        return sum(1 for i in self._began(since) if i.outcome is None and not i.process_ended)

    def _began(self, since: float) -> list[InstanceLog]:
        return [i for i in self.instances if i.startup_began_at is not None and i.startup_began_at >= since]

    @property
    def count(self) -> int:
        return len(self._entries)

    def add(self, instance_id: str, revision: str, log_name: str, at_ns: int, fields: dict[str, Any]) -> None:
        labels = {"instanceId": instance_id, **fields.pop("labels", {})}
        entry = {
            "insertId": _insert_id(at_ns),
            "labels": labels,
            "logName": log_name,
            "receiveTimestamp": rfc3339(time.time_ns(), 9),
            "resource": {
                "type": "cloud_run_revision",
                "labels": {
                    "service_name": SERVICE_NAME,
                    "revision_name": revision,
                    "configuration_name": SERVICE_NAME,
                    "location": LOCATION,
                    "project_id": PROJECT_ID,
                },
            },
            "timestamp": rfc3339(at_ns),
            **fields,
        }
        text = json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False).replace("\n", "\n  ")
        self._seq += 1
        self._entries.append(_Stored(at_ns, self._seq, "  " + text))
        if len(self._entries) > MAX_ENTRIES:
            del self._entries[: len(self._entries) - MAX_ENTRIES]
        self._dirty = True

    def _snapshot(self) -> list[str]:
        ordered = sorted(self._entries, key=lambda e: (e.at_ns, e.seq), reverse=True)
        return [e.text for e in ordered]

    def write(self) -> None:
        """Rewrite the file now (atomically: readers never see half an array)."""
        self._dirty = False
        _write_array(self.path, self._snapshot())

    async def run(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        """Rewrite the file at most every `interval_s` while entries arrive, until `aclose`."""
        while not self._closing.is_set():
            took = 0.0
            if self._dirty:
                self._dirty = False
                began = time.monotonic()
                await asyncio.to_thread(_write_array, self.path, self._snapshot())
                took = time.monotonic() - began
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), max(interval_s, took / WRITE_DUTY))

    async def aclose(self, runner: asyncio.Task[None] | None) -> None:
        """Stop `run` (its write in progress ends first, never racing this one), write a last time."""
        self._closing.set()
        if runner is not None:
            await asyncio.gather(runner, return_exceptions=True)
        self.write()


def _write_array(path: Path, texts: list[str]) -> None:
    body = "[\n" + ",\n".join(texts) + "\n]\n" if texts else "[]\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class InstanceLog:
    """What one instance's container writes, and what Cloud Run says about it; and, read from the
    same lines the suite's parser reads, when its startup began and how it ended (so the daemon can
    tell how many startups a rollout has caused)."""

    logging: CloudLogging
    instance_id: str
    revision: str
    startup_began_at: float | None = None  # epoch seconds of its `STARTUP SEQUENCE INITIATED` line
    outcome: Literal["ok", "failed"] | None = None
    process_ended: bool = False

    def line(self, stream: Stream, text: str) -> None:
        """A line of the container's stdout/stderr: jsonPayload if it is a JSON object, else text."""
        text = text.rstrip("\r\n")
        if not text.strip():
            return
        log_name = LOG_STDOUT if stream == "stdout" else LOG_STDERR
        payload = _json_object(text)
        if payload is None:
            self._startup_seen(text, time.time_ns())
            self.logging.add(self.instance_id, self.revision, log_name, time.time_ns(), {"textPayload": text})
            return
        fields: dict[str, Any] = {}
        severity = str(payload.pop("severity", "")).upper()
        if severity in SEVERITIES:
            fields["severity"] = severity
        at_ns = _line_time_ns(payload.get("timestamp")) or time.time_ns()
        self._startup_seen(str(payload.get("message", "")), at_ns)
        self.logging.add(self.instance_id, self.revision, log_name, at_ns, fields | {"jsonPayload": payload})

    def _startup_seen(self, text: str, at_ns: int) -> None:
        if STARTUP_BEGAN in text and self.startup_began_at is None:
            self.startup_began_at = at_ns / 1e9
        elif self.outcome is None and any(phrase in text for phrase in STARTUP_FAILED):
            self.outcome = "failed"
        elif self.outcome is None and STARTUP_SUCCEEDED in text:
            self.outcome = "ok"

    def probe_succeeded(self) -> None:
        message = (
            f'Default STARTUP TCP probe succeeded after 1 attempt for container "{CONTAINER_NAME}" '
            f"on port {CONTAINER_PORT}."
        )
        self._system("INFO", message)

    def probe_failed(self) -> None:
        """Cloud Run's lines for an instance whose port never accepted within the startup probe's budget:
        the probe's, then the revision's (the words `gcloud run deploy` and the revision's condition
        show). The platform then stops the instance (`exited`)."""
        self._system(
            "ERROR",
            f'Default STARTUP TCP probe failed 1 time consecutively for container "{CONTAINER_NAME}" '
            f"on port {CONTAINER_PORT}. The instance was not started.",
        )
        self._system(
            "ERROR",
            "The user-provided container failed to start and listen on the port defined provided by the "
            f"PORT={CONTAINER_PORT} environment variable within the allocated timeout.",
        )

    def memory_exceeded(self, limit_mib: int, used_mib: int) -> None:
        """Cloud Run's line for an instance killed for memory (the kill itself follows: `exited`)."""
        self._system("ERROR", f"Memory limit of {limit_mib} MiB exceeded with {used_mib} MiB used.")

    def exited(self, code: int | None) -> None:
        """Cloud Run's line for a container that exited non-zero, or was killed by a signal."""
        self.process_ended = True
        if code is not None and code > 0:
            self._system("WARNING", f"Container called exit({code}).")
        elif code is not None and code < 0:
            self._system("WARNING", f"Container terminated on signal {-code}.")

    def _system(self, severity: str, text: str) -> None:
        fields = {"severity": severity, "textPayload": text, "labels": {"container_name": CONTAINER_NAME}}
        self.logging.add(self.instance_id, self.revision, LOG_SYSTEM, time.time_ns(), fields)


# --------------------------------------------------------------------------------------------------
# Reading it back
# --------------------------------------------------------------------------------------------------
def read_entries(path: Path, since: datetime | None = None) -> list[dict[str, Any]]:
    """The entries of a `cloud-logging.json` (newest first), those at or after `since` if given."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    if since is None:
        return list(entries)
    since_ns = _line_time_ns(since.isoformat()) or 0
    return [e for e in entries if (_line_time_ns(e.get("timestamp")) or 0) >= since_ns]


def parse_since(text: str) -> datetime:
    """An ISO time for `logs --since` (a `Z` or an offset; naive means UTC)."""
    parsed = datetime.fromisoformat(text.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# The platform's own word that an instance's container ended: Cloud Run's exit and kill lines.
CONTAINER_ENDED = ("Container called exit(", "Container terminated on signal")


def ended_containers(entries: list[dict[str, Any]], since: datetime) -> int:
    """How many instances whose startup began at or after `since` the platform has seen end (its
    `Container called exit(N).` or `Container terminated on signal N.`): a crash loop's deaths, with the
    platform's last word on each already in the record."""
    since_ns = _line_time_ns(since.isoformat()) or 0
    began: dict[str, int] = {}
    ended: set[str] = set()
    for entry in entries:
        instance = (entry.get("labels") or {}).get("instanceId")
        text = str(entry.get("textPayload") or (entry.get("jsonPayload") or {}).get("message", ""))
        if not instance:
            continue
        if STARTUP_BEGAN in text:
            began.setdefault(instance, _line_time_ns(entry.get("timestamp")) or 0)
        elif any(phrase in text for phrase in CONTAINER_ENDED):
            ended.add(instance)
    return sum(1 for instance, at_ns in began.items() if at_ns >= since_ns and instance in ended)


def finished_startups(entries: list[dict[str, Any]], since: datetime) -> int:
    """How many startups in `entries` (one per instance) began at or after `since` and ended, ok or
    failed: what the startup gate will count, read from the file as the gate reads it."""
    since_ns = _line_time_ns(since.isoformat()) or 0
    began: dict[str, int] = {}
    ended: set[str] = set()
    for entry in entries:
        instance = (entry.get("labels") or {}).get("instanceId")
        payload = entry.get("jsonPayload")
        text = (
            str(payload.get("message", ""))
            if isinstance(payload, dict)
            else str(entry.get("textPayload", ""))
        )
        if not instance:
            continue
        if STARTUP_BEGAN in text:
            began[instance] = _line_time_ns(entry.get("timestamp")) or 0
        elif STARTUP_SUCCEEDED in text or any(phrase in text for phrase in STARTUP_FAILED):
            ended.add(instance)
    return sum(1 for instance, at_ns in began.items() if at_ns >= since_ns and instance in ended)
