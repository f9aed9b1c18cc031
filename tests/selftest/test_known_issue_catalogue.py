"""`E2E_KNOWN_ISSUES`: a scratch catalogue is the one every process of the run reads, xdist workers
(which label the failures) included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import known_issues
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
