"""The streak rules (harness.nightly.streak) and the cause a tracker follows (harness.report.tracked_cause):
pure data, no run."""

from __future__ import annotations

from datetime import date

import pytest

from harness.nightly.history import History
from harness.nightly.record import NightRecord, TrackedCause
from harness.nightly.streak import Tonight, streak
from harness.report.cause import Cause
from harness.report.diagnosis import Diagnosis
from harness.report.tracked_cause import tracked_cause
from harness.startup.kinds import Named

pytestmark = pytest.mark.unit

KNOWN = TrackedCause("issue-1278", "known issue issue-1278", "issue-1278", "confirmed", 1278)
DEPLOY = TrackedCause("product_defect:bad_deploy", "a bad deploy (not issue-1278)")


def night(
    day: int, cause: TrackedCause | None, revision: str | None = None, flaky: tuple[str, ...] = ()
) -> NightRecord:
    return NightRecord(
        run_id=f"run-{day}",
        started_at=f"2026-11-{day:02d}T03:17:00Z",
        job="e2e-staging",
        environment="staging",
        target="https://api",
        outcome="failed" if cause else "passed",
        diagnosis=None,
        cause=cause,
        revisions=(revision,) if revision else (),
        flaky=flaky,
    )


def tonight(cause: TrackedCause | None, revision: str | None = None, flaky: tuple[str, ...] = ()) -> Tonight:
    return Tonight("2026-12-01T03:17:00Z", cause is not None, cause, (revision,) if revision else (), flaky)


def test_the_first_night_of_a_history_says_so() -> None:
    assert streak([], tonight(None)).text == "the first night in this history: green"
    said = streak([], tonight(KNOWN))
    assert (said.text, said.new_cause, said.changed) == (
        "the first night in this history: red, a new cause: known issue issue-1278",
        True,
        True,
    )


def test_red_after_green_is_a_new_cause() -> None:
    said = streak([night(27, None), night(28, None), night(29, None), night(30, None)], tonight(KNOWN))
    assert said.text == "red tonight after 4 green nights: a new cause: known issue issue-1278"
    assert (said.nights, said.new_cause, said.changed) == (1, True, True)


def test_red_for_nights_since_its_first_with_the_revisions() -> None:
    nights = [night(28, None), night(29, KNOWN, "rev-00123"), night(30, KNOWN, "rev-00123")]
    said = streak(nights, tonight(KNOWN, "rev-00124"))
    assert said.text == "red for 3 nights, since 2026-11-29 03:17 UTC (revision rev-00123 → rev-00124)"
    assert (said.nights, said.since, said.new_cause, said.changed) == (
        3,
        "2026-11-29T03:17:00Z",
        False,
        False,
    )


def test_one_revision_all_along_is_named_once_and_none_is_not_invented() -> None:
    assert streak([night(30, KNOWN, "rev-1")], tonight(KNOWN, "rev-1")).text.endswith("(revision rev-1)")
    assert streak([night(30, KNOWN)], tonight(KNOWN)).text == "red for 2 nights, since 2026-11-30 03:17 UTC"


def test_another_cause_while_red_is_a_new_cause_since_last_night() -> None:
    said = streak([night(29, KNOWN), night(30, KNOWN)], tonight(DEPLOY))
    assert said.text == (
        "red for 3 nights, since 2026-11-29 03:17 UTC; a new cause since last night: "
        "a bad deploy (not issue-1278) (was: known issue issue-1278)"
    )
    assert (said.new_cause, said.changed, said.was) == (True, True, "known issue issue-1278")


def test_green_again_after_red_nights() -> None:
    nights = [night(26, None), night(27, KNOWN), night(28, KNOWN), night(29, DEPLOY), night(30, DEPLOY)]
    said = streak(nights, tonight(None))
    assert (said.text, said.changed, said.after) == ("green again after 4 red nights", True, 4)
    assert streak([night(29, KNOWN)], tonight(None)).text == "green again after 1 red night"


def test_green_for_nights_is_no_change() -> None:
    said = streak([night(29, KNOWN), night(30, None)], tonight(None))
    assert (said.text, said.changed) == ("green for 2 nights", False)


def test_the_nights_are_read_in_time_order_whatever_the_file_order() -> None:
    nights = [night(30, KNOWN), night(28, None), night(29, KNOWN)]
    assert streak(nights, tonight(KNOWN)).text.startswith("red for 3 nights, since 2026-11-29")


def test_a_tests_flakiness_is_counted_over_the_last_ten_nights() -> None:
    test = "tests/e2e_staging/test_chat.py::test_turn"
    nights = [night(day, None, flaky=(test,) if day in (15, 25, 28) else ()) for day in range(15, 31)]
    said = streak(nights, tonight(None, flaky=(test,)))
    # day 15 is outside the window (the last 9 nights held, and tonight): 25, 28 and tonight
    assert [(f.nights, f.of, f.text) for f in said.flaky] == [
        (3, 10, "test_turn flaky 3 of the last 10 nights")
    ]


def test_a_rerun_replaces_its_night_and_never_follows_itself() -> None:
    history = History("e2e-staging", "staging").with_night(night(29, KNOWN)).with_night(night(30, KNOWN))
    again = history.with_night(night(30, None))
    assert [r.run_id for r in again.records] == ["run-29", "run-30"] and not again.records[-1].red
    assert [r.run_id for r in again.previous("run-30")] == ["run-29"]


def test_a_night_of_another_job_or_environment_does_not_enter() -> None:
    with pytest.raises(ValueError, match="does not belong"):
        History("e2e-staging", "local").with_night(night(30, KNOWN))


# -- the cause a tracker follows --------------------------------------------------------------------


class F:
    def __init__(self, category: str, known_issue: str | None = None) -> None:
        self.category, self.known_issue = category, known_issue


CONFIRMED = Cause("issue-1278", "confirmed", "the record confirms it")


def test_a_known_issue_within_its_review_date_is_its_own_trackers() -> None:
    cause = tracked_cause(
        outcome="failed",
        diagnosis=Diagnosis("known_issue", "issue-1278"),
        cause=CONFIRMED,
        failures=[F("infra.gateway", "issue-1278")],
        day=date(2026, 12, 21),
    )
    assert cause == TrackedCause("issue-1278", "known issue issue-1278", "issue-1278", "confirmed", 1278)


def test_a_known_issue_past_its_review_date_is_a_new_cause_to_re_triage() -> None:
    cause = tracked_cause(
        outcome="failed",
        diagnosis=Diagnosis("known_issue", "issue-1278"),
        cause=CONFIRMED,
        failures=[F("infra.gateway", "issue-1278")],
        day=date(2026, 12, 22),
    )
    assert cause is not None and (cause.key, cause.tracker, cause.retriage) == (
        "retriage:issue-1278",
        None,
        True,
    )
    assert cause.title.startswith(
        "issue-1278 past its review date 2026-12-21: re-triage (owner: the platform"
    )


BAD_DEPLOY = Named(
    "phase-raised",
    "a startup phase raised an error: a bad deploy",
    "product",
    "the service's team",
    "fix it",
    None,
)


@pytest.mark.parametrize(
    ("outcome", "diagnosis", "cause", "failures", "key"),
    [
        ("passed", Diagnosis("healthy"), None, [], None),
        ("failed", Diagnosis("product_defect"), Cause("issue-1278", "ruled_out", "e", instead="startup", kind=BAD_DEPLOY),
         [F("infra.gateway")], "startup:phase-raised"),
        ("failed", Diagnosis("infrastructure"), Cause("issue-1278", "ruled_out", "e", instead="gateway"),
         [F("infra.gateway")], "infrastructure:gateway"),
        ("failed", Diagnosis("product_defect"), None, [F("product.golden_path"), F("product.auth")],
         "product_defect:product.auth,product.golden_path"),
        ("incomplete", Diagnosis("healthy"), None, [], "incomplete"),
        ("error", None, None, [], "error"),
    ],
)  # fmt: skip
def test_each_red_night_has_a_cause_key_that_outlives_its_details(
    outcome: str, diagnosis: Diagnosis | None, cause: Cause | None, failures: list[F], key: str | None
) -> None:
    found = tracked_cause(outcome=outcome, diagnosis=diagnosis, cause=cause, failures=failures, day=None)
    assert (found.key if found else None) == key
