"""The harness's pytest plugin: targets, per-test classification, Allure files, verdict, summary.

It acts only on runs of the staging suite (an argument inside tests/e2e_staging); the project's
own tests run untouched. Under xdist the controller owns the replica, the verdict and the summary;
workers classify their tests and send the result along in `report.user_properties`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import allure_files, record, redact, retry
from harness.breaker import PATH_ENV as BREAKER_PATH_ENV
from harness.breaker import Breaker
from harness.errors import E2EFailure
from harness.settings import Settings, SettingsError
from harness.summary import render_summary
from harness.taxonomy import Category
from harness.verdict import TestResult, Verdict

ROOT = Path(__file__).resolve().parent.parent
SUITE_DIR = ROOT / "tests" / "e2e_staging"
PROPERTY = "e2e"
SETTINGS_KEY = pytest.StashKey[Settings]()
_IGNORED_MARKERS = frozenset({"parametrize", "usefixtures", "filterwarnings", "xdist_group", "timeout"})


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("e2e", "staging validation suite")
    group.addoption("--verdict", default="reports/verdict.json", help="where the verdict file is written")


def is_suite_run(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == SUITE_DIR or SUITE_DIR in path.parents:
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    if not is_suite_run(config):
        return
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise pytest.UsageError(f"E2E settings: {exc}") from exc
    is_worker = hasattr(config, "workerinput")
    redact.install_log_redaction()  # before any request: whichever library logs, records are redacted
    retry.set_default_attempt_context(_allure_attempt_step)
    suite = SuiteRun(config, settings, is_worker)
    config.pluginmanager.register(suite, "e2e-suite-run")
    if not is_worker:
        # One breaker per run, beside the verdict; workers inherit its path through the environment.
        breaker_path = Path(config.getoption("verdict")).resolve().parent / "breaker.json"
        os.environ[BREAKER_PATH_ENV] = str(breaker_path)
        Breaker(breaker_path).reset()
        suite.prepare_targets()
    config.stash[SETTINGS_KEY] = suite.settings


def settings_of(config: pytest.Config) -> Settings:
    return config.stash[SETTINGS_KEY]


class SuiteRun:
    """Hooks of one run of the staging suite."""

    def __init__(self, config: pytest.Config, settings: Settings, is_worker: bool) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = is_worker
        self.replica: Any = None
        self.results: dict[str, TestResult] = {}
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.verdict: Verdict | None = None
        self.measurements: dict[str, Any] = {}
        self.exit_status = 0

    # -- targets ---------------------------------------------------------------------------
    def prepare_targets(self) -> None:
        """E2E_ENV=local without URLs: start the replica here; workers inherit its URLs via env."""
        if self.settings.env != "local" or self.settings.has_targets:
            return
        from replica.handle import ReplicaError, ReplicaHandle  # needed only for local runs

        key = self.settings.oauth_simulation_key or secrets.token_urlsafe(24)
        jwt_secret = secrets.token_urlsafe(32)
        redact.register(key, jwt_secret)
        run_dir = ROOT / ".replica" / f"suite-{os.getpid()}"
        try:
            self.replica = ReplicaHandle.start(
                self.settings.replica_scenario,
                run_dir,
                env={"E2E_OAUTH_SIMULATION_KEY": key, "REPLICA_JWT_SECRET": jwt_secret},
            )
        except (ReplicaError, ValueError) as exc:  # the local tooling failed, not the target: no verdict
            shutil.rmtree(run_dir, ignore_errors=True)
            raise pytest.UsageError(f"the local replica did not start: {redact.redact(exc)}") from None
        os.environ.update(
            {
                "E2E_BACKEND_URL": self.replica.backend_url,
                "E2E_AUTH_URL": self.replica.auth_url,
                "E2E_WS_URL": self.replica.ws_url,
                "E2E_OAUTH_SIMULATION_KEY": key,
                "E2E_JWT_SECRET": jwt_secret,
            }
        )
        self.settings = Settings.from_env()
        fix_after = self.settings.verify.local_fix_after_s
        if fix_after is not None:  # the local verify-fix story: "the infrastructure team fixed it"
            timer = threading.Timer(fix_after, self.replica.fix)
            timer.daemon = True
            timer.start()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.replica is not None:
            self.replica.stop()
            if not os.environ.get("E2E_KEEP_REPLICA"):  # its PostgreSQL data is tens of MB per run
                shutil.rmtree(self.replica.run_dir, ignore_errors=True)
            self.replica = None

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        scenario = f" (replica scenario: {self.settings.replica_scenario})" if self.replica else ""
        return [
            f"staging validation settings{scenario}:",
            *(f"  {line}" for line in self.settings.describe()),
        ]

    # -- per test (runs where the test runs: a worker or the only process) --------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        record.begin(item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        try:
            return (yield)
        except E2EFailure as failure:
            _attach("evidence", failure.evidence)
            raise
        finally:
            current = record.current()
            if current.evidence:  # every exchange's status, type, timing and body snippet, pass or fail
                _attach("exchanges", current.evidence)
            if current.retries:
                _attach("retries", [r.__dict__ for r in current.retries])
            if current.flaky:
                _tag_flaky()

    @pytest.hookimpl(wrapper=True, trylast=True)  # innermost: redact before Allure and JUnit read it
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
        report: pytest.TestReport = yield
        if report.failed and report.longrepr is not None:
            report.longrepr = redact.redact(report.longreprtext)
        report.sections = [(title, redact.redact(content)) for title, content in report.sections]
        if report.when == "call" or report.outcome != "passed":
            report.user_properties.append((PROPERTY, describe_outcome(item, call, report)))
        return report

    # -- collection of results (the controller, or the only process) ------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        info = next((value for key, value in report.user_properties if key == PROPERTY), None)
        if info is None:
            return
        info = dict(info)
        self.measurements.update(info.pop("measurements", {}))
        previous = self.results.get(report.nodeid)
        if previous is not None and previous.status != "passed":
            return  # the first failing phase decides
        duration = (previous.duration_s if previous else 0.0) + report.duration
        self.results[report.nodeid] = TestResult(**{**info, "duration_s": round(duration, 3)})

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            return
        self.verdict = Verdict(
            environment=self.settings.env,
            targets={k: v or "" for k, v in self.settings.targets.items()},
            started_at=self.started_at,
            duration_s=time.monotonic() - self.started,
            tests=list(self.results.values()),
        )
        self.exit_status = int(exitstatus)
        if _is_verify_run(session):
            fixed, reasons = self.verdict.fix_verdict()
            self.verdict.slo = {**self.measurements, "fixed": fixed, "reasons": reasons}
            if not fixed and self.exit_status == 0:  # e.g. a pass that needed a retry blocks sign-off
                self.exit_status = session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.verdict.write(Path(self.config.getoption("verdict")), self.exit_status)
        results_dir = self.config.getoption("allure_report_dir", None)
        if results_dir:
            self._write_allure_files(Path(results_dir))

    def _write_allure_files(self, results_dir: Path) -> None:
        environment = {
            "E2E_ENV": self.settings.env,
            **{f"target.{k}": v or "" for k, v in self.settings.targets.items()},
            "replica.scenario": self.settings.replica_scenario if self.replica else "n/a",
            "python": sys.version.split()[0],
        }
        allure_files.write_launch_files(results_dir, environment, allure_files.executor_info())
        allure_files.mark_flaky_results(results_dir)

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int) -> None:
        if self.is_worker or self.verdict is None:
            return
        for line in render_summary(self.verdict, self.exit_status, self.config.getoption("verdict")):
            terminalreporter.write_line(line)


def _is_verify_run(session: pytest.Session) -> bool:
    """A post-fix verification run selects only verify_fix tests."""
    return bool(session.items) and all(item.get_closest_marker("verify_fix") for item in session.items)


def describe_outcome(
    item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
) -> dict[str, Any]:
    """Status, category and known issue of one phase, as plain data (it travels from xdist workers)."""
    current = record.current()
    base: dict[str, Any] = {
        "nodeid": item.nodeid,
        "markers": sorted({m.name for m in item.iter_markers()} - _IGNORED_MARKERS),
        "attempts": current.attempts,
        "flaky": False,
        "known_issue": None,
        "measurements": dict(current.measurements),
    }
    if report.passed:
        # A passed test names a known issue only when it set out to reproduce it and did:
        # a signature that a retry overcame (a flaky gateway) is not a reproduction.
        return {
            **base,
            "status": "passed",
            "flaky": current.flaky,
            "known_issue": current.reproduced,
            "message": redact.redact(current.note) if current.note else None,
        }
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return {**base, "status": "skipped", "message": redact.redact(reason)}
    category, message, known = classify_exception(call.excinfo.value if call.excinfo else None, report)
    return {
        **base,
        "status": category.allure_status,
        "category": category.value,
        "known_issue": known,
        "message": redact.redact(message)[:2000],
    }


def classify_exception(
    exc: BaseException | None, report: pytest.TestReport
) -> tuple[Category, str, str | None]:
    """Every failure gets one category: ours carry it; anything else is mapped by its type."""
    if isinstance(exc, E2EFailure):
        return exc.category, str(exc), exc.known_issue
    text = f"{type(exc).__name__}: {exc}" if exc is not None else str(report.longrepr)
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return Category.INFRA_TIMEOUT, text, None
    if isinstance(exc, (ConnectionError, OSError)):
        return Category.INFRA_UNREACHABLE, text, None
    if isinstance(exc, AssertionError):
        return Category.PRODUCT_CONTRACT, text, None
    # An exception the harness did not anticipate: reported, never silently dropped.
    return Category.PRODUCT_CONTRACT, f"unexpected {text}", None


def _attach(name: str, data: Any) -> None:
    try:
        import allure

        allure.attach(
            json.dumps(redact.redact_data(data), indent=2, default=str),
            name=name,
            attachment_type=allure.attachment_type.JSON,
        )
    except Exception:  # Allure is optional at runtime (no --alluredir): evidence still goes to the verdict
        return


def _allure_attempt_step(attempt: int, describe: str) -> Any:
    """Each retry attempt is its own Allure step, so a retried pass is visible in the report."""
    import allure

    return allure.step(f"attempt {attempt}: {describe}")


def _tag_flaky() -> None:
    try:
        import allure

        allure.dynamic.tag(allure_files.FLAKY_TAG)
    except Exception:
        return
