"""Settings: profiles, overrides, validation and the production guard (no I/O)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from contract.identity import DEFAULT_TEST_EMAIL
from harness.redact import redact
from harness.settings import (
    STAGING_AUTH_URL,
    STAGING_BACKEND_URL,
    STAGING_WS_URL,
    Settings,
    SettingsError,
)

pytestmark = pytest.mark.unit

CUSTOM = {
    "E2E_ENV": "custom",
    "E2E_BACKEND_URL": "http://127.0.0.1:8000",
    "E2E_AUTH_URL": "http://127.0.0.1:8081",
    "E2E_WS_URL": "ws://127.0.0.1:8000/ws",
}


def test_default_profile_is_local_without_targets() -> None:
    settings = Settings.from_env({})
    assert (settings.env, settings.has_targets, settings.request_timeout_s) == ("local", False, 5.0)


def test_local_defaults() -> None:
    settings = Settings.from_env({})
    assert (
        settings.agent_timeout_s,
        settings.retry_budget_s,
        settings.max_concurrency,
        settings.max_rps,
        settings.body_limit_bytes,
        settings.test_email,
    ) == (15.0, 5.0, 4, 100.0, 1024 * 1024, DEFAULT_TEST_EMAIL)  # the replica is ours alone: 100 rps


def test_staging_is_paced_at_ten_requests_a_second() -> None:
    assert (Settings.from_env({"E2E_ENV": "staging"}).max_rps, Settings.from_env(CUSTOM).max_rps) == (
        10.0,
        10.0,
    )


def test_staging_profile_urls_and_timeouts() -> None:
    settings = Settings.from_env({"E2E_ENV": "staging"})
    assert (
        settings.backend_url,
        settings.auth_url,
        settings.ws_url,
        settings.request_timeout_s,
        settings.agent_timeout_s,
        settings.retry_budget_s,
    ) == (STAGING_BACKEND_URL, STAGING_AUTH_URL, STAGING_WS_URL, 10.0, 90.0, 60.0)


def test_staging_url_override_replaces_only_that_url() -> None:
    settings = Settings.from_env(
        {"E2E_ENV": "staging", "E2E_BACKEND_URL": "https://api-staging.netrasystems.ai/"}
    )
    assert (settings.backend_url, settings.auth_url) == (
        "https://api-staging.netrasystems.ai",
        STAGING_AUTH_URL,
    )


def test_numeric_overrides() -> None:
    settings = Settings.from_env(
        {
            "E2E_ENV": "staging",
            "E2E_REQUEST_TIMEOUT_S": "2.5",
            "E2E_AGENT_TIMEOUT_S": "30",
            "E2E_RETRY_BUDGET_S": "0",
            "E2E_MAX_CONCURRENCY": "2",
            "E2E_MAX_RPS": "0.5",
            "E2E_BODY_LIMIT_BYTES": "2048",
        }
    )
    assert (
        settings.request_timeout_s,
        settings.agent_timeout_s,
        settings.retry_budget_s,
        settings.max_concurrency,
        settings.max_rps,
        settings.body_limit_bytes,
    ) == (2.5, 30.0, 0.0, 2, 0.5, 2048)


def test_custom_uses_the_given_urls() -> None:
    settings = Settings.from_env(CUSTOM)
    assert settings.targets == {
        "backend": "http://127.0.0.1:8000",
        "auth": "http://127.0.0.1:8081",
        "ws": "ws://127.0.0.1:8000/ws",
    }


def test_custom_without_urls_names_the_missing_variables() -> None:
    with pytest.raises(SettingsError, match="E2E_AUTH_URL, E2E_WS_URL"):
        Settings.from_env({"E2E_ENV": "custom", "E2E_BACKEND_URL": "http://localhost:8000"})


def test_unknown_env_is_refused() -> None:
    with pytest.raises(SettingsError, match="E2E_ENV='prod'"):
        Settings.from_env({"E2E_ENV": "prod"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("E2E_REQUEST_TIMEOUT_S", "ten"),
        ("E2E_REQUEST_TIMEOUT_S", "0"),
        ("E2E_AGENT_TIMEOUT_S", "-1"),
        ("E2E_RETRY_BUDGET_S", "nan"),
        ("E2E_MAX_CONCURRENCY", "1.5"),
        ("E2E_MAX_CONCURRENCY", "0"),
        ("E2E_MAX_RPS", "inf"),
        ("E2E_BODY_LIMIT_BYTES", "1MiB"),
        ("E2E_ALLOW_PRODUCTION", "true"),
        ("E2E_SLO_MIN_AVAILABILITY", "95"),  # a rate, not a percentage: 95 could never pass
        ("E2E_SLO_MIN_AVAILABILITY", "0"),
        ("E2E_SLO_MIN_STARTUP_SUCCESS", "1.5"),
        ("E2E_SLO_MIN_STARTUPS", "0"),
        ("E2E_VERIFY_GOLDEN_RUNS", "0"),
        ("E2E_STARTUP_EVIDENCE", "cloudwatch"),
        ("E2E_STARTUP_SINCE", "yesterday"),
    ],
)
def test_bad_values_are_refused_with_their_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_url_with_wrong_scheme_is_refused() -> None:
    with pytest.raises(SettingsError, match="E2E_WS_URL"):
        Settings.from_env(CUSTOM | {"E2E_WS_URL": "https://127.0.0.1:8000/ws"})


def test_production_host_is_refused() -> None:
    with pytest.raises(SettingsError, match="E2E_ALLOW_PRODUCTION=1"):
        Settings.from_env({"E2E_ENV": "staging", "E2E_BACKEND_URL": "https://api.netrasystems.ai"})


def test_production_host_is_allowed_with_the_flag() -> None:
    settings = Settings.from_env(
        {"E2E_ENV": "staging", "E2E_BACKEND_URL": "https://api.netrasystems.ai", "E2E_ALLOW_PRODUCTION": "1"}
    )
    assert settings.backend_url == "https://api.netrasystems.ai"


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "app.localhost",
        "127.0.0.2",
        "[::1]",
        "auth-staging.netrasystems.ai",
        "api.staging.netrasystems.ai",
        "netra-backend-staging-701982941522.us-central1.run.app",
    ],
)
def test_local_and_staging_hosts_pass_the_guard(host: str) -> None:
    settings = Settings.from_env(CUSTOM | {"E2E_AUTH_URL": f"http://{host}:8081"})
    assert settings.auth_url == f"http://{host}:8081"


@pytest.mark.parametrize(
    "host", ["mystagingsite.com", "api.netrasystems.ai", "stagingapi.netrasystems.ai", "example.staging"]
)
def test_a_host_is_staging_by_its_labels_not_by_a_substring(host: str) -> None:
    with pytest.raises(SettingsError, match="neither local nor staging"):
        Settings.from_env(CUSTOM | {"E2E_AUTH_URL": f"https://{host}"})


def test_with_targets_applies_the_guard() -> None:
    with pytest.raises(SettingsError, match=r"E2E_WS_URL=.*neither local nor staging"):
        Settings.from_env({}).with_targets(
            "http://127.0.0.1:1", "http://127.0.0.1:2", "wss://api.netrasystems.ai/ws"
        )


def test_with_targets_fills_local_urls() -> None:
    settings = Settings.from_env({}).with_targets(
        "http://127.0.0.1:1/", "http://127.0.0.1:2", "ws://127.0.0.1:1/ws"
    )
    assert (settings.has_targets, settings.backend_url) == (True, "http://127.0.0.1:1")


def test_key_is_registered_for_redaction_on_load() -> None:
    Settings.from_env({"E2E_OAUTH_SIMULATION_KEY": "sim-key-registered-0001"})
    assert "sim-key-registered-0001" not in redact("header X-E2E-Bypass-Key: sim-key-registered-0001")


def test_describe_never_shows_the_key() -> None:
    settings = Settings.from_env({"E2E_ENV": "staging", "E2E_OAUTH_SIMULATION_KEY": "sim-key-described-0002"})
    text = "\n".join(settings.describe()) + repr(settings)
    assert "sim-key-described-0002" not in text and "E2E_OAUTH_SIMULATION_KEY = set (redacted)" in text


def test_describe_says_when_the_key_is_missing() -> None:
    assert "E2E_OAUTH_SIMULATION_KEY = not set" in Settings.from_env({}).describe()


def test_describe_lists_every_setting_as_name_value() -> None:
    lines = Settings.from_env({"E2E_ENV": "staging"}).describe()
    names = [line.split(" = ", 1)[0] for line in lines]
    assert names == [
        "E2E_ENV",
        "E2E_BACKEND_URL",
        "E2E_AUTH_URL",
        "E2E_WS_URL",
        "E2E_OAUTH_SIMULATION_KEY",
        "E2E_JWT_SECRET",
        "E2E_TEST_EMAIL",
        "E2E_REQUEST_TIMEOUT_S",
        "E2E_AGENT_TIMEOUT_S",
        "E2E_RETRY_BUDGET_S",
        "E2E_MAX_CONCURRENCY",
        "E2E_MAX_RPS",
        "E2E_BODY_LIMIT_BYTES",
        "E2E_ALLOW_PRODUCTION",
        "E2E_HISTORY",
        "E2E_JOB",
        "E2E_KNOWN_ISSUES",
    ]


def test_a_verify_fix_run_also_prints_its_gates_and_startup_evidence_settings() -> None:
    names = [
        line.split(" = ", 1)[0] for line in Settings.from_env({"E2E_ENV": "staging"}).describe(verify=True)
    ]
    assert {
        "E2E_SLO_MIN_STARTUP_SUCCESS",
        "E2E_SLO_MAX_DB_PHASE_S",
        "E2E_STARTUP_EVIDENCE",
        "E2E_GCP_PROJECT",
    } <= set(names)


def test_startup_evidence_defaults_to_the_staging_backend_service() -> None:
    startup = Settings.from_env({"E2E_ENV": "staging"}).startup
    assert (startup.source, startup.project, startup.service, startup.region) == (
        None,
        "netra-staging",
        "netra-backend-staging",
        "us-central1",
    )


def test_startup_since_is_read_as_utc() -> None:
    since = Settings.from_env({"E2E_STARTUP_SINCE": "2026-11-27T10:00:00Z"}).startup.since
    assert since is not None and (since.isoformat(), since.utcoffset()) == (
        "2026-11-27T10:00:00+00:00",
        timedelta(0),
    )


def test_settings_travel_to_workers_as_plain_data() -> None:
    settings = Settings.from_env(
        CUSTOM
        | {"E2E_OAUTH_SIMULATION_KEY": "sim-key-travels-0004", "E2E_STARTUP_SINCE": "2026-11-27T10:00:00Z"}
    )
    data = settings.to_dict()
    assert json.loads(json.dumps(data)) == data and Settings.from_dict(data) == settings


def test_describe_never_shows_the_jwt_secret() -> None:
    settings = Settings.from_env({"E2E_JWT_SECRET": "jwt-secret-described-0003"})
    text = "\n".join(settings.describe()) + repr(settings)
    assert "jwt-secret-described-0003" not in text and "E2E_JWT_SECRET = set (redacted)" in text
