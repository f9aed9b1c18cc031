"""Usage errors found before anything starts (harness.usage): the marker expression, the suite's marker
arguments."""

from __future__ import annotations

import pytest

from harness.usage import markexpr_problem

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
