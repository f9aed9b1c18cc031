"""One night as the history keeps it: what ran, against what, what it concluded, and where to look.

A record is written once per run (a re-run of the same run id replaces it: `history.upsert`) from the
verdict's body, so it says exactly what the night said. It is plain data, JSON both ways, and knows
nothing of where it is stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class TrackedCause:
    """The cause of a red night, as a tracker follows it across nights.

    `key` is the same for the same cause on every night ("issue-1278", "retriage:issue-1278",
    "product_defect:bad_deploy", "product_defect:product.golden_path"); `title` says it to a person;
    `tracker` is the catalogue's issue number for a known issue that has one (commented on, never
    opened); `strength` is how strongly the evidence supports a known issue (confirmed, unconfirmed)."""

    key: str
    title: str
    known_issue: str | None = None
    strength: str | None = None
    tracker: int | None = None
    retriage: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrackedCause | None:
        if not data:
            return None
        return cls(
            key=str(data["key"]),
            title=str(data.get("title") or data["key"]),
            known_issue=data.get("known_issue"),
            strength=data.get("strength"),
            tracker=data.get("tracker"),
            retriage=bool(data.get("retriage", False)),
        )


@dataclass(frozen=True)
class RunIdentity:
    """Which run this is: in GitHub Actions its run id, attempt and link; locally a time-based id.

    The run id is what makes a re-run a re-run: GitHub keeps it across attempts, so a re-run replaces
    its night instead of adding one."""

    run_id: str
    attempt: int = 1
    url: str | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, started_at: str | None = None
    ) -> RunIdentity:
        env = os.environ if environ is None else environ
        run_id = env.get("GITHUB_RUN_ID", "").strip()
        if not run_id:
            moment = started_at or datetime.now(UTC).isoformat()
            return cls(run_id=f"local-{moment}")
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        repo = env.get("GITHUB_REPOSITORY", "").strip()
        attempt = env.get("GITHUB_RUN_ATTEMPT", "1").strip()
        url = f"{server}/{repo}/actions/runs/{run_id}" if repo else None
        return cls(run_id=run_id, attempt=int(attempt) if attempt.isdigit() else 1, url=url)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NightRecord:
    """One night of one job against one environment."""

    run_id: str
    started_at: str  # ISO 8601, UTC ("2026-12-07T03:17:00Z")
    job: str
    environment: str
    target: str  # the backend's URL
    outcome: str  # the verdict's: passed, failed, incomplete, inconclusive, error
    diagnosis: str | None
    cause: TrackedCause | None  # None: a green night
    headline: str = ""
    attempt: int = 1
    url: str | None = None  # the run's page (CI), else None
    revisions: tuple[str, ...] = ()  # the backend revisions the startup record showed, if it was read
    failing: tuple[str, ...] = ()  # node ids
    flaky: tuple[str, ...] = ()  # node ids
    strength: str | None = None  # the known issue's cause strength (confirmed / unconfirmed / ruled_out)
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields a later version added, kept as read

    @property
    def red(self) -> bool:
        return self.outcome != "passed"

    @property
    def key(self) -> tuple[str, str]:
        return (self.job, self.environment)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data["cause"] = self.cause.to_dict() if self.cause else None
        data["revisions"], data["failing"], data["flaky"] = (
            list(self.revisions),
            list(self.failing),
            list(self.flaky),
        )
        return dict(extra) | data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NightRecord:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(
            run_id=str(data["run_id"]),
            started_at=str(data["started_at"]),
            job=str(data["job"]),
            environment=str(data["environment"]),
            target=str(data.get("target") or ""),
            outcome=str(data["outcome"]),
            diagnosis=data.get("diagnosis"),
            cause=TrackedCause.from_dict(data.get("cause")),
            headline=str(data.get("headline") or ""),
            attempt=int(data.get("attempt") or 1),
            url=data.get("url"),
            revisions=tuple(data.get("revisions") or ()),
            failing=tuple(data.get("failing") or ()),
            flaky=tuple(data.get("flaky") or ()),
            strength=data.get("strength"),
            extra={k: v for k, v in data.items() if k not in known},
        )


def night_of(body: Mapping[str, Any]) -> NightRecord:
    """The night a verdict's body (verdict.json, schema 5) describes, in its own words."""
    run = body.get("run") or {}
    cause = TrackedCause.from_dict(body.get("tracked_cause"))
    tests = body.get("tests") or []
    strength = (body.get("cause") or {}).get("status")
    return NightRecord(
        run_id=str(run.get("run_id") or f"local-{body.get('started_at')}"),
        started_at=str(body.get("started_at")),
        job=str(body.get("job") or "e2e-staging"),
        environment=str(body.get("environment")),
        target=str((body.get("targets") or {}).get("backend") or ""),
        outcome=str(body["outcome"]),
        diagnosis=body.get("diagnosis"),
        cause=cause,
        headline=str(body.get("headline") or ""),
        attempt=int(run.get("attempt") or 1),
        url=run.get("url"),
        revisions=tuple(body.get("revisions") or ()),
        failing=tuple(sorted(t["nodeid"] for t in tests if t.get("status") in ("failed", "broken"))),
        flaky=tuple(sorted(t["nodeid"] for t in tests if t.get("flaky"))),
        strength=strength,
    )


def parse_time(value: str) -> datetime:
    """A record's time (ISO 8601, `Z` or an offset) as an aware UTC datetime."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
