"""Two runs in one checkout never mix: a run holds its reports directory for as long as it lives; a
second run there is refused at once, plainly, with no verdict of its own written over the first's."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.selftest.conftest import ROOT, run_suite, suite_command

pytestmark = [pytest.mark.selftest, pytest.mark.slow]


def _holding(reports: Path, pid: int, timeout_s: float = 60.0) -> bool:
    """Whether process `pid` holds `reports` (its lock file names it) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lock = reports / ".run.lock"
        if lock.exists() and f'"pid": {pid},' in lock.read_text():
            return True
        time.sleep(0.1)
    return False


def test_a_second_run_in_the_same_reports_directory_is_refused_and_the_first_keeps_its_verdict(
    tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    argv, env = suite_command(reports, "issue-1278")
    first = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert _holding(reports, first.pid), "the first run never took its reports directory"
        second = run_suite(reports, "healthy", expect_verdict=False, timeout_s=60)
        assert not (reports / "verdict.json").exists(), "the refused run wrote a verdict"
    finally:
        output, _ = first.communicate(timeout=240)
    assert (second.exit_code, "another run of the suite is using") == (
        4,
        "another run of the suite is using",
    ), second.output
    assert f"pid {first.pid}" in second.output and "a reports directory of its own" in second.output
    verdict = json.loads((reports / "verdict.json").read_text())
    assert (verdict["known_issue"], verdict["outcome"]) == ("issue-1278", "failed"), output[-3000:]
