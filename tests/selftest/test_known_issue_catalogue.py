"""`E2E_KNOWN_ISSUES`: a scratch catalogue is the one every process of the run reads, xdist workers
(which label the failures) included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import known_issues
from harness.report.job_summary import render
from tests.selftest.conftest import SuiteRunner

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

SCRATCH = "scratch-gateway-503"


def test_a_scratch_catalogue_labels_failures_in_every_worker(
    fresh_suite: SuiteRunner, tmp_path: Path
) -> None:
    """A scratch issue ahead of #1278 with #1278's outside signature: only a process that reads the
    scratch catalogue labels the replica's 503 pages with it."""
    data = json.loads(known_issues.DEFAULT_PATH.read_text(encoding="utf-8"))
    gateway = next(s for s in data["issues"][0]["signatures"] if s["name"] == "gateway-503-on-backend-health")
    scratch = {
        "id": SCRATCH,
        "name": "Scratch issue",
        "title": "A scratch catalogue's issue: the gateway's 503 page on the backend's health",
        "link": "https://example.invalid/scratch",
        "blame": "infrastructure",
        "owner": "the scratch test",
        "review_by": "2099-12-31",
        "headline": "the scratch catalogue's headline",
        "signatures": [gateway | {"name": "scratch-gateway"}],
    }
    path = tmp_path / "scratch-known-issues.json"
    path.write_text(json.dumps({"issues": [scratch, *data["issues"]]}), encoding="utf-8")
    run = fresh_suite(
        "issue-1278", extra_env={"E2E_KNOWN_ISSUES": str(path)}, extra_args=["-n", "2", "--dist", "loadgroup"]
    )
    labelled = {t["known_issue"] for t in run.verdict["tests"] if t["status"] == "broken"}
    assert (labelled, run.verdict["known_issue"]) == ({SCRATCH}, SCRATCH), run.explain()


def test_a_second_issues_fix_is_verified_in_its_own_name_without_a_reporting_change(
    fresh_suite: SuiteRunner, tmp_path: Path
) -> None:
    """A scratch catalogue holding issue-2001 beside #1278, and `E2E_VERIFY_ISSUE=issue-2001`: verify-fix
    names the issue it verifies from the catalogue wherever a person reads it (the box's last line, the
    job summary's gates, Allure's epic), and nothing says #1278. The record is left unread: the run is
    INCONCLUSIVE, which is what a fix verified without its startup gates must be."""
    data = json.loads(known_issues.DEFAULT_PATH.read_text(encoding="utf-8"))
    second = data["issues"][0] | {
        "id": "issue-2001",
        "name": "Issue #2001",
        "title": "A second known issue, whose fix a verify-fix run verifies",
        "link": "https://example.invalid/2001",
        "tracker": None,
    }
    path = tmp_path / "two-issues.json"
    path.write_text(json.dumps({"issues": [*data["issues"], second]}), encoding="utf-8")
    quick = {"E2E_VERIFY_GOLDEN_RUNS": "1", "E2E_VERIFY_PROBES": "5", "E2E_VERIFY_WINDOW_S": "1"}
    settings = {
        "E2E_KNOWN_ISSUES": str(path),
        "E2E_VERIFY_ISSUE": "issue-2001",
        "E2E_STARTUP_EVIDENCE": "none",
    }
    run = fresh_suite("healthy", "verify_fix", extra_env=settings | quick)
    slo = run.verdict["slo"]
    assert (slo["issue"], slo["issue_name"], slo["verdict"]) == (
        "issue-2001",
        "Issue #2001",
        "INCONCLUSIVE",
    ), run.explain()
    summary = render(run.verdict)
    assert "Issue #2001: INCONCLUSIVE" in run.output and "### Issue #2001: INCONCLUSIVE" in summary
    assert "1278" not in run.verdict["headline"] + summary
    epics = [
        label["value"]
        for result in (run.reports / "allure-results").glob("*-result.json")
        for label in json.loads(result.read_text())["labels"]
        if label["name"] == "epic"
    ]
    assert epics and set(epics) == {"Issue #2001"}, epics
