"""The taxonomy is one table: every category states its meaning and its policy, and what readers see
of it (the README, Allure's categories) comes from that table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.taxonomy import README_TABLE, TABLE, Category, Policy, markdown_table

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_category_has_a_row_of_the_table() -> None:
    assert set(TABLE) == set(Category)


def test_a_row_states_every_attribute_of_a_category() -> None:
    """`Policy` has no defaults: a row that leaves an attribute out does not construct."""
    fields = dataclasses.fields(Policy)
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields)
    assert all(row.description and row.when for row in TABLE.values())


@pytest.mark.parametrize("category", list(Category))
def test_the_policy_of_a_category_holds_together(category: Category) -> None:
    """Only infrastructure is retried, opens the breaker, or takes a service down; a category in
    which nothing of the service answered takes it down; what the breaker stops is retried first."""
    policy = category.policy
    infra = category.blame == "infrastructure"
    assert (policy.retried or policy.opens_breaker or policy.service_down) <= infra
    assert policy.unanswered <= policy.service_down
    assert policy.opens_breaker <= policy.retried
    assert (
        category.value.split(".")[0]
        == {
            "infrastructure": "infra",
            "product": "product",
            "nobody": "repro",
            "suite": "suite",
        }[category.blame]
    )


def test_only_the_missing_configuration_is_an_infrastructure_failure_never_retried() -> None:
    assert [c for c in Category if c.is_infra and not c.policy.retried] == [Category.INFRA_CONFIG]


def test_the_readme_table_is_generated_from_the_taxonomy() -> None:
    readme = README.read_text(encoding="utf-8")
    assert README_TABLE.applied(readme) == readme, (
        "the README's category table is stale: python -m harness.taxonomy --write README.md"
    )
    assert markdown_table() in readme
