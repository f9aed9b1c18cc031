"""Usage errors found before anything starts (harness.usage): the marker expression, the suite's marker
arguments, the known-issue catalogue and the issue verify-fix verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import known_issues
from harness.settings import Settings
from harness.usage import catalogue_problem, markexpr_problem

pytestmark = pytest.mark.unit

REGISTERED = [
    "e2e_staging: a test of the staging suite",
    "health: backend and auth health",
    "golden_path: login -> chat",
    "verify_fix: post-fix verification",
    "verifies(capability): the capability a staging test verifies",
]


@pytest.mark.parametrize(
    "expression", [None, "", "health", "golden_path and not verify_fix", "verifies(name='x')"]
)
def test_an_expression_of_registered_markers_is_fine(expression: str | None) -> None:
    assert markexpr_problem(expression, REGISTERED) is None


def test_a_typo_is_named_with_the_marker_it_most_resembles() -> None:
    problem = markexpr_problem("golden-path or health", REGISTERED)
    assert problem is not None
    assert problem.startswith("unknown marker 'golden-path' in -m 'golden-path or health' (MARKERS)")
    assert "(did you mean golden_path?)" in problem and "the suite's markers are" in problem


def test_an_expression_that_does_not_parse_says_so() -> None:
    problem = markexpr_problem("health and (", REGISTERED)
    assert problem is not None and "does not parse" in problem


# -- the known-issue catalogue (E2E_KNOWN_ISSUES) and the verified issue (E2E_VERIFY_ISSUE) ------------
@pytest.fixture
def catalogue_restored() -> Iterator[None]:
    """`catalogue_problem` makes the catalogue it checks this process's: put the project's back."""
    yield
    known_issues.use(known_issues.DEFAULT_PATH)


def _scratch(tmp_path: Path, issue_id: str) -> Path:
    data = json.loads(known_issues.DEFAULT_PATH.read_text(encoding="utf-8"))
    data["issues"] = [dict(data["issues"][0], id=issue_id)]
    path = tmp_path / "scratch.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.usefixtures("catalogue_restored")
def test_the_default_catalogue_and_issue_are_fine() -> None:
    assert catalogue_problem(Settings.from_env({})) is None
    assert known_issues.load() == known_issues.load(known_issues.DEFAULT_PATH)


@pytest.mark.usefixtures("catalogue_restored")
def test_a_scratch_catalogue_becomes_the_one_this_process_reads(tmp_path: Path) -> None:
    path = _scratch(tmp_path, "scratch-1")
    settings = Settings.from_env({"E2E_KNOWN_ISSUES": str(path), "E2E_VERIFY_ISSUE": "scratch-1"})
    assert catalogue_problem(settings) is None
    assert [issue.id for issue in known_issues.load()] == ["scratch-1"]


@pytest.mark.usefixtures("catalogue_restored")
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not load: no such file"),
        ("{not json", "does not load: not JSON (Expecting property name enclosed in double quotes at line 1"),
        (
            '{"issues": [{"id": "x"}]}',
            "does not load: issues.0.name: Field required; issues.0.title: Field required",
        ),
    ],
)
def test_a_catalogue_that_does_not_load_is_named_with_its_problem(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "catalogue.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    found = catalogue_problem(Settings.from_env({"E2E_KNOWN_ISSUES": str(path)}))
    assert found is not None and found.startswith(f"E2E settings: E2E_KNOWN_ISSUES={path}: "), found
    assert problem in found


@pytest.mark.usefixtures("catalogue_restored")
def test_a_relative_catalogue_is_read_from_the_project_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"E2E_KNOWN_ISSUES": "fixtures/known_issues.json"})
    assert (settings.known_issues_path, catalogue_problem(settings)) == (known_issues.DEFAULT_PATH, None)


@pytest.mark.usefixtures("catalogue_restored")
def test_a_verified_issue_the_catalogue_lacks_is_named_with_the_valid_ids() -> None:
    assert catalogue_problem(Settings.from_env({"E2E_VERIFY_ISSUE": "issue-1279"})) == (
        "E2E settings: E2E_VERIFY_ISSUE='issue-1279' is no issue of the known-issue catalogue "
        "(fixtures/known_issues.json): valid ids are issue-1278, staging-ws-auth-permissive"
    )
