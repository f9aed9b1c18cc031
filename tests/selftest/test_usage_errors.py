"""Usage errors are not verdicts: a typo in MARKERS, a bad setting or a marker argument the suite does
not know stops the run first, plainly (outcome `error`, exit 4, no diagnosis, no HEALTHY anywhere),
before the replica starts; and `pytest tests` collects."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.selftest.conftest import SuiteProcess, SuiteRunner

pytestmark = [pytest.mark.selftest]

ROOT = Path(__file__).resolve().parents[2]


def _assert_plain_usage_error(run: SuiteProcess, words: str) -> None:
    output, verdict = run.output, run.verdict
    assert run.exit_code == 4, output[-3000:]
    assert (verdict["outcome"], verdict["exit_status"], verdict["diagnosis"]) == ("error", 4, None)
    assert f"ERROR: {words}" in output and verdict["headline"].startswith(f"USAGE ERROR: {words}")
    assert "HEALTHY" not in output and "DIAGNOSIS" not in output and "HEALTHY" not in str(verdict)


def test_a_typo_in_markers_is_a_usage_error_and_starts_nothing(fresh_suite: SuiteRunner) -> None:
    run = fresh_suite("healthy", "golden-path")
    _assert_plain_usage_error(
        run, "unknown marker 'golden-path' in -m 'golden-path' (MARKERS) (did you mean golden_path?)"
    )
    # the replica's plugin says "local replica: ..." the moment it has started one
    assert "local replica:" not in run.output, "the replica started although the run could not"


def test_a_bad_setting_is_a_usage_error(fresh_suite: SuiteRunner) -> None:
    run = fresh_suite("healthy", extra_env={"E2E_RETRY_BUDGET_S": "soon"})
    _assert_plain_usage_error(run, "E2E settings: E2E_RETRY_BUDGET_S='soon' is not a number")


def test_a_catalogue_that_does_not_load_is_a_usage_error_naming_the_file(
    fresh_suite: SuiteRunner, tmp_path: Path
) -> None:
    broken = tmp_path / "known_issues.json"
    broken.write_text('{"issues": [', encoding="utf-8")
    run = fresh_suite("healthy", extra_env={"E2E_KNOWN_ISSUES": str(broken)})
    _assert_plain_usage_error(run, f"E2E settings: E2E_KNOWN_ISSUES={broken}: the known-issue catalogue")
    assert "does not load: not JSON" in run.output and "local replica:" not in run.output


def test_a_verified_issue_the_catalogue_lacks_is_a_usage_error_listing_the_valid_ids(
    fresh_suite: SuiteRunner,
) -> None:
    run = fresh_suite("healthy", "verify_fix", extra_env={"E2E_VERIFY_ISSUE": "issue-1279"})
    _assert_plain_usage_error(
        run, "E2E settings: E2E_VERIFY_ISSUE='issue-1279' is no issue of the known-issue"
    )
    assert "valid ids are issue-1278, staging-ws-auth-permissive" in run.output


def test_an_unknown_marker_argument_is_a_usage_error_naming_the_valid_ones(tmp_path: Path) -> None:
    module = tmp_path / "test_typo.py"
    module.write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.verifies("persistance")
            def test_stored():
                pass
            """
        )
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(module),
            "-p",
            "harness.pytest_plugin",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "@pytest.mark.verifies('persistance',) names no known verifies argument" in output
    assert "persistence" in output  # the valid ones are named


def test_pytest_tests_collects_and_skips_the_suite_saying_how_to_run_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "--co", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "tests/e2e_staging/test_health.py::TestBackendHealth::test_readiness_is_ready" in done.stdout
