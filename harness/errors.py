"""The exception hierarchy every check raises, each carrying exactly one category.

`InfraFailure` is not an AssertionError, so pytest and Allure report it as *broken*;
`ProductFailure` is one, so it is reported as *failed*. Messages start with `[category]`
so that Allure's categories.json can route them by regex.
"""

from __future__ import annotations

from typing import Any

from harness.redact import redact
from harness.taxonomy import Category


class E2EFailure(Exception):
    """A classified failure with its evidence (already redacted).

    The message is redacted here, at the source: tests build it from response bodies, and pytest
    prints it unfiltered to the terminal, JUnit and Allure.
    """

    def __init__(
        self,
        category: Category,
        message: str,
        evidence: dict[str, Any] | None = None,
        known_issue: str | None = None,
    ) -> None:
        self.category = Category(category)
        self.detail = message = redact(message)
        self.evidence = evidence or {}
        self.known_issue = known_issue
        suffix = f" (known issue {known_issue})" if known_issue else ""  # Allure routes it by this text
        super().__init__(f"[{self.category}] {message}{suffix}")

    @staticmethod
    def of(
        category: Category,
        message: str,
        evidence: dict[str, Any] | None = None,
        known_issue: str | None = None,
    ) -> E2EFailure:
        """The right subclass for a category (infra -> broken, product -> failed)."""
        cls = InfraFailure if Category(category).is_infra else ProductFailure
        return cls(category, message, evidence, known_issue)


class InfraFailure(E2EFailure):
    """Infrastructure did not let the check run: Allure *broken*."""

    def __init__(self, category: Category, *args: Any, **kwargs: Any) -> None:
        if not Category(category).is_infra:
            raise ValueError(f"{category} is not an infrastructure category")
        super().__init__(category, *args, **kwargs)


class ProductFailure(E2EFailure, AssertionError):
    """The product answered wrongly: Allure *failed*."""

    def __init__(self, category: Category, *args: Any, **kwargs: Any) -> None:
        if Category(category).is_infra:
            raise ValueError(f"{category} is not a product category")
        super().__init__(category, *args, **kwargs)
