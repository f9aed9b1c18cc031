"""Self-tests run the staging suite as a subprocess against a replica scenario and read its verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = "tests/e2e_staging"
E2E_SELECTION = "not issue_1278"


@dataclass
class SuiteRun:
    exit_code: int
    verdict: dict[str, Any]
    output: str
    reports: Path

    def tests(self, contains: str = "") -> list[dict[str, Any]]:
        return [t for t in self.verdict["tests"] if contains in t["nodeid"]]

    def categories(self, contains: str = "") -> set[str | None]:
        return {t["category"] for t in self.tests(contains) if t["status"] in ("failed", "broken")}

    def explain(self) -> str:
        """What a failing self-test shows: the suite's own summary."""
        return self.output[-6000:]


def run_suite(
    reports: Path,
    scenario: str,
    markers: str = E2E_SELECTION,
    *,
    extra_env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    timeout_s: float = 240,
) -> SuiteRun:
    """`pytest tests/e2e_staging` in a clean E2E environment, E2E_ENV=local, the given scenario."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("E2E_", "REPLICA_", "PYTEST_"))}
    env.update({"E2E_ENV": "local", "REPLICA_SCENARIO": scenario, **(extra_env or {})})
    reports.mkdir(parents=True, exist_ok=True)
    verdict_path = reports / "verdict.json"
    argv = [
        sys.executable, "-m", "pytest", SUITE, "-m", markers, "-p", "no:cacheprovider",
        "--verdict", str(verdict_path), "--alluredir", str(reports / "allure-results"),
        "--junitxml", str(reports / "junit.xml"), *(extra_args or []),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    output = done.stdout + done.stderr
    if not verdict_path.exists():
        raise AssertionError(f"the suite wrote no verdict (exit {done.returncode}):\n{output[-6000:]}")
    return SuiteRun(done.returncode, json.loads(verdict_path.read_text()), output, reports)


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Run the suite once per (scenario, selection, env) and share the run between self-tests."""
    runs: dict[str, SuiteRun] = {}

    def _run(scenario: str, markers: str = E2E_SELECTION, **kwargs: Any) -> SuiteRun:
        key = json.dumps([scenario, markers, kwargs], sort_keys=True)
        if key not in runs:
            runs[key] = run_suite(tmp_path_factory.mktemp(scenario) / "reports", scenario, markers, **kwargs)
        return runs[key]

    return _run
