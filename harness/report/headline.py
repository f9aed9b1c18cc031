"""The verdict's words: the headline (the diagnosis in one line, naming only what the run verified),
who must act, and the short label a report's header has room for.

Called once, by `harness.report.verdict.conclude`, with everything it needs already decided (the
outcome, the diagnosis, the coverage, the cause, the gates): these functions only choose the words.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from harness import known_issues, text
from harness.report.cause import Cause
from harness.report.coverage import Coverage
from harness.report.diagnosis import Diagnosis
from harness.report.gates import FixVerdict, Gate
from harness.taxonomy import Category

# A message's first line, cut for a headline.
first_line = functools.partial(text.first_line, width=220)
KEY_HINT = "E2E_OAUTH_SIMULATION_KEY (from the secret store)"
LOCAL = "judged the local replica, not staging"
RETRIAGE = "RE-TRIAGE:"  # a known issue past its review date: red as a new failure
# The gates a FIXED headline names (the table shows every one): the status update's own criteria.
HEADLINE_GATES = ("startup_success_rate", "db_phase_max", "golden_path", "availability")


class Failure(Protocol):
    """What the words need of a failed test (`harness.report.verdict.TestResult` has it)."""

    @property
    def category(self) -> str | None: ...
    @property
    def service(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...


@dataclass(frozen=True)
class Words:
    headline: str
    owner: str
    label: str


@dataclass(frozen=True)
class Decided:
    """What `conclude` decided before the words are chosen: every function here reads it, none adds
    to it. `retriage`: the diagnosis's known issue is past its review date (its words, e.g.
    "issue-1278 past its review date 2026-12-21: re-triage (owner: …)"): the night is headlined as one
    someone must look at again. `streak`: what changed since the nights before, said last."""

    outcome: str
    diagnosis: Diagnosis | None
    coverage: Sequence[Coverage]
    failures: Sequence[Failure]
    cause: Cause | None
    gates: Sequence[Gate]
    fix: FixVerdict | None
    verified_issue: str | None
    usage_error: str | None
    nothing_selected: bool
    judged_the_replica: bool
    retriage: str | None = None
    streak: str | None = None


def words(decided: Decided) -> Words:
    """The headline, the owner and the label of one run."""
    diagnosis = decided.diagnosis
    line = _headline(decided)
    if decided.retriage:
        line = f"{RETRIAGE} {decided.retriage}; {line}"
    if decided.judged_the_replica and diagnosis is not None:
        line = f"{line}; {LOCAL}"
    if decided.streak:
        line = f"{line}; {decided.streak}"
    owner = _owner(decided.outcome, diagnosis, decided.cause)
    issue = known_issues.get(diagnosis.known_issue) if decided.retriage and diagnosis else None
    if issue is not None:  # the catalogue's owner answers for it, and must look again
        owner = f"{issue.owner} {text.known_issue_mark(issue.id)}, past its review date: re-triage"
    return Words(line, owner, _label(line, diagnosis, decided.cause, decided.judged_the_replica))


def _headline(decided: Decided) -> str:
    diagnosis, cause, failures = decided.diagnosis, decided.cause, decided.failures
    if diagnosis is None:  # nothing was tested
        if decided.usage_error:
            return f"USAGE ERROR: {decided.usage_error}"
        if decided.nothing_selected:
            return "NO TESTS RAN: the selection (MARKERS / -m, -k) matched no test of the suite; nothing verified"
        return "USAGE ERROR: pytest refused the run (its message is above); nothing verified"
    if decided.fix is not None:
        return _fix_headline(decided.gates, decided.fix, known_issues.name_of(decided.verified_issue))
    if diagnosis.kind == "known_issue":
        issue = known_issues.get(diagnosis.known_issue)
        blame = issue.headline if issue else "a catalogued issue explains every failure"
        if cause and cause.known_issue == diagnosis.known_issue and cause.status == "unconfirmed":
            return f"KNOWN ISSUE {diagnosis.known_issue}, unconfirmed: {cause.detail}"
        if cause and cause.known_issue == diagnosis.known_issue and cause.kind is not None:
            said = f'{cause.detail}; "{cause.kind.quoted}"' if cause.kind.quoted else cause.detail
            return f"KNOWN ISSUE {diagnosis.known_issue}, confirmed by {cause.by}: {cause.kind.title} ({said}): {blame}"
        if cause and cause.known_issue == diagnosis.known_issue:
            return f"KNOWN ISSUE {diagnosis.known_issue}, confirmed by {cause.by} ({cause.detail}): {blame}"
        return f"KNOWN ISSUE {diagnosis.known_issue}: {blame}"
    if cause and cause.status == "ruled_out" and diagnosis.kind in ("product_defect", "infrastructure"):
        return _ruled_out(cause, diagnosis)
    if diagnosis.kind == "product_defect":
        categories = sorted({t.category for t in failures if t.category and Category(t.category).is_product})
        return (
            f"PRODUCT DEFECT: the infrastructure answered, the product misbehaved ({', '.join(categories)})"
        )
    if diagnosis.kind == "infrastructure":
        return f"INFRASTRUCTURE, not the product's code: {_infra_cause(failures)}"
    if diagnosis.kind == "not_reproduced":
        return "NOT REPRODUCED: the issue's signature was not seen; staging is not in the state the reproduction looks for (not a defect)"
    if diagnosis.kind == "suite_error":
        return "SUITE ERROR: the validation suite itself failed, not staging (see the suite.error failures)"
    if decided.outcome == "incomplete":
        return _incomplete(decided.coverage)
    return _healthy(decided.coverage)


def _ruled_out(cause: Cause, diagnosis: Diagnosis) -> str:
    """The record ruled the known issue out: what killed the startups instead (their kind's title, the
    line it quotes), who must act and their next step; a kind no row knows is said as UNRECOGNISED
    with the record's own lines, and blames nobody."""
    kind = cause.kind
    if cause.instead == "startup" and kind is not None and not kind.recognised:
        lines = " | ".join(f'"{line}"' for line in kind.lines[:3]) or "no line says why"
        return (
            f"UNRECOGNISED STARTUP FAILURE (not {cause.known_issue}): {cause.detail}: {cause.manner}; "
            f"the record's lines: {lines}; who acts: {kind.who_acts}"
        )
    if cause.instead == "startup" and kind is not None:
        lead = "PRODUCT DEFECT" if diagnosis.kind == "product_defect" else "INFRASTRUCTURE"
        quoted = f' "{kind.quoted}";' if kind.quoted else ""
        return (
            f"{lead} ({kind.title}, not {cause.known_issue}): {cause.detail}: {cause.manner};{quoted} "
            f"{kind.who_acts} must act: {kind.next_step}"
        )
    return f"INFRASTRUCTURE (the load balancer / ingress, not {cause.known_issue}): {cause.detail}"


def _fix_headline(gates: Sequence[Gate], fix: FixVerdict, issue: str) -> str:
    if fix == "FIXED":
        return (
            f"FIXED: {issue}'s success criteria are met: every gate measured and passed ("
            + "; ".join(f"{g.name} {g.measured}" for g in gates if g.name in HEADLINE_GATES)
            + ")"
        )
    failed = [g for g in gates if g.status == "failed"]
    if failed:
        return "NOT FIXED: " + "; ".join(f"{g.name}: {first_line(g.detail) or g.measured}" for g in failed)
    unmeasured: dict[str, list[str]] = defaultdict(list)  # one reason, the gates it leaves unmeasured
    for gate in gates:
        if gate.status == "unmeasured":
            unmeasured[text.first_line(gate.detail, 150)].append(gate.name)
    return "INCONCLUSIVE: nothing failed, but not measured: " + "; ".join(
        f"{', '.join(names)} ({reason})" for reason, names in unmeasured.items()
    )


def _names(items: Sequence[Coverage]) -> str:
    return ", ".join(c.title for c in items)


def _healthy(cov: Sequence[Coverage]) -> str:
    verified = [c for c in cov if c.state == "verified"]
    unselected = [c for c in cov if c.state == "not_verified"]
    said = (
        f"HEALTHY: {_names(verified)} verified" if verified else "HEALTHY: nothing failed, nothing verified"
    )
    return said + (f" (not verified: {_names(unselected)})" if unselected else "")


def _incomplete(cov: Sequence[Coverage]) -> str:
    missing = [c for c in cov if c.golden_path and c.state == "not_verified" and c.reason != "not selected"]
    verified = [c for c in cov if c.state == "verified"]
    reasons = sorted({c.reason or "" for c in missing})
    needs_key = any("E2E_OAUTH_SIMULATION_KEY is not set" in r for r in reasons)
    how = f"; provide {KEY_HINT}" if needs_key else ""
    done = f"; verified: {_names(verified)}" if verified else ""
    return f"INCOMPLETE: {_names(missing)} not verified ({'; '.join(reasons)}){how}{done}"


def _infra_cause(failures: Sequence[Failure]) -> str:
    infra = [t for t in failures if t.category and Category(t.category).is_infra]
    if not infra:
        return "staging's infrastructure failed the run"
    category, _ = Counter(t.category or "" for t in infra).most_common(1)[0]
    first = next(t for t in infra if t.category == category)
    service = f"{first.service}: " if first.service else ""
    what = Category(category).description.removeprefix("Infrastructure: ")
    return f"{service}{what} — {text.first_line(text.reason(first.message), 160)}"


# Who must act, by diagnosis, when nothing more specific says so.
_OWNER_BY_DIAGNOSIS = {
    "healthy": "nobody (nothing failed)",
    "infrastructure": "infrastructure (the platform team)",
    "product_defect": "product (the service's own code)",
    "not_reproduced": "nobody (the issue was not seen)",
    "suite_error": "the validation suite (not staging)",
}


def _owner(outcome: str, diagnosis: Diagnosis | None, cause: Cause | None) -> str:
    """A known issue's blame, else the diagnosis's; a healthy run that is not a pass (incomplete), or a
    run that tested nothing, is the operator's to finish."""
    if diagnosis is None:
        return "the run's operator (the run could not start)"
    if diagnosis.kind == "known_issue":
        issue = known_issues.get(diagnosis.known_issue)
        return f"{issue.blame if issue else 'unknown'} {text.known_issue_mark(diagnosis.known_issue)}"
    if diagnosis.kind == "healthy" and outcome != "passed":
        return "the run's operator (nothing failed; the run is not complete)"
    if cause and cause.status == "ruled_out" and cause.instead == "startup" and cause.kind is not None:
        return f"{cause.kind.who_acts}: {cause.kind.title}"  # the startups' kind of death says who
    return _OWNER_BY_DIAGNOSIS[diagnosis.kind]


_LEAD = re.compile(r"[A-Z][A-Z ]*[A-Z]")


def _label(headline: str, diagnosis: Diagnosis | None, cause: Cause | None, judged_the_replica: bool) -> str:
    """One line a report's header has room for: the headline's verdict words, the known issue and how
    strongly the cause is established ("KNOWN ISSUE issue-1278 (confirmed)", "HEALTHY (local replica)")."""
    lead = _LEAD.match(headline)
    if headline.startswith(RETRIAGE):
        parts = [RETRIAGE.removesuffix(":")]
    else:
        parts = [lead.group(0) if lead else text.first_line(headline.split(": ", 1)[0], 60)]
    issue = diagnosis.known_issue if diagnosis else None
    if issue:
        parts.append(issue)
    if cause is not None:
        subject = "" if cause.known_issue == issue else f"{cause.known_issue} "
        parts.append(f"({subject}{cause.status.replace('_', ' ')})")
        if cause.kind is not None and cause.status == "ruled_out":
            parts.append(cause.kind.id)  # what the record showed instead
    if judged_the_replica:
        parts.append("(local replica)")
    return " ".join(parts)
