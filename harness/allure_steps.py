"""Allure, while a test runs: its evidence attached as redacted JSON, each attempt of a retried
operation drawn as a step with that attempt's own status, and a retried test tagged (the launch files,
written once the run is over, settle the tag: `harness.report.allure_files`). Allure is optional at
run time (no --alluredir): then every call here does nothing, and the evidence still reaches the verdict.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from harness import allure_api as allure
from harness import known_issues
from harness.redact import redact, redact_data
from harness.taxonomy import Category

FLAKY_TAG = "flaky"  # set at teardown on a test that retried; settled at session end (passed or not)
StepStatus = Literal["passed", "failed", "broken"]


def attach_json(name: str, data: Any) -> None:
    """Redacted JSON attached to the running test (or fixture)."""
    try:
        body = json.dumps(redact_data(data), indent=2, default=str)
        allure.attach(redact(body), name=name, attachment_type=allure.attachment_type.JSON)
    except Exception:  # no Allure in this run: the verdict keeps the evidence
        return


class AttemptFailed(AssertionError):
    """A failed attempt: allure-pytest draws a step that ends in an AssertionError *failed*."""

    __module__ = "builtins"  # the step's message reads "AttemptFailed: …", not a module path


class AttemptBroken(Exception):
    """An attempt infrastructure cut short: allure-pytest draws any other exception's step *broken*."""

    __module__ = "builtins"


_CATEGORY_PREFIX = re.compile(r"^\[([a-z_]+\.[a-z_]+)\]")


def attempt_status(outcome: str) -> StepStatus:
    """An attempt's Allure status from its logged outcome (`harness.retry`: "passed", or the
    failure's first line, "[category] …"): a category's own status; anything else is broken (an
    exception nobody classified is not a product verdict)."""
    if outcome == "passed":
        return "passed"
    match = _CATEGORY_PREFIX.match(outcome)
    try:
        return Category(match.group(1)).allure_status if match else "broken"
    except ValueError:
        return "broken"


def attach_attempts(attempt_log: Sequence[tuple[str, list[str]]]) -> None:
    """Each attempt of a retried operation as its own step with that attempt's status (a 503 is
    broken, with its message; the passing one passed), under a step with the operation's final
    status: a retried pass and an exhausted retry must not look alike."""
    try:
        from allure_commons import plugin_manager

        for describe, outcomes in attempt_log:
            final = attempt_status(outcomes[-1]) if outcomes else "passed"
            parent = _start_step(plugin_manager, redact(f"{describe}: {len(outcomes)} attempts"))
            for number, outcome in enumerate(outcomes, 1):
                step = _start_step(plugin_manager, redact(f"attempt {number}: {outcome}"))
                _stop_step(plugin_manager, step, attempt_status(outcome), redact(outcome))
            _stop_step(plugin_manager, parent, final, redact(outcomes[-1]) if outcomes else "")
    except Exception:  # no Allure in this run, or it failed: the verdict keeps the evidence
        return


def _start_step(plugin_manager: Any, title: str) -> str:
    step = str(uuid.uuid4())
    plugin_manager.hook.start_step(uuid=step, title=title, params={})
    return step


def _stop_step(plugin_manager: Any, step: str, status: StepStatus, message: str) -> None:
    """allure_commons' `stop_step` hook takes the status from an exception (what `allure.step` hands
    it when its block raises): hand it one, without raising or a traceback to show."""
    error: BaseException | None = None
    if status == "failed":
        error = AttemptFailed(message)
    elif status == "broken":
        error = AttemptBroken(message)
    plugin_manager.hook.stop_step(
        uuid=step, exc_type=type(error) if error else None, exc_val=error, exc_tb=None
    )


def tag_flaky() -> None:
    """Tag a test that retried; `settle_flaky` keeps the tag (and marks it flaky) only if it passed."""
    try:
        allure.dynamic.tag(FLAKY_TAG)
    except Exception:
        return


def _issue(issue_id: str) -> known_issues.KnownIssue:
    issue = known_issues.get(issue_id)
    if issue is None:
        raise ValueError(f"{issue_id!r} is not in the known-issue catalogue")
    return issue


def issue_marks(issue_id: str) -> list[Any]:
    """A test module's tie to a known issue, from the catalogue: its epic (the issue's name) and its
    link, as `pytestmark` entries."""
    issue = _issue(issue_id)
    return [allure.epic(issue.name), allure.link(issue.link, link_type="issue", name=issue.name)]


def issue_link(issue_id: str) -> Any:
    """A test's (or class's) link to a known issue, from the catalogue, as an Allure decorator."""
    issue = _issue(issue_id)
    return allure.link(issue.link, link_type="issue", name=issue.name)


def label_issue(issue_id: str) -> None:
    """The same, decided at run time (the issue a verify-fix run verifies is a setting)."""
    issue = _issue(issue_id)
    allure.dynamic.epic(issue.name)
    allure.dynamic.link(issue.link, link_type="issue", name=issue.name)
