"""The one configuration object of the suite, and the one table that declares every `E2E_*` setting.

Each setting is one row of `TABLE`: its variable, the field it sets, its default per profile
(`E2E_ENV`: local, staging, custom; one value where they agree), how its text is read and checked,
whether it is a secret, and a line of help. A row has no defaults (like the taxonomy's `Policy`: it
states all of it), and neither have the dataclasses below, so nothing can disagree with the table.
The table drives parsing (`Settings.from_env`), the block every run prints first
(`Settings.describe`: secrets only as set / not set), `python -m harness.settings --help` (which
`make help` prints) and the README's table (`python -m harness.settings --write README.md` rewrites
it between its markers; a test fails, naming that command, when it is stale).

What differs between profiles is a setting with a default per profile: nothing outside this module
asks which profile a run uses (`replica_plugin_wanted` answers the root conftest's one question).
Every number is validated (a rate lies in (0, 1], a count is at least 1), secrets are registered for
redaction on load, and a production guard refuses targets that are neither local nor staging (unless
`E2E_ALLOW_PRODUCTION=1`). Under xdist the controller's settings reach the workers as data
(`to_dict` / `from_dict` through `workerinput`), never by rewriting the environment.

Adding a setting: its field on the dataclass it belongs to and its row in `TABLE` (a test checks that
every field has exactly one row); then `python -m harness.settings --write README.md`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from contract.identity import DEFAULT_TEST_EMAIL
from harness import readme_tables, redact
from harness.readme_tables import ReadmeTable

Env = Literal["local", "staging", "custom"]
ENVS: tuple[Env, ...] = ("local", "staging", "custom")
# "run": every run prints it; "verify": verify-fix runs print it too; "nightly": the nightly job's own
# command reads it (python -m harness.nightly), no run prints it.
Group = Literal["run", "verify", "nightly"]

STAGING_BACKEND_URL = "https://api.staging.netrasystems.ai"
STAGING_AUTH_URL = "https://auth.staging.netrasystems.ai"
STAGING_WS_URL = "wss://api.staging.netrasystems.ai/ws"
# Where the backend's startup logs live (docs/startup-record.md): Cloud Run service, project, region.
STAGING_GCP_PROJECT = "netra-staging"
STAGING_BACKEND_SERVICE = "netra-backend-staging"
STAGING_GCP_REGION = "us-central1"

DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024

ROOT = Path(__file__).resolve().parent.parent  # a relative E2E_KNOWN_ISSUES is read from here

# The profile whose targets the local replica provides: the root conftest loads its plugin for it only.
REPLICA_PROFILE: Env = "local"

_HTTP_SCHEMES = ("http", "https")
_WS_SCHEMES = ("ws", "wss")


class SettingsError(ValueError):
    """The environment does not describe a runnable configuration (the message says what to fix)."""


# --------------------------------------------------------------------------------------------------
# How a value is read: one `Kind` per parser/validator; `read` raises SettingsError naming the variable
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """How a setting's text is read and checked (`read(name, text)`), and what a valid one looks like
    (`text`, for `--help` and the README). A URL's `schemes` are checked with the production guard
    whenever the settings are built, so that a target set later (the replica's) is checked too."""

    text: str
    read: Callable[[str, str], Any]
    schemes: tuple[str, ...] = ()


def _read_number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r} must be a finite number")
    return value


def positive(unit: str, *, zero: bool = False) -> Kind:
    """A finite quantity above zero (seconds, milliseconds, requests per second), or zero where `zero`
    says it means "none" (a retry budget, a jitter)."""
    bound = "zero or more" if zero else "more than zero"

    def read(name: str, raw: str) -> float:
        value = _read_number(name, raw)
        if value < 0 or (value == 0 and not zero):
            raise SettingsError(f"{name}={raw!r} must be a finite number {bound}")
        return value

    return Kind(f"{unit} {'>= 0' if zero else '> 0'}", read)


def _read_rate(name: str, raw: str) -> float:
    """A share in (0, 1]: `95` would be a threshold no run can ever meet."""
    value = _read_number(name, raw)
    if not 0 < value <= 1:
        raise SettingsError(f"{name}={raw!r} must be a rate in (0, 1], e.g. 0.9 for 90 %")
    return value


def _read_count(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be at least 1")
    return value


def _read_time(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an ISO 8601 time (e.g. 2026-11-27T10:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _read_flag(name: str, raw: str) -> bool:
    if raw in ("0", "1"):
        return raw == "1"
    raise SettingsError(f"{name}={raw!r} must be 1 (on) or 0/unset (off)")


def _read_text(name: str, raw: str) -> str:
    return raw


def _read_source(name: str, raw: str) -> str:
    if raw not in ("gcloud", "none") and not raw.startswith("file:"):
        raise SettingsError(f"{name}={raw!r} must be gcloud, file:PATH or none")
    return raw


def url(schemes: tuple[str, ...]) -> Kind:
    """A target URL, read without its trailing slash; its scheme and host are checked, with the
    production guard, by `Settings` (which knows `E2E_ALLOW_PRODUCTION`)."""
    return Kind(f"{' or '.join(schemes)} URL", lambda name, raw: raw.rstrip("/"), schemes)


def choice(values: Iterable[str]) -> Kind:
    """One of `values`, case-insensitively."""
    options = tuple(values)

    def read(name: str, raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise SettingsError(f"{name}={value!r} is not one of {', '.join(options)}")
        return value

    return Kind(f"one of {', '.join(options)}", read)


SECONDS = positive("seconds")
RATE = Kind("a rate in (0, 1], e.g. 0.9", _read_rate)
COUNT = Kind("a whole number >= 1", _read_count)
TIME = Kind("an ISO 8601 time, e.g. 2026-11-27T10:00:00Z (UTC without an offset)", _read_time)
FLAG = Kind("1 or 0", _read_flag)
TEXT = Kind("text", _read_text)
SOURCE = Kind("gcloud, file:PATH or none", _read_source)
FILE = Kind("a file path (a relative one: from the project's root)", _read_text)
ISSUE_ID = Kind("an issue id of the E2E_KNOWN_ISSUES catalogue", _read_text)


# --------------------------------------------------------------------------------------------------
# Defaults: one value, or one per profile; `Unset` and `REQUIRED` where there is no value
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unset:
    """No value by default; `meaning` says what that means (the run's settings block shows it in
    parentheses, `--help` and the README after a dash)."""

    meaning: str


@dataclass(frozen=True)
class Required:
    """No default: the profile cannot run without a value (custom's targets)."""


REQUIRED = Required()
NOT_SET = Unset("")


@dataclass(frozen=True)
class PerProfile:
    """A default that differs between profiles. No defaults: every profile is stated."""

    local: object
    staging: object
    custom: object

    def __getitem__(self, env: Env) -> object:
        return {"local": self.local, "staging": self.staging, "custom": self.custom}[env]


def remote(local: object, elsewhere: object) -> PerProfile:
    """A default for the local replica, and another for staging and custom (a real, shared target)."""
    return PerProfile(local=local, staging=elsewhere, custom=elsewhere)


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One `E2E_*` setting. No defaults: a row states all of it."""

    name: str  # the environment variable
    field: str  # the field it sets: "request_timeout_s", or "verify.wait_s" in a section
    default: object  # one value for every profile, or a PerProfile; Unset / REQUIRED: no value
    kind: Kind  # how its text is read and checked
    secret: bool  # never shown: the settings block says only whether it is set
    group: Group  # which runs print it
    help: str  # one line: what it means

    def default_for(self, env: Env) -> object:
        return self.default[env] if isinstance(self.default, PerProfile) else self.default

    def value(self, raw: str | None, env: Env) -> Any:
        """The setting's value from its text, else the profile's default (None where there is none)."""
        if raw is not None:
            return self.kind.read(self.name, raw)
        default = self.default_for(env)
        return None if isinstance(default, Unset | Required) else default

    def of(self, settings: Settings) -> Any:
        """The value this row set in `settings`."""
        section, _, name = self.field.rpartition(".")
        return getattr(getattr(settings, section) if section else settings, name)

    def shown(self, settings: Settings) -> str:
        """The value as the run's settings block prints it: a secret only as set / not set."""
        value = self.of(settings)
        if self.secret:
            return "set (redacted)" if value else "not set"
        if value is None:
            default = self.default_for(settings.env)
            meaning = default.meaning if isinstance(default, Unset) else ""
            return f"({meaning or 'not set'})"
        return show(value)


def show(value: object) -> str:
    """A value as a person would type it: 5 not 5.0, a flag as 1 / 0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_HTTP_URL = url(_HTTP_SCHEMES)
_WS_URL = url(_WS_SCHEMES)

# fmt: off
TABLE: tuple[Row, ...] = (
    # -- every run: the profile, its targets and credentials -----------------------------------------
    Row("E2E_ENV", "env", "local", choice(ENVS), secret=False, group="run",
        help="the profile, which chooses the targets and every default here: `local` starts the local "
             "replica (`REPLICA_SCENARIO`, `REPLICA_PROFILE`, `REPLICA_INSTANCES`) and stops it afterwards; "
             "`staging` targets the real staging; `custom` the three URLs below"),
    Row("E2E_BACKEND_URL", "backend_url",
        PerProfile(local=Unset("set when the replica starts"), staging=STAGING_BACKEND_URL, custom=REQUIRED),
        _HTTP_URL, secret=False, group="run",
        help="the backend's base URL (set, it overrides the staging profile's)"),
    Row("E2E_AUTH_URL", "auth_url",
        PerProfile(local=Unset("set when the replica starts"), staging=STAGING_AUTH_URL, custom=REQUIRED),
        _HTTP_URL, secret=False, group="run",
        help="the auth service's base URL (set, it overrides the staging profile's)"),
    Row("E2E_WS_URL", "ws_url",
        PerProfile(local=Unset("set when the replica starts"), staging=STAGING_WS_URL, custom=REQUIRED),
        _WS_URL, secret=False, group="run",
        help="the backend's chat WebSocket (set, it overrides the staging profile's)"),
    Row("E2E_OAUTH_SIMULATION_KEY", "oauth_simulation_key", NOT_SET, TEXT, secret=True, group="run",
        help="the bypass key sent as `X-E2E-Bypass-Key` (from the secret store); without it the "
             "authenticated steps skip and the run is `incomplete`; a local run makes one for its replica"),
    Row("E2E_JWT_SECRET", "jwt_secret", NOT_SET, TEXT, secret=True, group="run",
        help="lets the negative auth test mint a validly signed *expired* token (every real claim, only "
             "the expiry wrong); a local run makes one for its replica"),
    Row("E2E_TEST_EMAIL", "test_email", DEFAULT_TEST_EMAIL, TEXT, secret=False, group="run",
        help="the simulated user"),
    # -- every run: deadlines, retries, kindness to staging --------------------------------------------
    Row("E2E_REQUEST_TIMEOUT_S", "request_timeout_s", remote(5.0, 10.0), SECONDS, secret=False, group="run",
        help="hard deadline of one HTTP exchange, body included (locally a dead replica is diagnosed in "
             "seconds; a slow start takes ~3 s)"),
    Row("E2E_AGENT_TIMEOUT_S", "agent_timeout_s", remote(15.0, 90.0), SECONDS, secret=False, group="run",
        help="deadline for the AI answer"),
    Row("E2E_RETRY_BUDGET_S", "retry_budget_s", remote(5.0, 60.0), positive("seconds", zero=True),
        secret=False, group="run",
        help="total time one operation may spend retrying a transient infrastructure failure (0: no "
             "retry); a wait that would end past it is not started"),
    Row("E2E_RETRY_MAX_ATTEMPTS", "retry_max_attempts", remote(12, 6), COUNT, secret=False, group="run",
        help="attempts of one operation at most (locally the budget, not the count, bounds them)"),
    Row("E2E_RETRY_INITIAL_S", "retry_initial_s", remote(0.25, 1.0), SECONDS, secret=False, group="run",
        help="the first backoff wait; each next one doubles, up to `E2E_RETRY_MAX_WAIT_S`"),
    Row("E2E_RETRY_MAX_WAIT_S", "retry_max_wait_s", remote(1.0, 15.0), SECONDS, secret=False, group="run",
        help="the longest backoff wait"),
    Row("E2E_RETRY_JITTER_S", "retry_jitter_s", remote(0.25, 1.0), positive("seconds", zero=True),
        secret=False, group="run",
        help="random time added to each backoff wait, at most this (0: none)"),
    Row("E2E_RETRY_AFTER_CAP_S", "retry_after_cap_s", remote(3.0, 30.0), SECONDS, secret=False, group="run",
        help="a `Retry-After` header is honoured up to this (long enough to ride out a staging restart)"),
    Row("E2E_MAX_CONCURRENCY", "max_concurrency", 4, COUNT, secret=False, group="run",
        help="operations in flight at once across the run (one client per process; divided among xdist "
             "workers)"),
    Row("E2E_MAX_RPS", "max_rps", remote(100.0, 10.0), positive("requests per second"), secret=False,
        group="run",
        help="requests per second across the run (divided among xdist workers): kindness to a shared "
             "staging; the local replica is ours alone"),
    Row("E2E_BODY_LIMIT_BYTES", "body_limit_bytes", DEFAULT_BODY_LIMIT_BYTES, COUNT, secret=False,
        group="run",
        help="bytes read from one response (evidence keeps the first 4 KB)"),
    Row("E2E_ALLOW_PRODUCTION", "allow_production", False, FLAG, secret=False, group="run",
        help="1 allows a target host that is neither local nor staging (it may be production); such a "
             "host is refused otherwise"),
    Row("E2E_KNOWN_ISSUES", "known_issues", "fixtures/known_issues.json", FILE, secret=False, group="run",
        help="the known-issue catalogue (docs/known-issues.md), read by every process of the run, xdist "
             "workers included; one that does not load is a usage error"),
    Row("E2E_HISTORY", "history", Unset("no history: nothing said about streaks"), FILE, secret=False,
        group="run",
        help="the nights of this job and environment (a JSON file, harness.nightly): read at the run's "
             "end for the streak, this night appended after the verdict"),
    Row("E2E_JOB", "job", Unset("from the selection"), TEXT, secret=False, group="run",
        help="the job this run is a night of (e2e-staging, reproduce-1278, verify-fix): its history key "
             "with E2E_ENV"),
    Row("E2E_HISTORY_BRANCH", "history_branch", "e2e-history", TEXT, secret=False, group="nightly",
        help="the repository branch the nightly keeps its nights on (created on first use)"),
    Row("E2E_SLACK_WEBHOOK_URL", "slack_webhook_url", Unset("nobody told on Slack"), TEXT, secret=True,
        group="nightly",
        help="a Slack incoming webhook told when the nights' state changes (red, green again, a new "
             "cause), never on every night"),
    Row("E2E_REPRO_PROBE_INTERVAL_S", "repro_probe_interval_s", remote(0.5, 5.0), SECONDS, secret=False,
        group="run",
        help="pause between the reproduction's probes of the backend's /health (`make reproduce-1278`)"),
    # -- verify-fix: budgets and thresholds (the status update's success criteria) ---------------------
    Row("E2E_VERIFY_WAIT_S", "verify.wait_s", remote(60.0, 600.0), SECONDS, secret=False, group="verify",
        help="bound on the wait for the backend to answer healthy (and for the startups the gates need)"),
    Row("E2E_VERIFY_POLL_INTERVAL_S", "verify.poll_interval_s", remote(0.5, 5.0), SECONDS, secret=False,
        group="verify",
        help="pause between health polls while verify-fix waits"),
    Row("E2E_VERIFY_GOLDEN_RUNS", "verify.golden_runs", 3, COUNT, secret=False, group="verify",
        help="golden-path runs (each must pass)"),
    Row("E2E_VERIFY_PROBES", "verify.probes", 30, COUNT, secret=False, group="verify",
        help="health probes for the availability and latency gates, spread over `E2E_VERIFY_WINDOW_S`"),
    Row("E2E_VERIFY_WINDOW_S", "verify.window_s", remote(6.0, 30.0), SECONDS, secret=False, group="verify",
        help="the time the health probes are spread over"),
    Row("E2E_SLO_MIN_AVAILABILITY", "verify.min_availability", 0.90, RATE, secret=False, group="verify",
        help="`availability` gate: the share of probes answered healthy is at least this"),
    Row("E2E_SLO_MAX_P95_MS", "verify.max_p95_ms", remote(500.0, 2000.0), positive("milliseconds"),
        secret=False, group="verify",
        help="`health_p95` gate: the probes' p95 latency is under this"),
    Row("E2E_SLO_MAX_DB_PHASE_S", "verify.max_db_phase_s", 30.0, SECONDS, secret=False, group="verify",
        help="`db_phase_p95`, `db_phase_max` gates: the database phase (SMD phase 3, Cloud SQL connection "
             "establishment) is under this, consistently"),
    Row("E2E_SLO_MIN_STARTUP_SUCCESS", "verify.min_startup_success", 0.90, RATE, secret=False,
        group="verify",
        help="`startup_success_rate` gate: the rate is above this (\"startup success rate >90%\")"),
    Row("E2E_SLO_MIN_STARTUPS", "verify.min_startups", 10, COUNT, secret=False, group="verify",
        help="finished startups the startup gates need (\"consistently\": a rate or a p95 over fewer says "
             "too little; they are then unmeasured)"),
    Row("E2E_VERIFY_ISSUE", "verify.issue", "issue-1278", ISSUE_ID, secret=False, group="verify",
        help="the known issue whose fix verify-fix verifies (its name and signatures: the catalogue); an "
             "id the catalogue lacks is a usage error"),
    # -- the backend's startup record: verify-fix's startup gates, and a failed run's cause ------------
    Row("E2E_STARTUP_EVIDENCE", "startup.source",
        Unset("not chosen: the replica's record, else E2E_STARTUP_EVIDENCE_DEFAULT"), SOURCE,
        secret=False, group="verify",
        help="where the backend's startups are read: `gcloud` (`gcloud logging read`), `file:PATH` "
             "(entries as `gcloud logging read --format=json` prints them) or `none`"),
    Row("E2E_STARTUP_EVIDENCE_DEFAULT", "startup.default_source", remote("none", "gcloud"), SOURCE,
        secret=False, group="verify",
        help="the source read when `E2E_STARTUP_EVIDENCE` is unset and the target provides no record of "
             "its own (a local run's replica provides one)"),
    Row("E2E_GCP_PROJECT", "startup.project", STAGING_GCP_PROJECT, TEXT, secret=False, group="verify",
        help="the Google Cloud project of the backend's logs"),
    Row("E2E_GCP_BACKEND_SERVICE", "startup.service", STAGING_BACKEND_SERVICE, TEXT, secret=False,
        group="verify",
        help="the backend's Cloud Run service"),
    Row("E2E_GCP_REGION", "startup.region", STAGING_GCP_REGION, TEXT, secret=False, group="verify",
        help="the backend's Cloud Run region"),
    Row("E2E_STARTUP_SINCE", "startup.since", Unset("the last E2E_STARTUP_WINDOW_S"), TIME, secret=False,
        group="verify",
        help="start of the startup window: set it to the fix"),
    Row("E2E_STARTUP_WINDOW_S", "startup.window_s", 3600.0, SECONDS, secret=False, group="verify",
        help="the startup window when `E2E_STARTUP_SINCE` is unset: the last N seconds"),
    Row("E2E_GCLOUD_TIMEOUT_S", "startup.gcloud_timeout_s", 60.0, SECONDS, secret=False, group="verify",
        help="bound on one `gcloud logging read` for verify-fix"),
    Row("E2E_CAUSE_LOOKBACK_S", "startup.cause_lookback_s", 900.0, SECONDS, secret=False, group="verify",
        help="a failed run's cause: how far before the run its startups are read (a crash-looping backend "
             "restarts every few minutes)"),
    Row("E2E_CAUSE_TIMEOUT_S", "startup.cause_timeout_s", 45.0, SECONDS, secret=False, group="verify",
        help="a failed run's cause: the bound on that one read (above gcloud's own ~30 s of retries on a "
             "5xx from Cloud Logging, so that its answer, not the bound, is what a person reads)"),
)
# fmt: on

ROWS: Mapping[str, Row] = {row.name: row for row in TABLE}
_ENV_ROW = ROWS["E2E_ENV"]


# --------------------------------------------------------------------------------------------------
# The configuration object (every field set by one row: no defaults here)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartupEvidence:
    """Where the backend's startups (its logs) are read, and over which window: verify-fix's startup
    gates, and a failed run's cause.

    `source`: "gcloud" (Cloud Logging, through `gcloud logging read`), "file:PATH" (entries as `gcloud
    logging read --format=json` prints them), "none", or None: not chosen, so a target that provides
    its own record (the replica) sets it, else `default_source` is read."""

    source: str | None
    default_source: str
    project: str
    service: str
    region: str
    since: datetime | None  # start of the window; None: `window_s` before the gates run
    window_s: float
    gcloud_timeout_s: float
    # A failed run's cause: how far before the run its startups are read (a crash-looping backend
    # restarts every few minutes under Cloud Run's backoff), and the bound on that one read.
    cause_lookback_s: float
    cause_timeout_s: float

    @property
    def chosen_source(self) -> str:
        """The source read: the one chosen (or provided by the target), else the profile's default."""
        return self.source or self.default_source


@dataclass(frozen=True)
class VerifyFix:
    """Post-fix verification (`make verify-fix`): how long to wait, how much to measure, what passes.

    The thresholds are the status update's success criteria: database phase under 30 s, a startup
    success rate above 90 %, health 200, the golden path."""

    wait_s: float  # bound on waiting for the backend to answer healthy
    poll_interval_s: float
    golden_runs: int
    probes: int  # availability probes, spread over `window_s`
    window_s: float
    min_availability: float
    max_p95_ms: float
    max_db_phase_s: float  # SMD phase 3, and Cloud SQL connection establishment, "consistently"
    min_startup_success: float  # the rate must be above it ("startup success rate >90%")
    min_startups: int  # "consistently": a rate, or a p95, over fewer finished startups says too little
    issue: str  # the known issue whose fix is verified (its name and signature: the catalogue)


@dataclass(frozen=True)
class Settings:
    """Targets, credentials, deadlines and limits of one run (immutable: derive with `with_targets`).

    Build it from the table: `Settings.from_env(environ)`, or `Settings.defaults(profile)` in a test."""

    env: Env
    backend_url: str | None
    auth_url: str | None
    ws_url: str | None
    oauth_simulation_key: str | None = field(repr=False)
    # Optional: lets the negative-auth test mint a validly signed but expired token.
    jwt_secret: str | None = field(repr=False)
    test_email: str
    request_timeout_s: float
    agent_timeout_s: float
    retry_budget_s: float
    retry_max_attempts: int
    retry_initial_s: float
    retry_max_wait_s: float
    retry_jitter_s: float
    retry_after_cap_s: float
    max_concurrency: int
    max_rps: float
    body_limit_bytes: int
    allow_production: bool
    known_issues: str  # as given; `known_issues_path` is the file
    history: str | None
    job: str | None
    history_branch: str
    slack_webhook_url: str | None = field(repr=False)
    repro_probe_interval_s: float
    verify: VerifyFix
    startup: StartupEvidence

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise SettingsError(f"E2E_ENV={self.env!r} is not one of {', '.join(ENVS)}")
        for row in TABLE:
            value = row.of(self) if row.kind.schemes else None
            if value is not None:
                _check_url(row.name, value, row.kind.schemes, allow_production=self.allow_production)
        redact.register(self.oauth_simulation_key, self.jwt_secret)  # before anything can log them

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the `E2E_*` variables (empty values count as unset) and validate them, row by row."""
        env_vars = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env_vars.get(name)
            return value.strip() if value and value.strip() else None

        profile: Env = _ENV_ROW.value(get(_ENV_ROW.name), "local")
        missing = [
            row.name for row in TABLE if get(row.name) is None and row.default_for(profile) is REQUIRED
        ]
        if missing:
            raise SettingsError(
                f"E2E_ENV={profile} needs {', '.join(missing)} (the {profile} profile has no default for them)"
            )
        return cls._from_fields({row.field: row.value(get(row.name), profile) for row in TABLE})

    @classmethod
    def defaults(cls, env: Env = "local") -> Settings:
        """A profile's defaults, as a run with nothing set gets them (custom has no default targets:
        build it with `from_env` and its three URLs)."""
        return cls.from_env({"E2E_ENV": env})

    @classmethod
    def _from_fields(cls, values: Mapping[str, Any]) -> Settings:
        """The settings from `{field: value}`, "section.name" fields into their section."""
        sections: dict[str, dict[str, Any]] = {"": {}, "verify": {}, "startup": {}}
        for path, value in values.items():
            section, _, name = path.rpartition(".")
            sections[section][name] = value
        return cls(
            **sections[""],
            verify=VerifyFix(**sections["verify"]),
            startup=StartupEvidence(**sections["startup"]),
        )

    def with_targets(self, backend_url: str, auth_url: str, ws_url: str) -> Settings:
        """A copy pointing at concrete targets (a local replica's URLs, known once it runs)."""
        return dataclasses.replace(
            self,
            backend_url=backend_url.rstrip("/"),
            auth_url=auth_url.rstrip("/"),
            ws_url=ws_url.rstrip("/"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for xdist's `workerinput` (secrets included: it is a pipe, not a report)."""
        data = dataclasses.asdict(self)
        since = self.startup.since
        data["startup"]["since"] = since.isoformat() if since else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        values = dict(data)
        verify = VerifyFix(**values.pop("verify"))
        startup = dict(values.pop("startup"))
        since = startup.get("since")
        startup["since"] = datetime.fromisoformat(since) if since else None
        return cls(**values, verify=verify, startup=StartupEvidence(**startup))

    @property
    def has_targets(self) -> bool:
        return None not in (self.backend_url, self.auth_url, self.ws_url)

    @property
    def judges_the_replica(self) -> bool:
        """Its targets are the local replica's (the profile the replica provides), not staging: every
        verdict of the run says so."""
        return self.env == REPLICA_PROFILE

    @property
    def targets(self) -> dict[str, str | None]:
        """URLs by target name ("backend", "auth", "ws")."""
        return {"backend": self.backend_url, "auth": self.auth_url, "ws": self.ws_url}

    @property
    def known_issues_path(self) -> Path:
        """The known-issue catalogue's file: a relative `E2E_KNOWN_ISSUES` is read from the project's
        root, wherever pytest was started (the default names the project's own catalogue)."""
        path = Path(self.known_issues).expanduser()
        return path if path.is_absolute() else ROOT / path

    def describe(self, *, verify: bool = False) -> list[str]:
        """`name = value` lines for the run header, in the table's order; secrets are never shown,
        only whether they are set.

        `verify`: add the post-fix verification and startup-record settings (a verify-fix run)."""
        groups: tuple[Group, ...] = ("run", "verify") if verify else ("run",)
        return [redact.redact(f"{row.name} = {row.shown(self)}") for row in TABLE if row.group in groups]


def replica_plugin_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the root conftest loads the replica's plugin: for the profile whose targets the replica
    provides (local, the default) only; against staging no replica code is loaded. Cheap, and never
    raises: a bad `E2E_ENV` loads nothing here, and the harness's plugin then stops the run with the
    usage error and its verdict."""
    raw = (os.environ if environ is None else environ).get(_ENV_ROW.name) or ""
    return (raw.strip().lower() or str(_ENV_ROW.default)) == REPLICA_PROFILE


def is_safe_host(host: str) -> bool:
    """Local (localhost, 127.x, ::1) or a staging host: the only targets allowed by default.

    Judged by the host's labels, not by a substring: a label that is `staging` or has it as one of its
    hyphen-separated words (`api.staging.…`, `api-staging.…`, Cloud Run's `netra-backend-staging-….run.app`)
    is staging; `mystagingsite.com` (the word inside another word) or a top-level domain `.staging` is not."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    labels = host.split(".")
    if labels[-1] == "localhost":
        return True
    return any("staging" in label.split("-") for label in labels[:-1])


def _check_url(env_name: str, url: str, schemes: tuple[str, ...], *, allow_production: bool) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise SettingsError(f"{env_name}={url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in schemes or not host:
        raise SettingsError(f"{env_name}={url!r} must be an absolute {'/'.join(schemes)} URL")
    if not allow_production and not is_safe_host(host):
        raise SettingsError(
            f"{env_name}={url!r}: host {host!r} is neither local nor staging; refusing to test "
            "what may be production (set E2E_ALLOW_PRODUCTION=1 to allow it)"
        )


# --------------------------------------------------------------------------------------------------
# What people read of the table: `--help` (and `make help`), and the README's table
# --------------------------------------------------------------------------------------------------
_GROUP_TITLES: Mapping[Group, str] = {
    "run": "Every run (printed at its start):",
    "verify": "verify-fix, and the startup record a failed run's cause reads (a verify-fix run prints them too):",
    "nightly": "The nightly job's own command (python -m harness.nightly: the history's branch, who is told):",
}


def _default_text(default: object, code: Callable[[str], str]) -> str:
    if isinstance(default, Required):
        return "required"
    if isinstance(default, Unset):
        return f"— ({default.meaning})" if default.meaning else "—"
    return code(show(default))


def defaults_text(row: Row, *, code: Callable[[str], str] = str) -> str:
    """The row's default per profile, one value where they agree: `local: 5; staging, custom: 10`."""
    by_text: dict[str, list[str]] = {}
    for env in ENVS:
        by_text.setdefault(_default_text(row.default_for(env), code), []).append(env)
    if len(by_text) == 1:
        return next(iter(by_text))
    return "; ".join(f"{', '.join(envs)}: {text}" for text, envs in by_text.items())


def _value_text(row: Row) -> str:
    return f"{row.kind.text}; secret, never printed" if row.secret else row.kind.text


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, 104, initial_indent="      ", subsequent_indent="        ")


def help_text() -> str:
    """Every setting with its defaults per profile, what a value looks like, and what it means."""
    lines = [
        "The staging suite's settings: E2E_* environment variables, read once at the start of a run (an",
        "empty value counts as unset; a bad one is a usage error, exit 4, before anything starts).",
        "Defaults depend on the profile, E2E_ENV (local, staging, custom).",
    ]
    for group, title in _GROUP_TITLES.items():
        lines += ["", title]
        for row in (row for row in TABLE if row.group == group):
            lines.append(f"  {row.name}  [{_value_text(row)}]")
            lines += _wrapped(f"default: {defaults_text(row)}")
            lines += _wrapped(row.help.replace("`", ""))
    lines += [
        "",
        "The local replica's own knobs (replica/pytest_plugin.py): REPLICA_SCENARIO, REPLICA_PROFILE,",
        "REPLICA_INSTANCES, E2E_LOCAL_FIX_AFTER_S, E2E_KEEP_REPLICA.",
    ]
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's settings table, rendered from `TABLE`."""
    rows = ["| setting | default | value | meaning |", "|---|---|---|---|"]
    rows += [
        f"| `{row.name}` | {defaults_text(row, code=lambda text: f'`{text}`')} | {_value_text(row)} | {row.help} |"
        for row in TABLE
    ]
    return "\n".join(rows)


README_TABLE = ReadmeTable("settings", "harness.settings", markdown_table)


if __name__ == "__main__":
    readme_tables.run(
        README_TABLE,
        "Every E2E_* setting of the suite: its default per profile (local, staging, custom) and what it means.",
        help_text,
    )
