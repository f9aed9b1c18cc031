"""The tracker decisions (harness.nightly.tracker.plan): who is told what, tonight. Pure data."""

from __future__ import annotations

import pytest

from harness.nightly.record import NightRecord, TrackedCause
from harness.nightly.tracker import Action, Close, Comment, Open, open_trackers, plan

pytestmark = pytest.mark.unit

KNOWN = TrackedCause("issue-1278", "known issue issue-1278", "issue-1278", "confirmed", 1278)
DEPLOY = TrackedCause("product_defect:bad_deploy", "a bad deploy (not issue-1278)")
RETRIAGE = TrackedCause("retriage:issue-1278", "issue-1278 past its review date", "issue-1278", retriage=True)


def night(day: int, cause: TrackedCause | None) -> NightRecord:
    return NightRecord(
        run_id=str(day),
        started_at=f"2026-12-{day:02d}T03:17:00Z",
        job="e2e-staging",
        environment="staging",
        target="https://api",
        outcome="failed" if cause else "passed",
        diagnosis=None,
        cause=cause,
        url=f"https://github.com/o/r/actions/runs/{day}",
    )


def kinds(actions: list[Action]) -> list[tuple[str, object]]:
    return [(type(a).__name__, a.key if isinstance(a, Open) else a.number) for a in actions]


def test_a_known_issue_night_comments_on_its_catalogued_tracker_and_opens_nothing() -> None:
    assert kinds(plan(night(2, KNOWN), "red", [night(1, None)], {})) == [("Comment", 1278)]


def test_a_new_cause_opens_one_tracker_with_its_markers() -> None:
    [opened] = plan(night(2, DEPLOY), "red", [night(1, None)], {})
    assert (
        isinstance(opened, Open) and opened.title == "e2e-staging on staging: a bad deploy (not issue-1278)"
    )
    assert "<!-- e2e-nightly-cause: e2e-staging/staging/product_defect:bad_deploy -->" in opened.body
    assert "<!-- e2e-nightly-run: e2e-staging/staging/2 -->" in opened.body


def test_a_cause_with_an_open_tracker_is_commented_on() -> None:
    actions = plan(night(3, DEPLOY), "red", [night(2, DEPLOY)], {"product_defect:bad_deploy": 7})
    assert kinds(actions) == [("Comment", 7)] and isinstance(actions[0], Comment)
    assert "<!-- e2e-nightly-run: e2e-staging/staging/3 -->" in actions[0].body


def test_another_cause_tonight_tells_last_nights_tracker_once() -> None:
    assert kinds(plan(night(3, DEPLOY), "red", [night(2, KNOWN)], {})) == [
        ("Open", DEPLOY.key),
        ("Comment", 1278),
    ]
    # the night after, the known issue is not told again
    assert kinds(plan(night(4, DEPLOY), "red", [night(2, KNOWN), night(3, DEPLOY)], {DEPLOY.key: 9})) == [
        ("Comment", 9)
    ]


def test_green_closes_the_open_trackers_and_tells_the_known_issues_of_the_streak() -> None:
    previous = [night(1, None), night(2, KNOWN), night(3, DEPLOY)]
    actions = plan(night(4, None), "green again after 2 red nights", previous, {DEPLOY.key: 9})
    assert kinds(actions) == [("Comment", 1278), ("Close", 9)]
    assert isinstance(actions[1], Close) and actions[1].body.startswith("Green again: closing.")


def test_green_after_green_says_nothing() -> None:
    assert plan(night(3, None), "green for 2 nights", [night(1, KNOWN), night(2, None)], {}) == []


def test_a_known_issue_past_its_review_date_is_tracked_as_a_new_cause_never_on_its_tracker() -> None:
    assert kinds(plan(night(2, RETRIAGE), "red", [night(1, KNOWN)], {})) == [
        ("Open", RETRIAGE.key),
        ("Comment", 1278),  # told once that tonight's cause is another: re-triage
    ]


def test_trackers_are_found_by_their_cause_marker_for_this_job_and_environment_only() -> None:
    issues = [
        {"number": 7, "body": "x <!-- e2e-nightly-cause: e2e-staging/staging/product_defect:bad_deploy -->"},
        {"number": 8, "body": "<!-- e2e-nightly-cause: e2e-staging/local/product_defect:bad_deploy -->"},
        {"number": 9, "body": "no marker"},
    ]
    assert open_trackers(issues, "e2e-staging", "staging") == {"product_defect:bad_deploy": 7}
