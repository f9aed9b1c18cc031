"""The run's cause, stated at the strength its evidence supports.

A known issue's signature seen only from outside is a hypothesis: a gateway's 503 page is what Cloud
Run serves for *any* backend that is not up (a database phase timing out, a bad deploy crash-looping
on an ImportError, a missing secret, a load balancer failing while every instance is fine). The
platform's own record (the backend's startups, `harness.startup.sources`) confirms it or rules it
out; without that record the cause stays unconfirmed, and says what would settle it.

| status        | when                                                                                   |
|---------------|----------------------------------------------------------------------------------------|
| `confirmed`   | startups in the window died in the issue's phase (and exit code); or the failures carry the issue's own words (a signature that needs no record: the service's JSON, the record itself) |
| `ruled_out`   | the record shows something else: startups dying in another phase (a bad deploy: the product or its configuration), or startups succeeding while the gateway answers 503 (the load balancer / ingress) |
| `unconfirmed` | the record could not be read, or holds no finished startup in the window              |

The record is read once, only when a failure needs it (`weigh` calls `read` lazily), bounded in time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from harness import known_issues
from harness.known_issues import Confirmation, KnownIssue
from harness.startup.records import StartupRecord
from harness.startup.sources import StartupWindow
from harness.text import first_line

Status = Literal["confirmed", "unconfirmed", "ruled_out"]
# What the record showed when it ruled the issue out: who must act instead.
Instead = Literal["bad_deploy", "gateway"]


class Failure(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def known_issue(self) -> str | None: ...
    @property
    def signature(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...


@dataclass(frozen=True)
class Cause:
    """A known issue, how strongly the evidence supports it, and that evidence in one line.

    `detail` is what the evidence says in a few words (the record's figures, or the failure's), for a
    headline; `instead`, when the record rules the issue out, says who must act instead."""

    known_issue: str
    status: Status
    evidence: str
    detail: str = ""
    instead: Instead | None = None
    by: str = "the startup record"  # what confirmed or ruled it out

    def to_dict(self) -> dict[str, Any]:
        return {"known_issue": self.known_issue, "status": self.status, "evidence": self.evidence}


def weigh(tests: Sequence[Failure], read: Callable[[], StartupWindow]) -> Cause | None:
    """The cause of the run's failures: None when no failure carries a known issue's label."""
    failures = [t for t in tests if t.status in ("failed", "broken") and t.known_issue]
    if not failures:
        return None
    issue_id = Counter(t.known_issue or "" for t in failures).most_common(1)[0][0]
    issue = known_issues.get(issue_id)
    labelled = [t for t in failures if t.known_issue == issue_id]
    if issue is None or issue.confirmation is None:
        said = first_line(labelled[0].message, 200)
        return Cause(issue_id, "confirmed", f"seen directly: {said}", said, by="what the run saw")
    own_words = [t for t in labelled if not issue.needs_confirmation(t.signature)]
    if own_words:
        said = first_line(own_words[0].message, 200)
        return Cause(
            issue.id, "confirmed", f"in the platform's own words: {said}", said, by="the platform's own words"
        )
    return from_record(issue, issue.confirmation, read())


def from_record(issue: KnownIssue, confirmation: Confirmation, window: StartupWindow) -> Cause:
    """The issue's outside signature held against the backend's startups in the window."""
    seen = f"the failures match {issue.id}'s outside signature ({confirmation.outside})"
    if window.tally is None:
        why = window.unmeasured or "no record"
        return Cause(
            issue.id,
            "unconfirmed",
            f"{seen}; not confirmed: {why}; to confirm, {confirmation.how}",
            f"{seen}; not confirmed: {_first_clause(why)}; to confirm, {confirmation.how}",
        )
    records = list(window.tally.records)
    failed = [r for r in records if r.outcome == "failed"]
    dying = [r for r in failed if _dies_as(r, confirmation)]
    if dying:
        detail = _dying_in(dying, records)
        return Cause(issue.id, "confirmed", f"the startup record confirms it: {detail}", detail)
    if failed:
        detail = _dying_in(failed, records)
        return Cause(
            issue.id,
            "ruled_out",
            f"the startup record rules it out: {detail}: a bad deploy (the product or its configuration), "
            f"not {issue.id}",
            detail,
            "bad_deploy",
        )
    ok = [r for r in records if r.outcome == "ok"]
    if ok:
        db = [r.db_phase_s for r in ok if r.db_phase_s is not None]
        phase = f" (database phase at most {max(db):.2f}s)" if db else ""
        detail = f"{_count(ok, records)} succeeded{phase} while the gateway answered 503"
        return Cause(
            issue.id,
            "ruled_out",
            f"the startup record rules it out: {detail}: look at the load balancer / ingress, not the database",
            detail,
            "gateway",
        )
    stopped = f"; {len(records)} still starting (last phase {records[-1].last_phase})" if records else ""
    detail = (
        f"{seen}; not confirmed: no finished startup in the record between {_when(window)}{stopped}; to "
        "confirm, read a longer window (E2E_CAUSE_LOOKBACK_S) once the backend has restarted"
    )
    return Cause(issue.id, "unconfirmed", detail, detail)


def _first_clause(reason: str) -> str:
    """A reason's first clause ("gcloud is not installed (...)"), without the advice after its colon."""
    return reason.split(": ", 1)[0]


def _dies_as(record: StartupRecord, confirmation: Confirmation) -> bool:
    wrong_exit = confirmation.exit_code is not None and record.exit_code not in (None, confirmation.exit_code)
    return record.failed_phase == confirmation.failed_phase and not wrong_exit


def _count(chosen: Sequence[StartupRecord], records: Sequence[StartupRecord]) -> str:
    revisions = sorted({r.revision for r in chosen if r.revision})
    of = f"revision {', '.join(revisions)}" if revisions else "the backend"
    return f"{len(chosen)} of {len(records)} startups of {of}"


def _dying_in(failed: Sequence[StartupRecord], records: Sequence[StartupRecord]) -> str:
    """E.g. "4 of 6 startups of revision X died in phase database after 75-107 s, exit 3 (<error>)"."""
    phase = Counter(r.failed_phase or "an unknown phase" for r in failed).most_common(1)[0][0]
    same = [r for r in failed if (r.failed_phase or "an unknown phase") == phase]
    times = [r.db_phase_s for r in same if r.db_phase_s is not None and phase == "database"]
    after = ""
    if times:
        low, high = min(times), max(times)
        after = f" after {low:.0f} s" if round(low) == round(high) else f" after {low:.0f}-{high:.0f} s"
    exits = sorted({r.exit_code for r in same if r.exit_code is not None})
    code = f", exit {'/'.join(str(c) for c in exits)}" if exits else ""
    error = next((r.error for r in same if r.error), None)
    said = f" ({error})" if error else ""
    return f"{_count(same, records)} died in phase {phase}{after}{code}{said}"


def _when(window: StartupWindow) -> str:
    return f"{window.since:%Y-%m-%dT%H:%M:%SZ} and {window.until:%Y-%m-%dT%H:%M:%SZ}"
