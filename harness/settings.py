"""The one configuration object of the suite, read from the environment once per run.

The old suite had 22 `Staging*Config` classes and four WebSocket URL variants; this module is the
only place that reads `E2E_*` variables. Every host is configurable, every number is validated
(a rate lies in (0, 1], a count is at least 1), the secrets are registered for redaction on load,
and a production guard refuses targets that are neither local nor staging (unless
`E2E_ALLOW_PRODUCTION=1`). Under xdist the controller's settings reach the workers as data
(`to_dict` / `from_dict` through `workerinput`), never by rewriting the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from contract.identity import DEFAULT_TEST_EMAIL
from harness import redact

Env = Literal["local", "staging", "custom"]
ENVS: tuple[Env, ...] = ("local", "staging", "custom")

STAGING_BACKEND_URL = "https://api.staging.netrasystems.ai"
STAGING_AUTH_URL = "https://auth.staging.netrasystems.ai"
STAGING_WS_URL = "wss://api.staging.netrasystems.ai/ws"
# Where the backend's startup logs live (docs/startup-record.md): Cloud Run service, project, region.
STAGING_GCP_PROJECT = "netra-staging"
STAGING_BACKEND_SERVICE = "netra-backend-staging"
STAGING_GCP_REGION = "us-central1"

DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024

# Per-profile defaults: (request timeout, agent timeout, retry budget), seconds.
_TIMING: dict[Env, tuple[float, float, float]] = {
    "local": (5.0, 15.0, 5.0),  # a dead replica is diagnosed in seconds; a slow start takes ~3 s
    "staging": (10.0, 90.0, 60.0),
    "custom": (10.0, 90.0, 60.0),
}
# Requests per second: a shared staging gets 10; the local replica is ours alone.
_MAX_RPS: dict[Env, float] = {"local": 100.0, "staging": 10.0, "custom": 10.0}

_Getter = Callable[[str], "str | None"]

_HTTP_SCHEMES = ("http", "https")
_WS_SCHEMES = ("ws", "wss")


@dataclass(frozen=True)
class StartupEvidence:
    """Where verify-fix reads the backend's startups (its logs), and over which window.

    `source`: "gcloud" (Cloud Logging, through `gcloud logging read`), "file:PATH" (entries as
    `gcloud logging read --format=json` prints them), or "none". None means "not chosen": staging and
    custom read gcloud; a local run uses what the replica provides.
    """

    source: str | None = None
    project: str = STAGING_GCP_PROJECT
    service: str = STAGING_BACKEND_SERVICE
    region: str = STAGING_GCP_REGION
    since: datetime | None = None  # start of the window; None: `window_s` before the gates run
    window_s: float = 3600.0
    gcloud_timeout_s: float = 60.0
    # A failed run's cause: how far before the run its startups are read (a crash-looping backend
    # restarts every few minutes under Cloud Run's backoff), and the bound on that one read.
    cause_lookback_s: float = 900.0
    cause_timeout_s: float = 20.0

    @classmethod
    def from_env(cls, get: _Getter) -> StartupEvidence:
        source = get("E2E_STARTUP_EVIDENCE")
        if source is not None and source not in ("gcloud", "none") and not source.startswith("file:"):
            raise SettingsError(f"E2E_STARTUP_EVIDENCE={source!r} must be gcloud, file:PATH or none")
        return cls(
            source=source,
            project=get("E2E_GCP_PROJECT") or STAGING_GCP_PROJECT,
            service=get("E2E_GCP_BACKEND_SERVICE") or STAGING_BACKEND_SERVICE,
            region=get("E2E_GCP_REGION") or STAGING_GCP_REGION,
            since=_timestamp(get, "E2E_STARTUP_SINCE"),
            window_s=_positive(get, "E2E_STARTUP_WINDOW_S", 3600.0),
            gcloud_timeout_s=_positive(get, "E2E_GCLOUD_TIMEOUT_S", 60.0),
            cause_lookback_s=_positive(get, "E2E_CAUSE_LOOKBACK_S", 900.0),
            cause_timeout_s=_positive(get, "E2E_CAUSE_TIMEOUT_S", 20.0),
        )

    def describe(self) -> list[str]:
        since = self.since.isoformat() if self.since else f"(the last {self.window_s:g}s)"
        return [
            f"E2E_STARTUP_EVIDENCE = {self.source or '(not chosen)'}",
            f"E2E_GCP_PROJECT = {self.project}",
            f"E2E_GCP_BACKEND_SERVICE = {self.service}",
            f"E2E_GCP_REGION = {self.region}",
            f"E2E_STARTUP_SINCE = {since}",
            f"E2E_STARTUP_WINDOW_S = {self.window_s:g}",
            f"E2E_GCLOUD_TIMEOUT_S = {self.gcloud_timeout_s:g}",
            f"E2E_CAUSE_LOOKBACK_S = {self.cause_lookback_s:g}",
            f"E2E_CAUSE_TIMEOUT_S = {self.cause_timeout_s:g}",
        ]


@dataclass(frozen=True)
class VerifyFix:
    """Post-fix verification (`make verify-fix`): how long to wait, how much to measure, what passes.

    The thresholds are the status update's success criteria: database phase under 30 s, a startup
    success rate above 90 %, health 200, the golden path.
    """

    wait_s: float = 600.0  # bound on waiting for the backend to answer healthy
    golden_runs: int = 3
    probes: int = 30  # availability probes, spread over `window_s`
    window_s: float = 30.0
    min_availability: float = 0.90
    max_p95_ms: float = 2000.0
    max_db_phase_s: float = 30.0  # SMD phase 3, and Cloud SQL connection establishment, "consistently"
    min_startup_success: float = 0.90  # the rate must be above it ("startup success rate >90%")
    min_startups: int = 10  # "consistently": a rate, or a p95, over fewer finished startups says too little
    issue: str = "issue-1278"  # the known issue whose fix is verified (its name and signature: the catalogue)

    @classmethod
    def from_env(cls, get: _Getter, env: Env) -> VerifyFix:
        local = env == "local"
        return cls(
            wait_s=_positive(get, "E2E_VERIFY_WAIT_S", 60.0 if local else 600.0),
            golden_runs=_positive_int(get, "E2E_VERIFY_GOLDEN_RUNS", 3),
            probes=_positive_int(get, "E2E_VERIFY_PROBES", 30),
            window_s=_positive(get, "E2E_VERIFY_WINDOW_S", 6.0 if local else 30.0),
            min_availability=_rate(get, "E2E_SLO_MIN_AVAILABILITY", 0.90),
            max_p95_ms=_positive(get, "E2E_SLO_MAX_P95_MS", 500.0 if local else 2000.0),
            max_db_phase_s=_positive(get, "E2E_SLO_MAX_DB_PHASE_S", 30.0),
            min_startup_success=_rate(get, "E2E_SLO_MIN_STARTUP_SUCCESS", 0.90),
            min_startups=_positive_int(get, "E2E_SLO_MIN_STARTUPS", 10),
            issue=get("E2E_VERIFY_ISSUE") or "issue-1278",
        )

    def describe(self) -> list[str]:
        return [
            f"E2E_VERIFY_WAIT_S = {self.wait_s:g}",
            f"E2E_VERIFY_GOLDEN_RUNS = {self.golden_runs}",
            f"E2E_VERIFY_PROBES = {self.probes}",
            f"E2E_VERIFY_WINDOW_S = {self.window_s:g}",
            f"E2E_SLO_MIN_AVAILABILITY = {self.min_availability:g}",
            f"E2E_SLO_MAX_P95_MS = {self.max_p95_ms:g}",
            f"E2E_SLO_MAX_DB_PHASE_S = {self.max_db_phase_s:g}",
            f"E2E_SLO_MIN_STARTUP_SUCCESS = {self.min_startup_success:g}",
            f"E2E_SLO_MIN_STARTUPS = {self.min_startups}",
            f"E2E_VERIFY_ISSUE = {self.issue}",
        ]


class SettingsError(ValueError):
    """The environment does not describe a runnable configuration (the message says what to fix)."""


@dataclass(frozen=True)
class Settings:
    """Targets, credentials, deadlines and limits of one run (immutable: derive with `with_targets`)."""

    env: Env = "local"
    backend_url: str | None = None
    auth_url: str | None = None
    ws_url: str | None = None
    oauth_simulation_key: str | None = field(default=None, repr=False)
    # Optional: lets the negative-auth test mint a validly signed but expired token.
    jwt_secret: str | None = field(default=None, repr=False)
    test_email: str = DEFAULT_TEST_EMAIL
    request_timeout_s: float = 5.0
    agent_timeout_s: float = 15.0
    retry_budget_s: float = 8.0
    max_concurrency: int = 4
    max_rps: float = 10.0
    allow_production: bool = False
    body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES
    verify: VerifyFix = field(default_factory=VerifyFix)
    startup: StartupEvidence = field(default_factory=StartupEvidence)
    # Night after night (harness.nightly): the history file this run reads and appends to (None: no
    # history, nothing said about streaks), the job it is a night of, the known-issue catalogue.
    history: str | None = None
    job: str | None = None
    known_issues: str | None = None

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise SettingsError(f"E2E_ENV={self.env!r} is not one of {', '.join(ENVS)}")
        for name, scheme_set in (
            ("backend_url", _HTTP_SCHEMES),
            ("auth_url", _HTTP_SCHEMES),
            ("ws_url", _WS_SCHEMES),
        ):
            url = getattr(self, name)
            if url is not None:
                _check_url(name, url, scheme_set, allow_production=self.allow_production)
        redact.register(self.oauth_simulation_key, self.jwt_secret)  # before anything can log them

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the `E2E_*` variables (empty values count as unset) and validate them."""
        env_vars = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env_vars.get(name)
            return value.strip() if value and value.strip() else None

        env = (get("E2E_ENV") or "local").lower()
        if env not in ENVS:
            raise SettingsError(f"E2E_ENV={env!r} is not one of {', '.join(ENVS)}")
        profile: Env = env  # narrowed by the membership test above

        urls = {name: get(name) for name in ("E2E_BACKEND_URL", "E2E_AUTH_URL", "E2E_WS_URL")}
        if profile == "custom":
            missing = [name for name, value in urls.items() if value is None]
            if missing:
                raise SettingsError(
                    f"E2E_ENV=custom needs {', '.join(missing)} (all three URLs are required)"
                )
        elif profile == "staging":
            urls = {
                "E2E_BACKEND_URL": urls["E2E_BACKEND_URL"] or STAGING_BACKEND_URL,
                "E2E_AUTH_URL": urls["E2E_AUTH_URL"] or STAGING_AUTH_URL,
                "E2E_WS_URL": urls["E2E_WS_URL"] or STAGING_WS_URL,
            }

        request_s, agent_s, budget_s = _TIMING[profile]
        return cls(
            env=profile,
            backend_url=_strip_slash(urls["E2E_BACKEND_URL"]),
            auth_url=_strip_slash(urls["E2E_AUTH_URL"]),
            ws_url=_strip_slash(urls["E2E_WS_URL"]),
            oauth_simulation_key=get("E2E_OAUTH_SIMULATION_KEY"),
            jwt_secret=get("E2E_JWT_SECRET"),
            test_email=get("E2E_TEST_EMAIL") or DEFAULT_TEST_EMAIL,
            request_timeout_s=_positive(get, "E2E_REQUEST_TIMEOUT_S", request_s),
            agent_timeout_s=_positive(get, "E2E_AGENT_TIMEOUT_S", agent_s),
            retry_budget_s=_positive(get, "E2E_RETRY_BUDGET_S", budget_s, allow_zero=True),
            max_concurrency=_positive_int(get, "E2E_MAX_CONCURRENCY", 4),
            max_rps=_positive(get, "E2E_MAX_RPS", _MAX_RPS[profile]),
            allow_production=_flag(get, "E2E_ALLOW_PRODUCTION"),
            body_limit_bytes=_positive_int(get, "E2E_BODY_LIMIT_BYTES", DEFAULT_BODY_LIMIT_BYTES),
            verify=VerifyFix.from_env(get, profile),
            startup=StartupEvidence.from_env(get),
            history=get("E2E_HISTORY"),
            job=get("E2E_JOB"),
            known_issues=get("E2E_KNOWN_ISSUES"),
        )

    def with_targets(self, backend_url: str, auth_url: str, ws_url: str) -> Settings:
        """A copy pointing at concrete targets (a local replica's URLs, known once it runs)."""
        return dataclasses.replace(
            self,
            backend_url=_strip_slash(backend_url),
            auth_url=_strip_slash(auth_url),
            ws_url=_strip_slash(ws_url),
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
    def targets(self) -> dict[str, str | None]:
        """URLs by target name ("backend", "auth", "ws")."""
        return {"backend": self.backend_url, "auth": self.auth_url, "ws": self.ws_url}

    def describe(self, *, verify: bool = False) -> list[str]:
        """`name = value` lines for the run header; secrets are never shown, only whether they are set.

        `verify`: add the post-fix verification settings (a verify-fix run)."""
        pending = "(set when the replica starts)" if self.env == "local" else "(not set)"
        lines = [
            f"E2E_ENV = {self.env}",
            f"E2E_BACKEND_URL = {self.backend_url or pending}",
            f"E2E_AUTH_URL = {self.auth_url or pending}",
            f"E2E_WS_URL = {self.ws_url or pending}",
            "E2E_OAUTH_SIMULATION_KEY = " + ("set (redacted)" if self.oauth_simulation_key else "not set"),
            "E2E_JWT_SECRET = " + ("set (redacted)" if self.jwt_secret else "not set"),
            f"E2E_TEST_EMAIL = {self.test_email}",
            f"E2E_REQUEST_TIMEOUT_S = {self.request_timeout_s:g}",
            f"E2E_AGENT_TIMEOUT_S = {self.agent_timeout_s:g}",
            f"E2E_RETRY_BUDGET_S = {self.retry_budget_s:g}",
            f"E2E_MAX_CONCURRENCY = {self.max_concurrency}",
            f"E2E_MAX_RPS = {self.max_rps:g}",
            f"E2E_BODY_LIMIT_BYTES = {self.body_limit_bytes}",
            f"E2E_ALLOW_PRODUCTION = {'1' if self.allow_production else '0'}",
            f"E2E_HISTORY = {self.history or '(none: no streak)'}",
            f"E2E_JOB = {self.job or '(from the selection)'}",
            f"E2E_KNOWN_ISSUES = {self.known_issues or '(fixtures/known_issues.json)'}",
        ]
        if verify:
            lines += self.verify.describe() + self.startup.describe()
        return [redact.redact(line) for line in lines]


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


def _check_url(name: str, url: str, schemes: tuple[str, ...], *, allow_production: bool) -> None:
    env_name = "E2E_" + name.upper()
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


def _strip_slash(url: str | None) -> str | None:
    return url.rstrip("/") if url else url


def _number(get: _Getter, name: str) -> float | None:
    raw = get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r} must be a finite number")
    return value


def _positive(get: _Getter, name: str, default: float, *, allow_zero: bool = False) -> float:
    """A finite quantity above zero (seconds, milliseconds, requests per second), or zero where
    `allow_zero` says it means "none" (a retry budget)."""
    value = _number(get, name)
    if value is None:
        return default
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise SettingsError(f"{name}={get(name)!r} must be a finite number {bound}")
    return value


def _rate(get: _Getter, name: str, default: float) -> float:
    """A share in (0, 1]: `95` would be a threshold no run can ever meet."""
    value = _number(get, name)
    if value is None:
        return default
    if not 0 < value <= 1:
        raise SettingsError(f"{name}={get(name)!r} must be a rate in (0, 1], e.g. 0.9 for 90 %")
    return value


def _positive_int(get: _Getter, name: str, default: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be at least 1")
    return value


def _timestamp(get: _Getter, name: str) -> datetime | None:
    raw = get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an ISO 8601 time (e.g. 2026-11-27T10:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _flag(get: _Getter, name: str) -> bool:
    raw = get(name)
    if raw in (None, "0"):
        return False
    if raw == "1":
        return True
    raise SettingsError(f"{name}={raw!r} must be 1 (allow) or 0/unset (refuse)")
