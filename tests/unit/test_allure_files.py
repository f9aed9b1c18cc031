"""What the suite hands Allure: each attempt step's status, the flaky mark, the verdict on the report's
first page, and the empty run that must not reach the history (pure data; no suite run, no browser)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import allure_commons
import pytest
from allure_pytest.utils import get_status, get_status_details

from harness.allure_steps import attach_attempts, attempt_status
from harness.report import allure_files
from harness.report.allure_files import (
    first_page,
    has_results,
    mark_flaky_results,
    report_name,
    settle_flaky,
    write_launch_files,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_503 = "[infra.gateway] backend health: 503 with a non-JSON body: a gateway page (text/html)"
HEADLINE_1278 = (
    "KNOWN ISSUE issue-1278: the backend is down with the #1278 signature (gateway 503 page / startup "
    "failed in its database phase): infrastructure (Cloud SQL via the VPC connector)"
)


def _coverage(name: str, state: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "title": name.replace("_", " "),
        "golden_path": False,
        "state": state,
        "reason": reason,
    }


def _verdict_1278(**extra: Any) -> dict[str, Any]:
    """The body of an issue-1278 run's verdict, as far as the first page reads it."""
    return {
        "outcome": "failed",
        "exit_status": 1,
        "diagnosis": "known_issue",
        "known_issue": "issue-1278",
        "headline": HEADLINE_1278,
        "label": "KNOWN ISSUE issue-1278",
        "owner": "infrastructure (known issue issue-1278)",
        "cause": None,
        "counts": {"passed": 5, "failed": 0, "broken": 10, "skipped": 0, "flaky": 0},
        "coverage": [
            _coverage("backend_health", "failed"),
            _coverage("login", "verified"),
            _coverage("token_checks", "verified"),
            _coverage("persistence", "not_verified", "not selected"),
            _coverage("negative_auth", "not_verified", "not selected"),
        ],
        "tests": [],
        **extra,
    }


# -- attempt steps ---------------------------------------------------------------------------------


class _StepRecorder:
    """Receives allure_commons' step hooks as allure-pytest's listener does, and judges each step's
    status with allure-pytest's own functions: what the report would draw."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.open: list[str] = []

    @allure_commons.hookimpl
    def start_step(self, uuid: str, title: str, params: dict[str, Any]) -> None:
        self.steps[uuid] = {"title": title, "parent": self.open[-1] if self.open else None}
        self.order.append(uuid)
        self.open.append(uuid)

    @allure_commons.hookimpl
    def stop_step(self, uuid: str, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        details = get_status_details(exc_type, exc_val, exc_tb)
        self.steps[uuid] |= {"status": get_status(exc_val), "message": details.message if details else None}
        self.open.remove(uuid)

    def drawn(self) -> list[tuple[str, str, str | None]]:
        """(title, status, parent title) in the order the steps started."""
        return [
            (
                s["title"],
                s["status"],
                self.steps[s["parent"]]["title"] if s["parent"] else None,
            )
            for s in (self.steps[u] for u in self.order)
        ]


@pytest.fixture
def recorder() -> Iterator[_StepRecorder]:
    rec = _StepRecorder()
    allure_commons.plugin_manager.register(rec)
    try:
        yield rec
    finally:
        allure_commons.plugin_manager.unregister(rec)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("passed", "passed"),
        (GATEWAY_503, "broken"),  # infrastructure: the check could not run
        ("[product.auth] login rejected: 401", "failed"),  # the product answered wrongly
        ("[repro.not_reproduced] no 503 seen", "failed"),
        ("TimeoutError", "broken"),  # nobody classified it: not a product verdict
        ("[no.such_category] whatever", "broken"),
    ],
)
def test_an_attempt_has_its_own_status(outcome: str, status: str) -> None:
    assert attempt_status(outcome) == status


def test_each_attempt_step_is_drawn_with_its_attempts_status_and_message(recorder: _StepRecorder) -> None:
    attach_attempts([("backend health", [GATEWAY_503, GATEWAY_503, "passed"]), ("login", [GATEWAY_503] * 2)])
    drawn = recorder.drawn()
    assert [(title.split(":")[0], status) for title, status, _ in drawn] == [
        ("backend health", "passed"),  # a retried pass: the operation passed in the end
        ("attempt 1", "broken"),
        ("attempt 2", "broken"),
        ("attempt 3", "passed"),
        ("login", "broken"),  # an exhausted retry: the operation broke
        ("attempt 1", "broken"),
        ("attempt 2", "broken"),
    ]
    assert [parent for _, _, parent in drawn] == [
        None,
        *["backend health: 3 attempts"] * 3,
        None,
        *["login: 2 attempts"] * 2,
    ]
    messages = [recorder.steps[u]["message"] for u in recorder.order]
    assert messages[1] == f"AttemptBroken: {GATEWAY_503}\n" and messages[3] is None


def test_a_failed_attempt_is_drawn_failed_not_broken(recorder: _StepRecorder) -> None:
    attach_attempts([("login", ["[product.auth] login rejected: 401", "[product.auth] login rejected: 401"])])
    assert {status for _, status, _ in recorder.drawn()} == {"failed"}


# -- flaky -----------------------------------------------------------------------------------------


def _result(status: str, *tags: str) -> dict[str, Any]:
    return {"status": status, "labels": [{"name": "tag", "value": t} for t in ("e2e_staging", *tags)]}


def test_a_retried_test_is_flaky_only_if_it_passed() -> None:
    passed, broken = _result("passed", "flaky"), _result("broken", "flaky")
    assert settle_flaky(passed) is True and passed["statusDetails"]["flaky"] is True
    assert settle_flaky(broken) is False
    assert "flaky" not in broken.get("statusDetails", {})
    assert [label["value"] for label in broken["labels"]] == ["e2e_staging"]  # no flaky tag on the outage


def test_a_test_that_never_retried_is_left_alone() -> None:
    result = _result("passed")
    assert settle_flaky(result) is False and result == _result("passed")


def test_result_files_are_settled_in_place(tmp_path: Path) -> None:
    for name, result in {
        "a": _result("passed", "flaky"),
        "b": _result("broken", "flaky"),
        "c": _result("failed"),
    }.items():
        (tmp_path / f"{name}-result.json").write_text(json.dumps(result))
    assert mark_flaky_results(tmp_path) == 1
    flaky = {
        p.name: json.loads(p.read_text()).get("statusDetails", {}).get("flaky") for p in tmp_path.iterdir()
    }
    assert flaky == {"a-result.json": True, "b-result.json": None, "c-result.json": None}


# -- the first page ----------------------------------------------------------------------------------


def test_the_first_page_states_diagnosis_cause_owner_outcome_and_coverage() -> None:
    page = first_page(_verdict_1278())
    assert list(page) == ["diagnosis", "cause", "owner", "outcome", "verified", "failed", "not verified"]
    assert page == {
        "diagnosis": HEADLINE_1278,
        "cause": "none assessed",
        "owner": "infrastructure (known issue issue-1278)",
        "outcome": "FAILED (exit 1): 5 passed, 0 failed, 10 broken, 0 skipped, 0 flaky",
        "verified": "login, token checks",
        "failed": "backend health",
        "not verified": "persistence, negative auth (not selected)",
    }


def test_the_cause_comes_from_the_verdicts_cause_when_it_has_one() -> None:
    confirmed = {
        "known_issue": "issue-1278",
        "status": "confirmed",
        "evidence": "GET /health -> 503 text/html",
    }
    assert (
        first_page(_verdict_1278(cause=confirmed))["cause"]
        == "issue-1278 confirmed: GET /health -> 503 text/html"
    )
    ruled_out = {"known_issue": "issue-1278", "status": "ruled_out", "evidence": "3 of 3 died in services"}
    assert first_page(_verdict_1278(cause=ruled_out))["cause"] == (
        "issue-1278 ruled out: 3 of 3 died in services"
    )


def test_the_first_page_never_shows_a_secret() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"
    page = first_page(_verdict_1278(headline=f"PRODUCT DEFECT: the token {token} was refused"))
    assert token not in json.dumps(page) and "REDACTED" in page["diagnosis"]


def test_the_verdict_goes_first_in_the_environment_block_and_its_label_into_the_header(
    tmp_path: Path,
) -> None:
    write_launch_files(
        tmp_path,
        {"E2E_ENV": "local", "target.backend": "http://127.0.0.1:1"},
        {"name": "local"},
        _verdict_1278(),
    )
    lines = (tmp_path / "environment.properties").read_text().splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        "diagnosis", "cause", "owner", "outcome", "verified", "failed", "not\\ verified",
        "E2E_ENV", "target.backend",
    ]  # fmt: skip
    assert lines[0] == "diagnosis=" + HEADLINE_1278.replace(":", "\\:")
    assert lines[-1] == "target.backend=http\\://127.0.0.1\\:1"
    executor = json.loads((tmp_path / "executor.json").read_text())
    assert executor == {"name": "local", "reportName": "Staging validation: KNOWN ISSUE issue-1278"}


def test_the_header_is_the_verdicts_label_on_one_line() -> None:
    assert report_name(_verdict_1278(label="KNOWN ISSUE issue-1278 (confirmed)")) == (
        "Staging validation: KNOWN ISSUE issue-1278 (confirmed)"
    )


# -- the empty run -----------------------------------------------------------------------------------


def test_an_empty_run_has_no_results_and_so_no_history_entry(tmp_path: Path) -> None:
    assert not has_results(tmp_path / "missing")
    write_launch_files(
        tmp_path, {"E2E_ENV": "local"}, {"name": "local"}, _verdict_1278()
    )  # what a run that collected nothing leaves
    assert not has_results(tmp_path)
    assert allure_files.main(["has-results", str(tmp_path)]) == 1  # make report: no history entry
    (tmp_path / "a-result.json").write_text(json.dumps(_result("passed")))
    assert has_results(tmp_path) and allure_files.main(["has-results", str(tmp_path)]) == 0


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize(("append", "history"), [("0", None), ("1", "history.jsonl")])
def test_the_report_config_gives_an_empty_run_no_history(
    tmp_path: Path, append: str, history: str | None
) -> None:
    """Allure 3.14.3 ignores `appendHistory` and appends whenever a historyPath is set."""
    script = "const c = (await import(process.argv[1])).default; console.log(JSON.stringify(c.historyPath ?? null));"
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, (ROOT / "allurerc.mjs").as_uri()],
        env={**os.environ, "REPORTS": str(tmp_path), "ALLURE_APPEND_HISTORY": append},
        capture_output=True,
        text=True,
        check=True,
    )
    path = json.loads(done.stdout)
    assert (Path(path).name if path else None) == history
