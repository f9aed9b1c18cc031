"""The run's cause, stated at the strength its evidence supports.

A known issue's signature seen only from outside is a hypothesis: a gateway's 503 page is what Cloud
Run serves for *any* backend that is not up (a database phase timing out, a database refusing the
service's password, a bad deploy crash-looping on an ImportError, an instance killed for memory, a load
balancer failing while every instance is fine). The platform's own record (the backend's startups,
`harness.startup.sources`) confirms it or rules it out, by the *manner* of the startups' deaths, not by
their phase and exit code alone: a refused password dies in the database phase with exit 3 too, in a
tenth of a second, where #1278 runs out the phase's time. The record's kind of death
(`harness.startup.kinds`) then says what happened instead, who acts and what they do first; without
the record the cause stays unconfirmed, and says what would settle it.

| status        | when                                                                                   |
|---------------|----------------------------------------------------------------------------------------|
| `confirmed`   | startups in the window died in the issue's phase, with its exit code, in its manner (#1278: the database phase ran out its time); or the failures carry the issue's own words (a signature that needs no record: the service's JSON, the record itself) |
| `ruled_out`   | the record shows something else: startups dying in another phase or another manner (their kind, or UNRECOGNISED with their own lines), or startups succeeding while the gateway answers 503 (the load balancer / ingress) |
| `unconfirmed` | the record could not be read, holds no finished startup in the window, or does not show how its startups died in the issue's phase (no timeout printed, no words saying timeout) |

The record is read once, only when a failure needs it (`weigh` calls `read` lazily), bounded in time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from harness import known_issues
from harness.known_issues import Confirmation, KnownIssue
from harness.startup import kinds
from harness.startup.kinds import Identified, Named
from harness.startup.records import StartupRecord
from harness.startup.sources import StartupWindow
from harness.startup.tally import StartupTally
from harness.text import first_line

Status = Literal["confirmed", "unconfirmed", "ruled_out"]
# What the record showed when it ruled the issue out: startups dying otherwise (their kind says who
# acts), or startups succeeding while the gateway answered 503 (the load balancer / ingress).
Instead = Literal["startup", "gateway"]


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
    headline; `manner` how the startups died, against the issue's manner ("the database answered at
    once, not issue-1278's timeout"); `instead`, when the record rules the issue out, what it showed;
    `kind` the startups' kind of death (its title, who acts, the next step, the line it quotes)."""

    known_issue: str
    status: Status
    evidence: str
    detail: str = ""
    instead: Instead | None = None
    by: str = "the startup record"  # what confirmed or ruled it out
    kind: Named | None = None
    manner: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "known_issue": self.known_issue,
            "status": self.status,
            "evidence": self.evidence,
            "kind": self.kind.to_dict() if self.kind else None,
        }


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
    cause = _weighed(issue, confirmation, window, window.tally, seen)
    cut = window.tally.incomplete_read  # said wherever the cause is: the read may lack the oldest
    return replace(cause, evidence=f"{cause.evidence} ({cut})") if cut else cause


def _weighed(
    issue: KnownIssue, confirmation: Confirmation, window: StartupWindow, startups: StartupTally, seen: str
) -> Cause:
    """The cause the window's startups support."""
    records = list(startups.records)
    deaths = [kinds.identify(r) for r in records if r.outcome == "failed"]
    confirming = [d for d in deaths if _dies_as(d, confirmation)]
    if confirming:
        chosen = kinds.most_common(confirming)
        detail = _dying_in(chosen, records)
        kind = kinds.named(chosen[0])
        return Cause(
            issue.id,
            "confirmed",
            f"the startup record confirms it: {kind.title}: {detail}{_quote(kind)}",
            detail,
            kind=kind,
            manner=chosen[0].manner_words(),
        )
    otherwise = [d for d in deaths if _contradicts(d, confirmation)]
    if otherwise:
        chosen = kinds.most_common(otherwise)
        detail = _dying_in(chosen, records)
        kind = kinds.named(chosen[0])
        manner = f"{_manner(chosen)}, not {_issues_manner(issue, confirmation, chosen[0])}"
        said = f"{kind.title}{_quote(kind)}" if kind.recognised else f"UNRECOGNISED: {_lines(kind)}"
        return Cause(
            issue.id,
            "ruled_out",
            f"the startup record rules it out: {detail}: {manner}; {said}; who acts: {kind.who_acts}; "
            f"next: {kind.next_step}",
            detail,
            "startup",
            kind=kind,
            manner=manner,
        )
    if deaths:  # died in the issue's phase, the record not showing how
        detail = (
            f"{seen}; not confirmed: {_dying_in(deaths, records)}, but the record shows neither the phase's "
            "timeout nor words saying timeout; to confirm, read a record that holds the phase's first lines "
            "(`capacity-aware timeouts: init=...`: the gcloud filter fetches them)"
        )
        return Cause(issue.id, "unconfirmed", detail, detail)
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


def _wrong_exit(record: StartupRecord, confirmation: Confirmation) -> bool:
    return confirmation.exit_code is not None and record.exit_code not in (None, confirmation.exit_code)


def _dies_as(death: Identified, confirmation: Confirmation) -> bool:
    """The startup died as the issue does: its phase, its exit code (when the record has one), its manner."""
    record = death.record
    return (
        record.failed_phase == confirmation.failed_phase
        and not _wrong_exit(record, confirmation)
        and (confirmation.manner is None or death.manner == confirmation.manner)
    )


def _contradicts(death: Identified, confirmation: Confirmation) -> bool:
    """The record shows the startup dying otherwise: another phase, another exit code, or another manner
    it can read (a manner it cannot read contradicts nothing)."""
    record = death.record
    return (
        record.failed_phase != confirmation.failed_phase
        or _wrong_exit(record, confirmation)
        or (confirmation.manner is not None and death.manner not in (None, confirmation.manner))
    )


def _manner(deaths: Sequence[Identified]) -> str:
    """How the commonest of these deaths died, in words."""
    manners = Counter(d.manner for d in deaths)
    top = manners.most_common(1)[0][0]
    return next(d for d in deaths if d.manner == top).manner_words()


def _issues_manner(issue: KnownIssue, confirmation: Confirmation, death: Identified) -> str:
    """The issue's manner as a reader compares it: "issue-1278's timeout", "issue-1278's database timeout"."""
    phase = "" if death.record.failed_phase == confirmation.failed_phase else f"{confirmation.failed_phase} "
    return f"{issue.id}'s {phase}{confirmation.manner or 'death'}"


def _quote(kind: Named) -> str:
    return f' ("{kind.quoted}")' if kind.quoted else ""


def _lines(kind: Named) -> str:
    return " | ".join(f'"{line}"' for line in kind.lines[:3]) or "the record shows no line that says why"


def seconds(value: float) -> str:
    """A duration as a person reads it: "0.07", "2.0", "107" (a sub-second one is never "0"; under the
    record's millisecond, "0.000" as the record prints it)."""
    if value < 0.001:
        return "0.000"
    if value < 1:
        return f"{value:.2g}"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _count(chosen: Sequence[StartupRecord], records: Sequence[StartupRecord]) -> str:
    revisions = sorted({r.revision for r in chosen if r.revision})
    of = f"revision {', '.join(revisions)}" if revisions else "the backend"
    return f"{len(chosen)} of {len(records)} startups of {of}"


def _dying_in(deaths: Sequence[Identified], records: Sequence[StartupRecord]) -> str:
    """E.g. "4 of 6 startups of revision X died in phase database after 75-107 s, exit 3"."""
    failed = [d.record for d in deaths]
    phase = Counter(r.failed_phase for r in failed).most_common(1)[0][0]
    same = [r for r in failed if r.failed_phase == phase]
    if phase is not None:
        where = f"in phase {phase}"
    elif any(r.app_outcome == "completed" for r in same):
        where = "after the app said it had started"
    else:
        where = "in an unknown phase"
    times = [r.db_phase_s for r in same if r.db_phase_s is not None and phase == "database"]
    after = ""
    if times:
        low, high = seconds(min(times)), seconds(max(times))
        after = f" after {low} s" if low == high else f" after {low}-{high} s"
    exits = sorted({r.exit_code for r in same if r.exit_code is not None})
    signals = sorted({r.signal for r in same if r.signal is not None})
    ended = [f"exit {'/'.join(str(c) for c in exits)}"] if exits else []
    ended += [f"killed (signal {'/'.join(str(s) for s in signals)})"] if signals and not exits else []
    code = f", {', '.join(ended)}" if ended else ""
    return f"{_count(same, records)} died {where}{after}{code}"


def _when(window: StartupWindow) -> str:
    return f"{window.since:%Y-%m-%dT%H:%M:%SZ} and {window.until:%Y-%m-%dT%H:%M:%SZ}"
