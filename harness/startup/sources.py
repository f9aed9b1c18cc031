"""Where the backend's startup evidence comes from: `E2E_STARTUP_EVIDENCE = gcloud | file:PATH | none`.

`load_entries` returns the LogEntry dicts (as `gcloud logging read --format=json` prints them) or one
line a person can act on saying why they could not be read (`unmeasured`). It never raises for an
environment problem, never hangs past its timeout, never passes or prints a credential. Parsing the
entries is `harness.startup.records`' job; `read_startups` does both for one window, once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.redact import redact_line
from harness.settings import Settings, StartupEvidence
from harness.startup.gcloud_errors import read_failure
from harness.startup.records import LOG_TEXT_REGEX, parse_entries
from harness.startup.tally import StartupTally, as_utc, tally

DEFAULT_LIMIT = 5000
"""Entries asked of `gcloud logging read`: the filter keeps ~11 lines of a successful startup and ~15 of
a failed one, so this covers a few hundred startups."""


# --------------------------------------------------------------------------------------------------
# Sources: E2E_STARTUP_EVIDENCE = gcloud | file:PATH | none
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EntriesResult:
    """Entries from a source, or the one-line reason they could not be read (`unmeasured`)."""

    source: str
    entries: tuple[object, ...] = ()
    unmeasured: str | None = None
    note: str | None = None
    """A caveat on measured entries (e.g. gcloud stopped at its limit)."""
    command: tuple[str, ...] = ()
    """The gcloud command line run (it never holds a credential)."""

    @property
    def measured(self) -> bool:
        return self.unmeasured is None


def _rfc3339(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gcloud_filter(*, since: datetime, until: datetime, service: str, region: str | None) -> str:
    """The Cloud Logging filter: the service's revisions, the window, and only the lines the parser reads.

    The text restriction is one RE2 regex (`=~`, case-sensitive, unanchored) on the two places text lives
    (`jsonPayload.message` for the app's JSON lines, `textPayload` for Cloud Run's and the web server's
    plain lines). The `:` operator would not do: it is case-insensitive, so `:"DATABASE"` (needed for the
    breakdown and partial-timing lines) would pull every line mentioning a database; severity would not
    either (the decisive lines are INFO and a success logs dozens of ERRORs)."""
    text = _quote(LOG_TEXT_REGEX)
    clauses = [
        'resource.type="cloud_run_revision"',
        f"resource.labels.service_name={_quote(service)}",
    ]
    if region:
        clauses.append(f"resource.labels.location={_quote(region)}")
    clauses += [
        f'timestamp>="{_rfc3339(since)}"',
        f'timestamp<="{_rfc3339(until)}"',
        f"(jsonPayload.message=~{text} OR textPayload=~{text})",
    ]
    return " AND ".join(clauses)


_PROJECT_ID = re.compile(r"^[a-z][a-z0-9:.-]{4,62}[a-z0-9]$")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        process.kill()


def _from_file(spec: str, path_text: str) -> EntriesResult:
    path = Path(path_text).expanduser()
    hint = "expected a JSON array (gcloud logging read --format=json) or JSON lines"
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return EntriesResult(spec, unmeasured=f"startup evidence file {path} does not exist ({hint})")
    except (OSError, UnicodeDecodeError) as exc:
        return EntriesResult(
            spec, unmeasured=f"startup evidence file {path} is unreadable: {redact_line(str(exc))}"
        )
    stripped = raw.strip()
    if not stripped:
        return EntriesResult(spec, unmeasured=f"startup evidence file {path} is empty ({hint})")
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            return EntriesResult(
                spec,
                unmeasured=f"startup evidence file {path} is not valid JSON ({exc.msg} at line {exc.lineno}; {hint})",
            )
        return EntriesResult(spec, entries=tuple(data))
    entries: list[object] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            return EntriesResult(
                spec, unmeasured=f"startup evidence file {path} line {number} is not JSON ({exc.msg}; {hint})"
            )
    return EntriesResult(spec, entries=tuple(entries))


def _from_gcloud(
    *,
    since: datetime,
    until: datetime,
    project: str,
    service: str,
    region: str | None,
    timeout_s: float,
    gcloud: str,
    limit: int,
) -> EntriesResult:
    source = "gcloud"
    if not _PROJECT_ID.match(project or ""):
        return EntriesResult(
            source,
            unmeasured=f"no valid Google Cloud project for gcloud ({redact_line(repr(project))}): set the staging project id (e.g. netra-staging)",
        )
    if not service:
        return EntriesResult(
            source,
            unmeasured="no Cloud Run service name for gcloud: set the backend's service (e.g. netra-backend-staging)",
        )
    executable = shutil.which(gcloud)
    if executable is None:
        where = f"{gcloud} is not an executable file" if os.sep in gcloud else f"{gcloud!r} is not on PATH"
        return EntriesResult(
            source,
            unmeasured=f"gcloud is not installed ({where}): install the Google Cloud CLI "
            "(https://cloud.google.com/sdk/docs/install), or export the logs with `gcloud logging read "
            "--format=json` elsewhere and set E2E_STARTUP_EVIDENCE=file:PATH",
        )
    command = (
        executable,
        "logging",
        "read",
        gcloud_filter(since=since, until=until, service=service, region=region),
        f"--project={project}",
        "--format=json",
        f"--limit={limit}",
    )
    env = {**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}  # a prompt would wait for ever
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills gcloud and its children
        )
    except OSError as exc:
        return EntriesResult(
            source,
            unmeasured=f"gcloud could not be started ({redact_line(str(exc))}): check {executable}",
            command=command,
        )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        # A grandchild in a session of its own could still hold the pipes: do not wait for it.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=1.0)
        return EntriesResult(
            source,
            unmeasured=f"gcloud logging read did not answer within {timeout_s:g}s and was killed: "
            f"check network access to logging.googleapis.com, or shorten the window",
            command=command,
        )
    if process.returncode != 0:
        failure = read_failure(stderr.decode("utf-8", "replace"), process.returncode, project)
        return EntriesResult(source, unmeasured=failure.line, command=command)
    out = stdout.decode("utf-8", "replace").strip()
    try:
        data = json.loads(out) if out else []
    except json.JSONDecodeError:
        return EntriesResult(
            source,
            unmeasured=f"gcloud logging read printed something that is not JSON: {redact_line(out, 80)!r}",
            command=command,
        )
    if not isinstance(data, list):
        return EntriesResult(
            source,
            unmeasured=f"gcloud logging read printed JSON that is not a list of entries ({type(data).__name__})",
            command=command,
        )
    note = None
    if len(data) >= limit:
        note = (
            f"the newest {limit} entries only (gcloud stopped at its limit): the window's oldest startups "
            "may be missing or lack their start line; read a shorter window"
        )
    return EntriesResult(source, entries=tuple(data), note=note, command=command)


def load_entries(
    spec: str,
    *,
    since: datetime,
    until: datetime,
    project: str,
    service: str,
    region: str | None,
    timeout_s: float,
    gcloud: str = "gcloud",
    limit: int = DEFAULT_LIMIT,
) -> EntriesResult:
    """The backend's log entries from `spec` (`gcloud`, `file:PATH` or `none`), or why not (one line).

    Never raises for an environment problem and never hangs past `timeout_s` (+1 s to reap a killed
    gcloud). The gcloud command carries no credential: gcloud uses its own configured account."""
    text = (spec or "").strip()
    if text.lower() in ("", "none"):
        return EntriesResult(
            "none",
            unmeasured=f"startup evidence disabled (E2E_STARTUP_EVIDENCE={text or 'none'}): set it to gcloud "
            f"(with credentials that can read Cloud Logging in {project}) or file:PATH",
        )
    if text.lower().startswith("file:"):
        path = text[len("file:") :].strip()
        if not path:
            return EntriesResult(text, unmeasured="E2E_STARTUP_EVIDENCE=file: names no file: use file:PATH")
        return _from_file(text, path)
    if text.lower() == "gcloud":
        return _from_gcloud(
            since=since,
            until=until,
            project=project,
            service=service,
            region=region,
            timeout_s=timeout_s,
            gcloud=gcloud,
            limit=limit,
        )
    return EntriesResult(
        text,
        unmeasured=f"unknown E2E_STARTUP_EVIDENCE={redact_line(text, 60)!r}: use gcloud, file:PATH or none",
    )


# --------------------------------------------------------------------------------------------------
# The startups of a window, read once
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartupWindow:
    """The backend's startups in [since, until], read once from its record, or why they could not be
    (`unmeasured`: one line a person can act on)."""

    source: str
    since: datetime
    until: datetime
    tally: StartupTally | None = None
    unmeasured: str | None = None
    note: str | None = None


def read_startups(
    settings: Settings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    timeout_s: float | None = None,
) -> StartupWindow:
    """The backend's startups over [since, until] from the record the settings name, read once.

    The window defaults to `E2E_STARTUP_SINCE` (else the last `E2E_STARTUP_WINDOW_S`) up to now; the
    source to `E2E_STARTUP_EVIDENCE` (else the replica's record, else `E2E_STARTUP_EVIDENCE_DEFAULT`);
    the bound to `E2E_GCLOUD_TIMEOUT_S`."""
    evidence = settings.startup
    until = until or datetime.now(UTC)
    since = since or evidence.since or until - timedelta(seconds=evidence.window_s)
    result = load_entries(
        evidence.chosen_source,
        since=since,
        until=until,
        project=evidence.project,
        service=evidence.service,
        region=evidence.region,
        timeout_s=evidence.gcloud_timeout_s if timeout_s is None else timeout_s,
    )
    if result.unmeasured is not None:
        return StartupWindow(result.source, since, until, unmeasured=result.unmeasured)
    counted = tally(
        parse_entries(result.entries, service=evidence.service),
        since=since,
        until=until,
        incomplete_read=result.note,
    )
    return StartupWindow(result.source, since, until, tally=counted, note=result.note)


def new_revision_command(evidence: StartupEvidence) -> str:
    """The command that makes Cloud Run start new instances of the backend: a new revision (setting a
    label creates one; nothing else changes)."""
    return (
        f"gcloud run services update {evidence.service} --project={evidence.project} "
        f"--region={evidence.region} --update-labels=e2e-restart=$(date +%s)"
    )
