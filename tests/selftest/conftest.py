"""Self-tests run the staging suite as a subprocess against a replica scenario and read its verdict."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack

import httpx
import jsonschema
import pytest

from replica.cloud_logging_api import StandIn, isolated_environ, serving, suite_record
from replica.hostile import AUTH_PREFIX, CONTROL_PREFIX
from replica.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SUITE = "tests/e2e_staging"
VERDICT_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "docs" / "verdict.schema.json").read_text(encoding="utf-8")),
    format_checker=jsonschema.FormatChecker(),
)
# A run of the suite starts from none of the caller's settings, nor the machine's own gcloud setup
# (CLOUDSDK_*, GOOGLE_*, proxies: `isolated_environ`).
SUITE_PREFIXES = ("E2E_", "REPLICA_", "PYTEST_")
# A JWT (header and payload both JSON objects), and a bearer credential that is not the mask.
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")
BEARER_UNMASKED = re.compile(r"(?i)\bbearer\s+(?!\*\*\*REDACTED\*\*\*)[A-Za-z0-9._~+/=-]{8,}")
# The replica's HEAD handshake hands out `session_token`s shaped like this (a credential).
SESSION_TOKEN = re.compile(r"sess_[A-Za-z0-9_-]{16,}")


@dataclass
class SuiteProcess:
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

    def secret_hits(self, *values: str) -> list[str]:
        """Where a secret shows in any file under the reports dir or in the output: `where@offset: kind`.

        `values` are secrets known by value (the bypass key); tokens are found by their shape.
        """
        patterns = {f"secret value #{i + 1}": re.compile(re.escape(v)) for i, v in enumerate(values) if v}
        patterns |= {"JWT": JWT_SHAPE, "unmasked Bearer": BEARER_UNMASKED, "session token": SESSION_TOKEN}
        sources = {
            str(path.relative_to(self.reports)): path.read_bytes().decode("utf-8", errors="replace")
            for path in sorted(self.reports.rglob("*"))
            if path.is_file()
        }
        sources["<captured stdout/stderr>"] = self.output
        return [
            f"{where}@{match.start()}: {kind}"
            for where, text in sources.items()
            for kind, pattern in patterns.items()
            for match in pattern.finditer(text)
        ]


def suite_command(
    reports: Path,
    scenario: str,
    markers: str | None = None,
    *,
    extra_env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one run of the suite (see `run_suite`)."""
    env = isolated_environ({}, {k: v for k, v in os.environ.items() if not k.startswith(SUITE_PREFIXES)})
    env.update({"E2E_ENV": "local", "REPLICA_SCENARIO": scenario, **(extra_env or {})})
    reports.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "pytest", SUITE, *(["-m", markers] if markers else []), "-p", "no:cacheprovider",
        "--verdict", str(reports / "verdict.json"), "--alluredir", str(reports / "allure-results"),
        "--junitxml", str(reports / "junit.xml"), *(extra_args or []),
    ]  # fmt: skip
    return argv, env


def run_suite(
    reports: Path,
    scenario: str,
    markers: str | None = None,
    *,
    extra_env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    timeout_s: float = 240,
    expect_verdict: bool = True,
) -> SuiteProcess:
    """`pytest tests/e2e_staging` in a clean E2E environment, E2E_ENV=local, the given scenario;
    `markers` None is the suite's default selection (what `make e2e-staging` runs).

    `expect_verdict=False` is for runs that must stop before writing one (the verdict is then {}).
    """
    argv, env = suite_command(reports, scenario, markers, extra_env=extra_env, extra_args=extra_args)
    verdict_path = reports / "verdict.json"
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    output = done.stdout + done.stderr
    if not verdict_path.exists():
        if not expect_verdict:
            return SuiteProcess(done.returncode, {}, output, reports)
        raise AssertionError(f"the suite wrote no verdict (exit {done.returncode}):\n{output[-6000:]}")
    verdict = json.loads(verdict_path.read_text())
    VERDICT_SCHEMA.validate(verdict)  # every verdict a self-test sees holds to the published contract
    return SuiteProcess(done.returncode, verdict, output, reports)


class SuiteOptions(TypedDict, total=False):
    """`run_suite`'s keyword arguments, as the `suite` and `fresh_suite` fixtures pass them on."""

    extra_env: dict[str, str] | None
    extra_args: list[str] | None
    timeout_s: float
    expect_verdict: bool


class SuiteRunner(Protocol):
    """What the `suite` and `fresh_suite` fixtures give a self-test: one run of the suite, `run_suite`
    without its reports dir (the fixture picks it)."""

    def __call__(
        self, scenario: str, markers: str | None = None, **options: Unpack[SuiteOptions]
    ) -> SuiteProcess: ...


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> SuiteRunner:
    """Run the suite once per (scenario, selection, env) and share the run between self-tests."""
    runs: dict[str, SuiteProcess] = {}

    def _run(scenario: str, markers: str | None = None, **options: Unpack[SuiteOptions]) -> SuiteProcess:
        key = json.dumps([scenario, markers, options], sort_keys=True)
        if key not in runs:
            runs[key] = run_suite(tmp_path_factory.mktemp(scenario) / "reports", scenario, markers, **options)
        return runs[key]

    return _run


@pytest.fixture
def fresh_suite(tmp_path: Path) -> SuiteRunner:
    """`run_suite` into a new reports dir on every call: for runs that must be neither shared nor cached."""
    calls = itertools.count(1)

    def _run(scenario: str, markers: str | None = None, **options: Unpack[SuiteOptions]) -> SuiteProcess:
        return run_suite(tmp_path / f"run-{next(calls)}" / "reports", scenario, markers, **options)

    return _run


# ---------------------------------------------------------------------------------------------
# The hostile impostor (replica/hostile.py) and the secret scan, shared by test_hostile and test_secrets

# Small budgets so that every hostile mode ends in seconds: (request timeout, agent timeout, retry budget).
HOSTILE_REQUEST_TIMEOUT_S, HOSTILE_AGENT_TIMEOUT_S, HOSTILE_RETRY_BUDGET_S = 2.0, 3.0, 3.0
HOSTILE_START_TIMEOUT_S = 15.0


@dataclass
class HostileServer:
    """A running `python -m replica.hostile`, whose mode is switched per test over its control path."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def use(self, mode: str) -> None:
        """Switch the mode (and reset the server's counters) before a suite run."""
        httpx.put(f"{self.base}{CONTROL_PREFIX}/mode/{mode}", timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        """Mode, logins and how many secrets the server echoed back since the last switch."""
        return dict(httpx.get(f"{self.base}{CONTROL_PREFIX}/stats", timeout=5).json())

    def suite_env(self, bypass_key: str) -> dict[str, str]:
        """The suite's environment for a run against the impostor (E2E_ENV=custom: no replica)."""
        return {
            "E2E_ENV": "custom",
            "E2E_BACKEND_URL": self.base,
            "E2E_AUTH_URL": f"{self.base}{AUTH_PREFIX}",
            "E2E_WS_URL": f"ws://127.0.0.1:{self.port}/ws",
            "E2E_OAUTH_SIMULATION_KEY": bypass_key,
            "E2E_REQUEST_TIMEOUT_S": f"{HOSTILE_REQUEST_TIMEOUT_S:g}",
            "E2E_AGENT_TIMEOUT_S": f"{HOSTILE_AGENT_TIMEOUT_S:g}",
            "E2E_RETRY_BUDGET_S": f"{HOSTILE_RETRY_BUDGET_S:g}",
        }


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    """One impostor per session (per xdist worker); killed in teardown, whatever happened."""
    port = free_port()
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    argv = [sys.executable, "-m", "replica.hostile", "--mode", "polite", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    server = HostileServer(port, process)
    try:
        _wait_until_serving(server, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_until_serving(server: HostileServer, log: Path) -> None:
    deadline = time.monotonic() + HOSTILE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"replica.hostile exited with {server.process.returncode} before serving:\n{log.read_text()}"
            )
        try:
            server.stats()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"replica.hostile did not serve within {HOSTILE_START_TIMEOUT_S:g}s")


# ---------------------------------------------------------------------------------------------
# The real gcloud, reading the record of the replica a suite run started through a local stand-in of
# Cloud Logging's API (replica/cloud_logging_api.py), never the machine's own gcloud configuration.


@dataclass
class RealGcloud:
    """One stand-in for the session; each suite run gets a fresh gcloud configuration of its own."""

    stand_in: StandIn
    env: dict[str, str]
    configs: Path

    def source(self, run: str) -> dict[str, str]:
        """The settings that make run `run` read its record through the real gcloud (`run` names its
        fresh CLOUDSDK_CONFIG and HOME: the same name, the same run, shared by the `suite` fixture)."""
        config, home = self.configs / run / "config", self.configs / run / "home"
        for directory in (config, home):
            directory.mkdir(parents=True, exist_ok=True)
        return self.env | {
            "CLOUDSDK_CONFIG": str(config),
            "HOME": str(home),
            "E2E_STARTUP_EVIDENCE": "gcloud",
        }


@pytest.fixture(scope="session")
def real_gcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGcloud]:
    if shutil.which("gcloud") is None:
        pytest.skip(
            "gcloud (the Google Cloud CLI) is not on PATH: these self-tests read the startup record through "
            "the real gcloud against a local stand-in of Cloud Logging (install google-cloud-cli to run them)"
        )
    directory = tmp_path_factory.mktemp("cloud-logging-api")
    with serving(suite_record(ROOT), directory) as (stand_in, env):
        yield RealGcloud(stand_in, env, directory / "runs")
