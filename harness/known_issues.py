"""Known issues, kept as data in fixtures/known_issues.json.

A match *labels* a classified failure (verdict `known_issue`, Allure category, link); it never
changes its category or turns it into a skip. Signatures are rules on explicit facts of an
observation (target, path, status, body, the finding's kind and category), never keyword matching
on exception text. The catalogue also says how a run whose failures it explains is headlined, so
any catalogued issue can be a run's diagnosis.

A signature seen only from outside (a gateway's 503 page is what Cloud Run serves for *any* backend
that is not up) is a hypothesis: an issue's `confirmation` names those signatures, what the
platform's own record must show to confirm it (startups dying in a phase, with an exit code, in a
manner), and how to read that record. `harness.report.cause` weighs it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.evidence import Channel, Observation, Target
from harness.startup.kinds import Manner
from harness.taxonomy import Category
from harness.text import known_issue_mark

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "known_issues.json"


class Signature(BaseModel):
    """One shape of a known issue; every rule that is set must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    target: Target | None = None
    channel: Channel | None = None
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
            self.body_json is None or obs.is_json == self.body_json,
        )
        return all(checks) and all(re.search(p, obs.body_snippet) for p in self.body_regex)


class Confirmation(BaseModel):
    """What confirms an issue seen from outside: startups in the backend's own record that died in
    `failed_phase` (with `exit_code`, when the record has one) and in `manner` (harness.startup.kinds:
    e.g. `timeout`, the phase ran out its time). The phase and the exit code alone would confirm any
    death in that phase: a refused password dies in the database phase with exit 3 too, at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signatures: tuple[str, ...] = Field(min_length=1)  # the outside signatures that need the record
    outside: str  # those signatures in words, for a headline ("the gateway's 503 page on /health")
    failed_phase: str
    exit_code: int | None = None
    manner: Manner | None = None  # None: any manner (the phase and exit code decide)
    how: str  # how to read the record, for a person who must confirm it


class KnownIssue(BaseModel):
    """A tracked issue (id, title, link), how a run it explains is headlined, its signatures, and
    what confirms the ones seen only from outside."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str  # what people call it ("Issue #1278"): verify-fix's words ("Issue #1278: FIXED")
    title: str
    link: str
    blame: Literal[
        "infrastructure", "product"
    ]  # who acts when it is established (a subset of the taxonomy's)
    headline: str  # the diagnosis line when this issue explains the run's failures
    # Who answers for it, and until when the catalogue may explain a night away without a person
    # looking again: past `review_by` a night red only with it is red as a new failure would be.
    owner: str = Field(min_length=3)
    review_by: date
    # The issue in this repository that tracks it: the nightly comments there, never opens another.
    tracker: int | None = Field(default=None, ge=1)
    signatures: tuple[Signature, ...] = Field(min_length=1)
    confirmation: Confirmation | None = None

    @model_validator(mode="after")
    def _confirms_its_own_signatures(self) -> KnownIssue:
        names = {s.name for s in self.signatures}
        unknown = sorted(set(self.confirmation.signatures) - names) if self.confirmation else []
        if unknown:
            raise ValueError(f"{self.id}: confirmation names signatures it does not have: {unknown}")
        return self

    def past_review(self, on: date) -> bool:
        """On `on`, the catalogue no longer explains a night away: the issue needs re-triage."""
        return on > self.review_by

    def needs_confirmation(self, signature: str | None) -> bool:
        """A failure labelled through `signature` was seen only from outside."""
        return self.confirmation is not None and signature in self.confirmation.signatures

    @property
    def allure_category(self) -> str:
        return f"Known issue {self.id}: {self.title}"

    @property
    def mark(self) -> str:
        """The text E2EFailure messages carry, by which Allure's categories route them."""
        return known_issue_mark(self.id)


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


_active: list[Path] = [DEFAULT_PATH]


def use(path: Path) -> None:
    """The catalogue this process reads from now on (`E2E_KNOWN_ISSUES`; the plugin calls it in the
    controller and in every xdist worker). Loading it validates it: a bad catalogue fails here, loudly."""
    load(path)
    _active[0] = path


@functools.cache
def _load(path: Path) -> tuple[KnownIssue, ...]:
    return _Catalogue.model_validate(json.loads(path.read_text(encoding="utf-8"))).issues


def load(path: Path | None = None) -> tuple[KnownIssue, ...]:
    """The catalogue (validated, regexes checked once; cached per path): the active one by default."""
    return _load(path or _active[0])


@dataclass(frozen=True)
class Match:
    issue: KnownIssue
    signature: str  # the name of the signature that fits


def match(
    obs: Observation, category: Category | None, kind: str, *, issues: tuple[KnownIssue, ...] | None = None
) -> Match | None:
    """The first known issue one of whose signatures fits this classified observation, if any."""
    for issue in load() if issues is None else issues:
        for signature in issue.signatures:
            if signature.matches(obs, category, kind):
                return Match(issue, signature.name)
    return None


def get(issue_id: str | None) -> KnownIssue | None:
    return next((issue for issue in load() if issue.id == issue_id), None)


def name_of(issue_id: str | None) -> str:
    """The issue's name from the catalogue ("Issue #1278"), else its id."""
    issue = get(issue_id)
    return issue.name if issue else str(issue_id)
