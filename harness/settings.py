"""The one configuration object of the suite, read from the environment once per run.

The old suite had 22 `Staging*Config` classes and four WebSocket URL variants; this module is the
only place that reads `E2E_*` variables. Every host is configurable, every number is validated, the
bypass key is registered for redaction on load, and a production guard refuses targets that are
neither local nor staging (unless `E2E_ALLOW_PRODUCTION=1`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from contract.identity import DEFAULT_TEST_EMAIL
from harness import redact

Env = Literal["local", "staging", "custom"]
ENVS: tuple[Env, ...] = ("local", "staging", "custom")

STAGING_BACKEND_URL = "https://api.staging.netrasystems.ai"
STAGING_AUTH_URL = "https://auth.staging.netrasystems.ai"
STAGING_WS_URL = "wss://api.staging.netrasystems.ai/ws"

DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024

# Per-profile defaults: (request timeout, agent timeout, retry budget), seconds.
_TIMING: dict[Env, tuple[float, float, float]] = {
    "local": (5.0, 15.0, 5.0),  # a dead replica is diagnosed in seconds; a slow start takes ~3 s
    "staging": (10.0, 90.0, 60.0),
    "custom": (10.0, 90.0, 60.0),
}

_Getter = Callable[[str], "str | None"]

_HTTP_SCHEMES = ("http", "https")
_WS_SCHEMES = ("ws", "wss")


@dataclass(frozen=True)
class VerifyFix:
    """Post-fix verification (`make verify-fix`): how long to wait, how much to measure, what passes."""

    wait_s: float = 600.0  # bound on waiting for the backend to answer healthy
    golden_runs: int = 3
    probes: int = 30  # availability probes, spread over `window_s`
    window_s: float = 30.0
    min_availability: float = 0.90
    max_p95_ms: float = 2000.0
    max_db_phase_s: float = 30.0  # the success criterion for SMD phase 3
    local_fix_after_s: float | None = None  # local story only: the replica's fault is cleared after this

    @classmethod
    def from_env(cls, get: _Getter, env: Env) -> VerifyFix:
        local = env == "local"
        fix_after = get("E2E_LOCAL_FIX_AFTER_S")
        return cls(
            wait_s=_seconds(get, "E2E_VERIFY_WAIT_S", 60.0 if local else 600.0),
            golden_runs=_positive_int(get, "E2E_VERIFY_GOLDEN_RUNS", 3),
            probes=_positive_int(get, "E2E_VERIFY_PROBES", 30),
            window_s=_seconds(get, "E2E_VERIFY_WINDOW_S", 6.0 if local else 30.0),
            min_availability=_seconds(get, "E2E_SLO_MIN_AVAILABILITY", 0.90),
            max_p95_ms=_seconds(get, "E2E_SLO_MAX_P95_MS", 500.0 if local else 2000.0),
            max_db_phase_s=_seconds(get, "E2E_SLO_MAX_DB_PHASE_S", 30.0),
            local_fix_after_s=None
            if fix_after in (None, "never")
            else _seconds(get, "E2E_LOCAL_FIX_AFTER_S", 0.0),
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
    # Optional: lets the negative-auth test mint a validly signed but expired token (local replica).
    jwt_secret: str | None = field(default=None, repr=False)
    test_email: str = DEFAULT_TEST_EMAIL
    request_timeout_s: float = 5.0
    agent_timeout_s: float = 15.0
    retry_budget_s: float = 8.0
    max_concurrency: int = 4
    max_rps: float = 10.0
    allow_production: bool = False
    replica_scenario: str = "healthy"
    body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES
    verify: VerifyFix = field(default_factory=VerifyFix)

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
        profile: Env = env  # type: ignore[assignment]

        urls = {
            "E2E_BACKEND_URL": get("E2E_BACKEND_URL"),
            "E2E_AUTH_URL": get("E2E_AUTH_URL"),
            "E2E_WS_URL": get("E2E_WS_URL"),
        }
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

        key = get("E2E_OAUTH_SIMULATION_KEY")
        jwt_secret = get("E2E_JWT_SECRET")
        redact.register(key, jwt_secret)  # before anything can log them

        request_s, agent_s, budget_s = _TIMING[profile]
        return cls(
            env=profile,
            backend_url=_strip_slash(urls["E2E_BACKEND_URL"]),
            auth_url=_strip_slash(urls["E2E_AUTH_URL"]),
            ws_url=_strip_slash(urls["E2E_WS_URL"]),
            oauth_simulation_key=key,
            jwt_secret=jwt_secret,
            test_email=get("E2E_TEST_EMAIL") or DEFAULT_TEST_EMAIL,
            request_timeout_s=_seconds(get, "E2E_REQUEST_TIMEOUT_S", request_s),
            agent_timeout_s=_seconds(get, "E2E_AGENT_TIMEOUT_S", agent_s),
            retry_budget_s=_seconds(get, "E2E_RETRY_BUDGET_S", budget_s, allow_zero=True),
            max_concurrency=_positive_int(get, "E2E_MAX_CONCURRENCY", 4),
            max_rps=_seconds(get, "E2E_MAX_RPS", 10.0),
            allow_production=_flag(get, "E2E_ALLOW_PRODUCTION"),
            replica_scenario=get("REPLICA_SCENARIO") or "healthy",
            body_limit_bytes=_positive_int(get, "E2E_BODY_LIMIT_BYTES", DEFAULT_BODY_LIMIT_BYTES),
            verify=VerifyFix.from_env(get, profile),
        )

    def with_targets(self, backend_url: str, auth_url: str, ws_url: str) -> Settings:
        """A copy pointing at concrete targets (the local replica's URLs, known once it runs)."""
        return dataclasses.replace(
            self,
            backend_url=_strip_slash(backend_url),
            auth_url=_strip_slash(auth_url),
            ws_url=_strip_slash(ws_url),
        )

    @property
    def has_targets(self) -> bool:
        return None not in (self.backend_url, self.auth_url, self.ws_url)

    @property
    def targets(self) -> dict[str, str | None]:
        """URLs by target name ("backend", "auth", "ws"), the names known issues use."""
        return {"backend": self.backend_url, "auth": self.auth_url, "ws": self.ws_url}

    def describe(self) -> list[str]:
        """`name = value` lines for the run header; the key is never shown, only whether it is set."""
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
        ]
        if self.env == "local":
            lines.append(f"REPLICA_SCENARIO = {self.replica_scenario}")
        return [redact.redact(line) for line in lines]


def is_safe_host(host: str) -> bool:
    """Local (localhost, 127.x, ::1) or a staging host: the only targets allowed by default."""
    host = host.lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost") or "staging" in host:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def _seconds(get: _Getter, name: str, default: float, *, allow_zero: bool = False) -> float:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise SettingsError(f"{name}={raw!r} must be a finite number {bound}")
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


def _flag(get: _Getter, name: str) -> bool:
    raw = get(name)
    if raw in (None, "0"):
        return False
    if raw == "1":
        return True
    raise SettingsError(f"{name}={raw!r} must be 1 (allow) or 0/unset (refuse)")
