"""The cause a tracker follows: one key per cause, the same on every night it is seen.

Decided once per run in `harness.report.verdict.conclude` from what the verdict already decided (the
outcome, the diagnosis, the cause and its strength, the failures) and the catalogue:

| night                                            | key                                  | tracker                      |
|--------------------------------------------------|--------------------------------------|------------------------------|
| passed                                           | none (a green night)                 |                              |
| a known issue explains it, before its review date | the issue's id (`issue-1278`)        | the catalogue's `tracker`    |
| a known issue explains it, past its review date   | `retriage:<id>`: red as a new failure | one opened for it            |
| the record ruled the known issue out              | `startup:<kind of death>`, `infrastructure:gateway` | one opened for it |
| anything else red                                 | `<diagnosis>:<categories of the failures>`, `incomplete`, `inconclusive`, `error` | one opened for it |

Categories, not messages: tonight's timings and URLs must not make the same cause a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

from harness import known_issues
from harness.nightly.record import TrackedCause
from harness.report.cause import Cause
from harness.report.diagnosis import Diagnosis

_WORDS = {
    "product_defect": "product defect",
    "infrastructure": "infrastructure",
    "suite_error": "suite error",
    "not_reproduced": "not reproduced",
    "known_issue": "known issue",
    "healthy": "healthy",
}


class Failure(Protocol):
    @property
    def category(self) -> str | None: ...
    @property
    def known_issue(self) -> str | None: ...


def past_review(issue_id: str | None, on: date | None) -> bool:
    """The catalogued issue is past its review date on the run's day (no day: never)."""
    issue = known_issues.get(issue_id)
    return issue is not None and on is not None and issue.past_review(on)


def retriage_words(issue_id: str) -> str:
    """ "issue-1278 past its review date 2026-12-21: re-triage (owner: …)": the headline's and the
    tracker's words for an expired known issue."""
    issue = known_issues.get(issue_id)
    if issue is None:
        return f"{issue_id} past its review date: re-triage"
    return f"{issue_id} past its review date {issue.review_by.isoformat()}: re-triage (owner: {issue.owner})"


def tracked_cause(
    *,
    outcome: str,
    diagnosis: Diagnosis | None,
    cause: Cause | None,
    failures: Sequence[Failure],
    day: date | None,
) -> TrackedCause | None:
    """The cause of a night that did not pass (None for a green night)."""
    if outcome == "passed":
        return None
    if diagnosis is None:
        return TrackedCause("error", "the run could not start (a usage error)")
    issue_id = diagnosis.known_issue
    if diagnosis.kind == "known_issue" and issue_id:
        strength = cause.status if cause and cause.known_issue == issue_id else None
        if past_review(issue_id, day):
            return TrackedCause(
                f"retriage:{issue_id}", retriage_words(issue_id), issue_id, strength, None, retriage=True
            )
        issue = known_issues.get(issue_id)
        return TrackedCause(
            issue_id, f"known issue {issue_id}", issue_id, strength, issue.tracker if issue else None
        )
    if cause is not None and cause.status == "ruled_out":
        if cause.instead == "startup" and cause.kind is not None:  # how the startups died, named
            return TrackedCause(f"startup:{cause.kind.id}", f"{cause.kind.title} (not {cause.known_issue})")
        return TrackedCause(
            "infrastructure:gateway", f"the load balancer / ingress (not {cause.known_issue})"
        )
    if diagnosis.kind == "healthy":  # nothing failed, yet not a pass
        return TrackedCause(outcome, f"{outcome}: nothing failed, but the run is not a pass")
    categories = sorted({f.category for f in failures if f.category and not f.known_issue}) or sorted(
        {f.category for f in failures if f.category}
    )
    shown = f" ({', '.join(categories)})" if categories else ""
    return TrackedCause(f"{diagnosis.kind}:{','.join(categories)}", f"{_WORDS[diagnosis.kind]}{shown}")
