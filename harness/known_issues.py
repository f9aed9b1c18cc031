"""Known-issue signatures, kept as data in fixtures/known_issues.json.

A match only *labels* a classified failure (verdict `known_issue`, Allure link); it never changes
its category or turns it into a skip. Rules are explicit fields of the evidence (target, path,
category, status, body shape, body patterns), never keyword matching on exception text.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.evidence import HttpEvidence
from harness.taxonomy import Category

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "known_issues.json"

Target = Literal["backend", "auth", "ws"]


class Signature(BaseModel):
    """One shape of a known issue; every rule that is set must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    target: Target | None = None
    path_regex: str | None = None
    categories: tuple[Category, ...] = ()
    statuses: tuple[int, ...] = ()
    body_json: bool | None = None
    body_regex: tuple[str, ...] = ()

    @field_validator("path_regex", "body_regex")
    @classmethod
    def _compiles(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        for pattern in (value,) if isinstance(value, str) else value or ():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        return value

    def matches(self, target: str, ev: HttpEvidence, category: Category | None) -> bool:
        if self.target is not None and target != self.target:
            return False
        if self.categories and category not in self.categories:
            return False
        if self.statuses and ev.status not in self.statuses:
            return False
        if self.path_regex is not None and not re.search(self.path_regex, _path(ev.url)):
            return False
        if self.body_json is not None and (ev.json is not None) != self.body_json:
            return False
        return all(re.search(pattern, ev.body_snippet) for pattern in self.body_regex)


class KnownIssue(BaseModel):
    """A tracked issue (id, title, link) and the signatures that recognise it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    link: str
    signatures: tuple[Signature, ...] = Field(min_length=1)

    def matching_signature(
        self, target: str, ev: HttpEvidence, category: Category | None
    ) -> Signature | None:
        return next((s for s in self.signatures if s.matches(target, ev, category)), None)


class _Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    issues: tuple[KnownIssue, ...]


@functools.cache
def load(path: Path = DEFAULT_PATH) -> tuple[KnownIssue, ...]:
    """The catalogue (validated, regexes compiled once; cached per path)."""
    return _Catalogue.model_validate(json.loads(path.read_text(encoding="utf-8"))).issues


def match(
    target: str, ev: HttpEvidence, category: Category | None, *, issues: tuple[KnownIssue, ...] | None = None
) -> KnownIssue | None:
    """The first known issue whose signature fits this classified exchange, if any."""
    for issue in load() if issues is None else issues:
        if issue.matching_signature(target, ev, category) is not None:
            return issue
    return None


def by_id(issue_id: str) -> KnownIssue | None:
    """Look an issue up by id (e.g. to render its link next to a verdict)."""
    return next((issue for issue in load() if issue.id == issue_id), None)


def _path(url: str) -> str:
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return url
