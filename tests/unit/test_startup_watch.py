"""The verdict as soon as the record settles it: the backend's startups dying (failed, none succeeding
since) settle a backend failure, so the retries stop; a cold start, a recovery or an unreadable record
leave the retries as they are. The record is read once for that, and once more at most for the cause."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import pytest

from harness.errors import InfraFailure
from harness.retry import RetryPolicy, retry_async
from harness.startup.records import AppOutcome, StartupOutcome, StartupRecord
from harness.startup.sources import StartupWindow
from harness.startup.tally import tally
from harness.startup.watch import Dying, StartupWatch, dying
from harness.taxonomy import Category

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def record(minute: int, outcome: StartupOutcome, phase: str | None = None) -> StartupRecord:
    return StartupRecord(
        instance=f"instance-{minute}",
        revision="netra-backend-staging-00042-xyz",
        started_at=T0 + timedelta(minutes=minute),
        db_phase_s=None,
        outcome=outcome,
        failed_phase=phase,
        exit_code=3 if outcome == "failed" else None,
    )


def window(*records: StartupRecord) -> StartupWindow:
    until = T0 + timedelta(hours=1)
    return StartupWindow("file:x", T0, until, tally=tally(records, since=T0, until=until))


@pytest.mark.parametrize(
    ("records", "settles"),
    [
        ((record(1, "failed", "database"), record(2, "failed", "database")), True),
        ((record(1, "failed", "database"), record(2, "incomplete")), True),  # the loop goes on
        ((record(1, "failed", "database"), record(2, "ok")), False),  # it recovered
        ((record(1, "incomplete"),), False),  # a cold start
        ((record(1, "ok"), record(2, "failed", "services")), True),  # a bad deploy after a good one
        ((), False),
    ],
)
def test_startups_dying_settle_a_backend_failure(records: tuple[StartupRecord, ...], settles: bool) -> None:
    assert (dying(window(*records)) is not None) is settles


def test_an_unreadable_record_settles_nothing() -> None:
    unreadable = StartupWindow("gcloud", T0, T0 + timedelta(hours=1), unmeasured="gcloud is not installed")
    assert dying(unreadable) is None


def test_the_record_is_read_once_and_reused_by_the_cause_when_it_settled() -> None:
    reads: list[int] = []

    def read() -> StartupWindow:
        reads.append(1)
        return window(record(1, "failed", "database"))

    watch = StartupWatch(read)
    assert watch.dying() is not None and watch.dying() is not None
    assert watch.window().tally is not None and len(reads) == 1


def test_a_reading_that_settled_nothing_is_read_again_for_the_cause() -> None:
    """Taken in the run's first second, it may predate the deaths the run then met."""
    readings = iter([window(record(1, "incomplete")), window(record(1, "failed", "database"))])
    watch = StartupWatch(lambda: next(readings))
    assert watch.dying() is None
    assert dying(watch.window()) is not None


def test_a_settled_failure_stops_the_retries_after_its_quick_recheck() -> None:
    """60 s of budget, a failure the record settles: two attempts (the try and its quick re-check)."""
    attempts: list[int] = []

    async def gateway_page(n: int) -> None:
        attempts.append(n)
        raise InfraFailure(Category.INFRA_GATEWAY, "backend: 503 page").settled_by("the record shows it")

    async def no_sleep(_: float) -> None:
        return None

    with pytest.raises(InfraFailure, match=r"not retried: the record shows it"):
        asyncio.run(
            retry_async(
                gateway_page,
                RetryPolicy(budget_s=60.0, max_attempts=6),
                describe="backend health",
                terminal=lambda failure: failure.settled is not None,
                sleep=no_sleep,
            )
        )
    assert attempts == [1, 2]


class LastStartup(TypedDict, total=False):
    failed_phase: str | None
    app_outcome: AppOutcome | None


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"failed_phase": "database"}, "the last in phase database"),
        ({"app_outcome": "completed"}, "the last after the app said it had started"),
        ({}, "the last in a phase the record does not name"),
    ],
)
def test_dying_says_where_the_last_startup_died(fields: LastStartup, where: str) -> None:
    """A startup Cloud Run's probe failed after the app said it had started has no failed phase."""
    failed = StartupRecord(
        "i", "r", started_at=None, db_phase_s=None, outcome="failed", failed_phase=None, exit_code=None
    )
    last = replace(failed, **fields)
    assert where in str(Dying(1, 1, last))
