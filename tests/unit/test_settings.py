"""Settings: profiles, overrides, validation and the production guard (no I/O)."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from contract.identity import DEFAULT_TEST_EMAIL
from harness.redact import redact
from harness.settings import (
    ENVS,
    README_TABLE,
    REQUIRED,
    STAGING_AUTH_URL,
    STAGING_BACKEND_URL,
    STAGING_WS_URL,
    TABLE,
    PerProfile,
    Row,
    Settings,
    SettingsError,
    StartupEvidence,
    Unset,
    VerifyFix,
    defaults_text,
    help_text,
    markdown_table,
    replica_plugin_wanted,
    show,
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
    """Every setting of a run, in the table's order (a new row is printed without touching this test);
    the ones a run printed before the table, in the same order."""
    lines = Settings.from_env({"E2E_ENV": "staging"}).describe()
    names = [line.split(" = ", 1)[0] for line in lines]
    assert names == [row.name for row in TABLE if row.group == "run"]
    before = [
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
    ]
    assert [name for name in names if name in before] == before


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


# -- today's effective defaults, frozen ---------------------------------------------------------------
# Written down from the code before the settings became one table (issue 19, item 2): what
# `Settings.from_env` yielded for each profile with nothing set (custom: its three URLs only), and
# what the rest of the harness decided by `env == "local"` (the retry policy's shape in
# harness/retry.py, the startup record's default source in harness/startup/sources.py, the
# reproduction's probe interval and verify-fix's health poll interval in tests/e2e_staging). A default
# may change only deliberately: by changing this table in the same commit.
_TODAY_COMMON: dict[str, object] = {
    "oauth_simulation_key": None,
    "jwt_secret": None,
    "test_email": "e2e-test@staging.netrasystems.ai",
    "max_concurrency": 4,
    "allow_production": False,
    "body_limit_bytes": 1048576,
    "verify.golden_runs": 3,
    "verify.probes": 30,
    "verify.min_availability": 0.9,
    "verify.max_db_phase_s": 30.0,
    "verify.min_startup_success": 0.9,
    "verify.min_startups": 10,
    "verify.issue": "issue-1278",
    "startup.source": None,  # not chosen: the replica's record (local), else the default source below
    "startup.project": "netra-staging",
    "startup.service": "netra-backend-staging",
    "startup.region": "us-central1",
    "startup.since": None,
    "startup.window_s": 3600.0,
    "startup.gcloud_timeout_s": 60.0,
    "startup.cause_lookback_s": 900.0,
    "startup.cause_timeout_s": 45.0,  # 20 until gcloud's ~30 s of retries on a 5xx were measured
}
_TODAY_REMOTE: dict[str, object] = {  # staging and custom agree on everything but the targets
    "request_timeout_s": 10.0,
    "agent_timeout_s": 90.0,
    "retry_budget_s": 60.0,
    "max_rps": 10.0,
    "verify.wait_s": 600.0,
    "verify.window_s": 30.0,
    "verify.max_p95_ms": 2000.0,
}
TODAY: dict[str, dict[str, object]] = {
    "local": _TODAY_COMMON
    | {
        "env": "local",
        "backend_url": None,
        "auth_url": None,
        "ws_url": None,
        "request_timeout_s": 5.0,
        "agent_timeout_s": 15.0,
        "retry_budget_s": 5.0,
        "max_rps": 100.0,
        "verify.wait_s": 60.0,
        "verify.window_s": 6.0,
        "verify.max_p95_ms": 500.0,
    },
    "staging": _TODAY_COMMON
    | _TODAY_REMOTE
    | {
        "env": "staging",
        "backend_url": "https://api.staging.netrasystems.ai",
        "auth_url": "https://auth.staging.netrasystems.ai",
        "ws_url": "wss://api.staging.netrasystems.ai/ws",
    },
    "custom": _TODAY_COMMON
    | _TODAY_REMOTE
    | {
        "env": "custom",
        "backend_url": CUSTOM["E2E_BACKEND_URL"],
        "auth_url": CUSTOM["E2E_AUTH_URL"],
        "ws_url": CUSTOM["E2E_WS_URL"],
    },
}
# Decided outside harness/settings.py until then, by `env == "local"`; settings since (their fields).
TODAY_ELSEWHERE: dict[str, dict[str, object]] = {
    "local": {
        "retry_max_attempts": 12,  # harness/retry.py RetryPolicy.from_settings
        "retry_initial_s": 0.25,
        "retry_max_wait_s": 1.0,
        "retry_jitter_s": 0.25,
        "retry_after_cap_s": 3.0,
        "startup.default_source": "none",  # harness/startup/sources.py read_startups, when not chosen
        "repro_probe_interval_s": 0.5,  # tests/e2e_staging/test_issue_1278.py
        "verify.poll_interval_s": 0.5,  # tests/e2e_staging/test_verify_fix.py
    },
    "staging": {
        "retry_max_attempts": 6,
        "retry_initial_s": 1.0,
        "retry_max_wait_s": 15.0,
        "retry_jitter_s": 1.0,
        "retry_after_cap_s": 30.0,
        "startup.default_source": "gcloud",
        "repro_probe_interval_s": 5.0,
        "verify.poll_interval_s": 5.0,
    },
}
TODAY_ELSEWHERE["custom"] = TODAY_ELSEWHERE["staging"]


def _flat(data: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _profile_env(profile: str) -> dict[str, str]:
    return (CUSTOM if profile == "custom" else {}) | {"E2E_ENV": profile}


@pytest.mark.parametrize("profile", ["local", "staging", "custom"])
def test_the_defaults_are_todays_effective_values(profile: str) -> None:
    parsed = _flat(Settings.from_env(_profile_env(profile)).to_dict())
    frozen = TODAY[profile] | TODAY_ELSEWHERE[profile]
    assert {name: parsed.get(name, "(missing)") for name in frozen} == frozen


@pytest.mark.parametrize("profile", ["local", "staging", "custom"])
def test_the_retry_policy_keeps_todays_shape(profile: str) -> None:
    from harness.retry import RetryPolicy

    policy = RetryPolicy.from_settings(Settings.from_env(_profile_env(profile)))
    shape = {f"retry_{k}": v for k, v in dataclasses.asdict(policy).items() if k != "budget_s"}
    shape["retry_after_cap_s"] = shape.pop("retry_retry_after_cap_s")
    assert shape == {k: v for k, v in TODAY_ELSEWHERE[profile].items() if k.startswith("retry_")}


@pytest.mark.parametrize("profile", ["local", "staging", "custom"])
def test_an_unchosen_startup_source_reads_todays_default(profile: str) -> None:
    """The replica sets `source` to its own record; without one, a local run reads none, others gcloud."""
    startup = Settings.from_env(_profile_env(profile)).startup
    assert (startup.source, startup.chosen_source) == (
        None,
        TODAY_ELSEWHERE[profile]["startup.default_source"],
    )


# -- the table: one row per setting, and nothing else to disagree with it --------------------------------
def _fields(cls: type, prefix: str = "") -> list[str]:
    return [f"{prefix}{f.name}" for f in dataclasses.fields(cls) if f.name not in ("verify", "startup")]


def test_every_field_is_set_by_exactly_one_row() -> None:
    fields = _fields(Settings) + _fields(VerifyFix, "verify.") + _fields(StartupEvidence, "startup.")
    assert sorted(row.field for row in TABLE) == sorted(fields)
    assert len({row.name for row in TABLE}) == len(TABLE) and all(r.name.startswith("E2E_") for r in TABLE)


@pytest.mark.parametrize("cls", [Settings, VerifyFix, StartupEvidence, Row, PerProfile])
def test_nothing_beside_the_table_holds_a_default(cls: type) -> None:
    """No dataclass default could disagree with the table; a row states all of it."""
    assert all(
        f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        for f in dataclasses.fields(cls)
    )


@pytest.mark.parametrize("row", TABLE, ids=[row.name for row in TABLE])
def test_every_default_is_a_value_its_own_parser_accepts(row: Row) -> None:
    for env in ENVS:
        default = row.default_for(env)
        if default is REQUIRED or isinstance(default, Unset):
            continue
        assert row.kind.read(row.name, show(default)) == default, env


def test_defaults_builds_a_profile_from_the_table() -> None:
    assert Settings.defaults("staging") == Settings.from_env({"E2E_ENV": "staging"})
    assert Settings.defaults() == Settings.from_env({})


def test_a_per_profile_setting_can_be_overridden() -> None:
    settings = Settings.from_env({"E2E_RETRY_MAX_ATTEMPTS": "3", "E2E_VERIFY_POLL_INTERVAL_S": "0.1"})
    assert (settings.retry_max_attempts, settings.verify.poll_interval_s) == (3, 0.1)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("E2E_RETRY_MAX_ATTEMPTS", "0"),
        ("E2E_RETRY_INITIAL_S", "0"),
        ("E2E_RETRY_JITTER_S", "-0.1"),
        ("E2E_RETRY_AFTER_CAP_S", "soon"),
        ("E2E_REPRO_PROBE_INTERVAL_S", "0"),
        ("E2E_VERIFY_POLL_INTERVAL_S", "inf"),
        ("E2E_STARTUP_EVIDENCE_DEFAULT", "cloudwatch"),
    ],
)
def test_bad_values_of_the_new_settings_are_refused_with_their_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_a_local_run_says_its_targets_come_from_the_replica() -> None:
    lines = Settings.from_env({}).describe(verify=True)
    assert "E2E_BACKEND_URL = (set when the replica starts)" in lines
    assert "E2E_STARTUP_SINCE = (the last E2E_STARTUP_WINDOW_S)" in lines


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, True),
        ({"E2E_ENV": " Local "}, True),
        ({"E2E_ENV": "  "}, True),  # empty counts as unset, as for every setting
        ({"E2E_ENV": "staging"}, False),
        ({"E2E_ENV": "custom"}, False),
        ({"E2E_ENV": "prod"}, False),  # the harness's plugin says it is a usage error
        ({"E2E_MAX_RPS": "fast"}, True),  # other settings are not read here
    ],
)
def test_the_replica_plugin_is_wanted_for_the_local_profile_only(
    environ: dict[str, str], wanted: bool
) -> None:
    assert replica_plugin_wanted(environ) is wanted


def test_help_lists_every_setting_with_its_defaults_per_profile() -> None:
    text = " ".join(help_text().split())
    for row in TABLE:
        assert f" {row.name} " in text and " ".join(defaults_text(row).split()) in text, row.name
    assert "E2E_REQUEST_TIMEOUT_S [seconds > 0] default: local: 5; staging, custom: 10" in text


def test_the_command_line_prints_help_and_refuses_unknown_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    description = "the settings"
    with pytest.raises(SystemExit) as helped:
        README_TABLE.main(["--help"], description, help_text)
    with pytest.raises(SystemExit) as refused:
        README_TABLE.main(["--frobnicate"], description, help_text)
    out, err = capsys.readouterr()
    assert (helped.value.code, refused.value.code) == (0, 2)
    assert "E2E_VERIFY_ISSUE" in out and "unrecognized arguments: --frobnicate" in err


ROOT = Path(__file__).resolve().parents[2]
# A profile decided by name (`settings.env == "local"`): only harness/settings.py may do it.
_PROFILE_TEST = re.compile(r"""\benv\s*[!=]=\s*["'](local|staging|custom)["']""")


def test_no_module_of_the_suite_asks_which_profile_it_runs() -> None:
    files = [
        ROOT / "conftest.py",
        *(ROOT / "harness").rglob("*.py"),
        *(ROOT / "tests" / "e2e_staging").rglob("*.py"),
    ]
    asking = [
        str(path.relative_to(ROOT))
        for path in files
        if path != ROOT / "harness" / "settings.py" and _PROFILE_TEST.search(path.read_text(encoding="utf-8"))
    ]
    assert asking == [], "a per-profile choice belongs in harness/settings.py's TABLE, as a setting"


def test_the_readme_table_is_generated_from_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert README_TABLE.applied(readme) == readme, (
        "the README's settings table is stale: python -m harness.settings --write README.md"
    )
    assert markdown_table() in readme
