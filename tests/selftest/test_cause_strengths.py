"""The cause at each of its three strengths, reached against the replica: its record read from its own
file, or through the real `gcloud logging read` against a local stand-in of Cloud Logging's API (the
`real_gcloud` fixture: a fresh gcloud configuration per run, never the machine's own).

Behind the same 503 page: #1278 itself (startups dying in the database phase: confirmed), a bad deploy
(dying in the services phase: ruled out, the product's), a load balancer failing while every instance
is healthy (ruled out, the infrastructure's), and no record at all (unconfirmed, saying how to confirm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.report.job_summary import render
from tests.selftest.conftest import RealGcloud, SuiteProcess, SuiteRunner

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _via(source: str, real_gcloud: RealGcloud | None, run: str) -> dict[str, str]:
    """`file`: the replica's own record (its plugin hands the suite the file); `gcloud`: the real gcloud
    reading it through a local stand-in of Cloud Logging's API (`real_gcloud`)."""
    if source != "gcloud":
        return {}
    assert real_gcloud is not None, "the gcloud source runs with the real gcloud (`real_gcloud_if`)"
    return real_gcloud.source(run)


@pytest.fixture(params=["file", "gcloud"])
def source(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def real_gcloud_if(request: pytest.FixtureRequest, source: str) -> RealGcloud | None:
    """The real gcloud's stand-in, only for the `gcloud` source (the file source runs without gcloud)."""
    if source != "gcloud":
        return None
    real_gcloud: RealGcloud = request.getfixturevalue("real_gcloud")
    return real_gcloud


def _cause(run: SuiteProcess) -> dict[str, Any]:
    cause = run.verdict.get("cause")
    assert cause is not None, run.explain()
    return dict(cause)


def _says_the_same(run: SuiteProcess) -> None:
    """The headline is the terminal's DIAGNOSIS line, and the job summary's first claim."""
    assert f"DIAGNOSIS {run.verdict['headline']}" in run.output
    assert run.verdict["headline"] in render(run.verdict)


def test_1278_is_confirmed_by_startups_dying_in_the_database_phase(
    suite: SuiteRunner, real_gcloud_if: RealGcloud | None, source: str
) -> None:
    run = suite("issue-1278", extra_env=_via(source, real_gcloud_if, "issue-1278"))
    cause = _cause(run)
    assert (cause["status"], cause["known_issue"], run.verdict["diagnosis"]) == (
        "confirmed",
        "issue-1278",
        "known_issue",
    ), run.explain()
    assert "died in phase database after 3.0 s, exit 3" in cause["evidence"], cause["evidence"]
    assert run.verdict["headline"].startswith(
        "KNOWN ISSUE issue-1278, confirmed by the startup record: the database phase ran out its time"
    )
    _says_the_same(run)


def test_a_bad_deploy_behind_the_503_page_rules_1278_out(
    suite: SuiteRunner, real_gcloud_if: RealGcloud | None, source: str
) -> None:
    run = suite("bad-deploy", extra_env=_via(source, real_gcloud_if, "bad-deploy"))
    cause = _cause(run)
    assert (cause["status"], run.verdict["diagnosis"], run.verdict["known_issue"]) == (
        "ruled_out",
        "product_defect",
        None,
    ), run.explain()
    assert "died in phase services" in cause["evidence"] and "ImportError" in cause["evidence"]
    assert run.verdict["headline"].startswith(
        "PRODUCT DEFECT (a startup phase raised an error: a bad deploy, not issue-1278)"
    )
    assert all(t["known_issue"] is None for t in run.verdict["tests"]), "a ruled-out label must not stay"
    _says_the_same(run)


def test_a_gateway_failing_before_healthy_instances_rules_1278_out(suite: SuiteRunner) -> None:
    run = suite("gateway-outage")
    cause = _cause(run)
    assert (cause["status"], run.verdict["diagnosis"]) == ("ruled_out", "infrastructure"), run.explain()
    assert "succeeded" in cause["evidence"] and "load balancer" in cause["evidence"]
    assert run.verdict["headline"].startswith("INFRASTRUCTURE (the load balancer / ingress, not issue-1278)")
    _says_the_same(run)


def test_without_a_record_1278_stays_unconfirmed_and_says_how_to_confirm(suite: SuiteRunner) -> None:
    run = suite("issue-1278", extra_env={"E2E_STARTUP_EVIDENCE": "none"})
    cause = _cause(run)
    assert (cause["status"], run.verdict["diagnosis"]) == ("unconfirmed", "known_issue"), run.explain()
    headline = run.verdict["headline"]
    assert headline.startswith(
        "KNOWN ISSUE issue-1278, unconfirmed: the failures match issue-1278's outside signature"
    )
    assert "Cloud SQL" not in headline and "roles/logging.viewer" in headline  # never the blame as fact
    _says_the_same(run)


def test_an_unauthenticated_gcloud_leaves_1278_unconfirmed_saying_so(
    suite: SuiteRunner, real_gcloud: RealGcloud
) -> None:
    """The real gcloud holding no credential (no account, no token file)."""
    env = real_gcloud.source("issue-1278-no-credential")
    del env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]
    cause = _cause(suite("issue-1278", extra_env=env))
    assert cause["status"] == "unconfirmed" and "not authenticated" in cause["evidence"], cause
    assert "You do not currently have an active account selected" in cause["evidence"], cause


def test_a_healthy_run_reads_no_record(suite: SuiteRunner, real_gcloud: RealGcloud) -> None:
    """Nothing failed, nothing to explain: the record is not read (the stand-in notes every request)."""
    before = len(real_gcloud.stand_in.list_requests())
    run = suite("healthy", extra_env=real_gcloud.source("healthy-reads-nothing"))
    after = len(real_gcloud.stand_in.list_requests())
    assert (run.exit_code, run.verdict["cause"], after - before) == (0, None, 0), run.explain()


def test_a_record_showing_startups_dying_ends_the_retries_at_once(suite: SuiteRunner) -> None:
    """With staging's 60 s retry budget, the first backend failure asks the record, which shows the
    startups dying: the try and its quick re-check, then the verdict (no budget spent)."""
    run = suite("issue-1278", extra_env={"E2E_RETRY_BUDGET_S": "60"})
    settled = [
        t for t in run.verdict["tests"] if "not retried: the startup record shows" in (t["message"] or "")
    ]
    assert [t["attempts"] for t in settled] == [2], run.explain()
    assert run.verdict["cause"]["status"] == "confirmed", run.explain()
