"""Every way a backend startup dies, named: one validated table (fixtures/startup_failures.json).

Behind Cloud Run's 503 page a database phase running out its time (#1278), a database refusing the
service's password, a revision without its Cloud SQL socket, an empty database, a bad deploy, an
instance killed for memory, a container that never listens on its port and a startup hung after the
database all look the same: a crash loop. The startup record (`harness.startup.records`) tells them
apart by the phase the startup died in, the *manner* of its death and the line that says why; this
module reads a record's manner and finds its kind, whose title, blame (who acts) and next step the
cause, the diagnosis, the owner and every report then use (`harness.report.cause`).

The manner is read from the record alone (`manner_of`), never guessed:

| manner        | when                                                                                      |
|---------------|-------------------------------------------------------------------------------------------|
| `killed`      | Cloud Run killed the instance for memory (`Memory limit of N MiB exceeded ...`)           |
| `not_serving` | the app logged `COMPLETED SUCCESSFULLY`, Cloud Run's startup probe failed: it never served |
| `timeout`     | the app failed its phase after at least `share_of_timeout` of the timeout the record prints (`capacity-aware timeouts: init=95.0s`), or its lines say timeout (`words`); or Cloud Run's probe ended it while the database phase had not answered |
| `at_once`     | the app failed its phase well inside that timeout (the database answered, and refused)     |
| `stuck`       | the app never said how it ended; Cloud Run's startup probe ended it in a phase (not the database) |
| `exited`      | it exited non-zero and the app never said why                                             |
| none          | a failed database phase whose record prints no timeout and no words: how it died is unknown |

The first kind whose rules all hold is the startup's (`identify`); none is `UNRECOGNISED`, said with the
record's own lines. `python -m harness.startup.kinds` prints the table the README and
docs/startup-record.md carry; `--write README.md docs/startup-record.md` rewrites it between their
markers (a test fails, naming that command, when one is stale).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.startup import StartupPhase
from harness import readme_tables
from harness.readme_tables import ReadmeTable
from harness.startup.records import PlatformLine, StartupRecord

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "fixtures" / "startup_failures.json"

Manner = Literal["timeout", "at_once", "stuck", "not_serving", "killed", "exited"]
Blame = Literal["infrastructure", "product"]

# How a manner reads in a sentence about a startup that died in `{phase}`.
MANNER_WORDS: dict[Manner, str] = {
    "timeout": "the {phase} phase ran out its time",
    "at_once": "the {phase} phase failed at once",
    "stuck": "it hung in phase {phase} until Cloud Run's startup probe ended it",
    "not_serving": "the app said it had started, but Cloud Run's startup probe never reached it on its port",
    "killed": "Cloud Run killed it for memory",
    "exited": "it exited without the app saying why",
}
# The database answering at once is the database's doing, not its phase's: said so.
_DATABASE_AT_ONCE = "the database answered at once"
# Who acts, in a person's words.
BLAME_WORDS: dict[Blame, str] = {
    "infrastructure": "infrastructure (the platform team)",
    "product": "the product or its configuration (the service's team)",
}
UNRECOGNISED = "unrecognised"
_WHO: dict[Blame, str] = {"infrastructure": "infrastructure", "product": "the product or its configuration"}


def _regex(value: str | None) -> str | None:
    """A pattern of the table, checked once when it loads."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regex {value!r}: {exc}") from None
    return value


class TimeoutRule(BaseModel):
    """When a phase ran out its time: it lasted at least `share_of_timeout` of the timeout the record
    prints, or one of the record's lines says so in one of `words`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    share_of_timeout: float = Field(gt=0, le=1)
    words: tuple[str, ...] = Field(min_length=1)


class Manners(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: TimeoutRule


class When(BaseModel):
    """What identifies a kind in a startup record; every rule stated must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phases: tuple[StartupPhase, ...] = ()
    manners: tuple[Manner, ...] = ()
    line: str | None = None  # a regex searched in the record's lines that say why (and its error)
    platform: tuple[PlatformLine, ...] = ()  # Cloud Run's own lines the record must hold

    @field_validator("line")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _regex(value)

    @model_validator(mode="after")
    def _states_a_rule(self) -> When:
        """A kind without a rule would name every death, a guess; one with only a line would name a
        startup that succeeded in spite of it."""
        if not (self.phases or self.manners or self.platform):
            raise ValueError("states no phase, manner or Cloud Run line: it would name every death")
        return self

    def holds(self, record: StartupRecord, manner: Manner | None) -> bool:
        said = [*record.reason_lines, *([record.error] if record.error else [])]
        checks = (
            not self.phases or record.failed_phase in self.phases,
            not self.manners or manner in self.manners,
            all(p in record.platform for p in self.platform),
            self.line is None or any(re.search(self.line, line) for line in said),
        )
        return all(checks)


class Kind(BaseModel):
    """One way a startup dies: what identifies it, its title, who acts and what they do first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str = Field(min_length=1)
    blame: Blame
    next_step: str = Field(min_length=1)
    when: When
    quote: str | None = (
        None  # which of the record's lines to quote (a regex); default: the line that says why
    )
    known_issue: str | None = None  # the catalogued issue this kind is (fixtures/known_issues.json)
    example: str = Field(min_length=1)  # a real line its rules read, kept inside the gcloud filter by a test

    @field_validator("quote")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _regex(value)

    @property
    def who_acts(self) -> str:
        return BLAME_WORDS[self.blame]


class Table(BaseModel):
    """The kinds, in the order they are tried, and the rule that says when a phase ran out its time."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    manners: Manners
    kinds: tuple[Kind, ...] = Field(min_length=1)

    @field_validator("kinds")
    @classmethod
    def _unique_ids(cls, kinds: tuple[Kind, ...]) -> tuple[Kind, ...]:
        ids = [k.id for k in kinds]
        duplicates = sorted({i for i in ids if ids.count(i) > 1} | ({UNRECOGNISED} & set(ids)))
        if duplicates:
            raise ValueError(f"kind ids must be unique (and not {UNRECOGNISED!r}): {duplicates}")
        return kinds


@functools.cache
def load(path: Path = DEFAULT_PATH) -> Table:
    """The table, validated once per path: a bad table fails here, loudly."""
    return Table.model_validate(json.loads(path.read_text(encoding="utf-8")))


def get(kind_id: str | None, table: Table | None = None) -> Kind | None:
    return next((k for k in (table or load()).kinds if k.id == kind_id), None)


# --------------------------------------------------------------------------------------------------
# A record's manner and kind
# --------------------------------------------------------------------------------------------------
def timed_out(record: StartupRecord, rule: TimeoutRule) -> bool:
    """The failed phase ran out its time: its lines say so, or (the database phase, whose timeout the
    record prints) it lasted at least the stated share of that timeout."""
    if any(word in line for line in record.reason_lines for word in rule.words):
        return True
    lasted, timeout = record.db_phase_s, record.db_timeout_s
    return (
        record.failed_phase == "database"
        and lasted is not None
        and timeout is not None
        and lasted >= rule.share_of_timeout * timeout
    )


def manner_of(record: StartupRecord, table: Table | None = None) -> Manner | None:
    """How a failed startup died, from its record alone (see the module's table); None when the record
    does not show it (a database phase failed with no timeout printed and no words), or it did not die."""
    if record.outcome != "failed":
        return None
    rule = (table or load()).manners.timeout
    if "memory_exceeded" in record.platform:
        return "killed"
    if record.app_outcome == "completed":
        return "not_serving"
    if record.app_outcome == "failed":
        if timed_out(record, rule):
            return "timeout"
        if record.failed_phase != "database":
            return "at_once"  # only the database phase has a timeout to run out, in the record
        lasted, timeout = record.db_phase_s, record.db_timeout_s
        if lasted is not None and timeout is not None:
            return "at_once"  # under the share of its printed timeout
        return None
    if "probe_failed" in record.platform or "port_not_listening" in record.platform:
        # The app never said how it ended; the platform gave up on it. In the database phase that is the
        # database never answering within the platform's time.
        return "timeout" if record.failed_phase == "database" else "stuck"
    return "exited"


@dataclass(frozen=True)
class Identified:
    """A failed startup, how it died, and its kind (None: no kind fits, UNRECOGNISED)."""

    record: StartupRecord
    manner: Manner | None
    kind: Kind | None

    @property
    def kind_id(self) -> str:
        return self.kind.id if self.kind else UNRECOGNISED

    @property
    def quoted(self) -> str | None:
        """The line a headline quotes: the kind's choice among the record's lines, else the line that
        says why, else the failed phase's error."""
        record = self.record
        if self.kind and self.kind.quote:
            chosen = next((ln for ln in record.reason_lines if re.search(self.kind.quote, ln)), None)
            if chosen:
                return chosen
        return record.reason or record.error

    def manner_words(self) -> str:
        """The manner in a sentence: "the database answered at once", "the database phase ran out its time"."""
        phase = self.record.failed_phase or "an unknown"
        if self.manner is None:
            return f"the record does not show how the {phase} phase died (no timeout printed, no timeout in its words)"
        if self.manner == "at_once" and phase == "database":
            return _DATABASE_AT_ONCE
        return MANNER_WORDS[self.manner].format(phase=phase)


def identify(record: StartupRecord, table: Table | None = None) -> Identified:
    """The failed startup's manner and its kind: the first row whose rules all hold."""
    table = table or load()
    manner = manner_of(record, table)
    kind = next((k for k in table.kinds if k.when.holds(record, manner)), None)
    return Identified(record, manner, kind)


@dataclass(frozen=True)
class Named:
    """A kind as the verdict carries it: what the reports say about the startups that died this way.
    `id` is `unrecognised` when no kind fits; then `lines` are the record's own, and nobody is blamed."""

    id: str
    title: str
    blame: Blame | None
    who_acts: str
    next_step: str
    quoted: str | None
    lines: tuple[str, ...] = ()

    @property
    def recognised(self) -> bool:
        return self.id != UNRECOGNISED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "who_acts": self.who_acts,
            "next_step": self.next_step,
            "quoted": self.quoted,
            "lines": list(self.lines),
        }


def named(identified: Identified) -> Named:
    kind = identified.kind
    if kind is None:
        record = identified.record
        lines = record.reason_lines or tuple(ln.split(" ", 1)[-1] for ln in record.evidence[-6:])
        return Named(
            UNRECOGNISED,
            "an unrecognised startup failure",
            None,
            "undetermined: no kind of fixtures/startup_failures.json fits, a person reads the record",
            "read the startup record's lines (quoted); once the cause is known, add its kind to "
            "fixtures/startup_failures.json",
            identified.quoted,
            lines,
        )
    return Named(kind.id, kind.title, kind.blame, kind.who_acts, kind.next_step, identified.quoted)


def most_common(identified: Sequence[Identified]) -> list[Identified]:
    """The startups of the commonest kind (UNRECOGNISED counts as one), the first seen winning a tie."""
    counts: dict[str, int] = {}
    for item in identified:
        counts[item.kind_id] = counts.get(item.kind_id, 0) + 1
    top = max(counts, key=lambda k: counts[k]) if counts else None
    return [i for i in identified if i.kind_id == top]


# --------------------------------------------------------------------------------------------------
# The README's table
# --------------------------------------------------------------------------------------------------
def _rules(kind: Kind) -> str:
    when = kind.when
    parts = []
    if when.phases:
        parts.append("phase " + " / ".join(p.value for p in when.phases))
    if when.manners:
        parts.append("manner " + " / ".join(f"`{m}`" for m in when.manners))
    if when.line:
        pattern = when.line.replace("|", "\\|")  # a pipe would end the Markdown cell
        parts.append(f"a line matching `{pattern}`")
    if when.platform:
        parts.append("Cloud Run's " + ", ".join(f"`{p}`" for p in when.platform) + " line")
    return "; ".join(parts)


def markdown_table(table: Table | None = None) -> str:
    """The README's table of kinds, rendered from the data, in the order they are tried."""
    table = table or load()
    rows = ["| kind | identified by | who acts | next step |", "|---|---|---|---|"]
    for kind in table.kinds:
        issue = f" (known issue `{kind.known_issue}`)" if kind.known_issue else ""
        rows.append(
            f"| `{kind.id}`: {kind.title}{issue} | {_rules(kind)} | {_WHO[kind.blame]} | {kind.next_step} |"
        )
    rows.append(
        f"| `{UNRECOGNISED}`: no row fits | said as UNRECOGNISED with the record's own lines, never guessed "
        "| undetermined | read the record; add a row |"
    )
    rule = table.manners.timeout
    words = ", ".join(f"`{w}`" for w in rule.words)
    rows += [
        "",
        f"Manner `timeout`: the phase lasted at least {rule.share_of_timeout:.0%} of the timeout the record "
        f"prints (`capacity-aware timeouts: init=95.0s`), or its lines say {words}.",
    ]
    return "\n".join(rows)


README_TABLE = ReadmeTable(
    "kinds", "harness.startup.kinds", markdown_table, documents=("README.md", "docs/startup-record.md")
)


if __name__ == "__main__":
    readme_tables.run(README_TABLE, "Every way a backend startup dies, as the README's table of kinds.")
