"""The exception hierarchy every check raises, each carrying exactly one category.

`InfraFailure` is not an AssertionError, so pytest and Allure report it as *broken* (as they do an
exception the suite did not anticipate, which the plugin files `suite.error`); `ProductFailure` and
`NotReproduced` are, so they are reported as *failed*. Messages start with `[category]` so that
Allure's categories.json can route them by regex.
"""

from __future__ import annotations

from typing import Any, Protocol

from harness.redact import redact
from harness.taxonomy import Category
from harness.text import known_issue_mark


class Judged(Protocol):
    """What a judgement of the decision table says (`harness.classify.Judgement`)."""

    @property
    def category(self) -> Category | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def known_issue(self) -> str | None: ...
    @property
    def signature(self) -> str | None: ...


class E2EFailure(Exception):
    """A classified failure with its evidence (already redacted).

    The message is redacted here, at the source: tests build it from response bodies, and pytest
    prints it unfiltered to the terminal, JUnit and Allure. `kind` names the finding (the decision
    table's row, e.g. `gateway_page`, `dns`); `service` is where it happened (backend | auth).
    """

    def __init__(
        self,
        category: Category,
        message: str,
        evidence: dict[str, Any] | None = None,
        known_issue: str | None = None,
        *,
        kind: str = "",
        service: str | None = None,
        signature: str | None = None,
    ) -> None:
        self.category = Category(category)
        self.detail = message = redact(message)
        self.evidence = evidence or {}
        self.known_issue = known_issue
        self.signature = signature  # the known issue's signature that labelled it
        self.kind = kind
        self.service = service
        suffix = f" {known_issue_mark(known_issue)}" if known_issue else ""  # Allure routes it by this text
        super().__init__(f"[{self.category}] {message}{suffix}")

    @staticmethod
    def of(
        category: Category,
        message: str,
        evidence: dict[str, Any] | None = None,
        known_issue: str | None = None,
        *,
        kind: str = "",
        service: str | None = None,
        signature: str | None = None,
    ) -> E2EFailure:
        """The right subclass for a category (infra -> broken, product -> failed)."""
        cls = _BY_BLAME.get(Category(category).blame, E2EFailure)
        return cls(category, message, evidence, known_issue, kind=kind, service=service, signature=signature)

    @staticmethod
    def judged(
        judgement: Judged,
        message: str,
        evidence: dict[str, Any] | None,
        *,
        service: str,
        unjudged: Category = Category.INFRA_UNREACHABLE,
        known_issue: str | None = None,
    ) -> E2EFailure:
        """The failure a judgement makes: its category (or `unjudged`, when it met the expectation but
        the caller still fails), its finding, its known issue (or the caller's) and the signature."""
        return E2EFailure.of(
            judgement.category or unjudged,
            message,
            evidence,
            judgement.known_issue or known_issue,
            kind=judgement.kind,
            service=service,
            signature=judgement.signature,
        )


class InfraFailure(E2EFailure):
    """Infrastructure did not let the check run: Allure *broken*.

    `settled` says why no retry can help, when the platform's own record already settles it (the
    backend's startups dying): the retries stop there."""

    settled: str | None = None

    def __init__(self, category: Category, *args: Any, **kwargs: Any) -> None:
        if not Category(category).is_infra:
            raise ValueError(f"{category} is not an infrastructure category")
        super().__init__(category, *args, **kwargs)

    def settled_by(self, why: str) -> InfraFailure:
        """The same failure, saying why it is not retried."""
        settled = InfraFailure(
            self.category,
            f"{self.detail} (not retried: {why})",
            self.evidence,
            self.known_issue,
            kind=self.kind,
            service=self.service,
            signature=self.signature,
        )
        settled.settled = why
        return settled


class ProductFailure(E2EFailure, AssertionError):
    """The product answered wrongly: Allure *failed*."""

    def __init__(self, category: Category, *args: Any, **kwargs: Any) -> None:
        if not Category(category).is_product:
            raise ValueError(f"{category} is not a product category")
        super().__init__(category, *args, **kwargs)


class NotReproduced(E2EFailure, AssertionError):
    """A reproduction test did not see its issue: failed, but nobody's defect."""

    def __init__(self, message: str, evidence: dict[str, Any] | None = None) -> None:
        super().__init__(Category.REPRO_NOT_REPRODUCED, message, evidence, kind="not_reproduced")


_BY_BLAME: dict[str, type[E2EFailure]] = {
    "infrastructure": InfraFailure,
    "product": ProductFailure,
}
