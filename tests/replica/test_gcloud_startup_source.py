"""The suite's own gcloud call (E2E_STARTUP_EVIDENCE=gcloud), through the real gcloud, against the
local stand-in of Cloud Logging: what the suite reads, and the one line it says when it cannot.

The harness is imported in one place (below): when its modules move, only that import changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.startup.sources import EntriesResult, gcloud_filter, load_entries
from replica.cloud_logging import LOCATION, PROJECT_ID, SERVICE_NAME
from replica.cloud_logging_api import suite_record
from tests.replica.test_cloud_logging_api import (
    GCLOUD,
    SINCE,
    UNTIL,
    Start,
    many_record,
    startup_record,
    suite_filter,
)

pytestmark = [
    pytest.mark.replica,
    pytest.mark.skipif(
        GCLOUD is None,
        reason="gcloud (the Google Cloud CLI) is not on PATH: these tests run the real gcloud against a "
        "local stand-in of Cloud Logging (install google-cloud-cli to run them)",
    ),
]


def read(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], timeout_s: float = 60, limit: int = 5000
) -> EntriesResult:
    """`load_entries("gcloud", ...)` as the suite calls it, in exactly `env` (gcloud inherits os.environ)."""
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_entries(
        "gcloud",
        since=SINCE,
        until=UNTIL,
        project=PROJECT_ID,
        service=SERVICE_NAME,
        region=LOCATION,
        timeout_s=timeout_s,
        limit=limit,
    )


def test_the_suites_filter_is_the_one_these_tests_serve() -> None:
    """test_cloud_logging_api.py keeps its own copy of the filter: it must be the suite's."""
    assert gcloud_filter(since=SINCE, until=UNTIL, service=SERVICE_NAME, region=LOCATION) == suite_filter()


def test_the_suite_reads_the_replicas_startups_through_the_real_gcloud(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = startup_record(tmp_path / "cloud-logging.json")
    stand_in, env = cloud_logging_api(record.path)
    result = read(monkeypatch, env)
    assert result.measured and result.note is None, result
    assert list(result.entries) == record.expected()
    assert [r.body["filter"] for r in stand_in.requests] == [suite_filter()]
    token = stand_in.token_file.read_text().strip()
    assert all(token not in part for part in result.command)


def test_at_its_limit_the_suite_says_the_oldest_startups_may_be_missing(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = many_record(tmp_path / "cloud-logging.json", 130)
    _, env = cloud_logging_api(record.path)
    result = read(monkeypatch, env, limit=70)
    assert list(result.entries) == record.expected()[:70]
    assert result.note is not None and result.note.startswith("the newest 70 entries only (gcloud stopped")


def test_a_refused_credential_reads_as_not_authenticated(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    stand_in.fail(401)
    result = read(monkeypatch, env)
    assert result.unmeasured is not None and result.entries == ()
    assert result.unmeasured.startswith(
        f"gcloud is not authenticated for {PROJECT_ID} (gcloud said: Request had invalid authentication"
    )
    assert "run `gcloud auth login`" in result.unmeasured
    assert stand_in.token_file.read_text().strip() not in result.unmeasured


def test_a_403_names_the_identity_and_the_missing_role(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Authenticated, but without roles/logging.viewer: not "run gcloud auth login" (it is logged in)."""
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    stand_in.fail(403)
    result = read(monkeypatch, env)
    assert result.unmeasured is not None and "auth login" not in result.unmeasured
    assert result.unmeasured.startswith(
        f"gcloud is authenticated, but an access token from {stand_in.token_file} may not read Cloud Logging "
        f"in {PROJECT_ID} (Permission 'logging.logEntries.list' denied on resource"
    )
    assert f"grant it roles/logging.viewer on {PROJECT_ID}" in result.unmeasured
    assert stand_in.token_file.read_text().strip() not in result.unmeasured


def test_no_account_reads_as_not_authenticated(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    del env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]
    result = read(monkeypatch, env)
    assert result.unmeasured is not None
    assert "not authenticated" in result.unmeasured
    assert "You do not currently have an active account selected." in result.unmeasured


def test_429_says_quota_and_try_later(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    stand_in.fail(429)
    result = read(monkeypatch, env)
    assert result.unmeasured == (
        f"Cloud Logging's read quota for {PROJECT_ID} is spent (429 RESOURCE_EXHAUSTED: Quota exceeded for "
        "quota metric 'Read requests' and limit 'Read requests per minute' of service 'logging.googleapis.com' "
        "for consumer 'project_number:000000000000'.): try later (the quota is per minute), or read a "
        "shorter window"
    )


def test_an_error_after_the_first_page_is_not_read_as_a_short_record(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gcloud printed a valid array of the first page before failing: the suite must not use it."""
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 130).path)
    stand_in.fail(403, after=1)
    result = read(monkeypatch, env)
    assert result.entries == () and result.unmeasured is not None
    assert "roles/logging.viewer" in result.unmeasured


def test_a_lasting_503_outlasts_a_bound_shorter_than_gclouds_retries(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gcloud needs ~30 s to give up on a lasting 503 (test_cloud_logging_api.py); under a shorter bound
    the suite kills it, never seeing the 503 (so E2E_CAUSE_TIMEOUT_S is 45 s by default)."""
    stand_in, env = cloud_logging_api(many_record(tmp_path / "c.json", 3).path)
    stand_in.fail(503)
    began = time.monotonic()
    result = read(monkeypatch, env, timeout_s=5)
    assert time.monotonic() - began < 5 + 3
    assert result.unmeasured is not None
    assert result.unmeasured.startswith("gcloud logging read did not answer within 5s and was killed")
    # It was retrying when killed (its first retry comes ~2 s after the first request, ~0.7 s in).
    assert [r.status for r in stand_in.requests][:2] == [503, 503]


def test_a_passing_503_costs_the_suite_two_seconds_not_its_record(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = many_record(tmp_path / "c.json", 3)
    stand_in, env = cloud_logging_api(record.path)
    stand_in.fail(503, times=1)
    result = read(monkeypatch, env, timeout_s=20)
    assert result.measured and list(result.entries) == record.expected()
    assert [r.status for r in stand_in.requests] == [503, 200]


def timestamp(entry: object) -> str:
    """An entry as gcloud prints it (a JSON object): its `timestamp`."""
    assert isinstance(entry, dict), entry
    stamp: str = entry["timestamp"]
    return stamp


def test_the_window_is_the_suites(
    cloud_logging_api: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Startups a microsecond outside [since, until] are not the suite's to judge."""
    record = startup_record(tmp_path / "cloud-logging.json")
    _, env = cloud_logging_api(record.path)
    times = {timestamp(e) for e in read(monkeypatch, env).entries}
    assert min(times) == SINCE.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert max(times) == UNTIL.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the whole suite --------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.selftest
def test_the_suite_confirms_1278_from_the_replicas_record_read_by_the_real_gcloud(
    cloud_logging_api: Start, tmp_path: Path
) -> None:
    """`E2E_STARTUP_EVIDENCE=gcloud` on a local run: the real gcloud, child of the suite, reads the
    record of the replica the suite started (`suite_record`), and the cause is confirmed from it."""
    stand_in, env = cloud_logging_api(suite_record(ROOT))
    env = {k: v for k, v in env.items() if not k.startswith(("E2E_", "REPLICA_", "PYTEST_"))}
    env |= {"E2E_ENV": "local", "REPLICA_SCENARIO": "issue-1278", "E2E_STARTUP_EVIDENCE": "gcloud"}
    verdict_path = tmp_path / "reports" / "verdict.json"
    argv = [sys.executable, "-m", "pytest", "tests/e2e_staging", "-p", "no:cacheprovider"]
    argv += ["--verdict", str(verdict_path), "--alluredir", str(tmp_path / "reports" / "allure-results")]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    output = done.stdout + done.stderr
    assert verdict_path.exists(), output[-4000:]
    cause = json.loads(verdict_path.read_text())["cause"]
    assert (cause["status"], cause["known_issue"]) == ("confirmed", "issue-1278"), output[-4000:]
    assert "died in phase database" in cause["evidence"] and "exit 3" in cause["evidence"]
    (request,) = stand_in.list_requests()
    assert request.status == 200 and request.body["resourceNames"] == [f"projects/{PROJECT_ID}"]
    token = stand_in.token_file.read_text().strip()
    reports = [p.read_text(errors="replace") for p in (tmp_path / "reports").rglob("*") if p.is_file()]
    assert all(token not in text for text in [output, *reports])
