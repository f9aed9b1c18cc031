"""The verdict's diagnosis rules, its file contract, and the summaries built from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.allure_files import categories, mark_flaky_results
from harness.job_summary import render
from harness.summary import render_summary
from harness.taxonomy import Category
from harness.verdict import TestResult, Verdict

pytestmark = pytest.mark.unit


def _test(
    status: str, category: str | None = None, known: str | None = None, flaky: bool = False
) -> TestResult:
    return TestResult(
        nodeid=f"t::{status}-{category}-{known}-{flaky}", markers=["health"], status=status,  # type: ignore[arg-type]
        category=category, known_issue=known, flaky=flaky, attempts=2 if flaky else 1, message=f"[{category}] x",
    )  # fmt: skip


def _verdict(*tests: TestResult) -> Verdict:
    return Verdict(
        "local", {"backend": "b", "auth": "a", "ws": "w"}, "2026-11-27T00:00:00Z", 1.0, list(tests)
    )


@pytest.mark.parametrize(
    ("tests", "diagnosis"),
    [
        ((_test("passed"),), "healthy"),
        ((_test("passed", flaky=True),), "healthy"),  # a retry overcame it: not a finding
        ((_test("broken", "infra.gateway", "issue-1278"), _test("failed", "product.auth")), "issue_1278"),
        ((_test("passed", known="issue-1278"),), "issue_1278"),  # a passed reproduction
        ((_test("broken", "infra.timeout"), _test("failed", "product.http")), "infrastructure"),
        ((_test("failed", "product.golden_path"), _test("skipped")), "product_defect"),
    ],
)
def test_diagnosis(tests: tuple[TestResult, ...], diagnosis: str) -> None:
    assert _verdict(*tests).diagnosis == diagnosis


def test_verdict_file_follows_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    _verdict(_test("passed"), _test("broken", "infra.ws")).write(path, exit_status=1)
    body = json.loads(path.read_text())
    assert (set(body), body["outcome"], body["counts"], set(body["tests"][0])) == (
        {"schema_version", "environment", "targets", "started_at", "duration_s", "outcome", "diagnosis", "counts", "tests"},
        "failed",
        {"passed": 1, "failed": 0, "broken": 1, "skipped": 0, "flaky": 0},
        {"nodeid", "markers", "status", "category", "known_issue", "attempts", "flaky", "duration_s", "message"},
    )  # fmt: skip


def test_outcome_follows_the_exit_status() -> None:
    assert (_verdict().outcome(0), _verdict().outcome(1)) == ("passed", "failed")


def test_fix_verdict_refuses_a_pass_that_needed_a_retry() -> None:
    fixed, reasons = _verdict(_test("passed"), _test("passed", flaky=True)).fix_verdict()
    assert not fixed and "retry" in reasons[0]


def test_summary_groups_failures_by_category_with_the_diagnosis_first() -> None:
    lines = render_summary(
        _verdict(_test("broken", "infra.gateway", "issue-1278")), 1, "reports/verdict.json"
    )
    assert lines[2].startswith("DIAGNOSIS ISSUE #1278") and any(
        line.startswith("  infra.gateway (1)") for line in lines
    )


def test_job_summary_separates_known_issues_from_new_failures() -> None:
    text = render(
        _verdict(_test("broken", "infra.gateway", "issue-1278"), _test("failed", "product.auth")).to_json(1)
    )
    assert text.index("### New failures") < text.index("product.auth") < text.index("### Known issues")


def test_allure_categories_cover_every_taxonomy_code_once() -> None:
    names = [c["name"] for c in categories()]
    assert all(sum(n.startswith(f"{code.value} ") for n in names) == 1 for code in Category)


def test_flaky_tag_becomes_allure_flaky_status(tmp_path: Path) -> None:
    result = {"status": "passed", "labels": [{"name": "tag", "value": "flaky"}]}
    (tmp_path / "a-result.json").write_text(json.dumps(result))
    assert mark_flaky_results(tmp_path) == 1
    assert json.loads((tmp_path / "a-result.json").read_text())["statusDetails"]["flaky"] is True
