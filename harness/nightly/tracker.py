"""Tell the owner when the state changes: one tracking issue per cause (the field's convention:
scientific-python's issue-from-pytest-log, scikit-learn's maint_tools/update_tracking_issue.py).

`plan` decides, from the night (its record and its streak's words), the night before and the open
trackers of this job and environment, what to say where; it is pure. `apply` says it through the
API, idempotently: every comment and every tracker's body carries a hidden marker of its run, and a
run already told is not told again (a re-run of the same run id adds nothing); every tracker's body
carries a hidden marker of its cause, by which it is found again.

| tonight                          | what happens                                                                  |
|----------------------------------|-------------------------------------------------------------------------------|
| red, a known issue with a tracker (within its review date) | a comment on the catalogue's tracker; none is ever opened for it |
| red, any other cause             | a comment on its open tracker, or a tracker opened for it ("e2e-staging on staging: a bad deploy (not issue-1278)") |
| red, another cause than last night's | also: the night before's tracker is told its cause was not seen tonight (once) |
| green after red                  | each open tracker of this job and environment closed with a comment; the tracker of each known issue seen in the red streak told, not closed (its owner closes it, e.g. once verify-fix says FIXED) |
| green after green                | nothing                                                                       |

A dry run on the replica (E2E_ENV=local) tells no one: the caller does not plan for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from harness.nightly.github import GitHub
from harness.nightly.record import NightRecord, parse_time

LABEL = "e2e-nightly"
_CAUSE = re.compile(r"<!-- e2e-nightly-cause: (?P<job>[^/ ]+)/(?P<env>[^/ ]+)/(?P<key>\S+) -->")


def cause_marker(job: str, environment: str, key: str) -> str:
    return f"<!-- e2e-nightly-cause: {job}/{environment}/{key} -->"


def run_marker(night: NightRecord) -> str:
    return f"<!-- e2e-nightly-run: {night.job}/{night.environment}/{night.run_id} -->"


@dataclass(frozen=True)
class Open:
    key: str
    title: str
    body: str


@dataclass(frozen=True)
class Comment:
    number: int
    body: str


@dataclass(frozen=True)
class Close:
    number: int
    body: str  # the closing comment


Action = Open | Comment | Close


def open_trackers(issues: Sequence[Mapping[str, object]], job: str, environment: str) -> dict[str, int]:
    """This job and environment's open trackers by cause key (their body's hidden marker)."""
    found: dict[str, int] = {}
    for issue in issues:
        match = _CAUSE.search(str(issue.get("body") or ""))
        if match and (match["job"], match["env"]) == (job, environment):
            found.setdefault(match["key"], int(str(issue["number"])))
    return found


def _line(night: NightRecord, streak: str) -> str:
    """One night in a comment: when, what changed, the headline, the run's link, the run's marker."""
    when = f"{parse_time(night.started_at):%Y-%m-%d %H:%M} UTC"
    link = f" ([run {night.run_id}]({night.url}))" if night.url else f" (run {night.run_id})"
    return f"**{when}**{link}: {streak}\n\n> {night.headline}\n\n{run_marker(night)}"


def plan(
    night: NightRecord, streak: str, previous: Sequence[NightRecord], trackers: Mapping[str, int]
) -> list[Action]:
    """What to say where, tonight (`previous`: the nights before, oldest first; `trackers`: the open
    trackers of this job and environment by cause key)."""
    last = previous[-1] if previous else None
    last_cause = last.cause if last and last.red else None
    actions: list[Action] = []
    cause = night.cause
    if night.red and cause is not None:
        if cause.tracker is not None:
            actions.append(Comment(cause.tracker, _line(night, streak)))
        elif cause.key in trackers:
            actions.append(Comment(trackers[cause.key], _line(night, streak)))
        else:
            title = f"{night.job} on {night.environment}: {cause.title}"
            body = (
                f"The nightly `{night.job}` against `{night.environment}` ({night.target}) is red with a cause "
                f"not seen the night before: **{cause.title}**. This issue follows it: one comment per red "
                "night, closed when a night is green again.\n\n"
                f"{_line(night, streak)}\n\n{cause_marker(night.job, night.environment, cause.key)}"
            )
            actions.append(Open(cause.key, title, body))
        if last_cause is not None and last_cause.key != cause.key:
            gone = f"Not seen tonight: the night is red with another cause, **{cause.title}**.\n\n"
            number = last_cause.tracker if last_cause.tracker is not None else trackers.get(last_cause.key)
            if number is not None:
                actions.append(Comment(number, gone + _line(night, streak)))
        return actions
    for issue_id, number in _known_in_streak(previous).items():
        actions.append(
            Comment(
                number,
                f"Green again: {issue_id} not seen tonight. This tracker stays open: its owner closes it "
                "(e.g. once `make verify-fix` says FIXED).\n\n" + _line(night, streak),
            )
        )
    for number in sorted(set(trackers.values())):
        actions.append(Close(number, "Green again: closing.\n\n" + _line(night, streak)))
    return actions


def _known_in_streak(previous: Sequence[NightRecord]) -> dict[str, int]:
    """The catalogue trackers of the known issues seen in the red streak that ends with the last night."""
    found: dict[str, int] = {}
    for night in reversed(previous):
        if not night.red:
            break
        cause = night.cause
        if cause is not None and cause.tracker is not None and cause.known_issue:
            found.setdefault(cause.known_issue, cause.tracker)
    return found


def _told(github: GitHub, number: int, marker: str) -> bool:
    """The tracker already holds this run's marker (its body, or a comment): a re-run."""
    if marker in str(github.issue(number).get("body") or ""):
        return True
    return any(marker in str(c.get("body") or "") for c in github.comments(number))


def apply(github: GitHub, night: NightRecord, actions: Sequence[Action], say: Callable[[str], None]) -> None:
    """Say it through the API, each step once per run; `say` gets one line per step."""
    marker = run_marker(night)
    for action in actions:
        if isinstance(action, Open):
            issue = github.create_issue(action.title, action.body, [LABEL])
            say(f"tracker #{issue['number']} opened: {action.title}")
        elif _told(github, action.number, marker):
            say(f"tracker #{action.number} already told of run {night.run_id} (a re-run): nothing added")
        elif isinstance(action, Comment):
            github.comment(action.number, action.body)
            say(f"tracker #{action.number} commented")
        else:
            github.comment(action.number, action.body)
            github.close_issue(action.number)
            say(f"tracker #{action.number} closed")
