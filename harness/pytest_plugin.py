"""The harness's pytest plugin: settings, per-test records and classification, Allure files, the
verdict and the terminal summary.

It acts only on runs of the staging suite (an argument inside tests/e2e_staging); the project's own
tests run untouched. Targets come from the settings, or from a plugin implementing
`pytest_e2e_provide_targets` (the replica's, for E2E_ENV=local). Under xdist the controller owns
the verdict and the summary and hands its settings to workers through `workerinput`; workers
classify their tests and send each result along in `report.user_properties`. Usage errors (the
settings, `-m`, the suite's marker arguments: `harness.usage`) are found before targets are provided,
which happens as late as possible (workers configured, else collection done), so a usage error
starts nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness import allure_steps, hooks, journal, known_issues, markers, redact, usage
from harness.breaker import Breaker
from harness.errors import E2EFailure
from harness.loop import LoopThread
from harness.nightly.history import History, HistoryError, HistoryFile
from harness.nightly.record import RunIdentity, night_of
from harness.operations import Operations
from harness.report import allure_files, box
from harness.report.cause import weigh
from harness.report.verdict import RunFacts, TestResult, TestStatus, Verdict, conclude, write_verdict
from harness.reports_lock import ReportsBusy, ReportsLock
from harness.settings import Settings, SettingsError
from harness.startup.sources import StartupWindow, read_startups
from harness.startup.watch import StartupWatch
from harness.taxonomy import Category

ROOT = Path(__file__).resolve().parent.parent
SUITE_DIR = ROOT / "tests" / "e2e_staging"
PROPERTY = "e2e"
SUITE_KEY = pytest.StashKey["SuiteRun"]()
JOURNAL_KEY = pytest.StashKey[journal.TestJournal]()
USAGE_KEY = pytest.StashKey[str]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "e2e", "staging validation suite (settings: E2E_* variables; python -m harness.settings --help)"
    )
    group.addoption("--verdict", default="reports/verdict.json", help="where the verdict file is written")
    group.addoption(
        "--fresh-reports",
        action="store_true",
        help="empty the Allure results directory and remove the last breaker once this run holds its "
        "reports directory (make does it; --clean-alluredir races under xdist)",
    )


def is_suite_run(config: pytest.Config) -> bool:
    """Only the suite itself (its directory, or files and tests in it): a wider run (`pytest tests`)
    collects the suite's tests but skips them (`pytest_collection_modifyitems`)."""
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == SUITE_DIR or SUITE_DIR in path.parents:
            return True
    return False


def _in_suite(item: pytest.Item) -> bool:
    return item.path.parent == SUITE_DIR or SUITE_DIR in item.path.parents


def pytest_configure(config: pytest.Config) -> None:
    for marker in markers.MARKERS:
        config.addinivalue_line("markers", marker.line)
    if not is_suite_run(config):
        return
    redact.install_log_redaction()  # before any request: whichever library logs, records are redacted
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        settings = Settings.from_dict(workerinput["e2e_settings"])
        known_issues.use(settings.known_issues_path)  # the controller's catalogue (it checked it loads)
        breaker = Path(workerinput["e2e_breaker"])
    else:
        reports = _hold_reports(config)  # before anything is written there, a usage error's verdict too
        settings = _checked_usage(config)  # usage errors first: before anything starts
        breaker = reports.directory / "breaker.json"
        Breaker(breaker).reset()
    suite = SuiteRun(config, settings, Breaker(breaker), is_worker=workerinput is not None)
    config.stash[SUITE_KEY] = suite
    config.pluginmanager.register(suite, "e2e-suite-run")


def _hold_reports(config: pytest.Config) -> ReportsLock:
    """This run's reports directory, held until the run ends: a second run in it is refused at once,
    plainly, with no verdict written (the directory and its verdict are the first run's)."""
    try:
        lock = ReportsLock.take(Path(config.getoption("verdict")).parent)
    except ReportsBusy as busy:
        raise pytest.UsageError(str(busy)) from None
    config.add_cleanup(lock.release)
    if config.getoption("fresh_reports"):
        results = config.getoption("allure_report_dir", None)
        lock.clear(*([Path(results)] if results else []))
    return lock


def _checked_usage(config: pytest.Config) -> Settings:
    """The settings from the environment, the known-issue catalogue they name (made this process's),
    and the marker expression, checked before any target is started: a usage error is said plainly,
    written to the verdict as `error` (exit 4), and nothing runs."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise usage_error(config, f"E2E settings: {exc}") from None
    problem = usage.catalogue_problem(settings) or usage.markexpr_problem(
        config.option.markexpr, config.getini("markers")
    )
    if problem:
        raise usage_error(config, problem)
    return settings


def usage_error(config: pytest.Config, message: str) -> pytest.UsageError:
    """A usage error, written to the verdict first (outcome `error`, exit 4, no diagnosis): raised
    before the session starts, nothing else writes one; raised later, the run's verdict says it too."""
    config.stash[USAGE_KEY] = message
    if is_suite_run(config):
        usage.write_usage_verdict(Path(config.getoption("verdict")), message)
    return pytest.UsageError(message)


def suite_of(config: pytest.Config) -> SuiteRun:
    return config.stash[SUITE_KEY]


# -- the suite's markers -------------------------------------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`golden_run`: verify-fix's golden path, `E2E_VERIFY_GOLDEN_RUNS` times."""
    if "golden_run" in metafunc.fixturenames:
        suite = metafunc.config.stash.get(SUITE_KEY, None)
        runs = (suite.settings if suite else Settings.defaults()).verify.golden_runs
        metafunc.parametrize("golden_run", range(1, runs + 1), ids=[f"run{n}" for n in range(1, runs + 1)])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The suite's marker arguments name what exists (a typo would silently drop a capability from
    the coverage); outside a run of the suite itself, its tests are skipped, saying how to run them."""
    for item in items:
        problem = usage.marker_argument_problem(item)
        if problem:
            raise usage_error(config, problem)
    if is_suite_run(config):
        return
    outside = pytest.mark.skip(
        reason="the staging suite runs on its own: make e2e-staging (or pytest tests/e2e_staging)"
    )
    for item in items:
        if _in_suite(item):
            item.add_marker(outside)


class SuiteRun:
    """Hooks of one run of the staging suite, and the objects its tests share."""

    def __init__(
        self, config: pytest.Config, settings: Settings, breaker: Breaker, *, is_worker: bool
    ) -> None:
        self.config = config
        self.settings = (
            settings  # a worker's come with targets; the controller's get them in `provide_targets`
        )
        self._targets_provided = is_worker
        self.breaker = breaker
        self.is_worker = is_worker
        self._loop: LoopThread | None = None
        self._operations: Operations | None = None
        self.results: dict[str, TestResult] = {}
        self.selected: dict[str, TestResult] = {}
        self.measurements: dict[str, Any] = {}
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.verdict: Verdict | None = None
        self.body: dict[str, Any] = {}
        self.watch = StartupWatch(self._read_startups)  # read once, on first need, in this process
        self._history_note: str | None = None  # what became of this night in the history, one line

    def provide_targets(self) -> None:
        """Targets for the run, once: the settings' own, or a provider's (the replica's plugin starts the
        local replica). Called as late as possible, so that usage errors (the settings, `-m`, the
        suite's markers) are found before anything starts: when workers are configured (xdist), else
        once collection has succeeded, else on first use."""
        if self._targets_provided:
            return
        self._targets_provided = True
        provided = self.config.hook.pytest_e2e_provide_targets(config=self.config, settings=self.settings)
        self.settings = provided or self.settings
        if not self.settings.has_targets:
            raise usage_error(
                self.config,
                "E2E settings: no targets. Set E2E_ENV=staging (or E2E_ENV=custom with E2E_BACKEND_URL, "
                "E2E_AUTH_URL and E2E_WS_URL); E2E_ENV=local needs the replica's plugin (root conftest.py)",
            )

    @property
    def operations(self) -> Operations:
        """The operations, on the process's one event loop and HTTP client (created on first use)."""
        if self._operations is None:
            self.provide_targets()
            self._loop = LoopThread()
            self._operations = Operations(self.settings, self.breaker, self._loop, self.watch)
        return self._operations

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._print_box()
        if self._operations is not None:
            with contextlib.suppress(Exception):
                self._operations.close()
        if self._loop is not None:
            self._loop.stop()

    # -- xdist: the controller's settings reach the workers as data -------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        self.provide_targets()
        share = _per_worker(self.settings, _worker_count(self.config))
        node.workerinput["e2e_settings"] = share.to_dict()
        node.workerinput["e2e_breaker"] = str(self.breaker.path)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        verify = bool(config.option.markexpr and "verify_fix" in config.option.markexpr)
        return [
            "staging validation settings:",
            *(f"  {line}" for line in self.settings.describe(verify=verify)),
        ]

    # -- selection ----------------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Without `-m`, the reproduction and verify-fix suites stay out: they run when selected."""
        if config.option.markexpr:
            return
        keep = [i for i in items if not any(i.get_closest_marker(m) for m in markers.OPT_IN)]
        dropped = [i for i in items if i not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.is_worker:
            return
        # under xdist the controller collects nothing: not-reached stays unknown
        self.selected = {item.nodeid: _base_result(item, "skipped") for item in session.items}
        if session.items and not session.testsfailed:  # collection errors stop the run: start nothing
            self.provide_targets()

    # -- per test (where the test runs: a worker, or the only process) ----------------------------
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        item.stash[JOURNAL_KEY] = journal.TestJournal(nodeid=item.nodeid)
        return (yield from self._phase(item, "setup"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._phase(item, "call"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._phase(item, "teardown"))

    def _phase(self, item: pytest.Item, phase: str) -> Iterator[None]:
        """Bind the test's record for this phase; attach what the phase gathered, in every phase."""
        rec = item.stash.get(JOURNAL_KEY, None) or journal.TestJournal(nodeid=item.nodeid)
        with journal.bound(rec):
            try:
                return (yield)
            except E2EFailure as failure:
                allure_steps.attach_json(f"evidence ({phase})", failure.evidence)
                raise
            finally:
                exchanges = rec.unattached()
                if exchanges:
                    allure_steps.attach_json(f"exchanges ({phase})", exchanges)
                if phase == "teardown":
                    allure_steps.attach_attempts(rec.attempt_log)
                    if rec.flaky:
                        allure_steps.tag_flaky()

    @pytest.hookimpl(wrapper=True, trylast=True)  # innermost: redact before Allure and JUnit read it
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report: pytest.TestReport = yield
        exc = call.excinfo.value if call.excinfo else None
        if report.failed and isinstance(exc, E2EFailure) and exc.category is not Category.SUITE_ERROR:
            report.longrepr = str(
                exc
            )  # classified: its message says it all; no traceback through the harness
        elif report.failed and report.longrepr is not None:
            report.longrepr = redact.redact(report.longreprtext)
        report.sections = [(title, redact.redact(content)) for title, content in report.sections]
        if report.when == "call" or report.outcome != "passed":
            rec = item.stash.get(JOURNAL_KEY, None) or journal.TestJournal(nodeid=item.nodeid)
            report.user_properties.append((PROPERTY, describe_outcome(item, call, report, rec)))
        return report

    # -- results (the controller, or the only process) ------------------------------------------------
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A module that does not collect is a defect of the suite: it must show in the verdict."""
        if self.is_worker or not report.failed:
            return
        self.results[report.nodeid] = TestResult(
            nodeid=report.nodeid,
            markers=[],
            status="broken",
            category=Category.SUITE_ERROR.value,
            kind="collection_error",
            message=redact.redact(f"the suite failed to collect {report.nodeid}: {report.longreprtext}")[
                :2000
            ],
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        found = next((value for key, value in report.user_properties if key == PROPERTY), None)
        if not isinstance(found, dict):
            return
        info: dict[str, Any] = dict(found)
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
        tests = list(self.results.values())
        cause = weigh(tests, self.watch.window)
        if cause is not None and cause.status == "ruled_out":  # the record says it is not that issue
            tests = [
                dataclasses.replace(t, known_issue=None) if t.known_issue == cause.known_issue else t
                for t in tests
            ]
        verify = bool(tests) and all("verify_fix" in t.markers for t in tests)
        job = self.settings.job or _job_of(tests, verify=verify)
        run = RunIdentity.from_env(started_at=self.started_at)
        history = self._history(job)
        self.verdict = conclude(
            RunFacts(
                pytest_exit=int(exitstatus),
                environment=self.settings.env,
                targets={k: v or "" for k, v in self.settings.targets.items()},
                started_at=self.started_at,
                duration_s=time.monotonic() - self.started,
                tests=tuple(tests),
                not_reached=tuple(t for nodeid, t in self.selected.items() if nodeid not in self.results),
                verified_issue=self.settings.verify.issue if verify else None,
                measurements=self.measurements,
                cause=cause,
                usage_error=self.config.stash.get(USAGE_KEY, None),
                judged_the_replica=self.settings.judges_the_replica,
                revisions=_revisions(self.watch.reading),
                job=job,
                run=run,
                history=history.previous(run.run_id) if history and not history.unavailable else None,
            )
        )
        session.exitstatus = self.verdict.exit_status
        self.body = self.verdict.body()
        write_verdict(Path(self.config.getoption("verdict")), self.body)
        if history is not None:
            self._record(history.with_night(night_of(self.body)))
        results_dir = self.config.getoption("allure_report_dir", None)
        if results_dir:
            environment = {
                "E2E_ENV": self.settings.env,
                **{f"target.{k}": v or "" for k, v in self.settings.targets.items()},
                "python": sys.version.split()[0],
            }
            allure_files.write_launch_files(
                Path(results_dir), environment, allure_files.executor_info(), self.body
            )
            allure_files.mark_flaky_results(Path(results_dir))

    def _read_startups(self) -> StartupWindow:
        """The backend's startups around this run (the watch reads them when a failure needs them),
        bounded."""
        evidence = self.settings.startup
        since = evidence.since or datetime.now(UTC) - timedelta(
            seconds=time.monotonic() - self.started + evidence.cause_lookback_s
        )
        return read_startups(self.settings, since=since, timeout_s=evidence.cause_timeout_s)

    def _history(self, job: str) -> History | None:
        """This job and environment's nights (E2E_HISTORY), read at session end; None when no history
        is kept, or the file is another's (said in one line, the night not recorded)."""
        if not self.settings.history:
            return None
        try:
            return HistoryFile(Path(self.settings.history)).read(job, self.settings.env)
        except HistoryError as exc:
            self._history_note = f"history: {exc}"
            return None

    def _record(self, history: History) -> None:
        """This night appended to the history file (a re-run of the same run id replaces its night)."""
        path = Path(self.settings.history or "")
        try:
            HistoryFile(path).write(history)
        except OSError as exc:
            self._history_note = f"history: {path} not written: {exc}"
            return
        self._history_note = f"history: night {len(history.records)} of {history.job} on {history.environment} recorded in {path}"

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        """pytest's own counts in the verdict's terms: a classified infrastructure failure is `broken`
        (not pytest's failed or error), a product failure `failed` in whichever phase it happened;
        a suite error keeps pytest's word and its traceback."""
        if not report.failed:
            return None
        info = next((value for key, value in report.user_properties if key == PROPERTY), None)
        if not isinstance(info, dict) or info.get("category") in (None, Category.SUITE_ERROR):
            return None
        if info.get("status") == "broken":
            return "broken", "B", ("BROKEN", {"yellow": True})
        return "failed", "F", ("FAILED", {"red": True})

    def _print_box(self) -> None:
        """The verdict's box, the last thing a person reads (after pytest's own counts)."""
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.is_worker or self.verdict is None or terminal is None or self.verdict.facts.usage_error:
            return  # a usage error is pytest's to print, plainly: there is no verdict to box
        for line in box.render(self.body, self.config.getoption("verdict")):
            terminal.write_line(line)
        if self._history_note:
            terminal.write_line(self._history_note)


def _job_of(tests: list[TestResult], *, verify: bool) -> str:
    """The job this run is a night of, when E2E_JOB does not say: the Makefile target it matches."""
    if verify:
        return "verify-fix"
    if tests and all("issue_1278" in t.markers for t in tests):
        return "reproduce-1278"
    return "e2e-staging"


def _revisions(window: StartupWindow | None) -> tuple[str, ...]:
    """The backend revisions the startup record showed, in the order they first started."""
    if window is None or window.tally is None:
        return ()
    return tuple(dict.fromkeys(r.revision for r in window.tally.records if r.revision))


def _worker_count(config: pytest.Config) -> int:
    value = getattr(config.option, "numprocesses", None)
    if isinstance(value, int):
        return max(1, value)
    return max(1, os.cpu_count() or 1) if value in ("auto", "logical") else 1


def _per_worker(settings: Settings, workers: int) -> Settings:
    """Each of N workers gets 1/N of the run's concurrency and rate: the bound holds for the run."""
    return dataclasses.replace(
        settings,
        max_concurrency=max(1, settings.max_concurrency // workers),
        max_rps=settings.max_rps / workers,
    )


def _base_result(item: pytest.Item, status: TestStatus) -> TestResult:
    return TestResult(
        nodeid=item.nodeid,
        markers=markers.selectable_of(m.name for m in item.iter_markers()),
        status=status,
        title=getattr(getattr(item, "obj", None), "__allure_display_name__", None),
        capabilities=[str(m.args[0]) for m in item.iter_markers("verifies") if m.args],
        gate=next((str(m.args[0]) for m in item.iter_markers("gate") if m.args), None),
    )


def describe_outcome(
    item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport, rec: journal.TestJournal
) -> dict[str, Any]:
    """Status, category and known issue of one phase, as plain data (it travels from xdist workers)."""
    base = _base_result(item, "passed").__dict__ | {
        "attempts": rec.attempts,
        "service": rec.service,
        "side_endpoint": rec.side_endpoint,
        "measurements": dict(rec.measurements),
        "gate_figures": dict(rec.gate) or None,
    }
    if report.passed:
        # A passed test names a known issue only when it set out to reproduce it and did:
        # a signature that a retry overcame (a flaky gateway) is not a reproduction.
        note = redact.redact(rec.note) if rec.note else None
        return base | {"status": "passed", "flaky": rec.flaky, "known_issue": rec.reproduced, "message": note}
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        return base | {"status": "skipped", "message": redact.redact(reason)}
    exc = call.excinfo.value if call.excinfo else None
    category, kind, message = classify_exception(exc, call, report)
    failure = exc if isinstance(exc, E2EFailure) else None
    return base | {
        "status": category.allure_status,
        "category": category.value,
        "kind": kind,
        "known_issue": failure.known_issue if failure else None,
        "signature": failure.signature if failure else None,
        "service": (failure.service if failure and failure.service else rec.service),
        "message": redact.redact(message)[:2000],
    }


def classify_exception(
    exc: BaseException | None, call: pytest.CallInfo[None], report: pytest.TestReport
) -> tuple[Category, str, str]:
    """Every failure gets one category: ours carry it; a test's own assertion is a product contract;
    anything else is a defect of the suite, never blamed on the product."""
    if isinstance(exc, E2EFailure):
        return exc.category, exc.kind, str(exc)
    text = f"{type(exc).__name__}: {exc}" if exc is not None else str(report.longrepr)
    if isinstance(exc, AssertionError) and call.excinfo is not None and _raised_in_suite(call.excinfo):
        return Category.PRODUCT_CONTRACT, "assertion", text
    return Category.SUITE_ERROR, "suite_error", f"the suite failed (not staging): unanticipated {text}"


def _raised_in_suite(excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
    """The assertion is a test's own (its last frame in tests/e2e_staging), not the harness's."""
    try:
        path = Path(str(excinfo.traceback[-1].path)).resolve()
    except (IndexError, ValueError):
        return False
    return SUITE_DIR in path.parents
