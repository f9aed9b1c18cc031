"""What changed since the nights before: one fact of the verdict, decided in `conclude`.

| tonight | the night before                  | text                                                                      |
|---------|-----------------------------------|---------------------------------------------------------------------------|
| any     | none in the history               | "the first night in this history: green" / "...: red, a new cause: X"      |
| red     | green                             | "red tonight after N green nights: a new cause: X"                        |
| red     | red, the same cause               | "red for N nights, since 2026-11-29 03:17 UTC (revision A → B)"           |
| red     | red, another cause                | "red for N nights, since ... (revision ...); a new cause since last night: X (was: Y)" |
| green   | red                               | "green again after N red nights"                                          |
| green   | green                             | "green for N nights"                                                      |

"Red" is any night that did not pass (failed, incomplete, inconclusive, an error): the job fails on
each. A streak is counted over consecutive nights of this job and environment only (the history
holds no other). The revisions are those the backend's startup record showed when the cause read it:
the streak's first night's against tonight's. A test's flakiness is counted over the last `WINDOW`
nights held, tonight included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.nightly.record import NightRecord, TrackedCause, parse_time

WINDOW = 10  # nights a test's flakiness is counted over


@dataclass(frozen=True)
class Flakiness:
    test: str  # node id
    nights: int  # nights it passed only after a retry, tonight included
    of: int  # nights counted
    text: str


@dataclass(frozen=True)
class Streak:
    state: str  # "red" | "green"
    nights: int  # consecutive nights in this state, tonight included
    since: str  # when the streak began (its first night's start)
    changed: bool  # tonight's state or cause differs from the night before (or there is none)
    new_cause: bool  # red with a cause the night before did not have
    was: str | None  # the night before's cause, when tonight's is another
    after: int  # nights of the other state just before this streak (0: none held)
    revisions: tuple[str | None, str | None]  # the streak's first night's revision, tonight's
    previous_url: str | None  # the night before's run
    text: str
    flaky: tuple[Flakiness, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["revisions"] = {"from": self.revisions[0], "to": self.revisions[1]}
        data["flaky"] = [asdict(f) for f in self.flaky]
        return data


@dataclass(frozen=True)
class Tonight:
    started_at: str
    red: bool
    cause: TrackedCause | None
    revisions: tuple[str, ...]
    flaky: tuple[str, ...]


def _run_length(nights: Sequence[NightRecord], red: bool) -> int:
    """Consecutive nights at the end of `nights` in this state."""
    count = 0
    for night in reversed(nights):
        if night.red != red:
            break
        count += 1
    return count


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _when(started_at: str) -> str:
    return f"{parse_time(started_at):%Y-%m-%d %H:%M} UTC"


def _revision_words(first: str | None, last: str | None) -> str:
    if first and last and first != last:
        return f" (revision {first} → {last})"
    if first or last:
        return f" (revision {first or last})"
    return ""


def streak(previous: Sequence[NightRecord], tonight: Tonight) -> Streak:
    """Tonight against the nights before it (oldest first, this job and environment's only)."""
    nights = sorted(previous, key=lambda r: parse_time(r.started_at))
    last = nights[-1] if nights else None
    same_before = _run_length(nights, tonight.red)
    other_before = _run_length(nights[: len(nights) - same_before], not tonight.red)
    count = same_before + 1
    first = nights[len(nights) - same_before] if same_before else None
    since = first.started_at if first else tonight.started_at
    revision_now = tonight.revisions[-1] if tonight.revisions else None
    revision_then = (first.revisions[-1] if first.revisions else None) if first else revision_now
    cause = tonight.cause
    last_key = last.cause.key if last and last.red and last.cause else None
    new_cause = tonight.red and (cause.key if cause else None) != last_key
    was = last.cause.title if new_cause and last and last.red and last.cause else None
    title = cause.title if cause else "unknown"
    if last is None:
        text = "the first night in this history: " + (
            "red, a new cause: " + title if tonight.red else "green"
        )
    elif tonight.red and not last.red:
        text = f"red tonight after {_plural(other_before, 'green night')}: a new cause: {title}"
    elif tonight.red:
        text = f"red for {count} nights, since {_when(since)}{_revision_words(revision_then, revision_now)}"
        if new_cause:
            text += f"; a new cause since last night: {title} (was: {was})"
    elif last.red:
        text = f"green again after {_plural(other_before, 'red night')}"
    else:
        text = f"green for {count} nights"
    return Streak(
        state="red" if tonight.red else "green",
        nights=count,
        since=since,
        changed=last is None or last.red != tonight.red or new_cause,
        new_cause=new_cause,
        was=was,
        after=other_before,
        revisions=(revision_then, revision_now),
        previous_url=last.url if last else None,
        text=text,
        flaky=flakiness(nights, tonight),
    )


def flakiness(nights: Sequence[NightRecord], tonight: Tonight, window: int = WINDOW) -> tuple[Flakiness, ...]:
    """Each test flaky tonight: on how many of the last `window` nights held (tonight included) it
    passed only after a retry."""
    recent = list(nights)[-(window - 1) :] if window > 1 else []
    of = len(recent) + 1
    found = []
    for test in sorted(tonight.flaky):
        count = 1 + sum(test in night.flaky for night in recent)
        name = test.split("::")[-1]
        found.append(Flakiness(test, count, of, f"{name} flaky {count} of the last {_plural(of, 'night')}"))
    return tuple(found)
