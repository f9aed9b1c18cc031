"""Known issues, kept as data in fixtures/known_issues.json.

A match *labels* a classified failure (verdict `known_issue`, Allure category, link); it never
changes its category or turns it into a skip. Signatures are rules on explicit facts of an
observation (target, path, status, body, the finding's kind and category), never keyword matching
on exception text. The catalogue also says how a run whose failures it explains is headlined, so
any catalogued issue can be a run's diagnosis.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.taxonomy import Category

if TYPE_CHECKING:
    from harness.classify import Observation

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "known_issues.json"

Target = Literal["backend", "auth"]
Blame = Literal["infrastructure", "product"]


class Signature(BaseModel):
    """One shape of a known issue; every rule that is set must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    target: Target | None = None
    channel: Literal["http", "ws", "logs"] | None = None
    path_regex: str | None = None
    kinds: tuple[str, ...] = ()
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

    @model_validator(mode="after")
    def _states_a_rule(self) -> Signature:
        """A signature with no rule would label every failure with its issue."""
        if not (set(self.model_fields_set) - {"name"}):
            raise ValueError(f"signature {self.name!r} states no rule: it would match every failure")
        return self

    def matches(self, obs: Observation, category: Category | None, kind: str) -> bool:
        checks = (
            self.target is None or obs.target == self.target,
            self.channel is None or obs.channel == self.channel,
            not self.kinds or kind in self.kinds,
            not self.categories or category in self.categories,
            not self.statuses or obs.status in self.statuses,
            self.path_regex is None or re.search(self.path_regex, obs.path) is not None,
            self.body_json is None or (_body_is_json(obs) == self.body_json),
        )
        return all(checks) and all(re.search(p, obs.body_snippet) for p in self.body_regex)


def _body_is_json(obs: Observation) -> bool:
    return obs.http is not None and obs.http.json is not None


class KnownIssue(BaseModel):
    """A tracked issue (id, title, link), how a run it explains is headlined, and its signatures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    link: str
    blame: Blame
    headline: str  # the diagnosis line when this issue explains the run's failures
    signatures: tuple[Signature, ...] = Field(min_length=1)

    @property
    def allure_category(self) -> str:
        return f"Known issue {self.id}: {self.title}"

    @property
    def mark(self) -> str:
        """The text E2EFailure messages carry, by which Allure's categories route them."""
        return f"(known issue {self.id})"


class _Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    issues: tuple[KnownIssue, ...]

    @field_validator("issues")
    @classmethod
    def _unique_ids(cls, issues: tuple[KnownIssue, ...]) -> tuple[KnownIssue, ...]:
        ids = [issue.id for issue in issues]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"known-issue ids must be unique: {duplicates}")
        return issues


@functools.cache
def load(path: Path = DEFAULT_PATH) -> tuple[KnownIssue, ...]:
    """The catalogue (validated, regexes checked once; cached per path)."""
    return _Catalogue.model_validate(json.loads(path.read_text(encoding="utf-8"))).issues


def match(
    obs: Observation, category: Category | None, kind: str, *, issues: tuple[KnownIssue, ...] | None = None
) -> KnownIssue | None:
    """The first known issue one of whose signatures fits this classified observation, if any."""
    for issue in load() if issues is None else issues:
        if any(s.matches(obs, category, kind) for s in issue.signatures):
            return issue
    return None


def get(issue_id: str | None) -> KnownIssue | None:
    return next((issue for issue in load() if issue.id == issue_id), None)
